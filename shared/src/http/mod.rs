//! API Gateway (HTTP API, payload 2.0) in, JSON out. Handlers read as parse → decide → render;
//! every failure is an [`HttpError`] and goes through [`problem::render`], the one place that
//! decides status codes.

mod event;
mod handlers;
mod identity;
mod problem;

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use event::{ApiEvent, ApiRequest, ApiResponse};
pub use handlers::{orders_function, purchase_function, queue_function, status_function, user_lookup_function};
pub use problem::CODES;
pub(crate) use problem::HttpError;

use crate::config::PathParams;
use crate::error::AppError;
use crate::ids::{SaleId, UserId};

/// Largest request body accepted (413 above it).
pub(crate) const MAX_BODY_BYTES: usize = 16 * 1024;

/// Longest `Idempotency-Key` accepted.
pub(crate) const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Longest `admissionToken` accepted. The line's tokens are far shorter (about 1,500 characters
/// for a 255-character user id).
pub(crate) const MAX_ADMISSION_TOKEN: usize = 2048;

pub(crate) const NO_STORE: &str = "no-store";

/// A JSON response with the given status and cache policy.
pub(crate) fn json<T: Serialize>(status: u16, value: &T, cache: &'static str) -> ApiResponse {
    match serde_json::to_string(value) {
        Ok(text) => ApiResponse::new(status, "application/json", cache, text),
        Err(_) => problem::render(&AppError::Internal.into()),
    }
}

/// Runs `work` until `deadline` minus `margin`; past that the answer is 503, never a timeout.
/// Whatever `work` had sent to DynamoDB may still commit: the 503 says "retry", and a retry
/// finds it (`already_purchased`, or the purchase itself with the same `Idempotency-Key`).
pub(crate) async fn within_deadline<T>(
    req: &ApiRequest,
    margin: Duration,
    work: impl Future<Output = Result<T, HttpError>>,
) -> Result<T, HttpError> {
    let Some(deadline) = req.deadline else {
        return work.await;
    };
    let stop = deadline.checked_sub(margin).unwrap_or(deadline);
    match tokio::time::timeout_at(stop.into(), work).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(requestId = %req.request_id, "time budget ran out");
            Err(AppError::Busy.into())
        }
    }
}

pub(crate) fn require_method(req: &ApiRequest, allowed: &str) -> Result<(), HttpError> {
    let method = req.method();
    if method.eq_ignore_ascii_case(allowed) || (allowed == "GET" && method.eq_ignore_ascii_case("HEAD")) {
        Ok(())
    } else {
        Err(HttpError::MethodNotAllowed { allow: if allowed == "GET" { "GET" } else { "POST" } })
    }
}

/// Which of `allowed` the request's method is (HEAD counts as GET); 405 naming them otherwise.
pub(crate) fn one_of_methods(
    req: &ApiRequest,
    allowed: &'static [&'static str],
    allow: &'static str,
) -> Result<&'static str, HttpError> {
    let method = req.method();
    allowed
        .iter()
        .find(|m| method.eq_ignore_ascii_case(m) || (**m == "GET" && method.eq_ignore_ascii_case("HEAD")))
        .copied()
        .ok_or(HttpError::MethodNotAllowed { allow })
}

/// A path parameter as the client meant it. API Gateway decodes path parameters; the local
/// emulator passes them percent-encoded ([`PathParams`]).
pub(crate) fn path_param(req: &ApiRequest, mode: PathParams, name: &str) -> Result<String, HttpError> {
    let raw = req.path_param(name).ok_or(HttpError::NotFound)?;
    match mode {
        PathParams::Decoded => Ok(raw.to_owned()),
        PathParams::PercentEncoded => percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| HttpError::invalid(format!("{name} is not UTF-8 once percent-decoded"))),
    }
}

pub(crate) fn sale_id(req: &ApiRequest, mode: PathParams) -> Result<SaleId, HttpError> {
    SaleId::parse(&path_param(req, mode, "saleId")?).map_err(|e| HttpError::invalid(e.to_string()))
}

/// The `orderId` path parameter: a ULID as the API hands them out (26 characters of Crockford
/// base32); anything else cannot name an order.
pub(crate) fn order_id_param(req: &ApiRequest, mode: PathParams) -> Result<String, HttpError> {
    let raw = path_param(req, mode, "orderId")?;
    if crate::ids::is_order_id(&raw) {
        Ok(raw)
    } else {
        Err(HttpError::invalid("orderId must be an order id as a purchase answered it (26 characters)"))
    }
}

/// The optional `orderId` query parameter: one order of the buyer's, by id.
pub(crate) fn order_id_query(req: &ApiRequest) -> Result<Option<String>, HttpError> {
    match req.query_param("orderId") {
        None => Ok(None),
        Some(raw) if crate::ids::is_order_id(raw) => Ok(Some(raw.to_owned())),
        Some(_) => Err(HttpError::invalid("orderId must be an order id as a purchase answered it (26 characters)")),
    }
}

pub(crate) fn user_id_param(req: &ApiRequest, mode: PathParams) -> Result<UserId, HttpError> {
    UserId::parse(&path_param(req, mode, "userId")?).map_err(|e| HttpError::invalid(e.to_string()))
}

/// The request's `Idempotency-Key` (IETF httpapi draft): 1–255 visible ASCII characters, sent
/// bare or as a structured-field string in double quotes.
pub(crate) fn idempotency_key(req: &ApiRequest) -> Result<Option<String>, HttpError> {
    let Some(raw) = req.header("idempotency-key") else {
        return Ok(None);
    };
    let key = raw.trim();
    let key = key.strip_prefix('"').and_then(|k| k.strip_suffix('"')).unwrap_or(key);
    let ok = !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY && key.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(Some(key.to_owned()))
    } else {
        Err(HttpError::invalid("Idempotency-Key must be 1 to 255 visible ASCII characters"))
    }
}

/// The purchase request body. Unknown fields are refused so that typos surface.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PurchaseBody {
    #[serde(default, deserialize_with = "present_string")]
    pub user_id: Option<String>,
    /// The waiting room's admission token (sales with a room only).
    #[serde(default, deserialize_with = "present_string")]
    pub admission_token: Option<String>,
    /// The variant to buy (may be left out when the sale has one).
    #[serde(default, deserialize_with = "present_string")]
    pub variant_id: Option<String>,
    /// How many items (default 1); anything but a whole number from 1 is `quantity_invalid`.
    #[serde(default)]
    pub quantity: Option<serde_json::Value>,
}

impl PurchaseBody {
    /// The quantity asked for, if it is a whole number of at least 1 (`None`: anything else).
    pub(crate) fn quantity(&self) -> Option<u32> {
        match &self.quantity {
            None => Some(1),
            Some(v) => v.as_u64().filter(|q| *q >= 1).map(|q| u32::try_from(q).unwrap_or(u32::MAX)),
        }
    }
}

/// A body field that may be left out but, when given, is a string: `null` is refused rather than
/// read as absent (the API document allows a string or nothing).
fn present_string<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    String::deserialize(de).map(Some)
}

/// Parses the purchase body: empty is allowed (JWT mode needs none), anything else must be a JSON
/// object no larger than [`MAX_BODY_BYTES`]. The Content-Type is not trusted either way:
/// `curl -d` sends form encoding for JSON text.
pub(crate) fn purchase_body(req: &ApiRequest) -> Result<PurchaseBody, HttpError> {
    let bytes = req.body_bytes().ok_or_else(|| HttpError::invalid("the body is marked base64 but is not"))?;
    if bytes.len() > MAX_BODY_BYTES {
        return Err(HttpError::PayloadTooLarge { limit: MAX_BODY_BYTES });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(PurchaseBody::default());
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| HttpError::invalid("the body is not UTF-8 text"))?;
    // serde would also read a struct from an array; only an object is a purchase body.
    if !text.trim_start().starts_with('{') {
        return Err(HttpError::invalid("the body must be a JSON object such as {\"userId\": \"alice\"}"));
    }
    // Straight into the struct: a duplicate `userId` key is refused rather than resolved.
    let body: PurchaseBody = serde_json::from_str(text).map_err(|e| {
        HttpError::invalid(format!(
            "the body must be a JSON object {{\"userId\": string, \"admissionToken\": string, \"variantId\": string, \"quantity\": integer}}: {e}"
        ))
    })?;
    // A token's shape is checked on every sale, so that what the API document promises holds
    // whether or not the sale has a waiting room; its signature only where it has one.
    if let Some(token) = &body.admission_token {
        let ok = !token.is_empty()
            && token.len() <= MAX_ADMISSION_TOKEN
            && token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(HttpError::invalid(
                "admissionToken must be 1 to 2048 characters from A-Z, a-z, 0-9, '.', '_' and '-', as the line gave it",
            ));
        }
    }
    Ok(body)
}
