//! `rpm -V`, IO-free: given what the caller observed of a package's file in the target, the
//! findings rpm would report, flag by flag (`S` size, `M` mode, `5` digest, `D` device, `L` link
//! target, `U` user, `G` group, `T` mtime), with config files told apart.
//!
//! `%ghost` files (logs, state: owned but not shipped) are skipped by default ([`Ghosts::Skip`],
//! `rpm -V --noghost`). Plain `rpm -V` ([`Ghosts::Verify`]) checks the mode, owner and group of
//! a ghost that exists — against the placeholder mode of a file that did not exist at build
//! time, which reports most of them — and never its content.
//!
//! The caller does the IO through its own safe layer: `lstat` of the path (of the target when a
//! directory is expected and the path is a symlink, as rpm follows those), `readlink` of a
//! symlink, the digest of a regular file's content in [`Package::digest_algo`] (only when
//! [`needs_digest`] says so), and the target's `/etc/passwd` and `/etc/group` for
//! [`Accounts`]. The rules are those of rpm 4.18's `rpmfilesVerify`; capabilities (`P`) are
//! not checked.

use crate::{FileState, Package, PackageFile, VerifyFlags};

/// File type bits of a mode.
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFBLK: u32 = 0o060_000;

/// What the caller observed of a file that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// `st_mode` (type and permission bits).
    pub mode: u32,
    /// `st_uid`.
    pub uid: u32,
    /// `st_gid`.
    pub gid: u32,
    /// `st_size`.
    pub size: u64,
    /// `st_mtime`.
    pub mtime: i64,
    /// `st_rdev`.
    pub rdev: u64,
    /// The target of a symlink (`readlink`); `None` when it is not a symlink or could not be
    /// read.
    pub link_target: Option<Vec<u8>>,
    /// The digest of a regular file's content in the package's algorithm, with the number of
    /// bytes hashed; `None` when it was not computed or the file could not be read (then rpm
    /// prints `?`).
    pub digest: Option<(Vec<u8>, u64)>,
}

/// What the caller found at a package file's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// Nothing (`lstat` failed with `ENOENT` or the like).
    Missing,
    /// A file, with what was observed of it.
    Found(Observed),
}

/// The accounts of the target (its `/etc/passwd` and `/etc/group`), which rpm uses to match
/// owners by name or by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounts {
    users: Vec<(Vec<u8>, u32)>,
    groups: Vec<(Vec<u8>, u32)>,
}

impl Accounts {
    /// Parses `passwd` and `group` files (malformed lines are skipped, as libc does).
    pub fn parse(passwd: &[u8], group: &[u8]) -> Self {
        let entries = |file: &[u8]| {
            file.split(|&b| b == b'\n')
                .filter_map(|line| {
                    let mut fields = line.split(|&b| b == b':');
                    let name = fields.next()?;
                    let id = fields.nth(1)?;
                    let id = std::str::from_utf8(id).ok()?.parse().ok()?;
                    (!name.is_empty()).then(|| (name.to_vec(), id))
                })
                .collect()
        };
        Accounts {
            users: entries(passwd),
            groups: entries(group),
        }
    }

    /// The first user named `name` (`root` is always 0, as in rpm).
    fn uid(&self, name: &[u8]) -> Option<u32> {
        id_of(&self.users, name)
    }
    fn user_name(&self, uid: u32) -> Option<&[u8]> {
        name_of(&self.users, uid)
    }
    fn gid(&self, name: &[u8]) -> Option<u32> {
        id_of(&self.groups, name)
    }
    fn group_name(&self, gid: u32) -> Option<&[u8]> {
        name_of(&self.groups, gid)
    }
}

fn id_of(entries: &[(Vec<u8>, u32)], name: &[u8]) -> Option<u32> {
    if name == b"root" {
        return Some(0);
    }
    entries.iter().find(|(n, _)| n == name).map(|(_, id)| *id)
}

fn name_of(entries: &[(Vec<u8>, u32)], id: u32) -> Option<&[u8]> {
    if id == 0 {
        return Some(b"root");
    }
    entries
        .iter()
        .find(|(_, i)| *i == id)
        .map(|(n, _)| n.as_slice())
}

/// The attributes that differ, as rpm's `rpmVerifyAttrs` bits ([`VerifyFlags`] constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Mismatch(pub u32);

impl Mismatch {
    /// The digest could not be computed (printed `?` in the `5` column).
    pub const READ_FAILED: u32 = 1 << 29;
    /// The link could not be read (printed `?` in the `L` column).
    pub const READLINK_FAILED: u32 = 1 << 28;

    fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
}

/// How rpm marks a file in its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileClass {
    /// `%config` (`c`): expected to be edited by the administrator, so reported apart.
    Config,
    /// `%doc` (`d`).
    Doc,
    /// `%ghost` (`g`).
    Ghost,
    /// `%license` (`l`).
    License,
    /// `%readme` (`r`).
    Readme,
    /// Anything else: binaries, libraries, data.
    Other,
}

impl FileClass {
    /// The class rpm prints for `file`.
    pub fn of(file: &PackageFile) -> Self {
        let f = file.flags;
        use crate::FileFlags as F;
        if f.has(F::CONFIG) {
            FileClass::Config
        } else if f.has(F::DOC) {
            FileClass::Doc
        } else if f.has(F::GHOST) {
            FileClass::Ghost
        } else if f.has(F::LICENSE) {
            FileClass::License
        } else if f.has(F::README) {
            FileClass::Readme
        } else {
            FileClass::Other
        }
    }

    fn letter(self) -> char {
        match self {
            FileClass::Config => 'c',
            FileClass::Doc => 'd',
            FileClass::Ghost => 'g',
            FileClass::License => 'l',
            FileClass::Readme => 'r',
            FileClass::Other => ' ',
        }
    }
}

/// One file that does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file's path.
    pub path: Vec<u8>,
    /// How rpm marks the file; [`FileClass::Config`] findings are reported apart.
    pub class: FileClass,
    /// The file is missing.
    pub missing: bool,
    /// What differs (empty when missing).
    pub mismatch: Mismatch,
}

impl Finding {
    /// The line `rpm -V` prints for this finding (without the newline): `S.5....T.  c /path`,
    /// or `missing   c /path`.
    pub fn rpm_line(&self) -> Vec<u8> {
        let mut line = if self.missing {
            b"missing ".to_vec()
        } else {
            let m = self.mismatch;
            let read = m.has(Mismatch::READ_FAILED);
            let link = m.has(Mismatch::READLINK_FAILED);
            let col = |bit: u32, c: char, q: bool| {
                if q {
                    '?'
                } else if m.has(bit) {
                    c
                } else {
                    '.'
                }
            };
            let s: String = [
                col(VerifyFlags::SIZE, 'S', false),
                col(VerifyFlags::MODE, 'M', false),
                col(VerifyFlags::DIGEST, '5', read),
                col(VerifyFlags::RDEV, 'D', false),
                col(VerifyFlags::LINKTO, 'L', link),
                col(VerifyFlags::USER, 'U', false),
                col(VerifyFlags::GROUP, 'G', false),
                col(VerifyFlags::MTIME, 'T', false),
                col(VerifyFlags::CAPS, 'P', false),
            ]
            .into_iter()
            .collect();
            s.into_bytes()
        };
        line.push(b' ');
        line.push(b' ');
        line.push(self.class.letter() as u8);
        line.push(b' ');
        line.extend_from_slice(&self.path);
        line
    }
}

/// What rpm checks of `file` when the path's `lstat` mode is `found_mode`.
fn checks(file: &PackageFile, found_mode: u32) -> u32 {
    let mut flags = file.verify.0;
    if file.state == FileState::WrongColor {
        flags &=
            !(VerifyFlags::DIGEST | VerifyFlags::SIZE | VerifyFlags::MTIME | VerifyFlags::RDEV);
    }
    if found_mode & S_IFMT == S_IFLNK {
        flags &= !VerifyFlags::MODE;
    } else {
        flags &= !VerifyFlags::LINKTO;
    }
    if found_mode & S_IFMT != S_IFREG {
        flags &=
            !(VerifyFlags::DIGEST | VerifyFlags::SIZE | VerifyFlags::MTIME | VerifyFlags::CAPS);
    }
    if file.flags.is_ghost() {
        flags &=
            !(VerifyFlags::DIGEST | VerifyFlags::SIZE | VerifyFlags::MTIME | VerifyFlags::LINKTO);
    }
    // Capabilities are not compared (they are not read from the header).
    flags & !VerifyFlags::CAPS
}

/// Whether `%ghost` files are verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Ghosts {
    /// Skipped, as `rpm -V --noghost` does: their content is never judged and their metadata is
    /// whatever the running software made it.
    #[default]
    Skip,
    /// Mode, owner and group of those that exist are checked, as plain `rpm -V` does.
    Verify,
}

/// Whether rpm verifies `file` at all: files that were not installed (`--excludedocs`, other
/// languages, network shares) are not, nor `%ghost` files unless `ghosts` says so.
pub fn is_verified(file: &PackageFile, ghosts: Ghosts) -> bool {
    (ghosts == Ghosts::Verify || !file.flags.is_ghost())
        && !matches!(file.state, FileState::NotInstalled | FileState::NetShared)
}

/// Whether the caller must hash the content of `file`, whose `lstat` mode is `found_mode`
/// (never for a `%ghost` file).
pub fn needs_digest(file: &PackageFile, found_mode: u32) -> bool {
    is_verified(file, Ghosts::Verify)
        && file.state != FileState::Replaced
        && checks(file, found_mode) & VerifyFlags::DIGEST != 0
}

/// The finding for `file` of `package` given what was observed at its path; `None` when it
/// verifies or is not verified ([`is_verified`]).
pub fn verify_file(
    package: &Package,
    file: &PackageFile,
    observation: &Observation,
    accounts: &Accounts,
    ghosts: Ghosts,
) -> Option<Finding> {
    if !is_verified(file, ghosts) {
        return None;
    }
    let finding = |missing, mismatch| Finding {
        path: package.path(file),
        class: FileClass::of(file),
        missing,
        mismatch: Mismatch(mismatch),
    };
    let seen = match observation {
        // rpm does not report a missing `%config(missingok)` or `%ghost` file unless asked to
        // be verbose.
        Observation::Missing
            if file.flags.has(crate::FileFlags::MISSINGOK) || file.flags.is_ghost() =>
        {
            return None;
        }
        Observation::Missing => return Some(finding(true, 0)),
        Observation::Found(seen) => seen,
    };
    // A replaced file is only checked to exist.
    if file.state == FileState::Replaced {
        return None;
    }
    let flags = checks(file, seen.mode);
    let want = u32::from(file.mode);
    let mut res = 0u32;
    let mut size = seen.size;
    if flags & VerifyFlags::DIGEST != 0 {
        match (&seen.digest, &file.digest) {
            (None, _) => res |= Mismatch::READ_FAILED | VerifyFlags::DIGEST,
            (Some((d, hashed)), Some(want)) => {
                size = *hashed;
                if d != want {
                    res |= VerifyFlags::DIGEST;
                }
            }
            (Some(_), None) => res |= VerifyFlags::DIGEST,
        }
    }
    if flags & VerifyFlags::LINKTO != 0 {
        match &seen.link_target {
            None => res |= Mismatch::READLINK_FAILED | VerifyFlags::LINKTO,
            Some(t) if *t != file.link_target => res |= VerifyFlags::LINKTO,
            Some(_) => {}
        }
    }
    if flags & VerifyFlags::SIZE != 0 && size != file.size {
        res |= VerifyFlags::SIZE;
    }
    if flags & VerifyFlags::MODE != 0 {
        // The type of a %ghost file is meaningless, its permissions are not.
        let mask = if file.flags.is_ghost() { !S_IFMT } else { !0 };
        if want & mask & 0xffff != seen.mode & mask & 0xffff {
            res |= VerifyFlags::MODE;
        }
    }
    if flags & VerifyFlags::RDEV != 0 {
        let is = |m: u32, t: u32| m & S_IFMT == t;
        let kind_differs = is(want, S_IFCHR) != is(seen.mode, S_IFCHR)
            || is(want, S_IFBLK) != is(seen.mode, S_IFBLK);
        // rpm keeps device numbers in 16 bits.
        let device = is(want, S_IFCHR) || is(want, S_IFBLK);
        if kind_differs || (device && (seen.rdev & 0xffff) as u16 != file.rdev) {
            res |= VerifyFlags::RDEV;
        }
    }
    if flags & VerifyFlags::MTIME != 0 && seen.mtime != i64::from(file.mtime) {
        res |= VerifyFlags::MTIME;
    }
    if flags & VerifyFlags::USER != 0
        && !owner_matches(
            &file.user,
            seen.uid,
            accounts.user_name(seen.uid),
            accounts.uid(&file.user),
        )
    {
        res |= VerifyFlags::USER;
    }
    if flags & VerifyFlags::GROUP != 0
        && !owner_matches(
            &file.group,
            seen.gid,
            accounts.group_name(seen.gid),
            accounts.gid(&file.group),
        )
    {
        res |= VerifyFlags::GROUP;
    }
    (res != 0).then(|| finding(false, res))
}

/// rpm's owner rule: the file's owner matches by name or by id.
fn owner_matches(want: &[u8], id: u32, name_of_id: Option<&[u8]>, id_of_want: Option<u32>) -> bool {
    name_of_id == Some(want) || id_of_want == Some(id)
}

/// Every finding for `package`, given an observation of each of its files (in the order of
/// [`Package::files`]; files not verified may be given [`Observation::Missing`]).
pub fn verify_package(
    package: &Package,
    observations: &[Observation],
    accounts: &Accounts,
    ghosts: Ghosts,
) -> Vec<Finding> {
    package
        .files
        .iter()
        .zip(observations)
        .filter_map(|(f, o)| verify_file(package, f, o, accounts, ghosts))
        .collect()
}

/// Whether `mode` is a directory (rpm follows a symlink where a directory is expected).
pub fn expects_directory(file: &PackageFile) -> bool {
    u32::from(file.mode) & S_IFMT == S_IFDIR
}

#[cfg(test)]
mod tests {
    //! The rules the `rpm -Va` comparison cannot reach from a test root: unreadable files,
    //! file states, device numbers and owner matching by id.

    use super::*;
    use crate::{DigestAlgo, FileFlags};

    fn package(file: PackageFile) -> Package {
        Package {
            hnum: None,
            name: "p".into(),
            epoch: None,
            version: "1".into(),
            release: "1".into(),
            arch: None,
            vendor: None,
            install_time: None,
            digest_algo: DigestAlgo::Sha256,
            dirnames: vec![b"/etc/".to_vec()],
            files: vec![file],
        }
    }

    fn file(mode: u16) -> PackageFile {
        PackageFile {
            dir: 0,
            basename: b"f".to_vec(),
            mode,
            user: b"root".to_vec(),
            group: b"root".to_vec(),
            size: 3,
            mtime: 100,
            rdev: 0,
            digest: Some(vec![7; 32]),
            link_target: Vec::new(),
            flags: FileFlags(0),
            state: FileState::Normal,
            verify: VerifyFlags::ALL,
        }
    }

    fn seen(mode: u32) -> Observed {
        Observed {
            mode,
            uid: 0,
            gid: 0,
            size: 3,
            mtime: 100,
            rdev: 0,
            link_target: None,
            digest: Some((vec![7; 32], 3)),
        }
    }

    fn line(f: PackageFile, o: Observation, accounts: &Accounts) -> Option<String> {
        let p = package(f);
        verify_file(&p, &p.files[0], &o, accounts, Ghosts::Skip)
            .map(|f| String::from_utf8(f.rpm_line()).unwrap())
    }

    #[test]
    fn an_unreadable_file_is_marked_with_question_marks() {
        let o = Observed {
            digest: None,
            ..seen(0o100644)
        };
        let got = line(file(0o100644), Observation::Found(o), &Accounts::default());
        assert_eq!(got.as_deref(), Some("..?......    /etc/f"));
    }

    #[test]
    fn file_states_and_verify_flags_are_honoured() {
        let gone = Observation::Missing;
        let none = Accounts::default();
        for state in [FileState::NotInstalled, FileState::NetShared] {
            let f = PackageFile {
                state,
                ..file(0o100644)
            };
            assert_eq!(line(f, gone.clone(), &none), None, "{state:?}");
        }
        // A replaced file is only checked to exist.
        let replaced = PackageFile {
            state: FileState::Replaced,
            ..file(0o100644)
        };
        let changed = Observed {
            size: 99,
            ..seen(0o100600)
        };
        assert_eq!(
            line(replaced.clone(), Observation::Found(changed), &none),
            None
        );
        assert_eq!(
            line(replaced, gone.clone(), &none).as_deref(),
            Some("missing     /etc/f")
        );
        // %verify(not mode size md5 mtime).
        let relaxed = PackageFile {
            verify: VerifyFlags(
                !(VerifyFlags::MODE | VerifyFlags::SIZE | VerifyFlags::DIGEST | VerifyFlags::MTIME),
            ),
            ..file(0o100644)
        };
        let changed = Observed {
            size: 99,
            mtime: 5,
            digest: Some((vec![1; 32], 99)),
            ..seen(0o100600)
        };
        assert_eq!(line(relaxed, Observation::Found(changed), &none), None);
        // A missing %config(missingok) file is not reported; a missing %config one is.
        let missingok = PackageFile {
            flags: FileFlags(FileFlags::CONFIG | FileFlags::MISSINGOK),
            ..file(0o100644)
        };
        assert_eq!(line(missingok, gone.clone(), &none), None);
        let config = PackageFile {
            flags: FileFlags(FileFlags::CONFIG),
            ..file(0o100644)
        };
        assert_eq!(
            line(config, gone, &none).as_deref(),
            Some("missing   c /etc/f")
        );
    }

    #[test]
    fn device_numbers_and_types_are_compared() {
        let dev = PackageFile {
            rdev: 0x0103,
            digest: None,
            ..file(0o020644)
        };
        let none = Accounts::default();
        let same = Observed {
            rdev: 0x0103,
            digest: None,
            ..seen(0o020644)
        };
        assert_eq!(
            line(dev.clone(), Observation::Found(same.clone()), &none),
            None
        );
        let other = Observed {
            rdev: 0x0105,
            ..same.clone()
        };
        assert_eq!(
            line(dev.clone(), Observation::Found(other), &none).as_deref(),
            Some("...D.....    /etc/f")
        );
        let block = Observed {
            mode: 0o060644,
            ..same
        };
        assert_eq!(
            line(dev, Observation::Found(block), &none).as_deref(),
            Some(".M.D.....    /etc/f")
        );
    }

    #[test]
    fn owners_match_by_name_or_by_id() {
        let accounts = Accounts::parse(
            b"root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\nalias:x:1000:1000::/:/bin/sh\n\
              broken line\n:x:5:5::/:\n",
            b"root:x:0:\napp:x:1000:\n",
        );
        let owned = PackageFile {
            user: b"alias".to_vec(),
            group: b"app".to_vec(),
            ..file(0o100644)
        };
        // uid 1000 is named "app" first, but "alias" is also 1000: a match by id.
        let o = Observed {
            uid: 1000,
            gid: 1000,
            ..seen(0o100644)
        };
        assert_eq!(
            line(owned.clone(), Observation::Found(o.clone()), &accounts),
            None
        );
        // An owner the target does not know only matches by name, and uid 5 has none.
        let stranger = PackageFile {
            user: b"nobody-here".to_vec(),
            ..owned
        };
        let o = Observed { uid: 5, ..o };
        assert_eq!(
            line(stranger, Observation::Found(o), &accounts).as_deref(),
            Some(".....U...    /etc/f")
        );
        // root is 0 even without account files, as in rpm.
        assert_eq!(
            line(
                file(0o100644),
                Observation::Found(seen(0o100644)),
                &Accounts::default()
            ),
            None
        );
    }

    #[test]
    fn only_regular_files_are_hashed_and_never_ghosts() {
        assert!(needs_digest(&file(0o100644), 0o100644));
        assert!(!needs_digest(&file(0o100644), 0o040755));
        assert!(!needs_digest(&file(0o100644), 0o120777));
        let ghost = PackageFile {
            flags: FileFlags(FileFlags::GHOST),
            ..file(0o100644)
        };
        assert!(!needs_digest(&ghost, 0o100644));
        let unchecked = PackageFile {
            verify: VerifyFlags(!VerifyFlags::DIGEST),
            ..file(0o100644)
        };
        assert!(!needs_digest(&unchecked, 0o100644));
    }
}
