//! The build half: wheels made once, on the deploying machine, to travel in the artifact.

use crate::config::PythonConfig;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the wheels sit inside each release.
pub const WHEELHOUSE_DIR: &str = ".wheelhouse";

/// What the build made: the key of the virtualenv these wheels give, and the wheels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wheelhouse {
    /// The directory holding the wheels on this machine (empty when `wheelhouse = false`).
    pub dir: Option<PathBuf>,
    /// Each wheel's file name and sha256, sorted by name.
    pub wheels: Vec<(String, String)>,
    /// The virtualenv key (see [`crate::venv_key`]): what `.ship/venvs/<key>-py<version>` is
    /// named after on the hosts.
    pub key: String,
}

/// Why the wheels could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The requirements file is missing or unreadable.
    #[error("[python] requirements = {path:?}: {source}")]
    Requirements {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// `pip wheel` could not be started.
    #[error("could not run `{python} -m pip` on this machine: {source}")]
    Pip {
        /// The interpreter.
        python: String,
        /// Why.
        source: std::io::Error,
    },
    /// `pip wheel` failed: a requirement did not build or could not be found.
    #[error("building the wheels failed (`{command}`):\n{reason}")]
    Wheel {
        /// The command.
        command: String,
        /// pip's own error lines (the package that failed).
        reason: String,
    },
    /// A file of the wheelhouse could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Builds the wheels of `cfg.requirements` (of the project in `tree`: the copy of the
/// commit that ships, for a `git` source) into `out`, which is emptied first; with
/// `wheelhouse = false` builds nothing and keys the virtualenv on the requirements alone.
///
/// pip runs out of tree: on a copy of `tree` in `scratch` (made again each time, removed
/// after), so the project gets no `build/` or `*.egg-info`, a setuptools project in a flat
/// layout does not find `target/` beside its package, and a stale `build/lib` of an
/// earlier build never ends up in a wheel. Wheels are built with `SOURCE_DATE_EPOCH` fixed
/// (not the clock) and `PYTHONHASHSEED=0`, so the same sources give the same wheels and the
/// same artifact digest, wherever and whenever they are built.
pub fn build(
    tree: &Path,
    cfg: &PythonConfig,
    out: &Path,
    scratch: &Path,
) -> Result<Wheelhouse, BuildError> {
    let req_path = tree.join(&cfg.requirements);
    let requirements =
        std::fs::read_to_string(&req_path).map_err(|source| BuildError::Requirements {
            path: cfg.requirements.clone(),
            source,
        })?;
    if !cfg.wheelhouse {
        return Ok(keyed(cfg, &requirements, Vec::new(), None));
    }
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(io(out))?;
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    copy_project(tree, scratch)?;
    let mut cmd = Command::new(&cfg.local_python);
    cmd.args([
        "-m",
        "pip",
        "wheel",
        "--disable-pip-version-check",
        "--no-input",
    ])
    .arg("--wheel-dir")
    .arg(out);
    if let Some(url) = &cfg.index_url {
        cmd.args(["--index-url", url]);
    }
    for url in &cfg.extra_index_url {
        cmd.args(["--extra-index-url", url]);
    }
    if cfg.requirements.ends_with("pyproject.toml") {
        let dir = Path::new(&cfg.requirements)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        cmd.arg(dir);
    } else {
        cmd.arg("-r").arg(&cfg.requirements);
    }
    cmd.current_dir(scratch)
        .env(
            "SOURCE_DATE_EPOCH",
            ship_core::artifact::FIXED_MTIME.to_string(),
        )
        .env("PYTHONHASHSEED", "0");
    // What the error shows is the command as it ran.
    let command = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let output = cmd.output().map_err(|source| BuildError::Pip {
        python: cfg.local_python.clone(),
        source,
    })?;
    if !output.status.success() {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        return Err(BuildError::Wheel {
            command,
            reason: pip_reason(&text),
        });
    }
    let mut wheels = Vec::new();
    for entry in std::fs::read_dir(out).map_err(io(out))? {
        let entry = entry.map_err(io(out))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".whl") {
            let bytes = std::fs::read(entry.path()).map_err(io(&entry.path()))?;
            wheels.push((name, ship_core::sha256_hex(&bytes)));
        }
    }
    std::fs::remove_dir_all(scratch).map_err(io(scratch))?;
    Ok(keyed(cfg, &requirements, wheels, Some(out.to_owned())))
}

/// Copies the project in `tree` to `to` (emptied first) for pip to build in: files, links
/// and modes as they are, without what is not the project's source (`.git`, `target`,
/// what builds and caches leave: `node_modules`, `__pycache__`, `*.egg-info`).
fn copy_project(tree: &Path, to: &Path) -> Result<(), BuildError> {
    if std::fs::symlink_metadata(to).is_ok() {
        std::fs::remove_dir_all(to).map_err(io(to))?;
    }
    std::fs::create_dir_all(to).map_err(io(to))?;
    let skip = |rel: &Path| {
        let top = rel.components().count() == 1;
        rel.file_name().is_some_and(|n| {
            let n = n.to_string_lossy();
            (top && (n == ".git" || n == "target"))
                || n == "node_modules"
                || n == "__pycache__"
                || n.ends_with(".egg-info")
        })
    };
    let walker = walkdir::WalkDir::new(tree)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !skip(e.path().strip_prefix(tree).unwrap_or(e.path())));
    for entry in walker {
        let entry = entry.map_err(|e| BuildError::Io {
            path: tree.to_owned(),
            source: e.into(),
        })?;
        let rel = entry.path().strip_prefix(tree).unwrap_or(entry.path());
        let dest = to.join(rel);
        let ft = entry.file_type();
        if ft.is_dir() {
            std::fs::create_dir_all(&dest).map_err(io(&dest))?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(entry.path()).map_err(io(entry.path()))?;
            #[cfg(unix)]
            std::os::unix::fs::symlink(&target, &dest).map_err(io(&dest))?;
        } else {
            std::fs::copy(entry.path(), &dest).map_err(io(&dest))?;
        }
    }
    Ok(())
}

fn keyed(
    cfg: &PythonConfig,
    requirements: &str,
    mut wheels: Vec<(String, String)>,
    dir: Option<PathBuf>,
) -> Wheelhouse {
    wheels.sort();
    let key = if cfg.wheelhouse {
        let digests: Vec<String> = wheels.iter().map(|(n, d)| format!("{n} {d}")).collect();
        let digests: Vec<&str> = digests.iter().map(String::as_str).collect();
        crate::venv_key(requirements, &digests)
    } else {
        let mut index = cfg.index_url.clone().unwrap_or_default();
        for extra in &cfg.extra_index_url {
            index.push_str(&format!("\nextra {extra}"));
        }
        crate::venv_key(&format!("{requirements}\nindex {index}"), &[])
    };
    Wheelhouse { dir, wheels, key }
}

/// The wheelhouse an artifact already carries (for an artifact promoted from another stage,
/// which is not built again): its `.wheelhouse/*.whl` and the requirements file in it.
pub fn from_files(
    cfg: &PythonConfig,
    files: &std::collections::BTreeMap<String, Vec<u8>>,
) -> Wheelhouse {
    let requirements = files
        .get(&cfg.requirements)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    let prefix = format!("{WHEELHOUSE_DIR}/");
    let wheels = files
        .iter()
        .filter_map(|(path, data)| {
            let name = path.strip_prefix(&prefix)?;
            (name.ends_with(".whl") && !name.contains('/'))
                .then(|| (name.to_owned(), ship_core::sha256_hex(data)))
        })
        .collect();
    keyed(cfg, &requirements, wheels, None)
}

/// What failed, from pip's output: the requirement pip was working on when it failed, the
/// output of the failed build, and pip's `ERROR:` lines (else its last lines).
///
/// ```
/// let out = "Processing ./libs/ok\nProcessing ./libs/broken\n  Preparing metadata: finished with status 'error'\n  ╰─> [1 lines of output]\n      broken: no compiler\n      [end of output]\nerror: metadata-generation-failed\n";
/// let reason = ship_python::wheelhouse::pip_reason(out);
/// assert!(reason.contains("while building ./libs/broken"));
/// assert!(reason.contains("broken: no compiler"));
/// ```
pub fn pip_reason(output: &str) -> String {
    let mut current: Option<&str> = None;
    let mut failed = false;
    let mut picked: Vec<&str> = Vec::new();
    let mut in_block = false;
    for line in output.lines() {
        let t = line.trim();
        if !failed {
            for prefix in ["Processing ", "Collecting ", "Building wheel for "] {
                if let Some(rest) = t.strip_prefix(prefix) {
                    current = Some(rest.split(" (").next().unwrap_or(rest));
                }
            }
        }
        if t.ends_with("status 'error'") || t.starts_with("ERROR") || t.starts_with("error:") {
            failed = true;
        }
        if t.contains("[end of output]") {
            in_block = false;
        } else if in_block && !t.is_empty() {
            picked.push(t);
        } else if t.starts_with("╰─> [") {
            in_block = true;
        } else if t.starts_with("ERROR") || t.starts_with("Failed to build") {
            picked.push(t);
        }
    }
    if picked.is_empty() {
        let all: Vec<&str> = output
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        picked = all[all.len().saturating_sub(10)..].to_vec();
    }
    let mut out = String::new();
    if let (true, Some(req)) = (failed, current) {
        out.push_str(&format!("  while building {req}:\n"));
    }
    out.push_str(
        &picked
            .iter()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    out
}
