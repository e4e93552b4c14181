//! The network checks: the target's listening sockets and connections, parsed from
//! `/proc/<pid>/net/{tcp,tcp6,udp,udp6}`, against the policy's ports and CIDRs.
//!
//! The parser is this crate's own rather than `keyhole-engine`'s: the engine's socket parser is
//! private to it, keeps listening sockets only (these checks also need connections and their
//! peers), and `precheck` sits below the engine in the layering. It is bounded
//! ([`MAX_SOCKETS`] entries per table) and never fails: a line it cannot read becomes a
//! problem that fails both checks, so a mangled table is never read as "no sockets".

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Serialize;

use crate::CheckId;
use crate::policy::{Policy, Transport};
use crate::verdict::{CheckResult, Evidence, Outcome};

/// Most entries read from one table; the rest is reported as a problem, not judged.
pub const MAX_SOCKETS: usize = 16_384;

/// One of the kernel's socket tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcNetTable {
    /// `/proc/<pid>/net/tcp`.
    Tcp,
    /// `/proc/<pid>/net/tcp6`.
    Tcp6,
    /// `/proc/<pid>/net/udp`.
    Udp,
    /// `/proc/<pid>/net/udp6`.
    Udp6,
}

impl ProcNetTable {
    /// All four tables.
    pub const ALL: [Self; 4] = [Self::Tcp, Self::Tcp6, Self::Udp, Self::Udp6];

    /// The file name under `/proc/<pid>/net/`.
    #[must_use]
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tcp6 => "tcp6",
            Self::Udp => "udp",
            Self::Udp6 => "udp6",
        }
    }

    fn transport(self) -> Transport {
        match self {
            Self::Tcp | Self::Tcp6 => Transport::Tcp,
            Self::Udp | Self::Udp6 => Transport::Udp,
        }
    }

    fn ipv6(self) -> bool {
        matches!(self, Self::Tcp6 | Self::Udp6)
    }
}

/// What a socket is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SocketRole {
    /// Accepting traffic: TCP `LISTEN`, or a bound, unconnected UDP socket.
    Listening,
    /// Talking to a peer: a TCP socket in any state with a peer (not `LISTEN` or `CLOSE`), or a
    /// connected UDP socket.
    Connected,
}

/// One socket of the target's network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Socket {
    /// The table it came from.
    pub table: ProcNetTable,
    /// Listening or connected.
    pub role: SocketRole,
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port (unspecified for a listener).
    pub remote: SocketAddr,
    /// Owner uid.
    pub uid: Option<u32>,
}

/// The sockets of one fact-gathering pass, with what could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NetworkFacts {
    /// Every listening or connected socket read.
    pub sockets: Vec<Socket>,
    /// Lines or tables that could not be read; any problem fails both network checks.
    pub problems: Vec<String>,
}

impl NetworkFacts {
    /// Parses the given tables' text (a table missing from the list, e.g. no IPv6 on the
    /// node, simply adds no sockets).
    #[must_use]
    pub fn parse(tables: &[(ProcNetTable, &str)]) -> Self {
        let mut facts = Self::default();
        for (table, text) in tables {
            facts.add_table(*table, text);
        }
        facts
    }

    /// Parses one table and adds its sockets.
    pub fn add_table(&mut self, table: ProcNetTable, text: &str) {
        let name = table.file_name();
        let mut lines = text.lines();
        match lines.next() {
            Some(h) if h.trim_start().starts_with("sl") => {}
            _ => {
                self.problems
                    .push(format!("{name}: no `sl local_address …` header line"));
                return;
            }
        }
        for (n, line) in lines.enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            if n >= MAX_SOCKETS {
                self.problems.push(format!(
                    "{name}: more than {MAX_SOCKETS} entries; the rest were not checked"
                ));
                return;
            }
            match parse_line(table, line) {
                Ok(Some(s)) => self.sockets.push(s),
                Ok(None) => {}
                Err(why) => self.problems.push(format!(
                    "{name} line {}: {why}: {}",
                    n + 2,
                    line.chars().take(120).collect::<String>()
                )),
            }
        }
    }
}

/// TCP states from the kernel's `tcp_states.h`.
const TCP_LISTEN: u8 = 0x0A;
const TCP_CLOSE: u8 = 0x07;
const TCP_ESTABLISHED: u8 = 0x01;

fn parse_line(table: ProcNetTable, line: &str) -> Result<Option<Socket>, &'static str> {
    let cols: Vec<&str> = line.split_whitespace().take(8).collect();
    let [_, local, remote, state, _, _, _, uid] = cols[..] else {
        return Err("fewer than 8 columns");
    };
    let local = parse_addr(local, table.ipv6()).ok_or("bad local address")?;
    let remote = parse_addr(remote, table.ipv6()).ok_or("bad remote address")?;
    let state = u8::from_str_radix(state, 16).map_err(|_| "bad state")?;
    let uid = uid.parse().ok();
    let role = match table.transport() {
        Transport::Tcp if state == TCP_LISTEN => SocketRole::Listening,
        Transport::Tcp if state == TCP_CLOSE => return Ok(None),
        Transport::Tcp => SocketRole::Connected,
        // UDP reuses the TCP numbers: 07 is an unconnected socket, 01 a connected one.
        Transport::Udp if state == TCP_CLOSE && remote.port() == 0 => SocketRole::Listening,
        Transport::Udp if state == TCP_ESTABLISHED => SocketRole::Connected,
        Transport::Udp => return Ok(None),
    };
    Ok(Some(Socket {
        table,
        role,
        local,
        remote,
        uid,
    }))
}

/// `HEXADDR:HEXPORT` as the kernel prints it: the address as 32-bit words in the host's byte
/// order. Read as little-endian, the order of x86-64 and arm64 nodes (the same assumption as
/// the engine's `listening` resource).
fn parse_addr(s: &str, ipv6: bool) -> Option<SocketAddr> {
    let (addr, port) = s.split_once(':')?;
    if port.len() != 4 {
        return None;
    }
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |h: &str| -> Option<[u8; 4]> {
        (h.len() == 8 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u32::from_str_radix(h, 16).ok())
            .flatten()
            .map(u32::to_le_bytes)
    };
    let ip = if ipv6 {
        if addr.len() != 32 {
            return None;
        }
        let mut b = [0u8; 16];
        for i in 0..4 {
            b[i * 4..i * 4 + 4].copy_from_slice(&word(addr.get(i * 8..i * 8 + 8)?)?);
        }
        IpAddr::V6(Ipv6Addr::from(b))
    } else {
        IpAddr::V4(Ipv4Addr::from(word(addr)?))
    };
    Some(SocketAddr::new(ip, port))
}

fn describe(s: &Socket) -> Evidence {
    let path = format!("/proc/net/{}", s.table.file_name());
    let value = match s.role {
        SocketRole::Listening => format!("listening on {}", s.local),
        SocketRole::Connected => format!("{} -> {}", s.local, s.remote),
    };
    Evidence::new(path, value)
}

/// Judges the target's sockets: `network-listeners` (every listener on an allowed port) and
/// `network-peers` (every connection's peer in an allowed CIDR). Merge the results into the
/// verdict with [`crate::Verdict::merge`]. Pure.
#[must_use]
pub fn check_network(facts: &NetworkFacts, policy: &Policy) -> [CheckResult; 2] {
    let problems: Vec<Evidence> = facts
        .problems
        .iter()
        .map(|p| Evidence::new("/proc/net", format!("unreadable: {p}")))
        .collect();
    let listeners: Vec<&Socket> = facts
        .sockets
        .iter()
        .filter(|s| s.role == SocketRole::Listening)
        .collect();
    let bad_listeners: Vec<Evidence> = listeners
        .iter()
        .filter(|s| {
            policy
                .listen_port_rule(s.table.transport(), s.local.port())
                .is_none()
        })
        .map(|s| describe(s))
        .collect();
    let connections: Vec<&Socket> = facts
        .sockets
        .iter()
        .filter(|s| s.role == SocketRole::Connected)
        .collect();
    let bad_peers: Vec<Evidence> = connections
        .iter()
        .filter(|s| policy.peer_cidr_for(s.remote.ip()).is_none())
        .map(|s| describe(s))
        .collect();
    let judge = |check, what: &str, total: usize, bad: Vec<Evidence>| {
        let failed = !bad.is_empty() || !problems.is_empty();
        let msg = if problems.is_empty() {
            format!("{} of {total} {what} not allowed by the policy", bad.len())
        } else {
            format!(
                "{} of {total} {what} not allowed, and the socket tables could not all be read",
                bad.len()
            )
        };
        let mut ev = bad;
        ev.extend(problems.iter().cloned());
        let outcome = if failed {
            Outcome::Failed
        } else {
            Outcome::Passed
        };
        CheckResult::new(check, outcome, policy, msg, ev)
    };
    [
        judge(
            CheckId::NetworkListeners,
            "listening sockets",
            listeners.len(),
            bad_listeners,
        ),
        judge(
            CheckId::NetworkPeers,
            "connections",
            connections.len(),
            bad_peers,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

    #[test]
    fn reads_roles_and_addresses() {
        let tcp = format!(
            "{HEADER}   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1\n\
             1: 0100007F:0016 0200007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 3\n\
             2: 0100007F:0017 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4\n"
        );
        let tcp6 = format!(
            "{HEADER} 0: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 0 0 0 33 0\n"
        );
        let udp = format!(
            "{HEADER} 0: 00000000:0035 00000000:0000 07 0 0 0 0 0\n 1: 0A00000A:D000 08080808:0035 01 0 0 0 0 0\n"
        );
        let f = NetworkFacts::parse(&[
            (ProcNetTable::Tcp, &tcp),
            (ProcNetTable::Tcp6, &tcp6),
            (ProcNetTable::Udp, &udp),
        ]);
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        assert_eq!(f.sockets.len(), 5);
        assert_eq!(f.sockets[0].local, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(f.sockets[0].role, SocketRole::Listening);
        assert_eq!(f.sockets[0].uid, Some(1000));
        assert_eq!(f.sockets[1].role, SocketRole::Connected);
        assert_eq!(f.sockets[1].remote, "127.0.0.2:40000".parse().unwrap());
        assert_eq!(f.sockets[2].local, "[::1]:80".parse().unwrap());
        assert_eq!(f.sockets[3].role, SocketRole::Listening);
        assert_eq!(f.sockets[4].remote, "8.8.8.8:53".parse().unwrap());
        assert_eq!(f.sockets[4].local, "10.0.0.10:53248".parse().unwrap());
    }

    #[test]
    fn bad_input_is_a_problem_not_silence() {
        let f = NetworkFacts::parse(&[(ProcNetTable::Tcp, "garbage")]);
        assert_eq!(f.problems.len(), 1);
        let f = NetworkFacts::parse(&[(
            ProcNetTable::Tcp,
            &format!("{HEADER} 0: zz:1 00000000:0000 0A 0 0 0 0 0\n 1: short\n"),
        )]);
        assert_eq!(f.problems.len(), 2, "{:?}", f.problems);
        let many = format!(
            "{HEADER}{}",
            " 0: 00000000:0050 00000000:0000 0A 0 0 0 0 0\n".repeat(MAX_SOCKETS + 5)
        );
        let f = NetworkFacts::parse(&[(ProcNetTable::Tcp, &many)]);
        assert_eq!(f.sockets.len(), MAX_SOCKETS);
        assert_eq!(f.problems.len(), 1);
    }
}
