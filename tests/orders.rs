//! The order lifecycle against DynamoDB Local: holds, confirmation, cancellation, expiry and the
//! sweeper, buying again, and every answer's code; then all of it racing on one sale. The buyer,
//! the payment backend and the sweeper are served by different containers (one `TestApp` each,
//! one store), as Lambda would serve them: nothing a container remembers may decide an order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, Get, TransactGetItem};
use flash_sale::config::AuthMode;
use flash_sale::order::OrderStatus;
use flash_sale::sale::Sale;
use flash_sale::store::{PurchaseRecord, Store};
use flash_sale_testkit::{Route, SaleSpec, TestApp, TestBody, req, unique};
use serde_json::{Value, json};

const HOLD_S: i64 = 300;
const T0: i64 = 1_800_000_000_000;

fn stock(v: &[i64]) -> i64 {
    v.iter().sum()
}

#[tokio::test]
async fn a_hold_is_reserved_until_the_payment_backend_confirms_it_once_or_twice() {
    let app = TestApp::fresh().await.at(T0);
    let now = app.now();
    let sale = SaleSpec::new().stock(5).shards(2).holds(HOLD_S).create(&app).await;
    let payments = app.container();

    let (status, order) = app.buy(&sale, "alice").await;
    assert_eq!((status, order["status"].as_str()), (201, Some("reserved")));
    assert_eq!(order["holdExpiresAt"], json!(flash_sale::time_fmt::rfc3339_ms(now + HOLD_S * 1_000)));
    assert_eq!(app.get_purchase(&sale, "alice").await, (200, order.clone()));
    let (left, records) = app.stored(&sale).await;
    assert_eq!((stock(&left), records[0].status, records[0].version), (4, OrderStatus::Reserved, 1));

    let id = order["orderId"].as_str().unwrap();
    let (status, confirmed) = payments.post_confirm(&sale, id).await;
    assert_eq!((status, confirmed["status"].as_str()), (200, Some("confirmed")));
    assert_eq!(confirmed["orderId"], order["orderId"]);
    let again = payments.container().post_confirm(&sale, id).await;
    assert_eq!(again, (200, confirmed.clone()), "confirming twice answers the order again");
    let (left, records) = app.stored(&sale).await;
    assert_eq!((stock(&left), records[0].status, records[0].version), (4, OrderStatus::Confirmed, 2));
    assert_eq!(records[0].hold_key, None, "a confirmed order leaves the holds index");

    let (status, body) = app.delete_purchase(&sale, "alice").await;
    assert_eq!((status, body["code"].as_str()), (409, Some("order_confirmed")));
    assert_eq!(body["order"], confirmed);
    assert_eq!(stock(&app.stored(&sale).await.0), 4, "nothing given back");
    let (status, body) = app.container().buy(&sale, "alice").await;
    assert_eq!((status, body["code"].as_str()), (409, Some("already_purchased")));
}

#[tokio::test]
async fn a_cancelled_hold_goes_back_to_its_shard_and_someone_else_buys_it() {
    let app = TestApp::fresh().await;
    let sale = SaleSpec::new().stock(1).holds(HOLD_S).create(&app).await;
    let [alice, bob] = app.containers();
    let (_, order) = alice.buy(&sale, "alice").await;
    assert_eq!(bob.buy(&sale, "bob").await.1["code"], "sold_out");

    let (status, cancelled) = alice.delete_purchase(&sale, "alice").await;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")));
    assert_eq!(cancelled["orderId"], order["orderId"]);
    let (left, records) = app.stored(&sale).await;
    assert_eq!((left, records[0].status, records[0].version), (vec![1], OrderStatus::Cancelled, 2));
    assert_eq!(bob.delete_purchase(&sale, "alice").await, (200, cancelled.clone()), "cancelling twice is harmless");
    assert_eq!(app.stored(&sale).await.0, vec![1], "and gives nothing back twice");

    // Bob's container heard sold out a moment ago; the item is back and it sells it.
    let (status, bob) = bob.buy(&sale, "bob").await;
    assert_eq!((status, bob["status"].as_str()), (201, Some("reserved")));
    assert_eq!(app.stored(&sale).await.0, vec![0]);
    // The cancelled order cannot be confirmed any more.
    let (status, body) = app.container().post_confirm(&sale, order["orderId"].as_str().unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("order_cancelled")));
}

#[tokio::test]
async fn an_ended_hold_is_released_by_the_sweeper_and_its_buyer_may_buy_again() {
    let app = TestApp::fresh().await.at(T0);
    let clock = app.clock();
    let sale = SaleSpec::new().stock(2).shards(2).holds(60).create(&app).await;
    let sweeper = app.container();
    let (_, alice) = app.buy(&sale, "alice").await;
    let (_, bob) = app.buy(&sale, "bob").await;

    clock.advance(59_999);
    assert_eq!(sweeper.sweep(100, Duration::from_secs(60)).await.unwrap().released, 0, "not ended yet");
    clock.advance(1);
    let stopped = sweeper.sweep(100, Duration::ZERO).await.unwrap();
    assert!(stopped.stopped_early && stopped.released == 0, "out of time before the first hold: {stopped:?}");
    // The orders index and the holds index are eventually consistent: sweep until both ended
    // holds are found (bounded).
    let mut released = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while released < 2 && Instant::now() < deadline {
        released += sweeper.sweep(100, Duration::from_secs(60)).await.unwrap().released;
    }
    assert_eq!(released, 2);
    let (left, records) = app.stored(&sale).await;
    assert_eq!(left, vec![1, 1], "each item back on the shard it came from");
    assert!(records.iter().all(|r| r.status == OrderStatus::Expired && r.version == 2 && r.hold_key.is_none()));
    assert_eq!(sweeper.container().sweep(100, Duration::from_secs(60)).await.unwrap().released, 0, "released once");

    let (status, body) = app.post_confirm(&sale, alice["orderId"].as_str().unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("hold_expired")));
    assert_eq!(body["order"]["status"], "expired");
    let (status, expired) = app.get_purchase(&sale, "bob").await;
    assert_eq!((status, expired["status"].as_str(), &expired["orderId"]), (200, Some("expired"), &bob["orderId"]));

    let (status, again) = app.buy(&sale, "bob").await;
    assert_eq!((status, again["status"].as_str()), (201, Some("reserved")));
    assert_ne!(again["orderId"], bob["orderId"], "a new order");
    assert_eq!(stock(&app.stored(&sale).await.0), 1);
}

#[tokio::test]
async fn a_hold_past_its_end_cannot_be_confirmed_even_before_the_sweeper_runs() {
    let app = TestApp::fresh().await.at(T0);
    let sale = SaleSpec::new().stock(3).holds(60).create(&app).await;
    let payments = app.container();
    let (_, order) = app.buy(&sale, "alice").await;
    app.clock().advance(60_000);
    let (status, body) = payments.post_confirm(&sale, order["orderId"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str(), body["order"]["status"].as_str()),
        (409, Some("hold_expired"), Some("reserved"))
    );
    assert_eq!(app.stored(&sale).await.1[0].status, OrderStatus::Reserved, "nothing changed");
}

#[tokio::test]
async fn a_buyer_who_finds_no_stock_releases_ended_holds_first_and_gets_the_item() {
    let app = TestApp::fresh().await.at(T0);
    let clock = app.clock();
    let sale = SaleSpec::new().stock(2).shards(2).holds(60).create(&app).await;
    app.buy(&sale, "alice").await;
    app.buy(&sale, "bob").await;
    assert_eq!(app.buy(&sale, "carol").await.1["code"], "sold_out", "holds still running");
    clock.advance(61_000);
    // Carol's next request lands in a container that never saw the holds: it finds them by the
    // holds index, not by what the first container remembers.
    let other = app.container();
    let mut answer = (0, Value::Null);
    for _ in 0..50 {
        answer = other.buy(&sale, "carol").await;
        if answer.0 == 201 {
            break;
        }
        // The holds index may not list the holds yet; the container then believes none has ended
        // until the earliest could: let time pass on the manual clock.
        tokio::time::sleep(Duration::from_millis(100)).await;
        clock.advance(1);
    }
    assert_eq!((answer.0, answer.1["status"].as_str()), (201, Some("reserved")), "{answer:?}");
    let (left, records) = app.stored(&sale).await;
    let by_user: BTreeMap<_, _> = records.iter().map(|r| (r.user_id.as_str(), r.status)).collect();
    assert_eq!(by_user["carol"], OrderStatus::Reserved);
    let expired = by_user.values().filter(|s| **s == OrderStatus::Expired).count();
    assert!(expired >= 1, "{by_user:?}");
    assert_eq!(stock(&left) + records.iter().filter(|r| r.status.is_live()).count() as i64, 2);
}

#[tokio::test]
async fn a_buyer_whose_hold_ended_buys_again_at_once_and_a_late_cancel_counts_as_expiry() {
    let app = TestApp::fresh().await.at(T0);
    let sale = SaleSpec::new().stock(3).holds(60).create(&app).await;
    let [first_container, second] = app.containers();
    let (_, first) = first_container.buy(&sale, "alice").await;
    let (_, bob) = first_container.buy(&sale, "bob").await;
    assert_eq!(second.buy(&sale, "alice").await.1["code"], "already_purchased", "the hold still runs");
    app.clock().advance(60_000);
    // No sweep: alice's purchase finds her own ended hold, releases it and buys again.
    let (status, again) = second.buy(&sale, "alice").await;
    assert_eq!((status, again["status"].as_str()), (201, Some("reserved")), "{again}");
    assert_ne!(again["orderId"], first["orderId"]);
    // Bob cancels after his hold ended: released as what it is, expired.
    let (status, late) = second.delete_purchase(&sale, "bob").await;
    assert_eq!((status, late["status"].as_str(), &late["orderId"]), (200, Some("expired"), &bob["orderId"]));
    let (left, records) = app.stored(&sale).await;
    let live = records.iter().filter(|r| r.status.is_live()).count() as i64;
    assert_eq!((stock(&left), live), (2, 1), "alice's new hold only");
}

#[tokio::test]
async fn a_holdless_sale_confirms_at_once() {
    let app = TestApp::fresh().await;
    let sale = SaleSpec::new().stock(3).create(&app).await;
    let (status, order) = app.buy(&sale, "alice").await;
    assert_eq!((status, order["status"].as_str(), order.get("holdExpiresAt")), (201, Some("confirmed"), None));
    let (status, body) = app.post_confirm(&sale, order["orderId"].as_str().unwrap()).await;
    assert_eq!((status, body), (200, order.clone()));
    assert_eq!(app.delete_purchase(&sale, "alice").await.1["code"], "order_confirmed");
}

#[tokio::test]
async fn unknown_orders_and_bad_ids_are_problems_that_change_nothing() {
    let app = TestApp::fresh().await;
    let sale = SaleSpec::new().stock(3).holds(HOLD_S).create(&app).await;
    let other = SaleSpec::new().stock(3).holds(HOLD_S).create(&app).await;
    let (_, order) = app.buy(&other, "alice").await;
    let id = order["orderId"].as_str().unwrap();

    let (status, body) = app.post_confirm(&sale, id).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("order_not_found")), "another sale's order");
    let old = ulid::Ulid::from_parts(1_000, 7).to_string();
    assert_eq!(app.post_confirm(&sale, &old).await.1["code"], "order_not_found");
    for bad in ["x", "01ARZ3NDEKTSV4RRFFQ69G5FA", "01arz3ndektsv4rrffq69g5fav", "../../x"] {
        assert_eq!(app.post_confirm(&sale, bad).await.1["code"], "invalid_request", "{bad}");
    }
    let s = sale.id.as_str();
    for (method, body, code) in
        [("GET", TestBody::None, "method_not_allowed"), ("POST", TestBody::Text("{\"x\":1}"), "invalid_request")]
    {
        assert_eq!(app.send(Route::Orders, req::confirm(method, s, id, body)).await.1["code"], code);
    }
    assert_eq!(app.post_confirm(&unique("none"), id).await.1["code"], "sale_not_found");

    assert_eq!(app.delete_purchase(&sale, "nobody").await.1["code"], "purchase_not_found");
    let resp = app.call(Route::Lookup, req::lookup("PUT", s, "alice", None)).await;
    assert_eq!((resp.status_code, resp.header("allow")), (405, Some("GET, DELETE")));

    assert_eq!(app.stored(&other).await.1[0].status, OrderStatus::Reserved, "nothing changed");
    assert_eq!(app.stored(&other).await.0, vec![2]);
}

#[tokio::test]
async fn under_jwt_a_buyer_cancels_only_their_own_order() {
    let body_app = TestApp::fresh().await;
    let sale = SaleSpec::new().stock(3).holds(HOLD_S).create(&body_app).await;
    body_app.buy(&sale, "alice").await;
    let app = body_app.container().auth(AuthMode::Jwt);
    let as_user = |sub: &str| req::lookup("DELETE", sale.id.as_str(), "alice", Some(json!({"sub": sub})));
    assert_eq!(app.send(Route::Lookup, as_user("mallory")).await.1["code"], "forbidden");
    assert_eq!(app.stored(&sale).await.1[0].status, OrderStatus::Reserved);
    let (status, body) = app.send(Route::Lookup, as_user("alice")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("cancelled")));
}

/// Shards and every user's record in one serializable read (`TransactGetItems`, ≤ 100 items).
async fn snapshot(store: &Store, sale: &Sale, users: &[String]) -> (i64, Vec<Option<PurchaseRecord>>) {
    let mut gets = Vec::new();
    for n in 0..sale.shards {
        gets.push((flash_sale::keys::shard_pk(sale.id.as_str(), n), flash_sale::keys::SHARD_SK));
    }
    for u in users {
        gets.push((flash_sale::keys::purchase_pk(sale.id.as_str(), u), flash_sale::keys::PURCHASE_SK));
    }
    assert!(gets.len() <= 100);
    let items = gets.into_iter().map(|(pk, sk)| {
        let get = Get::builder()
            .table_name(store.table())
            .key("pk", AttributeValue::S(pk))
            .key("sk", AttributeValue::S(sk.into()))
            .build()
            .unwrap();
        TransactGetItem::builder().get(get).build()
    });
    for attempt in 0.. {
        match store.client().transact_get_items().set_transact_items(Some(items.clone().collect())).send().await {
            Ok(out) => {
                let responses = out.responses.unwrap_or_default();
                let mut left = 0;
                let mut records = Vec::new();
                for (i, r) in responses.into_iter().enumerate() {
                    let item = r.item.unwrap_or_default();
                    if i < sale.shards as usize {
                        left +=
                            item.get("remaining").and_then(|v| v.as_n().ok()).map_or(0, |v| v.parse::<i64>().unwrap());
                    } else if item.is_empty() {
                        records.push(None);
                    } else {
                        records.push(Some(serde_dynamo::from_item(item).expect("record")));
                    }
                }
                return (left, records);
            }
            // A transaction in flight on one of the items: read again.
            Err(_) if attempt < 50 => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(e) => panic!("snapshot: {e:?}"),
        }
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purchases_cancels_confirms_and_the_sweeper_racing_keep_every_item_accounted_for() {
    const TOTAL: i64 = 24;
    const TASKS: usize = 128;
    const OPS_PER_TASK: usize = 40;
    let app = TestApp::fresh().await;
    let store = app.store().clone();
    let sale = SaleSpec::new().stock(TOTAL).shards(4).holds(1).create(&app).await;
    let users: Arc<Vec<String>> = Arc::new((0..96).map(|i| format!("u{i}")).collect());
    // Four containers serve the buyers and the payment backend; the sweeper is a fifth.
    let containers: Arc<[TestApp; 4]> = Arc::new(app.containers());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // Invariants on serializable snapshots while the race runs.
    let sampler = {
        let (store, sale, users, stop) = (store.clone(), sale.clone(), users.clone(), stop.clone());
        tokio::spawn(async move {
            let mut samples = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && samples < 2_000 {
                let (left, records) = snapshot(&store, &sale, &users).await;
                let live = records.iter().flatten().filter(|r| r.status.is_live()).count() as i64;
                assert!(live <= TOTAL, "live orders {live} exceed the stock");
                assert_eq!(left + live, TOTAL, "stock {left} + live {live} at sample {samples}");
                samples += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            samples
        })
    };
    let sweeper = {
        let (app, stop) = (app.container(), stop.clone());
        tokio::spawn(async move {
            let mut released = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                released += app.sweep(1_000, Duration::from_secs(60)).await.expect("sweep").released;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            released
        })
    };
    let started = Instant::now();
    let workers: Vec<_> = (0..TASKS)
        .map(|t| {
            let (containers, sale, users) = (containers.clone(), sale.clone(), users.clone());
            tokio::spawn(async move {
                let mut tally: BTreeMap<(&'static str, u16), u32> = BTreeMap::new();
                for i in 0..OPS_PER_TASK {
                    let user = &users[(t * 7 + i * 13 + fastrand::usize(..3)) % users.len()];
                    let app = &containers[fastrand::usize(..containers.len())];
                    let (kind, status) = match fastrand::u32(..20) {
                        0..=11 => ("buy", app.buy(&sale, user).await.0),
                        12..=17 => ("cancel", app.delete_purchase(&sale, user).await.0),
                        _ => {
                            let (s, order) = app.get_purchase(&sale, user).await;
                            let payments = &containers[fastrand::usize(..containers.len())];
                            if s == 200 {
                                ("confirm", payments.post_confirm(&sale, order["orderId"].as_str().unwrap()).await.0)
                            } else {
                                ("lookup", s)
                            }
                        }
                    };
                    // 503 (busy: nothing decided, retry) is a true answer under contention; no other 5xx.
                    assert!(status < 500 || status == 503, "{kind} answered {status}");
                    *tally.entry((kind, status)).or_default() += 1;
                }
                tally
            })
        })
        .collect();
    let mut tally: BTreeMap<(&'static str, u16), u32> = BTreeMap::new();
    for w in workers {
        for (k, v) in w.await.expect("worker") {
            *tally.entry(k).or_default() += v;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let samples = sampler.await.expect("sampler");
    let released = sweeper.await.expect("sweeper");
    let ops: u32 = tally.values().sum();
    eprintln!(
        "{ops} operations in {:?}: {tally:?}; {samples} snapshots; sweeper released {released}",
        started.elapsed()
    );
    assert!(ops as usize >= 5_000);
    assert!(samples >= 10, "the invariant was sampled during the race");
    for kind in ["buy", "cancel"] {
        assert!(tally.iter().any(|((k, s), _)| *k == kind && *s < 300), "some {kind} succeeded: {tally:?}");
    }

    let (left, records) = snapshot(&store, &sale, &users).await;
    let live = records.iter().flatten().filter(|r| r.status.is_live()).count() as i64;
    assert_eq!(left + live, TOTAL);
    let (stock_scan, all) = app.stored(&sale).await;
    assert_eq!(stock(&stock_scan), left);
    let mut per_user: BTreeMap<&str, u32> = BTreeMap::new();
    for r in all.iter().filter(|r| r.status.is_live()) {
        *per_user.entry(r.user_id.as_str()).or_default() += 1;
    }
    assert!(per_user.values().all(|n| *n == 1), "no user with two live orders");
    assert!(stock_scan.iter().all(|s| *s >= 0));
}

/// A confirmation that meets a transaction holding the order's record (DynamoDB answers
/// `TransactionConflictException`) is retried and confirms, rather than telling the payment
/// backend to come back later.
#[tokio::test]
async fn a_confirmation_that_meets_a_transaction_conflict_is_retried() {
    use flash_sale_testkit::proxy::{Fault, Proxy, upstream};
    use std::sync::atomic::{AtomicUsize, Ordering};

    let app = TestApp::fresh().await.at(T0);
    let sale = SaleSpec::new().stock(2).holds(HOLD_S).create(&app).await;
    let (_, order) = app.buy(&sale, "alice").await;
    let conflicts = Arc::new(AtomicUsize::new(0));
    let seen = conflicts.clone();
    // The first two confirming writes meet a conflict; later ones pass.
    let proxy = Proxy::start(
        upstream(),
        Box::new(move |op: &str, body: &str| {
            if op == "UpdateItem" && body.contains(":confirmed") && seen.fetch_add(1, Ordering::SeqCst) < 2 {
                Fault::ItemConflict
            } else {
                Fault::Pass
            }
        }),
    )
    .await;
    let payments = app.container().via(proxy.client());

    let (status, confirmed) = payments.post_confirm(&sale, order["orderId"].as_str().unwrap()).await;

    assert_eq!((status, confirmed["status"].as_str()), (200, Some("confirmed")), "{confirmed}");
    assert_eq!(conflicts.load(Ordering::SeqCst), 3, "two conflicts, then the write that confirmed");
    let (_, records) = app.stored(&sale).await;
    assert_eq!((records[0].status, records[0].version), (OrderStatus::Confirmed, 2));
}

/// An ended hold holds nothing, even before it is released: its buyer is not told
/// `already_purchased` (the refusal stands), their own keyed retry gets the order as it is now
/// (`expired`), and a look-up says `expired` too. The release then stores it.
#[tokio::test]
async fn an_ended_hold_is_not_live_anywhere_before_it_is_released() {
    let app = TestApp::fresh().await.at(T0);
    let sale = SaleSpec::new().stock(1).holds(60).window(T0 - 1_000, T0 + 30_000).create(&app).await;
    let (status, order) = app.buy_keyed(&sale, "alice", Some("press-1")).await;
    assert_eq!((status, order["status"].as_str()), (201, Some("reserved")), "{order}");
    // The window closes at 30 s; the hold ends at 60 s and nobody has released it yet.
    app.clock().set(T0 + 61_000);
    let other = app.container();
    let (status, body) = other.buy(&sale, "alice").await;
    assert_eq!((status, body["code"].as_str()), (403, Some("sale_ended")), "not a holder any more: {body}");
    let (status, again) = other.buy_keyed(&sale, "alice", Some("press-1")).await;
    assert_eq!(
        (status, again["orderId"].as_str(), again["status"].as_str()),
        (201, order["orderId"].as_str(), Some("expired")),
        "{again}"
    );
    let (status, seen) = other.get_purchase(&sale, "alice").await;
    assert_eq!((status, seen["status"].as_str()), (200, Some("expired")), "{seen}");
    let (left, records) = app.stored(&sale).await;
    assert_eq!((stock(&left), records[0].status), (0, OrderStatus::Reserved), "answers changed nothing stored");
    other.sweep(100, Duration::from_secs(10)).await.unwrap();
    let (left, records) = app.stored(&sale).await;
    assert_eq!((stock(&left), records[0].status), (1, OrderStatus::Expired));
}

/// Holds ending one by one after a sell-out, with buyers arriving at every container: each ended
/// hold goes back to stock once, and the index queries and release attempts it takes are counted
/// (printed; `docs/benchmarks-journal.md`, "Release burst"). Eight containers on one store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_release_burst_across_containers_gives_each_item_back_once() {
    const HOLDS: usize = 24;
    let app = TestApp::fresh().await.at(T0);
    let sale =
        SaleSpec::new().stock(HOLDS as i64).shards(4).holds(1).window(T0 - 1_000, T0 + 600_000).create(&app).await;
    // Sold out: one hold every 100 ms, ending one second later.
    for n in 0..HOLDS {
        app.clock().set(T0 + n as i64 * 100);
        assert_eq!(app.buy(&sale, &format!("first-{n}")).await.0, 201);
    }
    let recording = flash_sale_testkit::proxy::Recording::start(flash_sale_testkit::proxy::pass()).await;
    let containers: Vec<TestApp> = (0..8).map(|_| app.container().via(recording.proxy.patient_client())).collect();
    let mut bought = 0;
    // From the first hold's end, every 100 ms each container gets one buyer.
    for step in 0..(HOLDS as i64 + 10) {
        app.clock().set(T0 + 1_000 + step * 100);
        let sale_ref = &sale;
        let attempts = containers.iter().enumerate().map(|(c, container)| {
            let user = format!("late-{step}-{c}");
            async move { container.buy(sale_ref, &user).await.0 }
        });
        bought += futures::future::join_all(attempts).await.into_iter().filter(|s| *s == 201).count();
    }
    let calls = recording.take();
    let index_queries = calls.iter().filter(|(op, b)| op == "Query" && b.contains("\"holds\"")).count();
    let releases =
        calls.iter().filter(|(op, b)| op == "TransactWriteItems" && b.contains("holdExpiresAt <= :by")).count();
    let (left, records) = app.stored(&sale).await;
    let expired = records.iter().filter(|r| r.status == OrderStatus::Expired).count();
    let first_released =
        records.iter().filter(|r| r.user_id.starts_with("first-") && r.status == OrderStatus::Expired).count();
    let live = records.iter().filter(|r| r.status == OrderStatus::Reserved).count();
    println!(
        "release burst: {HOLDS} holds, 8 containers: {expired} released, {bought} bought again, \
         {index_queries} index queries ({:.2} per release), {releases} release attempts ({:.2} per release)",
        index_queries as f64 / expired.max(1) as f64,
        releases as f64 / expired.max(1) as f64
    );
    assert_eq!(stock(&left) + live as i64, HOLDS as i64, "stock + live = total");
    assert_eq!(first_released, HOLDS, "every first hold ended and was released");
    assert!(bought > 0);
}
