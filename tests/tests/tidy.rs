//! House rules, checked as plain tests: every module says what it is for, the crates
//! depend on each other in the direction ARCHITECTURE.md draws, and only ship-layouts knows
//! a layout by name.
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

/// Whether `text` holds an expression that is a layout's name: a `.layout` field read as
/// a whole (`stage.layout`, `plan.layout`, as is or `.name()`, `.as_str()`,
/// `.to_string()`) or a layout's `name()`.
fn names_a_layout(text: &str) -> bool {
    let whole = |rest: &str| {
        rest.is_empty()
            || rest.starts_with([' ', ',', ')', ';', '{', '}', '='])
            || [".name()", ".as_str()", ".to_string()"]
                .iter()
                .any(|m| rest.starts_with(m))
    };
    text.match_indices(".layout")
        .any(|(i, m)| whole(&text[i + m.len()..]))
        || text.contains("layout.name()")
}

/// The layout-name decisions on one line of code: a `match`/`matches!` on a layout's
/// name, a comparison with one, or a registered name written next to the word layout.
fn decides_by_layout_name(line: &str, names: &[&str]) -> Option<&'static str> {
    let code = line.trim_start();
    if code.starts_with("//") {
        return None;
    }
    for (keyword, end) in [("match ", " {"), ("matches!(", ",")] {
        if let Some(i) = code.find(keyword) {
            let rest = &code[i + keyword.len()..];
            let scrutinee = rest.split(end).next().unwrap_or(rest);
            // The scrutinee itself is a name (not a call that merely takes a layout).
            // The scrutinee itself is a name, or a tuple holding one (not a call that
            // merely takes a layout).
            let scrutinee = scrutinee.trim();
            let parts: Vec<&str> = match scrutinee.strip_prefix('(') {
                Some(inner) => inner.trim_end_matches(')').split(',').collect(),
                None => vec![scrutinee],
            };
            let is_name = parts.iter().any(|p| {
                let p = p.trim().trim_start_matches('&');
                [
                    ".layout",
                    ".layout.name()",
                    ".layout.as_str()",
                    "layout.name()",
                ]
                .iter()
                .any(|end| p.ends_with(end))
            });
            if is_name && names_a_layout(scrutinee) {
                return Some("matches on a layout's name");
            }
        }
    }
    if (code.contains("==") || code.contains("!=")) && names_a_layout(code) {
        return Some("compares a layout's name");
    }
    if code.to_ascii_lowercase().contains("layout")
        && names.iter().any(|n| code.contains(&format!("\"{n}\"")))
    {
        return Some("names a layout");
    }
    None
}

/// Lines allowed to name a layout: the configuration's default and the example stage.
const NAMED_ON_PURPOSE: &[(&str, &str)] = &[
    (
        "crates/core/src/config.rs",
        "(\"layout\", Value::from(\"timestamp\")),",
    ),
    (
        "crates/core/src/stage.rs",
        "layout: LayoutName::from(\"timestamp\"),",
    ),
];

/// What `decides_by_layout_name` finds in these files, as `path:line: why: text`.
fn layout_decisions(files: &[PathBuf], names: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let Some(why) = decides_by_layout_name(line, names) else {
                continue;
            };
            if NAMED_ON_PURPOSE.contains(&(rel.as_str(), line.trim())) {
                continue;
            }
            found.push(format!("{rel}:{}: {why}: {}", n + 1, line.trim()));
        }
    }
    found
}

/// Issue #15: a new layout is one file in crates/layouts and one line in its registry.
/// Outside crates/layouts no code knows a layout by name: it asks the `Layout` trait.
#[test]
fn only_ship_layouts_knows_a_layout_by_name() {
    let layouts_dir = root().join("crates/layouts");
    let outside = |dirs: &[&str]| {
        let mut files = Vec::new();
        for dir in dirs {
            rust_files(&root().join(dir), &mut files);
        }
        files.retain(|f| !f.starts_with(&layouts_dir));
        files
    };

    // The closed enum core had, by name: nowhere, tests and benches included.
    let old_enum = concat!("Layout", "Kind");
    let this_file = root().join("tests/tests/tidy.rs");
    let all = outside(&["crates", "cargo-ship", "tests"]);
    assert!(all.len() > 20, "found only {} files", all.len());
    let with_enum: Vec<String> = all
        .iter()
        .filter(|f| **f != this_file)
        .filter(|f| std::fs::read_to_string(f).unwrap().contains(old_enum))
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        with_enum.is_empty(),
        "{old_enum} is gone: a layout is a `LayoutName` and a `ship_layouts::layout_for`; found in {with_enum:?}"
    );

    // Decisions by name in the code (tests may pick a layout by name to test it).
    let names = ship_layouts::names();
    let mut code = outside(&["crates", "cargo-ship/src"]);
    code.retain(|f| !f.components().any(|c| c.as_os_str() == "tests"));
    let found = layout_decisions(&code, &names);
    assert!(
        found.is_empty(),
        "ask the Layout trait (crates/core/src/layout.rs) instead of deciding by a layout's \
         name outside crates/layouts:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_layout_name_check_sees_what_it_must() {
    let names = ["timestamp", "version", "ab", "single"];
    for bad in [
        "    let id = match stage.layout {",
        "    let release = match (&args.release_id, stage.layout) {",
        "        None if to.layout != LayoutName::from(\"timestamp\")",
        "    if stage.layout.name() == \"version\" && stage.version.is_none() {",
        "    if matches!(plan.layout.as_str(), \"ab\" | \"single\") {",
        "    match layout.name() {",
        "    if layout.name() == \"single\" {",
        "    let keep = stage.layout != plan.layout;",
    ] {
        assert!(
            decides_by_layout_name(bad, &names).is_some(),
            "missed: {bad}"
        );
    }
    for fine in [
        "    match layout.rollback_target(&state, args.to.as_deref()) {",
        "    match ops::observe(layout, &deploy_to, &out.stdout) {",
        "            match ops::observe(self.layout, self.deploy_to, &out.stdout, nonce) {",
        "    let layout = super::layout(&stage.layout)?;",
        "    s.push_str(&self.layout.activate(&self.cx(), &target));",
        "        layout: stage.layout.clone(),",
        "    // if stage.layout == \"single\" once did this",
        "    out.push((\"version\".to_owned(), v));",
    ] {
        assert_eq!(decides_by_layout_name(fine, &names), None, "{fine}");
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
         ship_core::Adapter): {found:#?}"
    );
}

/// The modules that decide, and so must do no I/O: no async runtime, no files, no
/// processes, no network, no clock. The driver (`crates/core/src/driver.rs`) and the
/// transports do that for them.
const PURE: &[&str] = &[
    "crates/core/src/planner.rs",
    "crates/core/src/plan.rs",
    "crates/core/src/protocol.rs",
    "crates/core/src/machine.rs",
    "crates/core/src/records.rs",
    "crates/core/src/layout.rs",
    "crates/core/src/script.rs",
    "crates/core/src/ops.rs",
    "crates/core/src/phase.rs",
    "crates/core/src/render.rs",
    "crates/core/src/store.rs",
    "crates/layouts/src",
];

/// What a pure module may not name (outside `#[cfg(test)]` code).
const IO: &[&str] = &[
    "tokio",
    "std::fs",
    "std::process",
    "std::net",
    "std::env",
    "SystemTime",
    "Instant",
    "jiff",
    "futures",
];

/// The I/O names `text` uses in code (comments and `#[cfg(test)]` modules left out).
fn io_in(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    code_lines(code)
        .flat_map(|(n, line)| {
            IO.iter()
                .filter(move |io| line.contains(*io))
                .map(move |io| format!("line {n}: {io}"))
        })
        .collect()
}

#[test]
fn the_io_check_sees_io_in_code_only() {
    assert_eq!(io_in("use std::fs;\n"), ["line 1: std::fs"]);
    assert_eq!(
        io_in("let t = std::time::Instant::now();\n"),
        ["line 1: Instant"]
    );
    assert!(io_in("//! reads no std::fs\n/// nor tokio\nfn f() {}\n").is_empty());
    assert!(io_in("fn f() {}\n#[cfg(test)]\nmod tests { use std::fs; }\n").is_empty());
}

#[test]
fn the_pure_modules_do_no_io() {
    let mut files = Vec::new();
    for p in PURE {
        let path = root().join(p);
        if path.is_dir() {
            rust_files(&path, &mut files);
        } else {
            files.push(path);
        }
    }
    assert!(files.len() > 10, "found only {} files", files.len());
    let found: Vec<String> = files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            io_in(&text)
                .into_iter()
                .map(move |x| format!("{}: {x}", f.display()))
        })
        .collect();
    assert!(
        found.is_empty(),
        "pure modules doing I/O (move it to driver.rs or a transport): {found:?}"
    );
}
