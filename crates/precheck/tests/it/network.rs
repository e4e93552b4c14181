//! The network checks on parsed socket tables, and their merge into a verdict.

use keyhole_precheck::{
    CheckId, Decision, NetworkFacts, Outcome, Policy, ProcNetTable, check_network, evaluate,
};

use crate::support::pod;

const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

/// A web server on 0.0.0.0:8080 (tcp), a loopback admin port 127.0.0.1:9090, a connection
/// from 10.1.2.3 to it, and one out to 203.0.113.7:443 over IPv6-mapped IPv4.
fn facts() -> NetworkFacts {
    let tcp = format!(
        "{HEADER}\
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1\n\
   1: 0100007F:2382 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2 1\n\
   2: FE00000A:1F90 0302010A:C350 01 00000000:00000000 00:00000000 00000000  1000        0 3 1\n"
    );
    let tcp6 = format!(
        "{HEADER}\
   0: 0000000000000000FFFF0000FE00000A:A000 0000000000000000FFFF0000077100CB:01BB 01 0 0 0 1000 0 4 1\n"
    );
    NetworkFacts::parse(&[(ProcNetTable::Tcp, &tcp), (ProcNetTable::Tcp6, &tcp6)])
}

#[test]
fn listeners_against_ports() {
    let f = facts();
    assert!(f.problems.is_empty(), "{:?}", f.problems);
    let [listen, _] = check_network(&f, &Policy::builtin());
    assert_eq!(
        listen.outcome,
        Outcome::Failed,
        "the built-in policy allows no port"
    );
    let ev: Vec<String> = listen
        .evidence
        .iter()
        .map(|e| format!("{} = {}", e.path, e.value))
        .collect();
    assert_eq!(
        ev,
        [
            "/proc/net/tcp = listening on 0.0.0.0:8080",
            "/proc/net/tcp = listening on 127.0.0.1:9090"
        ]
    );
    let p = Policy::from_yaml_str("allow:\n  listen-ports: [tcp/8080, 9000-9099]\n", "t").unwrap();
    let [listen, _] = check_network(&f, &p);
    assert_eq!(listen.outcome, Outcome::Passed, "{listen:?}");
    let p = Policy::from_yaml_str("allow:\n  listen-ports: [udp/8080, 9090]\n", "t").unwrap();
    let [listen, _] = check_network(&f, &p);
    assert_eq!(
        listen.outcome,
        Outcome::Failed,
        "udp/8080 does not allow tcp 8080"
    );
    assert_eq!(listen.evidence.len(), 1);
}

#[test]
fn peers_against_cidrs() {
    let f = facts();
    let [_, peers] = check_network(&f, &Policy::builtin());
    let ev: Vec<String> = peers
        .evidence
        .iter()
        .map(|e| format!("{} = {}", e.path, e.value))
        .collect();
    assert_eq!(
        ev,
        [
            "/proc/net/tcp = 10.0.0.254:8080 -> 10.1.2.3:50000",
            "/proc/net/tcp6 = [::ffff:10.0.0.254]:40960 -> [::ffff:203.0.113.7]:443",
        ]
    );
    // An IPv4-mapped peer is judged as IPv4.
    let p =
        Policy::from_yaml_str("allow:\n  peer-cidrs: [10.0.0.0/8, 203.0.113.0/24]\n", "t").unwrap();
    let [_, peers] = check_network(&f, &p);
    assert_eq!(peers.outcome, Outcome::Passed, "{peers:?}");
    let p = Policy::from_yaml_str("allow:\n  peer-cidrs: [10.0.0.0/8]\n", "t").unwrap();
    let [_, peers] = check_network(&f, &p);
    assert_eq!(peers.outcome, Outcome::Failed);
    assert_eq!(peers.evidence.len(), 1);
}

#[test]
fn unreadable_tables_fail_both_checks() {
    let f = NetworkFacts::parse(&[(ProcNetTable::Udp, "not a table")]);
    let p = Policy::from_yaml_str(
        "allow:\n  listen-ports: [1-65535]\n  peer-cidrs: [0.0.0.0/0, \"::/0\"]\n",
        "t",
    )
    .unwrap();
    for r in check_network(&f, &p) {
        assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    }
    let [l, c] = check_network(&NetworkFacts::default(), &p);
    assert_eq!((l.outcome, c.outcome), (Outcome::Passed, Outcome::Passed));
}

#[test]
fn network_results_can_still_abort_the_verdict() {
    let mut v = evaluate(&pod("hardened"), "app", &Policy::builtin());
    assert_eq!(v.decision, Decision::Proceed);
    let p = Policy::from_yaml_str("checks:\n  network-peers: abort\n", "t").unwrap();
    let mut v2 = evaluate(&pod("hardened"), "app", &p);
    v.merge(check_network(&facts(), &Policy::builtin()));
    assert_eq!(v.decision, Decision::Proceed, "warn only");
    assert_eq!(
        v.get(CheckId::NetworkPeers).unwrap().outcome,
        Outcome::Failed
    );
    v2.merge(check_network(&facts(), &p));
    assert_eq!(v2.decision, Decision::Abort);
    assert_eq!(v2.checks.len(), 20, "merge replaces, never duplicates");
}
