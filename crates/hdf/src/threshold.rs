//! SAF CLI threshold files (`saf validate threshold -T FILE`), read exactly as SAF 1.5.3 reads
//! them.
//!
//! SAF parses the YAML; when *every* top-level value is a number the file is "flattened"
//! (`passed.critical.min: 1`) and is unflattened by splitting each key on `.` into at most three
//! parts, where a three-part key *replaces* whatever an earlier key put under the same first two
//! parts (so `passed.critical.min` then `passed.critical.max` keeps only the max). Otherwise the
//! file is nested, and each check path is looked up with lodash `get`: a top-level key spelled
//! exactly like the whole dotted path wins, else the path is walked through nested mappings. The
//! compliance bounds are the exception: SAF reads them as `thresholds.compliance.min`, so only
//! the nested spelling works in a nested file.
//!
//! SAF reads only these entries, and ignores every other key:
//! `compliance.{min,max}`; `{passed,failed,skipped,no_impact,error}.total` as a plain number
//! (exact count); `{passed,failed,skipped,error}.total.{min,max}`;
//! `{passed,failed,skipped,error,no_impact}.{critical,high,medium,low}.{min,max,controls}`; and
//! `no_impact.none.{min,max,controls}`. Keyhole records the keys SAF ignores in
//! [`Threshold::ignored`] so that callers can warn about them.
//!
//! Where SAF coerces or silently skips a value of the wrong type (a string, a boolean, an empty
//! value, a list where a number belongs), keyhole refuses the file with
//! [`HdfError::ThresholdValue`] instead: a gate should not pass because of a typo.

use serde_norway::Value as Yaml;

use crate::HdfError;
use crate::status::Severity;

/// Lower and upper bounds, both inclusive (a check fails when the count is below `min` or above
/// `max`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bounds {
    /// Minimum.
    pub min: Option<f64>,
    /// Maximum.
    pub max: Option<f64>,
}

/// Bounds on the number of controls of one status across all severities.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TotalThreshold {
    /// `<status>.total: N` written as a plain number: the count must equal it exactly.
    pub exact: Option<f64>,
    /// `<status>.total.min` (SAF does not read it for `no_impact`).
    pub min: Option<f64>,
    /// `<status>.total.max` (SAF does not read it for `no_impact`).
    pub max: Option<f64>,
}

/// Bounds and expected control ids for one status and severity.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeverityThreshold {
    /// Minimum number of controls.
    pub min: Option<f64>,
    /// Maximum number of controls.
    pub max: Option<f64>,
    /// Control ids that must be exactly the controls with this status and severity (each must be
    /// present, and the list must be as long as the actual one; an empty list never passes,
    /// as in SAF).
    pub controls: Option<Vec<String>>,
}

/// Thresholds for one status.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusThreshold {
    /// Totals across severities.
    pub total: TotalThreshold,
    /// Critical controls.
    pub critical: SeverityThreshold,
    /// High controls.
    pub high: SeverityThreshold,
    /// Medium controls.
    pub medium: SeverityThreshold,
    /// Low controls.
    pub low: SeverityThreshold,
    /// Controls of severity none (SAF reads it for `no_impact` only).
    pub none: SeverityThreshold,
}

impl StatusThreshold {
    /// The thresholds for one severity.
    #[must_use]
    pub fn severity(&self, severity: Severity) -> &SeverityThreshold {
        match severity {
            Severity::Critical => &self.critical,
            Severity::High => &self.high,
            Severity::Medium => &self.medium,
            Severity::Low => &self.low,
            Severity::None => &self.none,
        }
    }

    fn severity_mut(&mut self, severity: Severity) -> &mut SeverityThreshold {
        match severity {
            Severity::Critical => &mut self.critical,
            Severity::High => &mut self.high,
            Severity::Medium => &mut self.medium,
            Severity::Low => &mut self.low,
            Severity::None => &mut self.none,
        }
    }
}

/// The statuses a threshold file speaks of, with SAF's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ThresholdStatus {
    /// `passed`: Heimdall "Passed".
    Passed,
    /// `failed`: Heimdall "Failed".
    Failed,
    /// `skipped`: Heimdall "Not Reviewed".
    Skipped,
    /// `error`: Heimdall "Profile Error".
    Error,
    /// `no_impact`: Heimdall "Not Applicable".
    NoImpact,
}

impl ThresholdStatus {
    /// All statuses in SAF's checking order for per-severity checks.
    pub const ALL: [Self; 5] = [
        Self::Passed,
        Self::Failed,
        Self::Skipped,
        Self::Error,
        Self::NoImpact,
    ];

    /// The key used in threshold files.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Error => "error",
            Self::NoImpact => "no_impact",
        }
    }
}

/// A parsed threshold file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Threshold {
    /// `compliance.min` / `compliance.max` (percent). As in SAF a bound of 0 is not checked.
    pub compliance: Bounds,
    /// `passed.*`.
    pub passed: StatusThreshold,
    /// `failed.*`.
    pub failed: StatusThreshold,
    /// `skipped.*`.
    pub skipped: StatusThreshold,
    /// `error.*`.
    pub error: StatusThreshold,
    /// `no_impact.*`.
    pub no_impact: StatusThreshold,
    /// Keys present in the file that SAF does not read (unknown keys, `no_impact.total.min`,
    /// `passed.none.max`, flattened keys replaced by a later one, ...), as written in the file.
    pub ignored: Vec<String>,
}

impl Threshold {
    /// The thresholds for one status.
    #[must_use]
    pub fn status(&self, status: ThresholdStatus) -> &StatusThreshold {
        match status {
            ThresholdStatus::Passed => &self.passed,
            ThresholdStatus::Failed => &self.failed,
            ThresholdStatus::Skipped => &self.skipped,
            ThresholdStatus::Error => &self.error,
            ThresholdStatus::NoImpact => &self.no_impact,
        }
    }

    fn status_mut(&mut self, status: ThresholdStatus) -> &mut StatusThreshold {
        match status {
            ThresholdStatus::Passed => &mut self.passed,
            ThresholdStatus::Failed => &mut self.failed,
            ThresholdStatus::Skipped => &mut self.skipped,
            ThresholdStatus::Error => &mut self.error,
            ThresholdStatus::NoImpact => &mut self.no_impact,
        }
    }

    /// Parses a threshold file (nested or flattened form) with SAF's semantics.
    ///
    /// # Errors
    /// [`HdfError::ThresholdYaml`] for bad YAML, [`HdfError::ThresholdShape`] when the document is
    /// empty or not a mapping, [`HdfError::ThresholdValue`] when an entry SAF reads is not a number
    /// (or, for `controls`, not a list of strings).
    pub fn from_yaml_str(text: &str) -> Result<Self, HdfError> {
        let yaml: Yaml =
            serde_norway::from_str(text).map_err(|source| HdfError::ThresholdYaml { source })?;
        let mut doc = Doc::default();
        let top = match untag(yaml) {
            Yaml::Mapping(map) => map,
            Yaml::Null => {
                return Err(HdfError::ThresholdShape {
                    problem: "the file is empty".to_owned(),
                });
            }
            other => {
                return Err(HdfError::ThresholdShape {
                    problem: format!("the top level is {}, not a mapping", yaml_kind(&other)),
                });
            }
        };
        let mut entries = Vec::with_capacity(top.len());
        for (key, value) in top {
            entries.push((key_string(key)?, untag(value)));
        }
        let flattened = entries.iter().all(|(_, v)| matches!(v, Yaml::Number(_)));
        doc.root = if flattened {
            doc.unflatten(entries)
        } else {
            doc.nest(entries, "")?
        };
        doc.into_threshold()
    }
}

/// A node of the (unflattened) threshold document. Leaves index `Doc::leaves`.
enum Node {
    Map(Vec<(String, Node)>),
    Leaf(usize),
}

#[derive(Default)]
struct Doc {
    /// Every scalar or list in the file, with its key path as written, in file order.
    leaves: Vec<(String, Yaml)>,
    used: Vec<bool>,
    root: Vec<(String, Node)>,
}

impl Doc {
    fn leaf(&mut self, source: String, value: Yaml) -> Node {
        self.leaves.push((source, value));
        self.used.push(false);
        Node::Leaf(self.leaves.len() - 1)
    }

    fn nest(
        &mut self,
        entries: Vec<(String, Yaml)>,
        prefix: &str,
    ) -> Result<Vec<(String, Node)>, HdfError> {
        let mut out = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let source = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            let node = match value {
                Yaml::Mapping(map) => {
                    let mut inner = Vec::with_capacity(map.len());
                    for (k, v) in map {
                        inner.push((key_string(k)?, untag(v)));
                    }
                    Node::Map(self.nest(inner, &source)?)
                }
                other => self.leaf(source, other),
            };
            out.push((key, node));
        }
        Ok(out)
    }

    /// SAF's `unflattenThreshold`: `a.b.c: v` sets `ret[a][b] = {c: v}` (replacing what was
    /// there), `a.b: v` sets `ret[a][b] = v`, and a key without a dot sets `ret[a]["undefined"]`.
    fn unflatten(&mut self, entries: Vec<(String, Yaml)>) -> Vec<(String, Node)> {
        let mut root: Vec<(String, Node)> = Vec::new();
        for (key, value) in entries {
            let mut parts = key.split('.');
            let left = parts.next().unwrap_or_default().to_owned();
            let middle = parts
                .next()
                .map_or_else(|| "undefined".to_owned(), str::to_owned);
            let right = parts.next().filter(|r| !r.is_empty()).map(str::to_owned);
            let leaf = self.leaf(key.clone(), value);
            let node = match right {
                Some(right) => Node::Map(vec![(right, leaf)]),
                None => leaf,
            };
            let slot = match root.iter().position(|(k, _)| *k == left) {
                Some(i) => i,
                None => {
                    root.push((left, Node::Map(Vec::new())));
                    root.len() - 1
                }
            };
            if let Node::Map(children) = &mut root[slot].1 {
                match children.iter().position(|(k, _)| *k == middle) {
                    Some(i) => children[i].1 = node,
                    None => children.push((middle, node)),
                }
            }
        }
        root
    }

    /// lodash `get(thresholds, path)`.
    fn get(&self, path: &str) -> Option<&Node> {
        // lodash treats the whole path as one key when the object has such a key.
        if let Some((_, node)) = self.root.iter().rev().find(|(k, _)| k == path) {
            return Some(node);
        }
        self.walk(path)
    }

    /// Plain property access `thresholds.a.b`.
    fn walk(&self, path: &str) -> Option<&Node> {
        let mut children = &self.root;
        let mut found = None;
        for part in path.split('.') {
            let (_, node) = children.iter().rev().find(|(k, _)| k == part)?;
            found = Some(node);
            children = match node {
                Node::Map(c) => c,
                Node::Leaf(_) => &EMPTY,
            };
        }
        found
    }

    fn number(&mut self, path: &str, node: Option<NodeRef>) -> Result<Option<f64>, HdfError> {
        let Some(node) = node else { return Ok(None) };
        let NodeRef::Leaf(i) = node else {
            return Err(HdfError::ThresholdValue {
                path: path.to_owned(),
                found: "a mapping",
                expected: "a number",
            });
        };
        self.used[i] = true;
        match &self.leaves[i].1 {
            Yaml::Number(n) => Ok(n.as_f64()),
            other => Err(HdfError::ThresholdValue {
                path: path.to_owned(),
                found: yaml_kind(other),
                expected: "a number",
            }),
        }
    }

    fn ids(&mut self, path: &str, node: Option<NodeRef>) -> Result<Option<Vec<String>>, HdfError> {
        const EXPECTED: &str = "a list of control ids (strings)";
        let Some(node) = node else { return Ok(None) };
        let NodeRef::Leaf(i) = node else {
            return Err(HdfError::ThresholdValue {
                path: path.to_owned(),
                found: "a mapping",
                expected: EXPECTED,
            });
        };
        self.used[i] = true;
        let Yaml::Sequence(items) = &self.leaves[i].1 else {
            return Err(HdfError::ThresholdValue {
                path: path.to_owned(),
                found: yaml_kind(&self.leaves[i].1),
                expected: EXPECTED,
            });
        };
        let mut ids = Vec::with_capacity(items.len());
        for item in items {
            match untag(item.clone()) {
                Yaml::String(s) => ids.push(s),
                other => {
                    return Err(HdfError::ThresholdValue {
                        path: path.to_owned(),
                        found: if matches!(other, Yaml::Number(_)) {
                            "a list holding a number"
                        } else {
                            "a list holding a non-string"
                        },
                        expected: EXPECTED,
                    });
                }
            }
        }
        Ok(Some(ids))
    }

    fn into_threshold(mut self) -> Result<Threshold, HdfError> {
        let mut t = Threshold::default();
        let compliance = NodeRef::of(self.walk("compliance"));
        // `thresholds.compliance.min` is only evaluated when `thresholds.compliance` is truthy:
        // a mapping. A scalar there is never read.
        if let Some(NodeRef::Map) = compliance {
            let min = NodeRef::of(self.walk("compliance.min"));
            let max = NodeRef::of(self.walk("compliance.max"));
            t.compliance.min = self.number("compliance.min", min)?;
            t.compliance.max = self.number("compliance.max", max)?;
        }
        for status in ThresholdStatus::ALL {
            let s = status.as_str();
            // The exact check runs only when `<status>.total` is not an object.
            let exact = format!("{s}.total");
            if let Some(NodeRef::Leaf(i)) = NodeRef::of(self.get(&exact)) {
                t.status_mut(status).total.exact = self.number(&exact, Some(NodeRef::Leaf(i)))?;
            }
            if status != ThresholdStatus::NoImpact {
                let (min, max) = (format!("{s}.total.min"), format!("{s}.total.max"));
                let (min_node, max_node) =
                    (NodeRef::of(self.get(&min)), NodeRef::of(self.get(&max)));
                t.status_mut(status).total.min = self.number(&min, min_node)?;
                t.status_mut(status).total.max = self.number(&max, max_node)?;
            }
            for severity in Severity::ALL {
                if severity == Severity::None && status != ThresholdStatus::NoImpact {
                    continue;
                }
                let base = format!("{s}.{severity}");
                let (min, max, ids) = (
                    format!("{base}.min"),
                    format!("{base}.max"),
                    format!("{base}.controls"),
                );
                let nodes = (
                    NodeRef::of(self.get(&min)),
                    NodeRef::of(self.get(&max)),
                    NodeRef::of(self.get(&ids)),
                );
                let min_v = self.number(&min, nodes.0)?;
                let max_v = self.number(&max, nodes.1)?;
                let ids_v = self.ids(&ids, nodes.2)?;
                let slot = t.status_mut(status).severity_mut(severity);
                (slot.min, slot.max, slot.controls) = (min_v, max_v, ids_v);
            }
        }
        t.ignored = self
            .leaves
            .iter()
            .zip(&self.used)
            .filter(|(_, used)| !**used)
            .map(|((k, _), _)| k.clone())
            .collect();
        Ok(t)
    }
}

static EMPTY: Vec<(String, Node)> = Vec::new();

/// A borrow-free copy of what `get` found, so `Doc` can be mutated while resolving it.
#[derive(Clone, Copy)]
enum NodeRef {
    Map,
    Leaf(usize),
}

impl NodeRef {
    fn of(node: Option<&Node>) -> Option<Self> {
        node.map(|n| match n {
            Node::Map(_) => Self::Map,
            Node::Leaf(i) => Self::Leaf(*i),
        })
    }
}

fn untag(value: Yaml) -> Yaml {
    match value {
        Yaml::Tagged(tagged) => untag(tagged.value),
        other => other,
    }
}

/// JavaScript turns every object key into a string.
fn key_string(key: Yaml) -> Result<String, HdfError> {
    match untag(key) {
        Yaml::String(s) => Ok(s),
        Yaml::Number(n) => Ok(crate::verdict::js_number(n.as_f64().unwrap_or(f64::NAN))),
        Yaml::Bool(b) => Ok(b.to_string()),
        Yaml::Null => Ok(String::new()),
        other => Err(HdfError::ThresholdShape {
            problem: format!("a key is {}; keys must be plain text", yaml_kind(&other)),
        }),
    }
}

fn yaml_kind(value: &Yaml) -> &'static str {
    match value {
        Yaml::Null => "empty (null)",
        Yaml::Bool(_) => "a boolean",
        Yaml::Number(_) => "a number",
        Yaml::String(_) => "a string",
        Yaml::Sequence(_) => "a list",
        Yaml::Mapping(_) => "a mapping",
        Yaml::Tagged(_) => "a tagged value",
    }
}
