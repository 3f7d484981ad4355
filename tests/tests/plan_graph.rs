//! `cargo ship plan --format dot|mermaid`: the step graph with its sync points, as insta
//! snapshots (a stage with roles, `once`, local and role-only tasks; a rolling stage), the
//! same bytes twice, and the dot accepted by Graphviz's `dot` (missing, it fails unless
//! `SHIP_SKIP_GRAPHVIZ=1` says to skip that check; `.ci/run` installs it).

use ship_tests::Fixture;
use std::io::Write;
use std::process::{Command, Stdio};

const RELEASE: &str = "20261122235800";

const ROLES: &str = r#"
[default]
app = "webxample"
deploy_to = "/var/webapps/webxample"
source = { dir = "app" }

[default.tasks.migrate]
run = "venv/bin/python manage.py migrate --noinput"
after = "install"
roles = ["web"]
once = true

[default.tasks.assets]
run = "echo uploading assets to the CDN"
after = "prepare"
local = true

[default.tasks.warm]
run = "curl -fsS http://127.0.0.1:8000/warm"
before = "switch"
roles = ["web"]

[default.tasks.restart]
run = "circusctl restart \"webxample-$SHIP_ROLE\""
after = "switch"

[default.tasks.crontab]
run = "crontab config/crontab"
after = "restart"
roles = ["cron"]

[production.roles.web]
hosts = ["app-web01", "app-web02"]
[production.roles.worker]
hosts = ["app-job01"]
[production.roles.cron]
hosts = ["app-cron01"]

[rolling]
hosts = ["r1", "r2", "r3", "r4"]
rolling = 2
"#;

fn project() -> Fixture {
    Fixture::new(&[
        ("app/index.html", "<h1>webxample</h1>\n"),
        ("Ship.toml", ROLES),
    ])
}

fn graph(f: &Fixture, stage: &str, format: &str) -> String {
    let out = f.ship(&["plan", stage, "--release-id", RELEASE, "--format", format]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout
}

/// Graphviz's verdict on `dot`, when `dot` is installed (`.ci/run` installs it).
fn graphviz_accepts(dot: &str) {
    let Ok(mut child) = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var_os("SHIP_SKIP_GRAPHVIZ").is_some(),
            "graphviz's dot is not installed: `apt-get install graphviz` (or set SHIP_SKIP_GRAPHVIZ=1 to skip its check)"
        );
        eprintln!("skipped: graphviz's dot is not installed and SHIP_SKIP_GRAPHVIZ is set");
        return;
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(dot.as_bytes())
        .expect("dot reads");
    let out = child.wait_with_output().expect("dot runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "dot: {stderr}\n{dot}"
    );
    let svg = String::from_utf8_lossy(&out.stdout);
    assert!(svg.contains("<svg") && svg.contains("sync point"), "{svg}");
}

#[test]
fn the_step_graph_in_dot_and_mermaid() {
    let f = project();
    for stage in ["production", "rolling"] {
        let dot = graph(&f, stage, "dot");
        assert_eq!(dot, graph(&f, stage, "dot"), "the same bytes twice");
        graphviz_accepts(&dot);
        insta::assert_snapshot!(format!("{stage}_dot"), dot);
        let mermaid = graph(&f, stage, "mermaid");
        assert_eq!(mermaid, graph(&f, stage, "mermaid"), "the same bytes twice");
        insta::assert_snapshot!(format!("{stage}_mermaid"), mermaid);
    }
}
