//! SQLite's write-ahead log, applied to a copy of the database image: what SQLite itself would
//! read when the log holds committed transactions that were never checkpointed (rpm killed, an
//! image layer committed while rpm ran, or a file crafted to hide packages from a reader that
//! ignores the log).
//!
//! Only frames that SQLite would trust are applied: frames whose salts match the log's header
//! and whose running checksums hold, up to the last frame that commits a transaction. Every
//! page number and size is checked against the limits before anything is allocated.

use crate::Error;

/// The log header's size and a frame header's.
const WAL_HEADER: usize = 32;
const FRAME_HEADER: usize = 24;

fn bad<T>(reason: impl Into<String>) -> Result<T, Error> {
    Err(Error::NotADatabase(format!(
        "its write-ahead log cannot be applied: {}",
        reason.into()
    )))
}

/// SQLite's running checksum over `data` (a multiple of 8 bytes), from `(s0, s1)`.
fn checksum(big: bool, data: &[u8], (mut s0, mut s1): (u32, u32)) -> (u32, u32) {
    let word = |c: &[u8]| {
        let b = [c[0], c[1], c[2], c[3]];
        if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    for pair in data.chunks_exact(8) {
        s0 = s0.wrapping_add(word(&pair[..4])).wrapping_add(s1);
        s1 = s1.wrapping_add(word(&pair[4..])).wrapping_add(s0);
    }
    (s0, s1)
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The database image `db` with the committed frames of `wal` applied; `db` itself when the log
/// holds no committed frame (an empty or reset log). At most `max` bytes are produced.
pub(crate) fn apply(db: &[u8], wal: &[u8], max: u64) -> Result<Vec<u8>, Error> {
    if wal.is_empty() {
        return Ok(db.to_vec());
    }
    if wal.len() < WAL_HEADER {
        return bad("shorter than its header");
    }
    let big = match be32(wal, 0) {
        0x377f_0682 => false,
        0x377f_0683 => true,
        _ => return bad("it does not start with the log's magic number"),
    };
    if be32(wal, 4) != 3_007_000 {
        return bad(format!("log format {}", be32(wal, 4)));
    }
    let page = be32(wal, 8) as usize;
    if !(512..=65536).contains(&page) || !page.is_power_of_two() {
        return bad(format!("page size {page}"));
    }
    if db.len() >= 18 {
        let db_page = match u16::from_be_bytes([db[16], db[17]]) {
            1 => 65536,
            n => usize::from(n),
        };
        if db_page != page {
            return bad(format!(
                "its pages are {page} bytes, the database's {db_page}"
            ));
        }
    }
    let salts = (be32(wal, 16), be32(wal, 20));
    let mut sum = checksum(big, &wal[..24], (0, 0));
    if sum != (be32(wal, 24), be32(wal, 28)) {
        // SQLite ignores a log whose header does not check: nothing was committed to it.
        return Ok(db.to_vec());
    }
    // Walk the valid frames; remember those up to the last commit.
    let mut frames: Vec<(u32, usize)> = Vec::new();
    let mut committed = 0usize;
    let mut db_pages = 0u32;
    let mut at = WAL_HEADER;
    while at + FRAME_HEADER + page <= wal.len() {
        let h = &wal[at..at + FRAME_HEADER];
        if (be32(h, 8), be32(h, 12)) != salts {
            break;
        }
        sum = checksum(big, &h[..8], sum);
        sum = checksum(big, &wal[at + FRAME_HEADER..at + FRAME_HEADER + page], sum);
        if sum != (be32(h, 16), be32(h, 20)) {
            break;
        }
        let pgno = be32(h, 0);
        if pgno == 0 {
            break;
        }
        frames.push((pgno, at + FRAME_HEADER));
        if be32(h, 4) != 0 {
            committed = frames.len();
            db_pages = be32(h, 4);
        }
        at += FRAME_HEADER + page;
    }
    if committed == 0 {
        return Ok(db.to_vec());
    }
    let size = u64::from(db_pages) * page as u64;
    if size > max {
        return Err(Error::TooLarge { size, max });
    }
    let size = size as usize;
    let mut image = vec![0u8; size];
    let keep = db.len().min(size);
    image[..keep].copy_from_slice(&db[..keep]);
    for &(pgno, data) in &frames[..committed] {
        let start = (pgno as usize - 1) * page;
        // Pages past the database's size at the last commit were truncated away.
        if start + page <= size {
            image[start..start + page].copy_from_slice(&wal[data..data + page]);
        }
    }
    Ok(image)
}
