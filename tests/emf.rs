//! Each purchase attempt writes exactly one CloudWatch EMF line carrying its outcome; a purchase
//! that sells an item writes one more, the new order's status (`OrderChanges`): at most one per
//! item of stock. Every failure an operator must look at counts in `Errors`, by `kind`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use aws_sdk_dynamodb::types::AttributeValue;
use flash_sale::order::OrderStatus;
use flash_sale::telemetry;
use flash_sale_testkit::proxy::{Fault, Proxy, upstream};
use flash_sale_testkit::{SaleSpec, TestApp, active_sale, fresh_store, purchase_request, user_body};
use serde_json::{Value, json};

type Flush = Box<dyn Fn() -> String + Send + Sync>;

/// The process-wide EMF collector (installed once): its lines since the last call. Tests hold
/// [`SERIAL`] so that what they flush is their own.
fn flush() -> String {
    static COLLECTOR: OnceLock<Flush> = OnceLock::new();
    let flush = COLLECTOR.get_or_init(|| {
        let metrics = telemetry::metrics_builder().init().expect("install the recorder");
        telemetry::describe_metrics();
        Box::new(move || {
            let mut out = Vec::new();
            metrics.flush(&mut out).expect("flush");
            String::from_utf8(out).expect("UTF-8")
        })
    });
    flush()
}

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `Errors` by `kind` in EMF lines.
fn errors(emf: &str) -> BTreeMap<String, i64> {
    let mut found = BTreeMap::new();
    for line in emf.lines() {
        let doc: Value = serde_json::from_str(line).expect("an EMF line is JSON");
        if let Some(n) = doc["Errors"].as_i64() {
            assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["kind"]]), "{line}");
            assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"], "FlashSale", "{line}");
            *found.entry(doc["kind"].as_str().expect("kind").to_owned()).or_default() += n;
        }
    }
    found
}

#[tokio::test]
async fn each_purchase_emits_one_emf_line_with_its_outcome_dimension() {
    let _serial = SERIAL.lock().await;
    flush();
    let store = fresh_store().await;
    let sale = active_sale(&store, 1, 1).await;
    let app = TestApp::on(&store);
    let id = sale.id.as_str();

    for (body, outcome) in [
        (user_body("alice"), "succeeded"),
        (user_body("alice"), "already_purchased"),
        (user_body("bob"), "sold_out"),
        ("{not json".to_owned(), "rejected"),
    ] {
        flash_sale::http::purchase_function(&app, purchase_request(id, &body)).await;
        let lines: Vec<Value> = flush().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let (purchase, order): (Vec<&Value>, Vec<&Value>) = lines.iter().partition(|l| l.get("Purchases").is_some());
        assert_eq!(purchase.len(), 1, "one purchase EMF line for the {outcome} purchase: {lines:#?}");
        if outcome == "succeeded" {
            assert_eq!(order.len(), 1, "and one for the order it made: {lines:#?}");
            assert_eq!((&order[0]["OrderChanges"], &order[0]["status"]), (&json!(1), &json!("confirmed")));
            let dims = &order[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"];
            assert_eq!(dims, &json!([["status"]]));
        } else {
            assert!(order.is_empty(), "nothing else for the {outcome} purchase: {lines:#?}");
        }
        let doc = purchase[0];
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "FlashSale");
        assert_eq!(directive["Dimensions"], json!([["outcome"]]));
        assert_eq!(doc["outcome"], outcome);
        assert_eq!(doc["Purchases"], 1);
        let latency = directive["Metrics"].as_array().unwrap().iter().find(|m| m["Name"] == "PurchaseLatency").cloned();
        assert_eq!(latency.map(|m| m["Unit"].clone()), Some(json!("Milliseconds")));
        let samples = doc["PurchaseLatency"].as_array().map(|v| v.iter().all(Value::is_number) && v.len() == 1);
        assert_eq!(samples, Some(true), "one latency sample: {doc}");
    }
}

#[tokio::test]
async fn a_draw_and_a_hold_release_that_fail_count_in_errors_and_the_run_goes_on() {
    let _serial = SERIAL.lock().await;
    // Arrange: a room due for its draw without its draw seed; two ended holds, one of them on a
    // shard that is gone.
    let app = TestApp::fresh().await.at(1_800_000_000_000);
    let (room, _) = SaleSpec::new().create_room(&app).await;
    let delete = |pk: String, sk: &'static str| {
        let store = app.store().clone();
        async move {
            let key = [("pk", AttributeValue::S(pk)), ("sk", AttributeValue::S(sk.into()))];
            let mut call = store.client().delete_item().table_name(store.table());
            for (k, v) in key {
                call = call.key(k, v);
            }
            call.send().await.expect("delete item");
        }
    };
    delete(flash_sale::keys::sale_pk(room.id.as_str()), "DRAW").await;
    let sale = SaleSpec::new().stock(2).shards(2).holds(60).create(&app).await;
    assert_eq!(app.buy(&sale, "alice").await.0, 201);
    assert_eq!(app.buy(&sale, "bob").await.0, 201);
    let record = |user: &'static str| {
        let (store, id) = (app.store().clone(), sale.id.clone());
        async move {
            let user = flash_sale::ids::UserId::parse(user).unwrap();
            store.get_purchase(&id, &user).await.expect("read").expect("a record")
        }
    };
    let alice = record("alice").await;
    delete(flash_sale::keys::shard_pk(sale.id.as_str(), alice.shard), "STOCK").await;
    app.clock().advance(60_000);
    flush();

    // Act: runs until bob's hold is released (the holds index may lag), at most 20.
    let mut reports = Vec::new();
    while reports.len() < 20 {
        reports.push(app.container().scheduled_run(100, std::time::Duration::from_secs(60)).await);
        if record("bob").await.status == OrderStatus::Expired {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // Assert: every run counted its failed draw; the failed release counted once (then set aside).
    assert_eq!(record("bob").await.status, OrderStatus::Expired, "{reports:?}");
    let failed: u32 = reports.iter().map(|r| r.sweep.failed).sum();
    assert_eq!(failed, 1, "{reports:?}");
    let counted = errors(&flush());
    assert_eq!(counted.get("draw"), Some(&(reports.len() as i64)), "{counted:?} {reports:?}");
    assert_eq!(counted.get("hold_release"), Some(&1), "{counted:?}");
}

#[tokio::test]
async fn a_store_error_a_retry_does_not_change_counts_in_errors() {
    let _serial = SERIAL.lock().await;
    let app = TestApp::fresh().await;
    let sale = SaleSpec::new().create(&app).await;
    let denied = Fault::Error { status: 400, code: "AccessDeniedException" };
    let proxy = Proxy::start(
        upstream(),
        Box::new(move |op: &str, _: &str| if op == "TransactWriteItems" { denied } else { Fault::Pass }),
    )
    .await;
    let buyer = app.container().via(proxy.client());
    flush();

    let (status, body) = buyer.buy(&sale, "alice").await;

    assert_eq!((status, body["code"].as_str()), (500, Some("internal_error")), "{body}");
    assert_eq!(errors(&flush()), BTreeMap::from([("store".to_owned(), 1)]));
}
