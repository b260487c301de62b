//! One purchase attempt as sent and answered, and what the answer tells us.

use serde::Serialize;
use serde_json::Value;

/// What came back for one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    /// An HTTP response. `code` is the problem `code`; `order_id`/`user_id` come from a 201
    /// body, or from the existing purchase carried by a 409 `already_purchased`.
    Http {
        status: u16,
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        #[serde(rename = "orderId", skip_serializing_if = "Option::is_none")]
        order_id: Option<String>,
        #[serde(rename = "userId", skip_serializing_if = "Option::is_none")]
        user_id: Option<String>,
        /// The `Retry-After` header in seconds, when there was one.
        #[serde(rename = "retryAfterSecs", skip_serializing_if = "Option::is_none")]
        retry_after_secs: Option<u64>,
    },
    /// No complete response within the per-request timeout.
    Timeout,
    /// The connection failed or broke before a complete response.
    Transport { error: String },
}

/// What a reply means for the purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// 201: the user bought an item.
    Bought,
    /// A definite refusal (4xx): nothing was stored by this attempt.
    Refused,
    /// 5xx, a timeout or a broken connection: the purchase may or may not have committed.
    Unknown,
}

pub const ALREADY_PURCHASED: &str = "already_purchased";

impl Reply {
    /// Reads a purchase response. A body that is not JSON leaves the fields empty; the
    /// invariant checks then flag a 201 without an order id.
    pub fn from_http(status: u16, body: &[u8]) -> Self {
        let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let code = text(&json, "code");
        let purchase = if status == 201 { Some(&json) } else { json.get("purchase") };
        Reply::Http {
            status,
            code,
            order_id: purchase.and_then(|p| text(p, "orderId")),
            user_id: purchase.and_then(|p| text(p, "userId")),
            retry_after_secs: None,
        }
    }

    /// The same reply with the `Retry-After` header's value (seconds; an HTTP date or garbage
    /// counts as absent).
    pub fn with_retry_after(mut self, header: Option<&str>) -> Self {
        if let Reply::Http { retry_after_secs, .. } = &mut self {
            *retry_after_secs = header.and_then(|h| h.trim().parse().ok());
        }
        self
    }

    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Reply::Http { retry_after_secs, .. } => *retry_after_secs,
            _ => None,
        }
    }

    pub fn meaning(&self) -> Meaning {
        match self {
            Reply::Http { status: 201, .. } => Meaning::Bought,
            Reply::Http { status, .. } if *status < 500 => Meaning::Refused,
            _ => Meaning::Unknown,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Reply::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            Reply::Http { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    pub fn order_id(&self) -> Option<&str> {
        match self {
            Reply::Http { order_id, .. } => order_id.as_deref(),
            _ => None,
        }
    }

    /// The key this reply is counted under in "per status": `201`, `409`, `timeout`, `transport_error`.
    pub fn status_label(&self) -> String {
        match self {
            Reply::Http { status, .. } => status.to_string(),
            Reply::Timeout => "timeout".into(),
            Reply::Transport { .. } => "transport_error".into(),
        }
    }

    pub fn is_already_purchased(&self) -> bool {
        self.code() == Some(ALREADY_PURCHASED)
    }
}

/// One attempt. `seq` is the send order: attempts are numbered as the generator dispatches them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub seq: u32,
    pub user: String,
    /// When the attempt was due, µs after the run started (open loop only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_us: Option<u64>,
    /// When the request was handed to the connection, µs after the run started.
    pub sent_us: u64,
    /// From sending to the last byte of the response (or to the timeout / failure).
    pub latency_us: u64,
    pub reply: Reply,
}

impl Attempt {
    /// Latency including any wait for a free slot after the attempt was due (open loop): the
    /// figure that does not hide a slow server behind a slowed-down generator.
    pub fn latency_from_due_us(&self) -> u64 {
        match self.due_us {
            Some(due) => self.sent_us.saturating_sub(due) + self.latency_us,
            None => self.latency_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_201_carries_the_order_and_user() {
        let body = br#"{"saleId":"s","userId":"u1","orderId":"01J","purchasedAt":"2026-01-01T00:00:00.000Z"}"#;
        let reply = Reply::from_http(201, body);
        assert_eq!(reply.meaning(), Meaning::Bought);
        assert_eq!(reply.order_id(), Some("01J"));
        assert!(matches!(&reply, Reply::Http { user_id: Some(u), .. } if u == "u1"));
    }

    #[test]
    fn already_purchased_carries_the_existing_order() {
        let body = br#"{"type":"about:blank","status":409,"code":"already_purchased","purchase":{"userId":"u1","orderId":"01J"}}"#;
        let reply = Reply::from_http(409, body);
        assert_eq!(reply.meaning(), Meaning::Refused);
        assert!(reply.is_already_purchased());
        assert_eq!(reply.order_id(), Some("01J"));
    }

    #[test]
    fn sold_out_has_a_code_and_no_order() {
        let reply = Reply::from_http(409, br#"{"code":"sold_out","status":409}"#);
        assert_eq!(reply.code(), Some("sold_out"));
        assert_eq!(reply.order_id(), None);
        assert_eq!(reply.status_label(), "409");
    }

    #[test]
    fn server_errors_and_lost_replies_have_unknown_outcomes() {
        assert_eq!(Reply::from_http(503, br#"{"code":"temporarily_unavailable"}"#).meaning(), Meaning::Unknown);
        assert_eq!(Reply::from_http(502, b"Bad Gateway").meaning(), Meaning::Unknown);
        assert_eq!(Reply::Timeout.meaning(), Meaning::Unknown);
        assert_eq!(Reply::Transport { error: "reset".into() }.meaning(), Meaning::Unknown);
        assert_eq!(Reply::from_http(429, b"").meaning(), Meaning::Refused);
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let reply = Reply::from_http(503, br#"{"code":"temporarily_unavailable"}"#);
        assert_eq!(reply.retry_after_secs(), None);
        assert_eq!(reply.clone().with_retry_after(Some("1")).retry_after_secs(), Some(1));
        assert_eq!(reply.clone().with_retry_after(Some("Wed, 21 Oct 2026 07:28:00 GMT")).retry_after_secs(), None);
        assert_eq!(Reply::Timeout.with_retry_after(Some("1")).retry_after_secs(), None);
    }

    #[test]
    fn a_201_with_a_garbled_body_has_no_order_id() {
        let reply = Reply::from_http(201, b"not json");
        assert_eq!(reply.meaning(), Meaning::Bought);
        assert_eq!(reply.order_id(), None);
    }

    #[test]
    fn open_loop_latency_counts_the_wait_after_the_due_time() {
        let a = Attempt {
            seq: 0,
            user: "u".into(),
            due_us: Some(1_000),
            sent_us: 1_500,
            latency_us: 2_000,
            reply: Reply::Timeout,
        };
        assert_eq!(a.latency_from_due_us(), 2_500);
        assert_eq!(Attempt { due_us: None, ..a }.latency_from_due_us(), 2_000);
    }
}
