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

/// Where `keyhole-scanners` pins the default agent image.
const PIN_FILE: &str = "crates/scanners/src/image.rs";

/// `cargo xtask image`.
pub(crate) fn run_image() -> Result<()> {
    let epoch: u64 = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"))?,
        Err(_) => 0,
    };
    let digest = build_image(epoch)?;
    if epoch == 0 {
        match pin_mismatch(&digest)? {
            None => {
                eprintln!("image: keyhole's default image (DEFAULT_SCANNER_IMAGE) pins this digest")
            }
            Some(m) => eprintln!("image: warning: {m}"),
        }
    }
    println!("{digest}");
    Ok(())
}

/// The check `cargo xtask ci` runs: the default image keyhole pins is the one this checkout
/// builds (SOURCE_DATE_EPOCH 0, the default). Not a `cargo test` tidy check because it needs a
/// release build of the static agent (about 3 minutes on the project's machines when nothing
/// is cached).
pub(crate) fn check_pin() -> Result<()> {
    let digest = build_image(0)?;
    match pin_mismatch(&digest)? {
        None => {
            eprintln!("image: DEFAULT_SCANNER_IMAGE pins {digest}, the image this checkout builds");
            Ok(())
        }
        Some(m) => bail!("{m}"),
    }
}

/// `None` when [`PIN_FILE`]'s `DEFAULT_SCANNER_IMAGE` pins `digest`, else what to change.
fn pin_mismatch(digest: &str) -> Result<Option<String>> {
    let text = std::fs::read_to_string(crate::root().join(PIN_FILE))
        .with_context(|| format!("cannot read {PIN_FILE}"))?;
    mismatch(&text, digest)
}

/// [`pin_mismatch`] of the source `text`.
fn mismatch(text: &str, digest: &str) -> Result<Option<String>> {
    let Some(reference) = pinned_reference(text) else {
        bail!("{PIN_FILE} has no `pub const DEFAULT_SCANNER_IMAGE: &str = \"…\";` line");
    };
    let name = reference.split('@').next().unwrap_or(&reference);
    Ok(match reference.split_once('@') {
        Some((_, pinned)) if pinned == digest => None,
        pinned => Some(format!(
            "DEFAULT_SCANNER_IMAGE in {PIN_FILE} pins {} but `cargo xtask image` builds {digest} \
             (the agent, its dependencies or the toolchain changed): set it to \"{name}@{digest}\" \
             and publish that image",
            pinned.map_or("no digest", |(_, d)| d)
        )),
    })
}

/// The string of `pub const DEFAULT_SCANNER_IMAGE: &str = "…";` in a Rust source.
pub(crate) fn pinned_reference(source: &str) -> Option<String> {
    let line = source.lines().find(|l| {
        l.trim_start()
            .starts_with("pub const DEFAULT_SCANNER_IMAGE: &str = \"")
    })?;
    let start = line.find('"')? + 1;
    let end = start + line[start..].find('"')?;
    Some(line[start..end].to_string())
}

/// The workspace's version (`[workspace.package] version` of the root `Cargo.toml`): the tag
/// of the agent image. (`CARGO_PKG_VERSION` here would be xtask's own, 0.0.0.)
pub(crate) fn workspace_version() -> Result<String> {
    let text = std::fs::read_to_string(crate::root().join("Cargo.toml"))?;
    let section = text
        .split("[workspace.package]")
        .nth(1)
        .context("Cargo.toml has no [workspace.package]")?;
    section
        .lines()
        .take_while(|l| !l.trim_start().starts_with('['))
        .find_map(|l| {
            let v = l.trim().strip_prefix("version")?.trim().strip_prefix('=')?;
            Some(v.trim().trim_matches('"').to_string())
        })
        .context("[workspace.package] has no version")
}

/// Builds the static agent in release and packs the image under `target/image`; returns its
/// manifest digest.
fn build_image(epoch: u64) -> Result<String> {
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
    Ok(digest)
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
            "annotations": {"org.opencontainers.image.ref.name": workspace_version()?}}]
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
        "RepoTags": [format!("keyhole-agent:{}", workspace_version()?)],
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

    #[test]
    fn the_pinned_reference_is_read_from_the_constant_line() {
        let src = "/// doc\npub const DEFAULT_SCANNER_IMAGE: &str = \"a/b:1@sha256:00\";\nconst X: &str = \"y\";\n";
        assert_eq!(pinned_reference(src).as_deref(), Some("a/b:1@sha256:00"));
        assert_eq!(
            pinned_reference("const DEFAULT_SCANNER_IMAGE: &str = \"x\";"),
            None
        );
        assert_eq!(pinned_reference(""), None);
        let d = format!("sha256:{}", "ab".repeat(32));
        let pinned = format!("pub const DEFAULT_SCANNER_IMAGE: &str = \"r/a:1@{d}\";\n");
        assert_eq!(mismatch(&pinned, &d).unwrap(), None);
        let other = format!("sha256:{}", "cd".repeat(32));
        let m = mismatch(&pinned, &other).unwrap().expect("a mismatch");
        assert!(m.contains(&format!("set it to \"r/a:1@{other}\"")), "{m}");
        let unpinned = "pub const DEFAULT_SCANNER_IMAGE: &str = \"r/a:1\";\n";
        let m = mismatch(unpinned, &d).unwrap().expect("a mismatch");
        assert!(m.contains("pins no digest"), "{m}");
        assert!(mismatch("", &d).is_err());
        // xtask's own version is 0.0.0; the image is tagged with the workspace's.
        let v = workspace_version().unwrap();
        assert!(v != "0.0.0" && v.split('.').count() == 3, "{v}");
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
