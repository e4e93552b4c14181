//! One run's identity: what every object builder needs to name, label and expire its object.

use std::collections::BTreeMap;

use crate::{
    CoreError, EXPIRES_AT_ANNOTATION, Expiry, Name, Namespace, PodName, RunId, ScanMode,
    ScanTarget, TARGET_ANNOTATION, run_labels,
};

/// A scan run whose target pods are known by name: the input of every object builder.
///
/// Built only from a [`ScanTarget`] with resolved names, so no builder can ever see an
/// unresolved selector (and so never emit a Role rule without `resourceNames`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    id: RunId,
    namespace: Namespace,
    pods: Vec<PodName>,
    target: ScanTarget,
    mode: ScanMode,
    expiry: Expiry,
}

impl Run {
    /// A run of `mode` against `target`, which must name its pods (resolve selectors first).
    pub fn new(
        id: RunId,
        target: ScanTarget,
        mode: ScanMode,
        expiry: Expiry,
    ) -> Result<Self, CoreError> {
        let pods = target
            .pod_names()
            .ok_or(CoreError::UnresolvedSelector)?
            .to_vec();
        Ok(Self {
            id,
            namespace: target.namespace().clone(),
            pods,
            target,
            mode,
            expiry,
        })
    }

    /// The run id.
    pub fn id(&self) -> &RunId {
        &self.id
    }

    /// The namespace every object of the run lives in (the target's).
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The target pods, sorted, at least one.
    pub fn pods(&self) -> &[PodName] {
        &self.pods
    }

    /// The whole target (with the container, if one was named).
    pub fn target(&self) -> &ScanTarget {
        &self.target
    }

    /// The scan mode (may still be [`ScanMode::Auto`]; builders that need a concrete mode
    /// refuse it).
    pub fn mode(&self) -> ScanMode {
        self.mode
    }

    /// When the run's access was issued and expires.
    pub fn expiry(&self) -> &Expiry {
        &self.expiry
    }

    /// `keyhole-<id>`: the name of the run's ServiceAccount, Role and RoleBinding.
    pub fn object_name(&self) -> Name {
        self.derived_name("")
    }

    /// `keyhole-<id>-<suffix>` (or `keyhole-<id>` for an empty suffix). Run ids are 10
    /// characters, so any suffix up to 44 characters of `[a-z0-9-]` is a valid name.
    pub fn derived_name(&self, suffix: &str) -> Name {
        let s = if suffix.is_empty() {
            format!("keyhole-{}", self.id)
        } else {
            format!("keyhole-{}-{suffix}", self.id)
        };
        Name::new(s).expect("keyhole-<run id>-<short suffix> is a DNS-1123 label")
    }

    /// The labels of every object of this run.
    pub fn labels(&self) -> BTreeMap<String, String> {
        run_labels(&self.id)
    }

    /// The annotations of every object of this run: expiry and target.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        let pods: Vec<&str> = self.pods.iter().map(|p| p.as_str()).collect();
        BTreeMap::from([
            (
                EXPIRES_AT_ANNOTATION.to_string(),
                self.expiry.annotation_value(),
            ),
            (
                TARGET_ANNOTATION.to_string(),
                format!("{}/{}", self.namespace, pods.join(",")),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LabelSelector, Ttl};

    fn expiry() -> Expiry {
        Expiry::new("2026-11-26T14:00:00Z".parse().unwrap(), Ttl::default()).unwrap()
    }

    #[test]
    fn names_labels_and_annotations() {
        let ns = Namespace::new("prod").unwrap();
        let t = ScanTarget::pods(
            ns,
            [
                PodName::new("web-1").unwrap(),
                PodName::new("web-0").unwrap(),
            ],
            None,
        )
        .unwrap();
        let run = Run::new(
            RunId::parse("abcdefghij").unwrap(),
            t,
            ScanMode::Standard,
            expiry(),
        )
        .unwrap();
        assert_eq!(run.object_name().as_str(), "keyhole-abcdefghij");
        assert_eq!(
            run.derived_name("anchor").as_str(),
            "keyhole-abcdefghij-anchor"
        );
        assert_eq!(run.annotations()[TARGET_ANNOTATION], "prod/web-0,web-1");
        assert_eq!(
            run.annotations()[EXPIRES_AT_ANNOTATION],
            "2026-11-26T14:10:00Z"
        );
    }

    #[test]
    fn selectors_must_be_resolved_first() {
        let ns = Namespace::new("prod").unwrap();
        let t = ScanTarget::selector(ns, LabelSelector::parse("app=web").unwrap(), None);
        let r = Run::new(
            RunId::parse("abcdefghij").unwrap(),
            t,
            ScanMode::Standard,
            expiry(),
        );
        assert_eq!(r, Err(CoreError::UnresolvedSelector));
    }
}
