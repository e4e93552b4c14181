//! Object lifecycle with the API server's semantics: create (names, generateName, uid,
//! resourceVersion, creationTimestamp, per-kind defaulting and validation), update of the main
//! resource and of the `status` / `ephemeralcontainers` subresources, delete with finalizers and
//! propagation policies, and the garbage collector's ownerReference cascade.

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::cluster::{GcMode, State};
use crate::resources::{RBAC, RESOURCES, ResourceDef, by_plural};
use crate::status::{ApiError, FieldError, FieldErrorKind as K};
use crate::store::{index_of, name_suffix, new_uid};

/// RFC 3339 at second precision, as metav1.Time serialises.
pub(crate) fn timestamp(now: Timestamp) -> String {
    Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

fn res(group: &str, plural: &str) -> &'static ResourceDef {
    // The table is static and these lookups use names from it; a miss is a bug in this crate.
    by_plural(group, plural).unwrap_or(&RESOURCES[0])
}

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label)
}

fn name_errors(def: &ResourceDef, name: &str) -> Option<FieldError> {
    let err = |msg: &str| {
        Some(FieldError::new("metadata.name", K::Invalid, msg).with_value(format!("{name:?}")))
    };
    match def.plural {
        "namespaces" if !is_label(name) => err(LABEL_MSG),
        "roles" | "rolebindings" | "clusterroles" | "clusterrolebindings" => {
            if name == "." || name == ".." || name.contains('/') || name.contains('%') {
                err("may not contain '/' or '%' and may not be '.' or '..'")
            } else {
                None
            }
        }
        _ if !is_subdomain(name) => err(SUBDOMAIN_MSG),
        _ => None,
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .try_fold(v, |v, k| v.get(*k))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Creates an object, as POST to the collection does. Returns the stored object.
pub(crate) fn create(
    st: &mut State,
    now: Timestamp,
    def: &'static ResourceDef,
    ns: &str,
    mut obj: Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    };
    let api_version = def.api_version();
    if let Some(v) = map.get("apiVersion").and_then(Value::as_str)
        && v != api_version
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({v}) does not match the expected API version ({api_version})"
        )));
    }
    if let Some(k) = map.get("kind").and_then(Value::as_str)
        && k != def.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            def.kind
        )));
    }
    map.insert("apiVersion".into(), json!(api_version));
    map.insert("kind".into(), json!(def.kind));
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    let body_ns = str_at(meta, &["namespace"]).to_owned();
    if def.namespaced {
        if !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta["namespace"] = json!(ns);
    } else if let Some(m) = meta.as_object_mut() {
        m.remove("namespace");
    }
    let mut name = str_at(meta, &["name"]).to_owned();
    if name.is_empty() {
        let prefix = str_at(meta, &["generateName"]);
        if prefix.is_empty() {
            return Err(ApiError::invalid(
                def.group,
                def.kind,
                "",
                &[FieldError::new(
                    "metadata.name",
                    K::Required,
                    "name or generateName is required",
                )],
            ));
        }
        let prefix = &prefix[..prefix.len().min(58)];
        name = format!("{prefix}{}", name_suffix());
    }
    if let Some(e) = name_errors(def, &name) {
        return Err(ApiError::invalid(def.group, def.kind, &name, &[e]));
    }
    if def.namespaced && st.store.get(res("", "namespaces"), "", ns).is_none() {
        return Err(ApiError::not_found("", "namespaces", ns));
    }
    if st.store.get(def, ns, &name).is_some() {
        return Err(ApiError::already_exists(def.group, def.plural, &name));
    }
    meta["name"] = json!(name);
    meta["uid"] = json!(new_uid());
    meta["creationTimestamp"] = json!(timestamp(now));
    if let Some(m) = meta.as_object_mut() {
        for f in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
            "managedFields",
        ] {
            m.remove(f);
        }
    }
    prepare_create(st, def, ns, &name, &mut obj)?;
    if dry_run {
        return Ok(obj);
    }
    obj["metadata"]["resourceVersion"] = json!(st.store.next_rv());
    st.store
        .objects
        .insert((index_of(def), ns.to_owned(), name.clone()), obj.clone());
    if def.plural == "namespaces" {
        seed_namespace(st, now, &name);
    }
    Ok(obj)
}

/// What a namespace controller and the root-CA publisher add to every new namespace.
fn seed_namespace(st: &mut State, now: Timestamp, ns: &str) {
    let sa = json!({"metadata": {"name": "default"}});
    let ca =
        json!({"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": st.ca_pem.clone()}});
    // Both names are valid and the namespace was just created, so these cannot fail.
    let _ = create(st, now, res("", "serviceaccounts"), ns, sa, false);
    let _ = create(st, now, res("", "configmaps"), ns, ca, false);
}

fn prepare_create(
    st: &State,
    def: &ResourceDef,
    ns: &str,
    name: &str,
    obj: &mut Value,
) -> Result<(), ApiError> {
    match def.plural {
        "namespaces" => {
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        "pods" => prepare_pod_create(st, ns, name, obj)?,
        "secrets" => {
            if obj.get("type").is_none_or(Value::is_null) {
                obj["type"] = json!("Opaque");
            }
            fold_string_data(obj);
        }
        "roles" | "clusterroles" => validate_rules(def, name, obj)?,
        "rolebindings" | "clusterrolebindings" => validate_binding(def, name, obj)?,
        _ => {}
    }
    Ok(())
}

/// `stringData` is write-only: the server merges it into `data` (base64) and drops it.
fn fold_string_data(obj: &mut Value) {
    use base64::Engine as _;
    let Some(Value::Object(sd)) = obj.as_object_mut().and_then(|m| m.remove("stringData")) else {
        return;
    };
    for (k, v) in sd {
        let enc = base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or(""));
        obj["data"][k] = json!(enc);
    }
}

fn validate_rules(def: &ResourceDef, name: &str, obj: &Value) -> Result<(), ApiError> {
    let mut errs = Vec::new();
    for (i, rule) in obj["rules"].as_array().into_iter().flatten().enumerate() {
        let field = |f: &str| format!("rules[{i}].{f}");
        let empty = |f: &str| rule[f].as_array().is_none_or(Vec::is_empty);
        if empty("verbs") {
            errs.push(FieldError::new(
                field("verbs"),
                K::Required,
                "verbs must contain at least one value",
            ));
        }
        if empty("nonResourceURLs") {
            if empty("apiGroups") {
                errs.push(FieldError::new(
                    field("apiGroups"),
                    K::Required,
                    "resource rules must supply at least one api group",
                ));
            }
            if empty("resources") {
                errs.push(FieldError::new(
                    field("resources"),
                    K::Required,
                    "resource rules must supply at least one resource",
                ));
            }
        } else if def.namespaced {
            errs.push(
                FieldError::new(
                    field("nonResourceURLs"),
                    K::Invalid,
                    "namespaced rules cannot apply to non-resource URLs",
                )
                .with_value(rule["nonResourceURLs"].to_string()),
            );
        } else if !empty("resources") || !empty("apiGroups") {
            errs.push(FieldError::new(
                field("nonResourceURLs"),
                K::Invalid,
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(RBAC, def.kind, name, &errs))
    }
}

fn validate_binding(def: &ResourceDef, name: &str, obj: &Value) -> Result<(), ApiError> {
    let mut errs = Vec::new();
    let rr = &obj["roleRef"];
    let kind = str_at(rr, &["kind"]);
    let allowed: &[&str] = if def.namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !allowed.contains(&kind) {
        errs.push(
            FieldError::new(
                "roleRef.kind",
                K::Unsupported,
                format!("supported values: {allowed:?}"),
            )
            .with_value(format!("{kind:?}")),
        );
    }
    if str_at(rr, &["apiGroup"]) != RBAC {
        errs.push(
            FieldError::new(
                "roleRef.apiGroup",
                K::Unsupported,
                format!("supported values: \"{RBAC}\""),
            )
            .with_value(format!("{:?}", str_at(rr, &["apiGroup"]))),
        );
    }
    if str_at(rr, &["name"]).is_empty() {
        errs.push(FieldError::new("roleRef.name", K::Required, ""));
    }
    for (i, s) in obj["subjects"].as_array().into_iter().flatten().enumerate() {
        let kind = str_at(s, &["kind"]);
        if str_at(s, &["name"]).is_empty() {
            errs.push(FieldError::new(
                format!("subjects[{i}].name"),
                K::Required,
                "",
            ));
        }
        match kind {
            "ServiceAccount" => {
                if !str_at(s, &["apiGroup"]).is_empty() {
                    errs.push(
                        FieldError::new(
                            format!("subjects[{i}].apiGroup"),
                            K::Unsupported,
                            "supported values: \"\"",
                        )
                        .with_value(format!("{:?}", str_at(s, &["apiGroup"]))),
                    );
                }
                if !def.namespaced && str_at(s, &["namespace"]).is_empty() {
                    errs.push(FieldError::new(
                        format!("subjects[{i}].namespace"),
                        K::Required,
                        "",
                    ));
                }
            }
            "User" | "Group" => {
                if str_at(s, &["apiGroup"]) != RBAC {
                    errs.push(
                        FieldError::new(
                            format!("subjects[{i}].apiGroup"),
                            K::Unsupported,
                            format!("supported values: \"{RBAC}\""),
                        )
                        .with_value(format!("{:?}", str_at(s, &["apiGroup"]))),
                    );
                }
            }
            other => errs.push(
                FieldError::new(
                    format!("subjects[{i}].kind"),
                    K::Unsupported,
                    "supported values: \"ServiceAccount\", \"User\", \"Group\"",
                )
                .with_value(format!("{other:?}")),
            ),
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(RBAC, def.kind, name, &errs))
    }
}

// ---------------------------------------------------------------- pods

fn default_container(c: &mut Value) {
    let Some(m) = c.as_object_mut() else { return };
    m.entry("terminationMessagePath")
        .or_insert_with(|| json!("/dev/termination-log"));
    m.entry("terminationMessagePolicy")
        .or_insert_with(|| json!("File"));
    let image = m
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let last = image.rsplit('/').next().unwrap_or("");
    let policy = if image.contains('@') {
        "IfNotPresent"
    } else {
        match last.split_once(':') {
            Some((_, tag)) if tag != "latest" => "IfNotPresent",
            _ => "Always",
        }
    };
    m.entry("imagePullPolicy").or_insert_with(|| json!(policy));
}

fn containers(spec: &Value, field: &str) -> Vec<Value> {
    spec[field].as_array().cloned().unwrap_or_default()
}

fn validate_container(c: &Value, field: &str, errs: &mut Vec<FieldError>) {
    let name = str_at(c, &["name"]);
    if name.is_empty() {
        errs.push(FieldError::new(format!("{field}.name"), K::Required, ""));
    } else if !is_label(name) {
        errs.push(
            FieldError::new(format!("{field}.name"), K::Invalid, LABEL_MSG)
                .with_value(format!("{name:?}")),
        );
    }
    if str_at(c, &["image"]).is_empty() {
        errs.push(FieldError::new(format!("{field}.image"), K::Required, ""));
    }
}

fn prepare_pod_create(st: &State, ns: &str, name: &str, pod: &mut Value) -> Result<(), ApiError> {
    let mut errs = Vec::new();
    if !pod["spec"].is_object() {
        pod["spec"] = json!({});
    }
    let spec = &mut pod["spec"];
    if spec["containers"].as_array().is_none_or(Vec::is_empty) {
        errs.push(FieldError::new("spec.containers", K::Required, ""));
    }
    if spec["ephemeralContainers"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        errs.push(FieldError::new(
            "spec.ephemeralContainers",
            K::Forbidden,
            "cannot be set on create",
        ));
    }
    let mut seen = Vec::new();
    for field in ["initContainers", "containers"] {
        for (i, c) in spec[field].as_array_mut().into_iter().flatten().enumerate() {
            let path = format!("spec.{field}[{i}]");
            validate_container(c, &path, &mut errs);
            let n = str_at(c, &["name"]).to_owned();
            if !n.is_empty() && seen.contains(&n) {
                errs.push(
                    FieldError::new(format!("{path}.name"), K::Duplicate, "")
                        .with_value(format!("{n:?}")),
                );
            }
            seen.push(n);
            default_container(c);
        }
    }
    if !errs.is_empty() {
        return Err(ApiError::invalid("", "Pod", name, &errs));
    }
    let sa = match str_at(spec, &["serviceAccountName"]) {
        "" => "default".to_owned(),
        s => s.to_owned(),
    };
    spec["serviceAccountName"] = json!(sa);
    spec["serviceAccount"] = json!(sa);
    for (k, v) in [
        ("restartPolicy", json!("Always")),
        ("dnsPolicy", json!("ClusterFirst")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("schedulerName", json!("default-scheduler")),
        ("securityContext", json!({})),
        ("enableServiceLinks", json!(true)),
    ] {
        if spec.get(k).is_none_or(Value::is_null) {
            spec[k] = v;
        }
    }
    // The ServiceAccount admission plugin.
    if st.store.get(res("", "serviceaccounts"), ns, &sa).is_none() {
        return Err(ApiError::forbidden(
            "",
            "pods",
            name,
            &format!(
                "error looking up service account {ns}/{sa}: serviceaccount \"{sa}\" not found"
            ),
        ));
    }
    // Computed at admission from requests and limits; immutable afterwards (see `update`).
    let qos = crate::qos::pod_qos(&pod["spec"]);
    pod["status"] = json!({"phase": "Pending", "qosClass": qos});
    Ok(())
}

const POD_UPDATE_MSG: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// The spec with the fields a pod update may change blanked out.
fn immutable_pod_spec(spec: &Value) -> Value {
    let mut s = spec.clone();
    for field in ["containers", "initContainers"] {
        for c in s[field].as_array_mut().into_iter().flatten() {
            default_container(c);
            if let Some(m) = c.as_object_mut() {
                m.remove("image");
                m.remove("imagePullPolicy");
            }
        }
    }
    if let Some(m) = s.as_object_mut() {
        for f in [
            "activeDeadlineSeconds",
            "tolerations",
            "ephemeralContainers",
        ] {
            m.remove(f);
        }
    }
    s
}

const EPHEMERAL_FORBIDDEN: &[&str] = &[
    "ports",
    "resources",
    "lifecycle",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "resizePolicy",
    "restartPolicy",
];

fn update_ephemeral(
    old: &Value,
    new: &Value,
    name: &str,
    now: Timestamp,
    simulated: bool,
) -> Result<Value, ApiError> {
    let old_list = containers(&old["spec"], "ephemeralContainers");
    let mut new_list = containers(&new["spec"], "ephemeralContainers");
    let mut errs = Vec::new();
    for c in &mut new_list {
        default_container(c);
    }
    for o in &old_list {
        let n = str_at(o, &["name"]);
        match new_list.iter().position(|c| str_at(c, &["name"]) == n) {
            None => errs.push(FieldError::new(
                "spec.ephemeralContainers",
                K::Forbidden,
                format!("existing ephemeral containers \"{n}\" may not be removed"),
            )),
            Some(i) if new_list[i] != *o => errs.push(FieldError::new(
                format!("spec.ephemeralContainers[{i}]"),
                K::Forbidden,
                format!("existing ephemeral containers \"{n}\" may not be changed"),
            )),
            Some(_) => {}
        }
    }
    let regular: Vec<String> = ["containers", "initContainers"]
        .iter()
        .flat_map(|f| containers(&old["spec"], f))
        .map(|c| str_at(&c, &["name"]).to_owned())
        .collect();
    let app_containers: Vec<String> = containers(&old["spec"], "containers")
        .iter()
        .map(|c| str_at(c, &["name"]).to_owned())
        .collect();
    let volumes: Vec<String> = containers(&old["spec"], "volumes")
        .iter()
        .map(|v| str_at(v, &["name"]).to_owned())
        .collect();
    let mut seen = regular.clone();
    for (i, c) in new_list.iter().enumerate() {
        let path = format!("spec.ephemeralContainers[{i}]");
        let n = str_at(c, &["name"]).to_owned();
        let is_new = !old_list.iter().any(|o| str_at(o, &["name"]) == n);
        if seen.contains(&n) && !n.is_empty() {
            errs.push(
                FieldError::new(format!("{path}.name"), K::Duplicate, "")
                    .with_value(format!("{n:?}")),
            );
        }
        seen.push(n);
        if !is_new {
            continue;
        }
        validate_container(c, &path, &mut errs);
        for f in EPHEMERAL_FORBIDDEN {
            let set = match c.get(*f) {
                None | Some(Value::Null) => false,
                Some(Value::Object(m)) => !m.is_empty(),
                Some(Value::Array(a)) => !a.is_empty(),
                Some(_) => true,
            };
            if set {
                errs.push(FieldError::new(
                    format!("{path}.{f}"),
                    K::Forbidden,
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
        let target = str_at(c, &["targetContainerName"]);
        if !target.is_empty() && !app_containers.iter().any(|x| x == target) {
            errs.push(
                FieldError::new(format!("{path}.targetContainerName"), K::NotFound, "")
                    .with_value(format!("{target:?}")),
            );
        }
        for (j, m) in c["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let v = str_at(m, &["name"]);
            if !volumes.iter().any(|x| x == v) {
                errs.push(
                    FieldError::new(format!("{path}.volumeMounts[{j}].name"), K::NotFound, "")
                        .with_value(format!("{v:?}")),
                );
            }
        }
    }
    if !errs.is_empty() {
        return Err(ApiError::invalid("", "Pod", name, &errs));
    }
    let mut out = old.clone();
    // A missing list and an empty one are the same pod.
    if new_list.is_empty() && old_list.is_empty() {
        return Ok(out);
    }
    out["spec"]["ephemeralContainers"] = Value::Array(new_list.clone());
    // The simulated kubelet starts a new ephemeral container at once in a running pod.
    if simulated && str_at(old, &["status", "phase"]) == "Running" {
        let mut statuses = containers(&old["status"], "ephemeralContainerStatuses");
        for c in &new_list {
            let n = str_at(c, &["name"]);
            if !statuses.iter().any(|s| str_at(s, &["name"]) == n) {
                statuses.push(json!({
                    "name": n,
                    "image": c["image"],
                    "imageID": "",
                    "containerID": format!("containerd://{}", new_uid().replace('-', "")),
                    "ready": false,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": timestamp(now)}},
                }));
            }
        }
        out["status"]["ephemeralContainerStatuses"] = Value::Array(statuses);
    }
    Ok(out)
}

/// Which part of an object a PUT/PATCH addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Main,
    Status,
    EphemeralContainers,
}

/// Replaces an object (PUT, or the result of a PATCH), honouring resourceVersion preconditions
/// and which fields the addressed part may change.
#[allow(clippy::too_many_arguments)]
pub(crate) fn update(
    st: &mut State,
    now: Timestamp,
    def: &'static ResourceDef,
    ns: &str,
    name: &str,
    mut new: Value,
    part: Part,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let Some(old) = st.store.get(def, ns, name).cloned() else {
        return Err(ApiError::not_found(def.group, def.plural, name));
    };
    if !new.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    let body_name = str_at(&new, &["metadata", "name"]);
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let rv = str_at(&new, &["metadata", "resourceVersion"]);
    if !rv.is_empty() && rv != str_at(&old, &["metadata", "resourceVersion"]) {
        return Err(ApiError::conflict(
            def.group,
            def.plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    let mut result = match part {
        Part::Status => {
            let mut r = old.clone();
            r["status"] = new.get("status").cloned().unwrap_or(Value::Null);
            if def.plural == "pods" {
                pod_status_qos(&old, &mut r, name)?;
            }
            r
        }
        Part::EphemeralContainers => {
            // A pod on a real node (crate::node) gets its ephemeral containers started and
            // reported by that node, not by the simulated kubelet.
            let simulated = !st
                .kubelet_nodes
                .contains(str_at(&old, &["spec", "nodeName"]));
            update_ephemeral(&old, &new, name, now, simulated)?
        }
        Part::Main => {
            if !new["metadata"].is_object() {
                new["metadata"] = json!({});
            }
            for f in [
                "uid",
                "creationTimestamp",
                "name",
                "namespace",
                "deletionTimestamp",
                "generateName",
            ] {
                match old["metadata"].get(f) {
                    Some(v) => new["metadata"][f] = v.clone(),
                    None => {
                        if let Some(m) = new["metadata"].as_object_mut() {
                            m.remove(f);
                        }
                    }
                }
            }
            new["apiVersion"] = json!(def.api_version());
            new["kind"] = json!(def.kind);
            prepare_update(def, name, &old, &mut new)?;
            new
        }
    };
    if let Some(m) = result["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    let mut old_cmp = old.clone();
    if let Some(m) = old_cmp["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    if result == old_cmp || dry_run {
        // A no-op write keeps the resourceVersion, as the real server does.
        result["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        return Ok(result);
    }
    result["metadata"]["resourceVersion"] = json!(st.store.next_rv());
    let key = (index_of(def), ns.to_owned(), name.to_owned());
    // A deleting object whose last finalizer was removed goes away now.
    let finalized = !str_at(&result, &["metadata", "deletionTimestamp"]).is_empty()
        && result["metadata"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty);
    if finalized {
        st.store.objects.remove(&key);
        after_removal(st, now, def, ns, name);
    } else {
        st.store.objects.insert(key, result.clone());
    }
    Ok(result)
}

/// A pod's QoS class is set at admission and never changes: a status write without one keeps
/// the old (old kubelets dropped it), one that changes it is refused, as the real server does.
fn pod_status_qos(old: &Value, new: &mut Value, name: &str) -> Result<(), ApiError> {
    let before = &old["status"]["qosClass"];
    match new["status"].get("qosClass") {
        None | Some(Value::Null) => {
            if !new["status"].is_object() {
                new["status"] = json!({});
            }
            new["status"]["qosClass"] = before.clone();
        }
        Some(Value::String(s)) if s.is_empty() => new["status"]["qosClass"] = before.clone(),
        Some(now) if now == before => {}
        Some(now) => {
            let shown = now
                .as_str()
                .map_or_else(|| now.to_string(), |s| format!("{s:?}"));
            return Err(ApiError::invalid(
                "",
                "Pod",
                name,
                &[
                    FieldError::new("status.qosClass", K::Invalid, "field is immutable")
                        .with_value(shown),
                ],
            ));
        }
    }
    Ok(())
}

fn prepare_update(
    def: &ResourceDef,
    name: &str,
    old: &Value,
    new: &mut Value,
) -> Result<(), ApiError> {
    match def.plural {
        "pods" => {
            new["status"] = old["status"].clone();
            if !new["spec"].is_object() {
                new["spec"] = json!({});
            }
            match old["spec"].get("ephemeralContainers") {
                Some(e) => new["spec"]["ephemeralContainers"] = e.clone(),
                None => {
                    if let Some(m) = new["spec"].as_object_mut() {
                        m.remove("ephemeralContainers");
                    }
                }
            }
            if immutable_pod_spec(&old["spec"]) != immutable_pod_spec(&new["spec"]) {
                return Err(ApiError::invalid(
                    "",
                    "Pod",
                    name,
                    &[FieldError::new("spec", K::Forbidden, POD_UPDATE_MSG)],
                ));
            }
            for field in ["containers", "initContainers"] {
                for c in new["spec"][field].as_array_mut().into_iter().flatten() {
                    default_container(c);
                }
            }
        }
        "namespaces" => {
            new["status"] = old["status"].clone();
            new["spec"] = old["spec"].clone();
        }
        "secrets" | "configmaps" => {
            if def.plural == "secrets" {
                fold_string_data(new);
                if new.get("type").is_none_or(Value::is_null) {
                    new["type"] = old["type"].clone();
                }
                if new["type"] != old["type"] {
                    return Err(ApiError::invalid(
                        "",
                        def.kind,
                        name,
                        &[FieldError::new("type", K::Invalid, "field is immutable")
                            .with_value(new["type"].to_string())],
                    ));
                }
            }
            if old["immutable"] == json!(true) {
                let mut errs = Vec::new();
                for f in ["data", "binaryData"] {
                    if new[f] != old[f] {
                        errs.push(FieldError::new(
                            f,
                            K::Forbidden,
                            "field is immutable when `immutable` is set",
                        ));
                    }
                }
                if new["immutable"] != json!(true) {
                    errs.push(FieldError::new(
                        "immutable",
                        K::Forbidden,
                        "field is immutable when `immutable` is set",
                    ));
                }
                if !errs.is_empty() {
                    return Err(ApiError::invalid("", def.kind, name, &errs));
                }
            }
        }
        "roles" | "clusterroles" => validate_rules(def, name, new)?,
        "rolebindings" | "clusterrolebindings" => {
            validate_binding(def, name, new)?;
            if new["roleRef"] != old["roleRef"] {
                return Err(ApiError::invalid(
                    RBAC,
                    def.kind,
                    name,
                    &[
                        FieldError::new("roleRef", K::Invalid, "cannot change roleRef")
                            .with_value(new["roleRef"].to_string()),
                    ],
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

// ---------------------------------------------------------------- delete and GC

/// Options of a DELETE (body `DeleteOptions` and query parameters).
#[derive(Debug, Clone, Default)]
pub(crate) struct DeleteOpts {
    pub(crate) propagation: Option<String>,
    pub(crate) precondition_uid: Option<String>,
    pub(crate) precondition_rv: Option<String>,
    pub(crate) dry_run: bool,
}

/// The result of a delete: removed now, or marked for deletion pending finalizers.
pub(crate) enum Deleted {
    Gone(Value),
    Pending(Value),
}

/// Deletes one object with the registry's semantics.
pub(crate) fn delete(
    st: &mut State,
    now: Timestamp,
    def: &'static ResourceDef,
    ns: &str,
    name: &str,
    opts: &DeleteOpts,
) -> Result<Deleted, ApiError> {
    let Some(obj) = st.store.get(def, ns, name).cloned() else {
        return Err(ApiError::not_found(def.group, def.plural, name));
    };
    let uid = str_at(&obj, &["metadata", "uid"]).to_owned();
    if let Some(want) = &opts.precondition_uid
        && *want != uid
    {
        return Err(ApiError::conflict(
            def.group,
            def.plural,
            name,
            &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
        ));
    }
    let rv = str_at(&obj, &["metadata", "resourceVersion"]);
    if let Some(want) = &opts.precondition_rv
        && want != rv
    {
        return Err(ApiError::conflict(
            def.group,
            def.plural,
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rv}"
            ),
        ));
    }
    let policy = opts.propagation.as_deref().unwrap_or("Background");
    if !matches!(policy, "Background" | "Foreground" | "Orphan") {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "DeleteOptions",
            "",
            &[FieldError::new(
                "propagationPolicy",
                K::Unsupported,
                "supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\"",
            )
            .with_value(format!("{policy:?}"))],
        ));
    }
    if opts.dry_run {
        return Ok(Deleted::Gone(obj));
    }
    if obj["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
    {
        let mut marked = obj.clone();
        if str_at(&marked, &["metadata", "deletionTimestamp"]).is_empty() {
            marked["metadata"]["deletionTimestamp"] = json!(timestamp(now));
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            marked["metadata"]["resourceVersion"] = json!(st.store.next_rv());
            st.store.objects.insert(
                (index_of(def), ns.to_owned(), name.to_owned()),
                marked.clone(),
            );
        }
        return Ok(Deleted::Pending(marked));
    }
    if policy == "Orphan" {
        orphan_dependents(st, &uid);
    }
    st.store
        .objects
        .remove(&(index_of(def), ns.to_owned(), name.to_owned()));
    after_removal(st, now, def, ns, name);
    Ok(Deleted::Gone(obj))
}

/// What follows an object leaving storage: a namespace takes its contents with it, pod logs go,
/// and the garbage collector runs (in immediate mode).
fn after_removal(st: &mut State, now: Timestamp, def: &ResourceDef, ns: &str, name: &str) {
    if def.plural == "namespaces" {
        st.store
            .objects
            .retain(|(r, n, _), _| !(RESOURCES[*r].namespaced && n == name));
    }
    if def.plural == "pods" {
        st.logs.retain(|(n, p, _), _| !(n == ns && p == name));
    }
    if st.gc == GcMode::Immediate {
        collect_garbage(st, now);
    }
}

fn orphan_dependents(st: &mut State, owner_uid: &str) {
    let mut changed = Vec::new();
    for (key, obj) in &st.store.objects {
        if let Some(refs) = obj["metadata"]["ownerReferences"].as_array()
            && refs.iter().any(|r| r["uid"].as_str() == Some(owner_uid))
        {
            changed.push(key.clone());
        }
    }
    for key in changed {
        let rv = st.store.next_rv();
        if let Some(obj) = st.store.objects.get_mut(&key)
            && let Some(refs) = obj["metadata"]["ownerReferences"].as_array_mut()
        {
            refs.retain(|r| r["uid"].as_str() != Some(owner_uid));
            obj["metadata"]["resourceVersion"] = json!(rv);
        }
    }
}

/// One full garbage-collector pass, to a fixpoint: an object none of whose owners exist is
/// deleted (its own dependents follow, transitively; one with finalizers is only marked); an
/// object with some owners gone loses the dangling references. Returns how many it removed.
pub(crate) fn collect_garbage(st: &mut State, now: Timestamp) -> usize {
    let mut removed = 0;
    loop {
        let uids: std::collections::HashSet<String> = st
            .store
            .objects
            .values()
            .filter_map(|o| o["metadata"]["uid"].as_str().map(str::to_owned))
            .collect();
        let mut doomed = Vec::new();
        let mut trimmed = Vec::new();
        for (key, obj) in &st.store.objects {
            let Some(refs) = obj["metadata"]["ownerReferences"].as_array() else {
                continue;
            };
            if refs.is_empty() {
                continue;
            }
            let alive = refs
                .iter()
                .filter(|r| r["uid"].as_str().is_some_and(|u| uids.contains(u)))
                .count();
            let has_finalizers = obj["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
            let marked = !str_at(obj, &["metadata", "deletionTimestamp"]).is_empty();
            if alive == 0 && !(has_finalizers && marked) {
                doomed.push((key.clone(), has_finalizers));
            } else if alive > 0 && alive < refs.len() {
                trimmed.push(key.clone());
            }
        }
        for key in &trimmed {
            let rv = st.store.next_rv();
            if let Some(obj) = st.store.objects.get_mut(key)
                && let Some(refs) = obj["metadata"]["ownerReferences"].as_array_mut()
            {
                refs.retain(|r| r["uid"].as_str().is_some_and(|u| uids.contains(u)));
                obj["metadata"]["resourceVersion"] = json!(rv);
            }
        }
        if doomed.is_empty() {
            return removed;
        }
        for (key, has_finalizers) in doomed {
            if has_finalizers {
                let rv = st.store.next_rv();
                if let Some(obj) = st.store.objects.get_mut(&key) {
                    obj["metadata"]["deletionTimestamp"] = json!(timestamp(now));
                    obj["metadata"]["resourceVersion"] = json!(rv);
                }
                continue;
            }
            st.store.objects.remove(&key);
            let (r, ns, name) = key;
            let def = &RESOURCES[r];
            if def.plural == "namespaces" {
                st.store
                    .objects
                    .retain(|(r2, n, _), _| !(RESOURCES[*r2].namespaced && *n == name));
            }
            if def.plural == "pods" {
                st.logs.retain(|(n, p, _), _| !(*n == ns && *p == name));
            }
            removed += 1;
        }
    }
}
