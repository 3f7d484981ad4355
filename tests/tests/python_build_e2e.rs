//! Build once, ship the build, for a Python app: what the stage's `build` writes ships with
//! the commit's code and the wheelhouse. Its own binary, not a test of python_e2e: run
//! beside those tests, the servers of one of them were found dead when this one ended
//! (three runs of three; none with this test's server left running), which is not
//! explained yet.

use ship_tests::{Fixture, Fleet, KillOnDrop, ok};

/// Build once, ship the build, for a Python app too: the stage's `build` compiles assets
/// into `static/` (gitignored, like collectstatic's or a Sass compiler's output) and they
/// ship with the commit's code and the wheelhouse, with no list of what to ship.
#[test]
fn assets_compiled_by_the_build_ship_with_the_code() {
    let fleet = Fleet::start_sized(1, "256m");
    let _servers = KillOnDrop(&fleet, "/srv/app/shared/server.pid");
    let ship = format!(
        r#"[default]
app = "hello"
deploy_to = "/srv/app"
ssh_config = "{}"
build = ["python3 build_assets.py"]

[default.python]
requirements = "requirements.txt"

[default.tasks.restart]
run = "sh restart.sh"
after = "switch"

[staging]
hosts = [{}]
"#,
        fleet.ssh_config().display(),
        fleet.toml_hosts(0..1)
    );
    let app = "def application(environ, start_response):\n\
               \x20   with open('static/app.css', 'rb') as f:\n\
               \x20       body = f.read()\n\
               \x20   start_response('200 OK', [('Content-Type', 'text/css')])\n\
               \x20   return [body]\n";
    let build = "import pathlib\n\
                 src = pathlib.Path('assets/app.scss').read_text()\n\
                 pathlib.Path('static').mkdir(exist_ok=True)\n\
                 pathlib.Path('static/app.css').write_text(src.replace('$accent', 'teal'))\n";
    let f = Fixture::from_fixture(
        "pyapp",
        &[
            ("Ship.toml", &ship),
            ("hello/app.py", app),
            ("build_assets.py", build),
            ("assets/app.scss", "body { color: $accent; }\n"),
            (".gitignore", "target/\n__pycache__/\nstatic/\n"),
        ],
    );
    f.commit("assets v1");
    ok(&f.ship_env(
        &["apply", "staging", "--release-id", "20260101000001"],
        &[("USER", "tester")],
    ));
    assert_eq!(fleet.http_answers(8000), vec!["body { color: teal; }\n"]);
    let listing = fleet.sh("h1", "cd /srv/app/current/ && find . -mindepth 1 | sort");
    for shipped in [
        "./.wheelhouse/greeting-1.0-py3-none-any.whl",
        "./static/app.css",
        "./hello/app.py",
    ] {
        assert!(
            listing.lines().any(|l| l == shipped),
            "{shipped}: {listing}"
        );
    }
}
