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
