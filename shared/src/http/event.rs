//! The API Gateway HTTP API event (payload format 2.0) and the response it expects, read and
//! written directly.
//!
//! Only the fields the handlers use are read, each as plain JSON text: no URI, header map or
//! query map is built from client-controlled strings, so no value a client can put into a path,
//! query string, cookie, header or body can make the conversion fail. (A generic conversion to
//! an `http::Request` must parse `rawQueryString` into a URI, which rejects a raw space or `<`.)

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Instant;

use base64::Engine;
use serde::{Deserialize, Serialize};

/// One API Gateway HTTP API request as the function receives it. Every field is optional:
/// a missing one, or a `null`, reads as empty.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ApiEvent {
    pub route_key: Option<String>,
    pub raw_path: Option<String>,
    /// Header names as API Gateway sends them (lower case); values as received.
    #[serde(deserialize_with = "null_as_default")]
    pub headers: HashMap<String, String>,
    #[serde(deserialize_with = "null_as_default")]
    pub path_parameters: HashMap<String, String>,
    /// Query parameters as API Gateway decodes them (repeated names joined by commas).
    #[serde(deserialize_with = "null_as_default")]
    pub query_string_parameters: HashMap<String, String>,
    #[serde(deserialize_with = "null_as_default")]
    pub request_context: RequestContext,
    pub body: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub is_base64_encoded: bool,
}

/// `null` as the type's default: emulators and test tools send `null` for absent maps.
fn null_as_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RequestContext {
    pub request_id: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub http: HttpDescription,
    pub authorizer: Option<Authorizer>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HttpDescription {
    pub method: Option<String>,
    pub path: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Authorizer {
    pub jwt: Option<JwtAuthorizer>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct JwtAuthorizer {
    /// Claims as API Gateway's JWT authorizer passes them (strings, numbers or arrays).
    #[serde(deserialize_with = "null_as_default")]
    pub claims: HashMap<String, serde_json::Value>,
}

/// A request as the handlers see it: the event plus what the invocation adds.
#[derive(Debug, Clone, Default)]
pub struct ApiRequest {
    pub event: ApiEvent,
    /// The Lambda request id (or API Gateway's when there is none).
    pub request_id: String,
    /// When the invocation must have answered; `None` for no limit.
    pub deadline: Option<Instant>,
}

impl ApiRequest {
    pub fn new(event: ApiEvent) -> Self {
        let request_id = event.request_context.request_id.clone().unwrap_or_default();
        Self { event, request_id, deadline: None }
    }

    pub fn method(&self) -> &str {
        self.event.request_context.http.method.as_deref().unwrap_or("")
    }

    /// The request path without query string.
    pub fn path(&self) -> &str {
        let ctx = self.event.request_context.http.path.as_deref();
        ctx.or(self.event.raw_path.as_deref()).unwrap_or("")
    }

    pub fn path_param(&self, name: &str) -> Option<&str> {
        self.event.path_parameters.get(name).map(String::as_str)
    }

    /// A query parameter by name.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.event.query_string_parameters.get(name).map(String::as_str)
    }

    /// A header by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.event.headers.get(name).map(String::as_str)
    }

    /// The body's bytes: base64-decoded when the event says so. `None` for a body that claims
    /// base64 but is not.
    pub(crate) fn body_bytes(&self) -> Option<Vec<u8>> {
        match &self.event.body {
            None => Some(Vec::new()),
            Some(text) if self.event.is_base64_encoded => base64::engine::general_purpose::STANDARD.decode(text).ok(),
            Some(text) => Some(text.as_bytes().to_vec()),
        }
    }

    /// The verified `sub` claim, if API Gateway's JWT authorizer put one on the request.
    pub(crate) fn jwt_subject(&self) -> Option<&str> {
        let claims = &self.event.request_context.authorizer.as_ref()?.jwt.as_ref()?.claims;
        claims.get("sub")?.as_str()
    }
}

/// The response API Gateway expects from a payload 2.0 integration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiResponse {
    pub status_code: u16,
    /// Header values are mostly fixed text (content type, cache policy): borrowed, not copied.
    pub headers: HashMap<&'static str, Cow<'static, str>>,
    pub body: String,
    pub is_base64_encoded: bool,
    /// Set-Cookie values; none. Part of the payload 2.0 response format (the local emulator
    /// refuses a response without it).
    pub cookies: Vec<String>,
}

impl ApiResponse {
    pub fn new(status: u16, content_type: &'static str, cache_control: &'static str, body: String) -> Self {
        let headers = HashMap::from([("content-type", content_type.into()), ("cache-control", cache_control.into())]);
        Self { status_code: status, headers, body, is_base64_encoded: false, cookies: Vec::new() }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|value| value.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_has_the_fields_of_the_payload_2_0_format() {
        let text = serde_json::to_value(ApiResponse::new(201, "application/json", "no-store", "{}".into())).unwrap();
        for field in ["statusCode", "headers", "body", "isBase64Encoded", "cookies"] {
            assert!(text.get(field).is_some(), "{field} missing from {text}");
        }
    }

    #[test]
    fn nulls_and_missing_fields_read_as_empty() {
        let event: ApiEvent = serde_json::from_str(
            r#"{"headers": null, "pathParameters": null, "requestContext": {"http": null, "authorizer": {"jwt": {"claims": null}}},
                "isBase64Encoded": null, "body": null, "cookies": null, "queryStringParameters": null}"#,
        )
        .expect("a null-laden event parses");
        let req = ApiRequest::new(event);
        assert_eq!((req.method(), req.path(), req.header("x"), req.jwt_subject()), ("", "", None, None));
        assert_eq!(req.body_bytes(), Some(Vec::new()));
        let empty: ApiEvent = serde_json::from_str("{}").expect("an empty event parses");
        assert!(empty.headers.is_empty() && !empty.is_base64_encoded);
    }
}
