//! The sold-out hint: the shards of each sale that this container saw empty, kept for
//! `Tuning::sold_out_hint`, so that a crowd arriving after a sell-out costs no transactions. Only
//! ever a hint: a refusal it gives is checked against the buyer's record (see `checkout`), and
//! anything that gives an item back forgets it.
//!
//! And the remembered refusals ([`SoldOutHint::recall`]): once a sale is sold out *for good*, the
//! buyer's record that a refusal read stays what it is, so the container keeps it and answers that
//! buyer's next attempts without DynamoDB. "For good" is:
//! - the sale has no holds (`hold_seconds` 0): its orders are `confirmed` at once, and a confirmed
//!   order neither ends nor is cancelled, so no purchase gives its item back. (With holds, a hold
//!   may end or be cancelled in any container at any moment: nothing is remembered.)
//! - every shard read empty (one strongly consistent read) after the container read the sale's
//!   reset epoch, even (no reset under way), within the last [`EPOCH_LEASE`]; and each buyer's
//!   record was read after that. Only `reset-sale` gives items of such a sale back, and it makes
//!   the epoch odd, waits out every lease, and only then gives them back (`Store::reset_sale`).
//!
//! So from the stock read until the next reset no purchase of the sale can commit, and the records
//! read after it do not change: a remembered `sold_out` or `already_purchased` is as true as a
//! fresh read. A container answers from memory only while its last epoch read is younger than the
//! lease; a changed epoch forgets everything remembered of the sale. Anything else that would give
//! items of a sale without holds back (a restock) must move the epoch the same way.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ids::{SaleId, UserId};
use crate::sale::Sale;
use crate::store::{EPOCH_LEASE, PurchaseRecord, Store, StoreError};

/// Most buyers remembered per sale (then their refusals read the record, as without memory).
const REMEMBERED_BUYERS: usize = 100_000;

/// What [`SoldOutHint::settle`] found.
pub(crate) enum Settle {
    /// Sold out for good under this epoch: the buyer's record read next may be remembered.
    ForGood(u64),
    /// Not known to be sold out for good: the refusal reads the buyer's record, as the hint's.
    Unknown,
    /// The container believed the sale sold out for good, and the epoch has moved since (a
    /// reset): items may be back, so the transactions decide.
    Changed,
}

/// What a container knows of one sale beyond the hint.
struct Settled {
    /// The epoch last read and when that read was sent.
    epoch: u64,
    read_at: Instant,
    /// Every shard read empty under `epoch` (only for an even epoch, no holds).
    sold_out: bool,
    /// When the shards were last read without finding them all empty.
    stock_read_at: Option<Instant>,
    /// Buyers' records read after `sold_out` was established (`None`: no record).
    buyers: HashMap<UserId, Option<PurchaseRecord>>,
    /// Every owner, from the shards' rosters in the read that found them all empty (`None`: the
    /// shards keep no roster): anyone else has no record, with no read.
    owners: Option<std::collections::HashSet<String>>,
}

impl Settled {
    fn in_force(&self) -> bool {
        self.epoch.is_multiple_of(2) && self.read_at.elapsed() < EPOCH_LEASE
    }
}

/// Shards seen empty per sale (bit n = shard n) and when the first of them was seen.
pub(crate) struct SoldOutHint {
    ttl: Duration,
    empty: Mutex<HashMap<SaleId, (u64, Instant)>>,
    settled: Mutex<HashMap<SaleId, Settled>>,
}

impl SoldOutHint {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self { ttl, empty: Mutex::new(HashMap::new()), settled: Mutex::new(HashMap::new()) }
    }

    /// The buyer's record as remembered (`Some(None)`: no record), when the sale is sold out for
    /// good and the epoch lease is in force; `None`: read it.
    pub(crate) fn recall(&self, sale: &Sale, user: &UserId) -> Option<Option<PurchaseRecord>> {
        if sale.hold_seconds > 0 {
            return None;
        }
        let settled = self.settled.lock().unwrap_or_else(|p| p.into_inner());
        let s = settled.get(&sale.id).filter(|s| s.sold_out && s.in_force())?;
        if let Some(known) = s.buyers.get(user) {
            return Some(known.clone());
        }
        // Not on any shard's roster: no purchase of this buyer committed, and none can now.
        s.owners.as_ref().filter(|o| !o.contains(user.as_str())).map(|_| None)
    }

    /// Before a refusal reads the buyer's record: renews the epoch lease if it ran out (one
    /// consistent read), and learns whether the sale is sold out for good (one consistent read of
    /// the shards, at most once per lease while it is not).
    pub(crate) async fn settle(&self, store: &Store, sale: &Sale) -> Result<Settle, StoreError> {
        if sale.hold_seconds > 0 {
            return Ok(Settle::Unknown);
        }
        let renew = {
            let settled = self.settled.lock().unwrap_or_else(|p| p.into_inner());
            match settled.get(&sale.id) {
                Some(s) if s.in_force() => false,
                Some(s) if !s.epoch.is_multiple_of(2) && s.read_at.elapsed() < EPOCH_LEASE => {
                    return Ok(Settle::Unknown);
                }
                _ => true,
            }
        };
        if renew {
            let sent = Instant::now();
            let Some(epoch) = store.reset_epoch(&sale.id).await? else { return Ok(Settle::Unknown) };
            let mut settled = self.settled.lock().unwrap_or_else(|p| p.into_inner());
            let fresh = || Settled {
                epoch,
                read_at: sent,
                sold_out: false,
                stock_read_at: None,
                buyers: HashMap::new(),
                owners: None,
            };
            let s = settled.entry(sale.id.clone()).or_insert_with(fresh);
            if s.epoch != epoch {
                let believed = s.sold_out;
                *s = fresh();
                if believed {
                    return Ok(Settle::Changed);
                }
            }
            s.read_at = s.read_at.max(sent);
        }
        let epoch = {
            let settled = self.settled.lock().unwrap_or_else(|p| p.into_inner());
            match settled.get(&sale.id) {
                Some(s) if !s.epoch.is_multiple_of(2) => return Ok(Settle::Unknown),
                Some(s) if s.sold_out => return Ok(Settle::ForGood(s.epoch)),
                Some(s) if s.stock_read_at.is_none_or(|at| at.elapsed() >= EPOCH_LEASE) => s.epoch,
                _ => return Ok(Settle::Unknown),
            }
        };
        // Read after the epoch: if every shard is empty now, it stays so under this epoch, and
        // so do the shards' rosters (each read with its own shard's count).
        let (empty, owners) = store.shard_roster_now(sale).await?;
        let mut settled = self.settled.lock().unwrap_or_else(|p| p.into_inner());
        match settled.get_mut(&sale.id) {
            Some(s) if s.epoch == epoch => {
                if empty && !s.sold_out {
                    s.owners = owners;
                }
                s.sold_out |= empty;
                if !empty {
                    s.stock_read_at = Some(Instant::now());
                }
                Ok(if s.sold_out { Settle::ForGood(epoch) } else { Settle::Unknown })
            }
            _ => Ok(Settle::Unknown),
        }
    }

    /// Keeps `record`, read after [`SoldOutHint::settle`] returned `epoch`, while that epoch holds.
    pub(crate) fn remember(&self, sale: &SaleId, epoch: u64, user: &UserId, record: Option<PurchaseRecord>) {
        let mut settled = self.settled.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = settled.get_mut(sale).filter(|s| s.epoch == epoch && s.sold_out)
            && s.buyers.len() < REMEMBERED_BUYERS
        {
            s.buyers.insert(user.clone(), record);
        }
    }

    /// Whether this container believes the sale sold out for good (no transaction then: the
    /// refusal renews the lease first, and a changed epoch sends the buyer to the shards).
    fn sold_out_for_good(&self, sale: &Sale) -> bool {
        sale.hold_seconds == 0
            && self
                .settled
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&sale.id)
                .is_some_and(|s| s.sold_out && s.epoch.is_multiple_of(2))
    }

    /// Shards believed to have stock, in a random order per request so that buyers spread over
    /// partitions and an emptied shard's traffic spreads over all the others.
    /// Among `shards` only: one variant's (all of the sale's for a sale without variants).
    pub(crate) fn shard_order_in(&self, sale: &Sale, shards: std::ops::Range<u32>) -> Vec<u32> {
        if self.sold_out_for_good(sale) {
            return Vec::new();
        }
        let empty = {
            let mut seen = self.empty.lock().unwrap_or_else(|p| p.into_inner());
            match seen.get(&sale.id) {
                Some(&(bits, since)) if since.elapsed() < self.ttl => bits,
                Some(_) => {
                    seen.remove(&sale.id);
                    0
                }
                None => 0,
            }
        };
        let mut order: Vec<u32> = shards.filter(|n| empty & (1u64 << n) == 0).collect();
        fastrand::shuffle(&mut order);
        order
    }

    pub(crate) fn mark_empty(&self, sale: &SaleId, shard: u32) {
        let mut seen = self.empty.lock().unwrap_or_else(|p| p.into_inner());
        seen.entry(sale.clone()).or_insert_with(|| (0, Instant::now())).0 |= 1u64 << shard;
    }

    /// After items came back: every shard may have stock again.
    pub(crate) fn forget(&self, sale: &SaleId) {
        self.empty.lock().unwrap_or_else(|p| p.into_inner()).remove(sale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale(hold_seconds: i64) -> Sale {
        Sale {
            id: SaleId::parse("s").unwrap(),
            name: "Sneaker".into(),
            price_cents: 100,
            currency: "EUR".into(),
            total_stock: 2,
            shards: 2,
            starts_at_ms: 0,
            ends_at_ms: i64::MAX,
            room: None,
            hold_seconds,
            variants: Vec::new(),
            max_per_customer: 1,
        }
    }

    fn settled(hint: &SoldOutHint, epoch: u64, read_at: Instant) {
        let s = Settled { epoch, read_at, sold_out: true, stock_read_at: None, buyers: HashMap::new(), owners: None };
        hint.settled.lock().unwrap().insert(SaleId::parse("s").unwrap(), s);
    }

    fn user(n: usize) -> UserId {
        UserId::parse(&format!("u{n}")).unwrap()
    }

    #[test]
    fn remembered_buyers_are_bounded_per_sale_and_kept_only_under_their_epoch() {
        let hint = SoldOutHint::new(Duration::from_secs(1));
        let s = sale(0);
        settled(&hint, 2, Instant::now());
        for n in 0..REMEMBERED_BUYERS + 10 {
            hint.remember(&s.id, 2, &user(n), None);
        }
        assert_eq!(hint.settled.lock().unwrap()[&s.id].buyers.len(), REMEMBERED_BUYERS);
        assert_eq!(hint.recall(&s, &user(0)), Some(None));
        assert_eq!(hint.recall(&s, &user(REMEMBERED_BUYERS + 5)), None, "past the bound: read");
        settled(&hint, 4, Instant::now());
        hint.remember(&s.id, 2, &user(1), None);
        assert_eq!(hint.recall(&s, &user(1)), None, "read under an earlier epoch: not kept");
    }

    #[test]
    fn nothing_is_recalled_past_the_lease_during_a_reset_or_in_a_sale_with_holds() {
        let hint = SoldOutHint::new(Duration::from_secs(1));
        let past = Instant::now().checked_sub(EPOCH_LEASE + Duration::from_millis(10)).unwrap();
        for (epoch, read_at, holds) in [(2, past, 0), (3, Instant::now(), 0), (2, Instant::now(), 60)] {
            settled(&hint, epoch, read_at);
            hint.settled.lock().unwrap().get_mut(&SaleId::parse("s").unwrap()).unwrap().buyers.insert(user(0), None);
            assert_eq!(hint.recall(&sale(holds), &user(0)), None, "epoch {epoch}, holds {holds}");
        }
        settled(&hint, 2, Instant::now());
        hint.remember(&sale(0).id, 2, &user(0), None);
        assert_eq!(hint.recall(&sale(0), &user(0)), Some(None), "in force: recalled");
    }
}
