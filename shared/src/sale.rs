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
    /// The variants given at creation, in order; empty: one variant, [`DEFAULT_VARIANT`], with
    /// `total_stock` on `shards`. When given, `total_stock` and `shards` are their sums (see
    /// [`Sale::set_variants`]): shards are numbered across the sale, variant by variant.
    pub variants: Vec<Variant>,
    /// The most items one customer may hold live (reserved + confirmed) across all variants.
    pub max_per_customer: u32,
}

/// Most items per shard of a sale whose shards list their buyers ([`Sale::keeps_roster`]): 2,000
/// user ids of at most 64 bytes stay under 130 KB, well inside DynamoDB's 400 KB item.
pub const ROSTER_MAX_PER_SHARD: i64 = 2_000;

/// Id of the one variant of a sale created without variants.
pub const DEFAULT_VARIANT: &str = "default";
/// Highest `maxPerCustomer` a sale may have.
pub const MAX_PER_CUSTOMER: u32 = 10;
/// Most variants a sale may have.
pub const MAX_VARIANTS: usize = 32;

/// One variant of a sale (a size, a section): its own stock on its own shards.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Variant {
    pub variant_id: String,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    pub stock: i64,
    pub shards: u32,
}

/// Where a variant's shards are: `first..first + shards` of the sale's shard numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VariantSpan<'a> {
    pub id: &'a str,
    pub label: &'a str,
    pub sku: Option<&'a str>,
    pub stock: i64,
    pub first: u32,
    pub shards: u32,
}

impl VariantSpan<'_> {
    pub fn shard_range(&self) -> std::ops::Range<u32> {
        self.first..self.first + self.shards
    }
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

    /// Stock per shard (numbered across the sale): each variant's stock split as evenly as
    /// possible over its shards, its first shards taking the remainder.
    pub fn shard_stock(&self) -> Vec<i64> {
        self.spans().iter().flat_map(|v| split_stock(v.stock, v.shards)).collect()
    }

    /// Whether each stock shard lists its buyers (`buyers`, a string set added to by the purchase
    /// transaction, taken from by a reset's give-back): for a sale whose items never come back
    /// otherwise (no holds, one item per customer), so that once it is sold out for good one read
    /// of the shards tells a container every owner, and everyone else's refusal needs no read. Only
    /// while a shard's buyers fit its item (at most [`ROSTER_MAX_PER_SHARD`] items per shard).
    pub fn keeps_roster(&self) -> bool {
        self.hold_seconds == 0
            && self.max_per_customer == 1
            && self.shard_stock().iter().all(|n| *n <= ROSTER_MAX_PER_SHARD)
    }

    /// Replaces the variants, and the sale's `total_stock` and `shards` by their sums.
    pub fn set_variants(&mut self, variants: Vec<Variant>) {
        self.total_stock = variants.iter().map(|v| v.stock).sum();
        self.shards = variants.iter().map(|v| v.shards).sum();
        self.variants = variants;
    }

    /// True when the sale was created with variants of its own (not the one default variant).
    pub fn has_variants(&self) -> bool {
        !self.variants.is_empty()
    }

    /// Every variant with its shard range, in order.
    pub fn spans(&self) -> Vec<VariantSpan<'_>> {
        if self.variants.is_empty() {
            return vec![VariantSpan {
                id: DEFAULT_VARIANT,
                label: &self.name,
                sku: None,
                stock: self.total_stock,
                first: 0,
                shards: self.shards,
            }];
        }
        let mut first = 0;
        self.variants
            .iter()
            .map(|v| {
                let span = VariantSpan {
                    id: &v.variant_id,
                    label: &v.label,
                    sku: v.sku.as_deref(),
                    stock: v.stock,
                    first,
                    shards: v.shards,
                };
                first += v.shards;
                span
            })
            .collect()
    }

    /// The variant a purchase names: `None` is the only variant of a sale with one.
    pub fn variant(&self, id: Option<&str>) -> Option<VariantSpan<'_>> {
        let spans = self.spans();
        match id {
            None if spans.len() == 1 => spans.into_iter().next(),
            None => None,
            Some(id) => spans.into_iter().find(|v| v.id == id),
        }
    }

    /// The variant that shard `shard` belongs to.
    pub fn variant_of_shard(&self, shard: u32) -> Option<VariantSpan<'_>> {
        self.spans().into_iter().find(|v| v.shard_range().contains(&shard))
    }
}

/// A variant id: 1 to 32 of `[A-Za-z0-9_-]`.
pub fn valid_variant_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
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
        "variants need unique ids of 1 to 32 characters from A-Z, a-z, 0-9, '_' and '-', labels of 1 to 100 \
         characters, at least one item each and at most one shard per item (at most {MAX_VARIANTS} variants)"
    )]
    BadVariant,
    #[error("max per customer must be between 1 and {MAX_PER_CUSTOMER}")]
    BadMaxPerCustomer,
    /// Each admission sets `max_per_customer` items of the sale aside (docs/waiting-room.md): a
    /// room whose whole stock is smaller could never give anyone their share.
    #[error(
        "a sale with a waiting room needs at least max per customer ({max_per_customer}) items in stock \
         ({stock}): each admission sets that many aside"
    )]
    RoomShareAboveStock { max_per_customer: u32, stock: i64 },
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
        if !(1..=MAX_PER_CUSTOMER).contains(&self.max_per_customer) {
            return Err(SaleRuleError::BadMaxPerCustomer);
        }
        if self.has_variants() {
            let mut ids = std::collections::HashSet::new();
            let bad = self.variants.len() > MAX_VARIANTS
                || self.variants.iter().any(|v| {
                    let label = v.label.chars().count();
                    !valid_variant_id(&v.variant_id)
                        || !ids.insert(v.variant_id.as_str())
                        || label == 0
                        || label > 100
                        || v.label.chars().any(char::is_control)
                        || v.sku
                            .as_ref()
                            .is_some_and(|s| s.is_empty() || s.len() > 64 || s.chars().any(char::is_control))
                        || v.stock < 1
                        || v.shards < 1
                        || i64::from(v.shards) > v.stock
                });
            if bad {
                return Err(SaleRuleError::BadVariant);
            }
            if self.total_stock != self.variants.iter().map(|v| v.stock).sum::<i64>()
                || self.shards != self.variants.iter().map(|v| v.shards).sum::<u32>()
            {
                return Err(SaleRuleError::BadVariant);
            }
        }
        if self.room.is_some() && i64::from(self.max_per_customer) > self.total_stock {
            return Err(SaleRuleError::RoomShareAboveStock {
                max_per_customer: self.max_per_customer,
                stock: self.total_stock,
            });
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
    /// The most items one customer may hold live across the sale's variants.
    pub max_per_customer: u32,
    /// Per variant, for a sale created with variants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variants: Option<Vec<VariantView>>,
}

/// One variant in the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantView {
    pub variant_id: String,
    pub label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    pub total_stock: i64,
    pub remaining_stock: i64,
}

impl SaleView {
    pub fn new(sale: &Sale, remaining: i64, now_ms: i64) -> Self {
        Self::with_shards(sale, remaining, None, now_ms)
    }

    /// The view, with per-variant stock from `shards` (remaining per shard) for a sale with variants.
    pub fn with_shards(sale: &Sale, remaining: i64, shards: Option<&[i64]>, now_ms: i64) -> Self {
        let remaining = remaining.max(0);
        let variants = (sale.has_variants()).then(|| {
            sale.spans()
                .iter()
                .map(|v| VariantView {
                    variant_id: v.id.to_owned(),
                    label: v.label.to_owned(),
                    sku: v.sku.map(str::to_owned),
                    total_stock: v.stock,
                    remaining_stock: shards
                        .map(|s| v.shard_range().filter_map(|n| s.get(n as usize)).map(|r| (*r).max(0)).sum())
                        .unwrap_or(0),
                })
                .collect()
        });
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
            max_per_customer: sale.max_per_customer,
            variants,
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
            variants: Vec::new(),
            max_per_customer: 1,
        }
    }

    fn variant(id: &str, stock: i64, shards: u32) -> Variant {
        Variant { variant_id: id.into(), label: id.to_uppercase(), sku: None, stock, shards }
    }

    #[test]
    fn variants_number_shards_across_the_sale() {
        let mut s = sale();
        assert_eq!(s.spans().len(), 1);
        assert_eq!(s.variant(None).unwrap().id, DEFAULT_VARIANT);
        assert_eq!(s.shard_stock(), vec![4, 3, 3]);
        s.set_variants(vec![variant("a", 1, 1), variant("b", 7, 2), variant("c", 50, 4)]);
        assert!(s.validate().is_ok());
        assert_eq!((s.total_stock, s.shards), (58, 7));
        assert_eq!(s.shard_stock(), vec![1, 4, 3, 13, 13, 12, 12]);
        assert_eq!(s.variant(Some("b")).unwrap().shard_range(), 1..3);
        assert_eq!(s.variant(Some("c")).unwrap().shard_range(), 3..7);
        assert_eq!(s.variant(None), None);
        assert_eq!(s.variant(Some("d")), None);
        assert_eq!(s.variant_of_shard(2).unwrap().id, "b");
        let view = SaleView::with_shards(&s, 10, Some(&[0, 2, 1, 3, 0, 0, 4]), 1_500);
        let remaining: Vec<i64> = view.variants.unwrap().iter().map(|v| v.remaining_stock).collect();
        assert_eq!(remaining, vec![0, 3, 7]);
    }

    #[test]
    fn bad_variants_and_limits_are_refused() {
        let with = |vs: Vec<Variant>| {
            let mut s = sale();
            s.set_variants(vs);
            s.validate()
        };
        assert_eq!(with(vec![variant("a", 1, 1), variant("a", 2, 1)]), Err(SaleRuleError::BadVariant));
        assert_eq!(with(vec![variant("a b", 1, 1)]), Err(SaleRuleError::BadVariant));
        assert_eq!(with(vec![variant("a", 1, 2), variant("b", 5, 1)]), Err(SaleRuleError::BadVariant));
        assert_eq!(with(vec![variant("a", 0, 1), variant("b", 3, 1)]), Err(SaleRuleError::BadVariant));
        let mut s = sale();
        s.max_per_customer = 0;
        assert_eq!(s.validate(), Err(SaleRuleError::BadMaxPerCustomer));
        s.max_per_customer = MAX_PER_CUSTOMER + 1;
        assert_eq!(s.validate(), Err(SaleRuleError::BadMaxPerCustomer));
    }

    #[test]
    fn a_room_takes_variants_and_several_items_per_customer_within_its_stock() {
        let mut s = sale();
        s.room = Some(crate::room::RoomConfig::new(s.shards, s.starts_at_ms, b"seed"));
        s.set_variants(vec![variant("s", 4, 1), variant("m", 4, 1), variant("l", 2, 1)]);
        s.max_per_customer = MAX_PER_CUSTOMER;
        assert_eq!(s.validate(), Ok(()), "10 items, up to 10 each");
        s.set_variants(vec![variant("s", 4, 1), variant("m", 4, 1), variant("l", 1, 1)]);
        assert_eq!(s.validate(), Err(SaleRuleError::RoomShareAboveStock { max_per_customer: 10, stock: 9 }));
        s.room = None;
        assert_eq!(s.validate(), Ok(()), "without a room, nothing is set aside");
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
