//! The native compliance engine: a declarative profile compiled into a fact plan, facts gathered
//! in one pass from a fact source (a local root, or a POSIX `sh` script over one exec session),
//! controls evaluated locally into HDF.

mod facts;

pub use facts::{
    Bound, Content, DirEntry, FactError, FactPlan, FactRequest, FactSource, FactValue, Facts,
    FileKind, FileMeta, ProcFile, TargetPath, WalkLimits, WalkOutcome, WalkQuery,
};
