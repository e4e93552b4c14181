//! The SARIF log is valid against the official SARIF 2.1.0 schema (`fixtures/sarif/`, with
//! format checks) and says what the brief asks: rules for controls, results for failures, with
//! levels from severity and the target as a logical location.

use std::sync::OnceLock;

use keyhole_hdf::{Control, ControlResult, Execution, Platform, Profile, ResultStatus};
use keyhole_report::Report;
use serde_json::{Value, json};

use crate::support::{hostile_exec, read_fixture, sample_exec, summary};

fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let mut schema: Value =
            serde_json::from_str(&read_fixture("sarif/sarif-schema-2.1.0.json")).unwrap();
        // The schema's `language` pattern (of `run` and `toolComponent`),
        // `^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$`, is valid ECMA-262 (a lone `]` is a
        // literal) but the jsonschema crate's meta-schema check refuses it; escaping that `]`
        // keeps its meaning. Nothing else is changed.
        for owner in ["run", "toolComponent"] {
            let language = &mut schema["definitions"][owner]["properties"]["language"]["pattern"];
            assert_eq!(language, "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$");
            *language = json!("^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}\\]?$");
        }
        // Formats are checked too (date-time, uri, uri-reference).
        jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .expect("the SARIF schema compiles")
    })
}

fn schema_errors(log: &Value) -> Vec<String> {
    validator()
        .iter_errors(log)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn sarif_of(exec: &Execution) -> Value {
    let text = Report::build(exec, &summary()).unwrap().to_sarif().unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_fixture_run_is_schema_valid_sarif() {
    let log = sarif_of(&sample_exec());
    assert_eq!(schema_errors(&log), Vec::<String>::new());
    assert_eq!(
        schema_errors(&sarif_of(&hostile_exec())),
        Vec::<String>::new()
    );
}

/// The check can fail: a log with a level SARIF does not have, or without `runs`, is refused.
#[test]
fn the_schema_check_rejects_invalid_sarif() {
    let mut log = sarif_of(&sample_exec());
    log["runs"][0]["results"][0]["level"] = json!("fatal");
    assert!(!schema_errors(&log).is_empty());
    let mut log = sarif_of(&sample_exec());
    log.as_object_mut().unwrap().remove("runs");
    assert!(!schema_errors(&log).is_empty());
    let mut log = sarif_of(&sample_exec());
    log["runs"][0]["invocations"][0]["startTimeUtc"] = json!("yesterday");
    assert!(
        !schema_errors(&log).is_empty(),
        "date-time formats are checked"
    );
}

#[test]
fn rules_are_the_controls_and_results_the_failures() {
    let log = sarif_of(&sample_exec());
    let run = &log["runs"][0];
    assert_eq!(log["version"], "2.1.0");
    assert_eq!(log["runs"].as_array().unwrap().len(), 1);
    assert_eq!(run["tool"]["driver"]["name"], "keyhole");
    let rule_ids: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        rule_ids,
        [
            "C1",
            "C2",
            "C3",
            "C4",
            "C5",
            "C6",
            "keyhole-precheck/image-digest",
            "keyhole-precheck/capabilities-added",
            "keyhole-postscan/cleanup-verified",
            "keyhole-postscan/no-credential-artifact",
        ]
    );
    let c2 = &run["tool"]["driver"]["rules"][1];
    assert_eq!(c2["name"], "title C2");
    assert_eq!(c2["shortDescription"]["text"], "title C2");
    assert_eq!(c2["help"]["text"], "d");
    assert_eq!(c2["properties"]["severity"], "medium");
    assert_eq!(c2["properties"]["nist"], json!(["AC-6"]));

    let results = run["results"].as_array().unwrap();
    let failed: Vec<(&str, &str, u64)> = results
        .iter()
        .map(|r| {
            (
                r["ruleId"].as_str().unwrap(),
                r["level"].as_str().unwrap(),
                r["ruleIndex"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        failed,
        [
            ("C2", "warning", 1),
            ("keyhole-precheck/capabilities-added", "warning", 7)
        ]
    );
    assert_eq!(
        results[0]["message"]["text"],
        "title C2 failed: b: expected x got y"
    );
    assert_eq!(
        results[0]["locations"],
        json!([{"logicalLocations": [{
            "name": "app",
            "fullyQualifiedName": "scan-target/target-pod/app",
            "kind": "resource",
        }]}])
    );
    assert_eq!(run["automationDetails"]["id"], "keyhole/kx7q2m9d4a");
    assert_eq!(run["properties"]["runId"], "kx7q2m9d4a");
}

/// Levels by severity, written out: critical and high are errors, medium a warning, low a note.
#[test]
fn result_levels_follow_severity() {
    let mut exec = Execution::new(Platform::default(), "test");
    let mut p = Profile::new("p", "0");
    for (id, impact) in [("crit", 0.95), ("high", 0.75), ("med", 0.5), ("low", 0.2)] {
        let mut c = Control::new(id, impact);
        c.results.push(ControlResult::new(
            ResultStatus::Failed,
            "x",
            "2026-01-01T00:00:00Z",
        ));
        p.controls.push(c);
    }
    exec.profiles.push(p);
    let mut s = summary();
    s.precheck = None;
    s.postscan = None;
    let text = Report::build(&exec, &s).unwrap().to_sarif().unwrap();
    let log: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(schema_errors(&log), Vec::<String>::new());
    let levels: Vec<(&str, &str)> = log["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["ruleId"].as_str().unwrap(), r["level"].as_str().unwrap()))
        .collect();
    assert_eq!(
        levels,
        [
            ("crit", "error"),
            ("high", "error"),
            ("med", "warning"),
            ("low", "note")
        ]
    );
}

/// Several targets make one SARIF document (code-scanning uploads take one): one run, each rule
/// once, each target's failures at its own location, a target without a report an error
/// notification, and the whole schema-valid. The rule and result counts are written out.
#[test]
fn several_targets_are_one_log_with_each_rule_once_and_failures_notified() {
    use keyhole_core::{ContainerName, Namespace, PodName, RunId};
    use keyhole_report::{Target, TargetFailure, sarif_log};

    let target = |pod: &str| Target {
        namespace: Namespace::new("shop").unwrap(),
        pod: PodName::new(pod).unwrap(),
        container: Some(ContainerName::new("app").unwrap()),
    };
    let mut web0 = summary();
    web0.targets = vec![target("web-0")];
    let mut web1 = summary();
    web1.targets = vec![target("web-1")];
    web1.run_id = RunId::parse("b2c3d4e5f6").unwrap();
    web1.finished_at = "2026-11-26T13:05:00Z".parse().unwrap();
    let reports = [
        Report::build(&sample_exec(), &web0).unwrap(),
        Report::build(&sample_exec(), &web1).unwrap(),
    ];
    let failures = [TargetFailure {
        target: "shop/web-2".into(),
        message: "the exec session failed".into(),
    }];
    let log: Value = serde_json::from_str(&sarif_log(&reports, &failures).unwrap()).unwrap();
    assert_eq!(schema_errors(&log), Vec::<String>::new());
    assert_eq!(log["runs"].as_array().unwrap().len(), 1);
    let run = &log["runs"][0];
    // The fixture has 6 controls, 2 pre-scan and 2 post-scan checks: 10 rules, not 20.
    assert_eq!(run["tool"]["driver"]["rules"].as_array().unwrap().len(), 10);
    let located: Vec<(&str, u64, &str)> = run["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["ruleId"].as_str().unwrap(),
                r["ruleIndex"].as_u64().unwrap(),
                r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]
                    .as_str()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(
        located,
        [
            ("C2", 1, "shop/web-0/app"),
            ("keyhole-precheck/capabilities-added", 7, "shop/web-0/app"),
            ("C2", 1, "shop/web-1/app"),
            ("keyhole-precheck/capabilities-added", 7, "shop/web-1/app"),
        ]
    );
    let inv = &run["invocations"][0];
    assert_eq!(inv["executionSuccessful"], false);
    assert_eq!(inv["startTimeUtc"], "2026-11-26T12:59:50Z");
    assert_eq!(inv["endTimeUtc"], "2026-11-26T13:05:00Z");
    assert_eq!(
        inv["toolExecutionNotifications"],
        json!([{
            "level": "error",
            "message": {"text": "shop/web-2: the exec session failed"},
            "locations": [{"logicalLocations": [{
                "name": "web-2", "fullyQualifiedName": "shop/web-2", "kind": "resource",
            }]}],
        }])
    );
    assert_eq!(
        run["automationDetails"]["id"],
        "keyhole/kx7q2m9d4a+b2c3d4e5f6"
    );
    assert_eq!(run["properties"]["outcome"], "error");
    assert_eq!(
        run["properties"]["targets"],
        json!(["shop/web-0/app", "shop/web-1/app", "shop/web-2"])
    );
    // Without the failure the run succeeded, and its outcome is the worst report's.
    let log: Value = serde_json::from_str(&sarif_log(&reports, &[]).unwrap()).unwrap();
    assert_eq!(
        log["runs"][0]["invocations"][0]["executionSuccessful"],
        true
    );
    assert_eq!(
        log["runs"][0]["properties"]["outcome"],
        reports[0].verdict.outcome.as_str()
    );
}
