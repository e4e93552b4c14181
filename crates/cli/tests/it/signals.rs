//! Signals delivered to the `keyhole access` process (against the HTTPS fake) at every step:
//! each API call of setup (held open by a hang fault), the command phase, and each teardown
//! call. SIGINT/SIGTERM/SIGHUP end in the one teardown with exit 130/143/129 (a signal during
//! teardown cannot interrupt it); SIGKILL leaves objects that `keyhole reap --expired-before`
//! removes. Zero keyhole-managed objects remain in every case.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use keyhole_testkit::Fault;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::session::HAPPY_CALLS;
use crate::support::{
    Served, audit_records, call_shapes, clean_ending, finish, kill, wait_for_call,
};

/// Index of the first teardown call of a session.
fn first_teardown() -> usize {
    HAPPY_CALLS
        .iter()
        .position(|c| c.contains("DELETE"))
        .expect("teardown deletes")
}

/// Where the signal lands.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// While API call N hangs.
    Call(usize),
    /// While the command runs.
    Command,
}

/// Starts `keyhole access`, waits for `step`, and delivers `signal`. Returns the served fake
/// (for assertions) and the finished process.
async fn deliver(
    step: Step,
    signal: &str,
    api_timeout: &str,
) -> (Served, crate::support::Finished) {
    let served = Served::new("signal").await;
    let command: &[&str] = match step {
        // Blocks until its stdin (the test's pipe) closes; announces itself first.
        Step::Command => &["sh", "-c", "echo KEYHOLE-READY; exec cat >/dev/null"],
        Step::Call(_) => &["true"],
    };
    if let Step::Call(i) = step {
        served.cluster.faults().fail_call(i, Fault::Hang);
    }
    let mut child = served
        .access(command, &[("KEYHOLE_API_TIMEOUT", api_timeout)])
        .spawn()
        .unwrap();
    match step {
        Step::Call(i) => wait_for_call(&served.cluster, i).await,
        Step::Command => {
            let mut stdout = BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            tokio::time::timeout(Duration::from_secs(30), stdout.read_line(&mut line))
                .await
                .expect("the command starts")
                .unwrap();
            assert_eq!(line.trim(), "KEYHOLE-READY");
        }
    }
    // The command ends when its stdin closes: keep it open until keyhole has ended, or the
    // command's own exit would race the signal. After SIGKILL nobody stops the command, so
    // closing stdin is what ends it.
    let stdin = child.stdin.take();
    kill(child.id().expect("running"), signal);
    let stdin = if signal == "-KILL" {
        drop(stdin);
        None
    } else {
        stdin
    };
    let done = finish(child).await;
    drop(stdin);
    (served, done)
}

/// Checks one graceful-signal cell; returns a description of what went wrong.
async fn graceful(step: Step, signal: &str, exit: i32) -> Result<(), String> {
    // Setup hangs outlast the signal; teardown hangs end after 500 ms and teardown goes on.
    let teardown = matches!(step, Step::Call(i) if i >= first_teardown());
    let timeout = if teardown { "500ms" } else { "20s" };
    let (served, done) = deliver(step, signal, timeout).await;
    let at = format!("{signal} at {step:?}");
    let left = served.cluster.managed_objects();
    if !left.is_empty() {
        return Err(format!("{at}: left {left:?}\n{}", done.stderr));
    }
    // A signal during teardown is absorbed: the run had completed, its exit code stands.
    let want = if teardown { 0 } else { exit };
    if done.code != Some(want) {
        return Err(format!(
            "{at}: exit {:?} (want {want}); stderr {}; calls {:?}",
            done.code,
            done.stderr,
            call_shapes(&served.cluster.calls())
        ));
    }
    let records = audit_records(&served.audit);
    let (code, outcome) = clean_ending(&records);
    let name = signal.trim_start_matches('-');
    if code != want || (!teardown && outcome != format!("stopped by SIG{name}")) {
        return Err(format!("{at}: audit says {code}: {outcome}"));
    }
    Ok(())
}

/// Runs cells two at a time (each is a process and an HTTPS server) and collects failures.
async fn run_cells<F>(cells: Vec<F>) -> Vec<String>
where
    F: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(2));
    let mut set = tokio::task::JoinSet::new();
    for c in cells {
        let permits = permits.clone();
        set.spawn(async move {
            let _p = permits.acquire_owned().await.expect("never closed");
            c.await
        });
    }
    let mut failures = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Err(e) = r.expect("a cell panicked") {
            failures.push(e);
        }
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_sigterm_and_sighup_at_every_step_leave_nothing() {
    let mut cells = Vec::new();
    let mut size = 0;
    for i in 0..HAPPY_CALLS.len() {
        // Both signals at every setup call; teardown calls alternate (each holds 500 ms).
        let signals: &[(&str, i32)] = if i < first_teardown() {
            &[("-INT", 130), ("-TERM", 143)]
        } else if i % 2 == 0 {
            &[("-INT", 130)]
        } else {
            &[("-TERM", 143)]
        };
        for (sig, code) in signals {
            cells.push(graceful(Step::Call(i), sig, *code));
            size += 1;
        }
    }
    for (sig, code) in [("-INT", 130), ("-TERM", 143), ("-HUP", 129)] {
        cells.push(graceful(Step::Command, sig, code));
        size += 1;
    }
    cells.push(graceful(Step::Call(8), "-HUP", 129));
    size += 1;
    let failures = run_cells(cells).await;
    assert!(
        failures.is_empty(),
        "{} of {size} signal cells failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("signals: {size} deliveries, all clean");
}

/// SIGKILL at `step`, then `keyhole reap` as of after the expiry. Returns how many objects the
/// killed run had left (for the test's own meaningfulness check).
async fn killed(step: Step) -> Result<usize, String> {
    let (served, done) = deliver(step, "-KILL", "20s").await;
    let at = format!("SIGKILL at {step:?}");
    if done.code.is_some() {
        return Err(format!("{at}: exited {:?} instead of dying", done.code));
    }
    // Every audit record that was written survives the kill intact.
    keyhole_audit::verify(&served.audit).map_err(|e| format!("{at}: audit: {e}"))?;
    served.cluster.faults().clear();
    let left = served.cluster.managed_objects().len();
    // Not yet expired: a reap as of now must keep a run that might still be going.
    let (code, stdout, stderr) = served.reap(Timestamp::now()).await;
    if code != 0 || served.cluster.managed_objects().len() != left {
        return Err(format!("{at}: early reap: {code} {stdout} {stderr}"));
    }
    let after_expiry = Timestamp::now() + SignedDuration::from_secs(10 * 60 + 5);
    let (code, stdout, stderr) = served.reap(after_expiry).await;
    let remaining = served.cluster.managed_objects();
    if code != 0 || !remaining.is_empty() {
        return Err(format!(
            "{at}: reap exit {code}, left {remaining:?}\n{stdout}\n{stderr}"
        ));
    }
    if left > 0 && !stdout.contains(&format!("{left} selected")) {
        return Err(format!("{at}: reap report: {stdout}"));
    }
    Ok(left)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_every_step_then_reap_after_expiry_leaves_nothing() {
    let mut steps: Vec<Step> = (0..HAPPY_CALLS.len()).map(Step::Call).collect();
    steps.push(Step::Command);
    let size = steps.len();
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(2));
    let mut set = tokio::task::JoinSet::new();
    for step in steps {
        let permits = permits.clone();
        set.spawn(async move {
            let _p = permits.acquire_owned().await.expect("never closed");
            killed(step).await
        });
    }
    let mut failures = Vec::new();
    let mut leftovers = 0;
    while let Some(r) = set.join_next().await {
        match r.expect("a cell panicked") {
            Ok(n) => leftovers += n,
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {size} SIGKILL cells failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        leftovers >= 4 * 8,
        "SIGKILL must have left objects for the reaper to find: {leftovers}"
    );
    eprintln!("SIGKILL: {size} steps, {leftovers} leftover objects reaped, all clean");
}
