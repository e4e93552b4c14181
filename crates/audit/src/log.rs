//! The hash-chained JSON Lines log: writing and verification.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac as _};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::{AuditError, AuditKey, Event};

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
    /// SHA-256 (hex) of this record's canonical JSON without the `hash` field; with an audit
    /// key, HMAC-SHA256 under that key instead.
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

/// SHA-256 of `text`, or HMAC-SHA256 under `key`, in lowercase hex.
fn digest(key: Option<&AuditKey>, text: &[u8]) -> String {
    match key {
        None => hex::encode(Sha256::digest(text)),
        Some(k) => {
            let mut mac =
                Hmac::<Sha256>::new_from_slice(k.bytes()).expect("HMAC takes keys of any length");
            mac.update(text);
            hex::encode(mac.finalize().into_bytes())
        }
    }
}

/// The hash of a record given as JSON; the `hash` field, if present, is left out.
fn hash_of(record: &Value, key: Option<&AuditKey>) -> String {
    let mut body = record.clone();
    if let Value::Object(m) = &mut body {
        m.remove("hash");
    }
    let mut text = String::new();
    canonical(&body, &mut text);
    digest(key, text.as_bytes())
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

/// Verifies `text` as the continuation of a chain whose next record is `report.records` with
/// `prev` = `report.head`, at 1-based line `report.records + 1`; returns the extended chain.
fn verify_from(
    text: &str,
    mut report: VerifyReport,
    key: Option<&AuditKey>,
) -> Result<VerifyReport, AuditError> {
    for line in text.lines() {
        let seq = report.records;
        let line_no = usize::try_from(seq).unwrap_or(usize::MAX).saturating_add(1);
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
        if hash_of(&value, key) != record.hash {
            return Err(AuditError::Modified {
                line: line_no,
                seq: record.seq,
            });
        }
        if record.seq != seq || record.prev != report.head {
            return Err(AuditError::Broken {
                line: line_no,
                seq: record.seq,
                expected_seq: seq,
            });
        }
        report.head = record.hash;
        report.records += 1;
    }
    Ok(report)
}

fn empty() -> VerifyReport {
    VerifyReport {
        records: 0,
        head: GENESIS.to_string(),
    }
}

/// Verifies a whole log given as text (a plain SHA-256 chain).
pub fn verify_str(text: &str) -> Result<VerifyReport, AuditError> {
    verify_from(text, empty(), None)
}

/// Verifies a whole log given as text: an HMAC chain under `key`, or a plain SHA-256 chain.
pub fn verify_str_with(text: &str, key: Option<&AuditKey>) -> Result<VerifyReport, AuditError> {
    verify_from(text, empty(), key)
}

/// Verifies the log at `path` as a plain SHA-256 chain (`keyhole audit verify LOG`).
pub fn verify(path: &Path) -> Result<VerifyReport, AuditError> {
    verify_with(path, None)
}

/// Verifies the log at `path`: an HMAC chain under `key` (`keyhole audit verify
/// --audit-key-file KEY LOG`), or a plain SHA-256 chain. Reads under a shared lock, so an
/// append in progress is never seen half written.
pub fn verify_with(path: &Path, key: Option<&AuditKey>) -> Result<VerifyReport, AuditError> {
    let io = |source| AuditError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    file.lock_shared().map_err(io)?;
    let mut text = String::new();
    let read = file.read_to_string(&mut text);
    let _ = file.unlock();
    read.map_err(io)?;
    verify_str_with(&text, key)
}

/// An open log, appended to one batch of records at a time.
///
/// Several processes (or handles) may append to the same log: each append takes an exclusive
/// lock on the file (`flock`), first reads and verifies what others appended since this
/// handle's last look, chains onto it, writes and flushes, then unlocks. The lock is advisory:
/// it orders keyhole processes, not other programs writing the file.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
    key: Option<AuditKey>,
    /// The chain as far as this handle has read or written it.
    chain: VerifyReport,
    /// The file length that `chain` covers.
    end: u64,
    last: Option<Record>,
}

impl AuditLog {
    /// Opens (or creates, mode 0600) the plain SHA-256 chained log at `path`. An existing log
    /// is verified first: appending to a tampered log would bury the evidence under valid
    /// records.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        Self::open_with(path, None)
    }

    /// [`AuditLog::open`] for an HMAC chain under `key` when one is given: the existing log
    /// must verify under the same key (a plain log does not).
    pub fn open_with(path: &Path, key: Option<AuditKey>) -> Result<Self, AuditError> {
        let io = |source| AuditError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        file.lock_shared().map_err(io)?;
        let mut text = String::new();
        let read = file.read_to_string(&mut text);
        let _ = file.unlock();
        read.map_err(io)?;
        let chain = verify_str_with(&text, key.as_ref()).map_err(|e| AuditError::Tampered {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            key,
            chain,
            end: text.len() as u64,
            last: None,
        })
    }

    fn tampered(&self, reason: String) -> AuditError {
        AuditError::Tampered {
            path: self.path.display().to_string(),
            reason,
        }
    }

    fn io(&self, source: std::io::Error) -> AuditError {
        AuditError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Under the lock: reads and verifies what other writers appended since this handle last
    /// looked, so the next record chains onto the true end of the log.
    fn catch_up(&mut self) -> Result<(), AuditError> {
        let len = self.file.metadata().map_err(|e| self.io(e))?.len();
        if len < self.end {
            return Err(self.tampered(format!(
                "it shrank from {} to {len} bytes while open",
                self.end
            )));
        }
        if len == self.end {
            return Ok(());
        }
        let mut bytes = vec![0u8; usize::try_from(len - self.end).unwrap_or(usize::MAX)];
        self.file
            .read_exact_at(&mut bytes, self.end)
            .map_err(|e| self.io(e))?;
        let text = String::from_utf8(bytes).map_err(|_| {
            self.tampered(format!(
                "line {}: not UTF-8 text",
                self.chain.records.saturating_add(1)
            ))
        })?;
        self.chain = verify_from(&text, self.chain.clone(), self.key.as_ref())
            .map_err(|e| self.tampered(e.to_string()))?;
        self.end = len;
        Ok(())
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

    /// Appends several records (chained in order, contiguous in the file) with one write and
    /// one flush to disk: for events that happen together, such as the checks of one
    /// verification, where a flush per record would cost a disk round trip each. Returns how
    /// many were appended.
    pub fn append_all(
        &mut self,
        run_id: &str,
        time: Timestamp,
        events: impl IntoIterator<Item = Event>,
    ) -> Result<usize, AuditError> {
        let events: Vec<Event> = events.into_iter().collect();
        if events.is_empty() {
            return Ok(0);
        }
        self.file.lock().map_err(|e| self.io(e))?;
        let appended = self.append_locked(run_id, time, events);
        // Closing the file would release the lock too; unlocking now lets others go on.
        let _ = self.file.unlock();
        appended
    }

    fn append_locked(
        &mut self,
        run_id: &str,
        time: Timestamp,
        events: Vec<Event>,
    ) -> Result<usize, AuditError> {
        self.catch_up()?;
        let mut text = String::new();
        let mut chain = self.chain.clone();
        let mut last = None;
        for event in events {
            let mut record = Record {
                seq: chain.records,
                time: time.to_string(),
                run_id: run_id.to_string(),
                event,
                prev: chain.head,
                hash: String::new(),
            };
            let value = serde_json::to_value(&record).expect("records always serialize");
            record.hash = hash_of(&value, self.key.as_ref());
            text.push_str(&serde_json::to_string(&record).expect("records always serialize"));
            text.push('\n');
            chain.records += 1;
            chain.head = record.hash.clone();
            last = Some(record);
        }
        self.file
            .write_all(text.as_bytes())
            .map_err(|e| self.io(e))?;
        self.file.sync_data().map_err(|e| self.io(e))?;
        let count = usize::try_from(chain.records - self.chain.records).unwrap_or(usize::MAX);
        self.chain = chain;
        self.end += text.len() as u64;
        self.last = last;
        Ok(count)
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the whole log again, under a shared lock, and verifies it with this handle's key
    /// (or as a plain chain): what the post-scan audit checks after a run.
    pub fn read_verified(&self) -> Result<crate::VerifiedLog, AuditError> {
        let mut file = File::open(&self.path).map_err(|e| self.io(e))?;
        file.lock_shared().map_err(|e| self.io(e))?;
        let mut text = String::new();
        let read = file.read_to_string(&mut text);
        let _ = file.unlock();
        read.map_err(|e| self.io(e))?;
        let report = verify_str_with(&text, self.key.as_ref())?;
        Ok(crate::VerifiedLog { text, report })
    }

    /// Hash of the last record this handle knows of: its own last append, or the end of the log
    /// as read then (other writers may have appended since).
    pub fn head(&self) -> &str {
        &self.chain.head
    }
}
