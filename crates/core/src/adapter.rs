//! The adapter trait: what a language or toolchain adapter (ship-python, ship-node, ...)
//! gives cargo ship, so that the binary wires every adapter the same way and ship-core
//! names none of them.
//!
//! An adapter owns one top-level table of a stage (`[python]`, `[production.node]`): ship-core
//! keeps those tables as written ([`crate::Stage::adapters`]) and the adapter reads them
//! ([`Adapter::read`]). The configured adapter ([`Configured`]) then takes part in the build
//! phase on this machine (commands to run, files to add to the artifact) and contributes
//! ordinary [`TaskSpec`]s to the plan, keyed from what it built or, for `promote`, from the
//! files of an artifact built before.
//!
//! This module is pure: the methods that do I/O (running `pip`, reading a lock file) are
//! implemented by the adapters, and called by the binary in this order for `plan`:
//!
//! 1. [`Configured::commands`] of every adapter, then the stage's own `build` commands, run
//!    here in [`Here::tree`] (a copy of the commit for a `git` source);
//! 2. [`Configured::build`] of every adapter: its work here, and the tasks for the plan;
//! 3. [`Configured::extras`] and [`Configured::paths`]: what it puts into the artifact.
//!
//! `apply` packs the artifact again from what the last build left ([`Configured::extras`]
//! only), `promote` asks [`Configured::tasks_for_files`], `cargo ship tasks` and the
//! checks of hooks ask [`Configured::listed_tasks`], and `cargo ship init` asks
//! [`Adapter::init`] for its part of a new `Ship.toml`.
//!
//! # A new adapter
//!
//! A new adapter (say Ruby with bundler) is one crate (or file) implementing [`Adapter`]
//! and [`Configured`], depending on ship-core only, plus one line in the binary's list of
//! adapters (`cargo-ship/src/adapters.rs`, `ADAPTERS`). A toy one:
//!
//! ```
//! use ship_core::{Adapter, AdapterError as Error, Configured, Here};
//! use ship_core::{TableError, TaskConfig, config::read_table};
//! use ship_core::{Stage, TaskSpec};
//! use std::collections::BTreeMap;
//!
//! /// `[ruby]`: `bundle install` on every host of `roles`, before `install`.
//! struct Ruby;
//!
//! #[derive(Debug, serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct RubyConfig {
//!     #[serde(default)]
//!     roles: Vec<String>,
//! }
//!
//! impl Adapter for Ruby {
//!     fn name(&self) -> &'static str {
//!         "ruby"
//!     }
//!     fn read(
//!         &self,
//!         table: &figment::value::Value,
//!         stage: &Stage,
//!     ) -> Result<Box<dyn Configured>, TableError> {
//!         let cfg: RubyConfig = read_table(table)?;
//!         ship_core::adapter::check_roles(stage, &["roles"], &cfg.roles)?;
//!         Ok(Box::new(cfg))
//!     }
//! }
//!
//! impl RubyConfig {
//!     fn tasks(&self) -> Vec<TaskSpec> {
//!         let task = TaskConfig {
//!             run: "bundle install --deployment".to_owned(),
//!             before: Some("install".to_owned()),
//!             roles: self.roles.clone(),
//!             ..TaskConfig::default()
//!         };
//!         vec![TaskSpec::from_config("bundler.install", &task)]
//!     }
//! }
//!
//! impl Configured for RubyConfig {
//!     fn build(&self, _here: &Here<'_>) -> Result<Vec<TaskSpec>, Error> {
//!         Ok(self.tasks())
//!     }
//!     fn tasks_for_files(&self, _files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<TaskSpec>, Error> {
//!         Ok(self.tasks())
//!     }
//!     fn listed_tasks(&self) -> Vec<TaskSpec> {
//!         self.tasks()
//!     }
//! }
//!
//! // What the binary does with it, for each adapter of its list:
//! let adapters: &[&dyn Adapter] = &[&Ruby];
//! let mut stage = ship_core::stage::example();
//! let table: figment::value::Value =
//!     figment::value::Value::from(BTreeMap::from([("roles".to_owned(), vec!["web"])]));
//! stage.adapters.insert("ruby".to_owned(), table);
//! let configured: Vec<Box<dyn Configured>> = adapters
//!     .iter()
//!     .filter_map(|a| Some(a.read(stage.adapters.get(a.name())?, &stage)))
//!     .collect::<Result<_, _>>()
//!     .unwrap();
//! assert_eq!(configured[0].task_names(), ["bundler.install"]);
//!
//! // A role the stage does not have is an error at its key.
//! let bad = figment::value::Value::from(BTreeMap::from([("roles".to_owned(), vec!["db"])]));
//! let err = Ruby.read(&bad, &stage).unwrap_err();
//! assert_eq!(err.key, ["roles"]);
//! assert!(err.message.contains("no role `db`"), "{err}");
//! ```

use crate::Stage;
use crate::TaskSpec;
use crate::artifact::Extra;
use crate::config::TableError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What an adapter's work here can fail with: its own error, shown as `[<table>]: <error>`.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// An adapter, as the binary's list holds it: the table it owns and how to read it.
pub trait Adapter: Sync {
    /// The name of its table in `Ship.toml` (`"python"` for `[python]`), also the prefix its
    /// errors are shown with.
    fn name(&self) -> &'static str;

    /// Reads and checks the table (as [`Stage::adapters`] holds it) for `stage`; an error
    /// names the key inside the table, and the caller adds the file, line and full key.
    fn read(
        &self,
        table: &figment::value::Value,
        stage: &Stage,
    ) -> Result<Box<dyn Configured>, TableError>;

    /// What `cargo ship init` writes for the project in `root`, if this adapter recognises
    /// it (from its files). None by default.
    fn init(&self, root: &Path) -> Option<Init> {
        let _ = root;
        None
    }
}

/// An adapter's part of the `Ship.toml` that `cargo ship init` writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Init {
    /// What the project was recognised as: `"a Python project"`.
    pub found: &'static str,
    /// The `linked_files` it suggests (a TOML array), instead of the default.
    pub linked_files: Option<&'static str>,
    /// Its table, commented, ending with an empty line: `# Python: ...\n[default.python]\n...`.
    pub table: String,
    /// The `[default.health]` check it can guess for the project (TOML lines, e.g.
    /// `url = "http://127.0.0.1:8000/"`, with a comment saying why), written uncommented
    /// so that a service that is down after its restart reverts the deploy; `None` when it
    /// cannot guess one.
    pub health: Option<String>,
}

/// One adapter with its table read: what it does for a deploy of the stage.
pub trait Configured: std::fmt::Debug + Send + Sync {
    /// Commands to run here, in [`Here::tree`], before the stage's own `build` commands
    /// (`npm ci`, say); checks what they need first, in that tree. None by default.
    fn commands(&self, here: &Here<'_>) -> Result<Vec<String>, Error> {
        let _ = here;
        Ok(Vec::new())
    }

    /// Its work here once every build command ran (building wheels, say), and the tasks it
    /// adds to the plan, keyed from what it built.
    fn build(&self, here: &Here<'_>) -> Result<Vec<TaskSpec>, Error>;

    /// The files it adds to the artifact, as the last [`Configured::build`] left them; an
    /// error when they are gone. None by default.
    fn extras(&self, here: &Here<'_>) -> Result<Vec<Extra>, Error> {
        let _ = here;
        Ok(Vec::new())
    }

    /// The paths of the project packed instead of the stage's `source`, if it chooses them.
    fn paths(&self) -> Option<&[String]> {
        None
    }

    /// Its tasks for an artifact built before (promoted from another stage), keyed from the
    /// files the artifact carries (path inside the artifact → contents).
    fn tasks_for_files(&self, files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<TaskSpec>, Error>;

    /// Its tasks as a listing shows them: nothing built, no keys.
    fn listed_tasks(&self) -> Vec<TaskSpec>;

    /// The names of its tasks, which the user's tasks may hook to (`before = "..."`).
    fn task_names(&self) -> Vec<String> {
        self.listed_tasks().into_iter().map(|t| t.name).collect()
    }
}

/// Where the build phase runs, on this machine.
#[derive(Clone, Copy, Debug)]
pub struct Here<'a> {
    /// The project's root: where `source` paths start, and where the build commands run
    /// unless the source is `git` (then in a copy of the commit, `target/ship/build/<stage>`,
    /// see [`crate::artifact::export`]).
    pub root: &'a Path,
    /// Where the project's files that make the artifact are: for a `git` source, that copy
    /// of the commit, as the build commands left it; else the project's root. An adapter
    /// reads its inputs here (requirements, lock files, package.json, the project it builds
    /// into a wheel), never in the working tree, so the same commit gives the same
    /// artifact on any machine.
    pub tree: &'a Path,
    /// The directory cargo ship keeps what it makes for the project in (`target/ship`).
    pub ship_dir: &'a Path,
    /// The stage being built.
    pub stage: &'a str,
}

impl Here<'_> {
    /// A directory of `ship_dir` for this stage's `kind` of output: `target/ship/<kind>/<stage>`
    /// (kept from `plan` to `apply`, which packs the artifact again).
    pub fn stage_dir(&self, kind: &str) -> PathBuf {
        self.ship_dir.join(kind).join(self.stage)
    }

    /// `path` as the user knows it: relative to the project's root when inside it.
    pub fn show(&self, path: &Path) -> String {
        path.strip_prefix(self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

/// Checks that every role of `roles` (the value at `key` of the table) is a role of `stage`.
pub fn check_roles(stage: &Stage, key: &[&str], roles: &[String]) -> Result<(), TableError> {
    match roles.iter().find(|r| !stage.roles.contains_key(*r)) {
        None => Ok(()),
        Some(role) => {
            let roles: Vec<&String> = stage.roles.keys().collect();
            Err(TableError {
                shown: Box::new(crate::config::Shown {
                    item: Some(role.clone()),
                    label: "unknown role".to_owned(),
                    hint: crate::diagnostic::suggest(
                        role,
                        &roles,
                        &format!("roles of stage `{}`", stage.name),
                    ),
                    ..Default::default()
                }),
                ..TableError::at(key, format!("no role `{role}` in stage `{}`", stage.name))
            })
        }
    }
}
