//! ship-core's public API rule, checked over the workspace: its types are named at the
//! crate's root (`ship_core::Plan`), never by a module path (`ship_core::plan::Plan`); its
//! public modules are function namespaces (`ship_core::protocol::step`,
//! `ship_core::shell::quote`). A module path to a type would tie every tool to where the
//! type lives today, and keep a module public that needs not be.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// What `crates/core/src/lib.rs` declares: its public modules, and the `(module, name)`
/// pairs it re-exports at the root (`pub use plan::{Plan, ...}`).
struct Api {
    public_modules: BTreeSet<String>,
    modules: BTreeSet<String>,
    reexported: BTreeSet<(String, String)>,
}

impl Api {
    fn read() -> Api {
        Api::parse(&std::fs::read_to_string(root().join("crates/core/src/lib.rs")).unwrap())
    }

    fn parse(lib: &str) -> Api {
        let mut api = Api {
            public_modules: BTreeSet::new(),
            modules: BTreeSet::new(),
            reexported: BTreeSet::new(),
        };
        for line in lib.lines() {
            let line = line.trim();
            if let Some(name) = line
                .strip_prefix("pub mod ")
                .and_then(|l| l.strip_suffix(';'))
            {
                api.public_modules.insert(name.to_owned());
                api.modules.insert(name.to_owned());
            } else if let Some(name) = line.strip_prefix("mod ").and_then(|l| l.strip_suffix(';')) {
                api.modules.insert(name.to_owned());
            }
        }
        let mut rest = lib;
        while let Some(at) = rest.find("\npub use ") {
            rest = &rest[at + "\npub use ".len()..];
            let end = rest.find(';').unwrap();
            for (segments, _) in leaves(&rest[..end]) {
                if let [module, name] = &segments[..] {
                    api.reexported.insert((module.clone(), name.clone()));
                }
            }
        }
        api
    }

    /// Whether `module::name` names a type that should be named at the root instead.
    fn wrong(&self, module: &str, name: &str) -> bool {
        self.modules.contains(module)
            && is_type(name)
            && (!self.public_modules.contains(module)
                || self
                    .reexported
                    .contains(&(module.to_owned(), name.to_owned())))
    }
}

/// `Plan`, `StepKind`: upper-case first, some lower-case (`STOP_GRACE` is a constant).
fn is_type(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_uppercase()) && name.contains(|c: char| c.is_lowercase())
}

/// The tokens of the path or use tree at the start of `text`, with their byte offsets:
/// identifiers, `::`, `{`, `}`, `,`, `*`; it ends where the tree does.
fn tokens(text: &str) -> Vec<(usize, &str)> {
    let mut out: Vec<(usize, &str)> = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut depth = 0usize;
    while i < bytes.len() {
        let c = bytes[i];
        let after_ident = out.last().is_some_and(|t| is_ident(t.1));
        if c.is_ascii_whitespace() || (depth > 0 && matches!(c, b'/' | b'!' | b'#')) {
            // Inside a tree, a new line of a doc comment (`/// `, `//! `, `/// # `).
            i += 1;
        } else if text[i..].starts_with("::") {
            out.push((i, "::"));
            i += 2;
        } else if depth == 0 && after_ident {
            break;
        } else if c.is_ascii_alphanumeric() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push((start, &text[start..i]));
        } else if c == b'{' || (depth > 0 && matches!(c, b'}' | b',' | b'*')) || c == b'*' {
            out.push((i, &text[i..=i]));
            match c {
                b'{' => depth += 1,
                b'}' => depth -= 1,
                _ => {}
            }
            i += 1;
            if depth == 0 {
                break;
            }
        } else {
            break;
        }
    }
    out
}

fn is_ident(token: &str) -> bool {
    token.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
}

/// The leaves of the path or use tree at the start of `text` (after `ship_core::`): each
/// one's segments and the offset of its last segment.
fn leaves(text: &str) -> Vec<(Vec<String>, usize)> {
    let toks = tokens(text);
    let mut out = Vec::new();
    tree(&toks, &mut 0, &mut Vec::new(), &mut out);
    out
}

fn tree(
    toks: &[(usize, &str)],
    i: &mut usize,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, usize)>,
) {
    let Some(&(at, tok)) = toks.get(*i) else {
        return;
    };
    *i += 1;
    match tok {
        "{" => loop {
            match toks.get(*i).map(|t| t.1) {
                None => return,
                Some("}") => {
                    *i += 1;
                    return;
                }
                Some(",") => *i += 1,
                Some(_) => tree(toks, i, &mut prefix.clone(), out),
            }
        },
        "*" | "," | "}" | "::" => {}
        ident => {
            prefix.push(ident.to_owned());
            if toks.get(*i).map(|t| t.1) == Some("::") {
                *i += 1;
                tree(toks, i, prefix, out);
            } else {
                if toks.get(*i).map(|t| t.1) == Some("as") {
                    *i += 2;
                }
                if prefix.last().is_some_and(|s| s == "self") {
                    prefix.pop();
                }
                out.push((prefix.clone(), at));
            }
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

/// Every place in `text` that names a ship-core type by its module path: `ship_core::m::T`
/// (in a path or a use tree), or `m::T` in a file that imports the module `m` itself.
fn module_paths(api: &Api, text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut imported = BTreeSet::new();
    for (at, _) in text.match_indices("ship_core::") {
        let start = at + "ship_core::".len();
        for (segments, offset) in leaves(&text[start..]) {
            match &segments[..] {
                [module] if api.modules.contains(module) => {
                    imported.insert(module.clone());
                }
                [module, name, ..] if api.wrong(module, name) => {
                    found.push((
                        line_of(text, start + offset),
                        format!("ship_core::{module}::{name}"),
                    ));
                }
                _ => {}
            }
        }
    }
    for module in imported {
        let pattern = format!("{module}::");
        for (at, _) in text.match_indices(&pattern) {
            let before = text[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let name: String = text[at + pattern.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if api.wrong(&module, &name) {
                found.push((line_of(text, at), format!("{module}::{name}")));
            }
        }
    }
    found
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "snapshots") {
                sources(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn ship_core_types_are_named_at_its_root() {
    let api = Api::read();
    assert!(
        api.reexported.len() > 50,
        "{} re-exports",
        api.reexported.len()
    );
    assert!(api.public_modules.contains("protocol"));
    let root = root();
    let mut files = vec![root.join("ARCHITECTURE.md"), root.join("README.md")];
    for dir in ["cargo-ship", "tests", "crates"] {
        sources(&root.join(dir), &mut files);
    }
    assert!(files.len() > 80, "found only {} files", files.len());
    let mut wrong = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        if file.ends_with("tests/tests/public_api.rs") {
            continue;
        }
        for (line, path) in module_paths(&api, &text) {
            let file = file.strip_prefix(&root).unwrap().display();
            wrong.push(format!("{file}:{line}: {path}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "ship-core types named by a module path; name them at the root (ship_core::Plan):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_module_path_check_sees_what_it_must() {
    let api = Api::parse(
        "pub mod plan;\npub mod machine;\nmod load;\npub mod shell;\n\
         pub use plan::{Plan, StepKind};\npub use load::Sources;\n\
         pub use machine::{Event, Machine as M};\n",
    );
    let paths = |text: &str| -> Vec<String> {
        module_paths(&api, text)
            .into_iter()
            .map(|(line, p)| format!("{line} {p}"))
            .collect()
    };
    assert_eq!(
        paths("use ship_core::plan::Plan;"),
        ["1 ship_core::plan::Plan"]
    );
    assert_eq!(
        paths("use ship_core::{Plan, plan::{StepKind as K}};\nuse ship_core::load::Sources;"),
        ["1 ship_core::plan::StepKind", "2 ship_core::load::Sources"]
    );
    assert_eq!(
        paths("/// use ship_core::{\n///     machine::{Event, Machine},\n/// };"),
        [
            "2 ship_core::machine::Event",
            "2 ship_core::machine::Machine"
        ]
    );
    assert_eq!(
        paths("fn f(p: &ship_core::plan::Plan) -> ship_core::StepKind {}"),
        ["1 ship_core::plan::Plan"]
    );
    assert_eq!(
        paths("use ship_core::{machine, shell};\nfn f(e: machine::Event) {}"),
        ["2 machine::Event"]
    );
    // Functions, constants, the types a module keeps (machine::Input) and root paths pass.
    assert!(
        paths(
            "use ship_core::{Plan, StepKind, machine::Input, shell::quote};\n\
             let s = ship_core::machine::STOP_GRACE; ship_core::plan(&x); \
             ship_core::Plan::to_json(&p); ship_core::shell::quote(\"a\");\n\
             use ship_core::machine;\nlet i: machine::Input;"
        )
        .is_empty()
    );
}
