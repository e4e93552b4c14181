//! The RPM header blob, parsed with every length and count checked against the blob.
//!
//! A header as the database stores it: `il` and `dl` (big-endian `u32`), `il` index entries of 16
//! bytes (`tag`, `type`, `offset`, `count`, big-endian), then `dl` bytes of data that the
//! offsets point into. The first entry may be a *region* tag (`HEADERIMMUTABLE`, …) whose data is
//! a 16-byte trailer; entries added at install time (install time, file states) follow the
//! region, and a later entry of a tag replaces an earlier one, as rpm's "dribble" entries do.
//!
//! Nothing is copied or allocated before its extent has been checked: a count is never trusted
//! to size an allocation unless the bytes it claims are there, so the memory a header can cost
//! is proportional to its length.

use crate::Error;

/// Most index entries in a header (rpm's own `HEADER_TAGS_MAX`).
pub const MAX_ENTRIES: u32 = 0xffff;
/// Largest data store of a header (rpm's own `HEADER_DATA_MAX`).
pub const MAX_DATA: u32 = 0x0fff_ffff;

/// The type of a header entry's data (rpm's `rpmTagType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TagType {
    /// No data.
    Null,
    /// Bytes, as characters.
    Char,
    /// Bytes, as 8-bit integers.
    Int8,
    /// Big-endian 16-bit integers.
    Int16,
    /// Big-endian 32-bit integers.
    Int32,
    /// Big-endian 64-bit integers.
    Int64,
    /// One NUL-terminated string (the count is 1).
    String,
    /// Opaque bytes.
    Bin,
    /// `count` NUL-terminated strings.
    StringArray,
    /// `count` NUL-terminated strings, one per locale.
    I18nString,
}

impl TagType {
    /// The type numbered `raw` in a header, if it is one rpm defines.
    pub fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::Null,
            1 => Self::Char,
            2 => Self::Int8,
            3 => Self::Int16,
            4 => Self::Int32,
            5 => Self::Int64,
            6 => Self::String,
            7 => Self::Bin,
            8 => Self::StringArray,
            9 => Self::I18nString,
            _ => return None,
        })
    }

    /// The number a header stores for this type.
    pub fn raw(self) -> u32 {
        match self {
            Self::Null => 0,
            Self::Char => 1,
            Self::Int8 => 2,
            Self::Int16 => 3,
            Self::Int32 => 4,
            Self::Int64 => 5,
            Self::String => 6,
            Self::Bin => 7,
            Self::StringArray => 8,
            Self::I18nString => 9,
        }
    }

    /// Bytes per item of a fixed-size type; `None` for the string types.
    fn item_size(self) -> Option<usize> {
        match self {
            Self::Null => Some(0),
            Self::Char | Self::Int8 | Self::Bin => Some(1),
            Self::Int16 => Some(2),
            Self::Int32 => Some(4),
            Self::Int64 => Some(8),
            Self::String | Self::StringArray | Self::I18nString => None,
        }
    }
}

/// Tag numbers this crate reads (rpm's `rpmTag`).
pub mod tag {
    /// Region of a header image (legacy).
    pub const HEADERIMAGE: i32 = 61;
    /// Region of a signature header.
    pub const HEADERSIGNATURES: i32 = 62;
    /// Region of the immutable (signed) part of a package header.
    pub const HEADERIMMUTABLE: i32 = 63;
    /// Package name.
    pub const NAME: i32 = 1000;
    /// Package version.
    pub const VERSION: i32 = 1001;
    /// Package release.
    pub const RELEASE: i32 = 1002;
    /// Package epoch.
    pub const EPOCH: i32 = 1003;
    /// When the package was installed (seconds since the epoch).
    pub const INSTALLTIME: i32 = 1008;
    /// Package vendor.
    pub const VENDOR: i32 = 1011;
    /// Package architecture.
    pub const ARCH: i32 = 1022;
    /// Full file names of old headers (before compressed file names).
    pub const OLDFILENAMES: i32 = 1027;
    /// File sizes (32-bit).
    pub const FILESIZES: i32 = 1028;
    /// File states at install time.
    pub const FILESTATES: i32 = 1029;
    /// File modes.
    pub const FILEMODES: i32 = 1030;
    /// Device numbers of device files.
    pub const FILERDEVS: i32 = 1033;
    /// File modification times.
    pub const FILEMTIMES: i32 = 1034;
    /// File digests, in hex (`FILEMD5S` before rpm 4.6).
    pub const FILEDIGESTS: i32 = 1035;
    /// Symlink targets.
    pub const FILELINKTOS: i32 = 1036;
    /// File flags (`%config`, `%doc`, `%ghost`, …).
    pub const FILEFLAGS: i32 = 1037;
    /// File owners (user names).
    pub const FILEUSERNAME: i32 = 1039;
    /// File groups (group names).
    pub const FILEGROUPNAME: i32 = 1040;
    /// What `rpm -V` checks of each file (`%verify`).
    pub const FILEVERIFYFLAGS: i32 = 1045;
    /// Index into [`DIRNAMES`] of each file.
    pub const DIRINDEXES: i32 = 1116;
    /// File base names.
    pub const BASENAMES: i32 = 1117;
    /// Directory names (each ends with `/`).
    pub const DIRNAMES: i32 = 1118;
    /// File sizes (64-bit, when any file is 4 GiB or more).
    pub const LONGFILESIZES: i32 = 5008;
    /// The digest algorithm of [`FILEDIGESTS`] (a PGP hash algorithm number).
    pub const FILEDIGESTALGO: i32 = 5011;
}

/// One checked index entry.
#[derive(Debug, Clone, Copy)]
struct Entry {
    tag: i32,
    ty: TagType,
    /// Offset into the data store.
    offset: usize,
    count: usize,
}

/// A parsed header: the checked index over the blob's data store. Values are decoded on
/// request, each checked against the data store.
#[derive(Debug)]
pub struct Header<'a> {
    entries: Vec<Entry>,
    data: &'a [u8],
}

/// Fails with a header error.
fn bad<T>(reason: impl Into<String>) -> Result<T, Error> {
    Err(Error::Header {
        hnum: None,
        reason: reason.into(),
    })
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl<'a> Header<'a> {
    /// Checks `blob` (a header as `rpmdb.sqlite` stores it, without the 8-byte magic of a
    /// package file) and indexes it. Every entry's type, offset and fixed-size extent is checked
    /// here; strings are checked when read. Trailing bytes, a region trailer that does not
    /// describe the index, negative offsets and counts past the data are all errors.
    pub fn parse(blob: &'a [u8]) -> Result<Self, Error> {
        if blob.len() < 8 {
            return bad(format!(
                "{} bytes: shorter than a header's sizes",
                blob.len()
            ));
        }
        let il = be_u32(blob, 0);
        let dl = be_u32(blob, 4);
        if il == 0 || il > MAX_ENTRIES {
            return bad(format!(
                "{il} index entries (rpm allows 1 to {MAX_ENTRIES})"
            ));
        }
        if dl > MAX_DATA {
            return bad(format!("{dl} bytes of data (rpm allows up to {MAX_DATA})"));
        }
        // Both fit in 32 bits, so this cannot overflow a u64 (nor a usize on 64-bit targets).
        let want = 8 + 16 * u64::from(il) + u64::from(dl);
        if blob.len() as u64 != want {
            return bad(format!(
                "the header is {} bytes but its sizes say {want}",
                blob.len()
            ));
        }
        let il = il as usize;
        let dl = dl as usize;
        let index = &blob[8..8 + 16 * il];
        let data = &blob[8 + 16 * il..];
        let mut entries = Vec::with_capacity(il);
        for raw in index.chunks_exact(16) {
            let tag = be_u32(raw, 0) as i32;
            let ty_raw = be_u32(raw, 4);
            let offset = be_u32(raw, 8) as i32;
            let count = be_u32(raw, 12);
            let Some(ty) = TagType::from_raw(ty_raw) else {
                return bad(format!("tag {tag} has unknown type {ty_raw}"));
            };
            let Ok(offset) = usize::try_from(offset) else {
                return bad(format!("tag {tag} has negative offset {offset}"));
            };
            let count = count as usize;
            if ty != TagType::Null && (count == 0 || offset >= dl) {
                return bad(format!(
                    "tag {tag}: {count} items at offset {offset} of {dl} bytes of data"
                ));
            }
            if ty == TagType::String && count != 1 {
                return bad(format!("tag {tag}: a string with count {count}"));
            }
            if let Some(size) = ty.item_size() {
                let end = count.checked_mul(size).and_then(|n| n.checked_add(offset));
                if end.is_none_or(|end| end > dl) {
                    return bad(format!(
                        "tag {tag}: {count} items of {size} bytes at offset {offset} overrun \
                         {dl} bytes of data"
                    ));
                }
            }
            entries.push(Entry {
                tag,
                ty,
                offset,
                count,
            });
        }
        let header = Header { entries, data };
        header.check_region()?;
        Ok(header)
    }

    /// Checks the region trailer of a header that starts with a region tag, as rpm does: the
    /// trailer must name a region and claim between 1 and all of the index entries, so a
    /// trailer that points at itself or past the index is refused.
    fn check_region(&self) -> Result<(), Error> {
        let first = self.entries[0];
        if !is_region(first.tag) {
            return Ok(());
        }
        if first.ty != TagType::Bin || first.count != 16 {
            return bad(format!(
                "region tag {}: {:?} of {} bytes (a trailer is 16 bytes of binary)",
                first.tag, first.ty, first.count
            ));
        }
        let trailer = &self.data[first.offset..first.offset + 16];
        let tag = be_u32(trailer, 0) as i32;
        let ty = be_u32(trailer, 4);
        let offset = be_u32(trailer, 8) as i32;
        let count = be_u32(trailer, 12);
        let ril = offset.checked_neg().map(|n| n / 16);
        let covers = ril.is_some_and(|ril| {
            offset % 16 == 0 && ril >= 1 && (ril as usize) <= self.entries.len()
        });
        if !is_region(tag) || ty != TagType::Bin.raw() || count != 16 || !covers {
            return bad(format!(
                "region trailer (tag {tag}, type {ty}, offset {offset}, count {count}) does not \
                 describe the index of {} entries",
                self.entries.len()
            ));
        }
        Ok(())
    }

    /// The tags present, in index order (a tag may appear more than once).
    pub fn tags(&self) -> impl Iterator<Item = (i32, TagType)> + '_ {
        self.entries.iter().map(|e| (e.tag, e.ty))
    }

    /// The entry of `tag` that counts: the last one (a dribble entry replaces a region entry).
    fn entry(&self, tag: i32) -> Option<Entry> {
        self.entries.iter().rev().find(|e| e.tag == tag).copied()
    }

    fn fixed(&self, tag: i32, types: &[TagType]) -> Result<Option<(Entry, &'a [u8])>, Error> {
        let Some(e) = self.entry(tag) else {
            return Ok(None);
        };
        if !types.contains(&e.ty) {
            return bad(format!("tag {tag} is {:?}, expected {types:?}", e.ty));
        }
        let size = e.ty.item_size().unwrap_or(1);
        // The extent was checked in `parse`; `get` keeps a mistake here an error, not a panic.
        match self.data.get(e.offset..e.offset + e.count * size) {
            Some(b) => Ok(Some((e, b))),
            None => bad(format!("tag {tag} overruns the data")),
        }
    }

    /// The 32-bit integers of `tag` (an `INT32` entry), if present.
    pub fn int32s(&self, tag: i32) -> Result<Option<Vec<u32>>, Error> {
        Ok(self.fixed(tag, &[TagType::Int32])?.map(|(_, b)| {
            b.chunks_exact(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        }))
    }

    /// The 16-bit integers of `tag` (an `INT16` entry), if present.
    pub fn int16s(&self, tag: i32) -> Result<Option<Vec<u16>>, Error> {
        Ok(self.fixed(tag, &[TagType::Int16])?.map(|(_, b)| {
            b.chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect()
        }))
    }

    /// The 64-bit integers of `tag` (an `INT64` entry), if present.
    pub fn int64s(&self, tag: i32) -> Result<Option<Vec<u64>>, Error> {
        Ok(self.fixed(tag, &[TagType::Int64])?.map(|(_, b)| {
            b.chunks_exact(8)
                .map(|c| u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect()
        }))
    }

    /// The bytes of `tag` (a `CHAR`, `INT8` or `BIN` entry), if present.
    pub fn bytes(&self, tag: i32) -> Result<Option<&'a [u8]>, Error> {
        Ok(self
            .fixed(tag, &[TagType::Char, TagType::Int8, TagType::Bin])?
            .map(|(_, b)| b))
    }

    /// The string of `tag` (a `STRING` entry, or the first string of an `I18NSTRING` or
    /// `STRING_ARRAY` one), without its NUL, if present.
    pub fn string(&self, tag: i32) -> Result<Option<&'a [u8]>, Error> {
        let Some(e) = self.entry(tag) else {
            return Ok(None);
        };
        if !matches!(
            e.ty,
            TagType::String | TagType::I18nString | TagType::StringArray
        ) {
            return bad(format!("tag {tag} is {:?}, expected a string", e.ty));
        }
        let (s, _) = self.one_string(tag, e.offset)?;
        Ok(Some(s))
    }

    /// The strings of `tag` (a `STRING_ARRAY` or `I18NSTRING` entry), without their NULs, if
    /// present.
    pub fn strings(&self, tag: i32) -> Result<Option<Vec<&'a [u8]>>, Error> {
        let Some(e) = self.entry(tag) else {
            return Ok(None);
        };
        if !matches!(e.ty, TagType::StringArray | TagType::I18nString) {
            return bad(format!("tag {tag} is {:?}, expected a string array", e.ty));
        }
        // Each string takes at least its NUL: a count beyond the remaining bytes is a lie, and
        // refusing it first keeps the allocation below proportional to the blob.
        if e.count > self.data.len() - e.offset {
            return bad(format!(
                "tag {tag}: {} strings in {} bytes",
                e.count,
                self.data.len() - e.offset
            ));
        }
        let mut out = Vec::with_capacity(e.count);
        let mut at = e.offset;
        for _ in 0..e.count {
            let (s, next) = self.one_string(tag, at)?;
            out.push(s);
            at = next;
        }
        Ok(Some(out))
    }

    /// The NUL-terminated string at `at` and the offset after its NUL.
    fn one_string(&self, tag: i32, at: usize) -> Result<(&'a [u8], usize), Error> {
        let rest = self.data.get(at..).unwrap_or_default();
        match rest.iter().position(|&b| b == 0) {
            Some(n) => Ok((&rest[..n], at + n + 1)),
            None => bad(format!(
                "tag {tag}: a string at offset {at} runs past the data"
            )),
        }
    }
}

/// Whether `tag` is one of the region tags.
fn is_region(tag: i32) -> bool {
    matches!(
        tag,
        tag::HEADERIMAGE | tag::HEADERSIGNATURES | tag::HEADERIMMUTABLE
    )
}
