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

/// Builds the wheels of `cfg.requirements` (of the project in `root`) into `out`, which is
/// emptied first; with `wheelhouse = false` builds nothing and keys the virtualenv on the
/// requirements alone.
///
/// Wheels are built with `SOURCE_DATE_EPOCH` fixed, so the same sources give the same
/// wheels and the same artifact digest.
pub fn build(root: &Path, cfg: &PythonConfig, out: &Path) -> Result<Wheelhouse, BuildError> {
    let req_path = root.join(&cfg.requirements);
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
    if cfg.requirements.ends_with("pyproject.toml") {
        let dir = req_path.parent().unwrap_or(root);
        cmd.arg(dir);
    } else {
        cmd.arg("-r").arg(&cfg.requirements);
    }
    cmd.current_dir(root)
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
    Ok(keyed(cfg, &requirements, wheels, Some(out.to_owned())))
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
        let index = cfg.index_url.as_deref().unwrap_or("");
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
