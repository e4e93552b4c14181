//! Process hardening while secrets are held.

use rustix::process::{DumpableBehavior, Resource, Rlimit, set_dumpable_behavior, setrlimit};

use crate::CredentialsError;

/// Makes this process unable to leak its memory (and so the token) through a core dump or
/// `ptrace`/`/proc/PID/mem` by other processes of the same user: the core size limit is set to
/// 0 (soft and hard, so it cannot be raised again) and the process is marked non-dumpable.
/// Call it before minting a token; it cannot be undone.
pub fn harden_process() -> Result<(), CredentialsError> {
    let os = |action: &'static str| {
        move |e: rustix::io::Errno| CredentialsError::Os {
            action,
            message: e.to_string(),
        }
    };
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .map_err(os("disabling core dumps (setrlimit RLIMIT_CORE)"))?;
    set_dumpable_behavior(DumpableBehavior::NotDumpable).map_err(os(
        "marking the process non-dumpable (prctl PR_SET_DUMPABLE)",
    ))?;
    Ok(())
}
