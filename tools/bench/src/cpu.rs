//! CPU per request with no network: the handlers run against the AWS SDK's test HTTP client
//! (`aws_smithy_http_client::test_util::infallible_client_fn`), which answers every DynamoDB call
//! with a canned response. The client is `flash_sale::aws::local_client` (static credentials,
//! loopback endpoint) with only its HTTP client swapped, so signing, retries, timeouts, endpoint
//! resolution and (de)serialization all run as they do against DynamoDB.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::endpoint::{Endpoint, EndpointFuture, Params, ResolveEndpoint};
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::StalledStreamProtectionConfig;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_smithy_http_client::test_util::infallible_client_fn;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use flash_sale::App;
use flash_sale::clock::SystemClock;
use flash_sale::config::Tuning;
use flash_sale::error::ApiError;
use flash_sale::identity::AuthMode;
use flash_sale::ids::{SaleId, UserId};
use flash_sale::purchase::{CancelReason, OldItem, classify_cancellation};
use flash_sale::sale::Sale;
use flash_sale::store::{PurchaseRecord, Store};
use lambda_http::Request;
use serde_json::{Value, json};

use crate::{local, rawtx, stats};

const TABLE: &str = "bench-cpu";
const SALE: &str = "cpu-sale";
/// Never contacted: the HTTP client below answers instead.
const ENDPOINT: &str = "http://127.0.0.1:9";

pub struct Args {
    pub iterations: usize,
    pub batches: usize,
    pub only: Option<String>,
}

/// What the canned DynamoDB answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    /// TransactWriteItems commits; GetItem returns the sale.
    Success = 0,
    /// TransactWriteItems is cancelled: the user already has a purchase (ALL_OLD item).
    Duplicate = 1,
    /// TransactWriteItems is cancelled: the shard is empty.
    Empty = 2,
    /// GetItem returns a purchase (user lookup).
    Lookup = 3,
}

struct Canned {
    mode: AtomicU8,
    calls: AtomicU64,
    get_sale: Bytes,
    get_purchase: Bytes,
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
        let sale_item = json!({
            "pk": av_s(&format!("SALE#{id}")), "sk": av_s("META"), "entity": av_s("SALE"), "saleId": av_s(id),
            "name": av_s(&sale.name), "priceCents": av_n(sale.price_cents), "currency": av_s(&sale.currency),
            "totalStock": av_n(sale.total_stock), "shards": av_n(i64::from(sale.shards)),
            "startsAt": av_n(sale.starts_at_ms), "endsAt": av_n(sale.ends_at_ms), "createdAt": av_n(sale.starts_at_ms),
        });
        let shard = |remaining: i64| {
            json!({
                "pk": av_s(&format!("SALE#{id}#STOCK#0")), "sk": av_s("STOCK"), "saleId": av_s(id), "shard": av_n(0),
                "remaining": av_n(remaining), "initial": av_n(sale.total_stock),
                "startsAt": av_n(sale.starts_at_ms), "endsAt": av_n(sale.ends_at_ms),
            })
        };
        let purchase = json!({
            "pk": av_s(&format!("SALE#{id}#USER#someone")), "sk": av_s("PURCHASE"), "saleId": av_s(id),
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
            batch: b(json!({ "Responses": { TABLE: [shard(41)] }, "UnprocessedKeys": {} })),
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

    fn answer(&self, req: &http::Request<SdkBody>) -> http::Response<SdkBody> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mode = self.mode.load(Ordering::Relaxed);
        let target = req.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
        let op = target.rsplit('.').next().unwrap_or_default();
        let (status, body) = match op {
            "GetItem" if mode == Mode::Lookup as u8 => (200, self.get_purchase.clone()),
            "GetItem" => (200, self.get_sale.clone()),
            "BatchGetItem" => (200, self.batch.clone()),
            "TransactWriteItems" if mode == Mode::Duplicate as u8 => (400, self.twi_duplicate.clone()),
            "TransactWriteItems" if mode == Mode::Empty as u8 => (400, self.twi_empty.clone()),
            "TransactWriteItems" => (200, self.twi_ok.clone()),
            _ => (400, Bytes::from_static(br#"{"__type":"com.amazon.coral.validate#ValidationException","Message":"not canned"}"#)),
        };
        http::Response::builder()
            .status(status)
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amzn-requestid", "BENCH0000000000000000000000000000000000000000000000")
            .body(SdkBody::from(body))
            .expect("static response")
    }
}

/// An endpoint resolver that skips the rules engine (a local copy of one trimming idea).
#[derive(Debug)]
struct FixedEndpoint(String);

impl ResolveEndpoint for FixedEndpoint {
    fn resolve_endpoint<'a>(&'a self, _params: &'a Params) -> EndpointFuture<'a> {
        EndpointFuture::ready(Ok(Endpoint::builder().url(self.0.clone()).build()))
    }
}

/// SDK client variants: the project's client, and copies with one piece of per-request work
/// removed, to price each piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Project,
    FixedEndpoint,
    NoRetries,
    NoTimeouts,
    NoStalledStream,
    AllTrimmed,
}

fn client(canned: &Arc<Canned>, variant: Variant) -> Result<Client> {
    let base = local::client(ENDPOINT)?;
    let c = canned.clone();
    let mut b = base.config().to_builder().http_client(infallible_client_fn(move |req| c.answer(&req)));
    let all = variant == Variant::AllTrimmed;
    if all || variant == Variant::FixedEndpoint {
        b = b.endpoint_resolver(FixedEndpoint(ENDPOINT.to_owned()));
    }
    if all || variant == Variant::NoRetries {
        b = b.retry_config(RetryConfig::disabled());
    }
    if all || variant == Variant::NoTimeouts {
        b = b.timeout_config(TimeoutConfig::disabled());
    }
    if all || variant == Variant::NoStalledStream {
        b = b.stalled_stream_protection(StalledStreamProtectionConfig::disabled());
    }
    Ok(Client::from_conf(b.build()))
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
    StoreTryPurchase,
    SdkTransactWrite(Variant),
    SdkGetItem(Variant),
    SdkBatchGet,
    OwnSuccessPieces,
    OwnDuplicatePieces,
    /// Dropping a purchase `Request` (the handlers own and drop theirs).
    DropRequest,
    /// `lambda_http::request::from_str` of an API Gateway v2 purchase event, then drop: what the
    /// runtime does per invocation before the handler runs.
    EventParse,
    /// The sold-out-hint handler plus one hand-written EMF line that also carries the request-log
    /// fields (a local copy of the idea of replacing the tracing line + EMF flush with one line).
    HintWithOneLine,
}

impl Scenario {
    fn name(self) -> String {
        match self {
            Scenario::PurchaseSuccess => "handler purchase, success (GetItem cached, 1 TransactWriteItems)".into(),
            Scenario::PurchaseDuplicate => "handler purchase, already_purchased (1 cancelled tx)".into(),
            Scenario::PurchaseSoldOut => "handler purchase, sold_out found by tx (1 cancelled tx)".into(),
            Scenario::PurchaseSoldOutHint => "handler purchase, sold_out from hint (no SDK call) = own code".into(),
            Scenario::PurchaseInvalid => "handler purchase, 400 invalid body (no SDK call) = own code".into(),
            Scenario::Status => "handler status GET /sales/{id} (1 BatchGetItem)".into(),
            Scenario::UserLookup => "handler user-lookup (1 GetItem)".into(),
            Scenario::StoreTryPurchase => "Store::try_purchase alone (items + 1 TransactWriteItems)".into(),
            Scenario::SdkTransactWrite(v) => format!("SDK only: TransactWriteItems, same items [{v:?}]"),
            Scenario::SdkGetItem(v) => format!("SDK only: GetItem [{v:?}]"),
            Scenario::SdkBatchGet => "SDK only: BatchGetItem, 1 key".into(),
            Scenario::OwnSuccessPieces => "own: ULID + PurchaseRecord + to_purchase + JSON render".into(),
            Scenario::OwnDuplicatePieces => "own: classify_cancellation + problem render".into(),
            Scenario::DropRequest => "drop of one lambda_http purchase Request (part of every handler)".into(),
            Scenario::HintWithOneLine => "handler sold_out from hint + ONE hand-written EMF+log line (idea)".into(),
            Scenario::EventParse => "runtime side: API Gateway v2 event JSON -> lambda_http Request (+ drop)".into(),
        }
    }

    fn mode(self) -> Mode {
        match self {
            Scenario::PurchaseDuplicate => Mode::Duplicate,
            Scenario::PurchaseSoldOut | Scenario::PurchaseSoldOutHint => Mode::Empty,
            Scenario::UserLookup | Scenario::SdkGetItem(_) => Mode::Lookup,
            _ => Mode::Success,
        }
    }

    /// The handler requests this scenario needs, built outside the timed region.
    fn requests(self, from: usize, n: usize) -> Result<Vec<Request>> {
        let build = |f: &dyn Fn(usize) -> Value| (from..from + n).map(|i| local::request(&f(i))).collect::<Result<Vec<_>>>();
        match self {
            Scenario::PurchaseSuccess
            | Scenario::PurchaseDuplicate
            | Scenario::PurchaseSoldOut
            | Scenario::PurchaseSoldOutHint
            | Scenario::DropRequest
            | Scenario::HintWithOneLine => build(&|i| local::purchase_event(SALE, &format!("user-{i}"))),
            Scenario::PurchaseInvalid => build(&|_| {
                let mut e = local::purchase_event(SALE, "x");
                e["body"] = json!("{\"userId\": 42}");
                e
            }),
            Scenario::Status => build(&|_| local::status_event(SALE)),
            Scenario::UserLookup => build(&|i| local::lookup_event(SALE, &format!("user-{i}"))),
            _ => Ok(Vec::new()),
        }
    }
}

struct Bench {
    /// Purchase events as the Runtime API delivers them (for `EventParse`).
    events: Vec<String>,
    devnull: std::sync::Mutex<std::fs::File>,
    canned: Arc<Canned>,
    sale: Sale,
    /// Hints off except the sale cache (so every purchase reaches the transaction).
    app: &'static App,
    /// Sold-out hint on and primed: purchases answer without DynamoDB.
    app_hint: &'static App,
    clients: Vec<(Variant, Client)>,
}

impl Bench {
    fn client(&self, v: Variant) -> &Client {
        &self.clients.iter().find(|(x, _)| *x == v).expect("variant built").1
    }

    async fn one(&self, s: Scenario, req: Option<Request>, i: usize) -> u16 {
        let req = || req.expect("scenario has requests");
        match s {
            Scenario::PurchaseSuccess | Scenario::PurchaseDuplicate | Scenario::PurchaseSoldOut | Scenario::PurchaseInvalid => {
                flash_sale::http::purchase(self.app, req()).await.status().as_u16()
            }
            Scenario::PurchaseSoldOutHint => flash_sale::http::purchase(self.app_hint, req()).await.status().as_u16(),
            Scenario::Status => flash_sale::http::status(self.app, req()).await.status().as_u16(),
            Scenario::UserLookup => flash_sale::http::user_lookup(self.app, req()).await.status().as_u16(),
            Scenario::StoreTryPurchase => {
                let user = UserId::parse(&format!("user-{i}")).expect("user id");
                let now = local::now_ms();
                let order = ulid::Ulid::new().to_string();
                let record = PurchaseRecord::new(&self.sale.id, &user, order.clone(), now, 0);
                let token = format!("{order}-0-0");
                match self.app.store.try_purchase(&self.sale, 0, &record, now, &token).await {
                    Ok(_) => 200,
                    Err(_) => 500,
                }
            }
            Scenario::SdkTransactWrite(v) => {
                let user = format!("user-{i}");
                match rawtx::purchase(self.client(v), TABLE, SALE, 0, &user, local::now_ms(), false).await {
                    Ok(_) => 200,
                    Err(_) => 500,
                }
            }
            Scenario::SdkGetItem(v) => {
                let out = self
                    .client(v)
                    .get_item()
                    .table_name(TABLE)
                    .key("pk", AttributeValue::S(format!("SALE#{SALE}#USER#user-{i}")))
                    .key("sk", AttributeValue::S("PURCHASE".into()))
                    .consistent_read(true)
                    .send()
                    .await;
                if out.is_ok() { 200 } else { 500 }
            }
            Scenario::SdkBatchGet => {
                let keys = KeysAndAttributes::builder()
                    .keys(
                        [("pk".to_owned(), AttributeValue::S(format!("SALE#{SALE}#STOCK#0"))), ("sk".to_owned(), AttributeValue::S("STOCK".into()))]
                            .into_iter()
                            .collect(),
                    )
                    .build()
                    .expect("keys");
                let out = self.client(Variant::Project).batch_get_item().request_items(TABLE, keys).send().await;
                if out.is_ok() { 200 } else { 500 }
            }
            Scenario::OwnSuccessPieces => {
                let user = UserId::parse(&format!("user-{i}")).expect("user id");
                let order = ulid::Ulid::new().to_string();
                let record = PurchaseRecord::new(&self.sale.id, &user, order, local::now_ms(), 0);
                let text = serde_json::to_string(&record.to_purchase()).unwrap_or_default();
                let mut resp = lambda_http::Response::new(lambda_http::Body::Text(text));
                *resp.status_mut() = lambda_http::http::StatusCode::CREATED;
                resp.headers_mut().insert("content-type", lambda_http::http::HeaderValue::from_static("application/json"));
                resp.headers_mut().insert("cache-control", lambda_http::http::HeaderValue::from_static("no-store"));
                std::hint::black_box(&resp);
                resp.status().as_u16()
            }
            Scenario::DropRequest => {
                drop(std::hint::black_box(req()));
                200
            }
            Scenario::EventParse => {
                let ev = &self.events[i % self.events.len()];
                let req = lambda_http::request::from_str(ev).map(std::hint::black_box);
                if req.is_ok() { 200 } else { 500 }
            }
            Scenario::HintWithOneLine => {
                let t0 = Instant::now();
                let status = flash_sale::http::purchase(self.app_hint, req()).await.status().as_u16();
                one_line(&self.devnull, status, t0.elapsed().as_secs_f64() * 1e3, i);
                status
            }
            Scenario::OwnDuplicatePieces => {
                let old = PurchaseRecord::new(&self.sale.id, &UserId::parse("someone").expect("user"), "01JZ0000000000000000000000".into(), 1, 0);
                let reasons = [CancelReason::None, CancelReason::ConditionFailed(Some(OldItem::Purchase(old.to_purchase())))];
                let verdict = classify_cancellation(&reasons, local::now_ms());
                let err = match verdict {
                    flash_sale::purchase::AttemptVerdict::AlreadyPurchased(p) => ApiError::AlreadyPurchased(Box::new(p)),
                    _ => ApiError::Internal,
                };
                let resp = flash_sale::http::problem::render(&err);
                std::hint::black_box(&resp);
                resp.status().as_u16()
            }
        }
    }
}

/// One EMF line per request that is also the request log line: CloudWatch extracts the metrics
/// from `_aws` and Logs Insights queries the other fields. Written with `write!`, ids escaped.
fn one_line(sink: &std::sync::Mutex<std::fs::File>, status: u16, latency_ms: f64, i: usize) {
    use std::fmt::Write as _;
    use std::io::Write as _;
    let ts = local::now_ms();
    let user = format!("user-{i}");
    let esc = |v: &str| serde_json::to_string(v).unwrap_or_else(|_| "\"\"".into());
    let mut line = String::with_capacity(640);
    let _ = write!(
        line,
        r#"{{"_aws":{{"Timestamp":{ts},"CloudWatchMetrics":[{{"Namespace":"FlashSale","Dimensions":[["outcome"]],"Metrics":[{{"Name":"Purchases","Unit":"Count"}},{{"Name":"PurchaseLatency","Unit":"Milliseconds"}},{{"Name":"PurchaseRetries","Unit":"Count"}}]}}]}},"outcome":"sold_out","Purchases":1,"PurchaseLatency":{latency_ms:.3},"PurchaseRetries":0,"level":"INFO","message":"request","requestId":{},"route":"purchase","saleId":{},"userId":{},"status":{status},"shard":-1,"retries":0,"transactions":0}}"#,
        esc("bench-request-id"),
        esc(SALE),
        esc(&user)
    );
    line.push('\n');
    let mut f = sink.lock().unwrap_or_else(|p| p.into_inner());
    let _ = f.write_all(line.as_bytes());
}

/// Logging and metrics as the Lambda binaries do them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Telemetry {
    /// No subscriber, no recorder (the baseline phase).
    Off,
    /// The JSON log line per request (to /dev/null); metrics recorded, flushed outside the timing.
    Log,
    /// The log line and the EMF flush after every request, as `flash_sale::lambda::run` does.
    LogEmf,
}

/// One measured batch: µs of process CPU per request, µs wall per request, SDK calls per request.
async fn batch(b: &Bench, s: Scenario, n: usize, tele: Telemetry, flush: Option<&'static metrics_flush::Flush>) -> Result<(f64, f64, f64)> {
    const CHUNK: usize = 500;
    b.canned.set(s.mode());
    let (mut cpu, mut wall, mut done) = (Duration::ZERO, Duration::ZERO, 0usize);
    let calls_before = b.canned.calls.load(Ordering::Relaxed);
    let per_request_flush = if tele == Telemetry::LogEmf { flush } else { None };
    while done < n {
        let k = CHUNK.min(n - done);
        let reqs = s.requests(done, k)?;
        let mut reqs = reqs.into_iter();
        let (t0, w0) = (stats::process_cpu(), Instant::now());
        for i in done..done + k {
            let status = b.one(s, reqs.next(), i).await;
            if status >= 500 {
                return Err(anyhow!("{}: unexpected status {status}", s.name()));
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

/// The EMF collector and JSON logs of the Lambda binaries, writing to /dev/null.
mod metrics_flush {
    use std::fs::File;
    use std::sync::Mutex;

    pub struct Flush {
        collector: &'static metrics_cloudwatch_embedded::Collector,
        sink: Mutex<File>,
    }

    impl Flush {
        /// Installs the process-wide subscriber and recorder configured like
        /// `flash_sale::telemetry::init` and `flash_sale::lambda::run`, writing to /dev/null.
        pub fn install() -> anyhow::Result<&'static Flush> {
            let filter = tracing_subscriber::EnvFilter::new("info");
            let sink = File::options().write(true).open("/dev/null")?;
            tracing_subscriber::fmt()
                .json()
                .with_env_filter(filter)
                .with_target(false)
                .with_current_span(false)
                .with_span_list(false)
                .flatten_event(true)
                .with_writer(Mutex::new(sink.try_clone()?))
                .try_init()
                .map_err(|e| anyhow::anyhow!("logging: {e}"))?;
            let collector = flash_sale::telemetry::metrics_builder().init().map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
            flash_sale::telemetry::describe_metrics();
            Ok(Box::leak(Box::new(Flush { collector, sink: Mutex::new(sink) })))
        }

        /// What `flash_sale::lambda::run` does after each invocation.
        pub fn flush(&self) {
            self.collector.set_property("requestId", "bench-request-id");
            let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
            let _ = self.collector.flush(&mut *sink);
        }
    }
}

/// Runs the scenarios interleaved (batch 1 of each, then batch 2 of each, ...) so that changes in
/// the machine's other load hit every scenario alike; prints median and min per scenario.
async fn measure_all(
    b: &Bench,
    list: &[(Scenario, Telemetry)],
    args: &Args,
    flush: Option<&'static metrics_flush::Flush>,
) -> Result<Vec<(Scenario, Telemetry, f64, f64)>> {
    for &(s, t) in list {
        batch(b, s, (args.iterations / 5).max(100), t, flush).await?; // warm-up, not counted
    }
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); list.len()];
    let mut wall: Vec<Vec<f64>> = vec![Vec::new(); list.len()];
    let mut calls = vec![0.0; list.len()];
    for _ in 0..args.batches {
        for (i, &(s, t)) in list.iter().enumerate() {
            let (c, w, n) = batch(b, s, args.iterations, t, flush).await?;
            cpu[i].push(c);
            wall[i].push(w);
            calls[i] = n;
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
            "  {:<84} {:>7.2} µs CPU/req (min {:.2}, max {:.2}) · wall {:.2} µs · SDK calls/req {:.2}",
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
    let now = local::now_ms();
    let sale = local::sale(SALE, 1_000_000, 1, now - 60_000, now + 7 * 86_400_000)?;
    let canned = Arc::new(Canned::new(&sale));
    let variants = [
        Variant::Project,
        Variant::FixedEndpoint,
        Variant::NoRetries,
        Variant::NoTimeouts,
        Variant::NoStalledStream,
        Variant::AllTrimmed,
    ];
    let clients = variants.iter().map(|&v| Ok((v, client(&canned, v)?))).collect::<Result<Vec<_>>>()?;
    let long = Duration::from_secs(7 * 86_400);
    let tuning = Tuning { sale_cache: long, sold_out_hint: Duration::ZERO, ..Tuning::default() };
    let store = Store::new(clients[0].1.clone(), TABLE);
    let app: &'static App = Box::leak(Box::new(App::new(store.clone(), Arc::new(SystemClock), AuthMode::Body, tuning.clone())));
    let app_hint: &'static App = Box::leak(Box::new(App::new(
        store,
        Arc::new(SystemClock),
        AuthMode::Body,
        Tuning { sold_out_hint: long, ..tuning },
    )));
    let devnull = std::sync::Mutex::new(std::fs::File::options().write(true).open("/dev/null")?);
    let events = (0..500).map(|i| local::purchase_event(SALE, &format!("user-{i}")).to_string()).collect();
    let bench = Bench { events, devnull, canned, sale, app, app_hint, clients };

    // Warm the sale caches (one GetItem each) and prime the sold-out hint (one cancelled tx).
    bench.canned.set(Mode::Success);
    let sale_id = SaleId::parse(SALE).map_err(|e| anyhow!("{e}"))?;
    app.sale(&sale_id).await.map_err(|e| anyhow!("warm sale cache: {e:?}"))?;
    bench.canned.set(Mode::Empty);
    let primed = app_hint.purchase(&sale_id, &UserId::parse("primer").map_err(|e| anyhow!("{e}"))?).await;
    if !matches!(primed.result, Err(ApiError::SoldOut)) || primed.transactions != 1 {
        return Err(anyhow!("priming the sold-out hint: {primed:?}"));
    }

    println!(
        "cpu: {} iterations x {} batches per scenario (after a warm-up batch), current-thread runtime, process CPU time; medians over batches",
        args.iterations, args.batches
    );
    let mut scenarios = vec![
        Scenario::PurchaseSuccess,
        Scenario::PurchaseDuplicate,
        Scenario::PurchaseSoldOut,
        Scenario::PurchaseSoldOutHint,
        Scenario::PurchaseInvalid,
        Scenario::Status,
        Scenario::UserLookup,
        Scenario::StoreTryPurchase,
        Scenario::SdkBatchGet,
        Scenario::OwnSuccessPieces,
        Scenario::OwnDuplicatePieces,
        Scenario::DropRequest,
        Scenario::HintWithOneLine,
        Scenario::EventParse,
    ];
    for v in variants {
        scenarios.push(Scenario::SdkTransactWrite(v));
    }
    scenarios.push(Scenario::SdkGetItem(Variant::Project));
    scenarios.push(Scenario::SdkGetItem(Variant::AllTrimmed));
    let wanted = |s: &Scenario| args.only.as_deref().is_none_or(|o| s.name().contains(o) || format!("{s:?}").contains(o));

    let list: Vec<(Scenario, Telemetry)> = scenarios.iter().copied().filter(wanted).map(|s| (s, Telemetry::Off)).collect();
    let results = measure_all(&bench, &list, &args, None).await?;
    let get = |s: Scenario| results.iter().find(|r| r.0 == s).map(|r| (r.2, r.3));
    if let (Some(total), Some(sdk), Some(hint), Some(drop_req)) = (
        get(Scenario::PurchaseSuccess),
        get(Scenario::SdkTransactWrite(Variant::Project)),
        get(Scenario::PurchaseSoldOutHint),
        get(Scenario::DropRequest),
    ) {
        println!("summary (median; min in brackets):");
        println!(
            "  purchase success {:.1} [{:.1}] µs; SDK-only TransactWriteItems {:.1} [{:.1}] µs; difference {:.1} [{:.1}] µs",
            total.0, total.1, sdk.0, sdk.1, total.0 - sdk.0, total.1 - sdk.1
        );
        println!(
            "  own code alone (sold-out-hint path, whole handler) {:.2} [{:.2}] µs, of which dropping the lambda_http Request {:.2} [{:.2}] µs",
            hint.0, hint.1, drop_req.0, drop_req.1
        );
        println!(
            "  goal purchase <= 30 µs: {} · goal own <= 2 µs: {}",
            if total.0 <= 30.0 { "met" } else { "not met" },
            if hint.0 <= 2.0 { "met" } else { "not met" }
        );
    }

    // The same handler paths with the Lambda binaries' JSON log line and EMF flush per request.
    if args.only.is_none() {
        println!("with telemetry (subscriber and recorder installed now; interleaved among themselves):");
        let flush = metrics_flush::Flush::install()?;
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
