//! The one error type of `keyhole-audit`.

/// What can go wrong writing or verifying an audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The log file could not be opened, read or written.
    #[error("audit log {path}: {source}")]
    Io {
        /// The log file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line is not a well-formed record.
    #[error("audit log line {line}: not a valid record ({reason})")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A record's hash does not match its content: it was edited (or the log was written with
    /// another audit key, or with none).
    #[error(
        "audit log line {line}: record {seq} was modified (its hash does not match its content; a log written with --audit-key-file verifies only with that same key)"
    )]
    Modified {
        /// 1-based line number.
        line: usize,
        /// The record's sequence number.
        seq: u64,
    },
    /// A record does not follow the one before it: records were removed, inserted or reordered.
    #[error(
        "audit log line {line}: record {seq} does not follow record {expected_seq} (records were removed, inserted or reordered)"
    )]
    Broken {
        /// 1-based line number.
        line: usize,
        /// The record's sequence number.
        seq: u64,
        /// The sequence number that should have been here.
        expected_seq: u64,
    },
    /// An existing log ends in a record that fails verification; appending would hide it.
    #[error(
        "refusing to append to {path}: it does not verify ({reason}); keep it as evidence and start a new log"
    )]
    Tampered {
        /// The log file.
        path: String,
        /// Why it does not verify.
        reason: String,
    },
    /// The audit key file cannot be used.
    #[error("audit key {path}: {reason}")]
    Key {
        /// The key file.
        path: String,
        /// What is wrong with it (never the key itself).
        reason: String,
    },
    /// A pod given to the post-scan audit is not a Pod.
    #[error("pod snapshot: {reason}")]
    Snapshot {
        /// What is missing.
        reason: String,
    },
}
