//! Sidecar injection on the fixtures, its errors and its warnings.

use keyhole_core::ContainerName;
use keyhole_scanners::{
    ImageRef, InjectOptions, Injected, ScannerError, inject_sidecar, sidecar_container,
};
use serde_norway::Value;

use crate::{check, fixture, opts};

fn inject(input: &str) -> Injected {
    inject_sidecar(input, &opts()).unwrap_or_else(|e| panic!("{e}"))
}

/// Every line of `input` is in `output`, in order: injection only adds lines (or replaces a
/// `shareProcessNamespace` value, which these inputs do not have).
fn assert_only_adds_lines(input: &str, output: &str) {
    let mut out = output.lines();
    for line in input.lines() {
        assert!(
            out.any(|o| o == line),
            "line {line:?} lost or moved in:\n{output}"
        );
    }
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

fn sidecar_value(target: &str, uid: u32, gid: Option<u32>) -> Value {
    let target = ContainerName::new(target).unwrap();
    serde_norway::to_value(sidecar_container(&target, uid, gid, &opts().image, 540)).unwrap()
}

/// A Pod named web-0 with `spec` (YAML lines indented by two spaces) after the given metadata.
fn pod(metadata_extra: &str, spec: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-0\n{metadata_extra}spec:\n{spec}")
}

const ONE: &str = "  containers:\n  - name: web\n    image: web:1\n    securityContext:\n      runAsUser: 10001\n      runAsGroup: 10001\n";
const TWO: &str = "  containers:\n  - name: web\n    image: web:1\n  - name: proxy\n    image: proxy:1\n  securityContext:\n    runAsUser: 10001\n";

#[test]
fn deployment_fixture() {
    let input = fixture("deployment.yaml");
    let out = inject(&input);
    check("inject_deployment", &out.yaml);
    assert_eq!(out.warnings, Vec::<String>::new());
    assert_only_adds_lines(&input, &out.yaml);

    let (before, after) = (docs(&input), docs(&out.yaml));
    assert_eq!(after.len(), 3);
    // The Service and the NetworkPolicy pass through untouched.
    assert_eq!(before[1..], after[1..]);
    let dep = &after[0];
    assert!(dep["spec"].get("shareProcessNamespace").is_none());
    let pod = &dep["spec"]["template"]["spec"];
    assert_eq!(pod["shareProcessNamespace"], Value::Bool(true));
    let containers = pod["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[1], sidecar_value("web", 10001, Some(10001)));
    // The probes checkov asks for are excused for the sidecar only, with reasons.
    let annotations = dep["metadata"]["annotations"].as_mapping().unwrap();
    let skips: Vec<&str> = annotations.values().filter_map(Value::as_str).collect();
    assert!(skips[0].starts_with("CKV_K8S_8="), "{skips:?}");
    assert!(skips[1].starts_with("CKV_K8S_9="), "{skips:?}");
    // What YAML 1.1 readers (Kubernetes) would read differently if re-serialized stays as written.
    assert!(
        out.yaml
            .contains("defaultMode: 0440   # octal, as Kubernetes reads it\n")
    );
    assert!(out.yaml.contains("value: \"yes\"   # a string"));
}

#[test]
fn job_fixture() {
    let input = fixture("job.yaml");
    let out = inject(&input);
    check("inject_job", &out.yaml);
    assert_eq!(out.warnings, Vec::<String>::new());
    assert_only_adds_lines(&input, &out.yaml);
    let job = &docs(&out.yaml)[0];
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["shareProcessNamespace"], Value::Bool(true));
    assert_eq!(
        pod["containers"][1],
        sidecar_value("report", 10001, Some(10001))
    );
    // checkov does not ask Jobs for probes, so there is nothing to excuse.
    assert!(job["metadata"].get("annotations").is_none());
}

#[test]
fn pod_fixture() {
    let input = fixture("pod.yaml");
    let out = inject(&input);
    check("inject_pod", &out.yaml);
    assert_only_adds_lines(&input, &out.yaml);
    let pod = &docs(&out.yaml)[0];
    assert_eq!(pod["spec"]["shareProcessNamespace"], Value::Bool(true));
    // The uid comes from the pod's securityContext when the container has none.
    assert_eq!(
        pod["spec"]["containers"][1],
        sidecar_value("web", 10001, Some(10001))
    );
}

#[test]
fn every_pod_bearing_kind_is_injected() {
    let template = "  template:\n    spec:\n".to_string()
        + &ONE
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>();
    for (kind, api, spec) in [
        ("Deployment", "apps/v1", template.clone()),
        ("StatefulSet", "apps/v1", template.clone()),
        ("DaemonSet", "apps/v1", template.clone()),
        ("ReplicaSet", "apps/v1", template.clone()),
        ("Job", "batch/v1", template.clone()),
        (
            "CronJob",
            "batch/v1",
            "  schedule: \"@daily\"\n  jobTemplate:\n    spec:\n".to_string()
                + &template
                    .lines()
                    .map(|l| format!("    {l}\n"))
                    .collect::<String>(),
        ),
    ] {
        let input = format!("apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: w\nspec:\n{spec}");
        let out = inject(&input);
        assert_only_adds_lines(&input, &out.yaml);
        let v = &docs(&out.yaml)[0];
        let pod = if kind == "CronJob" {
            &v["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        } else {
            &v["spec"]["template"]["spec"]
        };
        assert_eq!(pod["shareProcessNamespace"], Value::Bool(true), "{kind}");
        assert_eq!(pod["containers"][1]["name"], "keyhole-scanner", "{kind}");
    }
}

fn err(input: &str, opts: &InjectOptions) -> ScannerError {
    let e = inject_sidecar(input, opts).unwrap_err();
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "not one line: {msg}");
    e
}

#[test]
fn errors_are_one_line_and_name_the_document() {
    let doc = "document 1 (Pod web-0)";
    let e = err("kind: Pod\nspec: [a, {b: c]\n", &opts());
    assert!(matches!(e, ScannerError::NotYaml { .. }), "{e}");
    // Nesting is bounded before anything recurses over it.
    let deep = format!("a: {}{}\n", "[".repeat(5000), "]".repeat(5000));
    let e = err(&deep, &opts());
    assert!(matches!(e, ScannerError::NotYaml { .. }), "{e}");
    for empty in ["", "# just a comment\n", "---\n---\n"] {
        assert_eq!(err(empty, &opts()), ScannerError::Empty);
    }
    let e = err(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n",
        &opts(),
    );
    assert_eq!(
        e,
        ScannerError::NoPodSpec {
            found: "ConfigMap/settings".into()
        }
    );
    assert!(e.to_string().contains("found ConfigMap/settings"), "{e}");
    assert_eq!(
        err("just text\n", &opts()),
        ScannerError::NotAnObject { index: 1 }
    );
    assert_eq!(
        err("kind: Service\n---\n- a\n", &opts()),
        ScannerError::NotAnObject { index: 2 }
    );

    let e = err(&pod("", TWO), &opts());
    assert!(matches!(e, ScannerError::AmbiguousContainer { .. }), "{e}");
    assert!(
        e.to_string().contains(&format!(
            "{doc}: the pod has several containers (web, proxy)"
        )),
        "{e}"
    );

    let mut o = opts();
    o.container = Some(ContainerName::new("db").unwrap());
    let e = err(&pod("", TWO), &o);
    assert!(matches!(e, ScannerError::ContainerNotFound { .. }), "{e}");
    assert!(
        e.to_string().starts_with(&format!(
            "{doc}: the pod has no container \"db\" (it has web, proxy)"
        )),
        "{e}"
    );

    let e = err(
        &pod("", "  containers:\n  - name: web\n    image: web:1\n"),
        &opts(),
    );
    assert!(matches!(e, ScannerError::NoUid { .. }), "{e}");
    assert!(e.to_string().contains("--target-uid"), "{e}");
    assert!(e.to_string().starts_with(doc), "{e}");

    let injected = inject(&pod("", ONE)).yaml;
    let e = err(&injected, &opts());
    assert_eq!(e, ScannerError::AlreadyInjected { doc: doc.into() });

    let e = err(&pod("", &format!("  hostPID: true\n{ONE}")), &opts());
    assert_eq!(e, ScannerError::HostPid { doc: doc.into() });

    let e = err(&pod("", "  restartPolicy: Never\n"), &opts());
    assert!(matches!(e, ScannerError::Malformed { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("{doc}: spec.containers")),
        "{e}"
    );

    let e = err(
        &pod(
            "",
            "  securityContext:\n    runAsUser: -1\n  containers:\n  - name: web\n    image: web:1\n",
        ),
        &opts(),
    );
    assert!(matches!(e, ScannerError::Malformed { .. }), "{e}");

    // JSON (flow style) cannot be edited without rewriting it.
    let json = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0"}, "spec": {"containers": [{"name": "web", "image": "web:1"}], "securityContext": {"runAsUser": 10001}}}"#;
    let e = err(json, &opts());
    assert!(matches!(e, ScannerError::NotEditableInPlace { .. }), "{e}");
    assert!(e.to_string().starts_with(doc), "{e}");

    let mut o = opts();
    o.time_limit_secs = 0;
    assert_eq!(err(&pod("", ONE), &o), ScannerError::InvalidTimeLimit);

    let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: a\n";
    let e = err(list, &opts());
    assert!(matches!(e, ScannerError::NotEditableInPlace { .. }), "{e}");
}

#[test]
fn chosen_container_and_given_ids_win() {
    let mut o = opts();
    o.container = Some(ContainerName::new("proxy").unwrap());
    o.target_uid = Some(20000);
    o.target_gid = Some(30000);
    let out = inject_sidecar(&pod("", TWO), &o).unwrap();
    let v = &docs(&out.yaml)[0];
    assert_eq!(
        v["spec"]["containers"][2],
        sidecar_value("proxy", 20000, Some(30000))
    );
    // The other container now sees the target's processes: the user is told.
    assert!(
        out.warnings
            .iter()
            .any(|w| w.contains("other containers (web)")),
        "{:?}",
        out.warnings
    );
}

#[test]
fn warnings_say_what_to_change() {
    let scanner = ImageRef::parse("ghcr.io/keyhole-scanner/keyhole-agent:0.1.0").unwrap();
    let o = InjectOptions {
        image: scanner,
        ..opts()
    };
    let input = pod(
        "",
        "  shareProcessNamespace: false\n  securityContext:\n    runAsUser: 0\n  containers:\n  - name: web\n    image: web:1\n",
    );
    let out = inject_sidecar(&input, &o).unwrap();
    let w = out.warnings.join("\n");
    for expected in [
        "document 1 (Pod web-0): the pod does not set automountServiceAccountToken: false",
        "runs as root",
        "gid of container \"web\" is not set",
        "shareProcessNamespace was not true and is now true",
        "pinned by tag only",
    ] {
        assert!(w.contains(expected), "{expected:?} missing from:\n{w}");
    }
    assert_eq!(out.warnings.len(), 5, "{w}");
    assert!(out.yaml.contains("  shareProcessNamespace: true\n"));
    assert!(!out.yaml.contains("shareProcessNamespace: false"));
}

#[test]
fn other_api_versions_pass_through_with_a_warning() {
    let input = format!(
        "apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata:\n  name: old\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n        image: a:1\n---\n{}",
        pod("", ONE)
    );
    let out = inject(&input);
    assert!(out.yaml.starts_with(&input[..input.find("---").unwrap()]));
    assert!(
        out.warnings[0].contains(
            "document 1 (Deployment old): apiVersion \"extensions/v1beta1\" is not apps/v1"
        )
    );
}

#[test]
fn checkov_exceptions_only_for_the_sidecar() {
    let probes = "    livenessProbe:\n      exec:\n        command: [/bin/true]\n    readinessProbe:\n      exec:\n        command: [/bin/true]\n";
    let spec = format!("{ONE}{probes}");
    let skip = |v: &Value, n: u32| {
        v["metadata"]["annotations"][format!("checkov.io/skip{n}").as_str()].clone()
    };

    // `annotations: {}` becomes a block mapping.
    let out = inject(&pod("  annotations: {}\n", &spec));
    let v = &docs(&out.yaml)[0];
    assert!(skip(v, 1).as_str().unwrap().starts_with("CKV_K8S_8="));
    assert!(skip(v, 2).as_str().unwrap().starts_with("CKV_K8S_9="));

    // Existing skips keep their numbers, and a check the user already skips is not repeated.
    let meta =
        "  annotations:\n    checkov.io/skip1: CKV_K8S_8=the user's own reason\n    team: shop\n";
    let out = inject(&pod(meta, &spec));
    let v = &docs(&out.yaml)[0];
    assert_eq!(skip(v, 1), Value::from("CKV_K8S_8=the user's own reason"));
    assert!(skip(v, 2).as_str().unwrap().starts_with("CKV_K8S_9="));
    assert_eq!(v["metadata"]["annotations"].as_mapping().unwrap().len(), 3);

    // A user container without a readiness probe keeps that finding: nothing is excused.
    let only_liveness =
        format!("{ONE}    livenessProbe:\n      exec:\n        command: [/bin/true]\n");
    let out = inject(&pod("", &only_liveness));
    let v = &docs(&out.yaml)[0];
    let annotations = v["metadata"]["annotations"].as_mapping().unwrap();
    assert_eq!(annotations.len(), 1);
    assert!(skip(v, 1).as_str().unwrap().starts_with("CKV_K8S_8="));
}

#[test]
fn layouts_are_kept() {
    // CRLF line ends, no final line break, comments, four-space indentation.
    let input = "apiVersion: v1\r\nkind: Pod  # the target\r\nmetadata:\r\n    name: web-0\r\nspec:\r\n    containers:\r\n        -   name: web\r\n            image: web:1  # pinned elsewhere\r\n    # trailing comment\r\n    securityContext:\r\n        runAsUser: 10001\r\n        runAsGroup: 10001";
    let out = inject(input);
    assert_only_adds_lines(input, &out.yaml);
    assert!(
        !out.yaml.replace("\r\n", "").contains('\n'),
        "mixed line ends"
    );
    let v = &docs(&out.yaml)[0];
    assert_eq!(
        v["spec"]["containers"][1],
        sidecar_value("web", 10001, Some(10001))
    );

    // Containers last in the document, without a final line break.
    let input = pod(
        "",
        "  securityContext:\n    runAsUser: 10001\n  containers:\n  - name: web\n    image: web:1",
    );
    let out = inject(&input);
    assert_eq!(
        docs(&out.yaml)[0]["spec"]["containers"][1]["name"],
        "keyhole-scanner"
    );

    // A container name YAML 1.1 reads as a boolean is quoted in the sidecar's command.
    let input = pod(
        "",
        "  containers:\n  - name: \"on\"\n    image: web:1\n    securityContext:\n      runAsUser: 10001\n",
    );
    let out = inject(&input);
    assert!(out.yaml.contains("- \"on\"\n"), "{}", out.yaml);
}

/// The env entries named KEYHOLE_SCAN_TARGET of container `name` in a Pod output, as
/// (value, has valueFrom).
fn markers(yaml: &str, name: &str) -> Vec<(String, bool)> {
    let doc = &docs(yaml)[0];
    let c = doc["spec"]["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap();
    c.get("env")
        .and_then(Value::as_sequence)
        .map(|env| {
            env.iter()
                .filter(|e| e["name"] == "KEYHOLE_SCAN_TARGET")
                .map(|e| {
                    (
                        e["value"].as_str().unwrap_or("").to_string(),
                        e.get("valueFrom").is_some(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_scanned_container_gets_the_target_marker() {
    let two = |web_env: &str| {
        pod(
            "",
            &format!(
                "  securityContext: {{runAsUser: 1000, runAsGroup: 1000}}\n  containers:\n  - name: web\n    image: web:1\n{web_env}  - name: log\n    image: log:1\n"
            ),
        )
    };
    let web = ContainerName::new("web").unwrap();
    let on_web = InjectOptions {
        container: Some(web.clone()),
        ..opts()
    };
    // No env, a block env and a flow env with an item: the marker is added, nothing else moves.
    for (env, want_line) in [
        (
            "",
            "    env:\n    - name: KEYHOLE_SCAN_TARGET\n      value: web\n",
        ),
        (
            "    env:\n      - name: A\n        value: b\n",
            "      - name: A\n        value: b\n      - name: KEYHOLE_SCAN_TARGET\n        value: web\n",
        ),
        (
            "    env: [{name: A, value: b}]\n",
            "    env: [{name: A, value: b}, {name: KEYHOLE_SCAN_TARGET, value: web}]\n",
        ),
    ] {
        let input = two(env);
        let out = inject_sidecar(&input, &on_web).unwrap_or_else(|e| panic!("{e}"));
        assert!(out.yaml.contains(want_line), "{}", out.yaml);
        assert_eq!(markers(&out.yaml, "web"), [("web".to_string(), false)]);
        assert!(markers(&out.yaml, "log").is_empty(), "{}", out.yaml);
    }
    // Already marked with its own name: left as it is.
    let input = two("    env:\n    - name: KEYHOLE_SCAN_TARGET\n      value: web\n");
    let out = inject_sidecar(&input, &on_web).unwrap();
    assert_eq!(markers(&out.yaml, "web"), [("web".to_string(), false)]);
    // Marked otherwise, or another container carries the target's marker: refused.
    for input in [
        two("    env:\n    - name: KEYHOLE_SCAN_TARGET\n      value: other\n"),
        two(
            "    env:\n    - name: KEYHOLE_SCAN_TARGET\n      valueFrom: {fieldRef: {fieldPath: metadata.name}}\n",
        ),
        pod(
            "",
            "  securityContext: {runAsUser: 1000}\n  containers:\n  - name: web\n    image: web:1\n  - name: log\n    image: log:1\n    env:\n    - name: KEYHOLE_SCAN_TARGET\n      value: web\n",
        ),
    ] {
        let e = inject_sidecar(&input, &on_web).unwrap_err();
        assert!(matches!(e, ScannerError::MarkerConflict { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("KEYHOLE_SCAN_TARGET") && msg.contains("document 1"),
            "{msg}"
        );
    }
}
