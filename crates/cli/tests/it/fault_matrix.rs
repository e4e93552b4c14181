//! The fault matrix: every API call of a `keyhole access` session × {500, 403, 409, hang,
//! dropped connection, dropped answer after the call took effect}. Whatever fails, zero
//! keyhole-managed objects remain, the exit code says which phase failed, and the audit log
//! (whose chain verifies) says what was cleaned.

use keyhole_audit::Event;
use keyhole_cli::session::EXIT_SETUP_FAILED;
use keyhole_testkit::Fault;

use crate::session::HAPPY_CALLS;
use crate::support::{audited_objects, call_shapes, clean_ending, cluster, session};

const FAULTS: [Fault; 6] = [
    Fault::Status(500),
    Fault::Status(403),
    Fault::Status(409),
    Fault::Hang,
    Fault::DropConnection,
    Fault::DropAfterApply,
];

/// The exit code a single fault at call `index` must produce, whatever the fault.
fn expected_exit(index: usize) -> i32 {
    let call = HAPPY_CALLS[index];
    let reap_list = (1..=6).contains(&index);
    let teardown = call.contains("DELETE") || index >= 18;
    if teardown || reap_list {
        // Teardown retries transient failures; the reaper's lists retry them too, and a list
        // still refused or unanswered is a warning (earlier runs' leftovers of that kind wait
        // for `keyhole reap`): the run succeeds either way.
        0
    } else {
        // Everything else is setup: the command never runs.
        EXIT_SETUP_FAILED
    }
}

/// Runs one cell; returns a description of what went wrong, if anything.
async fn cell(index: usize, fault: Fault) -> Result<(), String> {
    let cluster = cluster();
    cluster.faults().fail_call(index, fault);
    let ran = session(&cluster, &["true"]).await;
    let o = &ran.outcome;
    let at = format!("call {index} ({}) × {fault:?}", HAPPY_CALLS[index]);
    let left = cluster.managed_objects();
    if !left.is_empty() {
        return Err(format!("{at}: left {left:?}; cleanup {:?}", o.cleanup));
    }
    let want = expected_exit(index);
    if o.exit_code != want {
        return Err(format!(
            "{at}: exit {} (want {want}); error {:?}; calls {:?}",
            o.exit_code,
            o.error,
            call_shapes(&cluster.calls())
        ));
    }
    if want == EXIT_SETUP_FAILED && o.error.is_none() {
        return Err(format!("{at}: a setup failure without a message"));
    }
    let (code, outcome) = clean_ending(&ran.records);
    if code != o.exit_code
        || (want != 0 && Some(&outcome) != o.error.as_ref().map(ToString::to_string).as_ref())
    {
        return Err(format!("{at}: audit says exit {code}: {outcome}"));
    }
    // Whatever the audit log says was created, it also says was deleted; an object whose
    // creation answer was lost appears at its deletion.
    let created = audited_objects(&ran.records, true);
    let deleted = audited_objects(&ran.records, false);
    if let Some(missing) = created.iter().find(|c| !deleted.contains(c)) {
        return Err(format!("{at}: audit: {missing} created, never deleted"));
    }
    let lost_create = fault == Fault::DropAfterApply && (7..=10).contains(&index);
    if lost_create && deleted.len() != created.len() + 1 {
        return Err(format!(
            "{at}: the object whose answer was lost is not in the audit log: {deleted:?}"
        ));
    }
    if !ran
        .records
        .iter()
        .any(|r| matches!(r.event, Event::RunStarted { .. }))
    {
        return Err(format!("{at}: no run_started record"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_times_every_fault_leaves_nothing_behind() {
    // The matrix is laid over the happy path's calls; check that they still are these.
    let baseline = cluster();
    let ran = session(&baseline, &["true"]).await;
    assert_eq!(ran.outcome.exit_code, 0);
    assert_eq!(call_shapes(&baseline.calls()), HAPPY_CALLS);

    // A few cells at a time: the call timeout is real time, and starving the sessions of CPU
    // would turn every call into a "hang".
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(3));
    let mut cells = tokio::task::JoinSet::new();
    for index in 0..HAPPY_CALLS.len() {
        for fault in FAULTS {
            let permits = permits.clone();
            cells.spawn(async move {
                let _permit = permits.acquire_owned().await.expect("never closed");
                cell(index, fault).await
            });
        }
    }
    let mut failures = Vec::new();
    let mut total = 0;
    while let Some(r) = cells.join_next().await {
        total += 1;
        if let Err(e) = r.expect("a cell panicked") {
            failures.push(e);
        }
    }
    assert_eq!(total, HAPPY_CALLS.len() * FAULTS.len());
    assert!(
        failures.is_empty(),
        "{} of {total} cells failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "fault matrix: {} calls × {} faults = {total} sessions, all clean",
        HAPPY_CALLS.len(),
        FAULTS.len()
    );
}
