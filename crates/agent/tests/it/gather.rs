//! The agent's success path, read back by keyhole's own frame parser: a process chrooted into
//! a small root (standing for a target container), the agent run on it with the fact plan in
//! `KEYHOLE_FACT_PLAN`, and the frame on its stdout decoded and compared with `LocalRoot` over
//! the same process. Also its refusals: a bad plan (exit 2), a missing process (exit 3), no
//! frame in either case, and the environment marker that finds the target container.
//!
//! Needs root (chroot) and `busybox-static`; a missing one fails the test and says why.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use keyhole_engine::{FactRequest, FactSource as _, Inputs, LocalRoot, Profile, read_facts_frames};

pub(crate) fn busybox() -> PathBuf {
    let p = Path::new("/bin/busybox");
    assert!(
        p.exists(),
        "busybox is missing: apt-get install -y busybox-static"
    );
    p.to_path_buf()
}

pub(crate) fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the agent tests chroot a target process and need root"
    );
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("agent-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::copy(busybox(), dir.join("busybox")).unwrap();
    std::fs::write(
        dir.join("etc/os-release"),
        "ID=agenttest\nVERSION_ID=\"2\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    // An absolute symlink to a host file: must resolve inside the root (so: not found).
    std::os::unix::fs::symlink("/etc/hostname", dir.join("etc/hostname")).unwrap();
    dir
}

/// A target process chrooted into `root`, carrying `env`; killed on drop.
pub(crate) struct Target(pub(crate) Child);

impl Target {
    pub(crate) fn start(root: &Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new("/usr/sbin/chroot");
        cmd.arg(root).args(["/busybox", "sleep", "600"]).env_clear();
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("chroot starts");
        // Wait until it runs inside the root.
        for _ in 0..200 {
            if std::fs::read_to_string(format!("/proc/{}/comm", child.id()))
                .is_ok_and(|c| c.trim() == "busybox")
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Self(child)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn agent(args: &[&str], plan: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyhole-agent"));
    cmd.args(args)
        .stdin(Stdio::null())
        .env_remove("KEYHOLE_FACT_PLAN");
    if let Some(p) = plan {
        cmd.env("KEYHOLE_FACT_PLAN", p);
    }
    cmd.output().expect("the agent runs")
}

fn plan_json() -> (keyhole_engine::FactPlan, String) {
    let profile = Profile::builtin("container-baseline").unwrap();
    let plan = keyhole_engine::plan(&profile, &Inputs::defaults(&profile));
    let json = serde_json::to_string(&plan).unwrap();
    (plan, json)
}

#[test]
fn the_agent_writes_one_checksummed_frame_of_the_plans_facts() {
    require_root();
    let root = scratch("facts");
    let target = Target::start(&root, &[]);
    let pid = target.0.id();
    let (plan, json) = plan_json();
    let out = agent(
        &["scan", "--pid", &pid.to_string(), "--time-limit", "60s"],
        Some(&json),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8(out.stdout).unwrap();
    let frames = read_facts_frames(&log);
    assert_eq!((frames.frames.len(), frames.damaged), (1, 0), "{log}");
    let facts = &frames.frames[0].facts;
    // Every request of the plan is answered, and every filesystem answer is LocalRoot's.
    assert_eq!(facts.len(), plan.len());
    let local = LocalRoot::process(pid).unwrap().gather(&plan);
    for (r, a) in facts.iter() {
        if matches!(r, FactRequest::Proc { .. }) {
            continue; // live process data (memory, sockets) may change between two reads
        }
        assert_eq!(Some(a), local.get(r), "{r:?}");
    }
    // And it read the target's root, not ours.
    let os = facts
        .iter()
        .find(|(r, _)| matches!(r, FactRequest::Read { path, .. } if path.as_bytes() == b"/etc/os-release"))
        .map(|(_, a)| format!("{a:?}"))
        .unwrap();
    assert!(os.contains("Content"), "{os}");
    // No verdicts: the frame holds facts only.
    assert!(!log.contains("\"controls\""));
}

#[test]
fn refusals_write_no_frame_and_say_why() {
    require_root();
    let out = agent(&["scan", "--pid", "1"], Some("{not a plan"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("KEYHOLE_FACT_PLAN"));
    assert!(out.stdout.is_empty());

    let (_, json) = plan_json();
    let out = agent(&["scan", "--pid", "999999999"], Some(&json));
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());

    let out = agent(&["scan", "--time-limit", "soon"], Some(&json));
    assert_eq!(out.status.code(), Some(2));

    // A sidecar whose marker matches no process reports it and keeps running (never a
    // restart loop): give it a moment, then stop it.
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyhole-agent"))
        .args([
            "sidecar",
            "--target-container",
            "no-such-app",
            "--interval",
            "1s",
        ])
        .env("KEYHOLE_FACT_PLAN", &json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the sidecar keeps running"
    );
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("KEYHOLE_SCAN_TARGET=no-such-app"));
}

#[test]
fn the_marker_finds_the_target_container() {
    require_root();
    let root = scratch("marker");
    let _target = Target::start(&root, &[("KEYHOLE_SCAN_TARGET", "app")]);
    let (_, json) = plan_json();
    let out = agent(&["scan", "--target-container", "app"], Some(&json));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames = read_facts_frames(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(frames.frames.len(), 1);
    let os = frames.frames[0]
        .facts
        .iter()
        .find(|(r, _)| matches!(r, FactRequest::Read { path, .. } if path.as_bytes() == b"/etc/os-release"))
        .map(|(_, a)| format!("{a:?}"))
        .unwrap();
    // "ID=agenttest" as bytes: 73, 68, 61, 97, 103
    assert!(os.contains("73, 68, 61, 97, 103, 101, 110, 116"), "{os}");
}

/// The time limit ends the gather cleanly: exit 124, the reason on stderr, and no frame (not
/// even a partial one). The plan hashes a 64 GiB sparse file, which takes far longer than the
/// one-second limit.
#[test]
fn the_time_limit_ends_the_gather_without_a_frame() {
    require_root();
    let root = scratch("limit");
    let big = std::fs::File::create(root.join("big")).unwrap();
    big.set_len(64 << 30).unwrap();
    let target = Target::start(&root, &[]);
    let mut plan = keyhole_engine::FactPlan::new();
    plan.add(FactRequest::Sha256 {
        path: keyhole_engine::TargetPath::new(b"/big".to_vec()).unwrap(),
        max_bytes: u64::MAX,
    });
    let json = serde_json::to_string(&plan).unwrap();
    let started = std::time::Instant::now();
    let out = agent(
        &[
            "scan",
            "--pid",
            &target.0.id().to_string(),
            "--time-limit",
            "1s",
        ],
        Some(&json),
    );
    // A guard against a hang, not a timing assertion.
    assert!(
        started.elapsed().as_secs() < 60,
        "the limit did not stop the agent"
    );
    assert_eq!(
        out.status.code(),
        Some(124),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "no partial frame");
    assert!(String::from_utf8_lossy(&out.stderr).contains("time limit"));
}
