//! An installed package and its files, as recorded in its header.

use crate::Error;
use crate::header::{Header, tag};

/// An installed package: what `rpm -qa` lists and `rpm -V` checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// The database's key for the package (`hnum`), when it came from a database.
    pub hnum: Option<u32>,
    /// Name (`NAME`).
    pub name: String,
    /// Epoch (`EPOCH`), absent for most packages.
    pub epoch: Option<u32>,
    /// Version (`VERSION`).
    pub version: String,
    /// Release (`RELEASE`).
    pub release: String,
    /// Architecture (`ARCH`); absent for the `gpg-pubkey` pseudo-packages.
    pub arch: Option<String>,
    /// Vendor (`VENDOR`), decoded lossily: it is free text, never an identity.
    pub vendor: Option<String>,
    /// When it was installed, in seconds since the epoch (`INSTALLTIME`).
    pub install_time: Option<u64>,
    /// The algorithm of every file digest (`FILEDIGESTALGO`; MD5 when the tag is absent, as in
    /// packages built before rpm 4.6).
    pub digest_algo: DigestAlgo,
    /// Directory names (`DIRNAMES`, each ending with `/`) that [`PackageFile::dir`] indexes.
    /// Kept once per package rather than joined into every file's path, so that a header can
    /// never make the parsed package larger than a small multiple of itself.
    pub dirnames: Vec<Vec<u8>>,
    /// The files, in header order.
    pub files: Vec<PackageFile>,
}

/// One file of a package. Arrays absent from the header leave the field's "unknown" value
/// (documented per field), as rpm does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageFile {
    /// Index into [`Package::dirnames`] (checked to be in range).
    pub dir: u32,
    /// Base name (`BASENAMES`).
    pub basename: Vec<u8>,
    /// Mode bits, type included (`FILEMODES`; 0 when absent).
    pub mode: u16,
    /// Owner's user name (`FILEUSERNAME`; empty when absent).
    pub user: Vec<u8>,
    /// Owner's group name (`FILEGROUPNAME`; empty when absent).
    pub group: Vec<u8>,
    /// Size in bytes (`LONGFILESIZES` or `FILESIZES`; 0 when absent).
    pub size: u64,
    /// Modification time (`FILEMTIMES`; 0 when absent).
    pub mtime: u32,
    /// Device number of a device file (`FILERDEVS`; 0 when absent).
    pub rdev: u16,
    /// Digest of the content of a regular file in [`Package::digest_algo`]
    /// (`FILEDIGESTS`); `None` for other files and when absent.
    pub digest: Option<Vec<u8>>,
    /// Target of a symlink (`FILELINKTOS`); empty for other files.
    pub link_target: Vec<u8>,
    /// `%config`, `%doc`, `%ghost`, … (`FILEFLAGS`).
    pub flags: FileFlags,
    /// Whether the file was installed (`FILESTATES`; [`FileState::Normal`] when absent).
    pub state: FileState,
    /// What `rpm -V` checks of it (`FILEVERIFYFLAGS`; everything when absent).
    pub verify: VerifyFlags,
}

impl Package {
    /// The full path of `file` (its directory name joined with its base name).
    pub fn path(&self, file: &PackageFile) -> Vec<u8> {
        let dir = self
            .dirnames
            .get(file.dir as usize)
            .map_or(&[][..], Vec::as_slice);
        let mut path = Vec::with_capacity(dir.len() + file.basename.len());
        path.extend_from_slice(dir);
        path.extend_from_slice(&file.basename);
        path
    }

    /// The files with their full paths, in header order.
    pub fn files_with_paths(&self) -> impl Iterator<Item = (Vec<u8>, &PackageFile)> + '_ {
        self.files.iter().map(|f| (self.path(f), f))
    }

    /// `[epoch:]version-release`, the version rpm compares (see [`crate::compare_evr`]).
    pub fn evr(&self) -> String {
        let epoch = self.epoch.map(|e| format!("{e}:")).unwrap_or_default();
        format!("{epoch}{}-{}", self.version, self.release)
    }

    /// `name-[epoch:]version-release.arch`, as rpm names a package in messages.
    pub fn nevra(&self) -> String {
        let epoch = self.epoch.map(|e| format!("{e}:")).unwrap_or_default();
        let arch = self
            .arch
            .as_deref()
            .map(|a| format!(".{a}"))
            .unwrap_or_default();
        format!(
            "{}-{epoch}{}-{}{arch}",
            self.name, self.version, self.release
        )
    }

    /// Reads a package from a header blob as `rpmdb.sqlite` stores it. A blob that is not a
    /// well-formed header, or whose file arrays disagree in length, is an error.
    pub fn from_header(blob: &[u8]) -> Result<Self, Error> {
        Self::from_parsed(&Header::parse(blob)?)
    }

    /// Reads a package from a parsed header.
    pub fn from_parsed(h: &Header<'_>) -> Result<Self, Error> {
        let utf8 = |t: i32, what: &str| -> Result<Option<String>, Error> {
            h.string(t)?
                .map(|s| {
                    String::from_utf8(s.to_vec()).map_err(|_| Error::Header {
                        hnum: None,
                        reason: format!("the {what} is not UTF-8"),
                    })
                })
                .transpose()
        };
        let required = |t: i32, what: &str| -> Result<String, Error> {
            utf8(t, what)?.ok_or_else(|| Error::Header {
                hnum: None,
                reason: format!("no {what}"),
            })
        };
        let name = required(tag::NAME, "name")?;
        let version = required(tag::VERSION, "version")?;
        let release = required(tag::RELEASE, "release")?;
        let arch = utf8(tag::ARCH, "architecture")?;
        let vendor = h
            .string(tag::VENDOR)?
            .map(|v| String::from_utf8_lossy(v).into_owned());
        let epoch = first(h.int32s(tag::EPOCH)?);
        let install_time = first(h.int32s(tag::INSTALLTIME)?).map(u64::from);
        let digest_algo =
            first(h.int32s(tag::FILEDIGESTALGO)?).map_or(DigestAlgo::Md5, DigestAlgo::from_pgp);
        let (dirnames, files) = files(h, digest_algo)?;
        Ok(Package {
            hnum: None,
            name,
            epoch,
            version,
            release,
            arch,
            vendor,
            install_time,
            digest_algo,
            dirnames,
            files,
        })
    }
}

fn first(v: Option<Vec<u32>>) -> Option<u32> {
    v.and_then(|v| v.first().copied())
}

/// Checks that a per-file array has one item per file.
fn per_file<T>(what: &str, n: usize, v: Option<Vec<T>>) -> Result<Option<Vec<T>>, Error> {
    match v {
        Some(v) if v.len() != n => Err(Error::Header {
            hnum: None,
            reason: format!("{} {what} for {n} files", v.len()),
        }),
        v => Ok(v),
    }
}

/// The directory names and the files of a header.
fn files(h: &Header<'_>, algo: DigestAlgo) -> Result<(Vec<Vec<u8>>, Vec<PackageFile>), Error> {
    let (dirnames, dirs, basenames) =
        match h.strings(tag::BASENAMES)? {
            Some(basenames) => {
                let n = basenames.len();
                let dirnames = h.strings(tag::DIRNAMES)?.unwrap_or_default();
                let dirs = per_file("directory indexes", n, h.int32s(tag::DIRINDEXES)?)?
                    .ok_or_else(|| Error::Header {
                        hnum: None,
                        reason: "base names without directory indexes".into(),
                    })?;
                if let Some(bad) = dirs.iter().find(|&&d| d as usize >= dirnames.len()) {
                    return Err(Error::Header {
                        hnum: None,
                        reason: format!(
                            "directory index {bad} of {} directory names",
                            dirnames.len()
                        ),
                    });
                }
                let dirnames = dirnames.into_iter().map(<[u8]>::to_vec).collect();
                (dirnames, dirs, basenames)
            }
            // Headers older than compressed file names list full paths; each becomes its own
            // directory-less entry (an empty directory name, the whole path as base name).
            None => match h.strings(tag::OLDFILENAMES)? {
                Some(paths) => (vec![Vec::new()], vec![0; paths.len()], paths),
                None => (Vec::new(), Vec::new(), Vec::new()),
            },
        };
    let n = basenames.len();
    let modes = per_file("modes", n, h.int16s(tag::FILEMODES)?)?;
    let sizes = match h.int64s(tag::LONGFILESIZES)? {
        Some(long) => Some(long),
        None => h
            .int32s(tag::FILESIZES)?
            .map(|v| v.into_iter().map(u64::from).collect()),
    };
    let sizes = per_file("sizes", n, sizes)?;
    let users = per_file("owners", n, h.strings(tag::FILEUSERNAME)?)?;
    let groups = per_file("groups", n, h.strings(tag::FILEGROUPNAME)?)?;
    let mtimes = per_file("modification times", n, h.int32s(tag::FILEMTIMES)?)?;
    let rdevs = per_file("device numbers", n, h.int16s(tag::FILERDEVS)?)?;
    let digests = per_file("digests", n, h.strings(tag::FILEDIGESTS)?)?;
    let links = per_file("link targets", n, h.strings(tag::FILELINKTOS)?)?;
    let flags = per_file("flag sets", n, h.int32s(tag::FILEFLAGS)?)?;
    let states = per_file("states", n, h.bytes(tag::FILESTATES)?.map(<[u8]>::to_vec))?;
    let verify = per_file("verify flag sets", n, h.int32s(tag::FILEVERIFYFLAGS)?)?;
    let mut files = Vec::with_capacity(n);
    for (i, basename) in basenames.into_iter().enumerate() {
        let digest = match digests.as_ref().map(|d| d[i]) {
            None | Some(b"") => None,
            Some(hex) => Some(decode_hex(hex, algo)?),
        };
        files.push(PackageFile {
            dir: dirs[i],
            basename: basename.to_vec(),
            mode: modes.as_ref().map_or(0, |v| v[i]),
            user: users.as_ref().map_or_else(Vec::new, |v| v[i].to_vec()),
            group: groups.as_ref().map_or_else(Vec::new, |v| v[i].to_vec()),
            size: sizes.as_ref().map_or(0, |v| v[i]),
            mtime: mtimes.as_ref().map_or(0, |v| v[i]),
            rdev: rdevs.as_ref().map_or(0, |v| v[i]),
            digest,
            link_target: links.as_ref().map_or_else(Vec::new, |v| v[i].to_vec()),
            flags: FileFlags(flags.as_ref().map_or(0, |v| v[i])),
            state: states
                .as_ref()
                .map_or(FileState::Normal, |v| FileState::from_raw(v[i] as i8)),
            verify: VerifyFlags(verify.as_ref().map_or(VerifyFlags::ALL.0, |v| v[i])),
        });
    }
    Ok((dirnames, files))
}

/// Decodes a hex digest, checking its length against the algorithm's when that is known.
fn decode_hex(hex: &[u8], algo: DigestAlgo) -> Result<Vec<u8>, Error> {
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let bad = || Error::Header {
        hnum: None,
        reason: format!(
            "file digest {:?} is not {algo:?} in hex",
            String::from_utf8_lossy(&hex[..hex.len().min(140)])
        ),
    };
    if !hex.len().is_multiple_of(2) || algo.digest_len().is_some_and(|n| n * 2 != hex.len()) {
        return Err(bad());
    }
    hex.chunks_exact(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)
}

/// A file digest algorithm, numbered as in OpenPGP (rpm's `pgpHashAlgo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgo {
    /// MD5 (1): rpm's default before 4.6, still found in old packages.
    Md5,
    /// SHA-1 (2).
    Sha1,
    /// SHA-224 (11).
    Sha224,
    /// SHA-256 (8): what packages of every current distribution use.
    Sha256,
    /// SHA-384 (9).
    Sha384,
    /// SHA-512 (10).
    Sha512,
    /// Any other number (RIPEMD-160, MD2, TIGER-192, …): recorded, not checked.
    Other(u32),
}

impl DigestAlgo {
    /// The algorithm numbered `n` by OpenPGP.
    pub fn from_pgp(n: u32) -> Self {
        match n {
            1 => Self::Md5,
            2 => Self::Sha1,
            8 => Self::Sha256,
            9 => Self::Sha384,
            10 => Self::Sha512,
            11 => Self::Sha224,
            n => Self::Other(n),
        }
    }

    /// The OpenPGP number of the algorithm.
    pub fn pgp(self) -> u32 {
        match self {
            Self::Md5 => 1,
            Self::Sha1 => 2,
            Self::Sha256 => 8,
            Self::Sha384 => 9,
            Self::Sha512 => 10,
            Self::Sha224 => 11,
            Self::Other(n) => n,
        }
    }

    /// Length of a digest in bytes, when the algorithm is known.
    pub fn digest_len(self) -> Option<usize> {
        match self {
            Self::Md5 => Some(16),
            Self::Sha1 => Some(20),
            Self::Sha224 => Some(28),
            Self::Sha256 => Some(32),
            Self::Sha384 => Some(48),
            Self::Sha512 => Some(64),
            Self::Other(_) => None,
        }
    }
}

/// A file's flags (rpm's `rpmfileAttrs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FileFlags(pub u32);

impl FileFlags {
    /// `%config`.
    pub const CONFIG: u32 = 1 << 0;
    /// `%doc`.
    pub const DOC: u32 = 1 << 1;
    /// `%config(missingok)`.
    pub const MISSINGOK: u32 = 1 << 3;
    /// `%config(noreplace)`.
    pub const NOREPLACE: u32 = 1 << 4;
    /// `%ghost`: owned but not shipped (logs, state), so never verified.
    pub const GHOST: u32 = 1 << 6;
    /// `%license`.
    pub const LICENSE: u32 = 1 << 7;
    /// `%readme`.
    pub const README: u32 = 1 << 8;
    /// `%artifact` (build ids and the like).
    pub const ARTIFACT: u32 = 1 << 12;

    /// Whether every bit of `bits` is set.
    pub fn has(self, bits: u32) -> bool {
        self.0 & bits == bits
    }
    /// `%config`.
    pub fn is_config(self) -> bool {
        self.has(Self::CONFIG)
    }
    /// `%doc`.
    pub fn is_doc(self) -> bool {
        self.has(Self::DOC)
    }
    /// `%ghost`.
    pub fn is_ghost(self) -> bool {
        self.has(Self::GHOST)
    }
}

/// What `rpm -V` checks of a file (rpm's `rpmVerifyAttrs`, from `%verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerifyFlags(pub u32);

impl VerifyFlags {
    /// The content digest (`5`).
    pub const DIGEST: u32 = 1 << 0;
    /// The size (`S`).
    pub const SIZE: u32 = 1 << 1;
    /// The symlink target (`L`).
    pub const LINKTO: u32 = 1 << 2;
    /// The owner (`U`).
    pub const USER: u32 = 1 << 3;
    /// The group (`G`).
    pub const GROUP: u32 = 1 << 4;
    /// The modification time (`T`).
    pub const MTIME: u32 = 1 << 5;
    /// The mode (`M`).
    pub const MODE: u32 = 1 << 6;
    /// The device number (`D`).
    pub const RDEV: u32 = 1 << 7;
    /// The file capabilities (`P`).
    pub const CAPS: u32 = 1 << 8;
    /// Everything (`FILEVERIFYFLAGS` absent).
    pub const ALL: Self = Self(u32::MAX);

    /// Whether `bit` is to be checked.
    pub fn checks(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
}

/// Whether a file was installed (rpm's `rpmfileState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileState {
    /// Installed: verified.
    Normal,
    /// Replaced by another package's file.
    Replaced,
    /// Not installed (`--excludedocs`, a language not installed, …): not verified.
    NotInstalled,
    /// On a network share (`%_netsharedpath`): not verified.
    NetShared,
    /// A file of another architecture's colour (multilib): not verified.
    WrongColor,
    /// Missing when installed.
    Missing,
    /// Any other value.
    Other(i8),
}

impl FileState {
    /// The state a header stores as `raw`.
    pub fn from_raw(raw: i8) -> Self {
        match raw {
            0 => Self::Normal,
            1 => Self::Replaced,
            2 => Self::NotInstalled,
            3 => Self::NetShared,
            4 => Self::WrongColor,
            -1 => Self::Missing,
            n => Self::Other(n),
        }
    }
}
