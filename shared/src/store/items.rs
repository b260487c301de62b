//! Item shapes, converted with `serde_dynamo`. Attribute names are part of the stored format
//! (condition expressions and the admin CLI use them): change them only with a migration.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};

use super::{PURCHASE_SK, SALE_SK, SHARD_SK, StoreError, purchase_pk, sale_pk, shard_pk};
use crate::ids::{SaleId, UserId};
use crate::order::{OrderStatus, Purchase};
use crate::sale::Sale;
use crate::time_fmt::rfc3339_ms;

pub(crate) type Item = HashMap<String, AttributeValue>;

/// Value of `entity` on sale items; the partition key of the sparse sales index.
pub(crate) const SALE_ENTITY: &str = "SALE";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SaleItem {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub sale_id: String,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub total_stock: i64,
    pub shards: u32,
    pub starts_at: i64,
    pub ends_at: i64,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<crate::room::RoomConfig>,
    #[serde(default)]
    pub hold_seconds: i64,
    /// Absent: one variant, `default` (every sale stored before variants existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<crate::sale::Variant>,
    /// Absent: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_customer: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ShardItem {
    pub pk: String,
    pub sk: String,
    pub sale_id: String,
    pub shard: u32,
    /// Decremented by each purchase; the condition keeps it from going below zero.
    pub remaining: i64,
    /// What the shard started with; `reset-sale` restores it.
    pub initial: i64,
    /// The window, copied from the sale so the purchase condition can check it on this item.
    pub starts_at: i64,
    pub ends_at: i64,
    /// The variant this shard holds stock of; absent: the sale's one variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant_id: Option<String>,
    /// The shard lists its buyers in `buyers` ([`Sale::keeps_roster`]); absent on shards written
    /// before rosters, whose buyers are then not known from the shard.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub roster: bool,
}

/// What an order took from one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Take {
    pub shard: u32,
    pub n: i64,
}

/// A customer of a sale with `maxPerCustomer` > 1 (`SALE#{s}#USER#{u}` / `CUSTOMER`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerItem {
    /// Items held live (reserved + confirmed).
    #[serde(default)]
    pub live: i64,
    /// The live orders' ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orders: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_order: Option<String>,
}

/// What an `Idempotency-Key` was used for, in a sale with `maxPerCustomer` > 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyItem {
    pub for_order: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u32>,
}

impl CustomerItem {
    /// Read by hand: `orders` is a string set.
    pub(crate) fn from_item(item: &Item) -> Self {
        let num = |k: &str| item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok());
        Self {
            live: num("live").unwrap_or(0),
            orders: item.get("orders").and_then(|v| v.as_ss().ok()).cloned().unwrap_or_default(),
            last_order: item.get("lastOrder").and_then(|v| v.as_s().ok()).cloned(),
        }
    }
}

impl KeyItem {
    pub(crate) fn from_item(item: &Item) -> Option<Self> {
        Some(Self {
            for_order: item.get("forOrder").and_then(|v| v.as_s().ok()).cloned()?,
            variant_id: item.get("variantId").and_then(|v| v.as_s().ok()).cloned(),
            quantity: item.get("quantity").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()),
        })
    }
}

/// A purchase as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseRecord {
    pub pk: String,
    pub sk: String,
    pub sale_id: String,
    pub user_id: String,
    /// ULID: unique, and sorts by creation time.
    pub order_id: String,
    pub purchased_at: i64,
    /// The shard the item came from.
    pub shard: u32,
    /// The `Idempotency-Key` the buying request carried, if any: a retry with the same key is
    /// answered with this purchase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Absent on records written before holds existed: `confirmed`.
    #[serde(default)]
    pub status: OrderStatus,
    /// Grows by one with every status change: with `orderId`, what order events are deduplicated by.
    #[serde(default = "first_version")]
    pub version: u32,
    /// When a hold ends (milliseconds), for sales with holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_expires_at: Option<i64>,
    /// The `holds` index partition while `reserved` (see [`crate::keys::hold_index_pk`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_key: Option<String>,
    /// When the status last changed (milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
    /// The variant bought; absent: the sale's one variant (sales without variants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant_id: Option<String>,
    /// Items in the order; absent: 1 (sales without variants and one item per customer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u32>,
    /// The shards the items came from when more than one; absent: all from `shard`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub takes: Option<Vec<Take>>,
}

fn first_version() -> u32 {
    1
}

impl SaleItem {
    pub(crate) fn new(sale: &Sale, created_at: i64) -> Self {
        Self {
            pk: sale_pk(&sale.id),
            sk: SALE_SK.into(),
            entity: SALE_ENTITY.into(),
            sale_id: sale.id.to_string(),
            name: sale.name.clone(),
            price_cents: sale.price_cents,
            currency: sale.currency.clone(),
            total_stock: sale.total_stock,
            shards: sale.shards,
            starts_at: sale.starts_at_ms,
            ends_at: sale.ends_at_ms,
            created_at,
            room: sale.room.clone(),
            hold_seconds: sale.hold_seconds,
            variants: sale.variants.clone(),
            max_per_customer: (sale.max_per_customer != 1).then_some(sale.max_per_customer),
        }
    }

    pub(crate) fn from_item(item: Item) -> Result<Self, StoreError> {
        Ok(from_item(item)?)
    }

    pub(crate) fn into_sale(self) -> Result<Sale, StoreError> {
        let id =
            SaleId::parse(&self.sale_id).map_err(|e| StoreError::Corrupt(format!("sale item {}: {e}", self.pk)))?;
        Ok(Sale {
            id,
            name: self.name,
            price_cents: self.price_cents,
            currency: self.currency,
            total_stock: self.total_stock,
            shards: self.shards,
            starts_at_ms: self.starts_at,
            ends_at_ms: self.ends_at,
            room: self.room,
            hold_seconds: self.hold_seconds,
            variants: self.variants,
            max_per_customer: self.max_per_customer.unwrap_or(1),
        })
    }
}

impl ShardItem {
    pub(crate) fn new(sale: &Sale, shard: u32, stock: i64) -> Self {
        Self {
            pk: shard_pk(&sale.id, shard),
            sk: SHARD_SK.into(),
            sale_id: sale.id.to_string(),
            shard,
            remaining: stock,
            initial: stock,
            starts_at: sale.starts_at_ms,
            ends_at: sale.ends_at_ms,
            variant_id: if sale.has_variants() { sale.variant_of_shard(shard).map(|v| v.id.to_owned()) } else { None },
            roster: sale.keeps_roster(),
        }
    }

    pub(crate) fn from_item(item: Item) -> Result<Self, StoreError> {
        Ok(from_item(item)?)
    }
}

impl PurchaseRecord {
    /// The order's status at `now_ms`: a reserved order whose hold has ended is `expired`, whether
    /// or not it has been released yet (the release gives its item back and stores the status).
    pub fn status_at(&self, now_ms: i64) -> OrderStatus {
        match self.status {
            OrderStatus::Reserved if self.hold_expires_at.is_some_and(|at| at <= now_ms) => OrderStatus::Expired,
            status => status,
        }
    }

    /// Whether this record holds an item for its buyer at `now_ms` (an ended hold does not).
    pub fn is_live_at(&self, now_ms: i64) -> bool {
        self.status_at(now_ms).is_live()
    }

    /// The order as a buyer sees it at `now_ms` ([`PurchaseRecord::status_at`]).
    pub fn to_purchase_at(&self, now_ms: i64) -> Purchase {
        Purchase { status: self.status_at(now_ms), ..self.to_purchase() }
    }

    pub fn new(
        sale: &SaleId,
        user: &UserId,
        order_id: String,
        purchased_at: i64,
        shard: u32,
        idempotency_key: Option<String>,
    ) -> Self {
        Self {
            pk: purchase_pk(sale, user),
            sk: PURCHASE_SK.into(),
            sale_id: sale.to_string(),
            user_id: user.to_string(),
            order_id,
            purchased_at,
            shard,
            idempotency_key,
            status: OrderStatus::Confirmed,
            version: 1,
            hold_expires_at: None,
            hold_key: None,
            updated_at: Some(purchased_at),
            variant_id: None,
            quantity: None,
            takes: None,
        }
    }

    /// The same order for `quantity` items of variant `variant` taken as `takes` (the first take's
    /// shard is `shard`; more than one take is stored as `takes`). Leaves a plain sale's record
    /// (one variant, one per customer) as it always was.
    pub fn of_items(mut self, sale: &Sale, variant: &str, quantity: u32, takes: &[Take]) -> Self {
        if sale.has_variants() {
            self.variant_id = Some(variant.to_owned());
        }
        if sale.has_variants() || sale.max_per_customer > 1 {
            self.quantity = Some(quantity);
        }
        if let Some(first) = takes.first() {
            self.shard = first.shard;
        }
        if takes.len() > 1 {
            self.takes = Some(takes.to_vec());
        }
        self
    }

    /// Items in the order.
    pub fn items(&self) -> u32 {
        self.quantity.unwrap_or(1)
    }

    /// What the order took, per shard.
    pub fn taken(&self) -> Vec<Take> {
        match &self.takes {
            Some(t) if !t.is_empty() => t.clone(),
            _ => vec![Take { shard: self.shard, n: i64::from(self.items()) }],
        }
    }

    /// The variant bought (the default variant's id for sales without variants).
    pub fn variant(&self) -> &str {
        self.variant_id.as_deref().unwrap_or(crate::sale::DEFAULT_VARIANT)
    }

    /// The same order as a hold until `expires_at_ms`, listed in index partition `lane`.
    pub fn held_until(mut self, expires_at_ms: i64, lane: u32) -> Self {
        self.status = OrderStatus::Reserved;
        self.hold_expires_at = Some(expires_at_ms);
        self.hold_key = Some(crate::keys::hold_index_pk(&self.sale_id, lane % crate::keys::HOLD_LANES));
        self
    }

    pub(crate) fn from_item(item: Item) -> Result<Self, StoreError> {
        Ok(from_item(item)?)
    }

    pub(crate) fn to_item(&self) -> Result<Item, StoreError> {
        Ok(to_item(self)?)
    }

    /// This record as a new order written over whatever the key holds: an update expression that
    /// sets every attribute of the record, removes the optional ones it lacks (left by an earlier
    /// order), and continues `version` from the stored one (`+ 1`; `1` on a new key), so an order
    /// record's versions only grow. `(expression, names, values)`; the values use `:zero` and
    /// `:one`, which the caller must not use for anything else.
    pub(crate) fn new_order_update(&self) -> Result<(String, HashMap<String, String>, Item), StoreError> {
        const OPTIONAL: [&str; 7] =
            ["idempotencyKey", "holdExpiresAt", "holdKey", "updatedAt", "variantId", "quantity", "takes"];
        let item = self.to_item()?;
        let mut names = HashMap::new();
        let mut values = Item::new();
        let mut sets = vec!["#version = if_not_exists(#version, :zero) + :one".to_owned()];
        names.insert("#version".to_owned(), "version".to_owned());
        values.insert(":zero".into(), AttributeValue::N("0".into()));
        values.insert(":one".into(), AttributeValue::N("1".into()));
        let mut attributes: Vec<(String, AttributeValue)> =
            item.into_iter().filter(|(k, _)| !matches!(k.as_str(), "pk" | "sk" | "version")).collect();
        attributes.sort_by(|a, b| a.0.cmp(&b.0));
        for (i, (name, value)) in attributes.into_iter().enumerate() {
            sets.push(format!("#a{i} = :a{i}"));
            names.insert(format!("#a{i}"), name);
            values.insert(format!(":a{i}"), value);
        }
        let mut expression = format!("SET {}", sets.join(", "));
        let absent: Vec<&str> = OPTIONAL.into_iter().filter(|a| !names.values().any(|n| n == a)).collect();
        if !absent.is_empty() {
            expression.push_str(&format!(" REMOVE {}", absent.join(", ")));
        }
        Ok((expression, names, values))
    }

    /// The API view of this purchase.
    pub fn to_purchase(&self) -> Purchase {
        Purchase {
            sale_id: self.sale_id.clone(),
            user_id: self.user_id.clone(),
            order_id: self.order_id.clone(),
            purchased_at: rfc3339_ms(self.purchased_at),
            status: self.status,
            hold_expires_at: self.hold_expires_at.map(rfc3339_ms),
            variant_id: self.variant_id.clone(),
            quantity: self.quantity,
        }
    }
}

pub(crate) fn item_of<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    Ok(to_item(value)?)
}
