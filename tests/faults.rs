//! The purchase path under DynamoDB failures that DynamoDB Local cannot produce, injected by a
//! proxy between the real SDK and a real DynamoDB Local (see `support::proxy`): never oversold, no
//! user twice, no false success, no false refusal, and every unknown outcome is a 503 that a
//! retry resolves to the truth.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flash_sale::App;
use flash_sale::sale::Sale;
use flash_sale::store::Store;
use flash_sale_testkit::proxy::{Fault, Plan, Proxy, pass, seeded, upstream};
use flash_sale_testkit::{
    TestApp, TestBody, active_sale, fresh_store, purchase_request, read, request, stored_state, user_body,
};
use serde_json::Value;

struct Run {
    responses: Vec<(String, u16, Value)>,
}

/// `attempts` purchases by `users` users from `tasks` concurrent tasks through `app`.
async fn hammer(app: Arc<TestApp>, sale: &Sale, users: usize, attempts: usize, tasks: usize) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (app, next, id) = (app.clone(), next.clone(), sale.id.to_string());
        handles.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= attempts {
                    return seen;
                }
                let user = format!("user-{}", (i * 7) % users);
                let resp = flash_sale::http::purchase_function(&app, purchase_request(&id, &user_body(&user))).await;
                let (status, body) = read(&resp);
                seen.push((user, status, body));
            }
        }));
    }
    let mut responses = Vec::new();
    for h in handles {
        responses.extend(h.await.expect("task"));
    }
    Run { responses }
}

/// The invariants every fault must leave intact, checked on the stored state.
async fn check_invariants(store: &Store, sale: &Sale, run: &Run, label: &str) {
    let (stock, purchases) = stored_state(store, sale).await;
    let by_user: HashMap<&str, &str> = purchases.iter().map(|p| (p.user_id.as_str(), p.order_id.as_str())).collect();
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    for (_, status, body) in &run.responses {
        *codes.entry(format!("{status} {}", body["code"].as_str().unwrap_or(""))).or_default() += 1;
    }
    eprintln!(
        "{label}: {} attempts {codes:?}; stored {} purchases, shards {stock:?}",
        run.responses.len(),
        purchases.len()
    );

    assert!(stock.iter().all(|r| *r >= 0), "{label}: a shard went below zero: {stock:?}");
    assert_eq!(stock.iter().sum::<i64>() + purchases.len() as i64, sale.total_stock, "{label}: stock + sold = total");
    assert_eq!(by_user.len(), purchases.len(), "{label}: a user holds two purchases");
    for (user, status, body) in &run.responses {
        match (*status, body["code"].as_str()) {
            (201, _) => assert_eq!(
                by_user.get(user.as_str()).copied(),
                body["orderId"].as_str(),
                "{label}: false success for {user}"
            ),
            (409, Some("already_purchased")) => {
                assert_eq!(
                    by_user.get(user.as_str()).copied(),
                    body["purchase"]["orderId"].as_str(),
                    "{label}: false already_purchased for {user}"
                )
            }
            (409, Some("sold_out")) => {
                assert_eq!(stock.iter().sum::<i64>(), 0, "{label}: sold_out while stock remains")
            }
            (503, Some("temporarily_unavailable")) => {}
            other => panic!("{label}: unexpected answer {other:?} {body}"),
        }
    }
}

/// After the faults stop, every user whose outcome was unknown learns the truth: a stored
/// purchase shows in user-lookup and a retry answers `already_purchased` with that order.
async fn check_recovery(app: &App, store: &Store, sale: &Sale, run: &Run, label: &str) {
    let before = stored_state(store, sale).await;
    let unknown: Vec<&str> = run.responses.iter().filter(|(_, s, _)| *s == 503).map(|(u, _, _)| u.as_str()).collect();
    let stored: HashMap<&str, &str> = before.1.iter().map(|p| (p.user_id.as_str(), p.order_id.as_str())).collect();
    let id = sale.id.as_str();
    for user in unknown {
        let path = format!("/sales/{id}/purchases/{user}");
        let lookup = request("GET", &path, &[("saleId", id), ("userId", user)], TestBody::None, None);
        let (status, body) = read(&flash_sale::http::user_lookup_function(app, lookup).await);
        let (retry_status, retry) =
            read(&flash_sale::http::purchase_function(app, purchase_request(id, &user_body(user))).await);
        match stored.get(user) {
            Some(order) => {
                assert_eq!(
                    (status, body["orderId"].as_str()),
                    (200, Some(*order)),
                    "{label}: lookup shows {user}'s purchase"
                );
                assert_eq!(
                    (retry_status, retry["purchase"]["orderId"].as_str()),
                    (409, Some(*order)),
                    "{label}: retry is already_purchased"
                );
            }
            None => {
                assert_eq!(status, 404, "{label}: {user} has no purchase");
                assert!(matches!(retry_status, 201 | 409), "{label}: retry of {user}: {retry_status} {retry}");
            }
        }
    }
    let (stock, purchases) = stored_state(store, sale).await;
    assert_eq!(stock.iter().sum::<i64>() + purchases.len() as i64, sale.total_stock, "{label}: after recovery");
}

async fn under_fault(label: &str, plan: Plan, shards: u32) -> BTreeMap<(String, &'static str), usize> {
    let store = fresh_store().await;
    let sale = active_sale(&store, 20, shards).await;
    let proxy = Proxy::start(upstream(), plan).await;
    let app = Arc::new(TestApp::on(&store).via(proxy.client()).tune(|t| t.sale_cache = Duration::from_secs(60)));

    let run = hammer(app.clone(), &sale, 40, 160, 16).await;
    check_invariants(&store, &sale, &run, label).await;
    proxy.set_plan(pass());
    check_recovery(&app, &store, &sale, &run, label).await;
    proxy.counts()
}

const TX: &[&str] = &["TransactWriteItems"];
const ALL: &[&str] = &["TransactWriteItems", "GetItem", "BatchGetItem"];

fn injected(counts: &BTreeMap<(String, &'static str), usize>, fault: &str) -> usize {
    counts.iter().filter(|((_, f), _)| *f == fault).map(|(_, n)| n).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttling_never_oversells_and_answers_503() {
    let counts = under_fault("throttle", seeded(1, 0.5, TX, Fault::Throttle), 2).await;
    assert!(injected(&counts, "throttle") > 10, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_errors_never_oversell() {
    let counts = under_fault("server_error", seeded(2, 0.4, ALL, Fault::ServerError), 2).await;
    assert!(injected(&counts, "server_error") > 10, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transaction_conflicts_are_retried_and_never_oversell() {
    let counts = under_fault("conflict", seeded(3, 0.5, TX, Fault::Conflict), 1).await;
    assert!(injected(&counts, "conflict") > 10, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn responses_slower_than_the_timeout_never_oversell() {
    let counts = under_fault("slow", seeded(4, 0.25, TX, Fault::Slow(Duration::from_millis(1_000))), 2).await;
    assert!(injected(&counts, "slow") > 5, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connection_resets_never_oversell() {
    let counts = under_fault("reset", seeded(5, 0.3, ALL, Fault::Reset), 2).await;
    assert!(injected(&counts, "reset") > 10, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_whose_response_is_lost_is_one_purchase_not_two() {
    let counts = under_fault("commit_then_drop", seeded(6, 0.4, TX, Fault::CommitThenDrop), 2).await;
    assert!(injected(&counts, "commit_then_drop") > 10, "{counts:?}");
}

/// Conflicts on every shard leave the answer open until the shards are read: stock left is a 503
/// (a retry may get it), none left a true `sold_out`, and a buyer who owns an item hears so.
#[tokio::test]
async fn conflicts_on_every_shard_answer_by_the_stock_read_after_them() {
    let store = fresh_store().await;
    let sale = active_sale(&store, 2, 2).await;
    let proxy = Proxy::start(upstream(), pass()).await;
    let app = TestApp::on(&store).via(proxy.client());
    let buy = |user: &'static str| app.buy(&sale, user);
    assert_eq!(buy("alice").await.0, 201);

    proxy
        .set_plan(Box::new(|op: &str, _: &str| if op == "TransactWriteItems" { Fault::Conflict } else { Fault::Pass }));
    let (status, body) = buy("bob").await;
    assert_eq!((status, body["code"].as_str()), (503, Some("temporarily_unavailable")), "one item is left");
    let (status, body) = buy("alice").await;
    assert_eq!((status, body["code"].as_str()), (503, Some("temporarily_unavailable")));

    proxy.set_plan(pass());
    assert_eq!(buy("carol").await.0, 201);
    proxy
        .set_plan(Box::new(|op: &str, _: &str| if op == "TransactWriteItems" { Fault::Conflict } else { Fault::Pass }));
    let (status, body) = buy("dave").await;
    assert_eq!((status, body["code"].as_str()), (409, Some("sold_out")), "nothing left behind the conflicts");
    let (status, body) = buy("carol").await;
    assert_eq!((status, body["code"].as_str()), (409, Some("already_purchased")), "{body}");
    let (stock, purchases) = stored_state(&store, &sale).await;
    assert_eq!((stock.iter().sum::<i64>(), purchases.len()), (0, 2));
}

/// A join that has its place number answers even when taking the next block of numbers ahead of
/// time fails; only a join that needs the missing block waits for DynamoDB (503), and no place is
/// lost once DynamoDB answers again.
#[tokio::test]
async fn a_failure_to_take_the_next_place_block_ahead_never_fails_the_join_that_has_its_place() {
    let store = fresh_store().await;
    let start = flash_sale_testkit::now_ms() - 3_600_000;
    let (sale, _) = flash_sale_testkit::room_sale(&store, 10, 1, start, start + 7_200_000).await;
    let proxy = Proxy::start(upstream(), pass()).await;
    // The clock held still: blocks are sized 1, 2, 4… (no rate to size them by) and none ends,
    // however slowly the machine runs the joins.
    let app = TestApp::on(&store).at(flash_sale_testkit::now_ms()).via(proxy.client()).admission();
    let join = |user: &'static str| app.post_queue(&sale, user);
    // The first two writes to the sale's place counter pass (blocks of 1 and 2 places), every
    // later one fails.
    let counter_writes = Arc::new(AtomicUsize::new(0));
    let writes = counter_writes.clone();
    proxy.set_plan(Box::new(move |op: &str, body: &str| {
        if op == "UpdateItem" && body.contains("ADD issued") && writes.fetch_add(1, Ordering::SeqCst) >= 2 {
            Fault::ServerError
        } else {
            Fault::Pass
        }
    }));
    for (user, place) in [("first", 1), ("second", 2), ("third", 3)] {
        let (status, body) = join(user).await;
        assert_eq!((status, body["position"].as_i64()), (200, Some(place)), "{user}: {body}");
    }
    assert!(counter_writes.load(Ordering::SeqCst) > 2, "the third join tried to take the next block ahead");
    let (status, body) = join("fourth").await;
    assert_eq!((status, body["code"].as_str()), (503, Some("temporarily_unavailable")), "{body}");
    proxy.set_plan(pass());
    let (status, body) = join("fifth").await;
    assert_eq!((status, body["position"].as_i64()), (200, Some(4)), "no place was lost: {body}");
}

/// The `ClientRequestToken` of a `TransactWriteItems` body.
fn token_of(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    v["ClientRequestToken"].as_str().unwrap_or_default().to_owned()
}

/// A purchase transaction that committed but whose answer was lost, its order cancelled before
/// the purchase tries again (a new token, the same order): the retry never writes the order a
/// second time (which would revive it as `reserved` version 1 and take a second item); it finds
/// the order, as it is now.
#[tokio::test]
async fn a_purchase_retried_after_its_lost_commit_never_revives_the_order_cancelled_meanwhile() {
    use flash_sale::ids::UserId;
    use flash_sale::order::OrderStatus;
    use flash_sale::store::{Attempt, PurchaseRecord};
    use flash_sale_testkit::streams::{FakeEventBridge, stream_records};

    let app = TestApp::fresh_with_stream().await.at(1_800_000_000_000);
    let store = app.store().clone();
    let sale = flash_sale_testkit::SaleSpec::new().stock(5).holds(60).create(&app).await;
    let now = app.now();
    let order = ulid::Ulid::new().to_string();
    let user = UserId::parse("alice").unwrap();
    let record = PurchaseRecord::new(&sale.id, &user, order.clone(), now, 0, None).held_until(now + 60_000, 0);

    // The first attempt commits; its answer never arrives, nor that of the SDK's retries. (Tokens
    // unique per run: DynamoDB remembers a token for ten minutes.)
    let (first, second) = (format!("{order}-0"), format!("{order}-1"));
    let lost_token = first.clone();
    let plan: Plan = Box::new(move |op: &str, body: &str| {
        if op == "TransactWriteItems" && token_of(body) == lost_token { Fault::CommitThenDrop } else { Fault::Pass }
    });
    let proxy = Proxy::start(upstream(), plan).await;
    let lost = Store::new(proxy.client(), store.table()).transact_purchase(&sale, 0, &record, now, &first).await;
    assert!(lost.is_err(), "the answer was lost: {lost:?}");
    // The order is stored (the proxy may still be forwarding when the client gives up); its
    // buyer cancels it.
    cancel_once_stored(&app, &store, &sale, "alice").await;

    // The purchase tries again: a new token, the same order.
    match store.transact_purchase(&sale, 0, &record, now, &second).await.unwrap() {
        Attempt::AlreadyPurchased(p) => {
            assert_eq!((p.order_id.as_str(), p.status, p.version), (order.as_str(), OrderStatus::Cancelled, 2));
        }
        other => panic!("the order was written a second time: {other:?}"),
    }
    let (stock, purchases) = stored_state(&store, &sale).await;
    assert_eq!(stock, vec![5], "the cancelled order's item is back, and no second item was taken");
    assert_eq!((purchases.len(), purchases[0].status, purchases[0].version), (1, OrderStatus::Cancelled, 2));

    // Each (orderId, version) is one change: reserved 1, cancelled 2, nothing after.
    let records = stream_records(&flash_sale_testkit::endpoint(), store.table()).await;
    let bus = FakeEventBridge::start().await;
    assert!(
        order_events::publish(&bus.bus("b"), &serde_json::json!({ "Records": records }))
            .await
            .batch_item_failures
            .is_empty()
    );
    let got: Vec<(String, u64)> = bus
        .accepted()
        .iter()
        .filter(|(_, d, _, _)| d["orderId"] == order.as_str())
        .map(|(t, d, _, _)| (t.clone(), d["version"].as_u64().unwrap()))
        .collect();
    assert_eq!(got, [("OrderReserved".to_owned(), 1), ("OrderCancelled".to_owned(), 2)]);
}

/// The same through the purchase use case: its transaction commits, the answer is lost, the
/// retried token is still in progress, the buyer cancels meanwhile, and the purchase's next
/// attempt (a new token, the same order) finds its order: answered as the success it was, in the
/// status it has now, and the order stays cancelled with its item back in stock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_whose_commit_answer_was_lost_answers_with_its_order_as_it_is_now() {
    let app = TestApp::fresh_with_stream().await.at(1_800_000_000_000);
    let store = app.store().clone();
    let sale = flash_sale_testkit::SaleSpec::new().stock(5).holds(60).create(&app).await;
    let cancelled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (c, f) = (cancelled.clone(), first.clone());
    let plan: Plan = Box::new(move |op: &str, body: &str| {
        if op != "TransactWriteItems" {
            return Fault::Pass;
        }
        let first_token = token_of(body).ends_with("-0-0");
        if first_token && f.swap(false, Ordering::SeqCst) {
            return Fault::CommitThenDrop;
        }
        // The SDK's own retries of that call (same token) hear that it is in progress; so do the
        // purchase's next attempts (new tokens) until the buyer has cancelled.
        if first_token || !c.load(Ordering::SeqCst) { Fault::InProgress } else { Fault::Pass }
    });
    let proxy = Proxy::start(upstream(), plan).await;
    let buyer = TestApp::on(&store).via(proxy.client()).at(app.now()).tune(|t| {
        t.conflict_retries = 400;
        t.backoff_base = Duration::from_millis(5);
        t.backoff_cap = Duration::from_millis(10);
    });
    let id = sale.id.clone();
    let purchase = tokio::spawn(async move { buyer.buy(&id, "alice").await });

    // The first attempt's commit is stored: the buyer cancels (not through the proxy).
    cancel_once_stored(&app, &store, &sale, "alice").await;
    cancelled.store(true, Ordering::SeqCst);

    let (status, body) = purchase.await.unwrap();
    assert_eq!((status, body["status"].as_str()), (201, Some("cancelled")), "{body}");
    let (stock, purchases) = stored_state(&store, &sale).await;
    assert_eq!(stock, vec![5], "one item taken and given back, none taken again");
    assert_eq!(purchases.len(), 1);
    assert_eq!(
        (purchases[0].order_id.as_str(), purchases[0].status),
        (body["orderId"].as_str().unwrap(), flash_sale::order::OrderStatus::Cancelled)
    );
    assert_eq!(purchases[0].version, 2);
}

/// Waits (bounded: 10 s) until the sale holds an order, then has `user` cancel theirs directly
/// (not through any proxy).
async fn cancel_once_stored(app: &TestApp, store: &Store, sale: &Sale, user: &str) {
    let mut stored = false;
    for _ in 0..400 {
        if !stored_state(store, sale).await.1.is_empty() {
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(stored, "the first attempt committed");
    let (status, body) = app.delete_purchase(sale, user).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("cancelled")), "{body}");
}
