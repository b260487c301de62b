//! The alarm runbook: every alarm in infra/template.yaml has an entry in docs/operations.md that says
//! when it fires and what to do, and every entry belongs to an alarm the template creates.

use std::collections::{BTreeMap, BTreeSet};

use integration_tests::template::{read, template};
use serde_json::Value;

use crate::common::obj;

const RUNBOOK: &str = "docs/operations.md";
const SECTION: &str = "\n## Alarms: what they mean and what to do\n";

/// The template's alarms by the name an operator sees, `<stack>-…` (the template writes
/// `Fn::Sub: ${AWS::StackName}-…`).
fn alarms(t: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (id, res) in obj(&t["Resources"], "Resources") {
        if res["Type"] != "AWS::CloudWatch::Alarm" {
            continue;
        }
        let name = res["Properties"]["AlarmName"]["Fn::Sub"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: AlarmName must be `Fn::Sub: ${{AWS::StackName}}-…`"));
        let suffix = name
            .strip_prefix("${AWS::StackName}-")
            .unwrap_or_else(|| panic!("{id}: AlarmName `{name}` must start with the stack's name"));
        assert!(names.insert(format!("<stack>-{suffix}")), "{id}: two alarms are named `{name}`");
    }
    names
}

/// The runbook's entries: each ``### `<stack>-…` `` heading of the alarm section, with its text.
fn entries(doc: &str) -> BTreeMap<String, String> {
    let section = doc.split(SECTION).nth(1).unwrap_or_else(|| panic!("{RUNBOOK} has no `{}` section", SECTION.trim()));
    let section = section.split("\n## ").next().unwrap_or_default();
    let mut entries = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in section.lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            let name = heading.trim().trim_matches('`').to_owned();
            assert!(!entries.contains_key(&name), "{RUNBOOK}: two entries for `{name}`");
            entries.insert(name.clone(), String::new());
            current = Some(name);
        } else if let Some(name) = &current {
            let text = entries.get_mut(name).expect("the entry was inserted with its heading");
            text.push_str(line);
            text.push('\n');
        }
    }
    entries
}

#[test]
fn every_alarm_in_the_template_has_a_runbook_entry() {
    let alarms = alarms(&template());
    assert!(!alarms.is_empty(), "infra/template.yaml defines alarms");
    let entries = entries(&read(RUNBOOK));
    let missing: Vec<&String> = alarms.iter().filter(|a| !entries.contains_key(*a)).collect();
    assert!(missing.is_empty(), "alarms without an entry (### `<stack>-…`) in {RUNBOOK}: {missing:?}");
}

#[test]
fn every_runbook_entry_is_an_alarm_of_the_template_and_says_when_and_what_to_do() {
    let alarms = alarms(&template());
    for (name, text) in entries(&read(RUNBOOK)) {
        assert!(
            alarms.contains(&name),
            "{RUNBOOK} has an entry for `{name}`, which infra/template.yaml does not create"
        );
        for part in ["**Fires when**", "**What to do:**"] {
            assert!(text.contains(part), "{RUNBOOK}, `{name}`: the entry must say {part}");
        }
        let advice = text.split("**What to do:**").nth(1).unwrap_or_default();
        assert!(advice.split_whitespace().count() >= 10, "{RUNBOOK}, `{name}`: say what to do, in a sentence or more");
    }
}
