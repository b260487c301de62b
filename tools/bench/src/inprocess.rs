//! In-process throughput of a handler called directly from N tasks, beside DynamoDB Local's raw
//! throughput of the calls it cannot do without, same run, alternating, each side on a fresh table.
//! `Mode::Purchase` (here): the `purchase` handler vs raw `TransactWriteItems` with the same two
//! items, a sale with exactly enough stock. `Mode::Joins` (`crate::joins`): waiting-room joins.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use flash_sale::clock::now_ms;
use flash_sale::config::Tuning;
use flash_sale::http::purchase_function;

use crate::local::{self, Dynamo};
use crate::{rawtx, stats};

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The purchase handler vs raw TransactWriteItems.
    Purchase,
    /// The queue handler's joins after opening vs raw PutItem and GetItem+PutItem.
    Joins,
}

impl Mode {
    /// Attempts per side per round when none are given.
    pub fn default_attempts(self) -> usize {
        match self {
            Mode::Purchase => 5000,
            Mode::Joins => 3000,
        }
    }
}

pub struct Args {
    pub endpoint: Option<String>,
    pub mode: Mode,
    pub tasks: usize,
    pub attempts: usize,
    pub rounds: usize,
    /// Stock shards of the purchase sale (the joins' sale has 4).
    pub shards: u32,
    pub max_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Raw,
    Handler,
}

struct SideResult {
    per_sec: f64,
    ok: usize,
    failed: usize,
    latencies_ms: Vec<f64>,
}

/// Splits `total` over `parts` as evenly as possible.
pub(crate) fn split(total: usize, parts: usize) -> Vec<usize> {
    (0..parts).map(|i| total / parts + usize::from(i < total % parts)).collect()
}

async fn run_side(
    endpoint: &str,
    side: Side,
    tasks: usize,
    attempts: usize,
    shards: u32,
    limit: Duration,
) -> Result<SideResult> {
    let store = local::fresh_store(endpoint).await?;
    // One shard: exactly the stock needed. More: both sides pick a random shard, so leave slack
    // (twice the stock) that no shard runs dry and every attempt stays one transaction.
    let stock = if shards == 1 { attempts } else { attempts * 2 };
    let sale = local::active_sale(&store, stock as i64, shards).await?;
    let sale_id = sale.id.to_string();
    let deadline = Instant::now() + limit;
    let counts = split(attempts, tasks);

    let mut handles = Vec::with_capacity(tasks);
    let started;
    match side {
        Side::Raw => {
            // A client of its own, built like the store's.
            let client = local::client(endpoint)?;
            let table = store.table().to_owned();
            started = Instant::now();
            for (t, count) in counts.into_iter().enumerate() {
                let (client, table, sale_id) = (client.clone(), table.clone(), sale_id.clone());
                handles.push(tokio::spawn(async move {
                    let (mut ok, mut failed, mut lat) = (0usize, 0usize, Vec::with_capacity(count));
                    for i in 0..count {
                        if Instant::now() > deadline {
                            break;
                        }
                        let user = format!("u{t}-{i}");
                        let shard = fastrand::u32(0..shards);
                        let t0 = Instant::now();
                        let r = rawtx::purchase(&client, &table, &sale_id, shard, &user, now_ms(), false).await;
                        lat.push(t0.elapsed().as_secs_f64() * 1e3);
                        if r.is_ok() { ok += 1 } else { failed += 1 }
                    }
                    (ok, failed, lat)
                }));
            }
        }
        Side::Handler => {
            let store = flash_sale::store::Store::new(local::client(endpoint)?, store.table());
            let app = local::leaked_app(&store, Tuning::default());
            // Requests are built before the clock starts: in Lambda the runtime does that part.
            let mut prepared = Vec::with_capacity(tasks);
            for (t, count) in counts.into_iter().enumerate() {
                let reqs: Vec<_> =
                    (0..count).map(|i| local::purchase_request(&sale_id, &format!("u{t}-{i}"))).collect();
                prepared.push(reqs);
            }
            started = Instant::now();
            for reqs in prepared {
                handles.push(tokio::spawn(async move {
                    let (mut ok, mut failed, mut lat) = (0usize, 0usize, Vec::with_capacity(reqs.len()));
                    for req in reqs {
                        if Instant::now() > deadline {
                            break;
                        }
                        let t0 = Instant::now();
                        let resp = purchase_function(app, req).await;
                        lat.push(t0.elapsed().as_secs_f64() * 1e3);
                        if resp.status_code == 201 { ok += 1 } else { failed += 1 }
                    }
                    (ok, failed, lat)
                }));
            }
        }
    }
    let (mut ok, mut failed, mut latencies_ms) = (0, 0, Vec::with_capacity(attempts));
    for h in handles {
        let (o, f, l) = h.await.map_err(|e| anyhow!("task failed: {e}"))?;
        ok += o;
        failed += f;
        latencies_ms.extend(l);
    }
    let secs = started.elapsed().as_secs_f64();
    if Instant::now() > deadline {
        bail!("{side:?} side hit the {} s limit after {} attempts", limit.as_secs(), ok + failed);
    }
    Ok(SideResult { per_sec: (ok + failed) as f64 / secs, ok, failed, latencies_ms })
}

pub async fn run(args: Args) -> Result<()> {
    if args.mode == Mode::Joins {
        return crate::joins::run(&args).await;
    }
    let dynamo = Dynamo::get(args.endpoint.as_deref()).await?;
    let limit = Duration::from_secs(args.max_seconds);
    println!(
        "inprocess: {} tasks, {} attempts per side per round, {} rounds, {} shard(s), DynamoDB Local at {}",
        args.tasks, args.attempts, args.rounds, args.shards, dynamo.endpoint
    );
    // Warm both paths (JIT in DynamoDB Local, connection pools, allocator) without counting them.
    let warm = (args.attempts / 5).max(args.tasks);
    run_side(&dynamo.endpoint, Side::Raw, args.tasks, warm, args.shards, limit).await?;
    run_side(&dynamo.endpoint, Side::Handler, args.tasks, warm, args.shards, limit).await?;

    let (mut raw, mut handler, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut raw_p50, mut raw_p95, mut h_p50, mut h_p95) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.rounds {
        // Alternate which side goes first so drift (GC, other load) hits both alike.
        let order = if round % 2 == 0 { [Side::Raw, Side::Handler] } else { [Side::Handler, Side::Raw] };
        let mut a = None;
        let mut b = None;
        for side in order {
            let r = run_side(&dynamo.endpoint, side, args.tasks, args.attempts, args.shards, limit).await?;
            if r.failed > 0 || r.ok != args.attempts {
                bail!(
                    "{side:?} round {round}: {} ok, {} failed of {} (every attempt should succeed)",
                    r.ok,
                    r.failed,
                    args.attempts
                );
            }
            match side {
                Side::Raw => a = Some(r),
                Side::Handler => b = Some(r),
            }
        }
        let (a, b) = (a.expect("raw ran"), b.expect("handler ran"));
        println!(
            "  round {}: raw TransactWriteItems {:.0}/s (p50 {:.1} ms, p95 {:.1} ms) · handler {:.0}/s (p50 {:.1} ms, p95 {:.1} ms) · ratio {:.3}",
            round + 1,
            a.per_sec,
            stats::median(&a.latencies_ms),
            stats::quantile(&a.latencies_ms, 0.95),
            b.per_sec,
            stats::median(&b.latencies_ms),
            stats::quantile(&b.latencies_ms, 0.95),
            b.per_sec / a.per_sec
        );
        raw.push(a.per_sec);
        handler.push(b.per_sec);
        ratios.push(b.per_sec / a.per_sec);
        raw_p50.push(stats::median(&a.latencies_ms));
        raw_p95.push(stats::quantile(&a.latencies_ms, 0.95));
        h_p50.push(stats::median(&b.latencies_ms));
        h_p95.push(stats::quantile(&b.latencies_ms, 0.95));
    }
    println!("raw TransactWriteItems attempts/s: {}", stats::summary(&raw, 0));
    println!("purchase handler attempts/s:      {}", stats::summary(&handler, 0));
    println!(
        "latency ms, median over rounds: raw p50 {:.1} p95 {:.1} · handler p50 {:.1} p95 {:.1}",
        stats::median(&raw_p50),
        stats::median(&raw_p95),
        stats::median(&h_p50),
        stats::median(&h_p95)
    );
    let ratio = stats::median(&ratios);
    println!(
        "ratio handler/raw (median over rounds): {:.3} (rounds {}) — goal >= 0.9: {}",
        ratio,
        ratios.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(", "),
        if ratio >= 0.9 { "met" } else { "not met" }
    );
    drop(dynamo);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small run of `mode` against the test run's DynamoDB Local.
    async fn small(mode: Mode) {
        let Some(endpoint) = local::test_endpoint() else { return };
        let args =
            Args { endpoint: Some(endpoint), mode, tasks: 4, attempts: 40, rounds: 1, shards: 2, max_seconds: 120 };
        run(args).await.unwrap();
    }

    /// Both sides against DynamoDB Local: every attempt a successful purchase on each.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_sides_sell_every_attempt() {
        small(Mode::Purchase).await;
    }

    /// All three join sides against DynamoDB Local: every join of a new person succeeds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_join_succeeds_on_each_side() {
        small(Mode::Joins).await;
    }
}
