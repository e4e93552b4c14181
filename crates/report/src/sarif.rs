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

/// Renders `report` as a SARIF 2.1.0 log.
pub(crate) fn render(report: &Report) -> Result<String, ReportError> {
    // One location per scanned container; the HDF's own target id when the summary has none.
    let targets: Vec<&str> = if report.targets.is_empty() {
        report.platform_target.iter().map(String::as_str).collect()
    } else {
        report.targets.iter().map(String::as_str).collect()
    };
    let locations: Vec<Value> = targets
        .iter()
        .map(|t| {
            json!({
                "logicalLocations": [{
                    "name": t.rsplit('/').next().unwrap_or(t),
                    "fullyQualifiedName": t,
                    "kind": "resource",
                }]
            })
        })
        .collect();

    let mut rules = Vec::new();
    let mut results = Vec::new();
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
        if c.is_failed() {
            results.push(result(&id, rules.len(), c, &locations));
        }
        rules.push(rule(&id, c));
    }

    let t = report.totals();
    let log = json!({
        "$schema": SARIF_SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "keyhole",
                    "version": report.tool_version,
                    "informationUri": INFORMATION_URI,
                    "rules": rules,
                }
            },
            "automationDetails": { "id": format!("keyhole/{}", report.run_id) },
            "invocations": [{
                "executionSuccessful": report.verdict.outcome != crate::Outcome::Aborted,
                "startTimeUtc": report.started_at,
                "endTimeUtc": report.finished_at,
            }],
            "results": results,
            "properties": {
                "runId": report.run_id,
                "mode": report.mode,
                "targets": report.targets,
                "outcome": report.verdict.outcome.as_str(),
                "compliance": report.compliance,
                "passed": t.passed,
                "failed": t.failed,
            },
        }],
    });
    serde_json::to_string_pretty(&log).map_err(|source| ReportError::Json { source })
}
