//! Serde model of HDF exec JSON (MITRE `exec-json.json`), its reader and its writer.
//!
//! Reading accepts what Heimdall's `inspecjs` parser (used by the SAF CLI) accepts: the fields the
//! schema requires must be present with their types; every field the model does not name is kept
//! in an `extra` map so that reading and writing InSpec/CINC output loses nothing. Writing first
//! checks the constraints the types cannot express (impact range, finite numbers, references,
//! `extra` keys that would shadow a named field), so the writer only emits schema-valid JSON.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use crate::HdfError;

/// A whole HDF exec-JSON document: one run of one or more profiles against one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    /// The platform (operating system) the run targeted.
    pub platform: Platform,
    /// The profiles run; threshold verdicts judge the first one only (as the SAF CLI does).
    pub profiles: Vec<Profile>,
    /// Run statistics.
    pub statistics: Statistics,
    /// Version of the tool that produced the results (InSpec/CINC version, or keyhole's).
    pub version: String,
    /// Fields not named above, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The target platform.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Platform {
    /// Platform name, e.g. `debian`.
    pub name: String,
    /// Platform release, e.g. `12`.
    pub release: String,
    /// Identifier of the target, e.g. `pod/ns/name/container`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    /// Fields not named above, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Run statistics.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Statistics {
    /// Duration of the run in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// Control counts by InSpec status, when the producer wrote them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controls: Option<StatisticHash>,
    /// Fields not named above, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Control counts by InSpec status (`statistics.controls`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StatisticHash {
    /// Passed controls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed: Option<StatisticBlock>,
    /// Failed controls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<StatisticBlock>,
    /// Skipped controls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<StatisticBlock>,
    /// Fields not named above, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One count in `statistics.controls`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatisticBlock {
    /// The count. A JSON number as read, so `3` is not rewritten as `3.0`.
    pub total: Number,
    /// Fields not named above, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One profile and its controls with their results.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Profile {
    /// Profile name; overlays refer to it through `parent_profile`.
    pub name: String,
    /// Profile version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Checksum of the profile.
    pub sha256: String,
    /// Human-readable title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Maintainer(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintainer: Option<String>,
    /// Summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Longer description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Licence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Copyright holder(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copyright: Option<String>,
    /// Copyright contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copyright_email: Option<String>,
    /// InSpec version that ran the profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspec_version: Option<String>,
    /// Supported platforms.
    pub supports: Vec<SupportedPlatform>,
    /// Inputs (InSpec "attributes") used in the run, verbatim.
    pub attributes: Vec<Map<String, Value>>,
    /// Control groups (usually one per source file).
    pub groups: Vec<Group>,
    /// Load status, e.g. `loaded` or `skipped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Reason for the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// Reason the profile was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_message: Option<String>,
    /// Name of the profile that depends on (overlays) this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_profile: Option<String>,
    /// Dependencies of this profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends: Option<Vec<Dependency>>,
    /// The controls with their results.
    pub controls: Vec<Control>,
    /// Fields not named above, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A platform a profile supports.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SupportedPlatform {
    /// Platform family, e.g. `linux`.
    #[serde(
        rename = "platform-family",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub platform_family: Option<String>,
    /// Platform name, e.g. `debian`.
    #[serde(
        rename = "platform-name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub platform_name: Option<String>,
    /// Platform kind, e.g. `os`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Release, e.g. `12`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Deprecated spelling of `platform-family`.
    #[serde(rename = "os-family", default, skip_serializing_if = "Option::is_none")]
    pub os_family: Option<String>,
    /// Deprecated spelling of `platform-name`.
    #[serde(rename = "os-name", default, skip_serializing_if = "Option::is_none")]
    pub os_name: Option<String>,
    /// Fields not named above, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A group of controls (usually one source file).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Group {
    /// Group id, e.g. `controls/ssh.rb`.
    pub id: String,
    /// Human-readable title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Ids of the controls in the group.
    pub controls: Vec<String>,
    /// Fields not named above, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A profile dependency.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Dependency {
    /// Name or alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Git branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Local path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Reason for the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// Status: `loaded`, `failed` or `skipped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Git repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<String>,
    /// Supermarket `user/profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supermarket: Option<String>,
    /// Automate `user/profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance: Option<String>,
    /// Fields not named above, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A control and its results.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Control {
    /// Control id, e.g. `V-72983`.
    pub id: String,
    /// Title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
    /// Labelled descriptions (`default`, `check`, `fix`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptions: Option<Vec<Description>>,
    /// Impact in `0.0..=1.0`; `0.0` makes the control "Not Applicable".
    pub impact: f64,
    /// References to external documents.
    pub refs: Vec<Reference>,
    /// Tags (free-form): `nist`, `severity`, `cci`, ...
    pub tags: Map<String, Value>,
    /// Source code of the control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Where the control is defined.
    pub source_location: SourceLocation,
    /// Results of the control's tests.
    pub results: Vec<ControlResult>,
    /// Waiver applied to the control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiver_data: Option<WaiverData>,
    /// Manual attestation of the control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation_data: Option<AttestationData>,
    /// Fields not named above, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A labelled description of a control.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Description {
    /// Label, e.g. `check` or `fix`.
    pub label: String,
    /// Text.
    pub data: String,
    /// Fields not named above, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A reference to an external document; the schema needs at least one of `ref`, `url`, `uri`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Reference {
    /// The `ref` field: a text or a list of objects.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<RefValue>,
    /// A URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Fields not named above, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The value of a reference's `ref` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RefValue {
    /// A human-readable reference, e.g. a book title.
    Text(String),
    /// A list of reference objects.
    List(Vec<Map<String, Value>>),
}

/// Where a control is defined.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SourceLocation {
    /// Path of the source file.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Line number, as the JSON number read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<Number>,
    /// Fields not named above, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Status of one test result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultStatus {
    /// The test passed.
    Passed,
    /// The test failed.
    Failed,
    /// The test was skipped.
    Skipped,
    /// The test could not run.
    Error,
}

/// The result of one test (an InSpec `describe` expectation) within a control.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ControlResult {
    /// Status; absent or `null` counts as no status (the control becomes "Profile Error" when no
    /// result has a status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ResultStatus>,
    /// Description of the test.
    pub code_desc: String,
    /// Run time in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_time: Option<f64>,
    /// Start time (ISO 8601).
    pub start_time: String,
    /// The resource tested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Id of the resource tested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// Explanation, usually for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Why the test was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_message: Option<String>,
    /// Exception class when the test raised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
    /// Backtrace when the test raised; its presence (even empty) makes the result an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backtrace: Option<Vec<String>>,
    /// Fields not named above, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A waiver applied to a control.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WaiverData {
    /// Expiry date of the waiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_date: Option<String>,
    /// Justification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// Message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Whether the control still ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<bool>,
    /// Whether the control was skipped because of the waiver; makes it "Not Applicable".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_due_to_waiver: Option<WaiverFlag>,
    /// Fields not named above, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `skipped_due_to_waiver`, which the schema allows as a boolean or a string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WaiverFlag {
    /// A boolean.
    Bool(bool),
    /// A string; Heimdall treats any non-empty string as true.
    Text(String),
}

impl WaiverFlag {
    /// Whether Heimdall treats the flag as set (JavaScript truthiness).
    #[must_use]
    pub fn is_set(&self) -> bool {
        match self {
            Self::Bool(b) => *b,
            Self::Text(s) => !s.is_empty(),
        }
    }
}

/// Status of a manual attestation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttestationStatus {
    /// Attested as passing.
    Passed,
    /// Attested as failing.
    Failed,
}

/// A manual attestation of a control. Heimdall's status computation (and so the SAF CLI) does
/// not let it change the control's status; it is carried for Heimdall's display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttestationData {
    /// Id of the attested control.
    pub control_id: String,
    /// Explanation.
    pub explanation: String,
    /// How often it must be renewed.
    pub frequency: String,
    /// Attested status.
    pub status: AttestationStatus,
    /// When it was last updated.
    pub updated: String,
    /// Who updated it.
    pub updated_by: String,
    /// Fields not named above, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Execution {
    /// An execution with no profiles, for the given platform and producer version.
    #[must_use]
    pub fn new(platform: Platform, version: impl Into<String>) -> Self {
        Self {
            platform,
            profiles: Vec::new(),
            statistics: Statistics::default(),
            version: version.into(),
            extra: Map::new(),
        }
    }

    /// An execution of one of Keyhole's own check profiles (the pre-scan verification, the
    /// post-scan audit) against a Kubernetes object: platform `kubernetes`, release `unknown`
    /// (the checks read the API, not the node), `target_id` such as `pod/NS/POD/CONTAINER`.
    #[must_use]
    pub fn kubernetes_checks(
        target_id: impl Into<String>,
        version: impl Into<String>,
        profile: Profile,
    ) -> Self {
        let platform = Platform {
            name: "kubernetes".into(),
            release: "unknown".into(),
            target_id: Some(target_id.into()),
            ..Platform::default()
        };
        let mut exec = Self::new(platform, version);
        exec.profiles.push(profile);
        exec
    }

    /// Reads HDF exec JSON (also InSpec/CINC `--reporter json` output).
    ///
    /// # Errors
    /// [`HdfError::ReadJson`] when the text is not JSON or lacks a field the schema requires.
    pub fn from_json_str(text: &str) -> Result<Self, HdfError> {
        serde_json::from_str(text).map_err(|source| HdfError::ReadJson { source })
    }

    /// Reads HDF exec JSON from bytes.
    ///
    /// # Errors
    /// As [`Execution::from_json_str`].
    pub fn from_json_slice(bytes: &[u8]) -> Result<Self, HdfError> {
        serde_json::from_slice(bytes).map_err(|source| HdfError::ReadJson { source })
    }

    /// Writes indented JSON, valid against the HDF exec-JSON schema.
    ///
    /// # Errors
    /// [`HdfError::InvalidExecution`] when [`Execution::validate`] fails.
    pub fn to_json_pretty(&self) -> Result<String, HdfError> {
        self.validate()?;
        serde_json::to_string_pretty(self).map_err(|source| HdfError::WriteJson { source })
    }

    /// Writes compact JSON, valid against the HDF exec-JSON schema.
    ///
    /// # Errors
    /// [`HdfError::InvalidExecution`] when [`Execution::validate`] fails.
    pub fn to_json(&self) -> Result<String, HdfError> {
        self.validate()?;
        serde_json::to_string(self).map_err(|source| HdfError::WriteJson { source })
    }

    /// Checks what the types cannot: impact in `0..=1`, finite numbers, references with a
    /// `ref`/`url`/`uri`, and `extra` maps that do not repeat a named field (which would write a
    /// duplicate JSON key).
    ///
    /// # Errors
    /// [`HdfError::InvalidExecution`] naming the first offending value.
    pub fn validate(&self) -> Result<(), HdfError> {
        check_extra(
            "",
            &self.extra,
            &["platform", "profiles", "statistics", "version"],
        )?;
        check_extra(
            "/platform",
            &self.platform.extra,
            &["name", "release", "target_id"],
        )?;
        self.statistics.check("/statistics")?;
        for (p, profile) in self.profiles.iter().enumerate() {
            profile.check(&format!("/profiles/{p}"))?;
        }
        Ok(())
    }
}

impl Statistics {
    fn check(&self, at: &str) -> Result<(), HdfError> {
        check_extra(at, &self.extra, &["duration", "controls"])?;
        if let Some(d) = self.duration {
            check_finite(&format!("{at}/duration"), d)?;
        }
        if let Some(hash) = &self.controls {
            let at = format!("{at}/controls");
            check_extra(&at, &hash.extra, &["passed", "failed", "skipped"])?;
            for (name, block) in [
                ("passed", &hash.passed),
                ("failed", &hash.failed),
                ("skipped", &hash.skipped),
            ] {
                if let Some(block) = block {
                    check_extra(&format!("{at}/{name}"), &block.extra, &["total"])?;
                }
            }
        }
        Ok(())
    }
}

impl Profile {
    /// A profile with the given name and checksum and nothing else.
    #[must_use]
    pub fn new(name: impl Into<String>, sha256: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            sha256: sha256.into(),
            ..Self::default()
        }
    }

    /// One of Keyhole's own check profiles: `name` at `version`, with its `title` and
    /// `summary`, licensed Apache-2.0 and `loaded`; its groups and controls are added after.
    #[must_use]
    pub fn keyhole_checks(
        name: impl Into<String>,
        sha256: impl Into<String>,
        version: impl Into<String>,
        title: impl Into<String>,
        summary: impl Into<String>,
    ) -> Self {
        Self {
            version: Some(version.into()),
            title: Some(title.into()),
            summary: Some(summary.into()),
            license: Some("Apache-2.0".into()),
            status: Some("loaded".into()),
            ..Self::new(name, sha256)
        }
    }

    /// Adds the group `id` (titled `title`) of these control ids, unless there are none: an
    /// empty group would only say nothing ran.
    pub fn push_group(
        &mut self,
        id: impl Into<String>,
        title: impl Into<String>,
        controls: Vec<String>,
    ) {
        if !controls.is_empty() {
            self.groups.push(Group {
                id: id.into(),
                title: Some(title.into()),
                controls,
                ..Group::default()
            });
        }
    }

    fn check(&self, at: &str) -> Result<(), HdfError> {
        check_extra(
            at,
            &self.extra,
            &[
                "name",
                "version",
                "sha256",
                "title",
                "maintainer",
                "summary",
                "description",
                "license",
                "copyright",
                "copyright_email",
                "inspec_version",
                "supports",
                "attributes",
                "groups",
                "status",
                "status_message",
                "skip_message",
                "parent_profile",
                "depends",
                "controls",
            ],
        )?;
        for (i, s) in self.supports.iter().enumerate() {
            check_extra(
                &format!("{at}/supports/{i}"),
                &s.extra,
                &[
                    "platform-family",
                    "platform-name",
                    "platform",
                    "release",
                    "os-family",
                    "os-name",
                ],
            )?;
        }
        for (i, g) in self.groups.iter().enumerate() {
            check_extra(
                &format!("{at}/groups/{i}"),
                &g.extra,
                &["id", "title", "controls"],
            )?;
        }
        for (i, d) in self.depends.iter().flatten().enumerate() {
            check_extra(
                &format!("{at}/depends/{i}"),
                &d.extra,
                &[
                    "name",
                    "url",
                    "branch",
                    "path",
                    "status_message",
                    "status",
                    "git",
                    "supermarket",
                    "compliance",
                ],
            )?;
        }
        for (i, c) in self.controls.iter().enumerate() {
            c.check(&format!("{at}/controls/{i}"))?;
        }
        Ok(())
    }
}

impl Control {
    /// A control with the given id and impact, no results and empty tags.
    #[must_use]
    pub fn new(id: impl Into<String>, impact: f64) -> Self {
        Self {
            id: id.into(),
            impact,
            ..Self::default()
        }
    }

    fn check(&self, at: &str) -> Result<(), HdfError> {
        check_extra(
            at,
            &self.extra,
            &[
                "id",
                "title",
                "desc",
                "descriptions",
                "impact",
                "refs",
                "tags",
                "code",
                "source_location",
                "results",
                "waiver_data",
                "attestation_data",
            ],
        )?;
        // Written as a negated range test so that NaN is refused too.
        if !(0.0..=1.0).contains(&self.impact) {
            return Err(invalid(
                format!("{at}/impact"),
                format!("impact {} is outside 0.0..=1.0", self.impact),
            ));
        }
        for (i, d) in self.descriptions.iter().flatten().enumerate() {
            check_extra(
                &format!("{at}/descriptions/{i}"),
                &d.extra,
                &["label", "data"],
            )?;
        }
        for (i, r) in self.refs.iter().enumerate() {
            let here = format!("{at}/refs/{i}");
            check_extra(&here, &r.extra, &["ref", "url", "uri"])?;
            if r.reference.is_none() && r.url.is_none() && r.uri.is_none() {
                return Err(invalid(
                    here,
                    "a reference needs `ref`, `url` or `uri`".to_owned(),
                ));
            }
        }
        check_extra(
            &format!("{at}/source_location"),
            &self.source_location.extra,
            &["ref", "line"],
        )?;
        for (i, r) in self.results.iter().enumerate() {
            let here = format!("{at}/results/{i}");
            check_extra(
                &here,
                &r.extra,
                &[
                    "status",
                    "code_desc",
                    "run_time",
                    "start_time",
                    "resource",
                    "resource_id",
                    "message",
                    "skip_message",
                    "exception",
                    "backtrace",
                ],
            )?;
            if let Some(t) = r.run_time {
                check_finite(&format!("{here}/run_time"), t)?;
            }
        }
        if let Some(w) = &self.waiver_data {
            check_extra(
                &format!("{at}/waiver_data"),
                &w.extra,
                &[
                    "expiration_date",
                    "justification",
                    "message",
                    "run",
                    "skipped_due_to_waiver",
                ],
            )?;
        }
        if let Some(a) = &self.attestation_data {
            check_extra(
                &format!("{at}/attestation_data"),
                &a.extra,
                &[
                    "control_id",
                    "explanation",
                    "frequency",
                    "status",
                    "updated",
                    "updated_by",
                ],
            )?;
        }
        Ok(())
    }
}

impl ControlResult {
    /// A result with the given status, test description and start time.
    #[must_use]
    pub fn new(
        status: ResultStatus,
        code_desc: impl Into<String>,
        start_time: impl Into<String>,
    ) -> Self {
        Self {
            status: Some(status),
            code_desc: code_desc.into(),
            start_time: start_time.into(),
            ..Self::default()
        }
    }
}

fn invalid(path: String, problem: String) -> HdfError {
    HdfError::InvalidExecution { path, problem }
}

fn check_finite(path: &str, value: f64) -> Result<(), HdfError> {
    if value.is_finite() {
        Ok(())
    } else {
        // serde_json would write `null` here, which the schema refuses.
        Err(invalid(
            path.to_owned(),
            format!("{value} is not a finite number"),
        ))
    }
}

fn check_extra(at: &str, extra: &Map<String, Value>, named: &[&str]) -> Result<(), HdfError> {
    match extra.keys().find(|k| named.contains(&k.as_str())) {
        Some(key) => Err(invalid(
            format!("{at}/{key}"),
            format!(
                "`{key}` is set in `extra` although it is a named field; set the field instead"
            ),
        )),
        None => Ok(()),
    }
}
