//! The single DynamoDB table (key formats in [`crate::keys`]).
//!
//! Stock shards have partition keys of their own so that N shards spread the purchase writes over
//! N partitions. Sale items alone carry `entity = "SALE"`, the key of the sparse `sales` index that
//! lists sales without scanning purchases; purchases never touch an index.

mod admin;
mod epoch;
pub use epoch::EPOCH_LEASE;
mod items;
mod orders;
mod purchase_tx;
mod room;

use std::collections::HashMap;
use std::error::Error as StdError;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};

pub use admin::Reset;
pub use items::{CustomerItem, KeyItem, PurchaseRecord, Take};
pub use orders::StuckHold;
pub(crate) use orders::{Change, Hold, Malformed};
#[cfg(feature = "test-util")]
pub use purchase_tx::Attempt;
#[cfg(not(feature = "test-util"))]
pub(crate) use purchase_tx::Attempt;
pub(crate) use room::{DrawLease, Marker};
pub use room::{DrawRecord, Joined, RoomEntry};

use crate::error::AppError;
use crate::ids::{SaleId, UserId};
use crate::sale::{Sale, SaleRuleError};
use items::{SaleItem, ShardItem};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB is throttling requests ({0})")]
    Throttled(String),
    /// A transient failure: a timeout, a network failure, a 5xx from DynamoDB. A retry may succeed.
    #[error("DynamoDB call failed: {0}")]
    Unavailable(String),
    /// DynamoDB refused the call for a reason a retry does not change (access denied, a request
    /// the table does not accept, a missing table, a cancellation reason the code does not know):
    /// a mistake to fix, not load.
    #[error("DynamoDB refused {op}: {code}: {message}")]
    Rejected { op: String, code: String, message: String },
    #[error("a stored item is malformed: {0}")]
    Corrupt(String),
    #[error("sale `{0}` already exists")]
    SaleExists(String),
    #[error("sale `{0}` does not exist")]
    NoSuchSale(String),
    #[error(transparent)]
    Rule(#[from] SaleRuleError),
}

const THROTTLE_CODES: &[&str] =
    &["ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded", "Throttling"];

/// Transaction cancellation reasons that mean throttling.
pub(crate) const THROTTLE_CANCEL_CODES: &[&str] =
    &["ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"];

/// A transaction cancelled with `codes` (its `CancellationReasons`) that the caller could not
/// read as an outcome of its own: throttling and conflicts are transient, any other reason is a
/// cancellation this code does not know, which a retry would meet again.
pub(crate) fn unexplained_cancellation(what: &str, codes: &[&str]) -> StoreError {
    if codes.iter().any(|c| THROTTLE_CANCEL_CODES.contains(c)) {
        StoreError::Throttled(format!("{what} cancelled: {codes:?}"))
    } else if codes.contains(&"TransactionConflict") {
        StoreError::Unavailable(format!("{what} cancelled: {codes:?}"))
    } else {
        StoreError::Rejected {
            op: "TransactWriteItems".into(),
            code: format!("{codes:?}"),
            message: format!("{what} cancelled for a reason the code does not know"),
        }
    }
}

/// Service errors that say DynamoDB could not answer now, not that the request is wrong: a retry
/// may succeed (with the HTTP status 5xx, see [`StoreError::from`]).
const TRANSIENT_CODES: &[&str] = &[
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    // Another transaction (or the same token, still running) holds an item: retry.
    "TransactionConflictException",
    "TransactionInProgressException",
];

/// `TransactWriteItems` from `aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError`.
fn operation_name<E>() -> String {
    let name = std::any::type_name::<E>();
    let last = name.rsplit("::").next().unwrap_or(name);
    last.strip_suffix("Error").unwrap_or(last).to_owned()
}

/// Whether a conditional write took effect: `false` when its condition failed, an error for any
/// other failure.
pub(crate) fn applied<T, E>(sent: Result<T, SdkError<E, HttpResponse>>) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    match sent {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
        Err(e) => Err(e.into()),
    }
}

impl<E> From<SdkError<E, HttpResponse>> for StoreError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    /// Throttling is [`StoreError::Throttled`]; timeouts, network failures, 5xx and the
    /// transient codes are [`StoreError::Unavailable`]; every other service error (and a request
    /// the SDK could not build) is [`StoreError::Rejected`].
    fn from(err: SdkError<E, HttpResponse>) -> Self {
        let code = err.code().unwrap_or_default().to_owned();
        let rejected =
            |code: String, message: String| StoreError::Rejected { op: operation_name::<E>(), code, message };
        match &err {
            SdkError::ServiceError(service) => {
                let server_side = service.raw().status().is_server_error();
                if THROTTLE_CODES.contains(&code.as_str()) {
                    StoreError::Throttled(code)
                } else if server_side || TRANSIENT_CODES.contains(&code.as_str()) {
                    StoreError::Unavailable(DisplayErrorContext(&err).to_string())
                } else {
                    let message = err.message().unwrap_or_default().to_owned();
                    rejected(if code.is_empty() { "(no code)".into() } else { code }, message)
                }
            }
            SdkError::ConstructionFailure(_) => {
                rejected("ConstructionFailure".into(), DisplayErrorContext(&err).to_string())
            }
            // Timeouts, dispatch (network) failures, unreadable responses: the call may not even
            // have arrived; a retry will tell.
            _ => StoreError::Unavailable(DisplayErrorContext(&err).to_string()),
        }
    }
}

impl From<serde_dynamo::Error> for StoreError {
    fn from(err: serde_dynamo::Error) -> Self {
        StoreError::Corrupt(err.to_string())
    }
}

/// Logs a store failure and says what it means for the caller: a transient failure is busy (a
/// retry is safe and may succeed), anything else an internal error, logged at error level and
/// counted in `Errors` (the alarm).
pub(crate) fn logged(err: StoreError) -> AppError {
    match err {
        StoreError::Throttled(_) | StoreError::Unavailable(_) => {
            tracing::warn!(error = %err, "store call failed");
            AppError::Busy
        }
        StoreError::NoSuchSale(_) => AppError::SaleNotFound,
        StoreError::Rejected { ref op, ref code, .. } => {
            tracing::error!(operation = %op, code = %code, error = %err, "DynamoDB refused a call: not retryable");
            crate::telemetry::record_error("store");
            AppError::Internal
        }
        StoreError::Corrupt(_) | StoreError::SaleExists(_) | StoreError::Rule(_) => {
            tracing::error!(error = %err, "stored data is not what the code expects");
            crate::telemetry::record_error("stored_data");
            AppError::Internal
        }
    }
}

impl StoreError {
    /// True when a retry may succeed: throttling and transient failures.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Throttled(_) | StoreError::Unavailable(_))
    }
}

pub(crate) fn sale_pk(id: &SaleId) -> String {
    crate::keys::sale_pk(id.as_str())
}

pub(crate) fn shard_pk(id: &SaleId, shard: u32) -> String {
    crate::keys::shard_pk(id.as_str(), shard)
}

pub(crate) fn purchase_pk(id: &SaleId, user: &UserId) -> String {
    crate::keys::purchase_pk(id.as_str(), user.as_str())
}

pub(crate) use crate::keys::{PURCHASE_SK, SALE_SK, SHARD_SK};

pub(crate) fn key(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_owned(), AttributeValue::S(pk)), ("sk".to_owned(), AttributeValue::S(sk.to_owned()))])
}

/// Handle on the table. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    client: Client,
    table: String,
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The sale's configuration (eventually consistent read; it never changes after creation).
    pub async fn get_sale(&self, id: &SaleId) -> Result<Option<Sale>, StoreError> {
        let out =
            self.client.get_item().table_name(&self.table).set_key(Some(key(sale_pk(id), SALE_SK))).send().await?;
        let read = |i| SaleItem::from_item(i)?.into_sale();
        out.item.map(read).transpose().map_err(|e| StoreError::Corrupt(format!("{}: {e}", sale_pk(id))))
    }

    /// The remaining stock of every shard of each sale (indexed like `sales`, then by shard),
    /// in as few `BatchGetItem` calls as the keys need: one for any single sale. A missing shard
    /// item counts as empty.
    pub async fn shard_stock(&self, sales: &[&Sale]) -> Result<Vec<Vec<i64>>, StoreError> {
        self.read_shard_stock(sales, false).await
    }

    /// [`Store::shard_stock`] of one sale with strongly consistent reads: the stock as of now.
    pub(crate) async fn shard_stock_now(&self, sale: &Sale) -> Result<Vec<i64>, StoreError> {
        Ok(self.read_shard_stock(&[sale], true).await?.remove(0))
    }

    /// Every shard of `sale` as of now (strongly consistent): whether all are empty, and the
    /// sale's buyers from the shards' rosters when every shard keeps one (else `None`).
    pub(crate) async fn shard_roster_now(
        &self,
        sale: &Sale,
    ) -> Result<(bool, Option<std::collections::HashSet<String>>), StoreError> {
        let keys = (0..sale.shards).map(|n| key(shard_pk(&sale.id, n), SHARD_SK)).collect();
        let items = self.batch_get(keys, true).await?;
        let mut owners = std::collections::HashSet::new();
        let mut all_rosters = items.len() == sale.shards as usize;
        let mut empty = true;
        for item in items {
            let buyers = match item.get("buyers") {
                Some(AttributeValue::Ss(set)) => set.clone(),
                _ => Vec::new(),
            };
            let pk = item.get("pk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            let shard = ShardItem::from_item(item).map_err(|e| StoreError::Corrupt(format!("{pk}: {e}")))?;
            empty &= shard.remaining <= 0;
            all_rosters &= shard.roster;
            owners.extend(buyers);
        }
        Ok((empty, all_rosters.then_some(owners)))
    }

    async fn read_shard_stock(&self, sales: &[&Sale], consistent: bool) -> Result<Vec<Vec<i64>>, StoreError> {
        let keys = sales.iter().flat_map(|s| (0..s.shards).map(|n| key(shard_pk(&s.id, n), SHARD_SK))).collect();
        let mut remaining: Vec<Vec<i64>> = sales.iter().map(|s| vec![0; s.shards as usize]).collect();
        let position: HashMap<&str, usize> = sales.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
        for item in self.batch_get(keys, consistent).await? {
            let pk = item.get("pk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            let shard = ShardItem::from_item(item).map_err(|e| StoreError::Corrupt(format!("{pk}: {e}")))?;
            let slot = position.get(shard.sale_id.as_str()).and_then(|&i| remaining[i].get_mut(shard.shard as usize));
            if let Some(slot) = slot {
                *slot = shard.remaining;
            }
        }
        Ok(remaining)
    }

    /// Reads keys with `BatchGetItem`, following `UnprocessedKeys` a bounded number of times.
    pub(crate) async fn batch_get(
        &self,
        mut keys: Vec<HashMap<String, AttributeValue>>,
        consistent: bool,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut found = Vec::new();
        while !keys.is_empty() {
            let chunk: Vec<_> = keys.drain(..keys.len().min(100)).collect();
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk))
                    .consistent_read(consistent)
                    .build()
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?,
            );
            let mut round = 0u32;
            while let Some(request) = pending.take() {
                if round == 5 {
                    return Err(StoreError::Throttled("BatchGetItem left keys unprocessed".into()));
                }
                if round > 0 {
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(5..=(10u64 << round)))).await;
                }
                round += 1;
                let out = self.client.batch_get_item().request_items(&self.table, request).send().await?;
                if let Some(mut responses) = out.responses {
                    found.extend(responses.remove(&self.table).unwrap_or_default());
                }
                pending = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)).filter(|k| !k.keys.is_empty());
            }
        }
        Ok(found)
    }

    /// A user's purchase in a sale (strongly consistent: a buyer must see a purchase just made).
    pub async fn get_purchase(&self, sale: &SaleId, user: &UserId) -> Result<Option<PurchaseRecord>, StoreError> {
        self.get_record(&purchase_pk(sale, user)).await
    }

    /// What `Idempotency-Key` `k` was used for by `user` in a sale with `maxPerCustomer` > 1.
    pub(crate) async fn key_use(&self, sale: &SaleId, user: &UserId, k: &str) -> Result<Option<KeyItem>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(purchase_pk(sale, user), &crate::keys::key_use_sk(k))))
            .consistent_read(true)
            .send()
            .await?;
        Ok(out.item.as_ref().and_then(KeyItem::from_item))
    }

    /// A customer's item in a sale with `maxPerCustomer` > 1 (strongly consistent).
    pub async fn customer(&self, sale: &SaleId, user: &UserId) -> Result<Option<CustomerItem>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(purchase_pk(sale, user), crate::keys::CUSTOMER_SK)))
            .consistent_read(true)
            .send()
            .await?;
        Ok(out.item.as_ref().map(CustomerItem::from_item))
    }

    /// The records of a customer's live orders (`c.orders`, a sale with `maxPerCustomer` > 1),
    /// oldest first. An id whose record is gone is left out.
    pub(crate) async fn live_orders(
        &self,
        sale: &SaleId,
        user: &UserId,
        c: &CustomerItem,
    ) -> Result<Vec<PurchaseRecord>, StoreError> {
        let mut found = Vec::with_capacity(c.orders.len());
        for order in &c.orders {
            if let Some(r) = self.order(sale, user, order).await? {
                found.push(r);
            }
        }
        found.sort_by(|a, b| (a.purchased_at, &a.order_id).cmp(&(b.purchased_at, &b.order_id)));
        Ok(found)
    }

    /// One order's record in a sale with `maxPerCustomer` > 1 (strongly consistent).
    pub(crate) async fn order(
        &self,
        sale: &SaleId,
        user: &UserId,
        order_id: &str,
    ) -> Result<Option<PurchaseRecord>, StoreError> {
        self.get_record(&crate::keys::order_pk(sale.as_str(), user.as_str(), order_id)).await
    }

    /// The customer's latest order in a sale with `maxPerCustomer` > 1: the latest live one
    /// (the latest reserved one with `reserved_first`), else the last one bought.
    pub(crate) async fn latest_order(
        &self,
        sale: &SaleId,
        user: &UserId,
        reserved_first: bool,
    ) -> Result<Option<PurchaseRecord>, StoreError> {
        let Some(c) = self.customer(sale, user).await? else { return Ok(None) };
        let live = self.live_orders(sale, user, &c).await?;
        let reserved = live.iter().rev().find(|r| r.status == crate::order::OrderStatus::Reserved).cloned();
        if reserved_first && reserved.is_some() {
            return Ok(reserved);
        }
        self.latest_of(sale, user, &c, live).await
    }

    /// The latest of a customer's live orders (`live`, oldest first, as [`Store::live_orders`]
    /// reads them), else the last one they bought.
    pub(crate) async fn latest_of(
        &self,
        sale: &SaleId,
        user: &UserId,
        c: &CustomerItem,
        mut live: Vec<PurchaseRecord>,
    ) -> Result<Option<PurchaseRecord>, StoreError> {
        if let Some(r) = live.pop() {
            return Ok(Some(r));
        }
        match &c.last_order {
            Some(o) => self.order(sale, user, o).await,
            None => Ok(None),
        }
    }

    /// One cheap read (an absent key) that proves the table answers.
    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(crate::keys::HEALTH_PK.into(), crate::keys::HEALTH_PK)))
            .projection_expression("pk")
            .send()
            .await?;
        Ok(())
    }
}
