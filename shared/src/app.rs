//! The application: what a function holds for its whole life (store, clock, configuration, the
//! per-container sale cache) and the read use cases. The purchase use case is in
//! [`crate::checkout`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::clock::Clock;
use crate::config::{Config, Tuning};
use crate::error::AppError;
use crate::ids::{SaleId, UserId};
use crate::order::Purchase;
use crate::sale::{Sale, SaleView};
use crate::store::{Store, StoreError};

/// Everything a handler needs; built once per container (see [`crate::lambda::run`]).
pub struct App {
    pub(crate) store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: Config,
    pub(crate) hints: Mutex<HashMap<SaleId, SaleHint>>,
    pub(crate) rooms: Mutex<HashMap<SaleId, crate::queue::RoomSnapshot>>,
    /// Rooms whose snapshot a request of this container is refreshing right now.
    pub(crate) room_refreshing: Mutex<std::collections::HashSet<SaleId>>,
    pub(crate) tickets: Mutex<HashMap<SaleId, Arc<crate::queue::TicketSlot>>>,
    /// The purchase path's copy of each room's admitted range: (read at, admitted through).
    pub(crate) admitted_seen: Mutex<HashMap<SaleId, (i64, i64)>>,
}

/// What a container remembers about a sale between requests. Only ever a hint: the purchase
/// transaction's conditions decide.
pub(crate) struct SaleHint {
    pub(crate) sale: Arc<Sale>,
    pub(crate) fetched: Instant,
    /// Shards seen empty (bit n = shard n) and when the first of them was seen.
    pub(crate) empty: u64,
    pub(crate) empty_since: Option<Instant>,
    /// No hold of this sale can have ended before this time (ms), as of this container's last look.
    pub(crate) holds_clear_until: i64,
}

/// Logs a store failure and says what it means for the caller.
pub(crate) fn logged(err: StoreError) -> AppError {
    match err {
        StoreError::Throttled(_) | StoreError::Unavailable(_) => {
            tracing::warn!(error = %err, "store call failed");
            AppError::Busy
        }
        StoreError::NoSuchSale(_) => AppError::SaleNotFound,
        StoreError::Corrupt(_) | StoreError::SaleExists(_) | StoreError::Rule(_) => {
            tracing::error!(error = %err, "stored data is not what the code expects");
            AppError::Internal
        }
    }
}

impl App {
    pub fn new(store: Store, clock: Arc<dyn Clock>, config: Config) -> Self {
        Self {
            store,
            clock,
            config,
            hints: Mutex::new(HashMap::new()),
            rooms: Mutex::new(HashMap::new()),
            room_refreshing: Mutex::new(std::collections::HashSet::new()),
            tickets: Mutex::new(HashMap::new()),
            admitted_seen: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn tuning(&self) -> &Tuning {
        &self.config.tuning
    }

    pub(crate) fn with_hint<T>(&self, id: &SaleId, f: impl FnOnce(Option<&mut SaleHint>) -> T) -> T {
        let mut hints = self.hints.lock().unwrap_or_else(|p| p.into_inner());
        f(hints.get_mut(id))
    }

    /// The sale's configuration, from this container's cache while it is fresh.
    pub(crate) async fn sale(&self, id: &SaleId) -> Result<Arc<Sale>, AppError> {
        let ttl = self.tuning().sale_cache;
        let cached = self.with_hint(id, |h| h.filter(|h| h.fetched.elapsed() < ttl).map(|h| h.sale.clone()));
        if let Some(sale) = cached {
            return Ok(sale);
        }
        let sale = Arc::new(self.store.get_sale(id).await.map_err(logged)?.ok_or(AppError::SaleNotFound)?);
        let mut hints = self.hints.lock().unwrap_or_else(|p| p.into_inner());
        let hint = hints.entry(id.clone()).or_insert_with(|| SaleHint {
            sale: sale.clone(),
            fetched: Instant::now(),
            empty: 0,
            empty_since: None,
            holds_clear_until: i64::MIN,
        });
        hint.sale = sale.clone();
        hint.fetched = Instant::now();
        Ok(sale)
    }

    /// The public view of one sale: cached configuration plus one `BatchGetItem` of its shards.
    pub async fn sale_view(&self, sale_id: &SaleId) -> Result<SaleView, AppError> {
        let sale = self.sale(sale_id).await?;
        let stock = self.store.shard_stock(&[&sale]).await.map_err(logged)?;
        let mut view = SaleView::new(&sale, total(&stock[0]), self.clock.now_ms());
        view.queue = self.room_view(&sale).await?;
        Ok(view)
    }

    /// Every sale with its stock: one index query and one batch read of all shards.
    pub async fn list(&self) -> Result<Vec<SaleView>, AppError> {
        let sales = self.store.list_sales().await.map_err(logged)?;
        let refs: Vec<&Sale> = sales.iter().collect();
        let stock = self.store.shard_stock(&refs).await.map_err(logged)?;
        let now = self.clock.now_ms();
        let mut views = Vec::with_capacity(sales.len());
        for (sale, shards) in sales.iter().zip(&stock) {
            let mut view = SaleView::new(sale, total(shards), now);
            view.queue = self.room_view(sale).await?;
            views.push(view);
        }
        Ok(views)
    }

    /// A user's purchase in a sale.
    /// (Cancelled and expired orders are shown too, with their status.)
    pub async fn lookup(&self, sale_id: &SaleId, user: &UserId) -> Result<Purchase, AppError> {
        let record = self.store.get_purchase(sale_id, user).await.map_err(logged)?;
        record.map(|r| r.to_purchase()).ok_or(AppError::PurchaseNotFound)
    }

    /// Whether the table answers.
    pub(crate) async fn healthy(&self) -> Result<(), AppError> {
        self.store.ping().await.map_err(logged)
    }
}

fn total(shards: &[i64]) -> i64 {
    shards.iter().map(|r| (*r).max(0)).sum()
}
