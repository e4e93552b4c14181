//! Parsers of the target's own files: account databases, `os-release`, package databases,
//! dpkg checksums and the process files under `/proc/<pid>/`. The input is attacker-controlled:
//! every parser is total (malformed lines are kept with the values that could be read, never a
//! panic), works on bytes, and allocates in proportion to its (already capped) input.

use std::collections::BTreeMap;

/// Lines of a text file (without the `\n`, a final `\r` kept), with their 1-based number.
fn lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.is_empty())
}

fn number(field: Option<&[u8]>) -> Option<i64> {
    let s = std::str::from_utf8(field?).ok()?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// How an account's password field is set, without ever exposing the hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PasswordState {
    /// Empty: anyone may log in without a password.
    Empty,
    /// `x` in `/etc/passwd`: the hash is in `/etc/shadow`.
    Shadowed,
    /// Starts with `!` or `*`: no password login.
    Locked,
    /// A hash.
    Set,
}

impl PasswordState {
    fn of(field: &[u8]) -> Self {
        match field {
            [] => Self::Empty,
            b"x" => Self::Shadowed,
            [b'!' | b'*', ..] => Self::Locked,
            _ => Self::Set,
        }
    }

    /// The word used in profiles.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Shadowed => "shadowed",
            Self::Locked => "locked",
            Self::Set => "set",
        }
    }
}

/// The hashing scheme of a `crypt(3)` hash, from its prefix.
pub(crate) fn hash_scheme(field: &[u8]) -> &'static str {
    let h = {
        let mut h = field;
        while let [b'!', rest @ ..] = h {
            h = rest;
        }
        h
    };
    match h {
        [] | [b'*', ..] => "none",
        _ if h.starts_with(b"$1$") => "md5",
        _ if h.starts_with(b"$2a$") || h.starts_with(b"$2b$") || h.starts_with(b"$2y$") => {
            "blowfish"
        }
        _ if h.starts_with(b"$5$") => "sha256",
        _ if h.starts_with(b"$6$") => "sha512",
        _ if h.starts_with(b"$y$") => "yescrypt",
        _ if h.starts_with(b"$gy$") => "gost-yescrypt",
        _ if h.starts_with(b"$7$") => "scrypt",
        _ if h.starts_with(b"$sha1$") => "sha1",
        _ if h.starts_with(b"$md5") => "sunmd5",
        _ if h.len() == 13 && !h.starts_with(b"$") => "des",
        _ => "unknown",
    }
}

/// One line of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PasswdEntry {
    pub(crate) user: Vec<u8>,
    pub(crate) password: PasswordState,
    pub(crate) uid: Option<i64>,
    pub(crate) gid: Option<i64>,
    pub(crate) gecos: Vec<u8>,
    pub(crate) home: Vec<u8>,
    pub(crate) shell: Vec<u8>,
    pub(crate) line: usize,
}

/// Parses `/etc/passwd` (comment lines skipped).
pub(crate) fn passwd(bytes: &[u8]) -> Vec<PasswdEntry> {
    lines(bytes)
        .filter(|(_, l)| !l.starts_with(b"#"))
        .map(|(line, l)| {
            let f: Vec<&[u8]> = l.splitn(7, |b| *b == b':').collect();
            let get = |i: usize| f.get(i).copied().unwrap_or_default().to_vec();
            PasswdEntry {
                user: get(0),
                password: PasswordState::of(f.get(1).copied().unwrap_or_default()),
                uid: number(f.get(2).copied()),
                gid: number(f.get(3).copied()),
                gecos: get(4),
                home: get(5),
                shell: get(6),
                line,
            }
        })
        .collect()
}

/// One line of `/etc/shadow`; the hash itself is reduced to its state and scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShadowEntry {
    pub(crate) user: Vec<u8>,
    pub(crate) password: PasswordState,
    pub(crate) scheme: &'static str,
    /// last change, min, max, warn, inactive, expire (days).
    pub(crate) days: [Option<i64>; 6],
}

/// Parses `/etc/shadow`.
pub(crate) fn shadow(bytes: &[u8]) -> Vec<ShadowEntry> {
    lines(bytes)
        .filter(|(_, l)| !l.starts_with(b"#"))
        .map(|(_, l)| {
            let f: Vec<&[u8]> = l.splitn(9, |b| *b == b':').collect();
            let pw = f.get(1).copied().unwrap_or_default();
            ShadowEntry {
                user: f.first().copied().unwrap_or_default().to_vec(),
                password: match PasswordState::of(pw) {
                    // In the shadow file `x` is no special marker; it is an unusable hash.
                    PasswordState::Shadowed => PasswordState::Set,
                    other => other,
                },
                scheme: hash_scheme(pw),
                days: std::array::from_fn(|i| number(f.get(i + 2).copied())),
            }
        })
        .collect()
}

/// One line of `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupEntry {
    pub(crate) name: Vec<u8>,
    pub(crate) password: PasswordState,
    pub(crate) gid: Option<i64>,
    pub(crate) members: Vec<String>,
}

/// Parses `/etc/group`.
pub(crate) fn group(bytes: &[u8]) -> Vec<GroupEntry> {
    lines(bytes)
        .filter(|(_, l)| !l.starts_with(b"#"))
        .map(|(_, l)| {
            let f: Vec<&[u8]> = l.splitn(4, |b| *b == b':').collect();
            GroupEntry {
                name: f.first().copied().unwrap_or_default().to_vec(),
                password: PasswordState::of(f.get(1).copied().unwrap_or_default()),
                gid: number(f.get(2).copied()),
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(|b| *b == b',')
                            .filter(|s| !s.is_empty())
                            .map(|s| String::from_utf8_lossy(s).into_owned())
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// Parses `os-release` (`KEY=value`, values optionally quoted, `\` escapes in double quotes).
pub(crate) fn os_release(bytes: &[u8]) -> BTreeMap<String, String> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = if let Some(inner) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            let mut s = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    s.extend(chars.next());
                } else {
                    s.push(c);
                }
            }
            s
        } else if let Some(inner) = v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
            inner.to_owned()
        } else {
            v.to_owned()
        };
        out.insert(k.trim().to_owned(), v);
    }
    out
}

/// An installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Package {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) architecture: String,
    pub(crate) manager: &'static str,
}

/// Paragraphs of an RFC 822-like database (dpkg status, apk installed), as `(key, value)`
/// lists; continuation lines are dropped (no field read here spans lines).
fn paragraphs(bytes: &[u8], sep: u8) -> Vec<Vec<(String, String)>> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            continue;
        }
        if let Some(i) = line.find(sep as char) {
            cur.push((line[..i].to_owned(), line[i + 1..].trim().to_owned()));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn field<'a>(p: &'a [(String, String)], key: &str) -> Option<&'a str> {
    p.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Installed packages of `/var/lib/dpkg/status` (state `installed` only).
pub(crate) fn dpkg_status(bytes: &[u8]) -> Vec<Package> {
    dpkg_packages(bytes, false)
}

/// Packages of one distroless `/var/lib/dpkg/status.d/` file: the package's control data, which
/// has no `Status` field (a file is there because the package is in the image); a stanza that
/// does have one counts only when it says `installed`.
pub(crate) fn dpkg_status_d(bytes: &[u8]) -> Vec<Package> {
    dpkg_packages(bytes, true)
}

fn dpkg_packages(bytes: &[u8], no_status_is_installed: bool) -> Vec<Package> {
    paragraphs(bytes, b':')
        .iter()
        .filter(|p| match field(p, "Status") {
            Some(s) => s.split_whitespace().nth(2) == Some("installed"),
            None => no_status_is_installed,
        })
        .filter_map(|p| {
            Some(Package {
                name: field(p, "Package")?.to_owned(),
                version: field(p, "Version").unwrap_or_default().to_owned(),
                architecture: field(p, "Architecture").unwrap_or_default().to_owned(),
                manager: "dpkg",
            })
        })
        .collect()
}

/// Packages of apk's `/lib/apk/db/installed`.
pub(crate) fn apk_installed(bytes: &[u8]) -> Vec<Package> {
    paragraphs(bytes, b':')
        .iter()
        .filter_map(|p| {
            Some(Package {
                name: field(p, "P")?.to_owned(),
                version: field(p, "V").unwrap_or_default().to_owned(),
                architecture: field(p, "A").unwrap_or_default().to_owned(),
                manager: "apk",
            })
        })
        .collect()
}

/// Entries of a dpkg `*.md5sums` file: digest and path relative to `/`. Lines that are not
/// `<32 hex digits><spaces><path>` are skipped (dpkg writes no others).
pub(crate) fn md5sums(bytes: &[u8]) -> Vec<([u8; 16], Vec<u8>)> {
    lines(bytes)
        .filter_map(|(_, l)| {
            let hex = l.get(..32)?;
            let rest = l.get(32..)?;
            let path = rest.strip_prefix(b" ")?;
            let path = path.strip_prefix(b" ").unwrap_or(path);
            let mut d = [0u8; 16];
            for (i, pair) in hex.chunks(2).enumerate() {
                d[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
            }
            (!path.is_empty()).then(|| (d, path.to_vec()))
        })
        .collect()
}

/// Capability names by bit number (`include/uapi/linux/capability.h`).
const CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Capability names of a hex mask from `/proc/<pid>/status` (unknown bits as `CAP_<n>`).
pub(crate) fn capabilities(hex: &str) -> Option<Vec<String>> {
    let mask = u64::from_str_radix(hex.trim(), 16).ok()?;
    Some(
        (0..64)
            .filter(|bit| mask & (1u64 << bit) != 0)
            .map(|bit| {
                CAPS.get(bit)
                    .map_or_else(|| format!("CAP_{bit}"), |n| (*n).to_owned())
            })
            .collect(),
    )
}

/// `/proc/<pid>/status` as `key → value` (trimmed).
pub(crate) fn proc_status(bytes: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// One environment variable: name and value, as bytes.
pub(crate) type EnvVar = (Vec<u8>, Vec<u8>);

/// `/proc/<pid>/environ`: `(name, value)` pairs (an entry without `=` has an empty value).
pub(crate) fn environ(bytes: &[u8]) -> Vec<EnvVar> {
    bytes
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| match e.iter().position(|b| *b == b'=') {
            Some(i) => (e[..i].to_vec(), e[i + 1..].to_vec()),
            None => (e.to_vec(), Vec::new()),
        })
        .collect()
}

/// A socket that accepts traffic: TCP in `LISTEN`, or a bound, unconnected UDP socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Socket {
    pub(crate) protocol: &'static str,
    pub(crate) address: String,
    pub(crate) port: i64,
    pub(crate) all_interfaces: bool,
    pub(crate) loopback: bool,
    pub(crate) uid: Option<i64>,
}

fn ipv4(hex: &str) -> Option<[u8; 4]> {
    // The kernel prints the address as one host-order word (little-endian on x86/arm64).
    u32::from_str_radix(hex, 16)
        .ok()
        .map(|w| w.to_le_bytes())
        .filter(|_| hex.len() == 8)
}

fn ipv6(hex: &str) -> Option<[u8; 16]> {
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for i in 0..4 {
        let w = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    Some(out)
}

/// Listening sockets of `/proc/<pid>/net/{tcp,tcp6,udp,udp6}` (`protocol` names the file).
pub(crate) fn sockets(protocol: &'static str, bytes: &[u8]) -> Vec<Socket> {
    let udp = protocol.starts_with("udp");
    String::from_utf8_lossy(bytes)
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let (local, remote, state) = (cols.get(1)?, cols.get(2)?, *cols.get(3)?);
            // TCP_LISTEN is 0A; a UDP socket is "listening" when bound and unconnected (07).
            let listening = if udp {
                state == "07" && remote.ends_with(":0000")
            } else {
                state == "0A"
            };
            if !listening {
                return None;
            }
            let (addr, port) = local.split_once(':')?;
            let port = i64::from_str_radix(port, 16).ok()?;
            let (address, all, lo) = if protocol.ends_with('6') {
                let a = std::net::Ipv6Addr::from(ipv6(addr)?);
                (a.to_string(), a.is_unspecified(), a.is_loopback())
            } else {
                let a = std::net::Ipv4Addr::from(ipv4(addr)?);
                (a.to_string(), a.is_unspecified(), a.is_loopback())
            };
            Some(Socket {
                protocol,
                address,
                port,
                all_interfaces: all,
                loopback: lo,
                uid: cols.get(7).and_then(|u| u.parse().ok()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_parse_malformed_lines_without_panicking() {
        let p = passwd(b"root:x:0:0:root:/root:/bin/bash\n# c\nbad\nu::abc:1\n");
        assert_eq!(p.len(), 3);
        assert_eq!(
            (p[0].uid, p[0].password),
            (Some(0), PasswordState::Shadowed)
        );
        assert_eq!((p[1].user.as_slice(), p[1].uid), (&b"bad"[..], None));
        assert_eq!(
            (p[2].password, p[2].uid, p[2].gid),
            (PasswordState::Empty, None, Some(1))
        );
        let s = shadow(b"root:*:19000:0:99999:7:::\nu::1\nv:!$6$x$y:1\nw:$y$j9T$a$b:\n");
        assert_eq!(s[0].password, PasswordState::Locked);
        assert_eq!(s[0].days[2], Some(99_999));
        assert_eq!(s[0].days[4], None);
        assert_eq!(s[1].password, PasswordState::Empty);
        assert_eq!(
            (s[2].password, s[2].scheme),
            (PasswordState::Locked, "sha512")
        );
        assert_eq!(s[3].scheme, "yescrypt");
        assert_eq!(hash_scheme(b"abcdefghijklm"), "des");
        let g = group(b"sudo:x:27:alice,bob\nroot:x:0:\n");
        assert_eq!(g[0].members, ["alice", "bob"]);
        assert!(g[1].members.is_empty());
    }

    #[test]
    fn os_release_unquotes() {
        let o = os_release(
            b"ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME='Debian \"x\"'\n# x=y\nNAME=\"a\\\"b\"\n",
        );
        assert_eq!(o["ID"], "debian");
        assert_eq!(o["VERSION_ID"], "12");
        assert_eq!(o["NAME"], "a\"b");
        assert!(!o.contains_key("# x"));
    }

    #[test]
    fn package_databases() {
        let d = dpkg_status(
            b"Package: a\nStatus: install ok installed\nVersion: 1.0-1\nDescription: x\n more\n\n\
              Package: b\nStatus: deinstall ok config-files\nVersion: 2\n\n",
        );
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].name.as_str(), d[0].version.as_str()), ("a", "1.0-1"));
        let a = apk_installed(b"C:Q1x\nP:musl\nV:1.2.4-r2\nA:x86_64\n\nP:busybox\nV:1.36.1-r5\n");
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].manager, "apk");
        let m = md5sums(b"0123456789abcdef0123456789abcdef  usr/bin/ls\nnot a line\n");
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].1, b"usr/bin/ls");
        assert_eq!(m[0].0[0], 0x01);
    }

    #[test]
    fn process_files() {
        assert_eq!(
            capabilities("00000000a80425fb").unwrap().len(),
            14,
            "the container runtimes' default set"
        );
        assert_eq!(capabilities("0000000000200000").unwrap(), ["CAP_SYS_ADMIN"]);
        assert_eq!(capabilities("8000000000000000").unwrap(), ["CAP_63"]);
        assert!(capabilities("zz").is_none());
        let e = environ(b"A=1\0B\0C=x=y\0");
        assert_eq!(e[2], (b"C".to_vec(), b"x=y".to_vec()));
        assert_eq!(e[1].1, b"");
        let tcp = sockets(
            "tcp",
            b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
               0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1\n\
               1: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2\n\
               2: 0100007F:0016 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 3\n",
        );
        assert_eq!(tcp.len(), 2);
        assert_eq!(
            (tcp[0].port, tcp[0].all_interfaces, tcp[0].uid),
            (8080, true, Some(1000))
        );
        assert_eq!(
            (tcp[1].address.as_str(), tcp[1].loopback),
            ("127.0.0.1", true)
        );
        let tcp6 = sockets(
            "tcp6",
            b"header\n 0: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 0 0 0 0 0\n",
        );
        assert_eq!((tcp6[0].address.as_str(), tcp6[0].port), ("::1", 80));
    }
}
