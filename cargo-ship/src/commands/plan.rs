//! `cargo ship plan <stage>`: configuration → artifact → plan → text or JSON, saved.

use crate::cli::{PlanArgs, PlanFormat, Ship};
use crate::project::Project;
use crate::{CliError, Context};
use ship_core::PlanInput;
use ship_core::stage::check_release_id;
use ship_core::{TextOptions, render::text};
use std::io::Write;

/// Everything `plan` makes: kept for `apply` in the next version.
pub(crate) struct Planned {
    pub(crate) plan: ship_core::Plan,
    pub(crate) project: Project,
    pub(crate) stage: ship_core::Stage,
    /// The app's environment file the plan's digest was made from (`Plan::env`), for an
    /// apply that follows: the secrets are read once.
    pub(crate) env: Option<String>,
}

/// The version of a layout that names releases by it (`version`): configured, or read from
/// the project.
pub(crate) fn fill_version(
    project: &Project,
    stage: &mut ship_core::Stage,
    pinned: bool,
) -> Result<(), CliError> {
    let layout = super::layout(&stage.layout)?;
    if layout.needs_version() && stage.version.is_none() {
        stage.version = project.detect_version(&stage.source);
        if stage.version.is_none() && !pinned {
            return Err(CliError::Usage(format!(
                "the {} layout needs a version: none in Cargo.toml, package.json or \
                 pyproject.toml of {}; pass --version 1.2.3 or set `version` in Ship.toml",
                layout.name(),
                project.root.display()
            )));
        }
    }
    Ok(())
}

pub(crate) fn make(ship: &Ship, args: &PlanArgs, cx: &Context) -> Result<Planned, CliError> {
    if let Some(id) = &args.release_id {
        check_release_id(id).map_err(|m| CliError::Usage(format!("--release-id: {m}")))?;
    }
    let set = with_ref(ship, args, cx)?;
    let overrides = super::overrides(&set, args.app_version.as_deref())?;
    let (project, mut stage, adapters) =
        super::resolve_with_adapters(ship, &args.stage, overrides, cx)?;
    fill_version(&project, &mut stage, args.release_id.is_some())?;
    let layout = super::layout(&stage.layout)?;
    let release = match &args.release_id {
        Some(id) => {
            layout
                .check_release_id(id)
                .map_err(|m| CliError::Usage(format!("--release-id {id}: {m}")))?;
            id.clone()
        }
        None if layout.needs_version() => {
            let v = stage.version.clone().expect("checked above");
            check_release_id(&v).map_err(|m| CliError::Usage(format!("version: {m}")))?;
            v
        }
        None => jiff::Timestamp::now().strftime("%Y%m%d%H%M%S").to_string(),
    };

    crate::fetch::archive(&project, &stage.source)?;
    let (built, extra_tasks) = crate::adapters::build(&project, &stage, &adapters)?;
    if let (Some(pushed_to), Some(commit)) = (&stage.require_pushed, &built.info.revision) {
        crate::git::check_pushed(&project.root, &stage.name, commit, pushed_to)?;
    }
    let selection = super::selection(&args.select);
    let env = crate::secrets::render(&stage, &project.root, cx)?;
    let plan = assemble(
        &stage,
        &selection,
        release,
        built.info,
        extra_tasks,
        set,
        env.as_ref().map(|e| e.plan.clone()),
    )?;
    Ok(Planned {
        plan,
        project,
        stage,
        env: env.map(|e| e.content),
    })
}

/// The `--set` flags with `--ref REF` as the `--set source.git="REF"` it stands for (so a
/// saved plan records it, and `apply` reads the configuration again with it). Refused, with
/// the stage's source named, when the stage does not deploy a git revision: a directory, an
/// archive or a cargo binary has no revision to choose.
fn with_ref(ship: &Ship, args: &PlanArgs, cx: &Context) -> Result<Vec<String>, CliError> {
    let mut set = args.set.clone();
    let Some(git_ref) = &args.git_ref else {
        return Ok(set);
    };
    if git_ref.trim().is_empty() || git_ref.starts_with('-') || git_ref.contains(['"', '\\']) {
        return Err(CliError::Usage(format!(
            "--ref {git_ref:?}: expected a git revision: a tag, a branch or a commit, e.g. --ref v1.4.2"
        )));
    }
    if set
        .iter()
        .any(|s| s.starts_with("source.") || s.starts_with("source="))
    {
        return Err(CliError::Usage(format!(
            "--ref {git_ref} and --set source...: give one of them (--ref {git_ref} is --set source.git={git_ref})"
        )));
    }
    let overrides = super::overrides(&set, args.app_version.as_deref())?;
    let (_, stage) = super::resolve(ship, &args.stage, overrides, cx)?;
    if let (kind, value) = stage.source.parts()
        && kind != "git"
    {
        return Err(CliError::Usage(format!(
            "--ref {git_ref}: stage `{}` deploys source = {{ {kind} = {value:?} }}, not a git \
             revision of the project; --ref needs source = {{ git = \"HEAD\" }} (the default)",
            stage.name
        )));
    }
    set.push(format!("source.git=\"{git_ref}\""));
    Ok(set)
}

/// The plan of `stage` for the hosts `selection` chooses, from its inputs: what `plan` makes
/// and what `apply` makes again from a saved plan's inputs to check it.
pub(crate) fn assemble(
    stage: &ship_core::Stage,
    selection: &ship_core::Selection,
    release: String,
    artifact: ship_core::ArtifactInfo,
    extra_tasks: Vec<ship_core::TaskSpec>,
    overrides: Vec<String>,
    env: Option<ship_core::EnvPlan>,
) -> Result<ship_core::Plan, CliError> {
    let layout = super::layout(&stage.layout)?;
    let config_digest = ship_core::planner::config_digest(stage);
    let config_keys = ship_core::planner::config_keys(stage);
    let (chosen, left_out) = if selection.is_empty() {
        (stage.clone(), Vec::new())
    } else {
        stage.select(selection).map_err(CliError::UsageHint)?
    };
    let mut plan = ship_core::plan(&PlanInput {
        stage: &chosen,
        layout,
        release,
        artifact,
        config_digest,
        extra_tasks,
        overrides,
    })?;
    if !selection.is_empty() {
        // The plan is for the chosen hosts; its configuration checks are the whole stage's,
        // which is what `apply` reads again.
        plan.config_keys = config_keys;
        plan.selection = Some(ship_core::Selected {
            flags: selection.flags(),
            left_out,
        });
        plan = plan.sealed();
    }
    if env.is_some() {
        plan.env = env;
        plan = plan.sealed();
    }
    Ok(plan)
}

/// The selection a saved plan records (`--roles web --exclude web2`), read back; `None` when
/// it does not read as flags `plan` writes.
pub(crate) fn selection_of(flags: &str) -> Option<ship_core::Selection> {
    let mut sel = ship_core::Selection {
        roles: Vec::new(),
        hosts: Vec::new(),
        exclude: Vec::new(),
    };
    let mut words = flags.split(' ');
    while let Some(flag) = words.next() {
        let list = match flag {
            "--roles" => &mut sel.roles,
            "--hosts" => &mut sel.hosts,
            "--exclude" => &mut sel.exclude,
            _ => return None,
        };
        list.extend(words.next()?.split(',').map(str::to_owned));
    }
    (sel.flags() == flags && !sel.is_empty()).then_some(sel)
}

/// Saves the plan to `target/ship/<stage>.plan.json`, and the stage's name to
/// `target/ship/last` for `cargo ship apply`.
pub(crate) fn save(
    project: &Project,
    plan: &ship_core::Plan,
) -> Result<std::path::PathBuf, CliError> {
    let io = |path: &std::path::Path| {
        let path = path.display().to_string();
        move |source| CliError::Io { path, source }
    };
    std::fs::create_dir_all(&project.ship_dir).map_err(io(&project.ship_dir))?;
    let saved = project.ship_dir.join(format!("{}.plan.json", plan.stage));
    std::fs::write(&saved, plan.to_json()).map_err(io(&saved))?;
    let last = project.ship_dir.join("last");
    std::fs::write(&last, format!("{}\n", plan.stage)).map_err(io(&last))?;
    Ok(saved)
}

/// What the deploy will change on each host, read from the hosts now (no lock taken).
fn refresh(
    plan: &ship_core::Plan,
    project: &Project,
    stage: &ship_core::Stage,
) -> Result<String, CliError> {
    use std::fmt::Write as _;
    let layout = super::layout(&stage.layout)?;
    let transport = super::ssh(
        project,
        stage,
        &crate::cli::RemoteArgs {
            accept_new_host_keys: false,
            set: Vec::new(),
        },
    );
    let rt = super::runtime()?;
    let hosts: Vec<String> = plan.hosts.iter().map(|h| h.name.clone()).collect();
    let results = rt.block_on(super::read_states(&transport, stage, &hosts));
    rt.block_on(transport.close());
    let width = hosts.iter().map(String::len).max().unwrap_or(0);
    let mut s = String::from("\nWhat changes on each host (read now; no lock was taken):\n");
    for (host, observed) in results {
        let observed = match observed {
            Ok(o) => o,
            Err(e) => {
                let _ = writeln!(s, "  {host:<width$}  cannot tell: {e}");
                continue;
            }
        };
        let state = &observed.state;
        let live = state
            .live_record()
            .map(|r| r.id.clone())
            .or_else(|| state.live.clone());
        let new_dir = layout.new_dir(state, &plan.release);
        let removed = layout.cleanup(state, &new_dir, plan.keep_releases);
        // A release recorded with this digest means its artifact is cached on the host.
        let has_artifact = state
            .records
            .iter()
            .any(|r| r.digest == plan.artifact.digest);
        let redeploy = match ship_core::layout::redeploy_of(state, &new_dir, &plan.release) {
            ship_core::Redeploy::New => String::new(),
            ship_core::Redeploy::Live => {
                format!("; REFUSED: release {new_dir} is live there already")
            }
            ship_core::Redeploy::Replaces(_) => {
                format!("; replaces the release {new_dir} that is there (not live)")
            }
        };
        let _ = writeln!(
            s,
            "  {host:<width$}  live {} → {}; cleanup deletes {}; {}{}{redeploy}",
            live.as_deref().unwrap_or("nothing"),
            plan.release,
            if removed.is_empty() {
                "nothing".to_owned()
            } else {
                removed.join(", ")
            },
            if has_artifact {
                "the artifact is there already"
            } else {
                "the artifact will be sent"
            },
            observed
                .lock
                .as_deref()
                .map(|l| format!("; LOCKED by {l}"))
                .unwrap_or_default()
        );
    }
    Ok(s)
}

pub(crate) fn run(ship: &Ship, args: &PlanArgs, cx: &mut Context) -> Result<(), CliError> {
    if args.refresh && args.format != PlanFormat::Text {
        return Err(CliError::Usage(
            "--refresh adds a section for people to read; use it without --format \
             (`cargo ship releases <stage> --format json` gives the hosts' state as JSON)"
                .to_owned(),
        ));
    }
    let Planned {
        plan,
        project,
        stage,
        ..
    } = make(ship, args, cx)?;
    let json = plan.to_json();
    let saved = save(&project, &plan)?;
    let out = match args.format {
        PlanFormat::Json => json,
        PlanFormat::Dot => ship_core::graph::dot(&plan),
        PlanFormat::Mermaid => ship_core::graph::mermaid(&plan),
        PlanFormat::Text => text(
            &plan,
            TextOptions {
                verbose: args.verbose,
            },
        ),
    };
    let _ = cx.stdout.write_all(out.as_bytes());
    if args.refresh {
        let _ = cx
            .stdout
            .write_all(refresh(&plan, &project, &stage)?.as_bytes());
    }
    let _ = writeln!(cx.stderr, "saved: {}", project.show(&saved));
    Ok(())
}
