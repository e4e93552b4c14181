//! The Berkeley DB `Packages` database of RHEL 7 and 8 (and UBI 8): a hash database whose keys
//! are package numbers and whose values are header blobs, read without Berkeley DB.
//!
//! Only what rpm's own read-only reader needs is read: the metadata page, the bucket pages of
//! the hash and their chains, and overflow pages (headers are larger than a page). Every page
//! number is checked against the file, every offset against its page, and no page is visited
//! twice, so a hostile file costs at most one pass over itself and cannot loop.

use crate::{Error, Limits, Package};

/// `P_HASH_UNSORTED` and `P_HASH`: pages of key/value pairs.
const HASH_PAGES: [u8; 2] = [2, 13];
/// `P_OVERFLOW`: a piece of a large item.
const OVERFLOW_PAGE: u8 = 7;
/// Item types: data on the page, or on a chain of overflow pages.
const H_KEYDATA: u8 = 1;
const H_OFFPAGE: u8 = 3;
/// The size of a page header.
const PAGE_HEADER: usize = 26;

fn bad<T>(reason: impl Into<String>) -> Result<T, Error> {
    Err(Error::BerkeleyDb(reason.into()))
}

/// The database: its bytes and layout.
struct Db<'a> {
    bytes: &'a [u8],
    page_size: usize,
    last_page: u32,
    /// Written on a big-endian machine.
    big: bool,
    /// Pages already read (a page is never part of two chains).
    seen: Vec<bool>,
}

impl<'a> Db<'a> {
    fn u32_at(&self, b: &[u8], at: usize) -> u32 {
        let x = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if self.big {
            u32::from_be_bytes(x)
        } else {
            u32::from_le_bytes(x)
        }
    }

    fn u16_at(&self, b: &[u8], at: usize) -> u16 {
        let x = [b[at], b[at + 1]];
        if self.big {
            u16::from_be_bytes(x)
        } else {
            u16::from_le_bytes(x)
        }
    }

    /// Page `n`, checked to exist, to be numbered `n`, and not to have been read before.
    fn page(&mut self, n: u32) -> Result<&'a [u8], Error> {
        if n == 0 || n > self.last_page {
            return bad(format!(
                "page {n} is outside the database (pages 1 to {})",
                self.last_page
            ));
        }
        let start = n as usize * self.page_size;
        let Some(page) = self.bytes.get(start..start + self.page_size) else {
            return bad(format!("page {n} is past the end of the file (truncated?)"));
        };
        if self.u32_at(page, 8) != n {
            return bad(format!("page {n} says it is page {}", self.u32_at(page, 8)));
        }
        let seen = &mut self.seen[n as usize];
        if *seen {
            return bad(format!("page {n} is reached twice (a loop)"));
        }
        *seen = true;
        Ok(page)
    }

    /// The item of `len` bytes at `off` of hash page `page`: its data, or the data of the
    /// overflow chain it points to.
    fn item(&mut self, page: &'a [u8], off: usize, len: usize, max: u64) -> Result<Vec<u8>, Error> {
        if len == 0 || off + len > page.len() {
            return bad(format!(
                "an item of {len} bytes at offset {off} overruns its page"
            ));
        }
        match page[off] {
            H_KEYDATA => Ok(page[off + 1..off + len].to_vec()),
            H_OFFPAGE if len == 12 => {
                let mut next = self.u32_at(page, off + 4);
                let total = self.u32_at(page, off + 8) as usize;
                if total as u64 > max {
                    return bad(format!("an item of {total} bytes (at most {max} are read)"));
                }
                let mut out = Vec::with_capacity(total);
                while out.len() < total {
                    let p = self.page(next)?;
                    if p[25] != OVERFLOW_PAGE {
                        return bad(format!("page {next} is not an overflow page"));
                    }
                    let n = usize::from(self.u16_at(p, 22));
                    if n == 0 || PAGE_HEADER + n > p.len() || n > total - out.len() {
                        return bad(format!("overflow page {next} holds {n} bytes"));
                    }
                    out.extend_from_slice(&p[PAGE_HEADER..PAGE_HEADER + n]);
                    next = self.u32_at(p, 16);
                }
                Ok(out)
            }
            other => bad(format!("an item of type {other} (not data)")),
        }
    }
}

/// Reads the packages of a Berkeley DB `Packages` hash database.
pub(crate) fn read(bytes: &[u8], limits: &Limits) -> Result<Vec<Package>, Error> {
    if bytes.len() < 512 {
        return bad("shorter than its metadata page");
    }
    let magic_le = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    let magic_be = u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    let big = match (magic_le, magic_be) {
        (0x0006_1561, _) => false,
        (_, 0x0006_1561) => true,
        _ => {
            return bad("not a hash database (rpm's Packages is one; indexes are not read)");
        }
    };
    let mut db = Db {
        bytes,
        page_size: 0,
        last_page: 0,
        big,
        seen: Vec::new(),
    };
    let meta = &bytes[..512];
    let version = db.u32_at(meta, 16);
    if !(8..=10).contains(&version) {
        return bad(format!("hash version {version} (8 to 10 are read)"));
    }
    let page_size = db.u32_at(meta, 20) as usize;
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return bad(format!("page size {page_size}"));
    }
    let last_page = db.u32_at(meta, 32);
    let pages = bytes.len() / page_size;
    if last_page as usize >= pages {
        return bad(format!(
            "the last page is {last_page} but the file holds {pages} pages (truncated?)"
        ));
    }
    db.page_size = page_size;
    db.last_page = last_page;
    db.seen = vec![false; last_page as usize + 1];
    let max_bucket = db.u32_at(meta, 72);
    let spares: Vec<u32> = (0..32).map(|i| db.u32_at(meta, 96 + 4 * i)).collect();

    let mut out = Vec::new();
    let mut files = 0usize;
    for bucket in 0..=max_bucket {
        // A bucket's first page: the bucket number plus the spare pages of its split point.
        let split = (u32::BITS - bucket.leading_zeros()) as usize;
        let Some(first) = spares.get(split).and_then(|s| bucket.checked_add(*s)) else {
            return bad(format!("bucket {bucket} has no page"));
        };
        let mut next = first;
        while next != 0 {
            let page = db.page(next)?;
            if !HASH_PAGES.contains(&page[25]) {
                return bad(format!("page {next} of bucket {bucket} is not a hash page"));
            }
            let entries = usize::from(db.u16_at(page, 20));
            if PAGE_HEADER + 2 * entries > page_size || entries % 2 != 0 {
                return bad(format!("page {next} claims {entries} entries"));
            }
            let offsets: Vec<usize> = (0..entries)
                .map(|i| usize::from(db.u16_at(page, PAGE_HEADER + 2 * i)))
                .collect();
            let offset = |i: usize| offsets[i];
            for pair in 0..entries / 2 {
                let (k, v) = (2 * pair, 2 * pair + 1);
                let key_end = if k == 0 { page_size } else { offset(k - 1) };
                let (koff, voff) = (offset(k), offset(v));
                let min = PAGE_HEADER + 2 * entries;
                if voff < min || voff >= koff || koff >= key_end {
                    return bad(format!("page {next}: entry {pair} is out of order"));
                }
                let key = db.item(page, koff, key_end - koff, 16)?;
                let value = db.item(page, voff, koff - voff, limits.max_header_bytes)?;
                let Ok(key) = <[u8; 4]>::try_from(key.as_slice()) else {
                    return bad(format!("page {next}: a key of {} bytes", key.len()));
                };
                let hnum = if big {
                    u32::from_be_bytes(key)
                } else {
                    u32::from_le_bytes(key)
                };
                // Record 0 is rpm's counter of package numbers, not a package.
                if hnum == 0 {
                    continue;
                }
                let mut package = Package::from_header(&value).map_err(|e| e.in_header(hnum))?;
                package.hnum = Some(hnum);
                files = files.saturating_add(package.files.len());
                if out.len() >= limits.max_packages || files > limits.max_files {
                    return Err(Error::TooMany {
                        packages: out.len() + 1,
                        files,
                    });
                }
                out.push(package);
            }
            next = db.u32_at(page, 16);
        }
    }
    out.sort_by_key(|p| p.hnum);
    Ok(out)
}
