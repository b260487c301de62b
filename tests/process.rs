//! The function binaries as Lambda runs them: a process that reads invocations from a Runtime
//! API. Hostile events get an answer and the process keeps serving the next invocation.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use flash_sale_testkit::{TestApp, TestBody, active_sale, endpoint, event_json, fresh_store, user_body};
use local_lambda::RuntimeApi;
use serde_json::{Value, json};

/// `target/<profile>/<name>`, built by `cargo xtask test` before the tests run.
pub(crate) fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the functions first (`cargo build --bins`, as cargo xtask test does)",
        path.display()
    );
    path
}

pub(crate) struct Function(Child);

impl Function {
    pub(crate) fn start(name: &str, api: &RuntimeApi, table: &str) -> Self {
        Self::start_with(name, api, table, &[])
    }

    fn start_with(name: &str, api: &RuntimeApi, table: &str, extra: &[(&str, &str)]) -> Self {
        let child = Command::new(binary(name))
            .env_clear()
            .envs(api.function_env(name))
            .env("TABLE_NAME", table)
            .env("AUTH_MODE", "body")
            .env("DYNAMODB_ENDPOINT", endpoint())
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("ADMISSION_KEY", flash_sale_testkit::ADMISSION_KEY_HEX)
            .env("RUST_LOG", "warn")
            .envs(extra.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the function");
        Self(child)
    }

    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Events whose fields hold what a generic API Gateway → `http::Request` conversion cannot take.
fn hostile(sale: &str) -> Vec<Value> {
    let path = format!("/sales/{sale}/purchases");
    let mut events = Vec::new();
    for query in [r#"a="<b>""#, "a=b c", "a=<b>", "%zz", "a=\u{0}"] {
        let mut e = event_json("POST", &path, &[("saleId", sale)], TestBody::Text(&user_body("mallory")), None);
        e["rawQueryString"] = json!(query);
        e["rawPath"] = json!(format!("{path} <x>"));
        e["cookies"] = json!(["a b", "\"<>\""]);
        e["headers"]["x-odd"] = json!("v\u{7f}\u{1}");
        events.push(e);
    }
    let mut e = event_json("POST", &path, &[("saleId", sale)], TestBody::Bytes(&[0xff, 0xfe, 0x00]), None);
    e["rawQueryString"] = json!("a b");
    events.push(e);
    events.push(json!({"version": "2.0", "body": 42, "headers": "not a map"}));
    events.push(json!([1, 2, 3]));
    events
}

#[tokio::test]
async fn a_function_process_answers_hostile_events_and_keeps_serving() {
    let store = fresh_store().await;
    let sale = active_sale(&store, 10, 1).await;
    let id = sale.id.to_string();
    let events = hostile(&id);
    for name in ["purchase", "status", "user-lookup", "queue", "orders"] {
        let api = RuntimeApi::start(name).expect("runtime api");
        let mut function = Function::start(name, &api, store.table());
        for e in &events {
            api.push(e.to_string());
        }
        let path = format!("/sales/{id}/purchases");
        let ok =
            event_json("POST", &path, &[("saleId", id.as_str())], TestBody::Text(&user_body("after-hostile")), None);
        let ok_id = api.push(ok.to_string());
        let expected = events.len() + 1;
        assert!(
            api.wait_outcomes(expected, Duration::from_secs(60)),
            "{name}: {:?} {:?}",
            api.outcomes(),
            api.init_error()
        );
        assert!(function.alive(), "{name}: the process is still running");
        for outcome in api.outcomes() {
            if outcome.kind == "error" {
                // Only an event that is not a JSON object may be refused by the runtime itself,
                // as an invocation error: that is the runtime's answer, not a crash.
                assert!(outcome.body.contains("deserialize"), "{name}: {}", outcome.body);
                continue;
            }
            let response: Value = serde_json::from_str(&outcome.body).expect("a JSON response");
            let status = response["statusCode"].as_u64().expect("statusCode");
            assert!(status < 500, "{name}: {status} {response}");
            if outcome.request_id == ok_id && name == "purchase" {
                assert_eq!(status, 201, "the invocation after the hostile ones: {response}");
            }
        }
        let errors = api.outcomes().iter().filter(|o| o.kind == "error").count();
        assert!(errors <= 2, "{name}: only the two non-object events may be refused: {errors}");
    }
    let (stock, purchases) = flash_sale_testkit::stored_state(&store, &sale).await;
    assert_eq!(stock[0] + purchases.len() as i64, 10);
    assert!(purchases.iter().any(|p| p.user_id == "after-hostile"));
}

#[tokio::test]
async fn the_sweeper_process_releases_an_ended_hold_on_its_schedule_whatever_the_event() {
    let store = fresh_store().await;
    let now = flash_sale_testkit::now_ms();
    let mut sale = flash_sale_testkit::sale(&flash_sale_testkit::unique("swept"), 3, 1, now - 60_000, now + 3_600_000);
    sale.hold_seconds = 1;
    store.create_sale(&sale, now).await.expect("create sale");
    let app = TestApp::on(&store);
    let bought = app.purchase(&sale.id, &flash_sale::ids::UserId::parse("late-payer").unwrap(), None).await;
    assert!(bought.result.is_ok());
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let api = RuntimeApi::start("sweeper").expect("runtime api");
    let mut function = Function::start("sweeper", &api, store.table());
    let schedule =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/sweep.json"))
            .expect("events/sweep.json");
    api.push(schedule);
    api.push(json!([1, "not a schedule"]).to_string());
    api.push(json!({"detail": null}).to_string());
    assert!(api.wait_outcomes(3, Duration::from_secs(60)), "{:?} {:?}", api.outcomes(), api.init_error());
    assert!(function.alive());
    let answers: Vec<Value> =
        api.outcomes().iter().map(|o| serde_json::from_str(&o.body).unwrap_or(Value::Null)).collect();
    assert!(api.outcomes().iter().all(|o| o.kind == "response"), "{:?}", api.outcomes());
    let released: u64 = answers.iter().map(|a| a["released"].as_u64().expect("a sweep report")).sum();
    assert_eq!(released, 1, "{answers:?}");
    let (stock, records) = flash_sale_testkit::stored_state(&store, &sale).await;
    assert_eq!((stock, records[0].status), (vec![3], flash_sale::order::OrderStatus::Expired));
}

// Multi-threaded: the fake bus serves on this runtime while the test waits for the outcomes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_events_process_publishes_the_stream_and_refuses_to_start_without_its_bus() {
    let store = flash_sale_testkit::fresh_store_with_stream().await;
    let sale = active_sale(&store, 5, 1).await;
    let app = TestApp::on(&store);
    for user in ["ann", "ben"] {
        assert!(app.purchase(&sale.id, &flash_sale::ids::UserId::parse(user).unwrap(), None).await.result.is_ok());
    }
    let records = flash_sale_testkit::streams::stream_records(&endpoint(), store.table()).await;
    let bus = flash_sale_testkit::streams::FakeEventBridge::start().await;

    let api = RuntimeApi::start("order-events").expect("runtime api");
    let mut function = Function::start_with(
        "order-events",
        &api,
        store.table(),
        &[("EVENT_BUS_NAME", "orders"), ("EVENTBRIDGE_ENDPOINT", &bus.endpoint)],
    );
    api.push(json!({ "Records": records }).to_string());
    api.push(json!({"Records": "not records"}).to_string());
    api.push(json!([1, 2]).to_string());
    assert!(api.wait_outcomes(3, Duration::from_secs(60)), "{:?} {:?}", api.outcomes(), api.init_error());
    assert!(function.alive());
    let first: Value = serde_json::from_str(&api.outcomes()[0].body).expect("a batch response");
    assert_eq!(first, json!({"batchItemFailures": []}));
    let types: Vec<String> = bus.accepted().into_iter().map(|(t, _, b, _)| format!("{t}@{b}")).collect();
    assert_eq!(types, ["OrderConfirmed@orders", "OrderConfirmed@orders"]);

    // No bus named: the process stops at start-up and says what is missing.
    let out = Command::new(binary("order-events"))
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("run order-events");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("EVENT_BUS_NAME"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
