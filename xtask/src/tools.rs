//! External tools the gates need, installed on demand under `target/` at pinned versions so a
//! fresh machine (or CI) gets exactly what was verified, and nothing is assumed installed.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, Result, bail};

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
/// debootstrap for a richer rootfs and the Debian archive keyring it verifies bookworm with
/// (already there on Debian; on Ubuntu, e.g. a GitHub runner, it is not), rpm (`rpm` and
/// `rpmbuild`) for keyhole-rpmdb's comparison with the real rpm, and headless Chromium for
/// the HTML report test of keyhole-report (≈ 360 MB installed, ≈ 25 packages without
/// recommends; that test fails, saying so, without it).
pub(crate) const TEST_PACKAGES: &[&str] = &[
    "runc",
    "busybox-static",
    "dash",
    "util-linux",
    "debootstrap",
    "debian-archive-keyring",
    "rpm",
    "chromium",
];

/// How commands that need root run: directly when xtask runs as root (the project's CI), else
/// through `sudo -n` (a GitHub runner: a normal user with password-less sudo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Privilege {
    /// Running as root.
    Root,
    /// Running as another user; root-only commands go through `sudo -n`.
    Sudo,
}

impl Privilege {
    /// Root or password-less sudo; fails, saying what to do, when neither is available (the
    /// runc tests and apt-get cannot run otherwise, and a test that cannot run must fail).
    pub(crate) fn detect() -> Result<Self> {
        let out = Command::new("id")
            .arg("-u")
            .output()
            .context("cannot run `id -u`")?;
        let uid = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if uid == "0" {
            return Ok(Self::Root);
        }
        let sudo = Command::new("sudo")
            .args(["-n", "true"])
            .status()
            .is_ok_and(|s| s.success());
        if !sudo {
            bail!(
                "running as uid {uid}, not root, and `sudo -n true` fails: installing Debian \
                 packages and the tests that run real containers need root. Run as root or \
                 allow this user password-less sudo"
            );
        }
        Ok(Self::Sudo)
    }

    /// `program` run as root with the environment `env` (sudo resets the environment, so the
    /// variables are passed through `env`).
    pub(crate) fn command(self, env: &[(&str, &str)], program: impl AsRef<OsStr>) -> Command {
        match self {
            Self::Root => {
                let mut cmd = Command::new(program);
                cmd.envs(env.iter().copied());
                cmd
            }
            Self::Sudo => {
                let mut cmd = Command::new("sudo");
                cmd.args(["-n", "env"]);
                cmd.args(env.iter().map(|(k, v)| format!("{k}={v}")));
                cmd.arg(program);
                cmd
            }
        }
    }
}

/// Whether the Debian package `p` is installed, or (for runc) its command is there: Docker's
/// and Ubuntu's container packages ship `runc` and conflict with the `runc` package, which
/// apt would otherwise remove them to install. Likewise a browser the report test can use
/// stands for `chromium` (Ubuntu, e.g. a GitHub runner, ships Google Chrome and packages
/// Chromium only as a snap).
fn present(p: &str) -> bool {
    let installed = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", p])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("ok installed"))
        .unwrap_or(false);
    let any_of = |paths: &[&str]| paths.iter().any(|c| std::path::Path::new(c).exists());
    installed
        || (p == "runc" && any_of(&["/usr/bin/runc", "/usr/sbin/runc", "/usr/local/bin/runc"]))
        || (p == "chromium"
            && any_of(&[
                "/usr/bin/chromium",
                "/usr/bin/chromium-browser",
                "/usr/bin/google-chrome",
                "/usr/bin/google-chrome-stable",
            ]))
}

/// Installs the Debian `packages` that are missing (one `apt-get update` first, only if needed),
/// through `sudo -n` when not root. `--no-remove`: installing test tools never uninstalls
/// anything; apt fails instead.
pub(crate) fn apt_install(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !present(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let privilege = Privilege::detect()?;
    if privilege == Privilege::Sudo {
        eprintln!("xtask: not root, so apt-get runs under `sudo -n` to install {missing:?}");
    }
    run(privilege.command(&[], "apt-get").arg("update").arg("-qq"))?;
    run(privilege
        .command(&[("DEBIAN_FRONTEND", "noninteractive")], "apt-get")
        .args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "--no-remove",
        ])
        .args(&missing))
}

#[cfg(test)]
mod tests {
    use super::Privilege;

    fn argv(cmd: &std::process::Command) -> Vec<String> {
        std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn root_commands_go_through_sudo_with_their_environment_when_not_root() {
        let env = [("DEBIAN_FRONTEND", "noninteractive")];
        let sudo = Privilege::Sudo.command(&env, "apt-get");
        assert_eq!(
            argv(&sudo),
            [
                "sudo",
                "-n",
                "env",
                "DEBIAN_FRONTEND=noninteractive",
                "apt-get"
            ]
        );
        let root = Privilege::Root.command(&env, "apt-get");
        assert_eq!(argv(&root), ["apt-get"]);
        let envs: Vec<_> = root.get_envs().collect();
        assert_eq!(
            envs,
            [(
                std::ffi::OsStr::new("DEBIAN_FRONTEND"),
                Some(std::ffi::OsStr::new("noninteractive"))
            )]
        );
    }
}
