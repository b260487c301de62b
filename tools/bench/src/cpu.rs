//! CPU per request with no network: the handlers run against a canned-answer HTTP client
//! (`crate::canned`) that answers every DynamoDB call with a canned response. The client is
//! `flash_sale::aws::local_client` (static credentials, loopback endpoint) with only its HTTP
//! client swapped, so signing, retries, timeouts, endpoint resolution and (de)serialization all
//! run as they do against DynamoDB.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::{HttpRequest, HttpResponse};
use aws_sdk_dynamodb::types::KeysAndAttributes;
use bytes::Bytes;
use flash_sale::clock::now_ms;
use flash_sale::config::Tuning;
use flash_sale::http::{ApiEvent, ApiRequest, ApiResponse, purchase_function, status_function, user_lookup_function};
use flash_sale::ids::{SaleId, UserId};
use flash_sale::keys;
use flash_sale::sale::Sale;
use flash_sale::store::{Attempt, PurchaseRecord, Store};
use flash_sale::{App, AppError};
use serde_json::{Value, json};

use crate::{canned, local, rawtx, stats};

const TABLE: &str = "bench-cpu";
const SALE: &str = "cpu-sale";
/// Never contacted: the HTTP client below answers instead.
const ENDPOINT: &str = "http://127.0.0.1:9";

pub struct Args {
    pub iterations: usize,
    pub batches: usize,
    pub only: Option<String>,
    /// Variants of the sale (one shard each); 1: a sale without variants, as before variants
    /// existed. With several, each purchase names one in turn, and only the handler scenarios run.
    pub variants: u32,
}

/// What the canned DynamoDB answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    /// TransactWriteItems commits. GetItem of the sale item always returns the sale.
    Success = 0,
    /// TransactWriteItems is cancelled: the user already has a purchase (ALL_OLD item).
    Duplicate = 1,
    /// TransactWriteItems is cancelled: the shard is empty.
    Empty = 2,
    /// GetItem of a purchase record returns one (user lookup); in every other mode the buyer has
    /// none.
    Lookup = 3,
}

struct Canned {
    mode: AtomicU8,
    calls: AtomicU64,
    get_sale: Bytes,
    get_purchase: Bytes,
    no_item: Bytes,
    /// The purchase sort key as it appears in a request body.
    purchase_sk: String,
    batch: Bytes,
    twi_ok: Bytes,
    twi_duplicate: Bytes,
    twi_empty: Bytes,
}

fn av_s(v: &str) -> Value {
    json!({ "S": v })
}

fn av_n(v: i64) -> Value {
    json!({ "N": v.to_string() })
}

impl Canned {
    fn new(sale: &Sale) -> Self {
        let id = sale.id.as_str();
        let mut sale_item = json!({
            "pk": av_s(&keys::sale_pk(id)), "sk": av_s(keys::SALE_SK), "entity": av_s("SALE"), "saleId": av_s(id),
            "name": av_s(&sale.name), "priceCents": av_n(sale.price_cents), "currency": av_s(&sale.currency),
            "totalStock": av_n(sale.total_stock), "shards": av_n(i64::from(sale.shards)),
            "startsAt": av_n(sale.starts_at_ms), "endsAt": av_n(sale.ends_at_ms), "createdAt": av_n(sale.starts_at_ms),
        });
        if sale.has_variants() {
            let variants: Vec<Value> = sale
                .variants
                .iter()
                .map(|v| {
                    json!({ "M": { "variantId": av_s(&v.variant_id), "label": av_s(&v.label),
                                   "stock": av_n(v.stock), "shards": av_n(i64::from(v.shards)) } })
                })
                .collect();
            sale_item["variants"] = json!({ "L": variants });
        }
        let shard = |remaining: i64| {
            json!({
                "pk": av_s(&keys::shard_pk(id, 0)), "sk": av_s(keys::SHARD_SK), "saleId": av_s(id), "shard": av_n(0),
                "remaining": av_n(remaining), "initial": av_n(sale.total_stock),
                "startsAt": av_n(sale.starts_at_ms), "endsAt": av_n(sale.ends_at_ms),
            })
        };
        // A sale with variants: every shard, each naming its variant.
        let shards: Vec<Value> = if sale.has_variants() {
            sale.spans()
                .iter()
                .flat_map(|v| v.shard_range().map(move |n| (v.id.to_owned(), n, v.stock)))
                .map(|(variant, n, stock)| {
                    json!({
                        "pk": av_s(&keys::shard_pk(id, n)), "sk": av_s(keys::SHARD_SK), "saleId": av_s(id),
                        "shard": av_n(i64::from(n)), "remaining": av_n(41), "initial": av_n(stock),
                        "startsAt": av_n(sale.starts_at_ms), "endsAt": av_n(sale.ends_at_ms),
                        "variantId": av_s(&variant),
                    })
                })
                .collect()
        } else {
            vec![shard(41)]
        };
        let purchase = json!({
            "pk": av_s(&keys::purchase_pk(id, "someone")), "sk": av_s(keys::PURCHASE_SK), "saleId": av_s(id),
            "userId": av_s("someone"), "orderId": av_s("01JZ0000000000000000000000"),
            "purchasedAt": av_n(sale.starts_at_ms + 1_000), "shard": av_n(0),
        });
        let cancelled = |reasons: Value| {
            json!({
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons",
                "CancellationReasons": reasons,
            })
        };
        let b = |v: Value| Bytes::from(v.to_string());
        Self {
            mode: AtomicU8::new(Mode::Success as u8),
            calls: AtomicU64::new(0),
            get_sale: b(json!({ "Item": sale_item })),
            get_purchase: b(json!({ "Item": purchase })),
            no_item: Bytes::from_static(b"{}"),
            purchase_sk: json!({ "S": keys::PURCHASE_SK }).to_string(),
            batch: b(json!({ "Responses": { TABLE: shards }, "UnprocessedKeys": {} })),
            twi_ok: Bytes::from_static(b"{}"),
            twi_duplicate: b(cancelled(json!([
                { "Code": "None" },
                { "Code": "ConditionalCheckFailed", "Message": "The conditional request failed", "Item": purchase },
            ]))),
            twi_empty: b(cancelled(json!([
                { "Code": "ConditionalCheckFailed", "Message": "The conditional request failed", "Item": shard(0) },
                { "Code": "None" },
            ]))),
        }
    }

    fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
    }

    /// True when a `GetItem` request's key has the purchase record's sort key.
    fn asks_for_purchase(&self, req: &HttpRequest) -> bool {
        let sk = self.purchase_sk.as_bytes();
        req.body().bytes().is_some_and(|b| b.windows(sk.len()).any(|w| w == sk))
    }

    fn answer(&self, req: &HttpRequest) -> HttpResponse {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mode = self.mode.load(Ordering::Relaxed);
        let (status, body) = match canned::operation(req) {
            // A purchase record is asked for by its sort key.
            "GetItem" if self.asks_for_purchase(req) => {
                (200, if mode == Mode::Lookup as u8 { self.get_purchase.clone() } else { self.no_item.clone() })
            }
            "GetItem" => (200, self.get_sale.clone()),
            "BatchGetItem" => (200, self.batch.clone()),
            "TransactWriteItems" if mode == Mode::Duplicate as u8 => (400, self.twi_duplicate.clone()),
            "TransactWriteItems" if mode == Mode::Empty as u8 => (400, self.twi_empty.clone()),
            "TransactWriteItems" => (200, self.twi_ok.clone()),
            _ => (
                400,
                Bytes::from_static(
                    br#"{"__type":"com.amazon.coral.validate#ValidationException","Message":"not canned"}"#,
                ),
            ),
        };
        canned::dynamodb_response(status, body)
    }
}

/// The project's client with only its HTTP client swapped for the canned answers.
fn client(canned: &Arc<Canned>) -> Result<Client> {
    let base = local::client(ENDPOINT)?;
    let c = canned.clone();
    Ok(Client::from_conf(base.config().to_builder().http_client(canned::client(move |req| c.answer(req))).build()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    PurchaseSuccess,
    PurchaseDuplicate,
    PurchaseSoldOut,
    PurchaseSoldOutHint,
    PurchaseInvalid,
    Status,
    UserLookup,
    /// `Store::transact_purchase` (the `test-util` hook onto the purchase transaction the use case
    /// sends) answered with a commit.
    StoreTx,
    /// The same answered with the duplicate's cancellation: the SDK parses the exception, the
    /// store reads the cancellation reasons into `Attempt::AlreadyPurchased`.
    StoreTxDuplicate,
    /// The same transaction sent with the plain SDK (`crate::rawtx`), committed.
    SdkTransactWrite,
    /// The SDK-only transaction answered with the duplicate's cancellation (the SDK's share of
    /// `StoreTxDuplicate`).
    SdkTransactWriteDuplicate,
    SdkGetItem,
    SdkBatchGet,
    OwnSuccessPieces,
    /// Dropping a purchase `ApiRequest` (the handlers own and drop theirs).
    DropRequest,
    /// An API Gateway v2 purchase event's JSON read into an `ApiRequest`, then dropped: what the
    /// runtime does per invocation before the handler runs (`flash_sale::lambda::run`).
    EventParse,
}

impl Scenario {
    fn name(self) -> String {
        match self {
            Scenario::PurchaseSuccess => "handler purchase, success (GetItem cached, 1 TransactWriteItems)".into(),
            Scenario::PurchaseDuplicate => "handler purchase, already_purchased (1 cancelled tx)".into(),
            Scenario::PurchaseSoldOut => "handler purchase, sold_out found by tx (1 cancelled tx)".into(),
            Scenario::PurchaseSoldOutHint => {
                "handler purchase, sold_out from hint (1 consistent GetItem of the buyer's record)".into()
            }
            Scenario::PurchaseInvalid => "handler purchase, 400 invalid body (no SDK call) = own code".into(),
            Scenario::Status => "handler status GET /sales/{id} (1 BatchGetItem)".into(),
            Scenario::UserLookup => "handler user-lookup (1 GetItem)".into(),
            Scenario::StoreTx => "Store::transact_purchase alone, committed (items + 1 TransactWriteItems)".into(),
            Scenario::StoreTxDuplicate => {
                "Store::transact_purchase alone, already_purchased (+ cancellation read into a verdict)".into()
            }
            Scenario::SdkTransactWrite => "SDK only: TransactWriteItems, same items".into(),
            Scenario::SdkTransactWriteDuplicate => "SDK only: TransactWriteItems, cancelled (duplicate)".into(),
            Scenario::SdkGetItem => "SDK only: consistent GetItem of a purchase".into(),
            Scenario::SdkBatchGet => "SDK only: BatchGetItem, 1 key".into(),
            Scenario::OwnSuccessPieces => "own: ULID + PurchaseRecord + to_purchase + JSON render".into(),
            Scenario::DropRequest => "drop of one purchase ApiRequest (part of every handler)".into(),
            Scenario::EventParse => "runtime side: API Gateway v2 event JSON -> ApiRequest (+ drop)".into(),
        }
    }

    fn mode(self) -> Mode {
        match self {
            Scenario::PurchaseDuplicate | Scenario::StoreTxDuplicate | Scenario::SdkTransactWriteDuplicate => {
                Mode::Duplicate
            }
            Scenario::PurchaseSoldOut | Scenario::PurchaseSoldOutHint => Mode::Empty,
            Scenario::UserLookup | Scenario::SdkGetItem => Mode::Lookup,
            _ => Mode::Success,
        }
    }

    /// The status every request of this scenario must answer (the bench stops otherwise).
    fn expected(self) -> u16 {
        match self {
            Scenario::PurchaseSuccess | Scenario::StoreTx | Scenario::SdkTransactWrite => 201,
            Scenario::OwnSuccessPieces => 201,
            Scenario::PurchaseDuplicate | Scenario::PurchaseSoldOut | Scenario::PurchaseSoldOutHint => 409,
            Scenario::StoreTxDuplicate | Scenario::SdkTransactWriteDuplicate => 409,
            Scenario::PurchaseInvalid => 400,
            Scenario::Status | Scenario::UserLookup | Scenario::SdkGetItem | Scenario::SdkBatchGet => 200,
            Scenario::DropRequest | Scenario::EventParse => 200,
        }
    }

    /// The handler requests this scenario needs, built outside the timed region. With several
    /// variants each purchase names variant `i mod variants`.
    fn requests(self, from: usize, n: usize, variants: u32) -> Vec<ApiRequest> {
        let build = |f: &dyn Fn(usize) -> Value| (from..from + n).map(|i| local::request(&f(i))).collect();
        let variant =
            |i: usize| (variants > 1).then(|| local::variant_id(u32::try_from(i % variants as usize).unwrap_or(0)));
        match self {
            Scenario::PurchaseSuccess
            | Scenario::PurchaseDuplicate
            | Scenario::PurchaseSoldOut
            | Scenario::PurchaseSoldOutHint
            | Scenario::DropRequest => {
                build(&|i| local::purchase_event_for(SALE, &format!("user-{i}"), variant(i).as_deref()))
            }
            Scenario::PurchaseInvalid => build(&|_| {
                let mut e = local::purchase_event(SALE, "x");
                e["body"] = json!("{\"userId\": 42}");
                e
            }),
            Scenario::Status => build(&|_| local::status_event(SALE)),
            Scenario::UserLookup => build(&|i| local::lookup_event(SALE, &format!("user-{i}"))),
            _ => Vec::new(),
        }
    }
}

struct Bench {
    /// Variants of the sale (1: none of its own).
    variants: u32,
    /// Purchase events as the Runtime API delivers them (for `EventParse`).
    events: Vec<String>,
    canned: Arc<Canned>,
    sale: Sale,
    /// Hints off except the sale cache (so every purchase reaches the transaction).
    app: &'static App,
    /// Sold-out hint on and primed: purchases answer without a transaction.
    app_hint: &'static App,
    /// The store of `app` (the same client).
    store: Store,
    /// The store's client with the canned answers (for the SDK-only scenarios).
    client: Client,
}

fn status(resp: ApiResponse) -> u16 {
    resp.status_code
}

impl Bench {
    /// One purchase transaction through the store's test hook: 201 / 409 for the verdicts the
    /// scenarios expect, 500 otherwise.
    async fn store_tx(&self, i: usize) -> u16 {
        let user = UserId::parse(&format!("user-{i}")).expect("user id");
        let now = now_ms();
        let order = ulid::Ulid::new().to_string();
        let record = PurchaseRecord::new(&self.sale.id, &user, order.clone(), now, 0, None);
        let token = format!("{order}-0-0");
        match self.store.transact_purchase(&self.sale, 0, &record, now, &token).await {
            Ok(Attempt::Committed) => 201,
            Ok(Attempt::AlreadyPurchased(_)) => 409,
            _ => 500,
        }
    }

    async fn one(&self, s: Scenario, req: Option<ApiRequest>, i: usize) -> u16 {
        let req = || req.expect("scenario has requests");
        match s {
            Scenario::PurchaseSuccess
            | Scenario::PurchaseDuplicate
            | Scenario::PurchaseSoldOut
            | Scenario::PurchaseInvalid => status(purchase_function(self.app, req()).await),
            Scenario::PurchaseSoldOutHint => status(purchase_function(self.app_hint, req()).await),
            Scenario::Status => status(status_function(self.app, req()).await),
            Scenario::UserLookup => status(user_lookup_function(self.app, req()).await),
            Scenario::StoreTx | Scenario::StoreTxDuplicate => self.store_tx(i).await,
            Scenario::SdkTransactWrite => {
                let user = format!("user-{i}");
                match rawtx::purchase(&self.client, TABLE, SALE, 0, &user, now_ms(), false).await {
                    Ok(_) => 201,
                    Err(_) => 500,
                }
            }
            Scenario::SdkTransactWriteDuplicate => {
                let user = format!("user-{i}");
                let sent = rawtx::purchase(&self.client, TABLE, SALE, 0, &user, now_ms(), false).await;
                match sent.map_err(|e| e.into_service_error()) {
                    Err(e) if e.is_transaction_canceled_exception() => 409,
                    _ => 500,
                }
            }
            Scenario::SdkGetItem => {
                let key = rawtx::key(keys::purchase_pk(SALE, &format!("user-{i}")), keys::PURCHASE_SK);
                let out =
                    self.client.get_item().table_name(TABLE).set_key(Some(key)).consistent_read(true).send().await;
                if out.is_ok() { 200 } else { 500 }
            }
            Scenario::SdkBatchGet => {
                let keys = KeysAndAttributes::builder()
                    .keys(rawtx::key(keys::shard_pk(SALE, 0), keys::SHARD_SK))
                    .build()
                    .expect("keys");
                let out = self.client.batch_get_item().request_items(TABLE, keys).send().await;
                if out.is_ok() { 200 } else { 500 }
            }
            Scenario::OwnSuccessPieces => {
                let user = UserId::parse(&format!("user-{i}")).expect("user id");
                let order = ulid::Ulid::new().to_string();
                let record = PurchaseRecord::new(&self.sale.id, &user, order, now_ms(), 0, None);
                let text = serde_json::to_string(&record.to_purchase()).unwrap_or_default();
                let resp = ApiResponse::new(201, "application/json", "no-store", text);
                std::hint::black_box(&resp);
                resp.status_code
            }
            Scenario::DropRequest => {
                drop(std::hint::black_box(req()));
                200
            }
            Scenario::EventParse => {
                let ev = &self.events[i % self.events.len()];
                let req = serde_json::from_slice::<ApiEvent>(ev.as_bytes()).map(ApiRequest::new);
                if std::hint::black_box(req).is_ok() { 200 } else { 500 }
            }
        }
    }
}

/// Logging and metrics as the Lambda binaries do them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Telemetry {
    /// No subscriber, no recorder (the baseline phase).
    Off,
    /// The JSON log line per request; metrics recorded, flushed outside the timing.
    Log,
    /// The log line and the EMF flush after every request, as `flash_sale::lambda::run` does.
    LogEmf,
}

/// One measured batch: µs of process CPU per request, µs wall per request, SDK calls per request.
async fn batch(
    b: &Bench,
    s: Scenario,
    n: usize,
    tele: Telemetry,
    flush: Option<&'static telemetry::Flush>,
) -> Result<(f64, f64, f64)> {
    const CHUNK: usize = 500;
    b.canned.set(s.mode());
    let (mut cpu, mut wall, mut done) = (Duration::ZERO, Duration::ZERO, 0usize);
    let calls_before = b.canned.calls.load(Ordering::Relaxed);
    let per_request_flush = if tele == Telemetry::LogEmf { flush } else { None };
    while done < n {
        let k = CHUNK.min(n - done);
        let mut reqs = s.requests(done, k, b.variants).into_iter();
        let (t0, w0) = (stats::process_cpu(), Instant::now());
        for i in done..done + k {
            let status = b.one(s, reqs.next(), i).await;
            if status != s.expected() {
                return Err(anyhow!("{}: status {status}, expected {}", s.name(), s.expected()));
            }
            if let Some(f) = per_request_flush {
                f.flush();
            }
            std::hint::black_box(status);
        }
        cpu += stats::process_cpu() - t0;
        wall += w0.elapsed();
        done += k;
        // Metrics recorded without a per-request flush are emptied outside the timed region.
        if let (Telemetry::Log, Some(f)) = (tele, flush) {
            f.flush();
        }
    }
    let calls = b.canned.calls.load(Ordering::Relaxed) - calls_before;
    Ok((cpu.as_secs_f64() * 1e6 / n as f64, wall.as_secs_f64() * 1e6 / n as f64, calls as f64 / n as f64))
}

/// The Lambda binaries' logging and metrics as shipped (`flash_sale::telemetry::init`, the EMF
/// recorder of `flash_sale::telemetry::metrics_builder`, the flush of `flash_sale::lambda::run`),
/// all writing to stdout, which points at /dev/null while they are measured.
mod telemetry {
    use std::fs::File;
    use std::io::Write;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    pub struct Flush {
        collector: &'static metrics_cloudwatch_embedded::Collector,
    }

    impl Flush {
        /// Installs the process-wide subscriber and recorder exactly as a Lambda binary does.
        pub fn install() -> anyhow::Result<&'static Flush> {
            flash_sale::telemetry::init();
            let collector =
                flash_sale::telemetry::metrics_builder().init().map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
            flash_sale::telemetry::describe_metrics();
            Ok(Box::leak(Box::new(Flush { collector })))
        }

        /// What `flash_sale::lambda::run` does after each invocation.
        pub fn flush(&self) {
            self.collector.set_property("requestId", "bench-request-id");
            let _ = self.collector.flush(std::io::stdout().lock());
        }
    }

    /// Points this process's stdout (fd 1) at /dev/null until dropped.
    pub struct StdoutSilenced {
        saved: OwnedFd,
    }

    impl StdoutSilenced {
        pub fn new() -> anyhow::Result<Self> {
            std::io::stdout().flush()?;
            let devnull = File::options().write(true).open("/dev/null")?;
            // SAFETY: dup and dup2 on descriptors this process owns; the duplicate is owned below.
            let saved = unsafe { libc::dup(1) };
            if saved < 0 {
                return Err(std::io::Error::last_os_error().into());
            }
            // SAFETY: `saved` is a fresh descriptor nothing else owns.
            let saved = unsafe { OwnedFd::from_raw_fd(saved) };
            // SAFETY: both descriptors are open.
            if unsafe { libc::dup2(devnull.as_raw_fd(), 1) } < 0 {
                return Err(std::io::Error::last_os_error().into());
            }
            Ok(Self { saved })
        }
    }

    impl Drop for StdoutSilenced {
        fn drop(&mut self) {
            let _ = std::io::stdout().flush();
            // SAFETY: both descriptors are open; fd 1 gets back what it pointed at before.
            unsafe { libc::dup2(self.saved.as_raw_fd(), 1) };
        }
    }
}

/// Runs the scenarios interleaved (batch 1 of each, then batch 2 of each, ...) so that changes in
/// the machine's other load hit every scenario alike; prints median and min per scenario.
async fn measure_all(
    b: &Bench,
    list: &[(Scenario, Telemetry)],
    args: &Args,
    flush: Option<&'static telemetry::Flush>,
) -> Result<Vec<(Scenario, Telemetry, f64, f64)>> {
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); list.len()];
    let mut wall: Vec<Vec<f64>> = vec![Vec::new(); list.len()];
    let mut calls = vec![0.0; list.len()];
    {
        // The telemetry writes to stdout; the results are printed after it points back.
        let _quiet = flush.map(|_| telemetry::StdoutSilenced::new()).transpose()?;
        for &(s, t) in list {
            batch(b, s, (args.iterations / 5).max(100), t, flush).await?; // warm-up, not counted
        }
        for _ in 0..args.batches {
            for (i, &(s, t)) in list.iter().enumerate() {
                let (c, w, n) = batch(b, s, args.iterations, t, flush).await?;
                cpu[i].push(c);
                wall[i].push(w);
                calls[i] = n;
            }
        }
    }
    let mut out = Vec::new();
    for (i, &(s, t)) in list.iter().enumerate() {
        let label = match t {
            Telemetry::Off => s.name(),
            Telemetry::Log => format!("{} + JSON log line", s.name()),
            Telemetry::LogEmf => format!("{} + JSON log line + EMF flush", s.name()),
        };
        println!(
            "  {:<88} {:>7.2} µs CPU/req (min {:.2}, max {:.2}) · wall {:.2} µs · SDK calls/req {:.2}",
            label,
            stats::median(&cpu[i]),
            stats::min(&cpu[i]),
            stats::max(&cpu[i]),
            stats::median(&wall[i]),
            calls[i]
        );
        out.push((s, t, stats::median(&cpu[i]), stats::min(&cpu[i])));
    }
    Ok(out)
}

pub fn run(args: Args) -> Result<()> {
    // One thread, like the Lambda binaries' current-thread runtime.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run_inner(args))
}

async fn run_inner(args: Args) -> Result<()> {
    let now = now_ms();
    let mut sale = local::sale(SALE, 1_000_000, 1, now - 60_000, now + 7 * 86_400_000);
    let variants = args.variants.max(1);
    if variants > 1 {
        sale.set_variants(local::variant_list(sale.total_stock, variants));
    }
    let canned = Arc::new(Canned::new(&sale));
    let client = client(&canned)?;
    let long = Duration::from_secs(7 * 86_400);
    let tuning = Tuning { sale_cache: long, sold_out_hint: Duration::ZERO, ..Tuning::default() };
    let store = Store::new(client.clone(), TABLE);
    let app = local::leaked_app(&store, tuning.clone());
    let app_hint = local::leaked_app(&store, Tuning { sold_out_hint: long, ..tuning });
    let events = (0..500).map(|i| local::purchase_event(SALE, &format!("user-{i}")).to_string()).collect();
    let bench = Bench { variants, events, canned, sale, app, app_hint, store, client };

    // Warm the sale caches (one GetItem + one BatchGetItem) and prime the sold-out hint (one
    // cancelled tx).
    bench.canned.set(Mode::Success);
    let sale_id = SaleId::parse(SALE).map_err(|e| anyhow!("{e}"))?;
    app.sale_view(&sale_id).await.map_err(|e| anyhow!("warm sale cache: {e:?}"))?;
    bench.canned.set(Mode::Empty);
    let primer = UserId::parse("primer").map_err(|e| anyhow!("{e}"))?;
    if variants == 1 {
        let primed = app_hint.purchase(&sale_id, &primer, None).await;
        if !matches!(primed.result, Err(AppError::SoldOut)) || primed.transactions != 1 {
            return Err(anyhow!("priming the sold-out hint: {primed:?}"));
        }
    }

    println!(
        "cpu: {} iterations x {} batches per scenario (after a warm-up batch), current-thread runtime, process CPU time; medians over batches",
        args.iterations, args.batches
    );
    if variants > 1 {
        println!(
            "  sale with {variants} variants of one shard each; purchase i names variant v(i mod {variants}); handler scenarios only"
        );
    }
    let scenarios = [
        Scenario::PurchaseSuccess,
        Scenario::PurchaseDuplicate,
        Scenario::PurchaseSoldOut,
        Scenario::PurchaseSoldOutHint,
        Scenario::PurchaseInvalid,
        Scenario::Status,
        Scenario::UserLookup,
        Scenario::StoreTx,
        Scenario::StoreTxDuplicate,
        Scenario::SdkTransactWriteDuplicate,
        Scenario::SdkBatchGet,
        Scenario::OwnSuccessPieces,
        Scenario::DropRequest,
        Scenario::EventParse,
        Scenario::SdkTransactWrite,
        Scenario::SdkGetItem,
    ];
    // With variants of its own: the handler paths a buyer takes (the others do not read the sale).
    let handler = |s: &Scenario| {
        variants == 1
            || matches!(
                s,
                Scenario::PurchaseSuccess
                    | Scenario::PurchaseDuplicate
                    | Scenario::PurchaseSoldOut
                    | Scenario::PurchaseInvalid
                    | Scenario::Status
            )
    };
    let wanted = |s: &Scenario| {
        handler(s) && args.only.as_deref().is_none_or(|o| s.name().contains(o) || format!("{s:?}").contains(o))
    };

    let list: Vec<(Scenario, Telemetry)> =
        scenarios.iter().copied().filter(wanted).map(|s| (s, Telemetry::Off)).collect();
    let results = measure_all(&bench, &list, &args, None).await?;
    let get = |s: Scenario| results.iter().find(|r| r.0 == s).map(|r| (r.2, r.3));
    let sdk_tx = get(Scenario::SdkTransactWrite);
    let sdk_get = get(Scenario::SdkGetItem);
    let diff = |a: (f64, f64), b: (f64, f64)| (a.0 - b.0, a.1 - b.1);
    println!("summary (median; min in brackets):");
    if let (Some(total), Some(sdk)) = (get(Scenario::PurchaseSuccess), sdk_tx) {
        let d = diff(total, sdk);
        println!(
            "  purchase success {:.1} [{:.1}] µs; SDK-only TransactWriteItems {:.1} [{:.1}] µs; difference {:.1} [{:.1}] µs",
            total.0, total.1, sdk.0, sdk.1, d.0, d.1
        );
        println!("  goal purchase <= 30 µs: {}", if total.0 <= 30.0 { "met" } else { "not met" });
    }
    if let (Some(own), Some(drop_req)) = (get(Scenario::PurchaseInvalid), get(Scenario::DropRequest)) {
        println!(
            "  own code alone (400 invalid-body path, whole handler, no SDK call) {:.2} [{:.2}] µs, of which dropping the ApiRequest {:.2} [{:.2}] µs",
            own.0, own.1, drop_req.0, drop_req.1
        );
        println!("  goal own <= 2 µs: {}", if own.0 <= 2.0 { "met" } else { "not met" });
    }
    if let (Some(hint), Some(get_item)) = (get(Scenario::PurchaseSoldOutHint), sdk_get) {
        let d = diff(hint, get_item);
        println!(
            "  sold-out-hint path {:.2} [{:.2}] µs, of which the consistent GetItem of the buyer's record (SDK only) {:.2} [{:.2}] µs; own code by difference {:.2} [{:.2}] µs",
            hint.0, hint.1, get_item.0, get_item.1, d.0, d.1
        );
    }
    if let (Some(st_ok), Some(st_dup), Some(sdk_ok), Some(sdk_dup)) =
        (get(Scenario::StoreTx), get(Scenario::StoreTxDuplicate), sdk_tx, get(Scenario::SdkTransactWriteDuplicate))
    {
        // The store's extra work over the SDK-only call, cancelled minus committed: reading the
        // cancellation reasons into a verdict (the old item parsed into a `PurchaseRecord`).
        let ok = diff(st_ok, sdk_ok);
        let dup = diff(st_dup, sdk_dup);
        println!(
            "  store over SDK-only: committed {:.2} [{:.2}] µs, already_purchased {:.2} [{:.2}] µs; reading the cancellation into a verdict ≈ {:.2} µs",
            ok.0,
            ok.1,
            dup.0,
            dup.1,
            dup.0 - ok.0
        );
    }

    // The same handler paths with the Lambda binaries' JSON log line and EMF flush per request.
    if args.only.is_none() && variants == 1 {
        println!("with telemetry (subscriber and recorder installed now; interleaved among themselves):");
        let flush = telemetry::Flush::install()?;
        let list = [
            (Scenario::PurchaseSuccess, Telemetry::Log),
            (Scenario::PurchaseSuccess, Telemetry::LogEmf),
            (Scenario::PurchaseSoldOutHint, Telemetry::Log),
            (Scenario::PurchaseSoldOutHint, Telemetry::LogEmf),
        ];
        measure_all(&bench, &list, &args, Some(flush)).await?;
    }
    Ok(())
}
