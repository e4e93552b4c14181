//! No secret leaks: `keyhole access` with tracing at `trace` (KEYHOLE_LOG), against the HTTPS
//! fake; the scoped token appears nowhere in keyhole's stdout or stderr, the audit log, or any
//! file under the run's HOME/TMPDIR/XDG_STATE_HOME.

use std::path::Path;

use base64::Engine as _;
use keyhole_testkit::Identity;

use crate::support::{Served, audit_records, clean_ending, finish};

/// Prints the token of the command's kubeconfig base64-encoded (so the test learns it without
/// the raw token itself ever being written by anyone).
const LEAK_TOKEN_ENCODED: &str =
    r#"sed -n 's/.*"token": "\(.*\)".*/\1/p' "$KUBECONFIG" | tr -d '\n' | base64 -w0; echo"#;

/// Every regular file under `dir`, recursively.
fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let t = entry.file_type().unwrap();
        if t.is_dir() {
            files(&entry.path(), out);
        } else if t.is_file() {
            out.push(entry.path());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_appears_in_no_output_log_or_file_even_at_trace_level() {
    let served = Served::new("leaks").await;
    let child = served
        .access(
            &["sh", "-c", LEAK_TOKEN_ENCODED],
            &[("KEYHOLE_LOG", "trace")],
        )
        .spawn()
        .unwrap();
    let done = finish(child).await;
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    let encoded = done.stdout.trim();
    let token = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("the command printed base64"),
    )
    .unwrap();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token:.20}…");
    assert!(
        served
            .cluster
            .calls()
            .iter()
            .any(|c| matches!(c.identity, Identity::ServiceAccount { .. })),
        "the token was used during the run"
    );
    // Tracing was really on.
    assert!(
        done.stderr.contains("TRACE") || done.stderr.contains("DEBUG"),
        "no trace output: {}",
        done.stderr
    );
    // kube_client::client logs whole response bodies below `error`; keyhole caps it there
    // whatever KEYHOLE_LOG asks, since a TokenRequest response body is the token.
    assert!(
        !done
            .stderr
            .lines()
            .any(|l| l.contains("kube_client::client") && !l.contains("ERROR")),
        "kube_client::client logged below error: {}",
        done.stderr
    );

    assert!(!done.stdout.contains(&token), "token on stdout");
    assert!(!done.stderr.contains(&token), "token on stderr");
    // The JWT's signature part alone is a secret too (the header and claims are not).
    let signature = token.rsplit('.').next().unwrap();
    assert!(
        !done.stderr.contains(signature),
        "token signature on stderr"
    );
    let records = audit_records(&served.audit);
    assert_eq!(clean_ending(&records).0, 0);
    let mut all = Vec::new();
    files(&served.dir, &mut all);
    assert!(
        all.iter().any(|p| p == &served.audit),
        "the scan covers the audit log: {all:?}"
    );
    for f in &all {
        let bytes = std::fs::read(f).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(signature), "token in {}", f.display());
    }
    // Nothing but the user's kubeconfig (written by the test) and the audit log is left.
    let mut names: Vec<String> = all
        .iter()
        .map(|p| p.strip_prefix(&served.dir).unwrap().display().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["kubeconfig", "state/audit.jsonl"]);
}
