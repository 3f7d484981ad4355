//! The adapters wired in: ship-python and ship-node read their tables of the stage, add to
//! the artifact (wheels, built files) and contribute tasks to the plan.

use crate::CliError;
use crate::project::Project;
use ship_core::artifact::{self, Built, Content, Extra, Packing};
use ship_core::load::{ConfigError, Loaded};
use ship_core::{Stage, TaskSpec};
use ship_node::NodeConfig;
use ship_python::PythonConfig;

/// The adapters' tables of one stage, read and checked.
#[derive(Debug, Default)]
pub(crate) struct Adapters {
    python: Option<PythonConfig>,
    node: Option<NodeConfig>,
}

/// Reads `[python]` and `[node]`; an error names the file, line and key like any other
/// configuration error.
pub(crate) fn read(loaded: &Loaded, stage: &Stage) -> Result<Adapters, ConfigError> {
    let invalid = |table: &str, key: &[String], message: String| {
        let mut path = vec![table];
        path.extend(key.iter().map(String::as_str));
        ConfigError::Invalid {
            location: loaded.location_of(&stage.name, &path),
            key: loaded.key_of(&stage.name, &path),
            message,
        }
    };
    let check_roles = |table: &str, key: &[&str], roles: &[String]| {
        for role in roles {
            if !stage.roles.contains_key(role) {
                let key: Vec<String> = key.iter().map(|k| (*k).to_owned()).collect();
                return Err(invalid(
                    table,
                    &key,
                    format!(
                        "no role `{role}` in stage `{}`; its roles: {}",
                        stage.name,
                        stage.roles.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        Ok(())
    };
    let mut out = Adapters::default();
    if let Some(v) = stage.adapters.get("python") {
        let cfg = PythonConfig::from_value(v).map_err(|p| invalid("python", &p.key, p.message))?;
        check_roles("python", &["roles"], &cfg.roles)?;
        check_roles("python", &["django", "roles"], &cfg.django.roles)?;
        out.python = Some(cfg);
    }
    if let Some(v) = stage.adapters.get("node") {
        let cfg = NodeConfig::from_value(v).map_err(|p| invalid("node", &p.key, p.message))?;
        check_roles("node", &["roles"], &cfg.roles)?;
        out.node = Some(cfg);
    }
    Ok(out)
}

/// The build phase: the adapters' local work, then the artifact; returns it with the tasks
/// the adapters add to the plan.
pub(crate) fn build(
    project: &Project,
    stage: &Stage,
    adapters: &Adapters,
) -> Result<(Built, Vec<TaskSpec>), CliError> {
    let root = &project.root;
    let mut commands = Vec::new();
    let mut tasks = Vec::new();
    let mut ship_paths: Option<&[String]> = None;
    let mut node_key = None;
    if let Some(node) = &adapters.node {
        let prepared = ship_node::build::prepare(root, node)
            .map_err(|e| CliError::Build(format!("[node]: {e}")))?;
        commands.extend(prepared.commands);
        node_key = prepared.key;
        if !node.ship.is_empty() {
            ship_paths = Some(&node.ship);
        }
    }
    commands.extend(stage.build.iter().cloned());
    // The build commands run before the wheels: they may write the requirements.
    artifact::run_commands(root, &commands)?;
    let mut extras = Vec::new();
    if let Some(python) = &adapters.python {
        let out = project.ship_dir.join("wheelhouse").join(&stage.name);
        let wheels = ship_python::wheelhouse::build(root, python, &out)
            .map_err(|e| CliError::Build(format!("[python]: {e}")))?;
        if let Some(dir) = &wheels.dir {
            extras.push(Extra {
                from: dir.clone(),
                to: ship_python::WHEELHOUSE_DIR.to_owned(),
            });
        }
        tasks.extend(ship_python::tasks(python, &wheels));
    }
    if let Some(node) = &adapters.node {
        tasks.extend(ship_node::tasks(node, node_key.as_deref()));
    }
    let mut built = artifact::build_with(
        root,
        &Packing {
            content: match ship_paths {
                Some(paths) => Content::Paths(paths),
                None => Content::Source(&stage.source),
            },
            build: &[],
            extras: &extras,
        },
        &project.ship_dir.join("artifacts"),
    )?;
    built.info.commands = commands;
    Ok((built, tasks))
}
