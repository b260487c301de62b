//! Each purchase attempt writes exactly one CloudWatch EMF line carrying its outcome; a purchase
//! that sells an item writes one more, the new order's status (`OrderChanges`): at most one per
//! item of stock.

use flash_sale::telemetry;
use flash_sale_testkit::{TestApp, active_sale, fresh_store, purchase_request, user_body};
use serde_json::{Value, json};

#[tokio::test]
async fn each_purchase_emits_one_emf_line_with_its_outcome_dimension() {
    let metrics = telemetry::metrics_builder().init().expect("install the recorder");
    telemetry::describe_metrics();
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
        let mut out = Vec::new();
        metrics.flush(&mut out).expect("flush");
        let lines: Vec<Value> =
            String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
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
