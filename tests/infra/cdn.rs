//! Storefront: one CloudFront distribution serves the page (private S3 bucket) and the API.

use std::collections::{BTreeMap, BTreeSet};

use flash_sale::store::Store;
use flash_sale_testkit::{TestApp, TestBody, request};
use integration_tests::template::template;
use serde_json::{Value, json};

use crate::common::{API, BACKEND_FUNCTIONS, USER_FUNCTIONS, obj, set, strings, the_resource, wildcard_match};
use crate::fake_dynamodb::FakeDynamoDb;

/// AWS managed CloudFront policies, by their fixed ids.
const CACHING_DISABLED: &str = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad";
const CACHING_OPTIMIZED: &str = "658327ea-f89d-4fab-a63d-7e88639e58f6";
const ALL_VIEWER_EXCEPT_HOST_HEADER: &str = "b689b0a8-53d0-40ab-baf2-68738e2966ac";

/// Every method CloudFront can forward (the purchase needs POST with its body).
const ALL_METHODS: &[&str] = &["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"];

/// Error codes CloudFront caches for GET unless told otherwise (10 s by default).
const CACHED_ERROR_CODES: &[u64] = &[400, 403, 404, 405, 414, 500, 501, 502, 503, 504];

/// Values for the API table's path parameters, including awkward ones: a sale called
/// `purchases`, `queue` or `orders` must still get the status behavior.
const SALE_IDS: &[&str] = &["demo-sale", "purchases", "queue", "orders", "s1"];
const USER_IDS: &[&str] = &["alice", "purchases", "queue", "orders", "u-42"];
const ORDER_IDS: &[&str] = &["01ARZ3NDEKTSV4RRFFQ69G5FAV"];

/// The distribution's config and its cache behavior for a request path: the first ordered
/// behavior whose pattern matches (CloudFront's rule), else the default one. Returns the
/// behavior's position (`None` for the default) and the behavior.
fn behavior_for<'c>(config: &'c Value, path: &str) -> (Option<usize>, &'c Value) {
    let ordered = config["CacheBehaviors"].as_array().map(Vec::as_slice).unwrap_or_default();
    for (i, b) in ordered.iter().enumerate() {
        let pattern = b["PathPattern"].as_str().unwrap_or_else(|| panic!("cache behavior {i} has no PathPattern"));
        if wildcard_match(pattern, path) {
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
            for order in ORDER_IDS {
                let p = path
                    .replace("{saleId}", sale)
                    .replace("{userId}", user)
                    .replace("{orderId}", order)
                    .replace("{page}", "0");
                assert!(!p.contains('{'), "{path}: a path parameter this test does not know");
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
    }
    out
}

pub fn distribution(t: &Value) -> &Value {
    &the_resource(t, "AWS::CloudFront::Distribution").1["Properties"]["DistributionConfig"]
}

/// Origin id → origin.
fn origins(config: &Value) -> BTreeMap<String, &Value> {
    let list = config["Origins"].as_array().expect("DistributionConfig.Origins");
    list.iter().map(|o| (o["Id"].as_str().expect("origin Id").to_owned(), o)).collect()
}

/// The id of the origin that is the HttpApi (custom origin, HTTPS only): its custom domain where
/// CloudFront is the only way in, else its execute-api domain (`edge.rs` checks the switch).
fn api_origin(config: &Value) -> String {
    let domain = json!({"Fn::If": [
        "ApiOnlyThroughCloudFront",
        {"Ref": "ApiOriginDomainName"},
        {"Fn::Sub": "${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}
    ]});
    let found: Vec<_> = origins(config).into_iter().filter(|(_, o)| o["DomainName"] == domain).collect();
    assert_eq!(found.len(), 1, "exactly one origin must be the HttpApi ({domain})");
    let (id, origin) = &found[0];
    assert_eq!(
        origin["CustomOriginConfig"]["OriginProtocolPolicy"], "https-only",
        "CloudFront must reach the API over HTTPS only"
    );
    id.clone()
}

fn methods(b: &Value) -> BTreeSet<String> {
    strings(&b["AllowedMethods"]).into_iter().collect()
}

/// Routes whose answers belong to one caller: a buyer's (behind the JWT) or the payment backend's.
fn personal(function: &str) -> bool {
    USER_FUNCTIONS.contains(&function) || BACKEND_FUNCTIONS.contains(&function)
}

#[test]
fn cloudfront_never_caches_purchases_lookups_places_in_line_or_orders_and_sends_them_first() {
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
            if path.contains("/entrants/") {
                // The published list: its own behavior, kept for good (below).
                assert_eq!(
                    b["CachePolicyId"],
                    json!({"Ref": "PublishedCachePolicy"}),
                    "{method} {sample} goes to {name}"
                );
                assert!(at.is_some_and(|at| at < status_at), "{sample}: `{name}` must come before the status pattern");
            } else if *function == "status" && path.starts_with("/sales/") {
                // A sale called `purchases` or `queue` is still a sale: the cached status behavior.
                assert_eq!(at, Some(status_at), "{method} {sample} goes to {name}, not the status behavior");
            }
            if personal(function) || *path == "/health" {
                assert_eq!(
                    b["CachePolicyId"], CACHING_DISABLED,
                    "{method} {sample} ({function}) goes to {name}, which may cache it: it must use CachingDisabled"
                );
            }
            if personal(function) {
                assert_eq!(
                    b["OriginRequestPolicyId"], ALL_VIEWER_EXCEPT_HOST_HEADER,
                    "{method} {sample}: {name} must forward Authorization, query and body but not Host (AllViewerExceptHostHeader)"
                );
                assert_eq!(
                    methods(b),
                    set(ALL_METHODS),
                    "{sample}: {name} must forward every method (POST purchases; others get the API's 405)"
                );
                let at = at.expect("user and payment backend routes have behaviors of their own");
                assert!(
                    at < status_at,
                    "{sample}: `{}` must come before the status pattern `{}` (first match wins)",
                    ordered[at]["PathPattern"],
                    ordered[status_at]["PathPattern"]
                );
            }
        }
    }
    // Every purchase-path, queue-path and orders-path behavior is uncached and placed ahead of the
    // status pattern, even one the samples above do not reach.
    for (i, b) in ordered.iter().enumerate() {
        let pattern = b["PathPattern"].as_str().unwrap_or_default();
        if pattern.contains("/purchases") || pattern.contains("/queue") || pattern.contains("/orders") {
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

#[tokio::test]
async fn status_is_cached_for_about_a_second_and_the_same_for_everyone() {
    let header = status_cache_control().await;
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
        let max_age: u64 = header
            .split(',')
            .find_map(|d| d.trim().strip_prefix("max-age="))
            .unwrap_or_else(|| panic!("the status function's Cache-Control `{header}` has no max-age"))
            .parse()
            .expect("max-age is a number");
        assert!(header.contains("public"), "the status function's Cache-Control `{header}` must allow shared caches");
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
fn a_published_entrant_list_is_kept_for_good_and_compressed_and_a_sale_called_entrants_is_still_a_sale() {
    let t = template();
    let config = distribution(&t);
    let (at, b) = behavior_for(config, "/sales/demo-sale/entrants/0");
    assert!(at.is_some(), "the entrant list has a behavior of its own");
    assert_eq!(b["CachePolicyId"], json!({"Ref": "PublishedCachePolicy"}));
    assert_eq!(b["Compress"], true, "pages of hex ids compress about twofold");
    assert_eq!(strings(&b["CachedMethods"]), ["GET", "HEAD"]);
    assert!(b["OriginRequestPolicyId"].is_null(), "nothing but the URL reaches the status function");
    let c = &t["Resources"]["PublishedCachePolicy"]["Properties"]["CachePolicyConfig"];
    assert_eq!(c["MinTTL"], 0, "a 404 `no-store` before the draw completes is not kept");
    assert_eq!(c["DefaultTTL"], 0, "only what the origin marks cacheable is kept");
    assert!(c["MaxTTL"].as_u64().is_some_and(|max| max >= 31_536_000), "the origin's year is honoured");
    let key = &c["ParametersInCacheKeyAndForwardedToOrigin"];
    for part in ["CookiesConfig", "HeadersConfig", "QueryStringsConfig"] {
        assert!(key[part].to_string().contains("none"), "{part}: nothing personal in the key");
    }
    assert_eq!(
        (key["EnableAcceptEncodingGzip"].as_bool(), key["EnableAcceptEncodingBrotli"].as_bool()),
        (Some(true), Some(true))
    );
    // A sale whose id is `entrants` is still a sale: the status behavior.
    let (status_at, _) = behavior_for(config, "/sales/demo-sale");
    assert_eq!(behavior_for(config, "/sales/entrants").0, status_at);
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

/// The Cache-Control of a status response, as the status handler answers `GET /sales`.
async fn status_cache_control() -> String {
    let fake = FakeDynamoDb::start().await;
    let app = TestApp::on(&Store::new(fake.client(), "t"));
    let resp = flash_sale::http::status_function(&app, request("GET", "/sales", &[], TestBody::None, None)).await;
    assert_eq!(resp.status_code, 200, "GET /sales against an empty table");
    resp.header("cache-control").expect("Cache-Control").to_owned()
}
