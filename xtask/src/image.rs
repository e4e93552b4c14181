//! `cargo xtask image`: the agent image, reproducibly, without a container builder.
//!
//! Builds `keyhole-agent` statically (release profile, `+crt-static`) and packs it as an OCI
//! image holding only `/keyhole-agent` and the `/etc/passwd` and `/etc/group` entries of the
//! non-root user it runs as (65532, `nonroot`; no shell, no libc, nothing else):
//!
//! - `target/image/keyhole-agent/`: an OCI image layout (`oci-layout`, `index.json`,
//!   `blobs/sha256/…`), for `skopeo`/`crane`/`oras` (`skopeo copy oci:DIR docker://REPO`);
//! - `target/image/keyhole-agent.tar`: the same layout as a tar with a Docker `manifest.json`
//!   beside it, which `docker load` and `podman load` accept.
//!
//! Every timestamp is `SOURCE_DATE_EPOCH` (default 0), every owner 0:0, entries sorted, the
//! layer uncompressed, and the build's paths remapped (`--remap-path-prefix`): the same source
//! and toolchain give the same binary, and the same binary the same manifest digest, which it prints
//! (`keyhole plan/scan` pin the image by it). The `Containerfile` at the repository root builds
//! an equivalent image with a container builder.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// The user the image runs as (distroless's `nonroot`).
pub(crate) const NONROOT: u32 = 65532;

/// `cargo xtask image`.
pub(crate) fn run_image() -> Result<()> {
    let epoch: u64 = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"))?,
        Err(_) => 0,
    };
    let target = "x86_64-unknown-linux-gnu";
    let dir = crate::root().join("target/static");
    crate::run(
        crate::cargo()
            .args([
                "build",
                "--locked",
                "--release",
                "-p",
                "keyhole-agent",
                "--target",
                target,
                "--target-dir",
            ])
            .arg(&dir)
            .env("RUSTFLAGS", rustflags())
            .env("SOURCE_DATE_EPOCH", epoch.to_string()),
    )?;
    let agent = std::fs::read(dir.join(target).join("release/keyhole-agent"))
        .context("cannot read the built agent")?;
    let out = crate::root().join("target/image");
    let digest = build(&agent, epoch, &out.join("keyhole-agent"))?;
    let tar = out.join("keyhole-agent.tar");
    std::fs::write(&tar, docker_archive(&out.join("keyhole-agent"), epoch)?)?;
    eprintln!(
        "image: OCI layout {} and docker-load tar {}",
        out.join("keyhole-agent").display(),
        tar.display()
    );
    println!("{digest}");
    Ok(())
}

/// Static linking, and the checkout's and cargo's paths (which panic messages embed) mapped to
/// fixed ones, so that the binary does not depend on where the source was checked out.
fn rustflags() -> String {
    let home = std::env::var("CARGO_HOME")
        .or_else(|_| std::env::var("HOME").map(|h| format!("{h}/.cargo")))
        .unwrap_or_default();
    let mut flags = format!(
        "-C target-feature=+crt-static --remap-path-prefix={}=/keyhole",
        crate::root().display()
    );
    if !home.is_empty() {
        flags.push_str(&format!(" --remap-path-prefix={home}=/cargo"));
    }
    flags
}

/// Writes the OCI layout of an image holding `agent` to `layout` (replaced); returns the
/// manifest digest (`sha256:…`).
pub(crate) fn build(agent: &[u8], epoch: u64, layout: &Path) -> Result<String> {
    if layout.exists() {
        std::fs::remove_dir_all(layout)?;
    }
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let put = |bytes: &[u8]| -> Result<(String, usize)> {
        let hex = hex(&Sha256::digest(bytes));
        std::fs::write(blobs.join(&hex), bytes)?;
        Ok((format!("sha256:{hex}"), bytes.len()))
    };
    let passwd = format!("nonroot:x:{NONROOT}:{NONROOT}:nonroot:/nonexistent:/sbin/nologin\n");
    let group = format!("nonroot:x:{NONROOT}:\n");
    let mut layer = Tar::new(epoch);
    layer.dir("etc/");
    layer.file("etc/group", 0o644, group.as_bytes());
    layer.file("etc/passwd", 0o644, passwd.as_bytes());
    layer.file("keyhole-agent", 0o755, agent);
    let layer = layer.finish();
    let (layer_digest, layer_size) = put(&layer)?;
    let created = rfc3339(epoch);
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {
            "User": format!("{NONROOT}:{NONROOT}"),
            "Entrypoint": ["/keyhole-agent"],
            "Env": [],
            "Labels": {"org.opencontainers.image.source": "https://github.com/keyhole-scanner/keyhole"}
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created": created, "created_by": "cargo xtask image"}]
    });
    let (config_digest, config_size) = put(&serde_json::to_vec(&config)?)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest, "size": layer_size}]
    });
    let (manifest_digest, manifest_size) = put(&serde_json::to_vec(&manifest)?)?;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": env!("CARGO_PKG_VERSION")}}]
    });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index)?)?;
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    Ok(manifest_digest)
}

/// The layout as one tar, plus the `manifest.json` `docker load` reads (as `docker save`
/// writes since Docker 25: an OCI layout with the Docker manifest beside it).
pub(crate) fn docker_archive(layout: &Path, epoch: u64) -> Result<Vec<u8>> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json"))?)?;
    let Some(manifest) = index["manifests"][0]["digest"].as_str() else {
        bail!("index.json names no manifest");
    };
    let blob = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join(blob(manifest)))?)?;
    let docker = json!([{
        "Config": blob(manifest["config"]["digest"].as_str().unwrap_or_default()),
        "RepoTags": [format!("keyhole-agent:{}", env!("CARGO_PKG_VERSION"))],
        "Layers": manifest["layers"].as_array().into_iter().flatten()
            .map(|l| blob(l["digest"].as_str().unwrap_or_default())).collect::<Vec<_>>()
    }]);
    let mut tar = Tar::new(epoch);
    tar.dir("blobs/");
    tar.dir("blobs/sha256/");
    let mut names: Vec<String> = std::fs::read_dir(layout.join("blobs/sha256"))?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    names.sort();
    for name in names {
        let bytes = std::fs::read(layout.join("blobs/sha256").join(&name))?;
        tar.file(&format!("blobs/sha256/{name}"), 0o644, &bytes);
    }
    tar.file(
        "index.json",
        0o644,
        &std::fs::read(layout.join("index.json"))?,
    );
    tar.file("manifest.json", 0o644, &serde_json::to_vec(&docker)?);
    tar.file(
        "oci-layout",
        0o644,
        &std::fs::read(layout.join("oci-layout"))?,
    );
    Ok(tar.finish())
}

/// A deterministic ustar writer: owner 0:0, one fixed mtime, entries in the order given.
struct Tar {
    out: Vec<u8>,
    mtime: u64,
}

impl Tar {
    fn new(mtime: u64) -> Self {
        Self {
            out: Vec::new(),
            mtime,
        }
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, 0o755, b'5', &[]);
    }

    fn file(&mut self, name: &str, mode: u32, bytes: &[u8]) {
        self.entry(name, mode, b'0', bytes);
    }

    fn entry(&mut self, name: &str, mode: u32, kind: u8, bytes: &[u8]) {
        assert!(name.len() < 100, "tar name too long: {name}");
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let octal = |h: &mut [u8; 512], at: usize, len: usize, v: u64| {
            let s = format!("{v:0width$o}\0", width = len - 1);
            h[at..at + len].copy_from_slice(s.as_bytes());
        };
        octal(&mut h, 100, 8, u64::from(mode));
        octal(&mut h, 108, 8, 0);
        octal(&mut h, 116, 8, 0);
        octal(&mut h, 124, 12, bytes.len() as u64);
        octal(&mut h, 136, 12, self.mtime);
        h[148..156].copy_from_slice(b"        ");
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        self.out.extend_from_slice(&h);
        self.out.extend_from_slice(bytes);
        self.out.resize(self.out.len().div_ceil(512) * 512, 0);
    }

    fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(&[0u8; 1024]);
        self.out
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `epoch` as an RFC 3339 UTC time (days-from-civil, no time crate needed).
fn rfc3339(epoch: u64) -> String {
    let (days, rem) = (epoch / 86_400, epoch % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_builds_give_the_same_digest_and_the_image_holds_only_the_agent() {
        let a = tempfile_dir("a");
        let b = tempfile_dir("b");
        let agent = b"\x7fELF not really an agent".repeat(1000);
        let d1 = build(&agent, 1_700_000_000, &a).unwrap();
        let d2 = build(&agent, 1_700_000_000, &b).unwrap();
        assert_eq!(d1, d2);
        assert!(d1.starts_with("sha256:") && d1.len() == 71, "{d1}");
        assert_eq!(
            docker_archive(&a, 1_700_000_000).unwrap(),
            docker_archive(&b, 1_700_000_000).unwrap()
        );
        // Another binary or another epoch: another digest.
        assert_ne!(build(b"other", 1_700_000_000, &b).unwrap(), d1);
        assert_ne!(build(&agent, 0, &b).unwrap(), d1);
        // The layer lists exactly the agent and the user's entries, non-root by default.
        let tar = Command::new("tar")
            .arg("-tvf")
            .arg(layer_of(&a))
            .output()
            .expect("tar lists the layer");
        assert!(
            tar.status.success(),
            "{}",
            String::from_utf8_lossy(&tar.stderr)
        );
        let listing = String::from_utf8_lossy(&tar.stdout);
        let names: Vec<&str> = listing
            .lines()
            .filter_map(|l| l.split_whitespace().last())
            .collect();
        assert_eq!(
            names,
            ["etc/", "etc/group", "etc/passwd", "keyhole-agent"],
            "{listing}"
        );
        assert!(
            listing.contains("2023-11-14"),
            "the mtime is SOURCE_DATE_EPOCH: {listing}"
        );
        let config = config_of(&a);
        assert_eq!(config["config"]["User"], "65532:65532");
        assert_eq!(config["created"], "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        let _ = std::fs::remove_dir_all(a.parent().unwrap());
    }

    use std::path::PathBuf;
    use std::process::Command;

    fn tempfile_dir(name: &str) -> PathBuf {
        let base = crate::root()
            .join("target/xtask-test-image")
            .join(std::process::id().to_string());
        base.join(name)
    }

    fn manifest_of(layout: &Path) -> serde_json::Value {
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        let d = index["manifests"][0]["digest"].as_str().unwrap();
        let path = layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"));
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(format!("sha256:{}", hex(&Sha256::digest(&bytes))), d);
        serde_json::from_slice(&bytes).unwrap()
    }

    fn layer_of(layout: &Path) -> PathBuf {
        let m = manifest_of(layout);
        let d = m["layers"][0]["digest"].as_str().unwrap();
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    }

    fn config_of(layout: &Path) -> serde_json::Value {
        let m = manifest_of(layout);
        let d = m["config"]["digest"].as_str().unwrap();
        let path = layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }
}
