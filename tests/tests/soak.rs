//! A soak: 20 real hosts, 30 deploys in a row, a fault injected into a third of them (a
//! missing shared file, a task failing before or after the switch, a failing health check,
//! each on a host drawn at random). After every deploy, every host's `current` is a complete
//! release, `.ship/releases.json` marks it live, and all hosts agree on it.

use ship_tests::{Fixture, Fleet};

const HOSTS: usize = 20;
const DEPLOYS: u32 = 30;

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
fn twenty_hosts_thirty_deploys_with_faults_always_agree_on_a_complete_release() {
    let fleet = Fleet::start(HOSTS);
    let names: Vec<String> = fleet.hosts.iter().map(|h| h.name.clone()).collect();
    let ship = format!(
        "[default]\napp = \"soak\"\ndeploy_to = \"/srv/app\"\nsource = {{ dir = \"app\" }}\n\
         ssh_config = \"{}\"\nlinked_files = [\"config/settings.py\"]\nkeep_releases = 3\nparallel = {HOSTS}\n\
         [default.tasks.before]\nrun = \"test ! -e /srv/fail-before\"\nafter = \"install\"\n\
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
    let mut live_id: Option<String> = None;
    let mut faults = 0;
    for n in 1..=DEPLOYS {
        let id = format!("202611010{n:05}");
        f.write("app/index.html", &format!("release {n}\n"));
        let fault = (n > 1 && rng.next(3) == 0).then(|| {
            let host = &names[rng.next(HOSTS as u64) as usize];
            let kind = rng.next(4);
            let cmd = match kind {
                0 => "mv /srv/app/shared/config/settings.py /srv/settings.aside",
                1 => "touch /srv/fail-before",
                2 => "touch /srv/fail-after",
                _ => "touch /srv/fail-health",
            };
            fleet.sh(host, cmd);
            (host.clone(), kind)
        });
        let out = f.ship(&["apply", "soak", "--release-id", &id]);
        match &fault {
            None => {
                assert_eq!(out.code, 0, "deploy {n}: {}", out.stderr);
                live_id = Some(id.clone());
            }
            Some((host, kind)) => {
                faults += 1;
                assert_eq!(
                    out.code, 3,
                    "deploy {n}, fault {kind} on {host}: {}",
                    out.stderr
                );
                fleet.sh(
                    host,
                    "[ -e /srv/settings.aside ] && mv /srv/settings.aside /srv/app/shared/config/settings.py; \
                     rm -f /srv/fail-before /srv/fail-after /srv/fail-health; true",
                );
            }
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
            assert!(
                !fleet.try_sh(h, "test -e /srv/app/.ship/lock").0,
                "deploy {n}: {h} unlocked"
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
    assert!(faults >= 5, "the soak injected {faults} faults");
}
