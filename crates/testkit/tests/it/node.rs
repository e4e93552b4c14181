//! The test node: pods of the fake API server as real runc containers (root, `runc`,
//! `busybox-static` and `rustc` needed; a missing one fails the test with what to install).
//!
//! Each test drives the node only through the Kubernetes API (a real `kube::Client` on the
//! fake), and checks the real processes: exit codes, files read across PID namespaces, kernel
//! permission checks, and `runc list` after deletion and shutdown.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use keyhole_testkit::FakeCluster;
use keyhole_testkit::node::{Image, Images, Node, NodeOptions, rootfs};
use kube::api::{Api, AttachParams, DeleteParams, LogParams, Patch, PatchParams};
use serde_json::json;
use tokio::io::AsyncWriteExt as _;

use crate::authz::read_all;

const WAIT: Duration = Duration::from_secs(30);
/// The target's private file.
const SECRET: &str = "KEYHOLE-SECRET owned by 10001\n";

/// The busybox tree (shared, cached) and a copy of it holding the target's private file.
fn images(scratch: &Path) -> Images {
    let busybox = rootfs::busybox(&rootfs::cache_dir().join("busybox")).unwrap();
    let app = rootfs::busybox(&scratch.join("app")).unwrap();
    let home = app.join("home/app");
    std::fs::write(home.join("secret"), SECRET).unwrap();
    std::os::unix::fs::chown(home.join("secret"), Some(10001), Some(10001)).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(home.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    let distroless = rootfs::distroless(&rootfs::cache_dir().join("distroless")).unwrap();
    Images::new()
        .with("busybox:1.36", Image::new(busybox).cmd(["sh"]))
        .with("registry.example/app", Image::new(app).user(10001, 10001))
        .with(
            "registry.example/distroless",
            Image::new(distroless).entrypoint(["/pause"]),
        )
}

/// What `runc list` shows (retried: it fails when another test's container goes while it
/// lists; a persistent failure fails the test).
fn runc_list() -> Vec<String> {
    for _ in 0..50 {
        let out = Command::new("runc")
            .args(["list", "--quiet"])
            .output()
            .expect("runc is installed (apt-get install -y runc)");
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned)
                .collect();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("runc list keeps failing");
}

fn pod(cluster: &FakeCluster, value: serde_json::Value) {
    let p: Pod = serde_json::from_value(value).unwrap();
    cluster.insert(&p).unwrap();
}

struct Setup {
    cluster: FakeCluster,
    node: Node,
    pods: Api<Pod>,
    _scratch: tempfile::TempDir,
}

fn setup() -> Setup {
    let scratch = tempfile::tempdir().unwrap();
    let cluster = FakeCluster::new();
    cluster.create_namespace("prod");
    let node = Node::start(&cluster, images(scratch.path()), NodeOptions::default())
        .unwrap_or_else(|e| panic!("the node cannot start: {e}"));
    let pods = Api::namespaced(cluster.client_admin(), "prod");
    Setup {
        cluster,
        node,
        pods,
        _scratch: scratch,
    }
}

async fn exec(
    pods: &Api<Pod>,
    pod: &str,
    container: &str,
    argv: &[&str],
    stdin: Option<&[u8]>,
) -> (
    String,
    String,
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Status,
) {
    let ap = AttachParams::default()
        .container(container)
        .stdin(stdin.is_some());
    let mut p = pods.exec(pod, argv.iter().copied(), &ap).await.unwrap();
    let out = p.stdout().unwrap();
    let err = p.stderr().unwrap();
    let status = p.take_status().unwrap();
    let writer = async {
        if let Some(input) = stdin {
            let mut w = p.stdin().unwrap();
            w.write_all(input).await.unwrap();
            w.shutdown().await.unwrap();
        }
    };
    let ((), o, e) = tokio::join!(writer, read_all(out), read_all(err));
    (o, e, status.await.expect("a status frame"))
}

/// The log of one container, once it contains `want` (logs are written by the container).
async fn log_containing(pods: &Api<Pod>, pod: &str, container: &str, want: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let lp = LogParams {
            container: Some(container.to_owned()),
            ..LogParams::default()
        };
        let text = pods.logs(pod, &lp).await.unwrap();
        if text.contains(want) || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_pod_runs_and_exec_streams_a_script_to_sh_and_back() {
    let s = setup();
    pod(
        &s.cluster,
        json!({"metadata": {"name": "web-0", "namespace": "prod"},
            "spec": {"nodeName": s.node.name(), "containers": [{"name": "app",
                "image": "registry.example/app:1.0@sha256:0123",
                "command": ["sleep", "3600"]}]}}),
    );
    let running = s.node.wait_running("prod", "web-0", WAIT).await.unwrap();
    let st = &running.status.unwrap().container_statuses.unwrap()[0];
    let id = st.container_id.clone().unwrap();
    let id = id.strip_prefix("runc://").expect("a runc container id");
    assert!(runc_list().contains(&id.to_owned()), "runc list shows {id}");

    // A script larger than a pipe buffer in, more than a pipe buffer out, both streamed; the
    // image's USER applies to exec as to the container.
    let mut script = String::from("id -u\necho to-stderr >&2\n");
    for i in 0..2000 {
        script.push_str(&format!("echo line-{i}-{}\n", "x".repeat(40)));
    }
    script.push_str("exit 7\n");
    let (out, err, status) = exec(
        &s.pods,
        "web-0",
        "app",
        &["sh", "-s"],
        Some(script.as_bytes()),
    )
    .await;
    assert!(
        out.starts_with("10001\nline-0-"),
        "{}",
        &out[..out.len().min(200)]
    );
    assert_eq!(out.lines().count(), 2001);
    assert!(out.ends_with(&format!("line-1999-{}\n", "x".repeat(40))));
    assert_eq!(err, "to-stderr\n");
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    assert_eq!(
        status.details.unwrap().causes.unwrap()[0]
            .message
            .as_deref(),
        Some("7")
    );
    let (out, _, status) = exec(&s.pods, "web-0", "app", &["cat", "/home/app/secret"], None).await;
    assert_eq!(
        (out.as_str(), status.status.as_deref()),
        (SECRET, Some("Success"))
    );
    assert_eq!(
        s.cluster.execs()[0].stdin,
        script.as_bytes(),
        "the exec is recorded with its stdin"
    );

    // Streamed, not buffered: the process answers before its stdin is closed (a buffering
    // server would wait for the end of stdin and never deliver "ready").
    let ap = AttachParams::default().container("app").stdin(true);
    let mut p = s
        .pods
        .exec(
            "web-0",
            ["sh", "-c", "echo ready; read x; echo got $x"],
            &ap,
        )
        .await
        .unwrap();
    let mut out = tokio::io::BufReader::new(p.stdout().unwrap());
    let mut line = String::new();
    use tokio::io::AsyncBufReadExt as _;
    tokio::time::timeout(WAIT, out.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(line, "ready\n");
    let mut w = p.stdin().unwrap();
    w.write_all(b"hello\n").await.unwrap();
    w.shutdown().await.unwrap();
    line.clear();
    out.read_line(&mut line).await.unwrap();
    assert_eq!(line, "got hello\n");

    let ids = s.node.container_ids();
    s.node.shutdown().unwrap();
    let left = runc_list();
    assert!(
        ids.iter().all(|id| !left.contains(id)),
        "left behind: {left:?}"
    );
}

#[tokio::test]
async fn an_ephemeral_container_reads_the_target_only_with_its_uid_and_logs_are_served() {
    let s = setup();
    pod(
        &s.cluster,
        json!({"metadata": {"name": "web-0", "namespace": "prod"},
            "spec": {"nodeName": s.node.name(), "containers": [{"name": "app",
                "image": "registry.example/app",
                "command": ["sh", "-c", "echo started; echo warned >&2; exec sleep 3600"],
                "securityContext": {"runAsUser": 10001, "runAsGroup": 10001}}]}}),
    );
    s.node.wait_running("prod", "web-0", WAIT).await.unwrap();
    let log = log_containing(&s.pods, "web-0", "app", "warned").await;
    assert!(
        log.contains("started\n") && log.contains("warned\n"),
        "{log:?}"
    );
    let lp = LogParams {
        tail_lines: Some(1),
        ..LogParams::default()
    };
    assert_eq!(s.pods.logs("web-0", &lp).await.unwrap().lines().count(), 1);

    // The scanner's shape: the target's UID, no capabilities, no escalation, read-only root,
    // from an image without the secret, in the target's PID namespace.
    let probe = |name: &str, uid: u32| {
        json!({"name": name, "image": "busybox:1.36", "targetContainerName": "app",
            "command": ["cat", "/proc/1/root/home/app/secret"],
            "securityContext": {"runAsUser": uid, "runAsGroup": uid, "runAsNonRoot": true,
                "capabilities": {"drop": ["ALL"]}, "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true}})
    };
    let pp = PatchParams::default();
    let patch = json!({"spec": {"ephemeralContainers": [probe("same-uid", 10001)]}});
    s.pods
        .patch_ephemeral_containers("web-0", &pp, &Patch::Strategic(patch))
        .await
        .unwrap();
    let code = s
        .node
        .wait_terminated("prod", "web-0", "same-uid", WAIT)
        .await
        .unwrap();
    assert_eq!(code, 0);
    let log = log_containing(&s.pods, "web-0", "same-uid", SECRET).await;
    assert_eq!(log, SECRET);

    let patch = json!({"spec": {"ephemeralContainers": [probe("same-uid", 10001), probe("other-uid", 10002)]}});
    s.pods
        .patch_ephemeral_containers("web-0", &pp, &Patch::Strategic(patch))
        .await
        .unwrap();
    let code = s
        .node
        .wait_terminated("prod", "web-0", "other-uid", WAIT)
        .await
        .unwrap();
    assert_eq!(code, 1);
    let log = log_containing(&s.pods, "web-0", "other-uid", "denied").await;
    assert!(log.contains("Permission denied"), "{log:?}");
    assert!(!log.contains("KEYHOLE-SECRET"));

    // The securityContext reached the kernel: no capabilities at all, no_new_privs, a
    // read-only root, the target's IDs.
    let shape = json!({"name": "shape", "image": "busybox:1.36", "targetContainerName": "app",
        "command": ["sh", "-c", "grep -E '^(Uid|Gid|CapPrm|CapEff|CapBnd|NoNewPrivs)' /proc/self/status; touch /x 2>/dev/null || echo read-only"],
        "securityContext": {"runAsUser": 10001, "runAsGroup": 10001,
            "capabilities": {"drop": ["ALL"]}, "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true}});
    let patch = json!({"spec": {"ephemeralContainers": [probe("same-uid", 10001), probe("other-uid", 10002), shape]}});
    s.pods
        .patch_ephemeral_containers("web-0", &pp, &Patch::Strategic(patch))
        .await
        .unwrap();
    assert_eq!(
        s.node
            .wait_terminated("prod", "web-0", "shape", WAIT)
            .await
            .unwrap(),
        0
    );
    let log = log_containing(&s.pods, "web-0", "shape", "read-only").await;
    let fields: Vec<Vec<&str>> = log
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        fields,
        [
            vec!["Uid:", "10001", "10001", "10001", "10001"],
            vec!["Gid:", "10001", "10001", "10001", "10001"],
            vec!["CapPrm:", "0000000000000000"],
            vec!["CapEff:", "0000000000000000"],
            vec!["CapBnd:", "0000000000000000"],
            vec!["NoNewPrivs:", "1"],
            vec!["read-only"],
        ],
        "{log}"
    );

    let p = s.pods.get("web-0").await.unwrap();
    let eph = p.status.unwrap().ephemeral_container_statuses.unwrap();
    let exit = |n: &str| {
        eph.iter()
            .find(|c| c.name == n)
            .and_then(|c| c.state.clone()?.terminated)
            .map(|t| (t.exit_code, t.reason))
    };
    assert_eq!(exit("same-uid"), Some((0, Some("Completed".into()))));
    assert_eq!(exit("other-uid"), Some((1, Some("Error".into()))));
    s.node.shutdown().unwrap();
}

#[tokio::test]
async fn shared_pid_pods_see_each_other_and_deletion_leaves_no_container() {
    let s = setup();
    pod(
        &s.cluster,
        json!({"metadata": {"name": "pair", "namespace": "prod"},
            "spec": {"shareProcessNamespace": true, "containers": [
                {"name": "a", "image": "busybox:1.36", "command": ["sleep", "3601"]},
                {"name": "b", "image": "busybox:1.36", "command": ["sleep", "3602"]}]}}),
    );
    // No nodeName: the node binds it as the scheduler would.
    let p = s.node.wait_running("prod", "pair", WAIT).await.unwrap();
    assert_eq!(p.spec.unwrap().node_name.as_deref(), Some(s.node.name()));
    // Over real HTTPS this time: the same exec path a kubeconfig user takes.
    let server = s.cluster.serve_https().await.unwrap();
    let https: Api<Pod> = Api::namespaced(server.client_admin().unwrap(), "prod");
    let (ps, _, _) = exec(&https, "pair", "b", &["ps", "-o", "pid,args"], None).await;
    assert!(
        ps.contains("sleep 3601") && ps.contains("sleep 3602"),
        "{ps}"
    );
    let ids = s.node.container_ids();
    assert_eq!(ids.len(), 2);
    assert!(ids.iter().all(|id| runc_list().contains(id)));

    s.pods
        .delete("pair", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while ids.iter().any(|id| runc_list().contains(id)) {
        assert!(
            Instant::now() < deadline,
            "runc still lists {ids:?} after the pod was deleted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.node.shutdown().unwrap();
    let prefix_left: Vec<String> = runc_list()
        .into_iter()
        .filter(|id| ids.contains(id))
        .collect();
    assert!(prefix_left.is_empty());
}

#[tokio::test]
async fn a_true_distroless_target_runs_but_has_no_shell_to_exec() {
    let s = setup();
    pod(
        &s.cluster,
        json!({"metadata": {"name": "static", "namespace": "prod"},
            "spec": {"nodeName": s.node.name(),
                "containers": [{"name": "app", "image": "registry.example/distroless:3"}]}}),
    );
    s.node.wait_running("prod", "static", WAIT).await.unwrap();
    let twin = Node::start(&s.cluster, Images::new(), NodeOptions::default()).unwrap_err();
    assert!(twin.to_string().contains("already serves"), "{twin}");
    let (_, _, status) = exec(&s.pods, "static", "app", &["sh", "-c", "true"], None).await;
    assert_eq!(
        status.reason.as_deref(),
        Some("InternalError"),
        "{status:?}"
    );
    assert!(
        status
            .message
            .as_deref()
            .unwrap_or("")
            .contains("exec failed"),
        "{status:?}"
    );
    // A pod whose only container ends is done: Failed, with the real exit code.
    pod(
        &s.cluster,
        json!({"metadata": {"name": "job", "namespace": "prod"},
            "spec": {"nodeName": s.node.name(), "restartPolicy": "Never",
                "containers": [{"name": "run", "image": "busybox:1.36", "command": ["sh", "-c", "exit 3"]}]}}),
    );
    assert_eq!(
        s.node
            .wait_terminated("prod", "job", "run", WAIT)
            .await
            .unwrap(),
        3
    );
    let job = s
        .node
        .wait_pod("prod", "job", WAIT, |p| {
            p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
        })
        .await
        .unwrap();
    assert_eq!(job.status.unwrap().phase.as_deref(), Some("Failed"));
    // An unregistered image is ErrImagePull, as a kubelet reports it.
    pod(
        &s.cluster,
        json!({"metadata": {"name": "nowhere", "namespace": "prod"},
            "spec": {"nodeName": s.node.name(),
                "containers": [{"name": "app", "image": "registry.example/missing"}]}}),
    );
    let p = s
        .node
        .wait_pod("prod", "nowhere", WAIT, |p| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some()
        })
        .await
        .unwrap();
    let st = p.status.unwrap();
    assert_eq!(st.phase.as_deref(), Some("Pending"));
    let waiting = st.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .waiting
        .unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("ErrImagePull"));
    s.node.shutdown().unwrap();
}

/// The distroless tree has one file that can run, and nothing else.
#[test]
fn the_distroless_tree_holds_one_static_binary_and_no_shell() {
    let dir = rootfs::distroless(&rootfs::cache_dir().join("distroless")).unwrap();
    let mut executables: Vec<PathBuf> = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            assert!(!ft.is_symlink(), "{}", e.path().display());
            if ft.is_dir() {
                stack.push(e.path());
            } else if std::os::unix::fs::PermissionsExt::mode(&e.metadata().unwrap().permissions())
                & 0o111
                != 0
            {
                executables.push(e.path());
            }
        }
    }
    assert_eq!(executables, [dir.join("pause")]);
    let ldd = Command::new("ldd").arg(dir.join("pause")).output().unwrap();
    let text =
        String::from_utf8_lossy(&ldd.stdout).into_owned() + &String::from_utf8_lossy(&ldd.stderr);
    assert!(
        text.contains("not a dynamic executable") || text.contains("statically linked"),
        "{text}"
    );
}

#[tokio::test]
async fn faults_exec_cut_mid_stream_a_container_killed_an_image_missing_a_deadline_passed() {
    let s = setup();
    for name in ["web-0", "timed"] {
        pod(
            &s.cluster,
            json!({"metadata": {"name": name, "namespace": "prod"},
                "spec": {"nodeName": s.node.name(), "activeDeadlineSeconds": 60,
                    "containers": [{"name": "app", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}),
        );
        s.node.wait_running("prod", name, WAIT).await.unwrap();
    }

    // The connection drops after 100 bytes of stdout: no more output, no exit status.
    s.cluster.faults().drop_exec_after(100);
    let script = "i=0; while [ $i -lt 1000 ]; do echo line-$i; i=$((i+1)); done\n";
    let ap = AttachParams::default().container("app").stdin(true);
    let mut p = s.pods.exec("web-0", ["sh", "-s"], &ap).await.unwrap();
    let out = p.stdout().unwrap();
    let status = p.take_status().unwrap();
    let mut w = p.stdin().unwrap();
    w.write_all(script.as_bytes()).await.unwrap();
    w.shutdown().await.unwrap();
    let out = tokio::time::timeout(WAIT, read_all(out)).await.unwrap();
    assert_eq!(out.len(), 100, "{out:?}");
    assert!(out.starts_with("line-0\nline-1\n"));
    assert_eq!(tokio::time::timeout(WAIT, status).await.unwrap(), None);
    // One session only: the next one completes.
    let (out, _, status) = exec(
        &s.pods,
        "web-0",
        "app",
        &["sh", "-s"],
        Some(script.as_bytes()),
    )
    .await;
    assert_eq!(
        (out.lines().count(), status.status.as_deref()),
        (1000, Some("Success"))
    );

    // An ephemeral container whose image cannot be pulled never starts.
    s.node.remove_image("busybox:1.36");
    let patch = json!({"spec": {"ephemeralContainers": [{"name": "probe", "image": "busybox:1.36",
        "targetContainerName": "app", "command": ["true"]}]}});
    s.pods
        .patch_ephemeral_containers("web-0", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    let waiting = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.ephemeral_container_statuses.as_ref())
            .and_then(|e| e.first()?.state.clone()?.waiting?.reason)
    };
    let p = s
        .node
        .wait_pod("prod", "web-0", WAIT, |p| waiting(p).is_some())
        .await
        .unwrap();
    assert_eq!(waiting(&p).as_deref(), Some("ErrImagePull"));

    // The target dies: 137, and the pod fails (no restarts on this node).
    s.node.kill_container("prod", "web-0", "app").unwrap();
    assert_eq!(
        s.node
            .wait_terminated("prod", "web-0", "app", WAIT)
            .await
            .unwrap(),
        137
    );
    let p = s.pods.get("web-0").await.unwrap();
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Failed"));
    assert!(s.node.kill_container("prod", "web-0", "app").is_err());

    // activeDeadlineSeconds runs on the API's clock.
    s.cluster.clock().advance(Duration::from_secs(61));
    let p = s
        .node
        .wait_pod("prod", "timed", WAIT, |p| {
            p.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("DeadlineExceeded")
        })
        .await
        .unwrap();
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Failed"));
    assert_eq!(
        s.node
            .wait_terminated("prod", "timed", "app", WAIT)
            .await
            .unwrap(),
        137
    );
    s.node.shutdown().unwrap();
}

/// A root target keeps containerd's 14 default capabilities: a root reader without
/// capabilities cannot enter its root, a root reader holding exactly those 14 can.
#[tokio::test]
async fn a_root_target_is_readable_only_with_its_own_capabilities() {
    let s = setup();
    pod(
        &s.cluster,
        json!({"metadata": {"name": "root-0", "namespace": "prod"},
            "spec": {"nodeName": s.node.name(), "containers": [{"name": "app",
                "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}),
    );
    s.node.wait_running("prod", "root-0", WAIT).await.unwrap();
    let defaults = [
        "CHOWN",
        "DAC_OVERRIDE",
        "FSETID",
        "FOWNER",
        "MKNOD",
        "NET_RAW",
        "SETGID",
        "SETUID",
        "SETFCAP",
        "SETPCAP",
        "NET_BIND_SERVICE",
        "SYS_CHROOT",
        "KILL",
        "AUDIT_WRITE",
    ];
    let reader = |name: &str, add: &[&str]| {
        json!({"name": name, "image": "busybox:1.36", "targetContainerName": "app",
            "command": ["sh", "-c", "grep CapEff /proc/1/status; grep CapEff /proc/self/status; cat /proc/1/root/etc/group"],
            "securityContext": {"runAsUser": 0, "capabilities": {"drop": ["ALL"], "add": add},
                "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true}})
    };
    let patch =
        json!({"spec": {"ephemeralContainers": [reader("none", &[]), reader("same", &defaults)]}});
    s.pods
        .patch_ephemeral_containers("root-0", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    assert_eq!(
        s.node
            .wait_terminated("prod", "root-0", "none", WAIT)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.node
            .wait_terminated("prod", "root-0", "same", WAIT)
            .await
            .unwrap(),
        0
    );
    // 0xa80425fb is exactly the 14 defaults.
    let none = log_containing(&s.pods, "root-0", "none", "denied").await;
    // stdout and stderr reach the log through separate pipes: compare lines, not order.
    let mut lines: Vec<&str> = none.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "CapEff:\t0000000000000000",
            "CapEff:\t00000000a80425fb",
            "cat: can't open '/proc/1/root/etc/group': Permission denied",
        ],
        "{none}"
    );
    assert!(none.contains("Permission denied"), "{none}");
    let same = log_containing(&s.pods, "root-0", "same", "app:x").await;
    assert!(
        same.starts_with("CapEff:\t00000000a80425fb\nCapEff:\t00000000a80425fb\nroot:x:0:"),
        "{same}"
    );
    s.node.shutdown().unwrap();
}
