//! Order events end to end: real state changes on DynamoDB Local with its stream on, the stream
//! read as Lambda's event source mapping hands it over, the order-events function's handler, and
//! `FakeEventBridge` in place of the bus (EventBridge has no local emulator).

use std::collections::BTreeMap;

use std::time::Duration;

use flash_sale::sale::Sale;
use flash_sale::store::Reset;
use flash_sale_testkit::streams::{BusPlan, FakeEventBridge, stream_records};
use flash_sale_testkit::{SaleSpec, TestApp, endpoint, spoil, stored_state};
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
        // The same buyer's next order on the same record: its version continues from the ended one's.
        (id(&carol_again), vec![ev("OrderReserved", 3, "reserved")]),
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

/// The stream record announcing `(order, version)`.
fn record_of<'r>(records: &'r [Value], order: &str, version: u32) -> &'r Value {
    records
        .iter()
        .find(|r| order_events::event_of(r).is_some_and(|e| e.order_id == order && e.version == version))
        .unwrap_or_else(|| panic!("no record announces {order} v{version}"))
}

fn seq(record: &Value) -> String {
    record["dynamodb"]["SequenceNumber"].as_str().unwrap().to_owned()
}

/// Each `(orderId, version)` once, in the order of the first arrival.
fn deduplicated(accepted: &[(String, Value, String, String)]) -> BTreeMap<String, Vec<(String, u64, String)>> {
    let mut seen = std::collections::BTreeSet::new();
    let unique: Vec<_> = accepted
        .iter()
        .filter(|(_, d, _, _)| seen.insert((d["orderId"].as_str().unwrap().to_owned(), d["version"].as_u64().unwrap())))
        .cloned()
        .collect();
    by_order(&unique)
}

/// An event the bus rejects for good stops the batch there: nothing after it is sent, so an
/// order's `confirmed` never reaches the bus before its `reserved`; the batch sent again from
/// that record publishes everything, each order in version order.
#[tokio::test]
async fn publishing_stops_at_the_first_event_the_bus_rejects_so_no_order_overtakes_its_own_change() {
    let app = TestApp::fresh_with_stream().await.at(1_800_000_000_000);
    let sale = SaleSpec::new().stock(20).shards(2).holds(60).create(&app).await;
    let first = buy(&app, &sale, "first").await;
    let first_id = first["orderId"].as_str().unwrap().to_owned();
    // Ten more orders: the first order's confirmation comes eleven events after its reservation,
    // beyond one PutEvents call of ten entries.
    let mut others = Vec::new();
    for i in 0..10 {
        others.push(buy(&app, &sale, &format!("buyer-{i}")).await["orderId"].as_str().unwrap().to_owned());
    }
    assert_eq!(app.post_confirm(&sale, &first_id).await.0, 200);
    let records = stream_records(&endpoint(), app.store().table()).await;
    let event = json!({ "Records": records });

    // The bus keeps refusing the first order's reservation (a failure worth retrying).
    let bus = FakeEventBridge::start().await;
    let target = first_id.clone();
    bus.reject(Box::new(move |t, d| (t == "OrderReserved" && d["orderId"] == target).then_some("InternalFailure")));
    let outcome = order_events::publish_until(&bus.bus("b"), &event, None).await;
    let failed = seq(record_of(&records, &first_id, 1));
    assert_eq!(outcome.response.batch_item_failures.len(), 1);
    assert_eq!(outcome.response.batch_item_failures[0].item_identifier, failed);
    let accepted = by_order(&bus.accepted());
    assert!(!accepted.contains_key(&first_id), "the confirmation must not overtake the reservation: {accepted:?}");
    assert!(!accepted.contains_key(&others[9]), "nothing after the failed call is sent: {accepted:?}");
    assert_eq!(accepted.len(), 9, "the other orders of the failed call: {accepted:?}");
    assert_eq!((bus.calls(), outcome.undelivered, outcome.published), (3, 1, 9), "one call, tried three times");

    // A rejection that does not pass (the entry itself is refused): no retries of it here; the
    // event source mapping retries the batch and then sends it to the dead-letter queue.
    let strict = FakeEventBridge::start().await;
    let target = first_id.clone();
    strict.reject(Box::new(move |t, d| (t == "OrderReserved" && d["orderId"] == target).then_some("MalformedDetail")));
    let outcome = order_events::publish_until(&strict.bus("b"), &event, None).await;
    assert_eq!(outcome.response.batch_item_failures[0].item_identifier, failed);
    assert_eq!((strict.calls(), strict.accepted().len()), (1, 9));

    // The bus accepts again: the batch from the failed record on publishes everything; events of
    // the failed call come twice, and deduplicated on (orderId, version) each order is complete
    // and in version order.
    bus.reject(Box::new(|_, _| None));
    let from: Vec<Value> = records.iter().skip_while(|r| seq(r) != failed).cloned().collect();
    assert!(order_events::publish(&bus.bus("b"), &json!({ "Records": from })).await.batch_item_failures.is_empty());
    let all = deduplicated(&bus.accepted());
    assert_eq!(all.len(), 11);
    assert_eq!(all[&first_id], vec![ev("OrderReserved", 1, "reserved"), ev("OrderConfirmed", 2, "confirmed")]);
    for id in &others {
        assert_eq!(all[id], vec![ev("OrderReserved", 1, "reserved")]);
    }
}

/// A stored record that does not read (a malformed attribute) is counted and skipped; the
/// well-formed records of its batch are all published, and the batch is not sent again for it.
#[tokio::test]
async fn an_unreadable_record_hides_no_other_record_of_its_batch() {
    let app = TestApp::fresh_with_stream().await.at(1_800_000_000_000);
    let sale = SaleSpec::new().shards(2).holds(60).create(&app).await;
    let a = buy(&app, &sale, "a").await;
    let b = buy(&app, &sale, "b").await;
    spoil(app.store(), &flash_sale::keys::purchase_pk(sale.id.as_str(), "b"), flash_sale::keys::PURCHASE_SK, "version")
        .await;
    let c = buy(&app, &sale, "c").await;
    let records = stream_records(&endpoint(), app.store().table()).await;
    let bus = FakeEventBridge::start().await;
    let outcome = order_events::publish_until(&bus.bus("b"), &json!({ "Records": records }), None).await;
    assert!(outcome.response.batch_item_failures.is_empty(), "{outcome:?}");
    assert_eq!((outcome.unreadable, outcome.published), (1, 3));
    let id = |o: &Value| o["orderId"].as_str().unwrap().to_owned();
    let got = by_order(&bus.accepted());
    assert_eq!(got.keys().cloned().collect::<Vec<_>>(), {
        let mut ids = vec![id(&a), id(&b), id(&c)];
        ids.sort();
        ids
    });
}

/// Past the deadline no call starts and none runs on: what is not published is the batch item
/// failure (the function answers instead of timing out), and the batch from there publishes it.
#[tokio::test]
async fn the_deadline_ends_in_a_partial_batch_not_a_timeout() {
    let app = TestApp::fresh_with_stream().await.at(1_800_000_000_000);
    let sale = SaleSpec::new().holds(60).create(&app).await;
    let a = buy(&app, &sale, "a").await;
    let records = stream_records(&endpoint(), app.store().table()).await;
    let event = json!({ "Records": records });
    let first = seq(record_of(&records, a["orderId"].as_str().unwrap(), 1));

    // A bus slower than the time left: the call is abandoned at the deadline.
    let slow = FakeEventBridge::start().await;
    slow.set_delay(Duration::from_secs(30));
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    let outcome = order_events::publish_until(&slow.bus("b"), &event, Some(deadline)).await;
    assert!(outcome.out_of_time, "{outcome:?}");
    assert_eq!(outcome.response.batch_item_failures[0].item_identifier, first);
    assert_eq!((outcome.published, outcome.undelivered), (0, 0), "out of time is no delivery failure");

    // No time left at all: no call.
    let bus = FakeEventBridge::start().await;
    let outcome = order_events::publish_until(&bus.bus("b"), &event, Some(tokio::time::Instant::now())).await;
    assert!(outcome.out_of_time);
    assert_eq!(outcome.response.batch_item_failures[0].item_identifier, first);
    assert_eq!(bus.accepted().len(), 0);

    // Time enough: everything.
    let later = tokio::time::Instant::now() + Duration::from_secs(60);
    let outcome = order_events::publish_until(&bus.bus("b"), &event, Some(later)).await;
    assert!(outcome.response.batch_item_failures.is_empty() && !outcome.out_of_time, "{outcome:?}");
    assert_eq!(bus.accepted().len(), 1);
}

/// A reset says what it does to orders: each live order it deletes is an `OrderCancelled`
/// (reason `reset`, the next version); it refuses a sale with confirmed (paid) orders unless told
/// to include them, and then deletes nothing.
#[tokio::test]
async fn a_reset_cancels_live_orders_by_event_and_refuses_paid_ones_unless_told() {
    let app = TestApp::fresh_with_stream().await.at(1_800_000_000_000);
    let store = app.store();
    let held = SaleSpec::new().stock(5).holds(60).create(&app).await;
    let reserved = buy(&app, &held, "reserved").await;
    let dropped = buy(&app, &held, "dropped").await;
    assert_eq!(app.delete_purchase(&held, "dropped").await.0, 200);
    let paid_sale = SaleSpec::new().stock(5).holds(60).create(&app).await;
    let paid = buy(&app, &paid_sale, "paid").await;
    let paid_id = paid["orderId"].as_str().unwrap().to_owned();
    assert_eq!(app.post_confirm(&paid_sale, &paid_id).await.0, 200);
    let waiting = buy(&app, &paid_sale, "waiting").await;

    // Paid orders: refused, nothing deleted, no event.
    let before = stored_state(store, &paid_sale).await;
    assert_eq!(store.reset_sale(&paid_sale, false).await.unwrap(), Reset::Refused { confirmed: 1 });
    assert_eq!(stored_state(store, &paid_sale).await, before, "nothing deleted");

    // Reserved (and cancelled) orders: deleted; the live one is cancelled by event.
    assert_eq!(store.reset_sale(&held, false).await.unwrap(), Reset::Done { returned: 1, kept_confirmed: 0 });
    assert_eq!(stored_state(store, &held).await, (vec![5], vec![]));
    assert_eq!(
        store.reset_sale(&paid_sale, true).await.unwrap(),
        Reset::Done { returned: 2, kept_confirmed: 0 },
        "told to include paid orders"
    );
    assert_eq!(stored_state(store, &paid_sale).await, (vec![5], vec![]));

    let records = stream_records(&endpoint(), store.table()).await;
    let bus = FakeEventBridge::start().await;
    assert!(order_events::publish(&bus.bus("b"), &json!({ "Records": records })).await.batch_item_failures.is_empty());
    let accepted = bus.accepted();
    let id = |o: &Value| o["orderId"].as_str().unwrap().to_owned();
    let expected = BTreeMap::from([
        (id(&reserved), vec![ev("OrderReserved", 1, "reserved"), ev("OrderCancelled", 2, "cancelled")]),
        (id(&dropped), vec![ev("OrderReserved", 1, "reserved"), ev("OrderCancelled", 2, "cancelled")]),
        (
            paid_id.clone(),
            vec![
                ev("OrderReserved", 1, "reserved"),
                ev("OrderConfirmed", 2, "confirmed"),
                ev("OrderCancelled", 3, "cancelled"),
            ],
        ),
        (id(&waiting), vec![ev("OrderReserved", 1, "reserved"), ev("OrderCancelled", 2, "cancelled")]),
    ]);
    assert_eq!(by_order(&accepted), expected);
    let reasons: BTreeMap<String, Value> = accepted
        .iter()
        .filter(|(t, _, _, _)| t == "OrderCancelled")
        .map(|(_, d, _, _)| (d["orderId"].as_str().unwrap().to_owned(), d["reason"].clone()))
        .collect();
    let reset = json!("reset");
    assert_eq!(reasons[&id(&reserved)], reset);
    assert_eq!(reasons[&paid_id], reset);
    assert_eq!(reasons[&id(&waiting)], reset);
    assert_eq!(reasons[&id(&dropped)], Value::Null, "a buyer's own cancellation has no reason");
}

/// A sized drop with up to 2 per customer: every event says which variant and how many, from the
/// reservation to a cancel and to the `reset` of what is still live; a holdless one-variant sale's
/// events say `default` and 1.
#[tokio::test]
async fn events_carry_the_variant_and_the_quantity_of_their_order() {
    use flash_sale::sale::Variant;
    let app = TestApp::fresh_with_stream().await.at(1_800_000_000_000);
    let store = app.store().clone();
    let now = app.now();
    let variant =
        |id: &str, stock| Variant { variant_id: id.into(), label: id.to_uppercase(), sku: None, stock, shards: 1 };
    let mut sized = flash_sale_testkit::sale(&flash_sale_testkit::unique("ev"), 1, 1, now - 60_000, now + 3_600_000);
    sized.set_variants(vec![variant("eu41", 5), variant("eu42", 5)]);
    sized.max_per_customer = 2;
    sized.hold_seconds = 600;
    store.create_sale(&sized, now).await.unwrap();
    let plain = SaleSpec::new().stock(3).create(&app).await;
    let order = |user: &str, variant: &str, quantity: u32| {
        let body = json!({"userId": user, "variantId": variant, "quantity": quantity}).to_string();
        let (app, sale) = (&app, sized.id.to_string());
        async move {
            let (status, body) = app.post_purchase(&sale, &body).await;
            assert_eq!(status, 201, "{body}");
            body
        }
    };
    let two = order("ann", "eu42", 2).await;
    let one = order("ben", "eu41", 1).await;
    let (status, cancelled) = app.delete_purchase(&sized, "ben").await;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")), "{cancelled}");
    let dave = buy(&app, &plain, "dave").await;
    assert!(matches!(store.reset_sale(&sized, true).await.unwrap(), Reset::Done { .. }));

    let records = stream_records(&endpoint(), store.table()).await;
    let bus = FakeEventBridge::start().await;
    assert!(order_events::publish(&bus.bus("b"), &json!({ "Records": records })).await.batch_item_failures.is_empty());
    let said = |order: &Value| -> Vec<(String, String, u64)> {
        bus.accepted()
            .iter()
            .filter(|(_, d, _, _)| d["orderId"] == order["orderId"])
            .map(|(t, d, _, _)| {
                (t.clone(), d["variantId"].as_str().unwrap().to_owned(), d["quantity"].as_u64().unwrap())
            })
            .collect()
    };
    let ev = |t: &str, v: &str, q| (t.to_owned(), v.to_owned(), q);
    assert_eq!(said(&two), [ev("OrderReserved", "eu42", 2), ev("OrderCancelled", "eu42", 2)], "reset: the live order");
    assert_eq!(said(&one), [ev("OrderReserved", "eu41", 1), ev("OrderCancelled", "eu41", 1)]);
    assert_eq!(said(&dave), [ev("OrderConfirmed", "default", 1)]);
    let reset = bus.accepted().into_iter().rfind(|(_, d, _, _)| d["orderId"] == two["orderId"]).unwrap().1;
    assert_eq!(reset["reason"], "reset");
}
