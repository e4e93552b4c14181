//! `keyhole scan` of a pod in the standard workflow, through the library
//! (`keyhole_cli::cluster_scan`) against the testkit fake, with REAL facts: the fake's exec
//! handler runs the script it received on stdin with busybox `sh` inside a real "container" (a
//! process in its own PID and mount namespaces, chrooted into a busybox root, started with
//! `unshare`; entered with `nsenter` as a runtime's exec does). The result is compared with the
//! local `keyhole scan --pid` path (`LocalRoot::process` of the same process).
//!
//! Needs root, `unshare`/`nsenter` (util-linux) and `busybox-static`; a missing one fails the
//! test and says what to install.

use std::io::Write as _;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use jiff::Timestamp;
use keyhole_audit::AuditLog;
use keyhole_cli::cluster_scan::{ScanRequest, scan_cluster};
use keyhole_cli::session::{Audit, SessionSpec};
use keyhole_core::ScanMode;
use keyhole_engine::{
    FactError, FactRequest, FactSource as _, FactValue, Facts, Inputs, LocalRoot, ProcFile,
    Profile, Waivers,
};
use keyhole_testkit::{ExecResponse, FakeCluster, Identity};
use serde_json::Value;

use crate::support::{
    FakeScoped, NS, POD, audit_records, cluster, endpoint, fast_policy, run, scratch,
};

fn require(program: &str, package: &str) -> PathBuf {
    for dir in ["/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return p;
        }
    }
    panic!("`{program}` is missing: these tests need it (apt-get install -y {package})");
}

pub(crate) fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the cluster-scan tests start real namespaced processes and need root"
    );
}

/// A root filesystem: busybox as `/busybox`, with `/bin/sh` and the applets linked only when
/// `with_shell`; an os-release, a private file, a world-writable directory and an absolute
/// symlink pointing at a host path (which must resolve inside the root).
pub(crate) fn rootfs(dir: &Path, with_shell: bool) {
    let busybox = require("busybox", "busybox-static");
    for d in [
        "bin",
        "dev",
        "etc",
        "proc",
        "tmp",
        "home/app",
        "var/lib/dpkg",
        "usr/bin",
    ] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    // Every container runtime provides /dev/null.
    let mknod = Command::new(require("mknod", "coreutils"))
        .arg("-m666")
        .arg(dir.join("dev/null"))
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(mknod.success(), "mknod /dev/null");
    std::fs::copy(&busybox, dir.join("busybox")).unwrap();
    if with_shell {
        let list = Command::new(&busybox).arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            let _ = symlink("/busybox", dir.join("bin").join(applet));
        }
    }
    std::fs::write(
        dir.join("etc/os-release"),
        "ID=keyholetest\nVERSION_ID=\"1.0\"\nPRETTY_NAME=\"keyhole test root\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:10001:10001::/home/app:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(dir.join("etc/shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
    std::fs::write(
        dir.join("home/app/key"),
        "-----BEGIN OPENSSH PRIVATE KEY-----\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir.join("tmp"), std::fs::Permissions::from_mode(0o777)).unwrap();
    // Absolute symlink to a path that exists on the host: must resolve inside the root.
    let _ = symlink("/etc/hostname", dir.join("etc/hostname"));
}

/// A process standing for the container's main process: PID 1 of its own PID (and network)
/// namespace, in
/// its own mount namespace with that namespace's /proc, chrooted into `root`. Killed on drop.
pub(crate) struct Container {
    unshare: Child,
    pub(crate) pid: u32,
}

impl Container {
    pub(crate) fn start(root: &Path) -> Self {
        Self::start_as(root, None)
    }

    /// [`Container::start`] with the main process running as `uid:uid` (no capabilities).
    fn start_as(root: &Path, uid: Option<u32>) -> Self {
        let unshare = require("unshare", "util-linux");
        let child = Command::new(unshare)
            .arg("--pid")
            .arg("--fork")
            .arg("--net")
            .arg("--mount")
            .arg(format!("--mount-proc={}", root.join("proc").display()))
            .arg("chroot")
            .args(uid.map(|u| format!("--userspec={u}:{u}")))
            .arg(root)
            .args(["/busybox", "sleep", "600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare starts");
        // The namespaced PID 1 is unshare's only child.
        let children = format!("/proc/{}/task/{}/children", child.id(), child.id());
        let mut pid = None;
        for _ in 0..200 {
            let text = std::fs::read_to_string(&children).unwrap_or_default();
            if let Some(p) = text
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<u32>().ok())
            {
                // Wait until it runs busybox in the chroot (after unshare's mount and exec).
                let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
                if comm.trim() == "busybox" {
                    pid = Some(p);
                    break;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let pid = pid.expect("the container's main process started");
        Self {
            unshare: child,
            pid,
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-9")
            .arg(self.pid.to_string())
            .status();
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// The fake's exec handler: runs the received argv in the container (its PID and mount
/// namespaces and root, as `runc exec` does) with the received stdin.
pub(crate) fn exec_in(
    container_pid: u32,
) -> impl Fn(&keyhole_testkit::ExecRequest) -> ExecResponse + Send + Sync {
    let nsenter = require("nsenter", "util-linux");
    move |req| {
        let mut child = Command::new(&nsenter)
            .arg(format!("--target={container_pid}"))
            .args(["--pid", "--mount", "--root", "--wd", "--"])
            .args(&req.command)
            .env_clear()
            .env("PATH", "/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nsenter starts");
        let mut stdin = child.stdin.take().unwrap();
        let input = req.stdin.clone();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().unwrap();
        let _ = writer.join();
        ExecResponse {
            stdout: out.stdout,
            stderr: out.stderr,
            exit_code: out.status.code().unwrap_or(128),
        }
    }
}

/// The `/proc/PID/status` lines that say who the process is and what it may do. The others
/// legitimately differ between a reader inside the container's PID namespace (`Pid: 1`) and
/// one outside it (the host's PID), or change while the process runs (memory, switches).
const STATUS_IDENTITY: [&str; 10] = [
    "Uid:",
    "Gid:",
    "Groups:",
    "CapInh:",
    "CapPrm:",
    "CapEff:",
    "CapBnd:",
    "CapAmb:",
    "NoNewPrivs:",
    "Seccomp:",
];

/// Facts with what legitimately differs removed: the OS's wording of I/O errors, and the
/// status lines outside [`STATUS_IDENTITY`].
pub(crate) fn normalise(f: &Facts) -> Vec<String> {
    f.iter()
        .map(|(r, a)| {
            let a = match (r, a) {
                (_, Err(FactError::Io(_))) => Err(FactError::Io(String::new())),
                (
                    FactRequest::Proc {
                        file: ProcFile::Status,
                        ..
                    },
                    Ok(FactValue::Content(c)),
                ) => {
                    let kept: Vec<&str> = std::str::from_utf8(&c.bytes)
                        .unwrap_or_default()
                        .lines()
                        .filter(|l| STATUS_IDENTITY.iter().any(|k| l.starts_with(k)))
                        .collect();
                    assert_eq!(kept.len(), STATUS_IDENTITY.len(), "status lines: {kept:?}");
                    Ok(FactValue::Content(keyhole_engine::Content {
                        bytes: kept.join("\n").into_bytes(),
                        truncated: c.truncated,
                    }))
                }
                (_, other) => other.clone(),
            };
            format!("{r:?} => {a:?}")
        })
        .collect()
}

/// HDF with the clock removed (start times and durations), for comparing two evaluations.
/// The HDF a cluster scan produced, as [`timeless`] makes it, once its platform is checked to
/// name the scanned container (`pod/NAMESPACE/web-0/CONTAINER`; the real API server's tests use
/// namespaces of their own): a local scan's HDF names no pod, so the two compare equal without
/// it.
pub(crate) fn scanned_hdf(exec: &keyhole_hdf::Execution) -> Value {
    let id = exec.platform.target_id.as_deref().unwrap_or_default();
    let parts: Vec<&str> = id.split('/').collect();
    assert!(
        parts.len() == 4
            && parts[0] == "pod"
            && parts[2] == POD
            && !parts[1].is_empty()
            && !parts[3].is_empty(),
        "the HDF's platform does not name the scanned container: {id:?}"
    );
    let mut v = timeless(serde_json::to_value(exec).unwrap());
    if let Some(p) = v["platform"].as_object_mut() {
        p.remove("target_id");
    }
    v
}

pub(crate) fn timeless(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for k in ["start_time", "run_time", "duration"] {
                    m.remove(k);
                }
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

/// Every entry under `root` (skipping the mounted /proc) with its type, mode, owner, size,
/// modification time and content: equal before and after a scan means the scan wrote nothing.
fn tree_state(root: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt as _;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            if path == root.join("proc") {
                continue;
            }
            let m = std::fs::symlink_metadata(&path).unwrap();
            use std::hash::{Hash as _, Hasher as _};
            let mut h = std::hash::DefaultHasher::new();
            if m.is_file() {
                std::fs::read(&path).unwrap().hash(&mut h);
            } else if m.file_type().is_symlink() {
                std::fs::read_link(&path).unwrap().hash(&mut h);
            }
            out.push(format!(
                "{} {:o} {}:{} {} {}.{} {}",
                path.display(),
                m.mode(),
                m.uid(),
                m.gid(),
                m.size(),
                m.mtime(),
                m.mtime_nsec(),
                h.finish()
            ));
            if m.is_dir() {
                stack.push(path);
            }
        }
    }
    out
}

pub(crate) struct Scanned {
    pub(crate) outcome: keyhole_cli::cluster_scan::ScanOutcome,
    pub(crate) records: Vec<keyhole_audit::Record>,
}

async fn scan(cluster: &FakeCluster, profile: &Profile) -> Scanned {
    scan_in(cluster, profile, ScanMode::Standard).await
}

/// Distroless options for the tests: poll often, wait at most a minute.
pub(crate) fn distroless_options() -> keyhole_workflows::DistrolessOptions {
    keyhole_workflows::DistrolessOptions {
        image: keyhole_scanners::ImageRef::parse(
            "ghcr.io/keyhole-scanner/keyhole-agent:0.1.0@sha256:2f1b6c0d9a4e7f3b8c5d1e6a9b0c4d7e2f5a8b1c3d6e9f0a2b4c6d8e0f1a3b5c",
        )
        .unwrap(),
        target_uid: None,
        target_gid: None,
        allow_root: false,
        allow_shared_pid: false,
        namespace_restricted: false,
        poll: std::time::Duration::from_millis(20),
        wait: std::time::Duration::from_secs(60),
    }
}

pub(crate) async fn scan_in(cluster: &FakeCluster, profile: &Profile, mode: ScanMode) -> Scanned {
    scan_with(cluster, profile, mode, distroless_options()).await
}

pub(crate) async fn scan_with(
    cluster: &FakeCluster,
    profile: &Profile,
    mode: ScanMode,
    distroless: keyhole_workflows::DistrolessOptions,
) -> Scanned {
    scan_against(
        cluster.client_admin(),
        endpoint(cluster),
        FakeScoped::new(cluster),
        run(mode),
        profile,
        distroless,
    )
    .await
}

/// One scan of `run` through the library entry point, against any API server: `user` is the
/// user's client, `cluster` the endpoint written into the scoped kubeconfig, `scoped` how
/// scoped clients are made (the fake's in-process ones, or `TlsScopedClients` for a real
/// server). The scenarios share it, whichever server judges them.
pub(crate) async fn scan_against(
    user: kube::Client,
    cluster: keyhole_credentials::ClusterEndpoint,
    scoped: std::sync::Arc<dyn keyhole_cli::session::ScopedClients>,
    run: keyhole_core::Run,
    profile: &Profile,
    distroless: keyhole_workflows::DistrolessOptions,
) -> Scanned {
    let dir = scratch("scan-audit");
    let log_path = dir.join("audit.jsonl");
    let audit = Audit::new(AuditLog::open(&log_path).unwrap(), run.id().as_str());
    let inputs = Inputs::defaults(profile);
    let request = ScanRequest {
        run: run.clone(),
        container: None,
        profile: profile.clone(),
        inputs,
        waivers: Waivers::none(),
        session: SessionSpec {
            run,
            cluster,
            audiences: vec![],
            command: vec![],
            work: None,
            // Real processes answer the exec: a call timeout that leaves them time.
            policy: keyhole_cleanup::RetryPolicy {
                call_timeout: std::time::Duration::from_secs(20),
                ..fast_policy()
            },
        },
        distroless: Some(distroless),
        max_age: std::time::Duration::from_secs(3600),
    };
    let outcome = scan_cluster(user, request, scoped, audit)
        .await
        .expect("the scan starts");
    let records = audit_records(&log_path);
    Scanned { outcome, records }
}

pub(crate) fn is_scoped(i: &Identity) -> bool {
    matches!(i, Identity::ServiceAccount { namespace, .. } if namespace == NS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_scan_gives_the_local_pid_scans_hdf_with_one_scoped_exec_and_leaves_nothing() {
    require_root();
    let root = scratch("standard-root");
    rootfs(&root, true);
    let container = Container::start(&root);
    let cluster = cluster();
    cluster.set_exec_handler(exec_in(container.pid));
    let profile = Profile::builtin("container-baseline").unwrap();
    let before = tree_state(&root);

    let s = scan(&cluster, &profile).await;
    assert_eq!(
        tree_state(&root),
        before,
        "the scan changed the target's files"
    );
    let o = &s.outcome;
    assert_eq!(
        o.session.exit_code,
        0,
        "error: {:?}",
        o.session.error.as_ref().map(ToString::to_string)
    );
    assert!(o.session.error.is_none());
    assert_eq!(o.results.len(), 1);
    let r = &o.results[0];
    assert_eq!(
        (r.target.pod.as_str(), r.target.container.as_str()),
        (POD, "app")
    );
    assert_eq!(r.evaluated.unanswered, 0);

    // Exactly one exec, by the scoped identity, into the target container, script on stdin.
    let execs = cluster.execs();
    assert_eq!(execs.len(), 1, "{execs:?}");
    let e = &execs[0];
    assert_eq!(
        (e.namespace.as_str(), e.pod.as_str(), e.container.as_str()),
        (NS, POD, "app")
    );
    assert_eq!(e.command, ["/bin/sh", "-s"]);
    assert!(!e.tty);
    assert!(is_scoped(&e.identity), "exec ran as {:?}", e.identity);
    assert!(e.stdin.len() > 1000, "the script came on stdin");

    // Every call the scan made after setup came from the scoped identity, and only these.
    let scoped_calls: Vec<String> = cluster
        .calls()
        .into_iter()
        .filter(|c| is_scoped(&c.identity))
        .map(|c| format!("{} {}", c.verb, c.path))
        .collect();
    let pod = format!("/api/v1/namespaces/{NS}/pods/{POD}");
    for c in &scoped_calls {
        assert!(
            c.ends_with("selfsubjectrulesreviews")
                || *c == format!("get {pod}")
                || c.starts_with(&format!("create {pod}/exec"))
                || c.starts_with(&format!("get {pod}/exec")),
            "unexpected scoped call {c}; all: {scoped_calls:?}"
        );
    }
    assert!(
        scoped_calls.iter().any(|c| *c == format!("get {pod}")),
        "{scoped_calls:?}"
    );

    // The same facts and the same HDF as `keyhole scan --pid` of the same process.
    let local = LocalRoot::process(container.pid).expect("the local source opens");
    let plan = keyhole_engine::plan(&profile, &Inputs::defaults(&profile));
    let local_facts = local.gather(&plan);
    let (remote, local_n) = (normalise(&r.facts), normalise(&local_facts));
    assert_eq!(remote.len(), local_n.len(), "different numbers of answers");
    for (a, b) in remote.iter().zip(&local_n) {
        assert_eq!(a, b, "the cluster path and the local --pid scan disagree");
    }
    let now = Timestamp::now();
    let inputs = Inputs::defaults(&profile);
    let cluster_hdf = keyhole_engine::evaluate(&profile, &inputs, &r.facts, &Waivers::none(), now);
    let local_hdf =
        keyhole_engine::evaluate(&profile, &inputs, &local_facts, &Waivers::none(), now);
    assert_eq!(
        timeless(serde_json::to_value(&cluster_hdf).unwrap()),
        timeless(serde_json::to_value(&local_hdf).unwrap())
    );
    // The HDF the scan itself produced is that one too.
    assert_eq!(
        r.evaluated.execution.platform.target_id.as_deref(),
        Some("pod/prod/web-0/app")
    );
    assert_eq!(
        scanned_hdf(&r.evaluated.execution),
        timeless(serde_json::to_value(&local_hdf).unwrap())
    );
    // Facts were really read from the container's root, not the host's.
    let os = local_facts
        .iter()
        .find(|(req, _)| {
            matches!(req, FactRequest::Read { path, .. } if path.as_bytes() == b"/etc/os-release")
        })
        .map(|(_, a)| a.clone());
    assert!(
        matches!(&os, Some(Ok(FactValue::Content(c))) if String::from_utf8_lossy(&c.bytes).contains("keyholetest")),
        "{os:?}"
    );

    // Nothing left, verified, and the audit chain (verified by audit_records) says so.
    assert!(
        cluster.managed_objects().is_empty(),
        "{:?}",
        cluster.managed_objects()
    );
    assert!(o.session.cleanup.is_clean());
    let (code, _) = crate::support::clean_ending(&s.records);
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_without_a_shell_is_a_scan_error_naming_distroless_and_leaves_nothing() {
    require_root();
    let root = scratch("shell-less-root");
    rootfs(&root, false);
    assert!(!root.join("bin/sh").exists());
    let container = Container::start(&root);
    let cluster = cluster();
    cluster.set_exec_handler(exec_in(container.pid));
    let profile = Profile::builtin("container-baseline").unwrap();

    let s = scan(&cluster, &profile).await;
    let o = &s.outcome;
    assert_eq!(o.session.exit_code, keyhole_cli::session::EXIT_SETUP_FAILED);
    let error = o.session.error.as_ref().expect("an error").to_string();
    assert!(error.contains("--mode distroless"), "{error}");
    assert!(error.contains("no shell"), "{error}");
    assert!(o.results.is_empty(), "no result from a failed gathering");
    assert_eq!(
        cluster.execs().len(),
        1,
        "one attempt, no retry with other shells"
    );
    assert!(cluster.managed_objects().is_empty());
    assert!(o.session.cleanup.is_clean());
    crate::support::clean_ending(&s.records);
}

/// The same scan through the `keyhole` binary over HTTPS, as a user runs it: exit code from
/// the threshold, HDF written with `--out` and schema-shaped, the summary on stdout, the run's
/// report on stderr, nothing left, the audit log verifying with `keyhole audit verify`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_scans_a_pod_over_https_and_gates_on_the_threshold() {
    require_root();
    let root = scratch("binary-root");
    rootfs(&root, true);
    let container = Container::start(&root);
    let served = crate::support::Served::new("scan-binary").await;
    served.cluster.set_exec_handler(exec_in(container.pid));
    let out = served.dir.join("web-0.json");
    // An impossible threshold (100 % compliance) must fail the gate with exit 1; a trivial
    // one must pass with exit 0. Both leave nothing behind.
    let strict = served.dir.join("strict.yml");
    std::fs::write(&strict, "compliance:\n  min: 100\n").unwrap();
    let lax = served.dir.join("lax.yml");
    std::fs::write(&lax, "compliance:\n  min: 0\n").unwrap();
    for (threshold, want) in [(&strict, 1), (&lax, 0)] {
        let child = served
            .keyhole(
                &[
                    "scan",
                    &format!("pod/{POD}"),
                    "-n",
                    NS,
                    "--mode",
                    "standard",
                    "--kubeconfig",
                    served.kubeconfig.to_str().unwrap(),
                    "--audit-log",
                    served.audit.to_str().unwrap(),
                    "--threshold",
                    threshold.to_str().unwrap(),
                    "--out",
                    out.to_str().unwrap(),
                ],
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
        assert!(f.stdout.contains("controls"), "{}", f.stdout);
        assert!(f.stdout.contains("compliance"), "{}", f.stdout);
        assert!(
            f.stderr.contains("cleanup verified complete"),
            "{}",
            f.stderr
        );
        assert!(f.stderr.contains("mode standard"), "{}", f.stderr);
        let hdf: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(
            hdf["platform"]["name"], "keyholetest",
            "{}",
            hdf["platform"]
        );
        assert!(
            hdf["profiles"][0]["controls"]
                .as_array()
                .is_some_and(|c| !c.is_empty())
        );
        assert!(served.cluster.managed_objects().is_empty());
    }
    assert_eq!(served.cluster.execs().len(), 2, "one exec per scan");
    let records = audit_records(&served.audit);
    crate::support::clean_ending(&records);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_plan_and_sends_nothing() {
    let served = crate::support::Served::new("scan-dry-run").await;
    let child = served
        .keyhole(
            &[
                "scan",
                POD,
                "-n",
                NS,
                "--dry-run",
                "--kubeconfig",
                served.kubeconfig.to_str().unwrap(),
            ],
            &[],
        )
        .spawn()
        .unwrap();
    let f = crate::support::finish(child).await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert!(f.stdout.contains("dry run"), "{}", f.stdout);
    assert!(f.stdout.contains(&format!("{NS}/{POD}")), "{}", f.stdout);
    assert!(f.stdout.contains("ONE exec session"), "{}", f.stdout);
    assert!(
        served.cluster.calls().is_empty(),
        "{:?}",
        served.cluster.calls()
    );
}

/// Through the binary: sidecar mode on a pod that has no scanner sidecar is a scan error
/// (exit 3) saying how to get one, and the access is still deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_mode_on_a_pod_without_the_sidecar_says_how_to_inject_it() {
    let served = crate::support::Served::new("scan-no-sidecar").await;
    let child = served
        .keyhole(
            &[
                "scan",
                POD,
                "-n",
                NS,
                "--mode",
                "sidecar",
                "--kubeconfig",
                served.kubeconfig.to_str().unwrap(),
            ],
            &[],
        )
        .spawn()
        .unwrap();
    let f = crate::support::finish(child).await;
    assert_eq!(f.code, Some(3), "{}", f.stderr);
    assert!(f.stderr.contains("keyhole sidecar inject"), "{}", f.stderr);
    assert!(
        f.stderr.contains("cleanup verified complete"),
        "{}",
        f.stderr
    );
    assert!(f.stdout.is_empty());
    assert!(served.cluster.managed_objects().is_empty());
    assert!(served.cluster.execs().is_empty());
}

/// The agent binary, built once by the cargo running these tests.
fn agent_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let status = Command::new(env!("CARGO"))
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "keyhole-agent",
                    "--bin",
                    "keyhole-agent",
                ])
                .status()
                .expect("cargo runs");
            assert!(status.success(), "cargo build -p keyhole-agent failed");
            let bin = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .unwrap()
                .join("debug/keyhole-agent");
            assert!(bin.exists(), "{} was not built", bin.display());
            bin
        })
        .clone()
}

/// The target pod `prod/web-0` with container `app` running as `uid` (pod spec), Running.
pub(crate) fn pod_running_as(uid: Option<i64>, share_pid: bool) -> FakeCluster {
    let c = FakeCluster::new();
    add_pod_running_as(&c, uid, share_pid);
    c
}

/// [`pod_running_as`] in an existing cluster (whose namespace may already exist).
fn add_pod_running_as(c: &FakeCluster, uid: Option<i64>, share_pid: bool) {
    c.create_namespace(NS);
    let mut pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": POD, "namespace": NS},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1.0"}]},
    }))
    .unwrap();
    let spec = pod.spec.as_mut().unwrap();
    spec.share_process_namespace = share_pid.then_some(true);
    if let Some(u) = uid {
        spec.containers[0].security_context = Some(k8s_openapi::api::core::v1::SecurityContext {
            run_as_user: Some(u),
            run_as_group: Some(u),
            ..Default::default()
        });
    }
    c.insert(&pod).unwrap();
    c.set_pod_running(NS, POD).unwrap();
}

/// What the test kubelet did with the ephemeral container.
#[derive(Debug)]
struct Ran {
    security: Value,
    stderr: String,
}

/// A stand-in kubelet for ephemeral containers (a test double): when the scanner container
/// appears in the pod spec, it runs the REAL agent with the container's command and
/// environment, in the target container's PID namespace (with that namespace's /proc), as the
/// container's runAsUser/runAsGroup with no capabilities and no_new_privs; then publishes the
/// agent's stdout as the container log and its exit code as the terminated state.
fn ephemeral_kubelet(cluster: FakeCluster, container_pid: u32) -> std::thread::JoinHandle<Ran> {
    let agent = agent_binary();
    let nsenter = require("nsenter", "util-linux");
    let unshare = require("unshare", "util-linux");
    let setpriv = require("setpriv", "util-linux");
    std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let ec = loop {
            let pod: k8s_openapi::api::core::v1::Pod = cluster.object(NS, POD).unwrap();
            if let Some(ec) = pod
                .spec
                .and_then(|s| s.ephemeral_containers)
                .and_then(|v| v.into_iter().next())
            {
                break ec;
            }
            assert!(
                started.elapsed().as_secs() < 60,
                "no ephemeral container was added"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        cluster.set_pod_running(NS, POD).unwrap();
        let sc = ec.security_context.clone().expect("a security context");
        let uid = sc.run_as_user.expect("runAsUser");
        let gid = sc.run_as_group.unwrap_or(uid);
        let mut argv = ec.command.clone().expect("a command");
        argv[0] = agent.to_string_lossy().into_owned();
        let mut cmd = Command::new(&nsenter);
        cmd.arg(format!("--target={container_pid}"))
            .args(["--pid", "--"])
            .arg(&unshare)
            .args(["--mount", "--mount-proc", "--"])
            .arg(&setpriv)
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .args([
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
                "--",
            ])
            .args(&argv)
            .env_clear();
        for e in ec.env.iter().flatten() {
            cmd.env(&e.name, e.value.clone().unwrap_or_default());
        }
        let out = cmd.output().expect("the agent runs");
        cluster.set_pod_log(NS, POD, &ec.name, &String::from_utf8_lossy(&out.stdout));
        cluster
            .set_container_terminated(NS, POD, &ec.name, out.status.code().unwrap_or(128))
            .unwrap();
        Ran {
            security: serde_json::to_value(&sc).unwrap(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distroless_scan_reads_the_agents_facts_and_gives_the_local_pid_scans_hdf() {
    require_root();
    let root = scratch("distroless-root");
    rootfs(&root, false);
    let container = Container::start_as(&root, Some(10001));
    let cluster = pod_running_as(Some(10001), false);
    let kubelet = ephemeral_kubelet(cluster.clone(), container.pid);
    let profile = Profile::builtin("container-baseline").unwrap();
    let before = tree_state(&root);

    let s = scan_in(&cluster, &profile, ScanMode::Distroless).await;
    let ran = kubelet.join().unwrap();
    assert_eq!(
        tree_state(&root),
        before,
        "the scan changed the target's files"
    );
    let o = &s.outcome;
    assert_eq!(
        o.session.exit_code,
        0,
        "error: {:?}; agent stderr: {}",
        o.session.error.as_ref().map(ToString::to_string),
        ran.stderr
    );
    // The scanner held the target's identity and nothing more (written out by hand).
    assert_eq!(ran.security["runAsUser"], 10001);
    assert_eq!(ran.security["runAsGroup"], 10001);
    assert_eq!(
        ran.security["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );
    assert!(ran.security["capabilities"]["add"].is_null());
    assert_eq!(ran.security["allowPrivilegeEscalation"], false);
    assert_eq!(ran.security["readOnlyRootFilesystem"], true);
    assert_eq!(ran.security["privileged"], false);
    assert_eq!(ran.security["seccompProfile"]["type"], "RuntimeDefault");

    assert!(cluster.execs().is_empty(), "no exec in distroless mode");
    let r = &o.results[0];
    let local = LocalRoot::process(container.pid).expect("the local source opens");
    let plan = keyhole_engine::plan(&profile, &Inputs::defaults(&profile));
    let local_facts = local.gather(&plan);
    let (remote, local_n) = (normalise(&r.facts), normalise(&local_facts));
    assert_eq!(remote.len(), local_n.len());
    for (a, b) in remote.iter().zip(&local_n) {
        assert_eq!(a, b, "the agent and the local --pid scan disagree");
    }
    let now = Timestamp::now();
    let inputs = Inputs::defaults(&profile);
    let agent_hdf = keyhole_engine::evaluate(&profile, &inputs, &r.facts, &Waivers::none(), now);
    let local_hdf =
        keyhole_engine::evaluate(&profile, &inputs, &local_facts, &Waivers::none(), now);
    assert_eq!(
        timeless(serde_json::to_value(&agent_hdf).unwrap()),
        timeless(serde_json::to_value(&local_hdf).unwrap())
    );

    // Only the distroless rights were used, by the scoped identity.
    let pod = format!("/api/v1/namespaces/{NS}/pods/{POD}");
    let scoped_calls: Vec<String> = cluster
        .calls()
        .into_iter()
        .filter(|c| is_scoped(&c.identity))
        .map(|c| format!("{} {}", c.verb, c.path))
        .collect();
    for c in &scoped_calls {
        assert!(
            c.ends_with("selfsubjectrulesreviews")
                || *c == format!("get {pod}")
                || *c == format!("patch {pod}/ephemeralcontainers")
                || *c == format!("get {pod}/log"),
            "unexpected scoped call {c}; all: {scoped_calls:?}"
        );
    }
    assert_eq!(
        scoped_calls
            .iter()
            .filter(|c| c.contains("ephemeralcontainers"))
            .count(),
        1,
        "exactly one ephemeral container: {scoped_calls:?}"
    );
    // The one visible trace is reported; every object is gone.
    assert_eq!(o.traces.len(), 1, "{:?}", o.traces);
    assert!(cluster.managed_objects().is_empty());
    crate::support::clean_ending(&s.records);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distroless_refuses_root_targets_and_shared_pid_pods_before_patching() {
    let profile = Profile::builtin("container-baseline").unwrap();
    for (uid, share, want) in [
        (Some(0), false, "runs as root"),
        // An unknown UID is probed first (`uid_probe.rs`).
        (Some(10001), true, "--allow-shared-pid"),
    ] {
        let cluster = pod_running_as(uid, share);
        let s = scan_in(&cluster, &profile, ScanMode::Distroless).await;
        let o = &s.outcome;
        assert_eq!(o.session.exit_code, keyhole_cli::session::EXIT_SETUP_FAILED);
        let e = o.session.error.as_ref().unwrap().to_string();
        assert!(e.contains(want), "{e}");
        assert!(
            !cluster
                .calls()
                .iter()
                .any(|c| c.path.ends_with("ephemeralcontainers")),
            "refused before patching"
        );
        assert!(o.traces.is_empty(), "nothing was added: {:?}", o.traces);
        assert!(cluster.managed_objects().is_empty());
        crate::support::clean_ending(&s.records);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_to_distroless_only_after_the_standard_access_is_gone() {
    require_root();
    let root = scratch("auto-root");
    rootfs(&root, false);
    let container = Container::start_as(&root, Some(10001));
    let cluster = pod_running_as(Some(10001), false);
    cluster.set_exec_handler(exec_in(container.pid));
    let kubelet = ephemeral_kubelet(cluster.clone(), container.pid);
    let profile = Profile::builtin("container-baseline").unwrap();

    let s = scan_in(&cluster, &profile, ScanMode::Auto).await;
    let ran = kubelet.join().unwrap();
    let o = &s.outcome;
    assert_eq!(
        o.session.exit_code,
        0,
        "{:?} {}",
        o.session.error.as_ref().map(ToString::to_string),
        ran.stderr
    );
    assert_eq!(o.mode.0, ScanMode::Distroless);
    assert!(o.mode.1.contains("no shell"), "{}", o.mode.1);
    assert_eq!(o.results.len(), 1);
    assert_eq!(cluster.execs().len(), 1, "one standard attempt");
    assert_one_role_at_a_time(&cluster);
    assert!(cluster.managed_objects().is_empty());
    assert_eq!(o.traces.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_scan_reads_the_newest_agent_frame_with_logs_only_and_refuses_stale_facts() {
    require_root();
    let root = scratch("sidecar-root");
    rootfs(&root, false);
    let container = Container::start_as(&root, Some(10001));
    let profile = Profile::builtin("container-baseline").unwrap();
    let plan = keyhole_engine::plan(&profile, &Inputs::defaults(&profile));
    // The real agent's output, as the sidecar writes it, then a frame cut off mid-write.
    let out = Command::new(agent_binary())
        .args(["scan", "--pid", &container.pid.to_string()])
        .env("KEYHOLE_FACT_PLAN", serde_json::to_string(&plan).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frame = String::from_utf8(out.stdout).unwrap();
    let cut: String = frame.lines().take(1).map(|l| format!("{l}\n")).collect();
    let log = format!("starting\n{frame}{cut}");

    let c = FakeCluster::new();
    c.create_namespace(NS);
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": POD, "namespace": NS},
        "spec": {"shareProcessNamespace": true, "containers": [
            {"name": "app", "image": "registry.example/app:1.0"},
            {"name": keyhole_scanners::SIDECAR_NAME, "image": "registry.example/agent:1.0"},
        ]},
    }))
    .unwrap();
    c.insert(&pod).unwrap();
    c.set_pod_running(NS, POD).unwrap();
    c.set_pod_log(NS, POD, keyhole_scanners::SIDECAR_NAME, &log);

    let s = scan_in(&c, &profile, ScanMode::Sidecar).await;
    let o = &s.outcome;
    assert_eq!(
        o.session.exit_code,
        0,
        "{:?}",
        o.session.error.as_ref().map(ToString::to_string)
    );
    let local = LocalRoot::process(container.pid).unwrap().gather(&plan);
    let (remote, local_n) = (normalise(&o.results[0].facts), normalise(&local));
    for (a, b) in remote.iter().zip(&local_n) {
        assert_eq!(a, b);
    }
    assert!(c.execs().is_empty());
    let pod_path = format!("/api/v1/namespaces/{NS}/pods/{POD}");
    for call in c.calls().iter().filter(|c| is_scoped(&c.identity)) {
        let shape = format!("{} {}", call.verb, call.path);
        assert!(
            shape.ends_with("selfsubjectrulesreviews")
                || shape == format!("get {pod_path}")
                || shape == format!("get {pod_path}/log"),
            "unexpected scoped call {shape}"
        );
    }
    assert!(c.managed_objects().is_empty());
    crate::support::clean_ending(&s.records);

    // The same log read later with a short --max-age: refused, nothing evaluated.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let stale = {
        let dir = scratch("sidecar-stale");
        let log_path = dir.join("audit.jsonl");
        let run = run(ScanMode::Sidecar);
        let audit = Audit::new(AuditLog::open(&log_path).unwrap(), run.id().as_str());
        let request = ScanRequest {
            run: run.clone(),
            container: None,
            profile: profile.clone(),
            inputs: Inputs::defaults(&profile),
            waivers: Waivers::none(),
            session: SessionSpec {
                run,
                cluster: endpoint(&c),
                audiences: vec![],
                command: vec![],
                work: None,
                policy: fast_policy(),
            },
            distroless: None,
            max_age: std::time::Duration::from_secs(1),
        };
        scan_cluster(c.client_admin(), request, FakeScoped::new(&c), audit)
            .await
            .unwrap()
    };
    assert_eq!(
        stale.session.exit_code,
        keyhole_cli::session::EXIT_SETUP_FAILED
    );
    let e = stale.session.error.as_ref().unwrap().to_string();
    assert!(e.contains("--max-age"), "{e}");
    assert!(stale.results.is_empty());
    assert!(c.managed_objects().is_empty());
}

/// `-l app=web`: the selector is resolved with the user's credentials at scan time, the names
/// are pinned (the scoped identity can exec into exactly those pods), and each matching pod
/// gets its one exec; the pod that does not match is never touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_selector_is_resolved_at_scan_time_and_pinned_by_name() {
    require_root();
    let root = scratch("selector-root");
    rootfs(&root, true);
    let container = Container::start(&root);
    let c = FakeCluster::new();
    c.create_namespace(NS);
    for (name, app) in [("web-0", "web"), ("web-1", "web"), ("db-0", "db")] {
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": {"app": app}},
            "spec": {"containers": [{"name": "app", "image": "registry.example/app:1.0"}]},
        }))
        .unwrap();
        c.insert(&pod).unwrap();
        c.set_pod_running(NS, name).unwrap();
    }
    c.set_exec_handler(exec_in(container.pid));
    let ns = keyhole_core::Namespace::new(NS).unwrap();
    let selector = keyhole_core::LabelSelector::parse("app=web").unwrap();
    let pods = keyhole_cli::cluster_scan::resolve_selector(&c.client_admin(), &ns, &selector)
        .await
        .unwrap();
    let names: Vec<&str> = pods.iter().map(|p| p.as_str()).collect();
    assert_eq!(names, ["web-0", "web-1"]);
    let none = keyhole_core::LabelSelector::parse("app=nothing").unwrap();
    assert!(
        keyhole_cli::cluster_scan::resolve_selector(&c.client_admin(), &ns, &none)
            .await
            .is_err()
    );

    let dir = scratch("selector-audit");
    let log_path = dir.join("audit.jsonl");
    let target = keyhole_core::ScanTarget::pods(ns, pods, None).unwrap();
    let expiry = keyhole_core::Expiry::new(Timestamp::now(), keyhole_core::Ttl::default()).unwrap();
    let run = keyhole_core::Run::new(
        keyhole_core::RunId::generate().unwrap(),
        target,
        ScanMode::Standard,
        expiry,
    )
    .unwrap();
    let audit = Audit::new(AuditLog::open(&log_path).unwrap(), run.id().as_str());
    let profile = Profile::builtin("container-baseline").unwrap();
    let request = ScanRequest {
        run: run.clone(),
        container: None,
        profile: profile.clone(),
        inputs: Inputs::defaults(&profile),
        waivers: Waivers::none(),
        session: SessionSpec {
            run,
            cluster: endpoint(&c),
            audiences: vec![],
            command: vec![],
            work: None,
            policy: keyhole_cleanup::RetryPolicy {
                call_timeout: std::time::Duration::from_secs(20),
                ..fast_policy()
            },
        },
        distroless: None,
        max_age: std::time::Duration::from_secs(3600),
    };
    let o = scan_cluster(c.client_admin(), request, FakeScoped::new(&c), audit)
        .await
        .unwrap();
    assert_eq!(
        o.session.exit_code,
        0,
        "{:?}",
        o.session.error.as_ref().map(ToString::to_string)
    );
    let mut scanned: Vec<String> = c.execs().iter().map(|e| e.pod.clone()).collect();
    scanned.sort();
    assert_eq!(scanned, ["web-0", "web-1"], "one exec per matching pod");
    assert_eq!(o.results.len(), 2);
    // The least-privilege check ran with the scoped identity: every allowed and denied case
    // came out as planned.
    let access = o.session.access.as_ref().expect("verified");
    assert!(
        access
            .checked
            .iter()
            .all(|ch| ch.allowed == ch.expected_allowed),
        "{:?}",
        access.checked
    );
    assert!(c.managed_objects().is_empty());
    audit_records(&log_path);
}

/// An exec stream cut short (here: the real script's output truncated to half, as a dropped
/// session delivers it) is a scan error, never a result with holes; the access is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_stream_cut_short_is_a_scan_error_and_leaves_nothing() {
    require_root();
    let root = scratch("cut-root");
    rootfs(&root, true);
    let container = Container::start(&root);
    let cluster = cluster();
    let real = exec_in(container.pid);
    cluster.set_exec_handler(move |req| {
        let mut r = real(req);
        r.stdout.truncate(r.stdout.len() / 2);
        r
    });
    let profile = Profile::builtin("container-baseline").unwrap();
    let s = scan(&cluster, &profile).await;
    let o = &s.outcome;
    assert_eq!(o.session.exit_code, keyhole_cli::session::EXIT_SETUP_FAILED);
    let e = o.session.error.as_ref().unwrap().to_string();
    assert!(e.contains("before the fact script finished"), "{e}");
    assert!(o.results.is_empty());
    assert!(cluster.managed_objects().is_empty());
    crate::support::clean_ending(&s.records);
}

/// The distroless fault cases: the ephemeral container never starts (the wait runs out), the
/// agent fails (its exit code and last log line are reported), and its frame arrives corrupted
/// (refused, not evaluated). Each is a scan error, and every object is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distroless_faults_are_scan_errors_and_leave_nothing() {
    let profile = Profile::builtin("container-baseline").unwrap();
    let frame = keyhole_engine::encode_facts_frame(&Facts::default(), Timestamp::now());
    let corrupted = frame.replacen("\"answers\"", "\"answerz\"", 1);
    for (case, log, exit, want) in [
        ("never starts", None, 0, "did not finish within"),
        (
            "agent fails",
            Some("keyhole-agent: cannot hold process 1 (pidfd_open): EPERM\n".to_string()),
            3,
            "exited with 3",
        ),
        ("corrupted frame", Some(corrupted), 0, "1 damaged"),
    ] {
        let cluster = pod_running_as(Some(10001), false);
        let kubelet = {
            let cluster = cluster.clone();
            std::thread::spawn(move || {
                let Some(log) = log else { return };
                let name = loop {
                    let pod: k8s_openapi::api::core::v1::Pod = cluster.object(NS, POD).unwrap();
                    if let Some(ec) = pod
                        .spec
                        .and_then(|s| s.ephemeral_containers)
                        .and_then(|v| v.into_iter().next())
                    {
                        break ec.name;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                };
                cluster.set_pod_running(NS, POD).unwrap();
                cluster.set_pod_log(NS, POD, &name, &log);
                cluster
                    .set_container_terminated(NS, POD, &name, exit)
                    .unwrap();
            })
        };
        let opts = keyhole_workflows::DistrolessOptions {
            wait: std::time::Duration::from_millis(800),
            ..distroless_options()
        };
        let s = scan_with(&cluster, &profile, ScanMode::Distroless, opts).await;
        kubelet.join().unwrap();
        let o = &s.outcome;
        assert_eq!(
            o.session.exit_code,
            keyhole_cli::session::EXIT_SETUP_FAILED,
            "{case}"
        );
        let e = o.session.error.as_ref().unwrap().to_string();
        assert!(e.contains(want), "{case}: {e}");
        assert!(o.results.is_empty(), "{case}");
        // The ephemeral container was added in every case, and is reported as staying.
        assert_eq!(o.traces.len(), 1, "{case}: {:?}", o.traces);
        assert!(cluster.managed_objects().is_empty(), "{case}");
        crate::support::clean_ending(&s.records);
    }
}

/// `--scanner-as-target-root` in a namespace enforcing Pod Security `restricted`: stopped
/// before any patch, with the reason (read from the namespace with the user's credentials).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_scanner_is_not_attempted_where_pod_security_is_restricted() {
    let profile = Profile::builtin("container-baseline").unwrap();
    let cluster = FakeCluster::new();
    let ns: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": NS, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
    }))
    .unwrap();
    cluster.insert(&ns).unwrap();
    add_pod_running_as(&cluster, Some(0), false);
    let opts = keyhole_workflows::DistrolessOptions {
        allow_root: true,
        ..distroless_options()
    };
    let s = scan_with(&cluster, &profile, ScanMode::Distroless, opts).await;
    let o = &s.outcome;
    assert_eq!(o.session.exit_code, keyhole_cli::session::EXIT_SETUP_FAILED);
    let e = o.session.error.as_ref().unwrap().to_string();
    assert!(e.contains("restricted"), "{e}");
    assert!(
        !cluster
            .calls()
            .iter()
            .any(|c| c.path.ends_with("ephemeralcontainers")),
        "refused before patching"
    );
    assert!(cluster.managed_objects().is_empty());
}

/// Auto mode never holds both modes' rights at once: exactly two Roles were created, and the
/// first (standard) was deleted before the second (distroless) was created.
pub(crate) fn assert_one_role_at_a_time(cluster: &FakeCluster) {
    let calls = cluster.calls();
    let role_posts: Vec<usize> = calls
        .iter()
        .filter(|c| c.method == "POST" && c.path.ends_with("/roles"))
        .map(|c| c.index)
        .collect();
    assert_eq!(role_posts.len(), 2, "two runs, two Roles");
    let first_deleted = calls
        .iter()
        .filter(|c| c.method == "DELETE" && c.path.contains("/roles/") && c.index > role_posts[0])
        .map(|c| c.index)
        .min()
        .expect("the first Role is deleted");
    assert!(
        first_deleted < role_posts[1],
        "the distroless Role was created before the standard one was deleted"
    );
}
