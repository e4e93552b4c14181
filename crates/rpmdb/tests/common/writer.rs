//! An RPM header writer for the tests: writes headers as rpm stores them in `rpmdb.sqlite`
//! (a region over the first entries, then "dribble" entries), so that the parser can be checked
//! by round trips and hostile headers can be made by editing well-formed ones.

// Shared by several test binaries, each of which uses only part of it.
#![allow(dead_code)]

use keyhole_rpmdb::{Package, TagType, tag};

/// A value of a header entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Char(Vec<u8>),
    Int8(Vec<u8>),
    Int16(Vec<u16>),
    Int32(Vec<u32>),
    Int64(Vec<u64>),
    Str(Vec<u8>),
    Bin(Vec<u8>),
    Strs(Vec<Vec<u8>>),
    I18n(Vec<Vec<u8>>),
}

impl Value {
    fn ty(&self) -> TagType {
        match self {
            Value::Char(_) => TagType::Char,
            Value::Int8(_) => TagType::Int8,
            Value::Int16(_) => TagType::Int16,
            Value::Int32(_) => TagType::Int32,
            Value::Int64(_) => TagType::Int64,
            Value::Str(_) => TagType::String,
            Value::Bin(_) => TagType::Bin,
            Value::Strs(_) => TagType::StringArray,
            Value::I18n(_) => TagType::I18nString,
        }
    }

    fn count(&self) -> usize {
        match self {
            Value::Char(v) | Value::Int8(v) | Value::Bin(v) => v.len(),
            Value::Int16(v) => v.len(),
            Value::Int32(v) => v.len(),
            Value::Int64(v) => v.len(),
            Value::Str(_) => 1,
            Value::Strs(v) | Value::I18n(v) => v.len(),
        }
    }

    fn align(&self) -> usize {
        match self {
            Value::Int16(_) => 2,
            Value::Int32(_) => 4,
            Value::Int64(_) => 8,
            _ => 1,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Char(v) | Value::Int8(v) | Value::Bin(v) => out.extend_from_slice(v),
            Value::Int16(v) => v
                .iter()
                .for_each(|n| out.extend_from_slice(&n.to_be_bytes())),
            Value::Int32(v) => v
                .iter()
                .for_each(|n| out.extend_from_slice(&n.to_be_bytes())),
            Value::Int64(v) => v
                .iter()
                .for_each(|n| out.extend_from_slice(&n.to_be_bytes())),
            Value::Str(s) => {
                out.extend_from_slice(s);
                out.push(0);
            }
            Value::Strs(v) | Value::I18n(v) => v.iter().for_each(|s| {
                out.extend_from_slice(s);
                out.push(0);
            }),
        }
    }
}

/// Writes a header of `entries`, the first `in_region` of them inside an immutable region
/// (no region at all when `in_region` is 0). Strings must not contain NUL.
pub(crate) fn write_header(entries: &[(i32, Value)], in_region: usize) -> Vec<u8> {
    let region = in_region > 0;
    let il = entries.len() + usize::from(region);
    let mut index = Vec::new();
    let mut data = Vec::new();
    let push = |index: &mut Vec<u8>, t: i32, ty: u32, off: usize, count: usize| {
        index.extend_from_slice(&t.to_be_bytes());
        index.extend_from_slice(&ty.to_be_bytes());
        index.extend_from_slice(&(off as u32).to_be_bytes());
        index.extend_from_slice(&(count as u32).to_be_bytes());
    };
    // The region tag's entry is first; its data (the trailer) follows the region's own data.
    if region {
        push(&mut index, tag::HEADERIMMUTABLE, 7, 0, 16);
    }
    for (i, (t, v)) in entries.iter().enumerate() {
        while data.len() % v.align() != 0 {
            data.push(0);
        }
        push(&mut index, *t, v.ty().raw(), data.len(), v.count());
        v.encode(&mut data);
        if region && i + 1 == in_region.min(entries.len()) {
            let ril = (in_region.min(entries.len()) + 1) as i32;
            let at = data.len();
            data.extend_from_slice(&tag::HEADERIMMUTABLE.to_be_bytes());
            data.extend_from_slice(&7u32.to_be_bytes());
            data.extend_from_slice(&(-(ril * 16)).to_be_bytes());
            data.extend_from_slice(&16u32.to_be_bytes());
            index[8..12].copy_from_slice(&(at as u32).to_be_bytes());
        }
    }
    let mut out = Vec::new();
    out.extend_from_slice(&(il as u32).to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(&index);
    out.extend_from_slice(&data);
    out
}

/// The header entries that describe `p` (as rpm would write them).
pub(crate) fn package_entries(p: &Package) -> Vec<(i32, Value)> {
    let mut e = vec![
        (tag::NAME, Value::Str(p.name.clone().into_bytes())),
        (tag::VERSION, Value::Str(p.version.clone().into_bytes())),
        (tag::RELEASE, Value::Str(p.release.clone().into_bytes())),
    ];
    if let Some(n) = p.epoch {
        e.push((tag::EPOCH, Value::Int32(vec![n])));
    }
    if let Some(v) = &p.vendor {
        e.push((tag::VENDOR, Value::Str(v.clone().into_bytes())));
    }
    if let Some(a) = &p.arch {
        e.push((tag::ARCH, Value::Str(a.clone().into_bytes())));
    }
    if p.digest_algo.pgp() != 1 {
        e.push((tag::FILEDIGESTALGO, Value::Int32(vec![p.digest_algo.pgp()])));
    }
    if !p.files.is_empty() {
        let f = &p.files;
        let hex = |d: &Option<Vec<u8>>| {
            d.as_ref()
                .map(|d| d.iter().map(|b| format!("{b:02x}")).collect::<String>())
                .unwrap_or_default()
                .into_bytes()
        };
        let long = f.iter().any(|f| f.size > u64::from(u32::MAX));
        e.extend([
            (tag::DIRNAMES, Value::Strs(p.dirnames.clone())),
            (
                tag::BASENAMES,
                Value::Strs(f.iter().map(|f| f.basename.clone()).collect()),
            ),
            (
                tag::DIRINDEXES,
                Value::Int32(f.iter().map(|f| f.dir).collect()),
            ),
            (
                tag::FILEMODES,
                Value::Int16(f.iter().map(|f| f.mode).collect()),
            ),
            (
                tag::FILEUSERNAME,
                Value::Strs(f.iter().map(|f| f.user.clone()).collect()),
            ),
            (
                tag::FILEGROUPNAME,
                Value::Strs(f.iter().map(|f| f.group.clone()).collect()),
            ),
            (
                tag::FILEMTIMES,
                Value::Int32(f.iter().map(|f| f.mtime).collect()),
            ),
            (
                tag::FILERDEVS,
                Value::Int16(f.iter().map(|f| f.rdev).collect()),
            ),
            (
                tag::FILEDIGESTS,
                Value::Strs(f.iter().map(|f| hex(&f.digest)).collect()),
            ),
            (
                tag::FILELINKTOS,
                Value::Strs(f.iter().map(|f| f.link_target.clone()).collect()),
            ),
            (
                tag::FILEFLAGS,
                Value::Int32(f.iter().map(|f| f.flags.0).collect()),
            ),
            (
                tag::FILEVERIFYFLAGS,
                Value::Int32(f.iter().map(|f| f.verify.0).collect()),
            ),
        ]);
        if long {
            e.push((
                tag::LONGFILESIZES,
                Value::Int64(f.iter().map(|f| f.size).collect()),
            ));
        } else {
            e.push((
                tag::FILESIZES,
                Value::Int32(f.iter().map(|f| f.size as u32).collect()),
            ));
        }
    }
    // What rpm adds at install time, outside the region.
    if let Some(t) = p.install_time {
        e.push((tag::INSTALLTIME, Value::Int32(vec![t as u32])));
    }
    if !p.files.is_empty() {
        let states = p.files.iter().map(|f| state_raw(f.state) as u8).collect();
        e.push((tag::FILESTATES, Value::Char(states)));
    }
    e
}

fn state_raw(s: keyhole_rpmdb::FileState) -> i8 {
    use keyhole_rpmdb::FileState::*;
    match s {
        Normal => 0,
        Replaced => 1,
        NotInstalled => 2,
        NetShared => 3,
        WrongColor => 4,
        Missing => -1,
        Other(n) => n,
    }
}

/// The header blob of `p`: a region over everything but the install-time entries.
pub(crate) fn package_header(p: &Package) -> Vec<u8> {
    let entries = package_entries(p);
    let dribble = usize::from(p.install_time.is_some()) + usize::from(!p.files.is_empty());
    write_header(&entries, entries.len() - dribble)
}

/// Writes an `rpmdb.sqlite`-shaped database at `path` holding `blobs` as `Packages` rows.
pub(crate) fn write_sqlite(path: &std::path::Path, blobs: &[Vec<u8>]) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE 'Packages' (hnum INTEGER PRIMARY KEY AUTOINCREMENT,blob BLOB NOT NULL);",
    )
    .unwrap();
    for b in blobs {
        conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [b])
            .unwrap();
    }
}
