//! Waivers: accepted exceptions to controls, in InSpec's waiver-file format (a mapping from
//! control id to `justification`, `expiration_date` and optional `run`). An active waiver skips
//! its control (or, with `run: true`, only annotates it); an expired one is ignored and listed.

use std::collections::BTreeMap;
use std::path::Path;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::EngineError;
use crate::matcher;
use crate::profile::Profile;
use crate::scope::Scope;
use crate::yaml;

/// One waiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiver {
    /// The waived control's id.
    pub control: String,
    /// Why the exception is accepted (carried into HDF).
    pub justification: String,
    /// The waiver applies until 00:00 UTC of this date (as InSpec treats `expiration_date`).
    pub expires: Date,
    /// `true`: run the control anyway and only annotate the result; `false` (default): skip it.
    pub run: bool,
    /// Line of the waiver in its file.
    pub line: usize,
}

impl Waiver {
    /// Whether the waiver is in effect at `now`.
    #[must_use]
    pub fn is_active(&self, now: Timestamp) -> bool {
        now.to_zoned(TimeZone::UTC).date() < self.expires
    }
}

/// The waivers of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Waivers {
    by_control: BTreeMap<String, Waiver>,
}

impl Waivers {
    /// No waivers.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads a waiver file's text; `file` names it in errors.
    ///
    /// ```yaml
    /// KH-PKG-002:
    ///   justification: curl is needed by the health check (ticket SEC-123)
    ///   expiration_date: 2026-12-31
    /// ```
    ///
    /// # Errors
    /// [`EngineError::Waivers`] naming the file, line and field of the first problem.
    pub fn from_yaml_str(text: &str, file: &str) -> Result<Self, EngineError> {
        let no_inputs = BTreeMap::new();
        let scope = Scope::new(file, &no_inputs);
        let as_waiver_error = |e: EngineError| match e {
            EngineError::Profile {
                file,
                line,
                field,
                problem,
            } => EngineError::Waivers {
                file,
                line,
                field,
                problem,
            },
            other => other,
        };
        let err = |line: usize, field: &str, problem: String| EngineError::Waivers {
            file: file.to_owned(),
            line,
            field: field.to_owned(),
            problem,
        };
        let root = yaml::parse(text).map_err(|e| err(e.line, "(document)", e.problem))?;
        let mut by_control = BTreeMap::new();
        if root.is_null() {
            return Ok(Self { by_control });
        }
        let entries = root.as_map().ok_or_else(|| {
            err(
                root.line,
                "(document)",
                "a waiver file maps control ids to `justification` and `expiration_date`".into(),
            )
        })?;
        for e in entries {
            let id = &e.key;
            let fields = e.value.as_map().ok_or_else(|| {
                err(
                    e.line,
                    id,
                    "expected a mapping with `justification` and `expiration_date`".into(),
                )
            })?;
            let mut justification = None;
            let mut expires = None;
            let mut run = false;
            for f in fields {
                let at = format!("{id}.{}", f.key);
                match f.key.as_str() {
                    "justification" => {
                        let j = matcher::text(&scope, &at, &f.value).map_err(as_waiver_error)?;
                        if j.trim().is_empty() {
                            return Err(err(f.line, &at, "the justification is empty".into()));
                        }
                        justification = Some(j);
                    }
                    "expiration_date" => {
                        let t = matcher::text(&scope, &at, &f.value).map_err(as_waiver_error)?;
                        expires = Some(t.trim().parse::<Date>().map_err(|_| {
                            err(
                                f.line,
                                &at,
                                format!("`{t}` is not a date; write it as YYYY-MM-DD"),
                            )
                        })?);
                    }
                    "run" => {
                        run = matcher::boolean(&scope, &at, &f.value).map_err(as_waiver_error)?;
                    }
                    _ => {
                        return Err(err(
                            f.line,
                            &at,
                            "unknown key; a waiver has justification, expiration_date and run"
                                .into(),
                        ));
                    }
                }
            }
            let justification = justification.ok_or_else(|| {
                err(
                    e.line,
                    &format!("{id}.justification"),
                    "every waiver needs a justification".into(),
                )
            })?;
            let expires = expires.ok_or_else(|| {
                err(
                    e.line,
                    &format!("{id}.expiration_date"),
                    "every waiver needs an expiration_date (YYYY-MM-DD); waivers that never \
                     expire are not accepted"
                        .into(),
                )
            })?;
            by_control.insert(
                id.clone(),
                Waiver {
                    control: id.clone(),
                    justification,
                    expires,
                    run,
                    line: e.line,
                },
            );
        }
        Ok(Self { by_control })
    }

    /// Reads a waiver file.
    ///
    /// # Errors
    /// [`EngineError::Read`] when the file cannot be read, [`EngineError::Waivers`] when it is
    /// not a valid waiver file.
    pub fn from_path(path: &Path) -> Result<Self, EngineError> {
        let text = std::fs::read_to_string(path).map_err(|source| EngineError::Read {
            what: "waiver file",
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml_str(&text, &path.display().to_string())
    }

    /// The waiver of `control`, if any (active or not).
    #[must_use]
    pub fn get(&self, control: &str) -> Option<&Waiver> {
        self.by_control.get(control)
    }

    /// Every waiver, by control id.
    pub fn iter(&self) -> impl Iterator<Item = &Waiver> {
        self.by_control.values()
    }

    /// Waivers that have expired at `now` (ignored by evaluation; worth printing).
    #[must_use]
    pub fn expired(&self, now: Timestamp) -> Vec<&Waiver> {
        self.iter().filter(|w| !w.is_active(now)).collect()
    }

    /// Waivers naming a control that `profile` does not have (likely a typo).
    #[must_use]
    pub fn unknown<'a>(&'a self, profile: &Profile) -> Vec<&'a Waiver> {
        self.iter()
            .filter(|w| !profile.control_ids().any(|id| id == w.control))
            .collect()
    }
}
