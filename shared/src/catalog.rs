//! The sales a container knows: each sale's configuration, read once and kept for
//! `Tuning::sale_cache`. A sale's configuration never changes after creation, and nothing here
//! decides a sale: the purchase transaction's conditions do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::AppError;
use crate::ids::SaleId;
use crate::sale::Sale;
use crate::store::{Store, logged};

/// The sale-configuration cache of one container.
pub(crate) struct Catalog {
    store: Store,
    ttl: Duration,
    sales: Mutex<HashMap<SaleId, (Arc<Sale>, Instant)>>,
}

impl Catalog {
    pub(crate) fn new(store: Store, ttl: Duration) -> Self {
        Self { store, ttl, sales: Mutex::new(HashMap::new()) }
    }

    /// The sale's configuration, from this container's copy while it is fresh.
    pub(crate) async fn sale(&self, id: &SaleId) -> Result<Arc<Sale>, AppError> {
        let cached = {
            let sales = self.sales.lock().unwrap_or_else(|p| p.into_inner());
            sales.get(id).filter(|(_, fetched)| fetched.elapsed() < self.ttl).map(|(sale, _)| sale.clone())
        };
        if let Some(sale) = cached {
            return Ok(sale);
        }
        let sale = Arc::new(self.store.get_sale(id).await.map_err(logged)?.ok_or(AppError::SaleNotFound)?);
        self.sales.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), (sale.clone(), Instant::now()));
        Ok(sale)
    }
}
