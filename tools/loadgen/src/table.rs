//! The stored state of a sale with variants or several items per customer, read back for
//! [`crate::verify::check_sized_store`]: the sale's variants and shards, every order record and
//! every customer item. The only I/O here besides [`crate::load`]; consistent reads, except the
//! shards' `BatchGetItem` (eventually consistent on DynamoDB: [`read_sized`] reads again, a few
//! times, while the stock does not add up).

use std::time::Duration;

use flash_sale::sale::Sale;
use flash_sale::store::{Store, StoreError};

use crate::verify::{SizedState, StoredCustomer, StoredOrder, StoredVariant};

/// Reads the sale's stored state once.
pub async fn read_sized_once(store: &Store, sale: &Sale) -> Result<SizedState, StoreError> {
    let orders = store
        .purchases_of(&sale.id)
        .await?
        .into_iter()
        .map(|r| StoredOrder {
            variant_id: r.variant().to_owned(),
            quantity: r.items(),
            live: r.status.is_live(),
            takes: r.taken().into_iter().map(|t| (t.shard, t.n)).collect(),
            user_id: r.user_id,
            order_id: r.order_id,
        })
        .collect();
    let shards = store.shard_stock(&[sale]).await?.remove(0);
    let customers = if sale.max_per_customer > 1 { Some(customers_of(store, sale).await?) } else { None };
    Ok(SizedState {
        max_per_customer: sale.max_per_customer,
        variants: sale
            .spans()
            .iter()
            .map(|v| StoredVariant { variant_id: v.id.to_owned(), total: v.stock, first: v.first, shards: v.shards })
            .collect(),
        initial: sale.shard_stock(),
        shards,
        orders,
        customers,
    })
}

/// [`read_sized_once`], read again (at most 3 more times, a second apart) while the variants'
/// stock and live items do not add up: a shard read may lag a purchase on DynamoDB.
pub async fn read_sized(store: &Store, sale: &Sale) -> Result<SizedState, StoreError> {
    let mut round = 0;
    loop {
        let state = read_sized_once(store, sale).await?;
        let live = state.live_items_by_variant();
        let adds_up = state.variants.iter().all(|v| {
            let left: i64 = (v.first..v.first + v.shards).filter_map(|n| state.shards.get(n as usize)).sum();
            left + live.get(v.variant_id.as_str()).copied().unwrap_or(0) == v.total
        });
        if adds_up || round == 3 {
            return Ok(state);
        }
        round += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Every customer item of the sale (`SALE#{s}#USER#{u}` / `CUSTOMER`): a consistent scan.
pub async fn customers_of(store: &Store, sale: &Sale) -> Result<Vec<StoredCustomer>, StoreError> {
    let customers = store.customers_of(&sale.id).await?;
    Ok(customers.into_iter().map(|(user_id, c)| StoredCustomer { user_id, live: c.live, orders: c.orders }).collect())
}
