//! `keyhole scan TARGET --scanner cinc --profile PATH`: an InSpec profile judged by CINC Auditor
//! (or Chef InSpec) through its `k8s-container://` transport, holding only keyhole's scoped
//! access.
//!
//! The auditor runs as the command of a verified access session, exactly as under `keyhole
//! access`: standard-mode rights (`pods` get, `pods/exec` create/get, pinned to the one target
//! pod), `KUBECONFIG` naming the scoped kubeconfig handed over through a sealed memfd, the
//! user's own kubeconfig never named to it, and every object deleted and verified gone
//! afterwards. Its `--reporter json` output is HDF exec JSON (InSpec's JSON reporter is what
//! HDF was drawn from), so it is read with `keyhole-hdf`, checked schema-valid, written to
//! `--out` and judged by `--threshold` like a native scan.
//!
//! The report goes to a file in a fresh 0700 directory (`--reporter json:FILE`, InSpec's own
//! syntax) rather than the auditor's stdout: the session runs its command with the terminal's
//! stdio, so keyhole's stdout stays keyhole's alone.
//!
//! The pre-scan verification (`--policy`, keyhole-precheck) runs first, with the user's
//! credentials, exactly as for the native engine: an abort exits 5 with nothing created. Its
//! `keyhole-precheck` profile follows the auditor's in the HDF, and `--report`/`--format sarif`
//! render the run as for a native scan. (The network-socket checks need the native engine's
//! facts: the auditor gathers none keyhole can read, so they are not judged here.)
//!
//! Exit codes: those of `keyhole scan`; a missing auditor is bad input (2), found before
//! anything is sent to the cluster; an auditor that ends without a report (its exit code is
//! neither 0, 100 nor 101) is a scan error (3).

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use keyhole_cleanup::Ending;
use keyhole_cli::cluster_scan::{ScanError, resolve_selector};
use keyhole_cli::session::{Audit, SessionSpec, TlsScopedClients, run_session};
use keyhole_core::{Expiry, Namespace, PodName, Run, RunId, ScanMode, ScanTarget};
use keyhole_hdf::{Execution, Threshold};
use keyhole_workflows::{ContainerTarget, WorkflowError};

use crate::args::{ScanArgs, ScanFormat};
use crate::cluster::{init_tracing, load, open_audit, retry_policy, runtime, user_client};
use crate::scan::EXIT_THRESHOLD;
use crate::{EXIT_SCAN_ERROR, Failure, Output};

/// The auditors looked for on `PATH`, in order of preference: CINC Auditor is the free
/// distribution of the same code; `inspec` is its upstream.
pub(crate) const AUDITORS: [&str; 2] = ["cinc-auditor", "inspec"];

/// What to tell a user with neither auditor.
pub(crate) const INSTALL_HINT: &str = "--scanner cinc needs `cinc-auditor` (or `inspec`) on PATH, \
     with the train-k8s-container transport and kubectl: install CINC Auditor from \
     https://cinc.sh/start/auditor/ (e.g. `curl -L https://omnitruck.cinc.sh/install.sh | sudo bash -s -- -P cinc-auditor`), \
     then `cinc-auditor plugin install train-k8s-container`";

/// InSpec's exit codes that come with a complete report: 0 every control passed, 100 some
/// failed, 101 some were skipped and none failed.
const REPORTED: [i32; 3] = [0, 100, 101];

/// The first of [`AUDITORS`] found as an executable file in the directories of `path` (a
/// `PATH` value): every directory is searched for `cinc-auditor` before any for `inspec`.
pub(crate) fn find_auditor(path: Option<&OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let dirs: Vec<PathBuf> = path
        .map(|p| std::env::split_paths(p).collect())
        .unwrap_or_default();
    AUDITORS.iter().find_map(|name| {
        dirs.iter()
            // An empty PATH entry means the working directory; an auditor is not picked up
            // from wherever keyhole happens to be started.
            .filter(|d| d.is_absolute())
            .map(|d| d.join(name))
            .find(|p| {
                std::fs::metadata(p)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    })
}

/// The `k8s-container://NS/POD/CONTAINER` target of train-k8s-container.
pub(crate) fn target_uri(t: &ContainerTarget) -> String {
    format!("k8s-container://{}/{}/{}", t.namespace, t.pod, t.container)
}

/// The auditor's command line: `exec PROFILE -t TARGET --reporter json:REPORT [--input
/// NAME=VALUE…]`, the program first.
pub(crate) fn command(
    auditor: &Path,
    profile: &str,
    target: &ContainerTarget,
    report: &Path,
    inputs: &[String],
) -> Vec<OsString> {
    let mut reporter = OsString::from("json:");
    reporter.push(report);
    let mut argv: Vec<OsString> = vec![
        auditor.into(),
        "exec".into(),
        profile.into(),
        "-t".into(),
        target_uri(target).into(),
        "--reporter".into(),
        reporter,
    ];
    // InSpec's --input takes every NAME=VALUE after one flag.
    if !inputs.is_empty() {
        argv.push("--input".into());
        argv.extend(inputs.iter().map(OsString::from));
    }
    argv
}

/// Why an auditor exit code came without a report, in words a user can act on.
pub(crate) fn explain_exit(program: &str, code: i32) -> String {
    let why = match code {
        1 => "a usage error or a profile that does not load (run it with --reporter cli to see)",
        2 => "an unexpected error in the auditor",
        3 => "a fatal deprecation in the profile",
        172 => {
            "Chef's licence was not accepted: set CHEF_LICENSE=accept-no-persist if you accept it, or use cinc-auditor, which needs none"
        }
        _ => "it did not say why (see its messages above)",
    };
    format!("{program} exited with {code} without a report: {why}")
}

/// Reads the auditor's JSON report as HDF; a report that is not schema-valid HDF is refused
/// rather than passed on.
pub(crate) fn read_report(bytes: &[u8]) -> Result<Execution, String> {
    let exec = Execution::from_json_slice(bytes).map_err(|e| e.to_string())?;
    exec.validate().map_err(|e| e.to_string())?;
    if exec.profiles.is_empty() {
        return Err("the report holds no profile".into());
    }
    Ok(exec)
}

fn threshold(path: Option<&Path>) -> Result<Option<Threshold>, Failure> {
    let Some(p) = path else { return Ok(None) };
    let text = std::fs::read_to_string(p)
        .map_err(|e| Failure::bad_input(format!("cannot read threshold {}: {e}", p.display())))?;
    Threshold::from_yaml_str(&text)
        .map(Some)
        .map_err(|e| Failure::bad_input(format!("{}: {e}", p.display())))
}

/// Everything `--scanner cinc` refuses, before anything else happens.
fn check_args(a: &ScanArgs) -> Result<(), Failure> {
    if a.root.is_some() || a.pid.is_some() {
        return Err(Failure::bad_input(
            "--scanner cinc scans pods in a cluster (TARGET or -l SELECTOR), not --root or --pid",
        ));
    }
    if !matches!(a.mode, ScanMode::Auto | ScanMode::Standard) {
        return Err(Failure::bad_input(format!(
            "--scanner cinc runs the auditor over exec (standard mode); --mode {} is for keyhole's own engine",
            a.mode
        )));
    }
    if a.waivers.is_some() {
        return Err(Failure::bad_input(
            "--waivers is keyhole's waiver format; an InSpec profile takes waivers through its own --waiver-file, which --scanner cinc does not pass on",
        ));
    }
    if a.profile.starts_with("builtin:") || a.profile == keyhole_engine::DEFAULT_PROFILE {
        return Err(Failure::bad_input(
            "--scanner cinc needs --profile PATH: an InSpec profile directory or archive",
        ));
    }
    if !Path::new(&a.profile).exists() {
        return Err(Failure::bad_input(format!(
            "--profile {}: no such InSpec profile (a directory or archive)",
            a.profile
        )));
    }
    if let Some(bad) = a.inputs.iter().find(|i| !i.contains('=')) {
        return Err(Failure::bad_input(format!(
            "--input {bad:?}: expected NAME=VALUE"
        )));
    }
    if a.targets.len() > 1 {
        return Err(Failure::bad_input(
            "--scanner cinc scans one pod per run: give one TARGET",
        ));
    }
    Ok(())
}

/// A fresh directory only this user may enter, for the auditor's report.
struct ReportDir(PathBuf);

impl ReportDir {
    fn new(run: &Run) -> Result<Self, Failure> {
        use std::os::unix::fs::DirBuilderExt as _;
        let dir = std::env::temp_dir().join(format!("keyhole-cinc-{}", run.id()));
        // Not recursive: an existing directory (someone else's) is refused, not reused.
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Failure::scan(format!("cannot create {}: {e}", dir.display())))?;
        Ok(Self(dir))
    }

    fn report(&self) -> PathBuf {
        self.0.join("report.json")
    }
}

impl Drop for ReportDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `keyhole scan TARGET --scanner cinc`.
pub(crate) fn scan(a: &ScanArgs) -> Result<Output, Failure> {
    init_tracing();
    check_args(a)?;
    let started = Timestamp::now();
    let report_target = crate::gates::report_target(a)?;
    let precheck_policy = crate::gates::policy(a)?;
    let policy = retry_policy()?;
    let threshold = threshold(a.threshold.as_deref())?;
    // Found before the cluster is touched: without it nothing is created.
    let auditor = find_auditor(std::env::var_os("PATH").as_deref())
        .ok_or_else(|| Failure::bad_input(INSTALL_HINT))?;
    let program = auditor.file_name().map_or_else(
        || "the auditor".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let user = match (a.dry_run, &a.namespace) {
        (true, Some(_)) => None,
        _ => Some(load(&a.kube)?),
    };
    let ns = crate::scan_cluster::namespace_of(a, user.as_ref())?;
    let named = crate::scan_cluster::named_pods(a)?;
    if a.dry_run {
        return Ok(Output {
            stdout: dry_run(a, &ns, &named, &auditor),
            warnings: Vec::new(),
            exit: 0,
        });
    }
    let Some(user) = user else {
        return Err(Failure::bad_input("a scan needs your kubeconfig"));
    };
    let (log, log_path) = open_audit(a.audit_log.as_deref(), &a.audit_key)?;
    keyhole_credentials::harden_process().map_err(|e| Failure::scan(e.to_string()))?;
    let rt = runtime()?;
    let ran = rt.block_on(async {
        let client = user_client(&user).await?;
        let pods = match &a.selector {
            Some(sel) => resolve_selector(&client, &ns, sel)
                .await
                .map_err(|e| match e {
                    ScanError::NoMatch { .. } => Failure::bad_input(e),
                    _ => Failure::scan(e),
                })?,
            None => named.clone(),
        };
        let [pod] = pods.as_slice() else {
            return Err(Failure::bad_input(format!(
                "--scanner cinc scans one pod per run; the selector matched {}: {}",
                pods.len(),
                pods.iter()
                    .map(PodName::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        // The container is settled with the user's credentials before the access exists: the
        // auditor's target URI names it, and the session's command is fixed when it starts.
        let target = keyhole_workflows::resolve_container(
            &client,
            ns.as_str(),
            pod.as_str(),
            a.container.as_ref().map(|c| c.as_str()),
        )
        .await
        .map_err(|e| match e {
            WorkflowError::Api { message, .. } => Failure::scan(format!(
                "reading pod {ns}/{pod} with your credentials: {message}"
            )),
            other => Failure::bad_input(other),
        })?;
        let scan_target = ScanTarget::pods(ns.clone(), [pod.clone()], a.container.clone())
            .map_err(Failure::bad_input)?;
        let expiry = Expiry::new(Timestamp::now(), a.ttl).map_err(Failure::bad_input)?;
        let id = RunId::generate().map_err(|e| Failure::scan(e.to_string()))?;
        let run =
            Run::new(id, scan_target, ScanMode::Standard, expiry).map_err(Failure::bad_input)?;
        // The pre-scan gate, with the user's credentials, before anything is created.
        let verdict = match keyhole_precheck::fetch(client.clone(), ns.as_str(), pod.as_str())
            .await
            .map_err(|e| Failure::scan(format!("pre-scan verification of {ns}/{pod}: {e}")))?
        {
            Some(p) => keyhole_precheck::evaluate(&p, &target.container, &precheck_policy),
            None => keyhole_precheck::evaluate_missing(
                ns.as_str(),
                pod.as_str(),
                &target.container,
                &precheck_policy,
            ),
        };
        if verdict.aborts() {
            return Ok(Ran::Aborted(Box::new(verdict), run));
        }
        let report_dir = ReportDir::new(&run)?;
        let spec = SessionSpec {
            run: run.clone(),
            cluster: user.cluster.clone(),
            audiences: a.audiences.clone(),
            command: command(
                &auditor,
                &a.profile,
                &target,
                &report_dir.report(),
                &a.inputs,
            ),
            work: None,
            policy,
        };
        let scoped = Arc::new(TlsScopedClients {
            cluster: user.cluster.clone(),
            namespace: ns.to_string(),
        });
        let audit = Audit::new(log, run.id().as_str());
        let outcome = run_session(client, spec, scoped, audit)
            .await
            .map_err(Failure::scan)?;
        Ok::<_, Failure>(Ran::Done(Box::new((outcome, run, report_dir, verdict))))
    })?;
    let (outcome, run, report_dir, verdict) = match ran {
        Ran::Done(done) => *done,
        Ran::Aborted(verdict, run) => {
            let summary = summary(a, &run, started, Vec::new(), None);
            let mut out = crate::gates::aborted_output(
                a,
                &verdict,
                &summary,
                report_target.as_ref(),
                a.out.as_deref(),
                Timestamp::now(),
                None,
            )?;
            out.warnings = crate::gates::verdict_warnings(&verdict);
            out.warnings.push(format!(
                "run {}: the pre-scan verification aborted the scan (exit {}): nothing was created and nothing was written to the cluster; audit log {}",
                run.id(),
                keyhole_precheck::EXIT_PRECHECK_ABORT,
                log_path.display()
            ));
            return Ok(out);
        }
    };

    let mut warnings: Vec<String> = vec![format!(
        "scanner {program} (standard-mode access): {}",
        auditor.display()
    )];
    warnings.extend(crate::gates::verdict_warnings(&verdict));
    warnings.extend(crate::scan_cluster::session_warnings(&outcome));
    let created = crate::scan_cluster::created_count(&outcome);
    warnings.push(format!(
        "run {} (standard mode, {program}): {created} object(s) created, cleanup {}; audit log {}",
        run.id(),
        crate::scan_cluster::cleanup_words(&outcome),
        log_path.display()
    ));
    let fail = |exit: i32, message: String, warnings: Vec<String>| {
        for w in warnings {
            eprintln!("keyhole: warning: {w}");
        }
        Err(Failure { exit, message })
    };
    // The session's own failures (setup, expiry, a signal, leftover access) come first.
    if let Some(e) = &outcome.error {
        return fail(
            outcome.exit_code,
            format!("run {} failed: {e}", run.id()),
            warnings,
        );
    }
    if outcome.ending != Ending::Completed {
        return fail(
            outcome.exit_code,
            format!("run {} did not complete ({:?})", run.id(), outcome.ending),
            warnings,
        );
    }
    let child = outcome.exit_code;
    let leftover = !outcome.cleanup.is_clean();
    if !REPORTED.contains(&child) && !leftover {
        return fail(EXIT_SCAN_ERROR, explain_exit(&program, child), warnings);
    }
    let exec = match std::fs::read(report_dir.report()) {
        Ok(bytes) => read_report(&bytes)
            .map_err(|e| Failure::scan(format!("{program}'s JSON report is not valid HDF: {e}"))),
        Err(e) if leftover => Err(Failure {
            exit: outcome.exit_code,
            message: format!("{program} left no report ({e})"),
        }),
        Err(e) => Err(Failure::scan(format!(
            "{program} exited with {child} but wrote no report: {e}"
        ))),
    };
    drop(report_dir);
    let exec = match exec {
        Ok(x) => x,
        Err(f) => return fail(f.exit, f.message, warnings),
    };
    let exec = crate::gates::with_precheck(&exec, Some(&verdict), Timestamp::now());
    let (objects, token) = crate::gates::run_record(&log_path, std::slice::from_ref(run.id()))
        .unwrap_or_else(|e| {
            warnings.push(format!("the report lists no objects: {e}"));
            (Vec::new(), None)
        });
    let mut summary = summary(a, &run, started, objects, token);
    summary.targets = crate::gates::target(ns_of(&run), &pod_of(&run), &verdict.target.container)
        .into_iter()
        .collect();
    let sarif = crate::gates::reports(a, &exec, &summary, report_target.as_ref(), false, None)?;
    let mut out = judge(a, &exec, threshold.as_ref(), sarif)?;
    out.warnings.splice(0..0, warnings);
    if leftover {
        out.exit = outcome.exit_code;
    }
    Ok(out)
}

/// `--out`, the summary or JSON on stdout, and the threshold's exit code for the auditor's
/// HDF.
fn judge(
    a: &ScanArgs,
    exec: &Execution,
    threshold: Option<&Threshold>,
    sarif: Option<String>,
) -> Result<Output, Failure> {
    let json = exec.to_json_pretty().map_err(Failure::scan)?;
    if let Some(out) = &a.out {
        std::fs::write(out, &json)
            .map_err(|e| Failure::scan(format!("cannot write {}: {e}", out.display())))?;
    }
    let verdict = threshold
        .map(|t| keyhole_hdf::evaluate(exec, t))
        .transpose()
        .map_err(Failure::scan)?;
    let stdout = match a.format {
        ScanFormat::Json if a.out.is_none() => json + "\n",
        ScanFormat::Json => String::new(),
        ScanFormat::Summary => crate::scan::summary(exec, verdict.as_ref()),
        ScanFormat::Sarif => sarif.unwrap_or_default(),
    };
    Ok(Output {
        stdout,
        warnings: Vec::new(),
        exit: match verdict {
            Some(v) if !v.passed => EXIT_THRESHOLD,
            _ => 0,
        },
    })
}

/// How the session part of a cinc scan ended: the pre-scan gate aborted it before anything was
/// created, or the auditor ran under the scoped access.
enum Ran {
    Aborted(Box<keyhole_precheck::Verdict>, Run),
    Done(
        Box<(
            keyhole_cli::session::Outcome,
            Run,
            ReportDir,
            keyhole_precheck::Verdict,
        )>,
    ),
}

fn ns_of(run: &Run) -> &str {
    run.namespace().as_str()
}

fn pod_of(run: &Run) -> String {
    run.pods()
        .first()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// The run as `--report` and SARIF show it.
fn summary(
    a: &ScanArgs,
    run: &Run,
    started: Timestamp,
    objects: Vec<keyhole_report::ObjectRecord>,
    token: Option<keyhole_report::TokenLifetime>,
) -> keyhole_report::RunSummary {
    keyhole_report::RunSummary {
        run_id: run.id().clone(),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        targets: Vec::new(),
        mode: ScanMode::Standard,
        started_at: started,
        finished_at: Timestamp::now(),
        threshold: a.threshold.as_ref().and_then(|p| {
            threshold(Some(p))
                .ok()
                .flatten()
                .map(|t| keyhole_report::ThresholdSpec {
                    source: p.display().to_string(),
                    threshold: t,
                })
        }),
        aborted: None,
        objects,
        token,
        precheck: None,
        postscan: None,
    }
}

fn dry_run(a: &ScanArgs, ns: &Namespace, pods: &[PodName], auditor: &Path) -> String {
    let target = match &a.selector {
        Some(sel) => format!("the one pod of {ns} matching {sel} (listed with your credentials)"),
        None => format!(
            "{ns}/{}",
            pods.iter()
                .map(PodName::as_str)
                .collect::<Vec<_>>()
                .join(",")
        ),
    };
    let mut s = String::new();
    let _ = writeln!(s, "keyhole scan (dry run: nothing is sent to the cluster)");
    let _ = writeln!(s, "targets:   {target}");
    let _ = writeln!(
        s,
        "scanner:   {} (InSpec profile {})",
        auditor.display(),
        a.profile
    );
    let steps = [
        "read the pod and settle its container; the pre-scan verification (--policy) judges it and can abort before anything is created (your credentials)".to_string(),
        "reap expired keyhole objects of the namespace (your credentials)".to_string(),
        "create ServiceAccount, anchor Secret, Role (pods get; pods/exec get+create; resourceNames = the pod) and RoleBinding (your credentials)".to_string(),
        format!("mint a bound token for {} and verify least privilege with it (SelfSubjectRulesReview)", a.ttl),
        format!("run {} exec {} -t k8s-container://{ns}/POD/CONTAINER --reporter json:<private file>, KUBECONFIG = the scoped kubeconfig (a sealed memfd)", auditor.display(), a.profile),
        "delete every object created and verify it is gone; record the run in the audit log".to_string(),
        "read the JSON report as HDF; apply the threshold".to_string(),
    ];
    for (i, step) in steps.iter().enumerate() {
        let _ = writeln!(s, "{}. {step}", i + 1);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/inspec")
            .join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("keyhole-cinc-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn exe(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn cinc_auditor_is_preferred_anywhere_on_path_and_inspec_is_the_fallback() {
        let d = scratch("find");
        let (a, b, c) = (d.join("a"), d.join("b"), d.join("c"));
        for x in [&a, &b, &c] {
            std::fs::create_dir_all(x).unwrap();
        }
        exe(&a.join("inspec"), 0o755);
        exe(&b.join("cinc-auditor"), 0o755);
        // Not executable: skipped.
        exe(&c.join("cinc-auditor"), 0o644);
        let path = |dirs: &[&Path]| std::env::join_paths(dirs).unwrap();
        assert_eq!(
            find_auditor(Some(&path(&[&c, &a, &b]))),
            Some(b.join("cinc-auditor"))
        );
        assert_eq!(find_auditor(Some(&path(&[&c, &a]))), Some(a.join("inspec")));
        assert_eq!(find_auditor(Some(&path(&[&c]))), None);
        assert_eq!(find_auditor(None), None);
        // A relative PATH entry (the working directory) is never searched.
        assert_eq!(find_auditor(Some(OsStr::new("."))), None);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_command_names_the_container_the_report_file_and_the_inputs() {
        let t = ContainerTarget {
            namespace: "prod".into(),
            pod: "web-0".into(),
            container: "app".into(),
        };
        let argv = command(
            Path::new("/opt/cinc/bin/cinc-auditor"),
            "./profiles/baseline",
            &t,
            Path::new("/tmp/k/report.json"),
            &["a=1".into(), "b=x y".into()],
        );
        assert_eq!(
            argv,
            [
                "/opt/cinc/bin/cinc-auditor",
                "exec",
                "./profiles/baseline",
                "-t",
                "k8s-container://prod/web-0/app",
                "--reporter",
                "json:/tmp/k/report.json",
                "--input",
                "a=1",
                "b=x y",
            ]
            .map(OsString::from)
        );
        let argv = command(Path::new("/i"), "p", &t, Path::new("/r"), &[]);
        assert_eq!(argv.len(), 7, "no --input without inputs: {argv:?}");
    }

    #[test]
    fn real_inspec_reports_read_as_hdf_and_keep_every_field() {
        for name in ["inspec-1.49.2-reporter.json", "inspec-5.18.14-minimal.json"] {
            let bytes = fixture(name);
            let exec = read_report(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            // Nothing InSpec wrote is lost: the written HDF, read back as plain JSON, holds
            // every value of the report (nulls are absent values in HDF and dropped).
            let original: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let written: serde_json::Value =
                serde_json::from_str(&exec.to_json_pretty().unwrap()).unwrap();
            assert_eq!(strip_nulls(original), written, "{name}");
        }
        let exec = read_report(&fixture("inspec-1.49.2-reporter.json")).unwrap();
        assert_eq!(exec.version, "1.49.2");
        assert_eq!(exec.profiles[0].controls.len(), 4);
        assert_eq!(
            exec.profiles[0].controls[0].results[0].extra["resource_params"],
            ""
        );
    }

    fn strip_nulls(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => m
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
            serde_json::Value::Array(a) => a.into_iter().map(strip_nulls).collect(),
            other => other,
        }
    }

    #[test]
    fn what_is_not_a_report_is_refused() {
        assert!(read_report(b"").is_err());
        assert!(read_report(b"{\"version\":\"5\"}").is_err());
        let empty = br#"{"platform":{"name":"x","release":"1"},"profiles":[],"statistics":{},"version":"5"}"#;
        assert_eq!(
            read_report(empty).unwrap_err(),
            "the report holds no profile"
        );
        let bad_impact = String::from_utf8(fixture("inspec-5.18.14-minimal.json"))
            .unwrap()
            .replace("\"impact\": 0.7", "\"impact\": 7");
        assert!(
            read_report(bad_impact.as_bytes())
                .unwrap_err()
                .contains("impact")
        );
    }

    #[test]
    fn exit_codes_without_a_report_are_explained() {
        assert!(explain_exit("inspec", 172).contains("CHEF_LICENSE"));
        assert!(explain_exit("cinc-auditor", 1).contains("usage error"));
        assert!(explain_exit("cinc-auditor", 9).starts_with("cinc-auditor exited with 9"));
    }
}
