//! `keyhole scan --mode sidecar --launch IMAGE`: scanning an image before it is deployed. The
//! session creates, with the user's credentials and after the run's access objects, the run's
//! NetworkPolicy (default-deny both ways, no egress at all: the agent opens no connection) —
//! read back and checked to select the scan pod — and only then the scan pod
//! ([`keyhole_scanners::sidecar_pod`]: the image as container `target` plus the scanner
//! sidecar, `restartPolicy: Never`, `activeDeadlineSeconds` = the run's TTL). Both are owned by
//! the run's ServiceAccount and deleted by the one teardown with everything else. The scoped
//! identity then reads the sidecar's first frame with `pods` get and `pods/log` get only.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use keyhole_audit::Event;
use keyhole_cleanup::Registry;
use keyhole_core::{Created, ObjectKind, Run};
use keyhole_engine::Facts;
use keyhole_scanners::ImageRef;
use keyhole_workflows::WorkflowError;
use kube::Api;
use kube::api::PostParams;

use crate::SessionError;
use crate::session::{Audit, ExtraObject, ExtraObjects, object_ref};

/// What `--launch` scans.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The image to scan (container `target` of the scan pod).
    pub image: ImageRef,
    /// The scanner (agent) image of the sidecar.
    pub scanner: ImageRef,
    /// The UID (and GID) the image runs as in the scan pod, and the sidecar with it.
    pub uid: u32,
    /// The GID.
    pub gid: Option<u32>,
    /// How often the pod is read while waiting for the sidecar's first frame.
    pub poll: Duration,
    /// How long to wait for it.
    pub wait: Duration,
}

/// The scan pod's container the facts describe.
pub const TARGET_CONTAINER: &str = "target";

fn launch_error(message: String) -> SessionError {
    SessionError::Work(message.into())
}

/// The extra objects of a launch run: its NetworkPolicy (no egress), then its scan pod.
pub fn objects(run: &Run, launch: &Launch) -> Result<ExtraObjects, SessionError> {
    // Built now, so a bad request fails before anything is created.
    let pod =
        keyhole_scanners::sidecar_pod(run, &launch.image, launch.uid, launch.gid, &launch.scanner)
            .map_err(|e| launch_error(e.to_string()))?;
    let run = run.clone();
    Ok(Box::new(move |owner| {
        let np = keyhole_netpolicy::scanner_network_policy(&run, None, false, owner.clone());
        let mut pod = pod;
        pod.metadata.owner_references = Some(vec![owner]);
        vec![
            ExtraObject::NetworkPolicy(Box::new(np)),
            ExtraObject::Pod(Box::new(pod)),
        ]
    }))
}

/// Creates one extra object with the user's client: registered for the teardown before the
/// call (its creation answer may be lost), recorded, and — a NetworkPolicy — read back and
/// verified to be default-deny both ways and to select the run's pods.
pub(crate) async fn create_extra(
    user: &kube::Client,
    run: &Run,
    registry: &Registry,
    audit: &Audit,
    object: ExtraObject,
) -> Result<(), SessionError> {
    let ns = run.namespace().as_str();
    let run_id = run.id().to_string();
    let api_err = |what: String| move |e: kube::Error| launch_error(format!("{what}: {e}"));
    let (kind, name, uid) = match object {
        ExtraObject::NetworkPolicy(np) => {
            let name = np.metadata.name.clone().unwrap_or_default();
            registry.attempting(ObjectKind::NetworkPolicy, ns, &name, &run_id);
            let api: Api<NetworkPolicy> = Api::namespaced(user.clone(), ns);
            let made = api
                .create(&PostParams::default(), &np)
                .await
                .map_err(api_err(format!("creating NetworkPolicy {ns}/{name}")))?;
            let created = Created {
                kind: ObjectKind::NetworkPolicy,
                namespace: ns.to_string(),
                name: name.clone(),
                uid: made.metadata.uid.clone(),
            };
            audit.record(Event::ObjectCreated(object_ref(&created)));
            registry.register(created);
            // Verified as the API server holds it, not as it was sent.
            let back = api
                .get(&name)
                .await
                .map_err(api_err(format!("reading NetworkPolicy {ns}/{name} back")))?;
            verify_policy(&back, &run.labels())?;
            tracing::info!(policy = %name, "the scan pod's NetworkPolicy is in place and verified");
            return Ok(());
        }
        ExtraObject::Pod(pod) => {
            let name = pod.metadata.name.clone().unwrap_or_default();
            registry.attempting(ObjectKind::Pod, ns, &name, &run_id);
            let api: Api<Pod> = Api::namespaced(user.clone(), ns);
            let made = api
                .create(&PostParams::default(), &pod)
                .await
                .map_err(api_err(format!("creating the scan pod {ns}/{name}")))?;
            (ObjectKind::Pod, name, made.metadata.uid)
        }
    };
    let created = Created {
        kind,
        namespace: ns.to_string(),
        name,
        uid,
    };
    audit.record(Event::ObjectCreated(object_ref(&created)));
    registry.register(created);
    Ok(())
}

/// The policy must isolate the run's pods: select them, and deny all ingress and all egress
/// (both policy types, no rule).
fn verify_policy(
    np: &NetworkPolicy,
    labels: &BTreeMap<String, String>,
) -> Result<(), SessionError> {
    let name = np.metadata.name.as_deref().unwrap_or_default();
    if !keyhole_netpolicy::selects(np, labels) {
        return Err(launch_error(format!(
            "NetworkPolicy {name} as stored does not select the scan pod: refusing to start it"
        )));
    }
    let spec = np.spec.as_ref();
    let types = spec
        .and_then(|s| s.policy_types.clone())
        .unwrap_or_default();
    let deny_in = types.iter().any(|t| t == "Ingress")
        && spec
            .and_then(|s| s.ingress.as_ref())
            .is_none_or(Vec::is_empty);
    let deny_out = types.iter().any(|t| t == "Egress")
        && spec
            .and_then(|s| s.egress.as_ref())
            .is_none_or(Vec::is_empty);
    if !(deny_in && deny_out) {
        return Err(launch_error(format!(
            "NetworkPolicy {name} as stored is not default-deny both ways: refusing to start the \
             scan pod"
        )));
    }
    Ok(())
}

/// Container waiting reasons after which the scan pod will not run without a change.
const NEVER_STARTS: [&str; 5] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// Waits (with the scoped client: `pods` get and `pods/log` get) for the scan pod's sidecar to
/// write its first complete frame, and reads it. Fails fast when a container cannot start or
/// the agent reports a failed gather; fails at `launch.wait`.
pub async fn wait_for_facts(
    scoped: &kube::Client,
    namespace: &str,
    pod: &str,
    launch: &Launch,
) -> Result<(Facts, Timestamp), WorkflowError> {
    let started = Instant::now();
    let api: Api<Pod> = Api::namespaced(scoped.clone(), namespace);
    loop {
        let p = api.get(pod).await.map_err(|e| WorkflowError::Api {
            action: format!("reading the scan pod {namespace}/{pod}"),
            message: keyhole_core::kube_error(&e),
        })?;
        let statuses = p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.clone())
            .unwrap_or_default();
        for s in &statuses {
            let state = s.state.as_ref();
            if let Some(w) = state.and_then(|st| st.waiting.as_ref())
                && let Some(r) = w.reason.as_deref().filter(|r| NEVER_STARTS.contains(r))
            {
                return Err(WorkflowError::NotRunning {
                    namespace: namespace.into(),
                    pod: pod.into(),
                    container: s.name.clone(),
                    state: format!("{r}: {}", w.message.as_deref().unwrap_or_default().trim()),
                });
            }
        }
        let running = statuses.iter().any(|s| {
            s.name == keyhole_scanners::SIDECAR_NAME
                && s.state
                    .as_ref()
                    .is_some_and(|st| st.running.is_some() || st.terminated.is_some())
        });
        if running {
            // The frame is gathered now: any age is fine (the pod was created by this run).
            match keyhole_workflows::read_sidecar(
                scoped,
                namespace,
                pod,
                launch.wait + Duration::from_secs(60),
                Timestamp::now(),
            )
            .await
            {
                Ok(read) => return Ok(read),
                Err(WorkflowError::Agent { detail, .. })
                    if detail.contains("may not have finished") => {}
                Err(e) => return Err(e),
            }
        }
        if started.elapsed() >= launch.wait {
            return Err(WorkflowError::Agent {
                namespace: namespace.into(),
                pod: pod.into(),
                container: keyhole_scanners::SIDECAR_NAME.into(),
                detail: format!(
                    "wrote no complete facts within {:?} of the scan pod's creation",
                    launch.wait
                ),
            });
        }
        tokio::time::sleep(launch.poll).await;
    }
}
