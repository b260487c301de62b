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
use crate::store::{Change, Hold, Malformed, PurchaseRecord, Store, StoreError, logged};

/// Holds read per index partition in one look: enough to release a burst, bounded per call.
const HOLDS_PER_LANE: i32 = 25;
/// How long after its creation an order may still be missing from the `orders` index (it is
/// eventually consistent): an unknown order id younger than this is looked up again.
const ORDER_INDEX_LAG_MS: i64 = 5_000;
/// Sweeps in which a hold's release failed (transiently) before the sweeper sets it aside for an
/// operator; a release that fails for good sets it aside at once.
pub const FAILED_SWEEPS_BEFORE_ASIDE: i64 = 5;

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
    /// Ended holds whose release failed in this sweep (logged with their keys, counted in
    /// `Errors`); the other holds were released all the same.
    pub failed: u32,
    /// Of those, holds set aside for an operator (`flash-sale-admin stuck-holds`): later sweeps
    /// skip them.
    pub set_aside: u32,
    /// Sales whose holds could not be listed in this sweep.
    pub failed_sales: u32,
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

/// Per sale and `holds` index partition (lane): a time before which no hold listed there can
/// have ended, as of this container's last look at that lane.
#[derive(Default)]
struct HoldHorizon(Mutex<HashMap<SaleId, [i64; crate::keys::HOLD_LANES as usize]>>);

impl HoldHorizon {
    /// The lanes a look may find an ended hold in at `now`.
    fn due_lanes(&self, sale: &SaleId, now: i64) -> Vec<u32> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let lanes = map.get(sale).copied().unwrap_or([i64::MIN; crate::keys::HOLD_LANES as usize]);
        (0..crate::keys::HOLD_LANES).filter(|&l| lanes[l as usize] <= now).collect()
    }

    fn set(&self, sale: &SaleId, lane: u32, until: i64) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let lanes = map.entry(sale.clone()).or_insert([i64::MIN; crate::keys::HOLD_LANES as usize]);
        if let Some(slot) = lanes.get_mut(lane as usize) {
            *slot = until;
        }
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
    /// be cancelled. `order_id` names the order; without it, the buyer's one order (or, with
    /// several items per customer, the latest reserved one, else the latest).
    pub(crate) async fn cancel(
        &self,
        sale_id: &SaleId,
        user: &UserId,
        order_id: Option<&str>,
    ) -> Result<Purchase, AppError> {
        let sale = self.catalog.sale(sale_id).await?;
        for _ in 0..3 {
            let record = match (sale.max_per_customer > 1, order_id) {
                (true, Some(id)) => self.store.order(sale_id, user, id).await,
                (true, None) => self.store.latest_order(sale_id, user, true).await,
                (false, _) => self.store.get_purchase(sale_id, user).await,
            };
            let record = record.map_err(logged)?.filter(|r| order_id.is_none_or(|id| id == r.order_id));
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
            let change = self.store.release_hold(&sale, &Hold::of(&r), to, by, now).await.map_err(logged)?;
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

    /// Releases up to `limit` holds of `sale` that have ended, looking only at the index
    /// partitions where this container does not know that none can have ended yet. Returns how
    /// many ended holds it found and tried: released here, or changed by another writer first
    /// (released or cancelled elsewhere: their items are back, and the buyer learns it from the
    /// shards).
    pub(crate) async fn release_expired_holds(&self, sale: &Sale, limit: usize) -> Result<usize, AppError> {
        let now = self.clock.now_ms();
        // Only the index partitions where a hold may have ended since this container last looked:
        // holds end one by one after a sell-out, so most looks read one partition, not all.
        let lanes = self.horizon.due_lanes(&sale.id, now);
        if lanes.is_empty() {
            return Ok(0);
        }
        // Malformed entries are the sweeper's to set aside.
        let (holds, _malformed) =
            self.store.earliest_holds_in(&sale.id, lanes.iter().copied(), HOLDS_PER_LANE).await.map_err(logged)?;
        for &lane in &lanes {
            let listed: Vec<&Hold> = holds.iter().filter(|h| h.lane() == lane).collect();
            // No hold created from now on ends before now + holdSeconds; none listed ends before
            // the earliest pending one. A full page may hide more ended holds: look again.
            let next = if listed.len() >= HOLDS_PER_LANE as usize {
                now
            } else {
                listed
                    .iter()
                    .filter(|h| h.expires_at_ms > now)
                    .map(|h| h.expires_at_ms)
                    .min()
                    .unwrap_or(i64::MAX)
                    .min(now + sale.hold_seconds * 1_000)
            };
            self.horizon.set(&sale.id, lane, next);
        }
        let mut ended: Vec<Hold> = holds.into_iter().filter(|h| h.expires_at_ms <= now).collect();
        // Containers that look at once start on different holds rather than all on the first.
        fastrand::shuffle(&mut ended);
        let mut back = 0;
        for hold in ended.iter().take(limit) {
            match self.try_expire(sale, hold, now).await {
                Ok(true) => back += 1,
                // Another writer changed it first: released (or cancelled) elsewhere, its item is
                // back; or confirmed. Either way the shards tell: the buyer tries them.
                Ok(false) => back += 1,
                // DynamoDB is struggling: the buyer's answer does not wait for the rest.
                Err(e) if e.is_transient() => {
                    tracing::warn!(sale = %sale.id, pk = %hold.pk, error = %e, "hold release failed");
                    // The rest of what this look found is still due.
                    self.horizon.set(&sale.id, hold.lane(), now);
                    return Ok(back);
                }
                // One hold that cannot be released does not keep the others from going back to
                // stock (the sweeper sets it aside).
                Err(e) => {
                    tracing::error!(sale = %sale.id, pk = %hold.pk, order = %hold.order_id, error = %e, "hold release failed");
                    crate::telemetry::record_error("hold_release");
                }
            }
        }
        // Ended holds left for later: their lanes are still due.
        for hold in ended.iter().skip(limit) {
            self.horizon.set(&sale.id, hold.lane(), now);
        }
        Ok(back)
    }

    /// Releases the ended hold of `record` (its buyer is buying again). False if another writer
    /// changed it first.
    pub(crate) async fn expire_hold(&self, sale: &Sale, record: &PurchaseRecord, now: i64) -> Result<bool, AppError> {
        self.expire(sale, &Hold::of(record), now).await
    }

    /// Releases one ended hold (`reserved` and ended → `expired`, item back). False if another
    /// writer changed it first.
    async fn expire(&self, sale: &Sale, hold: &Hold, now: i64) -> Result<bool, AppError> {
        self.try_expire(sale, hold, now).await.map_err(logged)
    }

    /// [`Orders::expire`] with the store's error as it is, for the callers that go on after it.
    async fn try_expire(&self, sale: &Sale, hold: &Hold, now: i64) -> Result<bool, StoreError> {
        for _ in 0..3 {
            let change = self.store.release_hold(sale, hold, OrderStatus::Expired, Some(now), now).await?;
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
    /// and stops early once `budget` has passed (the next run continues). A hold whose release
    /// fails is logged with its key, counted in `Errors` (kind `hold_release`) and passed over:
    /// the others are released all the same. One that fails for good, or in
    /// [`FAILED_SWEEPS_BEFORE_ASIDE`] sweeps, is set aside for an operator. Throttling ends the
    /// sale's sweep (the next run continues). Fails only when the sales cannot be listed.
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
            'passes: for _ in 0..10 {
                if report.released + report.skipped >= limit as u32 || started.elapsed() >= budget {
                    report.stopped_early = true;
                    return Ok(report);
                }
                let (holds, malformed) = match self.store.earliest_holds(&sale.id, HOLDS_PER_LANE).await {
                    Ok(listed) => listed,
                    Err(e) => {
                        tracing::error!(sale = %sale.id, error = %e, "the sale's holds could not be listed");
                        crate::telemetry::record_error(if e.is_transient() { "hold_release" } else { "store" });
                        report.failed_sales += 1;
                        break;
                    }
                };
                for entry in &malformed {
                    report.failed += 1;
                    self.set_malformed_aside(&sale, entry, now, &mut report).await;
                }
                let ended: Vec<Hold> = holds.into_iter().filter(|h| h.expires_at_ms <= now).collect();
                let mut released = 0;
                for hold in &ended {
                    match self.try_expire(&sale, hold, now).await {
                        Ok(true) => released += 1,
                        Ok(false) => report.skipped += 1,
                        Err(e @ StoreError::Throttled(_)) => {
                            tracing::warn!(sale = %sale.id, pk = %hold.pk, error = %e, "throttled: the sale's sweep ends here");
                            report.failed += 1;
                            report.released += released;
                            break 'passes;
                        }
                        Err(e) => {
                            tracing::error!(
                                sale = %sale.id, pk = %hold.pk, order = %hold.order_id, shard = hold.shard,
                                error = %e, "hold release failed"
                            );
                            crate::telemetry::record_error("hold_release");
                            report.failed += 1;
                            self.note_failure(&sale, hold, &e, now, &mut report).await;
                        }
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

    /// Counts a failed release on the hold's record, and sets the hold aside when the failure
    /// is for good or has repeated. Best effort: a failure here is logged, the sweep goes on.
    async fn note_failure(&self, sale: &Sale, hold: &Hold, error: &StoreError, now: i64, report: &mut SweepReport) {
        let text = error.to_string();
        let aside = if error.is_transient() {
            match self.store.note_release_failure(&hold.pk, &hold.hold_key, &text, now).await {
                Ok(count) => count.is_some_and(|n| n >= FAILED_SWEEPS_BEFORE_ASIDE),
                Err(e) => {
                    tracing::warn!(pk = %hold.pk, error = %e, "the failed release could not be counted");
                    false
                }
            }
        } else {
            true
        };
        if aside {
            match self.store.set_hold_aside(&sale.id, &hold.pk, &hold.hold_key, &text, now).await {
                Ok(true) => {
                    tracing::error!(sale = %sale.id, pk = %hold.pk, order = %hold.order_id, "hold set aside: see flash-sale-admin stuck-holds");
                    report.set_aside += 1;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(pk = %hold.pk, error = %e, "the hold could not be set aside"),
            }
        }
    }

    /// An index entry without what a release needs: logged, counted, and set aside (its record
    /// needs an operator).
    async fn set_malformed_aside(&self, sale: &Sale, entry: &Malformed, now: i64, report: &mut SweepReport) {
        tracing::error!(sale = %sale.id, pk = %entry.pk, detail = %entry.detail, "hold cannot be released");
        crate::telemetry::record_error("stored_data");
        if entry.pk.is_empty() {
            return;
        }
        match self.store.set_hold_aside(&sale.id, &entry.pk, &entry.hold_key, &entry.detail, now).await {
            Ok(true) => report.set_aside += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!(pk = %entry.pk, error = %e, "the hold could not be set aside"),
        }
    }

    /// An operator's release of a buyer's reserved order (support: the buyer asked, the payment
    /// failed): as a cancellation, whether or not the hold has ended.
    pub(crate) async fn release(&self, sale_id: &SaleId, user: &UserId) -> Result<Purchase, AppError> {
        self.cancel(sale_id, user, None).await
    }
}
