//! The policy: per check abort, warn or ignore, plus the allowlists; read from YAML with
//! unknown keys refused, over the built-in default embedded in the crate.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::{CheckId, PrecheckError};

/// The built-in policy's YAML text (also shown in `docs/precheck.md`).
pub const DEFAULT_POLICY_YAML: &str = include_str!("default-policy.yaml");

/// What a failed check does to the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The check is evaluated but never counts: reported as skipped.
    Ignore,
    /// A failure is reported; the scan goes on.
    Warn,
    /// A failure stops the scan before anything is created.
    Abort,
}

/// The policy file as written: every key optional, unknown keys refused.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a policy mapping (checks, max-restarts, dangerous-capabilities, allow)"
)]
struct PolicyFile {
    #[serde(default)]
    checks: Option<BTreeMap<CheckId, Action>>,
    #[serde(default)]
    max_restarts: Option<u32>,
    #[serde(default)]
    dangerous_capabilities: Option<Vec<String>>,
    #[serde(default)]
    allow: Option<AllowFile>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a mapping (images, image-digests, listen-ports, peer-cidrs)"
)]
struct AllowFile {
    #[serde(default)]
    images: Option<Vec<String>>,
    #[serde(default)]
    image_digests: Option<Vec<String>>,
    #[serde(default)]
    listen_ports: Option<Vec<PortValue>>,
    #[serde(default)]
    peer_cidrs: Option<Vec<String>>,
}

/// A port entry: a bare number or a text such as `tcp/8000-8099`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
enum PortValue {
    Number(u16),
    Text(String),
}

/// The transport a port rule or socket is about (IPv4 and IPv6 alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// An allowed listening port range, for one transport or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PortRule {
    /// The transport, or `None` for both.
    pub transport: Option<Transport>,
    /// First port allowed.
    pub first: u16,
    /// Last port allowed (inclusive).
    pub last: u16,
}

impl PortRule {
    /// Whether the rule allows `port` on `transport`.
    #[must_use]
    pub fn allows(&self, transport: Transport, port: u16) -> bool {
        self.transport.is_none_or(|t| t == transport) && (self.first..=self.last).contains(&port)
    }
}

/// A resolved policy: every check has an action and every allowlist a value.
#[derive(Debug, Clone)]
pub struct Policy {
    actions: BTreeMap<CheckId, Action>,
    max_restarts: u32,
    dangerous_capabilities: BTreeSet<String>,
    image_patterns: Vec<String>,
    images: GlobSet,
    image_digests: BTreeSet<String>,
    listen_ports: Vec<PortRule>,
    peer_cidrs: Vec<IpNet>,
    sha256: String,
}

impl Policy {
    /// The built-in policy ([`DEFAULT_POLICY_YAML`]).
    #[must_use]
    pub fn builtin() -> Self {
        let file = parse_file(DEFAULT_POLICY_YAML, "<built-in policy>")
            .expect("the built-in policy parses (tested)");
        resolve(&file, "<built-in policy>").expect("the built-in policy is valid (tested)")
    }

    /// Reads a policy from YAML text; `origin` names it in errors (a file name). Keys it
    /// leaves out keep the built-in value: each named check replaces the default action of
    /// that check only, and a named list replaces the default list whole.
    ///
    /// # Errors
    /// [`PrecheckError::PolicySyntax`] for YAML that is not a policy (unknown key, unknown
    /// check, wrong type), with its line and column; [`PrecheckError::PolicyValue`] for a bad
    /// glob, CIDR, port or digest, or `target-exists` set to anything but `abort`.
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Self, PrecheckError> {
        let user = parse_file(text, origin)?;
        let mut merged = parse_file(DEFAULT_POLICY_YAML, "<built-in policy>")
            .expect("the built-in policy parses (tested)");
        if let Some(checks) = user.checks {
            merged.checks.get_or_insert_default().extend(checks);
        }
        merged.max_restarts = user.max_restarts.or(merged.max_restarts);
        merged.dangerous_capabilities = user
            .dangerous_capabilities
            .or(merged.dangerous_capabilities);
        if let Some(allow) = user.allow {
            let m = merged.allow.get_or_insert_default();
            m.images = allow.images.or(m.images.take());
            m.image_digests = allow.image_digests.or(m.image_digests.take());
            m.listen_ports = allow.listen_ports.or(m.listen_ports.take());
            m.peer_cidrs = allow.peer_cidrs.or(m.peer_cidrs.take());
        }
        resolve(&merged, origin)
    }

    /// Reads a policy file (`--policy FILE`); see [`Policy::from_yaml_str`].
    ///
    /// # Errors
    /// [`PrecheckError::PolicyRead`] when the file cannot be read, else as
    /// [`Policy::from_yaml_str`] with the path as origin.
    pub fn from_file(path: &Path) -> Result<Self, PrecheckError> {
        let text = std::fs::read_to_string(path).map_err(|source| PrecheckError::PolicyRead {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml_str(&text, &path.display().to_string())
    }

    /// The action for `check`.
    #[must_use]
    pub fn action(&self, check: CheckId) -> Action {
        self.actions.get(&check).copied().unwrap_or(Action::Abort)
    }

    /// Sets the action for `check` (for callers that build a policy in code). `target-exists`
    /// stays `abort` whatever is asked: a missing target cannot be scanned.
    pub fn set_action(&mut self, check: CheckId, action: Action) {
        if check != CheckId::TargetExists {
            self.actions.insert(check, action);
        }
    }

    /// The restart count above which `container-restarts` fails.
    #[must_use]
    pub fn max_restarts(&self) -> u32 {
        self.max_restarts
    }

    /// Whether an added capability (with or without `CAP_`, any case) is on the dangerous list.
    #[must_use]
    pub fn is_dangerous_capability(&self, cap: &str) -> bool {
        self.dangerous_capabilities.contains(&normalize_cap(cap))
    }

    /// The image pattern allowing `name` (`REGISTRY/REPOSITORY`), if any.
    #[must_use]
    pub fn image_pattern_for(&self, name: &str) -> Option<&str> {
        self.images
            .matches(name)
            .first()
            .map(|i| self.image_patterns[*i].as_str())
    }

    /// Whether a running image digest (`sha256:<hex>`) is allowed explicitly.
    #[must_use]
    pub fn digest_allowed(&self, digest: &str) -> bool {
        self.image_digests.contains(digest)
    }

    /// Whether any explicit digest is allowed.
    #[must_use]
    pub fn has_allowed_digests(&self) -> bool {
        !self.image_digests.is_empty()
    }

    /// The rule allowing a listener on `port`, if any.
    #[must_use]
    pub fn listen_port_rule(&self, transport: Transport, port: u16) -> Option<&PortRule> {
        self.listen_ports.iter().find(|r| r.allows(transport, port))
    }

    /// The CIDR allowing a peer address, if any.
    #[must_use]
    pub fn peer_cidr_for(&self, ip: IpAddr) -> Option<&IpNet> {
        // An IPv4 peer of a dual-stack socket shows as ::ffff:a.b.c.d: judge it as IPv4.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        self.peer_cidrs.iter().find(|n| n.contains(&ip))
    }

    /// SHA-256 (hex) of the resolved policy, written as the HDF profile's checksum so that a
    /// result names the exact policy that judged it.
    #[must_use]
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self::builtin()
    }
}

fn normalize_cap(cap: &str) -> String {
    let up = cap.trim().to_ascii_uppercase();
    up.strip_prefix("CAP_").map(str::to_owned).unwrap_or(up)
}

fn parse_file(text: &str, origin: &str) -> Result<PolicyFile, PrecheckError> {
    // An empty document is the default policy, not an error.
    if text.trim().is_empty() {
        return Ok(PolicyFile::default());
    }
    serde_norway::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        // The position leads the message already; drop the parser's trailing copy of it.
        let text = e.to_string();
        let suffix = format!(" at line {line} column {column}");
        let message = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
        PrecheckError::PolicySyntax {
            origin: origin.to_owned(),
            line,
            column,
            message,
        }
    })
}

fn resolve(file: &PolicyFile, origin: &str) -> Result<Policy, PrecheckError> {
    let bad = |key: String, problem: String| PrecheckError::PolicyValue {
        origin: origin.to_owned(),
        key,
        problem,
    };
    let mut actions = BTreeMap::new();
    for check in CheckId::ALL {
        let action = file
            .checks
            .as_ref()
            .and_then(|c| c.get(&check))
            .copied()
            // A check the built-in policy forgot would be a bug; abort is the safe reading.
            .unwrap_or(Action::Abort);
        if check == CheckId::TargetExists && action != Action::Abort {
            return Err(bad(
                "checks.target-exists".into(),
                "must be `abort`: a pod or container that does not exist cannot be scanned".into(),
            ));
        }
        actions.insert(check, action);
    }
    let allow = file.allow.clone().unwrap_or_default();
    let image_patterns = allow.images.unwrap_or_default();
    let mut set = GlobSetBuilder::new();
    for (i, p) in image_patterns.iter().enumerate() {
        let glob = GlobBuilder::new(p)
            .literal_separator(true)
            .build()
            .map_err(|e| bad(format!("allow.images[{i}]"), format!("not a glob: {e}")))?;
        set.add(glob);
    }
    let images = set
        .build()
        .map_err(|e| bad("allow.images".into(), e.to_string()))?;
    let mut image_digests = BTreeSet::new();
    for (i, d) in allow.image_digests.unwrap_or_default().iter().enumerate() {
        if !crate::image::is_sha256_digest(d) {
            return Err(bad(
                format!("allow.image-digests[{i}]"),
                format!("`{d}` is not `sha256:` followed by 64 lowercase hex digits"),
            ));
        }
        image_digests.insert(d.clone());
    }
    let mut listen_ports = Vec::new();
    for (i, p) in allow.listen_ports.unwrap_or_default().iter().enumerate() {
        listen_ports.push(parse_port(p).ok_or_else(|| {
            bad(
                format!("allow.listen-ports[{i}]"),
                "write PORT, FIRST-LAST, tcp/PORT or udp/FIRST-LAST with ports 1-65535".into(),
            )
        })?);
    }
    let mut peer_cidrs = Vec::new();
    for (i, c) in allow.peer_cidrs.unwrap_or_default().iter().enumerate() {
        let net = c.parse::<IpNet>().map_err(|e| {
            bad(
                format!("allow.peer-cidrs[{i}]"),
                format!("`{c}` is not a CIDR such as 10.0.0.0/8 or fd00::/8: {e}"),
            )
        })?;
        peer_cidrs.push(net);
    }
    let canonical = serde_json::to_vec(&serde_json::json!({
        "actions": actions,
        "max-restarts": file.max_restarts.unwrap_or(0),
        "dangerous-capabilities": file.dangerous_capabilities,
        "allow": {
            "images": image_patterns,
            "image-digests": image_digests,
            "listen-ports": listen_ports,
            "peer-cidrs": peer_cidrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        },
    }))
    .expect("a JSON value serializes");
    Ok(Policy {
        actions,
        max_restarts: file.max_restarts.unwrap_or(0),
        dangerous_capabilities: file
            .dangerous_capabilities
            .iter()
            .flatten()
            .map(|c| normalize_cap(c))
            .collect(),
        image_patterns,
        images,
        image_digests,
        listen_ports,
        peer_cidrs,
        sha256: hex::encode(Sha256::digest(&canonical)),
    })
}

fn parse_port(p: &PortValue) -> Option<PortRule> {
    let text = match p {
        PortValue::Number(n) => {
            return (*n != 0).then_some(PortRule {
                transport: None,
                first: *n,
                last: *n,
            });
        }
        PortValue::Text(t) => t.trim(),
    };
    let (transport, range) = match text.split_once('/') {
        Some(("tcp", r)) => (Some(Transport::Tcp), r),
        Some(("udp", r)) => (Some(Transport::Udp), r),
        Some(_) => return None,
        None => (None, text),
    };
    let (first, last) = match range.split_once('-') {
        Some((a, b)) => (a.parse::<u16>().ok()?, b.parse::<u16>().ok()?),
        None => {
            let p = range.parse::<u16>().ok()?;
            (p, p)
        }
    };
    (first != 0 && first <= last).then_some(PortRule {
        transport,
        first,
        last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_names_every_check_and_parses() {
        let file = parse_file(DEFAULT_POLICY_YAML, "x").unwrap();
        let named = file.checks.unwrap();
        for c in CheckId::ALL {
            assert!(
                named.contains_key(&c),
                "{c} missing from the built-in policy"
            );
        }
        let p = Policy::builtin();
        assert_eq!(p.action(CheckId::Privileged), Action::Abort);
        assert_eq!(p.sha256().len(), 64);
    }

    #[test]
    fn ports_parse() {
        let t = |s: &str| parse_port(&PortValue::Text(s.into()));
        assert_eq!(
            t("tcp/8000-8099"),
            Some(PortRule {
                transport: Some(Transport::Tcp),
                first: 8000,
                last: 8099
            })
        );
        assert_eq!(t("53").unwrap().transport, None);
        for bad in ["0", "sctp/1", "tcp/", "9-8", "70000", "tcp/a"] {
            assert_eq!(t(bad), None, "{bad}");
        }
        assert!(parse_port(&PortValue::Number(0)).is_none());
    }
}
