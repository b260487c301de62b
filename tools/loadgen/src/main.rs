//! `loadgen`: sends a storm of purchase attempts at one sale, then checks the table.
//!
//! ```text
//! cargo run --release -p loadgen -- --base-url http://127.0.0.1:9000 \
//!     --dynamodb-endpoint http://127.0.0.1:8000 --create-sale --sale-id lg-1 --stock 100 \
//!     --users 4000 --duplicate-share 0.2 --attempts 5000 --concurrency 64
//! ```
//!
//! A sale with sizes and up to N items per customer: `--variant ID:LABEL:STOCK[:SHARDS]` (repeat)
//! and `--max-per-customer N` create one; on a sale with variants each attempt names one at
//! random, and `--max-quantity K` asks for a random quantity from 1 to K. The table is then checked
//! per variant and per customer (see `loadgen::verify`).
//!
//! ```text
//! cargo run --release -p loadgen -- --base-url http://127.0.0.1:9000 \
//!     --dynamodb-endpoint http://127.0.0.1:8000 --create-sale --sale-id lg-sizes \
//!     --variant s:S:60 --variant m:M:100:2 --variant l:L:40 --max-per-customer 3 --max-quantity 3 \
//!     --users 2000 --duplicate-share 0.5 --attempts 5000 --concurrency 64
//! ```
//!
//! Three ways to pace: `--concurrency N` (closed loop, N connections), `--rate R` (open loop) and
//! `--stages 10s:100,20s:1000,10s:0` (closed-loop users ramping like k6's `ramping-vus`).
//! The local stack (`cargo xtask dev`) takes any number of connections: its front door queues what
//! the function instances cannot take yet and answers 503 with `Retry-After` beyond that, and it
//! warms every instance before it says ready. Do not build with cargo while the stack serves: its
//! instances start with `cargo run` and wait for cargo's locks.
//!
//! Exit status: 0 when every invariant held, 1 when one was violated, 2 on a usage error or a
//! refused target, 3 when the run could not be carried out (sale missing, API or table unreachable).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use flash_sale::aws;
use flash_sale::ids::SaleId;
use flash_sale::sale::Sale;
use flash_sale::store::{Store, StoreError};
use flash_sale::time_fmt::rfc3339_ms;
use loadgen::attempt::Attempt;
use loadgen::fairness::{fairness, resolve_outcomes};
use loadgen::load::{self, HttpClient, LoadSpec};
use loadgen::plan::{Plan, PlanSpec, user_id};
use loadgen::ramp::{self, parse_stages};
use loadgen::report::{Mode, Report, RunInfo};
use loadgen::target::BaseUrl;
use loadgen::verify::{
    Choice, StoreFacts, StoredPurchase, check_answers, check_replies, check_sized_replies, check_sized_store,
    check_store, unknown_from_replies,
};
use serde_json::Value;

#[derive(Parser)]
#[command(
    name = "loadgen",
    version,
    about = "Purchase storm against one flash sale, with latency, fairness and invariant checks"
)]
#[command(group(clap::ArgGroup::new("sale_stock").args(["stock", "variant"]).multiple(true)))]
struct Cli {
    /// API base URL: loopback (the local stack) or https:// (a deployed stage in AUTH_MODE=body).
    #[arg(long)]
    base_url: String,
    /// Send to another host over plain http. Never needed for 127.0.0.1 or https.
    #[arg(long)]
    allow_remote: bool,
    #[arg(long)]
    sale_id: String,
    /// Create the sale first (open from now, --sale-window-secs long) in the table.
    #[arg(long, requires = "sale_stock")]
    create_sale: bool,
    /// Stock of the created sale.
    #[arg(long, requires = "create_sale", conflicts_with = "variant")]
    stock: Option<i64>,
    /// Stock shards of the created sale [default: 1].
    #[arg(long, requires = "create_sale", conflicts_with = "variant")]
    shards: Option<u32>,
    /// A variant of the created sale with its own stock, `ID:LABEL:STOCK[:SHARDS]` (e.g.
    /// `m:M:100:2`); repeat for each. Shards default to 1.
    #[arg(long, requires = "create_sale")]
    variant: Vec<String>,
    /// The most items one customer of the created sale may hold across its variants [default: 1].
    #[arg(long, requires = "create_sale")]
    max_per_customer: Option<u32>,
    /// Each attempt asks for a random quantity from 1 to this (1: no quantity is sent).
    #[arg(long, default_value_t = 1)]
    max_quantity: u32,
    /// How long the created sale stays open.
    #[arg(long, default_value_t = 3_600, requires = "create_sale")]
    sale_window_secs: i64,
    /// DynamoDB table (sale creation and verification).
    #[arg(long, env = "TABLE_NAME", default_value = "flash-sale")]
    table: String,
    /// DynamoDB Local endpoint (loopback only). Without it the standard AWS environment is used.
    #[arg(long, env = "DYNAMODB_ENDPOINT")]
    dynamodb_endpoint: Option<String>,
    /// Skip reading the table after the run: check the replies only.
    #[arg(long, conflicts_with = "create_sale")]
    no_verify: bool,
    /// Distinct users available.
    #[arg(long, default_value_t = 1_000)]
    users: u32,
    /// Fraction of attempts that repeat an earlier user.
    #[arg(long, default_value_t = 0.0)]
    duplicate_share: f64,
    /// Total attempts (upper bound; --duration-secs may stop the run earlier).
    #[arg(long, default_value_t = 5_000)]
    attempts: u32,
    /// Closed loop: this many connections, each sending when its last attempt is answered [default: 64].
    #[arg(long, conflicts_with = "rate")]
    concurrency: Option<u32>,
    /// Open loop: this many attempts per second, whatever the answers.
    #[arg(long)]
    rate: Option<f64>,
    /// Open loop: most requests open at once.
    #[arg(long, default_value_t = 100, requires = "rate")]
    max_in_flight: u32,
    /// Ramping closed-loop users, k6 style: `duration:target` stages, e.g. `10s:100,20s:1000,10s:0`
    /// (linear from the last target, starting at 0). The run lasts as long as the stages.
    #[arg(long, conflicts_with_all = ["rate", "concurrency"])]
    stages: Option<String>,
    /// Closed loop and ramp: after a 503 with Retry-After a user waits that long before its next
    /// attempt, as the storefront does (without it, users retry at once).
    #[arg(long, conflicts_with = "rate")]
    honor_retry_after: bool,
    /// Exit 1 unless every answer is 201, 409, or 503 with Retry-After, and no request timed out or
    /// lost its connection.
    #[arg(long)]
    require_clean_answers: bool,
    /// Hard stop: no attempt starts after this many seconds [default: 60, or the stages' length].
    #[arg(long)]
    duration_secs: Option<f64>,
    /// Per attempt; a reply that takes longer counts as an unknown outcome.
    #[arg(long, default_value_t = 10.0)]
    timeout_secs: f64,
    /// Purchase attempts on a sale that does not exist, sent before the run to start every
    /// function instance (at the run's concurrency).
    #[arg(long, default_value_t = 0)]
    warmup: u32,
    /// Pause before reading the table, so that requests the client gave up on can finish.
    #[arg(long, default_value_t = 1.0)]
    settle_secs: f64,
    /// Seed of the attempt plan [default: from the clock; printed].
    #[arg(long)]
    seed: Option<u64>,
    /// Prefix of the generated user ids [default: lg<unix seconds>-].
    #[arg(long)]
    user_prefix: Option<String>,
    /// Where to write the JSON report [default: target/loadgen/<sale>-<timestamp>.json].
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Runtime threads of the generator (1 = a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// Why the run did not produce a verdict.
enum Failure {
    Usage(anyhow::Error),
    Run(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Run(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Run(e.into())
    }
}

fn usage(msg: impl std::fmt::Display) -> Failure {
    Failure::Usage(anyhow!("{msg}"))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Everything checked before any traffic.
struct Setup {
    base: BaseUrl,
    sale: SaleId,
    plan: Plan,
    seed: u64,
    prefix: String,
    mode: Mode,
    duration_secs: f64,
}

impl Setup {
    /// What the report says of the run: its set-up, the plan and the stock it started from.
    fn run_info(
        &self,
        cli: &Cli,
        started_at: String,
        result: &load::LoadResult,
        stock: i64,
        stock_left: i64,
    ) -> RunInfo {
        RunInfo {
            started_at,
            base_url: self.base.as_str().to_owned(),
            sale_id: self.sale.to_string(),
            mode: self.mode.clone(),
            users: cli.users,
            planned_attempts: cli.attempts,
            planned_distinct_users: self.plan.distinct_users,
            planned_duplicates: self.plan.duplicates,
            duplicate_share: self.plan.duplicate_share(),
            seed: self.seed,
            user_prefix: self.prefix.clone(),
            duration_limit_secs: self.duration_secs,
            timeout_secs: cli.timeout_secs,
            not_sent: result.not_sent,
            peak_users: result.peak_users,
            honor_retry_after: cli.honor_retry_after,
            stock,
            stock_left_at_start: stock_left,
        }
    }
}

fn setup(cli: &Cli) -> Result<Setup, Failure> {
    let base = BaseUrl::parse(&cli.base_url, cli.allow_remote).map_err(usage)?;
    let sale = SaleId::parse(&cli.sale_id).map_err(|e| usage(format!("--sale-id: {e}")))?;
    let reads_table = cli.create_sale || !cli.no_verify;
    if reads_table && cli.dynamodb_endpoint.is_none() && base.is_loopback() {
        return Err(usage(
            "a loopback --base-url needs --dynamodb-endpoint (DynamoDB Local) to create or verify the sale; \
             pass --no-verify to check the replies only",
        ));
    }
    if let Some(endpoint) = &cli.dynamodb_endpoint {
        aws::require_loopback(endpoint).map_err(|e| usage(format!("--dynamodb-endpoint: {e}")))?;
    }
    let stages = cli.stages.as_deref().map(parse_stages).transpose().map_err(usage)?;
    let mode = match (cli.rate, cli.concurrency) {
        _ if stages.is_some() => Mode::Ramp { stages: stages.unwrap_or_default() },
        (Some(rate), _) if !(0.001..=1_000_000.0).contains(&rate) => {
            return Err(usage("--rate must be between 0.001 and 1000000 attempts per second"));
        }
        (Some(rate), _) => Mode::Open { rate_per_sec: rate, max_in_flight: cli.max_in_flight.max(1) },
        (None, Some(0)) => return Err(usage("--concurrency must be at least 1")),
        (None, c) => Mode::Closed { concurrency: c.unwrap_or(64) },
    };
    if let Mode::Ramp { stages } = &mode
        && ramp::peak(stages) == 0
    {
        return Err(usage("--stages never asks for a user"));
    }
    let duration_secs = cli.duration_secs.unwrap_or(match &mode {
        Mode::Ramp { stages } => ramp::total_secs(stages),
        _ => 60.0,
    });
    let seconds = |v: f64, min: f64| v.is_finite() && v >= min && v <= 86_400.0;
    if !(seconds(duration_secs, 0.001) && seconds(cli.timeout_secs, 0.001) && seconds(cli.settle_secs, 0.0)) {
        return Err(usage(
            "--duration-secs and --timeout-secs must be above 0, --settle-secs at least 0, all at most a day",
        ));
    }
    let seed = cli
        .seed
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1));
    let plan =
        Plan::new(PlanSpec { users: cli.users, attempts: cli.attempts, duplicate_share: cli.duplicate_share, seed })
            .map_err(usage)?;
    let prefix = cli.user_prefix.clone().unwrap_or_else(|| format!("lg{}-", now_ms() / 1_000));
    let longest = user_id(&prefix, cli.users.saturating_sub(1));
    flash_sale::ids::UserId::parse(&longest)
        .map_err(|e| usage(format!("--user-prefix gives user ids like `{longest}`: {e}")))?;
    Ok(Setup { base, sale, plan, seed, prefix, mode, duration_secs })
}

async fn store(cli: &Cli) -> Result<Store> {
    let client = match &cli.dynamodb_endpoint {
        Some(endpoint) => aws::local_client(endpoint).map_err(anyhow::Error::msg).context("--dynamodb-endpoint")?,
        None => aws::cloud_client().await,
    };
    Ok(Store::new(client, cli.table.clone()))
}

async fn create_sale(cli: &Cli, store: &Store, id: &SaleId) -> Result<(), Failure> {
    let now = now_ms();
    let mut sale = Sale {
        id: id.clone(),
        name: format!("loadgen {id}"),
        price_cents: 100,
        currency: "EUR".into(),
        total_stock: cli.stock.unwrap_or_default(),
        shards: cli.shards.unwrap_or(1),
        // A minute back, so a clock a little behind ours still sees the sale open.
        starts_at_ms: now - 60_000,
        ends_at_ms: now + cli.sale_window_secs.max(1) * 1_000,
        room: None,
        hold_seconds: 0,
        variants: Vec::new(),
        max_per_customer: cli.max_per_customer.unwrap_or(1),
    };
    if !cli.variant.is_empty() {
        let variants = cli.variant.iter().map(|v| parse_variant(v)).collect::<Result<Vec<_>, _>>()?;
        sale.set_variants(variants);
    }
    match store.create_sale(&sale, now).await {
        Ok(()) => Ok(()),
        Err(StoreError::SaleExists(id)) => Err(usage(format!(
            "sale `{id}` already exists; drop --create-sale to target it, or pick another --sale-id"
        ))),
        Err(StoreError::Rule(e)) => Err(usage(format!("--stock/--shards/--variant/--max-per-customer: {e}"))),
        Err(e) => {
            Err(Failure::Run(anyhow::Error::new(e).context(format!("creating sale `{id}` in table {}", store.table()))))
        }
    }
}

/// `ID:LABEL:STOCK[:SHARDS]` of `--variant`.
fn parse_variant(text: &str) -> Result<flash_sale::sale::Variant, Failure> {
    let parts: Vec<&str> = text.split(':').collect();
    let (id, label, stock, shards) = match parts.as_slice() {
        [id, label, stock] => (*id, *label, *stock, "1"),
        [id, label, stock, shards] => (*id, *label, *stock, *shards),
        _ => return Err(usage(format!("--variant {text:?}: expected ID:LABEL:STOCK[:SHARDS], e.g. m:M:100:2"))),
    };
    Ok(flash_sale::sale::Variant {
        variant_id: id.to_owned(),
        label: label.to_owned(),
        sku: None,
        stock: stock.parse().map_err(|e| usage(format!("--variant {text:?}: stock: {e}")))?,
        shards: shards.parse().map_err(|e| usage(format!("--variant {text:?}: shards: {e}")))?,
    })
}

/// The sale as the API shows it.
struct SaleStatus {
    total: i64,
    remaining: i64,
    /// The ids of the variants the sale was created with (empty: none of its own).
    variants: Vec<String>,
    max_per_customer: u32,
}

/// The sale as the API shows it. Refuses a sale that is not open.
async fn preflight(client: &HttpClient, base: &BaseUrl, sale: &SaleId, timeout: Duration) -> Result<SaleStatus> {
    let url = base.sale_url(sale.as_str());
    let (status, body) = load::get_json(client, &url, timeout).await?;
    if status != 200 {
        let code = body.get("code").and_then(Value::as_str).unwrap_or("-");
        bail!("GET {url} answered {status} ({code}); is the sale id right and the API up?");
    }
    let field = |k: &str| body.get(k).and_then(Value::as_i64).with_context(|| format!("GET {url}: no `{k}` in {body}"));
    let state = body.get("state").and_then(Value::as_str).unwrap_or("-");
    if !matches!(state, "active" | "sold_out") {
        bail!("sale `{sale}` is {state}, not open: nothing could be bought");
    }
    let variants = body
        .get("variants")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(|v| v.get("variantId").and_then(Value::as_str).map(str::to_owned)).collect())
        .unwrap_or_default();
    let max_per_customer =
        body.get("maxPerCustomer").and_then(Value::as_u64).and_then(|m| u32::try_from(m).ok()).unwrap_or(1);
    Ok(SaleStatus { total: field("totalStock")?, remaining: field("remainingStock")?, variants, max_per_customer })
}

fn stored(records: Vec<flash_sale::store::PurchaseRecord>) -> Vec<StoredPurchase> {
    records.into_iter().map(|r| StoredPurchase { user_id: r.user_id, order_id: r.order_id }).collect()
}

/// Purchases and shard stock after the run. Shards are read with `BatchGetItem`, which is
/// eventually consistent on DynamoDB: a sum that does not add up is read again before it counts.
async fn read_after(store: &Store, sale: &Sale) -> Result<(Vec<StoredPurchase>, Vec<i64>)> {
    let mut round = 0;
    loop {
        let after = stored(store.purchases_of(&sale.id).await?);
        let shards = store.shard_stock(&[sale]).await?.remove(0);
        let adds_up = shards.iter().sum::<i64>() == sale.total_stock - after.len() as i64;
        if adds_up || round == 3 {
            return Ok((after, shards));
        }
        round += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn default_json_path(sale: &SaleId) -> PathBuf {
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"))
        .unwrap_or_else(|_| now_ms().to_string());
    PathBuf::from("target").join("loadgen").join(format!("{sale}-{stamp}.json"))
}

async fn run(cli: Cli) -> Result<Report, Failure> {
    let s = setup(&cli)?;
    let timeout = Duration::from_secs_f64(cli.timeout_secs);
    let connections = s.mode.connections();
    let client = load::http_client(&s.base, connections as usize)?;
    let store = if cli.create_sale || !cli.no_verify { Some(store(&cli).await?) } else { None };

    if let Some(store) = &store
        && cli.create_sale
    {
        create_sale(&cli, store, &s.sale).await?;
        if cli.variant.is_empty() {
            eprintln!(
                "loadgen: created sale {} (stock {}, {} shards) in {}",
                s.sale,
                cli.stock.unwrap_or_default(),
                cli.shards.unwrap_or(1),
                store.table()
            );
        } else {
            eprintln!(
                "loadgen: created sale {} (variants {}, up to {} per customer) in {}",
                s.sale,
                cli.variant.join(" "),
                cli.max_per_customer.unwrap_or(1),
                store.table()
            );
        }
    }
    // The first request may start a function instance: give it more time than an attempt.
    let status = preflight(&client, &s.base, &s.sale, timeout.max(Duration::from_secs(30))).await?;
    let (api_stock, api_left) = (status.total, status.remaining);
    // A sale with variants or several items per customer, or quantities asked for: the sized run.
    let sized = !status.variants.is_empty() || status.max_per_customer > 1 || cli.max_quantity > 1;
    if sized {
        return run_sized(&cli, s, client, store, status).await;
    }

    // Before: what the table holds, so that a sale with earlier purchases is judged fairly.
    let (sale, before) = match &store {
        Some(store) => {
            let sale = store.get_sale(&s.sale).await?.with_context(|| {
                format!("the API knows sale `{}` but table {} does not: wrong --table?", s.sale, store.table())
            })?;
            (Some(sale), stored(store.purchases_of(&s.sale).await?))
        }
        None => (None, Vec::new()),
    };
    let stock = sale.as_ref().map_or(api_stock, |sale| sale.total_stock);
    let stock_left = if sale.is_some() { (stock - before.len() as i64).max(0) } else { api_left };

    if cli.warmup > 0 {
        let statuses = load::warmup(&client, &s.base, cli.warmup, connections, timeout).await?;
        eprintln!("loadgen: warm-up replies {statuses:?}");
    }

    let users: Vec<String> = s.plan.users.iter().map(|&u| user_id(&s.prefix, u)).collect();
    let started_at = rfc3339_ms(now_ms());
    eprintln!("loadgen: sending {} attempts to {} ...", users.len(), s.base.purchases_url(s.sale.as_str()));
    let spec = LoadSpec {
        url: s.base.purchases_url(s.sale.as_str()).parse().context("purchase URL")?,
        users: Arc::new(users),
        choices: Arc::new(Vec::new()),
        mode: s.mode.clone(),
        duration: Duration::from_secs_f64(s.duration_secs),
        honor_retry_after: cli.honor_retry_after,
        timeout,
    };
    let result = load::run(&client, spec).await;
    let attempts: &[Attempt] = &result.attempts;

    let after = match (&store, &sale) {
        (Some(store), Some(sale)) => {
            tokio::time::sleep(Duration::from_secs_f64(cli.settle_secs)).await;
            Some(read_after(store, sale).await?)
        }
        _ => None,
    };
    let store_report = after
        .as_ref()
        .map(|(after, shards)| check_store(attempts, &StoreFacts { stock, before: &before, after, shards }));
    let stored_map: Option<HashMap<String, String>> =
        after.map(|(a, _)| a.into_iter().map(|p| (p.user_id, p.order_id)).collect());
    let outcomes = resolve_outcomes(attempts, stored_map.as_ref());
    let bought_before: HashSet<String> = before.iter().map(|p| p.user_id.clone()).collect();
    let fair = fairness(attempts, &outcomes, stock_left.max(0) as u64, &bought_before);

    let info = s.run_info(&cli, started_at, &result, stock, stock_left);
    let mut replies = check_replies(attempts, stock_left);
    if cli.require_clean_answers {
        replies.extend(check_answers(attempts));
    }
    let report = Report::build(info, attempts, fair, replies, store_report, unknown_from_replies(attempts));
    write_report(&cli, &s.sale, &report, report.to_json(attempts))?;
    Ok(report)
}

/// Writes the JSON report and prints the summary.
fn write_report(cli: &Cli, sale: &SaleId, report: &Report, doc: Value) -> Result<(), Failure> {
    let path = cli.json_out.clone().unwrap_or_else(|| default_json_path(sale));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let json = serde_json::to_vec_pretty(&doc).context("JSON report")?;
    std::fs::write(&path, json).with_context(|| format!("cannot write {}", path.display()))?;
    print!("{}", report.summary());
    println!("  json        {}", path.display());
    Ok(())
}

/// The run against a sale with variants or several items per customer: each attempt names a
/// random variant (when the sale has its own) and a random quantity up to `--max-quantity`; the
/// table is judged per variant, per shard and per customer (`loadgen::verify::check_sized_store`).
async fn run_sized(
    cli: &Cli,
    s: Setup,
    client: HttpClient,
    store: Option<Store>,
    status: SaleStatus,
) -> Result<Report, Failure> {
    let timeout = Duration::from_secs_f64(cli.timeout_secs);
    let connections = s.mode.connections();
    let sale = match &store {
        Some(store) => Some(store.get_sale(&s.sale).await?.with_context(|| {
            format!("the API knows sale `{}` but table {} does not: wrong --table?", s.sale, store.table())
        })?),
        None => None,
    };
    let max_per_customer = sale.as_ref().map_or(status.max_per_customer, |sale| sale.max_per_customer);
    if cli.max_quantity > max_per_customer {
        eprintln!(
            "loadgen: --max-quantity {} is above the sale's maxPerCustomer {max_per_customer}: those attempts are refused (quantity_invalid)",
            cli.max_quantity
        );
    }
    // Before: what the table holds (orders, stock left).
    let before_state = match (&store, &sale) {
        (Some(store), Some(sale)) => Some(loadgen::table::read_sized(store, sale).await?),
        _ => None,
    };
    let before_ids: HashSet<String> =
        before_state.iter().flat_map(|b| b.orders.iter().map(|o| o.order_id.clone())).collect();
    let held_before: HashSet<String> =
        before_state.iter().flat_map(|b| b.orders.iter().filter(|o| o.live).map(|o| o.user_id.clone())).collect();
    let stock = sale.as_ref().map_or(status.total, |sale| sale.total_stock);
    let stock_left = before_state.as_ref().map_or(status.remaining, |b| b.shards.iter().map(|r| (*r).max(0)).sum());

    if cli.warmup > 0 {
        let statuses = load::warmup(&client, &s.base, cli.warmup, connections, timeout).await?;
        eprintln!("loadgen: warm-up replies {statuses:?}");
    }
    let users: Vec<String> = s.plan.users.iter().map(|&u| user_id(&s.prefix, u)).collect();
    let choices: Vec<Choice> = loadgen::plan::choices(s.seed, users.len(), &status.variants, cli.max_quantity);
    let started_at = rfc3339_ms(now_ms());
    eprintln!(
        "loadgen: sending {} attempts to {} (variants {:?}, quantities 1..={}) ...",
        users.len(),
        s.base.purchases_url(s.sale.as_str()),
        status.variants,
        cli.max_quantity.max(1)
    );
    let spec = LoadSpec {
        url: s.base.purchases_url(s.sale.as_str()).parse().context("purchase URL")?,
        users: Arc::new(users),
        choices: Arc::new(choices.clone()),
        mode: s.mode.clone(),
        duration: Duration::from_secs_f64(s.duration_secs),
        honor_retry_after: cli.honor_retry_after,
        timeout,
    };
    let result = load::run(&client, spec).await;
    let attempts: &[Attempt] = &result.attempts;

    let after = match (&store, &sale) {
        (Some(store), Some(sale)) => {
            tokio::time::sleep(Duration::from_secs_f64(cli.settle_secs)).await;
            Some(loadgen::table::read_sized(store, sale).await?)
        }
        _ => None,
    };
    let sized_report = after.as_ref().map(|state| check_sized_store(attempts, &choices, &before_ids, state));
    // Fairness as for one item per customer: a user's first order is their win.
    let stored_map: Option<HashMap<String, String>> = after.as_ref().map(|state| {
        let mut first = HashMap::new();
        for o in state.orders.iter().filter(|o| !before_ids.contains(&o.order_id)) {
            first.entry(o.user_id.clone()).or_insert_with(|| o.order_id.clone());
        }
        first
    });
    let outcomes = resolve_outcomes(attempts, stored_map.as_ref());
    let fair = fairness(attempts, &outcomes, stock_left.max(0) as u64, &held_before);

    let info = s.run_info(cli, started_at, &result, stock, stock_left);
    // Items come back during the run only from holds (expiries, cancels): without them no user may
    // have been promised more than the limit.
    let no_returns = sale.as_ref().is_some_and(|sale| sale.hold_seconds == 0);
    let mut replies = check_sized_replies(attempts, &choices, stock_left, max_per_customer, no_returns, &held_before);
    if cli.require_clean_answers {
        replies.extend(check_answers(attempts));
    }
    let mut report = Report::build(info, attempts, fair, replies, None, unknown_from_replies(attempts));
    if let Some(sized) = sized_report {
        report = report.with_sized(sized);
    }
    let mut doc = report.to_json(attempts);
    doc["mix"] = serde_json::json!({
        "variants": status.variants, "maxQuantity": cli.max_quantity.max(1), "maxPerCustomer": max_per_customer,
    });
    if let Some(list) = doc["attempts"].as_array_mut() {
        for a in list {
            let seq = a["seq"].as_u64().and_then(|n| usize::try_from(n).ok());
            if let Some(choice) = seq.and_then(|n| choices.get(n)) {
                if let Some(v) = &choice.variant_id {
                    a["variantId"] = serde_json::json!(v);
                }
                a["quantity"] = serde_json::json!(choice.items());
            }
        }
    }
    write_report(cli, &s.sale, &report, doc)?;
    Ok(report)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(cli.threads).enable_all().build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(report) if report.ok() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(Failure::Usage(e)) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::from(3)
        }
    }
}
