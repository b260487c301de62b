//! Each function's IAM actions are exactly the DynamoDB calls its handler really makes: the
//! handlers run through every documented outcome against DynamoDB Local behind a recording proxy,
//! and the recorded operations (a transaction counts as the actions of its items) are compared
//! with the actions `infra/template.yaml` grants the function. Each recorded request is also put
//! to the function's IAM statements with the partition keys it really touched
//! (`dynamodb:LeadingKeys`), so every key pattern admits what the code does.
//!
//! The waiting room runs on a manual clock, so that the queue and status functions each really
//! join, run the pre-queue draw at opening and advance the admitted range. So do orders with
//! holds, so that holds really end: released by a buyer who finds no stock and by the sweeper.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use flash_sale::clock::ManualClock;
use flash_sale::config::Tuning;
use flash_sale::http::{ApiRequest, ApiResponse};
use flash_sale::store::Store;
use flash_sale_testkit::proxy::{Fault, Recording};
use flash_sale_testkit::{
    SaleSpec, TestApp, TestBody, active_sale, fresh_store, now_ms, purchase_request, req, request, room_sale, sale,
    user_body,
};
use integration_tests::template::{iam_actions, iam_allows, policy_statements, template};
use serde_json::{Value, json};

/// One request as IAM authorizes it: an action, on the table or one of its indexes, touching
/// these partition keys.
#[derive(Debug, Clone)]
struct Call {
    action: String,
    index: Option<String>,
    keys: Vec<String>,
}

fn pk_of(item: &Value, what: &str) -> String {
    item["pk"]["S"].as_str().unwrap_or_else(|| panic!("{what} without a string pk: {item}")).to_owned()
}

/// The value an equality on `attribute` in a key condition compares with (`pk = :pk AND ...`).
fn key_condition_value(doc: &Value, attribute: &str) -> String {
    let expression = doc["KeyConditionExpression"].as_str().expect("a Query has a KeyConditionExpression");
    let placeholder = expression
        .split(" AND ")
        .find_map(|part| part.trim().strip_prefix(&format!("{attribute} = ")))
        .unwrap_or_else(|| panic!("no `{attribute} = :value` in the key condition `{expression}`"));
    doc["ExpressionAttributeValues"][placeholder.trim()]["S"]
        .as_str()
        .unwrap_or_else(|| panic!("{placeholder} is not a string value: {doc}"))
        .to_owned()
}

/// Index name → the attribute of its partition key, as the template's table declares them: what
/// `dynamodb:LeadingKeys` holds for a Query on that index.
fn index_partition_keys() -> &'static BTreeMap<String, String> {
    static KEYS: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let t = template();
        let gsis = t["Resources"]["Table"]["Properties"]["GlobalSecondaryIndexes"].as_array().cloned();
        gsis.expect("the table's GlobalSecondaryIndexes")
            .iter()
            .map(|g| {
                let name = g["IndexName"].as_str().expect("IndexName").to_owned();
                let hash = g["KeySchema"].as_array().expect("KeySchema").iter().find(|k| k["KeyType"] == "HASH");
                let attribute = hash.and_then(|k| k["AttributeName"].as_str()).expect("a HASH key").to_owned();
                (name, attribute)
            })
            .collect()
    })
}

/// A response's JSON body.
fn json_body(resp: &ApiResponse) -> Value {
    serde_json::from_str(&resp.body).expect("a JSON body")
}

/// The requests IAM authorizes for one recorded DynamoDB operation (a transaction: one per item).
fn calls_of(op: &str, body: &str) -> Vec<Call> {
    let doc: Value = serde_json::from_str(body).expect("a DynamoDB request body is JSON");
    let call = |action: &str, keys: Vec<String>| Call { action: format!("dynamodb:{action}"), index: None, keys };
    match op {
        "GetItem" | "UpdateItem" | "DeleteItem" => vec![call(op, vec![pk_of(&doc["Key"], op)])],
        "PutItem" => vec![call(op, vec![pk_of(&doc["Item"], op)])],
        "BatchGetItem" => {
            let tables = doc["RequestItems"].as_object().expect("RequestItems");
            let keys = tables.values().flat_map(|t| t["Keys"].as_array().expect("Keys").iter().map(|k| pk_of(k, op)));
            vec![call(op, keys.collect())]
        }
        "Query" => match doc["IndexName"].as_str() {
            // An index: the value of its own partition key (infra/template.yaml, the table).
            Some(index) => {
                let attribute = index_partition_keys()
                    .get(index)
                    .unwrap_or_else(|| panic!("the code queries the index {index}, which the template's table lacks"));
                vec![Call {
                    action: "dynamodb:Query".into(),
                    index: Some(index.to_owned()),
                    keys: vec![key_condition_value(&doc, attribute)],
                }]
            }
            None => vec![call(op, vec![key_condition_value(&doc, "pk")])],
        },
        "TransactWriteItems" => doc["TransactItems"]
            .as_array()
            .expect("TransactItems")
            .iter()
            .flat_map(|item| item.as_object().expect("a transaction item").iter())
            .map(|(kind, part)| match kind.as_str() {
                "Put" => call("PutItem", vec![pk_of(&part["Item"], "a transaction's Put")]),
                "ConditionCheck" => call("ConditionCheckItem", vec![pk_of(&part["Key"], "a ConditionCheck")]),
                other => call(&format!("{other}Item"), vec![pk_of(&part["Key"], other)]),
            })
            .collect(),
        other => panic!("the recorder does not know {other}: teach it which keys it touches"),
    }
}

/// The recording proxy, and the IAM requests of what it recorded.
struct Recorder {
    recording: Recording,
    /// While set, every transaction is recorded and then answered with a `TransactionConflict`.
    conflicts: Arc<AtomicBool>,
}

impl Recorder {
    async fn start() -> Self {
        let conflicts = Arc::new(AtomicBool::new(false));
        let conflicting = conflicts.clone();
        let plan = Box::new(move |op: &str, _: &str| {
            if op == "TransactWriteItems" && conflicting.load(Ordering::SeqCst) { Fault::Conflict } else { Fault::Pass }
        });
        Self { recording: Recording::start(plan).await, conflicts }
    }

    fn set_conflicts(&self, on: bool) {
        self.conflicts.store(on, Ordering::SeqCst);
    }

    fn store(&self, table: &str) -> Store {
        Store::new(self.recording.proxy.client(), table)
    }

    /// The requests recorded since the last take.
    fn take_calls(&self) -> Vec<Call> {
        self.recording.take().iter().flat_map(|(op, body)| calls_of(op, body)).collect()
    }

    /// The actions of the requests recorded since the last take, each checked against the
    /// function's IAM statements with the keys it touched.
    fn take_checked(&self, function: &str) -> BTreeSet<String> {
        let calls = self.take_calls();
        let statements = policy_statements(&template(), function);
        for c in &calls {
            let resource = match &c.index {
                None => json!({"Fn::GetAtt": ["Table", "Arn"]}),
                Some(index) => json!({"Fn::Sub": format!("${{Table.Arn}}/index/{index}")}),
            };
            assert!(
                iam_allows(&statements, &c.action, &resource, &c.keys),
                "{function}: the template refuses {} on {} with keys {:?}, which the code sends",
                c.action,
                c.index.as_deref().unwrap_or("the table"),
                c.keys
            );
        }
        calls.into_iter().map(|c| c.action).collect()
    }
}

fn granted(function: &str) -> BTreeSet<String> {
    iam_actions(function)
}

/// The actions granted to `function` but `left_out`, which a test samples elsewhere.
fn granted_but(function: &str, left_out: &[&str]) -> BTreeSet<String> {
    let mut actions = granted(function);
    for action in left_out {
        assert!(actions.remove(*action), "{function} is not granted {action}");
    }
    actions
}

/// What only a sale with holds makes a function do (sampled by
/// `the_order_functions_are_granted_exactly_the_dynamodb_actions_they_make`): a buyer who finds no
/// stock looks for ended holds (the `holds` index); the cancellation of a reserved order.
const HOLDS_ONLY_PURCHASE: &str = "dynamodb:Query";
const HOLDS_ONLY_LOOKUP: &str = "dynamodb:UpdateItem";
/// The purchase's consistent stock read after conflicts kept shards from being tried.
const AFTER_CONFLICTS_PURCHASE: &str = "dynamodb:BatchGetItem";

#[tokio::test]
async fn each_function_is_granted_exactly_the_dynamodb_actions_its_handler_makes() {
    let store = fresh_store().await;
    let open = active_sale(&store, 2, 1).await;
    let now = now_ms();
    let upcoming = sale(&flash_sale_testkit::unique("up"), 5, 1, now + 3_600_000, now + 7_200_000);
    store.create_sale(&upcoming, now).await.unwrap();
    let ended = sale(&flash_sale_testkit::unique("end"), 5, 1, now - 7_200_000, now - 3_600_000);
    store.create_sale(&ended, now - 7_200_000).await.unwrap();
    let contended = active_sale(&store, 2, 2).await;
    let recorder = Recorder::start().await;
    let watched = recorder.store(store.table());
    // The product's hints, so the refusals they give (and the read behind them) happen too.
    let hints =
        Tuning { backoff_base: Duration::from_millis(1), backoff_cap: Duration::from_millis(5), ..Tuning::default() };
    let app = TestApp::on(&watched).tune(|t| *t = hints);
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
    // Every transaction conflicting: the shards' stock read decides (one item left: 503).
    recorder.set_conflicts(true);
    let conflicted =
        flash_sale::http::purchase_function(&app, purchase_request(contended.id.as_str(), &user_body("f")));
    assert_eq!(conflicted.await.status_code, 503, "stock is left behind the conflicts");
    recorder.set_conflicts(false);
    assert_eq!(
        recorder.take_checked("purchase"),
        granted_but("purchase", &[HOLDS_ONLY_PURCHASE]),
        "purchase: recorded calls (left), granted actions but those of holds (right)"
    );

    // status: health, the list, one sale, an unknown sale.
    let status_requests = [
        req::get("/health", &[]),
        req::get("/sales", &[]),
        req::get(&format!("/sales/{id}"), &[("saleId", id)]),
        req::get("/sales/nope", &[("saleId", "nope")]),
    ];
    let mut statuses = Vec::new();
    for req in status_requests {
        statuses.push(flash_sale::http::status_function(&app, req).await.status_code);
    }
    assert_eq!(statuses, vec![200, 200, 200, 404]);
    // Plain sales only read; the room's writes and the draw's Query are sampled by the waiting-room
    // test below, which holds the status function to its grants exactly.
    let plain_status = recorder.take_checked("status");
    let reads = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"];
    assert_eq!(plain_status, reads.iter().map(|a| a.to_string()).collect(), "status on plain sales");

    // user-lookup: found and not found.
    let mut statuses = Vec::new();
    for user in ["a", "nobody"] {
        let req = req::get(&format!("/sales/{id}/purchases/{user}"), &[("saleId", id), ("userId", user)]);
        statuses.push(flash_sale::http::user_lookup_function(&app, req).await.status_code);
    }
    assert_eq!(statuses, vec![200, 404]);
    assert_eq!(
        recorder.take_checked("user-lookup"),
        granted_but("user-lookup", &[HOLDS_ONLY_LOOKUP]),
        "user-lookup: recorded calls (left), granted actions but the cancellation's (right)"
    );
}

const HOUR: i64 = 3_600_000;

/// The waiting room: the queue function joins (pre-queue and after opening), runs the draw,
/// advances the admitted range and signs an admission; the status function, on a room of its
/// own, runs the draw and advances admission too; the purchase function buys with the token.
#[tokio::test]
async fn the_waiting_room_functions_are_granted_exactly_the_dynamodb_actions_they_make() {
    let store = fresh_store().await;
    let start = now_ms() + HOUR;
    let (by_queue, _) = room_sale(&store, 10, 2, start, start + HOUR).await;
    let (by_status, _) = room_sale(&store, 10, 2, start, start + HOUR).await;
    let plain = active_sale(&store, 5, 1).await;
    let recorder = Recorder::start().await;
    let watched = recorder.store(store.table());
    let clock = ManualClock::at(start - 10 * 60_000);
    // One app per function, as each runs in its own containers (with its own room cache).
    let queue_app = TestApp::on(&watched).clocked(&clock).admission();
    let status_app = TestApp::on(&watched).clocked(&clock).admission();
    let purchase_app = TestApp::on(&watched).clocked(&clock).admission();
    let (q, st) = (by_queue.id.as_str(), by_status.id.as_str());

    // queue, before opening: pre-queue joins on both rooms (one joins again), a poll, refusals.
    let mut states = Vec::new();
    for (sale, user) in [(q, "early"), (q, "early"), (st, "early")] {
        let resp = flash_sale::http::queue_function(&queue_app, req::join(sale, &user_body(user), None)).await;
        states.push((resp.status_code, json_body(&resp)["state"].clone()));
    }
    assert_eq!(states, vec![(200, json!("waiting")); 3]);
    let refusals = [
        flash_sale::http::queue_function(&queue_app, req::position(q, "nobody", None)).await.status_code,
        flash_sale::http::queue_function(&queue_app, req::join(plain.id.as_str(), &user_body("x"), None))
            .await
            .status_code,
        flash_sale::http::queue_function(&queue_app, req::join("no-such-sale", &user_body("x"), None))
            .await
            .status_code,
    ];
    assert_eq!(refusals, [404, 404, 404]);
    // At opening: the poll runs the draw; a late joiner takes a ticket; a second later the early
    // joiner is admitted and gets a token.
    clock.set(start + flash_sale::room::DRAW_GRACE_MS);
    let drawing = json_body(&flash_sale::http::queue_function(&queue_app, req::position(q, "early", None)).await);
    assert_eq!(drawing["position"], 1, "the poll that draws answers with the drawn place: {drawing}");
    let drawn = json_body(&flash_sale::http::queue_function(&queue_app, req::position(q, "early", None)).await);
    assert_eq!(drawn["position"], 1, "the draw placed the only early joiner: {drawn}");
    let late = json_body(&flash_sale::http::queue_function(&queue_app, req::join(q, &user_body("late"), None)).await);
    assert_eq!(late["position"], 2, "{late}");
    clock.advance(2_000);
    let admitted = json_body(&flash_sale::http::queue_function(&queue_app, req::position(q, "early", None)).await);
    assert_eq!(admitted["state"], "admitted", "{admitted}");
    let token = admitted["admissionToken"].as_str().expect("an admission token").to_owned();
    assert_eq!(
        recorder.take_checked("queue"),
        granted("queue"),
        "queue: recorded calls (left), granted actions (right)"
    );

    // purchase on a room sale: a refusal without a token, then a purchase with it.
    let refused = flash_sale::http::purchase_function(&purchase_app, purchase_request(q, &user_body("early"))).await;
    assert_eq!(json_body(&refused)["code"], "admission_required");
    let with_token = json!({"userId": "early", "admissionToken": token}).to_string();
    let bought = flash_sale::http::purchase_function(&purchase_app, purchase_request(q, &with_token)).await;
    assert_eq!(bought.status_code, 201, "{}", bought.body);
    assert_eq!(
        recorder.take_checked("purchase"),
        granted_but("purchase", &[HOLDS_ONLY_PURCHASE, AFTER_CONFLICTS_PURCHASE]),
        "purchase on a room sale"
    );

    // status on its own room: the sale and the list after opening (the draw, the revealed seed),
    // then a second later the admission step.
    let sale_view = |id: &str| req::get(&format!("/sales/{id}"), &[("saleId", id)]);
    let view = json_body(&flash_sale::http::status_function(&status_app, sale_view(st)).await);
    assert_eq!(view["queue"]["state"], "admitting", "the status function ran the draw: {view}");
    assert!(view["queue"]["drawSeed"].is_string(), "{view}");
    clock.advance(2_000);
    let view = json_body(&flash_sale::http::status_function(&status_app, sale_view(st)).await);
    assert_eq!(view["queue"]["admittedThrough"], 1, "the status function advanced admission: {view}");
    let mut statuses = Vec::new();
    for req in [req::get("/sales", &[]), req::get("/health", &[]), sale_view("nope")] {
        statuses.push(flash_sale::http::status_function(&status_app, req).await.status_code);
    }
    assert_eq!(statuses, vec![200, 200, 404]);
    assert_eq!(
        recorder.take_checked("status"),
        granted("status"),
        "status: recorded calls (left), granted actions (right)"
    );
}

fn lookup_or_cancel(method: &str, sale: &str, user: &str) -> ApiRequest {
    let path = format!("/sales/{sale}/purchases/{user}");
    request(method, &path, &[("saleId", sale), ("userId", user)], TestBody::None, None)
}

/// Orders with holds, on a manual clock: purchases that reserve, a cancellation and look-ups
/// (user-lookup), the payment backend's confirmations (orders), a buyer who finds no stock and
/// releases an ended hold (purchase), and the scheduled run (sweeper: a sweep, and the draw of a
/// pre-queue no request drew), each held to its grants exactly.
#[tokio::test]
async fn the_order_functions_are_granted_exactly_the_dynamodb_actions_they_make() {
    let store = fresh_store().await;
    let start = now_ms();
    let (paid, ends, swept) = (
        SaleSpec::new().stock(2).holds(60).create_in(&store, start).await.0,
        SaleSpec::new().stock(1).holds(60).create_in(&store, start).await.0,
        SaleSpec::new().stock(2).holds(60).create_in(&store, start).await.0,
    );
    // A waiting room opening in five minutes, with people in its pre-queue.
    let (room, _) = room_sale(&store, 10, 2, start + 300_000, start + HOUR).await;
    let recorder = Recorder::start().await;
    let watched = recorder.store(store.table());
    let clock = ManualClock::at(start);
    // One app per function, as each runs in its own containers.
    let purchase_app = TestApp::on(&watched).clocked(&clock);
    let lookup_app = TestApp::on(&watched).clocked(&clock);
    let orders_app = TestApp::on(&watched).clocked(&clock);
    let sweeper_app = TestApp::on(&watched).clocked(&clock);
    let buy = |sale: &str, user: &str| {
        let req = purchase_request(sale, &user_body(user));
        let app = &purchase_app;
        async move { json_body(&flash_sale::http::purchase_function(app, req).await) }
    };

    let queue_app = TestApp::on(&watched).clocked(&clock).admission();
    for user in ["early-1", "early-2"] {
        let joined =
            flash_sale::http::queue_function(&queue_app, req::join(room.id.as_str(), &user_body(user), None)).await;
        assert_eq!(json_body(&joined)["state"], "waiting", "{}", joined.body);
    }
    recorder.take_calls();

    // purchase: two reservations, then one on each of the other sales.
    let mut orders = BTreeMap::new();
    for (sale, user) in [(&paid, "alice"), (&paid, "bob"), (&ends, "carol"), (&swept, "erin"), (&swept, "frank")] {
        let order = buy(sale.id.as_str(), user).await;
        assert_eq!(order["status"], "reserved", "{order}");
        orders.insert(user, order["orderId"].as_str().expect("orderId").to_owned());
    }
    recorder.take_calls();

    // user-lookup: alice cancels (then again, answered as it is), bob's order is looked up, nobody
    // has an order to cancel.
    let p = paid.id.as_str();
    let mut answers = Vec::new();
    for (method, user) in [("DELETE", "alice"), ("DELETE", "alice"), ("GET", "bob"), ("DELETE", "nobody")] {
        let resp = flash_sale::http::user_lookup_function(&lookup_app, lookup_or_cancel(method, p, user)).await;
        let answer = json_body(&resp);
        answers.push((
            resp.status_code,
            if resp.status_code == 200 { answer["status"].clone() } else { answer["code"].clone() },
        ));
    }
    assert_eq!(
        answers,
        vec![
            (200, json!("cancelled")),
            (200, json!("cancelled")),
            (200, json!("reserved")),
            (404, json!("purchase_not_found"))
        ]
    );
    assert_eq!(
        recorder.take_checked("user-lookup"),
        granted("user-lookup"),
        "user-lookup: recorded calls (left), granted actions (right)"
    );

    // orders: bob's order confirmed (twice), alice's cancelled one refused, an unknown order.
    let unknown = ulid::Ulid::from_parts(u64::try_from(start).unwrap() - HOUR as u64, 7).to_string();
    let mut codes = Vec::new();
    for order in [&orders["bob"], &orders["bob"], &orders["alice"], &unknown] {
        let resp = flash_sale::http::orders_function(&orders_app, req::confirm("POST", p, order, TestBody::None)).await;
        let answer = json_body(&resp);
        codes.push((resp.status_code, answer["code"].as_str().or(answer["status"].as_str()).unwrap_or("").to_owned()));
    }
    let expected = [(200, "confirmed"), (200, "confirmed"), (409, "order_cancelled"), (404, "order_not_found")];
    assert_eq!(codes, expected.map(|(s, c)| (s, c.to_owned())));
    assert_eq!(
        recorder.take_checked("orders"),
        granted("orders"),
        "orders: recorded calls (left), granted actions (right)"
    );
    // A confirmed order stays: cancelling it is refused (reads only).
    let refused = flash_sale::http::user_lookup_function(&lookup_app, lookup_or_cancel("DELETE", p, "bob")).await;
    assert_eq!(json_body(&refused)["code"], "order_confirmed");
    recorder.take_checked("user-lookup");

    // The holds end. purchase: dave finds no stock on `ends` and releases carol's ended hold to
    // buy it (the index may lag the table for a moment: try again, bounded).
    clock.advance(61_000);
    let e = ends.id.as_str();
    let mut dave = Value::Null;
    for _ in 0..50 {
        dave = buy(e, "dave").await;
        if dave["status"] == "reserved" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        clock.advance(1);
    }
    assert_eq!(dave["status"], "reserved", "dave bought the released item: {dave}");
    assert_eq!(
        recorder.take_checked("purchase"),
        granted_but("purchase", &[AFTER_CONFLICTS_PURCHASE]),
        "purchase with holds: recorded calls (left), granted actions but the read after conflicts (right)"
    );

    // sweeper: erin's and frank's ended holds go back on sale.
    let mut released = 0;
    for _ in 0..50 {
        released += sweeper_app.sweep(100, Duration::from_secs(60)).await.expect("sweep").released;
        if released >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(released, 2, "the sweep released erin's and frank's holds");
    // And the room opens: no request drew its pre-queue, so the scheduled run does.
    clock.set(start + 300_000 + flash_sale::room::DRAW_GRACE_MS + 1_000);
    assert_eq!(sweeper_app.draw_due_rooms().await.expect("draw"), vec![room.id.to_string()]);
    assert_eq!(
        recorder.take_checked("sweeper"),
        granted("sweeper"),
        "sweeper: recorded calls (left), granted actions (right)"
    );
}
