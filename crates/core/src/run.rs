//! Run ids: the short random name shared by every object of one scan.

use std::fmt;

use crate::CoreError;

/// `N` bytes from the operating system's random source (`getrandom`): the one source of
/// randomness of every Keyhole crate (run ids, private file names, the test fake's tokens).
///
/// # Errors
/// [`CoreError::Random`] when the OS source fails.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CoreError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| CoreError::Random(e.to_string()))?;
    Ok(bytes)
}

/// Length of a run id: 36^9 * 26 ≈ 2.6e15 values, so ids do not collide across concurrent runs,
/// and `keyhole-<id>-anchor` stays far below the 63-character label limit.
const LEN: usize = 10;
const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A scan run's id: 10 characters `[a-z0-9]`, starting with a letter, so it is a valid DNS-1123
/// label on its own and inside every derived object name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct RunId(String);

impl RunId {
    /// A fresh id from the operating system's random source.
    pub fn generate() -> Result<Self, CoreError> {
        Ok(Self::from_random_bytes(random_bytes()?))
    }

    /// Maps random bytes onto the id alphabet (first character a letter). The modulo bias is
    /// irrelevant: ids must be unique, not secret.
    pub fn from_random_bytes(bytes: [u8; LEN]) -> Self {
        let id = bytes
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let n = if i == 0 { 26 } else { ALPHABET.len() };
                ALPHABET[*b as usize % n] as char
            })
            .collect();
        Self(id)
    }

    /// Parses an id given by the user (e.g. `--run-id`) or read back from a label.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        let b = s.as_bytes();
        let ok = b.len() == LEN
            && b[0].is_ascii_lowercase()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(CoreError::InvalidRunId(s.to_string()))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for RunId {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_random_bytes_make_a_parseable_label(bytes in proptest::array::uniform10(any::<u8>())) {
            let id = RunId::from_random_bytes(bytes);
            prop_assert_eq!(RunId::parse(id.as_str()), Ok(id.clone()));
            let anchor = format!("keyhole-{id}-anchor");
            prop_assert!(crate::Name::new(anchor).is_ok());
        }
    }

    #[test]
    fn generated_ids_differ() {
        let a = RunId::generate().unwrap();
        let b = RunId::generate().unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn parse_rejects_bad_ids() {
        for bad in [
            "",
            "abc",
            "0bcdefghij",
            "Abcdefghij",
            "abcdefghij1",
            "abcde-ghij",
        ] {
            assert!(RunId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_random_source_does_not_repeat() {
        let draws: std::collections::BTreeSet<[u8; 16]> =
            (0..64).map(|_| random_bytes::<16>().unwrap()).collect();
        assert_eq!(draws.len(), 64);
        let ids: std::collections::BTreeSet<RunId> =
            (0..64).map(|_| RunId::generate().unwrap()).collect();
        assert_eq!(ids.len(), 64);
    }
}
