//! Shared helpers of the cluster tests: a fake cluster with a target pod, sessions run
//! in-process with a scoped client from the fake, and the `keyhole` binary run against the fake
//! over HTTPS with a generated kubeconfig.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use jiff::Timestamp;
use keyhole_audit::{AuditLog, Event, Record};
use keyhole_cleanup::RetryPolicy;
use keyhole_cli::session::{Audit, Outcome, ScopedClients, SessionSpec, run_session};
use keyhole_core::{Expiry, Namespace, PodName, Run, RunId, ScanMode, ScanTarget, Ttl};
use keyhole_credentials::{ClusterEndpoint, ScopedToken};
use keyhole_testkit::{FakeCluster, HttpsServer, RecordedCall};
use secrecy::ExposeSecret as _;

/// The target namespace and pod of every cluster test.
pub(crate) const NS: &str = "prod";
pub(crate) const POD: &str = "web-0";

/// A fake cluster with `prod/web-0` running (container `app`).
pub(crate) fn cluster() -> FakeCluster {
    let c = FakeCluster::new();
    c.add_running_pod(NS, POD, &["app"]).unwrap();
    c
}

/// A fresh, empty directory under cargo's per-target scratch space.
pub(crate) fn scratch(name: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cluster-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Fast cleanup: few attempts, millisecond delays, a short call timeout (real time: the
/// in-process sessions wait on real child processes, which paused time cannot).
pub(crate) fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        first_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(10),
        call_timeout: Duration::from_millis(150),
    }
}

/// A run of `mode` against `prod/web-0`, issued now for 10 minutes.
pub(crate) fn run(mode: ScanMode) -> Run {
    let target = ScanTarget::pods(
        Namespace::new(NS).unwrap(),
        [PodName::new(POD).unwrap()],
        None,
    )
    .unwrap();
    let expiry = Expiry::new(Timestamp::now(), Ttl::default()).unwrap();
    Run::new(RunId::generate().unwrap(), target, mode, expiry).unwrap()
}

/// The endpoint written into the child's kubeconfig for in-process sessions (nothing listens
/// there: in-process children only read the file).
pub(crate) fn endpoint(cluster: &FakeCluster) -> ClusterEndpoint {
    let ca = base64::engine::general_purpose::STANDARD.encode(cluster.ca_pem());
    ClusterEndpoint::new("https://127.0.0.1:6443", &ca).unwrap()
}

/// Scoped clients straight from the fake, remembering each token handed out.
pub(crate) struct FakeScoped {
    pub(crate) cluster: FakeCluster,
    pub(crate) tokens: Mutex<Vec<String>>,
}

impl FakeScoped {
    pub(crate) fn new(cluster: &FakeCluster) -> Arc<Self> {
        Arc::new(Self {
            cluster: cluster.clone(),
            tokens: Mutex::new(Vec::new()),
        })
    }
}

impl ScopedClients for FakeScoped {
    fn client(&self, token: &ScopedToken) -> Result<kube::Client, keyhole_cli::SessionError> {
        let t = token.secret().expose_secret().to_string();
        self.tokens.lock().unwrap().push(t.clone());
        Ok(self.cluster.client_for_token(&t))
    }
}

/// One in-process session's result with its audit records.
pub(crate) struct Ran {
    pub(crate) outcome: Outcome,
    pub(crate) records: Vec<Record>,
    pub(crate) run: Run,
}

/// Runs `command` in an in-process session against `cluster` as `user` (the admin's client,
/// normally) with `scoped`, auditing to a fresh log that must verify.
pub(crate) async fn session_as(
    user: kube::Client,
    cluster: &FakeCluster,
    mode: ScanMode,
    command: &[&str],
    policy: RetryPolicy,
    scoped: Arc<dyn ScopedClients>,
) -> Ran {
    let dir = scratch("audit");
    let log_path = dir.join("audit.jsonl");
    let run = run(mode);
    let audit = Audit::new(AuditLog::open(&log_path).unwrap(), run.id().as_str());
    let spec = SessionSpec {
        run: run.clone(),
        cluster: endpoint(cluster),
        audiences: vec![],
        command: command.iter().map(OsString::from).collect(),
        work: None,
        policy,
    };
    let outcome = run_session(user, spec, scoped, audit)
        .await
        .expect("the session starts");
    let records = audit_records(&log_path);
    let _ = std::fs::remove_dir_all(&dir);
    Ran {
        outcome,
        records,
        run,
    }
}

/// [`session_as`] the admin with the fast policy and [`FakeScoped`].
pub(crate) async fn session(cluster: &FakeCluster, command: &[&str]) -> Ran {
    session_as(
        cluster.client_admin(),
        cluster,
        ScanMode::Standard,
        command,
        fast_policy(),
        FakeScoped::new(cluster),
    )
    .await
}

/// The records of a log, after checking its hash chain.
pub(crate) fn audit_records(path: &Path) -> Vec<Record> {
    keyhole_audit::verify(path).expect("the audit chain verifies");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Event names in order, e.g. `["run_started", "object_created", ...]`.
pub(crate) fn event_names(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            serde_json::to_value(&r.event).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// `Kind name` of every object the audit log says was created (`created`) or deleted.
pub(crate) fn audited_objects(records: &[Record], created: bool) -> Vec<String> {
    let mut v: Vec<String> = records
        .iter()
        .filter_map(|r| match (&r.event, created) {
            (Event::ObjectCreated(o), true) | (Event::ObjectDeleted(o), false) => {
                Some(format!("{} {}", o.kind, o.name))
            }
            _ => None,
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The records without the post-scan audit's, which follows `RunEnded` when the post-scan
/// audit ran (a scan through `keyhole scan`, not a bare session), and that record.
pub(crate) fn split_postscan(records: &[Record]) -> (&[Record], Option<&Event>) {
    match records.split_last() {
        Some((last, rest)) if matches!(last.event, Event::PostScanAudited { .. }) => {
            (rest, Some(&last.event))
        }
        _ => (records, None),
    }
}

/// The last record's event must be `RunEnded` (then, if it ran, the post-scan audit's) and the
/// one before `CleanupVerified` with nothing remaining; returns the recorded exit code and
/// outcome text.
pub(crate) fn clean_ending(records: &[Record]) -> (i32, String) {
    let (records, _) = split_postscan(records);
    let n = records.len();
    assert!(n >= 2, "{records:?}");
    match &records[n - 2].event {
        Event::CleanupVerified { remaining } => {
            assert!(remaining.is_empty(), "audit says left: {remaining:?}")
        }
        e => panic!("expected cleanup_verified, got {e:?}"),
    }
    match &records[n - 1].event {
        Event::RunEnded { exit_code, outcome } => (*exit_code, outcome.clone()),
        e => panic!("expected run_ended, got {e:?}"),
    }
}

/// `METHOD resource[/sub]` of each call, by identity kind (`user` / `scoped`).
pub(crate) fn call_shapes(calls: &[RecordedCall]) -> Vec<String> {
    calls
        .iter()
        .map(|c| {
            let who = match c.identity {
                keyhole_testkit::Identity::Admin => "user",
                keyhole_testkit::Identity::ServiceAccount { .. } => "scoped",
                _ => "other",
            };
            let parts: Vec<&str> = c.path.trim_matches('/').split('/').collect();
            // The resource is the segment after the namespace (or after the version).
            let rest: Vec<&str> = match parts.iter().position(|p| *p == "namespaces") {
                Some(i) if parts.len() > i + 2 => parts[i + 2..].to_vec(),
                _ => parts[parts.len().saturating_sub(1)..].to_vec(),
            };
            let resource = match rest.as_slice() {
                [r] | [r, _] => (*r).to_string(),
                [r, _, sub, ..] => format!("{r}/{sub}"),
                [] => String::new(),
            };
            format!("{who} {} {resource}", c.method)
        })
        .collect()
}

// ------------------------------------------------------------------ the binary over HTTPS

/// A fake served over HTTPS plus a kubeconfig file (admin identity) and an audit log path, all
/// in a scratch directory.
pub(crate) struct Served {
    pub(crate) cluster: FakeCluster,
    pub(crate) server: HttpsServer,
    pub(crate) dir: PathBuf,
    pub(crate) kubeconfig: PathBuf,
    pub(crate) audit: PathBuf,
}

impl Served {
    pub(crate) async fn new(name: &str) -> Self {
        Self::with(name, cluster(), |s| s.kubeconfig_yaml_admin()).await
    }

    /// With a kubeconfig text of the caller's making (for the TLS refusals).
    pub(crate) async fn with(
        name: &str,
        cluster: FakeCluster,
        kubeconfig: impl FnOnce(&ServedRef<'_>) -> String,
    ) -> Self {
        Self::with_server(
            name,
            cluster.clone(),
            cluster.serve_https().await.unwrap(),
            kubeconfig,
        )
    }

    pub(crate) fn with_server(
        name: &str,
        cluster: FakeCluster,
        server: HttpsServer,
        kubeconfig: impl FnOnce(&ServedRef<'_>) -> String,
    ) -> Self {
        let dir = scratch(name);
        let text = kubeconfig(&ServedRef {
            cluster: &cluster,
            server: &server,
        });
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, text).unwrap();
        Self {
            audit: dir.join("state/audit.jsonl"),
            cluster,
            server,
            dir,
            kubeconfig,
        }
    }

    /// `keyhole access web-0 -n prod --kubeconfig … --audit-log … -- COMMAND`, with piped stdio,
    /// HOME/TMPDIR/XDG_STATE_HOME inside the scratch directory, and `env` added.
    pub(crate) fn access(&self, command: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
        self.access_with(&[], command, env)
    }

    /// [`Served::access`] with `flags` added before `--`.
    pub(crate) fn access_with(
        &self,
        flags: &[&str],
        command: &[&str],
        env: &[(&str, &str)],
    ) -> tokio::process::Command {
        let mut args: Vec<&str> = vec![
            "access",
            POD,
            "-n",
            NS,
            "--kubeconfig",
            self.kubeconfig.to_str().unwrap(),
            "--audit-log",
            self.audit.to_str().unwrap(),
        ];
        args.extend_from_slice(flags);
        args.push("--");
        args.extend_from_slice(command);
        self.keyhole(&args, env)
    }

    /// `keyhole ARGS` with piped stdio and a private environment.
    /// `args` followed by this fake's user kubeconfig and audit log, as every `keyhole scan`
    /// of the tests passes them.
    pub(crate) fn as_user<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = args.to_vec();
        all.extend([
            "--kubeconfig",
            self.kubeconfig.to_str().unwrap(),
            "--audit-log",
            self.audit.to_str().unwrap(),
        ]);
        all
    }

    pub(crate) fn keyhole(&self, args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyhole"));
        cmd.args(args)
            .env_remove("KUBECONFIG")
            .env_remove("KEYHOLE_LOG")
            .env_remove("RUST_LOG")
            .env("HOME", &self.dir)
            .env("TMPDIR", &self.dir)
            .env("XDG_STATE_HOME", self.dir.join("state"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// `keyhole reap -n prod --expired-before TIME`; returns (exit code, stdout, stderr).
    pub(crate) async fn reap(&self, expired_before: Timestamp) -> (i32, String, String) {
        let t = expired_before.to_string();
        let out = self
            .keyhole(
                &[
                    "reap",
                    "-n",
                    NS,
                    "--kubeconfig",
                    self.kubeconfig.to_str().unwrap(),
                    "--expired-before",
                    &t,
                ],
                &[],
            )
            .output();
        let out = tokio::time::timeout(Duration::from_secs(30), out)
            .await
            .expect("keyhole reap ends")
            .unwrap();
        (
            out.status.code().expect("reap exits"),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a kubeconfig generator may look at.
pub(crate) struct ServedRef<'a> {
    pub(crate) cluster: &'a FakeCluster,
    pub(crate) server: &'a HttpsServer,
}

impl ServedRef<'_> {
    /// The admin (the user's own) kubeconfig for the served fake.
    pub(crate) fn kubeconfig_yaml_admin(&self) -> String {
        self.server.kubeconfig_yaml(&self.cluster.admin_token())
    }
}

/// What one finished process produced.
pub(crate) struct Finished {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Waits (bounded) for a spawned child and collects its output.
pub(crate) async fn finish(child: tokio::process::Child) -> Finished {
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("keyhole ends within 30 s")
        .unwrap();
    Finished {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Polls the fake (bounded) until it has received more than `index` calls: the call with that
/// index has arrived (and, with a hang fault, is now hanging).
pub(crate) async fn wait_for_call(cluster: &FakeCluster, index: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while cluster.calls().len() <= index {
        assert!(
            tokio::time::Instant::now() < deadline,
            "call {index} never arrived; calls: {:?}",
            call_shapes(&cluster.calls())
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Sends `signal` (e.g. `-INT`) to a process with kill(1).
pub(crate) fn kill(pid: u32, signal: &str) {
    let st = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill {signal} {pid}");
}
