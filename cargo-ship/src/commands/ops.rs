//! The commands that reach hosts besides `apply`: `rollback`, `releases`, `check`, `run`,
//! `unlock`, `maintenance`. Each runs in one session per host, hosts in parallel, on the hosts
//! `--roles/--hosts/--exclude` choose (see [`super::chosen`]); rollback reads every host under
//! its lock first, then sends each the switch-back in the same session.

use super::{
    chosen, failure, first_line, left_out_text, note_left_out, on_hosts, on_hosts_until_stopped,
    overrides, read_states, resolve, runtime, session_limit, ssh,
};
use crate::cli::{Format, MaintenanceArgs, RollbackArgs, RunArgs, Ship, StageArgs, Switch};
use crate::{CliError, Context};
use ship_core::Decision;
use ship_core::ops;
use ship_core::{HostState, ReleaseRecord, ReleaseState};
use std::io::Write;

fn names(stage: &ship_core::Stage) -> Vec<String> {
    stage.hosts.iter().map(|h| h.name.clone()).collect()
}

pub(crate) fn rollback(ship: &Ship, args: &RollbackArgs, cx: &mut Context) -> Result<(), CliError> {
    let (project, stage) = resolve(ship, &args.stage, overrides(&args.remote.set, None)?, cx)?;
    // A filter rolls back the chosen hosts only, as Capistrano's HOSTS= does; the others
    // keep their release, and the output says so (see `rollback_stage`).
    let (stage, left_out) = chosen(&stage, &args.select)?;
    let started = std::time::Instant::now();
    let mut target = None;
    let result = rollback_stage(&project, &stage, &left_out, args, cx, &mut target);
    crate::notify::ended(
        cx,
        &stage,
        "rollback",
        started,
        &result,
        serde_json::json!({
            "release": target,
            "hosts": stage.hosts.iter().map(|h| h.name.clone()).collect::<Vec<_>>(),
        }),
    );
    result
}

/// The tasks a rollback runs on `host` once it is back: the ones hooked `after = "switch"`
/// (restarts), not `once` or `local`, on the hosts of their roles; with the host's roles in
/// `SHIP_ROLE`.
fn after_switch(stage: &ship_core::Stage, host: &str) -> Vec<(String, String)> {
    let Some(h) = stage.hosts.iter().find(|x| x.name == host) else {
        return Vec::new();
    };
    stage
        .tasks
        .iter()
        .filter(|(_, t)| t.after.as_deref() == Some("switch") && !t.once.is_once() && !t.local)
        .filter(|(_, t)| t.roles.is_empty() || t.roles.iter().any(|r| h.roles.contains(r)))
        .map(|(name, t)| {
            (
                name.clone(),
                format!(
                    "SHIP_ROLE={} SHIP_STAGE={} SHIP_APP={}; export SHIP_ROLE SHIP_STAGE SHIP_APP; {}",
                    ship_core::shell::quote(&h.roles.join(",")),
                    ship_core::shell::quote(&stage.name),
                    ship_core::shell::quote(&stage.app),
                    t.run
                ),
            )
        })
        .collect()
}

fn rollback_stage(
    project: &crate::project::Project,
    stage: &ship_core::Stage,
    left_out: &[(String, String)],
    args: &RollbackArgs,
    cx: &mut Context,
    target_id: &mut Option<String>,
) -> Result<(), CliError> {
    let layout = super::layout(&stage.layout)?;
    let transport = ssh(project, stage, &args.remote);
    let hosts = names(stage);
    let user = super::deployer(cx);
    let info = format!(
        "{user} since {} (rollback of {} on {})",
        super::now(),
        stage.app,
        stage.name
    );
    let rt = runtime()?;
    let rollback = ship_core::Rollback {
        layout,
        deploy_to: &stage.deploy_to,
        user: &user,
        to: args.to.as_deref(),
        after: hosts
            .iter()
            .map(|h| (h.clone(), after_switch(stage, h)))
            .collect(),
        limit: stage.command_timeout,
        maintenance: stage.maintenance.as_ref(),
    };

    // One session per host: lock and read the state; then, once every host has answered,
    // switch back (or, if anything stops the rollback, just release the locks).
    let mut decision = None;
    let steps = rt.block_on(ship_core::driver::two_steps(
        &transport,
        &hosts,
        stage.parallel,
        stage.command_timeout,
        |h| rollback.first(h, &info),
        |nonce, first| {
            let d = rollback.decide(nonce, first);
            let scripts = d.scripts();
            decision = Some(d);
            scripts
        },
    ));
    rt.block_on(transport.close());
    let id = match decision.expect("decided once every host answered") {
        Decision::Act { id, .. } => id,
        Decision::Refuse { problems, .. } => {
            if args.format == Format::Json {
                emit(
                    cx,
                    &serde_json::json!({"event": "outcome", "ok": false, "stage": stage.name, "release": null, "problems": problems, "left_out": left_out_json(left_out)}),
                );
            }
            return Err(CliError::Remote(format!(
                "rollback of {} not done; no host changed:\n  {}",
                stage.name,
                problems.join("\n  ")
            )));
        }
    };
    *target_id = Some(id.clone());
    let width = hosts.iter().map(String::len).max().unwrap_or(0);
    let json = args.format == Format::Json;
    let mut failed = Vec::new();
    for (host, result) in &steps {
        let why = failure(result);
        if json {
            emit(
                cx,
                &serde_json::json!({
                    "event": "host",
                    "host": host,
                    "ok": why.is_none(),
                    "live": why.is_none().then(|| id.clone()),
                    "error": why,
                }),
            );
        } else {
            let _ = writeln!(
                cx.stdout,
                "  {host:<width$}  {}",
                match &why {
                    None => format!("back on release {id}"),
                    Some(why) => format!("FAILED: {why}"),
                }
            );
        }
        if let Some(why) = why {
            failed.push(format!("{host}: {why}"));
        }
    }
    if json {
        emit(
            cx,
            &serde_json::json!({"event": "outcome", "ok": failed.is_empty(), "stage": stage.name, "release": id, "left_out": left_out_json(left_out)}),
        );
        cx.stdout = Box::new(std::io::sink());
    }
    if !left_out.is_empty() {
        // The stage may now run two releases: never let that pass unsaid.
        let _ = writeln!(
            cx.stdout,
            "NOT rolled back (left out by the filter, they keep the release they run): {}",
            left_out_text(left_out)
        );
    }
    if failed.is_empty() {
        let _ = writeln!(
            cx.stdout,
            "Rolled back {} on {} to release {id}{}.",
            stage.app,
            stage.name,
            if left_out.is_empty() {
                String::new()
            } else {
                format!(" on {} of its hosts", hosts.len())
            }
        );
        Ok(())
    } else {
        let others = if failed.len() == hosts.len() {
            String::new()
        } else {
            format!("; the other hosts are on {id}")
        };
        Err(CliError::Remote(format!(
            "rollback to {id} failed on {}{others}",
            failed.join("; ")
        )))
    }
}

/// One release of a host, as `releases` shows it.
#[derive(serde::Serialize)]
struct Row {
    id: String,
    state: String,
    time: String,
    user: String,
    revision: Option<String>,
    live: bool,
}

/// Directories on disk with their records (made to agree with the directory: see
/// `records::reconcile`), described from `revisions.log` and `REVISION` where the record
/// lacks it or there is none (a release made by Capistrano); the records alone for a
/// single-directory layout. Exactly one row is live when `current` points at a release:
/// that one.
fn rows(layout: &dyn ship_core::Layout, state: &HostState) -> Vec<Row> {
    let mut rows = Vec::new();
    for dir in &state.releases {
        let live = state.live.as_deref() == Some(dir.as_str());
        let mut record = state
            .record_of(dir)
            .cloned()
            .unwrap_or_else(|| ReleaseRecord {
                id: dir.clone(),
                dir: dir.clone(),
                revision: None,
                digest: String::new(),
                time: String::new(),
                user: String::new(),
                state: ReleaseState::Good,
            });
        let recorded = state.record_of(dir).is_some();
        let time = layout.release_time(&record.id);
        ship_core::records::fill_in(&mut record, state, time);
        rows.push(Row {
            state: if recorded {
                state_name(record.state).to_owned()
            } else {
                // Made by another tool (Capistrano): as the directory and revisions.log say.
                ship_core::records::unrecorded_state(state, dir)
                    .map_or("-", state_name)
                    .to_owned()
            },
            id: record.id,
            time: record.time,
            user: record.user,
            revision: record.revision,
            live,
        });
    }
    if state.releases.is_empty() {
        for r in &state.records {
            rows.push(Row {
                id: r.id.clone(),
                state: state_name(r.state).to_owned(),
                time: r.time.clone(),
                user: r.user.clone(),
                revision: r.revision.clone(),
                live: r.state == ReleaseState::Live,
            });
        }
    }
    rows
}

/// The hosts a filter left out, for a JSON outcome.
fn left_out_json(left_out: &[(String, String)]) -> serde_json::Value {
    left_out
        .iter()
        .map(|(host, why)| serde_json::json!({"host": host, "why": why}))
        .collect()
}

/// Prints one JSON object on a line of stdout.
fn emit(cx: &mut Context, value: &serde_json::Value) {
    let _ = writeln!(cx.stdout, "{value}");
}

pub(crate) fn releases(ship: &Ship, args: &StageArgs, cx: &mut Context) -> Result<(), CliError> {
    let (project, stage) = resolve(ship, &args.stage, overrides(&args.remote.set, None)?, cx)?;
    let (stage, left_out) = chosen(&stage, &args.select)?;
    note_left_out(cx, &left_out);
    let layout = super::layout(&stage.layout)?;
    let json = args.format == Format::Json;
    let transport = ssh(&project, &stage, &args.remote);
    let rt = runtime()?;
    let results = rt.block_on(read_states(&transport, &stage, &names(&stage)));
    rt.block_on(transport.close());
    let mut failed = Vec::new();
    for (host, observed) in results {
        let observed = match observed {
            Ok(o) => o,
            Err(e) => {
                if json {
                    emit(
                        cx,
                        &serde_json::json!({"event": "host", "host": host, "ok": false, "error": e}),
                    );
                } else {
                    let _ = writeln!(cx.stdout, "{host}: {e}");
                }
                failed.push(host);
                continue;
            }
        };
        // The directory says what is live and what is there, not records another tool (or a
        // hand) made stale; where they disagreed, say so.
        let (state, drift) = layout.reconcile(&observed.state);
        let drift: Vec<String> = drift.iter().map(ToString::to_string).collect();
        let rows = rows(layout, &state);
        if json {
            emit(
                cx,
                &serde_json::json!({
                    "event": "host",
                    "host": host,
                    "ok": true,
                    "lock": observed.lock,
                    "live": rows.iter().find(|r| r.live).map(|r| r.id.clone()),
                    "releases": rows,
                    "drift": drift,
                }),
            );
            continue;
        }
        let _ = writeln!(
            cx.stdout,
            "{host}  ({})",
            observed
                .lock
                .as_deref()
                .map_or("not locked".to_owned(), |l| super::with_lock_age(&format!(
                    "LOCKED by {l}"
                )))
        );
        if rows.is_empty() {
            let _ = writeln!(cx.stdout, "  no releases");
        }
        for r in &rows {
            let rev = r.revision.as_deref().unwrap_or("");
            let _ = writeln!(
                cx.stdout,
                "  {} {:<16} {:<11} {:<20} {:<16} {}",
                if r.live { "*" } else { " " },
                r.id,
                r.state,
                r.time,
                r.user,
                // Read from the host's files: cut at a character, never inside one.
                rev.chars().take(12).collect::<String>()
            );
        }
        for d in &drift {
            let _ = writeln!(
                cx.stdout,
                "  ! {d} (changed outside cargo ship: shown as the directory is)"
            );
        }
    }
    if json {
        emit(
            cx,
            &serde_json::json!({"event": "outcome", "ok": failed.is_empty(), "stage": stage.name, "failed": failed}),
        );
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Remote(format!(
            "could not read: {}",
            failed.join(", ")
        )))
    }
}

fn state_name(s: ReleaseState) -> &'static str {
    match s {
        ReleaseState::Live => "live",
        ReleaseState::Good => "good",
        ReleaseState::Failed => "failed",
        ReleaseState::RolledBack => "rolled-back",
    }
}

/// One line of the check script: `name: ok: detail`, `name: FAIL: detail`, `lock: held by …`.
fn check_item(line: &str) -> serde_json::Value {
    let (name, rest) = line.split_once(": ").unwrap_or((line, ""));
    let (ok, detail) = if let Some(d) = rest.strip_prefix("FAIL: ") {
        (false, d)
    } else {
        (true, rest.strip_prefix("ok: ").unwrap_or(rest))
    };
    serde_json::json!({"name": name, "ok": ok, "detail": detail})
}

pub(crate) fn check(ship: &Ship, args: &StageArgs, cx: &mut Context) -> Result<(), CliError> {
    let (project, stage) = resolve(ship, &args.stage, overrides(&args.remote.set, None)?, cx)?;
    let (stage, left_out) = chosen(&stage, &args.select)?;
    note_left_out(cx, &left_out);
    let json = args.format == Format::Json;
    let transport = ssh(&project, &stage, &args.remote);
    let rt = runtime()?;
    let results = rt.block_on(on_hosts(&transport, &names(&stage), stage.parallel, |h| {
        let host = stage
            .hosts
            .iter()
            .find(|x| x.name == h)
            .expect("a host of the stage");
        ops::check_script(&stage.deploy_to, h, &host.linked_files)
    }));
    rt.block_on(transport.close());
    let mut failed = Vec::new();
    for (host, result) in results {
        let mut lines = Vec::new();
        let mut ok = true;
        match result {
            Err(e) => {
                lines.push(format!("reach: FAIL: {e}"));
                ok = false;
            }
            Ok(out) => {
                lines.push("reach: ok: host key trusted".to_owned());
                lines.extend(out.stdout.lines().map(str::to_owned));
                if out.status != Some(0) {
                    if !out.stderr.trim().is_empty() {
                        lines.push(format!("error: FAIL: {}", first_line(&out.stderr)));
                    }
                    ok = false;
                }
            }
        }
        if json {
            let checks: Vec<serde_json::Value> = lines.iter().map(|l| check_item(l)).collect();
            emit(
                cx,
                &serde_json::json!({"event": "host", "host": host, "ok": ok, "checks": checks}),
            );
        } else {
            let _ = writeln!(cx.stdout, "{host}");
            for line in &lines {
                let _ = writeln!(cx.stdout, "  {line}");
            }
        }
        if !ok {
            failed.push(host);
        }
    }
    if json {
        emit(
            cx,
            &serde_json::json!({"event": "outcome", "ok": failed.is_empty(), "stage": stage.name, "failed": failed}),
        );
    } else if failed.is_empty() {
        let _ = writeln!(
            cx.stdout,
            "All {} hosts of {} are ready.",
            stage.hosts.len(),
            stage.name
        );
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Remote(format!(
            "check failed on {}",
            failed.join(", ")
        )))
    }
}

pub(crate) fn run(ship: &Ship, args: &RunArgs, cx: &mut Context) -> Result<(), CliError> {
    let (project, stage) = resolve(ship, &args.stage, overrides(&args.remote.set, None)?, cx)?;
    let (stage, left_out) = chosen(&stage, &args.select)?;
    note_left_out(cx, &left_out);
    let hosts = names(&stage);
    let command = args.command.join(" ");
    let transport = ssh(&project, &stage, &args.remote);
    let rt = runtime()?;
    let ran = rt.block_on(on_hosts_until_stopped(
        &transport,
        &hosts,
        stage.parallel,
        session_limit(&stage),
        |h| ops::run_script(&stage.deploy_to, h, &command, stage.command_timeout),
    ));
    rt.block_on(transport.close());
    let stopped = ran.interrupted(&format!("`{command}`"));
    let failed = report_outputs(cx, &stage, args.format, ran.results, ran.signal);
    if let Some(e) = stopped {
        return Err(e);
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Remote(format!(
            "`{command}` failed on {}",
            failed.join(", ")
        )))
    }
}

/// Prints each host's output of a command (`run`, `task`), grouped per host, or as JSON
/// lines (a `host` object each with its exit status and output, then the `outcome`, with
/// `stopped_by` the signal that stopped it, if one did); the hosts where it failed.
pub(crate) fn report_outputs(
    cx: &mut Context,
    stage: &ship_core::Stage,
    format: Format,
    results: Vec<(
        String,
        Result<ship_core::RunOutput, ship_core::TransportError>,
    )>,
    signal: Option<&str>,
) -> Vec<String> {
    let mut failed = Vec::new();
    for (host, result) in results {
        let ok = matches!(&result, Ok(out) if out.status == Some(0));
        if format == Format::Json {
            let value = match &result {
                Err(e) => serde_json::json!({
                    "event": "host", "host": host, "ok": false, "status": null,
                    "stdout": "", "stderr": "", "error": e.to_string(),
                }),
                Ok(out) => serde_json::json!({
                    "event": "host", "host": host, "ok": ok, "status": out.status,
                    "stdout": out.stdout, "stderr": out.stderr,
                    "error": (!ok).then(|| failure(&result)).flatten(),
                }),
            };
            emit(cx, &value);
        } else {
            match &result {
                Err(e) => {
                    let _ = writeln!(cx.stdout, "── {host}: {e}");
                }
                Ok(out) => {
                    let status = out.status.map_or("killed".to_owned(), |s| s.to_string());
                    let _ = writeln!(cx.stdout, "── {host} (exit {status})");
                    let _ = write!(cx.stdout, "{}", out.stdout);
                    if !out.stdout.is_empty() && !out.stdout.ends_with('\n') {
                        let _ = writeln!(cx.stdout);
                    }
                    let _ = write!(cx.stdout, "{}", out.stderr);
                }
            }
        }
        if !ok {
            failed.push(host);
        }
    }
    if format == Format::Json {
        emit(
            cx,
            &serde_json::json!({"event": "outcome", "ok": failed.is_empty() && signal.is_none(), "stage": stage.name, "failed": failed, "stopped_by": signal}),
        );
    }
    failed
}

pub(crate) fn unlock(ship: &Ship, args: &StageArgs, cx: &mut Context) -> Result<(), CliError> {
    let (project, stage) = resolve(ship, &args.stage, overrides(&args.remote.set, None)?, cx)?;
    let (stage, left_out) = chosen(&stage, &args.select)?;
    note_left_out(cx, &left_out);
    let transport = ssh(&project, &stage, &args.remote);
    let rt = runtime()?;
    let results = rt.block_on(on_hosts(&transport, &names(&stage), stage.parallel, |h| {
        ops::unlock_script(&stage.deploy_to, h)
    }));
    rt.block_on(transport.close());
    let mut failed = Vec::new();
    for (host, result) in results {
        match failure(&result) {
            None => {
                let said = result.expect("ok").stdout;
                let _ = writeln!(cx.stdout, "{host}: {}", super::with_lock_age(said.trim()));
            }
            Some(why) => {
                let _ = writeln!(cx.stdout, "{host}: FAILED: {why}");
                failed.push(host);
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Remote(format!(
            "could not unlock {}",
            failed.join(", ")
        )))
    }
}

pub(crate) fn maintenance(
    ship: &Ship,
    args: &MaintenanceArgs,
    cx: &mut Context,
) -> Result<(), CliError> {
    let (project, stage) = resolve(ship, &args.stage, overrides(&args.remote.set, None)?, cx)?;
    let (stage, left_out) = chosen(&stage, &args.select)?;
    note_left_out(cx, &left_out);
    let json = args.format == Format::Json;
    let cfg = stage.maintenance.clone().ok_or_else(|| {
        CliError::Usage(format!(
            "stage `{}` has no maintenance page: add to Ship.toml\n  [{}.maintenance]\n  \
             file = \"public/maintenance.html\"   # where the web server looks, in current/",
            stage.name, stage.name
        ))
    })?;
    let on = args.state == Switch::On;
    let info = format!(
        "{} since {} (maintenance {} of {} on {})",
        super::deployer(cx),
        super::now(),
        if on { "on" } else { "off" },
        stage.app,
        stage.name
    );
    let transport = ssh(&project, &stage, &args.remote);
    let rt = runtime()?;
    // Its `before`/`after` commands are stopped on the hosts at a signal, as `run`'s are.
    let ran = rt.block_on(on_hosts_until_stopped(
        &transport,
        &names(&stage),
        stage.parallel,
        session_limit(&stage),
        |h| ops::maintenance_script(&stage.deploy_to, h, &cfg, on, &info, stage.command_timeout),
    ));
    rt.block_on(transport.close());
    let stopped = ran.interrupted(&format!("maintenance {}", if on { "on" } else { "off" }));
    let (results, ran_signal) = (ran.results, ran.signal);
    let width = stage.hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
    let mut failed = Vec::new();
    let state = if on { "on" } else { "off" };
    for (host, result) in &results {
        let why = failure(result);
        if json {
            emit(
                cx,
                &serde_json::json!({
                    "event": "host",
                    "host": host,
                    "ok": why.is_none(),
                    "maintenance": why.is_none().then_some(state),
                    "said": result.as_ref().ok().map(|o| first_line(&o.stdout)),
                    "error": why,
                }),
            );
        } else {
            match &why {
                None => {
                    let out = result.as_ref().expect("succeeded");
                    let _ = writeln!(cx.stdout, "  {host:<width$}  {}", first_line(&out.stdout));
                }
                Some(why) => {
                    let _ = writeln!(cx.stdout, "  {host:<width$}  FAILED: {why}");
                }
            }
        }
        if let Some(why) = why {
            failed.push(format!("{host}: {why}"));
        }
    }
    if json {
        emit(
            cx,
            &serde_json::json!({
                "event": "outcome",
                "ok": failed.is_empty() && ran_signal.is_none(),
                "stage": stage.name,
                "maintenance": state,
                "stopped_by": ran_signal,
                "failed": failed.iter().map(|f| f.split(": ").next().unwrap_or(f)).collect::<Vec<_>>(),
                "left_out": left_out_json(&left_out),
            }),
        );
        cx.stdout = Box::new(std::io::sink());
    }
    if let Some(e) = stopped {
        return Err(e);
    }
    if failed.is_empty() {
        let _ = writeln!(
            cx.stdout,
            "Maintenance {state} for {} on {}: {} host{}.",
            stage.app,
            stage.name,
            results.len(),
            if results.len() == 1 { "" } else { "s" }
        );
        Ok(())
    } else {
        Err(CliError::Remote(format!(
            "maintenance {state} failed on {}",
            failed.join("; ")
        )))
    }
}
