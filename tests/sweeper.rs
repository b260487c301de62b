//! The scheduled function's run ([`flash_sale::App::scheduled_run`], what `functions/sweeper`
//! calls) under failures it cannot fix: one room that cannot be drawn, one hold that cannot be
//! released. Each is reported, and nothing else waits for it: the other sales are drawn, the
//! other holds released; a hold that fails for good is set aside for an operator and skipped
//! by later runs until the operator puts it back.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use flash_sale::ScheduledReport;
use flash_sale::order::OrderStatus;
use flash_sale::sale::Sale;
use flash_sale::store::{PurchaseRecord, Store};
use flash_sale_testkit::{SaleSpec, TestApp};

const T0: i64 = 1_800_000_000_000;
const BUDGET: Duration = Duration::from_secs(60);

async fn delete(store: &Store, pk: String, sk: &str) {
    store
        .client()
        .delete_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(pk))
        .key("sk", AttributeValue::S(sk.into()))
        .send()
        .await
        .expect("delete item");
}

async fn record(app: &TestApp, sale: &Sale, user: &str) -> PurchaseRecord {
    let user = flash_sale::ids::UserId::parse(user).unwrap();
    app.store().get_purchase(&sale.id, &user).await.expect("read").expect("a record")
}

/// Runs the scheduled function until `done` holds of the stored state (the holds index may lag
/// the table), at most 10 s; returns every run's report.
async fn run_until(app: &TestApp, mut done: impl AsyncFnMut() -> bool) -> Vec<ScheduledReport> {
    let mut reports = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        reports.push(app.scheduled_run(100, BUDGET).await);
        if done().await || Instant::now() >= deadline {
            return reports;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_room_that_cannot_be_drawn_keeps_no_hold_of_another_sale_from_being_released() {
    // Arrange: a room sale due for its draw whose draw seed is gone, and a sale with an ended hold.
    let app = TestApp::fresh().await.at(T0);
    let (room, _) = SaleSpec::new().create_room(&app).await;
    delete(app.store(), flash_sale::keys::sale_pk(room.id.as_str()), "DRAW").await;
    let sale = SaleSpec::new().stock(1).holds(60).create(&app).await;
    assert_eq!(app.buy(&sale, "alice").await.0, 201);
    app.clock().advance(60_000);
    let sweeper = app.container();

    // Act
    let reports = run_until(&sweeper, async || record(&app, &sale, "alice").await.status == OrderStatus::Expired).await;

    // Assert: the draw failed and said so, and the hold went back to stock all the same.
    let first = &reports[0];
    assert_eq!(first.draws_failed, vec![room.id.to_string()], "{first:?}");
    assert!(first.drawn.is_empty() && first.errors.is_empty(), "{first:?}");
    assert_eq!(record(&app, &sale, "alice").await.status, OrderStatus::Expired, "{reports:?}");
    assert_eq!(app.stored(&sale).await.0, vec![1], "the item is back on its shard");
}

#[tokio::test]
async fn a_hold_whose_shard_is_gone_is_set_aside_and_the_other_ended_hold_is_released() {
    // Arrange: two ended holds on two shards (one item each); alice's shard item is deleted.
    let app = TestApp::fresh().await.at(T0);
    let sale = SaleSpec::new().stock(2).shards(2).holds(60).create(&app).await;
    assert_eq!(app.buy(&sale, "alice").await.0, 201);
    assert_eq!(app.buy(&sale, "bob").await.0, 201);
    let (alice, bob) = (record(&app, &sale, "alice").await, record(&app, &sale, "bob").await);
    assert_ne!(alice.shard, bob.shard, "one item per shard");
    delete(app.store(), flash_sale::keys::shard_pk(sale.id.as_str(), alice.shard), "STOCK").await;
    app.clock().advance(60_000);
    let sweeper = app.container();

    // Act
    let reports = run_until(&sweeper, async || record(&app, &sale, "bob").await.status == OrderStatus::Expired).await;

    // Assert: bob's hold is released, alice's failed for good and is set aside, with why.
    let bob_now = record(&app, &sale, "bob").await;
    assert_eq!((bob_now.status, bob_now.hold_key.as_deref()), (OrderStatus::Expired, None), "{reports:?}");
    let failed: u32 = reports.iter().map(|r| r.sweep.failed).sum();
    let set_aside: u32 = reports.iter().map(|r| r.sweep.set_aside).sum();
    assert_eq!((failed, set_aside), (1, 1), "{reports:?}");
    let alice_now = record(&app, &sale, "alice").await;
    assert_eq!(alice_now.status, OrderStatus::Reserved, "nothing was released for alice");
    let stuck_key = flash_sale::keys::stuck_holds_pk(sale.id.as_str());
    assert_eq!(alice_now.hold_key.as_deref(), Some(stuck_key.as_str()), "set aside");
    let stuck = app.store().stuck_holds(&sale.id).await.expect("stuck holds");
    assert_eq!(stuck.len(), 1, "{stuck:?}");
    assert_eq!(stuck[0].order_id.as_deref(), Some(alice.order_id.as_str()));
    assert!(stuck[0].reason.as_deref().is_some_and(|r| r.contains("missing")), "{stuck:?}");
    let bob_shard = app.stored(&sale).await.0[bob.shard as usize];
    assert_eq!(bob_shard, 1, "bob's item is back on his shard");

    // A later run does not try alice's hold again.
    let later = sweeper.container().scheduled_run(100, BUDGET).await;
    assert_eq!((later.sweep.failed, later.sweep.released), (0, 0), "{later:?}");

    // The operator puts it back: the next run tries it again (and it fails again, set aside again).
    assert!(app.store().return_stuck_hold(&sale.id, &alice.pk).await.expect("return"));
    assert!(app.store().stuck_holds(&sale.id).await.expect("stuck holds").is_empty());
    let reports = run_until(&sweeper, async || {
        record(&app, &sale, "alice").await.hold_key.as_deref() == Some(stuck_key.as_str())
    })
    .await;
    assert_eq!(reports.iter().map(|r| r.sweep.set_aside).sum::<u32>(), 1, "{reports:?}");
}

#[tokio::test]
async fn a_hold_whose_index_entry_lacks_its_attributes_keeps_no_other_hold_from_being_released() {
    // Arrange: two ended holds; alice's record loses its order id (the index entry with it).
    let app = TestApp::fresh().await.at(T0);
    let sale = SaleSpec::new().stock(2).holds(60).create(&app).await;
    assert_eq!(app.buy(&sale, "alice").await.0, 201);
    assert_eq!(app.buy(&sale, "bob").await.0, 201);
    let alice_pk = flash_sale::keys::purchase_pk(sale.id.as_str(), "alice");
    app.store()
        .client()
        .update_item()
        .table_name(app.store().table())
        .key("pk", AttributeValue::S(alice_pk.clone()))
        .key("sk", AttributeValue::S("PURCHASE".into()))
        .update_expression("REMOVE orderId")
        .send()
        .await
        .expect("spoil the record");
    app.clock().advance(60_000);
    let sweeper = app.container();

    // Act
    let reports = run_until(&sweeper, async || record(&app, &sale, "bob").await.status == OrderStatus::Expired).await;

    // Assert
    assert_eq!(record(&app, &sale, "bob").await.status, OrderStatus::Expired, "{reports:?}");
    assert_eq!(reports.iter().map(|r| r.sweep.set_aside).sum::<u32>(), 1, "{reports:?}");
    let stuck = app.store().stuck_holds(&sale.id).await.expect("stuck holds");
    assert_eq!(stuck.iter().map(|s| s.pk.as_str()).collect::<Vec<_>>(), vec![alice_pk.as_str()]);
}
