//! Loading one stage's [`Settings`] from every configuration layer, with figment.
//!
//! Layers, lowest first: built-in [`defaults`](crate::config::defaults),
//! `[workspace.metadata.ship]` of Cargo.toml, `Ship.toml` `[default]`, `Ship.toml`
//! `[<stage>]`, `SHIP_*` environment variables, and `--set key=value` flags. Stages are
//! figment profiles; the environment and the flags are figment's global profile, so
//! they win over every stage. Every error names the file (and line, when the key is in
//! `Ship.toml` or Cargo.toml: then it keeps that line, marked under the key or value, from
//! toml's spans), the key, and what was expected, with a did-you-mean when a valid name
//! is close ([`crate::diagnostic`]).

use crate::config::{Settings, defaults};
use crate::diagnostic::{Diagnostic, Snippet, closest, suggest};
use figment::error::Kind;
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// What the configuration of a project is read from.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// The project's `Ship.toml`.
    pub ship_toml: PathBuf,
    /// The `ship` table of `[workspace.metadata]` (or the root package's `[package.metadata]`),
    /// with the Cargo.toml it came from.
    pub cargo_metadata: Option<(PathBuf, serde_json::Value)>,
    /// The process environment (only `SHIP_*` variables are read, except the ones cargo ship
    /// sets for tasks: [`crate::protocol::TASK_VARIABLES`]).
    pub env: Vec<(String, String)>,
    /// `--set key=value` flags, highest priority; `key` may be dotted (`roles.web.hosts`).
    pub overrides: Vec<(String, String)>,
    /// The names of the adapters' tables (such as `python`): in every layer, these top-level
    /// keys are kept apart from the settings, merged the same way, for the adapters to read
    /// ([`Settings::adapters`](crate::config::Settings::adapters)). Any other unknown key is
    /// an error that lists these among the valid keys.
    pub adapter_tables: Vec<String>,
}

/// A configuration error: it names where, which key, and what was expected.
///
/// `Display` gives one line; [`ConfigError::diagnostic`] the form rustc's errors have: the
/// line of the file with a caret under the key or value, and a did-you-mean.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The project has no `Ship.toml`.
    #[error("no Ship.toml found at {}: run `cargo ship init` to write one", path.display())]
    MissingShipToml {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A file could not be read or parsed.
    #[error("{}: {message}", snippet.as_ref().map_or_else(|| file.clone(), |s| s.location()))]
    File {
        /// The file.
        file: String,
        /// What went wrong.
        message: String,
        /// Where in the file, when the parser says.
        snippet: Option<Box<Snippet>>,
    },
    /// The stage is not defined.
    #[error("unknown stage `{stage}`: {file} defines {}{}", list_or_none(choices),
        closest(stage, choices.iter().map(String::as_str))
            .map(|c| format!("; did you mean `{c}`?")).unwrap_or_default())]
    UnknownStage {
        /// The stage asked for.
        stage: String,
        /// The file that defines stages.
        file: String,
        /// The stages it defines.
        choices: Vec<String>,
    },
    /// A key has a wrong value.
    #[error("{location}: key `{key}`: {message}{}{}",
        detail.notes.iter().map(|n| format!("; {n}")).collect::<String>(),
        detail.help.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
    Invalid {
        /// Where the value came from: `Ship.toml:12`, `environment variable SHIP_X`, ...
        location: String,
        /// The full key as the user wrote it, e.g. `production.roles.web.hosts`.
        key: String,
        /// What was wrong and what was expected.
        message: String,
        /// The marked line, the choices, the likely fix.
        detail: Box<Detail>,
    },
}

/// What a [`ConfigError::Invalid`] shows besides its message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Detail {
    /// The line of the file with the key or value marked, when a file has it.
    pub snippet: Option<Snippet>,
    /// What else helps: the valid choices.
    pub notes: Vec<String>,
    /// The likely fix: ``did you mean `keep_releases`?``.
    pub help: Option<String>,
}

impl ConfigError {
    /// Adds a help and a note, as [`crate::diagnostic::suggest`] gives them (to
    /// [`ConfigError::Invalid`] only).
    pub fn with_hint(mut self, hint: (Option<String>, Option<String>)) -> ConfigError {
        if let ConfigError::Invalid { detail, .. } = &mut self {
            detail.help = hint.0.or(detail.help.take());
            detail.notes.extend(hint.1);
        }
        self
    }

    /// The error as rustc would show it.
    pub fn diagnostic(&self) -> Diagnostic {
        match self {
            ConfigError::Invalid {
                location,
                key,
                message,
                detail,
            } => {
                // A message that names its key already (`unknown key `x``) needs no prefix.
                let last = key.rsplit('.').next().unwrap_or(key);
                let message = if message.contains(&format!("`{last}`")) {
                    message.clone()
                } else {
                    format!("`{key}`: {message}")
                };
                Diagnostic {
                    message,
                    origin: detail.snippet.is_none().then(|| location.clone()),
                    snippet: detail.snippet.clone().map(Box::new),
                    notes: detail.notes.clone(),
                    help: detail.help.clone(),
                }
            }
            ConfigError::UnknownStage {
                stage,
                file,
                choices,
            } => {
                let (help, note) = suggest(stage, choices, &format!("stages of {file}"));
                Diagnostic {
                    message: format!("unknown stage `{stage}`"),
                    notes: if choices.is_empty() {
                        vec![list_or_none(choices)]
                    } else {
                        note.into_iter().collect()
                    },
                    help,
                    ..Diagnostic::default()
                }
            }
            ConfigError::File {
                file,
                message,
                snippet,
            } => Diagnostic {
                message: message.clone(),
                origin: Some(file.clone()),
                snippet: snippet.clone(),
                ..Diagnostic::default()
            },
            other => Diagnostic::new(other.to_string()),
        }
    }
}

fn list_or_none(choices: &[String]) -> String {
    if choices.is_empty() {
        "no stage: add a table such as [production] with hosts".to_owned()
    } else {
        format!(
            "these stages: {}",
            choices
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// What of a key a diagnostic marks with its caret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark<'a> {
    /// The key itself (an unknown key).
    Key,
    /// Its value (a wrong type or value); a table's key when the value is a table.
    Value,
    /// The item of its list (or its value) equal to this (an unknown role in `roles`).
    Item(&'a str),
}

/// A loaded `Ship.toml`: its stages, and the merged figment ready to select one.
#[derive(Debug)]
#[non_exhaustive]
pub struct Loaded {
    figment: Figment,
    /// The adapters' tables of every layer, merged as `figment` is.
    adapters: Figment,
    adapter_tables: Vec<String>,
    ship_toml: PathBuf,
    text: String,
    /// The Cargo.toml of `[workspace.metadata.ship]` and its text, when it could be read.
    cargo: Option<(PathBuf, String)>,
    stages: Vec<String>,
}

/// One configuration layer, as a figment provider with a name for error messages.
struct Layer {
    name: String,
    file: Option<PathBuf>,
    data: Map<Profile, Dict>,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        let meta = Metadata::named(self.name.clone());
        match &self.file {
            Some(f) => meta.source(figment::Source::File(f.clone())),
            None => meta,
        }
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(self.data.clone())
    }
}

/// `source` is a one-key table for users, but figment merges tables key by key: a stage's
/// `{ dir = "dist" }` would be merged into the default `{ git = "HEAD" }`. While merging,
/// it is held as a `[kind, value]` pair, which replaces instead of merging.
fn pair_source(dict: &mut Dict) {
    if let Some(Value::Dict(_, table)) = dict.get("source") {
        if table.len() == 1 {
            let (k, v) = table.iter().next().expect("one entry");
            let pair = Value::from(vec![Value::from(k.clone()), v.clone()]);
            dict.insert("source".to_owned(), pair);
        } else if let (2, Some(url), Some(sha)) =
            (table.len(), table.get("archive"), table.get("sha256"))
        {
            // `{ archive = URL, sha256 = … }`: one source, held as [kind, value, sha256].
            let triple = Value::from(vec![Value::from("archive"), url.clone(), sha.clone()]);
            dict.insert("source".to_owned(), triple);
        }
    }
}

fn layer(name: String, file: Option<PathBuf>, profile: Profile, mut dict: Dict) -> Layer {
    pair_source(&mut dict);
    Layer {
        name,
        file,
        data: Map::from([(profile, dict)]),
    }
}

/// The settings and the adapters' tables, each merged from the same layers.
struct Merging<'a> {
    settings: Figment,
    adapters: Figment,
    adapter_tables: &'a [String],
}

impl Merging<'_> {
    /// Merges one layer: its adapters' tables into `adapters`, the rest into `settings`.
    fn merge(&mut self, name: String, file: Option<PathBuf>, profile: Profile, mut dict: Dict) {
        let tables: Dict = self
            .adapter_tables
            .iter()
            .filter_map(|t| Some((t.clone(), dict.remove(t)?)))
            .collect();
        if !tables.is_empty() {
            let adapters = std::mem::take(&mut self.adapters);
            self.adapters = adapters.merge(Layer {
                name: name.clone(),
                file: file.clone(),
                data: Map::from([(profile.clone(), tables)]),
            });
        }
        let settings = std::mem::take(&mut self.settings);
        self.settings = settings.merge(layer(name, file, profile, dict));
    }
}

/// Sets `path` (dotted) to `value` in `dict`, creating tables on the way.
fn insert_path(dict: &mut Dict, path: &[&str], value: Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert((*last).to_owned(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry((*first).to_owned())
                .or_insert_with(|| Value::from(Dict::new()));
            if !matches!(entry, Value::Dict(..)) {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

impl Sources {
    /// Reads `Ship.toml` and builds every layer. Fails on a missing or unparsable file.
    pub fn load(&self) -> Result<Loaded, ConfigError> {
        let file = self.ship_toml.display().to_string();
        let text = match std::fs::read_to_string(&self.ship_toml) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::MissingShipToml {
                    path: self.ship_toml.clone(),
                });
            }
            Err(e) => {
                return Err(ConfigError::File {
                    file,
                    message: e.to_string(),
                    snippet: None,
                });
            }
        };
        let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::File {
            file: file.clone(),
            message: e.message().trim_end().to_owned(),
            snippet: e.span().map(|r| Box::new(Snippet::of(&file, &text, r, ""))),
        })?;

        let mut figment = Merging {
            settings: Figment::new(),
            adapters: Figment::new(),
            adapter_tables: &self.adapter_tables,
        };
        figment.merge(
            "built-in defaults".to_owned(),
            None,
            Profile::Default,
            defaults()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        );

        if let Some((manifest, value)) = &self.cargo_metadata {
            let name = format!("{} [workspace.metadata.ship]", manifest.display());
            let dict = to_dict(value).map_err(|message| ConfigError::File {
                file: name.clone(),
                message,
                snippet: None,
            })?;
            figment.merge(name, Some(manifest.clone()), Profile::Default, dict);
        }

        let mut stages = Vec::new();
        for (key, value) in &table {
            let profile = match key.as_str() {
                "default" => Profile::Default,
                "global" => {
                    return Err(invalid_in(
                        &file,
                        &text,
                        &[key],
                        Mark::Key,
                        "reserved",
                        "`global` is reserved: name the stage differently".to_owned(),
                    ));
                }
                // A stage named like a misspelt `[default]` would take its settings away
                // from every stage without a word: refused, with the fix.
                stage if crate::diagnostic::closest(stage, ["default"]).is_some() => {
                    return Err(invalid_in(
                        &file,
                        &text,
                        &[key],
                        Mark::Key,
                        "not a stage",
                        format!(
                            "`[{stage}]` looks like a misspelt `[default]`: as a stage, its \
                             settings would apply to no other stage"
                        ),
                    )
                    .with_hint((
                        Some("did you mean `default`?".to_owned()),
                        Some("name the stage differently if it is one".to_owned()),
                    )));
                }
                stage => {
                    stages.push(stage.to_owned());
                    Profile::new(stage)
                }
            };
            let toml::Value::Table(_) = value else {
                return Err(invalid_in(
                    &file,
                    &text,
                    &[key],
                    Mark::Key,
                    "expected a table",
                    format!(
                        "expected a table ([default] or a stage such as [{key}]), found a {}",
                        value.type_str()
                    ),
                ));
            };
            let dict = to_dict(value).map_err(|message| ConfigError::File {
                file: file.clone(),
                message,
                snippet: None,
            })?;
            figment.merge(
                self.ship_toml.display().to_string(),
                Some(self.ship_toml.clone()),
                profile,
                dict,
            );
        }

        // In the order the file has them (a TOML table is sorted by name): the first is the
        // default of commands that take an optional stage.
        stages.sort_by_cached_key(|s| line_of(&text, &[s.as_str()]).unwrap_or(usize::MAX));

        for (var, raw) in &self.env {
            let Some(key) = self.env_key(var) else {
                continue;
            };
            let path: Vec<&str> = key.split("__").collect();
            let mut dict = Dict::new();
            insert_path(&mut dict, &path, parse_value(raw));
            figment.merge(
                format!("environment variable {var}"),
                None,
                Profile::Global,
                dict,
            );
        }

        for (key, raw) in &self.overrides {
            let path: Vec<&str> = key.split('.').collect();
            let mut dict = Dict::new();
            insert_path(&mut dict, &path, parse_value(raw));
            figment.merge(
                format!("command line (--set {key}=...)"),
                None,
                Profile::Global,
                dict,
            );
        }

        Ok(Loaded {
            figment: figment.settings,
            adapters: figment.adapters,
            adapter_tables: self.adapter_tables.clone(),
            ship_toml: self.ship_toml.clone(),
            text,
            cargo: self.cargo_metadata.as_ref().and_then(|(manifest, _)| {
                Some((manifest.clone(), std::fs::read_to_string(manifest).ok()?))
            }),
            stages,
        })
    }
}

impl Sources {
    /// The configuration key a `SHIP_*` variable sets, lowercase (`None`: not configuration).
    fn env_key(&self, var: &str) -> Option<String> {
        let rest = var.strip_prefix("SHIP_")?;
        // What cargo ship gives the tasks it runs is never configuration: a cargo ship a task
        // starts would read the deploy's own values (its `deploy_to`) as its own.
        if crate::protocol::is_task_variable(var) || rest.is_empty() {
            return None;
        }
        let key = rest.to_ascii_lowercase();
        // Only a key of the configuration (or an adapter's table): CI systems set
        // `SHIP_*` variables of their own (`SHIP_TOKEN`), which are not ours to read.
        let top = key.split("__").next().unwrap_or_default();
        (settings_keys().contains(&top) || self.adapter_tables.iter().any(|t| t == top))
            .then_some(key)
    }

    /// The `SHIP_*` variables of [`Sources::env`] that are ignored because they name no
    /// configuration key (the variables cargo ship gives tasks are not among them).
    pub fn ignored_variables(&self) -> Vec<&str> {
        self.env
            .iter()
            .map(|(var, _)| var.as_str())
            .filter(|var| {
                var.starts_with("SHIP_")
                    && !crate::protocol::is_task_variable(var)
                    && self.env_key(var).is_none()
            })
            .collect()
    }
}

/// The top-level keys of [`Settings`], as serde knows them (asked once, by deserializing a
/// key it does not know).
fn settings_keys() -> &'static [&'static str] {
    static KEYS: std::sync::OnceLock<&'static [&'static str]> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let mut probe = Dict::new();
        probe.insert("\u{0}probe".to_owned(), Value::from(0));
        let error = Figment::from(figment::providers::Serialized::defaults(probe))
            .extract::<Settings>()
            .err();
        error
            .into_iter()
            .flatten()
            .find_map(|e| match e.kind {
                Kind::UnknownField(_, expected) => Some(expected),
                _ => None,
            })
            .unwrap_or(&[])
    })
}

fn parse_value(raw: &str) -> Value {
    Value::from_str(raw).unwrap_or_else(|never| match never {})
}

fn to_dict<T: serde::Serialize>(value: &T) -> Result<Dict, String> {
    match Value::serialize(value) {
        Ok(Value::Dict(_, dict)) => Ok(dict),
        Ok(other) => Err(format!("expected a table, found {}", other.to_actual())),
        Err(e) => Err(e.to_string()),
    }
}

impl Loaded {
    /// The stages `Ship.toml` defines, in file order.
    pub fn stages(&self) -> &[String] {
        &self.stages
    }

    /// The path of `Ship.toml`.
    pub fn ship_toml(&self) -> &Path {
        &self.ship_toml
    }

    /// The merged settings of `stage`.
    pub fn settings(&self, stage: &str) -> Result<Settings, ConfigError> {
        if !self.stages.iter().any(|s| s == stage) {
            return Err(ConfigError::UnknownStage {
                stage: stage.to_owned(),
                file: self.ship_toml.display().to_string(),
                choices: self.stages.clone(),
            });
        }
        let selected = self.figment.clone().select(stage);
        let mut settings = selected
            .extract::<Settings>()
            .map_err(|e| self.explain(stage, e))?;
        settings.adapters = self
            .adapters
            .clone()
            .select(stage)
            .extract::<Dict>()
            .map_err(|e| self.explain(stage, e))?
            .into_iter()
            .collect();
        Ok(settings)
    }

    /// Where a key of the selected stage was set: `Ship.toml:12` (stage table first, then
    /// `[default]`), `Cargo.toml:9`, or the name of the layer that set it.
    pub fn location_of(&self, stage: &str, path: &[&str]) -> String {
        self.place(stage, path, Mark::Key, "").0
    }

    /// The full key name as a user would look for it: `production.roles.web.hosts` when the
    /// stage table sets it, `default.…` when `[default]` does, `workspace.metadata.ship.…`
    /// in Cargo.toml, the bare key otherwise.
    pub fn key_of(&self, stage: &str, path: &[&str]) -> String {
        self.place(stage, path, Mark::Key, "").1
    }

    /// An error at the key `path` of `stage` (as [`Settings`] has it): where it was set,
    /// the key as written there, and the line with `mark` under its key or value.
    pub fn invalid(
        &self,
        stage: &str,
        path: &[&str],
        mark: Mark<'_>,
        label: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        let (location, key, snippet) = self.place(stage, path, mark, label);
        ConfigError::Invalid {
            location,
            key,
            message: message.into(),
            detail: Box::new(Detail {
                snippet,
                ..Detail::default()
            }),
        }
    }

    /// The key `path` of `stage` is none of `choices` (the keys valid where it is): the key
    /// marked, the table it is in, and the closest valid key or the list of them.
    pub fn unknown_key<S: AsRef<str>>(
        &self,
        stage: &str,
        path: &[&str],
        choices: &[S],
    ) -> ConfigError {
        let found = path.last().copied().unwrap_or_default();
        let (location, key, snippet) = self.place(stage, path, Mark::Key, "unknown key");
        let message = match key.rsplit_once('.') {
            Some((table, _)) => format!("unknown key `{found}` in `[{table}]`"),
            None => format!("unknown key `{found}`"),
        };
        ConfigError::Invalid {
            location,
            key,
            message,
            detail: Box::new(Detail {
                snippet,
                ..Detail::default()
            }),
        }
        .with_hint(suggest(found, choices, "valid keys here"))
    }

    /// Where `path` of `stage` was set: (location, key as written, the marked line).
    fn place(
        &self,
        stage: &str,
        path: &[&str],
        mark: Mark<'_>,
        label: &str,
    ) -> (String, String, Option<Snippet>) {
        let meta = [&self.figment, &self.adapters].into_iter().find_map(|f| {
            f.clone()
                .select(stage)
                .find_metadata(&path.join("."))
                .cloned()
        });
        let file = meta
            .as_ref()
            .and_then(|m| m.source.as_ref())
            .and_then(|s| s.file_path());
        match (&meta, file) {
            (Some(m), Some(f)) if self.cargo.as_ref().is_some_and(|(c, _)| c == f) => {
                let (manifest, text) = self.cargo.as_ref().expect("checked");
                let shown = manifest.display().to_string();
                for table in [
                    ["workspace", "metadata", "ship"],
                    ["package", "metadata", "ship"],
                ] {
                    let mut full = table.to_vec();
                    full.extend_from_slice(path);
                    if let Some(snippet) = marked(&shown, text, &full, mark, label) {
                        let location = format!("{shown}:{}", snippet.line);
                        return (location, full.join("."), Some(snippet));
                    }
                }
                (m.name.to_string(), path.join("."), None)
            }
            // Set by no file (built-in defaults, an environment variable, --set): named.
            (Some(m), f) if f != Some(self.ship_toml.as_path()) => {
                (m.name.to_string(), path.join("."), None)
            }
            _ => {
                let shown = self.ship_toml.display().to_string();
                for profile in [stage, "default"] {
                    let mut full = vec![profile];
                    full.extend_from_slice(path);
                    if let Some(snippet) = marked(&shown, &self.text, &full, mark, label) {
                        let location = format!("{shown}:{}", snippet.line);
                        return (location, full.join("."), Some(snippet));
                    }
                }
                (shown, path.join("."), None)
            }
        }
    }

    /// An error in how a secret is read: said without quoting anything the user wrote after
    /// its name (a value written there may be the secret itself), its line masked after `=`.
    fn secret_not_shown(&self, stage: &str, path: &[&str], kind: &Kind) -> ConfigError {
        const FORMS: [&str; 4] = ["env", "command", "dotenv", "file"];
        let mut error = self.invalid(
            stage,
            path,
            Mark::Key,
            "a secret says where its value is read",
            format!(
                "`{}` must say where its value is read: `{{ env = \"VAR\" }}`, \
                 `{{ command = \"...\" }}`, `{{ dotenv = \"FILE\" }}` or `{{ file = \"PATH\" }}`; \
                 a secret's value is never written in Ship.toml",
                path.join(".")
            ),
        );
        if let ConfigError::Invalid { detail, .. } = &mut error {
            if let Some(snippet) = detail.snippet.as_mut()
                && let Some(eq) = snippet.source.find('=')
            {
                let (name, value) = snippet.source.split_at(eq + 1);
                snippet.source = format!("{name}{}", "*".repeat(value.chars().count()));
            }
            // A misspelt form (`evn`) may be named back: it is one of ours, not a value.
            let found = match kind {
                Kind::UnknownVariant(found, _) | Kind::UnknownField(found, _) => Some(found),
                _ => None,
            };
            detail.help = found
                .and_then(|f| crate::diagnostic::closest(f, FORMS))
                .map(|c| format!("did you mean `{c}`?"));
        }
        error
    }

    fn explain(&self, stage: &str, error: figment::Error) -> ConfigError {
        let path: Vec<&str> = error.path.iter().map(String::as_str).collect();
        if path.first() == Some(&"secrets") && path.len() >= 2 {
            return self.secret_not_shown(stage, &path[..2], &error.kind);
        }
        match &error.kind {
            Kind::UnknownField(found, expected) => {
                // At the top of a stage, the adapters' tables are valid keys too.
                let top = path.len() <= 1;
                let tables = self.adapter_tables.iter().filter(|_| top);
                let choices: Vec<&str> = expected
                    .iter()
                    .copied()
                    .chain(tables.map(String::as_str))
                    .collect();
                let mut path = path.clone();
                if path.last() != Some(&found.as_str()) {
                    path.push(found);
                }
                self.unknown_key(stage, &path, &choices)
            }
            Kind::UnknownVariant(found, expected) => self
                .invalid(
                    stage,
                    &path,
                    Mark::Value,
                    "unknown value",
                    format!("unknown value `{found}`"),
                )
                .with_hint(suggest(found, expected, "expected one of")),
            Kind::MissingField(field) => {
                let mut full = path.clone();
                full.push(field);
                ConfigError::Invalid {
                    location: self.ship_toml.display().to_string(),
                    key: format!("{stage}.{}", full.join(".")),
                    message: format!(
                        "missing: set `{field}` in [default] or [{stage}]{}",
                        if path.is_empty() {
                            String::new()
                        } else {
                            format!(" under `{}`", path.join("."))
                        }
                    ),
                    detail: Box::default(),
                }
            }
            Kind::InvalidType(actual, expected) => {
                let expected = in_words(expected);
                self.invalid(
                    stage,
                    &path,
                    Mark::Value,
                    &format!("expected {expected}"),
                    format!("expected {expected}, found {}", found_words(actual)),
                )
            }
            other => self.invalid(stage, &path, Mark::Value, "", other.to_string()),
        }
    }
}

/// What serde expected, as a `Ship.toml` writer says it.
pub(crate) fn in_words(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" | "isize" => {
            "a whole number".to_owned()
        }
        "a boolean" => "`true` or `false`".to_owned(),
        "a sequence" => "a list".to_owned(),
        "a map" => "a table".to_owned(),
        s if s.starts_with("struct ") => "a table".to_owned(),
        s => s.to_owned(),
    }
}

/// What was found, as a `Ship.toml` writer says it.
pub(crate) fn found_words(actual: &figment::error::Actual) -> String {
    use figment::error::Actual;
    match actual {
        Actual::Bool(b) => format!("`{b}`"),
        Actual::Unsigned(n) => format!("the number {n}"),
        Actual::Signed(n) => format!("the number {n}"),
        Actual::Float(n) => format!("the number {n}"),
        Actual::Str(s) => format!("string {s:?}"),
        Actual::Seq => "a list".to_owned(),
        Actual::Map => "a table".to_owned(),
        other => other.to_string(),
    }
}

/// The byte range of the key (or value, or item) at `path` in the TOML `text`; a key
/// path ending early at a value that is not a table marks that value's key.
fn span_of(text: &str, path: &[&str], mark: Mark<'_>) -> Option<std::ops::Range<usize>> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).ok()?;
    let mut table = doc.get_ref();
    for (i, part) in path.iter().enumerate() {
        let (key, value) = table.iter().find(|(k, _)| k.get_ref() == part)?;
        match value.get_ref() {
            DeValue::Table(inner) if i + 1 < path.len() => table = inner,
            found => {
                // A `[table]` is marked at its key (its span is more than a line); an inline
                // `{ … }` table at its value.
                let inline = text.get(value.span()).is_some_and(|v| v.starts_with('{'));
                let value_span = match found {
                    DeValue::Table(_) if !inline => key.span(),
                    _ => value.span(),
                };
                return Some(match (mark, found) {
                    (Mark::Key, _) => key.span(),
                    (_, _) if i + 1 < path.len() => key.span(),
                    (Mark::Item(item), DeValue::Array(items)) => items
                        .iter()
                        .find(|v| matches!(v.get_ref(), DeValue::String(s) if s == item))
                        .map_or(value_span, |v| v.span()),
                    _ => value_span,
                });
            }
        }
    }
    None
}

/// The line of `path` in the TOML `text` of `file`, marked.
fn marked(file: &str, text: &str, path: &[&str], mark: Mark<'_>, label: &str) -> Option<Snippet> {
    span_of(text, path, mark).map(|range| Snippet::of(file, text, range, label))
}

/// The 1-based line of the key `path` in the TOML `text`.
fn line_of(text: &str, path: &[&str]) -> Option<usize> {
    span_of(text, path, Mark::Key).map(|r| text[..r.start].matches('\n').count() + 1)
}

/// An error at the key `path` of the file `file` holding `text`.
fn invalid_in(
    file: &str,
    text: &str,
    path: &[&str],
    mark: Mark<'_>,
    label: &str,
    message: String,
) -> ConfigError {
    let snippet = marked(file, text, path, mark, label);
    ConfigError::Invalid {
        location: snippet
            .as_ref()
            .map_or_else(|| file.to_owned(), |s| format!("{file}:{}", s.line)),
        key: path.join("."),
        message,
        detail: Box::new(Detail {
            snippet,
            ..Detail::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_settings_keys_are_serdes() {
        let keys = super::settings_keys();
        for k in [
            "keep_releases",
            "deploy_to",
            "source",
            "env",
            "secrets",
            "tasks",
        ] {
            assert!(keys.contains(&k), "{k} in {keys:?}");
        }
    }
}
