//! Least privilege by key: each function's IAM statements, evaluated the way IAM evaluates them,
//! against partition keys made by the crate's own key functions (`flash_sale::keys`).
//!
//! IAM allows a request when some Allow statement matches it and no Deny statement does. A
//! statement matches when its action and resource do and every condition operator in it holds.
//! `dynamodb:LeadingKeys` is the set of partition keys a request touches (one for GetItem, one per
//! key for BatchGetItem, the index's partition key value for a Query on an index).

use std::collections::BTreeSet;

use flash_sale::keys::{
    HEALTH_PK, HOLD_LANES, entrants_pk, hold_index_pk, lane_pk, places_pk, purchase_pk, queue_pk, sale_pk, shard_pk,
};
use flash_sale::keys::{HOLDS_INDEX, ORDERS_INDEX, SALES_INDEX};
use flash_sale::room::DEFAULT_LANES;
use flash_sale::sale::MAX_SHARDS;
use flash_sale::store::Store;
use integration_tests::template::{functions, iam_actions, iam_allows, policy_statements, template};
use serde_json::{Value, json};

use crate::common::{set, strings, wildcard_match};
use crate::fake_dynamodb::FakeDynamoDb;

/// Where a request goes: the table, or one of its indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum On {
    Table,
    Index(&'static str),
}

/// The table and each of its indexes.
const RESOURCES: [On; 4] = [On::Table, On::Index(SALES_INDEX), On::Index(ORDERS_INDEX), On::Index(HOLDS_INDEX)];

impl On {
    fn arn(self) -> Value {
        match self {
            On::Table => json!({"Fn::GetAtt": ["Table", "Arn"]}),
            On::Index(name) => json!({"Fn::Sub": format!("${{Table.Arn}}/index/{name}")}),
        }
    }
}

/// IAM's decision for one request of a function's role (`integration_tests::template::iam_allows`).
fn allowed(statements: &[Value], action: &str, on: On, keys: &[String]) -> bool {
    iam_allows(statements, action, &on.arn(), keys)
}

/// User ids are opaque: anything, including the separators of other keys.
const AWKWARD_USERS: &[&str] = &[
    "alice",
    "x#STOCK#1",
    "#STOCK#0",
    "a#USER#b",
    "USER#b",
    "x#QUEUE#1",
    "QUEUE#y",
    "#PRE#0",
    "x#PLACES",
    "#PLACES",
    "x#HOLDS#1",
    "HOLDS#0",
    "x#ENTRANTS",
    "#ENTRANTS",
    "SALE#demo",
    "*",
    "?",
    "HEALTH",
    "META",
    "bob smith",
    "01ARZ3NDEKTSV4RRFFQ69G5FAV",
];
const SALES: &[&str] = &["demo", "drop_42-B", "USER", "STOCK", "QUEUE", "PRE", "PLACES", "HOLDS", "ENTRANTS", "a"];

fn sales() -> Vec<String> {
    SALES.iter().map(|s| s.to_string()).chain(["s".repeat(64)]).collect()
}
fn sale_keys() -> Vec<String> {
    sales().iter().map(|s| sale_pk(s)).collect()
}
fn shard_keys() -> Vec<String> {
    sales().iter().flat_map(|s| [0, 1, MAX_SHARDS - 1].map(|n| shard_pk(s, n))).collect()
}
fn purchase_keys() -> Vec<String> {
    sales().iter().flat_map(|s| AWKWARD_USERS.iter().map(move |u| purchase_pk(s, u))).collect()
}
fn places_keys() -> Vec<String> {
    sales().iter().map(|s| places_pk(s)).collect()
}
fn lane_keys() -> Vec<String> {
    sales().iter().flat_map(|s| [0, 1, DEFAULT_LANES - 1, 999].map(|n| lane_pk(s, n))).collect()
}
fn queue_keys() -> Vec<String> {
    sales().iter().flat_map(|s| AWKWARD_USERS.iter().map(move |u| queue_pk(s, u))).collect()
}
fn entrants_keys() -> Vec<String> {
    sales().iter().map(|s| entrants_pk(s)).collect()
}
/// The `holds` index's partitions (`holdKey`).
fn hold_keys() -> Vec<String> {
    sales().iter().flat_map(|s| [0, 1, HOLD_LANES - 1, 999].map(|n| hold_index_pk(s, n))).collect()
}
/// The `orders` index's partitions: order ids as the purchase makes them (ULIDs), the smallest and
/// the largest among them.
fn order_ids() -> Vec<String> {
    let made = [(1_795_000_000_000, 42), (1_800_000_000_000, u128::MAX >> 48), (1, 0)];
    let mut ids: Vec<String> = made.iter().map(|(ms, r)| ulid::Ulid::from_parts(*ms, *r).to_string()).collect();
    ids.extend([ulid::Ulid::nil().to_string(), ulid::Ulid::from(u128::MAX).to_string()]);
    ids
}

/// The one overlap the patterns accept (see the key table in infra/template.yaml): a user id that
/// itself holds the other shape's separator, `{kind}#` at its start or `#{kind}#` inside.
fn has_separator(user: &str, kind: &str) -> bool {
    user.starts_with(&format!("{kind}#")) || user.contains(&format!("#{kind}#"))
}
/// Purchase records that a place-in-line pattern cannot tell from a place (user ids with `QUEUE#`).
fn purchase_keys_like_places() -> Vec<String> {
    let users = AWKWARD_USERS.iter().filter(|u| has_separator(u, "QUEUE"));
    sales().iter().flat_map(|s| users.clone().map(move |u| purchase_pk(s, u))).collect()
}
/// Places in line that a purchase-record pattern cannot tell from a record (user ids with `USER#`).
fn queue_keys_like_purchases() -> Vec<String> {
    let users = AWKWARD_USERS.iter().filter(|u| has_separator(u, "USER"));
    sales().iter().flat_map(|s| users.clone().map(move |u| queue_pk(s, u))).collect()
}

/// The kinds of partition key the table holds, and those of its indexes: the sale list's key, a
/// hold's index partition, an order id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sale,
    Shard,
    Purchase,
    Places,
    Lane,
    Queue,
    Entrants,
    Health,
    SaleListKey,
    HoldKey,
    OrderId,
}

const KINDS: &[Kind] = &[
    Kind::Sale,
    Kind::Shard,
    Kind::Purchase,
    Kind::Places,
    Kind::Lane,
    Kind::Queue,
    Kind::Entrants,
    Kind::Health,
    Kind::SaleListKey,
    Kind::HoldKey,
    Kind::OrderId,
];

fn keys_of(kind: Kind, index_key: &str) -> Vec<String> {
    match kind {
        Kind::Sale => sale_keys(),
        Kind::Shard => shard_keys(),
        Kind::Purchase => purchase_keys(),
        Kind::Places => places_keys(),
        Kind::Lane => lane_keys(),
        Kind::Queue => queue_keys(),
        Kind::Entrants => entrants_keys(),
        Kind::Health => vec![HEALTH_PK.to_owned()],
        Kind::SaleListKey => vec![index_key.to_owned()],
        Kind::HoldKey => hold_keys(),
        Kind::OrderId => order_ids(),
    }
}

/// The partition key value the crate queries the sale list's index with, as sent to DynamoDB.
async fn sales_index_key() -> String {
    let fake = FakeDynamoDb::start().await;
    Store::new(fake.client(), "t").list_sales().await.expect("list sales from the fake");
    let queries = fake.calls("Query");
    assert_eq!(queries.len(), 1, "one Query lists the sales: {queries:?}");
    let q = &queries[0].body;
    assert_eq!(q["IndexName"], SALES_INDEX, "the sale list reads its index: {q}");
    let values = q["ExpressionAttributeValues"].as_object().expect("ExpressionAttributeValues");
    assert_eq!(values.len(), 1, "one key value: {q}");
    values.values().next().and_then(|v| v["S"].as_str()).expect("a string key").to_owned()
}

fn index_key() -> String {
    tokio::runtime::Runtime::new().expect("runtime").block_on(sales_index_key())
}

/// One kind of request a function is granted: an action on the table or the index, on keys of
/// these kinds. Every other key of every kind must be refused, except the look-alikes of the
/// kinds granted.
struct Grant {
    action: &'static str,
    on: On,
    kinds: &'static [Kind],
}

const ALL_ACTIONS: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
];

/// Checks a function's role against its grants: every action on the table and on each index, each
/// key of every kind one at a time, allowed exactly where a grant says so.
fn check(function: &str, grants: &[Grant]) {
    let t = template();
    let statements = policy_statements(&t, function);
    let index_key = index_key();
    let mut examined = BTreeSet::new();
    for action in ALL_ACTIONS {
        for on in RESOURCES {
            let granted: Vec<Kind> = grants
                .iter()
                .filter(|g| g.action == *action && g.on == on)
                .flat_map(|g| g.kinds.iter().copied())
                .collect();
            if !granted.is_empty() {
                examined.insert(action.to_string());
            }
            let mut allowed_keys: BTreeSet<String> = granted.iter().flat_map(|k| keys_of(*k, &index_key)).collect();
            // The accepted overlap: a grant on places in line reaches look-alike purchase records,
            // and a grant on purchase records look-alike places.
            if granted.contains(&Kind::Queue) {
                allowed_keys.extend(purchase_keys_like_places());
            }
            if granted.contains(&Kind::Purchase) {
                allowed_keys.extend(queue_keys_like_purchases());
            }
            for kind in KINDS {
                for key in keys_of(*kind, &index_key) {
                    let expected = allowed_keys.contains(&key);
                    assert_eq!(
                        allowed(&statements, action, on, std::slice::from_ref(&key)),
                        expected,
                        "{function}: {action} on {on:?} with the {kind:?} key {key:?} must be {}",
                        if expected { "allowed" } else { "refused" }
                    );
                }
            }
        }
    }
    // Every action the role has is one of the grants above, so nothing is left unexamined.
    assert!(iam_actions(function).is_subset(&examined), "{function}: actions granted but not examined");
}

/// A batch reads every shard of a sale at once (and, where lanes are granted, 100 lanes' counters
/// at once); a batch that slips in one other key is refused.
fn check_batches(function: &str) {
    let statements = policy_statements(&template(), function);
    let whole_sale: Vec<String> = (0..MAX_SHARDS).map(|n| shard_pk("demo", n)).collect();
    assert!(allowed(&statements, "dynamodb:BatchGetItem", On::Table, &whole_sale), "{function}: a sale's shards");
    let lanes: Vec<String> = (0..100).map(|n| lane_pk("demo", n)).collect();
    let lanes_granted = allowed(&statements, "dynamodb:BatchGetItem", On::Table, &lanes);
    for (first, what) in [(shard_pk("demo", 0), "shards"), (lane_pk("demo", 0), "lanes")] {
        if what == "lanes" && !lanes_granted {
            continue;
        }
        let others =
            [purchase_pk("demo", "x#STOCK#1"), queue_pk("demo", "x#PRE#1"), sale_pk("demo"), places_pk("demo")];
        for other in others {
            let sneaky = vec![first.clone(), other.clone()];
            assert!(
                !allowed(&statements, "dynamodb:BatchGetItem", On::Table, &sneaky),
                "{function}: a batch of {what} with {other} must be refused"
            );
        }
    }
    let mixed = vec![shard_pk("demo", 0), lane_pk("demo", 0)];
    assert!(!allowed(&statements, "dynamodb:BatchGetItem", On::Table, &mixed), "{function}: shards and lanes mixed");
}

#[test]
fn purchase_reads_sales_and_its_buyers_record_takes_stock_records_purchases_and_expires_ended_holds() {
    use Kind::*;
    check(
        "purchase",
        &[
            // The sale's configuration and (same partition) its room; the buyer's record (and
            // the record of a hold it released, read back).
            Grant { action: "dynamodb:GetItem", on: On::Table, kinds: &[Sale, Purchase] },
            // Stock taken (and given back by a released hold); the buyer's record written (a new
            // order continues the record's version); a released hold's record expired.
            Grant { action: "dynamodb:UpdateItem", on: On::Table, kinds: &[Shard, Purchase] },
            // The stock read after conflicts.
            Grant { action: "dynamodb:BatchGetItem", on: On::Table, kinds: &[Shard] },
            // A sale's earliest-ending holds, when no stock is left.
            Grant { action: "dynamodb:Query", on: On::Index(HOLDS_INDEX), kinds: &[HoldKey] },
        ],
    );
    check_batches("purchase");
}

#[test]
fn status_reads_sales_stock_and_health_advances_rooms_and_never_reads_a_purchase_record() {
    use Kind::*;
    check(
        "status",
        &[
            // The published entrant list read (GET …/entrants/{page}).
            Grant { action: "dynamodb:GetItem", on: On::Table, kinds: &[Sale, Health, Places, Entrants] },
            // Stock; at opening, the pre-queue's size from its lanes' counters.
            Grant { action: "dynamodb:BatchGetItem", on: On::Table, kinds: &[Shard, Lane] },
            Grant { action: "dynamodb:Query", on: On::Index(SALES_INDEX), kinds: &[SaleListKey] },
            // The draw: lanes read; the room advanced.
            Grant { action: "dynamodb:Query", on: On::Table, kinds: &[Lane] },
            // The room advanced; a public draw's entrant list published.
            Grant { action: "dynamodb:PutItem", on: On::Table, kinds: &[Sale, Entrants] },
            // The draw: its lease and progress, lanes sealed, places written.
            Grant { action: "dynamodb:UpdateItem", on: On::Table, kinds: &[Sale, Lane, Queue] },
        ],
    );
    check_batches("status");
    // Whatever the Allows say, the Deny keeps every read away from purchase records.
    let statements = policy_statements(&template(), "status");
    for action in ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"] {
        for key in purchase_keys() {
            assert!(!allowed(&statements, action, On::Table, std::slice::from_ref(&key)), "status: {action} on {key}");
        }
    }
}

#[test]
fn user_lookup_reads_purchase_records_and_cancels_a_reserved_order_into_its_shard() {
    use Kind::*;
    check(
        "user-lookup",
        &[
            // The look-up: the record. The cancellation: the sale, the record before and after.
            Grant { action: "dynamodb:GetItem", on: On::Table, kinds: &[Sale, Purchase] },
            // The cancellation's transaction: the record cancelled, the item back on its shard.
            Grant { action: "dynamodb:UpdateItem", on: On::Table, kinds: &[Purchase, Shard] },
        ],
    );
}

#[test]
fn orders_finds_an_order_by_its_id_and_confirms_its_record_only() {
    use Kind::*;
    check(
        "orders",
        &[
            Grant { action: "dynamodb:GetItem", on: On::Table, kinds: &[Sale] },
            Grant { action: "dynamodb:Query", on: On::Index(ORDERS_INDEX), kinds: &[OrderId] },
            Grant { action: "dynamodb:UpdateItem", on: On::Table, kinds: &[Purchase] },
        ],
    );
}

#[test]
fn sweeper_draws_due_prequeues_and_expires_ended_holds_into_their_shards() {
    use Kind::*;
    check(
        "sweeper",
        &[
            Grant { action: "dynamodb:Query", on: On::Index(SALES_INDEX), kinds: &[SaleListKey] },
            // The draw: room and seed, places counter; stock; lanes sealed and read, places
            // written; the room advanced.
            Grant { action: "dynamodb:GetItem", on: On::Table, kinds: &[Sale, Places, Purchase] },
            Grant { action: "dynamodb:BatchGetItem", on: On::Table, kinds: &[Shard] },
            Grant { action: "dynamodb:Query", on: On::Table, kinds: &[Lane] },
            Grant { action: "dynamodb:PutItem", on: On::Table, kinds: &[Sale, Entrants] },
            // The sweep: holds found, records expired and read back, items back on their shards.
            Grant { action: "dynamodb:Query", on: On::Index(HOLDS_INDEX), kinds: &[HoldKey] },
            Grant { action: "dynamodb:UpdateItem", on: On::Table, kinds: &[Sale, Lane, Queue, Purchase, Shard] },
        ],
    );
    check_batches("sweeper");
}

/// The stream reaches the order-events function through its event source mapping (SAM grants the
/// stream reads); its own policy touches no table or index at all, only the order event bus.
#[test]
fn order_events_never_touches_the_table_and_puts_events_on_its_own_bus_only() {
    check("order-events", &[]);
    let t = template();
    let statements = policy_statements(&t, "order-events");
    assert_eq!(
        statements,
        vec![json!({
            "Sid": "PublishOrderEvents",
            "Effect": "Allow",
            "Action": ["events:PutEvents"],
            "Resource": [{"Fn::GetAtt": ["OrderEventBus", "Arn"]}]
        })],
        "order-events: events:PutEvents on the stack's bus, nothing else"
    );
    assert_eq!(t["Resources"]["OrderEventBus"]["Type"], "AWS::Events::EventBus");
    let fns = functions(&t);
    let (_, res) = &fns["order-events"];
    assert_eq!(
        res["Properties"]["Environment"]["Variables"]["EVENT_BUS_NAME"],
        json!({"Fn::GetAtt": ["OrderEventBus", "Name"]}),
        "the function puts its events on the bus it may put them on"
    );
}

#[test]
fn queue_keeps_the_line_and_never_touches_purchase_records_or_stock() {
    use Kind::*;
    check(
        "queue",
        &[
            // The sale, its room and draw seed; the places counter; a person's place.
            Grant { action: "dynamodb:GetItem", on: On::Table, kinds: &[Sale, Places, Queue, Lane] },
            // Stock; at opening, the pre-queue's size from its lanes' counters.
            Grant { action: "dynamodb:BatchGetItem", on: On::Table, kinds: &[Shard, Lane] },
            // The room advanced; a lane marker; a place put on joining; a public draw's list.
            Grant { action: "dynamodb:PutItem", on: On::Table, kinds: &[Sale, Lane, Queue, Entrants] },
            // Places taken in blocks; lane counters counted and sealed; the draw's lease and
            // progress; places drawn.
            Grant { action: "dynamodb:UpdateItem", on: On::Table, kinds: &[Sale, Places, Lane, Queue] },
            Grant { action: "dynamodb:Query", on: On::Table, kinds: &[Lane] },
        ],
    );
    check_batches("queue");
    // Spelled out: no purchase record of an ordinary buyer by any action, and stock read only.
    let statements = policy_statements(&template(), "queue");
    for action in ALL_ACTIONS {
        for on in RESOURCES {
            for key in sales().iter().map(|s| purchase_pk(s, "alice")) {
                assert!(!allowed(&statements, action, on, std::slice::from_ref(&key)), "queue: {action} on {key}");
            }
            if *action != "dynamodb:BatchGetItem" {
                for key in shard_keys() {
                    assert!(!allowed(&statements, action, on, std::slice::from_ref(&key)), "queue: {action} on {key}");
                }
            }
        }
    }
}

/// The one overlap, pinned: exactly the purchase records of user ids holding `QUEUE#` look like
/// places in line, and exactly the places of user ids holding `USER#` look like purchase records.
#[test]
fn the_look_alike_keys_are_exactly_those_of_user_ids_holding_the_other_separator() {
    let queue_pattern = "SALE#*#QUEUE#*";
    let purchase_pattern = "SALE#*#USER#*";
    let like: BTreeSet<String> = purchase_keys().into_iter().filter(|k| wildcard_match(queue_pattern, k)).collect();
    assert_eq!(like, purchase_keys_like_places().into_iter().collect(), "purchase records matching {queue_pattern}");
    let like: BTreeSet<String> = queue_keys().into_iter().filter(|k| wildcard_match(purchase_pattern, k)).collect();
    assert_eq!(like, queue_keys_like_purchases().into_iter().collect(), "places matching {purchase_pattern}");
    assert!(!purchase_keys_like_places().is_empty() && !queue_keys_like_purchases().is_empty());
}

#[test]
fn each_function_is_granted_exactly_its_dynamodb_actions_on_this_table_only() {
    let expected = [
        ("order-events", set(&[])),
        ("orders", set(&["dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"])),
        ("purchase", set(&["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"])),
        (
            "queue",
            set(&[
                "dynamodb:BatchGetItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
                "dynamodb:UpdateItem",
            ]),
        ),
        (
            "status",
            set(&[
                "dynamodb:BatchGetItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
                "dynamodb:UpdateItem",
            ]),
        ),
        (
            "sweeper",
            set(&[
                "dynamodb:BatchGetItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
                "dynamodb:UpdateItem",
            ]),
        ),
        ("user-lookup", set(&["dynamodb:GetItem", "dynamodb:UpdateItem"])),
    ];
    let t = template();
    let names: Vec<String> = functions(&t).into_keys().collect();
    assert_eq!(names, expected.iter().map(|(f, _)| f.to_string()).collect::<Vec<_>>(), "the template's functions");
    let table = On::Table.arn();
    let indexes: Vec<Value> = RESOURCES.iter().skip(1).map(|on| on.arn()).collect();
    let gsis = t["Resources"]["Table"]["Properties"]["GlobalSecondaryIndexes"].as_array().cloned().unwrap_or_default();
    for index in [SALES_INDEX, ORDERS_INDEX, HOLDS_INDEX] {
        assert!(gsis.iter().any(|g| g["IndexName"] == index), "the table has no `{index}` index");
    }

    for (function, actions) in expected {
        assert_eq!(iam_actions(function), actions, "{function}: DynamoDB actions the template allows");
        for st in policy_statements(&t, function) {
            assert!(
                st["NotAction"].is_null() && st["NotResource"].is_null() && st["NotPrincipal"].is_null(),
                "{function}: NotAction/NotResource widen access: {st}"
            );
            let statement_actions = strings(&st["Action"]);
            for action in &statement_actions {
                assert!(!action.contains('*'), "{function}: wildcard action {action}");
            }
            let resources = match &st["Resource"] {
                Value::Array(items) => items.clone(),
                one => vec![one.clone()],
            };
            // The one statement that is not about the table: order events on the stack's bus
            // (`order_events_never_touches_the_table_and_puts_events_on_its_own_bus_only`).
            if function == "order-events" {
                assert_eq!(statement_actions, ["events:PutEvents"], "{function}: {st}");
                assert_eq!(resources, vec![json!({"Fn::GetAtt": ["OrderEventBus", "Arn"]})], "{function}: {st}");
                continue;
            }
            // And the admission key's secret, for the functions that sign or check tokens
            // (`the_admission_key_comes_from_a_generated_hex_secret_to_the_functions_that_need_it`).
            if statement_actions == ["secretsmanager:GetSecretValue"] && ["purchase", "queue"].contains(&function) {
                assert_eq!(resources, vec![json!({"Ref": "AdmissionKeySecret"})], "{function}: {st}");
                continue;
            }
            for action in &statement_actions {
                assert!(action.starts_with("dynamodb:"), "{function}: unexpected action {action}");
            }
            match st["Effect"].as_str() {
                Some("Allow") => {
                    // An Allow without a key condition would reach every item.
                    assert!(
                        st["Condition"].to_string().contains("dynamodb:LeadingKeys"),
                        "{function}: an Allow without a dynamodb:LeadingKeys condition: {st}"
                    );
                    // One resource per Allow: the table, or one index for Query only.
                    assert!(
                        resources == vec![table.clone()]
                            || (resources.len() == 1
                                && indexes.contains(&resources[0])
                                && statement_actions == ["dynamodb:Query"]),
                        "{function}: {statement_actions:?} on {resources:?}: the table, or an index for Query alone"
                    );
                }
                Some("Deny") => {
                    for r in &resources {
                        assert!(r == &table || indexes.contains(r), "{function}: a Deny on another resource: {st}");
                    }
                }
                other => panic!("{function}: statement with Effect {other:?}: {st}"),
            }
        }
    }
}

#[test]
fn the_evaluator_refuses_what_iam_refuses() {
    let allow = |pattern: &str| {
        json!({"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": [On::Table.arn()],
               "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [pattern]}}})
    };
    let deny = json!({"Effect": "Deny", "Action": "dynamodb:GetItem", "Resource": On::Table.arn(),
                      "Condition": {"ForAnyValue:StringLike": {"dynamodb:LeadingKeys": ["SALE#*#USER#*"]}}});
    let key = |k: &str| vec![k.to_owned()];
    assert!(allowed(&[allow("SALE#*")], "dynamodb:GetItem", On::Table, &key("SALE#a#USER#b")));
    assert!(!allowed(&[allow("SALE#*"), deny.clone()], "dynamodb:GetItem", On::Table, &key("SALE#a#USER#b")));
    assert!(allowed(&[allow("SALE#*"), deny], "dynamodb:GetItem", On::Table, &key("SALE#a")));
    assert!(!allowed(&[allow("SALE#*")], "dynamodb:PutItem", On::Table, &key("SALE#a")), "another action");
    assert!(
        !allowed(&[allow("SALE#*")], "dynamodb:GetItem", On::Index(SALES_INDEX), &key("SALE#a")),
        "another resource"
    );
    assert!(!allowed(&[], "dynamodb:GetItem", On::Table, &key("SALE#a")), "nothing allowed by default");
    let batch = vec!["SALE#a".to_owned(), "HEALTH".to_owned()];
    assert!(!allowed(&[allow("SALE#*")], "dynamodb:GetItem", On::Table, &batch), "ForAllValues: every key");
}
