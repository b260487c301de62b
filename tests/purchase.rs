//! Purchase outcomes, status, lookup and health through the handlers, against DynamoDB Local.

use std::sync::Arc;
use std::time::Duration;

use flash_sale::App;
use flash_sale::clock::SystemClock;
use flash_sale::config::AuthMode;
use flash_sale::config::Tuning;
use flash_sale::ids::UserId;
use flash_sale::store::{Attempt, PurchaseRecord, Store};
use integration_tests::{
    TestBody, active_sale, fresh_store, purchase_request, read, request, stored_state, tuning, unique, user_body,
    wall_app,
};
use serde_json::json;

async fn buy(app: &App, sale: &str, user: &str) -> (u16, serde_json::Value) {
    read(&flash_sale::http::purchase_function(app, purchase_request(sale, &user_body(user))).await)
}

async fn lookup(app: &App, sale: &str, user: &str) -> (u16, serde_json::Value) {
    let path = format!("/sales/{sale}/purchases/{user}");
    let req = request("GET", &path, &[("saleId", sale), ("userId", user)], TestBody::None, None);
    read(&flash_sale::http::user_lookup_function(app, req).await)
}

#[tokio::test]
async fn a_purchase_returns_201_with_the_order_and_stores_it() {
    let store = fresh_store().await;
    let sale = active_sale(&store, 10, 1).await;
    let app = wall_app(&store, AuthMode::Body);
    let resp = flash_sale::http::purchase_function(&app, purchase_request(sale.id.as_str(), &user_body("alice"))).await;
    assert_eq!(resp.header("cache-control").unwrap_or_default(), "no-store");
    let (status, body) = read(&resp);
    assert_eq!(status, 201);
    assert_eq!(body["saleId"], json!(sale.id.as_str()));
    assert_eq!(body["userId"], "alice");
    assert_eq!(body["orderId"].as_str().map(str::len), Some(26), "a ULID");
    assert!(body["purchasedAt"].as_str().is_some_and(|t| t.ends_with('Z')));

    let (stock, purchases) = stored_state(&store, &sale).await;
    assert_eq!(stock, vec![9]);
    assert_eq!(purchases.len(), 1);
    assert_eq!(purchases[0].order_id, body["orderId"].as_str().unwrap());
    assert_eq!(lookup(&app, sale.id.as_str(), "alice").await, (200, body));
}

#[tokio::test]
async fn buying_again_returns_already_purchased_with_the_existing_order() {
    let store = fresh_store().await;
    let sale = active_sale(&store, 10, 2).await;
    let app = wall_app(&store, AuthMode::Body);
    let (_, first) = buy(&app, sale.id.as_str(), "alice").await;
    for _ in 0..3 {
        let (status, body) = buy(&app, sale.id.as_str(), "alice").await;
        assert_eq!((status, body["code"].as_str()), (409, Some("already_purchased")));
        assert_eq!(body["purchase"], first, "the existing purchase, unchanged");
    }
    // User ids are case-sensitive: Alice is someone else.
    assert_eq!(buy(&app, sale.id.as_str(), "Alice").await.0, 201);
    let (stock, purchases) = stored_state(&store, &sale).await;
    assert_eq!(stock.iter().sum::<i64>(), 8, "one item per distinct user");
    assert_eq!(purchases.len(), 2);
}

#[tokio::test]
async fn the_last_item_sells_then_sold_out_across_every_shard() {
    let store = fresh_store().await;
    let sale = active_sale(&store, 8, 8).await;
    let app = wall_app(&store, AuthMode::Body);
    for n in 0..8 {
        assert_eq!(
            buy(&app, sale.id.as_str(), &format!("u{n}")).await.0,
            201,
            "item {n} of 8 sells whichever shard is tried first"
        );
    }
    let (status, body) = buy(&app, sale.id.as_str(), "late").await;
    assert_eq!((status, body["code"].as_str()), (409, Some("sold_out")));
    let (stock, purchases) = stored_state(&store, &sale).await;
    assert_eq!((stock, purchases.len()), (vec![0; 8], 8));
    let req = request("GET", "/x", &[("saleId", sale.id.as_str())], TestBody::None, None);
    let (_, status) = read(&flash_sale::http::status_function(&app, req).await);
    assert_eq!((status["state"].as_str(), status["remainingStock"].as_i64()), (Some("sold_out"), Some(0)));
}

#[tokio::test]
async fn the_sold_out_hint_answers_without_a_transaction_and_expires() {
    let store = fresh_store().await;
    let sale = active_sale(&store, 1, 1).await;
    let tuning = Tuning { sold_out_hint: Duration::from_millis(300), ..tuning() };
    let app = integration_tests::app_with(&store, Arc::new(SystemClock), AuthMode::Body, tuning);
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
    let store = fresh_store().await;
    let sale = active_sale(&store, 1, 1).await;
    let app = wall_app(&store, AuthMode::Body);
    let (status, body) = buy(&app, "no-such-sale", "alice").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("sale_not_found")));
    let req = request("GET", "/sales/no-such-sale", &[("saleId", "no-such-sale")], TestBody::None, None);
    let (status, body) = read(&flash_sale::http::status_function(&app, req).await);
    assert_eq!((status, body["code"].as_str()), (404, Some("sale_not_found")));
    let (status, body) = lookup(&app, sale.id.as_str(), "nobody").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("purchase_not_found")));
}

#[tokio::test]
async fn list_shows_every_sale_with_its_remaining_stock() {
    let store = fresh_store().await;
    let a = active_sale(&store, 3, 1).await;
    let b = active_sale(&store, 16, 4).await;
    let app = wall_app(&store, AuthMode::Body);
    buy(&app, b.id.as_str(), "x").await;
    let resp = flash_sale::http::status_function(&app, request("GET", "/sales", &[], TestBody::None, None)).await;
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

#[tokio::test]
async fn health_is_200_with_the_table_and_503_without_it() {
    let store = fresh_store().await;
    let app = wall_app(&store, AuthMode::Body);
    let (status, body) =
        read(&flash_sale::http::status_function(&app, request("GET", "/health", &[], TestBody::None, None)).await);
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));

    let missing = Store::new(store.client().clone(), unique("missing"));
    let app = wall_app(&missing, AuthMode::Body);
    let resp = flash_sale::http::status_function(&app, request("GET", "/health", &[], TestBody::None, None)).await;
    assert_eq!(resp.header("retry-after").unwrap_or_default(), "1");
    let (status, body) = read(&resp);
    assert_eq!((status, body["code"].as_str()), (503, Some("temporarily_unavailable")));
}

#[tokio::test]
async fn a_replayed_transaction_token_commits_once_and_a_reused_token_is_refused() {
    let store = fresh_store().await;
    let sale = active_sale(&store, 5, 1).await;
    let now = integration_tests::now_ms();
    let record = PurchaseRecord::new(&sale.id, &UserId::parse("replay").unwrap(), "01REPLAYORDER".into(), now, 0, None);
    let token = unique("tok");
    assert_eq!(store.transact_purchase(&sale, 0, &record, now, &token).await.unwrap(), Attempt::Committed);
    assert_eq!(
        store.transact_purchase(&sale, 0, &record, now, &token).await.unwrap(),
        Attempt::Committed,
        "a replay is a success"
    );
    let (stock, purchases) = stored_state(&store, &sale).await;
    assert_eq!((stock, purchases.len()), (vec![4], 1), "but decrements once");

    let other = PurchaseRecord::new(&sale.id, &UserId::parse("someone-else").unwrap(), "01OTHER".into(), now, 0, None);
    assert!(store.transact_purchase(&sale, 0, &other, now, &token).await.is_err(), "same token, other parameters");
    assert_eq!(stored_state(&store, &sale).await.0, vec![4]);
}
