//! The crate's layer line, checked from its sources: every module uses only modules of its own
//! layer or the layers before it (as listed in `lib.rs`), and no two modules use each other,
//! directly or through others. A module "uses" another when its code (comments and its
//! `#[cfg(test)]` module left out) names `crate::other`, in a `use` line or a path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, first to last. A module not listed here fails the test: place it on the line.
const LAYERS: &[&[&str]] = &[
    &["ids", "clock", "time_fmt", "keys", "order", "error", "beacon", "merkle"],
    &["sale", "room", "draw_check"],
    &["config", "aws", "admission_key", "telemetry"],
    &["store"],
    &["catalog", "stock_hint"],
    &["waiting_room", "orders"],
    &["checkout"],
    &["app"],
    &["http", "lambda"],
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every top-level module (`foo.rs` or `foo/`) with the text of its files.
fn modules() -> BTreeMap<String, String> {
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(src()).expect("src/") {
        let path = entry.expect("entry").path();
        let name = path.file_stem().and_then(|s| s.to_str()).expect("name").to_owned();
        if name == "lib" {
            continue;
        }
        let mut text = String::new();
        let mut pending = vec![path];
        while let Some(p) = pending.pop() {
            if p.is_dir() {
                pending.extend(std::fs::read_dir(&p).expect("dir").map(|e| e.expect("entry").path()));
            } else if p.extension().is_some_and(|e| e == "rs") {
                text.push_str(&code_of(&std::fs::read_to_string(&p).expect("read")));
                text.push('\n');
            }
        }
        modules.entry(name).or_insert_with(String::new).push_str(&text);
    }
    modules
}

/// The code of one file: line comments and everything from its `#[cfg(test)]` module on left out.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
    text.lines().map(|l| l.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// The modules `text` names: `crate::name` paths and the names inside `use crate::{...}` groups.
fn used(text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for part in group.split(',') {
                let name = part.trim().split("::").next().unwrap_or_default();
                if modules.contains(name) {
                    found.insert(name.to_owned());
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if modules.contains(&name) {
                found.insert(name);
            }
        }
    }
    found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .iter()
        .map(|(m, text)| {
            let mut uses = used(text, &names);
            uses.remove(m);
            (m.clone(), uses)
        })
        .collect()
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// A cycle through `start`, if there is one.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_owned(), vec![start.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        for next in graph.get(&at).into_iter().flatten() {
            if next == start {
                return Some([path.clone(), vec![start.to_owned()]].concat());
            }
            if seen.insert(next.clone()) {
                stack.push((next.clone(), [path.clone(), vec![next.clone()]].concat()));
            }
        }
    }
    None
}

#[test]
fn every_module_has_a_place_on_the_layer_line_and_uses_only_what_comes_before() {
    let graph = graph();
    let mut wrong = Vec::new();
    for (module, uses) in &graph {
        let Some(layer) = layer_of(module) else {
            wrong.push(format!("`{module}` is on no layer"));
            continue;
        };
        for used in uses {
            if layer_of(used).is_none_or(|l| l > layer) {
                wrong.push(format!("`{module}` (layer {layer}) uses `{used}` (layer {:?})", layer_of(used)));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_module_uses_itself_through_others() {
    let graph = graph();
    let cycles: Vec<String> = graph.keys().filter_map(|m| cycle_from(&graph, m)).map(|c| c.join(" -> ")).collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_checks_see_uses_in_paths_groups_and_not_in_comments_or_tests() {
    let names: BTreeSet<String> = ["app", "store", "sale", "room"].map(String::from).into();
    let text = code_of(
        "use crate::{sale::Sale, room};\nfn f() { crate::store::x(); }\n// crate::app\n#[cfg(test)]\nmod tests { use crate::app; }",
    );
    assert_eq!(used(&text, &names), ["room", "sale", "store"].map(String::from).into());
    let cyclic: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), ["b".to_owned()].into()),
        ("b".to_owned(), ["c".to_owned()].into()),
        ("c".to_owned(), ["a".to_owned()].into()),
    ]
    .into();
    assert_eq!(cycle_from(&cyclic, "a").map(|c| c.join(" -> ")).as_deref(), Some("a -> b -> c -> a"));
    assert!(graph().contains_key("store") && graph()["checkout"].contains("store"), "the real crate is read");
}
