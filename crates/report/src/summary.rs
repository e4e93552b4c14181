//! What a scan run did, besides its HDF results: the input a report is rendered from together
//! with the execution.

use std::fmt;

use jiff::Timestamp;
use keyhole_core::{
    ContainerName, Created, Expiry, Namespace, PodName, RunId, ScanMode, ScanTarget,
};
use keyhole_hdf::{Profile, Threshold};

/// Name of the HDF profile holding the pre-scan verification's findings.
pub const PRECHECK_PROFILE: &str = "keyhole-precheck";
/// Name of the HDF profile holding the post-scan audit's findings.
pub const POSTSCAN_PROFILE: &str = "keyhole-postscan";

/// One scanned container: the logical location of its findings (there is no source file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The pod's namespace.
    pub namespace: Namespace,
    /// The pod.
    pub pod: PodName,
    /// The container, when one was named or resolved.
    pub container: Option<ContainerName>,
}

impl Target {
    /// One target per pod of `target` (none while its selector is unresolved).
    #[must_use]
    pub fn all_of(target: &ScanTarget) -> Vec<Self> {
        target
            .pod_names()
            .unwrap_or_default()
            .iter()
            .map(|pod| Self {
                namespace: target.namespace().clone(),
                pod: pod.clone(),
                container: target.container().cloned(),
            })
            .collect()
    }
}

impl fmt::Display for Target {
    /// `namespace/pod` or `namespace/pod/container`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.pod)?;
        if let Some(c) = &self.container {
            write!(f, "/{c}")?;
        }
        Ok(())
    }
}

/// The threshold the run was judged against.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdSpec {
    /// Where it came from, as shown to the reader (a file name, or `built-in`).
    pub source: String,
    /// The parsed threshold; the report judges the execution with it through
    /// [`keyhole_hdf::evaluate`], so the verdict and the numbers cannot disagree.
    pub threshold: Threshold,
}

/// An object the run created, and when it was created and deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    /// The object.
    pub object: Created,
    /// When the API server accepted its creation.
    pub created_at: Timestamp,
    /// When its deletion was confirmed; `None` when it was not, which the report flags.
    pub deleted_at: Option<Timestamp>,
}

/// The lifetime of the run's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLifetime {
    /// When it was issued.
    pub issued_at: Timestamp,
    /// When it expires on its own.
    pub expires_at: Timestamp,
    /// When it was revoked (its ServiceAccount or anchor Secret deleted); `None` when it was
    /// not, which the report flags.
    pub revoked_at: Option<Timestamp>,
}

impl TokenLifetime {
    /// The lifetime of a token issued and expiring as `expiry` says.
    #[must_use]
    pub fn from_expiry(expiry: &Expiry, revoked_at: Option<Timestamp>) -> Self {
        Self {
            issued_at: expiry.issued_at(),
            expires_at: expiry.expires_at(),
            revoked_at,
        }
    }
}

/// Everything about a run that the HDF execution does not say.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// The run id; the audit log's records of this run carry it.
    pub run_id: RunId,
    /// Keyhole's version (`env!("CARGO_PKG_VERSION")` of the binary); SARIF's driver version.
    pub tool_version: String,
    /// The scanned containers.
    pub targets: Vec<Target>,
    /// The scan mode used.
    pub mode: ScanMode,
    /// When the run started.
    pub started_at: Timestamp,
    /// When the run ended (teardown included).
    pub finished_at: Timestamp,
    /// The threshold judged against; without one the verdict is "not judged", never "passed".
    pub threshold: Option<ThresholdSpec>,
    /// Why the pre-scan verification aborted the scan, when it did.
    pub aborted: Option<String>,
    /// Every object the run created.
    pub objects: Vec<ObjectRecord>,
    /// The token's lifetime, when a token was issued.
    pub token: Option<TokenLifetime>,
    /// The pre-scan verification's findings (a profile named [`PRECHECK_PROFILE`]); when `None`,
    /// a profile of that name in the execution is used.
    pub precheck: Option<Profile>,
    /// The post-scan audit's findings (a profile named [`POSTSCAN_PROFILE`]); when `None`, a
    /// profile of that name in the execution is used.
    pub postscan: Option<Profile>,
}

#[cfg(test)]
mod tests {
    use keyhole_core::{LabelSelector, Ttl};

    use super::*;

    #[test]
    fn one_target_per_pod_shown_as_namespace_pod_container() {
        let ns = Namespace::new("prod").unwrap();
        let pods = [
            PodName::new("web-1").unwrap(),
            PodName::new("web-0").unwrap(),
        ];
        let t =
            ScanTarget::pods(ns.clone(), pods, Some(ContainerName::new("app").unwrap())).unwrap();
        let shown: Vec<String> = Target::all_of(&t).iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["prod/web-0/app", "prod/web-1/app"]);
        let bare = ScanTarget::pods(ns.clone(), [PodName::new("db").unwrap()], None).unwrap();
        assert_eq!(Target::all_of(&bare)[0].to_string(), "prod/db");
        let unresolved = ScanTarget::selector(ns, LabelSelector::parse("app=web").unwrap(), None);
        assert!(Target::all_of(&unresolved).is_empty());
    }

    #[test]
    fn token_lifetime_from_the_run_expiry() {
        let issued: Timestamp = "2026-11-26T14:00:00Z".parse().unwrap();
        let expiry = Expiry::new(issued, Ttl::parse("10m").unwrap()).unwrap();
        let revoked: Timestamp = "2026-11-26T14:03:00Z".parse().unwrap();
        let t = TokenLifetime::from_expiry(&expiry, Some(revoked));
        assert_eq!(t.issued_at, issued);
        assert_eq!(t.expires_at.to_string(), "2026-11-26T14:10:00Z");
        assert_eq!(t.revoked_at, Some(revoked));
    }
}
