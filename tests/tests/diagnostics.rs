//! Configuration errors as rustc shows its own: the file's line with a caret under the key
//! or value at fault, and a did-you-mean when a valid name is close (the valid names when
//! none is). Each message is an insta snapshot of what `cargo ship` prints on stderr, with
//! exit code 2 (1 for the bad git ref, which is the artifact's failure).

use ship_tests::Fixture;

const BASE: &str =
    "[default]\napp = \"demo\"\ndeploy_to = \"/srv/demo\"\nsource = { dir = \"app\" }\n";

fn project(ship_toml: &str) -> Fixture {
    Fixture::new(&[("app/index.html", "hi\n"), ("Ship.toml", ship_toml)])
}

/// `cargo ship ARGS` in `f`, which must fail with `code`; its stderr.
fn fails(f: &Fixture, args: &[&str], code: i32) -> String {
    let out = f.ship(args);
    assert_eq!(out.code, code, "{args:?}:\n{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    out.stderr
}

fn plan_fails(ship_toml: &str, stage: &str) -> String {
    fails(&project(ship_toml), &["plan", stage], 2)
}

#[test]
fn a_misspelt_key_is_marked_with_the_key_it_may_be() {
    let err = plan_fails(
        &format!("{BASE}\n[production]\nhosts = [\"a\"]\nkeep_relases = 3\n"),
        "production",
    );
    insta::assert_snapshot!("misspelt_key", err);
    // Nested: in a role's table.
    let err = plan_fails(
        &format!("{BASE}[production.roles.web]\nhosts = [\"a\"]\nlinked_file = [\"x\"]\n"),
        "production",
    );
    insta::assert_snapshot!("misspelt_key_in_role", err);
}

#[test]
fn a_key_like_none_lists_the_valid_ones() {
    let err = plan_fails(
        &format!(
            "{BASE}[production]\nhosts = [\"a\"]\n[production.health]\nrun = \"true\"\nzzz = 1\n"
        ),
        "production",
    );
    insta::assert_snapshot!("unknown_key_listed", err);
}

#[test]
fn a_wrong_type_is_marked_under_the_value() {
    let err = plan_fails(
        &format!("{BASE}[production]\nhosts = [\"a\"]\nkeep_releases = \"three\"\n"),
        "production",
    );
    insta::assert_snapshot!("wrong_type", err);
    let err = plan_fails(
        &format!("{BASE}protected = \"yes\"\n[production]\nhosts = [\"a\"]\n"),
        "production",
    );
    insta::assert_snapshot!("wrong_type_bool", err);
}

#[test]
fn a_misspelt_adapter_table_is_a_misspelt_key() {
    let err = plan_fails(
        &format!("{BASE}[default.pyton]\nwheelhouse = false\n[production]\nhosts = [\"a\"]\n"),
        "production",
    );
    insta::assert_snapshot!("misspelt_adapter_table", err);
}

#[test]
fn a_bad_item_of_a_list_is_marked_alone() {
    let err = plan_fails(
        &format!("{BASE}[production]\nhosts = [\"web1\", \"web2 ; rm -rf /\"]\n"),
        "production",
    );
    insta::assert_snapshot!("bad_host_item", err);
}

#[test]
fn a_bad_value_is_marked_under_the_value() {
    let err = plan_fails(
        &format!("{BASE}layout = \"timestamps\"\n[production]\nhosts = [\"a\"]\n"),
        "production",
    );
    insta::assert_snapshot!("unknown_layout", err);
    let err = plan_fails(
        "[default]\napp = \"demo\"\ndeploy_to = \"srv/demo\"\n[production]\nhosts = [\"a\"]\n",
        "production",
    );
    insta::assert_snapshot!("relative_deploy_to", err);
    let err = plan_fails(
        &format!("{BASE}[production]\nhosts = [\"a\"]\nsource = {{ gti = \"HEAD\" }}\n"),
        "production",
    );
    insta::assert_snapshot!("unknown_source", err);
}

#[test]
fn an_unknown_stage_names_the_close_one() {
    let f = project(&format!(
        "{BASE}[staging]\nhosts = [\"a\"]\n[production]\nhosts = [\"b\"]\n"
    ));
    insta::assert_snapshot!("unknown_stage", fails(&f, &["plan", "prodution"], 2));
    insta::assert_snapshot!("unknown_stage_far", fails(&f, &["plan", "qa"], 2));
}

#[test]
fn an_unknown_role_names_the_close_one() {
    let toml = format!(
        "{BASE}[default.tasks.migrate]\nrun = \"true\"\nafter = \"install\"\nroles = [\"web\", \"wroker\"]\n\
         [production.roles.web]\nhosts = [\"a\"]\n[production.roles.worker]\nhosts = [\"b\"]\n"
    );
    insta::assert_snapshot!("unknown_role_in_task", plan_fails(&toml, "production"));

    let f = project(&toml.replace("\"wroker\"", "\"worker\""));
    insta::assert_snapshot!(
        "unknown_role_flag",
        fails(&f, &["plan", "production", "--roles", "wbe"], 2)
    );
    insta::assert_snapshot!(
        "unknown_role_flag_far",
        fails(&f, &["plan", "production", "--roles", "db"], 2)
    );
}

#[test]
fn an_unknown_hook_target_names_the_close_phase_or_task() {
    let toml = format!(
        "{BASE}[default.tasks.backup]\nrun = \"true\"\nafter = \"instal\"\n\
         [default.tasks.notify]\nrun = \"true\"\nafter = \"bakup\"\n[production]\nhosts = [\"a\"]\n"
    );
    insta::assert_snapshot!("unknown_phase", plan_fails(&toml, "production"));
    let toml = toml.replace("\"instal\"", "\"install\"");
    insta::assert_snapshot!("unknown_task", plan_fails(&toml, "production"));
}

#[test]
fn an_unknown_task_on_the_command_line_names_the_close_one() {
    let f = project(&format!(
        "{BASE}[default.tasks.migrate]\nrun = \"true\"\nafter = \"install\"\n\
         [default.tasks.restart]\nrun = \"true\"\nafter = \"switch\"\n[staging]\nhosts = [\"a\"]\n"
    ));
    insta::assert_snapshot!(
        "unknown_task_flag",
        fails(&f, &["task", "staging", "migrat"], 2)
    );
}

#[test]
fn an_unknown_host_names_the_close_one() {
    let f = project(&format!(
        "{BASE}[staging]\nhosts = [\"web1\", \"web2\", \"job1\"]\n"
    ));
    insta::assert_snapshot!(
        "unknown_host_ssh",
        fails(&f, &["ssh", "staging", "wbe1"], 2)
    );
}

fn python(extra: &str) -> Fixture {
    Fixture::new(&[
        ("requirements.txt", "\n"),
        (
            "Ship.toml",
            &format!(
                "[default]\napp = \"a\"\ndeploy_to = \"/srv/a\"\nsource = {{ dir = \".\" }}\n\
                 [default.python]\nwheelhouse = false\n{extra}\
                 [staging.roles.web]\nhosts = [\"h1\"]\n"
            ),
        ),
    ])
}

#[test]
fn an_adapters_table_is_said_the_same_way() {
    let f = python("requirement = \"requirements.txt\"\n");
    insta::assert_snapshot!("adapter_key", fails(&f, &["plan", "staging"], 2));
    let f = python("roles = [\"wbe\"]\n");
    insta::assert_snapshot!("adapter_role", fails(&f, &["plan", "staging"], 2));
    let f = python("[default.python.django]\nmigrate = \"yes\"\n");
    insta::assert_snapshot!("adapter_wrong_type", fails(&f, &["plan", "staging"], 2));
    let f = python(
        "[default.python.django]\nmigrate = true\n\
         [default.tasks.backup]\nrun = \"true\"\nbefore = \"django.migrat\"\n",
    );
    insta::assert_snapshot!("adapter_task_hook", fails(&f, &["plan", "staging"], 2));
}

#[test]
fn a_key_of_cargo_tomls_metadata_points_into_cargo_toml() {
    let f = Fixture::new(&[
        ("app/index.html", "hi\n"),
        ("src/main.rs", "fn main() {}\n"),
        (
            "Cargo.toml",
            "[package]\nname = \"demo\"\nversion = \"0.3.1\"\nedition = \"2021\"\n\
             [workspace]\n[workspace.metadata.ship]\nkeep_releses = 6\n",
        ),
        (
            "Ship.toml",
            &format!("{BASE}[production]\nhosts = [\"h\"]\n"),
        ),
    ]);
    insta::assert_snapshot!("cargo_metadata_key", fails(&f, &["plan", "production"], 2));
    f.write(
        "Cargo.toml",
        "[package]\nname = \"demo\"\nversion = \"0.3.1\"\nedition = \"2021\"\n\
         [workspace]\n[workspace.metadata.ship]\nparallel = \"4\"\n",
    );
    insta::assert_snapshot!("cargo_metadata_type", fails(&f, &["plan", "production"], 2));
}

#[test]
fn values_from_the_environment_and_flags_name_where_they_came_from() {
    let f = project(&format!("{BASE}[production]\nhosts = [\"a\"]\n"));
    let out = f.ship_env(&["plan", "production"], &[("SHIP_PARALLEL", "many")]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    insta::assert_snapshot!("environment_type", out.stderr);
    insta::assert_snapshot!(
        "flag_key",
        fails(
            &f,
            &["plan", "production", "--set", "roles.web.hostz=[\"a\"]"],
            2
        )
    );
}

#[test]
fn a_toml_syntax_error_is_marked_where_the_parser_stopped() {
    insta::assert_snapshot!(
        "toml_syntax",
        plan_fails(
            &format!("{BASE}[production]\nhosts = [\"a\"\n"),
            "production"
        )
    );
}

/// A git source naming no commit says which ref, never `failed: ` and nothing.
#[test]
fn a_bad_git_ref_is_named() {
    let f = Fixture::new(&[
        ("app/index.html", "hi\n"),
        (
            "Ship.toml",
            "[default]\napp = \"demo\"\ndeploy_to = \"/srv/demo\"\n[staging]\nhosts = [\"a\"]\n",
        ),
    ]);
    f.commit("init");
    let err = fails(&f, &["plan", "staging", "--ref", "v9.9"], 1);
    assert!(!err.contains("failed: \n"), "{err}");
    insta::assert_snapshot!("bad_git_ref", err);
}

/// The same error, with `--color always`: styled, the text unchanged.
#[test]
fn color_styles_the_same_text() {
    let f = project(&format!(
        "{BASE}[production]\nhosts = [\"a\"]\nkeep_relases = 3\n"
    ));
    let plain = fails(&f, &["plan", "production"], 2);
    let colored = fails(&f, &["--color", "always", "plan", "production"], 2);
    assert!(colored.contains("\x1b[1;31merror\x1b[0m"), "{colored}");
    let stripped = regex_lite_strip(&colored);
    assert_eq!(stripped, plain);
}

/// `colored` without its ANSI escapes (`ESC [ … m`).
fn regex_lite_strip(colored: &str) -> String {
    let mut out = String::new();
    let mut chars = colored.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What a user wrote where a secret or a credential goes is never quoted back: a secret's
/// value written in Ship.toml (bare, or beside a misspelt form), a URL's password, path or
/// query in the line an error shows, or in the plan.
#[test]
fn nothing_secret_is_quoted_in_an_error_or_a_plan() {
    let secret = "s3cr3t-literal-pw";
    for how in [
        format!("\"{secret}\""),
        format!("{{ env = \"DBPW\", defualt = \"{secret}\" }}"),
        format!("{{ evn = \"{secret}\" }}"),
    ] {
        let err = plan_fails(
            &format!("{BASE}[production]\nhosts = [\"a\"]\n[production.secrets]\nDB = {how}\n"),
            "production",
        );
        assert!(!err.contains(secret), "{err}");
        assert!(err.contains("must say where its value is read"), "{err}");
    }
    let err = plan_fails(
        &format!(
            "{BASE}[production]\nhosts = [\"a\"]\n[production.secrets]\nDB = {{ evn = \"X\" }}\n"
        ),
        "production",
    );
    insta::assert_snapshot!("secret_misspelt_form", err);
    // A webhook's token is in its path; an error on its line shows neither path nor query.
    let err = plan_fails(
        &format!(
            "{BASE}[production]\nhosts = [\"a\"]\nnotify = {{ url = \"https://hooks.example.com/services/T0K3N?sig=QUERYSECRET\", timeout = \"ten\" }}\n"
        ),
        "production",
    );
    assert!(
        !err.contains("T0K3N") && !err.contains("QUERYSECRET"),
        "{err}"
    );
    // An archive URL's password and query are in neither the plan's text nor its json.
    let f = project(&format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/demo\"\n\
         source = {{ archive = \"http://u:PASSWORD@127.0.0.1:9/a.tar.gz?token=QUERYSECRET\", sha256 = \"{}\" }}\n\
         [production]\nhosts = [\"a\"]\n",
        "0".repeat(64)
    ));
    let out = f.ship(&["plan", "production"]);
    assert_ne!(out.code, 0);
    for text in [&out.stdout, &out.stderr] {
        assert!(
            !text.contains("PASSWORD") && !text.contains("QUERYSECRET"),
            "{text}"
        );
    }
}

/// A table named like a misspelt `[default]` is not taken for a stage (its settings would
/// apply to no other stage, without a word).
#[test]
fn a_misspelt_default_table_is_not_a_stage() {
    let err = plan_fails(
        &format!("{BASE}[production]\nhosts = [\"a\"]\n[defualt.tasks.restart]\nrun = \"true\"\n"),
        "production",
    );
    insta::assert_snapshot!("misspelt_default", err);
}
