//! `cargo ship ssh <stage> [host]`: an interactive shell on one host, in the live release,
//! with the variables of the app (see [`super::task::app_env`]). The host's state is read
//! first over the transport; the shell itself is OpenSSH's `ssh -t`, on this terminal, with
//! the stage's ssh_config and the same host-key checking as every other command.

use super::{chosen, overrides, read_states, resolve, runtime, ssh};
use crate::cli::{Ship, SshArgs};
use crate::{CliError, Context};
use ship_core::shell::quote;
use std::io::Write;

pub(crate) fn run(ship: &Ship, args: &SshArgs, cx: &mut Context) -> Result<(), CliError> {
    let (project, stage) = resolve(ship, &args.stage, overrides(&args.remote.set, None)?, cx)?;
    let (chosen, _) = chosen(&stage, &args.select)?;
    let names = || {
        chosen
            .hosts
            .iter()
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let host = match &args.host {
        Some(name) => chosen
            .hosts
            .iter()
            .find(|h| &h.name == name)
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "host `{name}`: not a host of stage `{}`{}; its hosts: {}",
                    stage.name,
                    if chosen.hosts.len() < stage.hosts.len() {
                        " chosen by --roles/--hosts/--exclude"
                    } else {
                        ""
                    },
                    names()
                ))
            })?,
        None if chosen.hosts.len() == 1 => &chosen.hosts[0],
        None => {
            return Err(CliError::Usage(format!(
                "which host? stage `{}` has {} hosts: {}; name one (`cargo ship ssh {} {}`) \
                 or choose one with --roles/--hosts/--exclude",
                stage.name,
                chosen.hosts.len(),
                names(),
                stage.name,
                chosen.hosts[0].name
            )));
        }
    };

    // The live release, for its variables.
    let transport = ssh(&project, &stage, &args.remote);
    let rt = runtime()?;
    let mut states = rt.block_on(read_states(
        &transport,
        &stage,
        std::slice::from_ref(&host.name),
    ));
    rt.block_on(transport.close());
    let (_, observed) = states.pop().expect("one host read");
    let observed = observed.map_err(|e| CliError::Remote(format!("{}: {e}", host.name)))?;
    let live = observed.state.live_record().cloned();

    let mut script = String::from("set -eu\n");
    script.push_str(&super::task::app_env(&stage, host, live.as_ref()));
    match &live {
        Some(r) => {
            script.push_str("cd \"$SHIP_RELEASE_PATH\"\n");
            let _ = writeln!(
                cx.stderr,
                "{}: release {} of {} on {}, in {}/current",
                host.name, r.id, stage.app, stage.name, stage.deploy_to
            );
        }
        None => {
            script.push_str("cd \"$SHIP_DEPLOY_TO\" 2>/dev/null || cd\n");
            let _ = writeln!(
                cx.stderr,
                "{}: nothing of {} is live there: the shell starts in {} (or the home directory), without SHIP_RELEASE",
                host.name, stage.app, stage.deploy_to
            );
        }
    }
    script.push_str("set +eu\n");
    if args.command.is_empty() {
        script.push_str("exec \"${SHELL:-/bin/sh}\" -l\n");
    } else {
        script.push_str(&format!("exec sh -c {}\n", quote(&args.command.join(" "))));
    }

    let mut cmd = std::process::Command::new("ssh");
    cmd.arg("-t");
    if let Some(config) = &stage.ssh_config {
        cmd.arg("-F").arg(project.root.join(config));
    }
    cmd.arg("-o").arg(format!(
        "StrictHostKeyChecking={}",
        if args.remote.accept_new_host_keys {
            "accept-new"
        } else {
            "yes"
        }
    ));
    cmd.arg("-o").arg(format!(
        "ConnectTimeout={}",
        stage.connect_timeout.as_secs().max(1)
    ));
    cmd.arg("--")
        .arg(&host.name)
        .arg(ship_ssh::remote_command(&script));
    cmd.current_dir(&cx.cwd)
        .env_clear()
        .envs(cx.env.iter().cloned());
    let _ = cx.stderr.flush();
    let status = cmd.status().map_err(|e| {
        CliError::Project(format!(
            "cannot run ssh (OpenSSH's client is needed for `cargo ship ssh`): {e}"
        ))
    })?;
    match status.code() {
        Some(0) => Ok(()),
        Some(255) => Err(CliError::Remote(format!(
            "ssh to {} exited with 255: it could not connect, or the shell there exited with 255",
            host.name
        ))),
        Some(code) => Err(CliError::Remote(format!(
            "the shell on {} exited with {code}",
            host.name
        ))),
        None => Err(CliError::Remote(format!(
            "ssh to {} was stopped by a signal",
            host.name
        ))),
    }
}
