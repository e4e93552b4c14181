//! Label selectors with the full Kubernetes grammar (`k=v`, `k==v`, `k!=v`, `k in (..)`,
//! `k notin (..)`, `k`, `!k`, `k>n`, `k<n`) and the field selectors the fake supports.

use std::collections::BTreeMap;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    Gt(i64),
    Lt(i64),
}

/// A parsed label selector; empty selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Selector {
    requirements: Vec<(String, Op)>,
}

impl Selector {
    /// Parses the `labelSelector` query value. Errors read like the real server's.
    pub(crate) fn parse(input: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in split_terms(input)? {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            requirements.push(parse_term(term)?);
        }
        Ok(Self { requirements })
    }

    /// Whether `labels` satisfy every requirement (`!=` and `notin` match an absent key, as in
    /// Kubernetes).
    pub(crate) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|(key, op)| {
            let value = labels.get(key);
            match op {
                Op::Equals(v) => value == Some(v),
                Op::NotEquals(v) => value != Some(v),
                Op::In(vs) => value.is_some_and(|x| vs.contains(x)),
                Op::NotIn(vs) => value.is_none_or(|x| !vs.contains(x)),
                Op::Exists => value.is_some(),
                Op::DoesNotExist => value.is_none(),
                Op::Gt(n) => value
                    .and_then(|x| x.parse::<i64>().ok())
                    .is_some_and(|x| x > *n),
                Op::Lt(n) => value
                    .and_then(|x| x.parse::<i64>().ok())
                    .is_some_and(|x| x < *n),
            }
        })
    }
}

/// Splits on commas that are not inside a parenthesised set.
fn split_terms(input: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut cur = String::new();
    for c in input.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth = depth.checked_sub(1).ok_or_else(|| {
                    format!("unable to parse requirement: unbalanced ')' in {input:?}")
                })?;
                cur.push(c);
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if depth != 0 {
        return Err(format!(
            "unable to parse requirement: unbalanced '(' in {input:?}"
        ));
    }
    out.push(cur);
    Ok(out)
}

fn parse_term(term: &str) -> Result<(String, Op), String> {
    let bad = || format!("unable to parse requirement: found '{term}', expected: identifier");
    if let Some(key) = term.strip_prefix('!') {
        let key = key.trim();
        check_key(key).map_err(|_| bad())?;
        return Ok((key.to_owned(), Op::DoesNotExist));
    }
    for (token, ctor) in [
        ("!=", Op::NotEquals as fn(String) -> Op),
        ("==", Op::Equals as fn(String) -> Op),
        ("=", Op::Equals as fn(String) -> Op),
    ] {
        if let Some((k, v)) = term.split_once(token) {
            let (k, v) = (k.trim(), v.trim());
            check_key(k)?;
            check_value(v)?;
            return Ok((k.to_owned(), ctor(v.to_owned())));
        }
    }
    for (token, gt) in [(">", true), ("<", false)] {
        if let Some((k, v)) = term.split_once(token) {
            let k = k.trim();
            check_key(k)?;
            let n: i64 = v
                .trim()
                .parse()
                .map_err(|_| format!("unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer: {v}"))?;
            return Ok((k.to_owned(), if gt { Op::Gt(n) } else { Op::Lt(n) }));
        }
    }
    let words: Vec<&str> = term.splitn(2, char::is_whitespace).collect();
    if words.len() == 2 {
        let key = words[0].trim();
        let rest = words[1].trim_start();
        let (neg, set) = if let Some(s) = rest.strip_prefix("notin") {
            (true, s)
        } else if let Some(s) = rest.strip_prefix("in") {
            (false, s)
        } else {
            return Err(bad());
        };
        check_key(key)?;
        let set = set.trim();
        let inner = set
            .strip_prefix('(')
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(|| format!("unable to parse requirement: found '{set}', expected: '('"))?;
        let values: Vec<String> = inner
            .split(',')
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect();
        if values.is_empty() {
            return Err("unable to parse requirement: for 'in', 'notin' operators, values set can't be empty".into());
        }
        for v in &values {
            check_value(v)?;
        }
        return Ok((
            key.to_owned(),
            if neg {
                Op::NotIn(values)
            } else {
                Op::In(values)
            },
        ));
    }
    check_key(term).map_err(|_| bad())?;
    Ok((term.to_owned(), Op::Exists))
}

/// A qualified name with an optional DNS-subdomain prefix, as label keys must be.
fn check_key(key: &str) -> Result<(), String> {
    let name = match key.rsplit_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty() || prefix.len() > 253 {
                return Err(format!(
                    "unable to parse requirement: invalid label key {key:?}"
                ));
            }
            name
        }
        None => key,
    };
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "unable to parse requirement: invalid label key {key:?}"
        ))
    }
}

fn check_value(v: &str) -> Result<(), String> {
    let ok = v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "unable to parse requirement: invalid label value: {v:?}"
        ))
    }
}

/// A field selector: `metadata.name`, `metadata.namespace` for every kind and `status.phase`,
/// `spec.nodeName`, `spec.serviceAccountName` for pods; `=`, `==`, `!=`.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

impl FieldSelector {
    pub(crate) fn parse(input: &str, kind: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for term in input.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, eq, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{term}'; can't understand '{term}'"
                ));
            };
            let field = field.trim();
            let supported = matches!(field, "metadata.name" | "metadata.namespace")
                || (kind == "Pod"
                    && matches!(
                        field,
                        "status.phase" | "spec.nodeName" | "spec.serviceAccountName"
                    ));
            if !supported {
                return Err(format!("field label not supported: {field}"));
            }
            terms.push((field.to_owned(), eq, value.trim().to_owned()));
        }
        Ok(Self { terms })
    }

    pub(crate) fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|(field, eq, want)| {
            let got = field
                .split('.')
                .try_fold(obj, |v, k| v.get(k))
                .and_then(Value::as_str)
                .unwrap_or("");
            (got == want) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn full_grammar() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("n", "5")]);
        let yes = [
            "app=web",
            "app==web",
            "app!=db",
            "missing!=x",
            "app in (web, db)",
            "app notin (db)",
            "missing notin (db)",
            "app",
            "!missing",
            "app=web,tier=front",
            "n>4",
            "n<6",
            "",
        ];
        for s in yes {
            assert!(Selector::parse(s).unwrap().matches(&l), "{s}");
        }
        let no = [
            "app=db",
            "app!=web",
            "app in (db)",
            "app notin (web,db)",
            "missing",
            "!app",
            "n>5",
        ];
        for s in no {
            assert!(!Selector::parse(s).unwrap().matches(&l), "{s}");
        }
        for bad in ["app in ()", "app in (a", "=x", "a b c", "k=v v"] {
            assert!(Selector::parse(bad).is_err(), "{bad}");
        }
    }
}
