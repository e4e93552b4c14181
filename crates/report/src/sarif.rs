//! SARIF 2.1.0 for code-scanning dashboards: one run whose driver is keyhole, one rule per
//! control, one result per failed control.
//!
//! There is no source file to point at, so a result's location is a logical location: the
//! scanned container (`namespace/pod/container`, kind `resource`). Levels follow the control's
//! severity: `error` for high and critical, `warning` for medium, `note` for low and none.
//! `properties.security-severity` is the number GitHub code scanning buckets severities by
//! (≥ 9 critical, ≥ 7 high, ≥ 4 medium, else low), chosen inside the control's bucket. The
//! pre-scan and post-scan findings are rules and results too, their ids prefixed with their
//! profile's name (`keyhole-precheck/…`), so they cannot collide with the scan's control ids.

use serde_json::{Map, Value, json};

use crate::ReportError;
use crate::report::{ControlView, Report};

/// The schema URI written in `$schema`.
pub const SARIF_SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";

const INFORMATION_URI: &str = "https://github.com/keyhole-scanner/keyhole";

fn level(severity: &str) -> &'static str {
    match severity {
        "critical" | "high" => "error",
        "medium" => "warning",
        _ => "note",
    }
}

fn security_severity(severity: &str) -> &'static str {
    match severity {
        "critical" => "9.5",
        "high" => "8.0",
        "medium" => "5.5",
        "low" => "2.0",
        _ => "0.0",
    }
}

fn text(s: &str) -> Value {
    json!({ "text": s })
}

fn rule(id: &str, c: &ControlView) -> Value {
    let mut rule = Map::new();
    rule.insert("id".into(), json!(id));
    rule.insert("name".into(), json!(c.name()));
    rule.insert("shortDescription".into(), text(c.name()));
    if let Some(d) = c.description.as_deref().filter(|d| !d.is_empty()) {
        rule.insert("fullDescription".into(), text(d));
    }
    let help = c
        .fix
        .as_deref()
        .or(c.description.as_deref())
        .filter(|h| !h.is_empty())
        .unwrap_or(c.name());
    rule.insert("help".into(), text(help));
    rule.insert(
        "defaultConfiguration".into(),
        json!({ "level": level(&c.severity) }),
    );
    let mut tags = vec![json!("security"), json!("compliance")];
    tags.extend(c.nist.iter().map(|n| json!(format!("NIST/{n}"))));
    rule.insert(
        "properties".into(),
        json!({
            "severity": c.severity,
            "impact": c.impact,
            "nist": c.nist,
            "security-severity": security_severity(&c.severity),
            "tags": tags,
        }),
    );
    Value::Object(rule)
}

fn result(id: &str, index: usize, c: &ControlView, locations: &[Value]) -> Value {
    let evidence: Vec<String> = c
        .evidence
        .iter()
        .map(|e| match &e.message {
            Some(m) => format!("{}: {m}", e.code_desc),
            None => e.code_desc.clone(),
        })
        .collect();
    let message = if evidence.is_empty() {
        format!("{} failed.", c.name())
    } else {
        format!("{} failed: {}", c.name(), evidence.join("; "))
    };
    let mut r = json!({
        "ruleId": id,
        "ruleIndex": index,
        "kind": "fail",
        "level": level(&c.severity),
        "message": text(&message),
        "properties": {
            "status": c.status,
            "evidence": c.evidence,
        },
    });
    if !locations.is_empty() {
        r["locations"] = Value::Array(locations.to_vec());
    }
    r
}

/// A target that gave no report (its scan failed): a notification of the SARIF invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetFailure {
    /// The target, `namespace/pod[/container]`.
    pub target: String,
    /// Why it gave no report.
    pub message: String,
}

fn location(target: &str) -> Value {
    json!({
        "logicalLocations": [{
            "name": target.rsplit('/').next().unwrap_or(target),
            "fullyQualifiedName": target,
            "kind": "resource",
        }]
    })
}

/// One location per scanned container; the HDF's own target id when the summary has none.
fn targets_of(report: &Report) -> Vec<&str> {
    if report.targets.is_empty() {
        report.platform_target.iter().map(String::as_str).collect()
    } else {
        report.targets.iter().map(String::as_str).collect()
    }
}

/// How bad an outcome is, for the one a run of several reports shows.
fn rank(o: crate::Outcome) -> u8 {
    match o {
        crate::Outcome::Passed => 0,
        crate::Outcome::NotJudged => 1,
        crate::Outcome::Aborted => 2,
        crate::Outcome::Failed => 3,
    }
}

/// Renders `reports` (one per target; one for a single scan) and the targets that gave none as
/// one SARIF 2.1.0 log with one run: each rule once, in first-seen order, each report's
/// failures located at its own targets. One SARIF document whatever the number of targets,
/// since code-scanning uploads take exactly one.
pub(crate) fn render(
    reports: &[Report],
    failures: &[TargetFailure],
) -> Result<String, ReportError> {
    let mut rules = Vec::new();
    let mut index: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    let mut results = Vec::new();
    for report in reports {
        let locations: Vec<Value> = targets_of(report).into_iter().map(location).collect();
        let scan = report.controls.iter().map(|c| (c.id.clone(), c));
        let extra = [&report.precheck, &report.postscan]
            .into_iter()
            .flatten()
            .flat_map(|f| {
                f.checks
                    .iter()
                    .map(move |c| (format!("{}/{}", f.profile, c.id), c))
            });
        for (id, c) in scan.chain(extra) {
            let at = *index.entry(id.clone()).or_insert_with(|| {
                rules.push(rule(&id, c));
                rules.len() - 1
            });
            if c.is_failed() {
                results.push(result(&id, at, c, &locations));
            }
        }
    }
    let notifications: Vec<Value> = failures
        .iter()
        .map(|f| {
            json!({
                "level": "error",
                "message": text(&format!("{}: {}", f.target, f.message)),
                "locations": [location(&f.target)],
            })
        })
        .collect();

    let mut run_ids: Vec<&str> = Vec::new();
    for r in reports {
        if !run_ids.contains(&r.run_id.as_str()) {
            run_ids.push(&r.run_id);
        }
    }
    let first = reports.first();
    let mut invocation = json!({
        "executionSuccessful": failures.is_empty()
            && reports.iter().all(|r| r.verdict.outcome != crate::Outcome::Aborted),
    });
    // RFC 3339 in UTC throughout, so the text order is the time order.
    if let Some(start) = reports.iter().map(|r| r.started_at.as_str()).min() {
        invocation["startTimeUtc"] = json!(start);
    }
    if let Some(end) = reports.iter().map(|r| r.finished_at.as_str()).max() {
        invocation["endTimeUtc"] = json!(end);
    }
    if !notifications.is_empty() {
        invocation["toolExecutionNotifications"] = Value::Array(notifications);
    }
    let properties = match (reports, failures) {
        ([report], []) => {
            let t = report.totals();
            json!({
                "runId": report.run_id,
                "mode": report.mode,
                "targets": report.targets,
                "outcome": report.verdict.outcome.as_str(),
                "compliance": report.compliance,
                "passed": t.passed,
                "failed": t.failed,
            })
        }
        _ => {
            let worst = reports
                .iter()
                .map(|r| r.verdict.outcome)
                .max_by_key(|o| rank(*o));
            let outcome = match (failures.is_empty(), worst) {
                (false, _) => "error",
                (true, Some(o)) => o.as_str(),
                (true, None) => "not_judged",
            };
            let per_target: Vec<Value> = reports
                .iter()
                .map(|r| {
                    let t = r.totals();
                    json!({
                        "targets": targets_of(r),
                        "runId": r.run_id,
                        "mode": r.mode,
                        "outcome": r.verdict.outcome.as_str(),
                        "compliance": r.compliance,
                        "passed": t.passed,
                        "failed": t.failed,
                    })
                })
                .collect();
            json!({
                "runIds": run_ids,
                "targets": reports.iter().flat_map(targets_of).chain(failures.iter().map(|f| f.target.as_str())).collect::<Vec<_>>(),
                "outcome": outcome,
                "reports": per_target,
                "failedTargets": failures.len(),
            })
        }
    };
    let log = json!({
        "$schema": SARIF_SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "keyhole",
                    "version": first.map_or(env!("CARGO_PKG_VERSION"), |r| r.tool_version.as_str()),
                    "informationUri": INFORMATION_URI,
                    "rules": rules,
                }
            },
            "automationDetails": { "id": format!("keyhole/{}", run_ids.join("+")) },
            "invocations": [invocation],
            "results": results,
            "properties": properties,
        }],
    });
    serde_json::to_string_pretty(&log).map_err(|source| ReportError::Json { source })
}
