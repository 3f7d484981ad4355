//! Finding the project: its root, its `Ship.toml`, its Cargo metadata, its version, and
//! where plans and artifacts are kept.

use crate::CliError;
use std::path::{Path, PathBuf};

/// A project found from a directory.
#[derive(Clone, Debug)]
pub struct Project {
    /// The directory holding `Ship.toml`: for a Cargo project the nearest one from the
    /// current directory up to the workspace root (a member may have its own).
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
    /// The Cargo package whose directory is `root`, if one is.
    pub package: Option<Package>,
    /// The Cargo package the current directory (or `--manifest-path`) is in, with its
    /// directory: where `init` writes a Ship.toml.
    pub here: Option<(PathBuf, Package)>,
}

/// A Cargo package, as `init` names the app and its binary after it.
#[derive(Clone, Debug)]
pub struct Package {
    /// Its name.
    pub name: String,
    /// Its binary targets, in Cargo.toml's order.
    pub bins: Vec<String>,
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
            let workspace_root: PathBuf = meta.workspace_root.clone().into();
            let manifest_dir = manifest.parent().unwrap_or(&manifest).to_owned();
            let package_in = |dir: &Path| {
                meta.workspace_packages()
                    .into_iter()
                    .find(|p| p.manifest_path.parent().map(|d| d.as_std_path()) == Some(dir))
            };
            // The nearest Ship.toml from here up to the workspace root wins: a member of a
            // workspace may have its own. Without one, it goes beside the Cargo.toml of the
            // member we are in (where `init` writes it), else at the workspace root.
            let from = if manifest_path.is_some() {
                &manifest_dir
            } else {
                cwd
            };
            let root = from
                .ancestors()
                .take_while(|d| d.starts_with(&workspace_root))
                .find(|d| d.join("Ship.toml").is_file())
                .map(Path::to_owned)
                .or_else(|| package_in(&manifest_dir).map(|_| manifest_dir.clone()))
                .unwrap_or_else(|| workspace_root.clone());
            let package = package_in(&root);
            let ws_ship = meta.workspace_metadata.get("ship").cloned();
            let pkg_ship = package.and_then(|p| p.metadata.get("ship").cloned());
            let cargo_metadata = match (ws_ship, pkg_ship) {
                (Some(v), _) => Some((workspace_root.join("Cargo.toml"), v)),
                (None, Some(v)) => Some((root.join("Cargo.toml"), v)),
                (None, None) => None,
            };
            let root_package = meta.root_package();
            let cargo_version = package
                .or(root_package)
                .map(|p| p.version.to_string())
                .or_else(|| {
                    // A virtual workspace: the version of its only member, if it has one.
                    match meta.workspace_packages().as_slice() {
                        [only] => Some(only.version.to_string()),
                        _ => None,
                    }
                });
            // A member's own plans, artifacts and logs apart from the workspace's:
            // `<target>/ship/members/<its path in the workspace>`.
            let mut ship_dir = PathBuf::from(meta.target_directory.clone()).join("ship");
            if let Ok(rel) = root.strip_prefix(&workspace_root)
                && !rel.as_os_str().is_empty()
            {
                ship_dir = ship_dir.join("members").join(rel);
            }
            let info = |p: &cargo_metadata::Package| Package {
                name: p.name.to_string(),
                bins: p
                    .targets
                    .iter()
                    .filter(|t| t.is_bin())
                    .map(|t| t.name.clone())
                    .collect(),
            };
            let here = package_in(&manifest_dir).map(|p| (manifest_dir.clone(), info(p)));
            let package = package.map(info);
            return Ok(Project {
                ship_toml: root.join("Ship.toml"),
                ship_dir,
                root,
                cargo_metadata,
                cargo_version,
                cargo: cargo.unwrap_or("cargo").to_owned(),
                package,
                here,
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
            package: None,
            here: None,
        })
    }

    /// The version of the application: Cargo.toml's, else package.json's, else
    /// pyproject.toml's (`[project] version`, or with `dynamic = ["version"]` where its
    /// build backend reads it: see [`python_version`]). For a `git` source the files are
    /// read from the commit that ships, not the working tree.
    pub fn detect_version(&self, source: &ship_core::SourceConfig) -> Option<String> {
        if let Some(v) = &self.cargo_version {
            return Some(v.clone());
        }
        let read = |path: &str| -> Option<String> {
            match source {
                ship_core::SourceConfig::Git(rev) => {
                    let out = std::process::Command::new("git")
                        .args(["show", &format!("{rev}:./{path}")])
                        .current_dir(&self.root)
                        .stderr(std::process::Stdio::null())
                        .output()
                        .ok()?;
                    out.status
                        .success()
                        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
                }
                _ => std::fs::read_to_string(self.root.join(path)).ok(),
            }
        };
        if let Some(text) = read("package.json")
            && let Ok(json) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(v) = json.get("version").and_then(|v| v.as_str())
        {
            return Some(v.to_owned());
        }
        python_version(&read)
    }

    /// `path` shown relative to the project root when it is inside it.
    pub fn show(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

/// The version of a Python project from its pyproject.toml, read with `read` (a path of
/// the project → its text): `[project] version`, or, when `dynamic` lists `version`, where
/// the build backend takes it: setuptools' `[tool.setuptools.dynamic] version` (`attr =
/// "pkg.__version__"` or `file = "VERSION"`), hatch's `[tool.hatch.version] path`, else
/// the `__version__` of the package named after the project (flit's rule), in the flat or
/// the `src/` layout. A version made from git tags (setuptools-scm, hatch-vcs) is not
/// read: set `version` or pass `--version`.
pub(crate) fn python_version(read: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let doc = read("pyproject.toml")?.parse::<toml::Table>().ok()?;
    let project = doc.get("project")?;
    if let Some(v) = project.get("version").and_then(|v| v.as_str()) {
        return Some(v.to_owned());
    }
    let dynamic = project.get("dynamic")?.as_array()?;
    if !dynamic.iter().any(|d| d.as_str() == Some("version")) {
        return None;
    }
    let tool = doc.get("tool");
    let setuptools = tool
        .and_then(|t| t.get("setuptools"))
        .and_then(|t| t.get("dynamic"))
        .and_then(|t| t.get("version"));
    let in_module = |module: &str, var: &str| {
        let path = module.replace('.', "/");
        [
            format!("{path}.py"),
            format!("{path}/__init__.py"),
            format!("src/{path}.py"),
            format!("src/{path}/__init__.py"),
        ]
        .iter()
        .find_map(|f| assigned(&read(f)?, var))
    };
    if let Some(spec) = setuptools {
        if let Some(attr) = spec.get("attr").and_then(|a| a.as_str()) {
            let (module, var) = attr.rsplit_once('.')?;
            return in_module(module, var);
        }
        let file = match spec.get("file")? {
            toml::Value::String(f) => f.clone(),
            toml::Value::Array(files) => files.first()?.as_str()?.to_owned(),
            _ => return None,
        };
        return read(&file)
            .map(|t| t.trim().to_owned())
            .filter(|v| !v.is_empty());
    }
    if let Some(path) = tool
        .and_then(|t| t.get("hatch"))
        .and_then(|t| t.get("version"))
        .and_then(|t| t.get("path"))
        .and_then(|p| p.as_str())
    {
        return assigned(&read(path)?, "__version__");
    }
    let name = project.get("name")?.as_str()?.replace(['-', '.'], "_");
    in_module(&name, "__version__")
}

/// The string `var` is set to in Python `code` (`__version__ = "1.2.3"`), at the start of
/// a line.
fn assigned(code: &str, var: &str) -> Option<String> {
    code.lines().find_map(|line| {
        let rest = line.strip_prefix(var)?.trim_start();
        let rest = rest
            .strip_prefix(':')
            .map(|r| r.split_once('=').map_or("", |(_, v)| v))
            .or_else(|| rest.strip_prefix('='))?
            .trim();
        let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
        let value = &rest[1..];
        Some(value[..value.find(quote)?].to_owned())
    })
}
