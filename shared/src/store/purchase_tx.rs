//! The purchase transaction, the atomic step the whole product stands on, and what DynamoDB's
//! answer to it means.
//!
//! One `TransactWriteItems` with two items, in this order:
//! 0. Update the stock shard: `remaining - 1` if `remaining > 0` and the window is open at `now`;
//! 1. Write the buyer's record (a new order, its version continuing from the record's) if the
//!    buyer has no live order (`reserved` or `confirmed`) in this sale, and the record does not
//!    already hold this order (an earlier attempt of the same purchase that committed).
//!
//! Both or neither. Failed conditions return the old items (`ALL_OLD`), which is how a
//! cancellation is read back into an [`Attempt`] verdict here, next to the item order it depends on.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::items::{CustomerItem, Item, KeyItem, PurchaseRecord, ShardItem, Take};
use super::{SHARD_SK, Store, StoreError, key, shard_pk};
use crate::keys::CUSTOMER_SK;
use crate::order::OrderStatus;
use crate::sale::{Sale, Window, window_at};

const SHARD_ITEM: usize = 0;
const PURCHASE_ITEM: usize = 1;

/// What one purchase transaction on one shard came to.
#[derive(Debug, Clone, PartialEq, Eq)]
// Public only with the `test-util` feature (`Store::transact_purchase`).
#[cfg_attr(not(feature = "test-util"), allow(unreachable_pub))]
pub enum Attempt {
    Committed,
    /// The buyer already has a record in this sale (it may be this request's own, committed by
    /// an earlier attempt whose answer was lost).
    AlreadyPurchased(Box<PurchaseRecord>),
    /// This shard is empty: try the next one.
    ShardEmpty,
    /// A shard of a several-item take held fewer than planned: plan again.
    Short,
    /// The customer holds too many items for this purchase (`maxPerCustomer` > 1).
    LimitReached(crate::store::items::CustomerItem),
    /// The `Idempotency-Key` was used for this order (a retry) or another one.
    KeyUsed(KeyItem),
    NotStarted,
    Ended,
    /// The shard item does not exist: the sale was deleted under us.
    ShardMissing,
    /// A concurrent transaction touched one of the items: retry after a short jittered pause.
    Conflict,
    /// DynamoDB is throttling this shard: try another (the caller bounds how many).
    Throttled,
    /// A stored item that does not parse; carries its key for the log.
    Unreadable(String),
    /// A cancellation this code does not know (nothing was written): an internal error.
    Unknown(String),
}

/// One entry of `CancellationReasons`, in transaction item order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CancelReason {
    None,
    /// The condition failed; carries the old item when DynamoDB returned one.
    ConditionFailed(Option<OldItem>),
    Conflict,
    Throttled,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OldItem {
    Shard {
        remaining: i64,
        starts_at_ms: i64,
        ends_at_ms: i64,
    },
    Purchase(Box<PurchaseRecord>),
    Customer(super::items::CustomerItem),
    KeyUse(KeyItem),
    /// Present but not readable as the item kind at that position.
    Unreadable(String),
}

impl Store {
    /// Takes an item from `shard` if it has stock and `now_ms` is inside the sale window, and
    /// inserts `record` if the buyer has none in this sale yet; both or neither.
    ///
    /// `token` is the `ClientRequestToken`: the SDK's own retries of this call reuse it, so a
    /// transaction that committed but whose response was lost is not applied twice. The SDK's
    /// standard retry applies, with its process-wide retry quota: under a throttling storm a
    /// warm container stops retrying instead of multiplying the load on the table.
    pub(crate) async fn try_purchase(
        &self,
        sale: &Sale,
        shard: u32,
        record: &PurchaseRecord,
        now_ms: i64,
        token: &str,
    ) -> Result<Attempt, StoreError> {
        self.try_purchase_takes(sale, &[Take { shard, n: 1 }], record, now_ms, token).await
    }

    /// The purchase transaction for `record` taking `takes` (see the module documentation): the
    /// shards, the order record, and with `maxPerCustomer` > 1 the customer's item and the
    /// `Idempotency-Key`'s, all or nothing.
    pub(crate) async fn try_purchase_takes(
        &self,
        sale: &Sale,
        takes: &[Take],
        record: &PurchaseRecord,
        now_ms: i64,
        token: &str,
    ) -> Result<Attempt, StoreError> {
        let now = AttributeValue::N(now_ms.to_string());
        let mut items = Vec::with_capacity(takes.len() + 3);
        for take in takes {
            let mut update =
                Update::builder().table_name(&self.table).set_key(Some(key(shard_pk(&sale.id, take.shard), SHARD_SK)));
            update = if take.n == 1 && sale.keeps_roster() {
                update
                    .update_expression("SET remaining = remaining - :one ADD buyers :buyer")
                    .condition_expression("remaining > :zero AND startsAt <= :now AND endsAt > :now")
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                    .expression_attribute_values(":buyer", AttributeValue::Ss(vec![record.user_id.clone()]))
            } else if take.n == 1 {
                update
                    .update_expression("SET remaining = remaining - :one")
                    .condition_expression("remaining > :zero AND startsAt <= :now AND endsAt > :now")
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            } else {
                update
                    .update_expression("SET remaining = remaining - :n")
                    .condition_expression("remaining >= :n AND startsAt <= :now AND endsAt > :now")
                    .expression_attribute_values(":n", AttributeValue::N(take.n.to_string()))
            };
            let update = update
                .expression_attribute_values(":now", now.clone())
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .build()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        // The whole record, written over an ended order if there is one, its version continuing
        // from that order's: versions of a record only grow.
        let (set_all, names, values) = record.new_order_update()?;
        let several = sale.max_per_customer > 1;
        let insert = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(record.pk.clone(), &record.sk)))
            .update_expression(set_all)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let insert = if several {
            // A record of its own per order: it exists only if this very purchase committed.
            insert.condition_expression("attribute_not_exists(pk)")
        } else {
            // No record, or one whose order gave its item back: a buyer may buy again then, with
            // another order. A record holding this very order id means an earlier attempt of this
            // purchase committed (its answer was lost): never written twice as a new order, even
            // after it ended; the failed condition returns it, and the purchase answers with it.
            insert
                .condition_expression(
                    "attribute_not_exists(pk) OR (#status IN (:cancelled, :expired) AND #orderId <> :order)",
                )
                .expression_attribute_names("#status", "status")
                .expression_attribute_names("#orderId", "orderId")
                .expression_attribute_values(":cancelled", AttributeValue::S(OrderStatus::Cancelled.as_str().into()))
                .expression_attribute_values(":expired", AttributeValue::S(OrderStatus::Expired.as_str().into()))
                .expression_attribute_values(":order", AttributeValue::S(record.order_id.clone()))
        };
        let insert = insert.build().map_err(|e| StoreError::Unavailable(e.to_string()))?;
        items.push(TransactWriteItem::builder().update(insert).build());
        let customer_pk = crate::keys::purchase_pk(&record.sale_id, &record.user_id);
        if several {
            let q = i64::from(record.items());
            let room = i64::from(sale.max_per_customer) - q;
            let customer = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(customer_pk.clone(), CUSTOMER_SK)))
                .update_expression("SET live = if_not_exists(live, :zero) + :q, lastOrder = :order ADD orders :orders")
                .condition_expression("attribute_not_exists(live) OR live <= :room")
                .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                .expression_attribute_values(":q", AttributeValue::N(q.to_string()))
                .expression_attribute_values(":room", AttributeValue::N(room.to_string()))
                .expression_attribute_values(":order", AttributeValue::S(record.order_id.clone()))
                .expression_attribute_values(":orders", AttributeValue::Ss(vec![record.order_id.clone()]))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .build()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            items.push(TransactWriteItem::builder().update(customer).build());
            if let Some(k) = &record.idempotency_key {
                let mut used = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(customer_pk.clone(), &crate::keys::key_use_sk(k))))
                    .update_expression("SET forOrder = :order, quantity = :q")
                    .condition_expression("attribute_not_exists(pk) OR forOrder = :order")
                    .expression_attribute_values(":order", AttributeValue::S(record.order_id.clone()))
                    .expression_attribute_values(":q", AttributeValue::N(q.to_string()))
                    .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
                if let Some(v) = &record.variant_id {
                    used = used
                        .update_expression("SET forOrder = :order, quantity = :q, variantId = :v")
                        .expression_attribute_values(":v", AttributeValue::S(v.clone()));
                }
                let used = used.build().map_err(|e| StoreError::Unavailable(e.to_string()))?;
                items.push(TransactWriteItem::builder().update(used).build());
            }
        }
        let layout =
            Layout { shards: takes.to_vec(), customer: several, key_use: several && record.idempotency_key.is_some() };

        let sent =
            self.client.transact_write_items().set_transact_items(Some(items)).client_request_token(token).send().await;
        match sent {
            Ok(_) => Ok(Attempt::Committed),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
                    let reasons: Vec<CancelReason> = e
                        .cancellation_reasons()
                        .iter()
                        .enumerate()
                        .map(|(i, r)| cancel_reason(layout.kind(i), r))
                        .collect();
                    Ok(layout.classify(&reasons, now_ms))
                }
                // The same token is still being processed: the attempt's fate is unknown for now.
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => Ok(Attempt::Conflict),
                _ => Err(err.into()),
            },
        }
    }
}

/// Which item of a purchase transaction sits where.
struct Layout {
    shards: Vec<Take>,
    customer: bool,
    key_use: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Shard,
    Purchase,
    Customer,
    KeyUse,
}

impl Layout {
    fn kind(&self, index: usize) -> Kind {
        let k = self.shards.len();
        match index {
            i if i < k => Kind::Shard,
            i if i == k => Kind::Purchase,
            i if i == k + 1 && self.customer => Kind::Customer,
            _ if self.key_use => Kind::KeyUse,
            _ => Kind::Purchase,
        }
    }

    fn classify(&self, reasons: &[CancelReason], now_ms: i64) -> Attempt {
        let k = self.shards.len();
        let at = |i: usize| reasons.get(i).unwrap_or(&CancelReason::None);
        if k == 1 && !self.customer && self.shards[0].n == 1 {
            return classify(&[at(0).clone(), at(1).clone()], now_ms);
        }
        if let CancelReason::ConditionFailed(old) = at(k) {
            return match old {
                Some(OldItem::Purchase(p)) => Attempt::AlreadyPurchased(p.clone()),
                Some(OldItem::Unreadable(pk)) => Attempt::Unreadable(pk.clone()),
                _ => Attempt::Unknown("purchase condition failed without the existing purchase".into()),
            };
        }
        if self.key_use
            && let CancelReason::ConditionFailed(old) = at(k + 2)
        {
            return match old {
                Some(OldItem::KeyUse(used)) => Attempt::KeyUsed(used.clone()),
                Some(OldItem::Unreadable(pk)) => Attempt::Unreadable(pk.clone()),
                _ => Attempt::Unknown("key condition failed without the key's item".into()),
            };
        }
        if self.customer
            && let CancelReason::ConditionFailed(old) = at(k + 1)
        {
            return match old {
                Some(OldItem::Customer(c)) => Attempt::LimitReached(c.clone()),
                Some(OldItem::Unreadable(pk)) => Attempt::Unreadable(pk.clone()),
                _ => Attempt::Unknown("customer condition failed without the customer's item".into()),
            };
        }
        if reasons.contains(&CancelReason::Conflict) {
            return Attempt::Conflict;
        }
        if reasons.contains(&CancelReason::Throttled) {
            return Attempt::Throttled;
        }
        let mut short = false;
        for (i, take) in self.shards.iter().enumerate() {
            match at(i) {
                CancelReason::ConditionFailed(Some(OldItem::Shard { remaining, starts_at_ms, ends_at_ms })) => {
                    match window_at(*starts_at_ms, *ends_at_ms, now_ms) {
                        Window::NotStarted => return Attempt::NotStarted,
                        Window::Ended => return Attempt::Ended,
                        Window::Open if *remaining < take.n => short = true,
                        Window::Open => {
                            return Attempt::Unknown("shard condition failed with stock left inside the window".into());
                        }
                    }
                }
                CancelReason::ConditionFailed(None) => return Attempt::ShardMissing,
                CancelReason::ConditionFailed(Some(OldItem::Unreadable(pk))) => return Attempt::Unreadable(pk.clone()),
                CancelReason::ConditionFailed(Some(_)) => {
                    return Attempt::Unknown("shard returned another item".into());
                }
                CancelReason::Other(code) => return Attempt::Unknown(code.clone()),
                _ => {}
            }
        }
        if short {
            return if k == 1 && self.shards[0].n == 1 { Attempt::ShardEmpty } else { Attempt::Short };
        }
        match reasons.iter().find_map(|r| if let CancelReason::Other(c) = r { Some(c.clone()) } else { None }) {
            Some(code) => Attempt::Unknown(code),
            None => Attempt::Unknown("transaction cancelled without a reason".into()),
        }
    }
}

#[cfg(feature = "test-util")]
impl Store {
    /// Test hook: one purchase transaction on its own, as the purchase use case sends it.
    pub async fn transact_purchase(
        &self,
        sale: &Sale,
        shard: u32,
        record: &PurchaseRecord,
        now_ms: i64,
        token: &str,
    ) -> Result<Attempt, StoreError> {
        self.try_purchase(sale, shard, record, now_ms, token).await
    }
}

fn cancel_reason(kind: Kind, reason: &CancellationReason) -> CancelReason {
    match reason.code().unwrap_or("None") {
        "None" => CancelReason::None,
        "ConditionalCheckFailed" => CancelReason::ConditionFailed(reason.item().and_then(|item| old_item(kind, item))),
        "TransactionConflict" => CancelReason::Conflict,
        "ThrottlingError" | "ProvisionedThroughputExceeded" | "RequestLimitExceeded" => CancelReason::Throttled,
        other => CancelReason::Other(other.to_owned()),
    }
}

fn old_item(kind: Kind, item: &Item) -> Option<OldItem> {
    if item.is_empty() {
        return None;
    }
    let pk = || item.get("pk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_else(|| "(no pk)".into());
    Some(match kind {
        Kind::Shard => match ShardItem::from_item(item.clone()) {
            Ok(s) => OldItem::Shard { remaining: s.remaining, starts_at_ms: s.starts_at, ends_at_ms: s.ends_at },
            Err(_) => OldItem::Unreadable(pk()),
        },
        Kind::Purchase => match PurchaseRecord::from_item(item.clone()) {
            Ok(p) => OldItem::Purchase(Box::new(p)),
            Err(_) => OldItem::Unreadable(pk()),
        },
        Kind::Customer => OldItem::Customer(CustomerItem::from_item(item)),
        Kind::KeyUse => match KeyItem::from_item(item) {
            Some(k) => OldItem::KeyUse(k),
            None => OldItem::Unreadable(pk()),
        },
    })
}

/// What a cancelled purchase transaction means.
///
/// A failed purchase condition wins over everything: the buyer already has an item, whatever the
/// shard said. Then the shard's old item says why its condition failed, judged by the same `now`
/// that went into the condition.
fn classify(reasons: &[CancelReason], now_ms: i64) -> Attempt {
    let shard = reasons.get(SHARD_ITEM).unwrap_or(&CancelReason::None);
    let purchase = reasons.get(PURCHASE_ITEM).unwrap_or(&CancelReason::None);

    if let CancelReason::ConditionFailed(old) = purchase {
        return match old {
            Some(OldItem::Purchase(p)) => Attempt::AlreadyPurchased(p.clone()),
            Some(OldItem::Unreadable(pk)) => Attempt::Unreadable(pk.clone()),
            _ => Attempt::Unknown("purchase condition failed without the existing purchase".into()),
        };
    }
    if reasons.contains(&CancelReason::Conflict) {
        return Attempt::Conflict;
    }
    if reasons.contains(&CancelReason::Throttled) {
        return Attempt::Throttled;
    }
    match shard {
        CancelReason::ConditionFailed(Some(OldItem::Shard { remaining, starts_at_ms, ends_at_ms })) => {
            match window_at(*starts_at_ms, *ends_at_ms, now_ms) {
                Window::NotStarted => Attempt::NotStarted,
                Window::Ended => Attempt::Ended,
                Window::Open if *remaining <= 0 => Attempt::ShardEmpty,
                Window::Open => Attempt::Unknown("shard condition failed with stock left inside the window".into()),
            }
        }
        CancelReason::ConditionFailed(None) => Attempt::ShardMissing,
        CancelReason::ConditionFailed(Some(OldItem::Unreadable(pk))) => Attempt::Unreadable(pk.clone()),
        CancelReason::ConditionFailed(Some(_)) => Attempt::Unknown("shard returned a purchase item".into()),
        CancelReason::Other(code) => Attempt::Unknown(code.clone()),
        _ => match purchase {
            CancelReason::Other(code) => Attempt::Unknown(code.clone()),
            _ => Attempt::Unknown("transaction cancelled without a reason".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Attempt as A;
    use CancelReason as R;

    fn shard(remaining: i64) -> R {
        R::ConditionFailed(Some(OldItem::Shard { remaining, starts_at_ms: 100, ends_at_ms: 200 }))
    }

    fn existing() -> Box<PurchaseRecord> {
        let sale = crate::ids::SaleId::parse("s").unwrap();
        let user = crate::ids::UserId::parse("u").unwrap();
        Box::new(PurchaseRecord::new(&sale, &user, "o".into(), 150, 0, None))
    }

    #[test]
    fn an_existing_purchase_wins_over_every_shard_reason() {
        let old = R::ConditionFailed(Some(OldItem::Purchase(existing())));
        for s in [R::None, shard(0), shard(5), R::Conflict] {
            assert_eq!(classify(&[s, old.clone()], 150), A::AlreadyPurchased(existing()));
        }
    }

    #[test]
    fn the_shard_item_says_why_it_refused() {
        assert_eq!(classify(&[shard(0), R::None], 150), A::ShardEmpty);
        assert_eq!(classify(&[shard(3), R::None], 99), A::NotStarted);
        assert_eq!(classify(&[shard(3), R::None], 200), A::Ended);
        assert_eq!(classify(&[shard(0), R::None], 200), A::Ended);
        assert_eq!(classify(&[R::ConditionFailed(None), R::None], 150), A::ShardMissing);
        assert!(matches!(classify(&[shard(3), R::None], 150), A::Unknown(_)));
    }

    #[test]
    fn unreadable_items_are_reported_with_their_key_not_as_missing_or_busy() {
        let bad = |pk: &str| R::ConditionFailed(Some(OldItem::Unreadable(pk.into())));
        assert_eq!(classify(&[bad("SALE#s#STOCK#0"), R::None], 150), A::Unreadable("SALE#s#STOCK#0".into()));
        assert_eq!(classify(&[R::None, bad("SALE#s#USER#u")], 150), A::Unreadable("SALE#s#USER#u".into()));
    }

    #[test]
    fn conflicts_and_throttles_are_retryable_or_busy() {
        assert_eq!(classify(&[R::Conflict, R::None], 150), A::Conflict);
        assert_eq!(classify(&[R::None, R::Conflict], 150), A::Conflict);
        assert_eq!(classify(&[R::Throttled, R::None], 150), A::Throttled);
        assert!(matches!(classify(&[R::Other("ValidationError".into()), R::None], 150), A::Unknown(_)));
        assert!(matches!(classify(&[], 150), A::Unknown(_)));
    }
}
