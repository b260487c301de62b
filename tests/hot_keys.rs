//! No hot item at the crowd the room is built for, counted through the recording proxy: a run of
//! joins before and after opening, purchases and status polls, concurrent and bounded, through
//! several containers; then, for every key, the share of all writes it took.
//!
//! DynamoDB Local never throttles or answers `TransactionConflict`, so the test counts what the
//! cloud would limit: the writes per item (DynamoDB takes about 1,000 WCU/s per item) and the
//! transactions that meet on one item (the project's model puts conflict-free transactional writes
//! near 50/s per item).
//!
//! Definitions, as the assertions use them:
//! - a *write* to a key: one `PutItem`, `UpdateItem` or `DeleteItem` on it, or one `Put`, `Update`
//!   or `Delete` of a `TransactWriteItems` on it, or one entry of a `BatchWriteItem`, as the proxy
//!   saw the request (a write whose condition failed counts too: it costs capacity as well);
//! - the *join writes*: every write sent by the containers that serve the joins (their joins, and
//!   the room steps those requests make);
//! - two transactions *within the same millisecond* on one key: two `TransactWriteItems` requests
//!   that both name the key (in a `Put`, `Update`, `Delete` or `ConditionCheck`) and reached the
//!   proxy less than 1 ms apart (the instant the proxy had read the whole request).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flash_sale_testkit::proxy::{Recording, Seen, pass};
use flash_sale_testkit::{SaleSpec, TestApp, now_ms};
use serde_json::Value;

const HOUR: i64 = 3_600_000;
/// Joins in all, of which `PREQUEUE` before opening and the rest after.
const JOINS: usize = 20_000;
/// The pre-queue: large enough to hold the 2,000 buyers (the draw of 5,000 takes a while here).
const PREQUEUE: usize = 5_000;
const PURCHASES: usize = 2_000;
/// Requests in flight at once (joins; purchases and polls have their own, smaller bounds).
const CONCURRENCY: usize = 96;
const CONTAINERS: usize = 8;
/// Stock shards: the admission rate is 32 × 50 = 1,600/s, and each shard takes 1/32 of the purchases.
const SHARDS: u32 = 32;
/// Largest share of the join writes one key may take.
const MAX_SHARE: f64 = 0.005;

/// The keys one request writes (`pk|sk`), and whether it is a transaction.
fn written_keys(seen: &Seen) -> (Vec<String>, Vec<String>) {
    let body: Value = match serde_json::from_str(&seen.body) {
        Ok(v) => v,
        Err(_) => return (Vec::new(), Vec::new()),
    };
    let key_of = |k: &Value| -> String {
        let s = |name: &str| k[name]["S"].as_str().unwrap_or("?").to_owned();
        format!("{}|{}", s("pk"), s("sk"))
    };
    let mut writes = Vec::new();
    let mut touched = Vec::new();
    match seen.op.as_str() {
        "PutItem" => writes.push(key_of(&body["Item"])),
        "UpdateItem" | "DeleteItem" => writes.push(key_of(&body["Key"])),
        "BatchWriteItem" => {
            for requests in body["RequestItems"].as_object().into_iter().flat_map(|t| t.values()) {
                for r in requests.as_array().into_iter().flatten() {
                    if let Some(item) = r.get("PutRequest") {
                        writes.push(key_of(&item["Item"]));
                    } else if let Some(del) = r.get("DeleteRequest") {
                        writes.push(key_of(&del["Key"]));
                    }
                }
            }
        }
        "TransactWriteItems" => {
            for item in body["TransactItems"].as_array().into_iter().flatten() {
                if let Some(put) = item.get("Put") {
                    writes.push(key_of(&put["Item"]));
                } else if let Some(w) = item.get("Update").or_else(|| item.get("Delete")) {
                    writes.push(key_of(&w["Key"]));
                } else if let Some(check) = item.get("ConditionCheck") {
                    touched.push(key_of(&check["Key"]));
                }
            }
            touched.extend(writes.iter().cloned());
        }
        _ => {}
    }
    (writes, touched)
}

/// A key with the sale id and the user ids (`p…`, `a…`) folded, for the table.
fn kind(key: &str, sale: &str) -> String {
    let key = key.replace(sale, "{sale}");
    let mut out = String::new();
    let mut part = String::new();
    let fold = |part: &str| {
        let user = part.len() > 1
            && (part.starts_with('p') || part.starts_with('a'))
            && part[1..].chars().all(|c| c.is_ascii_digit());
        if user { "{user}".to_owned() } else { part.to_owned() }
    };
    for c in key.chars() {
        if c == '#' || c == '|' {
            out.push_str(&fold(&part));
            out.push(c);
            part.clear();
        } else {
            part.push(c);
        }
    }
    out.push_str(&fold(&part));
    out
}

/// A bounded run of `count` calls of `work(n)`, `at_once` at a time, spread over tasks.
async fn run<F, Fut>(count: usize, at_once: usize, work: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let work = Arc::new(work);
    let workers: Vec<_> = (0..at_once)
        .map(|_| {
            let (next, work) = (next.clone(), work.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        return;
                    }
                    work(n).await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("a worker panicked");
    }
}

/// 20,000 joins (5,000 before opening, 15,000 after), 2,000 purchases and the status polls,
/// through 8 join containers and 8 others: no key takes more than 0.5 % of the join writes, and
/// no key other than a stock shard is named by two transactions within the same millisecond.
/// (Stock shards are the purchase path's designed meeting point: the admission rate holds them
/// to shards × 50 purchases/s and the purchase retries a `TransactionConflict`; their figure is
/// printed.) Run with `--nocapture` for the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_key_takes_a_hot_share_of_the_writes() {
    let started = Instant::now();
    let start = now_ms() + HOUR;
    let base = TestApp::fresh().await.at(start - 60_000).admission().tune(|t| {
        t.sale_cache = Duration::from_secs(600);
        // As deployed: containers step a stale room at offsets of their own.
        t.room_step_spread = flash_sale::config::Tuning::default().room_step_spread;
    });
    let (sale, seed) =
        SaleSpec::new().stock(PURCHASES as i64).shards(SHARDS).window(start, start + HOUR).create_room(&base).await;
    let id = sale.id.to_string();
    let joins_rec = Recording::start(pass()).await;
    let others_rec = Recording::start(pass()).await;
    let joiners: Arc<Vec<TestApp>> =
        Arc::new((0..CONTAINERS).map(|_| base.container().via(joins_rec.proxy.patient_client())).collect());
    let others: Arc<Vec<TestApp>> =
        Arc::new((0..CONTAINERS).map(|_| base.container().via(others_rec.proxy.patient_client())).collect());
    let early: Arc<Vec<String>> = Arc::new((0..PREQUEUE).map(|n| format!("p{n}")).collect());

    // Before opening: the pre-queue fills; every tenth join is followed by a status poll.
    {
        let (joiners, others, early, id) = (joiners.clone(), others.clone(), early.clone(), id.clone());
        run(PREQUEUE, CONCURRENCY, move |n| {
            let (joiners, others, early, id) = (joiners.clone(), others.clone(), early.clone(), id.clone());
            async move {
                let (status, body) = joiners[n % CONTAINERS].post_queue(&id, &early[n]).await;
                assert_eq!(status, 200, "{body}");
                if n % 10 == 0 {
                    assert_eq!(others[n % CONTAINERS].view(&id).await["queue"]["state"], "prequeue");
                }
            }
        })
        .await;
    }
    let prequeue_secs = started.elapsed().as_secs_f64();

    // Opening: the scheduled function draws (the pre-queue is larger than a request draws).
    base.clock().set(start + flash_sale::room::DRAW_GRACE_MS);
    // Each run draws for its budget and stores its progress; the next continues (bounded).
    let mut runs = 0;
    while others[0].draw_due_rooms().await.unwrap() != vec![id.clone()] {
        runs += 1;
        assert!(runs < 20, "the draw did not complete");
    }
    let draw_secs = started.elapsed().as_secs_f64() - prequeue_secs;
    // Seconds of admission at 1,600/s: the first 2,000 places are admitted (the stock's worth).
    for _ in 0..5 {
        base.clock().advance(1_000);
        others[0].view(&id).await;
    }
    assert_eq!(others[0].view(&id).await["queue"]["admittedThrough"], PURCHASES as i64);
    let order: BTreeMap<i64, String> =
        flash_sale::room::draw(&seed, &early).into_iter().map(|(user, place)| (place, user)).collect();
    let buyers: Arc<Vec<String>> = Arc::new((1..=PURCHASES as i64).map(|p| order[&p].clone()).collect());

    // After opening: 15,000 joins, the 2,000 admitted buy (each polls their place for the token
    // first), and the status is polled; the clock moves a second per 1,000 joins.
    let joined = Arc::new(AtomicUsize::new(0));
    let joins = {
        let (joiners, others, id, joined) = (joiners.clone(), others.clone(), id.clone(), joined.clone());
        let clock = base.clock().clone();
        tokio::spawn(run(JOINS - PREQUEUE, CONCURRENCY, move |n| {
            let (joiners, others, id, joined, clock) =
                (joiners.clone(), others.clone(), id.clone(), joined.clone(), clock.clone());
            async move {
                let (status, body) = joiners[n % CONTAINERS].post_queue(&id, &format!("a{n}")).await;
                assert_eq!(status, 200, "{body}");
                // The clock moves as a real one would, in small steps: 1,000 joins a second.
                if joined.fetch_add(1, Ordering::Relaxed) % 100 == 99 {
                    clock.advance(100);
                }
                if n % 10 == 0 {
                    others[n % CONTAINERS].view(&id).await;
                }
            }
        }))
    };
    let purchases = {
        let (others, buyers, id) = (others.clone(), buyers.clone(), id.clone());
        tokio::spawn(run(PURCHASES, 16, move |n| {
            let (others, buyers, id) = (others.clone(), buyers.clone(), id.clone());
            async move {
                let container = &others[n % CONTAINERS];
                let (_, line) = container.get_queue(&id, &buyers[n]).await;
                assert_eq!(line["state"], "admitted", "{}: {line}", buyers[n]);
                let (status, body) = container.buy_admitted(&id, &buyers[n], line["admissionToken"].as_str()).await;
                assert_eq!(status, 201, "{body}");
            }
        }))
    };
    joins.await.unwrap();
    purchases.await.unwrap();
    let total_secs = started.elapsed().as_secs_f64();
    let (stock, sold) = base.stored(&sale).await;
    assert_eq!((stock.iter().sum::<i64>(), sold.len()), (0, PURCHASES), "exactly the stock sold");
    let entries = base.store().room_entries(&sale.id).await.unwrap();
    assert_eq!(entries.len(), JOINS, "one entry per person");

    // The count, per key.
    let join_seen = joins_rec.take_timed();
    let other_seen = others_rec.take_timed();
    let mut writes: HashMap<String, usize> = HashMap::new();
    let mut join_writes = 0usize;
    let mut transactions: HashMap<String, Vec<Instant>> = HashMap::new();
    for (n, seen) in join_seen.iter().chain(other_seen.iter()).enumerate() {
        let (written, touched) = written_keys(seen);
        if n < join_seen.len() {
            join_writes += written.len();
        }
        for key in written {
            *writes.entry(key).or_default() += 1;
        }
        for key in touched {
            transactions.entry(key).or_default().push(seen.at);
        }
    }
    let all_writes: usize = writes.values().sum();
    let mut ranked: Vec<(&String, &usize)> = writes.iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut same_ms: BTreeMap<String, usize> = BTreeMap::new();
    for (key, times) in &mut transactions {
        times.sort();
        let pairs = times.windows(2).filter(|w| w[1] - w[0] < Duration::from_millis(1)).count();
        if pairs > 0 {
            same_ms.insert(key.clone(), pairs);
        }
    }
    println!(
        "hot keys: {JOINS} joins, {PURCHASES} purchases, {} requests; {all_writes} writes, {join_writes} by joins; \
         pre-queue in {prequeue_secs:.1} s, draw {draw_secs:.1} s, all in {total_secs:.1} s",
        join_seen.len() + other_seen.len()
    );
    println!("| key | writes | share of all writes | share of join writes | same-ms transaction pairs |");
    println!("|---|---:|---:|---:|---:|");
    for (key, count) in ranked.iter().take(10) {
        println!(
            "| `{}` | {count} | {:.3} % | {:.3} % | {} |",
            kind(key, &id),
            100.0 * **count as f64 / all_writes as f64,
            100.0 * **count as f64 / join_writes as f64,
            same_ms.get(*key).copied().unwrap_or(0)
        );
    }
    let shard_pairs: usize = same_ms.iter().filter(|(k, _)| k.contains("#STOCK#")).map(|(_, n)| n).sum();
    println!("stock shards: {shard_pairs} same-ms transaction pairs (the purchase path's designed meeting point)");
    let mut others_same_ms: Vec<(String, usize)> =
        same_ms.iter().filter(|(k, _)| !k.contains("#STOCK#")).map(|(k, n)| (kind(k, &id), *n)).collect();
    others_same_ms.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    println!("other keys named by two transactions within 1 ms: {}", others_same_ms.len());

    // Every key, the two written per second rather than per join included (the room's state:
    // one step a second, by one container; the counter of places after opening: one write per
    // block, a block being up to two seconds of one container's joins).
    for (key, count) in &ranked {
        assert!(
            (**count as f64) <= MAX_SHARE * join_writes as f64,
            "`{}` took {count} of {join_writes} join writes",
            kind(key, &id)
        );
    }
    assert!(others_same_ms.is_empty(), "keys named by two transactions within 1 ms: {others_same_ms:?}");
}
