//! Validated Kubernetes names (DNS-1123), checked before anything else happens.

use std::fmt;

use crate::CoreError;

/// Longest DNS-1123 label (namespaces, container names).
const LABEL_MAX: usize = 63;
/// Longest DNS-1123 subdomain (pod names and most object names).
const SUBDOMAIN_MAX: usize = 253;

fn is_label_char(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'
}

/// Why `s` is not a DNS-1123 label, if it is not one.
fn label_error(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Some("must not be empty".into());
    }
    if b.len() > LABEL_MAX {
        return Some(format!(
            "must be at most {LABEL_MAX} characters (has {})",
            b.len()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !c.is_ascii() || !is_label_char(*c as u8))
    {
        return Some(format!(
            "character {c:?} not allowed: use lowercase letters, digits and '-'"
        ));
    }
    if !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return Some("must start and end with a lowercase letter or digit".into());
    }
    None
}

/// Why `s` is not a DNS-1123 subdomain, if it is not one.
fn subdomain_error(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("must not be empty".into());
    }
    if s.len() > SUBDOMAIN_MAX {
        return Some(format!(
            "must be at most {SUBDOMAIN_MAX} characters (has {})",
            s.len()
        ));
    }
    let multi = s.contains('.');
    for part in s.split('.') {
        if let Some(e) = label_error(part) {
            return Some(if multi {
                format!("part {part:?} {e}")
            } else {
                e
            });
        }
    }
    None
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $kind:literal, $check:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $ty(String);

        impl $ty {
            /// Validates `value`, naming the broken rule on failure.
            pub fn new(value: impl Into<String>) -> Result<Self, CoreError> {
                let value = value.into();
                match $check(&value) {
                    None => Ok(Self(value)),
                    Some(reason) => Err(CoreError::InvalidName { kind: $kind, value, reason }),
                }
            }

            /// The validated name.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $ty {
            type Err = CoreError;
            fn from_str(s: &str) -> Result<Self, CoreError> {
                Self::new(s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// A namespace name: a DNS-1123 label.
    Namespace, "namespace", label_error
);
name_type!(
    /// A pod name: a DNS-1123 subdomain.
    PodName, "pod", subdomain_error
);
name_type!(
    /// A container name: a DNS-1123 label.
    ContainerName, "container", label_error
);
name_type!(
    /// The name of an object Keyhole creates (ServiceAccount, Role, ...): a DNS-1123 label, so
    /// it is valid for every kind Keyhole creates.
    Name, "object", label_error
);

/// An equality-based label selector (`key=value,key2=value2`), resolved to pod names at scan
/// time with the user's credentials, because Role rules cannot hold selectors.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelSelector {
    terms: Vec<(String, String)>,
}

impl LabelSelector {
    /// Parses `key=value[,key=value...]`; keys may carry a DNS subdomain prefix (`a.io/b`).
    pub fn parse(input: &str) -> Result<Self, CoreError> {
        let err = |reason: String| CoreError::InvalidSelector {
            value: input.to_string(),
            reason,
        };
        let mut terms = Vec::new();
        for term in input.split(',') {
            let term = term.trim();
            let (k, v) = term
                .split_once("==")
                .or_else(|| term.split_once('='))
                .ok_or_else(|| err(format!("term {term:?} is not key=value")))?;
            let (k, v) = (k.trim(), v.trim());
            if let Some(reason) = label_key_error(k) {
                return Err(err(format!("key {k:?} {reason}")));
            }
            if let Some(reason) = label_value_error(v) {
                return Err(err(format!("value {v:?} {reason}")));
            }
            terms.push((k.to_string(), v.to_string()));
        }
        terms.sort();
        terms.dedup();
        Ok(Self { terms })
    }

    /// The `(key, value)` terms, sorted.
    pub fn terms(&self) -> &[(String, String)] {
        &self.terms
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

fn label_name_error(s: &str) -> Option<String> {
    if s.is_empty() || s.len() > 63 {
        return Some("name part must be 1-63 characters".into());
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if !s.chars().all(ok) {
        return Some("name part allows only letters, digits, '-', '_' and '.'".into());
    }
    let (first, last) = (s.as_bytes()[0], s.as_bytes()[s.len() - 1]);
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return Some("name part must start and end with a letter or digit".into());
    }
    None
}

fn label_key_error(k: &str) -> Option<String> {
    match k.split_once('/') {
        Some((prefix, name)) => subdomain_error(prefix)
            .map(|e| format!("prefix {e}"))
            .or_else(|| label_name_error(name)),
        None => label_name_error(k),
    }
}

fn label_value_error(v: &str) -> Option<String> {
    if v.is_empty() {
        None
    } else {
        label_name_error(v).map(|e| e.replace("name part", "value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_dns1123() {
        for ok in ["a", "web-0", "a1", &"a".repeat(63)] {
            assert!(Namespace::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", "ä", &"a".repeat(64)] {
            assert!(Namespace::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pod_names_are_subdomains() {
        assert!(PodName::new("web-0.shard.a").is_ok());
        assert!(PodName::new("web..0").is_err());
        assert!(PodName::new(".web").is_err());
        assert!(PodName::new("a".repeat(254)).is_err());
        let e = PodName::new("Web").unwrap_err().to_string();
        assert!(e.contains("invalid pod name \"Web\""), "{e}");
    }

    #[test]
    fn selectors_parse_and_reject() {
        let s = LabelSelector::parse("app=web, app.kubernetes.io/name==shop").unwrap();
        assert_eq!(s.to_string(), "app=web,app.kubernetes.io/name=shop");
        for bad in ["app", "app in (a,b)", "=x", "a=b c", "Bad_/x=1", "a=-x"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }
}
