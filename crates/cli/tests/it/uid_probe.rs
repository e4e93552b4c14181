//! The distroless workflow's UID probe and root capability copy, on the testkit fake with a
//! scripted stand-in kubelet (a test double: it answers each ephemeral container with a log it
//! is given, no process runs). The real thing on runc is in `node_scan.rs`.
//!
//! - The pod spec does not say the target's UID: a first ephemeral container (`…-probe`, as
//!   `nobody` with no capabilities) reads `/proc/1/status`; the scanner then runs as what it
//!   says, and both containers are reported as staying in the pod spec.
//! - The probe fails: a clear error naming `--target-uid`, nothing left but the two reported
//!   traces' one (the probe).
//! - The probe finds root: refused without `--scanner-as-target-root`; with it, the scanner
//!   gets exactly the target's effective set.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{EphemeralContainer, Pod};
use keyhole_core::ScanMode;
use keyhole_engine::{Content, FactRequest, FactValue, Facts, ProcFile, Profile};
use keyhole_testkit::FakeCluster;
use serde_json::{Value, json};

use crate::cluster_scan::{distroless_options, pod_running_as, scan_with};
use crate::support::{NS, POD};

/// `/proc/1/status` of the target, as the probe reads it: `uid` everywhere, `cap_eff` hex.
fn status(uid: u32, gid: u32, cap_eff: &str) -> String {
    format!(
        "Name:\tapp\nState:\tS (sleeping)\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n\
         Gid:\t{gid}\t{gid}\t{gid}\t{gid}\nCapInh:\t0000000000000000\nCapPrm:\t{cap_eff}\n\
         CapEff:\t{cap_eff}\nCapBnd:\t{cap_eff}\n"
    )
}

/// The probe's one request, written out by hand (the product's plan must be exactly this).
fn status_request() -> FactRequest {
    FactRequest::Proc {
        file: ProcFile::Status,
        max_bytes: 64 * 1024,
    }
}

/// How the stand-in kubelet answers one ephemeral container: (log, exit code).
type Answer = Box<dyn Fn(&EphemeralContainer) -> (String, i32) + Send>;

/// A stand-in kubelet (test double) that answers each ephemeral container added to
/// `prod/web-0` with `answer`, and returns every container it saw, in order.
fn kubelet(
    cluster: FakeCluster,
    answer: Answer,
) -> std::thread::JoinHandle<Vec<EphemeralContainer>> {
    std::thread::spawn(move || {
        let mut seen: Vec<EphemeralContainer> = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        // Until the access is gone (the Role deleted) or the deadline.
        while std::time::Instant::now() < deadline {
            let pod: Pod = cluster.object(NS, POD).unwrap();
            for ec in pod
                .spec
                .and_then(|s| s.ephemeral_containers)
                .into_iter()
                .flatten()
            {
                if seen.iter().any(|s| s.name == ec.name) {
                    continue;
                }
                let (log, exit) = answer(&ec);
                cluster.set_pod_running(NS, POD).unwrap();
                cluster.set_pod_log(NS, POD, &ec.name, &log);
                cluster
                    .set_container_terminated(NS, POD, &ec.name, exit)
                    .unwrap();
                seen.push(ec);
            }
            let done = cluster
                .calls()
                .iter()
                .any(|c| c.method == "DELETE" && c.path.contains("/roles/"));
            if done {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        seen
    })
}

/// The probe's answer: one frame with `status` for `/proc/1/status`; the scanner's: one frame
/// with no facts (this test is about who runs, not what is read).
fn answering(status_text: String) -> Answer {
    Box::new(move |ec: &EphemeralContainer| {
        let mut facts = Facts::default();
        if ec.name.ends_with("-probe") {
            facts.insert(
                status_request(),
                Ok(FactValue::Content(Content {
                    bytes: status_text.clone().into_bytes(),
                    truncated: false,
                })),
            );
        }
        (
            keyhole_engine::encode_facts_frame(&facts, Timestamp::now()),
            0,
        )
    })
}

fn sc(ec: &EphemeralContainer) -> Value {
    serde_json::to_value(ec.security_context.as_ref().expect("a security context")).unwrap()
}

fn plan_of(ec: &EphemeralContainer) -> keyhole_engine::FactPlan {
    let env = ec.env.as_ref().expect("the plan in the environment");
    assert_eq!(env.len(), 1);
    assert_eq!(env[0].name, "KEYHOLE_FACT_PLAN");
    serde_json::from_str(env[0].value.as_deref().unwrap()).unwrap()
}

/// The probe as the product must add it (written out by hand): `nobody`, no capability, no
/// escalation, read-only root, RuntimeDefault seccomp, the plan = `/proc/1/status` only.
fn assert_is_a_harmless_probe(probe: &EphemeralContainer) {
    assert!(probe.name.ends_with("-probe"), "{}", probe.name);
    assert_eq!(probe.target_container_name.as_deref(), Some("app"));
    let s = sc(probe);
    assert_eq!(s["runAsUser"], 65534);
    assert_eq!(s["runAsGroup"], 65534);
    assert_eq!(s["runAsNonRoot"], true);
    assert_eq!(s["capabilities"], json!({"drop": ["ALL"]}));
    assert_eq!(s["allowPrivilegeEscalation"], false);
    assert_eq!(s["readOnlyRootFilesystem"], true);
    assert_eq!(s["seccompProfile"]["type"], "RuntimeDefault");
    let plan = plan_of(probe);
    let requests: Vec<&FactRequest> = plan.requests().collect();
    assert_eq!(requests, [&status_request()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_uid_is_learned_by_a_probe_and_both_containers_are_reported() {
    let profile = Profile::builtin("container-baseline").unwrap();
    let cluster = pod_running_as(None, false);
    let k = kubelet(
        cluster.clone(),
        answering(status(10001, 10002, "0000000000000000")),
    );
    let s = scan_with(
        &cluster,
        &profile,
        ScanMode::Distroless,
        distroless_options(),
    )
    .await;
    let seen = k.join().unwrap();
    let o = &s.outcome;
    assert_eq!(
        o.session.exit_code,
        0,
        "{:?}",
        o.session.error.as_ref().map(ToString::to_string)
    );
    assert_eq!(seen.len(), 2, "the probe, then the scanner: {seen:?}");
    assert_is_a_harmless_probe(&seen[0]);
    let scanner = sc(&seen[1]);
    assert_eq!(scanner["runAsUser"], 10001, "the probe's UID");
    assert_eq!(scanner["runAsGroup"], 10002, "the probe's GID");
    assert_eq!(scanner["capabilities"], json!({"drop": ["ALL"]}));
    assert_eq!(
        seen[1].name,
        format!("{}", seen[0].name.trim_end_matches("-probe"))
    );
    // Both stay in the pod spec and the output says so, the probe first.
    assert_eq!(o.traces.len(), 2, "{:?}", o.traces);
    assert!(o.traces[0].contains(&seen[0].name) && o.traces[0].contains("UID probe"));
    assert!(o.traces[1].ends_with(&seen[1].name), "{:?}", o.traces);
    // The post-scan audit expects both in the target pod (neither is a finding).
    let expected = &o.postscan.targets[0].expected_ephemeral;
    for c in &seen {
        assert!(expected.contains(&c.name), "{expected:?}");
    }
    // The probe and the scanner came through the scoped identity's one patch right each.
    let patches = cluster
        .calls()
        .iter()
        .filter(|c| c.path.ends_with("/ephemeralcontainers"))
        .filter(|c| crate::cluster_scan::is_scoped(&c.identity))
        .count();
    assert_eq!(patches, 2);
    assert!(cluster.managed_objects().is_empty());
    crate::support::clean_ending(&s.records);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_probe_is_a_clear_error_naming_target_uid_and_leaves_nothing() {
    let profile = Profile::builtin("container-baseline").unwrap();
    for (case, answer) in [
        (
            "probe exits 3",
            Box::new(|_: &EphemeralContainer| {
                (
                    "keyhole-agent: cannot hold process 1: EPERM\n".to_string(),
                    3,
                )
            }) as Answer,
        ),
        (
            "status without a Uid line",
            answering("Name:\tapp\n".into()),
        ),
        (
            "UIDs differ",
            answering(
                status(10001, 10001, "0")
                    .replace("Uid:\t10001\t10001\t10001\t10001", "Uid:\t10001\t0\t0\t0"),
            ),
        ),
    ] {
        let cluster = pod_running_as(None, false);
        let k = kubelet(cluster.clone(), answer);
        let s = scan_with(
            &cluster,
            &profile,
            ScanMode::Distroless,
            distroless_options(),
        )
        .await;
        let seen = k.join().unwrap();
        let o = &s.outcome;
        assert_eq!(
            o.session.exit_code,
            keyhole_cli::session::EXIT_SETUP_FAILED,
            "{case}"
        );
        let e = o.session.error.as_ref().unwrap().to_string();
        assert!(e.contains("--target-uid"), "{case}: {e}");
        assert_eq!(seen.len(), 1, "{case}: no scanner after a failed probe");
        assert_is_a_harmless_probe(&seen[0]);
        assert_eq!(o.traces.len(), 1, "{case}: {:?}", o.traces);
        assert!(o.results.is_empty());
        assert!(cluster.managed_objects().is_empty(), "{case}");
        crate::support::clean_ending(&s.records);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probed_root_target_is_refused_unless_opted_in_then_gets_exactly_its_capabilities() {
    let profile = Profile::builtin("container-baseline").unwrap();
    // containerd's default set (0xa80425fb), as a busybox root process shows it.
    let root = status(0, 0, "00000000a80425fb");

    let cluster = pod_running_as(None, false);
    let k = kubelet(cluster.clone(), answering(root.clone()));
    let s = scan_with(
        &cluster,
        &profile,
        ScanMode::Distroless,
        distroless_options(),
    )
    .await;
    let seen = k.join().unwrap();
    let e = s.outcome.session.error.as_ref().unwrap().to_string();
    assert!(e.contains("runs as root"), "{e}");
    assert_eq!(seen.len(), 1, "refused after the probe: {seen:?}");
    assert!(cluster.managed_objects().is_empty());

    let cluster = pod_running_as(None, false);
    let k = kubelet(cluster.clone(), answering(root));
    let opts = keyhole_workflows::DistrolessOptions {
        allow_root: true,
        ..distroless_options()
    };
    let s = scan_with(&cluster, &profile, ScanMode::Distroless, opts).await;
    let seen = k.join().unwrap();
    assert_eq!(
        s.outcome.session.exit_code,
        0,
        "{:?}",
        s.outcome.session.error.as_ref().map(ToString::to_string)
    );
    assert_eq!(seen.len(), 2);
    let scanner = sc(&seen[1]);
    assert_eq!(scanner["runAsUser"], 0);
    assert_eq!(scanner["allowPrivilegeEscalation"], false);
    assert_eq!(scanner["capabilities"]["drop"], json!(["ALL"]));
    // Exactly containerd's default set, written out by hand in bit order.
    assert_eq!(
        scanner["capabilities"]["add"],
        json!([
            "CHOWN",
            "DAC_OVERRIDE",
            "FOWNER",
            "FSETID",
            "KILL",
            "SETGID",
            "SETUID",
            "SETPCAP",
            "NET_BIND_SERVICE",
            "NET_RAW",
            "SYS_CHROOT",
            "MKNOD",
            "AUDIT_WRITE",
            "SETFCAP"
        ])
    );
    assert!(cluster.managed_objects().is_empty());
}

/// A root target whose spec drops ALL and adds two capabilities: the spec settles the set on
/// any runtime, so no probe runs; the scanner gets exactly those two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_target_whose_spec_settles_its_capabilities_needs_no_probe() {
    let profile = Profile::builtin("container-baseline").unwrap();
    let cluster = FakeCluster::new();
    cluster.create_namespace(NS);
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": POD, "namespace": NS},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1.0",
            "securityContext": {"runAsUser": 0,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE", "CAP_CHOWN"]}}}]},
    }))
    .unwrap();
    cluster.insert(&pod).unwrap();
    cluster.set_pod_running(NS, POD).unwrap();
    let k = kubelet(cluster.clone(), answering(String::new()));
    let opts = keyhole_workflows::DistrolessOptions {
        allow_root: true,
        ..distroless_options()
    };
    let s = scan_with(&cluster, &profile, ScanMode::Distroless, opts).await;
    let seen = k.join().unwrap();
    assert_eq!(s.outcome.session.exit_code, 0);
    assert_eq!(seen.len(), 1, "no probe: {seen:?}");
    let scanner = sc(&seen[0]);
    assert_eq!(scanner["runAsUser"], 0);
    assert_eq!(
        scanner["capabilities"],
        json!({"drop": ["ALL"], "add": ["CHOWN", "NET_BIND_SERVICE"]})
    );
    assert_eq!(s.outcome.traces.len(), 1);
    assert!(cluster.managed_objects().is_empty());
}
