//! Injection of the scanner sidecar into a user's workload manifest.
//!
//! The manifest is read twice: as values (`serde_norway::Value`) to decide what to do, and as a
//! tree of text positions to do it. The sidecar, `shareProcessNamespace: true` and any checkov
//! exceptions are spliced into the user's text; everything else (fields, order, unknown fields,
//! comments, quoting, anchors, other documents) stays byte for byte. Re-serializing the values
//! instead would drop comments and change meanings under the YAML 1.1 rules Kubernetes reads
//! with (`defaultMode: 0644` would become the string `'0644'`, `"yes"` a boolean). The result is
//! parsed back and compared with the intended values before it is returned.

mod tree;

use keyhole_core::{ContainerName, SCAN_TARGET_ENV};
use serde_norway::{Mapping, Value};

use crate::sidecar::SIDECAR_PROBE_SKIPS;
use crate::yaml;
use crate::{ImageRef, SIDECAR_NAME, ScannerError, sidecar_container};
use tree::{CollectionKind, Node};

/// What [`inject_sidecar`] needs to know beyond the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectOptions {
    /// The container to scan; needed when a pod has several.
    pub container: Option<ContainerName>,
    /// The uid the target runs as, when the manifest does not say (`runAsUser`).
    pub target_uid: Option<u32>,
    /// The gid the target runs as, when the manifest does not say (`runAsGroup`).
    pub target_gid: Option<u32>,
    /// The scanner image.
    pub image: ImageRef,
    /// How long the sidecar's scan may run, in seconds (at least 1).
    pub time_limit_secs: u64,
}

/// The injected manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    /// The whole manifest with the sidecar in every pod spec.
    pub yaml: String,
    /// Things the user should know or change, one line each.
    pub warnings: Vec<String>,
}

/// Where the pod spec of each pod-bearing kind is.
fn pod_spec_path(kind: &str) -> Option<(&'static str, &'static [&'static str])> {
    const TEMPLATE: &[&str] = &["spec", "template", "spec"];
    Some(match kind {
        "Pod" => ("v1", &["spec"]),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => ("apps/v1", TEMPLATE),
        "Job" => ("batch/v1", TEMPLATE),
        "CronJob" => (
            "batch/v1",
            &["spec", "jobTemplate", "spec", "template", "spec"],
        ),
        _ => return None,
    })
}

/// Kinds whose checkov probe checks apply (checkov does not ask Jobs and CronJobs for probes).
fn probes_checked(kind: &str) -> bool {
    !matches!(kind, "Job" | "CronJob")
}

/// Adds the scanner sidecar to every pod spec of the manifest `input` (one or more YAML
/// documents), and returns the manifest with warnings.
///
/// Pod specs are those of Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job and CronJob
/// objects; every other document passes through unchanged. In each pod spec: the target is
/// `opts.container` or the only container; its uid is `opts.target_uid`, else `runAsUser` of the
/// container, else of the pod (and the gid likewise from `runAsGroup`); the sidecar is
/// appended to `containers` and `shareProcessNamespace` set to true. For kinds that checkov asks
/// for probes, when the user's containers all have them, checkov exceptions for the sidecar's
/// (deliberately) missing probes are added to the object's annotations.
///
/// Refused: input that is empty, not YAML or without a pod spec; an ambiguous or missing
/// target container; an unknown uid; a pod that already has a `keyhole-scanner` container or
/// uses `hostPID`; a pod spec in flow style (`{...}`, as in JSON), which cannot be edited
/// without rewriting it. Each error names the document (1-based), its kind and name.
pub fn inject_sidecar(input: &str, opts: &InjectOptions) -> Result<Injected, ScannerError> {
    if opts.time_limit_secs == 0 {
        return Err(ScannerError::InvalidTimeLimit);
    }
    let nl = if input.contains("\r\n") { "\r\n" } else { "\n" };
    let docs = tree::parse_stream(input).map_err(|reason| ScannerError::NotYaml { reason })?;
    let mut values = Vec::with_capacity(docs.len());
    for (i, doc) in docs.iter().enumerate() {
        let value: Value = serde_norway::from_str(&input[doc.start..doc.end]).map_err(|e| {
            ScannerError::NotYaml {
                reason: format!("document {}: {}", i + 1, e.to_string().replace('\n', " ")),
            }
        })?;
        values.push(value);
    }
    if values.iter().all(Value::is_null) {
        return Err(ScannerError::Empty);
    }

    let mut plan = Plan {
        input,
        nl,
        edits: Vec::new(),
        warnings: Vec::new(),
    };
    let mut expected = values.clone();
    let mut found = Vec::new();
    let mut labels = Vec::new();
    let mut injected = 0;
    for (i, (doc, value)) in docs.iter().zip(&mut expected).enumerate() {
        let index = i + 1;
        if value.is_null() {
            labels.push(format!("document {index}"));
            continue;
        }
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .ok_or(ScannerError::NotAnObject { index })?
            .to_string();
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("without a name")
            .to_string();
        let label = format!("document {index} ({kind} {name})");
        labels.push(label.clone());
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        match pod_spec_path(&kind) {
            Some((want, path)) if api_version == want => {
                plan.pod_document(&label, &kind, path, &doc.root, value, opts)?;
                injected += 1;
            }
            Some((want, _)) => {
                plan.warnings.push(format!(
                    "{label}: apiVersion {api_version:?} is not {want}; left unchanged"
                ));
                found.push(format!("{kind}/{name}"));
            }
            None if kind == "List" && list_has_pods(value) => {
                return Err(ScannerError::NotEditableInPlace {
                    doc: label,
                    reason: "workloads inside a List".to_string(),
                });
            }
            None => found.push(format!("{kind}/{name}")),
        }
    }
    if injected == 0 {
        return Err(ScannerError::NoPodSpec {
            found: found.join(", "),
        });
    }
    if !opts.image.is_digest_pinned() {
        plan.warnings.push(format!(
            "the scanner image {} is pinned by tag only; pin it by digest (@sha256:...) so a re-pushed tag cannot change what runs",
            opts.image
        ));
    }

    let yaml = apply(input, plan.edits);
    verify(&yaml, &expected, &labels)?;
    Ok(Injected {
        yaml,
        warnings: plan.warnings,
    })
}

fn list_has_pods(value: &Value) -> bool {
    value
        .get("items")
        .and_then(Value::as_sequence)
        .is_some_and(|items| {
            items.iter().any(|item| {
                item.get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| pod_spec_path(k).is_some())
            })
        })
}

/// A text edit: replace `len` bytes at `at` with `text`.
#[derive(Debug)]
struct Edit {
    at: usize,
    len: usize,
    text: String,
}

fn apply(input: &str, mut edits: Vec<Edit>) -> String {
    // Back to front, so earlier offsets stay valid; a stable sort keeps two insertions at one
    // place in planning order.
    edits.sort_by_key(|e| e.at);
    let mut out = input.to_string();
    for e in edits.iter().rev() {
        out.replace_range(e.at..e.at + e.len, &e.text);
    }
    out
}

/// Parses the edited manifest back and checks that it means what was intended, so a layout the
/// splicing did not foresee is an error rather than a silently different manifest.
fn verify(yaml: &str, expected: &[Value], labels: &[String]) -> Result<(), ScannerError> {
    let failed = |i: usize| ScannerError::NotEditableInPlace {
        doc: labels
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("document {}", i + 1)),
        reason: "the edited text did not read back as intended".to_string(),
    };
    let docs = tree::parse_stream(yaml).map_err(|_| failed(0))?;
    if docs.len() != expected.len() {
        return Err(failed(docs.len().min(expected.len())));
    }
    for (i, (doc, want)) in docs.iter().zip(expected).enumerate() {
        let got: Value =
            serde_norway::from_str(&yaml[doc.start..doc.end]).map_err(|_| failed(i))?;
        if !same(&got, want) {
            return Err(failed(i));
        }
    }
    Ok(())
}

/// Equal values in the same order (`Mapping` equality alone ignores order).
fn same(a: &Value, b: &Value) -> bool {
    a == b && serde_norway::to_string(a).ok() == serde_norway::to_string(b).ok()
}

/// The edits and warnings collected over all documents.
struct Plan<'a> {
    input: &'a str,
    nl: &'static str,
    edits: Vec<Edit>,
    warnings: Vec<String>,
}

impl Plan<'_> {
    /// Plans the injection into one pod-bearing document, and applies it to `value` (so it
    /// becomes what the edited text must read back as).
    fn pod_document(
        &mut self,
        label: &str,
        kind: &str,
        path: &[&str],
        root: &Node,
        value: &mut Value,
        opts: &InjectOptions,
    ) -> Result<(), ScannerError> {
        let malformed = |reason: String| ScannerError::Malformed {
            doc: label.to_string(),
            reason,
        };
        let not_editable = |reason: &str| ScannerError::NotEditableInPlace {
            doc: label.to_string(),
            reason: reason.to_string(),
        };
        let dotted = path.join(".");
        let spec = path
            .iter()
            .try_fold(&*value, |v, k| v.get(*k))
            .and_then(Value::as_mapping)
            .ok_or_else(|| malformed(format!("{dotted} is missing or not a mapping")))?;

        let containers = container_names(spec.get("containers"))
            .filter(|names| !names.is_empty())
            .ok_or_else(|| {
                malformed(format!(
                    "{dotted}.containers must be a list of named containers"
                ))
            })?;
        let init = container_names(spec.get("initContainers")).unwrap_or_default();
        if containers.iter().chain(&init).any(|n| n == SIDECAR_NAME) {
            return Err(ScannerError::AlreadyInjected {
                doc: label.to_string(),
            });
        }
        if spec.get("hostPID").and_then(Value::as_bool) == Some(true) {
            return Err(ScannerError::HostPid {
                doc: label.to_string(),
            });
        }
        let target_index = match &opts.container {
            Some(c) => containers
                .iter()
                .position(|n| n == c.as_str())
                .ok_or_else(|| ScannerError::ContainerNotFound {
                    doc: label.to_string(),
                    name: c.to_string(),
                    names: containers.join(", "),
                })?,
            None if containers.len() == 1 => 0,
            None => {
                return Err(ScannerError::AmbiguousContainer {
                    doc: label.to_string(),
                    names: containers.join(", "),
                });
            }
        };
        let target_name = &containers[target_index];
        let target = ContainerName::new(target_name.clone())
            .map_err(|e| malformed(format!("container {target_name:?}: {e}")))?;
        let marker =
            marker_state(spec.get("containers"), target_index, target_name).map_err(|reason| {
                ScannerError::MarkerConflict {
                    doc: label.to_string(),
                    reason,
                }
            })?;
        let container_sc = spec
            .get("containers")
            .and_then(|c| c.get(target_index))
            .and_then(|c| c.get("securityContext"));
        let pod_sc = spec.get("securityContext");
        let id = |key: &str, given: Option<u32>| -> Result<Option<u32>, ScannerError> {
            if given.is_some() {
                return Ok(given);
            }
            for (sc, place) in [(container_sc, "the container's"), (pod_sc, "the pod's")] {
                if let Some(v) = sc.and_then(|sc| sc.get(key)) {
                    return v
                        .as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .map(Some)
                        .ok_or_else(|| {
                            malformed(format!("{place} securityContext.{key} is not a valid id"))
                        });
                }
            }
            Ok(None)
        };
        let uid = id("runAsUser", opts.target_uid)?.ok_or_else(|| ScannerError::NoUid {
            doc: label.to_string(),
            container: target_name.clone(),
        })?;
        let gid = id("runAsGroup", opts.target_gid)?;

        // Warnings: what the user should know about the result.
        if spec
            .get("automountServiceAccountToken")
            .and_then(Value::as_bool)
            != Some(false)
        {
            self.warnings.push(format!(
                "{label}: the pod does not set automountServiceAccountToken: false, so the sidecar gets the pod's service-account token too; set it unless the workload needs the token (keyhole leaves it as it is)"
            ));
        }
        if uid == 0 {
            self.warnings.push(format!(
                "{label}: container {target_name:?} runs as root, so the sidecar does too (with no capabilities, it can read the target only if the target has none either)"
            ));
        }
        if gid.is_none() {
            self.warnings.push(format!(
                "{label}: the gid of container {target_name:?} is not set (runAsGroup); reading its files needs the sidecar to have the same gid, so set runAsGroup or pass --target-gid"
            ));
        }
        let share = spec.get("shareProcessNamespace").and_then(Value::as_bool);
        if share != Some(true) && containers.len() > 1 {
            let others: Vec<&str> = containers
                .iter()
                .filter(|n| *n != target_name)
                .map(String::as_str)
                .collect();
            self.warnings.push(format!(
                "{label}: with shareProcessNamespace the pod's other containers ({}) see the target's processes too",
                others.join(", ")
            ));
        }
        if spec.get("shareProcessNamespace").is_some() && share != Some(true) {
            self.warnings.push(format!(
                "{label}: shareProcessNamespace was not true and is now true: the sidecar must see the target's processes"
            ));
        }

        // checkov exceptions for the sidecar's missing probes, only where they excuse the sidecar
        // alone: when a user container lacks the probe too, the finding stays.
        let mut skips = Vec::new();
        if probes_checked(kind) {
            let annotations = value
                .get("metadata")
                .and_then(|m| m.get("annotations"))
                .and_then(Value::as_mapping);
            let skipped = |check: &str| {
                annotations.is_some_and(|a| {
                    a.iter().any(|(k, v)| {
                        k.as_str().is_some_and(|k| k.contains(".io/skip"))
                            && v.as_str()
                                .is_some_and(|v| v == check || v.starts_with(&format!("{check}=")))
                    })
                })
            };
            let mut n = 1;
            for (probe, (check, reason)) in ["livenessProbe", "readinessProbe"]
                .into_iter()
                .zip(SIDECAR_PROBE_SKIPS)
            {
                let all_have = spec
                    .get("containers")
                    .and_then(Value::as_sequence)
                    .is_some_and(|cs| cs.iter().all(|c| is_truthy(c.get(probe))));
                if !all_have || skipped(check) {
                    continue;
                }
                while annotations.is_some_and(|a| a.contains_key(format!("checkov.io/skip{n}"))) {
                    n += 1;
                }
                skips.push((format!("checkov.io/skip{n}"), format!("{check}={reason}")));
                n += 1;
            }
        }

        // The text edits.
        let spec_node = path
            .iter()
            .try_fold(root, |n, k| n.get(k))
            .ok_or_else(|| not_editable("the pod spec"))?;
        let containers_entry = spec_node.entry("containers");
        let (Node::Collection { flow: false, .. }, Some((containers_key, containers_node))) =
            (spec_node, containers_entry)
        else {
            return Err(not_editable("a pod spec in flow style"));
        };
        // The marker first: when the target is the last container, its end is where the
        // sidecar goes, and insertions at one place keep planning order.
        if marker == Marker::Missing {
            let target_node = match containers_node {
                Node::Collection {
                    kind: CollectionKind::Seq(items),
                    ..
                } => items.get(target_index),
                _ => None,
            };
            self.add_marker(target_node, target_name)
                .ok_or_else(|| not_editable("the target container's env"))?;
        }
        let container = sidecar_container(&target, uid, gid, &opts.image, opts.time_limit_secs);
        self.append_container(containers_node, &container)
            .ok_or_else(|| not_editable("the containers list"))?;
        match spec_node.get("shareProcessNamespace") {
            Some(_) if share == Some(true) => {}
            Some(Node::Scalar { start, end, .. }) => self.edits.push(Edit {
                at: *start,
                len: end - start,
                text: "true".to_string(),
            }),
            Some(_) => return Err(not_editable("the shareProcessNamespace value")),
            None => {
                let (at, indent) = self
                    .line_start(containers_key.start())
                    .ok_or_else(|| not_editable("the containers key"))?;
                self.edits.push(Edit {
                    at,
                    len: 0,
                    text: format!("{indent}shareProcessNamespace: true{}", self.nl),
                });
            }
        }
        if !skips.is_empty() {
            self.add_annotations(root, &skips)
                .ok_or_else(|| not_editable("metadata.annotations"))?;
        }

        // The same changes on the values.
        let spec = path
            .iter()
            .try_fold(&mut *value, |v, k| v.get_mut(*k))
            .and_then(Value::as_mapping_mut)
            .ok_or_else(|| malformed(format!("{dotted} is missing")))?;
        set_before(
            spec,
            "shareProcessNamespace",
            Value::Bool(true),
            "containers",
        );
        let sidecar_value = yaml::key_order(
            serde_norway::to_value(&container)
                .expect("k8s-openapi types serialize to YAML: they have only string map keys"),
        );
        if let Some(Value::Sequence(cs)) = spec.get_mut("containers") {
            if marker == Marker::Missing {
                let target = cs
                    .get_mut(target_index)
                    .and_then(Value::as_mapping_mut)
                    .ok_or_else(|| {
                        malformed("the target container is not a mapping".to_string())
                    })?;
                let entry = Value::Mapping(Mapping::from_iter([
                    (Value::from("name"), Value::from(SCAN_TARGET_ENV)),
                    (Value::from("value"), Value::from(target_name.as_str())),
                ]));
                match target.get_mut("env") {
                    Some(Value::Sequence(env)) => env.push(entry),
                    _ => {
                        target.insert(Value::from("env"), Value::Sequence(vec![entry]));
                    }
                }
            }
            cs.push(sidecar_value);
        }
        if !skips.is_empty() {
            let metadata = value
                .get_mut("metadata")
                .and_then(Value::as_mapping_mut)
                .ok_or_else(|| not_editable("metadata"))?;
            let annotations = metadata
                .entry(Value::from("annotations"))
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            if annotations.is_null() {
                *annotations = Value::Mapping(Mapping::new());
            }
            let annotations = annotations
                .as_mapping_mut()
                .ok_or_else(|| malformed("metadata.annotations is not a mapping".to_string()))?;
            for (k, v) in &skips {
                annotations.insert(Value::from(k.as_str()), Value::from(v.as_str()));
            }
        }
        Ok(())
    }

    /// Inserts `container` as the last item of the block sequence `seq`, with its dash in the
    /// same column as the first item's.
    fn append_container(
        &mut self,
        seq: &Node,
        container: &k8s_openapi::api::core::v1::Container,
    ) -> Option<()> {
        let Node::Collection {
            flow: false,
            end,
            kind: CollectionKind::Seq(items),
            ..
        } = seq
        else {
            return None;
        };
        let dash = self.dash_column(items.first()?.start())?;
        let json = serde_json::to_value(container)
            .expect("k8s-openapi types serialize to JSON: they have only string map keys");
        let text = yaml::item_mapping(json.as_object()?, dash, self.nl);
        self.insert_lines(*end, text)
    }

    /// Adds `SCAN_TARGET_ENV=<name>` to the env of the container mapping `container`: a new
    /// item at the end of a block `env` list (dash in the first item's column) or of a flow one,
    /// or a new `env` list as the container's last key.
    fn add_marker(&mut self, container: Option<&Node>, name: &str) -> Option<()> {
        let Some(Node::Collection {
            flow: false,
            end,
            kind: CollectionKind::Map(entries),
            ..
        }) = container
        else {
            return None;
        };
        let item = serde_json::Map::from_iter([
            ("name".to_string(), serde_json::Value::from(SCAN_TARGET_ENV)),
            ("value".to_string(), serde_json::Value::from(name)),
        ]);
        match container?.get("env") {
            None => {
                let column = self.key_column(entries.first()?.0.start())?;
                let text = format!(
                    "{}env:{}{}",
                    " ".repeat(column),
                    self.nl,
                    yaml::item_mapping(&item, column, self.nl)
                );
                self.insert_lines(*end, text)
            }
            Some(Node::Collection {
                flow: false,
                end,
                kind: CollectionKind::Seq(items),
                ..
            }) => {
                let dash = self.dash_column(items.first()?.start())?;
                let text = yaml::item_mapping(&item, dash, self.nl);
                self.insert_lines(*end, text)
            }
            Some(Node::Collection {
                flow: true,
                end,
                kind: CollectionKind::Seq(items),
                ..
            }) => {
                let entry = format!(
                    "{{name: {}, value: {}}}",
                    yaml::scalar(&serde_json::Value::from(SCAN_TARGET_ENV)),
                    yaml::scalar(&serde_json::Value::from(name))
                );
                // After the last item (and any trailing comma), before the bracket.
                let at = self.input[..*end].trim_end().len();
                let sep = if items.is_empty() {
                    ""
                } else if self.input[..at].ends_with(',') {
                    " "
                } else {
                    ", "
                };
                self.edits.push(Edit {
                    at,
                    len: 0,
                    text: format!("{sep}{entry}"),
                });
                Some(())
            }
            Some(_) => None,
        }
    }

    /// Adds `skips` to the document's `metadata.annotations`.
    fn add_annotations(&mut self, root: &Node, skips: &[(String, String)]) -> Option<()> {
        let lines = |indent: &str| -> String {
            skips
                .iter()
                .map(|(k, v)| {
                    let (k, v) = (
                        yaml::scalar(&serde_json::Value::from(k.as_str())),
                        yaml::scalar(&serde_json::Value::from(v.as_str())),
                    );
                    format!("{indent}{k}: {v}{}", self.nl)
                })
                .collect()
        };
        let metadata = root.get("metadata")?;
        let Node::Collection {
            flow: false,
            end: metadata_end,
            kind: CollectionKind::Map(entries),
            ..
        } = metadata
        else {
            return None;
        };
        let (_, key_indent) = self.line_start(entries.first()?.0.start())?;
        match metadata.get("annotations") {
            None => {
                let text = format!(
                    "{key_indent}annotations:{}{}",
                    self.nl,
                    lines(&format!("{key_indent}  "))
                );
                self.insert_lines(*metadata_end, text)
            }
            Some(Node::Collection {
                flow: false,
                end,
                kind: CollectionKind::Map(entries),
                ..
            }) => {
                let (_, indent) = self.line_start(entries.first()?.0.start())?;
                let text = lines(&indent);
                self.insert_lines(*end, text)
            }
            // `annotations: {}`: replace the empty flow mapping by a block one.
            Some(Node::Collection {
                flow: true,
                start,
                close,
                kind: CollectionKind::Map(entries),
                ..
            }) if entries.is_empty() => {
                let text = format!("{}{}", self.nl, lines(&format!("{key_indent}  ")));
                let text = text.trim_end_matches(self.nl).to_string();
                self.edits.push(Edit {
                    at: *start,
                    len: close - start,
                    text,
                });
                Some(())
            }
            Some(_) => None,
        }
    }

    /// Inserts whole lines `text` at the start of the line where `at` is (the token after a
    /// block collection, which starts its line), or on a new line at the end of the input.
    fn insert_lines(&mut self, at: usize, text: String) -> Option<()> {
        let edit = match self.line_start(at) {
            Some((start, _)) => Edit {
                at: start,
                len: 0,
                text,
            },
            // The collection ends the input, which has no final line break.
            None if self.input[at..].trim().is_empty() => Edit {
                at,
                len: 0,
                text: format!("{}{text}", self.nl),
            },
            None => return None,
        };
        self.edits.push(edit);
        Some(())
    }

    /// The start of the line that `at` is on and the indentation before `at`, when only spaces
    /// precede `at` on its line.
    fn line_start(&self, at: usize) -> Option<(usize, String)> {
        let start = self.input[..at].rfind('\n').map_or(0, |i| i + 1);
        let prefix = &self.input[start..at];
        prefix
            .bytes()
            .all(|b| b == b' ')
            .then(|| (start, prefix.to_string()))
    }

    /// The column of a block mapping key at `at`, when only spaces and sequence dashes precede
    /// it on its line (`- name: app` has its keys in column 2).
    fn key_column(&self, at: usize) -> Option<usize> {
        let start = self.input[..at].rfind('\n').map_or(0, |i| i + 1);
        let prefix = &self.input[start..at];
        prefix
            .bytes()
            .all(|b| b == b' ' || b == b'-')
            .then_some(prefix.len())
    }

    /// The column of the `-` before a block sequence item that starts at `item`.
    fn dash_column(&self, item: usize) -> Option<usize> {
        let start = self.input[..item].rfind('\n').map_or(0, |i| i + 1);
        let prefix = self.input[start..item].trim_end_matches(' ');
        let dash = prefix.strip_suffix('-')?;
        dash.bytes().all(|b| b == b' ').then_some(dash.len())
    }
}

/// The names of a list of containers, when it is one and every item has a name.
fn container_names(list: Option<&Value>) -> Option<Vec<String>> {
    list?
        .as_sequence()?
        .iter()
        .map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// Whether the scanned container already carries the scan-target marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    /// It does, with the container's name: nothing to add.
    Present,
    /// It does not: inject adds it.
    Missing,
}

/// Where the scan-target marker stands in `containers` for the target at `index` named
/// `target`; an error (the reason) when the target sets it otherwise, or another container
/// sets the target's marker (the agent could then pick that container's processes).
fn marker_state(containers: Option<&Value>, index: usize, target: &str) -> Result<Marker, String> {
    let containers = containers
        .and_then(Value::as_sequence)
        .map_or(&[][..], Vec::as_slice);
    let mut state = Marker::Missing;
    for (i, c) in containers.iter().enumerate() {
        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
        let env = match c.get("env") {
            None | Some(Value::Null) if i == index => {
                if c.get("env").is_some() {
                    return Err(format!(
                        "container {name:?} has an empty env key (env: with no list)"
                    ));
                }
                continue;
            }
            None | Some(Value::Null) => continue,
            Some(Value::Sequence(env)) => env,
            Some(_) => return Err(format!("the env of container {name:?} is not a list")),
        };
        for e in env {
            if e.get("name").and_then(Value::as_str) != Some(SCAN_TARGET_ENV) {
                continue;
            }
            let value = e.get("value").and_then(Value::as_str);
            let plain = e.get("valueFrom").is_none();
            if i == index {
                if value == Some(target) && plain && state == Marker::Missing {
                    state = Marker::Present;
                } else {
                    return Err(format!(
                        "container {name:?} already sets {SCAN_TARGET_ENV} to {}",
                        match (value, plain) {
                            (Some(v), true) => format!("{v:?}"),
                            _ => "something else than its name".to_string(),
                        }
                    ));
                }
            } else if value == Some(target) || !plain {
                return Err(format!(
                    "container {name:?} sets {SCAN_TARGET_ENV} to the target {target:?}'s marker, or from a reference"
                ));
            }
        }
    }
    Ok(state)
}

/// Whether a value counts as set for checkov (Python truthiness).
fn is_truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Sequence(s)) => !s.is_empty(),
        Some(Value::Mapping(m)) => !m.is_empty(),
        Some(Value::Tagged(t)) => is_truthy(Some(&t.value)),
    }
}

/// Sets `key` to `value` in place when present, else inserts it just before `before` (where the
/// text edit puts it).
fn set_before(map: &mut Mapping, key: &str, value: Value, before: &str) {
    if let Some(v) = map.get_mut(key) {
        *v = value;
        return;
    }
    let old = std::mem::take(map);
    let mut value = Some(value);
    for (k, v) in old {
        if k.as_str() == Some(before)
            && let Some(value) = value.take()
        {
            map.insert(Value::from(key), value);
        }
        map.insert(k, v);
    }
    if let Some(value) = value {
        map.insert(Value::from(key), value);
    }
}
