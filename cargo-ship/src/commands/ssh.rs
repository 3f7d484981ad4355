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
                let hosts = chosen.hosts.iter().map(|h| h.name.as_str());
                CliError::UsageHint(ship_core::Diagnostic {
                    message: format!(
                        "host `{name}`: not a host of stage `{}`{}; its hosts: {}",
                        stage.name,
                        if chosen.hosts.len() < stage.hosts.len() {
                            " chosen by --roles/--hosts/--exclude"
                        } else {
                            ""
                        },
                        names()
                    ),
                    help: ship_core::diagnostic::closest(name, hosts)
                        .map(|c| format!("did you mean `{c}`?")),
                    ..Default::default()
                })
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

    // The same ssh command line as every other command's (ship_ssh::ssh_args): the user's
    // configuration before cargo ship's defaults, the host's user, port, key, options, and
    // its jump hosts (here as ProxyJump: an interactive login of its own).
    let conn = super::connections(&project, &stage)
        .remove(&host.name)
        .unwrap_or_else(|| ship_ssh::Connection {
            host: host.name.clone(),
            ..Default::default()
        });
    let config = std::env::temp_dir().join(format!("cargo-ship-ssh-{}.config", std::process::id()));
    let text = ship_ssh::config_text(
        stage
            .ssh_config
            .as_ref()
            .map(|c| project.root.join(c))
            .as_deref(),
        stage.connect_timeout,
    );
    std::fs::write(&config, text).map_err(|e| CliError::Io {
        path: config.display().to_string(),
        source: e,
    })?;
    let host_keys = if args.remote.accept_new_host_keys {
        ship_ssh::HostKeys::AcceptNew
    } else {
        ship_ssh::HostKeys::Strict
    };
    let mut cmd = std::process::Command::new("ssh");
    cmd.arg("-t");
    cmd.args(ship_ssh::ssh_args(&conn, &config, host_keys, None));
    if !conn.jump.is_empty() {
        let hops: Vec<String> = conn.jump.iter().map(ToString::to_string).collect();
        cmd.arg("-J").arg(hops.join(","));
    }
    cmd.arg("--")
        .arg(&conn.host)
        .arg(ship_ssh::remote_command(&script));
    cmd.current_dir(&cx.cwd)
        .env_clear()
        .envs(cx.env.iter().cloned());
    let _ = cx.stderr.flush();
    let status = cmd.status();
    let _ = std::fs::remove_file(&config);
    let status = status.map_err(|e| {
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
