//! Secret handling of `keyhole-credentials`: the child-process kubeconfig handoff, redaction,
//! process hardening, and (in `live`) minting and the scoped client against the testkit fake.

mod live;

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use base64::Engine as _;
use keyhole_credentials::{ChildKubeconfig, ExpectedClaims, ScopedToken, harden_process};
use secrecy::{ExposeSecret as _, SecretString};

const CONFIG: &str =
    "apiVersion: v1\nkind: Config\nusers: [{name: u, user: {token: sekrit-token-123}}]\n";

fn child_reads(path: &std::path::Path) -> String {
    let out = Command::new("cat").arg(path).output().expect("cat runs");
    assert!(
        out.status.success(),
        "child could not read {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn memfd_kubeconfig_is_readable_by_the_child_sealed_and_gone_after_drop() {
    let secret = SecretString::from(CONFIG);
    let k = ChildKubeconfig::memfd(&secret).unwrap();
    let path = k.path().to_path_buf();
    assert!(path.starts_with("/dev/fd/"), "{}", path.display());
    assert_eq!(child_reads(&path), CONFIG);
    // Sealed against writes, even by this process: refused, not failed for another reason.
    let write = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| {
            use std::io::Write as _;
            f.write_all(b"x")
        });
    assert!(
        matches!(&write, Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied),
        "{write:?}"
    );
    drop(k);
    assert!(!path.exists(), "{} still open after drop", path.display());
}

#[test]
fn private_file_fallback_is_0600_in_0700_and_removed_after_drop() {
    let parent = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let secret = SecretString::from(CONFIG);
    let k = ChildKubeconfig::private_file(&secret, &parent).unwrap();
    let path = k.path().to_path_buf();
    let dir = path.parent().unwrap().to_path_buf();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(child_reads(&path), CONFIG);
    // An unguessable name: `keyhole-` and 16 random hex digits, another for each file.
    let name = dir.file_name().unwrap().to_str().unwrap().to_string();
    let random = name.strip_prefix("keyhole-").expect("keyhole-<random>");
    assert!(
        random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit()),
        "{name}"
    );
    let other = ChildKubeconfig::private_file(&secret, &parent).unwrap();
    assert_ne!(other.path().parent().unwrap(), dir);
    drop(other);
    drop(k);
    assert!(
        !path.exists() && !dir.exists(),
        "fallback left {}",
        dir.display()
    );
}

#[test]
fn scoped_token_debug_is_redacted() {
    let e = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let now: jiff::Timestamp = "2026-11-26T14:00:00Z".parse().unwrap();
    let claims = serde_json::json!({
        "sub": "system:serviceaccount:shop:keyhole-abcdefghij",
        "aud": ["api"],
        "exp": now.as_second() + 600,
    });
    let raw = format!(
        "{}.{}.{}",
        e(b"{}"),
        e(claims.to_string().as_bytes()),
        e(b"signature-bytes")
    );
    let token = ScopedToken::checked(
        SecretString::from(raw.clone()),
        &ExpectedClaims {
            namespace: "shop".into(),
            service_account: "keyhole-abcdefghij".into(),
            not_after: now + jiff::SignedDuration::from_secs(600),
            audiences: vec![],
            bound_secret: None,
        },
        now,
    )
    .unwrap();
    let shown = format!("{token:?}");
    assert!(
        !shown.contains(&raw) && !shown.contains("signature"),
        "{shown}"
    );
    assert!(shown.contains("REDACTED"));
    assert_eq!(token.secret().expose_secret(), raw);
}

#[test]
fn hardened_process_is_not_dumpable_and_has_no_core_limit() {
    // Run in a child so the test binary itself stays dumpable for other tests' debuggers.
    if std::env::var_os("KEYHOLE_HARDEN_CHILD").is_some() {
        harden_process().unwrap();
        let status = std::fs::read_to_string("/proc/self/limits").unwrap();
        let core = status
            .lines()
            .find(|l| l.starts_with("Max core file size"))
            .unwrap();
        let fields: Vec<_> = core.split_whitespace().collect();
        assert_eq!(&fields[4..6], &["0", "0"], "{core}");
        assert_eq!(
            rustix::process::dumpable_behavior().unwrap(),
            rustix::process::DumpableBehavior::NotDumpable
        );
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "hardened_process_is_not_dumpable_and_has_no_core_limit",
            "--exact",
            "--nocapture",
        ])
        .env("KEYHOLE_HARDEN_CHILD", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
