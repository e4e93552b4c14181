//! How long a run's access may live.

use std::fmt;
use std::time::Duration;

use crate::CoreError;

/// The lifetime of a run's access: at least 10 minutes (the TokenRequest minimum, so the token
/// and the RBAC objects expire together) and at most 24 hours (anything longer is standing
/// access, not a scan).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ttl(Duration);

impl Ttl {
    /// Shortest TTL: Kubernetes refuses service-account tokens shorter than 600 s.
    pub const MIN: Duration = Duration::from_secs(600);
    /// Longest TTL.
    pub const MAX: Duration = Duration::from_secs(24 * 3600);

    /// Checks the bounds.
    pub fn new(d: Duration) -> Result<Self, CoreError> {
        if d < Self::MIN || d > Self::MAX {
            return Err(CoreError::InvalidTtl {
                value: format!("{}s", d.as_secs()),
                reason: "must be between 10m and 24h".into(),
            });
        }
        if d.subsec_nanos() != 0 {
            return Err(CoreError::InvalidTtl {
                value: format!("{d:?}"),
                reason: "must be whole seconds".into(),
            });
        }
        Ok(Self(d))
    }

    /// Parses a TTL with [`parse_duration`](crate::parse_duration) (`10m`, `1h30m`, `900s`,
    /// `1.5h`, ...) and checks the bounds.
    pub fn parse(input: &str) -> Result<Self, CoreError> {
        let d = crate::parse_duration(input).map_err(|e| CoreError::InvalidTtl {
            value: input.to_string(),
            reason: match e {
                CoreError::InvalidDuration { reason, .. } => reason,
                other => other.to_string(),
            },
        })?;
        Self::new(d).map_err(|e| CoreError::InvalidTtl {
            value: input.to_string(),
            reason: match e {
                CoreError::InvalidTtl { reason, .. } => reason,
                other => other.to_string(),
            },
        })
    }

    /// The TTL as a duration.
    pub fn duration(self) -> Duration {
        self.0
    }

    /// The TTL in whole seconds (what `expirationSeconds` takes).
    pub fn as_secs(self) -> i64 {
        // MAX is 86400, so this never truncates.
        self.0.as_secs() as i64
    }
}

impl Default for Ttl {
    /// The shortest allowed TTL, 10 minutes.
    fn default() -> Self {
        Self(Self::MIN)
    }
}

impl fmt::Display for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs();
        let (h, m, sec) = (s / 3600, s % 3600 / 60, s % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if sec > 0 {
            write!(f, "{sec}s")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Ttl {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_units_and_enforces_bounds() {
        assert_eq!(Ttl::parse("10m").unwrap().as_secs(), 600);
        assert_eq!(Ttl::parse("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(Ttl::parse("900s").unwrap().as_secs(), 900);
        assert_eq!(Ttl::parse("24h").unwrap().as_secs(), 86400);
        assert_eq!(Ttl::parse("1.5h").unwrap().as_secs(), 5400);
        for bad in [
            "",
            "9m",
            "599s",
            "24h1s",
            "10",
            "m",
            "10x",
            "600.5s",
            "-10m",
            "99999999999999999999h",
        ] {
            assert!(Ttl::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(secs in 600u64..=86400) {
            let t = Ttl::new(Duration::from_secs(secs)).unwrap();
            prop_assert_eq!(Ttl::parse(&t.to_string()).unwrap(), t);
        }

        #[test]
        fn parse_never_panics_and_respects_bounds(s in "\\PC{0,12}") {
            if let Ok(t) = Ttl::parse(&s) {
                prop_assert!(t.duration() >= Ttl::MIN && t.duration() <= Ttl::MAX);
            }
        }
    }
}
