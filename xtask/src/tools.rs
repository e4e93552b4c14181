//! External tools the gates need, installed on demand under `target/` at pinned versions so a
//! fresh machine (or CI) gets exactly what was verified, and nothing is assumed installed.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, Result};

use crate::{root, run};

/// Pinned PyPI packages of the manifest gates.
const PY_PACKAGES: &[&str] = &["checkov==3.3.30", "kubernetes-validate==1.37.0"];

/// The venv with checkov and kubernetes-validate; created (≈30 s) when missing or when the pins
/// changed since it was made.
pub(crate) fn venv() -> Result<PathBuf> {
    let dir = root().join("target/venv");
    let marker = dir.join(".keyhole-pins");
    let want = PY_PACKAGES.join("\n");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(want.as_str()) {
        return Ok(dir);
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    run(Command::new(python).args(["-m", "venv"]).arg(&dir))?;
    run(Command::new(dir.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(PY_PACKAGES))?;
    std::fs::write(&marker, want).context("cannot write the venv marker")?;
    Ok(dir)
}

/// The SAF CLI version the threshold semantics are checked against.
const SAF_VERSION: &str = "1.5.3";

/// The `saf` executable of MITRE's SAF CLI, installed from npm (≈20 s, ≈420 MB) when missing.
/// `@aws-sdk/client-config-service` is overridden because the version SAF pins is missing from
/// the registry; `--ignore-scripts` because nothing here needs install scripts to run.
pub(crate) fn saf() -> Result<PathBuf> {
    let dir = root().join("target/saf");
    let bin = dir.join("node_modules/.bin/saf");
    let marker = dir.join(".keyhole-pins");
    if bin.exists() && std::fs::read_to_string(&marker).ok().as_deref() == Some(SAF_VERSION) {
        return Ok(bin);
    }
    std::fs::create_dir_all(&dir)?;
    let package = serde_json::json!({
        "name": "keyhole-saf-differential",
        "private": true,
        "overrides": {"@aws-sdk/client-config-service": "3.1124.0"},
        "dependencies": {"@mitre/saf": SAF_VERSION},
    });
    std::fs::write(
        dir.join("package.json"),
        serde_json::to_string_pretty(&package)?,
    )?;
    run(Command::new("npm").current_dir(&dir).args([
        "install",
        "--ignore-scripts",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
    ]))?;
    std::fs::write(&marker, SAF_VERSION)?;
    Ok(bin)
}

/// Debian packages the tests need: real containers (runc, busybox-static), the shells the fact
/// script must work with (dash, busybox sh), setpriv (util-linux) for unprivileged readers,
/// debootstrap for a richer rootfs, rpm (`rpm` and `rpmbuild`) for keyhole-rpmdb's comparison
/// with the real rpm.
pub(crate) const TEST_PACKAGES: &[&str] = &[
    "runc",
    "busybox-static",
    "dash",
    "util-linux",
    "debootstrap",
    "rpm",
];

/// Installs the Debian `packages` that are missing (one `apt-get update` first, only if needed).
pub(crate) fn apt_install(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("ok installed"))
                .unwrap_or(false)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}
