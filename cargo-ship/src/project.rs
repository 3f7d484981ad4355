//! Finding the project: its root, its `Ship.toml`, its Cargo metadata, its version, and
//! where plans and artifacts are kept.

use crate::CliError;
use std::path::{Path, PathBuf};

/// A project found from a directory.
#[derive(Clone, Debug)]
pub struct Project {
    /// The directory holding `Ship.toml` (the Cargo workspace root for a Cargo project).
    pub root: PathBuf,
    /// `<root>/Ship.toml`.
    pub ship_toml: PathBuf,
    /// Where plans and artifacts go: `<target>/ship`.
    pub ship_dir: PathBuf,
    /// The `ship` table of `[workspace.metadata]` (or the root package's metadata), with
    /// the manifest it came from.
    pub cargo_metadata: Option<(PathBuf, serde_json::Value)>,
    /// The root package's version, for the `version` layout.
    pub cargo_version: Option<String>,
    /// The cargo to build with (`$CARGO` when cargo runs us, else `cargo`).
    pub cargo: String,
}

fn ancestors_with(start: &Path, file: &str) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|d| d.join(file).is_file())
        .map(Path::to_owned)
}

impl Project {
    /// Finds the project from `cwd`, or from `manifest_path` when given: a Cargo workspace
    /// (through `cargo metadata`) if there is one, else the nearest directory with a
    /// `Ship.toml`, else `cwd` itself (and `Ship.toml` is then reported missing).
    pub fn find(
        cwd: &Path,
        manifest_path: Option<&Path>,
        cargo: Option<&str>,
    ) -> Result<Project, CliError> {
        let manifest = match manifest_path {
            Some(m) => {
                let m = cwd.join(m);
                if !m.is_file() {
                    return Err(CliError::Project(format!(
                        "--manifest-path {}: no such file",
                        m.display()
                    )));
                }
                Some(m)
            }
            None => ancestors_with(cwd, "Cargo.toml").map(|d| d.join("Cargo.toml")),
        };
        // A Ship.toml nearer than any Cargo.toml makes a non-Cargo project inside a
        // Cargo one (a Python app in a monorepo): it wins.
        let ship_dir = ancestors_with(cwd, "Ship.toml");
        let nearer = match (&ship_dir, &manifest) {
            (Some(s), Some(m)) if manifest_path.is_none() => {
                let cargo_dir = m.parent().unwrap_or(m);
                s != cargo_dir && s.starts_with(cargo_dir)
            }
            _ => false,
        };
        if let (Some(manifest), false) = (manifest, nearer) {
            let mut cmd = cargo_metadata::MetadataCommand::new();
            cmd.no_deps().manifest_path(&manifest);
            if let Some(cargo) = cargo {
                cmd.cargo_path(cargo);
            }
            let meta = cmd.exec().map_err(|e| {
                CliError::Project(format!(
                    "cannot read the Cargo project at {}: {e}",
                    manifest.display()
                ))
            })?;
            let root: PathBuf = meta.workspace_root.clone().into();
            let root_package = meta.root_package();
            let ws_ship = meta.workspace_metadata.get("ship").cloned();
            let pkg_ship = root_package.and_then(|p| p.metadata.get("ship").cloned());
            let cargo_metadata = match (ws_ship, pkg_ship) {
                (Some(v), _) | (None, Some(v)) => Some((root.join("Cargo.toml"), v)),
                (None, None) => None,
            };
            let cargo_version = root_package.map(|p| p.version.to_string()).or_else(|| {
                // A virtual workspace: the version of its only member, if it has one.
                match meta.workspace_packages().as_slice() {
                    [only] => Some(only.version.to_string()),
                    _ => None,
                }
            });
            return Ok(Project {
                ship_toml: root.join("Ship.toml"),
                ship_dir: PathBuf::from(meta.target_directory.clone()).join("ship"),
                root,
                cargo_metadata,
                cargo_version,
                cargo: cargo.unwrap_or("cargo").to_owned(),
            });
        }
        let root = ship_dir.unwrap_or_else(|| cwd.to_owned());
        Ok(Project {
            ship_toml: root.join("Ship.toml"),
            ship_dir: root.join("target").join("ship"),
            root,
            cargo_metadata: None,
            cargo_version: None,
            cargo: cargo.unwrap_or("cargo").to_owned(),
        })
    }

    /// The version of the application: Cargo.toml's, else package.json's, else
    /// pyproject.toml's `[project] version`.
    pub fn detect_version(&self) -> Option<String> {
        if let Some(v) = &self.cargo_version {
            return Some(v.clone());
        }
        if let Ok(text) = std::fs::read_to_string(self.root.join("package.json"))
            && let Ok(json) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(v) = json.get("version").and_then(|v| v.as_str())
        {
            return Some(v.to_owned());
        }
        if let Ok(text) = std::fs::read_to_string(self.root.join("pyproject.toml"))
            && let Ok(doc) = text.parse::<toml::Table>()
            && let Some(v) = doc
                .get("project")
                .and_then(|p| p.get("version"))
                .and_then(|v| v.as_str())
        {
            return Some(v.to_owned());
        }
        None
    }

    /// `path` shown relative to the project root when it is inside it.
    pub fn show(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}
