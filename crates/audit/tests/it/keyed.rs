//! The keyed chain: HMAC-SHA256 under a secret key, so that a rewrite of the whole file, which
//! a plain chain cannot notice, fails verification; and the key file's rules.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use hmac::Mac as _;
use keyhole_audit::{AuditError, AuditKey, AuditLog, verify_str, verify_str_with, verify_with};

use crate::{canonical_sha256, canonical_text, events, join, lines, temp_log};

/// Recognisable key material, to look for in every output.
const KEY: &[u8] = b"KEYMATERIAL-0123456789-abcdefghijklmnop";

fn key() -> AuditKey {
    AuditKey::from_bytes(KEY.to_vec()).unwrap()
}

fn key_file(name: &str, content: &[u8], mode: u32) -> PathBuf {
    let path = temp_log(name);
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn write_keyed(name: &str) -> (PathBuf, String) {
    let path = temp_log(name);
    let mut log = AuditLog::open_with(&path, Some(key())).unwrap();
    let t0: jiff::Timestamp = "2026-11-26T14:00:00Z".parse().unwrap();
    log.append_all("abcdefghij", t0, events(3)).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

/// What an attacker who can write the file but lacks the key does: edit a record and recompute
/// every hash and link with `hash` (the public SHA-256 format, or an HMAC under a guessed key).
fn rewrite_whole_file(text: &str, hash: impl Fn(&serde_json::Value) -> String) -> String {
    let mut prev = keyhole_audit::GENESIS.to_string();
    let forged: Vec<String> = lines(text)
        .iter()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            if v["event"] == "run_started" {
                v["identity"] = "mallory@example.com".into();
            }
            v["prev"] = prev.clone().into();
            v["hash"] = hash(&v).into();
            prev = v["hash"].as_str().unwrap().to_string();
            v.to_string()
        })
        .collect();
    join(&forged)
}

fn hmac_hex(key: &[u8], v: &serde_json::Value) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(canonical_text(v).as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[test]
fn the_keyed_format_is_hmac_sha256_of_the_canonical_record() {
    let (_, text) = write_keyed("keyed-format.jsonl");
    for l in lines(&text) {
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["hash"].as_str().unwrap(), hmac_hex(KEY, &v));
    }
    assert_eq!(verify_str_with(&text, Some(&key())).unwrap().records, 5);
}

#[test]
fn a_rewritten_whole_file_passes_plain_verification_but_not_keyed() {
    let (path, text) = write_keyed("keyed-rewrite.jsonl");
    let forged = rewrite_whole_file(&text, canonical_sha256);
    assert!(forged.contains("mallory"));
    // The plain chain cannot tell: the forgery is a valid SHA-256 chain.
    assert_eq!(verify_str(&forged).unwrap().records, 5);
    // The keyed chain can: the first record's HMAC does not match.
    assert!(matches!(
        verify_str_with(&forged, Some(&key())),
        Err(AuditError::Modified { line: 1, seq: 0 })
    ));
    // Nor does a rewrite under a guessed key pass.
    let guessed = rewrite_whole_file(&text, |v| hmac_hex(&[0u8; 32], v));
    assert!(matches!(
        verify_str_with(&guessed, Some(&key())),
        Err(AuditError::Modified { line: 1, .. })
    ));
    // The untouched log verifies only with its key, and says so without it.
    assert_eq!(verify_with(&path, Some(&key())).unwrap().records, 5);
    let plain = verify_str(&text).unwrap_err().to_string();
    assert!(plain.contains("--audit-key-file"), "{plain}");
    // And a keyed writer refuses to continue a log that does not verify under its key.
    std::fs::write(&path, &forged).unwrap();
    let err = AuditLog::open_with(&path, Some(key())).unwrap_err();
    assert!(matches!(err, AuditError::Tampered { .. }), "{err}");
}

#[test]
fn the_key_never_shows_in_debug_errors_or_the_log() {
    let (path, text) = write_keyed("keyed-secret.jsonl");
    let needle = std::str::from_utf8(KEY).unwrap();
    let log = AuditLog::open_with(&path, Some(key())).unwrap();
    let forged = rewrite_whole_file(&text, canonical_sha256);
    let outputs = [
        format!("{:?}", key()),
        format!("{log:?}"),
        text.clone(),
        verify_str_with(&forged, Some(&key()))
            .unwrap_err()
            .to_string(),
        AuditKey::from_bytes(KEY[..20].to_vec())
            .unwrap_err()
            .to_string(),
    ];
    for out in outputs {
        assert!(!out.contains(needle), "the key leaked: {out}");
        assert!(
            !out.contains("KEYMATERIAL"),
            "part of the key leaked: {out}"
        );
    }
}

#[test]
fn a_key_file_readable_by_others_is_refused_with_the_fix() {
    for mode in [0o644, 0o640, 0o604, 0o620] {
        let path = key_file(&format!("key-{mode:o}"), KEY, mode);
        let err = AuditKey::from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains(&format!("chmod 600 {}", path.display())),
            "{err}"
        );
        assert!(err.contains(&format!("{mode:04o}")), "{err}");
    }
    let ok = key_file("key-600", KEY, 0o600);
    AuditKey::from_file(&ok).unwrap();
    let ro = key_file("key-400", KEY, 0o400);
    AuditKey::from_file(&ro).unwrap();
}

#[test]
fn a_key_file_is_its_bytes_without_one_trailing_newline_and_at_least_32_bytes() {
    let (path, _) = write_keyed("keyed-file.jsonl");
    let with_newline = key_file("key-newline", &[KEY, b"\n"].concat(), 0o600);
    let k = AuditKey::from_file(&with_newline).unwrap();
    assert_eq!(verify_with(&path, Some(&k)).unwrap().records, 5);
    let other = key_file("key-other", &[KEY, b"x"].concat(), 0o600);
    let k = AuditKey::from_file(&other).unwrap();
    assert!(verify_with(&path, Some(&k)).is_err(), "another key");
    let short = key_file("key-short", &[b'k'; 31], 0o600);
    let err = AuditKey::from_file(&short).unwrap_err().to_string();
    assert!(
        err.contains("31 bytes") && err.contains("head -c 32 /dev/urandom"),
        "{err}"
    );
    let missing = temp_log("key-missing");
    let err = AuditKey::from_file(&missing).unwrap_err().to_string();
    assert!(err.contains("cannot read it"), "{err}");
}
