//! [`ShellScript`]: a whole fact plan as one POSIX `sh` script, for one exec session.
//!
//! The script needs a POSIX shell (dash, busybox ash, bash) and these utilities, all busybox
//! applets: `[`/`test` (with the string comparison `<`, which dash and busybox have), `printf`,
//! `stat -c`, `readlink`, `head -c`, `od`, `tr`, `find` (with `-xdev`, `-maxdepth`, `-mindepth`,
//! `-print0`), `xargs -0 -s`, `grep -F`, `date +%s`, `sha256sum` and `md5sum` (and, for RPM and
//! apk integrity, `<algorithm>sum` of each digest asked: `sha1sum`, `sha512sum`, …). Walks (the
//! `files:` resource) and RPM and apk integrity can do without `find` and `xargs` (UBI-minimal
//! has no findutils): `sh` then walks the tree itself (globs, `[ -L ]`, `[ -d ]`, `stat -c %d`
//! for `-xdev`) and hands the same entries to the same handler, so the facts are the same.
//!
//! Output framing (stdout), per request *i* of the plan (in plan order):
//!
//! ```text
//! @B i                      begin
//! @M <mode hex>:<uid>:<gid>:<size>   Stat: `stat -c %f:%u:%g:%s`
//! @H <hex digest>           Sha256 / Md5
//! @D 0|1                    Walk: an entry exists below max_depth (without find: 0, and a
//!                           `D` record among the entries says it)
//!  2f 65 74 63 …            payload: bytes as `od -An -v -tx1` prints them
//! @E i <status>             end: `ok`, or an error code
//! ```
//!
//! A [`FactRequest::PackageIntegrity`] frame carries no payload of its own but the answers to
//! the primitive requests [`crate::integrity::verify`] asks for, each in a sub-frame (its end
//! is always `ok`; the answer's error, if any, is the List sub-answer's):
//!
//! ```text
//! @S L                      the List of the lists directory: payload as a List's
//! @S N                      the lists to read: payload `<name>/` each (a name has no `/`)
//! @S R                      the Read of the next list N names: payload its content
//! @S 5                      Md5 answers: payload records `<hex digest or error code> <path>\n`
//! @F <status>               end of the sub-frame: `ok`, or the error code of L or R
//! ```
//!
//! A [`FactRequest::ManagedIntegrity`] frame (RPM, apk) holds, when a database file of its
//! manager exists, one `@S W` sub-frame per prefix: the walk of that prefix, every entry with its
//! `lstat`, link text and digests (records of `managed_handler`), ended by `@F ok` or the
//! prefix's error code; the parser (`manifest.rs`) answers the verification's `Stat` and `Hash`
//! requests from it and its database reads from the plan's own `Read` answers.
//!
//! The parser keys each sub-answer by the primitive request it answers (the List, the Read of
//! `<lists directory>/<name>`, the Md5 of `<path>`, with the bounds of `integrity`) and runs
//! `verify` on them: a request the script did not answer is "not gathered", never a pass. A path
//! in an Md5 record comes from one line of a list, so it holds no newline. (One `N` instead of
//! a name in each `R` saves two processes per list: only `od` can write a name.)
//!
//! Every byte that comes from the target (file contents, names, link texts) reaches stdout only
//! through `od` as hex, so nothing in the target can forge a frame line. Names are never parsed
//! from line-oriented output: List records are `<kind>/<name>/` (a name cannot contain `/`);
//! walk records are NUL-terminated (a path cannot contain NUL), and newlines and NULs are swapped
//! by `tr` so that `head -n` can bound them by count.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::SourceError;
use super::local::start_name;
use crate::{
    FactPlan, FactRequest, Facts, HashAlgo, IntegritySpec, ManagedSpec, WalkQuery, integrity,
    managed,
};

/// A fact plan rendered as one POSIX `sh` script, and the parser of its output.
///
/// **Where it runs.** Standard mode: *inside* the target container (one exec session); the
/// container's own root is then the root, so the kernel itself keeps every path inside it, and
/// [`FactRequest::Proc`] reads `/proc/<pid>/…` with the pid given here (by default 1, the
/// container's main process). With [`ShellScript::with_root_prefix`], it runs elsewhere (a debug
/// container) and reads the target through a prefix such as `/proc/<pid>/root`.
///
/// **Containment.** The script resolves every path itself, component by component (like the
/// kernel's `RESOLVE_IN_ROOT`): absolute link targets restart at the root (the prefix), `..`
/// never climbs above it, more than 40 links is a loop, and a symlink inside `/proc` is refused
/// as an escape (magic links). Checks before reading: FIFOs, sockets and devices are never read
/// (`[ -p ]`, `[ -S ]`, `[ -c ]`, `[ -b ]`), reads are bounded (`head -c`), walks are bounded
/// (`find -maxdepth`, `head -n`, a deadline checked by the walk) and never follow symlinks.
///
/// **What `sh` cannot do.** It has no file descriptors for directories and no `O_NONBLOCK`, so
/// every check is separate from the use that follows: a target that swaps a checked component for
/// a symlink, or a checked file for a FIFO, between the two can make a read block, open a device,
/// or — through a prefix — follow an absolute symlink to the *scanner's* own files. In standard
/// mode the worst is a blocked or misleading read of the target's own files. Through a prefix it
/// is an escape, so **a prefix is for trusted targets only**: distroless targets are scanned by
/// the agent ([`LocalRoot::process`](crate::LocalRoot::process)), whose checks are atomic.
///
/// Other differences from [`LocalRoot`](crate::LocalRoot), all in hostile or racy corners: a
/// directory readable but not searchable lists no entries; the entries a truncated List or Walk
/// returns are a different subset (`find` runs in directory order; both report the bound); the
/// Sha256/Md5 size bound is checked once before hashing; reading all names of a directory is only
/// bounded by the directory (globbing); error texts of [`FactError::Io`](crate::FactError::Io)
/// differ.
///
/// [`FactRequest::PackageIntegrity`] is answered in the same run: the script selects the lists
/// (by name, in the byte order of its sorted globs) and the files to hash as
/// [`crate::integrity`] does, and the parser hands its answers to [`integrity::verify`] keyed
/// by their exact primitive requests. Where the two selections could differ — a NUL byte in a
/// list, which `sh` cannot hold, makes the script hash one more file — a file may be reported
/// not gathered (unverified), never passed. A file listed twice is hashed twice (LocalRoot
/// hashes each inode once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellScript {
    /// Prepended to every target path (no trailing `/`); empty in standard mode.
    prefix: Vec<u8>,
    /// The target process for [`FactRequest::Proc`], if any.
    pid: Option<u32>,
}

impl Default for ShellScript {
    fn default() -> Self {
        Self::in_container()
    }
}

/// The largest number handed to `head`, `find` or shell arithmetic (they work with signed 64-bit
/// numbers at best).
const SH_MAX: u64 = 1 << 62;

impl ShellScript {
    /// Standard mode: the script runs inside the target container, whose main process is PID 1.
    pub fn in_container() -> Self {
        Self {
            prefix: Vec::new(),
            pid: Some(1),
        }
    }

    /// Reads the target through `prefix` (e.g. `/proc/<pid>/root` in a debug container sharing
    /// the target's PID namespace). `None` unless `prefix` is absolute. Symlink resolution
    /// through a prefix is only as safe as `sh` can make it: see the type's documentation.
    pub fn with_root_prefix(mut self, prefix: impl AsRef<Path>) -> Option<Self> {
        let bytes = prefix.as_ref().as_os_str().as_bytes();
        if bytes.first() != Some(&b'/') || bytes.contains(&0) {
            return None;
        }
        let mut bytes = bytes.to_vec();
        while bytes.last() == Some(&b'/') {
            bytes.pop();
        }
        self.prefix = bytes;
        Some(self)
    }

    /// The target process for [`FactRequest::Proc`] (`None`: a root filesystem only, answered
    /// with [`FactError::NoProcess`](crate::FactError::NoProcess)).
    pub fn with_pid(mut self, pid: Option<u32>) -> Self {
        self.pid = pid;
        self
    }

    /// The script for `plan`: plain ASCII (every target path is octal-escaped), to be run by
    /// `sh -c SCRIPT` (mind the kernel's 128 KiB limit on one argument for very large plans) or
    /// fed to `sh` on standard input.
    pub fn render(&self, plan: &FactPlan) -> String {
        let mut s = String::from(PREAMBLE);
        s.push_str(&format!(
            "kh_P={}\nkh_P=${{kh_P%.}}\n",
            sh_bytes(&self.prefix)
        ));
        for (i, request) in plan.requests().enumerate() {
            render_request(&mut s, i, request, self.pid);
        }
        s
    }

    /// The facts in a script's stdout. Every request of `plan` gets an answer: a request the
    /// output does not answer (the script was cut short) or answers in a malformed way gets
    /// [`FactError::Io`](crate::FactError::Io). `elapsed` is left zero for the caller to set.
    pub fn parse(plan: &FactPlan, stdout: &[u8]) -> Facts {
        super::frame::parse(plan, stdout)
    }

    /// Renders the script for `plan`, runs it as `SHELL -c SCRIPT` with the program (and
    /// environment) of `shell` (e.g. `Command::new("dash")`, or `busybox` with the argument
    /// `sh`), and parses its stdout. For tests and local use; stdin and stderr are null.
    pub fn run_local(&self, plan: &FactPlan, mut shell: Command) -> Result<Facts, SourceError> {
        let started = Instant::now();
        let name = shell.get_program().to_string_lossy().into_owned();
        let output = shell
            .arg("-c")
            .arg(self.render(plan))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|source| SourceError::Spawn {
                shell: name,
                source,
            })?;
        let mut facts = Self::parse(plan, &output.stdout);
        facts.elapsed = started.elapsed();
        Ok(facts)
    }
}

/// `$(printf '…'; echo .)`: the exact bytes, without anything in them reaching the shell's
/// parser (everything but `[A-Za-z0-9/._-]` is an octal escape). The trailing `.` keeps trailing
/// newlines from being stripped by the command substitution; the caller removes it.
fn sh_bytes(bytes: &[u8]) -> String {
    format!("$(printf '{}'; echo .)", printf_format(bytes))
}

/// `bytes` as a `printf` format that prints exactly them.
fn printf_format(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-') {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\{b:03o}"));
        }
    }
    s
}

/// `n + 1` for a read of `n` bytes (the extra byte tells whether there was more), clamped.
fn plus_one(n: u64) -> u64 {
    n.min(SH_MAX) + 1
}

fn render_request(s: &mut String, i: usize, request: &FactRequest, pid: Option<u32>) {
    let set_path = |s: &mut String, path: &[u8]| {
        s.push_str(&format!("kh_a={}\nkh_a=${{kh_a%.}}\n", sh_bytes(path)));
    };
    match request {
        FactRequest::PackageIntegrity(spec) => render_integrity(s, i, spec),
        FactRequest::ReadDir {
            path,
            max_files,
            max_bytes,
        } => {
            set_path(s, path.as_bytes());
            s.push_str(&format!(
                "kh_readdir {i} \"$kh_a\" {} {}\n",
                (*max_files).min(SH_MAX),
                plus_one(*max_bytes)
            ));
        }
        FactRequest::Stat(path) => {
            set_path(s, path.as_bytes());
            s.push_str(&format!("kh_stat {i} \"$kh_a\"\n"));
        }
        FactRequest::Read { path, max_bytes } => {
            set_path(s, path.as_bytes());
            s.push_str(&format!("kh_read {i} \"$kh_a\" {}\n", plus_one(*max_bytes)));
        }
        FactRequest::Sha256 { path, max_bytes } => {
            set_path(s, path.as_bytes());
            let max = (*max_bytes).min(SH_MAX);
            s.push_str(&format!("kh_sum {i} \"$kh_a\" {max} sha256sum\n"));
        }
        FactRequest::Md5 { path, max_bytes } => {
            set_path(s, path.as_bytes());
            let max = (*max_bytes).min(SH_MAX);
            s.push_str(&format!("kh_sum {i} \"$kh_a\" {max} md5sum\n"));
        }
        FactRequest::Hash {
            path,
            algo,
            max_bytes,
        } => {
            set_path(s, path.as_bytes());
            let max = (*max_bytes).min(SH_MAX);
            s.push_str(&format!("kh_sum {i} \"$kh_a\" {max} {}sum\n", algo.name()));
        }
        FactRequest::ManagedIntegrity(spec) => render_managed(s, i, spec),
        FactRequest::List { path, max_entries } => {
            set_path(s, path.as_bytes());
            let max = (*max_entries).min(SH_MAX);
            s.push_str(&format!("kh_list {i} \"$kh_a\" {max}\n"));
        }
        FactRequest::Walk {
            root,
            query,
            limits,
        } => {
            set_path(s, root.as_bytes());
            let handler = walk_handler(query, start_name(root));
            debug_assert!(!handler.contains('\''), "the handler is single-quoted");
            // Each examined entry writes at most three records (entry, link text, skip): this
            // many lines are enough to see max_entries + 1 entries.
            let lines = limits.max_entries.min(SH_MAX / 4).saturating_add(1) * 3 + 1;
            let secs = limits.max_millis.div_ceil(1000).min(SH_MAX);
            let xdev = if limits.same_filesystem {
                "-xdev"
            } else {
                "''"
            };
            // xargs batches: 64 KiB of paths besides the handler itself, far below the kernel's
            // limit whatever the environment holds.
            let batch = handler.len() + 65_536;
            s.push_str(&format!(
                "kh_h='{handler}'\nkh_walk {i} \"$kh_a\" {} {lines} {secs} {xdev} \"$kh_h\" {batch}\n",
                limits.max_depth,
            ));
        }
        FactRequest::Proc { file, max_bytes } => match pid {
            Some(pid) => {
                let path = format!("/proc/{pid}/{}", file.relative_path());
                s.push_str(&format!("kh_proc {i} {path} {}\n", plus_one(*max_bytes)));
            }
            None => s.push_str(&format!("kh_b {i}; kh_e {i} NoProcess\n")),
        },
    }
}

/// A [`FactRequest::PackageIntegrity`]: the prefixes as variables, `kh_gwant PATH` (whether a
/// path starts with one of them: quoted in the patterns, so their bytes match literally), then
/// `kh_integ` with the bounds of [`crate::integrity`].
fn render_integrity(s: &mut String, i: usize, spec: &IntegritySpec) {
    let mut patterns = Vec::new();
    for (n, prefix) in spec.prefixes.iter().enumerate() {
        s.push_str(&format!(
            "kh_gq{n}={}\nkh_gq{n}=${{kh_gq{n}%.}}\n",
            sh_bytes(prefix.as_bytes())
        ));
        patterns.push(format!("\"$kh_gq{n}\"*"));
    }
    if patterns.is_empty() {
        s.push_str("kh_gwant() { return 1; }\n");
    } else {
        s.push_str(&format!(
            "kh_gwant() {{ case $1 in {}) return 0;; esac; return 1; }}\n",
            patterns.join("|")
        ));
    }
    s.push_str(&format!(
        "kh_gdir={}\nkh_gdir=${{kh_gdir%.}}\n",
        sh_bytes(spec.lists.as_bytes())
    ));
    s.push_str(&format!(
        "kh_integ {i} {} {} \"$kh_gdir\" {} {} {}\n",
        spec.max_packages.min(SH_MAX),
        spec.max_files.min(SH_MAX),
        integrity::LIST_MAX.min(SH_MAX),
        integrity::MD5SUMS_MAX.min(SH_MAX - 1),
        integrity::HASH_MAX.min(SH_MAX),
    ));
}

/// A [`FactRequest::ManagedIntegrity`]: when one of the database files exists, one walk per
/// prefix (`kh_mwalk`) recording every entry's `lstat`, link text and digests (see
/// [`managed_handler`]); the parser answers the primitive requests of
/// [`crate::managed::verify`] from it, and the database reads from the plan's own reads.
fn render_managed(s: &mut String, i: usize, spec: &ManagedSpec) {
    let limits = managed::SCRIPT_WALK;
    let handler = managed_handler(&spec.algorithms);
    debug_assert!(!handler.contains('\''), "the handler is single-quoted");
    let mut have = Vec::new();
    for (n, r) in managed::first_batch(spec.manager).iter().enumerate() {
        // The database files themselves (not their logs, not the accounts) decide.
        let FactRequest::Read { path, .. } = r else {
            continue;
        };
        let p = path.as_bytes();
        if p.ends_with(b"-wal") || p == managed::PASSWD.as_bytes() || p == managed::GROUP.as_bytes()
        {
            continue;
        }
        s.push_str(&format!(
            "kh_mdb{n}={}\nkh_mdb{n}=${{kh_mdb{n}%.}}\n",
            sh_bytes(p)
        ));
        have.push(format!("kh_mhave \"$kh_mdb{n}\""));
    }
    s.push_str(&format!(
        "kh_h='{handler}'\nkh_mseen=\nkh_b {i}\nif {}; then :\n",
        have.join(" || ")
    ));
    let algos = spec.algorithms.len() as u64;
    let lines = limits
        .max_entries
        .min(SH_MAX / 8)
        .saturating_add(1)
        .saturating_mul(3 + algos)
        + 2;
    let secs = limits.max_millis.div_ceil(1000).min(SH_MAX);
    let batch = handler.len() + 65_536;
    for prefix in &spec.prefixes {
        set_path_str(s, prefix.as_bytes());
        s.push_str(&format!(
            "kh_mwalk \"$kh_a\" {} {lines} {secs} \"$kh_h\" {batch}\n",
            limits.max_depth
        ));
    }
    s.push_str(&format!("fi\nkh_e {i} ok\n"));
}

/// `kh_a=<path>` (as `render_request`'s `set_path`).
fn set_path_str(s: &mut String, path: &[u8]) {
    s.push_str(&format!("kh_a={}\nkh_a=${{kh_a%.}}\n", sh_bytes(path)));
}

/// The `sh -c` program of a [`FactRequest::ManagedIntegrity`] walk: the walk handler's batch
/// `stat` (with the device, `%d`, so that the parser knows where `-xdev` stopped), then for each
/// entry `M<mode>:<uid>:<gid>:<size>:<dev>:<rel>`, `L<link text>` for a symlink, and
/// `S<code>:<rel>` for a directory it may not list. Then the batch's regular files (by that
/// `stat`: nothing else is ever handed to a hashing tool) are hashed by one process per
/// algorithm, each output line checked against its file's own name (a line out of step, or a
/// batch holding a name with a newline, which could forge a line, makes that file hashed on its
/// own): `F<rel>` followed by `H<algo>:<hex digest>` or `X<algo>:<error code>` per algorithm.
fn managed_handler(algorithms: &[HashAlgo]) -> String {
    let mut h = String::from(HANDLER_HEAD);
    h.push_str(
        &HANDLER_LOOP
            .replace("%f:%u:%g:%s:%n", "%f:%u:%g:%s:%d:%n")
            .replace(
                "for kh_f do\n",
                "kh_i=0 kh_fl=\nfor kh_f do\nkh_i=$((kh_i + 1))\n",
            ),
    );
    h.push_str(&HANDLER_ENTRY.replace("\"%f:%u:%g:%s\" --", "\"%f:%u:%g:%s:%d\" --"));
    let algos: Vec<String> = algorithms
        .iter()
        .map(|a| format!("{}:{}", a.name(), a.digest_len() * 2))
        .collect();
    h.push_str(&format!(
        r#"kh_out "M%s:%s\000" "$kh_meta" "$kh_r"
if [ $kh_k = l ]; then kh_t=$(readlink -- "$kh_f" 2>/dev/null; echo .); kh_t=${{kh_t%.}}; kh_t=${{kh_t%"$kh_nl"}}; kh_out "L%s\000" "$kh_t"; fi
if [ $kh_k = f ]; then
kh_z=${{kh_meta#*:*:*:}}; kh_z=${{kh_z%%:*}}
if [ "$kh_z" -gt {max} ]; then kh_out "F%s\000" "$kh_r"; for kh_al in {algos}; do kh_out "X%s:TooLarge\000" ${{kh_al%:*}}; done
elif [ ! -r "$kh_f" ] || ! {{ true <"$kh_f"; }} 2>/dev/null; then kh_out "F%s\000" "$kh_r"; for kh_al in {algos}; do kh_out "X%s:PermissionDenied\000" ${{kh_al%:*}}; done
else kh_fl="$kh_fl \"\${{$kh_i}}\""; fi
fi
if [ $kh_k = d ] && {{ [ ! -r "$kh_f" ] || [ ! -x "$kh_f" ]; }}; then kh_out "SPermissionDenied:%s\000" "$kh_r"; fi
done
{hash}}}
"#,
        algos = algos.join(" "),
        max = integrity::HASH_MAX.min(SH_MAX),
        hash = if algos.is_empty() {
            String::new()
        } else {
            format!(
                r#"[ -n "$kh_fl" ] || exit 0
eval "set -- $kh_fl"
for kh_al in {algos}; do
kh_n=${{kh_al#*:}} kh_al=${{kh_al%:*}}
if ! command -v ${{kh_al}}sum >/dev/null 2>&1; then
for kh_f do kh_out "F%s\000X%s:Io:%ssum-not-available\000" "${{kh_f#"$kh_s"}}" $kh_al $kh_al; done
continue
fi
case "$*" in *"$kh_nl"*) kh_hs=;; *) kh_hs=$(${{kh_al}}sum -- "$@" 2>/dev/null; echo .); kh_hs=${{kh_hs%.}};; esac
for kh_f do
kh_x=
if [ -n "$kh_hs" ]; then
kh_l=${{kh_hs%%"$kh_nl"*}}
case $kh_l in *"  $kh_f") kh_x=${{kh_l%"  $kh_f"}};; esac
case $kh_x in *[!0-9a-f]*) kh_x=;; esac
if [ -n "$kh_x" ] && [ ${{#kh_x}} -eq $kh_n ] && [ "x$kh_l" = "x$kh_x  $kh_f" ]; then kh_hs=${{kh_hs#*"$kh_nl"}}; else kh_x=; fi
fi
if [ -z "$kh_x" ] && kh_x=$(${{kh_al}}sum <"$kh_f" 2>/dev/null); then kh_x=${{kh_x%% *}}; fi
case $kh_x in *[!0-9a-f]*) kh_x=;; esac
if [ -n "$kh_x" ] && [ ${{#kh_x}} -eq $kh_n ]; then kh_out "F%s\000H%s:%s\000" "${{kh_f#"$kh_s"}}" $kh_al "$kh_x"
else kh_out "F%s\000X%s:Io:read-failed\000" "${{kh_f#"$kh_s"}}" $kh_al; fi
done
done
"#,
                algos = algos.join(" ")
            )
        },
    ));
    h
}

/// The `sh -c` program `xargs` runs on each batch of walked paths: arguments are the walk's start,
/// the deadline (epoch seconds, or `-`), then the paths. One `stat` per batch gives every path's
/// mode, owner and size (each line checked against its path, so a file that vanished cannot shift
/// metadata onto another name). It writes NUL-terminated records: `.` (examined),
/// `M<mode>:<uid>:<gid>:<size>:<rel>` (examined, matching), `L<link text>` (of the match before),
/// `S<code>:<rel>` (skipped) and `T` (deadline passed). Exit status 255 stops `xargs` (deadline,
/// or nobody reads any more).
fn walk_handler(query: &WalkQuery, start_name: &[u8]) -> String {
    let mut h = String::from(HANDLER_HEAD);
    h.push_str(&format!(
        "kh_rn=$(printf \"{}\"; echo .); kh_rn=${{kh_rn%.}}\n",
        printf_format(start_name)
    ));
    let mut per_entry_deadline = false;
    let bit = |mask: u32| format!("[ $((kh_mode & {mask})) -ne 0 ]");
    let test = match query {
        WalkQuery::Setuid => format!("if [ $kh_k = f ] && {}; then kh_m=1; fi\n", bit(0o4000)),
        WalkQuery::Setgid => format!("if [ $kh_k = f ] && {}; then kh_m=1; fi\n", bit(0o2000)),
        WalkQuery::WorldWritable => format!(
            "if {} && {{ [ $kh_k = f ] || {{ [ $kh_k = d ] && ! {}; }}; }}; then kh_m=1; fi\n",
            bit(0o002),
            bit(0o1000)
        ),
        WalkQuery::Named(names) => {
            let mut tests = Vec::new();
            for (n, name) in names.iter().enumerate() {
                h.push_str(&format!(
                    "kh_q{n}=$(printf \"{}\"; echo .); kh_q{n}=${{kh_q{n}%.}}\n",
                    printf_format(name)
                ));
                tests.push(format!("[ \"x$kh_n\" = \"x$kh_q{n}\" ]"));
            }
            if tests.is_empty() {
                String::new()
            } else {
                format!("if {}; then kh_m=1; fi\n", tests.join(" || "))
            }
        }
        WalkQuery::Contains {
            pattern,
            max_bytes,
            max_file_size,
        } => {
            per_entry_deadline = true;
            let hex: String = pattern.iter().map(|b| format!(" {b:02x}")).collect();
            let found = if pattern.is_empty() {
                "true".to_string()
            } else {
                format!(
                    "head -c {} -- \"$kh_f\" 2>/dev/null | od -An -v -tx1 | tr -d \"$kh_nl\" \
                     | grep -q -F -e \"{hex}\"",
                    (*max_bytes).min(SH_MAX)
                )
            };
            format!(
                "if [ $kh_k = f ]; then\n\
                 if [ \"${{kh_meta##*:}}\" -gt {} ]; then kh_skip=TooLarge\n\
                 elif [ ! -r \"$kh_f\" ] || ! {{ true <\"$kh_f\"; }} 2>/dev/null; then kh_skip=PermissionDenied\n\
                 elif {found}; then kh_m=1; fi\nfi\n",
                (*max_file_size).min(SH_MAX)
            )
        }
    };
    h.push_str(HANDLER_LOOP);
    if per_entry_deadline {
        h.push_str("if kh_late; then kh_stop; fi\n");
    }
    h.push_str(HANDLER_ENTRY);
    h.push_str(&test);
    h.push_str(HANDLER_TAIL);
    h
}

/// Start of the walk handler (inside single quotes: no `'` anywhere in it).
const HANDLER_HEAD: &str = r#"trap "" PIPE
kh_s=$1 kh_dl=$2
shift 2
kh_nl="
"
kh_out() { printf "$@" 2>/dev/null || exit 255; }
kh_late() { [ "$kh_dl" != - ] && [ "$(date +%s)" -gt "$kh_dl" ]; }
kh_stop() { kh_out "T\000"; exit 255; }
if kh_late; then kh_stop; fi
"#;

/// The loop over the batch, reading `stat`'s line(s) for each path.
const HANDLER_LOOP: &str = r#"stat -c "%f:%u:%g:%s:%n" -- "$@" 2>/dev/null | {
kh_slow=
for kh_f do
"#;

/// Per path: metadata (from the batch's `stat`, or its own when that is out of step), relative
/// name and kind.
const HANDLER_ENTRY: &str = r#"kh_meta=
if [ -z "$kh_slow" ]; then
IFS= read -r kh_l || kh_l=
kh_e=$kh_f
while :; do case $kh_e in *"$kh_nl"*) kh_e=${kh_e#*"$kh_nl"}; IFS= read -r kh_x || break; kh_l=$kh_l$kh_nl$kh_x;; *) break;; esac; done
case $kh_l in *":$kh_f") kh_meta=${kh_l%":$kh_f"};; *) kh_slow=1;; esac
fi
if [ -z "$kh_meta" ]; then kh_meta=$(stat -c "%f:%u:%g:%s" -- "$kh_f" 2>/dev/null); fi
if [ "$kh_f" = "$kh_s" ]; then kh_r=; kh_n=$kh_rn; else kh_r=${kh_f#"$kh_s"}; kh_n=${kh_f##*/}; fi
case $kh_meta in [0-9a-f]*:*[0-9]:*[0-9]:*[0-9]) ;; *) kh_out ".\000SNotFound:%s\000" "$kh_r"; continue;; esac
case ${kh_meta%%:*} in *[!0-9a-f]*) kh_out ".\000SNotFound:%s\000" "$kh_r"; continue;; esac
kh_mode=$((0x${kh_meta%%:*}))
case $((kh_mode & 61440)) in
32768) kh_k=f;; 16384) kh_k=d;; 40960) kh_k=l;; 4096) kh_k=p;; 49152) kh_k=s;; 8192) kh_k=c;; 24576) kh_k=b;; *) kh_k=u;;
esac
kh_m=0 kh_skip=
"#;

/// Per path, after the query's test set `kh_m`/`kh_skip`: its records.
const HANDLER_TAIL: &str = r#"if [ "$kh_m" = 1 ]; then
kh_out "M%s:%s\000" "$kh_meta" "$kh_r"
if [ $kh_k = l ]; then kh_t=$(readlink -- "$kh_f" 2>/dev/null; echo .); kh_t=${kh_t%.}; kh_t=${kh_t%"$kh_nl"}; kh_out "L%s\000" "$kh_t"; fi
else kh_out ".\000"; fi
if [ -n "$kh_skip" ]; then kh_out "S%s:%s\000" "$kh_skip" "$kh_r"; fi
if [ $kh_k = d ] && { [ ! -r "$kh_f" ] || [ ! -x "$kh_f" ]; }; then kh_out "SPermissionDenied:%s\000" "$kh_r"; fi
done
}
"#;

/// The functions every script starts with.
const PREAMBLE: &str = r#"# Keyhole fact-gathering script (generated). POSIX sh: dash, busybox ash, bash.
# Every byte read from the target leaves this script hex-encoded by od, so nothing in the
# target can forge the framing of stdout. See ShellScript in keyhole-engine.
export LC_ALL=C
set -f
exec 4>&1
kh_nl='
'
kh_b() { printf '@B %s\n' "$1"; }
kh_e() { printf '@E %s %s\n' "$1" "$2"; }
kh_hex() { od -An -v -tx1; }

# kh_resolve PATH FOLLOW: resolves PATH inside the root (the prefix kh_P) component by component,
# as RESOLVE_IN_ROOT does; the last component is followed if FOLLOW is 1 or a slash follows it.
# Sets kh_R (the path to use) or kh_E (an error code, and returns 1).
kh_resolve() {
  kh_E= kh_n=0 kh_cur= kh_rest=$1 kh_fl=$2
  while :; do
    while :; do case $kh_rest in /*) kh_rest=${kh_rest#/};; *) break;; esac; done
    [ -n "$kh_rest" ] || break
    case $kh_rest in
      */*) kh_c=${kh_rest%%/*}; kh_rest=${kh_rest#*/}; kh_sl=1;;
      *) kh_c=$kh_rest; kh_rest=; kh_sl=0;;
    esac
    while :; do case $kh_rest in /*) kh_rest=${kh_rest#/};; *) break;; esac; done
    if [ -z "$kh_rest" ]; then kh_last=1; else kh_last=0; fi
    case $kh_c in
      .) continue;;
      ..) kh_cur=${kh_cur%/*}; continue;;
    esac
    if [ ! -x "$kh_P$kh_cur/" ]; then kh_E=PermissionDenied; return 1; fi
    kh_x=$kh_P$kh_cur/$kh_c
    if [ -L "$kh_x" ] && { [ "$kh_last" = 0 ] || [ "$kh_sl" = 1 ] || [ "$kh_fl" = 1 ]; }; then
      kh_n=$((kh_n + 1))
      if [ "$kh_n" -gt 40 ]; then kh_E=Loop; return 1; fi
      # A symlink in procfs may be a magic link (/proc/PID/root, /proc/self/fd/N).
      case $kh_cur in /proc|/proc/*) kh_E=Escape; return 1;; esac
      kh_t=$(readlink -- "$kh_x" 2>/dev/null; echo .)
      kh_t=${kh_t%.}
      kh_t=${kh_t%"$kh_nl"}
      if [ -z "$kh_t" ]; then kh_E=Io:readlink-failed; return 1; fi
      if [ "$kh_last" = 0 ]; then kh_rest=$kh_t/$kh_rest
      elif [ "$kh_sl" = 1 ]; then kh_rest=$kh_t/
      else kh_rest=$kh_t; fi
      case $kh_t in /*) kh_cur=;; esac
      continue
    fi
    if [ "$kh_last" = 0 ] || [ "$kh_sl" = 1 ]; then
      if [ ! -d "$kh_x" ]; then
        if [ -e "$kh_x" ] || [ -L "$kh_x" ]; then kh_E=WrongKind:directory; else kh_E=NotFound; fi
        return 1
      fi
    fi
    kh_cur=$kh_cur/$kh_c
    [ "$kh_last" = 0 ] || break
  done
  # Nothing under /proc is the image's (and it shows the reader's own process): as LocalRoot.
  case $kh_cur in /proc|/proc/*) kh_E=Escape; return 1;; esac
  kh_R=$kh_P${kh_cur:-/}
}

# kh_regular PATH: 0 if PATH is a regular file this shell may read; else sets kh_E.
kh_regular() {
  if [ -L "$1" ]; then kh_E=Io:changed-during-the-scan
  elif [ -d "$1" ]; then kh_E=WrongKind:regular-file
  elif [ -p "$1" ]; then kh_E=Special:Fifo
  elif [ -S "$1" ]; then kh_E=Special:Socket
  elif [ -c "$1" ]; then kh_E=Special:CharDevice
  elif [ -b "$1" ]; then kh_E=Special:BlockDevice
  elif [ ! -f "$1" ]; then kh_E=NotFound
  elif [ ! -r "$1" ]; then kh_E=PermissionDenied
  elif ! { true <"$1"; } 2>/dev/null; then kh_E=PermissionDenied
  else return 0; fi
  return 1
}

# kh_cat PATH COUNT: the first COUNT bytes of PATH as hex on stdout; 0 if head succeeded.
# (head's status comes back on fd 5 while od writes straight to the real stdout, fd 4.)
kh_cat() {
  kh_rc=$( { { head -c "$2" -- "$1" 2>/dev/null; echo $? >&5; } | kh_hex >&4; } 5>&1 )
  [ "$kh_rc" = 0 ]
}

kh_stat() {
  kh_b "$1"
  if ! kh_resolve "$2" 0; then kh_e "$1" "$kh_E"; return; fi
  if [ ! -L "$kh_R" ] && [ ! -e "$kh_R" ]; then kh_e "$1" NotFound; return; fi
  if ! kh_m=$(stat -c '%f:%u:%g:%s' -- "$kh_R" 2>/dev/null); then kh_e "$1" Io:stat-failed; return; fi
  printf '@M %s\n' "$kh_m"
  if [ -L "$kh_R" ]; then readlink -- "$kh_R" 2>/dev/null | kh_hex; fi
  kh_e "$1" ok
}

kh_read() {
  kh_b "$1"
  if kh_resolve "$2" 1 && kh_regular "$kh_R"; then
    if kh_cat "$kh_R" "$3"; then kh_E=ok; else kh_E=Io:read-failed; fi
  fi
  kh_e "$1" "$kh_E"
}

# kh_readdir INDEX PATH MAXFILES COUNT: the first MAXFILES regular files directly in PATH by
# name (not the hidden ones), each read up to COUNT bytes, as sub-frames: N (their names as
# "name/" each; status Entries when there were more) then one R per name, in that order.
kh_readdir() {
  kh_b "$1"
  if ! { kh_resolve "$2" 1 && kh_isdir; }; then kh_e "$1" "$kh_E"; return; fi
  if [ ! -r "$kh_R" ]; then kh_e "$1" PermissionDenied; return; fi
  kh_rd=${kh_R%/} kh_rs= kh_rn=0 kh_rb=ok
  set +f
  for kh_rp in "$kh_rd"/*; do
    if [ ! -L "$kh_rp" ] && [ -f "$kh_rp" ]; then
      kh_rn=$((kh_rn + 1))
      if [ "$kh_rn" -gt "$3" ]; then kh_rb=Entries; break; fi
      kh_rs=$kh_rs${kh_rp##*/}/
    fi
  done
  set -f
  printf '@S N\n'
  printf '%s' "$kh_rs" | kh_hex
  printf '@F %s\n' "$kh_rb"
  IFS=/
  for kh_rp in $kh_rs; do
    unset IFS
    printf '@S R\n'
    if kh_regular "$kh_rd/$kh_rp"; then
      if kh_cat "$kh_rd/$kh_rp" "$4"; then kh_E=ok; else kh_E=Io:read-failed; fi
    fi
    printf '@F %s\n' "$kh_E"
  done
  unset IFS
  kh_e "$1" ok
}

# kh_proc INDEX PATH COUNT: a kernel file of the target process (not inside the target root).
kh_proc() {
  kh_b "$1"
  if kh_regular "$2"; then
    if kh_cat "$2" "$3"; then kh_E=ok; else kh_E=Io:read-failed; fi
  fi
  kh_e "$1" "$kh_E"
}

# kh_hash PATH MAX PROGRAM: 0 and kh_H (the hex digest) if PATH resolves to a regular file of
# at most MAX bytes that PROGRAM hashed; else sets kh_E.
kh_hash() {
  kh_resolve "$1" 1 && kh_regular "$kh_R" || return 1
  if ! command -v "$3" >/dev/null 2>&1; then kh_E=Io:$3-not-available
  elif ! kh_s=$(stat -c %s -- "$kh_R" 2>/dev/null); then kh_E=Io:stat-failed
  elif [ "$kh_s" -gt "$2" ]; then kh_E=TooLarge
  elif kh_h=$("$3" <"$kh_R" 2>/dev/null); then kh_H=${kh_h%% *}; kh_E=ok; return 0
  else kh_E=Io:read-failed; fi
  return 1
}

kh_sum() {
  kh_b "$1"
  if kh_hash "$2" "$3" "$4"; then printf '@H %s\n' "$kh_H"; fi
  kh_e "$1" "$kh_E"
}

# kh_isdir: after kh_resolve, 0 if kh_R is a directory; else sets kh_E.
kh_isdir() {
  if [ -d "$kh_R" ]; then return 0; fi
  if [ -e "$kh_R" ]; then kh_E=WrongKind:directory; else kh_E=NotFound; fi
  return 1
}

# kh_list INDEX PATH MAX: records "<kind>/<name>/", "T/" when more than MAX entries.
kh_list() {
  kh_b "$1"
  if kh_ls "$2" "$3"; then kh_e "$1" ok; else kh_e "$1" "$kh_E"; fi
}

# kh_ls PATH MAX: the records of kh_list as hex, and kh_d (the directory, no trailing /); else
# sets kh_E.
kh_ls() {
  if ! { kh_resolve "$1" 1 && kh_isdir; }; then return 1; fi
  if [ ! -r "$kh_R" ]; then kh_E=PermissionDenied; return 1; fi
  kh_d=${kh_R%/}
  set +f
  { kh_k=0
    for kh_f in "$kh_d"/* "$kh_d"/.[!.]* "$kh_d"/..?*; do
      if [ -L "$kh_f" ]; then kh_t=l
      elif [ -d "$kh_f" ]; then kh_t=d
      elif [ -f "$kh_f" ]; then kh_t=f
      elif [ -p "$kh_f" ]; then kh_t=p
      elif [ -S "$kh_f" ]; then kh_t=s
      elif [ -c "$kh_f" ]; then kh_t=c
      elif [ -b "$kh_f" ]; then kh_t=b
      else continue; fi
      kh_k=$((kh_k + 1))
      if [ "$kh_k" -gt "$2" ]; then printf 'T/'; break; fi
      printf '%s/%s/' "$kh_t" "${kh_f##*/}"
    done; } | kh_hex
  set -f
}

# kh_integ INDEX MAXPACKAGES MAXFILES DIR LISTMAX READMAX HASHMAX: the primitive answers a
# PackageIntegrity request needs (integrity.rs), as sub-frames: the List of DIR, the Read of its
# first MAXPACKAGES "*.md5sums" lists by name, the MD5 of each listed file kh_gwant wants (at
# most MAXFILES). The file selection follows target::md5sums and integrity::select; where it
# could differ (NUL bytes, which sh drops), the parser finds an answer missing, never a wrong one.
kh_integ() {
  kh_b "$1"
  kh_gi=$1 kh_gm=$2 kh_gf=$3 kh_gx=$6 kh_gy=$7 kh_gn=0 kh_gc=0 kh_gs= kh_gh= kh_go= kh_ge=0 kh_gk=0 kh_gstop=
  # A line starts with 16 pairs of hex digits (as u8::from_str_radix takes them: "+f" too).
  kh_g2='[0123456789abcdefABCDEF+][0123456789abcdefABCDEF]'
  kh_g16=$kh_g2$kh_g2$kh_g2$kh_g2$kh_g2$kh_g2$kh_g2$kh_g2
  kh_g16=$kh_g16$kh_g16
  kh_g32='[0123456789abcdef][0123456789abcdef][0123456789abcdef][0123456789abcdef]'
  kh_g32=$kh_g32$kh_g32$kh_g32$kh_g32$kh_g32$kh_g32$kh_g32$kh_g32
  printf '@S L\n'
  if ! kh_ls "$4" "$5"; then printf '@F %s\n' "$kh_E"; kh_e "$kh_gi" ok; return; fi
  printf '@F ok\n'
  kh_gd=$kh_d
  # The lists by name in byte order: each glob is sorted (LC_ALL=C); the hidden names (all
  # starting with ".") go between the names sorting before "." and those after.
  set +f
  for kh_gp in "$kh_gd"/*.md5sums; do
    if [ -z "$kh_gh" ] && [ . \< "${kh_gp##*/}" ]; then kh_ghidden; fi
    kh_gadd "$kh_gp"
  done
  [ -n "$kh_gh" ] || kh_ghidden
  set -f
  # Names cannot contain "/": kh_gs is "name/name/.../", the names of the R sub-frames.
  printf '@S N\n'
  printf '%s' "$kh_gs" | kh_hex
  printf '@F ok\n'
  IFS=/
  for kh_gp in $kh_gs; do
    unset IFS
    kh_gl=$kh_gd/$kh_gp
    printf '@S R\n'
    if kh_regular "$kh_gl"; then
      if od -An -v -tx1 -N $((kh_gx + 1)) -- "$kh_gl" 2>/dev/null; then kh_E=ok; else kh_E=Io:read-failed; fi
    fi
    printf '@F %s\n' "$kh_E"
    [ "$kh_E" = ok ] || continue
    kh_gb=$(head -c "$kh_gx" -- "$kh_gl" 2>/dev/null; echo .)
    kh_gb=${kh_gb%.}
    # A list larger than READMAX is used up to its last complete line (only a list that does
    # not end with a newline needs its size).
    case $kh_gb in
      ''|*"$kh_nl") ;;
      *) if kh_gz=$(stat -c %s -- "$kh_gl" 2>/dev/null) && [ "$kh_gz" -gt "$kh_gx" ]; then
           case $kh_gb in *"$kh_nl"*) kh_gb=${kh_gb%"$kh_nl"*};; *) kh_gb=;; esac
         fi;;
    esac
    # One line per field (empty lines vanish, as they do in target::md5sums).
    IFS=$kh_nl
    for kh_gt in $kh_gb; do
      unset IFS
      case $kh_gt in $kh_g16" "?*) ;; *) continue;; esac
      kh_gr=${kh_gt#????????????????????????????????}
      kh_gr=${kh_gr# }
      kh_gr=${kh_gr# }
      [ -n "$kh_gr" ] || continue
      case /$kh_gr/ in */../*) continue;; esac
      kh_gwant "/$kh_gr" || continue
      if [ "$kh_gc" -ge "$kh_gf" ]; then kh_gstop=1; break; fi
      kh_gc=$((kh_gc + 1))
      kh_gqueue "/$kh_gr"
      if [ "$kh_gk" -ge 64 ] || [ "$kh_ge" -ge 64 ]; then kh_gflush; fi
    done
    unset IFS
    kh_gflush
    [ -z "$kh_gstop" ] || break
  done
  unset IFS
  kh_e "$kh_gi" ok
}

# kh_gadd PATH: PATH's name joins the lists to read if it is a regular file among the first
# MAXPACKAGES.
kh_gadd() {
  if [ ! -L "$1" ] && [ -f "$1" ]; then
    kh_gn=$((kh_gn + 1))
    if [ "$kh_gn" -le "$kh_gm" ]; then kh_gs=$kh_gs${1##*/}/; fi
  fi
}

# kh_ghidden: kh_gadd for the hidden lists, in byte order (".md5sums" among ".*.md5sums").
kh_ghidden() {
  kh_gh=1 kh_gv=
  for kh_gu in "$kh_gd"/.*.md5sums; do
    if [ -z "$kh_gv" ] && [ .md5sums \< "${kh_gu##*/}" ]; then kh_gadd "$kh_gd/.md5sums"; kh_gv=1; fi
    kh_gadd "$kh_gu"
  done
  [ -n "$kh_gv" ] || kh_gadd "$kh_gd/.md5sums"
}

# kh_gqueue PATH: an Md5 answer for PATH, as kh_hash gives it: an error record now (kh_ge
# counts them), or PATH (kh_gwN) and the regular file it resolves to (kh_gzN) queued for
# kh_gflush.
kh_gqueue() {
  if kh_resolve "$1" 1 && kh_regular "$kh_R"; then
    eval "kh_gw$kh_gk=\$1 kh_gz$kh_gk=\$kh_R"
    kh_gk=$((kh_gk + 1))
  else
    kh_go=$kh_go$kh_E" "$1$kh_nl kh_ge=$((kh_ge + 1))
  fi
}

# kh_grec CODE N: the record "<digest or error code> <path>" of queued file N.
kh_grec() {
  eval "kh_go=\$kh_go\$1\" \"\$kh_gw$2\$kh_nl"
}

# kh_gflush: the queued files hashed, then all records written as hex. One stat and one md5sum
# serve the whole queue when their output is in step with it: stat prints one size per file it
# could read (so as many lines as files means every one), md5sum "<digest>  <name>" per file it
# could read, each line checked against the file's own name. From the first line out of step
# (a file gone, or a name md5sum escapes), each file is asked on its own, as kh_hash does.
kh_gflush() {
  kh_gj=0
  if [ "$kh_gk" -gt 0 ] && ! command -v md5sum >/dev/null 2>&1; then
    while [ "$kh_gj" -lt "$kh_gk" ]; do
      kh_grec Io:md5sum-not-available "$kh_gj"
      kh_gj=$((kh_gj + 1))
    done
  elif [ "$kh_gk" -gt 0 ]; then
    kh_ga=
    while [ "$kh_gj" -lt "$kh_gk" ]; do
      kh_ga="$kh_ga \"\$kh_gz$kh_gj\""
      kh_gj=$((kh_gj + 1))
    done
    eval "kh_gsz=\$(stat -c %s -- $kh_ga 2>/dev/null)"
    IFS=$kh_nl
    set -- $kh_gsz
    unset IFS
    [ "$#" -eq "$kh_gk" ] || set --
    kh_ga= kh_gq= kh_gj=0
    while [ "$kh_gj" -lt "$kh_gk" ]; do
      eval "kh_R=\$kh_gz$kh_gj"
      if [ "$#" -gt 0 ]; then kh_s=$1; shift
      elif ! kh_s=$(stat -c %s -- "$kh_R" 2>/dev/null); then kh_s=; fi
      case $kh_s in
        ''|*[!0-9]*) kh_grec Io:stat-failed "$kh_gj";;
        *) if [ "$kh_s" -gt "$kh_gy" ]; then kh_grec TooLarge "$kh_gj"
           else kh_ga="$kh_ga \"\$kh_gz$kh_gj\"" kh_gq="$kh_gq $kh_gj"; fi;;
      esac
      kh_gj=$((kh_gj + 1))
    done
    if [ -n "$kh_gq" ]; then
      eval "kh_gsum=\$(md5sum -- $kh_ga 2>/dev/null)"
      IFS=$kh_nl
      set -- $kh_gsum
      unset IFS
      for kh_gj in $kh_gq; do
        eval "kh_R=\$kh_gz$kh_gj"
        kh_H=
        if [ "$#" -gt 0 ]; then
          case $1 in
            $kh_g32"  "*)
              kh_x=${1#????????????????????????????????}
              if [ "x$kh_x" = "x  $kh_R" ]; then kh_H=${1%"$kh_x"}; shift; else set --; fi;;
            *) set --;;
          esac
        fi
        if [ -z "$kh_H" ]; then
          if kh_h=$(md5sum <"$kh_R" 2>/dev/null); then kh_H=${kh_h%% *}
          else kh_grec Io:read-failed "$kh_gj"; continue; fi
        fi
        kh_grec "$kh_H" "$kh_gj"
      done
    fi
  fi
  if [ -n "$kh_go" ]; then
    printf '@S 5\n'
    printf '%s' "$kh_go" | kh_hex
    printf '@F ok\n'
  fi
  kh_go= kh_ge=0 kh_gk=0
}

# kh_mhave PATH: 0 if PATH resolves to a regular file (a package database exists).
kh_mhave() { kh_resolve "$1" 1 && [ -f "$kh_R" ]; }

# kh_mwalk PATH MAXDEPTH LINES SECONDS HANDLER BATCH: a W sub-frame of a ManagedIntegrity frame:
# every entry below PATH (-xdev) with its lstat, link text and digests (the handler's records),
# "D" when entries lie deeper than MAXDEPTH; the status is PATH's error code, if any.
kh_mwalk() {
  printf '@S W\n'
  if ! { kh_resolve "$1" 1 && kh_isdir; }; then printf '@F %s\n' "$kh_E"; return; fi
  if [ ! -r "$kh_R" ] || [ ! -x "$kh_R" ]; then printf '@F PermissionDenied\n'; return; fi
  for kh_t in stat od tr head; do
    if ! command -v "$kh_t" >/dev/null 2>&1; then printf '@F Io:%s-not-available\n' "$kh_t"; return; fi
  done
  # Without find or xargs (UBI-minimal has no findutils) sh walks the same entries itself.
  kh_mfind=1
  for kh_t in find xargs; do command -v "$kh_t" >/dev/null 2>&1 || kh_mfind=; done
  # A prefix that leads where an earlier one did (/bin/ -> /usr/bin/) is not walked twice.
  case "$kh_nl$kh_mseen" in *"$kh_nl$kh_R$kh_nl"*) printf '@F Io:walked-under-another-prefix\n'; return;; esac
  kh_mseen=$kh_mseen$kh_R$kh_nl
  kh_s=${kh_R%/}/.
  kh_now=$(date +%s 2>/dev/null)
  case $kh_now in ''|*[!0-9]*) kh_dl=-;; *) kh_dl=$((kh_now + $4));; esac
  { if [ -z "$kh_mfind" ]; then kh_wtree "$2" "$3" "$5" "$6"
    else
      if [ -n "$(find "$kh_s" -xdev -mindepth $(($2 + 1)) -maxdepth $(($2 + 1)) -print 2>/dev/null | head -c 1)" ]; then printf 'D\000'; fi
      find "$kh_s" -xdev -maxdepth "$2" -print0 2>/dev/null | xargs -0 -s "$6" sh -c "$5" sh "$kh_s" "$kh_dl" 2>/dev/null
    fi
  } | tr '\n\000' '\000\n' | head -n "$3" | kh_hex
  printf '@F ok\n'
}

# kh_wtree MAXDEPTH LINES HANDLER BATCH [ANYDEV]: what "find kh_s -xdev -maxdepth MAXDEPTH
# -print0 | xargs -0 -s BATCH sh -c HANDLER sh kh_s kh_dl" writes, and a "D" record when entries
# lie deeper, in sh alone: kh_s and every entry below it to MAXDEPTH, not below a directory on
# another device than kh_s (-xdev, by stat %d; with ANYDEV non-empty, on every device), handed
# to HANDLER in batches as arguments (any byte but NUL survives). It stops when HANDLER does
# (exit 255: deadline, or head has read enough) or after LINES entries (each gives at least one
# line: head has cut there). Runs in a pipeline's subshell.
kh_wtree() {
  kh_wmax=$1 kh_wlim=$2 kh_wh=$3 kh_wbs=$(($4 - ${#3})) kh_wn=0 kh_wk=0 kh_wsz=0 kh_wstop= kh_wdeep=
  kh_wany=${5-}
  [ "$kh_wbs" -ge 4096 ] || kh_wbs=4096
  kh_wadd "$kh_s"
  kh_wdev=$(stat -c %d -- "$kh_s" 2>/dev/null)
  case $kh_wdev in
    ''|*[!0-9]*) printf 'T\000';;
    *) set +f; kh_wdir "$kh_s" 0; set -f;;
  esac
  kh_wflush
}

# kh_wdir DIR DEPTH: the entries of DIR (at DEPTH below kh_s), depth first; "D" once if DIR is
# at MAXDEPTH and holds an entry.
kh_wdir() {
  if [ "$2" -ge "$kh_wmax" ]; then
    [ -z "$kh_wdeep" ] || return 0
    for kh_wf in "$1"/* "$1"/.[!.]* "$1"/..?*; do
      if [ -L "$kh_wf" ] || [ -e "$kh_wf" ]; then kh_wdeep=1; printf 'D\000'; return 0; fi
    done
    return 0
  fi
  # The positional parameters (this call's own) become the children's depth, then the
  # subdirectories: the globals are overwritten by the calls below.
  kh_wp=$1
  set -- $(($2 + 1))
  # An unmatched pattern stays as it is: it names nothing (or the entry it matched).
  for kh_wf in "$kh_wp"/* "$kh_wp"/.[!.]* "$kh_wp"/..?*; do
    [ -z "$kh_wstop" ] || return 0
    if [ -L "$kh_wf" ]; then kh_wadd "$kh_wf"; continue; fi
    [ -e "$kh_wf" ] || continue
    kh_wadd "$kh_wf"
    [ ! -d "$kh_wf" ] || set -- "$@" "$kh_wf"
  done
  [ "$#" -gt 1 ] || return 0
  if [ -n "$kh_wany" ]; then
    for kh_wf do
      case $kh_wf in /*) kh_wdir "$kh_wf" "$1";; esac
    done
    return 0
  fi
  # Only the subdirectories on kh_s's device are entered (-xdev). One stat for all of them
  # when it prints a line for each (the lines hold no names); else one stat each.
  kh_wl=$1
  shift
  kh_wds=$(stat -c %d -- "$@" 2>/dev/null; echo .)
  kh_wt=$kh_wds kh_wc=0
  while :; do case $kh_wt in *"$kh_nl"*) kh_wt=${kh_wt#*"$kh_nl"}; kh_wc=$((kh_wc + 1));; *) break;; esac; done
  [ "$kh_wc" -eq "$#" ] || kh_wds=
  kh_wfirst=1
  for kh_wf do
    if [ -n "$kh_wfirst" ]; then set -- "$kh_wl"; kh_wfirst=; fi
    if [ -n "$kh_wds" ]; then kh_wv=${kh_wds%%"$kh_nl"*} kh_wds=${kh_wds#*"$kh_nl"}
    else kh_wv=$(stat -c %d -- "$kh_wf" 2>/dev/null); fi
    [ "$kh_wv" != "$kh_wdev" ] || set -- "$@" "$kh_wf"
  done
  # Every path here starts with "/"; the first parameter (the depth) does not.
  for kh_wf do
    case $kh_wf in /*) kh_wdir "$kh_wf" "$1";; esac
  done
}

# kh_wadd PATH: PATH joins the batch (kh_wbN), which is handed on when full.
kh_wadd() {
  [ -z "$kh_wstop" ] || return 0
  kh_wn=$((kh_wn + 1))
  if [ "$kh_wn" -gt "$kh_wlim" ]; then kh_wstop=1; return 0; fi
  eval "kh_wb$kh_wk=\$1"
  kh_wk=$((kh_wk + 1)) kh_wsz=$((kh_wsz + ${#1} + 1))
  if [ "$kh_wsz" -ge "$kh_wbs" ]; then kh_wflush; fi
}

# kh_wflush: HANDLER on the batch, as xargs runs it.
kh_wflush() {
  [ "$kh_wk" -gt 0 ] || return 0
  kh_wa= kh_wj=0
  while [ "$kh_wj" -lt "$kh_wk" ]; do
    kh_wa="$kh_wa \"\$kh_wb$kh_wj\""
    kh_wj=$((kh_wj + 1))
  done
  kh_wk=0 kh_wsz=0
  eval "sh -c \"\$kh_wh\" sh \"\$kh_s\" \"\$kh_dl\" $kh_wa" 2>/dev/null || {
    [ "$?" -ne 255 ] || kh_wstop=1
  }
}

# kh_walk INDEX PATH MAXDEPTH LINES SECONDS XDEV HANDLER BATCH
kh_walk() {
  kh_b "$1"
  if ! { kh_resolve "$2" 1 && kh_isdir; }; then kh_e "$1" "$kh_E"; return; fi
  if [ ! -r "$kh_R" ] || [ ! -x "$kh_R" ]; then kh_e "$1" PermissionDenied; return; fi
  for kh_t in stat od tr head; do
    if ! command -v "$kh_t" >/dev/null 2>&1; then kh_e "$1" "Io:$kh_t-not-available"; return; fi
  done
  kh_s=${kh_R%/}/.
  kh_now=$(date +%s 2>/dev/null)
  case $kh_now in ''|*[!0-9]*) kh_dl=-;; *) kh_dl=$((kh_now + $5));; esac
  # Without find or xargs (UBI-minimal has no findutils) sh walks the same entries itself; its
  # "D" record comes within the entries, so the header says nothing of depth.
  kh_mfind=1
  for kh_t in find xargs; do command -v "$kh_t" >/dev/null 2>&1 || kh_mfind=; done
  if [ -z "$kh_mfind" ]; then
    printf '@D 0\n'
    kh_wany=
    [ "x$6" = x-xdev ] || kh_wany=1
    kh_wtree "$3" "$4" "$7" "$8" "$kh_wany" | tr '\n\000' '\000\n' | head -n "$4" | kh_hex
    kh_e "$1" ok
    return
  fi
  if [ -n "$(find "$kh_s" $6 -mindepth $(($3 + 1)) -maxdepth $(($3 + 1)) -print 2>/dev/null | head -c 1)" ]; then
    printf '@D 1\n'
  else
    printf '@D 0\n'
  fi
  find "$kh_s" $6 -maxdepth "$3" -print0 2>/dev/null \
    | xargs -0 -s "$8" sh -c "$7" sh "$kh_s" "$kh_dl" 2>/dev/null \
    | tr '\n\000' '\000\n' | head -n "$4" | kh_hex
  kh_e "$1" ok
}

"#;
