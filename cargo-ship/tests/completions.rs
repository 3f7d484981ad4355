//! Shell completion as a user gets it: the script `cargo ship completions bash` prints,
//! sourced into a real bash, its function called as bash's completion calls it (COMP_WORDS,
//! COMP_CWORD), COMPREPLY read back, in a project whose Ship.toml defines the stages.

use std::path::Path;
use std::process::Command;

/// Stages not in alphabetical order: completion gives them in file order.
const SHIP_TOML: &str = r#"[default]
app = "demo"
deploy_to = "/srv/demo"
source = { dir = "." }

[staging]
hosts = ["web1"]

[production]
hosts = ["web2"]

[beta]
hosts = ["web3"]
"#;

/// A project directory with that Ship.toml.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Ship.toml"), SHIP_TOML).unwrap();
    dir
}

/// Runs `body` in a bash (no profile, no rc) in `dir`, with the completion script sourced
/// and cargo-ship on the PATH; returns stdout.
fn bash(dir: &Path, body: &str) -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_cargo-ship"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = format!(
        "set -u\nsource <(cargo-ship completions bash) || exit 9\n\
         complete_line() {{ COMPREPLY=(); COMP_WORDS=(\"$@\"); COMP_CWORD=$(( $# - 1 )); \
         \"$FUNC\" \"$1\" \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"; echo '--'; }}\n{body}"
    );
    let out = Command::new("bash")
        .args(["--noprofile", "--norc", "-c", &script])
        .current_dir(dir)
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The COMPREPLY of each `complete_line` call, in order.
fn replies(out: &str) -> Vec<Vec<String>> {
    out.split_terminator("--\n")
        .map(|r| {
            r.lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

#[test]
fn bash_completes_cargo_ship_commands_flags_and_stage_names_in_file_order() {
    let dir = project();
    let out = bash(
        dir.path(),
        "FUNC=$(complete -p cargo | sed -n 's/.*-F \\([^ ]*\\) cargo$/\\1/p')\n\
         [ -n \"$FUNC\" ] || exit 8\n\
         complete_line cargo ship pl\n\
         complete_line cargo ship plan ''\n\
         complete_line cargo ship apply ''\n\
         complete_line cargo ship promote staging pro\n\
         complete_line cargo ship plan beta --form\n\
         complete_line cargo ship plan beta --format ''\n\
         complete_line cargo ship --col\n\
         complete_line cargo ship -v rollback ''\n\
         complete_line cargo ship plan beta --format = j\n\
         complete_line cargo ship --color =\n",
    );
    let r = replies(&out);
    assert_eq!(r.len(), 10, "{out}");
    assert_eq!(r[0], ["plan"], "cargo ship pl<TAB>: {out}");
    assert_eq!(
        r[1],
        ["staging", "production", "beta"],
        "cargo ship plan <TAB>: {out}"
    );
    assert_eq!(r[2], ["staging", "production", "beta"], "{out}");
    assert_eq!(r[3], ["production"], "{out}");
    assert_eq!(r[4], ["--format"], "{out}");
    assert_eq!(r[5], ["text", "json", "dot", "mermaid"], "{out}");
    assert_eq!(r[6], ["--color"], "{out}");
    assert_eq!(
        r[7],
        ["staging", "production", "beta"],
        "a global flag before the command: {out}"
    );
    // `--format=j`, as bash splits it at `=`: bash replaces the word `j`, then `=`.
    assert_eq!(r[8], ["json"], "{out}");
    assert_eq!(r[9], ["=auto", "=always", "=never"], "{out}");
}

#[test]
fn bash_hands_other_cargo_commands_to_cargos_own_completion() {
    let dir = project();
    // cargo's completion (here a stand-in _cargo, as rustup's defines it) keeps working for
    // every line that is not `cargo ship …`.
    let out = bash(
        dir.path(),
        "_cargo() { COMPREPLY=(from-cargo \"${COMP_WORDS[COMP_CWORD]}\"); }\n\
         FUNC=$(complete -p cargo | sed -n 's/.*-F \\([^ ]*\\) cargo$/\\1/p')\n\
         complete_line cargo bu\n\
         complete_line cargo sh\n\
         complete_line cargo ship pro\n\
         FUNC=$(complete -p cargo-ship | sed -n 's/.*-F \\([^ ]*\\) cargo-ship$/\\1/p')\n\
         complete_line cargo-ship pl\n\
         complete_line cargo-ship tasks ''\n",
    );
    let r = replies(&out);
    assert_eq!(r.len(), 5, "{out}");
    assert_eq!(r[0], ["from-cargo", "bu"], "{out}");
    assert_eq!(
        r[1],
        ["from-cargo", "sh"],
        "the subcommand's own name is cargo's to complete: {out}"
    );
    assert_eq!(r[2], ["promote"], "{out}");
    assert_eq!(r[3], ["plan"], "cargo-ship pl<TAB>: {out}");
    assert_eq!(r[4], ["staging", "production", "beta"], "{out}");
}

#[test]
fn stages_come_from_the_ship_toml_above_the_current_directory_and_none_without_one() {
    let dir = project();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let out = bash(
        &dir.path().join("sub"),
        "FUNC=_cargo_ship_cargo\ncomplete_line cargo ship check ''\n",
    );
    assert_eq!(replies(&out)[0], ["staging", "production", "beta"], "{out}");
    let empty = tempfile::tempdir().unwrap();
    let out = bash(
        empty.path(),
        "FUNC=_cargo_ship_cargo\ncomplete_line cargo ship check ''\ncomplete_line cargo ship ch\n",
    );
    let r = replies(&out);
    assert_eq!(r[0], Vec::<String>::new(), "{out}");
    assert_eq!(r[1], ["check"], "{out}");
}

#[test]
fn zsh_and_fish_scripts_wrap_cargo_and_ask_cargo_ship_for_the_words() {
    let dir = project();
    let bin = env!("CARGO_BIN_EXE_cargo-ship");
    let script = |shell: &str| {
        let out = Command::new(bin)
            .args(["completions", shell])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let zsh = script("zsh");
    assert!(zsh.starts_with("#compdef cargo cargo-ship\n"), "{zsh}");
    assert!(zsh.contains("_cargo \"$@\""), "{zsh}");
    let fish = script("fish");
    assert!(
        fish.contains("complete -c cargo -n '__fish_seen_subcommand_from ship'"),
        "{fish}"
    );
    // What they print, per shell: zsh `value:help` (a `:` escaped), fish `value<TAB>help`.
    let words = |shell: &str, args: &[&str]| {
        let out = Command::new(bin)
            .args(["__complete", "--shell", shell, "--index"])
            .arg((args.len() - 1).to_string())
            .arg("--")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        words("fish", &["cargo", "ship", "plan", ""]),
        "staging\nproduction\nbeta\n"
    );
    let zsh_words = words("zsh", &["cargo", "ship", "rel"]);
    assert!(
        zsh_words.starts_with("releases:Show each host's releases"),
        "{zsh_words}"
    );
    for shell in ["bash", "zsh", "fish"] {
        if Command::new(shell).arg("-c").arg("true").output().is_ok() {
            let syntax = Command::new(shell)
                .args(["-n", "-c", &script(shell)])
                .output()
                .unwrap();
            assert!(
                syntax.status.success(),
                "{shell}: {}",
                String::from_utf8_lossy(&syntax.stderr)
            );
        }
    }
}

#[test]
fn fish_completes_cargo_ship_when_fish_is_installed() {
    // fish is not installed by .ci/run: this runs where it is (skipped, and said, elsewhere).
    if Command::new("fish").arg("--version").output().is_err() {
        eprintln!("fish is not installed: not run");
        return;
    }
    let dir = project();
    let bin = Path::new(env!("CARGO_BIN_EXE_cargo-ship"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let complete = |line: &str| {
        let out = Command::new("fish")
            .args(["--no-config", "-c"])
            .arg(format!(
                "cargo-ship completions fish | source; complete -C '{line}'"
            ))
            .current_dir(dir.path())
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.split('\t').next().unwrap_or("").to_owned())
            .collect::<Vec<_>>()
    };
    let stages = complete("cargo ship plan ");
    let found: Vec<&String> = stages
        .iter()
        .filter(|s| ["staging", "production", "beta"].contains(&s.as_str()))
        .collect();
    assert_eq!(found, ["staging", "production", "beta"], "{stages:?}");
    assert!(complete("cargo ship pl").contains(&"plan".to_owned()));
}
