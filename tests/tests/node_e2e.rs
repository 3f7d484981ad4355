//! ship-node end to end on real SSH hosts, with no network: a static front end built here
//! and served from `current/`, and a Node service whose production dependencies are
//! installed once per lock file on each host and reused across releases.

use ship_tests::{Fixture, Fleet, KillOnDrop, Output, ok};

const HOSTS: [&str; 2] = ["h1", "h2"];

fn apply(f: &Fixture, release: &str) -> Output {
    f.ship_env(
        &["apply", "staging", "--release-id", release],
        &[("USER", "tester")],
    )
}

#[test]
fn a_static_front_end_is_built_once_and_served_from_current() {
    let fleet = Fleet::start(2);
    let ship = format!(
        r#"[default]
app = "front"
deploy_to = "/srv/front"
ssh_config = "{}"

[default.node]
ship = ["dist/"]

[staging]
hosts = [{}]
"#,
        fleet.ssh_config().display(),
        fleet.toml_hosts(0..2)
    );
    let f = Fixture::from_fixture("nodestatic", &[("Ship.toml", &ship)]);
    f.commit("front v1");
    // The web server of each host serves /srv/front/current, as nginx's `root` would.
    for h in &fleet.hosts {
        fleet.sh(
            &h.name,
            &format!(
                "mkdir -p /srv/front/current && nohup setsid timeout 600 python3 -m http.server 8000 \
                 --bind {} --directory /srv/front/current >/dev/null 2>&1 </dev/null & echo $! > /srv/web.pid",
                h.ip
            ),
        );
    }
    let _servers = KillOnDrop(&fleet, "/srv/web.pid");
    // `current` must be free for the deploy's symlink: the server only needed it to start.
    for h in HOSTS {
        fleet.sh(h, "rmdir /srv/front/current");
    }

    ok(&apply(&f, "20260101000001"));
    for (h, body) in HOSTS.iter().zip(fleet.http_answers(8000)) {
        assert!(body.contains("<h1>front v1</h1>"), "{h}: {body}");
        // What shipped is the build output only: no sources, no package.json, no node_modules.
        let listing = fleet.sh(h, "cd /srv/front/current && find . -mindepth 1 | sort");
        assert_eq!(
            listing.lines().collect::<Vec<_>>(),
            ["./REVISION", "./assets", "./assets/app.js", "./index.html"],
            "{h}"
        );
    }

    f.write("src/version.txt", "v2\n");
    f.commit("front v2");
    ok(&f.ship(&["plan", "staging", "--release-id", "20260101000002"]));
    ok(&f.ship_env(&["apply"], &[("USER", "tester")]));
    for body in fleet.http_answers(8000) {
        assert!(body.contains("<h1>front v2</h1>"), "{body}");
    }

    ok(&f.ship(&["rollback", "staging"]));
    for body in fleet.http_answers(8000) {
        assert!(body.contains("<h1>front v1</h1>"), "{body}");
    }
}

fn service(fleet: &Fleet) -> Fixture {
    let ship = format!(
        r#"[default]
app = "service"
deploy_to = "/srv/service"
ssh_config = "{}"

[default.node]
build = []
ship = ["server.js", "restart.sh", "package.json", "package-lock.json", "vendor"]
install = "production"

[default.tasks.restart]
run = "sh restart.sh"
after = "switch"

[staging]
hosts = [{}]
"#,
        fleet.ssh_config().display(),
        fleet.toml_hosts(0..2)
    );
    let f = Fixture::from_fixture("nodeservice", &[("Ship.toml", &ship)]);
    f.commit("service v1");
    f
}

fn installs(fleet: &Fleet, host: &str) -> usize {
    fleet
        .try_sh(host, "cat /srv/service/.ship/node_modules/installs.log")
        .1
        .lines()
        .count()
}

#[test]
fn a_node_service_installs_its_lock_file_once_and_reuses_node_modules() {
    let fleet = Fleet::start(2);
    let _servers = KillOnDrop(&fleet, "/srv/service/shared/server.pid");
    let f = service(&fleet);

    ok(&apply(&f, "20260101000001"));
    assert_eq!(fleet.http_answers(8000), vec!["Hello, node from v1\n"; 2]);
    let tree = fleet.readlink("h1", "/srv/service/releases/20260101000001/node_modules");
    assert!(
        tree.starts_with("/srv/service/.ship/node_modules/"),
        "{tree}"
    );
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .unwrap();
    let major = String::from_utf8_lossy(&node.stdout)
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    assert!(tree.ends_with(&format!("-node{major}")), "{tree}");
    for h in HOSTS {
        assert_eq!(installs(&fleet, h), 1, "{h}");
    }

    // New code, same lock file: node_modules is reused, no npm install ran on the hosts.
    f.write(
        "server.js",
        &std::fs::read_to_string(f.join("server.js"))
            .unwrap()
            .replace("\"v1\"", "\"v2\""),
    );
    f.commit("service v2");
    // Planned, then the saved plan applied: the artifact packs to the same digest again.
    ok(&f.ship(&["plan", "staging", "--release-id", "20260101000002"]));
    ok(&f.ship_env(&["apply"], &[("USER", "tester")]));
    assert_eq!(fleet.http_answers(8000), vec!["Hello, node from v2\n"; 2]);
    for h in HOSTS {
        assert_eq!(installs(&fleet, h), 1, "no npm install ran on {h}");
        assert_eq!(
            fleet.readlink(h, "/srv/service/releases/20260101000002/node_modules"),
            fleet.readlink(h, "/srv/service/releases/20260101000001/node_modules"),
            "{h}"
        );
    }

    // Rollback serves the old version: it runs the restart task hooked after the switch.
    ok(&f.ship(&["rollback", "staging"]));
    assert_eq!(fleet.http_answers(8000), vec!["Hello, node from v1\n"; 2]);
}

#[test]
fn a_missing_lock_file_is_refused_saying_how_to_make_one() {
    let f = Fixture::from_fixture(
        "nodeservice",
        &[(
            "Ship.toml",
            "[default]\napp = \"service\"\ndeploy_to = \"/srv/service\"\n\
             [default.node]\nbuild = []\nship = [\"server.js\"]\ninstall = \"production\"\n\
             [staging]\nhosts = [\"h1\"]\n",
        )],
    );
    // The commit has no lock file: the build reads the commit, not the working tree.
    std::fs::remove_file(f.join("package-lock.json")).unwrap();
    f.commit("service without a lock file");
    let out = f.ship(&["plan", "staging"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("has no package-lock.json"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("npm install"), "{}", out.stderr);
}

/// The files of the current release of `host`, from its root, sorted (`./REVISION`, ...).
fn listing(fleet: &Fleet, host: &str, deploy_to: &str) -> Vec<String> {
    fleet
        .sh(
            host,
            &format!("cd {deploy_to}/current/ && find . -mindepth 1 | sort"),
        )
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Build once, ship the build, by default: a service whose `npm run build` writes
/// `dist/server.js` (gitignored, as everyone lays it out) and no `ship` list gets the
/// commit's files and what the build wrote; node_modules, which `npm ci` wrote, and a local
/// file the commit does not have stay here.
#[test]
fn a_service_built_to_dist_with_no_ship_list_serves_its_build() {
    let fleet = Fleet::start(2);
    let _servers = KillOnDrop(&fleet, "/srv/built/shared/server.pid");
    let ship = format!(
        r#"[default]
app = "built"
deploy_to = "/srv/built"
ssh_config = "{}"

[default.node]
# build: `npm ci`, then `npm run build` (node build.js): the defaults; no ship list.

[default.tasks.restart]
run = "sh restart.sh"
after = "switch"

[staging]
hosts = [{}]
"#,
        fleet.ssh_config().display(),
        fleet.toml_hosts(0..2)
    );
    let f = Fixture::from_fixture("nodebuilt", &[("Ship.toml", &ship)]);
    f.commit("built v1");
    f.write(".env", "SECRET=local only\n");
    // An old build in the working tree must not ship either: the build runs on the commit.
    f.write("dist/stale.js", "old\n");

    let out = f.ship(&[
        "plan",
        "staging",
        "--release-id",
        "20260101000001",
        "--format",
        "json",
    ]);
    ok(&out);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["artifact"]["source"], "git HEAD + built dist/");
    ok(&f.ship_env(&["apply"], &[("USER", "tester")]));
    assert_eq!(
        fleet.http_answers(8000),
        vec!["Hello from the build of v1\n"; 2]
    );
    for h in HOSTS {
        let files = listing(&fleet, h, "/srv/built");
        for shipped in ["./dist/server.js", "./package.json", "./src/server.js"] {
            assert!(files.iter().any(|f| f == shipped), "{h}: {files:?}");
        }
        for kept in ["./node_modules", "./.env", "./dist/stale.js"] {
            assert!(!files.iter().any(|f| f == kept), "{h}: {files:?}");
        }
    }

    f.write("src/message.txt", "v2\n");
    f.commit("built v2");
    ok(&apply(&f, "20260101000002"));
    assert_eq!(
        fleet.http_answers(8000),
        vec!["Hello from the build of v2\n"; 2]
    );
    ok(&f.ship(&["rollback", "staging"]));
    assert_eq!(
        fleet.http_answers(8000),
        vec!["Hello from the build of v1\n"; 2]
    );
}

/// A front end laid out as Vite makes it (index.html at the root, `public/`, `dist` in
/// .gitignore) with no `ship` list: its build ships beside its sources, and a web server
/// whose root is `current/dist` serves the built page.
#[test]
fn a_vite_layout_with_no_ship_list_serves_dist() {
    let fleet = Fleet::start(2);
    let ship = format!(
        r#"[default]
app = "front"
deploy_to = "/srv/front"
ssh_config = "{}"

[default.node]

[default.health]
run = "test -s dist/index.html"

[staging]
hosts = [{}]
"#,
        fleet.ssh_config().display(),
        fleet.toml_hosts(0..2)
    );
    let f = Fixture::from_fixture("vitelike", &[("Ship.toml", &ship)]);
    f.commit("front v1");
    // The web server of each host serves /srv/front/current/dist, as nginx's `root` would.
    for h in &fleet.hosts {
        fleet.sh(
            &h.name,
            &format!(
                "mkdir -p /srv/front/current/dist && nohup setsid timeout 600 python3 -m http.server 8000 \
                 --bind {} --directory /srv/front/current/dist >/dev/null 2>&1 </dev/null & echo $! > /srv/web.pid",
                h.ip
            ),
        );
    }
    let _servers = KillOnDrop(&fleet, "/srv/web.pid");
    // `current` must be free for the deploy's symlink: the server only needed it to start.
    for h in HOSTS {
        fleet.sh(h, "rm -r /srv/front/current");
    }
    ok(&apply(&f, "20260101000001"));
    for (h, body) in HOSTS.iter().zip(fleet.http_answers(8000)) {
        assert!(body.contains("<h1>front v1</h1>"), "{h}: {body}");
        assert!(body.contains("/assets/index-"), "{h}: {body}");
        let files = listing(&fleet, h, "/srv/front");
        for shipped in ["./dist/favicon.svg", "./index.html", "./src/main.js"] {
            assert!(files.iter().any(|f| f == shipped), "{h}: {files:?}");
        }
        assert!(
            files.iter().any(|f| f.starts_with("./dist/assets/index-")),
            "{h}: {files:?}"
        );
    }
}
