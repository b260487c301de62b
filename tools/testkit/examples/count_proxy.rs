//! The recording proxy as a process of its own, for the benchmarks: forwards every DynamoDB call
//! to the loopback DynamoDB Local at `DYNAMODB_ENDPOINT` and writes the calls per operation (one
//! JSON object, rewritten every second) to the file named by its first argument. Prints its own
//! endpoint (point the functions' `DYNAMODB_ENDPOINT` at it). Runs until killed, or at most the
//! seconds given as second argument (default 3,600).
//!
//!   DYNAMODB_ENDPOINT=http://127.0.0.1:8000 cargo run -p flash-sale-testkit --example count_proxy -- counts.json

use std::time::{Duration, Instant};

use flash_sale_testkit::proxy::{Proxy, pass, upstream};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let out = args.next().expect("usage: count_proxy <counts.json> [seconds]");
    let limit = Duration::from_secs(args.next().map_or(3_600, |s| s.parse().expect("seconds")));
    let proxy = Proxy::start(upstream(), pass()).await;
    println!("{}", proxy.endpoint);
    let started = Instant::now();
    while started.elapsed() < limit {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut counts = serde_json::Map::new();
        for ((op, _fault), n) in proxy.counts() {
            let entry = counts.entry(op).or_insert(serde_json::json!(0));
            *entry = serde_json::json!(entry.as_u64().unwrap_or(0) + n as u64);
        }
        std::fs::write(&out, serde_json::Value::Object(counts).to_string()).expect("write counts");
    }
}
