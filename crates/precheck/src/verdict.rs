//! The verdict: every check's outcome with its evidence, the decision, and the HDF profile.

use jiff::Timestamp;
use keyhole_hdf::{Control, ControlResult, Execution, ResultStatus, SourceLocation};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::policy::{Action, Policy};
use crate::{CheckGroup, CheckId};

/// The HDF profile name of pre-scan results.
pub const PROFILE_NAME: &str = "keyhole-precheck";

/// Exit code of `keyhole scan` when the pre-scan verdict aborts (distinct from a failed
/// threshold).
pub const EXIT_PRECHECK_ABORT: i32 = 5;

/// One fact a check looked at: a field of the pod (or a socket) and its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// Where the value is, e.g. `spec.containers[0].securityContext.privileged`, or
    /// `/proc/net/tcp` for a socket.
    pub path: String,
    /// The value found, or what its absence means (`unset (defaults to true)`).
    pub value: String,
}

impl Evidence {
    pub(crate) fn new(path: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            value: value.into(),
        }
    }
}

/// The outcome of one check on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The target satisfies the check.
    Passed,
    /// The target fails the check.
    Failed,
    /// The check has nothing to judge (the reason is in the message), e.g. network facts not
    /// gathered yet, or no target.
    NotApplicable,
}

/// One check's result: outcome, the policy's action for it, a message and the evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// The check.
    pub check: CheckId,
    /// What the check found.
    pub outcome: Outcome,
    /// What the policy does with a failure of this check.
    pub action: Action,
    /// One sentence on the outcome.
    pub message: String,
    /// The fields looked at and their values.
    pub evidence: Vec<Evidence>,
}

impl CheckResult {
    pub(crate) fn new(
        check: CheckId,
        outcome: Outcome,
        policy: &Policy,
        message: impl Into<String>,
        evidence: Vec<Evidence>,
    ) -> Self {
        Self {
            check,
            outcome,
            action: policy.action(check),
            message: message.into(),
            evidence,
        }
    }

    /// Whether this result counts as a failure (failed and not ignored by the policy).
    #[must_use]
    pub fn is_failure(&self) -> bool {
        self.outcome == Outcome::Failed && self.action != Action::Ignore
    }
}

/// Whether the scan may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// No check whose action is `abort` failed.
    Proceed,
    /// At least one check whose action is `abort` failed: create nothing, exit
    /// [`EXIT_PRECHECK_ABORT`].
    Abort,
}

/// What was checked: the target as read, with the facts recorded for the post-scan audit.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct TargetInfo {
    /// Namespace of the pod.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container name.
    pub container: String,
    /// Pod uid, when the pod exists.
    pub uid: Option<String>,
    /// Pod `resourceVersion` as read (compare after the scan).
    pub resource_version: Option<String>,
    /// Node the pod runs on.
    pub node: Option<String>,
    /// Pod phase.
    pub phase: Option<String>,
    /// Image as the spec names it.
    pub image: Option<String>,
    /// Running image id as the container status reports it.
    pub image_id: Option<String>,
    /// Container restart count.
    pub restart_count: Option<i32>,
    /// When the running container started (RFC 3339), from `state.running.startedAt`.
    pub started_at: Option<String>,
}

/// The pre-scan verdict: every check's result and the decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// The target as read.
    pub target: TargetInfo,
    /// Every check, in [`CheckId::ALL`] order.
    pub checks: Vec<CheckResult>,
    /// Whether the scan may go on.
    pub decision: Decision,
    /// SHA-256 of the policy that judged ([`Policy::sha256`]).
    pub policy_sha256: String,
}

impl Verdict {
    pub(crate) fn new(target: TargetInfo, mut checks: Vec<CheckResult>, policy: &Policy) -> Self {
        checks.sort_by_key(|c| c.check);
        let mut v = Self {
            target,
            checks,
            decision: Decision::Proceed,
            policy_sha256: policy.sha256().to_owned(),
        };
        v.decide();
        v
    }

    fn decide(&mut self) {
        self.decision = if self
            .checks
            .iter()
            .any(|c| c.is_failure() && c.action == Action::Abort)
        {
            Decision::Abort
        } else {
            Decision::Proceed
        };
    }

    /// Replaces (or adds) the results of the given checks and decides again: the network
    /// checks are judged from the scan's facts after the pod checks.
    pub fn merge(&mut self, results: impl IntoIterator<Item = CheckResult>) {
        for r in results {
            match self.checks.iter_mut().find(|c| c.check == r.check) {
                Some(slot) => *slot = r,
                None => self.checks.push(r),
            }
        }
        self.checks.sort_by_key(|c| c.check);
        self.decide();
    }

    /// Failed checks that count (action `warn` or `abort`), with their evidence.
    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| c.is_failure())
    }

    /// The result of `check`, if it is in the verdict.
    #[must_use]
    pub fn get(&self, check: CheckId) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.check == check)
    }

    /// Whether the scan must stop.
    #[must_use]
    pub fn aborts(&self) -> bool {
        self.decision == Decision::Abort
    }

    /// The exit code the verdict imposes: [`EXIT_PRECHECK_ABORT`] on abort, else `None`.
    #[must_use]
    pub fn exit_code(&self) -> Option<i32> {
        self.aborts().then_some(EXIT_PRECHECK_ABORT)
    }

    /// The verdict as an HDF execution holding one profile, `keyhole-precheck`, whose controls
    /// are the checks (`precheck-<check id>`): impact by severity, `passed` or `failed`, and
    /// `skipped` for checks the policy ignores or that had nothing to judge. `now` is the
    /// results' start time.
    #[must_use]
    pub fn to_hdf(&self, now: Timestamp) -> Execution {
        let start = now.to_string();
        let t = &self.target;
        let decision = match self.decision {
            Decision::Proceed => "proceed",
            Decision::Abort => "abort",
        };
        let mut p = keyhole_hdf::Profile::keyhole_checks(
            PROFILE_NAME,
            self.policy_sha256.clone(),
            env!("CARGO_PKG_VERSION"),
            "Keyhole pre-scan verification",
            format!(
                "Target integrity, privileged status, image source and network connections; decision: {decision}"
            ),
        );
        for group in [
            CheckGroup::Integrity,
            CheckGroup::Privilege,
            CheckGroup::Image,
            CheckGroup::Network,
        ] {
            let ids = self
                .checks
                .iter()
                .filter(|c| c.check.group() == group)
                .map(|c| control_id(c.check))
                .collect();
            p.push_group(group_name(group), group_title(group), ids);
        }
        for c in &self.checks {
            p.controls.push(hdf_control(c, &start));
        }
        Execution::kubernetes_checks(
            format!("pod/{}/{}/{}", t.namespace, t.pod, t.container),
            env!("CARGO_PKG_VERSION"),
            p,
        )
    }
}

fn control_id(check: CheckId) -> String {
    format!("precheck-{check}")
}

fn group_name(g: CheckGroup) -> &'static str {
    match g {
        CheckGroup::Integrity => "integrity",
        CheckGroup::Privilege => "privilege",
        CheckGroup::Image => "image",
        CheckGroup::Network => "network",
    }
}

fn group_title(g: CheckGroup) -> &'static str {
    match g {
        CheckGroup::Integrity => "Target integrity",
        CheckGroup::Privilege => "Privileged status",
        CheckGroup::Image => "Image source",
        CheckGroup::Network => "Network connections",
    }
}

fn hdf_control(c: &CheckResult, start: &str) -> Control {
    let sev = c.check.severity();
    let mut control = Control::new(control_id(c.check), sev.impact());
    control.title = Some(c.check.title().into());
    control.desc = Some(c.check.title().into());
    let mut tags = Map::new();
    tags.insert("severity".into(), Value::from(sev.as_str()));
    tags.insert("group".into(), Value::from(group_name(c.check.group())));
    tags.insert(
        "action".into(),
        Value::from(match c.action {
            Action::Abort => "abort",
            Action::Warn => "warn",
            Action::Ignore => "ignore",
        }),
    );
    control.tags = tags;
    control.source_location = SourceLocation {
        reference: Some(PROFILE_NAME.into()),
        ..Default::default()
    };
    let evidence = c
        .evidence
        .iter()
        .map(|e| format!("{} = {}", e.path, e.value))
        .collect::<Vec<_>>()
        .join("; ");
    let text = if evidence.is_empty() {
        c.message.clone()
    } else {
        format!("{} ({evidence})", c.message)
    };
    let mut r = match (c.outcome, c.action) {
        (_, Action::Ignore) => {
            let mut r = ControlResult::new(ResultStatus::Skipped, c.check.title(), start);
            r.skip_message = Some(format!("ignored by the policy: {text}"));
            r
        }
        (Outcome::NotApplicable, _) => {
            let mut r = ControlResult::new(ResultStatus::Skipped, c.check.title(), start);
            r.skip_message = Some(text);
            r
        }
        (Outcome::Passed, _) => {
            let mut r = ControlResult::new(ResultStatus::Passed, c.check.title(), start);
            r.message = Some(text);
            r
        }
        (Outcome::Failed, _) => {
            let mut r = ControlResult::new(ResultStatus::Failed, c.check.title(), start);
            r.message = Some(text);
            r
        }
    };
    r.resource = Some("precheck".into());
    r.resource_id = Some(c.check.as_str().into());
    control.results = vec![r];
    control
}
