//! Labels and annotations that mark every object Keyhole creates, and the run's expiry.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::{CoreError, RunId, Ttl};

/// The standard label saying which tool manages an object; `keyhole reap` only ever touches
/// objects carrying it with [`MANAGED_BY_VALUE`].
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`] on Keyhole's objects.
pub const MANAGED_BY_VALUE: &str = "keyhole";
/// The label carrying the run id; one run's objects are found (and isolated) by it.
pub const RUN_ID_LABEL: &str = "keyhole.dev/run-id";
/// The annotation with the RFC 3339 UTC time after which the object must not exist.
/// Kubernetes has no TTL for RBAC objects, so reapers and the in-process timer read this.
pub const EXPIRES_AT_ANNOTATION: &str = "keyhole.dev/expires-at";
/// The annotation naming the scan target (`namespace/pod[,pod...]`), for audit and reaping.
pub const TARGET_ANNOTATION: &str = "keyhole.dev/target";

/// The labels every object of `run` carries.
pub fn run_labels(run: &RunId) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string()),
        (RUN_ID_LABEL.to_string(), run.to_string()),
    ])
}

/// When a run's access was issued and when it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    issued_at: Timestamp,
    ttl: Ttl,
}

impl Expiry {
    /// An expiry `ttl` after `issued_at`, truncated to whole seconds so the annotation, the
    /// token's `exp` and the timer agree.
    pub fn new(issued_at: Timestamp, ttl: Ttl) -> Result<Self, CoreError> {
        let issued_at =
            Timestamp::from_second(issued_at.as_second()).map_err(|_| CoreError::TimeOutOfRange)?;
        let e = Self { issued_at, ttl };
        e.checked_expires_at()?;
        Ok(e)
    }

    fn checked_expires_at(&self) -> Result<Timestamp, CoreError> {
        self.issued_at
            .checked_add(jiff::SignedDuration::from_secs(self.ttl.as_secs()))
            .map_err(|_| CoreError::TimeOutOfRange)
    }

    /// When access was issued.
    pub fn issued_at(&self) -> Timestamp {
        self.issued_at
    }

    /// The TTL.
    pub fn ttl(&self) -> Ttl {
        self.ttl
    }

    /// When access ends.
    pub fn expires_at(&self) -> Timestamp {
        self.checked_expires_at()
            .expect("checked in Expiry::new, which is the only constructor")
    }

    /// The [`EXPIRES_AT_ANNOTATION`] value: RFC 3339, UTC, whole seconds.
    pub fn annotation_value(&self) -> String {
        self.expires_at().to_string()
    }

    /// Parses an [`EXPIRES_AT_ANNOTATION`] value back (as a reaper does).
    pub fn parse_annotation(value: &str) -> Option<Timestamp> {
        value.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_is_rfc3339_utc_and_parses_back() {
        let t: Timestamp = "2026-11-26T14:00:00.75Z".parse().unwrap();
        let e = Expiry::new(t, Ttl::parse("10m").unwrap()).unwrap();
        assert_eq!(e.annotation_value(), "2026-11-26T14:10:00Z");
        assert_eq!(
            Expiry::parse_annotation(&e.annotation_value()),
            Some(e.expires_at())
        );
        assert_eq!(Expiry::parse_annotation("tomorrow"), None);
    }

    #[test]
    fn labels_mark_the_run() {
        let run = RunId::parse("abcdefghij").unwrap();
        let l = run_labels(&run);
        assert_eq!(l[MANAGED_BY_LABEL], "keyhole");
        assert_eq!(l[RUN_ID_LABEL], "abcdefghij");
    }
}
