//! Helpers shared by the infra tests.

use std::collections::{BTreeMap, BTreeSet};

use integration_tests::template::read;
use serde_json::{Map, Value, json};

/// The route table of docs/api.md: method, path, function (the binary `cargo lambda` builds).
/// `routes::the_route_table_of_docs_api_is_this_one` reads that table back.
pub const API: &[(&str, &str, &str)] = &[
    ("GET", "/sales", "status"),
    ("GET", "/sales/{saleId}", "status"),
    ("GET", "/sales/{saleId}/entrants/{page}", "status"),
    ("POST", "/sales/{saleId}/purchases", "purchase"),
    ("GET", "/sales/{saleId}/purchases/{userId}", "user-lookup"),
    ("DELETE", "/sales/{saleId}/purchases/{userId}", "user-lookup"),
    ("POST", "/sales/{saleId}/queue", "queue"),
    ("GET", "/sales/{saleId}/queue/{userId}", "queue"),
    ("POST", "/sales/{saleId}/orders/{orderId}/confirm", "orders"),
    ("GET", "/health", "status"),
];

/// Functions whose routes act for a user: behind the JWT authorizer unless AuthMode is `body`.
pub const USER_FUNCTIONS: &[&str] = &["purchase", "user-lookup", "queue"];

/// Functions whose routes serve the shop's payment backend, not buyers: IAM (SigV4) in every
/// AuthMode, never the JWT authorizer.
pub const BACKEND_FUNCTIONS: &[&str] = &["orders"];

/// Functions no HTTP route reaches: (binary, the one event source they run on).
pub const EVENT_FUNCTIONS: &[(&str, &str)] = &[("sweeper", "Schedule"), ("order-events", "DynamoDB")];

/// The explicit methods the API table gives a path.
pub fn api_methods(path: &str) -> std::collections::BTreeSet<&'static str> {
    API.iter().filter(|(_, p, _)| *p == path).map(|(m, _, _)| *m).collect()
}

pub fn toml_file(rel: &str) -> Value {
    toml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid TOML: {e}"))
}

pub fn obj<'v>(v: &'v Value, what: &str) -> &'v Map<String, Value> {
    v.as_object().unwrap_or_else(|| panic!("{what} must be a mapping, found {v}"))
}

pub fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => {
            items.iter().map(|i| i.as_str().unwrap_or_else(|| panic!("not a string: {i}")).to_owned()).collect()
        }
        other => panic!("expected a string or a list of strings, found {other}"),
    }
}

pub fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

pub use integration_tests::template::wildcard_match;

#[test]
fn wildcards_match_like_iam_and_cloudfront() {
    assert!(wildcard_match("/sales*", "/sales"));
    assert!(wildcard_match("/sales*", "/sales/demo/purchases/alice"));
    assert!(wildcard_match("/sales/*/purchases*", "/sales/demo/purchases"));
    assert!(wildcard_match("/a?c", "/abc"));
    assert!(!wildcard_match("/a?c", "/ac"));
    assert!(!wildcard_match("/sales/*/purchases*", "/sales/purchases"));
    assert!(!wildcard_match("/health", "/health/x"));
    assert!(!wildcard_match("/Sales*", "/sales"));
    assert!(wildcard_match("SALE#*", "SALE#"));
    assert!(wildcard_match("SALE#*#USER#*", "SALE#s#USER#a#STOCK#1"));
    assert!(!wildcard_match("SALE#*#*", "SALE#drop-42"));
    assert!(!wildcard_match("sale#*", "SALE#x"));
    assert!(wildcard_match("*", ""));
}

/// OpenAPI's name for a method in a path item.
pub fn openapi_method(method: &str) -> String {
    if method == "ANY" { "x-amazon-apigateway-any-method".into() } else { method.to_ascii_lowercase() }
}

/// (method, path, function) of every HttpApi event in the template. The functions of
/// [`EVENT_FUNCTIONS`] have no HttpApi event, and only they have events of another type.
pub fn template_routes(t: &Value) -> Vec<(String, String, String)> {
    let mut routes = Vec::new();
    for (binary, (id, res)) in integration_tests::template::functions(t) {
        let Some(events) = res["Properties"]["Events"].as_object() else {
            continue;
        };
        let source = EVENT_FUNCTIONS.iter().find(|(f, _)| *f == binary).map(|(_, kind)| *kind);
        for (name, event) in events {
            assert_eq!(
                event["Type"],
                source.unwrap_or("HttpApi"),
                "{id}.{name}: {binary} takes {} events only",
                source.unwrap_or("HttpApi")
            );
            if source.is_some() {
                continue;
            }
            let props = &event["Properties"];
            assert_eq!(props["ApiId"], json!({"Ref": "HttpApi"}), "{id}.{name} must attach to the HttpApi resource");
            let method =
                props["Method"].as_str().unwrap_or_else(|| panic!("{id}.{name}: no Method")).to_ascii_uppercase();
            let path = props["Path"].as_str().unwrap_or_else(|| panic!("{id}.{name}: no Path")).to_owned();
            routes.push((method, path, binary.clone()));
        }
    }
    routes
}

/// (method, path, function) of the router table in the workspace Cargo.toml. A string value means
/// every method (`ANY`); a list gives `{ method, function }` entries.
pub fn router_routes() -> Vec<(String, String, String)> {
    let cargo = toml_file("Cargo.toml");
    let router =
        obj(&cargo["workspace"]["metadata"]["lambda"]["watch"]["router"], "[workspace.metadata.lambda.watch.router]");
    let mut routes = Vec::new();
    for (path, target) in router {
        let entries = match target {
            Value::String(function) => vec![("ANY".to_owned(), function.clone())],
            Value::Array(items) => items
                .iter()
                .map(|i| {
                    let method = i["method"].as_str().unwrap_or("ANY").to_ascii_uppercase();
                    let function =
                        i["function"].as_str().unwrap_or_else(|| panic!("router {path}: entry without function"));
                    (method, function.to_owned())
                })
                .collect(),
            other => panic!("router {path}: unexpected value {other}"),
        };
        routes.extend(entries.into_iter().map(|(m, f)| (m, path.clone(), f)));
    }
    routes
}

/// The one resource of a type in a template: (logical id, resource).
pub fn the_resource<'t>(t: &'t Value, kind: &str) -> (&'t str, &'t Value) {
    let found: Vec<_> = obj(&t["Resources"], "Resources").iter().filter(|(_, r)| r["Type"] == kind).collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {kind}, found {:?}",
        found.iter().map(|(id, _)| id).collect::<Vec<_>>()
    );
    (found[0].0.as_str(), found[0].1)
}

/// Parameter name → default, of a template.
pub fn parameter_defaults(t: &Value) -> BTreeMap<String, Value> {
    obj(&t["Parameters"], "Parameters").iter().map(|(k, p)| (k.clone(), p["Default"].clone())).collect()
}
