//! The single DynamoDB table (key formats in [`crate::keys`]).
//!
//! Stock shards have partition keys of their own so that N shards spread the purchase writes over
//! N partitions. Sale items alone carry `entity = "SALE"`, the key of the sparse `sales` index that
//! lists sales without scanning purchases; purchases never touch an index.

mod admin;
mod items;
mod orders;
mod purchase_tx;
mod room;

use std::collections::HashMap;
use std::error::Error as StdError;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};

pub use admin::Reset;
pub use items::PurchaseRecord;
pub(crate) use orders::{Change, Hold};
#[cfg(feature = "test-util")]
pub use purchase_tx::Attempt;
#[cfg(not(feature = "test-util"))]
pub(crate) use purchase_tx::Attempt;
pub use room::{Joined, RoomEntry};

use crate::error::AppError;
use crate::ids::{SaleId, UserId};
use crate::sale::{Sale, SaleRuleError};
use items::{SaleItem, ShardItem};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB is throttling requests ({0})")]
    Throttled(String),
    #[error("DynamoDB call failed: {0}")]
    Unavailable(String),
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

impl<E, R> From<SdkError<E, R>> for StoreError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    fn from(err: SdkError<E, R>) -> Self {
        let code = err.code().unwrap_or_default().to_owned();
        if THROTTLE_CODES.contains(&code.as_str()) {
            StoreError::Throttled(code)
        } else {
            StoreError::Unavailable(DisplayErrorContext(&err).to_string())
        }
    }
}

impl From<serde_dynamo::Error> for StoreError {
    fn from(err: serde_dynamo::Error) -> Self {
        StoreError::Corrupt(err.to_string())
    }
}

/// Logs a store failure and says what it means for the caller.
pub(crate) fn logged(err: StoreError) -> AppError {
    match err {
        StoreError::Throttled(_) | StoreError::Unavailable(_) => {
            tracing::warn!(error = %err, "store call failed");
            AppError::Busy
        }
        StoreError::NoSuchSale(_) => AppError::SaleNotFound,
        StoreError::Corrupt(_) | StoreError::SaleExists(_) | StoreError::Rule(_) => {
            tracing::error!(error = %err, "stored data is not what the code expects");
            AppError::Internal
        }
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
