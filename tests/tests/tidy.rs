//! House rules, checked as plain tests: every module says what it is for, and the crates
//! depend on each other in the direction ARCHITECTURE.md draws.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_starts_with_a_doc_comment() {
    let mut files = Vec::new();
    for dir in ["crates", "cargo-ship/src", "tests/src", "tests/tests"] {
        rust_files(&root().join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let missing: Vec<_> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a //! doc comment: {missing:?}"
    );
}

fn dependencies(manifest: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join(manifest)).unwrap();
    let mut deps = Vec::new();
    let mut in_deps = false;
    for line in text.lines() {
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps
            && let Some((name, _)) = line.split_once(['.', ' ', '='])
            && (name.starts_with("ship-") || name == "cargo-ship")
        {
            deps.push(name.to_owned());
        }
    }
    deps
}

#[test]
fn crates_depend_in_one_direction() {
    assert_eq!(dependencies("crates/core/Cargo.toml"), Vec::<String>::new());
    for leaf in [
        "crates/layouts",
        "crates/ssh",
        "crates/python",
        "crates/node",
    ] {
        assert_eq!(
            dependencies(&format!("{leaf}/Cargo.toml")),
            ["ship-core"],
            "{leaf} uses ship-core only"
        );
    }
    let core = std::fs::read_to_string(root().join("crates/core/Cargo.toml")).unwrap();
    assert!(!core.contains("openssh"), "ship-core knows no SSH");
    let layouts = std::fs::read_to_string(root().join("crates/layouts/Cargo.toml")).unwrap();
    for io in ["openssh", "tokio"] {
        assert!(!layouts.contains(io), "layouts never depend on {io}");
    }
}
