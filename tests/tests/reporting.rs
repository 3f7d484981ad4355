//! What a person and a CI job see of an apply to the test fleet: the terminal summary and
//! the JSON event stream, as insta snapshots (durations and other run-specific values
//! redacted), and `--format json` of `releases`, `check` and `rollback`.

use ship_tests::{Fixture, Fleet, ok};

fn project(fleet: &Fleet) -> Fixture {
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nsource = {{ dir = \"app\" }}\n\
         ssh_config = \"{}\"\nkeep_releases = 2\n\n[default.tasks.restart]\nrun = \"echo restarted $SHIP_HOST\"\n\
         after = \"switch\"\n\n[staging]\nhosts = [{}]\n",
        fleet.ssh_config().display(),
        fleet.toml_hosts(0..2)
    );
    Fixture::new(&[("app/index.html", "v1\n"), ("Ship.toml", &ship)])
}

/// Events grouped by host (each host's in their order; hosts interleave at random).
fn by_host(stdout: &str) -> String {
    let mut events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    // The bytes written to each host's session depend on the fixture's paths: each must be
    // counted (a number above zero), its value is not part of the snapshot.
    for e in &mut events {
        if let Some(hosts) = e.get_mut("hosts").and_then(|h| h.as_array_mut()) {
            for h in hosts {
                if let Some(sent) = h.get_mut("sent_bytes") {
                    assert!(sent.as_u64().is_some_and(|n| n > 0), "{sent}");
                    *sent = serde_json::json!("[counted]");
                }
            }
        }
    }
    events.sort_by_key(|e| {
        (
            e["event"] == "outcome",
            e["host"].as_str().unwrap_or("").to_owned(),
        )
    });
    events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn apply_summary_and_json_events() {
    let fleet = Fleet::start(2);
    let f = project(&fleet);
    let out = f.ship_env(
        &["apply", "staging", "--release-id", "20260101000001"],
        &[("USER", "tester")],
    );
    ok(&out);
    insta::with_settings!({filters => vec![(r"\d+\.\ds", "[time]")]}, {
        insta::assert_snapshot!("apply_summary", out.stdout);
    });

    f.write("app/index.html", "v2\n");
    let out = f.ship_env(
        &[
            "apply",
            "staging",
            "--release-id",
            "20260101000002",
            "--format",
            "json",
        ],
        &[("USER", "tester")],
    );
    ok(&out);
    insta::assert_snapshot!("apply_events", by_host(&out.stdout));

    let out = f.ship(&["releases", "staging", "--format", "json"]);
    ok(&out);
    insta::with_settings!({filters => vec![(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "[time]"), (r"tester@[^\x22]+", "tester@[machine]")]}, {
        insta::assert_snapshot!("releases_json", out.stdout);
    });
    let out = f.ship(&["check", "staging", "--format", "json"]);
    ok(&out);
    insta::with_settings!({filters => vec![(r"\d+ MiB free", "[n] MiB free")]}, {
        insta::assert_snapshot!("check_json", out.stdout);
    });
    let out = f.ship(&["rollback", "staging", "--format", "json"]);
    ok(&out);
    insta::assert_snapshot!("rollback_json", out.stdout);
}

#[test]
fn a_failed_apply_says_what_each_host_is_on() {
    let fleet = Fleet::start(2);
    let f = project(&fleet);
    ok(&f.ship(&["apply", "staging", "--release-id", "20260101000001"]));
    f.write("app/index.html", "v2\n");
    let ship = std::fs::read_to_string(f.join("Ship.toml"))
        .unwrap()
        .replace(
            "echo restarted $SHIP_HOST",
            "if [ $SHIP_HOST = h2 ]; then echo cannot restart >&2; exit 9; fi",
        );
    f.write("Ship.toml", &ship);
    let out = f.ship(&["apply", "staging", "--release-id", "20260101000002"]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    insta::with_settings!({filters => vec![(r"\d+\.\ds", "[time]")]}, {
        insta::assert_snapshot!("apply_failed_summary", out.stdout);
    });
}

#[test]
fn plan_refresh_shows_what_changes_on_each_host() {
    let fleet = Fleet::start(2);
    let f = project(&fleet);
    for (n, text) in [("1", "v1\n"), ("2", "v2\n"), ("3", "v3\n")] {
        f.write("app/index.html", text);
        ok(&f.ship(&[
            "apply",
            "staging",
            "--release-id",
            &format!("2026010100000{n}"),
        ]));
    }
    f.write("app/index.html", "v4\n");
    let out = f.ship(&[
        "plan",
        "staging",
        "--release-id",
        "20260101000004",
        "--refresh",
    ]);
    ok(&out);
    let section = out
        .stdout
        .split("What changes")
        .nth(1)
        .expect("a refresh section");
    insta::assert_snapshot!("plan_refresh", format!("What changes{section}"));
    // The artifact of a release the hosts hold is not sent again.
    f.write("app/index.html", "v3\n");
    let out = f.ship(&[
        "plan",
        "staging",
        "--release-id",
        "20260101000005",
        "--refresh",
    ]);
    ok(&out);
    assert_eq!(
        out.stdout.matches("the artifact is there already").count(),
        2,
        "{}",
        out.stdout
    );
    let out = f.ship(&["plan", "staging", "--refresh", "--format", "json"]);
    assert_eq!(out.code, 2);
}

#[test]
fn a_rollback_runs_the_restart_tasks_and_names_one_that_fails() {
    let fleet = Fleet::start(2);
    let f = project(&fleet);
    ok(&f.ship(&["apply", "staging", "--release-id", "20260101000001"]));
    f.write("app/index.html", "v2\n");
    ok(&f.ship(&["apply", "staging", "--release-id", "20260101000002"]));
    let ship = std::fs::read_to_string(f.join("Ship.toml"))
        .unwrap()
        .replace(
            "echo restarted $SHIP_HOST",
            "echo $SHIP_RELEASE > /srv/app/restarted; test $SHIP_HOST != h2",
        );
    f.write("Ship.toml", &ship);
    let out = f.ship(&["rollback", "staging"]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("restart failed on h2 after the rollback"),
        "{}",
        out.stdout
    );
    for h in ["h1", "h2"] {
        assert_eq!(
            fleet.read(h, "/srv/app/restarted"),
            "20260101000001\n",
            "{h}"
        );
        assert_eq!(fleet.read(h, "/srv/app/current/index.html"), "v1\n", "{h}");
    }
}
