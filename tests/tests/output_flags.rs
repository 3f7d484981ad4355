//! cargo's output conventions: the global `-q`, `-v`/`-vv` and `--color`, before or after
//! the command, `CARGO_TERM_COLOR` (and `CARGO_TERM_QUIET`/`CARGO_TERM_VERBOSE`), colour
//! only when asked or on a terminal and never in JSON, and the `SHIP_*` variables that are
//! ignored named under `-v`. The runs here are piped (captured), as in CI.

use ship_tests::{Fixture, Fleet, Output};

const ESC: char = '\u{1b}';

fn project() -> Fixture {
    Fixture::new(&[
        ("app/index.html", "v1\n"),
        (
            "Ship.toml",
            "[default]\napp = \"demo\"\ndeploy_to = \"/srv/demo\"\nsource = { dir = \"app\" }\n\
             [staging]\nhosts = [\"web1\"]\n",
        ),
    ])
}

fn coloured(text: &str) -> bool {
    text.contains(ESC)
}

#[test]
fn colour_follows_the_flag_then_cargo_term_color_and_a_piped_run_has_none_by_default() {
    let f = project();
    // An unknown stage: an error, whose `error:` is styled when colour is on.
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["plan", "nowhere"];
        all.extend_from_slice(args);
        let out = f.ship_env(&all, env);
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(out.stderr.contains("unknown stage"), "{}", out.stderr);
        out
    };
    let always = run(&["--color", "always"], &[]);
    assert!(
        always
            .stderr
            .contains("\u{1b}[1;31merror\u{1b}[0m\u{1b}[1m: unknown stage"),
        "{:?}",
        always.stderr
    );
    assert!(!coloured(&run(&["--color", "never"], &[]).stderr));
    assert!(!coloured(&run(&[], &[]).stderr), "auto, piped: no colour");
    assert!(!coloured(&run(&["--color", "auto"], &[]).stderr));
    assert!(coloured(
        &run(&[], &[("CARGO_TERM_COLOR", "always")]).stderr
    ));
    assert!(!coloured(
        &run(&[], &[("CARGO_TERM_COLOR", "never")]).stderr
    ));
    // The flag wins over the variable.
    assert!(!coloured(
        &run(&["--color", "never"], &[("CARGO_TERM_COLOR", "always")]).stderr
    ));
    assert!(coloured(
        &run(&["--color", "always"], &[("CARGO_TERM_COLOR", "never")]).stderr
    ));
    // Before the command, as cargo takes it, too.
    let before = f.ship(&["--color", "always", "plan", "nowhere"]);
    assert!(coloured(&before.stderr), "{:?}", before.stderr);
    // A usage error clap reports follows the flag too.
    let usage = f.ship(&["plan", "--no-such-flag", "--color=always"]);
    assert_eq!(usage.code, 2);
    assert!(coloured(&usage.stderr), "{:?}", usage.stderr);
    let usage = f.ship(&["plan", "--no-such-flag"]);
    assert!(!coloured(&usage.stderr), "{:?}", usage.stderr);
    let bad = f.ship_env(&["plan", "staging"], &[("CARGO_TERM_COLOR", "sometimes")]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr
            .contains("CARGO_TERM_COLOR=sometimes: expected one of auto, always, never"),
        "{}",
        bad.stderr
    );
}

#[test]
fn quiet_keeps_the_result_and_drops_the_notes_before_or_after_the_command() {
    let f = project();
    let plain = f.ship(&["plan", "staging", "--release-id", "20261122235800"]);
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    assert!(plain.stderr.contains("saved:"), "{}", plain.stderr);
    for args in [
        &["-q", "plan", "staging", "--release-id", "20261122235800"][..],
        &[
            "plan",
            "staging",
            "--release-id",
            "20261122235800",
            "--quiet",
        ],
    ] {
        let quiet = f.ship(args);
        assert_eq!(quiet.code, 0, "{args:?}: {}", quiet.stderr);
        assert_eq!(quiet.stderr, "", "{args:?}");
        assert_eq!(
            quiet.stdout, plain.stdout,
            "{args:?}: the result is printed"
        );
    }
    let env = f.ship_env(
        &["plan", "staging", "--release-id", "20261122235800"],
        &[("CARGO_TERM_QUIET", "true")],
    );
    assert_eq!((env.code, env.stderr.as_str()), (0, ""));
    // An error is still said under -q, with its exit code.
    let error = f.ship(&["plan", "nowhere", "-q"]);
    assert_eq!(error.code, 2);
    assert!(
        error.stderr.contains("unknown stage `nowhere`"),
        "{}",
        error.stderr
    );
    // As cargo: -q and -v together are refused.
    let both = f.ship(&["-q", "plan", "staging", "-v"]);
    assert_eq!(both.code, 2);
    assert!(
        both.stderr
            .contains("cannot set both --verbose and --quiet"),
        "{}",
        both.stderr
    );
}

#[test]
fn verbose_names_the_ignored_ship_variables_and_is_silent_about_them_otherwise() {
    let f = project();
    let env = [
        ("SHIP_FOO", "1"),
        ("SHIP_KEEP_RELEASES", "4"),
        ("SHIP_HOST", "web9"),
    ];
    for args in [
        &["-v", "plan", "staging", "--release-id", "20261122235800"][..],
        &[
            "plan",
            "staging",
            "--release-id",
            "20261122235800",
            "--verbose",
        ],
    ] {
        let out = f.ship_env(args, &env);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr
                .contains("warning: ignoring the environment variable SHIP_FOO"),
            "{args:?}: {}",
            out.stderr
        );
        // A configuration key is read, not warned about; what cargo ship gives tasks is
        // neither read nor warned about.
        assert!(!out.stderr.contains("SHIP_KEEP_RELEASES"), "{}", out.stderr);
        assert!(!out.stderr.contains("SHIP_HOST"), "{}", out.stderr);
        assert!(
            out.stdout.contains("keep       4 releases"),
            "{}",
            out.stdout
        );
        // -v is plan's --verbose: each host's scripts.
        assert!(
            out.stdout.contains("# cargo ship: demo to staging"),
            "{}",
            out.stdout
        );
    }
    let quiet_about_it = f.ship_env(&["plan", "staging", "--release-id", "20261122235800"], &env);
    assert_eq!(quiet_about_it.code, 0, "{}", quiet_about_it.stderr);
    assert!(
        !quiet_about_it.stderr.contains("SHIP_FOO"),
        "{}",
        quiet_about_it.stderr
    );
    let from_env = f.ship_env(
        &["plan", "staging", "--release-id", "20261122235800"],
        &[("SHIP_FOO", "1"), ("CARGO_TERM_VERBOSE", "true")],
    );
    assert!(from_env.stderr.contains("SHIP_FOO"), "{}", from_env.stderr);
    // -vv also says where the project was found.
    let vv = f.ship(&["plan", "staging", "-vv", "--release-id", "20261122235800"]);
    assert_eq!(vv.code, 0, "{}", vv.stderr);
    assert!(
        vv.stderr
            .contains("note: project [project]/, configuration [project]/Ship.toml"),
        "{}",
        vv.stderr
    );
}

fn fleet_project(fleet: &Fleet) -> Fixture {
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nsource = {{ dir = \"app\" }}\n\
         ssh_config = \"{}\"\n[staging]\nhosts = [{}]\n\
         [staging.tasks.hello]\nafter = \"install\"\nrun = \"echo hello-from-the-host\"\n",
        fleet.ssh_config().display(),
        fleet.toml_hosts(0..2)
    );
    Fixture::new(&[("app/index.html", "v1\n"), ("Ship.toml", &ship)])
}

fn deploy(f: &Fixture, release: &str, flags: &[&str]) -> Output {
    let mut args = vec!["apply", "staging", "--release-id", release];
    args.extend_from_slice(flags);
    let out = f.ship_env(&args, &[("USER", "tester")]);
    assert_eq!(
        out.code, 0,
        "{flags:?}\nstdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    out
}

#[test]
fn a_deploy_on_real_hosts_is_coloured_only_when_asked_never_in_json_and_quiet_or_live_as_told() {
    let fleet = Fleet::start(2);
    let f = fleet_project(&fleet);

    // --color always, piped: the summary on stdout and the notes on stderr are styled.
    let always = deploy(&f, "20260101000001", &["--color", "always"]);
    assert!(coloured(&always.stdout), "{:?}", always.stdout);
    assert!(
        always.stdout.contains("\u{1b}[32mDeployed\u{1b}[0m demo"),
        "{:?}",
        always.stdout
    );
    assert!(coloured(&always.stderr), "{:?}", always.stderr);

    // Piped with no choice, or never: none anywhere.
    let auto = deploy(&f, "20260101000002", &[]);
    assert!(
        !coloured(&auto.stdout) && !coloured(&auto.stderr),
        "{auto:?}"
    );
    assert!(
        auto.stdout.contains("Deployed demo release 20260101000002"),
        "{}",
        auto.stdout
    );
    let never = deploy(&f, "20260101000003", &["--color=never"]);
    assert!(!coloured(&never.stdout) && !coloured(&never.stderr));

    // JSON is never coloured, even when colour is forced.
    let json = deploy(
        &f,
        "20260101000004",
        &["--format", "json", "--color", "always"],
    );
    assert!(!coloured(&json.stdout), "{:?}", json.stdout);
    for line in json.stdout.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }

    // -q: only the result; no notes, no live output.
    let quiet = deploy(&f, "20260101000005", &["-q"]);
    assert_eq!(quiet.stderr, "", "quiet");
    assert!(
        quiet
            .stdout
            .contains("Deployed demo release 20260101000005"),
        "{}",
        quiet.stdout
    );
    assert!(!quiet.stdout.contains("hello-from-the-host"));

    // -v (global, before the command): every host's output live; without it, not.
    assert!(
        !auto.stderr.contains("hello-from-the-host"),
        "{}",
        auto.stderr
    );
    let live = f.ship_env(
        &["-v", "apply", "staging", "--release-id", "20260101000006"],
        &[("USER", "tester")],
    );
    assert_eq!(live.code, 0, "{}", live.stderr);
    for host in ["h1", "h2"] {
        assert!(
            live.stderr
                .contains(&format!("{host} | hello-from-the-host")),
            "{}",
            live.stderr
        );
    }
}
