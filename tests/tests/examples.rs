//! The worked examples of `examples/` stay valid: each one's tasks list and plan are made
//! from its Ship.toml as written (the network-bound build steps replaced by local ones).

use ship_tests::{Fixture, ok};
use std::path::Path;

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
