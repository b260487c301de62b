//! The purchase use case: which shards to try in which order, the per-container hints that save
//! DynamoDB calls, conflict retries, and the rule that no refusal contradicts a stored purchase.
//!
//! Correctness never depends on a hint: the transaction's conditions decide (see
//! `store::purchase_tx`). A refusal that a hint or the cached sale window gives, without a
//! transaction of this request behind it, is checked against the buyer's record first.

use std::sync::Arc;
use std::time::Duration;

use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::config::Tuning;
use crate::error::AppError;
use crate::ids::{SaleId, UserId};
use crate::order::{OrderStatus, Purchase};
use crate::orders::Orders;
use crate::sale::{Sale, Window};
use crate::stock_hint::{Settle, SoldOutHint};
use crate::store::{Attempt, PurchaseRecord, Store, StoreError, logged};
use crate::waiting_room::WaitingRoom;

/// Most expired holds one purchase releases when it finds no stock (the sweeper does the rest).
const PURCHASE_RELEASE_LIMIT: usize = 4;

/// The purchase result with what it took, for the request log and metrics.
#[derive(Debug)]
pub struct PurchaseReport {
    pub result: Result<Purchase, AppError>,
    /// The shard that sold the item, or the last shard tried.
    pub shard: Option<u32>,
    /// Conflict retries across all shards.
    pub retries: u32,
    /// `TransactWriteItems` calls made.
    pub transactions: u32,
    /// True when the sold-out hint answered without a transaction.
    pub from_hint: bool,
    /// True when the refusal came from what the container remembered of this buyer in a sale
    /// sold out for good: no DynamoDB call at all.
    pub remembered: bool,
}

/// The purchase use case of one container. It owns no cache of its own: it reads the sale
/// configuration, the sold-out hint and the waiting room's admitted range that it shares with the
/// other use cases.
pub(crate) struct Checkout {
    pub(crate) store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) tuning: Tuning,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) sold_out: Arc<SoldOutHint>,
    pub(crate) room: Arc<WaitingRoom>,
    pub(crate) orders: Arc<Orders>,
}

impl Checkout {
    async fn backoff(&self, attempt: u32) {
        let t = &self.tuning;
        let cap = t.backoff_cap.min(t.backoff_base.saturating_mul(1 << attempt.min(16)));
        let ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..=ms))).await;
    }

    /// Buys one item of `sale_id` for `user`: one `TransactWriteItems` per shard tried (plus
    /// bounded retries on conflicts), never more items than stock, never two per user.
    ///
    /// `idempotency_key` is the request's `Idempotency-Key`: a purchase stored with the same key
    /// is this request's own, answered as a success whatever the stock or window say now.
    /// `admission_token` is the waiting room's, required when the sale has a room.
    pub(crate) async fn purchase(
        &self,
        sale_id: &SaleId,
        user: &UserId,
        idempotency_key: Option<&str>,
        admission_token: Option<&str>,
    ) -> PurchaseReport {
        let mut report = PurchaseReport {
            result: Err(AppError::Internal),
            shard: None,
            retries: 0,
            transactions: 0,
            from_hint: false,
            remembered: false,
        };
        report.result = self.purchase_inner(sale_id, user, idempotency_key, admission_token, &mut report).await;
        report
    }

    async fn purchase_inner(
        &self,
        sale_id: &SaleId,
        user: &UserId,
        key: Option<&str>,
        admission_token: Option<&str>,
        report: &mut PurchaseReport,
    ) -> Result<Purchase, AppError> {
        let sale = self.catalog.sale(sale_id).await?;
        if let Err(refusal) = self.room.check_admission(&sale, user, admission_token).await {
            // A retry of a purchase that committed (same Idempotency-Key) is answered with it,
            // even when its admission token has expired since: one read, only for keyed requests.
            return match key {
                Some(_) => self.unless_owned(sale_id, user, key, refusal).await,
                None => Err(refusal),
            };
        }
        let early = match sale.window_at(self.clock.now_ms()) {
            Window::NotStarted => Some(AppError::SaleNotStarted { starts_at_ms: sale.starts_at_ms }),
            Window::Ended => Some(AppError::SaleEnded),
            Window::Open => None,
        };
        let shards = self.sold_out.shard_order(&sale);
        let early = early.or_else(|| {
            report.from_hint = shards.is_empty();
            shards.is_empty().then_some(AppError::SoldOut)
        });
        let early = match early {
            // Expired holds may give items back before the sold-out hint is believed.
            Some(AppError::SoldOut)
                if sale.hold_seconds > 0
                    && self.orders.release_expired_holds(&sale, PURCHASE_RELEASE_LIMIT).await? > 0 =>
            {
                self.sold_out.forget(sale_id);
                report.from_hint = false;
                None
            }
            other => other,
        };
        if let Some(refusal) = early {
            if !report.from_hint {
                return self.unless_owned(sale_id, user, key, refusal).await;
            }
            if let Some(answer) = self.sold_out_refusal(&sale, user, key, refusal, report).await {
                return answer;
            }
            // Believed sold out for good, and a reset moved the sale since: the shards decide.
            self.sold_out.forget(sale_id);
            report.from_hint = false;
        }
        let shards = if shards.is_empty() { self.sold_out.shard_order(&sale) } else { shards };

        let order_id = ulid::Ulid::new().to_string();
        let mut shards = shards;
        // A second round only after expired holds of this sale gave items back.
        for round in 0..2 {
            match self.try_shards(&sale, user, key, &order_id, shards, report).await {
                Err(AppError::SoldOut) if round == 0 && sale.hold_seconds > 0 => {
                    if self.orders.release_expired_holds(&sale, PURCHASE_RELEASE_LIMIT).await? == 0 {
                        return Err(AppError::SoldOut);
                    }
                    self.sold_out.forget(sale_id);
                    shards = self.sold_out.shard_order(&sale);
                }
                other => return other,
            }
        }
        Err(AppError::SoldOut)
    }

    /// One pass over `shards`: a transaction per shard until one sells, refuses for good, or all
    /// are empty (`sold_out`).
    async fn try_shards(
        &self,
        sale: &Sale,
        user: &UserId,
        key: Option<&str>,
        order_id: &str,
        shards: Vec<u32>,
        report: &mut PurchaseReport,
    ) -> Result<Purchase, AppError> {
        let sale_id = &sale.id;
        let mut busy = false;
        let mut throttled = 0;
        let mut released_own = false;
        for shard in shards {
            report.shard = Some(shard);
            let mut attempt = 0;
            loop {
                // The window is judged when the transaction is sent, and `purchasedAt` is that
                // moment, so the stored order of buyers follows the commits.
                let now = self.clock.now_ms();
                let mut record =
                    PurchaseRecord::new(sale_id, user, order_id.to_owned(), now, shard, key.map(str::to_owned));
                if sale.hold_seconds > 0 {
                    record = record.held_until(now + sale.hold_seconds * 1_000, fastrand::u32(..));
                }
                // Unique per transaction: a retry of this exact call replays it safely, while
                // a new attempt (another shard, a retry after a conflict) is a new transaction.
                let token = format!("{order_id}-{shard}-{attempt}");
                report.transactions += 1;
                // A transient error here leaves the outcome unknown: busy, and a retry will tell.
                // Throttling (of the call, after the SDK's retries) is the shard's, as below.
                let outcome = match self.store.try_purchase(sale, shard, &record, now, &token).await {
                    Err(StoreError::Throttled(code)) => {
                        tracing::warn!(shard, code = %code, "purchase transaction throttled");
                        Attempt::Throttled
                    }
                    other => other.map_err(logged)?,
                };
                match outcome {
                    Attempt::Committed => {
                        crate::telemetry::record_order_change(record.status, false);
                        return Ok(record.to_purchase());
                    }
                    // The buyer's own hold (of an earlier purchase) has ended but is not released
                    // yet: release it (the item goes back to its shard) and try again, once.
                    Attempt::AlreadyPurchased(p)
                        if !released_own
                            && p.order_id != order_id
                            && p.status == OrderStatus::Reserved
                            && p.hold_expires_at.is_some_and(|at| at <= now) =>
                    {
                        released_own = true;
                        attempt += 1;
                        self.orders.expire_hold(sale, &p, now).await?;
                        self.sold_out.forget(sale_id);
                    }
                    // This purchase's own order (an earlier attempt committed, its answer lost):
                    // the success it was, in whatever status the order is now; anyone else's
                    // order: already_purchased.
                    Attempt::AlreadyPurchased(p) => return owned(*p, order_id, key, now),
                    Attempt::NotStarted => {
                        return Err(AppError::SaleNotStarted { starts_at_ms: sale.starts_at_ms });
                    }
                    Attempt::Ended => return Err(AppError::SaleEnded),
                    Attempt::ShardMissing => return Err(AppError::SaleNotFound),
                    Attempt::ShardEmpty => {
                        self.sold_out.mark_empty(sale_id, shard);
                        break;
                    }
                    Attempt::Conflict if attempt < self.tuning.conflict_retries => {
                        self.backoff(attempt).await;
                        attempt += 1;
                        report.retries += 1;
                    }
                    // Out of retries on this shard: the others may still have stock.
                    Attempt::Conflict => {
                        busy = true;
                        break;
                    }
                    // A throttled shard (a hot partition) sends the buyer to the other shards,
                    // like a conflicted one; a second throttled shard is the table's trouble, and
                    // trying every shard would only add to it: busy.
                    Attempt::Throttled => {
                        throttled += 1;
                        if throttled >= 2 {
                            return Err(AppError::Busy);
                        }
                        break;
                    }
                    Attempt::Unreadable(pk) => {
                        tracing::error!(pk = %pk, "stored item does not parse");
                        return Err(AppError::Internal);
                    }
                    // A cancellation this code does not understand commits nothing, and a retry
                    // would meet it again: an internal error, alarmed.
                    Attempt::Unknown(why) => {
                        tracing::error!(shard, reason = %why, "purchase transaction cancelled for an unknown reason");
                        crate::telemetry::record_error("store");
                        return Err(AppError::Internal);
                    }
                }
            }
        }
        // A throttled shard's stock is unknown; no read now: a successful read would refill the
        // SDK's retry quota that a throttling storm is meant to spend.
        if throttled > 0 {
            return Err(AppError::Busy);
        }
        // Every shard refused as empty in a transaction that also found no record of this buyer.
        if !busy {
            return Err(AppError::SoldOut);
        }
        // Some shards were never reached through their conflicts: whether stock remains behind
        // them is unknown. One consistent read of the shards tells: none left is a true
        // `sold_out` (conflicts on emptied shards are common right after a sell-out); any left,
        // a retry may get it.
        // The conflicted transactions may not have judged the buyer's record: `sold_out` from
        // this read goes through the same check as any refusal without a transaction behind it.
        let left = self.store.shard_stock_now(sale).await.map_err(logged)?;
        if left.iter().any(|r| *r > 0) {
            return Err(AppError::Busy);
        }
        self.unless_owned(sale_id, user, key, AppError::SoldOut).await
    }

    /// `refusal`, unless the buyer already owns an item of this sale (one strongly consistent
    /// read): then `already_purchased`, or the purchase itself when it carries this request's
    /// idempotency key.
    async fn unless_owned(
        &self,
        sale_id: &SaleId,
        user: &UserId,
        key: Option<&str>,
        refusal: AppError,
    ) -> Result<Purchase, AppError> {
        let record = self.store.get_purchase(sale_id, user).await.map_err(logged)?;
        unless_owned_by(record, key, self.clock.now_ms(), refusal)
    }

    /// The sold-out hint's refusal, judged as [`Checkout::unless_owned`] does: on the buyer's
    /// record as this container remembers it when the sale is sold out for good (no DynamoDB
    /// call; see `stock_hint`), else as read now, and then remembered if it may be. `None` when
    /// the container believed the sale sold out for good and a reset has moved it since.
    async fn sold_out_refusal(
        &self,
        sale: &Sale,
        user: &UserId,
        key: Option<&str>,
        refusal: AppError,
        report: &mut PurchaseReport,
    ) -> Option<Result<Purchase, AppError>> {
        let mut settle = Settle::Unknown;
        if self.sold_out.recall(sale, user).is_none() {
            settle = match self.sold_out.settle(&self.store, sale).await {
                Ok(Settle::Changed) => return None,
                Ok(settle) => settle,
                Err(e) => return Some(Err(logged(e))),
            };
        }
        // Remembered (perhaps under the lease just renewed): no read.
        if let Some(record) = self.sold_out.recall(sale, user) {
            report.remembered = true;
            return Some(unless_owned_by(record, key, self.clock.now_ms(), refusal));
        }
        let record = match self.store.get_purchase(&sale.id, user).await {
            Ok(record) => record,
            Err(e) => return Some(Err(logged(e))),
        };
        if let Settle::ForGood(epoch) = settle {
            self.sold_out.remember(&sale.id, epoch, user, record.clone());
        }
        Some(unless_owned_by(record, key, self.clock.now_ms(), refusal))
    }
}

/// `refusal`, unless `record` (the buyer's, as stored) holds a live order: then
/// `already_purchased`, or the purchase itself when it carries this request's idempotency key.
fn unless_owned_by(
    record: Option<PurchaseRecord>,
    key: Option<&str>,
    now: i64,
    refusal: AppError,
) -> Result<Purchase, AppError> {
    match record {
        Some(p) if p.is_live_at(now) => owned(p, "", key, now),
        // An ended hold holds nothing: the refusal stands, except for this request's own
        // retry (same key), which is answered with its order as it is now.
        Some(p) if key.is_some() && p.idempotency_key.as_deref() == key => Ok(p.to_purchase_at(now)),
        _ => Err(refusal),
    }
}

/// A stored purchase found for this buyer: this request's own (same order id or same
/// idempotency key) is a success, anyone else's an `already_purchased`.
fn owned(p: PurchaseRecord, order_id: &str, key: Option<&str>, now_ms: i64) -> Result<Purchase, AppError> {
    let same_key = key.is_some() && p.idempotency_key.as_deref() == key;
    if p.order_id == order_id || same_key {
        Ok(p.to_purchase_at(now_ms))
    } else {
        Err(AppError::AlreadyPurchased(Box::new(p.to_purchase_at(now_ms))))
    }
}
