//! The audit log as `keyhole` processes share it: 20 concurrent runs append to one keyed log
//! whose chain verifies (with the key only), the key never shows in any output, and a key file
//! that others may read is refused before anything is created.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use keyhole_audit::{AuditKey, Event, Record};

use crate::support::{Served, finish};

const RUNS: usize = 20;
/// Recognisable key material, to look for in every output.
const KEY: &str = "AUDITKEY-do-not-log-0123456789abcdefghij";

fn key_file(served: &Served, mode: u32) -> PathBuf {
    let path = served.dir.join(format!("audit-{mode:o}.key"));
    std::fs::write(&path, format!("{KEY}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// `keyhole access web-0 -n prod … --audit-key-file KEY -- true` with trace diagnostics on.
fn access_with_key(served: &Served, key: &std::path::Path) -> tokio::process::Command {
    served.access_with(
        &["--audit-key-file", key.to_str().unwrap()],
        &["true"],
        &[("KEYHOLE_LOG", "trace")],
    )
}

async fn verify_cli(served: &Served, key: Option<&std::path::Path>) -> (Option<i32>, String) {
    let mut args = vec!["audit", "verify", served.audit.to_str().unwrap()];
    if let Some(k) = key {
        args.extend(["--audit-key-file", k.to_str().unwrap()]);
    }
    let out = served.keyhole(&args, &[]).output().await.unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_runs_share_one_keyed_log_and_its_chain_verifies() {
    let served = Served::new("audit-concurrent").await;
    let key = key_file(&served, 0o600);
    let children: Vec<_> = (0..RUNS)
        .map(|_| access_with_key(&served, &key).spawn().unwrap())
        .collect();
    let mut outputs = Vec::new();
    for child in children {
        let done = finish(child).await;
        assert_eq!(done.code, Some(0), "{}", done.stderr);
        outputs.push(done.stdout + &done.stderr);
    }
    assert!(served.cluster.managed_objects().is_empty());

    // The chain verifies with the key, and only with it.
    let (code, text) = verify_cli(&served, Some(&key)).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("HMAC chain intact"), "{text}");
    let (code, text) = verify_cli(&served, None).await;
    assert_eq!(code, Some(1), "a keyed log is no plain chain: {text}");
    assert!(text.contains("--audit-key-file"), "{text}");
    let k = AuditKey::from_file(&key).unwrap();
    let report = keyhole_audit::verify_with(&served.audit, Some(&k)).unwrap();

    // Every run recorded its start and its end, exit 0.
    let records: Vec<Record> = std::fs::read_to_string(&served.audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(report.records as usize, records.len());
    let started: BTreeSet<&str> = records
        .iter()
        .filter(|r| matches!(r.event, Event::RunStarted { .. }))
        .map(|r| r.run_id.as_str())
        .collect();
    let ended: BTreeSet<&str> = records
        .iter()
        .filter(|r| matches!(r.event, Event::RunEnded { exit_code: 0, .. }))
        .map(|r| r.run_id.as_str())
        .collect();
    assert_eq!(started.len(), RUNS);
    assert_eq!(started, ended);

    // Diagnostics were on, and the key is in no output and not in the log.
    assert!(
        outputs
            .iter()
            .any(|o| o.contains("TRACE") || o.contains("DEBUG"))
    );
    let log = std::fs::read_to_string(&served.audit).unwrap();
    for out in outputs.iter().chain([&log]) {
        assert!(!out.contains(KEY), "the audit key leaked: {out:.300}");
        assert!(!out.contains("AUDITKEY"), "part of the audit key leaked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_others_may_read_is_refused_before_anything_is_created() {
    let served = Served::new("audit-key-mode").await;
    let key = key_file(&served, 0o644);
    let done = finish(access_with_key(&served, &key).spawn().unwrap()).await;
    assert_eq!(done.code, Some(2), "{}", done.stderr);
    assert!(
        done.stderr
            .contains(&format!("chmod 600 {}", key.display())),
        "{}",
        done.stderr
    );
    assert!(!done.stderr.contains(KEY));
    assert!(served.cluster.calls().is_empty(), "nothing was sent");
    let (code, text) = verify_cli(&served, Some(&key)).await;
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("chmod 600"), "{text}");
}
