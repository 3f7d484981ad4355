//! ship-python end to end on real SSH hosts, with no network: wheels built here by the
//! build phase, virtualenvs made on the hosts with `python3 -m venv` and pip `--no-index`,
//! reused when the requirements did not change, a WSGI server restarted by a task and
//! asked over HTTP, Django-style migrations once per deploy, rollback.

use ship_tests::{Fixture, Fleet, KillOnDrop, Output, ok};

const HOSTS: [&str; 3] = ["h1", "h2", "h3"];

fn project(fleet: &Fleet) -> Fixture {
    let ship = format!(
        r#"[default]
app = "hello"
deploy_to = "/srv/app"
ssh_config = "{}"
keep_releases = 3

[default.python]
requirements = "requirements.txt"
[default.python.django]
migrate = true
roles = ["web"]

[default.tasks.restart]
run = "sh restart.sh"
after = "switch"
roles = ["web"]

[staging.roles.web]
hosts = [{}]
"#,
        fleet.ssh_config().display(),
        fleet.toml_hosts(0..3)
    );
    let f = Fixture::from_fixture("pyapp", &[("Ship.toml", &ship)]);
    f.commit("hello v1");
    f
}

fn apply(f: &Fixture, release: &str) -> Output {
    f.ship_env(
        &["apply", "staging", "--release-id", release],
        &[("USER", "tester")],
    )
}

/// The lines of `.ship/venvs/installs.log`: one per pip run on the host.
fn installs(fleet: &Fleet, host: &str) -> Vec<String> {
    let (_, out, _) = fleet.try_sh(host, "cat /srv/app/.ship/venvs/installs.log");
    out.lines().map(str::to_owned).collect()
}

fn migrations(fleet: &Fleet) -> Vec<String> {
    let mut all = Vec::new();
    for h in HOSTS {
        let (_, out, _) = fleet.try_sh(h, "cat /srv/app/shared/migrations.log");
        all.extend(out.lines().map(str::to_owned));
    }
    all.sort();
    all
}

#[test]
fn wheels_venv_reuse_migrate_once_and_rollback() {
    let fleet = Fleet::start_sized(3, "256m");
    let _servers = KillOnDrop(&fleet, "/srv/app/shared/server.pid");
    let f = project(&fleet);

    // 1. First deploy: a venv is made on every host from the wheelhouse, offline.
    let out = apply(&f, "20260101000001");
    ok(&out);
    assert_eq!(fleet.http_answers(8000), vec!["Hello, ship from v1\n"; 3]);
    let venv1 = fleet.readlink("h1", "/srv/app/releases/20260101000001/venv");
    assert!(venv1.starts_with("/srv/app/.ship/venvs/"), "{venv1}");
    for h in HOSTS {
        assert_eq!(installs(&fleet, h).len(), 1, "{h}");
        assert!(
            fleet.try_sh(h, "test -f /srv/app/releases/20260101000001/.wheelhouse/greeting-1.0-py3-none-any.whl").0,
            "the wheelhouse travels in the release"
        );
    }
    assert_eq!(
        migrations(&fleet),
        ["20260101000001 h1"],
        "migrate ran once, on the first web host"
    );

    // 2. Changed code, same requirements: the venv is reused; no pip install ran.
    f.write(
        "hello/app.py",
        &std::fs::read_to_string(f.join("hello/app.py"))
            .unwrap()
            .replace("v1", "v2"),
    );
    f.commit("hello v2");
    // Planned, then the saved plan applied: the artifact (with its wheels) packs the same.
    ok(&f.ship(&["plan", "staging", "--release-id", "20260101000002"]));
    let out = f.ship_env(&["apply"], &[("USER", "tester")]);
    ok(&out);
    assert_eq!(fleet.http_answers(8000), vec!["Hello, ship from v2\n"; 3]);
    for h in HOSTS {
        assert_eq!(installs(&fleet, h).len(), 1, "no pip install ran on {h}");
        assert_eq!(
            fleet.readlink(h, "/srv/app/releases/20260101000002/venv"),
            fleet.readlink(h, "/srv/app/releases/20260101000001/venv"),
            "{h} reuses the venv"
        );
    }
    assert_eq!(
        migrations(&fleet),
        ["20260101000001 h1", "20260101000002 h1"],
        "one migrate per deploy"
    );

    // 3. A changed requirement (the local package's code): a new venv.
    f.write(
        "libs/greeting/greeting/__init__.py",
        &std::fs::read_to_string(f.join("libs/greeting/greeting/__init__.py"))
            .unwrap()
            .replace("\"Hello\"", "\"Howdy\""),
    );
    f.commit("greeting says howdy");
    let out = apply(&f, "20260101000003");
    ok(&out);
    assert_eq!(fleet.http_answers(8000), vec!["Howdy, ship from v2\n"; 3]);
    for h in HOSTS {
        assert_eq!(installs(&fleet, h).len(), 2, "a new venv on {h}");
        assert_ne!(
            fleet.readlink(h, "/srv/app/releases/20260101000003/venv"),
            venv1,
            "{h}"
        );
    }

    // 4. Roll back: release 2 is live again with its own venv, and the rollback runs the
    // restart task (hooked after the switch): the old version answers.
    let out = f.ship(&["rollback", "staging"]);
    ok(&out);
    assert_eq!(fleet.http_answers(8000), vec!["Hello, ship from v2\n"; 3]);

    // 5. Two more deploys: keep_releases = 3 drops release 1 and 2's venv stays only while a
    // kept release links to it.
    for (n, word) in [("4", "Hi"), ("5", "Hey")] {
        f.write(
            "libs/greeting/greeting/__init__.py",
            &format!(
                "WORD = \"{word}\"\n\n\ndef greet(name):\n    return f\"{{WORD}}, {{name}}\"\n"
            ),
        );
        f.commit(word);
        ok(&apply(&f, &format!("2026010100000{n}")));
    }
    for h in HOSTS {
        let (_, venvs, _) = fleet.try_sh(h, "ls /srv/app/.ship/venvs | grep -v installs.log");
        let mut linked: Vec<String> = fleet
            .sh(h, "for r in /srv/app/releases/*; do readlink $r/venv; done")
            .lines()
            .map(|l| l.rsplit('/').next().unwrap().to_owned())
            .collect();
        linked.sort();
        linked.dedup();
        let mut have: Vec<String> = venvs.lines().map(str::to_owned).collect();
        have.sort();
        assert_eq!(have, linked, "{h}: only the venvs of kept releases remain");
    }
    assert_eq!(fleet.http_answers(8000), vec!["Hey, ship from v2\n"; 3]);
}

#[test]
fn a_wheel_that_fails_to_build_or_a_host_without_venv_changes_nothing() {
    let fleet = Fleet::start_sized(3, "256m");
    let _servers = KillOnDrop(&fleet, "/srv/app/shared/server.pid");
    let f = project(&fleet);
    ok(&apply(&f, "20260101000001"));

    // A requirement that does not build: refused here, before any host is touched.
    f.write("libs/broken/pyproject.toml", "[build-system]\nrequires = []\nbuild-backend = \"backend\"\nbackend-path = [\".\"]\n\n[project]\nname = \"broken\"\nversion = \"1.0\"\n");
    f.write(
        "libs/broken/backend.py",
        "def build_wheel(*args, **kwargs):\n    raise SystemExit('broken: cannot build')\n",
    );
    f.write("requirements.txt", "./libs/greeting\n./libs/broken\n");
    f.commit("a broken requirement");
    let out = apply(&f, "20260101000002");
    assert_eq!(
        out.code, 1,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    assert!(
        out.stderr.contains("[python]") && out.stderr.contains("while building ./libs/broken"),
        "{}",
        out.stderr
    );
    for h in HOSTS {
        assert_eq!(
            fleet.readlink(h, "/srv/app/current"),
            "/srv/app/releases/20260101000001"
        );
        assert!(
            !fleet
                .try_sh(h, "test -e /srv/app/releases/20260101000002")
                .0
        );
    }

    // An interpreter without the venv module on h2: named, and every host put back.
    f.write("requirements.txt", "./libs/greeting\n");
    f.commit("fixed requirements");
    for h in HOSTS {
        let body = if h == "h2" {
            "#!/bin/sh\ncase \"$*\" in *ensurepip*) echo 'No module named ensurepip' >&2; exit 1;; esac\nexec python3 \"$@\"\n"
        } else {
            "#!/bin/sh\nexec python3 \"$@\"\n"
        };
        fleet.sh(h, &format!("mkdir -p /srv/bin && printf '%s' '{}' > /srv/bin/python3 && chmod +x /srv/bin/python3", body.replace('\'', "'\\''")));
    }
    let out = f.ship_env(
        &[
            "apply",
            "staging",
            "--release-id",
            "20260101000003",
            "--set",
            "python.python=\"/srv/bin/python3\"",
        ],
        &[("USER", "tester")],
    );
    assert_eq!(
        out.code, 3,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains("h2") && all.contains("has no venv module"),
        "{all}"
    );
    assert!(all.contains("python.venv"), "{all}");
    for h in HOSTS {
        assert_eq!(
            fleet.readlink(h, "/srv/app/current"),
            "/srv/app/releases/20260101000001",
            "{h}"
        );
    }
    assert_eq!(fleet.http_answers(8000), vec!["Hello, ship from v1\n"; 3]);
}
