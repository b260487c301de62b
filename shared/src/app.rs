//! The application: what a function holds for its whole life. [`App`] assembles the use cases,
//! each with the per-container cache it owns, and composes the sale status from the catalog, the
//! stock and the waiting room.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::admission_key::KeyRing;
use crate::catalog::Catalog;
use crate::checkout::{Checkout, Choice, PurchaseReport};
use crate::clock::Clock;
use crate::config::{Config, Tuning};
use crate::draw_check::EntrantPage;
use crate::error::AppError;
use crate::ids::{SaleId, UserId};
use crate::order::{Purchase, PurchaseLookup};
use crate::orders::{Orders, SweepReport};
use crate::sale::{Sale, SaleView};
use crate::stock_hint::SoldOutHint;
use crate::store::{PurchaseRecord, Store, logged};
use crate::waiting_room::{PlaceView, RoomView, WaitingRoom};

/// Everything a handler needs; built once per container (see [`crate::lambda::run`]).
pub struct App {
    pub(crate) config: Arc<Config>,
    store: Store,
    clock: Arc<dyn Clock>,
    catalog: Arc<Catalog>,
    room: Arc<WaitingRoom>,
    orders: Arc<Orders>,
    checkout: Checkout,
    keys: Arc<KeyRing>,
}

/// What one run of the scheduled function did ([`App::scheduled_run`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledReport {
    #[serde(flatten)]
    pub sweep: SweepReport,
    /// Sales whose pre-queue was drawn.
    pub drawn: Vec<String>,
    /// Sales whose due draw failed (the next run tries again).
    pub draws_failed: Vec<String>,
    /// A part that did not run at all (the sales could not be listed).
    pub errors: Vec<String>,
}

/// `GET /sales/{saleId}` and each entry of `GET /sales`: the sale with its stock, and its waiting
/// room when it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SaleStatus {
    #[serde(flatten)]
    pub sale: SaleView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<RoomView>,
}

impl App {
    /// An App whose admission keys, if any, are the configuration's (`ADMISSION_KEY`).
    pub fn new(store: Store, clock: Arc<dyn Clock>, config: Config) -> Self {
        let keys = KeyRing::fixed(config.admission_keys.clone());
        Self::with_key_ring(store, clock, config, keys)
    }

    /// A container's App as a function's cold start makes it: with its admission keys read from
    /// their secret when the configuration names one (`ADMISSION_KEY_SECRET_ARN`), else the
    /// configuration's own (`ADMISSION_KEY`, local).
    pub async fn cold_start(store: Store, clock: Arc<dyn Clock>, config: Config) -> Result<Self, String> {
        let keys = match &config.admission_key_secret {
            Some(secret) => {
                let client = crate::aws::secrets_client(config.secrets_endpoint.as_deref())?;
                let source = crate::admission_key::SecretSource::new(client, secret.clone());
                KeyRing::from_secret(source).await.map_err(|e| format!("ADMISSION_KEY_SECRET_ARN: {e}"))?
            }
            None => KeyRing::fixed(config.admission_keys.clone()),
        };
        Ok(Self::with_key_ring(store, clock, config, keys))
    }

    /// An App with these admission keys (read from their secret, deployed).
    pub fn with_key_ring(store: Store, clock: Arc<dyn Clock>, config: Config, keys: KeyRing) -> Self {
        let config = Arc::new(config);
        let keys = Arc::new(keys);
        let tuning = &config.tuning;
        let catalog = Arc::new(Catalog::new(store.clone(), tuning.sale_cache));
        let sold_out = Arc::new(SoldOutHint::new(tuning.sold_out_hint));
        let room =
            Arc::new(WaitingRoom::new(store.clone(), clock.clone(), config.clone(), catalog.clone(), keys.clone()));
        let orders = Arc::new(Orders::new(store.clone(), clock.clone(), catalog.clone(), sold_out.clone()));
        let checkout = Checkout {
            store: store.clone(),
            clock: clock.clone(),
            tuning: tuning.clone(),
            catalog: catalog.clone(),
            sold_out,
            room: room.clone(),
            orders: orders.clone(),
        };
        Self { config, store, clock, catalog, room, orders, checkout, keys }
    }

    /// The container's admission keys.
    pub fn admission_keys(&self) -> &KeyRing {
        &self.keys
    }

    pub(crate) fn tuning(&self) -> &Tuning {
        &self.config.tuning
    }

    /// Buys one item of `sale_id` for `user` (see [`Checkout::purchase`]), for a sale without a
    /// waiting room.
    pub async fn purchase(&self, sale_id: &SaleId, user: &UserId, idempotency_key: Option<&str>) -> PurchaseReport {
        self.checkout.purchase(sale_id, user, idempotency_key, None, Choice::default()).await
    }

    /// [`App::purchase`] of `quantity` items of `variant` (`None`: the sale's one variant).
    pub async fn purchase_items(
        &self,
        sale_id: &SaleId,
        user: &UserId,
        idempotency_key: Option<&str>,
        variant: Option<&str>,
        quantity: u32,
    ) -> PurchaseReport {
        let choice = Choice { variant: variant.map(str::to_owned), quantity };
        self.checkout.purchase(sale_id, user, idempotency_key, None, choice).await
    }

    /// [`App::purchase`] with the waiting room's admission token, required when the sale has a room.
    pub(crate) async fn purchase_admitted(
        &self,
        sale_id: &SaleId,
        user: &UserId,
        idempotency_key: Option<&str>,
        admission_token: Option<&str>,
        choice: Choice,
    ) -> PurchaseReport {
        self.checkout.purchase(sale_id, user, idempotency_key, admission_token, choice).await
    }

    /// `POST /sales/{saleId}/orders/{orderId}/confirm`.
    pub async fn confirm(&self, sale_id: &SaleId, order_id: &str) -> Result<Purchase, AppError> {
        self.orders.confirm(sale_id, order_id).await
    }

    /// `DELETE /sales/{saleId}/purchases/{userId}`.
    pub async fn cancel(&self, sale_id: &SaleId, user: &UserId) -> Result<Purchase, AppError> {
        self.orders.cancel(sale_id, user, None).await
    }

    /// `DELETE /sales/{saleId}/purchases/{userId}?orderId=`: one order of the buyer's.
    pub async fn cancel_order(&self, sale_id: &SaleId, user: &UserId, order_id: &str) -> Result<Purchase, AppError> {
        self.orders.cancel(sale_id, user, Some(order_id)).await
    }

    /// An operator's release of a buyer's reserved order.
    pub async fn release(&self, sale_id: &SaleId, user: &UserId) -> Result<Purchase, AppError> {
        self.orders.release(sale_id, user).await
    }

    /// The sweeper: releases ended holds, at most `limit`, within `budget`.
    pub async fn sweep(&self, limit: usize, budget: Duration) -> Result<SweepReport, AppError> {
        self.orders.sweep(limit, budget).await
    }

    /// `POST /sales/{saleId}/queue`: joins `user` to the sale's waiting room.
    pub async fn join(&self, sale_id: &SaleId, user: &UserId) -> Result<PlaceView, AppError> {
        self.room.join(sale_id, user).await
    }

    /// `GET /sales/{saleId}/queue/{userId}`: where `user` stands.
    pub async fn place(&self, sale_id: &SaleId, user: &UserId) -> Result<PlaceView, AppError> {
        self.room.place(sale_id, user).await
    }

    /// The scheduled function's part of the waiting room: draws the due pre-queues. Returns the
    /// sales drawn; one whose draw fails is logged and counted, and the others are drawn.
    pub async fn draw_due_rooms(&self) -> Result<Vec<String>, AppError> {
        Ok(self.room.draw_due_rooms(None).await?.0)
    }

    /// [`App::draw_due_rooms`], rooms with a public beacon included: their round comes from
    /// `beacons` (drand relays in the scheduled function) and is verified before it is used.
    pub async fn draw_due_rooms_with(
        &self,
        beacons: &dyn crate::beacon::BeaconSource,
    ) -> Result<Vec<String>, AppError> {
        Ok(self.room.draw_due_rooms(Some(beacons)).await?.0)
    }

    /// One run of the scheduled `sweeper` function: the due draws, then the release of ended
    /// holds. Each goes on whatever the other came to, and within each, one sale or hold that
    /// fails (logged with its key, counted in `Errors`) does not stop the rest; the report says
    /// what failed. Rooms with a public beacon are drawn only by [`App::scheduled_run_with`].
    pub async fn scheduled_run(&self, limit: usize, budget: Duration) -> ScheduledReport {
        self.scheduled_run_with(limit, budget, None).await
    }

    /// [`App::scheduled_run`] with the source of public beacon rounds (the drand relays).
    pub async fn scheduled_run_with(
        &self,
        limit: usize,
        budget: Duration,
        beacons: Option<&dyn crate::beacon::BeaconSource>,
    ) -> ScheduledReport {
        let mut report = ScheduledReport::default();
        // The draws first: people wait for them, and a hold's item can wait a minute.
        match self.room.draw_due_rooms(beacons).await {
            Ok((drawn, failed)) => (report.drawn, report.draws_failed) = (drawn, failed),
            Err(e) => {
                tracing::error!(error = %e, "no draw: the sales could not be listed");
                report.errors.push(format!("draw: {e}"));
            }
        }
        match self.sweep(limit, budget).await {
            Ok(sweep) => report.sweep = sweep,
            Err(e) => {
                tracing::error!(error = %e, "no sweep: the sales could not be listed");
                report.errors.push(format!("sweep: {e}"));
            }
        }
        report
    }

    /// The public view of one sale: cached configuration plus one `BatchGetItem` of its shards.
    pub async fn sale_view(&self, sale_id: &SaleId) -> Result<SaleStatus, AppError> {
        let sale = self.catalog.sale(sale_id).await?;
        let stock = self.store.shard_stock(&[&sale]).await.map_err(logged)?;
        self.status(&sale, &stock[0], self.clock.now_ms()).await
    }

    /// `GET /sales/{saleId}/entrants/{page}`: a page of the drawn pre-queue's published list, for
    /// a room drawn with a public beacon, once its draw is complete (as the seed). Never changes
    /// after that: cacheable for good.
    pub async fn entrant_page(&self, sale_id: &SaleId, page: u32) -> Result<EntrantPage, AppError> {
        let sale = self.catalog.sale(sale_id).await?;
        if sale.room.as_ref().is_none_or(|r| r.beacon.is_none()) {
            return Err(AppError::NoPublicDraw);
        }
        let drawn = self.store.room_state(sale_id).await.map_err(logged)?.is_some_and(|s| s.prequeue_size.is_some());
        let record = if drawn { self.store.draw_record(sale_id).await.map_err(logged)? } else { None };
        let (Some(root), Some(count)) =
            (record.as_ref().and_then(|r| r.entrants_root.clone()), record.as_ref().and_then(|r| r.entrant_count))
        else {
            return Err(AppError::EntrantPageNotFound);
        };
        let (ids, pages, entrants) =
            self.store.entrant_page(sale_id, page).await.map_err(logged)?.ok_or(AppError::EntrantPageNotFound)?;
        if entrants != count {
            tracing::error!(sale = %sale_id, page, entrants, count, "published entrant pages disagree with the draw");
            return Err(AppError::Internal);
        }
        let per_page = i64::try_from(crate::keys::ENTRANTS_PER_PAGE).unwrap_or(i64::MAX);
        Ok(EntrantPage {
            sale_id: sale_id.to_string(),
            page,
            pages,
            entrant_count: count,
            entrants_root: root,
            first_place: i64::from(page) * per_page + 1,
            entrants: ids.iter().map(hex::encode).collect(),
        })
    }

    /// Every sale with its stock: one index query and one batch read of all shards.
    pub async fn list(&self) -> Result<Vec<SaleStatus>, AppError> {
        let sales = self.store.list_sales().await.map_err(logged)?;
        let refs: Vec<&Sale> = sales.iter().collect();
        let stock = self.store.shard_stock(&refs).await.map_err(logged)?;
        let now = self.clock.now_ms();
        let mut views = Vec::with_capacity(sales.len());
        for (sale, shards) in sales.iter().zip(&stock) {
            // One sale whose room cannot be read (logged where it failed) leaves the others listed.
            match self.status(sale, shards, now).await {
                Ok(view) => views.push(view),
                Err(AppError::Internal) => tracing::error!(sale = %sale.id, "sale left out of the list"),
                Err(other) => return Err(other),
            }
        }
        Ok(views)
    }

    async fn status(&self, sale: &Sale, shards: &[i64], now: i64) -> Result<SaleStatus, AppError> {
        let remaining = shards.iter().map(|r| (*r).max(0)).sum();
        let view = SaleView::with_shards(sale, remaining, Some(shards), now);
        Ok(SaleStatus { sale: view, queue: self.room.room_view(sale).await? })
    }

    /// A user's purchase in a sale. (Cancelled and expired orders are shown too, with their status.)
    pub async fn lookup(&self, sale_id: &SaleId, user: &UserId) -> Result<Purchase, AppError> {
        Ok(self.lookup_orders(sale_id, user, None).await?.purchase)
    }

    /// `GET /sales/{saleId}/purchases/{userId}[?orderId=]`: the order named, or the user's latest
    /// order with, in a sale with several items per customer, every live order and the items held.
    pub async fn lookup_orders(
        &self,
        sale_id: &SaleId,
        user: &UserId,
        order_id: Option<&str>,
    ) -> Result<PurchaseLookup, AppError> {
        let now = self.clock.now_ms();
        let alone = |r: PurchaseRecord| PurchaseLookup { purchase: r.to_purchase_at(now), orders: None, held: None };
        // The one-per-buyer record; else, in a sale with several items per customer, the
        // customer's orders (all under the buyer's own partition key).
        if let Some(r) = self.store.get_purchase(sale_id, user).await.map_err(logged)? {
            return match order_id {
                Some(id) if id != r.order_id => Err(AppError::PurchaseNotFound),
                _ => Ok(alone(r)),
            };
        }
        if let Some(id) = order_id {
            let r = self.store.order(sale_id, user, id).await.map_err(logged)?;
            return r.map(alone).ok_or(AppError::PurchaseNotFound);
        }
        let Some(c) = self.store.customer(sale_id, user).await.map_err(logged)? else {
            return Err(AppError::PurchaseNotFound);
        };
        let records = self.store.live_orders(sale_id, user, &c).await.map_err(logged)?;
        let orders: Vec<Purchase> =
            records.iter().rev().filter(|r| r.is_live_at(now)).map(|r| r.to_purchase_at(now)).collect();
        let held = orders.iter().map(|p| i64::from(p.quantity.unwrap_or(1))).sum();
        let latest = self.store.latest_of(sale_id, user, &c, records).await.map_err(logged)?;
        let latest = latest.ok_or(AppError::PurchaseNotFound)?;
        Ok(PurchaseLookup { purchase: latest.to_purchase_at(now), orders: Some(orders), held: Some(held) })
    }

    /// Whether the table answers.
    pub(crate) async fn healthy(&self) -> Result<(), AppError> {
        self.store.ping().await.map_err(logged)
    }
}
