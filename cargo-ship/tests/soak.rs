//! A soak: 20 real hosts, 50 deploys in a row, a fault injected into a third of them, each
//! on a host drawn at random: a missing shared file, a task failing before or after the
//! switch, a failing health check, a task that prints the old protocol's markers and then
//! fails, a frozen step (cut at `command_timeout`, 20s, which leaves room for a loaded
//! 2-core machine), a full disk, a second deploy started at the same time, and a deploy
//! killed (SIGKILL) at a random moment, after which `cargo ship unlock` and the next deploy
//! must bring every host back to one complete release. After every deploy, every host's
//! `current` is a complete release, `.ship/releases.json` marks it live, all hosts agree on
//! it, and no lock, `.ship/preparing` mark, ssh master (but a killed deploy's, which ends a
//! minute after it: `adversary::no_leak_of_ssh_masters_or_memory`) or remote step is left.

use ship_tests::{Fixture, Fleet};

const HOSTS: usize = 20;
const DEPLOYS: u32 = 50;

/// A small deterministic random number generator: the same faults on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[test]
fn twenty_hosts_fifty_deploys_with_faults_always_agree_on_a_complete_release() {
    let fleet = Fleet::start_sized(HOSTS, "32m");
    let names: Vec<String> = fleet.hosts.iter().map(|h| h.name.clone()).collect();
    let ship = format!(
        "[default]\napp = \"soak\"\ndeploy_to = \"/srv/app\"\nsource = {{ dir = \"app\" }}\n\
         ssh_config = \"{}\"\nlinked_files = [\"config/settings.py\"]\nkeep_releases = 3\nparallel = {HOSTS}\n\
         command_timeout = \"20s\"\n\
         [default.tasks.before]\nrun = \"test ! -e /srv/fail-before\"\nafter = \"install\"\n\
         [default.tasks.forged]\nrun = \"\"\"if [ -e /srv/forge ]; then echo '::ship::segment 1'; echo '::ship::segment 2'; echo '::ship::end 7 0'; exit 1; fi\"\"\"\nafter = \"install\"\n\
         [default.tasks.frozen]\nrun = \"test ! -e /srv/freeze || sleep 1000\"\nafter = \"install\"\n\
         [default.tasks.after]\nrun = \"test ! -e /srv/fail-after\"\nafter = \"switch\"\n\
         [default.health]\nrun = \"test ! -e /srv/fail-health && test -s index.html\"\ntimeout = \"5s\"\n\
         [soak]\nhosts = [{}]\n",
        fleet.ssh_config().display(),
        fleet.toml_hosts(0..HOSTS)
    );
    let f = Fixture::new(&[
        ("app/index.html", "release 0\n"),
        ("app/extra.txt", "x\n"),
        ("Ship.toml", &ship),
    ]);
    for h in &names {
        fleet.sh(
            h,
            "mkdir -p /srv/app/shared/config && echo S=1 > /srv/app/shared/config/settings.py",
        );
    }
    let mut rng = Lcg(2026);
    let mut stale: Vec<String> = Vec::new();
    let mut live_id: Option<String> = None;
    let mut faults = 0;
    for n in 1..=DEPLOYS {
        let id = format!("202611010{n:05}");
        f.write("app/index.html", &format!("release {n}\n"));
        let fault = (n > 1 && rng.next(3) == 0).then(|| {
            let host = &names[rng.next(HOSTS as u64) as usize];
            let kind = rng.next(9);
            let cmd = match kind {
                0 => "mv /srv/app/shared/config/settings.py /srv/settings.aside",
                1 => "touch /srv/fail-before",
                2 => "touch /srv/fail-after",
                3 => "touch /srv/fail-health",
                4 => "touch /srv/forge",
                5 => "touch /srv/freeze",
                6 => "dd if=/dev/zero of=/srv/fill bs=64k 2>/dev/null; true",
                _ => "true",
            };
            fleet.sh(host, cmd);
            (host.clone(), kind)
        });
        let concurrent = matches!(fault, Some((_, 7)));
        let killed = matches!(fault, Some((_, 8)));
        let out = if killed {
            // SIGKILL at a random moment: nothing is put back, the lock stays. `unlock`, then
            // the next deploy, must leave every host on one complete release.
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cargo-ship"))
                .args(["apply", "soak", "--release-id", &id])
                .current_dir(f.path())
                .env("USER", "killed")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(200 + rng.next(3000)));
            let _ = child.kill();
            let _ = child.wait();
            // Its ssh masters end a minute after their last session: not counted below.
            stale.extend(fleet.ssh_masters());
            let unlocked = f.ship(&["unlock", "soak"]);
            assert_eq!(unlocked.code, 0, "deploy {n}: unlock: {}", unlocked.stderr);
            let next = format!("202611018{n:05}");
            f.write("app/index.html", &format!("release {n} again\n"));
            let again = f.ship(&["apply", "soak", "--release-id", &next]);
            assert_eq!(
                again.code, 0,
                "deploy {n}: the deploy after a kill: {}",
                again.stderr
            );
            live_id = Some(next);
            None
        } else if concurrent {
            // Two deploys at once: exactly one takes every lock, or neither changes anything.
            let other = {
                let f2 = Fixture::copy_of(f.path(), &[]);
                let other_id = format!("202611019{n:05}");
                std::thread::spawn(move || {
                    let out = f2.ship(&["apply", "soak", "--release-id", &other_id]);
                    (out, other_id)
                })
            };
            let out = f.ship(&["apply", "soak", "--release-id", &id]);
            let (other, other_id) = other.join().unwrap();
            assert!(
                out.code == 0 || other.code == 0 || (out.code == 3 && other.code == 3),
                "deploy {n}: concurrent deploys: {} / {}\n{}\n{}",
                out.code,
                other.code,
                out.stderr,
                other.stderr
            );
            assert!(
                !(out.code == 0 && other.code == 0),
                "deploy {n}: two deploys both succeeded at once"
            );
            if other.code == 0 {
                live_id = Some(other_id);
            }
            if out.code == 0 {
                live_id = Some(id.clone());
            }
            None
        } else {
            Some(f.ship(&["apply", "soak", "--release-id", &id]))
        };
        match (&fault, &out) {
            (_, None) => faults += 1,
            (None, Some(out)) => {
                assert_eq!(out.code, 0, "deploy {n}: {}", out.stderr);
                live_id = Some(id.clone());
            }
            (Some((host, kind)), Some(out)) => {
                faults += 1;
                assert_eq!(
                    out.code, 3,
                    "deploy {n}, fault {kind} on {host}: {}",
                    out.stderr
                );
                fleet.sh(
                    host,
                    "[ -e /srv/settings.aside ] && mv /srv/settings.aside /srv/app/shared/config/settings.py; \
                     rm -f /srv/fail-before /srv/fail-after /srv/fail-health /srv/forge /srv/freeze /srv/fill; true",
                );
            }
        }
        // Nothing left running: no ssh master of this fleet outlives its last session by
        // more than the minute it is given (a connection replaced under load may linger that
        // long), no frozen step.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(70);
        loop {
            let masters: Vec<String> = fleet
                .ssh_masters()
                .into_iter()
                .filter(|m| !stale.contains(m))
                .collect();
            if masters.is_empty() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "deploy {n}: ssh masters left running past a minute: {masters:?}"
            );
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        // Every host: a complete live release, recorded live, the same everywhere.
        let mut seen = Vec::new();
        for h in &names {
            let target = fleet.readlink(h, "/srv/app/current");
            let dir = target.rsplit('/').next().unwrap_or("").to_owned();
            let complete = fleet.try_sh(
                h,
                &format!("test -s {target}/index.html && test -s {target}/extra.txt && test -s {target}/REVISION && test -s {target}/config/settings.py"),
            );
            assert!(
                complete.0,
                "deploy {n}: {h}'s current ({target}) is not complete"
            );
            let records: serde_json::Value =
                serde_json::from_str(&fleet.read(h, "/srv/app/.ship/releases.json")).unwrap();
            let live: Vec<&serde_json::Value> = records
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["state"] == "live")
                .collect();
            assert_eq!(
                live.len(),
                1,
                "deploy {n}: {h} has one live record: {records}"
            );
            assert_eq!(
                live[0]["dir"],
                dir.as_str(),
                "deploy {n}: {h}'s record agrees with current"
            );
            assert!(!fleet.locked(h), "deploy {n}: {h} unlocked");
            assert!(
                !fleet.try_sh(h, "test -e /srv/app/.ship/preparing").0,
                "deploy {n}: {h} has no .ship/preparing left"
            );
            assert!(
                !fleet.try_sh(h, "pgrep -f '^sleep 1000' >/dev/null").0,
                "deploy {n}: {h} has no frozen step left running"
            );
            seen.push(dir);
        }
        seen.dedup();
        assert_eq!(seen.len(), 1, "deploy {n}: hosts disagree: {seen:?}");
        assert_eq!(
            Some(&seen[0]),
            live_id.as_ref(),
            "deploy {n}: the last good deploy is live"
        );
    }
    assert!(faults >= 10, "the soak injected {faults} faults");
}
