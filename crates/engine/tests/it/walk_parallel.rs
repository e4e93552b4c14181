//! `LocalRoot` walks of trees large enough to be shared among threads answer exactly as the
//! sequential walk does: checked against a model of that walk (entries by name, byte by byte,
//! each directory before its entries), with and without bounds, several times over.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use keyhole_engine::{
    Bound, FactError, FactPlan, FactRequest, FactSource, FactValue, LocalRoot, TargetPath,
    WalkLimits, WalkOutcome, WalkQuery,
};

use crate::source_fixtures::tp;

const PATTERN: &[u8] = b"PRIVATE KEY";
const MAX_BYTES: u64 = 64;
const MAX_FILE_SIZE: u64 = 4096;

/// Names that sort differently as whole paths and as components (`.` and `-` sort before `/`).
const NAMES: [&str; 7] = ["a", "a.b", "a-b", "ab", "b", "id_rsa", ".env"];

/// About 3 000 entries: enough for the walk to start its helper threads.
fn build(dir: &Path) {
    let modes = [0o644, 0o4755, 0o2755, 0o666, 0o755, 0o6777];
    let mut n = 0usize;
    for top in NAMES {
        for sub in NAMES {
            for leaf in NAMES {
                let d = dir.join(top).join(sub).join(leaf);
                fs::create_dir_all(&d).expect("mkdir");
                for (i, file) in NAMES.iter().enumerate() {
                    n += 1;
                    let content: Vec<u8> = match n % 4 {
                        0 => PATTERN.to_vec(),
                        // Beyond the bytes a query reads.
                        1 => [vec![b' '; 100], PATTERN.to_vec()].concat(),
                        // Too large to be read.
                        2 => [PATTERN.to_vec(), vec![b'x'; 5000]].concat(),
                        _ => b"nothing".to_vec(),
                    };
                    let path = d.join(file);
                    if i == 6 && n.is_multiple_of(3) {
                        // Never followed, whatever it points to.
                        symlink("/", &path).expect("symlink");
                        continue;
                    }
                    fs::write(&path, content).expect("write");
                    fs::set_permissions(&path, fs::Permissions::from_mode(modes[n % modes.len()]))
                        .expect("chmod");
                }
            }
            // A world-writable directory and a sticky one.
            let d = dir.join(top).join(sub);
            fs::set_permissions(d.join("b"), fs::Permissions::from_mode(0o777)).expect("chmod");
            fs::set_permissions(d.join("ab"), fs::Permissions::from_mode(0o1777)).expect("chmod");
        }
    }
}

/// One entry as the model walk sees it.
struct Entry {
    path: TargetPath,
    full: PathBuf,
    meta: fs::Metadata,
}

/// The sequential walk, computed with plain `std::fs`: each directory's entries sorted by their
/// names' bytes, each directory followed by its own entries. Like the engine's walk, a directory
/// is listed only as far as the entries bound allows (one more than the entries still allowed,
/// in the order the directory gives them), so near the bound the examined entries are the first
/// of those, not of the whole directory.
struct Model {
    limits: WalkLimits,
    /// Entries examined, in walk order (the start not included).
    entries: Vec<Entry>,
    truncated: Option<Bound>,
}

impl Model {
    fn walk(root: &Path, limits: WalkLimits) -> Self {
        let mut m = Model {
            limits,
            entries: Vec::new(),
            truncated: None,
        };
        if m.descend(root, b"", 0).is_err() {
            m.truncated = Some(Bound::Entries);
        }
        m
    }

    /// The walk of `dir` (at `rel` below the root, `depth` levels down); `Err` when the
    /// entries bound is reached.
    fn descend(&mut self, dir: &Path, rel: &[u8], depth: u32) -> Result<(), ()> {
        let listing = fs::read_dir(dir).expect("read_dir");
        if depth >= self.limits.max_depth {
            if listing.count() > 0 {
                self.truncated.get_or_insert(Bound::Depth);
            }
            return Ok(());
        }
        let examined = 1 + self.entries.len() as u64;
        let budget = (self.limits.max_entries - examined + 1) as usize;
        let mut names: Vec<Vec<u8>> = listing
            .take(budget)
            .map(|e| e.expect("entry").file_name().as_bytes().to_vec())
            .collect();
        names.sort();
        for name in names {
            if 1 + self.entries.len() as u64 >= self.limits.max_entries {
                return Err(());
            }
            let full = dir.join(std::ffi::OsStr::from_bytes(&name));
            let meta = fs::symlink_metadata(&full).expect("lstat");
            let rel = [rel, b"/", &name].concat();
            self.entries.push(Entry {
                path: tp(&rel),
                full: full.clone(),
                meta: meta.clone(),
            });
            if meta.is_dir() {
                self.descend(&full, &rel, depth + 1)?;
            }
        }
        Ok(())
    }
}

fn queries() -> Vec<WalkQuery> {
    vec![
        WalkQuery::Setuid,
        WalkQuery::WorldWritable,
        WalkQuery::Named([b"a.b".to_vec(), b"id_rsa".to_vec()].into()),
        WalkQuery::Contains {
            pattern: PATTERN.to_vec(),
            max_bytes: MAX_BYTES,
            max_file_size: MAX_FILE_SIZE,
        },
    ]
}

/// What a walk answers, as compared here: each match's path with its mode and size.
#[derive(Debug, PartialEq)]
struct Answer {
    matches: Vec<(String, u32, u64)>,
    examined: u64,
    truncated: Option<Bound>,
    skipped: Vec<(TargetPath, FactError)>,
}

impl Answer {
    fn of(w: &WalkOutcome) -> Self {
        Answer {
            matches: w
                .matches
                .iter()
                .map(|(p, m)| (p.to_string(), m.mode, m.size))
                .collect(),
            examined: w.examined,
            truncated: w.truncated,
            skipped: w.skipped.clone(),
        }
    }
}

/// What the sequential walk answers for query `q` (index into [`queries`]).
fn expected(model: &Model, q: usize) -> Answer {
    let mut matches = Vec::new();
    let mut skipped = Vec::new();
    for e in &model.entries {
        let mode = e.meta.permissions().mode() & 0o7777;
        let file = e.meta.is_file();
        let name = e.full.file_name().expect("a name").as_bytes();
        let hit = match q {
            0 => file && mode & 0o4000 != 0,
            1 => mode & 0o002 != 0 && (file || (e.meta.is_dir() && mode & 0o1000 == 0)),
            2 => name == b"a.b" || name == b"id_rsa",
            _ if !file => false,
            _ if e.meta.len() > MAX_FILE_SIZE => {
                let limit = MAX_FILE_SIZE;
                skipped.push((e.path.clone(), FactError::TooLarge { limit }));
                false
            }
            _ => {
                let bytes = fs::read(&e.full).expect("read");
                let seen = &bytes[..bytes.len().min(MAX_BYTES as usize)];
                seen.windows(PATTERN.len()).any(|w| w == PATTERN)
            }
        };
        if hit {
            matches.push((e.path.to_string(), mode, e.meta.len()));
        }
    }
    Answer {
        matches,
        examined: 1 + model.entries.len() as u64,
        truncated: model.truncated,
        skipped,
    }
}

/// Gathers one walk per query with `limits` and checks every answer against the model.
fn check(root: &Path, limits: WalkLimits) {
    let model = Model::walk(root, limits);
    let source = LocalRoot::directory(root).expect("root");
    let requests: Vec<FactRequest> = queries()
        .into_iter()
        .map(|query| FactRequest::Walk {
            root: tp("/"),
            query,
            limits,
        })
        .collect();
    let mut plan = FactPlan::new();
    for r in &requests {
        plan.add(r.clone());
    }
    // Several times: the threads take directories in a different order each time.
    for round in 0..5 {
        let facts = source.gather(&plan);
        for (q, r) in requests.iter().enumerate() {
            let got = match facts.get(r) {
                Some(Ok(FactValue::Walk(w))) => w,
                other => panic!("{r:?}: {other:?}"),
            };
            let what = format!("round {round}, query {q}, {limits:?}");
            assert_eq!(Answer::of(got), expected(&model, q), "{what}");
        }
    }
}

#[test]
fn walk_parallel_large_tree_answers_in_walk_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path());
    let all = Model::walk(dir.path(), WalkLimits::default());
    assert!(all.entries.len() > 2000, "{} entries", all.entries.len());
    check(dir.path(), WalkLimits::default());
    // The depth bound: examined are the first two levels only.
    let shallow = WalkLimits {
        max_depth: 2,
        ..WalkLimits::default()
    };
    check(dir.path(), shallow);
}

#[test]
fn walk_parallel_over_max_entries_answers_sequentially() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path());
    let all = 1 + Model::walk(dir.path(), WalkLimits::default()).entries.len() as u64;
    // Bounds reached in the middle of the tree, one entry short, and not at all.
    for max_entries in [300, 1234, all - 1, all] {
        let limits = WalkLimits {
            max_entries,
            ..WalkLimits::default()
        };
        check(dir.path(), limits);
    }
}
