//! Real containers with `runc` (as root): a busybox container whose main process runs as UID
//! 10001 and owns a 0600 file. These tests prove, on a real kernel and runtime:
//!
//! - `LocalRoot::process(pid)` (through `/proc/PID/root`, across mount namespaces) sees exactly
//!   what `LocalRoot::directory(rootfs)` sees, and the container's absolute symlinks resolve to
//!   the container's files, not the host's;
//! - the fact script run *inside* the container with `runc exec` (busybox sh and applets only)
//!   gives the same facts as `LocalRoot` from the host, as root and as the target's UID;
//! - a reader process with the target's UID and no capabilities at all reads the target's 0600
//!   file through `/proc/PID/root`, and a reader with another UID gets
//!   `FactError::PermissionDenied` for every file (not a crash, not a silent pass);
//! - the script through the `/proc/PID/root` prefix agrees too (for trusted targets).
//!
//! Needs root, `runc`, `busybox-static` and `setpriv` (util-linux); a missing one fails the test
//! with the package to install. The reader process is the `gather` example, which the tests build
//! with the cargo that runs them.

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use keyhole_engine::{
    FactError, FactPlan, FactRequest, FactSource, FactValue, Facts, LocalRoot, ProcFile,
    ShellScript, WalkLimits, WalkQuery,
};

use crate::source_fixtures::{answer, assert_same_facts, hostile_names, require, tp, within};

/// The target's UID and GID.
pub(crate) const APP: u32 = 10001;
/// Some other user.
const OTHER: u32 = 10002;
/// The content of the target's private file.
pub(crate) const SECRET: &[u8] = b"KEYHOLE-SECRET owned by 10001\n";

pub(crate) fn require_root() {
    assert!(
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0,
        "the runc tests run real containers and need root"
    );
}

pub(crate) fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn chown(path: &Path, id: u32) {
    std::os::unix::fs::lchown(path, Some(id), Some(id)).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A busybox root filesystem: `bin/busybox` and a link per applet, a user 10001 with a private
/// file, and the hostile bits (an absolute symlink, a FIFO, a setuid file, odd names).
fn busybox_rootfs(rootfs: &Path) {
    let busybox = require("busybox", "busybox-static");
    let r = |p: &str| rootfs.join(p);
    for d in [
        "bin", "etc", "home", "tmp", "usr/bin", "proc", "dev", "sys", "names",
    ] {
        std::fs::create_dir_all(r(d)).unwrap();
    }
    std::fs::copy(&busybox, r("bin/busybox")).unwrap();
    chmod(&r("bin/busybox"), 0o755);
    let list = run(Command::new(&busybox).arg("--list"));
    for applet in String::from_utf8_lossy(&list)
        .lines()
        .filter(|a| *a != "busybox")
    {
        symlink("busybox", r("bin").join(applet)).unwrap();
    }
    std::fs::write(
        r("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:10001:10001::/home/app:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(r("etc/group"), "root:x:0:\napp:x:10001:\n").unwrap();
    std::fs::write(r("etc/shadow"), "root:*:19000::::::\n").unwrap();
    chmod(&r("etc/shadow"), 0o600);
    std::fs::write(r("etc/hostname"), "container\n").unwrap();
    symlink("/etc/hostname", r("etc/escape")).unwrap();
    symlink("../../../../etc/hostname", r("etc/up")).unwrap();
    std::fs::create_dir(r("home/app")).unwrap();
    std::fs::write(r("home/app/secret"), SECRET).unwrap();
    chmod(&r("home/app/secret"), 0o600);
    chown(&r("home/app/secret"), APP);
    chmod(&r("home/app"), 0o700);
    chown(&r("home/app"), APP);
    chmod(&r("tmp"), 0o1777);
    std::fs::write(r("tmp/shared"), "anyone").unwrap();
    chmod(&r("tmp/shared"), 0o666);
    std::fs::write(r("usr/bin/suid"), "suid").unwrap();
    chmod(&r("usr/bin/suid"), 0o4755);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        r("tmp/fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o666),
        0,
    )
    .unwrap();
    for name in hostile_names() {
        std::fs::write(r("names").join(std::ffi::OsStr::from_bytes(&name)), &name).unwrap();
    }
}

/// A running container, killed and deleted on drop.
pub(crate) struct Container {
    id: String,
    /// Its main process, as the host numbers it.
    pub(crate) pid: u32,
    _bundle: tempfile::TempDir,
}

impl Container {
    /// Starts `rootfs` (read-only) with `sleep` as UID/GID `uid`.
    pub(crate) fn start(rootfs: &Path, uid: u32) -> Self {
        Self::start_with(rootfs, uid, &[])
    }

    /// [`Container::start`] with extra OCI mounts.
    pub(crate) fn start_with(rootfs: &Path, uid: u32, mounts: &[serde_json::Value]) -> Self {
        require_root();
        let runc = require("runc", "runc");
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "keyhole-it-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let bundle = tempfile::tempdir().unwrap();
        run(Command::new(&runc).arg("spec").current_dir(bundle.path()));
        let path = bundle.path().join("config.json");
        let mut config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        // As TOOLS.md says: no rlimits and no cgroup resources on these machines.
        config["process"]["rlimits"] = serde_json::json!([]);
        config["process"]["terminal"] = serde_json::json!(false);
        config["process"]["args"] = serde_json::json!(["/bin/sleep", "3600"]);
        config["process"]["user"] = serde_json::json!({"uid": uid, "gid": uid});
        config["process"]["cwd"] = serde_json::json!("/");
        config["root"] = serde_json::json!({"path": rootfs, "readonly": true});
        config["hostname"] = serde_json::json!("target");
        if let Some(linux) = config["linux"].as_object_mut() {
            linux.remove("resources");
        }
        if let Some(list) = config["mounts"].as_array_mut() {
            list.extend(mounts.iter().cloned());
        }
        std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        // The detached container inherits runc's stdio: a pipe would never reach EOF while it
        // runs, so its errors go to a file.
        let log = bundle.path().join("run.log");
        let status = Command::new(&runc)
            .args(["run", "-d", &id])
            .current_dir(bundle.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "runc run failed: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let state: serde_json::Value =
            serde_json::from_slice(&run(Command::new(&runc).args(["state", &id]))).unwrap();
        let pid = state["pid"].as_u64().expect("runc state gives the pid") as u32;
        // `runc run -d` returns once it has told runc's init to go on, which may not yet have
        // exec'd the entrypoint: until then the process is not dumpable and its root is closed
        // to every non-root reader, so a test reading it at once races (seen under load).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default() != "sleep\n"
        {
            assert!(
                std::time::Instant::now() < deadline,
                "container {id}: pid {pid} never exec'd its entrypoint"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Self {
            id,
            pid,
            _bundle: bundle,
        }
    }

    /// Runs `script` with the container's `/bin/sh` as `uid` (with `caps` added), as an exec
    /// session would; returns its stdout.
    pub(crate) fn exec_script(&self, script: &str, uid: u32, caps: &[&str]) -> Vec<u8> {
        let mut cmd = Command::new("runc");
        cmd.args(["exec", "--user", &format!("{uid}:{uid}")]);
        for cap in caps {
            cmd.args(["--cap", cap]);
        }
        cmd.args([&self.id, "/bin/sh", "-c", script])
            .stdin(Stdio::null());
        run(&mut cmd)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .args(["kill", &self.id, "KILL"])
            .output();
        let _ = Command::new("runc")
            .args(["delete", "-f", &self.id])
            .output();
    }
}

/// The same filesystem questions, asked about the container.
fn container_plan() -> FactPlan {
    let mut plan = FactPlan::new();
    let mut paths: Vec<_> = [
        "/",
        "/etc",
        "/etc/passwd",
        "/etc/shadow",
        "/etc/hostname",
        "/etc/escape",
        "/etc/up",
        "/home",
        "/home/app",
        "/home/app/secret",
        "/tmp",
        "/tmp/fifo",
        "/tmp/shared",
        "/bin/sh",
        "/bin/busybox",
        "/usr/bin/suid",
        "/missing",
        "/names",
    ]
    .iter()
    .map(tp)
    .collect();
    for name in hostile_names() {
        paths.push(tp("/names").join(&name).unwrap());
    }
    for p in paths {
        plan.add(FactRequest::Stat(p.clone()));
        plan.add(FactRequest::Read {
            path: p.clone(),
            max_bytes: 256,
        });
        plan.add(FactRequest::Sha256 {
            path: p.clone(),
            max_bytes: 8 << 20,
        });
        plan.add(FactRequest::List {
            path: p,
            max_entries: 1000,
        });
    }
    let limits = WalkLimits::default();
    let names: BTreeSet<Vec<u8>> = [b"secret".to_vec(), b"busybox".to_vec(), b"sh".to_vec()].into();
    for (root, query) in [
        ("/", WalkQuery::Setuid),
        ("/", WalkQuery::WorldWritable),
        ("/", WalkQuery::Named(names)),
        (
            "/",
            WalkQuery::Contains {
                pattern: b"KEYHOLE-SECRET".to_vec(),
                max_bytes: 4096,
                max_file_size: 1 << 16,
            },
        ),
    ] {
        plan.add(FactRequest::Walk {
            root: tp(root),
            query,
            limits,
        });
    }
    plan
}

/// The process files asked about.
pub(crate) fn proc_requests() -> Vec<FactRequest> {
    [
        ProcFile::Status,
        ProcFile::Cmdline,
        ProcFile::Environ,
        ProcFile::NetTcp,
    ]
    .into_iter()
    .map(|file| FactRequest::Proc {
        file,
        max_bytes: 1 << 16,
    })
    .collect()
}

/// Facts without the process files (compared separately: `status` shows PIDs as the reader's
/// PID namespace numbers them).
pub(crate) fn without_proc(facts: &Facts) -> Facts {
    let mut out = Facts::default();
    for (r, a) in facts.iter() {
        if !matches!(r, FactRequest::Proc { .. }) {
            out.insert(r.clone(), a.clone());
        }
    }
    out
}

/// The lines of `/proc/PID/status` that do not depend on who reads it.
pub(crate) fn status_ids(facts: &Facts) -> Vec<String> {
    let status = FactRequest::Proc {
        file: ProcFile::Status,
        max_bytes: 1 << 16,
    };
    let Ok(FactValue::Content(c)) = answer(facts, &status) else {
        panic!("status: {:?}", answer(facts, &status));
    };
    String::from_utf8_lossy(&c.bytes)
        .lines()
        .filter(|l| l.starts_with("Uid:") || l.starts_with("Gid:") || l.starts_with("Name:"))
        .map(String::from)
        .collect()
}

pub(crate) fn read_of(facts: &Facts, path: &str) -> Result<FactValue, FactError> {
    answer(
        facts,
        &FactRequest::Read {
            path: tp(path),
            max_bytes: 256,
        },
    )
    .clone()
}

pub(crate) fn content(bytes: &[u8]) -> Result<FactValue, FactError> {
    Ok(FactValue::Content(keyhole_engine::Content {
        bytes: bytes.to_vec(),
        truncated: false,
    }))
}

/// The `gather` example, built (once per test process) by the cargo running these tests, into
/// the same target directory and profile: never a stale binary from an earlier build.
fn gather_example() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            // <target>/<profile>/deps/it-HASH
            let profile = exe
                .parent()
                .and_then(Path::parent)
                .expect("target/<profile>/deps");
            let target = profile.parent().expect("target dir");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args([
                "build",
                "--quiet",
                "-p",
                "keyhole-engine",
                "--example",
                "gather",
            ])
            .arg("--target-dir")
            .arg(target);
            if profile.file_name() == Some("release".as_ref()) {
                cmd.arg("--release");
            }
            run(&mut cmd);
            profile.join("examples/gather")
        })
        .clone()
}

/// The `gather` example, copied where any UID may run it, with the plan beside it.
pub(crate) struct Reader {
    dir: tempfile::TempDir,
}

impl Reader {
    pub(crate) fn new(plan: &FactPlan) -> Self {
        let built = gather_example();
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o755);
        std::fs::copy(&built, dir.path().join("gather")).unwrap();
        chmod(&dir.path().join("gather"), 0o755);
        std::fs::write(
            dir.path().join("plan.json"),
            serde_json::to_vec(plan).unwrap(),
        )
        .unwrap();
        chmod(&dir.path().join("plan.json"), 0o644);
        Self { dir }
    }

    /// `gather --pid PID` as `uid`, with no capabilities (none effective, permitted,
    /// inheritable, ambient or in the bounding set) and no way to gain any.
    pub(crate) fn gather_as(&self, uid: u32, pid: u32) -> Facts {
        require("setpriv", "util-linux");
        let out = run(Command::new("setpriv")
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .args([
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
            ])
            .arg(self.dir.path().join("gather"))
            .arg("--plan")
            .arg(self.dir.path().join("plan.json"))
            .args(["--pid", &pid.to_string()]));
        let pairs: Vec<(FactRequest, Result<FactValue, FactError>)> =
            serde_json::from_slice(&out).expect("gather prints [request, answer] pairs as JSON");
        let mut facts = Facts::default();
        for (r, a) in pairs {
            facts.insert(r, a);
        }
        facts
    }
}

fn full_plan() -> FactPlan {
    let mut plan = container_plan();
    for r in proc_requests() {
        plan.add(r);
    }
    plan
}

#[test]
fn process_root_and_directory_root_give_the_same_facts() {
    let rootfs_dir = tempfile::tempdir().unwrap();
    let rootfs = rootfs_dir.path().join("rootfs");
    busybox_rootfs(&rootfs);
    let c = Container::start(&rootfs, APP);
    let plan = full_plan();
    let by_process = LocalRoot::process(c.pid).unwrap().gather(&plan);
    let by_directory = LocalRoot::directory(&rootfs).unwrap().gather(&plan);
    assert_same_facts(
        "process vs directory",
        &without_proc(&by_process),
        &without_proc(&by_directory),
    );
    // Inside the container, /etc/escape -> /etc/hostname is the container's file.
    assert_eq!(read_of(&by_process, "/etc/escape"), content(b"container\n"));
    assert_eq!(read_of(&by_process, "/etc/up"), content(b"container\n"));
    assert_eq!(read_of(&by_process, "/home/app/secret"), content(SECRET));
    assert_eq!(
        read_of(&by_process, "/tmp/fifo"),
        Err(FactError::Special(keyhole_engine::FileKind::Fifo))
    );
    assert!(status_ids(&by_process).contains(&format!("Uid:\t{APP}\t{APP}\t{APP}\t{APP}")));
    for r in proc_requests() {
        assert_eq!(answer(&by_directory, &r), &Err(FactError::NoProcess));
    }
    // The prefix mode of the script, run on the host as root, agrees with both (no race here).
    let script = ShellScript::in_container()
        .with_root_prefix(format!("/proc/{}/root", c.pid))
        .unwrap()
        .with_pid(Some(c.pid));
    let mut dash = Command::new(require("dash", "dash"));
    dash.env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    let plan2 = plan.clone();
    let prefixed = within(120, "prefixed script", move || {
        script.run_local(&plan2, dash).unwrap()
    });
    assert_same_facts(
        "prefixed script vs process",
        &without_proc(&prefixed),
        &without_proc(&by_process),
    );
    assert_eq!(status_ids(&prefixed), status_ids(&by_process));
}

#[test]
fn the_script_inside_the_container_agrees_with_local_root() {
    let rootfs_dir = tempfile::tempdir().unwrap();
    let rootfs = rootfs_dir.path().join("rootfs");
    busybox_rootfs(&rootfs);
    let c = Container::start(&rootfs, APP);
    let plan = full_plan();
    let script = ShellScript::in_container().render(&plan);

    // As root in the container, allowed to read everything (as the host's root is).
    let caps = ["CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE"];
    let stdout = c.exec_script(&script, 0, &caps);
    let inside = ShellScript::parse(&plan, &stdout);
    let outside = LocalRoot::process(c.pid).unwrap().gather(&plan);
    assert_same_facts(
        "script as root vs LocalRoot",
        &without_proc(&inside),
        &without_proc(&outside),
    );
    assert_eq!(status_ids(&inside), status_ids(&outside));
    for file in [ProcFile::Cmdline, ProcFile::Environ] {
        let r = FactRequest::Proc {
            file,
            max_bytes: 1 << 16,
        };
        assert_eq!(answer(&inside, &r), answer(&outside, &r), "{file:?}");
    }
    assert_eq!(read_of(&inside, "/home/app/secret"), content(SECRET));

    // As the target's UID, with no capabilities, against a host reader with that UID and none.
    let stdout = c.exec_script(&script, APP, &[]);
    let inside = ShellScript::parse(&plan, &stdout);
    let reader = Reader::new(&plan);
    let outside = reader.gather_as(APP, c.pid);
    assert_same_facts(
        "script as 10001 vs LocalRoot as 10001",
        &without_proc(&inside),
        &without_proc(&outside),
    );
    assert_eq!(read_of(&inside, "/home/app/secret"), content(SECRET));
    assert_eq!(
        read_of(&inside, "/etc/shadow"),
        Err(FactError::PermissionDenied)
    );
}

#[test]
fn only_a_reader_with_the_targets_uid_may_read_its_root() {
    let rootfs_dir = tempfile::tempdir().unwrap();
    let rootfs = rootfs_dir.path().join("rootfs");
    busybox_rootfs(&rootfs);
    let c = Container::start(&rootfs, APP);
    let plan = full_plan();
    let reader = Reader::new(&plan);

    let same = reader.gather_as(APP, c.pid);
    assert_eq!(read_of(&same, "/home/app/secret"), content(SECRET));
    assert_eq!(read_of(&same, "/etc/escape"), content(b"container\n"));
    assert_eq!(
        read_of(&same, "/etc/shadow"),
        Err(FactError::PermissionDenied)
    );
    let environ = FactRequest::Proc {
        file: ProcFile::Environ,
        max_bytes: 1 << 16,
    };
    assert!(matches!(answer(&same, &environ), Ok(FactValue::Content(_))));

    let other = reader.gather_as(OTHER, c.pid);
    assert_eq!(other.len(), same.len(), "every request is answered");
    for (r, a) in other.iter() {
        match r {
            // World-readable kernel files of the process stay readable; the rest is denied.
            FactRequest::Proc {
                file: ProcFile::Status | ProcFile::Cmdline | ProcFile::NetTcp,
                ..
            } => assert!(matches!(a, Ok(FactValue::Content(_))), "{r:?}: {a:?}"),
            _ => assert_eq!(a, &Err(FactError::PermissionDenied), "{r:?}"),
        }
    }
}
