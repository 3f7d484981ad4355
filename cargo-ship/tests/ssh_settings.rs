//! SSH settings that only the real binary shows (issue 19): no ssh master outlives cargo
//! ship (SIGKILL, Ctrl-C; with a terminal and without), the user's deliberate ssh settings win over cargo ship's
//! defaults, the system's ssh_config still applies beside `ssh_config`, and a bastion that
//! asks for a second factor asks once.

use ship_tests::{Fixture, Fleet, TestUser};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
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

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `run` killed with SIGKILL, and `run` interrupted by a Ctrl-C (SIGINT to the whole
/// foreground process group, as a terminal sends it): no `ssh -M` is left, within seconds.
/// Both ways a master is bound to cargo ship: without a controlling terminal (a process
/// group of the masters' own, led by a watchdog), and with one (`script` gives cargo ship a
/// pseudo-terminal: the masters stay in its group, ignore SIGINT, die with their parent).
#[test]
fn no_ssh_master_outlives_a_killed_or_interrupted_command() {
    let fleet = Fleet::start(2);
    let config = fleet.ssh_config().display().to_string();
    let f = project(&fleet, &config, "[staging]\nhosts = [\"h1\", \"h2\"]\n");
    let args = ["run", "staging", "--", "touch /srv/started; sleep 30"];
    for terminal in [false, true] {
        for signal in ["KILL", "INT"] {
            for h in ["h1", "h2"] {
                fleet.sh(h, "rm -f /srv/started");
            }
            let (mut child, pid) = if terminal {
                let line = std::iter::once(env!("CARGO_BIN_EXE_cargo-ship"))
                    .chain(args)
                    .map(|w| format!("'{w}'"))
                    .collect::<Vec<_>>()
                    .join(" ");
                let mut script = Command::new("script");
                script
                    .args(["-qec", &format!("exec {line}"), "/dev/null"])
                    .current_dir(f.path())
                    .env("USER", "tester")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .process_group(0);
                let child = script.spawn().unwrap();
                // cargo ship is script's child, leading the terminal's session and group.
                let script_pid = child.id();
                let mut pid = None;
                wait_until("cargo ship never started under script", || {
                    pid = children(script_pid).first().copied();
                    pid.is_some()
                });
                (child, pid.unwrap())
            } else {
                let child = ship(&f, &args).process_group(0).spawn().unwrap();
                let pid = child.id();
                (child, pid)
            };
            wait_until("the command never started on both hosts", || {
                ["h1", "h2"]
                    .iter()
                    .all(|h| fleet.try_sh(h, "test -e /srv/started").0)
            });
            let masters = fleet.ssh_masters();
            assert_eq!(masters.len(), 2, "{masters:?}");
            // Which way they are bound: in cargo ship's group only with a terminal.
            let group = pgid(pid);
            for m in &masters {
                let theirs: u32 = m.split_whitespace().next().unwrap().parse().unwrap();
                assert_eq!(
                    theirs == group,
                    terminal,
                    "terminal: {terminal}, cargo ship's group {group}: {m}"
                );
            }
            let target = if signal == "KILL" {
                pid.to_string()
            } else {
                format!("-{group}")
            };
            assert!(
                Command::new("kill")
                    .args([&format!("-{signal}"), "--", &target])
                    .status()
                    .unwrap()
                    .success()
            );
            let _ = child.wait();
            let deadline = Instant::now() + Duration::from_secs(5);
            while !fleet.ssh_masters().is_empty() {
                assert!(
                    Instant::now() < deadline,
                    "terminal: {terminal}, after SIG{signal}, ssh masters are left: {:?}",
                    fleet.ssh_masters()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let out = Command::new("ps")
        .args(["-o", "pid=", "--ppid", &pid.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The process group of `pid`.
fn pgid(pid: u32) -> u32 {
    let out = Command::new("ps")
        .args(["-o", "pgid=", "-p", &pid.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
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
