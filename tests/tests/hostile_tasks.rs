//! Hostile and careless tasks on real SSH hosts (found by a review of issue #15). A task
//! runs as the deploy user, so it can reach the conversation's own file descriptors: under dash the task's `sh -c` is
//! exec'd by the step's subshell, so `$PPID` is the conversation shell and
//! `/proc/$PPID/fd/1` is the control channel, `/proc/$PPID/fd/0` its input.

use ship_tests::{Fixture, Fleet, Output};
use std::time::{Duration, Instant};

fn project(fleet: &Fleet, timeout: &str, tasks: &str) -> Fixture {
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nsource = {{ dir = \"app\" }}\n\
         ssh_config = \"{}\"\ncommand_timeout = \"{timeout}\"\nkeep_releases = 3\n{tasks}\n\
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

const OLD: &str = "/srv/app/releases/20261101000001";
const NEW: &str = "/srv/app/releases/20261101000002";

/// A daemon left by a task writes a few bytes with no newline on the control channel while
/// the conversation waits for its next `go`: the next control line, `<nonce> start <switch>`,
/// arrives glued to them and is not read. The machine sees `end <switch> 0` without its
/// `start`, so it does not count the host as switched; when a later step of the same host
/// fails, the host is "aborted" instead of reverted, keeps the new release live, and the
/// deploy reports exit 3 (every host as it was) with the two hosts on different releases.
#[test]
fn a_partial_line_on_the_channel_cannot_hide_the_switch() {
    let fleet = Fleet::start(2);
    let tasks = r#"
[default.tasks.prime]
run = """
if [ -e /srv/attack ]; then
  if [ "$SHIP_HOST" = h1 ]; then
    c=$PPID
    setsid sh -c "sleep 2; printf junk > /proc/$c/fd/1" </dev/null >/dev/null 2>&1 &
  else
    sleep 6
  fi
fi
"""
after = "install"

[default.tasks.restart]
run = "test ! -e /srv/fail"
after = "switch"
"#;
    let f = project(&fleet, "60s", tasks);
    let first = apply(&f, "20261101000001");
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    f.write("app/index.html", "v2\n");
    for h in ["h1", "h2"] {
        fleet.sh(h, "touch /srv/attack");
    }
    fleet.sh("h1", "touch /srv/fail");
    let out = apply(&f, "20261101000002");
    let report = format!("{}\n{}", out.stdout, out.stderr);
    let (h1, h2) = (live(&fleet, "h1"), live(&fleet, "h2"));
    assert!(
        out.code == 4 || (h1 == OLD && h2 == OLD && out.code == 3),
        "exit {} with h1 on {h1}, h2 on {h2}: a failed deploy left a host on the new release \
         and did not say so\n{report}",
        out.code
    );
}

/// A full disk on a host when the lock is taken: `mkdir .ship/lock` succeeds, writing
/// `.ship/lock/info` fails, the lock step exits 1. The machine reads "lock failed" as "not
/// locked", puts nothing back, and the host stays locked (by an empty holder) for every
/// later deploy.
#[test]
fn a_full_disk_at_lock_leaves_no_lock_behind() {
    let fleet = Fleet::start_sized(2, "16m");
    let f = project(&fleet, "60s", "");
    let first = apply(&f, "20261101000001");
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    f.write("app/index.html", "v2\n");
    fleet.try_sh(
        "h2",
        "dd if=/dev/zero of=/srv/fill bs=64k 2>/dev/null; sync",
    );
    let out = apply(&f, "20261101000002");
    assert_ne!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    fleet.sh("h2", "rm -f /srv/fill");
    let left = fleet.locked("h2");
    let third = apply(&f, "20261101000003");
    assert!(
        !left && third.code == 0,
        "h2 is still locked after a failed deploy (lock left: {left}); the next deploy: exit {}\n{}\n{}\n--- the failed deploy:\n{}\n{}",
        third.code,
        third.stdout,
        third.stderr,
        out.stdout,
        out.stderr
    );
}

/// Tasks that misbehave without meaning harm: a 3 MB line with no newline, binary output,
/// no trailing newline, reading stdin, a whole line written on the control channel, closed
/// descriptors, daemons started with `setsid` and `nohup`. The deploy succeeds, promptly.
#[test]
fn misbehaving_tasks_neither_steer_nor_stall_the_deploy() {
    let fleet = Fleet::start(2);
    let tasks = r#"
[default.tasks.noisy]
run = """
head -c 3000000 /dev/zero | tr '\\0' x
head -c 4096 /dev/urandom
cat
echo a whole line on the channel > /proc/$PPID/fd/1
printf 'no newline at the end'
"""
after = "install"

[default.tasks.restart]
run = """
setsid sh -c 'sleep 300' &
nohup sleep 301 &
exec 0<&- 1>&- 2>&-
true
"""
after = "switch"
"#;
    let f = project(&fleet, "60s", tasks);
    let started = Instant::now();
    let out = apply(&f, "20261101000001");
    let took = started.elapsed();
    let report = format!("{}\n{}", out.stdout, out.stderr);
    for h in ["h1", "h2"] {
        fleet.try_sh(h, "pkill -f '^sleep 30[01]'");
    }
    assert_eq!(
        out.code,
        0,
        "{}",
        &report[report.len().saturating_sub(4000)..]
    );
    assert!(took < Duration::from_secs(30), "the deploy took {took:?}");
    eprintln!(
        "misbehaving tasks: {took:?}, report {} bytes, longest line {} bytes",
        report.len(),
        report.lines().map(str::len).max().unwrap_or(0)
    );
    for h in ["h1", "h2"] {
        assert_eq!(live(&fleet, h), OLD, "{h}");
        assert!(!fleet.locked(h), "{h}");
    }
}

/// A task whose command is not found (exit 127) fails the deploy cleanly.
#[test]
fn a_command_not_found_fails_cleanly() {
    let fleet = Fleet::start(2);
    let tasks = "[default.tasks.migrate]\nrun = \"test ! -e /srv/fail || no-such-command-xyz\"\nafter = \"install\"\n";
    let f = project(&fleet, "60s", tasks);
    let first = apply(&f, "20261101000001");
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    f.write("app/index.html", "v2\n");
    fleet.sh("h2", "touch /srv/fail");
    let out = apply(&f, "20261101000002");
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("127"), "{}", out.stderr);
    for h in ["h1", "h2"] {
        assert_eq!(live(&fleet, h), OLD, "{h}");
        assert!(!fleet.locked(h), "{h}");
        assert!(!fleet.try_sh(h, &format!("test -e {NEW}")).0, "{h}");
    }
}
