//! Who is asking. In `jwt` mode (deployed default) the user is the `sub` claim that API Gateway's
//! JWT authorizer verified; in `body` mode (local development, load tests) the request body names
//! the user and is trusted.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use crate::error::ApiError;
use crate::ids::UserId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Jwt,
    Body,
}

/// The verified `sub` claim, if API Gateway's JWT authorizer put one on the request.
pub fn jwt_subject(req: &Request) -> Option<&str> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.authorizer.as_ref()?.jwt.as_ref()?.claims.get("sub").map(String::as_str),
        _ => None,
    }
}

fn subject_user(req: &Request) -> Result<UserId, ApiError> {
    let sub = jwt_subject(req).ok_or(ApiError::Unauthorized)?;
    UserId::parse(sub).map_err(|_| ApiError::Unauthorized)
}

/// The buyer of a purchase request. `body_user` is the body's `userId`, if any.
pub fn purchaser(mode: AuthMode, req: &Request, body_user: Option<&str>) -> Result<UserId, ApiError> {
    match mode {
        AuthMode::Body => {
            let raw = body_user.ok_or_else(|| ApiError::invalid("the body must name the buyer: {\"userId\": \"...\"}"))?;
            UserId::parse(raw).map_err(|e| ApiError::invalid(e.to_string()))
        }
        AuthMode::Jwt => {
            let user = subject_user(req)?;
            match body_user {
                Some(other) if other != user.as_str() => {
                    Err(ApiError::Forbidden("userId in the body differs from the signed-in user".into()))
                }
                _ => Ok(user),
            }
        }
    }
}

/// May the caller see `user`'s purchase? In `jwt` mode only their own.
pub fn may_view(mode: AuthMode, req: &Request, user: &UserId) -> Result<(), ApiError> {
    match mode {
        AuthMode::Body => Ok(()),
        AuthMode::Jwt if subject_user(req)? == *user => Ok(()),
        AuthMode::Jwt => Err(ApiError::Forbidden("a user may only look up their own purchase".into())),
    }
}
