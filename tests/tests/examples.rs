//! The worked examples of `examples/` stay valid: each one's tasks list and plan are made
//! from its Ship.toml as written (the network-bound build steps replaced by local ones), and
//! each is deployed for real, as it is in the repository, to a fleet of sshd hosts named as
//! its Ship.toml names them, then served over HTTP: the React front end built by a real
//! `npm ci` and `vite build` (the npm registry), the Django site with Django, gunicorn and
//! WhiteNoise from PyPI under supervisord.

use ship_tests::{Fixture, Fleet, KillOnDrop, git, http_get_path, ok};
use std::path::Path;
use std::time::{Duration, Instant};

fn example(name: &str) -> Fixture {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    let f = Fixture::copy_of(&dir, &[]);
    f.commit(name);
    f
}

#[test]
fn django_example_plans_its_roles_and_tasks() {
    let f = example("django");
    let out = f.ship(&["tasks", "production"]);
    ok(&out);
    for task in [
        "python.venv",
        "backup",
        "django.migrate",
        "django.collectstatic",
        "restart-web",
        "restart-worker",
        "crontab",
    ] {
        assert!(out.stdout.contains(task), "{task}: {}", out.stdout);
    }
    // Django comes from PyPI: plan without a wheelhouse so the test needs no network.
    let out = f.ship(&["plan", "staging", "--set", "python.wheelhouse=false"]);
    ok(&out);
    assert!(out.stdout.contains("once: web1"), "{}", out.stdout);
    let out = f.ship(&[
        "plan",
        "production",
        "--set",
        "python.wheelhouse=false",
        "--set",
        "protected=false",
    ]);
    ok(&out);
    assert!(
        out.stdout
            .contains("+config/gunicorn.conf.py on web1, web2"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("+config/worker.env on worker1"),
        "{}",
        out.stdout
    );
    // gunicorn is reloaded gracefully, and checked over HTTP on the web hosts.
    assert!(
        out.stdout.contains("sh deploy/restart-web.sh"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("http://127.0.0.1:8000/"),
        "{}",
        out.stdout
    );
}

#[test]
fn react_example_ships_dist_only() {
    let f = example("react");
    // Vite comes from npm: the test builds a stand-in dist/ instead.
    let out = f.ship(&[
        "plan",
        "staging",
        "--set",
        r#"node.build=["mkdir -p dist/assets", "echo '<div id=root></div>' > dist/index.html"]"#,
        "--format",
        "json",
    ]);
    ok(&out);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["artifact"]["source"], "paths dist/");
    assert_eq!(plan["artifact"]["entries"], 2, "index.html and assets/");
}

#[test]
fn webxample_plans_as_the_readme_shows() {
    let f = example("webxample");
    ok(&f.ship(&["plan", "production"]));
}

/// The example's own `ssh_config` (`.fleet/ssh_config`, which its Ship.toml names and
/// `../fleet.sh` writes): the fleet's hosts `h1, h2, ...` under the example's names.
fn alias_hosts(f: &Fixture, fleet: &Fleet, names: &[&str]) {
    let mut config = std::fs::read_to_string(fleet.ssh_config()).unwrap();
    for (i, name) in names.iter().enumerate() {
        let from = format!("Host h{}\n", i + 1);
        assert!(config.contains(&from), "{config}");
        config = config.replace(&from, &format!("Host {name}\n"));
    }
    f.write(".fleet/ssh_config", &config);
}

/// A bare `origin` the project's `main` is pushed to: the production stages of the
/// examples are `protected` (pushed commits only) and tag each deploy in the remote.
fn with_origin(f: &Fixture) -> tempfile::TempDir {
    let remote = tempfile::tempdir().unwrap();
    git(remote.path(), &["init", "-q", "--bare", "-b", "main"]);
    git(
        f.path(),
        &["remote", "add", "origin", remote.path().to_str().unwrap()],
    );
    git(f.path(), &["push", "-q", "-u", "origin", "main"]);
    remote
}

fn push(f: &Fixture, message: &str) {
    f.commit(message);
    git(f.path(), &["push", "-q", "origin", "main"]);
}

/// What each host serves for the React front end: the built `index.html` and the hashed
/// script it loads, `(path, body)`; panics, naming the host, when either is not served.
fn served_front_end(fleet: &Fleet) -> Vec<(String, String)> {
    fleet
        .hosts
        .iter()
        .map(|h| {
            let index =
                http_get_path(h.ip, 8000, "/").unwrap_or_else(|e| panic!("{}: {e}", h.name));
            // The built page, not the source one (which loads /src/main.jsx).
            assert!(
                !index.contains("/src/main.jsx"),
                "{}: the source index.html: {index}",
                h.name
            );
            let start = index
                .find("/assets/index-")
                .unwrap_or_else(|| panic!("{}: no hashed script in {index}", h.name));
            let end = start + index[start..].find('"').expect("a quoted src");
            let script = &index[start..end];
            assert!(script.ends_with(".js"), "{}: {script}", h.name);
            let body = http_get_path(h.ip, 8000, script)
                .unwrap_or_else(|e| panic!("{}: {script}: {e}", h.name));
            // React's production build, bundled: its error decoder URL is in every build.
            assert!(
                body.contains("react.dev/errors/"),
                "{}: {script} is not React's build",
                h.name
            );
            (script.to_owned(), body)
        })
        .collect()
}

/// The React example as it is: `npm ci` and `vite build` from the npm registry, `dist/`
/// shipped to web1 and web2 (its `production`), served from `current/` by a static server
/// on each host, as its README's nginx `root` does; a second release with changed source is
/// served with its new hashed script, and a rollback serves the old one again.
#[test]
fn react_example_deploys_its_vite_build_and_serves_it() {
    let fleet = Fleet::start(2);
    let f = example("react");
    alias_hosts(&f, &fleet, &["web1", "web2"]);
    let _origin = with_origin(&f);
    // The web server of each host serves /srv/react-front/current, resolving the link on
    // each request (as nginx's `root` does).
    for h in &fleet.hosts {
        fleet.sh(
            &h.name,
            &format!(
                "mkdir -p /srv/react-front/current && nohup setsid timeout 600 python3 -m http.server 8000 \
                 --bind {} --directory /srv/react-front/current >/dev/null 2>&1 </dev/null & echo $! > /srv/web.pid",
                h.ip
            ),
        );
    }
    let _servers = KillOnDrop(&fleet, "/srv/web.pid");
    for h in &fleet.hosts {
        fleet.sh(&h.name, "rmdir /srv/react-front/current");
    }

    let apply = |id: &str| {
        let out = f.ship_env(
            &["apply", "production", "--release-id", id],
            &[("USER", "tester")],
        );
        ok(&out);
    };
    apply("20260101000001");
    let v1 = served_front_end(&fleet);
    assert_eq!(v1[0], v1[1], "every host serves the same build");
    assert!(
        v1[0].1.contains("Built once, shipped everywhere"),
        "the app's own code"
    );
    for h in ["h1", "h2"] {
        // The build alone shipped: no sources, no package.json, no node_modules.
        let top = fleet.sh(h, "cd /srv/react-front/current && ls -A");
        assert_eq!(
            top.split_whitespace().collect::<Vec<_>>(),
            ["REVISION", "assets", "index.html"],
            "{h}"
        );
    }

    let main = std::fs::read_to_string(f.join("src/main.jsx")).unwrap();
    f.write(
        "src/main.jsx",
        &main.replace(
            "Built once, shipped everywhere",
            "Built once, shipped everywhere, v2",
        ),
    );
    push(&f, "front v2");
    apply("20260101000002");
    let v2 = served_front_end(&fleet);
    assert_ne!(v2[0].0, v1[0].0, "a new hashed script");
    assert!(
        v2[0].1.contains("shipped everywhere, v2"),
        "the new build is served"
    );
    assert_eq!(v2[0], v2[1]);
    let old = http_get_path(fleet.hosts[0].ip, 8000, &v1[0].0);
    assert!(
        old.is_err(),
        "the old script is not in the live release: {old:?}"
    );

    ok(&f.ship(&["rollback", "production"]));
    assert_eq!(
        served_front_end(&fleet),
        v1,
        "the rollback serves the first build again"
    );
}

/// `GET http://127.0.0.1:8000<path>` on `host`, from the host itself (gunicorn listens on
/// its loopback, as the example configures it): the body, or curl's error.
fn curl(fleet: &Fleet, host: &str, path: &str) -> Result<String, String> {
    let (ok, out, err) = fleet.try_sh(
        host,
        &format!("curl -fsS --max-time 5 'http://127.0.0.1:8000{path}'"),
    );
    if ok { Ok(out) } else { Err(err) }
}

/// What a web host of the Django example serves: its page, and the stylesheet that page
/// links to (collectstatic's hashed copy, served by WhiteNoise), `(path, body)`. Waits up to
/// 15 s for the page to link a stylesheet `wanted` (the old workers of a HUP may answer for
/// a moment); panics, naming the host, when it does not or the stylesheet is not served.
fn served_site(fleet: &Fleet, host: &str, wanted: impl Fn(&str) -> bool) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let (page, css) = loop {
        let page = curl(fleet, host, "/");
        let css = page.as_ref().ok().and_then(|p| {
            let start = p.find("/static/mysite/site.")?;
            Some(p[start..start + p[start..].find('"')?].to_owned())
        });
        match (page, css) {
            (Ok(page), Some(css)) if wanted(&css) => break (page, css),
            (page, _) => {
                assert!(
                    Instant::now() < deadline,
                    "{host}: no page linking the wanted stylesheet within 15 s: {page:?}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    assert!(
        page.contains("<h1>Hello from mysite</h1>"),
        "{host}: {page}"
    );
    // Hashed by the manifest collectstatic wrote: site.<12 hex digits>.css.
    let hash = css
        .trim_start_matches("/static/mysite/site.")
        .trim_end_matches(".css");
    assert!(
        hash.len() == 12 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{host}: {css} is not collectstatic's hashed name"
    );
    let body = curl(fleet, host, &css).unwrap_or_else(|e| panic!("{host}: {css}: {e}"));
    assert!(body.contains("font-family"), "{host}: {css}: {body}");
    (css, body)
}

/// Waits up to 15 s for the last line of `file` on `host` to contain `want`.
fn wait_for_last_line(fleet: &Fleet, host: &str, file: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = fleet.read(host, file);
        if text.lines().last().is_some_and(|l| l.contains(want)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{host}: {file} does not end with {want:?}: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The Django example's `production` as it is: web1, web2 (web) and worker1 (worker, cron),
/// each a host with its own loopback; Django, gunicorn and WhiteNoise wheels built here
/// from PyPI and installed offline on the hosts; migrate once, collectstatic on the web
/// hosts; gunicorn and the worker under supervisord as `deploy/supervisor-*.conf` say,
/// reloaded by `deploy/restart-web.sh` (preflight, then HUP) and `restart-worker`; the
/// crontab installed on worker1. Each web host serves the page and its collectstatic'd
/// stylesheet; a second release with a changed stylesheet serves the new one through a
/// HUP of the same gunicorn; a rollback serves the first again.
#[test]
fn django_example_deploys_under_supervisord_and_serves_its_static_files() {
    let fleet = Fleet::start_isolated(3, "256m");
    let f = example("django");
    alias_hosts(&f, &fleet, &["web1", "web2", "worker1"]);
    let _origin = with_origin(&f);
    // Each host's own supervisord and crontabs, as on separate machines (the test hosts
    // share the machine's root filesystem but /srv).
    fleet.private_dir("/etc/supervisor");
    fleet.private_dir("/var/spool/cron");
    for (host, role) in [("h1", "web"), ("h2", "web"), ("h3", "worker")] {
        let program =
            std::fs::read_to_string(f.join(&format!("deploy/supervisor-{role}.conf"))).unwrap();
        let role_file = match role {
            "web" => "cat > gunicorn.conf.py <<'EOF'\nworkers = 2\ngraceful_timeout = 20\nEOF",
            _ => "echo QUEUES=default > worker.env",
        };
        // What the example's README asks once per host: the secrets (readable by the app's
        // user), the per-role config, and the supervisord programs (its Debian
        // configuration, with the socket and logs under /srv: /run is the machine's).
        fleet.sh(
            host,
            &format!(
                "set -e; mkdir -p /srv/mysite/shared/config /srv/mysite/shared/log /srv/supervisor
                 cd /srv/mysite/shared/config
                 printf 'SECRET_KEY=a-secret-for-the-test-hosts-only-0123456789abcdef\\nALLOWED_HOSTS=127.0.0.1,localhost\\nDATABASE_PATH=/srv/mysite/shared/db.sqlite3\\n' > settings.env
                 chgrp www-data settings.env && chmod 640 settings.env
                 {role_file}
                 sed -i 's|/var/run/|/srv/supervisor/|; s|/var/log/supervisor|/srv/supervisor|' /etc/supervisor/supervisord.conf
                 rm -f /etc/supervisor/conf.d/*
                 cat > /etc/supervisor/conf.d/mysite-{role}.conf <<'EOF'\n{program}EOF
                 supervisord -c /etc/supervisor/supervisord.conf"
            ),
        );
    }
    // The hosts' python3 is the machine's pyenv, under /root, which the app's user
    // (www-data) cannot enter; a server's own is /usr/bin/python3.
    let apply = |id: &str| {
        ok(&f.ship_env(
            &[
                "apply",
                "production",
                "--release-id",
                id,
                "--set",
                "python.python=/usr/bin/python3",
            ],
            &[("USER", "tester")],
        ))
    };
    apply("20260101000001");
    let mut v1 = Vec::new();
    for h in ["h1", "h2"] {
        v1.push(served_site(&fleet, h, |_| true));
        assert!(
            fleet
                .sh(h, "supervisorctl status mysite-web")
                .contains("RUNNING"),
            "{h}"
        );
    }
    assert_eq!(v1[0], v1[1], "both web hosts serve the same build");
    // migrate ran (once, on web1): the sessions table the cron's clearsessions needs.
    assert!(
        fleet
            .sh("h1", "/usr/bin/python3 -c \"import sqlite3; print(sqlite3.connect('/srv/mysite/shared/db.sqlite3').execute('select name from sqlite_master').fetchall())\"")
            .contains("django_session")
    );
    wait_for_last_line(
        &fleet,
        "h3",
        "/srv/mysite/shared/log/worker.log",
        "release 20260101000001",
    );
    assert!(
        fleet
            .sh("h3", "crontab -l")
            .contains("manage.py clearsessions")
    );
    let master = fleet.sh("h1", "supervisorctl pid mysite-web");

    let css = std::fs::read_to_string(f.join("mysite/static/mysite/site.css")).unwrap();
    f.write(
        "mysite/static/mysite/site.css",
        &format!("{css}h1 {{ color: #246; }}\n"),
    );
    push(&f, "mysite v2: a new stylesheet");
    apply("20260101000002");
    for h in ["h1", "h2"] {
        let v2 = served_site(&fleet, h, |css| css != v1[0].0);
        assert!(v2.1.contains("color: #246"), "{h}: {v2:?}");
    }
    // Same virtualenv: restart-web.sh reloaded gunicorn with a HUP, its master kept.
    assert_eq!(fleet.sh("h1", "supervisorctl pid mysite-web"), master);
    // The backup before migrating copied the database.
    assert!(
        fleet
            .try_sh(
                "h1",
                "test -s /srv/mysite/shared/backups/20260101000002.sqlite3"
            )
            .0
    );
    wait_for_last_line(
        &fleet,
        "h3",
        "/srv/mysite/shared/log/worker.log",
        "release 20260101000002",
    );

    ok(&f.ship(&["rollback", "production"]));
    for (h, was) in ["h1", "h2"].iter().zip(&v1) {
        assert_eq!(
            &served_site(&fleet, h, |css| css == was.0),
            was,
            "{h}: the first release again"
        );
    }
    // The rollback ran restart-worker too: the worker runs the first release again.
    wait_for_last_line(
        &fleet,
        "h3",
        "/srv/mysite/shared/log/worker.log",
        "release 20260101000001",
    );
}
