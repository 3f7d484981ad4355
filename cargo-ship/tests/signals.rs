//! SIGINT and SIGTERM to `cargo ship apply`: the scripts in flight finish their segment, no
//! host goes further, every host is put back, and the exit code says which signal it was.

use ship_tests::{Fixture, Fleet, wait_until};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Two real hosts and a project whose `slow` task, hooked `after` a phase, waits for
/// `/srv/go` on its host.
fn slow_project(after: &str) -> (Fleet, Fixture) {
    let fleet = Fleet::start(2);
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nsource = {{ dir = \"app\" }}\n\
         ssh_config = \"{}\"\n\
         [default.tasks.slow]\nrun = \"echo $$ > /srv/slow.pid; while [ ! -e /srv/go ]; do sleep 0.1; done\"\nafter = \"{after}\"\n\
         [staging]\nhosts = [\"h1\", \"h2\"]\n",
        fleet.ssh_config().display()
    );
    let f = Fixture::new(&[("app/index.html", "v1\n"), ("Ship.toml", &ship)]);
    (fleet, f)
}

/// `cargo-ship ARGS` started in the project as user `killed`, its output captured.
fn start(f: &Fixture, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_cargo-ship"))
        .args(args)
        .current_dir(f.path())
        .env("USER", "killed")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (20 s at most, else fails saying `never`) until `done` holds on h1 and h2.
fn every_host(never: &str, done: impl Fn(&str) -> bool) {
    wait_until(never, Duration::from_secs(20), || {
        ["h1", "h2"].iter().all(|h| done(h))
    });
}

fn interrupted_deploy_puts_every_host_back(signal: &str, code: i32) {
    let (fleet, f) = slow_project("link");
    for h in ["h1", "h2"] {
        fleet.sh(h, "touch /srv/go");
    }
    let apply = |id: &str| start(&f, &["apply", "staging", "--release-id", id]);
    let first = apply("20261101000001").wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );

    for h in ["h1", "h2"] {
        fleet.sh(h, "rm /srv/go");
    }
    f.write("app/index.html", "v2\n");
    let child = apply("20261101000002");
    // Wait until both hosts are in the slow task (the new release is unpacked), then signal.
    every_host("the deploy never reached the slow task", |h| {
        fleet
            .try_sh(h, "test -e /srv/app/releases/20261101000002/index.html")
            .0
    });
    let kill = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    std::thread::sleep(Duration::from_millis(300));
    for h in ["h1", "h2"] {
        fleet.sh(h, "touch /srv/go");
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(
        stderr.contains(&format!("interrupted by SIG{signal}")),
        "{stderr}"
    );
    for h in ["h1", "h2"] {
        assert_eq!(
            fleet.read(h, "/srv/app/current/index.html"),
            "v1\n",
            "{h} still on v1"
        );
        assert!(
            !fleet
                .try_sh(h, "test -e /srv/app/releases/20261101000002")
                .0,
            "the half-made release is gone from {h}"
        );
        assert!(!fleet.locked(h), "{h} unlocked");
    }
}

#[test]
fn sigint_stops_at_the_sync_point_and_puts_hosts_back() {
    interrupted_deploy_puts_every_host_back("INT", 130);
}

#[test]
fn sigterm_stops_at_the_sync_point_and_puts_hosts_back() {
    interrupted_deploy_puts_every_host_back("TERM", 143);
}

#[test]
fn sigkill_leaves_a_stale_lock_that_unlock_clears_and_cleanup_removes_the_half_made_release() {
    let (fleet, f) = slow_project("link");
    for h in ["h1", "h2"] {
        fleet.sh(h, "touch /srv/go");
    }
    let ship_cmd = |args: &[&str]| start(&f, args);
    let out = ship_cmd(&["apply", "staging", "--release-id", "20261101000001"])
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for h in ["h1", "h2"] {
        fleet.sh(h, "rm /srv/go");
    }
    f.write("app/index.html", "v2\n");
    let mut child = ship_cmd(&["apply", "staging", "--release-id", "20261101000002"]);
    every_host("the deploy never reached the slow task", |h| {
        fleet
            .try_sh(h, "test -e /srv/app/releases/20261101000002/index.html")
            .0
    });
    child.kill().unwrap(); // SIGKILL: nothing is put back
    child.wait().unwrap();
    for h in ["h1", "h2"] {
        fleet.sh(h, "touch /srv/go");
    }

    f.write("app/index.html", "v3\n");
    let blocked = ship_cmd(&["apply", "staging", "--release-id", "20261101000003"])
        .wait_with_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&blocked.stderr);
    assert_eq!(blocked.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("locked by another deploy: killed@"),
        "{stderr}"
    );
    assert!(stderr.contains("(held for "), "{stderr}");

    let unlocked = ship_cmd(&["unlock", "staging"]).wait_with_output().unwrap();
    assert!(unlocked.status.success());
    assert!(String::from_utf8_lossy(&unlocked.stdout).contains("removed the lock held by killed@"));
    let out = ship_cmd(&["apply", "staging", "--release-id", "20261101000003"])
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for h in ["h1", "h2"] {
        assert_eq!(fleet.read(h, "/srv/app/current/index.html"), "v3\n");
        assert!(
            !fleet
                .try_sh(h, "test -e /srv/app/releases/20261101000002")
                .0,
            "the half-made release left by the killed deploy is gone from {h}"
        );
        assert!(
            fleet
                .try_sh(h, "test -e /srv/app/releases/20261101000001")
                .0,
            "v1 kept"
        );
    }
}

#[test]
fn a_signal_after_every_host_switched_lets_the_deploy_complete_and_says_so() {
    let (fleet, f) = slow_project("switch");
    let child = start(&f, &["apply", "staging", "--release-id", "20261101000001"]);
    every_host("the hosts never switched", |h| {
        fleet.try_sh(h, "test -L /srv/app/current").0
    });
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    std::thread::sleep(Duration::from_millis(300));
    for h in ["h1", "h2"] {
        fleet.sh(h, "touch /srv/go");
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("the deploy completed"), "{stderr}");
    for h in ["h1", "h2"] {
        assert_eq!(fleet.read(h, "/srv/app/current/index.html"), "v1\n");
        assert!(!fleet.locked(h), "{h} unlocked");
    }
}

/// A step that never ends (after `after`), a first deploy live, then `signals` (with a pause
/// between them) while the second deploy waits in that step: cargo ship exits within 10 s of
/// the signal that stops it now, with `code`; every host is on v1 again, unlocked, the
/// half-made release gone, and the step stopped on the host.
fn a_step_that_never_ends_is_cut(after: &str, signals: &[&str], code: i32) {
    let (fleet, f) = slow_project(after);
    for h in ["h1", "h2"] {
        fleet.sh(h, "touch /srv/go");
    }
    let apply = |id: &str| start(&f, &["apply", "staging", "--release-id", id]);
    let first = apply("20261101000001").wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    for h in ["h1", "h2"] {
        fleet.sh(h, "rm /srv/go");
    }
    f.write("app/index.html", "v2\n");
    let mut child = apply("20261101000002");
    // Both hosts in the step that never ends (its loop runs there).
    let in_step = |h: &str| match after {
        "switch" => fleet
            .readlink(h, "/srv/app/current")
            .ends_with("20261101000002"),
        _ => {
            fleet
                .try_sh(h, "test -e /srv/app/releases/20261101000002/index.html")
                .0
        }
    };
    every_host("the deploy never reached the step", in_step);
    std::thread::sleep(Duration::from_millis(300));
    let mut last = Instant::now();
    for (i, signal) in signals.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(500));
        }
        let kill = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        last = Instant::now();
    }
    // It ends by itself, promptly: the step is never going to.
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if last.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            panic!(
                "cargo ship still runs 30 s after SIG{}",
                signals.join(", SIG")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = last.elapsed();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(code), "{stderr}");
    assert!(
        took < Duration::from_secs(10),
        "cargo ship took {took:?} to stop after the last signal\n{stderr}"
    );
    assert!(stderr.contains("the steps in flight were cut"), "{stderr}");
    for h in ["h1", "h2"] {
        assert_eq!(
            fleet.read(h, "/srv/app/current/index.html"),
            "v1\n",
            "{h} back on v1\n{stderr}"
        );
        assert!(!fleet.locked(h), "{h} unlocked");
    }
    if after != "switch" {
        for h in ["h1", "h2"] {
            assert!(
                !fleet
                    .try_sh(h, "test -e /srv/app/releases/20261101000002")
                    .0,
                "the half-made release is gone from {h}"
            );
        }
    }
    // The step's loop was stopped on the hosts (their process groups killed).
    for h in ["h1", "h2"] {
        let (running, pid, _) = fleet.try_sh(
            h,
            // A zombie (killed, not yet reaped by init) is not running.
            "ps -o stat= -o pid= -o args= -p $(cat /srv/slow.pid) | grep -v '^Z'",
        );
        assert!(!running, "the step still runs on {h}: pid {pid}\n{stderr}");
    }
    for h in ["h1", "h2"] {
        fleet.sh(h, "touch /srv/go");
    }
}

#[test]
fn sigterm_during_a_step_that_never_ends_stops_within_10_s() {
    a_step_that_never_ends_is_cut("link", &["TERM"], 143);
}

#[test]
fn a_second_sigint_during_a_step_that_never_ends_stops_now() {
    a_step_that_never_ends_is_cut("link", &["INT", "INT"], 130);
}

#[test]
fn sigterm_during_a_restart_that_never_ends_switches_every_host_back() {
    a_step_that_never_ends_is_cut("switch", &["TERM"], 143);
}

/// Sends cargo ship (running `what`) SIG`signal` (KILL: kills it) and waits for it to end:
/// 20 s at most, as the commands it runs last 5 minutes and it waits for them only as long
/// as they take to stop.
fn signalled(mut child: std::process::Child, signal: &str, what: &str) -> std::process::Output {
    if signal == "KILL" {
        child.kill().unwrap();
    } else {
        let kill = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
    }
    // Its output is read meanwhile (a full pipe would hold it up, not its hosts).
    let drain = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|o| Box::new(o) as _));
    let stderr = drain(child.stderr.take().map(|e| Box::new(e) as _));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("`{what}` still waits 20 s after SIG{signal}: its command was not stopped");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::process::Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Whether process `pid` runs on host `h` (a zombie waiting for init is not running).
fn running(fleet: &Fleet, h: &str, pid: &str) -> bool {
    fleet
        .try_sh(
            h,
            &format!("s=$(ps -o stat= -p {pid}) && case $s in Z*) exit 1;; esac"),
        )
        .0
}

/// A command that runs 5 minutes, its pid in /srv/cmd.pid.
const LONG: &str = "sleep 300 & echo $! > /srv/cmd.pid; wait";

/// A user's command on the hosts (`run`, `task`), stopped by `signal` to cargo ship: the
/// command is stopped on every host too (its process group: SIGTERM), not left running
/// after the one who started it is gone, and cargo ship says so with the signal's exit
/// code. A SIGKILL of cargo ship drops its connections, which stops the command as well.
fn a_signal_stops_a_users_command_on_every_host(args: &[&str], signal: &str, code: Option<i32>) {
    let fleet = Fleet::start(2);
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nsource = {{ dir = \"app\" }}\n\
         ssh_config = \"{}\"\n\
         [default.tasks.long]\nrun = \"[ -e /srv/long ] || exit 0; {LONG}\"\nafter = \"install\"\n\
         [default.maintenance]\nfile = \"maintenance.html\"\nbefore = \"[ -e /srv/long ] || exit 0; {LONG}\"\n\
         [staging]\nhosts = [\"h1\", \"h2\"]\n",
        fleet.ssh_config().display()
    );
    let f = Fixture::new(&[("app/index.html", "v1\n"), ("Ship.toml", &ship)]);
    if args[0] != "run" {
        let first = start(&f, &["apply", "staging"]).wait_with_output().unwrap();
        assert!(
            first.status.success(),
            "{}",
            String::from_utf8_lossy(&first.stderr)
        );
    }
    for h in ["h1", "h2"] {
        fleet.sh(h, "touch /srv/long");
    }
    let child = start(&f, args);
    every_host("the command never started", |h| {
        fleet.try_sh(h, "test -s /srv/cmd.pid").0
    });
    let pids: Vec<(&str, String)> = ["h1", "h2"]
        .into_iter()
        .map(|h| (h, fleet.read(h, "/srv/cmd.pid").trim().to_owned()))
        .collect();
    let out = signalled(child, signal, &args.join(" "));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), code, "{stderr}");
    if signal != "KILL" {
        assert!(
            stderr.contains(&format!("stopped by SIG{signal}")),
            "{stderr}"
        );
    }
    let what = args.join(" ");
    for (h, pid) in &pids {
        wait_until(
            &format!(
                "`{what}` stopped by SIG{signal}: its command (pid {pid}) still runs on {h}\n{stderr}"
            ),
            Duration::from_secs(10),
            || !running(&fleet, h, pid),
        );
    }
    // What the command's script does after it (maintenance: remove the lock it took) is
    // done, though the connection may be gone (a SIGKILL).
    for h in ["h1", "h2"] {
        wait_until(
            &format!("`{what}` stopped by SIG{signal}: {h} is left locked\n{stderr}"),
            Duration::from_secs(10),
            || !fleet.locked(h),
        );
    }
}

#[test]
fn sigint_to_run_stops_its_command_on_every_host() {
    a_signal_stops_a_users_command_on_every_host(&["run", "staging", "--", LONG], "INT", Some(130));
}

#[test]
fn sigterm_to_run_stops_its_command_on_every_host() {
    a_signal_stops_a_users_command_on_every_host(
        &["run", "staging", "--", LONG],
        "TERM",
        Some(143),
    );
}

#[test]
fn sigkill_of_run_stops_its_command_on_every_host() {
    a_signal_stops_a_users_command_on_every_host(&["run", "staging", "--", LONG], "KILL", None);
}

#[test]
fn sigint_to_task_stops_its_command_on_every_host() {
    a_signal_stops_a_users_command_on_every_host(&["task", "staging", "long"], "INT", Some(130));
}

/// A local task runs in a process group of its own (a Ctrl-C at the terminal reaches cargo
/// ship, not it): a SIGINT to cargo ship stops it too, as a host's command is stopped.
#[test]
fn sigint_to_a_local_task_stops_its_command() {
    let ship = "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nsource = { dir = \"app\" }\n\
         [default.tasks.long]\nrun = \"[ -e long ] || exit 0; sleep 300 & echo $! > cmd.pid; wait\"\n\
         after = \"install\"\nlocal = true\n\
         [staging]\nhosts = [\"h1\"]\n";
    let f = Fixture::new(&[
        ("app/index.html", "v1\n"),
        ("Ship.toml", ship),
        ("long", ""),
    ]);
    let child = start(&f, &["task", "staging", "long"]);
    let pid_file = f.join("cmd.pid");
    let started = || std::fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n'));
    wait_until(
        "the local task never started",
        Duration::from_secs(20),
        started,
    );
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_owned();
    let out = signalled(child, "INT", "task staging long");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    // A zombie waiting for init is not running.
    let gone = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
            s.rsplit(") ").next().is_some_and(|r| r.starts_with('Z'))
        })
    };
    wait_until(
        &format!(
            "the local task's command (pid {pid}) still runs after SIGINT to cargo ship\n{stderr}"
        ),
        Duration::from_secs(10),
        gone,
    );
}

#[test]
fn sigkill_during_maintenance_stops_its_before_command_and_leaves_no_lock() {
    a_signal_stops_a_users_command_on_every_host(&["maintenance", "staging", "on"], "KILL", None);
}

/// A member of the command's process group that ignores SIGTERM is killed too: `timeout`
/// ends with its child and would not send its SIGKILL.
#[test]
fn sigint_to_run_kills_what_ignores_sigterm() {
    a_signal_stops_a_users_command_on_every_host(
        &[
            "run",
            "staging",
            "--",
            "(trap '' TERM; sleep 300 & echo $! > /srv/cmd.pid; wait) & wait",
        ],
        "INT",
        Some(130),
    );
}

/// SIGINT during batch 1 of a rolling deploy (h1, then h2), once h1 switched: batch 1 ends
/// live, batch 2 is not started, and the last line says so — not "every host is on the
/// release it had".
#[test]
fn a_signal_during_a_rolling_deploys_first_batch_says_that_batch_is_live() {
    let fleet = Fleet::start(2);
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nsource = {{ dir = \"app\" }}\n\
         ssh_config = \"{}\"\nrolling = 1\n\
         [default.tasks.slow]\nrun = \"while [ ! -e /srv/go ]; do sleep 0.1; done\"\nafter = \"switch\"\n\
         [staging]\nhosts = [\"h1\", \"h2\"]\n",
        fleet.ssh_config().display()
    );
    let f = Fixture::new(&[("app/index.html", "v1\n"), ("Ship.toml", &ship)]);
    let child = start(&f, &["apply", "staging", "--release-id", "20261101000001"]);
    wait_until("h1 never switched", Duration::from_secs(20), || {
        fleet.try_sh("h1", "test -L /srv/app/current").0
    });
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    std::thread::sleep(Duration::from_millis(300));
    fleet.sh("h1", "touch /srv/go");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains(
            "batch 1 (h1) is on release 20261101000001; every other host is on the release it had"
        ),
        "{stderr}"
    );
    assert_eq!(fleet.read("h1", "/srv/app/current/index.html"), "v1\n");
    assert!(
        !fleet.try_sh("h2", "test -e /srv/app/current").0,
        "batch 2 not started"
    );
    for h in ["h1", "h2"] {
        assert!(!fleet.locked(h), "{h} unlocked");
    }
}
