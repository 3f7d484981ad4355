//! The `Transport` trait: how the driver reaches a host. ship-ssh implements it over
//! OpenSSH, and a local one for `local` tasks.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

/// What the driver sends into a conversation with a host's script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A line (a newline is added).
    Line(String),
    /// A file's bytes (the artifact).
    File(PathBuf),
}

/// What one session returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOutput {
    /// The exit status; `None` when the command was killed or the connection dropped.
    pub status: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Why a host could not be reached or a session failed.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportError {
    /// The host's key is unknown or has changed: nothing was run.
    #[error(
        "{host}: host key not trusted: {message}; add the key to known_hosts (ssh-keyscan), or pass --accept-new-host-keys to trust a host seen for the first time"
    )]
    HostKey {
        /// The host.
        host: String,
        /// What ssh said.
        message: String,
    },
    /// The connection could not be made.
    #[error("{host}: cannot connect: {message}")]
    Connect {
        /// The host.
        host: String,
        /// What went wrong.
        message: String,
    },
    /// A session failed or the connection dropped during it.
    #[error("{host}: session failed: {message}")]
    Session {
        /// The host.
        host: String,
        /// What went wrong.
        message: String,
    },
    /// A session took longer than allowed.
    #[error("{host}: no answer within {}s", .after.as_secs())]
    Timeout {
        /// The host.
        host: String,
        /// The limit.
        after: Duration,
    },
}

/// A boxed future, so that a [`Transport`] can be a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A way to run scripts on hosts: one connection per host, one session per script. It is
/// used as `&dyn Transport`: a new transport (kubectl exec, a pull agent) is a new
/// implementation, not a change to its callers.
pub trait Transport: Send + Sync {
    /// Opens the connection to `host` (once; later calls may return at once).
    fn connect<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<(), TransportError>>;

    /// Runs `script` with `sh` in one session on `host`, with the file `stdin` (if any)
    /// streamed to its standard input: a conversation with nothing more to say.
    fn run<'a>(
        &'a self,
        host: &'a str,
        script: &'a str,
        stdin: Option<&'a Path>,
    ) -> BoxFuture<'a, Result<RunOutput, TransportError>> {
        Box::pin(async move {
            let (input, rx) = tokio::sync::mpsc::unbounded_channel();
            if let Some(path) = stdin {
                let _ = input.send(Input::File(path.to_owned()));
            }
            drop(input);
            let (lines, _) = tokio::sync::mpsc::unbounded_channel();
            self.converse(host, script, rx, lines).await
        })
    }

    /// Runs `script` in one session on `host` as a conversation: what arrives on `input` is
    /// written to its standard input as it comes (standard input is closed when `input`
    /// closes), and each line it prints is sent on `lines` as soon as it is printed. Ends
    /// when the script ends, with its status, all its output and its standard error.
    fn converse<'a>(
        &'a self,
        host: &'a str,
        script: &'a str,
        input: UnboundedReceiver<Input>,
        lines: UnboundedSender<String>,
    ) -> BoxFuture<'a, Result<RunOutput, TransportError>>;
}

/// Drives one conversation's pipes until the script ends: feeds `input` to `stdin`, sends
/// each line of `stdout` on `lines`. Returns all of stdout and all of stderr. Both
/// transports call it; they differ only in how the process is started.
pub async fn pump<W, R, E>(
    input: UnboundedReceiver<Input>,
    lines: UnboundedSender<String>,
    stdin: W,
    stdout: R,
    mut stderr: E,
) -> (String, String)
where
    W: tokio::io::AsyncWrite + Unpin,
    R: tokio::io::AsyncRead + Unpin,
    E: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    let mut errors = Vec::new();
    let (_, all, _) = tokio::join!(
        feed(input, stdin),
        read_lines(stdout, lines),
        stderr.read_to_end(&mut errors)
    );
    (all, String::from_utf8_lossy(&errors).into_owned())
}

/// Feeds `input` to `stdin` until `input` closes; a write error (the script stopped
/// reading) drops the rest.
pub async fn feed<W: tokio::io::AsyncWrite + Unpin>(
    mut input: UnboundedReceiver<Input>,
    mut stdin: W,
) {
    use tokio::io::AsyncWriteExt;
    let mut broken = false;
    while let Some(item) = input.recv().await {
        if broken {
            continue;
        }
        let written = match item {
            Input::Line(mut line) => {
                line.push('\n');
                stdin.write_all(line.as_bytes()).await
            }
            Input::File(path) => match tokio::fs::File::open(&path).await {
                Ok(mut file) => tokio::io::copy(&mut file, &mut stdin).await.map(|_| ()),
                Err(e) => Err(e),
            },
        };
        broken = written.is_err() || stdin.flush().await.is_err();
    }
    let _ = stdin.shutdown().await;
}

/// Reads `stdout` line by line, sending each line on `lines`; returns everything read.
pub async fn read_lines<R: tokio::io::AsyncRead + Unpin>(
    stdout: R,
    lines: UnboundedSender<String>,
) -> String {
    use tokio::io::AsyncBufReadExt;
    let mut reader = tokio::io::BufReader::new(stdout);
    let mut all = String::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                all.push_str(&line);
                let _ = lines.send(line.trim_end_matches('\n').to_owned());
            }
        }
    }
    all
}
