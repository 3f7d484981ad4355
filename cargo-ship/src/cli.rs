//! The command line, as clap derive types. Raw flags only: [`crate::commands`] turns them
//! into validated settings before any work starts.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// `cargo ship …`: cargo runs `cargo-ship ship …`, so the top level is `cargo`.
#[derive(Debug, Parser)]
#[command(name = "cargo", bin_name = "cargo", styles = clap::builder::Styles::styled())]
pub enum Cargo {
    /// Deploy applications to fleets of servers over SSH.
    Ship(Ship),
}

const SHIP_ABOUT: &str = "\
Deploy applications to fleets of servers over SSH, as a plan you can read, snapshot and apply.

A deploy is a plan: every step on every host, in order, with the exact shell each host will
run. `cargo ship plan <stage>` builds the artifact, makes the plan, prints it and saves it to
target/ship/<stage>.plan.json. Planning needs no network and is deterministic: the same
inputs print the same bytes, so a team can snapshot its dry run in CI.

Not in this version yet: apply, rollback, releases, check, run, unlock (see README.md).";

const SHIP_EXAMPLES: &str = "\
Examples:
  cargo ship init                              write a commented Ship.toml for this project
  cargo ship plan production                   plan a deploy to the production stage
  cargo ship plan staging --verbose            ... and show each host's exact scripts
  cargo ship plan production --format json     the plan as JSON, for CI
  cargo ship plan production --release-id 20261122235800   pin the release id

Exit codes: 0 success, 1 the work failed (e.g. a build command), 2 usage or configuration error.";

/// The `ship` subcommand and its global flags.
#[derive(Debug, Args)]
#[command(version, about = "Deploy applications to fleets of servers over SSH", long_about = SHIP_ABOUT, after_long_help = SHIP_EXAMPLES)]
pub struct Ship {
    /// Path to the Cargo.toml of the project (default: found from the current directory).
    #[arg(long, global = true, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,

    /// When to use colour: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Colour choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// One JSON document, for CI and scripts.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the artifact, plan a deploy to a stage, print the plan and save it.
    #[command(
        long_about = "Build the artifact, plan a deploy to STAGE, print the plan and save it to \
target/ship/<STAGE>.plan.json.\n\n\
The plan lists the release id, the artifact's source and sha256, then every step in execution \
order with the hosts it runs on, marking `once` and `local` steps and the sync points (no host \
switches until every host is ready). Nothing is sent to any host. The build commands of \
Ship.toml run here, because the plan pins the artifact's digest.",
        after_long_help = "Examples:\n  cargo ship plan production\n  cargo ship plan staging --verbose\n  cargo ship plan production --format json > plan.json\n  cargo ship plan production --release-id 20261122235800 --set keep_releases=3"
    )]
    Plan(PlanArgs),

    /// Write a commented Ship.toml suited to the project in the current directory.
    #[command(
        long_about = "Write a commented Ship.toml suited to the project found here: a Cargo \
workspace, a Python project (requirements.txt or pyproject.toml) or a Node project \
(package.json). It defines a staging and a production stage with placeholder hosts to edit.",
        after_long_help = "Examples:\n  cargo ship init\n  cargo ship init --force   overwrite an existing Ship.toml"
    )]
    Init(InitArgs),
}

/// `cargo ship plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The stage to deploy to: a table of Ship.toml, such as `production`.
    pub stage: String,

    /// Pin the release id instead of taking the current UTC time (14 digits for the
    /// timestamp layout), for tests and reproducible CI output.
    #[arg(long, value_name = "ID")]
    pub release_id: Option<String>,

    /// The version to deploy with the `version` layout (default: read from Cargo.toml,
    /// package.json or pyproject.toml).
    #[arg(long = "version", value_name = "VERSION")]
    pub app_version: Option<String>,

    /// Override a configuration key for this run, e.g. `--set keep_releases=3` or
    /// `--set roles.web.hosts='["web9"]'`; wins over Ship.toml and SHIP_* variables.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Also print each host's exact shell scripts.
    #[arg(short, long)]
    pub verbose: bool,
}

/// `cargo ship init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite an existing Ship.toml.
    #[arg(long)]
    pub force: bool,
}
