//! Operator actions: table creation, sale creation, listing, buyers, reset. Not on the purchase
//! path; they may scan.

use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, DeleteRequest, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    Projection, ProjectionType, Put, ScalarAttributeType, TransactWriteItem, WriteRequest,
};

use super::items::{SALE_ENTITY, SaleItem, ShardItem, item_of};
use super::{PURCHASE_SK, PurchaseRecord, SHARD_SK, Store, StoreError, key, shard_pk};
use crate::ids::SaleId;
use crate::sale::Sale;

/// The sparse index over sale items (`entity` = "SALE", sorted by `startsAt`).
pub const SALES_INDEX: &str = "sales";

fn build_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl Store {
    /// Creates the table with its sales index (on-demand billing). Returns `false` if it exists.
    pub async fn create_table(&self) -> Result<bool, StoreError> {
        let attr = |name: &str, t: ScalarAttributeType| AttributeDefinition::builder().attribute_name(name).attribute_type(t).build().map_err(build_err);
        let key_el = |name: &str, t: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(t).build().map_err(build_err);
        let index = GlobalSecondaryIndex::builder()
            .index_name(SALES_INDEX)
            .key_schema(key_el("entity", KeyType::Hash)?)
            .key_schema(key_el("startsAt", KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .map_err(build_err)?;
        let result = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk", ScalarAttributeType::S)?)
            .attribute_definitions(attr("sk", ScalarAttributeType::S)?)
            .attribute_definitions(attr("entity", ScalarAttributeType::S)?)
            .attribute_definitions(attr("startsAt", ScalarAttributeType::N)?)
            .key_schema(key_el("pk", KeyType::Hash)?)
            .key_schema(key_el("sk", KeyType::Range)?)
            .global_secondary_indexes(index)
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(e) if e.code() == Some("ResourceInUseException") => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        for _ in 0..60 {
            let table = self.client.describe_table().table_name(&self.table).send().await?;
            if table.table.and_then(|t| t.table_status).is_some_and(|s| s.as_str() == "ACTIVE") {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(StoreError::Unavailable(format!("table {} did not become ACTIVE within 30 s", self.table)))
    }

    /// Stores a new sale and its stock shards atomically. Refuses nonsense and existing sales.
    pub async fn create_sale(&self, sale: &Sale, now_ms: i64) -> Result<(), StoreError> {
        sale.validate()?;
        let put = |item| -> Result<TransactWriteItem, StoreError> {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(build_err)?;
            Ok(TransactWriteItem::builder().put(put).build())
        };
        let mut items = vec![put(item_of(&SaleItem::new(sale, now_ms))?)?];
        for (n, stock) in (0u32..).zip(sale.shard_stock()) {
            items.push(put(item_of(&ShardItem::new(sale, n, stock))?)?);
        }
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c))
                    if c.cancellation_reasons().iter().any(|r| r.code() == Some("ConditionalCheckFailed")) =>
                {
                    Err(StoreError::SaleExists(sale.id.to_string()))
                }
                _ => Err(e.into()),
            },
        }
    }

    /// Every sale, by start time, from the sparse sales index.
    pub async fn list_sales(&self) -> Result<Vec<Sale>, StoreError> {
        let mut sales = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(SALES_INDEX)
                .key_condition_expression("entity = :sale")
                .expression_attribute_values(":sale", AttributeValue::S(SALE_ENTITY.into()))
                .set_exclusive_start_key(start)
                .send()
                .await?;
            for item in out.items.unwrap_or_default() {
                sales.push(SaleItem::from_item(item)?.into_sale()?);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(sales);
            }
        }
    }

    /// Every purchase of a sale, in purchase order (time, then order id). Scans the table: an
    /// operator's tool, never on the request path.
    pub async fn purchases_of(&self, sale: &SaleId) -> Result<Vec<PurchaseRecord>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(pk, :prefix) AND sk = :purchase")
                .expression_attribute_values(":prefix", AttributeValue::S(format!("SALE#{sale}#USER#")))
                .expression_attribute_values(":purchase", AttributeValue::S(PURCHASE_SK.into()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await?;
            for item in out.items.unwrap_or_default() {
                found.push(PurchaseRecord::from_item(item)?);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        found.sort_by(|a, b| (a.purchased_at, &a.order_id).cmp(&(b.purchased_at, &b.order_id)));
        Ok(found)
    }

    /// Restores every shard to its initial stock and deletes every purchase of the sale.
    /// Returns how many purchases were deleted. Run it only while the sale takes no traffic.
    pub async fn reset_sale(&self, sale: &Sale) -> Result<usize, StoreError> {
        let purchases = self.purchases_of(&sale.id).await?;
        for chunk in purchases.chunks(25) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|p| {
                    let delete = DeleteRequest::builder().set_key(Some(key(p.pk.clone(), PURCHASE_SK))).build().map_err(build_err)?;
                    Ok(WriteRequest::builder().delete_request(delete).build())
                })
                .collect::<Result<_, StoreError>>()?;
            for round in 0..8u32 {
                if requests.is_empty() {
                    break;
                }
                if round > 0 {
                    tokio::time::sleep(Duration::from_millis(20 << round)).await;
                }
                let out = self.client.batch_write_item().request_items(&self.table, requests).send().await?;
                requests = out.unprocessed_items.and_then(|mut u| u.remove(&self.table)).unwrap_or_default();
            }
            if !requests.is_empty() {
                return Err(StoreError::Throttled("BatchWriteItem left deletes unprocessed".into()));
            }
        }
        for n in 0..sale.shards {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(shard_pk(&sale.id, n), SHARD_SK)))
                .update_expression("SET remaining = initial")
                .condition_expression("attribute_exists(pk)")
                .send()
                .await?;
        }
        Ok(purchases.len())
    }
}
