//! House rules, checked as plain tests: every module says what it is for, the crates
//! depend on each other in the direction ARCHITECTURE.md draws, and ship-core's code names
//! no adapter.

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

/// The lines of `text` that are code: `//` comments (and doc comments) left out.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, line)| {
        let code = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        (!code.trim().is_empty()).then_some((i + 1, code))
    })
}

/// What would name an adapter in ship-core's code.
const ADAPTER_WORDS: &[&str] = &["\"python\"", "\"node\"", "django", "npm", "pip "];

fn adapter_words_in(text: &str) -> Vec<String> {
    code_lines(text)
        .flat_map(|(n, code)| {
            ADAPTER_WORDS
                .iter()
                .filter(move |w| code.to_ascii_lowercase().contains(*w))
                .map(move |w| format!("line {n}: {w}"))
        })
        .collect()
}

#[test]
fn the_adapter_check_sees_a_name_in_code_only() {
    assert!(adapter_words_in("/// adapter tables such as [python], `django.migrate`\n").is_empty());
    assert!(adapter_words_in("let x = 1; // npm ci\n").is_empty());
    assert_eq!(
        adapter_words_in("let a = 1;\nfor n in [\"python\", \"node\"] {}\n"),
        ["line 2: \"python\"", "line 2: \"node\""]
    );
    assert_eq!(adapter_words_in("run(\"npm ci\");\n"), ["line 1: npm"]);
}

#[test]
fn ship_core_names_no_adapter() {
    let mut files = Vec::new();
    rust_files(&root().join("crates/core/src"), &mut files);
    assert!(files.len() > 10, "found only {} files", files.len());
    let found: Vec<String> = files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let name = f.strip_prefix(root()).unwrap().display().to_string();
            adapter_words_in(&text)
                .into_iter()
                .map(move |hit| format!("{name} {hit}"))
        })
        .collect();
    assert!(
        found.is_empty(),
        "ship-core's code names an adapter (it belongs in the adapter's crate, behind \
         ship_core::adapter::Adapter): {found:#?}"
    );
}
