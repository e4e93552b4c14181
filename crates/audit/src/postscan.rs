//! The post-scan audit, run after teardown: the run's audit records are there and the chain
//! verifies; every object the run created answers 404 to a fresh GET; no credential artifact
//! of the run's tokens is left (file, environment variable, memfd, log line); and the target
//! pods show no side effect but the expected ephemeral container. The result is a list of
//! checks with evidence, the findings, an exit code, and a `keyhole-postscan` HDF profile.
//!
//! The crate makes no Kubernetes call: the caller passes the pod snapshots and a function that
//! does the fresh GETs.

use std::collections::BTreeSet;
use std::future::Future;

use jiff::Timestamp;
use keyhole_hdf::{Control, ControlResult, Execution, ResultStatus, SourceLocation};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::artifacts::{
    ArtifactKind, ArtifactScan, ArtifactScope, LogText, TokenFingerprint, scan_artifacts,
};
use crate::target::{TargetPair, diff};
use crate::{Event, ObjectRef, Record, VerifyReport};

/// The HDF profile name of post-scan results.
pub const PROFILE_NAME: &str = "keyhole-postscan";

/// Exit code of `keyhole scan` when a post-scan check other than cleanup fails (a credential
/// artifact, a side effect on the target, missing or broken audit records). Leftover objects
/// give `4` (cleanup incomplete), as a teardown that could not verify them does.
pub const EXIT_POSTSCAN_FAILED: i32 = 6;

/// Exit code for leftover objects (the same as an incomplete teardown).
pub const EXIT_LEFTOVERS: i32 = 4;

/// One post-scan check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckId {
    /// The run's records are in the audit log and its chain verifies.
    AuditLog,
    /// Every object the run created is gone (fresh GET → 404).
    Cleanup,
    /// No file holds a token of the run.
    CredentialFiles,
    /// No environment variable of this process holds a token of the run.
    CredentialEnv,
    /// No memfd of this process holds a token of the run, and none of keyhole's is open.
    CredentialMemfd,
    /// No log line of this process holds a token of the run.
    CredentialLogs,
    /// The target pods still exist, unreplaced, with their spec and metadata unchanged.
    TargetIdentity,
    /// No container of the target restarted during the scan.
    TargetRestarts,
    /// Container states, ids and readiness are unchanged.
    TargetContainers,
    /// The only ephemeral container added is the scan's own.
    TargetEphemeral,
    /// The pod's resourceVersion is unchanged, or changed only by the scan's own container.
    TargetResourceVersion,
}

/// What a check is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckGroup {
    /// The audit log.
    AuditLog,
    /// Objects left in the cluster.
    Cleanup,
    /// Credential artifacts.
    Credentials,
    /// Side effects on the target.
    Target,
}

impl CheckId {
    /// Every check, in report order.
    pub const ALL: [CheckId; 11] = [
        Self::AuditLog,
        Self::Cleanup,
        Self::CredentialFiles,
        Self::CredentialEnv,
        Self::CredentialMemfd,
        Self::CredentialLogs,
        Self::TargetIdentity,
        Self::TargetRestarts,
        Self::TargetContainers,
        Self::TargetEphemeral,
        Self::TargetResourceVersion,
    ];

    /// The kebab-case id (`cleanup`, `credential-files`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuditLog => "audit-log",
            Self::Cleanup => "cleanup",
            Self::CredentialFiles => "credential-files",
            Self::CredentialEnv => "credential-env",
            Self::CredentialMemfd => "credential-memfd",
            Self::CredentialLogs => "credential-logs",
            Self::TargetIdentity => "target-identity",
            Self::TargetRestarts => "target-restarts",
            Self::TargetContainers => "target-containers",
            Self::TargetEphemeral => "target-ephemeral",
            Self::TargetResourceVersion => "target-resource-version",
        }
    }

    /// One line on what the check proves.
    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            Self::AuditLog => "The run's records are in the audit log and its hash chain verifies",
            Self::Cleanup => "Every object the run created is gone (fresh GET answers 404)",
            Self::CredentialFiles => "No file written during the run holds the scoped token",
            Self::CredentialEnv => "No environment variable of the process holds the scoped token",
            Self::CredentialMemfd => {
                "No memfd of the process holds the scoped token or is still open"
            }
            Self::CredentialLogs => "No log line of the process holds the scoped token",
            Self::TargetIdentity => {
                "The target pod still exists, unreplaced, spec and metadata unchanged"
            }
            Self::TargetRestarts => "No container of the target restarted during the scan",
            Self::TargetContainers => {
                "The target's container states, ids and readiness are unchanged"
            }
            Self::TargetEphemeral => "The only ephemeral container added is the scan's own",
            Self::TargetResourceVersion => {
                "The pod's resourceVersion changed only by what the scan added"
            }
        }
    }

    /// The check's group.
    #[must_use]
    pub fn group(self) -> CheckGroup {
        match self {
            Self::AuditLog => CheckGroup::AuditLog,
            Self::Cleanup => CheckGroup::Cleanup,
            Self::CredentialFiles
            | Self::CredentialEnv
            | Self::CredentialMemfd
            | Self::CredentialLogs => CheckGroup::Credentials,
            _ => CheckGroup::Target,
        }
    }

    /// The HDF impact: leftover access and leaked tokens are critical, side effects high, the
    /// audit trail and a bare resourceVersion change medium.
    #[must_use]
    pub fn impact(self) -> f64 {
        match self {
            Self::Cleanup
            | Self::CredentialFiles
            | Self::CredentialEnv
            | Self::CredentialMemfd
            | Self::CredentialLogs => 0.9,
            Self::TargetIdentity
            | Self::TargetRestarts
            | Self::TargetContainers
            | Self::TargetEphemeral => 0.7,
            Self::AuditLog | Self::TargetResourceVersion => 0.5,
        }
    }
}

impl std::fmt::Display for CheckId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Checked, and fine.
    Passed,
    /// Checked, and a finding.
    Failed,
    /// Nothing to check (the reason is in the message), e.g. no token was ever minted.
    NotApplicable,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// The check.
    pub check: CheckId,
    /// What it found.
    pub outcome: Outcome,
    /// One sentence.
    pub message: String,
    /// The findings (on failure) or what was looked at (on success), one per line. Never a
    /// secret: places, names, counts.
    pub evidence: Vec<String>,
}

/// One finding, for the report and the terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The check that found it.
    pub check: CheckId,
    /// What, and where.
    pub detail: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "post-scan {}: {}", self.check, self.detail)
    }
}

/// An object a run created (or tried to), as the cleanup registry knew it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunObject {
    /// The run that created it.
    pub run_id: String,
    /// The object; `uid` is `None` for a creation whose answer was lost.
    pub object: ObjectRef,
    /// Whether the run's teardown deleted it (or found it already gone): the audit log must
    /// then hold its deletion.
    pub deleted_by_run: bool,
}

/// What a fresh GET of an object answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fresh {
    /// 404.
    Gone,
    /// An object of that name exists.
    Present {
        /// Its uid.
        uid: Option<String>,
        /// Its `keyhole.dev/run-id` label, if any.
        run_label: Option<String>,
        /// Whether it has a deletionTimestamp.
        terminating: bool,
    },
    /// Any other answer (403, 5xx, a timeout): the object's absence is not proven.
    Failed(String),
}

/// The audit log as read after the run, or why it could not be read or verified.
#[derive(Debug, Clone)]
pub struct VerifiedLog {
    /// Its whole text.
    pub text: String,
    /// The verification result.
    pub report: VerifyReport,
}

/// Everything the post-scan audit looks at.
#[derive(Debug, Clone)]
pub struct PostScan {
    /// The run ids of the scan (two for `auto` falling back to distroless).
    pub run_ids: Vec<String>,
    /// The objects the runs created, from their cleanup reports.
    pub objects: Vec<RunObject>,
    /// The audit log, read and verified after the run (`Err`: why that failed).
    pub audit_log: Result<VerifiedLog, String>,
    /// Fingerprints of every scoped token minted during the scan.
    pub tokens: Vec<TokenFingerprint>,
    /// Where to look for the tokens.
    pub artifacts: ArtifactScope,
    /// The target pods, before and after.
    pub targets: Vec<TargetPair>,
}

/// The post-scan audit's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PostScanReport {
    /// Every check, in [`CheckId::ALL`] order.
    pub checks: Vec<CheckResult>,
}

impl PostScanReport {
    /// Every finding of every failed check.
    #[must_use]
    pub fn findings(&self) -> Vec<Finding> {
        self.checks
            .iter()
            .filter(|c| c.outcome == Outcome::Failed)
            .flat_map(|c| {
                let lines = if c.evidence.is_empty() {
                    vec![c.message.clone()]
                } else {
                    c.evidence.clone()
                };
                lines.into_iter().map(move |detail| Finding {
                    check: c.check,
                    detail,
                })
            })
            .collect()
    }

    /// Whether every check passed (or had nothing to check).
    #[must_use]
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.outcome != Outcome::Failed)
    }

    /// The result of `check`.
    #[must_use]
    pub fn get(&self, check: CheckId) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.check == check)
    }

    /// Whether `check` failed.
    #[must_use]
    pub fn failed(&self, check: CheckId) -> bool {
        self.get(check)
            .is_some_and(|c| c.outcome == Outcome::Failed)
    }

    /// The exit code the audit imposes: [`EXIT_LEFTOVERS`] when an object is left,
    /// [`EXIT_POSTSCAN_FAILED`] when another check failed, `None` when all passed.
    #[must_use]
    pub fn exit_code(&self) -> Option<i32> {
        if self.failed(CheckId::Cleanup) {
            Some(EXIT_LEFTOVERS)
        } else if !self.passed() {
            Some(EXIT_POSTSCAN_FAILED)
        } else {
            None
        }
    }

    /// The audit log's record of this report ([`crate::Event::PostScanAudited`]).
    #[must_use]
    pub fn to_event(&self) -> crate::Event {
        crate::Event::PostScanAudited {
            checks: u32::try_from(self.checks.len()).unwrap_or(u32::MAX),
            findings: self.findings().iter().map(ToString::to_string).collect(),
            exit_code: self.exit_code().unwrap_or(0),
        }
    }

    /// The result as an HDF execution with one profile, `keyhole-postscan`, one control per
    /// check (`postscan-<check>`). `target_id` names the target (`pod/NS/NAME`).
    #[must_use]
    pub fn to_hdf(&self, target_id: &str, now: Timestamp) -> Execution {
        let start = now.to_string();
        let mut p = keyhole_hdf::Profile::keyhole_checks(
            PROFILE_NAME,
            profile_sha256(),
            env!("CARGO_PKG_VERSION"),
            "Keyhole post-scan audit",
            "After teardown: audit records, cleanup re-verified with fresh GETs, no credential artifact, no side effect on the target",
        );
        for (group, title) in [
            (CheckGroup::AuditLog, "Audit log"),
            (CheckGroup::Cleanup, "Cleanup"),
            (CheckGroup::Credentials, "Credential artifacts"),
            (CheckGroup::Target, "Side effects on the target"),
        ] {
            let controls = self
                .checks
                .iter()
                .filter(|c| c.check.group() == group)
                .map(|c| control_id(c.check))
                .collect();
            p.push_group(group_name(group), title, controls);
        }
        for c in &self.checks {
            p.controls.push(hdf_control(c, &start));
        }
        Execution::kubernetes_checks(target_id, env!("CARGO_PKG_VERSION"), p)
    }
}

fn control_id(c: CheckId) -> String {
    format!("postscan-{c}")
}

fn group_name(g: CheckGroup) -> &'static str {
    match g {
        CheckGroup::AuditLog => "audit-log",
        CheckGroup::Cleanup => "cleanup",
        CheckGroup::Credentials => "credentials",
        CheckGroup::Target => "target",
    }
}

/// The profile's checksum: SHA-256 of its control ids and titles (it changes when a check
/// does).
fn profile_sha256() -> String {
    let mut h = Sha256::new();
    for c in CheckId::ALL {
        h.update(c.as_str());
        h.update([0]);
        h.update(c.title());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

fn hdf_control(c: &CheckResult, start: &str) -> Control {
    let mut control = Control::new(control_id(c.check), c.check.impact());
    control.title = Some(c.check.title().into());
    control.desc = Some(c.check.title().into());
    let mut tags = Map::new();
    tags.insert(
        "severity".into(),
        Value::from(keyhole_hdf::Severity::from_impact(c.check.impact()).as_str()),
    );
    tags.insert("group".into(), Value::from(group_name(c.check.group())));
    control.tags = tags;
    control.source_location = SourceLocation {
        reference: Some(PROFILE_NAME.into()),
        ..Default::default()
    };
    let text = if c.evidence.is_empty() {
        c.message.clone()
    } else {
        format!("{} ({})", c.message, c.evidence.join("; "))
    };
    let mut r = match c.outcome {
        Outcome::Passed => {
            let mut r = ControlResult::new(ResultStatus::Passed, c.check.title(), start);
            r.message = Some(text);
            r
        }
        Outcome::Failed => {
            let mut r = ControlResult::new(ResultStatus::Failed, c.check.title(), start);
            r.message = Some(text);
            r
        }
        Outcome::NotApplicable => {
            let mut r = ControlResult::new(ResultStatus::Skipped, c.check.title(), start);
            r.skip_message = Some(text);
            r
        }
    };
    r.resource = Some("postscan".into());
    r.resource_id = Some(c.check.as_str().into());
    control.results = vec![r];
    control
}

fn result(check: CheckId, failures: Vec<String>, ok: String, evidence: Vec<String>) -> CheckResult {
    if failures.is_empty() {
        CheckResult {
            check,
            outcome: Outcome::Passed,
            message: ok,
            evidence,
        }
    } else {
        CheckResult {
            check,
            outcome: Outcome::Failed,
            message: format!("{} finding(s)", failures.len()),
            evidence: failures,
        }
    }
}

fn na(check: CheckId, why: &str) -> CheckResult {
    CheckResult {
        check,
        outcome: Outcome::NotApplicable,
        message: why.into(),
        evidence: Vec::new(),
    }
}

fn same_slot(a: &ObjectRef, b: &ObjectRef) -> bool {
    a.kind == b.kind && a.namespace == b.namespace && a.name == b.name
}

fn show(o: &ObjectRef) -> String {
    format!("{} {}/{}", o.kind, o.namespace, o.name)
}

/// The run's records, parsed from the log text (lines of other runs are skipped).
fn run_records(text: &str, run_ids: &[String]) -> Result<Vec<Record>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let r: Record = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        if run_ids.contains(&r.run_id) {
            out.push(r);
        }
    }
    Ok(out)
}

fn check_audit_log(input: &PostScan, records: &Result<Vec<Record>, String>) -> CheckResult {
    let log = match &input.audit_log {
        Ok(l) => l,
        Err(why) => {
            return result(
                CheckId::AuditLog,
                vec![format!("the audit log does not verify: {why}")],
                String::new(),
                Vec::new(),
            );
        }
    };
    let records = match records {
        Ok(r) => r,
        Err(why) => {
            return result(
                CheckId::AuditLog,
                vec![format!("the audit log cannot be read: {why}")],
                String::new(),
                Vec::new(),
            );
        }
    };
    let mut missing = Vec::new();
    for id in &input.run_ids {
        let mine: Vec<&Event> = records
            .iter()
            .filter(|r| &r.run_id == id)
            .map(|r| &r.event)
            .collect();
        let has = |p: &dyn Fn(&Event) -> bool| mine.iter().any(|e| p(e));
        if !has(&|e| matches!(e, Event::RunStarted { .. })) {
            missing.push(format!("run {id}: no run_started record"));
        }
        if !has(&|e| matches!(e, Event::CleanupVerified { .. })) {
            missing.push(format!("run {id}: no cleanup_verified record"));
        }
        if !has(&|e| matches!(e, Event::RunEnded { .. })) {
            missing.push(format!("run {id}: no run_ended record"));
        }
        for o in input.objects.iter().filter(|o| &o.run_id == id) {
            if o.object.uid.is_some()
                && !has(&|e| matches!(e, Event::ObjectCreated(c) if same_slot(c, &o.object)))
            {
                missing.push(format!(
                    "run {id}: no object_created record for {}",
                    show(&o.object)
                ));
            }
            if o.deleted_by_run
                && !has(&|e| matches!(e, Event::ObjectDeleted(c) if same_slot(c, &o.object)))
            {
                missing.push(format!(
                    "run {id}: no object_deleted record for {}",
                    show(&o.object)
                ));
            }
        }
    }
    result(
        CheckId::AuditLog,
        missing,
        format!(
            "{} record(s) of {} run(s) present; the chain of {} record(s) verifies",
            records.len(),
            input.run_ids.len(),
            log.report.records
        ),
        vec![format!("head {}", log.report.head)],
    )
}

/// Every object to re-check: the cleanup reports' and the audit log's (a creation the log
/// records but the registry lost is checked too).
fn objects_to_check(
    input: &PostScan,
    records: &Result<Vec<Record>, String>,
) -> Vec<(String, ObjectRef)> {
    let mut out: Vec<(String, ObjectRef)> = Vec::new();
    let mut push = |run: &str, o: &ObjectRef| match out.iter_mut().find(|(_, x)| same_slot(x, o)) {
        Some((_, x)) => {
            if x.uid.is_none() {
                x.uid.clone_from(&o.uid);
            }
        }
        None => out.push((run.to_owned(), o.clone())),
    };
    for o in &input.objects {
        push(&o.run_id, &o.object);
    }
    if let Ok(records) = records {
        for r in records {
            if let Event::ObjectCreated(o) = &r.event {
                push(&r.run_id, o);
            }
        }
    }
    out
}

async fn check_cleanup<F, Fut>(objects: &[(String, ObjectRef)], mut get: F) -> CheckResult
where
    F: FnMut(ObjectRef) -> Fut,
    Fut: Future<Output = Fresh>,
{
    if objects.is_empty() {
        return na(CheckId::Cleanup, "the run created no object");
    }
    let mut left = Vec::new();
    let mut seen = Vec::new();
    for (run, o) in objects {
        match get(o.clone()).await {
            Fresh::Gone => seen.push(format!("{}: 404", show(o))),
            Fresh::Present {
                uid,
                run_label,
                terminating,
            } => {
                let same_uid = o.uid.is_some() && uid == o.uid;
                let our_label = run_label.as_deref() == Some(run.as_str());
                if same_uid || our_label {
                    left.push(format!(
                        "{} is still present{} (uid {})",
                        show(o),
                        if terminating { ", terminating" } else { "" },
                        uid.as_deref().unwrap_or("?")
                    ));
                } else {
                    seen.push(format!(
                        "{}: the name belongs to another object (uid {}, not this run's)",
                        show(o),
                        uid.as_deref().unwrap_or("?")
                    ));
                }
            }
            Fresh::Failed(why) => left.push(format!("{}: not proven gone ({why})", show(o))),
        }
    }
    result(
        CheckId::Cleanup,
        left,
        format!("{} object(s) re-read: all gone", objects.len()),
        seen,
    )
}

/// What was not searched, as evidence: the first few places and a count of the rest (a large
/// temp dir must not turn one control's message into megabytes).
fn capped(unchecked: &[String]) -> Vec<String> {
    const SHOWN: usize = 20;
    let mut out: Vec<String> = unchecked
        .iter()
        .take(SHOWN)
        .map(|u| format!("not searched: {u}"))
        .collect();
    if unchecked.len() > SHOWN {
        out.push(format!(
            "not searched: {} more place(s)",
            unchecked.len() - SHOWN
        ));
    }
    out
}

fn artifact_checks(input: &PostScan) -> Vec<CheckResult> {
    let ids = [
        CheckId::CredentialFiles,
        CheckId::CredentialEnv,
        CheckId::CredentialMemfd,
        CheckId::CredentialLogs,
    ];
    if input.tokens.is_empty() {
        return ids
            .into_iter()
            .map(|c| na(c, "no scoped token was minted during the scan"))
            .collect();
    }
    let mut scope = input.artifacts.clone();
    if let Ok(log) = &input.audit_log {
        scope.logs.push(LogText {
            location: "audit log".into(),
            text: log.text.as_bytes().to_vec(),
        });
    }
    let scan: ArtifactScan = scan_artifacts(&input.tokens, &scope);
    let found = |kind: ArtifactKind| -> Vec<String> {
        scan.found
            .iter()
            .filter(|a| a.kind == kind)
            .map(|a| format!("token {} ({}) in {}", a.token, a.encoding, a.location))
            .collect()
    };
    let n = input.tokens.len();
    let mut files = found(ArtifactKind::File);
    // What could not be searched is evidence, not a finding: the check says what it covered.
    let mut files_ev = vec![format!(
        "{} file(s) changed during the run searched under {}",
        scan.files_read,
        scope
            .roots
            .iter()
            .map(|r| r.display().to_string())
            .chain(scope.files.iter().map(|f| f.display().to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    )];
    files_ev.extend(capped(&scan.unchecked_files));
    files.dedup();
    let mut memfd = found(ArtifactKind::Memfd);
    memfd.extend(
        scan.keyhole_memfds
            .iter()
            .map(|m| format!("{m} is still open after teardown")),
    );
    let mut memfd_ev = vec![format!(
        "{} memfd(s) and open deleted file(s) searched",
        scan.memfds
    )];
    memfd_ev.extend(capped(&scan.unchecked_fds));
    vec![
        result(
            CheckId::CredentialFiles,
            files,
            format!("none of {n} token(s) found in a file"),
            files_ev,
        ),
        result(
            CheckId::CredentialEnv,
            found(ArtifactKind::EnvVar),
            format!("none of {n} token(s) found in the environment"),
            vec![format!("{} variable(s) searched", scan.env_vars)],
        ),
        result(
            CheckId::CredentialMemfd,
            memfd,
            format!("none of {n} token(s) found in a memfd; no keyhole memfd open"),
            memfd_ev,
        ),
        result(
            CheckId::CredentialLogs,
            found(ArtifactKind::Log),
            format!("none of {n} token(s) found in the logs"),
            vec![format!(
                "{} log byte(s) searched ({})",
                scan.log_bytes,
                scope
                    .logs
                    .iter()
                    .map(|l| format!("{}: {}", l.location, l.text.len()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )],
        ),
    ]
}

fn target_checks(targets: &[TargetPair]) -> Vec<CheckResult> {
    let ids = [
        CheckId::TargetIdentity,
        CheckId::TargetRestarts,
        CheckId::TargetContainers,
        CheckId::TargetEphemeral,
        CheckId::TargetResourceVersion,
    ];
    if targets.is_empty() {
        return ids.into_iter().map(|c| na(c, "no target pod")).collect();
    }
    let (mut identity, mut restarts, mut containers, mut ephemeral, mut rv) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut ephemeral_notes, mut rv_notes, mut unread) = (Vec::new(), Vec::new(), Vec::new());
    for t in targets {
        let (before, after) = match (&t.before, &t.after) {
            (Ok(b), Ok(a)) => (b, a.as_ref()),
            (Err(why), _) | (_, Err(why)) => {
                // Nothing to compare: every comparison of this pod fails rather than passes
                // on nothing.
                let when = if t.before.is_err() { "before" } else { "after" };
                identity.push(format!("{}: not read {when} the scan ({why})", t.pod));
                unread.push(format!(
                    "{}: not compared (not read {when} the scan)",
                    t.pod
                ));
                continue;
            }
        };
        let d = diff(before, after, &t.expected_ephemeral);
        identity.extend(d.identity);
        restarts.extend(d.restarts);
        containers.extend(d.containers);
        ephemeral.extend(d.ephemeral);
        rv.extend(d.resource_version);
        ephemeral_notes.extend(d.ephemeral_notes);
        rv_notes.extend(d.rv_notes);
    }
    let n = targets.len();
    let pods: Vec<String> = targets.iter().map(|t| t.pod.clone()).collect();
    let mut out = vec![result(
        CheckId::TargetIdentity,
        identity,
        format!("{n} pod(s) unreplaced, spec and metadata unchanged"),
        pods.clone(),
    )];
    for (id, mut found, ok, evidence) in [
        (
            CheckId::TargetRestarts,
            restarts,
            "no restart during the scan",
            pods.clone(),
        ),
        (
            CheckId::TargetContainers,
            containers,
            "container states unchanged",
            pods.clone(),
        ),
        (
            CheckId::TargetEphemeral,
            ephemeral,
            "no unexpected ephemeral container",
            ephemeral_notes,
        ),
        (
            CheckId::TargetResourceVersion,
            rv,
            "resourceVersion unchanged or changed only by the scan's own container",
            rv_notes,
        ),
    ] {
        found.extend(unread.iter().cloned());
        out.push(result(id, found, ok.into(), evidence));
    }
    out
}

impl PostScan {
    /// Runs every check. `get` does one fresh GET (with the user's credentials) of an object;
    /// it is called once per object the run created, after teardown.
    pub async fn run<F, Fut>(self, get: F) -> PostScanReport
    where
        F: FnMut(ObjectRef) -> Fut,
        Fut: Future<Output = Fresh>,
    {
        let records = match &self.audit_log {
            Ok(l) => run_records(&l.text, &self.run_ids),
            Err(e) => Err(e.clone()),
        };
        let mut checks = vec![check_audit_log(&self, &records)];
        let objects = objects_to_check(&self, &records);
        checks.push(check_cleanup(&objects, get).await);
        checks.extend(artifact_checks(&self));
        checks.extend(target_checks(&self.targets));
        let ids: BTreeSet<CheckId> = checks.iter().map(|c| c.check).collect();
        debug_assert_eq!(ids.len(), CheckId::ALL.len(), "one result per check");
        checks.sort_by_key(|c| c.check);
        PostScanReport { checks }
    }
}
