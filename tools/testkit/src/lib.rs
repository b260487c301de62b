//! The test harness of the flash sale, against a real DynamoDB Local: a fresh table per test, a
//! sale builder ([`SaleSpec`]), the functions called as API Gateway calls them ([`TestApp`], one
//! per simulated container, several on one store with [`TestApp::containers`]), API Gateway
//! events and requests ([`req`]), the fault and recording proxies ([`proxy`]), the table's stream
//! and a stand-in bus ([`streams`]), a drand relay fixture server ([`drand`]).
//!
//! A test reads arrange / act / assert:
//!
//! ```no_run
//! # use flash_sale_testkit::{SaleSpec, TestApp};
//! # async fn example() {
//! # const T0: i64 = 1_800_000_000_000;
//! let app = TestApp::fresh().await.at(T0);                         // a table, a manual clock
//! let sale = SaleSpec::new().stock(1).holds(60).create(&app).await;
//! let [a, b] = app.containers();                                  // two containers, one store
//! assert_eq!(a.buy(&sale, "alice").await.0, 201);                 // POST /sales/{id}/purchases
//! assert_eq!(b.buy(&sale, "bob").await.1["code"], "sold_out");
//! assert_eq!(a.get_purchase(&sale, "alice").await.0, 200);        // GET /sales/{id}/purchases/alice
//! # }
//! ```
//!
//! The endpoint comes from `DYNAMODB_ENDPOINT` (set by `cargo xtask test`, which starts DynamoDB
//! Local on a free port) and must be a loopback address.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use base64::Engine;
use flash_sale::config::Tuning;
use flash_sale::http::{ApiEvent, ApiRequest, ApiResponse};

pub mod drand;
pub mod fixture_http;
mod harness;
pub mod proxy;
pub mod req;
pub mod secrets;
pub mod streams;

use flash_sale::ids::SaleId;
use flash_sale::sale::Sale;
use flash_sale::store::{PurchaseRecord, Store};
pub use harness::{Route, SaleRef, SaleSpec, TestApp};
use serde_json::{Value, json};

/// The DynamoDB Local endpoint; refuses anything that is not loopback.
pub fn endpoint() -> String {
    let endpoint = std::env::var("DYNAMODB_ENDPOINT")
        .expect("DYNAMODB_ENDPOINT is not set: run the tests with `cargo xtask test`, which starts DynamoDB Local");
    flash_sale::aws::require_loopback(&endpoint).expect("tests only talk to a loopback DynamoDB Local");
    endpoint
}

/// A name no other test in this run uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst), fastrand::u32(..))
}

/// `client` as one simulated container holds it: the same configuration with a retry partition of
/// its own. The SDK's retry quota is kept per process and partition, and a Lambda container is a
/// process: without this, one test's throttling storm would spend the retries of every other
/// container and test running beside it.
pub fn own_retry_quota(client: &aws_sdk_dynamodb::Client) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::retry::RetryPartition;
    let config = client.config().to_builder().retry_partition(RetryPartition::new(unique("container"))).build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// A new, empty table of its own for one test (without a stream: see [`fresh_store_with_stream`]).
pub async fn fresh_store() -> Store {
    let client = own_retry_quota(&flash_sale::aws::local_client(&endpoint()).expect("local client"));
    let store = Store::new(client, unique("t"));
    assert!(store.create_table_without_stream().await.expect("create table"), "table name collision");
    store
}

/// A new, empty table exactly as `flash-sale-admin create-table` makes it, stream included.
pub async fn fresh_store_with_stream() -> Store {
    let client = own_retry_quota(&flash_sale::aws::local_client(&endpoint()).expect("local client"));
    let store = Store::new(client, unique("t"));
    assert!(store.create_table().await.expect("create table"), "table name collision");
    store
}

/// Tuning for tests: no sale cache or sold-out hint unless a test asks for them, quick retries.
pub fn tuning() -> Tuning {
    Tuning {
        sale_cache: Duration::ZERO,
        sold_out_hint: Duration::ZERO,
        backoff_base: Duration::from_millis(1),
        backoff_cap: Duration::from_millis(5),
        // Rooms step every second exactly, whichever container looks (tests that count writes
        // per key keep the spread).
        room_step_spread: Duration::ZERO,
        ..Tuning::default()
    }
}

pub use flash_sale::clock::now_ms;

pub fn sale(id: &str, stock: i64, shards: u32, starts_at_ms: i64, ends_at_ms: i64) -> Sale {
    Sale {
        id: SaleId::parse(id).expect("sale id"),
        name: format!("Sale {id}"),
        price_cents: 1_999,
        currency: "EUR".into(),
        total_stock: stock,
        shards,
        starts_at_ms,
        ends_at_ms,
        room: None,
        hold_seconds: 0,
        variants: Vec::new(),
        max_per_customer: 1,
    }
}

/// An active sale (started a minute ago, ends in an hour), stored: `SaleSpec` in short.
pub async fn active_sale(store: &Store, stock: i64, shards: u32) -> Sale {
    SaleSpec::new().stock(stock).shards(shards).create_in(store, now_ms()).await.0
}

/// The admission key the tests sign with (32 bytes, hex), as `ADMISSION_KEY` holds it.
pub const ADMISSION_KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

pub fn admission_keys() -> flash_sale::room::AdmissionKeys {
    flash_sale::room::AdmissionKeys::from_hex(ADMISSION_KEY_HEX, None).expect("test key")
}

/// A sale with a waiting room, stored with a fresh draw seed; returns the sale and its seed
/// (`SaleSpec` in short).
pub async fn room_sale(store: &Store, stock: i64, shards: u32, starts_at_ms: i64, ends_at_ms: i64) -> (Sale, Vec<u8>) {
    let spec = SaleSpec::new().stock(stock).shards(shards).window(starts_at_ms, ends_at_ms).room();
    spec.create_in(store, starts_at_ms).await
}

/// Overwrites one attribute of a stored item with a value of the wrong type (a string where the
/// code expects a number), to see how unreadable data is answered.
pub async fn spoil(store: &Store, pk: &str, sk: &str, attribute: &str) {
    store
        .client()
        .update_item()
        .table_name(store.table())
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.into()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(sk.into()))
        .update_expression("SET #a = :bad")
        .expression_attribute_names("#a", attribute)
        .expression_attribute_values(":bad", aws_sdk_dynamodb::types::AttributeValue::S("not a number".into()))
        .send()
        .await
        .expect("spoil item");
}

/// The partition key of a sale's stock shard, as the store writes it.
pub fn shard_key(sale: &Sale, shard: u32) -> String {
    flash_sale::keys::shard_pk(sale.id.as_str(), shard)
}

/// Everything stored about a sale: stock per shard and purchases in order.
pub async fn stored_state(store: &Store, sale: &Sale) -> (Vec<i64>, Vec<PurchaseRecord>) {
    let stock = store.shard_stock(&[sale]).await.expect("stock").remove(0);
    let purchases = store.purchases_of(&sale.id).await.expect("purchases");
    (stock, purchases)
}

/// How a test request carries its body.
pub enum TestBody<'a> {
    None,
    Text(&'a str),
    Bytes(&'a [u8]),
}

/// An API Gateway HTTP API (payload 2.0) event as API Gateway would send it, as JSON.
/// `claims` stands for a verified JWT.
pub fn event_json(
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    body: TestBody<'_>,
    claims: Option<Value>,
) -> Value {
    let mut event = json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "localhost"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"},
            "requestId": unique("req"),
            "routeKey": format!("{method} {path}"),
            "stage": "$default",
            "time": "21/Nov/2026:06:00:00 +0000",
            "timeEpoch": 1_795_000_000_000i64
        },
        "isBase64Encoded": false
    });
    if !params.is_empty() {
        event["pathParameters"] =
            params.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>().into();
    }
    match body {
        TestBody::None => {}
        TestBody::Text(t) => event["body"] = json!(t),
        TestBody::Bytes(b) => {
            event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(b));
            event["isBase64Encoded"] = json!(true);
        }
    }
    if let Some(claims) = claims {
        event["requestContext"]["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    }
    event
}

/// An event as the function's runtime reads it: the JSON an invocation carries, parsed the same way.
pub fn request_from(event: &Value) -> ApiRequest {
    ApiRequest::new(serde_json::from_str::<ApiEvent>(&event.to_string()).expect("valid API Gateway event"))
}

/// The request the handlers get for this API Gateway event.
pub fn request(
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    body: TestBody<'_>,
    claims: Option<Value>,
) -> ApiRequest {
    request_from(&event_json(method, path, params, body, claims))
}

pub use req::purchase as purchase_request;

pub fn user_body(user: &str) -> String {
    json!({ "userId": user }).to_string()
}

/// Status and parsed JSON body of a response; checks the content type matches success/problem.
pub fn read(resp: &ApiResponse) -> (u16, Value) {
    let status = resp.status_code;
    let content_type = resp.header("content-type").unwrap_or_default();
    let expected = if status >= 400 { "application/problem+json" } else { "application/json" };
    assert_eq!(content_type, expected, "content type of a {status}");
    let value: Value = serde_json::from_str(&resp.body).expect("JSON body");
    if status >= 400 {
        assert_eq!(value["status"], json!(status), "problem status field");
        assert!(value["code"].is_string(), "problem has a code");
    }
    (status, value)
}
