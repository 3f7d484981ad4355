//! Configuration: the merge order of the layers, and every configuration error naming its
//! file, key and the valid choices, with exit code 2.

use ship_tests::Fixture;

const BASE: &str =
    "[default]\napp = \"demo\"\ndeploy_to = \"/srv/demo\"\nsource = { dir = \"app\" }\n";

fn project(ship_toml: &str) -> Fixture {
    Fixture::new(&[("app/index.html", "hi\n"), ("Ship.toml", ship_toml)])
}

/// Runs `plan` and returns (exit code, stderr).
fn plan_error(f: &Fixture, args: &[&str]) -> (i32, String) {
    let mut argv = vec!["plan"];
    argv.extend_from_slice(args);
    let out = f.ship(&argv);
    (out.code, out.stderr)
}

fn check_error(ship_toml: &str, stage: &str, expected: &[&str]) {
    let f = project(ship_toml);
    let (code, err) = plan_error(&f, &[stage, "--release-id", "20261122235800"]);
    assert_eq!(code, 2, "exit code for:\n{ship_toml}\n{err}");
    for e in expected {
        assert!(err.contains(e), "expected {e:?} in:\n{err}");
    }
}

#[test]
fn configuration_errors_name_the_file_the_key_and_the_choices() {
    // An unknown key: the line, the key, and the valid key it may be.
    check_error(
        &format!("{BASE}kep_releases = 3\n[production]\nhosts = [\"a\"]\n"),
        "production",
        &[
            "--> Ship.toml:5:1",
            "unknown key `kep_releases` in `[default]`",
            "help: did you mean `keep_releases`?",
        ],
    );
    // An unknown key like no valid one: the valid keys.
    check_error(
        &format!("{BASE}colour = 3\n[production]\nhosts = [\"a\"]\n"),
        "production",
        &[
            "--> Ship.toml:5:1",
            "unknown key `colour` in `[default]`",
            "note: valid keys here: `app`, `deploy_to`",
            "`python` and `node`",
        ],
    );
    // An unknown key in a stage's role.
    check_error(
        &format!("{BASE}[production.roles.web]\nhosts = [\"a\"]\nlinked_file = [\"x\"]\n"),
        "production",
        &[
            "--> Ship.toml:7:1",
            "unknown key `linked_file` in `[production.roles.web]`",
            "did you mean `linked_files`?",
        ],
    );
    // A wrong type.
    check_error(
        &format!("{BASE}[production]\nhosts = [\"a\"]\nkeep_releases = \"five\"\n"),
        "production",
        &[
            "--> Ship.toml:7:17",
            "`production.keep_releases`: expected a whole number, found string \"five\"",
        ],
    );
    // An unknown layout: the choices.
    check_error(
        &format!("{BASE}layout = \"blue-green\"\n[production]\nhosts = [\"a\"]\n"),
        "production",
        &[
            "--> Ship.toml:5:10",
            "`default.layout`: unknown layout `blue-green`",
            "layouts: `timestamp`, `version`, `ab` and `single`",
        ],
    );
    // An unknown stage: the stages there are.
    check_error(
        &format!("{BASE}[staging]\nhosts = [\"a\"]\n[production]\nhosts = [\"b\"]\n"),
        "prod",
        &[
            "unknown stage `prod`",
            "note: stages of Ship.toml: `staging` and `production`",
        ],
    );
    // An unknown role in a task: the roles there are.
    check_error(
        &format!(
            "{BASE}[default.tasks.migrate]\nrun = \"true\"\nafter = \"install\"\nroles = [\"db\"]\n\
             [production.roles.web]\nhosts = [\"a\"]\n[production.roles.worker]\nhosts = [\"b\"]\n"
        ),
        "production",
        &[
            "--> Ship.toml:8:10",
            "`default.tasks.migrate.roles`: unknown role `db`",
            "roles of stage `production`: `web` and `worker`",
        ],
    );
    // An unknown hook target: the phases and tasks there are.
    check_error(
        &format!(
            "{BASE}[default.tasks.t]\nrun = \"true\"\nafter = \"instal\"\n[production]\nhosts = [\"a\"]\n"
        ),
        "production",
        &[
            "`default.tasks.t.after`: unknown phase or task `instal`",
            "--> Ship.toml:7:9",
            "help: did you mean `install`?",
        ],
    );
    // One like none: the phases and tasks there are.
    check_error(
        &format!(
            "{BASE}[default.tasks.t]\nrun = \"true\"\nafter = \"deploy\"\n[production]\nhosts = [\"a\"]\n"
        ),
        "production",
        &[
            "unknown phase or task `deploy`",
            "note: phases and tasks: `build`, `lock`",
            "`switch`",
        ],
    );
    // A source with two kinds.
    check_error(
        &format!(
            "{BASE}[production]\nhosts = [\"a\"]\nsource = {{ git = \"HEAD\", dir = \"x\" }}\n"
        ),
        "production",
        &[
            "`production.source`: expected exactly one of",
            "--> Ship.toml:7:10",
        ],
    );
    // A linked file escaping shared/.
    check_error(
        &format!("{BASE}linked_files = [\"../../etc/passwd\"]\n[production]\nhosts = [\"a\"]\n"),
        "production",
        &["--> Ship.toml:5:17", "`default.linked_files`", "`..`"],
    );
    // Shell metacharacters where a name is expected, an absolute linked file, a host with a space.
    check_error(
        "[default]\napp = \"web;$(id)\"\ndeploy_to = \"/srv/x\"\n[production]\nhosts = [\"a\"]\n",
        "production",
        &["--> Ship.toml:2:7", "`default.app`", "expected letters"],
    );
    check_error(
        &format!("{BASE}linked_files = [\"/etc/passwd\"]\n[production]\nhosts = [\"a\"]\n"),
        "production",
        &["linked_files", "absolute path"],
    );
    check_error(
        &format!("{BASE}[production]\nhosts = [\"web1 ; rm -rf /\"]\n"),
        "production",
        &["production.hosts", "whitespace"],
    );
    // A relative deploy_to.
    check_error(
        "[default]\napp = \"demo\"\ndeploy_to = \"srv/demo\"\n[production]\nhosts = [\"a\"]\n",
        "production",
        &["--> Ship.toml:3:13", "`default.deploy_to`", "absolute"],
    );
    // No hosts.
    check_error(
        &format!("{BASE}[production]\nkeep_releases = 2\n"),
        "production",
        &["no hosts"],
    );
    // A host that ssh would read as an option.
    check_error(
        &format!("{BASE}[production]\nhosts = [\"-oProxyCommand=evil\"]\n"),
        "production",
        &["production.hosts", "starts with `-`"],
    );
    // A syntax error: the line and column from the TOML parser.
    check_error(
        "[default]\napp = \n",
        "production",
        &[
            "error: string values must be quoted",
            "--> Ship.toml:2:7",
            "2 | app = \n  |       ^\n",
        ],
    );
    // An environment variable with a wrong value names the variable.
    let f = project(&format!("{BASE}[production]\nhosts = [\"a\"]\n"));
    let out = f.ship_env(
        &["plan", "production", "--release-id", "20261122235800"],
        &[("SHIP_KEEP_RELEASES", "many")],
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("environment variable SHIP_KEEP_RELEASES"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("keep_releases"), "{}", out.stderr);
}

#[test]
fn a_missing_ship_toml_says_where_and_what_to_do() {
    let f = Fixture::new(&[("app/index.html", "hi\n")]);
    let (code, err) = plan_error(&f, &["production"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no Ship.toml found at [project]/Ship.toml"),
        "{err}"
    );
    assert!(err.contains("cargo ship init"), "{err}");
}

#[test]
fn a_dependency_cycle_names_the_tasks_in_it() {
    let f = project(&format!(
        "{BASE}[default.tasks.a]\nrun = \"true\"\nafter = \"b\"\n\
         [default.tasks.b]\nrun = \"true\"\nafter = \"c\"\n\
         [default.tasks.c]\nrun = \"true\"\nafter = \"a\"\n\
         [production]\nhosts = [\"h\"]\n"
    ));
    let (code, err) = plan_error(&f, &["production", "--release-id", "20261122235800"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("dependency cycle: a → c → b → a"), "{err}");

    // A cycle through the phases: before install and after switch at once.
    let f = project(&format!(
        "{BASE}[default.tasks.odd]\nrun = \"true\"\nbefore = \"install\"\nafter = \"switch\"\n\
         [production]\nhosts = [\"h\"]\n"
    ));
    let (code, err) = plan_error(&f, &["production", "--release-id", "20261122235800"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("dependency cycle") && err.contains("odd"),
        "{err}"
    );
    assert!(
        err.contains("phase install") && err.contains("phase switch"),
        "{err}"
    );
}

#[test]
fn bad_flags_are_usage_errors() {
    let f = project(&format!("{BASE}[production]\nhosts = [\"h\"]\n"));
    let (code, err) = plan_error(&f, &["production", "--release-id", "../../etc"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--release-id") && err.contains("`..`"),
        "{err}"
    );
    let (code, err) = plan_error(&f, &["production", "--release-id", "2026"]);
    assert_eq!(code, 2);
    assert!(err.contains("14 digits"), "{err}");
    let (code, err) = plan_error(&f, &["production", "--set", "keep_releases"]);
    assert_eq!(code, 2);
    assert!(err.contains("KEY=VALUE"), "{err}");
    let out = f.ship(&["plan"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("<STAGE>"), "{}", out.stderr);
}

/// keep_releases as each layer sets it, read back from the saved plan.
fn keep_releases(f: &Fixture, env: &[(&str, &str)], flags: &[&str]) -> u64 {
    let mut args = vec![
        "plan",
        "production",
        "--release-id",
        "20261122235800",
        "--format",
        "json",
    ];
    args.extend_from_slice(flags);
    let out = f.ship_env(&args, env);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    plan["keep_releases"].as_u64().unwrap()
}

#[test]
fn layers_merge_in_order_defaults_metadata_default_stage_env_flags() {
    let cargo = |metadata: &str| {
        format!(
            "[package]\nname = \"demo\"\nversion = \"0.3.1\"\nedition = \"2021\"\n\
             [workspace]\n{metadata}"
        )
    };
    let base = format!("{BASE}[production]\nhosts = [\"h\"]\n");
    let f = Fixture::new(&[
        ("app/index.html", "hi\n"),
        ("src/main.rs", "fn main() {}\n"),
        ("Cargo.toml", &cargo("")),
        ("Ship.toml", &base),
    ]);
    assert_eq!(keep_releases(&f, &[], &[]), 5, "built-in default");
    f.write(
        "Cargo.toml",
        &cargo("[workspace.metadata.ship]\nkeep_releases = 6\n"),
    );
    assert_eq!(
        keep_releases(&f, &[], &[]),
        6,
        "Cargo.toml metadata over defaults"
    );
    f.write(
        "Ship.toml",
        &format!("{BASE}keep_releases = 7\n[production]\nhosts = [\"h\"]\n"),
    );
    assert_eq!(
        keep_releases(&f, &[], &[]),
        7,
        "Ship.toml [default] over metadata"
    );
    f.write(
        "Ship.toml",
        &format!("{BASE}keep_releases = 7\n[production]\nhosts = [\"h\"]\nkeep_releases = 8\n"),
    );
    assert_eq!(keep_releases(&f, &[], &[]), 8, "the stage over [default]");
    let env = [("SHIP_KEEP_RELEASES", "9")];
    assert_eq!(keep_releases(&f, &env, &[]), 9, "SHIP_* over the stage");
    // A CI system's own SHIP_* variables are not configuration: they are not read.
    let ci = [
        ("SHIP_KEEP_RELEASES", "9"),
        ("SHIP_TOKEN", "abc"),
        ("SHIP_IT", "yes"),
    ];
    assert_eq!(
        keep_releases(&f, &ci, &[]),
        9,
        "SHIP_TOKEN and SHIP_IT are ignored"
    );
    assert_eq!(
        keep_releases(&f, &env, &["--set", "keep_releases=10"]),
        10,
        "flags over SHIP_*"
    );

    // Found from any directory of the workspace, and with --manifest-path.
    std::fs::create_dir_all(f.join("src/deep")).unwrap();
    let mut cx = cargo_ship::Context::new(
        &f.join("src/deep"),
        [
            "cargo-ship",
            "ship",
            "plan",
            "production",
            "--release-id",
            "20261122235800",
        ],
    );
    cx.env = vec![("PATH".into(), std::env::var("PATH").unwrap())];
    assert_eq!(cargo_ship::main_with(&mut cx), 0, "{}", cx.stderr_text());
    let elsewhere = tempfile::tempdir().unwrap();
    let manifest = f.join("Cargo.toml");
    let mut cx = cargo_ship::Context::new(
        elsewhere.path(),
        [
            "cargo-ship",
            "ship",
            "--manifest-path",
            manifest.to_str().unwrap(),
            "plan",
            "production",
            "--release-id",
            "20261122235800",
        ],
    );
    cx.env = vec![("PATH".into(), std::env::var("PATH").unwrap())];
    assert_eq!(cargo_ship::main_with(&mut cx), 0, "{}", cx.stderr_text());

    // The version layout reads the version from Cargo.toml; --version wins over it.
    f.write(
        "Ship.toml",
        &format!("{BASE}layout = \"version\"\n[production]\nhosts = [\"h\"]\n"),
    );
    let out = f.ship(&["plan", "production", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("\"release\": \"0.3.1\""),
        "{}",
        out.stdout
    );
    let out = f.ship(&[
        "plan",
        "production",
        "--format",
        "json",
        "--version",
        "2.0.0",
    ]);
    assert!(
        out.stdout.contains("\"release\": \"2.0.0\""),
        "{}",
        out.stdout
    );
}

#[test]
fn a_stage_source_replaces_the_default_source() {
    let f = Fixture::new(&[
        ("app/index.html", "hi\n"),
        ("dist/index.html", "built\n"),
        (
            "Ship.toml",
            &format!("{BASE}[production]\nhosts = [\"h\"]\nsource = {{ dir = \"dist\" }}\n"),
        ),
    ]);
    let out = f.ship(&[
        "plan",
        "production",
        "--release-id",
        "20261122235800",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("\"source\": \"dir dist\""),
        "{}",
        out.stdout
    );
}

#[test]
fn a_hook_to_a_misspelt_adapter_task_names_its_line() {
    let f = ship_tests::Fixture::new(&[
        ("requirements.txt", "\n"),
        (
            "Ship.toml",
            "[default]\napp = \"a\"\ndeploy_to = \"/srv/a\"\nsource = { dir = \".\" }\n\
             [default.python]\nwheelhouse = false\n[default.python.django]\nmigrate = true\n\
             [default.tasks.backup]\nrun = \"true\"\nbefore = \"django.migrat\"\n\
             [staging]\nhosts = [\"h1\"]\n",
        ),
    ]);
    let out = f.ship(&["plan", "staging"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("--> Ship.toml:11:10")
            && out.stderr.contains("`default.tasks.backup.before`")
            && out.stderr.contains("did you mean `django.migrate`?"),
        "{}",
        out.stderr
    );
}

/// A [default] task for a role one stage lacks runs where the role is, and the plan says
/// where it was skipped; a role no stage has is still a mistake, named.
#[test]
fn a_default_task_for_a_role_a_stage_lacks_is_skipped_there_and_said() {
    let toml = format!(
        "{BASE}[default.tasks.restart-worker]\nrun = \"echo restart\"\nafter = \"switch\"\nroles = [\"worker\"]\n\
         [default.tasks.after-worker]\nrun = \"echo after\"\nafter = \"restart-worker\"\n\
         [default.tasks.both]\nrun = \"echo both\"\nafter = \"switch\"\nroles = [\"web\", \"worker\"]\n\
         [staging.roles.web]\nhosts = [\"a\"]\n\
         [production.roles.web]\nhosts = [\"a\"]\n[production.roles.worker]\nhosts = [\"b\"]\n"
    );
    let f = project(&toml);
    let staging = f.ship(&["plan", "staging", "--release-id", "20261122235800"]);
    assert_eq!(staging.code, 0, "{}", staging.stderr);
    for said in [
        "skipped    task `restart-worker` does not run: stage `staging` has no role `worker`",
        "skipped    task `after-worker` does not run: it is hooked to `restart-worker`",
        "skipped    task `both` runs on `web` only: stage `staging` has no role `worker`",
    ] {
        assert!(staging.stdout.contains(said), "{said}\n{}", staging.stdout);
    }
    assert!(
        !staging.stdout.contains("echo restart"),
        "{}",
        staging.stdout
    );
    let production = f.ship(&["plan", "production", "--release-id", "20261122235800"]);
    assert_eq!(production.code, 0, "{}", production.stderr);
    assert!(
        !production.stdout.contains("skipped"),
        "{}",
        production.stdout
    );
    assert!(
        production.stdout.contains("restart-worker"),
        "{}",
        production.stdout
    );

    // A role no stage has: an error that says so.
    check_error(
        &toml.replace("roles = [\"worker\"]", "roles = [\"wroker\"]"),
        "staging",
        &[
            "`default.tasks.restart-worker.roles`",
            "unknown role `wroker`: no stage has it",
        ],
    );
}

/// `cargo ship tasks` without a stage takes the first stage of the file, as documented
/// (not the first by name); and the README's example plans its `staging`, which has no
/// roles, with its `[default]` task for `web` skipped and said.
#[test]
fn commands_without_a_stage_take_the_files_first_and_the_example_stages_plan() {
    let f = project(&format!(
        "{BASE}[zeta]\nhosts = [\"z1\"]\n[alpha]\nhosts = [\"a1\"]\n"
    ));
    let out = f.ship(&["tasks"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("zeta"), "{}", out.stdout);
    assert!(!out.stdout.contains("alpha"), "{}", out.stdout);

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/webxample");
    let example = Fixture::copy_of(&root, &[]);
    let out = example.ship(&["plan", "staging", "--release-id", "20261122235800"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("skipped    task `migrate` does not run: stage `staging` has no role `web`"),
        "{}",
        out.stdout
    );
}

/// A git source naming no commit says so, with the ref, not `failed: ` and nothing.
#[test]
fn a_ref_that_is_not_a_commit_is_named() {
    let f = Fixture::new(&[
        ("app/index.html", "hi\n"),
        (
            "Ship.toml",
            "[default]\napp = \"demo\"\ndeploy_to = \"/srv/demo\"\n[staging]\nhosts = [\"a\"]\n",
        ),
    ]);
    f.commit("init");
    let (code, err) = plan_error(&f, &["staging", "--set", "source.git=v9.9"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("`v9.9` is not a commit of this repository"),
        "{err}"
    );
}

/// `source = { dir = "." }` (what `init` writes outside git) never packs cargo ship's own
/// output: planning twice gives the same artifact, not one holding the previous ones.
#[test]
fn a_dir_source_of_the_project_root_does_not_pack_target() {
    let f = Fixture::new(&[
        ("index.html", "hi\n"),
        (
            "Ship.toml",
            "[default]\napp = \"demo\"\ndeploy_to = \"/srv/demo\"\nsource = { dir = \".\" }\n\
             [staging]\nhosts = [\"a\"]\n",
        ),
    ]);
    let digest = |id: &str| {
        let out = f.ship(&["plan", "staging", "--release-id", id, "--format", "json"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        plan["artifact"]["digest"].as_str().unwrap().to_owned()
    };
    let first = digest("20261122235800");
    assert_eq!(digest("20261122235801"), first, "target/ship was packed");
}

/// A host name ssh itself would refuse (`;`, `#`, a backquote, ...) is refused at plan.
#[test]
fn host_names_ssh_refuses_are_refused_at_plan() {
    for host in ["web1;id", "web1#x", "web1`id`", "web1|x"] {
        let toml = format!("{BASE}[staging]\nhosts = [{host:?}]\n");
        let f = project(&toml);
        let (code, err) = plan_error(&f, &["staging", "--release-id", "20261122235800"]);
        assert_eq!(code, 2, "{host}: {err}");
        assert!(err.contains("staging.hosts"), "{host}: {err}");
    }
}
