//! Matchers: the conditions a profile puts on one field of a resource's records
//! (`mode: {max: "0640"}`, `owner: root`, `content: {not_matches: REGEX}`, ...), how they are
//! read from YAML, described in HDF `code_desc`, and tested against a value.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt::Write as _;

use regex::bytes::{Regex, RegexBuilder};

use crate::EngineError;
use crate::scope::Scope;
use crate::version;
use crate::yaml::Node;

/// The type of a field, which decides the matchers it accepts and how scalars are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldType {
    /// A whole number.
    Int,
    /// Permission bits, always written in octal (`644`, `0644`, `0o644` are the same).
    Mode,
    /// Text (bytes: target data need not be UTF-8). Regexes see the whole value: `^`/`$` are
    /// its start and end, so a hostile file name with a newline cannot satisfy `^/tmp/`.
    Text,
    /// A file's content: text matchers, with `^`/`$` at line boundaries.
    Content,
    /// `true` / `false`.
    Bool,
    /// A set of words (capabilities, group members).
    List,
    /// A package version, ordered as dpkg orders versions.
    Version,
}

/// A field's value in one record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    /// A number.
    Int(i64),
    /// Permission bits.
    Mode(u32),
    /// Text; `complete` is false when only a capped prefix was read.
    Text(Cow<'a, [u8]>, bool),
    /// A boolean.
    Bool(bool),
    /// A set of words.
    List(Vec<String>),
    /// A version, ordered as dpkg orders versions (dpkg and apk packages).
    Version(Cow<'a, str>),
    /// A version `[epoch:]version-release`, ordered as rpm orders versions (RPM packages).
    RpmVersion(Cow<'a, str>),
    /// The record has no value for this field (an empty column, an unknown date).
    Missing,
    /// The value could not be determined from the facts.
    Unknown(Issue),
}

/// Why a check could not be judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Issue {
    /// Not applicable to this scan (e.g. no target process): the result is `skipped`.
    Skip(String),
    /// A needed fact is missing or unreadable: the result is `error`.
    Error(String),
}

/// The outcome of one matcher on one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The condition holds.
    Pass,
    /// It does not; the text says what was found.
    Fail(String),
    /// It cannot be decided.
    Unknown(Issue),
}

#[derive(Debug, Clone)]
enum Op {
    IntCmp(Cmp, i64),
    IntIn(bool, Vec<i64>),
    ModeEq(u32),
    ModeMax(u32),
    ModeSet(u32),
    ModeUnset(u32),
    TextEq(bool, Vec<u8>),
    TextIn(bool, Vec<Vec<u8>>),
    TextMatches(bool, Regex),
    Bool(bool),
    ListEq(Vec<String>),
    ListIncludes(Vec<String>),
    ListExcludes(Vec<String>),
    ListSubsetOf(Vec<String>),
    ListEmpty(bool),
    VersionCmp(Cmp, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Min,
    Max,
    Lt,
    Gt,
}

impl Cmp {
    fn holds(self, o: Ordering) -> bool {
        match self {
            Self::Eq => o.is_eq(),
            Self::Ne => o.is_ne(),
            Self::Min => o.is_ge(),
            Self::Max => o.is_le(),
            Self::Lt => o.is_lt(),
            Self::Gt => o.is_gt(),
        }
    }

    fn words(self) -> &'static str {
        match self {
            Self::Eq => "is",
            Self::Ne => "is not",
            Self::Min => "is at least",
            Self::Max => "is at most",
            Self::Lt => "is below",
            Self::Gt => "is above",
        }
    }

    fn from_key(key: &str) -> Option<Self> {
        Some(match key {
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "min" => Self::Min,
            "max" => Self::Max,
            "lt" => Self::Lt,
            "gt" => Self::Gt,
            _ => return None,
        })
    }
}

/// All conditions written for one field (a mapping with several keys means all of them).
#[derive(Debug, Clone)]
pub(crate) struct Matcher {
    ops: Vec<Op>,
}

/// Keys a mapping matcher accepts, per type (for the error that lists them).
fn keys_for(ty: FieldType) -> &'static [&'static str] {
    match ty {
        FieldType::Int => &["eq", "ne", "min", "max", "lt", "gt", "in", "not_in"],
        FieldType::Mode => &["eq", "max", "set", "unset"],
        FieldType::Text | FieldType::Content => {
            &["eq", "ne", "in", "not_in", "matches", "not_matches"]
        }
        FieldType::Bool => &["eq"],
        FieldType::List => &["eq", "includes", "excludes", "subset_of", "empty"],
        FieldType::Version => &["eq", "ne", "min", "max", "lt", "gt"],
    }
}

impl Matcher {
    /// Reads a matcher for a field of type `ty` at `field` (a scalar or list is shorthand for
    /// `eq`; a mapping combines conditions).
    pub(crate) fn parse(
        scope: &Scope<'_>,
        field: &str,
        node: &Node,
        ty: FieldType,
    ) -> Result<Self, EngineError> {
        let node = scope.resolve(node, field)?;
        let mut ops = Vec::new();
        match node.as_map() {
            Some(entries) => {
                if entries.is_empty() {
                    return Err(scope.error(
                        node.line,
                        field,
                        format!(
                            "an empty condition; use one of: {}",
                            keys_for(ty).join(", ")
                        ),
                    ));
                }
                for e in entries {
                    let at = format!("{field}.{}", e.key);
                    ops.push(parse_op(scope, &at, &e.key, &e.value, ty)?.ok_or_else(|| {
                        scope.error(
                            e.line,
                            &at,
                            format!(
                                "unknown condition `{}` for a {} field; use one of: {}",
                                e.key,
                                type_name(ty),
                                keys_for(ty).join(", ")
                            ),
                        )
                    })?);
                }
            }
            None => ops.push(
                parse_op(scope, field, "eq", &node, ty)?
                    .ok_or_else(|| scope.error(node.line, field, "not a condition".to_owned()))?,
            ),
        }
        Ok(Self { ops })
    }

    /// A matcher requiring equality with `text` (for sugar such as `directory`).
    pub(crate) fn text_eq(text: &str) -> Self {
        Self {
            ops: vec![Op::TextEq(true, text.as_bytes().to_vec())],
        }
    }

    /// Human description, e.g. `is at most 0640`, `matches /^root$/`.
    pub(crate) fn describe(&self) -> String {
        let parts: Vec<String> = self.ops.iter().map(describe_op).collect();
        parts.join(" and ")
    }

    /// Tests the value: every condition must hold.
    pub(crate) fn test(&self, value: &Value<'_>, sensitive: bool) -> Verdict {
        match value {
            Value::Unknown(issue) => return Verdict::Unknown(issue.clone()),
            Value::Missing => return Verdict::Fail("not set".into()),
            _ => {}
        }
        for op in &self.ops {
            match test_op(op, value) {
                Some(true) => {}
                Some(false) => return Verdict::Fail(show(value, sensitive)),
                None => {
                    return Verdict::Unknown(Issue::Error(match value {
                        Value::Text(bytes, false) => format!(
                            "only the first {} bytes could be read, too few to decide; raise \
                             the resource's `max_bytes`",
                            bytes.len()
                        ),
                        _ => "the value has a different type than the matcher (engine bug)"
                            .to_owned(),
                    }));
                }
            }
        }
        Verdict::Pass
    }

    /// Tests the number of records (a `count` matcher).
    pub(crate) fn test_count(&self, n: usize) -> Verdict {
        self.test(&Value::Int(i64::try_from(n).unwrap_or(i64::MAX)), false)
    }
}

fn type_name(ty: FieldType) -> &'static str {
    match ty {
        FieldType::Int => "number",
        FieldType::Mode => "mode",
        FieldType::Text => "text",
        FieldType::Content => "content",
        FieldType::Bool => "boolean",
        FieldType::List => "list",
        FieldType::Version => "version",
    }
}

fn parse_op(
    scope: &Scope<'_>,
    at: &str,
    key: &str,
    node: &Node,
    ty: FieldType,
) -> Result<Option<Op>, EngineError> {
    let node = scope.resolve(node, at)?;
    let node = &*node;
    Ok(Some(match (ty, key) {
        (FieldType::Int, "in" | "not_in") => Op::IntIn(
            key == "in",
            list(scope, at, node)?
                .iter()
                .map(|n| int(scope, at, n))
                .collect::<Result<_, _>>()?,
        ),
        (FieldType::Int, _) => match Cmp::from_key(key) {
            Some(c) => Op::IntCmp(c, int(scope, at, node)?),
            None => return Ok(None),
        },
        (FieldType::Mode, "eq") => Op::ModeEq(mode(scope, at, node)?),
        (FieldType::Mode, "max") => Op::ModeMax(mode(scope, at, node)?),
        (FieldType::Mode, "set") => Op::ModeSet(mode(scope, at, node)?),
        (FieldType::Mode, "unset") => Op::ModeUnset(mode(scope, at, node)?),
        (FieldType::Text | FieldType::Content, "eq" | "ne") => {
            Op::TextEq(key == "eq", text(scope, at, node)?.into())
        }
        (FieldType::Text | FieldType::Content, "in" | "not_in") => Op::TextIn(
            key == "in",
            list(scope, at, node)?
                .iter()
                .map(|n| text(scope, at, n).map(String::into_bytes))
                .collect::<Result<_, _>>()?,
        ),
        (FieldType::Text | FieldType::Content, "matches" | "not_matches") => Op::TextMatches(
            key == "matches",
            regex(scope, at, node, ty == FieldType::Content)?,
        ),
        (FieldType::Bool, "eq") => Op::Bool(boolean(scope, at, node)?),
        (FieldType::List, "eq") if node.as_seq().is_some() => Op::ListEq(words(scope, at, node)?),
        (FieldType::List, "eq") => {
            return Err(scope.error(
                node.line,
                at,
                "a list field is compared with a list (e.g. `[]`) or a condition such as \
                 `{includes: X}`"
                    .into(),
            ));
        }
        (FieldType::List, "includes") => Op::ListIncludes(words(scope, at, node)?),
        (FieldType::List, "excludes") => Op::ListExcludes(words(scope, at, node)?),
        (FieldType::List, "subset_of") => Op::ListSubsetOf(words(scope, at, node)?),
        (FieldType::List, "empty") => Op::ListEmpty(boolean(scope, at, node)?),
        (FieldType::Version, _) => match Cmp::from_key(key) {
            Some(c) => Op::VersionCmp(c, text(scope, at, node)?),
            None => return Ok(None),
        },
        _ => return Ok(None),
    }))
}

fn list<'n>(scope: &Scope<'_>, at: &str, node: &'n Node) -> Result<&'n [Node], EngineError> {
    node.as_seq().ok_or_else(|| {
        scope.error(
            node.line,
            at,
            format!("expected a list, found {}", node.shape()),
        )
    })
}

/// A list of words; a single scalar counts as a one-word list.
fn words(scope: &Scope<'_>, at: &str, node: &Node) -> Result<Vec<String>, EngineError> {
    match node.as_seq() {
        Some(items) => items
            .iter()
            .map(|n| scope.resolve(n, at).and_then(|n| text(scope, at, &n)))
            .collect(),
        None => Ok(vec![text(scope, at, node)?]),
    }
}

/// A non-null scalar's text.
pub(crate) fn text(scope: &Scope<'_>, at: &str, node: &Node) -> Result<String, EngineError> {
    match node.as_scalar() {
        Some(t) if !node.is_null() => Ok(t.to_owned()),
        _ => Err(scope.error(
            node.line,
            at,
            format!(
                "expected text, found {} (quote an empty text: \"\")",
                node.shape()
            ),
        )),
    }
}

/// A whole number: decimal, or `0o`/`0x`/`0b` prefixed, optionally negative.
pub(crate) fn int(scope: &Scope<'_>, at: &str, node: &Node) -> Result<i64, EngineError> {
    let t = text(scope, at, node)?;
    parse_int(&t).ok_or_else(|| {
        scope.error(
            node.line,
            at,
            format!("`{t}` is not a whole number (write e.g. 0, 1000 or 0o755)"),
        )
    })
}

/// Parses a whole number as [`int`] does.
pub(crate) fn parse_int(t: &str) -> Option<i64> {
    let t = t.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (radix, digits) = if let Some(d) = digits.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = digits.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = digits.strip_prefix("0b") {
        (2, d)
    } else {
        (10, digits)
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let v = i64::from_str_radix(digits, radix).ok()?;
    Some(if neg { -v } else { v })
}

/// Permission bits, always octal: `644`, `0644` and `0o644` mean the same.
pub(crate) fn mode(scope: &Scope<'_>, at: &str, node: &Node) -> Result<u32, EngineError> {
    let t = text(scope, at, node)?;
    parse_mode(&t).ok_or_else(|| {
        scope.error(
            node.line,
            at,
            format!("`{t}` is not an octal mode from 0 to 7777 (write e.g. \"0640\")"),
        )
    })
}

/// Parses a mode as [`mode`] does.
pub(crate) fn parse_mode(t: &str) -> Option<u32> {
    let t = t.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return None;
    }
    u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o7777)
}

/// `true` or `false`.
pub(crate) fn boolean(scope: &Scope<'_>, at: &str, node: &Node) -> Result<bool, EngineError> {
    match text(scope, at, node)?.as_str() {
        "true" | "True" | "TRUE" => Ok(true),
        "false" | "False" | "FALSE" => Ok(false),
        other => Err(scope.error(
            node.line,
            at,
            format!("`{other}` is not a boolean; write true or false"),
        )),
    }
}

/// Longest pattern accepted, and the compiled program's size cap.
const REGEX_MAX_PATTERN: usize = 4096;
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A byte regex with ASCII classes (`\w`, `\d`, `(?i)`); `multi_line` puts `^`/`$` at line
/// boundaries (for file content only).
pub(crate) fn regex(
    scope: &Scope<'_>,
    at: &str,
    node: &Node,
    multi_line: bool,
) -> Result<Regex, EngineError> {
    let t = text(scope, at, node)?;
    compile_regex(&t, multi_line).map_err(|problem| scope.error(node.line, at, problem))
}

/// Compiles a pattern as [`regex`] does.
pub(crate) fn compile_regex(t: &str, multi_line: bool) -> Result<Regex, String> {
    if t.len() > REGEX_MAX_PATTERN {
        return Err(format!(
            "the pattern is longer than {REGEX_MAX_PATTERN} characters"
        ));
    }
    RegexBuilder::new(t)
        .unicode(false)
        .multi_line(multi_line)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("not a valid regular expression: {e}"))
}

fn test_op(op: &Op, value: &Value<'_>) -> Option<bool> {
    Some(match (op, value) {
        (Op::IntCmp(c, want), Value::Int(v)) => c.holds(v.cmp(want)),
        (Op::IntIn(yes, set), Value::Int(v)) => set.contains(v) == *yes,
        (Op::ModeEq(m), Value::Mode(v)) => v == m,
        (Op::ModeMax(m), Value::Mode(v)) => v & !m == 0,
        (Op::ModeSet(m), Value::Mode(v)) => v & m == *m,
        (Op::ModeUnset(m), Value::Mode(v)) => v & m == 0,
        // Equality needs the whole text; a capped read cannot decide it.
        (Op::TextEq(..) | Op::TextIn(..), Value::Text(_, false)) => return None,
        (Op::TextEq(yes, want), Value::Text(v, true)) => (v.as_ref() == want.as_slice()) == *yes,
        (Op::TextIn(yes, set), Value::Text(v, true)) => {
            set.iter().any(|s| s.as_slice() == v.as_ref()) == *yes
        }
        (Op::TextMatches(yes, re), Value::Text(v, complete)) => {
            let found = re.is_match(v);
            // A match in the prefix is decisive either way; no match in a prefix is not.
            if !found && !complete {
                return None;
            }
            found == *yes
        }
        (Op::Bool(want), Value::Bool(v)) => v == want,
        (Op::ListEq(want), Value::List(v)) => same_set(want, v),
        (Op::ListIncludes(want), Value::List(v)) => want.iter().all(|w| v.contains(w)),
        (Op::ListExcludes(bad), Value::List(v)) => !bad.iter().any(|b| v.contains(b)),
        (Op::ListSubsetOf(allowed), Value::List(v)) => v.iter().all(|x| allowed.contains(x)),
        (Op::ListEmpty(want), Value::List(v)) => v.is_empty() == *want,
        (Op::VersionCmp(c, want), Value::Version(v)) => c.holds(version::compare(v, want)),
        (Op::VersionCmp(c, want), Value::RpmVersion(v)) => {
            c.holds(keyhole_rpmdb::compare_evr(v, want))
        }
        _ => return None,
    })
}

fn same_set(a: &[String], b: &[String]) -> bool {
    a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
}

/// At most this many items of a list are spelled out in a description.
const SHOW_ITEMS: usize = 6;

fn show_list<T: AsRef<[u8]>>(items: &[T]) -> String {
    let mut s = String::from("[");
    for (i, item) in items.iter().take(SHOW_ITEMS).enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&show_bytes(item.as_ref()));
    }
    if items.len() > SHOW_ITEMS {
        let _ = write!(s, ", … {} more", items.len() - SHOW_ITEMS);
    }
    s.push(']');
    s
}

fn describe_op(op: &Op) -> String {
    match op {
        Op::IntCmp(c, v) => format!("{} {v}", c.words()),
        Op::IntIn(true, set) => format!("is one of {}", show_list(&strs(set))),
        Op::IntIn(false, set) => format!("is none of {}", show_list(&strs(set))),
        Op::ModeEq(m) => format!("is {m:04o}"),
        Op::ModeMax(m) => format!("allows no more than {m:04o}"),
        Op::ModeSet(m) => format!("has {m:04o} set"),
        Op::ModeUnset(m) => format!("has {m:04o} clear"),
        Op::TextEq(true, v) => format!("is {}", show_bytes(v)),
        Op::TextEq(false, v) => format!("is not {}", show_bytes(v)),
        Op::TextIn(true, set) => format!("is one of {}", show_list(set)),
        Op::TextIn(false, set) => format!("is none of {}", show_list(set)),
        Op::TextMatches(true, re) => format!("matches /{}/", re.as_str()),
        Op::TextMatches(false, re) => format!("does not match /{}/", re.as_str()),
        Op::Bool(b) => format!("is {b}"),
        Op::ListEq(v) => format!("is exactly {}", show_list(v)),
        Op::ListIncludes(v) => format!("includes {}", show_list(v)),
        Op::ListExcludes(v) => format!("excludes {}", show_list(v)),
        Op::ListSubsetOf(v) => format!("has nothing beyond {}", show_list(v)),
        Op::ListEmpty(true) => "is empty".to_owned(),
        Op::ListEmpty(false) => "is not empty".to_owned(),
        Op::VersionCmp(c, v) => format!("{} {v}", c.words()),
    }
}

fn strs(v: &[i64]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

/// Longest text shown in a message, in characters.
const SHOW_CHARS: usize = 120;

/// Quoted, escaped, shortened text of target data (which may be hostile: control characters
/// are escaped so a message cannot forge lines of a report).
pub(crate) fn show_bytes(b: &[u8]) -> String {
    let lossy = String::from_utf8_lossy(b);
    let mut s = String::from("`");
    for (i, ch) in lossy.chars().enumerate() {
        if i == SHOW_CHARS {
            s.push('…');
            break;
        }
        if ch.is_control() {
            s.extend(ch.escape_default());
        } else {
            s.push(ch);
        }
    }
    s.push('`');
    s
}

/// A value as shown in a failure message; sensitive values (password fields, environment
/// values, command lines) are never shown.
pub(crate) fn show(value: &Value<'_>, sensitive: bool) -> String {
    if sensitive {
        return "<redacted>".to_owned();
    }
    match value {
        Value::Int(v) => v.to_string(),
        Value::Mode(m) => format!("{m:04o}"),
        Value::Text(b, _) => show_bytes(b),
        Value::Bool(b) => b.to_string(),
        Value::List(v) => show_list(v),
        Value::Version(v) | Value::RpmVersion(v) => show_bytes(v.as_bytes()),
        Value::Missing => "not set".to_owned(),
        Value::Unknown(_) => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::yaml;

    fn m(src: &str, ty: FieldType) -> Result<Matcher, EngineError> {
        let inputs = BTreeMap::new();
        let scope = Scope::new("t.yaml", &inputs);
        let node = yaml::parse(src).unwrap();
        Matcher::parse(&scope, "f", &node, ty)
    }

    fn text_value(s: &str) -> Value<'_> {
        Value::Text(Cow::Borrowed(s.as_bytes()), true)
    }

    #[test]
    fn numbers_and_their_spellings() {
        assert_eq!(parse_int("0o755"), Some(0o755));
        assert_eq!(parse_int("-12"), Some(-12));
        assert_eq!(parse_int("0x1F"), Some(31));
        assert_eq!(parse_int("--1"), None);
        assert_eq!(parse_int(""), None);
        let within = m("{min: 1, max: 3}", FieldType::Int).unwrap();
        assert_eq!(within.test(&Value::Int(2), false), Verdict::Pass);
        assert_eq!(
            within.test(&Value::Int(4), false),
            Verdict::Fail("4".into())
        );
        assert_eq!(within.describe(), "is at least 1 and is at most 3");
        let set = m("{not_in: [0, 1]}", FieldType::Int).unwrap();
        assert_eq!(set.test(&Value::Int(0), false), Verdict::Fail("0".into()));
        assert_eq!(set.test(&Value::Int(5), false), Verdict::Pass);
        assert!(m("{most: 1}", FieldType::Int).is_err());
        assert!(m("{}", FieldType::Int).is_err());
        assert!(m("abc", FieldType::Int).is_err());
    }

    #[test]
    fn modes_are_octal_and_max_is_a_bit_mask_not_a_number() {
        assert_eq!(parse_mode("644"), Some(0o644));
        assert_eq!(parse_mode("0o4755"), Some(0o4755));
        assert_eq!(parse_mode("0800"), None);
        assert_eq!(parse_mode("17777"), None);
        let max = m("{max: \"0640\"}", FieldType::Mode).unwrap();
        assert_eq!(max.test(&Value::Mode(0o600), false), Verdict::Pass);
        // 0604 is numerically below 0640 but world-readable: a mask refuses it.
        assert_eq!(
            max.test(&Value::Mode(0o604), false),
            Verdict::Fail("0604".into())
        );
        let sticky = m("{set: 1000, unset: \"0002\"}", FieldType::Mode).unwrap();
        assert_eq!(
            sticky.test(&Value::Mode(0o1777), false),
            Verdict::Fail("1777".into())
        );
        assert_eq!(sticky.test(&Value::Mode(0o1775), false), Verdict::Pass);
        assert_eq!(
            m("\"0644\"", FieldType::Mode).unwrap().describe(),
            "is 0644"
        );
    }

    #[test]
    fn text_equality_sets_and_regexes() {
        let eq = m("root", FieldType::Text).unwrap();
        assert_eq!(eq.test(&text_value("root"), false), Verdict::Pass);
        assert_eq!(
            eq.test(&text_value("daemon"), true),
            Verdict::Fail("<redacted>".into())
        );
        let re = m(
            "{matches: '^\\w+$', not_matches: '(?i)^ROOT$'}",
            FieldType::Text,
        )
        .unwrap();
        assert_eq!(re.test(&text_value("nobody"), false), Verdict::Pass);
        assert!(matches!(
            re.test(&text_value("Root"), false),
            Verdict::Fail(_)
        ));
        // Target bytes need not be UTF-8.
        let bytes = Value::Text(Cow::Borrowed(b"a\xffb"), true);
        assert_eq!(
            m("{matches: 'a.b'}", FieldType::Text)
                .unwrap()
                .test(&bytes, false),
            Verdict::Pass
        );
        assert!(m("{matches: '('}", FieldType::Text).is_err());
        let not_in = m("{not_in: [a, b]}", FieldType::Text).unwrap();
        assert!(matches!(
            not_in.test(&text_value("a"), false),
            Verdict::Fail(_)
        ));
        assert!(m("{in: a}", FieldType::Text).is_err());
        assert!(m("~", FieldType::Text).is_err());
    }

    #[test]
    fn a_newline_in_a_value_cannot_fake_a_line_start_but_content_is_per_line() {
        let tmp = m("{matches: '^/tmp/'}", FieldType::Text).unwrap();
        assert!(matches!(
            tmp.test(&text_value("/etc/x\n/tmp/y"), false),
            Verdict::Fail(_)
        ));
        let line = m("{matches: '^PermitRootLogin no$'}", FieldType::Content).unwrap();
        assert_eq!(
            line.test(&text_value("# x\nPermitRootLogin no\n"), false),
            Verdict::Pass
        );
    }

    #[test]
    fn a_capped_read_decides_only_what_its_prefix_proves() {
        let partial = Value::Text(Cow::Borrowed(b"key=1\n"), false);
        let has = m("{matches: 'key='}", FieldType::Text).unwrap();
        let lacks = m("{not_matches: 'secret'}", FieldType::Text).unwrap();
        let bad = m("{not_matches: 'key'}", FieldType::Text).unwrap();
        assert_eq!(has.test(&partial, false), Verdict::Pass);
        assert!(matches!(
            lacks.test(&partial, false),
            Verdict::Unknown(Issue::Error(_))
        ));
        assert!(matches!(bad.test(&partial, false), Verdict::Fail(_)));
        assert!(matches!(
            m("x", FieldType::Text).unwrap().test(&partial, false),
            Verdict::Unknown(_)
        ));
    }

    #[test]
    fn lists_versions_booleans_and_missing_values() {
        let caps = Value::List(vec!["CAP_CHOWN".into(), "CAP_KILL".into()]);
        assert_eq!(
            m(
                "{subset_of: [CAP_CHOWN, CAP_KILL, CAP_SETUID]}",
                FieldType::List
            )
            .unwrap()
            .test(&caps, false),
            Verdict::Pass
        );
        assert!(matches!(
            m("{excludes: CAP_KILL}", FieldType::List)
                .unwrap()
                .test(&caps, false),
            Verdict::Fail(_)
        ));
        assert_eq!(
            m("[]", FieldType::List)
                .unwrap()
                .test(&Value::List(vec![]), false),
            Verdict::Pass
        );
        assert!(m("x", FieldType::List).is_err());
        let v = m("{min: '1.2.3-1'}", FieldType::Version).unwrap();
        assert_eq!(
            v.test(&Value::Version("1.10-1".into()), false),
            Verdict::Pass
        );
        assert!(matches!(
            v.test(&Value::Version("1.2~rc1".into()), false),
            Verdict::Fail(_)
        ));
        let b = m("true", FieldType::Bool).unwrap();
        assert_eq!(b.test(&Value::Bool(true), false), Verdict::Pass);
        assert!(m("yes", FieldType::Bool).is_err());
        assert_eq!(
            b.test(&Value::Missing, false),
            Verdict::Fail("not set".into())
        );
        let issue = Issue::Skip("no process".into());
        assert_eq!(
            b.test(&Value::Unknown(issue.clone()), false),
            Verdict::Unknown(issue)
        );
    }

    #[test]
    fn shown_target_text_is_escaped_and_shortened() {
        assert_eq!(show_bytes(b"a\nb"), "`a\\nb`");
        assert!(show_bytes(&[b'x'; 500]).ends_with("…`"));
    }
}
