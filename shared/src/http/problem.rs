//! The one mapping from [`ApiError`] to HTTP: RFC 9457 problem+json with a stable `code`.
//! Details never carry internals; those go to the log.

use lambda_http::http::header::{ALLOW, HeaderValue, RETRY_AFTER};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde_json::json;

use super::{NO_STORE, response};
use crate::error::ApiError;

pub fn render(err: &ApiError) -> Response<Body> {
    let status = err.status();
    let title = StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
    let mut body = json!({
        "type": "about:blank",
        "title": title,
        "status": status,
        "code": err.code(),
        "detail": err.to_string(),
    });
    match err {
        ApiError::AlreadyPurchased(p) => body["purchase"] = json!(p),
        ApiError::SaleNotStarted { starts_at } => body["startsAt"] = json!(starts_at),
        ApiError::Unavailable { retry_after_secs } => body["retryAfterSeconds"] = json!(retry_after_secs),
        _ => {}
    }
    let mut resp = response(status, "application/problem+json", NO_STORE, body.to_string());
    match err {
        ApiError::Unavailable { retry_after_secs } => {
            resp.headers_mut().insert(RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        ApiError::MethodNotAllowed { allow } => {
            resp.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
        }
        _ => {}
    }
    resp
}
