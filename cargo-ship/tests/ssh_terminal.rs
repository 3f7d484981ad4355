//! `cargo ship ssh` as a person uses it: the binary on a terminal (a pty from Python's `pty`
//! module), typing into the shell it opens on a real SSH host (issue 19).

use ship_tests::{Fixture, Fleet, ok};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs `cargo-ship ARGS` in `f` on a pseudo-terminal, typing `input`; (exit code, what the
/// terminal showed).
fn on_terminal(f: &Fixture, args: &[&str], input: &str) -> (i32, String) {
    let mut child = Command::new("timeout")
        .args(["60", "python3", "-c"])
        .arg(
            "import os, pty, sys\n\
             status = pty.spawn(sys.argv[1:])\n\
             sys.exit(os.waitstatus_to_exitcode(status))",
        )
        .arg(env!("CARGO_BIN_EXE_cargo-ship"))
        .args(args)
        .current_dir(f.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut stdin = child.stdin.take().unwrap();
    // The shell reads what was typed once it starts; give ssh time to take the terminal.
    std::thread::sleep(Duration::from_secs(2));
    stdin.write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn ssh_opens_a_shell_in_the_live_release_with_the_apps_variables() {
    let fleet = Fleet::start(2);
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nssh_config = \"{}\"\n\
         [staging]\ninventory = {{ command = \"cat inventory.json\" }}\n",
        fleet.ssh_config().display()
    );
    let f = Fixture::new(&[
        ("index.html", "v1\n"),
        (
            "inventory.json",
            r#"[{"name": "h1", "roles": ["web"], "vars": {"region": "eu-1"}},
                {"name": "h2", "roles": ["worker"], "vars": {"region": "eu-2"}}]"#,
        ),
        ("Ship.toml", &ship),
    ]);
    f.commit("v1");
    ok(&f.ship(&["apply", "staging", "--release-id", "20260101000001"]));
    // Only h2 is reached.
    let logins = |h: &str| fleet.log_lines(h, "Accepted publickey");
    let before = (logins("h1"), logins("h2"));

    let (code, screen) = on_terminal(
        &f,
        &["ship", "ssh", "staging", "h2"],
        "echo \"at=$(pwd) $SHIP_STAGE/$SHIP_RELEASE/$SHIP_HOST/$SHIP_ROLE/$SHIP_VAR_REGION tty=$(tty)\"; cat index.html; exit\n",
    );
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains("at=/srv/app/current "),
        "in current/: {screen}"
    );
    assert!(
        screen.contains("staging/20260101000001/h2/worker/eu-2 tty=/dev/pts/"),
        "the app's variables, on a terminal: {screen}"
    );
    assert!(screen.contains("v1"), "{screen}");
    assert_eq!(logins("h1"), before.0, "h1 was not reached");
    assert!(logins("h2") > before.1, "h2 was reached");

    // The shell's status is said, exit 3; an unknown host, or none named on a stage of
    // several: exit 2, the hosts named, nothing reached.
    let (code, screen) = on_terminal(&f, &["ship", "ssh", "staging", "h1"], "exit 5\n");
    assert_eq!(code, 3, "{screen}");
    assert!(screen.contains("the shell on h1 exited with 5"), "{screen}");
    let out = f.ship(&["ssh", "staging"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("which host?") && out.stderr.contains("h1, h2"),
        "{}",
        out.stderr
    );
    let out = f.ship(&["ssh", "staging", "h9"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    // A filter that leaves one host picks it.
    let (code, screen) = on_terminal(
        &f,
        &[
            "ship",
            "ssh",
            "staging",
            "--roles",
            "worker",
            "--",
            "echo",
            "on",
            "$SHIP_HOST",
        ],
        "",
    );
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("on h2"), "{screen}");
}
