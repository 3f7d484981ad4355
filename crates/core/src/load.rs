//! Loading one stage's [`Settings`] from every configuration layer, with figment.
//!
//! Layers, lowest first: built-in [`defaults`](crate::config::defaults),
//! `[workspace.metadata.ship]` of Cargo.toml, `Ship.toml` `[default]`, `Ship.toml`
//! `[<stage>]`, `SHIP_*` environment variables, and `--set key=value` flags. Stages are
//! figment profiles; the environment and the flags are figment's global profile, so
//! they win over every stage. Every error names the file (and line, when the key is in
//! `Ship.toml`), the key, and what was expected.

use crate::config::{Settings, defaults};
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
    #[error("{file}: {message}")]
    File {
        /// The file.
        file: String,
        /// What went wrong, with line and column when the parser gives them.
        message: String,
    },
    /// The stage is not defined.
    #[error("unknown stage `{stage}`: {file} defines {}", list_or_none(choices))]
    UnknownStage {
        /// The stage asked for.
        stage: String,
        /// The file that defines stages.
        file: String,
        /// The stages it defines.
        choices: Vec<String>,
    },
    /// A key has a wrong value.
    #[error("{location}: key `{key}`: {message}")]
    Invalid {
        /// Where the value came from: `Ship.toml:12`, `environment variable SHIP_X`, ...
        location: String,
        /// The full key, e.g. `production.roles.web.hosts`.
        key: String,
        /// What was wrong and what was expected.
        message: String,
    },
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
                });
            }
        };
        let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::File {
            file: file.clone(),
            message: e.to_string().trim_end().to_owned(),
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
            })?;
            figment.merge(name, Some(manifest.clone()), Profile::Default, dict);
        }

        let mut stages = Vec::new();
        for (key, value) in &table {
            let profile = match key.as_str() {
                "default" => Profile::Default,
                "global" => {
                    return Err(ConfigError::Invalid {
                        location: locate(&file, &text, &[key]),
                        key: key.clone(),
                        message: "`global` is reserved: name the stage differently".to_owned(),
                    });
                }
                stage => {
                    stages.push(stage.to_owned());
                    Profile::new(stage)
                }
            };
            let toml::Value::Table(_) = value else {
                return Err(ConfigError::Invalid {
                    location: locate(&file, &text, &[key]),
                    key: key.clone(),
                    message: format!(
                        "expected a table ([default] or a stage such as [{key}]), found a {}",
                        value.type_str()
                    ),
                });
            };
            let dict = to_dict(value).map_err(|message| ConfigError::File {
                file: file.clone(),
                message,
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
            let Some(rest) = var.strip_prefix("SHIP_") else {
                continue;
            };
            // What cargo ship gives the tasks it runs is never configuration: a cargo ship a task
            // starts would read the deploy's own values (its `deploy_to`) as its own.
            if crate::protocol::is_task_variable(var) || rest.is_empty() {
                continue;
            }
            let key = rest.to_ascii_lowercase();
            // Only a key of the configuration (or an adapter's table): CI systems set
            // `SHIP_*` variables of their own (`SHIP_TOKEN`), which are not ours to read.
            let top = key.split("__").next().unwrap_or_default();
            if !settings_keys().contains(&top) && !self.adapter_tables.iter().any(|t| t == top) {
                continue;
            }
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
            stages,
        })
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
    /// `[default]`), or the name of the layer that set it.
    pub fn location_of(&self, stage: &str, path: &[&str]) -> String {
        let file = self.ship_toml.display().to_string();
        let key = path.join(".");
        let meta = [&self.figment, &self.adapters]
            .into_iter()
            .find_map(|f| f.clone().select(stage).find_metadata(&key).cloned());
        match meta {
            Some(m) if m.source.as_ref().and_then(|s| s.file_path()) == Some(&self.ship_toml) => {
                self.ship_toml_location(stage, path)
                    .unwrap_or_else(|| file.clone())
            }
            Some(m) => m.name.to_string(),
            None => self.ship_toml_location(stage, path).unwrap_or(file),
        }
    }

    /// The full key name as a user would look for it: `production.roles.web.hosts` when the
    /// stage table sets it, `default.…` when `[default]` does, the bare key otherwise.
    pub fn key_of(&self, stage: &str, path: &[&str]) -> String {
        let set_elsewhere = self
            .figment
            .clone()
            .select(stage)
            .find_metadata(&path.join("."))
            .is_some_and(|m| {
                m.source.as_ref().and_then(|s| s.file_path()) != Some(&self.ship_toml)
            });
        if set_elsewhere {
            // An environment variable or a flag: Ship.toml's line is not where it was set.
            return path.join(".");
        }
        for profile in [stage, "default"] {
            let mut full = vec![profile];
            full.extend_from_slice(path);
            if line_of(&self.text, &full).is_some() {
                return full.join(".");
            }
        }
        path.join(".")
    }

    fn ship_toml_location(&self, stage: &str, path: &[&str]) -> Option<String> {
        for profile in [stage, "default"] {
            let mut full = vec![profile];
            full.extend_from_slice(path);
            if let Some(line) = line_of(&self.text, &full) {
                return Some(format!("{}:{line}", self.ship_toml.display()));
            }
        }
        None
    }

    fn explain(&self, stage: &str, error: figment::Error) -> ConfigError {
        let path: Vec<&str> = error.path.iter().map(String::as_str).collect();
        let message = match &error.kind {
            Kind::UnknownField(found, expected) => {
                // At the top of a stage, the adapters' tables are valid keys too.
                let top = path.len() <= 1;
                let tables = self.adapter_tables.iter().filter(|_| top);
                format!(
                    "unknown key `{found}`; valid keys here: {}",
                    expected
                        .iter()
                        .copied()
                        .chain(tables.map(String::as_str))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            Kind::UnknownVariant(found, expected) => format!(
                "unknown value `{found}`; expected one of: {}",
                expected.join(", ")
            ),
            Kind::MissingField(field) => {
                let mut full = path.clone();
                full.push(field);
                return ConfigError::Invalid {
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
                };
            }
            Kind::InvalidType(actual, expected) => {
                format!("expected {expected}, found {actual}")
            }
            other => other.to_string(),
        };
        let from_ship_toml = error
            .metadata
            .as_ref()
            .and_then(|m| m.source.as_ref())
            .and_then(|s| s.file_path())
            == Some(self.ship_toml.as_path());
        let (location, key) = match &error.metadata {
            Some(_) if from_ship_toml => (
                self.ship_toml_location(stage, &path)
                    .unwrap_or_else(|| self.ship_toml.display().to_string()),
                self.key_of(stage, &path),
            ),
            Some(meta) => (meta.name.to_string(), path.join(".")),
            None => (
                self.ship_toml.display().to_string(),
                self.key_of(stage, &path),
            ),
        };
        ConfigError::Invalid {
            location,
            key,
            message,
        }
    }
}

/// The 1-based line of the deepest key of `path` found in the TOML `text`.
fn line_of(text: &str, path: &[&str]) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).ok()?;
    let mut table = doc.get_ref();
    let mut span = None;
    for (i, part) in path.iter().enumerate() {
        let (key, value) = table.iter().find(|(k, _)| k.get_ref() == part)?;
        span = Some(key.span());
        match value.get_ref() {
            DeValue::Table(inner) => table = inner,
            _ if i + 1 == path.len() => {}
            _ => break,
        }
    }
    let start = span?.start;
    Some(text[..start].matches('\n').count() + 1)
}

fn locate(file: &str, text: &str, path: &[&str]) -> String {
    match line_of(text, path) {
        Some(line) => format!("{file}:{line}"),
        None => file.to_owned(),
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
