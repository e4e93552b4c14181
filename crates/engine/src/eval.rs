//! From a profile to facts to HDF: the fact plan of a profile, its one gathering pass, and the
//! evaluation of every control into a schema-valid HDF execution.

use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Unit};
use keyhole_hdf::{
    Control, ControlResult, Description, Execution, Group, Platform, ResultStatus, SourceLocation,
    WaiverData, WaiverFlag,
};
use serde_json::{Map, Value as Json, json};

use crate::check::{Outcome, issue_outcome};
use crate::facts::{FactPlan, FactSource, Facts};
use crate::matcher::Issue;
use crate::profile::{CompiledControl, ControlDef, Inputs, Profile};
use crate::resource::Ctx;
use crate::waiver::Waivers;

/// The facts `profile` needs: every path to stat or read, directory to list or
/// walk, and process file, deduplicated (plus `os-release`, which names the HDF platform). Its
/// size depends on the profile, never on the target.
#[must_use]
pub fn plan(profile: &Profile, inputs: &Inputs) -> FactPlan {
    let compiled = profile.compiled(inputs);
    let mut plan = FactPlan::new();
    crate::resource::platform_requests(&mut plan);
    for check in compiled
        .controls
        .iter()
        .flat_map(|c| c.only_if.iter().chain(&c.checks))
        .flatten()
    {
        check.requests(&compiled.named, &mut plan);
    }
    plan
}

/// Gathers everything `profile` needs from `source`, in one pass over [`plan`].
pub fn gather(profile: &Profile, inputs: &Inputs, source: &dyn FactSource) -> Facts {
    source.gather(&plan(profile, inputs))
}

/// Time of a result: the evaluation's `now` plus the time evaluation has taken so far.
fn at(now: Timestamp, since: Instant) -> String {
    let t = SignedDuration::try_from(since.elapsed())
        .ok()
        .and_then(|d| now.checked_add(d).ok())
        .unwrap_or(now);
    t.round(Unit::Millisecond).unwrap_or(t).to_string()
}

fn result(
    outcome: Outcome,
    start: String,
    took: Duration,
    resource: (String, String),
) -> ControlResult {
    let mut r = ControlResult::new(outcome.status, outcome.code_desc, start);
    r.run_time = Some(took.as_secs_f64());
    r.resource = Some(resource.0);
    r.resource_id = Some(resource.1);
    if outcome.status == ResultStatus::Skipped {
        r.skip_message = outcome.message;
    } else {
        r.message = outcome.message;
    }
    r
}

/// Runs one control's guards and checks.
/// Runs one control's guards and checks; the flag is true when an `only_if` guard did not hold
/// (the control does not apply).
fn run_control(
    comp: &CompiledControl,
    ctx: &Ctx<'_>,
    now: Timestamp,
    since: Instant,
) -> (Vec<ControlResult>, bool) {
    for guard in &comp.only_if {
        let start = at(now, since);
        let t0 = Instant::now();
        let guard = match guard {
            Ok(g) => g,
            Err(e) => {
                let o = issue_outcome(Issue::Error(e.to_string()), "only_if".into());
                return (
                    vec![result(
                        o,
                        start,
                        t0.elapsed(),
                        ("only_if".into(), String::new()),
                    )],
                    false,
                );
            }
        };
        let o = guard.evaluate(ctx);
        let ids = guard.resource_ids();
        match o.status {
            ResultStatus::Passed => {}
            ResultStatus::Failed => {
                let why = guard.reason.clone().unwrap_or_else(|| {
                    format!(
                        "only_if not met: {}{}",
                        o.code_desc,
                        o.message.map(|m| format!(" ({m})")).unwrap_or_default()
                    )
                });
                let o = Outcome {
                    status: ResultStatus::Skipped,
                    code_desc: format!("only_if: {}", o.code_desc),
                    message: Some(why),
                };
                return (vec![result(o, start, t0.elapsed(), ids)], true);
            }
            ResultStatus::Skipped | ResultStatus::Error => {
                let o = Outcome {
                    code_desc: format!("only_if: {}", o.code_desc),
                    ..o
                };
                return (vec![result(o, start, t0.elapsed(), ids)], false);
            }
        }
    }
    let results = comp
        .checks
        .iter()
        .map(|check| {
            let start = at(now, since);
            let t0 = Instant::now();
            match check {
                Ok(c) => {
                    let o = c.evaluate(ctx);
                    result(o, start, t0.elapsed(), c.resource_ids())
                }
                Err(e) => result(
                    issue_outcome(
                        Issue::Error(format!("the check does not compile: {e}")),
                        "check".into(),
                    ),
                    start,
                    t0.elapsed(),
                    ("check".into(), String::new()),
                ),
            }
        })
        .collect();
    (results, false)
}

/// Sets a control's results; a control whose `only_if` did not hold does not apply to the
/// target, so it gets impact 0 (Heimdall's "Not Applicable", outside compliance), as InSpec's
/// `only_if(impact: 0.0)` does.
fn apply(control: &mut Control, (results, not_applicable): (Vec<ControlResult>, bool)) {
    control.results = results;
    if not_applicable {
        control.impact = 0.0;
    }
}

fn hdf_control(def: &ControlDef, file: &str) -> Control {
    let mut c = Control::new(def.id.clone(), def.impact);
    c.title.clone_from(&def.title);
    c.desc.clone_from(&def.desc);
    let mut descriptions: Vec<Description> = def
        .desc
        .iter()
        .map(|d| Description {
            label: "default".into(),
            data: d.clone(),
            ..Default::default()
        })
        .collect();
    descriptions.extend(def.descriptions.iter().map(|(label, data)| Description {
        label: label.clone(),
        data: data.clone(),
        ..Default::default()
    }));
    c.descriptions = (!descriptions.is_empty()).then_some(descriptions);
    c.refs.clone_from(&def.refs);
    c.tags.clone_from(&def.tags);
    c.code = Some(def.code.clone());
    c.source_location = SourceLocation {
        reference: Some(file.to_owned()),
        line: Some(def.line.into()),
        ..Default::default()
    };
    c
}

/// Evaluates every control of `profile` on `facts` into an HDF execution (schema-valid: it
/// passes [`Execution::validate`]). A fact that could not be gathered makes the controls that
/// need it `error` (or `skipped`, for process facts of a root-only scan) with the reason, never
/// a pass. Active waivers skip their control with the justification in `waiver_data` (as
/// InSpec writes it); expired ones are ignored (list them with [`Waivers::expired`]).
/// Platform name and release come from the target's `os-release` (`unknown` when absent).
#[must_use]
pub fn evaluate(
    profile: &Profile,
    inputs: &Inputs,
    facts: &Facts,
    waivers: &Waivers,
    now: Timestamp,
) -> Execution {
    let since = Instant::now();
    let compiled = profile.compiled(inputs);
    let ctx = Ctx::new(facts, now.to_zoned(TimeZone::UTC).date(), &compiled.named);
    let os = ctx.os_release().ok().flatten();
    let os_field = |k: &str| os.and_then(|o| o.get(k)).filter(|v| !v.is_empty()).cloned();
    let platform = Platform {
        name: os_field("ID").unwrap_or_else(|| "unknown".into()),
        release: os_field("VERSION_ID")
            .or_else(|| os_field("VERSION"))
            .unwrap_or_else(|| "unknown".into()),
        ..Default::default()
    };
    let mut exec = Execution::new(platform, env!("CARGO_PKG_VERSION"));
    let meta = &profile.meta;
    let mut p = keyhole_hdf::Profile::new(meta.name.clone(), profile.sha256.clone());
    p.version.clone_from(&meta.version);
    p.title.clone_from(&meta.title);
    p.maintainer.clone_from(&meta.maintainer);
    p.summary.clone_from(&meta.summary);
    p.description.clone_from(&meta.description);
    p.license.clone_from(&meta.license);
    p.copyright.clone_from(&meta.copyright);
    p.supports.clone_from(&meta.supports);
    p.status = Some("loaded".into());
    p.attributes = profile
        .inputs
        .iter()
        .map(|d| {
            let mut options = Map::new();
            options.insert("type".into(), json!(d.kind().as_str()));
            options.insert("value".into(), inputs.get(d.name()).unwrap_or(Json::Null));
            if let Some(desc) = d.description() {
                options.insert("description".into(), json!(desc));
            }
            if inputs.is_overridden(d.name()) {
                options.insert("default".into(), d.default_value());
            }
            let mut a = Map::new();
            a.insert("name".into(), json!(d.name()));
            a.insert("options".into(), Json::Object(options));
            a
        })
        .collect();
    p.groups = vec![Group {
        id: profile.file.clone(),
        title: meta.title.clone(),
        controls: profile.controls.iter().map(|c| c.id.clone()).collect(),
        ..Default::default()
    }];
    for (def, comp) in profile.controls.iter().zip(&compiled.controls) {
        let mut control = hdf_control(def, &profile.file);
        let waiver = waivers.get(&def.id);
        match waiver {
            Some(w) if w.is_active(now) && !w.run => {
                control.waiver_data = Some(WaiverData {
                    expiration_date: Some(w.expires.to_string()),
                    justification: Some(w.justification.clone()),
                    message: Some(String::new()),
                    run: Some(false),
                    skipped_due_to_waiver: Some(WaiverFlag::Bool(true)),
                    ..Default::default()
                });
                let mut r = ControlResult::new(ResultStatus::Skipped, "No-op", at(now, since));
                r.run_time = Some(0.0);
                r.skip_message = Some(format!(
                    "Skipped control due to waiver condition: {}",
                    w.justification
                ));
                control.results = vec![r];
            }
            Some(w) => {
                control.waiver_data = Some(WaiverData {
                    expiration_date: Some(w.expires.to_string()),
                    justification: Some(w.justification.clone()),
                    message: Some(if w.is_active(now) {
                        String::new()
                    } else {
                        format!(
                            "Waiver expired on {}, evaluating control normally",
                            w.expires
                        )
                    }),
                    run: Some(true),
                    skipped_due_to_waiver: Some(WaiverFlag::Bool(false)),
                    ..Default::default()
                });
                apply(&mut control, run_control(comp, &ctx, now, since));
            }
            None => apply(&mut control, run_control(comp, &ctx, now, since)),
        }
        p.controls.push(control);
    }
    exec.profiles.push(p);
    exec.statistics.duration = Some((facts.elapsed + since.elapsed()).as_secs_f64());
    exec
}
