//! The waiting room: a fair, stock-aware line per sale. Pure rules; the store keeps the line in
//! DynamoDB and `queue` runs the use cases.
//!
//! - **Places.** Everyone who joins before `startsAt` is in the pre-queue: their places are a
//!   random permutation drawn at opening from a seed committed to in advance (SHA-256 published
//!   at creation, seed revealed at opening), so arriving early gives no edge over arriving on time.
//!   Later joiners follow first in, first out by the order their place was issued.
//! - **Admission.** The admitted range (`admittedThrough`, a place number) advances at
//!   `admitPerSecond`, never past the last place issued, and never so far that the items the people
//!   admitted within the claim window may still buy (`maxPerCustomer` each, less what they hold)
//!   exceed `admitFactor` × the remaining stock. With the default factor (100 %) every admission
//!   has `maxPerCustomer` items of the sale set aside for its claim window (the sale's last items,
//!   fewer than that, go to one person alone), so nobody admitted races anyone for them. When the
//!   stock is gone, everyone still waiting is told `sold_out`.
//! - **Tokens.** An admitted buyer gets an HMAC-SHA256 token binding sale, user, place and expiry,
//!   checked on the purchase path without a DynamoDB call. The token buys only within the claim
//!   window, so an item set aside for one admission is never taken by an earlier one: the cap
//!   counts each admission against the stock for its window plus [`PURCHASE_GRACE_MS`], the
//!   longest a purchase whose token was checked in time may still be committing.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{SaleId, UserId};

/// Purchases per second one stock shard sustains without transaction conflicts: a transaction
/// holds a shard item for a few milliseconds, so conflicts grow quickly past about a tenth of a
/// partition's 1,000 WCU/s. The default admission rate is `shards × this`.
pub(crate) const ADMIT_PER_SHARD_PER_SECOND: u32 = 50;

/// Default: the people admitted within the claim window who have not bought stay within the
/// remaining stock (100 %), so every admission has an item set aside. Above 100 % the sale sells
/// out sooner when many admitted people do not buy, and the admitted race each other for the
/// last items: the fastest clients (scripts) win more than their share.
pub const DEFAULT_ADMIT_FACTOR_PERCENT: u32 = 100;

/// Default claim window: an admitted place holds an item back, and its token buys, this long
/// after admission.
pub const DEFAULT_CLAIM_MS: i64 = 60 * 1_000;

/// Longest claim window a room may have. The room item keeps one admission step per second of
/// the window (about 40 bytes each), so its state stays near 40 KB, far below DynamoDB's 400 KB.
pub const MAX_CLAIM_MS: i64 = 15 * 60 * 1_000;

/// How long after its token expired a purchase may still commit: the purchase function's timeout
/// (`infra/template.yaml`, checked by a test). An admission counts against the stock for its
/// claim window plus this.
pub const PURCHASE_GRACE_MS: i64 = 10_000;

/// Default: the pre-queue opens this long before the sale starts.
pub(crate) const DEFAULT_PREQUEUE_LEAD_MS: i64 = 15 * 60 * 1_000;

/// Pre-queue joins spread their markers and count over this many lanes. A join writes 4 WCU on its
/// lane's partition (its marker in a transaction of its own two items: 2; the marker's
/// confirmation: 1; the lane's count, a hint added outside the transaction: 1), so at ~1,000 WCU/s
/// per partition a lane takes ~250 joins/s and 256 lanes ≈64,000 joins/s (docs/waiting-room.md).
pub const DEFAULT_LANES: u32 = 256;

/// A pre-queue join may still be committing this long after `startsAt`; the draw waits it out.
pub const DRAW_GRACE_MS: i64 = 5_000;

/// How a sale's room is set up; fixed at creation except the rate and pause (in [`RoomState`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomConfig {
    pub admit_per_second: u32,
    pub prequeue_opens_at_ms: i64,
    /// Admitted-but-not-bought may reach this percentage of the remaining stock.
    pub admit_factor_percent: u32,
    /// Upper bound of the claim window (rooms created before claim windows existed had tokens
    /// that outlived the window; tokens now live exactly the window).
    pub token_ttl_ms: i64,
    /// How long an admitted place's token buys and its item is set aside; rooms created before
    /// claim windows existed (`None`) use `token_ttl_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_ms: Option<i64>,
    /// Hex SHA-256 of the draw seed, published from creation on.
    pub draw_commitment: String,
    pub lanes: u32,
    /// The public beacon round mixed into the draw (fixed at creation: the first quicknet round
    /// after the seal, see [`crate::beacon`]); `None`: the operator's seed alone orders the
    /// pre-queue (rooms created without `--public-beacon`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beacon: Option<crate::beacon::BeaconRef>,
}

impl RoomConfig {
    /// The defaults for a sale with `shards` shards starting at `starts_at_ms`, committing to `seed`.
    pub fn new(shards: u32, starts_at_ms: i64, seed: &[u8]) -> Self {
        Self {
            admit_per_second: shards.max(1) * ADMIT_PER_SHARD_PER_SECOND,
            prequeue_opens_at_ms: starts_at_ms - DEFAULT_PREQUEUE_LEAD_MS,
            admit_factor_percent: DEFAULT_ADMIT_FACTOR_PERCENT,
            token_ttl_ms: DEFAULT_CLAIM_MS,
            claim_ms: Some(DEFAULT_CLAIM_MS),
            draw_commitment: commitment(seed),
            lanes: DEFAULT_LANES,
            beacon: None,
        }
    }

    /// The same, drawing with the public beacon round due for a sale starting at `starts_at_ms`.
    pub fn with_public_beacon(mut self, starts_at_ms: i64) -> Self {
        self.beacon = Some(crate::beacon::BeaconRef::quicknet_after(starts_at_ms + DRAW_GRACE_MS));
        self
    }

    /// How long an admitted place's token buys and its item is set aside: the claim window, at
    /// most `token_ttl_ms` and [`MAX_CLAIM_MS`].
    pub fn claim_window_ms(&self) -> i64 {
        self.claim_ms.unwrap_or(self.token_ttl_ms).clamp(0, self.token_ttl_ms.min(MAX_CLAIM_MS))
    }

    /// How long an admission counts against the stock: its claim window, plus the time a purchase
    /// whose token was checked within it may still take to commit.
    pub(crate) fn set_aside_ms(&self) -> i64 {
        self.claim_window_ms() + PURCHASE_GRACE_MS
    }
}

/// One admission step remembered for the stock-aware cap and the tokens' lifetimes: at `at_ms`
/// the admitted range ended at `admitted`. (Room states stored before the claim window also
/// carry a `sold` count per step; it is ignored.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Tick {
    pub at_ms: i64,
    pub admitted: i64,
}

/// The line's moving parts (one item per sale, written at most about once a second).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomState {
    /// Every place up to and including this one is admitted.
    pub admitted_through: i64,
    pub admit_per_second: u32,
    pub paused: bool,
    /// When the admitted range was last advanced (the time up to which the rate was spent).
    pub updated_at_ms: i64,
    /// Pre-queue size, fixed by the draw; `None` until the draw is done.
    pub prequeue_size: Option<i64>,
    /// Places issued after opening (post-opening joiners are numbered after the pre-queue).
    pub issued_after_opening: i64,
    /// Admission steps of the last token lifetime (when each place was admitted; the cap reads the
    /// claim window's part).
    #[serde(default)]
    pub(crate) history: Vec<Tick>,
}

impl RoomState {
    pub fn new(config: &RoomConfig, starts_at_ms: i64) -> Self {
        Self {
            admitted_through: 0,
            admit_per_second: config.admit_per_second,
            paused: false,
            updated_at_ms: starts_at_ms,
            prequeue_size: None,
            issued_after_opening: 0,
            history: Vec::new(),
        }
    }

    /// The last place issued so far (known once the draw fixed the pre-queue).
    pub fn places_issued(&self) -> Option<i64> {
        self.prequeue_size.map(|n| n + self.issued_after_opening)
    }

    /// The place of the `seq`-th person to join after opening (1-based).
    pub(crate) fn place_after_opening(&self, seq: i64) -> Option<i64> {
        self.prequeue_size.map(|n| n + seq)
    }

    /// Advances the admitted range to `now_ms`, given the items sold (held live) and remaining and
    /// the items each admission sets aside (`per_admission`: the sale's `maxPerCustomer`). Returns
    /// the new state; the rate's unspent fraction carries over, so admission keeps its pace
    /// whatever the tick interval.
    pub fn advanced(
        &self,
        config: &RoomConfig,
        now_ms: i64,
        sold: i64,
        remaining: i64,
        per_admission: u32,
    ) -> RoomState {
        let mut next = self.clone();
        let Some(issued) = self.places_issued() else { return next };
        let elapsed = (now_ms - self.updated_at_ms).max(0);
        let rate = i64::from(self.admit_per_second);
        if self.paused || rate == 0 {
            next.updated_at_ms = now_ms;
        } else {
            let budget = elapsed * rate / 1_000;
            let cap = self.cap(config, now_ms, sold, remaining, i64::from(per_admission.max(1)));
            let target = (self.admitted_through + budget).min(cap).min(issued).max(self.admitted_through);
            let admitted = target - self.admitted_through;
            next.admitted_through = target;
            // Spend only the time the admitted places used when a cap held them back.
            next.updated_at_ms = if admitted == budget { self.updated_at_ms + admitted * 1_000 / rate } else { now_ms };
        }
        next.history.push(Tick { at_ms: now_ms, admitted: next.admitted_through });
        let horizon = now_ms - config.set_aside_ms() - 1_000;
        let keep_from = next.history.iter().rposition(|t| t.at_ms <= horizon).unwrap_or(0);
        next.history.drain(..keep_from);
        next
    }

    /// The furthest the admitted range may reach: the items that the people admitted within the
    /// set-aside span (claim window plus purchase grace) may still buy — `m` = `per_admission`
    /// each, less what they hold — stay within `admit_factor` × the remaining stock.
    ///
    /// Which admitted person bought is not recorded, so the count is a bound that never
    /// undercounts. A token buys only within its claim window, so nobody admitted before the span
    /// began can buy any more; those `admitted_then` people hold at most `m` items each, and every
    /// other item held was bought by someone admitted within the span. So the span's people number
    /// at most `admitted − admitted_then` and hold at least `sold − m·admitted_then` items: they may
    /// still buy at most `m·admitted − max(m·admitted_then, sold)`, and
    /// `m·admitted ≤ max(m·admitted_then, sold) + allowance` keeps that within the allowance
    /// (the invariant: Σ over live admissions of what each may still buy ≤ remaining, at 100 %).
    ///
    /// The sale's last items: when fewer than `m` are left, the rule alone would admit nobody
    /// more, ever. Once every admission's span is over (nobody admitted can buy any more), one
    /// more person is admitted: they alone may buy what is left. (Not sooner, even when the bound
    /// says everyone admitted holds `m`: one of them could cancel and buy again, and must find
    /// their item.) The next admission counts them as `m`, like everyone.
    fn cap(&self, config: &RoomConfig, now_ms: i64, sold: i64, remaining: i64, m: i64) -> i64 {
        let horizon = now_ms - config.set_aside_ms();
        let admitted_then = self.history.iter().rev().find(|t| t.at_ms <= horizon).map_or(0, |t| t.admitted);
        let allowance = (i64::from(config.admit_factor_percent) * remaining.max(0) + 99) / 100;
        let cap = ((admitted_then * m).max(sold) + allowance) / m;
        if cap <= self.admitted_through && allowance > 0 && admitted_then >= self.admitted_through {
            return self.admitted_through + 1;
        }
        cap
    }
}

/// Where a person stands in the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaceState {
    Waiting,
    Admitted,
    SoldOut,
    Closed,
}

/// The state of a person at `place` (`None`: the draw has not placed them yet).
pub(crate) fn place_state(state: &RoomState, place: Option<i64>, remaining: i64, ended: bool) -> PlaceState {
    if ended {
        return PlaceState::Closed;
    }
    match place {
        _ if remaining <= 0 => PlaceState::SoldOut,
        Some(p) if p <= state.admitted_through => PlaceState::Admitted,
        _ => PlaceState::Waiting,
    }
}

/// Seconds until `place` is admitted at the current rate (0 when admitted or unknown rate).
pub(crate) fn estimated_wait_seconds(state: &RoomState, place: i64) -> i64 {
    let needed = (place - state.admitted_through).max(0);
    let rate = i64::from(state.admit_per_second.max(1));
    (needed + rate - 1) / rate
}

/// A new secret draw seed from the operating system's random source.
pub fn new_seed() -> Result<[u8; 32], String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no random source for the draw seed: {e}"))?;
    Ok(seed)
}

/// Hex SHA-256 of a draw seed.
pub fn commitment(seed: &[u8]) -> String {
    hex::encode(Sha256::digest(seed))
}

/// The draw value of a user: SHA-256(seed ‖ user id). Lower values come first.
pub(crate) fn draw_value(seed: &[u8], user: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed);
    h.update(user.as_bytes());
    h.finalize().into()
}

/// The pre-queue order: places 1..=n for `users`, by draw value (then user id). Anyone with the
/// revealed seed and the list of entrants recomputes exactly this.
pub fn draw(seed: &[u8], users: &[String]) -> Vec<(String, i64)> {
    let mut keyed: Vec<([u8; 32], &String)> = users.iter().map(|u| (draw_value(seed, u), u)).collect();
    keyed.sort();
    keyed.into_iter().zip(1..).map(|((_, u), place)| (u.clone(), place)).collect()
}

/// Keys for admission tokens: the current one signs; the previous one is still accepted while a
/// rotation settles.
#[derive(Clone, PartialEq, Eq)]
pub struct AdmissionKeys {
    current: Vec<u8>,
    previous: Option<Vec<u8>>,
}

impl fmt::Debug for AdmissionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdmissionKeys(redacted)")
    }
}

/// Shortest key accepted.
pub(crate) const MIN_KEY_BYTES: usize = 32;

impl AdmissionKeys {
    /// Keys from hex text (`ADMISSION_KEY`, `ADMISSION_KEY_PREVIOUS`).
    pub fn from_hex(current: &str, previous: Option<&str>) -> Result<Self, String> {
        let decode = |k: &str| hex::decode(k.trim()).map_err(|_| "admission keys must be hex".to_owned());
        Self::new(decode(current)?, previous.map(decode).transpose()?)
    }

    pub fn new(current: Vec<u8>, previous: Option<Vec<u8>>) -> Result<Self, String> {
        let short = |k: &[u8]| k.len() < MIN_KEY_BYTES;
        if short(&current) || previous.as_deref().is_some_and(short) {
            return Err(format!("admission keys must be at least {MIN_KEY_BYTES} bytes"));
        }
        Ok(Self { current, previous })
    }

    fn mac(key: &[u8], message: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(message.as_bytes());
        mac
    }

    /// A token for `user` at `place` in `sale`, valid until `expires_at_ms`.
    pub fn sign(&self, sale: &SaleId, user: &UserId, place: i64, expires_at_ms: i64) -> String {
        let body = format!("v1.{sale}.{}.{place}.{expires_at_ms}", b64(user.as_str().as_bytes()));
        let tag = Self::mac(&self.current, &body).finalize().into_bytes();
        format!("{body}.{}", b64(&tag))
    }

    /// Checks a token for `user` in `sale` at `now_ms`; returns the place it grants.
    pub(crate) fn verify(&self, token: &str, sale: &SaleId, user: &UserId, now_ms: i64) -> Result<i64, TokenError> {
        let (body, tag) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
        let tag = b64_decode(tag).ok_or(TokenError::Invalid)?;
        let signed_by = |key: &[u8]| Self::mac(key, body).verify_slice(&tag).is_ok();
        if !(signed_by(&self.current) || self.previous.as_deref().is_some_and(signed_by)) {
            return Err(TokenError::Invalid);
        }
        let parts: Vec<&str> = body.split('.').collect();
        let [version, token_sale, token_user, place, expires] = parts[..] else { return Err(TokenError::Invalid) };
        let token_user = b64_decode(token_user).ok_or(TokenError::Invalid)?;
        if version != "v1" || token_sale != sale.as_str() || token_user != user.as_str().as_bytes() {
            return Err(TokenError::Invalid);
        }
        let place: i64 = place.parse().map_err(|_| TokenError::Invalid)?;
        let expires: i64 = expires.parse().map_err(|_| TokenError::Invalid)?;
        if now_ms >= expires {
            return Err(TokenError::Expired);
        }
        Ok(place)
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenError {
    /// Forged, altered, for another user or sale, or not a token at all.
    Invalid,
    Expired,
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn b64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RoomConfig {
        RoomConfig { token_ttl_ms: 10_000, ..RoomConfig::new(2, 0, b"seed") }
    }

    fn opened(prequeue: i64, issued_after: i64) -> RoomState {
        RoomState { prequeue_size: Some(prequeue), issued_after_opening: issued_after, ..RoomState::new(&config(), 0) }
    }

    #[test]
    fn admission_keeps_its_pace_across_uneven_ticks() {
        let c = config();
        let mut s = opened(10_000, 0);
        for now in [250, 260, 900, 1_000, 1_999, 2_000] {
            s = s.advanced(&c, now, 0, 1_000, 1);
        }
        assert_eq!(s.admitted_through, 200, "100 per second for 2 s");
    }

    #[test]
    fn admission_never_passes_the_last_place_issued_or_waits_before_the_draw() {
        let c = config();
        assert_eq!(RoomState::new(&c, 0).advanced(&c, 5_000, 0, 10, 1).admitted_through, 0, "no draw yet");
        let s = opened(3, 4).advanced(&c, 60_000, 0, 1_000, 1);
        assert_eq!(s.admitted_through, 7);
    }

    #[test]
    fn admitted_but_not_bought_stays_within_the_factor_of_remaining_stock() {
        let c = RoomConfig { admit_factor_percent: 200, ..config() };
        let s = opened(10_000, 0).advanced(&c, 9_000, 0, 10, 1);
        assert_eq!(s.admitted_through, 20, "2 × 10 remaining");
        let s = s.advanced(&c, 9_500, 5, 5, 1);
        assert_eq!(s.admitted_through, 20, "5 bought, 5 left: 15 outstanding ≤ 10 + 5 bought");
        // Once the first admissions' tokens have expired, they no longer hold places.
        let s = s.advanced(&c, 30_000, 5, 5, 1);
        assert_eq!(s.admitted_through, 30);
        let closed = s.advanced(&c, 31_000, 10, 0, 1);
        assert_eq!(closed.admitted_through, 30, "no stock: nobody more is admitted");
        assert_eq!(place_state(&closed, Some(31), 0, false), PlaceState::SoldOut);
    }

    #[test]
    fn an_admission_sets_an_item_aside_for_its_claim_window_then_lets_it_go() {
        let c = RoomConfig { token_ttl_ms: 300_000, claim_ms: Some(60_000), ..config() };
        assert_eq!(c.admit_factor_percent, 100, "the default sets one item aside per admission");
        let s = opened(10_000, 0).advanced(&c, 5_000, 0, 10, 1);
        assert_eq!(s.admitted_through, 10, "as many as the stock");
        let s = s.advanced(&c, 30_000, 6, 4, 1);
        assert_eq!(s.admitted_through, 10, "4 admitted and not bought hold the 4 items left");
        let s = s.advanced(&c, 66_000, 6, 4, 1);
        assert_eq!(s.admitted_through, 10, "their window is over, but a purchase checked in time may still commit");
        let s = s.advanced(&c, 5_000 + 60_000 + PURCHASE_GRACE_MS, 6, 4, 1);
        assert_eq!(s.admitted_through, 14, "window and grace are over: their tokens buy no more, 4 more are admitted");
        let old = RoomConfig { claim_ms: None, ..c.clone() };
        assert_eq!(old.claim_window_ms(), 300_000, "rooms from before claim windows: the token's lifetime");
        let long = RoomConfig { claim_ms: Some(900_000), ..c.clone() };
        assert_eq!(long.claim_window_ms(), 300_000, "never longer than token_ttl_ms");
        let huge = RoomConfig { token_ttl_ms: 3_600_000, claim_ms: Some(3_600_000), ..c };
        assert_eq!(huge.claim_window_ms(), MAX_CLAIM_MS, "never longer than the bound");
    }

    #[test]
    fn an_admission_sets_max_per_customer_items_aside_and_the_last_items_go_to_one_person() {
        let c = RoomConfig { token_ttl_ms: 60_000, claim_ms: Some(60_000), ..config() };
        let span = 60_000 + PURCHASE_GRACE_MS;
        let s = opened(10_000, 0).advanced(&c, 5_000, 0, 9, 2);
        assert_eq!(s.admitted_through, 4, "two items each: 4 people for 9 items, the ninth is not anyone's yet");
        let s = s.advanced(&c, 20_000, 3, 6, 2);
        assert_eq!(s.admitted_through, 4, "3 bought: the 4 may still buy 5, and 6 are left: not 2 more");
        let s = s.advanced(&c, 21_000, 8, 1, 2);
        assert_eq!(s.admitted_through, 4, "all 4 hold their 2, but one may cancel and buy again in their window");
        let s = s.advanced(&c, 5_000 + span, 8, 1, 2);
        assert_eq!(s.admitted_through, 5, "their windows are over: one more person, for the last item alone");
        let s = s.advanced(&c, 6_000 + span, 8, 1, 2);
        assert_eq!(s.admitted_through, 5, "nobody else while that person may buy it");
        let gone = s.advanced(&c, 5_000 + 2 * span, 8, 1, 2);
        assert_eq!(gone.admitted_through, 6, "they did not buy in their window: the next person may");
        let back = s.advanced(&c, 7_000 + span, 6, 3, 2);
        assert_eq!(back.admitted_through, 5, "2 items given back: the person admitted may still buy 2 of the 3");
        let more = s.advanced(&c, 8_000 + span, 6, 4, 2);
        assert_eq!(more.admitted_through, 6, "4 left: 2 for them, 2 for one more person");
        // With more than 100 %, the allowance counts in items too.
        let over = RoomConfig { admit_factor_percent: 150, ..c };
        assert_eq!(opened(10_000, 0).advanced(&over, 5_000, 0, 9, 2).admitted_through, 7, "1.5 × 9 = 14 items");
    }

    /// The set-aside promise, against random buyers: every person is admitted with
    /// `maxPerCustomer` items free for them (what the others admitted may still buy left aside),
    /// or, for the sale's last items, with what is left while nobody else may buy; and a person
    /// buying within their window (or committing within the grace) never finds fewer items than
    /// they may still buy, whatever the people admitted before or after them do (buy at once, at
    /// the last moment, in parts, cancel and buy again, or never).
    #[test]
    fn every_admission_has_its_share_set_aside_whatever_the_others_do() {
        struct Person {
            at: i64,
            share: i64,
            held: i64,
            /// When this person buys (ms after admission) and how many, or never.
            plan: Vec<(i64, i64)>,
        }
        let mut admitted_total = 0;
        let mut last_items = 0;
        for seed in 0..200 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let m = rng.i64(1..=4);
            let stock = rng.i64(1..=80);
            let claim = rng.i64(1..=20) * 1_000;
            let c = RoomConfig {
                admit_per_second: rng.u32(1..=30),
                token_ttl_ms: claim,
                claim_ms: Some(claim),
                ..config()
            };
            let span = c.set_aside_ms();
            let mut s = opened(10_000, 0);
            let mut remaining = stock;
            let mut people: Vec<Person> = Vec::new();
            for now in (0..1_200_000).step_by(250) {
                if now % 1_000 == 0 {
                    let before = s.admitted_through;
                    s = s.advanced(&c, now, stock - remaining, remaining, m as u32);
                    for _ in before..s.admitted_through {
                        // What the others admitted may still buy (up to their limit) is theirs.
                        let live = people.iter().filter(|p| now < p.at + span);
                        let (others, owed) = live.fold((0, 0), |(n, o), p| (n + 1, o + m - p.held));
                        let free = remaining - owed;
                        assert!(free >= 1, "seed {seed}: admitted with nothing set aside ({free} free)");
                        assert!(free >= m || others == 0, "seed {seed}: a short share while others may buy");
                        last_items += i64::from(free < m);
                        let plan = (0..rng.usize(0..=3))
                            .map(|_| {
                                // Mostly within the window; some commits land in the grace.
                                let when = if rng.bool() { rng.i64(0..claim) } else { rng.i64(0..span) };
                                (when, rng.i64(1..=m))
                            })
                            .collect();
                        people.push(Person { at: now, share: free.min(m), held: 0, plan });
                    }
                }
                for p in people.iter_mut().filter(|p| now < p.at + span) {
                    for &(when, q) in &p.plan {
                        if now - p.at != when / 250 * 250 {
                            continue;
                        }
                        let q = q.min(m - p.held);
                        if q == 0 {
                            // At the limit: sometimes a cancel gives an item back.
                            if rng.u8(0..4) == 0 {
                                p.held -= 1;
                                remaining += 1;
                            }
                            continue;
                        }
                        let left_to_them = (p.share - p.held).max(0);
                        if q <= left_to_them {
                            assert!(remaining >= q, "seed {seed}: refused {q} with {left_to_them} set aside");
                        }
                        let got = q.min(remaining);
                        p.held += got;
                        remaining -= got;
                    }
                }
                // The invariant: what the admitted may still buy is there, but for one person
                // admitted alone for the last items, who may buy what is left.
                let live: Vec<&Person> = people.iter().filter(|p| now < p.at + span).collect();
                let owed: i64 = live.iter().map(|p| m - p.held).sum();
                let alone = live.len() == 1 && live[0].share < m;
                assert!(owed <= remaining || alone, "seed {seed} at {now}: {owed} set aside, {remaining} left");
            }
            admitted_total += people.len();
        }
        assert!(admitted_total > 2_000 && last_items > 10, "the runs admitted {admitted_total}, {last_items} short");
    }

    #[test]
    fn a_stock_maxpercustomer_does_not_divide_still_sells_out() {
        let c = RoomConfig { token_ttl_ms: 60_000, claim_ms: Some(60_000), ..config() };
        let (stock, m) = (7, 3);
        let mut s = opened(10_000, 0);
        let mut remaining = stock;
        let mut served = 0;
        for now in (0..200_000).step_by(1_000) {
            s = s.advanced(&c, now, stock - remaining, remaining, m);
            // Everyone admitted buys all they may at once.
            while served < s.admitted_through && remaining > 0 {
                remaining -= remaining.min(i64::from(m));
                served += 1;
            }
        }
        assert_eq!(
            (remaining, s.admitted_through),
            (0, 3),
            "3 + 3, then one person for the last item, once the others' windows are over"
        );
    }

    #[test]
    fn steps_stored_with_the_sold_count_of_earlier_versions_still_read() {
        let tick: Tick = serde_json::from_str(r#"{"at_ms":5,"admitted":7,"sold":3}"#).unwrap();
        assert_eq!(tick, Tick { at_ms: 5, admitted: 7 });
    }

    #[test]
    fn pause_holds_the_range_and_a_new_rate_applies_from_then_on() {
        let c = config();
        let mut s = opened(10_000, 0).advanced(&c, 1_000, 0, 1_000, 1);
        s.paused = true;
        s = s.advanced(&c, 5_000, 0, 1_000, 1);
        assert_eq!(s.admitted_through, 100);
        s.paused = false;
        s.admit_per_second = 10;
        s = s.advanced(&c, 6_000, 0, 1_000, 1);
        assert_eq!(s.admitted_through, 110);
    }

    #[test]
    fn states_follow_place_stock_and_end() {
        let s = RoomState { admitted_through: 5, ..opened(10, 0) };
        assert_eq!(place_state(&s, Some(5), 3, false), PlaceState::Admitted);
        assert_eq!(place_state(&s, Some(6), 3, false), PlaceState::Waiting);
        assert_eq!(place_state(&s, None, 3, false), PlaceState::Waiting);
        assert_eq!(place_state(&s, Some(6), 0, false), PlaceState::SoldOut);
        assert_eq!(place_state(&s, Some(1), 3, true), PlaceState::Closed);
        assert_eq!(estimated_wait_seconds(&s, 5), 0);
        assert_eq!(estimated_wait_seconds(&s, 305), 3);
        assert_eq!(estimated_wait_seconds(&s, 306), 4);
    }

    #[test]
    fn the_draw_is_a_permutation_anyone_can_recompute() {
        let users: Vec<String> = (0..50).map(|n| format!("user-{n}")).collect();
        let a = draw(b"seed-1", &users);
        let mut places: Vec<i64> = a.iter().map(|(_, p)| *p).collect();
        places.sort();
        assert_eq!(places, (1..=50).collect::<Vec<_>>());
        let mut reversed = users.clone();
        reversed.reverse();
        assert_eq!(draw(b"seed-1", &reversed), a, "arrival order does not matter");
        assert_ne!(draw(b"seed-2", &users), a, "another seed, another order");
        assert_eq!(commitment(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn tokens_bind_sale_user_and_expiry_and_survive_a_key_rotation() {
        let old = AdmissionKeys::new(vec![1; 32], None).unwrap();
        let new = AdmissionKeys::new(vec![2; 32], Some(vec![1; 32])).unwrap();
        let sale = SaleId::parse("s").unwrap();
        let other_sale = SaleId::parse("t").unwrap();
        let user = UserId::parse("a.b/ü").unwrap();
        let other = UserId::parse("mallory").unwrap();
        let token = old.sign(&sale, &user, 7, 1_000);
        assert_eq!(old.verify(&token, &sale, &user, 999), Ok(7));
        assert_eq!(new.verify(&token, &sale, &user, 999), Ok(7), "previous key still accepted");
        assert_eq!(old.verify(&token, &sale, &user, 1_000), Err(TokenError::Expired));
        assert_eq!(old.verify(&token, &sale, &other, 0), Err(TokenError::Invalid));
        assert_eq!(old.verify(&token, &other_sale, &user, 0), Err(TokenError::Invalid));
        let forged = token.replace(".7.", ".1.");
        assert_eq!(old.verify(&forged, &sale, &user, 0), Err(TokenError::Invalid));
        let stranger = AdmissionKeys::new(vec![3; 32], None).unwrap();
        assert_eq!(stranger.verify(&token, &sale, &user, 0), Err(TokenError::Invalid));
        for junk in ["", ".", "v1.s", "a.b.c.d.e.f", "😀"] {
            assert_eq!(old.verify(junk, &sale, &user, 0), Err(TokenError::Invalid), "{junk}");
        }
        assert!(AdmissionKeys::new(vec![0; 31], None).is_err());
        assert_eq!(format!("{old:?}"), "AdmissionKeys(redacted)");
    }
}
