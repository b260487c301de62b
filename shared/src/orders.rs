//! The order lifecycle's use cases: confirm (the shop's payment backend), cancel (the buyer),
//! release of ended holds (the sweeper, and a buyer who finds no stock). See [`crate::order`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::error::AppError;
use crate::ids::{SaleId, UserId};
use crate::order::{OrderStatus, Purchase};
use crate::sale::Sale;
use crate::stock_hint::SoldOutHint;
use crate::store::{Change, Hold, PurchaseRecord, Store, logged};

/// Holds read per index partition in one look: enough to release a burst, bounded per call.
const HOLDS_PER_LANE: i32 = 25;
/// How long after its creation an order may still be missing from the `orders` index (it is
/// eventually consistent): an unknown order id younger than this is looked up again.
const ORDER_INDEX_LAG_MS: i64 = 5_000;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    /// Sales with holds that were looked at.
    pub sales: u32,
    /// Holds found ended and released (status `expired`, item back on its shard).
    pub released: u32,
    /// Ended holds another writer changed first (confirmed, cancelled or released elsewhere).
    pub skipped: u32,
    /// The limit or the time budget ended the sweep before every ended hold was looked at.
    pub stopped_early: bool,
}

/// The order use cases of one container, with its hold horizon: per sale, a time before which
/// no hold can have ended, as of this container's last look at the holds index.
pub(crate) struct Orders {
    store: Store,
    clock: Arc<dyn Clock>,
    catalog: Arc<Catalog>,
    sold_out: Arc<SoldOutHint>,
    horizon: HoldHorizon,
}

#[derive(Default)]
struct HoldHorizon(Mutex<HashMap<SaleId, i64>>);

impl HoldHorizon {
    fn clear_until(&self, sale: &SaleId) -> i64 {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(sale).copied().unwrap_or(i64::MIN)
    }

    fn set(&self, sale: &SaleId, until: i64) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(sale.clone(), until);
    }
}

impl Orders {
    pub(crate) fn new(store: Store, clock: Arc<dyn Clock>, catalog: Arc<Catalog>, sold_out: Arc<SoldOutHint>) -> Self {
        Self { store, clock, catalog, sold_out, horizon: HoldHorizon::default() }
    }

    /// `POST /sales/{saleId}/orders/{orderId}/confirm`: a reserved order whose hold has not ended
    /// becomes `confirmed`. Confirming a confirmed order answers it again.
    pub(crate) async fn confirm(&self, sale_id: &SaleId, order_id: &str) -> Result<Purchase, AppError> {
        let sale = self.catalog.sale(sale_id).await?;
        let pk = self.order_record_pk(&sale, order_id).await?;
        for _ in 0..3 {
            let now = self.clock.now_ms();
            match self.store.confirm_hold(&pk, order_id, now).await.map_err(logged)? {
                Change::Done(r) => {
                    crate::telemetry::record_order_change(OrderStatus::Confirmed, false);
                    return Ok(r.to_purchase());
                }
                Change::Refused(Some(r)) if r.order_id == order_id => {
                    return match r.status {
                        OrderStatus::Confirmed => Ok(r.to_purchase()),
                        OrderStatus::Cancelled => Err(AppError::OrderCancelled(Box::new(r.to_purchase()))),
                        // Reserved past its end (not yet released) or released: too late to pay.
                        OrderStatus::Reserved | OrderStatus::Expired => {
                            Err(AppError::HoldExpired(Box::new(r.to_purchase())))
                        }
                    };
                }
                // The record now holds another order of the same buyer (this one was given back
                // and the buyer bought again), or none.
                Change::Refused(_) => return Err(AppError::OrderNotFound),
                Change::Conflict => tokio::time::sleep(Duration::from_millis(fastrand::u64(5..=20))).await,
            }
        }
        Err(AppError::Busy)
    }

    /// The record of `order_id` in this sale, through the `orders` index. An order id that is not
    /// found but whose ULID time is only seconds old is looked up again for a moment: the index
    /// is eventually consistent and the order may be newer than it.
    async fn order_record_pk(&self, sale: &Sale, order_id: &str) -> Result<String, AppError> {
        let Ok(ulid) = ulid::Ulid::from_string(order_id) else {
            return Err(AppError::OrderNotFound);
        };
        let prefix = crate::keys::purchase_pk(sale.id.as_str(), "");
        for attempt in 0..8 {
            if let Some(pk) = self.store.find_order(order_id).await.map_err(logged)? {
                // An order of another sale is not found here.
                return if pk.starts_with(&prefix) { Ok(pk) } else { Err(AppError::OrderNotFound) };
            }
            let age = self.clock.now_ms() - i64::try_from(ulid.timestamp_ms()).unwrap_or(i64::MAX);
            if attempt == 7 || !(0..ORDER_INDEX_LAG_MS).contains(&age) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(AppError::OrderNotFound)
    }

    /// `DELETE /sales/{saleId}/purchases/{userId}`: the buyer gives a reserved item back
    /// (`cancelled`; a hold that has already ended is released as `expired`). A cancelled or
    /// expired order is answered as it is (cancelling twice is harmless); a confirmed one cannot
    /// be cancelled.
    pub(crate) async fn cancel(&self, sale_id: &SaleId, user: &UserId) -> Result<Purchase, AppError> {
        self.catalog.sale(sale_id).await?;
        for _ in 0..3 {
            let record = self.store.get_purchase(sale_id, user).await.map_err(logged)?;
            let Some(r) = record else { return Err(AppError::PurchaseNotFound) };
            match r.status {
                OrderStatus::Confirmed => return Err(AppError::OrderConfirmed(Box::new(r.to_purchase()))),
                OrderStatus::Cancelled | OrderStatus::Expired => return Ok(r.to_purchase()),
                OrderStatus::Reserved => {}
            }
            let now = self.clock.now_ms();
            // A hold that has ended is released as what it is, `expired`, whoever asks.
            let ended = r.hold_expires_at.is_some_and(|at| at <= now);
            let (to, by) = if ended { (OrderStatus::Expired, Some(now)) } else { (OrderStatus::Cancelled, None) };
            let change = self.store.release_hold(sale_id, &Hold::of(&r), to, by, now).await.map_err(logged)?;
            match change {
                Change::Done(r) => {
                    self.sold_out.forget(sale_id);
                    crate::telemetry::record_order_change(to, true);
                    return Ok(r.to_purchase());
                }
                // Changed under us (confirmed, released, or replaced): judge it again as it is now.
                Change::Refused(_) => {}
                Change::Conflict => tokio::time::sleep(Duration::from_millis(fastrand::u64(5..=20))).await,
            }
        }
        Err(AppError::Busy)
    }

    /// Releases up to `limit` holds of `sale` that have ended, unless this container knows that
    /// none can have ended yet. Returns how many it released.
    pub(crate) async fn release_expired_holds(&self, sale: &Sale, limit: usize) -> Result<usize, AppError> {
        let now = self.clock.now_ms();
        if now < self.horizon.clear_until(&sale.id) {
            return Ok(0);
        }
        let holds = self.store.earliest_holds(&sale.id, HOLDS_PER_LANE).await.map_err(logged)?;
        let (ended, pending): (Vec<Hold>, Vec<Hold>) = holds.into_iter().partition(|h| h.expires_at_ms <= now);
        // No hold created from now on ends before now + holdSeconds; none listed ends before the
        // earliest pending one. Until then, a look would find nothing to release.
        let next =
            pending.iter().map(|h| h.expires_at_ms).min().unwrap_or(i64::MAX).min(now + sale.hold_seconds * 1_000);
        let mut released = 0;
        let mut rest_ended = false;
        for (i, hold) in ended.iter().enumerate() {
            if released >= limit {
                rest_ended = i < ended.len();
                break;
            }
            if self.expire(sale, hold, now).await? {
                released += 1;
            }
        }
        if !rest_ended && ended.len() < HOLDS_PER_LANE as usize * crate::keys::HOLD_LANES as usize {
            self.horizon.set(&sale.id, next);
        }
        Ok(released)
    }

    /// Releases the ended hold of `record` (its buyer is buying again). False if another writer
    /// changed it first.
    pub(crate) async fn expire_hold(&self, sale: &Sale, record: &PurchaseRecord, now: i64) -> Result<bool, AppError> {
        self.expire(sale, &Hold::of(record), now).await
    }

    /// Releases one ended hold (`reserved` and ended → `expired`, item back). False if another
    /// writer changed it first.
    async fn expire(&self, sale: &Sale, hold: &Hold, now: i64) -> Result<bool, AppError> {
        for _ in 0..3 {
            let change =
                self.store.release_hold(&sale.id, hold, OrderStatus::Expired, Some(now), now).await.map_err(logged)?;
            match change {
                Change::Done(_) => {
                    crate::telemetry::record_order_change(OrderStatus::Expired, true);
                    return Ok(true);
                }
                Change::Refused(_) => return Ok(false),
                Change::Conflict => tokio::time::sleep(Duration::from_millis(fastrand::u64(5..=20))).await,
            }
        }
        Ok(false)
    }

    /// The sweeper: releases every ended hold of every sale with holds, at most `limit` in all,
    /// and stops early once `budget` has passed (the next run continues).
    pub(crate) async fn sweep(&self, limit: usize, budget: Duration) -> Result<SweepReport, AppError> {
        let started = std::time::Instant::now();
        let mut report = SweepReport::default();
        let sales = self.store.list_sales().await.map_err(logged)?;
        let now = self.clock.now_ms();
        for sale in sales.into_iter().filter(|s| s.hold_seconds > 0) {
            // Holds end at most holdSeconds after the window closes: older sales have none left.
            if now > sale.ends_at_ms + sale.hold_seconds * 1_000 + 86_400_000 {
                continue;
            }
            report.sales += 1;
            // Passes until a look finds no full page of ended holds; the index lags the table
            // briefly, so an entry just released may show once more (counted as skipped).
            for _ in 0..10 {
                if report.released + report.skipped >= limit as u32 || started.elapsed() >= budget {
                    report.stopped_early = true;
                    return Ok(report);
                }
                let holds = self.store.earliest_holds(&sale.id, HOLDS_PER_LANE).await.map_err(logged)?;
                let ended: Vec<Hold> = holds.into_iter().filter(|h| h.expires_at_ms <= now).collect();
                let mut released = 0;
                for hold in &ended {
                    if self.expire(&sale, hold, now).await? {
                        released += 1;
                    } else {
                        report.skipped += 1;
                    }
                }
                report.released += released;
                if released == 0 || ended.len() < HOLDS_PER_LANE as usize {
                    break;
                }
            }
        }
        Ok(report)
    }

    /// An operator's release of a buyer's reserved order (support: the buyer asked, the payment
    /// failed): as a cancellation, whether or not the hold has ended.
    pub(crate) async fn release(&self, sale_id: &SaleId, user: &UserId) -> Result<Purchase, AppError> {
        self.cancel(sale_id, user).await
    }
}
