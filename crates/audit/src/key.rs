//! The optional audit key: with it, each record's hash is an HMAC-SHA256, so a log can only be
//! rewritten consistently by someone who holds the key.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use secrecy::{ExposeSecret as _, SecretSlice};

use crate::AuditError;

/// A secret key for an HMAC-chained audit log (`--audit-key-file`). Its bytes never appear in
/// `Debug` output, in errors or in a log line, and are wiped from memory on drop.
pub struct AuditKey(SecretSlice<u8>);

impl AuditKey {
    /// The shortest key accepted: 32 bytes, the size of the HMAC-SHA256 output.
    pub const MIN_LEN: usize = 32;

    /// A key from raw bytes, at least [`AuditKey::MIN_LEN`] of them.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, AuditError> {
        let len = bytes.len();
        let key = Self(SecretSlice::from(bytes));
        if len < Self::MIN_LEN {
            return Err(AuditError::Key {
                path: "(key bytes)".into(),
                reason: format!(
                    "it is {len} bytes long, fewer than {}: make one with `head -c 32 /dev/urandom > FILE && chmod 600 FILE`",
                    Self::MIN_LEN
                ),
            });
        }
        Ok(key)
    }

    /// Reads a key file: its bytes, without one trailing newline (so `openssl rand -hex 32 >
    /// FILE` works as well as raw random bytes). A file that its group or others may read or
    /// write is refused: whoever can read the key can rewrite the log.
    pub fn from_file(path: &Path) -> Result<Self, AuditError> {
        let bad = |reason: String| AuditError::Key {
            path: path.display().to_string(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        if !meta.is_file() {
            return Err(bad("not a regular file".into()));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(bad(format!(
                "its group or others may access it (mode {mode:04o}): whoever reads the key can rewrite the log; run `chmod 600 {}`",
                path.display()
            )));
        }
        let mut bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        Self::from_bytes(bytes).map_err(|e| match e {
            AuditError::Key { reason, .. } => bad(reason),
            other => other,
        })
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(<redacted>)")
    }
}
