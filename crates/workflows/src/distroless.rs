//! The distroless workflow: one ephemeral container (`targetContainerName` = the target, so it
//! shares the target's PID namespace) running `keyhole-agent`, which reads the target through
//! `/proc/1/root` with `openat2` and writes the facts of the plan, framed and checksummed, on
//! its log. keyhole waits for it to terminate through `pods` get and reads the one frame with
//! `pods/log` get. The agent evaluates nothing.
//!
//! The scanner holds the target's privileges and never more: the target's UID/GID (from the
//! pod spec, else given, else learned by a first short probe container from `/proc/1/status`),
//! every capability dropped — or, for a root target (opted in), exactly the target's capability
//! set (see [`crate::identity`]) — no privilege escalation, read-only root,
//! seccomp/AppArmor `RuntimeDefault`, no service-account token
//! ([`keyhole_scanners::debug_container`]). A root target is refused unless the caller opts in
//! (the target running as root is itself the finding), and so is a pod that already shares one
//! PID namespace between its containers (the agent could not tell whose PID 1 it reads).
//! The terminated ephemeral container stays in the pod spec: Kubernetes cannot remove it.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{EnvVar, EphemeralContainer, Pod};
use keyhole_core::{ContainerName, Run};
use keyhole_engine::{FactPlan, FactRequest, FactValue, Facts, ProcFile};
use keyhole_scanners::ImageRef;
use kube::Api;
use kube::api::{LogParams, Patch, PatchParams};

use crate::{ContainerTarget, WorkflowError, identity};

/// What the distroless workflow may do, as the user chose.
#[derive(Debug, Clone)]
pub struct DistrolessOptions {
    /// The agent image (pin it by digest).
    pub image: ImageRef,
    /// The target's UID when the pod spec does not say it (without it: the UID probe).
    pub target_uid: Option<u32>,
    /// The target's GID when the pod spec does not say it.
    pub target_gid: Option<u32>,
    /// Scan a target running as UID 0 (as root, with exactly the target's capability set).
    pub allow_root: bool,
    /// Scan a pod whose containers already share a PID namespace.
    pub allow_shared_pid: bool,
    /// The target namespace enforces the Pod Security `restricted` level (read by the caller
    /// with the user's credentials): a scanner running as root would be rejected there.
    pub namespace_restricted: bool,
    /// How often the pod is read while waiting.
    pub poll: Duration,
    /// How long to wait for the agent to terminate (past it: an error, the access is torn down).
    pub wait: Duration,
}

/// Waiting reasons of a container that will not start without someone changing the image or
/// the spec: waiting them out would hold the scoped access until the deadline (minutes) for
/// nothing. (A pull the kubelet may still retry is not worth the access either: the user
/// reruns once the image is there.)
const NEVER_STARTS: [&str; 5] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// The environment variable the agent reads the plan from (see `keyhole-agent`).
const PLAN_ENV: &str = "KEYHOLE_FACT_PLAN";

/// The ephemeral scanner container of a distroless scan exactly as the workflow adds it: the
/// hardened [`keyhole_scanners::debug_container`] told its target container
/// (`--target-container`) and carrying the fact plan `plan` as JSON in `KEYHOLE_FACT_PLAN`.
///
/// Pure (no cluster), so `keyhole plan` prints the same body the scan sends. Fails only if the
/// plan cannot be encoded as JSON.
pub fn distroless_container(
    run: &Run,
    container: &ContainerName,
    uid: u32,
    gid: Option<u32>,
    image: &ImageRef,
    plan: &FactPlan,
) -> Result<EphemeralContainer, serde_json::Error> {
    let plan_json = serde_json::to_string(plan)?;
    let mut debug = keyhole_scanners::debug_container(run, container, uid, gid, image);
    if let Some(cmd) = debug.command.as_mut() {
        cmd.extend(["--target-container".to_string(), container.to_string()]);
    }
    debug.env = Some(vec![EnvVar {
        name: PLAN_ENV.to_string(),
        value: Some(plan_json),
        value_from: None,
    }]);
    Ok(debug)
}

fn container_security<'a>(
    pod: &'a Pod,
    container: &str,
) -> Option<&'a k8s_openapi::api::core::v1::SecurityContext> {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == container))
        .and_then(|c| c.security_context.as_ref())
}

fn uid_gid(pod: &Pod, container: &str) -> (Option<i64>, Option<i64>) {
    let c = container_security(pod, container);
    let p = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    (
        c.and_then(|c| c.run_as_user)
            .or_else(|| p.and_then(|p| p.run_as_user)),
        c.and_then(|c| c.run_as_group)
            .or_else(|| p.and_then(|p| p.run_as_group)),
    )
}

/// The UID (and GID) the probe container runs as: `nobody`. `/proc/1/status` is world-readable
/// (it is not behind the ptrace check that guards `/proc/1/root`), so the probe needs no
/// identity of the target's, and holds none.
pub const PROBE_UID: u32 = 65534;

/// How many bytes of `/proc/1/status` the probe reads (it is about 1.5 KiB).
const PROBE_STATUS_BYTES: u64 = 64 * 1024;

/// The name of the UID probe's ephemeral container in `run`: the scanner's name with `-probe`,
/// so both traces it may leave in the pod spec are attributable to the run.
pub fn probe_container_name(run: &Run) -> String {
    format!("{}-probe", run.object_name())
}

/// The fact plan of the UID probe: the target's `/proc/1/status`, nothing else (the agent then
/// needs no access to the target's root).
fn probe_plan() -> FactPlan {
    let mut plan = FactPlan::new();
    plan.add(FactRequest::Proc {
        file: ProcFile::Status,
        max_bytes: PROBE_STATUS_BYTES,
    });
    plan
}

/// The UID probe: the agent in a first, short ephemeral container running as [`PROBE_UID`]
/// with every capability dropped (the hardened context), reading only `/proc/1/status` of the
/// target. Pure, so `keyhole plan` can show it.
pub fn probe_container(
    run: &Run,
    container: &ContainerName,
    image: &ImageRef,
) -> Result<EphemeralContainer, serde_json::Error> {
    let mut probe = distroless_container(
        run,
        container,
        PROBE_UID,
        Some(PROBE_UID),
        image,
        &probe_plan(),
    )?;
    probe.name = probe_container_name(run);
    Ok(probe)
}

/// Gathers `plan` from `target` with one ephemeral container, with the `scoped` client only.
/// Returns the facts and the name of the ephemeral container left (terminated) in the pod spec.
///
/// When neither the pod spec nor the options say the target's UID, or the target runs as root
/// (opted in) and its spec does not settle its capability set, a first short **probe**
/// container ([`probe_container`]) reads `/proc/1/status` and the scanner copies what it says.
/// The probe is one more ephemeral container that stays in the pod spec, terminated (named
/// [`probe_container_name`]); passing `--target-uid` avoids it for a non-root target.
pub async fn gather_distroless(
    scoped: &kube::Client,
    run: &Run,
    target: &ContainerTarget,
    plan: &FactPlan,
    opts: &DistrolessOptions,
) -> Result<(Facts, String), WorkflowError> {
    let api: Api<Pod> = Api::namespaced(scoped.clone(), &target.namespace);
    let api_err = |action: String| {
        move |e: kube::Error| WorkflowError::Api {
            action,
            message: keyhole_core::kube_error(&e),
        }
    };
    let pod = api.get(&target.pod).await.map_err(api_err(format!(
        "reading pod {}/{}",
        target.namespace, target.pod
    )))?;
    if pod.spec.as_ref().and_then(|s| s.share_process_namespace) == Some(true)
        && !opts.allow_shared_pid
    {
        return Err(WorkflowError::Refused(format!(
            "pod {}/{} already shares one PID namespace between its containers: the scanner \
             could not tell whose processes it reads. Pass --allow-shared-pid to scan it anyway, \
             or use --mode sidecar",
            target.namespace, target.pod
        )));
    }
    let container = ContainerName::new(target.container.clone())
        .map_err(|e| WorkflowError::Container(e.to_string()))?;
    let (spec_uid, spec_gid) = uid_gid(&pod, &target.container);
    let known_uid = match (spec_uid, opts.target_uid) {
        (Some(u), _) => Some(u32::try_from(u).map_err(|_| {
            WorkflowError::Refused(format!(
                "runAsUser {u} of {} is not a UID",
                target.container
            ))
        })?),
        (None, u) => u,
    };
    let known_gid = spec_gid
        .and_then(|g| u32::try_from(g).ok())
        .or(opts.target_gid);
    // A root target known from the spec is checked before anything is added.
    if known_uid == Some(0) {
        refuse_root(target, opts)?;
    }
    let spec_caps = identity::spec_capabilities(container_security(&pod, &target.container));
    let need_probe = known_uid.is_none() || (known_uid == Some(0) && spec_caps.is_none());
    let probed = if need_probe {
        let why = if known_uid.is_none() {
            "the pod spec does not say which UID it runs as"
        } else {
            "it runs as root and its spec does not settle its capability set"
        };
        tracing::info!(%target, why, "probing /proc/1/status with a first ephemeral container");
        let probe = probe_container(run, &container, &opts.image)
            .map_err(|e| encode_err(run, target, &e))?;
        let facts = run_agent(&api, target, &probe, opts).await.map_err(|e| {
            WorkflowError::Refused(format!(
                "the UID probe (ephemeral container {}) could not read /proc/1/status of \
                 container {} ({why}): {e}. Pass --target-uid N (and --target-gid N)",
                probe.name, target.container
            ))
        })?;
        let status = match facts.get(&probe_plan().requests().next().cloned().expect("one")) {
            Some(Ok(FactValue::Content(c))) => String::from_utf8_lossy(&c.bytes).into_owned(),
            other => {
                return Err(WorkflowError::Refused(format!(
                    "the UID probe gave no /proc/1/status of container {} ({other:?}): pass \
                     --target-uid N",
                    target.container
                )));
            }
        };
        let id = identity::parse_status(&status).map_err(|e| {
            WorkflowError::Refused(format!(
                "container {}: {e}; pass --target-uid N to scan it anyway",
                target.container
            ))
        })?;
        tracing::info!(%target, uid = id.uid, gid = id.gid, "the probe read the target's identity");
        Some(id)
    } else {
        None
    };
    let uid = known_uid
        .or(probed.as_ref().map(|p| p.uid))
        .expect("probed when not known");
    // The probe's GID is the target process's; the spec's or the option's when given.
    let gid = known_gid.or(probed.as_ref().map(|p| p.gid));
    if known_uid.is_none() && uid == 0 {
        refuse_root(target, opts)?;
    }
    let caps = if uid == 0 {
        match (spec_caps, &probed) {
            (Some(c), _) => c,
            (None, Some(p)) => identity::capability_names(p.cap_eff).map_err(|e| {
                WorkflowError::Refused(format!("root container {}: {e}", target.container))
            })?,
            (None, None) => unreachable!("a root target without a settled set is probed"),
        }
    } else {
        Vec::new()
    };
    let mut debug = distroless_container(run, &container, uid, gid, &opts.image, plan)
        .map_err(|e| encode_err(run, target, &e))?;
    if !caps.is_empty()
        && let Some(c) = debug
            .security_context
            .as_mut()
            .and_then(|s| s.capabilities.as_mut())
    {
        // Drop ALL, then add exactly the target's set: the result does not depend on the
        // runtime's default set.
        c.add = Some(caps.clone());
    }
    let name = debug.name.clone();
    tracing::info!(%target, container = %name, uid, ?caps, "adding the ephemeral scanner container");
    let facts = run_agent(&api, target, &debug, opts).await?;
    Ok((facts, name))
}

fn encode_err(run: &Run, target: &ContainerTarget, e: &serde_json::Error) -> WorkflowError {
    WorkflowError::Agent {
        namespace: target.namespace.clone(),
        pod: target.pod.clone(),
        container: run.object_name().to_string(),
        detail: format!("cannot encode the fact plan: {e}"),
    }
}

/// Refuses a root target unless the caller opted in and the namespace admits a root scanner.
fn refuse_root(target: &ContainerTarget, opts: &DistrolessOptions) -> Result<(), WorkflowError> {
    if !opts.allow_root {
        return Err(WorkflowError::Refused(format!(
            "container {} runs as root (UID 0) — that is a finding in itself. A non-root scanner \
             cannot read a root process's files; pass --scanner-as-target-root to scan it as \
             root with exactly the target's capability set",
            target.container
        )));
    }
    if opts.namespace_restricted {
        return Err(WorkflowError::Refused(format!(
            "namespace {} enforces Pod Security level `restricted`, which forbids a container \
             running as root: the scanner for root container {} cannot be added there (it would \
             be rejected at admission). Scan it with --mode standard if it has a shell",
            target.namespace, target.container
        )));
    }
    Ok(())
}

/// Adds `debug` to the target's pod, waits for it to terminate (through `pods` get) and reads
/// the one complete, checksummed frame of facts on its log.
async fn run_agent(
    api: &Api<Pod>,
    target: &ContainerTarget,
    debug: &EphemeralContainer,
    opts: &DistrolessOptions,
) -> Result<Facts, WorkflowError> {
    let api_err = |action: String| {
        move |e: kube::Error| WorkflowError::Api {
            action,
            message: keyhole_core::kube_error(&e),
        }
    };
    let name = debug.name.clone();
    let agent_err = |detail: String| WorkflowError::Agent {
        namespace: target.namespace.clone(),
        pod: target.pod.clone(),
        container: name.clone(),
        detail,
    };
    api.patch_ephemeral_containers(
        &target.pod,
        &PatchParams::default(),
        &Patch::Strategic(keyhole_scanners::ephemeral_patch(debug)),
    )
    .await
    .map_err(api_err(format!(
        "adding the ephemeral container to {}/{}",
        target.namespace, target.pod
    )))?;
    let started = Instant::now();
    let terminated = loop {
        let pod = api.get(&target.pod).await.map_err(api_err(format!(
            "reading pod {}/{}",
            target.namespace, target.pod
        )))?;
        let state = pod
            .status
            .as_ref()
            .and_then(|s| s.ephemeral_container_statuses.as_ref())
            .and_then(|v| v.iter().find(|s| s.name == name))
            .and_then(|s| s.state.clone());
        if let Some(w) = state.as_ref().and_then(|s| s.waiting.as_ref())
            && let Some(reason) = w.reason.as_deref().filter(|r| NEVER_STARTS.contains(r))
        {
            return Err(agent_err(format!(
                "cannot start ({reason}: {}); check that image {} exists and this node can pull \
                 it (--image)",
                w.message.as_deref().unwrap_or("no message").trim(),
                opts.image
            )));
        }
        if let Some(t) = state.and_then(|s| s.terminated) {
            break t;
        }
        if started.elapsed() >= opts.wait {
            return Err(agent_err(format!(
                "did not finish within {:?} (never started, or still running)",
                opts.wait
            )));
        }
        tokio::time::sleep(opts.poll).await;
    };
    let log = api
        .logs(
            &target.pod,
            &LogParams {
                container: Some(name.clone()),
                ..LogParams::default()
            },
        )
        .await
        .map_err(api_err(format!("reading the log of {name}")))?;
    if terminated.exit_code != 0 {
        let why = terminated
            .message
            .clone()
            .or_else(|| log.lines().last().map(str::to_string))
            .unwrap_or_default();
        // 128 + N is signal N (137: SIGKILL, an OOM kill or a kill from outside).
        let code = terminated.exit_code;
        let signal = match (code, terminated.reason.as_deref()) {
            (_, Some("OOMKilled")) => " (OOMKilled: the scanner ran out of memory)",
            (137, _) => " (killed: SIGKILL, e.g. out of memory or killed from outside)",
            (143, _) => " (terminated: SIGTERM)",
            _ => "",
        };
        let why = why.trim();
        return Err(agent_err(if why.is_empty() {
            format!("the agent exited with {code}{signal}")
        } else {
            format!("the agent exited with {code}{signal}: {why}")
        }));
    }
    let read = keyhole_engine::read_facts_frames(&log);
    match (read.frames.as_slice(), read.damaged) {
        ([one], 0) => Ok(one.facts.clone()),
        (frames, damaged) => Err(agent_err(format!(
            "its log holds {} complete frame(s) and {damaged} damaged one(s); exactly one \
             complete, checksummed frame was expected",
            frames.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use keyhole_core::{Expiry, Namespace, PodName, RunId, ScanMode, ScanTarget, Ttl};

    use super::*;

    #[test]
    fn the_container_names_its_target_and_carries_the_fact_plan() {
        let target = ScanTarget::pods(
            Namespace::new("shop").unwrap(),
            [PodName::new("web-0").unwrap()],
            Some(ContainerName::new("web").unwrap()),
        )
        .unwrap();
        let expiry = Expiry::new(
            "2026-11-26T14:00:00Z".parse().unwrap(),
            Ttl::parse("15m").unwrap(),
        )
        .unwrap();
        let run = Run::new(
            RunId::parse("abcdefghij").unwrap(),
            target,
            ScanMode::Distroless,
            expiry,
        )
        .unwrap();
        let image = ImageRef::parse("registry.example.com/keyhole-agent:1.0").unwrap();
        let web = ContainerName::new("web").unwrap();
        let profile = keyhole_engine::Profile::resolve(keyhole_engine::DEFAULT_PROFILE).unwrap();
        let plan = keyhole_engine::plan(&profile, &keyhole_engine::Inputs::defaults(&profile));
        assert_ne!(plan, FactPlan::new());
        let c = distroless_container(&run, &web, 10001, Some(10001), &image, &plan).unwrap();
        let cmd = c.command.unwrap();
        let at = cmd.iter().position(|a| a == "--target-container").unwrap();
        assert_eq!(cmd[at + 1], "web");
        assert_eq!(c.target_container_name.as_deref(), Some("web"));
        let env = c.env.unwrap();
        assert_eq!(env.len(), 1);
        assert_eq!(env[0].name, "KEYHOLE_FACT_PLAN");
        let sent: FactPlan = serde_json::from_str(env[0].value.as_deref().unwrap()).unwrap();
        assert_eq!(sent, plan);
    }
}
