//! Purchase outcomes, status, lookup and health through the handlers, against DynamoDB Local.

use std::time::Duration;

use flash_sale::ids::UserId;
use flash_sale::store::{Attempt, PurchaseRecord, Store};
use flash_sale_testkit::proxy::{Fault, Proxy, upstream};
use flash_sale_testkit::{Route, SaleSpec, TestApp, read, req, unique, user_body};
use serde_json::json;

#[tokio::test]
async fn a_purchase_returns_201_with_the_order_and_stores_it() {
    let app = TestApp::fresh().await;
    let sale = SaleSpec::new().create(&app).await;
    let resp = app.call(Route::Purchase, req::purchase(sale.id.as_str(), &user_body("alice"))).await;
    assert_eq!(resp.header("cache-control").unwrap_or_default(), "no-store");
    let (status, body) = read(&resp);
    assert_eq!(status, 201);
    assert_eq!(body["saleId"], json!(sale.id.as_str()));
    assert_eq!(body["userId"], "alice");
    assert_eq!(body["orderId"].as_str().map(str::len), Some(26), "a ULID");
    assert!(body["purchasedAt"].as_str().is_some_and(|t| t.ends_with('Z')));

    let (stock, purchases) = app.stored(&sale).await;
    assert_eq!(stock, vec![9]);
    assert_eq!(purchases.len(), 1);
    assert_eq!(purchases[0].order_id, body["orderId"].as_str().unwrap());
    assert_eq!(app.get_purchase(&sale, "alice").await, (200, body));
}

#[tokio::test]
async fn buying_again_returns_already_purchased_with_the_existing_order() {
    let app = TestApp::fresh().await;
    let sale = SaleSpec::new().stock(10).shards(2).create(&app).await;
    let (_, first) = app.buy(&sale, "alice").await;
    for _ in 0..3 {
        let (status, body) = app.buy(&sale, "alice").await;
        assert_eq!((status, body["code"].as_str()), (409, Some("already_purchased")));
        assert_eq!(body["purchase"], first, "the existing purchase, unchanged");
    }
    // User ids are case-sensitive: Alice is someone else.
    assert_eq!(app.buy(&sale, "Alice").await.0, 201);
    let (stock, purchases) = app.stored(&sale).await;
    assert_eq!(stock.iter().sum::<i64>(), 8, "one item per distinct user");
    assert_eq!(purchases.len(), 2);
}

#[tokio::test]
async fn the_last_item_sells_then_sold_out_across_every_shard() {
    let app = TestApp::fresh().await;
    let sale = SaleSpec::new().stock(8).shards(8).create(&app).await;
    for n in 0..8 {
        assert_eq!(app.buy(&sale, &format!("u{n}")).await.0, 201, "item {n} of 8 sells whichever shard is tried first");
    }
    let (status, body) = app.buy(&sale, "late").await;
    assert_eq!((status, body["code"].as_str()), (409, Some("sold_out")));
    let (stock, purchases) = app.stored(&sale).await;
    assert_eq!((stock, purchases.len()), (vec![0; 8], 8));
    let (_, status) = app.send(Route::Status, req::get("/x", &[("saleId", sale.id.as_str())])).await;
    assert_eq!((status["state"].as_str(), status["remainingStock"].as_i64()), (Some("sold_out"), Some(0)));
}

#[tokio::test]
async fn the_sold_out_hint_answers_without_a_transaction_and_expires() {
    let app = TestApp::fresh().await.tune(|t| t.sold_out_hint = Duration::from_millis(300));
    // With holds: a sale without them is believed sold out for good once its shards were read
    // empty, and asks them no more while that holds (tests/refusal.rs).
    let sale = SaleSpec::new().stock(1).holds(300).create(&app).await;
    let user = |u: &str| UserId::parse(u).unwrap();
    assert!(app.purchase(&sale.id, &user("first"), None).await.result.is_ok());

    let learn = app.purchase(&sale.id, &user("second"), None).await;
    assert!(matches!(learn.result, Err(flash_sale::AppError::SoldOut)));
    assert_eq!((learn.transactions, learn.from_hint), (1, false));
    let hinted = app.purchase(&sale.id, &user("third"), None).await;
    assert!(matches!(hinted.result, Err(flash_sale::AppError::SoldOut)));
    assert_eq!((hinted.transactions, hinted.from_hint), (0, true), "no DynamoDB call while the hint holds");

    tokio::time::sleep(Duration::from_millis(350)).await;
    let after = app.purchase(&sale.id, &user("fourth"), None).await;
    assert_eq!((after.transactions, after.from_hint), (1, false), "the hint expired; DynamoDB decides again");
}

#[tokio::test]
async fn unknown_sales_and_purchases_are_404() {
    let app = TestApp::fresh().await;
    let sale = SaleSpec::new().stock(1).create(&app).await;
    let (status, body) = app.buy("no-such-sale", "alice").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("sale_not_found")));
    let (status, body) = app.get_sale("no-such-sale").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("sale_not_found")));
    let (status, body) = app.get_purchase(&sale, "nobody").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("purchase_not_found")));
}

#[tokio::test]
async fn list_shows_every_sale_with_its_remaining_stock() {
    let app = TestApp::fresh().await;
    let a = SaleSpec::new().stock(3).create(&app).await;
    let b = SaleSpec::new().stock(16).shards(4).create(&app).await;
    app.buy(&b, "x").await;
    let resp = app.call(Route::Status, req::get("/sales", &[])).await;
    assert_eq!(resp.header("cache-control").unwrap_or_default(), "public, max-age=1");
    let (status, body) = read(&resp);
    assert_eq!(status, 200);
    let sales = body["sales"].as_array().unwrap();
    let remaining = |id: &str| sales.iter().find(|s| s["saleId"] == id).and_then(|s| s["remainingStock"].as_i64());
    assert_eq!(sales.len(), 2);
    assert_eq!((remaining(a.id.as_str()), remaining(b.id.as_str())), (Some(3), Some(15)));
    for field in ["name", "priceCents", "currency", "state", "totalStock", "startsAt", "endsAt", "serverTime"] {
        assert!(!sales[0][field].is_null(), "{field}");
    }
}

/// Health is 200 when the table answers, 503 (retry) when DynamoDB fails transiently (a 500 from
/// the fault proxy: DynamoDB Local never answers one), and 500 when the table does not exist: a
/// deployment mistake that no retry fixes.
#[tokio::test]
async fn health_is_200_with_the_table_503_when_dynamodb_fails_and_500_without_the_table() {
    let app = TestApp::fresh().await;
    let (status, body) = app.send(Route::Status, req::get("/health", &[])).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));

    let proxy = Proxy::start(upstream(), Box::new(|_: &str, _: &str| Fault::ServerError)).await;
    let failing = app.container().via(proxy.client());
    let resp = failing.call(Route::Status, req::get("/health", &[])).await;
    assert_eq!(resp.header("retry-after").unwrap_or_default(), "1");
    let (status, body) = read(&resp);
    assert_eq!((status, body["code"].as_str()), (503, Some("temporarily_unavailable")));

    let missing = TestApp::on(&Store::new(app.store().client().clone(), unique("missing")));
    let resp = missing.call(Route::Status, req::get("/health", &[])).await;
    assert_eq!(resp.header("retry-after"), None);
    let (status, body) = read(&resp);
    assert_eq!((status, body["code"].as_str()), (500, Some("internal_error")));
}

#[tokio::test]
async fn a_replayed_transaction_token_commits_once_and_a_reused_token_is_refused() {
    let app = TestApp::fresh().await;
    let store = app.store();
    let sale = SaleSpec::new().stock(5).create(&app).await;
    let now = app.now();
    let record = PurchaseRecord::new(&sale.id, &UserId::parse("replay").unwrap(), "01REPLAYORDER".into(), now, 0, None);
    let token = unique("tok");
    assert_eq!(store.transact_purchase(&sale, 0, &record, now, &token).await.unwrap(), Attempt::Committed);
    assert_eq!(
        store.transact_purchase(&sale, 0, &record, now, &token).await.unwrap(),
        Attempt::Committed,
        "a replay is a success"
    );
    let (stock, purchases) = app.stored(&sale).await;
    assert_eq!((stock, purchases.len()), (vec![4], 1), "but decrements once");

    let other = PurchaseRecord::new(&sale.id, &UserId::parse("someone-else").unwrap(), "01OTHER".into(), now, 0, None);
    assert!(store.transact_purchase(&sale, 0, &other, now, &token).await.is_err(), "same token, other parameters");
    assert_eq!(app.stored(&sale).await.0, vec![4]);
}

/// The purchase path relies on DynamoDB reporting every failed condition of a cancelled
/// transaction: on an empty shard, a buyer who already owns an item must learn it from the
/// transaction itself (the purchase record's condition failed too), not be told `sold_out`. Checked
/// here against DynamoDB Local, through a container with no hint and a recording of its calls.
#[tokio::test]
async fn a_transaction_on_an_empty_shard_also_reports_the_buyers_own_record() {
    let app = TestApp::fresh().await;
    let sale = SaleSpec::new().stock(1).create(&app).await;
    assert_eq!(app.buy(&sale, "alice").await.0, 201);
    let recording = flash_sale_testkit::proxy::Recording::start(flash_sale_testkit::proxy::pass()).await;
    let fresh = app.container().via(recording.proxy.patient_client());
    let (status, body) = fresh.buy(&sale, "alice").await;
    assert_eq!((status, body["code"].as_str()), (409, Some("already_purchased")), "{body}");
    let calls = recording.take();
    let ops: Vec<&str> = calls.iter().map(|(op, _)| op.as_str()).collect();
    assert_eq!(ops.iter().filter(|op| **op == "TransactWriteItems").count(), 1, "one transaction: {ops:?}");
    let record = flash_sale::keys::purchase_pk(sale.id.as_str(), "alice");
    let reads = calls.iter().filter(|(op, body)| op != "TransactWriteItems" && body.contains(&record)).count();
    assert_eq!(reads, 0, "the transaction's cancellation reasons told, no read of the record: {ops:?}");
}
