//! Fault injection on real SSH hosts, one test per class of issue #16 ("the promises an
//! adversary broke") that this suite covers; each failed before its fix. Classes 1 and 9's
//! control-channel half are in `tests/tests/control_channel.rs` and
//! `tests/tests/hostile_tasks.rs`; the machine's side of every class is also in the
//! simulation (`crates/core/tests/simulation.rs`).

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

/// The peak resident memory of `child` (KiB, its `VmHWM`) until it exits, calling `each`
/// every 20 ms meanwhile.
fn peak_memory(child: &mut std::process::Child, mut each: impl FnMut()) -> u64 {
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
        each();
        std::thread::sleep(Duration::from_millis(20));
    }
    peak_kib
}

fn ok(out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{}", text(out));
}

/// Class 2: a rollback goes only to a release recorded complete and good. A killed deploy's
/// half-made release, older than the live one and with no record, was taken for a good one
/// (and so were versions ordered as text: 1.10.0 before 1.9.0).
#[test]
fn rollback_never_goes_to_an_unfinished_release() {
    let fleet = Fleet::start(2);
    let f = project(&fleet, "");
    ok(&apply(&f, "20261101000003"));
    for h in HOSTS {
        // Capistrano's release, finished (revisions.log says so), and a killed deploy's
        // half-made one, newer than it and older than the live one.
        fleet.sh(
            h,
            "mkdir -p /srv/app/releases/20261101000001 /srv/app/releases/20261101000002 && \
             echo old > /srv/app/releases/20261101000001/index.html && \
             printf 'Branch main (at abc) deployed as release 20261101000001 by cap\\n' >> /srv/app/revisions.log && \
             printf '20261101000002\\n' > /srv/app/.ship/preparing",
        );
    }
    let out = run(&f, &["rollback", "staging"]);
    ok(&out);
    for h in HOSTS {
        assert_eq!(
            fleet.readlink(h, "/srv/app/current"),
            "/srv/app/releases/20261101000001",
            "{h}: back on the finished release, not the half-made one\n{}",
            text(&out)
        );
    }
    // Asked for by name, the half-made one is refused, and nothing changes.
    let out = run(&f, &["rollback", "staging", "--to", "20261101000002"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("never finished"), "{}", text(&out));
}

/// Class 7: an unwritable deploy_to is not "locked by another deploy: holder unknown"; it is
/// reported as what it is, on the host it is.
#[test]
fn an_unwritable_deploy_to_is_not_reported_as_locked() {
    let fleet = Fleet::start(2);
    let f = project(&fleet, "");
    ok(&apply(&f, "20261101000001"));
    f.write("app/index.html", "v2\n");
    fleet.sh("h2", "mount -o remount,ro /srv");
    let out = apply(&f, "20261101000002");
    fleet.sh("h2", "mount -o remount,rw /srv");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let said = text(&out);
    assert!(!said.contains("locked by another deploy"), "{said}");
    assert!(
        said.contains("h2") && said.contains("cannot create /srv/app/.ship/lock"),
        "{said}"
    );
    for h in HOSTS {
        assert_eq!(
            fleet.readlink(h, "/srv/app/current"),
            "/srv/app/releases/20261101000001"
        );
        assert!(!fleet.locked(h), "{h}");
    }
}

/// Class 9: a hung step is cut at `command_timeout` (not a multiple of it), the step is
/// stopped on the host (a hung migration does not go on migrating), and a limit under a
/// second is refused.
#[test]
fn a_hung_step_is_cut_at_the_limit_and_stopped_on_the_host() {
    let fleet = Fleet::start(2);
    let f = project(
        &fleet,
        "command_timeout = \"6s\"\n[default.tasks.migrate]\nrun = \"test ! -e /srv/hang || sleep 1000\"\nafter = \"install\"\n",
    );
    ok(&apply(&f, "20261101000001"));
    f.write("app/index.html", "v2\n");
    for h in HOSTS {
        fleet.sh(h, "touch /srv/hang");
    }
    let started = Instant::now();
    let out = apply(&f, "20261101000002");
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        took < Duration::from_secs(15),
        "cut after {took:?} with a 6s limit\n{}",
        text(&out)
    );
    std::thread::sleep(Duration::from_millis(300));
    for h in HOSTS {
        assert!(
            !fleet.try_sh(h, "pgrep -f '^sleep 1000' >/dev/null").0,
            "{h}: the hung step still runs"
        );
        assert_eq!(
            fleet.readlink(h, "/srv/app/current"),
            "/srv/app/releases/20261101000001"
        );
        assert!(!fleet.locked(h), "{h}");
    }
    let out = run(
        &f,
        &[
            "plan",
            "staging",
            "--set",
            "command_timeout=\"0s\"",
            "--release-id",
            "20261101000003",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("less than a second"), "{}", text(&out));
}

/// Class 10: what cargo ship starts does not outlive it for long, and its memory stays
/// bounded while hosts print a lot. The ssh masters it starts exit a minute after their
/// last session (they were `ControlPersist=yes`: forever after a SIGKILL), and a deploy whose
/// task prints 50 MB on each host keeps cargo ship under 100 MB.
#[test]
fn no_leak_of_ssh_masters_or_memory() {
    let fleet = Fleet::start(2);
    let f = project(
        &fleet,
        "[default.tasks.noisy]\nrun = \"yes 'a line of output from a chatty task' | head -c 50000000\"\nafter = \"install\"\n",
    );
    let mut child = ship(&f, &["apply", "staging", "--release-id", "20261101000001"]);
    let mut masters = Vec::new();
    let peak_kib = peak_memory(&mut child, || {
        if masters.is_empty() {
            masters = fleet.ssh_masters();
        }
    });
    let out = child.wait_with_output().unwrap();
    ok(&out);
    assert!(
        peak_kib < 100 * 1024,
        "cargo ship peaked at {} MiB while hosts printed 50 MB each",
        peak_kib / 1024
    );
    assert!(!masters.is_empty(), "saw no ssh master");
    for m in &masters {
        assert!(
            !m.contains("ControlPersist=yes"),
            "an ssh master that never exits on its own: {m}"
        );
        assert!(m.contains("ControlPersist="), "{m}");
    }
}

/// Class 11: a rollback keeps its lock until its restarts ran (a deploy could start while
/// they ran), and a task hooked after `lock` runs (it failed: `cd` into a release that does
/// not exist yet).
#[test]
fn the_lock_covers_rollback_restarts_and_tasks_after_lock_run() {
    let fleet = Fleet::start(2);
    let f = project(
        &fleet,
        "[default.tasks.early]\nrun = \"pwd > /srv/early-pwd\"\nafter = \"lock\"\n\
         [default.tasks.restart]\nrun = \"touch /srv/restarting; while [ -e /srv/hold ]; do sleep 0.1; done\"\nafter = \"switch\"\n",
    );
    ok(&apply(&f, "20261101000001"));
    for h in HOSTS {
        assert_eq!(fleet.read(h, "/srv/early-pwd"), "/srv/app\n", "{h}");
    }
    f.write("app/index.html", "v2\n");
    ok(&apply(&f, "20261101000002"));
    for h in HOSTS {
        fleet.sh(h, "rm -f /srv/restarting; touch /srv/hold");
    }
    let rollback = ship(&f, &["rollback", "staging"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !HOSTS
        .iter()
        .all(|h| fleet.try_sh(h, "test -e /srv/restarting").0)
    {
        assert!(Instant::now() < deadline, "the rollback never restarted");
        std::thread::sleep(Duration::from_millis(50));
    }
    f.write("app/index.html", "v3\n");
    let during = apply(&f, "20261101000003");
    for h in HOSTS {
        fleet.sh(h, "rm -f /srv/hold");
    }
    let rolled = rollback.wait_with_output().unwrap();
    ok(&rolled);
    assert_eq!(during.status.code(), Some(3), "{}", text(&during));
    assert!(
        text(&during).contains("locked by another deploy") && text(&during).contains("rollback"),
        "{}",
        text(&during)
    );
    for h in HOSTS {
        assert_eq!(
            fleet.readlink(h, "/srv/app/current"),
            "/srv/app/releases/20261101000001",
            "{h}"
        );
    }
}

/// Class 6: markers belong to the deploy that made them. A killed deploy's half-made release
/// is marked; a later deploy that fails removed that mark along with its own, so the
/// half-made release survived every cleanup after. Now a failed deploy removes only its own
/// mark, and the next deploy that finishes removes the half-made release.
#[test]
fn a_failed_deploy_leaves_another_deploys_marker_for_cleanup() {
    let fleet = Fleet::start(2);
    let f = project(
        &fleet,
        "[default.tasks.migrate]\nrun = \"test ! -e /srv/fail\"\nafter = \"install\"\n",
    );
    ok(&apply(&f, "20261101000001"));
    for h in HOSTS {
        // What a deploy killed while unpacking leaves (as versions before this one marked it).
        fleet.sh(
            h,
            "mkdir -p /srv/app/releases/20261101000002 && \
             echo half > /srv/app/releases/20261101000002/index.html && \
             printf '20261101000002\\n' > /srv/app/.ship/preparing",
        );
    }
    fleet.sh("h2", "touch /srv/fail");
    let failed = apply(&f, "20261101000003");
    assert_eq!(failed.status.code(), Some(3), "{}", text(&failed));
    fleet.sh("h2", "rm /srv/fail");
    ok(&apply(&f, "20261101000004"));
    for h in HOSTS {
        assert!(
            !fleet
                .try_sh(h, "test -e /srv/app/releases/20261101000002")
                .0,
            "{h}: the killed deploy's half-made release survived cleanup"
        );
        assert!(
            !fleet
                .try_sh(h, "test -e /srv/app/releases/20261101000003")
                .0,
            "{h}: the failed deploy's release is gone"
        );
        assert_eq!(
            fleet.readlink(h, "/srv/app/current"),
            "/srv/app/releases/20261101000004"
        );
        assert!(
            !fleet
                .try_sh(
                    h,
                    "test -e /srv/app/.ship/preparing || ls -A /srv/app/.ship/preparing.d | grep -q ."
                )
                .0,
            "{h}: no mark is left"
        );
    }
}

/// Class 7: a corrupt `.ship/releases.json` on one host is reported as what it is, and that
/// host as still on the release it had (it was reported "nothing was live").
#[test]
fn a_corrupt_record_is_named_and_the_live_release_still_reported() {
    let fleet = Fleet::start(2);
    let f = project(&fleet, "");
    ok(&apply(&f, "20261101000001"));
    f.write("app/index.html", "v2\n");
    fleet.sh("h2", "printf '[{not json' > /srv/app/.ship/releases.json");
    let out = apply(&f, "20261101000002");
    let said = text(&out);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(said.contains("releases.json is not valid JSON"), "{said}");
    assert!(!said.contains("nothing was live"), "{said}");
    let h2 = said
        .lines()
        .find(|l| l.contains("h2:") && l.contains("still on"))
        .unwrap_or_default();
    assert!(h2.contains("20261101000001"), "{said}");
    for h in HOSTS {
        assert_eq!(
            fleet.readlink(h, "/srv/app/current"),
            "/srv/app/releases/20261101000001"
        );
        assert!(!fleet.locked(h), "{h}");
    }
}

// Second members: for a class above, another input of the same kind, found by a fresh
// review (an ab slot, `run`, a rollback's restarts, `run`'s memory, `maintenance`).

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
    let locked: Vec<bool> = HOSTS.iter().map(|h| fleet.locked(h)).collect();
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
    let peak_kib = peak_memory(&mut child, || {});
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

/// Class 9, on this machine: a local step that hangs is cut at `command_timeout`, and what it
/// started is stopped with it (its process group), not only its `sh`.
#[test]
fn a_hung_local_step_is_cut_and_stopped_with_its_children() {
    let fleet = Fleet::start(2);
    let f = project(
        &fleet,
        "command_timeout = \"3s\"\n[default.tasks.assets]\nrun = \"sh -c 'sleep 1001'; true\"\nafter = \"install\"\nlocal = true\n",
    );
    let started = Instant::now();
    let out = apply(&f, "20261101000001");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "cut after {:?}",
        started.elapsed()
    );
    std::thread::sleep(Duration::from_millis(300));
    let left = Command::new("pgrep")
        .args(["-f", "^sleep 1001$"])
        .status()
        .unwrap()
        .success();
    assert!(!left, "the local step's child still runs");
    for h in HOSTS {
        assert!(!fleet.locked(h), "{h}");
    }
}

/// Class 7, from a trial by hand: a rollback refused because another deploy holds a host's
/// lock names the holder (it said `h1: exit -1:`).
#[test]
fn a_rollback_refused_by_a_lock_names_its_holder() {
    let fleet = Fleet::start(2);
    let f = project(&fleet, "");
    ok(&apply(&f, "20261101000001"));
    f.write("app/index.html", "v2\n");
    ok(&apply(&f, "20261101000002"));
    fleet.sh(
        "h1",
        "mkdir /srv/app/.ship/lock && echo 'bob@laptop since 2026-11-25T09:00:00Z (demo release x to staging)' > /srv/app/.ship/lock/info",
    );
    let out = run(&f, &["rollback", "staging"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(
        said.contains("h1") && said.contains("locked by another deploy: bob@laptop"),
        "{said}"
    );
    for h in HOSTS {
        assert_eq!(
            fleet.readlink(h, "/srv/app/current"),
            "/srv/app/releases/20261101000002"
        );
    }
    assert!(!fleet.locked("h2"));
}
