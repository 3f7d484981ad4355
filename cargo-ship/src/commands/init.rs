//! `cargo ship init`: a commented Ship.toml suited to the project found here.

use crate::cli::{InitArgs, Ship};
use crate::project::{Package, Project};
use crate::{CliError, Context};
use ship_core::Init;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

/// What kind of project this is, from its files.
#[derive(Debug, Default)]
struct Kind {
    cargo: bool,
    /// The binary a `cargo` source builds: the package's own binary, else its first.
    bin: Option<String>,
    /// The adapters that recognise the project, with their part of Ship.toml.
    adapters: Vec<Init>,
    git: bool,
}

fn detect(root: &Path, package: Option<&Package>) -> Kind {
    let bin = package.and_then(|p| {
        p.bins
            .iter()
            .find(|b| **b == p.name)
            .or(p.bins.first())
            .cloned()
    });
    Kind {
        cargo: root.join("Cargo.toml").is_file(),
        bin,
        adapters: crate::adapters::ADAPTERS
            .iter()
            .filter_map(|a| a.init(root))
            .collect(),
        git: root.ancestors().any(|d| d.join(".git").exists()),
    }
}

fn app_name(root: &Path) -> String {
    let raw = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "app".to_owned());
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.trim_matches(['-', '.']).is_empty() {
        "app".to_owned()
    } else {
        clean
    }
}

/// The text of a Ship.toml for a project of this kind.
fn template(app: &str, kind: &Kind) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Ship.toml: how cargo ship deploys {app}.\n\
         # [default] applies to every stage; each other table is a stage (`cargo ship plan <stage>`).\n\
         # Lowest to highest: built-in defaults, [workspace.metadata.ship] in Cargo.toml, [default],\n\
         # the stage's table, SHIP_* environment variables (SHIP_KEEP_RELEASES=3), --set flags.\n"
    );
    s.push_str("[default]\n");
    let _ = writeln!(s, "app = \"{app}\"");
    let _ = writeln!(
        s,
        "# The directory on each host: releases/, shared/ and the `current` link live here."
    );
    let _ = writeln!(s, "deploy_to = \"/var/www/{app}\"");
    let layouts: Vec<String> = ship_layouts::LAYOUTS
        .iter()
        .map(|l| match l.about() {
            "" => l.name().to_owned(),
            about => format!("{} ({about})", l.name()),
        })
        .collect();
    let (last, rest) = layouts.split_last().expect("a layout is registered");
    let _ = writeln!(s, "# {} or {last}.", rest.join(", "));
    let _ = writeln!(s, "layout = \"{}\"", ship_layouts::LAYOUTS[0].name());
    s.push_str(
        "# Releases kept on each host; the live one and the previous good one are never removed.\n",
    );
    s.push_str("keep_releases = 5\n");
    s.push_str("# How many hosts are worked on at once.\nparallel = 10\n");
    if let Some(bin) = &kind.bin {
        s.push_str(
            "# What ships: this package's binary, built here, as bin/<name> (or { git = \"HEAD\" },\n\
             # { dir = \".\" }); `include = [\"static\"]` adds files beside it.\n",
        );
        let _ = writeln!(s, "source = {{ cargo = \"{bin}\" }}");
        s.push_str(
            "# How it is built: cargo = { target = \"x86_64-unknown-linux-musl\", features = [], profile = \"release\" }\n",
        );
    } else if kind.git {
        s.push_str("# What ships: a `git archive` of this commit (or { dir = \"dist\" }, { archive = \"app.tar.gz\" }).\n");
        s.push_str("source = { git = \"HEAD\" }\n");
    } else {
        s.push_str(
            "# What ships: this directory (or { git = \"HEAD\" }, { archive = \"app.tar.gz\" }).\n",
        );
        s.push_str("source = { dir = \".\" }\n");
    }
    s.push_str("# Files and directories that survive releases: kept in <deploy_to>/shared/ and linked in.\n");
    if let Some(files) = kind.adapters.iter().find_map(|a| a.linked_files) {
        let _ = writeln!(s, "linked_files = {files}");
    } else if kind.cargo {
        s.push_str("linked_files = [\"config/production.toml\"]\n");
    } else {
        s.push_str("linked_files = []\n");
    }
    s.push_str("linked_dirs = [\"log\"]\n\n");

    for adapter in &kind.adapters {
        s.push_str(&adapter.table);
    }
    s.push_str(
        "# Tasks hook in before or after a phase (lock upload prepare link install switch verify\n\
         # cleanup unlock) or another task, and run in the new release's directory with\n\
         # SHIP_RELEASE, SHIP_RELEASE_PATH, SHIP_DEPLOY_TO, SHIP_HOST, SHIP_ROLE, SHIP_STAGE set.\n\
         # [default.tasks.restart]\n\
         # run = \"touch tmp/restart.txt\"\n\
         # after = \"switch\"\n\n\
         # Restarting without dropping requests under supervisord, circus or node: see\n\
         # README.md, \"Restarting without dropping requests\".\n\n",
    );
    s.push_str(
        "# The health check after the switch and the restarts, on each host, in the new release:\n\
         # a URL fetched there (2xx) or a command (exit 0). A failure puts every host back on\n\
         # the release it had: without one, a service that died at its restart is \"deployed\".\n",
    );
    match kind.adapters.iter().find_map(|a| a.health.as_deref()) {
        Some(check) => {
            s.push_str("[default.health]\n");
            s.push_str(check);
            s.push_str(
                "# Tries: one, then `retries` more `interval` apart, each cut at `timeout`.\n\
                 retries = 5\n\
                 interval = \"1s\"\n\
                 timeout = \"10s\"\n\n",
            );
        }
        None => s.push_str(
            "# cargo ship cannot tell from this project what to ask: uncomment one.\n\
             # [default.health]\n\
             # url = \"http://127.0.0.1:8000/health\"   # or: run = \"systemctl is-active myapp\"\n\
             # retries = 5\n\
             # interval = \"1s\"\n\
             # timeout = \"10s\"\n\n",
        ),
    }
    s.push_str(
        "# Stages. Hosts are OpenSSH destinations: ~/.ssh/config (users, ports, ProxyJump) applies.\n\
         [staging]\n\
         hosts = [\"staging.example.com\"]\n\n\
         [production]\n\
         keep_releases = 10\n\
         [production.roles.web]\n\
         hosts = [\"web1.example.com\", \"web2.example.com\"]\n\
         [production.roles.worker]\n\
         hosts = [\"worker1.example.com\"]\n",
    );
    s
}

pub(crate) fn run(ship: &Ship, args: &InitArgs, cx: &mut Context) -> Result<(), CliError> {
    let project = Project::find(&cx.cwd, ship.manifest_path.as_deref(), cx.var("CARGO"))?;
    // In a Cargo package (a workspace member too): beside its Cargo.toml.
    let (root, package) = match &project.here {
        Some((dir, package)) => (dir.clone(), Some(package)),
        None => (project.root.clone(), project.package.as_ref()),
    };
    let ship_toml = root.join("Ship.toml");
    if ship_toml.exists() && !args.force {
        return Err(CliError::Usage(format!(
            "{} exists already: edit it, or pass --force to replace it",
            ship_toml.display()
        )));
    }
    let kind = detect(&root, package);
    // A Cargo package's app is named after it (it may be a workspace member in a directory
    // of another name).
    let app = match package {
        Some(p) => p.name.clone(),
        None => app_name(&root),
    };
    let text = template(&app, &kind);
    std::fs::write(&ship_toml, text).map_err(|source| CliError::Io {
        path: ship_toml.display().to_string(),
        source,
    })?;
    let mut found = Vec::new();
    if kind.bin.is_some() {
        found.push("a Cargo package with a binary");
    } else if kind.cargo {
        found.push("a Cargo project");
    }
    found.extend(kind.adapters.iter().map(|a| a.found));
    let _ = writeln!(
        cx.stdout,
        "wrote {} for {}.\nNext: set deploy_to and the hosts, then run `cargo ship plan staging`.",
        ship_toml.display(),
        if found.is_empty() {
            "this directory".to_owned()
        } else {
            found.join(" and ")
        }
    );
    Ok(())
}
