//! The crate's single error type.

use std::path::PathBuf;

/// Everything that can go wrong loading a profile, its inputs or a waiver file. (Problems of the
/// *target* are not errors: they are facts, reported as `error`/`skipped` control results.)
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A profile or waiver file could not be read from disk.
    #[error("cannot read {what} `{}`: {source}; check the path and its permissions", path.display())]
    Read {
        /// `profile` or `waiver file`.
        what: &'static str,
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A profile is not valid: bad YAML, a missing or unknown field, a value of the wrong type.
    #[error("{file}:{line}: `{field}`: {problem}")]
    Profile {
        /// The profile's file name (or `<builtin>/NAME.yaml`).
        file: String,
        /// 1-based line of the offending value.
        line: usize,
        /// Where in the profile, e.g. `controls[3].checks[0].mode.max`.
        field: String,
        /// What is wrong and what to write instead.
        problem: String,
    },

    /// A waiver file is not valid.
    #[error("{file}:{line}: `{field}`: {problem}")]
    Waivers {
        /// The waiver file's name.
        file: String,
        /// 1-based line of the offending value.
        line: usize,
        /// Where in the file, e.g. `KH-ACCT-01.expiration_date`.
        field: String,
        /// What is wrong and what to write instead.
        problem: String,
    },

    /// An `--input NAME=VALUE` override that the profile does not declare or whose value does
    /// not fit the declared type.
    #[error("input `{name}`: {problem}")]
    Input {
        /// The input's name.
        name: String,
        /// What is wrong and what to pass instead.
        problem: String,
    },

    /// `builtin_profile` was asked for a name that is not built in.
    #[error("there is no built-in profile `{name}`; built-in profiles: {known}")]
    UnknownBuiltin {
        /// The name asked for.
        name: String,
        /// The names that exist, comma-separated.
        known: String,
    },
}
