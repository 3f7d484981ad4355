//! The `Transport` trait: how the executor reaches a host. ship-ssh implements it over
//! OpenSSH, and a local one for `local` tasks; tests of the executor use a recording one.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

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

/// A way to run scripts on hosts: one connection per host, one session per script.
pub trait Transport: Send + Sync {
    /// Opens the connection to `host` (once; later calls may return at once).
    fn connect(&self, host: &str) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Runs `script` with `sh` in one session on `host`, with the file `stdin` (if any)
    /// streamed to its standard input.
    fn run(
        &self,
        host: &str,
        script: &str,
        stdin: Option<&Path>,
    ) -> impl Future<Output = Result<RunOutput, TransportError>> + Send;
}
