//! The purchase transaction: the atomic step the whole product stands on.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::items::{PurchaseRecord, ShardItem};
use super::{SHARD_SK, Store, StoreError, key, shard_pk};
use crate::purchase::{CancelReason, OldItem, PURCHASE_ITEM, SHARD_ITEM};
use crate::sale::Sale;

/// How DynamoDB answered one purchase transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxOutcome {
    Committed,
    /// Cancelled; one reason per transaction item, in item order.
    Cancelled(Vec<CancelReason>),
}

impl Store {
    /// One `TransactWriteItems`: take an item from `shard` if it has stock and `now_ms` is inside
    /// the sale window, and insert `record` if the user has no purchase in this sale yet. Both or
    /// neither. Failed conditions return the old items (`ALL_OLD`) so the caller can tell why.
    ///
    /// `token` is the `ClientRequestToken`: the SDK's own retries of this call reuse it, so a
    /// transaction that committed but whose response was lost is not applied twice.
    pub async fn try_purchase(
        &self,
        sale: &Sale,
        shard: u32,
        record: &PurchaseRecord,
        now_ms: i64,
        token: &str,
    ) -> Result<TxOutcome, StoreError> {
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
        let insert = Put::builder()
            .table_name(&self.table)
            .set_item(Some(record.to_item()?))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;

        let sent = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(take_one).build())
            .transact_items(TransactWriteItem::builder().put(insert).build())
            .client_request_token(token)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(TxOutcome::Committed),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(e)) => Ok(TxOutcome::Cancelled(
                    e.cancellation_reasons().iter().enumerate().map(|(i, r)| cancel_reason(i, r)).collect(),
                )),
                // The same token is still being processed: the attempt's fate is unknown for now.
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => {
                    Ok(TxOutcome::Cancelled(vec![CancelReason::Conflict, CancelReason::None]))
                }
                _ => Err(err.into()),
            },
        }
    }
}

fn cancel_reason(index: usize, reason: &CancellationReason) -> CancelReason {
    match reason.code().unwrap_or("None") {
        "None" => CancelReason::None,
        "ConditionalCheckFailed" => CancelReason::ConditionFailed(reason.item().and_then(|item| old_item(index, item.clone()))),
        "TransactionConflict" => CancelReason::Conflict,
        "ThrottlingError" | "ProvisionedThroughputExceeded" | "RequestLimitExceeded" => CancelReason::Throttled,
        other => CancelReason::Other(other.to_owned()),
    }
}

fn old_item(index: usize, item: super::items::Item) -> Option<OldItem> {
    if item.is_empty() {
        return None;
    }
    match index {
        SHARD_ITEM => ShardItem::from_item(item).ok().map(|s| OldItem::Shard(s.snapshot())),
        PURCHASE_ITEM => PurchaseRecord::from_item(item).ok().map(|p| OldItem::Purchase(p.to_purchase())),
        _ => None,
    }
}
