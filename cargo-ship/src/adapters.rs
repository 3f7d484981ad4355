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
    // Ship.toml's hooks to the adapters' tasks (`before = "django.migrate"`): Stage::resolve
    // left those to here, where the adapters' task names are known.
    let adapter_tasks: Vec<String> = tasks_unbuilt(&out).into_iter().map(|t| t.name).collect();
    for (name, task) in &stage.tasks {
        for (field, target) in [("before", &task.before), ("after", &task.after)] {
            let Some(target) = target else { continue };
            let known = ship_core::Phase::from_name(target).is_some()
                || stage.tasks.contains_key(target)
                || adapter_tasks.contains(target);
            if !known {
                let path = ["tasks", name.as_str(), field];
                return Err(ConfigError::Invalid {
                    location: loaded.location_of(&stage.name, &path),
                    key: loaded.key_of(&stage.name, &path),
                    message: format!(
                        "unknown phase or task `{target}`; the adapters' tasks here: {}",
                        if adapter_tasks.is_empty() {
                            "none".to_owned()
                        } else {
                            adapter_tasks.join(", ")
                        }
                    ),
                });
            }
        }
    }
    Ok(out)
}

fn wheelhouse_dir(project: &Project, stage: &Stage) -> std::path::PathBuf {
    project.ship_dir.join("wheelhouse").join(&stage.name)
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
    let mut node_key = None;
    if let Some(node) = &adapters.node {
        let prepared = ship_node::build::prepare(root, node)
            .map_err(|e| CliError::Build(format!("[node]: {e}")))?;
        commands.extend(prepared.commands);
        node_key = prepared.key;
    }
    commands.extend(stage.build.iter().cloned());
    // The build commands run before the wheels: they may write the requirements.
    artifact::run_commands(root, &commands)?;
    if let ship_core::SourceConfig::Cargo(bin) = &stage.source {
        let command = format!("cargo build --release --locked --bin {bin}");
        let status = std::process::Command::new(&project.cargo)
            .args(["build", "--release", "--locked", "--bin", bin])
            .current_dir(root)
            .stdout(std::process::Stdio::from(std::io::stderr()))
            .status()
            .map_err(|e| CliError::Build(format!("`{command}`: {e}")))?;
        if !status.success() {
            return Err(CliError::Build(format!(
                "`{command}` failed ({status}); source = {{ cargo = \"{bin}\" }} needs a binary \
                 target of that name in the workspace"
            )));
        }
        commands.push(command);
    }
    let mut wheelhouse = None;
    if let Some(python) = &adapters.python {
        let wheels = ship_python::wheelhouse::build(root, python, &wheelhouse_dir(project, stage))
            .map_err(|e| CliError::Build(format!("[python]: {e}")))?;
        tasks.extend(ship_python::tasks(python, &wheels));
        wheelhouse = wheels.dir;
    }
    if let Some(node) = &adapters.node {
        tasks.extend(ship_node::tasks(node, node_key.as_deref()));
    }
    let mut built = pack(project, stage, adapters, wheelhouse)?;
    built.info.commands = commands;
    Ok((built, tasks))
}

/// Packs the artifact again from what the last build left, running nothing: what `apply`
/// compares with a saved plan's digest.
pub(crate) fn repack(
    project: &Project,
    stage: &Stage,
    adapters: &Adapters,
) -> Result<Built, CliError> {
    let wheelhouse = match &adapters.python {
        Some(p) if p.wheelhouse => {
            let dir = wheelhouse_dir(project, stage);
            if !dir.is_dir() {
                return Err(CliError::Usage(format!(
                    "the wheels of the plan ({}) are gone; run `cargo ship plan {}` again",
                    project.show(&dir),
                    stage.name
                )));
            }
            Some(dir)
        }
        _ => None,
    };
    pack(project, stage, adapters, wheelhouse)
}

fn pack(
    project: &Project,
    stage: &Stage,
    adapters: &Adapters,
    wheelhouse: Option<std::path::PathBuf>,
) -> Result<Built, CliError> {
    let mut extras: Vec<Extra> = Vec::new();
    if let ship_core::SourceConfig::Cargo(bin) = &stage.source {
        let target = project.ship_dir.parent().unwrap_or(&project.root);
        extras.push(Extra {
            from: target.join("release").join(bin),
            to: format!("bin/{bin}"),
        });
    }
    extras.extend(stage.include.iter().map(|p| Extra {
        from: project.root.join(p.trim_end_matches('/')),
        to: p.trim_end_matches('/').to_owned(),
    }));
    extras.extend(wheelhouse.into_iter().map(|from| Extra {
        from,
        to: ship_python::WHEELHOUSE_DIR.to_owned(),
    }));
    let content = match &adapters.node {
        Some(node) if !node.ship.is_empty() => Content::Paths(&node.ship),
        _ => Content::Source(&stage.source),
    };
    Ok(artifact::build_with(
        &project.root,
        &Packing {
            content,
            build: &[],
            extras: &extras,
        },
        &project.ship_dir.join("artifacts"),
    )?)
}

/// The adapters' tasks for an artifact that is not built again (promoted from another
/// stage): their keys are read from the files it carries.
pub(crate) fn tasks_for_artifact(
    adapters: &Adapters,
    files: &std::collections::BTreeMap<String, Vec<u8>>,
) -> Result<Vec<TaskSpec>, CliError> {
    let mut tasks = Vec::new();
    if let Some(python) = &adapters.python {
        let wheels = ship_python::wheelhouse::from_files(python, files);
        tasks.extend(ship_python::tasks(python, &wheels));
    }
    if let Some(node) = &adapters.node {
        let key = match node.install {
            ship_node::Install::None => None,
            ship_node::Install::Production => {
                let lock = files.get("package-lock.json").ok_or_else(|| {
                    CliError::Usage(
                        "[node] install = \"production\", and the promoted artifact has no \
                         package-lock.json at its root"
                            .to_owned(),
                    )
                })?;
                Some(ship_node::lock_key(&String::from_utf8_lossy(lock)))
            }
        };
        tasks.extend(ship_node::tasks(node, key.as_deref()));
    }
    Ok(tasks)
}

/// The adapters' tasks as a listing shows them: no build, no keys.
pub(crate) fn tasks_unbuilt(adapters: &Adapters) -> Vec<TaskSpec> {
    let mut tasks = Vec::new();
    if let Some(python) = &adapters.python {
        let wheels = ship_python::Wheelhouse {
            dir: None,
            wheels: Vec::new(),
            key: String::new(),
        };
        tasks.extend(ship_python::tasks(python, &wheels));
    }
    if let Some(node) = &adapters.node {
        tasks.extend(ship_node::tasks(node, Some("")));
    }
    tasks
}
