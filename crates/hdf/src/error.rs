//! The crate's single error type.

/// Everything that can go wrong reading, writing or judging HDF and threshold files.
#[derive(Debug, thiserror::Error)]
pub enum HdfError {
    /// The text is not HDF exec JSON: bad JSON, or a required field missing or of the wrong type.
    #[error(
        "the HDF file is not valid HDF exec JSON: {source}; provide the JSON written by \
         `inspec exec --reporter json`, `cinc-auditor exec --reporter json` or an HDF converter \
         (exec-jsonmin and profile JSON are not accepted)"
    )]
    ReadJson {
        /// The parser's description, with line and column.
        #[source]
        source: serde_json::Error,
    },

    /// Serialising an execution failed (serde_json refused a value).
    #[error("the HDF execution could not be serialised: {source}; report this as a keyhole bug")]
    WriteJson {
        /// serde_json's description.
        #[source]
        source: serde_json::Error,
    },

    /// The execution holds a value the HDF exec-JSON schema forbids, so writing it would produce
    /// a file that Heimdall and the SAF CLI may reject.
    #[error(
        "the HDF execution is not schema-valid at `{path}`: {problem}; fix that value before writing"
    )]
    InvalidExecution {
        /// JSON-pointer-like location of the bad value, e.g. `/profiles/0/controls/3/impact`.
        path: String,
        /// What is wrong with it.
        problem: String,
    },

    /// The execution has no profile; SAF judges thresholds on the first profile only.
    #[error(
        "the HDF execution has no profiles, so there is nothing to judge (the SAF CLI crashes on \
         such a file); make sure the scan produced at least one profile"
    )]
    NoProfiles,

    /// A control carries a tag that makes Heimdall's `inspecjs` (and so the SAF CLI) throw.
    #[error(
        "control `{control_id}` has tag `{tag}` of an unusable type ({found}); the SAF CLI crashes \
         on it: make `{tag}` a string (or, for `nist`, a list of strings)"
    )]
    InvalidTag {
        /// Id of the offending control.
        control_id: String,
        /// Name of the tag (`severity`, `severityoverride` or `nist`).
        tag: String,
        /// The JSON type found.
        found: &'static str,
    },

    /// Overlay links (`parent_profile` and shared control ids) form a cycle, so a control has no
    /// base control; the SAF CLI overflows its stack on such a file.
    #[error(
        "control `{control_id}` is part of an overlay cycle (profiles name each other through \
         `parent_profile`, or a profile is its own parent); fix the profiles' `parent_profile` fields"
    )]
    OverlayCycle {
        /// Id of a control whose overlay chain never ends.
        control_id: String,
    },

    /// The threshold text is not YAML.
    #[error(
        "the threshold file is not valid YAML: {source}; fix the syntax (see `saf generate threshold` for an example)"
    )]
    ThresholdYaml {
        /// The YAML parser's description, with position.
        #[source]
        source: serde_norway::Error,
    },

    /// The threshold document does not have the shape of a SAF threshold file.
    #[error(
        "the threshold file is malformed: {problem}; write a YAML mapping such as `compliance: {{min: 80}}`"
    )]
    ThresholdShape {
        /// What is wrong with it.
        problem: String,
    },

    /// A threshold entry that the SAF CLI reads holds a value of the wrong type.
    #[error(
        "threshold entry `{path}` is {found}, but it must be {expected}; the SAF CLI would coerce or \
         silently ignore it, keyhole refuses it: write {expected}"
    )]
    ThresholdValue {
        /// Dotted path of the entry, e.g. `failed.critical.max`.
        path: String,
        /// What was found, e.g. `a string`.
        found: &'static str,
        /// What is needed, e.g. `a number`.
        expected: &'static str,
    },
}
