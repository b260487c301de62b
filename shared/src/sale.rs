//! What a sale is and the rules of its window, independent of storage.

use serde::Serialize;

use crate::ids::SaleId;
use crate::time_fmt::rfc3339_ms;

/// Most stock shards a sale may have: one purchase attempt may try every shard, and status reads
/// the sale and all its shards in one `BatchGetItem` (100 keys at most).
pub const MAX_SHARDS: u32 = 64;

/// A sale as configured at creation. Immutable afterwards, which is why warm containers may cache it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sale {
    pub id: SaleId,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub total_stock: i64,
    pub shards: u32,
    /// First millisecond of the window (inclusive).
    pub starts_at_ms: i64,
    /// End of the window (exclusive): a purchase at exactly this millisecond is refused.
    pub ends_at_ms: i64,
    /// The waiting room, when the sale has one: buyers then need an admission token.
    pub room: Option<crate::room::RoomConfig>,
    /// How long a purchase holds its item for payment; 0: a purchase is final (`confirmed`) at once.
    pub hold_seconds: i64,
}

/// Longest hold a sale may give a buyer to pay.
pub const MAX_HOLD_SECONDS: i64 = 24 * 3600;

/// Where a sale stands for a shopper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SaleState {
    Upcoming,
    Active,
    SoldOut,
    Ended,
}

/// Where `now` falls relative to a sale window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Window {
    NotStarted,
    Open,
    Ended,
}

impl Sale {
    pub(crate) fn window_at(&self, now_ms: i64) -> Window {
        window_at(self.starts_at_ms, self.ends_at_ms, now_ms)
    }

    /// The state a shopper sees, given the stock left.
    pub(crate) fn state_at(&self, now_ms: i64, remaining: i64) -> SaleState {
        match self.window_at(now_ms) {
            Window::NotStarted => SaleState::Upcoming,
            Window::Ended => SaleState::Ended,
            Window::Open if remaining <= 0 => SaleState::SoldOut,
            Window::Open => SaleState::Active,
        }
    }

    /// Stock per shard: split as evenly as possible, the first shards take the remainder.
    pub fn shard_stock(&self) -> Vec<i64> {
        split_stock(self.total_stock, self.shards)
    }
}

pub(crate) fn window_at(starts_at_ms: i64, ends_at_ms: i64, now_ms: i64) -> Window {
    if now_ms < starts_at_ms {
        Window::NotStarted
    } else if now_ms >= ends_at_ms {
        Window::Ended
    } else {
        Window::Open
    }
}

pub(crate) fn split_stock(total: i64, shards: u32) -> Vec<i64> {
    let n = i64::from(shards.max(1));
    (0..n).map(|k| total / n + i64::from(k < total % n)).collect()
}

/// Why a sale definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaleRuleError {
    #[error("stock must be at least 1")]
    NoStock,
    #[error("shards must be between 1 and {MAX_SHARDS}")]
    BadShardCount,
    #[error("shards ({shards}) must not exceed stock ({stock}): every shard starts with at least one item")]
    MoreShardsThanStock { shards: u32, stock: i64 },
    #[error("the sale must end after it starts")]
    EndsBeforeStart,
    #[error("price must not be negative")]
    NegativePrice,
    #[error("currency must be a three-letter ISO 4217 code such as EUR")]
    BadCurrency,
    #[error("name must be 1 to 200 characters without control characters")]
    BadName,
    #[error("a waiting room needs its draw seed, committed to in the room's configuration")]
    RoomWithoutSeed,
    #[error("hold seconds must be between 0 and {MAX_HOLD_SECONDS}")]
    BadHold,
    #[error(
        "the waiting room must open before the sale starts, admit at least one person per second, and \
         have a claim window of at least a second and no longer than its tokens live; a public beacon \
         must be the first quicknet round after the seal (startsAt + 5 s)"
    )]
    BadRoom,
}

impl Sale {
    /// Checks a sale definition before it is stored.
    pub fn validate(&self) -> Result<(), SaleRuleError> {
        if self.total_stock < 1 {
            return Err(SaleRuleError::NoStock);
        }
        if self.shards < 1 || self.shards > MAX_SHARDS {
            return Err(SaleRuleError::BadShardCount);
        }
        if i64::from(self.shards) > self.total_stock {
            return Err(SaleRuleError::MoreShardsThanStock { shards: self.shards, stock: self.total_stock });
        }
        if self.ends_at_ms <= self.starts_at_ms {
            return Err(SaleRuleError::EndsBeforeStart);
        }
        if self.price_cents < 0 {
            return Err(SaleRuleError::NegativePrice);
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(SaleRuleError::BadCurrency);
        }
        if let Some(room) = &self.room
            && (room.prequeue_opens_at_ms > self.starts_at_ms
                || room.admit_per_second == 0
                || room.claim_ms.is_some_and(|c| c < 1_000 || c > room.token_ttl_ms || c > crate::room::MAX_CLAIM_MS)
                || !(1..=1_024).contains(&room.lanes)
                || room.beacon.as_ref().is_some_and(|b| {
                    *b != crate::beacon::BeaconRef::quicknet_after(self.starts_at_ms + crate::room::DRAW_GRACE_MS)
                }))
        {
            return Err(SaleRuleError::BadRoom);
        }
        if !(0..=MAX_HOLD_SECONDS).contains(&self.hold_seconds) {
            return Err(SaleRuleError::BadHold);
        }
        let name_len = self.name.chars().count();
        if name_len == 0 || name_len > 200 || self.name.chars().any(char::is_control) {
            return Err(SaleRuleError::BadName);
        }
        Ok(())
    }
}

/// The public view of a sale (`GET /sales/{saleId}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SaleView {
    pub sale_id: String,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub state: SaleState,
    pub total_stock: i64,
    pub remaining_stock: i64,
    pub starts_at: String,
    pub ends_at: String,
    pub server_time: String,
    /// How long a purchase holds its item for payment (0: purchases are final at once).
    pub hold_seconds: i64,
}

impl SaleView {
    pub fn new(sale: &Sale, remaining: i64, now_ms: i64) -> Self {
        let remaining = remaining.max(0);
        Self {
            sale_id: sale.id.to_string(),
            name: sale.name.clone(),
            price_cents: sale.price_cents,
            currency: sale.currency.clone(),
            state: sale.state_at(now_ms, remaining),
            total_stock: sale.total_stock,
            remaining_stock: remaining,
            starts_at: rfc3339_ms(sale.starts_at_ms),
            ends_at: rfc3339_ms(sale.ends_at_ms),
            server_time: rfc3339_ms(now_ms),
            hold_seconds: sale.hold_seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale() -> Sale {
        Sale {
            id: SaleId::parse("s").unwrap(),
            name: "Sneaker".into(),
            price_cents: 12_900,
            currency: "EUR".into(),
            total_stock: 10,
            shards: 3,
            starts_at_ms: 1_000,
            ends_at_ms: 2_000,
            room: None,
            hold_seconds: 0,
        }
    }

    #[test]
    fn window_includes_start_and_excludes_end() {
        let s = sale();
        assert_eq!(s.window_at(999), Window::NotStarted);
        assert_eq!(s.window_at(1_000), Window::Open);
        assert_eq!(s.window_at(1_999), Window::Open);
        assert_eq!(s.window_at(2_000), Window::Ended);
    }

    #[test]
    fn state_follows_clock_and_stock() {
        let s = sale();
        assert_eq!(s.state_at(999, 10), SaleState::Upcoming);
        assert_eq!(s.state_at(1_000, 10), SaleState::Active);
        assert_eq!(s.state_at(1_500, 0), SaleState::SoldOut);
        assert_eq!(s.state_at(2_000, 0), SaleState::Ended);
        assert_eq!(s.state_at(2_000, 5), SaleState::Ended);
    }

    #[test]
    fn stock_splits_evenly_with_remainder_first() {
        assert_eq!(split_stock(10, 3), vec![4, 3, 3]);
        assert_eq!(split_stock(100, 8).iter().sum::<i64>(), 100);
        assert_eq!(split_stock(8, 8), vec![1; 8]);
        assert_eq!(split_stock(5, 1), vec![5]);
    }

    #[test]
    fn nonsense_sales_are_refused() {
        assert!(sale().validate().is_ok());
        let bad = |f: fn(&mut Sale)| {
            let mut s = sale();
            f(&mut s);
            s.validate().unwrap_err()
        };
        assert_eq!(bad(|s| s.total_stock = 0), SaleRuleError::NoStock);
        assert_eq!(bad(|s| s.total_stock = -5), SaleRuleError::NoStock);
        assert_eq!(bad(|s| s.shards = 0), SaleRuleError::BadShardCount);
        assert_eq!(bad(|s| s.shards = 65), SaleRuleError::BadShardCount);
        assert_eq!(bad(|s| s.shards = 11), SaleRuleError::MoreShardsThanStock { shards: 11, stock: 10 });
        assert_eq!(bad(|s| s.ends_at_ms = s.starts_at_ms), SaleRuleError::EndsBeforeStart);
        assert_eq!(bad(|s| s.price_cents = -1), SaleRuleError::NegativePrice);
        assert_eq!(bad(|s| s.currency = "eur".into()), SaleRuleError::BadCurrency);
        assert_eq!(bad(|s| s.name = String::new()), SaleRuleError::BadName);
        assert_eq!(bad(|s| s.hold_seconds = -1), SaleRuleError::BadHold);
        assert_eq!(bad(|s| s.hold_seconds = MAX_HOLD_SECONDS + 1), SaleRuleError::BadHold);
    }

    #[test]
    fn status_never_shows_negative_stock() {
        let st = SaleView::new(&sale(), -1, 1_500);
        assert_eq!(st.remaining_stock, 0);
        assert_eq!(st.state, SaleState::SoldOut);
        assert_eq!(st.starts_at, "1970-01-01T00:00:01.000Z");
    }
}
