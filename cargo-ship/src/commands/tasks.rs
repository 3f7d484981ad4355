//! `cargo ship tasks [stage]`: every task of a stage — the user's and the adapters' — in
//! the order a deploy runs them, with where and when each runs. Builds nothing, reaches no
//! host: the planner orders them with a stand-in artifact.

use crate::cli::{Format, Ship, TasksArgs};
use crate::project::Project;
use crate::{CliError, Context};
use ship_core::Sources;
use ship_core::{ArtifactInfo, PlanInput, TaskSpec};
use ship_core::{Placement, StepKind};
use std::io::Write;

/// Every task of `stage` (the user's, then the adapters'), and the plan a deploy to its
/// hosts would be, made with a stand-in artifact: where and in which order each task runs,
/// as the planner decides it (roles, `once`, `local`). What `tasks` lists and where `task`
/// runs one.
pub(crate) fn ordered(
    stage: &ship_core::Stage,
    adapters: &crate::adapters::Adapters,
) -> Result<(ship_core::Plan, Vec<TaskSpec>), CliError> {
    let extra: Vec<TaskSpec> = crate::adapters::tasks_unbuilt(adapters);
    let specs: Vec<TaskSpec> = stage
        .tasks
        .iter()
        .map(|(name, cfg)| TaskSpec::from_config(name, cfg))
        .chain(extra.iter().cloned())
        .collect();
    let layout = super::layout(&stage.layout)?;
    let plan = ship_core::plan(&PlanInput {
        stage,
        layout,
        release: "0".to_owned(),
        artifact: ArtifactInfo {
            source: String::new(),
            revision: None,
            digest: "0".repeat(64),
            bytes: 0,
            entries: 0,
            commands: Vec::new(),
            promoted_from: None,
            uncommitted: Vec::new(),
        },
        config_digest: String::new(),
        extra_tasks: extra,
        overrides: Vec::new(),
    })?;
    Ok((plan, specs))
}

pub(crate) fn run(ship: &Ship, args: &TasksArgs, cx: &mut Context) -> Result<(), CliError> {
    let stage_name = match &args.stage {
        Some(s) => s.clone(),
        None => {
            let project = Project::find(&cx.cwd, ship.manifest_path.as_deref(), cx.var("CARGO"))?;
            let loaded = Sources {
                ship_toml: project.ship_toml.clone(),
                cargo_metadata: project.cargo_metadata.clone(),
                env: cx.env.clone(),
                overrides: Vec::new(),
                adapter_tables: crate::adapters::table_names(),
            }
            .load()?;
            loaded.stages().first().cloned().ok_or_else(|| {
                CliError::Usage(format!(
                    "{} defines no stage: add one, e.g. [production] with hosts = [\"web1\"]",
                    project.show(&project.ship_toml)
                ))
            })?
        }
    };
    let (_project, stage, adapters) =
        super::resolve_with_adapters(ship, &stage_name, Vec::new(), cx)?;
    let (plan, specs) = ordered(&stage, &adapters)?;

    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut listed = Vec::new();
    for step in plan.steps.iter().filter(|s| s.kind == StepKind::Task) {
        let spec = specs
            .iter()
            .find(|t| t.name == step.name)
            .expect("every task step comes from a spec");
        listed.push(serde_json::json!({
            "name": step.name,
            "when": spec.hook(),
            "roles": spec.roles,
            "placement": match step.placement {
                Placement::Local => "local",
                Placement::Once => "once",
                Placement::Hosts => "hosts",
            },
            "hosts": if step.placement == Placement::Local { Vec::new() } else { step.hosts.clone() },
            "run": spec.run,
            "description": spec.description,
            "adapter": !stage.tasks.contains_key(&step.name),
        }));
        let roles = if spec.roles.is_empty() {
            "every host".to_owned()
        } else {
            format!("roles {}", spec.roles.join(", "))
        };
        let place = match step.placement {
            Placement::Local => "here (local)".to_owned(),
            Placement::Once => format!("once: {} ({roles})", step.hosts.join(", ")),
            Placement::Hosts => roles,
        };
        let what = spec.description.clone().unwrap_or_else(|| spec.run.clone());
        rows.push([step.name.clone(), spec.hook(), place, what]);
    }
    if args.format == Format::Json {
        let doc = serde_json::json!({"app": stage.app, "stage": stage.name, "tasks": listed});
        let _ = writeln!(
            cx.stdout,
            "{}",
            serde_json::to_string_pretty(&doc).expect("JSON values serialize")
        );
        return Ok(());
    }
    let _ = writeln!(
        cx.stdout,
        "Tasks of {} on {} ({} task{}, in the order a deploy runs them):",
        stage.app,
        stage.name,
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
    if rows.is_empty() {
        let _ = writeln!(
            cx.stdout,
            "  none: add one with [{}.tasks.<name>] run = \"...\" and after = \"<phase>\"",
            stage.name
        );
        return Ok(());
    }
    let head = ["task", "when", "where", "what"];
    let widths: Vec<usize> = (0..3)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([head[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(head.map(str::to_owned)).chain(rows) {
        let _ = writeln!(
            cx.stdout,
            "  {:<w0$}  {:<w1$}  {:<w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3].lines().next().unwrap_or(""),
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
    Ok(())
}
