//! The verdict as HDF: schema-valid against MITRE's exec-json.json, one control per check with
//! the status Heimdall shows; and a snapshot of a whole verdict.

use std::sync::OnceLock;

use keyhole_hdf::{ControlStatus, ResultStatus};
use keyhole_precheck::{
    CheckId, NetworkFacts, Policy, ProcNetTable, Verdict, check_network, evaluate, evaluate_missing,
};
use serde_json::Value;

use crate::support::pod;

fn exec_schema() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/hdf-schema/exec-json.json"
        );
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
        let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
        jsonschema::validator_for(&schema).expect("exec-json.json compiles")
    })
}

fn now() -> jiff::Timestamp {
    "2026-12-03T08:00:00Z".parse().unwrap()
}

fn assert_valid(v: &Verdict) -> keyhole_hdf::Execution {
    let exec = v.to_hdf(now());
    let text = exec
        .to_json_pretty()
        .expect("keyhole-hdf's own validation passes");
    let value: Value = serde_json::from_str(&text).unwrap();
    let errors: Vec<String> = exec_schema()
        .iter_errors(&value)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "HDF violates exec-json.json:\n{}",
        errors.join("\n")
    );
    exec
}

fn verdicts() -> Vec<Verdict> {
    let builtin = Policy::builtin();
    let ignore = Policy::from_yaml_str("checks:\n  privileged: ignore\n", "t").unwrap();
    let mut with_net = evaluate(&pod("hardened"), "app", &builtin);
    with_net.merge(check_network(
        &NetworkFacts::parse(&[(ProcNetTable::Tcp, "junk")]),
        &builtin,
    ));
    vec![
        evaluate(&pod("hardened"), "app", &builtin),
        evaluate(&pod("privileged"), "agent", &builtin),
        evaluate(&pod("privileged"), "agent", &ignore),
        evaluate(&pod("crashloop"), "app", &builtin),
        evaluate_missing("shop", "gone", "app", &builtin),
        with_net,
    ]
}

#[test]
fn every_verdict_is_schema_valid_hdf() {
    for v in verdicts() {
        let exec = assert_valid(&v);
        assert_eq!(exec.profiles.len(), 1);
        let p = &exec.profiles[0];
        assert_eq!(p.name, "keyhole-precheck");
        assert_eq!(p.sha256, v.policy_sha256);
        assert_eq!(p.controls.len(), 20);
        assert_eq!(
            exec.platform.target_id.as_deref(),
            Some(
                format!(
                    "pod/{}/{}/{}",
                    v.target.namespace, v.target.pod, v.target.container
                )
                .as_str()
            )
        );
    }
}

fn control<'a>(exec: &'a keyhole_hdf::Execution, id: &str) -> &'a keyhole_hdf::Control {
    exec.profiles[0]
        .controls
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("{id}"))
}

#[test]
fn statuses_and_impacts() {
    let v = evaluate(
        &pod("privileged"),
        "agent",
        &Policy::from_yaml_str("checks:\n  host-ipc: ignore\n", "t").unwrap(),
    );
    let exec = assert_valid(&v);
    let c = control(&exec, "precheck-privileged");
    assert_eq!(c.status(), ControlStatus::Failed);
    assert_eq!(c.impact, 0.9);
    assert_eq!(c.tags["severity"], "critical");
    assert_eq!(c.tags["action"], "abort");
    let msg = c.results[0].message.as_deref().unwrap();
    assert!(
        msg.contains("spec.containers[0].securityContext.privileged = true"),
        "{msg}"
    );
    let c = control(&exec, "precheck-host-ipc");
    assert_eq!(
        c.results[0].status,
        Some(ResultStatus::Skipped),
        "ignored checks are skipped"
    );
    assert!(
        c.results[0]
            .skip_message
            .as_deref()
            .unwrap()
            .starts_with("ignored by the policy")
    );
    let c = control(&exec, "precheck-network-peers");
    assert_eq!(
        c.results[0].status,
        Some(ResultStatus::Skipped),
        "not gathered yet"
    );
    let c = control(&exec, "precheck-target-running");
    assert_eq!(c.status(), ControlStatus::Passed);
    assert_eq!(c.impact, 0.7);
    let c = control(&exec, "precheck-run-as-root");
    assert_eq!(
        (c.impact, c.tags["severity"].as_str()),
        (0.5, Some("medium"))
    );
    assert_eq!(
        exec.profiles[0]
            .groups
            .iter()
            .map(|g| g.id.as_str())
            .collect::<Vec<_>>(),
        ["integrity", "privilege", "image", "network"]
    );
    assert_eq!(
        CheckId::ALL.len(),
        exec.profiles[0]
            .groups
            .iter()
            .map(|g| g.controls.len())
            .sum::<usize>()
    );
}

#[test]
fn verdict_snapshot() {
    let v = evaluate(&pod("privileged"), "agent", &Policy::builtin());
    insta::assert_yaml_snapshot!("privileged_verdict", v);
}
