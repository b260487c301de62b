//! What a use case answers when it does not succeed. These are domain outcomes; which HTTP
//! status, problem `code` and headers each one gets is decided in `http::problem` alone.

use crate::order::Purchase;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    #[error("no sale with this id")]
    SaleNotFound,
    #[error("this user has no purchase in this sale")]
    PurchaseNotFound,
    #[error("the sale has not started yet")]
    SaleNotStarted { starts_at_ms: i64 },
    #[error("the sale has ended")]
    SaleEnded,
    #[error("the sale is sold out")]
    SoldOut,
    #[error("this user already bought an item in this sale")]
    AlreadyPurchased(Box<Purchase>),
    /// DynamoDB is busy, the time budget ran out, or an outcome is not known yet. Nothing was
    /// decided that a retry could contradict: a retry is safe.
    #[error("the service is busy; retry shortly")]
    Busy,
    /// The sale has no waiting room.
    #[error("this sale has no waiting room")]
    NoWaitingRoom,
    /// The sale's room has no public beacon: its draw is checked with the operator's
    /// `verify-draw`, and no entrant list is published.
    #[error("this sale's draw is not a public one: it publishes no entrant list")]
    NoPublicDraw,
    #[error("no such page of the entrant list: the list is published once the draw is complete")]
    EntrantPageNotFound,
    #[error("this user is not in the sale's line")]
    NotInLine,
    #[error("the line opens later")]
    QueueNotOpen { opens_at_ms: i64 },
    #[error("this sale has a waiting room: join the line and buy with its admission token")]
    AdmissionRequired,
    #[error("{0}")]
    AdmissionInvalid(&'static str),
    #[error("this place in line is not admitted yet")]
    NotYetAdmitted,
    #[error("no order with this id in this sale")]
    OrderNotFound,
    #[error("the hold on this order has ended; its item went back on sale")]
    HoldExpired(Box<Purchase>),
    #[error("this order is confirmed and can no longer be cancelled")]
    OrderConfirmed(Box<Purchase>),
    #[error("this order was cancelled")]
    OrderCancelled(Box<Purchase>),
    #[error("quantity must be a whole number from 1 to {max} (the most one customer may hold in this sale)")]
    QuantityInvalid { max: u32 },
    #[error("no such variant in this sale; name one of its variants")]
    VariantUnknown { variants: Vec<String> },
    #[error("this variant is sold out")]
    VariantSoldOut { available: Vec<String> },
    #[error("fewer items of this variant are left than asked for")]
    NotEnoughStock { remaining: i64 },
    #[error("this customer already holds the most items one customer may hold in this sale")]
    LimitReached { held: i64, max: u32, orders: Vec<Purchase> },
    #[error("this Idempotency-Key was used for a purchase of another variant or quantity")]
    IdempotencyKeyReused(Box<Purchase>),
    /// Something that should not happen (an unreadable stored item): logged with its key, alarmed.
    #[error("internal error")]
    Internal,
}
