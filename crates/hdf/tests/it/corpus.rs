//! A seeded corpus of executions and threshold files for the differential test against the SAF
//! CLI: hand-made cases for each rule and quirk, plus random executions; for each execution,
//! thresholds that sit on, just inside and just outside its actual numbers, written in the
//! nested, flattened and mixed forms.

use keyhole_hdf::{
    Control, ControlStatus, Execution, ResultStatus, Severity, Threshold, ThresholdStatus, Verdict,
    WaiverData, WaiverFlag, evaluate,
};
use serde_json::json;

use crate::support::{Rng, control, exec, profile, read_fixture, result, single};

use ResultStatus::{Error as E, Failed as F, Passed as P, Skipped as S};

pub(crate) const SEED: u64 = 0x6b65_7968_6f6c_6521;

pub(crate) struct Case {
    pub(crate) name: String,
    pub(crate) exec: Execution,
    /// (label, YAML text).
    pub(crate) thresholds: Vec<(String, String)>,
}

/// A value in a threshold entry.
#[derive(Clone)]
enum Val {
    Num(f64),
    Ids(Vec<String>),
}

impl Val {
    fn yaml(&self) -> String {
        match self {
            Self::Num(n) => format!("{n}"),
            Self::Ids(ids) => {
                let quoted: Vec<String> = ids
                    .iter()
                    .map(|id| serde_json::to_string(id).unwrap())
                    .collect();
                format!("[{}]", quoted.join(", "))
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Form {
    Nested,
    Flattened,
    /// Every second entry as a literal dotted top-level key, the rest nested.
    Mixed,
}

fn render(entries: &[(String, Val)], form: Form) -> String {
    // A repeated key would be a YAML error in both SAF and keyhole: keep the first.
    let mut seen = std::collections::HashSet::new();
    let entries: Vec<&(String, Val)> = entries
        .iter()
        .filter(|(p, _)| seen.insert(p.clone()))
        .collect();
    let mut literal = String::new();
    let mut nested: Vec<(Vec<String>, Val)> = Vec::new();
    for (i, (path, val)) in entries.iter().enumerate() {
        let flat = match form {
            Form::Flattened => true,
            Form::Nested => false,
            Form::Mixed => i % 2 == 1,
        };
        if flat {
            literal.push_str(&format!("{path}: {}\n", val.yaml()));
        } else {
            nested.push((path.split('.').map(str::to_owned).collect(), val.clone()));
        }
    }
    // Emit the nested entries as a tree, keeping first-seen order of keys.
    fn emit(out: &mut String, entries: &[(Vec<String>, Val)], depth: usize) {
        let mut keys: Vec<&String> = Vec::new();
        for (path, _) in entries {
            if !keys.contains(&&path[depth]) {
                keys.push(&path[depth]);
            }
        }
        for key in keys {
            let indent = "  ".repeat(depth);
            let here: Vec<(Vec<String>, Val)> = entries
                .iter()
                .filter(|(p, _)| &p[depth] == key)
                .cloned()
                .collect();
            if let Some((_, val)) = here.iter().find(|(p, _)| p.len() == depth + 1) {
                out.push_str(&format!("{indent}{key}: {}\n", val.yaml()));
            } else {
                out.push_str(&format!("{indent}{key}:\n"));
                emit(out, &here, depth + 1);
            }
        }
    }
    let mut out = String::new();
    emit(&mut out, &nested, 0);
    out.push_str(&literal);
    if out.is_empty() {
        "{}\n".to_owned()
    } else {
        out
    }
}

const STATUSES: [ThresholdStatus; 5] = [
    ThresholdStatus::Passed,
    ThresholdStatus::Failed,
    ThresholdStatus::Skipped,
    ThresholdStatus::Error,
    ThresholdStatus::NoImpact,
];
const SEVERITIES: [Severity; 5] = [
    Severity::Critical,
    Severity::High,
    Severity::Medium,
    Severity::Low,
    Severity::None,
];

/// Thresholds for `exec`, around its actual numbers as keyhole computes them (SAF is the judge).
fn thresholds_for(exec: &Execution, rng: &mut Rng) -> Vec<(String, String)> {
    let mut out = vec![("empty".to_owned(), "{}\n".to_owned())];
    let Ok(v) = evaluate(exec, &Threshold::default()) else {
        // SAF crashes on these executions whatever the threshold.
        out.push(("compliance".into(), "compliance:\n  min: 1\n".into()));
        return out;
    };
    let ids = |status: ThresholdStatus, severity: Severity| actual_ids(&v, status, severity);
    let c = f64::from(v.compliance);

    // Everything at its actual value, as `saf generate threshold` writes it (min and max).
    let mut all = vec![
        ("compliance.min".to_owned(), Val::Num(c)),
        ("compliance.max".to_owned(), Val::Num(c)),
    ];
    for status in STATUSES {
        let n = f64::from(v.counts.total.get(status));
        if status == ThresholdStatus::NoImpact {
            all.push(("no_impact.total".to_owned(), Val::Num(n)));
        } else {
            all.push((format!("{}.total.min", status.as_str()), Val::Num(n)));
            all.push((format!("{}.total.max", status.as_str()), Val::Num(n)));
        }
        for severity in SEVERITIES {
            if severity == Severity::None && status != ThresholdStatus::NoImpact {
                continue;
            }
            let n = f64::from(v.counts.severity(severity).get(status));
            let base = format!("{}.{}", status.as_str(), severity.as_str());
            all.push((format!("{base}.min"), Val::Num(n)));
            all.push((format!("{base}.max"), Val::Num(n)));
            let listed = ids(status, severity);
            if !listed.is_empty() {
                all.push((format!("{base}.controls"), Val::Ids(listed)));
            }
        }
    }
    out.push(("generated-nested".into(), render(&all, Form::Nested)));
    out.push(("generated-mixed".into(), render(&all, Form::Mixed)));
    let numbers_only: Vec<(String, Val)> = all
        .iter()
        .filter(|(_, v)| matches!(v, Val::Num(_)))
        .cloned()
        .collect();
    // Flattened with both bounds per prefix: SAF keeps only the later one.
    out.push((
        "generated-flattened".into(),
        render(&numbers_only, Form::Flattened),
    ));

    // Compliance around the actual value, including SAF's unchecked 0 maximum.
    for (label, path, value) in [
        ("compliance-min-at", "compliance.min", c),
        ("compliance-min-above", "compliance.min", c + 1.0),
        ("compliance-max-below", "compliance.max", c - 1.0),
        ("compliance-max-zero", "compliance.max", 0.0),
    ] {
        let form = if rng.chance(50) {
            Form::Nested
        } else {
            Form::Flattened
        };
        out.push((
            label.into(),
            render(&[(path.to_owned(), Val::Num(value))], form),
        ));
    }

    // Severity none exists only under no_impact.
    let na_none = f64::from(v.counts.none.no_impact);
    out.push((
        "none-min-above".into(),
        render(
            &[("no_impact.none.min".into(), Val::Num(na_none + 1.0))],
            Form::Flattened,
        ),
    ));
    out.push((
        "none-max-below".into(),
        render(
            &[("no_impact.none.max".into(), Val::Num(na_none - 1.0))],
            Form::Nested,
        ),
    ));

    // Random single and multiple perturbations of count bounds.
    for round in 0..6 {
        let mut entries = Vec::new();
        for _ in 0..=rng.below(3) {
            let status = *rng.pick(&STATUSES);
            let delta: f64 = *rng.pick(&[-1.0, 0.0, 0.0, 1.0, 0.5]);
            if rng.chance(35) {
                let n = f64::from(v.counts.total.get(status));
                match rng.below(3) {
                    0 => entries.push((
                        format!("{}.total", status.as_str()),
                        Val::Num(n + delta.round()),
                    )),
                    1 => entries.push((
                        format!("{}.total.min", status.as_str()),
                        Val::Num(n + delta),
                    )),
                    _ => entries.push((
                        format!("{}.total.max", status.as_str()),
                        Val::Num(n + delta),
                    )),
                }
            } else {
                let severity = *rng.pick(&SEVERITIES);
                let n = f64::from(v.counts.severity(severity).get(status));
                let bound = if rng.chance(50) { "min" } else { "max" };
                entries.push((
                    format!("{}.{}.{bound}", status.as_str(), severity.as_str()),
                    Val::Num(n + delta),
                ));
            }
        }
        let form = *rng.pick(&[Form::Nested, Form::Flattened, Form::Mixed]);
        out.push((format!("bounds-{round}"), render(&entries, form)));
    }

    // Control lists: exact (shuffled), one missing, one extra, empty, duplicated, absent slot.
    let status = *rng.pick(&STATUSES);
    let severity = *rng.pick(&SEVERITIES);
    let mut listed = ids(status, severity);
    for i in (1..listed.len()).rev() {
        listed.swap(i, rng.below(i + 1));
    }
    let path = format!("{}.{}.controls", status.as_str(), severity.as_str());
    let mut variants = vec![
        ("controls-exact", listed.clone()),
        ("controls-empty", Vec::new()),
    ];
    if let Some(first) = listed.first() {
        variants.push(("controls-missing-one", listed[1..].to_vec()));
        let mut doubled = listed.clone();
        doubled.push(first.clone());
        variants.push(("controls-duplicated", doubled));
    }
    let mut extra = listed.clone();
    extra.push("NOT-A-CONTROL".into());
    variants.push(("controls-extra", extra));
    for (label, list) in variants {
        out.push((
            format!("{label}-{path}"),
            render(&[(path.clone(), Val::Ids(list))], Form::Nested),
        ));
    }

    // Keys SAF never reads must not change anything.
    out.push((
        "ignored-keys".into(),
        render(
            &[
                ("no_impact.total.max".into(), Val::Num(-1.0)),
                ("passed.none.max".into(), Val::Num(-1.0)),
                ("failed.total.maximum".into(), Val::Num(-1.0)),
            ],
            Form::Nested,
        ),
    ));
    out
}

/// Ids of the counted controls with `status` and `severity`, in file order.
fn actual_ids(verdict: &Verdict, status: ThresholdStatus, severity: Severity) -> Vec<String> {
    verdict
        .controls
        .iter()
        .filter(|c| c.severity == Some(severity) && threshold_status(c.status) == status)
        .map(|c| c.id.clone())
        .collect()
}

fn threshold_status(status: ControlStatus) -> ThresholdStatus {
    match status {
        ControlStatus::Passed => ThresholdStatus::Passed,
        ControlStatus::Failed => ThresholdStatus::Failed,
        ControlStatus::NotReviewed => ThresholdStatus::Skipped,
        ControlStatus::NotApplicable => ThresholdStatus::NoImpact,
        ControlStatus::ProfileError => ThresholdStatus::Error,
    }
}

const IMPACTS: [f64; 15] = [
    0.0, 0.0, 0.05, 0.09, 0.1, 0.3, 0.39, 0.4, 0.5, 0.69, 0.7, 0.8, 0.89, 0.9, 1.0,
];

fn random_control(rng: &mut Rng, id: String) -> Control {
    let statuses: Vec<ResultStatus> = (0..rng.below(4))
        .map(|_| *rng.pick(&[P, P, P, F, F, S, S, E]))
        .collect();
    let mut c = control(&id, *rng.pick(&IMPACTS), &statuses);
    if rng.chance(6) {
        c.results.push(result(None));
    }
    if rng.chance(5) && !c.results.is_empty() {
        c.results[0].backtrace = Some(Vec::new());
    }
    if rng.chance(15) {
        let tag = *rng.pick(&[
            "low", "medium", "high", "critical", "none", "High", "CRITICAL", "bogus",
        ]);
        c.tags.insert("severity".into(), json!(tag));
    }
    if rng.chance(5) {
        c.tags.insert(
            "severityoverride".into(),
            json!(*rng.pick(&["low", "critical", "Medium"])),
        );
    }
    if rng.chance(8) {
        let flags = [
            WaiverFlag::Bool(true),
            WaiverFlag::Bool(false),
            WaiverFlag::Text(String::new()),
            WaiverFlag::Text("yes".into()),
        ];
        let flag = rng.pick(&flags);
        c.waiver_data = Some(WaiverData {
            skipped_due_to_waiver: Some(flag.clone()),
            ..Default::default()
        });
    }
    c
}

fn random_exec(rng: &mut Rng) -> Execution {
    let n = rng.below(15);
    let mut controls: Vec<Control> = Vec::new();
    for i in 0..n {
        let id = if i > 0 && rng.chance(8) {
            controls[rng.below(i)].id.clone()
        } else {
            format!("V-{i}")
        };
        controls.push(random_control(rng, id));
    }
    match rng.below(10) {
        0 | 1 => {
            // Overlay: the first profile wraps the second; wrapper controls mostly without results.
            let mut base_controls = controls.clone();
            for c in &mut controls {
                if rng.chance(70) {
                    c.results.clear();
                }
            }
            base_controls.retain(|_| rng.chance(80));
            let mut base = profile("base", base_controls);
            base.parent_profile = Some("wrapper".into());
            exec(vec![profile("wrapper", controls), base])
        }
        2 => {
            // A standalone second profile sharing some ids.
            let mut shared: Vec<Control> = Vec::new();
            for c in &controls {
                if rng.chance(50) {
                    shared.push(random_control(rng, c.id.clone()));
                }
            }
            exec(vec![profile("first", controls), profile("second", shared)])
        }
        _ => single(controls),
    }
}

/// Hand-made executions: rounding edges and every rule or quirk, including ones SAF crashes on.
fn fixed_execs() -> Vec<(String, Execution)> {
    let mut out = Vec::new();
    let sample = Execution::from_json_str(&read_fixture("samples/sample-exec.json")).unwrap();
    out.push(("sample".into(), sample));
    for (p, f, s, e) in [
        (2, 1, 0, 0),
        (1, 3, 2, 2),
        (3, 5, 0, 0),
        (5, 0, 2, 1),
        (1, 0, 1, 0),
        (1, 5, 0, 0),
    ] {
        let mut controls = Vec::new();
        for (count, status, impact) in [(p, P, 0.5), (f, F, 0.7), (s, S, 0.3), (e, E, 0.95)] {
            controls
                .extend((0..count).map(|i| control(&format!("{}-{i}", impact), impact, &[status])));
        }
        controls.push(control("na", 0.0, &[F]));
        out.push((
            format!("rounding-{p}-of-{}", p + f + s + e),
            single(controls),
        ));
    }
    let mut capital = control("cap", 0.2, &[F]);
    capital.tags.insert("severity".into(), json!("High"));
    let mut override_tag = control("ovr", 0.2, &[P]);
    override_tag
        .tags
        .insert("severityoverride".into(), json!("critical"));
    override_tag.tags.insert("severity".into(), json!("low"));
    let mut waived = control("waived", 0.7, &[F]);
    waived.waiver_data = Some(WaiverData {
        skipped_due_to_waiver: Some(WaiverFlag::Text("yes".into())),
        ..Default::default()
    });
    let mut backtrace = control("bt", 0.5, &[P]);
    backtrace.results[0].backtrace = Some(Vec::new());
    let mut no_status = control("nostatus", 0.5, &[]);
    no_status.results.push(result(None));
    out.push((
        "tags-and-waivers".into(),
        single(vec![
            capital,
            override_tag,
            waived,
            backtrace,
            no_status,
            control("na-error", 0.0, &[E]),
            control("empty", 0.5, &[]),
        ]),
    ));
    let wrapper = profile(
        "wrapper",
        vec![
            control("C1", 0.5, &[]),
            control("C2", 0.5, &[]),
            control("C3", 0.5, &[P]),
        ],
    );
    let mut base = profile(
        "base",
        vec![control("C1", 0.9, &[F]), control("C2", 0.3, &[P])],
    );
    base.parent_profile = Some("wrapper".into());
    out.push(("overlay".into(), exec(vec![wrapper, base])));
    out.push((
        "standalone-shared-ids".into(),
        exec(vec![
            profile(
                "a",
                vec![
                    control("C1", 0.5, &[P]),
                    control("C2", 0.5, &[F]),
                    control("C3", 0.5, &[]),
                ],
            ),
            profile(
                "b",
                vec![control("C1", 0.5, &[F]), control("C3", 0.8, &[S])],
            ),
        ]),
    ));
    out.push((
        "duplicate-ids".into(),
        single(vec![
            control("D", 0.5, &[P]),
            control("D", 0.5, &[F]),
            control("E", 0.5, &[]),
        ]),
    ));
    let mut self_parent = profile("a", vec![control("C1", 0.5, &[P])]);
    self_parent.parent_profile = Some("a".into());
    out.push(("self-parent".into(), exec(vec![self_parent])));
    // SAF crashes on the following; keyhole returns an error.
    let mut cycle = profile(
        "a",
        vec![control("C1", 0.5, &[P]), control("C1", 0.5, &[F])],
    );
    cycle.parent_profile = Some("a".into());
    out.push(("crash-overlay-cycle".into(), exec(vec![cycle])));
    let mut numeric = control("num", 0.5, &[P]);
    numeric.tags.insert("severity".into(), json!(3));
    out.push(("crash-numeric-severity".into(), single(vec![numeric])));
    let mut nist = control("nist", 0.5, &[P]);
    nist.tags.insert("nist".into(), json!(7));
    out.push((
        "crash-nist-number".into(),
        exec(vec![
            profile("a", vec![control("ok", 0.5, &[P])]),
            profile("b", vec![nist]),
        ]),
    ));
    out.push(("crash-no-profiles".into(), exec(vec![])));
    out
}

/// The whole corpus: fixed cases (with the sample thresholds of `fixtures/samples/` for the sample) and
/// random executions, about 30 in all.
pub(crate) fn build() -> Vec<Case> {
    let mut rng = Rng::new(SEED);
    let mut cases = Vec::new();
    let mut execs = fixed_execs();
    for i in 0..16 {
        execs.push((format!("random-{i}"), random_exec(&mut rng)));
    }
    for (name, exec) in execs {
        let mut thresholds = thresholds_for(&exec, &mut rng);
        if name == "sample" {
            for file in [
                "threshold-pass.yaml",
                "threshold-fail-compliance.yaml",
                "generated-threshold.yaml",
            ] {
                thresholds.push((file.into(), read_fixture(&format!("samples/{file}"))));
            }
            // Reading quirks, on the sample (2 passed, 1 failed: C2 medium, C1 passed high).
            for (label, yaml) in [
                (
                    "literal-key-beats-nested",
                    "failed.total.max: 5\nfailed:\n  total:\n    max: 0\n",
                ),
                (
                    "mixed-file-ignores-flat-compliance",
                    "compliance.min: 99\npassed.high.controls: [\"C1\"]\n",
                ),
                (
                    "flattened-exact-then-bounds",
                    "passed.total: 3\npassed.total.min: 1\n",
                ),
                (
                    "flattened-bounds-then-exact",
                    "passed.total.min: 1\npassed.total: 3\n",
                ),
                (
                    "scalar-compliance-ignored",
                    "compliance: 99\nfailed:\n  total:\n    max: 5\n",
                ),
                ("flattened-key-without-dot", "compliance: 99\n"),
                ("flattened-four-part-key", "failed.total.max.extra: 0\n"),
                ("flattened-trailing-dot-is-exact", "failed.total.: 2\n"),
                ("float-bound", "failed:\n  total:\n    max: 0.5\n"),
                ("float-exact-equal", "passed:\n  total: 2.0\n"),
                ("float-exact", "passed:\n  total: 2.5\n"),
                (
                    "high-severity-list",
                    "passed:\n  high:\n    controls: [\"C1\"]\n  critical:\n    controls: [\"C6\", \"C5\"]\n",
                ),
            ] {
                thresholds.push((label.into(), yaml.into()));
            }
        }
        cases.push(Case {
            name,
            exec,
            thresholds,
        });
    }
    cases
}
