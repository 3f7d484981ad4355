//! The `[<stage>.python]` table.

use serde::{Deserialize, Serialize};
use ship_core::{TableError, config::read_table};

/// What `[<stage>.python]` says, with its defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PythonConfig {
    /// `requirements.txt` (its requirements) or `pyproject.toml` (the project and its
    /// dependencies), relative to the project root.
    #[serde(default = "default_requirements")]
    pub requirements: String,
    /// The interpreter on the hosts.
    #[serde(default = "default_python")]
    pub python: String,
    /// The interpreter on this machine that builds the wheels.
    #[serde(default = "default_python")]
    pub local_python: String,
    /// Where the virtualenv appears in each release (a link into `.ship/venvs/`).
    #[serde(default = "default_venv")]
    pub venv: String,
    /// Build wheels here and install them on the hosts with `--no-index` (true), or let each
    /// host install from an index (false).
    #[serde(default = "default_true")]
    pub wheelhouse: bool,
    /// The package index to use instead of PyPI (for the build's own dependencies too,
    /// setuptools say: pip gives its options to the build's environment).
    pub index_url: Option<String>,
    /// More indexes, looked in beside `index_url` (or PyPI): a private index next to PyPI.
    /// One URL or a list.
    #[serde(default, deserialize_with = "one_or_many")]
    pub extra_index_url: Vec<String>,
    /// The roles whose hosts get the virtualenv (default: every host).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Ready-made Django tasks.
    #[serde(default)]
    pub django: DjangoConfig,
    /// More `manage.py` commands run on every host of `roles` after `install`, e.g.
    /// `["check --deploy"]`.
    #[serde(default)]
    pub manage: Vec<String>,
}

/// `[<stage>.python.django]`: the tasks every Django deploy has.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DjangoConfig {
    /// `django.migrate`: `manage.py migrate --noinput`, once per deploy, on the first host of
    /// `roles`, after `install` (before any host switches).
    #[serde(default)]
    pub migrate: bool,
    /// `django.collectstatic`: `manage.py collectstatic --noinput` on every host of `roles`.
    #[serde(default)]
    pub collectstatic: bool,
    /// The roles these run on (default: the `python` table's roles).
    #[serde(default)]
    pub roles: Vec<String>,
}

/// A string or a list of strings, as a list.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

fn default_requirements() -> String {
    "requirements.txt".to_owned()
}
fn default_python() -> String {
    "python3".to_owned()
}
fn default_venv() -> String {
    "venv".to_owned()
}
fn default_true() -> bool {
    true
}

impl PythonConfig {
    /// Reads the table as Ship.toml holds it (see `ship_core::Stage::adapters`).
    ///
    /// ```
    /// use figment::value::{Dict, Value};
    /// let mut table = Dict::new();
    /// table.insert("requirements".into(), Value::from("requirements.txt"));
    /// let cfg = ship_python::PythonConfig::from_value(&Value::from(table)).unwrap();
    /// assert_eq!(cfg.venv, "venv");
    /// assert!(cfg.wheelhouse);
    /// ```
    pub fn from_value(value: &figment::value::Value) -> Result<PythonConfig, TableError> {
        let cfg: PythonConfig = read_table(value)?;
        let problem = TableError::at;
        for (key, path) in [("requirements", &cfg.requirements), ("venv", &cfg.venv)] {
            ship_core::stage::check_relative_path(path).map_err(|m| problem(&[key], m))?;
        }
        if !(cfg.requirements.ends_with(".txt") || cfg.requirements.ends_with("pyproject.toml")) {
            return Err(problem(
                &["requirements"],
                format!(
                    "{:?}: expected a requirements file (`requirements.txt`) or a \
                     `pyproject.toml`",
                    cfg.requirements
                ),
            ));
        }
        for (key, v) in [("python", &cfg.python), ("local_python", &cfg.local_python)] {
            if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(problem(
                    &[key],
                    format!("{v:?}: expected an interpreter name or path, e.g. \"python3.12\""),
                ));
            }
        }
        for (i, m) in cfg.manage.iter().enumerate() {
            if m.trim().is_empty() || m.contains('\n') {
                return Err(problem(
                    &["manage"],
                    format!(
                        "item {i}: expected manage.py arguments on one line, e.g. \"check --deploy\""
                    ),
                ));
            }
        }
        Ok(cfg)
    }

    /// The roles Django's tasks run on.
    pub fn django_roles(&self) -> &[String] {
        if self.django.roles.is_empty() {
            &self.roles
        } else {
            &self.django.roles
        }
    }
}
