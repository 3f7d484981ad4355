//! Every library crate's example runs (`cargo run -p <crate> --example <name>`, each built
//! against its own crate alone) and says what it should: a plan from a Ship.toml string, a
//! script run here and on real SSH hosts, what cleanup removes, a virtualenv's key and a
//! node_modules key that agree with the crates' own functions.

use ship_tests::Fleet;
use std::path::{Path, PathBuf};
use std::process::Output;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Runs `cargo run -p package --example example -- args` offline; returns its output.
fn example(package: &str, example: &str, args: &[&str]) -> Output {
    std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(root())
        .args(["run", "-q", "--offline", "--locked", "-p", package])
        .args(["--example", example, "--"])
        .args(args)
        .env_remove("CARGO_MAKEFLAGS")
        .output()
        .unwrap()
}

fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The 64-hex-digit keys in `text`, in order.
fn keys(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_once("key ").map(|(_, k)| k.trim().to_owned()))
        .inspect(|k| {
            assert!(
                k.len() == 64 && k.chars().all(|c| c.is_ascii_hexdigit()),
                "{k}"
            )
        })
        .collect()
}

#[test]
fn ship_core_plans_a_deploy_from_a_ship_toml_string() {
    let text = stdout_ok(&example("ship-core", "plan_from_toml", &[]));
    assert!(
        text.starts_with("Plan: deploy webxample to production\n"),
        "{text}"
    );
    assert!(
        text.contains("hosts      3 (10 at a time): web1 [web], web2 [web], job1 [worker]"),
        "{text}"
    );
    assert!(text.contains("migrate  once: web1"), "{text}");
    assert!(
        text.contains("current → releases/20261125120000 (atomic rename)"),
        "{text}"
    );
    // The migration comes after install and before the switch, as its hook says.
    let at = |s: &str| text.find(s).unwrap_or_else(|| panic!("no {s} in {text}"));
    assert!(
        at("install  all") < at("migrate  once") && at("migrate  once") < at("switch   all"),
        "{text}"
    );

    let json = stdout_ok(&example("ship-core", "plan_from_toml", &["--json"]));
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(plan["stage"], "production");
    assert_eq!(plan["release"], "20261125120000");
    assert_eq!(plan["hosts"].as_array().unwrap().len(), 3, "{json}");
    // Planning is pure: the same inputs, the same bytes.
    assert_eq!(
        json,
        stdout_ok(&example("ship-core", "plan_from_toml", &["--json"]))
    );
}

#[test]
fn ship_ssh_runs_a_script_here_and_on_ssh_hosts() {
    let text = stdout_ok(&example("ship-ssh", "run_script", &[]));
    assert!(text.contains("local: exit status 0\n"), "{text}");
    assert!(text.contains("local | six times seven is 42\n"), "{text}");

    // A host that refuses the connection: named, and the example fails.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ssh_config");
    std::fs::write(&config, "Host refusing\n  HostName 127.0.0.1\n  Port 1\n").unwrap();
    let out = example(
        "ship-ssh",
        "run_script",
        &["-F", config.to_str().unwrap(), "refusing"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.starts_with("refusing: "), "{text}");

    // Real hosts over OpenSSH, at once.
    let fleet = Fleet::start(2);
    let config = fleet.ssh_config();
    let out = example(
        "ship-ssh",
        "run_script",
        &["-F", config.to_str().unwrap(), "h1", "h2"],
    );
    let text = stdout_ok(&out);
    for host in ["h1", "h2"] {
        assert!(text.contains(&format!("{host}: exit status 0\n")), "{text}");
        assert!(
            text.contains(&format!("{host} | six times seven is 42\n")),
            "{text}"
        );
    }
}

#[test]
fn ship_layouts_says_what_cleanup_removes() {
    let text = stdout_ok(&example("ship-layouts", "cleanup", &[]));
    // keep 3: the new release, the live one and the previous good one stay; the failed
    // one goes first, then the oldest.
    assert!(
        text.contains("cleanup removes: 20261101000000 20261102000000 20261103000000\n"),
        "{text}"
    );
    assert!(
        text.contains("kept: 20261104000000 20261105000000 20261106000000\n"),
        "{text}"
    );

    let args = [
        "--keep", "5", "--layout", "version", "1.3.0", "1.0.0:G", "1.1.0:F", "1.2.0:L",
    ];
    let text = stdout_ok(&example("ship-layouts", "cleanup", &args));
    assert!(
        text.starts_with("layout version, keep_releases = 5"),
        "{text}"
    );
    assert!(text.contains("cleanup removes: 1.1.0\n"), "{text}");

    let out = example("ship-layouts", "cleanup", &["--layout", "blue-green"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("timestamp, version, ab, single"), "{err}");
}

#[test]
fn ship_python_computes_the_virtualenv_key_of_a_project() {
    let text = stdout_ok(&example("ship-python", "venv_key", &[]));
    let demo = keys(&text);
    assert_eq!(demo.len(), 2, "{text}");
    assert_ne!(demo[0], demo[1], "another requirement, another key");
    assert!(text.contains(&format!(".ship/venvs/{}-py<version>", demo[0])));

    // The same files on disk give the same key as the first project in memory.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("requirements.txt"),
        "flask==3.0.3\ngunicorn==23.0.0\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join(".wheelhouse")).unwrap();
    std::fs::write(
        dir.path().join(".wheelhouse/flask-3.0.3-py3-none-any.whl"),
        "the wheel's bytes",
    )
    .unwrap();
    let text = stdout_ok(&example(
        "ship-python",
        "venv_key",
        &[dir.path().to_str().unwrap()],
    ));
    assert_eq!(keys(&text), [demo[0].clone()], "{text}");
}

#[test]
fn ship_node_computes_the_node_modules_key_of_a_project() {
    let text = stdout_ok(&example("ship-node", "lock_key", &[]));
    let demo = keys(&text);
    assert_eq!(demo.len(), 2, "{text}");
    assert_ne!(demo[0], demo[1], "another lock file, another key");

    let react = root().join("examples/react");
    let text = stdout_ok(&example(
        "ship-node",
        "lock_key",
        &[react.to_str().unwrap()],
    ));
    let lock = std::fs::read_to_string(react.join("package-lock.json")).unwrap();
    assert_eq!(keys(&text), [ship_node::lock_key(&lock)], "{text}");
    assert!(text.contains("here: npm ci"), "{text}");
    assert!(text.contains("step node.modules:"), "{text}");

    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("package.json"), "{}").unwrap();
    let out = example("ship-node", "lock_key", &[empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no package-lock.json"));
}
