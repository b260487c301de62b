//! Helpers for tests against DynamoDB Local: a fresh table per test, sales, API Gateway requests.
//!
//! The endpoint comes from `DYNAMODB_ENDPOINT` (set by `cargo xtask test`, which starts DynamoDB
//! Local on a free port) and must be a loopback address.
//!
//! [`template`] reads the deployment (`infra/*.yaml`) as data and needs no DynamoDB; `iam_actions`
//! there is what the template grants each function.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use base64::Engine;
use flash_sale::App;
use flash_sale::clock::{Clock, ManualClock, SystemClock};
use flash_sale::config::{AuthMode, Config, Tuning};
use flash_sale::http::{ApiEvent, ApiRequest, ApiResponse};
use flash_sale::ids::SaleId;
use flash_sale::sale::Sale;
use flash_sale::store::{PurchaseRecord, Store};
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

/// A new, empty table of its own for one test (without a stream: see [`fresh_store_with_stream`]).
pub async fn fresh_store() -> Store {
    let client = flash_sale::aws::local_client(&endpoint()).expect("local client");
    let store = Store::new(client, unique("t"));
    assert!(store.create_table_without_stream().await.expect("create table"), "table name collision");
    store
}

/// A new, empty table exactly as `flash-sale-admin create-table` makes it, stream included.
pub async fn fresh_store_with_stream() -> Store {
    let client = flash_sale::aws::local_client(&endpoint()).expect("local client");
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
        ..Tuning::default()
    }
}

pub fn app(store: &Store, clock: Arc<dyn Clock>, auth: AuthMode) -> App {
    app_with(store, clock, auth, tuning())
}

pub fn app_with(store: &Store, clock: Arc<dyn Clock>, auth: AuthMode, tuning: Tuning) -> App {
    let mut config = Config::for_table(store.table(), auth);
    config.tuning = tuning;
    App::new(store.clone(), clock, config)
}

pub fn wall_app(store: &Store, auth: AuthMode) -> App {
    app(store, Arc::new(SystemClock), auth)
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
    }
}

/// An active sale (started a minute ago, ends in an hour), stored.
pub async fn active_sale(store: &Store, stock: i64, shards: u32) -> Sale {
    let now = now_ms();
    let s = sale(&unique("s"), stock, shards, now - 60_000, now + 3_600_000);
    store.create_sale(&s, now).await.expect("create sale");
    s
}

/// The admission key the tests sign with (32 bytes, hex), as `ADMISSION_KEY` holds it.
pub const ADMISSION_KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

pub fn admission_keys() -> flash_sale::room::AdmissionKeys {
    flash_sale::room::AdmissionKeys::from_hex(ADMISSION_KEY_HEX, None).expect("test key")
}

/// An app whose functions sign and check admission tokens with [`ADMISSION_KEY_HEX`].
pub fn room_app(store: &Store, clock: Arc<dyn Clock>, auth: AuthMode) -> App {
    let mut config = Config::for_table(store.table(), auth);
    config.tuning = tuning();
    config.admission_keys = Some(admission_keys());
    App::new(store.clone(), clock, config)
}

/// A sale with a waiting room, stored with a fresh draw seed; returns the sale and its seed.
pub async fn room_sale(store: &Store, stock: i64, shards: u32, starts_at_ms: i64, ends_at_ms: i64) -> (Sale, Vec<u8>) {
    let seed = flash_sale::room::new_seed().expect("seed").to_vec();
    let mut s = sale(&unique("room"), stock, shards, starts_at_ms, ends_at_ms);
    s.room = Some(flash_sale::room::RoomConfig::new(shards, starts_at_ms, &seed));
    store.create_sale_with_room(&s, &seed, starts_at_ms - 3_600_000).await.expect("create sale with room");
    (s, seed)
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

pub fn purchase_request(sale: &str, body: &str) -> ApiRequest {
    request("POST", &format!("/sales/{sale}/purchases"), &[("saleId", sale)], TestBody::Text(body), None)
}

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

/// A manual clock at `ms`, shared with the app under test.
pub fn clock_at(ms: i64) -> (ManualClock, Arc<dyn Clock>) {
    let clock = ManualClock::at(ms);
    (clock.clone(), Arc::new(clock))
}
pub mod openapi;
pub mod proxy;
pub mod streams;
pub mod template;
