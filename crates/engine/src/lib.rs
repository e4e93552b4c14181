//! The native compliance engine: a declarative profile compiled into a fact plan, facts gathered
//! in one pass from a fact source (a local root, or a POSIX `sh` script over one exec session),
//! controls evaluated locally into HDF.

mod check;
mod error;
mod eval;
mod facts;
mod integrity;
mod managed;
mod matcher;
mod profile;
mod resource;
mod scope;
mod source;
mod target;
mod version;
mod waiver;
mod yaml;

pub use facts::{
    Attribute, Bound, CheckedFile, Content, DirEntry, FactError, FactPlan, FactRequest, FactSource,
    FactValue, Facts, FileKind, FileMeta, FileStatus, HashAlgo, IntegrityReport, IntegritySpec,
    ManagedSpec, NamedContent, PackageManager, ProcFile, TargetPath, WalkLimits, WalkOutcome,
    WalkQuery,
};
pub use source::{
    FACTS_BEGIN, FACTS_END, FramedFacts, LocalRoot, LogFrames, OwnRoot, ShellScript, SourceError,
    encode_facts_frame, read_facts_frames,
};

pub use error::EngineError;
pub use eval::{evaluate, gather, plan};
pub use profile::{BUILTIN_PROFILES, DEFAULT_PROFILE, InputDecl, InputType, Inputs, Profile};
pub use waiver::{Waiver, Waivers};

/// The README's example, compiled and run by `cargo test --doc` so it never goes stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
