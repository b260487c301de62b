//! Order events: the table's stream (new and old images) in, one EventBridge event per change of
//! an order's status out. The purchase and order transactions write the order record, so the
//! stream is a transactional outbox: an event exists exactly when a change committed.
//!
//! Event (`source` = [`SOURCE`], `detail-type` = `OrderReserved | OrderConfirmed | OrderCancelled |
//! OrderExpired`), `detail`:
//! `{orderId, saleId, userId, status, version, time, holdExpiresAt?, purchasedAt, reason?}`.
//! A live order deleted by `reset-sale` (a REMOVE record) is an `OrderCancelled` with reason
//! `reset` and the next version.
//!
//! Order: the records of a batch are published in stream order, at most one event of an order per
//! `PutEvents` call, and publishing stops at the first entry that fails for good: the answer names
//! that record and the event source mapping sends the batch again from it. So an order's events
//! leave in version order. Delivery is at least once (records after the failed one may have been
//! published already and come again), and a record that keeps failing goes to the dead-letter
//! queue after the mapping's retries, after which later events of its order may arrive without
//! it. `(orderId, version)` identifies an event; consumers order by `version` and deduplicate on
//! `(orderId, version)`.

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use flash_sale::order::OrderStatus;
use flash_sale::time_fmt::rfc3339_ms;
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

/// The `source` of every order event.
pub const SOURCE: &str = "flash-sale.orders";
/// The `reason` of the `OrderCancelled` event of an order deleted by `reset-sale`.
pub const RESET_REASON: &str = "reset";
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
    /// The variant bought (`default` for a sale without variants) and how many items.
    pub variant_id: String,
    pub quantity: u32,
    /// When the status changed (RFC 3339 UTC).
    pub time: String,
    pub purchased_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_expires_at: Option<String>,
    /// Why the order ended, when the record does not say it by its status alone (`reset`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl OrderEvent {
    pub fn detail_type(&self) -> &'static str {
        self.status.event_type()
    }
}

/// One stream record: its sequence number (the batch item identifier) and what it carries: an
/// event, nothing (another item, or a change that is not a new status), or why it is unreadable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub sequence_number: String,
    pub event: Result<Option<OrderEvent>, String>,
}

fn attr<'a>(image: &'a Value, name: &str, kind: &str) -> Option<&'a str> {
    image.get(name)?.get(kind)?.as_str()
}

fn is_purchase(image: &Value) -> bool {
    attr(image, "sk", "S") == Some(flash_sale::keys::PURCHASE_SK)
}

/// An order record image: `None` for other items, an error for an order record it cannot read.
fn order_of(image: &Value) -> Result<Option<(String, OrderStatus, u32)>, String> {
    if !is_purchase(image) {
        return Ok(None);
    }
    let order_id = attr(image, "orderId", "S").ok_or("order record without orderId")?.to_owned();
    let status = match image.get("status") {
        None => OrderStatus::Confirmed,
        Some(s) => s
            .get("S")
            .and_then(Value::as_str)
            .and_then(OrderStatus::parse)
            .ok_or_else(|| format!("order {order_id}: status {s}"))?,
    };
    let version = match image.get("version") {
        None => 1,
        Some(v) => v
            .get("N")
            .and_then(Value::as_str)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("order {order_id}: version {v}"))?,
    };
    Ok(Some((order_id, status, version)))
}

/// The order event a stream record announces, read strictly: `Ok(None)` for other items (sales,
/// shards, the line) and for changes of an order that are not a new order or version; an error
/// for an order record that does not read (a missing or malformed attribute).
///
/// A record with a new image announces its order if the order or its version is new. A record
/// with only an old image (REMOVE) of a live order announces that order's cancellation, reason
/// `reset`: only `reset-sale` deletes order records.
pub fn read_record(record: &Value) -> Result<Option<OrderEvent>, String> {
    let images = record.get("dynamodb").filter(|d| d.is_object()).ok_or("record without its dynamodb object")?;
    let keyed_purchase = images.get("Keys").is_some_and(is_purchase);
    let (new, old) = (images.get("NewImage"), images.get("OldImage"));
    let millis = |image: &Value, name: &str| -> Result<Option<i64>, String> {
        match image.get(name) {
            None => Ok(None),
            Some(v) => {
                v.get("N").and_then(Value::as_str).and_then(|v| v.parse().ok()).map(Some).ok_or(format!("{name} {v}"))
            }
        }
    };
    let text = |image: &Value, name: &str| attr(image, name, "S").map(str::to_owned).ok_or(format!("no {name}"));
    // Written only for sales with variants or quantities: absent, the one default variant and one item.
    let variant = |image: &Value| attr(image, "variantId", "S").unwrap_or(flash_sale::sale::DEFAULT_VARIANT).to_owned();
    let quantity = |image: &Value| -> Result<u32, String> {
        match image.get("quantity") {
            None => Ok(1),
            Some(v) => v
                .get("N")
                .and_then(Value::as_str)
                .and_then(|n| n.parse().ok())
                .filter(|q| *q >= 1)
                .ok_or(format!("quantity {v}")),
        }
    };
    match (new, old) {
        (Some(new), old) => {
            let Some((order_id, status, version)) = order_of(new)? else { return Ok(None) };
            // An unreadable old image does not hide the new one: at worst an event comes twice.
            if let Some(Ok(Some((old_order, _, old_version)))) = old.map(order_of)
                && old_order == order_id
                && old_version == version
            {
                return Ok(None);
            }
            let context = |e: String| format!("order {order_id}: {e}");
            let purchased_at =
                millis(new, "purchasedAt").map_err(context)?.ok_or_else(|| context("no purchasedAt".into()))?;
            Ok(Some(OrderEvent {
                sale_id: text(new, "saleId").map_err(context)?,
                user_id: text(new, "userId").map_err(context)?,
                status,
                version,
                variant_id: variant(new),
                quantity: quantity(new).map_err(context)?,
                time: rfc3339_ms(millis(new, "updatedAt").map_err(context)?.unwrap_or(purchased_at)),
                purchased_at: rfc3339_ms(purchased_at),
                hold_expires_at: millis(new, "holdExpiresAt").map_err(context)?.map(rfc3339_ms),
                reason: None,
                order_id,
            }))
        }
        (None, Some(old)) => {
            let Some((order_id, status, version)) = order_of(old)? else { return Ok(None) };
            if !status.is_live() {
                return Ok(None);
            }
            let context = |e: String| format!("order {order_id}: {e}");
            let purchased_at =
                millis(old, "purchasedAt").map_err(context)?.ok_or_else(|| context("no purchasedAt".into()))?;
            // When the record was deleted: the stream's approximate time (seconds), else the
            // order's last change.
            let removed_at = images
                .get("ApproximateCreationDateTime")
                .and_then(Value::as_f64)
                .map(|s| (s * 1000.0) as i64)
                .or(millis(old, "updatedAt").map_err(context)?)
                .unwrap_or(purchased_at);
            Ok(Some(OrderEvent {
                sale_id: text(old, "saleId").map_err(context)?,
                user_id: text(old, "userId").map_err(context)?,
                status: OrderStatus::Cancelled,
                version: version.saturating_add(1),
                variant_id: variant(old),
                quantity: quantity(old).map_err(context)?,
                time: rfc3339_ms(removed_at),
                purchased_at: rfc3339_ms(purchased_at),
                hold_expires_at: None,
                reason: Some(RESET_REASON.to_owned()),
                order_id,
            }))
        }
        (None, None) if keyed_purchase => Err("order record without images".into()),
        (None, None) => Ok(None),
    }
}

/// [`read_record`], an unreadable record as no event.
pub fn event_of(record: &Value) -> Option<OrderEvent> {
    read_record(record).ok().flatten()
}

/// The records of a DynamoDB stream event, in order. A record that cannot be read is logged (error)
/// and counted (`Errors`, kind `event_record`): one that has no sequence number (it cannot be
/// reported back) is skipped here, one that has is returned with its error and skipped by
/// [`publish`] (reading it again would not help); neither hides the other records of the batch.
pub fn changes(event: &Value) -> Vec<Change> {
    let records = event.get("Records").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        let Some(seq) = r.get("dynamodb").and_then(|d| d.get("SequenceNumber")).and_then(Value::as_str) else {
            unreadable(None, "stream record without a sequence number");
            continue;
        };
        let event = read_record(r);
        if let Err(why) = &event {
            unreadable(Some(seq), why);
        }
        out.push(Change { sequence_number: seq.to_owned(), event });
    }
    out
}

fn unreadable(sequence_number: Option<&str>, why: &str) {
    tracing::error!(sequence_number, reason = %why, "stream record not readable; no event published for it");
    flash_sale::telemetry::record_error("event_record");
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

/// How a batch went, beyond the answer: for the log, the metrics and the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub response: BatchResponse,
    /// Events the bus accepted in this invocation.
    pub published: usize,
    /// Records that could not be read (logged and counted by [`changes`]).
    pub unreadable: usize,
    /// Entries that failed all their attempts (the batch went back from the first of them).
    pub undelivered: usize,
    /// Publishing stopped at the deadline (the batch went back from the first unpublished record).
    pub out_of_time: bool,
}

/// Publishes the order events of one stream batch; see [`publish_until`]. No deadline.
pub async fn publish(bus: &Bus, event: &Value) -> BatchResponse {
    publish_until(bus, event, None).await.response
}

/// Whether a `PutEvents` entry error is worth another call (throttling, the bus's own failures);
/// any other (validation, permissions) fails the same way every time.
fn retryable(code: &str) -> bool {
    matches!(code, "InternalFailure" | "InternalException" | "ThrottlingException" | "ServiceUnavailable")
}

/// Publishes the order events of one stream batch, in stream order, at most one event of an order
/// per `PutEvents` call. An entry is tried up to three times (once when the bus rejects it for a
/// reason that does not pass); if it still fails, publishing stops there: the answer names its
/// record (`ReportBatchItemFailures`), nothing after it is sent, and the failure is logged and
/// counted (`Errors`, kind `event_delivery`). The event source mapping sends the batch again
/// from that record, and after its retries sends it to the dead-letter queue.
///
/// `deadline` (the invocation's, less a margin): no call starts or runs past it; what is not
/// published by then is the batch item failure, so the function answers instead of timing out.
pub async fn publish_until(bus: &Bus, event: &Value, deadline: Option<Instant>) -> Outcome {
    let changes = changes(event);
    let mut outcome = Outcome { unreadable: changes.iter().filter(|c| c.event.is_err()).count(), ..Outcome::default() };
    let mut pending: Vec<(usize, &str, PutEventsRequestEntry)> = Vec::new();
    for (i, change) in changes.iter().enumerate() {
        if let Ok(Some(e)) = &change.event {
            let detail = serde_json::to_string(e).unwrap_or_default();
            let entry = PutEventsRequestEntry::builder()
                .event_bus_name(&bus.name)
                .source(SOURCE)
                .detail_type(e.detail_type())
                .detail(detail)
                .build();
            pending.push((i, e.order_id.as_str(), entry));
        }
    }
    let mut next = 0;
    let mut failed_from: Option<usize> = None;
    while next < pending.len() {
        // The next call: up to ten entries in stream order, stopping before an order's second
        // event (the bus does not keep the order of the entries of one call).
        let mut orders = HashSet::new();
        let mut todo: Vec<(usize, PutEventsRequestEntry)> = Vec::new();
        while let Some((i, order, entry)) = pending.get(next)
            && todo.len() < PUT_BATCH
            && orders.insert(*order)
        {
            todo.push((*i, entry.clone()));
            next += 1;
        }
        let sent = todo.len();
        let left = put(bus, todo, deadline, &mut outcome).await;
        outcome.published += sent - left.len();
        if let Some(first) = left.first() {
            failed_from = Some(*first);
            break;
        }
    }
    if let Some(i) = failed_from {
        let seq = changes[i].sequence_number.clone();
        if outcome.out_of_time {
            tracing::warn!(failed_from = %seq, "deadline reached; batch returned from the first unpublished record");
        } else {
            tracing::error!(failed_from = %seq, "order event not published; batch returned from its record");
            flash_sale::telemetry::record_error("event_delivery");
        }
        outcome.response = BatchResponse { batch_item_failures: vec![ItemFailure { item_identifier: seq }] };
    }
    outcome
}

/// One `PutEvents` call's entries, with retries: the change indexes of the entries not published.
async fn put(
    bus: &Bus,
    mut todo: Vec<(usize, PutEventsRequestEntry)>,
    deadline: Option<Instant>,
    outcome: &mut Outcome,
) -> Vec<usize> {
    let mut attempt = 0;
    loop {
        // No call starts at or past the deadline.
        let pause = if attempt > 0 { Duration::from_millis(50 << attempt) } else { Duration::ZERO };
        if deadline.is_some_and(|d| Instant::now() + pause >= d) {
            outcome.out_of_time = true;
            return todo.into_iter().map(|(i, _)| i).collect();
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        attempt += 1;
        let call = bus.client.put_events().set_entries(Some(todo.iter().map(|(_, e)| e.clone()).collect())).send();
        let sent = match deadline {
            None => Some(call.await),
            Some(d) => tokio::time::timeout_at(d, call).await.ok(),
        };
        let Some(sent) = sent else {
            outcome.out_of_time = true;
            return todo.into_iter().map(|(i, _)| i).collect();
        };
        let mut for_good = false;
        todo = match sent {
            // Results come back in entry order; an entry with an error code was not published.
            Ok(out) => {
                let results = out.entries();
                let mut left = Vec::new();
                for (k, x) in todo.into_iter().enumerate() {
                    match results.get(k).map(|r| r.error_code()) {
                        Some(None) => {}
                        Some(Some(code)) => {
                            let message = results[k].error_message().unwrap_or_default();
                            tracing::warn!(code, message, attempt, "PutEvents entry rejected");
                            for_good |= !retryable(code) && left.is_empty();
                            left.push(x);
                        }
                        None => left.push(x),
                    }
                }
                left
            }
            Err(e) => {
                tracing::warn!(error = %aws_sdk_eventbridge::error::DisplayErrorContext(&e), attempt, "PutEvents failed");
                todo
            }
        };
        if todo.is_empty() || for_good || attempt >= PUT_ATTEMPTS {
            outcome.undelivered = todo.len();
            return todo.into_iter().map(|(i, _)| i).collect();
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
        // The deletion of a live order (a reset): its cancellation, reason reset, next version.
        let e = event_of(&record("6", Some(confirmed), None)).unwrap();
        assert_eq!((e.detail_type(), e.version, e.reason.as_deref()), ("OrderCancelled", 3, Some("reset")));
        assert_eq!(serde_json::to_value(&e).unwrap()["reason"], "reset");
        // The deletion of an ended order, other items and nonsense announce nothing.
        assert_eq!(event_of(&record("7", Some(image("E", Some("expired"), Some(2))), None)), None);
        let shard = json!({"pk": {"S": "SALE#s#STOCK#0"}, "sk": {"S": "STOCK"}, "remaining": {"N": "3"}});
        assert_eq!(read_record(&record("7", None, Some(shard))), Ok(None));
        assert!(read_record(&record("8", None, Some(image("D", Some("paid"), Some(1))))).is_err());
        assert!(read_record(&json!({"dynamodb": 5})).is_err());
        assert_eq!(
            serde_json::to_value(event_of(&record("9", None, Some(reserved))).unwrap()).unwrap().get("reason"),
            None
        );
    }

    #[test]
    fn a_malformed_attribute_makes_its_record_unreadable_and_hides_no_other_record() {
        let mut bad_version = image("B", Some("reserved"), None);
        bad_version["version"] = json!({"S": "2"});
        let mut no_user = image("C", Some("reserved"), Some(1));
        no_user.as_object_mut().unwrap().remove("userId");
        let mut bad_time = image("D", Some("reserved"), Some(1));
        bad_time["purchasedAt"] = json!({"N": "soon"});
        let batch = json!({"Records": [
            record("1", None, Some(image("A", Some("reserved"), Some(1)))),
            record("2", None, Some(bad_version)),
            record("3", None, Some(no_user)),
            {"dynamodb": {"Keys": {"pk": {"S": "SALE#s#USER#x"}, "sk": {"S": "PURCHASE"}}, "SequenceNumber": "4"}},
            record("5", None, Some(bad_time)),
            {"eventName": "MODIFY"},
            record("6", None, Some(image("F", Some("confirmed"), Some(2)))),
        ]});
        let c = changes(&batch);
        let seqs: Vec<&str> = c.iter().map(|c| c.sequence_number.as_str()).collect();
        assert_eq!(seqs, ["1", "2", "3", "4", "5", "6"], "the record without a sequence number is skipped");
        let orders: Vec<Option<&str>> =
            c.iter().map(|c| c.event.as_ref().ok().and_then(|e| e.as_ref()).map(|e| e.order_id.as_str())).collect();
        assert_eq!(orders, [Some("A"), None, None, None, None, Some("F")]);
        assert_eq!(c.iter().filter(|c| c.event.is_err()).count(), 4, "{c:#?}");
    }

    /// Counts `Errors` by `kind`: a local recorder, so tests in parallel do not mix their counts.
    #[derive(Default)]
    struct Errors(std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>);

    struct Kind(String, std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>);

    impl metrics::CounterFn for Kind {
        fn increment(&self, value: u64) {
            *self.1.lock().unwrap().entry(self.0.clone()).or_default() += value;
        }
        fn absolute(&self, _: u64) {}
    }

    impl metrics::Recorder for Errors {
        fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
        fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
        fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
        fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
            if key.name() != "Errors" {
                return metrics::Counter::noop();
            }
            let kind = key.labels().find(|l| l.key() == "kind").map(|l| l.value().to_owned()).unwrap_or_default();
            metrics::Counter::from_arc(std::sync::Arc::new(Kind(kind, self.0.clone())))
        }
        fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::noop()
        }
        fn register_histogram(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
            metrics::Histogram::noop()
        }
    }

    impl Errors {
        fn counts(&self) -> Vec<(String, u64)> {
            self.0.lock().unwrap().iter().map(|(k, v)| (k.clone(), *v)).collect()
        }
    }

    #[test]
    fn unreadable_records_and_undelivered_events_are_counted_as_errors() {
        let errors = Errors::default();
        let mut bad = image("B", Some("reserved"), Some(1));
        bad["saleId"] = json!({"N": "7"});
        let batch = json!({"Records": [
            record("1", None, Some(bad)),
            {"dynamodb": {}},
            record("2", None, Some(image("A", Some("reserved"), Some(1)))),
        ]});
        metrics::with_local_recorder(&errors, || changes(&batch));
        assert_eq!(errors.counts(), [("event_record".to_owned(), 2)]);

        // A bus nobody answers on (a closed loopback port), without the SDK's own retries: the
        // event fails its three calls, and the batch goes back from its record, counted once.
        let config = aws_sdk_eventbridge::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("local", "local", None, None, "test"))
            .endpoint_url("http://127.0.0.1:1")
            .retry_config(aws_sdk_eventbridge::config::retry::RetryConfig::disabled())
            .build();
        let bus = Bus { client: Client::from_conf(config), name: "b".into() };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let errors = Errors::default();
        let outcome = metrics::with_local_recorder(&errors, || rt.block_on(publish_until(&bus, &batch, None)));
        assert_eq!((outcome.unreadable, outcome.undelivered, outcome.published, outcome.out_of_time), (1, 1, 0, false));
        assert_eq!(outcome.response.batch_item_failures, [ItemFailure { item_identifier: "2".into() }]);
        assert_eq!(errors.counts(), [("event_delivery".to_owned(), 1), ("event_record".to_owned(), 2)]);
    }

    #[test]
    fn any_event_shape_reads_without_a_panic() {
        for e in [json!(null), json!({}), json!({"Records": 3}), json!({"Records": [1, "x", {"dynamodb": []}]})] {
            assert!(changes(&e).is_empty());
        }
        let c = changes(&json!({"Records": [{"dynamodb": {"SequenceNumber": "9"}}]}));
        assert_eq!(c, vec![Change { sequence_number: "9".into(), event: Ok(None) }]);
    }
}
