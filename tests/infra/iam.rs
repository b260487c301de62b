//! Least privilege by key: each function's IAM statements, evaluated the way IAM evaluates them,
//! against partition keys made by the crate's own key functions (`flash_sale::keys`).
//!
//! IAM allows a request when some Allow statement matches it and no Deny statement does. A
//! statement matches when its action and resource do and every condition operator in it holds.
//! `dynamodb:LeadingKeys` is the set of partition keys a request touches (one for GetItem, one per
//! key for BatchGetItem, the index's partition key value for a Query on an index).

use std::collections::BTreeSet;

use flash_sale::keys::{HEALTH_PK, purchase_pk, sale_pk, shard_pk};
use flash_sale::sale::MAX_SHARDS;
use flash_sale::store::{SALES_INDEX, Store};
use integration_tests::template::{functions, iam_actions, policy_statements, template};
use serde_json::{Value, json};

use crate::common::{set, strings, wildcard_match};
use crate::fake_dynamodb::FakeDynamoDb;

/// Where a request goes: the table, or the sale list's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum On {
    Table,
    Index,
}

impl On {
    fn arn(self) -> Value {
        match self {
            On::Table => json!({"Fn::GetAtt": ["Table", "Arn"]}),
            On::Index => json!({"Fn::Sub": format!("${{Table.Arn}}/index/{SALES_INDEX}")}),
        }
    }
}

/// Whether one condition block holds for a request touching `keys`.
fn conditions_hold(condition: &Value, keys: &[String]) -> bool {
    let Some(operators) = condition.as_object() else {
        assert!(condition.is_null(), "Condition must be a mapping: {condition}");
        return true;
    };
    operators.iter().all(|(operator, entries)| {
        entries.as_object().unwrap_or_else(|| panic!("{operator}: expected a mapping")).iter().all(|(key, values)| {
            assert_eq!(key, "dynamodb:LeadingKeys", "this evaluator knows only dynamodb:LeadingKeys");
            let patterns = strings(values);
            let like = |k: &String| patterns.iter().any(|p| wildcard_match(p, k));
            match operator.as_str() {
                // ForAllValues holds for an empty set too; every request here has keys.
                "ForAllValues:StringLike" => keys.iter().all(like),
                "ForAllValues:StringNotLike" => keys.iter().all(|k| !like(k)),
                "ForAnyValue:StringLike" => keys.iter().any(like),
                "ForAllValues:StringEquals" => keys.iter().all(|k| patterns.contains(k)),
                other => panic!("the evaluator does not know the operator {other}: teach it before using it"),
            }
        })
    })
}

fn statement_matches(st: &Value, action: &str, on: On, keys: &[String]) -> bool {
    let resources = match &st["Resource"] {
        Value::Array(items) => items.clone(),
        one => vec![one.clone()],
    };
    strings(&st["Action"]).iter().any(|a| a == action)
        && resources.contains(&on.arn())
        && conditions_hold(&st["Condition"], keys)
}

/// IAM's decision for one request of a function's role.
fn allowed(statements: &[Value], action: &str, on: On, keys: &[String]) -> bool {
    let denied = statements.iter().any(|st| st["Effect"] == "Deny" && statement_matches(st, action, on, keys));
    let allowed = statements.iter().any(|st| st["Effect"] == "Allow" && statement_matches(st, action, on, keys));
    allowed && !denied
}

/// User ids are opaque: anything, including the separators of other keys.
const AWKWARD_USERS: &[&str] =
    &["alice", "x#STOCK#1", "#STOCK#0", "a#USER#b", "SALE#demo", "*", "?", "HEALTH", "META", "bob smith"];
const SALES: &[&str] = &["demo", "drop_42-B", "USER", "STOCK", "a"];

fn sale_keys() -> Vec<String> {
    let long = "s".repeat(64);
    SALES.iter().copied().chain([long.as_str()]).map(sale_pk).collect()
}
fn shard_keys() -> Vec<String> {
    SALES.iter().flat_map(|s| [0, 1, MAX_SHARDS - 1].map(|n| shard_pk(s, n))).collect()
}
fn purchase_keys() -> Vec<String> {
    SALES.iter().flat_map(|s| AWKWARD_USERS.iter().map(move |u| purchase_pk(s, u))).collect()
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

/// What each kind of request a function may do, and on which keys it must be refused.
#[derive(Clone)]
struct Expect {
    action: &'static str,
    on: On,
    allowed: Vec<Vec<String>>,
    refused: Vec<Vec<String>>,
}

fn each(keys: Vec<String>) -> Vec<Vec<String>> {
    keys.into_iter().map(|k| vec![k]).collect()
}

fn check(function: &str, expectations: &[Expect]) {
    let t = template();
    let statements = policy_statements(&t, function);
    for e in expectations {
        for keys in &e.allowed {
            assert!(
                allowed(&statements, e.action, e.on, keys),
                "{function}: {} on {:?} with keys {keys:?} must be allowed",
                e.action,
                e.on
            );
        }
        for keys in &e.refused {
            assert!(
                !allowed(&statements, e.action, e.on, keys),
                "{function}: {} on {:?} with keys {keys:?} must be refused",
                e.action,
                e.on
            );
        }
    }
    // Every action the role has is one of the expectations above, so nothing is left unexamined.
    let examined: BTreeSet<String> = expectations.iter().map(|e| e.action.to_owned()).collect();
    assert!(iam_actions(function).is_subset(&examined), "{function}: actions granted but not examined");
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

/// Requests of every other action, on every key, on the table and the index: all refused.
fn nothing_else(granted: &[&str], index_key: &str) -> Vec<Expect> {
    let every: Vec<String> =
        [sale_keys(), shard_keys(), purchase_keys(), vec![HEALTH_PK.to_owned(), index_key.to_owned()]].concat();
    ALL_ACTIONS
        .iter()
        .filter(|a| !granted.contains(a))
        .flat_map(|a| {
            [On::Table, On::Index].map(|on| Expect { action: a, on, allowed: vec![], refused: each(every.clone()) })
        })
        .collect()
}

#[test]
fn purchase_reads_sales_and_its_buyers_record_takes_stock_and_records_purchases_only() {
    let index_key = tokio::runtime::Runtime::new().expect("runtime").block_on(sales_index_key());
    let granted = ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem"];
    let mut expectations = vec![
        Expect {
            action: "dynamodb:GetItem",
            on: On::Table,
            allowed: each([sale_keys(), purchase_keys()].concat()),
            refused: each([shard_keys(), vec![HEALTH_PK.to_owned()]].concat()),
        },
        Expect {
            action: "dynamodb:UpdateItem",
            on: On::Table,
            allowed: each(shard_keys()),
            refused: each([sale_keys(), purchase_keys(), vec![HEALTH_PK.to_owned()]].concat()),
        },
        Expect {
            action: "dynamodb:PutItem",
            on: On::Table,
            allowed: each(purchase_keys()),
            refused: each([sale_keys(), shard_keys(), vec![HEALTH_PK.to_owned()]].concat()),
        },
    ];
    for e in &mut expectations {
        e.refused.push(vec![index_key.clone()]);
    }
    for action in granted {
        expectations.push(Expect { action, on: On::Index, allowed: vec![], refused: each(sale_keys()) });
    }
    expectations.extend(nothing_else(&granted, &index_key));
    check("purchase", &expectations);
}

#[test]
fn status_reads_sales_stock_and_health_and_never_a_purchase_record() {
    let index_key = tokio::runtime::Runtime::new().expect("runtime").block_on(sales_index_key());
    let granted = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"];
    // One batch reads every shard of a sale; a batch that slips in one purchase record is refused.
    let whole_sale: Vec<String> = (0..MAX_SHARDS).map(|n| shard_pk("demo", n)).collect();
    let sneaky = vec![shard_pk("demo", 0), purchase_pk("demo", "x#STOCK#1")];
    let expectations = [
        vec![
            Expect {
                action: "dynamodb:GetItem",
                on: On::Table,
                allowed: each([sale_keys(), vec![HEALTH_PK.to_owned()]].concat()),
                refused: each([purchase_keys(), shard_keys(), vec![index_key.clone()]].concat()),
            },
            Expect {
                action: "dynamodb:BatchGetItem",
                on: On::Table,
                allowed: [each(shard_keys()), vec![whole_sale]].concat(),
                refused: [each([purchase_keys(), sale_keys(), vec![HEALTH_PK.to_owned()]].concat()), vec![sneaky]]
                    .concat(),
            },
            Expect {
                action: "dynamodb:Query",
                on: On::Index,
                allowed: vec![vec![index_key.clone()]],
                refused: each([purchase_keys(), sale_keys(), shard_keys()].concat()),
            },
            Expect {
                action: "dynamodb:Query",
                on: On::Table,
                allowed: vec![],
                refused: each([purchase_keys(), sale_keys(), shard_keys(), vec![index_key.clone()]].concat()),
            },
            Expect { action: "dynamodb:GetItem", on: On::Index, allowed: vec![], refused: each(purchase_keys()) },
            Expect { action: "dynamodb:BatchGetItem", on: On::Index, allowed: vec![], refused: each(purchase_keys()) },
        ],
        nothing_else(&granted, &index_key),
    ]
    .concat();
    check("status", &expectations);
}

#[test]
fn user_lookup_reads_purchase_records_only() {
    let index_key = tokio::runtime::Runtime::new().expect("runtime").block_on(sales_index_key());
    let granted = ["dynamodb:GetItem"];
    let expectations = [
        vec![
            Expect {
                action: "dynamodb:GetItem",
                on: On::Table,
                allowed: each(purchase_keys()),
                refused: each([sale_keys(), shard_keys(), vec![HEALTH_PK.to_owned(), index_key.clone()]].concat()),
            },
            Expect { action: "dynamodb:GetItem", on: On::Index, allowed: vec![], refused: each(purchase_keys()) },
        ],
        nothing_else(&granted, &index_key),
    ]
    .concat();
    check("user-lookup", &expectations);
}

#[test]
fn each_function_is_granted_exactly_its_dynamodb_actions_on_this_table_only() {
    let expected = [
        ("purchase", set(&["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"])),
        ("status", set(&["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Query"])),
        ("user-lookup", set(&["dynamodb:GetItem"])),
    ];
    let t = template();
    let names: Vec<String> = functions(&t).into_keys().collect();
    assert_eq!(names, expected.iter().map(|(f, _)| f.to_string()).collect::<Vec<_>>(), "the template's functions");
    let (table, index) = (On::Table.arn(), On::Index.arn());
    let gsis = t["Resources"]["Table"]["Properties"]["GlobalSecondaryIndexes"].as_array().cloned().unwrap_or_default();
    assert!(gsis.iter().any(|g| g["IndexName"] == SALES_INDEX), "the table has no `{SALES_INDEX}` index");

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
                assert!(action.starts_with("dynamodb:"), "{function}: unexpected action {action}");
            }
            let resources = match &st["Resource"] {
                Value::Array(items) => items.clone(),
                one => vec![one.clone()],
            };
            match st["Effect"].as_str() {
                Some("Allow") => {
                    // An Allow without a key condition would reach every item.
                    assert!(
                        st["Condition"].to_string().contains("dynamodb:LeadingKeys"),
                        "{function}: an Allow without a dynamodb:LeadingKeys condition: {st}"
                    );
                    let queries = statement_actions.iter().any(|a| a == "dynamodb:Query");
                    let only = if queries { &index } else { &table };
                    assert_eq!(
                        resources,
                        vec![only.clone()],
                        "{function}: {statement_actions:?} belongs on {only} only"
                    );
                }
                Some("Deny") => {
                    for r in &resources {
                        assert!(r == &table || r == &index, "{function}: a Deny on another resource: {st}");
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
    assert!(!allowed(&[allow("SALE#*")], "dynamodb:GetItem", On::Index, &key("SALE#a")), "another resource");
    assert!(!allowed(&[], "dynamodb:GetItem", On::Table, &key("SALE#a")), "nothing allowed by default");
    let batch = vec!["SALE#a".to_owned(), "HEALTH".to_owned()];
    assert!(!allowed(&[allow("SALE#*")], "dynamodb:GetItem", On::Table, &batch), "ForAllValues: every key");
}
