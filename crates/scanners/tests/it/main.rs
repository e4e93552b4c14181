//! Integration tests of `keyhole-scanners`: the specs it builds, as snapshots and as assertions
//! on the security-relevant fields, and the sidecar injection (fixtures, errors, properties).

mod debug;
mod inject;
mod props;
mod sidecar;

use keyhole_core::{
    ContainerName, Expiry, Namespace, PodName, Run, RunId, ScanMode, ScanTarget, Ttl,
};
use keyhole_scanners::{ImageRef, InjectOptions};

/// A digest-pinned scanner image, as a hardened deployment would use.
pub const SCANNER: &str = "ghcr.io/keyhole-scanner/keyhole-agent:0.1.0@sha256:5b2f8c1e9d0a7f6e3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9";

/// Snapshots `text` as `tests/it/snapshots/<name>.snap`.
///
/// When `KEYHOLE_SCANNERS_MANIFEST_DIR` is set, also writes it there as `<name>.yaml` (or
/// `.json`), so the external gates (checkov, kubernetes-validate) run on exactly what the
/// snapshots hold.
pub fn check(name: &str, text: &str) {
    if let Some(dir) = std::env::var_os("KEYHOLE_SCANNERS_MANIFEST_DIR") {
        let ext = if text.starts_with('{') {
            "json"
        } else {
            "yaml"
        };
        let path = std::path::Path::new(&dir).join(format!("{name}.{ext}"));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {path:?}: {e}"));
    }
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_snapshot!(name, text));
}

/// A fixture from `fixtures/workloads/`.
pub fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../../fixtures/workloads/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// A run against pod `web-0` of namespace `shop`, container `web`, for 15 minutes.
pub fn run(mode: ScanMode) -> Run {
    let target = ScanTarget::pods(
        Namespace::new("shop").unwrap(),
        [PodName::new("web-0").unwrap()],
        Some(ContainerName::new("web").unwrap()),
    )
    .unwrap();
    let expiry = Expiry::new(
        "2026-11-26T14:00:00Z".parse().unwrap(),
        Ttl::parse("15m").unwrap(),
    )
    .unwrap();
    Run::new(RunId::parse("abcdefghij").unwrap(), target, mode, expiry).unwrap()
}

/// The pinned scanner image.
pub fn scanner() -> ImageRef {
    ImageRef::parse(SCANNER).unwrap()
}

/// Injection options with the pinned scanner and a 9-minute limit, nothing else given.
pub fn opts() -> InjectOptions {
    InjectOptions {
        container: None,
        target_uid: None,
        target_gid: None,
        image: scanner(),
        time_limit_secs: 540,
    }
}

/// The security context every Keyhole container must have for uid 10001, gid 10001, as JSON.
pub fn hardened_json() -> serde_json::Value {
    serde_json::json!({
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "runAsNonRoot": true,
        "allowPrivilegeEscalation": false,
        "privileged": false,
        "readOnlyRootFilesystem": true,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
        "appArmorProfile": {"type": "RuntimeDefault"},
    })
}
