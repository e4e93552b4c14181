//! The one error type of the crate.

/// What can go wrong in a pre-scan check: a policy that cannot be read or makes no sense, or the
/// target pod that cannot be read from the API server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrecheckError {
    /// The policy file is not valid YAML for the policy format (`docs/precheck.md`).
    #[error("{origin}:{line}:{column}: {message} (see docs/precheck.md for the policy format)")]
    PolicySyntax {
        /// The file name, or `<policy>` for text without one.
        origin: String,
        /// 1-based line of the problem (0 when the parser gave none).
        line: usize,
        /// 1-based column of the problem (0 when the parser gave none).
        column: usize,
        /// The parser's message, e.g. an unknown field and the fields expected.
        message: String,
    },
    /// A value in the policy is well-formed YAML but not a usable value.
    #[error("{origin}: `{key}`: {problem}")]
    PolicyValue {
        /// The file name, or `<policy>`.
        origin: String,
        /// The key path of the value, e.g. `allow.peer-cidrs[2]`.
        key: String,
        /// What is wrong and what to write instead.
        problem: String,
    },
    /// The policy file cannot be read.
    #[error("cannot read the policy file {path}: {source}")]
    PolicyRead {
        /// The path given.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// Reading the target pod failed for another reason than its absence.
    #[error(
        "cannot read pod {namespace}/{name} with your credentials: {} (check that you may `get pods` there)",
        keyhole_core::kube_error(source)
    )]
    Fetch {
        /// The namespace.
        namespace: String,
        /// The pod name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
}
