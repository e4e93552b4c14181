//! The checks: their ids (as written in a policy and in the HDF profile), groups, severities
//! and descriptions.

use serde::{Deserialize, Serialize};

/// One pre-scan check. Its kebab-case name is its id in the policy file and the HDF control id
/// (prefixed with `precheck-`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckId {
    /// The pod exists and has the named container. Always aborts: there is nothing to scan.
    TargetExists,
    /// The pod's phase is `Running`.
    TargetRunning,
    /// The container is running and ready.
    ContainerReady,
    /// The container has not restarted more than the policy allows and is not waiting to.
    ContainerRestarts,
    /// The running image (`imageID`) is the one the spec pins, or one the policy allows.
    ImageDigestMatch,
    /// The container is not privileged.
    Privileged,
    /// The container cannot gain more privileges than its parent (`allowPrivilegeEscalation`).
    PrivilegeEscalation,
    /// The container adds no capability from the dangerous list.
    DangerousCapabilities,
    /// The pod does not share the host's PID namespace.
    HostPid,
    /// The pod does not share the host's network namespace.
    HostNetwork,
    /// The pod does not share the host's IPC namespace.
    HostIpc,
    /// The pod mounts no `hostPath` volume.
    HostPath,
    /// The container does not (or may not) run as uid 0.
    RunAsRoot,
    /// The container's `/proc` is masked (`procMount` is not `Unmasked`).
    ProcMount,
    /// The container runs under a seccomp profile.
    SeccompUnconfined,
    /// The container runs under an AppArmor profile.
    ApparmorUnconfined,
    /// The image comes from an allowed registry and repository.
    ImageSource,
    /// The image is referenced by digest, not by a moving tag such as `latest`.
    ImagePinned,
    /// Every listening socket is on an allowed port.
    NetworkListeners,
    /// Every established connection's peer is in an allowed CIDR.
    NetworkPeers,
}

/// The family a check belongs to (the specification's four pre-scan steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckGroup {
    /// Target integrity.
    Integrity,
    /// Privileged status.
    Privilege,
    /// Image source.
    Image,
    /// Network connections.
    Network,
}

/// How bad a failure of the check is; sets the HDF control's impact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Impact 0.3.
    Low,
    /// Impact 0.5.
    Medium,
    /// Impact 0.7.
    High,
    /// Impact 0.9.
    Critical,
}

impl Severity {
    /// The HDF impact Heimdall maps back to this severity.
    #[must_use]
    pub fn impact(self) -> f64 {
        match self {
            Self::Low => 0.3,
            Self::Medium => 0.5,
            Self::High => 0.7,
            Self::Critical => 0.9,
        }
    }

    /// The lowercase name, as in the HDF `severity` tag.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

impl CheckId {
    /// Every check, in the order the verdict and the HDF profile list them.
    pub const ALL: [Self; 20] = [
        Self::TargetExists,
        Self::TargetRunning,
        Self::ContainerReady,
        Self::ContainerRestarts,
        Self::ImageDigestMatch,
        Self::Privileged,
        Self::PrivilegeEscalation,
        Self::DangerousCapabilities,
        Self::HostPid,
        Self::HostNetwork,
        Self::HostIpc,
        Self::HostPath,
        Self::RunAsRoot,
        Self::ProcMount,
        Self::SeccompUnconfined,
        Self::ApparmorUnconfined,
        Self::ImageSource,
        Self::ImagePinned,
        Self::NetworkListeners,
        Self::NetworkPeers,
    ];

    /// The id as written in a policy file.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        self.meta().0
    }

    /// The check's group.
    #[must_use]
    pub fn group(self) -> CheckGroup {
        self.meta().1
    }

    /// The check's severity.
    #[must_use]
    pub fn severity(self) -> Severity {
        self.meta().2
    }

    /// One sentence saying what passing the check means.
    #[must_use]
    pub fn title(self) -> &'static str {
        self.meta().3
    }

    fn meta(self) -> (&'static str, CheckGroup, Severity, &'static str) {
        use CheckGroup::{Image, Integrity, Network, Privilege};
        use Severity::{Critical, High, Medium};
        match self {
            Self::TargetExists => (
                "target-exists",
                Integrity,
                Critical,
                "The target pod exists and has the container",
            ),
            Self::TargetRunning => (
                "target-running",
                Integrity,
                High,
                "The target pod is Running",
            ),
            Self::ContainerReady => (
                "container-ready",
                Integrity,
                High,
                "The target container is running and ready",
            ),
            Self::ContainerRestarts => (
                "container-restarts",
                Integrity,
                Medium,
                "The target container is not restarting",
            ),
            Self::ImageDigestMatch => (
                "image-digest-match",
                Integrity,
                High,
                "The running image digest is the pinned or an allowed one",
            ),
            Self::Privileged => (
                "privileged",
                Privilege,
                Critical,
                "The container is not privileged",
            ),
            Self::PrivilegeEscalation => (
                "privilege-escalation",
                Privilege,
                Medium,
                "The container disallows privilege escalation",
            ),
            Self::DangerousCapabilities => (
                "dangerous-capabilities",
                Privilege,
                High,
                "The container adds no dangerous capability",
            ),
            Self::HostPid => (
                "host-pid",
                Privilege,
                Critical,
                "The pod does not share the host's PID namespace",
            ),
            Self::HostNetwork => (
                "host-network",
                Privilege,
                High,
                "The pod does not share the host's network namespace",
            ),
            Self::HostIpc => (
                "host-ipc",
                Privilege,
                High,
                "The pod does not share the host's IPC namespace",
            ),
            Self::HostPath => (
                "host-path",
                Privilege,
                High,
                "The pod mounts no hostPath volume",
            ),
            Self::RunAsRoot => (
                "run-as-root",
                Privilege,
                Medium,
                "The container cannot run as root",
            ),
            Self::ProcMount => (
                "proc-mount",
                Privilege,
                High,
                "The container's /proc is masked",
            ),
            Self::SeccompUnconfined => (
                "seccomp-unconfined",
                Privilege,
                Medium,
                "The container runs under a seccomp profile",
            ),
            Self::ApparmorUnconfined => (
                "apparmor-unconfined",
                Privilege,
                Medium,
                "The container runs under an AppArmor profile",
            ),
            Self::ImageSource => (
                "image-source",
                Image,
                High,
                "The image comes from an allowed registry and repository",
            ),
            Self::ImagePinned => (
                "image-pinned",
                Image,
                Medium,
                "The image is referenced by digest, not by a moving tag",
            ),
            Self::NetworkListeners => (
                "network-listeners",
                Network,
                Medium,
                "Every listening socket is on an allowed port",
            ),
            Self::NetworkPeers => (
                "network-peers",
                Network,
                Medium,
                "Every established connection's peer is in an allowed CIDR",
            ),
        }
    }
}

impl std::fmt::Display for CheckId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
