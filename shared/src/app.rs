//! The use cases behind the API, with the per-container hints of the purchase path. Correctness
//! never depends on a hint: the transaction's conditions decide; hints only save DynamoDB calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::error::ApiError;
use crate::identity::AuthMode;
use crate::ids::{SaleId, UserId};
use crate::purchase::{AttemptVerdict, Purchase, classify_cancellation};
use crate::sale::{Sale, SaleStatus, Window};
use crate::config::Tuning;
use crate::store::{PurchaseRecord, Store, StoreError, TxOutcome};
use crate::time_fmt::rfc3339_ms;

/// Everything a handler needs; built once per container.
pub struct App {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub auth: AuthMode,
    pub tuning: Tuning,
    hints: Mutex<HashMap<SaleId, SaleHint>>,
}

/// What a container remembers about a sale between requests.
struct SaleHint {
    sale: Arc<Sale>,
    fetched: Instant,
    /// Shards seen empty (bit n = shard n) and when the first of them was seen.
    empty: u64,
    empty_since: Option<Instant>,
}

/// The purchase result with what it took, for the request log and metrics.
#[derive(Debug)]
pub struct PurchaseReport {
    pub result: Result<Purchase, ApiError>,
    /// The shard that sold the item, or the last shard tried.
    pub shard: Option<u32>,
    /// Conflict retries across all shards.
    pub retries: u32,
    /// `TransactWriteItems` calls made.
    pub transactions: u32,
    /// True when the sold-out hint answered without DynamoDB.
    pub from_hint: bool,
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Throttled(_) | StoreError::Unavailable(_) => ApiError::unavailable(),
            StoreError::NoSuchSale(_) => ApiError::SaleNotFound,
            StoreError::Corrupt(_) | StoreError::SaleExists(_) | StoreError::Rule(_) => ApiError::Internal,
        }
    }
}

fn logged(err: StoreError) -> ApiError {
    tracing::warn!(error = %err, "store call failed");
    err.into()
}

impl App {
    pub fn new(store: Store, clock: Arc<dyn Clock>, auth: AuthMode, tuning: Tuning) -> Self {
        Self { store, clock, auth, tuning, hints: Mutex::new(HashMap::new()) }
    }

    fn with_hint<T>(&self, id: &SaleId, f: impl FnOnce(Option<&mut SaleHint>) -> T) -> T {
        let mut hints = self.hints.lock().unwrap_or_else(|p| p.into_inner());
        f(hints.get_mut(id))
    }

    /// The sale's configuration, from this container's cache while it is fresh.
    pub async fn sale(&self, id: &SaleId) -> Result<Arc<Sale>, ApiError> {
        let ttl = self.tuning.sale_cache;
        let cached = self.with_hint(id, |h| h.filter(|h| h.fetched.elapsed() < ttl).map(|h| h.sale.clone()));
        if let Some(sale) = cached {
            return Ok(sale);
        }
        let sale = Arc::new(self.store.get_sale(id).await.map_err(logged)?.ok_or(ApiError::SaleNotFound)?);
        let mut hints = self.hints.lock().unwrap_or_else(|p| p.into_inner());
        let hint = hints.entry(id.clone()).or_insert_with(|| SaleHint {
            sale: sale.clone(),
            fetched: Instant::now(),
            empty: 0,
            empty_since: None,
        });
        hint.sale = sale.clone();
        hint.fetched = Instant::now();
        Ok(sale)
    }

    /// Shards believed to have stock, starting at a random one so buyers spread over partitions.
    fn shard_order(&self, sale: &Sale) -> Vec<u32> {
        let hint_ttl = self.tuning.sold_out_hint;
        let empty = self.with_hint(&sale.id, |h| match h {
            Some(h) if h.empty_since.is_some_and(|t| t.elapsed() < hint_ttl) => h.empty,
            Some(h) => {
                h.empty = 0;
                h.empty_since = None;
                0
            }
            None => 0,
        });
        let start = fastrand::u32(0..sale.shards);
        (0..sale.shards).map(|i| (start + i) % sale.shards).filter(|n| empty & (1u64 << n) == 0).collect()
    }

    fn mark_empty(&self, sale: &SaleId, shard: u32) {
        self.with_hint(sale, |h| {
            if let Some(h) = h {
                h.empty |= 1u64 << shard;
                h.empty_since.get_or_insert_with(Instant::now);
            }
        });
    }

    async fn backoff(&self, attempt: u32) {
        let cap = self.tuning.backoff_cap.min(self.tuning.backoff_base.saturating_mul(1 << attempt.min(16)));
        let ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..=ms))).await;
    }

    /// Buys one item of `sale_id` for `user`: exactly one `TransactWriteItems` per shard tried
    /// (plus bounded retries on conflicts), never more items than stock, never two per user.
    pub async fn purchase(&self, sale_id: &SaleId, user: &UserId) -> PurchaseReport {
        let mut report = PurchaseReport { result: Err(ApiError::Internal), shard: None, retries: 0, transactions: 0, from_hint: false };
        report.result = self.purchase_inner(sale_id, user, &mut report).await;
        report
    }

    async fn purchase_inner(&self, sale_id: &SaleId, user: &UserId, report: &mut PurchaseReport) -> Result<Purchase, ApiError> {
        let now = self.clock.now_ms();
        let sale = self.sale(sale_id).await?;
        match sale.window_at(now) {
            Window::NotStarted => return Err(ApiError::SaleNotStarted { starts_at: rfc3339_ms(sale.starts_at_ms) }),
            Window::Ended => return Err(ApiError::SaleEnded),
            Window::Open => {}
        }
        let shards = self.shard_order(&sale);
        if shards.is_empty() {
            report.from_hint = true;
            return Err(ApiError::SoldOut);
        }
        let order_id = ulid::Ulid::new().to_string();
        let record = PurchaseRecord::new(sale_id, user, order_id.clone(), now, 0);
        for shard in shards {
            report.shard = Some(shard);
            let record = PurchaseRecord { shard, ..record.clone() };
            let mut attempt = 0;
            loop {
                // Unique per transaction: an SDK retry of this exact call replays it safely, while a
                // new attempt (another shard, a retry after a conflict) is a new transaction.
                let token = format!("{order_id}-{shard}-{attempt}");
                report.transactions += 1;
                let outcome = self.store.try_purchase(&sale, shard, &record, now, &token).await.map_err(logged)?;
                let reasons = match outcome {
                    TxOutcome::Committed => return Ok(record.to_purchase()),
                    TxOutcome::Cancelled(reasons) => reasons,
                };
                match classify_cancellation(&reasons, now) {
                    // Our own earlier attempt committed (its response was lost): that is a success.
                    AttemptVerdict::AlreadyPurchased(p) if p.order_id == order_id => return Ok(p),
                    AttemptVerdict::AlreadyPurchased(p) => return Err(ApiError::AlreadyPurchased(Box::new(p))),
                    AttemptVerdict::NotStarted => {
                        return Err(ApiError::SaleNotStarted { starts_at: rfc3339_ms(sale.starts_at_ms) });
                    }
                    AttemptVerdict::Ended => return Err(ApiError::SaleEnded),
                    AttemptVerdict::ShardMissing => return Err(ApiError::SaleNotFound),
                    AttemptVerdict::ShardEmpty => {
                        self.mark_empty(sale_id, shard);
                        break;
                    }
                    AttemptVerdict::Conflict if attempt < self.tuning.conflict_retries => {
                        self.backoff(attempt).await;
                        attempt += 1;
                        report.retries += 1;
                    }
                    AttemptVerdict::Conflict | AttemptVerdict::Throttled => return Err(ApiError::unavailable()),
                    AttemptVerdict::Unknown(why) => {
                        tracing::warn!(reason = %why, "purchase transaction cancelled for an unknown reason");
                        return Err(ApiError::unavailable());
                    }
                }
            }
        }
        Err(ApiError::SoldOut)
    }

    /// The public status of one sale: cached configuration plus one `BatchGetItem` of its shards.
    pub async fn status(&self, sale_id: &SaleId) -> Result<SaleStatus, ApiError> {
        let sale = self.sale(sale_id).await?;
        let stock = self.store.shard_stock(&[&sale]).await.map_err(logged)?;
        Ok(SaleStatus::new(&sale, total(&stock[0]), self.clock.now_ms()))
    }

    /// Every sale with its stock: one index query and one batch read of all shards.
    pub async fn list(&self) -> Result<Vec<SaleStatus>, ApiError> {
        let sales = self.store.list_sales().await.map_err(logged)?;
        let refs: Vec<&Sale> = sales.iter().collect();
        let stock = self.store.shard_stock(&refs).await.map_err(logged)?;
        let now = self.clock.now_ms();
        Ok(sales.iter().zip(&stock).map(|(sale, shards)| SaleStatus::new(sale, total(shards), now)).collect())
    }

    /// A user's purchase in a sale.
    pub async fn lookup(&self, sale_id: &SaleId, user: &UserId) -> Result<Purchase, ApiError> {
        let record = self.store.get_purchase(sale_id, user).await.map_err(logged)?;
        record.map(|r| r.to_purchase()).ok_or(ApiError::PurchaseNotFound)
    }

    /// Whether the table answers.
    pub async fn healthy(&self) -> Result<(), ApiError> {
        self.store.ping().await.map_err(logged)
    }
}

fn total(shards: &[i64]) -> i64 {
    shards.iter().map(|r| (*r).max(0)).sum()
}

impl App {
    /// Cold-start wiring for a Lambda binary: logging, configuration from the environment, the
    /// DynamoDB client. Fails with a message naming the bad variable.
    pub async fn from_env() -> Result<&'static App, String> {
        crate::telemetry::init();
        let config = crate::config::Config::from_env().map_err(|e| e.to_string())?;
        let client = crate::aws::client_for(config.dynamodb_endpoint.as_deref()).map_err(|e| format!("configuration: {e}"))?;
        let store = Store::new(client, config.table_name);
        let app = App::new(store, Arc::new(crate::clock::SystemClock), config.auth_mode, config.tuning);
        // One App per container for its whole life.
        Ok(Box::leak(Box::new(app)))
    }
}
