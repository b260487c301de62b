//! The requests the handlers get for each route, as API Gateway sends them (see [`crate::request`]).
//! `claims` stands for a verified JWT (`AUTH_MODE=jwt`).

use flash_sale::http::ApiRequest;
use serde_json::Value;

use crate::{TestBody, request};

/// `GET path` without a body.
pub fn get(path: &str, params: &[(&str, &str)]) -> ApiRequest {
    request("GET", path, params, TestBody::None, None)
}

/// `POST /sales/{sale}/purchases` with this body.
pub fn purchase(sale: &str, body: &str) -> ApiRequest {
    request("POST", &format!("/sales/{sale}/purchases"), &[("saleId", sale)], TestBody::Text(body), None)
}

/// A purchase by `user` (named in the body), with an `Idempotency-Key` header if `key` is given.
pub fn purchase_keyed(sale: &str, user: &str, key: Option<&str>) -> ApiRequest {
    let path = format!("/sales/{sale}/purchases");
    let mut event =
        crate::event_json("POST", &path, &[("saleId", sale)], TestBody::Text(&crate::user_body(user)), None);
    if let Some(key) = key {
        event["headers"]["idempotency-key"] = serde_json::json!(key);
    }
    crate::request_from(&event)
}

/// `GET /sales/{sale}`.
pub fn status(sale: &str) -> ApiRequest {
    get(&format!("/sales/{sale}"), &[("saleId", sale)])
}

/// `{method} /sales/{sale}/purchases/{user}` (GET looks up, DELETE cancels).
pub fn lookup(method: &str, sale: &str, user: &str, claims: Option<Value>) -> ApiRequest {
    let path = format!("/sales/{sale}/purchases/{user}");
    request(method, &path, &[("saleId", sale), ("userId", user)], TestBody::None, claims)
}

/// `POST /sales/{sale}/queue` with this body.
pub fn join(sale: &str, body: &str, claims: Option<Value>) -> ApiRequest {
    request("POST", &format!("/sales/{sale}/queue"), &[("saleId", sale)], TestBody::Text(body), claims)
}

/// `GET /sales/{sale}/queue/{user}`.
pub fn position(sale: &str, user: &str, claims: Option<Value>) -> ApiRequest {
    let path = format!("/sales/{sale}/queue/{user}");
    request("GET", &path, &[("saleId", sale), ("userId", user)], TestBody::None, claims)
}

/// `{method} /sales/{sale}/orders/{order}/confirm`.
pub fn confirm(method: &str, sale: &str, order: &str, body: TestBody<'_>) -> ApiRequest {
    let path = format!("/sales/{sale}/orders/{order}/confirm");
    request(method, &path, &[("saleId", sale), ("orderId", order)], body, None)
}
