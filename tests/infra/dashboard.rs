//! The dashboard charts the metrics the code records, with the dimensions it records them with.
//!
//! The metrics come from the crate itself: its outcome names from `telemetry::PURCHASE_OUTCOMES`,
//! the order statuses and stock-return reasons from `telemetry::ORDER_STATUSES` and
//! `STOCK_RETURN_REASONS`, and the EMF lines its recording functions write through its own
//! collector configuration.

use std::collections::BTreeSet;

use flash_sale::order::OrderStatus;
use flash_sale::telemetry::{self, NAMESPACE};
use integration_tests::template::template;
use serde_json::Value;

/// Every purchase outcome the code names.
fn outcomes() -> BTreeSet<&'static str> {
    telemetry::PURCHASE_OUTCOMES.iter().copied().collect()
}

/// (metric name, dimension names) of every metric in the EMF lines the code writes for one
/// purchase of each outcome and one status read.
fn recorded_metrics() -> BTreeSet<(String, Vec<String>)> {
    let collector = telemetry::metrics_builder().init().expect("install the EMF collector");
    telemetry::describe_metrics();
    for outcome in outcomes() {
        telemetry::record_purchase(outcome, 12.5, 1);
    }
    telemetry::record_stock("demo", 7);
    for outcome in telemetry::JOIN_OUTCOMES {
        telemetry::record_join(outcome);
    }
    for reason in telemetry::ADMISSION_REFUSALS {
        telemetry::record_admission_refusal(reason);
    }
    telemetry::record_admission_step("demo", 3, 40, 5);
    // Each order status entered, the item given back where the status gives it back.
    for status in OrderStatus::ALL {
        telemetry::record_order_change(status, !status.is_live());
    }
    for kind in telemetry::ERROR_KINDS {
        telemetry::record_error(kind);
    }
    let mut out = Vec::new();
    collector.flush(&mut out).expect("flush EMF");
    let mut found = BTreeSet::new();
    for line in String::from_utf8(out).expect("UTF-8").lines() {
        let doc: Value = serde_json::from_str(line).expect("an EMF line is JSON");
        for directive in doc["_aws"]["CloudWatchMetrics"].as_array().expect("CloudWatchMetrics") {
            assert_eq!(directive["Namespace"], NAMESPACE, "{line}");
            for dims in directive["Dimensions"].as_array().expect("Dimensions") {
                let dims: Vec<String> = dims
                    .as_array()
                    .expect("dimension set")
                    .iter()
                    .map(|d| d.as_str().expect("name").to_owned())
                    .collect();
                for metric in directive["Metrics"].as_array().expect("Metrics") {
                    found.insert((metric["Name"].as_str().expect("Name").to_owned(), dims.clone()));
                }
            }
        }
    }
    found
}

#[test]
fn dashboard_charts_the_metrics_the_code_records() {
    let t = template();
    let dashboard = t["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("DashboardBody is an Fn::Sub string")
        .to_owned();
    let ns = NAMESPACE;

    // Every outcome the code names has its own line on the outcomes chart.
    let outcomes = outcomes();
    assert!(outcomes.len() >= 6, "expected the six purchase outcomes, found {outcomes:?}");
    for outcome in &outcomes {
        assert!(
            dashboard.contains(&format!("[\"{ns}\", \"Purchases\", \"outcome\", \"{outcome}\"")),
            "the dashboard does not chart outcome {outcome}"
        );
    }

    // Every metric the code records is charted with the dimensions it is recorded with (a metric
    // with other dimensions is another metric to CloudWatch, and the chart would stay empty).
    let metrics = recorded_metrics();
    let names: BTreeSet<&str> = metrics.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "Purchases",
            "PurchaseLatency",
            "PurchaseRetries",
            "RemainingStock",
            "QueueJoins",
            "AdmissionRefusals",
            "Admissions",
            "QueueLength",
            "AdmittedNotBought",
            "OrderChanges",
            "StockReturned",
            "Errors",
        ]),
        "the metrics the code records"
    );

    // Every order status and every reason an item goes back to stock has its own line.
    let statuses: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(telemetry::ORDER_STATUSES, statuses.as_slice(), "ORDER_STATUSES are the order statuses");
    for (metric, dimension, values) in [
        ("OrderChanges", "status", telemetry::ORDER_STATUSES),
        ("StockReturned", "reason", telemetry::STOCK_RETURN_REASONS),
        ("Errors", "kind", telemetry::ERROR_KINDS),
    ] {
        assert!(
            metrics.contains(&(metric.to_owned(), vec![dimension.to_owned()])),
            "{metric} is recorded with the dimension {dimension}"
        );
        for value in values {
            assert!(
                dashboard.contains(&format!("[\"{ns}\", \"{metric}\", \"{dimension}\", \"{value}\"")),
                "the dashboard does not chart {metric} for {dimension} {value}"
            );
        }
    }
    let returned: Vec<&str> = OrderStatus::ALL.iter().filter(|s| !s.is_live()).map(|s| s.as_str()).collect();
    assert_eq!(telemetry::STOCK_RETURN_REASONS, returned.as_slice(), "items go back on cancellation and expiry");
    for (name, labels) in &metrics {
        let mut explicit = format!("[\"{ns}\", \"{name}\"");
        for label in labels {
            explicit.push_str(&format!(", \"{label}\", "));
        }
        let explicit_found = if labels.is_empty() {
            dashboard.contains(&format!("{explicit}, {{")) || dashboard.contains(&format!("{explicit}]"))
        } else {
            dashboard.contains(&explicit)
        };
        let schema: String = labels.iter().map(|l| format!(",{l}")).collect();
        let search = format!("{{{ns}{schema}}} MetricName=\\\"{name}\\\"");
        assert!(
            explicit_found || dashboard.contains(&search),
            "the dashboard does not chart {ns}/{name} with dimensions {labels:?}"
        );
    }
}

/// Every function of the template (the queue function included) is charted for errors, throttles
/// and duration, and has its errors and throttles alarms, which the alarm widget shows.
#[test]
fn every_function_is_charted_and_alarmed() {
    let t = template();
    let dashboard = t["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("DashboardBody is an Fn::Sub string")
        .to_owned();
    let resources = t["Resources"].as_object().expect("Resources");
    let functions = integration_tests::template::functions(&t);
    assert!(functions.contains_key("queue"), "the queue function is deployed");
    for (binary, (id, _)) in &functions {
        for metric in ["Errors", "Throttles", "Duration"] {
            assert!(
                dashboard.contains(&format!("[\"AWS/Lambda\", \"{metric}\", \"FunctionName\", \"${{{id}}}\"")),
                "the dashboard does not chart {metric} of {binary} ({id})"
            );
        }
        for metric in ["Errors", "Throttles"] {
            let alarms: Vec<&String> = resources
                .iter()
                .filter(|(_, r)| {
                    r["Type"] == "AWS::CloudWatch::Alarm"
                        && r["Properties"]["Namespace"] == "AWS/Lambda"
                        && r["Properties"]["MetricName"] == metric
                        && r["Properties"]["Dimensions"]
                            == serde_json::json!([{"Name": "FunctionName", "Value": {"Ref": id}}])
                })
                .map(|(alarm, _)| alarm)
                .collect();
            assert_eq!(alarms.len(), 1, "{binary} ({id}) needs one {metric} alarm, found {alarms:?}");
            let alarm = alarms[0];
            assert!(
                dashboard.contains(&format!("\"${{{alarm}.Arn}}\"")),
                "the dashboard's alarm widget does not show {alarm}"
            );
            let props = &resources[alarm.as_str()]["Properties"];
            assert_eq!((props["Threshold"].as_f64(), props["Period"].as_u64()), (Some(0.0), Some(60)), "{alarm}");
            assert_eq!(
                props["AlarmActions"],
                serde_json::json!({"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}),
                "{alarm}"
            );
        }
    }
}

/// The `app-errors` alarm sums `Errors` over every kind the code counts, with the dimension the
/// code records it with (`kind` alone), and the dashboard's alarm widget shows it.
#[test]
fn the_app_errors_alarm_sums_every_error_kind_the_code_counts() {
    let t = template();
    let alarm = &t["Resources"]["AppErrorsAlarm"]["Properties"];
    let metrics = alarm["Metrics"].as_array().expect("AppErrorsAlarm has Metrics");
    let mut kinds = BTreeSet::new();
    for m in metrics.iter().filter(|m| m.get("MetricStat").is_some()) {
        let metric = &m["MetricStat"]["Metric"];
        assert_eq!((metric["Namespace"].as_str(), metric["MetricName"].as_str()), (Some(NAMESPACE), Some("Errors")));
        let dims = metric["Dimensions"].as_array().expect("Dimensions");
        assert_eq!(dims.len(), 1, "{m}");
        assert_eq!(dims[0]["Name"], "kind", "{m}");
        let kind = dims[0]["Value"].as_str().expect("kind").to_owned();
        assert_eq!(m["Id"].as_str(), Some(kind.as_str()), "{m}");
        assert_eq!((m["MetricStat"]["Period"].as_u64(), m["MetricStat"]["Stat"].as_str()), (Some(60), Some("Sum")));
        kinds.insert(kind);
    }
    let expected: BTreeSet<String> = telemetry::ERROR_KINDS.iter().map(|k| k.to_string()).collect();
    assert_eq!(kinds, expected, "one metric per kind the code counts");
    let returned: Vec<&Value> = metrics.iter().filter(|m| m["ReturnData"] == true).collect();
    assert_eq!(returned.len(), 1);
    let expression = returned[0]["Expression"].as_str().expect("an expression");
    for kind in &expected {
        assert!(expression.contains(&format!("FILL({kind}, 0)")), "{expression} leaves out {kind}");
    }
    assert_eq!(
        (alarm["Threshold"].as_f64(), alarm["ComparisonOperator"].as_str()),
        (Some(0.0), Some("GreaterThanThreshold"))
    );
    let dashboard = t["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"].as_str().expect("body");
    assert!(dashboard.contains("\"${AppErrorsAlarm.Arn}\""), "the alarm widget shows the alarm");
}
