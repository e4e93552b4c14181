//! `keyhole plan`: the ordered API calls of a scan, with their bodies, computed offline.

use jiff::Timestamp;
use keyhole_core::{Expiry, PodName, Run, RunId, ScanMode, ScanTarget};
use serde::Serialize;
use serde_json::Value;

use crate::args::{Format, PlanArgs};
use crate::{Failure, Output};

/// Who sends a call: the user's own credentials only create and delete the scoped access; the
/// scan itself runs with the scoped credentials.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
enum Credentials {
    User,
    Scoped,
}

/// One API call of the plan.
#[derive(Debug, Serialize)]
struct Step {
    method: &'static str,
    path: String,
    credentials: Credentials,
    body: Value,
}

/// The whole plan, as printed by `-o json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Plan {
    run_id: String,
    mode: &'static str,
    namespace: String,
    pods: Vec<String>,
    issued_at: String,
    expires_at: String,
    steps: Vec<Step>,
}

pub(crate) fn run(a: &PlanArgs) -> Result<Output, Failure> {
    let plan = build(a)?;
    let stdout = match a.format {
        Format::Json => {
            serde_json::to_string_pretty(&plan).expect("plan values always serialize") + "\n"
        }
        Format::Yaml => yaml(&plan),
    };
    Ok(Output {
        stdout,
        warnings: warnings(a),
        exit: 0,
    })
}

fn warnings(a: &PlanArgs) -> Vec<String> {
    let mut w = Vec::new();
    if a.target_uid == Some(0) {
        w.push(
            "the target runs as root: the debug/sidecar container runs as UID 0 without capabilities, \
             which cannot read a root process that holds capabilities; keyhole will report that as a scan error"
                .to_string(),
        );
    }
    if !a.image.is_digest_pinned() {
        w.push(format!(
            "scanner image {} is not pinned by digest: pass --image NAME@sha256:... for a reproducible, tamper-evident scan",
            a.image
        ));
    }
    w
}

fn to_value<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).expect("Kubernetes objects always serialize")
}

/// The mode to plan: `--mode` is required and must be concrete, since `auto` is decided by
/// looking at the live pod, which `plan` never touches.
fn mode(a: &PlanArgs) -> Result<ScanMode, Failure> {
    match a.mode {
        None => Err(Failure::bad_input(
            "keyhole plan needs --mode standard, distroless or sidecar (there is no default: auto is decided at scan time by looking at the pod, which plan does not touch)",
        )),
        Some(m) if !m.is_concrete() => Err(Failure::bad_input(
            "--mode auto is decided at scan time (standard if the target has a shell, else distroless); plan one with --mode standard, distroless or sidecar",
        )),
        Some(m) => Ok(m),
    }
}

fn build(a: &PlanArgs) -> Result<Plan, Failure> {
    let mode = mode(a)?;
    // Checked in every mode, so that a plan never reviews a profile the scan would refuse.
    let profile = keyhole_engine::Profile::resolve(&a.profile).map_err(Failure::bad_input)?;
    let inputs =
        keyhole_engine::Inputs::with_overrides(&profile, a.inputs.iter().map(String::as_str))
            .map_err(Failure::bad_input)?;
    if a.launch.is_some() && mode != ScanMode::Sidecar {
        return Err(Failure::bad_input(
            "--launch only applies to --mode sidecar",
        ));
    }
    let pods = a
        .targets
        .iter()
        .map(|t| PodName::new(t.strip_prefix("pod/").unwrap_or(t)).map_err(Failure::bad_input))
        .collect::<Result<Vec<_>, _>>()?;
    let target = ScanTarget::pods(a.namespace.clone(), pods, a.container.clone())
        .map_err(Failure::bad_input)?;
    let id = match &a.run_id {
        Some(id) => id.clone(),
        None => RunId::generate().map_err(Failure::bad_input)?,
    };
    let expiry = Expiry::new(a.issued_at.unwrap_or_else(Timestamp::now), a.ttl)
        .map_err(Failure::bad_input)?;
    let run = Run::new(id, target, mode, expiry).map_err(Failure::bad_input)?;

    let needs_container = mode == ScanMode::Distroless || a.launch.is_some();
    let container = match (&a.container, needs_container) {
        (Some(c), _) => Some(c.clone()),
        (None, true) => {
            return Err(Failure::bad_input(format!(
                "--mode {mode} needs -c CONTAINER: the scanner joins that container's process namespace"
            )));
        }
        (None, false) => None,
    };
    let uid = match (a.target_uid, needs_container) {
        (Some(u), _) => Some(u),
        (None, true) => {
            return Err(Failure::bad_input(
                "--target-uid N is needed: the scanner runs as the target's UID (reading /proc/PID/root needs it); `keyhole scan` reads it from the pod",
            ));
        }
        (None, false) => None,
    };
    if a.launch.is_some() && run.pods().len() != 1 {
        return Err(Failure::bad_input(
            "--launch creates one scan pod: give exactly one TARGET name",
        ));
    }

    let ns = run.namespace().as_str();
    let sa_name = run.object_name().to_string();
    let core = format!("/api/v1/namespaces/{ns}");
    let user_post = |path: String, body: Value| Step {
        method: "POST",
        path,
        credentials: Credentials::User,
        body,
    };

    // The run's access objects, in the order and with the bodies a live run sends them: the
    // very sequence `keyhole access` runs, against an offline recorder.
    let (creates, applied) = keyhole_rbac::plan(&run, |owner| {
        keyhole_credentials::anchor_secret(&run, owner)
    })
    .map_err(Failure::bad_input)?;
    let owner = keyhole_rbac::owner_reference(&run, &applied.service_account_uid);
    let mut steps: Vec<Step> = creates
        .into_iter()
        .map(|c| user_post(c.path, c.body))
        .collect();
    if a.api_server.is_some() || a.launch.is_some() {
        let np = keyhole_netpolicy::scanner_network_policy(
            &run,
            a.api_server.as_ref(),
            a.allow_dns,
            owner.clone(),
        );
        steps.push(user_post(
            format!("/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"),
            to_value(&np),
        ));
    }
    if let (Some(launch), Some(uid)) = (&a.launch, uid) {
        let mut pod = keyhole_scanners::sidecar_pod(&run, launch, uid, a.target_gid, &a.image)
            .map_err(Failure::bad_input)?;
        pod.metadata.owner_references = Some(vec![owner.clone()]);
        steps.push(user_post(format!("{core}/pods"), to_value(&pod)));
    }
    let token = keyhole_credentials::token_request(&run, &a.audiences, Some(&applied.anchor_uid));
    steps.push(user_post(
        format!("{core}/serviceaccounts/{sa_name}/token"),
        to_value(&token),
    ));
    if mode == ScanMode::Distroless {
        let (Some(c), Some(uid)) = (&container, uid) else {
            unreachable!("checked above: distroless needs a container and a uid");
        };
        // The fact plan of the scan's profile and inputs: what `keyhole scan` with the same
        // --profile and --input gathers.
        let facts = keyhole_engine::plan(&profile, &inputs);
        let debug =
            keyhole_workflows::distroless_container(&run, c, uid, a.target_gid, &a.image, &facts)
                .map_err(|e| Failure::bad_input(format!("cannot encode the fact plan: {e}")))?;
        for pod in run.pods() {
            steps.push(Step {
                method: "PATCH",
                path: format!("{core}/pods/{pod}/ephemeralcontainers"),
                credentials: Credentials::Scoped,
                body: keyhole_scanners::ephemeral_patch(&debug),
            });
        }
    }
    Ok(Plan {
        run_id: run.id().to_string(),
        mode: run.mode().as_str(),
        namespace: ns.to_string(),
        pods: run.pods().iter().map(ToString::to_string).collect(),
        issued_at: run.expiry().issued_at().to_string(),
        expires_at: run.expiry().annotation_value(),
        steps,
    })
}

fn yaml(plan: &Plan) -> String {
    let mut out = format!(
        "# keyhole plan: run {} ({} mode) on {}/{}, access expires {}.\n\
         # Nothing below has been sent to a cluster. Placeholders in <...> are filled at creation.\n",
        plan.run_id,
        plan.mode,
        plan.namespace,
        plan.pods.join(","),
        plan.expires_at
    );
    for (i, s) in plan.steps.iter().enumerate() {
        let who = match s.credentials {
            Credentials::User => "your credentials",
            Credentials::Scoped => "the scoped credentials",
        };
        let kind = if s.method == "PATCH" {
            " (strategic merge patch)"
        } else {
            ""
        };
        out.push_str(&format!(
            "---\n# {}. {} {}{kind}, with {who}\n",
            i + 1,
            s.method,
            s.path
        ));
        out.push_str(
            &keyhole_scanners::to_yaml(&s.body).expect("JSON values always serialize as YAML"),
        );
    }
    out
}
