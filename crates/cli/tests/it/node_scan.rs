//! `keyhole scan` end to end ON THE TEST NODE (`keyhole_testkit::node`): the fake API server's
//! pods run as real runc containers, so exec is `runc exec`, the ephemeral scanner is a real
//! container in the target's PID namespace running the static `keyhole-agent`, and the sidecar
//! is a real container sharing the pod's PID namespace. Each workflow is driven through the
//! library entry point (`keyhole_cli::cluster_scan::scan_cluster`, as `cluster_scan.rs` does)
//! and its facts and HDF compared with the local `--pid` scan (`LocalRoot::process`) of the same
//! container, read with the scanner's privileges (root for standard's root target; the target's
//! UID with no capabilities for distroless and sidecar, see [`local_facts`]). Then the faults a
//! real node produces: the agent image missing, the target killed, a hostile distroless target.
//!
//! Needs root, `runc`, `busybox-static` and `rustc` (the node's trees), and builds the static
//! agent once (`target/static`, minutes the first time); a missing tool fails the test.

use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use keyhole_core::ScanMode;
use keyhole_engine::{FactSource as _, Facts, Inputs, LocalRoot, Profile, Waivers};
use keyhole_testkit::FakeCluster;
use keyhole_testkit::node::{Image, Images, Node, NodeOptions, rootfs};
use serde_json::json;

use crate::cluster_scan::{
    Scanned, assert_one_role_at_a_time, distroless_options, is_scoped, normalise, require_root,
    scan_in, timeless,
};
use crate::scenarios;
use crate::support::{NS, POD};

pub(crate) const WAIT: Duration = Duration::from_secs(60);
/// The agent image the scan asks for (`distroless_options`); the node serves it from the
/// agent tree whatever its tag and digest.
pub(crate) const AGENT_IMAGE: &str = "ghcr.io/keyhole-scanner/keyhole-agent";

/// The node's images: busybox (root), the true distroless `pause` tree, and the agent. Built
/// once per test process: the agent tree is refreshed in place when the static agent changed,
/// which parallel tests must not race on.
pub(crate) fn images() -> Images {
    static IMAGES: std::sync::OnceLock<Images> = std::sync::OnceLock::new();
    IMAGES.get_or_init(build_images).clone()
}

fn build_images() -> Images {
    let cache = rootfs::cache_dir();
    let busybox = rootfs::busybox(&cache.join("busybox")).expect("the busybox tree");
    let distroless = rootfs::distroless(&cache.join("distroless")).expect("the distroless tree");
    let agent = rootfs::agent(
        &cache.join("agent"),
        &rootfs::static_agent().expect("the static keyhole-agent builds"),
    )
    .expect("the agent tree");
    Images::new()
        .with("busybox:1.36", Image::new(busybox).cmd(["sh"]))
        .with(
            "registry.example/distroless",
            Image::new(distroless).entrypoint(["/pause"]),
        )
        .with(AGENT_IMAGE, Image::new(agent))
}

/// A fake cluster with namespace `prod` and a node serving it.
pub(crate) fn node() -> (FakeCluster, Node) {
    require_root();
    let cluster = FakeCluster::new();
    cluster.create_namespace(NS);
    let node = Node::start(&cluster, images(), NodeOptions::default())
        .unwrap_or_else(|e| panic!("the node cannot start: {e}"));
    (cluster, node)
}

/// Creates `prod/web-0` from `spec` and waits until its containers run on the node.
pub(crate) async fn start_pod(cluster: &FakeCluster, node: &Node, spec: serde_json::Value) {
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": POD, "namespace": NS},
        "spec": spec,
    }))
    .unwrap();
    cluster.insert(&pod).unwrap();
    node.wait_running(NS, POD, WAIT)
        .await
        .unwrap_or_else(|e| panic!("the target pod does not run: {e}"));
}

/// The host PID of container `c` of `prod/web-0`.
pub(crate) fn pid_of(node: &Node, c: &str) -> u32 {
    node.container_pid(NS, POD, c)
        .unwrap_or_else(|| panic!("container {c} has no process on the node"))
}

/// A busybox tree with 20 000 more files (built once): a gather long enough that a kill lands
/// while it runs, on a loaded machine too.
pub(crate) fn slow_tree() -> std::path::PathBuf {
    static TREE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    TREE.get_or_init(|| {
        let tree = crate::support::scratch("slow").join("tree");
        let busybox = rootfs::busybox(&rootfs::cache_dir().join("busybox")).unwrap();
        let copied = std::process::Command::new("cp")
            .arg("-a")
            .arg(busybox)
            .arg(&tree)
            .status()
            .unwrap();
        assert!(copied.success());
        for d in 0..200 {
            let dir = tree.join(format!("usr/share/bulk/{d}"));
            std::fs::create_dir_all(&dir).unwrap();
            for f in 0..100 {
                std::fs::write(dir.join(format!("f{f}")), b"x").unwrap();
            }
        }
        tree
    })
    .clone()
}

/// The exec's shells (`/bin/sh -s`) running in the PID namespace of host process `init`, a
/// container's init.
pub(crate) fn exec_shells(init: u32) -> Vec<u32> {
    let ns = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let Some(want) = ns(init) else {
        return Vec::new();
    };
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| {
            p != init
                && ns(p).as_ref() == Some(&want)
                && std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.starts_with("/bin/sh\0-s"))
        })
        .collect()
}

/// Stops the exec's shells in `init`'s PID namespace where they are, and says whether there
/// were any. Why: a kill is `runc kill`, a process of its own, and on a fast machine the fact
/// script could finish before it lands; a stopped shell cannot finish its script, so the kill
/// that follows is mid-scan however long `runc kill` takes (SIGKILL still ends a stopped
/// process).
pub(crate) fn freeze_exec(init: u32) -> bool {
    let shells = exec_shells(init);
    shells.iter().copied().for_each(stop_process);
    !shells.is_empty()
}

/// SIGSTOP to host process `pid`. One that has just exited is no error: the scan's own outcome
/// tells (the callers assert it).
pub(crate) fn stop_process(pid: u32) {
    let pid =
        rustix::process::Pid::from_raw(i32::try_from(pid).expect("a pid")).expect("a non-zero pid");
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::STOP);
}

/// Every entry of the container's root as its process sees it (`/proc/PID/root`: the overlay's
/// merged view, so a write anywhere shows), with type, mode, owner, size, mtime and a content
/// hash; the kernel's filesystems (`/proc`, `/sys`, `/dev`) are skipped.
pub(crate) fn root_state(pid: u32) -> Vec<String> {
    use std::hash::{Hash as _, Hasher as _};
    use std::os::unix::fs::MetadataExt as _;
    let root = Path::new("/proc").join(pid.to_string()).join("root");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            if ["proc", "sys", "dev"].iter().any(|k| path == root.join(k)) {
                continue;
            }
            let m = std::fs::symlink_metadata(&path).unwrap();
            let mut h = std::hash::DefaultHasher::new();
            if m.is_file() {
                std::fs::read(&path).unwrap().hash(&mut h);
            } else if m.file_type().is_symlink() {
                std::fs::read_link(&path).unwrap().hash(&mut h);
            }
            out.push(format!(
                "{} {:o} {}:{} {} {}.{} {}",
                path.strip_prefix(&root).unwrap().display(),
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
    assert!(out.len() > 3, "the root of {pid} looks empty: {out:?}");
    out
}

/// The local `--pid` scan's facts of `pid` (`LocalRoot::process`), gathered with the
/// privileges the cluster scanner had: as this (root) process when `as_uid` is `None`; else as
/// `as_uid:as_uid` with no capabilities, no groups and no_new_privs (`setpriv`), by the agent
/// binary's `scan --pid` (the same local path, in a process that can drop privileges). A root
/// reader sees more than the target's UID (`/root` is 0700): comparing with it would compare
/// privileges, not workflows.
pub(crate) fn local_facts(pid: u32, plan: &keyhole_engine::FactPlan, as_uid: Option<u32>) -> Facts {
    let Some(uid) = as_uid else {
        return LocalRoot::process(pid)
            .expect("the local source opens")
            .gather(plan);
    };
    let agent = rootfs::static_agent().expect("the static keyhole-agent builds");
    let out = std::process::Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .args([
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
        ])
        .arg(agent)
        .args(["scan", "--pid", &pid.to_string()])
        .env("KEYHOLE_FACT_PLAN", serde_json::to_string(plan).unwrap())
        .output()
        .expect("setpriv runs (apt-get install -y util-linux)");
    assert!(
        out.status.success(),
        "the local scan as {uid}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = keyhole_engine::read_facts_frames(&String::from_utf8(out.stdout).unwrap());
    assert_eq!((read.frames.len(), read.damaged), (1, 0), "one frame");
    read.frames[0].facts.clone()
}

/// The facts and HDF of `remote` equal those of the local `--pid` scan of `pid` (read as
/// `as_uid`, see [`local_facts`]).
pub(crate) fn same_as_local_pid_scan(
    remote: &Facts,
    evaluated: &keyhole_workflows::Evaluated,
    pid: u32,
    as_uid: Option<u32>,
) {
    let profile = Profile::builtin("container-baseline").unwrap();
    let inputs = Inputs::defaults(&profile);
    let plan = keyhole_engine::plan(&profile, &inputs);
    let local = local_facts(pid, &plan, as_uid);
    let (r, l) = (normalise(remote), normalise(&local));
    assert_eq!(r.len(), l.len(), "different numbers of answers");
    for (a, b) in r.iter().zip(&l) {
        assert_eq!(a, b, "the cluster path and the local --pid scan disagree");
    }
    let now = Timestamp::now();
    let local_hdf = keyhole_engine::evaluate(&profile, &inputs, &local, &Waivers::none(), now);
    let local_hdf = timeless(serde_json::to_value(&local_hdf).unwrap());
    let remote_hdf = keyhole_engine::evaluate(&profile, &inputs, remote, &Waivers::none(), now);
    assert_eq!(
        timeless(serde_json::to_value(&remote_hdf).unwrap()),
        local_hdf
    );
    // The HDF the scan itself produced is that one too.
    assert_eq!(
        crate::cluster_scan::scanned_hdf(&evaluated.execution),
        local_hdf
    );
}

pub(crate) fn assert_ok(s: &Scanned) {
    assert_eq!(
        s.outcome.session.exit_code,
        0,
        "error: {:?}",
        s.outcome.session.error.as_ref().map(ToString::to_string)
    );
    assert!(s.outcome.session.error.is_none());
    assert!(s.outcome.session.cleanup.is_clean());
    let (code, _) = crate::support::clean_ending(&s.records);
    assert_eq!(code, 0);
}

/// The scoped identity's calls, as `verb path`.
pub(crate) fn scoped_calls(cluster: &FakeCluster) -> Vec<String> {
    cluster
        .calls()
        .into_iter()
        .filter(|c| is_scoped(&c.identity))
        .map(|c| format!("{} {}", c.verb, c.path))
        .collect()
}

/// The OCI `config.json` runc ran container `name` of `prod/web-0` with. The node exposes
/// the container's log path (`<pod dir>/logs/NAME.log`) but not its bundle, which it keeps
/// beside it (`<pod dir>/containers/NAME/bundle`) until the pod is deleted.
pub(crate) fn oci_config(node: &Node, name: &str) -> serde_json::Value {
    let log = node.container_log_path(NS, POD, name).expect("a log path");
    let pod_dir = log.parent().and_then(Path::parent).unwrap();
    let path = pod_dir
        .join("containers")
        .join(name)
        .join("bundle/config.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the node's bundle layout changed? {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The distroless target: the `pause` tree (one static binary, no shell) as UID/GID 10001.
pub(crate) fn distroless_target() -> serde_json::Value {
    json!({"containers": [{
        "name": "app",
        "image": "registry.example/distroless:1.0@sha256:0123",
        "securityContext": {"runAsUser": 10001, "runAsGroup": 10001},
    }]})
}

/// The scenarios' view of the fake with a node serving `prod` (the node binds the pods).
fn fake_server(cluster: &FakeCluster) -> scenarios::Server {
    scenarios::Server {
        admin: cluster.client_admin(),
        endpoint: crate::support::endpoint(cluster),
        scoped: crate::support::FakeScoped::new(cluster),
        namespace: NS.to_owned(),
        node: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_on_the_node_one_scoped_runc_exec_gives_the_local_pid_hdf_and_changes_nothing() {
    let (cluster, node) = node();
    scenarios::standard(&fake_server(&cluster)).await;
    // Exactly one exec, by the scoped ServiceAccount, into the target container.
    let execs = cluster.execs();
    assert_eq!(execs.len(), 1, "{execs:?}");
    assert_eq!(
        (
            execs[0].namespace.as_str(),
            execs[0].pod.as_str(),
            execs[0].container.as_str()
        ),
        (NS, POD, "app")
    );
    assert!(
        is_scoped(&execs[0].identity),
        "exec ran as {:?}",
        execs[0].identity
    );
    assert!(
        cluster.managed_objects().is_empty(),
        "{:?}",
        cluster.managed_objects()
    );
    node.shutdown().expect("the node leaves nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distroless_on_the_node_the_agent_runs_as_the_target_uid_and_gives_the_local_pid_hdf() {
    let (cluster, node) = node();
    scenarios::distroless(&fake_server(&cluster)).await;
    assert!(cluster.execs().is_empty(), "no exec in distroless mode");
    let pod: Pod = cluster.object(NS, POD).unwrap();
    let eph = pod.spec.unwrap().ephemeral_containers.unwrap();
    assert_eq!(
        serde_json::to_value(eph[0].security_context.as_ref().unwrap()).unwrap()["privileged"],
        false
    );
    // And as runc ran it: the OCI config of the agent's container.
    let oci = oci_config(&node, &eph[0].name);
    assert_eq!(oci["process"]["args"][0], "/keyhole-agent", "{oci}");
    assert_eq!(oci["process"]["user"]["uid"], 10001, "{oci}");
    assert_eq!(oci["process"]["user"]["gid"], 10001, "{oci}");
    assert_eq!(oci["process"]["noNewPrivileges"], true, "{oci}");
    assert_eq!(oci["root"]["readonly"], true, "{oci}");
    for set in [
        "bounding",
        "effective",
        "permitted",
        "inheritable",
        "ambient",
    ] {
        let caps = &oci["process"]["capabilities"][set];
        assert!(
            caps.is_null() || caps.as_array().is_some_and(Vec::is_empty),
            "{set} capabilities: {caps}"
        );
    }
    for c in scoped_calls(&cluster) {
        let pod = format!("/api/v1/namespaces/{NS}/pods/{POD}");
        assert!(
            c.ends_with("selfsubjectrulesreviews")
                || c == format!("get {pod}")
                || c == format!("patch {pod}/ephemeralcontainers")
                || c == format!("get {pod}/log"),
            "unexpected scoped call {c}"
        );
    }
    assert!(
        cluster.managed_objects().is_empty(),
        "{:?}",
        cluster.managed_objects()
    );
    node.shutdown().expect("the node leaves nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_on_the_node_falls_back_to_distroless_with_one_role_at_a_time() {
    let (cluster, node) = node();
    scenarios::auto_without_a_shell(&fake_server(&cluster)).await;
    assert_eq!(
        cluster.execs().len(),
        1,
        "one standard attempt, real runc exec"
    );
    assert_one_role_at_a_time(&cluster);
    assert!(cluster.managed_objects().is_empty());
    node.shutdown().expect("the node leaves nothing");
}

/// `prod/web-0` as a user writes it (busybox `app` as 10001), injected by the library behind
/// `keyhole sidecar inject`, with the target marker and a 2 s interval added by hand.
pub(crate) fn injected_pod() -> Pod {
    // The pod as a user writes it, injected by the library behind `keyhole sidecar inject`.
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {POD}\n  namespace: {NS}\nspec:\n  \
         containers:\n  - name: app\n    image: busybox:1.36\n    command: [sleep, \"3600\"]\n    \
         securityContext:\n      runAsUser: 10001\n      runAsGroup: 10001\n"
    );
    let injected = keyhole_scanners::inject_sidecar(
        &manifest,
        &keyhole_scanners::InjectOptions {
            container: None,
            target_uid: None,
            target_gid: None,
            image: distroless_options().image,
            time_limit_secs: 60,
        },
    )
    .expect("inject");
    let mut pod: Pod = serde_norway::from_str(&injected.yaml).unwrap();
    let spec = pod.spec.as_mut().unwrap();
    assert_eq!(spec.share_process_namespace, Some(true));
    // `inject` marks the app container so the agent finds its processes (written out by hand,
    // not taken from the product's constant).
    let app = spec.containers.iter().find(|c| c.name == "app").unwrap();
    let markers: Vec<_> = app
        .env
        .iter()
        .flatten()
        .filter(|e| e.name == "KEYHOLE_SCAN_TARGET")
        .map(|e| (e.value.as_deref(), e.value_from.is_some()))
        .collect();
    assert_eq!(markers, [(Some("app"), false)], "inject adds the marker");
    let sidecar = spec
        .containers
        .iter_mut()
        .find(|c| c.name == keyhole_scanners::SIDECAR_NAME)
        .unwrap();
    sidecar
        .command
        .as_mut()
        .unwrap()
        .extend(["--interval".into(), "2s".into()]);
    pod
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_on_the_node_reads_the_real_sidecars_log_only_and_gives_the_local_pid_hdf() {
    let (cluster, node) = node();
    scenarios::sidecar(&fake_server(&cluster)).await;
    assert!(cluster.execs().is_empty());
    let pod_path = format!("/api/v1/namespaces/{NS}/pods/{POD}");
    let calls = scoped_calls(&cluster);
    for c in &calls {
        assert!(
            c.ends_with("selfsubjectrulesreviews")
                || *c == format!("get {pod_path}")
                || *c == format!("get {pod_path}/log"),
            "unexpected scoped call {c}"
        );
    }
    assert!(calls.contains(&format!("get {pod_path}/log")), "{calls:?}");
    assert!(cluster.managed_objects().is_empty());
    node.shutdown().expect("the node leaves nothing");
}

/// Distroless options for the fault tests: a wait far below the product's (minutes), so a
/// scan that waits for the deadline instead of noticing the failure shows as this message.
pub(crate) fn fault_options() -> keyhole_workflows::DistrolessOptions {
    keyhole_workflows::DistrolessOptions {
        wait: Duration::from_secs(20),
        ..distroless_options()
    }
}

/// A scan that failed: the documented setup-failure exit code, no result, every object
/// deleted and verified, the audit chain valid and ending clean. Returns the error.
pub(crate) fn assert_failed_clean(s: &Scanned, cluster: &FakeCluster) -> String {
    let o = &s.outcome;
    assert_eq!(
        o.session.exit_code,
        keyhole_cli::session::EXIT_SETUP_FAILED,
        "{:?}",
        o.session.error.as_ref().map(ToString::to_string)
    );
    assert!(o.results.is_empty(), "no result from a failed gathering");
    assert!(o.session.cleanup.is_clean());
    assert!(
        cluster.managed_objects().is_empty(),
        "{:?}",
        cluster.managed_objects()
    );
    crate::support::clean_ending(&s.records);
    o.session.error.as_ref().expect("an error").to_string()
}

/// The agent's image cannot be pulled (the node does not have it): the ephemeral container
/// never starts, and the scan says so with the kubelet's reason, long before its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distroless_on_the_node_with_the_agent_image_missing_fails_fast_and_leaves_nothing() {
    let (cluster, node) = node();
    start_pod(&cluster, &node, distroless_target()).await;
    node.remove_image(AGENT_IMAGE);
    let profile = Profile::builtin("container-baseline").unwrap();
    let started = std::time::Instant::now();
    let s =
        crate::cluster_scan::scan_with(&cluster, &profile, ScanMode::Distroless, fault_options())
            .await;
    let e = assert_failed_clean(&s, &cluster);
    eprintln!("agent image missing: {e}");
    assert!(e.contains("ErrImagePull"), "{e}");
    assert!(e.contains(AGENT_IMAGE), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "waited for the deadline: {e}"
    );
    assert_eq!(s.outcome.traces.len(), 1, "{:?}", s.outcome.traces);
    node.shutdown().expect("the node leaves nothing");
}

/// The target dies as soon as the scanner is added to its pod (SIGKILL, as an OOM kill; the
/// node starts the scanner on its next pass, so it finds the target gone): the
/// scan is an error, never a result, and every object is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distroless_on_the_node_with_the_target_killed_as_the_scanner_is_added_fails_and_leaves_nothing()
 {
    let (cluster, node) = node();
    start_pod(&cluster, &node, distroless_target()).await;
    let node = std::sync::Arc::new(node);
    let killer = {
        let (cluster, node) = (cluster.clone(), node.clone());
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + WAIT;
            loop {
                let pod: Pod = cluster.object(NS, POD).unwrap();
                if pod
                    .spec
                    .and_then(|s| s.ephemeral_containers)
                    .is_some_and(|v| !v.is_empty())
                {
                    node.kill_container(NS, POD, "app")
                        .expect("the target runs");
                    return;
                }
                assert!(std::time::Instant::now() < deadline, "no scanner was added");
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let profile = Profile::builtin("container-baseline").unwrap();
    let s =
        crate::cluster_scan::scan_with(&cluster, &profile, ScanMode::Distroless, fault_options())
            .await;
    killer.join().unwrap();
    let e = assert_failed_clean(&s, &cluster);
    eprintln!("target killed: {e}");
    assert!(
        !e.contains("did not finish within"),
        "waited for the deadline: {e}"
    );
    assert_eq!(s.outcome.traces.len(), 1, "{:?}", s.outcome.traces);
    std::sync::Arc::try_unwrap(node)
        .expect("the killer is done")
        .shutdown()
        .expect("the node leaves nothing");
}

/// The standard target dies once the scoped access exists, before its one exec: the exec
/// cannot run, and the scan says the container is not running — not that it has no shell
/// (which would send the user to distroless mode for nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_on_the_node_with_the_target_killed_before_the_exec_fails_and_leaves_nothing() {
    let (cluster, node) = node();
    start_pod(
        &cluster,
        &node,
        json!({"containers": [{"name": "app", "image": "busybox:1.36",
            "command": ["sleep", "3600"]}]}),
    )
    .await;
    let node = std::sync::Arc::new(node);
    // The exec is held for 5 s once it reaches the API server: the kill below lands first on
    // any machine, so the exec always meets a dead container.
    cluster.faults().fail_matching(
        keyhole_testkit::FaultRule::new(keyhole_testkit::Fault::Delay(Duration::from_secs(5)))
            .path("/api/v1/namespaces/*/pods/*/exec")
            .times(1),
    );
    let killer = {
        let (cluster, node) = (cluster.clone(), node.clone());
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + WAIT;
            // The call is recorded as it arrives, before its delay.
            while !cluster.calls().iter().any(|c| c.path.ends_with("/exec")) {
                assert!(std::time::Instant::now() < deadline, "no exec was sent");
                std::thread::sleep(Duration::from_millis(1));
            }
            node.kill_container(NS, POD, "app")
                .expect("the target runs");
        })
    };
    let profile = Profile::builtin("container-baseline").unwrap();
    let s = scan_in(&cluster, &profile, ScanMode::Standard).await;
    killer.join().unwrap();
    let e = assert_failed_clean(&s, &cluster);
    eprintln!("target killed: {e}");
    assert!(!e.contains("no shell"), "misdiagnosed as distroless: {e}");
    // Kubernetes' own words (pkg/registry/core/pod), once, without kube's Debug dump.
    assert!(
        e.contains("cannot exec into a container in a completed pod"),
        "{e}"
    );
    assert!(
        !e.contains("Status {"),
        "a Debug dump in a user's error: {e}"
    );
    assert!(
        cluster.execs().len() <= 1,
        "no retry: {:?}",
        cluster.execs()
    );
    std::sync::Arc::try_unwrap(node)
        .expect("the killer is done")
        .shutdown()
        .expect("the node leaves nothing");
}

/// A hostile distroless target whose files are symlinks to the scanner's own paths (its binary,
/// its environment through `/proc/self`): the agent resolves them inside the target's root, so
/// no fact carries a byte of the scanner's files or environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distroless_on_the_node_symlinks_to_the_scanners_paths_leak_nothing() {
    let (cluster, node) = node();
    let tree = crate::support::scratch("tricky").join("tree");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(rootfs::distroless(&rootfs::cache_dir().join("distroless")).unwrap())
        .arg(&tree)
        .status()
        .unwrap();
    assert!(copied.success());
    for (link, to) in [
        ("etc/os-release", "/keyhole-agent"),
        ("etc/shadow", "/proc/self/environ"),
        ("etc/group", "../../../../keyhole-agent"),
        ("etc/hostname", "/proc/self/root/keyhole-agent"),
    ] {
        std::os::unix::fs::symlink(to, tree.join(link))
            .or_else(|_| {
                std::fs::remove_file(tree.join(link))?;
                std::os::unix::fs::symlink(to, tree.join(link))
            })
            .unwrap();
    }
    node.add_image(
        "registry.example/tricky",
        Image::new(&tree).entrypoint(["/pause"]),
    );
    start_pod(
        &cluster,
        &node,
        json!({"containers": [{"name": "app", "image": "registry.example/tricky:1",
            "securityContext": {"runAsUser": 10001, "runAsGroup": 10001}}]}),
    )
    .await;
    let profile = Profile::builtin("container-baseline").unwrap();
    let s = scan_in(&cluster, &profile, ScanMode::Distroless).await;
    assert_ok(&s);
    let facts = &s.outcome.results[0].facts;
    let mut read = 0;
    for (req, answer) in facts.iter() {
        if let keyhole_engine::FactRequest::Read { path, .. } = req
            && path.as_bytes() == b"/etc/shadow"
        {
            // Through the target's /proc to the scanner's own process: refused.
            assert_eq!(answer, &Err(keyhole_engine::FactError::Escape), "{req:?}");
        }
        if let Ok(keyhole_engine::FactValue::Content(c)) = answer {
            read += 1;
            // The scanner's binary, and the variable only its environment holds (the target's
            // own environment, read as `Proc`, is the target's).
            for needle in [&b"\x7fELF"[..], b"KEYHOLE_FACT_PLAN"] {
                assert!(
                    !c.bytes.windows(needle.len()).any(|w| w == needle),
                    "{req:?} leaked the scanner's {:?}",
                    String::from_utf8_lossy(needle)
                );
            }
        }
    }
    assert!(read > 0, "some files were read");
    assert!(cluster.managed_objects().is_empty());
    node.shutdown().expect("the node leaves nothing");
}

/// The pod spec does not say the target's UID (the image's USER does: 10001) and the user
/// passes the wrong one: the kernel refuses the agent, and the scan says so clearly (the
/// agent's exit code and reason), with nothing left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distroless_on_the_node_with_the_wrong_target_uid_is_a_clear_permission_error() {
    let (cluster, node) = node();
    let distroless = rootfs::distroless(&rootfs::cache_dir().join("distroless")).unwrap();
    node.add_image(
        "registry.example/distroless-user",
        Image::new(distroless)
            .entrypoint(["/pause"])
            .user(10001, 10001),
    );
    start_pod(
        &cluster,
        &node,
        json!({"containers": [{"name": "app", "image": "registry.example/distroless-user:1"}]}),
    )
    .await;
    let profile = Profile::builtin("container-baseline").unwrap();
    let opts = keyhole_workflows::DistrolessOptions {
        target_uid: Some(10002),
        target_gid: Some(10002),
        ..fault_options()
    };
    let s = crate::cluster_scan::scan_with(&cluster, &profile, ScanMode::Distroless, opts).await;
    let e = assert_failed_clean(&s, &cluster);
    eprintln!("wrong uid: {e}");
    assert!(e.contains("exited with 3"), "{e}");
    assert!(e.contains("UID"), "the reason names the UID: {e}");
    assert_eq!(s.outcome.traces.len(), 1, "{:?}", s.outcome.traces);
    node.shutdown().expect("the node leaves nothing");
}

/// Standard on a non-root target (runAsUser 10001): the exec runs as the target's user, and
/// its facts are the local scan's as that user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_on_the_node_a_non_root_target_gives_the_local_scan_as_its_uid() {
    let (cluster, node) = node();
    start_pod(
        &cluster,
        &node,
        json!({"containers": [{"name": "app", "image": "busybox:1.36",
            "command": ["sleep", "3600"],
            "securityContext": {"runAsUser": 10001, "runAsGroup": 10001}}]}),
    )
    .await;
    let pid = pid_of(&node, "app");
    let profile = Profile::builtin("container-baseline").unwrap();
    let s = scan_in(&cluster, &profile, ScanMode::Standard).await;
    assert_ok(&s);
    let r = &s.outcome.results[0];
    same_as_local_pid_scan(&r.facts, &r.evaluated, pid, Some(10001));
    assert_eq!(cluster.execs().len(), 1);
    assert!(cluster.managed_objects().is_empty());
    node.shutdown().expect("the node leaves nothing");
}

/// The sidecar runs under another UID than its target (a user's edit): it cannot read the
/// target and writes no facts; the scan is an error that passes on the agent's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_on_the_node_under_the_wrong_uid_is_an_error_with_the_agents_reason() {
    let (cluster, node) = node();
    let mut pod = injected_pod();
    let sidecar = pod
        .spec
        .as_mut()
        .unwrap()
        .containers
        .iter_mut()
        .find(|c| c.name == keyhole_scanners::SIDECAR_NAME)
        .unwrap();
    let sc = sidecar.security_context.as_mut().unwrap();
    sc.run_as_user = Some(10002);
    sc.run_as_group = Some(10002);
    cluster.insert(&pod).unwrap();
    node.wait_running(NS, POD, WAIT).await.unwrap();
    // Wait for the sidecar's first (failed) gather on its log.
    let log = node
        .container_log_path(NS, POD, keyhole_scanners::SIDECAR_NAME)
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("keyhole-agent:")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the sidecar said nothing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let profile = Profile::builtin("container-baseline").unwrap();
    let s = scan_in(&cluster, &profile, ScanMode::Sidecar).await;
    let e = assert_failed_clean(&s, &cluster);
    eprintln!("sidecar wrong uid: {e}");
    assert!(e.contains("UID"), "the agent's reason is passed on: {e}");
    assert!(cluster.execs().is_empty());
    node.shutdown().expect("the node leaves nothing");
}
