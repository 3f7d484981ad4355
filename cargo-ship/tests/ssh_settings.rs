//! SSH settings that only the real binary shows (issue 19): no ssh master outlives cargo
//! ship (SIGKILL, Ctrl-C; with a terminal and without), the user's deliberate ssh settings win over cargo ship's
//! defaults, the system's ssh_config still applies beside `ssh_config`, and a bastion that
//! asks for a second factor asks once.

use ship_tests::{Fixture, Fleet, TestUser};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn project(fleet: &Fleet, ssh_config: &str, stage: &str) -> Fixture {
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nsource = {{ dir = \"app\" }}\n\
         ssh_config = \"{ssh_config}\"\n\n{stage}"
    );
    let _ = fleet;
    Fixture::new(&[("app/index.html", "v1\n"), ("Ship.toml", &ship)])
}

fn ship(f: &Fixture, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-ship"));
    cmd.args(args)
        .current_dir(f.path())
        .env("USER", "tester")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn wait_until(what: &str, done: impl FnMut() -> bool) {
    ship_tests::wait_until(what, Duration::from_secs(15), done)
}

/// How cargo ship is started: without a terminal (a session of its own, as under CI or a
/// service), or on one (`script` gives it a pseudo-terminal, as a person's shell would).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Terminal {
    Without,
    On,
}

/// Quoted for `sh`.
fn sh_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// cargo ship ARGS started in the project `f` the `terminal` way: the process started
/// (`setsid` become cargo ship, or `script`) and cargo ship's pid. On a terminal, with
/// `exec` cargo ship is the terminal's controlling process (a Ctrl-C typed reaches it as
/// at a shell's prompt); without, a shell stays in front of it and outlives it, so that
/// its death hangs nothing up (a hangup would stop the masters whatever bound them).
fn start(f: &Fixture, args: &[&str], terminal: Terminal, exec: bool) -> (Child, u32) {
    let bin = env!("CARGO_BIN_EXE_cargo-ship");
    let out = std::fs::File::create(f.join(&format!("out-{}", args[0]))).unwrap();
    let mut cmd = match terminal {
        Terminal::Without => {
            let mut cmd = Command::new("setsid");
            cmd.arg(bin).args(args).stdin(Stdio::null());
            cmd
        }
        Terminal::On => {
            let line = std::iter::once(bin)
                .chain(args.iter().copied())
                .map(sh_quote)
                .collect::<Vec<_>>()
                .join(" ");
            let line = if exec {
                format!("exec {line}")
            } else {
                format!("{line}; sleep 30")
            };
            let mut cmd = Command::new("script");
            cmd.args(["-qec", &line, "/dev/null"]).stdin(Stdio::piped());
            cmd
        }
    };
    let child = cmd
        .current_dir(f.path())
        .env("USER", "tester")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut pid = None;
    wait_until("cargo ship never started", || {
        pid = cargo_ship_in(child.id());
        pid.is_some()
    });
    (child, pid.unwrap())
}

/// `pid` itself or its first descendant found that runs cargo-ship.
fn cargo_ship_in(pid: u32) -> Option<u32> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() == "cargo-ship" {
        return Some(pid);
    }
    let out = Command::new("ps")
        .args(["-o", "pid=", "--ppid", &pid.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .find_map(cargo_ship_in)
}

/// The process group of `pid`.
fn pgid(pid: u32) -> u32 {
    let out = Command::new("ps")
        .args(["-o", "pgid=", "-p", &pid.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Each of the fleet's two masters is in cargo ship's process group only on a terminal:
/// without one, in a group of their own (led by the watchdog), started without a fork.
/// Their pids.
fn masters_are_bound_the(terminal: Terminal, fleet: &Fleet, cargo_ship: u32) -> Vec<u32> {
    let masters = fleet.ssh_masters();
    assert_eq!(masters.len(), 2, "{masters:?}");
    let group = pgid(cargo_ship);
    let mut pids = Vec::new();
    for m in &masters {
        let mut words = m.split_whitespace().map(|w| w.parse::<u32>());
        let (pid, theirs) = (
            words.next().unwrap().unwrap(),
            words.next().unwrap().unwrap(),
        );
        assert_eq!(
            theirs == group,
            terminal == Terminal::On,
            "{terminal:?} a terminal, cargo ship's group {group}: {m}"
        );
        pids.push(pid);
    }
    pids
}

fn no_master_left(fleet: &Fleet, after: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !fleet.ssh_masters().is_empty() {
        assert!(
            Instant::now() < deadline,
            "after {after}, ssh masters are left: {:?}",
            fleet.ssh_masters()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `run` killed with SIGKILL leaves no `ssh -M` behind, within seconds, with a terminal and
/// without: on one the kernel stops the masters (`PR_SET_PDEATHSIG`; the shell in front
/// of cargo ship lives on, so no hangup does it), without one the watchdog does, even
/// after a SIGTERM sent to it alone.
#[test]
fn no_ssh_master_outlives_a_killed_command() {
    let fleet = Fleet::start(2);
    let config = fleet.ssh_config().display().to_string();
    let f = project(&fleet, &config, "[staging]\nhosts = [\"h1\", \"h2\"]\n");
    for terminal in [Terminal::Without, Terminal::On] {
        for h in ["h1", "h2"] {
            fleet.sh(h, "rm -f /srv/started");
        }
        let args = ["run", "staging", "--", "touch /srv/started; sleep 30"];
        let (mut outer, pid) = start(&f, &args, terminal, false);
        wait_until("the command never started on both hosts", || {
            ["h1", "h2"]
                .iter()
                .all(|h| fleet.try_sh(h, "test -e /srv/started").0)
        });
        let masters = masters_are_bound_the(terminal, &fleet, pid);
        if terminal == Terminal::Without {
            // A SIGTERM to the watchdog alone (the masters' group leader) first: it stays.
            let watchdog = pgid(masters[0]).to_string();
            assert!(
                Command::new("kill")
                    .args(["-TERM", &watchdog])
                    .status()
                    .unwrap()
                    .success()
            );
            std::thread::sleep(Duration::from_millis(200));
            assert!(
                std::path::Path::new(&format!("/proc/{watchdog}")).exists(),
                "a SIGTERM stopped the watchdog {watchdog}"
            );
        }
        assert!(
            Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
        no_master_left(&fleet, &format!("SIGKILL, {terminal:?} a terminal"));
        let _ = outer.kill();
        let _ = outer.wait();
    }
}

/// A Ctrl-C is cargo ship's to handle, not its connections': `apply` interrupted while the
/// hosts are in a slow task keeps its masters, puts every host back and exits 130.
/// On a terminal the Ctrl-C is typed (the pseudo-terminal sends SIGINT to the whole
/// foreground group, the masters with it: they ignore it; OpenSSH's `-N` master was seen
/// to outlive a SIGINT here without that too, so this half checks the outcome, not the
/// ignore); without one, SIGINT goes to cargo ship's whole process group (a CI runner's
/// cancel), which the masters are not in.
#[test]
fn a_ctrl_c_reaches_cargo_ship_not_its_connections() {
    let fleet = Fleet::start(2);
    let config = fleet.ssh_config().display().to_string();
    let f = project(
        &fleet,
        &config,
        "[default.tasks.slow]\nrun = \"while [ ! -e /srv/go ]; do sleep 0.1; done\"\n\
         after = \"link\"\n\n[staging]\nhosts = [\"h1\", \"h2\"]\n",
    );
    for h in ["h1", "h2"] {
        fleet.sh(h, "touch /srv/go");
    }
    let first = ship(&f, &["apply", "staging"]).output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    for (n, terminal) in [Terminal::Without, Terminal::On].into_iter().enumerate() {
        for h in ["h1", "h2"] {
            fleet.sh(h, "rm -f /srv/go");
        }
        f.write("app/index.html", &format!("v{}\n", n + 2));
        let id = format!("2026110100000{n}");
        let args = ["apply", "staging", "--release-id", &id];
        let (mut outer, pid) = start(&f, &args, terminal, true);
        wait_until("the deploy never reached the slow task", || {
            ["h1", "h2"].iter().all(|h| {
                fleet
                    .try_sh(h, &format!("test -e /srv/app/releases/{id}/index.html"))
                    .0
            })
        });
        let masters = masters_are_bound_the(terminal, &fleet, pid);
        match terminal {
            Terminal::On => {
                use std::io::Write;
                let stdin = outer.stdin.as_mut().unwrap();
                stdin.write_all(b"\x03").unwrap();
                stdin.flush().unwrap();
            }
            Terminal::Without => {
                let group = format!("-{}", pgid(pid));
                assert!(
                    Command::new("kill")
                        .args(["-INT", "--", &group])
                        .status()
                        .unwrap()
                        .success()
                );
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        // The connections are cargo ship's still (it would open new ones, but need not).
        for m in &masters {
            assert!(
                std::path::Path::new(&format!("/proc/{m}")).exists(),
                "{terminal:?} a terminal: the Ctrl-C stopped the ssh master {m}"
            );
        }
        for h in ["h1", "h2"] {
            fleet.sh(h, "touch /srv/go");
        }
        let status = outer.wait().unwrap();
        let said = std::fs::read_to_string(f.join("out-apply")).unwrap_or_default();
        assert_eq!(status.code(), Some(130), "{terminal:?} a terminal:\n{said}");
        for h in ["h1", "h2"] {
            assert_eq!(
                fleet.read(h, "/srv/app/current/index.html"),
                "v1\n",
                "{terminal:?} a terminal: {h} put back:\n{said}"
            );
            assert!(
                !fleet.locked(h),
                "{terminal:?} a terminal: {h} unlocked:\n{said}"
            );
        }
        no_master_left(&fleet, &format!("Ctrl-C, {terminal:?} a terminal"));
    }
}

/// A user's ssh_config that deliberately turns host-key checking off for a host (here
/// with an empty known_hosts) is obeyed: cargo ship's `StrictHostKeyChecking yes` is a
/// default, not an override.
#[test]
fn a_deliberate_ssh_setting_wins_over_cargo_ships_default() {
    let fleet = Fleet::start(1);
    let empty = fleet.dir().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let mine = fleet.dir().join("mine_config");
    std::fs::write(
        &mine,
        format!(
            "Host h1\n  StrictHostKeyChecking no\n  UserKnownHostsFile {}\nInclude {}\n",
            empty.display(),
            fleet.ssh_config().display()
        ),
    )
    .unwrap();
    let f = project(
        &fleet,
        &mine.display().to_string(),
        "[staging]\nhosts = [\"h1\"]\n",
    );
    let out = ship(&f, &["run", "staging", "--", "echo", "in"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("in"), "{text}");
}

/// `ssh_config` adds to the system's configuration instead of replacing it: a host alias
/// defined only in /etc/ssh/ssh_config (bind-mounted over, in a mount namespace of this
/// command alone) is reached.
#[test]
fn the_systems_ssh_config_still_applies_beside_ssh_config() {
    let fleet = Fleet::start(1);
    let d = fleet.dir();
    let system = d.join("system_ssh_config");
    std::fs::write(
        &system,
        format!(
            "Host viasystem\n  HostName {}\n  Port 2222\n  User root\n  IdentityFile {}/id_ed25519\n  \
             IdentitiesOnly yes\n  UserKnownHostsFile {}/known_hosts\n  LogLevel ERROR\n",
            fleet.hosts[0].ip,
            d.display(),
            d.display()
        ),
    )
    .unwrap();
    let project_config = d.join("project_ssh_config");
    std::fs::write(&project_config, "# nothing about viasystem here\n").unwrap();
    let f = project(
        &fleet,
        &project_config.display().to_string(),
        "[staging]\nhosts = [\"viasystem\"]\n",
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount --bind '{}' /etc/ssh/ssh_config && exec '{}' run staging -- echo reached",
            system.display(),
            env!("CARGO_BIN_EXE_cargo-ship")
        ))
        .current_dir(f.path())
        .env("USER", "tester")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("reached"), "{text}");
}

/// A bastion that asks for a password after the key (a second factor) is usable: the
/// user's ssh_config says `BatchMode no` for it, and it asks once (SSH_ASKPASS counts the
/// prompts) for two hosts behind it.
#[test]
fn a_bastion_with_a_second_factor_asks_once() {
    let fleet = Fleet::start_configured(3, &|name, _| match name {
        "h1" => "AuthenticationMethods publickey,password\nPasswordAuthentication yes\n".to_owned(),
        _ => String::new(),
    });
    let user = TestUser::create("mfa", Some("s3cret-second-factor"));
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(fleet.dir(), std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    let d = fleet.dir();
    let askpass = d.join("askpass");
    let count = d.join("prompts");
    std::fs::write(
        &askpass,
        format!(
            "#!/bin/sh\necho \"$1\" >> '{}'\necho s3cret-second-factor\n",
            count.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mine = d.join("mine_config");
    std::fs::write(
        &mine,
        format!(
            "Host h1\n  BatchMode no\nHost *\nInclude {}\n",
            fleet.ssh_config().display()
        ),
    )
    .unwrap();
    let f = project(
        &fleet,
        &mine.display().to_string(),
        &format!(
            "[staging]\nhosts = [\"h2\", \"h3\"]\n[staging.ssh]\njump = \"{}@h1\"\n",
            user.name
        ),
    );
    let out = ship(&f, &["run", "staging", "--", "hostname"])
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        std::fs::read_to_string(fleet.dir().join("sshd_h1.log")).unwrap_or_default()
    );
    let prompts = std::fs::read_to_string(&count).unwrap_or_default();
    assert_eq!(prompts.lines().count(), 1, "prompts: {prompts:?}\n{text}");
    assert_eq!(
        fleet.log_lines("h1", &format!("Accepted password for {}", user.name)),
        1
    );
}
