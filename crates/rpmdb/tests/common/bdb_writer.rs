//! A Berkeley DB hash database writer for the tests: lays out header blobs as the `Packages`
//! database of RHEL 7/8 holds them (a metadata page, chained hash pages of key/value pairs,
//! values on overflow pages), in either byte order, so that the reader can be compared with
//! rpm's own read-only Berkeley DB backend (`_db_backend bdb_ro`) on the same file.

// Shared by several test binaries, each of which uses only part of it.
#![allow(dead_code)]

/// Page types and item types of Berkeley DB.
const P_HASHMETA: u8 = 8;
const P_HASH: u8 = 13;
const P_OVERFLOW: u8 = 7;
const H_KEYDATA: u8 = 1;
const H_OFFPAGE: u8 = 3;

struct Writer {
    page_size: usize,
    big: bool,
    pages: Vec<Vec<u8>>,
}

impl Writer {
    fn u32(&self, v: u32) -> [u8; 4] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn u16(&self, v: u16) -> [u8; 2] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn put32(&self, page: &mut [u8], at: usize, v: u32) {
        page[at..at + 4].copy_from_slice(&self.u32(v));
    }
    fn put16(&self, page: &mut [u8], at: usize, v: u16) {
        page[at..at + 2].copy_from_slice(&self.u16(v));
    }

    /// A new empty page of `kind`; returns its number.
    fn new_page(&mut self, kind: u8) -> u32 {
        let n = self.pages.len() as u32;
        let mut p = vec![0u8; self.page_size];
        self.put32(&mut p, 8, n);
        p[25] = kind;
        self.pages.push(p);
        n
    }

    /// Writes `data` on a chain of overflow pages; returns the first page.
    fn overflow(&mut self, data: &[u8]) -> u32 {
        let room = self.page_size - 26;
        let chunks: Vec<&[u8]> = data.chunks(room).collect();
        let first = self.pages.len() as u32;
        for (i, chunk) in chunks.iter().enumerate() {
            let n = self.new_page(P_OVERFLOW);
            let mut p = std::mem::take(&mut self.pages[n as usize]);
            if i > 0 {
                self.put32(&mut p, 12, n - 1);
            }
            if i + 1 < chunks.len() {
                self.put32(&mut p, 16, n + 1);
            }
            self.put16(&mut p, 20, 1);
            self.put16(&mut p, 22, chunk.len() as u16);
            p[26..26 + chunk.len()].copy_from_slice(chunk);
            self.pages[n as usize] = p;
        }
        first
    }
}

/// Writes a `Packages` hash database of `records` (package number, header blob) over
/// `buckets` buckets (records spread by number); the counter record 0 that rpm keeps is added
/// first.
pub(crate) fn write_bdb(
    records: &[(u32, Vec<u8>)],
    page_size: usize,
    big: bool,
    buckets: u32,
) -> Vec<u8> {
    let mut w = Writer {
        page_size,
        big,
        pages: Vec::new(),
    };
    w.new_page(P_HASHMETA);
    let key = |w: &Writer, n: u32| {
        let mut k = vec![H_KEYDATA];
        k.extend_from_slice(&w.u32(n));
        k
    };
    // Bucket b's first page is page b + 1 (every split point's spare count is 1).
    for _ in 0..buckets {
        w.new_page(P_HASH);
    }
    let next_hnum = records.iter().map(|r| r.0).max().unwrap_or(0) + 1;
    let mut counter = vec![H_KEYDATA];
    counter.extend_from_slice(&w.u32(next_hnum));
    let mut items: Vec<Vec<(Vec<u8>, Vec<u8>)>> = vec![Vec::new(); buckets as usize];
    items[0].push((key(&w, 0), counter));
    for (n, blob) in records {
        let pg = w.overflow(blob);
        let mut v = vec![H_OFFPAGE, 0, 0, 0];
        v.extend_from_slice(&w.u32(pg));
        v.extend_from_slice(&w.u32(blob.len() as u32));
        items[(*n % buckets) as usize].push((key(&w, *n), v));
    }
    for (bucket, items) in items.into_iter().enumerate() {
        // Items from the end of the page down, their offsets after the header.
        let mut page_no = bucket as u32 + 1;
        let mut entries: Vec<u16> = Vec::new();
        let mut low = page_size;
        for (k, v) in items {
            let need = k.len() + v.len() + 4;
            if low < 26 + 2 * entries.len() + need {
                // This page is full: chain a new one.
                let next = w.new_page(P_HASH);
                finish(&mut w, page_no, &entries, low, next);
                page_no = next;
                entries.clear();
                low = page_size;
            }
            let mut p = std::mem::take(&mut w.pages[page_no as usize]);
            low -= k.len();
            p[low..low + k.len()].copy_from_slice(&k);
            entries.push(low as u16);
            low -= v.len();
            p[low..low + v.len()].copy_from_slice(&v);
            entries.push(low as u16);
            w.pages[page_no as usize] = p;
        }
        finish(&mut w, page_no, &entries, low, 0);
    }

    // The metadata page.
    let last = w.pages.len() as u32 - 1;
    let mut m = std::mem::take(&mut w.pages[0]);
    w.put32(&mut m, 12, 0x0006_1561);
    w.put32(&mut m, 16, 9);
    w.put32(&mut m, 20, page_size as u32);
    w.put32(&mut m, 32, last);
    let max_bucket = buckets - 1;
    let high_mask = max_bucket.checked_next_power_of_two().unwrap_or(1).max(1) * 2 - 1;
    w.put32(&mut m, 72, max_bucket);
    w.put32(&mut m, 76, high_mask);
    w.put32(&mut m, 80, high_mask >> 1);
    for i in 0..32 {
        w.put32(&mut m, 96 + 4 * i, 1);
    }
    m[25] = P_HASHMETA;
    w.pages[0] = m;
    w.pages.concat()
}

/// Writes the index of hash page `n` and its link to `next`.
fn finish(w: &mut Writer, n: u32, entries: &[u16], low: usize, next: u32) {
    let mut p = std::mem::take(&mut w.pages[n as usize]);
    w.put16(&mut p, 20, entries.len() as u16);
    w.put16(&mut p, 22, low as u16);
    w.put32(&mut p, 16, next);
    for (i, off) in entries.iter().enumerate() {
        w.put16(&mut p, 26 + 2 * i, *off);
    }
    w.pages[n as usize] = p;
}
