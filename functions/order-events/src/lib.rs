//! Order events: the table's stream (new and old images) in, one EventBridge event per change of
//! an order's status out. The purchase and order transactions write the order record, so the
//! stream is a transactional outbox: an event exists exactly when a change committed.
//!
//! Event (`source` = [`SOURCE`], `detail-type` = `OrderReserved | OrderConfirmed | OrderCancelled |
//! OrderExpired`), `detail`:
//! `{orderId, saleId, userId, status, version, time, holdExpiresAt?, purchasedAt}`.
//! Delivery is at least once: a batch that fails part-way is sent again from its first failed
//! record, so an event may arrive twice. `(orderId, version)` identifies an event; consumers
//! deduplicate on it.

use std::time::Duration;

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use flash_sale::order::OrderStatus;
use flash_sale::time_fmt::rfc3339_ms;
use serde::Serialize;
use serde_json::Value;

/// The `source` of every order event.
pub const SOURCE: &str = "flash-sale.orders";
/// PutEvents takes at most 10 entries per call.
const PUT_BATCH: usize = 10;
/// Calls per entry before its record is reported as failed (the event source mapping then retries
/// the batch from it, and after its own retries sends it to the dead-letter queue).
const PUT_ATTEMPTS: u32 = 3;

/// What an order event says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderEvent {
    pub order_id: String,
    pub sale_id: String,
    pub user_id: String,
    pub status: OrderStatus,
    pub version: u32,
    /// When the status changed (RFC 3339 UTC).
    pub time: String,
    pub purchased_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_expires_at: Option<String>,
}

impl OrderEvent {
    pub fn detail_type(&self) -> &'static str {
        self.status.event_type()
    }
}

/// One stream record: its sequence number (the batch item identifier) and the event it carries,
/// if it carries one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub sequence_number: String,
    pub event: Option<OrderEvent>,
}

fn attr<'a>(image: &'a Value, name: &str, kind: &str) -> Option<&'a str> {
    image.get(name)?.get(kind)?.as_str()
}

fn order_of(image: &Value) -> Option<(String, OrderStatus, u32)> {
    if attr(image, "sk", "S")? != flash_sale::keys::PURCHASE_SK {
        return None;
    }
    let order_id = attr(image, "orderId", "S")?.to_owned();
    let status = match attr(image, "status", "S") {
        None => OrderStatus::Confirmed,
        Some(s) => OrderStatus::parse(s)?,
    };
    let version = attr(image, "version", "N").map_or(Some(1), |v| v.parse().ok())?;
    Some((order_id, status, version))
}

/// The order event a stream record announces: a purchase record whose order or version is new.
/// Other items (sales, shards, the line) and unreadable records announce nothing.
pub fn event_of(record: &Value) -> Option<OrderEvent> {
    let images = record.get("dynamodb")?;
    let new = images.get("NewImage")?;
    let (order_id, status, version) = order_of(new)?;
    if let Some(old) = images.get("OldImage").and_then(order_of)
        && old.0 == order_id
        && old.2 == version
    {
        return None;
    }
    let millis = |name: &str| attr(new, name, "N").and_then(|v| v.parse::<i64>().ok());
    let purchased_at = millis("purchasedAt")?;
    Some(OrderEvent {
        order_id,
        sale_id: attr(new, "saleId", "S")?.to_owned(),
        user_id: attr(new, "userId", "S")?.to_owned(),
        status,
        version,
        time: rfc3339_ms(millis("updatedAt").unwrap_or(purchased_at)),
        purchased_at: rfc3339_ms(purchased_at),
        hold_expires_at: millis("holdExpiresAt").map(rfc3339_ms),
    })
}

/// The records of a DynamoDB stream event, in order. A record without a sequence number cannot be
/// reported back and is skipped with a warning.
pub fn changes(event: &Value) -> Vec<Change> {
    let records = event.get("Records").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    records
        .iter()
        .filter_map(|r| {
            let Some(seq) = r.get("dynamodb").and_then(|d| d.get("SequenceNumber")).and_then(Value::as_str) else {
                tracing::warn!("stream record without a sequence number; skipped");
                return None;
            };
            Some(Change { sequence_number: seq.to_owned(), event: event_of(r) })
        })
        .collect()
}

/// Where the events go.
#[derive(Debug, Clone)]
pub struct Bus {
    pub client: Client,
    pub name: String,
}

impl Bus {
    /// From the environment: `EVENT_BUS_NAME`; `EVENTBRIDGE_ENDPOINT` (loopback only) for a local
    /// stand-in, else the Lambda environment's credentials and region.
    pub fn from_env() -> Result<Self, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let name = var("EVENT_BUS_NAME").ok_or("configuration: EVENT_BUS_NAME must be set")?;
        let credentials =
            |key: &str, secret: &str, token: Option<String>| Credentials::new(key, secret, token, None, "environment");
        let builder =
            aws_sdk_eventbridge::Config::builder().behavior_version(BehaviorVersion::latest()).timeout_config(
                aws_sdk_eventbridge::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_attempt_timeout(Duration::from_secs(5))
                    .build(),
            );
        let config = match var("EVENTBRIDGE_ENDPOINT") {
            Some(endpoint) => {
                flash_sale::aws::require_loopback(&endpoint).map_err(|e| format!("EVENTBRIDGE_ENDPOINT {e}"))?;
                builder
                    .endpoint_url(endpoint)
                    .region(Region::new(var("AWS_REGION").unwrap_or_else(|| "us-east-1".into())))
                    .credentials_provider(credentials("local", "local", None))
            }
            None => {
                let need = |k: &str| var(k).ok_or(format!("{k} is not set (Lambda sets it for every function)"));
                builder.region(Region::new(need("AWS_REGION")?)).credentials_provider(credentials(
                    &need("AWS_ACCESS_KEY_ID")?,
                    &need("AWS_SECRET_ACCESS_KEY")?,
                    var("AWS_SESSION_TOKEN"),
                ))
            }
        };
        Ok(Self { client: Client::from_conf(config.build()), name })
    }
}

/// What the handler answers: the records to send again (partial batch response).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    pub batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemFailure {
    pub item_identifier: String,
}

/// Publishes the order events of one stream batch. Each entry is tried up to three times; if one
/// still fails, the answer names the first record not (fully) published, and the event source
/// mapping sends the batch again from there (records after it may be published twice).
pub async fn publish(bus: &Bus, event: &Value) -> BatchResponse {
    let changes = changes(event);
    let mut pending: Vec<(usize, PutEventsRequestEntry)> = Vec::new();
    for (i, change) in changes.iter().enumerate() {
        if let Some(e) = &change.event {
            let detail = serde_json::to_string(e).unwrap_or_default();
            let entry = PutEventsRequestEntry::builder()
                .event_bus_name(&bus.name)
                .source(SOURCE)
                .detail_type(e.detail_type())
                .detail(detail)
                .build();
            pending.push((i, entry));
        }
    }
    let mut first_failed: Option<usize> = None;
    for chunk in pending.chunks(PUT_BATCH) {
        let mut todo: Vec<(usize, PutEventsRequestEntry)> = chunk.to_vec();
        for attempt in 0..PUT_ATTEMPTS {
            if todo.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
            let sent =
                bus.client.put_events().set_entries(Some(todo.iter().map(|(_, e)| e.clone()).collect())).send().await;
            todo = match sent {
                // Results come back in entry order; an entry with an error code was not published.
                Ok(out) => {
                    let results = out.entries();
                    todo.into_iter()
                        .enumerate()
                        .filter(|(k, _)| results.get(*k).is_none_or(|r| r.error_code().is_some()))
                        .map(|(_, x)| x)
                        .collect()
                }
                Err(e) => {
                    tracing::warn!(error = %aws_sdk_eventbridge::error::DisplayErrorContext(&e), "PutEvents failed");
                    todo
                }
            };
        }
        if let Some((i, _)) = todo.first() {
            first_failed = Some(first_failed.map_or(*i, |f| f.min(*i)));
        }
    }
    match first_failed {
        None => BatchResponse::default(),
        Some(i) => {
            tracing::error!(failed_from = %changes[i].sequence_number, "order events not published; batch returned");
            BatchResponse {
                batch_item_failures: vec![ItemFailure { item_identifier: changes[i].sequence_number.clone() }],
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn image(order: &str, status: Option<&str>, version: Option<u32>) -> Value {
        let mut img = json!({
            "pk": {"S": "SALE#s#USER#u"}, "sk": {"S": "PURCHASE"}, "saleId": {"S": "s"}, "userId": {"S": "u"},
            "orderId": {"S": order}, "purchasedAt": {"N": "1000"}, "updatedAt": {"N": "2000"}, "shard": {"N": "0"},
        });
        if let Some(s) = status {
            img["status"] = json!({"S": s});
        }
        if let Some(v) = version {
            img["version"] = json!({"N": v.to_string()});
        }
        img
    }

    fn record(seq: &str, old: Option<Value>, new: Option<Value>) -> Value {
        let mut d = json!({"SequenceNumber": seq});
        if let Some(o) = old {
            d["OldImage"] = o;
        }
        if let Some(n) = new {
            d["NewImage"] = n;
        }
        json!({"eventName": "MODIFY", "dynamodb": d})
    }

    #[test]
    fn a_new_order_or_version_is_an_event_and_nothing_else_is() {
        let reserved = image("A", Some("reserved"), Some(1));
        let e = event_of(&record("1", None, Some(reserved.clone()))).unwrap();
        assert_eq!((e.detail_type(), e.version, e.time.as_str()), ("OrderReserved", 1, "1970-01-01T00:00:02.000Z"));
        let confirmed = image("A", Some("confirmed"), Some(2));
        let e = event_of(&record("2", Some(reserved.clone()), Some(confirmed.clone()))).unwrap();
        assert_eq!((e.detail_type(), e.version), ("OrderConfirmed", 2));
        // Same order, same version: an attribute that is not the status changed.
        assert_eq!(event_of(&record("3", Some(confirmed.clone()), Some(confirmed.clone()))), None);
        // A re-buy replaces an expired order: the new order's first event.
        let again = image("B", Some("reserved"), Some(1));
        let e = event_of(&record("4", Some(image("A", Some("expired"), Some(2))), Some(again))).unwrap();
        assert_eq!((e.order_id.as_str(), e.detail_type()), ("B", "OrderReserved"));
        // A record from before holds: confirmed, version 1.
        let e = event_of(&record("5", None, Some(image("C", None, None)))).unwrap();
        assert_eq!((e.status, e.version), (OrderStatus::Confirmed, 1));
        // Deletions, other items and nonsense announce nothing.
        assert_eq!(event_of(&record("6", Some(reserved), None)), None);
        let shard = json!({"pk": {"S": "SALE#s#STOCK#0"}, "sk": {"S": "STOCK"}, "remaining": {"N": "3"}});
        assert_eq!(event_of(&record("7", None, Some(shard))), None);
        assert_eq!(event_of(&record("8", None, Some(image("D", Some("paid"), Some(1))))), None);
        assert_eq!(event_of(&json!({"dynamodb": 5})), None);
    }

    #[test]
    fn any_event_shape_reads_without_a_panic() {
        for e in [json!(null), json!({}), json!({"Records": 3}), json!({"Records": [1, "x", {"dynamodb": []}]})] {
            assert!(changes(&e).is_empty());
        }
        let c = changes(&json!({"Records": [{"dynamodb": {"SequenceNumber": "9"}}]}));
        assert_eq!(c, vec![Change { sequence_number: "9".into(), event: None }]);
    }
}
