//! Many writers, one log: each append locks the file and chains onto what the others wrote.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};

use keyhole_audit::{AuditError, AuditKey, AuditLog, Event, Record, verify, verify_with};

use crate::{events, temp_log};

const WRITERS: usize = 20;
const BATCHES: usize = 10;

/// 20 threads, each with its own handle (its own open file description, as separate
/// processes have), append interleaved batches to one log, released at once by a barrier.
fn hammer(name: &str, key: impl Fn() -> Option<AuditKey>) -> (std::path::PathBuf, Vec<Record>) {
    let path = temp_log(name);
    // Every writer opens the log (empty, or with the others' first records) before any appends.
    let barrier = Arc::new(Barrier::new(WRITERS));
    let handles: Vec<_> = (0..WRITERS)
        .map(|w| {
            let mut log = AuditLog::open_with(&path, key()).unwrap();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let run = format!("writer{w:04}");
                let t = jiff::Timestamp::UNIX_EPOCH;
                for b in 0..BATCHES {
                    if b % 2 == 0 {
                        log.append(&run, t, events(0)[0].clone()).unwrap();
                    } else {
                        assert_eq!(log.append_all(&run, t, events(1)).unwrap(), 3);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a writer panicked");
    }
    let records: Vec<Record> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (path, records)
}

/// Each writer's records appear in its own order, each `append_all` batch contiguous.
fn check_batches(records: &[Record]) {
    let per_batch = (BATCHES / 2) + (BATCHES / 2) * 3;
    assert_eq!(records.len(), WRITERS * per_batch);
    let mut by_writer: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    let mut i = 0;
    while i < records.len() {
        let r = &records[i];
        // A batch is RunStarted, ObjectCreated, CleanupVerified; a single append, RunStarted.
        let len = match records.get(i + 1).map(|n| &n.event) {
            Some(Event::ObjectCreated(_)) => 3,
            _ => 1,
        };
        assert!(matches!(r.event, Event::RunStarted { .. }), "record {i}");
        for r in &records[i..i + len] {
            assert_eq!(
                r.run_id, records[i].run_id,
                "batch at record {i} interleaved"
            );
            by_writer.entry(&r.run_id).or_default().push(r);
        }
        i += len;
    }
    assert_eq!(by_writer.len(), WRITERS);
    for (w, rs) in by_writer {
        assert_eq!(rs.len(), per_batch, "{w}");
    }
}

#[test]
fn twenty_concurrent_writers_keep_one_chain() {
    let (path, records) = hammer("concurrent.jsonl", || None);
    let report = verify(&path).unwrap();
    assert_eq!(report.records as usize, records.len());
    check_batches(&records);
}

#[test]
fn twenty_concurrent_writers_keep_one_keyed_chain() {
    let key = || Some(AuditKey::from_bytes(vec![7u8; 32]).unwrap());
    let (path, records) = hammer("concurrent-keyed.jsonl", key);
    let report = verify_with(&path, key().as_ref()).unwrap();
    assert_eq!(report.records as usize, records.len());
    check_batches(&records);
    assert!(verify(&path).is_err(), "a keyed chain is not a plain one");
}

#[test]
fn a_tampered_record_of_another_writer_stops_the_next_append() {
    let path = temp_log("other-writer.jsonl");
    let mut mine = AuditLog::open(&path).unwrap();
    let mut theirs = AuditLog::open(&path).unwrap();
    let t = jiff::Timestamp::UNIX_EPOCH;
    mine.append("mine000001", t, events(0)[0].clone()).unwrap();
    theirs
        .append("theirs0001", t, events(0)[0].clone())
        .unwrap();
    // The other writer's record (the second line, which `mine` has not read yet) is edited.
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replacen("theirs0001", "theirs0002", 1);
    assert_ne!(text, edited);
    std::fs::write(&path, edited).unwrap();
    let err = mine
        .append("mine000001", t, events(0)[0].clone())
        .unwrap_err();
    assert!(
        matches!(&err, AuditError::Tampered { reason, .. } if reason.contains("line 2")),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().lines().count(),
        2,
        "nothing appended"
    );
}

#[test]
fn a_log_that_shrinks_while_open_is_not_appended_to() {
    let path = temp_log("shrunk.jsonl");
    let mut log = AuditLog::open(&path).unwrap();
    let t = jiff::Timestamp::UNIX_EPOCH;
    log.append_all("abcdefghij", t, events(2)).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let first: String = text.lines().next().unwrap().to_string() + "\n";
    std::fs::write(&path, &first).unwrap();
    let err = log
        .append("abcdefghij", t, events(0)[0].clone())
        .unwrap_err();
    assert!(
        matches!(&err, AuditError::Tampered { reason, .. } if reason.contains("shrank")),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
}
