//! The functions under test are built as they ship. `cargo test --workspace` resolves features for
//! the whole workspace at once (the tests' and tools' dependencies included), so a crate the
//! functions use could be compiled differently in the test build than in the deployed one. This
//! compares, crate by crate, the features of the functions' dependency tree built alone (as `sam
//! build` / `cargo lambda build` do) with the same crates in the workspace's test build.
//!
//! How it is guaranteed: xtask (an HTTP server, tokio's test utilities) is a workspace of its own;
//! the benchmarks answer DynamoDB with a client of their own instead of the SDK's `test-util`
//! feature. What remains is listed in `ALLOWED` with the reason it changes nothing the functions
//! do. The function binaries the process tests run are built alone (`cargo build -p …`), exactly
//! as shipped.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Differences the test build may have: (crate, feature, why it is harmless).
const ALLOWED: &[(&str, &str, &str)] = &[
    ("flash-sale", "test-util", "only makes test hooks public; no code path of the functions changes"),
    ("num-traits", "std", "from proptest and hdrhistogram; the functions' crates use no float method it adds"),
    ("num-traits", "default", "the same"),
    ("regex-syntax", "*", "proptest's Unicode classes; the functions parse one RUST_LOG filter with it"),
];

/// The repository this test was compiled from.
fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const FUNCTIONS: &[&str] = &["purchase", "status", "user-lookup", "queue", "orders", "sweeper", "order-events"];

/// `crate version` → enabled features, as `cargo tree` resolves them for `args`.
fn features(args: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root())
        .args(["tree", "--offline", "--prefix", "none", "-f", "{p}|{f}"])
        .args(args)
        .output()
        .expect("run cargo tree");
    assert!(out.status.success(), "cargo tree {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let line = line.trim_end().trim_end_matches(" (*)");
        let Some((package, feats)) = line.rsplit_once('|') else { continue };
        let mut words = package.split_whitespace();
        let key = format!("{} {}", words.next().unwrap_or_default(), words.next().unwrap_or_default());
        found.entry(key).or_default().extend(feats.split(',').filter(|f| !f.is_empty()).map(str::to_owned));
    }
    found
}

fn allowed(package: &str, feature: &str) -> bool {
    let name = package.split_whitespace().next().unwrap_or_default();
    ALLOWED.iter().any(|(p, f, _)| *p == name && (*f == feature || *f == "*"))
}

#[test]
fn the_functions_are_linked_with_the_features_they_ship_with() {
    let mut alone_args = vec!["-e", "no-dev"];
    for f in FUNCTIONS {
        alone_args.extend(["-p", f]);
    }
    let alone = features(&alone_args);
    let together = features(&["--workspace"]);
    assert!(alone.len() > 100, "the functions' tree was read: {} crates", alone.len());
    let mut differences = Vec::new();
    for (package, shipped) in &alone {
        let tested = together.get(package).unwrap_or_else(|| panic!("{package} is missing from the workspace build"));
        for extra in tested.difference(shipped) {
            if !allowed(package, extra) {
                differences.push(format!("{package}: +{extra}"));
            }
        }
        for missing in shipped.difference(tested) {
            differences.push(format!("{package}: -{missing}"));
        }
    }
    assert!(
        differences.is_empty(),
        "the test build in {} differs from the shipped one: {differences:#?}",
        root().display()
    );
}
