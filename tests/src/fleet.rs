//! A fleet of real OpenSSH servers on this machine, for end-to-end tests.
//!
//! Each host is an `sshd` on its own loopback address (127.X.Y.Z, port 2222) in its own
//! mount namespace with a private tmpfs at `/srv`, so each host has its own filesystem as
//! separate machines would. Keys come from `ssh-keygen`; a generated ssh_config and
//! known_hosts name the hosts `h1..hN` (never the user's `~/.ssh`). Needs root and
//! openssh-server. Dropping the fleet stops its servers.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// One host of a fleet.
pub struct TestHost {
    /// Its name in the fleet's ssh_config: `h1`, `h2`, ...
    pub name: String,
    /// Its address.
    pub ip: Ipv4Addr,
    sshd: Option<Child>,
    pid: u32,
}

/// Real SSH hosts, stopped when dropped.
pub struct Fleet {
    dir: tempfile::TempDir,
    /// The hosts.
    pub hosts: Vec<TestHost>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A block of addresses no other fleet (of this process or another) is using.
fn free_block(n: usize) -> (u8, u8) {
    let x = 20 + (std::process::id() % 200) as u8;
    for _ in 0..250 {
        let y = (NEXT.fetch_add(1, Ordering::SeqCst) % 250 + 1) as u8;
        let all_free =
            (1..=n).all(|z| TcpListener::bind((Ipv4Addr::new(127, x, y, z as u8), 2222)).is_ok());
        if all_free {
            return (x, y);
        }
    }
    panic!("no free block of loopback addresses");
}

impl Fleet {
    /// The ssh master processes (`ssh -M`) running for this fleet, by their command lines.
    pub fn ssh_masters(&self) -> Vec<String> {
        let ps = Command::new("ps")
            .args(["-eo", "args"])
            .output()
            .expect("ps runs");
        let config = self.ssh_config().display().to_string();
        String::from_utf8_lossy(&ps.stdout)
            .lines()
            .filter(|l| l.contains(" -M ") && l.contains(&config))
            .map(str::to_owned)
            .collect()
    }

    /// Starts `n` hosts (at most 250) with a `tmpfs_size` (e.g. `"64m"`) filesystem at `/srv`.
    pub fn start_sized(n: usize, tmpfs_size: &str) -> Fleet {
        assert!((1..=250).contains(&n));
        assert!(
            Path::new("/usr/sbin/sshd").exists(),
            "sshd is missing: apt-get install -y openssh-server"
        );
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        std::fs::create_dir_all("/srv").expect("/srv");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let d = dir.path();
        for key in ["id_ed25519", "host_ed25519"] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "ship-test", "-f"])
                .arg(d.join(key)));
        }
        let host_pub = std::fs::read_to_string(d.join("host_ed25519.pub")).expect("host key");
        let host_pub: String = host_pub
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let (x, y) = free_block(n);
        let mut known = String::new();
        let mut config = String::new();
        let mut hosts = Vec::new();
        for i in 1..=n {
            let ip = Ipv4Addr::new(127, x, y, i as u8);
            let name = format!("h{i}");
            let cfg = d.join(format!("sshd_{name}.conf"));
            std::fs::write(
                &cfg,
                format!(
                    "ListenAddress {ip}:2222\nHostKey {d}/host_ed25519\nAuthorizedKeysFile {d}/id_ed25519.pub\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
                     StrictModes no\nUsePAM no\nMaxSessions 64\nMaxStartups 256\nPidFile none\nLogLevel VERBOSE\n\
                     Subsystem sftp internal-sftp\n",
                    d = d.display()
                ),
            )
            .expect("sshd config");
            let log = std::fs::File::create(d.join(format!("sshd_{name}.log"))).expect("log");
            let child = Command::new("unshare")
                .args(["--mount", "--propagation", "private", "sh", "-c"])
                .arg(format!(
                    "mount -t tmpfs -o size={tmpfs_size} tmpfs /srv && exec /usr/sbin/sshd -D -e -f '{}'",
                    cfg.display()
                ))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("unshare and sshd start");
            known.push_str(&format!("[{ip}]:2222 {host_pub}\n"));
            config.push_str(&format!(
                "Host {name}\n  HostName {ip}\n  Port 2222\n  User root\n  IdentityFile {d}/id_ed25519\n  \
                 IdentitiesOnly yes\n  UserKnownHostsFile {d}/known_hosts\n  StrictHostKeyChecking yes\n  \
                 BatchMode yes\n  LogLevel ERROR\n\n",
                d = d.display()
            ));
            hosts.push(TestHost {
                name,
                ip,
                pid: child.id(),
                sshd: Some(child),
            });
        }
        std::fs::write(d.join("known_hosts"), known).expect("known_hosts");
        std::fs::write(d.join("ssh_config"), config).expect("ssh_config");
        let deadline = Instant::now() + Duration::from_secs(10);
        for h in &hosts {
            while TcpStream::connect((h.ip, 2222)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "{} did not start: {}",
                    h.name,
                    std::fs::read_to_string(d.join(format!("sshd_{}.log", h.name)))
                        .unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Fleet { dir, hosts }
    }

    /// Starts `n` hosts with 64 MiB each.
    pub fn start(n: usize) -> Fleet {
        Fleet::start_sized(n, "64m")
    }

    /// The ssh_config naming the hosts `h1..hN`.
    pub fn ssh_config(&self) -> PathBuf {
        self.dir.path().join("ssh_config")
    }

    /// The fleet's directory (keys, configs, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The host names, quoted for a TOML array: `"h1", "h2"`.
    pub fn toml_hosts(&self, range: std::ops::Range<usize>) -> String {
        self.hosts[range]
            .iter()
            .map(|h| format!("\"{}\"", h.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn host(&self, name: &str) -> &TestHost {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    /// Runs `cmd` with `sh` inside `host`'s filesystem (through its mount namespace, not SSH);
    /// returns its stdout, panicking if it fails.
    pub fn sh(&self, host: &str, cmd: &str) -> String {
        let out = self.try_sh(host, cmd);
        assert!(out.0, "on {host}: `{cmd}` failed: {}", out.2);
        out.1
    }

    /// Runs `cmd` inside `host`'s filesystem: (success, stdout, stderr).
    pub fn try_sh(&self, host: &str, cmd: &str) -> (bool, String, String) {
        let h = self.host(host);
        let out = Command::new("nsenter")
            .args(["-t", &h.pid.to_string(), "-m", "sh", "-c", cmd])
            .output()
            .expect("nsenter runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Reads a file of `host` (empty if missing).
    pub fn read(&self, host: &str, path: &str) -> String {
        self.try_sh(host, &format!("cat '{path}'")).1
    }

    /// Reads a file of `host` whose path may hold any character (empty if missing).
    pub fn read_quoted(&self, host: &str, path: &str) -> String {
        let quoted = format!("'{}'", path.replace('\'', r"'\''"));
        self.try_sh(host, &format!("cat {quoted}")).1
    }

    /// Where `link` points on `host` (empty if it is no link).
    pub fn readlink(&self, host: &str, link: &str) -> String {
        self.try_sh(host, &format!("readlink '{link}'"))
            .1
            .trim()
            .to_owned()
    }

    /// Stops `host`'s sshd (its filesystem goes with it).
    pub fn stop(&mut self, host: &str) {
        let h = self
            .hosts
            .iter_mut()
            .find(|h| h.name == host)
            .expect("a host");
        if let Some(mut child) = h.sshd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Drops every SSH connection to `host` (kills the sshd processes serving them); the
    /// host keeps listening and its filesystem stays.
    pub fn drop_connections(&self, host: &str) {
        let h = self.host(host);
        let _ = Command::new("pkill")
            .args(["-KILL", "-P", &h.pid.to_string()])
            .status();
    }

    /// Lines of `host`'s sshd log that match `pattern`.
    pub fn log_lines(&self, host: &str, pattern: &str) -> usize {
        std::fs::read_to_string(self.dir.path().join(format!("sshd_{host}.log")))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(pattern))
            .count()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            if let Some(mut child) = h.sshd.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Fleet {
    /// The body of `GET /` on `port` of every host's address, in host order; panics naming
    /// the host that does not answer 200.
    pub fn http_answers(&self, port: u16) -> Vec<String> {
        self.hosts
            .iter()
            .map(|h| crate::http_get(h.ip, port).unwrap_or_else(|e| panic!("{}: {e}", h.name)))
            .collect()
    }
}

/// Kills, when dropped (even when a test failed), the process each host of the fleet keeps
/// its pid in `pidfile`: servers a test started on the hosts.
pub struct KillOnDrop<'a>(pub &'a Fleet, pub &'a str);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        for h in &self.0.hosts {
            // Only a process of this host (its mount namespace): the fleets of the tests
            // share one pid space, and a pid that died is soon another test's.
            self.0.try_sh(
                &h.name,
                &format!(
                    "p=$(cat {}) && [ \"$(readlink /proc/$p/ns/mnt)\" = \"$(readlink /proc/self/ns/mnt)\" ] && kill $p 2>/dev/null",
                    self.1
                ),
            );
        }
    }
}
