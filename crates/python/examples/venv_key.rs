//! The virtualenv key of a Python project, as cargo ship computes it for an artifact, with
//! ship-python alone: `cargo run -p ship-python --example venv_key -- [PROJECT_DIR]`.
//!
//! The key is over `requirements.txt` and the wheels in `.wheelhouse/` (their names and
//! sha256): each host keeps the virtualenv in `.ship/venvs/<key>-py<version>` and a deploy
//! with the same key reuses it, running no pip. Without a directory, a small project held in
//! memory, then the same with one requirement changed.

use figment::providers::{Format, Toml};
use ship_python::{PythonConfig, WHEELHOUSE_DIR, wheelhouse};
use std::collections::BTreeMap;
use std::path::Path;

/// The files of the project the key is made from: the requirements and the wheels.
fn project_files(dir: &Path, cfg: &PythonConfig) -> std::io::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    files.insert(
        cfg.requirements.clone(),
        std::fs::read(dir.join(&cfg.requirements))?,
    );
    if let Ok(entries) = std::fs::read_dir(dir.join(WHEELHOUSE_DIR)) {
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".whl") {
                files.insert(
                    format!("{WHEELHOUSE_DIR}/{name}"),
                    std::fs::read(entry.path())?,
                );
            }
        }
    }
    Ok(files)
}

fn show(label: &str, cfg: &PythonConfig, files: &BTreeMap<String, Vec<u8>>) {
    let house = wheelhouse::from_files(cfg, files);
    println!("{label}");
    for (wheel, digest) in &house.wheels {
        println!("  wheel {wheel} sha256 {digest}");
    }
    println!("  key {}", house.key);
    println!("  on each host: .ship/venvs/{}-py<version>", house.key);
}

fn main() {
    // `[python]` as Ship.toml would hold it, with every default.
    let table: figment::value::Value = figment::Figment::from(Toml::string("")).extract().unwrap();
    let cfg = PythonConfig::from_value(&table).unwrap();

    if let Some(dir) = std::env::args().nth(1) {
        let files = project_files(Path::new(&dir), &cfg).unwrap_or_else(|e| {
            eprintln!("{dir}: {e}");
            std::process::exit(1);
        });
        show(&dir, &cfg, &files);
        return;
    }
    let mut files = BTreeMap::new();
    files.insert(
        cfg.requirements.clone(),
        b"flask==3.0.3\ngunicorn==23.0.0\n".to_vec(),
    );
    files.insert(
        format!("{WHEELHOUSE_DIR}/flask-3.0.3-py3-none-any.whl"),
        b"the wheel's bytes".to_vec(),
    );
    show("a project with flask 3.0.3", &cfg, &files);
    files.insert(
        cfg.requirements.clone(),
        b"flask==3.1.0\ngunicorn==23.0.0\n".to_vec(),
    );
    files.remove(&format!("{WHEELHOUSE_DIR}/flask-3.0.3-py3-none-any.whl"));
    files.insert(
        format!("{WHEELHOUSE_DIR}/flask-3.1.0-py3-none-any.whl"),
        b"the new wheel's bytes".to_vec(),
    );
    show(
        "the same with flask 3.1.0: another key, a new virtualenv",
        &cfg,
        &files,
    );
}
