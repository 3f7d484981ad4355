//! The adapters wired in: [`ADAPTERS`] is the one list of them. Each reads its table of the
//! stage, adds to the artifact (wheels, built files) and contributes tasks to the plan,
//! through the `ship_core::adapter` traits; nothing else here names an adapter.

use crate::CliError;
use crate::project::Project;
use ship_core::diagnostic::{closest, list};
use ship_core::{Adapter, Configured, Here};
use ship_core::{Built, Content, Extra, Packing, artifact};
use ship_core::{ConfigError, Loaded, Mark};
use ship_core::{Stage, TaskSpec};
use std::path::{Path, PathBuf};

/// Every adapter cargo ship knows, in the order their work and tasks come in a plan. A new
/// adapter is one crate implementing `ship_core::Adapter` and one line here.
pub(crate) const ADAPTERS: &[&dyn Adapter] = &[&ship_python::Python, &ship_node::Node];

/// The names of the adapters' tables, for `ship_core::Sources::adapter_tables`.
pub(crate) fn table_names() -> Vec<String> {
    ADAPTERS.iter().map(|a| a.name().to_owned()).collect()
}

/// The adapters' tables of one stage, read and checked, in [`ADAPTERS`] order.
#[derive(Debug, Default)]
pub(crate) struct Adapters {
    configured: Vec<(&'static str, Box<dyn Configured>)>,
}

impl Adapters {
    /// Whether the stage configures no adapter.
    pub(crate) fn is_empty(&self) -> bool {
        self.configured.is_empty()
    }
}

/// Reads the adapters' tables of the stage; an error names the file, line and key like any
/// other configuration error.
pub(crate) fn read(loaded: &Loaded, stage: &Stage) -> Result<Adapters, ConfigError> {
    let mut out = Adapters::default();
    for adapter in ADAPTERS {
        let table = adapter.name();
        let Some(value) = stage.adapters.get(table) else {
            continue;
        };
        let configured = adapter.read(value, stage).map_err(|p| {
            let mut path = vec![table];
            path.extend(p.key.iter().map(String::as_str));
            let shown = *p.shown;
            if let Some(valid) = &shown.unknown_key {
                return loaded.unknown_key(&stage.name, &path, valid);
            }
            let mark = shown.item.as_deref().map_or(Mark::Value, Mark::Item);
            loaded
                .invalid(&stage.name, &path, mark, &shown.label, p.message)
                .with_hint(shown.hint)
        })?;
        out.configured.push((table, configured));
    }
    // Ship.toml's hooks to the adapters' tasks (`before = "django.migrate"`): Stage::resolve
    // left those to here, where the adapters' task names are known.
    let adapter_tasks: Vec<String> = out
        .configured
        .iter()
        .flat_map(|(_, c)| c.task_names())
        .collect();
    for (name, task) in &stage.tasks {
        for (field, target) in [("before", &task.before), ("after", &task.after)] {
            let Some(target) = target else { continue };
            let known = ship_core::Phase::from_name(target).is_some()
                || stage.tasks.contains_key(target)
                || adapter_tasks.contains(target);
            if !known {
                let path = ["tasks", name.as_str(), field];
                let phases = ship_core::Phase::ALL.iter().map(|p| p.name());
                let tasks = stage.tasks.keys().filter(|t| *t != name);
                let choices: Vec<&str> = phases
                    .chain(tasks.map(String::as_str))
                    .chain(adapter_tasks.iter().map(String::as_str))
                    .collect();
                let help = closest(target, choices).map(|c| format!("did you mean `{c}`?"));
                let note = format!(
                    "the adapters' tasks here: {}",
                    if adapter_tasks.is_empty() {
                        "none".to_owned()
                    } else {
                        list(&adapter_tasks)
                    }
                );
                return Err(loaded
                    .invalid(
                        &stage.name,
                        &path,
                        Mark::Value,
                        "no phase or task of this name",
                        format!("unknown phase or task `{target}`"),
                    )
                    .with_hint((help, Some(note))));
            }
        }
    }
    Ok(out)
}

fn here<'a>(project: &'a Project, stage: &'a Stage, tree: Option<&'a Path>) -> Here<'a> {
    Here {
        root: &project.root,
        tree: tree.unwrap_or(&project.root),
        ship_dir: &project.ship_dir,
        stage: &stage.name,
    }
}

/// The commands the build phase runs, in order: the adapters', then the stage's `build`
/// (not the cargo build of a `cargo` source: [`cargo_command`]). Runs nothing; for a `git`
/// source the adapters read the tree [`build`] exported (their commands depend on the
/// commit's package.json, not the working tree's).
pub(crate) fn commands(
    project: &Project,
    stage: &Stage,
    adapters: &Adapters,
) -> Result<Vec<String>, CliError> {
    let tree = build_tree(project, stage, adapters);
    commands_in(&here(project, stage, tree.as_deref()), stage, adapters)
}

fn commands_in(
    here: &Here<'_>,
    stage: &Stage,
    adapters: &Adapters,
) -> Result<Vec<String>, CliError> {
    let mut commands = Vec::new();
    for (table, adapter) in &adapters.configured {
        commands.extend(
            adapter
                .commands(here)
                .map_err(|e| CliError::Build(format!("[{table}]: {e}")))?,
        );
    }
    commands.extend(stage.build.iter().cloned());
    Ok(commands)
}

/// Where the build runs and the adapters read their inputs: for a `git` source with build
/// commands or an adapter, a tree of its own made from the commit
/// (`target/ship/build/<stage>`, see `ship_core::artifact::export`), packed as the build
/// leaves it, so that what the build wrote ships and everything that ships (the code, the
/// wheels, the npm build) comes from the commit, never the working tree; else the
/// project's root (None), as for a `dir` source, which names the build's output itself.
pub(crate) fn build_tree(project: &Project, stage: &Stage, adapters: &Adapters) -> Option<PathBuf> {
    match &stage.source {
        ship_core::SourceConfig::Git(_) if !stage.build.is_empty() || !adapters.is_empty() => {
            Some(here(project, stage, None).stage_dir("build"))
        }
        _ => None,
    }
}

/// Where `plan` records the project's uncommitted changes for a `git` source, so that
/// `apply` packs the same artifact information again: `target/ship/build/<stage>.uncommitted`.
fn uncommitted_record(project: &Project, stage: &Stage) -> PathBuf {
    here(project, stage, None)
        .stage_dir("build")
        .with_extension("uncommitted")
}

/// The arguments of the `cargo` that builds the binary of a `cargo` source: the stage's
/// `cargo` keys, and JSON messages on stdout (the binary's path is read from them).
fn cargo_args(bin: &str, cargo: &ship_core::CargoBuild) -> Vec<String> {
    let mut args = cargo.args(bin);
    args.push("--message-format=json-render-diagnostics".to_owned());
    args
}

/// The command that builds the binary of a `cargo` source, as the plan records it.
pub(crate) fn cargo_command(bin: &str, cargo: &ship_core::CargoBuild) -> String {
    format!("cargo {}", cargo_args(bin, cargo).join(" "))
}

/// Where `plan` records the path of the binary cargo built (from its JSON messages), for
/// packing, and for `apply` to pack again: `target/ship/build/<stage>.cargo-bin`.
fn cargo_bin_record(project: &Project, stage: &Stage) -> PathBuf {
    here(project, stage, None)
        .stage_dir("build")
        .with_extension("cargo-bin")
}

/// Runs cargo's build of `bin` and returns the path of the executable it made, as its
/// `compiler-artifact` message says (`target/<triple>/<profile>/<bin>`, whatever the
/// target, profile or target directory).
fn cargo_build(project: &Project, stage: &Stage, bin: &str) -> Result<PathBuf, CliError> {
    let command = cargo_command(bin, &stage.cargo);
    // It builds with --locked (what is deployed is what the lock file says): a package
    // fresh from `cargo new` has none yet.
    if !project
        .root
        .ancestors()
        .any(|d| d.join("Cargo.lock").is_file())
    {
        return Err(CliError::Build(format!(
            "no Cargo.lock in {} or above: cargo ship builds with `--locked`, so the \
             dependencies deployed are the ones locked; run `cargo generate-lockfile` and \
             commit it",
            project.root.display()
        )));
    }
    let mut child = std::process::Command::new(&project.cargo)
        .args(cargo_args(bin, &stage.cargo))
        .current_dir(&project.root)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| CliError::Build(format!("`{command}`: {e}")))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut executable = None;
    for message in cargo_metadata::Message::parse_stream(std::io::BufReader::new(stdout)) {
        let message = message.map_err(|e| CliError::Build(format!("`{command}`: {e}")))?;
        if let cargo_metadata::Message::CompilerArtifact(artifact) = message
            && artifact.target.name == bin
            && artifact.target.is_bin()
            && let Some(path) = artifact.executable
        {
            executable = Some(PathBuf::from(path));
        }
    }
    let status = child
        .wait()
        .map_err(|e| CliError::Build(format!("`{command}`: {e}")))?;
    if !status.success() {
        return Err(CliError::Build(format!(
            "`{command}` failed ({status}): cargo's messages above say why"
        )));
    }
    executable.ok_or_else(|| {
        CliError::Build(format!(
            "`{command}` named no executable for the binary `{bin}` in its messages"
        ))
    })
}

/// The build phase: the adapters' local work, then the artifact; returns it with the tasks
/// the adapters add to the plan.
pub(crate) fn build(
    project: &Project,
    stage: &Stage,
    adapters: &Adapters,
) -> Result<(Built, Vec<TaskSpec>), CliError> {
    let root = &project.root;
    let failed =
        |table: &str, e: ship_core::AdapterError| CliError::Build(format!("[{table}]: {e}"));
    let mut tasks = Vec::new();
    let tree = build_tree(project, stage, adapters);
    let record = uncommitted_record(project, stage);
    if let ship_core::SourceConfig::Git(rev) = &stage.source {
        if let Some(tree) = &tree {
            artifact::export(root, rev, tree)?;
        }
        // What the artifact leaves out, said by the plan (never silently).
        let uncommitted = crate::git::uncommitted(root, &project.ship_dir)?;
        if let Some(dir) = record.parent() {
            std::fs::create_dir_all(dir).map_err(|e| CliError::Io {
                path: project.show(dir),
                source: e,
            })?;
        }
        let json = serde_json::to_string(&uncommitted).expect("a list of paths serializes");
        std::fs::write(&record, json).map_err(|e| CliError::Io {
            path: project.show(&record),
            source: e,
        })?;
    }
    let here = here(project, stage, tree.as_deref());
    let mut commands = commands_in(&here, stage, adapters)?;
    // The build commands run before the adapters' own work: they may write its inputs
    // (the requirements, say).
    artifact::run_commands(here.tree, &commands)?;
    if let ship_core::SourceConfig::Cargo(bin) = &stage.source {
        let executable = cargo_build(project, stage, bin)?;
        let record = cargo_bin_record(project, stage);
        let written = record
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&record, executable.to_string_lossy().as_bytes()));
        written.map_err(|e| CliError::Io {
            path: project.show(&record),
            source: e,
        })?;
        commands.push(cargo_command(bin, &stage.cargo));
    }
    for (table, adapter) in &adapters.configured {
        tasks.extend(adapter.build(&here).map_err(|e| failed(table, e))?);
    }
    let mut built = pack(project, stage, adapters, tree.as_deref())?;
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
    let tree = build_tree(project, stage, adapters);
    pack(project, stage, adapters, tree.as_deref())
}

fn pack(
    project: &Project,
    stage: &Stage,
    adapters: &Adapters,
    tree: Option<&Path>,
) -> Result<Built, CliError> {
    let mut extras: Vec<Extra> = Vec::new();
    if let ship_core::SourceConfig::Cargo(bin) = &stage.source {
        // Where cargo said it wrote the binary when the plan was made.
        let record = cargo_bin_record(project, stage);
        let from = std::fs::read_to_string(&record).map_err(|_| {
            CliError::Build(format!(
                "the binary `{bin}` was not built ({} is missing): make the plan again",
                project.show(&record)
            ))
        })?;
        extras.push(Extra {
            from: PathBuf::from(from),
            to: format!("bin/{bin}"),
        });
    }
    // `include` paths as the build left them: from the commit's tree for a `git` source
    // (a path the commit lacks and the build did not write is an error when packed), else
    // as the project has them.
    extras.extend(stage.include.iter().map(|p| {
        let p = p.trim_end_matches('/');
        Extra {
            from: tree.unwrap_or(&project.root).join(p),
            to: p.to_owned(),
        }
    }));
    let here = here(project, stage, tree);
    for (_, adapter) in &adapters.configured {
        extras.extend(
            adapter
                .extras(&here)
                .map_err(|e| CliError::Usage(e.to_string()))?,
        );
    }
    let content = match adapters.configured.iter().find_map(|(_, a)| a.paths()) {
        Some(paths) => Content::Paths(paths),
        None => Content::Source(&stage.source),
    };
    let mut built = artifact::build_with(
        &project.root,
        &Packing {
            content,
            build: &[],
            extras: &extras,
            tree,
        },
        &project.ship_dir.join("artifacts"),
    )?;
    if let ship_core::SourceConfig::Git(_) = &stage.source {
        // As `plan` saw the working tree: `apply` packs the same information again.
        let record = uncommitted_record(project, stage);
        built.info.uncommitted = std::fs::read_to_string(&record)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
    }
    Ok(built)
}

/// The adapters' tasks for an artifact that is not built again (promoted from another
/// stage): their keys are read from the files it carries.
pub(crate) fn tasks_for_artifact(
    adapters: &Adapters,
    files: &std::collections::BTreeMap<String, Vec<u8>>,
) -> Result<Vec<TaskSpec>, CliError> {
    let mut tasks = Vec::new();
    for (_, adapter) in &adapters.configured {
        tasks.extend(
            adapter
                .tasks_for_files(files)
                .map_err(|e| CliError::Usage(e.to_string()))?,
        );
    }
    Ok(tasks)
}

/// The adapters' tasks as a listing shows them: no build, no keys.
pub(crate) fn tasks_unbuilt(adapters: &Adapters) -> Vec<TaskSpec> {
    adapters
        .configured
        .iter()
        .flat_map(|(_, a)| a.listed_tasks())
        .collect()
}
