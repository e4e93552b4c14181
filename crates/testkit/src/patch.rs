//! The three patch formats the API server accepts: JSON merge patch (RFC 7386), JSON patch
//! (RFC 6902) and strategic merge patch for the fields keyhole touches (lists of containers,
//! volumes, env and friends merge by their Kubernetes `patchMergeKey`; the `$patch`,
//! `$retainKeys`, `$deleteFromPrimitiveList` and `$setElementOrder` directives).

use serde_json::{Map, Value};

/// RFC 7386: objects merge recursively, `null` deletes, everything else replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// The Kubernetes `patchMergeKey` of list fields, by field name (the fake only serves types in
/// which a field name has one strategy).
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "ephemeralContainerStatuses"
        | "resourceClaims" => "name",
        "ports" => "containerPort",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "ownerReferences" => "uid",
        "conditions" => "type",
        "hostAliases" => "ip",
        _ => return None,
    })
}

/// Primitive lists whose strategy is `merge` (set union) rather than replace.
fn merges_primitives(field: &str) -> bool {
    matches!(field, "finalizers")
}

/// Applies a strategic merge patch to `target`.
pub(crate) fn strategic_merge(target: &mut Value, patch: &Value) -> Result<(), String> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replaced = p.clone();
            replaced.remove("$patch");
            *target = Value::Object(replaced);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => return Err(format!("unknown patch type: {other}")),
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else {
        return Ok(());
    };
    let retain: Option<Vec<String>> = p.get("$retainKeys").and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    });
    for (k, v) in p {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(remove)) = (t.get_mut(field), v) {
                list.retain(|x| !remove.contains(x));
            }
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match v {
            Value::Object(_) => {
                let entry = t.entry(k.clone()).or_insert(Value::Null);
                strategic_merge(entry, v)?;
                if entry.is_null() {
                    t.remove(k);
                }
            }
            Value::Array(items) => {
                let merged = merge_list(k, t.get(k), items)?;
                t.insert(k.clone(), merged);
            }
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
    if let Some(keep) = retain {
        t.retain(|k, _| keep.contains(k));
    }
    Ok(())
}

fn merge_list(field: &str, current: Option<&Value>, items: &[Value]) -> Result<Value, String> {
    let current: Vec<Value> = current
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // `[{"$patch": "replace"}, ...]` replaces the whole list.
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(Value::Array(
            items
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .cloned()
                .collect(),
        ));
    }
    if let Some(key) = merge_key(field) {
        let mut out = current;
        for item in items {
            let Some(id) = item.get(key) else {
                return Err(format!(
                    "map: {item} does not contain declared merge key: {key}"
                ));
            };
            let pos = out.iter().position(|o| o.get(key) == Some(id));
            let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
            match (pos, delete) {
                (Some(i), true) => {
                    out.remove(i);
                }
                (None, true) => {}
                (Some(i), false) => strategic_merge(&mut out[i], item)?,
                (None, false) => {
                    let mut fresh = Value::Object(Map::new());
                    strategic_merge(&mut fresh, item)?;
                    out.push(fresh);
                }
            }
        }
        return Ok(Value::Array(out));
    }
    if merges_primitives(field) {
        let mut out = current;
        for item in items {
            if !out.contains(item) {
                out.push(item.clone());
            }
        }
        return Ok(Value::Array(out));
    }
    Ok(Value::Array(items.to_vec()))
}

/// RFC 6902 JSON patch (add, remove, replace, move, copy, test). All-or-nothing.
pub(crate) fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops
        .as_array()
        .ok_or_else(|| "json patch must be an array of operations".to_owned())?;
    let mut doc = target.clone();
    for op in ops {
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or("json patch operation has no \"op\"")?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or("json patch operation has no \"path\"")?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| format!("json patch {kind} operation has no \"value\""))
        };
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("json patch {kind} operation has no \"from\""))
        };
        match kind {
            "add" => add(&mut doc, path, value()?)?,
            "remove" => {
                remove(&mut doc, path)?;
            }
            "replace" => {
                remove(&mut doc, path)?;
                add(&mut doc, path, value()?)?;
            }
            "move" => {
                let v = remove(&mut doc, from()?)?;
                add(&mut doc, path, v)?;
            }
            "copy" => {
                let v = doc
                    .pointer(from()?)
                    .cloned()
                    .ok_or_else(|| format!("copy from missing path {}", from().unwrap_or("")))?;
                add(&mut doc, path, v)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&value()?) {
                    return Err(format!("testing value {path} failed"));
                }
            }
            other => return Err(format!("unexpected json patch kind {other:?}")),
        }
    }
    *target = doc;
    Ok(())
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split_parent(path: &str) -> Result<(&str, String), String> {
    if path.is_empty() {
        return Err("json patch cannot operate on the document root".into());
    }
    let idx = path
        .rfind('/')
        .ok_or_else(|| format!("invalid json pointer {path:?}"))?;
    Ok((&path[..idx], unescape(&path[idx + 1..])))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let (parent, last) = split_parent(path)?;
    let parent = doc
        .pointer_mut(parent)
        .ok_or_else(|| format!("add operation does not apply: doc is missing path: {path:?}"))?;
    match parent {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            let idx = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .map_err(|_| format!("invalid array index {last:?}"))?
            };
            if idx > a.len() {
                return Err(format!(
                    "add operation does not apply: index {idx} out of bounds"
                ));
            }
            a.insert(idx, value);
            Ok(())
        }
        _ => Err(format!(
            "add operation does not apply: {path:?} has no container"
        )),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split_parent(path)?;
    let missing = || format!("remove operation does not apply: doc is missing path: {path:?}");
    match doc.pointer_mut(parent).ok_or_else(missing)? {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => {
            let idx: usize = last.parse().map_err(|_| missing())?;
            if idx >= a.len() {
                return Err(missing());
            }
            Ok(a.remove(idx))
        }
        _ => Err(missing()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386() {
        let mut t = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge_patch(&mut t, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(t, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut pod = json!({"spec": {"containers": [{"name": "app", "image": "a"}],
            "ephemeralContainers": [{"name": "d1", "image": "busybox"}]}});
        strategic_merge(
            &mut pod,
            &json!({"spec": {"ephemeralContainers": [{"name": "d2", "image": "x"}],
                "containers": [{"name": "app", "image": "b"}]}}),
        )
        .unwrap();
        assert_eq!(
            pod["spec"]["ephemeralContainers"].as_array().unwrap().len(),
            2
        );
        assert_eq!(pod["spec"]["containers"][0]["image"], "b");
        strategic_merge(
            &mut pod,
            &json!({"spec": {"ephemeralContainers": [{"name": "d1", "$patch": "delete"}]}}),
        )
        .unwrap();
        assert_eq!(pod["spec"]["ephemeralContainers"][0]["name"], "d2");
        strategic_merge(&mut pod, &json!({"metadata": {"finalizers": ["a"]}})).unwrap();
        strategic_merge(&mut pod, &json!({"metadata": {"finalizers": ["b", "a"]}})).unwrap();
        assert_eq!(pod["metadata"]["finalizers"], json!(["a", "b"]));
        assert!(
            strategic_merge(&mut pod, &json!({"spec": {"containers": [{"image": "x"}]}})).is_err()
        );
    }

    #[test]
    fn json_patch_rfc6902() {
        let mut t = json!({"a": [1, 2], "b": {"c": "d"}});
        json_patch(
            &mut t,
            &json!([
                {"op": "add", "path": "/a/-", "value": 3},
                {"op": "replace", "path": "/b/c", "value": "e"},
                {"op": "copy", "from": "/b", "path": "/f"},
                {"op": "move", "from": "/a/0", "path": "/g"},
                {"op": "test", "path": "/g", "value": 1},
                {"op": "remove", "path": "/b"}
            ]),
        )
        .unwrap();
        assert_eq!(t, json!({"a": [2, 3], "f": {"c": "e"}, "g": 1}));
        let before = t.clone();
        assert!(
            json_patch(
                &mut t,
                &json!([{"op": "add", "path": "/z", "value": 1},
            {"op": "test", "path": "/g", "value": 2}])
            )
            .is_err()
        );
        assert_eq!(t, before, "a failed patch changes nothing");
        assert!(json_patch(&mut t, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }
}
