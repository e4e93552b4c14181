//! The post-scan audit wired into the cluster scan, against the testkit fake: a clean scan
//! passes every check; a leftover RoleBinding, a token written to a temp file, and a target
//! restarted during the scan are each caught, with the exit code the binary uses (4 for
//! leftovers, 6 for the others). The exec is answered by this machine's own `/bin/sh` running
//! the fact script of a one-control profile (the facts are not what these tests are about).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::rbac::v1::RoleBinding;
use keyhole_audit::postscan::{CheckId, Outcome};
use keyhole_audit::{ArtifactScope, AuditLog, LogText, PostScanReport, ScanLimits};
use keyhole_cli::cluster_scan::{ScanOutcome, ScanRequest, scan_cluster};
use keyhole_cli::postscan::{audit_scan, exit_after};
use keyhole_cli::session::{Audit, ScopedClients, SessionSpec};
use keyhole_core::ScanMode;
use keyhole_credentials::ScopedToken;
use keyhole_engine::{Inputs, Profile, Waivers};
use keyhole_testkit::{ExecResponse, FakeCluster};
use secrecy::ExposeSecret as _;

use crate::support::{FakeScoped, NS, POD, cluster, endpoint, fast_policy, run, scratch};

/// One control, one fact: enough for a scan to complete.
const PROFILE: &str = "name: postscan-test\nversion: 1.0.0\ncontrols:\n  - id: PS-1\n    title: os-release exists\n    impact: 0.5\n    checks:\n      - file: /etc/os-release\n        exists: true\n";

/// Answers an exec with this machine's `sh` (what the fact script needs: a POSIX shell).
fn host_shell(req: &keyhole_testkit::ExecRequest) -> ExecResponse {
    let mut child = Command::new(&req.command[0])
        .args(&req.command[1..])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", req.command));
    let mut stdin = child.stdin.take().unwrap();
    let input = req.stdin.clone();
    let writer = std::thread::spawn(move || {
        let _ = std::io::Write::write_all(&mut stdin, &input);
    });
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    ExecResponse {
        stdout: out.stdout,
        stderr: out.stderr,
        exit_code: out.status.code().unwrap_or(128),
    }
}

/// A scan of `prod/web-0` in standard mode through the library, auditing to `dir`.
async fn scan(
    cluster: &FakeCluster,
    dir: &Path,
    scoped: Arc<dyn ScopedClients>,
) -> (ScanOutcome, Audit) {
    let (outcome, audit) = scan_in(cluster, dir, scoped, ScanMode::Standard).await;
    assert_eq!(
        outcome.session.exit_code,
        0,
        "{:?}",
        outcome.session.error.as_ref().map(ToString::to_string)
    );
    assert!(outcome.session.cleanup.is_clean());
    (outcome, audit)
}

async fn scan_in(
    cluster: &FakeCluster,
    dir: &Path,
    scoped: Arc<dyn ScopedClients>,
    mode: ScanMode,
) -> (ScanOutcome, Audit) {
    let profile = Profile::from_yaml_str(PROFILE, "postscan-test.yaml").unwrap();
    let run = run(mode);
    let audit = Audit::new(
        AuditLog::open(&dir.join("audit.jsonl")).unwrap(),
        run.id().as_str(),
    );
    let request = ScanRequest {
        run: run.clone(),
        container: None,
        inputs: Inputs::defaults(&profile),
        profile,
        waivers: Waivers::none(),
        session: SessionSpec {
            run,
            cluster: endpoint(cluster),
            audiences: vec![],
            command: vec![],
            work: None,
            policy: keyhole_cleanup::RetryPolicy {
                call_timeout: std::time::Duration::from_secs(20),
                ..fast_policy()
            },
        },
        // No agent answers on the fake: the debug container is added, then the wait ends.
        distroless: Some(keyhole_workflows::DistrolessOptions {
            image: keyhole_scanners::ImageRef::parse(
                "ghcr.io/keyhole-scanner/keyhole-agent:0.1.0@sha256:2f1b6c0d9a4e7f3b8c5d1e6a9b0c4d7e2f5a8b1c3d6e9f0a2b4c6d8e0f1a3b5c",
            )
            .unwrap(),
            target_uid: Some(10001),
            target_gid: Some(10001),
            allow_root: false,
            allow_shared_pid: false,
            namespace_restricted: false,
            poll: std::time::Duration::from_millis(20),
            wait: std::time::Duration::from_millis(300),
        }),
        max_age: std::time::Duration::from_secs(3600),
    };
    let outcome = scan_cluster(cluster.client_admin(), request, scoped, audit.clone())
        .await
        .expect("the scan starts");
    (outcome, audit)
}

/// The artifact scope of these in-process tests: the scan's own temp dir, its audit log, and
/// no `/proc/self/fd` (the other tests of this binary run as threads of the same process and
/// hold their own memfds; the binary test below searches its own descriptors).
fn scope(tmp: &Path, audit: &Audit, started: SystemTime) -> ArtifactScope {
    ArtifactScope {
        roots: vec![tmp.to_path_buf()],
        files: vec![audit.path()],
        since: started,
        env: std::env::vars_os().collect(),
        fd_dir: None,
        logs: vec![LogText {
            location: "test log".into(),
            text: b"no token here\n".to_vec(),
        }],
        limits: ScanLimits::default(),
    }
}

async fn audited(
    cluster: &FakeCluster,
    outcome: &ScanOutcome,
    audit: &Audit,
    tmp: &Path,
) -> PostScanReport {
    let started = outcome
        .postscan
        .started
        .expect("the scan records its start");
    audit_scan(
        &cluster.client_admin(),
        &outcome.postscan,
        audit,
        scope(tmp, audit, started),
    )
    .await
}

fn failed(r: &PostScanReport) -> Vec<CheckId> {
    r.checks
        .iter()
        .filter(|c| c.outcome == Outcome::Failed)
        .map(|c| c.check)
        .collect()
}

fn setup(name: &str) -> (FakeCluster, PathBuf, PathBuf) {
    let cluster = cluster();
    cluster.set_exec_handler(host_shell);
    let dir = scratch(name);
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    (cluster, dir, tmp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_scan_passes_every_post_scan_check() {
    let (cluster, dir, tmp) = setup("postscan-clean");
    let (outcome, audit) = scan(&cluster, &dir, FakeScoped::new(&cluster)).await;
    let e = &outcome.postscan;
    assert_eq!(e.run_ids, vec![outcome_run_id(&outcome, &audit)]);
    assert_eq!(e.tokens.len(), 1, "one token minted, fingerprinted");
    assert_eq!(e.objects.len(), 4, "{:?}", e.objects);
    let r = audited(&cluster, &outcome, &audit, &tmp).await;
    for c in &r.checks {
        assert_eq!(c.outcome, Outcome::Passed, "{c:#?}");
    }
    assert_eq!(exit_after(&r, 0), 0);
    assert_eq!(exit_after(&r, 1), 1);
    // The fresh GETs were the user's, and were GETs.
    let gets = cluster
        .calls()
        .iter()
        .rev()
        .take(4)
        .filter(|c| c.method == "GET" && matches!(c.identity, keyhole_testkit::Identity::Admin))
        .count();
    assert_eq!(gets, 4, "the last four calls re-read the four objects");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The run id, as the audit log recorded it.
fn outcome_run_id(_o: &ScanOutcome, audit: &Audit) -> String {
    let log = audit.read_verified().unwrap();
    let first: keyhole_audit::Record =
        serde_json::from_str(log.text.lines().next().unwrap()).unwrap();
    first.run_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leftover_rolebinding_is_found_by_a_fresh_get_and_exits_4() {
    let (cluster, dir, tmp) = setup("postscan-leftover");
    let (outcome, audit) = scan(&cluster, &dir, FakeScoped::new(&cluster)).await;
    // The teardown verified everything gone; then the run's RoleBinding is back (a lagging
    // replica, a controller re-creating it): seeded with the run's name and label.
    let run_id = outcome_run_id(&outcome, &audit);
    let rb: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("keyhole-{run_id}"), "namespace": NS,
                     "labels": {"keyhole.dev/run-id": run_id, "app.kubernetes.io/managed-by": "keyhole"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": format!("keyhole-{run_id}")},
        "subjects": [{"kind": "ServiceAccount", "name": format!("keyhole-{run_id}"), "namespace": NS}],
    }))
    .unwrap();
    cluster.insert(&rb).unwrap();
    let r = audited(&cluster, &outcome, &audit, &tmp).await;
    assert_eq!(failed(&r), vec![CheckId::Cleanup], "{:#?}", r.checks);
    let f = r.findings();
    assert_eq!(f.len(), 1);
    assert!(
        f[0].detail.starts_with(&format!(
            "RoleBinding {NS}/keyhole-{run_id} is still present"
        )),
        "{}",
        f[0].detail
    );
    assert_eq!(exit_after(&r, 0), 4);
    assert_eq!(exit_after(&r, 3), 4, "leftovers win over every other code");
    // The audit log says it too, after the run's end (which said 0: teardown had verified).
    let records = crate::support::audit_records(&dir.join("audit.jsonl"));
    let (rest, last) = crate::support::split_postscan(&records);
    assert_eq!(crate::support::clean_ending(rest).0, 0);
    match last {
        Some(keyhole_audit::Event::PostScanAudited {
            checks,
            findings,
            exit_code,
        }) => {
            assert_eq!((*checks, *exit_code), (11, 4));
            assert_eq!(findings.len(), 1, "{findings:?}");
            assert!(
                findings[0].starts_with(&format!(
                    "post-scan cleanup: RoleBinding {NS}/keyhole-{run_id} is still present"
                )),
                "{findings:?}"
            );
        }
        other => panic!("no post-scan record after run_ended: {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A scoped-client factory with a bug: it writes the token to a temp file.
struct LeakyScoped {
    inner: Arc<FakeScoped>,
    file: PathBuf,
}

impl ScopedClients for LeakyScoped {
    fn client(&self, token: &ScopedToken) -> Result<kube::Client, keyhole_cli::SessionError> {
        std::fs::write(
            &self.file,
            format!("debug dump\ntoken={}\n", token.secret().expose_secret()),
        )
        .unwrap();
        self.inner.client(token)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_written_to_a_temp_file_is_found_and_exits_6() {
    let (cluster, dir, tmp) = setup("postscan-token-file");
    let leak = tmp.join("nested/scoped-client.log");
    std::fs::create_dir_all(leak.parent().unwrap()).unwrap();
    let scoped = Arc::new(LeakyScoped {
        inner: FakeScoped::new(&cluster),
        file: leak.clone(),
    });
    let (outcome, audit) = scan(&cluster, &dir, scoped.clone()).await;
    let r = audited(&cluster, &outcome, &audit, &tmp).await;
    assert_eq!(
        failed(&r),
        vec![CheckId::CredentialFiles],
        "{:#?}",
        r.checks
    );
    let f = r.findings();
    assert_eq!(f.len(), 1);
    assert!(
        f[0].detail.contains(&leak.display().to_string()),
        "{}",
        f[0].detail
    );
    // It says where, never what.
    let token = scoped.inner.tokens.lock().unwrap()[0].clone();
    assert!(!format!("{r:?}").contains(&token));
    assert_eq!(exit_after(&r, 0), 6);
    assert_eq!(exit_after(&r, 1), 6);
    assert_eq!(exit_after(&r, 3), 3, "a scan error keeps its code");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bumps the container's restart count, as the kubelet reports a crash and restart.
fn restart(cluster: &FakeCluster) {
    let pod: Pod = cluster.object(NS, POD).unwrap();
    let mut status = pod.status.unwrap();
    let c = &mut status.container_statuses.as_mut().unwrap()[0];
    c.restart_count += 1;
    c.container_id = Some(format!("containerd://{}", "e".repeat(64)));
    cluster.set_pod_status(NS, POD, &status).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_restarted_during_the_scan_is_a_side_effect_and_exits_6() {
    let (cluster, dir, tmp) = setup("postscan-restart");
    let c = cluster.clone();
    cluster.set_exec_handler(move |req| {
        let out = host_shell(req);
        restart(&c);
        out
    });
    let (outcome, audit) = scan(&cluster, &dir, FakeScoped::new(&cluster)).await;
    let r = audited(&cluster, &outcome, &audit, &tmp).await;
    assert_eq!(
        failed(&r),
        vec![
            CheckId::TargetRestarts,
            CheckId::TargetContainers,
            CheckId::TargetResourceVersion
        ],
        "{:#?}",
        r.checks
    );
    assert!(
        r.get(CheckId::TargetRestarts).unwrap().evidence[0].contains(&format!(
            "{NS}/{POD}: container app: restartCount 0 before, 1 after"
        )),
        "{:?}",
        r.get(CheckId::TargetRestarts)
    );
    assert_eq!(exit_after(&r, 0), 6);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_post_scan_findings_and_exits_6_on_a_restart() {
    let served = crate::support::Served::new("postscan-binary").await;
    let profile = served.dir.join("profile.yaml");
    std::fs::write(&profile, PROFILE).unwrap();
    let scan = |restart_target: bool| {
        let c = served.cluster.clone();
        served.cluster.set_exec_handler(move |req| {
            let out = host_shell(req);
            if restart_target {
                restart(&c);
            }
            out
        });
        served
            .keyhole(
                &[
                    "scan",
                    POD,
                    "-n",
                    NS,
                    "--mode",
                    "standard",
                    "--profile",
                    profile.to_str().unwrap(),
                    "--kubeconfig",
                    served.kubeconfig.to_str().unwrap(),
                    "--audit-log",
                    served.audit.to_str().unwrap(),
                ],
                // Diagnostics on: their lines are searched for the token too.
                &[("KEYHOLE_API_TIMEOUT", "20s"), ("KEYHOLE_LOG", "debug")],
            )
            .spawn()
            .unwrap()
    };
    let clean = crate::support::finish(scan(false)).await;
    assert_eq!(clean.code, Some(0), "stderr {}", clean.stderr);
    assert!(
        clean
            .stderr
            .contains("post-scan audit: all 11 checks passed"),
        "{}",
        clean.stderr
    );
    // The token search covered the diagnostics it wrote (debug level: not empty) and the
    // process's own descriptors and environment.
    let searched = clean
        .stderr
        .lines()
        .find(|l| l.contains("post-scan token search:"))
        .unwrap_or_else(|| panic!("no search summary: {}", clean.stderr));
    let log_bytes: usize = searched
        .split("KEYHOLE_LOG diagnostics on stderr: ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .unwrap_or_else(|| panic!("{searched}"))
        .parse()
        .unwrap();
    assert!(log_bytes > 1_000, "{searched}");
    assert!(
        searched.contains("memfd(s) and open deleted file(s) searched"),
        "{searched}"
    );
    assert!(!searched.contains(" 0 variable(s) searched"), "{searched}");
    let restarted = crate::support::finish(scan(true)).await;
    assert_eq!(restarted.code, Some(6), "stderr {}", restarted.stderr);
    // Each run's records end with what its post-scan audit found and the code it gave: the
    // log agrees with the exit codes (0, then 6 where run_ended said 0).
    let records = crate::support::audit_records(&served.audit);
    let mut runs: Vec<&str> = Vec::new();
    for r in &records {
        if !runs.contains(&r.run_id.as_str()) {
            runs.push(&r.run_id);
        }
    }
    assert_eq!(runs.len(), 2, "two scans");
    let postscan: Vec<(i32, Vec<String>)> = runs
        .iter()
        .map(|run| {
            let mine: Vec<keyhole_audit::Record> = records
                .iter()
                .filter(|r| r.run_id == *run)
                .cloned()
                .collect();
            assert_eq!(crate::support::clean_ending(&mine).0, 0, "{run}");
            match crate::support::split_postscan(&mine).1 {
                Some(keyhole_audit::Event::PostScanAudited {
                    exit_code,
                    findings,
                    ..
                }) => (*exit_code, findings.clone()),
                other => panic!("{run}: no post-scan record: {other:?}"),
            }
        })
        .collect();
    assert_eq!(postscan[0], (0, vec![]));
    assert_eq!(postscan[1].0, 6);
    assert!(
        postscan[1]
            .1
            .iter()
            .any(|f| f.starts_with("post-scan target-restarts: prod/web-0")),
        "{:?}",
        postscan[1].1
    );
    assert!(
        restarted
            .stderr
            .contains("post-scan target-restarts: prod/web-0: container app: restartCount"),
        "{}",
        restarted.stderr
    );
    assert!(served.cluster.managed_objects().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distroless_may_add_its_own_debug_container_and_nothing_else() {
    let (cluster, dir, tmp) = setup("postscan-distroless");
    // No agent answers on the fake: the gathering fails after the patch (exit 3), and the
    // post-scan audit still runs and judges what the scan left.
    let (outcome, audit) = scan_in(
        &cluster,
        &dir,
        FakeScoped::new(&cluster),
        ScanMode::Distroless,
    )
    .await;
    assert_eq!(outcome.session.exit_code, 3);
    assert_eq!(outcome.traces.len(), 1, "the debug container was added");
    let run_id = outcome_run_id(&outcome, &audit);
    assert_eq!(
        outcome.postscan.targets[0].expected_ephemeral,
        vec![format!("keyhole-{run_id}")]
    );
    let r = audited(&cluster, &outcome, &audit, &tmp).await;
    assert_eq!(failed(&r), vec![], "{:#?}", r.checks);
    let notes = &r.get(CheckId::TargetResourceVersion).unwrap().evidence;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("the expected ephemeral container changed it")),
        "{notes:?}"
    );
    assert_eq!(exit_after(&r, 3), 3);

    // A second debug container added by someone else during a scan is a finding.
    let (cluster, dir, tmp) = setup("postscan-distroless-extra");
    let c = cluster.clone();
    let (outcome, audit) = {
        let scan = scan_in(
            &cluster,
            &dir,
            FakeScoped::new(&cluster),
            ScanMode::Distroless,
        );
        let intruder = async move {
            // Wait for the scan's own patch, then someone else (an admin) adds a container.
            let api: kube::Api<Pod> = kube::Api::namespaced(c.client_admin(), NS);
            for _ in 0..500 {
                let pod: Pod = c.object(NS, POD).unwrap();
                if pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.ephemeral_containers.as_ref())
                    .is_some_and(|v| !v.is_empty())
                {
                    let patch = serde_json::json!({"spec": {"ephemeralContainers": [{
                        "name": "intruder",
                        "image": "registry.example/debug@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                        "targetContainerName": "app",
                    }]}});
                    api.patch_ephemeral_containers(
                        POD,
                        &kube::api::PatchParams::default(),
                        &kube::api::Patch::Strategic(patch),
                    )
                    .await
                    .unwrap();
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            panic!("the scan never added its debug container");
        };
        let (scanned, ()) = tokio::join!(scan, intruder);
        scanned
    };
    let r = audited(&cluster, &outcome, &audit, &tmp).await;
    assert!(
        failed(&r).contains(&CheckId::TargetEphemeral),
        "{:#?}",
        r.checks
    );
    assert!(
        r.findings()
            .iter()
            .any(|f| f.detail.contains("unexpected ephemeral container intruder")),
        "{:?}",
        r.findings()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_diagnostics_writer_keeps_what_it_writes_for_the_search() {
    let line = format!("postscan-tee-probe {}\n", std::process::id());
    std::io::Write::write_all(&mut keyhole_cli::postscan::tee_stderr(), line.as_bytes()).unwrap();
    let copy = keyhole_cli::postscan::captured_log();
    assert!(
        copy.text.windows(line.len()).any(|w| w == line.as_bytes()),
        "the copy misses the line"
    );
    assert!(
        copy.location
            .starts_with("KEYHOLE_LOG diagnostics on stderr")
    );
}
