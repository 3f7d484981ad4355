//! cargo ship's command line: parses flags, finds the project, wires ship-core and
//! ship-layouts together, and reports. `main.rs` only calls [`main_with`].
//!
//! Everything the command line touches in the process — arguments, working directory,
//! environment, output streams — comes in through [`Context`], so tests run commands
//! in-process with captured output.
//!
//! ```
//! use cargo_ship::{main_with, Context};
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("Ship.toml"), "[default]\napp = \"demo\"\n\
//!     deploy_to = \"/srv/demo\"\nsource = { dir = \".\" }\n[staging]\nhosts = [\"web1\"]\n").unwrap();
//! let mut cx = Context::new(dir.path(), ["cargo-ship", "ship", "plan", "staging",
//!     "--release-id", "20261122235800"]);
//! assert_eq!(main_with(&mut cx), 0);
//! assert!(cx.stdout_text().contains("Plan: deploy demo to staging"));
//! ```
#![warn(missing_docs, unreachable_pub)]

mod adapters;
pub mod cli;
pub mod commands;
mod fetch;
mod git;
mod host_output;
mod notify;
mod progress;
pub mod project;
mod report;
mod secrets;
mod store;
mod timings;
mod who;

pub use report::{CliError, exit_code};

use clap::Parser;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What a command may touch of the process: arguments, directory, environment, output.
pub struct Context {
    /// The arguments, program name first.
    pub args: Vec<OsString>,
    /// The working directory.
    pub cwd: PathBuf,
    /// The environment.
    pub env: Vec<(String, String)>,
    /// Standard output.
    pub stdout: Box<dyn Write + Send>,
    /// Standard error.
    pub stderr: Box<dyn Write + Send>,
    /// Whether stdout and stderr are terminals.
    pub terminal: bool,
    /// Whether cargo ship colours what it writes: `--color`, else `CARGO_TERM_COLOR`, else
    /// auto (both streams terminals, `NO_COLOR` unset, `TERM` not `dumb`). Set by
    /// [`main_with`] before the command runs; `stderr` is then written through an anstream
    /// stream that strips styles when this is false.
    pub color: bool,
    /// How verbose: -1 quiet (`-q`), 0 the default, 1 `-v`, 2 `-vv` (and more).
    pub verbosity: i8,
    captured: Option<(SharedBuf, SharedBuf)>,
}

#[derive(Clone, Default)]
struct SharedBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedBuf {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("not poisoned")).into_owned()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Context {
    /// The real process: `std::env::args_os`, the current directory, the environment,
    /// stdout and stderr.
    pub fn from_process() -> Context {
        use std::io::IsTerminal;
        Context {
            args: std::env::args_os().collect(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            env: std::env::vars().collect(),
            terminal: std::io::stdout().is_terminal() && std::io::stderr().is_terminal(),
            stdout: Box::new(std::io::stdout()),
            stderr: Box::new(std::io::stderr()),
            color: false,
            verbosity: 0,
            captured: None,
        }
    }

    /// A context for tests: these arguments in `cwd`, an empty environment, captured output.
    pub fn new<I, S>(cwd: &Path, args: I) -> Context
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let out = SharedBuf::default();
        let err = SharedBuf::default();
        Context {
            args: args.into_iter().map(Into::into).collect(),
            cwd: cwd.to_owned(),
            env: Vec::new(),
            stdout: Box::new(out.clone()),
            stderr: Box::new(err.clone()),
            terminal: false,
            color: false,
            verbosity: 0,
            captured: Some((out, err)),
        }
    }

    /// What was written to stdout (test contexts only).
    pub fn stdout_text(&self) -> String {
        self.captured
            .as_ref()
            .map(|(o, _)| o.text())
            .unwrap_or_default()
    }

    /// What was written to stderr (test contexts only).
    pub fn stderr_text(&self) -> String {
        self.captured
            .as_ref()
            .map(|(_, e)| e.text())
            .unwrap_or_default()
    }

    /// The value of an environment variable.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Runs the command line in `cx` and returns the exit code.
pub fn main_with(cx: &mut Context) -> i32 {
    // `cargo ship x` runs `cargo-ship ship x`; `cargo-ship x` works too.
    let mut args = cx.args.clone();
    if args.get(1).is_none_or(|a| a != "ship") {
        args.insert(1.min(args.len()), OsString::from("ship"));
    }
    let cli::Cargo::Ship(mut ship) = match cli::Cargo::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            let styled = e.render();
            // The flags were not parsed: `--color` as written, else CARGO_TERM_COLOR.
            let flag = args.iter().enumerate().find_map(|(i, a)| {
                let a = a.to_str()?;
                match a.strip_prefix("--color=") {
                    Some(v) => Some(v.to_owned()),
                    None if a == "--color" => args.get(i + 1).map(|v| v.to_string_lossy().into()),
                    None => None,
                }
            });
            let flag =
                flag.and_then(|v| <cli::ColorChoice as clap::ValueEnum>::from_str(&v, true).ok());
            let choice = flag
                .or(color_from_env(cx).ok().flatten())
                .unwrap_or(cli::ColorChoice::Auto);
            let color = resolve_color(cx, choice);
            let text = if color {
                styled.ansi().to_string()
            } else {
                styled.to_string()
            };
            let code = if e.use_stderr() {
                let _ = write!(cx.stderr, "{text}");
                2
            } else {
                let _ = write!(cx.stdout, "{text}");
                0
            };
            return code;
        }
    };
    let settings = color_from_env(cx).and_then(|from_env| {
        let choice = ship.color.or(from_env).unwrap_or(cli::ColorChoice::Auto);
        Ok((choice, verbosity(&ship, cx)?))
    });
    let (choice, verbosity) = match settings {
        Ok(s) => s,
        Err(e) => {
            report::print(&e, false, &cx.cwd, &mut cx.stderr);
            return exit_code(&e);
        }
    };
    cx.color = resolve_color(cx, choice);
    cx.verbosity = verbosity;
    // Every style written to stderr goes through this stream: kept or stripped as decided.
    let stderr = std::mem::replace(&mut cx.stderr, Box::new(std::io::sink()));
    cx.stderr = Box::new(anstream::AutoStream::new(stderr, stream_choice(cx.color)));
    // The global -v is what the per-command `--verbose` flags were.
    match &mut ship.command {
        cli::Command::Plan(a) => a.verbose = verbosity > 0,
        cli::Command::Apply(a) => a.verbose = verbosity > 0,
        cli::Command::Promote(a) => a.verbose = verbosity > 0,
        _ => {}
    }
    if verbosity > 0 && !matches!(ship.command, cli::Command::Complete(_)) {
        notes(&ship, cx);
    }
    let result = if verbosity < 0 {
        let stderr = std::mem::replace(&mut cx.stderr, Box::new(std::io::sink()));
        let result = commands::run(&ship, cx);
        cx.stderr = stderr;
        result
    } else {
        commands::run(&ship, cx)
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            report::print(&e, cx.color, &cx.cwd, &mut cx.stderr);
            exit_code(&e)
        }
    }
}

/// `CARGO_TERM_COLOR`, as cargo reads it (unset or empty: no choice).
fn color_from_env(cx: &Context) -> Result<Option<cli::ColorChoice>, CliError> {
    use clap::ValueEnum;
    match cx.var("CARGO_TERM_COLOR") {
        None | Some("") => Ok(None),
        Some(v) => cli::ColorChoice::from_str(v, true).map(Some).map_err(|_| {
            CliError::Usage(format!(
                "CARGO_TERM_COLOR={v}: expected one of auto, always, never"
            ))
        }),
    }
}

/// Whether to colour, for this choice: auto colours when both streams are terminals,
/// `NO_COLOR` is unset or empty and `TERM` is not `dumb`.
fn resolve_color(cx: &Context, choice: cli::ColorChoice) -> bool {
    match choice {
        cli::ColorChoice::Always => true,
        cli::ColorChoice::Never => false,
        cli::ColorChoice::Auto => {
            cx.terminal
                && cx.var("NO_COLOR").is_none_or(str::is_empty)
                && cx.var("TERM") != Some("dumb")
        }
    }
}

/// The anstream choice that keeps (true) or strips (false) styles.
pub(crate) fn stream_choice(color: bool) -> anstream::ColorChoice {
    if color {
        anstream::ColorChoice::Always
    } else {
        anstream::ColorChoice::Never
    }
}

/// -q, -v/-vv, else `CARGO_TERM_QUIET` / `CARGO_TERM_VERBOSE` (`true`), as cargo: both at
/// once is a usage error.
fn verbosity(ship: &cli::Ship, cx: &Context) -> Result<i8, CliError> {
    let both = || CliError::Usage("cannot set both --verbose and --quiet".to_owned());
    match (ship.quiet, ship.verbose) {
        (true, 0) => return Ok(-1),
        (true, _) => return Err(both()),
        (false, n @ 1..) => return Ok(n.min(i8::MAX as u8) as i8),
        (false, 0) => {}
    }
    let on = |name: &str| -> Result<bool, CliError> {
        match cx.var(name) {
            None | Some("") | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(v) => Err(CliError::Usage(format!(
                "{name}={v}: expected true or false"
            ))),
        }
    };
    match (on("CARGO_TERM_QUIET")?, on("CARGO_TERM_VERBOSE")?) {
        (true, true) => Err(both()),
        (true, false) => Ok(-1),
        (false, true) => Ok(1),
        (false, false) => Ok(0),
    }
}

/// What -v and -vv add before a command: the `SHIP_*` variables ignored (-v), where the
/// project was found (-vv).
fn notes(ship: &cli::Ship, cx: &mut Context) {
    let warning = anstyle::Style::new()
        .fg_color(Some(anstyle::AnsiColor::Yellow.into()))
        .bold();
    let sources = ship_core::Sources {
        env: cx.env.clone(),
        adapter_tables: adapters::table_names(),
        ..Default::default()
    };
    for var in sources.ignored_variables() {
        let _ = writeln!(
            cx.stderr,
            "{warning}warning{warning:#}: ignoring the environment variable {var}: \
             cargo ship has no configuration key `{}`",
            var["SHIP_".len()..].to_ascii_lowercase()
        );
    }
    if cx.verbosity > 1
        && !matches!(
            ship.command,
            cli::Command::Init(_) | cli::Command::Completions(_)
        )
        && let Ok(p) =
            project::Project::find(&cx.cwd, ship.manifest_path.as_deref(), cx.var("CARGO"))
    {
        let note = anstyle::Style::new().bold();
        let _ = writeln!(
            cx.stderr,
            "{note}note{note:#}: project {}, configuration {}, cargo ship's files in {}",
            p.root.display(),
            p.ship_toml.display(),
            p.ship_dir.display()
        );
    }
}
