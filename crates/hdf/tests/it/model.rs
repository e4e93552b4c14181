//! Reader and writer: round trips keep every field, including unknown ones.

use keyhole_hdf::{Execution, HdfError, RefValue, ResultStatus, WaiverFlag};
use serde_json::{Value, json};

use crate::support::{assert_schema_valid, control, read_fixture, single};

/// Drops `null` members of objects, recursively: the writer leaves absent optional fields out
/// instead of writing `null`, which means the same to the schema and to Heimdall.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

#[test]
fn sample_round_trip_keeps_every_value() {
    let text = read_fixture("samples/sample-exec.json");
    let original: Value = serde_json::from_str(&text).unwrap();
    let exec = Execution::from_json_str(&text).unwrap();
    let written: Value = serde_json::from_str(&exec.to_json_pretty().unwrap()).unwrap();
    assert_eq!(written, without_nulls(original));
    assert_eq!(
        Execution::from_json_slice(exec.to_json().unwrap().as_bytes()).unwrap(),
        exec
    );
}

/// InSpec/CINC output carries fields the schema does not name, at every level; they survive.
#[test]
fn unknown_fields_survive_at_every_level() {
    let inspec = json!({
        "platform": {"name": "debian", "release": "12.5", "target_id": "t", "arch": "x86_64"},
        "profiles": [{
            "name": "p", "version": "1.0", "sha256": "ab", "title": "T", "maintainer": "M",
            "summary": "S", "license": "Apache-2.0", "copyright": "C", "copyright_email": "c@x",
            "supports": [{"platform-family": "linux", "platform-name": "debian", "release": "12", "x": 1}],
            "attributes": [{"name": "a", "options": {"value": 3}}],
            "inputs": [{"name": "a", "options": {"value": 3}}],
            "groups": [{"id": "controls/a.rb", "title": "A", "controls": ["C1"], "y": true}],
            "status": "loaded", "status_message": "", "skip_message": "none",
            "depends": [{"name": "base", "path": "../base", "status": "loaded", "z": [1]}],
            "parent_profile": "wrapper",
            "controls": [{
                "id": "C1", "title": "t", "desc": "d",
                "descriptions": [{"label": "check", "data": "c", "extra_label": 1}],
                "impact": 0.5,
                "refs": [{"ref": "book"}, {"url": "https://x"}, {"uri": "urn:x"}, {"ref": [{"a": 1}]}],
                "tags": {"nist": ["AC-6"], "cci": ["CCI-1"], "severity": "medium", "deep": {"a": [null, 1.5]}},
                "code": "control 'C1'", "source_location": {"ref": "controls/a.rb", "line": 3, "col": 2},
                "waiver_data": {"justification": "j", "run": false, "skipped_due_to_waiver": "yes", "w": 0},
                "attestation_data": {"control_id": "C1", "explanation": "e", "frequency": "annually",
                                     "status": "passed", "updated": "2026", "updated_by": "me", "a": 1},
                "results": [{
                    "status": "skipped", "code_desc": "x", "run_time": 1.25, "start_time": "2026",
                    "resource": "file", "resource_id": "/etc/passwd", "message": "m", "skip_message": "s",
                    "exception": "E", "backtrace": ["a:1"], "resource_class": "file", "resource_params": "[]"
                }],
                "x_keyhole": {"fact": "kept"}
            }],
            "x_profile": 1
        }],
        "statistics": {"duration": 0.25, "controls": {"passed": {"total": 1, "t": 0}, "failed": {"total": 0},
                       "skipped": {"total": 0}, "x": 1}, "y": 2},
        "version": "6.8.24",
        "other_checks": [],
        "passthrough": {"auxiliary_data": [{"name": "x"}]}
    });
    let exec = Execution::from_json_str(&inspec.to_string()).unwrap();
    let control = &exec.profiles[0].controls[0];
    assert_eq!(control.extra["x_keyhole"], json!({"fact": "kept"}));
    assert_eq!(control.results[0].extra["resource_class"], json!("file"));
    assert_eq!(
        exec.profiles[0].extra["inputs"],
        inspec["profiles"][0]["inputs"]
    );
    assert!(matches!(control.refs[3].reference, Some(RefValue::List(_))));
    assert_eq!(
        control.waiver_data.as_ref().unwrap().skipped_due_to_waiver,
        Some(WaiverFlag::Text("yes".into()))
    );
    let written = exec.to_json_pretty().unwrap();
    assert_schema_valid(&written);
    assert_eq!(serde_json::from_str::<Value>(&written).unwrap(), inspec);
}

#[test]
fn reader_accepts_what_inspecjs_accepts() {
    let mut value: Value = serde_json::from_str(&read_fixture("samples/sample-exec.json")).unwrap();
    let result = &mut value["profiles"][0]["controls"][0]["results"][0];
    // A result without status (inspecjs: "no_status"), a null backtrace, a waiver flag string.
    result["status"] = Value::Null;
    result["backtrace"] = Value::Null;
    value["profiles"][0]["controls"][0]["waiver_data"] = json!({"skipped_due_to_waiver": ""});
    // Impact outside the schema's range is read (inspecjs does) but not written.
    value["profiles"][0]["controls"][1]["impact"] = json!(5);
    let exec = Execution::from_json_str(&value.to_string()).unwrap();
    assert_eq!(exec.profiles[0].controls[0].results[0].status, None);
    assert!(!exec.profiles[0].controls[0].is_waived());
    assert!(matches!(
        exec.to_json(),
        Err(HdfError::InvalidExecution { .. })
    ));
}

#[test]
fn reader_refuses_missing_required_fields_with_a_helpful_message() {
    let sample: Value = serde_json::from_str(&read_fixture("samples/sample-exec.json")).unwrap();
    for pointer in [
        "/version",
        "/statistics",
        "/platform/name",
        "/profiles/0/sha256",
        "/profiles/0/supports",
        "/profiles/0/controls/0/refs",
        "/profiles/0/controls/0/source_location",
        "/profiles/0/controls/0/results/0/code_desc",
    ] {
        let mut broken = sample.clone();
        let (parent, field) = pointer.rsplit_once('/').unwrap();
        let parent = if parent.is_empty() {
            &mut broken
        } else {
            broken.pointer_mut(parent).unwrap()
        };
        parent.as_object_mut().unwrap().remove(field);
        let err = Execution::from_json_str(&broken.to_string()).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&format!("missing field `{field}`")),
            "{pointer}: {message}"
        );
        assert!(message.contains("inspec exec --reporter json"), "{message}");
    }
    assert!(matches!(
        Execution::from_json_str("[]"),
        Err(HdfError::ReadJson { .. })
    ));
}

#[test]
fn extra_keys_shadowing_named_fields_are_refused_on_write() {
    let mut exec = single(vec![control("C1", 0.5, &[ResultStatus::Passed])]);
    exec.profiles[0].controls[0]
        .extra
        .insert("impact".into(), json!("high"));
    match exec.to_json_pretty() {
        Err(HdfError::InvalidExecution { path, problem }) => {
            assert_eq!(path, "/profiles/0/controls/0/impact");
            assert!(problem.contains("named field"), "{problem}");
        }
        other => panic!("expected InvalidExecution, got {other:?}"),
    }
}

#[test]
fn built_executions_are_schema_valid() {
    let exec = single(vec![
        control("C1", 0.5, &[ResultStatus::Passed, ResultStatus::Failed]),
        control("C2", 0.0, &[]),
    ]);
    assert_schema_valid(&exec.to_json_pretty().unwrap());
}

/// Keyhole's own check profiles (pre-scan, post-scan) are built by one constructor: loaded,
/// licensed, versioned, on a `kubernetes` platform naming the target; a group with no control
/// is left out; the whole is schema-valid.
#[test]
fn keyhole_check_profiles_are_whole_and_skip_empty_groups() {
    let mut p = keyhole_hdf::Profile::keyhole_checks("keyhole-x", "ab", "1.2.3", "X", "sum");
    p.push_group("one", "One", vec!["x-1".into()]);
    p.push_group("none", "None", Vec::new());
    p.controls
        .push(control("x-1", 0.5, &[ResultStatus::Passed]));
    let exec = Execution::kubernetes_checks("pod/ns/web-0/app", "1.2.3", p);
    let text = exec.to_json_pretty().unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["platform"]["name"], "kubernetes");
    assert_eq!(v["platform"]["target_id"], "pod/ns/web-0/app");
    let p = &v["profiles"][0];
    assert_eq!(
        (&p["name"], &p["version"], &p["status"], &p["license"]),
        (
            &json!("keyhole-x"),
            &json!("1.2.3"),
            &json!("loaded"),
            &json!("Apache-2.0")
        )
    );
    assert_eq!(
        p["groups"],
        json!([{"id": "one", "title": "One", "controls": ["x-1"]}])
    );
    assert_schema_valid(&text);
}
