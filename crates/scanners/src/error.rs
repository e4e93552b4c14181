//! The one error type of `keyhole-scanners`.

/// Everything that stops Keyhole from building a scanner container or injecting a sidecar.
///
/// Messages are one line: they say what is wrong (naming the document, kind and object for
/// manifest errors) and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScannerError {
    /// An image reference that does not follow `[registry[:port]/]path[:tag][@sha256:<hex>]`.
    #[error("invalid image reference {value:?}: {reason}")]
    InvalidImage {
        /// The rejected reference.
        value: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// An image reference that does not pin what runs (no tag and no digest, or `:latest`
    /// without a digest).
    #[error(
        "image {value:?} is not pinned ({reason}): give an exact version tag or, better, @sha256:<digest>, so the image that runs is the one that was vetted"
    )]
    UnpinnedImage {
        /// The rejected reference.
        value: String,
        /// What is missing.
        reason: String,
    },
    /// A sidecar time limit of zero seconds.
    #[error("the sidecar time limit must be at least 1 second; give a positive --time-limit")]
    InvalidTimeLimit,
    /// A run that does not name exactly one pod where one pod is built.
    #[error(
        "a sidecar scan pod needs a run with exactly one target pod, this run has {count}; launch one image per run"
    )]
    PodCount {
        /// How many pods the run names.
        count: usize,
    },
    /// A value that cannot be written as YAML (a map with non-string keys).
    #[error("cannot write the value as YAML: {reason}; use string map keys")]
    Serialize {
        /// The serializer's message.
        reason: String,
    },
    /// The manifest is not YAML.
    #[error("the manifest is not valid YAML: {reason}; fix the syntax there")]
    NotYaml {
        /// The parser's message, with its position.
        reason: String,
    },
    /// The manifest holds no document at all.
    #[error(
        "the manifest is empty; give one with a Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or CronJob"
    )]
    Empty,
    /// A document that is not a Kubernetes object (a mapping with a string `kind`).
    #[error(
        "document {index} is not a Kubernetes object (a mapping with apiVersion and kind); fix or remove it"
    )]
    NotAnObject {
        /// The document's 1-based position in the stream.
        index: usize,
    },
    /// No document of the manifest carries a pod spec.
    #[error(
        "no document holds a pod spec (found {found}); give a Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or CronJob"
    )]
    NoPodSpec {
        /// The kinds and names that were found.
        found: String,
    },
    /// A pod-bearing document whose pod spec has the wrong shape.
    #[error("{doc}: {reason}; fix the manifest")]
    Malformed {
        /// The document: index, kind and name.
        doc: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Several containers and none chosen as the target.
    #[error("{doc}: the pod has several containers ({names}); choose the target with --container")]
    AmbiguousContainer {
        /// The document: index, kind and name.
        doc: String,
        /// The pod's container names, comma-separated.
        names: String,
    },
    /// The chosen target container is not in the pod.
    #[error("{doc}: the pod has no container {name:?} (it has {names}); check --container")]
    ContainerNotFound {
        /// The document: index, kind and name.
        doc: String,
        /// The container asked for.
        name: String,
        /// The pod's container names, comma-separated.
        names: String,
    },
    /// The target's uid is set nowhere in the manifest and was not given.
    #[error(
        "{doc}: the uid of container {container:?} is unknown (no runAsUser in its or the pod's securityContext, and the image's USER cannot be read offline); pass --target-uid"
    )]
    NoUid {
        /// The document: index, kind and name.
        doc: String,
        /// The target container.
        container: String,
    },
    /// The pod already has a container named like the sidecar.
    #[error(
        "{doc}: a container named keyhole-scanner already exists, so the manifest is already injected; use it as it is"
    )]
    AlreadyInjected {
        /// The document: index, kind and name.
        doc: String,
    },
    /// The pod shares the node's PID namespace, so a sidecar would see every process of the node.
    #[error(
        "{doc}: hostPID is true, so a sidecar would see every process on the node; remove hostPID or use the standard scan mode"
    )]
    HostPid {
        /// The document: index, kind and name.
        doc: String,
    },
    /// The document's layout does not allow inserting the sidecar without rewriting other text.
    #[error(
        "{doc}: cannot insert the sidecar without rewriting other content ({reason}); write this part of the manifest in YAML block style"
    )]
    NotEditableInPlace {
        /// The document: index, kind and name.
        doc: String,
        /// Which part is in the way.
        reason: String,
    },
    /// The scanned container already carries the scan-target marker with another value, or
    /// another container carries the target's marker, so the sidecar could scan the wrong one.
    #[error(
        "{doc}: {reason}; the sidecar finds the scanned container by {marker}=<its name>, so remove that env entry (or pick another container with --container)",
        marker = keyhole_core::SCAN_TARGET_ENV
    )]
    MarkerConflict {
        /// The document: index, kind and name.
        doc: String,
        /// Which container sets what.
        reason: String,
    },
}
