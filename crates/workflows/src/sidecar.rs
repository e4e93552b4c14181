//! The sidecar workflow: a pod deployed with `keyhole sidecar inject` carries the agent in
//! sidecar mode, which gathers at start and every interval and writes framed, timestamped
//! facts on its log. keyhole reads the newest complete frame with `pods/log` get only (and
//! `pods` get to find the sidecar) — no exec, no new container — and refuses one older than
//! the caller's maximum age.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use keyhole_engine::Facts;
use kube::Api;
use kube::api::LogParams;

use crate::WorkflowError;

/// Reads the newest facts of the scanner sidecar of `namespace/pod`, refusing facts gathered
/// more than `max_age` before `now`. Returns the facts and when they were gathered.
pub async fn read_sidecar(
    scoped: &kube::Client,
    namespace: &str,
    pod: &str,
    max_age: Duration,
    now: Timestamp,
) -> Result<(Facts, Timestamp), WorkflowError> {
    let sidecar = keyhole_scanners::SIDECAR_NAME;
    let api: Api<Pod> = Api::namespaced(scoped.clone(), namespace);
    let p = api.get(pod).await.map_err(|e| WorkflowError::Api {
        action: format!("reading pod {namespace}/{pod}"),
        message: keyhole_core::kube_error(&e),
    })?;
    let has_sidecar = p
        .spec
        .as_ref()
        .is_some_and(|s| s.containers.iter().any(|c| c.name == sidecar));
    if !has_sidecar {
        return Err(WorkflowError::Container(format!(
            "pod {namespace}/{pod} has no {sidecar} container: deploy it with `keyhole sidecar \
             inject`, or scan it with --mode standard or distroless"
        )));
    }
    let log = api
        .logs(
            pod,
            &LogParams {
                container: Some(sidecar.to_string()),
                ..LogParams::default()
            },
        )
        .await
        .map_err(|e| WorkflowError::Api {
            action: format!("reading the log of {sidecar} in {namespace}/{pod}"),
            message: keyhole_core::kube_error(&e),
        })?;
    let read = keyhole_engine::read_facts_frames(&log);
    if read.damaged > 0 {
        tracing::warn!(
            damaged = read.damaged,
            "damaged frames in the sidecar's log were ignored"
        );
    }
    let newest = read.newest().ok_or_else(|| WorkflowError::Agent {
        namespace: namespace.to_string(),
        pod: pod.to_string(),
        container: sidecar.to_string(),
        detail: match agent_failure(&log) {
            // The agent reports each failed gather on one line (e.g. another UID's target).
            Some(why) => format!(
                "its log holds no complete facts ({} damaged frame(s)); its last gather failed: \
                 {why}",
                read.damaged
            ),
            None => format!(
                "its log holds no complete facts ({} damaged frame(s)); it may not have \
                 finished its first gather yet",
                read.damaged
            ),
        },
    })?;
    let age = now.duration_since(newest.gathered_at);
    let too_old = Duration::try_from(age).is_ok_and(|a| a > max_age);
    if too_old {
        return Err(WorkflowError::Agent {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            container: sidecar.to_string(),
            detail: format!(
                "its newest facts were gathered at {} ({}s ago), older than --max-age {}s",
                newest.gathered_at,
                age.as_secs(),
                max_age.as_secs()
            ),
        });
    }
    Ok((newest.facts.clone(), newest.gathered_at))
}

/// The agent's last failure line in `log` (`keyhole-agent: …`), printable and at most 300
/// characters: the log is passed on to the user's terminal.
fn agent_failure(log: &str) -> Option<String> {
    let line = log
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("keyhole-agent: "))?;
    Some(line.chars().filter(|c| !c.is_control()).take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::agent_failure;

    #[test]
    fn the_agents_last_failure_line_is_passed_on_printable_and_bounded() {
        let log = "keyhole-agent: first\nnoise\nkeyhole-agent: second \u{1b}[31mred\n";
        assert_eq!(agent_failure(log).as_deref(), Some("second [31mred"));
        assert_eq!(agent_failure("no failure\n"), None);
        let long = format!("keyhole-agent: {}", "x".repeat(1000));
        assert_eq!(agent_failure(&long).unwrap().len(), 300);
    }
}
