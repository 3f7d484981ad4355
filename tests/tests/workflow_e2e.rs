//! The release workflow on real SSH hosts: promote (the same artifact, by digest), git tags
//! pushed to a remote, unpushed commits refused, webhook notifications received by a local
//! HTTP server, and the maintenance page.

use ship_tests::{Fixture, Fleet, git, ok};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

/// A project whose staging is h1, h2 and production h3, h4, with `extra` Ship.toml lines.
fn project(fleet: &Fleet, extra: &str) -> Fixture {
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nssh_config = \"{}\"\n{extra}\n\
         [staging]\nhosts = [{}]\n\n[production]\nhosts = [{}]\n",
        fleet.ssh_config().display(),
        fleet.toml_hosts(0..2),
        fleet.toml_hosts(2..4)
    );
    let f = Fixture::new(&[("index.html", "v1\n"), ("Ship.toml", &ship)]);
    f.commit("v1");
    f
}

fn live_digest(fleet: &Fleet, host: &str) -> (String, String) {
    let records: serde_json::Value =
        serde_json::from_str(&fleet.read(host, "/srv/app/.ship/releases.json")).unwrap();
    let live = records
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|r| r["state"] == "live")
        .expect("a live release");
    (
        live["id"].as_str().unwrap().to_owned(),
        live["digest"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn promote_deploys_the_artifact_live_on_staging_not_a_new_build() {
    let fleet = Fleet::start(4);
    let f = project(&fleet, "");
    ok(&f.ship(&["apply", "staging", "--release-id", "20260101000001"]));
    let (_, staging_digest) = live_digest(&fleet, "h1");

    // The checkout moves on: a build now would be v2, but promote ships what staging runs.
    f.write("index.html", "v2\n");
    f.commit("v2");
    // Not cached here either: the artifact comes from a staging host, checked by digest.
    std::fs::remove_dir_all(f.join("target/ship/artifacts")).unwrap();
    let out = f.ship(&["promote", "staging", "production"]);
    ok(&out);
    assert!(
        out.stderr
            .contains("promotes   release 20260101000001 of staging"),
        "{}",
        out.stderr
    );
    for h in ["h3", "h4"] {
        assert_eq!(
            live_digest(&fleet, h),
            ("20260101000001".to_owned(), staging_digest.clone()),
            "{h}"
        );
        assert_eq!(fleet.read(h, "/srv/app/current/index.html"), "v1\n");
    }

    // Hosts of staging that disagree stop a promotion before anything is sent.
    f.commit("v2 again");
    ok(&f.ship(&["apply", "staging", "--release-id", "20260101000002"]));
    fleet.sh("h2", "cd /srv/app && ln -sfn releases/20260101000001 current.tmp && mv -T current.tmp current && sed -i 's/\"state\":\"live\"/\"state\":\"good\"/; s/\\(\"id\":\"20260101000001\"[^}]*\"state\":\\)\"good\"/\\1\"live\"/' .ship/releases.json");
    let out = f.ship(&[
        "promote",
        "staging",
        "production",
        "--release-id",
        "20260101000003",
    ]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("do not have the same release live"),
        "{}",
        out.stderr
    );
    assert_eq!(live_digest(&fleet, "h3").0, "20260101000001");
}

#[test]
fn protected_stages_take_pushed_commits_only_and_tag_each_deploy() {
    let fleet = Fleet::start(4);
    let f = project(&fleet, "");
    // Ship.toml: production is protected and tagged.
    let ship = std::fs::read_to_string(f.join("Ship.toml"))
        .unwrap()
        .replace(
            "[production]\n",
            "[production]\nprotected = true\ntag = \"release-{stage}-{id}\"\n",
        );
    f.write("Ship.toml", &ship);
    f.commit("protect production");
    let remote = tempfile::tempdir().unwrap();
    git(remote.path(), &["init", "-q", "--bare", "-b", "main"]);
    git(
        f.path(),
        &["remote", "add", "origin", remote.path().to_str().unwrap()],
    );
    git(f.path(), &["push", "-q", "-u", "origin", "main"]);

    // A commit that is not pushed: refused, saying which commit and where it should be.
    f.write("index.html", "v2\n");
    f.commit("v2, not pushed");
    let head = git(f.path(), &["rev-parse", "HEAD"]);
    let out = f.ship(&["apply", "production", "--release-id", "20260101000001"]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains(&format!("commit {} is not on origin/main", &head[..12])),
        "{}",
        out.stderr
    );
    for h in ["h3", "h4"] {
        assert!(!fleet.try_sh(h, "test -e /srv/app/current").0, "{h}");
    }
    // Staging is not protected: it takes the same commit.
    ok(&f.ship(&["apply", "staging", "--release-id", "20260101000001"]));

    // Pushed: deployed, and tagged in the remote with an annotated tag on that commit.
    git(f.path(), &["push", "-q", "origin", "main"]);
    let out = f.ship(&["apply", "production", "--release-id", "20260101000002"]);
    ok(&out);
    assert!(
        out.stderr
            .contains("tagged release-production-20260101000002"),
        "{}",
        out.stderr
    );
    assert_eq!(fleet.read("h3", "/srv/app/current/index.html"), "v2\n");
    let tag = "release-production-20260101000002";
    assert_eq!(git(remote.path(), &["cat-file", "-t", tag]), "tag");
    assert_eq!(
        git(remote.path(), &["rev-parse", &format!("{tag}^{{commit}}")]),
        head
    );
}

/// A one-request-at-a-time HTTP server that hands each POST body to the test.
fn webhook_server() -> (u16, mpsc::Receiver<serde_json::Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let json: serde_json::Value =
                serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            // As Slack's incoming webhooks do: a payload without `text` is refused.
            let has_text = json["text"].as_str().is_some_and(|t| !t.trim().is_empty());
            let answer: &[u8] = if has_text {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            } else {
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 7\r\nConnection: close\r\n\r\nno_text"
            };
            let _ = stream.write_all(answer);
            let _ = tx.send(json);
        }
    });
    (port, rx)
}

#[test]
fn deploys_rollbacks_and_promotions_are_posted_to_the_webhook() {
    let fleet = Fleet::start(4);
    let (port, hook) = webhook_server();
    let f = project(
        &fleet,
        &format!("[default.notify]\nwebhook = \"http://127.0.0.1:{port}/deploys\"\n"),
    );
    let wait = || {
        hook.recv_timeout(std::time::Duration::from_secs(10))
            .expect("a notification")
    };
    ok(&f.ship_env(
        &["apply", "staging", "--release-id", "20260101000001"],
        &[("USER", "tester")],
    ));
    let n = wait();
    assert_eq!(n["action"], "deploy");
    assert_eq!(n["stage"], "staging");
    assert_eq!(n["release"], "20260101000001");
    assert_eq!(n["result"], "ok");
    assert_eq!(n["revision"].as_str().unwrap().len(), 40);
    assert!(n["who"].as_str().unwrap().starts_with("tester@"), "{n}");
    assert_eq!(n["hosts"].as_array().unwrap().len(), 2);
    assert_eq!(n["hosts"][0]["host"], "h1");
    assert_eq!(n["hosts"][0]["state"], "deployed");
    assert!(n["duration_ms"].is_u64());
    let text = n["text"].as_str().unwrap();
    assert!(
        text.starts_with("cargo ship: deploy of ")
            && text.contains("release 20260101000001 to staging by tester@")
            && text.contains("succeeded"),
        "{text}"
    );

    ok(&f.ship(&["apply", "staging", "--release-id", "20260101000002"]));
    assert_eq!(wait()["release"], "20260101000002");
    ok(&f.ship(&["rollback", "staging"]));
    let n = wait();
    assert_eq!(
        (
            n["action"].as_str(),
            n["release"].as_str(),
            n["result"].as_str()
        ),
        (Some("rollback"), Some("20260101000001"), Some("ok"))
    );

    ok(&f.ship(&["promote", "staging", "production"]));
    let n = wait();
    assert_eq!(
        (
            n["action"].as_str(),
            n["stage"].as_str(),
            n["release"].as_str()
        ),
        (Some("promote"), Some("production"), Some("20260101000001"))
    );

    // A failed deploy is posted as failed.
    fleet.sh(
        "h2",
        "mkdir -p /srv/app/.ship/lock && echo someone > /srv/app/.ship/lock/info",
    );
    let out = f.ship(&["apply", "staging", "--release-id", "20260101000003"]);
    assert_eq!(out.code, 3);
    assert_eq!(wait()["result"], "failed");
    fleet.sh("h2", "rm -rf /srv/app/.ship/lock");

    // A webhook that does not answer is a warning: the deploy still succeeds.
    let ship = std::fs::read_to_string(f.join("Ship.toml"))
        .unwrap()
        .replace(&format!("127.0.0.1:{port}"), "127.0.0.1:9");
    f.write("Ship.toml", &ship);
    f.commit("a dead webhook");
    let out = f.ship(&["apply", "staging", "--release-id", "20260101000004"]);
    ok(&out);
    assert!(
        out.stderr
            .contains("warning: could not notify http://127.0.0.1:9/deploys"),
        "{}",
        out.stderr
    );
}

#[test]
fn maintenance_on_and_off_with_hooks() {
    let fleet = Fleet::start(4);
    let f = project(
        &fleet,
        "[default.maintenance]\nfile = \"public/maintenance.html\"\n\
         before = \"echo before-$SHIP_MAINTENANCE >> /srv/app/shared/maintenance.log\"\n\
         after = \"echo after-$SHIP_MAINTENANCE >> /srv/app/shared/maintenance.log\"\n",
    );
    // Nothing live yet: a clear error per host.
    let out = f.ship(&["maintenance", "staging", "on"]);
    assert_eq!(out.code, 3);
    assert!(
        out.stdout.contains("nothing is live on h1"),
        "{}",
        out.stdout
    );

    ok(&f.ship(&["apply", "staging", "--release-id", "20260101000001"]));
    let out = f.ship(&["maintenance", "staging", "on"]);
    ok(&out);
    for h in ["h1", "h2"] {
        let page = fleet.read(h, "/srv/app/current/public/maintenance.html");
        assert!(page.contains("Down for maintenance"), "{h}: {page}");
    }
    ok(&f.ship(&["maintenance", "staging", "off"]));
    for h in ["h1", "h2"] {
        assert!(
            !fleet
                .try_sh(h, "test -e /srv/app/current/public/maintenance.html")
                .0
        );
        assert_eq!(
            fleet.read(h, "/srv/app/shared/maintenance.log"),
            "before-on\nafter-on\nbefore-off\nafter-off\n"
        );
    }

    // A page shipped with the release is linked instead.
    f.write("maintenance/page.html", "<h1>back at 5</h1>\n");
    let ship = std::fs::read_to_string(f.join("Ship.toml"))
        .unwrap()
        .replace(
            "file = \"public/maintenance.html\"\n",
            "file = \"public/maintenance.html\"\npage = \"maintenance/page.html\"\n",
        );
    f.write("Ship.toml", &ship);
    f.commit("our own page");
    ok(&f.ship(&["apply", "staging", "--release-id", "20260101000002"]));
    ok(&f.ship(&["maintenance", "staging", "on"]));
    assert_eq!(
        fleet.read("h1", "/srv/app/current/public/maintenance.html"),
        "<h1>back at 5</h1>\n"
    );
    // Maintenance belongs to the site, not the release: a deploy during maintenance keeps
    // the page up; a rollback neither takes it down nor puts it back up by itself.
    let page_up = |h: &str| {
        fleet
            .try_sh(h, "test -e /srv/app/current/public/maintenance.html")
            .0
    };
    f.write("app.txt", "v3\n");
    f.commit("v3");
    ok(&f.ship(&["apply", "staging", "--release-id", "20260101000003"]));
    assert!(
        page_up("h1") && page_up("h2"),
        "a deploy took the page down"
    );
    ok(&f.ship(&["maintenance", "staging", "off"]));
    // Release 2 still has the page it had while it was live: rolling back to it must not
    // put the site back in maintenance.
    ok(&f.ship(&["rollback", "staging"]));
    assert!(
        fleet
            .readlink("h1", "/srv/app/current")
            .ends_with("20260101000002")
    );
    assert!(
        !page_up("h1") && !page_up("h2"),
        "a rollback put the page up"
    );
    ok(&f.ship(&["maintenance", "staging", "on"]));
    ok(&f.ship(&["rollback", "staging"]));
    assert!(
        fleet
            .readlink("h1", "/srv/app/current")
            .ends_with("20260101000001")
    );
    assert!(
        page_up("h1") && page_up("h2"),
        "a rollback took the page down"
    );
    ok(&f.ship(&["maintenance", "staging", "off"]));
    assert!(!page_up("h1") && !page_up("h2"));
    // A stage without the table is told how to add one.
    let bare = Fixture::new(&[(
        "Ship.toml",
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\n[staging]\nhosts = [\"h1\"]\n",
    )]);
    let out = bare.ship(&["maintenance", "staging", "on"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("[staging.maintenance]"),
        "{}",
        out.stderr
    );
}
