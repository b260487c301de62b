//! The table's key formats: the one place that spells them. The store builds every key here, the
//! benchmarks and the infra tests read them from here, and the IAM `dynamodb:LeadingKeys`
//! patterns of `infra/template.yaml` are tested against them.
//!
//! | item        | pk                          | sk         |
//! |-------------|-----------------------------|------------|
//! | sale        | `SALE#{saleId}`             | `META`     |
//! | stock shard | `SALE#{saleId}#STOCK#{n}`   | `STOCK`    |
//! | purchase    | `SALE#{saleId}#USER#{userId}` | `PURCHASE` |
//! | order (maxPerCustomer > 1) | `SALE#{saleId}#USER#{userId}#ORDER#{orderId}` | `PURCHASE` |
//! | customer (maxPerCustomer > 1) | `SALE#{saleId}#USER#{userId}` | `CUSTOMER` |
//! | key use (maxPerCustomer > 1) | `SALE#{saleId}#USER#{userId}` | `IDEM#{key}` |
//! | health probe| `HEALTH`                    | `HEALTH`   |
//!
//! Indexes: `sales` (`entity`, `startsAt`) lists sales; `orders` (`orderId`) finds an order's
//! record; `holds` (`holdKey` = [`hold_index_pk`], `holdExpiresAt`) lists a sale's live holds by
//! expiry, over [`HOLD_LANES`] index partitions so no one index partition takes every hold.
//!
//! Sale ids are `[A-Za-z0-9_-]`, so `#` separates the parts unambiguously up to the user id.

/// The sparse index over sale items (`entity` = "SALE", sorted by `startsAt`).
pub const SALES_INDEX: &str = "sales";
/// The index from an order id to its record (`orderId`, keys only).
pub const ORDERS_INDEX: &str = "orders";
/// The sparse index of live holds (`holdKey`, sorted by `holdExpiresAt`).
pub const HOLDS_INDEX: &str = "holds";
/// Attributes the `holds` index carries besides the keys: what releasing a hold needs.
pub(crate) const HOLDS_INDEX_ATTRIBUTES: [&str; 3] = ["orderId", "shard", "userId"];

/// Sort key of a sale's configuration item.
pub const SALE_SK: &str = "META";
/// Sort key of a stock shard.
pub const SHARD_SK: &str = "STOCK";
/// Sort key of a purchase record.
pub const PURCHASE_SK: &str = "PURCHASE";
/// Partition and sort key of the absent item the health check reads.
pub const HEALTH_PK: &str = "HEALTH";

/// Partition key of a sale's configuration item.
pub fn sale_pk(sale_id: &str) -> String {
    format!("SALE#{sale_id}")
}

/// Partition key of stock shard `shard` of a sale.
pub fn shard_pk(sale_id: &str, shard: u32) -> String {
    format!("SALE#{sale_id}#STOCK#{shard}")
}

/// Partition key of a user's purchase record in a sale.
pub fn purchase_pk(sale_id: &str, user_id: &str) -> String {
    format!("SALE#{sale_id}#USER#{user_id}")
}

/// Partition key of one order's record in a sale with `maxPerCustomer` > 1. The order id is a
/// server-made ULID (26 characters, no `#`), so the key reads unambiguously from its end.
pub fn order_pk(sale_id: &str, user_id: &str, order_id: &str) -> String {
    format!("SALE#{sale_id}#USER#{user_id}#ORDER#{order_id}")
}

/// Sort key of a customer's item (live count and live orders) in a sale with `maxPerCustomer` > 1
/// (`pk` = [`purchase_pk`]).
pub const CUSTOMER_SK: &str = "CUSTOMER";

/// Sort key of what an `Idempotency-Key` was used for (`pk` = [`purchase_pk`]).
pub fn key_use_sk(key: &str) -> String {
    format!("IDEM#{key}")
}

/// Sort key of a sale's waiting-room state (`pk` = [`sale_pk`]).
pub const ROOM_SK: &str = "ROOM";
/// Sort key of a sale's secret draw seed (`pk` = [`sale_pk`]); the status shows it after opening.
pub(crate) const DRAW_SK: &str = "DRAW";
/// Sort key of the counter of places issued after opening (`pk` = [`places_pk`]).
pub(crate) const PLACES_SK: &str = "PLACES";
/// Sort key of a pre-queue lane's counter (`pk` = [`lane_pk`]).
pub(crate) const LANE_COUNT_SK: &str = "COUNT";
/// Sort key of a person's place in the line (`pk` = [`queue_pk`]).
pub const QUEUE_SK: &str = "QUEUE";

/// Partition key of the counter of places issued after opening.
pub fn places_pk(sale_id: &str) -> String {
    format!("SALE#{sale_id}#PLACES")
}

/// Partition key of pre-queue lane `lane`: its counter and one marker per entrant.
pub fn lane_pk(sale_id: &str, lane: u32) -> String {
    format!("SALE#{sale_id}#PRE#{lane}")
}

/// Sort key of an entrant's marker in a pre-queue lane.
pub(crate) fn lane_entrant_sk(user_id: &str) -> String {
    format!("U#{user_id}")
}

/// Partition key of a person's place in a sale's line.
pub fn queue_pk(sale_id: &str, user_id: &str) -> String {
    format!("SALE#{sale_id}#QUEUE#{user_id}")
}

/// Partition key of a drawn pre-queue's published entrant list: one item per page of
/// [`ENTRANTS_PER_PAGE`] ids in place order (`sk` = [`entrant_page_sk`]).
pub fn entrants_pk(sale_id: &str) -> String {
    format!("SALE#{sale_id}#ENTRANTS")
}

/// Sort key of page `page` (from 0) of a published entrant list.
pub fn entrant_page_sk(page: u32) -> String {
    format!("PAGE#{page:06}")
}

/// Entrant ids per published page: 10,000 × 32 bytes, well inside an item's 400 KB, and about
/// 680 KB of JSON per answer.
pub const ENTRANTS_PER_PAGE: usize = 10_000;

/// Index partitions a sale's live holds are spread over (`holdKey`): each takes ~1,000 writes/s,
/// so holds can be created and released at ~8,000/s per sale before one partition throttles.
pub const HOLD_LANES: u32 = 8;

/// `holdKey` of a reserved order: the partition of the `holds` index it is listed in. Removed
/// when the order leaves `reserved`, which takes it out of the (sparse) index.
pub fn hold_index_pk(sale_id: &str, lane: u32) -> String {
    format!("SALE#{sale_id}#HOLDS#{lane}")
}

/// The lane of a `holds` index partition key made by [`hold_index_pk`].
pub fn hold_lane(hold_key: &str) -> Option<u32> {
    hold_key.rsplit_once("#HOLDS#").and_then(|(_, lane)| lane.parse().ok())
}

/// `holdKey` of a hold the sweeper set aside (its release kept failing): the sale's own `holds`
/// partition, which the sweeper does not read and an operator lists (`flash-sale-admin stuck-holds`).
pub fn stuck_holds_pk(sale_id: &str) -> String {
    format!("SALE#{sale_id}#HOLDS#STUCK")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_partition_key_gives_back_its_lane() {
        for lane in [0, 1, HOLD_LANES - 1] {
            assert_eq!(hold_lane(&hold_index_pk("drop-1", lane)), Some(lane));
        }
        assert_eq!(hold_lane(&stuck_holds_pk("drop-1")), None);
        assert_eq!(hold_lane("SALE#drop-1#STOCK#3"), None);
    }
}
