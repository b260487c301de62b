//! The example events in `events/` (for `cargo lambda invoke`) are real API Gateway events that
//! the handlers answer as documented.

use std::path::Path;

use flash_sale::config::AuthMode;
use flash_sale_testkit::{TestApp, fresh_store, now_ms, read, sale};

fn event(name: &str) -> flash_sale::http::ApiRequest {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
    flash_sale_testkit::request_from(&value)
}

#[tokio::test]
async fn every_example_event_gets_its_documented_answer() {
    let store = fresh_store().await;
    let now = now_ms();
    store.create_sale(&sale("demo", 100, 1, now - 60_000, now + 3_600_000), now).await.unwrap();
    // The sized seed sale of `cargo xtask dev`: EU 40–44, two per customer.
    let mut sizes = sale("sizes", 1, 1, now - 60_000, now + 3_600_000);
    let size = |id: &str, label: &str, stock| flash_sale::sale::Variant {
        variant_id: id.into(),
        label: label.into(),
        sku: None,
        stock,
        shards: 1,
    };
    sizes.set_variants(vec![
        size("eu40", "EU 40", 8),
        size("eu41", "EU 41", 15),
        size("eu42", "EU 42", 25),
        size("eu43", "EU 43", 12),
        size("eu44", "EU 44", 3),
    ]);
    sizes.max_per_customer = 2;
    store.create_sale(&sizes, now).await.unwrap();
    let body_app = TestApp::on(&store);
    let jwt_app = TestApp::on(&store).auth(AuthMode::Jwt);
    use flash_sale::http::{
        orders_function as orders, purchase_function as purchase, status_function as status,
        user_lookup_function as user_lookup,
    };

    let cases: Vec<(&str, u16, Option<&str>)> = vec![
        ("purchase.json", 201, None),
        ("purchase.json", 409, Some("already_purchased")),
        ("purchase-bad-body.json", 400, Some("invalid_request")),
        ("sale-status.json", 200, None),
        ("list-sales.json", 200, None),
        ("health.json", 200, None),
        ("user-lookup.json", 200, None),
        // `demo` has no holds: alice's order is confirmed at once and cannot be cancelled.
        ("cancel.json", 409, Some("order_confirmed")),
        ("confirm.json", 404, Some("order_not_found")),
        // Two of EU 42, then the same again: alice holds her two.
        ("purchase-size.json", 201, None),
        ("purchase-size.json", 409, Some("limit_reached")),
        ("user-orders.json", 200, None),
        // An order id no purchase made.
        ("cancel-order.json", 404, Some("purchase_not_found")),
    ];
    for (name, expected, code) in cases {
        let req = event(name);
        let resp = match name {
            n if n.starts_with("purchase") => purchase(&body_app, req).await,
            "user-lookup.json" | "cancel.json" | "user-orders.json" | "cancel-order.json" => {
                user_lookup(&body_app, req).await
            }
            "confirm.json" => orders(&body_app, req).await,
            _ => status(&body_app, req).await,
        };
        let (got, body) = read(&resp);
        assert_eq!((got, body["code"].as_str()), (expected, code), "{name}: {body}");
        match (name, got) {
            ("purchase-size.json", 201) => {
                assert_eq!((body["variantId"].as_str(), body["quantity"].as_u64()), (Some("eu42"), Some(2)))
            }
            ("user-orders.json", _) => {
                assert_eq!((body["held"].as_i64(), body["orders"].as_array().map(Vec::len)), (Some(2), Some(1)))
            }
            _ => {}
        }
    }
    let (got, body) = read(&purchase(&jwt_app, event("purchase-jwt.json")).await);
    assert_eq!((got, body["userId"].as_str()), (201, Some("jwt-user-1")));
    let (got, body) = read(&purchase(&jwt_app, event("purchase.json")).await);
    assert_eq!((got, body["code"].as_str()), (401, Some("unauthorized")), "no authorizer claims in JWT mode");

    // The sweeper's schedule event: its content is ignored, a sweep runs.
    let schedule: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/sweep.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(schedule["detail-type"], "Scheduled Event");
    let swept = body_app.sweep(10, std::time::Duration::from_secs(10)).await.unwrap();
    assert!(!swept.stopped_early, "{swept:?}");
}
