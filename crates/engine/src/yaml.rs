//! A small YAML reader for profiles and waiver files: parser events become a tree of [`Node`]s
//! that remember their line, so every error (and every control's HDF `source_location`) can name
//! it. Scalars stay text; the typed layers above decide what a scalar means for the field it is
//! in (so `0640` can be octal for a mode and `yes` stays a word), which also sidesteps YAML 1.1
//! surprises.
//!
//! Aliases are refused (an alias bomb expands exponentially), nesting is bounded (the tree is
//! dropped recursively) and only one document is read.

use saphyr_parser::{Event, Parser, ScalarStyle};

/// Deepest nesting of collections accepted; profiles need about six levels.
const MAX_DEPTH: usize = 64;

/// Largest YAML text accepted, in bytes.
pub(crate) const MAX_TEXT: usize = 16 * 1024 * 1024;

/// One YAML value with the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// The value.
    pub(crate) kind: Kind,
    /// 1-based line of the value's first character.
    pub(crate) line: usize,
    /// Set when the value was substituted from an input reference (`${name}`).
    pub(crate) input: Option<String>,
}

/// The three YAML shapes (null is a plain scalar spelled `~`, `null` or nothing).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// A scalar; `plain` is false when it was quoted or a block scalar.
    Scalar {
        /// The text.
        text: String,
        /// Written without quotes.
        plain: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping with text keys, in document order (duplicates refused).
    Map(Vec<Entry>),
}

/// One key of a mapping with its value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    /// The key.
    pub(crate) key: String,
    /// Line of the key.
    pub(crate) line: usize,
    /// The value.
    pub(crate) value: Node,
}

/// A syntax problem, with the line it is on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyntaxError {
    /// 1-based line.
    pub(crate) line: usize,
    /// What is wrong.
    pub(crate) problem: String,
}

impl Node {
    /// A plain scalar.
    pub(crate) fn scalar(text: impl Into<String>, line: usize) -> Self {
        Self {
            kind: Kind::Scalar {
                text: text.into(),
                plain: true,
            },
            line,
            input: None,
        }
    }

    /// True for `~`, `null`, `Null`, `NULL` and an empty plain scalar.
    pub(crate) fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { text, plain: true }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The text of a scalar.
    pub(crate) fn as_scalar(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The entries of a mapping.
    pub(crate) fn as_map(&self) -> Option<&[Entry]> {
        match &self.kind {
            Kind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The items of a sequence.
    pub(crate) fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            Kind::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// What kind of value this is, for error messages.
    pub(crate) fn shape(&self) -> &'static str {
        match &self.kind {
            _ if self.is_null() => "nothing (null)",
            Kind::Scalar { .. } => "a scalar",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

/// A collection being built.
enum Open {
    Seq(usize, Vec<Node>),
    /// Line, entries so far, and the key waiting for its value.
    Map(usize, Vec<Entry>, Option<(String, usize)>),
}

/// Parses one YAML document into a tree. An empty document is a null node on line 1.
pub(crate) fn parse(text: &str) -> Result<Node, SyntaxError> {
    if text.len() > MAX_TEXT {
        return Err(SyntaxError {
            line: 1,
            problem: format!(
                "the file is larger than {MAX_TEXT} bytes; split it or remove what is not needed"
            ),
        });
    }
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| SyntaxError {
            line: e.marker().line().max(1),
            problem: format!("YAML syntax error: {}", e.info()),
        })?;
        let line = span.start.line().max(1);
        let node = match event {
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(SyntaxError {
                        line,
                        problem: "more than one YAML document (`---`); keep one document per file"
                            .into(),
                    });
                }
                continue;
            }
            Event::Alias(_) => {
                return Err(SyntaxError {
                    line,
                    problem: "YAML aliases (`*name`) are not supported; write the value out (or \
                              use an input)"
                        .into(),
                });
            }
            Event::Scalar(text, style, _, _) => Node {
                kind: Kind::Scalar {
                    text: text.into_owned(),
                    plain: style == ScalarStyle::Plain,
                },
                line,
                input: None,
            },
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(SyntaxError {
                        line,
                        problem: format!("nested deeper than {MAX_DEPTH} levels"),
                    });
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Open::Seq(line, Vec::new())
                } else {
                    Open::Map(line, Vec::new(), None)
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Open::Seq(start, items)) => Node {
                    kind: Kind::Seq(items),
                    line: start,
                    input: None,
                },
                Some(Open::Map(start, entries, _)) => Node {
                    kind: Kind::Map(entries),
                    line: start,
                    input: None,
                },
                None => continue,
            },
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => continue,
        };
        match stack.last_mut() {
            None => root = Some(node),
            Some(Open::Seq(_, items)) => items.push(node),
            Some(Open::Map(_, entries, pending)) => match pending.take() {
                Some((key, key_line)) => entries.push(Entry {
                    key,
                    line: key_line,
                    value: node,
                }),
                None => {
                    let Kind::Scalar { text, .. } = node.kind else {
                        return Err(SyntaxError {
                            line: node.line,
                            problem: "a mapping key must be text, not a list or mapping".into(),
                        });
                    };
                    if entries.iter().any(|e| e.key == text) {
                        return Err(SyntaxError {
                            line: node.line,
                            problem: format!("key `{text}` appears twice in this mapping"),
                        });
                    }
                    *pending = Some((text, node.line));
                }
            },
        }
    }
    Ok(root.unwrap_or_else(|| Node::scalar("", 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_shapes_are_kept() {
        let doc = parse("a: 1\nb:\n  - x\n  - 'y'\nc: {d: ~}\n").unwrap();
        let map = doc.as_map().unwrap();
        assert_eq!(
            map.iter().map(|e| (&*e.key, e.line)).collect::<Vec<_>>(),
            [("a", 1), ("b", 2), ("c", 5)]
        );
        let seq = map[1].value.as_seq().unwrap();
        assert_eq!(seq[1].line, 4);
        assert!(matches!(&seq[1].kind, Kind::Scalar { plain: false, .. }));
        assert!(map[2].value.as_map().unwrap()[0].value.is_null());
    }

    #[test]
    fn aliases_duplicates_and_depth_are_refused_with_their_line() {
        let e = parse("a: &x [1]\nb: *x\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.problem.contains("alias"));
        let e = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!((e.line, e.problem.contains("twice")), (3, true));
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert!(parse(&deep).unwrap_err().problem.contains("deeper"));
        let e = parse("a: [1\n").unwrap_err();
        assert!(e.problem.contains("syntax"), "{e:?}");
        assert!(parse("---\na: 1\n---\nb: 2\n").is_err());
    }

    #[test]
    fn an_empty_document_is_null() {
        assert!(parse("").unwrap().is_null());
        assert!(parse("# only a comment\n").unwrap().is_null());
    }
}
