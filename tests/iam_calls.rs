//! Each function's IAM actions are exactly the DynamoDB calls its handler really makes: the
//! handlers run through every documented outcome against DynamoDB Local behind a recording proxy,
//! and the recorded operations (a transaction counts as the actions of its items) are compared
//! with the actions `infra/template.yaml` grants the function.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flash_sale::App;
use flash_sale::clock::SystemClock;
use flash_sale::config::{AuthMode, Tuning};
use flash_sale::http::ApiRequest;
use flash_sale::store::Store;
use integration_tests::proxy::{Fault, Proxy};
use integration_tests::template::iam_actions;
use integration_tests::{
    TestBody, active_sale, app_with, fresh_store, now_ms, purchase_request, request, sale, user_body,
};
use serde_json::Value;

use crate::faults::{timeouts, upstream};

/// The IAM actions one recorded request needs.
fn actions_of(op: &str, body: &str) -> Vec<String> {
    if op != "TransactWriteItems" {
        return vec![format!("dynamodb:{op}")];
    }
    let doc: Value = serde_json::from_str(body).expect("a TransactWriteItems body is JSON");
    let items = doc["TransactItems"].as_array().expect("TransactItems");
    items
        .iter()
        .flat_map(|item| item.as_object().expect("a transaction item").keys().cloned())
        .map(|kind| match kind.as_str() {
            "ConditionCheck" => "dynamodb:ConditionCheckItem".to_owned(),
            other => format!("dynamodb:{other}Item"),
        })
        .collect()
}

struct Recorder {
    proxy: Proxy,
    calls: Arc<Mutex<BTreeSet<String>>>,
}

impl Recorder {
    async fn start() -> Self {
        let calls = Arc::new(Mutex::new(BTreeSet::new()));
        let seen = calls.clone();
        let plan = Box::new(move |op: &str, body: &str| {
            seen.lock().unwrap().extend(actions_of(op, body));
            Fault::Pass
        });
        Self { proxy: Proxy::start(upstream(), plan).await, calls }
    }

    fn store(&self, table: &str) -> Store {
        Store::new(
            flash_sale::aws::local_client_with_timeouts(&self.proxy.endpoint, timeouts()).expect("client"),
            table,
        )
    }

    fn take(&self) -> BTreeSet<String> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

fn granted(function: &str) -> BTreeSet<String> {
    iam_actions(function)
}

fn get(path: &str, params: &[(&str, &str)]) -> ApiRequest {
    request("GET", path, params, TestBody::None, None)
}

#[tokio::test]
async fn each_function_is_granted_exactly_the_dynamodb_actions_its_handler_makes() {
    let store = fresh_store().await;
    let open = active_sale(&store, 2, 1).await;
    let now = now_ms();
    let upcoming = sale(&integration_tests::unique("up"), 5, 1, now + 3_600_000, now + 7_200_000);
    store.create_sale(&upcoming, now).await.unwrap();
    let ended = sale(&integration_tests::unique("end"), 5, 1, now - 7_200_000, now - 3_600_000);
    store.create_sale(&ended, now - 7_200_000).await.unwrap();
    let recorder = Recorder::start().await;
    let watched = recorder.store(store.table());
    // The product's hints, so the refusals they give (and the read behind them) happen too.
    let hints =
        Tuning { backoff_base: Duration::from_millis(1), backoff_cap: Duration::from_millis(5), ..Tuning::default() };
    let app: App = app_with(&watched, Arc::new(SystemClock), AuthMode::Body, hints);
    let id = open.id.as_str();

    // purchase: 201, 409 already_purchased, 201 for the last item, 409 sold_out from the
    // transaction and then from the hint (with the buyer's record read behind it), 403 not started
    // / ended, 404 unknown sale.
    let mut statuses = Vec::new();
    for (sale_id, user) in [(id, "a"), (id, "a"), (id, "b"), (id, "c"), (id, "d"), (id, "e")] {
        statuses.push(
            flash_sale::http::purchase_function(&app, purchase_request(sale_id, &user_body(user))).await.status_code,
        );
    }
    for other in [upcoming.id.as_str(), ended.id.as_str(), "no-such-sale"] {
        statuses.push(
            flash_sale::http::purchase_function(&app, purchase_request(other, &user_body("a"))).await.status_code,
        );
    }
    assert_eq!(statuses, vec![201, 409, 201, 409, 409, 409, 403, 403, 404]);
    assert_eq!(recorder.take(), granted("purchase"), "purchase: recorded calls (left), granted actions (right)");

    // status: health, the list, one sale, an unknown sale.
    let status_requests = [
        get("/health", &[]),
        get("/sales", &[]),
        get(&format!("/sales/{id}"), &[("saleId", id)]),
        get("/sales/nope", &[("saleId", "nope")]),
    ];
    let mut statuses = Vec::new();
    for req in status_requests {
        statuses.push(flash_sale::http::status_function(&app, req).await.status_code);
    }
    assert_eq!(statuses, vec![200, 200, 200, 404]);
    assert_eq!(recorder.take(), granted("status"), "status: recorded calls (left), granted actions (right)");

    // user-lookup: found and not found.
    let mut statuses = Vec::new();
    for user in ["a", "nobody"] {
        let req = get(&format!("/sales/{id}/purchases/{user}"), &[("saleId", id), ("userId", user)]);
        statuses.push(flash_sale::http::user_lookup_function(&app, req).await.status_code);
    }
    assert_eq!(statuses, vec![200, 404]);
    assert_eq!(recorder.take(), granted("user-lookup"), "user-lookup: recorded calls (left), granted actions (right)");
}
