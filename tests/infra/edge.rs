//! The edge: the WAF web ACL (infra/waf.yaml, us-east-1) on the distribution, and CloudFront as the
//! only way into the API where a stage asks for it (ApiOriginDomainName).

use integration_tests::template::{template, waf_template};
use serde_json::{Value, json};

use crate::cdn::distribution;
use crate::common::{API, BACKEND_FUNCTIONS, obj, parameter_defaults, the_resource};

/// Evaluates a WAF match statement (the subset the ACL uses) against a request.
fn waf_matches(statement: &Value, method: &str, path: &str) -> bool {
    if let Some(and) = statement.get("AndStatement") {
        let parts = and["Statements"].as_array().expect("AndStatement.Statements");
        return !parts.is_empty() && parts.iter().all(|s| waf_matches(s, method, path));
    }
    let m = statement.get("ByteMatchStatement").unwrap_or_else(|| panic!("unexpected statement {statement}"));
    assert_eq!(m["TextTransformations"], json!([{"Priority": 0, "Type": "NONE"}]), "{m}");
    let field = obj(&m["FieldToMatch"], "FieldToMatch");
    let value = if field.contains_key("Method") {
        method
    } else if field.contains_key("UriPath") {
        path
    } else {
        panic!("unexpected FieldToMatch {field:?}")
    };
    let needle = m["SearchString"].as_str().expect("SearchString");
    match m["PositionalConstraint"].as_str().expect("PositionalConstraint") {
        "EXACTLY" => value == needle,
        "ENDS_WITH" => value.ends_with(needle),
        "STARTS_WITH" => value.starts_with(needle),
        "CONTAINS" => value.contains(needle),
        other => panic!("unexpected PositionalConstraint {other}"),
    }
}

/// Requests of every API route, with awkward path values.
fn requests() -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for (method, path, function) in API {
        for (sale, user) in [("demo", "alice"), ("purchases", "purchases"), ("s1", "u-42")] {
            let p = path
                .replace("{saleId}", sale)
                .replace("{userId}", user)
                .replace("{orderId}", "01ARZ3NDEKTSV4RRFFQ69G5FAV");
            out.push((method.to_string(), p, *function == "purchase"));
        }
    }
    out
}

fn rule<'t>(rules: &'t [Value], name: &str) -> &'t Value {
    rules.iter().find(|r| r["Name"] == name).unwrap_or_else(|| panic!("the web ACL has no rule {name}"))
}

/// A rate-based rule that answers 429 like API Gateway's throttle and counts purchases only.
fn check_purchase_rate_rule(rule: &Value, limit_parameter: &str) {
    let name = &rule["Name"];
    assert_eq!(
        rule["Action"],
        json!({"Block": {"CustomResponse": {"ResponseCode": 429, "CustomResponseBodyKey": "too-many-requests"}}}),
        "{name}: block with 429 and API Gateway's body"
    );
    let rate = &rule["Statement"]["RateBasedStatement"];
    assert_eq!(rate["Limit"], json!({"Ref": limit_parameter}), "{name}: limit from a parameter");
    assert_eq!(rate["EvaluationWindowSec"], json!({"Ref": "RateLimitWindowSeconds"}), "{name}: window");
    for (method, path, is_purchase) in requests() {
        assert_eq!(
            waf_matches(&rate["ScopeDownStatement"], &method, &path),
            is_purchase,
            "{name}: {method} {path} counted (true) or not (false)"
        );
    }
    assert_eq!(rule["VisibilityConfig"]["CloudWatchMetricsEnabled"], true, "{name}: metrics");
}

#[test]
fn the_web_acl_limits_purchases_per_ip_and_per_token_and_applies_the_common_rule_set() {
    let waf = waf_template();
    let (_, acl) = the_resource(&waf, "AWS::WAFv2::WebACL");
    let props = &acl["Properties"];
    assert_eq!(props["Scope"], "CLOUDFRONT", "a web ACL for CloudFront");
    assert_eq!(props["DefaultAction"], json!({"Allow": {}}));
    let body = &props["CustomResponseBodies"]["too-many-requests"];
    assert_eq!(body["ContentType"], "APPLICATION_JSON");
    let content: Value = serde_json::from_str(body["Content"].as_str().expect("Content")).expect("JSON body");
    assert_eq!(content, json!({"message": "Too Many Requests"}), "the same body as API Gateway's throttle");

    let all = props["Rules"].as_array().expect("Rules");
    let plain: Vec<Value> = all.iter().filter(|r| r.get("Fn::If").is_none()).cloned().collect();
    check_purchase_rate_rule(rule(&plain, "purchases-per-ip"), "PurchasesPerIpLimit");
    assert_eq!(rule(&plain, "purchases-per-ip")["Statement"]["RateBasedStatement"]["AggregateKeyType"], "IP");
    let token = rule(&plain, "purchases-per-token");
    check_purchase_rate_rule(token, "PurchasesPerTokenLimit");
    let rate = &token["Statement"]["RateBasedStatement"];
    assert_eq!(rate["AggregateKeyType"], "CUSTOM_KEYS");
    assert_eq!(
        rate["CustomKeys"],
        json!([{"Header": {"Name": "authorization", "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}}]),
        "keyed on the Authorization header alone"
    );
    // The wait's one uncached read, per IP: exactly GET /sales/{saleId}/queue/{userId}.
    let place = rule(&plain, "place-reads-per-ip");
    assert_eq!(place["Action"], rule(&plain, "purchases-per-ip")["Action"], "429 with API Gateway's body");
    let rate = &place["Statement"]["RateBasedStatement"];
    assert_eq!(rate["Limit"], json!({"Ref": "PlaceReadsPerIpLimit"}));
    assert_eq!(rate["EvaluationWindowSec"], json!({"Ref": "RateLimitWindowSeconds"}));
    assert_eq!(rate["AggregateKeyType"], "IP");
    for (method, path, _) in requests() {
        let is_place_read = method == "GET" && path.contains("/queue/");
        assert_eq!(waf_matches(&rate["ScopeDownStatement"], &method, &path), is_place_read, "{method} {path}");
    }
    assert!(waf_matches(&rate["ScopeDownStatement"], "GET", "/sales/s1/queue/alice"));
    assert_eq!(place["VisibilityConfig"]["CloudWatchMetricsEnabled"], true);
    let common = rule(&plain, "aws-common-rule-set");
    assert_eq!(
        common["Statement"]["ManagedRuleGroupStatement"],
        json!({"VendorName": "AWS", "Name": "AWSManagedRulesCommonRuleSet"})
    );
    assert_eq!(common["OverrideAction"], json!({"None": {}}), "the rule group's own block actions apply");

    // Bot Control: only when asked for, on purchases only.
    let optional: Vec<&Value> = all.iter().filter_map(|r| r.get("Fn::If")).collect();
    assert_eq!(optional.len(), 1, "one optional rule");
    let branches = optional[0].as_array().expect("Fn::If");
    assert_eq!(branches[0], "UseBotControl");
    assert_eq!(branches[2], json!({"Ref": "AWS::NoValue"}));
    let bot = &branches[1]["Statement"]["ManagedRuleGroupStatement"];
    assert_eq!(bot["Name"], "AWSManagedRulesBotControlRuleSet");
    for (method, path, is_purchase) in requests() {
        assert_eq!(
            waf_matches(&bot["ScopeDownStatement"], &method, &path),
            is_purchase,
            "Bot Control: {method} {path}"
        );
    }
    assert_eq!(waf["Conditions"]["UseBotControl"], json!({"Fn::Equals": [{"Ref": "EnableBotControl"}, "true"]}));
    assert_eq!(waf["Parameters"]["EnableBotControl"]["Default"], "false", "Bot Control is off by default");

    let mut priorities: Vec<u64> = plain.iter().map(|r| r["Priority"].as_u64().expect("Priority")).collect();
    priorities.push(branches[1]["Priority"].as_u64().expect("Priority"));
    let mut unique = priorities.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), priorities.len(), "rule priorities must differ: {priorities:?}");
    let defaults = parameter_defaults(&waf);
    for p in ["PurchasesPerIpLimit", "PurchasesPerTokenLimit", "PlaceReadsPerIpLimit"] {
        let limit = defaults[p].as_u64().expect("a number");
        assert!((10..=10_000).contains(&limit), "{p} default {limit}");
    }
    assert_eq!(waf["Outputs"]["WebAclArn"]["Value"], json!({"Fn::GetAtt": ["WebAcl", "Arn"]}));
}

#[test]
fn the_distribution_takes_the_web_acl_by_its_us_east_1_arn() {
    let t = template();
    let config = distribution(&t);
    assert_eq!(config["WebACLId"], json!({"Fn::If": ["HasWebAcl", {"Ref": "WebAclArn"}, {"Ref": "AWS::NoValue"}]}));
    assert_eq!(t["Conditions"]["HasWebAcl"], json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "WebAclArn"}, ""]}]}));
    let pattern = t["Parameters"]["WebAclArn"]["AllowedPattern"].as_str().expect("WebAclArn AllowedPattern");
    assert!(
        pattern.contains(":wafv2:us-east-1:") && pattern.contains(":global/webacl/"),
        "WebAclArn must be a CLOUDFRONT-scope ACL, which lives in us-east-1: {pattern}"
    );
}

#[test]
fn cloudfront_is_the_only_way_into_the_api_when_the_stage_asks_for_it() {
    let t = template();
    let only = "ApiOnlyThroughCloudFront";
    assert_eq!(
        t["Conditions"][only],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "ApiOriginDomainName"}, ""]}]}),
        "the switch is ApiOriginDomainName"
    );
    assert_eq!(parameter_defaults(&t)["ApiOriginDomainName"], "", "off by default (test stages use ApiUrl)");

    // The default endpoint is off exactly when CloudFront has another way in.
    let api = &t["Resources"]["HttpApi"]["Properties"];
    assert_eq!(api["DisableExecuteApiEndpoint"], json!({"Fn::If": [only, true, false]}));

    // That way is the custom domain under the secret base path, the secret generated by the stack.
    let secret = &t["Resources"]["ApiOriginSecret"];
    assert_eq!(secret["Type"], "AWS::SecretsManager::Secret");
    let generate = &secret["Properties"]["GenerateSecretString"];
    assert!(generate["PasswordLength"].as_u64().unwrap_or(0) >= 32, "a long secret");
    assert_eq!(generate["ExcludePunctuation"], true, "API mapping keys take letters and digits");
    let resolve = "{{resolve:secretsmanager:${ApiOriginSecret}:SecretString}}";
    let mapping = &t["Resources"]["ApiOriginMapping"];
    assert_eq!(mapping["Type"], "AWS::ApiGatewayV2::ApiMapping");
    assert_eq!(mapping["Properties"]["ApiMappingKey"], json!({"Fn::Sub": resolve}));
    assert_eq!(mapping["Properties"]["ApiId"], json!({"Ref": "HttpApi"}));
    assert_eq!(mapping["Properties"]["DomainName"], json!({"Ref": "ApiOriginDomain"}));
    let domain = &t["Resources"]["ApiOriginDomain"]["Properties"];
    assert_eq!(domain["DomainName"], json!({"Ref": "ApiOriginDomainName"}));
    assert_eq!(domain["DomainNameConfigurations"][0]["EndpointType"], "REGIONAL");
    for id in ["ApiOriginSecret", "ApiOriginDomain", "ApiOriginMapping"] {
        assert_eq!(t["Resources"][id]["Condition"], only, "{id} exists only when CloudFront is the only way in");
    }

    // CloudFront: that domain and the secret base path, or the execute-api domain and none.
    let config = distribution(&t);
    let origins = config["Origins"].as_array().expect("Origins");
    let api_origins: Vec<&Value> = origins.iter().filter(|o| o["Id"] == "http-api").collect();
    assert_eq!(api_origins.len(), 1);
    let origin = api_origins[0];
    assert_eq!(
        origin["DomainName"],
        json!({"Fn::If": [only, {"Ref": "ApiOriginDomainName"},
                          {"Fn::Sub": "${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}]})
    );
    assert_eq!(
        origin["OriginPath"],
        json!({"Fn::If": [only, {"Fn::Sub": format!("/{resolve}")}, {"Ref": "AWS::NoValue"}]}),
        "CloudFront sends the secret base path the API is mapped under"
    );
    assert_eq!(t["Outputs"]["ApiUrl"]["Value"]["Fn::If"][0], only, "ApiUrl follows the switch");
    assert_eq!(
        t["Rules"]["ApiOriginDomainNeedsCertificate"]["RuleCondition"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "ApiOriginDomainName"}, ""]}]})
    );
}

/// The payment backend's way in: SigV4 to the API itself (CloudFront rewrites what it signed),
/// with a policy that allows the confirm route and, where the API hides behind a secret base path,
/// reading that path.
#[test]
fn the_payment_backend_signs_for_the_api_itself_with_a_policy_for_its_route_only() {
    let t = template();
    let only = "ApiOnlyThroughCloudFront";
    let backend_routes: Vec<(&str, &str)> =
        API.iter().filter(|(_, _, f)| BACKEND_FUNCTIONS.contains(f)).map(|(m, p, _)| (*m, *p)).collect();
    assert!(!backend_routes.is_empty(), "the API table has the payment backend's route");
    // The route's ARN in the stage API Gateway invokes ($default), path parameters as `*`.
    let route_arns: Vec<String> = backend_routes
        .iter()
        .map(|(method, path)| {
            let path: String = path
                .split('/')
                .map(|part| if part.starts_with('{') { "*" } else { part })
                .collect::<Vec<_>>()
                .join("/");
            format!("arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{HttpApi}}/$default/{method}{path}")
        })
        .collect();

    let policy = &t["Outputs"]["PaymentBackendPolicy"]["Value"]["Fn::If"];
    assert_eq!(policy[0], only, "the policy follows the switch");
    let document = |branch: &Value| -> Value {
        serde_json::from_str(branch["Fn::Sub"].as_str().expect("an Fn::Sub string")).expect("a JSON policy")
    };
    for (branch, hidden) in [(&policy[1], true), (&policy[2], false)] {
        let doc = document(branch);
        assert_eq!(doc["Version"], "2012-10-17");
        let statements = doc["Statement"].as_array().expect("Statement");
        let invoke: Vec<&Value> = statements.iter().filter(|s| s["Action"] == "execute-api:Invoke").collect();
        assert_eq!(invoke.len(), 1, "one execute-api statement");
        assert_eq!(invoke[0]["Effect"], "Allow");
        let resources: Vec<String> = match &invoke[0]["Resource"] {
            Value::String(r) => vec![r.clone()],
            other => other.as_array().expect("Resource").iter().map(|r| r.as_str().unwrap().to_owned()).collect(),
        };
        assert_eq!(resources, route_arns, "execute-api:Invoke on the confirm route only");
        let secret: Vec<&Value> =
            statements.iter().filter(|s| s["Action"] == "secretsmanager:GetSecretValue").collect();
        if hidden {
            assert_eq!(secret.len(), 1, "behind CloudFront the backend reads the base path");
            assert_eq!(secret[0]["Resource"], "${ApiOriginSecret}", "that one secret");
        } else {
            assert!(secret.is_empty(), "without the secret base path there is no secret to read");
        }
        assert_eq!(statements.len(), 1 + secret.len(), "nothing else: {doc}");
    }

    // Where to send it: the API's own endpoint, never the distribution.
    let endpoint = &t["Outputs"]["PaymentBackendEndpoint"]["Value"]["Fn::If"];
    assert_eq!(endpoint[0], only);
    let hidden = endpoint[1]["Fn::Sub"].as_str().expect("Fn::Sub");
    assert!(hidden.starts_with("https://${ApiOriginDomainName}/") && hidden.contains("${ApiOriginSecret}"), "{hidden}");
    assert_eq!(endpoint[2], json!({"Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}));
    assert!(!t["Outputs"]["PaymentBackendEndpoint"].to_string().contains("StorefrontDistribution"));
}
