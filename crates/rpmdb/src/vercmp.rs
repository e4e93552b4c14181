//! RPM version order (`rpmvercmp`), which differs from Debian's: versions are split into
//! numeric and alphabetic segments, numbers compare by value and beat letters, `~` sorts before
//! anything (pre-releases) and `^` after the base version but before anything else (snapshots).

use std::cmp::Ordering;

/// Compares two version (or release) strings as rpm does.
pub fn vercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (mut one, mut two) = (a.as_bytes(), b.as_bytes());
    let separator = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    loop {
        one = skip_while(one, separator);
        two = skip_while(two, separator);
        let (c1, c2) = (one.first().copied(), two.first().copied());
        if c1.is_none() && c2.is_none() {
            return Ordering::Equal;
        }
        // `~` sorts before everything, the end of the string included.
        if c1 == Some(b'~') || c2 == Some(b'~') {
            if c1 != Some(b'~') {
                return Ordering::Greater;
            }
            if c2 != Some(b'~') {
                return Ordering::Less;
            }
            (one, two) = (&one[1..], &two[1..]);
            continue;
        }
        // `^` sorts after the end of the string but before anything else.
        if c1 == Some(b'^') || c2 == Some(b'^') {
            if c1.is_none() {
                return Ordering::Less;
            }
            if c2.is_none() {
                return Ordering::Greater;
            }
            if c1 != Some(b'^') {
                return Ordering::Greater;
            }
            if c2 != Some(b'^') {
                return Ordering::Less;
            }
            (one, two) = (&one[1..], &two[1..]);
            continue;
        }
        let (Some(c1), Some(_)) = (c1, c2) else {
            // One ran out: whichever has something left wins.
            return if one.is_empty() {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        };
        let numeric = c1.is_ascii_digit();
        let class = |c: u8| {
            if numeric {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        };
        let (seg1, rest1) = split_while(one, class);
        let (seg2, rest2) = split_while(two, class);
        if seg2.is_empty() {
            // Segments of different kinds: a number is newer than letters.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let order = if numeric {
            let (s1, s2) = (
                skip_while(seg1, |c| c == b'0'),
                skip_while(seg2, |c| c == b'0'),
            );
            s1.len().cmp(&s2.len()).then_with(|| s1.cmp(s2))
        } else {
            seg1.cmp(seg2)
        };
        if order != Ordering::Equal {
            return order;
        }
        (one, two) = (rest1, rest2);
    }
}

/// Compares `[epoch:]version[-release]` strings as rpm compares packages: epoch first (absent
/// is 0), then version, then release — and the release only when both sides have one, as when
/// a profile names only a version.
pub fn compare_evr(a: &str, b: &str) -> Ordering {
    let (e1, v1, r1) = split_evr(a);
    let (e2, v2, r2) = split_evr(b);
    vercmp(e1, e2)
        .then_with(|| vercmp(v1, v2))
        .then_with(|| match (r1, r2) {
            (Some(r1), Some(r2)) => vercmp(r1, r2),
            _ => Ordering::Equal,
        })
}

/// Splits `[epoch:]version[-release]` as rpm does: the epoch is the leading digits before a
/// `:` (an empty one is 0), the release follows the last `-`.
fn split_evr(s: &str) -> (&str, &str, Option<&str>) {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (epoch, rest) = match s.as_bytes().get(digits) {
        Some(b':') if digits == 0 => ("0", &s[1..]),
        Some(b':') => (&s[..digits], &s[digits + 1..]),
        _ => ("0", s),
    };
    match rest.rsplit_once('-') {
        Some((v, r)) => (epoch, v, Some(r)),
        None => (epoch, rest, None),
    }
}

fn skip_while(s: &[u8], f: impl Fn(u8) -> bool) -> &[u8] {
    let n = s.iter().take_while(|&&c| f(c)).count();
    &s[n..]
}

fn split_while(s: &[u8], f: impl Fn(u8) -> bool) -> (&[u8], &[u8]) {
    let n = s.iter().take_while(|&&c| f(c)).count();
    s.split_at(n)
}
