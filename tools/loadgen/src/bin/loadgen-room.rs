//! `loadgen-room`: a crowd through a sale's waiting room, then a check of the table.
//!
//! ```text
//! cargo run --release -p loadgen --bin loadgen-room -- --base-url http://127.0.0.1:9000 \
//!     --dynamodb-endpoint http://127.0.0.1:8000 --sale-id room-lg --stock 200 --shards 4 \
//!     --admit-per-second 200 --joins 20000 --concurrency 128
//! ```
//!
//! It creates an open sale with a waiting room, sends `--joins` joins of new people from
//! `--concurrency` clients, then walks the line in place order: each person polls until admitted
//! (or told `sold_out`) and buys with the admission token. Afterwards it reads the table and
//! checks: places unique, first in first out for joins sent at least `--fifo-gap-ms` apart,
//! exactly the stock sold, every stored purchase by someone who bought with a token, purchases in
//! admission order. Exit status 0 when every check held, 1 when one failed, 3 when the run could
//! not be carried out.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use flash_sale::clock::now_ms;
use flash_sale::ids::SaleId;
use flash_sale::room::{self, RoomConfig};
use flash_sale::sale::Sale;
use flash_sale::store::Store;
use loadgen::load::{self, HttpClient};
use loadgen::room::{Person, StoredBuy, judge};
use loadgen::target::BaseUrl;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(name = "loadgen-room", about = "A crowd through a sale's waiting room, with FIFO, token and stock checks")]
struct Cli {
    #[arg(long)]
    base_url: String,
    #[arg(long, env = "DYNAMODB_ENDPOINT")]
    dynamodb_endpoint: String,
    #[arg(long, env = "TABLE_NAME", default_value = "flash-sale")]
    table: String,
    #[arg(long)]
    sale_id: String,
    #[arg(long, default_value_t = 200)]
    stock: i64,
    #[arg(long, default_value_t = 4)]
    shards: u32,
    #[arg(long, default_value_t = 200)]
    admit_per_second: u32,
    #[arg(long, default_value_t = 20_000)]
    joins: usize,
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// Joins sent at least this far apart must get places in that order.
    #[arg(long, default_value_t = 1_000)]
    fifo_gap_ms: i64,
    /// Upper bound for the whole run.
    #[arg(long, default_value_t = 600)]
    max_seconds: u64,
    #[arg(long)]
    json_out: Option<std::path::PathBuf>,
}

#[derive(Clone)]
struct Joined {
    user: String,
    joined_at_ms: i64,
    place: i64,
}

async fn create(store: &Store, cli: &Cli) -> Result<Sale> {
    let id = SaleId::parse(&cli.sale_id).map_err(|e| anyhow::anyhow!("--sale-id: {e}"))?;
    let now = now_ms();
    let seed = room::new_seed().map_err(anyhow::Error::msg)?;
    let start = now - 60_000;
    let mut config = RoomConfig::new(cli.shards, start, &seed);
    config.admit_per_second = cli.admit_per_second;
    let sale = Sale {
        id,
        name: format!("loadgen room {}", cli.sale_id),
        price_cents: 100,
        currency: "EUR".into(),
        total_stock: cli.stock,
        shards: cli.shards,
        starts_at_ms: start,
        ends_at_ms: now + 3_600_000,
        room: Some(config),
        hold_seconds: 0,
        variants: Vec::new(),
        max_per_customer: 1,
    };
    store.create_sale_with_room(&sale, &seed, now).await.context("create the sale")?;
    Ok(sale)
}

async fn run(cli: Cli) -> Result<bool> {
    let base = BaseUrl::parse(&cli.base_url, false).map_err(anyhow::Error::msg)?;
    let store = Store::new(
        flash_sale::aws::local_client(&cli.dynamodb_endpoint).map_err(anyhow::Error::msg)?,
        cli.table.clone(),
    );
    let sale = create(&store, &cli).await?;
    let client: HttpClient = load::http_client(&base, cli.concurrency)?;
    let timeout = Duration::from_secs(30);
    let deadline = Instant::now() + Duration::from_secs(cli.max_seconds);
    let join_url = format!("{}/sales/{}/queue", base.as_str(), sale.id);
    let begun = Instant::now();
    let prefix = format!("room{}-", now_ms() / 1_000);

    // The room opened a minute ago: its (empty) pre-queue is drawn by the first request that
    // finds the draw due, and joins during the draw go to the pre-queue. This run measures joins
    // after opening, so it starts once the status shows the draw complete (bounded).
    let status_url = format!("{}/sales/{}", base.as_str(), sale.id);
    let drawn_by = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = load::get_json(&client, &status_url, timeout).await?;
        if !matches!(body["queue"]["state"].as_str(), None | Some("not_open" | "prequeue" | "drawing")) {
            break;
        }
        if Instant::now() > drawn_by {
            bail!("the room was not drawn within 30 s: {body}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Phase 1: the crowd joins.
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..cli.concurrency {
        let (client, next, url, prefix) = (client.clone(), next.clone(), join_url.clone(), prefix.clone());
        let joins = cli.joins;
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= joins || Instant::now() > deadline {
                    return Ok::<_, anyhow::Error>(mine);
                }
                let user = format!("{prefix}{n}");
                let sent = begun.elapsed().as_millis() as i64;
                let (status, body) = load::post_json(&client, &url, &json!({ "userId": user }), timeout, 20).await?;
                if status != 200 {
                    bail!("join of {user}: {status} {body}");
                }
                let place = body["position"].as_i64().with_context(|| format!("no place for {user}: {body}"))?;
                mine.push(Joined { user, joined_at_ms: sent, place });
            }
        }));
    }
    let mut joined = Vec::new();
    for t in tasks {
        joined.extend(t.await??);
    }
    let join_secs = begun.elapsed().as_secs_f64();
    joined.sort_by_key(|j| j.place);
    println!(
        "{} joins in {join_secs:.1} s ({:.0}/s) from {} clients",
        joined.len(),
        joined.len() as f64 / join_secs,
        cli.concurrency
    );

    // Phase 2: walk the line in place order; each person waits for admission and buys.
    let line = Arc::new(joined);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    let buy_started = Instant::now();
    for _ in 0..cli.concurrency {
        let (client, next, line) = (client.clone(), next.clone(), line.clone());
        let (base, sale_id) = (base.as_str().to_owned(), sale.id.to_string());
        tasks.push(tokio::spawn(async move {
            let mut people = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                let Some(j) = line.get(n) else { return Ok::<_, anyhow::Error>(people) };
                let poll_url = format!("{base}/sales/{sale_id}/queue/{}", j.user);
                let mut person = Person {
                    user: j.user.clone(),
                    joined_at_ms: j.joined_at_ms,
                    place: j.place,
                    bought_with_token: false,
                    bought: false,
                };
                loop {
                    if Instant::now() > deadline {
                        bail!("the run took longer than its limit");
                    }
                    let (status, view) = load::get_json(&client, &poll_url, timeout).await?;
                    match (status, view["state"].as_str()) {
                        (200, Some("admitted")) => {
                            let token = view["admissionToken"].as_str().context("admitted without a token")?;
                            let body = json!({ "userId": j.user, "admissionToken": token });
                            let (status, answer) = load::post_json(
                                &client,
                                &format!("{base}/sales/{sale_id}/purchases"),
                                &body,
                                timeout,
                                20,
                            )
                            .await?;
                            person.bought_with_token = true;
                            match status {
                                201 => person.bought = true,
                                409 => {}
                                other => bail!("purchase by admitted {}: {other} {answer}", j.user),
                            }
                            break;
                        }
                        (200, Some("waiting")) => tokio::time::sleep(Duration::from_millis(200)).await,
                        (200, Some("sold_out" | "closed")) => break,
                        (503, _) => tokio::time::sleep(Duration::from_millis(500)).await,
                        other => bail!("poll of {}: {other:?} {view}", j.user),
                    }
                }
                people.push(person);
            }
        }));
    }
    let mut people = Vec::new();
    for t in tasks {
        people.extend(t.await??);
    }
    let bought = people.iter().filter(|p| p.bought).count();
    println!(
        "{bought} bought in {:.1} s; {} told sold out",
        buy_started.elapsed().as_secs_f64(),
        people.len() - people.iter().filter(|p| p.bought_with_token).count()
    );

    let stored: Vec<StoredBuy> = store
        .purchases_of(&sale.id)
        .await?
        .into_iter()
        .map(|p| StoredBuy { user: p.user_id, purchased_at_ms: p.purchased_at, order_id: p.order_id })
        .collect();
    let verdict = judge(&people, &stored, sale.total_stock, cli.fifo_gap_ms);
    let report: Value = json!({
        "saleId": sale.id.as_str(),
        "joins": people.len(),
        "concurrency": cli.concurrency,
        "joinsPerSecond": people.len() as f64 / join_secs,
        "admitPerSecond": cli.admit_per_second,
        "bought": bought,
        "verdict": verdict,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(path) = &cli.json_out {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(verdict.places_unique
        && verdict.exactly_stock_sold
        && verdict.every_buyer_held_a_token
        && verdict.fifo_fidelity >= 0.99)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen-room: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("loadgen-room: a check failed (see the verdict)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("loadgen-room: {e:#}");
            ExitCode::from(3)
        }
    }
}
