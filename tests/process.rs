//! The function binaries as Lambda runs them: a process that reads invocations from a Runtime
//! API. Hostile events get an answer and the process keeps serving the next invocation.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use integration_tests::{TestBody, active_sale, endpoint, event_json, fresh_store, user_body};
use local_lambda::RuntimeApi;
use serde_json::{Value, json};

/// `target/<profile>/<name>`, built by `cargo xtask test` before the tests run.
fn binary(name: &str) -> PathBuf {
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

struct Function(Child);

impl Function {
    fn start(name: &str, api: &RuntimeApi, table: &str) -> Self {
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
            .env("ADMISSION_KEY", integration_tests::ADMISSION_KEY_HEX)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start the function");
        Self(child)
    }

    fn alive(&mut self) -> bool {
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
    for name in ["purchase", "status", "user-lookup", "queue"] {
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
    let (stock, purchases) = integration_tests::stored_state(&store, &sale).await;
    assert_eq!(stock[0] + purchases.len() as i64, 10);
    assert!(purchases.iter().any(|p| p.user_id == "after-hostile"));
}
