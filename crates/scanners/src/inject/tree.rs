//! A YAML stream as a tree of nodes with byte positions, so that an edit can be spliced into the
//! user's text at the right place instead of re-serializing (and so rewriting) the document.

use saphyr_parser::{Event, Parser, Span};

/// Deeper nesting than any manifest has; a bound keeps a hostile input from exhausting the
/// stack of the recursive tree builder.
const MAX_DEPTH: usize = 256;

/// One node and where it is in the text (byte offsets).
#[derive(Debug)]
pub(super) enum Node {
    /// A scalar; `start..end` is its text (with quotes, when quoted).
    Scalar {
        value: String,
        start: usize,
        end: usize,
    },
    /// A sequence or mapping. `start` is where its first item (block) or bracket (flow) is;
    /// `end` is where the token after it starts (block) or its closing bracket (flow), and
    /// `close` is just past that bracket.
    Collection {
        flow: bool,
        start: usize,
        end: usize,
        close: usize,
        kind: CollectionKind,
    },
    /// An alias (`*name`); never edited through.
    Alias { start: usize },
}

/// The items of a collection node.
#[derive(Debug)]
pub(super) enum CollectionKind {
    /// Sequence items.
    Seq(Vec<Node>),
    /// Mapping entries, keys first.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// Where the node starts.
    pub(super) fn start(&self) -> usize {
        match self {
            Node::Scalar { start, .. } | Node::Collection { start, .. } | Node::Alias { start } => {
                *start
            }
        }
    }

    /// The value of `key`, when this is a mapping that has it.
    pub(super) fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The key and value nodes of `key`, when this is a mapping that has it.
    pub(super) fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        let Node::Collection {
            kind: CollectionKind::Map(entries),
            ..
        } = self
        else {
            return None;
        };
        entries
            .iter()
            .find(|(k, _)| matches!(k, Node::Scalar { value, .. } if value == key))
            .map(|(k, v)| (k, v))
    }
}

/// One document: its tree and the byte range of its text (from its first token or `---` to
/// where the next document or the end marker starts).
#[derive(Debug)]
pub(super) struct Document {
    pub(super) root: Node,
    pub(super) start: usize,
    pub(super) end: usize,
}

/// Char index (what the parser reports) to byte offset.
struct Offsets {
    bytes: Vec<usize>,
    len: usize,
}

impl Offsets {
    fn new(text: &str) -> Self {
        Self {
            bytes: text.char_indices().map(|(b, _)| b).collect(),
            len: text.len(),
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        self.bytes.get(char_index).copied().unwrap_or(self.len)
    }
}

/// Parses every document of `text`. The error is the parser's one-line message with position.
pub(super) fn parse_stream(text: &str) -> Result<Vec<Document>, String> {
    let offsets = Offsets::new(text);
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    loop {
        let (event, span) = next(&mut parser)?;
        match event {
            Event::StreamStart => {}
            Event::StreamEnd => return Ok(docs),
            Event::DocumentStart(_) => {
                let start = offsets.byte(span.start.index());
                let (event, span) = next(&mut parser)?;
                let root = build(event, span, &mut parser, &offsets, 0)?;
                let (event, span) = next(&mut parser)?;
                if !matches!(event, Event::DocumentEnd) {
                    return Err(format!(
                        "unexpected {event:?} at line {}",
                        span.start.line()
                    ));
                }
                docs.push(Document {
                    root,
                    start,
                    end: offsets.byte(span.start.index()),
                });
            }
            other => {
                return Err(format!(
                    "unexpected {other:?} at line {}",
                    span.start.line()
                ));
            }
        }
    }
}

fn next<'a>(
    parser: &mut Parser<'a, saphyr_parser::StrInput<'a>>,
) -> Result<(Event<'a>, Span), String> {
    match parser.next_event() {
        Some(Ok(ev)) => Ok(ev),
        Some(Err(e)) => Err(e.to_string().replace('\n', " ")),
        None => Err("unexpected end of input".to_string()),
    }
}

fn build<'a>(
    event: Event<'a>,
    span: Span,
    parser: &mut Parser<'a, saphyr_parser::StrInput<'a>>,
    offsets: &Offsets,
    depth: usize,
) -> Result<Node, String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "nesting deeper than {MAX_DEPTH} levels at line {}",
            span.start.line()
        ));
    }
    let start = offsets.byte(span.start.index());
    // A block collection's start event is empty; a flow one covers its bracket.
    let flow = span.end.index() > span.start.index();
    match event {
        Event::Scalar(value, ..) => Ok(Node::Scalar {
            value: value.into_owned(),
            start,
            end: offsets.byte(span.end.index()),
        }),
        Event::Alias(_) => Ok(Node::Alias { start }),
        Event::SequenceStart(..) => {
            let mut items = Vec::new();
            loop {
                let (event, span) = next(parser)?;
                if matches!(event, Event::SequenceEnd) {
                    return Ok(Node::Collection {
                        flow,
                        start,
                        end: offsets.byte(span.start.index()),
                        close: offsets.byte(span.end.index()),
                        kind: CollectionKind::Seq(items),
                    });
                }
                items.push(build(event, span, parser, offsets, depth + 1)?);
            }
        }
        Event::MappingStart(..) => {
            let mut entries = Vec::new();
            loop {
                let (event, span) = next(parser)?;
                if matches!(event, Event::MappingEnd) {
                    return Ok(Node::Collection {
                        flow,
                        start,
                        end: offsets.byte(span.start.index()),
                        close: offsets.byte(span.end.index()),
                        kind: CollectionKind::Map(entries),
                    });
                }
                let key = build(event, span, parser, offsets, depth + 1)?;
                let (event, span) = next(parser)?;
                let value = build(event, span, parser, offsets, depth + 1)?;
                entries.push((key, value));
            }
        }
        other => Err(format!(
            "unexpected {other:?} at line {}",
            span.start.line()
        )),
    }
}
