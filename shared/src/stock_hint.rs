//! The sold-out hint: the shards of each sale that this container saw empty, kept for
//! `Tuning::sold_out_hint`, so that a crowd arriving after a sell-out costs no transactions. Only
//! ever a hint: a refusal it gives is checked against the buyer's record (see `checkout`), and
//! anything that gives an item back forgets it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ids::SaleId;
use crate::sale::Sale;

/// Shards seen empty per sale (bit n = shard n) and when the first of them was seen.
pub(crate) struct SoldOutHint {
    ttl: Duration,
    empty: Mutex<HashMap<SaleId, (u64, Instant)>>,
}

impl SoldOutHint {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self { ttl, empty: Mutex::new(HashMap::new()) }
    }

    /// Shards believed to have stock, in a random order per request so that buyers spread over
    /// partitions and an emptied shard's traffic spreads over all the others.
    /// Among `shards` only: one variant's (all of the sale's for a sale without variants).
    pub(crate) fn shard_order_in(&self, sale: &Sale, shards: std::ops::Range<u32>) -> Vec<u32> {
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
