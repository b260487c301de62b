//! `docs/openapi.yaml` as data, and its string schemas (`minLength`, `maxLength`, `pattern`) as
//! predicates, for the tests that check the document allows exactly what the code accepts.

use serde_json::Value;

use crate::template::read;

/// The API document.
pub fn document() -> Value {
    serde_yaml_ng::from_str(&read("docs/openapi.yaml")).expect("docs/openapi.yaml is YAML")
}

/// Follows local `$ref`s (`#/components/...`).
pub fn resolve<'d>(doc: &'d Value, v: &'d Value) -> &'d Value {
    match v["$ref"].as_str() {
        Some(r) => {
            let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("only local references: {r}"));
            resolve(doc, doc.pointer(pointer).unwrap_or_else(|| panic!("{r} points nowhere")))
        }
        None => v,
    }
}

/// A JSON Schema string schema as a predicate: length in characters (Unicode scalar values, as
/// JSON Schema counts them) and an unanchored pattern search, as JSON Schema defines both.
pub struct StringSchema {
    min: usize,
    max: usize,
    pattern: Option<regex_lite::Regex>,
}

impl StringSchema {
    pub fn of(schema: &Value) -> Self {
        assert_eq!(schema["type"], "string", "a string schema: {schema}");
        let bound = |key: &str| schema[key].as_u64().map(|n| usize::try_from(n).expect("a length"));
        let pattern = schema["pattern"]
            .as_str()
            .map(|p| regex_lite::Regex::new(p).unwrap_or_else(|e| panic!("pattern {p}: {e}")));
        Self { min: bound("minLength").unwrap_or(0), max: bound("maxLength").unwrap_or(usize::MAX), pattern }
    }

    pub fn accepts(&self, text: &str) -> bool {
        let n = text.chars().count();
        (self.min..=self.max).contains(&n) && self.pattern.as_ref().is_none_or(|p| p.is_match(text))
    }
}

/// Strings around a rule's edges: every character up to U+3100 and a few beyond (alone, inside
/// and at either end of other text), and runs of an ordinary character around the length bounds.
pub fn probe_strings(lengths: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    let chars = (0..=0x3100u32).chain([0xFEFF, 0xFFFD, 0xFFFF, 0x1_0000, 0x1_F600, 0x10_FFFF]);
    for c in chars.filter_map(char::from_u32) {
        out.extend([c.to_string(), format!("a{c}"), format!("{c}a"), format!("a{c}b")]);
    }
    for &n in lengths {
        for len in n.saturating_sub(1)..=n + 1 {
            out.extend(["x", "é", "名"].map(|c| c.repeat(len)));
        }
    }
    out.push(String::new());
    out
}
