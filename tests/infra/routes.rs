//! Routes: the template, the local router and the README's API table agree; user routes need a JWT.

use std::collections::BTreeSet;

use integration_tests::template::{functions, template};
use serde_json::json;

use crate::common::{API, USER_FUNCTIONS, obj, openapi_method, router_routes, template_routes};

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
