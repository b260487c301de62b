//! The order lifecycle's writes: confirm a hold, give an item back (cancel, expiry), and find the
//! holds that ran out.
//!
//! Every change of an order's status is one conditional write on the order's record (status and
//! `orderId` as expected), bumps `version` and removes `holdKey` (which takes the order out of the
//! sparse `holds` index). A change that gives the item back is a transaction that also adds one to
//! the shard the item came from: both or neither, so stock + reserved + confirmed stays the total.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::items::{PurchaseRecord, Take};
use super::{PURCHASE_SK, SHARD_SK, Store, StoreError, applied, key, shard_pk};
use crate::ids::SaleId;
use crate::keys::{HOLDS_INDEX, ORDERS_INDEX};
use crate::order::OrderStatus;
use crate::sale::Sale;

/// What a conditional status change came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// Written; carries the record as it is now.
    Done(PurchaseRecord),
    /// The condition failed: the record as it is now (another order of the same user, or the same
    /// order in another status), or `None` when there is no record.
    Refused(Option<PurchaseRecord>),
    /// A concurrent transaction touched one of the items: nothing was written, a retry may succeed.
    Conflict,
}

/// A live hold as the `holds` index lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hold {
    pub pk: String,
    pub order_id: String,
    pub shard: u32,
    pub expires_at_ms: i64,
    /// The `holds` index partition it is listed in (`holdKey`).
    pub hold_key: String,
    /// What the order took, when known (from its record); the index does not carry it, and an
    /// order of a sale with `maxPerCustomer` > 1 is read before its release.
    pub takes: Option<Vec<Take>>,
    /// The buyer (for the customer's item).
    pub user_id: Option<String>,
}

/// An entry of the `holds` index the sweeper cannot release: it lacks what a release needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed {
    pub pk: String,
    pub hold_key: String,
    pub detail: String,
}

/// A hold set aside by the sweeper (see [`Store::set_hold_aside`]): listed in the sale's own
/// `holds` partition [`crate::keys::stuck_holds_pk`], not in the lanes the sweeper reads.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StuckHold {
    pub pk: String,
    pub user_id: Option<String>,
    pub order_id: Option<String>,
    pub status: Option<String>,
    pub hold_expires_at: Option<i64>,
    /// Why the sweeper set it aside (the last release error).
    pub reason: Option<String>,
    /// Failed releases counted on the record.
    pub release_failures: Option<i64>,
    pub stuck_at: Option<i64>,
}

impl Hold {
    /// The lane of the `holds` index partition it is listed in.
    pub(crate) fn lane(&self) -> u32 {
        crate::keys::hold_lane(&self.hold_key).unwrap_or(0)
    }

    /// The hold of a reserved record.
    pub(crate) fn of(r: &PurchaseRecord) -> Self {
        Self {
            pk: r.pk.clone(),
            order_id: r.order_id.clone(),
            shard: r.shard,
            expires_at_ms: r.hold_expires_at.unwrap_or(0),
            hold_key: r.hold_key.clone().unwrap_or_default(),
            takes: Some(r.taken()),
            user_id: Some(r.user_id.clone()),
        }
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn build_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Rejected { op: "build request".into(), code: "BuildError".into(), message: e.to_string() }
}

/// Attributes the sweeper writes on a record whose release failed; a release removes them.
const RELEASE_FAILURE_ATTRIBUTES: &str = "releaseFailures, lastReleaseError, lastReleaseErrorAt, stuckAt";

impl Store {
    /// The partition key of the record holding order `order_id`, from the `orders` index
    /// (eventually consistent: an order is listed there within about a second of its creation).
    pub(crate) async fn find_order(&self, order_id: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(ORDERS_INDEX)
            .key_condition_expression("orderId = :o")
            .expression_attribute_values(":o", s(order_id))
            .limit(4)
            .send()
            .await?;
        Ok(out
            .items
            .unwrap_or_default()
            .into_iter()
            .filter(|i| i.get("sk").and_then(|v| v.as_s().ok()).is_some_and(|sk| sk == PURCHASE_SK))
            .find_map(|i| i.get("pk").and_then(|v| v.as_s().ok()).cloned()))
    }

    /// The record under `pk` (strongly consistent).
    pub(crate) async fn get_record(&self, pk: &str) -> Result<Option<PurchaseRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk.to_owned(), PURCHASE_SK)))
            .consistent_read(true)
            .send()
            .await?;
        out.item.map(PurchaseRecord::from_item).transpose().map_err(|e| StoreError::Corrupt(format!("{pk}: {e}")))
    }

    /// `reserved` → `confirmed` for order `order_id` in record `pk`, if its hold has not ended at `now_ms`.
    pub(crate) async fn confirm_hold(&self, pk: &str, order_id: &str, now_ms: i64) -> Result<Change, StoreError> {
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk.to_owned(), PURCHASE_SK)))
            .condition_expression("orderId = :order AND #status = :reserved AND holdExpiresAt > :now")
            .update_expression(
                "SET #status = :confirmed, version = if_not_exists(version, :one) + :one, updatedAt = :now \
                 REMOVE holdKey",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":order", s(order_id))
            .expression_attribute_values(":reserved", s(OrderStatus::Reserved.as_str()))
            .expression_attribute_values(":confirmed", s(OrderStatus::Confirmed.as_str()))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match sent {
            Ok(out) => {
                let item = out.attributes.unwrap_or_default();
                Ok(Change::Done(
                    PurchaseRecord::from_item(item).map_err(|e| StoreError::Corrupt(format!("{pk}: {e}")))?,
                ))
            }
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(e)) => {
                    let old = e.item().filter(|i| !i.is_empty()).cloned().map(PurchaseRecord::from_item).transpose();
                    Ok(Change::Refused(old.map_err(|e| StoreError::Corrupt(format!("{pk}: {e}")))?))
                }
                // A purchase, cancel or release transaction holds the record right now: retry.
                Some(UpdateItemError::TransactionConflictException(_)) => Ok(Change::Conflict),
                _ => Err(err.into()),
            },
        }
    }

    /// `reserved` → `to` (cancelled or expired) for the order of `hold`, giving exactly what it
    /// took back to the shards it came from in the same transaction (and, when customers may hold
    /// several items, taking its items off the customer's live count). `expired_by` (a time) also
    /// requires the hold to have ended by then: the sweeper's condition.
    pub(crate) async fn release_hold(
        &self,
        sale_rules: &Sale,
        hold: &Hold,
        to: OrderStatus,
        expired_by: Option<i64>,
        now_ms: i64,
    ) -> Result<Change, StoreError> {
        let sale = &sale_rules.id;
        let several = sale_rules.max_per_customer > 1;
        let (pk, order_id) = (hold.pk.as_str(), hold.order_id.as_str());
        // The index does not say what the order took: with several items per customer, its record does.
        let (takes, user_id) = match (&hold.takes, several) {
            (Some(t), _) => (t.clone(), hold.user_id.clone()),
            (None, false) => (vec![Take { shard: hold.shard, n: 1 }], hold.user_id.clone()),
            (None, true) => match self.get_record(pk).await? {
                Some(r) if r.order_id == order_id && r.status == OrderStatus::Reserved => {
                    (r.taken(), Some(r.user_id.clone()))
                }
                other => return Ok(Change::Refused(other)),
            },
        };
        let mut condition = "orderId = :order AND #status = :reserved".to_owned();
        if expired_by.is_some() {
            condition.push_str(" AND holdExpiresAt <= :by");
        }
        let order = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk.to_owned(), PURCHASE_SK)))
            .condition_expression(condition)
            .update_expression(format!(
                "SET #status = :to, version = if_not_exists(version, :one) + :one, updatedAt = :now \
                     REMOVE holdKey, {RELEASE_FAILURE_ATTRIBUTES}"
            ))
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some({
                let mut v = std::collections::HashMap::from([
                    (":order".to_owned(), s(order_id)),
                    (":reserved".to_owned(), s(OrderStatus::Reserved.as_str())),
                    (":to".to_owned(), s(to.as_str())),
                    (":now".to_owned(), n(now_ms)),
                    (":one".to_owned(), n(1)),
                ]);
                if let Some(by) = expired_by {
                    v.insert(":by".to_owned(), n(by));
                }
                v
            }))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_err)?;
        let mut items = vec![TransactWriteItem::builder().update(order).build()];
        for take in &takes {
            let give_back = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(shard_pk(sale, take.shard), SHARD_SK)))
                .condition_expression("attribute_exists(pk)")
                .update_expression("SET remaining = remaining + :one")
                .expression_attribute_values(":one", n(take.n))
                .build()
                .map_err(build_err)?;
            items.push(TransactWriteItem::builder().update(give_back).build());
        }
        if several {
            let Some(user) = &user_id else {
                return Err(StoreError::Corrupt(format!("{pk}: hold of order {order_id} without its userId")));
            };
            let q: i64 = takes.iter().map(|t| t.n).sum();
            let customer = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(crate::keys::purchase_pk(sale.as_str(), user), crate::keys::CUSTOMER_SK)))
                .condition_expression("attribute_exists(pk)")
                .update_expression("SET live = live - :q DELETE orders :orders")
                .expression_attribute_values(":q", n(q))
                .expression_attribute_values(":orders", AttributeValue::Ss(vec![order_id.to_owned()]))
                .build()
                .map_err(build_err)?;
            items.push(TransactWriteItem::builder().update(customer).build());
        }
        // New per call (at most 36 characters): the SDK's own retries of this call reuse it, so a
        // release that committed but whose answer was lost is not applied twice.
        let token = ulid::Ulid::new().to_string();
        let count = items.len();
        let sent =
            self.client.transact_write_items().set_transact_items(Some(items)).client_request_token(token).send().await;
        match sent {
            Ok(_) => Ok(self.get_record(pk).await?.map_or(Change::Refused(None), Change::Done)),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
                    let reasons = e.cancellation_reasons();
                    let code = |i: usize| reasons.get(i).and_then(|r| r.code()).unwrap_or("None");
                    if code(0) == "ConditionalCheckFailed" {
                        let old = reasons[0].item().filter(|i| !i.is_empty()).cloned();
                        let old = old.map(PurchaseRecord::from_item).transpose();
                        return Ok(Change::Refused(old.map_err(|e| StoreError::Corrupt(format!("{pk}: {e}")))?));
                    }
                    if let Some(i) = (1..count).find(|&i| code(i) == "ConditionalCheckFailed") {
                        let what = match takes.get(i - 1) {
                            Some(t) => format!("{}: the shard of order {order_id} is missing", shard_pk(sale, t.shard)),
                            None => format!("{pk}: the customer item of order {order_id} is missing"),
                        };
                        return Err(StoreError::Corrupt(what));
                    }
                    if (0..count).any(|i| code(i) == "TransactionConflict") {
                        return Ok(Change::Conflict);
                    }
                    let codes: Vec<&str> = (0..count).map(code).collect();
                    Err(super::unexplained_cancellation(&format!("release of {order_id}"), &codes))
                }
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => Ok(Change::Conflict),
                _ => Err(err.into()),
            },
        }
    }

    /// Up to `per_lane` of the earliest-ending live holds of `sale` from each index partition,
    /// ended or not, earliest first per partition; and the entries that lack what a release
    /// needs, apart.
    pub(crate) async fn earliest_holds(
        &self,
        sale: &SaleId,
        per_lane: i32,
    ) -> Result<(Vec<Hold>, Vec<Malformed>), StoreError> {
        self.earliest_holds_in(sale, 0..crate::keys::HOLD_LANES, per_lane).await
    }

    /// [`Store::earliest_holds`] of some of the index partitions (`lanes`) only.
    pub(crate) async fn earliest_holds_in(
        &self,
        sale: &SaleId,
        lanes: impl IntoIterator<Item = u32>,
        per_lane: i32,
    ) -> Result<(Vec<Hold>, Vec<Malformed>), StoreError> {
        let mut holds = Vec::new();
        let mut malformed = Vec::new();
        for lane in lanes {
            let hold_key = crate::keys::hold_index_pk(sale.as_str(), lane);
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(HOLDS_INDEX)
                .key_condition_expression("holdKey = :k")
                .expression_attribute_values(":k", s(&hold_key))
                .limit(per_lane)
                .send()
                .await?;
            for item in out.items.unwrap_or_default() {
                let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
                let num = |k: &str| item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok());
                let shard = num("shard").and_then(|n| u32::try_from(n).ok());
                match (text("pk"), text("orderId"), shard, num("holdExpiresAt")) {
                    (Some(pk), Some(order_id), Some(shard), Some(at)) => holds.push(Hold {
                        pk,
                        order_id,
                        shard,
                        expires_at_ms: at,
                        hold_key: hold_key.clone(),
                        takes: None,
                        user_id: text("userId"),
                    }),
                    (pk, ..) => malformed.push(Malformed {
                        pk: pk.unwrap_or_default(),
                        hold_key: hold_key.clone(),
                        detail: format!("hold index entry without its attributes: {item:?}"),
                    }),
                }
            }
        }
        Ok((holds, malformed))
    }

    /// Counts a failed release on the hold's record (`releaseFailures`, with the error), if the
    /// record is still that hold in that index partition. Returns the count, or `None` when the
    /// record changed meanwhile.
    pub(crate) async fn note_release_failure(
        &self,
        pk: &str,
        hold_key: &str,
        error: &str,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk.to_owned(), PURCHASE_SK)))
            .condition_expression("holdKey = :lane")
            .update_expression("ADD releaseFailures :one SET lastReleaseError = :error, lastReleaseErrorAt = :now")
            .expression_attribute_values(":lane", s(hold_key))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":error", s(&error.chars().take(500).collect::<String>()))
            .expression_attribute_values(":now", n(now_ms))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match sent {
            Ok(out) => Ok(out
                .attributes
                .and_then(|a| a.get("releaseFailures").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()))),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(None),
                _ => Err(err.into()),
            },
        }
    }

    /// Sets a hold the sweeper cannot release aside until an operator looks: its `holdKey` moves
    /// from its lane to the sale's [`crate::keys::stuck_holds_pk`] (the sweeper no longer reads
    /// it; `flash-sale-admin stuck-holds` does). False when the record left that lane meanwhile.
    pub(crate) async fn set_hold_aside(
        &self,
        sale: &SaleId,
        pk: &str,
        hold_key: &str,
        error: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk.to_owned(), PURCHASE_SK)))
            .condition_expression("holdKey = :lane")
            .update_expression("SET holdKey = :stuck, stuckAt = :now, lastReleaseError = :error")
            .expression_attribute_values(":lane", s(hold_key))
            .expression_attribute_values(":stuck", s(&crate::keys::stuck_holds_pk(sale.as_str())))
            .expression_attribute_values(":error", s(&error.chars().take(500).collect::<String>()))
            .expression_attribute_values(":now", n(now_ms))
            .send()
            .await;
        applied(sent)
    }

    /// The holds of `sale` set aside by the sweeper, with why (an operator's view; bounded to
    /// 1,000).
    pub async fn stuck_holds(&self, sale: &SaleId) -> Result<Vec<StuckHold>, StoreError> {
        let mut keys = Vec::new();
        let mut start = None;
        for _ in 0..10 {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(HOLDS_INDEX)
                .key_condition_expression("holdKey = :k")
                .expression_attribute_values(":k", s(&crate::keys::stuck_holds_pk(sale.as_str())))
                .set_exclusive_start_key(start)
                .limit(100)
                .send()
                .await?;
            for item in out.items.unwrap_or_default() {
                if let Some(pk) = item.get("pk").and_then(|v| v.as_s().ok()) {
                    keys.push(key(pk.clone(), PURCHASE_SK));
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        let mut stuck: Vec<StuckHold> = self
            .batch_get(keys, true)
            .await?
            .into_iter()
            .map(|item| {
                let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
                let num = |k: &str| item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok());
                StuckHold {
                    pk: text("pk").unwrap_or_default(),
                    user_id: text("userId"),
                    order_id: text("orderId"),
                    status: text("status"),
                    hold_expires_at: num("holdExpiresAt"),
                    reason: text("lastReleaseError"),
                    release_failures: num("releaseFailures"),
                    stuck_at: num("stuckAt"),
                }
            })
            .collect();
        stuck.sort_by(|a, b| a.pk.cmp(&b.pk));
        Ok(stuck)
    }

    /// An operator's "look again": puts a hold set aside back in a lane of the `holds` index,
    /// its failure count cleared, so the next sweep tries it again. False when `pk` is not set
    /// aside (released, or never stuck).
    pub async fn return_stuck_hold(&self, sale: &SaleId, pk: &str) -> Result<bool, StoreError> {
        let lane = fastrand::u32(..crate::keys::HOLD_LANES);
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk.to_owned(), PURCHASE_SK)))
            .condition_expression("holdKey = :stuck")
            .update_expression(format!("SET holdKey = :lane REMOVE {RELEASE_FAILURE_ATTRIBUTES}"))
            .expression_attribute_values(":stuck", s(&crate::keys::stuck_holds_pk(sale.as_str())))
            .expression_attribute_values(":lane", s(&crate::keys::hold_index_pk(sale.as_str(), lane)))
            .send()
            .await;
        applied(sent)
    }
}
