//! The hash-chained JSON Lines log: writing and verification.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::{AuditError, Event};

/// The `prev` of the first record: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the log, from 0, without gaps.
    pub seq: u64,
    /// When it was written (RFC 3339, UTC).
    pub time: String,
    /// The run it belongs to.
    pub run_id: String,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
    /// The hash of the previous record ([`GENESIS`] for the first).
    pub prev: String,
    /// SHA-256 (hex) of this record's canonical JSON without the `hash` field.
    pub hash: String,
}

/// JSON with object keys sorted at every level and no whitespace, so the hash does not depend
/// on field order (serde_json's map order changes with its `preserve_order` feature, which any
/// crate in a build can switch on).
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The hash of a record given as JSON; the `hash` field, if present, is left out.
fn hash_of(record: &Value) -> String {
    let mut body = record.clone();
    if let Value::Object(m) = &mut body {
        m.remove("hash");
    }
    let mut text = String::new();
    canonical(&body, &mut text);
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a successful verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Number of records.
    pub records: u64,
    /// Hash of the last record ([`GENESIS`] for an empty log). Keep it somewhere else (a CI
    /// log, a ticket): a log cut short after its last record can only be detected against it.
    pub head: String,
}

/// Verifies a whole log given as text.
pub fn verify_str(text: &str) -> Result<VerifyReport, AuditError> {
    let mut prev = GENESIS.to_string();
    let mut seq = 0u64;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            return Err(AuditError::Malformed {
                line: line_no,
                reason: "empty line".into(),
            });
        }
        let value: Value = serde_json::from_str(line).map_err(|e| AuditError::Malformed {
            line: line_no,
            reason: e.to_string(),
        })?;
        let record: Record =
            serde_json::from_value(value.clone()).map_err(|e| AuditError::Malformed {
                line: line_no,
                reason: e.to_string(),
            })?;
        if hash_of(&value) != record.hash {
            return Err(AuditError::Modified {
                line: line_no,
                seq: record.seq,
            });
        }
        if record.seq != seq || record.prev != prev {
            return Err(AuditError::Broken {
                line: line_no,
                seq: record.seq,
                expected_seq: seq,
            });
        }
        prev = record.hash;
        seq += 1;
    }
    Ok(VerifyReport {
        records: seq,
        head: prev,
    })
}

/// Verifies the log at `path` (`keyhole audit verify LOG`).
pub fn verify(path: &Path) -> Result<VerifyReport, AuditError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuditError::Io {
        path: path.display().to_string(),
        source,
    })?;
    verify_str(&text)
}

/// An open log, appended to one record at a time.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
    next_seq: u64,
    head: String,
    last: Option<Record>,
}

impl AuditLog {
    /// Opens (or creates, mode 0600) the log at `path`. An existing log is verified first:
    /// appending to a tampered log would bury the evidence under valid records.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let io = |source| AuditError::Io {
            path: path.display().to_string(),
            source,
        };
        let report = match std::fs::read_to_string(path) {
            Ok(text) => verify_str(&text).map_err(|e| AuditError::Tampered {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => VerifyReport {
                records: 0,
                head: GENESIS.to_string(),
            },
            Err(e) => return Err(io(e)),
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            next_seq: report.records,
            head: report.head,
            last: None,
        })
    }

    /// Appends one record and flushes it to disk before returning, so a crash right after an
    /// action still leaves the record of it.
    pub fn append(
        &mut self,
        run_id: &str,
        time: Timestamp,
        event: Event,
    ) -> Result<&Record, AuditError> {
        self.append_all(run_id, time, [event])?;
        Ok(self.last.as_ref().expect("one record was appended"))
    }

    /// Appends several records (chained in order) with one write and one flush to disk: for
    /// events that happen together, such as the checks of one verification, where a flush per
    /// record would cost a disk round trip each. Returns how many were appended.
    pub fn append_all(
        &mut self,
        run_id: &str,
        time: Timestamp,
        events: impl IntoIterator<Item = Event>,
    ) -> Result<usize, AuditError> {
        let mut text = String::new();
        let mut seq = self.next_seq;
        let mut head = self.head.clone();
        let mut last = None;
        for event in events {
            let mut record = Record {
                seq,
                time: time.to_string(),
                run_id: run_id.to_string(),
                event,
                prev: head,
                hash: String::new(),
            };
            let value = serde_json::to_value(&record).expect("records always serialize");
            record.hash = hash_of(&value);
            text.push_str(&serde_json::to_string(&record).expect("records always serialize"));
            text.push('\n');
            seq += 1;
            head = record.hash.clone();
            last = Some(record);
        }
        let Some(last) = last else { return Ok(0) };
        let io = |source| AuditError::Io {
            path: self.path.display().to_string(),
            source,
        };
        self.file.write_all(text.as_bytes()).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        let count = (seq - self.next_seq) as usize;
        self.next_seq = seq;
        self.head = head;
        self.last = Some(last);
        Ok(count)
    }

    /// Hash of the last record written.
    pub fn head(&self) -> &str {
        &self.head
    }
}
