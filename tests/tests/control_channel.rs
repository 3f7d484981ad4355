//! The control channel on real SSH hosts: nothing a user's command prints can steer a deploy,
//! and nothing it leaves running can hold it (issue #15; classes 1 and 9 of issue #16).
//! Each test here failed before the protocol was framed with a nonce and steps' output went
//! to a file: a task that printed `::ship::segment 2` ended its step as if it had succeeded,
//! and a restart that left a daemon on the session's output held the deploy open.

use ship_tests::{Fixture, Fleet, Output};
use std::time::{Duration, Instant};

const HOSTS: [&str; 2] = ["h1", "h2"];

fn project(fleet: &Fleet, tasks: &str) -> Fixture {
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nsource = {{ dir = \"app\" }}\n\
         ssh_config = \"{}\"\ncommand_timeout = \"60s\"\nkeep_releases = 3\n{tasks}\n\
         [staging]\nhosts = [{}]\n",
        fleet.ssh_config().display(),
        fleet.toml_hosts(0..2)
    );
    Fixture::new(&[("app/index.html", "v1\n"), ("Ship.toml", &ship)])
}

fn apply(f: &Fixture, id: &str) -> Output {
    f.ship_env(
        &["apply", "staging", "--release-id", id],
        &[("USER", "tester")],
    )
}

fn live(fleet: &Fleet, host: &str) -> String {
    fleet.readlink(host, "/srv/app/current")
}

/// Every line of the old protocol, and what a task could guess of the new one, printed by a
/// task that then fails: the failure stands, and every host keeps its live release.
#[test]
fn a_task_printing_control_lines_cannot_end_its_step() {
    let fleet = Fleet::start(2);
    let forged = [
        "::ship::segment 1",
        "::ship::segment 2",
        "::ship::end 6 0",
        "::ship::state current /srv/app/releases/20261101000002",
        "n.00000000000000000000000000000000 segment 1",
    ]
    .iter()
    .map(|l| format!("echo '{l}'; echo '{l}' >&2"))
    .collect::<Vec<_>>()
    .join("; ");
    let tasks = format!(
        "[default.tasks.migrate]\nrun = \"\"\"{forged}; test ! -e /srv/fail\"\"\"\nafter = \"install\"\n"
    );
    let f = project(&fleet, &tasks);
    let first = apply(&f, "20261101000001");
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    f.write("app/index.html", "v2\n");
    fleet.sh("h2", "touch /srv/fail");
    let out = apply(&f, "20261101000002");
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("failed on h2 at step `migrate`"),
        "{}",
        out.stderr
    );
    for h in HOSTS {
        assert_eq!(live(&fleet, h), "/srv/app/releases/20261101000001", "{h}");
        assert!(!fleet.locked(h), "{h}");
        assert!(
            !fleet
                .try_sh(h, "test -e /srv/app/releases/20261101000002")
                .0,
            "{h}: the half-made release is gone"
        );
    }
}

/// A restart that starts a daemon the classic wrong way, its output still on the session,
/// finishes as fast as one that does not; the daemon keeps running.
#[test]
fn a_daemon_left_on_the_sessions_output_does_not_hold_the_deploy() {
    let fleet = Fleet::start(2);
    let tasks =
        "[default.tasks.restart]\nrun = \"sleep 300 & echo started $!\"\nafter = \"switch\"\n";
    let f = project(&fleet, tasks);
    let started = Instant::now();
    let out = apply(&f, "20261101000001");
    let took = started.elapsed();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        took < Duration::from_secs(30),
        "the deploy took {took:?}: a daemon held it"
    );
    for h in HOSTS {
        assert_eq!(live(&fleet, h), "/srv/app/releases/20261101000001", "{h}");
        assert!(
            fleet.try_sh(h, "pgrep -f '^sleep 300' >/dev/null").0,
            "{h}: the daemon runs on"
        );
        // What the step printed is kept on the host.
        assert!(
            fleet
                .try_sh(h, "grep -l '^started ' /srv/app/.ship/log/20261101000001.*")
                .0,
            "{h}: the step's output is in .ship/log"
        );
    }
    for h in HOSTS {
        fleet.try_sh(h, "pkill -f '^sleep 300'");
    }
}

/// The stored artifact damaged after the plan was made (a byte flipped on this machine's
/// disk): it no longer unpacks to the plan's digest, so no host is sent a byte of it; the
/// deploy fails saying why, and no host's `current` moves.
#[test]
fn an_artifact_damaged_after_the_plan_is_not_sent() {
    let fleet = Fleet::start(2);
    let f = project(&fleet, "");
    let plan = f.ship(&["plan", "staging", "--release-id", "20261101000001"]);
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
    let artifacts = f.join("target/ship/artifacts");
    let stored = std::fs::read_dir(&artifacts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".tar.zst"))
        .expect("the plan stored its artifact");
    let mut bytes = std::fs::read(&stored).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&stored, bytes).unwrap();
    let out = f.ship_env(&["apply"], &[("USER", "tester")]);
    assert_ne!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(said.contains("the artifact was not sent"), "{said}");
    // The failure names the cause, not the upload step that ended when its input closed.
    let error = said
        .lines()
        .find(|l| l.starts_with("error: "))
        .expect("an error line");
    assert!(
        error.contains("the artifact was not sent") && error.contains("plan again"),
        "{said}"
    );
    assert!(!said.contains("the script ended with status"), "{said}");
    for h in HOSTS {
        assert!(
            !fleet.try_sh(h, "test -e /srv/app/current").0,
            "{h}: nothing went live"
        );
        assert!(
            !fleet
                .try_sh(h, "ls /srv/app/.ship/artifacts/ | grep -q .")
                .0,
            "{h}: nothing was kept"
        );
    }
    // The damaged file is removed here: planning again packs the artifact anew (instead of
    // finding it kept under its digest), and that deploy goes through.
    assert!(said.contains("(removed from "), "{said}");
    assert!(!stored.exists());
    let again = f.ship_env(
        &["apply", "staging", "--release-id", "20261101000002"],
        &[("USER", "tester")],
    );
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
}
