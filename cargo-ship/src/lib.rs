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
    let cli::Cargo::Ship(ship) = match cli::Cargo::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            let styled = e.render();
            let text = if cx.terminal {
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
    let color = match ship.color {
        cli::ColorChoice::Always => true,
        cli::ColorChoice::Never => false,
        cli::ColorChoice::Auto => cx.terminal && cx.var("NO_COLOR").is_none_or(str::is_empty),
    };
    let result = if ship.quiet {
        let stderr = std::mem::replace(&mut cx.stderr, Box::new(std::io::sink()));
        let result = commands::run(&ship, cx, color);
        cx.stderr = stderr;
        result
    } else {
        commands::run(&ship, cx, color)
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            report::print(&e, color, &mut cx.stderr);
            exit_code(&e)
        }
    }
}
