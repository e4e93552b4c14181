//! The one parser of durations given by people: flags, environment variables, the agent's
//! time limit.

use std::time::Duration;

use crate::CoreError;

/// Parses a duration as people write it, with jiff's parser: `10m`, `1h30m`, `540s`, `500ms`,
/// `1.5h`, `2 hours`, or ISO 8601 `PT10M`. Every number needs a unit; negative durations are
/// refused.
///
/// # Errors
/// [`CoreError::InvalidDuration`], naming the input and the accepted forms.
pub fn parse_duration(input: &str) -> Result<Duration, CoreError> {
    let err = |reason: String| CoreError::InvalidDuration {
        value: input.to_string(),
        reason,
    };
    let parsed: jiff::SignedDuration = input.trim().parse().map_err(|e: jiff::Error| {
        err(format!(
            "use a number with a unit, e.g. 500ms, 540s, 10m or 1h30m ({e})"
        ))
    })?;
    Duration::try_from(parsed).map_err(|_| err("must not be negative".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_forms_people_write() {
        let secs = |s: &str| parse_duration(s).unwrap().as_secs_f64();
        assert_eq!(secs("10m"), 600.0);
        assert_eq!(secs("1h30m"), 5400.0);
        assert_eq!(secs("1h 30m"), 5400.0);
        assert_eq!(secs("540s"), 540.0);
        assert_eq!(secs("500ms"), 0.5);
        assert_eq!(secs("1.5h"), 5400.0);
        assert_eq!(secs("2 hours"), 7200.0);
        assert_eq!(secs("PT10M"), 600.0);
        assert_eq!(secs(" 10m "), 600.0);
        for bad in ["", "10", "m", "10x", "ten", "-10m", "99999999999999999999h"] {
            let e = parse_duration(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    proptest! {
        #[test]
        fn whole_units_parse_to_their_value(n in 0u64..100_000, unit in 0usize..4) {
            let (suffix, ms) = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)][unit];
            prop_assert_eq!(
                parse_duration(&format!("{n}{suffix}")).unwrap(),
                Duration::from_millis(n * ms)
            );
        }

        #[test]
        fn never_panics(s in "\\PC{0,16}") {
            let _ = parse_duration(&s);
        }
    }
}
