//! Facts on a container log: the frame the agent writes (distroless and sidecar workflows) and
//! keyhole reads back with `pods/log`. Facts, never verdicts, cross the cluster boundary.
//!
//! ```text
//! KEYHOLE-FACTS-BEGIN v1 <unix seconds gathered> <sha256 hex of the payload line>
//! <payload: one line of JSON: {"answers": [[request, answer], …], "elapsed_ms": N}>
//! KEYHOLE-FACTS-END
//! ```
//!
//! A log holds other lines too (the kubelet may interleave them) and, for a sidecar, many
//! frames: [`read_facts_frames`] returns every complete frame whose checksum matches, and says
//! how many were damaged (truncated, corrupted), so a caller never evaluates a partial answer.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::{FactError, FactRequest, FactValue, Facts};

/// First word of a frame's first line.
pub const FACTS_BEGIN: &str = "KEYHOLE-FACTS-BEGIN";
/// A frame's last line.
pub const FACTS_END: &str = "KEYHOLE-FACTS-END";
/// The frame format version.
const VERSION: &str = "v1";

#[derive(Serialize, Deserialize)]
struct Payload {
    answers: Vec<(FactRequest, Result<FactValue, FactError>)>,
    elapsed_ms: u64,
}

/// One complete, checksummed frame read from a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramedFacts {
    /// When the facts were gathered (the agent's clock).
    pub gathered_at: Timestamp,
    /// The facts.
    pub facts: Facts,
}

/// What a log held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFrames {
    /// Every complete frame whose checksum matched, in log order.
    pub frames: Vec<FramedFacts>,
    /// Frames that began but were truncated, corrupted or malformed.
    pub damaged: usize,
}

impl LogFrames {
    /// The frame gathered last, if any.
    pub fn newest(&self) -> Option<&FramedFacts> {
        self.frames.iter().max_by_key(|f| f.gathered_at)
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `facts` gathered at `at` as one frame (three lines, each ending in `\n`).
pub fn encode_facts_frame(facts: &Facts, at: Timestamp) -> String {
    let payload = Payload {
        answers: facts.iter().map(|(r, a)| (r.clone(), a.clone())).collect(),
        elapsed_ms: u64::try_from(facts.elapsed.as_millis()).unwrap_or(u64::MAX),
    };
    // Facts hold only strings, numbers, byte vectors and enums: serializing cannot fail.
    let json = serde_json::to_string(&payload).expect("facts serialize to JSON");
    format!(
        "{FACTS_BEGIN} {VERSION} {} {}\n{json}\n{FACTS_END}\n",
        at.as_second(),
        sha256_hex(json.as_bytes())
    )
}

/// Every frame in `log` (a container's log text).
pub fn read_facts_frames(log: &str) -> LogFrames {
    let mut out = LogFrames::default();
    let mut lines = log.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(header) = line.strip_prefix(FACTS_BEGIN) else {
            continue;
        };
        let parsed = (|| {
            let mut words = header.split_whitespace();
            if words.next() != Some(VERSION) {
                return None;
            }
            let at: i64 = words.next()?.parse().ok()?;
            let digest = words.next()?.to_string();
            // The payload and the end line must follow directly; a new BEGIN means the frame
            // before was cut off.
            let payload = lines.next_if(|l| !l.starts_with(FACTS_BEGIN))?;
            let end = lines.next_if(|l| !l.starts_with(FACTS_BEGIN))?;
            if end != FACTS_END || sha256_hex(payload.as_bytes()) != digest {
                return None;
            }
            let p: Payload = serde_json::from_str(payload).ok()?;
            let mut facts = Facts::default();
            for (r, a) in p.answers {
                facts.insert(r, a);
            }
            facts.elapsed = std::time::Duration::from_millis(p.elapsed_ms);
            Some(FramedFacts {
                gathered_at: Timestamp::from_second(at).ok()?,
                facts,
            })
        })();
        match parsed {
            Some(f) => out.frames.push(f),
            None => out.damaged += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Content, TargetPath};

    fn sample() -> Facts {
        let mut f = Facts::default();
        let p = TargetPath::new(b"/etc/\xffodd".to_vec()).unwrap();
        f.insert(
            FactRequest::Read {
                path: p.clone(),
                max_bytes: 10,
            },
            Ok(FactValue::Content(Content {
                bytes: vec![0, 1, 2, 255],
                truncated: true,
            })),
        );
        f.insert(FactRequest::Stat(p), Err(FactError::PermissionDenied));
        f
    }

    #[test]
    fn a_frame_round_trips_among_other_log_lines() {
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        let log = format!("noise\n{}more noise\n", encode_facts_frame(&sample(), at));
        let read = read_facts_frames(&log);
        assert_eq!(read.damaged, 0);
        assert_eq!(read.frames.len(), 1);
        assert_eq!(read.frames[0].gathered_at, at);
        assert_eq!(read.frames[0].facts, sample());
    }

    #[test]
    fn truncated_or_corrupted_frames_are_counted_never_returned() {
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        let frame = encode_facts_frame(&sample(), at);
        let truncated: String = frame.lines().take(2).map(|l| format!("{l}\n")).collect();
        let corrupted = frame.replacen("PermissionDenied", "NotFound", 1);
        assert_ne!(corrupted, frame);
        for bad in [truncated.clone(), corrupted] {
            let read = read_facts_frames(&bad);
            assert!(read.frames.is_empty(), "{bad}");
            assert_eq!(read.damaged, 1);
        }
        // A cut-off frame followed by a complete one: the complete one survives.
        let later = Timestamp::from_second(1_800_000_060).unwrap();
        let log = format!("{truncated}{}", encode_facts_frame(&sample(), later));
        let read = read_facts_frames(&log);
        assert_eq!((read.frames.len(), read.damaged), (1, 1));
        assert_eq!(read.newest().unwrap().gathered_at, later);
    }
}
