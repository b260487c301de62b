//! The API contract: real handler answers for every documented status of every route (and the
//! 405 every path shares) validate against `docs/openapi.yaml`, with the `jsonschema` package
//! (JSON Schema 2020-12, OpenAPI 3.1's dialect) run by `tests/openapi_check.py`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use flash_sale::App;
use flash_sale::clock::{ManualClock, SystemClock};
use flash_sale::config::AuthMode;
use flash_sale::http::{ApiRequest, ApiResponse};
use flash_sale::store::Store;
use integration_tests::{
    TestBody, active_sale, admission_keys, app, fresh_store, now_ms, purchase_request, request, room_app, room_sale,
    sale, unique, user_body, wall_app,
};
use serde_json::{Value, json};

struct Samples(Vec<Value>);

impl Samples {
    fn add(&mut self, method: &str, route: &str, resp: &ApiResponse) {
        self.0.push(json!({
            "method": method,
            "route": route,
            "status": resp.status_code,
            "headers": resp.headers,
            "body": resp.body,
        }));
    }
}

/// The Python of the tools' virtualenv (beside `cfn-lint`, which brings `jsonschema` and PyYAML).
fn python() -> PathBuf {
    let cfn_lint = std::env::var("CFN_LINT").expect("CFN_LINT is not set: run the tests with `cargo xtask test`");
    PathBuf::from(cfn_lint).with_file_name("python")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn get(path: &str, params: &[(&str, &str)]) -> ApiRequest {
    request("GET", path, params, TestBody::None, None)
}

fn lookup_request(sale: &str, user: &str, claims: Option<Value>) -> ApiRequest {
    let path = format!("/sales/{sale}/purchases/{user}");
    request("GET", &path, &[("saleId", sale), ("userId", user)], TestBody::None, claims)
}

fn join_request(sale: &str, body: &str, claims: Option<Value>) -> ApiRequest {
    request("POST", &format!("/sales/{sale}/queue"), &[("saleId", sale)], TestBody::Text(body), claims)
}

fn position_request(sale: &str, user: &str, claims: Option<Value>) -> ApiRequest {
    let path = format!("/sales/{sale}/queue/{user}");
    request("GET", &path, &[("saleId", sale), ("userId", user)], TestBody::None, claims)
}

// Boxed: the handlers' futures stay off the test's (already large) future.
async fn queue(app: &App, req: ApiRequest) -> ApiResponse {
    Box::pin(flash_sale::http::queue_function(app, req)).await
}

async fn buy_in(app: &App, sale: &str, body: String) -> ApiResponse {
    Box::pin(flash_sale::http::purchase_function(app, purchase_request(sale, &body))).await
}

const HOUR: i64 = 3_600_000;
const JOIN: &str = "/sales/{saleId}/queue";
const POSITION: &str = "/sales/{saleId}/queue/{userId}";
const LOOKUP: &str = "/sales/{saleId}/purchases/{userId}";
const CONFIRM: &str = "/sales/{saleId}/orders/{orderId}/confirm";

fn cancel_request(sale: &str, user: &str, claims: Option<Value>) -> ApiRequest {
    let path = format!("/sales/{sale}/purchases/{user}");
    request("DELETE", &path, &[("saleId", sale), ("userId", user)], TestBody::None, claims)
}

fn confirm_request(method: &str, sale: &str, order: &str, body: TestBody<'_>) -> ApiRequest {
    let path = format!("/sales/{sale}/orders/{order}/confirm");
    request(method, &path, &[("saleId", sale), ("orderId", order)], body, None)
}

async fn lookup(app: &App, req: ApiRequest) -> ApiResponse {
    Box::pin(flash_sale::http::user_lookup_function(app, req)).await
}

async fn orders(app: &App, req: ApiRequest) -> ApiResponse {
    Box::pin(flash_sale::http::orders_function(app, req)).await
}

/// A sale with holds of `hold_seconds`, started a minute before `now`.
async fn held_sale(store: &Store, now: i64, hold_seconds: i64) -> flash_sale::sale::Sale {
    let mut s = sale(&unique("hold"), 5, 1, now - 60_000, now + HOUR);
    s.hold_seconds = hold_seconds;
    store.create_sale(&s, now).await.expect("create a sale with holds");
    s
}

fn json_of(resp: &ApiResponse) -> Value {
    serde_json::from_str(&resp.body).expect("a JSON body")
}

/// The parsed body of a recorded sample.
fn json_of_body(sample: &Value) -> Value {
    serde_json::from_str(sample["body"].as_str().expect("a body")).expect("a JSON body")
}

#[tokio::test]
async fn every_documented_answer_matches_the_openapi_document() {
    let store = fresh_store().await;
    let body_app = wall_app(&store, AuthMode::Body);
    let jwt_app = wall_app(&store, AuthMode::Jwt);
    let missing: App =
        app(&Store::new(store.client().clone(), unique("missing")), Arc::new(SystemClock), AuthMode::Body);
    let open = active_sale(&store, 1, 1).await;
    let id = open.id.as_str();
    let now = now_ms();
    let upcoming = sale(&unique("up"), 5, 1, now + 3_600_000, now + 7_200_000);
    store.create_sale(&upcoming, now).await.unwrap();
    let ended = sale(&unique("end"), 5, 1, now - 7_200_000, now - 3_600_000);
    store.create_sale(&ended, now - 7_200_000).await.unwrap();
    let mut s = Samples(Vec::new());

    // GET /health
    s.add("GET", "/health", &flash_sale::http::status_function(&body_app, get("/health", &[])).await);
    s.add("GET", "/health", &flash_sale::http::status_function(&missing, get("/health", &[])).await);
    // GET /sales
    s.add("GET", "/sales", &flash_sale::http::status_function(&body_app, get("/sales", &[])).await);
    s.add("GET", "/sales", &flash_sale::http::status_function(&missing, get("/sales", &[])).await);
    // GET /sales/{saleId}
    let route = "/sales/{saleId}";
    s.add(
        "GET",
        route,
        &flash_sale::http::status_function(&body_app, get(&format!("/sales/{id}"), &[("saleId", id)])).await,
    );
    s.add("GET", route, &flash_sale::http::status_function(&body_app, get("/sales/a b", &[("saleId", "a b")])).await);
    s.add("GET", route, &flash_sale::http::status_function(&body_app, get("/sales/nope", &[("saleId", "nope")])).await);
    s.add("GET", route, &flash_sale::http::status_function(&missing, get("/sales/nope", &[("saleId", "nope")])).await);
    // POST /sales/{saleId}/purchases
    let route = "/sales/{saleId}/purchases";
    let buy = |app: &'static App, sale: &str, body: String| {
        let req = purchase_request(sale, &body);
        async move { flash_sale::http::purchase_function(app, req).await }
    };
    let body_app: &'static App = Box::leak(Box::new(body_app));
    let jwt_app: &'static App = Box::leak(Box::new(jwt_app));
    let missing: &'static App = Box::leak(Box::new(missing));
    s.add("POST", route, &buy(body_app, id, user_body("alice")).await);
    s.add("POST", route, &buy(body_app, id, user_body("alice")).await);
    s.add("POST", route, &buy(body_app, id, user_body("bob")).await);
    s.add("POST", route, &buy(body_app, id, "[1]".into()).await);
    s.add("POST", route, &buy(jwt_app, id, user_body("carol")).await);
    s.add("POST", route, &buy(body_app, upcoming.id.as_str(), user_body("dan")).await);
    s.add("POST", route, &buy(body_app, ended.id.as_str(), user_body("dan")).await);
    let forbidden = request(
        "POST",
        "/sales/x/purchases",
        &[("saleId", id)],
        TestBody::Text(&user_body("eve")),
        Some(json!({"sub": "mallory"})),
    );
    s.add("POST", route, &flash_sale::http::purchase_function(jwt_app, forbidden).await);
    s.add("POST", route, &buy(body_app, "nope", user_body("dan")).await);
    s.add("POST", route, &buy(body_app, id, format!(r#"{{"userId":"x","pad":"{}"}}"#, "x".repeat(17_000))).await);
    s.add("POST", route, &buy(missing, id, user_body("dan")).await);
    // GET /sales/{saleId}/purchases/{userId}
    let route = "/sales/{saleId}/purchases/{userId}";
    s.add("GET", route, &flash_sale::http::user_lookup_function(body_app, lookup_request(id, "alice", None)).await);
    s.add("GET", route, &flash_sale::http::user_lookup_function(body_app, lookup_request(id, " x", None)).await);
    s.add("GET", route, &flash_sale::http::user_lookup_function(jwt_app, lookup_request(id, "alice", None)).await);
    let other = lookup_request(id, "alice", Some(json!({"sub": "mallory"})));
    s.add("GET", route, &flash_sale::http::user_lookup_function(jwt_app, other).await);
    s.add("GET", route, &flash_sale::http::user_lookup_function(body_app, lookup_request(id, "nobody", None)).await);
    s.add("GET", route, &flash_sale::http::user_lookup_function(missing, lookup_request(id, "alice", None)).await);
    // 405 on every path.
    s.add(
        "DELETE",
        "/sales/{saleId}",
        &flash_sale::http::status_function(
            body_app,
            request("DELETE", &format!("/sales/{id}"), &[("saleId", id)], TestBody::None, None),
        )
        .await,
    );
    s.add(
        "GET",
        "/sales/{saleId}/purchases",
        &flash_sale::http::purchase_function(body_app, get(&format!("/sales/{id}/purchases"), &[("saleId", id)])).await,
    );

    // The waiting room, on a manual clock: a room that opens in an hour (its pre-queue is open)
    // and one that opens in five (its pre-queue is not).
    let start = now_ms() + HOUR;
    let (room, _) = room_sale(&store, 5, 1, start, start + HOUR).await;
    let (later, _) = room_sale(&store, 5, 1, start + 4 * HOUR, start + 5 * HOUR).await;
    let clock = ManualClock::at(start - 10 * 60_000);
    let room_body = room_app(&store, Arc::new(clock.clone()), AuthMode::Body);
    let room_jwt = room_app(&store, Arc::new(clock.clone()), AuthMode::Jwt);
    let room_missing =
        room_app(&Store::new(store.client().clone(), unique("missing")), Arc::new(clock.clone()), AuthMode::Body);
    let (rid, plain) = (room.id.as_str(), id);
    // POST /sales/{saleId}/queue and GET /sales/{saleId}/queue/{userId}, before opening.
    s.add("POST", JOIN, &queue(&room_body, join_request(rid, &user_body("alice"), None)).await);
    s.add("GET", POSITION, &queue(&room_body, position_request(rid, "alice", None)).await);
    s.add("POST", JOIN, &queue(&room_body, join_request(rid, "[1]", None)).await);
    s.add("POST", JOIN, &queue(&room_body, join_request(rid, r#"{"userId":"x","admissionToken":"t"}"#, None)).await);
    s.add("POST", JOIN, &queue(&room_jwt, join_request(rid, &user_body("carol"), None)).await);
    let claims = Some(json!({"sub": "mallory"}));
    s.add("POST", JOIN, &queue(&room_jwt, join_request(rid, &user_body("eve"), claims.clone())).await);
    s.add("POST", JOIN, &queue(&room_body, join_request(later.id.as_str(), &user_body("eager"), None)).await);
    s.add("POST", JOIN, &queue(&room_body, join_request("nope", &user_body("dan"), None)).await);
    s.add("POST", JOIN, &queue(&room_body, join_request(plain, &user_body("dan"), None)).await);
    let huge = format!(r#"{{"userId":"x","pad":"{}"}}"#, "x".repeat(17_000));
    s.add("POST", JOIN, &queue(&room_body, join_request(rid, &huge, None)).await);
    s.add("POST", JOIN, &queue(&room_missing, join_request(rid, &user_body("dan"), None)).await);
    s.add("GET", POSITION, &queue(&room_body, position_request(rid, " x", None)).await);
    s.add("GET", POSITION, &queue(&room_jwt, position_request(rid, "alice", None)).await);
    s.add("GET", POSITION, &queue(&room_jwt, position_request(rid, "alice", claims.clone())).await);
    s.add("GET", POSITION, &queue(&room_body, position_request("nope", "alice", None)).await);
    s.add("GET", POSITION, &queue(&room_body, position_request(plain, "alice", None)).await);
    s.add("GET", POSITION, &queue(&room_body, position_request(rid, "nobody", None)).await);
    s.add("GET", POSITION, &queue(&room_missing, position_request(rid, "alice", None)).await);
    s.add(
        "GET",
        JOIN,
        &queue(&room_body, request("GET", &format!("/sales/{rid}/queue"), &[("saleId", rid)], TestBody::None, None))
            .await,
    );
    s.add(
        "DELETE",
        POSITION,
        &queue(
            &room_body,
            request(
                "DELETE",
                &format!("/sales/{rid}/queue/alice"),
                &[("saleId", rid), ("userId", "alice")],
                TestBody::None,
                None,
            ),
        )
        .await,
    );
    // At opening: the sale shows its room with the revealed seed, the draw places alice, and a
    // second later she is admitted with a token.
    clock.set(start + flash_sale::room::DRAW_GRACE_MS);
    let room_view = get(&format!("/sales/{rid}"), &[("saleId", rid)]);
    s.add("GET", "/sales/{saleId}", &flash_sale::http::status_function(&room_body, room_view).await);
    s.add("GET", POSITION, &queue(&room_body, position_request(rid, "alice", None)).await);
    clock.advance(2_000);
    let admitted = queue(&room_body, position_request(rid, "alice", None)).await;
    s.add("GET", POSITION, &admitted);
    let admitted: Value = serde_json::from_str(&admitted.body).unwrap();
    let token = admitted["admissionToken"].as_str().expect("alice is admitted with a token").to_owned();
    s.add("POST", JOIN, &queue(&room_body, join_request(rid, &user_body("late"), None)).await);
    s.add("GET", "/sales", &flash_sale::http::status_function(&room_body, get("/sales", &[])).await);
    // POST /sales/{saleId}/purchases on the room sale: the admission refusals, then a purchase.
    let alice = flash_sale::ids::UserId::parse("alice").unwrap();
    let far = admission_keys().sign(&room.id, &alice, 1_000, start + HOUR);
    let with_token = |t: &str| json!({"userId": "alice", "admissionToken": t}).to_string();
    let route = "/sales/{saleId}/purchases";
    s.add("POST", route, &buy_in(&room_body, rid, user_body("alice")).await);
    s.add("POST", route, &buy_in(&room_body, rid, with_token("forged.token")).await);
    s.add("POST", route, &buy_in(&room_body, rid, with_token(&far)).await);
    s.add("POST", route, &buy_in(&room_body, rid, with_token(&token)).await);
    let codes: Vec<Value> = s.0[s.0.len() - 4..]
        .iter()
        .map(|x| serde_json::from_str::<Value>(x["body"].as_str().unwrap()).unwrap()["code"].clone())
        .collect();
    assert_eq!(
        codes,
        [json!("admission_required"), json!("admission_invalid"), json!("not_yet_admitted"), Value::Null]
    );

    // Orders with holds (boxed: the test's future stays small).
    Box::pin(order_samples(&mut s, &store, missing)).await;

    // 500s: unreadable stored items, each in a table of its own.
    let corrupt = fresh_store().await;
    let c = active_sale(&corrupt, 5, 1).await;
    let cid = c.id.as_str();
    let capp: &'static App = Box::leak(Box::new(wall_app(&corrupt, AuthMode::Body)));
    assert_eq!(buy(capp, cid, user_body("alice")).await.status_code, 201);
    integration_tests::spoil(
        &corrupt,
        &flash_sale::keys::purchase_pk(cid, "alice"),
        flash_sale::keys::PURCHASE_SK,
        "purchasedAt",
    )
    .await;
    s.add(
        "GET",
        "/sales/{saleId}/purchases/{userId}",
        &flash_sale::http::user_lookup_function(capp, lookup_request(cid, "alice", None)).await,
    );
    s.add("DELETE", LOOKUP, &lookup(capp, cancel_request(cid, "alice", None)).await);
    Box::pin(corrupt_order_sample(&mut s, &corrupt, capp)).await;
    integration_tests::spoil(&corrupt, &flash_sale::keys::shard_pk(cid, 0), flash_sale::keys::SHARD_SK, "remaining")
        .await;
    s.add("POST", "/sales/{saleId}/purchases", &buy(capp, cid, user_body("bob")).await);
    s.add(
        "GET",
        "/sales/{saleId}",
        &flash_sale::http::status_function(capp, get(&format!("/sales/{cid}"), &[("saleId", cid)])).await,
    );
    s.add("GET", "/sales", &flash_sale::http::status_function(capp, get("/sales", &[])).await);
    // An unreadable room state: joining and polling answer 500.
    let (croom, _) = room_sale(&corrupt, 5, 1, start, start + HOUR).await;
    let crid = croom.id.as_str();
    let cqueue = room_app(&corrupt, Arc::new(clock.clone()), AuthMode::Body);
    assert_eq!(queue(&cqueue, join_request(crid, &user_body("alice"), None)).await.status_code, 200);
    integration_tests::spoil(&corrupt, &flash_sale::keys::sale_pk(crid), flash_sale::keys::ROOM_SK, "admittedThrough")
        .await;
    clock.advance(2_000);
    s.add("POST", JOIN, &queue(&cqueue, join_request(crid, &user_body("bob"), None)).await);
    s.add("GET", POSITION, &queue(&cqueue, position_request(crid, "alice", None)).await);

    let file = std::env::temp_dir().join(format!("{}.json", unique("openapi-samples")));
    std::fs::write(&file, serde_json::to_string(&s.0).unwrap()).unwrap();
    let out = Command::new(python())
        .arg(root().join("tests/openapi_check.py"))
        .arg(root().join("docs/openapi.yaml"))
        .arg(&file)
        .output()
        .expect("run tests/openapi_check.py");
    let _ = std::fs::remove_file(&file);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}{}", String::from_utf8_lossy(&out.stderr));
    assert!(report.contains(&format!("{} responses checked, 0 failures", s.0.len())), "{report}");
}

/// Orders with holds, on a manual clock: reservations, the payment backend's confirmations, a
/// buyer's cancellations, and a hold that ends before it is paid.
async fn order_samples(s: &mut Samples, store: &Store, missing: &'static App) {
    let t0 = now_ms();
    let held = held_sale(store, t0, 600).await;
    let hid = held.id.as_str();
    let hold_clock = ManualClock::at(t0);
    let hold_body = app(store, Arc::new(hold_clock.clone()), AuthMode::Body);
    let hold_jwt = app(store, Arc::new(hold_clock.clone()), AuthMode::Jwt);
    let mut order_of = std::collections::BTreeMap::new();
    for user in ["ana", "bea", "cy"] {
        let bought = buy_in(&hold_body, hid, user_body(user)).await;
        let order = json_of(&bought);
        assert_eq!((bought.status_code, &order["status"]), (201, &json!("reserved")), "{order}");
        assert!(order["holdExpiresAt"].is_string(), "{order}");
        s.add("POST", "/sales/{saleId}/purchases", &bought);
        order_of.insert(user, order["orderId"].as_str().unwrap().to_owned());
    }
    s.add("GET", LOOKUP, &lookup(&hold_body, lookup_request(hid, "ana", None)).await);
    s.add(
        "GET",
        "/sales/{saleId}",
        &flash_sale::http::status_function(&hold_body, get(&format!("/sales/{hid}"), &[("saleId", hid)])).await,
    );
    // POST /sales/{saleId}/orders/{orderId}/confirm: ana's order paid (and confirmed again).
    let none = TestBody::None;
    s.add("POST", CONFIRM, &orders(&hold_body, confirm_request("POST", hid, &order_of["ana"], none)).await);
    let again = confirm_request("POST", hid, &order_of["ana"], TestBody::Text("{}"));
    s.add("POST", CONFIRM, &orders(&hold_body, again).await);
    // DELETE /sales/{saleId}/purchases/{userId}: ana's confirmed order stays; bea cancels (twice).
    s.add("DELETE", LOOKUP, &lookup(&hold_body, cancel_request(hid, "ana", None)).await);
    let cancelled = lookup(&hold_body, cancel_request(hid, "bea", None)).await;
    assert_eq!(json_of(&cancelled)["status"], "cancelled", "{}", cancelled.body);
    s.add("DELETE", LOOKUP, &cancelled);
    s.add("DELETE", LOOKUP, &lookup(&hold_body, cancel_request(hid, "bea", None)).await);
    s.add("GET", LOOKUP, &lookup(&hold_body, lookup_request(hid, "bea", None)).await);
    s.add("DELETE", LOOKUP, &lookup(&hold_body, cancel_request(hid, "nobody", None)).await);
    s.add("DELETE", LOOKUP, &lookup(&hold_body, cancel_request("nope", "ana", None)).await);
    s.add("DELETE", LOOKUP, &lookup(&hold_body, cancel_request(hid, " x", None)).await);
    s.add("DELETE", LOOKUP, &lookup(&hold_jwt, cancel_request(hid, "cy", None)).await);
    s.add("DELETE", LOOKUP, &lookup(&hold_jwt, cancel_request(hid, "cy", Some(json!({"sub": "mallory"})))).await);
    s.add("DELETE", LOOKUP, &lookup(missing, cancel_request(hid, "cy", None)).await);
    let put = request(
        "PUT",
        &format!("/sales/{hid}/purchases/cy"),
        &[("saleId", hid), ("userId", "cy")],
        TestBody::None,
        None,
    );
    s.add("PUT", LOOKUP, &lookup(&hold_body, put).await);
    // The confirm route's refusals: bea's cancelled order, unknown orders and sales, bad ids and
    // bodies, a wrong method, a table that does not answer.
    s.add("POST", CONFIRM, &orders(&hold_body, confirm_request("POST", hid, &order_of["bea"], TestBody::None)).await);
    let long_ago = ulid::Ulid::from_parts(1_000, 7).to_string();
    s.add("POST", CONFIRM, &orders(&hold_body, confirm_request("POST", hid, &long_ago, TestBody::None)).await);
    s.add("POST", CONFIRM, &orders(&hold_body, confirm_request("POST", "nope", &long_ago, TestBody::None)).await);
    s.add("POST", CONFIRM, &orders(&hold_body, confirm_request("POST", hid, "not-an-order", TestBody::None)).await);
    let with_body = confirm_request("POST", hid, &order_of["cy"], TestBody::Text(r#"{"paid":true}"#));
    s.add("POST", CONFIRM, &orders(&hold_body, with_body).await);
    s.add("GET", CONFIRM, &orders(&hold_body, confirm_request("GET", hid, &order_of["cy"], TestBody::None)).await);
    s.add("POST", CONFIRM, &orders(missing, confirm_request("POST", hid, &order_of["cy"], TestBody::None)).await);
    // cy's hold ends unpaid: too late to confirm.
    hold_clock.advance(600_000);
    let late = orders(&hold_body, confirm_request("POST", hid, &order_of["cy"], TestBody::None)).await;
    assert_eq!(json_of(&late)["code"], "hold_expired", "{}", late.body);
    s.add("POST", CONFIRM, &late);
    s.add("GET", LOOKUP, &lookup(&hold_body, lookup_request(hid, "cy", None)).await);
    let order_codes: Vec<Value> =
        s.0.iter().filter(|x| x["route"] == CONFIRM).map(|x| json_of_body(x)["code"].clone()).collect();
    for code in [
        "order_cancelled",
        "order_not_found",
        "sale_not_found",
        "invalid_request",
        "method_not_allowed",
        "temporarily_unavailable",
        "hold_expired",
    ] {
        assert!(order_codes.contains(&json!(code)), "no confirm sample answered {code}: {order_codes:?}");
    }
}

/// A reserved order whose record no longer parses: the confirmation commits and cannot answer (500).
async fn corrupt_order_sample(s: &mut Samples, corrupt: &Store, capp: &'static App) {
    let cheld = held_sale(corrupt, now_ms(), 600).await;
    let chid = cheld.id.as_str();
    let reserved = json_of(&buy_in(capp, chid, user_body("ana")).await);
    let corder = reserved["orderId"].as_str().expect("a reservation").to_owned();
    integration_tests::spoil(
        corrupt,
        &flash_sale::keys::purchase_pk(chid, "ana"),
        flash_sale::keys::PURCHASE_SK,
        "purchasedAt",
    )
    .await;
    s.add("POST", CONFIRM, &orders(capp, confirm_request("POST", chid, &corder, TestBody::None)).await);
}

/// The purchase takes exactly the `Idempotency-Key`s and `admissionToken`s the document allows:
/// an allowed one passes the handler's checks and the request reaches the table (`sale_not_found`
/// here), any other is `invalid_request`.
#[tokio::test]
async fn the_purchase_takes_exactly_the_keys_and_tokens_the_document_allows() {
    use integration_tests::openapi::{StringSchema, document, resolve};
    let store = fresh_store().await;
    let app = wall_app(&store, AuthMode::Body);
    let doc = document();
    let key_rule = StringSchema::of(&resolve(&doc, &doc["components"]["parameters"]["IdempotencyKey"])["schema"]);
    let token_rule = StringSchema::of(&doc["components"]["schemas"]["AdmissionToken"]);
    let reaches_the_table = |resp: &ApiResponse| match json_of(resp)["code"].as_str() {
        Some("sale_not_found") => true,
        Some("invalid_request") => false,
        other => panic!("{other:?}: {}", resp.body),
    };

    // Keys: every string of up to three characters from a small alphabet of edge characters, and
    // lengths around the bounds, bare and quoted. (Whitespace around a header value is not part of
    // it in HTTP, so values that start or end with a space are left out.)
    let alphabet = ["\"", "a", "~", "!", " ", "\u{7f}", "é"];
    let mut keys: Vec<String> = vec![String::new()];
    for _ in 0..3 {
        let longer: Vec<String> = keys
            .iter()
            .flat_map(|k| alphabet.iter().map(move |c| format!("{k}{c}")))
            .filter(|k| k.len() <= 6)
            .collect();
        keys.extend(longer);
    }
    for n in 253..=258 {
        keys.extend(["k".repeat(n), format!("\"{}\"", "k".repeat(n - 2)), format!("\"{}", "k".repeat(n - 1))]);
    }
    keys.sort();
    keys.dedup();
    let keys: Vec<String> = keys.into_iter().filter(|k| !k.is_empty() && k.trim() == k).collect();
    let (mut allowed, mut refused) = (0, 0);
    for key in &keys {
        let mut req = purchase_request("no-such-sale", &user_body("alice"));
        req.event.headers.insert("idempotency-key".into(), key.clone());
        let resp = Box::pin(flash_sale::http::purchase_function(&app, req)).await;
        let taken = reaches_the_table(&resp);
        assert_eq!(key_rule.accepts(key), taken, "Idempotency-Key {key:?}: {}", resp.body);
        if taken { allowed += 1 } else { refused += 1 }
    }
    assert!(allowed > 50 && refused > 50, "{allowed} keys taken, {refused} refused");

    // Tokens: every ASCII character alone and inside, a few beyond, and lengths around the bound.
    let mut tokens: Vec<String> =
        (0u8..0x80).flat_map(|b| [char::from(b).to_string(), format!("a{}b", char::from(b))]).collect();
    tokens.extend(["é", "v1.a.b", "", "名"].map(String::from));
    tokens.extend((2047..=2049).map(|n| "t".repeat(n)));
    // Not a string at all: refused, on a sale without a waiting room too.
    for token in [json!(null), json!(42), json!(["t"])] {
        let resp = buy_in(&app, "no-such-sale", json!({"userId": "alice", "admissionToken": token}).to_string()).await;
        assert!(!reaches_the_table(&resp), "admissionToken {token}: {}", resp.body);
    }
    let (mut allowed, mut refused) = (0, 0);
    for token in &tokens {
        let body = json!({"userId": "alice", "admissionToken": token}).to_string();
        let resp = buy_in(&app, "no-such-sale", body).await;
        let taken = reaches_the_table(&resp);
        assert_eq!(token_rule.accepts(token), taken, "admissionToken {token:?}: {}", resp.body);
        if taken { allowed += 1 } else { refused += 1 }
    }
    assert!(allowed > 50 && refused > 50, "{allowed} tokens taken, {refused} refused");
}
