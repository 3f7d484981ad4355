//! Errors at the binary's edge: one enum, a readable report, stable exit codes.

use ship_core::artifact::ArtifactError;
use ship_core::load::ConfigError;
use ship_core::planner::PlanError;
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
    /// A flag's value is wrong.
    #[error("{0}")]
    Usage(String),
    /// The project could not be found or read.
    #[error("{0}")]
    Project(String),
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
pub fn exit_code(e: &CliError) -> i32 {
    match e {
        CliError::Config(_) | CliError::Plan(_) | CliError::Usage(_) | CliError::Project(_) => 2,
        CliError::Artifact(_) | CliError::Io { .. } => 1,
    }
}

pub(crate) fn print(e: &CliError, color: bool, out: &mut dyn Write) {
    let prefix = if color {
        "\x1b[1;31merror\x1b[0m"
    } else {
        "error"
    };
    let _ = writeln!(out, "{prefix}: {e}");
}
