//! docs/openapi.yaml documents the routes the template and the local router serve, and every
//! problem code the code answers with, at its status.

use std::collections::{BTreeMap, BTreeSet};

use integration_tests::openapi::{StringSchema, probe_strings};
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
    assert_eq!(resolve(&doc, &purchase["properties"]["admissionToken"])["type"], "string");
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
    // 1 to 255 visible ASCII characters, bare or in double quotes (contract.rs checks the
    // pattern against the purchase handler).
    assert_eq!((key["schema"]["minLength"].as_u64(), key["schema"]["maxLength"].as_u64()), (Some(1), Some(257)));

    assert_eq!(purchase["requestBody"]["required"], true, "a purchase names its buyer");
    let body = resolve(&doc, &purchase["requestBody"]["content"]["application/json"]["schema"]);
    assert_eq!(body["additionalProperties"], false, "the body refuses unknown fields");
    assert_eq!(body["required"], json!(["userId"]), "AUTH_MODE=body refuses a purchase without userId");
    assert!(body["properties"]["userId"].is_object());
    let not_allowed = resolve(&doc, &doc["components"]["responses"]["MethodNotAllowed"]);
    assert!(not_allowed["headers"]["Allow"].is_object(), "405 names the allowed method");
}

/// The identifiers' schemas allow exactly what the code's parsers accept: a client that validates
/// against the document is never refused for the shape of an id, nor sends one that would be.
#[test]
fn identifier_schemas_accept_exactly_what_the_code_accepts() {
    use flash_sale::ids::{SaleId, UserId, is_order_id};
    let doc = openapi();
    let schemas = &doc["components"]["schemas"];
    let user = StringSchema::of(&schemas["UserId"]);
    let sale = StringSchema::of(&schemas["SaleId"]);
    let order = StringSchema::of(&schemas["OrderId"]);
    for text in probe_strings(&[26, 64, 255]) {
        assert_eq!(user.accepts(&text), UserId::parse(&text).is_ok(), "userId {text:?}");
        assert_eq!(sale.accepts(&text), SaleId::parse(&text).is_ok(), "saleId {text:?}");
        assert_eq!(order.accepts(&text), is_order_id(&text), "orderId {text:?}");
    }
    // Order ids: real ones, and real ones with one character changed to a digit or a letter of
    // either case.
    let alphabet: Vec<char> = ('0'..='9').chain('A'..='Z').chain('a'..='z').collect();
    let mut rng = fastrand::Rng::with_seed(7);
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..5_000 {
        let id = ulid::Ulid::from_parts(rng.u64(..1 << 48), rng.u128(..)).to_string();
        assert!(order.accepts(&id) && is_order_id(&id), "{id}");
        let mut chars: Vec<char> = id.chars().collect();
        chars[rng.usize(..26)] = alphabet[rng.usize(..alphabet.len())];
        let changed: String = chars.into_iter().collect();
        let ok = is_order_id(&changed);
        assert_eq!(order.accepts(&changed), ok, "orderId {changed:?}");
        if ok { accepted += 1 } else { refused += 1 }
    }
    assert!(accepted > 100 && refused > 100, "both kinds were tried: {accepted} accepted, {refused} refused");
}

/// The properties a response or request schema names (through `$ref` and `allOf`).
fn properties(doc: &Value, schema: &Value) -> BTreeSet<String> {
    let schema = resolve(doc, schema);
    let mut names: BTreeSet<String> =
        schema["properties"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        names.extend(properties(doc, part));
    }
    names
}

/// Links lead from an answer to the next request with identifiers from that answer (the stateful
/// contract tests follow them): each names a real operation, fills exactly its path parameters
/// with fields the answer has, and its request body with fields the body takes.
#[test]
fn links_fill_real_operations_from_real_fields() {
    let doc = openapi();
    let mut by_id: BTreeMap<String, (String, &Value)> = BTreeMap::new();
    for (path, item) in obj(&doc["paths"], "paths") {
        for (method, op) in obj(item, path).iter().filter(|(m, _)| METHODS.contains(&m.as_str())) {
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: an operationId"));
            assert!(by_id.insert(id.to_owned(), (path.clone(), op)).is_none(), "operationId {id} twice");
        }
    }
    let mut chains = BTreeSet::new();
    for (from, (_, op)) in &by_id {
        for (status, response) in obj(&op["responses"], from) {
            let response = resolve(&doc, response);
            let Some(links) = response["links"].as_object() else { continue };
            let answer = properties(&doc, &response["content"]["application/json"]["schema"]);
            for (name, link) in links {
                let link = resolve(&doc, link);
                let to = link["operationId"].as_str().unwrap_or_else(|| panic!("{from} {status} {name}: operationId"));
                let (path, target) =
                    by_id.get(to).unwrap_or_else(|| panic!("{from} {status} {name}: no operation {to}"));
                let wanted: BTreeSet<String> = path
                    .split('/')
                    .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')).map(str::to_owned))
                    .collect();
                let given = obj(&link["parameters"], name);
                assert_eq!(given.keys().cloned().collect::<BTreeSet<_>>(), wanted, "{from} -> {to}: path parameters");
                let mut fields: Vec<(&String, &Value)> = given.iter().collect();
                let takes = target["requestBody"]["content"]["application/json"]["schema"].clone();
                let body = properties(&doc, &takes);
                for (field, _) in link["requestBody"].as_object().into_iter().flatten() {
                    assert!(body.contains(field), "{from} -> {to}: the body takes no {field}");
                }
                fields.extend(link["requestBody"].as_object().into_iter().flatten());
                for (param, expr) in fields {
                    let expr = expr.as_str().unwrap_or_else(|| panic!("{from} -> {to}: {param} is an expression"));
                    let field = expr.strip_prefix("$response.body#/").unwrap_or_else(|| panic!("{expr}"));
                    assert!(answer.contains(field), "{from} {status} -> {to}: the answer has no {field}");
                }
                chains.insert(format!("{from} {status} -> {to}"));
            }
        }
    }
    for chain in [
        "purchase 201 -> lookupPurchase",
        "purchase 201 -> cancelPurchase",
        "purchase 201 -> confirmOrder",
        "joinQueue 200 -> getQueuePosition",
        "getQueuePosition 200 -> purchase",
        "getSale 200 -> purchase",
    ] {
        assert!(chains.contains(chain), "no link {chain}: {chains:?}");
    }
}
