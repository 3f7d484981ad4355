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
    /// The first `len` bytes of a file, which it must have: the bytes a host was told to
    /// expect (the artifact, with its size and sum on the line before). A file shorter than
    /// that (changed since) ends the input there, so the script reading it sees its end
    /// instead of waiting for bytes that will not come.
    Exact(PathBuf, u64),
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
            let (input, lines) = one_shot(stdin);
            self.converse(host, script, input, lines).await
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

/// The input and line channels of a conversation with nothing more to say: the file
/// `stdin` (if any), then the end of input; lines printed go nowhere.
pub fn one_shot(stdin: Option<&Path>) -> (UnboundedReceiver<Input>, UnboundedSender<String>) {
    let (input, rx) = tokio::sync::mpsc::unbounded_channel();
    if let Some(path) = stdin {
        let _ = input.send(Input::File(path.to_owned()));
    }
    let (lines, _) = tokio::sync::mpsc::unbounded_channel();
    (rx, lines)
}

/// Drives one conversation's pipes until the script ends: feeds `input` to `stdin`, sends
/// each line of `stdout` on `lines`. Returns all of stdout and all of stderr once both
/// have ended (the script is over), whether or not `input` has: a caller may hold its
/// input open for as long as the script runs (`cargo ship run` closes it to stop the
/// command), and what it has not sent by then has no reader. Both transports call it; they
/// differ only in how the process is started.
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
    let reading = async { tokio::join!(read_lines(stdout, lines), read_tail(&mut stderr)) };
    let mut reading = std::pin::pin!(reading);
    let mut feeding = std::pin::pin!(feed(input, stdin));
    let mut fed = false;
    loop {
        tokio::select! {
            () = &mut feeding, if !fed => fed = true,
            (all, errors) = &mut reading => return (all, errors),
        }
    }
}

/// How much of a file [`feed`] reads at a time.
const FILE_CHUNK: usize = 64 << 10;

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
                // Read in large pieces: each read of a tokio file is a trip to a blocking
                // thread, and `copy`'s own 8 KiB would make 150 of them for a 1.2 MB artifact.
                Ok(file) => {
                    let mut file = tokio::io::BufReader::with_capacity(FILE_CHUNK, file);
                    tokio::io::copy_buf(&mut file, &mut stdin).await.map(|_| ())
                }
                Err(e) => Err(e),
            },
            Input::Exact(path, len) => match tokio::fs::File::open(&path).await {
                Ok(file) => {
                    use tokio::io::AsyncReadExt;
                    let file = tokio::io::BufReader::with_capacity(FILE_CHUNK, file);
                    match tokio::io::copy_buf(&mut file.take(len), &mut stdin).await {
                        Ok(n) if n == len => Ok(()),
                        Ok(n) => Err(std::io::Error::other(format!(
                            "{}: {n} bytes, not the {len} announced",
                            path.display()
                        ))),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            },
        };
        broken = written.is_err() || stdin.flush().await.is_err();
    }
    let _ = stdin.shutdown().await;
}

/// How much of a session's standard output, and of its standard error, is kept (the end of
/// it): a host that prints without end does not grow cargo ship's memory.
pub const KEPT_OUTPUT: usize = 1 << 20;

/// The longest line sent on as one: a longer one is cut into pieces of this size.
pub const LONGEST_LINE: usize = 64 << 10;

/// The last [`KEPT_OUTPUT`] bytes of a stream, and how many came before them.
#[derive(Default)]
struct Tail {
    text: Vec<u8>,
    dropped: usize,
}

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        self.text.extend_from_slice(bytes);
        if self.text.len() > 2 * KEPT_OUTPUT {
            let cut = self.text.len() - KEPT_OUTPUT;
            self.text.drain(..cut);
            self.dropped += cut;
        }
    }

    fn into_string(mut self) -> String {
        if self.text.len() > KEPT_OUTPUT {
            let cut = self.text.len() - KEPT_OUTPUT;
            self.text.drain(..cut);
            self.dropped += cut;
        }
        let text = String::from_utf8_lossy(&self.text).into_owned();
        if self.dropped == 0 {
            text
        } else {
            format!(
                "[cargo ship: the first {} bytes of this output were not kept]\n{text}",
                self.dropped
            )
        }
    }
}

/// Reads `stream` to its end, keeping its last [`KEPT_OUTPUT`] bytes.
pub async fn read_tail<R: tokio::io::AsyncRead + Unpin>(mut stream: R) -> String {
    use tokio::io::AsyncReadExt;
    let mut tail = Tail::default();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => tail.push(&chunk[..n]),
        }
    }
    tail.into_string()
}

/// Reads `stdout` line by line, sending each line on `lines` (a line longer than
/// [`LONGEST_LINE`] in pieces); returns the last [`KEPT_OUTPUT`] bytes read.
pub async fn read_lines<R: tokio::io::AsyncRead + Unpin>(
    mut stdout: R,
    lines: UnboundedSender<String>,
) -> String {
    use tokio::io::AsyncReadExt;
    let mut tail = Tail::default();
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let send = |bytes: &[u8]| {
        let line = String::from_utf8_lossy(bytes);
        let _ = lines.send(line.trim_end_matches('\n').to_owned());
    };
    loop {
        let n = match stdout.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        tail.push(&chunk[..n]);
        pending.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        while let Some(at) = pending[start..].iter().position(|b| *b == b'\n') {
            send(&pending[start..start + at + 1]);
            start += at + 1;
        }
        pending.drain(..start);
        while pending.len() >= LONGEST_LINE {
            send(&pending[..LONGEST_LINE]);
            pending.drain(..LONGEST_LINE);
        }
    }
    if !pending.is_empty() {
        send(&pending);
    }
    tail.into_string()
}

#[cfg(test)]
mod feed_tests {
    use super::*;

    /// A script that has ended (its output closed) ends the conversation, though its
    /// caller still holds the input open (`cargo ship run` does until the command ends).
    #[tokio::test]
    async fn a_script_that_ended_ends_the_conversation_while_its_input_is_open() {
        let (input, rx) = tokio::sync::mpsc::unbounded_channel();
        let (lines, mut said) = tokio::sync::mpsc::unbounded_channel();
        let (stdin, _host_reads) = tokio::io::duplex(64);
        let out = &b"one\ntwo\n"[..];
        let err = &b"warned\n"[..];
        let pumped = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            pump(rx, lines, stdin, out, err),
        )
        .await
        .expect("the conversation ended with the script's output, not with its input");
        assert_eq!(pumped, ("one\ntwo\n".to_owned(), "warned\n".to_owned()));
        assert_eq!(said.recv().await.as_deref(), Some("one"));
        drop(input);
    }

    /// A file sent as `Exact` that is shorter than announced (it changed since it was
    /// measured) ends the input at its end: the host reading the announced bytes sees
    /// the end of its input, not a wait; the lines after it are not sent.
    #[tokio::test]
    async fn a_file_shorter_than_announced_ends_the_input() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("artifact");
        std::fs::write(&file, vec![7u8; 100_000]).unwrap();
        let feed_it = |len: u64| {
            let file = file.clone();
            async move {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                tx.send(Input::Line("zst header".to_owned())).unwrap();
                tx.send(Input::Exact(file, len)).unwrap();
                tx.send(Input::Line("after".to_owned())).unwrap();
                drop(tx);
                let mut out = Vec::new();
                feed(rx, &mut out).await;
                out
            }
        };
        let whole = feed_it(100_000).await;
        assert_eq!(
            whole.len(),
            "zst header\n".len() + 100_000 + "after\n".len()
        );
        let part = feed_it(60_000).await;
        assert_eq!(part.len(), "zst header\n".len() + 60_000 + "after\n".len());
        let short = feed_it(150_000).await;
        assert_eq!(
            short.len(),
            "zst header\n".len() + 100_000,
            "nothing after the file"
        );
    }
}
