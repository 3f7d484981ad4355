//! Whatever a Ship.toml, an environment or a saved plan holds, loading it gives a value or an
//! error, never a panic (property tests over generated input), and `apply` refuses a saved
//! plan that was cut short or edited into nonsense.

use proptest::prelude::*;
use ship_core::Sources;
use ship_core::Stage;
use ship_tests::Fixture;

/// Ship.toml-like text: known keys and tables, wrong types, junk, in any order.
fn ship_toml() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "app",
        "deploy_to",
        "layout",
        "keep_releases",
        "linked_files",
        "linked_dirs",
        "source",
        "build",
        "version",
        "parallel",
        "hosts",
        "health",
        "tasks",
        "roles",
        "python",
        "node",
        "connect_timeout",
        "command_timeout",
        "ssh_config",
        "bogus",
    ]);
    let value = prop::sample::select(vec![
        "\"demo\"",
        "\"/srv/app\"",
        "\"timestamp\"",
        "\"ab\"",
        "\"bluegreen\"",
        "3",
        "0",
        "-1",
        "[\"a\", \"b\"]",
        "[\"../x\"]",
        "[1, 2]",
        "{ git = \"HEAD\" }",
        "{ dir = \"x\", git = \"y\" }",
        "{ run = \"true\" }",
        "{ run = \"true\", timeout = \"soon\" }",
        "true",
        "\"10s\"",
        "\"\"",
        "{ web = { hosts = [\"h\"] } }",
        "{ t = { run = \"x\", after = \"t\" } }",
    ]);
    let table = prop::sample::select(vec![
        "default",
        "production",
        "production.roles.web",
        "default.tasks.x",
        "global",
    ]);
    prop::collection::vec((table, prop::collection::vec((key, value), 0..6)), 0..4).prop_map(
        |tables| {
            let mut s = String::new();
            for (t, kvs) in tables {
                s.push_str(&format!("[{t}]\n"));
                for (k, v) in kvs {
                    s.push_str(&format!("{k} = {v}\n"));
                }
            }
            s
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn config_loading_never_panics(text in ship_toml(), env_value in "[ -~]{0,12}") {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Ship.toml");
        std::fs::write(&path, &text).unwrap();
        let sources = Sources {
            ship_toml: path,
            env: vec![("SHIP_KEEP_RELEASES".into(), env_value.clone()), ("SHIP_ROLES__WEB__HOSTS".into(), env_value)],
            ..Sources::default()
        };
        if let Ok(loaded) = sources.load() {
            for stage in ["production", "default", "nope"] {
                let _ = Stage::resolve(&loaded, stage, &ship_layouts::names());
            }
        }
    }

    #[test]
    fn saved_plan_loading_never_panics(text in "\\PC{0,200}") {
        let _ = ship_core::Plan::from_json(&text);
    }
}

#[test]
fn apply_refuses_a_truncated_or_edited_plan() {
    let f = Fixture::new(&[
        ("app/index.html", "hi\n"),
        (
            "Ship.toml",
            "[default]\napp = \"demo\"\ndeploy_to = \"/srv/demo\"\nsource = { dir = \"app\" }\n[staging]\nhosts = [\"h1\"]\n",
        ),
    ]);
    let out = f.ship(&["plan", "staging", "--release-id", "20261122235800"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let saved = f.join("target/ship/staging.plan.json");
    let text = std::fs::read_to_string(&saved).unwrap();
    std::fs::write(&saved, &text[..text.len() / 2]).unwrap();
    let out = f.ship(&["apply"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("is not a plan cargo ship can apply"),
        "{}",
        out.stderr
    );
    // An edited script: the configuration digest no longer matches what the file says.
    std::fs::write(
        &saved,
        text.replace("\"keep_releases\": 5", "\"keep_releases\": 1"),
    )
    .unwrap();
    let out = f.ship(&["apply"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("was changed after it was made"),
        "{}",
        out.stderr
    );
}
