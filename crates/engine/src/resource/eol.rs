//! End of (standard or LTS) support of well-known releases, as data: one table per
//! distribution, each with the date it was last checked against its source.
//!
//! Support dates move (extended support, early retirement) and new releases appear every few
//! months, so a table is only trusted for [`TRUSTED_DAYS`] after its check: a scan later than
//! that reports the table as possibly stale instead of judging by it (see [`stale`]).
//! Refreshing a distribution means editing its rows and its `checked` date, here and nowhere
//! else.

use jiff::civil::{Date, date};

/// How many days after its check a distribution's table is trusted. Ubuntu, Alpine and Fedora
/// ship every six months, and support dates are announced or changed on that cadence; a table
/// older than one such cycle has likely missed a release or a changed date.
pub(super) const TRUSTED_DAYS: i32 = 180;

/// The releases of one distribution.
struct Distribution {
    /// `ID` of `os-release`.
    id: &'static str,
    /// When the rows were last checked against their source (named in a comment above).
    checked: Date,
    /// `(VERSION_ID prefix, end of support)`. A prefix matches the whole version or up to a
    /// dot (`3.19` matches `3.19.1`). Dates are checked at compile time.
    releases: &'static [(&'static str, Date)],
}

/// Rows as written with the engine (2026-11-26) and not re-checked since: the machine that
/// refreshed Debian and Ubuntu from Debian's `distro-info-data` could reach only package
/// registries. Their `Check against` comment says where to refresh them.
const WRITTEN: Date = date(2026, 11, 26);

/// Rows of the RPM family (RHEL/UBI 10, Rocky and AlmaLinux 10, SUSE Linux Enterprise Server 15
/// service packs) added on this date from the vendors' lifecycle pages as known then; like
/// [`WRITTEN`], they could not be verified on the machine that wrote them (no offline source
/// covers them: Debian's `distro-info-data` has only Debian and Ubuntu).
const RPM_FAMILY_ADDED: Date = date(2026, 12, 3);

const TABLE: &[Distribution] = &[
    Distribution {
        id: "debian",
        // Source: distro-info-data 0.58+deb12u7, debian.csv, column eol-lts.
        checked: date(2026, 12, 3),
        releases: &[
            ("7", date(2018, 5, 31)),
            ("8", date(2020, 6, 30)),
            ("9", date(2022, 6, 30)),
            ("10", date(2024, 6, 30)),
            ("11", date(2026, 8, 31)),
            ("12", date(2028, 6, 30)),
            ("13", date(2030, 6, 30)),
        ],
    },
    Distribution {
        id: "ubuntu",
        // Source: distro-info-data 0.58+deb12u7, ubuntu.csv, column eol.
        checked: date(2026, 12, 3),
        releases: &[
            ("14.04", date(2019, 4, 25)),
            ("16.04", date(2021, 4, 30)),
            ("18.04", date(2023, 5, 31)),
            ("20.04", date(2025, 5, 29)),
            ("22.04", date(2027, 6, 1)),
            ("23.10", date(2024, 7, 11)),
            ("24.04", date(2029, 5, 31)),
            ("24.10", date(2025, 7, 10)),
            ("25.04", date(2026, 1, 15)),
            ("25.10", date(2026, 7, 9)),
            ("26.04", date(2031, 5, 29)),
            ("26.10", date(2027, 7, 15)),
        ],
    },
    Distribution {
        id: "alpine",
        // Check against: alpinelinux.org/releases.
        checked: WRITTEN,
        releases: &[
            ("3.12", date(2022, 5, 1)),
            ("3.13", date(2022, 11, 1)),
            ("3.14", date(2023, 5, 1)),
            ("3.15", date(2023, 11, 1)),
            ("3.16", date(2024, 5, 23)),
            ("3.17", date(2024, 11, 22)),
            ("3.18", date(2025, 5, 9)),
            ("3.19", date(2025, 11, 1)),
            ("3.20", date(2026, 4, 1)),
            ("3.21", date(2026, 11, 1)),
            ("3.22", date(2027, 5, 1)),
        ],
    },
    Distribution {
        id: "centos",
        // Check against: the CentOS project's end-of-life announcements.
        checked: WRITTEN,
        releases: &[("7", date(2024, 6, 30)), ("8", date(2021, 12, 31))],
    },
    Distribution {
        // UBI images carry `ID=rhel` and their RHEL release's `VERSION_ID`.
        id: "rhel",
        // Check against: Red Hat Enterprise Linux life cycle (end of maintenance support).
        // 7 to 9 written with the engine; 10 (GA May 2025) added with the RPM family.
        checked: WRITTEN,
        releases: &[
            ("7", date(2024, 6, 30)),
            ("8", date(2029, 5, 31)),
            ("9", date(2032, 5, 31)),
            ("10", date(2035, 5, 31)),
        ],
    },
    Distribution {
        id: "rocky",
        // Check against: Rocky Linux release notes (10 added with the RPM family).
        checked: WRITTEN,
        releases: &[
            ("8", date(2029, 5, 31)),
            ("9", date(2032, 5, 31)),
            ("10", date(2035, 5, 31)),
        ],
    },
    Distribution {
        id: "almalinux",
        // Check against: AlmaLinux release notes (10 added with the RPM family).
        checked: WRITTEN,
        releases: &[
            ("8", date(2029, 5, 31)),
            ("9", date(2032, 5, 31)),
            ("10", date(2035, 5, 31)),
        ],
    },
    Distribution {
        id: "ol",
        // Check against: Oracle Linux lifetime support policy (premier support).
        checked: WRITTEN,
        releases: &[
            ("7", date(2024, 12, 31)),
            ("8", date(2029, 7, 31)),
            ("9", date(2032, 6, 30)),
        ],
    },
    Distribution {
        id: "amzn",
        // Check against: Amazon Linux FAQs (end of support).
        checked: WRITTEN,
        releases: &[("2", date(2026, 6, 30)), ("2023", date(2029, 6, 30))],
    },
    Distribution {
        // SUSE Linux Enterprise Server and its BCI base images (`ID=sles`, `VERSION_ID=15.6`).
        id: "sles",
        // Check against: SUSE product support lifecycle, end of general support per service
        // pack (each ends six months after the next one ships; the last, SP7, at the end of
        // SLES 15's general support). Long-term service pack support (LTSS) is paid extra and
        // not counted. The service packs come before the bare `15`, which would match them too.
        checked: RPM_FAMILY_ADDED,
        releases: &[
            ("15.1", date(2021, 1, 31)),
            ("15.2", date(2021, 12, 31)),
            ("15.3", date(2022, 12, 31)),
            ("15.4", date(2023, 12, 31)),
            ("15.5", date(2024, 12, 31)),
            ("15.6", date(2025, 12, 31)),
            ("15.7", date(2031, 7, 31)),
            ("15", date(2019, 12, 31)),
        ],
    },
];

/// What the table says about a release of distribution `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Known {
    /// The release's end of support, if the table has the release.
    pub(super) eol: Option<Date>,
    /// When the distribution's rows were last checked.
    pub(super) checked: Date,
}

/// What the table knows of release `version_id` of distribution `id`; `None` for a
/// distribution it does not cover.
pub(super) fn lookup(id: &str, version_id: &str) -> Option<Known> {
    let d = TABLE.iter().find(|d| d.id == id)?;
    let eol = d
        .releases
        .iter()
        .find(|(prefix, _)| {
            version_id == *prefix
                || version_id
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.'))
        })
        .map(|(_, date)| *date);
    Some(Known {
        eol,
        checked: d.checked,
    })
}

/// Why rows checked on `checked` cannot be trusted on `today`, or `None` while they can (up to
/// and including [`TRUSTED_DAYS`] after the check).
pub(super) fn stale(id: &str, checked: Date, today: Date) -> Option<String> {
    let days = checked
        .until(today)
        .map_or(i32::MAX, |span| span.get_days());
    (days > TRUSTED_DAYS).then(|| {
        format!(
            "keyhole's end-of-life table for `{id}` was last checked on {checked}, {days} days \
             before this scan ({today}; it is trusted for {TRUSTED_DAYS} days), so it may be \
             stale: new releases may be missing and support dates may have changed. Update \
             keyhole for a current table, or waive this control until then"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eol(id: &str, version_id: &str) -> Option<Date> {
        lookup(id, version_id).and_then(|k| k.eol)
    }

    #[test]
    fn end_of_life_matches_whole_components() {
        assert_eq!(eol("alpine", "3.19.1"), Some(date(2025, 11, 1)));
        assert_eq!(eol("alpine", "3.1"), None);
        assert_eq!(eol("debian", "12"), Some(date(2028, 6, 30)));
        assert_eq!(eol("debian", "120"), None);
        assert_eq!(eol("rhel", "9.4"), Some(date(2032, 5, 31)));
        assert_eq!(eol("ubuntu", "26.04"), Some(date(2031, 5, 29)));
        // The RPM family: UBI is `rhel`; a SLES service pack is not its bare major release.
        assert_eq!(eol("rhel", "8.10"), Some(date(2029, 5, 31)));
        assert_eq!(eol("rhel", "10.0"), Some(date(2035, 5, 31)));
        assert_eq!(eol("rocky", "9.5"), Some(date(2032, 5, 31)));
        assert_eq!(eol("almalinux", "10.0"), Some(date(2035, 5, 31)));
        assert_eq!(eol("amzn", "2023"), Some(date(2029, 6, 30)));
        assert_eq!(eol("sles", "15.6"), Some(date(2025, 12, 31)));
        assert_eq!(eol("sles", "15.7"), Some(date(2031, 7, 31)));
        assert_eq!(eol("sles", "15"), Some(date(2019, 12, 31)));
        assert_eq!(
            eol("sles", "15.10"),
            Some(date(2019, 12, 31)),
            "an unknown pack: bare 15"
        );
        assert_eq!(eol("plan9", "4"), None);
        assert_eq!(lookup("plan9", "4"), None);
        assert_eq!(
            lookup("debian", "99").map(|k| k.checked),
            Some(date(2026, 12, 3)),
            "a release the table lacks still carries its distribution's check date"
        );
    }

    #[test]
    fn rows_are_trusted_for_180_days_after_their_check() {
        let checked = date(2026, 11, 26);
        assert_eq!(stale("alpine", checked, checked), None);
        assert_eq!(
            stale("alpine", checked, date(2025, 1, 1)),
            None,
            "a scan before the check"
        );
        // 2026-11-26 + 180 days = 2027-05-25: the last trusted day.
        assert_eq!(stale("alpine", checked, date(2027, 5, 25)), None);
        let message = stale("alpine", checked, date(2027, 5, 26)).expect("181 days after");
        assert!(
            message.contains(
                "table for `alpine` was last checked on 2026-11-26, 181 days before this scan \
                 (2027-05-26"
            ),
            "{message}"
        );
        assert!(message.contains("may be stale"), "{message}");
    }

    #[test]
    fn one_table_per_distribution_and_each_release_once() {
        for (i, d) in TABLE.iter().enumerate() {
            assert!(!TABLE[..i].iter().any(|e| e.id == d.id), "{} twice", d.id);
            assert!(!d.releases.is_empty(), "{} has no release", d.id);
            for (j, (version, _)) in d.releases.iter().enumerate() {
                assert!(
                    !d.releases[..j].iter().any(|(v, _)| v == version),
                    "{} {version} twice",
                    d.id
                );
            }
        }
    }
}
