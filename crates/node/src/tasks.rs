//! The host half: the tasks the adapter adds to a plan (pure data).

use crate::config::{Install, NodeConfig};
use ship_core::Trees;
use ship_core::shell::quote;
use ship_core::{Phase, Target, TaskSpec};

/// The task that installs or reuses node_modules (before `install`).
pub const MODULES_TASK: &str = "node.modules";
/// The task that removes node_modules trees no kept release uses (after `cleanup`).
pub const PRUNE_TASK: &str = "node.prune";

const TREES: Trees<'static> = Trees {
    kind: "node_modules",
    tag: "ship-node",
    link: "node_modules",
};

/// The tasks for `cfg`: none for `install = "none"`; `node.modules` and `node.prune` for
/// `install = "production"`, with `key` from [`crate::build::prepare`].
///
/// ```
/// use ship_node::{Install, NodeConfig, tasks};
/// let cfg = NodeConfig { install: Install::Production, node: "node".into(), ..Default::default() };
/// let names: Vec<String> = tasks(&cfg, Some("k".repeat(64).as_str())).into_iter().map(|t| t.name).collect();
/// assert_eq!(names, ["node.modules", "node.prune"]);
/// ```
pub fn tasks(cfg: &NodeConfig, key: Option<&str>) -> Vec<TaskSpec> {
    let (Install::Production, Some(key)) = (cfg.install, key) else {
        return Vec::new();
    };
    let make = "\"$npm\" ci --omit=dev --no-audit --no-fund || { echo \"ship-node: npm ci failed on $SHIP_HOST (see above)\" >&2; exit 1; }\n\
                [ -d node_modules ] || mkdir node_modules\n\
                mv node_modules \"$dir\"";
    let script = format!(
        r#"set -eu
node={node}
npm={npm}
key={key}
command -v "$node" >/dev/null 2>&1 || {{ echo "ship-node: $node is not installed on $SHIP_HOST (set node = \"...\" in [node])" >&2; exit 1; }}
command -v "$npm" >/dev/null 2>&1 || {{ echo "ship-node: $npm is not installed on $SHIP_HOST" >&2; exit 1; }}
[ -f package-lock.json ] || {{ echo "ship-node: the release has no package-lock.json: ship it with package.json (node.ship)" >&2; exit 1; }}
major=$("$node" --version | sed 's/^v//; s/[.].*//')
{reuse}"#,
        node = quote(&cfg.node),
        npm = quote(&cfg.npm()),
        key = quote(key),
        reuse = TREES.reuse_script("\"$key-node$major\"", make),
    );
    let modules = TaskSpec {
        name: MODULES_TASK.to_owned(),
        run: script,
        before: Some(Target::Phase(Phase::Install)),
        after: None,
        roles: cfg.roles.clone(),
        once: false,
        once_per_role: false,
        local: false,
        description: Some(format!(
            "node_modules{}: reused when the host has it, else npm ci --omit=dev",
            if key.is_empty() {
                String::new()
            } else {
                format!(" {}", &key[..12.min(key.len())])
            }
        )),
    };
    let mut prune = modules.clone();
    prune.name = PRUNE_TASK.to_owned();
    prune.run = TREES.prune_script();
    prune.before = None;
    prune.after = Some(Target::Phase(Phase::Cleanup));
    prune.description = Some("remove node_modules trees no kept release links to".to_owned());
    vec![modules, prune]
}
