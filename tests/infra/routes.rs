//! Routes: the template, the local router and the route table of docs/api.md agree; user routes need a
//! JWT, the payment backend's route an IAM signature.

use std::collections::BTreeSet;

use integration_tests::template::{functions, read, template};
use serde_json::{Value, json};

use crate::common::{
    API, BACKEND_FUNCTIONS, EVENT_FUNCTIONS, USER_FUNCTIONS, api_methods, obj, openapi_method, router_routes,
    template_routes,
};

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

    for (_, path, function) in API {
        let methods: BTreeSet<&str> = cloud.iter().filter(|(_, p, _)| p == path).map(|(m, _, _)| m.as_str()).collect();
        let explicit: BTreeSet<&str> = methods.iter().copied().filter(|m| *m != "ANY").collect();
        assert_eq!(explicit, api_methods(path), "{path}: the template's explicit methods must be the API table's");
        assert!(
            methods.contains("ANY"),
            "{path}: no ANY route, so a wrong method would get API Gateway's bare 404 instead of our 405"
        );
        for (m, _, f) in local.iter().filter(|(_, p, _)| p == path) {
            assert_eq!(f, function, "{path}: Cargo.toml routes it to another function");
            assert!(
                m == "ANY" || api_methods(path).contains(m.as_str()),
                "{path}: Cargo.toml routes {m}, the API table has {:?}",
                api_methods(path)
            );
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

/// API Gateway's IAM authorization as an OpenAPI security scheme (`x-amazon-apigateway-authtype`).
fn sigv4_scheme() -> Value {
    json!({"type": "apiKey", "name": "Authorization", "in": "header", "x-amazon-apigateway-authtype": "awsSigv4"})
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
        json!({"Fn::If": ["UseJwt", {"securitySchemes": {
            "JwtAuthorizer": {
                "type": "oauth2",
                "x-amazon-apigateway-authorizer": {
                    "type": "jwt",
                    "identitySource": "$request.header.Authorization",
                    "jwtConfiguration": {"issuer": {"Ref": "JwtIssuer"}, "audience": {"Ref": "JwtAudience"}}
                }
            },
            "PaymentBackendSigV4": sigv4_scheme()
        }}, {"securitySchemes": {"PaymentBackendSigV4": sigv4_scheme()}}]}),
        "the JWT authorizer exists exactly when AuthMode is jwt; IAM authorization in every AuthMode"
    );
    let guarded = json!({"Fn::If": ["UseJwt", [{"JwtAuthorizer": []}], {"Ref": "AWS::NoValue"}]});
    let signed = json!([{"PaymentBackendSigV4": []}]);
    let routes = template_routes(&t);
    for (method, path, function) in &routes {
        let security = &body["paths"][path][openapi_method(method)]["security"];
        if USER_FUNCTIONS.contains(&function.as_str()) {
            assert_eq!(
                security, &guarded,
                "{method} {path} ({function}) must require the JWT authorizer when AuthMode is jwt"
            );
        } else if BACKEND_FUNCTIONS.contains(&function.as_str()) {
            // The wrong-method ANY route too: an unsigned request never reaches the function.
            assert_eq!(
                security, &signed,
                "{method} {path} ({function}) is the payment backend's: IAM (SigV4) in every AuthMode, no JWT"
            );
        } else {
            assert!(security.is_null(), "{method} {path} ({function}) is public and must have no authorizer");
        }
    }
    for backend in BACKEND_FUNCTIONS {
        assert!(routes.iter().any(|(m, _, f)| f == backend && m == "ANY"), "{backend} has no ANY route");
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

/// The route table of docs/api.md: its `| `METHOD /path…` | function | … |` rows are [`API`].
#[test]
fn the_route_table_of_docs_api_is_this_one() {
    let doc = read("docs/api.md");
    let section = doc.split("\n## Routes\n").nth(1).expect("docs/api.md has a `## Routes` section");
    let mut rows = Vec::new();
    for line in section.lines().take_while(|l| !l.starts_with("## ")) {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
        let Some(route) = cells.first().and_then(|c| c.strip_prefix('`')) else { continue };
        let Some((method, rest)) = route.split_once(' ') else { continue };
        if !method.chars().all(|c| c.is_ascii_uppercase()) || !rest.starts_with('/') {
            continue;
        }
        let path = rest.split('`').next().unwrap_or_default().to_owned();
        rows.push((method.to_owned(), path, cells.get(1).copied().unwrap_or_default().to_owned()));
    }
    let expected: Vec<(String, String, String)> =
        API.iter().map(|(m, p, f)| (m.to_string(), p.to_string(), f.to_string())).collect();
    assert_eq!(rows, expected, "docs/api.md's route table (left) and tests/infra/common.rs API (right)");
}

/// The sweeper runs on a schedule, the order events on the table's stream; neither has a route.
#[test]
fn only_the_event_functions_run_without_a_route() {
    let t = template();
    let routed: BTreeSet<String> = template_routes(&t).into_iter().map(|(_, _, f)| f).collect();
    for (binary, (id, res)) in functions(&t) {
        let events = obj(&res["Properties"]["Events"], &format!("{id}.Events"));
        match EVENT_FUNCTIONS.iter().find(|(f, _)| *f == binary) {
            Some((_, kind)) => {
                assert_eq!(events.len(), 1, "{id}: one {kind} event");
                assert!(!routed.contains(&binary), "{id} has a route");
            }
            None => assert!(routed.contains(&binary), "{id} ({binary}) is neither routed nor an event function"),
        }
    }
}
