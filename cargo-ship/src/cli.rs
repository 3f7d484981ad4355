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
target/ship/<stage>.plan.json; planning needs no network and is deterministic, so a team can
snapshot its dry run in CI. `cargo ship apply` executes exactly that plan: hosts in parallel,
one SSH connection and one session per host, no host switching until every host is ready,
and every host put back if anything fails.";

const SHIP_EXAMPLES: &str = "\
Examples:
  cargo ship init                              write a commented Ship.toml for this project
  cargo ship plan production                   plan a deploy to the production stage
  cargo ship plan staging --verbose            ... and show each host's exact scripts
  cargo ship plan production --format json     the plan as JSON, for CI
  cargo ship plan production --release-id 20261122235800   pin the release id
  cargo ship apply                             apply the plan made last
  cargo ship apply production                  plan and apply in one go
  cargo ship rollback production               back to the previous good release
  cargo ship releases production               what each host has, and which is live
  cargo ship run production --roles web -- uptime
  cargo ship ssh production web1               a shell on web1, in current/, with the app's variables
  cargo ship task production migrate           run one task of Ship.toml on its hosts
  cargo ship plan production --ref v1.4.2      plan a deploy of the tag v1.4.2
  cargo ship promote staging production        deploy what staging runs, not a new build
  cargo ship tasks production                  every task, in the order a deploy runs them
  cargo ship maintenance production on         put the maintenance page up

Exit codes: 0 success; 1 the work failed here (e.g. a build command); 2 usage or
configuration error, nothing done; 3 a deploy or command failed on a host, every host left
as it was; 4 a deploy failed and a host could not be put back (its state is unknown);
130/143 a deploy was interrupted by SIGINT/SIGTERM and every host was put back (a second
signal, or a SIGTERM not obeyed within 2 s, cuts the steps in flight: cargo ship then exits
within seconds, naming any host it could not put back), or a command of `run`, `task` or
`maintenance` was stopped on every host (its process group gets SIGTERM, then SIGKILL once its shell ends or 5 s later;
a killed cargo ship's dropped connections stop it too).";

/// The `ship` subcommand and its global flags.
#[derive(Debug, Args)]
#[command(version, about = "Deploy applications to fleets of servers over SSH", long_about = SHIP_ABOUT, after_long_help = SHIP_EXAMPLES)]
pub struct Ship {
    /// Path to the Cargo.toml of the project (default: found from the current directory).
    #[arg(long, global = true, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,

    /// When to use colour: auto (when stdout and stderr are terminals, unless NO_COLOR is
    /// set or TERM=dumb), always, never [default: $CARGO_TERM_COLOR, else auto]. JSON output
    /// is never coloured.
    #[arg(long, global = true, value_enum, value_name = "WHEN")]
    pub color: Option<ColorChoice>,

    /// Quiet: errors and the final result only; no progress, notes or warnings on stderr
    /// [default: $CARGO_TERM_QUIET=true].
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Verbose: -v follows every host's output live (apply, promote), prints each host's
    /// scripts (plan) and warns about SHIP_* variables that are not configuration and so are
    /// ignored; -vv also says where the project, its Ship.toml and cargo ship's files
    /// (target/ship) were found [default: $CARGO_TERM_VERBOSE=true is -v].
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

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

/// `plan`'s output format: also the step graph, for docs and reviews.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// For people.
    Text,
    /// The plan as it is saved, for CI and scripts.
    Json,
    /// The step graph and its sync points, in Graphviz's dot (`| dot -Tsvg > plan.svg`).
    Dot,
    /// The step graph and its sync points, as a Mermaid flowchart (for Markdown).
    Mermaid,
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
        after_long_help = "Examples:\n  cargo ship plan production\n  cargo ship plan production --refresh   what changes on each host, read now\n  cargo ship plan production --roles web --exclude 'web9*'\n  cargo ship plan staging --verbose\n  cargo ship plan production --format json > plan.json\n  cargo ship plan production --release-id 20261122235800 --set keep_releases=3\n  cargo ship plan production --ref v1.4.2   deploy the tag v1.4.2 (its commit), not HEAD"
    )]
    Plan(PlanArgs),

    /// Deploy: execute a saved plan, or plan a stage and execute it.
    #[command(
        long_about = "Deploy. With no argument, apply the plan saved last by `cargo ship plan`; \
with a stage name, plan it and apply it; with a file, apply that saved plan.\n\n\
Every host is connected first, then locked (a host locked by another deploy stops \
everything, naming the holder). Each host gets its steps between two sync points as one \
script; a host runs all its scripts in one SSH session, each when every host is ready for \
it. If anything fails before the switch, the new release is removed \
on every host and the locks released: no host's `current` moved. If anything fails from the \
switch on, every host that switched goes back to the release it had. A saved plan whose \
configuration or artifact changed since it was made is refused, saying what changed.",
        after_long_help = "Examples:\n  cargo ship plan production && cargo ship apply\n  cargo ship apply production\n  cargo ship apply target/ship/production.plan.json\n  cargo ship apply production --ref v1.4.2\n\nExit codes: 0 deployed; 3 failed and every host is as it was; 4 failed and a host could not be put back."
    )]
    Apply(ApplyArgs),

    /// Point `current` back at the previous good release on every host of a stage.
    #[command(
        long_about = "Point `current` back at the previous good release on every host of STAGE \
(or at release ID with --to). Every host is locked and read first; if the hosts do not \
agree on where to go back to, nothing is changed and the difference is shown.",
        after_long_help = "Examples:\n  cargo ship rollback production\n  cargo ship rollback production --to 20261122235800\n  cargo ship rollback production --hosts web3   only web3: the output names the hosts left on their release\n\nWith --roles/--hosts/--exclude only the chosen hosts are read, locked and rolled back (as \
Capistrano's HOSTS=): the others keep the release they run, and the output says so, so the stage \
may then run two releases.\n\nExit codes: 0 rolled back; 2 nothing done (e.g. the hosts disagree); 3 it failed on some host."
    )]
    Rollback(RollbackArgs),

    /// Show each host's releases, which one is live, and whether a deploy holds the lock.
    #[command(
        after_long_help = "Examples:\n  cargo ship releases production\n  cargo ship releases production --roles web --format json"
    )]
    Releases(StageArgs),

    /// Check every host of a stage: reachable, host key trusted, deploy_to writable, linked
    /// files present in shared/, lock free, disk space, tools.
    #[command(
        after_long_help = "Examples:\n  cargo ship check production\n  cargo ship check production --exclude web3\n\nExit codes: 0 every check passed; 3 some check failed (each is named)."
    )]
    Check(StageArgs),

    /// Run a command on every host of a stage (in the live release when there is one),
    /// output grouped per host.
    #[command(
        after_long_help = "Examples:\n  cargo ship run production -- uptime\n  cargo ship run production --roles web -- 'systemctl status myapp'\n  cargo ship run production --hosts 'web*' --exclude web3 -- df -h\n  cargo ship run production --format json -- cat VERSION\n\nCtrl-C (or SIGTERM) stops the command on every host too (SIGTERM to its process group,\nthen SIGKILL once its shell ends or 5 s later), prints what each host said, and exits 130 (143); a second one stops\nwaiting for the hosts to confirm.\n\nExit codes: 0 it succeeded everywhere; 3 it failed on some host; 130/143 stopped by a signal."
    )]
    Run(RunArgs),

    /// Remove the lock a killed deploy left, naming its holder.
    #[command(
        after_long_help = "Examples:\n  cargo ship unlock production\n  cargo ship unlock production --hosts web3"
    )]
    Unlock(StageArgs),

    /// Deploy to a stage exactly the artifact live on another (staging → production),
    /// without building it again.
    #[command(
        long_about = "Deploy to stage TO exactly the artifact that is live on stage FROM: the same \
sha256, not rebuilt. Every host of FROM is read first and must have the same release live; the \
artifact comes from target/ship/artifacts when this machine built it, else from a host of \
FROM, and is checked against its digest. The plan (printed, and saved for `cargo ship apply` \
with --plan-only) says which release it promotes; the release keeps its id unless \
--release-id is given. The adapters' steps (virtualenvs, node_modules) are keyed from the \
files the artifact carries.",
        after_long_help = "Examples:\n  cargo ship promote staging production\n  cargo ship promote staging production --plan-only && cargo ship apply\n\nExit codes: as `cargo ship apply`."
    )]
    Promote(PromoteArgs),

    /// List every task of a stage with its phase, roles, once/local and description, in
    /// the order a deploy runs them (as `fab --list` and `cap -T` do).
    #[command(
        after_long_help = "Examples:\n  cargo ship tasks\n  cargo ship tasks production\n  cargo ship tasks production --format json\n\nThe adapters' tasks (python.venv, django.migrate, node.modules, ...) are listed too. \
Nothing is built and no host is reached."
    )]
    Tasks(TasksArgs),

    /// Run one task of Ship.toml on its hosts, in the live release, as a deploy runs it
    /// (Capistrano's `cap production deploy:migrate`).
    #[command(
        long_about = "Run the task NAME of Ship.toml ([<stage>.tasks.<NAME>]) on its hosts, now, in the \
live release (current/), with the variables a deploy gives it: SHIP_APP, SHIP_STAGE, SHIP_HOST, \
SHIP_ROLE, SHIP_DEPLOY_TO, SHIP_RELEASE, SHIP_REVISION, SHIP_DIGEST and SHIP_RELEASE_PATH of the \
live release, and the host's SHIP_VAR_* variables. It runs where a deploy would: the hosts of its \
roles, one host for a `once` task (once per role for once = \"role\"), this machine for a `local` \
one; the host filters (below) narrow that.\n\n\
Only that task runs, as `cap <stage> <task>` does: the tasks hooked before or after it are not \
run (name each one to run it). No lock is taken and nothing is recorded. The adapters' tasks \
(python.venv, django.migrate, ...) are made for a deploy and are not run by name.",
        after_long_help = "Examples:\n  cargo ship task production migrate\n  cargo ship task production restart --hosts web3\n  cargo ship task staging seed --format json\n\nExit codes: 0 it succeeded on every host; 2 no such task, nothing done; 3 it failed on some host; 130/143 stopped by SIGINT/SIGTERM, which stops it on every host too."
    )]
    Task(TaskArgs),

    /// Open an interactive shell on a host of a stage, in the live release, with the app's
    /// variables (Deployer's `dep ssh`, Kamal's `app exec -i`).
    #[command(
        long_about = "Open an interactive shell on HOST of STAGE with OpenSSH (`ssh -t`, the stage's \
ssh_config and host-key checking), in the live release (current/) with the variables a deploy's \
tasks have: SHIP_APP, SHIP_STAGE, SHIP_HOST, SHIP_ROLE, SHIP_DEPLOY_TO, SHIP_RELEASE, \
SHIP_REVISION, SHIP_DIGEST, SHIP_RELEASE_PATH and the host's SHIP_VAR_* variables. The shell is \
the user's login shell ($SHELL -l); after `--`, a command runs instead, on a terminal.\n\n\
HOST may be left out when the stage, or what the host filters (below) choose, is one host.",
        after_long_help = "Examples:\n  cargo ship ssh production web1\n  cargo ship ssh staging                      a stage of one host\n  cargo ship ssh production --roles db\n  cargo ship ssh production web1 -- ./bin/console   a command on a terminal\n\nExit codes: 0 the shell exited with 0; 2 no such host, nothing done; 3 it could not connect, or the shell exited with another status (said)."
    )]
    Ssh(SshArgs),

    /// Put up or take down the maintenance page on every host of a stage.
    #[command(
        long_about = "Put up (`on`) or take down (`off`) the maintenance page configured in \
[<stage>.maintenance] on every host of STAGE: `on` links `page` (a file of the live release) \
at `file` (where the web server looks, relative to current/), or writes a plain page there; \
`off` removes it. `before` and `after` commands run on each host around it, with \
SHIP_MAINTENANCE=on|off. The page lives in the live release: the next deploy takes it down.",
        after_long_help = "Examples:\n  cargo ship maintenance production on\n  cargo ship maintenance production off\n  cargo ship maintenance production on --roles web --format json\n\nExit codes: 0 done on every host; 3 it failed on some host (each is named); 130/143 stopped by SIGINT/SIGTERM, which stops its before/after command on every host too."
    )]
    Maintenance(MaintenanceArgs),

    /// Print a shell completion script for `cargo ship …` (and `cargo-ship …`): commands,
    /// flags, their values, and the stage names of the Ship.toml where you are.
    #[command(
        long_about = "Print a shell completion script that completes `cargo ship …` (and \
`cargo-ship …`): commands, flags, their values, and the stage names of the Ship.toml found from \
the current directory (in file order). For bash and zsh every other `cargo …` line is handed to \
cargo's own completion (`_cargo`) when the shell has it; fish adds these to cargo's. The script \
asks `cargo-ship` for the words as you type, so it follows the installed version. elvish and \
powershell get a static script for `cargo-ship` only.",
        after_long_help = "Examples:\n  echo 'source <(cargo ship completions bash)' >> ~/.bashrc\n  cargo ship completions zsh > \"${fpath[1]}/_cargo-ship\"   (then compinit)\n  cargo ship completions fish > ~/.config/fish/conf.d/cargo-ship.fish"
    )]
    Completions(CompletionsArgs),

    /// The completion candidates for the word at INDEX of WORDS (what the completion
    /// scripts call).
    #[command(name = "__complete", hide = true)]
    Complete(CompleteArgs),

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

    /// Deploy this git revision (a tag, branch or commit) of the project's repository:
    /// `--set source.git=REF`, for a stage whose source is git.
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: Option<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,

    /// Also print each host's exact shell scripts: the global `-v`.
    #[arg(skip)]
    pub verbose: bool,

    /// Also read every host now (no lock taken, nothing changed) and show what the deploy
    /// will change there: the release that becomes live, the releases cleanup will delete,
    /// whether the artifact must be sent.
    #[arg(long)]
    pub refresh: bool,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub select: SelectArgs,
}

/// Which hosts of the stage: the plan lists the others and why they were left out.
#[derive(Debug, Args, Default, Clone)]
pub struct SelectArgs {
    /// Only the hosts of these roles (comma separated), e.g. `--roles web,worker`.
    #[arg(long, value_delimiter = ',', value_name = "ROLES")]
    pub roles: Vec<String>,

    /// Only the hosts matching these glob patterns (comma separated), e.g. `--hosts 'web*'`.
    #[arg(long, value_delimiter = ',', value_name = "PATTERNS")]
    pub hosts: Vec<String>,

    /// Not the hosts matching these glob patterns (comma separated), e.g. `--exclude web3`.
    #[arg(long, value_delimiter = ',', value_name = "PATTERNS")]
    pub exclude: Vec<String>,
}

/// Flags of every command that reaches hosts.
#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// Trust a host whose key is not in known_hosts yet, and add it (a changed key is
    /// still refused). Without it, an unknown host key stops everything before any command.
    #[arg(long)]
    pub accept_new_host_keys: bool,

    /// Override a configuration key for this run, e.g. `--set keep_releases=3`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// `cargo ship apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A stage to plan and apply, or a saved plan's file (default: the plan saved last).
    pub target: Option<String>,

    /// With a stage: pin the release id (see `cargo ship plan --help`).
    #[arg(long, value_name = "ID")]
    pub release_id: Option<String>,

    /// With a stage and the version layout: the version to deploy.
    #[arg(long = "version", value_name = "VERSION")]
    pub app_version: Option<String>,

    /// With a stage: deploy this git revision (see `cargo ship plan --help`).
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: Option<String>,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub select: SelectArgs,

    /// Follow every host's output live, each line after its host (`web1 | ...`), and
    /// every step as it ends: the global `-v`. Without it, only a failed step's output is
    /// shown (whole). Either way every line goes to target/ship/logs/<stage>-<release>.log.
    #[arg(skip)]
    pub verbose: bool,

    /// Output format: `json` prints one JSON object per line on stdout — every event as it
    /// happens (`connected`, `output`, `step`, `held`, `failed`, `recovered`, `batch`),
    /// then the `outcome`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Write an HTML report of when each host's steps ran, as bars on one time axis, to
    /// target/ship/timings/<stage>-<release>.html (and latest.html), as `cargo build
    /// --timings`.
    #[arg(long)]
    pub timings: bool,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub remote: RemoteArgs,
}

/// `cargo ship rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The stage.
    pub stage: String,

    /// The release to go back to (default: the previous good one).
    #[arg(long, value_name = "ID")]
    pub to: Option<String>,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub select: SelectArgs,

    /// Output format: `json` prints one JSON object per line on stdout — one `host` object
    /// per host, then the `outcome`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub remote: RemoteArgs,
}

/// Commands that take only a stage.
#[derive(Debug, Args)]
pub struct StageArgs {
    /// The stage: a table of Ship.toml, such as `production`.
    pub stage: String,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub select: SelectArgs,

    /// Output format: `json` prints one JSON object per line on stdout — one `host` object
    /// per host, then the `outcome`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub remote: RemoteArgs,
}

/// `cargo ship run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The stage.
    pub stage: String,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub select: SelectArgs,

    /// Output format: `json` prints one JSON object per line on stdout — one `host` object
    /// per host (its exit status and output), then the `outcome`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// The command, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub remote: RemoteArgs,
}

/// `cargo ship completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `cargo ship __complete`.
#[derive(Debug, Args)]
pub struct CompleteArgs {
    /// How to print the candidates: `bash` one per line, `zsh` `value:help`, `fish`
    /// `value<TAB>help`.
    #[arg(long, value_enum)]
    pub shell: clap_complete::Shell,

    /// The index in WORDS of the word being completed.
    #[arg(long)]
    pub index: usize,

    /// The command line's words, from `cargo` (or `cargo-ship`) on, after `--`.
    #[arg(last = true, value_name = "WORDS")]
    pub words: Vec<std::ffi::OsString>,
}

/// `cargo ship init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite an existing Ship.toml.
    #[arg(long)]
    pub force: bool,
}

/// `cargo ship promote`.
#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The stage whose live release is promoted, e.g. `staging`.
    pub from: String,

    /// The stage it is deployed to, e.g. `production`.
    pub to: String,

    /// The release id on TO (default: the one it has on FROM).
    #[arg(long, value_name = "ID")]
    pub release_id: Option<String>,

    /// Make, print and save the plan only; `cargo ship apply` applies it.
    #[arg(long)]
    pub plan_only: bool,

    /// Follow every host's output live, each line after its host (`web1 | ...`), and
    /// every step as it ends: the global `-v`. Without it, only a failed step's output is
    /// shown (whole). Either way every line goes to target/ship/logs/<stage>-<release>.log.
    #[arg(skip)]
    pub verbose: bool,

    /// Output format: `json` prints the apply's events, one JSON object per line.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub remote: RemoteArgs,
}

/// `cargo ship tasks`.
#[derive(Debug, Args)]
pub struct TasksArgs {
    /// The stage (default: the first stage of Ship.toml).
    pub stage: Option<String>,

    /// Output format: `json` prints one JSON document: the stage and its tasks in order,
    /// each with its hook, roles, placement and hosts.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `cargo ship task`.
#[derive(Debug, Args)]
pub struct TaskArgs {
    /// The stage.
    pub stage: String,

    /// The task: a `[<stage>.tasks.<NAME>]` of Ship.toml (`cargo ship tasks` lists them).
    pub name: String,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub select: SelectArgs,

    /// Output format: `json` prints one JSON object per line on stdout — one `host` object
    /// per host (its exit status and output), then the `outcome`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub remote: RemoteArgs,
}

/// `cargo ship ssh`.
#[derive(Debug, Args)]
pub struct SshArgs {
    /// The stage.
    pub stage: String,

    /// The host (a name of the stage's hosts); may be left out when one host is chosen.
    pub host: Option<String>,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub select: SelectArgs,

    /// A command to run on a terminal there instead of the login shell, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub remote: RemoteArgs,
}

/// On or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// Put the page up.
    On,
    /// Take it down.
    Off,
}

/// `cargo ship maintenance`.
#[derive(Debug, Args)]
pub struct MaintenanceArgs {
    /// The stage.
    pub stage: String,

    /// `on` or `off`.
    #[arg(value_enum)]
    pub state: Switch,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub select: SelectArgs,

    /// Output format: `json` prints one JSON object per line on stdout — one `host` object
    /// per host, then the `outcome`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub remote: RemoteArgs,
}
