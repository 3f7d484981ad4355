//! `cargo ship apply [stage|file]`: execute a plan on the hosts and report what each host
//! was left in.

use super::plan::{Planned, fill_version, make, save};
use crate::cli::{ApplyArgs, Format, PlanArgs, Ship};
use crate::host_output::HostOutput;
use crate::project::Project;
use crate::{CliError, Context};
use anstyle::{AnsiColor, Style};
use ship_core::planner::{config_digest, config_keys};
use ship_core::{ApplyOptions, Driver, StopRequest};
use ship_core::{BatchResult, Event, HostEnd};
use ship_core::{Plan, Stage};
use ship_ssh::LocalTransport;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

fn read_plan(path: &Path) -> Result<Plan, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::Usage(format!(
            "cannot read the plan {}: {e}; make one with `cargo ship plan <stage>`",
            path.display()
        ))
    })?;
    let plan = Plan::from_json(&text).map_err(|e| {
        CliError::Usage(format!(
            "{} is not a plan cargo ship can apply ({e}); make it again with `cargo ship plan <stage>`",
            path.display()
        ))
    })?;
    if !plan.intact() {
        return Err(CliError::Usage(format!(
            "{} was changed after it was made (its digest does not match its content); \
             make it again with `cargo ship plan {}`",
            path.display(),
            plan.stage
        )));
    }
    Ok(plan)
}

/// A saved plan is applied only if the configuration and the artifact are what it was made
/// from, and it is the plan they give (see [`rederive`]); otherwise say what changed.
fn verify(
    ship: &Ship,
    plan: &Plan,
    path: &Path,
    cx: &Context,
) -> Result<(Project, Stage, Option<String>), CliError> {
    let overrides: Vec<String> = plan.overrides.clone();
    let (project, mut stage, adapters) =
        super::resolve_with_adapters(ship, &plan.stage, super::overrides(&overrides, None)?, cx)?;
    fill_version(&project, &mut stage, true)?;
    if config_digest(&stage) != plan.config_digest {
        let now = config_keys(&stage);
        let mut changed: Vec<&str> = now
            .iter()
            .filter(|(k, v)| plan.config_keys.get(*k) != Some(v))
            .map(|(k, _)| k.as_str())
            .collect();
        changed.extend(
            plan.config_keys
                .keys()
                .filter(|k| !now.contains_key(*k))
                .map(String::as_str),
        );
        return Err(CliError::Usage(format!(
            "the configuration of stage `{}` changed since the plan was made ({}); \
             review it with `cargo ship plan {}` and apply that",
            plan.stage,
            if changed.is_empty() {
                "in a way this plan cannot show".to_owned()
            } else {
                format!("changed: {}", changed.join(", "))
            },
            plan.stage
        )));
    }
    let cached = artifact_path(&project, plan);
    if !cached.exists() {
        return Err(CliError::Usage(format!(
            "the plan's artifact {} is gone; run `cargo ship plan {}` again",
            project.show(&cached),
            plan.stage
        )));
    }
    // Used now (a repack marks it too): another apply's prune, before this one holds the
    // cache, keeps the artifacts used last.
    ship_core::cache::touch(&cached);
    let read_cached = || {
        let zst = std::fs::read(&cached).map_err(|e| CliError::Io {
            path: project.show(&cached),
            source: e,
        })?;
        Ok::<_, CliError>((zst.len() as u64, ship_core::artifact::open(&zst)?))
    };
    let (artifact, opened) = match &plan.artifact.promoted_from {
        Some(from) => {
            // A promoted artifact is not built from this checkout: check the cached copy.
            let (bytes, opened) = read_cached()?;
            if opened.digest != plan.artifact.digest {
                return Err(CliError::Usage(format!(
                    "the cached artifact {} no longer has the plan's sha256; promote again",
                    project.show(&cached)
                )));
            }
            // Where it came from was read from the other stage's hosts when promoting: kept,
            // in the form `promote` writes it.
            let artifact = ship_core::ArtifactInfo {
                source: format!("promoted from {}", from.stage),
                revision: plan.artifact.revision.clone(),
                digest: opened.digest.clone(),
                bytes,
                entries: opened.entries,
                commands: Vec::new(),
                promoted_from: Some(from.clone()),
                uncommitted: Vec::new(),
            };
            (artifact, Some(opened))
        }
        None => {
            let now = crate::adapters::repack(&project, &stage, &adapters)?;
            if now.info.digest != plan.artifact.digest {
                return Err(CliError::Usage(format!(
                    "the artifact changed since the plan was made: {} now packs to sha256 {}, the plan ships {}; \
                     review it with `cargo ship plan {}` and apply that",
                    plan.artifact.source,
                    &now.info.digest[..12],
                    &plan.artifact.digest[..12],
                    plan.stage
                )));
            }
            let mut artifact = now.info;
            artifact.commands = crate::adapters::commands(&project, &stage, &adapters)?;
            if let ship_core::SourceConfig::Cargo(bin) = &stage.source {
                artifact
                    .commands
                    .push(crate::adapters::cargo_command(bin, &stage.cargo));
            }
            // The adapters' steps are keyed from the files of the artifact that ships.
            let opened = if adapters.is_empty() {
                None
            } else {
                Some(read_cached()?.1)
            };
            (artifact, opened)
        }
    };
    let extra_tasks = match &opened {
        Some(opened) => crate::adapters::tasks_for_artifact(&adapters, &opened.files)?,
        None => Vec::new(),
    };
    drop(opened);
    let env = crate::secrets::render(&stage, &project.root, cx)?;
    rederive(
        plan,
        &stage,
        artifact,
        extra_tasks,
        env.as_ref().map(|e| e.plan.clone()),
        &project.show(path),
    )?;
    Ok((project, stage, env.map(|e| e.content)))
}

/// The plan is a record to check, not a program to trust: the plan its inputs give now (the
/// configuration and the artifact just verified, the release id, the `--set` flags and the
/// selection it records) must be the plan, byte for byte; otherwise nothing runs, and the
/// error names what differs. A plan edited and sealed again runs nothing it was not made
/// with.
fn rederive(
    plan: &Plan,
    stage: &Stage,
    artifact: ship_core::ArtifactInfo,
    extra_tasks: Vec<ship_core::TaskSpec>,
    env: Option<ship_core::EnvPlan>,
    shown: &str,
) -> Result<(), CliError> {
    let refuse = |what: String| {
        CliError::Usage(format!(
            "{} does not match the plan its configuration and artifact give ({what}): it was \
             edited after it was made, or made by another version of cargo ship; nothing was \
             run; make it again with `cargo ship plan {}`",
            shown, plan.stage
        ))
    };
    ship_core::stage::check_release_id(&plan.release)
        .map_err(|m| refuse(format!("its release id: {m}")))?;
    let selection = match &plan.selection {
        None => ship_core::Selection {
            roles: Vec::new(),
            hosts: Vec::new(),
            exclude: Vec::new(),
        },
        Some(s) => super::plan::selection_of(&s.flags)
            .ok_or_else(|| refuse(format!("its selection `{}`", s.flags)))?,
    };
    if env.as_ref().map(|e| &e.digest) != plan.env.as_ref().map(|e| &e.digest) {
        return Err(refuse(
            "the app's environment ([env] or a secret) changed since it was made: run `cargo ship plan` again"
                .to_owned(),
        ));
    }
    let again = super::plan::assemble(
        stage,
        &selection,
        plan.release.clone(),
        artifact,
        extra_tasks,
        plan.overrides.clone(),
        env,
    )
    .map_err(|e| refuse(format!("planning it again failed: {e}")))?;
    let differs = differences(plan, &again);
    if differs.is_empty() {
        return Ok(());
    }
    let mut what = differs
        .iter()
        .take(5)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if differs.len() > 5 {
        what.push_str(&format!("; and {} more", differs.len() - 5));
    }
    Err(refuse(what))
}

/// What differs between a saved plan and the one made again, for people: each host's
/// script by segment, each step by id and name, and every other field by name.
fn differences(saved: &Plan, again: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    for host in &saved.hosts {
        let Some(h) = again.hosts.iter().find(|h| h.name == host.name) else {
            out.push(format!("host {} is not part of it", host.name));
            continue;
        };
        for script in &host.scripts {
            match h.scripts.iter().find(|s| s.segment == script.segment) {
                None => out.push(format!(
                    "host {}, segment {}: there is no such script",
                    host.name, script.segment
                )),
                Some(s) if s.script != script.script => out.push(format!(
                    "host {}, segment {}: the script differs",
                    host.name, script.segment
                )),
                Some(_) => {}
            }
        }
        if h.scripts.len() != host.scripts.len() {
            out.push(format!("host {}: the number of scripts differs", host.name));
        }
        if h.roles != host.roles || h.steps != host.steps {
            out.push(format!("host {}: its roles or steps differ", host.name));
        }
    }
    for host in &again.hosts {
        if !saved.hosts.iter().any(|h| h.name == host.name) {
            out.push(format!("host {} is missing", host.name));
        }
    }
    for step in &saved.steps {
        let name = format!("step {} `{}`", step.id, step.name);
        match again.step(step.id) {
            None => out.push(format!("{name} is not part of it")),
            Some(s) if s.name != step.name => out.push(format!("{name} should be `{}`", s.name)),
            Some(s) if s.command != step.command => {
                out.push(format!("{name}: its command differs"))
            }
            Some(s) if s.hosts != step.hosts => out.push(format!(
                "{name}: it runs on [{}], and should run on [{}]",
                step.hosts.join(", "),
                s.hosts.join(", ")
            )),
            Some(s) if s != step => out.push(format!("{name} differs")),
            Some(_) => {}
        }
    }
    for step in &again.steps {
        if saved.step(step.id).is_none() {
            out.push(format!("step {} `{}` is missing", step.id, step.name));
        }
    }
    let json = |p: &Plan| serde_json::to_value(p).expect("a plan serializes");
    let (a, b) = (json(saved), json(again));
    let empty = serde_json::Map::new();
    let (a, b) = (
        a.as_object().unwrap_or(&empty),
        b.as_object().unwrap_or(&empty),
    );
    for (key, value) in a {
        if matches!(key.as_str(), "steps" | "hosts" | "digest") {
            continue;
        }
        if b.get(key) != Some(value) {
            out.push(format!("`{key}` differs"));
        }
    }
    for key in b.keys() {
        if !a.contains_key(key) {
            out.push(format!("`{key}` is missing"));
        }
    }
    if out.is_empty() && saved.hosts != again.hosts {
        out.push("the order of the hosts differs".to_owned());
    }
    if out.is_empty() && saved.steps != again.steps {
        out.push("the order of the steps differs".to_owned());
    }
    out
}

fn artifact_path(project: &Project, plan: &Plan) -> PathBuf {
    ship_core::cache::artifact(&project.ship_dir.join("artifacts"), &plan.artifact.digest)
}

/// With an `artifact_store`: the artifact uploaded (once: kept when there) before any host
/// is reached, and the presigned URL the hosts that lack it are sent. Said on stderr without
/// the URL's signature.
fn store_artifact(
    plan: &Plan,
    project: &Project,
    cx: &mut Context,
) -> Result<Option<ship_core::Presigned>, CliError> {
    let Some(object) = &plan.artifact_store else {
        return Ok(None);
    };
    let file = artifact_path(project, plan);
    let rt = super::runtime()?;
    let published = rt
        .block_on(crate::store::publish(object, &file, &cx.env))
        .map_err(CliError::Store)?;
    let _ = writeln!(
        cx.stderr,
        "artifact_store: {object}: {}; hosts that lack it download it (URL valid {} min)",
        if published.uploaded == 0 {
            "there already, not uploaded".to_owned()
        } else {
            format!("uploaded {} bytes", published.uploaded)
        },
        crate::store::URL_EXPIRY.as_secs() / 60
    );
    Ok(Some(published.url))
}

fn describe(end: &HostEnd) -> String {
    match end {
        HostEnd::Deployed => "deployed".to_owned(),
        HostEnd::Unchanged { live: Some(l) } => format!("unchanged: still on {l}, lock released"),
        HostEnd::Unchanged { live: None } => {
            "unchanged: nothing was live, nothing is; lock released".to_owned()
        }
        HostEnd::Reverted { live: Some(l) } => format!("reverted: back on {l}, lock released"),
        HostEnd::Reverted { live: None } => {
            "reverted: nothing was live before, nothing is now; lock released".to_owned()
        }
        HostEnd::NotStarted { reason } => format!("untouched: {reason}"),
        HostEnd::Unknown { reason } => format!(
            "UNKNOWN: {reason}; look with `cargo ship releases` and clear with `cargo ship unlock`"
        ),
    }
}

pub(crate) fn run(ship: &Ship, args: &ApplyArgs, cx: &mut Context) -> Result<(), CliError> {
    let is_file = |t: &str| t.ends_with(".json") || cx.cwd.join(t).is_file();
    let plans_here = matches!(&args.target, Some(t) if !is_file(t));
    let selecting = !(args.select.roles.is_empty()
        && args.select.hosts.is_empty()
        && args.select.exclude.is_empty());
    if !plans_here
        && (args.release_id.is_some()
            || args.app_version.is_some()
            || !args.remote.set.is_empty()
            || selecting)
    {
        return Err(CliError::Usage(
            "--release-id, --version, --set, --roles, --hosts and --exclude shape a new plan: use them \
             with `cargo ship apply <stage>` or `cargo ship plan`; a saved plan is applied as it is"
                .to_owned(),
        ));
    }
    let (plan, project, stage, env) = match &args.target {
        Some(t) if is_file(t) => {
            let path = cx.cwd.join(t);
            let plan = read_plan(&path)?;
            let (project, stage, env) = verify(ship, &plan, &path, cx)?;
            (plan, project, stage, env)
        }
        Some(stage) => {
            let planned: Planned = make(
                ship,
                &PlanArgs {
                    stage: stage.clone(),
                    release_id: args.release_id.clone(),
                    app_version: args.app_version.clone(),
                    set: args.remote.set.clone(),
                    git_ref: args.git_ref.clone(),
                    format: crate::cli::PlanFormat::Text,
                    verbose: false,
                    refresh: false,
                    select: args.select.clone(),
                },
                cx,
            )?;
            save(&planned.project, &planned.plan)?;
            (planned.plan, planned.project, planned.stage, planned.env)
        }
        None => {
            let project = Project::find(&cx.cwd, ship.manifest_path.as_deref(), cx.var("CARGO"))?;
            let last = std::fs::read_to_string(project.ship_dir.join("last")).map_err(|_| {
                CliError::Usage(
                    "no plan to apply: run `cargo ship plan <stage>` first, or `cargo ship apply <stage>`"
                        .to_owned(),
                )
            })?;
            let path = project.ship_dir.join(format!("{}.plan.json", last.trim()));
            let plan = read_plan(&path)?;
            let (project, stage, env) = verify(ship, &plan, &path, cx)?;
            (plan, project, stage, env)
        }
    };
    let options = Execution {
        verbose: args.verbose,
        format: args.format,
        remote: &args.remote,
        action: "deploy",
        progress: cx.terminal && cx.verbosity >= 0 && args.format == Format::Text,
        timings: args.timings,
        env,
    };
    execute(&plan, &project, &stage, &options, cx)
}

/// How to run a plan: the flags that shape the output, what to call it, and the app's
/// environment file its digest was checked against (read once, when it was planned or
/// verified).
pub(crate) struct Execution<'a> {
    pub(crate) env: Option<String>,
    pub(crate) verbose: bool,
    pub(crate) format: Format,
    pub(crate) remote: &'a crate::cli::RemoteArgs,
    /// `deploy` or `promote`: what notifications call it.
    pub(crate) action: &'static str,
    /// Draw progress bars on the terminal.
    pub(crate) progress: bool,
    /// Write the HTML timings report (`--timings`).
    pub(crate) timings: bool,
}

/// Runs `plan`, reports, then (whatever the result) tags a successful deploy and notifies.
pub(crate) fn execute(
    plan: &Plan,
    project: &Project,
    stage: &Stage,
    options: &Execution<'_>,
    cx: &mut Context,
) -> Result<(), CliError> {
    let started = std::time::Instant::now();
    let mut hosts = Vec::new();
    let mut timings = None;
    // Another apply from this project prunes nothing while this one may send its files.
    let cache = project.ship_dir.join("artifacts");
    let in_use = ship_core::cache::in_use(&cache);
    let result = run_plan(
        plan,
        project,
        stage,
        options,
        cx,
        (&mut hosts, &mut timings),
    );
    if result.is_ok()
        && let (Some(template), Some(commit)) = (&stage.tag, &plan.artifact.revision)
    {
        let name = crate::git::tag_name(template, &plan.app, &plan.stage, &plan.release);
        let message = format!(
            "cargo ship: {} release {} of {} to {}",
            options.action, plan.release, plan.app, plan.stage
        );
        match crate::git::tag_and_push(
            &project.root,
            &name,
            commit,
            &message,
            stage.require_pushed.as_deref(),
        ) {
            Ok(remote) => {
                let _ = writeln!(cx.stderr, "tagged {name} and pushed it to {remote}");
            }
            Err(e) => {
                let _ = writeln!(
                    cx.stderr,
                    "warning: the deploy succeeded, but tagging it failed: {e}"
                );
            }
        }
    }
    drop(in_use);
    if result.is_ok() {
        // target/ship/artifacts stays bounded: the artifacts used last and those of the
        // plans saved here (what `apply` of a saved plan and `promote` read), not every one.
        match ship_core::cache::prune(&cache, &plan.artifact.digest, &saved_digests(project)) {
            Ok(None) if options.verbose => {
                let _ = writeln!(
                    cx.stderr,
                    "{} was not pruned: another apply from this project is using it",
                    cache.display()
                );
            }
            Ok(Some(p)) if p.files > 0 && options.verbose => {
                let _ = writeln!(
                    cx.stderr,
                    "removed {} old files ({:.1} MB) from {} (the {} artifacts used last are kept)",
                    p.files,
                    p.bytes as f64 / 1e6,
                    cache.display(),
                    ship_core::cache::KEPT_ARTIFACTS
                );
            }
            Ok(_) => {}
            Err(e) => {
                let _ = writeln!(
                    cx.stderr,
                    "warning: {} was not pruned: {e}",
                    cache.display()
                );
            }
        }
    }
    crate::notify::ended(
        cx,
        stage,
        options.action,
        started,
        &result,
        serde_json::json!({
            "release": plan.release,
            "revision": plan.artifact.revision,
            "digest": plan.artifact.digest,
            "hosts": hosts,
        }),
    );
    match timings {
        Some(Ok(path)) => {
            let _ = writeln!(
                cx.stderr,
                "Timing report saved to file://{}",
                path.display()
            );
        }
        Some(Err(e)) => {
            let _ = writeln!(cx.stderr, "warning: the timing report was not saved: {e}");
        }
        None => {}
    }
    result
}

/// Of a saved plan, only its artifact's digest (a plan of thousands of hosts is megabytes:
/// nothing else of it is built in memory).
#[derive(serde::Deserialize)]
struct SavedDigest {
    artifact: SavedArtifact,
}

#[derive(serde::Deserialize)]
struct SavedArtifact {
    digest: String,
}

/// The artifact digests of the plans saved in `target/ship/` (`<stage>.plan.json`).
fn saved_digests(project: &Project) -> std::collections::BTreeSet<String> {
    let Ok(listing) = std::fs::read_dir(&project.ship_dir) else {
        return Default::default();
    };
    listing
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".plan.json"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|text| serde_json::from_str::<SavedDigest>(&text).ok())
        .map(|plan| plan.artifact.digest)
        .collect()
}

fn run_plan(
    plan: &Plan,
    project: &Project,
    stage: &Stage,
    args: &Execution<'_>,
    cx: &mut Context,
    (host_summary, timings_saved): (
        &mut Vec<serde_json::Value>,
        &mut Option<std::io::Result<PathBuf>>,
    ),
) -> Result<(), CliError> {
    let layout = super::layout(&plan.layout)?;
    // A host's one session carries all its scripts: each is bounded by command_timeout
    // (checked by the driver), the session by their sum.
    let parts = plan
        .hosts
        .iter()
        .map(|h| h.scripts.len())
        .max()
        .unwrap_or(1) as u32;
    let mut session_stage = stage.clone();
    session_stage.command_timeout = stage.command_timeout * (parts + 1);
    let ssh = super::ssh(project, &session_stage, args.remote);
    let local = LocalTransport::new(&project.root);
    // Styles, kept or stripped by the stream they are written to (`Context::color`).
    let bold = Style::new().bold();
    let red = Style::new().fg_color(Some(AnsiColor::Red.into()));
    let green = Style::new().fg_color(Some(AnsiColor::Green.into()));
    let _ = writeln!(
        cx.stderr,
        "{bold}Deploying {} release {} to {}{bold:#}: {} host{}, {} at a time",
        plan.app,
        plan.release,
        plan.stage,
        plan.hosts.len(),
        if plan.hosts.len() == 1 { "" } else { "s" },
        plan.parallel
    );
    let artifact_url = store_artifact(plan, project, cx)?;
    let verbose = args.verbose;
    let json = args.format == Format::Json;
    // The app's environment, as the plan's digest was checked against (None: it has none).
    let env_content = args.env.clone();
    let deployer = super::deployer(cx);
    // SIGINT and SIGTERM stop the deploy at the next sync point and put every host back; a
    // second signal (or SIGTERM not obeyed within TERM_GRACE) stops it now.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(None::<StopRequest>);
    let (log, log_error) = HostOutput::create(&project.ship_dir, &plan.stage, &plan.release);
    if let Some(e) = log_error {
        let _ = writeln!(
            cx.stderr,
            "warning: {e}; the deploy goes on without its log"
        );
    }
    let log_path = log.path().map(|p| p.display().to_string());
    let log = Mutex::new(log);
    let started = std::time::Instant::now();
    let took: Mutex<std::collections::BTreeMap<String, std::time::Duration>> =
        Mutex::new(std::collections::BTreeMap::new());
    let progress = args
        .progress
        .then(|| crate::progress::Progress::new(plan, cx.color));
    let timings = args
        .timings
        .then(|| Mutex::new(crate::timings::Timings::default()));
    let outcome = {
        let err = Mutex::new(&mut cx.stderr);
        let events_out = Mutex::new(&mut cx.stdout);
        let on_event = |event: Event| {
            if let Some(t) = &timings {
                t.lock()
                    .expect("not poisoned")
                    .event(&event, started.elapsed());
            }
            if let Event::Started { .. } = event {
                // For the timings only: not in the log, the terminal or the JSON stream.
                return;
            }
            let host = match &event {
                Event::Connected { host }
                | Event::Recovered { host, .. }
                | Event::Held { host, .. }
                | Event::Notice { host, .. } => Some(host.clone()),
                Event::Step { host, .. } | Event::Failed { host, .. } => host.clone(),
                Event::Batch { .. } | Event::Output { .. } | Event::Started { .. } => None,
            };
            // Every line, to the log first (whatever the format).
            let kept = {
                let mut log = log.lock().expect("not poisoned");
                match &event {
                    Event::Output { host, id, line } => {
                        log.line(host.as_deref().unwrap_or("local"), *id, line);
                        Vec::new()
                    }
                    Event::Step {
                        host,
                        id,
                        name,
                        status,
                        ..
                    } => log.step_ended(host.as_deref().unwrap_or("local"), *id, name, *status),
                    Event::Held {
                        host,
                        id,
                        name,
                        processes,
                    } => {
                        log.note(
                            host,
                            &format!(
                                "step {id} {name} left running, holding its output: {processes}"
                            ),
                        );
                        Vec::new()
                    }
                    Event::Failed {
                        host,
                        step,
                        message,
                    } => {
                        log.note(
                            host.as_deref().unwrap_or("local"),
                            &format!(
                                "failed{}: {message}",
                                step.as_deref()
                                    .map(|s| format!(" at {s}"))
                                    .unwrap_or_default()
                            ),
                        );
                        Vec::new()
                    }
                    Event::Recovered { host, end } => {
                        log.note(host, &format!("put back: {}", describe(end)));
                        Vec::new()
                    }
                    Event::Notice { host, message } => {
                        log.note(host, message);
                        Vec::new()
                    }
                    Event::Connected { .. } | Event::Batch { .. } | Event::Started { .. } => {
                        Vec::new()
                    }
                }
            };
            if let Some(host) = host {
                took.lock()
                    .expect("not poisoned")
                    .insert(host, started.elapsed());
            }
            if json {
                let mut out = events_out.lock().expect("not poisoned");
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::to_string(&event).expect("events serialize")
                );
                return;
            }
            let mut lines: Vec<String> = Vec::new();
            match event {
                Event::Output { host, line, .. } => {
                    // Followed live (-v): each line as it comes, after its host, as Fabric
                    // prints them.
                    if verbose {
                        lines.push(format!(
                            "  {} | {}",
                            host.as_deref().unwrap_or("local"),
                            crate::host_output::visible(&line)
                        ));
                    }
                }
                Event::Notice { host, message } => {
                    lines.push(format!("  {bold}!{bold:#} {host}  {message}"));
                }
                Event::Held {
                    host,
                    name,
                    processes,
                    ..
                } => {
                    lines.push(format!(
                        "  {bold}!{bold:#} {host}  {name} left running, holding its output: {}; they run on (the deploy did not wait for them). Send a daemon's output elsewhere: `cmd >log 2>&1 &`",
                        crate::host_output::visible(&processes)
                    ));
                }
                Event::Step {
                    host,
                    name,
                    status,
                    output,
                    ..
                } => {
                    let host = host.unwrap_or_else(|| "local".to_owned());
                    if let Some(p) = &progress {
                        let mark = if status == 0 { "✓" } else { "✗" };
                        p.update(&host, &format!("{mark} {name}"), true);
                    }
                    if status != 0 {
                        lines.push(format!("  {red}✗{red:#} {host}  {name} (exit {status})"));
                        // A failed step is shown whole (as far as it was kept), unless it
                        // was just shown live.
                        if !verbose {
                            for line in &kept {
                                lines.push(format!("      {}", crate::host_output::visible(line)));
                            }
                        }
                        if let Some(path) = &log_path {
                            lines.push(format!("      (every host's output: {path})"));
                        }
                    } else if verbose || host == "local" {
                        lines.push(format!("  {green}✓{green:#} {host}  {name}"));
                        if !verbose {
                            // A local step's last lines (a build's summary).
                            for line in output.iter().rev().take(20).rev() {
                                lines.push(format!("      {}", crate::host_output::visible(line)));
                            }
                        }
                    }
                }
                Event::Failed {
                    host,
                    step,
                    message,
                } => {
                    lines.push(format!(
                        "  {red}failed{red:#} on {}{}: {}",
                        host.as_deref().unwrap_or("this machine"),
                        step.map(|s| format!(" at `{s}`")).unwrap_or_default(),
                        crate::host_output::visible(&message)
                    ));
                    lines.push("  putting every host back…".to_owned());
                }
                Event::Recovered { host, end } => {
                    if let Some(p) = &progress {
                        p.update(&host, &format!("↩ {}", describe(&end)), false);
                    }
                    lines.push(format!("  ↩ {host}: {}", describe(&end)));
                }
                Event::Connected { host } => {
                    if let Some(p) = &progress {
                        p.update(&host, "connected", false);
                    }
                }
                Event::Started { .. } => {}
                Event::Batch { batch, of, hosts } => {
                    if let Some(p) = &progress {
                        for h in &hosts {
                            p.update(h, &format!("batch {batch} of {of}"), false);
                        }
                    }
                    lines.push(format!(
                        "{bold}batch {batch} of {of}{bold:#}: {}",
                        hosts.join(", ")
                    ));
                }
            }
            match &progress {
                Some(p) => lines.iter().for_each(|l| p.println(l)),
                None => {
                    let mut out = err.lock().expect("not poisoned");
                    for l in &lines {
                        let _ = writeln!(out, "{l}");
                    }
                }
            }
        };
        let driver = Driver {
            plan,
            layout,
            remote: &ssh,
            local: &local,
            options: ApplyOptions {
                deployer,
                started_at: super::now(),
                artifact: artifact_path(project, plan),
                segment_timeout: stage.command_timeout,
                live: verbose && !json,
                env: env_content,
                artifact_url,
            },
            events: &on_event,
            stop: Some(stop_rx),
        };
        let rt = super::runtime()?;
        let outcome = rt.block_on(async {
            tokio::select! {
                outcome = driver.run() => outcome,
                never = watch_signals(&stop_tx) => match never {},
            }
        });
        rt.block_on(ssh.close());
        outcome
    };
    if let Some(p) = &progress {
        p.finish();
    }
    let interrupted = stop_tx.borrow().clone().map(|r| r.reason);
    if let Some(t) = timings {
        let mut t = t.into_inner().expect("not poisoned");
        let total = started.elapsed();
        t.finish(total);
        let end = match (&interrupted, outcome.ok()) {
            (Some(signal), _) => format!("interrupted by {signal}"),
            (None, true) => "deployed to every host".to_owned(),
            (None, false) => "failed: every host put back, or named unknown".to_owned(),
        };
        let page = t.html(plan, total.as_secs_f64(), &end);
        *timings_saved = Some(crate::timings::save(&project.ship_dir, plan, &page));
    }
    log.lock().expect("not poisoned").flush();

    let sessions = ssh.counts().values().map(|c| c.sessions).max().unwrap_or(0);
    let reused = ssh.counts().values().filter(|c| c.reused > 0).count();
    // Each host's end, as the JSON outcome and the webhook both give it.
    let counts = ssh.counts();
    host_summary.extend(outcome.hosts.iter().map(|(host, end)| {
        let mut v = serde_json::to_value(end).expect("serializes");
        v["host"] = serde_json::Value::from(host.as_str());
        // Bytes this deploy wrote to the host's session (the artifact or delta included).
        v["sent_bytes"] = serde_json::Value::from(counts.get(host).map_or(0, |c| c.sent));
        v
    }));
    if json {
        let mut line = serde_json::json!({
            "event": "outcome",
            "ok": outcome.ok(),
            "app": plan.app,
            "stage": plan.stage,
            "release": plan.release,
            "sessions_per_host": sessions,
            "hosts": host_summary,
            "failure": outcome.failure,
            "interrupted": interrupted,
        });
        if !outcome.batches.is_empty() {
            line["batches"] = serde_json::to_value(&outcome.batches).expect("serializes");
        }
        let _ = writeln!(cx.stdout, "{line}");
    }
    let stdout = std::mem::replace(&mut cx.stdout, Box::new(std::io::sink()));
    if !json {
        // What follows on stdout is for people: its styles kept or stripped by this stream.
        cx.stdout = Box::new(anstream::AutoStream::new(
            stdout,
            crate::stream_choice(cx.color),
        ));
    }
    if outcome.ok() {
        let _ = writeln!(
            cx.stdout,
            "{green}Deployed{green:#} {} release {} to {}: {} host{}{}, {} SSH session{} per host at most{}.",
            plan.app,
            plan.release,
            plan.stage,
            plan.hosts.len(),
            if plan.hosts.len() == 1 { "" } else { "s" },
            if outcome.batches.is_empty() {
                String::new()
            } else {
                format!(" in {} batches", outcome.batches.len())
            },
            sessions,
            if sessions == 1 { "" } else { "s" },
            if reused == 0 {
                String::new()
            } else {
                format!(" ({reused} kept connections reused)")
            }
        );
        summary_table(
            cx,
            plan,
            &outcome.hosts,
            &took.lock().expect("not poisoned"),
        );
        if let Some(signal) = interrupted {
            // The signal came when every host had already switched: there was no sync point
            // left to stop at, so the deploy completed. The exit code still says it came.
            return Err(CliError::Interrupted {
                code: if signal == "SIGTERM" { 143 } else { 130 },
                message: format!(
                    "{signal} came after every host had switched; the deploy completed: every host is on release {}",
                    plan.release
                ),
            });
        }
        return Ok(());
    }
    let mut failure = outcome.failure.clone().expect("not ok");
    failure.message = super::with_lock_age(&failure.message);
    if outcome.batches.is_empty() {
        let _ = writeln!(cx.stdout, "{red}Deploy failed{red:#}. Each host:");
    } else {
        let _ = writeln!(cx.stdout, "{red}Rolling deploy stopped{red:#}. Each batch:");
        for b in &outcome.batches {
            let what = match b.result {
                BatchResult::Deployed => format!("on release {}", plan.release),
                BatchResult::Failed => "failed: put back on the release it had".to_owned(),
                BatchResult::NotStarted => "not started".to_owned(),
            };
            let _ = writeln!(
                cx.stdout,
                "  batch {}  {}  {what}",
                b.batch,
                b.hosts.join(", ")
            );
        }
        let _ = writeln!(cx.stdout, "Each host:");
    }
    summary_table(
        cx,
        plan,
        &outcome.hosts,
        &took.lock().expect("not poisoned"),
    );
    let unknown: Vec<&str> = outcome
        .hosts
        .iter()
        .filter(|(_, e)| matches!(e, HostEnd::Unknown { .. }))
        .map(|(h, _)| h.as_str())
        .collect();
    let place = format!(
        "{}{}",
        failure.host.as_deref().unwrap_or("this machine"),
        failure
            .step
            .as_deref()
            .map(|s| format!(" at step `{s}`"))
            .unwrap_or_default()
    );
    // A rolling deploy's batches that went live stay live, a signal or not.
    let live_batches: Vec<String> = outcome
        .batches
        .iter()
        .filter(|b| b.result == BatchResult::Deployed)
        .map(|b| format!("batch {} ({})", b.batch, b.hosts.join(", ")))
        .collect();
    if let Some(signal) = interrupted {
        return Err(CliError::Interrupted {
            code: if signal == "SIGTERM" { 143 } else { 130 },
            message: format!(
                "deploy of {} release {} to {} interrupted by {signal}; {}",
                plan.app,
                plan.release,
                plan.stage,
                if unknown.is_empty() && !live_batches.is_empty() {
                    format!(
                        "{} {} on release {}; every other host is on the release it had",
                        live_batches.join(", "),
                        if live_batches.len() == 1 { "is" } else { "are" },
                        plan.release
                    )
                } else if unknown.is_empty() {
                    "every host is on the release it had".to_owned()
                } else {
                    format!(
                        "{} could not be put back in time: check {} with `cargo ship releases {}`",
                        unknown.join(", "),
                        if unknown.len() == 1 { "it" } else { "them" },
                        plan.stage
                    )
                }
            ),
        });
    }
    if unknown.is_empty() && !live_batches.is_empty() {
        let later: Vec<String> = outcome
            .batches
            .iter()
            .filter(|b| b.result == BatchResult::NotStarted)
            .map(|b| b.batch.to_string())
            .collect();
        let at = outcome
            .batches
            .iter()
            .find(|b| b.result == BatchResult::Failed)
            .map_or(0, |b| b.batch);
        return Err(CliError::DeployFailed(format!(
            "rolling deploy of {} release {} to {} stopped at batch {at} of {}: on {place}: {}\n{} {} on release {}; the failed batch is back on the release it had{}.",
            plan.app,
            plan.release,
            plan.stage,
            outcome.batches.len(),
            failure.message,
            live_batches.join(", "),
            if live_batches.len() == 1 { "is" } else { "are" },
            plan.release,
            if later.is_empty() {
                String::new()
            } else {
                format!("; batch {} not started", later.join(", "))
            }
        )));
    }
    if unknown.is_empty() {
        Err(CliError::DeployFailed(format!(
            "deploy of {} release {} to {} failed on {place}: {}\nEvery host is on the release it had{}.",
            plan.app,
            plan.release,
            plan.stage,
            failure.message,
            if failure.after_switch {
                " (the hosts that had switched were switched back)"
            } else {
                "; no host's `current` moved"
            }
        )))
    } else {
        Err(CliError::HostsUnknown(format!(
            "deploy of {} release {} to {} failed on {place}: {}\nThese hosts could not be put back and need a look: {}.",
            plan.app,
            plan.release,
            plan.stage,
            failure.message,
            unknown.join(", ")
        )))
    }
}

/// The table that ends an apply: each host, the release it is on, what happened, how long
/// its part took.
fn summary_table(
    cx: &mut Context,
    plan: &Plan,
    hosts: &[(String, HostEnd)],
    took: &std::collections::BTreeMap<String, std::time::Duration>,
) {
    let paint = |style: Style, text: String| format!("{style}{text}{style:#}");
    let rows: Vec<[String; 4]> = hosts
        .iter()
        .map(|(host, end)| {
            let release = match end {
                HostEnd::Deployed => plan.release.clone(),
                HostEnd::Unchanged { live } | HostEnd::Reverted { live } => {
                    live.as_deref().map_or("-".to_owned(), |l| {
                        l.rsplit('/').next().unwrap_or(l).to_owned()
                    })
                }
                HostEnd::NotStarted { .. } | HostEnd::Unknown { .. } => "?".to_owned(),
            };
            let time = took
                .get(host)
                .map_or("-".to_owned(), |d| format!("{:.1}s", d.as_secs_f64()));
            [host.clone(), release, describe(end), time]
        })
        .collect();
    let head = ["host", "release", "result", "time"].map(str::to_owned);
    let w: Vec<usize> = (0..3)
        .map(|i| {
            rows.iter()
                .chain([&head])
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let _ = writeln!(
        cx.stdout,
        "  {:<w0$}  {:<w1$}  {:<w2$}  {}",
        head[0],
        head[1],
        head[2],
        head[3],
        w0 = w[0],
        w1 = w[1],
        w2 = w[2]
    );
    for r in rows {
        let result = format!("{:<w2$}", r[2], w2 = w[2]);
        let result = match () {
            () if r[2] == "deployed" => {
                paint(Style::new().fg_color(Some(AnsiColor::Green.into())), result)
            }
            () if r[2].starts_with("UNKNOWN") => paint(
                Style::new().fg_color(Some(AnsiColor::Red.into())).bold(),
                result,
            ),
            () => paint(
                Style::new().fg_color(Some(AnsiColor::Yellow.into())),
                result,
            ),
        };
        let _ = writeln!(
            cx.stdout,
            "  {:<w0$}  {:<w1$}  {result}  {}",
            r[0],
            r[1],
            r[3],
            w0 = w[0],
            w1 = w[1]
        );
    }
}

/// How long a SIGTERM lets the scripts in flight finish before the deploy is stopped now
/// (a service manager sends SIGKILL a few seconds after SIGTERM).
const TERM_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Waits for SIGINT and SIGTERM, forever, and says on `stop` what they ask: the first
/// signal stops the deploy at the next sync point; a second one, or a SIGTERM still not
/// obeyed after [`TERM_GRACE`], stops it now.
async fn watch_signals(
    stop: &tokio::sync::watch::Sender<Option<StopRequest>>,
) -> std::convert::Infallible {
    let mut signals = super::Signals::watch();
    let mut term_deadline: Option<tokio::time::Instant> = None;
    loop {
        let reason = tokio::select! {
            name = signals.next() => {
                if name == "SIGTERM" {
                    term_deadline.get_or_insert(tokio::time::Instant::now() + TERM_GRACE);
                }
                name
            }
            () = async {
                match term_deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending::<()>().await,
                }
            } => {
                term_deadline = None;
                stop.send_modify(|r| {
                    if let Some(r) = r {
                        r.now = true;
                    }
                });
                continue;
            }
        };
        stop.send_modify(|r| match r {
            // A second signal: now. The first one's name stays (it says what stopped it).
            Some(first) => first.now = true,
            None => {
                *r = Some(StopRequest {
                    reason: reason.to_owned(),
                    now: false,
                })
            }
        });
    }
}
