//! The release function binaries run as Lambda would run them, against the local Runtime API:
//! cold start (spawn → first `GET /next` → first response, peak RSS) and CPU per warm invoke.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use flash_sale::config::Tuning;
use flash_sale::ids::{SaleId, UserId};
use flash_sale::store::Store;
use serde_json::Value;

use crate::local::{self, Dynamo};
use crate::runtime_api::RuntimeApi;
use crate::stats;

pub const FUNCTIONS: [&str; 3] = ["purchase", "status", "user-lookup"];

/// A fixed 32-byte admission key (hex) for the bench's processes; local only.
pub const BENCH_ADMISSION_KEY: &str = "62656e63682d61646d697373696f6e2d6b65792d6c6f63616c2d6f6e6c792121";

/// The user every user-lookup invocation asks for (bought during setup).
const LOOKUP_USER: &str = "bench-lookup-user";

/// Which binaries to start and with what extra environment.
pub struct Launch {
    pub dir: Option<PathBuf>,
    /// Only this function.
    pub only: Option<String>,
    /// Use this binary for the one function named by `only` (e.g. a build of another revision).
    pub bin: Option<PathBuf>,
    /// Extra environment for the function processes (e.g. `RUST_LOG`).
    pub env: Vec<(String, String)>,
}

impl Launch {
    fn functions(&self) -> Vec<&'static str> {
        FUNCTIONS.iter().copied().filter(|f| self.only.as_deref().is_none_or(|o| o == *f)).collect()
    }

    fn binary(&self, function: &str) -> Result<PathBuf> {
        match &self.bin {
            Some(b) if self.only.is_some() => Ok(b.clone()),
            Some(_) => bail!("--bin needs --function"),
            None => binary(&bin_dir(self.dir.clone()), function),
        }
    }
}

pub fn bin_dir(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| local::workspace_root().join("target/release"))
}

fn binary(dir: &Path, function: &str) -> Result<PathBuf> {
    let path = dir.join(function);
    if !path.is_file() {
        bail!(
            "{} is missing: build it with `cargo build --release -p purchase -p status -p user-lookup`",
            path.display()
        );
    }
    Ok(path)
}

/// The table, the sale and a stored purchase the functions work on.
pub struct Fixture {
    pub table: String,
    pub sale: String,
    /// Variants of the sale (`local::variant_list`); 1: a sale without variants.
    pub variants: u32,
}

impl Fixture {
    /// The variant purchase `n` names (`None` for a sale without variants).
    fn variant(&self, n: usize) -> Option<String> {
        (self.variants > 1).then(|| local::variant_id(u32::try_from(n % self.variants as usize).unwrap_or(0)))
    }
}

pub async fn fixture(endpoint: &str) -> Result<Fixture> {
    fixture_with(endpoint, 1).await
}

/// [`fixture`] with a sale of `variants` variants of one shard each (1: a sale without variants).
pub async fn fixture_with(endpoint: &str, variants: u32) -> Result<Fixture> {
    let store = local::fresh_store(endpoint).await?;
    let sale = local::active_sale_with_variants(&store, 10_000_000, variants).await?;
    let fx = Fixture { table: store.table().to_owned(), sale: sale.id.to_string(), variants: variants.max(1) };
    let app = local::app(&store, Tuning::default());
    let user = UserId::parse(LOOKUP_USER).map_err(|e| anyhow!("{e}"))?;
    let r = app.purchase_items(&sale.id, &user, None, fx.variant(0).as_deref(), 1).await;
    r.result.map_err(|e| anyhow!("fixture purchase: {e:?}"))?;
    Ok(fx)
}

/// The event a function gets on invocation `n`.
pub fn event(function: &str, fx: &Fixture, tag: &str, n: usize) -> Value {
    match function {
        "purchase" => local::purchase_event_for(&fx.sale, &format!("{tag}-{n}"), fx.variant(n).as_deref()),
        "status" => local::status_event(&fx.sale),
        _ => local::lookup_event(&fx.sale, LOOKUP_USER),
    }
}

pub(crate) fn expected_status(function: &str) -> u16 {
    if function == "purchase" { 201 } else { 200 }
}

/// Spawns a function binary the way the Lambda service starts `bootstrap`.
pub(crate) fn spawn(
    bin: &Path,
    function: &str,
    api: &RuntimeApi,
    endpoint: &str,
    table: &str,
    extra: &[(String, String)],
) -> Result<Child> {
    let stderr = std::fs::File::create(std::env::temp_dir().join(format!("bench-{function}.stderr")))?;
    let mut command = Command::new(bin);
    command.env_clear();
    // `purchase` does not start without its waiting-room key (the others ignore it): the key
    // itself, unless the case reads it from a secret.
    if !extra.iter().any(|(k, _)| k == "ADMISSION_KEY_SECRET_ARN") {
        command.env("ADMISSION_KEY", BENCH_ADMISSION_KEY);
    }
    command
        .envs(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .envs(api.function_env(function))
        .env("TABLE_NAME", table)
        .env("AUTH_MODE", "body")
        .env("DYNAMODB_ENDPOINT", endpoint)
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("spawn {}", bin.display()))
}

/// Peak and current resident set (KiB) from /proc/PID/status.
pub(crate) fn rss_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// CPU time of a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcCpu {
    /// utime and stime from /proc/PID/stat (clock-tick resolution).
    pub user: Duration,
    pub system: Duration,
    /// Sum of the threads' run time from /proc/PID/task/*/schedstat (ns resolution).
    pub sched: Duration,
}

pub fn proc_cpu(pid: u32) -> ProcCpu {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the ")" the fields start at 3 (state); utime is field 14, stime 15.
    let t =
        |i: usize| Duration::from_secs_f64(f.get(i - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) as f64 / hz);
    let mut ns = 0u64;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let s = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            ns += s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    ProcCpu { user: t(14), system: t(15), sched: Duration::from_nanos(ns) }
}

pub(crate) fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

pub(crate) fn status_of(body: &str) -> Option<u16> {
    serde_json::from_str::<Value>(body).ok()?.get("statusCode")?.as_u64().map(|s| s as u16)
}

struct ColdRun {
    init_ms: f64,
    first_response_ms: f64,
    peak_rss_kib: u64,
    cpu_ms: f64,
}

fn cold_once(
    bin: &Path,
    function: &str,
    fx: &Fixture,
    endpoint: &str,
    run: usize,
    extra: &[(String, String)],
) -> Result<ColdRun> {
    let api = RuntimeApi::start(function)?;
    let id = api.push(event(function, fx, &format!("cold-{}", std::process::id()), run).to_string());
    let t0 = Instant::now();
    let child = spawn(bin, function, &api, endpoint, &fx.table, extra)?;
    let pid = child.id();
    let done = api.wait_outcomes(1, Duration::from_secs(30));
    let (peak, _) = rss_kib(pid);
    let cpu = proc_cpu(pid).sched;
    kill(child);
    if !done {
        bail!(
            "{function}: no response within 30 s (init error: {:?}; see {})",
            api.init_error(),
            std::env::temp_dir().join(format!("bench-{function}.stderr")).display()
        );
    }
    let out = api.outcomes().remove(0);
    let status = status_of(&out.body);
    if out.kind != "response" || status != Some(expected_status(function)) || out.request_id != id {
        bail!("{function}: unexpected {} {:?}: {}", out.kind, status, out.body);
    }
    let first_next = api.first_next().context("no GET /next seen")?;
    Ok(ColdRun {
        init_ms: (first_next - t0).as_secs_f64() * 1e3,
        first_response_ms: (out.at - t0).as_secs_f64() * 1e3,
        peak_rss_kib: peak,
        cpu_ms: cpu.as_secs_f64() * 1e3,
    })
}

pub async fn coldstart(endpoint: Option<&str>, runs: usize, launch: Launch) -> Result<()> {
    let dynamo = Dynamo::get(endpoint).await?;
    let fx = fixture(&dynamo.endpoint).await?;
    warm_dynamo(&dynamo.endpoint, &fx).await?;
    let list = launch.functions();
    let bins = list.iter().map(|f| launch.binary(f)).collect::<Result<Vec<_>>>()?;
    println!(
        "coldstart: {runs} starts per function, functions interleaved, after 1 unmeasured start each; binaries {:?}; extra env {:?}",
        bins, launch.env
    );
    let endpoint = dynamo.endpoint.clone();
    let results = tokio::task::block_in_place(|| -> Result<Vec<Vec<ColdRun>>> {
        let mut results: Vec<Vec<ColdRun>> = list.iter().map(|_| Vec::new()).collect();
        for run in 0..=runs {
            for (i, function) in list.iter().enumerate() {
                let r = cold_once(&bins[i], function, &fx, &endpoint, run, &launch.env)?;
                if run > 0 {
                    results[i].push(r);
                }
            }
        }
        Ok(results)
    })?;
    for (i, function) in list.iter().enumerate() {
        let results = &results[i];
        let size = std::fs::metadata(&bins[i])?.len();
        let init: Vec<f64> = results.iter().map(|r| r.init_ms).collect();
        let first: Vec<f64> = results.iter().map(|r| r.first_response_ms).collect();
        let rss: Vec<f64> = results.iter().map(|r| r.peak_rss_kib as f64 / 1024.0).collect();
        let cpu: Vec<f64> = results.iter().map(|r| r.cpu_ms).collect();
        println!("  {function} ({:.2} MB x86_64 binary):", size as f64 / 1e6);
        println!(
            "    init (spawn → first GET /next) ms:   {} · p90 {:.2}",
            stats::summary(&init, 2),
            stats::quantile(&init, 0.9)
        );
        println!(
            "    first response (spawn → POST) ms:   {} · p90 {:.2}",
            stats::summary(&first, 2),
            stats::quantile(&first, 0.9)
        );
        println!("    peak RSS (VmHWM) MiB:               {}", stats::summary(&rss, 2));
        println!("    CPU until first response ms:        {}", stats::summary(&cpu, 2));
        let (i, f, r) = (stats::median(&init), stats::median(&first), stats::median(&rss));
        println!(
            "    goals: init <= 5 ms {} · first response <= 10 ms {} · RSS <= 12 MiB {}",
            met(i <= 5.0),
            met(f <= 10.0),
            met(r <= 12.0)
        );
    }
    Ok(())
}

/// DynamoDB Local answers its first requests slowly (JIT): warm the three calls the functions
/// make so that first-response times measure the function, not a cold JVM.
pub(crate) async fn warm_dynamo(endpoint: &str, fx: &Fixture) -> Result<()> {
    let store = Store::new(local::client(endpoint)?, &fx.table);
    let app = local::app(&store, Tuning { sale_cache: Duration::ZERO, ..Tuning::default() });
    let sale = SaleId::parse(&fx.sale).map_err(|e| anyhow!("{e}"))?;
    for i in 0..300 {
        let user = UserId::parse(&format!("jit-{i}")).map_err(|e| anyhow!("{e}"))?;
        let bought = app.purchase_items(&sale, &user, None, fx.variant(i).as_deref(), 1).await;
        bought.result.map_err(|e| anyhow!("warm-up purchase: {e:?}"))?;
        app.sale_view(&sale).await.map_err(|e| anyhow!("warm-up status: {e:?}"))?;
        app.lookup(&sale, &user).await.map_err(|e| anyhow!("warm-up lookup: {e:?}"))?;
    }
    Ok(())
}

pub fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "not met" }
}

pub async fn warm(
    endpoint: Option<&str>,
    invocations: usize,
    batches: usize,
    warmup: usize,
    variants: u32,
    launch: Launch,
) -> Result<()> {
    let dynamo = Dynamo::get(endpoint).await?;
    let fx = fixture_with(&dynamo.endpoint, variants).await?;
    warm_dynamo(&dynamo.endpoint, &fx).await?;
    let per_batch = (invocations / batches.max(1)).max(1);
    println!(
        "warm: {warmup} warm-up invocations, then {batches} batches of {per_batch}; child CPU from /proc (schedstat ns; utime+stime ticks as a check)"
    );
    if fx.variants > 1 {
        println!(
            "  sale with {} variants of one shard each; purchase n names variant v(n mod {})",
            fx.variants, fx.variants
        );
    }
    println!(
        "  binaries {:?}; extra env {:?}",
        launch.functions().iter().map(|f| launch.binary(f)).collect::<Vec<_>>(),
        launch.env
    );
    for function in launch.functions().iter() {
        let bin = launch.binary(function)?;
        let endpoint = dynamo.endpoint.clone();
        let fx_ref = &fx;
        tokio::task::block_in_place(|| -> Result<()> {
            let api = RuntimeApi::start(function)?;
            let child = spawn(&bin, function, &api, &endpoint, &fx_ref.table, &launch.env)?;
            let pid = child.id();
            let tag = format!("warm-{}", std::process::id());
            let result = (|| -> Result<()> {
                let mut fed = 0usize;
                let mut feed = |n: usize| -> Result<()> {
                    for _ in 0..n {
                        api.push(event(function, fx_ref, &tag, fed).to_string());
                        fed += 1;
                    }
                    if !api.wait_outcomes(fed, Duration::from_secs(600)) {
                        bail!("{function}: {} of {fed} invocations answered in time", api.outcomes().len());
                    }
                    Ok(())
                };
                feed(warmup)?;
                let (mut sched, mut user, mut system, mut wall) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                let per = |d: Duration| d.as_secs_f64() * 1e3 / per_batch as f64;
                for _ in 0..batches {
                    let c0 = proc_cpu(pid);
                    let w0 = Instant::now();
                    feed(per_batch)?;
                    let c1 = proc_cpu(pid);
                    sched.push(per(c1.sched - c0.sched));
                    user.push(per(c1.user - c0.user));
                    system.push(per(c1.system - c0.system));
                    wall.push(per(w0.elapsed()));
                }
                let ticks: Vec<f64> = user.iter().zip(&system).map(|(u, s)| u + s).collect();
                let outcomes = api.outcomes();
                let bad = outcomes
                    .iter()
                    .filter(|o| o.kind != "response" || status_of(&o.body) != Some(expected_status(function)))
                    .count();
                let (peak, _) = rss_kib(pid);
                println!("  {function}:");
                println!("    CPU per warm invoke ms (schedstat):  {}", stats::summary(&sched, 3));
                println!("    CPU per warm invoke ms (utime+stime): {}", stats::summary(&ticks, 3));
                println!("      of which user {} · system {}", stats::summary(&user, 3), stats::summary(&system, 3));
                println!("    wall per invoke ms (incl. DynamoDB Local): {}", stats::summary(&wall, 3));
                println!(
                    "    peak RSS after {} invocations: {:.2} MiB · unexpected responses: {bad}",
                    outcomes.len(),
                    peak as f64 / 1024.0
                );
                if *function == "purchase" {
                    println!("    goal purchase <= 0.3 ms CPU per warm invoke: {}", met(stats::median(&sched) <= 0.3));
                }
                if bad > 0 {
                    bail!("{function}: {bad} invocations did not answer {}", expected_status(function));
                }
                Ok(())
            })();
            kill(child);
            result
        })?;
    }
    Ok(())
}
