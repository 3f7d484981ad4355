//! Helpers for cargo ship's tests: fixture projects in temporary directories, `cargo ship`
//! run in-process on them with captured output, and a [`Fleet`] of real SSH hosts.

mod fleet;
pub mod load;
pub mod synthetic;
pub use fleet::{Fleet, KillOnDrop, TestHost, TestUser};

use cargo_ship::{Context, main_with};
use std::path::{Path, PathBuf};

/// A project in a temporary directory.
pub struct Fixture {
    dir: tempfile::TempDir,
}

/// The body of `GET http://<ip>:<port>/`, or the error.
pub fn http_get(ip: std::net::Ipv4Addr, port: u16) -> Result<String, String> {
    http_get_path(ip, port, "/")
}

/// The body of `GET http://<ip>:<port><path>` when it answers 200, or the error.
pub fn http_get_path(ip: std::net::Ipv4Addr, port: u16, path: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s =
        std::net::TcpStream::connect_timeout(&(ip, port).into(), std::time::Duration::from_secs(5))
            .map_err(|e| format!("connect {ip}:{port}: {e}"))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    match text.split_once("\r\n\r\n") {
        Some((head, body))
            if head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200") =>
        {
            Ok(body.to_owned())
        }
        _ => Err(format!(
            "GET {path}: unexpected answer: {:?}",
            text.chars().take(500).collect::<String>()
        )),
    }
}

/// Runs `git ARGS` in `dir` as a fixed tester, at a fixed date; returns what it printed.
/// Panics, with git's message, when it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=Tester",
            "-c",
            "user.email=tester@example.com",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Waits until `done` holds, asking every 50 ms; fails saying `what` after `limit`.
pub fn wait_until(what: &str, limit: std::time::Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Asserts that a command succeeded, showing what it printed when it did not.
#[track_caller]
pub fn ok(out: &Output) {
    assert_eq!(
        out.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
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

    /// A project copied from `tests/fixtures/<name>`, with these files written over it.
    pub fn from_fixture(name: &str, files: &[(&str, &str)]) -> Fixture {
        let from = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name);
        Fixture::copy_of(&from, files)
    }

    /// A project copied from `from` (without what builds and tests leave: `target/`,
    /// `node_modules/`, `dist/`, `.fleet/`, `__pycache__/`), with these files written over it.
    pub fn copy_of(from: &Path, files: &[(&str, &str)]) -> Fixture {
        let f = Fixture::new(&[]);
        for entry in walkdir::WalkDir::new(from).min_depth(1) {
            let entry = entry.expect("a fixture file");
            let rel = entry.path().strip_prefix(from).expect("under the fixture");
            let skip = ["__pycache__", "target", "node_modules", ".fleet", "dist"];
            if rel
                .components()
                .any(|c| skip.iter().any(|s| c.as_os_str() == *s))
            {
                continue;
            }
            let to = f.path().join(rel);
            if entry.file_type().is_dir() {
                std::fs::create_dir_all(&to).expect("mkdir");
            } else {
                std::fs::copy(entry.path(), &to).expect("copy");
            }
        }
        for (path, contents) in files {
            f.write(path, contents);
        }
        f
    }

    /// Commits every file of the project to its git repository (made on first use), with
    /// fixed dates: the same files give the same commit, so plans can be snapshots. A
    /// project without a `.gitignore` gets one for `target/`, `__pycache__/` and
    /// `node_modules/`; one the project has is kept (what it ignores is part of the test).
    pub fn commit(&self, message: &str) {
        if !self.join(".git").exists() {
            git(self.path(), &["init", "-q", "-b", "main"]);
            if !self.join(".gitignore").exists() {
                self.write(".gitignore", "target/\n__pycache__/\nnode_modules/\n");
            }
        }
        git(self.path(), &["add", "-A"]);
        git(
            self.path(),
            &["commit", "-q", "--allow-empty", "-m", message],
        );
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
        self.ship_in("", args, env)
    }

    /// Runs `cargo ship ARGS` in the directory `dir` of the project (`""`: its root), with
    /// these environment variables only.
    pub fn ship_in(&self, dir: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut argv = vec!["cargo-ship", "ship"];
        argv.extend_from_slice(args);
        let mut cx = Context::new(&self.dir.path().join(dir), argv);
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
