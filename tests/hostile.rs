//! Generated hostile input: thousands of requests with arbitrary methods, bodies, sale ids and
//! user ids. None may panic, none may get a 5xx, every error is a documented problem code, and
//! nothing stored changes.

use std::sync::Arc;
use std::time::Duration;

use flash_sale::clock::ManualClock;
use flash_sale::config::AuthMode;
use flash_sale::config::Tuning;
use integration_tests::{TestBody, fresh_store, now_ms, request, sale, stored_state, tuning, unique};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

const DOCUMENTED: &[&str] = &[
    "invalid_request",
    "payload_too_large",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "sale_not_found",
    "purchase_not_found",
    "sale_not_started",
    "sale_ended",
    "sold_out",
    "already_purchased",
];

#[derive(Debug, Clone)]
enum Target {
    Purchase,
    Status,
    Lookup,
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let json_user = prop_oneof![
        any::<String>().prop_map(|s| serde_json::json!({ "userId": s }).to_string()),
        any::<i64>().prop_map(|n| format!(r#"{{"userId": {n}}}"#)),
        any::<f64>().prop_map(|n| format!(r#"{{"userId": {n:e}}}"#)),
        (1usize..200).prop_map(|d| format!(r#"{{"userId": {}"x"{}}}"#, "[".repeat(d), "]".repeat(d))),
        "[{}\\[\\]\":,a-z0-9 \\\\]{0,64}".prop_map(|s| s.to_string()),
    ];
    prop_oneof![
        3 => json_user.prop_map(String::into_bytes),
        2 => proptest::collection::vec(any::<u8>(), 0..256),
        1 => (16_000usize..17_000).prop_map(|n| vec![b' '; n]),
    ]
}

fn target() -> impl Strategy<Value = (Target, String, String, String)> {
    let method = prop_oneof![
        Just("POST"),
        Just("GET"),
        Just("PUT"),
        Just("DELETE"),
        Just("PATCH"),
        Just("HEAD"),
        Just("OPTIONS")
    ];
    let target = prop_oneof![Just(Target::Purchase), Just(Target::Status), Just(Target::Lookup)];
    let id = prop_oneof![Just("hostile".to_owned()), any::<String>(), "[A-Za-z0-9_#/.%-]{0,70}"];
    let user = prop_oneof![any::<String>(), "[ -~]{0,140}"];
    (target, method.prop_map(str::to_owned), id, user)
}

#[test]
fn thousands_of_generated_requests_get_only_documented_4xx() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let store = rt.block_on(fresh_store());
    let start = now_ms() + 3_600_000;
    let s = sale("hostile", 10, 2, start, start + 3_600_000);
    rt.block_on(store.create_sale(&s, now_ms())).unwrap();
    // Before the start: valid purchases are refused from the cached configuration, so the run
    // exercises parsing and validation, not thousands of transactions.
    let clock = ManualClock::at(start - 1);
    let tuning = Tuning { sale_cache: Duration::from_secs(600), ..tuning() };
    let app = integration_tests::app_with(&store, Arc::new(clock), AuthMode::Body, tuning);
    let before = rt.block_on(stored_state(&store, &s));

    let mut runner = TestRunner::new(Config { cases: 3_000, failure_persistence: None, ..Config::default() });
    runner
        .run(&(target(), body()), |((target, method, id, user), body)| {
            let path = format!("/sales/{}/purchases", unique("p"));
            let params: Vec<(&str, &str)> = match target {
                Target::Lookup => vec![("saleId", id.as_str()), ("userId", user.as_str())],
                _ => vec![("saleId", id.as_str())],
            };
            let req = request(&method, &path, &params, TestBody::Bytes(&body), None);
            let resp = rt.block_on(async {
                match target {
                    Target::Purchase => flash_sale::http::purchase_function(&app, req).await,
                    Target::Status => flash_sale::http::status_function(&app, req).await,
                    Target::Lookup => flash_sale::http::user_lookup_function(&app, req).await,
                }
            });
            let status = resp.status_code;
            prop_assert!(status < 500, "{status} for {method} {target:?} {id:?}");
            let parsed: Value = serde_json::from_str(&resp.body).map_err(|e| TestCaseError::fail(e.to_string()))?;
            if status >= 400 {
                let code = parsed["code"].as_str().unwrap_or_default();
                prop_assert!(DOCUMENTED.contains(&code), "undocumented code {code:?}");
                prop_assert_eq!(resp.header("content-type").unwrap_or_default(), "application/problem+json");
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(rt.block_on(stored_state(&store, &s)), before, "stored state unchanged");
}
