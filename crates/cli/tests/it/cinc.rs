//! `keyhole scan --scanner cinc`: the binary over HTTPS against the fake, with a stand-in
//! auditor (a shell script written here, found on PATH as `cinc-auditor` or `inspec`) that
//! records its argv, its environment and the kubeconfig it was handed, and answers with a real
//! InSpec JSON report from `fixtures/inspec/` (see `fixtures/README.md` for where each came
//! from).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use keyhole_hdf::Execution;
use serde_json::Value;

use crate::support::{NS, POD, Served, audit_records, clean_ending, finish};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/inspec")
        .join(name)
}

/// Writes an executable `dir/bin/NAME` that records into `dir/record/` and, when given a
/// report, copies it to the `json:FILE` of its `--reporter`, then exits with `exit`.
fn stand_in(dir: &Path, name: &str, report: Option<&Path>, exit: i32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let bin = dir.join("bin");
    let record = dir.join("record");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&record).unwrap();
    let copy = match report {
        Some(r) => format!(
            r#"prev=""
for a in "$@"; do
  if [ "$prev" = "--reporter" ]; then cp '{}' "${{a#json:}}"; fi
  prev="$a"
done
"#,
            r.display()
        ),
        None => String::new(),
    };
    let script = format!(
        r#"#!/bin/sh
rec='{rec}'
printf '%s\n' "$0" > "$rec/program"
: > "$rec/argv"
for a in "$@"; do printf '%s\n' "$a" >> "$rec/argv"; done
env > "$rec/env"
cat "$KUBECONFIG" > "$rec/kubeconfig"
{copy}exit {exit}
"#,
        rec = record.display()
    );
    let path = bin.join(name);
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn read(dir: &Path, what: &str) -> String {
    std::fs::read_to_string(dir.join("record").join(what))
        .unwrap_or_else(|e| panic!("the stand-in recorded no {what}: {e}"))
}

/// `keyhole scan pod/web-0 -n prod --scanner cinc --profile PROFILE …` with PATH = `path`.
async fn cinc_scan(
    served: &Served,
    path: &str,
    profile: &Path,
    extra: &[&str],
) -> crate::support::Finished {
    let mut args = vec![
        "scan",
        "pod/web-0",
        "-n",
        NS,
        "--scanner",
        "cinc",
        "--profile",
        profile.to_str().unwrap(),
        "--kubeconfig",
        served.kubeconfig.to_str().unwrap(),
        "--audit-log",
        served.audit.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    // As a user's shell has it: KUBECONFIG names the user's own (admin) kubeconfig. The
    // auditor must get the scoped one instead.
    let child = served
        .keyhole(
            &args,
            &[
                ("PATH", path),
                ("KEYHOLE_API_TIMEOUT", "20s"),
                ("KUBECONFIG", served.kubeconfig.to_str().unwrap()),
            ],
        )
        .spawn()
        .unwrap();
    finish(child).await
}

fn profile_dir(served: &Served) -> PathBuf {
    let p = served.dir.join("my-profile");
    std::fs::create_dir_all(p.join("controls")).unwrap();
    std::fs::write(p.join("inspec.yml"), "name: my-profile\nversion: 0.1.0\n").unwrap();
    p
}

/// The JWT claims of the bearer token in a kubeconfig (JSON, as keyhole writes it).
fn token_of(kubeconfig: &str) -> (String, Value) {
    let k: Value = serde_json::from_str(kubeconfig).expect("the scoped kubeconfig is JSON");
    let token = k["users"][0]["user"]["token"]
        .as_str()
        .expect("a bearer token")
        .to_string();
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    (token, serde_json::from_slice(&claims).unwrap())
}

/// The auditor's HDF as keyhole wrote it, less the pre-scan verification's `keyhole-precheck`
/// profile, which must follow the auditor's profiles (exactly one).
fn without_precheck(exec: &Execution) -> Execution {
    let mut exec = exec.clone();
    let last = exec.profiles.pop().expect("profiles");
    assert_eq!(
        last.name, "keyhole-precheck",
        "the pre-scan profile comes last"
    );
    assert!(
        exec.profiles.iter().all(|p| p.name != "keyhole-precheck"),
        "one pre-scan profile"
    );
    exec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cinc_runs_with_only_the_scoped_kubeconfig_and_its_report_is_judged_as_hdf() {
    let served = Served::new("cinc-happy").await;
    let report = fixture("inspec-1.49.2-reporter.json");
    // InSpec exits 100 when a control failed, with a complete report.
    let bin = stand_in(&served.dir, "cinc-auditor", Some(&report), 100);
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let profile = profile_dir(&served);
    let out = served.dir.join("web-0.json");
    // 3 of the report's 4 controls passed: 75 % compliance.
    let strict = served.dir.join("strict.yml");
    std::fs::write(&strict, "compliance:\n  min: 80\n").unwrap();
    let lax = served.dir.join("lax.yml");
    std::fs::write(
        &lax,
        "compliance:\n  min: 75\nfailed:\n  total:\n    max: 1\n",
    )
    .unwrap();
    for (threshold, want) in [(&strict, 1), (&lax, 0)] {
        let f = cinc_scan(
            &served,
            &path,
            &profile,
            &[
                "--threshold",
                threshold.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--input",
                "min_uid=1000",
            ],
        )
        .await;
        assert_eq!(
            f.code,
            Some(want),
            "stdout {}\nstderr {}",
            f.stdout,
            f.stderr
        );
        assert!(
            f.stdout
                .contains("long_commands 0.1.0 on mac_os_x 17.2.0: 4 controls"),
            "{}",
            f.stdout
        );
        assert!(f.stdout.contains("compliance 75%"), "{}", f.stdout);
        assert!(
            f.stdout.contains("gem package rubocop should be installed"),
            "{}",
            f.stdout
        );
        assert!(
            f.stderr.contains("cleanup verified complete"),
            "{}",
            f.stderr
        );
        assert!(f.stderr.contains("scanner cinc-auditor"), "{}", f.stderr);
        assert!(served.cluster.managed_objects().is_empty());

        // The auditor's exact command line.
        let argv = read(&served.dir, "argv");
        let argv: Vec<&str> = argv.lines().collect();
        assert_eq!(
            argv[..5],
            [
                "exec",
                profile.to_str().unwrap(),
                "-t",
                &format!("k8s-container://{NS}/{POD}/app"),
                "--reporter",
            ]
        );
        assert!(argv[5].starts_with("json:/"), "{argv:?}");
        assert_eq!(argv[6..], ["--input", "min_uid=1000"]);
        assert_eq!(
            read(&served.dir, "program").trim(),
            bin.join("cinc-auditor").to_str().unwrap()
        );
        // Its private report file is gone with its directory.
        let report_file = Path::new(argv[5].trim_start_matches("json:"));
        assert!(!report_file.exists() && !report_file.parent().unwrap().exists());

        // The HDF written is the auditor's report, field for field, and schema-valid.
        let written = Execution::from_json_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        written.validate().unwrap();
        let original =
            Execution::from_json_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(without_precheck(&written), original);
    }

    // What the auditor saw: KUBECONFIG names the memfd handed over, holding a token of the
    // run's ServiceAccount in the target namespace; nothing of the user's credentials.
    let env = read(&served.dir, "env");
    let kubeconfig_var = env
        .lines()
        .find_map(|l| l.strip_prefix("KUBECONFIG="))
        .expect("KUBECONFIG is set for the auditor");
    assert!(kubeconfig_var.starts_with("/dev/fd/"), "{kubeconfig_var}");
    let admin = served.cluster.admin_token();
    let admin_kubeconfig = served.kubeconfig.to_str().unwrap();
    assert!(
        !env.contains(&admin),
        "the admin token reached the auditor's environment"
    );
    assert!(
        !env.contains(admin_kubeconfig),
        "the user's kubeconfig path reached the auditor's environment"
    );
    assert!(!read(&served.dir, "argv").contains(admin_kubeconfig));
    let handed = read(&served.dir, "kubeconfig");
    assert!(!handed.contains(&admin));
    let (token, claims) = token_of(&handed);
    let sub = claims["sub"].as_str().unwrap();
    assert!(
        sub.starts_with(&format!("system:serviceaccount:{NS}:keyhole-")),
        "{claims}"
    );
    // The token died with the run's objects; the admin's still works.
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(served.server.client_for_token(&token).unwrap(), NS);
    assert!(
        pods.get(POD).await.is_err(),
        "the scoped token outlived its run"
    );
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(served.server.client_admin().unwrap(), NS);
    assert!(pods.get(POD).await.is_ok());

    // Two runs of standard-mode access, both torn down, in one verifying chain.
    let records = audit_records(&served.audit);
    clean_ending(&records);
    let modes: Vec<String> = records
        .iter()
        .filter_map(|r| match &r.event {
            keyhole_audit::Event::RunStarted { mode, .. } => Some(mode.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(modes, ["standard", "standard"]);
    assert!(
        served.cluster.execs().is_empty(),
        "keyhole itself opened no exec"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspec_is_the_fallback_and_json_goes_to_stdout() {
    let served = Served::new("cinc-inspec").await;
    let report = fixture("inspec-5.18.14-minimal.json");
    let bin = stand_in(&served.dir, "inspec", Some(&report), 100);
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let profile = profile_dir(&served);
    let f = cinc_scan(&served, &path, &profile, &["--format", "json", "-c", "app"]).await;
    // No threshold: the failed control is reported, not gated on.
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert_eq!(
        read(&served.dir, "program").trim(),
        bin.join("inspec").to_str().unwrap()
    );
    let printed = Execution::from_json_str(&f.stdout).unwrap();
    let original = Execution::from_json_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(without_precheck(&printed), original);
    assert_eq!(printed.version, "5.18.14");
    assert!(served.cluster.managed_objects().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_auditor_it_says_how_to_install_one_and_touches_nothing() {
    let served = Served::new("cinc-missing").await;
    let empty = served.dir.join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let profile = profile_dir(&served);
    let f = cinc_scan(&served, empty.to_str().unwrap(), &profile, &[]).await;
    assert_eq!(f.code, Some(2), "{}", f.stderr);
    assert!(f.stderr.contains("cinc-auditor"), "{}", f.stderr);
    assert!(
        f.stderr.contains("https://cinc.sh/start/auditor/"),
        "{}",
        f.stderr
    );
    assert!(f.stderr.contains("train-k8s-container"), "{}", f.stderr);
    assert!(f.stdout.is_empty());
    assert!(
        served.cluster.calls().is_empty(),
        "{:?}",
        served.cluster.calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_that_fails_without_a_report_is_a_scan_error_and_cleanup_still_runs() {
    let served = Served::new("cinc-fails").await;
    let bin = stand_in(&served.dir, "inspec", None, 172);
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let profile = profile_dir(&served);
    let f = cinc_scan(&served, &path, &profile, &[]).await;
    assert_eq!(f.code, Some(3), "{}", f.stderr);
    assert!(f.stderr.contains("inspec exited with 172"), "{}", f.stderr);
    assert!(f.stderr.contains("CHEF_LICENSE"), "{}", f.stderr);
    assert!(
        f.stderr.contains("cleanup verified complete"),
        "{}",
        f.stderr
    );
    assert!(f.stdout.is_empty());
    assert!(served.cluster.managed_objects().is_empty());
    clean_ending(&audit_records(&served.audit));

    // An exit code that promises a report, with none written, is an error too.
    let bin = stand_in(&served.dir, "cinc-auditor", None, 0);
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let f = cinc_scan(&served, &path, &profile, &[]).await;
    assert_eq!(f.code, Some(3), "{}", f.stderr);
    assert!(f.stderr.contains("wrote no report"), "{}", f.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cinc_cannot_do_is_bad_input_before_any_call() {
    let served = Served::new("cinc-bad").await;
    let bin = stand_in(&served.dir, "cinc-auditor", None, 0);
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let profile = profile_dir(&served);
    let waivers = served.dir.join("w.yml");
    std::fs::write(&waivers, "[]\n").unwrap();
    for (extra, says) in [
        (vec!["--mode", "distroless"], "standard mode"),
        (
            vec!["--waivers", waivers.to_str().unwrap()],
            "--waiver-file",
        ),
        (vec!["--input", "novalue"], "NAME=VALUE"),
    ] {
        let f = cinc_scan(&served, &path, &profile, &extra).await;
        assert_eq!(f.code, Some(2), "{extra:?}: {}", f.stderr);
        assert!(f.stderr.contains(says), "{extra:?}: {}", f.stderr);
    }
    let f = cinc_scan(&served, &path, &served.dir.join("nope"), &[]).await;
    assert_eq!(f.code, Some(2), "{}", f.stderr);
    assert!(f.stderr.contains("no such InSpec profile"), "{}", f.stderr);
    assert!(served.cluster.calls().is_empty());
    assert!(
        !served.dir.join("record/argv").exists(),
        "the auditor never ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_names_the_auditor_and_its_target_and_sends_nothing() {
    let served = Served::new("cinc-dry").await;
    let bin = stand_in(&served.dir, "cinc-auditor", None, 0);
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let profile = profile_dir(&served);
    let f = cinc_scan(&served, &path, &profile, &["--dry-run"]).await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert!(f.stdout.contains("dry run"), "{}", f.stdout);
    assert!(
        f.stdout
            .contains(bin.join("cinc-auditor").to_str().unwrap()),
        "{}",
        f.stdout
    );
    assert!(
        f.stdout.contains(&format!("k8s-container://{NS}/")),
        "{}",
        f.stdout
    );
    assert!(f.stdout.contains("pods/exec get+create"), "{}", f.stdout);
    assert!(served.cluster.calls().is_empty());
    assert!(
        !served.dir.join("record/argv").exists(),
        "the auditor never ran"
    );
}

/// The pre-scan verification gates the auditor as it gates keyhole's own engine: a privileged
/// target aborts with exit 5 before anything is created — the auditor never runs, the fake
/// records reads only, and `--out` holds the `keyhole-precheck` profile alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_privileged_target_is_refused_before_the_auditor_runs_or_anything_is_created() {
    let served = Served::with(
        "cinc-gate",
        crate::precheck_gate::cluster_with(serde_json::json!({"privileged": true})),
        |s| s.kubeconfig_yaml_admin(),
    )
    .await;
    let report = fixture("inspec-5.18.14-minimal.json");
    let bin = stand_in(&served.dir, "cinc-auditor", Some(&report), 0);
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let profile = profile_dir(&served);
    let out = served.dir.join("hdf.json");
    let f = cinc_scan(
        &served,
        &path,
        &profile,
        &["--out", out.to_str().unwrap(), "-c", "app"],
    )
    .await;
    assert_eq!(f.code, Some(5), "stdout {}\nstderr {}", f.stdout, f.stderr);
    assert!(
        f.stderr.contains("pre-scan ABORT prod/web-0: privileged:"),
        "{}",
        f.stderr
    );
    assert!(
        !served.dir.join("record").join("program").exists(),
        "the auditor must not have run"
    );
    let writes: Vec<_> = served
        .cluster
        .calls()
        .into_iter()
        .filter(|c| c.method != "GET")
        .collect();
    assert!(writes.is_empty(), "write calls: {writes:?}");
    assert!(served.cluster.managed_objects().is_empty());
    let written = Execution::from_json_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let names: Vec<&str> = written.profiles.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["keyhole-precheck"]);
}
