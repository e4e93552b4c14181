//! The pod checks: integrity, privileged status and image source, from the Pod object alone.
//!
//! Security contexts are read the way the kubelet applies them: a container's field overrides
//! the pod's field of the same name (`runAsUser`, `runAsNonRoot`, `seccompProfile`,
//! `appArmorProfile`); `privileged`, `allowPrivilegeEscalation`, `capabilities` and
//! `procMount` exist on the container only.

use k8s_openapi::api::core::v1::{
    Container, ContainerStatus, Pod, PodSecurityContext, SecurityContext,
};

use crate::CheckId;
use crate::image::{ImageName, image_id_digest, is_sha256_digest};
use crate::policy::Policy;
use crate::verdict::{CheckResult, Evidence, Outcome, TargetInfo, Verdict};

/// Where the network checks stand before the scan's facts are merged.
const NETWORK_PENDING: &str =
    "not judged yet: the network checks need the scan's socket tables (Verdict::merge)";

/// Evaluates every pod check of `container` in `pod` under `policy`. Pure: no IO, never
/// panics. The network checks are `not-applicable` until [`Verdict::merge`] adds
/// [`crate::check_network`]'s results.
#[must_use]
pub fn evaluate(pod: &Pod, container: &str, policy: &Policy) -> Verdict {
    let meta = &pod.metadata;
    let namespace = meta.namespace.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let index = spec.and_then(|s| s.containers.iter().position(|c| c.name == container));
    let (Some(spec), Some(i)) = (spec, index) else {
        let names = spec
            .map(|s| {
                s.containers
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        return missing_verdict(
            TargetInfo {
                namespace,
                pod: name,
                container: container.to_owned(),
                uid: meta.uid.clone(),
                resource_version: meta.resource_version.clone(),
                ..TargetInfo::default()
            },
            &format!("the pod has no container `{container}`"),
            vec![Evidence::new(
                "spec.containers[*].name",
                format!("[{names}]"),
            )],
            policy,
        );
    };
    let c = &spec.containers[i];
    let status = pod.status.as_ref();
    let statuses = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    let cs = statuses
        .iter()
        .enumerate()
        .find(|(_, s)| s.name == container);
    let target = TargetInfo {
        namespace,
        pod: name,
        container: container.to_owned(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        node: spec.node_name.clone(),
        phase: status.and_then(|s| s.phase.clone()),
        image: c.image.clone(),
        image_id: cs
            .map(|(_, s)| s.image_id.clone())
            .filter(|s| !s.is_empty()),
        restart_count: cs.map(|(_, s)| s.restart_count),
        started_at: cs
            .and_then(|(_, s)| s.state.as_ref()?.running.as_ref()?.started_at.as_ref())
            .map(|t| t.0.to_string()),
    };
    let ctx = Ctx {
        pod,
        c,
        i,
        psc: spec.security_context.as_ref(),
        sc: c.security_context.as_ref(),
        cs,
        policy,
    };
    let mut checks = vec![
        CheckResult::new(
            CheckId::TargetExists,
            Outcome::Passed,
            policy,
            "the pod exists and has the container",
            vec![Evidence::new(
                format!("spec.containers[{i}].name"),
                container,
            )],
        ),
        ctx.running(),
        ctx.ready(),
        ctx.restarts(),
        ctx.digest_match(),
        ctx.privileged(),
        ctx.escalation(),
        ctx.capabilities(),
        ctx.host_ns(CheckId::HostPid, "hostPID", spec.host_pid),
        ctx.host_ns(CheckId::HostNetwork, "hostNetwork", spec.host_network),
        ctx.host_ns(CheckId::HostIpc, "hostIPC", spec.host_ipc),
        ctx.host_path(),
        ctx.run_as_root(),
        ctx.proc_mount(),
        ctx.seccomp(),
        ctx.apparmor(),
        ctx.image_source(),
        ctx.image_pinned(),
    ];
    checks.extend(network_pending(policy));
    Verdict::new(target, checks, policy)
}

/// The verdict for a pod that does not exist (`fetch` found none): `target-exists` fails
/// (always an abort), every other check has nothing to judge.
#[must_use]
pub fn evaluate_missing(namespace: &str, pod: &str, container: &str, policy: &Policy) -> Verdict {
    missing_verdict(
        TargetInfo {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            container: container.to_owned(),
            ..TargetInfo::default()
        },
        "the pod does not exist",
        vec![Evidence::new(
            format!("pods/{namespace}/{pod}"),
            "404 Not Found",
        )],
        policy,
    )
}

fn missing_verdict(
    target: TargetInfo,
    why: &str,
    evidence: Vec<Evidence>,
    policy: &Policy,
) -> Verdict {
    let checks = CheckId::ALL
        .iter()
        .map(|&check| {
            if check == CheckId::TargetExists {
                CheckResult::new(check, Outcome::Failed, policy, why, evidence.clone())
            } else {
                CheckResult::new(
                    check,
                    Outcome::NotApplicable,
                    policy,
                    "no target to check",
                    Vec::new(),
                )
            }
        })
        .collect();
    Verdict::new(target, checks, policy)
}

fn network_pending(policy: &Policy) -> [CheckResult; 2] {
    [CheckId::NetworkListeners, CheckId::NetworkPeers].map(|c| {
        CheckResult::new(
            c,
            Outcome::NotApplicable,
            policy,
            NETWORK_PENDING,
            Vec::new(),
        )
    })
}

struct Ctx<'a> {
    pod: &'a Pod,
    c: &'a Container,
    i: usize,
    psc: Option<&'a PodSecurityContext>,
    sc: Option<&'a SecurityContext>,
    cs: Option<(usize, &'a ContainerStatus)>,
    policy: &'a Policy,
}

fn pass_fail(failed: bool) -> Outcome {
    if failed {
        Outcome::Failed
    } else {
        Outcome::Passed
    }
}

impl Ctx<'_> {
    fn result(
        &self,
        check: CheckId,
        failed: bool,
        msg: impl Into<String>,
        ev: Vec<Evidence>,
    ) -> CheckResult {
        CheckResult::new(check, pass_fail(failed), self.policy, msg, ev)
    }

    fn sc_path(&self, field: &str) -> String {
        format!("spec.containers[{}].securityContext.{field}", self.i)
    }

    fn cs_path(&self, field: &str) -> String {
        let j = self.cs.map_or(0, |(j, _)| j);
        format!("status.containerStatuses[{j}].{field}")
    }

    fn no_status(&self, check: CheckId) -> CheckResult {
        self.result(
            check,
            true,
            "the container has no status: it has not started",
            vec![Evidence::new(
                "status.containerStatuses[*].name",
                format!("no `{}`", self.c.name),
            )],
        )
    }

    fn running(&self) -> CheckResult {
        let phase = self.pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let deleting = self.pod.metadata.deletion_timestamp.as_ref();
        let mut ev = vec![Evidence::new("status.phase", phase.unwrap_or("unset"))];
        if let Some(t) = deleting {
            ev.push(Evidence::new("metadata.deletionTimestamp", t.0.to_string()));
        }
        let ok = phase == Some("Running") && deleting.is_none();
        let msg = match (phase, deleting) {
            (_, Some(_)) => "the pod is being deleted".to_owned(),
            (Some("Running"), None) => "the pod is running".to_owned(),
            (p, None) => format!("the pod is {}, not Running", p.unwrap_or("in no phase")),
        };
        self.result(CheckId::TargetRunning, !ok, msg, ev)
    }

    fn ready(&self) -> CheckResult {
        let Some((_, cs)) = self.cs else {
            return self.no_status(CheckId::ContainerReady);
        };
        let running = cs.state.as_ref().and_then(|s| s.running.as_ref()).is_some();
        let state = describe_state(cs);
        let ev = vec![
            Evidence::new(self.cs_path("ready"), cs.ready.to_string()),
            Evidence::new(self.cs_path("state"), state.clone()),
        ];
        let ok = running && cs.ready;
        let msg = if ok {
            "the container is running and ready".to_owned()
        } else {
            format!("the container is {state}, ready: {}", cs.ready)
        };
        self.result(CheckId::ContainerReady, !ok, msg, ev)
    }

    fn restarts(&self) -> CheckResult {
        let Some((_, cs)) = self.cs else {
            return self.no_status(CheckId::ContainerRestarts);
        };
        let max = self.policy.max_restarts();
        let mut ev = vec![Evidence::new(
            self.cs_path("restartCount"),
            cs.restart_count.to_string(),
        )];
        if let Some(t) = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref()) {
            ev.push(Evidence::new(
                self.cs_path("lastState.terminated"),
                format!(
                    "reason {}, exit code {}, finished {}",
                    t.reason.as_deref().unwrap_or("unknown"),
                    t.exit_code,
                    t.finished_at
                        .as_ref()
                        .map_or("unknown".to_owned(), |f| f.0.to_string())
                ),
            ));
        }
        let waiting = cs.state.as_ref().and_then(|s| s.waiting.as_ref());
        if let Some(w) = waiting {
            ev.push(Evidence::new(
                self.cs_path("state.waiting.reason"),
                w.reason.as_deref().unwrap_or("unset"),
            ));
        }
        // A negative count cannot come from a kubelet; treat it as the worst case.
        let too_many = u32::try_from(cs.restart_count).map_or(true, |n| n > max);
        let failed = too_many || waiting.is_some();
        let msg = if waiting.is_some() {
            "the container is waiting to (re)start".to_owned()
        } else if too_many {
            format!(
                "the container restarted {} times (the policy allows {max})",
                cs.restart_count
            )
        } else {
            format!("{} restarts (the policy allows {max})", cs.restart_count)
        };
        self.result(CheckId::ContainerRestarts, failed, msg, ev)
    }

    fn digest_match(&self) -> CheckResult {
        let check = CheckId::ImageDigestMatch;
        let image = self.c.image.as_deref().unwrap_or_default();
        let spec_digest = ImageName::parse(image)
            .digest
            .filter(|d| is_sha256_digest(d));
        let mut ev = vec![Evidence::new(
            format!("spec.containers[{}].image", self.i),
            image,
        )];
        let Some((_, cs)) = self.cs else {
            return self.no_status(check);
        };
        ev.push(Evidence::new(self.cs_path("imageID"), cs.image_id.clone()));
        let Some(running) = image_id_digest(&cs.image_id) else {
            return self.result(
                check,
                true,
                "the running image id carries no sha256 digest to verify",
                ev,
            );
        };
        if self.policy.digest_allowed(running) {
            return self.result(
                check,
                false,
                "the running digest is on the policy's list",
                ev,
            );
        }
        match spec_digest {
            Some(d) if d == running => self.result(
                check,
                false,
                "the running digest is the one the spec pins",
                ev,
            ),
            Some(_) => self.result(
                check,
                true,
                "the running digest differs from the one the spec pins",
                ev,
            ),
            None if self.policy.has_allowed_digests() => self.result(
                check,
                true,
                "the running digest is not on the policy's list and the spec pins none",
                ev,
            ),
            None => CheckResult::new(
                check,
                Outcome::NotApplicable,
                self.policy,
                "the spec pins no digest and the policy lists none: nothing to compare (image-pinned flags this)",
                ev,
            ),
        }
    }

    fn is_privileged(&self) -> bool {
        self.sc.and_then(|s| s.privileged) == Some(true)
    }

    fn privileged(&self) -> CheckResult {
        let v = self.sc.and_then(|s| s.privileged);
        let ev = vec![Evidence::new(
            self.sc_path("privileged"),
            v.map_or("unset (false)".to_owned(), |b| b.to_string()),
        )];
        let msg = if v == Some(true) {
            "the container is privileged: every capability and device of the host"
        } else {
            "the container is not privileged"
        };
        self.result(CheckId::Privileged, v == Some(true), msg, ev)
    }

    fn added_caps(&self) -> &[String] {
        self.sc
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|c| c.add.as_deref())
            .unwrap_or_default()
    }

    fn escalation(&self) -> CheckResult {
        let set = self.sc.and_then(|s| s.allow_privilege_escalation);
        let sys_admin = self.added_caps().iter().any(|c| {
            matches!(
                c.trim().to_ascii_uppercase().as_str(),
                "SYS_ADMIN" | "CAP_SYS_ADMIN" | "ALL"
            )
        });
        // The kubelet sets no_new_privs only when the field is false; privileged and
        // CAP_SYS_ADMIN containers may always escalate (the API refuses `false` with them).
        let mut ev = vec![Evidence::new(
            self.sc_path("allowPrivilegeEscalation"),
            set.map_or("unset (defaults to true)".to_owned(), |b| b.to_string()),
        )];
        if self.is_privileged() {
            ev.push(Evidence::new(self.sc_path("privileged"), "true"));
        }
        if sys_admin {
            ev.push(Evidence::new(
                self.sc_path("capabilities.add"),
                "includes SYS_ADMIN",
            ));
        }
        let allowed = set != Some(false) || self.is_privileged() || sys_admin;
        let msg = if allowed {
            "the container may gain privileges (no_new_privs is not set)"
        } else {
            "privilege escalation is disallowed"
        };
        self.result(CheckId::PrivilegeEscalation, allowed, msg, ev)
    }

    fn capabilities(&self) -> CheckResult {
        let bad: Vec<&str> = self
            .added_caps()
            .iter()
            .filter(|c| self.policy.is_dangerous_capability(c))
            .map(String::as_str)
            .collect();
        let ev = vec![Evidence::new(
            self.sc_path("capabilities.add"),
            format!("[{}]", self.added_caps().join(", ")),
        )];
        let msg = if bad.is_empty() {
            "no dangerous capability is added".to_owned()
        } else {
            format!("dangerous capabilities added: {}", bad.join(", "))
        };
        self.result(CheckId::DangerousCapabilities, !bad.is_empty(), msg, ev)
    }

    fn host_ns(&self, check: CheckId, field: &str, v: Option<bool>) -> CheckResult {
        let on = v == Some(true);
        let ev = vec![Evidence::new(
            format!("spec.{field}"),
            v.map_or("unset (false)".to_owned(), |b| b.to_string()),
        )];
        let msg = if on {
            format!("{field} is true: the pod shares the host's namespace")
        } else {
            format!("{field} is off")
        };
        self.result(check, on, msg, ev)
    }

    fn host_path(&self) -> CheckResult {
        let vols = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_deref())
            .unwrap_or_default();
        let ev: Vec<Evidence> = vols
            .iter()
            .enumerate()
            .filter_map(|(k, v)| {
                let hp = v.host_path.as_ref()?;
                Some(Evidence::new(
                    format!("spec.volumes[{k}].hostPath.path"),
                    format!("{} (volume `{}`)", hp.path, v.name),
                ))
            })
            .collect();
        let msg = if ev.is_empty() {
            "no hostPath volume".to_owned()
        } else {
            format!(
                "{} hostPath volume(s): the pod reaches the node's files",
                ev.len()
            )
        };
        self.result(CheckId::HostPath, !ev.is_empty(), msg, ev)
    }

    fn run_as_root(&self) -> CheckResult {
        let (uid, uid_at) = match (
            self.sc.and_then(|s| s.run_as_user),
            self.psc.and_then(|s| s.run_as_user),
        ) {
            (Some(u), _) => (Some(u), self.sc_path("runAsUser")),
            (None, Some(u)) => (Some(u), "spec.securityContext.runAsUser".to_owned()),
            (None, None) => (None, self.sc_path("runAsUser")),
        };
        let (non_root, nr_at) = match (
            self.sc.and_then(|s| s.run_as_non_root),
            self.psc.and_then(|s| s.run_as_non_root),
        ) {
            (Some(b), _) => (Some(b), self.sc_path("runAsNonRoot")),
            (None, Some(b)) => (Some(b), "spec.securityContext.runAsNonRoot".to_owned()),
            (None, None) => (None, self.sc_path("runAsNonRoot")),
        };
        let ev = vec![
            Evidence::new(
                uid_at,
                uid.map_or("unset (the image's USER decides)".to_owned(), |u| {
                    u.to_string()
                }),
            ),
            Evidence::new(
                nr_at,
                non_root.map_or("unset (false)".to_owned(), |b| b.to_string()),
            ),
        ];
        let (failed, msg) = match (uid, non_root) {
            (Some(0), _) => (true, "the container runs as uid 0"),
            (Some(_), _) => (false, "the container runs as a non-zero uid"),
            // The kubelet refuses to start a container whose image user is root.
            (None, Some(true)) => (false, "runAsNonRoot makes the kubelet refuse uid 0"),
            (None, _) => (
                true,
                "no runAsUser and no runAsNonRoot: the image may run as root",
            ),
        };
        self.result(CheckId::RunAsRoot, failed, msg, ev)
    }

    fn proc_mount(&self) -> CheckResult {
        let v = self.sc.and_then(|s| s.proc_mount.as_deref());
        let unmasked = v == Some("Unmasked");
        let ev = vec![Evidence::new(
            self.sc_path("procMount"),
            v.unwrap_or("unset (Default)"),
        )];
        let msg = if unmasked {
            "/proc is unmasked: kernel interfaces the runtime hides are visible"
        } else {
            "/proc is masked"
        };
        self.result(CheckId::ProcMount, unmasked, msg, ev)
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        self.pod
            .metadata
            .annotations
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }

    fn seccomp(&self) -> CheckResult {
        let check = CheckId::SeccompUnconfined;
        if self.is_privileged() {
            return self.result(
                check,
                true,
                "a privileged container runs without seccomp",
                vec![Evidence::new(self.sc_path("privileged"), "true")],
            );
        }
        let c_key = format!(
            "container.seccomp.security.alpha.kubernetes.io/{}",
            self.c.name
        );
        let p_key = "seccomp.security.alpha.kubernetes.io/pod";
        let found = if let Some(p) = self.sc.and_then(|s| s.seccomp_profile.as_ref()) {
            Some((self.sc_path("seccompProfile.type"), p.type_.clone()))
        } else if let Some(p) = self.psc.and_then(|s| s.seccomp_profile.as_ref()) {
            Some((
                "spec.securityContext.seccompProfile.type".to_owned(),
                p.type_.clone(),
            ))
        } else if let Some(a) = self.annotation(&c_key) {
            // Old clusters still honour the deprecated annotations when no field is set.
            Some((format!("metadata.annotations[{c_key}]"), a.to_owned()))
        } else {
            self.annotation(p_key)
                .map(|a| (format!("metadata.annotations[{p_key}]"), a.to_owned()))
        };
        match found {
            Some((at, v)) => {
                let unconfined = v.eq_ignore_ascii_case("unconfined");
                let msg = if unconfined {
                    "seccomp is explicitly Unconfined"
                } else {
                    "a seccomp profile applies"
                };
                self.result(check, unconfined, msg, vec![Evidence::new(at, v)])
            }
            None => self.result(
                check,
                true,
                "no seccomp profile set: Unconfined unless the kubelet runs with --seccomp-default",
                vec![Evidence::new(self.sc_path("seccompProfile"), "unset")],
            ),
        }
    }

    fn apparmor(&self) -> CheckResult {
        let check = CheckId::ApparmorUnconfined;
        if self.is_privileged() {
            return self.result(
                check,
                true,
                "a privileged container runs without AppArmor",
                vec![Evidence::new(self.sc_path("privileged"), "true")],
            );
        }
        let key = format!(
            "container.apparmor.security.beta.kubernetes.io/{}",
            self.c.name
        );
        // The kubelet's order: the container's field, the container's annotation, the pod's field.
        let found = if let Some(p) = self.sc.and_then(|s| s.app_armor_profile.as_ref()) {
            Some((self.sc_path("appArmorProfile.type"), p.type_.clone()))
        } else if let Some(a) = self.annotation(&key) {
            Some((format!("metadata.annotations[{key}]"), a.to_owned()))
        } else {
            self.psc
                .and_then(|s| s.app_armor_profile.as_ref())
                .map(|p| {
                    (
                        "spec.securityContext.appArmorProfile.type".to_owned(),
                        p.type_.clone(),
                    )
                })
        };
        match found {
            Some((at, v)) => {
                let unconfined = v.eq_ignore_ascii_case("unconfined");
                let msg = if unconfined {
                    "AppArmor is explicitly Unconfined"
                } else {
                    "an AppArmor profile applies"
                };
                self.result(check, unconfined, msg, vec![Evidence::new(at, v)])
            }
            None => self.result(
                check,
                false,
                "no AppArmor profile set: the runtime's default applies where AppArmor is enabled",
                vec![Evidence::new(
                    self.sc_path("appArmorProfile"),
                    "unset (RuntimeDefault)",
                )],
            ),
        }
    }

    fn image_source(&self) -> CheckResult {
        let image = self.c.image.as_deref().unwrap_or_default();
        let name = ImageName::parse(image).name();
        let mut ev = vec![Evidence::new(
            format!("spec.containers[{}].image", self.i),
            format!("{image} ({name})"),
        )];
        match self.policy.image_pattern_for(&name) {
            Some(p) => {
                ev.push(Evidence::new("policy.allow.images", p));
                self.result(
                    CheckId::ImageSource,
                    false,
                    format!("{name} is allowed"),
                    ev,
                )
            }
            None => self.result(
                CheckId::ImageSource,
                true,
                format!("{name} matches no allowed registry/repository pattern"),
                ev,
            ),
        }
    }

    fn image_pinned(&self) -> CheckResult {
        let image = self.c.image.as_deref().unwrap_or_default();
        let n = ImageName::parse(image);
        let ev = vec![Evidence::new(
            format!("spec.containers[{}].image", self.i),
            image,
        )];
        let pinned = n.digest.as_deref().is_some_and(is_sha256_digest);
        let msg = match (&n.digest, n.tag.as_deref()) {
            _ if pinned => "the image is referenced by digest".to_owned(),
            (Some(d), _) => format!("the digest `{d}` is not a sha256 digest"),
            (None, None) => "no tag and no digest: the reference means `latest`".to_owned(),
            (None, Some("latest")) => "`latest` names whatever was pushed last".to_owned(),
            (None, Some(t)) => format!("the tag `{t}` can be moved; no digest"),
        };
        self.result(CheckId::ImagePinned, !pinned, msg, ev)
    }
}

fn describe_state(cs: &ContainerStatus) -> String {
    match cs.state.as_ref() {
        Some(s) if s.running.is_some() => "running".to_owned(),
        Some(s) if s.waiting.is_some() => format!(
            "waiting ({})",
            s.waiting
                .as_ref()
                .and_then(|w| w.reason.as_deref())
                .unwrap_or("no reason")
        ),
        Some(s) if s.terminated.is_some() => format!(
            "terminated ({})",
            s.terminated
                .as_ref()
                .and_then(|t| t.reason.as_deref())
                .unwrap_or("no reason")
        ),
        _ => "in no state".to_owned(),
    }
}
