//! The deployment against the code, with neither AWS nor DynamoDB: the routes of
//! `infra/template.yaml` are the local router's, each function's IAM actions are exactly the
//! DynamoDB calls its code makes, `samconfig.toml` only sets what the template takes, CloudFront
//! serves the page from a private bucket, never caches purchases or lookups and caches status for
//! about a second, and cfn-lint provably runs on the template.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value, json};

/// The API table of DESIGN.md: method, path, function (the binary `cargo lambda` builds).
const API: &[(&str, &str, &str)] = &[
    ("GET", "/sales", "status"),
    ("GET", "/sales/{saleId}", "status"),
    ("POST", "/sales/{saleId}/purchases", "purchase"),
    ("GET", "/sales/{saleId}/purchases/{userId}", "user-lookup"),
    ("GET", "/health", "status"),
];

/// Functions whose routes act for a user: behind the JWT authorizer unless AuthMode is `body`.
const USER_FUNCTIONS: &[&str] = &["purchase", "user-lookup"];

/// The DynamoDB operations each function's request path calls, as the code stands:
/// - purchase: `App::purchase` reads the sale (`Store::get_sale`, GetItem) and buys with
///   `Store::try_purchase` (TransactWriteItems);
/// - status: `App::healthy` (`Store::ping`, GetItem), `App::status` (`get_sale`, then
///   `shard_stock`, BatchGetItem) and `App::list` (`list_sales` on the `sales` index, Query);
/// - user-lookup: `App::lookup` (`Store::get_purchase`, GetItem).
///
/// The test derives the same from the source (entry point → handler → App → Store → SDK call).
const CODE_CALLS: &[(&str, &[&str])] = &[
    ("purchase", &["GetItem", "TransactWriteItems"]),
    ("status", &["BatchGetItem", "GetItem", "Query"]),
    ("user-lookup", &["GetItem"]),
];

/// IAM has no TransactWriteItems action: each item needs the action of its kind.
/// `Store::try_purchase` writes one Update (the stock shard) and one Put (the purchase).
const PURCHASE_TRANSACTION: &[&str] = &["dynamodb:PutItem", "dynamodb:UpdateItem"];

/// The IAM actions each function's role has in the template: exactly these, nothing more.
const EXPECTED_ACTIONS: &[(&str, &[&str])] = &[
    ("purchase", &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]),
    ("status", &["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Query"]),
    ("user-lookup", &["dynamodb:GetItem"]),
];

fn root() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    dir.canonicalize().unwrap_or(dir)
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn template() -> Value {
    serde_yaml_ng::from_str(&read("infra/template.yaml"))
        .expect("infra/template.yaml must be plain YAML (long-form intrinsics such as `Ref:`, no `!Ref` tags)")
}

fn toml_file(rel: &str) -> Value {
    toml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid TOML: {e}"))
}

fn obj<'v>(v: &'v Value, what: &str) -> &'v Map<String, Value> {
    v.as_object().unwrap_or_else(|| panic!("{what} must be a mapping, found {v}"))
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => {
            items.iter().map(|i| i.as_str().unwrap_or_else(|| panic!("not a string: {i}")).to_owned()).collect()
        }
        other => panic!("expected a string or a list of strings, found {other}"),
    }
}

/// The template's Serverless functions by binary name (`Metadata.BuildProperties.Binary`).
fn functions(t: &Value) -> BTreeMap<String, (String, &Value)> {
    let mut found = BTreeMap::new();
    for (id, res) in obj(&t["Resources"], "Resources") {
        if res["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        assert_eq!(res["Metadata"]["BuildMethod"], "rust-cargolambda", "{id}: BuildMethod");
        let binary = res["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{id} has no Metadata.BuildProperties.Binary"))
            .to_owned();
        assert!(found.insert(binary.clone(), (id.clone(), res)).is_none(), "two functions build the binary {binary}");
    }
    found
}

/// OpenAPI's name for a method in a path item.
fn openapi_method(method: &str) -> String {
    if method == "ANY" { "x-amazon-apigateway-any-method".into() } else { method.to_ascii_lowercase() }
}

/// (method, path, function) of every HttpApi event in the template.
fn template_routes(t: &Value) -> Vec<(String, String, String)> {
    let mut routes = Vec::new();
    for (binary, (id, res)) in functions(t) {
        let Some(events) = res["Properties"]["Events"].as_object() else { continue };
        for (name, event) in events {
            assert_eq!(event["Type"], "HttpApi", "{id}.{name}: only HttpApi events are expected");
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
/// every method; a list gives `{ method, function }` entries.
fn router_routes() -> Vec<(String, String, String)> {
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
                    (
                        method,
                        i["function"]
                            .as_str()
                            .unwrap_or_else(|| panic!("router {path}: entry without function"))
                            .to_owned(),
                    )
                })
                .collect(),
            other => panic!("router {path}: unexpected value {other}"),
        };
        routes.extend(entries.into_iter().map(|(m, f)| (m, path.clone(), f)));
    }
    routes
}

#[test]
fn local_router_and_template_route_the_same_paths_to_the_same_functions() {
    let t = template();
    let cloud = template_routes(&t);
    let local = router_routes();

    let unique: BTreeSet<_> = cloud.iter().collect();
    assert_eq!(unique.len(), cloud.len(), "the template routes a (method, path) twice: {cloud:?}");

    let pairs = |routes: &[(String, String, String)]| -> BTreeSet<(String, String)> {
        routes.iter().map(|(_, p, f)| (p.clone(), f.clone())).collect()
    };
    assert_eq!(pairs(&local), pairs(&cloud), "Cargo.toml router (left) and infra/template.yaml (right) differ");
    let api: BTreeSet<(String, String)> = API.iter().map(|(_, p, f)| (p.to_string(), f.to_string())).collect();
    assert_eq!(pairs(&cloud), api, "the template's (path, function) pairs must be the API table's");

    for (method, path, function) in API {
        let methods: BTreeSet<&str> = cloud.iter().filter(|(_, p, _)| p == path).map(|(m, _, _)| m.as_str()).collect();
        let explicit: Vec<&str> = methods.iter().copied().filter(|m| *m != "ANY").collect();
        assert_eq!(explicit, vec![*method], "{path}: the template's explicit method must be the API table's");
        assert!(
            methods.contains("ANY"),
            "{path}: no ANY route, so a wrong method would get API Gateway's bare 404 instead of our 405"
        );
        for (m, _, f) in local.iter().filter(|(_, p, _)| p == path) {
            assert_eq!(f, function, "{path}: Cargo.toml routes it to another function");
            assert!(m == "ANY" || m == method, "{path}: Cargo.toml routes {m}, the API table has {method}");
        }
    }

    // Operations written into the OpenAPI body (for their authorizer) must each be an event's route,
    // or API Gateway would import a route without an integration.
    let paths = obj(&t["Resources"]["HttpApi"]["Properties"]["DefinitionBody"]["paths"], "DefinitionBody.paths");
    for (path, item) in paths {
        for op in obj(item, path).keys() {
            assert!(
                cloud.iter().any(|(m, p, _)| p == path && openapi_method(m) == *op),
                "DefinitionBody has {op} {path} but no function event serves it"
            );
        }
    }
}

#[test]
fn user_routes_sit_behind_the_jwt_authorizer_unless_auth_mode_is_body() {
    let t = template();
    let auth_mode = &t["Parameters"]["AuthMode"];
    assert_eq!(auth_mode["Default"], "jwt", "deployments must default to JWT identity");
    assert_eq!(auth_mode["AllowedValues"], json!(["jwt", "body"]));
    assert_eq!(t["Conditions"]["UseJwt"], json!({"Fn::Equals": [{"Ref": "AuthMode"}, "jwt"]}));

    let body = &t["Resources"]["HttpApi"]["Properties"]["DefinitionBody"];
    assert_eq!(
        body["components"],
        json!({"Fn::If": ["UseJwt", {"securitySchemes": {"JwtAuthorizer": {
            "type": "oauth2",
            "x-amazon-apigateway-authorizer": {
                "type": "jwt",
                "identitySource": "$request.header.Authorization",
                "jwtConfiguration": {"issuer": {"Ref": "JwtIssuer"}, "audience": {"Ref": "JwtAudience"}}
            }
        }}}, {"Ref": "AWS::NoValue"}]}),
        "the JWT authorizer exists exactly when AuthMode is jwt"
    );
    let guarded = json!({"Fn::If": ["UseJwt", [{"JwtAuthorizer": []}], {"Ref": "AWS::NoValue"}]});
    for (method, path, function) in template_routes(&t) {
        let security = &body["paths"][&path][openapi_method(&method)]["security"];
        if USER_FUNCTIONS.contains(&function.as_str()) {
            assert_eq!(
                security, &guarded,
                "{method} {path} ({function}) must require the JWT authorizer when AuthMode is jwt"
            );
        } else {
            assert!(security.is_null(), "{method} {path} ({function}) is public and must have no authorizer");
        }
    }
    for (binary, (id, res)) in functions(&t) {
        for (name, event) in res["Properties"]["Events"].as_object().into_iter().flatten() {
            assert!(
                event["Properties"]["Auth"].is_null(),
                "{id}.{name}: authorization belongs in the DefinitionBody (SAM's Auth takes no conditions)"
            );
        }
        let var = |name: &str| {
            let own = &res["Properties"]["Environment"]["Variables"][name];
            if own.is_null() { t["Globals"]["Function"]["Environment"]["Variables"][name].clone() } else { own.clone() }
        };
        assert_eq!(
            var("AUTH_MODE"),
            json!({"Ref": "AuthMode"}),
            "{binary}: AUTH_MODE must follow the AuthMode parameter"
        );
        assert_eq!(var("TABLE_NAME"), json!({"Ref": "Table"}), "{binary}: TABLE_NAME must name the stack's table");
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the Rust source just well enough to follow calls.

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Rust source reduced to code: comments dropped, string and char literals emptied, whitespace
/// kept only between two identifier characters (so `self\n.client\n.get_item()` reads
/// `self.client.get_item()` and braces inside literals do not count).
fn code_only(src: &str) -> String {
    let s: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut space = false;
    let emit = |out: &mut String, text: &str, space: &mut bool| {
        if *space && out.chars().last().is_some_and(is_ident) && text.chars().next().is_some_and(is_ident) {
            out.push(' ');
        }
        *space = false;
        out.push_str(text);
    };
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        let next = s.get(i + 1).copied();
        if c.is_whitespace() {
            space = true;
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < s.len() && s[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < s.len() && !(s[i] == '*' && s[i + 1] == '/') {
                i += 1;
            }
            i += 2;
            space = true;
        } else if c == 'r'
            && matches!(next, Some('"' | '#'))
            && (i == 0 || !is_ident(s[i - 1]) || (s[i - 1] == 'b' && (i < 2 || !is_ident(s[i - 2]))))
        {
            let mut j = i + 1;
            let mut hashes = 0;
            while s.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if s.get(j) != Some(&'"') {
                emit(&mut out, "r", &mut space);
                i += 1;
                continue;
            }
            j += 1;
            while j < s.len() && !(s[j] == '"' && (1..=hashes).all(|k| s.get(j + k) == Some(&'#'))) {
                j += 1;
            }
            i = j + 1 + hashes;
            emit(&mut out, "\"\"", &mut space);
        } else if c == '"' {
            let mut j = i + 1;
            while j < s.len() && s[j] != '"' {
                j += if s[j] == '\\' { 2 } else { 1 };
            }
            i = j + 1;
            emit(&mut out, "\"\"", &mut space);
        } else if c == '\'' && next == Some('\\') {
            let mut j = i + 2;
            while j < s.len() && s[j] != '\'' {
                j += 1;
            }
            i = j + 1;
            emit(&mut out, "''", &mut space);
        } else if c == '\'' && s.get(i + 2) == Some(&'\'') {
            i += 3;
            emit(&mut out, "''", &mut space);
        } else {
            emit(&mut out, c.encode_utf8(&mut [0; 4]), &mut space);
            i += 1;
        }
    }
    out
}

/// The text inside the block whose `{` is at byte `open`.
fn block(code: &str, open: usize) -> &str {
    let mut depth = 0usize;
    for (k, b) in code.as_bytes()[open..].iter().enumerate() {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return &code[open + 1..open + k];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced braces in the source")
}

/// Every `fn name` with a body in `code`, name → body (bodies of same-named fns are joined).
fn fns(code: &str) -> BTreeMap<String, String> {
    let mut found: BTreeMap<String, String> = BTreeMap::new();
    for (at, _) in code.match_indices("fn ") {
        if code[..at].chars().last().is_some_and(is_ident) {
            continue;
        }
        let name: String = code[at + 3..].chars().take_while(|c| is_ident(*c)).collect();
        let rest = &code[at..];
        let (Some(brace), semi) = (rest.find('{'), rest.find(';')) else { continue };
        if name.is_empty() || semi.is_some_and(|s| s < brace) {
            continue;
        }
        found.entry(name).or_default().push_str(block(code, at + brace));
    }
    found
}

/// The fns of every `impl Type { ... }` block in `code`.
fn impl_fns(code: &str, ty: &str) -> BTreeMap<String, String> {
    let head = format!("impl {ty}{{");
    let mut found = BTreeMap::new();
    for (at, _) in code.match_indices(&head) {
        found.extend(fns(block(code, at + head.len() - 1)));
    }
    found
}

/// `name` of every `{prefix}name(` in `body`, where the prefix starts a token.
fn calls(body: &str, prefix: &str) -> BTreeSet<String> {
    body.match_indices(prefix)
        .filter(|(at, _)| !body[..*at].chars().last().is_some_and(is_ident))
        .filter_map(|(at, _)| {
            let rest = &body[at + prefix.len()..];
            let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
            (!name.is_empty() && rest[name.len()..].starts_with('(')).then_some(name)
        })
        .collect()
}

/// The identifier after every `prefix` in `body` that starts a token, called or not.
fn names_after(body: &str, prefix: &str) -> BTreeSet<String> {
    body.match_indices(prefix)
        .filter(|(at, _)| !body[..*at].chars().last().is_some_and(is_ident))
        .map(|(at, _)| body[at + prefix.len()..].chars().take_while(|c| is_ident(*c)).collect::<String>())
        .filter(|name| !name.is_empty())
        .collect()
}

/// `name` of every plain call `name(` in `body` (not a method: no `.` or `::` before it).
fn free_calls(body: &str) -> BTreeSet<String> {
    let chars: Vec<(usize, char)> = body.char_indices().collect();
    let mut found = BTreeSet::new();
    for (k, &(at, c)) in chars.iter().enumerate() {
        let before = k.checked_sub(1).map(|j| chars[j].1);
        if !is_ident(c) || before.is_some_and(|b| is_ident(b) || b == '.' || b == ':') {
            continue;
        }
        let name: String = body[at..].chars().take_while(|c| is_ident(*c)).collect();
        if body[at + name.len()..].starts_with('(') {
            found.insert(name);
        }
    }
    found
}

/// `get_item` → `GetItem`.
fn pascal(snake: &str) -> String {
    snake.split('_').map(|w| w[..1].to_ascii_uppercase() + &w[1..]).collect()
}

/// DynamoDB SDK operations (`client.op()`) in a body.
fn sdk_ops(body: &str) -> BTreeSet<String> {
    body.match_indices("client.")
        .filter_map(|(at, _)| {
            let rest = &body[at + "client.".len()..];
            let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
            (!name.is_empty() && rest[name.len()..].starts_with("()")).then(|| pascal(&name))
        })
        .collect()
}

/// IAM actions of the items a `TransactWriteItems` body builds.
fn transaction_items(body: &str) -> BTreeSet<String> {
    [("Update", "UpdateItem"), ("Put", "PutItem"), ("Delete", "DeleteItem"), ("ConditionCheck", "ConditionCheckItem")]
        .into_iter()
        .filter(|(builder, _)| !calls(body, &format!("{builder}::")).is_empty())
        .map(|(_, action)| format!("dynamodb:{action}"))
        .collect()
}

#[derive(Debug, Default)]
struct Reached {
    ops: BTreeSet<String>,
    transaction_items: BTreeSet<String>,
}

/// Follows the calls of one function binary: its `main.rs` → `flash_sale::http::handler` →
/// `app.method(` → `self.method(` / `self.store.method(` → Store's `self.method(` → `client.op()`.
fn reached_from(binary: &str) -> Reached {
    let main = code_only(&read(&format!("functions/{binary}/src/main.rs")));
    let handlers = fns(&code_only(&read("shared/src/http/handlers.rs")));
    let app = impl_fns(&code_only(&read("shared/src/app.rs")), "App");
    let mut store = BTreeMap::new();
    let store_dir = root().join("shared/src/store");
    for entry in std::fs::read_dir(&store_dir).expect("shared/src/store") {
        let path = entry.expect("store entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            let src = std::fs::read_to_string(&path).expect("store source");
            store.extend(impl_fns(&code_only(&src), "Store"));
        }
    }
    assert!(!app.is_empty() && !store.is_empty() && !handlers.is_empty(), "cannot find App, Store or the handlers");

    // `flash_sale::http::purchase_function(app, req)` or a handler passed by name to a runner.
    let entry = names_after(&main, "http::");
    assert!(!entry.is_empty(), "functions/{binary}/src/main.rs calls no flash_sale::http handler");
    let mut todo: Vec<(&str, String)> = entry.into_iter().map(|h| ("http", h)).collect();
    let mut seen = BTreeSet::new();
    let mut reached = Reached::default();
    while let Some((kind, name)) = todo.pop() {
        if !seen.insert((kind, name.clone())) {
            continue;
        }
        match kind {
            "http" => {
                let body =
                    handlers.get(&name).unwrap_or_else(|| panic!("handler {name} not found in http/handlers.rs"));
                todo.extend(calls(body, "app.").into_iter().map(|m| ("app", m)));
                let called = free_calls(body);
                todo.extend(
                    handlers.keys().filter(|h| **h != name && called.contains(*h)).map(|h| ("http", h.clone())),
                );
            }
            "app" => {
                let Some(body) = app.get(&name) else { continue };
                todo.extend(calls(body, "self.store.").into_iter().map(|m| ("store", m)));
                todo.extend(calls(body, "self.").into_iter().filter(|m| app.contains_key(m)).map(|m| ("app", m)));
            }
            _ => {
                let body = store
                    .get(&name)
                    .unwrap_or_else(|| panic!("App calls Store::{name}, which is not in shared/src/store"));
                todo.extend(calls(body, "self.").into_iter().filter(|m| store.contains_key(m)).map(|m| ("store", m)));
                let ops = sdk_ops(body);
                if ops.contains("TransactWriteItems") {
                    reached.transaction_items.extend(transaction_items(body));
                }
                reached.ops.extend(ops);
            }
        }
    }
    reached
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// `dynamodb:` actions that allow a DynamoDB operation.
fn actions_for(op: &str) -> BTreeSet<String> {
    match op {
        "TransactWriteItems" => set(PURCHASE_TRANSACTION),
        "TransactGetItems" => set(&["dynamodb:GetItem"]),
        other => BTreeSet::from([format!("dynamodb:{other}")]),
    }
}

/// The string value of `pub const NAME: &str = "...";` in a source file.
fn const_str(rel: &str, name: &str) -> String {
    let src = read(rel);
    let decl = format!("const {name}: &str = \"");
    let at = src.find(&decl).unwrap_or_else(|| panic!("{rel} has no `{decl}...`")) + decl.len();
    src[at..].split('"').next().unwrap_or_default().to_owned()
}

#[test]
fn each_function_has_exactly_the_iam_actions_its_code_calls() {
    let t = template();
    let fns = functions(&t);
    let code_calls: BTreeMap<&str, BTreeSet<String>> = CODE_CALLS.iter().map(|(f, ops)| (*f, set(ops))).collect();
    let expected: BTreeMap<&str, BTreeSet<String>> = EXPECTED_ACTIONS.iter().map(|(f, a)| (*f, set(a))).collect();
    assert_eq!(fns.keys().map(String::as_str).collect::<Vec<_>>(), code_calls.keys().copied().collect::<Vec<_>>());

    // 1. The table above is what the code does: follow each function's calls in the source.
    for (binary, ops) in &code_calls {
        let reached = reached_from(binary);
        assert_eq!(
            &reached.ops, ops,
            "{binary}: the DynamoDB calls its code reaches (left) differ from CODE_CALLS (right)"
        );
        if ops.contains("TransactWriteItems") {
            assert_eq!(
                reached.transaction_items,
                set(PURCHASE_TRANSACTION),
                "{binary}: the purchase transaction's items changed"
            );
        }
        let actions: BTreeSet<String> = ops.iter().flat_map(|op| actions_for(op)).collect();
        assert_eq!(&actions, &expected[binary], "{binary}: EXPECTED_ACTIONS does not follow from CODE_CALLS");
    }

    // 2. Every SDK call in the request-path files is one some function is known to make.
    let known: BTreeSet<&String> = code_calls.values().flatten().collect();
    for file in ["shared/src/app.rs", "shared/src/store/mod.rs", "shared/src/store/purchase.rs"] {
        for op in sdk_ops(&code_only(&read(file))) {
            assert!(known.contains(&op), "{file} calls {op}, which no function's CODE_CALLS covers");
        }
    }

    // 3. The template grants each function exactly its actions, on this table (or its sales index).
    let index = const_str("shared/src/store/admin.rs", "SALES_INDEX");
    let table_arn = json!({"Fn::GetAtt": ["Table", "Arn"]});
    let index_arn = json!({"Fn::Sub": format!("${{Table.Arn}}/index/{index}")});
    let gsis = t["Resources"]["Table"]["Properties"]["GlobalSecondaryIndexes"].as_array().cloned().unwrap_or_default();
    assert!(gsis.iter().any(|g| g["IndexName"] == index.as_str()), "the table has no `{index}` index");
    let mut granted_anywhere = BTreeSet::new();
    for (binary, (id, res)) in &fns {
        let policies = res["Properties"]["Policies"].as_array().unwrap_or_else(|| panic!("{id} has no Policies list"));
        let mut granted = BTreeSet::new();
        for policy in policies {
            let statements = policy["Statement"]
                .as_array()
                .unwrap_or_else(|| panic!("{id}: every policy must be an explicit statement list (no SAM policy templates or managed policies): {policy}"));
            for st in statements {
                assert_eq!(st["Effect"], "Allow", "{id}: {st}");
                assert!(
                    st["NotAction"].is_null() && st["NotResource"].is_null(),
                    "{id}: NotAction/NotResource widen access: {st}"
                );
                let actions = strings(&st["Action"]);
                for action in &actions {
                    assert!(!action.contains('*'), "{id}: wildcard action {action}");
                    assert!(action.starts_with("dynamodb:"), "{id}: unexpected action {action}");
                }
                let resources = match &st["Resource"] {
                    Value::Array(items) => items.clone(),
                    one => vec![one.clone()],
                };
                for resource in &resources {
                    assert!(!resource.to_string().contains('*'), "{id}: wildcard resource {resource}");
                    let queries = actions.iter().any(|a| a == "dynamodb:Query");
                    let allowed = if queries { &index_arn } else { &table_arn };
                    assert_eq!(resource, allowed, "{id}: {actions:?} must be granted on {allowed} only");
                }
                granted.extend(actions);
            }
        }
        assert_eq!(
            &granted,
            &expected[binary.as_str()],
            "{id} ({binary}): template actions (left) vs the code's (right)"
        );
        granted_anywhere.extend(granted);
    }
    let union: BTreeSet<String> = expected.values().flatten().cloned().collect();
    assert_eq!(granted_anywhere, union, "the template grants an action no function's code needs");
}

#[test]
fn the_table_and_functions_match_the_code() {
    let t = template();
    let table = &t["Resources"]["Table"]["Properties"];
    // shared/src/store/admin.rs creates the same table locally.
    let admin = read("shared/src/store/admin.rs");
    for attr in table["AttributeDefinitions"].as_array().expect("AttributeDefinitions") {
        let name = attr["AttributeName"].as_str().unwrap_or_default();
        let kind = attr["AttributeType"].as_str().unwrap_or_default();
        assert!(
            admin.contains(&format!("attr(\"{name}\", ScalarAttributeType::{kind})")),
            "admin.rs does not define {name} as {kind}"
        );
    }
    assert_eq!(
        table["KeySchema"],
        json!([{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    );
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true);
    assert_eq!(table["SSESpecification"]["SSEEnabled"], true);
    assert_eq!(table["TimeToLiveSpecification"], json!({"AttributeName": "expiresAt", "Enabled": true}));
    assert_eq!(table["DeletionProtectionEnabled"], json!({"Fn::If": ["ProtectTable", true, false]}));

    // CodeUri is relative to infra/: it must be the workspace root, whose members build the binaries.
    let globals = &t["Globals"]["Function"];
    assert!(toml_file("infra/../Cargo.toml")["workspace"].is_object(), "infra/.. is not the workspace root");
    for (binary, (id, res)) in functions(&t) {
        let props = &res["Properties"];
        let prop = |k: &str| if props[k].is_null() { globals[k].clone() } else { props[k].clone() };
        assert_eq!(props["CodeUri"], "..", "{id}: CodeUri must be the workspace root, relative to infra/");
        assert_eq!(prop("Runtime"), "provided.al2023", "{id}");
        assert_eq!(prop("Architectures"), json!(["arm64"]), "{id}");
        assert_eq!(prop("Handler"), "bootstrap", "{id}");
        assert_eq!(prop("Tracing"), "Active", "{id}");
        assert_eq!(props["LoggingConfig"]["LogFormat"], "JSON", "{id}");
        let group =
            props["LoggingConfig"]["LogGroup"]["Ref"].as_str().unwrap_or_else(|| panic!("{id}: no own log group"));
        assert_eq!(
            t["Resources"][group]["Properties"]["RetentionInDays"],
            json!({"Ref": "LogRetentionInDays"}),
            "{group}"
        );
        let package = toml_file(&format!("functions/{binary}/Cargo.toml"));
        let bins: Vec<&str> = package["bin"]
            .as_array()
            .map(|b| b.iter().filter_map(|b| b["name"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            package["package"]["name"] == binary.as_str() || bins.contains(&binary.as_str()),
            "{id} builds the binary {binary}, which functions/{binary} does not define"
        );
    }
}

/// Every `.rs` file under `shared/src`, with its path.
fn shared_sources() -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let mut dirs = vec![root().join("shared/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source file");
                found.push((path, text));
            }
        }
    }
    found
}

/// (name, label keys) of every `counter!` / `histogram!` / `gauge!` the code records.
fn recorded_metrics() -> BTreeSet<(String, Vec<String>)> {
    let mut found = BTreeSet::new();
    for (path, src) in shared_sources() {
        for mac in ["counter!(", "histogram!(", "gauge!("] {
            for (at, _) in src.match_indices(mac) {
                if src[..at].chars().last().is_some_and(is_ident) {
                    continue; // describe_counter! and friends
                }
                let args = &src[at + mac.len()..];
                let args = &args[..args.find(')').unwrap_or(args.len())];
                let name = args
                    .trim_start()
                    .strip_prefix('"')
                    .and_then(|rest| rest.split('"').next())
                    .unwrap_or_else(|| panic!("{}: metric name is not a string literal: {args}", path.display()));
                let labels = args.split("\" =>").filter_map(|before| before.rsplit('"').next()).map(str::to_owned);
                let labels: Vec<String> = labels.take(args.matches("\" =>").count()).collect();
                found.insert((name.to_owned(), labels));
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
    let ns = const_str("shared/src/telemetry.rs", "NAMESPACE");

    // Every outcome the code names has its own line on the outcomes chart.
    let src = read("shared/src/telemetry.rs");
    let start = src.find("fn purchase_outcome").expect("telemetry.rs: fn purchase_outcome");
    let body = &src[start..start + src[start..].find("\n}").expect("end of purchase_outcome")];
    let outcomes: Vec<&str> = body.split("=> \"").skip(1).filter_map(|s| s.split('"').next()).collect();
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
    assert!(!metrics.is_empty(), "the code records no metrics (counter!/histogram!/gauge!)");
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

#[test]
fn samconfig_sets_only_parameters_the_template_takes() {
    let t = template();
    let params = obj(&t["Parameters"], "Parameters");
    let config = toml_file("samconfig.toml");
    let mut stacks = BTreeSet::new();
    let mut overrides_of = BTreeMap::new();
    for env in ["default", "dev", "prod"] {
        let section = |cmd: &str| config[env][cmd]["parameters"].clone();
        let stack = section("global")["stack_name"]
            .as_str()
            .unwrap_or_else(|| panic!("[{env}.global.parameters] stack_name"))
            .to_owned();
        assert!(stacks.insert(stack.clone()), "two environments deploy the stack {stack}");
        assert_eq!(section("validate")["lint"], true, "[{env}.validate.parameters] lint");
        assert_eq!(section("validate")["template_file"], "infra/template.yaml", "[{env}.validate.parameters]");
        assert_eq!(section("build")["template_file"], "infra/template.yaml", "[{env}.build.parameters]");
        // SAM's cache would checksum the whole repository (CodeUri is its root) on every build.
        assert_eq!(section("build")["cached"], false, "[{env}.build.parameters] cached");
        assert_eq!(section("build")["parallel"], true, "[{env}.build.parameters] parallel");
        let deploy = section("deploy");
        assert!(
            deploy["template_file"].is_null() && section("global")["template_file"].is_null(),
            "[{env}] deploy must use the built template (.aws-sam/build), not infra/template.yaml"
        );
        assert!(
            strings(&deploy["capabilities"]).join(" ").split(' ').any(|c| c == "CAPABILITY_IAM"),
            "[{env}.deploy.parameters] capabilities"
        );
        let raw = deploy["parameter_overrides"]
            .as_str()
            .unwrap_or_else(|| panic!("[{env}.deploy.parameters] parameter_overrides"));
        let mut overrides = BTreeMap::new();
        for pair in raw.split_whitespace() {
            let (key, value) =
                pair.split_once('=').unwrap_or_else(|| panic!("[{env}] override `{pair}` is not KEY=VALUE"));
            let param =
                params.get(key).unwrap_or_else(|| panic!("[{env}] overrides {key}, which the template does not have"));
            if let Some(allowed) = param["AllowedValues"].as_array() {
                assert!(
                    allowed.iter().any(|a| a.as_str().map_or(a.to_string() == value, |a| a == value)),
                    "[{env}] {key}={value} is not allowed"
                );
            }
            if param["Type"] == "Number" {
                let n: f64 = value.parse().unwrap_or_else(|_| panic!("[{env}] {key}={value} is not a number"));
                assert!(param["MinValue"].as_f64().is_none_or(|min| n >= min), "[{env}] {key}={value} below MinValue");
                assert!(param["MaxValue"].as_f64().is_none_or(|max| n <= max), "[{env}] {key}={value} above MaxValue");
            }
            overrides.insert(key.to_owned(), value.to_owned());
        }
        overrides_of.insert(env, (overrides, deploy));
    }
    let (prod, prod_deploy) = &overrides_of["prod"];
    assert_eq!(prod["AuthMode"], "jwt", "prod identifies buyers by JWT");
    assert_eq!(prod["TableDeletionProtection"], "true", "prod protects its table");
    assert_eq!(prod_deploy["confirm_changeset"], true, "prod deploys only a reviewed changeset");
    let (dev, _) = &overrides_of["dev"];
    assert_eq!(dev["AuthMode"], "body", "dev is the test stage for load tests");
    let days = |o: &BTreeMap<String, String>| o["LogRetentionInDays"].parse::<u32>().expect("LogRetentionInDays");
    assert!(days(prod) > days(dev), "prod keeps logs longer than dev");
}

// ---------------------------------------------------------------------------------------------
// Storefront: one CloudFront distribution serves the page (private S3 bucket) and the API.

/// AWS managed CloudFront policies, by their fixed ids.
const CACHING_DISABLED: &str = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad";
const CACHING_OPTIMIZED: &str = "658327ea-f89d-4fab-a63d-7e88639e58f6";
const ALL_VIEWER_EXCEPT_HOST_HEADER: &str = "b689b0a8-53d0-40ab-baf2-68738e2966ac";

/// Every method CloudFront can forward (the purchase needs POST with its body).
const ALL_METHODS: &[&str] = &["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"];

/// Error codes CloudFront caches for GET unless told otherwise (10 s by default).
const CACHED_ERROR_CODES: &[u64] = &[400, 403, 404, 405, 414, 500, 501, 502, 503, 504];

/// Values for the API table's path parameters, including awkward ones: a sale called
/// `purchases` must still get the status behavior.
const SALE_IDS: &[&str] = &["demo-sale", "purchases", "s1"];
const USER_IDS: &[&str] = &["alice", "purchases", "u-42"];

/// The one resource of a type in the template: (logical id, resource).
fn the_resource<'t>(t: &'t Value, kind: &str) -> (&'t str, &'t Value) {
    let found: Vec<_> = obj(&t["Resources"], "Resources").iter().filter(|(_, r)| r["Type"] == kind).collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {kind}, found {:?}",
        found.iter().map(|(id, _)| id).collect::<Vec<_>>()
    );
    (found[0].0.as_str(), found[0].1)
}

/// CloudFront's path-pattern match: `*` is any run of characters (`/` included), `?` exactly one,
/// everything else literal and case-sensitive; the pattern covers the whole path.
fn path_matches(pattern: &str, path: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), path.chars().collect());
    // matched[j]: the pattern so far matches the first j characters of the path.
    let mut matched = vec![false; s.len() + 1];
    matched[0] = true;
    for c in p {
        let mut next = vec![false; s.len() + 1];
        for j in 0..=s.len() {
            next[j] = match c {
                '*' => matched[j] || (j > 0 && next[j - 1]),
                '?' => j > 0 && matched[j - 1],
                lit => j > 0 && matched[j - 1] && s[j - 1] == lit,
            };
        }
        matched = next;
    }
    matched[s.len()]
}

#[test]
fn path_patterns_match_like_cloudfront() {
    assert!(path_matches("/sales*", "/sales"));
    assert!(path_matches("/sales*", "/sales/demo/purchases/alice"));
    assert!(path_matches("/sales/*/purchases*", "/sales/demo/purchases"));
    assert!(path_matches("/sales/*/purchases/*", "/sales/demo/purchases/alice"));
    assert!(path_matches("/a?c", "/abc"));
    assert!(!path_matches("/sales/*/purchases*", "/sales/purchases"));
    assert!(!path_matches("/sales/*/purchases/*", "/sales/demo/purchases"));
    assert!(!path_matches("/health", "/health/x"));
    assert!(!path_matches("/Sales*", "/sales"));
}

/// The distribution's config and its cache behavior for a request path: the first ordered
/// behavior whose pattern matches (CloudFront's rule), else the default one. Returns the
/// behavior's position (`None` for the default) and the behavior.
fn behavior_for<'c>(config: &'c Value, path: &str) -> (Option<usize>, &'c Value) {
    let ordered = config["CacheBehaviors"].as_array().map(Vec::as_slice).unwrap_or_default();
    for (i, b) in ordered.iter().enumerate() {
        let pattern = b["PathPattern"].as_str().unwrap_or_else(|| panic!("cache behavior {i} has no PathPattern"));
        if path_matches(pattern, path) {
            return (Some(i), b);
        }
    }
    (None, &config["DefaultCacheBehavior"])
}

/// Request paths for an API path: each `{param}` replaced by sample values.
fn sample_paths(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for sale in SALE_IDS {
        for user in USER_IDS {
            let p = path.replace("{saleId}", sale).replace("{userId}", user);
            assert!(!p.contains('{'), "{path}: a path parameter this test does not know");
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

fn distribution(t: &Value) -> &Value {
    &the_resource(t, "AWS::CloudFront::Distribution").1["Properties"]["DistributionConfig"]
}

/// Origin id → origin.
fn origins(config: &Value) -> BTreeMap<String, &Value> {
    let list = config["Origins"].as_array().expect("DistributionConfig.Origins");
    list.iter().map(|o| (o["Id"].as_str().expect("origin Id").to_owned(), o)).collect()
}

/// The id of the origin that is the HttpApi (custom origin, HTTPS only).
fn api_origin(config: &Value) -> String {
    let domain = json!({"Fn::Sub": "${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"});
    let found: Vec<_> = origins(config).into_iter().filter(|(_, o)| o["DomainName"] == domain).collect();
    assert_eq!(found.len(), 1, "exactly one origin must be the HttpApi ({domain})");
    let (id, origin) = &found[0];
    assert_eq!(
        origin["CustomOriginConfig"]["OriginProtocolPolicy"], "https-only",
        "CloudFront must reach the API over HTTPS only"
    );
    assert!(origin["OriginPath"].as_str().unwrap_or("").is_empty(), "the $default stage serves the API at /");
    id.clone()
}

fn methods(b: &Value) -> BTreeSet<String> {
    strings(&b["AllowedMethods"]).into_iter().collect()
}

#[test]
fn cloudfront_never_caches_purchases_or_lookups_and_sends_them_first() {
    let t = template();
    let config = distribution(&t);
    let api = api_origin(config);
    let ordered = config["CacheBehaviors"].as_array().expect("DistributionConfig.CacheBehaviors");

    // Where GET /sales/{saleId} goes: the status behavior.
    let (status_at, _) = behavior_for(config, &sample_paths("/sales/{saleId}")[0]);
    let status_at = status_at.expect("GET /sales/{saleId} must have a cache behavior of its own");

    for (method, path, function) in API {
        for sample in sample_paths(path) {
            let (at, b) = behavior_for(config, &sample);
            let name = at.map_or("the default behavior".to_owned(), |i| format!("`{}`", ordered[i]["PathPattern"]));
            assert_eq!(b["TargetOriginId"], api.as_str(), "{method} {sample} ({function}) reaches {name}, not the API");
            assert!(methods(b).contains(*method), "{method} {sample}: {name} does not allow {method}");
            assert!(
                b["ViewerProtocolPolicy"] != "allow-all",
                "{method} {sample}: {name} must not serve the API over plain HTTP"
            );
            if USER_FUNCTIONS.contains(function) || *path == "/health" {
                assert_eq!(
                    b["CachePolicyId"], CACHING_DISABLED,
                    "{method} {sample} ({function}) goes to {name}, which may cache it: it must use CachingDisabled"
                );
            }
            if USER_FUNCTIONS.contains(function) {
                assert_eq!(
                    b["OriginRequestPolicyId"], ALL_VIEWER_EXCEPT_HOST_HEADER,
                    "{method} {sample}: {name} must forward Authorization, query and body but not Host (AllViewerExceptHostHeader)"
                );
                assert_eq!(
                    methods(b),
                    set(ALL_METHODS),
                    "{sample}: {name} must forward every method (POST purchases; others get the API's 405)"
                );
                let at = at.expect("user routes have behaviors of their own");
                assert!(
                    at < status_at,
                    "{sample}: `{}` must come before the status pattern `{}` (first match wins)",
                    ordered[at]["PathPattern"],
                    ordered[status_at]["PathPattern"]
                );
            }
        }
    }
    // Every purchase-path behavior is uncached and placed ahead of the status pattern, even one
    // the samples above do not reach.
    for (i, b) in ordered.iter().enumerate() {
        let pattern = b["PathPattern"].as_str().unwrap_or_default();
        if pattern.contains("/purchases") {
            assert_eq!(b["CachePolicyId"], CACHING_DISABLED, "`{pattern}` must use CachingDisabled");
            assert!(i < status_at, "`{pattern}` must come before `{}`", ordered[status_at]["PathPattern"]);
        }
    }

    // The page: everything else, from the bucket, cached by the managed CachingOptimized policy.
    for page in ["/", "/index.html", "/assets/index-5C0yIOGZ.js", "/favicon.ico"] {
        let (at, b) = behavior_for(config, page);
        assert_eq!(at, None, "{page} must be served by the default behavior (the page), not an API behavior");
        assert!(b["TargetOriginId"] != api.as_str(), "{page} must come from the bucket");
        assert_eq!(b["CachePolicyId"], CACHING_OPTIMIZED, "{page}: CachingOptimized");
        assert_eq!(b["ViewerProtocolPolicy"], "redirect-to-https", "{page}");
    }
    assert_eq!(config["DefaultRootObject"], "index.html");
    assert_eq!(config["HttpVersion"], "http2and3");
    assert_eq!(config["Enabled"], true);
    assert_eq!(config["PriceClass"], json!({"Ref": "StorefrontPriceClass"}));
    assert_eq!(t["Parameters"]["StorefrontPriceClass"]["Default"], "PriceClass_100");

    // Error responses: CloudFront would otherwise keep a 403 or 503 for 10 s, ignoring `no-store`
    // for most codes, and serve one shopper's error to the next; no page replaces the API's errors.
    let errors = config["CustomErrorResponses"].as_array().map(Vec::as_slice).unwrap_or_default();
    for code in CACHED_ERROR_CODES {
        let rule = errors
            .iter()
            .find(|e| e["ErrorCode"].as_u64() == Some(*code))
            .unwrap_or_else(|| panic!("no CustomErrorResponses entry for {code}: CloudFront would cache it for 10 s"));
        assert_eq!(rule["ErrorCachingMinTTL"], 0, "{code} must not be cached");
        assert!(rule["ResponsePagePath"].is_null(), "{code}: an error page would replace the API's problem responses");
    }

    let outputs = &t["Outputs"];
    let (dist_id, _) = the_resource(&t, "AWS::CloudFront::Distribution");
    assert_eq!(
        outputs["StorefrontUrl"]["Value"],
        json!({"Fn::Sub": format!("https://${{{dist_id}.DomainName}}/")}),
        "StorefrontUrl"
    );
    for kept in ["ApiUrl", "TableName", "DashboardUrl"] {
        assert!(outputs[kept].is_object(), "output {kept} is gone");
    }
}

#[test]
fn status_is_cached_for_about_a_second_and_the_same_for_everyone() {
    let t = template();
    let config = distribution(&t);
    for path in ["/sales", "/sales/demo-sale"] {
        let (at, b) = behavior_for(config, path);
        assert!(at.is_some(), "GET {path} must have its own cache behavior, not the page's");
        let policy_id = b["CachePolicyId"]["Ref"].as_str().unwrap_or_else(|| {
            panic!("GET {path}: its cache policy must be the template's own (Ref), found {}", b["CachePolicyId"])
        });
        let policy = &t["Resources"][policy_id];
        assert_eq!(policy["Type"], "AWS::CloudFront::CachePolicy", "{policy_id}");
        let c = &policy["Properties"]["CachePolicyConfig"];
        let ttl = |k: &str| c[k].as_u64().unwrap_or_else(|| panic!("{policy_id}: {k} must be a number"));
        let (min, default, max) = (ttl("MinTTL"), ttl("DefaultTTL"), ttl("MaxTTL"));
        assert_eq!(min, 0, "{policy_id}: MinTTL 0, so `no-store` responses are not cached");
        assert!(default <= 1, "{policy_id}: DefaultTTL {default} > 1 s: stock would look stale");
        assert!(max <= 2, "{policy_id}: MaxTTL {max} > 2 s: stock would look stale");

        // The policy honours what the status function says: its max-age is within [MinTTL, MaxTTL],
        // so CloudFront neither shortens nor stretches it.
        let header = const_str("shared/src/http/handlers.rs", "STATUS_CACHE");
        let max_age: u64 = header
            .split(',')
            .find_map(|d| d.trim().strip_prefix("max-age="))
            .unwrap_or_else(|| panic!("STATUS_CACHE `{header}` has no max-age"))
            .parse()
            .expect("max-age is a number");
        assert!(header.contains("public"), "STATUS_CACHE `{header}` must allow shared caches");
        assert!(
            (min..=max).contains(&max_age) && max_age >= 1,
            "status responses say max-age={max_age}; {policy_id} allows {min}..={max} s"
        );

        // Nothing personal in the key, and nothing forwarded beyond it: one copy per URL.
        let key = &c["ParametersInCacheKeyAndForwardedToOrigin"];
        assert_eq!(key["CookiesConfig"]["CookieBehavior"], "none", "{policy_id}: cookies in the key");
        assert_eq!(key["HeadersConfig"]["HeaderBehavior"], "none", "{policy_id}: headers in the key");
        assert_eq!(key["QueryStringsConfig"]["QueryStringBehavior"], "none", "{policy_id}: query strings in the key");
        assert!(!key.to_string().to_ascii_lowercase().contains("authorization"), "{policy_id} keys on Authorization");
        for encoding in ["EnableAcceptEncodingGzip", "EnableAcceptEncodingBrotli"] {
            assert_eq!(key[encoding], false, "{policy_id}: {encoding} would keep a copy per encoding");
        }
        assert!(
            b["OriginRequestPolicyId"].is_null(),
            "GET {path}: an origin request policy would send more than the key to the status function"
        );
        assert_eq!(strings(&b["CachedMethods"]), ["GET", "HEAD"], "GET {path}: cached methods");
    }
}

#[test]
fn storefront_bucket_is_private_and_only_the_distribution_reads_it() {
    let t = template();
    let (bucket_id, bucket) = the_resource(&t, "AWS::S3::Bucket");
    let props = &bucket["Properties"];
    for flag in ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"] {
        assert_eq!(props["PublicAccessBlockConfiguration"][flag], true, "{bucket_id}: {flag}");
    }
    assert_eq!(props["OwnershipControls"]["Rules"], json!([{"ObjectOwnership": "BucketOwnerEnforced"}]), "{bucket_id}");
    let sse = &props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"];
    assert!(sse["SSEAlgorithm"].is_string(), "{bucket_id}: server-side encryption");
    for public in ["WebsiteConfiguration", "AccessControl", "CorsConfiguration"] {
        assert!(props[public].is_null(), "{bucket_id}: {public} (the bucket is reached only through CloudFront)");
    }

    // The distribution reads it through its origin access control, signing every request.
    let (dist_id, _) = the_resource(&t, "AWS::CloudFront::Distribution");
    let (oac_id, oac) = the_resource(&t, "AWS::CloudFront::OriginAccessControl");
    let oac = &oac["Properties"]["OriginAccessControlConfig"];
    assert_eq!(oac["OriginAccessControlOriginType"], "s3");
    assert_eq!(oac["SigningBehavior"], "always");
    assert_eq!(oac["SigningProtocol"], "sigv4");
    let config = distribution(&t);
    let to_bucket: Vec<_> =
        origins(config).into_iter().filter(|(_, o)| o.to_string().contains(&format!("\"{bucket_id}"))).collect();
    assert_eq!(to_bucket.len(), 1, "exactly one origin must be the bucket");
    let (origin_id, origin) = &to_bucket[0];
    assert_eq!(origin["DomainName"], json!({"Fn::GetAtt": [bucket_id, "RegionalDomainName"]}), "{origin_id}");
    assert_eq!(origin["OriginAccessControlId"], json!({"Fn::GetAtt": [oac_id, "Id"]}), "{origin_id}");
    assert!(
        origin["S3OriginConfig"]["OriginAccessIdentity"].as_str().unwrap_or("").is_empty(),
        "{origin_id}: a legacy origin access identity instead of the OAC"
    );
    assert_eq!(config["DefaultCacheBehavior"]["TargetOriginId"], origin_id.as_str(), "the page comes from the bucket");

    // Its policy: reads for this distribution only, and no plain-HTTP access at all.
    let policies: Vec<_> = obj(&t["Resources"], "Resources")
        .values()
        .filter(|r| r["Type"] == "AWS::S3::BucketPolicy" && r["Properties"]["Bucket"] == json!({"Ref": bucket_id}))
        .collect();
    assert_eq!(policies.len(), 1, "{bucket_id} needs exactly one bucket policy");
    let statements = policies[0]["Properties"]["PolicyDocument"]["Statement"].as_array().expect("Statement list");
    let source = json!({"Fn::Sub": format!("arn:${{AWS::Partition}}:cloudfront::${{AWS::AccountId}}:distribution/${{{dist_id}}}")});
    let mut allows = 0;
    let mut tls_only = false;
    for st in statements {
        match st["Effect"].as_str() {
            Some("Allow") => {
                allows += 1;
                assert_eq!(st["Principal"], json!({"Service": "cloudfront.amazonaws.com"}), "{st}");
                assert_eq!(strings(&st["Action"]), ["s3:GetObject"], "CloudFront only reads: {st}");
                assert_eq!(
                    st["Condition"],
                    json!({"StringEquals": {"AWS:SourceArn": source}}),
                    "only this distribution: {st}"
                );
                assert!(st["NotPrincipal"].is_null() && st["NotAction"].is_null(), "{st}");
            }
            Some("Deny") => {
                tls_only |= st["Principal"] == "*"
                    && st["Condition"] == json!({"Bool": {"aws:SecureTransport": "false"}})
                    && strings(&st["Action"]) == ["s3:*"];
            }
            other => panic!("statement with Effect {other:?}: {st}"),
        }
    }
    assert!(allows >= 1, "the bucket policy lets the distribution read nothing");
    assert!(tls_only, "the bucket policy must deny requests without TLS (aws:SecureTransport false)");
    assert_eq!(t["Outputs"]["StorefrontBucket"]["Value"], json!({"Ref": bucket_id}), "StorefrontBucket output");
}

// ---------------------------------------------------------------------------------------------
// cfn-lint

fn cfn_lint() -> PathBuf {
    let path =
        std::env::var_os("CFN_LINT").map(PathBuf::from).unwrap_or_else(|| root().join(".tools/venv/bin/cfn-lint"));
    assert!(
        path.is_file(),
        "cfn-lint not found at {}: `cargo xtask test` installs it into .tools/venv, or set CFN_LINT to a cfn-lint binary",
        path.display()
    );
    path
}

/// Runs cfn-lint on a template; returns whether it passed and what it printed.
fn lint(template: &Path) -> (bool, String) {
    let out = Command::new(cfn_lint())
        .arg("--")
        .arg(template)
        .output()
        .unwrap_or_else(|e| panic!("cannot run cfn-lint: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn the_template_lints_clean() {
    let (ok, output) = lint(&root().join("infra/template.yaml"));
    assert!(ok, "cfn-lint reports problems in infra/template.yaml:\n{output}");
}

#[test]
fn lint_catches_a_broken_template() {
    let good = read("infra/template.yaml");
    let cases = [
        (
            "a Ref to a missing resource",
            "LogGroup:\n          Ref: PurchaseLogGroup",
            "LogGroup:\n          Ref: NoSuchLogGroup",
            "NoSuchLogGroup",
        ),
        (
            "an unknown resource type",
            "Type: AWS::DynamoDB::Table",
            "Type: AWS::DynamoDB::Tabel",
            "AWS::DynamoDB::Tabel",
        ),
    ];
    for (what, from, to, culprit) in cases {
        assert!(good.contains(from), "the template no longer contains `{from}`: update this test's broken copy");
        let path = std::env::temp_dir().join(format!("flash-sale-broken-{}-{culprit}.yaml", std::process::id()));
        std::fs::write(&path, good.replacen(from, to, 1)).expect("write the broken template");
        let (ok, output) = lint(&path);
        let _ = std::fs::remove_file(&path);
        assert!(!ok, "cfn-lint passed a template with {what}:\n{output}");
        assert!(output.contains(culprit), "cfn-lint failed on {what} without naming `{culprit}`:\n{output}");
    }
}
