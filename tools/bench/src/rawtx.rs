//! The purchase transaction written out by hand with the plain SDK: the same two items, the same
//! expressions and options as the store's purchase transaction (`shared/src/store/purchase_tx.rs`)
//! and the keys of `flash_sale::keys`, so DynamoDB does the same work. Used as the baseline
//! (inprocess), the SDK-only cost (cpu) and for capacity figures.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::{TransactWriteItemsError, TransactWriteItemsOutput};
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use flash_sale::keys;

pub type Item = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A table key.
pub fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// The purchase item as `PurchaseRecord` stores it (without an idempotency key).
pub fn purchase_item(sale: &str, user: &str, order_id: &str, now_ms: i64, shard: u32) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(keys::purchase_pk(sale, user))),
        ("sk".to_owned(), s(keys::PURCHASE_SK)),
        ("saleId".to_owned(), s(sale)),
        ("userId".to_owned(), s(user)),
        ("orderId".to_owned(), s(order_id)),
        ("purchasedAt".to_owned(), n(now_ms)),
        ("shard".to_owned(), n(shard)),
    ])
}

/// The two transaction items of a purchase.
pub fn items(table: &str, sale: &str, shard: u32, purchase: Item, now_ms: i64) -> [TransactWriteItem; 2] {
    let take_one = Update::builder()
        .table_name(table)
        .set_key(Some(key(keys::shard_pk(sale, shard), keys::SHARD_SK)))
        .update_expression("SET remaining = remaining - :one")
        .condition_expression("remaining > :zero AND startsAt <= :now AND endsAt > :now")
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":zero", n(0))
        .expression_attribute_values(":now", n(now_ms))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .expect("update has key, table and expression");
    let insert = Put::builder()
        .table_name(table)
        .set_item(Some(purchase))
        .condition_expression("attribute_not_exists(pk)")
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .expect("put has table and item");
    [TransactWriteItem::builder().update(take_one).build(), TransactWriteItem::builder().put(insert).build()]
}

/// One purchase transaction for `user`, built and sent the way the store does it.
#[allow(clippy::too_many_arguments)]
pub async fn purchase(
    client: &Client,
    table: &str,
    sale: &str,
    shard: u32,
    user: &str,
    now_ms: i64,
    capacity: bool,
) -> Result<TransactWriteItemsOutput, aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError>> {
    let order_id = ulid::Ulid::new().to_string();
    let token = format!("{order_id}-{shard}-0");
    let [a, b] = items(table, sale, shard, purchase_item(sale, user, &order_id, now_ms, shard), now_ms);
    let mut call = client.transact_write_items().transact_items(a).transact_items(b).client_request_token(token);
    if capacity {
        call = call.return_consumed_capacity(ReturnConsumedCapacity::Total);
    }
    call.send().await
}
