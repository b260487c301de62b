//! What a DynamoDB error means for the answer: only throttling and transient failures (5xx,
//! timeouts, the network) are "busy, retry" (503 with Retry-After); an error a retry does not
//! change (access denied, a request the table refuses) is a 500 `internal_error`, with nothing
//! stored. A throttled shard sends the buyer to another shard. The errors come from the fault
//! proxy (a fake of what DynamoDB Local never answers); the SDK and DynamoDB Local are real.

use flash_sale_testkit::proxy::{Fault, Plan, Proxy, pass, upstream};
use flash_sale_testkit::{Route, SaleSpec, TestApp, req, user_body};

fn on(op: &'static str, fault: Fault) -> Plan {
    Box::new(move |o: &str, _: &str| if o == op { fault } else { Fault::Pass })
}

#[tokio::test]
async fn access_denied_on_the_purchase_transaction_is_an_internal_error_and_stores_nothing() {
    let app = TestApp::fresh().await;
    let sale = SaleSpec::new().stock(3).shards(2).create(&app).await;
    let denied = Fault::Error { status: 400, code: "AccessDeniedException" };
    let proxy = Proxy::start(upstream(), on("TransactWriteItems", denied)).await;
    let buyer = app.container().via(proxy.client());

    let resp = buyer.call(Route::Purchase, req::purchase(sale.id.as_str(), &user_body("alice"))).await;

    assert_eq!(resp.status_code, 500, "{}", resp.body);
    assert_eq!(resp.header("content-type"), Some("application/problem+json"));
    assert_eq!(resp.header("retry-after"), None, "not a busy shop: a retry changes nothing");
    let body: serde_json::Value = serde_json::from_str(&resp.body).expect("JSON");
    assert_eq!(body["code"], "internal_error", "{body}");
    let denials = proxy.counts().get(&("TransactWriteItems".to_owned(), "error")).copied();
    assert_eq!(denials, Some(1), "one transaction, not retried: {:?}", proxy.counts());
    let (stock, records) = app.stored(&sale).await;
    assert_eq!((stock.iter().sum::<i64>(), records.len()), (3, 0), "nothing stored");
}

#[tokio::test]
async fn a_validation_error_on_a_status_read_is_an_internal_error() {
    let app = TestApp::fresh().await;
    let sale = SaleSpec::new().create(&app).await;
    let invalid = Fault::Error { status: 400, code: "ValidationException" };
    let proxy = Proxy::start(upstream(), on("BatchGetItem", invalid)).await;
    let reader = app.container().via(proxy.client());

    let (status, body) = reader.get_sale(&sale).await;

    assert_eq!((status, body["code"].as_str()), (500, Some("internal_error")), "{body}");
    proxy.set_plan(pass());
    assert_eq!(reader.get_sale(&sale).await.0, 200, "the read itself works");
}

#[tokio::test]
async fn a_server_error_is_still_busy_with_retry_after() {
    let app = TestApp::fresh().await;
    let sale = SaleSpec::new().create(&app).await;
    let unavailable = Fault::Error { status: 503, code: "ServiceUnavailable" };
    let proxy = Proxy::start(upstream(), on("BatchGetItem", unavailable)).await;
    let reader = app.container().via(proxy.client());

    let resp = reader.call(Route::Status, req::status(sale.id.as_str())).await;

    assert_eq!(resp.status_code, 503, "{}", resp.body);
    assert_eq!(resp.header("retry-after"), Some("1"));
}

#[tokio::test]
async fn a_throttled_shard_sends_the_buyer_to_another_shard() {
    // Arrange: every transaction on shard 0 is throttled; shard 1 has stock.
    let app = TestApp::fresh().await;
    let sale = SaleSpec::new().stock(80).shards(2).create(&app).await;
    let shard0 = format!("\"{}\"", flash_sale::keys::shard_pk(sale.id.as_str(), 0));
    let plan: Plan =
        Box::new(
            move |op: &str, body: &str| {
                if op == "TransactWriteItems" && body.contains(&shard0) { Fault::Throttle } else { Fault::Pass }
            },
        );
    let proxy = Proxy::start(upstream(), plan).await;
    let buyer = app.container().via(proxy.client());
    let throttled = || proxy.counts().get(&("TransactWriteItems".to_owned(), "throttle")).copied().unwrap_or(0);

    // Act: buyers until one of them met the throttled shard first (each picks a random order),
    // at most 30.
    let mut bought = 0;
    while bought < 30 && (throttled() == 0 || bought < 3) {
        let (status, body) = buyer.buy(&sale, &format!("u{bought}")).await;
        assert_eq!(status, 201, "buyer {bought}: {body}");
        bought += 1;
    }

    // Assert: every buyer got an item, all from shard 1; shard 0 is untouched.
    assert!(throttled() > 0, "no buyer tried shard 0 first");
    let (stock, records) = app.stored(&sale).await;
    assert_eq!(stock, vec![40, 40 - bought as i64]);
    assert_eq!(records.len(), bought);
    assert!(records.iter().all(|r| r.shard == 1), "{records:?}");
}

#[tokio::test]
async fn throttling_on_every_shard_is_busy_with_retry_after() {
    let app = TestApp::fresh().await;
    let sale = SaleSpec::new().stock(4).shards(2).create(&app).await;
    let proxy = Proxy::start(upstream(), on("TransactWriteItems", Fault::Throttle)).await;
    let buyer = app.container().via(proxy.client());

    let resp = buyer.call(Route::Purchase, req::purchase(sale.id.as_str(), &user_body("alice"))).await;

    assert_eq!(resp.status_code, 503, "{}", resp.body);
    assert_eq!(resp.header("retry-after"), Some("1"));
    let (stock, records) = app.stored(&sale).await;
    assert_eq!((stock.iter().sum::<i64>(), records.len()), (4, 0));
}
