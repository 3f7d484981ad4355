//! Fleets on real SSH hosts: rolling batches stopped by a failed health check, health
//! checks over HTTP with retries, host selection, a dynamic inventory, and 100 hosts.

use ship_tests::{Fixture, Fleet, ok};

fn project(fleet: &Fleet, hosts: std::ops::Range<usize>, extra: &str) -> Fixture {
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nsource = {{ dir = \"app\" }}\n\
         ssh_config = \"{}\"\n{extra}\n[staging]\nhosts = [{}]\n",
        fleet.ssh_config().display(),
        fleet.toml_hosts(hosts)
    );
    Fixture::new(&[("app/index.html", "v1\n"), ("Ship.toml", &ship)])
}

fn live(fleet: &Fleet, host: &str) -> String {
    fleet
        .readlink(host, "/srv/app/current")
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn rolling_batches_stop_at_the_batch_whose_health_check_fails() {
    let fleet = Fleet::start(12);
    let f = project(
        &fleet,
        0..12,
        "rolling = 4\n[default.health]\nrun = \"test \\\"$SHIP_HOST\\\" != h6 || test \\\"$(cat index.html)\\\" = v1\"\n",
    );
    ok(&f.ship(&["apply", "staging", "--release-id", "20260101000001"]));
    let plan = f.ship(&["plan", "staging", "--release-id", "20260101000002"]);
    ok(&plan);
    assert!(
        plan.stdout
            .contains("rolling    3 batches, each all or nothing; stop after 1 failed batch:"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("2. h5, h6, h7, h8"), "{}", plan.stdout);

    f.write("app/index.html", "v2\n");
    let out = f.ship(&["apply", "staging", "--release-id", "20260101000002"]);
    assert_eq!(
        out.code, 3,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    for h in ["h1", "h2", "h3", "h4"] {
        assert_eq!(
            live(&fleet, h),
            "20260101000002",
            "{h}: batch 1 stays on the new release"
        );
    }
    for h in ["h5", "h6", "h7", "h8"] {
        assert_eq!(
            live(&fleet, h),
            "20260101000001",
            "{h}: batch 2 is put back"
        );
        assert!(!fleet.locked(h), "{h} unlocked");
    }
    for h in ["h9", "h10", "h11", "h12"] {
        assert_eq!(
            live(&fleet, h),
            "20260101000001",
            "{h}: batch 3 never started"
        );
        assert!(
            !fleet
                .try_sh(h, "test -e /srv/app/releases/20260101000002")
                .0,
            "{h}: nothing was sent"
        );
        assert!(
            !fleet.locked(h),
            "{h}: the lock taken before batch 1 released"
        );
    }
    assert!(
        out.stdout.contains("Rolling deploy stopped"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("batch 1  h1, h2, h3, h4  on release 20260101000002"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("batch 2  h5, h6, h7, h8  failed: put back on the release it had"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("batch 3  h9, h10, h11, h12  not started"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr
            .contains("batch 1 (h1, h2, h3, h4) is on release 20260101000002")
            && out.stderr.contains("batch 3 not started")
            && out.stderr.contains("on h6 at step `verify`"),
        "{}",
        out.stderr
    );
}

/// A rolling deploy takes every host's lock before batch 1: another deploy's lock on a host
/// of a later batch stops it with nothing done anywhere (not after batch 1 went live, the
/// fleet split), and while batch 1 runs no other deploy can take a later batch's host.
#[test]
fn a_rolling_deploy_holds_every_hosts_lock_from_before_its_first_batch() {
    let fleet = Fleet::start(4);
    let f = project(
        &fleet,
        0..4,
        "rolling = 2\n[default.tasks.pause]\nrun = \"test \\\"$SHIP_HOST\\\" != h1 || sleep 4\"\nafter = \"switch\"\n",
    );
    ok(&f.ship(&["apply", "staging", "--release-id", "20260101000001"]));

    let holder = "someone@elsewhere since 2026-01-01T00:00:00Z (demo release x to staging)";
    fleet.sh(
        "h4",
        &format!("mkdir /srv/app/.ship/lock && echo '{holder}' > /srv/app/.ship/lock/info"),
    );
    f.write("app/index.html", "v2\n");
    let out = f.ship(&["apply", "staging", "--release-id", "20260101000002"]);
    assert_eq!(
        out.code, 3,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("h4 is locked by another deploy: {holder}")),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("batch 1  h1, h2  not started"),
        "{}",
        out.stdout
    );
    for h in ["h1", "h2", "h3", "h4"] {
        assert_eq!(live(&fleet, h), "20260101000001", "{h}: nothing went live");
        assert!(
            !fleet
                .try_sh(h, "test -e /srv/app/releases/20260101000002")
                .0,
            "{h}: nothing was sent"
        );
    }
    for h in ["h1", "h2", "h3"] {
        assert!(
            !fleet.locked(h),
            "{h}: the lock taken before batch 1 released"
        );
    }
    assert_eq!(fleet.read("h4", "/srv/app/.ship/lock/info").trim(), holder);

    fleet.sh("h4", "rm -rf /srv/app/.ship/lock");
    std::thread::scope(|s| {
        let deploy = s.spawn(|| f.ship(&["apply", "staging", "--release-id", "20260101000003"]));
        ship_tests::wait_until(
            "h1 switched (batch 1 pauses there)",
            std::time::Duration::from_secs(30),
            || live(&fleet, "h1") == "20260101000003",
        );
        for h in ["h3", "h4"] {
            let info = fleet.read(h, "/srv/app/.ship/lock/info");
            assert!(
                info.contains("(demo release 20260101000003 to staging)"),
                "{h}, of batch 2, is this deploy's while batch 1 runs: {info:?}"
            );
            assert_eq!(
                live(&fleet, h),
                "20260101000001",
                "{h}: batch 2 not started yet"
            );
        }
        ok(&deploy.join().unwrap());
    });
    for h in ["h1", "h2", "h3", "h4"] {
        assert_eq!(live(&fleet, h), "20260101000003");
        assert!(!fleet.locked(h), "{h} unlocked");
    }
}

#[test]
fn an_http_health_check_is_retried_until_the_server_answers() {
    let fleet = Fleet::start(1);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let f = project(
        &fleet,
        0..1,
        &format!(
            "[default.tasks.restart]\nrun = \"(sleep 1; exec timeout 30 python3 -m http.server {port} --bind 127.0.0.1) >/dev/null 2>&1 </dev/null &\"\n\
             after = \"switch\"\n[default.health]\nurl = \"http://127.0.0.1:{port}/index.html\"\ntimeout = \"2s\"\nretries = 10\ninterval = \"0.5s\"\n"
        ),
    );
    let out = f.ship(&["apply", "staging", "--release-id", "20260101000001", "-v"]);
    ok(&out);
    assert!(
        out.stderr.contains("health check failed (try 1 of 11)"),
        "{}",
        out.stderr
    );
    let plan = f.ship(&["plan", "staging"]);
    assert!(
        plan.stdout.contains(&format!(
            "health check, 2s limit, 10 retries 0.5s apart: GET http://127.0.0.1:{port}/index.html"
        )),
        "{}",
        plan.stdout
    );
    fleet.try_sh("h1", "pkill -f 'http.server {port}'");
}

#[test]
fn a_dynamic_inventory_gives_roles_variables_and_the_primary_host() {
    let fleet = Fleet::start(4);
    let hosts_json: Vec<String> = ["h1", "h2", "h3", "h4"]
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let role = if i < 2 { "web" } else { "worker" };
            let primary = if *h == "h2" { ", \"primary\": true" } else { "" };
            format!("{{\"name\": \"{h}\", \"roles\": [\"{role}\"], \"vars\": {{\"port\": {}}}{primary}}}", 8000 + i)
        })
        .collect();
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nsource = {{ dir = \"app\" }}\n\
         ssh_config = \"{}\"\n\
         [default.tasks.port]\nrun = \"echo $SHIP_VAR_PORT > port.txt\"\nafter = \"install\"\n\
         [default.tasks.once-per-role]\nrun = \"echo $SHIP_ROLE > once.txt\"\nafter = \"install\"\nonce = \"role\"\n\
         [staging]\ninventory = {{ command = \"cat inventory.json\" }}\n",
        fleet.ssh_config().display()
    );
    let f = Fixture::new(&[
        ("app/index.html", "v1\n"),
        ("Ship.toml", &ship),
        (
            "inventory.json",
            &format!("{{\"hosts\": [{}]}}", hosts_json.join(", ")),
        ),
    ]);
    ok(&f.ship(&["apply", "staging", "--release-id", "20260101000001"]));
    for (i, h) in ["h1", "h2", "h3", "h4"].iter().enumerate() {
        assert_eq!(
            fleet.read(h, "/srv/app/current/port.txt"),
            format!("{}\n", 8000 + i),
            "{h}'s own variable"
        );
    }
    // Once per role: on the primary of web (h2) and the first worker (h3).
    let once: Vec<bool> = ["h1", "h2", "h3", "h4"]
        .iter()
        .map(|h| fleet.try_sh(h, "test -f /srv/app/current/once.txt").0)
        .collect();
    assert_eq!(once, [false, true, true, false]);

    // Only the web hosts, by role: the workers keep what they had.
    f.write("app/index.html", "v2\n");
    let out = f.ship(&[
        "apply",
        "staging",
        "--roles",
        "web",
        "--release-id",
        "20260101000002",
    ]);
    ok(&out);
    for h in ["h1", "h2"] {
        assert_eq!(live(&fleet, h), "20260101000002", "{h}");
    }
    for h in ["h3", "h4"] {
        assert_eq!(live(&fleet, h), "20260101000001", "{h} was left out");
    }
    // A broken inventory is a clear configuration error.
    f.write(
        "inventory.json",
        "[{\"name\": \"h1\", \"vars\": {\"bad-name\": 1}}]",
    );
    let out = f.ship(&["plan", "staging"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("inventory.command") && out.stderr.contains("bad-name"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_hundred_hosts_get_the_new_release() {
    let fleet = Fleet::start_sized(100, "8m");
    let f = project(&fleet, 0..100, "parallel = 25\n");
    let out = f.ship(&["apply", "staging", "--release-id", "20260101000001"]);
    ok(&out);
    assert!(
        out.stdout
            .contains("to staging: 100 hosts, 1 SSH session per host"),
        "{}",
        out.stdout
    );
    for h in &fleet.hosts {
        assert_eq!(
            fleet.read(&h.name, "/srv/app/current/index.html"),
            "v1\n",
            "{}",
            h.name
        );
    }
}

#[test]
fn kept_connections_are_reused_by_the_next_command() {
    let fleet = Fleet::start(2);
    let f = project(&fleet, 0..2, "keep_connections = \"20s\"\n");
    let connections = |h: &str| fleet.log_lines(h, "Accepted publickey");
    ok(&f.ship(&["apply", "staging", "--release-id", "20260101000001"]));
    let after_first = [connections("h1"), connections("h2")];
    assert_eq!(after_first, [1, 1]);
    f.write("app/index.html", "v2\n");
    let out = f.ship(&["apply", "staging", "--release-id", "20260101000002"]);
    ok(&out);
    assert_eq!(
        [connections("h1"), connections("h2")],
        after_first,
        "no new connection"
    );
    assert!(
        out.stdout.contains("kept connections reused"),
        "{}",
        out.stdout
    );
    assert_eq!(fleet.read("h1", "/srv/app/current/index.html"), "v2\n");
    // A kept connection whose host went away is not used: the next command connects anew.
    fleet.drop_connections("h1");
    ok(&f.ship(&["releases", "staging"]));
    assert_eq!(connections("h1"), 2);
}
