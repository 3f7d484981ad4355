//! The installed binary: `cargo-ship …` and `cargo ship …` (cargo finds `cargo-ship` on PATH).

use std::path::Path;
use std::process::Command;

fn path_with_binary() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_cargo-ship"));
    format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn cargo_ship_is_a_cargo_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Ship.toml"),
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/demo\"\nsource = { dir = \".\" }\n[staging]\nhosts = [\"h1\"]\n",
    )
    .unwrap();
    let out = Command::new("cargo")
        .args(["ship", "plan", "staging", "--release-id", "20261122235800"])
        .current_dir(dir.path())
        .env("PATH", path_with_binary())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Plan: deploy demo to staging"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("saved: target/ship/staging.plan.json"));

    let help = Command::new("cargo")
        .args(["ship", "--help"])
        .env("PATH", path_with_binary())
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("cargo ship plan production"));
}

#[test]
fn exit_codes_mean_something() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cargo-ship"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    assert_eq!(run(&["--version"]).status.code(), Some(0));
    assert_eq!(
        run(&["plan", "staging"]).status.code(),
        Some(2),
        "no Ship.toml"
    );
    assert_eq!(run(&["no-such-command"]).status.code(), Some(2));
    std::fs::write(
        dir.path().join("Ship.toml"),
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/demo\"\nsource = { dir = \".\" }\n\
         build = [\"exit 3\"]\n[staging]\nhosts = [\"h1\"]\n",
    )
    .unwrap();
    let failed = run(&["plan", "staging"]);
    assert_eq!(failed.status.code(), Some(1), "a failing build command");
    assert!(String::from_utf8_lossy(&failed.stderr).contains("build command `exit 3` failed"));
}
