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
use flash_sale::sale::{Sale, SaleView};
use flash_sale::store::{Store, StoreError};
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
        #[arg(long, allow_negative_numbers = true)]
        stock: i64,
        /// Stock items with partition keys of their own; each takes about 500 purchases/s.
        #[arg(long, default_value_t = 1)]
        shards: u32,
        /// RFC 3339, e.g. 2026-12-01T09:00:00Z
        #[arg(long)]
        starts_at: String,
        #[arg(long)]
        ends_at: String,
    },
    /// Every sale with its state and remaining stock, one JSON object per line.
    ListSales,
    /// One sale with per-shard stock and the number of purchases.
    ShowSale {
        #[arg(long)]
        sale_id: String,
    },
    /// Every purchase of a sale, in purchase order.
    Buyers {
        #[arg(long)]
        sale_id: String,
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
    },
    /// Restore the stock and delete every purchase. Run it only while the sale takes no traffic.
    ResetSale {
        #[arg(long)]
        sale_id: String,
        /// Required: this deletes purchases.
        #[arg(long)]
        yes: bool,
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

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

async fn run(cli: Cli) -> Result<()> {
    let store = store(&cli).await?;
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::CreateTable => {
            let created = store.create_table().await?;
            let verb = if created { "created" } else { "already exists:" };
            writeln!(out, "table {verb} {}", store.table())?;
        }
        Command::CreateSale { sale_id: id, name, price_cents, currency, stock, shards, starts_at, ends_at } => {
            let sale = Sale {
                id: sale_id(&id)?,
                name,
                price_cents,
                currency,
                total_stock: stock,
                shards,
                starts_at_ms: parse_rfc3339_ms(&starts_at).map_err(anyhow::Error::msg).context("--starts-at")?,
                ends_at_ms: parse_rfc3339_ms(&ends_at).map_err(anyhow::Error::msg).context("--ends-at")?,
                room: None,
            };
            match store.create_sale(&sale, now_ms()).await {
                Ok(()) => {}
                Err(StoreError::SaleExists(id)) => bail!("sale `{id}` already exists; nothing was changed"),
                Err(e) => return Err(e.into()),
            }
            writeln!(out, "{}", json!(SaleView::new(&sale, sale.total_stock, now_ms())))?;
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
            let purchases = store.purchases_of(&sale.id).await?.len();
            let status = SaleView::new(&sale, shards.iter().map(|r| (*r).max(0)).sum(), now_ms());
            let shown = json!({ "sale": status, "shards": shards, "purchases": purchases });
            writeln!(out, "{}", serde_json::to_string_pretty(&shown)?)?;
        }
        Command::Buyers { sale_id, format } => {
            let sale = existing_sale(&store, &sale_id).await?;
            let purchases = store.purchases_of(&sale.id).await?;
            if let Format::Csv = format {
                writeln!(out, "purchasedAt,orderId,userId,shard")?;
            }
            for p in purchases {
                match format {
                    Format::Jsonl => writeln!(
                        out,
                        "{}",
                        json!({"saleId": p.sale_id, "userId": p.user_id, "orderId": p.order_id,
                               "purchasedAt": rfc3339_ms(p.purchased_at), "shard": p.shard})
                    )?,
                    Format::Csv => writeln!(
                        out,
                        "{},{},{},{}",
                        rfc3339_ms(p.purchased_at),
                        p.order_id,
                        csv_field(&p.user_id),
                        p.shard
                    )?,
                }
            }
        }
        Command::ResetSale { sale_id, yes } => {
            if !yes {
                bail!("reset-sale deletes every purchase of the sale; pass --yes to confirm");
            }
            let sale = existing_sale(&store, &sale_id).await?;
            let returned = store.reset_sale(&sale).await?;
            let left = store.purchases_of(&sale.id).await?.len();
            writeln!(out, "sale {} reset: {returned} purchases deleted and their items given back", sale.id)?;
            if left > 0 {
                writeln!(out, "{left} purchases made during the reset were kept (stock + purchases = total)")?;
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
