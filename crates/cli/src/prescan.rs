//! The pre-scan gate around a cluster scan (`keyhole-precheck`): every target pod is read and
//! judged with the **user's** credentials before anything is created, and an abort verdict
//! stops the scan there — no session, no reap, no write call of any kind. When the verdicts let
//! the scan go on, [`scan_gated`] runs [`scan_cluster`]; the network checks are then judged
//! from the socket tables of the scan's one fact-gathering pass
//! (`/proc/<pid>/net/{tcp,tcp6,udp,udp6}`, added to every fact plan by [`with_network_tables`])
//! and can still abort the verdict, after the session has torn its access down.
//!
//! An abort of either kind means the scan's compliance results are not reported: the caller
//! reports the verdict instead (exit [`keyhole_precheck::EXIT_PRECHECK_ABORT`]).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use keyhole_engine::{FactError, FactPlan, FactRequest, FactValue, Facts, ProcFile};
use keyhole_precheck::{NetworkFacts, Policy, ProcNetTable, Verdict};

use crate::cluster_scan::{ScanError, ScanOutcome, ScanRequest, scan_cluster};
use crate::session::{Audit, ScopedClients};

/// Most bytes read of one socket table: the engine's own bound for `/proc/<pid>/` files, so a
/// profile that reads them (the built-in one does, for `listening`) and the gate share one
/// request per table.
pub const NET_TABLE_MAX_BYTES: u64 = 4 << 20;

/// The socket tables and the engine's name for each.
const TABLES: [(ProcFile, ProcNetTable); 4] = [
    (ProcFile::NetTcp, ProcNetTable::Tcp),
    (ProcFile::NetTcp6, ProcNetTable::Tcp6),
    (ProcFile::NetUdp, ProcNetTable::Udp),
    (ProcFile::NetUdp6, ProcNetTable::Udp6),
];

/// `plan` with the four socket tables of the target process added (once: a request the plan
/// already has for a table is kept), so the network checks are judged from the same
/// gathering pass whatever the profile reads.
#[must_use]
pub fn with_network_tables(mut plan: FactPlan) -> FactPlan {
    for (file, _) in TABLES {
        let present = plan
            .requests()
            .any(|r| matches!(r, FactRequest::Proc { file: f, .. } if *f == file));
        if !present {
            plan.add(FactRequest::Proc {
                file,
                max_bytes: NET_TABLE_MAX_BYTES,
            });
        }
    }
    plan
}

/// The socket tables among `facts`, parsed. `None` when the facts hold none of them (a
/// workflow whose plan was not ours, e.g. a sidecar's): the network checks then stay "not
/// judged". A table that is absent from the node (no IPv6: `NotFound`) adds no socket; any
/// other failure, and a table cut at its size bound, is a problem that fails both checks.
#[must_use]
pub fn network_facts(facts: &Facts) -> Option<NetworkFacts> {
    let mut out = NetworkFacts::default();
    let mut seen = false;
    for (file, table) in TABLES {
        let answer = facts.iter().find_map(|(r, a)| match r {
            FactRequest::Proc { file: f, .. } if *f == file => Some(a),
            _ => None,
        });
        let Some(answer) = answer else { continue };
        seen = true;
        let name = table.file_name();
        match answer {
            Ok(FactValue::Content(c)) if c.truncated => out.problems.push(format!(
                "{name}: larger than {NET_TABLE_MAX_BYTES} bytes, not read whole"
            )),
            Ok(FactValue::Content(c)) => out.add_table(table, &String::from_utf8_lossy(&c.bytes)),
            Err(FactError::NotFound) => {}
            Err(e) => out.problems.push(format!("{name}: {e}")),
            Ok(other) => out
                .problems
                .push(format!("{name}: unexpected answer {other:?}")),
        }
    }
    seen.then_some(out)
}

/// The annotation `kubectl` honours to pick a pod's default container (the workflows choose
/// the same way).
const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// The container whose security the verdict judges: `requested`, else the pod's
/// default-container annotation, else its only container other than keyhole's own scanner
/// sidecar (in sidecar mode the sidecar reads that container; it is not the target). `None`
/// when that cannot be decided (several containers, none chosen).
fn container_of(pod: &Pod, requested: Option<&str>) -> Option<String> {
    if let Some(c) = requested {
        return Some(c.to_owned());
    }
    let names: Vec<&str> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    let targets: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| *n != keyhole_scanners::SIDECAR_NAME)
        .collect();
    let annotated = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CONTAINER_ANNOTATION))
        .filter(|a| names.contains(&a.as_str()));
    match (annotated, targets.as_slice()) {
        (Some(a), _) => Some(a.clone()),
        (None, [only]) => Some((*only).to_owned()),
        _ => None,
    }
}

/// Reads every pod of `request.run` with `user` (GETs only: nothing is written) and judges it
/// under `policy`; one verdict per pod, in the run's order. A pod that does not exist gets the
/// `target-exists` abort.
///
/// # Errors
/// [`ScanError::Precheck`] when a pod cannot be read (other than its absence), and
/// [`ScanError::ChooseContainer`] when a pod has several containers and none was chosen.
pub async fn check_pods(
    user: &kube::Client,
    request: &ScanRequest,
    policy: &Policy,
) -> Result<Vec<Verdict>, ScanError> {
    let ns = request.run.namespace().as_str();
    let mut verdicts = Vec::new();
    for pod in request.run.pods() {
        verdicts
            .push(check_pod(user, ns, pod.as_str(), request.container.as_deref(), policy).await?);
    }
    Ok(verdicts)
}

/// [`check_pods`] for one pod `ns/pod` (`container`: the one asked for, if any); the fleet
/// scan judges each pod on its own so that one pod's problem is only that pod's.
///
/// # Errors
/// As [`check_pods`].
pub async fn check_pod(
    user: &kube::Client,
    ns: &str,
    pod: &str,
    container: Option<&str>,
    policy: &Policy,
) -> Result<Verdict, ScanError> {
    let verdict = match keyhole_precheck::fetch(user.clone(), ns, pod).await? {
        None => keyhole_precheck::evaluate_missing(ns, pod, container.unwrap_or(""), policy),
        Some(p) => {
            let Some(chosen) = container_of(&p, container) else {
                let names: Vec<String> = p
                    .spec
                    .iter()
                    .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
                    .collect();
                return Err(ScanError::ChooseContainer(format!(
                    "pod {ns}/{pod} has {} containers ({}): choose one with -c CONTAINER",
                    names.len(),
                    names.join(", ")
                )));
            };
            keyhole_precheck::evaluate(&p, &chosen, policy)
        }
    };
    tracing::info!(
        pod = %pod,
        decision = ?verdict.decision,
        failures = verdict.failures().count(),
        "pre-scan verification"
    );
    Ok(verdict)
}

/// How a gated scan ended.
#[derive(Debug)]
pub struct GatedOutcome {
    /// One verdict per target pod, in the run's order, with the network checks merged when
    /// the scan gathered the socket tables.
    pub verdicts: Vec<Verdict>,
    /// The scan, or `None` when the pre-scan verification aborted before anything was created.
    pub scan: Option<ScanOutcome>,
}

impl GatedOutcome {
    /// Whether any verdict aborts (before the scan, or from the network checks after it).
    #[must_use]
    pub fn aborted(&self) -> bool {
        self.verdicts.iter().any(Verdict::aborts)
    }

    /// The verdict of pod `pod`.
    #[must_use]
    pub fn verdict_for(&self, pod: &str) -> Option<&Verdict> {
        self.verdicts.iter().find(|v| v.target.pod == pod)
    }
}

/// A one-line reason for `verdicts`' abort: every failed check whose action is `abort`, by
/// pod (`None` when none aborts).
#[must_use]
pub fn abort_reason(verdicts: &[Verdict]) -> Option<String> {
    let parts: Vec<String> = verdicts
        .iter()
        .filter(|v| v.aborts())
        .map(|v| {
            let checks: Vec<String> = v
                .failures()
                .filter(|c| c.action == keyhole_precheck::Action::Abort)
                .map(|c| format!("{} ({})", c.check, c.message))
                .collect();
            format!(
                "{}/{}: {}",
                v.target.namespace,
                v.target.pod,
                checks.join("; ")
            )
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" | "))
}

/// The cluster scan behind the pre-scan gate. First every pod is judged with `user`'s
/// credentials ([`check_pods`]); an abort returns at once with `scan: None`, having made no
/// write call (the run's end is recorded in the local audit log). Otherwise [`scan_cluster`]
/// runs, and each scanned container's socket tables are judged by
/// [`keyhole_precheck::check_network`] and merged into its pod's verdict.
///
/// # Errors
/// Those of [`check_pods`] and [`scan_cluster`].
pub async fn scan_gated(
    user: kube::Client,
    request: ScanRequest,
    policy: &Policy,
    scoped: Arc<dyn ScopedClients>,
    audit: Audit,
) -> Result<GatedOutcome, ScanError> {
    let mut verdicts = check_pods(&user, &request, policy).await?;
    if let Some(reason) = abort_reason(&verdicts) {
        tracing::warn!(%reason, "the pre-scan verification aborts the scan; nothing was created");
        audit.record(keyhole_audit::Event::RunEnded {
            exit_code: keyhole_precheck::EXIT_PRECHECK_ABORT,
            outcome: format!(
                "pre-scan verification aborted the scan before anything was created: {reason}"
            ),
        });
        return Ok(GatedOutcome {
            verdicts,
            scan: None,
        });
    }
    let scan = scan_cluster(user, request, scoped, audit).await?;
    for r in &scan.results {
        let Some(net) = network_facts(&r.facts) else {
            continue;
        };
        if let Some(v) = verdicts
            .iter_mut()
            .find(|v| v.target.pod == r.target.pod && v.target.namespace == r.target.namespace)
        {
            v.merge(keyhole_precheck::check_network(&net, policy));
        }
    }
    Ok(GatedOutcome {
        verdicts,
        scan: Some(scan),
    })
}

#[cfg(test)]
mod tests {
    use keyhole_engine::Content;

    use super::*;

    const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

    fn content(text: &str, truncated: bool) -> Result<FactValue, FactError> {
        Ok(FactValue::Content(Content {
            bytes: text.as_bytes().to_vec(),
            truncated,
        }))
    }

    fn proc(file: ProcFile) -> FactRequest {
        FactRequest::Proc {
            file,
            max_bytes: NET_TABLE_MAX_BYTES,
        }
    }

    fn pod(containers: &[&str], default: Option<&str>) -> Pod {
        let mut p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-0", "namespace": "prod"},
            "spec": {"containers": containers.iter().map(|c| serde_json::json!({"name": c})).collect::<Vec<_>>()},
        }))
        .unwrap();
        if let Some(d) = default {
            p.metadata.annotations = Some(
                [(DEFAULT_CONTAINER_ANNOTATION.to_owned(), d.to_owned())]
                    .into_iter()
                    .collect(),
            );
        }
        p
    }

    #[test]
    fn the_judged_container_is_the_one_the_scan_reaches() {
        assert_eq!(
            container_of(&pod(&["app"], None), None).as_deref(),
            Some("app")
        );
        assert_eq!(
            container_of(&pod(&["app", "db"], Some("db")), None).as_deref(),
            Some("db")
        );
        assert_eq!(
            container_of(&pod(&["app", "db"], Some("nope")), None),
            None,
            "an annotation naming no container decides nothing"
        );
        assert_eq!(container_of(&pod(&["app", "db"], None), None), None);
        assert_eq!(
            container_of(&pod(&["app", "db"], None), Some("db")).as_deref(),
            Some("db")
        );
        // The scanner sidecar is never the target.
        assert_eq!(
            container_of(&pod(&["app", keyhole_scanners::SIDECAR_NAME], None), None).as_deref(),
            Some("app")
        );
    }

    #[test]
    fn the_plan_gains_each_table_once() {
        let mut plan = FactPlan::new();
        plan.add(FactRequest::Proc {
            file: ProcFile::NetTcp,
            max_bytes: 10,
        });
        let plan = with_network_tables(plan);
        let procs: Vec<&FactRequest> = plan.requests().collect();
        assert_eq!(procs.len(), 4, "{procs:?}");
        // The profile's own request for tcp is kept, not doubled.
        assert!(procs.contains(&&FactRequest::Proc {
            file: ProcFile::NetTcp,
            max_bytes: 10
        }));
        for f in [ProcFile::NetTcp6, ProcFile::NetUdp, ProcFile::NetUdp6] {
            assert!(procs.contains(&&proc(f)), "{f:?}");
        }
        assert_eq!(with_network_tables(plan.clone()), plan);
    }

    #[test]
    fn tables_are_read_from_the_facts_and_failures_are_problems() {
        assert_eq!(network_facts(&Facts::default()), None);
        let mut facts = Facts::default();
        // 0.0.0.0:80 listening, 127.0.0.1:40000 -> 8.8.8.8:53 established.
        facts.insert(
            proc(ProcFile::NetTcp),
            content(
                &format!(
                    "{HEADER}   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n   1: 0100007F:9C40 08080808:0035 01 00000000:00000000 00:00000000 00000000  1000        0 2\n"
                ),
                false,
            ),
        );
        facts.insert(proc(ProcFile::NetTcp6), Err(FactError::NotFound));
        facts.insert(proc(ProcFile::NetUdp), Err(FactError::PermissionDenied));
        facts.insert(proc(ProcFile::NetUdp6), content(HEADER, true));
        let net = network_facts(&facts).expect("tables were gathered");
        assert_eq!(net.sockets.len(), 2, "{net:?}");
        assert_eq!(net.problems.len(), 2, "{:?}", net.problems);
        assert!(net.problems[0].starts_with("udp: permission denied"));
        assert!(net.problems[1].starts_with("udp6: larger than"));
        // Under the built-in policy the listener (no port allowed) and the peer outside
        // 127.0.0.0/8 fail; the unread tables fail both checks too.
        let results = keyhole_precheck::check_network(&net, &Policy::builtin());
        assert!(
            results
                .iter()
                .all(|r| r.outcome == keyhole_precheck::Outcome::Failed)
        );
    }
}
