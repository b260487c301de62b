//! API Gateway (HTTP API, payload 2.0) in, JSON out. Handlers read as parse → decide → render;
//! every failure goes through [`problem::render`].

pub mod handlers;
pub mod problem;

use lambda_http::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::ids::{SaleId, UserId};

/// Largest request body accepted (413 above it).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

pub use handlers::{purchase, status, user_lookup};

/// A JSON response with the given status and cache policy.
pub(crate) fn json<T: Serialize>(status: u16, value: &T, cache: &'static str) -> Response<Body> {
    match serde_json::to_string(value) {
        Ok(text) => response(status, "application/json", cache, text),
        Err(_) => problem::render(&ApiError::Internal),
    }
}

pub(crate) fn response(status: u16, content_type: &'static str, cache: &'static str, body: String) -> Response<Body> {
    let mut resp = Response::new(Body::Text(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    resp
}

pub(crate) const NO_STORE: &str = "no-store";

pub(crate) fn require_method(req: &Request, allowed: Method, allow: &'static str) -> Result<(), ApiError> {
    if req.method() == allowed || (allowed == Method::GET && req.method() == Method::HEAD) {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed { allow })
    }
}

pub(crate) fn path_param<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.path_parameters_ref().and_then(|p| p.first(name))
}

pub(crate) fn sale_id(req: &Request) -> Result<SaleId, ApiError> {
    let raw = path_param(req, "saleId").ok_or(ApiError::NotFound)?;
    SaleId::parse(raw).map_err(|e| ApiError::invalid(e.to_string()))
}

pub(crate) fn user_id_param(req: &Request) -> Result<UserId, ApiError> {
    let raw = path_param(req, "userId").ok_or(ApiError::NotFound)?;
    UserId::parse(raw).map_err(|e| ApiError::invalid(e.to_string()))
}

/// The purchase request body. Unknown fields are refused so that typos surface.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PurchaseBody {
    pub user_id: Option<String>,
}

/// Parses the purchase body: empty is allowed (JWT mode needs none), anything else must be a JSON
/// object no larger than [`MAX_BODY_BYTES`]. The Content-Type is not trusted either way:
/// `curl -d` sends form encoding for JSON text.
pub(crate) fn purchase_body(req: &Request) -> Result<PurchaseBody, ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge { limit: MAX_BODY_BYTES });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(PurchaseBody::default());
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ApiError::invalid("the body is not UTF-8 text"))?;
    // serde would also read a struct from an array; only an object is a purchase body.
    if !text.trim_start().starts_with('{') {
        return Err(ApiError::invalid("the body must be a JSON object such as {\"userId\": \"alice\"}"));
    }
    // Straight into the struct: a duplicate `userId` key is refused rather than resolved.
    serde_json::from_str(text).map_err(|e| {
        ApiError::invalid(format!("the body must be a JSON object {{\"userId\": string}}: {e}"))
    })
}
