//! The pre-scan gate of `keyhole scan` (`keyhole_cli::prescan`, `keyhole-precheck`) and the
//! run's reports (`--report`, `--format sarif`, `keyhole-report`), against the testkit fake:
//! an abort verdict makes no write call (the fake's call record) and leaves nothing; warnings
//! do not stop the scan; the network checks judged from the scan's own socket tables can still
//! abort after teardown; the HDF carries a schema-valid `keyhole-precheck` profile; the reports
//! say what the run did, read back from its audit records.
//!
//! The scans that run need root and real processes (see `cluster_scan.rs`); a missing tool
//! fails the test and says what to install.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use keyhole_audit::{AuditLog, Event};
use keyhole_cli::cluster_scan::ScanRequest;
use keyhole_cli::prescan::scan_gated;
use keyhole_cli::session::{Audit, SessionSpec};
use keyhole_core::ScanMode;
use keyhole_engine::{Inputs, Profile, Waivers};
use keyhole_precheck::{CheckId, Outcome, Policy};
use keyhole_testkit::{FakeCluster, Identity};
use serde_json::{Value, json};

use crate::cluster_scan::{Container, distroless_options, exec_in, require_root, rootfs};
use crate::support::{
    FakeScoped, NS, POD, Served, audit_records, endpoint, fast_policy, run, scratch,
};

/// The fake with `prod/web-0` (container `app`) running, its container's security context
/// being `security` (`null` for none).
pub(crate) fn cluster_with(security: Value) -> FakeCluster {
    cluster_with_spec(security, json!({}))
}

/// [`cluster_with`], with the fields of `spec` added to the pod spec.
fn cluster_with_spec(security: Value, spec: Value) -> FakeCluster {
    let c = FakeCluster::new();
    c.create_namespace(NS);
    let mut container = json!({"name": "app", "image": "registry.example/app:1.0"});
    if !security.is_null() {
        container["securityContext"] = security;
    }
    let mut pod_spec = json!({"containers": [container], "nodeName": "fake-node"});
    for (k, v) in spec.as_object().unwrap() {
        pod_spec[k] = v.clone();
    }
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": POD, "namespace": NS},
        "spec": pod_spec,
    }))
    .unwrap();
    c.insert(&pod).unwrap();
    c.set_pod_running(NS, POD).unwrap();
    c
}

fn request(cluster: &FakeCluster, profile: &Profile) -> ScanRequest {
    let run = run(ScanMode::Standard);
    ScanRequest {
        run: run.clone(),
        container: None,
        profile: profile.clone(),
        inputs: Inputs::defaults(profile),
        waivers: Waivers::none(),
        session: SessionSpec {
            run,
            cluster: endpoint(cluster),
            audiences: vec![],
            command: vec![],
            work: None,
            policy: fast_policy(),
        },
        distroless: Some(distroless_options()),
        max_age: std::time::Duration::from_secs(3600),
    }
}

/// `METHOD path` of every call that is not a read.
fn writes(cluster: &FakeCluster) -> Vec<String> {
    cluster
        .calls()
        .iter()
        .filter(|c| c.method != "GET")
        .map(|c| format!("{} {}", c.method, c.path))
        .collect()
}

fn exec_schema() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/hdf-schema/exec-json.json"
        );
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        jsonschema::validator_for(&schema).expect("exec-json.json compiles")
    })
}

pub(crate) fn sarif_schema() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/sarif/sarif-schema-2.1.0.json"
        );
        let mut schema: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        // As crates/report/tests/it/sarif.rs: the jsonschema crate refuses the schema's lone
        // `]` in the `language` pattern; escaping it keeps its meaning.
        for owner in ["run", "toolComponent"] {
            let language = &mut schema["definitions"][owner]["properties"]["language"]["pattern"];
            assert_eq!(language, "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$");
            *language = json!("^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}\\]?$");
        }
        jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .expect("the SARIF schema compiles")
    })
}

pub(crate) fn assert_valid(schema: &jsonschema::Validator, doc: &Value, what: &str) {
    let errors: Vec<String> = schema
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} is not schema-valid:\n{}",
        errors.join("\n")
    );
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn profile_names(hdf: &Value) -> Vec<String> {
    hdf["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Each aborting pod — privileged, in the host's PID namespace, absent — stops the scan with
/// exactly one call, the user's GET of the pod: no SelfSubjectReview, no reap, no create.
/// Nothing exists afterwards, and the audit log records the run's end with exit 5.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_verdict_makes_no_write_call_and_leaves_nothing() {
    let privileged = cluster_with(json!({"privileged": true}));
    let host_pid = cluster_with_spec(Value::Null, json!({"hostPID": true}));
    let missing = FakeCluster::new();
    missing.create_namespace(NS);
    let profile = Profile::builtin("container-baseline").unwrap();
    for (cluster, check, evidence) in [
        (
            &privileged,
            CheckId::Privileged,
            ("spec.containers[0].securityContext.privileged", "true"),
        ),
        (&host_pid, CheckId::HostPid, ("spec.hostPID", "true")),
        (
            &missing,
            CheckId::TargetExists,
            ("pods/prod/web-0", "404 Not Found"),
        ),
    ] {
        let dir = scratch("gate-abort");
        let log = dir.join("audit.jsonl");
        let req = request(cluster, &profile);
        let run_id = req.run.id().to_string();
        let audit = Audit::new(AuditLog::open(&log).unwrap(), &run_id);
        let gated = scan_gated(
            cluster.client_admin(),
            req,
            &Policy::builtin(),
            FakeScoped::new(cluster),
            audit,
        )
        .await
        .expect("the gate runs");
        assert!(gated.scan.is_none(), "{check}: the scan must not start");
        assert!(gated.aborted());
        let v = &gated.verdicts[0];
        let failed = v.get(check).unwrap();
        assert_eq!(failed.outcome, Outcome::Failed, "{check}: {failed:?}");
        assert!(
            failed
                .evidence
                .iter()
                .any(|e| (e.path.as_str(), e.value.as_str()) == evidence),
            "{check}: {:?}",
            failed.evidence
        );
        // One call, a read, by the user.
        let calls = cluster.calls();
        let shapes: Vec<String> = calls
            .iter()
            .map(|c| format!("{} {}", c.method, c.path))
            .collect();
        assert_eq!(
            shapes,
            [format!("GET /api/v1/namespaces/{NS}/pods/{POD}")],
            "{check}"
        );
        assert!(matches!(calls[0].identity, Identity::Admin));
        assert!(writes(cluster).is_empty());
        assert!(cluster.managed_objects().is_empty());
        assert!(cluster.execs().is_empty());
        let records = audit_records(&log);
        assert_eq!(records.len(), 1, "{records:?}");
        match &records[0].event {
            Event::RunEnded { exit_code, outcome } => {
                assert_eq!(*exit_code, 5);
                assert!(outcome.contains(check.as_str()), "{outcome}");
            }
            e => panic!("{e:?}"),
        }
    }
}

/// The counterpart: a pod whose verdict only warns (no security context: run-as-root,
/// seccomp, privilege escalation, no digest) goes on to the session, whose first write is
/// the SelfSubjectReview — so the zero-write assertion above can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warning_verdict_lets_the_scan_start() {
    let cluster = cluster_with(Value::Null);
    let profile = Profile::builtin("container-baseline").unwrap();
    let dir = scratch("gate-warn");
    let req = request(&cluster, &profile);
    let audit = Audit::new(
        AuditLog::open(&dir.join("audit.jsonl")).unwrap(),
        req.run.id().as_str(),
    );
    let gated = scan_gated(
        cluster.client_admin(),
        req,
        &Policy::builtin(),
        FakeScoped::new(&cluster),
        audit,
    )
    .await
    .expect("the gate runs");
    let v = &gated.verdicts[0];
    assert!(!v.aborts());
    let warned: Vec<CheckId> = v.failures().map(|c| c.check).collect();
    for c in [
        CheckId::RunAsRoot,
        CheckId::SeccompUnconfined,
        CheckId::PrivilegeEscalation,
        CheckId::ImagePinned,
    ] {
        assert!(warned.contains(&c), "{c} not warned: {warned:?}");
    }
    // The scan ran (its exec has no handler here, so it fails) and cleaned up.
    let scan = gated.scan.expect("the scan started");
    assert!(!writes(&cluster).is_empty());
    assert!(scan.session.cleanup.is_clean());
    assert!(cluster.managed_objects().is_empty());
}

/// A listener on 8080 inside the container's network namespace (busybox `nc -l`), killed on
/// drop.
struct Listener(Child);

impl Listener {
    fn start(container_pid: u32) -> Self {
        let child = Command::new("nsenter")
            .arg(format!("--target={container_pid}"))
            .args(["--net", "--", "busybox", "nc", "-l", "-p", "8080"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nsenter (util-linux) and busybox (busybox-static) are installed");
        // Owned at once, so a failure below still kills and reaps it.
        let listener = Self(child);
        // 8080 is 1F90; state 0A is LISTEN. busybox listens on `::` (tcp6) where IPv6 is on.
        let table = format!("/proc/{container_pid}/net/tcp{{,6}}");
        for _ in 0..500 {
            let text = ["tcp", "tcp6"]
                .map(|t| {
                    std::fs::read_to_string(format!("/proc/{container_pid}/net/{t}"))
                        .unwrap_or_default()
                })
                .concat();
            if text
                .lines()
                .any(|l| l.contains(":1F90 ") && l.split_whitespace().nth(3) == Some("0A"))
            {
                return listener;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the listener on 8080 never appeared in {table}");
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Through the binary: the network checks are judged from the scan's own socket tables, after
/// teardown. With `network-listeners: abort`, a listener on 8080 aborts the verdict: exit 5,
/// the check and its socket on stderr, the HDF holds only the keyhole-precheck profile (the
/// scan's results are not reported), and cleanup is still verified complete. Allowing tcp/8080
/// in the same policy lets the same scan pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_check_aborts_the_verdict_after_the_scan() {
    require_root();
    let root = scratch("gate-net-root");
    rootfs(&root, true);
    let container = Container::start(&root);
    let _listener = Listener::start(container.pid);
    let served = Served::with("gate-net", cluster_with(Value::Null), |s| {
        s.kubeconfig_yaml_admin()
    })
    .await;
    served.cluster.set_exec_handler(exec_in(container.pid));
    let strict = served.dir.join("strict-net.yaml");
    std::fs::write(&strict, "checks:\n  network-listeners: abort\n").unwrap();
    let allowing = served.dir.join("allow-8080.yaml");
    std::fs::write(
        &allowing,
        "checks:\n  network-listeners: abort\nallow:\n  listen-ports: [tcp/8080]\n",
    )
    .unwrap();
    let out = served.dir.join("hdf.json");
    let report = served.dir.join("report.json");
    for (policy, want) in [(&strict, 5), (&allowing, 0)] {
        let _ = std::fs::remove_file(&out);
        let child = served
            .keyhole(
                &served.as_user(&[
                    "scan",
                    POD,
                    "-n",
                    NS,
                    "--mode",
                    "standard",
                    "--policy",
                    policy.to_str().unwrap(),
                    "--out",
                    out.to_str().unwrap(),
                    "--report",
                    report.to_str().unwrap(),
                ]),
                &[("KEYHOLE_API_TIMEOUT", "20s")],
            )
            .spawn()
            .unwrap();
        let f = crate::support::finish(child).await;
        assert_eq!(
            f.code,
            Some(want),
            "stdout {}\nstderr {}",
            f.stdout,
            f.stderr
        );
        assert!(
            f.stderr.contains("cleanup verified complete"),
            "{}",
            f.stderr
        );
        assert!(served.cluster.managed_objects().is_empty());
        // The run's access existed and is gone, whatever the verdict.
        let r = read_json(&report);
        let objects = r["objects"].as_array().unwrap();
        assert_eq!(objects.len(), 4, "{r}");
        assert!(objects.iter().all(|o| o["deleted_at"].is_string()), "{r}");
        assert_eq!(
            r["verdict"]["outcome"],
            if want == 5 { "aborted" } else { "not_judged" },
            "{r}"
        );
        let hdf = read_json(&out);
        assert_valid(exec_schema(), &hdf, "the HDF");
        if want == 5 {
            assert!(
                f.stderr
                    .contains("pre-scan ABORT prod/web-0: network-listeners"),
                "{}",
                f.stderr
            );
            assert!(f.stderr.contains(":8080"), "{}", f.stderr);
            assert!(f.stdout.contains("ABORT (exit 5)"), "{}", f.stdout);
            assert_eq!(profile_names(&hdf), ["keyhole-precheck"]);
        } else {
            assert!(!f.stderr.contains("network-listeners"), "{}", f.stderr);
            assert_eq!(
                profile_names(&hdf),
                ["container-baseline", "keyhole-precheck", "keyhole-postscan"]
            );
        }
    }
    assert_eq!(served.cluster.execs().len(), 2, "both scans ran");
}

/// Through the binary: a privileged target aborts with exit 5 before anything is created. The
/// fake records reads only, the failed check and its evidence are printed, `--out` holds the
/// schema-valid keyhole-precheck profile and the JSON report says ABORTED with no object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_aborts_with_exit_5_and_writes_nothing_to_the_cluster() {
    let served = Served::with(
        "gate-bin-abort",
        cluster_with(json!({"privileged": true})),
        |s| s.kubeconfig_yaml_admin(),
    )
    .await;
    let out = served.dir.join("hdf.json");
    let report = served.dir.join("report.json");
    let child = served
        .keyhole(
            &served.as_user(&[
                "scan",
                POD,
                "-n",
                NS,
                "--out",
                out.to_str().unwrap(),
                "--report",
                report.to_str().unwrap(),
            ]),
            &[],
        )
        .spawn()
        .unwrap();
    let f = crate::support::finish(child).await;
    assert_eq!(f.code, Some(5), "stdout {}\nstderr {}", f.stdout, f.stderr);
    assert!(
        f.stderr.contains("pre-scan ABORT prod/web-0: privileged:"),
        "{}",
        f.stderr
    );
    assert!(
        f.stderr
            .contains("spec.containers[0].securityContext.privileged = true"),
        "{}",
        f.stderr
    );
    assert!(f.stderr.contains("nothing was created"), "{}", f.stderr);
    assert!(f.stdout.contains("ABORT (exit 5)"), "{}", f.stdout);
    assert!(
        f.stdout
            .contains("spec.containers[0].securityContext.privileged = true"),
        "{}",
        f.stdout
    );
    assert!(
        writes(&served.cluster).is_empty(),
        "{:?}",
        writes(&served.cluster)
    );
    assert!(served.cluster.managed_objects().is_empty());
    let hdf = read_json(&out);
    assert_valid(exec_schema(), &hdf, "the HDF");
    assert_eq!(profile_names(&hdf), ["keyhole-precheck"]);
    let privileged = hdf["profiles"][0]["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "precheck-privileged")
        .expect("the privileged check is a control");
    assert_eq!(privileged["results"][0]["status"], "failed");
    let r = read_json(&report);
    assert_eq!(r["verdict"]["outcome"], "aborted", "{r}");
    assert!(
        r["verdict"]["aborted"]
            .as_str()
            .unwrap()
            .contains("privileged"),
        "{r}"
    );
    assert_eq!(r["objects"], json!([]));
    assert_eq!(r["token"], Value::Null);
}

/// A policy that does not parse, and a report whose format cannot be told, are bad input
/// (exit 2) found before any call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_policy_or_report_name_is_bad_input_before_any_call() {
    let served = Served::new("gate-bad-input").await;
    let policy = served.dir.join("policy.yaml");
    std::fs::write(&policy, "checks:\n  privileged: sometimes\n").unwrap();
    for (flag, value, says) in [
        ("--policy", policy.to_str().unwrap(), "policy.yaml"),
        ("--report", "report.txt", "--report-format"),
    ] {
        let child = served
            .keyhole(
                &[
                    "scan",
                    POD,
                    "-n",
                    NS,
                    "--kubeconfig",
                    served.kubeconfig.to_str().unwrap(),
                    flag,
                    value,
                ],
                &[],
            )
            .spawn()
            .unwrap();
        let f = crate::support::finish(child).await;
        assert_eq!(f.code, Some(2), "{flag}: {}", f.stderr);
        assert!(f.stderr.contains(says), "{flag}: {}", f.stderr);
        assert!(served.cluster.calls().is_empty(), "{flag}");
    }
}

/// Through the binary, a scan that proceeds: warnings on stderr, the HDF with both profiles
/// (schema-valid), SARIF on stdout (schema-valid, with the pre-scan rules), and a JSON report
/// whose objects, times and token lifetime are those of the run's audit records. An HTML
/// report of the same scan is one self-contained page naming the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_that_proceeds_reports_the_run() {
    require_root();
    let root = scratch("gate-report-root");
    rootfs(&root, true);
    let container = Container::start(&root);
    let served = Served::new("gate-report").await;
    served.cluster.set_exec_handler(exec_in(container.pid));
    let lax = served.dir.join("lax.yml");
    std::fs::write(&lax, "compliance:\n  min: 0\n").unwrap();
    let out = served.dir.join("hdf.json");
    let report = served.dir.join("report.json");
    let html = served.dir.join("report.page");
    let base = [
        "scan",
        POD,
        "-n",
        NS,
        "--mode",
        "standard",
        "--kubeconfig",
        served.kubeconfig.to_str().unwrap(),
        "--audit-log",
        served.audit.to_str().unwrap(),
        "--threshold",
        lax.to_str().unwrap(),
    ];
    let mut args = base.to_vec();
    args.extend([
        "--format",
        "sarif",
        "--out",
        out.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    let child = served
        .keyhole(&args, &[("KEYHOLE_API_TIMEOUT", "20s")])
        .spawn()
        .unwrap();
    let f = crate::support::finish(child).await;
    assert_eq!(f.code, Some(0), "stdout {}\nstderr {}", f.stdout, f.stderr);
    // Warn-level findings are warnings; the scan went on.
    for check in ["run-as-root", "seccomp-unconfined", "image-pinned"] {
        assert!(
            f.stderr
                .contains(&format!("warning: pre-scan warn prod/web-0: {check}:")),
            "{check}: {}",
            f.stderr
        );
    }
    assert!(served.cluster.managed_objects().is_empty());

    let hdf = read_json(&out);
    assert_valid(exec_schema(), &hdf, "the HDF");
    // The run's post-scan audit follows the pre-scan verdict.
    assert_eq!(
        profile_names(&hdf),
        ["container-baseline", "keyhole-precheck", "keyhole-postscan"]
    );

    let sarif: Value = serde_json::from_str(&f.stdout).expect("stdout is the SARIF log");
    assert_valid(sarif_schema(), &sarif, "the SARIF log");
    let rules: Vec<&str> = sarif["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(
        rules.contains(&"keyhole-precheck/precheck-run-as-root"),
        "{rules:?}"
    );

    // The report against the audit log, written by hand from its records.
    let records = audit_records(&served.audit);
    let run_id = records
        .iter()
        .find(|r| matches!(r.event, Event::ObjectCreated(_)))
        .map(|r| r.run_id.clone())
        .expect("the run created objects");
    let r = read_json(&report);
    assert_eq!(r["run_id"], run_id.as_str());
    assert_eq!(r["verdict"]["outcome"], "passed");
    assert_eq!(r["mode"], "standard");
    assert_eq!(r["targets"], json!(["prod/web-0/app"]));
    // The post-scan audit's checks, all passed on this clean run.
    assert_eq!(r["postscan"]["profile"], "keyhole-postscan");
    assert_eq!(r["postscan"]["problems"], 0, "{}", r["postscan"]);
    assert_eq!(r["postscan"]["checks"].as_array().unwrap().len(), 11);
    let mut kinds: Vec<&str> = r["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["Role", "RoleBinding", "Secret", "ServiceAccount"]);
    let time = |v: &Value| -> jiff::Timestamp { v.as_str().unwrap().parse().unwrap() };
    for o in r["objects"].as_array().unwrap() {
        let created = records
            .iter()
            .find(|rec| matches!(&rec.event, Event::ObjectCreated(x) if x.name == o["name"] && x.kind == o["kind"]))
            .expect("the audit log has the creation");
        assert_eq!(time(&o["created_at"]), created.time.parse().unwrap());
        assert!(time(&o["deleted_at"]) >= time(&o["created_at"]), "{o}");
    }
    let issued = records
        .iter()
        .find_map(|rec| match &rec.event {
            Event::TokenIssued { expires_at, .. } => Some((rec.time.clone(), expires_at.clone())),
            _ => None,
        })
        .expect("a token was issued");
    assert_eq!(time(&r["token"]["issued_at"]), issued.0.parse().unwrap());
    assert_eq!(time(&r["token"]["expires_at"]), issued.1.parse().unwrap());
    assert!(time(&r["token"]["revoked_at"]) >= time(&r["token"]["issued_at"]));
    assert!(time(&r["token"]["revoked_at"]) < time(&r["token"]["expires_at"]));
    assert_eq!(r["precheck"]["profile"], "keyhole-precheck");

    // HTML by --report-format, whatever the extension.
    let mut args = base.to_vec();
    args.extend([
        "--report",
        html.to_str().unwrap(),
        "--report-format",
        "html",
    ]);
    let child = served
        .keyhole(&args, &[("KEYHOLE_API_TIMEOUT", "20s")])
        .spawn()
        .unwrap();
    let f = crate::support::finish(child).await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"), "{}", &page[..60]);
    let second_run = audit_records(&served.audit)
        .iter()
        .rev()
        .find(|r| matches!(r.event, Event::ObjectCreated(_)))
        .map(|r| r.run_id.clone())
        .unwrap();
    assert_ne!(second_run, run_id);
    assert!(page.contains(&second_run), "the page names its run");
    assert!(!page.contains("<script"), "no script");
    assert!(served.cluster.managed_objects().is_empty());
}

/// `--format sarif` and `--report` on a local scan (`--root`): schema-valid SARIF, mode
/// `local`, no objects, no token.
#[test]
fn a_local_scan_gives_sarif_and_a_report() {
    require_root();
    let dir = scratch("gate-local");
    rootfs(&dir.join("root"), false);
    let report = dir.join("r.md");
    let out = Command::new(env!("CARGO_BIN_EXE_keyhole"))
        .args(["scan", "--root"])
        .arg(dir.join("root"))
        .args(["--format", "sarif", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sarif: Value = serde_json::from_slice(&out.stdout).expect("stdout is SARIF");
    assert_valid(sarif_schema(), &sarif, "the SARIF log");
    assert_eq!(sarif["runs"][0]["properties"]["mode"], "local");
    assert!(
        !sarif["runs"][0]["results"].as_array().unwrap().is_empty(),
        "the test root fails controls (a private key, a world-writable /tmp)"
    );
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.starts_with("# Keyhole scan report"), "{md}");
    assert!(md.contains("| Mode | local |"), "{md}");
    assert!(md.contains("No token was issued."), "{md}");
}

/// A pod with two containers and no `-c` is refused before anything is created (the scan
/// would not know which one to reach), naming the containers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_container_is_refused_before_anything_is_created() {
    let cluster = FakeCluster::new();
    cluster.add_running_pod(NS, POD, &["app", "db"]).unwrap();
    let profile = Profile::builtin("container-baseline").unwrap();
    let dir = scratch("gate-ambiguous");
    let req = request(&cluster, &profile);
    let audit = Audit::new(
        AuditLog::open(&dir.join("audit.jsonl")).unwrap(),
        req.run.id().as_str(),
    );
    let e = scan_gated(
        cluster.client_admin(),
        req,
        &Policy::builtin(),
        FakeScoped::new(&cluster),
        audit,
    )
    .await
    .expect_err("refused");
    assert!(
        matches!(e, keyhole_cli::cluster_scan::ScanError::ChooseContainer(_)),
        "{e:?}"
    );
    assert!(e.to_string().contains("app, db"), "{e}");
    assert!(e.to_string().contains("-c CONTAINER"), "{e}");
    assert!(writes(&cluster).is_empty(), "{:?}", writes(&cluster));
    assert!(cluster.managed_objects().is_empty());
}
