//! cfn-lint runs on both templates and provably fails on broken ones.

use std::path::{Path, PathBuf};
use std::process::Command;

use integration_tests::template::{read, root};

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
fn the_templates_lint_clean() {
    for template in ["infra/template.yaml", "infra/waf.yaml"] {
        let (ok, output) = lint(&root().join(template));
        assert!(ok, "cfn-lint reports problems in {template}:\n{output}");
    }
}

/// Lints a copy of `rel` with `from` replaced by `to`; it must fail and name `culprit`.
fn broken_copy_fails(rel: &str, what: &str, from: &str, to: &str, culprit: &str) {
    let good = read(rel);
    assert!(good.contains(from), "{rel} no longer contains `{from}`: update this test's broken copy");
    let path = std::env::temp_dir().join(format!("flash-sale-broken-{}-{culprit}.yaml", std::process::id()));
    std::fs::write(&path, good.replacen(from, to, 1)).expect("write the broken template");
    let (ok, output) = lint(&path);
    let _ = std::fs::remove_file(&path);
    assert!(!ok, "cfn-lint passed {rel} with {what}:\n{output}");
    assert!(output.contains(culprit), "cfn-lint failed on {what} without naming `{culprit}`:\n{output}");
}

#[test]
fn lint_catches_a_broken_template() {
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
        broken_copy_fails("infra/template.yaml", what, from, to, culprit);
    }
    broken_copy_fails(
        "infra/waf.yaml",
        "a rate-based rule keyed on an unknown aggregate",
        "AggregateKeyType: IP",
        "AggregateKeyType: EVERYONE",
        "EVERYONE",
    );
}
