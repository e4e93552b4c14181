//! The command line, declared with clap.

use clap::{Args, Parser, Subcommand, ValueEnum};
use keyhole_core::{ContainerName, Namespace, RunId, ScanMode, Ttl};
use keyhole_netpolicy::ApiEndpoint;
use keyhole_scanners::ImageRef;

/// Keyhole scans containers in Kubernetes for compliance while holding the least access the
/// scan needs, for the shortest time, and leaving nothing behind.
#[derive(Debug, Parser)]
#[command(
    name = "keyhole",
    version,
    after_help = "Exit codes: 0 success, 2 bad input (nothing was done; one-line reason on stderr), 3 error while acting; `keyhole access` documents its own."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Scan pods in a cluster (TARGET… or -l SELECTOR, with scoped, verified, time-limited
    /// access that is deleted afterwards), a local root filesystem (--root DIR) or a running
    /// process (--pid PID) with the native engine. Exit codes: 0 pass, 1 threshold not met,
    /// 2 bad input, 3 scan error, 4 cleanup incomplete (or an object the post-scan audit found),
    /// 5 pre-scan verification aborted (--policy), 6 another post-scan audit finding (a token
    /// artifact, the target changed), 124 access expired, 70 internal error.
    Scan(Box<ScanArgs>),
    /// Print every Kubernetes object a scan would create, in order, without touching any cluster.
    Plan(Box<PlanArgs>),
    /// Work with scanner sidecars.
    Sidecar {
        #[command(subcommand)]
        command: SidecarCommand,
    },
    /// Run COMMAND with a scoped, time-limited kubeconfig for the target pods, then delete every
    /// object created and verify it is gone. Exit code: COMMAND's, or 3 when setup or the
    /// least-privilege check failed (COMMAND did not run), 4 when cleanup is incomplete,
    /// 130/143/129 after SIGINT/SIGTERM/SIGHUP, 124 when the access expired first, 70 on an
    /// internal error. Environment: KEYHOLE_LOG (diagnostics filter), KEYHOLE_API_TIMEOUT.
    Access(Box<AccessArgs>),
    /// Delete keyhole-managed objects whose expires-at passed, and orphans of vanished runs.
    /// Exit code 4 when an object would not go, or a kind could not be listed (a warning names
    /// it: its leftovers were not seen).
    Reap(ReapArgs),
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check that no record of an audit log was edited, removed or reordered (exit 1 if so).
    /// Without a key this catches edits by someone who did not rewrite the whole file; with the
    /// log's --audit-key-file, any rewrite by someone without the key.
    Verify(AuditVerifyArgs),
}

/// Which cluster, from the user's own kubeconfig.
#[derive(Debug, Args)]
pub(crate) struct KubeArgs {
    /// Kubeconfig to read (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub(crate) kubeconfig: Option<std::path::PathBuf>,
    /// Context to use (default: the current context).
    #[arg(long, value_name = "NAME")]
    pub(crate) context: Option<String>,
}

/// The optional key of a keyed (HMAC) audit chain, for every command that writes or verifies
/// the audit log.
#[derive(Debug, Args)]
pub(crate) struct AuditKeyArgs {
    /// Key file (at least 32 bytes, mode 0600) making the audit log an HMAC chain that nobody
    /// without the key can rewrite; a log must always be written and verified with the same key.
    #[arg(long, value_name = "FILE")]
    pub(crate) audit_key_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct AccessArgs {
    /// Target pods: NAME or pod/NAME, one or more in the same namespace.
    #[arg(value_name = "TARGET", required = true, num_args = 1..)]
    pub(crate) targets: Vec<String>,
    /// Namespace of the target pods (default: the context's, else default).
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub(crate) namespace: Option<Namespace>,
    /// Which access to grant: standard (exec), distroless (ephemeral containers), sidecar (logs).
    #[arg(long, value_name = "MODE", default_value = "standard")]
    pub(crate) mode: ScanMode,
    /// How long the access may live (10m to 24h).
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    pub(crate) ttl: Ttl,
    /// Token audience (repeatable; default: the API server's own).
    #[arg(long = "audience", value_name = "AUD")]
    pub(crate) audiences: Vec<String>,
    /// Audit log (default: $XDG_STATE_HOME/keyhole/audit.jsonl).
    #[arg(long, value_name = "FILE")]
    pub(crate) audit_log: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub(crate) audit_key: AuditKeyArgs,
    #[command(flatten)]
    pub(crate) kube: KubeArgs,
    /// The command to run, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub(crate) command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub(crate) struct ReapArgs {
    /// Namespace to clean (default: the context's, else default).
    #[arg(
        short = 'n',
        long = "namespace",
        value_name = "NS",
        conflicts_with = "all_namespaces"
    )]
    pub(crate) namespace: Option<Namespace>,
    /// Clean every namespace.
    #[arg(short = 'A', long)]
    pub(crate) all_namespaces: bool,
    /// Only print what would be deleted.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Treat objects expiring before TIME (RFC 3339) as expired (default: now).
    #[arg(long, value_name = "TIME")]
    pub(crate) expired_before: Option<jiff::Timestamp>,
    #[command(flatten)]
    pub(crate) kube: KubeArgs,
}

#[derive(Debug, Args)]
pub(crate) struct AuditVerifyArgs {
    /// The audit log.
    #[arg(value_name = "LOG")]
    pub(crate) log: std::path::PathBuf,
    #[command(flatten)]
    pub(crate) audit_key: AuditKeyArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SidecarCommand {
    /// Add a hardened scanner sidecar (and shareProcessNamespace) to a Pod, Deployment,
    /// StatefulSet, DaemonSet, ReplicaSet, Job or CronJob manifest; everything else is kept.
    Inject(InjectArgs),
}

/// Output formats of `plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// A multi-document YAML stream, each document headed by the API call that sends it.
    Yaml,
    /// One JSON document listing the API calls with their bodies.
    Json,
}

/// Output formats of `scan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ScanFormat {
    /// Counts by status and severity, failed controls with what failed, the threshold verdict.
    Summary,
    /// The HDF document (to stdout unless --out is given).
    Json,
    /// A SARIF 2.1.0 log for code-scanning dashboards (to stdout): one document for all the
    /// targets (several pods, a fleet).
    Sarif,
}

/// Formats of `scan --report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReportFormat {
    /// Markdown (CommonMark with GitHub tables).
    Md,
    /// The report as one JSON document.
    Json,
    /// One self-contained HTML page (inline CSS, no script, no external asset).
    Html,
    /// SARIF 2.1.0.
    Sarif,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("scan_target").required(true).args(["targets", "selector", "root", "pid"])))]
pub(crate) struct ScanArgs {
    /// Target pods in a cluster: NAME or pod/NAME, one or more in the same namespace.
    #[arg(value_name = "TARGET", conflicts_with_all = ["root", "pid", "selector"])]
    pub(crate) targets: Vec<String>,
    /// Scan the pods matching this label selector (k=v[,k=v]), resolved with your credentials
    /// at scan time and pinned by name in the scoped Role.
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR", value_parser = parse_selector, conflicts_with_all = ["root", "pid"])]
    pub(crate) selector: Option<keyhole_core::LabelSelector>,
    /// Namespace of the target pods (default: the context's, else default).
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub(crate) namespace: Option<Namespace>,
    /// Container to scan (default: the pod's default container, or its only one).
    #[arg(short = 'c', long = "container", value_name = "CONTAINER")]
    pub(crate) container: Option<ContainerName>,
    /// Scan workflow: auto (standard when the target has a shell), standard (one exec
    /// session), distroless, sidecar.
    #[arg(long, value_name = "MODE", default_value = "auto")]
    pub(crate) mode: ScanMode,
    /// How long the scan's access may live (10m to 24h).
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    pub(crate) ttl: Ttl,
    /// Print what the scan would do and stop (nothing is sent to the cluster).
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Distroless: the agent image for the ephemeral container (pin it with @sha256:...).
    #[arg(long, value_name = "IMAGE", default_value = keyhole_scanners::DEFAULT_SCANNER_IMAGE, value_parser = parse_image)]
    pub(crate) image: ImageRef,
    /// Distroless: the target's UID when its pod spec does not set runAsUser (without it, a
    /// first short probe container reads /proc/1/status; it stays in the pod spec too).
    #[arg(long, value_name = "N")]
    pub(crate) target_uid: Option<u32>,
    /// Distroless: the target's GID when its pod spec does not set runAsGroup.
    #[arg(long, value_name = "N")]
    pub(crate) target_gid: Option<u32>,
    /// Distroless: scan a target running as root (the scanner then runs as root with exactly
    /// the target's capability set, never more).
    #[arg(long)]
    pub(crate) scanner_as_target_root: bool,
    /// Distroless: scan a pod whose containers already share one PID namespace.
    #[arg(long)]
    pub(crate) allow_shared_pid: bool,
    /// Sidecar: refuse facts gathered longer ago than this (e.g. 90m, 2h).
    #[arg(long, value_name = "DURATION", default_value = "2h", value_parser = parse_age)]
    pub(crate) max_age: std::time::Duration,
    /// Token audience (repeatable; default: the API server's own).
    #[arg(long = "audience", value_name = "AUD")]
    pub(crate) audiences: Vec<String>,
    /// Audit log (default: $XDG_STATE_HOME/keyhole/audit.jsonl).
    #[arg(long, value_name = "FILE")]
    pub(crate) audit_log: Option<std::path::PathBuf>,
    /// Sidecar: scan IMAGE before it is deployed — create the scan pod TARGET (IMAGE as
    /// container `target`, running as --target-uid, beside the scanner sidecar) behind a
    /// default-deny NetworkPolicy, read its facts from the sidecar's log, delete both.
    #[arg(long, value_name = "IMAGE", value_parser = parse_image, conflicts_with_all = ["root", "pid", "selector"])]
    pub(crate) launch: Option<ImageRef>,
    #[command(flatten)]
    pub(crate) audit_key: AuditKeyArgs,
    #[command(flatten)]
    pub(crate) kube: KubeArgs,
    /// Scan this directory as a root filesystem (an unpacked image, a mounted snapshot, `/`).
    #[arg(long, value_name = "DIR", conflicts_with = "pid")]
    pub(crate) root: Option<std::path::PathBuf>,
    /// Scan the root filesystem and process facts of this running process (/proc/PID/root).
    #[arg(long, value_name = "PID")]
    pub(crate) pid: Option<u32>,
    /// Profile: builtin:NAME or a profile YAML file.
    #[arg(long, value_name = "PROFILE", default_value = keyhole_engine::DEFAULT_PROFILE)]
    pub(crate) profile: String,
    /// Override a profile input (repeatable): NAME=VALUE.
    #[arg(long = "input", value_name = "NAME=VALUE")]
    pub(crate) inputs: Vec<String>,
    /// Waivers file (control id, justification, expiry).
    #[arg(long, value_name = "FILE")]
    pub(crate) waivers: Option<std::path::PathBuf>,
    /// SAF threshold file; exit 1 when the results do not meet it.
    #[arg(long, value_name = "FILE")]
    pub(crate) threshold: Option<std::path::PathBuf>,
    /// Write the HDF results to FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<std::path::PathBuf>,
    /// What to print.
    #[arg(long, value_name = "FORMAT", default_value = "summary")]
    pub(crate) format: ScanFormat,
    /// Cluster scans: the pre-scan verification policy (abort, warn or ignore per check;
    /// docs/precheck.md). Default: the built-in policy. An abort exits 5 and creates nothing.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["root", "pid"])]
    pub(crate) policy: Option<std::path::PathBuf>,
    /// Write a security report to FILE: Markdown (.md), JSON (.json), a self-contained HTML
    /// page (.html) or SARIF (.sarif), by extension unless --report-format says.
    #[arg(long, value_name = "FILE")]
    pub(crate) report: Option<std::path::PathBuf>,
    /// The format of --report, whatever FILE's extension.
    #[arg(long, value_name = "FORMAT", requires = "report")]
    pub(crate) report_format: Option<ReportFormat>,
    /// Which engine judges a pod: native (keyhole's engine; facts gathered with the scoped
    /// access, judged locally) or cinc (`cinc-auditor`, else `inspec`, runs the InSpec profile
    /// directory or archive given as --profile over `k8s-container://` with a scoped kubeconfig
    /// and standard-mode access; one pod; its JSON report is the HDF).
    #[arg(long, value_name = "SCANNER", default_value = "native")]
    pub(crate) scanner: Scanner,
    /// With -l: resolve the selector in every namespace (with your credentials, at scan time);
    /// each namespace gets its own session whose Role pins that namespace's pods.
    #[arg(short = 'A', long, requires = "selector", conflicts_with = "namespace")]
    pub(crate) all_namespaces: bool,
    /// With -l: at most N pods scanned, and N sessions open, at once (1 to 64; default 4).
    #[arg(long, value_name = "N", requires = "selector", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub(crate) concurrency: Option<u16>,
    /// With -l: no progress bar (it is drawn only when stderr is a terminal anyway).
    #[arg(long)]
    pub(crate) quiet: bool,
    /// With -l: write the fleet report (every target's verdict, counts and exit code, every
    /// session's teardown) to FILE: JSON when FILE ends in .json, else Markdown.
    #[arg(long, value_name = "FILE", requires = "selector")]
    pub(crate) fleet_report: Option<std::path::PathBuf>,
}

/// The engines `keyhole scan` can judge a pod with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scanner {
    /// keyhole's own engine.
    Native,
    /// CINC Auditor (or Chef InSpec) with an InSpec profile.
    Cinc,
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    /// Target pods: NAME or pod/NAME, one or more in the same namespace.
    #[arg(value_name = "TARGET", required = true)]
    pub(crate) targets: Vec<String>,
    /// Namespace of the target pods.
    #[arg(
        short = 'n',
        long = "namespace",
        value_name = "NS",
        default_value = "default"
    )]
    pub(crate) namespace: Namespace,
    /// Container to scan (required for distroless and for sidecar --launch).
    #[arg(short = 'c', long = "container", value_name = "CONTAINER")]
    pub(crate) container: Option<ContainerName>,
    /// Scan workflow, required: standard, distroless or sidecar. There is no default: `auto`
    /// is decided by looking at the live pod, which `plan` never does.
    #[arg(long, value_name = "MODE")]
    pub(crate) mode: Option<ScanMode>,
    /// How long the access may live (10m to 24h); also the token lifetime.
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    pub(crate) ttl: Ttl,
    /// UID of the target container's process: debug and sidecar containers run as it, with no
    /// capabilities (reading /proc/PID/root needs the same UID).
    #[arg(long, value_name = "N")]
    pub(crate) target_uid: Option<u32>,
    /// GID of the target container's process.
    #[arg(long, value_name = "N")]
    pub(crate) target_gid: Option<u32>,
    /// Scanner image for debug and sidecar containers (pin it with @sha256:...).
    #[arg(long, value_name = "IMAGE", default_value = keyhole_scanners::DEFAULT_SCANNER_IMAGE, value_parser = parse_image)]
    pub(crate) image: ImageRef,
    /// Sidecar mode: launch a scan pod named TARGET running IMAGE beside the scanner sidecar,
    /// isolated by a NetworkPolicy (instead of scanning a pod already carrying the sidecar).
    #[arg(long, value_name = "IMAGE", value_parser = parse_image)]
    pub(crate) launch: Option<ImageRef>,
    /// API server address for the scanner pods' only egress, as CIDR:PORT; also emits a
    /// NetworkPolicy for keyhole running in-cluster (its pod must carry the run labels).
    #[arg(long, value_name = "CIDR:PORT", value_parser = parse_endpoint)]
    pub(crate) api_server: Option<ApiEndpoint>,
    /// Also allow DNS egress to kube-dns (only needed when the API server is reached by name).
    #[arg(long)]
    pub(crate) allow_dns: bool,
    /// Token audience (repeatable; default: the API server's own).
    #[arg(long = "audience", value_name = "AUD")]
    pub(crate) audiences: Vec<String>,
    /// Use this run id instead of a random one (e.g. to label an in-cluster keyhole Job's pod).
    #[arg(long, value_name = "ID")]
    pub(crate) run_id: Option<RunId>,
    /// Issue time to plan for, RFC 3339 (default: now); makes the output reproducible.
    #[arg(long, value_name = "TIME", hide = true)]
    pub(crate) issued_at: Option<jiff::Timestamp>,
    /// Output format.
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FORMAT",
        default_value = "yaml"
    )]
    pub(crate) format: Format,
    /// The profile the scan will use (builtin:NAME or a profile YAML file): the distroless
    /// debug container carries its fact plan.
    #[arg(long, value_name = "PROFILE", default_value = keyhole_engine::DEFAULT_PROFILE)]
    pub(crate) profile: String,
    /// Override a profile input (repeatable): NAME=VALUE, as for `keyhole scan`.
    #[arg(long = "input", value_name = "NAME=VALUE")]
    pub(crate) inputs: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct InjectArgs {
    /// Manifest to read ("-" or nothing for stdin).
    #[arg(value_name = "FILE")]
    pub(crate) file: Option<std::path::PathBuf>,
    /// Container to scan (default: the only container).
    #[arg(short = 'c', long = "container", value_name = "CONTAINER")]
    pub(crate) container: Option<ContainerName>,
    /// UID of the target container's process (default: its securityContext.runAsUser).
    #[arg(long, value_name = "N")]
    pub(crate) target_uid: Option<u32>,
    /// GID of the target container's process (default: its securityContext.runAsGroup).
    #[arg(long, value_name = "N")]
    pub(crate) target_gid: Option<u32>,
    /// Scanner image (pin it with @sha256:...).
    #[arg(long, value_name = "IMAGE", default_value = keyhole_scanners::DEFAULT_SCANNER_IMAGE, value_parser = parse_image)]
    pub(crate) image: ImageRef,
    /// Upper bound of one scan inside the sidecar.
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    pub(crate) time_limit: Ttl,
}

fn parse_endpoint(s: &str) -> Result<ApiEndpoint, String> {
    ApiEndpoint::parse(s).map_err(|e| e.to_string())
}

fn parse_image(s: &str) -> Result<ImageRef, String> {
    ImageRef::parse(s).map_err(|e| e.to_string())
}

fn parse_selector(s: &str) -> Result<keyhole_core::LabelSelector, String> {
    keyhole_core::LabelSelector::parse(s).map_err(|e| e.to_string())
}

fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    let (digits, unit) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        _ => (s, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|n| *n > 0)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("{s:?}: expected a duration like 90s, 30m or 2h"))
}
