//! Property: injection changes nothing of the user's manifest but the sidecar, the process
//! namespace sharing, the sidecar's checkov exceptions and the scan-target marker on the
//! scanned container, whatever the layout of the YAML.

use keyhole_core::ContainerName;
use keyhole_scanners::{InjectOptions, ScannerError, inject_sidecar, sidecar_container};
use proptest::prelude::*;
use serde_norway::Value;

use crate::opts;

/// A YAML value as the generator builds it (maps keep their order).
#[derive(Debug, Clone)]
enum Y {
    Str(String),
    Int(i64),
    Bool(bool),
    Map(Vec<(String, Y)>),
    Seq(Vec<Y>),
}

fn map(entries: impl IntoIterator<Item = (&'static str, Y)>) -> Y {
    Y::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// How the user wrote the file.
#[derive(Debug, Clone)]
struct Style {
    indent: usize,
    indentless_seqs: bool,
    single_quotes: bool,
    comments: bool,
    crlf: bool,
    final_newline: bool,
}

fn scalar(y: &Y, style: &Style) -> String {
    match y {
        Y::Str(s) if style.single_quotes => format!("'{}'", s.replace('\'', "''")),
        Y::Str(s) => serde_json::to_string(s).unwrap(),
        Y::Int(i) => i.to_string(),
        Y::Bool(b) => b.to_string(),
        Y::Map(_) => "{}".into(),
        Y::Seq(_) => "[]".into(),
    }
}

fn key(k: &str) -> String {
    if k.chars().all(|c| c.is_ascii_alphanumeric()) && !k.is_empty() {
        k.to_string()
    } else {
        serde_json::to_string(k).unwrap()
    }
}

fn emit_map(entries: &[(String, Y)], indent: usize, style: &Style, out: &mut String) {
    let pad = " ".repeat(indent);
    for (i, (k, v)) in entries.iter().enumerate() {
        if style.comments && i % 3 == 1 {
            out.push_str(&format!("{pad}# note {i}\n"));
        }
        let k = key(k);
        match v {
            Y::Map(m) if !m.is_empty() => {
                out.push_str(&format!("{pad}{k}:\n"));
                emit_map(m, indent + style.indent, style, out);
            }
            Y::Seq(s) if !s.is_empty() => {
                out.push_str(&format!("{pad}{k}:\n"));
                let dash = if style.indentless_seqs {
                    indent
                } else {
                    indent + style.indent
                };
                emit_seq(s, dash, style, out);
            }
            other => {
                let comment = if style.comments { "  # c" } else { "" };
                out.push_str(&format!("{pad}{k}: {}{comment}\n", scalar(other, style)));
            }
        }
    }
}

fn emit_seq(items: &[Y], dash: usize, style: &Style, out: &mut String) {
    let pad = " ".repeat(dash);
    for item in items {
        match item {
            Y::Map(m) if !m.is_empty() => {
                // The map's lines, its first key moved onto the item's dash (the first entry
                // never has a comment line before it).
                let mut text = String::new();
                emit_map(m, dash + 2, style, &mut text);
                text.replace_range(dash..dash + 2, "- ");
                out.push_str(&text);
            }
            other => out.push_str(&format!("{pad}- {}\n", scalar(other, style))),
        }
    }
}

fn render(doc: &Y, style: &Style) -> String {
    let Y::Map(entries) = doc else {
        unreachable!("documents are maps")
    };
    let mut out = String::new();
    emit_map(entries, 0, style, &mut out);
    if !style.final_newline {
        out.pop();
    }
    if style.crlf {
        out = out.replace('\n', "\r\n");
    }
    out
}

const KINDS: [(&str, &str); 7] = [
    ("Pod", "v1"),
    ("Deployment", "apps/v1"),
    ("StatefulSet", "apps/v1"),
    ("DaemonSet", "apps/v1"),
    ("ReplicaSet", "apps/v1"),
    ("Job", "batch/v1"),
    ("CronJob", "batch/v1"),
];

fn pod_path(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &["spec"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
        _ => &["spec", "template", "spec"],
    }
}

/// Strings that YAML readers disagree about, and ordinary ones.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "yes",
            "no",
            "on",
            "off",
            "y",
            "n",
            "true",
            "null",
            "~",
            "",
            "0644",
            "1_000",
            "12:30",
            "1e3",
            ".inf",
            "2026-11-26",
            "a: b",
            "# not a comment",
            "-",
            "*x",
            "'",
            "\"",
        ])
        .prop_map(str::to_string),
        "[a-zA-Z0-9 :#'\"-]{0,12}",
    ]
}

/// Unknown fields with distinct keys.
fn extras() -> impl Strategy<Value = Vec<(String, Y)>> {
    prop::collection::btree_map(
        "x[a-z]{1,6}",
        prop_oneof![
            text().prop_map(Y::Str),
            any::<i32>().prop_map(|i| Y::Int(i.into())),
            any::<bool>().prop_map(Y::Bool),
            Just(Y::Map(vec![])),
            Just(Y::Seq(vec![])),
            prop::collection::vec(text().prop_map(Y::Str), 1..3).prop_map(Y::Seq),
        ],
        0..3,
    )
    .prop_map(|m| m.into_iter().collect())
}

fn probe() -> Y {
    map([(
        "exec",
        map([("command", Y::Seq(vec![Y::Str("/bin/true".into())]))]),
    )])
}

#[derive(Debug, Clone)]
struct Case {
    kind: usize,
    doc: Y,
    names: Vec<String>,
    style: Style,
    opts: InjectOptions,
    trailer: bool,
}

fn container(name: String) -> impl Strategy<Value = (Y, Option<u32>)> {
    (
        prop::option::of(10000u32..70000),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(("[A-Z]{1,5}", text()), 0..3),
        any::<bool>(),
        extras(),
    )
        .prop_map(move |(uid, live, ready, env, empty_env, extra)| {
            let mut entries = vec![
                ("name".to_string(), Y::Str(name.clone())),
                (
                    "image".to_string(),
                    Y::Str("registry.example.com/app:1".into()),
                ),
            ];
            if let Some(uid) = uid {
                entries.push((
                    "securityContext".into(),
                    map([
                        ("runAsUser", Y::Int(uid.into())),
                        ("runAsGroup", Y::Int(uid.into())),
                    ]),
                ));
            }
            if live {
                entries.push(("livenessProbe".into(), probe()));
            }
            if ready {
                entries.push(("readinessProbe".into(), probe()));
            }
            if !env.is_empty() {
                let env = env
                    .into_iter()
                    .map(|(n, v)| map([("name", Y::Str(n)), ("value", Y::Str(v))]))
                    .collect();
                entries.push(("env".into(), Y::Seq(env)));
            } else if empty_env {
                // `env: []`, a flow list the marker goes into.
                entries.push(("env".into(), Y::Seq(Vec::new())));
            }
            entries.extend(extra);
            (Y::Map(entries), uid)
        })
}

fn style() -> impl Strategy<Value = Style> {
    (
        prop::sample::select(vec![2usize, 4]),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(indent, indentless_seqs, single_quotes, comments, crlf, final_newline)| Style {
                indent,
                indentless_seqs,
                single_quotes,
                comments,
                crlf,
                final_newline,
            },
        )
}

/// Everything of a case but the containers, which depend on the names.
#[derive(Debug, Clone)]
struct Frame {
    names: Vec<String>,
    style: Style,
    kind: usize,
    pod_uid: Option<u32>,
    automount: Option<bool>,
    pod_extra: Vec<(String, Y)>,
    annotations: Vec<(String, Y)>,
    pick: prop::sample::Index,
    given_uid: Option<u32>,
    choose: bool,
    trailer: bool,
}

fn case() -> impl Strategy<Value = Case> {
    let names = prop::sample::subsequence(vec!["app", "on", "no", "web-1", "log", "y"], 1..=3)
        .prop_map(|v| v.into_iter().map(str::to_string).collect::<Vec<_>>());
    (
        names,
        style(),
        0..KINDS.len(),
        prop::option::of(10000u32..70000),
        prop::option::of(any::<bool>()),
        extras(),
        extras(),
        any::<prop::sample::Index>(),
        prop::option::of(10000u32..70000),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(
                names,
                style,
                kind,
                pod_uid,
                automount,
                pod_extra,
                annotations,
                pick,
                given_uid,
                choose,
                trailer,
            )| Frame {
                names,
                style,
                kind,
                pod_uid,
                automount,
                pod_extra,
                annotations,
                pick,
                given_uid,
                choose,
                trailer,
            },
        )
        .prop_flat_map(|f| {
            let containers: Vec<_> = f.names.iter().cloned().map(container).collect();
            (containers, Just(f))
        })
        .prop_map(|(containers, f)| {
            let mut spec = f.pod_extra.clone();
            if let Some(a) = f.automount {
                spec.push(("automountServiceAccountToken".into(), Y::Bool(a)));
            }
            if let Some(uid) = f.pod_uid {
                spec.push((
                    "securityContext".into(),
                    map([("runAsUser", Y::Int(uid.into()))]),
                ));
            }
            spec.push((
                "containers".into(),
                Y::Seq(containers.iter().map(|(c, _)| c.clone()).collect()),
            ));
            spec.push((
                "volumes".into(),
                Y::Seq(vec![map([
                    ("name", Y::Str("config".into())),
                    (
                        "configMap",
                        map([("name", Y::Str("c".into())), ("defaultMode", Y::Int(0o440))]),
                    ),
                ])]),
            ));
            let (kind, api) = KINDS[f.kind];
            let mut pod = Y::Map(spec);
            for k in pod_path(kind)[1..].iter().rev() {
                pod = Y::Map(vec![(k.to_string(), pod)]);
            }
            let mut metadata = vec![("name".to_string(), Y::Str("w".into()))];
            if !f.annotations.is_empty() {
                metadata.push(("annotations".into(), Y::Map(f.annotations.clone())));
            }
            let doc = Y::Map(vec![
                ("apiVersion".into(), Y::Str(api.into())),
                ("kind".into(), Y::Str(kind.into())),
                ("metadata".into(), Y::Map(metadata)),
                ("spec".into(), pod),
            ]);
            let target = (f.names.len() > 1 || f.choose).then(|| f.pick.index(f.names.len()));
            let mut o = opts();
            o.container = target.map(|i| ContainerName::new(f.names[i].clone()).unwrap());
            o.target_uid = f.given_uid.filter(|_| f.choose);
            Case {
                kind: f.kind,
                doc,
                names: f.names,
                style: f.style,
                opts: o,
                trailer: f.trailer,
            }
        })
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

fn pod_spec_mut<'a>(v: &'a mut Value, kind: &str) -> &'a mut serde_norway::Mapping {
    pod_path(kind)
        .iter()
        .fold(v, |v, k| v.get_mut(*k).unwrap())
        .as_mapping_mut()
        .unwrap()
}

/// The output without what injection adds (`had_env`: whether the target had an `env` key).
fn strip(mut v: Value, kind: &str, target: usize, had_env: bool) -> Value {
    let spec = pod_spec_mut(&mut v, kind);
    spec.shift_remove("shareProcessNamespace");
    if let Some(Value::Sequence(cs)) = spec.get_mut("containers") {
        cs.retain(|c| c["name"] != "keyhole-scanner");
        let c = cs[target].as_mapping_mut().unwrap();
        if let Some(Value::Sequence(env)) = c.get_mut("env") {
            env.retain(|e| e["name"] != "KEYHOLE_SCAN_TARGET");
        }
        if !had_env {
            c.shift_remove("env");
        }
    }
    let metadata = v["metadata"].as_mapping_mut().unwrap();
    if let Some(Value::Mapping(a)) = metadata.get_mut("annotations") {
        a.retain(|_, val| {
            !val.as_str()
                .is_some_and(|s| s.contains("=the keyhole-scanner sidecar"))
        });
        if a.is_empty() {
            metadata.shift_remove("annotations");
        }
    }
    v
}

fn id(v: &Value, key: &str) -> Option<u32> {
    v.get("securityContext")?
        .get(key)?
        .as_u64()
        .map(|n| n as u32)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn injection_keeps_the_users_manifest(case in case()) {
        let (kind, _) = KINDS[case.kind];
        let mut input = render(&case.doc, &case.style);
        if case.trailer {
            let nl = if case.style.crlf { "\r\n" } else { "\n" };
            if case.style.final_newline {
                input.push_str(&format!("---{nl}apiVersion: v1{nl}kind: ConfigMap{nl}metadata:{nl}  name: 'on'{nl}"));
            } else {
                input.push_str(&format!("{nl}---{nl}kind: ConfigMap"));
            }
        }
        let before = docs(&input);
        let spec = pod_path(kind).iter().fold(&before[0], |v, k| &v[*k]);
        let target = match &case.opts.container {
            Some(c) => case.names.iter().position(|n| n == c.as_str()).unwrap(),
            None => 0,
        };
        let target_container = &spec["containers"][target];
        let uid = case.opts.target_uid
            .or_else(|| id(target_container, "runAsUser"))
            .or_else(|| id(spec, "runAsUser"));
        let gid = id(target_container, "runAsGroup").or_else(|| id(spec, "runAsGroup"));

        let result = inject_sidecar(&input, &case.opts);
        let Some(uid) = uid else {
            prop_assert!(matches!(result, Err(ScannerError::NoUid { .. })), "{result:?}");
            return Ok(());
        };
        let out = result.map_err(|e| TestCaseError::fail(format!("{e}\n{input}")))?;
        let after = docs(&out.yaml);
        prop_assert_eq!(after.len(), before.len());
        prop_assert_eq!(&after[1..], &before[1..]);

        // Only lines were added (and the marker into a flow `env: []`): comments, quoting and
        // layout are the user's.
        let name = &case.names[target];
        let unmarked = [name.clone(), serde_json::to_string(name).unwrap()]
            .iter()
            .fold(out.yaml.clone(), |y, v| {
                y.replace(&format!("{{name: KEYHOLE_SCAN_TARGET, value: {v}}}"), "")
            });
        let mut lines = unmarked.lines();
        for line in input.lines() {
            prop_assert!(lines.any(|l| l == line), "lost {:?} in\n{}", line, out.yaml);
        }

        let spec_after = pod_path(kind).iter().fold(&after[0], |v, k| &v[*k]);
        prop_assert_eq!(&spec_after["shareProcessNamespace"], &Value::Bool(true));
        let name = ContainerName::new(case.names[target].clone()).unwrap();
        let want = sidecar_container(&name, uid, gid, &case.opts.image, case.opts.time_limit_secs);
        let sidecars: Vec<&Value> = spec_after["containers"].as_sequence().unwrap().iter()
            .filter(|c| c["name"] == "keyhole-scanner").collect();
        let want = serde_norway::to_value(&want).unwrap();
        prop_assert_eq!(sidecars, vec![&want]);

        // checkov exceptions exactly when checkov asks for a probe every user container has.
        let containers = spec["containers"].as_sequence().unwrap();
        let asks = !matches!(kind, "Job" | "CronJob");
        let skips: Vec<String> = after[0]["metadata"].get("annotations")
            .and_then(Value::as_mapping)
            .map(|a| a.values().filter_map(Value::as_str)
                .filter(|s| s.contains("=the keyhole-scanner sidecar"))
                .map(|s| s[..s.find('=').unwrap()].to_string()).collect())
            .unwrap_or_default();
        let mut want_skips = Vec::new();
        for (probe, check) in [("livenessProbe", "CKV_K8S_8"), ("readinessProbe", "CKV_K8S_9")] {
            if asks && containers.iter().all(|c| c.get(probe).is_some()) {
                want_skips.push(check.to_string());
            }
        }
        prop_assert_eq!(skips, want_skips);

        // The scanned container, and it alone, carries the marker with its name, last in its env.
        for (i, c) in spec_after["containers"].as_sequence().unwrap().iter().enumerate() {
            let markers: Vec<&Value> = c.get("env").and_then(Value::as_sequence)
                .map(|env| env.iter().filter(|e| e["name"] == "KEYHOLE_SCAN_TARGET").collect())
                .unwrap_or_default();
            if i == target {
                let last = c["env"].as_sequence().unwrap().last().unwrap();
                let want = serde_norway::from_str::<Value>(&format!(
                    "{{name: KEYHOLE_SCAN_TARGET, value: {:?}}}", case.names[target]
                )).unwrap();
                prop_assert_eq!(markers, vec![&want]);
                prop_assert_eq!(last, &want);
            } else {
                prop_assert!(markers.is_empty(), "marker on container {}", i);
            }
        }

        let had_env = target_container.get("env").is_some();
        let stripped = strip(after[0].clone(), kind, target, had_env);
        prop_assert_eq!(
            serde_norway::to_string(&stripped).unwrap(),
            serde_norway::to_string(&before[0]).unwrap()
        );
    }
}
