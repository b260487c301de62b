//! An order as the API shows it, and its lifecycle.
//!
//! ```text
//!                 confirm (payment backend)
//!   ┌──────────┐ ─────────────────────────▶ ┌───────────┐
//!   │ reserved │                            │ confirmed │   (holdless sales start here)
//!   └──────────┘ ──cancel (buyer)──▶ cancelled
//!        └────────hold expired (sweeper, or a buyer finding no stock)──▶ expired
//! ```
//! `cancelled` and `expired` gave their item back to the shard it came from, in the same
//! transaction that changed the status; their buyer may buy again.

use serde::{Deserialize, Serialize};

/// Where an order stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Holds an item until `holdExpiresAt`, waiting for payment.
    Reserved,
    /// Final. Records written before holds existed have no status and are confirmed.
    #[default]
    Confirmed,
    /// The buyer gave the item back while it was reserved.
    Cancelled,
    /// The hold ran out; the item went back on sale.
    Expired,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 4] = [Self::Reserved, Self::Confirmed, Self::Cancelled, Self::Expired];

    /// Whether the order holds an item: a buyer with a live order cannot buy again.
    pub fn is_live(self) -> bool {
        matches!(self, Self::Reserved | Self::Confirmed)
    }

    /// The stored and shown spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Confirmed => "confirmed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The `detail-type` of the order event announcing this status.
    pub fn event_type(self) -> &'static str {
        match self {
            Self::Reserved => "OrderReserved",
            Self::Confirmed => "OrderConfirmed",
            Self::Cancelled => "OrderCancelled",
            Self::Expired => "OrderExpired",
        }
    }
}

/// An order (`POST /sales/{saleId}/purchases`, `GET|DELETE …/purchases/{userId}`,
/// `POST /sales/{saleId}/orders/{orderId}/confirm`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Purchase {
    pub sale_id: String,
    pub user_id: String,
    pub order_id: String,
    /// RFC 3339 UTC.
    pub purchased_at: String,
    pub status: OrderStatus,
    /// RFC 3339 UTC: until when a `reserved` order holds its item (also shown after it ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_expires_at: Option<String>,
    /// The variant bought, for a sale with variants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant_id: Option<String>,
    /// Items in the order, for a sale with variants or more than one item per customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u32>,
}

/// `GET /sales/{saleId}/purchases/{userId}`: the buyer's latest order and, in a sale with more
/// than one item per customer, every live order (newest first) and the items they hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseLookup {
    #[serde(flatten)]
    pub purchase: Purchase,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orders: Option<Vec<Purchase>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_only_reserved_and_confirmed_hold_an_item() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        let live: Vec<_> = OrderStatus::ALL.into_iter().filter(|s| s.is_live()).collect();
        assert_eq!(live, [OrderStatus::Reserved, OrderStatus::Confirmed]);
        assert_eq!(OrderStatus::parse("pending"), None);
    }
}
