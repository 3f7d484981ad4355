//! Living beside Capistrano: real Capistrano 3 (Debian's `capistrano` package, over net-ssh)
//! and cargo ship deploying, rolling back and reading the same host, in both directions.
//! `releases` shows Capistrano's releases with their time, deployer and revision (from
//! `revisions.log` and `REVISION`), exactly one release is live — the one `current` points
//! at —, and a rollback goes to the release that was live before, whoever made it.

use ship_tests::{Fixture, Fleet, git, ok};
use std::path::Path;
use std::process::Command;

/// A Capistrano project deploying a git repository (a bare one on this machine, which the
/// host clones over `file://`: the hosts share this machine's filesystem but for `/srv`)
/// to `/srv/app` on the fleet's `h1`.
struct Cap {
    project: tempfile::TempDir,
    _repo: tempfile::TempDir,
    /// The commit Capistrano deploys.
    sha: String,
}

impl Cap {
    fn new(fleet: &Fleet) -> Cap {
        assert!(
            Command::new("cap").arg("--version").output().is_ok(),
            "Capistrano is missing: apt-get install -y capistrano"
        );
        let repo = tempfile::tempdir().unwrap();
        let work = repo.path().join("work");
        std::fs::create_dir(&work).unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        std::fs::write(work.join("index.html"), "capistrano\n").unwrap();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "v1"]);
        let sha = git(&work, &["rev-parse", "HEAD"]);
        git(repo.path(), &["clone", "-q", "--bare", "work", "app.git"]);
        let project = tempfile::tempdir().unwrap();
        let p = project.path();
        std::fs::create_dir_all(p.join("config/deploy")).unwrap();
        std::fs::write(
            p.join("Capfile"),
            "require 'capistrano/setup'\nrequire 'capistrano/deploy'\n\
             require 'capistrano/scm/git'\ninstall_plugin Capistrano::SCM::Git\n",
        )
        .unwrap();
        std::fs::write(
            p.join("config/deploy.rb"),
            format!(
                "set :application, 'app'\nset :repo_url, 'file://{}/app.git'\nset :branch, 'main'\n\
                 set :deploy_to, '/srv/app'\nset :keep_releases, 10\nset :format, :pretty\n\
                 set :log_level, :info\nset :pty, false\n",
                repo.path().display()
            ),
        )
        .unwrap();
        let d = fleet.dir().display();
        std::fs::write(
            p.join("config/deploy/production.rb"),
            format!(
                "server '{}', user: 'root', port: 2222, roles: %w[web],\n  ssh_options: {{ \
                 config: false, keys: ['{d}/id_ed25519'], keys_only: true, auth_methods: ['publickey'], \
                 user_known_hosts_file: '{d}/known_hosts', global_known_hosts_file: '/dev/null', \
                 verify_host_key: :always, non_interactive: true }}\n",
                fleet.hosts[0].ip
            ),
        )
        .unwrap();
        Cap {
            project,
            _repo: repo,
            sha,
        }
    }

    /// Runs `cap production <task>` as user `capuser`, which Capistrano writes in
    /// `revisions.log`.
    fn run(&self, task: &str) {
        let out = Command::new("cap")
            .args(["production", task])
            .current_dir(self.project.path())
            .env("USER", "capuser")
            .output()
            .expect("cap runs");
        assert!(
            out.status.success(),
            "cap production {task} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The cargo ship project: the `timestamp` layout (Capistrano's) on h1, keeping 10 releases.
fn ship_project(fleet: &Fleet) -> Fixture {
    let ship = format!(
        "[default]\napp = \"app\"\ndeploy_to = \"/srv/app\"\nssh_config = \"{}\"\n\
         keep_releases = 10\n\n[production]\nhosts = [\"h1\"]\n",
        fleet.ssh_config().display()
    );
    let f = Fixture::new(&[("index.html", "cargo ship\n"), ("Ship.toml", &ship)]);
    f.commit("ship v1");
    f
}

/// The directory `current` points at on h1.
fn live(fleet: &Fleet) -> String {
    let link = fleet.readlink("h1", "/srv/app/current");
    link.strip_prefix("/srv/app/releases/")
        .unwrap_or_else(|| panic!("current is not an absolute link into releases/: {link:?}"))
        .to_owned()
}

/// A release id of the timestamp layout for now, a second after the last one of the test
/// (Capistrano's and cargo ship's releases are named by the second).
fn now_id() -> String {
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = Command::new("date")
        .args(["-u", "+%Y%m%d%H%M%S"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn apply(f: &Fixture) -> String {
    let id = now_id();
    ok(&f.ship_env(
        &["apply", "production", "--release-id", &id],
        &[("USER", "shipper")],
    ));
    id
}

fn rollback(f: &Fixture) {
    ok(&f.ship_env(&["rollback", "production"], &[("USER", "shipper")]));
}

/// `releases --format json` for h1: its rows, and what it said of records and directory
/// disagreeing.
fn releases(f: &Fixture) -> (Vec<serde_json::Value>, Vec<String>) {
    let out = f.ship(&["releases", "production", "--format", "json"]);
    ok(&out);
    let host: serde_json::Value = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["event"] == "host")
        .expect("a host line");
    let rows = host["releases"].as_array().unwrap().clone();
    let drift = host["drift"]
        .as_array()
        .map(|d| d.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    (rows, drift)
}

fn row<'a>(rows: &'a [serde_json::Value], id: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no release {id} in {rows:#?}"))
}

/// Exactly one release is shown live, in state `live`, and it is `current`'s.
#[track_caller]
fn only_live(rows: &[serde_json::Value], id: &str) {
    let live: Vec<_> = rows
        .iter()
        .filter(|r| r["live"] == true || r["state"] == "live")
        .collect();
    assert_eq!(live.len(), 1, "one live release, {id}: {rows:#?}");
    assert_eq!(
        (&live[0]["id"], &live[0]["state"], &live[0]["live"]),
        (
            &serde_json::json!(id),
            &serde_json::json!("live"),
            &serde_json::json!(true)
        ),
        "{rows:#?}"
    );
}

/// A release Capistrano made is shown with its time (its name), deployer and revision.
#[track_caller]
fn by_capistrano(rows: &[serde_json::Value], id: &str, cap: &Cap) {
    let r = row(rows, id);
    let time = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &id[..4],
        &id[4..6],
        &id[6..8],
        &id[8..10],
        &id[10..12],
        &id[12..]
    );
    assert_eq!(
        (&r["time"], &r["user"], &r["revision"]),
        (
            &serde_json::json!(time),
            &serde_json::json!("capuser"),
            &serde_json::json!(cap.sha)
        ),
        "{rows:#?}"
    );
}

fn records(fleet: &Fleet) -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(&fleet.read("h1", "/srv/app/.ship/releases.json"))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn capistrano_deploys_then_cargo_ship_applies_and_rolls_back() {
    let fleet = Fleet::start(1);
    let cap = Cap::new(&fleet);
    let f = ship_project(&fleet);
    assert!(Path::new(&f.join("Ship.toml")).exists());

    cap.run("deploy");
    let c1 = live(&fleet);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    cap.run("deploy");
    let c2 = live(&fleet);
    assert_ne!(c1, c2);
    assert_eq!(
        fleet
            .read("h1", &format!("/srv/app/releases/{c1}/REVISION"))
            .trim(),
        cap.sha
    );

    // Capistrano's releases, read from revisions.log and REVISION.
    let (rows, drift) = releases(&f);
    only_live(&rows, &c2);
    by_capistrano(&rows, &c1, &cap);
    by_capistrano(&rows, &c2, &cap);
    assert_eq!(row(&rows, &c1)["state"], "good", "{rows:#?}");
    assert!(drift.is_empty(), "{drift:?}");

    // cargo ship deploys over them: Capistrano's stay, described; one live.
    let s1 = apply(&f);
    assert_eq!(live(&fleet), s1);
    let (rows, drift) = releases(&f);
    only_live(&rows, &s1);
    by_capistrano(&rows, &c2, &cap);
    assert_eq!(row(&rows, &c2)["state"], "good", "{rows:#?}");
    assert!(drift.is_empty(), "{drift:?}");

    // cargo ship rolls back to Capistrano's last release, and records it as Capistrano
    // logged it.
    rollback(&f);
    assert_eq!(live(&fleet), c2);
    let (rows, _) = releases(&f);
    only_live(&rows, &c2);
    by_capistrano(&rows, &c2, &cap);
    assert_eq!(row(&rows, &s1)["state"], "rolled-back", "{rows:#?}");
    let recorded = records(&fleet);
    let c2_record = recorded
        .iter()
        .find(|r| r["id"] == c2)
        .expect("c2 recorded");
    assert_eq!(
        (
            &c2_record["user"],
            &c2_record["revision"],
            &c2_record["state"]
        ),
        (
            &serde_json::json!("capuser"),
            &serde_json::json!(cap.sha),
            &serde_json::json!("live")
        ),
        "{recorded:#?}"
    );

    // Capistrano deploys again: the records said c2 was live; current says c3, and wins.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    cap.run("deploy");
    let c3 = live(&fleet);
    let (rows, drift) = releases(&f);
    only_live(&rows, &c3);
    by_capistrano(&rows, &c3, &cap);
    assert_eq!(row(&rows, &c2)["state"], "good", "{rows:#?}");
    assert!(
        drift.iter().any(|d| d.contains(&c2) && d.contains(&c3)),
        "the disagreement is said: {drift:?}"
    );

    // cargo ship deploys, then rolls back: to c3, the release live before, not to c2, the
    // last one cargo ship has a record of.
    let s2 = apply(&f);
    let (rows, _) = releases(&f);
    only_live(&rows, &s2);
    rollback(&f);
    assert_eq!(live(&fleet), c3);
    let (rows, drift) = releases(&f);
    only_live(&rows, &c3);
    assert!(drift.is_empty(), "{drift:?}");
}

#[test]
fn cargo_ship_deploys_then_capistrano_rolls_back_and_deploys() {
    let fleet = Fleet::start(1);
    let cap = Cap::new(&fleet);
    let f = ship_project(&fleet);

    let s1 = apply(&f);
    let s2 = apply(&f);
    assert_eq!(live(&fleet), s2);

    // Capistrano rolls back (to the release before the newest, which it archives and removes).
    cap.run("deploy:rollback");
    assert_eq!(live(&fleet), s1);
    let (rows, drift) = releases(&f);
    only_live(&rows, &s1);
    assert!(rows.iter().all(|r| r["id"] != s2), "{rows:#?}");
    assert!(
        drift.iter().any(|d| d.contains(&s2) && d.contains("gone")),
        "the record of the removed release is said to be stale: {drift:?}"
    );
    let out = f.ship(&["releases", "production"]);
    ok(&out);
    assert!(
        out.stdout.contains("changed outside cargo ship"),
        "{}",
        out.stdout
    );

    // Capistrano deploys: its release is live, described from revisions.log.
    cap.run("deploy");
    let c1 = live(&fleet);
    let (rows, _) = releases(&f);
    only_live(&rows, &c1);
    by_capistrano(&rows, &c1, &cap);
    assert_eq!(row(&rows, &s1)["state"], "good", "{rows:#?}");

    // cargo ship rolls back to its own s1 (live before c1), then deploys again.
    rollback(&f);
    assert_eq!(live(&fleet), s1);
    let (rows, _) = releases(&f);
    only_live(&rows, &s1);
    assert_eq!(row(&rows, &c1)["state"], "rolled-back", "{rows:#?}");
    let s3 = apply(&f);
    let (rows, drift) = releases(&f);
    only_live(&rows, &s3);
    by_capistrano(&rows, &c1, &cap);
    assert!(drift.is_empty(), "{drift:?}");
    // The records follow: no record of a gone directory, one live release.
    let recorded = records(&fleet);
    let live_records: Vec<_> = recorded.iter().filter(|r| r["state"] == "live").collect();
    assert_eq!(live_records.len(), 1, "{recorded:#?}");
    assert_eq!(live_records[0]["id"], s3);
}
