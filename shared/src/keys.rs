//! The table's key formats: the one place that spells them. The store builds every key here, the
//! benchmarks and the infra tests read them from here, and the IAM `dynamodb:LeadingKeys`
//! patterns of `infra/template.yaml` are tested against them.
//!
//! | item        | pk                          | sk         |
//! |-------------|-----------------------------|------------|
//! | sale        | `SALE#{saleId}`             | `META`     |
//! | stock shard | `SALE#{saleId}#STOCK#{n}`   | `STOCK`    |
//! | purchase    | `SALE#{saleId}#USER#{userId}` | `PURCHASE` |
//! | health probe| `HEALTH`                    | `HEALTH`   |
//!
//! Sale ids are `[A-Za-z0-9_-]`, so `#` separates the parts unambiguously up to the user id.

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
