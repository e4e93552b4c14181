//! The fixture run the tests report on: `fixtures/samples/sample-exec.json` (six controls of
//! mixed status and impact) judged against `threshold-fail-compliance.yaml`, with hand-written
//! pre-scan and post-scan findings, objects and token times.

use std::path::PathBuf;

use keyhole_core::{ContainerName, Created, Namespace, ObjectKind, PodName, RunId, ScanMode};
use keyhole_hdf::{Control, ControlResult, Execution, Profile, ResultStatus, Threshold};
use keyhole_report::{ObjectRecord, RunSummary, Target, ThresholdSpec, TokenLifetime};

/// The repository's `fixtures/` (sources in `fixtures/README.md`).
pub(crate) fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// The text of `fixtures/<relative>`.
pub(crate) fn read_fixture(relative: &str) -> String {
    let path = fixtures_dir().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The sample execution.
pub(crate) fn sample_exec() -> Execution {
    Execution::from_json_str(&read_fixture("samples/sample-exec.json")).expect("sample is HDF")
}

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().expect("RFC 3339")
}

fn check(
    id: &str,
    title: &str,
    impact: f64,
    status: ResultStatus,
    desc: &str,
    msg: Option<&str>,
) -> Control {
    let mut c = Control::new(id, impact);
    c.title = Some(title.to_owned());
    let mut r = ControlResult::new(status, desc, "2026-11-26T12:59:58Z");
    r.message = msg.map(str::to_owned);
    c.results.push(r);
    c
}

/// Pre-scan findings: image pinned by digest (passed), added capability NET_RAW (failed, a
/// warning under the default policy).
pub(crate) fn precheck() -> Profile {
    let mut p = Profile::new(keyhole_report::PRECHECK_PROFILE, "0");
    p.controls.push(check(
        "image-digest",
        "Image is referenced by digest",
        0.7,
        ResultStatus::Passed,
        "image digest equals the running imageID",
        None,
    ));
    p.controls.push(check(
        "capabilities-added",
        "No dangerous capability is added",
        0.5,
        ResultStatus::Failed,
        "container app adds no dangerous capability",
        Some("adds NET_RAW"),
    ));
    p
}

/// Post-scan findings: all clean.
pub(crate) fn postscan() -> Profile {
    let mut p = Profile::new(keyhole_report::POSTSCAN_PROFILE, "0");
    p.controls.push(check(
        "cleanup-verified",
        "Every created object is gone",
        0.9,
        ResultStatus::Passed,
        "fresh GETs of 4 objects return 404",
        None,
    ));
    p.controls.push(check(
        "no-credential-artifact",
        "No credential artifact is left",
        0.9,
        ResultStatus::Passed,
        "no file, environment variable, memfd or log line holds the token",
        None,
    ));
    p
}

fn object(kind: ObjectKind, name: &str, created: &str, deleted: Option<&str>) -> ObjectRecord {
    ObjectRecord {
        object: Created {
            kind,
            namespace: "scan-target".into(),
            name: name.into(),
            uid: Some(format!("uid-{name}")),
        },
        created_at: ts(created),
        deleted_at: deleted.map(ts),
    }
}

/// The fixture run's summary.
pub(crate) fn summary() -> RunSummary {
    RunSummary {
        run_id: RunId::parse("kx7q2m9d4a").unwrap(),
        tool_version: "0.0.0-test".into(),
        targets: vec![Target {
            namespace: Namespace::new("scan-target").unwrap(),
            pod: PodName::new("target-pod").unwrap(),
            container: Some(ContainerName::new("app").unwrap()),
        }],
        mode: ScanMode::Standard,
        started_at: ts("2026-11-26T12:59:50Z"),
        finished_at: ts("2026-11-26T13:00:07Z"),
        threshold: Some(ThresholdSpec {
            source: "threshold-fail-compliance.yaml".into(),
            threshold: Threshold::from_yaml_str(&read_fixture(
                "samples/threshold-fail-compliance.yaml",
            ))
            .unwrap(),
        }),
        aborted: None,
        objects: vec![
            object(
                ObjectKind::ServiceAccount,
                "keyhole-kx7q2m9d4a",
                "2026-11-26T12:59:52Z",
                Some("2026-11-26T13:00:05Z"),
            ),
            object(
                ObjectKind::Secret,
                "keyhole-kx7q2m9d4a-anchor",
                "2026-11-26T12:59:52Z",
                Some("2026-11-26T13:00:05Z"),
            ),
            object(
                ObjectKind::Role,
                "keyhole-kx7q2m9d4a",
                "2026-11-26T12:59:53Z",
                Some("2026-11-26T13:00:06Z"),
            ),
            object(
                ObjectKind::RoleBinding,
                "keyhole-kx7q2m9d4a",
                "2026-11-26T12:59:53Z",
                Some("2026-11-26T13:00:06Z"),
            ),
        ],
        token: Some(TokenLifetime {
            issued_at: ts("2026-11-26T12:59:54Z"),
            expires_at: ts("2026-11-26T13:09:54Z"),
            revoked_at: Some(ts("2026-11-26T13:00:05Z")),
        }),
        precheck: Some(precheck()),
        postscan: Some(postscan()),
    }
}

/// The sample execution with control C2's title and evidence replaced by hostile markup.
pub(crate) fn hostile_exec() -> Execution {
    let mut exec = sample_exec();
    let c2 = exec.profiles[0]
        .controls
        .iter_mut()
        .find(|c| c.id == "C2")
        .unwrap();
    c2.title = Some(HOSTILE_TITLE.to_owned());
    for r in &mut c2.results {
        r.code_desc = HOSTILE_EVIDENCE.to_owned();
        r.message = Some("\"><svg onload=document.body.setAttribute('data-pwned','2')>".to_owned());
    }
    exec
}

/// A control title an attacker controlling the target's files might produce.
pub(crate) const HOSTILE_TITLE: &str =
    "<script>alert(1)</script><script>document.body.setAttribute('data-pwned','1')</script>";
/// Evidence text with an event-handler injection.
pub(crate) const HOSTILE_EVIDENCE: &str =
    "<img src=x onerror=\"document.body.setAttribute('data-pwned','3')\">";
