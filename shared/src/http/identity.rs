//! Who is asking. In `jwt` mode (deployed default) the user is the `sub` claim that API Gateway's
//! JWT authorizer verified; in `body` mode (local development, load tests) the request body names
//! the user and is trusted.

use super::event::ApiRequest;
use super::problem::HttpError;
use crate::config::AuthMode;
use crate::ids::UserId;

fn subject_user(req: &ApiRequest) -> Result<UserId, HttpError> {
    let sub = req.jwt_subject().ok_or(HttpError::Unauthorized)?;
    UserId::parse(sub).map_err(|_| HttpError::Unauthorized)
}

/// The buyer of a purchase request. `body_user` is the body's `userId`, if any.
pub(crate) fn purchaser(mode: AuthMode, req: &ApiRequest, body_user: Option<&str>) -> Result<UserId, HttpError> {
    match mode {
        AuthMode::Body => {
            let raw =
                body_user.ok_or_else(|| HttpError::invalid("the body must name the buyer: {\"userId\": \"...\"}"))?;
            UserId::parse(raw).map_err(|e| HttpError::invalid(e.to_string()))
        }
        AuthMode::Jwt => {
            let user = subject_user(req)?;
            match body_user {
                Some(other) if other != user.as_str() => {
                    Err(HttpError::Forbidden("userId in the body differs from the signed-in user".into()))
                }
                _ => Ok(user),
            }
        }
    }
}

/// May the caller see `user`'s purchase? In `jwt` mode only their own.
pub(crate) fn may_view(mode: AuthMode, req: &ApiRequest, user: &UserId) -> Result<(), HttpError> {
    match mode {
        AuthMode::Body => Ok(()),
        AuthMode::Jwt if subject_user(req)? == *user => Ok(()),
        AuthMode::Jwt => Err(HttpError::Forbidden("a user may only look up their own purchase".into())),
    }
}
