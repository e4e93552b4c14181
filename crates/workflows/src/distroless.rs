//! The distroless workflow: one ephemeral container (`targetContainerName` = the target, so it
//! shares the target's PID namespace) running `keyhole-agent`, which reads the target through
//! `/proc/1/root` with `openat2` and writes the facts of the plan, framed and checksummed, on
//! its log. keyhole waits for it to terminate through `pods` get and reads the one frame with
//! `pods/log` get. The agent evaluates nothing.
//!
//! The scanner holds the target's privileges and never more: the target's UID/GID (from the
//! pod spec, else given), every capability dropped, no privilege escalation, read-only root,
//! seccomp/AppArmor `RuntimeDefault`, no service-account token
//! ([`keyhole_scanners::debug_container`]). A root target is refused unless the caller opts in
//! (the target running as root is itself the finding), and so is a pod that already shares one
//! PID namespace between its containers (the agent could not tell whose PID 1 it reads).
//! The terminated ephemeral container stays in the pod spec: Kubernetes cannot remove it.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{EnvVar, EphemeralContainer, Pod};
use keyhole_core::{ContainerName, Run};
use keyhole_engine::{FactPlan, Facts};
use keyhole_scanners::ImageRef;
use kube::Api;
use kube::api::{LogParams, Patch, PatchParams};

use crate::{ContainerTarget, WorkflowError};

/// What the distroless workflow may do, as the user chose.
#[derive(Debug, Clone)]
pub struct DistrolessOptions {
    /// The agent image (pin it by digest).
    pub image: ImageRef,
    /// The target's UID when the pod spec does not say it.
    pub target_uid: Option<u32>,
    /// The target's GID when the pod spec does not say it.
    pub target_gid: Option<u32>,
    /// Scan a target running as UID 0 (as root, with no capabilities).
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

fn uid_gid(pod: &Pod, container: &str) -> (Option<i64>, Option<i64>) {
    let spec = pod.spec.as_ref();
    let c = spec
        .and_then(|s| s.containers.iter().find(|c| c.name == container))
        .and_then(|c| c.security_context.as_ref());
    let p = spec.and_then(|s| s.security_context.as_ref());
    (
        c.and_then(|c| c.run_as_user)
            .or_else(|| p.and_then(|p| p.run_as_user)),
        c.and_then(|c| c.run_as_group)
            .or_else(|| p.and_then(|p| p.run_as_group)),
    )
}

/// Gathers `plan` from `target` with one ephemeral container, with the `scoped` client only.
/// Returns the facts and the name of the ephemeral container left (terminated) in the pod spec.
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
            message: e.to_string(),
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
    let (spec_uid, spec_gid) = uid_gid(&pod, &target.container);
    let uid = match (spec_uid, opts.target_uid) {
        (Some(u), _) => u32::try_from(u).ok(),
        (None, u) => u,
    }
    .ok_or_else(|| {
        WorkflowError::Refused(format!(
            "the pod spec does not say which UID container {} runs as: pass --target-uid N \
             (the scanner must run as the target's UID to read /proc/1/root, with no capabilities)",
            target.container
        ))
    })?;
    let gid = spec_gid
        .and_then(|g| u32::try_from(g).ok())
        .or(opts.target_gid);
    if uid == 0 && !opts.allow_root {
        return Err(WorkflowError::Refused(format!(
            "container {} runs as root (UID 0) — that is a finding in itself. A non-root scanner \
             cannot read a root process's files; pass --scanner-as-target-root to scan it as \
             root with every capability dropped",
            target.container
        )));
    }
    if uid == 0 && opts.namespace_restricted {
        return Err(WorkflowError::Refused(format!(
            "namespace {} enforces Pod Security level `restricted`, which forbids a container \
             running as root: the scanner for root container {} cannot be added there (it would \
             be rejected at admission). Scan it with --mode standard if it has a shell",
            target.namespace, target.container
        )));
    }
    let container = ContainerName::new(target.container.clone())
        .map_err(|e| WorkflowError::Container(e.to_string()))?;
    let debug =
        distroless_container(run, &container, uid, gid, &opts.image, plan).map_err(|e| {
            WorkflowError::Agent {
                namespace: target.namespace.clone(),
                pod: target.pod.clone(),
                container: run.object_name().to_string(),
                detail: format!("cannot encode the fact plan: {e}"),
            }
        })?;
    let name = debug.name.clone();
    let agent_err = |detail: String| WorkflowError::Agent {
        namespace: target.namespace.clone(),
        pod: target.pod.clone(),
        container: name.clone(),
        detail,
    };
    tracing::info!(%target, container = %name, uid, "adding the ephemeral scanner container");
    api.patch_ephemeral_containers(
        &target.pod,
        &PatchParams::default(),
        &Patch::Strategic(keyhole_scanners::ephemeral_patch(&debug)),
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
        return Err(agent_err(format!(
            "the agent exited with {}: {}",
            terminated.exit_code,
            why.trim()
        )));
    }
    let read = keyhole_engine::read_facts_frames(&log);
    match (read.frames.as_slice(), read.damaged) {
        ([one], 0) => Ok((one.facts.clone(), name)),
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
