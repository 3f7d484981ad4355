//! The `[<stage>.node]` table.

use serde::{Deserialize, Serialize};
use ship_core::{TableError, config::read_table};

/// What the hosts install.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Install {
    /// Nothing: a static front end, or an app bundled with its dependencies.
    #[default]
    None,
    /// `npm ci --omit=dev` from the release's lock file, once per distinct lock file.
    Production,
}

/// What `[<stage>.node]` says, with its defaults filled in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Commands run here, in the project root, before packing (default: `npm ci`, then
    /// `npm run build` when package.json has a build script).
    pub build: Option<Vec<String>>,
    /// What goes into the artifact, instead of `source`: `["dist/"]` ships the contents of
    /// dist/ at the release's root; `["server.js", "package.json", "package-lock.json"]`
    /// ships those paths as they are (as the build left them). Empty: the stage's `source`
    /// as the build left it — with a `git` source, the commit's files and everything the
    /// build wrote, ignored by git or not, without node_modules.
    #[serde(default)]
    pub ship: Vec<String>,
    /// What the hosts install: `"none"` or `"production"`.
    #[serde(default)]
    pub install: Install,
    /// The `node` binary on the hosts; `npm` is taken from the same directory.
    #[serde(default = "default_node")]
    pub node: String,
    /// The roles whose hosts install node_modules (default: every host).
    #[serde(default)]
    pub roles: Vec<String>,
}

fn default_node() -> String {
    "node".to_owned()
}

impl NodeConfig {
    /// Reads the table as Ship.toml holds it (see `ship_core::Stage::adapters`).
    ///
    /// ```
    /// use figment::value::{Dict, Value};
    /// let mut table = Dict::new();
    /// table.insert("install".into(), Value::from("production"));
    /// let cfg = ship_node::NodeConfig::from_value(&Value::from(table)).unwrap();
    /// assert_eq!(cfg.install, ship_node::Install::Production);
    /// assert_eq!(cfg.npm(), "npm");
    /// ```
    pub fn from_value(value: &figment::value::Value) -> Result<NodeConfig, TableError> {
        let cfg: NodeConfig = read_table(value)?;
        for (i, p) in cfg.ship.iter().enumerate() {
            ship_core::stage::check_relative_path(p.trim_end_matches('/'))
                .map_err(|m| TableError::at(&["ship"], format!("item {i}: {m}")))?;
        }
        if cfg.node.is_empty()
            || cfg
                .node
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(TableError::at(
                &["node"],
                format!(
                    "{:?}: expected a binary name or path, e.g. \"/usr/local/bin/node\"",
                    cfg.node
                ),
            ));
        }
        Ok(cfg)
    }

    /// The `npm` beside the configured `node`.
    pub fn npm(&self) -> String {
        match self.node.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/npm"),
            None => "npm".to_owned(),
        }
    }
}
