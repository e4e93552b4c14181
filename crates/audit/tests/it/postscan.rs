//! The post-scan audit on seeded problems: each check fails on its own problem — a leftover
//! object, a token in a file, an environment variable, a memfd or a log line, a restarted or
//! changed target, an unexpected ephemeral container, missing audit records — and a clean run
//! passes every check. No output ever contains the token.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use keyhole_audit::postscan::{CheckId, Outcome};
use keyhole_audit::{
    ArtifactScope, AuditLog, EXIT_LEFTOVERS, EXIT_POSTSCAN_FAILED, Event, Fresh, LogText,
    ObjectRef, PodSnapshot, PostScan, PostScanReport, RunObject, ScanLimits, TargetPair,
    TokenFingerprint,
};
use secrecy::SecretString;
use serde_json::{Value, json};

const RUN: &str = "r4nd0mrun1";
/// A JWT-shaped token (header.payload.signature), as a TokenRequest returns.
const TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6cHJvZDprZXlob2xlLXI0bmQwbXJ1bjEiLCJleHAiOjE3OTk5OTk5OTl9.c2lnbmF0dXJlLWJ5dGVzLXRoYXQtbWFrZS1pdC11bmlxdWUtMTIzNDU2Nzg5MA";

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("postscan-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn obj(kind: &str, uid: &str) -> ObjectRef {
    ObjectRef {
        kind: kind.into(),
        namespace: "prod".into(),
        name: format!("keyhole-{RUN}"),
        uid: Some(uid.into()),
    }
}

fn objects() -> Vec<ObjectRef> {
    vec![
        obj("ServiceAccount", "uid-sa"),
        obj("Secret", "uid-secret"),
        obj("Role", "uid-role"),
        obj("RoleBinding", "uid-rb"),
    ]
}

/// A run's complete audit trail, written by the real log writer; returns the verified log.
fn audit_log(dir: &std::path::Path, events: Vec<Event>) -> keyhole_audit::VerifiedLog {
    let mut log = AuditLog::open(&dir.join("audit.jsonl")).unwrap();
    log.append_all(RUN, "2026-12-03T10:00:00Z".parse().unwrap(), events)
        .unwrap();
    log.read_verified().unwrap()
}

fn full_trail() -> Vec<Event> {
    let mut v = vec![Event::RunStarted {
        identity: "alice".into(),
        target: "prod/web-0".into(),
        mode: "standard".into(),
        expires_at: "2026-12-03T10:10:00Z".into(),
    }];
    v.extend(objects().into_iter().map(Event::ObjectCreated));
    v.push(Event::TokenIssued {
        service_account: format!("keyhole-{RUN}"),
        expires_at: "2026-12-03T10:10:00Z".into(),
    });
    v.extend(objects().into_iter().rev().map(Event::ObjectDeleted));
    v.push(Event::CleanupVerified { remaining: vec![] });
    v.push(Event::RunEnded {
        exit_code: 0,
        outcome: "command exited with 0".into(),
    });
    v
}

fn pod_json() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "prod", "uid": "pod-uid-1",
                     "resourceVersion": "100", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app@sha256:aa"}]},
        "status": {"phase": "Running", "containerStatuses": [{
            "name": "app", "image": "registry.example/app@sha256:aa",
            "imageID": "registry.example/app@sha256:aa", "containerID": "containerd://c1",
            "ready": true, "started": true, "restartCount": 0,
            "state": {"running": {"startedAt": "2026-12-03T09:00:00Z"}}}]}
    })
}

fn snap(v: &Value) -> PodSnapshot {
    PodSnapshot::from_json(v).unwrap()
}

/// Everything clean: the audit's input for a run that left nothing.
fn clean(dir: &std::path::Path) -> PostScan {
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("unrelated.txt"), "nothing to see").unwrap();
    PostScan {
        run_ids: vec![RUN.into()],
        objects: objects()
            .into_iter()
            .map(|object| RunObject {
                run_id: RUN.into(),
                object,
                deleted_by_run: true,
            })
            .collect(),
        audit_log: Ok(audit_log(dir, full_trail())),
        tokens: vec![TokenFingerprint::of(&SecretString::from(TOKEN.to_owned()))],
        artifacts: ArtifactScope {
            roots: vec![tmp],
            files: vec![],
            since: SystemTime::now() - Duration::from_secs(60),
            env: vec![(OsString::from("PATH"), OsString::from("/usr/bin:/bin"))],
            // Tests run as threads of one process: only the memfd test looks at its fds.
            fd_dir: None,
            logs: vec![LogText {
                location: "stderr".into(),
                text: b"INFO facts gathered answers=83\n".to_vec(),
            }],
            limits: ScanLimits::default(),
        },
        targets: vec![TargetPair {
            pod: "prod/web-0".into(),
            before: Ok(snap(&pod_json())),
            after: Ok(Some(snap(&pod_json()))),
            expected_ephemeral: vec![],
        }],
    }
}

fn run(input: PostScan, fresh: impl Fn(&ObjectRef) -> Fresh) -> PostScanReport {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let report = rt.block_on(input.run(|o| {
        let answer = fresh(&o);
        async move { answer }
    }));
    // Whatever it found, nothing it says contains the token, in either form.
    let all = format!(
        "{report:?} {} {}",
        serde_json::to_string(&report).unwrap(),
        report
            .to_hdf("pod/prod/web-0", "2026-12-03T10:00:00Z".parse().unwrap())
            .to_json()
            .unwrap()
    );
    assert!(!all.contains(TOKEN), "the report holds the token");
    assert!(
        !all.contains(&TOKEN[40..80]),
        "the report holds part of the token"
    );
    report
}

fn gone(_: &ObjectRef) -> Fresh {
    Fresh::Gone
}

fn outcome(r: &PostScanReport, c: CheckId) -> Outcome {
    r.get(c).unwrap().outcome
}

/// The failed checks, by id.
fn failed(r: &PostScanReport) -> Vec<CheckId> {
    r.checks
        .iter()
        .filter(|c| c.outcome == Outcome::Failed)
        .map(|c| c.check)
        .collect()
}

#[test]
fn a_clean_run_passes_every_check() {
    let dir = scratch("clean");
    let r = run(clean(&dir), gone);
    assert_eq!(failed(&r), vec![], "{:#?}", r.checks);
    assert!(r.passed());
    assert_eq!(r.exit_code(), None);
    assert_eq!(r.checks.len(), CheckId::ALL.len());
    for c in &r.checks {
        assert_eq!(c.outcome, Outcome::Passed, "{c:?}");
    }
    assert!(r.findings().is_empty());
}

#[test]
fn a_leftover_rolebinding_is_a_cleanup_finding_with_exit_4() {
    let dir = scratch("leftover");
    // The RoleBinding answers a fresh GET: same uid (teardown's report was wrong)...
    let r = run(clean(&dir), |o| match o.kind.as_str() {
        "RoleBinding" => Fresh::Present {
            uid: Some("uid-rb".into()),
            run_label: None,
            terminating: false,
        },
        _ => Fresh::Gone,
    });
    assert_eq!(failed(&r), vec![CheckId::Cleanup]);
    assert_eq!(r.exit_code(), Some(EXIT_LEFTOVERS));
    let f = r.findings();
    assert_eq!(f.len(), 1);
    assert!(
        f[0].detail
            .contains("RoleBinding prod/keyhole-r4nd0mrun1 is still present"),
        "{}",
        f[0].detail
    );

    // ...or another uid carrying this run's label (recreated, or created with a lost answer).
    let r = run(clean(&dir), |o| match o.kind.as_str() {
        "RoleBinding" => Fresh::Present {
            uid: Some("other".into()),
            run_label: Some(RUN.into()),
            terminating: true,
        },
        _ => Fresh::Gone,
    });
    assert_eq!(failed(&r), vec![CheckId::Cleanup]);
    assert!(r.findings()[0].detail.contains("terminating"));

    // Someone else's object under that name is not this run's leftover.
    let r = run(clean(&dir), |o| match o.kind.as_str() {
        "RoleBinding" => Fresh::Present {
            uid: Some("other".into()),
            run_label: Some("another-run".into()),
            terminating: false,
        },
        _ => Fresh::Gone,
    });
    assert_eq!(failed(&r), vec![]);

    // A GET that is not a 404 does not prove anything gone.
    let r = run(clean(&dir), |o| match o.kind.as_str() {
        "Secret" => Fresh::Failed("403 Forbidden".into()),
        _ => Fresh::Gone,
    });
    assert_eq!(failed(&r), vec![CheckId::Cleanup]);
    assert!(
        r.findings()[0]
            .detail
            .contains("not proven gone (403 Forbidden)")
    );
}

#[test]
fn an_object_only_the_audit_log_knows_is_re_read_too() {
    let dir = scratch("log-only");
    let mut input = clean(&dir);
    // The registry lost the RoleBinding; the log still records its creation.
    input.objects.retain(|o| o.object.kind != "RoleBinding");
    let mut asked = std::sync::Mutex::new(Vec::new());
    let r = run(input, |o| {
        asked.lock().unwrap().push(o.kind.clone());
        if o.kind == "RoleBinding" {
            Fresh::Present {
                uid: Some("uid-rb".into()),
                run_label: Some(RUN.into()),
                terminating: false,
            }
        } else {
            Fresh::Gone
        }
    });
    assert_eq!(failed(&r), vec![CheckId::Cleanup]);
    assert!(
        asked
            .get_mut()
            .unwrap()
            .contains(&"RoleBinding".to_string())
    );
}

#[test]
fn a_token_written_to_a_temp_file_is_found_by_location_only() {
    let dir = scratch("file");
    let input = clean(&dir);
    let nested = input.artifacts.roots[0].join("a/b");
    std::fs::create_dir_all(&nested).unwrap();
    let leak = nested.join("kubeconfig");
    std::fs::write(
        &leak,
        format!("users:\n- name: x\n  user:\n    token: {TOKEN}\n"),
    )
    .unwrap();
    let r = run(input, gone);
    assert_eq!(failed(&r), vec![CheckId::CredentialFiles]);
    assert_eq!(r.exit_code(), Some(EXIT_POSTSCAN_FAILED));
    let f = r.findings();
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(
        f[0].detail.contains(&leak.display().to_string()),
        "{}",
        f[0].detail
    );
    assert!(f[0].detail.contains("(plain)"));

    // The base64 form (as a Secret's data holds it) is found as well.
    let dir = scratch("file-b64");
    let input = clean(&dir);
    use base64::Engine as _;
    std::fs::write(
        input.artifacts.roots[0].join("secret.yaml"),
        format!(
            "data:\n  token: {}\n",
            base64::engine::general_purpose::STANDARD.encode(TOKEN)
        ),
    )
    .unwrap();
    let r = run(input, gone);
    assert_eq!(failed(&r), vec![CheckId::CredentialFiles]);
    assert!(r.findings()[0].detail.contains("(base64)"));
}

#[test]
fn a_file_not_changed_since_the_run_began_is_not_read() {
    // A file older than the run cannot hold a token minted during it: the search skips it,
    // which is what keeps a shared /tmp affordable. Proven by moving `since` past the write.
    let dir = scratch("old-file");
    let mut input = clean(&dir);
    std::fs::write(input.artifacts.roots[0].join("old"), TOKEN).unwrap();
    input.artifacts.since = SystemTime::now() + Duration::from_secs(5);
    let r = run(input, gone);
    assert_eq!(outcome(&r, CheckId::CredentialFiles), Outcome::Passed);
}

#[test]
fn a_token_in_an_environment_variable_is_found_by_name() {
    let dir = scratch("env");
    let mut input = clean(&dir);
    input.artifacts.env.push((
        OsString::from("KUBE_TOKEN"),
        OsString::from(format!("Bearer {TOKEN}")),
    ));
    let r = run(input, gone);
    assert_eq!(failed(&r), vec![CheckId::CredentialEnv]);
    assert!(
        r.findings()[0]
            .detail
            .contains("environment variable KUBE_TOKEN")
    );
}

#[test]
fn a_memfd_holding_the_token_or_named_keyhole_is_found() {
    use rustix::fs::{MemfdFlags, memfd_create};
    let dir = scratch("memfd");
    let fd = memfd_create("some-buffer", MemfdFlags::empty()).unwrap();
    let mut file = std::fs::File::from(fd);
    std::io::Write::write_all(&mut file, format!("token: {TOKEN}").as_bytes()).unwrap();
    let with_fds = || {
        let mut input = clean(&dir);
        input.artifacts.fd_dir = Some(PathBuf::from("/proc/self/fd"));
        input
    };
    let r = run(with_fds(), gone);
    assert_eq!(failed(&r), vec![CheckId::CredentialMemfd]);
    assert!(
        r.findings()
            .iter()
            .any(|f| f.detail.contains("memfd:some-buffer")),
        "{:?}",
        r.findings()
    );
    drop(file);

    // keyhole's own kubeconfig memfd still open after teardown is a finding even when empty.
    let fd = memfd_create("keyhole-kubeconfig", MemfdFlags::empty()).unwrap();
    let r = run(with_fds(), gone);
    assert_eq!(failed(&r), vec![CheckId::CredentialMemfd]);
    assert!(r.findings()[0].detail.contains("still open after teardown"));
    drop(fd);
    let r = run(with_fds(), gone);
    assert_eq!(failed(&r), vec![]);
    assert!(
        r.get(CheckId::CredentialMemfd).unwrap().evidence[0].starts_with("0 memfd(s)"),
        "{:?}",
        r.get(CheckId::CredentialMemfd)
    );
}

#[test]
fn a_log_line_holding_the_token_is_found_with_its_line_number() {
    let dir = scratch("log");
    let mut input = clean(&dir);
    input.artifacts.logs[0].text.extend_from_slice(
        format!("DEBUG request headers authorization=Bearer {TOKEN}\n").as_bytes(),
    );
    let r = run(input, gone);
    assert_eq!(failed(&r), vec![CheckId::CredentialLogs]);
    assert!(
        r.findings()[0].detail.contains("stderr line 2"),
        "{:?}",
        r.findings()
    );
}

#[test]
fn a_target_restarted_during_the_scan_is_a_side_effect() {
    let dir = scratch("restart");
    let mut input = clean(&dir);
    let mut after = pod_json();
    let s = &mut after["status"]["containerStatuses"][0];
    s["restartCount"] = json!(1);
    s["containerID"] = json!("containerd://c2");
    s["state"] = json!({"running": {"startedAt": "2026-12-03T10:00:03Z"}});
    after["metadata"]["resourceVersion"] = json!("107");
    input.targets[0].after = Ok(Some(snap(&after)));
    let r = run(input, gone);
    assert_eq!(
        failed(&r),
        vec![
            CheckId::TargetRestarts,
            CheckId::TargetContainers,
            CheckId::TargetResourceVersion
        ]
    );
    assert_eq!(r.exit_code(), Some(EXIT_POSTSCAN_FAILED));
    assert!(
        r.get(CheckId::TargetRestarts).unwrap().evidence[0]
            .contains("restartCount 0 before, 1 after")
    );
}

#[test]
fn only_the_expected_ephemeral_container_may_be_added() {
    let dir = scratch("ephemeral");
    let with = |names: &[&str]| {
        let mut p = pod_json();
        p["metadata"]["resourceVersion"] = json!("101");
        p["spec"]["ephemeralContainers"] = Value::Array(
            names
                .iter()
                .map(|n| json!({"name": n, "image": "ghcr.io/keyhole-scanner/keyhole-agent@sha256:bb"}))
                .collect(),
        );
        p["status"]["ephemeralContainerStatuses"] = Value::Array(
            names
                .iter()
                .map(|n| {
                    json!({"name": n, "restartCount": 0, "ready": false,
                                "state": {"terminated": {"exitCode": 0}}})
                })
                .collect(),
        );
        snap(&p)
    };
    let ours = format!("keyhole-{RUN}");
    // The scan's own debug container: expected; the resourceVersion change it caused too.
    let mut input = clean(&dir);
    input.targets[0].after = Ok(Some(with(&[&ours])));
    input.targets[0].expected_ephemeral = vec![ours.clone()];
    let r = run(input, gone);
    assert_eq!(failed(&r), vec![], "{:#?}", r.checks);
    assert!(
        r.get(CheckId::TargetEphemeral).unwrap().evidence[0].contains("as expected"),
        "{:?}",
        r.get(CheckId::TargetEphemeral)
    );
    // Anything else added during the scan is a finding.
    let mut input = clean(&dir);
    input.targets[0].after = Ok(Some(with(&[&ours, "debugger"])));
    input.targets[0].expected_ephemeral = vec![ours.clone()];
    let r = run(input, gone);
    assert_eq!(failed(&r), vec![CheckId::TargetEphemeral]);
    assert!(
        r.findings()[0]
            .detail
            .contains("unexpected ephemeral container debugger")
    );
    // Standard mode expects none: the debug container alone is a finding there.
    let mut input = clean(&dir);
    input.targets[0].after = Ok(Some(with(&[&ours])));
    let r = run(input, gone);
    assert_eq!(
        failed(&r),
        vec![CheckId::TargetEphemeral, CheckId::TargetResourceVersion]
    );
}

#[test]
fn a_replaced_changed_or_vanished_pod_is_a_side_effect() {
    let dir = scratch("identity");
    let mut replaced = pod_json();
    replaced["metadata"]["uid"] = json!("pod-uid-2");
    let mut relabelled = pod_json();
    relabelled["metadata"]["labels"]["scanned"] = json!("yes");
    relabelled["metadata"]["resourceVersion"] = json!("102");
    for after in [Some(snap(&replaced)), Some(snap(&relabelled)), None] {
        let mut input = clean(&dir);
        let vanished = after.is_none();
        input.targets[0].after = Ok(after);
        let r = run(input, gone);
        assert!(
            failed(&r).contains(&CheckId::TargetIdentity),
            "{:#?}",
            r.checks
        );
        if vanished {
            assert!(r.findings()[0].detail.contains("the pod is gone"));
        }
    }
    // A pod that could not be read after the scan is not compared, and does not pass.
    let mut input = clean(&dir);
    input.targets[0].after = Err("503 Service Unavailable".into());
    let r = run(input, gone);
    assert_eq!(
        failed(&r),
        vec![
            CheckId::TargetIdentity,
            CheckId::TargetRestarts,
            CheckId::TargetContainers,
            CheckId::TargetEphemeral,
            CheckId::TargetResourceVersion
        ]
    );
}

#[test]
fn missing_audit_records_or_a_broken_chain_fail_the_audit_log_check() {
    let dir = scratch("records");
    // No deletion record for the RoleBinding, no run_ended.
    let trail: Vec<Event> = full_trail()
        .into_iter()
        .filter(|e| {
            !matches!(e, Event::RunEnded { .. })
                && !matches!(e, Event::ObjectDeleted(o) if o.kind == "RoleBinding")
        })
        .collect();
    let mut input = clean(&dir);
    input.audit_log = Ok(audit_log(&scratch("records-log"), trail));
    let r = run(input, gone);
    assert_eq!(failed(&r), vec![CheckId::AuditLog]);
    let details: Vec<String> = r.findings().into_iter().map(|f| f.detail).collect();
    assert_eq!(
        details,
        vec![
            format!("run {RUN}: no run_ended record"),
            format!("run {RUN}: no object_deleted record for RoleBinding prod/keyhole-{RUN}"),
        ]
    );
    assert_eq!(r.exit_code(), Some(EXIT_POSTSCAN_FAILED));

    // Another run's records do not stand in for this one's.
    let mut input = clean(&dir);
    input.run_ids = vec!["someotherrun".into()];
    input
        .objects
        .iter_mut()
        .for_each(|o| o.run_id = "someotherrun".into());
    let r = run(input, gone);
    assert!(failed(&r).contains(&CheckId::AuditLog));

    // A log that does not verify.
    let log_dir = scratch("records-tampered");
    let _ = audit_log(&log_dir, full_trail());
    let path = log_dir.join("audit.jsonl");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("alice", "mallory");
    std::fs::write(&path, text).unwrap();
    let err = keyhole_audit::verify(&path).unwrap_err();
    let mut input = clean(&dir);
    input.audit_log = Err(err.to_string());
    let r = run(input, gone);
    assert_eq!(failed(&r), vec![CheckId::AuditLog]);
    assert!(r.findings()[0].detail.contains("does not verify"));
}

#[test]
fn without_a_token_the_credential_checks_are_not_applicable_not_passed() {
    let dir = scratch("no-token");
    let mut input = clean(&dir);
    input.tokens.clear();
    let r = run(input, gone);
    for c in [
        CheckId::CredentialFiles,
        CheckId::CredentialEnv,
        CheckId::CredentialMemfd,
        CheckId::CredentialLogs,
    ] {
        assert_eq!(outcome(&r, c), Outcome::NotApplicable);
    }
}

fn exec_schema() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/hdf-schema/exec-json.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
    })
}

#[test]
fn the_hdf_profile_is_schema_valid_with_one_control_per_check() {
    let dir = scratch("hdf");
    let mut input = clean(&dir);
    input
        .artifacts
        .env
        .push((OsString::from("LEAK"), OsString::from(TOKEN)));
    input
        .tokens
        .push(TokenFingerprint::of(&SecretString::from("x".repeat(64))));
    let r = run(input, gone);
    let exec = r.to_hdf("pod/prod/web-0", "2026-12-03T10:00:00Z".parse().unwrap());
    let value: Value = serde_json::from_str(&exec.to_json_pretty().unwrap()).unwrap();
    let errors: Vec<String> = exec_schema()
        .iter_errors(&value)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let p = &exec.profiles[0];
    assert_eq!(p.name, "keyhole-postscan");
    let ids: Vec<&str> = p.controls.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        vec![
            "postscan-audit-log",
            "postscan-cleanup",
            "postscan-credential-files",
            "postscan-credential-env",
            "postscan-credential-memfd",
            "postscan-credential-logs",
            "postscan-target-identity",
            "postscan-target-restarts",
            "postscan-target-containers",
            "postscan-target-ephemeral",
            "postscan-target-resource-version",
        ]
    );
    let status: Vec<(&str, keyhole_hdf::ResultStatus)> = p
        .controls
        .iter()
        .map(|c| (c.id.as_str(), c.results[0].status.unwrap()))
        .filter(|(_, s)| *s != keyhole_hdf::ResultStatus::Passed)
        .collect();
    assert_eq!(
        status,
        vec![("postscan-credential-env", keyhole_hdf::ResultStatus::Failed)]
    );
    let env = &p.controls[3];
    assert_eq!(env.tags["severity"], "critical");
    assert!(
        env.results[0]
            .message
            .as_deref()
            .unwrap()
            .contains("environment variable LEAK")
    );
}

#[test]
fn of_several_pods_one_unread_is_named_in_every_comparison() {
    let dir = scratch("several");
    let mut input = clean(&dir);
    let mut other = pod_json();
    other["metadata"]["name"] = json!("web-1");
    input.targets.push(TargetPair {
        pod: "prod/web-1".into(),
        before: Ok(snap(&other)),
        after: Err("403 Forbidden".into()),
        expected_ephemeral: vec![],
    });
    let r = run(input, gone);
    assert_eq!(
        failed(&r),
        vec![
            CheckId::TargetIdentity,
            CheckId::TargetRestarts,
            CheckId::TargetContainers,
            CheckId::TargetEphemeral,
            CheckId::TargetResourceVersion
        ]
    );
    for c in [CheckId::TargetRestarts, CheckId::TargetResourceVersion] {
        assert_eq!(
            r.get(c).unwrap().evidence,
            vec!["prod/web-1: not compared (not read after the scan)".to_string()]
        );
    }
}
