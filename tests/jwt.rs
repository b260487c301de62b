//! `AUTH_MODE=jwt`: the buyer is the verified `sub` claim.

use flash_sale::config::AuthMode;
use flash_sale_testkit::Route::{Lookup, Purchase};
use flash_sale_testkit::{SaleSpec, TestApp, TestBody, req, request};
use serde_json::json;

fn purchase(sale: &str, body: Option<&str>, sub: Option<&str>) -> flash_sale::http::ApiRequest {
    let body = body.map_or(TestBody::None, TestBody::Text);
    let claims = sub.map(|s| json!({"sub": s, "iss": "https://issuer.example", "aud": "flash-sale"}));
    request("POST", &format!("/sales/{sale}/purchases"), &[("saleId", sale)], body, claims)
}

fn lookup(sale: &str, user: &str, sub: Option<&str>) -> flash_sale::http::ApiRequest {
    req::lookup("GET", sale, user, sub.map(|s| json!({"sub": s})))
}

#[tokio::test]
async fn the_buyer_is_the_sub_claim_and_nobody_else() {
    let app = TestApp::fresh().await.auth(AuthMode::Jwt);
    let sale = SaleSpec::new().create(&app).await;
    let id = sale.id.as_str();

    let (status, body) = app.send(Purchase, purchase(id, None, Some("sub-alice"))).await;
    assert_eq!((status, body["userId"].as_str()), (201, Some("sub-alice")));
    let (status, _) = app.send(Purchase, purchase(id, Some(r#"{"userId":"sub-bob"}"#), Some("sub-bob"))).await;
    assert_eq!(status, 201, "a body userId equal to the claim is fine");

    let (status, body) = app.send(Purchase, purchase(id, Some(r#"{"userId":"mallory"}"#), Some("sub-carol"))).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")), "a body userId that differs is rejected");
    let (status, body) = app.send(Purchase, purchase(id, Some(r#"{"userId":"alice"}"#), None)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthorized")),
        "no claim, no purchase, whatever the body says"
    );

    let (stock, purchases) = app.stored(&sale).await;
    assert_eq!(stock, vec![8]);
    let mut users: Vec<_> = purchases.iter().map(|p| p.user_id.as_str()).collect();
    users.sort();
    assert_eq!(users, ["sub-alice", "sub-bob"]);
}

#[tokio::test]
async fn users_may_look_up_only_their_own_purchase() {
    let app = TestApp::fresh().await.auth(AuthMode::Jwt);
    let sale = SaleSpec::new().create(&app).await;
    let id = sale.id.as_str();
    assert_eq!(app.send(Purchase, purchase(id, None, Some("alice"))).await.0, 201);

    let (status, body) = app.send(Lookup, lookup(id, "alice", Some("alice"))).await;
    assert_eq!((status, body["userId"].as_str()), (200, Some("alice")));
    let (status, body) = app.send(Lookup, lookup(id, "alice", Some("bob"))).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    let (status, body) = app.send(Lookup, lookup(id, "alice", None)).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
}
