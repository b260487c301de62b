//! `samconfig.toml`: three application environments and the web ACL's, each setting only what
//! its template takes.

use std::collections::{BTreeMap, BTreeSet};

use integration_tests::template::{template, waf_template};
use serde_json::Value;

use crate::common::{obj, strings, toml_file};

/// KEY=VALUE pairs of `parameter_overrides`, each a parameter of `t` with an allowed value.
fn overrides(env: &str, raw: &str, t: &Value) -> BTreeMap<String, String> {
    let params = obj(&t["Parameters"], "Parameters");
    let mut overrides = BTreeMap::new();
    for pair in raw.split_whitespace() {
        let (key, value) = pair.split_once('=').unwrap_or_else(|| panic!("[{env}] override `{pair}` is not KEY=VALUE"));
        let param =
            params.get(key).unwrap_or_else(|| panic!("[{env}] overrides {key}, which the template does not have"));
        if let Some(allowed) = param["AllowedValues"].as_array() {
            assert!(
                allowed.iter().any(|a| a.as_str().map(str::to_owned).unwrap_or_else(|| a.to_string()) == value),
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
    overrides
}

#[test]
fn samconfig_sets_only_parameters_the_template_takes() {
    let t = template();
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
        let overrides = overrides(env, raw, &t);
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

#[test]
fn the_waf_environment_deploys_the_web_acl_in_us_east_1() {
    let waf = waf_template();
    let config = toml_file("samconfig.toml");
    let section = |cmd: &str| config["waf"][cmd]["parameters"].clone();
    assert_eq!(section("global")["stack_name"], "flash-sale-waf");
    // A CLOUDFRONT-scope web ACL can only be created in us-east-1.
    assert_eq!(section("global")["region"], "us-east-1", "[waf.global.parameters] region");
    assert_eq!(section("validate")["template_file"], "infra/waf.yaml");
    assert_eq!(section("validate")["lint"], true);
    let deploy = section("deploy");
    // No code to build: the stack deploys infra/waf.yaml itself.
    assert_eq!(deploy["template_file"], "infra/waf.yaml", "[waf.deploy.parameters] template_file");
    assert!(section("build").is_null(), "nothing to build for the web ACL");
    assert_eq!(deploy["confirm_changeset"], true, "the ACL guards production: review its changes");
    let raw = deploy["parameter_overrides"].as_str().expect("[waf.deploy.parameters] parameter_overrides");
    let set = overrides("waf", raw, &waf);
    assert_eq!(set.get("EnableBotControl").map(String::as_str), Some("false"), "Bot Control off unless chosen");
}
