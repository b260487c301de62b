//! One structured log line per request, and CloudWatch metrics in embedded metric format (EMF):
//! namespace `FlashSale`, per purchase `Purchases` (Count), `PurchaseLatency` (Milliseconds) and
//! `PurchaseRetries` (Count), all with the one dimension `outcome`, so each purchase is one EMF
//! line (one more when it sells an item: the order's status below, at most one per item of
//! stock); per sale status read, `RemainingStock` (Count, dimension `saleId`). The waiting room
//! adds `QueueJoins` (dimension `outcome`: new, existing, closed), `AdmissionRefusals` (dimension
//! `reason`: the problem code), and per admission step `Admissions`, `QueueLength` and
//! `AdmittedNotBought` (dimension `saleId`). Orders add `OrderChanges` (dimension `status`: the
//! status an order entered) and `StockReturned` (dimension `reason`: cancelled, expired). Every
//! failure that needs an operator counts in `Errors` (dimension `kind`, [`ERROR_KINDS`]). Names
//! and dimension values are what `infra/template.yaml`'s dashboard reads.

use std::time::Instant;

use metrics::Unit;

use crate::order::OrderStatus;

/// JSON logs on stdout (CloudWatch Logs), level from `RUST_LOG` (default `info`).
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_target(false)
        .with_current_span(false)
        .with_span_list(false)
        .flatten_event(true)
        .try_init();
}

pub const NAMESPACE: &str = "FlashSale";

/// The EMF collector's configuration. `init()` on it installs the process-wide recorder; the
/// caller flushes the collected metrics as EMF lines (after each invocation in Lambda).
pub fn metrics_builder() -> metrics_cloudwatch_embedded::Builder {
    metrics_cloudwatch_embedded::Builder::new().cloudwatch_namespace(NAMESPACE)
}

/// Declares the metrics' units to the installed recorder.
pub fn describe_metrics() {
    metrics::describe_counter!("Purchases", Unit::Count, "purchase attempts by outcome");
    metrics::describe_histogram!("PurchaseLatency", Unit::Milliseconds, "purchase handling time by outcome");
    metrics::describe_counter!("PurchaseRetries", Unit::Count, "TransactionConflict retries by outcome");
    metrics::describe_gauge!("RemainingStock", Unit::Count, "stock left when a status request read it");
    metrics::describe_counter!("QueueJoins", Unit::Count, "joins of a waiting-room line by outcome");
    metrics::describe_counter!("AdmissionRefusals", Unit::Count, "purchases refused by the waiting room, by reason");
    metrics::describe_counter!("Admissions", Unit::Count, "places admitted from the line");
    metrics::describe_gauge!("QueueLength", Unit::Count, "places issued and not yet admitted");
    metrics::describe_gauge!(
        "AdmittedNotBought",
        Unit::Count,
        "items set aside for admitted places (maxPerCustomer each) and not (yet) bought"
    );
    metrics::describe_counter!("OrderChanges", Unit::Count, "orders entering a status, by status");
    metrics::describe_counter!("StockReturned", Unit::Count, "items given back to stock, by reason");
    metrics::describe_counter!("Errors", Unit::Count, "failures an operator must look at, by kind");
}

/// Every value of the `kind` dimension of `Errors`.
pub const ERROR_KINDS: &[&str] =
    &["store", "stored_data", "draw", "hold_release", "event_record", "event_delivery", "admission_key"];

/// Records a failure an operator must look at (also logged at error level by the caller, with
/// the key it concerns). `kind` is one of [`ERROR_KINDS`].
pub fn record_error(kind: &'static str) {
    debug_assert!(ERROR_KINDS.contains(&kind), "unknown error kind {kind}");
    metrics::counter!("Errors", "kind" => kind).increment(1);
}

/// Every value of the `status` dimension of `OrderChanges`.
pub const ORDER_STATUSES: &[&str] = &["reserved", "confirmed", "cancelled", "expired"];

/// Every value of the `reason` dimension of `StockReturned`.
pub const STOCK_RETURN_REASONS: &[&str] = &["cancelled", "expired"];

/// Records an order entering `status`; `returned`: its item went back to stock.
pub fn record_order_change(status: OrderStatus, returned: bool) {
    metrics::counter!("OrderChanges", "status" => status.as_str()).increment(1);
    if returned {
        metrics::counter!("StockReturned", "reason" => status.as_str()).increment(1);
    }
}

/// Every value of the `outcome` dimension of `QueueJoins`.
pub const JOIN_OUTCOMES: &[&str] = &["new", "existing", "closed"];

/// Every value of the `reason` dimension of `AdmissionRefusals`.
pub const ADMISSION_REFUSALS: &[&str] = &["admission_required", "admission_invalid", "not_yet_admitted"];

/// Records one join of a line.
pub fn record_join(outcome: &'static str) {
    metrics::counter!("QueueJoins", "outcome" => outcome).increment(1);
}

/// Records a purchase the waiting room refused.
pub fn record_admission_refusal(reason: &'static str) {
    metrics::counter!("AdmissionRefusals", "reason" => reason).increment(1);
}

/// Records one step of a room's admitted range.
pub fn record_admission_step(sale_id: &str, admitted: i64, length: i64, admitted_not_bought: i64) {
    metrics::counter!("Admissions", "saleId" => sale_id.to_owned()).increment(u64::try_from(admitted).unwrap_or(0));
    metrics::gauge!("QueueLength", "saleId" => sale_id.to_owned()).set(length as f64);
    metrics::gauge!("AdmittedNotBought", "saleId" => sale_id.to_owned()).set(admitted_not_bought as f64);
}

/// Every value of the `outcome` dimension of the purchase metrics (the dashboard charts these).
pub const PURCHASE_OUTCOMES: &[&str] =
    &["succeeded", "sold_out", "already_purchased", "not_active", "rejected", "error"];

/// Records one purchase attempt.
pub fn record_purchase(outcome: &'static str, latency_ms: f64, retries: u32) {
    metrics::counter!("Purchases", "outcome" => outcome).increment(1);
    metrics::histogram!("PurchaseLatency", "outcome" => outcome).record(latency_ms);
    metrics::counter!("PurchaseRetries", "outcome" => outcome).increment(u64::from(retries));
}

/// Records a sale's remaining stock as read by a status request (`RemainingStock`, dimension
/// `saleId`; at most one request per second per sale reaches the function behind the CDN).
pub fn record_stock(sale_id: &str, remaining: i64) {
    metrics::gauge!("RemainingStock", "saleId" => sale_id.to_owned()).set(remaining as f64);
}

/// Fields of the request's log line, filled in as the handler learns them.
#[derive(Debug)]
pub struct RequestLog {
    started: Instant,
    pub route: &'static str,
    pub request_id: String,
    pub sale_id: Option<String>,
    pub user_id: Option<String>,
    pub shard: Option<u32>,
    pub retries: u32,
    pub transactions: u32,
}

impl RequestLog {
    pub fn start(route: &'static str, request_id: &str) -> Self {
        Self {
            started: Instant::now(),
            route,
            request_id: request_id.to_owned(),
            sale_id: None,
            user_id: None,
            shard: None,
            retries: 0,
            transactions: 0,
        }
    }

    pub fn latency_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1_000.0
    }

    /// Writes the line. `outcome` is a dashboard outcome or an error `code`.
    pub fn finish(&self, status: u16, outcome: &str) {
        tracing::info!(
            requestId = %self.request_id,
            route = self.route,
            saleId = self.sale_id.as_deref().unwrap_or(""),
            userId = self.user_id.as_deref().unwrap_or(""),
            status,
            outcome,
            latencyMs = self.latency_ms(),
            shard = self.shard.map(i64::from).unwrap_or(-1),
            retries = self.retries,
            transactions = self.transactions,
            "request"
        );
    }
}
