//! ship-ssh: cargo ship's transports — [`SshTransport`] to reach hosts over OpenSSH, and
//! [`LocalTransport`] for `local` tasks — implementing ship-core's
//! [`Transport`](ship_core::Transport).
//!
//! [`SshTransport`] opens one connection per host for the whole run (the `openssh` crate's
//! native multiplexing: one `ssh` master, every session a channel on it) and runs each
//! script in one session with `sh -c`, whatever the remote login shell. The artifact is
//! streamed on that session's standard input. Host keys are checked strictly unless the
//! user asks otherwise: an unknown or changed key is an error before any command runs.
//! `~/.ssh/config` applies as it does for `ssh` (or the file given as
//! [`SshOptions::config_file`]). Every connection and session is counted, so a benchmark
//! or a test can say how many sessions each host saw.
//!
//! # Example
//!
//! Scripts run with POSIX `sh`; here on this machine with [`LocalTransport`] (the same
//! call goes to a host with [`SshTransport`]):
//!
//! ```
//! use ship_core::Transport;
//! use ship_ssh::LocalTransport;
//!
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! let local = LocalTransport::new(std::env::temp_dir());
//! let out = rt.block_on(local.run("local", "set -eu\necho \"hello $((6 * 7))\"", None)).unwrap();
//! assert_eq!(out.status, Some(0));
//! assert_eq!(out.stdout, "hello 42\n");
//! assert_eq!(ship_ssh::remote_command("echo hi"), "exec sh -c 'echo hi'");
//! ```
#![warn(missing_docs, unreachable_pub)]

use ship_core::shell::quote;
use ship_core::transport::{BoxFuture, pump};
use ship_core::{Input, RunOutput, Transport, TransportError};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

/// The remote command that runs `script` with POSIX `sh`, whatever the login shell is.
///
/// sshd hands the command to the user's login shell as one string; quoting the script as a
/// single word makes that shell pass it to `sh -c` untouched.
pub fn remote_command(script: &str) -> String {
    format!("exec sh -c {}", quote(script))
}

/// How host keys are checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HostKeys {
    /// The key must be in known_hosts already (`StrictHostKeyChecking=yes`).
    #[default]
    Strict,
    /// A host seen for the first time is trusted and its key added; a changed key is still
    /// refused (`StrictHostKeyChecking=accept-new`).
    AcceptNew,
}

/// Settings of the SSH transport.
#[derive(Clone, Debug)]
pub struct SshOptions {
    /// An ssh_config file to use instead of `~/.ssh/config`.
    pub config_file: Option<PathBuf>,
    /// Host-key checking.
    pub host_keys: HostKeys,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long one session (one script) may take.
    pub session_timeout: Duration,
    /// Keep each connection open this long after the last use (ssh's ControlPersist), for
    /// the next command to reuse; `None` closes them when done.
    pub keep_connections: Option<Duration>,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            config_file: None,
            host_keys: HostKeys::Strict,
            connect_timeout: Duration::from_secs(10),
            session_timeout: Duration::from_secs(30 * 60),
            keep_connections: None,
        }
    }
}

/// Where kept connections are registered: one file per host and ssh_config, naming the
/// control socket of its ssh master.
fn kept_dir() -> PathBuf {
    let uid = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(0);
    std::env::temp_dir().join(format!("cargo-ship-{uid}"))
}

/// The registry is trusted only if this user owns it and nobody else can enter it.
fn kept_dir_is_ours() -> bool {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX);
    std::fs::symlink_metadata(kept_dir())
        .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0)
}

/// Makes the registry (mode 0700) if it is not there; true if it can be trusted.
fn prepare_kept_dir() -> bool {
    use std::os::unix::fs::DirBuilderExt;
    let _ = std::fs::DirBuilder::new().mode(0o700).create(kept_dir());
    kept_dir_is_ours()
}

fn kept_entry(config: Option<&PathBuf>, host: &str) -> PathBuf {
    let key = format!(
        "{}\n{host}",
        config.map(|c| c.display().to_string()).unwrap_or_default()
    );
    kept_dir().join(&ship_core::sha256_hex(key.as_bytes())[..24])
}

/// How many connections and sessions a host saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Connections opened.
    pub connections: usize,
    /// Sessions (commands) run.
    pub sessions: usize,
    /// Connections kept by an earlier command and used again.
    pub reused: usize,
}

/// The transport over OpenSSH: one multiplexed connection per host.
pub struct SshTransport {
    options: SshOptions,
    sessions: tokio::sync::Mutex<BTreeMap<String, Arc<openssh::Session>>>,
    /// Connections replaced because they no longer answered: closed with the others.
    retired: tokio::sync::Mutex<Vec<Arc<openssh::Session>>>,
    counts: Mutex<BTreeMap<String, Counts>>,
}

fn describe(e: &openssh::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !more.is_empty() && !text.contains(&more) {
            text.push_str(": ");
            text.push_str(more.trim());
        }
        source = s.source();
    }
    text
}

impl SshTransport {
    /// A transport with these settings; nothing is opened yet.
    pub fn new(options: SshOptions) -> SshTransport {
        SshTransport {
            options,
            sessions: tokio::sync::Mutex::new(BTreeMap::new()),
            retired: tokio::sync::Mutex::new(Vec::new()),
            counts: Mutex::new(BTreeMap::new()),
        }
    }

    /// Connections and sessions per host so far.
    pub fn counts(&self) -> BTreeMap<String, Counts> {
        self.counts.lock().expect("not poisoned").clone()
    }

    fn count(&self, host: &str, f: impl FnOnce(&mut Counts)) {
        f(self
            .counts
            .lock()
            .expect("not poisoned")
            .entry(host.to_owned())
            .or_default());
    }

    async fn session(&self, host: &str) -> Result<Arc<openssh::Session>, TransportError> {
        let cached = self.sessions.lock().await.get(host).cloned();
        if let Some(s) = cached {
            // A connection that dropped (its master is gone) is opened again, once: recovery
            // after a lost connection can still reach the host. The check is local.
            if s.check().await.is_ok() {
                return Ok(s);
            }
            // Its master may still run (a slow check): close it with the others.
            if let Some(old) = self.sessions.lock().await.remove(host) {
                self.retired.lock().await.push(old);
            }
        }
        self.connect(host).await?;
        self.sessions
            .lock()
            .await
            .get(host)
            .cloned()
            .ok_or_else(|| TransportError::Connect {
                host: host.to_owned(),
                message: "the connection was closed".to_owned(),
            })
    }

    /// Closes every connection (or, with `keep_connections`, leaves each to close itself
    /// once idle that long).
    pub async fn close(&self) {
        for s in std::mem::take(&mut *self.retired.lock().await) {
            if let Ok(s) = Arc::try_unwrap(s) {
                let _ = s.close().await;
            }
        }
        let sessions = std::mem::take(&mut *self.sessions.lock().await);
        for (_, s) in sessions {
            if let Ok(s) = Arc::try_unwrap(s) {
                if self.options.keep_connections.is_some() {
                    let _ = s.detach();
                } else {
                    let _ = s.close().await;
                }
            }
        }
    }

    /// A connection kept by an earlier command, if its master still answers.
    async fn kept(&self, host: &str) -> Option<openssh::Session> {
        self.options.keep_connections?;
        if !kept_dir_is_ours() {
            return None;
        }
        let entry = kept_entry(self.options.config_file.as_ref(), host);
        let ctl = std::fs::read_to_string(&entry).ok()?;
        let ctl = PathBuf::from(ctl.trim());
        if !ctl.exists() {
            let _ = std::fs::remove_file(&entry);
            return None;
        }
        let session = openssh::Session::resume_mux(ctl.into_boxed_path(), None);
        if session.check().await.is_ok() {
            Some(session)
        } else {
            let _ = std::fs::remove_file(&entry);
            let _ = session.detach();
            None
        }
    }
}

impl Transport for SshTransport {
    fn connect<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(self.connect_inner(host))
    }

    /// A conversation has no time limit of its own: its caller times each part of it (the
    /// deploy machine arms `command_timeout` for each segment).
    fn converse<'a>(
        &'a self,
        host: &'a str,
        script: &'a str,
        input: UnboundedReceiver<Input>,
        lines: UnboundedSender<String>,
    ) -> BoxFuture<'a, Result<RunOutput, TransportError>> {
        Box::pin(self.converse_inner(host, script, input, lines))
    }

    /// A one-part script is bounded by the session timeout.
    fn run<'a>(
        &'a self,
        host: &'a str,
        script: &'a str,
        stdin: Option<&'a std::path::Path>,
    ) -> BoxFuture<'a, Result<RunOutput, TransportError>> {
        Box::pin(async move {
            let (input, lines) = ship_core::transport::one_shot(stdin);
            let work = self.converse_inner(host, script, input, lines);
            match tokio::time::timeout(self.options.session_timeout, work).await {
                Ok(result) => result,
                Err(_) => Err(TransportError::Timeout {
                    host: host.to_owned(),
                    after: self.options.session_timeout,
                }),
            }
        })
    }
}

impl SshTransport {
    async fn connect_inner(&self, host: &str) -> Result<(), TransportError> {
        // The map is locked only to look and to insert: hosts connect in parallel.
        if self.sessions.lock().await.contains_key(host) {
            return Ok(());
        }
        if let Some(session) = self.kept(host).await {
            self.count(host, |c| c.reused += 1);
            let mut sessions = self.sessions.lock().await;
            sessions.entry(host.to_owned()).or_insert(Arc::new(session));
            return Ok(());
        }
        let mut builder = openssh::SessionBuilder::default();
        if let Some(keep) = self.options.keep_connections.filter(|_| prepare_kept_dir()) {
            let secs = std::num::NonZeroUsize::new(keep.as_secs().max(1) as usize)
                .expect("at least one second");
            builder
                .control_persist(openssh::ControlPersist::IdleFor(secs))
                .control_directory(kept_dir());
        } else {
            // A master outlives its last session by a minute at most, even when cargo ship
            // is killed (SIGKILL) and cannot close it.
            let secs = std::num::NonZeroUsize::new(60).expect("not zero");
            builder
                .control_persist(openssh::ControlPersist::IdleFor(secs))
                .control_directory(std::env::temp_dir());
        }
        builder
            .known_hosts_check(match self.options.host_keys {
                HostKeys::Strict => openssh::KnownHosts::Strict,
                HostKeys::AcceptNew => openssh::KnownHosts::Add,
            })
            .connect_timeout(self.options.connect_timeout)
            .server_alive_interval(Duration::from_secs(15));
        if let Some(config) = &self.options.config_file {
            builder.config_file(config);
        }
        let limit = self.options.connect_timeout + Duration::from_secs(5);
        let session = match tokio::time::timeout(limit, builder.connect_mux(host)).await {
            Err(_) => {
                return Err(TransportError::Timeout {
                    host: host.to_owned(),
                    after: limit,
                });
            }
            Ok(Err(e)) => {
                let message = describe(&e);
                let key = [
                    "Host key verification failed",
                    "HOST IDENTIFICATION HAS CHANGED",
                    "No ED25519 host key is known",
                    "host key is known",
                ]
                .iter()
                .any(|m| message.contains(m));
                return Err(if key {
                    TransportError::HostKey {
                        host: host.to_owned(),
                        message,
                    }
                } else {
                    TransportError::Connect {
                        host: host.to_owned(),
                        message,
                    }
                });
            }
            Ok(Ok(s)) => s,
        };
        self.count(host, |c| c.connections += 1);
        if self.options.keep_connections.is_some() && kept_dir_is_ours() {
            let entry = kept_entry(self.options.config_file.as_ref(), host);
            let _ = std::fs::write(&entry, session.control_socket().display().to_string());
        }
        let mut sessions = self.sessions.lock().await;
        if sessions.contains_key(host) {
            // Another caller connected meanwhile: keep one connection.
            drop(sessions);
            let _ = session.close().await;
            return Ok(());
        }
        sessions.insert(host.to_owned(), Arc::new(session));
        Ok(())
    }

    async fn converse_inner(
        &self,
        host: &str,
        script: &str,
        input: UnboundedReceiver<Input>,
        lines: UnboundedSender<String>,
    ) -> Result<RunOutput, TransportError> {
        let session = self.session(host).await?;
        self.count(host, |c| c.sessions += 1);
        let err = |message: String| TransportError::Session {
            host: host.to_owned(),
            message,
        };
        let mut cmd = session.raw_command(remote_command(script));
        cmd.stdin(openssh::Stdio::piped())
            .stdout(openssh::Stdio::piped())
            .stderr(openssh::Stdio::piped());
        let mut child = cmd.spawn().await.map_err(|e| err(describe(&e)))?;
        let stdin = child.stdin().take().expect("piped");
        let stdout = child.stdout().take().expect("piped");
        let stderr = child.stderr().take().expect("piped");
        let (stdout, stderr) = pump(input, lines, stdin, stdout, stderr).await;
        let status = child.wait().await.map_err(|e| err(describe(&e)))?;
        Ok(RunOutput {
            status: status.code(),
            stdout,
            stderr,
        })
    }
}

/// Runs scripts on this machine with `sh`, in one directory: for `local` tasks.
#[derive(Clone, Debug)]
pub struct LocalTransport {
    dir: PathBuf,
}

impl LocalTransport {
    /// Scripts run in `dir` (the project's root).
    pub fn new(dir: impl Into<PathBuf>) -> LocalTransport {
        LocalTransport { dir: dir.into() }
    }
}

impl Transport for LocalTransport {
    fn connect<'a>(&'a self, _host: &'a str) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async { Ok(()) })
    }

    fn converse<'a>(
        &'a self,
        host: &'a str,
        script: &'a str,
        input: UnboundedReceiver<Input>,
        lines: UnboundedSender<String>,
    ) -> BoxFuture<'a, Result<RunOutput, TransportError>> {
        Box::pin(self.converse_inner(host, script, input, lines))
    }
}

impl LocalTransport {
    async fn converse_inner(
        &self,
        host: &str,
        script: &str,
        input: UnboundedReceiver<Input>,
        lines: UnboundedSender<String>,
    ) -> Result<RunOutput, TransportError> {
        let err = |e: std::io::Error| TransportError::Session {
            host: host.to_owned(),
            message: e.to_string(),
        };
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(&self.dir)
            // In a process group of its own: a step cut at its time limit (its future
            // dropped) is stopped with everything it started (`npm run build`'s children).
            .process_group(0)
            .kill_on_drop(true)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(err)?;
        let group = GroupGuard(child.id());
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let (stdout, stderr) = pump(input, lines, stdin, stdout, stderr).await;
        let status = child.wait().await.map_err(err)?;
        std::mem::forget(group);
        Ok(RunOutput {
            status: status.code(),
            stdout,
            stderr,
        })
    }
}

/// Kills a local script's whole process group when dropped before the script ended (its
/// conversation was abandoned: a time limit, a stop).
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = std::process::Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}
