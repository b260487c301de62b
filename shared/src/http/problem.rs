//! The one mapping from errors to HTTP: status, RFC 9457 problem+json with a stable `code`, and
//! the headers that go with it. Details never carry internals; those go to the log.

use serde::Serialize;
use serde_json::json;

use super::NO_STORE;
use super::event::ApiResponse;
use crate::error::AppError;
use crate::time_fmt::rfc3339_ms;

/// Seconds a client should wait before retrying a 503.
pub(crate) const RETRY_AFTER_SECS: u32 = 1;

/// Why a request is not answered with success: a use case's refusal, or something about the
/// request itself that no use case saw.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HttpError {
    #[error(transparent)]
    App(#[from] AppError),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("a verified identity is required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("no route for this path")]
    NotFound,
    #[error("method not allowed; use {allow}")]
    MethodNotAllowed { allow: &'static str },
}

impl HttpError {
    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        Self::InvalidRequest(detail.into())
    }

    /// HTTP status and the problem's stable `code`.
    pub(crate) fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            Self::InvalidRequest(_) => (400, "invalid_request"),
            Self::Unauthorized => (401, "unauthorized"),
            Self::Forbidden(_) => (403, "forbidden"),
            Self::NotFound => (404, "not_found"),
            Self::MethodNotAllowed { .. } => (405, "method_not_allowed"),
            Self::PayloadTooLarge { .. } => (413, "payload_too_large"),
            Self::App(e) => match e {
                AppError::SaleNotStarted { .. } => (403, "sale_not_started"),
                AppError::SaleEnded => (403, "sale_ended"),
                AppError::SaleNotFound => (404, "sale_not_found"),
                AppError::PurchaseNotFound => (404, "purchase_not_found"),
                AppError::SoldOut => (409, "sold_out"),
                AppError::AlreadyPurchased(_) => (409, "already_purchased"),
                AppError::NoWaitingRoom => (404, "no_waiting_room"),
                AppError::NotInLine => (404, "not_in_line"),
                AppError::NoPublicDraw => (404, "no_public_draw"),
                AppError::EntrantPageNotFound => (404, "not_found"),
                AppError::QueueNotOpen { .. } => (403, "queue_not_open"),
                AppError::AdmissionRequired => (403, "admission_required"),
                AppError::AdmissionInvalid(_) => (403, "admission_invalid"),
                AppError::NotYetAdmitted => (403, "not_yet_admitted"),
                AppError::OrderNotFound => (404, "order_not_found"),
                AppError::HoldExpired(_) => (409, "hold_expired"),
                AppError::OrderConfirmed(_) => (409, "order_confirmed"),
                AppError::OrderCancelled(_) => (409, "order_cancelled"),
                AppError::QuantityInvalid { .. } => (409, "quantity_invalid"),
                AppError::VariantUnknown { .. } => (409, "variant_unknown"),
                AppError::VariantSoldOut { .. } => (409, "variant_sold_out"),
                AppError::NotEnoughStock { .. } => (409, "not_enough_stock"),
                AppError::LimitReached { .. } => (409, "limit_reached"),
                AppError::IdempotencyKeyReused(_) => (422, "idempotency_key_reused"),
                AppError::Internal => (500, "internal_error"),
                AppError::Busy => (503, "temporarily_unavailable"),
            },
        }
    }
}

/// Every problem `code` the API can answer, with its status (the OpenAPI document lists the same).
pub const CODES: &[(u16, &str)] = &[
    (400, "invalid_request"),
    (401, "unauthorized"),
    (403, "forbidden"),
    (403, "sale_not_started"),
    (403, "sale_ended"),
    (403, "queue_not_open"),
    (403, "admission_required"),
    (403, "admission_invalid"),
    (403, "not_yet_admitted"),
    (404, "not_found"),
    (404, "sale_not_found"),
    (404, "purchase_not_found"),
    (404, "no_waiting_room"),
    (404, "no_public_draw"),
    (404, "not_in_line"),
    (404, "order_not_found"),
    (405, "method_not_allowed"),
    (409, "already_purchased"),
    (409, "sold_out"),
    (409, "hold_expired"),
    (409, "order_confirmed"),
    (409, "order_cancelled"),
    (409, "quantity_invalid"),
    (409, "variant_unknown"),
    (409, "variant_sold_out"),
    (409, "not_enough_stock"),
    (409, "limit_reached"),
    (413, "payload_too_large"),
    (422, "idempotency_key_reused"),
    (500, "internal_error"),
    (503, "temporarily_unavailable"),
];

/// The members every problem has, in the order the answer has always listed them (alphabetical,
/// as a JSON map sorts them). Serialized straight from the error: no map is built per answer.
#[derive(Serialize)]
struct Problem<'a> {
    code: &'static str,
    #[serde(serialize_with = "display")]
    detail: &'a HttpError,
    status: u16,
    title: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
}

fn display<S: serde::Serializer>(err: &&HttpError, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(err)
}

pub(crate) fn render(err: &HttpError) -> ApiResponse {
    let (status, code) = err.status_and_code();
    let title = match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Content",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    let problem = Problem { code, detail: err, status, title, kind: "about:blank" };
    let extra = match err {
        HttpError::App(AppError::AlreadyPurchased(p)) => vec![("purchase", json!(p))],
        HttpError::App(AppError::HoldExpired(p) | AppError::OrderConfirmed(p) | AppError::OrderCancelled(p)) => {
            vec![("order", json!(p))]
        }
        HttpError::App(AppError::SaleNotStarted { starts_at_ms }) => {
            vec![("startsAt", json!(rfc3339_ms(*starts_at_ms)))]
        }
        HttpError::App(AppError::QueueNotOpen { opens_at_ms }) => vec![("opensAt", json!(rfc3339_ms(*opens_at_ms)))],
        HttpError::App(AppError::Busy) => vec![("retryAfterSeconds", json!(RETRY_AFTER_SECS))],
        HttpError::App(AppError::QuantityInvalid { max }) => vec![("maxPerCustomer", json!(max))],
        HttpError::App(AppError::VariantUnknown { variants }) => vec![("variants", json!(variants))],
        HttpError::App(AppError::VariantSoldOut { available }) => vec![("available", json!(available))],
        HttpError::App(AppError::NotEnoughStock { remaining }) => vec![("remaining", json!(remaining))],
        HttpError::App(AppError::LimitReached { held, max, orders }) => {
            vec![("held", json!(held)), ("maxPerCustomer", json!(max)), ("orders", json!(orders))]
        }
        HttpError::App(AppError::IdempotencyKeyReused(p)) => vec![("purchase", json!(p))],
        _ => Vec::new(),
    };
    // The common answer (sold_out, …) in one pass; one with members of its own through a map, so
    // that every member keeps its place.
    let body = if extra.is_empty() {
        serde_json::to_string(&problem)
    } else {
        serde_json::to_value(&problem).map(|mut body| {
            for (name, value) in extra {
                body[name] = value;
            }
            body.to_string()
        })
    };
    let Ok(body) = body else {
        return ApiResponse::new(500, "application/problem+json", NO_STORE, INTERNAL.to_owned());
    };
    let mut resp = ApiResponse::new(status, "application/problem+json", NO_STORE, body);
    match err {
        HttpError::App(AppError::Busy) => {
            resp.headers.insert("retry-after", RETRY_AFTER_SECS.to_string().into());
        }
        HttpError::MethodNotAllowed { allow } => {
            resp.headers.insert("allow", (*allow).into());
        }
        _ => {}
    }
    resp
}

/// The problem of last resort, should an answer not serialize (none can: every member is text or
/// a number).
const INTERNAL: &str = r#"{"code":"internal_error","detail":"internal error","status":500,"title":"Internal Server Error","type":"about:blank"}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_problem_of_last_resort_is_the_internal_error_as_rendered() {
        let rendered: serde_json::Value = serde_json::from_str(&render(&AppError::Internal.into()).body).unwrap();
        assert_eq!(serde_json::from_str::<serde_json::Value>(INTERNAL).unwrap(), rendered);
    }

    #[test]
    fn codes_list_every_variant_once_with_its_status() {
        let samples = [
            HttpError::invalid("x"),
            HttpError::Unauthorized,
            HttpError::Forbidden("x".into()),
            HttpError::NotFound,
            HttpError::MethodNotAllowed { allow: "GET" },
            HttpError::PayloadTooLarge { limit: 1 },
            AppError::SaleNotStarted { starts_at_ms: 0 }.into(),
            AppError::SaleEnded.into(),
            AppError::SaleNotFound.into(),
            AppError::PurchaseNotFound.into(),
            AppError::SoldOut.into(),
            AppError::Internal.into(),
            AppError::Busy.into(),
            AppError::NoWaitingRoom.into(),
            AppError::NotInLine.into(),
            AppError::QueueNotOpen { opens_at_ms: 0 }.into(),
            AppError::AdmissionRequired.into(),
            AppError::AdmissionInvalid("x").into(),
            AppError::NotYetAdmitted.into(),
            AppError::OrderNotFound.into(),
            AppError::NoPublicDraw.into(),
            AppError::QuantityInvalid { max: 2 }.into(),
            AppError::VariantUnknown { variants: vec![] }.into(),
            AppError::VariantSoldOut { available: vec![] }.into(),
            AppError::NotEnoughStock { remaining: 1 }.into(),
            AppError::LimitReached { held: 2, max: 2, orders: vec![] }.into(),
        ];
        for e in &samples {
            assert!(CODES.contains(&e.status_and_code()), "{e:?} missing from CODES");
        }
        // Left out of the samples: already_purchased, hold_expired, order_confirmed, order_cancelled,
        // idempotency_key_reused.
        assert_eq!(samples.len() + 5, CODES.len());
        // A page of the entrant list not published (yet) is the generic `not_found`.
        assert_eq!(HttpError::from(AppError::EntrantPageNotFound).status_and_code(), (404, "not_found"));
    }

    #[test]
    fn a_problem_body_lists_its_members_as_a_json_map_prints_them() {
        let sold_out = render(&AppError::SoldOut.into());
        assert_eq!(
            sold_out.body,
            r#"{"code":"sold_out","detail":"the sale is sold out","status":409,"title":"Conflict","type":"about:blank"}"#
        );
        let samples: [HttpError; 4] = [
            AppError::Busy.into(),
            HttpError::MethodNotAllowed { allow: "POST" },
            AppError::LimitReached { held: 2, max: 2, orders: vec![] }.into(),
            HttpError::invalid("a \"quoted\" detail"),
        ];
        for err in &samples {
            let body = render(err).body;
            let value: serde_json::Value = serde_json::from_str(&body).expect("a problem is JSON");
            assert_eq!(body, value.to_string(), "{err:?}");
            assert_eq!(value["detail"], json!(err.to_string()), "{err:?}");
        }
    }

    #[test]
    fn busy_carries_retry_after_and_405_carries_allow() {
        let busy = render(&AppError::Busy.into());
        assert_eq!((busy.status_code, busy.header("retry-after")), (503, Some("1")));
        let wrong = render(&HttpError::MethodNotAllowed { allow: "POST" });
        assert_eq!((wrong.status_code, wrong.header("allow")), (405, Some("POST")));
    }
}
