//! Running a run's work so that every way it can end leads to the one teardown.

use std::future::Future;

use jiff::Timestamp;
use kube::Client;
use tokio::signal::unix::{SignalKind, signal};

use crate::{CleanupError, CleanupReport, Registry, RetryPolicy, teardown};

/// How the work ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The work finished (its own result says whether it succeeded).
    Completed,
    /// The work panicked; the panic message.
    Panicked(String),
    /// A signal arrived; the work was stopped.
    Signal {
        /// `SIGINT`, `SIGTERM` or `SIGHUP`.
        name: &'static str,
        /// The conventional exit code: 128 + the signal number (130, 143, 129).
        exit_code: i32,
    },
    /// The run's access expired before the work finished; the work was stopped.
    Expired,
}

/// The work's value (when it completed), how it ended, and the cleanup that followed.
#[derive(Debug)]
pub struct Guarded<T> {
    /// The work's output, when it completed.
    pub value: Option<T>,
    /// How it ended.
    pub ending: Ending,
    /// The teardown that ran afterwards, whatever the ending.
    pub cleanup: CleanupReport,
}

fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic with a non-string payload".into()),
        Err(e) => e.to_string(),
    }
}

/// Runs `work` (which creates objects and registers them in `registry`) and then tears down,
/// whatever happens: completion, panic, SIGINT/SIGTERM/SIGHUP, or `expires_at` passing. Signal
/// handlers are installed before the work starts and stay installed, so a second Ctrl-C during
/// teardown cannot interrupt it. The work is aborted before teardown starts, so it cannot create
/// objects behind the teardown's back.
pub async fn run_guarded<F, T>(
    client: Client,
    registry: Registry,
    expires_at: Timestamp,
    policy: RetryPolicy,
    work: F,
) -> Result<Guarded<T>, CleanupError>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let install = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|e| CleanupError::Signal {
            signal: name,
            message: e.to_string(),
        })
    };
    let mut sigint = install(SignalKind::interrupt(), "SIGINT")?;
    let mut sigterm = install(SignalKind::terminate(), "SIGTERM")?;
    let mut sighup = install(SignalKind::hangup(), "SIGHUP")?;
    let remaining = expires_at.duration_since(Timestamp::now());
    let until_expiry = std::time::Duration::try_from(remaining).unwrap_or_default();

    let mut handle = tokio::spawn(work);
    let (value, ending) = tokio::select! {
        joined = &mut handle => match joined {
            Ok(v) => (Some(v), Ending::Completed),
            Err(e) => (None, Ending::Panicked(panic_message(e))),
        },
        _ = sigint.recv() => (None, Ending::Signal { name: "SIGINT", exit_code: 130 }),
        _ = sigterm.recv() => (None, Ending::Signal { name: "SIGTERM", exit_code: 143 }),
        _ = sighup.recv() => (None, Ending::Signal { name: "SIGHUP", exit_code: 129 }),
        () = tokio::time::sleep(until_expiry) => (None, Ending::Expired),
    };
    if value.is_none() && !matches!(ending, Ending::Panicked(_)) {
        handle.abort();
        // Wait for the abort to land so no request of the work is still in flight.
        let _ = handle.await;
    }
    let cleanup = teardown(&client, &registry, &policy).await;
    Ok(Guarded {
        value,
        ending,
        cleanup,
    })
}
