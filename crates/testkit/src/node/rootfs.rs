//! Root filesystems for the node's images, built from what is on this machine and cached
//! under the workspace's `target/rootfs/` (`cargo xtask rootfs` builds the same trees ahead of
//! time):
//!
//! - [`busybox`]: `bin/busybox` from Debian's `busybox-static` plus a symlink per applet
//!   (`sh`, `ls`, `cat`, …), `/etc/passwd` and `/etc/group` with root and `app` (10001);
//! - [`distroless`]: a **true distroless** tree: one static binary, `/pause` (a std-only Rust
//!   program compiled with `rustc -C target-feature=+crt-static`, source in this crate), that
//!   sleeps until killed, like Kubernetes' own `pause` image; `/etc/passwd` and `/etc/group`,
//!   and **no shell, no busybox, no libc** anywhere (checked after building);
//! - [`agent`]: only a static `keyhole-agent` (as `/keyhole-agent`, from [`static_agent`]) and
//!   the same `/etc` files.
//!
//! Why `pause` for distroless: it is the one program every Kubernetes node already runs from a
//! one-binary image, it needs nothing but std, and it builds in about a second without cargo;
//! the static `keyhole-agent` is the scanner, not a target, and busybox is a shell.
//!
//! Builders are idempotent: a finished tree carries a `.keyhole-rootfs` marker and is reused.

use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::TestkitError;

const MARKER: &str = ".keyhole-rootfs";
const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\napp:x:10001:10001:app:/home/app:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n";
const GROUP: &str = "root:x:0:\napp:x:10001:\nnogroup:x:65534:\n";
/// The source of `/pause`.
const PAUSE_RS: &str = include_str!("pause.rs");

fn err(msg: impl Into<String>) -> TestkitError {
    TestkitError::Node(msg.into())
}

/// `target/rootfs` of this workspace (or `$CARGO_TARGET_DIR/rootfs`).
pub fn cache_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    target.join("rootfs")
}

/// The workspace root (this crate lives in `<root>/crates/testkit`).
fn workspace() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

fn finish(
    dir: &Path,
    build: impl FnOnce(&Path) -> Result<(), TestkitError>,
) -> Result<PathBuf, TestkitError> {
    if dir.join(MARKER).exists() {
        return Ok(dir.to_path_buf());
    }
    // Build beside and rename, so a concurrent or interrupted build never leaves half a tree.
    let parent = dir
        .parent()
        .ok_or_else(|| err("a rootfs needs a parent directory"))?;
    std::fs::create_dir_all(parent)?;
    let tmp = tempfile::Builder::new()
        .prefix(".rootfs-")
        .tempdir_in(parent)?;
    let tree = tmp.path().join("tree");
    for d in [
        "bin", "etc", "proc", "dev", "sys", "tmp", "home/app", "root",
    ] {
        std::fs::create_dir_all(tree.join(d))?;
    }
    std::fs::set_permissions(tree.join("tmp"), std::fs::Permissions::from_mode(0o1777))?;
    std::fs::set_permissions(tree.join("root"), std::fs::Permissions::from_mode(0o700))?;
    std::os::unix::fs::lchown(tree.join("home/app"), Some(10001), Some(10001))?;
    std::fs::write(tree.join("etc/passwd"), PASSWD)?;
    std::fs::write(tree.join("etc/group"), GROUP)?;
    build(&tree)?;
    std::fs::write(tree.join(MARKER), "")?;
    match std::fs::rename(&tree, dir) {
        Ok(()) => {}
        // Someone else finished first: theirs is as good.
        Err(_) if dir.join(MARKER).exists() => {}
        Err(e) => {
            return Err(err(format!(
                "cannot move the rootfs into {}: {e}",
                dir.display()
            )));
        }
    }
    Ok(dir.to_path_buf())
}

fn find(binary: &str, package: &str) -> Result<PathBuf, TestkitError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/bin".into()])
        .map(|d| d.join(binary))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            err(format!(
                "{binary} is not installed: `apt-get install -y {package}`"
            ))
        })
}

fn copy_exec(from: &Path, to: &Path) -> Result<(), TestkitError> {
    std::fs::copy(from, to)?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// A busybox tree at `dir` (built when missing); returns `dir`.
pub fn busybox(dir: &Path) -> Result<PathBuf, TestkitError> {
    finish(dir, |tree| {
        let bb = find("busybox", "busybox-static")?;
        copy_exec(&bb, &tree.join("bin/busybox"))?;
        let out = Command::new(&bb).arg("--list").output()?;
        if !out.status.success() {
            return Err(err("busybox --list failed"));
        }
        for applet in String::from_utf8_lossy(&out.stdout).lines() {
            if applet != "busybox" && !applet.contains('/') {
                symlink("busybox", tree.join("bin").join(applet))?;
            }
        }
        Ok(())
    })
}

/// The static `pause` binary, compiled into `dir/pause` when missing (needs `rustc`).
pub fn pause_binary(dir: &Path) -> Result<PathBuf, TestkitError> {
    let bin = dir.join("pause");
    if bin.is_file() {
        return Ok(bin);
    }
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile::Builder::new().prefix(".pause-").tempdir_in(dir)?;
    let src = tmp.path().join("pause.rs");
    std::fs::write(&src, PAUSE_RS)?;
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "-O",
            "-C",
            "target-feature=+crt-static",
            "-C",
            "strip=symbols",
            "-o",
        ])
        .arg(tmp.path().join("pause"))
        .arg(&src)
        .output()
        .map_err(|e| {
            err(format!(
                "cannot run rustc to build the static pause binary: {e}"
            ))
        })?;
    if !out.status.success() {
        return Err(err(format!(
            "rustc could not build the static pause binary: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    std::fs::rename(tmp.path().join("pause"), &bin)?;
    Ok(bin)
}

/// A true distroless tree at `dir`: only `/pause` (static) and `/etc/passwd`, `/etc/group`.
pub fn distroless(dir: &Path) -> Result<PathBuf, TestkitError> {
    let pause = pause_binary(&dir.with_file_name("bin"))?;
    finish(dir, |tree| {
        copy_exec(&pause, &tree.join("pause"))?;
        std::fs::remove_dir(tree.join("bin"))?;
        assert_no_shell(tree)
    })
}

/// A tree at `dir` holding only `agent` (a static `keyhole-agent`) as `/keyhole-agent`, and
/// `/etc/passwd`, `/etc/group`. The binary is refreshed when `agent` differs from the copy, so
/// the tree follows rebuilds (do it before starting containers from it).
pub fn agent(dir: &Path, agent: &Path) -> Result<PathBuf, TestkitError> {
    let bytes = std::fs::read(agent).map_err(|e| {
        err(format!(
            "cannot read the static agent {}: {e} (rootfs::static_agent or cargo xtask rootfs builds it)",
            agent.display()
        ))
    })?;
    let dir = finish(dir, |tree| {
        copy_exec(agent, &tree.join("keyhole-agent"))?;
        std::fs::remove_dir(tree.join("bin"))?;
        assert_no_shell(tree)
    })?;
    let installed = dir.join("keyhole-agent");
    if std::fs::read(&installed).ok().as_deref() != Some(bytes.as_slice()) {
        let tmp = dir.join(".keyhole-agent.new");
        copy_exec(agent, &tmp)?;
        std::fs::rename(&tmp, &installed)?;
    }
    Ok(dir)
}

/// Builds `keyhole-agent` statically linked (`cargo build -p keyhole-agent --target
/// x86_64-unknown-linux-gnu` with `-C target-feature=+crt-static`, into `target/static`, as
/// `cargo xtask ci` does) and returns the binary. Cargo decides whether anything needs
/// rebuilding, so the result follows the agent's source; the first build takes minutes.
pub fn static_agent() -> Result<PathBuf, TestkitError> {
    const TARGET: &str = "x86_64-unknown-linux-gnu";
    let workspace = workspace();
    let target_dir = cache_dir()
        .parent()
        .map(|t| t.join("static"))
        .ok_or_else(|| err("the rootfs cache has no parent directory"))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "keyhole-agent",
            "--target",
            TARGET,
            "--manifest-path",
        ])
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .output()
        .map_err(|e| {
            err(format!(
                "cannot run cargo to build the static keyhole-agent: {e}"
            ))
        })?;
    if !out.status.success() {
        return Err(err(format!(
            "cargo could not build the static keyhole-agent: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(target_dir.join(TARGET).join("debug/keyhole-agent"))
}

/// Fails when anything under `tree` is a shell, busybox, or a dynamic loader.
fn assert_no_shell(tree: &Path) -> Result<(), TestkitError> {
    let mut stack = vec![tree.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if ["sh", "bash", "dash", "ash", "busybox"].contains(&name.as_str())
                || name.starts_with("ld-linux")
            {
                return Err(err(format!("{} in a distroless tree", e.path().display())));
            }
            if e.file_type()?.is_dir() {
                stack.push(e.path());
            }
        }
    }
    Ok(())
}
