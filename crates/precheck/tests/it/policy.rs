//! The policy: abort, warn and ignore; its format's errors with their line; the built-in
//! default as documented.

use keyhole_precheck::{
    Action, CheckId, DEFAULT_POLICY_YAML, Decision, Outcome, Policy, PrecheckError, evaluate,
};

use crate::support::pod;

/// The privileged fixture fails `privileged` (built-in action: abort) among others.
fn privileged_verdict(policy: &Policy) -> keyhole_precheck::Verdict {
    evaluate(&pod("privileged"), "agent", policy)
}

#[test]
fn abort_warn_ignore() {
    // Everything that fails on the privileged fixture set to warn: the scan proceeds, the
    // failures are still listed.
    let warn_all: String = CheckId::ALL
        .iter()
        .filter(|c| **c != CheckId::TargetExists)
        .map(|c| format!("  {c}: warn\n"))
        .collect();
    let p = Policy::from_yaml_str(&format!("checks:\n{warn_all}"), "warn.yaml").unwrap();
    let v = privileged_verdict(&p);
    assert_eq!(v.decision, Decision::Proceed);
    assert!(v.failures().any(|c| c.check == CheckId::Privileged));
    assert_eq!(v.exit_code(), None);

    // Ignore: the failure is no longer listed, and it is reported as skipped in the HDF.
    let ignore_all: String = CheckId::ALL
        .iter()
        .filter(|c| **c != CheckId::TargetExists)
        .map(|c| format!("  {c}: ignore\n"))
        .collect();
    let p = Policy::from_yaml_str(&format!("checks:\n{ignore_all}"), "ignore.yaml").unwrap();
    let v = privileged_verdict(&p);
    assert_eq!(v.decision, Decision::Proceed);
    assert_eq!(v.failures().count(), 0);
    let r = v.get(CheckId::Privileged).unwrap();
    assert_eq!(
        (r.outcome, r.action),
        (Outcome::Failed, Action::Ignore),
        "still evaluated"
    );

    // One check promoted to abort on an otherwise passing pod.
    let hardened = crate::support::hardened_with(|p| {
        p.spec.as_mut().unwrap().host_network = Some(true);
    });
    let v = evaluate(&hardened, "app", &Policy::builtin());
    assert_eq!(
        v.decision,
        Decision::Proceed,
        "host-network warns by default"
    );
    let p = Policy::from_yaml_str("checks:\n  host-network: abort\n", "t").unwrap();
    let v = evaluate(&hardened, "app", &p);
    assert_eq!(v.decision, Decision::Abort);
    assert_eq!(v.exit_code(), Some(keyhole_precheck::EXIT_PRECHECK_ABORT));
    // Other checks keep the built-in action.
    assert_eq!(p.action(CheckId::Privileged), Action::Abort);
    assert_eq!(p.action(CheckId::RunAsRoot), Action::Warn);
}

#[test]
fn built_in_defaults_are_the_documented_ones() {
    let p = Policy::builtin();
    let expect = [
        ("target-exists", Action::Abort),
        ("target-running", Action::Abort),
        ("container-ready", Action::Abort),
        ("container-restarts", Action::Warn),
        ("image-digest-match", Action::Abort),
        ("privileged", Action::Abort),
        ("privilege-escalation", Action::Warn),
        ("dangerous-capabilities", Action::Warn),
        ("host-pid", Action::Abort),
        ("host-network", Action::Warn),
        ("host-ipc", Action::Warn),
        ("host-path", Action::Warn),
        ("run-as-root", Action::Warn),
        ("proc-mount", Action::Abort),
        ("seccomp-unconfined", Action::Warn),
        ("apparmor-unconfined", Action::Warn),
        ("image-source", Action::Abort),
        ("image-pinned", Action::Warn),
        ("network-listeners", Action::Warn),
        ("network-peers", Action::Warn),
    ];
    assert_eq!(expect.len(), CheckId::ALL.len());
    for (c, (name, action)) in CheckId::ALL.iter().zip(expect) {
        assert_eq!((c.as_str(), p.action(*c)), (name, action));
    }
    // docs/precheck.md shows the built-in policy verbatim.
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/precheck.md"
    ))
    .expect("docs/precheck.md exists");
    assert!(
        doc.contains(DEFAULT_POLICY_YAML.trim_end()),
        "docs/precheck.md must embed src/default-policy.yaml verbatim"
    );
    // An empty file is the built-in policy.
    assert_eq!(Policy::from_yaml_str("", "e").unwrap().sha256(), p.sha256());
    assert_eq!(
        Policy::from_yaml_str(DEFAULT_POLICY_YAML, "d")
            .unwrap()
            .sha256(),
        p.sha256()
    );
    assert_ne!(
        Policy::from_yaml_str("max-restarts: 1\n", "m")
            .unwrap()
            .sha256(),
        p.sha256()
    );
}

fn syntax(text: &str) -> (usize, String) {
    match Policy::from_yaml_str(text, "my-policy.yaml") {
        Err(e @ PrecheckError::PolicySyntax { line, .. }) => (line, e.to_string()),
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn unknown_keys_are_errors_with_file_and_line() {
    let (line, msg) = syntax("checks:\n  privileged: warn\nallow:\n  images: []\n  imagez: []\n");
    assert_eq!(line, 5);
    assert!(msg.starts_with("my-policy.yaml:5:"), "{msg}");
    assert!(msg.contains("imagez"), "{msg}");
    let (line, msg) = syntax("checks:\n  privileged: warn\n  privilegd: abort\n");
    assert_eq!(line, 3, "{msg}");
    assert!(msg.contains("privilegd"), "{msg}");
    let (line, msg) = syntax("max-restart: 3\n");
    assert_eq!(line, 1, "{msg}");
    let (_, msg) = syntax("checks:\n  privileged: maybe\n");
    assert!(msg.contains("maybe"), "{msg}");
    let (_, msg) = syntax("max-restarts: -1\n");
    assert!(msg.contains("my-policy.yaml:1:"), "{msg}");
}

fn value_error(text: &str) -> String {
    match Policy::from_yaml_str(text, "p.yaml") {
        Err(e @ PrecheckError::PolicyValue { .. }) => e.to_string(),
        other => panic!("expected a value error, got {other:?}"),
    }
}

#[test]
fn bad_values_name_their_key() {
    assert!(value_error("checks:\n  target-exists: warn\n").contains("`checks.target-exists`"));
    assert!(value_error("allow:\n  peer-cidrs: [10.0.0.0/33]\n").contains("`allow.peer-cidrs[0]`"));
    assert!(
        value_error("allow:\n  listen-ports: [80, tcp/0]\n").contains("`allow.listen-ports[1]`")
    );
    assert!(
        value_error("allow:\n  image-digests: [sha256:abc]\n").contains("`allow.image-digests[0]`")
    );
    assert!(value_error("allow:\n  images: [\"a/[b\"]\n").contains("`allow.images[0]`"));
}

#[test]
fn reads_a_file_or_says_why_not() {
    let dir = std::env::temp_dir().join(format!("keyhole-precheck-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("policy.yaml");
    std::fs::write(&f, "checks:\n  privileged: warn\n").unwrap();
    assert_eq!(
        Policy::from_file(&f).unwrap().action(CheckId::Privileged),
        Action::Warn
    );
    std::fs::write(&f, "nope: 1\n").unwrap();
    let e = Policy::from_file(&f).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:1:", f.display())), "{e}");
    let e = Policy::from_file(&dir.join("absent.yaml")).unwrap_err();
    assert!(matches!(e, PrecheckError::PolicyRead { .. }));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn set_action_cannot_relax_target_exists() {
    let mut p = Policy::builtin();
    p.set_action(CheckId::TargetExists, Action::Ignore);
    p.set_action(CheckId::Privileged, Action::Ignore);
    assert_eq!(p.action(CheckId::TargetExists), Action::Abort);
    assert_eq!(p.action(CheckId::Privileged), Action::Ignore);
}

#[test]
fn messages_read_well() {
    let msg = |t: &str| Policy::from_yaml_str(t, "p.yaml").unwrap_err().to_string();
    assert_eq!(
        msg("allow:\n  imagez: []\n"),
        "p.yaml:2:3: allow: unknown field `imagez`, expected one of `images`, `image-digests`, \
         `listen-ports`, `peer-cidrs` (see docs/precheck.md for the policy format)"
    );
    assert_eq!(
        msg("- a\n"),
        "p.yaml:1:1: invalid type: sequence, expected a policy mapping (checks, max-restarts, \
         dangerous-capabilities, allow) (see docs/precheck.md for the policy format)"
    );
}
