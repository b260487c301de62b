//! A purchase and what DynamoDB's answer to the purchase transaction means. Pure: the store turns
//! SDK errors into [`CancelReason`]s, this module decides.

use serde::{Deserialize, Serialize};

use crate::sale::{Window, window_at};

/// A committed purchase, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Purchase {
    pub sale_id: String,
    pub user_id: String,
    pub order_id: String,
    /// RFC 3339 UTC.
    pub purchased_at: String,
}

/// The stock-shard item as DynamoDB returned it with `ALL_OLD` when its condition failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSnapshot {
    pub remaining: i64,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
}

/// One entry of `CancellationReasons`, in transaction item order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelReason {
    /// This item was fine; another one cancelled the transaction.
    None,
    /// The condition failed; carries the old item when DynamoDB returned one.
    ConditionFailed(Option<OldItem>),
    /// Another transaction touched the same item at the same time.
    Conflict,
    /// Capacity or request-rate throttling.
    Throttled,
    /// Anything else (validation, internal error): we cannot tell what happened.
    Other(String),
}

/// The old item that came back with a failed condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OldItem {
    Shard(ShardSnapshot),
    Purchase(Purchase),
}

/// What one attempt on one shard means for the purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptVerdict {
    /// The user already owns an item of this sale.
    AlreadyPurchased(Purchase),
    /// This shard is empty: try the next one.
    ShardEmpty,
    NotStarted,
    Ended,
    /// The shard item does not exist: the sale was deleted under us.
    ShardMissing,
    /// A concurrent transaction won the race for an item: retry after a short jittered pause.
    Conflict,
    /// DynamoDB is throttling us: answer 503 rather than pile on.
    Throttled,
    /// Unknown cause; treated as temporarily unavailable.
    Unknown(String),
}

/// Item order in the purchase transaction: the shard update first, then the purchase put.
pub const SHARD_ITEM: usize = 0;
pub const PURCHASE_ITEM: usize = 1;

/// Decides what a cancelled purchase transaction means.
///
/// A failed purchase condition wins over everything: the user already has an item, whatever the
/// shard said. Then the shard's old item says why its condition failed, judged by the same `now`
/// that went into the condition.
pub fn classify_cancellation(reasons: &[CancelReason], now_ms: i64) -> AttemptVerdict {
    let shard = reasons.get(SHARD_ITEM).unwrap_or(&CancelReason::None);
    let purchase = reasons.get(PURCHASE_ITEM).unwrap_or(&CancelReason::None);

    if let CancelReason::ConditionFailed(old) = purchase {
        return match old {
            Some(OldItem::Purchase(p)) => AttemptVerdict::AlreadyPurchased(p.clone()),
            _ => AttemptVerdict::Unknown("purchase condition failed without the existing purchase".into()),
        };
    }
    if reasons.iter().any(|r| *r == CancelReason::Conflict) {
        return AttemptVerdict::Conflict;
    }
    if reasons.iter().any(|r| *r == CancelReason::Throttled) {
        return AttemptVerdict::Throttled;
    }
    match shard {
        CancelReason::ConditionFailed(Some(OldItem::Shard(s))) => {
            match window_at(s.starts_at_ms, s.ends_at_ms, now_ms) {
                Window::NotStarted => AttemptVerdict::NotStarted,
                Window::Ended => AttemptVerdict::Ended,
                Window::Open if s.remaining <= 0 => AttemptVerdict::ShardEmpty,
                Window::Open => AttemptVerdict::Unknown("shard condition failed with stock left inside the window".into()),
            }
        }
        CancelReason::ConditionFailed(None) => AttemptVerdict::ShardMissing,
        CancelReason::ConditionFailed(Some(OldItem::Purchase(_))) => {
            AttemptVerdict::Unknown("shard returned a purchase item".into())
        }
        CancelReason::Other(code) => AttemptVerdict::Unknown(code.clone()),
        _ => match purchase {
            CancelReason::Other(code) => AttemptVerdict::Unknown(code.clone()),
            _ => AttemptVerdict::Unknown("transaction cancelled without a reason".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AttemptVerdict as V;
    use CancelReason as R;

    fn shard(remaining: i64) -> R {
        R::ConditionFailed(Some(OldItem::Shard(ShardSnapshot { remaining, starts_at_ms: 100, ends_at_ms: 200 })))
    }

    fn existing() -> Purchase {
        Purchase { sale_id: "s".into(), user_id: "u".into(), order_id: "o".into(), purchased_at: "t".into() }
    }

    #[test]
    fn an_existing_purchase_wins_over_every_shard_reason() {
        let old = R::ConditionFailed(Some(OldItem::Purchase(existing())));
        for s in [R::None, shard(0), shard(5), R::Conflict] {
            assert_eq!(classify_cancellation(&[s, old.clone()], 150), V::AlreadyPurchased(existing()));
        }
    }

    #[test]
    fn the_shard_item_says_why_it_refused() {
        assert_eq!(classify_cancellation(&[shard(0), R::None], 150), V::ShardEmpty);
        assert_eq!(classify_cancellation(&[shard(3), R::None], 99), V::NotStarted);
        assert_eq!(classify_cancellation(&[shard(3), R::None], 200), V::Ended);
        assert_eq!(classify_cancellation(&[shard(0), R::None], 200), V::Ended);
        assert_eq!(classify_cancellation(&[R::ConditionFailed(None), R::None], 150), V::ShardMissing);
        assert!(matches!(classify_cancellation(&[shard(3), R::None], 150), V::Unknown(_)));
    }

    #[test]
    fn conflicts_and_throttles_are_retryable_or_busy() {
        assert_eq!(classify_cancellation(&[R::Conflict, R::None], 150), V::Conflict);
        assert_eq!(classify_cancellation(&[R::None, R::Conflict], 150), V::Conflict);
        assert_eq!(classify_cancellation(&[R::Throttled, R::None], 150), V::Throttled);
        assert!(matches!(classify_cancellation(&[R::Other("ValidationError".into()), R::None], 150), V::Unknown(_)));
        assert!(matches!(classify_cancellation(&[], 150), V::Unknown(_)));
    }
}
