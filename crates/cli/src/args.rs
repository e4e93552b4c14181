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
    after_help = "Exit codes: 0 success, 2 bad input (nothing was done; one-line reason on stderr)."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print every Kubernetes object a scan would create, in order, without touching any cluster.
    Plan(Box<PlanArgs>),
    /// Work with scanner sidecars.
    Sidecar {
        #[command(subcommand)]
        command: SidecarCommand,
    },
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
    /// Scan workflow: standard, distroless, sidecar (auto is decided at scan time).
    #[arg(long, value_name = "MODE", default_value = "auto")]
    pub(crate) mode: ScanMode,
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
