//! One module per subcommand. Each turns its raw flags into validated settings, then works;
//! what several share (resolving a stage, the SSH transport, running a script on every
//! host) is here.

mod apply;
mod completions;
mod init;
mod ops;
mod plan;
mod promote;
mod ssh;
mod task;
mod tasks;

use crate::cli::{Command, RemoteArgs, SelectArgs, Ship};
use crate::project::Project;
use crate::{CliError, Context};
use futures::future::join_all;
use ship_core::Sources;
use ship_core::{Layout, LayoutName, RunOutput, Stage, Transport, TransportError};
use ship_ssh::{HostKeys, SshOptions, SshTransport};
use std::io::Write;

/// Runs the subcommand.
pub fn run(ship: &Ship, cx: &mut Context) -> Result<(), CliError> {
    match &ship.command {
        Command::Plan(args) => plan::run(ship, args, cx),
        Command::Apply(args) => apply::run(ship, args, cx),
        Command::Rollback(args) => ops::rollback(ship, args, cx),
        Command::Releases(args) => ops::releases(ship, args, cx),
        Command::Check(args) => ops::check(ship, args, cx),
        Command::Run(args) => ops::run(ship, args, cx),
        Command::Unlock(args) => ops::unlock(ship, args, cx),
        Command::Init(args) => init::run(ship, args, cx),
        Command::Promote(args) => promote::run(ship, args, cx),
        Command::Tasks(args) => tasks::run(ship, args, cx),
        Command::Task(args) => task::run(ship, args, cx),
        Command::Ssh(args) => ssh::run(ship, args, cx),
        Command::Maintenance(args) => ops::maintenance(ship, args, cx),
        Command::Completions(args) => completions::script(args, cx),
        Command::Complete(args) => completions::candidates(args, cx),
    }
}

/// `--set KEY=VALUE` flags (and `--version`) as configuration overrides.
pub(crate) fn overrides(
    set: &[String],
    version: Option<&str>,
) -> Result<Vec<(String, String)>, CliError> {
    let mut out = Vec::new();
    for item in set {
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
        out.push((k.to_owned(), v.to_owned()));
    }
    if let Some(v) = version {
        out.push(("version".to_owned(), format!("\"{}\"", v.replace('"', ""))));
    }
    Ok(out)
}

/// The project and one of its stages, resolved with these overrides.
pub(crate) fn resolve_with_adapters(
    ship: &Ship,
    stage: &str,
    overrides: Vec<(String, String)>,
    cx: &Context,
) -> Result<(Project, Stage, crate::adapters::Adapters), CliError> {
    let project = Project::find(&cx.cwd, ship.manifest_path.as_deref(), cx.var("CARGO"))?;
    let sources = Sources {
        ship_toml: project.ship_toml.clone(),
        cargo_metadata: project.cargo_metadata.clone(),
        env: cx.env.clone(),
        overrides,
        adapter_tables: crate::adapters::table_names(),
    };
    let loaded = sources.load()?;
    let stage = Stage::resolve(&loaded, stage, &ship_layouts::names())?;
    let adapters = crate::adapters::read(&loaded, &stage)?;
    Ok((project, stage, adapters))
}

/// The layout named `name`: a stage's (`Stage::resolve` checked it) or a saved plan's.
pub(crate) fn layout(name: &LayoutName) -> Result<&'static dyn Layout, CliError> {
    ship_layouts::layout_for(name.name()).ok_or_else(|| {
        CliError::Usage(format!(
            "unknown layout `{name}`; expected one of: {}",
            ship_layouts::names().join(", ")
        ))
    })
}

/// [`resolve_with_adapters`] for the commands that do not build: the adapters' tables are
/// still checked.
pub(crate) fn resolve(
    ship: &Ship,
    stage: &str,
    overrides: Vec<(String, String)>,
    cx: &Context,
) -> Result<(Project, Stage), CliError> {
    let (project, stage, _) = resolve_with_adapters(ship, stage, overrides, cx)?;
    Ok((project, stage))
}

/// `--roles/--hosts/--exclude` as a selection.
pub(crate) fn selection(select: &SelectArgs) -> ship_core::Selection {
    ship_core::Selection {
        roles: select.roles.clone(),
        hosts: select.hosts.clone(),
        exclude: select.exclude.clone(),
    }
}

/// The stage narrowed to the hosts `--roles/--hosts/--exclude` choose (every host without
/// them), and the hosts left out with why. The one home of host filters for the commands
/// that reach hosts: a host left out is never connected to.
pub(crate) fn chosen(
    stage: &Stage,
    select: &SelectArgs,
) -> Result<(Stage, Vec<(String, String)>), CliError> {
    let selection = selection(select);
    if selection.is_empty() {
        return Ok((stage.clone(), Vec::new()));
    }
    stage.select(&selection).map_err(CliError::UsageHint)
}

/// `h2 (--exclude h2), h3 (not in roles web)`: the hosts a filter left out.
pub(crate) fn left_out_text(left_out: &[(String, String)]) -> String {
    left_out
        .iter()
        .map(|(h, why)| format!("{h} ({why})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Says on stderr which hosts a filter left out of a command (nothing without a filter).
pub(crate) fn note_left_out(cx: &mut Context, left_out: &[(String, String)]) {
    if !left_out.is_empty() {
        let _ = writeln!(cx.stderr, "not on: {}", left_out_text(left_out));
    }
}

/// The SSH transport for a stage.
pub(crate) fn ssh(project: &Project, stage: &Stage, remote: &RemoteArgs) -> SshTransport {
    SshTransport::new(SshOptions {
        config_file: stage.ssh_config.as_ref().map(|c| project.root.join(c)),
        host_keys: if remote.accept_new_host_keys {
            HostKeys::AcceptNew
        } else {
            HostKeys::Strict
        },
        connect_timeout: stage.connect_timeout,
        session_timeout: stage.command_timeout,
        keep_connections: stage.keep_connections,
        hosts: connections(project, stage),
    })
}

/// How each host of `stage` is reached (as ship-core resolved it), an `identity` relative
/// to the project root made absolute.
pub(crate) fn connections(
    project: &Project,
    stage: &Stage,
) -> std::collections::BTreeMap<String, ship_ssh::Connection> {
    stage
        .hosts
        .iter()
        .filter_map(|h| {
            let mut c = h.ssh.clone()?;
            if let Some(i) = &c.identity
                && !i.starts_with('~')
                && std::path::Path::new(i).is_relative()
            {
                c.identity = Some(project.root.join(i).display().to_string());
            }
            Some((h.name.clone(), c))
        })
        .collect()
}

/// At most this many threads do the runtime's blocking work (reading the artifact for each
/// host's session, a piece at a time). Unbounded, the pool grew a thread per host reading at
/// once (106 threads at 60 hosts), and every `ssh` started then forked all their stacks'
/// mappings: about a third of cargo ship's own CPU at 60 hosts went to copying them.
const BLOCKING_THREADS: usize = 8;

/// A runtime for the network work of one command.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
        .map_err(|source| CliError::Io {
            path: "the async runtime".to_owned(),
            source,
        })
}

pub(crate) use crate::who::{deployer, now, with_lock_age};

/// Connects to every host (at most `parallel` at once) and runs the script `script_for`
/// gives it, in one session. Results in host order.
pub(crate) async fn on_hosts<T: Transport>(
    transport: &T,
    hosts: &[String],
    parallel: usize,
    script_for: impl Fn(&str) -> String,
) -> Vec<(String, Result<RunOutput, TransportError>)> {
    let gate = tokio::sync::Semaphore::new(parallel.max(1));
    let scripts: Vec<String> = hosts.iter().map(|h| script_for(h)).collect();
    join_all(hosts.iter().zip(scripts).map(|(h, script)| {
        let gate = &gate;
        async move {
            let _permit = gate.acquire().await.expect("never closed");
            let result = match transport.connect(h).await {
                Ok(()) => transport.run(h, &script, None).await,
                Err(e) => Err(e),
            };
            (h.clone(), result)
        }
    }))
    .await
}

/// How long a session running a user's command may last: the command's own limit (the
/// host stops it then, and kills it 5 seconds later) and a minute for the rest.
pub(crate) fn session_limit(stage: &Stage) -> std::time::Duration {
    stage.command_timeout + std::time::Duration::from_secs(60)
}

/// SIGINT and SIGTERM, watched from when this is made (a signal that cannot be watched
/// never comes).
pub(crate) struct Signals {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    pub(crate) fn watch() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        Signals {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
        }
    }

    /// The name of the next one that comes (cancel-safe: one dropped unfinished loses none).
    pub(crate) async fn next(&mut self) -> &'static str {
        async fn one(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            () = one(&mut self.int) => "SIGINT",
            () = one(&mut self.term) => "SIGTERM",
        }
    }
}

/// What [`on_hosts_until_stopped`] saw: each host's result, in host order, the first
/// signal that asked the commands to stop, if one did, and the hosts whose session had not
/// ended when a second signal ended the wait.
pub(crate) struct UntilStopped {
    pub(crate) results: Vec<(String, Result<RunOutput, TransportError>)>,
    pub(crate) signal: Option<&'static str>,
    unfinished: Vec<String>,
}

impl UntilStopped {
    /// The error to end with after a signal (its exit code: 130 or 143), naming the hosts
    /// not known to have stopped.
    pub(crate) fn interrupted(&self, what: &str) -> Option<CliError> {
        let signal = self.signal?;
        let message = if self.unfinished.is_empty() {
            format!(
                "stopped by {signal}: {what} was stopped (SIGTERM to its process group, then SIGKILL to what was left of it)"
            )
        } else {
            format!(
                "stopped by {signal}: {what} was asked to stop on every host; not known to have stopped on {} (a second signal ended the wait)",
                self.unfinished.join(", ")
            )
        };
        Some(CliError::Interrupted {
            code: if signal == "SIGTERM" { 143 } else { 130 },
            message,
        })
    }
}

/// [`on_hosts`] for a user's command (`run`, `task`, maintenance's `before`/`after`): each
/// session's standard input stays open while its script runs and is closed at a SIGINT or
/// a SIGTERM, which the script takes as the word to stop the command on its host
/// (`ship_core::ops::followed`); then the sessions' ends are awaited as usual, and hosts not
/// started (or still logging in) are not started. A second signal stops the wait. `limit`
/// bounds a session, as [`Transport::run`] does.
pub(crate) async fn on_hosts_until_stopped<T: Transport>(
    transport: &T,
    hosts: &[String],
    parallel: usize,
    limit: std::time::Duration,
    script_for: impl Fn(&str) -> String,
) -> UntilStopped {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let done: std::sync::Mutex<Vec<Option<Result<RunOutput, TransportError>>>> =
        std::sync::Mutex::new(hosts.iter().map(|_| None).collect());
    let gate = tokio::sync::Semaphore::new(parallel.max(1));
    let mut signals = Signals::watch();
    let mut first = None;
    {
        let work = join_all(hosts.iter().enumerate().map(|(i, h)| {
            let (gate, done, script) = (&gate, &done, script_for(h));
            let stopped = stopped.clone();
            async move {
                let _permit = gate.acquire().await.expect("never closed");
                let result = until_stopped(transport, h, &script, limit, stopped).await;
                done.lock().expect("not poisoned")[i] = Some(result);
            }
        }));
        tokio::pin!(work);
        loop {
            let name = tokio::select! {
                _ = &mut work => break,
                name = signals.next() => name,
            };
            if first.is_some() {
                break;
            }
            first = Some(name);
            let _ = stop.send(true);
        }
    }
    let mut unfinished = Vec::new();
    let results = done
        .into_inner()
        .expect("not poisoned")
        .into_iter()
        .zip(hosts)
        .map(|(r, h)| {
            let r = r.unwrap_or_else(|| {
                unfinished.push(h.clone());
                Err(TransportError::Session {
                    host: h.clone(),
                    message: "its command was still running when a second signal came".to_owned(),
                })
            });
            (h.clone(), r)
        })
        .collect();
    UntilStopped {
        results,
        signal: first,
        unfinished,
    }
}

/// One host's session of [`on_hosts_until_stopped`]: not started once `stopped` (a signal
/// came) holds, its input closed when it comes to hold.
async fn until_stopped<T: Transport>(
    transport: &T,
    host: &str,
    script: &str,
    limit: std::time::Duration,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> Result<RunOutput, TransportError> {
    let not_started = || {
        Err(TransportError::Session {
            host: host.to_owned(),
            message: "not started: a signal came first".to_owned(),
        })
    };
    if *stopped.borrow() {
        return not_started();
    }
    // A signal while it logs in (a slow or silent host): it is not waited for.
    tokio::select! {
        r = transport.connect(host) => r?,
        _ = stopped.wait_for(|s| *s) => return not_started(),
    }
    let (input, input_rx) = tokio::sync::mpsc::unbounded_channel();
    let (lines, _) = tokio::sync::mpsc::unbounded_channel();
    let session = tokio::time::timeout(limit, transport.converse(host, script, input_rx, lines));
    tokio::pin!(session);
    let mut input = Some(input);
    loop {
        tokio::select! {
            r = &mut session => {
                return r.unwrap_or_else(|_| Err(TransportError::Timeout {
                    host: host.to_owned(),
                    after: limit,
                }));
            }
            // The end of its input: the script stops the command.
            _ = stopped.wait_for(|s| *s), if input.is_some() => input = None,
        }
    }
}

/// The last line of `text` that says something, without our `cargo-ship: ` prefix.
pub(crate) fn first_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .replace("cargo-ship: ", "")
}

/// A session's result as a short reason when it did not succeed.
pub(crate) use ship_core::rollback::session_failure as failure;

/// Every host's state, read without taking the lock (one session per host): what
/// `ops::observe` made of it, with what `revisions.log` and the releases' `REVISION` say
/// (`records::read_history`), or why it could not be read.
pub(crate) async fn read_states<T: Transport>(
    transport: &T,
    stage: &Stage,
    hosts: &[String],
) -> Vec<(String, Result<ship_core::Observed, String>)> {
    let layout = layout(&stage.layout);
    let nonce = ship_core::driver::nonce();
    on_hosts(transport, hosts, stage.parallel, |h| {
        format!(
            "{}{}\n",
            ship_core::ops::state_script(&stage.deploy_to, h, None, Some(&nonce)),
            ship_core::records::history_probe()
        )
    })
    .await
    .into_iter()
    .map(|(host, result)| {
        let observed = match (failure(&result), &layout) {
            (Some(why), _) => Err(format!("unreachable: {why}")),
            (None, Err(e)) => Err(e.to_string()),
            (None, Ok(layout)) => {
                let stdout = &result.expect("succeeded").stdout;
                ship_core::ops::observe(*layout, &stage.deploy_to, stdout, &nonce).map(|mut o| {
                    ship_core::records::read_history(&mut o.state, stdout, &nonce);
                    o
                })
            }
        };
        (host, observed)
    })
    .collect()
}

#[cfg(test)]
mod tests {
    /// However many hosts read their artifact at once, the runtime's blocking work is done
    /// by at most [`super::BLOCKING_THREADS`] threads (each one more mapping for every
    /// `ssh` started to copy).
    #[test]
    fn the_runtime_does_blocking_work_on_a_bounded_number_of_threads() {
        let rt = super::runtime().unwrap();
        let threads = rt.block_on(async {
            let reads = (0..64).map(|_| {
                tokio::task::spawn_blocking(|| {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    std::thread::current().id()
                })
            });
            let mut ids = Vec::new();
            for r in reads.collect::<Vec<_>>() {
                ids.push(r.await.unwrap());
            }
            ids.sort_by_key(|id| format!("{id:?}"));
            ids.dedup();
            ids.len()
        });
        assert!(
            (2..=super::BLOCKING_THREADS).contains(&threads),
            "{threads} threads"
        );
    }
}
