//! ship-ssh: cargo ship's transports — [`SshTransport`] to reach hosts over OpenSSH, and
//! [`LocalTransport`] for `local` tasks — implementing ship-core's
//! [`Transport`].
//!
//! [`SshTransport`] opens one connection per host for the whole run (one `ssh -M` master
//! it starts itself, every session a channel on it through the `openssh` crate's native
//! multiplexing) and runs each script in one session with `sh -c`, whatever the remote
//! login shell. The artifact is streamed on that session's standard input. Every
//! connection and session is counted, so a benchmark or a test can say how many sessions
//! each host saw.
//!
//! Every ssh it starts gets its command line from one builder, [`ssh_args`], from the
//! host's [`Connection`] (user, port, identity, options: ship-core's resolved settings).
//! Configuration is read as `ssh` reads it, with cargo ship's defaults last: see
//! [`config_text`]. Jump hosts get a master of their own, shared by every host behind them
//! (one login, one prompt if they ask for one), and the hosts' masters reach their host
//! through it (`ssh -W` on the jump host's master).
//!
//! A master lives as long as the transport: it runs in the foreground as a child of this
//! process, out of reach of a Ctrl-C (the command's to handle), and does not outlive a
//! cargo ship killed with SIGKILL. Without a controlling terminal (CI, a service, a
//! script), the masters are started in a process group of their own, led by a watchdog
//! (`sh` reading a pipe only this process holds) that sends the group SIGTERM when the pipe
//! closes: started with `posix_spawn`, a master costs this process no copy of its page
//! tables (cargo ship's own CPU at 300 hosts: about 0.6 ms a host less). With a terminal,
//! where ssh may ask for a password or a second factor and a process group in the
//! background could not read it, a master stays in cargo ship's group, ignores SIGINT
//! and, on Linux, gets SIGTERM when its parent dies (`PR_SET_PDEATHSIG`; elsewhere a
//! killed cargo ship leaves it to run until its connection drops).
//! [`SshOptions::keep_connections`] asks for the contrary: the master goes to the
//! background (`ssh -f`) and closes itself once idle that long.
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
//!
//! `examples/run_script.rs` runs a script on hosts at once and prints what each said:
//! `cargo run -p ship-ssh --example run_script -- [-F SSH_CONFIG] [HOST]...` (no host: on
//! this machine, with [`LocalTransport`]).
#![warn(missing_docs, unreachable_pub)]

pub use ship_core::Connection;
use ship_core::shell::quote;
use ship_core::{BoxFuture, transport::pump};
use ship_core::{Input, RunOutput, Transport, TransportError};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
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
#[non_exhaustive]
pub enum HostKeys {
    /// cargo ship's default: the key must be in known_hosts already
    /// (`StrictHostKeyChecking yes`), unless an ssh_config says otherwise for the host.
    #[default]
    Strict,
    /// A host seen for the first time is trusted and its key added; a changed key is still
    /// refused (`-o StrictHostKeyChecking=accept-new`, asked for on the command line).
    AcceptNew,
}

/// Settings of the SSH transport.
#[derive(Clone, Debug)]
pub struct SshOptions {
    /// An ssh_config file read before `~/.ssh/config` and `/etc/ssh/ssh_config` (which
    /// still apply to what it does not set).
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
    /// How each host is reached, by its name (as the stage lists it); a host not here is
    /// given to ssh as it is named.
    pub hosts: BTreeMap<String, Connection>,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            config_file: None,
            host_keys: HostKeys::Strict,
            connect_timeout: Duration::from_secs(10),
            session_timeout: Duration::from_secs(30 * 60),
            keep_connections: None,
            hosts: BTreeMap::new(),
        }
    }
}

/// The ssh_config cargo ship gives every ssh it starts (`-F`): the user's configuration
/// first — `config_file` (the stage's `ssh_config`), then `~/.ssh/config`, then
/// `/etc/ssh/ssh_config` — and cargo ship's defaults after them. ssh keeps the first value
/// it reads for each setting, so what the user set deliberately (`BatchMode no` for a
/// bastion that asks for a second factor, `StrictHostKeyChecking`, `ServerAliveInterval`)
/// wins over cargo ship's defaults: `BatchMode yes` (no prompt nobody could answer),
/// `StrictHostKeyChecking yes`, `ServerAliveInterval 15` and the stage's connect timeout.
pub fn config_text(config_file: Option<&Path>, connect_timeout: Duration) -> String {
    let mut text = String::from(
        "# Written by cargo ship: the user's configuration first (ssh keeps the first value\n\
         # it reads for each setting), then cargo ship's defaults.\n",
    );
    if let Some(c) = config_file {
        text.push_str(&format!("Include \"{}\"\n", c.display()));
    }
    text.push_str(
        "Include ~/.ssh/config\nInclude /etc/ssh/ssh_config\nHost *\n  BatchMode yes\n  \
         StrictHostKeyChecking yes\n  ServerAliveInterval 15\n",
    );
    text.push_str(&format!(
        "  ConnectTimeout {}\n",
        connect_timeout.as_secs().max(1)
    ));
    text
}

/// The arguments of every ssh cargo ship starts for `conn` (after `ssh` and before the
/// destination, which is `conn.host`): the configuration ([`config_text`], written to
/// `config`), the host-key choice made on the command line, then the host's own `-l`,
/// `-p`, `-i` (with `IdentitiesOnly=yes`), `-o` options, and the proxy (a jump host's
/// `ProxyCommand`) if any. The one builder of ssh command lines: a master, a jump
/// host's master and the proxy through it all come from here.
pub fn ssh_args(
    conn: &Connection,
    config: &Path,
    host_keys: HostKeys,
    proxy: Option<&str>,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["-F".into(), config.into()];
    let opt = |args: &mut Vec<OsString>, o: String| {
        args.push("-o".into());
        args.push(o.into());
    };
    if host_keys == HostKeys::AcceptNew {
        opt(&mut args, "StrictHostKeyChecking=accept-new".to_owned());
    }
    if let Some(u) = &conn.user {
        args.extend(["-l".into(), u.into()]);
    }
    if let Some(p) = conn.port {
        args.extend(["-p".into(), p.to_string().into()]);
    }
    if let Some(i) = &conn.identity {
        opt(&mut args, "IdentitiesOnly=yes".to_owned());
        args.extend(["-i".into(), i.into()]);
    }
    for (k, v) in &conn.options {
        opt(&mut args, format!("{k}={v}"));
    }
    if let Some(p) = proxy {
        opt(&mut args, format!("ProxyCommand={p}"));
    }
    args
}

/// The `ProxyCommand` that reaches `%h:%p` through the jump host `jump`'s master (its
/// control socket `ctl`): a mux client, no login of its own.
fn proxy_command(jump: &Connection, config: &Path, ctl: &Path, host_keys: HostKeys) -> String {
    // ssh runs it with `exec` itself.
    let mut words: Vec<String> = vec!["ssh".into()];
    let mut args = ssh_args(jump, config, host_keys, None);
    args.extend(
        [
            "-S",
            &ctl.display().to_string(),
            "-o",
            "ControlMaster=no",
            "-o",
            "BatchMode=yes",
            "-W",
        ]
        .map(OsString::from),
    );
    for a in args {
        words.push(quote(&a.to_string_lossy()).replace('%', "%%"));
    }
    words.push("'[%h]:%p'".into());
    words.push(quote(&jump.host).replace('%', "%%"));
    words.join(" ")
}

/// Where kept connections are registered: one file per connection, naming the control
/// socket of its ssh master.
fn kept_dir() -> PathBuf {
    std::env::temp_dir().join(format!("cargo-ship-{}", uid()))
}

/// This process's user id (`getuid`: no `/proc`, which macOS has not).
pub fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// This machine's name (`uname`'s node name), or `None`.
pub fn hostname() -> Option<String> {
    let name = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .trim()
        .to_owned();
    (!name.is_empty()).then_some(name)
}

/// The registry is trusted only if this user owns it and nobody else can enter it.
fn kept_dir_is_ours() -> bool {
    use std::os::unix::fs::MetadataExt;
    let uid = uid();
    std::fs::symlink_metadata(kept_dir())
        .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0)
}

/// Makes the registry (mode 0700) if it is not there; true if it can be trusted.
fn prepare_kept_dir() -> bool {
    use std::os::unix::fs::DirBuilderExt;
    let _ = std::fs::DirBuilder::new().mode(0o700).create(kept_dir());
    kept_dir_is_ours()
}

/// How many connections and sessions a host saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counts {
    /// Connections opened.
    pub connections: usize,
    /// Sessions (commands) run.
    pub sessions: usize,
    /// Connections kept by an earlier command and used again.
    pub reused: usize,
    /// Bytes written to its sessions' standard input (lines, the artifact or a delta
    /// bundle): what a deploy sent it, before ssh's own framing.
    pub sent: u64,
}

/// A session's standard input that counts the bytes written to it.
struct Counted<W> {
    inner: W,
    sent: Arc<std::sync::atomic::AtomicU64>,
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Counted<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &polled {
            self.sent
                .fetch_add(*n as u64, std::sync::atomic::Ordering::Relaxed);
        }
        polled
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One ssh master and the multiplexed session on it.
struct Master {
    session: openssh::Session,
    /// The master, when it runs in the foreground (not kept): stopped on close.
    child: Option<tokio::process::Child>,
    /// Its control socket, log and configuration when kept (its own directory, left for
    /// the next command); otherwise they are in the transport's [`Scratch`], held here.
    dir: Option<tempfile::TempDir>,
    _scratch: Option<Arc<Scratch>>,
    /// The configuration it was started with (a proxy through it uses it too).
    config: PathBuf,
}

impl Master {
    async fn close(mut self, keep: bool) {
        if keep {
            let _ = self.session.detach();
            if let Some(dir) = self.dir.take() {
                let _ = dir.keep();
            }
            return;
        }
        match self.child.take() {
            Some(mut child) => {
                // Its proxy (a jump host's `ssh -W`) sees its pipe close and ends; its
                // socket goes with the directory.
                let _ = child.kill().await;
            }
            None => {
                let _ = self.session.close().await;
            }
        }
    }
}

/// The directory every master of a transport shares when connections are not kept: one
/// directory and one configuration file a command, not a host (each file made and removed
/// costs a file system's inode allocation; on this project's test machine, /tmp being ext4,
/// those of a directory and a configuration per host were a sixth of cargo ship's own CPU
/// at 60 hosts). Each master has its socket `m<n>` and its log `l<n>` in it; it is removed
/// when the transport and the last master are gone.
struct Scratch {
    dir: tempfile::TempDir,
    config: PathBuf,
    next: std::sync::atomic::AtomicUsize,
    /// Without a controlling terminal: the process group the masters join (see
    /// [`Watchdog`]); with one, each master is bound to this process by [`bind_to_parent`].
    watchdog: Option<Watchdog>,
}

/// The leader of the masters' process group when there is no terminal to prompt on: `sh`
/// waiting on a pipe whose other end only this process holds (close-on-exec), which sends
/// its whole group SIGTERM once the pipe closes, whether this process closed the transport
/// or was killed. It ignores SIGHUP, SIGINT and SIGTERM (a SIGTERM to it alone, then a
/// SIGKILL of cargo ship, left the masters running); a SIGKILL of it alone leaves the
/// masters already started unbound, and those started after it bound by the fork path.
/// Each master joins the group as it is spawned (`posix_spawn`'s `POSIX_SPAWN_SETPGROUP`,
/// so no fork of this process: see the crate's docs), and being outside the terminal's
/// foreground group it gets no Ctrl-C.
struct Watchdog {
    pgid: i32,
    /// Held open until the transport and its last master are gone; dropping it is the
    /// signal.
    _pipe: tokio::process::ChildStdin,
    /// Asked before each master joins the group: a watchdog that died (killed by someone)
    /// would leave the masters that join its group unbound. (Dropped, tokio reaps it.)
    child: Mutex<tokio::process::Child>,
}

impl Watchdog {
    /// A watchdog if this process has no controlling `terminal`, and one could be started.
    fn start(terminal: bool) -> Option<Watchdog> {
        if terminal {
            return None;
        }
        let mut child = tokio::process::Command::new("sh")
            // Deaf to the signals a tree or group is stopped with, so that it outlives its
            // masters' users and signals them: only the pipe's end (or SIGKILL) ends it.
            .args(["-c", "trap '' HUP INT TERM; read -r _; kill -s TERM 0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .ok()?;
        let pgid = i32::try_from(child.id()?).ok()?;
        let pipe = child.stdin.take()?;
        Some(Watchdog {
            pgid,
            _pipe: pipe,
            child: Mutex::new(child),
        })
    }

    /// Whether it still runs (else a master is bound to this process the other way).
    fn alive(&self) -> bool {
        matches!(
            self.child.lock().expect("not poisoned").try_wait(),
            Ok(None)
        )
    }
}

/// The transport over OpenSSH: one multiplexed connection per host.
pub struct SshTransport {
    options: SshOptions,
    sessions: tokio::sync::Mutex<BTreeMap<String, Arc<Master>>>,
    /// Jump hosts' masters, by the chain that reaches them: held while one is opened, so
    /// hosts behind one bastion share one login to it.
    jumps: tokio::sync::Mutex<BTreeMap<String, Arc<Master>>>,
    /// Connections replaced because they no longer answered: closed with the others.
    retired: tokio::sync::Mutex<Vec<Arc<Master>>>,
    counts: Mutex<BTreeMap<String, Counts>>,
    /// Logins in progress at once (see [`HANDSHAKES`]).
    handshakes: tokio::sync::Semaphore,
    /// Made with the first master that is not kept.
    scratch: Mutex<Option<Arc<Scratch>>>,
    /// Whether this process has a controlling terminal, where ssh may ask for a password
    /// or a second factor (it asks on `/dev/tty`, whatever stdin is): a login may then
    /// take a person's time, and the masters stay where the terminal can reach them.
    terminal: bool,
}

/// At most this many ssh masters log in at once. Hundreds started together queue their
/// key exchanges on this machine's cores (and, on a fleet of one machine, the hosts'
/// too), so each one's time limit ran out waiting for the others (at 200 hosts on 2 cores:
/// "no answer within 15s"); with a bound, a master's limit counts its own login.
pub const HANDSHAKES: usize = 48;

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

/// Whether a session that could not be opened certainly started nothing on the host: the
/// master's socket is gone or refuses connections (nothing was asked), or the master says
/// the server refused the session. A master that ends after it asked the server to run the
/// command cannot be told apart from one that ended before: that is not retried.
fn never_started(e: &openssh::Error) -> bool {
    use openssh_mux_client_error::Error as Mux;
    match e {
        openssh::Error::SshMux(Mux::RequestFailure(_)) => true,
        openssh::Error::SshMux(Mux::IOError(io)) => matches!(
            io.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
        ),
        _ => false,
    }
}

/// What ssh said when it failed, as a connect or host-key error.
fn connect_error(host: &str, message: String) -> TransportError {
    let key = [
        "Host key verification failed",
        "HOST IDENTIFICATION HAS CHANGED",
        "No ED25519 host key is known",
        "host key is known",
    ]
    .iter()
    .any(|m| message.contains(m));
    if key {
        TransportError::HostKey {
            host: host.to_owned(),
            message,
        }
    } else {
        TransportError::Connect {
            host: host.to_owned(),
            message,
        }
    }
}

/// Makes the master a child that cannot outlive this process (Linux), and leaves SIGINT
/// (a Ctrl-C at the terminal reaches the whole foreground group) to cargo ship.
///
/// The crate's one `unsafe` (the workspace forbids it elsewhere): `pre_exec` runs between
/// fork and exec, and calls only async-signal-safe functions.
#[allow(unsafe_code)]
fn bind_to_parent(cmd: &mut tokio::process::Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls (signal, prctl, getppid, _exit) between fork
    // and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            #[cfg(target_os = "linux")]
            {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent died before prctl: nobody would stop this master.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
            }
            let _ = parent;
            Ok(())
        });
    }
}

/// Raises this process's soft limit of open files to its hard limit (once). A host's
/// session holds about six descriptors here (the master's control connection, the
/// session's three pipes, ...): 300 hosts need about 1,900, past the usual soft limit
/// of 1,024, while the hard limit is commonly 4,096 or more (`ulimit -Hn`).
pub fn raise_fd_limit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        if limit.current < limit.maximum {
            let _ = setrlimit(
                Resource::Nofile,
                rustix::process::Rlimit {
                    current: limit.maximum,
                    maximum: limit.maximum,
                },
            );
        }
    });
}

impl SshTransport {
    /// A transport with these settings; nothing is opened yet.
    pub fn new(options: SshOptions) -> SshTransport {
        raise_fd_limit();
        SshTransport {
            options,
            sessions: tokio::sync::Mutex::new(BTreeMap::new()),
            jumps: tokio::sync::Mutex::new(BTreeMap::new()),
            retired: tokio::sync::Mutex::new(Vec::new()),
            counts: Mutex::new(BTreeMap::new()),
            handshakes: tokio::sync::Semaphore::new(HANDSHAKES),
            scratch: Mutex::new(None),
            terminal: std::fs::File::open("/dev/tty").is_ok(),
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

    /// How `host` is reached.
    fn connection(&self, host: &str) -> Connection {
        self.options
            .hosts
            .get(host)
            .cloned()
            .unwrap_or_else(|| Connection {
                host: host.to_owned(),
                ..Connection::default()
            })
    }

    async fn session(&self, host: &str) -> Result<Arc<Master>, TransportError> {
        let cached = self.sessions.lock().await.get(host).cloned();
        if let Some(s) = cached {
            // A connection that dropped (its master is gone) is opened again, once: recovery
            // after a lost connection can still reach the host. The check is local.
            if s.session.check().await.is_ok() {
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
    /// once idle that long): the hosts' first, then the jump hosts' they went through.
    pub async fn close(&self) {
        let keep = self.options.keep_connections.is_some();
        // The scratch directory goes with the last master closed below.
        self.scratch.lock().expect("not poisoned").take();
        let retired = std::mem::take(&mut *self.retired.lock().await);
        let hosts = std::mem::take(&mut *self.sessions.lock().await).into_values();
        let jumps = std::mem::take(&mut *self.jumps.lock().await)
            .into_values()
            .rev();
        for (m, keep) in retired
            .into_iter()
            .map(|m| (m, false))
            .chain(hosts.map(|m| (m, keep)))
            .chain(jumps.map(|m| (m, keep)))
        {
            if let Ok(m) = Arc::try_unwrap(m) {
                let keep = keep && m.child.is_none();
                m.close(keep).await;
            }
        }
    }

    /// The registry entry of a kept connection.
    fn kept_entry(&self, conn: &Connection, proxy: Option<&str>) -> PathBuf {
        let key = format!(
            "{}\n{conn:?}\n{proxy:?}",
            self.options
                .config_file
                .as_ref()
                .map(|c| c.display().to_string())
                .unwrap_or_default(),
        );
        kept_dir().join(&ship_core::sha256_hex(key.as_bytes())[..24])
    }

    /// A connection kept by an earlier command, if its master still answers.
    async fn kept(&self, conn: &Connection, proxy: Option<&str>) -> Option<Master> {
        self.options.keep_connections?;
        if !kept_dir_is_ours() {
            return None;
        }
        let entry = self.kept_entry(conn, proxy);
        let ctl = PathBuf::from(std::fs::read_to_string(&entry).ok()?.trim());
        if !ctl.exists() {
            let _ = std::fs::remove_file(&entry);
            return None;
        }
        let config = ctl.with_file_name("config");
        let session = openssh::Session::resume_mux(ctl.into_boxed_path(), None);
        if session.check().await.is_ok() {
            Some(Master {
                session,
                child: None,
                dir: None,
                _scratch: None,
                config,
            })
        } else {
            let _ = std::fs::remove_file(&entry);
            let _ = session.detach();
            None
        }
    }

    /// Starts an ssh master for `conn` (through `proxy`, a jump host's, if any) and waits
    /// until it is logged in; errors are `host`'s.
    async fn launch(
        &self,
        host: &str,
        conn: &Connection,
        proxy: Option<&str>,
    ) -> Result<Master, TransportError> {
        let io = |what: &str, e: std::io::Error| TransportError::Connect {
            host: host.to_owned(),
            message: format!("{what}: {e}"),
        };
        // Held until this master is logged in (or gave up): see HANDSHAKES.
        let _login = self
            .handshakes
            .acquire()
            .await
            .map_err(|e| io("a login slot", std::io::Error::other(e)))?;
        let keep = self.options.keep_connections.filter(|_| prepare_kept_dir());
        let (dir, scratch, config, ctl, log) = if keep.is_some() {
            let dir = tempfile::Builder::new()
                .prefix(".ship-ssh-")
                .tempdir_in(kept_dir())
                .map_err(|e| io("a directory for the ssh master", e))?;
            let config = dir.path().join("config");
            self.write_config(&config)
                .map_err(|e| io("the ssh configuration", e))?;
            let (ctl, log) = (dir.path().join("master"), dir.path().join("log"));
            (Some(dir), None, config, ctl, log)
        } else {
            let scratch = self
                .scratch()
                .map_err(|e| io("a directory for the ssh masters", e))?;
            let n = scratch
                .next
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (ctl, log) = (
                scratch.dir.path().join(format!("m{n}")),
                scratch.dir.path().join(format!("l{n}")),
            );
            (
                None,
                Some(scratch.clone()),
                scratch.config.clone(),
                ctl,
                log,
            )
        };
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.arg("-E")
            .arg(&log)
            .arg("-S")
            .arg(&ctl)
            .args(["-M", "-N"]);
        match keep {
            Some(k) => {
                cmd.arg("-f")
                    .arg("-o")
                    .arg(format!("ControlPersist={}s", k.as_secs().max(1)));
            }
            None => {
                // In the foreground, bound to this process: no persistence of its own.
                cmd.args(["-o", "ControlPersist=no"]);
                let watchdog = scratch.as_ref().and_then(|s| s.watchdog.as_ref());
                match watchdog.filter(|w| w.alive()) {
                    Some(w) => {
                        cmd.process_group(w.pgid);
                    }
                    None => bind_to_parent(&mut cmd),
                }
                cmd.kill_on_drop(true);
            }
        }
        cmd.args(ssh_args(conn, &config, self.options.host_keys, proxy))
            .arg(&conn.host)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().map_err(|e| io("ssh could not start", e))?;
        let failed = |log: &Path| {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let text = text.trim();
            connect_error(
                host,
                if text.is_empty() {
                    "ssh exited before it was connected".to_owned()
                } else {
                    text.to_owned()
                },
            )
        };
        // A person may be answering a prompt (a bastion's second factor) on this terminal.
        let limit = if self.terminal {
            Duration::from_secs(300)
        } else {
            self.options.connect_timeout + Duration::from_secs(5)
        };
        let ready = async {
            if keep.is_some() {
                // `ssh -f` goes to the background once logged in.
                let status = child.wait().await.map_err(|e| io("ssh", e))?;
                return if status.success() {
                    Ok(())
                } else {
                    Err(failed(&log))
                };
            }
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    return Err(failed(&log));
                }
                if ctl.exists()
                    && openssh::Session::resume_mux(ctl.clone().into_boxed_path(), None)
                        .check()
                        .await
                        .is_ok()
                {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        match tokio::time::timeout(limit, ready).await {
            Err(_) => {
                let _ = child.kill().await;
                return Err(TransportError::Timeout {
                    host: host.to_owned(),
                    after: limit,
                });
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(())) => {}
        }
        Ok(Master {
            session: openssh::Session::resume_mux(ctl.into_boxed_path(), None),
            child: keep.is_none().then_some(child),
            dir,
            _scratch: scratch,
            config,
        })
    }

    /// Writes the configuration every master of this transport starts with.
    fn write_config(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(
            path,
            config_text(
                self.options.config_file.as_deref(),
                self.options.connect_timeout,
            ),
        )
    }

    /// The transport's [`Scratch`], made (with its configuration) the first time.
    fn scratch(&self) -> std::io::Result<Arc<Scratch>> {
        let mut held = self.scratch.lock().expect("not poisoned");
        if let Some(s) = held.as_ref() {
            return Ok(s.clone());
        }
        let dir = tempfile::Builder::new()
            .prefix(".ship-ssh-")
            .tempdir_in(std::env::temp_dir())?;
        let config = dir.path().join("config");
        self.write_config(&config)?;
        let s = Arc::new(Scratch {
            dir,
            config,
            next: std::sync::atomic::AtomicUsize::new(0),
            watchdog: Watchdog::start(self.terminal),
        });
        *held = Some(s.clone());
        Ok(s)
    }

    /// A kept master for `conn`, or a new one (registered if connections are kept).
    async fn master(
        &self,
        host: &str,
        conn: &Connection,
        proxy: Option<&str>,
    ) -> Result<(Master, bool), TransportError> {
        if let Some(m) = self.kept(conn, proxy).await {
            return Ok((m, true));
        }
        let m = self.launch(host, conn, proxy).await?;
        if self.options.keep_connections.is_some() && kept_dir_is_ours() {
            let entry = self.kept_entry(conn, proxy);
            let _ = std::fs::write(&entry, m.session.control_socket().display().to_string());
        }
        Ok((m, false))
    }

    /// The `ProxyCommand` through `conn`'s jump hosts, opening (once per transport) a
    /// master on each in turn, each reached through the one before.
    async fn proxy(&self, host: &str, conn: &Connection) -> Result<Option<String>, TransportError> {
        if conn.jump.is_empty() {
            return Ok(None);
        }
        let mut jumps = self.jumps.lock().await;
        let mut proxy: Option<String> = None;
        let mut chain = String::new();
        for j in &conn.jump {
            chain.push_str(&format!("{j} > "));
            let jc = Connection::to_jump(j);
            let alive = match jumps.get(&chain) {
                Some(m) => m.session.check().await.is_ok(),
                None => false,
            };
            if !alive {
                if let Some(old) = jumps.remove(&chain) {
                    self.retired.lock().await.push(old);
                }
                let (m, _) =
                    self.master(host, &jc, proxy.as_deref())
                        .await
                        .map_err(|e| match e {
                            TransportError::Connect { host, message } => TransportError::Connect {
                                host,
                                message: format!("jump host {j}: {message}"),
                            },
                            TransportError::HostKey { host, message } => TransportError::HostKey {
                                host,
                                message: format!("jump host {j}: {message}"),
                            },
                            other => other,
                        })?;
                jumps.insert(chain.clone(), Arc::new(m));
            }
            let m = &jumps[&chain];
            proxy = Some(proxy_command(
                &jc,
                &m.config,
                m.session.control_socket(),
                self.options.host_keys,
            ));
        }
        Ok(proxy)
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
        let conn = self.connection(host);
        let proxy = self.proxy(host, &conn).await?;
        let (master, reused) = self.master(host, &conn, proxy.as_deref()).await?;
        self.count(host, |c| {
            if reused {
                c.reused += 1
            } else {
                c.connections += 1
            }
        });
        let mut sessions = self.sessions.lock().await;
        if sessions.contains_key(host) {
            // Another caller connected meanwhile: keep one connection.
            drop(sessions);
            master.close(reused).await;
            return Ok(());
        }
        sessions.insert(host.to_owned(), Arc::new(master));
        Ok(())
    }

    async fn converse_inner(
        &self,
        host: &str,
        script: &str,
        input: UnboundedReceiver<Input>,
        lines: UnboundedSender<String>,
    ) -> Result<RunOutput, TransportError> {
        let err = |message: String| TransportError::Session {
            host: host.to_owned(),
            message,
        };
        let mut master = self.session(host).await?;
        let mut again = true;
        let mut child = loop {
            let mut cmd = master.session.raw_command(remote_command(script));
            cmd.stdin(openssh::Stdio::piped())
                .stdout(openssh::Stdio::piped())
                .stderr(openssh::Stdio::piped());
            let e = match cmd.spawn().await {
                Ok(child) => break child,
                Err(e) => e,
            };
            drop(cmd);
            if !std::mem::take(&mut again) || !never_started(&e) {
                return Err(err(describe(&e)));
            }
            // The master answered its check but opened no session: its connection ended
            // meanwhile (a kept master whose host went away a moment ago). Nothing ran (see
            // `never_started`): it is stopped (a kept one would be found again) and a new
            // one connects, once.
            drop(master);
            if let Some(old) = self.sessions.lock().await.remove(host) {
                match Arc::try_unwrap(old) {
                    Ok(old) => old.close(false).await,
                    Err(old) => self.retired.lock().await.push(old),
                }
            }
            master = self.session(host).await?;
        };
        self.count(host, |c| c.sessions += 1);
        let stdin = child.stdin().take().expect("piped");
        let stdout = child.stdout().take().expect("piped");
        let stderr = child.stderr().take().expect("piped");
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stdin = Counted {
            inner: stdin,
            sent: sent.clone(),
        };
        let (stdout, stderr) = pump(input, lines, stdin, stdout, stderr).await;
        let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
        self.count(host, |c| c.sent += sent);
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_transport_raises_the_open_files_limit_to_the_hard_limit() {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let hard = getrlimit(Resource::Nofile).maximum;
        let low = Some(hard.map_or(256, |h| h.min(256)));
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: low,
                maximum: hard,
            },
        )
        .expect("lowering the soft limit is always allowed");
        let _ = super::SshTransport::new(super::SshOptions::default());
        let after = getrlimit(Resource::Nofile);
        assert_eq!(after.current, hard.or(low));
    }
}
