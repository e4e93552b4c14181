//! Profiles: the YAML format (metadata, typed inputs, controls made of checks), its validating
//! reader, the built-in profiles, and the inputs a scan runs a profile with.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use keyhole_hdf::{Reference, Severity};
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

use crate::EngineError;
use crate::check::Check;
use crate::matcher;
use crate::resource::NamedWalks;
use crate::scope::Scope;
use crate::yaml::{self, Entry, Kind, Node};

/// Built-in profiles: `(name, file name, YAML text)`.
const BUILTIN: &[(&str, &str, &str)] = &[(
    "container-baseline",
    "container-baseline.yaml",
    include_str!("../profiles/container-baseline.yaml"),
)];

/// Names of the built-in profiles.
pub const BUILTIN_PROFILES: &[&str] = &["container-baseline"];

/// The profile a scan runs when none is named, as [`Profile::resolve`] takes it.
pub const DEFAULT_PROFILE: &str = "builtin:container-baseline";

/// A validated profile: metadata, input declarations and controls, with the line of each.
#[derive(Debug, Clone)]
pub struct Profile {
    pub(crate) file: String,
    pub(crate) sha256: String,
    pub(crate) meta: Meta,
    pub(crate) inputs: Vec<InputDecl>,
    pub(crate) controls: Vec<ControlDef>,
    /// The checks compiled with the default inputs (compiled once, at load).
    pub(crate) defaults: Arc<Compiled>,
}

/// Profile metadata, carried into HDF.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meta {
    pub(crate) name: String,
    pub(crate) version: Option<String>,
    pub(crate) title: Option<String>,
    pub(crate) maintainer: Option<String>,
    pub(crate) summary: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) license: Option<String>,
    pub(crate) copyright: Option<String>,
    pub(crate) supports: Vec<keyhole_hdf::SupportedPlatform>,
}

/// The type of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputType {
    /// Text.
    String,
    /// A whole number.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// A list of texts (on the command line: comma-separated, or a YAML flow list `[a, b]`).
    List,
}

impl InputType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => Self::String,
            "integer" => Self::Integer,
            "boolean" => Self::Boolean,
            "list" => Self::List,
            _ => return None,
        })
    }

    /// The name used in profiles.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Boolean => "boolean",
            Self::List => "list",
        }
    }
}

/// A declared input: a typed parameter with a default that `--input NAME=VALUE` may override.
#[derive(Debug, Clone)]
pub struct InputDecl {
    name: String,
    kind: InputType,
    default: Node,
    description: Option<String>,
}

impl InputDecl {
    /// The input's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its type.
    #[must_use]
    pub fn kind(&self) -> InputType {
        self.kind
    }

    /// What it controls.
    #[must_use]
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The default value, as JSON.
    #[must_use]
    pub fn default_value(&self) -> Json {
        to_json(self.kind, &self.default)
    }
}

/// One control as written.
#[derive(Debug, Clone)]
pub(crate) struct ControlDef {
    pub(crate) id: String,
    pub(crate) title: Option<String>,
    pub(crate) desc: Option<String>,
    pub(crate) descriptions: Vec<(String, String)>,
    pub(crate) impact: f64,
    pub(crate) tags: Map<String, Json>,
    pub(crate) refs: Vec<Reference>,
    pub(crate) only_if: Vec<Node>,
    pub(crate) checks: Vec<Node>,
    pub(crate) line: usize,
    pub(crate) code: String,
}

/// A control with its checks compiled for a set of input values.
#[derive(Debug)]
pub(crate) struct CompiledControl {
    pub(crate) only_if: Vec<Result<Check, EngineError>>,
    pub(crate) checks: Vec<Result<Check, EngineError>>,
}

/// Every control compiled, and the `named` walks merged across the profile.
#[derive(Debug, Default)]
pub(crate) struct Compiled {
    pub(crate) controls: Vec<CompiledControl>,
    pub(crate) named: NamedWalks,
}

const TOP_KEYS: &[&str] = &[
    "name",
    "version",
    "title",
    "maintainer",
    "summary",
    "description",
    "license",
    "copyright",
    "supports",
    "inputs",
    "controls",
];
const CONTROL_KEYS: &[&str] = &[
    "id",
    "title",
    "desc",
    "descriptions",
    "impact",
    "tags",
    "refs",
    "only_if",
    "checks",
];

/// Reads `profile`'s mapping entries, refusing unknown keys.
fn mapping<'n>(
    scope: &Scope<'_>,
    at: &str,
    node: &'n Node,
    allowed: &[&str],
) -> Result<&'n [Entry], EngineError> {
    let entries = node.as_map().ok_or_else(|| {
        scope.error(
            node.line,
            if at.is_empty() { "(document)" } else { at },
            format!("expected a mapping, found {}", node.shape()),
        )
    })?;
    for e in entries {
        if !allowed.contains(&e.key.as_str()) {
            return Err(scope.error(
                e.line,
                &join(at, &e.key),
                format!("unknown key; expected one of: {}", allowed.join(", ")),
            ));
        }
    }
    Ok(entries)
}

fn join(at: &str, key: &str) -> String {
    // An empty key (`: x`) still needs a visible name in the error.
    let key = if key.is_empty() { "\"\"" } else { key };
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

fn get<'n>(entries: &'n [Entry], key: &str) -> Option<&'n Entry> {
    entries.iter().find(|e| e.key == key)
}

fn required<'n>(
    scope: &Scope<'_>,
    at: &str,
    line: usize,
    entries: &'n [Entry],
    key: &str,
) -> Result<&'n Entry, EngineError> {
    get(entries, key)
        .ok_or_else(|| scope.error(line, &join(at, key), format!("`{key}` is required here")))
}

fn opt_text(
    scope: &Scope<'_>,
    at: &str,
    entries: &[Entry],
    key: &str,
) -> Result<Option<String>, EngineError> {
    get(entries, key)
        .map(|e| matcher::text(scope, &join(at, key), &e.value))
        .transpose()
}

fn seq<'n>(scope: &Scope<'_>, at: &str, node: &'n Node) -> Result<&'n [Node], EngineError> {
    if node.is_null() {
        return Ok(&[]);
    }
    node.as_seq().ok_or_else(|| {
        scope.error(
            node.line,
            at,
            format!("expected a list, found {}", node.shape()),
        )
    })
}

fn is_identifier(s: &str, extra: &[char]) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(&c))
        && s.len() <= 128
}

impl Profile {
    /// Reads a profile from YAML text; `file` names it in errors and in HDF `source_location`.
    ///
    /// # Errors
    /// [`EngineError::Profile`] naming the file, line and field of the first problem.
    pub fn from_yaml_str(text: &str, file: &str) -> Result<Self, EngineError> {
        let empty = BTreeMap::new();
        let scope = Scope::new(file, &empty);
        let root = yaml::parse(text).map_err(|e| scope.error(e.line, "(document)", e.problem))?;
        if root.is_null() {
            return Err(scope.error(
                root.line,
                "(document)",
                "the profile is empty; it needs at least `name` and `controls`".into(),
            ));
        }
        let top = mapping(&scope, "", &root, TOP_KEYS)?;
        let name_e = required(&scope, "", root.line, top, "name")?;
        let name = matcher::text(&scope, "name", &name_e.value)?;
        if name.trim().is_empty() {
            return Err(scope.error(name_e.line, "name", "the name is empty".into()));
        }
        let mut supports = Vec::new();
        if let Some(e) = get(top, "supports") {
            for (i, s) in seq(&scope, "supports", &e.value)?.iter().enumerate() {
                let at = format!("supports[{i}]");
                let m = mapping(
                    &scope,
                    &at,
                    s,
                    &["platform-family", "platform-name", "platform", "release"],
                )?;
                supports.push(keyhole_hdf::SupportedPlatform {
                    platform_family: opt_text(&scope, &at, m, "platform-family")?,
                    platform_name: opt_text(&scope, &at, m, "platform-name")?,
                    platform: opt_text(&scope, &at, m, "platform")?,
                    release: opt_text(&scope, &at, m, "release")?,
                    ..Default::default()
                });
            }
        }
        let meta = Meta {
            name,
            version: opt_text(&scope, "", top, "version")?,
            title: opt_text(&scope, "", top, "title")?,
            maintainer: opt_text(&scope, "", top, "maintainer")?,
            summary: opt_text(&scope, "", top, "summary")?,
            description: opt_text(&scope, "", top, "description")?,
            license: opt_text(&scope, "", top, "license")?,
            copyright: opt_text(&scope, "", top, "copyright")?,
            supports,
        };
        let inputs = match get(top, "inputs") {
            Some(e) => parse_inputs(&scope, &e.value)?,
            None => Vec::new(),
        };
        let controls_e = required(&scope, "", root.line, top, "controls")?;
        let items = seq(&scope, "controls", &controls_e.value)?;
        if items.is_empty() {
            return Err(scope.error(
                controls_e.line,
                "controls",
                "the profile has no controls".into(),
            ));
        }
        // A control's code ends where the next control (or the next top-level key) starts.
        let text_lines: Vec<&str> = text.lines().collect();
        let after_controls = top
            .iter()
            .map(|e| e.line)
            .filter(|l| *l > controls_e.line)
            .min()
            .unwrap_or(text_lines.len() + 1);
        let mut controls = Vec::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (i, node) in items.iter().enumerate() {
            let end = items.get(i + 1).map_or(after_controls, |n| n.line);
            let c = parse_control(&scope, &format!("controls[{i}]"), node, &text_lines, end)?;
            if let Some(first) = seen.insert(c.id.clone(), c.line) {
                return Err(scope.error(
                    c.line,
                    &format!("controls[{i}].id"),
                    format!("control id `{}` is already used on line {first}", c.id),
                ));
            }
            controls.push(c);
        }
        let mut profile = Self {
            file: file.to_owned(),
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
            meta,
            inputs,
            controls,
            defaults: Arc::default(),
        };
        // Every check must compile with the defaults, so errors show at load with their line.
        let values = profile
            .inputs
            .iter()
            .map(|d| (d.name.clone(), d.default.clone()))
            .collect();
        let compiled = profile.compile(&values);
        if let Some(e) = compiled.first_error() {
            return Err(e);
        }
        profile.defaults = Arc::new(compiled);
        Ok(profile)
    }

    /// Reads a profile file.
    ///
    /// # Errors
    /// [`EngineError::Read`] when the file cannot be read, [`EngineError::Profile`] when it is
    /// not a valid profile.
    pub fn from_path(path: &Path) -> Result<Self, EngineError> {
        let meta = std::fs::metadata(path).map_err(|source| EngineError::Read {
            what: "profile",
            path: path.to_owned(),
            source,
        })?;
        if meta.len() > yaml::MAX_TEXT as u64 {
            return Err(EngineError::Profile {
                file: path.display().to_string(),
                line: 1,
                field: "(document)".into(),
                problem: format!("the file is larger than {} bytes", yaml::MAX_TEXT),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| EngineError::Read {
            what: "profile",
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml_str(&text, &path.display().to_string())
    }

    /// A built-in profile by name (see [`BUILTIN_PROFILES`]).
    ///
    /// # Errors
    /// [`EngineError::UnknownBuiltin`] for another name.
    pub fn builtin(name: &str) -> Result<Self, EngineError> {
        let (_, file, text) = BUILTIN.iter().find(|(n, _, _)| *n == name).ok_or_else(|| {
            EngineError::UnknownBuiltin {
                name: name.to_owned(),
                known: BUILTIN_PROFILES.join(", "),
            }
        })?;
        Self::from_yaml_str(text, file)
    }

    /// A profile as a command line names it: `builtin:NAME` is a built-in profile (see
    /// [`BUILTIN_PROFILES`]), anything else the path of a profile file. The one place the
    /// `builtin:` prefix is understood, shared by `keyhole scan` and `keyhole-agent`.
    ///
    /// # Errors
    /// Those of [`Profile::builtin`] and [`Profile::from_path`].
    pub fn resolve(spec: &str) -> Result<Self, EngineError> {
        match spec.strip_prefix("builtin:") {
            Some(name) => Self::builtin(name),
            None => Self::from_path(Path::new(spec)),
        }
    }

    /// The profile's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.meta.name
    }

    /// The profile's version, if declared.
    #[must_use]
    pub fn version(&self) -> Option<&str> {
        self.meta.version.as_deref()
    }

    /// The ids of its controls, in order.
    pub fn control_ids(&self) -> impl Iterator<Item = &str> {
        self.controls.iter().map(|c| c.id.as_str())
    }

    /// Its input declarations.
    #[must_use]
    pub fn inputs(&self) -> &[InputDecl] {
        &self.inputs
    }

    /// SHA-256 of the profile text (hex), as written into HDF.
    #[must_use]
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Compiles every check for input `values`, keeping each check's own error.
    pub(crate) fn compile(&self, values: &BTreeMap<String, Node>) -> Compiled {
        let scope = Scope::new(&self.file, values);
        let controls: Vec<CompiledControl> = self
            .controls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let comp = |what: &str, nodes: &[Node]| -> Vec<Result<Check, EngineError>> {
                    nodes
                        .iter()
                        .enumerate()
                        .map(|(j, n)| {
                            Check::parse(&scope, &format!("controls[{i}].{what}[{j}]"), n)
                        })
                        .collect()
                };
                CompiledControl {
                    only_if: comp("only_if", &c.only_if),
                    checks: comp("checks", &c.checks),
                }
            })
            .collect();
        let mut named = NamedWalks::new();
        for check in controls
            .iter()
            .flat_map(|c| c.only_if.iter().chain(&c.checks))
            .flatten()
        {
            check.merge_named(&mut named);
        }
        Compiled { controls, named }
    }

    /// The checks compiled for `inputs`: the ones `inputs` carries when they were made for
    /// this profile (the usual case), else compiled now.
    pub(crate) fn compiled(&self, inputs: &Inputs) -> Arc<Compiled> {
        if inputs.profile_sha256 == self.sha256 && inputs.profile_file == self.file {
            Arc::clone(&inputs.compiled)
        } else {
            Arc::new(self.compile(&inputs.values))
        }
    }
}

impl Compiled {
    /// The first check that did not compile, as an error to return.
    fn first_error(&self) -> Option<EngineError> {
        let e = self
            .controls
            .iter()
            .flat_map(|c| c.only_if.iter().chain(&c.checks))
            .find_map(|r| r.as_ref().err())?;
        Some(match e {
            EngineError::Profile {
                file,
                line,
                field,
                problem,
            } => EngineError::Profile {
                file: file.clone(),
                line: *line,
                field: field.clone(),
                problem: problem.clone(),
            },
            // Compiling only produces profile errors; keep the text of anything else.
            other => EngineError::Input {
                name: String::new(),
                problem: other.to_string(),
            },
        })
    }
}

fn parse_inputs(scope: &Scope<'_>, node: &Node) -> Result<Vec<InputDecl>, EngineError> {
    let mut out: Vec<InputDecl> = Vec::new();
    for (i, item) in seq(scope, "inputs", node)?.iter().enumerate() {
        let at = format!("inputs[{i}]");
        let m = mapping(scope, &at, item, &["name", "type", "value", "description"])?;
        let name_e = required(scope, &at, item.line, m, "name")?;
        let name = matcher::text(scope, &join(&at, "name"), &name_e.value)?;
        if !is_identifier(&name, &[]) {
            return Err(scope.error(
                name_e.line,
                &join(&at, "name"),
                format!("`{name}` is not a valid input name (letters, digits and `_`)"),
            ));
        }
        if out.iter().any(|d| d.name == name) {
            return Err(scope.error(
                name_e.line,
                &join(&at, "name"),
                format!("input `{name}` is declared twice"),
            ));
        }
        let type_e = required(scope, &at, item.line, m, "type")?;
        let t = matcher::text(scope, &join(&at, "type"), &type_e.value)?;
        let kind = InputType::parse(&t).ok_or_else(|| {
            scope.error(
                type_e.line,
                &join(&at, "type"),
                format!("unknown input type `{t}`; use string, integer, boolean or list"),
            )
        })?;
        let value_e = required(scope, &at, item.line, m, "value")?;
        let default = typed_value(kind, &value_e.value)
            .map_err(|p| scope.error(value_e.value.line, &join(&at, "value"), p))?;
        out.push(InputDecl {
            name,
            kind,
            default,
            description: opt_text(scope, &at, m, "description")?,
        });
    }
    Ok(out)
}

/// Checks that `node` fits `kind` and normalises it (scalars become quoted text, so an input
/// value is never read as null or as an input reference).
fn typed_value(kind: InputType, node: &Node) -> Result<Node, String> {
    let scalar = |node: &Node| -> Result<String, String> {
        match &node.kind {
            Kind::Scalar { text, .. } if !node.is_null() => Ok(text.clone()),
            _ => Err(format!(
                "expected a {} value, found {}",
                kind.as_str(),
                node.shape()
            )),
        }
    };
    let quoted = |text: String, line: usize| Node {
        kind: Kind::Scalar { text, plain: false },
        line,
        input: None,
    };
    Ok(match kind {
        InputType::String => quoted(scalar(node)?, node.line),
        InputType::Integer => {
            let t = scalar(node)?;
            matcher::parse_int(&t).ok_or_else(|| format!("`{t}` is not a whole number"))?;
            quoted(t, node.line)
        }
        InputType::Boolean => {
            let t = scalar(node)?;
            if !matches!(t.as_str(), "true" | "false") {
                return Err(format!("`{t}` is not a boolean; write true or false"));
            }
            quoted(t, node.line)
        }
        InputType::List => {
            let items = match &node.kind {
                _ if node.is_null() => &[][..],
                Kind::Seq(items) => items.as_slice(),
                _ => return Err(format!("expected a list, found {}", node.shape())),
            };
            Node {
                kind: Kind::Seq(
                    items
                        .iter()
                        .map(|n| scalar(n).map(|t| quoted(t, n.line)))
                        .collect::<Result<_, _>>()?,
                ),
                line: node.line,
                input: None,
            }
        }
    })
}

fn to_json(kind: InputType, node: &Node) -> Json {
    let text = node.as_scalar().unwrap_or_default();
    match kind {
        InputType::String => Json::String(text.to_owned()),
        InputType::Integer => matcher::parse_int(text).map_or(Json::Null, Json::from),
        InputType::Boolean => Json::Bool(text == "true"),
        InputType::List => Json::Array(
            node.as_seq()
                .unwrap_or_default()
                .iter()
                .map(|n| Json::String(n.as_scalar().unwrap_or_default().to_owned()))
                .collect(),
        ),
    }
}

fn parse_control(
    scope: &Scope<'_>,
    at: &str,
    node: &Node,
    text_lines: &[&str],
    end_line: usize,
) -> Result<ControlDef, EngineError> {
    let m = mapping(scope, at, node, CONTROL_KEYS)?;
    let id_e = required(scope, at, node.line, m, "id")?;
    let id = matcher::text(scope, &join(at, "id"), &id_e.value)?;
    if !is_identifier(&id, &['-', '.', ':']) {
        return Err(scope.error(
            id_e.line,
            &join(at, "id"),
            format!(
                "`{id}` is not a valid control id (letters, digits, `-`, `_`, `.`, `:`; at most \
                 128 characters)"
            ),
        ));
    }
    let impact_e = required(scope, at, node.line, m, "impact")?;
    let impact_t = matcher::text(scope, &join(at, "impact"), &impact_e.value)?;
    let impact: f64 = impact_t
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| (0.0..=1.0).contains(v))
        .ok_or_else(|| {
            scope.error(
                impact_e.line,
                &join(at, "impact"),
                format!("`{impact_t}` is not a number from 0.0 to 1.0"),
            )
        })?;
    let mut tags = Map::new();
    if let Some(e) = get(m, "tags") {
        tags = parse_tags(scope, &join(at, "tags"), &e.value)?;
    }
    let severity = Severity::from_impact(impact);
    match tags.get("severity") {
        None => {
            tags.insert("severity".into(), Json::String(severity.as_str().into()));
        }
        Some(Json::String(s)) if s == severity.as_str() => {}
        Some(other) => {
            let line = get(m, "tags").map_or(node.line, |e| e.line);
            return Err(scope.error(
                line,
                &join(at, "tags.severity"),
                format!(
                    "severity {other} disagrees with impact {impact} ({severity}); Heimdall and \
                     thresholds go by the impact, so drop the tag or make them agree"
                ),
            ));
        }
    }
    let mut refs = Vec::new();
    if let Some(e) = get(m, "refs") {
        for (i, r) in seq(scope, &join(at, "refs"), &e.value)?.iter().enumerate() {
            let here = format!("{at}.refs[{i}]");
            refs.push(if r.as_map().is_some() {
                let rm = mapping(scope, &here, r, &["ref", "url", "uri"])?;
                let reference = Reference {
                    reference: opt_text(scope, &here, rm, "ref")?.map(keyhole_hdf::RefValue::Text),
                    url: opt_text(scope, &here, rm, "url")?,
                    uri: opt_text(scope, &here, rm, "uri")?,
                    ..Default::default()
                };
                if reference.reference.is_none()
                    && reference.url.is_none()
                    && reference.uri.is_none()
                {
                    return Err(scope.error(
                        r.line,
                        &here,
                        "a reference needs `ref`, `url` or `uri`".into(),
                    ));
                }
                reference
            } else {
                Reference {
                    reference: Some(keyhole_hdf::RefValue::Text(matcher::text(scope, &here, r)?)),
                    ..Default::default()
                }
            });
        }
    }
    let mut descriptions = Vec::new();
    if let Some(e) = get(m, "descriptions") {
        let dm = e.value.as_map().ok_or_else(|| {
            scope.error(
                e.line,
                &join(at, "descriptions"),
                "expected a mapping of label to text (e.g. `check:`, `fix:`)".into(),
            )
        })?;
        for d in dm {
            descriptions.push((
                d.key.clone(),
                matcher::text(scope, &format!("{at}.descriptions.{}", d.key), &d.value)?,
            ));
        }
    }
    let checks_e = required(scope, at, node.line, m, "checks")?;
    let checks = seq(scope, &join(at, "checks"), &checks_e.value)?.to_vec();
    if checks.is_empty() {
        return Err(scope.error(
            checks_e.line,
            &join(at, "checks"),
            "a control needs at least one check".into(),
        ));
    }
    let only_if = match get(m, "only_if") {
        Some(e) => seq(scope, &join(at, "only_if"), &e.value)?.to_vec(),
        None => Vec::new(),
    };
    let start = node.line.saturating_sub(1).min(text_lines.len());
    let end = end_line.saturating_sub(1).clamp(start, text_lines.len());
    let mut code_lines = &text_lines[start..end];
    while let Some((last, rest)) = code_lines.split_last() {
        if last.trim().is_empty() || last.trim_start().starts_with('#') {
            code_lines = rest;
        } else {
            break;
        }
    }
    Ok(ControlDef {
        id,
        title: opt_text(scope, at, m, "title")?,
        desc: opt_text(scope, at, m, "desc")?,
        descriptions,
        impact,
        tags,
        refs,
        only_if,
        checks,
        line: node.line,
        code: code_lines.join("\n"),
    })
}

fn parse_tags(scope: &Scope<'_>, at: &str, node: &Node) -> Result<Map<String, Json>, EngineError> {
    let entries = node.as_map().ok_or_else(|| {
        scope.error(
            node.line,
            at,
            format!("expected a mapping, found {}", node.shape()),
        )
    })?;
    let mut out = Map::new();
    for e in entries {
        let here = join(at, &e.key);
        let value = match (&e.value.kind, e.key.as_str()) {
            (_, "nist" | "cci") => {
                let items = seq(scope, &here, &e.value)?;
                let mut list = Vec::new();
                for item in items {
                    let t = matcher::text(scope, &here, item)?;
                    let ok = if e.key == "nist" {
                        nist_like(&t)
                    } else {
                        t.strip_prefix("CCI-")
                            .is_some_and(|d| d.len() == 6 && d.bytes().all(|b| b.is_ascii_digit()))
                    };
                    if !ok {
                        return Err(scope.error(
                            item.line,
                            &here,
                            if e.key == "nist" {
                                format!("`{t}` is not a NIST SP 800-53 control (e.g. AC-6, AC-6(9), CM-7 b)")
                            } else {
                                format!("`{t}` is not a CCI identifier (CCI- and six digits)")
                            },
                        ));
                    }
                    list.push(Json::String(t));
                }
                Json::Array(list)
            }
            (Kind::Seq(items), _) => Json::Array(
                items
                    .iter()
                    .map(|n| matcher::text(scope, &here, n).map(Json::String))
                    .collect::<Result<_, _>>()?,
            ),
            (Kind::Scalar { .. }, _) => Json::String(matcher::text(scope, &here, &e.value)?),
            (Kind::Map(_), _) => {
                return Err(scope.error(
                    e.line,
                    &here,
                    "a tag is text or a list of texts, not a mapping".into(),
                ));
            }
        };
        out.insert(e.key.clone(), value);
    }
    Ok(out)
}

/// `AC-6`, `AC-6(9)`, `CM-7 b`, `SI-7 (1)`: two capitals, a dash, digits, then anything.
fn nist_like(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() >= 4
        && b[0].is_ascii_uppercase()
        && b[1].is_ascii_uppercase()
        && b[2] == b'-'
        && b[3].is_ascii_digit()
}

/// Input values for one run of a profile: the declared defaults with `--input` overrides (and
/// the profile's checks compiled for them, so a scan compiles them once).
#[derive(Clone)]
pub struct Inputs {
    pub(crate) values: BTreeMap<String, Node>,
    kinds: BTreeMap<String, InputType>,
    overridden: BTreeSet<String>,
    compiled: Arc<Compiled>,
    profile_sha256: String,
    profile_file: String,
}

impl std::fmt::Debug for Inputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inputs")
            .field("values", &self.values)
            .field("overridden", &self.overridden)
            .field("profile_file", &self.profile_file)
            .finish_non_exhaustive()
    }
}

impl Inputs {
    /// Every input at its declared default.
    #[must_use]
    pub fn defaults(profile: &Profile) -> Self {
        Self {
            values: profile
                .inputs
                .iter()
                .map(|d| (d.name.clone(), d.default.clone()))
                .collect(),
            kinds: profile
                .inputs
                .iter()
                .map(|d| (d.name.clone(), d.kind))
                .collect(),
            overridden: BTreeSet::new(),
            compiled: Arc::clone(&profile.defaults),
            profile_sha256: profile.sha256.clone(),
            profile_file: profile.file.clone(),
        }
    }

    /// The defaults with `NAME=VALUE` overrides (as given to `--input`), each parsed into the
    /// declared type: integers as `12`/`0o755`, booleans as `true`/`false`, lists
    /// comma-separated (`a,b`) or as a YAML flow list (`[a, "b,c"]`).
    ///
    /// # Errors
    /// [`EngineError::Input`] for an override without `=`, an input the profile does not
    /// declare, a value that does not fit the type, or one the profile's checks cannot use (a
    /// bad regular expression, a relative path).
    pub fn with_overrides<I, S>(profile: &Profile, overrides: I) -> Result<Self, EngineError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut inputs = Self::defaults(profile);
        // The profile compiled with the one override alone: when there is only one, it is the
        // final compilation too (compiling the built-in profile costs milliseconds).
        let mut last_alone = None;
        for o in overrides {
            let o = o.as_ref();
            let (name, value) = o.split_once('=').ok_or_else(|| EngineError::Input {
                name: o.to_owned(),
                problem: "write the override as NAME=VALUE".into(),
            })?;
            let name = name.trim();
            let kind = *inputs.kinds.get(name).ok_or_else(|| EngineError::Input {
                name: name.to_owned(),
                problem: format!(
                    "profile `{}` declares no such input; declared: {}",
                    profile.name(),
                    if profile.inputs.is_empty() {
                        "none".to_owned()
                    } else {
                        profile
                            .inputs
                            .iter()
                            .map(|d| d.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            })?;
            let node = command_line_value(kind, value).map_err(|problem| EngineError::Input {
                name: name.to_owned(),
                problem,
            })?;
            // Checked alone against the defaults, so the error names this input.
            let mut alone = Self::defaults(profile).values;
            alone.insert(name.to_owned(), node.clone());
            let compiled = profile.compile(&alone);
            if let Some(e) = compiled.first_error() {
                return Err(EngineError::Input {
                    name: name.to_owned(),
                    problem: format!("the profile cannot use this value: {e}"),
                });
            }
            inputs.values.insert(name.to_owned(), node);
            inputs.overridden.insert(name.to_owned());
            last_alone = Some(compiled);
        }
        if let (1, Some(compiled)) = (inputs.overridden.len(), last_alone) {
            // One input overridden (perhaps several times: the last value is `alone`'s).
            inputs.compiled = Arc::new(compiled);
        } else if !inputs.overridden.is_empty() {
            let compiled = profile.compile(&inputs.values);
            if let Some(e) = compiled.first_error() {
                return Err(EngineError::Input {
                    name: inputs
                        .overridden
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                    problem: format!("the profile cannot use these values together: {e}"),
                });
            }
            inputs.compiled = Arc::new(compiled);
        }
        Ok(inputs)
    }

    /// The value of input `name` as JSON (as written into HDF `attributes`).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Json> {
        Some(to_json(*self.kinds.get(name)?, self.values.get(name)?))
    }

    /// Whether `name` was overridden.
    pub(crate) fn is_overridden(&self, name: &str) -> bool {
        self.overridden.contains(name)
    }
}

fn command_line_value(kind: InputType, value: &str) -> Result<Node, String> {
    let node = if kind == InputType::List {
        let v = value.trim();
        if v.starts_with('[') {
            let n = yaml::parse(v).map_err(|e| format!("not a YAML list: {}", e.problem))?;
            if n.as_seq().is_none() {
                return Err("not a YAML flow list such as [a, b]".into());
            }
            n
        } else {
            Node {
                kind: Kind::Seq(
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Node::scalar(s, 1))
                        .collect(),
                ),
                line: 1,
                input: None,
            }
        }
    } else {
        Node {
            kind: Kind::Scalar {
                text: value.to_owned(),
                plain: false,
            },
            line: 1,
            input: None,
        }
    };
    typed_value(kind, &node)
}
