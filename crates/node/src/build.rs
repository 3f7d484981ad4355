//! The build half: run on the deploying machine, before the artifact is packed.

use crate::config::{Install, NodeConfig};
use std::path::{Path, PathBuf};

/// What the build needs to know about the project: its build commands and lock file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Prepared {
    /// The commands to run here, in order.
    pub commands: Vec<String>,
    /// The node_modules key (see [`crate::modules_key`] without the Node version: the hosts
    /// add their Node major), when the hosts install.
    pub key: Option<String>,
}

/// Why the Node build cannot go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No lock file: `npm ci` and the hosts' installs would not be reproducible.
    #[error(
        "{} has no package-lock.json: a deploy must install exactly what was tested. \
         Create it with `npm install` (or `npm install --package-lock-only`) and commit it",
        .0.display()
    )]
    NoLockFile(PathBuf),
    /// package.json or the lock file could not be read.
    #[error("{}: {message}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// The build commands and the node_modules key for the project in `root`.
///
/// Needs `package-lock.json` whenever `npm ci` runs here or the hosts install.
pub fn prepare(root: &Path, cfg: &NodeConfig) -> Result<Prepared, BuildError> {
    let package_json = root.join("package.json");
    let lock_path = root.join("package-lock.json");
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| BuildError::Read {
            path: path.to_owned(),
            message: e.to_string(),
        })
    };
    let commands = match &cfg.build {
        Some(commands) => commands.clone(),
        None => {
            let text = read(&package_json)?;
            let json: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| BuildError::Read {
                    path: package_json.clone(),
                    message: format!("not valid JSON: {e}"),
                })?;
            let mut c = vec!["npm ci --no-audit --no-fund".to_owned()];
            if json["scripts"]["build"].is_string() {
                c.push("npm run build".to_owned());
            }
            c
        }
    };
    let runs_ci = commands.iter().any(|c| c.contains("npm ci"));
    if (runs_ci || cfg.install == Install::Production) && !lock_path.exists() {
        return Err(BuildError::NoLockFile(root.to_owned()));
    }
    let key = key(root, cfg)?;
    Ok(Prepared { commands, key })
}

/// The node_modules key of the project in `root` (from its `package-lock.json`), when the
/// hosts install.
pub fn key(root: &Path, cfg: &NodeConfig) -> Result<Option<String>, BuildError> {
    match cfg.install {
        Install::None => Ok(None),
        Install::Production => {
            let path = root.join("package-lock.json");
            let text = std::fs::read_to_string(&path).map_err(|e| BuildError::Read {
                path: path.clone(),
                message: e.to_string(),
            })?;
            Ok(Some(crate::lock_key(&text)))
        }
    }
}
