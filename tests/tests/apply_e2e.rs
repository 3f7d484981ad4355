//! `cargo ship apply`, `rollback`, `releases`, `check`, `run` and `unlock` on real SSH hosts
//! (see `ship_tests::Fleet`): every layout deploys, redeploys, rolls back and cleans up; any
//! failure leaves every host's live release as it was.

use ship_tests::{Fixture, Fleet, Output};

const SETTINGS: &str =
    "mkdir -p /srv/app/shared/config && echo 'SECRET=1' > /srv/app/shared/config/settings.py";

fn project(fleet: &Fleet, hosts: usize, extra: &str) -> Fixture {
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nsource = {{ dir = \"app\" }}\n\
         ssh_config = \"{}\"\nlinked_files = [\"config/settings.py\"]\nlinked_dirs = [\"log\"]\n\
         keep_releases = 2\n{extra}\n[staging]\nhosts = [{}]\n",
        fleet.ssh_config().display(),
        fleet.toml_hosts(0..hosts)
    );
    Fixture::new(&[("app/index.html", "v1\n"), ("Ship.toml", &ship)])
}

fn with_shared(fleet: &Fleet, hosts: &[&str]) {
    for h in hosts {
        fleet.sh(h, SETTINGS);
    }
}

fn apply(f: &Fixture, extra: &[&str]) -> Output {
    let mut args = vec!["apply", "staging"];
    args.extend_from_slice(extra);
    f.ship_env(&args, &[("USER", "tester")])
}

fn ok(out: &Output) {
    assert_eq!(
        out.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
}

fn content(fleet: &Fleet, host: &str) -> String {
    fleet.read(host, "/srv/app/current/index.html")
}

fn releases_json(fleet: &Fleet, host: &str) -> serde_json::Value {
    serde_json::from_str(&fleet.read(host, "/srv/app/.ship/releases.json")).unwrap()
}

fn states(fleet: &Fleet, host: &str) -> Vec<(String, String)> {
    releases_json(fleet, host)
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn release_dirs(fleet: &Fleet, host: &str) -> Vec<String> {
    let mut dirs: Vec<String> = fleet
        .try_sh(host, "ls -1 /srv/app/releases")
        .1
        .lines()
        .map(str::to_owned)
        .collect();
    dirs.sort();
    dirs
}

fn unlocked(fleet: &Fleet, host: &str) -> bool {
    !fleet.locked(host)
}

const HOSTS: [&str; 3] = ["h1", "h2", "h3"];

/// Deploys v1, v2, v3 with the given release flags, checks every host, rolls back to v2.
fn layout_round_trip(
    layout: &str,
    flags: [&[&str]; 3],
    dir_of: impl Fn(usize) -> String,
) -> (Fleet, Fixture) {
    let fleet = Fleet::start(3);
    let f = project(&fleet, 3, &format!("layout = \"{layout}\""));
    with_shared(&fleet, &HOSTS);
    // h3 has no zstd (hidden in its own mount namespace): it is sent `.tar.gz` artifacts.
    fleet.sh("h3", "mount --bind /dev/null \"$(command -v zstd)\"");
    assert!(!fleet.try_sh("h3", "command -v zstd").0);
    for (n, flag) in flags.iter().enumerate() {
        f.write("app/index.html", &format!("v{}\n", n + 1));
        let before: Vec<(usize, usize)> = HOSTS
            .iter()
            .map(|h| {
                (
                    fleet.log_lines(h, "Accepted publickey"),
                    fleet.log_lines(h, "Starting session"),
                )
            })
            .collect();
        let out = apply(&f, flag);
        ok(&out);
        assert!(
            out.stdout.contains("1 SSH session per host"),
            "{}",
            out.stdout
        );
        // What each host's sshd saw: one connection, one session, for the whole deploy.
        for (h, (c0, s0)) in HOSTS.iter().zip(before) {
            assert_eq!(
                fleet.log_lines(h, "Accepted publickey") - c0,
                1,
                "connections on {h}"
            );
            assert_eq!(
                fleet.log_lines(h, "Starting session") - s0,
                1,
                "sessions on {h}"
            );
        }
        for h in HOSTS {
            assert_eq!(content(&fleet, h), format!("v{}\n", n + 1), "{layout} {h}");
            assert_eq!(
                fleet.read(h, "/srv/app/current/config/settings.py"),
                "SECRET=1\n",
                "linked file"
            );
            assert!(
                fleet.try_sh(h, "test -d /srv/app/current/log").0,
                "linked dir"
            );
            assert!(unlocked(&fleet, h));
            let dir = dir_of(n);
            if layout != "single" {
                assert_eq!(
                    fleet.readlink(h, "/srv/app/current"),
                    format!("/srv/app/releases/{dir}")
                );
            }
            let digest = fleet.read(h, "/srv/app/current/REVISION");
            assert_eq!(
                digest.trim().len(),
                64,
                "REVISION holds the artifact digest"
            );
            let states = states(&fleet, h);
            assert_eq!(states.last().unwrap().1, "live", "{states:?}");
            if n > 0 {
                assert_eq!(states[states.len() - 2].1, "good", "{states:?}");
            }
            let log = fleet.read(h, "/srv/app/revisions.log");
            assert_eq!(log.lines().count(), n + 1, "{log}");
            assert!(log.lines().last().unwrap().contains("by tester@"), "{log}");
        }
    }
    // keep_releases = 2: the timestamp and version layouts keep two directories.
    if matches!(layout, "timestamp" | "version") {
        assert_eq!(release_dirs(&fleet, "h1"), vec![dir_of(1), dir_of(2)]);
    }
    if layout == "ab" {
        assert_eq!(
            release_dirs(&fleet, "h1"),
            vec!["a".to_owned(), "b".to_owned()]
        );
    }

    // The hosts keep the artifacts of the releases they keep (v2's and v3's), no more:
    // v1's went at cleanup. h1 has zstd and was sent `.tar.zst`; h3 has not: `.tar.gz`.
    for (h, ext) in [("h1", "tar.zst"), ("h3", "tar.gz")] {
        let mut kept: Vec<String> = releases_json(&fleet, h)
            .as_array()
            .unwrap()
            .iter()
            .map(|r| format!("{}.{ext}", r["digest"].as_str().unwrap()))
            .collect();
        kept.sort();
        kept.dedup();
        assert_eq!(kept.len(), 2, "{layout} {h}: {kept:?}");
        let mut files: Vec<String> = fleet
            .try_sh(h, "ls -1 /srv/app/.ship/artifacts")
            .1
            .lines()
            .map(str::to_owned)
            .collect();
        files.sort();
        assert_eq!(files, kept, "{layout} {h}");
    }

    let listed = f.ship(&["releases", "staging"]);
    ok(&listed);
    assert!(listed.stdout.contains("* "), "{}", listed.stdout);

    let sessions: Vec<usize> = HOSTS
        .iter()
        .map(|h| fleet.log_lines(h, "Starting session"))
        .collect();
    let back = f.ship_env(&["rollback", "staging"], &[("USER", "tester")]);
    ok(&back);
    for (h, s0) in HOSTS.iter().zip(sessions) {
        assert_eq!(
            fleet.log_lines(h, "Starting session") - s0,
            1,
            "rollback: one session on {h}"
        );
    }
    for h in HOSTS {
        assert_eq!(content(&fleet, h), "v2\n", "{layout} rolled back on {h}");
        assert!(unlocked(&fleet, h));
        let states = states(&fleet, h);
        assert!(states.iter().any(|(_, s)| s == "rolled-back"), "{states:?}");
        assert!(fleet.read(h, "/srv/app/revisions.log").contains("tester@"));
        assert!(
            fleet
                .read(h, "/srv/app/revisions.log")
                .contains("rolled back to release")
        );
    }
    (fleet, f)
}

#[test]
fn timestamp_layout_round_trip() {
    let ids = ["20261101000001", "20261101000002", "20261101000003"];
    layout_round_trip(
        "timestamp",
        [
            &["--release-id", ids[0]],
            &["--release-id", ids[1]],
            &["--release-id", ids[2]],
        ],
        |n| ids[n].to_owned(),
    );
}

#[test]
fn rollback_to_a_named_release_and_refusals_that_change_nothing() {
    let fleet = Fleet::start(2);
    let f = project(&fleet, 2, "");
    let text = std::fs::read_to_string(f.join("Ship.toml")).unwrap();
    f.write(
        "Ship.toml",
        &text.replace("keep_releases = 2", "keep_releases = 5"),
    );
    with_shared(&fleet, &["h1", "h2"]);
    for n in 1..=3 {
        f.write("app/index.html", &format!("v{n}\n"));
        ok(&apply(&f, &["--release-id", &format!("2026110100000{n}")]));
    }
    // Hosts that disagree on the previous release: refused until --to says where.
    fleet.sh("h2", "rm -rf /srv/app/releases/20261101000002");
    let out = f.ship(&["rollback", "staging"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("do not agree"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("h1 → 20261101000002, h2 → 20261101000001"),
        "{}",
        out.stderr
    );
    for h in ["h1", "h2"] {
        assert_eq!(content(&fleet, h), "v3\n");
        assert!(unlocked(&fleet, h));
    }
    ok(&f.ship(&["rollback", "staging", "--to", "20261101000001"]));
    for h in ["h1", "h2"] {
        assert_eq!(content(&fleet, h), "v1\n");
    }
    // An unknown release: refused, nothing changed, locks released.
    let out = f.ship(&["rollback", "staging", "--to", "20990101000000"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("no host changed"), "{}", out.stderr);
    assert!(
        out.stderr.contains("`20990101000000` is not on this host"),
        "{}",
        out.stderr
    );
    for h in ["h1", "h2"] {
        assert_eq!(content(&fleet, h), "v1\n");
        assert!(unlocked(&fleet, h));
    }
}

#[test]
fn version_layout_round_trip() {
    let v = ["1.0.0", "1.1.0", "2.0.0"];
    let (fleet, f) = layout_round_trip(
        "version",
        [
            &["--version", v[0]],
            &["--version", v[1]],
            &["--version", v[2]],
        ],
        |n| v[n].to_owned(),
    );
    // 1.1.0 is live again (2.0.0 was rolled back from). Deploying 1.1.0 again is refused
    // before anything changes, not at the prepare step; deploying 2.0.0 again says it
    // replaces the release that is there.
    let again = f.ship_env(
        &["apply", "staging", "--version", "1.1.0"],
        &[("USER", "tester")],
    );
    assert_eq!(again.code, 3, "{}\n{}", again.stdout, again.stderr);
    assert!(
        again
            .stderr
            .contains("already: nothing was changed. Deploy another release id"),
        "{}",
        again.stderr
    );
    assert!(
        !again.stderr.contains("prepare"),
        "refused at lock: {}",
        again.stderr
    );
    for h in HOSTS {
        assert_eq!(content(&fleet, h), "v2\n");
        assert!(unlocked(&fleet, h));
    }
    let redo = f.ship_env(
        &["apply", "staging", "--version", "2.0.0"],
        &[("USER", "tester")],
    );
    ok(&redo);
    assert!(
        redo.stderr.contains(
            "release 2.0.0 is there already (it was rolled back from): this deploy replaces it"
        ),
        "{}",
        redo.stderr
    );
    for h in HOSTS {
        assert_eq!(content(&fleet, h), "v3\n");
    }
}

#[test]
fn ab_layout_round_trip() {
    // Release ids are pinned: three deploys can happen within one second.
    layout_round_trip(
        "ab",
        [
            &["--release-id", "20261101000001"],
            &["--release-id", "20261101000002"],
            &["--release-id", "20261101000003"],
        ],
        |n| ["a", "b", "a"][n].to_owned(),
    );
}

#[test]
fn single_layout_round_trip() {
    layout_round_trip(
        "single",
        [
            &["--release-id", "20261101000001"],
            &["--release-id", "20261101000002"],
            &["--release-id", "20261101000003"],
        ],
        |_| "current".to_owned(),
    );
}

/// Deploys v1 everywhere, then v2 with `break_it` applied; asserts that the deploy failed
/// and every host still serves v1 with no v2 directory and no lock.
fn nothing_changes(extra: &str, break_it: impl FnOnce(&mut Fleet)) -> Output {
    let mut fleet = Fleet::start(3);
    let f = project(&fleet, 3, extra);
    with_shared(&fleet, &HOSTS);
    ok(&apply(&f, &["--release-id", "20261101000001"]));
    f.write("app/index.html", "v2\n");
    break_it(&mut fleet);
    let out = apply(&f, &["--release-id", "20261101000002"]);
    assert_eq!(
        out.code, 3,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    for h in &fleet.hosts {
        let h = h.name.as_str();
        if !fleet.try_sh(h, "true").0 {
            continue;
        }
        if fleet.try_sh(h, "test -d /srv/app").0 {
            assert_eq!(content(&fleet, h), "v1\n", "{h} still serves v1");
            assert_eq!(
                fleet.readlink(h, "/srv/app/current"),
                "/srv/app/releases/20261101000001"
            );
            assert!(
                !fleet
                    .try_sh(h, "test -e /srv/app/releases/20261101000002")
                    .0,
                "no half-made release on {h}"
            );
            assert!(unlocked(&fleet, h), "{h} unlocked");
        }
    }
    out
}

#[test]
fn a_host_whose_sshd_is_stopped_changes_nothing() {
    let out = nothing_changes("", |fleet| fleet.stop("h3"));
    assert!(out.stderr.contains("h3"), "{}", out.stderr);
    assert!(out.stdout.contains("untouched"), "{}", out.stdout);
}

#[test]
fn a_missing_linked_file_on_one_host_changes_nothing() {
    let out = nothing_changes("", |fleet| {
        fleet.sh("h2", "rm /srv/app/shared/config/settings.py");
    });
    assert!(
        out.stderr.contains("failed on h2 at step `link`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("config/settings.py"), "{}", out.stderr);
    assert!(
        out.stderr.contains("no host's `current` moved"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_task_failing_on_one_host_changes_nothing() {
    let task =
        "[default.tasks.migrate]\nrun = \"test ! -e /srv/fail-migrate\"\nafter = \"install\"\n";
    let out = nothing_changes(task, |fleet| {
        fleet.sh("h3", "touch /srv/fail-migrate");
    });
    assert!(
        out.stderr.contains("failed on h3 at step `migrate`"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_task_failing_after_switch_puts_every_host_back() {
    let fleet = Fleet::start(3);
    let task =
        "[default.tasks.restart]\nrun = \"test ! -e /srv/fail-restart\"\nafter = \"switch\"\n";
    let f = project(&fleet, 3, task);
    with_shared(&fleet, &HOSTS);
    ok(&apply(&f, &["--release-id", "20261101000001"]));
    f.write("app/index.html", "v2\n");
    fleet.sh("h2", "touch /srv/fail-restart");
    let out = apply(&f, &["--release-id", "20261101000002"]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("failed on h2 at step `restart`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("switched back"), "{}", out.stderr);
    for h in HOSTS {
        assert_eq!(content(&fleet, h), "v1\n", "{h} back on v1");
        assert_eq!(
            fleet.readlink(h, "/srv/app/current"),
            "/srv/app/releases/20261101000001"
        );
        assert!(unlocked(&fleet, h));
        let states = states(&fleet, h);
        assert_eq!(
            states,
            vec![
                ("20261101000001".to_owned(), "live".to_owned()),
                ("20261101000002".to_owned(), "failed".to_owned())
            ],
            "{h}"
        );
        assert!(
            out.stdout.contains("reverted: back on 20261101000001"),
            "{}",
            out.stdout
        );
    }
    // The next deploy removes the failed release first.
    fleet.sh("h2", "rm /srv/fail-restart");
    f.write("app/index.html", "v3\n");
    ok(&apply(&f, &["--release-id", "20261101000003"]));
    assert_eq!(
        release_dirs(&fleet, "h1"),
        vec!["20261101000001", "20261101000003"]
    );
}

#[test]
fn two_deploys_never_run_at_once_and_unlock_clears_a_stale_lock() {
    let fleet = Fleet::start(2);
    // The first deploy waits in a task while it holds the locks.
    let task = "[default.tasks.slow]\nrun = \"while [ ! -e /srv/go ]; do sleep 0.1; done\"\nafter = \"link\"\n";
    let f = project(&fleet, 2, task);
    with_shared(&fleet, &["h1", "h2"]);
    std::thread::scope(|s| {
        let first = s.spawn(|| {
            f.ship_env(
                &["apply", "staging", "--release-id", "20261101000001"],
                &[("USER", "alice")],
            )
        });
        // Wait until the first holds both locks.
        for _ in 0..200 {
            if !unlocked(&fleet, "h1") && !unlocked(&fleet, "h2") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let second = f.ship_env(&["apply", "staging"], &[("USER", "bob")]);
        assert_eq!(second.code, 3, "{}", second.stderr);
        assert!(
            second.stderr.contains("locked by another deploy: alice@"),
            "{}",
            second.stderr
        );
        for h in ["h1", "h2"] {
            fleet.sh(h, "touch /srv/go");
        }
        let first = first.join().unwrap();
        ok(&first);
    });
    for h in ["h1", "h2"] {
        assert!(unlocked(&fleet, h));
        assert_eq!(
            states(&fleet, h).len(),
            1,
            "only the first deploy was recorded"
        );
    }

    // A lock left by a killed deploy: reported with its holder, cleared by unlock.
    fleet.sh("h1", "mkdir /srv/app/.ship/lock && echo 'carol@ci since 2026-11-01T00:00:00Z' > /srv/app/.ship/lock/info");
    let blocked = f.ship(&["apply", "staging"]);
    assert_eq!(blocked.code, 3);
    assert!(blocked.stderr.contains("(held for "), "{}", blocked.stderr);
    assert!(
        blocked
            .stderr
            .contains("carol@ci since 2026-11-01T00:00:00Z"),
        "{}",
        blocked.stderr
    );
    assert!(unlocked(&fleet, "h2"), "the lock taken on h2 was released");
    let listed = f.ship(&["releases", "staging"]);
    assert!(
        listed.stdout.contains("LOCKED by carol@ci"),
        "{}",
        listed.stdout
    );
    let cleared = f.ship(&["unlock", "staging"]);
    ok(&cleared);
    assert!(
        cleared
            .stdout
            .contains("h1: removed the lock held by carol@ci"),
        "{}",
        cleared.stdout
    );
    assert!(
        cleared.stdout.contains("h2: not locked"),
        "{}",
        cleared.stdout
    );
    ok(&f.ship(&["apply", "staging", "--release-id", "20261101000002"]));
}

#[test]
fn apply_runs_the_saved_plan_and_refuses_one_that_is_out_of_date() {
    let fleet = Fleet::start(1);
    let f = project(&fleet, 1, "");
    with_shared(&fleet, &["h1"]);
    let out = f.ship(&["apply"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("no plan to apply"), "{}", out.stderr);

    ok(&f.ship(&["plan", "staging", "--release-id", "20261101000001"]));
    // The configuration changed since: refused, naming the key.
    let text = std::fs::read_to_string(f.join("Ship.toml")).unwrap();
    f.write(
        "Ship.toml",
        &text.replace("keep_releases = 2", "keep_releases = 4"),
    );
    let out = f.ship(&["apply"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("changed: keep_releases"),
        "{}",
        out.stderr
    );
    f.write("Ship.toml", &text);
    // The artifact changed since: refused.
    f.write("app/index.html", "v9\n");
    let out = f.ship(&["apply"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("the artifact changed"),
        "{}",
        out.stderr
    );
    assert!(
        !fleet.try_sh("h1", "test -e /srv/app/current").0,
        "nothing deployed"
    );
    f.write("app/index.html", "v1\n");
    // As planned: applied exactly, release id included.
    let out = f.ship(&["apply"]);
    ok(&out);
    assert_eq!(
        fleet.readlink("h1", "/srv/app/current"),
        "/srv/app/releases/20261101000001"
    );
    // A saved plan by its file.
    ok(&f.ship(&["plan", "staging", "--release-id", "20261101000002"]));
    let out = f.ship(&["apply", "target/ship/staging.plan.json"]);
    ok(&out);
    assert_eq!(
        fleet.readlink("h1", "/srv/app/current"),
        "/srv/app/releases/20261101000002"
    );
    // The host has zstd (the test machine's): it was sent, and keeps, the `.tar.zst`.
    assert!(
        fleet
            .try_sh("h1", "ls /srv/app/.ship/artifacts/*.tar.zst")
            .0
    );
    assert!(!fleet.try_sh("h1", "ls /srv/app/.ship/artifacts/*.tar.gz").0);
}

#[test]
fn check_and_run_report_per_host() {
    let fleet = Fleet::start(2);
    let f = project(&fleet, 2, "");
    with_shared(&fleet, &["h1"]);
    let out = f.ship(&["check", "staging"]);
    assert_eq!(out.code, 3, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("linked_files: FAIL: missing from /srv/app/shared/: config/settings.py"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("check failed on h2"), "{}", out.stderr);
    with_shared(&fleet, &["h2"]);
    ok(&f.ship(&["check", "staging"]));

    let out = f.ship(&[
        "run",
        "staging",
        "--",
        "echo $SHIP_HOST; test $SHIP_HOST = h1",
    ]);
    assert_eq!(out.code, 3);
    assert!(
        out.stdout.contains("── h1 (exit 0)\nh1\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("── h2 (exit 1)\nh2\n"),
        "{}",
        out.stdout
    );
    // Values with shell metacharacters are passed as one command, never re-split.
    let out = f.ship(&["run", "staging", "--", "printf '%s\\n' \"a;b\" '$(id)'"]);
    ok(&out);
    assert!(out.stdout.contains("a;b\n$(id)\n"), "{}", out.stdout);
}

#[test]
fn shell_metacharacters_in_paths_are_quoted_never_executed() {
    let fleet = Fleet::start(1);
    let deploy_to = "/srv/my app;$(touch /srv/pwned1)`touch /srv/pwned2`";
    // A linked file holds no `/` but its directory's: what runs would write to ~ (/root).
    let linked = "config/we ird;$(cd;touch ship-pwned3)\"q.py";
    let _ = std::fs::remove_file("/root/ship-pwned3");
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = '{deploy_to}'\nsource = {{ dir = \"app\" }}\n\
         ssh_config = \"{}\"\nlinked_files = ['{linked}']\n[staging]\nhosts = [\"h1\"]\n",
        fleet.ssh_config().display()
    );
    let f = Fixture::new(&[("app/index.html", "v1\n"), ("Ship.toml", &ship)]);
    let q = |s: &str| ship_core::shell::quote(s).into_owned();
    fleet.sh(
        "h1",
        &format!(
            "mkdir -p {d}/shared/config && echo secret > {d}/shared/{f}",
            d = q(deploy_to),
            f = q(linked)
        ),
    );
    ok(&apply(&f, &["--release-id", "20261101000001"]));
    let current = format!("{deploy_to}/current");
    assert_eq!(
        fleet.read_quoted("h1", &format!("{current}/index.html")),
        "v1\n"
    );
    assert_eq!(
        fleet.read_quoted("h1", &format!("{current}/{linked}")),
        "secret\n"
    );
    for n in 1..=2 {
        assert!(
            !fleet.try_sh("h1", &format!("test -e /srv/pwned{n}")).0,
            "a value was executed ({n})"
        );
    }
    assert!(
        !std::path::Path::new("/root/ship-pwned3").exists(),
        "a linked file was executed"
    );
    ok(&f.ship(&["rollback", "staging", "--to", "20261101000001"]));
}

#[test]
fn a_failing_health_check_on_one_host_puts_every_host_back() {
    let fleet = Fleet::start(3);
    let health = "[default.health]\nrun = \"test ! -e /srv/unhealthy && grep -q v index.html\"\ntimeout = \"5s\"\n";
    let f = project(&fleet, 3, health);
    with_shared(&fleet, &HOSTS);
    ok(&apply(&f, &["--release-id", "20261101000001"]));
    f.write("app/index.html", "v2\n");
    fleet.sh("h3", "touch /srv/unhealthy");
    let out = apply(&f, &["--release-id", "20261101000002"]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("failed on h3 at step `verify`"),
        "{}",
        out.stderr
    );
    for h in HOSTS {
        assert_eq!(content(&fleet, h), "v1\n", "{h} back on v1");
        assert!(unlocked(&fleet, h));
        let states = states(&fleet, h);
        assert_eq!(states.last().unwrap().1, "failed", "{h}: {states:?}");
    }
    // A health check that hangs is cut at its timeout, and fails the same way.
    let hang = "[default.health]\nrun = \"sleep 30\"\ntimeout = \"1s\"\n";
    let text = std::fs::read_to_string(f.join("Ship.toml")).unwrap();
    f.write("Ship.toml", &text.replace(health, hang));
    fleet.sh("h3", "rm /srv/unhealthy");
    let started = std::time::Instant::now();
    let out = apply(&f, &["--release-id", "20261101000003"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    for h in HOSTS {
        assert_eq!(content(&fleet, h), "v1\n");
    }
}

#[test]
fn a_step_that_hangs_is_cut_at_command_timeout_and_hosts_are_put_back() {
    let fleet = Fleet::start(2);
    let task = "command_timeout = \"2s\"\n[default.tasks.hang]\nrun = \"if [ -e /srv/hang ]; then sleep 5; fi\"\nafter = \"install\"\n\
                [default.tasks.later]\nrun = \"touch /srv/later-ran\"\nafter = \"hang\"\n";
    let f = project(&fleet, 2, task);
    with_shared(&fleet, &["h1", "h2"]);
    ok(&apply(&f, &["--release-id", "20261101000001"]));
    fleet.sh("h2", "touch /srv/hang");
    f.write("app/index.html", "v2\n");
    let started = std::time::Instant::now();
    let out = apply(&f, &["--release-id", "20261101000002"]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert!(
        out.stderr.contains("h2: no answer within 2s"),
        "{}",
        out.stderr
    );
    for h in ["h1", "h2"] {
        assert_eq!(content(&fleet, h), "v1\n", "{h} still on v1");
        assert!(unlocked(&fleet, h), "{h}");
    }
    // The abandoned script wakes up after the hosts were put back: it runs nothing more.
    fleet.sh("h2", "rm -f /srv/later-ran");
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert!(
        !fleet.try_sh("h2", "test -e /srv/later-ran").0,
        "a step ran after recovery"
    );
    assert_eq!(content(&fleet, "h2"), "v1\n");
}

#[test]
fn apply_format_json_prints_one_event_per_line_then_the_outcome() {
    let fleet = Fleet::start(1);
    let f = project(&fleet, 1, "");
    let parse = |out: &Output| -> Vec<serde_json::Value> {
        out.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    // Missing shared file: failed, every host unchanged.
    let out = apply(&f, &["--release-id", "20261101000001", "--format", "json"]);
    assert_eq!(out.code, 3);
    let events = parse(&out);
    let last = events.last().unwrap();
    assert_eq!(last["event"], "outcome");
    assert_eq!(last["ok"], false);
    assert_eq!(last["failure"]["step"], "link");
    assert_eq!(last["hosts"][0]["host"], "h1");
    assert_eq!(last["hosts"][0]["state"], "unchanged");
    assert!(events.iter().any(|e| e["event"] == "failed"));

    with_shared(&fleet, &["h1"]);
    let out = apply(&f, &["--release-id", "20261101000002", "--format", "json"]);
    ok(&out);
    let events = parse(&out);
    assert_eq!(events[0]["event"], "connected");
    let steps: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "step")
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "lock", "upload", "prepare", "link", "install", "switch", "verify", "cleanup", "unlock"
        ]
    );
    let last = events.last().unwrap();
    assert_eq!(last["ok"], true);
    assert_eq!(last["sessions_per_host"], 1);
    assert_eq!(last["hosts"][0]["state"], "deployed");
}

#[test]
fn with_parallel_1_a_failure_stops_the_hosts_not_yet_started() {
    let fleet = Fleet::start(3);
    let task = "parallel = 1\n[default.tasks.check]\nrun = \"test ! -e /srv/fail && echo \\\"ran on $SHIP_HOST\\\" >> /srv/ran\"\nafter = \"install\"\n";
    let f = project(&fleet, 3, task);
    with_shared(&fleet, &HOSTS);
    ok(&apply(&f, &["--release-id", "20261101000001"]));
    fleet.sh("h1", "touch /srv/fail");
    for h in HOSTS {
        fleet.sh(h, "rm -f /srv/ran");
    }
    f.write("app/index.html", "v2\n");
    let out = apply(&f, &["--release-id", "20261101000002"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("failed on h1 at step `check`"),
        "{}",
        out.stderr
    );
    for h in HOSTS {
        assert_eq!(content(&fleet, h), "v1\n");
        assert!(unlocked(&fleet, h));
        assert!(
            !fleet
                .try_sh(h, "test -e /srv/app/releases/20261101000002")
                .0,
            "{h}"
        );
    }
    // h2 and h3 were never sent the failed part: their task did not run.
    assert_eq!(fleet.read("h2", "/srv/ran"), "");
    assert_eq!(fleet.read("h3", "/srv/ran"), "");
}

#[test]
fn a_full_disk_on_one_host_changes_nothing() {
    let fleet = Fleet::start_sized(2, "8m");
    let f = project(&fleet, 2, "");
    with_shared(&fleet, &["h1", "h2"]);
    ok(&apply(&f, &["--release-id", "20261101000001"]));
    // Fill h2 up, then ship a release that does not fit.
    fleet.sh(
        "h2",
        "dd if=/dev/zero of=/srv/filler bs=1M count=7 2>/dev/null || true",
    );
    let mut x: u32 = 1;
    let big: String = (0..1_500_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            char::from(b'a' + (x >> 16) as u8 % 26)
        })
        .collect();
    f.write("app/big.txt", &big);
    f.write("app/index.html", "v2\n");
    let out = apply(&f, &["--release-id", "20261101000002"]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("failed on h2"), "{}", out.stderr);
    for h in ["h1", "h2"] {
        assert_eq!(content(&fleet, h), "v1\n", "{h} still on v1");
        assert!(
            !fleet
                .try_sh(h, "test -e /srv/app/releases/20261101000002")
                .0,
            "no half-made release on {h}"
        );
        assert!(unlocked(&fleet, h), "{h}");
    }
}

fn connection_dropped(after: &str) {
    let fleet = Fleet::start(2);
    let task = format!(
        "[default.tasks.slow]\nrun = \"while [ ! -e /srv/go ]; do sleep 0.1; done\"\nafter = \"{after}\"\n"
    );
    let f = project(&fleet, 2, &task);
    with_shared(&fleet, &["h1", "h2"]);
    for h in ["h1", "h2"] {
        fleet.sh(h, "touch /srv/go");
    }
    ok(&apply(&f, &["--release-id", "20261101000001"]));
    for h in ["h1", "h2"] {
        fleet.sh(h, "rm /srv/go");
    }
    f.write("app/index.html", "v2\n");
    std::thread::scope(|s| {
        let deploy = s.spawn(|| apply(&f, &["--release-id", "20261101000002"]));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let reached = if after == "switch" {
            "[ \"$(readlink /srv/app/current)\" = /srv/app/releases/20261101000002 ]"
        } else {
            "test -e /srv/app/releases/20261101000002/index.html"
        };
        while !fleet.try_sh("h2", reached).0 {
            assert!(
                std::time::Instant::now() < deadline,
                "never reached the slow task"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        fleet.drop_connections("h2");
        fleet.sh("h1", "touch /srv/go");
        let out = deploy.join().unwrap();
        assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
        assert!(out.stderr.contains("failed on h2"), "{}", out.stderr);
    });
    fleet.sh("h2", "touch /srv/go");
    for h in ["h1", "h2"] {
        assert_eq!(content(&fleet, h), "v1\n", "{h} still on v1");
        assert!(unlocked(&fleet, h), "{h} unlocked");
        if after == "switch" {
            // It was live for a moment: kept, recorded failed, removed first by cleanup.
            let states = states(&fleet, h);
            assert_eq!(states.last().unwrap().1, "failed", "{h}: {states:?}");
        } else {
            assert!(
                !fleet
                    .try_sh(h, "test -e /srv/app/releases/20261101000002")
                    .0,
                "no half-made release on {h}"
            );
        }
    }
    f.write("app/index.html", "v3\n");
    ok(&apply(&f, &["--release-id", "20261101000003"]));
}

#[test]
fn a_connection_dropped_before_the_switch_is_opened_again_to_put_the_host_back() {
    connection_dropped("link");
}

#[test]
fn a_connection_dropped_after_the_switch_is_opened_again_to_switch_the_host_back() {
    connection_dropped("switch");
}

#[test]
fn a_host_lost_mid_deploy_is_named_unknown_and_the_others_are_put_back() {
    let mut fleet = Fleet::start(2);
    let task = "[default.tasks.slow]\nrun = \"while [ ! -e /srv/go ]; do sleep 0.1; done\"\nafter = \"link\"\n";
    let f = project(&fleet, 2, task);
    with_shared(&fleet, &["h1", "h2"]);
    for h in ["h1", "h2"] {
        fleet.sh(h, "touch /srv/go");
    }
    ok(&apply(&f, &["--release-id", "20261101000001"]));
    for h in ["h1", "h2"] {
        fleet.sh(h, "rm /srv/go");
    }
    f.write("app/index.html", "v2\n");
    std::thread::scope(|s| {
        let deploy = s.spawn(|| apply(&f, &["--release-id", "20261101000002"]));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !fleet
            .try_sh("h2", "test -e /srv/app/releases/20261101000002/index.html")
            .0
        {
            assert!(
                std::time::Instant::now() < deadline,
                "never reached the slow task"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // What the deploy leaves running on h2 (its loop, which nothing can reach once the
        // host is gone) is stopped when the test ends, found by h2's filesystem through a
        // marker process started there now.
        let (_, marker, _) = fleet.try_sh("h2", "sleep 600 </dev/null >/dev/null 2>&1 & echo $!");
        let _leftovers = StopNamespaceOf(marker.trim().to_owned());
        // The whole sshd goes: its connections, then the listener. The host is gone.
        fleet.drop_connections("h2");
        fleet.stop("h2");
        fleet.sh("h1", "touch /srv/go");
        let out = deploy.join().unwrap();
        assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with("  h2 ") && l.contains("UNKNOWN: could not put it back")),
            "{}",
            out.stdout
        );
        assert!(out.stderr.contains("need a look: h2"), "{}", out.stderr);
    });
    assert_eq!(content(&fleet, "h1"), "v1\n");
    assert!(unlocked(&fleet, "h1"));
    assert!(
        !fleet
            .try_sh("h1", "test -e /srv/app/releases/20261101000002")
            .0
    );
}

/// Kills, when dropped, every process in the mount namespace of process `.0` (a `sleep 600`
/// started on a test host): a host whose sshd a test stopped keeps what ran there. Never
/// this machine's own namespace, nor a pid that is no longer the marker.
struct StopNamespaceOf(String);

impl Drop for StopNamespaceOf {
    fn drop(&mut self) {
        let pid = &self.0;
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            return;
        }
        let script = format!(
            r#"case "$(cat /proc/{pid}/cmdline 2>/dev/null | tr '\0' ' ')" in "sleep 600 ") ;; *) exit 0 ;; esac
ns=$(readlink /proc/{pid}/ns/mnt) || exit 0
[ -n "$ns" ] && [ "$ns" != "$(readlink /proc/self/ns/mnt)" ] || exit 0
for p in /proc/[0-9]*; do [ "$(readlink $p/ns/mnt 2>/dev/null)" = "$ns" ] && kill -9 "${{p#/proc/}}" 2>/dev/null; done
exit 0"#
        );
        let _ = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .status();
    }
}

/// A successful deploy leaves `target/ship/artifacts/` with the artifacts used last
/// (`ship_core::cache::KEPT_ARTIFACTS`, the one deployed among them), not every one ever
/// built: of older ones, the `.tar.zst`, `.tar.gz` and delta bundles go, the object lists
/// stay; a file not of the cache stays; `-v` says what was removed.
#[test]
fn a_deploy_keeps_the_artifacts_used_last_on_this_machine() {
    let fleet = Fleet::start(1);
    let f = project(&fleet, 1, "");
    with_shared(&fleet, &["h1"]);
    let cache = f.join("target/ship/artifacts");
    std::fs::create_dir_all(&cache).unwrap();
    let now = std::time::SystemTime::now();
    let old = ship_core::cache::KEPT_ARTIFACTS + 2;
    let digest = |i: usize| format!("{i:064x}");
    let aged = |name: &str, days: u64| {
        let path = cache.join(name);
        std::fs::write(&path, vec![b'x'; 1000]).unwrap();
        let t = now - std::time::Duration::from_secs(86_400 * days);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    };
    for i in 1..=old {
        aged(&format!("{}.tar.zst", digest(i)), i as u64);
        aged(&format!("{}.objects", digest(i)), i as u64);
    }
    // The oldest: also a .tar.gz and a delta bundle.
    aged(&format!("{}.tar.gz", digest(old)), old as u64);
    aged(
        &format!("{}.delta-0123456789abcdef.tar.zst", digest(old)),
        old as u64,
    );
    aged("notes.txt", 99);
    // A plan saved here (another stage's) keeps its artifact, however old.
    let kept_by_plan = old - 1;
    std::fs::write(
        f.join("target/ship/other.plan.json"),
        format!(
            "{{\"artifact\": {{\"digest\": \"{}\"}}}}",
            digest(kept_by_plan)
        ),
    )
    .unwrap();
    let out = apply(&f, &["-v", "--release-id", "20261101000001"]);
    ok(&out);
    // 13 artifacts, the 10 used last kept and one a saved plan names: the 2 others go,
    // with the oldest's .tar.gz and bundle.
    assert!(
        out.stderr.contains("removed 4 old files (0.0 MB) from"),
        "{}",
        out.stderr
    );
    let names: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let zst: Vec<&String> = names.iter().filter(|n| n.ends_with(".tar.zst")).collect();
    assert_eq!(zst.len(), ship_core::cache::KEPT_ARTIFACTS + 1, "{names:?}");
    assert!(
        names.contains(&format!("{}.tar.zst", digest(kept_by_plan))),
        "{names:?}"
    );
    let deployed = releases_json(&fleet, "h1")[0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(names.contains(&format!("{deployed}.tar.zst")), "{names:?}");
    for i in [old - 2, old] {
        assert!(
            !names.contains(&format!("{}.tar.zst", digest(i))),
            "{names:?}"
        );
        assert!(
            names.contains(&format!("{}.objects", digest(i))),
            "{names:?}"
        );
    }
    assert!(
        !names
            .iter()
            .any(|n| n.contains(".delta-") || n.ends_with(".tar.gz"))
    );
    assert!(names.contains(&"notes.txt".to_owned()));
}
