//! Order events end to end: real state changes on DynamoDB Local with its stream on, the stream
//! read as Lambda's event source mapping hands it over, the order-events function's handler, and
//! `FakeEventBridge` in place of the bus (EventBridge has no local emulator).

use std::collections::BTreeMap;

use flash_sale::sale::Sale;
use flash_sale_testkit::streams::{BusPlan, FakeEventBridge, stream_records};
use flash_sale_testkit::{SaleSpec, TestApp, endpoint};
use serde_json::{Value, json};

/// A purchase that must succeed: its order.
async fn buy(app: &TestApp, sale: &Sale, user: &str) -> Value {
    let (status, body) = app.buy(sale, user).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// Events per order id: `(detail-type, version, status)` in arrival order.
fn by_order(accepted: &[(String, Value, String, String)]) -> BTreeMap<String, Vec<(String, u64, String)>> {
    let mut out: BTreeMap<String, Vec<(String, u64, String)>> = BTreeMap::new();
    for (detail_type, detail, _, _) in accepted {
        out.entry(detail["orderId"].as_str().unwrap().to_owned()).or_default().push((
            detail_type.clone(),
            detail["version"].as_u64().unwrap(),
            detail["status"].as_str().unwrap().to_owned(),
        ));
    }
    out
}

fn ev(t: &str, v: u64, s: &str) -> (String, u64, String) {
    (t.to_owned(), v, s.to_owned())
}

#[tokio::test]
async fn every_change_of_an_order_becomes_one_event_in_order() {
    let app = TestApp::fresh_with_stream().await.at(1_800_000_000_000);
    let store = app.store();
    let held = SaleSpec::new().shards(2).holds(60).create(&app).await;
    let holdless = SaleSpec::new().shards(2).create(&app).await;

    let alice = buy(&app, &held, "alice").await;
    let order = alice["orderId"].as_str().unwrap();
    assert_eq!(app.post_confirm(&held, order).await.0, 200);
    // Idempotent, also from another container: no second change, no second event.
    assert_eq!(app.container().post_confirm(&held, order).await.0, 200);
    let bob = buy(&app, &held, "bob").await;
    assert_eq!(app.delete_purchase(&held, "bob").await.0, 200);
    assert_eq!(app.container().delete_purchase(&held, "bob").await.0, 200);
    let carol = buy(&app, &held, "carol").await;
    app.clock().advance(60_000);
    let mut released = 0;
    for _ in 0..100 {
        released += app.sweep(100, std::time::Duration::from_secs(60)).await.unwrap().released;
        if released == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(released, 1);
    let carol_again = buy(&app, &held, "carol").await;
    let dave = buy(&app, &holdless, "dave").await;

    let records = stream_records(&endpoint(), store.table()).await;
    assert!(records.len() > 10, "the stream holds sales, shards and orders: {}", records.len());
    let bus = FakeEventBridge::start().await;
    // In batches of three, as an event source mapping might cut them.
    for batch in records.chunks(3) {
        let response = order_events::publish(&bus.bus("orders-bus"), &json!({ "Records": batch })).await;
        assert!(response.batch_item_failures.is_empty());
    }
    let accepted = bus.accepted();
    assert!(accepted.iter().all(|(_, _, bus, source)| bus == "orders-bus" && source == order_events::SOURCE));
    let id = |o: &Value| o["orderId"].as_str().unwrap().to_owned();
    let expected = BTreeMap::from([
        (id(&alice), vec![ev("OrderReserved", 1, "reserved"), ev("OrderConfirmed", 2, "confirmed")]),
        (id(&bob), vec![ev("OrderReserved", 1, "reserved"), ev("OrderCancelled", 2, "cancelled")]),
        (id(&carol), vec![ev("OrderReserved", 1, "reserved"), ev("OrderExpired", 2, "expired")]),
        (id(&carol_again), vec![ev("OrderReserved", 1, "reserved")]),
        (id(&dave), vec![ev("OrderConfirmed", 1, "confirmed")]),
    ]);
    assert_eq!(by_order(&accepted), expected);
    let (_, first, _, _) = &accepted[0];
    for field in ["orderId", "saleId", "userId", "status", "version", "time", "purchasedAt"] {
        assert!(!first[field].is_null(), "{field} in {first}");
    }
    assert_eq!(first["saleId"], json!(held.id.as_str()));
    assert_eq!(first["holdExpiresAt"], alice["holdExpiresAt"]);
}

#[tokio::test]
async fn a_failing_bus_is_retried_and_then_the_batch_is_returned_from_its_first_unpublished_record() {
    let app = TestApp::fresh_with_stream().await.at(1_800_000_000_000);
    let store = app.store();
    let held = SaleSpec::new().shards(2).holds(60).create(&app).await;
    for user in ["a", "b", "c"] {
        buy(&app, &held, user).await;
    }
    let records = stream_records(&endpoint(), store.table()).await;
    let event = json!({ "Records": records });
    let orders: Vec<&Value> = records.iter().filter(|r| order_events::event_of(r).is_some()).collect();
    assert_eq!(orders.len(), 3);

    // Two failed calls: the function's own retries publish everything.
    let bus = FakeEventBridge::start().await;
    bus.set_plan(BusPlan::FailCalls(2));
    assert!(order_events::publish(&bus.bus("b"), &event).await.batch_item_failures.is_empty());
    assert_eq!((bus.calls(), bus.accepted().len()), (3, 3));

    // A bus that keeps failing: the batch goes back from the first order record, which the event
    // source mapping retries and finally sends to the dead-letter queue.
    let down = FakeEventBridge::start().await;
    down.set_plan(BusPlan::FailAll);
    let response = order_events::publish(&down.bus("b"), &event).await;
    let first = orders[0]["dynamodb"]["SequenceNumber"].as_str().unwrap();
    assert_eq!(serde_json::to_value(&response).unwrap(), json!({"batchItemFailures": [{"itemIdentifier": first}]}));
    assert_eq!((down.calls(), down.accepted().len()), (3, 0), "three tries, nothing published");

    // The retried batch, from that record on, once the bus is back: every event arrives.
    down.set_plan(BusPlan::Accept);
    let from: Vec<Value> = records.iter().skip_while(|r| r["dynamodb"]["SequenceNumber"] != first).cloned().collect();
    assert!(order_events::publish(&down.bus("b"), &json!({ "Records": from })).await.batch_item_failures.is_empty());
    assert_eq!(down.accepted().len(), 3);
}
