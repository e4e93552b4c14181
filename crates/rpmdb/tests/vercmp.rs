//! rpm's version order against the real `rpm`: hand-picked cases with their known answers, then
//! thousands of generated pairs compared by `rpmlua` (`rpm.vercmp`) in one run.

use std::cmp::Ordering;
use std::process::Command;

use keyhole_rpmdb::{compare_evr, vercmp};

#[test]
fn known_cases() {
    use Ordering::*;
    for (a, b, want) in [
        ("1.0", "1.0", Equal),
        ("1.0", "2.0", Less),
        ("2.0.1", "2.0.1a", Less),
        ("5.5p1", "5.5p10", Less),
        ("10xyz", "10.1xyz", Less),
        ("xyz10", "xyz10.1", Less),
        ("1.0a", "1.0aa", Less),
        ("2.0", "2_0", Equal),
        ("1.0~rc1", "1.0", Less),
        ("1.0~rc1", "1.0~rc2", Less),
        ("1.0^", "1.0", Greater),
        ("1.0^git1", "1.01", Less),
        ("1.0^git1~pre", "1.0^git1", Less),
        ("4.999.9", "5.0", Less),
        ("1.0", "1.0.0", Less),
        ("a", "1", Less),
        ("1.010", "1.9", Greater),
        ("1.001", "1.1", Equal),
    ] {
        assert_eq!(vercmp(a, b), want, "{a} vs {b}");
        assert_eq!(vercmp(b, a), want.reverse(), "{b} vs {a}");
    }
    assert_eq!(compare_evr("1:1.0-1", "2.0-1"), Ordering::Greater);
    assert_eq!(compare_evr("0:2.0-1", "2.0-1"), Ordering::Equal);
    assert_eq!(compare_evr("2.0-10.el9", "2.0-9.el9"), Ordering::Greater);
    assert_eq!(compare_evr("2.0", "2.0-9.el9"), Ordering::Equal);
    assert_eq!(compare_evr("5.1.8-9.el9", "5.1.8-9.el9_4"), Ordering::Less);
}

/// Pieces of plain versions: digits with leading zeros, letters, separators, `~` and `^`.
const VERSION: &[&str] = &[
    "0", "1", "01", "10", "9", "a", "b", "rc", ".", "_", "~", "^", "+", "00", "z", "\u{e9}",
];
/// Pieces of `epoch:version-release` strings.
const EVR: &[&str] = &[
    "0", "1", "01", "10", "a", ".", "~", "^", "-", ":", "2:", "-1",
];

/// Deterministic strings of `pieces` that exercise every rule.
fn versions(n: usize, pieces: &[&str]) -> Vec<String> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|_| {
            let len = 1 + (next() % 6) as usize;
            (0..len)
                .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                .collect()
        })
        .collect()
}

/// `rpm.vercmp` of each pair, in one run of `rpmlua` (it compares `epoch:version-release`
/// strings; for strings with neither `:` nor `-` that is plain `rpmvercmp`).
fn rpm_vercmp(pairs: &[(&str, &str)]) -> Vec<i32> {
    let mut script = String::new();
    for (a, b) in pairs {
        script.push_str(&format!("print(rpm.vercmp({a:?}, {b:?}))\n"));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pairs.lua");
    std::fs::write(&path, script).unwrap();
    let out = Command::new("rpmlua").arg(&path).output().expect(
        "`rpmlua` is not installed: install Debian's `rpm` package (the project's tool list does)",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<i32> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(theirs.len(), pairs.len());
    theirs
}

fn check(pieces: &[&str], ours: fn(&str, &str) -> Ordering, keep: fn(&str, &str) -> bool) {
    let vs = versions(6000, pieces);
    let pairs: Vec<(&str, &str)> = vs
        .chunks(2)
        .map(|p| (p[0].as_str(), p[1].as_str()))
        .filter(|(a, b)| keep(a, b))
        .collect();
    assert!(pairs.len() > 1000, "only {} pairs", pairs.len());
    let theirs = rpm_vercmp(&pairs);
    let differ: Vec<String> = pairs
        .iter()
        .zip(theirs)
        .filter(|((a, b), want)| ours(a, b) as i32 != want.signum())
        .map(|((a, b), want)| format!("{a:?} vs {b:?}: rpm {want}, ours {:?}", ours(a, b)))
        .collect();
    assert!(
        differ.is_empty(),
        "{} differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
}

#[test]
fn generated_versions_order_as_rpm_does() {
    check(VERSION, vercmp, |_, _| true);
}

#[test]
fn generated_evrs_order_as_rpm_does() {
    // rpm.vercmp ranks a release above no release; compare_evr ignores the release then (a
    // profile's "2.0" matches every release of 2.0, as rpm's dependency ranges do), so only
    // pairs where both or neither have one are rpm.vercmp's to judge.
    fn has_release(s: &str) -> bool {
        s.trim_start_matches(|c: char| c.is_ascii_digit())
            .contains('-')
    }
    check(EVR, compare_evr, |a, b| has_release(a) == has_release(b));
}
