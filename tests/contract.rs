//! The API contract: real handler answers for every documented status of every route (and the
//! 405 every path shares) validate against `docs/openapi.yaml`, with the `jsonschema` package
//! (JSON Schema 2020-12, OpenAPI 3.1's dialect) run by `tests/openapi_check.py`.

use std::path::PathBuf;
use std::process::Command;

use flash_sale::App;
use flash_sale::clock::ManualClock;
use flash_sale::config::AuthMode;
use flash_sale::http::ApiResponse;
use flash_sale::store::Store;
use flash_sale_testkit::proxy::{Fault, Proxy, upstream};
use flash_sale_testkit::{
    Route, SaleSpec, TestApp, TestBody, active_sale, admission_keys, fresh_store, now_ms, purchase_request, req,
    request, room_sale, sale, unique, user_body,
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

const HOUR: i64 = 3_600_000;
const JOIN: &str = "/sales/{saleId}/queue";
const POSITION: &str = "/sales/{saleId}/queue/{userId}";
const LOOKUP: &str = "/sales/{saleId}/purchases/{userId}";
const CONFIRM: &str = "/sales/{saleId}/orders/{orderId}/confirm";

fn json_of(resp: &ApiResponse) -> Value {
    serde_json::from_str(&resp.body).expect("a JSON body")
}

/// The parsed body of a recorded sample.
fn json_of_body(sample: &Value) -> Value {
    serde_json::from_str(sample["body"].as_str().expect("a body")).expect("a JSON body")
}

/// A client of `proxy` that makes one attempt per call: a failure is answered at once.
fn without_retries(proxy: &Proxy) -> aws_sdk_dynamodb::Client {
    let client = proxy.client();
    let retry = aws_sdk_dynamodb::config::retry::RetryConfig::disabled();
    aws_sdk_dynamodb::Client::from_conf(client.config().to_builder().retry_config(retry).build())
}

#[test]
fn every_documented_answer_matches_the_openapi_document() {
    // This one test drives every route from one async fn, whose poll frame alone takes more than
    // a test thread's 2 MiB stack in a debug build: it runs on a thread with the stack a
    // function's main thread has (8 MiB).
    let run = || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(every_documented_answer())
    };
    std::thread::Builder::new().stack_size(8 << 20).spawn(run).unwrap().join().unwrap();
}

async fn every_documented_answer() {
    let store = fresh_store().await;
    let body_app = TestApp::on(&store);
    let jwt_app = TestApp::on(&store).auth(AuthMode::Jwt);
    // DynamoDB failing transiently (every call a 500: the fault proxy, as DynamoDB Local never
    // does) is the 503 of every route; a table that does not exist, the 500 (health shows both).
    let down = Proxy::start(upstream(), Box::new(|_: &str, _: &str| Fault::ServerError)).await;
    let down_client = without_retries(&down);
    let unavailable = TestApp::on(&store).via(down_client.clone());
    let no_table = TestApp::on(&Store::new(store.client().clone(), unique("missing")));
    let open = active_sale(&store, 1, 1).await;
    let id = open.id.as_str();
    let now = now_ms();
    let upcoming = sale(&unique("up"), 5, 1, now + 3_600_000, now + 7_200_000);
    store.create_sale(&upcoming, now).await.unwrap();
    let ended = sale(&unique("end"), 5, 1, now - 7_200_000, now - 3_600_000);
    store.create_sale(&ended, now - 7_200_000).await.unwrap();
    let mut s = Samples(Vec::new());

    // Two per customer: an Idempotency-Key reused for another quantity is 422.
    let mut two = sale(&unique("two"), 5, 1, now - 60_000, now + 3_600_000);
    two.max_per_customer = 2;
    store.create_sale(&two, now).await.unwrap();
    for quantity in [1, 2] {
        let path = format!("/sales/{}/purchases", two.id);
        let body = serde_json::json!({"userId": "carol", "quantity": quantity}).to_string();
        let mut event = flash_sale_testkit::event_json(
            "POST",
            &path,
            &[("saleId", two.id.as_str())],
            flash_sale_testkit::TestBody::Text(&body),
            None,
        );
        event["headers"]["idempotency-key"] = serde_json::json!("k-two");
        let resp = flash_sale::http::purchase_function(&body_app, flash_sale_testkit::request_from(&event)).await;
        s.add("POST", "/sales/{saleId}/purchases", &resp);
    }
    // Carol's live orders and the items she holds; one order by `orderId`, then cancelled.
    let lookup = |method: &str, order: Option<&str>| {
        let path = format!("/sales/{}/purchases/carol", two.id);
        let params = [("saleId", two.id.as_str()), ("userId", "carol")];
        let mut event =
            flash_sale_testkit::event_json(method, &path, &params, flash_sale_testkit::TestBody::None, None);
        if let Some(order) = order {
            event["queryStringParameters"] = serde_json::json!({ "orderId": order });
        }
        flash_sale_testkit::request_from(&event)
    };
    let all = flash_sale::http::user_lookup_function(&body_app, lookup("GET", None)).await;
    let carols: serde_json::Value = serde_json::from_str(&all.body).unwrap();
    assert!(carols["orders"].is_array() && carols["held"].is_number(), "{carols}");
    let order = carols["orderId"].as_str().unwrap().to_owned();
    s.add("GET", LOOKUP, &all);
    s.add("GET", LOOKUP, &flash_sale::http::user_lookup_function(&body_app, lookup("GET", Some(&order))).await);
    s.add("GET", LOOKUP, &flash_sale::http::user_lookup_function(&body_app, lookup("GET", Some("x"))).await);
    s.add("DELETE", LOOKUP, &flash_sale::http::user_lookup_function(&body_app, lookup("DELETE", Some(&order))).await);

    // GET /health
    s.add("GET", "/health", &flash_sale::http::status_function(&body_app, req::get("/health", &[])).await);
    s.add("GET", "/health", &flash_sale::http::status_function(&unavailable, req::get("/health", &[])).await);
    s.add("GET", "/health", &flash_sale::http::status_function(&no_table, req::get("/health", &[])).await);
    // GET /sales
    s.add("GET", "/sales", &flash_sale::http::status_function(&body_app, req::get("/sales", &[])).await);
    s.add("GET", "/sales", &flash_sale::http::status_function(&unavailable, req::get("/sales", &[])).await);
    // GET /sales/{saleId}
    let route = "/sales/{saleId}";
    s.add(
        "GET",
        route,
        &flash_sale::http::status_function(&body_app, req::get(&format!("/sales/{id}"), &[("saleId", id)])).await,
    );
    s.add(
        "GET",
        route,
        &flash_sale::http::status_function(&body_app, req::get("/sales/a b", &[("saleId", "a b")])).await,
    );
    s.add(
        "GET",
        route,
        &flash_sale::http::status_function(&body_app, req::get("/sales/nope", &[("saleId", "nope")])).await,
    );
    s.add(
        "GET",
        route,
        &flash_sale::http::status_function(&unavailable, req::get("/sales/nope", &[("saleId", "nope")])).await,
    );
    // POST /sales/{saleId}/purchases
    let route = "/sales/{saleId}/purchases";
    let buy = |app: &'static App, sale: &str, body: String| {
        let req = purchase_request(sale, &body);
        async move { flash_sale::http::purchase_function(app, req).await }
    };
    let body_app: &'static App = Box::leak(Box::new(body_app));
    let jwt_app: &'static App = Box::leak(Box::new(jwt_app));
    let unavailable: &'static TestApp = Box::leak(Box::new(unavailable));
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
    s.add("POST", route, &buy(unavailable, id, user_body("dan")).await);
    // GET /sales/{saleId}/purchases/{userId}
    let route = "/sales/{saleId}/purchases/{userId}";
    s.add("GET", route, &flash_sale::http::user_lookup_function(body_app, req::lookup("GET", id, "alice", None)).await);
    s.add("GET", route, &flash_sale::http::user_lookup_function(body_app, req::lookup("GET", id, " x", None)).await);
    s.add("GET", route, &flash_sale::http::user_lookup_function(jwt_app, req::lookup("GET", id, "alice", None)).await);
    let other = req::lookup("GET", id, "alice", Some(json!({"sub": "mallory"})));
    s.add("GET", route, &flash_sale::http::user_lookup_function(jwt_app, other).await);
    s.add(
        "GET",
        route,
        &flash_sale::http::user_lookup_function(body_app, req::lookup("GET", id, "nobody", None)).await,
    );
    s.add(
        "GET",
        route,
        &flash_sale::http::user_lookup_function(unavailable, req::lookup("GET", id, "alice", None)).await,
    );
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
        &flash_sale::http::purchase_function(body_app, req::get(&format!("/sales/{id}/purchases"), &[("saleId", id)]))
            .await,
    );

    // The waiting room, on a manual clock: a room that opens in an hour (its pre-queue is open)
    // and one that opens in five (its pre-queue is not).
    let start = now_ms() + HOUR;
    let (room, _) = room_sale(&store, 5, 1, start, start + HOUR).await;
    let (later, _) = room_sale(&store, 5, 1, start + 4 * HOUR, start + 5 * HOUR).await;
    let clock = ManualClock::at(start - 10 * 60_000);
    let room_body = TestApp::on(&store).clocked(&clock).admission();
    let room_jwt = TestApp::on(&store).clocked(&clock).auth(AuthMode::Jwt).admission();
    let room_unavailable = TestApp::on(&store).via(down_client.clone()).clocked(&clock).admission();
    let (rid, plain) = (room.id.as_str(), id);
    // POST /sales/{saleId}/queue and GET /sales/{saleId}/queue/{userId}, before opening.
    s.add("POST", JOIN, &room_body.call(Route::Queue, req::join(rid, &user_body("alice"), None)).await);
    s.add("GET", POSITION, &room_body.call(Route::Queue, req::position(rid, "alice", None)).await);
    s.add("POST", JOIN, &room_body.call(Route::Queue, req::join(rid, "[1]", None)).await);
    s.add(
        "POST",
        JOIN,
        &room_body.call(Route::Queue, req::join(rid, r#"{"userId":"x","admissionToken":"t"}"#, None)).await,
    );
    s.add("POST", JOIN, &room_jwt.call(Route::Queue, req::join(rid, &user_body("carol"), None)).await);
    let claims = Some(json!({"sub": "mallory"}));
    s.add("POST", JOIN, &room_jwt.call(Route::Queue, req::join(rid, &user_body("eve"), claims.clone())).await);
    s.add("POST", JOIN, &room_body.call(Route::Queue, req::join(later.id.as_str(), &user_body("eager"), None)).await);
    s.add("POST", JOIN, &room_body.call(Route::Queue, req::join("nope", &user_body("dan"), None)).await);
    s.add("POST", JOIN, &room_body.call(Route::Queue, req::join(plain, &user_body("dan"), None)).await);
    let huge = format!(r#"{{"userId":"x","pad":"{}"}}"#, "x".repeat(17_000));
    s.add("POST", JOIN, &room_body.call(Route::Queue, req::join(rid, &huge, None)).await);
    s.add("POST", JOIN, &room_unavailable.call(Route::Queue, req::join(rid, &user_body("dan"), None)).await);
    s.add("GET", POSITION, &room_body.call(Route::Queue, req::position(rid, " x", None)).await);
    s.add("GET", POSITION, &room_jwt.call(Route::Queue, req::position(rid, "alice", None)).await);
    s.add("GET", POSITION, &room_jwt.call(Route::Queue, req::position(rid, "alice", claims.clone())).await);
    s.add("GET", POSITION, &room_body.call(Route::Queue, req::position("nope", "alice", None)).await);
    s.add("GET", POSITION, &room_body.call(Route::Queue, req::position(plain, "alice", None)).await);
    s.add("GET", POSITION, &room_body.call(Route::Queue, req::position(rid, "nobody", None)).await);
    s.add("GET", POSITION, &room_unavailable.call(Route::Queue, req::position(rid, "alice", None)).await);
    s.add(
        "GET",
        JOIN,
        &room_body
            .call(
                Route::Queue,
                request("GET", &format!("/sales/{rid}/queue"), &[("saleId", rid)], TestBody::None, None),
            )
            .await,
    );
    s.add(
        "DELETE",
        POSITION,
        &room_body
            .call(
                Route::Queue,
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
    let room_view = req::get(&format!("/sales/{rid}"), &[("saleId", rid)]);
    s.add("GET", "/sales/{saleId}", &flash_sale::http::status_function(&room_body, room_view).await);
    s.add("GET", POSITION, &room_body.call(Route::Queue, req::position(rid, "alice", None)).await);
    clock.advance(2_000);
    let admitted = room_body.call(Route::Queue, req::position(rid, "alice", None)).await;
    s.add("GET", POSITION, &admitted);
    let admitted: Value = serde_json::from_str(&admitted.body).unwrap();
    let token = admitted["admissionToken"].as_str().expect("alice is admitted with a token").to_owned();
    s.add("POST", JOIN, &room_body.call(Route::Queue, req::join(rid, &user_body("late"), None)).await);
    s.add("GET", "/sales", &flash_sale::http::status_function(&room_body, req::get("/sales", &[])).await);
    // POST /sales/{saleId}/purchases on the room sale: the admission refusals, then a purchase.
    let alice = flash_sale::ids::UserId::parse("alice").unwrap();
    let far = admission_keys().sign(&room.id, &alice, 1_000, start + HOUR);
    let with_token = |t: &str| json!({"userId": "alice", "admissionToken": t}).to_string();
    let route = "/sales/{saleId}/purchases";
    s.add("POST", route, &room_body.call(Route::Purchase, req::purchase(rid, &user_body("alice"))).await);
    s.add("POST", route, &room_body.call(Route::Purchase, req::purchase(rid, &with_token("forged.token"))).await);
    s.add("POST", route, &room_body.call(Route::Purchase, req::purchase(rid, &with_token(&far))).await);
    s.add("POST", route, &room_body.call(Route::Purchase, req::purchase(rid, &with_token(&token))).await);
    let codes: Vec<Value> = s.0[s.0.len() - 4..]
        .iter()
        .map(|x| serde_json::from_str::<Value>(x["body"].as_str().unwrap()).unwrap()["code"].clone())
        .collect();
    assert_eq!(
        codes,
        [json!("admission_required"), json!("admission_invalid"), json!("not_yet_admitted"), Value::Null]
    );

    // Orders with holds (boxed: the test's future stays small).
    Box::pin(order_samples(&mut s, &store, unavailable)).await;
    // A drawn public beacon room's published entrant list.
    Box::pin(entrant_samples(&mut s, &store, rid, unavailable)).await;

    // 500s: unreadable stored items, each in a table of its own.
    let corrupt = fresh_store().await;
    let c = active_sale(&corrupt, 5, 1).await;
    let cid = c.id.as_str();
    let capp: &'static TestApp = Box::leak(Box::new(TestApp::on(&corrupt)));
    assert_eq!(buy(capp, cid, user_body("alice")).await.status_code, 201);
    flash_sale_testkit::spoil(
        &corrupt,
        &flash_sale::keys::purchase_pk(cid, "alice"),
        flash_sale::keys::PURCHASE_SK,
        "purchasedAt",
    )
    .await;
    s.add(
        "GET",
        "/sales/{saleId}/purchases/{userId}",
        &flash_sale::http::user_lookup_function(capp, req::lookup("GET", cid, "alice", None)).await,
    );
    s.add("DELETE", LOOKUP, &capp.call(Route::Lookup, req::lookup("DELETE", cid, "alice", None)).await);
    Box::pin(corrupt_order_sample(&mut s, &corrupt, capp)).await;
    flash_sale_testkit::spoil(&corrupt, &flash_sale::keys::shard_pk(cid, 0), flash_sale::keys::SHARD_SK, "remaining")
        .await;
    s.add("POST", "/sales/{saleId}/purchases", &buy(capp, cid, user_body("bob")).await);
    s.add(
        "GET",
        "/sales/{saleId}",
        &flash_sale::http::status_function(capp, req::get(&format!("/sales/{cid}"), &[("saleId", cid)])).await,
    );
    s.add("GET", "/sales", &flash_sale::http::status_function(capp, req::get("/sales", &[])).await);
    // An unreadable room state: joining and polling answer 500.
    let (croom, _) = room_sale(&corrupt, 5, 1, start, start + HOUR).await;
    let crid = croom.id.as_str();
    let cqueue = TestApp::on(&corrupt).clocked(&clock).admission();
    assert_eq!(cqueue.call(Route::Queue, req::join(crid, &user_body("alice"), None)).await.status_code, 200);
    flash_sale_testkit::spoil(&corrupt, &flash_sale::keys::sale_pk(crid), flash_sale::keys::ROOM_SK, "admittedThrough")
        .await;
    clock.advance(2_000);
    s.add("POST", JOIN, &cqueue.call(Route::Queue, req::join(crid, &user_body("bob"), None)).await);
    s.add("GET", POSITION, &cqueue.call(Route::Queue, req::position(crid, "alice", None)).await);

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

/// `GET /sales/{saleId}/entrants/{page}`: a room drawn with a recorded drand round (served by the
/// fixture relay), its page; a page that is not a number, one past the end; a room without a
/// public beacon (`plain_room`); no such sale; DynamoDB failing.
async fn entrant_samples(s: &mut Samples, store: &Store, plain_room: &str, unavailable: &'static TestApp) {
    use flash_sale::beacon::round_time_ms;
    const ROUTE: &str = "/sales/{saleId}/entrants/{page}";
    let start = round_time_ms(123) - flash_sale::room::DRAW_GRACE_MS - 1_000;
    let app = TestApp::on(store).at(start - 60_000).admission();
    let (sale, _) = SaleSpec::new().stock(5).window(start, start + HOUR).public_beacon().create_room(&app).await;
    let id = sale.id.to_string();
    for user in ["ann", "bo", "cy"] {
        assert_eq!(app.post_queue(&id, user).await.0, 200);
    }
    s.add("GET", ROUTE, &app.get_entrants(&id, "0").await);
    app.clock().set(round_time_ms(123) + 1_000);
    let relay = flash_sale_testkit::drand::DrandFixtureServer::start().await;
    let relays = sweeper::Relays::new(vec![relay.url().to_owned()], std::time::Duration::from_secs(5)).unwrap();
    assert_eq!(app.container().draw_due_rooms_with(&relays).await.unwrap(), vec![id.clone()]);
    app.clock().advance(1_000);
    let page = app.get_entrants(&id, "0").await;
    assert_eq!(page.status_code, 200, "{}", page.body);
    s.add("GET", ROUTE, &page);
    s.add("GET", ROUTE, &app.get_entrants(&id, "1").await);
    s.add("GET", ROUTE, &app.get_entrants(&id, "zero").await);
    s.add("GET", ROUTE, &app.get_entrants(plain_room, "0").await);
    s.add("GET", ROUTE, &app.get_entrants("nope", "0").await);
    s.add("GET", ROUTE, &unavailable.get_entrants(&id, "0").await);
    // An unreadable page: 500.
    let page_key = (flash_sale::keys::entrants_pk(&id), flash_sale::keys::entrant_page_sk(0));
    flash_sale_testkit::spoil(store, &page_key.0, &page_key.1, "ids").await;
    s.add("GET", ROUTE, &app.get_entrants(&id, "0").await);
}

/// Orders with holds, on a manual clock: reservations, the payment backend's confirmations, a
/// buyer's cancellations, and a hold that ends before it is paid.
async fn order_samples(s: &mut Samples, store: &Store, unavailable: &'static TestApp) {
    let t0 = now_ms();
    let held = SaleSpec::new().stock(5).holds(600).create_in(store, t0).await.0;
    let hid = held.id.as_str();
    let hold_clock = ManualClock::at(t0);
    let hold_body = TestApp::on(store).clocked(&hold_clock);
    let hold_jwt = TestApp::on(store).clocked(&hold_clock).auth(AuthMode::Jwt);
    let mut order_of = std::collections::BTreeMap::new();
    for user in ["ana", "bea", "cy"] {
        let bought = hold_body.call(Route::Purchase, req::purchase(hid, &user_body(user))).await;
        let order = json_of(&bought);
        assert_eq!((bought.status_code, &order["status"]), (201, &json!("reserved")), "{order}");
        assert!(order["holdExpiresAt"].is_string(), "{order}");
        s.add("POST", "/sales/{saleId}/purchases", &bought);
        order_of.insert(user, order["orderId"].as_str().unwrap().to_owned());
    }
    s.add("GET", LOOKUP, &hold_body.call(Route::Lookup, req::lookup("GET", hid, "ana", None)).await);
    s.add(
        "GET",
        "/sales/{saleId}",
        &flash_sale::http::status_function(&hold_body, req::get(&format!("/sales/{hid}"), &[("saleId", hid)])).await,
    );
    // POST /sales/{saleId}/orders/{orderId}/confirm: ana's order paid (and confirmed again).
    let none = TestBody::None;
    s.add("POST", CONFIRM, &hold_body.call(Route::Orders, req::confirm("POST", hid, &order_of["ana"], none)).await);
    let again = req::confirm("POST", hid, &order_of["ana"], TestBody::Text("{}"));
    s.add("POST", CONFIRM, &hold_body.call(Route::Orders, again).await);
    // DELETE /sales/{saleId}/purchases/{userId}: ana's confirmed order stays; bea cancels (twice).
    s.add("DELETE", LOOKUP, &hold_body.call(Route::Lookup, req::lookup("DELETE", hid, "ana", None)).await);
    let cancelled = hold_body.call(Route::Lookup, req::lookup("DELETE", hid, "bea", None)).await;
    assert_eq!(json_of(&cancelled)["status"], "cancelled", "{}", cancelled.body);
    s.add("DELETE", LOOKUP, &cancelled);
    s.add("DELETE", LOOKUP, &hold_body.call(Route::Lookup, req::lookup("DELETE", hid, "bea", None)).await);
    s.add("GET", LOOKUP, &hold_body.call(Route::Lookup, req::lookup("GET", hid, "bea", None)).await);
    s.add("DELETE", LOOKUP, &hold_body.call(Route::Lookup, req::lookup("DELETE", hid, "nobody", None)).await);
    s.add("DELETE", LOOKUP, &hold_body.call(Route::Lookup, req::lookup("DELETE", "nope", "ana", None)).await);
    s.add("DELETE", LOOKUP, &hold_body.call(Route::Lookup, req::lookup("DELETE", hid, " x", None)).await);
    s.add("DELETE", LOOKUP, &hold_jwt.call(Route::Lookup, req::lookup("DELETE", hid, "cy", None)).await);
    s.add(
        "DELETE",
        LOOKUP,
        &hold_jwt.call(Route::Lookup, req::lookup("DELETE", hid, "cy", Some(json!({"sub": "mallory"})))).await,
    );
    s.add("DELETE", LOOKUP, &unavailable.call(Route::Lookup, req::lookup("DELETE", hid, "cy", None)).await);
    let put = request(
        "PUT",
        &format!("/sales/{hid}/purchases/cy"),
        &[("saleId", hid), ("userId", "cy")],
        TestBody::None,
        None,
    );
    s.add("PUT", LOOKUP, &hold_body.call(Route::Lookup, put).await);
    // The confirm route's refusals: bea's cancelled order, unknown orders and sales, bad ids and
    // bodies, a wrong method, a table that does not answer.
    s.add(
        "POST",
        CONFIRM,
        &hold_body.call(Route::Orders, req::confirm("POST", hid, &order_of["bea"], TestBody::None)).await,
    );
    let long_ago = ulid::Ulid::from_parts(1_000, 7).to_string();
    s.add("POST", CONFIRM, &hold_body.call(Route::Orders, req::confirm("POST", hid, &long_ago, TestBody::None)).await);
    s.add(
        "POST",
        CONFIRM,
        &hold_body.call(Route::Orders, req::confirm("POST", "nope", &long_ago, TestBody::None)).await,
    );
    s.add(
        "POST",
        CONFIRM,
        &hold_body.call(Route::Orders, req::confirm("POST", hid, "not-an-order", TestBody::None)).await,
    );
    let with_body = req::confirm("POST", hid, &order_of["cy"], TestBody::Text(r#"{"paid":true}"#));
    s.add("POST", CONFIRM, &hold_body.call(Route::Orders, with_body).await);
    s.add(
        "GET",
        CONFIRM,
        &hold_body.call(Route::Orders, req::confirm("GET", hid, &order_of["cy"], TestBody::None)).await,
    );
    s.add(
        "POST",
        CONFIRM,
        &unavailable.call(Route::Orders, req::confirm("POST", hid, &order_of["cy"], TestBody::None)).await,
    );
    // cy's hold ends unpaid: too late to confirm.
    hold_clock.advance(600_000);
    let late = hold_body.call(Route::Orders, req::confirm("POST", hid, &order_of["cy"], TestBody::None)).await;
    assert_eq!(json_of(&late)["code"], "hold_expired", "{}", late.body);
    s.add("POST", CONFIRM, &late);
    s.add("GET", LOOKUP, &hold_body.call(Route::Lookup, req::lookup("GET", hid, "cy", None)).await);
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
async fn corrupt_order_sample(s: &mut Samples, corrupt: &Store, capp: &'static TestApp) {
    let cheld = SaleSpec::new().stock(5).holds(600).create_in(corrupt, now_ms()).await.0;
    let chid = cheld.id.as_str();
    let reserved = json_of(&capp.call(Route::Purchase, req::purchase(chid, &user_body("ana"))).await);
    let corder = reserved["orderId"].as_str().expect("a reservation").to_owned();
    flash_sale_testkit::spoil(
        corrupt,
        &flash_sale::keys::purchase_pk(chid, "ana"),
        flash_sale::keys::PURCHASE_SK,
        "purchasedAt",
    )
    .await;
    s.add("POST", CONFIRM, &capp.call(Route::Orders, req::confirm("POST", chid, &corder, TestBody::None)).await);
}

/// The purchase takes exactly the `Idempotency-Key`s and `admissionToken`s the document allows:
/// an allowed one passes the handler's checks and the request reaches the table (`sale_not_found`
/// here), any other is `invalid_request`.
#[tokio::test]
async fn the_purchase_takes_exactly_the_keys_and_tokens_the_document_allows() {
    use integration_tests::openapi::{StringSchema, document, resolve};
    let app = TestApp::fresh().await;
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
        let resp = Box::pin(app.call(Route::Purchase, req)).await;
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
        let resp = app
            .call(
                Route::Purchase,
                purchase_request("no-such-sale", &json!({"userId": "alice", "admissionToken": token}).to_string()),
            )
            .await;
        assert!(!reaches_the_table(&resp), "admissionToken {token}: {}", resp.body);
    }
    let (mut allowed, mut refused) = (0, 0);
    for token in &tokens {
        let body = json!({"userId": "alice", "admissionToken": token}).to_string();
        let resp = app.call(Route::Purchase, purchase_request("no-such-sale", &body)).await;
        let taken = reaches_the_table(&resp);
        assert_eq!(token_rule.accepts(token), taken, "admissionToken {token:?}: {}", resp.body);
        if taken { allowed += 1 } else { refused += 1 }
    }
    assert!(allowed > 50 && refused > 50, "{allowed} tokens taken, {refused} refused");
}
