//! Shell completion for `cargo ship …`: the scripts `cargo ship completions <shell>` prints,
//! and the hidden `cargo ship __complete` they call for the candidates of the word under the
//! cursor (clap_complete's engine over our command, with the stage names of the Ship.toml
//! found from the current directory).

use crate::cli::{CompleteArgs, CompletionsArgs};
use crate::{CliError, Context};
use clap::CommandFactory;
use clap_complete::Shell;
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};
use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

/// The arguments that take a stage name (`apply`'s target may also be a plan's file).
const STAGE_ARGS: [&str; 4] = ["stage", "from", "to", "target"];

/// `cargo ship completions <shell>`.
pub(crate) fn script(args: &CompletionsArgs, cx: &mut Context) -> Result<(), CliError> {
    let text = match args.shell {
        Shell::Bash => BASH,
        Shell::Zsh => ZSH,
        Shell::Fish => FISH,
        other => {
            // No `cargo ship` wrapping for these: the static script for `cargo-ship`.
            let mut cmd = crate::cli::Cargo::command()
                .find_subcommand("ship")
                .cloned()
                .expect("the ship subcommand")
                .name("cargo-ship");
            clap_complete::generate(other, &mut cmd, "cargo-ship", &mut cx.stdout);
            return Ok(());
        }
    };
    let _ = cx.stdout.write_all(text.as_bytes());
    Ok(())
}

/// `cargo ship __complete --shell S --index I -- WORDS…`: the candidates, one a line.
pub(crate) fn candidates(args: &CompleteArgs, cx: &mut Context) -> Result<(), CliError> {
    let mut words = args.words.clone();
    let mut index = args.index;
    // `cargo-ship plan …` is `cargo ship plan …` (as main_with reads it).
    if words.get(1).is_none_or(|w| w != "ship") {
        words.insert(1.min(words.len()), OsString::from("ship"));
        index += 1;
    }
    if words.len() <= index {
        words.resize(index + 1, OsString::new());
    }
    // Flags only once a `-` is typed, as cargo's completion does.
    let flags = words[index].to_string_lossy().starts_with('-');
    let mut cmd = command(&cx.cwd);
    let found = clap_complete::engine::complete(&mut cmd, words, index, Some(&cx.cwd))
        .map_err(|e| CliError::Usage(format!("completion: {e}")))?;
    for c in found.iter().filter(|c| {
        !c.is_hide_set() && (flags || !c.get_value().to_string_lossy().starts_with('-'))
    }) {
        let value = c.get_value().to_string_lossy();
        let help = c
            .get_help()
            .map(|h| h.to_string().lines().next().unwrap_or("").to_owned())
            .unwrap_or_default();
        let _ = match args.shell {
            Shell::Fish if !help.is_empty() => writeln!(cx.stdout, "{value}\t{help}"),
            Shell::Zsh if !help.is_empty() => {
                writeln!(cx.stdout, "{}:{help}", value.replace(':', "\\:"))
            }
            Shell::Zsh => writeln!(cx.stdout, "{}", value.replace(':', "\\:")),
            _ => writeln!(cx.stdout, "{value}"),
        };
    }
    Ok(())
}

/// Our command, its stage arguments completed from the Ship.toml found from `cwd`.
fn command(cwd: &Path) -> clap::Command {
    let cwd = cwd.to_owned();
    crate::cli::Cargo::command().mut_subcommand("ship", move |ship| {
        // Each subcommand's positionals in their order: `mut_arg` moves an argument to the
        // end, so each is given its index explicitly.
        let positionals: Vec<(String, Vec<String>)> = ship
            .get_subcommands()
            .map(|c| {
                let ids = c
                    .get_positionals()
                    .map(|a| a.get_id().to_string())
                    .collect();
                (c.get_name().to_owned(), ids)
            })
            .collect();
        positionals.into_iter().fold(ship, |ship, (name, ids)| {
            let cwd = cwd.clone();
            ship.mut_subcommand(name, move |mut c| {
                for (i, id) in ids.into_iter().enumerate() {
                    let cwd = cwd.clone();
                    let stage = STAGE_ARGS.contains(&id.as_str());
                    c = c.mut_arg(id, move |a| {
                        let a = a.index(i + 1);
                        if !stage {
                            return a;
                        }
                        a.add(ArgValueCandidates::new(move || {
                            stages(&cwd)
                                .into_iter()
                                .map(CompletionCandidate::new)
                                .collect::<Vec<_>>()
                        }))
                    });
                }
                c
            })
        })
    })
}

/// The stages of the Ship.toml in `cwd` or the nearest directory above it, in file order
/// (none when there is none or it cannot be read).
pub(crate) fn stages(cwd: &Path) -> Vec<String> {
    let Some(ship_toml) = cwd
        .ancestors()
        .map(|d| d.join("Ship.toml"))
        .find(|f| f.is_file())
    else {
        return Vec::new();
    };
    let sources = ship_core::Sources {
        ship_toml,
        ..Default::default()
    };
    sources
        .load()
        .map(|l| l.stages().to_vec())
        .unwrap_or_default()
}

/// bash: `cargo ship …` and `cargo-ship …`; any other `cargo …` goes to cargo's `_cargo`.
const BASH: &str = r#"# Completion of `cargo ship …` for bash (from `cargo ship completions bash`).
# Words after `cargo ship` are completed by cargo-ship; every other `cargo …` line by
# cargo's own completion (_cargo) when it is installed.
_cargo_ship_words() {
    # bash splits `--format=js` at `=` (COMP_WORDBREAKS): join the parts again for cargo-ship,
    # then give bash only what replaces its current word.
    local words=() cword=0 i w
    for (( i = 0; i < ${#COMP_WORDS[@]}; i++ )); do
        w=${COMP_WORDS[i]}
        if (( i > 1 )) && [[ $w == = || ${COMP_WORDS[i-1]} == = ]]; then
            words[${#words[@]}-1]+=$w
        else
            words+=("$w")
        fi
        (( i == COMP_CWORD )) && cword=$(( ${#words[@]} - 1 ))
    done
    local IFS=$'\n'
    COMPREPLY=( $(cargo-ship __complete --shell bash --index "$cword" -- "${words[@]}" 2>/dev/null) )
    local cur=${COMP_WORDS[COMP_CWORD]} full=${words[cword]}
    if [[ $full != "$cur" ]]; then
        COMPREPLY=( "${COMPREPLY[@]#"${full%"$cur"}"}" )
    fi
}
_cargo_ship_cargo() {
    if [[ $COMP_CWORD -ge 2 && ${COMP_WORDS[1]} == ship ]]; then
        _cargo_ship_words
        return 0
    fi
    if ! declare -F _cargo >/dev/null && declare -F _completion_loader >/dev/null; then
        # cargo's completion is loaded on demand: load it, then wrap it again.
        _completion_loader cargo >/dev/null 2>&1
        complete -o bashdefault -o default -F _cargo_ship_cargo cargo
    fi
    if declare -F _cargo >/dev/null; then
        _cargo "$@"
    fi
}
complete -o bashdefault -o default -F _cargo_ship_cargo cargo
complete -o bashdefault -o default -F _cargo_ship_words cargo-ship
"#;

/// zsh: the same wrapping, through `compdef`.
const ZSH: &str = r#"#compdef cargo cargo-ship
# Completion of `cargo ship …` for zsh (from `cargo ship completions zsh`).
# Words after `cargo ship` are completed by cargo-ship; every other `cargo …` line by
# cargo's own completion (_cargo) when it is installed.
_cargo_ship_words() {
    local -a candidates
    candidates=( ${(f)"$(cargo-ship __complete --shell zsh --index $((CURRENT - 1)) -- "${words[@]}" 2>/dev/null)"} )
    _describe -t values 'cargo ship' candidates
}
_cargo_ship_cargo() {
    if [[ $service == cargo-ship ]] || [[ $CURRENT -gt 2 && ${words[2]} == ship ]]; then
        _cargo_ship_words
    elif (( $+functions[_cargo] )); then
        _cargo "$@"
    fi
}
compdef _cargo_ship_cargo cargo cargo-ship
"#;

/// fish: added to cargo's completions once `ship` is on the line.
const FISH: &str = r#"# Completion of `cargo ship …` for fish (from `cargo ship completions fish`).
function __cargo_ship_words
    set -l words (commandline -opc) (commandline -ct)
    cargo-ship __complete --shell fish --index (math (count $words) - 1) -- $words 2>/dev/null
end
complete -c cargo -n '__fish_seen_subcommand_from ship' --keep-order -f -a '(__cargo_ship_words)'
complete -c cargo-ship --keep-order -f -a '(__cargo_ship_words)'
"#;
