//! `warm-cases`: CPU per warm invoke and memory of several function processes ("cases") in one
//! run, batches interleaved case by case, each case with its own Runtime API. Every batch is
//! queued at once, so a process polling with `AWS_LAMBDA_MAX_CONCURRENCY=N` (Lambda Managed
//! Instances; `purchase-variant` built with `--features concurrency`, `BENCH_RUNTIME=concurrent`)
//! has N invocations in flight, and one polling sequentially (the shipped binaries) has one.
//!
//! A case is `LABEL:PATH[:KEY=VALUE]...` (as in `first-response`, without `tls`).

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use flash_sale::config::Tuning;
use flash_sale::ids::UserId;

use crate::first_response::Case;
use crate::functions::{self, Fixture, event, expected_status, kill, proc_cpu, rss_kib, spawn, status_of};
use crate::local::{self, Dynamo};
use crate::runtime_api::RuntimeApi;
use crate::stats;

/// A purchase fixture whose sale has `shards` stock shards, so that many purchases in flight do
/// not all queue on one item of DynamoDB Local.
async fn fixture(endpoint: &str, shards: u32) -> Result<Fixture> {
    let store = local::fresh_store(endpoint).await?;
    let sale = local::active_sale(&store, 10_000_000, shards).await?;
    let app = local::app(&store, Tuning::default());
    let user = UserId::parse("bench-lookup-user").map_err(|e| anyhow!("{e}"))?;
    app.purchase(&sale.id, &user, None).await.result.map_err(|e| anyhow!("fixture purchase: {e:?}"))?;
    Ok(Fixture { table: store.table().to_owned(), sale: sale.id.to_string() })
}

pub struct Args {
    pub endpoint: Option<String>,
    pub function: String,
    pub cases: Vec<Case>,
    pub invocations: usize,
    pub batches: usize,
    pub warmup: usize,
    pub shards: u32,
}

pub async fn run(args: Args) -> Result<()> {
    let function = args.function.as_str();
    if !functions::FUNCTIONS.contains(&function) {
        bail!("unknown function {function}");
    }
    if args.cases.is_empty() {
        bail!("give at least one --case LABEL:PATH[:KEY=VALUE]...");
    }
    if let Some(c) = args.cases.iter().find(|c| c.tls) {
        bail!("{}: warm-cases runs plain HTTP only", c.label);
    }
    let dynamo = Dynamo::get(args.endpoint.as_deref()).await?;
    let fx = fixture(&dynamo.endpoint, args.shards).await?;
    functions::warm_dynamo(&dynamo.endpoint, &fx).await?;
    let per_batch = (args.invocations / args.batches.max(1)).max(1);
    println!(
        "warm-cases: {function}, {} warm-up invocations per case, then {} batches of {per_batch} per case, cases interleaved batch by batch; each batch queued at once; sale with {} shard(s); load average {}",
        args.warmup,
        args.batches,
        args.shards,
        loadavg()
    );
    for c in &args.cases {
        println!("  case `{}`: {} env {:?}", c.label, c.bin.display(), c.env);
    }
    let endpoint = dynamo.endpoint.clone();
    tokio::task::block_in_place(|| -> Result<()> {
        struct Running {
            api: RuntimeApi,
            child: Option<std::process::Child>,
            pid: u32,
            fed: usize,
            sched: Vec<f64>,
            wall: Vec<f64>,
        }
        let mut running = Vec::new();
        for c in &args.cases {
            let api = RuntimeApi::start(function)?;
            let child = spawn(&c.bin, function, &api, &endpoint, &fx.table, &c.env)?;
            let pid = child.id();
            running.push(Running { api, child: Some(child), pid, fed: 0, sched: vec![], wall: vec![] });
        }
        let result = (|| -> Result<()> {
            let feed = |r: &mut Running, n: usize, case: usize, label: &str, fx: &Fixture| -> Result<()> {
                for _ in 0..n {
                    r.api.push(event(function, fx, &format!("wc-{}-{case}", std::process::id()), r.fed).to_string());
                    r.fed += 1;
                }
                if !r.api.wait_outcomes(r.fed, Duration::from_secs(600)) {
                    bail!("{label}: {} of {} invocations answered in time", r.api.outcomes().len(), r.fed);
                }
                Ok(())
            };
            for (i, (r, c)) in running.iter_mut().zip(&args.cases).enumerate() {
                feed(r, args.warmup, i, &c.label, &fx)?;
            }
            for _ in 0..args.batches {
                for (i, (r, c)) in running.iter_mut().zip(&args.cases).enumerate() {
                    let c0 = proc_cpu(r.pid);
                    let w0 = Instant::now();
                    feed(r, per_batch, i, &c.label, &fx)?;
                    let c1 = proc_cpu(r.pid);
                    r.sched.push((c1.sched - c0.sched).as_secs_f64() * 1e3 / per_batch as f64);
                    r.wall.push(w0.elapsed().as_secs_f64() * 1e3 / per_batch as f64);
                }
            }
            println!("  load average after: {}", loadavg());
            println!(
                "  | case | CPU per invoke ms (median [min–max]) | wall per invoke ms | invokes/s | peak RSS MiB | unexpected answers |"
            );
            println!("  |---|---|---|---|---|---|");
            for (r, c) in running.iter().zip(&args.cases) {
                let outcomes = r.api.outcomes();
                let bad = outcomes
                    .iter()
                    .filter(|o| o.kind != "response" || status_of(&o.body) != Some(expected_status(function)))
                    .count();
                let (peak, _) = rss_kib(r.pid);
                let wall = stats::median(&r.wall);
                println!(
                    "  | {} | {:.3} [{:.3}–{:.3}] | {:.3} | {:.0} | {:.2} | {bad} of {} |",
                    c.label,
                    stats::median(&r.sched),
                    stats::min(&r.sched),
                    stats::max(&r.sched),
                    wall,
                    1e3 / wall,
                    peak as f64 / 1024.0,
                    outcomes.len()
                );
            }
            Ok(())
        })();
        for r in &mut running {
            if let Some(child) = r.child.take() {
                kill(child);
            }
        }
        result
    })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
