//! A fleet of real OpenSSH servers on this machine, for end-to-end tests.
//!
//! Each host is an `sshd` on its own loopback address (127.X.Y.Z, port 2222) in its own
//! mount namespace with a private tmpfs at `/srv`, so each host has its own filesystem as
//! separate machines would. Keys come from `ssh-keygen`; a generated ssh_config and
//! known_hosts name the hosts `h1..hN` (never the user's `~/.ssh`). Needs root and
//! openssh-server. Dropping the fleet stops its servers. [`Fleet::start_isolated`] gives each
//! host its own network namespace too (its own `127.0.0.1`), reached on `10.X.Y.Z`.

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
    /// Whether each host has its own network namespace (see [`Fleet::start_isolated`]).
    own_network: bool,
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

/// A block `10.X.Y.0/24` no address of this machine is in (nor another fleet's).
fn free_network() -> (u8, u8) {
    let x = 20 + (std::process::id() % 200) as u8;
    let out = Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .expect("ip runs (iproute2)");
    let taken = String::from_utf8_lossy(&out.stdout).into_owned();
    for _ in 0..250 {
        let y = (NEXT.fetch_add(1, Ordering::SeqCst) % 250 + 1) as u8;
        if !taken.contains(&format!(" 10.{x}.{y}.")) {
            return (x, y);
        }
    }
    panic!("no free block of 10.{x}.Y.0/24");
}

/// Joins the network namespace of the host whose first process is `pid` to this one: a
/// veth pair, `eth0` there with `ip`, its peer here with `outer`, each a route to the other.
fn connect_network(pid: u32, ip: Ipv4Addr, outer: Ipv4Addr) {
    let [_, x, y, z] = ip.octets();
    let name = format!("shp{x:02x}{y:02x}{z:02x}");
    // `unshare` makes the namespace once it runs: until then `pid` is still in this one.
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/net")).ok();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ns(&pid.to_string()) == ns("self") {
        assert!(
            Instant::now() < deadline,
            "host {ip} has no network namespace"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    run(Command::new("ip").args([
        "link",
        "add",
        &name,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &pid.to_string(),
    ]));
    run(Command::new("ip").args(["addr", "add", &format!("{outer}/32"), "dev", &name]));
    run(Command::new("ip").args(["link", "set", &name, "up"]));
    run(Command::new("ip").args([
        "route",
        "add",
        &format!("{ip}/32"),
        "dev",
        &name,
        "src",
        &outer.to_string(),
    ]));
    run(Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n", "sh", "-c"])
        .arg(format!(
            "ip link set eth0 up && ip route add {outer}/32 dev eth0 && ip addr add {ip}/32 dev eth0"
        )));
}

impl Fleet {
    /// The ssh master processes (`ssh -M`) running for this fleet, by their pid, process
    /// group and command line (`ps -o pid=,pgid=,args=`): those given its ssh_config, or
    /// (`-F`) a configuration that includes it.
    pub fn ssh_masters(&self) -> Vec<String> {
        let ps = Command::new("ps")
            .args(["-eo", "pid=,pgid=,args="])
            .output()
            .expect("ps runs");
        let config = self.ssh_config().display().to_string();
        let ours = |line: &str| {
            if line.contains(&config) {
                return true;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            words.windows(2).any(|w| {
                w[0] == "-F"
                    && std::fs::read_to_string(w[1]).is_ok_and(|text| {
                        text.lines()
                            .filter_map(|l| l.trim().strip_prefix("Include "))
                            .filter_map(|f| std::fs::read_to_string(f.trim_matches('"')).ok())
                            .any(|inner| {
                                inner.contains(&config)
                                    || inner.contains(self.dir().to_str().unwrap_or("-"))
                            })
                    })
            })
        };
        String::from_utf8_lossy(&ps.stdout)
            .lines()
            .filter(|l| l.contains(" -M ") && ours(l))
            .map(str::to_owned)
            .collect()
    }

    /// Starts `n` hosts (at most 250) with a `tmpfs_size` (e.g. `"64m"`) filesystem at `/srv`.
    pub fn start_sized(n: usize, tmpfs_size: &str) -> Fleet {
        Fleet::start_with(n, tmpfs_size, false, &|_, _| String::new())
    }

    /// Starts `n` hosts with 64 MiB each, each sshd's configuration beginning with what
    /// `sshd_config` gives for the host's name and address (sshd keeps the first value of
    /// a keyword: `LogLevel DEBUG1`, another `ListenAddress <ip>:2200`, ...).
    pub fn start_configured(n: usize, sshd_config: &dyn Fn(&str, Ipv4Addr) -> String) -> Fleet {
        Fleet::start_with(n, "64m", false, sshd_config)
    }

    /// Starts `n` hosts (at most 120), each with its own network namespace as well: its own
    /// loopback, so a server on `127.0.0.1:8000` of one host is not another's, as on separate
    /// machines. A host is reached on `10.X.Y.Z` through a veth pair. Dropping the fleet
    /// kills every process left on its hosts (they would keep the namespaces alive).
    pub fn start_isolated(n: usize, tmpfs_size: &str) -> Fleet {
        Fleet::start_with(n, tmpfs_size, true, &|_, _| String::new())
    }

    fn start_with(
        n: usize,
        tmpfs_size: &str,
        own_network: bool,
        extra: &dyn Fn(&str, Ipv4Addr) -> String,
    ) -> Fleet {
        assert!((1..=250).contains(&n));
        assert!(!own_network || n <= 120, "at most 120 isolated hosts");
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
        let (x, y) = if own_network {
            free_network()
        } else {
            free_block(n)
        };
        let mut known = String::new();
        let mut config = String::new();
        let mut hosts = Vec::new();
        for i in 1..=n {
            let ip = if own_network {
                Ipv4Addr::new(10, x, y, i as u8)
            } else {
                Ipv4Addr::new(127, x, y, i as u8)
            };
            let name = format!("h{i}");
            let cfg = d.join(format!("sshd_{name}.conf"));
            std::fs::write(
                &cfg,
                format!(
                    "{}ListenAddress {ip}:2222\nHostKey {d}/host_ed25519\nAuthorizedKeysFile {d}/id_ed25519.pub\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
                     StrictModes no\nUsePAM no\nMaxSessions 64\nMaxStartups 256\nPidFile none\nLogLevel VERBOSE\n\
                     Subsystem sftp internal-sftp\n",
                    extra(&name, ip),
                    d = d.display()
                ),
            )
            .expect("sshd config");
            let log = std::fs::File::create(d.join(format!("sshd_{name}.log"))).expect("log");
            // With its own network, the host waits (10 s at most) for its address on eth0.
            let wait = if own_network {
                format!(
                    "ip link set lo up && for _ in $(seq 500); do ip -o addr show dev eth0 2>/dev/null | grep -q ' {ip}/' && break; sleep 0.02; done && "
                )
            } else {
                String::new()
            };
            let child = Command::new("unshare")
                .args(["--mount", "--propagation", "private"])
                .args(own_network.then_some("--net"))
                .args(["sh", "-c"])
                .arg(format!(
                    "mount -t tmpfs -o size={tmpfs_size} tmpfs /srv && {wait}exec /usr/sbin/sshd -D -e -f '{}'",
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
            if own_network {
                connect_network(child.id(), ip, Ipv4Addr::new(10, x, y, 128 + i as u8));
            }
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
        Fleet {
            dir,
            hosts,
            own_network,
        }
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
            .args(["-t", &h.pid.to_string(), "-m"])
            .args(self.own_network.then_some("-n"))
            .args(["sh", "-c", cmd])
            .output()
            .expect("nsenter runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Whether a deploy's lock is on `host` (`/srv/app/.ship/lock`, the tests' `deploy_to`).
    pub fn locked(&self, host: &str) -> bool {
        self.try_sh(host, "test -e /srv/app/.ship/lock").0
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
        if self.own_network {
            // What the tests started on the hosts (daemons, their children) would keep the
            // hosts' namespaces, and so their addresses, alive.
            for h in &self.hosts {
                self.kill_all_but_sshd(&h.name);
            }
        }
        for h in &mut self.hosts {
            if let Some(mut child) = h.sshd.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Fleet {
    /// Kills (SIGKILL) every process of `host` (its mount namespace: the fleets of the tests
    /// share one pid space) but its sshd: whatever a test or a deploy left running there.
    pub fn kill_all_but_sshd(&self, host: &str) {
        let sshd = self.host(host).pid;
        self.try_sh(
            host,
            &format!(
                "me=$(readlink /proc/self/ns/mnt); pids=; for d in /proc/[0-9]*; do p=${{d#/proc/}}; \
                 [ $p = $$ ] || [ $p = {sshd} ] && continue; \
                 [ \"$(readlink $d/ns/mnt 2>/dev/null)\" = \"$me\" ] && pids=\"$pids $p\"; done; \
                 [ -z \"$pids\" ] || kill -9 $pids 2>/dev/null; true"
            ),
        );
    }

    /// Gives each host its own copy of the machine's directory `path` (bind-mounted in the
    /// host's mount namespace from `/srv/.private<path>`): what a host writes there (a
    /// supervisord's configuration in `/etc/supervisor`, crontabs in `/var/spool/cron`)
    /// is its own, and the machine's stays untouched.
    pub fn private_dir(&self, path: &str) {
        for h in &self.hosts {
            self.sh(
                &h.name,
                &format!(
                    "test -d '{path}' && mkdir -p '/srv/.private{path}' && cp -a '{path}/.' '/srv/.private{path}/' \
                     && mount --bind '/srv/.private{path}' '{path}'"
                ),
            );
        }
    }

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

/// A user of this machine made for one test (the fleet's hosts share `/etc/passwd`), with
/// a password if asked; deleted when dropped. The fleet's sshd takes its key for any user.
pub struct TestUser {
    /// Its login name.
    pub name: String,
}

impl TestUser {
    /// Makes a user named `ship<pid>_<tag>` (no home directory, `/bin/sh`).
    pub fn create(tag: &str, password: Option<&str>) -> TestUser {
        let name = format!("ship{}_{tag}", std::process::id());
        let _ = Command::new("userdel").arg(&name).output();
        // Tests run in parallel: useradd waits for nobody else's lock on /etc/passwd.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = Command::new("useradd")
                // `*`: no password, and not locked (sshd without PAM refuses a locked account).
                .args(["-M", "-p", "*", "-s", "/bin/sh", &name])
                .output()
                .expect("useradd runs");
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "useradd {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let user = TestUser { name };
        if let Some(p) = password {
            use std::io::Write;
            let mut child = Command::new("chpasswd")
                .stdin(Stdio::piped())
                .spawn()
                .expect("chpasswd runs");
            writeln!(child.stdin.take().expect("piped"), "{}:{p}", user.name).expect("written");
            assert!(child.wait().expect("chpasswd ends").success());
        }
        user
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        for _ in 0..50 {
            let done = Command::new("userdel")
                .arg(&self.name)
                .output()
                .is_ok_and(|o| o.status.success() || o.status.code() == Some(6));
            if done {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
