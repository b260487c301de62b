//! The deployment as data: `infra/template.yaml` (and the WAF stack, `infra/waf.yaml`) read as
//! plain YAML, for the infra tests and for tests that compare the template with what the code does.
//!
//! [`iam_actions`] is the template's side of "each function may call exactly the DynamoDB
//! operations its code calls": the other side comes from recorded SDK calls.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The repository root.
pub fn root() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    dir.canonicalize().unwrap_or(dir)
}

/// A file of the repository as text; panics with its path if it cannot be read.
pub fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn yaml(rel: &str) -> Value {
    serde_yaml_ng::from_str(&read(rel)).unwrap_or_else(|e| {
        panic!("{rel} must be plain YAML (long-form intrinsics such as `Ref:`, no `!Ref` tags): {e}")
    })
}

/// `infra/template.yaml`, the application stack.
pub fn template() -> Value {
    yaml("infra/template.yaml")
}

/// `infra/waf.yaml`, the web ACL stack (us-east-1).
pub fn waf_template() -> Value {
    yaml("infra/waf.yaml")
}

/// The template's Serverless functions by the binary they run (`Metadata.BuildProperties.Binary`,
/// which is also the function's name in the local router): binary → (logical id, resource).
pub fn functions(t: &Value) -> BTreeMap<String, (String, &Value)> {
    let resources = t["Resources"].as_object().expect("Resources must be a mapping");
    let mut found = BTreeMap::new();
    for (id, res) in resources {
        if res["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let binary = res["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{id} has no Metadata.BuildProperties.Binary"))
            .to_owned();
        assert!(found.insert(binary.clone(), (id.clone(), res)).is_none(), "two functions build the binary {binary}");
    }
    found
}

/// Every IAM policy statement of a function's inline policies (`purchase`, `status`,
/// `user-lookup`). Panics for an unknown function or a policy that is not a statement list (SAM
/// policy templates and managed policies would hide what is granted).
pub fn policy_statements(t: &Value, function: &str) -> Vec<Value> {
    let fns = functions(t);
    let (id, res) = fns.get(function).unwrap_or_else(|| panic!("the template has no function {function}"));
    let policies = res["Properties"]["Policies"].as_array().unwrap_or_else(|| panic!("{id} has no Policies list"));
    let mut statements = Vec::new();
    for policy in policies {
        let list = policy["Statement"].as_array().unwrap_or_else(|| {
            panic!("{id}: every policy must be an explicit statement list (no SAM policy templates or managed policies): {policy}")
        });
        statements.extend(list.iter().cloned());
    }
    statements
}

/// The `dynamodb:` actions the template allows a function (`purchase`, `status`, `user-lookup`),
/// e.g. `dynamodb:GetItem`. Deny statements take nothing away here: they narrow keys, not actions.
pub fn iam_actions(function: &str) -> BTreeSet<String> {
    policy_statements(&template(), function)
        .iter()
        .filter(|st| st["Effect"] == "Allow")
        .flat_map(|st| match &st["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(items) => items.iter().filter_map(|a| a.as_str().map(str::to_owned)).collect(),
            other => panic!("{function}: Action must be a string or a list, found {other}"),
        })
        .filter(|a| a.starts_with("dynamodb:"))
        .collect()
}

/// The wildcard match of IAM's `StringLike` and of CloudFront's path patterns: `*` is any run of
/// characters (empty too, `/` and `#` included), `?` exactly one, everything else literal and
/// case-sensitive; the pattern covers the whole string.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // matched[j]: the pattern so far matches the first j characters of the text.
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

fn string_list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => {
            items.iter().map(|i| i.as_str().unwrap_or_else(|| panic!("not a string: {i}")).to_owned()).collect()
        }
        other => panic!("expected a string or a list of strings, found {other}"),
    }
}

/// Whether one condition block holds for a request touching the partition keys `keys`.
fn conditions_hold(condition: &Value, keys: &[String]) -> bool {
    let Some(operators) = condition.as_object() else {
        assert!(condition.is_null(), "Condition must be a mapping: {condition}");
        return true;
    };
    operators.iter().all(|(operator, entries)| {
        entries.as_object().unwrap_or_else(|| panic!("{operator}: expected a mapping")).iter().all(|(key, values)| {
            assert_eq!(key, "dynamodb:LeadingKeys", "this evaluator knows only dynamodb:LeadingKeys");
            let patterns = string_list(values);
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

fn statement_matches(st: &Value, action: &str, resource: &Value, keys: &[String]) -> bool {
    let resources = match &st["Resource"] {
        Value::Array(items) => items.clone(),
        one => vec![one.clone()],
    };
    string_list(&st["Action"]).iter().any(|a| a == action)
        && resources.contains(resource)
        && conditions_hold(&st["Condition"], keys)
}

/// IAM's decision for one request of a function's role, evaluated the way IAM evaluates it: some
/// Allow statement matches (action, resource, every condition operator) and no Deny does.
/// `resource` is the template's spelling of the ARN (`{"Fn::GetAtt": ["Table", "Arn"]}`, or
/// `{"Fn::Sub": "${Table.Arn}/index/NAME"}`); `keys` is `dynamodb:LeadingKeys`, the partition keys
/// the request touches (one for GetItem, one per key for BatchGetItem, the queried partition for
/// Query, the index's partition key value on an index).
pub fn iam_allows(statements: &[Value], action: &str, resource: &Value, keys: &[String]) -> bool {
    let matches = |effect: &str| {
        statements.iter().any(|st| st["Effect"] == effect && statement_matches(st, action, resource, keys))
    };
    matches("Allow") && !matches("Deny")
}
