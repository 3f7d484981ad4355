//! Snapshots of `cargo ship plan`, in text and JSON: each layout, a stage with roles, and a
//! task hooked before the switch. A snapshot changes only in a commit that means it to.

use ship_tests::Fixture;

const RELEASE: &str = "20261122235800";

fn app_files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("app/index.html", "<h1>webxample</h1>\n"),
        ("app/bin/server", "#!/bin/sh\necho serving\n"),
    ]
}

fn layout_project(layout: &str) -> Fixture {
    let ship = format!(
        r#"[default]
app = "webxample"
deploy_to = "/srv/webxample"
layout = "{layout}"
version = "1.4.0"
source = {{ dir = "app" }}
linked_files = ["config/settings.py"]
linked_dirs = ["log"]
keep_releases = 3

[staging]
hosts = ["stage1", "stage2"]
"#
    );
    let mut files = app_files();
    files.push(("Ship.toml", Box::leak(ship.into_boxed_str())));
    Fixture::new(&files)
}

fn plan(f: &Fixture, stage: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec!["plan", stage, "--release-id", RELEASE];
    args.extend_from_slice(extra);
    let text = f.ship(&args);
    assert_eq!(text.code, 0, "{}", text.stderr);
    args.extend_from_slice(&["--format", "json"]);
    let json = f.ship(&args);
    assert_eq!(json.code, 0, "{}", json.stderr);
    (text.stdout, json.stdout)
}

#[test]
fn each_layout_text_and_json() {
    for layout in ["timestamp", "version", "ab", "single"] {
        let f = layout_project(layout);
        let release = if layout == "version" {
            "1.4.0"
        } else {
            RELEASE
        };
        let mut args = vec!["plan", "staging"];
        if layout != "version" {
            args.extend_from_slice(&["--release-id", release]);
        }
        let text = f.ship(&args);
        assert_eq!(text.code, 0, "{layout}: {}", text.stderr);
        insta::assert_snapshot!(format!("layout_{layout}_text"), text.stdout);
        args.extend_from_slice(&["--format", "json"]);
        let json = f.ship(&args);
        assert_eq!(json.code, 0, "{layout}: {}", json.stderr);
        insta::assert_snapshot!(format!("layout_{layout}_json"), json.stdout);
    }
}

const ROLES: &str = r#"
[default]
app = "webxample"
deploy_to = "/var/webapps/webxample"
source = { dir = "app" }
linked_files = ["config/settings.py"]
linked_dirs = ["log"]

[default.tasks.migrate]
run = "venv/bin/python manage.py migrate --noinput"
after = "install"
roles = ["web"]
once = true
description = "migrate the database"

[default.tasks.assets]
run = "echo uploading assets to the CDN"
after = "prepare"
local = true

[default.tasks.warm]
run = "curl -fsS http://127.0.0.1:8000/warm"
before = "switch"
roles = ["web"]

[default.tasks.restart]
run = "circusctl restart webxample-$SHIP_ROLE"
after = "switch"

[default.tasks.crontab]
run = "crontab config/crontab"
after = "restart"
roles = ["cron"]

[default.health]
run = "curl -fsS http://127.0.0.1:8000/health"
timeout = "20s"

[production.roles.web]
hosts = ["app-web01", "app-web02"]
linked_files = ["configs/supervisor_web.conf"]
[production.roles.worker]
hosts = ["app-job01"]
linked_files = ["configs/supervisor_worker.conf"]
[production.roles.cron]
hosts = ["app-cron01"]
"#;

#[test]
fn stage_with_roles_once_local_and_before_switch() {
    let mut files = app_files();
    files.push(("Ship.toml", ROLES));
    let f = Fixture::new(&files);
    let (text, json) = plan(&f, "production", &[]);
    insta::assert_snapshot!("roles_text", text);
    insta::assert_snapshot!("roles_json", json);
    let verbose = f.ship(&["plan", "production", "--release-id", RELEASE, "--verbose"]);
    assert_eq!(verbose.code, 0, "{}", verbose.stderr);
    insta::assert_snapshot!("roles_verbose", verbose.stdout);
}

#[test]
fn the_plan_marks_once_local_and_sync_points_in_its_json() {
    let mut files = app_files();
    files.push(("Ship.toml", ROLES));
    let f = Fixture::new(&files);
    let (_, json) = plan(&f, "production", &[]);
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    let steps = plan["steps"].as_array().unwrap();
    let step = |name: &str| steps.iter().find(|s| s["name"] == name).unwrap().clone();
    assert_eq!(step("migrate")["placement"], "once");
    assert_eq!(step("migrate")["hosts"], serde_json::json!(["app-web01"]));
    assert_eq!(step("assets")["placement"], "local");
    assert_eq!(step("switch")["sync_point"], true);
    let warm = step("warm")["id"].as_u64().unwrap();
    let switch = step("switch")["id"].as_u64().unwrap();
    assert!(warm < switch, "warm runs before switch");
    assert!(
        step("switch")["after"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(warm))
    );
    assert_eq!(step("crontab")["hosts"], serde_json::json!(["app-cron01"]));
    // Three sessions a host; the web hosts have their role's linked file, the worker not.
    for host in plan["hosts"].as_array().unwrap() {
        let scripts = host["scripts"].as_array().unwrap();
        let all: String = scripts
            .iter()
            .map(|s| s["script"].as_str().unwrap())
            .collect();
        let name = host["name"].as_str().unwrap();
        assert_eq!(
            all.contains("configs/supervisor_web.conf"),
            name.starts_with("app-web"),
            "{name}"
        );
    }
}

#[test]
fn planning_twice_gives_identical_bytes() {
    let mut files = app_files();
    files.push(("Ship.toml", ROLES));
    let f = Fixture::new(&files);
    let first = plan(&f, "production", &["--verbose"]);
    let saved_first = std::fs::read(f.join("target/ship/production.plan.json")).unwrap();
    let second = plan(&f, "production", &["--verbose"]);
    let saved_second = std::fs::read(f.join("target/ship/production.plan.json")).unwrap();
    assert_eq!(first, second);
    assert_eq!(saved_first, saved_second);
    assert_eq!(
        saved_first,
        first.1.as_bytes(),
        "the saved plan is the JSON printed"
    );
}

#[test]
fn every_script_is_valid_posix_shell() {
    let mut files = app_files();
    files.push(("Ship.toml", ROLES));
    let f = Fixture::new(&files);
    let (_, json) = plan(&f, "production", &[]);
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut checked = 0;
    for host in plan["hosts"].as_array().unwrap() {
        for s in host["scripts"].as_array().unwrap() {
            let out = std::process::Command::new("sh")
                .arg("-n")
                .arg("-c")
                .arg(s["script"].as_str().unwrap())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    // 4 hosts × 4 scripts: lock; upload..prepare; link..install (after the local `assets`
    // step, which waits for every host); switch..unlock.
    assert_eq!(checked, 4 * 4);
}

/// A Django-style stage: two web hosts that migrate once and collect static files, a
/// worker, per-role linked config, the Python adapter building wheels here.
#[test]
fn django_style_stage_with_the_python_adapter() {
    let ship = r#"[default]
app = "hello"
deploy_to = "/srv/hello"
linked_files = ["config/settings.py"]

[default.python]
requirements = "requirements.txt"
[default.python.django]
migrate = true
collectstatic = true
roles = ["web"]

[default.tasks.restart]
run = "sh restart.sh"
after = "switch"
roles = ["web"]

[default.tasks.restart-worker]
run = "systemctl restart hello-worker"
after = "switch"
roles = ["worker"]

[production.roles.web]
hosts = ["app-web01", "app-web02"]
linked_files = ["configs/gunicorn.conf.py"]
[production.roles.worker]
hosts = ["app-job01"]
"#;
    let f = Fixture::from_fixture("pyapp", &[("Ship.toml", ship)]);
    f.commit("hello");
    let (text, json) = plan(&f, "production", &[]);
    insta::assert_snapshot!("django_text", text);
    insta::assert_snapshot!("django_json", json);
}

/// The Node adapter: a static front end built here and shipped as `dist/`, and a service
/// whose production dependencies the hosts install once per lock file.
#[test]
fn node_front_end_and_node_service() {
    let front = Fixture::from_fixture(
        "nodestatic",
        &[(
            "Ship.toml",
            "[default]\napp = \"front\"\ndeploy_to = \"/srv/front\"\n\n[default.node]\n\
             ship = [\"dist/\"]\n\n[production]\nhosts = [\"web1\", \"web2\"]\n",
        )],
    );
    front.commit("front");
    let (text, _) = plan(&front, "production", &[]);
    insta::assert_snapshot!("node_static_text", text);

    let service = Fixture::from_fixture(
        "nodeservice",
        &[(
            "Ship.toml",
            "[default]\napp = \"service\"\ndeploy_to = \"/srv/service\"\n\n[default.node]\n\
             build = []\nship = [\"server.js\", \"package.json\", \"package-lock.json\", \"vendor\"]\n\
             install = \"production\"\n\n[default.tasks.restart]\nrun = \"systemctl restart service\"\n\
             after = \"switch\"\n\n[production]\nhosts = [\"api1\", \"api2\"]\n",
        )],
    );
    service.commit("service");
    let (text, json) = plan(&service, "production", &[]);
    insta::assert_snapshot!("node_service_text", text);
    insta::assert_snapshot!("node_service_json", json);
}

/// `cargo ship tasks`: the user's and the adapters' tasks, in the order a deploy runs them.
#[test]
fn tasks_listing() {
    let ship = r#"[default]
app = "hello"
deploy_to = "/srv/hello"

[default.python]
requirements = "requirements.txt"
manage = ["check --deploy"]
[default.python.django]
migrate = true
collectstatic = true
roles = ["web"]

[default.tasks.backup]
run = "pg_dump hello > $SHIP_DEPLOY_TO/shared/backups/$SHIP_RELEASE.sql"
before = "django.migrate"
roles = ["web"]
once = true
description = "Back up the database before migrating"

[default.tasks.restart]
run = "sudo systemctl restart gunicorn"
after = "switch"
roles = ["web"]

[default.tasks.announce]
run = "echo deployed"
after = "verify"
local = true
description = "Tell the team"

[production.roles.web]
hosts = ["app-web01", "app-web02"]
[production.roles.worker]
hosts = ["app-job01"]
"#;
    let f = Fixture::from_fixture("pyapp", &[("Ship.toml", ship)]);
    let out = f.ship(&["tasks", "production"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!("tasks_production", out.stdout);
    let first = f.ship(&["tasks"]);
    assert_eq!(first.stdout, out.stdout, "the first stage is the default");
    assert!(
        !f.join("target/ship/wheelhouse").exists(),
        "listing builds nothing"
    );
}

const FLEET: &str = r#"[default]
app = "shop"
deploy_to = "/srv/shop"
source = { dir = "app" }

[default.tasks.migrate]
run = "bin/migrate"
after = "install"
roles = ["web"]
once = true

[default.tasks.warm-cache]
run = "bin/warm $SHIP_VAR_PORT"
after = "switch"
roles = ["web", "worker"]
once = "role"

[production]
inventory = { command = "./hosts.sh production" }
rolling = 2

[production.roles.web]
primary = "web2"
"#;

const HOSTS_SH: &str = r#"#!/bin/sh
# A dynamic inventory: what a cloud API would answer, as JSON.
cat <<JSON
{"hosts": [
  {"name": "web1", "roles": ["web"], "vars": {"port": 8001}},
  {"name": "web2", "roles": ["web"], "vars": {"port": 8002}},
  {"name": "web3", "roles": ["web"], "vars": {"port": 8003}},
  {"name": "job1", "roles": ["worker"], "vars": {"port": 9001}},
  {"name": "job2", "roles": ["worker"], "vars": {"port": 9002}, "primary": true}
]}
JSON
"#;

fn fleet_project() -> Fixture {
    let f = Fixture::new(&[
        ("app/index.html", "shop\n"),
        ("Ship.toml", FLEET),
        ("hosts.sh", HOSTS_SH),
    ]);
    let sh = f.join("hosts.sh");
    let mut perm = std::fs::metadata(&sh).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&sh, perm).unwrap();
    f
}

/// A dynamic inventory with per-host variables and a primary host, tasks once per deploy
/// and once per role, rolling batches (the migrating host first), and host selection.
#[test]
fn inventory_selection_and_rolling() {
    let f = fleet_project();
    let (text, _) = plan(&f, "production", &[]);
    insta::assert_snapshot!("inventory_text", text);
    let verbose = f.ship(&["plan", "production", "--release-id", RELEASE, "-v"]);
    assert!(
        verbose
            .stdout
            .contains("SHIP_VAR_PORT=8002\nexport SHIP_VAR_PORT")
    );

    let (selected, _) = plan(&f, "production", &["--roles", "web", "--exclude", "web3"]);
    insta::assert_snapshot!("selection_text", selected);
    let (globbed, _) = plan(&f, "production", &["--hosts", "job*,web1"]);
    assert!(
        globbed.contains("selected   3 of 5 hosts by --hosts job*,web1"),
        "{globbed}"
    );

    for (flags, error) in [
        (vec!["--roles", "db"], "--roles: unknown role `db`"),
        (vec!["--hosts", "wbe*"], "--hosts wbe*: matches no host"),
        (
            vec!["--roles", "web", "--exclude", "web*"],
            "no host of stage `production` is left",
        ),
    ] {
        let mut args = vec!["plan", "production"];
        args.extend(flags);
        let out = f.ship(&args);
        assert_eq!(out.code, 2, "{args:?}");
        assert!(out.stderr.contains(error), "{args:?}: {}", out.stderr);
    }
}

/// 200 hosts in two roles, rolling by 25%: the plan stays readable.
#[test]
fn two_hundred_hosts_read_grouped() {
    let web: Vec<String> = (1..=150).map(|i| format!("\"web{i:03}\"")).collect();
    let job: Vec<String> = (1..=50).map(|i| format!("\"job{i:03}\"")).collect();
    let ship = format!(
        "[default]\napp = \"big\"\ndeploy_to = \"/srv/big\"\nsource = {{ dir = \"app\" }}\nrolling = \"25%\"\n\
         [default.tasks.restart]\nrun = \"systemctl restart big\"\nafter = \"switch\"\nroles = [\"web\"]\n\
         [production.roles.web]\nhosts = [{}]\n[production.roles.worker]\nhosts = [{}]\n",
        web.join(", "),
        job.join(", ")
    );
    let f = Fixture::new(&[("app/index.html", "big\n"), ("Ship.toml", &ship)]);
    let (text, _) = plan(&f, "production", &[]);
    assert!(text.lines().all(|l| l.chars().count() < 200), "{text}");
    insta::assert_snapshot!("two_hundred_hosts_text", text);
}
