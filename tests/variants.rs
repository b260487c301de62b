//! Variants with their own stock and up to N items per customer, under concurrent load from
//! several containers on one store: per variant stock + live items = total, no customer above
//! the limit, and every live order's quantity is exactly what its shards gave, all read from the
//! stored state. Once straight to DynamoDB Local, once through the fault proxy.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use flash_sale::config::Tuning;
use flash_sale::sale::{Sale, Variant};
use flash_sale::store::Store;
use flash_sale_testkit::proxy::{Fault, Plan, Proxy, upstream};
use flash_sale_testkit::{TestApp, TestBody, event_json, fresh_store, now_ms, read, request, request_from, unique};
use serde_json::{Value, json};

const CUSTOMERS: usize = 200;
const REQUESTS: usize = 1_000;
const CONTAINERS: usize = 4;
const TASKS: usize = 48;
const MAX: u32 = 2;

/// One request of the mix: a purchase (maybe a duplicate of an earlier one: same key, same body)
/// or a cancel.
#[derive(Clone, Debug)]
enum Op {
    Buy { user: String, variant: &'static str, quantity: u32, key: String },
    Cancel { user: String },
}

fn ops(seed: u64) -> Vec<Op> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let variants = ["a", "b", "c"];
    let mut ops: Vec<Op> = Vec::with_capacity(REQUESTS);
    while ops.len() < REQUESTS {
        let roll = rng.u32(0..100);
        let earlier: Vec<&Op> = ops.iter().filter(|o| matches!(o, Op::Buy { .. })).collect();
        let op = if roll < 12 && !earlier.is_empty() {
            // A duplicate: the same purchase sent again (another tab, a retry).
            earlier[rng.usize(..earlier.len())].clone()
        } else if roll < 22 {
            Op::Cancel { user: format!("c{}", rng.usize(..CUSTOMERS)) }
        } else {
            Op::Buy {
                user: format!("c{}", rng.usize(..CUSTOMERS)),
                variant: variants[rng.usize(..3)],
                quantity: rng.u32(1..=3),
                key: format!("k{}", ops.len()),
            }
        };
        ops.push(op);
    }
    rng.shuffle(&mut ops);
    ops
}

async fn sized_sale(store: &Store) -> Sale {
    let now = now_ms();
    let variant =
        |id: &str, stock, shards| Variant { variant_id: id.into(), label: id.to_uppercase(), sku: None, stock, shards };
    let mut sale = flash_sale_testkit::sale(&unique("v"), 1, 1, now - 60_000, now + 3_600_000);
    sale.set_variants(vec![variant("a", 1, 1), variant("b", 7, 2), variant("c", 50, 4)]);
    sale.max_per_customer = MAX;
    sale.hold_seconds = 600;
    store.create_sale(&sale, now).await.expect("create sale");
    sale
}

async fn send(app: &TestApp, sale: &str, op: &Op) -> (u16, Value) {
    match op {
        Op::Buy { user, variant, quantity, key } => {
            let path = format!("/sales/{sale}/purchases");
            let body = json!({"userId": user, "variantId": variant, "quantity": quantity}).to_string();
            let mut event = event_json("POST", &path, &[("saleId", sale)], TestBody::Text(&body), None);
            event["headers"]["idempotency-key"] = json!(key);
            read(&flash_sale::http::purchase_function(app, request_from(&event)).await)
        }
        Op::Cancel { user } => {
            let path = format!("/sales/{sale}/purchases/{user}");
            let req = request("DELETE", &path, &[("saleId", sale), ("userId", user)], TestBody::None, None);
            read(&flash_sale::http::user_lookup_function(app, req).await)
        }
    }
}

async fn run(apps: Vec<Arc<TestApp>>, sale: &Sale, ops: Vec<Op>) -> Vec<(Op, u16, Value)> {
    let ops = Arc::new(ops);
    let next = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (app, ops, next, barrier, id) =
            (apps[t % apps.len()].clone(), ops.clone(), next.clone(), barrier.clone(), sale.id.to_string());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut seen = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(op) = ops.get(i) else { return seen };
                let (status, body) = send(&app, &id, op).await;
                seen.push((op.clone(), status, body));
            }
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.extend(t.await.expect("task"));
    }
    out
}

/// The guarantees, from the stored state; and every success names a stored order.
async fn check(store: &Store, sale: &Sale, responses: &[(Op, u16, Value)], label: &str) {
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    for (_, status, body) in responses {
        *codes.entry(format!("{status} {}", body["code"].as_str().unwrap_or(""))).or_default() += 1;
    }
    let stock = store.shard_stock(&[sale]).await.expect("stock").remove(0);
    let orders = store.purchases_of(&sale.id).await.expect("orders");
    let live: Vec<_> = orders.iter().filter(|o| o.status.is_live()).collect();
    eprintln!("{label}: {codes:?}; {} orders stored, {} live; shards {stock:?}", orders.len(), live.len());
    assert_eq!(responses.len(), REQUESTS);

    // Per shard (so per variant): stock + what live orders took from it = what it started with.
    let initial = sale.shard_stock();
    let mut taken = vec![0i64; initial.len()];
    for o in &live {
        let takes = o.taken();
        assert_eq!(
            takes.iter().map(|t| t.n).sum::<i64>(),
            i64::from(o.items()),
            "{label}: {} takes its quantity",
            o.order_id
        );
        for t in takes {
            let v = sale.variant_of_shard(t.shard).expect("shard of a variant");
            assert_eq!(v.id, o.variant(), "{label}: {} took from another variant's shard", o.order_id);
            taken[t.shard as usize] += t.n;
        }
    }
    for (n, start) in initial.iter().enumerate() {
        assert!(stock[n] >= 0, "{label}: shard {n} below zero");
        assert_eq!(stock[n] + taken[n], *start, "{label}: shard {n}: stock + live = total");
    }
    for v in sale.spans() {
        let left: i64 = v.shard_range().map(|n| stock[n as usize]).sum();
        let held: i64 = live.iter().filter(|o| o.variant() == v.id).map(|o| i64::from(o.items())).sum();
        assert_eq!(left + held, v.stock, "{label}: variant {}: stock + live = total", v.id);
    }
    // No customer above the limit; each customer's stored count is what their live orders hold.
    let mut per_customer: HashMap<&str, i64> = HashMap::new();
    for o in &live {
        *per_customer.entry(o.user_id.as_str()).or_default() += i64::from(o.items());
    }
    for c in 0..CUSTOMERS {
        let user = format!("c{c}");
        let held = per_customer.get(user.as_str()).copied().unwrap_or(0);
        assert!(held <= i64::from(MAX), "{label}: {user} holds {held}");
        let uid = flash_sale::ids::UserId::parse(&user).unwrap();
        let counted = store.customer(&sale.id, &uid).await.expect("customer").map_or(0, |c| c.live);
        assert_eq!(counted, held, "{label}: {user}'s live count");
    }
    // One order per Idempotency-Key.
    let mut keys: HashMap<(&str, &str), usize> = HashMap::new();
    for o in &orders {
        if let Some(k) = &o.idempotency_key {
            *keys.entry((o.user_id.as_str(), k.as_str())).or_default() += 1;
        }
    }
    assert!(keys.values().all(|n| *n == 1), "{label}: a key bought twice");
    let by_order: HashMap<&str, _> = orders.iter().map(|o| (o.order_id.as_str(), o)).collect();
    for (op, status, body) in responses {
        match (op, *status, body["code"].as_str()) {
            (Op::Buy { user, variant, quantity, key }, 201 | 200, _) => {
                let order = body["orderId"].as_str().expect("orderId");
                let stored = by_order.get(order).unwrap_or_else(|| panic!("{label}: false success {body}"));
                assert_eq!(
                    (stored.user_id.as_str(), stored.variant(), stored.items(), stored.idempotency_key.as_deref()),
                    (user.as_str(), *variant, *quantity, Some(key.as_str())),
                    "{label}: the success is the stored order"
                );
            }
            (Op::Buy { quantity, .. }, 409, Some("quantity_invalid")) => assert!(*quantity > MAX),
            // What the customer holds, as the answer says, leaves no room for this quantity.
            (Op::Buy { quantity, .. }, 409, Some("limit_reached")) => assert!(
                body["held"].as_i64().is_some_and(|h| h >= 1 && h + i64::from(*quantity) > i64::from(MAX)),
                "{label}: {body}"
            ),
            (Op::Buy { .. }, 409, Some("variant_sold_out" | "sold_out" | "not_enough_stock")) => {}
            (Op::Cancel { .. }, 200, _) => assert_eq!(body["status"], "cancelled", "{label}: {body}"),
            (Op::Cancel { .. }, 404, Some("purchase_not_found")) => {}
            (Op::Cancel { .. }, 409, Some("order_cancelled" | "hold_expired")) => {}
            (_, 503, Some("temporarily_unavailable")) => {}
            other => panic!("{label}: unexpected answer {other:?} {body}"),
        }
    }
}

fn containers(store: &Store, client: Option<aws_sdk_dynamodb::Client>) -> Vec<Arc<TestApp>> {
    (0..CONTAINERS)
        .map(|_| {
            let app = TestApp::on(store).tune(|t| *t = Tuning::default());
            Arc::new(match &client {
                Some(c) => app.via(c.clone()),
                None => app,
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sizes_with_their_own_stock_and_two_per_customer_hold_under_1000_concurrent_requests() {
    let store = fresh_store().await;
    let sale = sized_sale(&store).await;
    let responses = run(containers(&store, None), &sale, ops(23)).await;
    check(&store, &sale, &responses, "direct").await;
    let sold: usize = responses.iter().filter(|(_, s, _)| *s == 201).count();
    assert!(sold > 10, "the mix bought something: {sold}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sizes_and_limits_hold_through_conflicts_throttling_and_lost_commit_answers() {
    let store = fresh_store().await;
    let sale = sized_sale(&store).await;
    let mut rng = fastrand::Rng::with_seed(7);
    let plan: Plan = Box::new(move |op: &str, _: &str| {
        if op != "TransactWriteItems" || rng.u32(0..100) >= 30 {
            return Fault::Pass;
        }
        [Fault::Conflict, Fault::Throttle, Fault::CommitThenDrop][rng.usize(..3)]
    });
    let proxy = Proxy::start(upstream(), plan).await;
    let responses = run(containers(&store, Some(proxy.client())), &sale, ops(24)).await;
    let counts = proxy.counts();
    check(&store, &sale, &responses, "faults").await;
    let injected: usize = counts.iter().filter(|((_, f), _)| *f != "pass").map(|(_, n)| n).sum();
    assert!(injected > 30, "faults were injected: {counts:?}");
}

/// `GET`/`DELETE …/purchases/{userId}` with `?orderId=`.
async fn by_order(app: &TestApp, method: &str, sale: &str, user: &str, order: Option<&str>) -> (u16, Value) {
    let path = format!("/sales/{sale}/purchases/{user}");
    let mut event = event_json(method, &path, &[("saleId", sale), ("userId", user)], TestBody::None, None);
    if let Some(order) = order {
        event["rawQueryString"] = json!(format!("orderId={order}"));
        event["queryStringParameters"] = json!({ "orderId": order });
    }
    read(&flash_sale::http::user_lookup_function(app, request_from(&event)).await)
}

/// A customer with several orders sees every live one and the items they hold, and cancels the
/// one they name (not the latest): exactly its items go back to its own variant's shards.
#[tokio::test]
async fn a_customer_sees_every_live_order_and_cancels_the_one_they_name() {
    let store = fresh_store().await;
    let sale = sized_sale(&store).await;
    let app = TestApp::on(&store);
    let id = sale.id.to_string();
    let buy = |variant: &'static str, key: &str| Op::Buy { user: "ann".into(), variant, quantity: 1, key: key.into() };
    let (s1, first) = send(&app, &id, &buy("b", "k1")).await;
    let (s2, second) = send(&app, &id, &buy("c", "k2")).await;
    assert_eq!((s1, s2), (201, 201), "{first} {second}");
    let (first_id, second_id) = (first["orderId"].as_str().unwrap(), second["orderId"].as_str().unwrap());

    let (status, seen) = by_order(&app, "GET", &id, "ann", None).await;
    assert_eq!(status, 200, "{seen}");
    let listed: Vec<&str> =
        seen["orders"].as_array().expect("orders").iter().map(|o| o["orderId"].as_str().unwrap()).collect();
    assert_eq!(listed, [second_id, first_id], "newest first: {seen}");
    assert_eq!((seen["held"].as_i64(), seen["orderId"].as_str()), (Some(2), Some(second_id)));
    let (status, one) = by_order(&app, "GET", &id, "ann", Some(first_id)).await;
    assert_eq!((status, one["orderId"].as_str(), one["variantId"].as_str()), (200, Some(first_id), Some("b")));
    assert!(one.get("orders").is_none(), "one order is shown alone: {one}");

    let (status, cancelled) = by_order(&app, "DELETE", &id, "ann", Some(first_id)).await;
    assert_eq!((status, cancelled["orderId"].as_str()), (200, Some(first_id)), "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    // Stored: the first order cancelled, the second live, the customer holds one, variant b whole.
    let orders = store.purchases_of(&sale.id).await.expect("orders");
    let status_of = |o: &str| orders.iter().find(|r| r.order_id == o).map(|r| r.status.as_str());
    assert_eq!((status_of(first_id), status_of(second_id)), (Some("cancelled"), Some("reserved")));
    let ann = flash_sale::ids::UserId::parse("ann").unwrap();
    assert_eq!(store.customer(&sale.id, &ann).await.expect("customer").map(|c| c.live), Some(1));
    let stock = store.shard_stock(&[&sale]).await.expect("stock").remove(0);
    let left = |v: &str| sale.variant(Some(v)).unwrap().shard_range().map(|n| stock[n as usize]).sum::<i64>();
    assert_eq!((left("b"), left("c")), (7, 49));
    let (_, seen) = by_order(&app, "GET", &id, "ann", None).await;
    assert_eq!((seen["held"].as_i64(), seen["orders"].as_array().map(Vec::len)), (Some(1), Some(1)), "{seen}");

    // Another customer's order, an unknown one and a malformed id name nothing of ann's.
    let (_, bob) = send(&app, &id, &Op::Buy { user: "bob".into(), variant: "c", quantity: 1, key: "k".into() }).await;
    let bobs = bob["orderId"].as_str().expect("bob's order");
    for (order, want) in [
        (bobs, (404, "purchase_not_found")),
        ("01ARZ3NDEKTSV4RRFFQ69G5FAV", (404, "purchase_not_found")),
        ("nope", (400, "invalid_request")),
    ] {
        for method in ["GET", "DELETE"] {
            let (status, body) = by_order(&app, method, &id, "ann", Some(order)).await;
            assert_eq!((status, body["code"].as_str().unwrap()), want, "{method} {order}");
        }
    }
    let stock_after = store.shard_stock(&[&sale]).await.expect("stock").remove(0);
    assert_eq!(stock_after.iter().sum::<i64>(), stock.iter().sum::<i64>() - 1, "only bob's purchase moved stock");
}
