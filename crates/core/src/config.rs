//! The shape of `Ship.toml`: what a user may write, with serde's `deny_unknown_fields`
//! so that a misspelt key is an error that lists the valid ones.
//!
//! These types are what [`crate::load`] extracts for one stage after merging every
//! configuration layer; [`crate::Stage`] is the validated, resolved form.

use figment::value::Value;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// The settings of one stage, after merging defaults, Cargo.toml metadata, `Ship.toml`
/// `[default]`, `Ship.toml` `[<stage>]`, `SHIP_*` variables and flags.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Settings {
    /// The application's name: used in the lock, the records and the plan.
    pub app: Option<String>,
    /// The absolute directory on each host that holds `releases/`, `shared/` and `current`.
    pub deploy_to: Option<String>,
    /// How releases are laid out on the host: a layout's name, checked by
    /// [`crate::Stage::resolve`] against the names it is given.
    pub layout: LayoutName,
    /// How many releases cleanup keeps on each host (the live one always stays).
    pub keep_releases: usize,
    /// Send hosts only the files they lack: each host keeps a content-addressed store of
    /// files (`.ship/objects/`) and a release is made of hard links to it (layouts that keep
    /// `releases/`, hosts with zstd; see `crate::delta`). Off by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delta: bool,
    /// Files linked into each release from `shared/` (relative paths).
    #[serde(default)]
    pub linked_files: Vec<String>,
    /// Directories linked into each release from `shared/` (relative paths).
    #[serde(default)]
    pub linked_dirs: Vec<String>,
    /// Where the artifact comes from.
    pub source: SourceConfig,
    /// More paths of the project packed into the artifact at the same place, whatever the
    /// source (e.g. `["static", "config/defaults.toml"]` beside a cargo binary).
    #[serde(default)]
    pub include: Vec<String>,
    /// How a `cargo` source's binary is built: its target, features and profile.
    #[serde(default, skip_serializing_if = "CargoBuild::is_empty")]
    pub cargo: CargoBuild,
    /// Commands run once, on the deploying machine, before the artifact is packed.
    #[serde(default)]
    pub build: Vec<String>,
    /// The release id of the `version` layout, when it is not read from the project.
    pub version: Option<String>,
    /// How many hosts a deploy works on at once.
    pub parallel: usize,
    /// Object storage the artifact goes through (`"s3://bucket/prefix"`): uploaded once by
    /// this machine, downloaded by each host that lacks it from a presigned URL.
    pub artifact_store: Option<String>,
    /// An ssh_config file read before `~/.ssh/config` and `/etc/ssh/ssh_config` (relative
    /// to the project root): they still apply to what it does not set.
    pub ssh_config: Option<String>,
    /// How the stage's hosts are reached: `user`, `port`, `identity`, `jump`, `options`.
    #[serde(default, skip_serializing_if = "SshConfig::is_empty")]
    pub ssh: SshConfig,
    /// Per-host `[ssh]` settings, by host (as listed), over the stage's and the roles'.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ssh_hosts: BTreeMap<String, SshConfig>,
    /// Keep each host's SSH connection open this long after a command (e.g. `"5m"`), so
    /// the next command reuses it instead of connecting again; off by default.
    pub keep_connections: Option<String>,
    /// How long connecting to a host may take, e.g. `"10s"`.
    pub connect_timeout: String,
    /// How long one host's script between two sync points (or one command of `run`, `check`,
    /// ...) may take.
    pub command_timeout: String,
    /// Hosts in no role (OpenSSH destinations).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Roles (web, worker, cron, ...) with their hosts and per-role settings.
    #[serde(default)]
    pub roles: BTreeMap<String, RoleConfig>,
    /// The user's tasks, by name.
    #[serde(default)]
    pub tasks: BTreeMap<String, TaskConfig>,
    /// The health check run in the `verify` phase.
    pub health: Option<HealthConfig>,
    /// Deploy in batches: a number of hosts (`4`) or a share of them (`"25%"`); each batch
    /// all or nothing, the next one started when the one before is live and healthy.
    pub rolling: Option<Rolling>,
    /// Stop a rolling deploy after this many failed batches (the finished ones stay on the
    /// new release).
    #[serde(default = "default_max_fail")]
    pub max_fail: usize,
    /// Hosts and roles printed as JSON by a command, besides `hosts` and `roles`.
    pub inventory: Option<InventoryConfig>,
    /// A stage that only pushed commits may reach: `require_pushed` defaults to true.
    #[serde(default)]
    pub protected: bool,
    /// Refuse a git commit that is not on `pushed_to` (default: on for protected stages).
    pub require_pushed: Option<bool>,
    /// The remote-tracking branch a deployed commit must be on, e.g. `"origin/main"`
    /// (default: the upstream of the checked-out branch).
    pub pushed_to: Option<String>,
    /// An annotated git tag made and pushed after a successful deploy, e.g.
    /// `"release-{stage}-{id}"` (`{app}`, `{stage}`, `{id}` are replaced).
    pub tag: Option<String>,
    /// Where to post a JSON summary when a deploy, rollback or promote ends.
    pub notify: Option<NotifyConfig>,
    /// The maintenance page `cargo ship maintenance <stage> on|off` puts up or takes down.
    pub maintenance: Option<MaintenanceConfig>,
    /// The app's environment: `NAME = "value"`, written with the secrets to `shared/.env`
    /// on each host (mode 0600) and linked into each release as `.env`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Secrets of the app's environment, read on this machine when a plan is made and when
    /// it is applied, from where a team keeps them: never in the artifact, the plan, logs or
    /// notifications (the plan shows a digest).
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSource>,
    /// The adapters' tables (such as `[python]`), by name, as written: opaque here, read by
    /// the adapters (see [`crate::adapter`]). Only the names given in
    /// [`crate::Sources::adapter_tables`] are taken; any other unknown key is an error.
    #[serde(skip)]
    pub adapters: BTreeMap<String, Value>,
}

/// The built-in defaults: the lowest configuration layer.
pub fn defaults() -> BTreeMap<&'static str, Value> {
    BTreeMap::from([
        ("layout", Value::from("timestamp")),
        ("keep_releases", Value::from(5u32)),
        ("parallel", Value::from(10u32)),
        ("connect_timeout", Value::from("10s")),
        ("command_timeout", Value::from("30m")),
        (
            "source",
            Value::from(vec![Value::from("git"), Value::from("HEAD")]),
        ),
    ])
}

/// The name of a release-directory strategy (DESIGN.md, Release layouts), as `Ship.toml`
/// and the plan write it: `timestamp`, `version`, `ab`, `single`, ...
///
/// ship-core knows no layout by name: the layouts and their names are ship-layouts'
/// registry, and [`crate::Stage::resolve`] checks a name against the names it is given.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LayoutName(String);

impl LayoutName {
    /// The name used in `Ship.toml`.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl From<&str> for LayoutName {
    fn from(name: &str) -> Self {
        LayoutName(name.to_owned())
    }
}

impl std::fmt::Display for LayoutName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the artifact comes from: `{ git = "HEAD" }`, `{ dir = "dist" }`,
/// `{ archive = "app.tar.gz" }` (a file, or an `https://` URL, with an optional
/// `sha256 = "…"` it must have) or `{ cargo = "my-server" }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SourceConfig {
    /// A `git archive` of this revision of the project's repository.
    Git(String),
    /// A directory of the project, packed after the `build` commands ran.
    Dir(String),
    /// A tarball made elsewhere (e.g. by CI), repacked reproducibly: a file of the project,
    /// or a URL (`http://`, `https://`) fetched when the plan is made; and the sha256 it must
    /// have, if given.
    Archive(String, Option<String>),
    /// A binary of this Cargo workspace, built with `cargo build --release --locked` and
    /// shipped as `bin/<name>` (with the paths of `include`). ship-core packs nothing for
    /// it by itself: the caller builds the binary and adds it as an extra (cargo-ship does).
    Cargo(String),
}

/// How the binary of a `source = { cargo = "<bin>" }` is built:
/// `cargo = { target = "x86_64-unknown-linux-musl", features = ["metrics"],
/// no_default_features = true, profile = "dist" }`. Unset, it is `cargo build --release`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CargoBuild {
    /// `--target`: the binary is then `target/<triple>/<profile>/<bin>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `--features`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// `--no-default-features`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_default_features: bool,
    /// `--profile` (`release` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

impl CargoBuild {
    /// Nothing set: `cargo build --release`.
    pub fn is_empty(&self) -> bool {
        *self == CargoBuild::default()
    }

    /// The arguments of `cargo build` for `bin`, as run and as the plan shows them.
    pub fn args(&self, bin: &str) -> Vec<String> {
        let mut args = vec!["build".to_owned()];
        match self.profile.as_deref() {
            None | Some("release") => args.push("--release".to_owned()),
            Some(p) => args.push(format!("--profile={p}")),
        }
        args.extend(["--locked".to_owned(), "--bin".to_owned(), bin.to_owned()]);
        if let Some(t) = &self.target {
            args.push(format!("--target={t}"));
        }
        if !self.features.is_empty() {
            args.push(format!("--features={}", self.features.join(",")));
        }
        if self.no_default_features {
            args.push("--no-default-features".to_owned());
        }
        args
    }
}

impl SourceConfig {
    /// The kind and the value, as in `git HEAD`.
    pub fn parts(&self) -> (&'static str, &str) {
        match self {
            SourceConfig::Git(v) => ("git", v),
            SourceConfig::Dir(v) => ("dir", v),
            SourceConfig::Archive(v, _) => ("archive", v),
            SourceConfig::Cargo(v) => ("cargo", v),
        }
    }

    fn from_parts(kind: &str, value: String) -> Result<Self, String> {
        match kind {
            "git" => Ok(SourceConfig::Git(value)),
            "dir" => Ok(SourceConfig::Dir(value)),
            "archive" => Ok(SourceConfig::Archive(value, None)),
            "cargo" => Ok(SourceConfig::Cargo(value)),
            other => Err(format!(
                "unknown source `{other}`, expected one of `git`, `dir`, `archive`, `cargo`{}",
                crate::diagnostic::closest(other, ["git", "dir", "archive", "cargo"])
                    .map(|c| format!("; did you mean `{c}`?"))
                    .unwrap_or_default()
            )),
        }
    }
}

impl<'de> Deserialize<'de> for SourceConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // Layers are merged key by key; `source` is kept as a [kind, value] pair while
        // merging (see `load`) so that a stage's `{ dir = ... }` replaces a default
        // `{ git = ... }` instead of being merged into it. Users write a one-key table.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Pair(String, String),
            Triple(String, String, String),
            Table(BTreeMap<String, String>),
        }
        let raw = Raw::deserialize(d).map_err(|_| {
            D::Error::custom(
                "expected a table with one of `git`, `dir`, `archive`, `cargo`, \
                 e.g. source = { git = \"HEAD\" }",
            )
        })?;
        let archive = |url: String, sha: String| {
            if crate::is_sha256_hex(&sha) {
                Ok(SourceConfig::Archive(url, Some(sha.to_ascii_lowercase())))
            } else {
                Err(D::Error::custom(format!(
                    "`sha256`: expected the archive's sha256, 64 hex digits, got {sha:?}"
                )))
            }
        };
        let (kind, value) = match raw {
            Raw::Pair(k, v) => (k, v),
            Raw::Triple(k, url, sha) if k == "archive" => return archive(url, sha),
            Raw::Triple(k, _, _) => {
                return Err(D::Error::custom(format!(
                    "`sha256` goes with `archive`, not `{k}`"
                )));
            }
            Raw::Table(mut t)
                if t.len() == 2 && t.contains_key("archive") && t.contains_key("sha256") =>
            {
                let url = t.remove("archive").expect("checked");
                let sha = t.remove("sha256").expect("checked");
                return archive(url, sha);
            }
            Raw::Table(t) if t.len() == 1 => t.into_iter().next().expect("one entry"),
            Raw::Table(t) => {
                return Err(D::Error::custom(format!(
                    "expected exactly one of `git`, `dir`, `archive`, `cargo`, found {}",
                    t.keys()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        };
        SourceConfig::from_parts(&kind, value).map_err(D::Error::custom)
    }
}

/// Where a secret's value is read, on the deploying machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum SecretSource {
    /// This machine's environment variable of that name: `{ env = "SHOP_DB_PASSWORD" }`.
    Env(String),
    /// A command's standard output, its last newline removed: `{ command = "pass show shop/db" }`
    /// (run with `sh -c` in the project's root).
    Command(String),
    /// The value of the secret's own name in a dotenv file (`NAME=value` lines), usually
    /// outside git: `{ dotenv = "../secrets/shop.env" }`.
    Dotenv(String),
    /// A whole file, its last newline removed: `{ file = "~/.config/shop/api-token" }`.
    File(String),
}

/// One role's hosts and the settings that apply to its hosts only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RoleConfig {
    /// The role's hosts (OpenSSH destinations, as in `~/.ssh/config`).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Files linked from `shared/` on this role's hosts, besides the stage's.
    #[serde(default)]
    pub linked_files: Vec<String>,
    /// Directories linked from `shared/` on this role's hosts, besides the stage's.
    #[serde(default)]
    pub linked_dirs: Vec<String>,
    /// This role's health check, instead of the stage's.
    pub health: Option<HealthConfig>,
    /// The host of this role that `once` tasks run on (default: the first listed).
    pub primary: Option<String>,
    /// How this role's hosts are reached, over the stage's `[ssh]`.
    #[serde(default, skip_serializing_if = "SshConfig::is_empty")]
    pub ssh: SshConfig,
}

/// `[<stage>.ssh]`, `[<stage>.roles.<role>.ssh]`, `[<stage>.ssh_hosts."<host>"]`, or an
/// inventory host's `"ssh"`: how hosts are reached (see [`crate::ssh`]). What is not set
/// here, the ssh_config decides.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SshConfig {
    /// The login user (`ssh -l`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The port (`ssh -p`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The only private key offered (`ssh -i`, with `IdentitiesOnly=yes`); relative to the
    /// project root unless absolute or `~/`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Jump hosts (bastions), the first reached directly: `"bastion"` or
    /// `["deploy@outer:2200", "inner"]`; `[]` means none (over a wider setting).
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Option::is_none"
    )]
    pub jump: Option<Vec<String>>,
    /// More ssh options, `{ ServerAliveInterval = "30" }` (`ssh -o Key=Value`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

impl SshConfig {
    /// Nothing set.
    pub fn is_empty(&self) -> bool {
        *self == SshConfig::default()
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    match Raw::deserialize(d) {
        Ok(Raw::One(s)) => Ok(Some(vec![s])),
        Ok(Raw::Many(v)) => Ok(Some(v)),
        Err(_) => Err(serde::de::Error::custom(
            "expected a host or a list of hosts, e.g. jump = [\"bastion.example.com\"]",
        )),
    }
}

/// A user task: a shell command hooked before or after a phase or another task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// The shell command, run with `sh -c` in the new release's directory.
    pub run: String,
    /// Run before this phase or task.
    pub before: Option<String>,
    /// Run after this phase or task.
    pub after: Option<String>,
    /// Run on the hosts of these roles only (default: every host).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Run once: `true` (per deploy: on the primary or first host of its roles, e.g.
    /// migrations) or `"role"` (on the primary or first host of each of its roles).
    #[serde(default)]
    pub once: Once,
    /// Run on the deploying machine instead of the hosts.
    #[serde(default)]
    pub local: bool,
    /// A sentence for `cargo ship tasks` and the plan.
    pub description: Option<String>,
}

/// The health check of the `verify` phase: a command run on each host, or a URL fetched on
/// each host, tried `1 + retries` times `interval` apart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HealthConfig {
    /// The command run on each host in the new release's directory; exit 0 means healthy.
    pub run: Option<String>,
    /// A URL fetched on each host (curl, wget or python3, whichever it has); a 2xx answer
    /// means healthy. `{host}` is replaced by the host's name.
    pub url: Option<String>,
    /// How long one try may take, e.g. `"30s"`.
    #[serde(default = "default_health_timeout")]
    pub timeout: String,
    /// How many more tries after a failed one.
    #[serde(default)]
    pub retries: u32,
    /// The pause between tries, e.g. `"2s"`.
    #[serde(default = "default_health_interval")]
    pub interval: String,
}

fn default_health_interval() -> String {
    "2s".to_owned()
}

fn default_health_timeout() -> String {
    "30s".to_owned()
}

/// `[<stage>.notify]`: a webhook told about every deploy, rollback and promote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct NotifyConfig {
    /// The URL a JSON summary is POSTed to (`http://` or `https://`).
    pub webhook: String,
    /// How long the POST may take, e.g. `"10s"`; a failure is a warning, never a failed deploy.
    #[serde(default = "default_notify_timeout")]
    pub timeout: String,
}

fn default_notify_timeout() -> String {
    "10s".to_owned()
}

/// `[<stage>.maintenance]`: a page the web server serves while it exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MaintenanceConfig {
    /// Where the web server looks for it, relative to `current/`, e.g.
    /// `"public/maintenance.html"`.
    pub file: String,
    /// The page shipped in the release to link there (relative to the release); without it,
    /// a plain built-in page is written.
    pub page: Option<String>,
    /// A command run on each host before the page goes up or comes down (in `current/`,
    /// with `SHIP_MAINTENANCE=on|off`).
    pub before: Option<String>,
    /// A command run on each host after.
    pub after: Option<String>,
}

fn default_max_fail() -> usize {
    1
}

/// `rolling = 4` or `rolling = "25%"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Rolling {
    /// So many hosts per batch.
    Hosts(usize),
    /// A share of the hosts per batch, as written: `"25%"`.
    Share(String),
}

/// `inventory = { command = "./hosts.sh production" }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct InventoryConfig {
    /// Run with `sh -c` in the project's root; prints `{"hosts": [{"name": ..., "roles":
    /// [...], "vars": {...}, "primary": false}]}`.
    pub command: String,
}

/// How often a task runs: on every host of its roles, once per deploy, or once per role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Once {
    /// On every host of its roles.
    #[default]
    No,
    /// Once per deploy (`once = true`).
    Deploy,
    /// Once per role (`once = "role"`).
    Role,
}

impl Once {
    /// Not on every host.
    pub fn is_once(self) -> bool {
        self != Once::No
    }
}

impl Serialize for Once {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Once::No => s.serialize_bool(false),
            Once::Deploy => s.serialize_bool(true),
            Once::Role => s.serialize_str("role"),
        }
    }
}

impl<'de> Deserialize<'de> for Once {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            Word(String),
        }
        match Raw::deserialize(d)
            .map_err(|_| D::Error::custom("expected true, false, \"deploy\" or \"role\""))?
        {
            Raw::Flag(false) => Ok(Once::No),
            Raw::Flag(true) => Ok(Once::Deploy),
            Raw::Word(w) if w == "deploy" => Ok(Once::Deploy),
            Raw::Word(w) if w == "role" => Ok(Once::Role),
            Raw::Word(w) => Err(D::Error::custom(format!(
                "{w:?}: expected true, false, \"deploy\" (once per deploy) or \"role\" (once per role)"
            ))),
        }
    }
}

/// An adapter's table (such as `[python]`) that cannot be used, with the key at fault
/// inside it; the caller turns it into a [`crate::ConfigError`] naming file and line,
/// with a caret under the key or value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct TableError {
    /// The key inside the table (`["django", "migrate"]`); empty for the table itself.
    pub key: Vec<String>,
    /// What was expected.
    pub message: String,
    /// How to show it.
    pub shown: Box<Shown>,
}

/// How a [`TableError`] is shown besides its message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shown {
    /// When the key itself is unknown: the valid keys where it is (its caret goes under
    /// the key, not the value).
    pub unknown_key: Option<Vec<String>>,
    /// The item of the key's list at fault (an unknown role in `roles`), to mark it.
    pub item: Option<String>,
    /// What the caret under the value says.
    pub label: String,
    /// The likely fix and what else helps, as [`crate::diagnostic::suggest`] gives them.
    pub hint: (Option<String>, Option<String>),
}

impl TableError {
    /// An error at `key`.
    pub fn at(key: &[&str], message: impl Into<String>) -> TableError {
        TableError {
            key: key.iter().map(|k| (*k).to_owned()).collect(),
            message: message.into(),
            shown: Box::default(),
        }
    }
}

/// Reads an adapter's table (as [`crate::Stage::adapters`] holds it) into `T`; unknown keys
/// and wrong types come back with their path, said as for the rest of the configuration.
pub fn read_table<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, TableError> {
    use figment::error::Kind;
    value.deserialize().map_err(|e| {
        let mut error = TableError {
            key: e.path.clone(),
            ..TableError::at(&[], String::new())
        };
        match &e.kind {
            Kind::UnknownField(found, expected) => {
                error.message = format!("unknown key `{found}`");
                if error.key.last() != Some(found) {
                    error.key.push(found.clone());
                }
                error.shown.unknown_key = Some(expected.iter().map(|k| (*k).to_owned()).collect());
            }
            Kind::UnknownVariant(found, expected) => {
                error.message = format!("unknown value `{found}`");
                error.shown.label = "unknown value".to_owned();
                error.shown.hint = crate::diagnostic::suggest(found, expected, "expected one of");
            }
            Kind::InvalidType(actual, expected) => {
                let expected = crate::load::in_words(expected);
                error.message = format!(
                    "expected {expected}, found {}",
                    crate::load::found_words(actual)
                );
                error.shown.label = format!("expected {expected}");
            }
            other => error.message = other.to_string(),
        }
        error
    })
}
