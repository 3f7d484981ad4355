//! Helpers for cargo ship's tests: fixture projects in temporary directories, `cargo ship`
//! run in-process on them with captured output, and a [`Fleet`] of real SSH hosts.

mod fleet;
pub use fleet::{Fleet, TestHost};

use cargo_ship::{Context, main_with};
use std::path::{Path, PathBuf};

/// A project in a temporary directory.
pub struct Fixture {
    dir: tempfile::TempDir,
}

/// What a command printed and returned.
#[derive(Debug)]
pub struct Output {
    /// The exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Fixture {
    /// A project with these files (`path`, `contents`).
    pub fn new(files: &[(&str, &str)]) -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let f = Fixture { dir };
        for (path, contents) in files {
            f.write(path, contents);
        }
        f
    }

    /// Writes a file of the project.
    pub fn write(&self, path: &str, contents: &str) {
        let p = self.dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
        std::fs::write(p, contents).expect("write");
    }

    /// The project's directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the project.
    pub fn join(&self, path: &str) -> PathBuf {
        self.dir.path().join(path)
    }

    /// Runs `cargo ship ARGS` in the project, with these environment variables only.
    pub fn ship_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut argv = vec!["cargo-ship", "ship"];
        argv.extend_from_slice(args);
        let mut cx = Context::new(self.dir.path(), argv);
        cx.env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        if let Ok(path) = std::env::var("PATH") {
            cx.env.push(("PATH".to_owned(), path));
        }
        let code = main_with(&mut cx);
        Output {
            code,
            stdout: cx.stdout_text(),
            stderr: cx
                .stderr_text()
                .replace(&self.dir.path().display().to_string(), "[project]"),
        }
    }

    /// Runs `cargo ship ARGS` in the project.
    pub fn ship(&self, args: &[&str]) -> Output {
        self.ship_env(args, &[])
    }
}
