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

use super::items::{Item, PurchaseRecord, ShardItem};
use super::{SHARD_SK, Store, StoreError, key, shard_pk};
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
        let now = AttributeValue::N(now_ms.to_string());
        let take_one = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(shard_pk(&sale.id, shard), SHARD_SK)))
            .update_expression("SET remaining = remaining - :one")
            .condition_expression("remaining > :zero AND startsAt <= :now AND endsAt > :now")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":now", now)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        // The whole record, written over an ended order if there is one, its version continuing
        // from that order's: versions of a record only grow.
        let (set_all, names, values) = record.new_order_update()?;
        let insert = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(record.pk.clone(), &record.sk)))
            .update_expression(set_all)
            // No record, or one whose order gave its item back: a buyer may buy again then, with
            // another order. A record holding this very order id means an earlier attempt of this
            // purchase committed (its answer was lost): never written twice as a new order, even
            // after it ended; the failed condition returns it, and the purchase answers with it.
            .condition_expression(
                "attribute_not_exists(pk) OR (#status IN (:cancelled, :expired) AND #orderId <> :order)",
            )
            .set_expression_attribute_names(Some(names))
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#orderId", "orderId")
            .set_expression_attribute_values(Some(values))
            .expression_attribute_values(":cancelled", AttributeValue::S(OrderStatus::Cancelled.as_str().into()))
            .expression_attribute_values(":expired", AttributeValue::S(OrderStatus::Expired.as_str().into()))
            .expression_attribute_values(":order", AttributeValue::S(record.order_id.clone()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let mut items = [None, None];
        items[SHARD_ITEM] = Some(TransactWriteItem::builder().update(take_one).build());
        items[PURCHASE_ITEM] = Some(TransactWriteItem::builder().update(insert).build());

        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items.into_iter().flatten().collect()))
            .client_request_token(token)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(Attempt::Committed),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
                    let reasons: Vec<CancelReason> =
                        e.cancellation_reasons().iter().enumerate().map(|(i, r)| cancel_reason(i, r)).collect();
                    Ok(classify(&reasons, now_ms))
                }
                // The same token is still being processed: the attempt's fate is unknown for now.
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => Ok(Attempt::Conflict),
                _ => Err(err.into()),
            },
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

fn cancel_reason(index: usize, reason: &CancellationReason) -> CancelReason {
    match reason.code().unwrap_or("None") {
        "None" => CancelReason::None,
        "ConditionalCheckFailed" => CancelReason::ConditionFailed(reason.item().and_then(|item| old_item(index, item))),
        "TransactionConflict" => CancelReason::Conflict,
        "ThrottlingError" | "ProvisionedThroughputExceeded" | "RequestLimitExceeded" => CancelReason::Throttled,
        other => CancelReason::Other(other.to_owned()),
    }
}

fn old_item(index: usize, item: &Item) -> Option<OldItem> {
    if item.is_empty() {
        return None;
    }
    let pk = || item.get("pk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_else(|| "(no pk)".into());
    Some(match index {
        SHARD_ITEM => match ShardItem::from_item(item.clone()) {
            Ok(s) => OldItem::Shard { remaining: s.remaining, starts_at_ms: s.starts_at, ends_at_ms: s.ends_at },
            Err(_) => OldItem::Unreadable(pk()),
        },
        PURCHASE_ITEM => match PurchaseRecord::from_item(item.clone()) {
            Ok(p) => OldItem::Purchase(Box::new(p)),
            Err(_) => OldItem::Unreadable(pk()),
        },
        _ => OldItem::Unreadable(pk()),
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
        CancelReason::ConditionFailed(Some(OldItem::Purchase(_))) => {
            Attempt::Unknown("shard returned a purchase item".into())
        }
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
