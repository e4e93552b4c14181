//! Block-style YAML that means the same to every reader: for the text Keyhole inserts into a
//! user's manifest, and for the manifests it prints.
//!
//! Kubernetes reads YAML with YAML 1.1 rules (`yes`, `on`, `n` are booleans, `0644` is octal),
//! while Rust YAML emitters follow YAML 1.2 and leave such strings unquoted. So every string
//! that is not plainly a word, path or image reference is written double-quoted (as JSON, which
//! is valid YAML), and means the same to every reader.

use serde_json::Value;

use crate::ScannerError;

/// Words that YAML 1.1 or 1.2 readers take for booleans or null when unquoted.
const RESERVED: [&str; 9] = ["y", "n", "yes", "no", "on", "off", "true", "false", "null"];

/// A scalar as YAML text that every YAML 1.1 and 1.2 reader reads back as `value`.
pub(crate) fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) if is_plain_safe(s) => s.clone(),
        // JSON text of a scalar, an empty collection, or (never produced by Keyhole's types) a
        // nested collection: flow YAML, quoted strings.
        other => other.to_string(),
    }
}

/// True for strings that no YAML reader takes for anything but that string: an optional `--`,
/// then a letter or `/`, then letters, digits and `/._:@-`, not ending in `:`, and not a
/// reserved word.
fn is_plain_safe(s: &str) -> bool {
    let body = s.strip_prefix("--").unwrap_or(s);
    let mut chars = body.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '/');
    first_ok
        && chars.all(|c| c.is_ascii_alphanumeric() || "/._:@-".contains(c))
        && !body.ends_with(':')
        && !body.contains(": ")
        && !RESERVED.contains(&s.to_ascii_lowercase().as_str())
}

/// Appends `map` as a block mapping indented by `indent` spaces, one line per scalar, `name`
/// first (so an inserted container reads like the user's), the rest in key order.
pub(crate) fn mapping(
    map: &serde_json::Map<String, Value>,
    indent: usize,
    nl: &str,
    out: &mut String,
) {
    let pad = " ".repeat(indent);
    let name = map.get_key_value("name");
    let rest = map.iter().filter(|(k, _)| k.as_str() != "name");
    for (key, value) in name.into_iter().chain(rest) {
        let key = scalar(&Value::String(key.clone()));
        match value {
            Value::Object(m) if !m.is_empty() => {
                out.push_str(&format!("{pad}{key}:{nl}"));
                mapping(m, indent + 2, nl, out);
            }
            Value::Array(items) if !items.is_empty() => {
                out.push_str(&format!("{pad}{key}:{nl}"));
                sequence(items, indent + 2, nl, out);
            }
            other => out.push_str(&format!("{pad}{key}: {}{nl}", scalar(other))),
        }
    }
}

/// `value` as a block-style YAML document that Kubernetes (YAML 1.1) and YAML 1.2 readers read
/// alike: strings that either could take for another type (`yes`, `0644`, a timestamp) are
/// quoted, which general-purpose emitters do not do for YAML 1.1. Mapping keys are written
/// `name` first, then in key order.
pub fn to_yaml<T: serde::Serialize>(value: &T) -> Result<String, ScannerError> {
    let json = serde_json::to_value(value).map_err(|e| ScannerError::Serialize {
        reason: e.to_string(),
    })?;
    let mut out = String::new();
    match &json {
        Value::Object(m) if !m.is_empty() => mapping(m, 0, "\n", &mut out),
        Value::Array(items) if !items.is_empty() => sequence(items, 0, "\n", &mut out),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    Ok(out)
}

/// `value` with its mappings in the order [`mapping`] writes them: `name` first, then by key.
pub(crate) fn key_order(value: serde_norway::Value) -> serde_norway::Value {
    use serde_norway::Value as Y;
    match value {
        Y::Mapping(m) => {
            let mut entries: Vec<(Y, Y)> = m.into_iter().collect();
            entries.sort_by(|(a, _), (b, _)| {
                let key = |k: &Y| (k.as_str() != Some("name"), k.as_str().map(str::to_string));
                key(a).cmp(&key(b))
            });
            Y::Mapping(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, key_order(v)))
                    .collect(),
            )
        }
        Y::Sequence(items) => Y::Sequence(items.into_iter().map(key_order).collect()),
        other => other,
    }
}

/// Appends `items` as a block sequence whose dashes are at column `indent`.
fn sequence(items: &[Value], indent: usize, nl: &str, out: &mut String) {
    let pad = " ".repeat(indent);
    for item in items {
        match item {
            Value::Object(m) if !m.is_empty() => out.push_str(&item_mapping(m, indent, nl)),
            other => out.push_str(&format!("{pad}- {}{nl}", scalar(other))),
        }
    }
}

/// `map` as one block-sequence item whose dash is at column `dash`.
pub(crate) fn item_mapping(map: &serde_json::Map<String, Value>, dash: usize, nl: &str) -> String {
    let mut text = String::new();
    mapping(map, dash + 2, nl, &mut text);
    // The first line starts with `dash + 2` spaces; its last two become the item's "- ".
    text.replace_range(dash..dash + 2, "- ");
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ambiguous_strings_are_quoted() {
        for s in [
            "yes", "No", "on", "OFF", "y", "n", "true", "null", "", "0644", "1_000", "12:30",
            "50m", "1e3", ".inf", "~", "a: b", "a:", "-x", "a b", "#x", "*x", "&x", "!x", "é",
        ] {
            let out = scalar(&json!(s));
            assert!(out.starts_with('"'), "{s:?} -> {out}");
            let back: String = serde_norway::from_str(&out).unwrap();
            assert_eq!(back, s);
        }
        for s in [
            "keyhole-scanner",
            "/keyhole-agent",
            "--time-limit",
            "ALL",
            "ghcr.io/a/b:1.0@sha256:ab",
        ] {
            assert_eq!(scalar(&json!(s)), s);
        }
    }

    #[test]
    fn renders_a_sequence_item() {
        let v = json!({"image": "x:1", "name": "web", "c": ["a", "on"], "r": {"l": {"cpu": "1"}}, "e": {}});
        let text = item_mapping(v.as_object().unwrap(), 2, "\n");
        assert_eq!(
            text,
            "  - name: web\n    c:\n      - a\n      - \"on\"\n    e: {}\n    image: x:1\n    r:\n      l:\n        cpu: \"1\"\n"
        );
    }
}
