//! README.md's quickstart, run as written: the commands of its first `sh` block, from the
//! repository root. The one liberty taken: `cargo install` gets `--debug --root <tmp>` (and
//! its own target directory) so that the test does not touch `~/.cargo/bin` and builds fast;
//! the quickstart then finds `cargo ship` on PATH, as a user's shell would.

use std::path::Path;
use std::process::Command;

#[test]
fn the_readme_quickstart_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = readme
        .split("## Quickstart")
        .nth(1)
        .expect("README.md has a Quickstart section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block in the Quickstart");
    let commands: Vec<&str> = block
        .lines()
        .flat_map(|l| l.split("&&"))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        commands,
        [
            "cargo install --path cargo-ship --locked",
            "examples/quickstart.sh"
        ],
        "the quickstart changed: update this test with it"
    );

    let install_root = tempfile::tempdir().unwrap();
    let target = root.join("target").join("quickstart-test");
    let path = format!(
        "{}:{}",
        install_root.path().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for command in commands {
        let mut line = command.to_owned();
        if line.starts_with("cargo install") {
            line.push_str(&format!(
                " --debug --root {}",
                install_root.path().display()
            ));
        }
        let out = Command::new("sh")
            .arg("-c")
            .arg(&line)
            .current_dir(&root)
            .env("PATH", &path)
            .env("CARGO_TARGET_DIR", &target)
            // A block of loopback addresses no other fleet on this machine is using.
            .env("FLEET_NET", free_net().to_string())
            .env_remove("CARGO_MAKEFLAGS")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "`{line}` failed ({}):\n{stdout}\n{stderr}",
            out.status
        );
        if command == "examples/quickstart.sh" {
            // What the quickstart says it shows: a deploy, a second release, a rollback.
            for expected in [
                "All 3 hosts of production are ready.",
                "Deployed webxample release",
                "Rolled back webxample on production",
            ] {
                assert!(stdout.contains(expected), "{expected}:\n{stdout}\n{stderr}");
            }
        }
    }
}

/// The first N from 2 such that nothing listens on 127.0.N.1-3, port 2222.
fn free_net() -> u8 {
    (2..250)
        .find(|n| {
            (1..=3).all(|h| {
                std::net::TcpListener::bind((std::net::Ipv4Addr::new(127, 0, *n, h), 2222)).is_ok()
            })
        })
        .expect("a free block of loopback addresses")
}
