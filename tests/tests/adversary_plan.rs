//! Issue #16, classes 5 and 4, on real SSH hosts and through cargo ship's own `main`:
//! a saved plan whose scripts were edited and whose digest was computed again is refused
//! (the plan is re-derived from the configuration and the artifact it was checked against),
//! and the variables a deploy gives its tasks are never read back as configuration by a
//! cargo ship that a task runs. Both failed before the fix: the re-sealed plan ran its
//! edited script, and the nested plan got the outer deploy's `deploy_to`.

use ship_tests::{Fixture, Fleet, Output};

fn project(fleet: &Fleet, extra: &str) -> Fixture {
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nsource = {{ dir = \"app\" }}\n\
         ssh_config = \"{}\"\ncommand_timeout = \"60s\"\nkeep_releases = 3\n{extra}\n\
         [staging]\nhosts = [{}]\n",
        fleet.ssh_config().display(),
        fleet.toml_hosts(0..fleet.hosts.len())
    );
    Fixture::new(&[("app/index.html", "v1\n"), ("Ship.toml", &ship)])
}

fn ok(out: &Output) {
    assert_eq!(
        out.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
}

/// Reads the saved plan, lets `edit` change it, seals it again exactly as cargo ship does
/// (`Plan::sealed`) and saves it: a plan that passes `intact()`.
fn reseal(f: &Fixture, edit: impl FnOnce(&mut ship_core::Plan)) {
    let path = f.join("target/ship/staging.plan.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut plan = ship_core::Plan::from_json(&text).unwrap();
    edit(&mut plan);
    let plan = plan.sealed();
    assert!(plan.intact());
    std::fs::write(&path, plan.to_json()).unwrap();
}

fn untouched(fleet: &Fleet) {
    for h in ["h1", "h2"] {
        assert!(!fleet.try_sh(h, "test -e /srv/pwned").0, "{h} ran the edit");
        assert!(
            !fleet.try_sh(h, "test -e /srv/app").0,
            "{h} was touched: {}",
            fleet.try_sh(h, "ls -R /srv/app").1
        );
    }
}

/// A host script edited after `plan`, the digest computed again: `apply` re-derives every
/// script from the configuration and the artifact, refuses naming the host and segment, and
/// no host is touched. The same for a local step's command and for a step's shown command
/// (the record people review); the untouched plan still applies.
#[test]
fn a_resealed_plan_is_refused_and_touches_nothing() {
    let fleet = Fleet::start(2);
    let f = project(
        &fleet,
        "[default.tasks.announce]\nrun = \"echo announced\"\nafter = \"install\"\nlocal = true\n",
    );
    ok(&f.ship(&["plan", "staging", "--release-id", "20261101000001"]));
    let saved = std::fs::read_to_string(f.join("target/ship/staging.plan.json")).unwrap();

    // 1. A host's script runs one more command; `steps[].command` still shows the original.
    reseal(&f, |plan| {
        let script = &mut plan.hosts[1].scripts[0].script;
        *script = script.replacen("set -eu\n", "set -eu\ntouch /srv/pwned\n", 1);
    });
    let out = f.ship(&["apply"]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("h2") && out.stderr.contains("segment 0"),
        "names what differs: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("does not match"),
        "says why: {}",
        out.stderr
    );
    untouched(&fleet);

    // 2. A local step's command (run from `steps[]` on this machine).
    std::fs::write(f.join("target/ship/staging.plan.json"), &saved).unwrap();
    let marker = f.join("pwned-here");
    reseal(&f, |plan| {
        let step = plan
            .steps
            .iter_mut()
            .find(|s| s.name == "announce")
            .unwrap();
        step.command = format!("touch {}", marker.display());
    });
    let out = f.ship(&["apply", "target/ship/staging.plan.json"]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("announce"), "{}", out.stderr);
    assert!(!marker.exists(), "the local step ran");
    untouched(&fleet);

    // 3. A host dropped from the plan (its steps and scripts), sealed again.
    std::fs::write(f.join("target/ship/staging.plan.json"), &saved).unwrap();
    reseal(&f, |plan| {
        plan.hosts.retain(|h| h.name != "h2");
        for s in &mut plan.steps {
            s.hosts.retain(|h| h != "h2");
        }
    });
    let out = f.ship(&["apply"]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("h2"), "{}", out.stderr);
    untouched(&fleet);

    // The plan as it was made applies.
    std::fs::write(f.join("target/ship/staging.plan.json"), &saved).unwrap();
    let out = f.ship_env(&["apply"], &[("USER", "tester")]);
    ok(&out);
    for h in ["h1", "h2"] {
        assert_eq!(
            fleet.readlink(h, "/srv/app/current"),
            "/srv/app/releases/20261101000001"
        );
        assert!(!fleet.try_sh(h, "test -e /srv/pwned").0);
    }
}

/// Set in the environment of the nested run: the directory of the project it plans.
const NESTED: &str = "ADVERSARY_NESTED_PROJECT";

/// Not a test of its own: what a local task of [`a_task_running_cargo_ship_gets_its_own_configuration`]
/// runs (this test binary again, with [`NESTED`] set): `cargo ship plan staging --format json`
/// in that project, with the task's whole environment, as the `cargo-ship` binary would.
#[test]
fn nested_cargo_ship_plan() {
    let Ok(dir) = std::env::var(NESTED) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let mut cx = cargo_ship::Context::new(
        &dir,
        ["cargo-ship", "ship", "plan", "staging", "--format", "json"],
    );
    cx.env = std::env::vars().collect();
    let code = cargo_ship::main_with(&mut cx);
    std::fs::write(dir.join("nested.json"), cx.stdout_text()).unwrap();
    std::fs::write(
        dir.join("nested.err"),
        format!("exit {code}\n{}", cx.stderr_text()),
    )
    .unwrap();
}

/// A local task that shows its `SHIP_*` variables and runs `cargo ship plan` for another
/// project: the nested plan has that project's own `deploy_to`, app and stage settings,
/// whatever the deploy around it exported.
#[test]
fn a_task_running_cargo_ship_gets_its_own_configuration() {
    let fleet = Fleet::start(1);
    let other = Fixture::new(&[
        ("www/index.html", "other\n"),
        (
            "Ship.toml",
            &format!(
                "[default]\napp = \"other\"\ndeploy_to = \"/srv/other\"\nsource = {{ dir = \"www\" }}\n\
                 ssh_config = \"{}\"\n[staging]\nhosts = [\"h1\"]\n",
                fleet.ssh_config().display()
            ),
        ),
    ]);
    let exe = std::env::current_exe().unwrap();
    let task = format!(
        "[default.tasks.nested]\nafter = \"install\"\nlocal = true\nrun = \"\"\"\
         env | grep ^SHIP_ > {env}; {NESTED}={dir} {exe} --exact nested_cargo_ship_plan --test-threads 1 >/dev/null\"\"\"\n",
        env = other.join("task.env").display(),
        dir = other.path().display(),
        exe = exe.display()
    );
    let f = project(&fleet, &task);
    let out = f.ship_env(
        &["apply", "staging", "--release-id", "20261101000001"],
        &[("USER", "tester")],
    );
    ok(&out);

    // What the task was given: the deploy's own variables.
    let env = std::fs::read_to_string(other.join("task.env")).unwrap();
    assert!(env.contains("SHIP_DEPLOY_TO=/srv/app"), "{env}");
    assert!(env.contains("SHIP_RELEASE=20261101000001"), "{env}");

    // What the nested cargo ship made of it: its own configuration.
    let err = std::fs::read_to_string(other.join("nested.err")).unwrap();
    let json = std::fs::read_to_string(other.join("nested.json")).unwrap();
    assert!(err.starts_with("exit 0"), "{err}");
    let plan = ship_core::Plan::from_json(&json).unwrap();
    assert_eq!(plan.deploy_to, "/srv/other", "{err}");
    assert_eq!(plan.app, "other");
    assert_eq!(plan.stage, "staging");
}

/// Every `SHIP_*` variable set or exported by what cargo ship writes — each layout's plan
/// (with a host's inventory variables and a local step), the local step's header, and the
/// shell in the code of every crate (layouts, adapters, the binary) — is in
/// `protocol::TASK_VARIABLES`, so none is read back as configuration by a nested cargo ship.
#[test]
fn every_variable_cargo_ship_sets_is_never_configuration() {
    use ship_core::protocol::{is_task_variable, variables_set_in};
    let mut stage = ship_core::stage::example();
    stage.hosts[0]
        .vars
        .insert("region".to_owned(), "eu".to_owned());
    let mut texts: Vec<(String, String)> = Vec::new();
    for layout in ship_layouts::LAYOUTS {
        stage.layout = ship_core::LayoutName::from(layout.name());
        let plan = ship_core::plan(&ship_core::PlanInput {
            stage: &stage,
            layout: *layout,
            release: if layout.needs_version() {
                "1.2.3".to_owned()
            } else {
                "20261101000001".to_owned()
            },
            artifact: ship_core::ArtifactInfo {
                source: "dir app".to_owned(),
                revision: None,
                digest: "ab".repeat(32),
                bytes: 1,
                entries: 1,
                commands: Vec::new(),
                promoted_from: None,
                uncommitted: Vec::new(),
            },
            config_digest: String::new(),
            extra_tasks: Vec::new(),
            overrides: Vec::new(),
        })
        .unwrap();
        texts.push((
            format!("{} local header", layout.name()),
            ship_core::script::local_header(&plan),
        ));
        for h in &plan.hosts {
            for s in &h.scripts {
                texts.push((
                    format!("{} plan, {} segment {}", layout.name(), h.name, s.segment),
                    s.script.clone(),
                ));
            }
        }
    }
    // The shell in the code: every crate but the loader (which names them to skip them).
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in ["crates", "cargo-ship/src"] {
        for entry in walkdir::WalkDir::new(root.join(dir)) {
            let entry = entry.unwrap();
            let path = entry.path();
            let in_src = path.components().any(|c| c.as_os_str() == "src");
            if !in_src || path.extension().is_none_or(|e| e != "rs") || path.ends_with("load.rs") {
                continue;
            }
            let text = std::fs::read_to_string(path).unwrap();
            let text = text.split("#[cfg(test)]").next().unwrap_or(&text);
            // Code only: comments and docs show configuration (`SHIP_KEEP_RELEASES=3`).
            let code: Vec<&str> = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .filter(|l| !l.contains("environment variables"))
                .collect();
            texts.push((path.display().to_string(), code.join("\n")));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (name, text) in &texts {
        for var in variables_set_in(text) {
            assert!(
                is_task_variable(&var),
                "{name} sets {var}: add it to ship_core::protocol::TASK_VARIABLES, or a cargo \
                 ship run by a task reads it as configuration"
            );
            seen.insert(var);
        }
    }
    for var in [
        "SHIP_DEPLOY_TO",
        "SHIP_RELEASE_PATH",
        "SHIP_VAR_REGION",
        "SHIP_MAINTENANCE",
    ] {
        assert!(seen.contains(var), "the scan missed {var}: {seen:?}");
    }
}

/// Plans as cargo ship makes them still apply once checked against what their inputs give:
/// one made for some hosts (`--hosts`, `--exclude`), one of a rolling stage with a local
/// step, and one `promote --plan-only` made from the artifact live on another stage.
#[test]
fn saved_plans_of_a_selection_a_rolling_stage_and_a_promotion_apply() {
    let fleet = Fleet::start(3);
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nsource = {{ dir = \"app\" }}\n\
         ssh_config = \"{}\"\ncommand_timeout = \"60s\"\nkeep_releases = 3\n\
         [default.tasks.announce]\nrun = \"echo announced\"\nafter = \"switch\"\nlocal = true\n\
         [staging]\nhosts = [{}]\nrolling = 2\n[production]\nhosts = [\"h3\"]\n\
         deploy_to = \"/srv/prod\"\n",
        fleet.ssh_config().display(),
        fleet.toml_hosts(0..3)
    );
    let f = Fixture::new(&[("app/index.html", "v1\n"), ("Ship.toml", &ship)]);
    let apply = |args: &[&str]| f.ship_env(args, &[("USER", "tester")]);

    // A selection.
    ok(&f.ship(&[
        "plan",
        "staging",
        "--release-id",
        "20261101000001",
        "--hosts",
        "h*",
        "--exclude",
        "h3",
    ]));
    ok(&apply(&["apply"]));
    assert_eq!(
        fleet.readlink("h1", "/srv/app/current"),
        "/srv/app/releases/20261101000001"
    );
    assert!(!fleet.try_sh("h3", "test -e /srv/app/current").0);

    // The whole rolling stage (2 batches), by its file.
    ok(&f.ship(&["plan", "staging", "--release-id", "20261101000002"]));
    ok(&apply(&["apply", "target/ship/staging.plan.json"]));
    for h in ["h1", "h2", "h3"] {
        assert_eq!(
            fleet.readlink(h, "/srv/app/current"),
            "/srv/app/releases/20261101000002",
            "{h}"
        );
    }

    // A promotion made with --plan-only, applied afterwards; edited, it is refused.
    f.write("app/index.html", "v2\n");
    ok(&f.ship(&["promote", "staging", "production", "--plan-only"]));
    let saved = std::fs::read_to_string(f.join("target/ship/production.plan.json")).unwrap();
    let mut edited = ship_core::Plan::from_json(&saved).unwrap();
    edited.hosts[0].scripts[0]
        .script
        .push_str("\ntouch /srv/pwned\n");
    std::fs::write(
        f.join("target/ship/production.plan.json"),
        edited.sealed().to_json(),
    )
    .unwrap();
    let out = apply(&["apply", "target/ship/production.plan.json"]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("host h3, segment 0"), "{}", out.stderr);
    assert!(!fleet.try_sh("h3", "test -e /srv/pwned").0);
    std::fs::write(f.join("target/ship/production.plan.json"), &saved).unwrap();
    ok(&apply(&["apply", "target/ship/production.plan.json"]));
    assert_eq!(fleet.read("h3", "/srv/prod/current/index.html"), "v1\n");
}
