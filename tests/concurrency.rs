//! The central promise under truly concurrent load: exactly the stock is sold, at most one item
//! per user, and the stored state agrees with every response.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use flash_sale::config::Tuning;
use flash_sale_testkit::{TestApp, active_sale, fresh_store, purchase_request, read, stored_state, user_body};
use serde_json::Value;

const STOCK: i64 = 100;
const ATTEMPTS: usize = 5_000;
const TASKS: usize = 128;
/// 3,750 distinct users for 5,000 attempts: 1,250 attempts (25%) repeat a user.
const DISTINCT_USERS: usize = 3_750;

async fn exactly_stock_is_sold(shards: u32) {
    let store = fresh_store().await;
    let sale = active_sale(&store, STOCK, shards).await;
    // Production tuning: sale cache and sold-out hint on, as in a deployed container.
    let app = Arc::new(TestApp::on(&store).tune(|t| *t = Tuning::default()));

    let mut users: Vec<String> = (0..ATTEMPTS).map(|i| format!("user-{}", i % DISTINCT_USERS)).collect();
    fastrand::shuffle(&mut users);
    let users = Arc::new(users);
    let next = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));

    let started = Instant::now();
    let mut tasks = Vec::with_capacity(TASKS);
    for _ in 0..TASKS {
        let (app, users, next, barrier, sale_id) =
            (app.clone(), users.clone(), next.clone(), barrier.clone(), sale.id.to_string());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut seen = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(user) = users.get(i) else { break };
                let resp =
                    flash_sale::http::purchase_function(&app, purchase_request(&sale_id, &user_body(user))).await;
                let (status, body) = read(&resp);
                seen.push((user.clone(), status, body));
            }
            seen
        }));
    }
    let mut responses: Vec<(String, u16, Value)> = Vec::with_capacity(ATTEMPTS);
    for task in tasks {
        responses.extend(task.await.expect("task"));
    }
    let elapsed = started.elapsed();

    let mut by_code: BTreeMap<String, usize> = BTreeMap::new();
    for (_, status, body) in &responses {
        let key =
            if *status == 201 { "201".into() } else { format!("{status} {}", body["code"].as_str().unwrap_or("?")) };
        *by_code.entry(key).or_default() += 1;
    }
    eprintln!(
        "{shards} shard(s): {} attempts from {TASKS} tasks in {:.2} s ({:.0}/s): {by_code:?}",
        responses.len(),
        elapsed.as_secs_f64(),
        responses.len() as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(responses.len(), ATTEMPTS);
    assert!(responses.iter().all(|(_, s, _)| *s < 500), "no 5xx: {by_code:?}");

    // Stored state.
    let (stock, purchases) = stored_state(&store, &sale).await;
    assert_eq!(stock, vec![0; shards as usize], "every shard is empty");
    assert_eq!(purchases.len(), STOCK as usize, "exactly the stock was sold");
    let stored: HashMap<&str, &str> = purchases.iter().map(|p| (p.user_id.as_str(), p.order_id.as_str())).collect();
    assert_eq!(stored.len(), purchases.len(), "no user holds two purchases");

    let winners: Vec<(&str, &str)> = responses
        .iter()
        .filter(|(_, s, _)| *s == 201)
        .map(|(u, _, b)| (u.as_str(), b["orderId"].as_str().expect("orderId")))
        .collect();
    assert_eq!(winners.len(), STOCK as usize, "one 201 per item sold");
    for (user, order) in &winners {
        assert_eq!(stored.get(user), Some(order), "the 201 for {user} has its record");
    }
    let winner_users: HashSet<&str> = winners.iter().map(|(u, _)| *u).collect();
    for p in &purchases {
        assert!(winner_users.contains(p.user_id.as_str()), "{} has a record but got no 201", p.user_id);
    }
    // Every already_purchased names the stored order of that user.
    for (user, status, body) in &responses {
        if *status == 409 && body["code"] == "already_purchased" {
            assert_eq!(body["purchase"]["orderId"].as_str(), stored.get(user.as_str()).copied(), "{user}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_stock_is_sold_under_5000_concurrent_attempts_with_one_shard() {
    exactly_stock_is_sold(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_stock_is_sold_under_5000_concurrent_attempts_with_eight_shards() {
    exactly_stock_is_sold(8).await;
}
