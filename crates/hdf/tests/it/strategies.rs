//! proptest strategies: executions the writer must emit schema-valid, and arbitrary JSON.

use keyhole_hdf::{
    AttestationData, AttestationStatus, Control, ControlResult, Dependency, Description, Execution,
    Group, Platform, Profile, RefValue, Reference, ResultStatus, SourceLocation, StatisticBlock,
    StatisticHash, Statistics, SupportedPlatform, WaiverData, WaiverFlag,
};
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// Arbitrary JSON, depth-limited.
pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1_000_000i32..1_000_000).prop_map(|k| Value::from(f64::from(k) / 100.0)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec(("[a-z_]{1,8}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Unknown fields; prefixed so they never shadow a named field.
fn extra() -> impl Strategy<Value = Map<String, Value>> {
    vec(("x_[a-z]{1,6}", json_value()), 0..3).prop_map(|kv| kv.into_iter().collect())
}

fn text() -> impl Strategy<Value = String> {
    // Any Unicode, including quotes, backslashes and control characters the writer must escape.
    ".{0,16}"
}

/// Floats on a decimal grid: serde_json's default parser reads these back bit-exactly.
fn grid(max: u32) -> impl Strategy<Value = f64> {
    (0..=max).prop_map(|k| f64::from(k) / 1000.0)
}

fn result() -> impl Strategy<Value = ControlResult> {
    (
        of(prop_oneof![
            Just(ResultStatus::Passed),
            Just(ResultStatus::Failed),
            Just(ResultStatus::Skipped),
            Just(ResultStatus::Error)
        ]),
        text(),
        of(grid(100_000)),
        (of(text()), of(text()), of(text()), of(text()), of(text())),
        of(vec(text(), 0..3)),
        extra(),
    )
        .prop_map(
            |(
                status,
                code_desc,
                run_time,
                (resource, message, skip_message, exception, resource_id),
                backtrace,
                extra,
            )| {
                ControlResult {
                    status,
                    code_desc,
                    run_time,
                    start_time: "2026-11-26T13:00:00+00:00".into(),
                    resource,
                    resource_id,
                    message,
                    skip_message,
                    exception,
                    backtrace,
                    extra,
                }
            },
        )
}

fn reference() -> impl Strategy<Value = Reference> {
    prop_oneof![
        text().prop_map(|t| Reference {
            reference: Some(RefValue::Text(t)),
            ..Default::default()
        }),
        text().prop_map(|u| Reference {
            url: Some(u),
            ..Default::default()
        }),
        text().prop_map(|u| Reference {
            uri: Some(u),
            ..Default::default()
        }),
        vec(extra(), 0..2).prop_map(|l| Reference {
            reference: Some(RefValue::List(l)),
            ..Default::default()
        }),
    ]
}

fn control() -> impl Strategy<Value = Control> {
    (
        ("[A-Z]-[0-9]{1,3}", of(text()), of(text()), grid(1000)),
        (
            of(vec((text(), text()), 0..3)),
            vec(reference(), 0..3),
            vec(("[a-z]{1,8}", json_value()), 0..4),
        ),
        (of(text()), of(text()), of(0u32..5000)),
        vec(result(), 0..4),
        of((
            of(text()),
            of(any::<bool>()),
            of(prop_oneof![
                any::<bool>().prop_map(WaiverFlag::Bool),
                text().prop_map(WaiverFlag::Text)
            ]),
        )),
        of(any::<bool>()),
        extra(),
    )
        .prop_map(
            |(
                (id, title, desc, impact),
                (descriptions, refs, tags),
                (code, src, line),
                results,
                waiver,
                attested,
                extra,
            )| {
                Control {
                    id,
                    title,
                    desc,
                    descriptions: descriptions.map(|d| {
                        d.into_iter()
                            .map(|(label, data)| Description {
                                label,
                                data,
                                extra: Map::new(),
                            })
                            .collect()
                    }),
                    impact,
                    refs,
                    tags: tags.into_iter().collect(),
                    code,
                    source_location: SourceLocation {
                        reference: src,
                        line: line.map(Number::from),
                        extra: Map::new(),
                    },
                    results,
                    waiver_data: waiver.map(|(justification, run, skipped_due_to_waiver)| {
                        WaiverData {
                            justification,
                            run,
                            skipped_due_to_waiver,
                            ..Default::default()
                        }
                    }),
                    attestation_data: attested.map(|passed| AttestationData {
                        control_id: "C".into(),
                        explanation: "e".into(),
                        frequency: "monthly".into(),
                        status: if passed {
                            AttestationStatus::Passed
                        } else {
                            AttestationStatus::Failed
                        },
                        updated: "2026-01-01".into(),
                        updated_by: "me".into(),
                        extra: Map::new(),
                    }),
                    extra,
                }
            },
        )
}

fn profile() -> impl Strategy<Value = Profile> {
    (
        (
            "[a-z-]{1,12}",
            of(text()),
            "[0-9a-f]{64}",
            (of(text()), of(text()), of(text()), of(text())),
        ),
        (
            vec(of(text()), 0..2),
            vec(extra(), 0..2),
            vec((text(), vec(text(), 0..3)), 0..2),
        ),
        (of(text()), of(text()), of(vec(of(text()), 0..2))),
        vec(control(), 0..5),
        extra(),
    )
        .prop_map(
            |(
                (name, version, sha256, (title, maintainer, summary, license)),
                (supports, attributes, groups),
                (parent_profile, status, depends),
                controls,
                extra,
            )| {
                Profile {
                    name,
                    version,
                    sha256,
                    title,
                    maintainer,
                    summary,
                    license,
                    supports: supports
                        .into_iter()
                        .map(|f| SupportedPlatform {
                            platform_family: f,
                            ..Default::default()
                        })
                        .collect(),
                    attributes,
                    groups: groups
                        .into_iter()
                        .map(|(id, controls)| Group {
                            id,
                            controls,
                            ..Default::default()
                        })
                        .collect(),
                    parent_profile,
                    status,
                    depends: depends.map(|d| {
                        d.into_iter()
                            .map(|name| Dependency {
                                name,
                                ..Default::default()
                            })
                            .collect()
                    }),
                    controls,
                    extra,
                    ..Default::default()
                }
            },
        )
}

/// Executions with every kind of field filled or left out.
pub(crate) fn execution() -> impl Strategy<Value = Execution> {
    (
        text(),
        text(),
        of(text()),
        vec(profile(), 0..3),
        of(grid(1_000_000)),
        of((0u32..50, 0u32..50)),
        text(),
        extra(),
    )
        .prop_map(
            |(name, release, target_id, profiles, duration, stats, version, extra)| Execution {
                platform: Platform {
                    name,
                    release,
                    target_id,
                    extra: Map::new(),
                },
                profiles,
                statistics: Statistics {
                    duration,
                    controls: stats.map(|(p, f)| StatisticHash {
                        passed: Some(StatisticBlock {
                            total: p.into(),
                            extra: Map::new(),
                        }),
                        failed: Some(StatisticBlock {
                            total: f.into(),
                            extra: Map::new(),
                        }),
                        ..Default::default()
                    }),
                    extra: Map::new(),
                },
                version,
                extra,
            },
        )
}
