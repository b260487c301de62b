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
    ];
    for (name, expected, code) in cases {
        let req = event(name);
        let resp = match name {
            n if n.starts_with("purchase") => purchase(&body_app, req).await,
            "user-lookup.json" | "cancel.json" => user_lookup(&body_app, req).await,
            "confirm.json" => orders(&body_app, req).await,
            _ => status(&body_app, req).await,
        };
        let (got, body) = read(&resp);
        assert_eq!((got, body["code"].as_str()), (expected, code), "{name}: {body}");
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
