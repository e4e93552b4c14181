//! The container runtime: `runc` driven as TOOLS.md verified it (foreground `runc run` per
//! container, so the node is the parent that learns the exit code; `runc state` for the pid;
//! `runc kill` and `runc delete`; `runc exec` for exec sessions). Default runc root
//! (`/run/runc`), so `runc list` shows the node's containers like any others.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::TestkitError;

fn node_err(msg: impl Into<String>) -> TestkitError {
    TestkitError::Node(msg.into())
}

/// The `runc` executable, or an error saying how to install it.
pub(crate) fn find_runc() -> Result<PathBuf, TestkitError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join("runc"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            node_err(
                "runc is not installed: `apt-get install -y runc` (cargo xtask ci installs it)",
            )
        })
}

/// Fails unless this process is root (runc, overlay mounts and namespaces need it).
pub(crate) fn require_root() -> Result<(), TestkitError> {
    if rustix::process::geteuid().is_root() {
        Ok(())
    } else {
        Err(node_err(
            "the node runs real runc containers and needs root; run the tests as root",
        ))
    }
}

/// A handle on the runc binary.
#[derive(Debug, Clone)]
pub(crate) struct Runc {
    bin: PathBuf,
}

fn output(cmd: &mut Command) -> Result<Vec<u8>, TestkitError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| node_err(format!("cannot run {cmd:?}: {e}")))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(node_err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl Runc {
    pub(crate) fn new() -> Result<Self, TestkitError> {
        Ok(Self { bin: find_runc()? })
    }

    fn cmd(&self) -> Command {
        Command::new(&self.bin)
    }

    /// The `config.json` `runc spec` writes, as the template of every container.
    pub(crate) fn spec_template(&self, scratch: &Path) -> Result<Value, TestkitError> {
        std::fs::create_dir_all(scratch)?;
        let config = scratch.join("config.json");
        let _ = std::fs::remove_file(&config);
        output(self.cmd().arg("spec").current_dir(scratch))?;
        Ok(serde_json::from_slice(&std::fs::read(&config)?)?)
    }

    /// Starts `runc run` in the foreground (it stays our child and exits with the container's
    /// status), with the container's stdout and stderr appended to `log`.
    pub(crate) fn run(&self, id: &str, bundle: &Path, log: &Path) -> Result<Child, TestkitError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        self.cmd()
            .args(["run", "--bundle"])
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .map_err(|e| node_err(format!("cannot start runc run {id}: {e}")))
    }

    /// `(status, pid)` from `runc state`, or `None` when runc does not know the container.
    pub(crate) fn state(&self, id: &str) -> Option<(String, u32)> {
        let out = self
            .cmd()
            .args(["state", id])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        Some((
            v["status"].as_str().unwrap_or_default().to_owned(),
            u32::try_from(v["pid"].as_u64()?).ok()?,
        ))
    }

    /// Waits until `id` runs and returns its init's host pid; `Err(exit status)` when `child`
    /// (its `runc run`) ended first.
    pub(crate) fn wait_running(
        &self,
        id: &str,
        child: &mut Child,
        timeout: Duration,
    ) -> Result<u32, Option<std::process::ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((status, pid)) = self.state(id)
                && status == "running"
                && pid > 0
            {
                return Ok(pid);
            }
            if let Ok(Some(st)) = child.try_wait() {
                return Err(Some(st));
            }
            if Instant::now() > deadline {
                return Err(None);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `runc kill ID KILL` (errors ignored: the container may be gone already).
    pub(crate) fn kill(&self, id: &str) {
        let _ = self
            .cmd()
            .args(["kill", id, "KILL"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// `runc delete --force ID` (errors ignored: a foreground `runc run` deletes its container
    /// itself when it exits).
    pub(crate) fn delete(&self, id: &str) {
        let _ = self
            .cmd()
            .args(["delete", "--force", id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// The ids `runc list` shows. `runc list` fails when a container is deleted between its
    /// directory read and its stat (other tests' containers come and go), so it is retried.
    pub(crate) fn list(&self) -> Result<Vec<String>, TestkitError> {
        let mut tries = 0;
        loop {
            match output(self.cmd().args(["list", "--quiet"])) {
                Ok(out) => {
                    return Ok(String::from_utf8_lossy(&out)
                        .lines()
                        .map(str::to_owned)
                        .collect());
                }
                Err(e) if tries >= 50 => return Err(e),
                Err(_) => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    /// `runc exec ID ARGV…` with piped stdio, for an exec session (the process inherits the
    /// container's user, capabilities and `noNewPrivileges`, as a CRI exec does).
    pub(crate) fn exec(&self, id: &str, argv: &[String]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.arg("exec")
            .arg(id)
            .args(argv)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }
}
