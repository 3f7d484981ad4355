//! A stage resolved and validated: its hosts with their roles, its tasks, its settings.

use crate::config::{
    HealthConfig, LayoutName, MaintenanceConfig, RoleConfig, Rolling, Settings, SourceConfig,
    SshConfig, TaskConfig,
};
use crate::diagnostic::{Diagnostic, closest, list, suggest};
use crate::load::{ConfigError, Loaded, Mark};
use crate::phase::Phase;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// One host of a stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Host {
    /// The OpenSSH destination (`~/.ssh/config` applies to it).
    pub name: String,
    /// Its roles, sorted.
    pub roles: Vec<String>,
    /// Files linked from `shared/` on this host: the stage's, then its roles'.
    pub linked_files: Vec<String>,
    /// Directories linked from `shared/` on this host: the stage's, then its roles'.
    pub linked_dirs: Vec<String>,
    /// Its health check when one of its roles has its own (else the stage's applies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Where `once` tasks of its roles run (`primary = "<host>"` of a role, or an
    /// inventory's `"primary": true`).
    #[serde(skip_serializing_if = "is_false")]
    pub primary: bool,
    /// Its own variables (from a dynamic inventory), exported to its scripts as
    /// `SHIP_VAR_<NAME>`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, String>,
    /// How it is reached, when ssh is given more than its name (see [`crate::ssh`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh: Option<crate::ssh::Connection>,
}

/// A health check with its timeout parsed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Health {
    /// The command (for a URL check: empty, see `url`).
    pub run: String,
    /// The URL fetched on the host instead of a command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The time limit of one try.
    pub timeout: Duration,
    /// More tries after a failed one.
    #[serde(skip_serializing_if = "is_zero")]
    pub retries: u32,
    /// The pause between tries.
    #[serde(skip_serializing_if = "is_default_interval")]
    pub interval: Duration,
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_default_interval(d: &Duration) -> bool {
    *d == Duration::from_secs(2)
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The host named `name` in `hosts`, added (with the stage's linked files) if it is not there.
fn host_entry<'h>(hosts: &'h mut Vec<Host>, name: &str, s: &Settings) -> &'h mut Host {
    match hosts.iter().position(|x| x.name == name) {
        Some(i) => &mut hosts[i],
        None => {
            hosts.push(Host {
                name: name.to_owned(),
                roles: Vec::new(),
                linked_files: s.linked_files.clone(),
                linked_dirs: s.linked_dirs.clone(),
                health: None,
                primary: false,
                vars: BTreeMap::new(),
                ssh: None,
            });
            hosts.last_mut().expect("just pushed")
        }
    }
}

/// Puts `host` in `role`, with what Ship.toml's `[roles.<role>]` (if any) adds: linked
/// files and directories, the role's health check, whether it is the role's primary.
fn join_role(
    host: &mut Host,
    role: &str,
    cfg: Option<&RoleConfig>,
    err: &dyn Fn(&[&str], String) -> ConfigError,
) -> Result<(), ConfigError> {
    if !host.roles.iter().any(|r| r == role) {
        host.roles.push(role.to_owned());
        host.roles.sort();
    }
    let Some(cfg) = cfg else { return Ok(()) };
    if cfg.primary.as_deref() == Some(host.name.as_str()) {
        host.primary = true;
    }
    for f in &cfg.linked_files {
        if !host.linked_files.contains(f) {
            host.linked_files.push(f.clone());
        }
    }
    for d in &cfg.linked_dirs {
        if !host.linked_dirs.contains(d) {
            host.linked_dirs.push(d.clone());
        }
    }
    if host.health.is_none()
        && let Some(h) = &cfg.health
    {
        host.health = Some(health(h, err, &["roles", role, "health"])?);
    }
    Ok(())
}

/// One host as a dynamic inventory prints it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryHost {
    name: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    vars: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    primary: bool,
    /// How it is reached (the keys of `[ssh]`).
    #[serde(default)]
    ssh: SshConfig,
}

/// A host of the inventory, its variables as strings.
struct Inventoried {
    name: String,
    roles: Vec<String>,
    ssh: SshConfig,
    vars: BTreeMap<String, String>,
    primary: bool,
}

/// Runs an inventory command in `dir` and reads its JSON: `{"hosts": [...]}` or `[...]`.
fn inventory(command: &str, dir: &std::path::Path) -> Result<Vec<Inventoried>, String> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("`{command}` could not run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{command}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Printed {
        Wrapped { hosts: Vec<InventoryHost> },
        List(Vec<InventoryHost>),
    }
    let printed: Printed = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "`{command}` printed no inventory ({e}); expected JSON such as \
             {{\"hosts\": [{{\"name\": \"web1\", \"roles\": [\"web\"], \"vars\": {{\"port\": 8001}}}}]}}"
        )
    })?;
    let hosts = match printed {
        Printed::Wrapped { hosts } | Printed::List(hosts) => hosts,
    };
    hosts
        .into_iter()
        .map(|h| {
            let mut vars = BTreeMap::new();
            for (k, v) in h.vars {
                let ok_name = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !ok_name {
                    return Err(format!(
                        "host {:?}: variable {k:?}: expected letters, digits and `_` (it becomes SHIP_VAR_{})",
                        h.name,
                        k.to_ascii_uppercase()
                    ));
                }
                let text = match v {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    other => {
                        return Err(format!(
                            "host {:?}: variable {k:?}: expected a string, number or boolean, found {other}",
                            h.name
                        ));
                    }
                };
                vars.insert(k, text);
            }
            crate::ssh::check_settings(&h.ssh)
                .map_err(|(key, m)| format!("host {:?}: ssh.{key}: {m}", h.name))?;
            Ok(Inventoried {
                ssh: h.ssh,
                name: h.name,
                roles: h.roles,
                vars,
                primary: h.primary,
            })
        })
        .collect()
}

/// Reads a `[health]` table (the stage's or a role's) at `path`.
fn health(
    cfg: &HealthConfig,
    err: &dyn Fn(&[&str], String) -> ConfigError,
    path: &[&str],
) -> Result<Health, ConfigError> {
    let at = |key: &'static str| {
        let mut p = path.to_vec();
        p.push(key);
        p
    };
    let duration = |key: &'static str, value: &str| {
        humantime::parse_duration(value).map_err(|e| {
            err(
                &at(key),
                format!("{value:?}: {e}; expected a duration such as \"30s\" or \"2m\""),
            )
        })
    };
    let timeout = duration("timeout", &cfg.timeout)?;
    let interval = duration("interval", &cfg.interval)?;
    let (run, url) = match (&cfg.run, &cfg.url) {
        (Some(run), None) if !run.trim().is_empty() => (run.clone(), None),
        (None, Some(url)) if url.starts_with("http://") || url.starts_with("https://") => {
            (String::new(), Some(url.clone()))
        }
        (None, Some(url)) => {
            return Err(err(
                &at("url"),
                format!("{url:?}: expected an http:// or https:// URL"),
            ));
        }
        _ => {
            return Err(err(
                path,
                "expected one of `run` (a command) or `url` (fetched on each host), \
                 e.g. url = \"http://127.0.0.1:8000/health\""
                    .to_owned(),
            ));
        }
    };
    Ok(Health {
        run,
        url,
        timeout,
        retries: cfg.retries,
        interval,
    })
}

/// Which hosts of a stage a command works on: `--roles`, `--hosts`, `--exclude`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Selection {
    /// Only hosts in one of these roles.
    pub roles: Vec<String>,
    /// Only hosts matching one of these glob patterns.
    pub hosts: Vec<String>,
    /// Not the hosts matching one of these glob patterns.
    pub exclude: Vec<String>,
}

impl Selection {
    /// No flag given: every host.
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty() && self.hosts.is_empty() && self.exclude.is_empty()
    }

    /// The flags as typed: `--roles web --exclude web2`.
    pub fn flags(&self) -> String {
        let mut parts = Vec::new();
        for (flag, v) in [
            ("--roles", &self.roles),
            ("--hosts", &self.hosts),
            ("--exclude", &self.exclude),
        ] {
            if !v.is_empty() {
                parts.push(format!("{flag} {}", v.join(",")));
            }
        }
        parts.join(" ")
    }
}

/// A small stage for examples: web1, web2 in role web; job1 in role worker.
#[doc(hidden)]
pub fn example() -> Stage {
    let host = |name: &str, role: &str| Host {
        name: name.to_owned(),
        roles: vec![role.to_owned()],
        linked_files: Vec::new(),
        linked_dirs: Vec::new(),
        health: None,
        primary: false,
        vars: BTreeMap::new(),
        ssh: None,
    };
    Stage {
        name: "production".to_owned(),
        app: "demo".to_owned(),
        deploy_to: "/srv/demo".to_owned(),
        layout: LayoutName::from("timestamp"),
        keep_releases: 5,
        delta: false,
        parallel: 10,
        artifact_store: None,
        source: SourceConfig::Dir("dist".to_owned()),
        build: Vec::new(),
        include: Vec::new(),
        cargo: Default::default(),
        version: None,
        linked_files: Vec::new(),
        linked_dirs: Vec::new(),
        hosts: vec![
            host("web1", "web"),
            host("web2", "web"),
            host("job1", "worker"),
        ],
        roles: BTreeMap::from([
            ("web".to_owned(), vec!["web1".to_owned(), "web2".to_owned()]),
            ("worker".to_owned(), vec!["job1".to_owned()]),
        ]),
        tasks: BTreeMap::new(),
        skipped: Vec::new(),
        health: None,
        ssh_config: None,
        connect_timeout: Duration::from_secs(10),
        command_timeout: Duration::from_secs(1800),
        keep_connections: None,
        rolling: None,
        max_fail: 1,
        require_pushed: None,
        tag: None,
        notify: None,
        maintenance: None,
        env: BTreeMap::new(),
        secrets: BTreeMap::new(),
        adapters: BTreeMap::new(),
    }
}

/// A webhook with its time limit parsed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Notify {
    /// The URL.
    pub webhook: String,
    /// How long the POST may take.
    pub timeout: Duration,
}

/// The names a `tag` template may use.
pub const TAG_FIELDS: [&str; 3] = ["{app}", "{stage}", "{id}"];

/// A stage: everything the planner needs to know about the configuration, validated.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stage {
    /// The stage's name (`production`).
    pub name: String,
    /// The application's name.
    pub app: String,
    /// The absolute deploy directory on each host.
    pub deploy_to: String,
    /// The release layout.
    pub layout: LayoutName,
    /// Releases kept by cleanup.
    pub keep_releases: usize,
    /// Whether hosts are sent only the files they lack (see `crate::delta`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delta: bool,
    /// Hosts worked on at once.
    pub parallel: usize,
    /// Object storage the artifact goes through, checked by `store::check`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_store: Option<String>,
    /// Where the artifact comes from.
    pub source: SourceConfig,
    /// Build commands run before packing.
    pub build: Vec<String>,
    /// More paths packed into the artifact.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// How a `cargo` source's binary is built (in the configuration digest).
    #[serde(default, skip_serializing_if = "crate::config::CargoBuild::is_empty")]
    pub cargo: crate::config::CargoBuild,
    /// The configured version, if any.
    pub version: Option<String>,
    /// Files linked from `shared/` on every host (roles may add more: see [`Host`]).
    pub linked_files: Vec<String>,
    /// Directories linked from `shared/` on every host.
    pub linked_dirs: Vec<String>,
    /// The hosts, each once: roles in name order, hosts in the order listed, then role-less hosts.
    pub hosts: Vec<Host>,
    /// Each role's hosts, in the order listed.
    pub roles: BTreeMap<String, Vec<String>>,
    /// The user's tasks, by name.
    pub tasks: BTreeMap<String, TaskConfig>,
    /// What of the configuration does not apply to this stage, said in the plan: tasks
    /// for roles it does not have (another stage has them).
    pub skipped: Vec<String>,
    /// The health check.
    pub health: Option<Health>,
    /// The ssh_config file to use, if not `~/.ssh/config`.
    pub ssh_config: Option<String>,
    /// How long connections stay open for the next command, if they do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_connections: Option<Duration>,
    /// The limit on connecting.
    pub connect_timeout: Duration,
    /// The limit on one session.
    pub command_timeout: Duration,
    /// Rolling batches, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolling: Option<Rolling>,
    /// Failed batches that stop a rolling deploy.
    #[serde(skip_serializing_if = "is_one")]
    pub max_fail: usize,
    /// Only pushed commits may be deployed here: `pushed_to` when a git source is used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_pushed: Option<String>,
    /// The tag template made after a successful deploy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The webhook told when a deploy, rollback or promote ends, and its time limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify: Option<Notify>,
    /// The maintenance page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<MaintenanceConfig>,
    /// The app's environment (not secret), written to `shared/.env` with the secrets.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Where the secrets of the app's environment are read on this machine (their values
    /// are never part of the stage, the plan or its digests but one: see `Plan::env`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, crate::config::SecretSource>,
    /// The adapters' tables (such as `python`), as written: ship-core does not read them;
    /// the adapters do (see [`crate::adapter`]).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub adapters: BTreeMap<String, figment::value::Value>,
}

/// An error about the value of `path` (marked under the value).
fn invalid(loaded: &Loaded, stage: &str, path: &[&str], message: impl Into<String>) -> ConfigError {
    loaded.invalid(stage, path, Mark::Value, "", message)
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        && s != "."
        && s != ".."
}

/// Checks a path that must stay inside its base directory: relative, no `..`, no empty part.
pub fn check_relative_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("expected a relative path, found an empty string".to_owned());
    }
    if path.starts_with('/') {
        return Err(format!(
            "expected a path relative to shared/, found the absolute path {path:?}"
        ));
    }
    if path.chars().any(char::is_control) {
        return Err(format!("{path:?} contains a control character"));
    }
    if path
        .split('/')
        .any(|p| p == ".." || p == "." || p.is_empty())
    {
        return Err(format!(
            "{path:?} must not contain `..`, `.` or empty parts: it has to stay inside the release"
        ));
    }
    Ok(())
}

/// A host string is parsed once, here, with the parser the transport's data comes from:
/// `deploy@web1:2222` is refused at `plan` if its port is not a port.
fn check_host(host: &str) -> Result<(), String> {
    crate::ssh::Destination::parse(host).map(|_| ())
}

/// Each host's [`crate::Connection`]: the stage's `[ssh]`, under its roles', under
/// `[ssh_hosts."<host>"]`, under its inventory entry's `ssh`, under its host string's own
/// user and port. Every table is checked first, its errors naming the key.
fn connections(
    s: &Settings,
    hosts: &mut [Host],
    inventoried: &BTreeMap<String, SshConfig>,
    err: &dyn Fn(&[&str], String) -> ConfigError,
) -> Result<(), ConfigError> {
    use crate::ssh::{check_settings, connection, layer, merge_roles};
    check_settings(&s.ssh).map_err(|(k, m)| err(&["ssh", k], m))?;
    for (role, cfg) in &s.roles {
        check_settings(&cfg.ssh).map_err(|(k, m)| err(&["roles", role, "ssh", k], m))?;
    }
    for (name, cfg) in &s.ssh_hosts {
        check_settings(cfg).map_err(|(k, m)| err(&["ssh_hosts", name, k], m))?;
        if !hosts.iter().any(|h| &h.name == name) {
            let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
            return Err(err(
                &["ssh_hosts", name],
                format!("{name:?} is not a host of this stage"),
            )
            .with_hint(suggest(name, &names, "hosts of this stage")));
        }
    }
    for host in hosts.iter_mut() {
        let roles = host
            .roles
            .iter()
            .filter_map(|r| s.roles.get(r).map(|c| (r.as_str(), &c.ssh)))
            .filter(|(_, c)| !c.is_empty());
        let by_roles = merge_roles(roles)
            .map_err(|(k, m)| err(&["roles"], format!("host {:?}: ssh.{k}: {m}", host.name)))?;
        let mut cfg = layer(&s.ssh, &by_roles);
        if let Some(own) = s.ssh_hosts.get(&host.name) {
            cfg = layer(&cfg, own);
        }
        if let Some(own) = inventoried.get(&host.name) {
            cfg = layer(&cfg, own);
        }
        host.ssh = connection(&host.name, &cfg).map_err(|m| {
            if s.ssh_hosts.contains_key(&host.name) {
                err(&["ssh_hosts", &host.name], m)
            } else if inventoried.contains_key(&host.name) {
                err(&["inventory", "command"], m)
            } else {
                err(&["ssh"], m)
            }
        })?;
    }
    Ok(())
}

impl Stage {
    /// Loads and validates `stage` from `loaded`; `layouts` are the layout names there are
    /// (`ship_layouts::names()`: ship-core knows none).
    ///
    /// Every error names the key and where it was set (file and line).
    pub fn resolve(loaded: &Loaded, stage: &str, layouts: &[&str]) -> Result<Stage, ConfigError> {
        let s: Settings = loaded.settings(stage)?;
        let err = |path: &[&str], msg: String| invalid(loaded, stage, path, msg);
        // An error about one item of a list: the caret under it.
        let at_item = |path: &[&str], item: &str, msg: String| {
            loaded.invalid(stage, path, Mark::Item(item), "", msg)
        };

        if !layouts.contains(&s.layout.name()) {
            return Err(loaded
                .invalid(
                    stage,
                    &["layout"],
                    Mark::Value,
                    "unknown layout",
                    format!("unknown layout `{}`", s.layout),
                )
                .with_hint(suggest(s.layout.name(), layouts, "layouts")));
        }

        let app = s.app.clone().ok_or_else(|| {
            err(
                &["app"],
                format!("missing: set `app = \"myapp\"` in [default] or [{stage}]"),
            )
        })?;
        if !is_name(&app) {
            return Err(err(
                &["app"],
                format!("{app:?}: expected letters, digits, `.`, `_` or `-`"),
            ));
        }
        let deploy_to = s.deploy_to.clone().ok_or_else(|| {
            err(
                &["deploy_to"],
                format!("missing: set `deploy_to = \"/var/www/{app}\"` in [default] or [{stage}]"),
            )
        })?;
        let trimmed = deploy_to.trim_end_matches('/');
        if !deploy_to.starts_with('/') || trimmed.is_empty() {
            return Err(err(
                &["deploy_to"],
                format!("{deploy_to:?}: expected an absolute directory such as /var/www/{app}"),
            ));
        }
        check_relative_path(&trimmed[1..]).map_err(|m| err(&["deploy_to"], m))?;
        let deploy_to = trimmed.to_owned();

        if s.keep_releases == 0 {
            return Err(err(
                &["keep_releases"],
                "expected at least 1 (the live release is always kept)".to_owned(),
            ));
        }
        if s.parallel == 0 {
            return Err(err(&["parallel"], "expected at least 1".to_owned()));
        }
        if !s.cargo.is_empty() && !matches!(s.source, SourceConfig::Cargo(_)) {
            return Err(err(
                &["cargo"],
                "applies to a `source = { cargo = \"<bin>\" }` only".to_owned(),
            ));
        }
        for (i, f) in s.linked_files.iter().enumerate() {
            check_relative_path(f)
                .map_err(|m| at_item(&["linked_files"], f, format!("item {i}: {m}")))?;
        }
        for (i, f) in s.include.iter().enumerate() {
            check_relative_path(f.trim_end_matches('/'))
                .map_err(|m| at_item(&["include"], f, format!("item {i}: {m}")))?;
        }
        for (i, f) in s.linked_dirs.iter().enumerate() {
            check_relative_path(f)
                .map_err(|m| at_item(&["linked_dirs"], f, format!("item {i}: {m}")))?;
        }
        let adapters = s.adapters.clone();
        if let Some(version) = &s.version {
            check_release_id(version).map_err(|m| err(&["version"], m))?;
        }

        // Hosts: roles in name order, hosts as listed; a host in several roles appears once.
        let mut hosts: Vec<Host> = Vec::new();
        let mut roles = BTreeMap::new();
        for (role, cfg) in &s.roles {
            if !is_name(role) {
                return Err(loaded.invalid(
                    stage,
                    &["roles", role],
                    Mark::Key,
                    "not a role name",
                    format!("role name {role:?}: expected letters, digits, `.`, `_` or `-`"),
                ));
            }
            for (i, f) in cfg.linked_files.iter().enumerate() {
                check_relative_path(f).map_err(|m| {
                    at_item(
                        &["roles", role, "linked_files"],
                        f,
                        format!("item {i}: {m}"),
                    )
                })?;
            }
            for (i, f) in cfg.linked_dirs.iter().enumerate() {
                check_relative_path(f).map_err(|m| {
                    at_item(&["roles", role, "linked_dirs"], f, format!("item {i}: {m}"))
                })?;
            }
            let mut names = Vec::new();
            for h in &cfg.hosts {
                check_host(h).map_err(|m| at_item(&["roles", role, "hosts"], h, m))?;
                if names.contains(h) {
                    return Err(err(
                        &["roles", role, "hosts"],
                        format!("host {h:?} is listed twice"),
                    ));
                }
                names.push(h.clone());
                let host = host_entry(&mut hosts, h, &s);
                join_role(host, role, Some(cfg), &err)?;
            }
            if let Some(p) = &cfg.primary
                && s.inventory.is_none()
                && !names.contains(p)
            {
                return Err(loaded
                    .invalid(
                        stage,
                        &["roles", role, "primary"],
                        Mark::Value,
                        "not a host of this role",
                        format!("{p:?} is not one of this role's hosts"),
                    )
                    .with_hint(suggest(p, &names, &format!("hosts of role `{role}`"))));
            }
            roles.insert(role.clone(), names);
        }
        for h in &s.hosts {
            check_host(h).map_err(|m| at_item(&["hosts"], h, m))?;
            host_entry(&mut hosts, h, &s);
        }
        let mut inventoried = BTreeMap::new();
        if let Some(inv) = &s.inventory {
            let dir = loaded
                .ship_toml()
                .parent()
                .unwrap_or(std::path::Path::new("."));
            for entry in
                inventory(&inv.command, dir).map_err(|m| err(&["inventory", "command"], m))?
            {
                check_host(&entry.name).map_err(|m| err(&["inventory", "command"], m))?;
                let host = host_entry(&mut hosts, &entry.name, &s);
                host.primary |= entry.primary;
                host.vars.extend(entry.vars);
                if !entry.ssh.is_empty() {
                    inventoried.insert(entry.name.clone(), entry.ssh);
                }
                for role in entry.roles {
                    if !is_name(&role) {
                        return Err(err(
                            &["inventory", "command"],
                            format!(
                                "host {:?}: role {role:?}: expected letters, digits, `.`, `_` or `-`",
                                entry.name
                            ),
                        ));
                    }
                    join_role(host, &role, s.roles.get(&role), &err)?;
                    let members: &mut Vec<String> = roles.entry(role).or_default();
                    if !members.contains(&entry.name) {
                        members.push(entry.name.clone());
                    }
                }
            }
        }
        if hosts.is_empty() {
            return Err(err(
                &["roles"],
                format!(
                    "stage `{stage}` has no hosts: add `[{stage}.roles.web] hosts = [\"web1.example.com\"]` \
                     or `hosts = [...]` under [{stage}]"
                ),
            ));
        }

        connections(&s, &mut hosts, &inventoried, &err)?;

        let role_names = || {
            if roles.is_empty() {
                "none: the stage defines no roles".to_owned()
            } else {
                list(&roles.keys().collect::<Vec<_>>())
            }
        };
        // A task (from [default], usually) for roles this stage does not have, but another
        // stage does: it runs where its roles are, and the plan says what was skipped. A
        // role no stage has is a mistake (below).
        let mut tasks = s.tasks.clone();
        let mut skipped = Vec::new();
        let other_roles: std::collections::BTreeSet<String> = loaded
            .stages()
            .iter()
            .filter(|other| other.as_str() != stage)
            .filter_map(|other| loaded.settings(other).ok())
            .flat_map(|o| o.roles.into_keys())
            .collect();
        tasks.retain(|name, task| {
            let (here, missing): (Vec<String>, Vec<String>) = task
                .roles
                .iter()
                .cloned()
                .partition(|r| roles.contains_key(r));
            if missing.is_empty() || !missing.iter().all(|r| other_roles.contains(r)) {
                return true;
            }
            let which = missing
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", ");
            if here.is_empty() {
                skipped.push(format!(
                    "task `{name}` does not run: stage `{stage}` has no role {which}"
                ));
                return false;
            }
            skipped.push(format!(
                "task `{name}` runs on {} only: stage `{stage}` has no role {which}",
                here.iter()
                    .map(|r| format!("`{r}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            task.roles = here;
            true
        });
        // A task hooked to one that does not run here does not run either.
        loop {
            let gone: Vec<(String, String)> = tasks
                .iter()
                .filter_map(|(name, t)| {
                    [&t.before, &t.after]
                        .into_iter()
                        .flatten()
                        .find(|target| {
                            s.tasks.contains_key(*target) && !tasks.contains_key(*target)
                        })
                        .map(|target| (name.clone(), target.clone()))
                })
                .collect();
            if gone.is_empty() {
                break;
            }
            for (name, target) in gone {
                tasks.remove(&name);
                skipped.push(format!(
                    "task `{name}` does not run: it is hooked to `{target}`, which does not run in stage `{stage}`"
                ));
            }
        }
        for (name, task) in &tasks {
            if !is_name(name) || Phase::from_name(name).is_some() {
                return Err(loaded.invalid(
                    stage,
                    &["tasks", name],
                    Mark::Key,
                    "not a task name",
                    format!(
                        "task name {name:?}: expected letters, digits, `.`, `_` or `-`, and not a phase name ({})",
                        Phase::names()
                    ),
                ));
            }
            if task.run.trim().is_empty() {
                return Err(err(
                    &["tasks", name, "run"],
                    "expected a shell command".to_owned(),
                ));
            }
            for role in &task.roles {
                if !roles.contains_key(role) {
                    let known: Vec<&str> = roles
                        .keys()
                        .chain(&other_roles)
                        .map(String::as_str)
                        .collect();
                    let help = closest(role, known).map(|c| format!("did you mean `{c}`?"));
                    return Err(loaded
                        .invalid(
                            stage,
                            &["tasks", name, "roles"],
                            Mark::Item(role),
                            "unknown role",
                            format!("unknown role `{role}`: no stage has it"),
                        )
                        .with_hint((
                            help,
                            Some(format!("roles of stage `{stage}`: {}", role_names())),
                        )));
                }
            }
            if task.once.is_once() && task.local {
                return Err(err(
                    &["tasks", name, "once"],
                    "`once` and `local` together: a local task already runs once, on this machine"
                        .to_owned(),
                ));
            }
            if task.before.is_none() && task.after.is_none() {
                return Err(loaded.invalid(
                    stage,
                    &["tasks", name],
                    Mark::Key,
                    "runs when?",
                    format!(
                        "set `before` or `after`: a phase ({}) or another task",
                        Phase::names()
                    ),
                ));
            }
            for (field, target) in [("before", &task.before), ("after", &task.after)] {
                let Some(target) = target else { continue };
                // Adapters' tasks (such as `django.migrate`) are named by the adapters:
                // whoever reads the adapters' tables checks hooks to them (cargo-ship's
                // `adapters::read`), and the planner refuses any left unknown.
                let adapter_task = !adapters.is_empty() && target.contains('.');
                if Phase::from_name(target).is_none()
                    && !s.tasks.contains_key(target)
                    && !adapter_task
                {
                    let mut choices: Vec<String> =
                        Phase::ALL.iter().map(|p| p.name().to_owned()).collect();
                    choices.extend(s.tasks.keys().filter(|t| *t != name).cloned());
                    return Err(loaded
                        .invalid(
                            stage,
                            &["tasks", name, field],
                            Mark::Value,
                            "no phase or task of this name",
                            format!("unknown phase or task `{target}`"),
                        )
                        .with_hint(suggest(target, &choices, "phases and tasks")));
                }
                if target == name {
                    return Err(err(
                        &["tasks", name, field],
                        format!("task `{name}` cannot run {field} itself"),
                    ));
                }
            }
        }

        let health = match &s.health {
            None => None,
            Some(cfg) => Some(health(cfg, &err, &["health"])?),
        };

        let duration = |key: &str, value: &str| {
            let d = humantime::parse_duration(value).map_err(|e| {
                err(
                    &[key],
                    format!("{value:?}: {e}; expected a duration such as \"30s\" or \"2m\""),
                )
            })?;
            // A limit of less than a second cuts everything at once: not a limit.
            if d < Duration::from_secs(1) {
                return Err(err(
                    &[key],
                    format!(
                        "{value:?} is less than a second; expected a duration such as \"30s\" or \"2m\""
                    ),
                ));
            }
            Ok(d)
        };
        let connect_timeout = duration("connect_timeout", &s.connect_timeout)?;
        let keep_connections = match &s.keep_connections {
            Some(k) => Some(duration("keep_connections", k)?),
            None => None,
        };
        let command_timeout = duration("command_timeout", &s.command_timeout)?;

        let require_pushed = if s.require_pushed.unwrap_or(s.protected) {
            let to = s
                .pushed_to
                .clone()
                .unwrap_or_else(|| "@{upstream}".to_owned());
            if to.is_empty() || to.starts_with('-') || to.chars().any(char::is_whitespace) {
                return Err(err(
                    &["pushed_to"],
                    format!("{to:?}: expected a remote-tracking branch such as \"origin/main\""),
                ));
            }
            Some(to)
        } else {
            None
        };
        if let Some(tag) = &s.tag {
            let mut rest = tag.clone();
            for f in TAG_FIELDS {
                rest = rest.replace(f, "x");
            }
            let ok = !rest.is_empty()
                && !rest.starts_with(['-', '.', '/'])
                && !rest.contains("..")
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
            if !ok {
                return Err(err(
                    &["tag"],
                    format!(
                        "{tag:?}: expected a git tag name of letters, digits, `-`, `_`, `.`, `/` \
                         and the fields {}, e.g. \"release-{{stage}}-{{id}}\"",
                        TAG_FIELDS.join(", ")
                    ),
                ));
            }
        }
        let notify = match &s.notify {
            None => None,
            Some(n) => {
                if !(n.webhook.starts_with("http://") || n.webhook.starts_with("https://")) {
                    return Err(err(
                        &["notify", "webhook"],
                        format!("{:?}: expected an http:// or https:// URL", n.webhook),
                    ));
                }
                let timeout = humantime::parse_duration(&n.timeout).map_err(|e| {
                    err(
                        &["notify", "timeout"],
                        format!("{:?}: {e}; expected a duration such as \"10s\"", n.timeout),
                    )
                })?;
                Some(Notify {
                    webhook: n.webhook.clone(),
                    timeout,
                })
            }
        };
        for (name, field) in s
            .env
            .keys()
            .map(|n| (n, "env"))
            .chain(s.secrets.keys().map(|n| (n, "secrets")))
        {
            let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid || name.starts_with("SHIP_") {
                return Err(err(
                    &[field, name],
                    format!(
                        "{name:?}: expected an environment variable's name (letters, digits, `_`, not a digit first), \
                         not starting with SHIP_ (cargo ship's own)"
                    ),
                ));
            }
            if field == "secrets" && s.env.contains_key(name) {
                return Err(err(
                    &[field, name],
                    format!("`{name}` is in both [env] and [secrets]: keep one"),
                ));
            }
        }
        if let Some(m) = &s.maintenance {
            check_relative_path(&m.file).map_err(|e| err(&["maintenance", "file"], e))?;
            if let Some(page) = &m.page {
                check_relative_path(page).map_err(|e| err(&["maintenance", "page"], e))?;
            }
        }

        match &s.rolling {
            Some(Rolling::Hosts(0)) => {
                return Err(err(
                    &["rolling"],
                    "expected at least 1 host per batch".to_owned(),
                ));
            }
            Some(Rolling::Share(p)) => {
                let ok = p
                    .strip_suffix('%')
                    .and_then(|n| n.trim().parse::<u32>().ok())
                    .is_some_and(|n| (1..=100).contains(&n));
                if !ok {
                    return Err(err(
                        &["rolling"],
                        format!(
                            "{p:?}: expected a number of hosts (rolling = 4) or a share from 1% to 100% (rolling = \"25%\")"
                        ),
                    ));
                }
            }
            _ => {}
        }
        if let Some(url) = &s.artifact_store {
            crate::store::check(url).map_err(|m| err(&["artifact_store"], m))?;
            // Two routes for the bytes, not yet one: hosts download the whole artifact from
            // the store, or are sent the files they lack; not both.
            if s.delta {
                return Err(err(
                    &["delta"],
                    "`delta = true` and `artifact_store` cannot be used together yet: \
                     choose one"
                        .to_owned(),
                ));
            }
        }
        if s.max_fail == 0 {
            return Err(err(
                &["max_fail"],
                "expected at least 1 (the first failed batch stops a deploy with max_fail = 1)"
                    .to_owned(),
            ));
        }

        Ok(Stage {
            name: stage.to_owned(),
            rolling: s.rolling.clone(),
            max_fail: s.max_fail,
            require_pushed,
            tag: s.tag.clone(),
            notify,
            maintenance: s.maintenance.clone(),
            env: s.env.clone(),
            secrets: s.secrets.clone(),
            ssh_config: s.ssh_config.clone(),
            connect_timeout,
            command_timeout,
            keep_connections,
            adapters,
            app,
            deploy_to,
            layout: s.layout.clone(),
            keep_releases: s.keep_releases,
            delta: s.delta,
            parallel: s.parallel,
            artifact_store: s.artifact_store.clone(),
            source: s.source.clone(),
            build: s.build.clone(),
            include: s.include.clone(),
            cargo: s.cargo.clone(),
            version: s.version.clone(),
            linked_files: s.linked_files.clone(),
            linked_dirs: s.linked_dirs.clone(),
            hosts,
            roles,
            tasks,
            skipped,
            health,
        })
    }

    /// The hosts chosen by `--roles`, `--hosts` and `--exclude` (glob patterns such as
    /// `web*`), and why each other host was left out. An unknown role, a pattern that
    /// matches no host or an empty choice is an error that says so.
    ///
    /// ```
    /// # use ship_core::{Selection, Stage};
    /// # fn stage() -> Stage { ship_core::stage::example() }
    /// let s = stage(); // web1, web2 [web]; job1 [worker]
    /// let sel = Selection { roles: vec!["web".into()], hosts: vec![], exclude: vec!["web2".into()] };
    /// let (chosen, left_out) = s.select(&sel).unwrap();
    /// assert_eq!(chosen.hosts.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["web1"]);
    /// assert_eq!(left_out, [("web2".to_owned(), "--exclude web2".to_owned()),
    ///                       ("job1".to_owned(), "not in roles web".to_owned())]);
    /// ```
    pub fn select(&self, sel: &Selection) -> Result<(Stage, Vec<(String, String)>), Diagnostic> {
        let compile = |flag: &str, patterns: &[String]| {
            patterns
                .iter()
                .map(|p| {
                    glob::Pattern::new(p)
                        .map(|g| (p.clone(), g))
                        .map_err(|e| format!("{flag} {p:?}: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let hosts = compile("--hosts", &sel.hosts)?;
        let exclude = compile("--exclude", &sel.exclude)?;
        for role in &sel.roles {
            if !self.roles.contains_key(role) {
                let roles: Vec<&String> = self.roles.keys().collect();
                let (help, note) =
                    suggest(role, &roles, &format!("roles of stage `{}`", self.name));
                return Err(Diagnostic {
                    message: format!("--roles: unknown role `{role}`"),
                    notes: note.into_iter().collect(),
                    help,
                    ..Diagnostic::default()
                });
            }
        }
        for (flag, list) in [("--hosts", &hosts), ("--exclude", &exclude)] {
            for (text, g) in list {
                if !self.hosts.iter().any(|h| g.matches(&h.name)) {
                    let names: Vec<&str> = self.hosts.iter().map(|h| h.name.as_str()).collect();
                    return Err(Diagnostic {
                        message: format!(
                            "{flag} {text}: matches no host of stage `{}` ({})",
                            self.name,
                            names.join(", ")
                        ),
                        help: closest(text, names).map(|c| format!("did you mean `{c}`?")),
                        ..Diagnostic::default()
                    });
                }
            }
        }
        let mut chosen = self.clone();
        let mut left_out = Vec::new();
        chosen.hosts.retain(|h| {
            let why = if let Some((text, _)) = exclude.iter().find(|(_, g)| g.matches(&h.name)) {
                Some(format!("--exclude {text}"))
            } else if !sel.roles.is_empty() && !h.roles.iter().any(|r| sel.roles.contains(r)) {
                Some(format!("not in roles {}", sel.roles.join(", ")))
            } else if !hosts.is_empty() && !hosts.iter().any(|(_, g)| g.matches(&h.name)) {
                Some(format!("not matched by --hosts {}", sel.hosts.join(",")))
            } else {
                None
            };
            match why {
                Some(why) => {
                    left_out.push((h.name.clone(), why));
                    false
                }
                None => true,
            }
        });
        if chosen.hosts.is_empty() {
            return Err(Diagnostic::new(format!(
                "no host of stage `{}` is left: {}",
                self.name,
                left_out
                    .iter()
                    .map(|(h, why)| format!("{h} ({why})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let kept: Vec<String> = chosen.hosts.iter().map(|h| h.name.clone()).collect();
        for members in chosen.roles.values_mut() {
            members.retain(|h| kept.contains(h));
        }
        Ok((chosen, left_out))
    }

    /// The hosts of `roles` (every host when `roles` is empty), in stage order.
    pub fn hosts_of(&self, roles: &[String]) -> Vec<&Host> {
        self.hosts
            .iter()
            .filter(|h| roles.is_empty() || h.roles.iter().any(|r| roles.contains(r)))
            .collect()
    }
}

/// Checks a release id: it names a directory under `releases/`, so it is a plain name.
///
/// ```
/// use ship_core::stage::check_release_id;
/// assert!(check_release_id("20261122235800").is_ok());
/// assert!(check_release_id("1.4.0+build.7").is_ok());
/// assert!(check_release_id("../../etc").is_err());
/// ```
pub fn check_release_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && !id.starts_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "release id {id:?}: expected letters, digits, `.`, `_`, `+` or `-` (at most 128), not `.` or `..`"
        ))
    }
}
