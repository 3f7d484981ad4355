//! Errors at the binary's edge: one enum, a readable report, stable exit codes.

use ship_core::ArtifactError;
use ship_core::ConfigError;
use ship_core::Diagnostic;
use ship_core::PlanError;
use std::io::Write;

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No plan can be made from the configuration (e.g. a dependency cycle).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The artifact could not be built.
    #[error("cannot build the artifact: {0}")]
    Artifact(#[from] ArtifactError),
    /// An adapter's build work failed (wheels, npm): nothing was sent to any host.
    #[error("cannot build the artifact: {0}")]
    Build(String),
    /// A flag's value is wrong.
    #[error("{0}")]
    Usage(String),
    /// A flag's value is wrong, said with a did-you-mean (`--roles wbe`).
    #[error("{0}")]
    UsageHint(Diagnostic),
    /// The project could not be found or read.
    #[error("{0}")]
    Project(String),
    /// The artifact could not be put in, or signed from, the stage's `artifact_store`:
    /// nothing was done on any host.
    #[error("artifact_store: {0}")]
    Store(String),
    /// A deploy failed; every host is back on what it had (see the summary printed before).
    #[error("{0}")]
    DeployFailed(String),
    /// A deploy failed and some host could not be put back.
    #[error("{0}")]
    HostsUnknown(String),
    /// A command on the hosts (rollback, check, run, unlock) failed on some host.
    #[error("{0}")]
    Remote(String),
    /// A deploy was stopped by a signal, every host put back; or a user's command (`run`,
    /// `task`, maintenance's `before`/`after`), stopped on the hosts too.
    #[error("{message}")]
    Interrupted {
        /// 130 for SIGINT, 143 for SIGTERM.
        code: i32,
        /// What happened.
        message: String,
    },
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// The exit code of an error: 2 for usage and configuration errors, 1 when work failed.
///
/// | code | meaning |
/// |---|---|
/// | 0 | success |
/// | 1 | the work failed: a build command, the artifact, a file |
/// | 2 | usage or configuration error: nothing was done |
/// | 3 | a deploy or a command failed on a host; every host is as it was (a deploy put back) |
/// | 4 | a deploy failed and a host could not be put back: its state is unknown |
/// | 130, 143 | a deploy was interrupted by SIGINT or SIGTERM, hosts put back; or a command on the hosts was stopped there |
pub fn exit_code(e: &CliError) -> i32 {
    match e {
        CliError::Config(_)
        | CliError::Plan(_)
        | CliError::Usage(_)
        | CliError::UsageHint(_)
        | CliError::Project(_) => 2,
        CliError::Artifact(_) | CliError::Build(_) | CliError::Store(_) | CliError::Io { .. } => 1,
        CliError::DeployFailed(_) | CliError::Remote(_) => 3,
        CliError::HostsUnknown(_) => 4,
        CliError::Interrupted { code, .. } => *code,
    }
}

/// Writes `e` as rustc writes an error: a configuration error with its file's line and a
/// caret under the key or value, and a did-you-mean; every error through the same renderer.
/// `color` is the one switch of its styles (the caller decides it from `--color`); paths
/// under `cwd` are shown relative to it.
pub(crate) fn print(e: &CliError, color: bool, cwd: &std::path::Path, out: &mut dyn Write) {
    let diagnostic = match e {
        CliError::Config(config) => config.diagnostic(),
        CliError::UsageHint(d) => d.clone(),
        other => Diagnostic::new(other.to_string()),
    };
    let _ = write!(out, "{}", diagnostic.relative_to(cwd).render(color));
}
