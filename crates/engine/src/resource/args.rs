//! Reading resource arguments from a profile: mappings with known keys, paths, positive
//! numbers and lists of names, each error naming its line and field.

use crate::EngineError;
use crate::facts::TargetPath;
use crate::matcher;
use crate::scope::Scope;
use crate::yaml::{Entry, Node};

/// The mapping entries of an argument, refusing keys not in `allowed`. Null is an empty mapping.
pub(super) fn args<'n>(
    scope: &Scope<'_>,
    at: &str,
    node: &'n Node,
    allowed: &[&str],
) -> Result<&'n [Entry], EngineError> {
    if node.is_null() {
        return Ok(&[]);
    }
    let entries = node.as_map().ok_or_else(|| {
        scope.error(
            node.line,
            at,
            format!(
                "expected a mapping with keys {}, found {}",
                allowed.join(", "),
                node.shape()
            ),
        )
    })?;
    for e in entries {
        if !allowed.contains(&e.key.as_str()) {
            return Err(scope.error(
                e.line,
                &format!("{at}.{}", e.key),
                format!("unknown key; this resource takes: {}", allowed.join(", ")),
            ));
        }
    }
    Ok(entries)
}

/// The entry `key` of an argument mapping.
pub(super) fn arg<'n>(entries: &'n [Entry], key: &str) -> Option<&'n Entry> {
    entries.iter().find(|e| e.key == key)
}

/// An absolute target path.
pub(super) fn target_path(
    scope: &Scope<'_>,
    at: &str,
    node: &Node,
) -> Result<TargetPath, EngineError> {
    let node = scope.resolve(node, at)?;
    let t = matcher::text(scope, at, &node)?;
    TargetPath::new(t.clone()).ok_or_else(|| {
        scope.error(
            node.line,
            at,
            format!("`{t}` is not an absolute path (it must start with `/`)"),
        )
    })
}

/// A number above zero.
pub(super) fn positive(scope: &Scope<'_>, at: &str, node: &Node) -> Result<u64, EngineError> {
    let node = scope.resolve(node, at)?;
    let v = matcher::int(scope, at, &node)?;
    u64::try_from(v)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| scope.error(node.line, at, format!("{v} is not a positive number")))
}

/// The optional positive number `key` of `entries` (at `at.key`), else `default`.
pub(super) fn positive_or(
    scope: &Scope<'_>,
    at: &str,
    entries: &[Entry],
    key: &str,
    default: u64,
) -> Result<u64, EngineError> {
    arg(entries, key).map_or(Ok(default), |e| {
        positive(scope, &format!("{at}.{key}"), &e.value)
    })
}

/// No argument (null or an empty mapping).
pub(super) fn no_args(scope: &Scope<'_>, at: &str, node: &Node) -> Result<(), EngineError> {
    args(scope, at, node, &[]).map(|_| ())
}

/// One file name or a list of them (no `/`, not empty).
pub(super) fn name_list(
    scope: &Scope<'_>,
    at: &str,
    node: &Node,
) -> Result<Vec<String>, EngineError> {
    let node = scope.resolve(node, at)?;
    let line = node.line;
    let items: Vec<Node> = match node.as_seq() {
        Some(items) => items.to_vec(),
        None => vec![node.into_owned()],
    };
    let mut out = Vec::new();
    for item in &items {
        let item = scope.resolve(item, at)?;
        let t = matcher::text(scope, at, &item)?;
        if t.is_empty() || t.contains(['/', '\0']) {
            return Err(scope.error(
                item.line,
                at,
                format!("`{t}` is not a file name (no `/`, not empty)"),
            ));
        }
        out.push(t);
    }
    if out.is_empty() {
        return Err(scope.error(line, at, "an empty list of names".into()));
    }
    Ok(out)
}
