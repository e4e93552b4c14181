//! Where a profile value is being read: the file (for error messages) and the inputs that
//! `${name}` references resolve to.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::EngineError;
use crate::yaml::{Kind, Node};

/// The context of reading one profile.
pub(crate) struct Scope<'a> {
    file: &'a str,
    inputs: &'a BTreeMap<String, Node>,
}

impl<'a> Scope<'a> {
    /// A scope for `file` with input values `inputs`.
    pub(crate) fn new(file: &'a str, inputs: &'a BTreeMap<String, Node>) -> Self {
        Self { file, inputs }
    }

    /// A profile error at `line` and `field`.
    pub(crate) fn error(&self, line: usize, field: &str, problem: String) -> EngineError {
        EngineError::Profile {
            file: self.file.to_owned(),
            line,
            field: field.to_owned(),
            problem,
        }
    }

    /// The node itself, or, for a scalar written exactly `${name}`, the value of input `name`
    /// (keeping the reference's line for errors); `at` is the field, for the error.
    pub(crate) fn resolve<'n>(
        &self,
        node: &'n Node,
        at: &str,
    ) -> Result<Cow<'n, Node>, EngineError> {
        let Some(name) = input_reference(node) else {
            return Ok(Cow::Borrowed(node));
        };
        match self.inputs.get(name) {
            Some(value) => {
                let mut v = value.clone();
                relocate(&mut v, node.line, name);
                Ok(Cow::Owned(v))
            }
            None => Err(self.error(
                node.line,
                at,
                format!(
                    "unknown input `{name}`; declare it under `inputs:` or fix the name (declared: {})",
                    if self.inputs.is_empty() {
                        "none".to_owned()
                    } else {
                        self.inputs.keys().cloned().collect::<Vec<_>>().join(", ")
                    }
                ),
            )),
        }
    }
}

/// `name` when the node is a scalar spelled exactly `${name}` (and not itself an input's value:
/// values are substituted once, never re-read as references).
pub(crate) fn input_reference(node: &Node) -> Option<&str> {
    if node.input.is_some() {
        return None;
    }
    node.as_scalar()?
        .trim()
        .strip_prefix("${")?
        .strip_suffix('}')
        .filter(|n| !n.is_empty())
}

/// Marks a substituted value and gives it the line of the reference, so errors point at the use.
fn relocate(node: &mut Node, line: usize, name: &str) {
    node.line = line;
    node.input = Some(name.to_owned());
    if let Kind::Seq(items) = &mut node.kind {
        for item in items {
            relocate(item, line, name);
        }
    }
}
