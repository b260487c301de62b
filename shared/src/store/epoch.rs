//! A sale's reset epoch: `resetEpoch` on the sale item, absent = 0. Even: no reset under way; odd:
//! a reset is giving items back. Only `reset-sale` moves it; the purchase path reads it (strongly
//! consistent) to know whether what a container remembers about a sold-out sale still holds (see
//! `stock_hint`).

use aws_sdk_dynamodb::types::AttributeValue;

use super::{SALE_SK, Store, StoreError, applied, key, sale_pk};
use crate::ids::SaleId;

/// How long a container trusts a sale's reset epoch after starting to read it (`stock_hint`).
/// `reset-sale` waits this long (and a margin) between announcing a reset and giving items back.
pub const EPOCH_LEASE: std::time::Duration = std::time::Duration::from_secs(1);

/// The attribute on the sale item.
pub(crate) const RESET_EPOCH: &str = "resetEpoch";

impl Store {
    /// The sale's reset epoch as of now (one strongly consistent read of one attribute); `None`
    /// when the sale does not exist.
    pub(crate) async fn reset_epoch(&self, sale: &SaleId) -> Result<Option<u64>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(sale_pk(sale), SALE_SK)))
            .projection_expression("pk, #e")
            .expression_attribute_names("#e", RESET_EPOCH)
            .consistent_read(true)
            .send()
            .await?;
        let Some(item) = out.item else { return Ok(None) };
        Ok(Some(item.get(RESET_EPOCH).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0)))
    }

    /// Moves the epoch from `from` to `from + 1` if it is still `from`; `false` if it was not
    /// (another reset moved it).
    pub(crate) async fn advance_reset_epoch(&self, sale: &SaleId, from: u64) -> Result<bool, StoreError> {
        // An absent epoch is 0.
        let condition =
            if from == 0 { "attribute_exists(pk) AND (attribute_not_exists(#e) OR #e = :from)" } else { "#e = :from" };
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(sale_pk(sale), SALE_SK)))
            .update_expression("SET #e = :next")
            .condition_expression(condition)
            .expression_attribute_names("#e", RESET_EPOCH)
            .expression_attribute_values(":next", AttributeValue::N((from + 1).to_string()))
            .expression_attribute_values(":from", AttributeValue::N(from.to_string()))
            .send()
            .await;
        applied(sent)
    }
}
