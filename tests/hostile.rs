//! Generated hostile input through every function. The HTTP functions (purchase, status,
//! user-lookup, orders, queue): thousands of requests with arbitrary methods, bodies, sale, user
//! and order ids; none may panic, none may get a 5xx, every error is a documented problem code,
//! and nothing stored changes. The sweeper: scheduled events with arbitrary fields, through its
//! process; every one answered with a sweep report, and a hold that has not ended stays held. The
//! order-events function: stream batches of well-formed records with hostile values; every order
//! change announced exactly once with the values it carries, nothing else announced, no failure.

use std::time::Duration;

use flash_sale_testkit::Route;
use flash_sale_testkit::streams::FakeEventBridge;
use flash_sale_testkit::{SaleSpec, TestApp, TestBody, now_ms, request, sale, unique};
use local_lambda::RuntimeApi;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

use crate::process::Function;

const HOUR: i64 = 3_600_000;

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
    "admission_required",
    "admission_invalid",
    "not_yet_admitted",
    "order_not_found",
    "order_cancelled",
    "order_confirmed",
    "hold_expired",
    "queue_not_open",
    "no_waiting_room",
    "not_in_line",
];

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

fn target() -> impl Strategy<Value = (Route, String, String, String)> {
    let method = prop_oneof![
        Just("POST"),
        Just("GET"),
        Just("PUT"),
        Just("DELETE"),
        Just("PATCH"),
        Just("HEAD"),
        Just("OPTIONS")
    ];
    let route = proptest::sample::select(Route::ALL.to_vec());
    let id = prop_oneof![
        Just("hostile".to_owned()),
        Just("hostile-room".to_owned()),
        any::<String>(),
        "[A-Za-z0-9_#/.%-]{0,70}"
    ];
    let user = prop_oneof![any::<String>(), "[ -~]{0,140}", Just("01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned())];
    (route, method.prop_map(str::to_owned), id, user)
}

#[test]
fn thousands_of_generated_requests_get_only_documented_4xx() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let start = now_ms() + HOUR;
    // Before the start: valid purchases are refused from the cached configuration, so the run
    // exercises parsing and validation, not thousands of transactions. The room opens its line
    // later still: every join is refused as not open yet.
    let app = rt.block_on(TestApp::fresh()).at(start - 1).admission().tune(|t| t.sale_cache = Duration::from_secs(600));
    let s = sale("hostile", 10, 2, start, start + HOUR);
    rt.block_on(app.store().create_sale(&s, now_ms())).unwrap();
    let spec = SaleSpec::new().stock(5).window(start + 2 * HOUR, start + 3 * HOUR).room();
    let mut room = spec.build(now_ms());
    room.id = flash_sale::ids::SaleId::parse("hostile-room").unwrap();
    let seed = flash_sale::room::new_seed().unwrap().to_vec();
    room.room = Some(flash_sale::room::RoomConfig::new(room.shards, room.starts_at_ms, &seed));
    rt.block_on(app.store().create_sale_with_room(&room, &seed, now_ms())).unwrap();
    let before = (rt.block_on(app.stored(&s)), rt.block_on(app.stored(&room)));

    let mut runner = TestRunner::new(Config { cases: 3_000, failure_persistence: None, ..Config::default() });
    runner
        .run(&(target(), body()), |((route, method, id, user), body)| {
            let path = format!("/sales/{}/purchases", unique("p"));
            let params = [("saleId", id.as_str()), ("userId", user.as_str()), ("orderId", user.as_str())];
            let params = match route {
                Route::Lookup => &params[..2],
                Route::Orders => &[params[0], params[2]][..],
                Route::Queue if method == "GET" => &params[..2],
                _ => &params[..1],
            };
            let req = request(&method, &path, params, TestBody::Bytes(&body), None);
            let resp = rt.block_on(app.call(route, req));
            let status = resp.status_code;
            prop_assert!(status < 500, "{status} for {method} {route:?} {id:?}: {}", resp.body);
            let parsed: Value = serde_json::from_str(&resp.body).map_err(|e| TestCaseError::fail(e.to_string()))?;
            if status >= 400 {
                let code = parsed["code"].as_str().unwrap_or_default();
                prop_assert!(DOCUMENTED.contains(&code), "undocumented code {code:?} from {route:?}");
                prop_assert_eq!(resp.header("content-type").unwrap_or_default(), "application/problem+json");
            }
            Ok(())
        })
        .unwrap();
    let after = (rt.block_on(app.stored(&s)), rt.block_on(app.stored(&room)));
    assert_eq!(after, before, "stored state unchanged");
    assert!(rt.block_on(app.store().room_entries(&room.id)).unwrap().is_empty(), "nobody was put in line");
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A scheduled event (EventBridge's shape) with arbitrary values in its fields, or anything at all.
fn scheduled_event() -> impl Strategy<Value = Value> {
    let shaped =
        (json_value(), json_value(), json_value(), any::<String>()).prop_map(|(detail, resources, time, kind)| {
            json!({
                "version": "0", "id": kind, "detail-type": kind, "source": "aws.events", "account": "123456789012",
                "time": time, "region": "us-east-1", "resources": resources, "detail": detail,
            })
        });
    prop_oneof![3 => shaped, 1 => json_value()]
}

fn generated<T: std::fmt::Debug>(strategy: impl Strategy<Value = T>, n: usize) -> Vec<T> {
    let mut runner = TestRunner::deterministic();
    (0..n).map(|_| strategy.new_tree(&mut runner).expect("a value").current()).collect()
}

#[tokio::test]
async fn the_sweeper_process_answers_every_generated_scheduled_event_and_keeps_a_running_hold() {
    let app = TestApp::fresh().await;
    let sale = SaleSpec::new().stock(3).holds(600).create(&app).await;
    assert_eq!(app.buy(&sale, "holder").await.0, 201);
    let before = app.stored(&sale).await;

    let events = generated(scheduled_event(), 60);
    let api = RuntimeApi::start("sweeper").expect("runtime api");
    let mut function = Function::start("sweeper", &api, app.store().table());
    for e in &events {
        api.push(e.to_string());
    }
    assert!(api.wait_outcomes(events.len(), Duration::from_secs(120)), "{:?} {:?}", api.outcomes(), api.init_error());
    assert!(function.alive(), "the process is still running");
    for (outcome, event) in api.outcomes().iter().zip(&events) {
        assert_eq!(outcome.kind, "response", "{event}: {}", outcome.body);
        let report: Value = serde_json::from_str(&outcome.body).expect("a sweep report");
        assert_eq!((report["released"].as_u64(), &report["drawn"]), (Some(0), &json!([])), "{event}: {report}");
    }
    let after = app.stored(&sale).await;
    assert_eq!(after, before, "a hold that has not ended stays held");
    assert_eq!(after.1[0].status, flash_sale::order::OrderStatus::Reserved);
}

/// One stream record: either a purchase record's change (well formed, hostile values: the order
/// it must announce) or something that announces nothing.
fn stream_record() -> impl Strategy<Value = (Value, Option<Value>)> {
    let text = prop_oneof![any::<String>(), "[ -~]{0,80}"];
    let status = proptest::sample::select(vec!["reserved", "confirmed", "cancelled", "expired"]);
    let order = (text.clone(), text.clone(), text.clone(), status, 1u32..1_000, 0i64..4_000_000_000_000, any::<bool>())
        .prop_map(|(order, sale, user, status, version, at, hold)| {
            let mut image = json!({
                "pk": {"S": format!("SALE#{sale}#USER#{user}")}, "sk": {"S": flash_sale::keys::PURCHASE_SK},
                "saleId": {"S": sale}, "userId": {"S": user}, "orderId": {"S": order}, "status": {"S": status},
                "version": {"N": version.to_string()}, "purchasedAt": {"N": at.to_string()},
                "updatedAt": {"N": (at + 1).to_string()},
            });
            if hold {
                image["holdExpiresAt"] = json!({"N": (at + 60_000).to_string()});
            }
            let expected =
                json!({"orderId": order, "saleId": sale, "userId": user, "status": status, "version": version});
            (json!({"eventName": "MODIFY", "dynamodb": {"NewImage": image}}), Some(expected))
        });
    let nothing = prop_oneof![
        // Another item of the table.
        (text.clone(), any::<i64>()).prop_map(|(sale, n)| json!({"eventName": "INSERT", "dynamodb": {"NewImage": {
            "pk": {"S": format!("SALE#{sale}#STOCK#0")}, "sk": {"S": "STOCK"}, "remaining": {"N": n.to_string()}}}})),
        // A purchase record with a status no order has, or a version that is no number.
        (text.clone(), text.clone()).prop_map(|(status, version)| json!({"eventName": "MODIFY", "dynamodb": {"NewImage": {
            "sk": {"S": flash_sale::keys::PURCHASE_SK}, "orderId": {"S": "o"}, "saleId": {"S": "s"}, "userId": {"S": "u"},
            "status": {"S": format!("{status}?")}, "version": {"N": format!("v{version}")}, "purchasedAt": {"N": "1"}}}})),
        // A deletion; a record whose images are not maps.
        Just(json!({"eventName": "REMOVE", "dynamodb": {"OldImage": {"sk": {"S": "PURCHASE"}}}})),
        json_value().prop_map(|v| json!({"eventName": "MODIFY", "dynamodb": {"NewImage": v}})),
    ];
    prop_oneof![2 => order, 1 => nothing.prop_map(|r| (r, None))]
}

#[test]
fn generated_stream_batches_announce_each_order_change_once_and_nothing_else() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let app = rt.block_on(TestApp::fresh());
    let sale = rt.block_on(SaleSpec::new().stock(2).create(&app));
    let before = rt.block_on(app.stored(&sale));
    let bus = rt.block_on(FakeEventBridge::start());
    let batch = proptest::collection::vec(stream_record(), 0..25);
    let mut runner = TestRunner::new(Config { cases: 64, failure_persistence: None, ..Config::default() });
    runner
        .run(&batch, |records| {
            let seen = bus.accepted().len();
            let with_seq: Vec<Value> = records
                .iter()
                .enumerate()
                .map(|(i, (r, _))| {
                    let mut r = r.clone();
                    r["dynamodb"]["SequenceNumber"] = json!(format!("{:021}", i + 1));
                    r
                })
                .collect();
            let response = rt.block_on(order_events::publish(&bus.bus("orders"), &json!({ "Records": with_seq })));
            prop_assert!(response.batch_item_failures.is_empty(), "{response:?}");
            let published: Vec<(String, Value)> =
                bus.accepted().into_iter().skip(seen).map(|(t, detail, _, _)| (t, detail)).collect();
            let expected: Vec<&Value> = records.iter().filter_map(|(_, e)| e.as_ref()).collect();
            prop_assert_eq!(published.len(), expected.len(), "{:?}", published);
            for ((detail_type, detail), want) in published.iter().zip(expected) {
                for field in ["orderId", "saleId", "userId", "status", "version"] {
                    prop_assert_eq!(&detail[field], &want[field], "{}", field);
                }
                let status = want["status"].as_str().unwrap();
                prop_assert_eq!(detail_type.as_str(), format!("Order{}{}", status[..1].to_uppercase(), &status[1..]));
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(rt.block_on(app.stored(&sale)), before, "the table is only read from the stream, never written");
}
