//! `cargo ship task <stage> <name>`: one task of Ship.toml, run now on the hosts a deploy
//! runs it on (its roles, `once`, `local`, as the planner places it; narrowed by
//! `--roles/--hosts/--exclude`), in the live release, with the variables of the live release.
//! Only that task: what is hooked before or after it is not run (Capistrano's
//! `cap production deploy:migrate` runs that task). No lock is taken and nothing is recorded.
//!
//! The variables a shell on a host gets ([`app_env`]) are also `cargo ship ssh`'s.

use super::{chosen, note_left_out, overrides, read_states, runtime, ssh};
use crate::cli::{Format, Ship, TaskArgs};
use crate::{CliError, Context};
use ship_core::shell::quote;
use ship_core::{Host, ReleaseRecord, Stage};
use ship_core::{Placement, StepKind};
use std::fmt::Write as _;
use std::io::Write;

/// Shell that exports what a deploy's task has on `host` for the live release `live`:
/// `SHIP_APP`, `SHIP_STAGE`, `SHIP_DEPLOY_TO`, `SHIP_HOST`, `SHIP_ROLE`, the host's
/// `SHIP_VAR_*`, and with a live release `SHIP_RELEASE`, `SHIP_REVISION`, `SHIP_DIGEST` and
/// `SHIP_RELEASE_PATH` (`$SHIP_DEPLOY_TO/current`). Without one, those four are not set.
pub(crate) fn app_env(stage: &Stage, host: &Host, live: Option<&ReleaseRecord>) -> String {
    let mut s = String::new();
    let roles = host.roles.join(",");
    let mut vars = vec![
        ("SHIP_APP", stage.app.as_str()),
        ("SHIP_STAGE", stage.name.as_str()),
        ("SHIP_DEPLOY_TO", stage.deploy_to.as_str()),
        ("SHIP_HOST", host.name.as_str()),
        ("SHIP_ROLE", roles.as_str()),
    ];
    if let Some(r) = live {
        vars.push(("SHIP_RELEASE", r.id.as_str()));
        vars.push((
            "SHIP_REVISION",
            r.revision.as_deref().unwrap_or(r.digest.as_str()),
        ));
        vars.push(("SHIP_DIGEST", r.digest.as_str()));
    }
    for (k, v) in &vars {
        let _ = writeln!(s, "{k}={}", quote(v));
    }
    let mut names: Vec<String> = vars.iter().map(|(k, _)| (*k).to_owned()).collect();
    if live.is_some() {
        s.push_str("SHIP_RELEASE_PATH=\"$SHIP_DEPLOY_TO/current\"\n");
        names.push("SHIP_RELEASE_PATH".to_owned());
    }
    for (k, v) in &host.vars {
        let name = format!(
            "{}{}",
            ship_core::protocol::HOST_VAR_PREFIX,
            k.to_ascii_uppercase()
        );
        let _ = writeln!(s, "{name}={}", quote(v));
        names.push(name);
    }
    let _ = writeln!(s, "export {}", names.join(" "));
    // The app's environment (`[env]`, `[secrets]`), as the app reads it.
    if !stage.env.is_empty() || !stage.secrets.is_empty() {
        s.push_str(
            "if [ -r \"$SHIP_DEPLOY_TO/shared/.env\" ]; then set -a; . \"$SHIP_DEPLOY_TO/shared/.env\"; set +a; fi\n",
        );
    }
    s
}

/// The script that runs `command` on `host` in the live release, as a deploy runs a task:
/// `sh -c`, its output followed, stopped at the stage's `command_timeout`.
fn task_script(stage: &Stage, host: &Host, live: &ReleaseRecord, command: &str) -> String {
    let mut s = String::from("set -eu\n");
    s.push_str(&app_env(stage, host, Some(live)));
    let _ = writeln!(
        s,
        "cd \"$SHIP_RELEASE_PATH\" || {{ echo \"cargo-ship: $SHIP_HOST: $SHIP_RELEASE_PATH is not there\" >&2; exit 1; }}\n{}\nexit $ship_rc",
        ship_core::ops::followed(&ship_core::ops::limited(command, stage.command_timeout))
    );
    s
}

pub(crate) fn run(ship: &Ship, args: &TaskArgs, cx: &mut Context) -> Result<(), CliError> {
    let (project, stage, adapters) =
        super::resolve_with_adapters(ship, &args.stage, overrides(&args.remote.set, None)?, cx)?;
    let Some(cfg) = stage.tasks.get(&args.name) else {
        let (_, specs) = super::tasks::ordered(&stage, &adapters)?;
        let why = if specs.iter().any(|t| t.name == args.name) {
            format!(
                "`{}` is an adapter's task: it is made for a deploy (with its artifact) and is not run by name",
                args.name
            )
        } else {
            format!("stage `{}` has no task `{}`", stage.name, args.name)
        };
        let names: Vec<&str> = stage.tasks.keys().map(String::as_str).collect();
        let note = format!(
            "tasks of Ship.toml for `{}`: {} (`cargo ship tasks {}` lists them)",
            stage.name,
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            },
            stage.name
        );
        return Err(CliError::UsageHint(ship_core::Diagnostic {
            message: why,
            notes: vec![note],
            help: ship_core::diagnostic::closest(&args.name, names)
                .map(|c| format!("did you mean `{c}`?")),
            ..Default::default()
        }));
    };
    let command = cfg.run.clone();
    let (stage, left_out) = chosen(&stage, &args.select)?;
    note_left_out(cx, &left_out);
    // Where a deploy to these hosts would run it.
    let (plan, _) = super::tasks::ordered(&stage, &adapters)?;
    let step = plan
        .steps
        .iter()
        .find(|s| s.kind == StepKind::Task && s.name == args.name);
    let (placement, hosts) = match step {
        Some(step) if step.placement == Placement::Local => (Placement::Local, Vec::new()),
        Some(step) if !step.hosts.is_empty() => (step.placement, step.hosts.clone()),
        _ => {
            return Err(CliError::Usage(format!(
                "task `{}` runs on the hosts of roles {}: none of them is chosen{}",
                args.name,
                cfg.roles.join(", "),
                if left_out.is_empty() {
                    String::new()
                } else {
                    format!(" (not on: {})", super::left_out_text(&left_out))
                }
            )));
        }
    };
    let json = args.format == Format::Json;
    let rt = runtime()?;
    let ran = if placement == Placement::Local {
        // On this machine, in the project, as a deploy's local step (no release to be in).
        // Its process group is its own (a Ctrl-C at the terminal does not reach it): it is
        // stopped as a host's command is, when its input (a pipe from here) closes.
        let local = ship_ssh::LocalTransport::new(project.root.clone());
        let script = format!(
            "set -eu\nexport SHIP_APP={} SHIP_STAGE={} SHIP_DEPLOY_TO={}\n{}\nexit $ship_rc\n",
            quote(&stage.app),
            quote(&stage.name),
            quote(&stage.deploy_to),
            ship_core::ops::followed(&ship_core::ops::limited(&command, stage.command_timeout))
        );
        rt.block_on(super::on_hosts_until_stopped(
            &local,
            &["local".to_owned()],
            1,
            super::session_limit(&stage),
            |_| script.clone(),
        ))
    } else {
        let transport = ssh(&project, &stage, &args.remote);
        let states = rt.block_on(read_states(&transport, &stage, &hosts));
        // Every host must have a live release to run in: otherwise nothing runs anywhere.
        let mut lives = Vec::new();
        let mut problems = Vec::new();
        for (host, observed) in &states {
            match observed {
                Err(e) => problems.push(format!("{host}: {e}")),
                Ok(o) => match o.state.live_record() {
                    Some(r) => lives.push((host.clone(), r.clone())),
                    None => problems.push(format!("{host}: nothing is live there")),
                },
            }
        }
        if !problems.is_empty() {
            rt.block_on(transport.close());
            return Err(CliError::Remote(format!(
                "task {} not run on any host:\n  {}",
                args.name,
                problems.join("\n  ")
            )));
        }
        let scripts: Vec<(String, String)> = lives
            .iter()
            .map(|(h, live)| {
                let host = stage
                    .hosts
                    .iter()
                    .find(|x| &x.name == h)
                    .expect("a host of the stage");
                (h.clone(), task_script(&stage, host, live, &command))
            })
            .collect();
        let ran = rt.block_on(super::on_hosts_until_stopped(
            &transport,
            &hosts,
            stage.parallel,
            super::session_limit(&stage),
            |h| {
                scripts
                    .iter()
                    .find(|(x, _)| x == h)
                    .map(|(_, s)| s.clone())
                    .expect("a script for every host")
            },
        ));
        rt.block_on(transport.close());
        ran
    };
    let stopped = ran.interrupted(&format!("task {}", args.name));
    let failed = super::ops::report_outputs(cx, &stage, args.format, ran.results, ran.signal);
    if let Some(e) = stopped {
        return Err(e);
    }
    let place = match placement {
        Placement::Local => "here (local)".to_owned(),
        Placement::Once => format!("once: {}", hosts.join(", ")),
        Placement::Hosts => hosts.join(", "),
    };
    if failed.is_empty() {
        if !json {
            let _ = writeln!(
                cx.stdout,
                "Ran task {} of {} on {} ({place}); only this task: what is hooked to it did not run.",
                args.name, stage.app, stage.name
            );
        }
        Ok(())
    } else {
        Err(CliError::Remote(format!(
            "task {} failed on {}",
            args.name,
            failed.join(", ")
        )))
    }
}
