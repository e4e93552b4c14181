//! The standard workflow: exactly one exec session (kube's WebSocket exec) into the target
//! container, running the fact script fed on stdin to `/bin/sh -s` (so the script's size is not
//! bounded by the kernel's argument limit), and the facts parsed from its framed stdout.
//!
//! The script only reads: it creates no file, writes nothing in the target, and every byte of
//! the target reaches stdout hex-encoded, so the target cannot forge a frame. A compromised
//! target can still lie here (its own `sh` answers); the distroless workflow reads it from
//! outside and is the stronger mode.

use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use keyhole_engine::{FactError, FactPlan, Facts, ShellScript};
use kube::Api;
use kube::api::AttachParams;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::{ContainerTarget, WorkflowError};

/// The shell the script is fed to: `/bin/sh -s` reads the commands from stdin.
pub const SHELL: [&str; 2] = ["/bin/sh", "-s"];

/// Most bytes of script output read; beyond it the session is cut and the unanswered requests
/// report an error (a hostile target cannot exhaust keyhole's memory through the exec stream).
pub const MAX_SCRIPT_OUTPUT: u64 = 512 * 1024 * 1024;

/// Exit codes a shell-less container gives (the runtime cannot find or run `/bin/sh`).
const NOT_FOUND_EXITS: [&str; 2] = ["126", "127"];

/// Gathers `plan` from `target` in one exec session with the `scoped` client.
pub async fn gather_standard(
    scoped: &kube::Client,
    target: &ContainerTarget,
    plan: &FactPlan,
) -> Result<Facts, WorkflowError> {
    let started = Instant::now();
    let script = ShellScript::in_container().render(plan);
    let exec_err = |detail: String| WorkflowError::Exec {
        namespace: target.namespace.clone(),
        pod: target.pod.clone(),
        container: target.container.clone(),
        detail,
    };
    let api: Api<Pod> = Api::namespaced(scoped.clone(), &target.namespace);
    let params = AttachParams::default()
        .container(target.container.clone())
        .stdin(true)
        .stdout(true)
        .stderr(false);
    tracing::debug!(%target, requests = plan.len(), script_bytes = script.len(), "exec");
    let mut process = api
        .exec(&target.pod, SHELL, &params)
        .await
        .map_err(|e| match &e {
            kube::Error::Api(s) if looks_shell_less(&s.message) => no_shell(target, &s.message),
            _ => exec_err(keyhole_core::kube_error(&e)),
        })?;
    let status = process.take_status();
    let mut stdin = process
        .stdin()
        .ok_or_else(|| exec_err("the session has no stdin".into()))?;
    let mut stdout = process
        .stdout()
        .ok_or_else(|| exec_err("the session has no stdout".into()))?;
    // Write and read concurrently: a large answer must not wait on a fully written script.
    let write = async move {
        let written = stdin.write_all(script.as_bytes()).await;
        let _ = stdin.shutdown().await;
        drop(stdin);
        written
    };
    let read = async move {
        let mut out = Vec::new();
        let read = (&mut stdout)
            .take(MAX_SCRIPT_OUTPUT)
            .read_to_end(&mut out)
            .await;
        read.map(|_| out)
    };
    let (written, out) = tokio::join!(write, read);
    let out = out.map_err(|e| exec_err(format!("reading the script's output: {e}")))?;
    let status = match status {
        Some(s) => s.await,
        None => None,
    };
    let _ = process.join().await;
    // The runtime's word when the command did not succeed (a kill gives exit code 137).
    let mut failure = None;
    if let Some(s) = &status
        && s.status.as_deref() != Some("Success")
    {
        let message = s.message.clone().unwrap_or_default();
        let exit = s
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .and_then(|c| c.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
            .and_then(|c| c.message.clone())
            .unwrap_or_default();
        if NOT_FOUND_EXITS.contains(&exit.as_str()) || looks_shell_less(&message) {
            return Err(no_shell(target, &message));
        }
        tracing::warn!(%target, %message, "the fact script ended with a failure status");
        failure = Some(message);
    }
    if let Err(e) = written
        && out.is_empty()
        && failure.is_none()
    {
        return Err(exec_err(format!("sending the script: {e}")));
    }
    let mut facts = ShellScript::parse(plan, &out);
    facts.elapsed = started.elapsed();
    // A stream cut short (a dropped session, a killed shell, output past the cap) leaves
    // requests unanswered: that is a failed scan, never a result with holes in it. The error
    // reads the same whether the kill landed before the first answer or after some (which
    // one a runtime reports first is a race), with the runtime's status when it gave one.
    let unanswered = facts
        .iter()
        .filter(|(_, a)| matches!(a, Err(FactError::Io(m)) if m.starts_with(UNANSWERED)))
        .count();
    // A failed command with no output at all is never a result, even for an empty plan.
    if unanswered > 0 || (out.is_empty() && failure.is_some()) {
        let how = match (&failure, &status) {
            (Some(m), _) => format!(" ({})", m.trim()),
            (None, None) => " (no exit status: the connection was dropped)".to_owned(),
            (None, Some(_)) => String::new(),
        };
        return Err(exec_err(format!(
            "the session ended before the fact script finished: {unanswered} of {} requests \
             unanswered{how}",
            plan.len(),
        )));
    }
    Ok(facts)
}

/// How the engine's parser words a request the script output does not answer.
const UNANSWERED: &str = "the fact script gave no answer";

/// What runtimes say when the executable of an exec does not exist in the container.
fn looks_shell_less(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("executable file not found")
        || m.contains("no such file or directory")
        || m.contains("not found in $path")
}

fn no_shell(target: &ContainerTarget, detail: &str) -> WorkflowError {
    WorkflowError::NoShell {
        namespace: target.namespace.clone(),
        pod: target.pod.clone(),
        container: target.container.clone(),
        detail: detail.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtimes_messages_for_a_missing_shell_are_recognised() {
        for m in [
            // containerd / runc through the kubelet
            r#"failed to exec in container: failed to start exec "x": OCI runtime exec failed: exec failed: unable to start container process: exec: "/bin/sh": stat /bin/sh: no such file or directory: unknown"#,
            // CRI-O
            r#"command error: exec failed: executable file not found in $PATH"#,
        ] {
            assert!(looks_shell_less(m), "{m}");
        }
        assert!(!looks_shell_less(
            "command terminated with non-zero exit code: exit code 1"
        ));
    }

    #[test]
    fn the_engine_still_words_unanswered_requests_as_this_module_expects() {
        let mut plan = FactPlan::new();
        plan.add(keyhole_engine::FactRequest::Stat(
            keyhole_engine::TargetPath::new(b"/etc".to_vec()).unwrap(),
        ));
        let facts = ShellScript::parse(&plan, b"");
        let (_, answer) = facts.iter().next().unwrap();
        assert!(
            matches!(answer, Err(FactError::Io(m)) if m.starts_with(UNANSWERED)),
            "{answer:?}"
        );
    }
}
