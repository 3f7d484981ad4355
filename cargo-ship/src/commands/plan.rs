//! `cargo ship plan <stage>`: configuration → artifact → plan → text or JSON, saved.

use crate::cli::{Format, PlanArgs, Ship};
use crate::project::Project;
use crate::{CliError, Context};
use ship_core::load::Sources;
use ship_core::render::{TextOptions, text};
use ship_core::stage::check_release_id;
use ship_core::{LayoutKind, PlanInput, Stage, artifact, sha256_hex};
use std::io::Write;

/// The validated inputs of a plan.
struct Settings {
    overrides: Vec<(String, String)>,
    release_id: Option<String>,
}

fn settings(args: &PlanArgs) -> Result<Settings, CliError> {
    let mut overrides = Vec::new();
    for item in &args.set {
        let Some((k, v)) = item.split_once('=') else {
            return Err(CliError::Usage(format!(
                "--set {item}: expected KEY=VALUE, e.g. --set keep_releases=3"
            )));
        };
        if k.is_empty() || k.split('.').any(str::is_empty) {
            return Err(CliError::Usage(format!(
                "--set {item}: the key is empty; expected KEY=VALUE, e.g. --set keep_releases=3"
            )));
        }
        overrides.push((k.to_owned(), v.to_owned()));
    }
    if let Some(v) = &args.app_version {
        overrides.push(("version".to_owned(), format!("\"{}\"", v.replace('"', ""))));
    }
    if let Some(id) = &args.release_id {
        check_release_id(id).map_err(|m| CliError::Usage(format!("--release-id: {m}")))?;
    }
    Ok(Settings {
        overrides,
        release_id: args.release_id.clone(),
    })
}

/// Everything `plan` makes: kept for `apply` in the next version.
pub(crate) struct Planned {
    pub(crate) plan: ship_core::Plan,
    pub(crate) project: Project,
}

pub(crate) fn make(ship: &Ship, args: &PlanArgs, cx: &Context) -> Result<Planned, CliError> {
    let settings = settings(args)?;
    let project = Project::find(&cx.cwd, ship.manifest_path.as_deref(), cx.var("CARGO"))?;
    let sources = Sources {
        ship_toml: project.ship_toml.clone(),
        cargo_metadata: project.cargo_metadata.clone(),
        env: cx.env.clone(),
        overrides: settings.overrides,
    };
    let loaded = sources.load()?;
    let mut stage = Stage::resolve(&loaded, &args.stage)?;
    if stage.layout == LayoutKind::Version && stage.version.is_none() {
        stage.version = project.detect_version();
        if stage.version.is_none() && settings.release_id.is_none() {
            return Err(CliError::Usage(format!(
                "the version layout needs a version: none in Cargo.toml, package.json or \
                 pyproject.toml of {}; pass --version 1.2.3 or set `version` in Ship.toml",
                project.root.display()
            )));
        }
    }
    let release = match (&settings.release_id, stage.layout) {
        (Some(id), LayoutKind::Timestamp)
            if !(id.len() == 14 && id.bytes().all(|b| b.is_ascii_digit())) =>
        {
            return Err(CliError::Usage(format!(
                "--release-id {id}: the timestamp layout names releases by 14 digits (UTC \
                 YYYYMMDDhhmmss, as Capistrano does), e.g. 20261122235800"
            )));
        }
        (Some(id), _) => id.clone(),
        (None, LayoutKind::Version) => {
            let v = stage.version.clone().expect("checked above");
            check_release_id(&v).map_err(|m| CliError::Usage(format!("version: {m}")))?;
            v
        }
        (None, _) => jiff::Timestamp::now().strftime("%Y%m%d%H%M%S").to_string(),
    };

    let built = artifact::build(
        &project.root,
        &stage.source,
        &stage.build,
        &project.ship_dir.join("artifacts"),
    )?;
    let config_digest = sha256_hex(
        serde_json::to_string(&stage)
            .expect("a stage serializes")
            .as_bytes(),
    );
    let layout = ship_layouts::layout_for(stage.layout);
    let plan = ship_core::plan(&PlanInput {
        stage: &stage,
        layout: layout.as_ref(),
        release,
        artifact: built.info,
        config_digest,
        extra_tasks: Vec::new(),
    })?;
    Ok(Planned { plan, project })
}

pub(crate) fn run(ship: &Ship, args: &PlanArgs, cx: &mut Context) -> Result<(), CliError> {
    let Planned { plan, project } = make(ship, args, cx)?;
    let json = plan.to_json();
    std::fs::create_dir_all(&project.ship_dir).map_err(|source| CliError::Io {
        path: project.ship_dir.display().to_string(),
        source,
    })?;
    let saved = project.ship_dir.join(format!("{}.plan.json", plan.stage));
    std::fs::write(&saved, &json).map_err(|source| CliError::Io {
        path: saved.display().to_string(),
        source,
    })?;
    let out = match args.format {
        Format::Json => json,
        Format::Text => text(
            &plan,
            TextOptions {
                verbose: args.verbose,
            },
        ),
    };
    let _ = cx.stdout.write_all(out.as_bytes());
    let _ = writeln!(cx.stderr, "saved: {}", project.show(&saved));
    Ok(())
}
