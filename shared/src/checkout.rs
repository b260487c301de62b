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
use crate::store::{Attempt, CustomerItem, KeyItem, PurchaseRecord, Store, StoreError, Take, logged};
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

/// What a purchase asks for: a variant (`None`: the sale's only one) and how many items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Choice {
    pub variant: Option<String>,
    pub quantity: u32,
}

impl Default for Choice {
    fn default() -> Self {
        Self { variant: None, quantity: 1 }
    }
}

/// What this purchase is for, once checked against the sale.
struct Wanted<'a> {
    variant: &'a str,
    shards: std::ops::Range<u32>,
    quantity: u32,
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
        choice: Choice,
    ) -> PurchaseReport {
        let mut report = PurchaseReport {
            result: Err(AppError::Internal),
            shard: None,
            retries: 0,
            transactions: 0,
            from_hint: false,
            remembered: false,
        };
        report.result =
            self.purchase_checked(sale_id, user, idempotency_key, admission_token, &choice, &mut report).await;
        report
    }

    /// The purchase with the request checked against the sale's variants and limit, and a
    /// refusal for lack of stock said per variant when the sale has several.
    async fn purchase_checked(
        &self,
        sale_id: &SaleId,
        user: &UserId,
        key: Option<&str>,
        admission_token: Option<&str>,
        choice: &Choice,
        report: &mut PurchaseReport,
    ) -> Result<Purchase, AppError> {
        let sale = self.catalog.sale(sale_id).await?;
        if !(1..=sale.max_per_customer).contains(&choice.quantity) {
            return Err(AppError::QuantityInvalid { max: sale.max_per_customer });
        }
        let Some(span) = sale.variant(choice.variant.as_deref()) else {
            return Err(AppError::VariantUnknown { variants: sale.spans().iter().map(|v| v.id.to_owned()).collect() });
        };
        let wanted = Wanted { variant: span.id, shards: span.shard_range(), quantity: choice.quantity };
        let mut result = self.purchase_inner(&sale, user, key, admission_token, &wanted, report).await;
        // The room promises that an admitted person inside their window is never told `sold_out`
        // while their share is set aside: its refusals are judged on the stock as it is now, and
        // stock left in this very variant (items given back since this container's sold-out
        // hint) is tried once more.
        let mut stock_now = None;
        if matches!(result, Err(AppError::SoldOut)) && sale.room.is_some() {
            let stock = self.store.shard_stock_now(&sale).await.map_err(logged)?;
            if wanted.shards.clone().any(|n| stock.get(n as usize).is_some_and(|r| *r > 0)) {
                self.sold_out.forget(sale_id);
                result = self.purchase_inner(&sale, user, key, admission_token, &wanted, report).await;
            } else {
                stock_now = Some(stock);
            }
        }
        match result {
            Err(AppError::SoldOut) if sale.spans().len() > 1 => {
                let stock = match stock_now {
                    Some(stock) => stock,
                    None => self.store.shard_stock(&[&sale]).await.map_err(logged)?.remove(0),
                };
                let available: Vec<String> = sale
                    .spans()
                    .iter()
                    .filter(|v| v.shard_range().any(|n| stock.get(n as usize).is_some_and(|r| *r > 0)))
                    .map(|v| v.id.to_owned())
                    .collect();
                if available.is_empty() { Err(AppError::SoldOut) } else { Err(AppError::VariantSoldOut { available }) }
            }
            other => other,
        }
    }

    async fn purchase_inner(
        &self,
        sale: &Arc<Sale>,
        user: &UserId,
        key: Option<&str>,
        admission_token: Option<&str>,
        wanted: &Wanted<'_>,
        report: &mut PurchaseReport,
    ) -> Result<Purchase, AppError> {
        let sale_id = &sale.id;
        let sale = sale.clone();
        if let Err(refusal) = self.room.check_admission(&sale, user, admission_token).await {
            // A retry of a purchase that committed (same Idempotency-Key) is answered with it,
            // even when its admission token has expired since: one read, only for keyed requests.
            return match key {
                Some(_) => self.unless_owned(&sale, user, key, wanted, refusal).await,
                None => Err(refusal),
            };
        }
        let early = match sale.window_at(self.clock.now_ms()) {
            Window::NotStarted => Some(AppError::SaleNotStarted { starts_at_ms: sale.starts_at_ms }),
            Window::Ended => Some(AppError::SaleEnded),
            Window::Open => None,
        };
        let shards = self.sold_out.shard_order_in(&sale, wanted.shards.clone());
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
            // A sale with several items per customer keeps no record per buyer to remember.
            if !report.from_hint || sale.max_per_customer > 1 {
                return self.unless_owned(&sale, user, key, wanted, refusal).await;
            }
            if let Some(answer) = self.sold_out_refusal(&sale, user, key, wanted, refusal, report).await {
                return answer;
            }
            // Believed sold out for good, and a reset moved the sale since: the shards decide.
            self.sold_out.forget(sale_id);
            report.from_hint = false;
        }
        let shards =
            if shards.is_empty() { self.sold_out.shard_order_in(&sale, wanted.shards.clone()) } else { shards };

        let order_id = ulid::Ulid::new().to_string();
        let mut shards = shards;
        // A second round only after expired holds of this sale gave items back.
        for round in 0..2 {
            let tried = if wanted.quantity == 1 {
                self.try_shards(&sale, user, key, &order_id, wanted, shards, report).await
            } else {
                self.try_planned(&sale, user, key, &order_id, wanted, report).await
            };
            match tried {
                Err(AppError::SoldOut) if round == 0 && sale.hold_seconds > 0 => {
                    if self.orders.release_expired_holds(&sale, PURCHASE_RELEASE_LIMIT).await? == 0 {
                        return Err(AppError::SoldOut);
                    }
                    self.sold_out.forget(sale_id);
                    shards = self.sold_out.shard_order_in(&sale, wanted.shards.clone());
                }
                other => return other,
            }
        }
        Err(AppError::SoldOut)
    }

    /// One pass over `shards`: a transaction per shard until one sells, refuses for good, or all
    /// are empty (`sold_out`).
    #[allow(clippy::too_many_arguments)]
    async fn try_shards(
        &self,
        sale: &Sale,
        user: &UserId,
        key: Option<&str>,
        order_id: &str,
        wanted: &Wanted<'_>,
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
                let record = new_record(sale, user, order_id, now, key, wanted, &[Take { shard, n: 1 }]);
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
                    Attempt::AlreadyPurchased(p) => return owned(*p, order_id, key, wanted, now),
                    Attempt::LimitReached(c) => {
                        if !released_own && self.release_own_ended(sale, user, &c, now).await? {
                            released_own = true;
                        } else if let Some(refusal) = self.limit_reached(sale, user, &c, wanted.quantity, now).await? {
                            return Err(refusal);
                        } else if attempt >= self.tuning.conflict_retries {
                            return Err(AppError::Busy);
                        } else {
                            // The orders the transaction counted have ended since: try again.
                            report.retries += 1;
                            self.backoff(attempt).await;
                        }
                        attempt += 1;
                    }
                    Attempt::KeyUsed(k) => return self.key_used(sale, user, order_id, wanted, &k, now).await,
                    Attempt::Short => {
                        self.sold_out.mark_empty(sale_id, shard);
                        break;
                    }
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
        self.unless_owned(sale, user, key, wanted, AppError::SoldOut).await
    }

    /// A purchase of several items: takes planned from one strongly consistent read of the
    /// variant's shards (one shard holding enough if any, else the fullest first), in one
    /// transaction; a plan beaten by another buyer is planned again, a bounded number of times.
    async fn try_planned(
        &self,
        sale: &Sale,
        user: &UserId,
        key: Option<&str>,
        order_id: &str,
        wanted: &Wanted<'_>,
        report: &mut PurchaseReport,
    ) -> Result<Purchase, AppError> {
        let mut released_own = false;
        for attempt in 0..=self.tuning.conflict_retries {
            let left = self.store.shard_stock_now(sale).await.map_err(logged)?;
            let Some(takes) = plan_takes(&left, wanted.shards.clone(), i64::from(wanted.quantity)) else {
                let total: i64 = wanted.shards.clone().filter_map(|n| left.get(n as usize)).map(|r| (*r).max(0)).sum();
                let refusal =
                    if total == 0 { AppError::SoldOut } else { AppError::NotEnoughStock { remaining: total } };
                return self.unless_owned(sale, user, key, wanted, refusal).await;
            };
            let now = self.clock.now_ms();
            let record = new_record(sale, user, order_id, now, key, wanted, &takes);
            report.shard = takes.first().map(|t| t.shard);
            report.transactions += 1;
            let token = format!("{order_id}-p-{attempt}");
            let outcome = match self.store.try_purchase_takes(sale, &takes, &record, now, &token).await {
                Err(StoreError::Throttled(_)) => return Err(AppError::Busy),
                other => other.map_err(logged)?,
            };
            match outcome {
                Attempt::Committed => {
                    crate::telemetry::record_order_change(record.status, false);
                    return Ok(record.to_purchase());
                }
                Attempt::AlreadyPurchased(p) => return owned(*p, order_id, key, wanted, now),
                Attempt::LimitReached(c) => {
                    if !released_own && self.release_own_ended(sale, user, &c, now).await? {
                        released_own = true;
                    } else if let Some(refusal) = self.limit_reached(sale, user, &c, wanted.quantity, now).await? {
                        return Err(refusal);
                    } else {
                        // The orders the transaction counted have ended since: try again.
                        report.retries += 1;
                        self.backoff(attempt).await;
                    }
                }
                Attempt::KeyUsed(k) => return self.key_used(sale, user, order_id, wanted, &k, now).await,
                Attempt::Short | Attempt::ShardEmpty | Attempt::Conflict => {
                    report.retries += 1;
                    self.backoff(attempt).await;
                }
                Attempt::Throttled => return Err(AppError::Busy),
                Attempt::NotStarted => return Err(AppError::SaleNotStarted { starts_at_ms: sale.starts_at_ms }),
                Attempt::Ended => return Err(AppError::SaleEnded),
                Attempt::ShardMissing => return Err(AppError::SaleNotFound),
                Attempt::Unreadable(pk) => {
                    tracing::error!(pk = %pk, "stored item does not parse");
                    return Err(AppError::Internal);
                }
                Attempt::Unknown(why) => {
                    tracing::error!(reason = %why, "purchase transaction cancelled for an unknown reason");
                    crate::telemetry::record_error("store");
                    return Err(AppError::Internal);
                }
            }
        }
        Err(AppError::Busy)
    }

    /// Releases the customer's own holds that have ended but are still counted; true if any was.
    async fn release_own_ended(
        &self,
        sale: &Sale,
        user: &UserId,
        c: &CustomerItem,
        now: i64,
    ) -> Result<bool, AppError> {
        let mut any = false;
        for r in self.store.live_orders(&sale.id, user, c).await.map_err(logged)? {
            if r.status == OrderStatus::Reserved && r.hold_expires_at.is_some_and(|at| at <= now) {
                self.orders.expire_hold(sale, &r, now).await?;
                self.sold_out.forget(&sale.id);
                any = true;
            }
        }
        Ok(any)
    }

    /// `limit_reached` with what the customer holds now, when that leaves no room for `quantity`;
    /// `None` when it does (orders the transaction counted were cancelled or ended since): a
    /// refusal that the stored orders contradict is never given, the purchase tries again.
    async fn limit_reached(
        &self,
        sale: &Sale,
        user: &UserId,
        c: &CustomerItem,
        quantity: u32,
        now: i64,
    ) -> Result<Option<AppError>, AppError> {
        let orders: Vec<Purchase> = self
            .store
            .live_orders(&sale.id, user, c)
            .await
            .map_err(logged)?
            .iter()
            .filter(|r| r.is_live_at(now))
            .map(|r| r.to_purchase_at(now))
            .collect();
        let held: i64 = orders.iter().map(|p| i64::from(p.quantity.unwrap_or(1))).sum();
        if held + i64::from(quantity) <= i64::from(sale.max_per_customer) {
            return Ok(None);
        }
        Ok(Some(AppError::LimitReached { held, max: sale.max_per_customer, orders }))
    }

    /// The `Idempotency-Key` was used before (a sale with `maxPerCustomer` > 1): this purchase's
    /// own order, the earlier order if it asked for the same, else `idempotency_key_reused`.
    async fn key_used(
        &self,
        sale: &Sale,
        user: &UserId,
        order_id: &str,
        wanted: &Wanted<'_>,
        k: &KeyItem,
        now: i64,
    ) -> Result<Purchase, AppError> {
        let pk = crate::keys::order_pk(sale.id.as_str(), user.as_str(), &k.for_order);
        let record = self.store.get_record(&pk).await.map_err(logged)?;
        let Some(p) = record else {
            tracing::warn!(pk = %pk, "an Idempotency-Key names an order that is not stored");
            return Err(AppError::Busy);
        };
        if k.for_order != order_id && !same_items(&p, wanted) {
            return Err(AppError::IdempotencyKeyReused(Box::new(p.to_purchase_at(now))));
        }
        Ok(p.to_purchase_at(now))
    }

    /// `refusal`, unless the buyer already owns an item of this sale (one strongly consistent
    /// read): then `already_purchased`, or the purchase itself when it carries this request's
    /// idempotency key. With `maxPerCustomer` > 1 only the key counts (holding items is no
    /// reason to refuse): the key's own order is answered.
    async fn unless_owned(
        &self,
        sale: &Sale,
        user: &UserId,
        key: Option<&str>,
        wanted: &Wanted<'_>,
        refusal: AppError,
    ) -> Result<Purchase, AppError> {
        let now = self.clock.now_ms();
        if sale.max_per_customer > 1 {
            let Some(k) = key else { return Err(refusal) };
            return match self.store.key_use(&sale.id, user, k).await.map_err(logged)? {
                Some(used) => self.key_used(sale, user, "", wanted, &used, now).await,
                None => Err(refusal),
            };
        }
        let record = self.store.get_purchase(&sale.id, user).await.map_err(logged)?;
        unless_owned_by(record, key, wanted, now, refusal)
    }

    /// The sold-out hint's refusal, judged as [`Checkout::unless_owned`] does (a sale of one item
    /// per customer): on the buyer's record as this container remembers it when the sale is sold
    /// out for good (no DynamoDB call; see `stock_hint`), else as read now, and then remembered if
    /// it may be. `None` when the container believed the sale sold out for good and a reset has
    /// moved it since.
    async fn sold_out_refusal(
        &self,
        sale: &Sale,
        user: &UserId,
        key: Option<&str>,
        wanted: &Wanted<'_>,
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
            return Some(unless_owned_by(record, key, wanted, self.clock.now_ms(), refusal));
        }
        let record = match self.store.get_purchase(&sale.id, user).await {
            Ok(record) => record,
            Err(e) => return Some(Err(logged(e))),
        };
        if let Settle::ForGood(epoch) = settle {
            self.sold_out.remember(&sale.id, epoch, user, record.clone());
        }
        Some(unless_owned_by(record, key, wanted, self.clock.now_ms(), refusal))
    }
}

/// `refusal`, unless `record` (the buyer's, as stored) holds a live order: then
/// `already_purchased`, or the purchase itself when it carries this request's idempotency key.
fn unless_owned_by(
    record: Option<PurchaseRecord>,
    key: Option<&str>,
    wanted: &Wanted<'_>,
    now: i64,
    refusal: AppError,
) -> Result<Purchase, AppError> {
    match record {
        Some(p) if p.is_live_at(now) => owned(p, "", key, wanted, now),
        // An ended hold holds nothing: the refusal stands, except for this request's own
        // retry (same key), which is answered with its order as it is now.
        Some(p) if key.is_some() && p.idempotency_key.as_deref() == key => owned(p, "", key, wanted, now),
        _ => Err(refusal),
    }
}

/// The record of a new order of `wanted`, taking `takes`.
fn new_record(
    sale: &Sale,
    user: &UserId,
    order_id: &str,
    now: i64,
    key: Option<&str>,
    wanted: &Wanted<'_>,
    takes: &[Take],
) -> PurchaseRecord {
    let shard = takes.first().map_or(0, |t| t.shard);
    let mut record = PurchaseRecord::new(&sale.id, user, order_id.to_owned(), now, shard, key.map(str::to_owned))
        .of_items(sale, wanted.variant, wanted.quantity, takes);
    if sale.max_per_customer > 1 {
        record.pk = crate::keys::order_pk(sale.id.as_str(), user.as_str(), order_id);
    }
    if sale.hold_seconds > 0 {
        record = record.held_until(now + sale.hold_seconds * 1_000, fastrand::u32(..));
    }
    record
}

/// Takes for `quantity` items among `shards` given what each holds (`left`): one shard holding
/// enough (a random one of those), else the fullest first. `None` when they hold fewer in all.
fn plan_takes(left: &[i64], shards: std::ops::Range<u32>, quantity: i64) -> Option<Vec<Take>> {
    let mut stock: Vec<(u32, i64)> =
        shards.filter_map(|n| left.get(n as usize).map(|r| (n, (*r).max(0)))).filter(|(_, r)| *r > 0).collect();
    let enough: Vec<u32> = stock.iter().filter(|(_, r)| *r >= quantity).map(|(n, _)| *n).collect();
    if !enough.is_empty() {
        return Some(vec![Take { shard: enough[fastrand::usize(..enough.len())], n: quantity }]);
    }
    stock.sort_by_key(|s| std::cmp::Reverse(s.1));
    let mut takes = Vec::new();
    let mut need = quantity;
    for (shard, r) in stock {
        if need == 0 {
            break;
        }
        let n = r.min(need);
        takes.push(Take { shard, n });
        need -= n;
    }
    (need == 0).then_some(takes)
}

/// Whether a stored order asked for what `wanted` asks for.
fn same_items(p: &PurchaseRecord, wanted: &Wanted<'_>) -> bool {
    p.variant() == wanted.variant && p.items() == wanted.quantity
}

/// A stored purchase found for this buyer: this request's own (same order id or same
/// idempotency key) is a success, anyone else's an `already_purchased`. The same key for another
/// variant or quantity is `idempotency_key_reused`.
fn owned(
    p: PurchaseRecord,
    order_id: &str,
    key: Option<&str>,
    wanted: &Wanted<'_>,
    now_ms: i64,
) -> Result<Purchase, AppError> {
    let same_key = key.is_some() && p.idempotency_key.as_deref() == key;
    if p.order_id == order_id {
        Ok(p.to_purchase_at(now_ms))
    } else if same_key && !same_items(&p, wanted) {
        Err(AppError::IdempotencyKeyReused(Box::new(p.to_purchase_at(now_ms))))
    } else if same_key {
        Ok(p.to_purchase_at(now_ms))
    } else {
        Err(AppError::AlreadyPurchased(Box::new(p.to_purchase_at(now_ms))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_take_one_shard_when_one_holds_enough_else_the_fullest_first() {
        let left = [5, 0, 2, 1, 1];
        assert_eq!(plan_takes(&left, 1..5, 2), Some(vec![Take { shard: 2, n: 2 }]));
        assert_eq!(plan_takes(&left, 1..5, 3), Some(vec![Take { shard: 2, n: 2 }, Take { shard: 3, n: 1 }]));
        assert_eq!(plan_takes(&left, 1..5, 5), None);
        assert_eq!(plan_takes(&left, 0..1, 5), Some(vec![Take { shard: 0, n: 5 }]));
    }
}
