//! `flash-sale-admin`: the operator's CLI for sales in the flash-sale table.
//!
//! Exit status: 0 on success, 1 when the operation was refused or failed, 2 on a usage error.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use flash_sale::aws;
use flash_sale::clock::now_ms;
use flash_sale::ids::SaleId;
use flash_sale::room;
use flash_sale::sale::{Sale, SaleView};
use flash_sale::store::{Reset, Store, StoreError};
use flash_sale::time_fmt::{parse_rfc3339_ms, rfc3339_ms};
use serde_json::json;

#[derive(Parser)]
#[command(name = "flash-sale-admin", version, about = "Create, inspect and reset flash sales")]
struct Cli {
    /// DynamoDB table.
    #[arg(long, global = true, env = "TABLE_NAME", default_value = "flash-sale")]
    table: String,
    /// DynamoDB endpoint, for DynamoDB Local (loopback only). Without it the standard AWS
    /// environment (profile, region, credentials) decides.
    #[arg(long, global = true, env = "DYNAMODB_ENDPOINT")]
    endpoint_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the table and its sales index (does nothing if it exists).
    CreateTable,
    /// Create a sale; refuses an existing sale id.
    CreateSale {
        #[arg(long)]
        sale_id: String,
        #[arg(long)]
        name: String,
        #[arg(long, allow_negative_numbers = true)]
        price_cents: i64,
        #[arg(long)]
        currency: String,
        /// Items for sale (a sale without variants).
        #[arg(long, allow_negative_numbers = true, required_unless_present = "variant", conflicts_with = "variant")]
        stock: Option<i64>,
        /// Stock items with partition keys of their own; each takes about 500 purchases/s.
        #[arg(long, default_value_t = 1, conflicts_with = "variant")]
        shards: u32,
        /// A variant with its own stock, `ID:LABEL:STOCK[:SHARDS]` (e.g. `eu42:EU 42:120:2`);
        /// repeat for each. Shards default to 1.
        #[arg(long)]
        variant: Vec<String>,
        /// The most items one customer may hold (reserved + confirmed) across the sale's variants.
        #[arg(long, default_value_t = 1)]
        max_per_customer: u32,
        /// RFC 3339, e.g. 2026-12-01T09:00:00Z
        #[arg(long)]
        starts_at: String,
        #[arg(long)]
        ends_at: String,
        /// Put a waiting room in front of the sale: buyers join a line and buy with an admission
        /// token (see docs/waiting-room.md).
        #[arg(long)]
        waiting_room: bool,
        /// Admissions per second; default: shards × 50, what the purchase path sustains without
        /// transaction conflicts.
        #[arg(long, requires = "waiting_room")]
        admit_per_second: Option<u32>,
        /// When the pre-queue opens (RFC 3339); default: 15 minutes before the start.
        #[arg(long, requires = "waiting_room")]
        prequeue_opens_at: Option<String>,
        /// People admitted within the claim window who have not bought may reach this percentage of
        /// the remaining stock; 100: every admission has an item set aside, nobody admitted races.
        #[arg(long, requires = "waiting_room", default_value_t = flash_sale::room::DEFAULT_ADMIT_FACTOR_PERCENT)]
        admit_factor_percent: u32,
        /// Seconds an admitted person's token buys, with an item set aside for them all that time
        /// (1 to 900). After it their place is used up.
        #[arg(long, requires = "waiting_room", default_value_t = flash_sale::room::DEFAULT_CLAIM_MS / 1_000)]
        claim_seconds: i64,
        /// Counter items the pre-queue's joins spread over; each takes about 450 joins/s, so 256
        /// lanes take 100,000 joins/s.
        #[arg(long, requires = "waiting_room", default_value_t = flash_sale::room::DEFAULT_LANES)]
        queue_lanes: u32,
        /// Mix a public drand beacon round (quicknet, the first round after startsAt + 5 s) into
        /// the draw, so nobody, the operator included, can steer the order; the scheduled sweeper
        /// fetches it from DRAND_RELAYS and draws (see docs/waiting-room.md).
        #[arg(long, requires = "waiting_room")]
        public_beacon: bool,
        /// Seconds a purchase holds its item for payment (`reserved` until confirmed, cancelled or
        /// expired); 0: a purchase is final at once.
        #[arg(long, default_value_t = 0)]
        hold_seconds: i64,
    },
    /// Verify a sale's pre-queue draw. With `--sale-id` (table access): the seed revealed once the
    /// pre-queue is drawn must match the commitment published at creation, the beacon round (if
    /// the sale has one) must verify, and every stored place must be the one the draw gives. With
    /// `--public STATUS --entrants LIST` (files or URLs, no table access): the same from the sale's
    /// status and its published entrant list, plus the list against the status's Merkle root.
    #[command(group(clap::ArgGroup::new("source").required(true).args(["sale_id", "public"])))]
    VerifyDraw {
        #[arg(long)]
        sale_id: Option<String>,
        /// The sale's status: a `GET /sales/{saleId}` URL or a file holding its JSON.
        #[arg(long)]
        public: Option<String>,
        /// The entrant list as `export-entrants` writes it: a URL or a file. Without it, the list
        /// the API publishes: every page of `{status URL}/entrants/{page}`.
        #[arg(long, requires = "public")]
        entrants: Option<String>,
    },
    /// Write a drawn sale's entrant list for publication: each pre-queue entrant's SHA-256 id (never
    /// the user id) and place, with the list's Merkle root (the one the sale's status shows).
    /// The API publishes the same list (`GET /sales/{saleId}/entrants/{page}`); the file is for
    /// an archive of its own. Anyone checks either with `verify-draw --public`.
    ExportEntrants {
        #[arg(long)]
        sale_id: String,
        /// Write here instead of to standard output.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Stop admitting people from the line (those admitted keep their tokens).
    PauseAdmission {
        #[arg(long)]
        sale_id: String,
    },
    /// Admit again after a pause.
    ResumeAdmission {
        #[arg(long)]
        sale_id: String,
    },
    /// Change the admission rate of a running sale.
    SetAdmitRate {
        #[arg(long)]
        sale_id: String,
        #[arg(long)]
        per_second: u32,
    },
    /// A live view for an operator: stock, purchases per second, the line and its admitted range,
    /// refreshed every second from the same reads the API uses. Stops after `--for-seconds`. A sale
    /// with variants also shows each variant's remaining/total and the items its live orders hold.
    Watch {
        #[arg(long)]
        sale_id: String,
        #[arg(long, default_value_t = 3_600)]
        for_seconds: u64,
        #[arg(long, default_value_t = 1_000)]
        every_ms: u64,
        /// A sale with variants: count the items held by live orders per variant on the first
        /// refresh and every this many after it (a consistent scan of the table each time; the
        /// stock is read on every refresh); 0: never.
        #[arg(long, default_value_t = 10)]
        live_every: u64,
    },
    /// Every sale with its state and remaining stock, one JSON object per line.
    ListSales,
    /// One sale with per-shard stock and the number of purchases.
    ShowSale {
        #[arg(long)]
        sale_id: String,
    },
    /// Every order of a sale with its status, in purchase order.
    Buyers {
        #[arg(long)]
        sale_id: String,
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
    },
    /// Confirm a reserved order, as the payment backend's `POST …/orders/{orderId}/confirm` does
    /// (for support staff: a payment that arrived but whose confirmation did not).
    Confirm {
        #[arg(long)]
        sale_id: String,
        #[arg(long)]
        order_id: String,
    },
    /// Give a buyer's reserved order back to stock (status `cancelled`), whether or not its hold
    /// has ended (for support staff: the buyer asked, the payment failed).
    Release {
        #[arg(long)]
        sale_id: String,
        #[arg(long)]
        user_id: String,
    },
    /// Release every ended hold now, as the scheduled sweeper does every minute.
    Sweep {
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
        /// Stop releasing after this many seconds (a later sweep continues).
        #[arg(long, default_value_t = 300)]
        budget_seconds: u64,
    },
    /// Holds the sweeper set aside because their release failed for good or kept failing (see
    /// docs/operations.md, "Stuck holds"), one JSON object per line with the last error. With
    /// `--retry-user`, releases that buyer's hold now (as `release` does); with `--return-user`,
    /// puts it back for the next sweep, its failure count cleared.
    StuckHolds {
        #[arg(long)]
        sale_id: String,
        #[arg(long, conflicts_with = "return_user")]
        retry_user: Option<String>,
        #[arg(long)]
        return_user: Option<String>,
    },
    /// Restore the stock and delete every purchase; each live order deleted is announced as
    /// cancelled (reason `reset`) on the order event bus. Refuses a sale with confirmed (paid)
    /// orders unless --include-confirmed is given. With `--variant`, only those variants' orders
    /// are deleted and their items given back; the other variants are untouched. For test and
    /// rehearsal sales.
    ResetSale {
        #[arg(long)]
        sale_id: String,
        /// Reset only this variant's orders (repeat for several).
        #[arg(long)]
        variant: Vec<String>,
        /// Required: this deletes purchases.
        #[arg(long)]
        yes: bool,
        /// Also delete confirmed (paid) orders: their buyers paid, and only the cancellation
        /// events tell the systems that fulfil them.
        #[arg(long)]
        include_confirmed: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Jsonl,
    Csv,
}

fn sale_id(raw: &str) -> Result<SaleId> {
    SaleId::parse(raw).with_context(|| format!("--sale-id `{raw}`"))
}

async fn store(cli: &Cli) -> Result<Store> {
    let client = match &cli.endpoint_url {
        Some(endpoint) => aws::local_client(endpoint).map_err(anyhow::Error::msg).context("--endpoint-url")?,
        None => aws::cloud_client().await,
    };
    Ok(Store::new(client, cli.table.clone()))
}

async fn existing_sale(store: &Store, raw: &str) -> Result<Sale> {
    let id = sale_id(raw)?;
    store.get_sale(&id).await?.with_context(|| format!("sale `{id}` does not exist"))
}

/// The API's use cases over this table, for the commands that act as the API does.
fn use_cases(store: &Store, table: &str) -> flash_sale::App {
    let config = flash_sale::config::Config::for_table(table, flash_sale::config::AuthMode::Body);
    flash_sale::App::new(store.clone(), std::sync::Arc::new(flash_sale::clock::SystemClock), config)
}

/// A use case's refusal as the operator reads it.
fn refused(e: flash_sale::AppError) -> anyhow::Error {
    match &e {
        flash_sale::AppError::HoldExpired(o)
        | flash_sale::AppError::OrderConfirmed(o)
        | flash_sale::AppError::OrderCancelled(o) => {
            anyhow::anyhow!("{e}: {}", json!(o))
        }
        _ => anyhow::anyhow!("{e}"),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

async fn run(cli: Cli) -> Result<()> {
    // The public check needs no table, and no AWS configuration.
    if let Command::VerifyDraw { sale_id: None, public: Some(status_at), entrants } = &cli.command {
        let status: serde_json::Value =
            serde_json::from_slice(&read_public(status_at).await?).context("the status is not JSON")?;
        let list: flash_sale::draw_check::EntrantList = match entrants {
            Some(list) => {
                serde_json::from_slice(&read_public(list).await?).context("the entrant list is not readable")?
            }
            None => published_entrants(status_at).await?,
        };
        let report = flash_sale::draw_check::verify_public(&status, &list).map_err(anyhow::Error::msg)?;
        writeln!(std::io::stdout().lock(), "{}", json!(report))?;
        return Ok(());
    }
    let store = store(&cli).await?;
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::CreateTable => {
            let created = store.create_table().await?;
            let verb = if created { "created" } else { "already exists:" };
            writeln!(out, "table {verb} {}", store.table())?;
        }
        Command::CreateSale {
            sale_id: id,
            name,
            price_cents,
            currency,
            stock,
            shards,
            variant,
            max_per_customer,
            starts_at,
            ends_at,
            waiting_room,
            admit_per_second,
            prequeue_opens_at,
            admit_factor_percent,
            claim_seconds,
            queue_lanes,
            public_beacon,
            hold_seconds,
        } => {
            let mut sale = Sale {
                id: sale_id(&id)?,
                name,
                price_cents,
                currency,
                total_stock: stock.unwrap_or(0),
                shards,
                starts_at_ms: parse_rfc3339_ms(&starts_at).map_err(anyhow::Error::msg).context("--starts-at")?,
                ends_at_ms: parse_rfc3339_ms(&ends_at).map_err(anyhow::Error::msg).context("--ends-at")?,
                room: None,
                hold_seconds,
                variants: Vec::new(),
                max_per_customer,
            };
            if !variant.is_empty() {
                let variants = variant.iter().map(|v| parse_variant(v)).collect::<anyhow::Result<Vec<_>>>()?;
                sale.set_variants(variants);
            }
            let created = if waiting_room {
                let seed = room::new_seed().map_err(anyhow::Error::msg)?;
                // The default rate follows the sale's shards: with variants, all of theirs.
                let mut config = room::RoomConfig::new(sale.shards, sale.starts_at_ms, &seed);
                if let Some(rate) = admit_per_second {
                    config.admit_per_second = rate;
                }
                if let Some(at) = prequeue_opens_at {
                    config.prequeue_opens_at_ms =
                        parse_rfc3339_ms(&at).map_err(anyhow::Error::msg).context("--prequeue-opens-at")?;
                }
                config.admit_factor_percent = admit_factor_percent;
                config.claim_ms = Some(claim_seconds.saturating_mul(1_000));
                config.token_ttl_ms = claim_seconds.saturating_mul(1_000);
                config.lanes = queue_lanes;
                if public_beacon {
                    config = config.with_public_beacon(sale.starts_at_ms);
                }
                sale.room = Some(config);
                store.create_sale_with_room(&sale, &seed, now_ms()).await
            } else {
                store.create_sale(&sale, now_ms()).await
            };
            match created {
                Ok(()) => {}
                Err(StoreError::SaleExists(id)) => bail!("sale `{id}` already exists; nothing was changed"),
                Err(e) => return Err(e.into()),
            }
            let stock = sale.shard_stock();
            writeln!(out, "{}", json!(SaleView::with_shards(&sale, sale.total_stock, Some(&stock), now_ms())))?;
        }
        Command::ListSales => {
            let sales = store.list_sales().await?;
            let refs: Vec<&Sale> = sales.iter().collect();
            let stock = store.shard_stock(&refs).await?;
            for (sale, shards) in sales.iter().zip(stock) {
                let remaining = shards.iter().map(|r| (*r).max(0)).sum();
                writeln!(out, "{}", json!(SaleView::new(sale, remaining, now_ms())))?;
            }
        }
        Command::ShowSale { sale_id } => {
            let sale = existing_sale(&store, &sale_id).await?;
            let shards = store.shard_stock(&[&sale]).await?.remove(0);
            let records = store.purchases_of(&sale.id).await?;
            let mut orders = std::collections::BTreeMap::new();
            for r in &records {
                *orders.entry(r.status.as_str()).or_insert(0u64) += 1;
            }
            let purchases = records.iter().filter(|r| r.status.is_live()).count();
            let remaining = shards.iter().map(|r| (*r).max(0)).sum();
            let status = SaleView::with_shards(&sale, remaining, Some(&shards), now_ms());
            let mut shown = json!({ "sale": status, "shards": shards, "purchases": purchases, "orders": orders });
            if sale.has_variants() || sale.max_per_customer > 1 {
                // Items held live per variant: with the stock left, each variant's total.
                let mut live: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
                for r in records.iter().filter(|r| r.status.is_live()) {
                    *live.entry(r.variant()).or_default() += i64::from(r.items());
                }
                shown["liveItemsByVariant"] = json!(live);
            }
            if sale.hold_seconds > 0 {
                // Holds the sweeper gave up on (`stuck-holds` lists them).
                shown["stuckHolds"] = json!(store.stuck_holds(&sale.id).await?.len());
            }
            if let Some(config) = &sale.room {
                let state = store.room_state(&sale.id).await?;
                shown["waitingRoom"] = json!({ "settings": config, "state": state });
            }
            writeln!(out, "{}", serde_json::to_string_pretty(&shown)?)?;
        }
        Command::Buyers { sale_id, format } => {
            let sale = existing_sale(&store, &sale_id).await?;
            let purchases = store.purchases_of(&sale.id).await?;
            if let Format::Csv = format {
                writeln!(out, "purchasedAt,orderId,userId,shard,status,holdExpiresAt,variantId,quantity")?;
            }
            for p in purchases {
                match format {
                    Format::Jsonl => writeln!(
                        out,
                        "{}",
                        json!({"saleId": p.sale_id, "userId": p.user_id, "orderId": p.order_id,
                               "purchasedAt": rfc3339_ms(p.purchased_at), "shard": p.shard,
                               "status": p.status, "version": p.version,
                               "holdExpiresAt": p.hold_expires_at.map(rfc3339_ms),
                               "variantId": p.variant(), "quantity": p.items()})
                    )?,
                    Format::Csv => writeln!(
                        out,
                        "{},{},{},{},{},{},{},{}",
                        rfc3339_ms(p.purchased_at),
                        p.order_id,
                        csv_field(&p.user_id),
                        p.shard,
                        p.status.as_str(),
                        p.hold_expires_at.map(rfc3339_ms).unwrap_or_default(),
                        csv_field(p.variant()),
                        p.items()
                    )?,
                }
            }
        }
        Command::Confirm { sale_id: raw, order_id } => {
            let order = use_cases(&store, &cli.table).confirm(&sale_id(&raw)?, &order_id).await;
            writeln!(out, "{}", json!(order.map_err(refused)?))?;
        }
        Command::Release { sale_id: raw, user_id } => {
            let user = flash_sale::ids::UserId::parse(&user_id).with_context(|| format!("--user-id `{user_id}`"))?;
            let order = use_cases(&store, &cli.table).release(&sale_id(&raw)?, &user).await;
            writeln!(out, "{}", json!(order.map_err(refused)?))?;
        }
        Command::StuckHolds { sale_id: raw, retry_user, return_user } => {
            let sale = existing_sale(&store, &raw).await?;
            let user = |raw: &str| flash_sale::ids::UserId::parse(raw).with_context(|| format!("user id `{raw}`"));
            if let Some(raw_user) = retry_user {
                let order = use_cases(&store, &cli.table).release(&sale.id, &user(&raw_user)?).await;
                writeln!(out, "{}", json!(order.map_err(refused)?))?;
            } else if let Some(raw_user) = return_user {
                let pk = flash_sale::keys::purchase_pk(sale.id.as_str(), user(&raw_user)?.as_str());
                if !store.return_stuck_hold(&sale.id, &pk).await? {
                    bail!("`{raw_user}` has no hold set aside in sale `{}`", sale.id);
                }
                writeln!(out, "{}", json!({ "returned": raw_user }))?;
            } else {
                for hold in store.stuck_holds(&sale.id).await? {
                    writeln!(
                        out,
                        "{}",
                        json!({"userId": hold.user_id, "orderId": hold.order_id, "status": hold.status,
                               "holdExpiresAt": hold.hold_expires_at.map(rfc3339_ms),
                               "stuckAt": hold.stuck_at.map(rfc3339_ms), "releaseFailures": hold.release_failures,
                               "lastError": hold.reason, "pk": hold.pk})
                    )?;
                }
            }
        }
        Command::Sweep { limit, budget_seconds } => {
            let budget = std::time::Duration::from_secs(budget_seconds);
            let report = use_cases(&store, &cli.table).sweep(limit, budget).await.map_err(refused)?;
            writeln!(out, "{}", json!(report))?;
        }
        Command::VerifyDraw { sale_id: Some(sale_id), .. } => {
            let sale = existing_sale(&store, &sale_id).await?;
            let config = sale.room.as_ref().context("this sale has no waiting room")?;
            if now_ms() < sale.starts_at_ms {
                bail!("the draw happens at opening ({}); the seed is still secret", rfc3339_ms(sale.starts_at_ms));
            }
            let record = store.draw_record(&sale.id).await?.context("no draw seed stored")?;
            let seed = record.seed;
            if room::commitment(&seed) != config.draw_commitment {
                bail!("the revealed seed does not match the published commitment {}", config.draw_commitment);
            }
            let entries = store.room_entries(&sale.id).await?;
            // The sealed pre-queue: a pre-queue entry with a lane and no place was left out by the
            // seal (its marker was withdrawn: the joiner found the lane sealed, or never confirmed
            // it) and joins after opening when it comes back; it is counted, not drawn.
            let (prequeue, left_out): (Vec<_>, Vec<_>) =
                entries.iter().filter(|e| e.prequeue).partition(|e| e.place.is_some() || e.lane.is_none());
            let users: Vec<String> = prequeue.iter().map(|e| e.user_id.clone()).collect();
            let drawn = match &config.beacon {
                None => room::draw(&seed, &users),
                Some(beacon) => {
                    let signature = record.beacon_signature.context("the beacon round is not fetched yet")?;
                    let randomness = beacon.verify(&signature)?;
                    flash_sale::beacon::draw(&flash_sale::beacon::effective_seed(&seed, &randomness), &users)
                }
            };
            let expected: std::collections::HashMap<String, i64> = drawn.into_iter().collect();
            let wrong: Vec<_> = prequeue.iter().filter(|e| e.place != expected.get(&e.user_id).copied()).collect();
            writeln!(
                out,
                "{}",
                json!({ "saleId": sale.id.as_str(), "commitment": config.draw_commitment, "seed": hex_string(&seed),
                        "beaconRound": config.beacon.as_ref().map(|b| b.round),
                        "prequeueEntrants": users.len(), "placesMatching": users.len() - wrong.len(),
                        "leftOutBySeal": left_out.len() })
            )?;
            if !wrong.is_empty() {
                bail!(
                    "{} pre-queue places differ from the draw, e.g. {:?}",
                    wrong.len(),
                    wrong.first().map(|e| &e.user_id)
                );
            }
        }
        Command::VerifyDraw { .. } => bail!("give --sale-id, or --public with --entrants"),
        Command::ExportEntrants { sale_id, out: path } => {
            let sale = existing_sale(&store, &sale_id).await?;
            let config = sale.room.as_ref().context("this sale has no waiting room")?;
            let state = store.room_state(&sale.id).await?.context("no room state")?;
            if state.prequeue_size.is_none() {
                bail!("the pre-queue is not drawn yet");
            }
            let list = store.entrant_list(&sale.id).await?;
            if config.beacon.is_some() {
                let record = store.draw_record(&sale.id).await?.context("no draw stored")?;
                if record.entrants_root.as_deref() != Some(list.entrants_root.as_str()) {
                    bail!("the entrants stored do not hash to the root the draw recorded");
                }
            }
            let text = serde_json::to_string_pretty(&list)?;
            match path {
                Some(path) => std::fs::write(&path, text).with_context(|| format!("{}", path.display()))?,
                None => writeln!(out, "{text}")?,
            }
        }
        Command::Watch { sale_id, for_seconds, every_ms, live_every } => {
            let sale = existing_sale(&store, &sale_id).await?;
            let started = std::time::Instant::now();
            let mut last_sold: Option<(std::time::Instant, i64)> = None;
            let mut live: Option<std::collections::BTreeMap<String, i64>> = None;
            let mut refresh = 0u64;
            while started.elapsed().as_secs() < for_seconds {
                let shards = store.shard_stock(&[&sale]).await?.remove(0);
                let remaining: i64 = shards.iter().map(|r| (*r).max(0)).sum();
                let per_variant = if sale.has_variants() {
                    if live_every > 0 && refresh.is_multiple_of(live_every) {
                        live = Some(live_items_by_variant(&store, &sale).await?);
                    }
                    variant_line(&sale, &shards, live.as_ref())
                } else {
                    String::new()
                };
                refresh += 1;
                let sold = sale.total_stock - remaining;
                let now = std::time::Instant::now();
                let rate =
                    last_sold.map_or(0.0, |(at, before)| (sold - before) as f64 / now.duration_since(at).as_secs_f64());
                last_sold = Some((now, sold));
                let room = match &sale.room {
                    None => String::new(),
                    Some(_) => match store.room_state(&sale.id).await? {
                        Some(r) => format!(
                            "  line {:>7}  admitted through {:>7}  {:>5}/s{}",
                            r.places_issued()
                                .map_or_else(|| "drawing".to_owned(), |n| (n - r.admitted_through).max(0).to_string()),
                            r.admitted_through,
                            r.admit_per_second,
                            if r.paused { "  PAUSED" } else { "" }
                        ),
                        None => "  (no room state)".to_owned(),
                    },
                };
                writeln!(
                    out,
                    "{}  {}  {sold:>6}/{} sold  {rate:>7.1}/s{room}{per_variant}",
                    rfc3339_ms(now_ms()),
                    bar(sold, sale.total_stock),
                    sale.total_stock
                )?;
                out.flush()?;
                tokio::time::sleep(std::time::Duration::from_millis(every_ms.max(100))).await;
            }
        }
        Command::PauseAdmission { sale_id } => {
            let sale = existing_sale(&store, &sale_id).await?;
            store.control_room(&sale.id, Some(true), None).await?;
            writeln!(out, "admission paused for {}", sale.id)?;
        }
        Command::ResumeAdmission { sale_id } => {
            let sale = existing_sale(&store, &sale_id).await?;
            store.control_room(&sale.id, Some(false), None).await?;
            writeln!(out, "admission resumed for {}", sale.id)?;
        }
        Command::SetAdmitRate { sale_id, per_second } => {
            if per_second == 0 {
                bail!("--per-second must be at least 1; use pause-admission to stop admitting");
            }
            let sale = existing_sale(&store, &sale_id).await?;
            store.control_room(&sale.id, None, Some(per_second)).await?;
            writeln!(out, "{} now admits {per_second} people per second", sale.id)?;
        }
        Command::ResetSale { sale_id, variant, yes, include_confirmed } => {
            if !yes {
                let what = if variant.is_empty() { "every purchase of the sale" } else { "these variants' purchases" };
                bail!("reset-sale deletes {what}; pass --yes to confirm");
            }
            let sale = existing_sale(&store, &sale_id).await?;
            let ids: Vec<&str> = sale.spans().iter().map(|v| v.id).collect();
            if let Some(unknown) = variant.iter().find(|v| !ids.contains(&v.as_str())) {
                bail!(
                    "sale {} has no variant `{unknown}` (its variants: {}); nothing was deleted",
                    sale.id,
                    ids.join(", ")
                );
            }
            let reset = if variant.is_empty() {
                store.reset_sale(&sale, include_confirmed).await?
            } else {
                store.reset_variants(&sale, &variant, include_confirmed).await?
            };
            let scope = if variant.is_empty() {
                format!("sale {}", sale.id)
            } else {
                format!("sale {} variant {}", sale.id, variant.join(", "))
            };
            let (returned, kept_confirmed) = match reset {
                Reset::Done { returned, kept_confirmed } => (returned, kept_confirmed),
                Reset::Refused { confirmed } => bail!(
                    "{scope} has {confirmed} confirmed (paid) orders; nothing was deleted. A reset cancels them \
                     (OrderCancelled, reason reset): pass --include-confirmed to delete them too"
                ),
            };
            let left = store
                .purchases_of(&sale.id)
                .await?
                .iter()
                .filter(|p| variant.is_empty() || variant.iter().any(|v| v == p.variant()))
                .count();
            writeln!(out, "{scope} reset: {returned} purchases deleted and their items given back")?;
            if kept_confirmed > 0 {
                writeln!(out, "{kept_confirmed} orders confirmed during the reset were kept (no --include-confirmed)")?;
            }
            if left > kept_confirmed {
                writeln!(
                    out,
                    "{} purchases made during the reset were kept (stock + purchases = total)",
                    left - kept_confirmed
                )?;
            }
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flash-sale-admin: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A public document: fetched when `source` is an http(s) URL, read from the file otherwise.
async fn read_public(source: &str) -> Result<Vec<u8>> {
    if source.starts_with("https://") || source.starts_with("http://") {
        return sweeper::fetch_public(source).await.map_err(anyhow::Error::msg);
    }
    std::fs::read(source).with_context(|| source.to_owned())
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Items held by live orders (reserved + confirmed), per variant (one consistent scan).
async fn live_items_by_variant(store: &Store, sale: &Sale) -> Result<std::collections::BTreeMap<String, i64>> {
    let mut live = std::collections::BTreeMap::new();
    for r in store.purchases_of(&sale.id).await?.iter().filter(|r| r.status.is_live()) {
        *live.entry(r.variant().to_owned()).or_default() += i64::from(r.items());
    }
    Ok(live)
}

/// `  | ID remaining/total left, N live` per variant, from the shards' stock (numbered across the
/// sale) and, when counted, the items live orders hold.
fn variant_line(sale: &Sale, shards: &[i64], live: Option<&std::collections::BTreeMap<String, i64>>) -> String {
    let mut line = String::new();
    for v in sale.spans() {
        let left: i64 = v.shard_range().filter_map(|n| shards.get(n as usize)).map(|r| (*r).max(0)).sum();
        let held = live.map(|l| format!(", {} live", l.get(v.id).copied().unwrap_or(0))).unwrap_or_default();
        line.push_str(&format!("  | {} {left}/{} left{held}", v.id, v.stock));
    }
    line
}

/// A 20-character bar of the stock sold.
fn bar(sold: i64, total: i64) -> String {
    let filled = if total > 0 { usize::try_from(sold.clamp(0, total) * 20 / total).unwrap_or(0) } else { 0 };
    format!("[{}{}]", "#".repeat(filled), ".".repeat(20 - filled))
}

/// The entrant list the API publishes beside a sale's status URL: every page of
/// `{status URL}/entrants/{page}`, fitted together (at most 10,000 pages).
async fn published_entrants(status_url: &str) -> Result<flash_sale::draw_check::EntrantList> {
    if !status_url.starts_with("http://") && !status_url.starts_with("https://") {
        bail!("give --entrants, or the status as its URL (the list is read from beside it)");
    }
    let base = status_url.trim_end_matches('/');
    let mut pages: Vec<flash_sale::draw_check::EntrantPage> = Vec::new();
    loop {
        let n = pages.len();
        let url = format!("{base}/entrants/{n}");
        let page: flash_sale::draw_check::EntrantPage = serde_json::from_slice(&read_public(&url).await?)
            .with_context(|| format!("{url} is not a page of an entrant list"))?;
        let total = usize::try_from(page.pages).unwrap_or(usize::MAX);
        pages.push(page);
        if pages.len() >= total || pages.len() >= 10_000 {
            break;
        }
    }
    flash_sale::draw_check::EntrantList::from_pages(&pages).map_err(anyhow::Error::msg)
}

/// `ID:LABEL:STOCK[:SHARDS]` of `--variant`.
fn parse_variant(text: &str) -> anyhow::Result<flash_sale::sale::Variant> {
    let parts: Vec<&str> = text.split(':').collect();
    let (id, label, stock, shards) = match parts.as_slice() {
        [id, label, stock] => (*id, *label, *stock, "1"),
        [id, label, stock, shards] => (*id, *label, *stock, *shards),
        _ => bail!("--variant {text:?}: expected ID:LABEL:STOCK[:SHARDS], e.g. eu42:EU 42:120"),
    };
    Ok(flash_sale::sale::Variant {
        variant_id: id.to_owned(),
        label: label.to_owned(),
        sku: None,
        stock: stock.parse().with_context(|| format!("--variant {text:?}: stock"))?,
        shards: shards.parse().with_context(|| format!("--variant {text:?}: shards"))?,
    })
}
