//! Hostile and malformed requests: every one gets a 4xx problem+json with the documented code,
//! never a 5xx, and nothing stored changes.

use flash_sale::App;
use flash_sale::http::{ApiRequest, ApiResponse};
use flash_sale_testkit::{TestApp, TestBody, active_sale, fresh_store, read, request, stored_state, user_body};
use serde_json::json;

#[derive(Clone, Copy)]
enum Handler {
    Purchase,
    Status,
    Lookup,
}

struct Case {
    name: &'static str,
    handler: Handler,
    request: ApiRequest,
    status: u16,
    code: &'static str,
}

async fn call(app: &App, handler: Handler, req: ApiRequest) -> ApiResponse {
    match handler {
        Handler::Purchase => flash_sale::http::purchase_function(app, req).await,
        Handler::Status => flash_sale::http::status_function(app, req).await,
        Handler::Lookup => flash_sale::http::user_lookup_function(app, req).await,
    }
}

fn post(sale: &str, body: TestBody<'_>) -> ApiRequest {
    request("POST", &format!("/sales/{sale}/purchases"), &[("saleId", sale)], body, None)
}

fn cases(sale: &str) -> Vec<Case> {
    let long_user = "u".repeat(256);
    let big = format!(r#"{{"userId":"alice","pad":"{}"}}"#, "x".repeat(16 * 1024));
    let deep = format!(r#"{{"userId":{}"a"{}}}"#, "[".repeat(5_000), "]".repeat(5_000));
    let huge_body = "x".repeat(1 << 20);
    let sale_path = |id: &str| request("GET", &format!("/sales/{id}"), &[("saleId", id)], TestBody::None, None);
    let lookup = |id: &str, user: &str| {
        request(
            "GET",
            &format!("/sales/{id}/purchases/{user}"),
            &[("saleId", id), ("userId", user)],
            TestBody::None,
            None,
        )
    };
    let bad = |name, body: &str| Case {
        name,
        handler: Handler::Purchase,
        request: post(sale, TestBody::Text(body)),
        status: 400,
        code: "invalid_request",
    };
    let mut cases = vec![
        bad("truncated JSON", "{"),
        bad("missing value", r#"{"userId": }"#),
        bad("array body", r#"["alice"]"#),
        bad("string body", r#""alice""#),
        bad("number body", "42"),
        bad("null body", "null"),
        bad("true body", "true"),
        bad("userId is a number", r#"{"userId": 42}"#),
        bad("userId is null", r#"{"userId": null}"#),
        bad("userId is an array", r#"{"userId": ["alice"]}"#),
        bad("userId is an object", r#"{"userId": {"id": "alice"}}"#),
        bad("userId is a bool", r#"{"userId": true}"#),
        bad("missing userId", "{}"),
        bad("empty userId", r#"{"userId": ""}"#),
        bad("256-character userId", &user_body(&long_user)),
        bad("NUL in userId", r#"{"userId": "al\u0000ice"}"#),
        bad("newline in userId", r#"{"userId": "al\nice"}"#),
        bad("DEL in userId", "{\"userId\": \"al\u{7f}ice\"}"),
        bad("leading space", r#"{"userId": " alice"}"#),
        bad("trailing space", r#"{"userId": "alice "}"#),
        bad("unknown field", r#"{"userId": "alice", "size": 2}"#),
        bad("wrong case field", r#"{"userid": "alice"}"#),
        bad("duplicate userId", r#"{"userId": "alice", "userId": "bob"}"#),
        bad("deeply nested", &deep),
        bad("huge number", r#"{"userId": 1e999999}"#),
        bad("trailing garbage", r#"{"userId": "alice"} x"#),
        bad("byte order mark", "\u{feff}{\"userId\": \"alice\"}"),
        bad("single quotes", "{'userId': 'alice'}"),
        Case {
            name: "empty body",
            handler: Handler::Purchase,
            request: post(sale, TestBody::None),
            status: 400,
            code: "invalid_request",
        },
        Case {
            name: "invalid UTF-8",
            handler: Handler::Purchase,
            request: post(sale, TestBody::Bytes(b"{\"userId\": \"\xff\xfe\"}")),
            status: 400,
            code: "invalid_request",
        },
        Case {
            name: "body one byte over 16 KiB",
            handler: Handler::Purchase,
            request: post(sale, TestBody::Text(&big)),
            status: 413,
            code: "payload_too_large",
        },
        Case {
            name: "1 MiB body",
            handler: Handler::Purchase,
            request: post(sale, TestBody::Text(&huge_body)),
            status: 413,
            code: "payload_too_large",
        },
        Case {
            name: "saleId with #",
            handler: Handler::Purchase,
            request: post("a#b", TestBody::Text(r#"{"userId":"alice"}"#)),
            status: 400,
            code: "invalid_request",
        },
        Case {
            name: "65-character saleId",
            handler: Handler::Purchase,
            request: post(&"s".repeat(65), TestBody::Text(r#"{"userId":"alice"}"#)),
            status: 400,
            code: "invalid_request",
        },
        Case {
            name: "path trick in saleId",
            handler: Handler::Purchase,
            request: post("../admin", TestBody::Text(r#"{"userId":"alice"}"#)),
            status: 400,
            code: "invalid_request",
        },
        Case {
            name: "empty saleId",
            handler: Handler::Purchase,
            request: post("", TestBody::Text(r#"{"userId":"alice"}"#)),
            status: 400,
            code: "invalid_request",
        },
        Case {
            name: "unicode look-alike saleId",
            handler: Handler::Purchase,
            request: post("dеmo", TestBody::Text(r#"{"userId":"alice"}"#)),
            status: 400,
            code: "invalid_request",
        },
        Case {
            name: "GET on purchases",
            handler: Handler::Purchase,
            request: request("GET", &format!("/sales/{sale}/purchases"), &[("saleId", sale)], TestBody::None, None),
            status: 405,
            code: "method_not_allowed",
        },
        Case {
            name: "PUT on purchases",
            handler: Handler::Purchase,
            request: request(
                "PUT",
                &format!("/sales/{sale}/purchases"),
                &[("saleId", sale)],
                TestBody::Text(r#"{"userId":"alice"}"#),
                None,
            ),
            status: 405,
            code: "method_not_allowed",
        },
        Case {
            name: "DELETE on purchases",
            handler: Handler::Purchase,
            request: request("DELETE", &format!("/sales/{sale}/purchases"), &[("saleId", sale)], TestBody::None, None),
            status: 405,
            code: "method_not_allowed",
        },
        Case {
            name: "POST on a sale",
            handler: Handler::Status,
            request: request("POST", &format!("/sales/{sale}"), &[("saleId", sale)], TestBody::Text("{}"), None),
            status: 405,
            code: "method_not_allowed",
        },
        Case {
            name: "DELETE on sales",
            handler: Handler::Status,
            request: request("DELETE", "/sales", &[], TestBody::None, None),
            status: 405,
            code: "method_not_allowed",
        },
        Case {
            name: "POST on health",
            handler: Handler::Status,
            request: request("POST", "/health", &[], TestBody::None, None),
            status: 405,
            code: "method_not_allowed",
        },
        Case {
            name: "status with bad saleId",
            handler: Handler::Status,
            request: sale_path("bad%20id"),
            status: 400,
            code: "invalid_request",
        },
        Case {
            name: "status of unknown sale",
            handler: Handler::Status,
            request: sale_path("no-such-sale"),
            status: 404,
            code: "sale_not_found",
        },
        Case {
            name: "lookup with 256-character userId",
            handler: Handler::Lookup,
            request: lookup(sale, &long_user),
            status: 400,
            code: "invalid_request",
        },
        Case {
            name: "lookup with bad saleId",
            handler: Handler::Lookup,
            request: lookup("x#y", "alice"),
            status: 400,
            code: "invalid_request",
        },
        Case {
            name: "lookup with control char",
            handler: Handler::Lookup,
            request: lookup(sale, "a\u{1b}b"),
            status: 400,
            code: "invalid_request",
        },
        Case {
            name: "PUT on a purchase",
            handler: Handler::Lookup,
            request: request(
                "PUT",
                "/sales/x/purchases/alice",
                &[("saleId", sale), ("userId", "alice")],
                TestBody::None,
                None,
            ),
            status: 405,
            code: "method_not_allowed",
        },
        Case {
            name: "cancel of no order",
            handler: Handler::Lookup,
            request: request(
                "DELETE",
                "/sales/x/purchases/nobody",
                &[("saleId", sale), ("userId", "nobody")],
                TestBody::None,
                None,
            ),
            status: 404,
            code: "purchase_not_found",
        },
        Case {
            name: "purchase in unknown sale",
            handler: Handler::Purchase,
            request: post("no-such-sale", TestBody::Text(r#"{"userId":"alice"}"#)),
            status: 404,
            code: "sale_not_found",
        },
    ];
    cases.push(Case {
        name: "existing buyer again",
        handler: Handler::Purchase,
        request: post(sale, TestBody::Text(r#"{"userId":"existing"}"#)),
        status: 409,
        code: "already_purchased",
    });
    cases
}

#[tokio::test]
async fn malformed_requests_get_documented_4xx_and_change_nothing() {
    let store = fresh_store().await;
    let sale = active_sale(&store, 10, 2).await;
    let app = TestApp::on(&store);
    let seeded = flash_sale::http::purchase_function(
        &app,
        flash_sale_testkit::purchase_request(sale.id.as_str(), &user_body("existing")),
    )
    .await;
    assert_eq!(seeded.status_code, 201);
    let before = stored_state(&store, &sale).await;

    let cases = cases(sale.id.as_str());
    assert!(cases.len() >= 30, "at least 30 malformed requests");
    let mut failures = Vec::new();
    for case in cases {
        let resp = call(&app, case.handler, case.request).await;
        let status = resp.status_code;
        let body: serde_json::Value = serde_json::from_str(&resp.body).unwrap_or(json!(null));
        let content_type = resp.header("content-type").unwrap_or_default().to_owned();
        if (status, body["code"].as_str()) != (case.status, Some(case.code))
            || content_type != "application/problem+json"
        {
            failures.push(format!("{}: got {status} {content_type} {body}", case.name));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(stored_state(&store, &sale).await, before, "stored state unchanged");
}

#[tokio::test]
async fn a_wrong_method_names_the_allowed_one() {
    let store = fresh_store().await;
    let app = TestApp::on(&store);
    let resp = flash_sale::http::purchase_function(
        &app,
        request("GET", "/sales/s/purchases", &[("saleId", "s")], TestBody::None, None),
    )
    .await;
    assert_eq!(resp.header("allow").unwrap_or_default(), "POST");
    assert_eq!(read(&resp).0, 405);
}
