//! End of (standard or LTS) support of well-known releases, as data: one row per release, and
//! the date the table was last checked against the distributions' published schedules.
//!
//! Support dates move (extended support, early retirement) and new releases appear every few
//! months, so the table is only trusted for [`TRUSTED_DAYS`] after [`CHECKED`]: a scan later
//! than that reports the table as possibly stale instead of judging by it (see [`stale`]).
//! Refreshing the table means editing the rows and [`CHECKED`], here and nowhere else.

use jiff::civil::{Date, date};

/// When the rows below were last checked against the distributions' published support dates.
pub(super) const CHECKED: Date = date(2026, 11, 26);

/// How many days after [`CHECKED`] the table is trusted. Ubuntu, Alpine and Fedora-derived
/// releases come every six months, and support dates are announced or changed on that cadence;
/// a table older than one such cycle has likely missed a release or a changed date.
pub(super) const TRUSTED_DAYS: i32 = 180;

/// `(ID, VERSION_ID prefix, end of support)` of `os-release`. A prefix matches the whole
/// version or up to a dot (`3.19` matches `3.19.1`). Dates are checked at compile time.
const TABLE: &[(&str, &str, Date)] = &[
    ("debian", "7", date(2018, 5, 31)),
    ("debian", "8", date(2020, 6, 30)),
    ("debian", "9", date(2022, 6, 30)),
    ("debian", "10", date(2024, 6, 30)),
    ("debian", "11", date(2026, 8, 31)),
    ("debian", "12", date(2028, 6, 30)),
    ("debian", "13", date(2030, 6, 30)),
    ("ubuntu", "14.04", date(2019, 4, 30)),
    ("ubuntu", "16.04", date(2021, 4, 30)),
    ("ubuntu", "18.04", date(2023, 5, 31)),
    ("ubuntu", "20.04", date(2025, 5, 31)),
    ("ubuntu", "22.04", date(2027, 6, 1)),
    ("ubuntu", "23.10", date(2024, 7, 11)),
    ("ubuntu", "24.04", date(2029, 5, 31)),
    ("ubuntu", "24.10", date(2025, 7, 10)),
    ("ubuntu", "25.04", date(2026, 1, 15)),
    ("alpine", "3.12", date(2022, 5, 1)),
    ("alpine", "3.13", date(2022, 11, 1)),
    ("alpine", "3.14", date(2023, 5, 1)),
    ("alpine", "3.15", date(2023, 11, 1)),
    ("alpine", "3.16", date(2024, 5, 23)),
    ("alpine", "3.17", date(2024, 11, 22)),
    ("alpine", "3.18", date(2025, 5, 9)),
    ("alpine", "3.19", date(2025, 11, 1)),
    ("alpine", "3.20", date(2026, 4, 1)),
    ("alpine", "3.21", date(2026, 11, 1)),
    ("alpine", "3.22", date(2027, 5, 1)),
    ("centos", "7", date(2024, 6, 30)),
    ("centos", "8", date(2021, 12, 31)),
    ("rhel", "7", date(2024, 6, 30)),
    ("rhel", "8", date(2029, 5, 31)),
    ("rhel", "9", date(2032, 5, 31)),
    ("rocky", "8", date(2029, 5, 31)),
    ("rocky", "9", date(2032, 5, 31)),
    ("almalinux", "8", date(2029, 5, 31)),
    ("almalinux", "9", date(2032, 5, 31)),
    ("ol", "7", date(2024, 12, 31)),
    ("ol", "8", date(2029, 7, 31)),
    ("ol", "9", date(2032, 6, 30)),
    ("amzn", "2", date(2026, 6, 30)),
    ("amzn", "2023", date(2029, 6, 30)),
];

/// The end-of-life date of a release, when known.
pub(super) fn end_of_life(id: &str, version_id: &str) -> Option<Date> {
    TABLE
        .iter()
        .find(|(i, prefix, _)| {
            *i == id
                && (version_id == *prefix
                    || version_id
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('.')))
        })
        .map(|(_, _, date)| *date)
}

/// Why the table cannot be trusted on `today`, or `None` while it can (up to and including
/// [`TRUSTED_DAYS`] after [`CHECKED`]).
pub(super) fn stale(today: Date) -> Option<String> {
    let days = CHECKED
        .until(today)
        .map_or(i32::MAX, |span| span.get_days());
    (days > TRUSTED_DAYS).then(|| {
        format!(
            "keyhole's end-of-life table was last checked on {CHECKED}, {days} days before this \
             scan ({today}; it is trusted for {TRUSTED_DAYS} days), so it may be stale: new \
             releases may be missing and support dates may have changed. Update keyhole for a \
             current table, or waive this control until then"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_of_life_matches_whole_components() {
        assert_eq!(end_of_life("alpine", "3.19.1"), Some(date(2025, 11, 1)));
        assert_eq!(end_of_life("alpine", "3.1"), None);
        assert_eq!(end_of_life("debian", "12"), Some(date(2028, 6, 30)));
        assert_eq!(end_of_life("debian", "120"), None);
        assert_eq!(end_of_life("rhel", "9.4"), Some(date(2032, 5, 31)));
        assert_eq!(end_of_life("plan9", "4"), None);
    }

    #[test]
    fn the_table_is_trusted_for_180_days_after_its_check() {
        assert_eq!(CHECKED, date(2026, 11, 26), "a test date below assumes it");
        assert_eq!(stale(date(2026, 11, 26)), None);
        assert_eq!(
            stale(date(2025, 1, 1)),
            None,
            "a scan dated before the check"
        );
        // 2026-11-26 + 180 days = 2027-05-25: the last trusted day.
        assert_eq!(stale(date(2027, 5, 25)), None);
        let message = stale(date(2027, 5, 26)).expect("181 days after the check");
        assert!(
            message.contains("last checked on 2026-11-26, 181 days before this scan (2027-05-26"),
            "{message}"
        );
        assert!(message.contains("may be stale"), "{message}");
    }

    #[test]
    fn rows_are_unique() {
        for (i, (id, version, _)) in TABLE.iter().enumerate() {
            assert!(
                !TABLE[..i].iter().any(|(j, v, _)| j == id && v == version),
                "{id} {version} twice"
            );
        }
    }
}
