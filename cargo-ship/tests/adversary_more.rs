//! Issue #16, second members: for a class `adversary.rs` covers, another input of the same
//! kind, found by a fresh review (an ab slot, `run`, a rollback's restarts, `run`'s memory,
//! `maintenance`). Each test failed before its fix.

use ship_tests::{Fixture, Fleet};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const HOSTS: [&str; 2] = ["h1", "h2"];

fn project(fleet: &Fleet, extra: &str) -> Fixture {
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nsource = {{ dir = \"app\" }}\n\
         ssh_config = \"{}\"\nkeep_releases = 5\n{extra}\n[staging]\nhosts = [\"h1\", \"h2\"]\n",
        fleet.ssh_config().display()
    );
    Fixture::new(&[("app/index.html", "v1\n"), ("Ship.toml", &ship)])
}

fn ship(f: &Fixture, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_cargo-ship"))
        .args(args)
        .current_dir(f.path())
        .env("USER", "tester")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn run(f: &Fixture, args: &[&str]) -> Output {
    ship(f, args).wait_with_output().unwrap()
}

fn apply(f: &Fixture, id: &str) -> Output {
    run(f, &["apply", "staging", "--release-id", id])
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{}", text(out));
}

/// Class 2, second member: the `ab` layout. A deploy killed while unpacking into the slot
/// that is not live leaves it half-made (and marked in `.ship/preparing.d/<slot>`); the
/// slot still has the record of the release it held before, so `observe` does not count it
/// half-made, and `Ab::rollback_target` returns the other slot without asking whether it is
/// complete. `rollback` makes the half-made content live under the old release's name.
#[test]
fn ab_rollback_never_goes_to_a_half_made_slot() {
    let fleet = Fleet::start(2);
    let f = project(&fleet, "layout = \"ab\"\n");
    ok(&apply(&f, "20261101000001")); // slot a
    f.write("app/index.html", "v2\n");
    ok(&apply(&f, "20261101000002")); // slot b, live
    for h in HOSTS {
        assert_eq!(fleet.readlink(h, "/srv/app/current"), "/srv/app/releases/b");
        // What a deploy of 20261101000003 killed while unpacking into slot a leaves (the
        // lock aside: `unlock` cleared it).
        fleet.sh(
            h,
            "rm -rf /srv/app/releases/a/* && echo half > /srv/app/releases/a/index.html && \
             mkdir -p /srv/app/.ship/preparing.d && \
             echo 'tester since now (deploy of 20261101000003)' > /srv/app/.ship/preparing.d/a",
        );
    }
    let out = run(&f, &["rollback", "staging"]);
    for h in HOSTS {
        assert_eq!(
            fleet.readlink(h, "/srv/app/current"),
            "/srv/app/releases/b",
            "{h}: the rollback made the half-made slot live (index.html: {:?})\n{}",
            fleet.try_sh(h, "cat /srv/app/current/index.html").1,
            text(&out)
        );
    }
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
}

/// Class 9, second member: `cargo ship run`. Its session is cut at `command_timeout`, but
/// the command goes on running on the host (only a deploy's steps are killed at the limit).
#[test]
fn run_is_cut_at_the_limit_and_stopped_on_the_host() {
    let fleet = Fleet::start(2);
    let f = project(&fleet, "command_timeout = \"3s\"\n");
    ok(&apply(&f, "20261101000001"));
    let started = Instant::now();
    let out = run(&f, &["run", "staging", "--", "sleep 61"]);
    let took = started.elapsed();
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        took < Duration::from_secs(12),
        "cut after {took:?}\n{}",
        text(&out)
    );
    std::thread::sleep(Duration::from_millis(500));
    let (still, ps, _) = fleet.try_sh("h1", "pgrep -af '^sleep 61$'");
    assert!(
        !still,
        "the timed-out command still runs on the hosts:\n{ps}"
    );
}

/// Class 9 (and 11), second member: a rollback's restarts. A hung restart after a rollback
/// is cut at `command_timeout` locally, but goes on on the host, holding the rollback's lock
/// for as long as it hangs (the deploy's own hung steps are killed).
#[test]
fn a_hung_rollback_restart_is_stopped_on_the_host() {
    let fleet = Fleet::start(2);
    let f = project(
        &fleet,
        "command_timeout = \"3s\"\n[default.tasks.restart]\nrun = \"test ! -e /srv/hang || sleep 62\"\nafter = \"switch\"\n",
    );
    ok(&apply(&f, "20261101000001"));
    f.write("app/index.html", "v2\n");
    ok(&apply(&f, "20261101000002"));
    for h in HOSTS {
        fleet.sh(h, "touch /srv/hang");
    }
    let started = Instant::now();
    let out = run(&f, &["rollback", "staging"]);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "cut after {took:?}\n{}",
        text(&out)
    );
    std::thread::sleep(Duration::from_millis(500));
    let (still, ps, _) = fleet.try_sh("h1", "pgrep -af '^sleep 62$'");
    let locked: Vec<bool> = HOSTS
        .iter()
        .map(|h| fleet.try_sh(h, "test -e /srv/app/.ship/lock").0)
        .collect();
    assert!(
        !still,
        "the timed-out restart still runs on the hosts ({ps}); locks held: {locked:?}\n{}",
        text(&out)
    );
}

/// Class 10, second member: `cargo ship run`. A deploy's output is bounded (a file on the
/// host, its last lines relayed), but `run` keeps everything each host prints in memory:
/// a command printing 50 MB on each of two hosts takes cargo ship well past 100 MB.
#[test]
fn run_memory_stays_bounded_while_hosts_print_a_lot() {
    let fleet = Fleet::start(2);
    let f = project(&fleet, "");
    ok(&apply(&f, "20261101000001"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_cargo-ship"))
        .args([
            "run",
            "staging",
            "--",
            "yes 'a line of output from a chatty command' | head -c 50000000",
        ])
        .current_dir(f.path())
        .env("USER", "tester")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak_kib = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        peak_kib < 100 * 1024,
        "cargo ship run peaked at {} MiB while hosts printed 50 MB each",
        peak_kib / 1024
    );
}

/// Class 11, second member: `maintenance on|off` takes no lock. While a deploy holds a host
/// (its lock is there), `maintenance on` writes into whatever `current` is at that moment and
/// runs its `before`/`after` commands; a deploy switching at the same time leaves the page in
/// the release it just left (or takes it down). It should refuse, naming the holder, as
/// `apply` and `rollback` do.
#[test]
fn maintenance_respects_a_deploys_lock() {
    let fleet = Fleet::start(2);
    let f = project(
        &fleet,
        "[default.maintenance]\nfile = \"maintenance.html\"\nbefore = \"touch /srv/before-ran\"\n",
    );
    ok(&apply(&f, "20261101000001"));
    for h in HOSTS {
        fleet.sh(
            h,
            "mkdir -p /srv/app/.ship/lock && echo 'alice since now (deploy of 20261101000002)' > /srv/app/.ship/lock/info",
        );
    }
    let out = run(&f, &["maintenance", "staging", "on"]);
    let written: Vec<bool> = HOSTS
        .iter()
        .map(|h| {
            fleet
                .try_sh(h, "test -e /srv/app/current/maintenance.html")
                .0
        })
        .collect();
    assert_ne!(
        out.status.code(),
        Some(0),
        "maintenance on went ahead under another deploy's lock (page written: {written:?})\n{}",
        text(&out)
    );
}
