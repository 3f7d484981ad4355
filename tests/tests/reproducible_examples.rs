//! Same commit, same artifact, on any machine (issue 18): the Django and React examples,
//! each cloned twice into different directories, with different file times and a different
//! `SOURCE_DATE_EPOCH` in the environment (another day's clock), plan to the same artifact
//! digest. Real pip (Django and gunicorn from PyPI) and real npm (`npm ci`, `vite build`).

use ship_tests::{Fixture, git};
use std::path::Path;

/// A clean clone of `examples/<name>` as one commit, in a new directory, its files dated
/// `mtime` (`touch -d` syntax).
fn clone(name: &str, mtime: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    let origin = Fixture::copy_of(&dir, &[]);
    origin.commit(name);
    let parent = tempfile::tempdir().unwrap();
    let to = parent
        .path()
        .join(format!("clone-{mtime}").replace([' ', ':'], "-"));
    git(
        parent.path(),
        &[
            "clone",
            "-q",
            &origin.path().display().to_string(),
            &to.display().to_string(),
        ],
    );
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "find . -path ./.git -prune -o -exec touch -h -d '{mtime}' {{}} +"
        ))
        .current_dir(&to)
        .status()
        .unwrap();
    assert!(status.success());
    (parent, to)
}

/// The artifact digest (and label) `cargo ship plan staging` gives in the clone `dir`,
/// run there as it is, with `SOURCE_DATE_EPOCH` set to `epoch`.
fn digest(dir: &Path, epoch: &str, set: &[&str]) -> (String, String) {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let mut argv = vec!["cargo-ship", "ship", "plan", "staging", "--format", "json"];
    for s in set {
        argv.extend(["--set", s]);
    }
    let mut cx = cargo_ship::Context::new(dir, argv);
    cx.env = vec![
        ("USER".to_owned(), "tester".to_owned()),
        ("HOME".to_owned(), home),
        ("SOURCE_DATE_EPOCH".to_owned(), epoch.to_owned()),
        ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
    ];
    let code = cargo_ship::main_with(&mut cx);
    assert_eq!(
        code,
        0,
        "stdout:\n{}\nstderr:\n{}",
        cx.stdout_text(),
        cx.stderr_text()
    );
    let plan: serde_json::Value = serde_json::from_str(&cx.stdout_text()).unwrap();
    (
        plan["artifact"]["digest"].as_str().unwrap().to_owned(),
        plan["artifact"]["source"].as_str().unwrap().to_owned(),
    )
}

fn same_digest_in_two_clones(name: &str, set: &[&str]) {
    let (_a, a) = clone(name, "2026-01-01 00:00:00");
    let (_b, b) = clone(name, "2026-03-15 12:34:56");
    let (da, sa) = digest(&a, "1767225600", set);
    let (db, sb) = digest(&b, "1773578096", set);
    assert_eq!(sa, sb);
    assert_eq!(
        da, db,
        "{name}: two clean clones of one commit, two artifacts"
    );
}

#[test]
fn the_django_example_gives_one_digest_in_two_clones() {
    same_digest_in_two_clones("django", &[]);
}

#[test]
fn the_react_example_gives_one_digest_in_two_clones() {
    // examples/react/package-lock.json is out of step with its package.json today (`npm
    // ci` refuses it: rollup's optional packages are missing), so the build installs with
    // `npm install`, which completes the lock file in the build's own tree; the rest is the
    // example's own build (`vite build`), shipped as its Ship.toml says (dist/).
    same_digest_in_two_clones(
        "react",
        &[r#"node.build=["npm install --no-audit --no-fund", "npm run build"]"#],
    );
}
