//! What people do between deploys, on real SSH hosts (issue 19): `task` (one task of
//! Ship.toml, where a deploy runs it, in the live release), `--roles/--hosts/--exclude` on
//! every command that reaches hosts (a host left out is never connected to: its sshd log
//! says so), `--format json` on run, tasks and maintenance, and `--ref` to deploy a tag.
//! `ssh` needs a terminal: it is tested with the binary in `cargo-ship/tests/ssh_terminal.rs`.

use ship_tests::{Fixture, Fleet, Output, git, ok};

/// Staging: h1, h2 in role web (h2 the primary), h3 in role worker, from an inventory that
/// gives each host a `region` variable; `extra` is added to `[default]`.
fn project(fleet: &Fleet, extra: &str) -> Fixture {
    let inventory = r#"{"hosts": [
  {"name": "h1", "roles": ["web"], "vars": {"region": "eu-1"}},
  {"name": "h2", "roles": ["web"], "vars": {"region": "eu-2"}, "primary": true},
  {"name": "h3", "roles": ["worker"], "vars": {"region": "us-3"}}
]}"#;
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nssh_config = \"{}\"\n{extra}\n\
         [staging]\ninventory = {{ command = \"cat inventory.json\" }}\n\
         [staging.maintenance]\nfile = \"maintenance.html\"\n",
        fleet.ssh_config().display(),
    );
    let f = Fixture::new(&[
        ("index.html", "v1\n"),
        ("inventory.json", inventory),
        ("Ship.toml", &ship),
    ]);
    f.commit("v1");
    f
}

/// Connections `host`'s sshd accepted so far.
fn logins(fleet: &Fleet, host: &str) -> usize {
    fleet.log_lines(host, "Accepted publickey")
}

/// Runs `cargo ship ARGS` and asserts it connected to `touched` and never to `untouched`.
#[track_caller]
fn only_on(
    fleet: &Fleet,
    f: &Fixture,
    args: &[&str],
    touched: &[&str],
    untouched: &[&str],
) -> Output {
    let before: Vec<usize> = ["h1", "h2", "h3"]
        .iter()
        .map(|h| logins(fleet, h))
        .collect();
    let out = f.ship(args);
    for (i, h) in ["h1", "h2", "h3"].iter().enumerate() {
        let now = logins(fleet, h);
        if untouched.contains(h) {
            assert_eq!(
                now, before[i],
                "{args:?} connected to {h}:\n{}\n{}",
                out.stdout, out.stderr
            );
        }
        if touched.contains(h) {
            assert!(
                now > before[i],
                "{args:?} did not reach {h}:\n{}\n{}",
                out.stdout,
                out.stderr
            );
        }
    }
    out
}

const TASKS: &str = "\
[default.tasks.migrate]
run = 'echo \"migrate $SHIP_STAGE $SHIP_RELEASE $SHIP_HOST $SHIP_ROLE $SHIP_VAR_REGION $(pwd)\" >> /srv/app/task.log'
after = \"switch\"
once = true
roles = [\"web\"]

[default.tasks.after_migrate]
run = 'echo hooked >> /srv/app/task.log'
after = \"migrate\"

[default.tasks.restart]
run = 'echo \"restart $SHIP_HOST $(cat index.html)\" >> /srv/app/task.log'
after = \"switch\"
roles = [\"web\"]
";

#[test]
fn task_runs_just_that_task_where_a_deploy_runs_it_in_the_live_release() {
    let fleet = Fleet::start(3);
    let f = project(&fleet, TASKS);
    ok(&f.ship(&["apply", "staging", "--release-id", "20260101000001"]));
    for h in ["h1", "h2", "h3"] {
        fleet.sh(h, "rm -f /srv/app/task.log");
    }

    // `once`: on the primary of its role only; with the live release's variables and the
    // host's; in current/; what is hooked after it does not run.
    let out = only_on(
        &fleet,
        &f,
        &["task", "staging", "migrate"],
        &["h2"],
        &["h1", "h3"],
    );
    ok(&out);
    assert_eq!(
        fleet.read("h2", "/srv/app/task.log"),
        "migrate staging 20260101000001 h2 web eu-2 /srv/app/current\n"
    );
    assert!(out.stdout.contains("Ran task migrate"), "{}", out.stdout);
    assert!(out.stdout.contains("only this task"), "{}", out.stdout);

    // Its roles' hosts; narrowed by a filter.
    ok(&only_on(
        &fleet,
        &f,
        &["task", "staging", "restart"],
        &["h1", "h2"],
        &["h3"],
    ));
    assert_eq!(fleet.read("h1", "/srv/app/task.log"), "restart h1 v1\n");
    let out = only_on(
        &fleet,
        &f,
        &[
            "task",
            "staging",
            "restart",
            "--exclude",
            "h1",
            "--format",
            "json",
        ],
        &["h2"],
        &["h1", "h3"],
    );
    ok(&out);
    let lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines[0]["host"], "h2");
    assert_eq!(lines[0]["status"], 0);
    assert_eq!(lines.last().unwrap()["event"], "outcome");
    assert_eq!(lines.last().unwrap()["ok"], true);
    assert_eq!(fleet.read("h1", "/srv/app/task.log"), "restart h1 v1\n");

    // An unknown task: nothing done, the tasks named.
    let out = f.ship(&["task", "staging", "migrat"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("no task `migrat`") && out.stderr.contains("migrate, restart"),
        "{}",
        out.stderr
    );
    // A failing task: exit 3, the host named.
    let out = f.ship(&[
        "task",
        "staging",
        "restart",
        "--set",
        "tasks.restart.run=\"exit 7\"",
    ]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("task restart failed on h1, h2"),
        "{}",
        out.stderr
    );
}

#[test]
fn host_filters_keep_every_command_off_the_hosts_left_out() {
    let fleet = Fleet::start(3);
    let f = project(&fleet, TASKS);
    ok(&f.ship(&["apply", "staging", "--release-id", "20260101000001"]));
    f.write("index.html", "v2\n");
    f.commit("v2");
    ok(&f.ship(&["apply", "staging", "--release-id", "20260101000002"]));

    let out = only_on(
        &fleet,
        &f,
        &[
            "run",
            "staging",
            "--exclude",
            "h2",
            "--",
            "cat",
            "index.html",
        ],
        &["h1", "h3"],
        &["h2"],
    );
    ok(&out);
    assert!(!out.stdout.contains("h2"), "{}", out.stdout);
    assert!(
        out.stderr.contains("not on: h2 (--exclude h2)"),
        "{}",
        out.stderr
    );
    let out = only_on(
        &fleet,
        &f,
        &["check", "staging", "--roles", "worker"],
        &["h3"],
        &["h1", "h2"],
    );
    ok(&out);
    let out = only_on(
        &fleet,
        &f,
        &["releases", "staging", "--hosts", "h1"],
        &["h1"],
        &["h2", "h3"],
    );
    ok(&out);
    assert!(out.stdout.starts_with("h1"), "{}", out.stdout);
    ok(&only_on(
        &fleet,
        &f,
        &["unlock", "staging", "--hosts", "h3"],
        &["h3"],
        &["h1", "h2"],
    ));
    ok(&only_on(
        &fleet,
        &f,
        &["maintenance", "staging", "on", "--hosts", "h1"],
        &["h1"],
        &["h2", "h3"],
    ));
    assert!(
        fleet
            .try_sh("h1", "test -f /srv/app/current/maintenance.html")
            .0
    );
    assert!(
        !fleet
            .try_sh("h2", "test -e /srv/app/current/maintenance.html")
            .0
    );
    ok(&only_on(
        &fleet,
        &f,
        &["maintenance", "staging", "off", "--hosts", "h1"],
        &["h1"],
        &["h2", "h3"],
    ));

    // Rollback of some hosts, as Capistrano's HOSTS= does: the others keep their release,
    // and the output says so.
    let out = only_on(
        &fleet,
        &f,
        &["rollback", "staging", "--exclude", "h3"],
        &["h1", "h2"],
        &["h3"],
    );
    ok(&out);
    assert!(
        out.stdout.contains("NOT rolled back") && out.stdout.contains("h3 (--exclude h3)"),
        "{}",
        out.stdout
    );
    for (h, v) in [("h1", "v1\n"), ("h2", "v1\n"), ("h3", "v2\n")] {
        assert_eq!(fleet.read(h, "/srv/app/current/index.html"), v, "{h}");
    }
    // A filter that leaves nothing, or names nothing: refused before any host.
    let out = only_on(
        &fleet,
        &f,
        &["run", "staging", "--hosts", "web9", "--", "true"],
        &[],
        &["h1", "h2", "h3"],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("--hosts web9: matches no host"),
        "{}",
        out.stderr
    );
}

#[test]
fn run_tasks_and_maintenance_print_json() {
    let fleet = Fleet::start(3);
    let f = project(&fleet, TASKS);
    ok(&f.ship(&["apply", "staging", "--release-id", "20260101000001"]));
    let json_lines = |out: &Output| -> Vec<serde_json::Value> {
        out.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{}", out.stdout)))
            .collect()
    };

    let out = f.ship(&[
        "run",
        "staging",
        "--format",
        "json",
        "--",
        "cat index.html; [ $(hostname) = x ] || test -e /nowhere",
    ]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    for (line, h) in lines.iter().zip(["h1", "h2", "h3"]) {
        assert_eq!(line["event"], "host");
        assert_eq!(line["host"], h);
        assert_eq!(line["stdout"], "v1\n");
        assert_eq!(line["status"], 1);
        assert_eq!(line["ok"], false);
    }
    assert_eq!(lines[3]["event"], "outcome");
    assert_eq!(lines[3]["failed"], serde_json::json!(["h1", "h2", "h3"]));

    let out = f.ship(&[
        "maintenance",
        "staging",
        "on",
        "--roles",
        "web",
        "--format",
        "json",
    ]);
    ok(&out);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert_eq!(
        (lines[0]["host"].as_str(), lines[0]["ok"].as_bool()),
        (Some("h1"), Some(true))
    );
    assert_eq!(lines[1]["maintenance"], "on");
    assert_eq!(lines[2]["event"], "outcome");
    assert_eq!(lines[2]["left_out"][0]["host"], "h3");

    let out = f.ship(&["tasks", "staging", "--format", "json"]);
    ok(&out);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect(&out.stdout);
    assert_eq!(doc["stage"], "staging");
    let tasks = doc["tasks"].as_array().unwrap();
    let names: Vec<&str> = tasks.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["migrate", "after_migrate", "restart"]);
    assert_eq!(tasks[0]["placement"], "once");
    assert_eq!(tasks[0]["hosts"], serde_json::json!(["h2"]));
    assert_eq!(tasks[1]["when"], "after migrate");
    assert_eq!(tasks[2]["hosts"], serde_json::json!(["h1", "h2"]));
}

#[test]
fn ref_deploys_a_tags_commit_and_is_refused_without_a_git_source() {
    let fleet = Fleet::start(3);
    let f = project(&fleet, "");
    git(f.path(), &["tag", "-a", "v1.4.2", "-m", "v1.4.2"]);
    let tagged = git(f.path(), &["rev-parse", "v1.4.2^{commit}"]);
    f.write("index.html", "v2\n");
    f.commit("v2");

    let out = f.ship(&["plan", "staging", "--ref", "v1.4.2", "--format", "json"]);
    ok(&out);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        plan["artifact"]["revision"],
        tagged.as_str(),
        "{}",
        out.stdout
    );
    ok(&f.ship(&["apply"]));
    for h in ["h1", "h2", "h3"] {
        assert_eq!(fleet.read(h, "/srv/app/current/index.html"), "v1\n", "{h}");
    }
    // As `--set source.git=`: the same plan.
    let by_set = f.ship(&[
        "plan",
        "staging",
        "--set",
        "source.git=v1.4.2",
        "--release-id",
        "20260101000009",
    ]);
    let by_ref = f.ship(&[
        "plan",
        "staging",
        "--ref",
        "v1.4.2",
        "--release-id",
        "20260101000009",
    ]);
    ok(&by_ref);
    assert_eq!(
        by_set
            .stdout
            .replace("source.git=v1.4.2", "source.git=\"v1.4.2\""),
        by_ref.stdout
    );
    // Both at once, or a source that is not git: refused, naming the flag and the source.
    let out = f.ship(&[
        "plan",
        "staging",
        "--ref",
        "v1.4.2",
        "--set",
        "source.git=main",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("--ref v1.4.2 and --set source"),
        "{}",
        out.stderr
    );
    let out = f.ship(&[
        "plan",
        "staging",
        "--ref",
        "v1.4.2",
        "--set",
        "source.dir=\".\"",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let ship = std::fs::read_to_string(f.join("Ship.toml")).unwrap();
    f.write(
        "Ship.toml",
        &ship.replace("[default]\n", "[default]\nsource = { dir = \".\" }\n"),
    );
    for cmd in ["plan", "apply"] {
        let out = f.ship(&[cmd, "staging", "--ref", "v1.4.2"]);
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(
            out.stderr
                .contains("--ref v1.4.2: stage `staging` deploys source = { dir = \".\" }"),
            "{}",
            out.stderr
        );
    }
}
