//! docs/openapi.yaml documents the routes the template and the local router serve, and every
//! problem code the code answers with, at its status.

use std::collections::BTreeSet;

use integration_tests::template::{read, template};
use serde_json::{Value, json};

use flash_sale::http::CODES;

use crate::common::{API, BACKEND_FUNCTIONS, USER_FUNCTIONS, obj, router_routes, template_routes};

fn openapi() -> Value {
    serde_yaml_ng::from_str(&read("docs/openapi.yaml")).expect("docs/openapi.yaml is YAML")
}

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// (METHOD, path) of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, item) in obj(&doc["paths"], "paths") {
        for key in obj(item, path).keys() {
            if METHODS.contains(&key.as_str()) {
                found.insert((key.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    found
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'d>(doc: &'d Value, v: &'d Value) -> &'d Value {
    match v["$ref"].as_str() {
        Some(r) => {
            let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("only local references: {r}"));
            resolve(doc, doc.pointer(pointer).unwrap_or_else(|| panic!("{r} points nowhere")))
        }
        None => v,
    }
}

fn all_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|x| all_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| all_refs(x, out)),
        _ => {}
    }
}

#[test]
fn the_document_has_exactly_the_routes_of_the_template_and_the_local_router() {
    let doc = openapi();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "OpenAPI 3.1");
    let documented = operations(&doc);

    let cloud: BTreeSet<(String, String)> =
        template_routes(&template()).into_iter().filter(|(m, _, _)| m != "ANY").map(|(m, p, _)| (m, p)).collect();
    assert_eq!(documented, cloud, "docs/openapi.yaml (left) and infra/template.yaml's routes (right) differ");

    let local_paths: BTreeSet<String> = router_routes().into_iter().map(|(_, p, _)| p).collect();
    let documented_paths: BTreeSet<String> = documented.iter().map(|(_, p)| p.clone()).collect();
    assert_eq!(documented_paths, local_paths, "docs/openapi.yaml (left) and the Cargo.toml router (right) differ");

    let api: BTreeSet<(String, String)> = API.iter().map(|(m, p, _)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, api, "docs/openapi.yaml (left) and docs/api.md's route table (right) differ");
}

#[test]
fn every_reference_resolves() {
    let doc = openapi();
    let mut refs = Vec::new();
    all_refs(&doc, &mut refs);
    assert!(refs.len() > 20, "the document uses its components");
    for r in refs {
        resolve(&doc, &json!({"$ref": r}));
    }
}

#[test]
fn every_problem_code_is_documented_with_its_status() {
    let doc = openapi();
    let schemas = obj(&doc["components"]["schemas"], "components.schemas");
    let documented: BTreeSet<String> = doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
        .as_array()
        .expect("Problem.code enum")
        .iter()
        .map(|c| c.as_str().expect("a code").to_owned())
        .collect();
    let codes: BTreeSet<String> = CODES.iter().map(|(_, code)| code.to_string()).collect();
    assert_eq!(documented, codes, "Problem.code (left) and the codes the API answers with (right)");

    // Each code has its own schema fixing code and status to what the code answers.
    for &(status, code) in CODES {
        let own: Vec<(&String, &Value)> = schemas
            .iter()
            .filter(|(_, s)| {
                s["allOf"]
                    .as_array()
                    .is_some_and(|parts| parts.iter().any(|p| p["properties"]["code"]["const"] == code))
            })
            .collect();
        assert_eq!(own.len(), 1, "one schema for `{}`, found {}", code, own.len());
        let (name, schema) = own[0];
        let part =
            schema["allOf"].as_array().unwrap().iter().find(|p| p["properties"]["code"]["const"] == code).unwrap();
        assert_eq!(part["properties"]["status"]["const"], status, "{name}: status of `{}`", code);
        assert_eq!(schema["allOf"][0], json!({"$ref": "#/components/schemas/Problem"}), "{name} is a Problem");
    }
    // The extras some problems carry.
    let extra = |schema: &str, field: &str| {
        schemas[schema]["allOf"][1]["required"].as_array().is_some_and(|r| r.contains(&json!(field)))
    };
    assert!(extra("AlreadyPurchasedProblem", "purchase"));
    assert!(extra("SaleNotStartedProblem", "startsAt"));
    assert!(extra("TemporarilyUnavailableProblem", "retryAfterSeconds"));
    assert!(extra("QueueNotOpenProblem", "opensAt"));
    for problem in ["HoldExpiredProblem", "OrderConfirmedProblem", "OrderCancelledProblem"] {
        assert!(extra(problem, "order"), "{problem} carries the order");
    }
}

/// Orders: the statuses the code has, the hold a sale gives, and the payment backend's route
/// behind IAM authorization.
#[test]
fn orders_are_documented_where_clients_meet_them() {
    use flash_sale::order::OrderStatus;
    let doc = openapi();
    let schemas = &doc["components"]["schemas"];
    let purchase = &schemas["Purchase"];
    let statuses: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(resolve(&doc, &purchase["properties"]["status"])["enum"], json!(statuses), "Purchase.status");
    let required = strings_of(&purchase["required"]);
    assert!(required.contains(&"status".to_owned()), "every order has a status");
    assert!(!required.contains(&"holdExpiresAt".to_owned()), "only orders of sales with holds have holdExpiresAt");
    assert_eq!(purchase["properties"]["holdExpiresAt"]["$ref"], "#/components/schemas/Timestamp");
    let hold = &schemas["SaleStatus"]["properties"]["holdSeconds"];
    assert_eq!(hold["type"], "integer");
    assert_eq!(
        (hold["minimum"].as_i64(), hold["maximum"].as_i64()),
        (Some(0), Some(flash_sale::sale::MAX_HOLD_SECONDS))
    );
    assert!(strings_of(&schemas["SaleStatus"]["required"]).contains(&"holdSeconds".to_owned()));

    // The payment backend's route: SigV4 as API Gateway spells it, and API Gateway's own 403.
    let scheme = &doc["components"]["securitySchemes"]["paymentBackendSigV4"];
    assert_eq!(scheme["x-amazon-apigateway-authtype"], "awsSigv4");
    assert_eq!(
        (scheme["type"].as_str(), scheme["in"].as_str(), scheme["name"].as_str()),
        (Some("apiKey"), Some("header"), Some("Authorization"))
    );
    for (method, path, _) in API.iter().filter(|(_, _, f)| BACKEND_FUNCTIONS.contains(f)) {
        let op = &doc["paths"][path][method.to_ascii_lowercase()];
        let refused = resolve(&doc, &op["responses"]["403"]);
        assert_eq!(refused["x-answered-before-the-functions"], true, "{method} {path}: 403 is API Gateway's");
        assert_eq!(refused["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/GatewayMessage");
    }
}

#[test]
fn the_waiting_room_is_documented_where_clients_meet_it() {
    let doc = openapi();
    let schemas = &doc["components"]["schemas"];
    // A sale may carry its room; the purchase body takes the admission token, the join does not.
    let sale = &schemas["SaleStatus"];
    assert_eq!(sale["properties"]["queue"]["$ref"], "#/components/schemas/RoomView");
    assert!(!strings_of(&sale["required"]).contains(&"queue".to_owned()), "queue is optional on SaleStatus");
    let purchase = resolve(
        &doc,
        &doc["paths"]["/sales/{saleId}/purchases"]["post"]["requestBody"]["content"]["application/json"]["schema"],
    );
    assert_eq!(purchase["properties"]["admissionToken"]["type"], "string");
    let join = resolve(
        &doc,
        &doc["paths"]["/sales/{saleId}/queue"]["post"]["requestBody"]["content"]["application/json"]["schema"],
    );
    assert_eq!(join["additionalProperties"], false);
    assert!(join["properties"]["admissionToken"].is_null(), "joining the line takes no admissionToken");
    // Both queue routes answer a LineView that is never cached.
    for (method, path) in [("post", "/sales/{saleId}/queue"), ("get", "/sales/{saleId}/queue/{userId}")] {
        let ok = &doc["paths"][path][method]["responses"]["200"];
        assert_eq!(ok["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/LineView", "{path}");
        assert_eq!(ok["headers"]["Cache-Control"]["$ref"], "#/components/headers/NoStore", "{path}");
    }
    let line = &schemas["LineView"];
    assert_eq!(line["properties"]["state"]["enum"], json!(["waiting", "admitted", "sold_out", "closed"]));
    for nullable in ["position", "aheadOfYou", "estimatedWaitSeconds"] {
        assert_eq!(line["properties"][nullable]["type"], json!(["integer", "null"]), "LineView.{nullable}");
    }
}

fn strings_of(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
}

#[test]
fn every_operation_documents_throttling_and_purchases_take_an_idempotency_key() {
    let doc = openapi();
    for (method, path, function) in API {
        let op = &doc["paths"][path][method.to_ascii_lowercase()];
        let responses = obj(&op["responses"], "responses");
        let throttled = resolve(&doc, &responses["429"]);
        assert_eq!(
            throttled["content"]["application/json"]["schema"]["allOf"][1]["properties"]["message"]["const"],
            "Too Many Requests",
            "{method} {path}: 429 is API Gateway's own body"
        );
        let busy = resolve(&doc, &responses["503"]);
        let retry = resolve(&doc, &busy["headers"]["Retry-After"]);
        assert_eq!(retry["required"], true, "{method} {path}: 503 carries Retry-After");
        let secured = op["security"].as_array().is_some_and(|s| s.contains(&json!({"bearerJwt": []})));
        assert_eq!(secured, USER_FUNCTIONS.contains(function), "{method} {path}: bearer JWT exactly on user routes");
        let signed = op["security"] == json!([{"paymentBackendSigV4": []}]);
        assert_eq!(
            signed,
            BACKEND_FUNCTIONS.contains(function),
            "{method} {path}: SigV4 (and nothing else) exactly on the payment backend's routes"
        );
    }

    let purchase = &doc["paths"]["/sales/{saleId}/purchases"]["post"];
    let params: Vec<&Value> =
        purchase["parameters"].as_array().expect("parameters").iter().map(|p| resolve(&doc, p)).collect();
    let key = params.iter().find(|p| p["name"] == "Idempotency-Key").expect("an Idempotency-Key parameter");
    assert_eq!(key["in"], "header");
    assert_eq!(key["required"], false);
    assert_eq!(key["schema"], json!({"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"}));

    let body = resolve(&doc, &purchase["requestBody"]["content"]["application/json"]["schema"]);
    assert_eq!(body["additionalProperties"], false, "the body refuses unknown fields");
    assert!(body["required"].is_null(), "userId is optional (JWT mode)");
    assert!(body["properties"]["userId"].is_object());
    let not_allowed = resolve(&doc, &doc["components"]["responses"]["MethodNotAllowed"]);
    assert!(not_allowed["headers"]["Allow"].is_object(), "405 names the allowed method");
}
