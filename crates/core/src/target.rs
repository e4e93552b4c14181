//! What a scan is pointed at.

use crate::{ContainerName, CoreError, LabelSelector, Namespace, PodName};

/// The pods of one scan: names known now, or a selector resolved to names at scan time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodSelection {
    /// Explicit pod names: sorted, without duplicates, never empty.
    Names(Vec<PodName>),
    /// A label selector; it must be resolved to names (with the user's credentials) before any
    /// Role is built, because Role rules can only pin names.
    Selector(LabelSelector),
}

/// One scan's target: a namespace, its pods, and optionally the container to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanTarget {
    namespace: Namespace,
    pods: PodSelection,
    container: Option<ContainerName>,
}

impl ScanTarget {
    /// A target of named pods; names are sorted and deduplicated, and at least one is needed.
    pub fn pods(
        namespace: Namespace,
        pods: impl IntoIterator<Item = PodName>,
        container: Option<ContainerName>,
    ) -> Result<Self, CoreError> {
        let mut pods: Vec<PodName> = pods.into_iter().collect();
        pods.sort();
        pods.dedup();
        if pods.is_empty() {
            return Err(CoreError::EmptyTarget);
        }
        Ok(Self {
            namespace,
            pods: PodSelection::Names(pods),
            container,
        })
    }

    /// A target of the pods matching `selector`, resolved later.
    pub fn selector(
        namespace: Namespace,
        selector: LabelSelector,
        container: Option<ContainerName>,
    ) -> Self {
        Self {
            namespace,
            pods: PodSelection::Selector(selector),
            container,
        }
    }

    /// The namespace of every target pod.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The target pods.
    pub fn selection(&self) -> &PodSelection {
        &self.pods
    }

    /// The pod names when known (`None` while a selector is unresolved).
    pub fn pod_names(&self) -> Option<&[PodName]> {
        match &self.pods {
            PodSelection::Names(n) => Some(n),
            PodSelection::Selector(_) => None,
        }
    }

    /// The container to scan, when one was named.
    pub fn container(&self) -> Option<&ContainerName> {
        self.container.as_ref()
    }

    /// This target with its selector replaced by the pod names it resolved to.
    pub fn resolved(&self, pods: impl IntoIterator<Item = PodName>) -> Result<Self, CoreError> {
        Self::pods(self.namespace.clone(), pods, self.container.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sorted_deduplicated_and_required() {
        let ns = Namespace::new("prod").unwrap();
        let p = |s| PodName::new(s).unwrap();
        let t = ScanTarget::pods(ns.clone(), [p("web-1"), p("web-0"), p("web-1")], None).unwrap();
        assert_eq!(t.pod_names().unwrap(), &[p("web-0"), p("web-1")]);
        assert_eq!(ScanTarget::pods(ns, [], None), Err(CoreError::EmptyTarget));
    }
}
