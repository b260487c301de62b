//! Operator actions: table creation, sale creation, listing, buyers, reset. Not on the purchase
//! path; they may scan.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    Projection, ProjectionType, Put, ScalarAttributeType, StreamSpecification, StreamViewType, TransactWriteItem,
    Update,
};

use super::items::{SALE_ENTITY, SaleItem, ShardItem, item_of};
use super::{PURCHASE_SK, PurchaseRecord, SHARD_SK, Store, StoreError, key, shard_pk};
use crate::ids::SaleId;
use crate::keys::{HOLDS_INDEX, HOLDS_INDEX_ATTRIBUTES, ORDERS_INDEX, SALES_INDEX};
use crate::order::OrderStatus;
use crate::sale::{Sale, SaleRuleError};

fn build_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl Store {
    /// Creates the table with its indexes (on-demand billing) and a stream of new and old images
    /// (the order events' source), as `infra/template.yaml` does. Returns `false` if it exists.
    pub async fn create_table(&self) -> Result<bool, StoreError> {
        self.create_table_with(true).await
    }

    /// [`Store::create_table`] without the stream: for test tables that do not read it (DynamoDB
    /// Local writes at about half the rate while it records a stream).
    pub async fn create_table_without_stream(&self) -> Result<bool, StoreError> {
        self.create_table_with(false).await
    }

    async fn create_table_with(&self, stream: bool) -> Result<bool, StoreError> {
        let attr = |name: &str, t: ScalarAttributeType| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(t).build().map_err(build_err)
        };
        let key_el = |name: &str, t: KeyType| {
            KeySchemaElement::builder().attribute_name(name).key_type(t).build().map_err(build_err)
        };
        let index = GlobalSecondaryIndex::builder()
            .index_name(SALES_INDEX)
            .key_schema(key_el("entity", KeyType::Hash)?)
            .key_schema(key_el("startsAt", KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .map_err(build_err)?;
        let orders = GlobalSecondaryIndex::builder()
            .index_name(ORDERS_INDEX)
            .key_schema(key_el("orderId", KeyType::Hash)?)
            .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
            .build()
            .map_err(build_err)?;
        let holds = GlobalSecondaryIndex::builder()
            .index_name(HOLDS_INDEX)
            .key_schema(key_el("holdKey", KeyType::Hash)?)
            .key_schema(key_el("holdExpiresAt", KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::Include)
                    .set_non_key_attributes(Some(HOLDS_INDEX_ATTRIBUTES.map(String::from).to_vec()))
                    .build(),
            )
            .build()
            .map_err(build_err)?;
        let spec = StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(StreamViewType::NewAndOldImages)
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
            .attribute_definitions(attr("orderId", ScalarAttributeType::S)?)
            .attribute_definitions(attr("holdKey", ScalarAttributeType::S)?)
            .attribute_definitions(attr("holdExpiresAt", ScalarAttributeType::N)?)
            .key_schema(key_el("pk", KeyType::Hash)?)
            .key_schema(key_el("sk", KeyType::Range)?)
            .global_secondary_indexes(index)
            .global_secondary_indexes(orders)
            .global_secondary_indexes(holds)
            .set_stream_specification(stream.then_some(spec))
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

    /// Stores a new sale and its stock shards atomically. Refuses nonsense and existing sales; a
    /// sale with a waiting room is created with [`Store::create_sale_with_room`].
    pub async fn create_sale(&self, sale: &Sale, now_ms: i64) -> Result<(), StoreError> {
        if sale.room.is_some() {
            return Err(SaleRuleError::RoomWithoutSeed.into());
        }
        self.create(sale, None, now_ms).await
    }

    /// Stores a new sale with a waiting room: its configuration (publishing the commitment to
    /// `draw_seed`), shards, room state and the secret seed, atomically.
    pub async fn create_sale_with_room(&self, sale: &Sale, draw_seed: &[u8], now_ms: i64) -> Result<(), StoreError> {
        match &sale.room {
            Some(room) if room.draw_commitment == crate::room::commitment(draw_seed) => {}
            _ => return Err(SaleRuleError::RoomWithoutSeed.into()),
        }
        self.create(sale, Some(draw_seed), now_ms).await
    }

    async fn create(&self, sale: &Sale, draw_seed: Option<&[u8]>, now_ms: i64) -> Result<(), StoreError> {
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
        if let Some(seed) = draw_seed {
            for item in self.room_items(sale, seed)? {
                items.push(put(item)?);
            }
        }
        // An explicit token: if the SDK retries a call whose commit it did not hear about, the
        // replay succeeds instead of reporting the sale it just created as existing.
        let token = ulid::Ulid::new().to_string();
        let sent =
            self.client.transact_write_items().set_transact_items(Some(items)).client_request_token(token).send().await;
        match sent {
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

    /// Every customer item of a sale with `maxPerCustomer` > 1, by user id (sorted). Scans the
    /// table: an operator's tool, never on the request path.
    pub async fn customers_of(&self, sale: &SaleId) -> Result<Vec<(String, super::CustomerItem)>, StoreError> {
        let prefix = crate::keys::purchase_pk(sale.as_str(), "");
        let mut found: Vec<(String, super::CustomerItem)> = self
            .scan_kind(&prefix, crate::keys::CUSTOMER_SK)
            .await?
            .iter()
            .filter_map(|item| {
                let user = item.get("pk")?.as_s().ok()?.strip_prefix(&prefix)?;
                Some((user.to_owned(), super::CustomerItem::from_item(item)))
            })
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }

    /// Every purchase of a sale, in purchase order (time, then order id). Scans the table: an
    /// operator's tool, never on the request path.
    pub async fn purchases_of(&self, sale: &SaleId) -> Result<Vec<PurchaseRecord>, StoreError> {
        let prefix = crate::keys::purchase_pk(sale.as_str(), "");
        let mut found: Vec<PurchaseRecord> = self
            .scan_kind(&prefix, PURCHASE_SK)
            .await?
            .into_iter()
            .map(PurchaseRecord::from_item)
            .collect::<Result<_, _>>()?;
        found.sort_by(|a, b| (a.purchased_at, &a.order_id).cmp(&(b.purchased_at, &b.order_id)));
        Ok(found)
    }

    /// Gives every purchase of the sale back to the shard it came from and deletes it: per shard,
    /// one transaction adds the count back to the shard and deletes those records (each only if it
    /// still holds the same order in the same status). Stock + purchases = total therefore holds
    /// at every moment, also while purchases keep arriving; a purchase that commits during the
    /// reset is simply kept. Rescans until a scan finds none, at most `RESET_ROUNDS` times.
    ///
    /// Each deleted live order becomes an `OrderCancelled` event with reason `reset` (the
    /// order-events function reads the deletion from the stream). Confirmed (paid) orders are
    /// deleted only with `include_confirmed`: without it a sale that has any is refused with
    /// nothing deleted, and one confirmed during the reset is kept.
    ///
    /// Containers remember refusals of a sale sold out for good (`stock_hint`), each for at most
    /// [`super::EPOCH_LEASE`] after reading the sale's reset epoch. So the reset first
    /// makes the epoch odd (a reset under way: nothing is remembered), waits out every lease taken
    /// before, gives the items back, and then makes it even again: no container answers from
    /// what it remembered before the items came back.
    pub async fn reset_sale(&self, sale: &Sale, include_confirmed: bool) -> Result<Reset, StoreError> {
        self.reset_orders(sale, None, include_confirmed).await
    }

    /// [`Store::reset_sale`] of the orders of `variants` only: each of their live orders gives
    /// back exactly what it took to exactly its shards (and, with several items per customer, its
    /// quantity off its customer's live count) and is deleted, an `OrderCancelled` event with
    /// reason `reset`; the `Idempotency-Key` items of those variants go too. Every other variant's
    /// orders, stock and keys are untouched. Confirmed orders of these variants refuse the reset
    /// unless `include_confirmed`, as for the whole sale; the reset epoch moves as for the whole
    /// sale (items coming back to any variant end what containers remember of a sold-out sale).
    /// An id that is not a variant of the sale matches no order.
    pub async fn reset_variants(
        &self,
        sale: &Sale,
        variants: &[String],
        include_confirmed: bool,
    ) -> Result<Reset, StoreError> {
        self.reset_orders(sale, Some(variants), include_confirmed).await
    }

    /// The reset of the orders of `only` these variants (`None`: every order of the sale).
    async fn reset_orders(
        &self,
        sale: &Sale,
        only: Option<&[String]>,
        include_confirmed: bool,
    ) -> Result<Reset, StoreError> {
        let Some(epoch) = self.reset_epoch(&sale.id).await? else {
            return self.give_back_all(sale, only, include_confirmed).await;
        };
        let odd = if !epoch.is_multiple_of(2) {
            epoch
        } else if self.advance_reset_epoch(&sale.id, epoch).await? {
            epoch + 1
        } else {
            return Err(StoreError::Unavailable(format!("sale {}: another reset is under way", sale.id)));
        };
        tokio::time::sleep(super::EPOCH_LEASE + RESET_LEASE_MARGIN).await;
        let reset = self.give_back_all(sale, only, include_confirmed).await?;
        // Another reset that moved it meanwhile ends it itself.
        self.advance_reset_epoch(&sale.id, odd).await?;
        Ok(reset)
    }

    async fn give_back_all(
        &self,
        sale: &Sale,
        only: Option<&[String]>,
        include_confirmed: bool,
    ) -> Result<Reset, StoreError> {
        let chosen = |variant: &str| only.is_none_or(|list| list.iter().any(|v| v == variant));
        let mut returned = 0;
        let mut kept_confirmed = 0;
        for round in 0..RESET_ROUNDS {
            let (confirmed, purchases): (Vec<PurchaseRecord>, Vec<PurchaseRecord>) = self
                .purchases_of(&sale.id)
                .await?
                .into_iter()
                .filter(|p| chosen(p.variant()))
                .partition(|p| !include_confirmed && p.status == OrderStatus::Confirmed);
            kept_confirmed = confirmed.len();
            if round == 0 && !confirmed.is_empty() {
                return Ok(Reset::Refused { confirmed: confirmed.len() });
            }
            if purchases.is_empty() {
                break;
            }
            // One transaction holds at most 100 items: the shards given back to, the records, and
            // (several items per customer) the customers' items.
            let mut chunk: Vec<&PurchaseRecord> = Vec::new();
            for p in &purchases {
                chunk.push(p);
                if give_back_items(sale, &chunk) > 100 {
                    chunk.pop();
                    if self.give_back(sale, &chunk).await? {
                        returned += chunk.iter().filter(|p| p.status.is_live()).count();
                    }
                    chunk = vec![p];
                }
            }
            if !chunk.is_empty() && self.give_back(sale, &chunk).await? {
                returned += chunk.iter().filter(|p| p.status.is_live()).count();
            }
        }
        // What Idempotency-Keys were used for, in a sale with several items per customer: the
        // orders they name are gone (a key names an order of the variant it records).
        if sale.max_per_customer > 1 {
            let prefix = crate::keys::purchase_pk(sale.id.as_str(), "");
            for item in self.scan_prefixes(&prefix, "IDEM#").await? {
                let variant = super::items::KeyItem::from_item(&item).and_then(|k| k.variant_id);
                if !chosen(variant.as_deref().unwrap_or(crate::sale::DEFAULT_VARIANT)) {
                    continue;
                }
                let (Some(pk), Some(sk)) = (item.get("pk"), item.get("sk")) else { continue };
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key("pk", pk.clone())
                    .key("sk", sk.clone())
                    .send()
                    .await?;
            }
        }
        Ok(Reset::Done { returned, kept_confirmed })
    }

    /// One transaction: every shard gets back what the live orders (reserved or confirmed) among
    /// `records` took from it, the records are deleted, each only if its order and status are as
    /// read (a cancelled or expired order gave its items back already), and with several items per
    /// customer the customers' live counts drop by what they held. `false` when DynamoDB cancelled
    /// it (a record changed meanwhile; the next scan sees the truth).
    async fn give_back(&self, sale: &Sale, records: &[&PurchaseRecord]) -> Result<bool, StoreError> {
        let mut by_shard: BTreeMap<u32, i64> = BTreeMap::new();
        let mut by_customer: BTreeMap<&str, (i64, Vec<String>)> = BTreeMap::new();
        // A shard's buyers leave its roster with their records, in the same transaction.
        let mut buyers_of: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for p in records.iter().filter(|p| p.status.is_live()) {
            for t in p.taken() {
                *by_shard.entry(t.shard).or_default() += t.n;
                buyers_of.entry(t.shard).or_default().push(p.user_id.clone());
            }
            let c = by_customer.entry(p.user_id.as_str()).or_default();
            c.0 += i64::from(p.items());
            c.1.push(p.order_id.clone());
        }
        let mut items = Vec::new();
        for (shard, count) in by_shard {
            let add = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(shard_pk(&sale.id, shard), SHARD_SK)))
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":n", AttributeValue::N(count.to_string()));
            let gone = buyers_of.remove(&shard).unwrap_or_default();
            let add = if sale.keeps_roster() && !gone.is_empty() {
                add.update_expression("SET remaining = remaining + :n DELETE buyers :gone")
                    .expression_attribute_values(":gone", AttributeValue::Ss(gone))
            } else {
                add.update_expression("SET remaining = remaining + :n")
            };
            let add = add.build().map_err(build_err)?;
            items.push(TransactWriteItem::builder().update(add).build());
        }
        if sale.max_per_customer > 1 {
            for (user, (count, orders)) in by_customer {
                let customer = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(crate::keys::purchase_pk(sale.id.as_str(), user), crate::keys::CUSTOMER_SK)))
                    .update_expression("SET live = live - :n DELETE orders :orders")
                    .condition_expression("attribute_exists(pk)")
                    .expression_attribute_values(":n", AttributeValue::N(count.to_string()))
                    .expression_attribute_values(":orders", AttributeValue::Ss(orders))
                    .build()
                    .map_err(build_err)?;
                items.push(TransactWriteItem::builder().update(customer).build());
            }
        }
        for p in records {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(p.pk.clone(), PURCHASE_SK)))
                .condition_expression("orderId = :order AND (#status = :status OR attribute_not_exists(#status))")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":order", AttributeValue::S(p.order_id.clone()))
                .expression_attribute_values(":status", AttributeValue::S(p.status.as_str().to_owned()))
                .build()
                .map_err(build_err)?;
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(e.as_service_error(), Some(TransactWriteItemsError::TransactionCanceledException(_))) =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Items of the transaction that gives back `records`' items ([`Store::give_back`]).
fn give_back_items(sale: &Sale, records: &[&PurchaseRecord]) -> usize {
    let live = || records.iter().filter(|p| p.status.is_live());
    let shards: std::collections::BTreeSet<u32> = live().flat_map(|p| p.taken()).map(|t| t.shard).collect();
    let customers: std::collections::BTreeSet<&str> =
        if sale.max_per_customer > 1 { live().map(|p| p.user_id.as_str()).collect() } else { Default::default() };
    shards.len() + customers.len() + records.len()
}

impl Store {
    /// Every item whose partition key starts with `prefix` and whose sort key starts with
    /// `sk_prefix` (a consistent scan: operator tools only).
    pub(crate) async fn scan_prefixes(
        &self,
        prefix: &str,
        sk_prefix: &str,
    ) -> Result<Vec<super::items::Item>, StoreError> {
        self.scan_where(prefix, "begins_with(sk, :sk)", sk_prefix).await
    }

    /// Every item whose partition key starts with `prefix` and whose sort key is `sk` (a
    /// consistent scan of the whole table: for operator tools only).
    pub(crate) async fn scan_kind(&self, prefix: &str, sk: &str) -> Result<Vec<super::items::Item>, StoreError> {
        self.scan_where(prefix, "sk = :sk", sk).await
    }

    /// Every item whose partition key starts with `prefix` and whose sort key meets
    /// `sk_condition` (on `:sk` = `sk`), page after page of a consistent scan.
    async fn scan_where(
        &self,
        prefix: &str,
        sk_condition: &str,
        sk: &str,
    ) -> Result<Vec<super::items::Item>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression(format!("begins_with(pk, :prefix) AND {sk_condition}"))
                .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_owned()))
                .expression_attribute_values(":sk", AttributeValue::S(sk.to_owned()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await?;
            found.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(found);
            }
        }
    }
}

/// What a reset waits beyond a container's epoch lease before it gives items back (clock drift
/// between machines, and the time a lease's read takes to arrive).
const RESET_LEASE_MARGIN: Duration = Duration::from_millis(500);

/// Scans a reset makes at most before it reports what it gave back.
const RESET_ROUNDS: usize = 10;

/// What [`Store::reset_sale`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    /// The sale's orders were deleted: `returned` live orders gave their item back (each one an
    /// `OrderCancelled` event, reason `reset`); `kept_confirmed` orders confirmed during the reset
    /// were kept (without `include_confirmed`).
    Done { returned: usize, kept_confirmed: usize },
    /// The sale has `confirmed` (paid) orders and `include_confirmed` was not given: nothing was
    /// deleted.
    Refused { confirmed: usize },
}
