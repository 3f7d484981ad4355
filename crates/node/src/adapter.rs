//! [`Node`]: this crate as a [`ship_core::Adapter`], for the `[node]` table.

use crate::config::{Install, NodeConfig};
use ship_core::TableError;
use ship_core::TaskSpec;
use ship_core::{Adapter, AdapterError as Error, Configured, Here, Init, adapter::check_roles};
use std::collections::BTreeMap;
use std::path::Path;

/// The Node adapter: `[node]` read into a [`NodeConfig`].
///
/// ```
/// use ship_core::Adapter;
/// let mut table = figment::value::Dict::new();
/// table.insert("install".into(), "production".into());
/// let table = figment::value::Value::from(table);
/// let cfg = ship_node::Node.read(&table, &ship_core::stage::example()).unwrap();
/// assert_eq!(cfg.task_names(), ["node.modules", "node.prune"]);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Node;

impl Adapter for Node {
    fn name(&self) -> &'static str {
        "node"
    }

    fn read(
        &self,
        table: &figment::value::Value,
        stage: &ship_core::Stage,
    ) -> Result<Box<dyn Configured>, TableError> {
        let cfg = NodeConfig::from_value(table)?;
        check_roles(stage, &["roles"], &cfg.roles)?;
        Ok(Box::new(cfg))
    }

    fn init(&self, root: &Path) -> Option<Init> {
        let package_json = std::fs::read_to_string(root.join("package.json")).ok()?;
        let json = serde_json::from_str::<serde_json::Value>(&package_json).ok();
        let has = |pointer: &str| json.as_ref().is_some_and(|j| j.pointer(pointer).is_some());
        let builds = has("/scripts/build");
        // A service starts (`npm start`, `main`); a front end only builds.
        let serves = has("/scripts/start") || has("/main");
        let needs_modules = json
            .as_ref()
            .and_then(|j| j.get("dependencies")?.as_object())
            .is_some_and(|d| !d.is_empty());
        let table = match (builds, serves) {
            (true, false) => {
                "# Node: `npm ci` and `npm run build` run once, here, on a copy of the commit;\n\
                 # a static front end: only dist/ ships (index.html at the release's root).\n\
                 [default.node]\n\
                 ship = [\"dist/\"]\n\n"
            }
            (true, true) if needs_modules => {
                "# Node: `npm ci` and `npm run build` run once, here, on a copy of the commit; the\n\
                 # commit's files and what the build wrote (dist/, .next/) ship, node_modules does\n\
                 # not: production dependencies are installed on each host with\n\
                 # `npm ci --omit=dev`, once per package-lock.json, and reused across releases.\n\
                 [default.node]\n\
                 install = \"production\"\n\n"
            }
            (true, true) => {
                "# Node: `npm ci` and `npm run build` run once, here, on a copy of the commit; the\n\
                 # commit's files and what the build wrote (dist/) ship.\n\
                 [default.node]\n\n"
            }
            (false, _) => {
                "# Node: production dependencies installed on each host with `npm ci --omit=dev`,\n\
                 # once per package-lock.json, and reused across releases.\n\
                 [default.node]\n\
                 build = []\n\
                 install = \"production\"\n\n"
            }
        };
        let health = if builds {
            // A static front end: the web server serves the release's files.
            "# A front end served as files: the release must have its index.html.\n\
             run = \"test -s index.html\"\n"
                .to_owned()
        } else {
            match listen_port(root, &package_json) {
                Some(port) => format!(
                    "# The port the server listens on (found in its code): a release whose server\n\
                     # does not answer there after its restart is switched back.\n\
                     url = \"http://127.0.0.1:{port}/\"\n"
                ),
                None => String::new(),
            }
        };
        Some(Init {
            found: "a Node project",
            linked_files: None,
            table: table.to_owned(),
            health: (!health.is_empty()).then_some(health),
        })
    }
}

/// The port a Node service listens on, when its entry file (package.json's `main`, else
/// `server.js`, `index.js`, `app.js`) says `listen(<digits>` or `PORT || <digits>`.
fn listen_port(root: &Path, package_json: &str) -> Option<u16> {
    let main = serde_json::from_str::<serde_json::Value>(package_json)
        .ok()
        .and_then(|j| j.get("main")?.as_str().map(str::to_owned));
    let code = main
        .into_iter()
        .chain(["server.js", "index.js", "app.js"].map(str::to_owned))
        .find_map(|f| std::fs::read_to_string(root.join(f)).ok())?;
    ["listen(", "PORT || ", "PORT ?? "].iter().find_map(|key| {
        code.match_indices(key).find_map(|(i, _)| {
            let digits: String = code[i + key.len()..]
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok().filter(|p| *p > 0)
        })
    })
}

impl Configured for NodeConfig {
    /// `npm ci` (and `npm run build`), or the table's `build`, as the package.json of the
    /// tree that ships says (the commit's, for a `git` source); refuses a project without a
    /// lock file when it needs one.
    fn commands(&self, here: &Here<'_>) -> Result<Vec<String>, Error> {
        Ok(crate::build::prepare(here.tree, self)?.commands)
    }

    /// The tasks keyed on the lock file the build leaves (the one that ships).
    fn build(&self, here: &Here<'_>) -> Result<Vec<TaskSpec>, Error> {
        let key = crate::build::key(here.tree, self)?;
        Ok(crate::tasks(self, key.as_deref()))
    }

    fn paths(&self) -> Option<&[String]> {
        (!self.ship.is_empty()).then_some(self.ship.as_slice())
    }

    fn tasks_for_files(&self, files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<TaskSpec>, Error> {
        let key = match self.install {
            Install::None => None,
            Install::Production => {
                let lock = files.get("package-lock.json").ok_or(
                    "[node] install = \"production\", and the promoted artifact has no \
                     package-lock.json at its root",
                )?;
                Some(crate::lock_key(&String::from_utf8_lossy(lock)))
            }
        };
        Ok(crate::tasks(self, key.as_deref()))
    }

    fn listed_tasks(&self) -> Vec<TaskSpec> {
        crate::tasks(self, Some(""))
    }
}
