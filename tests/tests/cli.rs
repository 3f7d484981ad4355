//! The command line as a new user meets it: `init`, `--help`, exit codes.

use ship_tests::Fixture;

#[test]
fn init_writes_a_ship_toml_that_plans_and_refuses_to_overwrite_it() {
    let f = Fixture::new(&[
        ("requirements.txt", "flask==3.0.3\n"),
        ("app.py", "print('hi')\n"),
    ]);
    let out = f.ship(&["init"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("a Python project"), "{}", out.stdout);
    let text = std::fs::read_to_string(f.join("Ship.toml")).unwrap();
    assert!(text.contains("requirements.txt"), "{text}");
    assert!(text.contains("[production.roles.web]"), "{text}");
    // A health check by default: gunicorn's address, uncommented.
    assert!(
        text.contains("[default.health]\n")
            && text.contains("\nurl = \"http://127.0.0.1:8000/\"\n"),
        "{text}"
    );
    // What init wrote plans as it is, for both stages.
    for stage in ["staging", "production"] {
        // (Without the wheelhouse: building flask's wheel would need PyPI.)
        let plan = f.ship(&[
            "plan",
            stage,
            "--release-id",
            "20261122235800",
            "--set",
            "python.wheelhouse=false",
        ]);
        assert_eq!(plan.code, 0, "{stage}: {}", plan.stderr);
        assert!(plan.stdout.contains("venv"), "{}", plan.stdout);
        assert!(
            plan.stdout.contains("http://127.0.0.1:8000/"),
            "the verify step checks it: {}",
            plan.stdout
        );
    }
    let again = f.ship(&["init"]);
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("--force"), "{}", again.stderr);
    assert_eq!(f.ship(&["init", "--force"]).code, 0);
}

#[test]
fn init_suits_a_node_front_end() {
    let f = Fixture::new(&[(
        "package.json",
        r#"{"name": "front", "version": "1.2.0", "scripts": {"build": "mkdir -p dist && echo built > dist/index.html"}}"#,
    )]);
    assert_eq!(f.ship(&["init"]).code, 0);
    let text = std::fs::read_to_string(f.join("Ship.toml")).unwrap();
    assert!(
        text.contains("[default.node]\nship = [\"dist/\"]"),
        "{text}"
    );
    assert!(text.contains("npm run build"), "{text}");
    assert!(
        text.contains("[default.health]\n") && text.contains("\nrun = \"test -s index.html\"\n"),
        "{text}"
    );
    // Without a lock file the plan says how to make one.
    let plan = f.ship(&["plan", "staging"]);
    assert_eq!(plan.code, 1, "{}", plan.stderr);
    assert!(plan.stderr.contains("npm install"), "{}", plan.stderr);
}

#[test]
fn init_checks_a_node_service_on_its_port_and_leaves_a_check_it_cannot_guess_commented() {
    let f = Fixture::new(&[
        (
            "package.json",
            r#"{"name": "api", "version": "1.0.0", "main": "src/main.js"}"#,
        ),
        (
            "src/main.js",
            "const app = require('express')();\napp.listen(process.env.PORT || 3001);\n",
        ),
    ]);
    assert_eq!(f.ship(&["init"]).code, 0);
    let text = std::fs::read_to_string(f.join("Ship.toml")).unwrap();
    assert!(
        text.contains("[default.health]\nurl = \"http://127.0.0.1:3001/\"")
            || text.contains("\nurl = \"http://127.0.0.1:3001/\"\n"),
        "{text}"
    );
    assert!(!text.contains("# [default.health]"), "{text}");

    // Nothing to guess from: the check is there, commented, saying so.
    let f = Fixture::new(&[("README", "a static site\n")]);
    assert_eq!(f.ship(&["init"]).code, 0);
    let text = std::fs::read_to_string(f.join("Ship.toml")).unwrap();
    assert!(text.contains("cannot tell"), "{text}");
    assert!(text.contains("# [default.health]\n# url = "), "{text}");
    assert!(!text.contains("\n[default.health]"), "{text}");
}

#[test]
fn help_explains_every_flag_with_examples() {
    let f = Fixture::new(&[]);
    let top = f.ship(&["--help"]);
    assert_eq!(top.code, 0);
    for expected in [
        "plan",
        "init",
        "--manifest-path",
        "--color",
        "Examples:",
        "Exit codes",
    ] {
        assert!(
            top.stdout.contains(expected),
            "{expected} in:\n{}",
            top.stdout
        );
    }
    let plan = f.ship(&["plan", "--help"]);
    assert_eq!(plan.code, 0);
    for expected in [
        "<STAGE>",
        "--release-id",
        "--version",
        "--set",
        "--format",
        "--verbose",
        "--manifest-path",
        "Examples:",
    ] {
        assert!(
            plan.stdout.contains(expected),
            "{expected} in:\n{}",
            plan.stdout
        );
    }
    // Every flag is explained by a sentence (long help puts it on the next line).
    let lines: Vec<&str> = plan.stdout.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        if t.starts_with("--")
            || (t.starts_with('-') && t.chars().nth(1).is_some_and(char::is_alphabetic))
        {
            let next = lines.get(i + 1).map_or("", |l| l.trim());
            assert!(
                next.len() > 10 && !next.starts_with('-'),
                "a flag without explanation: {line}"
            );
        }
    }
    let init = f.ship(&["init", "--help"]);
    assert!(init.stdout.contains("--force"), "{}", init.stdout);

    // Every subcommand `cargo ship --help` lists: every flag explained, and examples.
    let listed: Vec<String> = top
        .stdout
        .split("Commands:")
        .nth(1)
        .and_then(|s| s.split("Options:").next())
        .expect("a Commands section")
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect();
    for cmd in [
        "plan",
        "apply",
        "rollback",
        "releases",
        "check",
        "run",
        "unlock",
        "promote",
        "tasks",
        "task",
        "ssh",
        "maintenance",
        "completions",
        "init",
    ] {
        assert!(
            listed.iter().any(|c| c == cmd),
            "{cmd} is listed: {listed:?}"
        );
    }
    for cmd in &listed {
        let flags: &[&str] = match cmd.as_str() {
            "apply" => &[
                "--release-id",
                "--version",
                "--ref",
                "--set",
                "--verbose",
                "--format",
                "--accept-new-host-keys",
            ],
            "plan" => &["--ref", "--roles", "--hosts", "--exclude"],
            "rollback" => &[
                "--to",
                "--format",
                "--accept-new-host-keys",
                "--roles",
                "--hosts",
                "--exclude",
            ],
            "releases" | "check" | "run" | "maintenance" | "task" => &[
                "--format",
                "--accept-new-host-keys",
                "--roles",
                "--hosts",
                "--exclude",
            ],
            "unlock" | "ssh" => &["--accept-new-host-keys", "--roles", "--hosts", "--exclude"],
            "tasks" => &["--format"],
            "promote" => &[
                "--release-id",
                "--plan-only",
                "--format",
                "--accept-new-host-keys",
            ],
            "init" => &["--force"],
            _ => &[],
        };
        let cmd = cmd.as_str();
        let help = f.ship(&[cmd, "--help"]);
        assert_eq!(help.code, 0, "{cmd}");
        assert!(help.stdout.contains("Examples:"), "{cmd}:\n{}", help.stdout);
        for flag in flags {
            assert!(help.stdout.contains(flag), "{cmd} {flag}:\n{}", help.stdout);
        }
        let lines: Vec<&str> = help.stdout.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with("--") {
                let next = lines.get(i + 1).map_or("", |l| l.trim());
                assert!(
                    next.len() > 10 && !next.starts_with('-'),
                    "{cmd}: unexplained {line}"
                );
            }
        }
    }
}

#[test]
fn completions_are_generated_for_the_cargo_subcommand() {
    let f = Fixture::new(&[]);
    for shell in ["bash", "zsh", "fish"] {
        // The script wraps `cargo` and asks cargo-ship for the words (cargo-ship/tests/
        // completions.rs runs it in bash); the words come from the command line itself.
        let out = f.ship(&["completions", shell]);
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        assert!(
            out.stdout.contains("cargo-ship __complete --shell"),
            "{shell}"
        );
        let words = |line: &[&str]| {
            let index = (line.len() - 1).to_string();
            let mut args = vec!["__complete", "--shell", shell, "--index", &index, "--"];
            args.extend_from_slice(line);
            let out = f.ship(&args);
            assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
            out.stdout
        };
        assert!(
            words(&["cargo", "ship", "rol"]).starts_with("rollback"),
            "{shell}"
        );
        assert!(
            words(&["cargo", "ship", "check", "x", "--acc"]).starts_with("--accept-new-host-keys"),
            "{shell}"
        );
    }
    // elvish and powershell: clap's static script for `cargo-ship`.
    let out = f.ship(&["completions", "elvish"]);
    assert!(
        out.stdout.contains("accept-new-host-keys"),
        "{}",
        out.stdout
    );
    let out = f.ship(&["completions", "tcsh"]);
    assert_eq!(out.code, 2);
}

#[test]
fn init_suits_a_node_service_with_a_build() {
    let f = Fixture::new(&[(
        "package.json",
        r#"{"name": "api", "version": "1.0.0", "scripts": {"build": "tsc", "start": "node dist/server.js"}, "dependencies": {"express": "^4.21.0"}}"#,
    )]);
    assert_eq!(f.ship(&["init"]).code, 0);
    let text = std::fs::read_to_string(f.join("Ship.toml")).unwrap();
    // No ship list: the commit's files and the build's dist/ ship; the hosts install express.
    assert!(
        text.contains("[default.node]\ninstall = \"production\"\n"),
        "{text}"
    );
    assert!(!text.contains("ship = "), "{text}");
}
