//! DynamoDB Local (started here or given), tables and sales for the benchmarks, and API Gateway
//! events. Everything talks to 127.0.0.1 only, through `flash_sale::aws::local_client`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use dynamodb_local::DynamoDbLocal;
use flash_sale::App;
use flash_sale::clock::now_ms;
use flash_sale::config::Tuning;
use flash_sale::http::ApiRequest;
use flash_sale::sale::{Sale, Variant};
use flash_sale::store::Store;
use flash_sale_testkit::{TestApp, TestBody, event_json, user_body};
use serde_json::Value;

pub use flash_sale_testkit::{request_from as request, sale, unique};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    dynamodb_local::workspace_root()
}

/// A DynamoDB Local this process started (stopped, by its own PID, when dropped) or one given by
/// URL (left alone).
pub struct Dynamo {
    pub endpoint: String,
    _started: Option<DynamoDbLocal>,
}

impl Dynamo {
    /// Uses `endpoint` if given (must be loopback and answer), else starts an in-memory DynamoDB
    /// Local on a free port (`dynamodb_local::DynamoDbLocal::in_memory`) and waits until it answers.
    pub async fn get(endpoint: Option<&str>) -> Result<Self> {
        if let Some(e) = endpoint {
            let endpoint = e.trim_end_matches('/').to_owned();
            let call = client(&endpoint)?.list_tables().limit(1).send();
            match tokio::time::timeout(Duration::from_secs(30), call).await {
                Ok(Ok(_)) => return Ok(Self { endpoint, _started: None }),
                Ok(Err(err)) => {
                    bail!("DynamoDB Local at {endpoint}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(err))
                }
                Err(_) => bail!("DynamoDB Local at {endpoint} did not answer within 30 s"),
            }
        }
        let started = tokio::task::spawn_blocking(DynamoDbLocal::in_memory).await??;
        eprintln!("bench: started DynamoDB Local pid {:?} at {}", started.pid(), started.endpoint());
        Ok(Self { endpoint: started.endpoint(), _started: Some(started) })
    }
}

/// The one way this crate builds a DynamoDB client: static credentials, loopback endpoint.
pub fn client(endpoint: &str) -> Result<aws_sdk_dynamodb::Client> {
    flash_sale::aws::local_client(endpoint).map_err(|m| anyhow!(m))
}

/// A new table of its own, without the stream: DynamoDB Local keeps every stream record in memory
/// and writes at about half the rate while it does, which says nothing about DynamoDB.
pub async fn fresh_store(endpoint: &str) -> Result<Store> {
    let store = Store::new(client(endpoint)?, unique("bench"));
    if !store.create_table_without_stream().await.map_err(|e| anyhow!("create table: {e}"))? {
        bail!("table name collision");
    }
    Ok(store)
}

/// The `App` a function holds, on `store`, buyers named in the body (`AUTH_MODE=body`), the
/// wall clock, this tuning.
pub fn app(store: &Store, tuning: Tuning) -> TestApp {
    TestApp::on(store).tune(|t| *t = tuning)
}

/// [`app`] for the rest of the process, as `flash_sale::lambda::run` keeps it.
pub fn leaked_app(store: &Store, tuning: Tuning) -> &'static App {
    let app: &'static TestApp = Box::leak(Box::new(app(store, tuning)));
    app
}

/// An active sale (started a minute ago, ends in a day), stored.
pub async fn active_sale(store: &Store, stock: i64, shards: u32) -> Result<Sale> {
    let now = now_ms();
    let s = sale(&unique("s"), stock, shards, now - 60_000, now + 86_400_000);
    store.create_sale(&s, now).await.map_err(|e| anyhow!("create sale: {e}"))?;
    Ok(s)
}

/// An active sale like [`active_sale`] with `variants` variants (`v0`, `v1`, ...) of one shard
/// each, the stock split evenly; one variant: the plain sale of [`active_sale`].
pub async fn active_sale_with_variants(store: &Store, stock: i64, variants: u32) -> Result<Sale> {
    if variants <= 1 {
        return active_sale(store, stock, 1).await;
    }
    let now = now_ms();
    let mut s = sale(&unique("s"), stock, 1, now - 60_000, now + 86_400_000);
    s.set_variants(variant_list(stock, variants));
    store.create_sale(&s, now).await.map_err(|e| anyhow!("create sale: {e}"))?;
    Ok(s)
}

/// `n` variants `v0`.. of one shard each sharing `stock` (the first ones take the remainder).
pub fn variant_list(stock: i64, n: u32) -> Vec<Variant> {
    let n64 = i64::from(n.max(1));
    (0..n.max(1))
        .map(|i| Variant {
            variant_id: variant_id(i),
            label: format!("Size {i}"),
            sku: None,
            stock: stock / n64 + i64::from(i64::from(i) < stock % n64),
            shards: 1,
        })
        .collect()
}

/// The id of variant `i` of [`variant_list`].
pub fn variant_id(i: u32) -> String {
    format!("v{i}")
}

/// `POST /sales/{sale}/purchases` with `{"userId": user}`, as API Gateway sends it.
pub fn purchase_event(sale: &str, user: &str) -> Value {
    let path = format!("/sales/{sale}/purchases");
    event_json("POST", &path, &[("saleId", sale)], TestBody::Text(&user_body(user)), None)
}

/// [`purchase_event`] naming a variant (`None`: the body of [`purchase_event`]).
pub fn purchase_event_for(sale: &str, user: &str, variant: Option<&str>) -> Value {
    let Some(variant) = variant else { return purchase_event(sale, user) };
    let path = format!("/sales/{sale}/purchases");
    let body = serde_json::json!({ "userId": user, "variantId": variant }).to_string();
    event_json("POST", &path, &[("saleId", sale)], TestBody::Text(&body), None)
}

/// `GET /sales/{sale}`.
pub fn status_event(sale: &str) -> Value {
    event_json("GET", &format!("/sales/{sale}"), &[("saleId", sale)], TestBody::None, None)
}

/// `GET /sales/{sale}/purchases/{user}`.
pub fn lookup_event(sale: &str, user: &str) -> Value {
    let path = format!("/sales/{sale}/purchases/{user}");
    event_json("GET", &path, &[("saleId", sale), ("userId", user)], TestBody::None, None)
}

/// The request the purchase handler gets for [`purchase_event`].
pub fn purchase_request(sale: &str, user: &str) -> ApiRequest {
    request(&purchase_event(sale, user))
}

/// The DynamoDB Local of this test run (`DYNAMODB_ENDPOINT`, set by `cargo xtask test`; loopback
/// only), or `None` with a note when there is none.
#[cfg(test)]
pub fn test_endpoint() -> Option<String> {
    if std::env::var_os("DYNAMODB_ENDPOINT").is_none_or(|e| e.is_empty()) {
        eprintln!("DYNAMODB_ENDPOINT is not set (`cargo xtask test` sets it): skipping");
        return None;
    }
    Some(flash_sale_testkit::endpoint())
}
