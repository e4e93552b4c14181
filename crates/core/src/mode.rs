//! The scan workflows.

use std::fmt;

use crate::CoreError;

/// How Keyhole reaches the target container's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScanMode {
    /// One exec session into the target container running a generated POSIX `sh` script.
    Standard,
    /// An ephemeral debug container sharing the target's PID namespace, reading
    /// `/proc/<pid>/root`.
    Distroless,
    /// A scanner sidecar already in the pod (`shareProcessNamespace: true`).
    Sidecar,
    /// Standard when the target has a working `sh`, else distroless; decided at scan time.
    Auto,
}

impl ScanMode {
    /// Every mode, in a stable order (for tests and help texts).
    pub const ALL: [ScanMode; 4] = [Self::Standard, Self::Distroless, Self::Sidecar, Self::Auto];

    /// The lowercase name used on the command line and in labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Distroless => "distroless",
            Self::Sidecar => "sidecar",
            Self::Auto => "auto",
        }
    }

    /// True for modes that are fixed before the scan starts (all but `auto`).
    pub fn is_concrete(self) -> bool {
        self != Self::Auto
    }
}

impl fmt::Display for ScanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ScanMode {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| CoreError::UnknownMode(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects() {
        for m in ScanMode::ALL {
            assert_eq!(m.as_str().parse::<ScanMode>(), Ok(m));
        }
        assert_eq!(
            "Standard".parse::<ScanMode>().unwrap_err().to_string(),
            "unknown scan mode \"Standard\": expected one of standard, distroless, sidecar, auto"
        );
    }
}
