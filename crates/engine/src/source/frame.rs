//! The parser of a [`ShellScript`](super::ShellScript)'s framed stdout (the format is documented
//! in `script.rs`). Strict: a frame that does not look exactly as the script writes it answers
//! [`FactError::Io`] rather than a guess.

use std::collections::HashMap;

use super::{join_rel, meta_from_raw, walk_order};
use crate::integrity::{self, MD5SUMS_MAX};
use crate::{
    Bound, Content, DirEntry, FactError, FactPlan, FactRequest, FactValue, Facts, FileKind,
    FileMeta, IntegrityReport, IntegritySpec, NamedContent, TargetPath, WalkLimits, WalkOutcome,
    WalkQuery,
};

/// One request's part of the output.
#[derive(Debug, Default)]
struct Frame {
    /// The word after `@E i`.
    status: Option<String>,
    /// `@M` (Stat).
    meta: Option<String>,
    /// `@H` (Sha256, Md5).
    hash: Option<String>,
    /// `@D` (Walk).
    deeper: bool,
    /// The hex payload, decoded.
    payload: Vec<u8>,
    /// The sub-frames (PackageIntegrity), in order; the last one is open while its status is
    /// `None`.
    subs: Vec<Sub>,
    /// What was wrong with the frame, if anything.
    malformed: Option<String>,
}

/// One sub-frame (`@S kind` … `@F status`) of a PackageIntegrity frame.
#[derive(Debug)]
struct Sub {
    /// `L` (List), `N` (the names of the lists read), `R` (Read) or `5` (Md5 records).
    kind: u8,
    /// The hex payload, decoded.
    payload: Vec<u8>,
    /// The word after `@F`.
    status: Option<String>,
}

impl Frame {
    /// The sub-frame being read, if one is open.
    fn open_sub(&mut self) -> Option<&mut Sub> {
        self.subs.last_mut().filter(|s| s.status.is_none())
    }
}

pub(super) fn parse(plan: &FactPlan, stdout: &[u8]) -> Facts {
    let mut frames = frames(stdout);
    let mut facts = Facts::default();
    // ManagedIntegrity answers use the plan's own reads (the package database): they come last.
    let mut managed = Vec::new();
    for (i, request) in plan.requests().enumerate() {
        let answer = match frames.remove(&i) {
            None => Err(FactError::Io(
                "the fact script gave no answer (it did not run to the end)".into(),
            )),
            Some(frame) => match request {
                FactRequest::ManagedIntegrity(spec) => {
                    managed.push((request, spec, frame));
                    continue;
                }
                _ => answer(request, frame),
            },
        };
        facts.insert(request.clone(), answer);
    }
    let managed: Vec<_> = managed
        .into_iter()
        .map(|(request, spec, frame)| {
            let answer = check(request, &frame, &["W"])
                .and_then(|()| super::manifest::report(spec, frame_walks(frame)?, &facts))
                .map(FactValue::Integrity);
            (request, answer)
        })
        .collect();
    for (request, answer) in managed {
        facts.insert(request.clone(), answer);
    }
    facts
}

fn frames(stdout: &[u8]) -> HashMap<usize, Frame> {
    let mut done = HashMap::new();
    let mut open: Option<(usize, Frame)> = None;
    for line in stdout.split(|&b| b == b'\n') {
        if let Some(rest) = line.strip_prefix(b"@B ") {
            open = text(rest).parse().ok().map(|i| (i, Frame::default()));
            continue;
        }
        let Some((index, frame)) = open.as_mut() else {
            continue;
        };
        if let Some(rest) = line.strip_prefix(b"@E ") {
            let rest = text(rest);
            if frame.open_sub().is_some() {
                frame.malformed = Some("a sub-frame without its end".into());
            }
            match rest.split_once(' ') {
                Some((i, status)) if i.parse() == Ok(*index) => {
                    frame.status = Some(status.to_string());
                    if let Some((i, frame)) = open.take() {
                        done.insert(i, frame);
                    }
                }
                _ => frame.malformed = Some(format!("end line `@E {rest}`")),
            }
        } else if let Some(rest) = line.strip_prefix(b"@S ") {
            match rest {
                [kind @ (b'L' | b'N' | b'R' | b'5' | b'W')] if frame.open_sub().is_none() => {
                    frame.subs.push(Sub {
                        kind: *kind,
                        payload: Vec::new(),
                        status: None,
                    });
                }
                _ => frame.malformed = Some(format!("sub-frame line `@S {}`", text(rest))),
            }
        } else if let Some(rest) = line.strip_prefix(b"@F ") {
            match frame.open_sub() {
                Some(sub) if !rest.is_empty() => sub.status = Some(text(rest)),
                _ => frame.malformed = Some(format!("sub-frame end `@F {}`", text(rest))),
            }
        } else if frame.open_sub().is_some() && line.first() == Some(&b'@') {
            frame.malformed = Some(format!("line `{}` in a sub-frame", text(line)));
        } else if let Some(rest) = line.strip_prefix(b"@M ") {
            frame.meta = Some(text(rest));
        } else if let Some(rest) = line.strip_prefix(b"@H ") {
            frame.hash = Some(text(rest));
        } else if let Some(rest) = line.strip_prefix(b"@D ") {
            frame.deeper = rest == b"1";
        } else if line.first() == Some(&b'@') {
            frame.malformed = Some(format!("line `{}`", text(line)));
        } else {
            for token in line
                .split(u8::is_ascii_whitespace)
                .filter(|t| !t.is_empty())
            {
                match hex_byte(token) {
                    Some(b) => match frame.open_sub() {
                        Some(sub) => sub.payload.push(b),
                        None => frame.payload.push(b),
                    },
                    None => frame.malformed = Some(format!("payload token `{}`", text(token))),
                }
            }
        }
    }
    done
}

pub(super) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One payload byte: a token of exactly two hex digits (as `od -tx1` prints them).
fn hex_byte(token: &[u8]) -> Option<u8> {
    let mut byte = [0u8; 1];
    hex::decode_to_slice(token, &mut byte).ok()?;
    Some(byte[0])
}

/// A digest of exactly `N` bytes written as `2 * N` hex digits.
fn hex_array<const N: usize>(digits: Option<&str>) -> Result<[u8; N], FactError> {
    let bad = || FactError::Io(format!("malformed digest from the fact script: {digits:?}"));
    let mut out = [0u8; N];
    hex::decode_to_slice(digits.ok_or_else(bad)?, &mut out).map_err(|_| bad())?;
    Ok(out)
}

/// A digest of exactly `len` bytes written as `2 * len` hex digits.
pub(super) fn hex_vec(digits: Option<&str>, len: usize) -> Result<Vec<u8>, FactError> {
    let bad = || FactError::Io(format!("malformed digest from the fact script: {digits:?}"));
    let d = hex::decode(digits.ok_or_else(bad)?).map_err(|_| bad())?;
    if d.len() == len { Ok(d) } else { Err(bad()) }
}

/// The size limit a `TooLarge` status of `request` refers to.
fn limit_of(request: &FactRequest) -> u64 {
    match request {
        FactRequest::Sha256 { max_bytes, .. }
        | FactRequest::Md5 { max_bytes, .. }
        | FactRequest::Hash { max_bytes, .. } => *max_bytes,
        FactRequest::Walk {
            query: WalkQuery::Contains { max_file_size, .. },
            ..
        } => *max_file_size,
        _ => 0,
    }
}

/// The error a status code of the script stands for.
pub(super) fn status_error(status: &str, request: &FactRequest) -> FactError {
    let special = |kind| FactError::Special(kind);
    match status {
        "NotFound" => FactError::NotFound,
        "PermissionDenied" => FactError::PermissionDenied,
        "Escape" => FactError::Escape,
        "Loop" => FactError::Loop,
        "NoProcess" => FactError::NoProcess,
        "TooLarge" => FactError::TooLarge {
            limit: limit_of(request),
        },
        "Special:Fifo" => special(FileKind::Fifo),
        "Special:Socket" => special(FileKind::Socket),
        "Special:CharDevice" => special(FileKind::CharDevice),
        "Special:BlockDevice" => special(FileKind::BlockDevice),
        _ => {
            if let Some(kind) = status.strip_prefix("WrongKind:") {
                FactError::WrongKind {
                    expected: kind.replace('-', " "),
                }
            } else if let Some(what) = status.strip_prefix("Io:") {
                FactError::Io(what.replace('-', " "))
            } else {
                FactError::Io(format!(
                    "unexpected status from the fact script: `{status}`"
                ))
            }
        }
    }
}

/// A frame's status and shape: well formed, `ok`, and sub-frames only of the kinds given.
fn check(request: &FactRequest, frame: &Frame, kinds: &[&str]) -> Result<(), FactError> {
    if let Some(what) = &frame.malformed {
        return Err(FactError::Io(format!(
            "malformed fact script output: {what}"
        )));
    }
    match frame.status.as_deref() {
        Some("ok") => {}
        Some(status) => return Err(status_error(status, request)),
        None => return Err(FactError::Io("the fact script gave no status".into())),
    }
    let bad = frame
        .subs
        .iter()
        .any(|s| !kinds.iter().any(|k| k.as_bytes() == [s.kind]));
    if bad || !frame.payload.is_empty() || frame.meta.is_some() || frame.hash.is_some() {
        return Err(FactError::Io(
            "malformed fact script output: data a ManagedIntegrity frame does not have".into(),
        ));
    }
    Ok(())
}

/// The `W` sub-frames of a ManagedIntegrity frame: each one's status and records.
fn frame_walks(frame: Frame) -> Result<Vec<(String, Vec<u8>)>, FactError> {
    Ok(frame
        .subs
        .into_iter()
        .map(|s| (s.status.unwrap_or_default(), s.payload))
        .collect())
}

fn answer(request: &FactRequest, frame: Frame) -> Result<FactValue, FactError> {
    if let Some(what) = &frame.malformed {
        return Err(FactError::Io(format!(
            "malformed fact script output: {what}"
        )));
    }
    match frame.status.as_deref() {
        Some("ok") => {}
        Some(status) => return Err(status_error(status, request)),
        None => return Err(FactError::Io("the fact script gave no status".into())),
    }
    if !frame.subs.is_empty()
        && !matches!(
            request,
            FactRequest::PackageIntegrity(_) | FactRequest::ReadDir { .. }
        )
    {
        return Err(FactError::Io(
            "malformed fact script output: sub-frames in a frame that has none".into(),
        ));
    }
    match request {
        FactRequest::Stat(_) => stat(frame).map(FactValue::Meta),
        FactRequest::Read { max_bytes, .. } | FactRequest::Proc { max_bytes, .. } => {
            Ok(FactValue::Content(content(frame.payload, *max_bytes)))
        }
        FactRequest::Sha256 { .. } => hex_array(frame.hash.as_deref()).map(FactValue::Digest),
        FactRequest::Md5 { .. } => hex_array(frame.hash.as_deref()).map(FactValue::Md5),
        FactRequest::Hash { algo, .. } => {
            hex_vec(frame.hash.as_deref(), algo.digest_len()).map(FactValue::Hash)
        }
        // Answered in `parse`, after the reads it uses.
        FactRequest::ManagedIntegrity(_) => Err(FactError::Io("not gathered".into())),
        FactRequest::List { .. } => list(&frame.payload),
        FactRequest::Walk {
            root,
            query,
            limits,
        } => walk(&frame, root, query, limits).map(FactValue::Walk),
        FactRequest::PackageIntegrity(spec) => {
            integrity_report(spec, frame).map(FactValue::Integrity)
        }
        FactRequest::ReadDir { max_bytes, .. } => read_dir(request, frame, *max_bytes),
    }
}

/// A ReadDir frame: an `N` sub-frame naming the files read (status `Entries` when there were
/// more), then one `R` sub-frame per name, in order; anything else is malformed.
fn read_dir(request: &FactRequest, frame: Frame, max_bytes: u64) -> Result<FactValue, FactError> {
    let bad = |what: &str| FactError::Io(format!("malformed fact script output: {what}"));
    if !frame.payload.is_empty() || frame.meta.is_some() || frame.hash.is_some() || frame.deeper {
        return Err(bad("data outside the sub-frames"));
    }
    let mut subs = frame.subs.into_iter();
    let names = subs
        .next()
        .filter(|s| s.kind == b'N')
        .ok_or_else(|| bad("the file names are missing"))?;
    let bound = match names.status.as_deref() {
        Some("ok") => None,
        Some("Entries") => Some(Bound::Entries),
        _ => return Err(bad("the status of the file names")),
    };
    let names: Vec<Vec<u8>> = match names.payload.strip_suffix(b"/") {
        None if names.payload.is_empty() => Vec::new(),
        None => return Err(bad("file names")),
        Some(listed) => listed.split(|&b| b == b'/').map(<[u8]>::to_vec).collect(),
    };
    if names.iter().any(Vec::is_empty) {
        return Err(bad("an empty file name"));
    }
    let mut files = Vec::with_capacity(names.len());
    for name in names {
        let sub = subs
            .next()
            .filter(|s| s.kind == b'R')
            .ok_or_else(|| bad("a file read is missing"))?;
        let content = match sub.status.as_deref() {
            Some("ok") => Ok(content(sub.payload, max_bytes)),
            Some(status) => Err(status_error(status, request)),
            None => return Err(bad("a file read without its end")),
        };
        files.push(NamedContent { name, content });
    }
    if subs.next().is_some() {
        return Err(bad("more file reads than names"));
    }
    Ok(FactValue::Files(files, bound))
}

/// The first `max_bytes` of `bytes` (the script reads one more to tell whether there was more).
fn content(mut bytes: Vec<u8>, max_bytes: u64) -> Content {
    let truncated = bytes.len() as u64 > max_bytes;
    if truncated {
        bytes.truncate(usize::try_from(max_bytes).unwrap_or(usize::MAX));
    }
    Content { bytes, truncated }
}

/// A PackageIntegrity frame: its sub-answers keyed by the primitive requests they answer, and
/// [`integrity::verify`] asking them. A request without a sub-answer (the script selected
/// differently, or stopped) is "not gathered"; a damaged sub-frame makes the whole answer an
/// error.
fn integrity_report(spec: &IntegritySpec, frame: Frame) -> Result<IntegrityReport, FactError> {
    let bad = |what: &str| {
        FactError::Io(format!(
            "malformed package integrity output from the fact script: {what}"
        ))
    };
    if !frame.payload.is_empty() || frame.meta.is_some() || frame.hash.is_some() || frame.deeper {
        return Err(bad("data outside the sub-frames"));
    }
    let mut answers: HashMap<FactRequest, Result<FactValue, FactError>> = HashMap::new();
    // The names of the lists the `R` sub-frames read, in their order.
    let mut names: Option<std::vec::IntoIter<Vec<u8>>> = None;
    for sub in frame.subs {
        let status = sub.status.as_deref().unwrap_or_default();
        match sub.kind {
            b'L' => {
                let request = integrity::listing(spec);
                let answer = match status {
                    "ok" => list(&sub.payload),
                    _ => Err(status_error(status, &request)),
                };
                answers.insert(request, answer);
            }
            b'N' => {
                let listed = match sub.payload.strip_suffix(b"/") {
                    _ if names.is_some() || status != "ok" => return Err(bad("list names")),
                    None if sub.payload.is_empty() => Vec::new(),
                    None => return Err(bad("list names")),
                    Some(listed) => listed.split(|&b| b == b'/').map(<[u8]>::to_vec).collect(),
                };
                if listed.iter().any(Vec::is_empty) {
                    return Err(bad("list names"));
                }
                names = Some(listed.into_iter());
            }
            b'R' => {
                let name = names
                    .as_mut()
                    .and_then(Iterator::next)
                    .ok_or_else(|| bad("a list read without its name"))?;
                let path = spec.lists.join(&name).ok_or_else(|| bad("list name"))?;
                let request = FactRequest::Read {
                    path,
                    max_bytes: MD5SUMS_MAX,
                };
                let answer = match status {
                    "ok" => Ok(FactValue::Content(content(sub.payload, MD5SUMS_MAX))),
                    _ => Err(status_error(status, &request)),
                };
                answers.insert(request, answer);
            }
            _ => {
                if status != "ok" {
                    return Err(bad("digest records"));
                }
                let Some(records) = sub.payload.strip_suffix(b"\n") else {
                    return Err(bad("digest records"));
                };
                for record in records.split(|&b| b == b'\n') {
                    let at = record.iter().position(|&b| b == b' ');
                    let (code, path) = match at {
                        Some(at) => (&record[..at], &record[at + 1..]),
                        None => return Err(bad("digest record")),
                    };
                    let path = TargetPath::new(path).ok_or_else(|| bad("digest path"))?;
                    let request = integrity::digest_request(path);
                    let code = text(code);
                    let answer = if code.len() == 32 && code.bytes().all(|b| b.is_ascii_hexdigit())
                    {
                        hex_array(Some(&code)).map(FactValue::Md5)
                    } else {
                        Err(status_error(&code, &request))
                    };
                    answers.insert(request, answer);
                }
            }
        }
    }
    let mut ask = |requests: &[FactRequest]| -> Vec<Result<FactValue, FactError>> {
        requests
            .iter()
            .map(|r| {
                answers
                    .get(r)
                    .cloned()
                    .unwrap_or_else(|| Err(FactError::Io("not gathered".into())))
            })
            .collect()
    };
    integrity::verify(spec, &mut ask)
}

/// `<mode hex>:<uid>:<gid>:<size>` as `stat -c %f:%u:%g:%s` prints it.
fn meta(fields: &str) -> Option<FileMeta> {
    let mut it = fields.split(':');
    let mode = u32::from_str_radix(it.next()?, 16).ok()?;
    let uid = it.next()?.parse().ok()?;
    let gid = it.next()?.parse().ok()?;
    let size = it.next()?.parse().ok()?;
    if it.next().is_some() {
        return None;
    }
    meta_from_raw(mode, uid, gid, size)
}

fn stat(frame: Frame) -> Result<FileMeta, FactError> {
    let fields = frame.meta.unwrap_or_default();
    let mut meta =
        meta(&fields).ok_or_else(|| FactError::Io(format!("malformed stat output `{fields}`")))?;
    if meta.kind == FileKind::Symlink {
        let mut target = frame.payload;
        // readlink ends its output with one newline; the link text itself may end with more.
        if target.pop() != Some(b'\n') {
            return Err(FactError::Io("readlink failed".into()));
        }
        meta.link_target = Some(target);
    }
    Ok(meta)
}

fn kind_of(code: u8) -> Option<FileKind> {
    Some(match code {
        b'f' => FileKind::File,
        b'd' => FileKind::Directory,
        b'l' => FileKind::Symlink,
        b'p' => FileKind::Fifo,
        b's' => FileKind::Socket,
        b'c' => FileKind::CharDevice,
        b'b' => FileKind::BlockDevice,
        _ => return None,
    })
}

/// Records `<kind>/<name>/`, and `T/` when the listing was cut.
fn list(payload: &[u8]) -> Result<FactValue, FactError> {
    let bad = || FactError::Io("malformed directory listing from the fact script".into());
    let mut fields = payload.split(|&b| b == b'/');
    let mut entries = Vec::new();
    let mut bound = None;
    while let Some(code) = fields.next() {
        match code {
            // The empty field after the last record's final `/`.
            [] => break,
            b"T" => {
                bound = Some(Bound::Entries);
                break;
            }
            [c] => {
                let kind = kind_of(*c).ok_or_else(bad)?;
                let name = fields.next().filter(|n| !n.is_empty()).ok_or_else(bad)?;
                entries.push(DirEntry {
                    name: name.to_vec(),
                    kind,
                });
            }
            _ => return Err(bad()),
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(FactValue::Entries(entries, bound))
}

fn walk(
    frame: &Frame,
    root: &TargetPath,
    query: &WalkQuery,
    limits: &WalkLimits,
) -> Result<WalkOutcome, FactError> {
    let bad = |what: &str| {
        FactError::Io(format!(
            "malformed walk record from the fact script: {what}"
        ))
    };
    let path_of = |rel: &[u8]| join_rel(root, rel).ok_or_else(|| bad("path"));
    let mut out = WalkOutcome {
        matches: Vec::new(),
        examined: 0,
        truncated: None,
        skipped: Vec::new(),
    };
    let mut timed_out = false;
    let mut deeper = frame.deeper;
    // Records are newline-terminated here; newlines inside them travel as NULs (`tr` swapped them).
    for record in frame.payload.split(|&b| b == b'\n') {
        let record: Vec<u8> = record
            .iter()
            .map(|&b| if b == 0 { b'\n' } else { b })
            .collect();
        let Some((&tag, rest)) = record.split_first() else {
            continue;
        };
        match tag {
            b'.' | b'M' => {
                if out.examined >= limits.max_entries {
                    out.truncated = Some(Bound::Entries);
                    break;
                }
                out.examined += 1;
                if tag == b'M' {
                    let mut parts = rest.splitn(5, |&b| b == b':');
                    let fields: Vec<&[u8]> = parts.by_ref().take(4).collect();
                    let rel = parts.next().ok_or_else(|| bad("match"))?;
                    let meta =
                        meta(&text(&fields.join(&b':'))).ok_or_else(|| bad("match metadata"))?;
                    out.matches.push((path_of(rel)?, meta));
                }
            }
            b'L' => {
                let (_, meta) = out.matches.last_mut().ok_or_else(|| bad("link"))?;
                meta.link_target = Some(rest.to_vec());
            }
            b'S' => {
                let (code, rel) = match rest.iter().position(|&b| b == b':') {
                    Some(at) => (&rest[..at], &rest[at + 1..]),
                    None => return Err(bad("skip")),
                };
                let request = FactRequest::Walk {
                    root: root.clone(),
                    query: query.clone(),
                    limits: *limits,
                };
                out.skipped
                    .push((path_of(rel)?, status_error(&text(code), &request)));
            }
            b'T' => timed_out = true,
            // Entries lie below max_depth: said within the entries by the walk `sh` does
            // itself when the target has no find (`@D` then says 0).
            b'D' => deeper = true,
            _ => return Err(bad("tag")),
        }
    }
    if out.truncated.is_none() {
        out.truncated = if timed_out {
            Some(Bound::Time)
        } else if deeper {
            Some(Bound::Depth)
        } else {
            None
        };
    }
    // `find` walks in directory order; the facts are reported in the local walk's order.
    out.matches.sort_by(|a, b| walk_order(&a.0, &b.0));
    out.skipped.sort_by(|a, b| walk_order(&a.0, &b.0));
    Ok(out)
}
