//! The cluster commands: `keyhole access`, `keyhole reap`, and `keyhole audit verify`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use jiff::Timestamp;
use keyhole_audit::{AuditKey, AuditLog};
use keyhole_cleanup::{CleanupAction, ReapScope, RetryPolicy};
use keyhole_cli::session::{Audit, SessionSpec, TlsScopedClients, run_session};
use keyhole_core::{Expiry, PodName, Run, RunId, ScanTarget};
use keyhole_credentials::ClusterEndpoint;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::args::{AccessArgs, AuditKeyArgs, AuditVerifyArgs, KubeArgs, ReapArgs};
use crate::{Failure, Output};

/// Turns on diagnostics on stderr when `KEYHOLE_LOG` (an `EnvFilter` directive such as `debug`
/// or `kube=trace`) is set. Off by default: the commands' own output is the interface. What is
/// logged then is kube's request spans (method, URL, status) and errors; no request or response
/// body carries the scoped token through a log line (tests scan trace output for it).
///
/// `kube_client::client` is always capped at `error`: below that level it logs whole response
/// bodies (e.g. on a deserialization failure), and a TokenRequest response body is the token.
pub(crate) fn init_tracing() {
    let Ok(directives) = std::env::var("KEYHOLE_LOG") else {
        return;
    };
    match tracing_subscriber::EnvFilter::try_new(&directives) {
        Ok(filter) => {
            let filter = filter.add_directive(
                "kube_client::client=error"
                    .parse()
                    .expect("a valid static directive"),
            );
            // Fails only if a subscriber is already set, which then keeps logging.
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                // A copy is kept so the post-scan audit searches the log lines for the token.
                .with_writer(keyhole_cli::postscan::tee_stderr)
                .try_init();
        }
        Err(e) => eprintln!("keyhole: warning: ignoring KEYHOLE_LOG={directives:?}: {e}"),
    }
}

/// The cleanup and setup policy: the defaults, with the per-call timeout from
/// `KEYHOLE_API_TIMEOUT` (e.g. `500ms`, `3s`) for slow clusters, or for tests that make the
/// fake API server hang.
pub(crate) fn retry_policy() -> Result<RetryPolicy, Failure> {
    let mut policy = RetryPolicy::default();
    if let Ok(text) = std::env::var("KEYHOLE_API_TIMEOUT") {
        let timeout = keyhole_core::parse_duration(&text)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                Failure::bad_input(format!(
                    "KEYHOLE_API_TIMEOUT={text:?}: use a positive duration, e.g. 500ms or 3s"
                ))
            })?;
        policy.call_timeout = timeout;
    }
    Ok(policy)
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::scan(format!("cannot start the async runtime: {e}")))
}

/// The user's kubeconfig and the cluster endpoint the scoped client will trust.
pub(crate) struct UserConfig {
    kubeconfig: Kubeconfig,
    options: KubeConfigOptions,
    pub(crate) cluster: ClusterEndpoint,
    pub(crate) namespace: Option<String>,
}

pub(crate) fn load(k: &KubeArgs) -> Result<UserConfig, Failure> {
    let kubeconfig = match &k.kubeconfig {
        Some(p) => Kubeconfig::read_from(p),
        None => Kubeconfig::read(),
    }
    .map_err(|e| Failure::bad_input(format!("cannot read your kubeconfig: {e}")))?;
    let context_name = k
        .context
        .clone()
        .or_else(|| kubeconfig.current_context.clone())
        .ok_or_else(|| {
            Failure::bad_input("your kubeconfig has no current context: pass --context")
        })?;
    let context = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.clone())
        .ok_or_else(|| {
            Failure::bad_input(format!(
                "context {context_name:?} is not in your kubeconfig"
            ))
        })?;
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.clone())
        .ok_or_else(|| {
            Failure::bad_input(format!(
                "cluster {:?} is not in your kubeconfig",
                context.cluster
            ))
        })?;
    if cluster.insecure_skip_tls_verify == Some(true) {
        return Err(Failure::bad_input(
            "your kubeconfig sets insecure-skip-tls-verify: keyhole never talks to a cluster it cannot verify; set certificate-authority-data instead",
        ));
    }
    let ca = match (
        &cluster.certificate_authority_data,
        &cluster.certificate_authority,
    ) {
        (Some(data), _) => data.clone(),
        (None, Some(file)) => {
            let pem = std::fs::read(file).map_err(|e| {
                Failure::bad_input(format!("cannot read certificate-authority {file}: {e}"))
            })?;
            base64::engine::general_purpose::STANDARD.encode(pem)
        }
        (None, None) => String::new(),
    };
    let server = cluster.server.clone().unwrap_or_default();
    let endpoint = ClusterEndpoint::new(&server, &ca).map_err(Failure::bad_input)?;
    Ok(UserConfig {
        options: KubeConfigOptions {
            context: Some(context_name),
            ..KubeConfigOptions::default()
        },
        namespace: context.namespace.clone(),
        kubeconfig,
        cluster: endpoint,
    })
}

pub(crate) async fn user_client(u: &UserConfig) -> Result<kube::Client, Failure> {
    let config = kube::Config::from_custom_kubeconfig(u.kubeconfig.clone(), &u.options)
        .await
        .map_err(|e| Failure::bad_input(format!("cannot use your kubeconfig: {e}")))?;
    kube::Client::try_from(config).map_err(|e| Failure::scan(format!("cannot build a client: {e}")))
}

fn default_audit_log() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("keyhole/audit.jsonl")
}

/// The audit key named by `--audit-key-file`, if any (refused when others may read it).
fn audit_key(a: &AuditKeyArgs) -> Result<Option<AuditKey>, Failure> {
    a.audit_key_file
        .as_deref()
        .map(AuditKey::from_file)
        .transpose()
        .map_err(Failure::bad_input)
}

pub(crate) fn open_audit(
    path: Option<&Path>,
    key: &AuditKeyArgs,
) -> Result<(AuditLog, PathBuf), Failure> {
    let key = audit_key(key)?;
    let path = path
        .map(Path::to_path_buf)
        .unwrap_or_else(default_audit_log);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Failure::bad_input(format!("cannot create {}: {e}", dir.display())))?;
    }
    // Fail closed: no audit trail, no access.
    let log = AuditLog::open_with(&path, key).map_err(Failure::bad_input)?;
    Ok((log, path))
}

pub(crate) fn access(a: &AccessArgs) -> Result<Output, Failure> {
    init_tracing();
    let policy = retry_policy()?;
    if !a.mode.is_concrete() {
        return Err(Failure::bad_input(
            "--mode auto is decided by `keyhole scan`; for access choose standard, distroless or sidecar",
        ));
    }
    let user = load(&a.kube)?;
    let ns = match (&a.namespace, &user.namespace) {
        (Some(n), _) => n.clone(),
        (None, Some(n)) => keyhole_core::Namespace::new(n.clone()).map_err(Failure::bad_input)?,
        (None, None) => keyhole_core::Namespace::new("default").map_err(Failure::bad_input)?,
    };
    let pods = a
        .targets
        .iter()
        .map(|t| PodName::new(t.strip_prefix("pod/").unwrap_or(t)).map_err(Failure::bad_input))
        .collect::<Result<Vec<_>, _>>()?;
    let target = ScanTarget::pods(ns.clone(), pods, None).map_err(Failure::bad_input)?;
    let expiry = Expiry::new(Timestamp::now(), a.ttl).map_err(Failure::bad_input)?;
    let id = RunId::generate().map_err(|e| Failure::scan(e.to_string()))?;
    let run = Run::new(id, target, a.mode, expiry).map_err(Failure::bad_input)?;
    let (log, log_path) = open_audit(a.audit_log.as_deref(), &a.audit_key)?;
    keyhole_credentials::harden_process().map_err(|e| Failure::scan(e.to_string()))?;
    let audit = Audit::new(log, run.id().as_str());
    let rt = runtime()?;
    let outcome = rt.block_on(async {
        let client = user_client(&user).await?;
        let spec = SessionSpec {
            run: run.clone(),
            cluster: user.cluster.clone(),
            audiences: a.audiences.clone(),
            command: a.command.clone(),
            work: None,
            policy,
        };
        let scoped = Arc::new(TlsScopedClients {
            cluster: user.cluster.clone(),
            namespace: ns.to_string(),
        });
        run_session(client, spec, scoped, audit)
            .await
            .map_err(Failure::scan)
    })?;
    let mut warnings: Vec<String> = outcome
        .reaped
        .iter()
        .map(|o| format!("reaped {o} left by an earlier run"))
        .chain(outcome.unlisted.iter().cloned())
        .collect();
    if let Some(e) = &outcome.error {
        warnings.push(format!("run {} failed: {e}", run.id()));
    }
    for action in &outcome.cleanup.actions {
        if matches!(
            action,
            CleanupAction::StillPresent { .. } | CleanupAction::DeleteFailed { .. }
        ) {
            warnings.push(action.to_string());
        }
    }
    let summary = format!(
        "run {} ended ({:?}); {} object(s) created, cleanup {}; audit log {}",
        run.id(),
        outcome.ending,
        outcome
            .cleanup
            .actions
            .iter()
            .filter(|a| matches!(a, CleanupAction::VerifiedGone(_)))
            .count(),
        if outcome.cleanup.is_clean() {
            "verified complete"
        } else {
            "INCOMPLETE: run `keyhole reap` once the API server answers"
        },
        log_path.display()
    );
    warnings.push(summary);
    Ok(Output {
        stdout: String::new(),
        warnings,
        exit: outcome.exit_code,
    })
}

pub(crate) fn reap_cmd(a: &ReapArgs) -> Result<Output, Failure> {
    init_tracing();
    let policy = retry_policy()?;
    let user = load(&a.kube)?;
    let scope = match (&a.namespace, a.all_namespaces) {
        (_, true) => ReapScope::All,
        (Some(n), false) => ReapScope::Namespace(n.to_string()),
        (None, false) => {
            ReapScope::Namespace(user.namespace.clone().unwrap_or_else(|| "default".into()))
        }
    };
    let cutoff = a.expired_before.unwrap_or_else(Timestamp::now);
    let rt = runtime()?;
    let report = rt.block_on(async {
        let client = user_client(&user).await?;
        Ok::<_, Failure>(keyhole_cleanup::reap(&client, &scope, cutoff, a.dry_run, &policy).await)
    })?;
    let mut out = String::new();
    for (o, why) in &report.selected {
        out.push_str(&format!(
            "{} {o}: {why}\n",
            if a.dry_run { "would delete" } else { "delete" }
        ));
    }
    for action in &report.actions {
        out.push_str(&format!("{action}\n"));
    }
    out.push_str(&format!(
        "{} selected, {} kept, {} remaining\n",
        report.selected.len(),
        report.kept,
        report.remaining.len()
    ));
    // A kind that could not be listed may hold leftovers nobody saw: as incomplete as an object
    // that would not go.
    Ok(Output {
        stdout: out,
        warnings: report.unlisted.iter().map(ToString::to_string).collect(),
        exit: if report.remaining.is_empty() && report.is_complete() {
            0
        } else {
            keyhole_cli::session::EXIT_CLEANUP_INCOMPLETE
        },
    })
}

pub(crate) fn audit_verify(a: &AuditVerifyArgs) -> Result<Output, Failure> {
    let key = audit_key(&a.audit_key)?;
    let chain = if key.is_some() {
        "HMAC chain intact (no rewrite without the key)"
    } else {
        "hash chain intact (no partial edit; a whole-file rewrite shows only against a head kept elsewhere)"
    };
    match keyhole_audit::verify_with(&a.log, key.as_ref()) {
        Ok(r) => Ok(Output {
            stdout: format!(
                "{}: {} records, {chain}, head {}\n",
                a.log.display(),
                r.records,
                r.head
            ),
            warnings: Vec::new(),
            exit: 0,
        }),
        Err(e @ keyhole_audit::AuditError::Io { .. }) => Err(Failure::bad_input(e)),
        Err(e) => Err(Failure {
            exit: 1,
            message: format!("{e}: the log was tampered with"),
        }),
    }
}
