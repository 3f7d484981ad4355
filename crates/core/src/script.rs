//! The shell the planner writes: each phase's command, each task's command, and the
//! per-host scripts that carry them (one SSH session each).
//!
//! Every value goes through [`crate::shell::quote`] or reaches the script as a quoted
//! variable assignment; each step is wrapped by [`crate::protocol::step`] (its start and end
//! on the control channel, its output in a file), so the driver can report it.

use crate::layout::LayoutContext;
use crate::phase::Phase;
use crate::planner::PlanInput;
use crate::protocol::StepIo;
use crate::shell::quote;
use crate::stage::{Host, Stage};
use crate::task::TaskSpec;
use std::collections::BTreeMap;
use std::fmt::Write;

use crate::protocol::MISSING_SHARED_STATUS;

/// Variables the driver sets when it runs a plan's scripts, with what they hold.
pub fn apply_time_variables() -> BTreeMap<String, String> {
    [
        ("SHIP_DEPLOYER", "who deploys: user@machine"),
        ("SHIP_STARTED_AT", "when the deploy started, RFC 3339 UTC"),
        ("SHIP_LOCK_INFO", "what .ship/lock/info holds: who, when, stage, release"),
        (
            "SHIP_CLEANUP",
            "the release directories cleanup removes, chosen by the layout from the state read at lock; sent with the go of each script after the first",
        ),
        (
            "SHIP_RECORDS",
            "the new .ship/releases.json, made from the one read at lock; sent with the go of the script that cleans up and unlocks",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

/// How a health check reads in a plan.
fn health_summary(h: &crate::stage::Health) -> String {
    let what = match &h.url {
        Some(url) => format!("GET {url}"),
        None => h.run.clone(),
    };
    let tries = if h.retries == 0 {
        String::new()
    } else {
        format!(
            ", {} retr{} {}s apart",
            h.retries,
            if h.retries == 1 { "y" } else { "ies" },
            h.interval.as_secs_f64()
        )
    };
    format!(
        "health check, {}s limit{tries}: {what}",
        h.timeout.as_secs()
    )
}

/// The shell of a health check: a command or a URL fetched with whatever the host has,
/// tried `1 + retries` times.
fn health_command(h: &crate::stage::Health, host: &str) -> String {
    let limit = h.timeout.as_secs().max(1);
    let one_try = match &h.url {
        None => format!("timeout {limit} sh -c {} </dev/null", quote(&h.run)),
        Some(url) => format!("ship_fetch {}", quote(&url.replace("{host}", host))),
    };
    let mut s = String::from("cd \"$SHIP_RELEASE_PATH\"\n");
    if h.url.is_some() {
        let _ = write!(
            s,
            r#"ship_fetch() {{
  if command -v curl >/dev/null 2>&1; then curl -fsS -o /dev/null --max-time {limit} "$1"
  elif command -v wget >/dev/null 2>&1; then wget -q -O /dev/null -T {limit} "$1"
  else timeout {limit} python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout={limit})' "$1"
  fi
}}
"#
        );
    }
    if h.retries == 0 {
        s.push_str(&one_try);
        return s;
    }
    let tries = h.retries + 1;
    let _ = write!(
        s,
        r#"ship_try=1
until {one_try}; do
  if [ "$ship_try" -ge {tries} ]; then
    echo "cargo-ship: the health check failed on $SHIP_HOST ({tries} tries)" >&2
    exit 1
  fi
  echo "health check failed (try $ship_try of {tries}); again in {interval}s"
  ship_try=$((ship_try + 1))
  sleep {interval}
done"#,
        interval = h.interval.as_secs_f64()
    );
    s
}

/// The one-line description of a phase step.
pub fn phase_summary(
    p: Phase,
    input: &PlanInput<'_>,
    stage: &Stage,
    cx: &LayoutContext<'_>,
) -> String {
    let a = &input.artifact;
    match p {
        Phase::Build => format!(
            "{}{} → sha256 {} ({}, {} entries); done when the plan was made",
            if a.commands.is_empty() {
                String::new()
            } else {
                format!("after `{}`: ", a.commands.join("`, `"))
            },
            a.source,
            short(&a.digest),
            human_bytes(a.bytes),
            a.entries
        ),
        Phase::Lock => {
            "take .ship/lock (refuse if held); read current, releases/ and .ship/releases.json"
                .to_owned()
        }
        Phase::Upload if stage.delta => format!(
            "delta: send only the files of the artifact ({}, {}…) missing from .ship/objects/, \
             check each one's sha256, make the release of hard links to them",
            human_bytes(a.bytes),
            short(&a.digest)
        ),
        Phase::Upload => format!(
            "send the artifact ({}) unless .ship/artifacts/{}… is there; check its sha256",
            human_bytes(a.bytes),
            short(&a.digest)
        ),
        Phase::Prepare => input.layout.prepare_summary(cx),
        Phase::Link => {
            let base: Vec<&String> = stage
                .linked_files
                .iter()
                .chain(&stage.linked_dirs)
                .collect();
            let mut s = if base.is_empty() {
                "nothing to link from shared/".to_owned()
            } else {
                format!(
                    "link from shared/: {}",
                    base.iter()
                        .map(|f| f.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            // What roles add, with the hosts that get it.
            let mut extras: BTreeMap<Vec<&String>, Vec<&str>> = BTreeMap::new();
            for h in &stage.hosts {
                let more: Vec<&String> = h
                    .linked_files
                    .iter()
                    .chain(&h.linked_dirs)
                    .filter(|f| !base.contains(f))
                    .collect();
                if !more.is_empty() {
                    extras.entry(more).or_default().push(&h.name);
                }
            }
            for (files, hosts) in extras {
                let files: Vec<&str> = files.iter().map(|f| f.as_str()).collect();
                let _ = write!(s, "; +{} on {}", files.join(", +"), hosts.join(", "));
            }
            s
        }
        Phase::Install => {
            let mut names: Vec<&str> = input
                .extra_tasks
                .iter()
                .filter(|t| t.before == Some(crate::task::Target::Phase(Phase::Install)))
                .map(|t| t.name.as_str())
                .collect();
            names.sort_unstable();
            if names.is_empty() {
                "nothing to install: no adapter is configured".to_owned()
            } else {
                format!("dependencies installed by {}", names.join(", "))
            }
        }
        Phase::Switch => input.layout.switch_summary(cx),
        Phase::Verify => {
            let mut by_check: BTreeMap<String, Vec<&str>> = BTreeMap::new();
            for h in &stage.hosts {
                let check = h
                    .health
                    .as_ref()
                    .or(stage.health.as_ref())
                    .map_or_else(|| "no health check".to_owned(), health_summary);
                by_check.entry(check).or_default().push(&h.name);
            }
            match by_check.len() {
                0 => "no health check configured".to_owned(),
                1 => {
                    let only = by_check.into_keys().next().expect("one");
                    if only == "no health check" {
                        "no health check configured".to_owned()
                    } else {
                        only
                    }
                }
                _ => by_check
                    .into_iter()
                    .map(|(check, hosts)| format!("{}: {check}", hosts.join(", ")))
                    .collect::<Vec<_>>()
                    .join("; "),
            }
        }
        Phase::Cleanup => input.layout.cleanup_summary(stage.keep_releases),
        Phase::Unlock => {
            "record the release in .ship/releases.json and revisions.log; release the lock"
                .to_owned()
        }
    }
}

/// The shell of a phase on `host`. Values particular to a host reach it through the
/// variables the script sets first (`SHIP_HOST`, ...), except linked files, which differ
/// by role and are written out.
pub fn phase_command(
    p: Phase,
    input: &PlanInput<'_>,
    host: &Host,
    cx: &LayoutContext<'_>,
) -> String {
    let layout = input.layout;
    match p {
        Phase::Build => format!(
            "# done on this machine when the plan was made: {}",
            input.artifact.source
        ),
        Phase::Lock if input.stage.delta => format!(
            "{}\n{}",
            crate::protocol::lock_step(),
            crate::protocol::delta_probe()
        ),
        Phase::Lock => crate::protocol::lock_step(),
        Phase::Upload if input.stage.artifact_store.is_some() => {
            crate::protocol::upload_step_via_store()
        }
        Phase::Upload if input.stage.delta => crate::protocol::delta_upload_step(),
        Phase::Upload => crate::protocol::upload_step(),
        Phase::Prepare => format!(
            "# a deploy killed from here on leaves this mark for the next one's cleanup\n{}\n{}",
            crate::protocol::mark_preparing(),
            layout.prepare(cx)
        ),
        Phase::Link if !input.stage.env.is_empty() || !input.stage.secrets.is_empty() => {
            let links = link_command(host);
            format!(
                "{}{}",
                env_command(),
                if links == ":" { String::new() } else { links }
            )
        }
        Phase::Link => link_command(host),
        Phase::Install => ":".to_owned(),
        Phase::Switch => match &input.stage.maintenance {
            // Maintenance belongs to the site: the new release gets the page if the site is
            // in maintenance (before it is live, when it has a directory of its own).
            Some(m) if layout.keeps_directories() => format!(
                "{}\n{}",
                crate::ops::maintenance_follows_site(m, "\"$SHIP_RELEASE_PATH\""),
                layout.switch(cx)
            ),
            Some(m) => format!(
                "{}\n{}",
                layout.switch(cx),
                crate::ops::maintenance_follows_site(m, "\"$SHIP_DEPLOY_TO/current\"")
            ),
            None => layout.switch(cx),
        },
        Phase::Verify => match host.health.as_ref().or(input.stage.health.as_ref()) {
            Some(h) => health_command(h, &host.name),
            None => ":".to_owned(),
        },
        // Artifacts no kept release was unpacked from go too: `$SHIP_RECORDS` (the new
        // releases.json) names the digest of every release kept.
        Phase::Cleanup if input.stage.delta => format!(
            "{}\n{}",
            crate::protocol::cleanup_step(),
            crate::protocol::delta_cleanup()
        ),
        Phase::Cleanup => crate::protocol::cleanup_step(),
        Phase::Unlock => {
            let branch = match &input.stage.source {
                crate::config::SourceConfig::Git(rev) => rev.clone(),
                other => other.parts().0.to_owned(),
            };
            crate::protocol::unlock_step(&branch)
        }
    }
}

/// Links `host`'s linked files and directories from `shared/` into the new release.
/// Every missing file is named before anything is linked.
/// Writes the app's environment, which the conversation read from cargo ship into
/// `ship_env` (never part of the plan), to `shared/.env` with mode 0600, and links it into
/// the release as `.env` (never through a link the artifact has there).
fn env_command() -> String {
    r#"[ -n "${ship_env-}" ] || { echo "cargo-ship: $SHIP_HOST: the app's environment did not arrive" >&2; exit 1; }
( umask 077; printf '%s\n' "$ship_env" > "$SHIP_DEPLOY_TO/shared/.env.part" )
mv -f "$SHIP_DEPLOY_TO/shared/.env.part" "$SHIP_DEPLOY_TO/shared/.env"
if [ -d "$SHIP_RELEASE_PATH/.env" ] && [ ! -L "$SHIP_RELEASE_PATH/.env" ]; then
  echo "cargo-ship: $SHIP_HOST: the release has a directory .env: refusing to link the app's environment over it" >&2
  exit 1
fi
ln -sfn "$SHIP_DEPLOY_TO/shared/.env" "$SHIP_RELEASE_PATH/.env"
"#
    .to_owned()
}

fn link_command(host: &Host) -> String {
    if host.linked_files.is_empty() && host.linked_dirs.is_empty() {
        return ":".to_owned();
    }
    let mut s = String::from("ship_missing=\n");
    for f in &host.linked_files {
        let _ = writeln!(
            s,
            "[ -e \"$SHIP_DEPLOY_TO/shared/\"{q} ] || ship_missing=\"$ship_missing \"{q}",
            q = quote(f)
        );
    }
    let _ = writeln!(
        s,
        "if [ -n \"$ship_missing\" ]; then\n  echo \"cargo-ship: missing from $SHIP_DEPLOY_TO/shared/ on $SHIP_HOST:$ship_missing\" >&2\n  exit {MISSING_SHARED_STATUS}\nfi"
    );
    // Nothing is linked through a directory the artifact made a symlink: `rm -rf` and
    // `ln -s` would act wherever it leads (`b -> a/..`, with `a` a linked file, is
    // `shared/`). The last component itself is replaced, never written through.
    let paths: Vec<&str> = host
        .linked_files
        .iter()
        .chain(&host.linked_dirs)
        .map(String::as_str)
        .collect();
    s.push_str(&refuse_links_on_the_way(
        "$SHIP_RELEASE_PATH/",
        &paths,
        "link shared files",
    ));
    for d in &host.linked_dirs {
        let q = quote(d);
        let _ = writeln!(
            s,
            "[ -d \"$SHIP_DEPLOY_TO/shared/\"{q} ] || mkdir -p \"$SHIP_DEPLOY_TO/shared/\"{q}"
        );
    }
    for f in host.linked_files.iter().chain(&host.linked_dirs) {
        let q = quote(f);
        if let Some((parent, _)) = f.rsplit_once('/') {
            let p = quote(parent);
            let _ = writeln!(
                s,
                "[ -d \"$SHIP_RELEASE_PATH/\"{p} ] || mkdir -p \"$SHIP_RELEASE_PATH/\"{p}"
            );
        }
        let _ = writeln!(
            s,
            "if [ -e \"$SHIP_RELEASE_PATH/\"{q} ] || [ -L \"$SHIP_RELEASE_PATH/\"{q} ]; then rm -rf \"$SHIP_RELEASE_PATH/\"{q}; fi\nln -s \"$SHIP_DEPLOY_TO/shared/\"{q} \"$SHIP_RELEASE_PATH/\"{q}"
        );
    }
    s.trim_end().to_owned()
}

/// Shell that refuses, naming it (exit 1), a symlink among the directories that lead to each
/// of `paths` (relative paths checked by the configuration), read from `base` (text for
/// inside double quotes, ending in `/`: `$SHIP_RELEASE_PATH/`; empty for the working
/// directory): a write to the path would go through
/// the link, wherever the artifact made it lead. Builtins only, one `[ -L ]` a directory;
/// nothing when no path has a directory.
pub fn refuse_links_on_the_way(base: &str, paths: &[&str], what: &str) -> String {
    let mut dirs = std::collections::BTreeSet::new();
    for p in paths {
        let mut at = 0;
        while let Some(slash) = p[at..].find('/') {
            dirs.insert(&p[..at + slash]);
            at += slash + 1;
        }
    }
    if dirs.is_empty() {
        return String::new();
    }
    let words: Vec<_> = dirs.into_iter().map(quote).collect();
    format!(
        "for ship_c in {}; do\n  if [ -L \"{base}$ship_c\" ]; then\n    echo \"cargo-ship: $SHIP_HOST: $ship_c is a symlink in the release: refusing to {what} through it\" >&2\n    exit 1\n  fi\ndone\n",
        words.join(" ")
    )
}

/// The shell of a user's or an adapter's task on a host.
pub fn task_command(t: &TaskSpec) -> String {
    if t.local {
        format!("sh -c {} </dev/null", quote(&t.run))
    } else {
        // In the new release once it is unpacked; before that (a task hooked to `lock` or
        // `upload`), in the deploy directory. The last command of the step's subshell (or of
        // a revert's `sh -c`): `exec`, one process fewer; a plain command (see
        // `plain_command`) is exec'd itself, with no `sh -c` between: one more fewer.
        let run = if plain_command(&t.run) {
            t.run.trim().to_owned()
        } else {
            format!("sh -c {}", quote(&t.run))
        };
        format!(
            "if [ -d \"$SHIP_RELEASE_PATH\" ]; then cd \"$SHIP_RELEASE_PATH\"; else cd \"$SHIP_DEPLOY_TO\"; fi\nexec {run} </dev/null"
        )
    }
}

/// Whether `run` is a program and its arguments and nothing else the shell could read
/// otherwise (`touch tmp/restart.txt`, `sudo systemctl reload app`): words of letters,
/// digits and `_./:@%+,=-` apart from blanks, the first one a program's name (looked up
/// in `PATH`) or absolute path that no shell has as a builtin or keyword (`cd`, `echo`,
/// `exit`, `test` ... are not: `sh -c` would run its own). A relative path (`bin/rails`) is
/// not: bash's `exec` passes it to the program made absolute, so a script's own `$0` would
/// change. `exec`ing such a command in the step's shell (dash, or bash as `sh`) is what
/// `sh -c` would do with it, a process sooner: same program, arguments, environment,
/// directory and input.
fn plain_command(run: &str) -> bool {
    // dash's, bash's and POSIX's builtins and reserved words.
    const SHELL_OWN: &[&str] = &[
        "alias",
        "bg",
        "bind",
        "break",
        "builtin",
        "caller",
        "case",
        "cd",
        "chdir",
        "command",
        "compgen",
        "complete",
        "compopt",
        "coproc",
        "continue",
        "declare",
        "dirs",
        "disown",
        "do",
        "done",
        "echo",
        "elif",
        "else",
        "enable",
        "esac",
        "eval",
        "exec",
        "exit",
        "export",
        "false",
        "fc",
        "fg",
        "fi",
        "for",
        "function",
        "getopts",
        "hash",
        "help",
        "history",
        "if",
        "in",
        "jobs",
        "kill",
        "let",
        "local",
        "logout",
        "mapfile",
        "popd",
        "printf",
        "pushd",
        "pwd",
        "read",
        "readarray",
        "readonly",
        "return",
        "select",
        "set",
        "shift",
        "shopt",
        "source",
        "suspend",
        "test",
        "then",
        "time",
        "times",
        "trap",
        "true",
        "type",
        "typeset",
        "ulimit",
        "umask",
        "unalias",
        "unset",
        "until",
        "wait",
        "while",
    ];
    let word_byte = |b: u8| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'_' | b'.' | b'/' | b':' | b'@' | b'%' | b'+' | b',' | b'=' | b'-'
            )
    };
    let mut words = run.split([' ', '\t']).filter(|w| !w.is_empty());
    let Some(first) = words.next() else {
        return false;
    };
    run.bytes().all(|b| word_byte(b) || b == b' ' || b == b'\t')
        && first
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/'))
        && !first.contains('=')
        && (first.starts_with('/') || !first.contains('/'))
        && first.bytes().any(|b| b != b'.')
        && !SHELL_OWN.contains(&first)
}

/// The values every script on a host starts with.
#[derive(Clone, Copy, Debug)]
pub struct Vars<'a> {
    /// The application.
    pub app: &'a str,
    /// The stage.
    pub stage: &'a str,
    /// The release id.
    pub release: &'a str,
    /// The deploy directory.
    pub deploy_to: &'a str,
    /// The host.
    pub host: &'a str,
    /// Its roles.
    pub roles: &'a [String],
    /// The source revision, if known.
    pub revision: Option<&'a str>,
    /// The artifact's digest.
    pub digest: &'a str,
}

impl<'a> Vars<'a> {
    /// The values of `host` in `plan`.
    pub fn of(plan: &'a crate::Plan, host: &'a crate::plan::HostPlan) -> Vars<'a> {
        Vars {
            app: &plan.app,
            stage: &plan.stage,
            release: &plan.release,
            deploy_to: &plan.deploy_to,
            host: &host.name,
            roles: &host.roles,
            revision: plan.artifact.revision.as_deref(),
            digest: &plan.artifact.digest,
        }
    }
}

/// `set -eu`, the `SHIP_*` variables (quoted) and the layout's `locate`, exported.
pub fn header(v: &Vars<'_>, locate: &str) -> String {
    let mut s = String::from("set -eu\n");
    let roles = v.roles.join(",");
    let vars: [(&str, &str); 8] = [
        ("SHIP_APP", v.app),
        ("SHIP_STAGE", v.stage),
        ("SHIP_RELEASE", v.release),
        ("SHIP_DEPLOY_TO", v.deploy_to),
        ("SHIP_HOST", v.host),
        ("SHIP_ROLE", &roles),
        ("SHIP_REVISION", v.revision.unwrap_or(v.digest)),
        ("SHIP_DIGEST", v.digest),
    ];
    for (k, val) in vars {
        let _ = writeln!(s, "{k}={}", quote(val));
    }
    s.push_str("SHIP_ARTIFACT=\"$SHIP_DEPLOY_TO/.ship/artifacts/$SHIP_DIGEST.tar.zst\"\n");
    s.push_str("[ -s \"$SHIP_ARTIFACT\" ] || SHIP_ARTIFACT=\"${SHIP_ARTIFACT%.zst}.gz\"\n");
    s.push_str(locate);
    s.push('\n');
    // Each step's output goes to its own file here (see `protocol::step`).
    s.push_str("SHIP_LOG=\"$SHIP_DEPLOY_TO/.ship/log/$SHIP_RELEASE\"\n");
    s.push_str("export SHIP_APP SHIP_STAGE SHIP_RELEASE SHIP_DEPLOY_TO SHIP_HOST SHIP_ROLE SHIP_REVISION SHIP_DIGEST SHIP_ARTIFACT SHIP_RELEASE_PATH\n");
    s
}

/// `set -eu` and the variables a local step (`local = true`, run on this machine) is given,
/// exported.
pub fn local_header(plan: &crate::Plan) -> String {
    format!(
        "set -eu\nexport SHIP_APP={} SHIP_STAGE={} SHIP_RELEASE={} SHIP_DEPLOY_TO={}\n",
        quote(&plan.app),
        quote(&plan.stage),
        quote(&plan.release),
        quote(&plan.deploy_to)
    )
}

/// One host's script for one segment: variables, the layout's `locate`, then each step
/// in a subshell between markers. Part `n` (from 0) of `count`.
pub fn host_script(
    input: &PlanInput<'_>,
    host: &Host,
    cx: &LayoutContext<'_>,
    n: usize,
    count: usize,
    steps: &[&crate::plan::Step],
) -> String {
    let stage = input.stage;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# cargo ship: {} to {}, release {}, host {}, script {} of {}",
        stage.app,
        stage.name,
        input.release,
        host.name,
        n + 1,
        count
    );
    s.push_str(&header(
        &Vars {
            app: &stage.app,
            stage: &stage.name,
            release: &input.release,
            deploy_to: &stage.deploy_to,
            host: &host.name,
            roles: &host.roles,
            revision: input.artifact.revision.as_deref(),
            digest: &input.artifact.digest,
        },
        &input.layout.locate(cx),
    ));
    // The host's own variables (from a dynamic inventory).
    for (k, v) in &host.vars {
        let _ = writeln!(
            s,
            "{p}{k}={}\nexport {p}{k}",
            quote(v),
            p = crate::protocol::HOST_VAR_PREFIX,
            k = k.to_ascii_uppercase()
        );
    }
    s.push_str(&crate::protocol::step_functions());
    for step in steps {
        let body = match step.kind {
            crate::plan::StepKind::Phase => phase_command(step.phase, input, host, cx),
            crate::plan::StepKind::Task => step.command.clone(),
        };
        let io = match (step.kind, step.phase) {
            (crate::plan::StepKind::Phase, Phase::Lock) => StepIo::Control,
            (crate::plan::StepKind::Phase, Phase::Upload) => StepIo::Artifact,
            (crate::plan::StepKind::Phase, Phase::Cleanup) => StepIo::Says,
            (crate::plan::StepKind::Phase, _) => StepIo::Logged,
            (crate::plan::StepKind::Task, _) => StepIo::Task,
        };
        s.push('\n');
        s.push_str(&crate::protocol::step(step.id, &step.name, &body, io));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `script` with `sh` in `dir`: (success, stderr).
    fn sh(dir: &std::path::Path, script: &str) -> (bool, String) {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("set -eu\nSHIP_HOST=h1\n{script}"))
            .current_dir(dir)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A plain command is exec'd with no `sh -c`; the program sees what it saw under
    /// `sh -c` (arguments, environment, directory); anything the shell would read otherwise
    /// keeps its `sh -c`.
    #[test]
    fn a_plain_task_command_is_execd_as_sh_c_would_run_it() {
        for plain in [
            "touch tmp/restart.txt",
            "  sudo  systemctl\treload app.service ",
            "rails db:migrate RAILS_ENV=production a,b @x 50% +1",
            "/usr/bin/env",
            "/srv/app/shared/bin/restart -v2",
        ] {
            assert!(plain_command(plain), "{plain}");
        }
        for shell in [
            "",
            "  ",
            "echo -e hi",
            "cd /tmp",
            "exit 3",
            "test -f x",
            "true",
            ". ./env",
            "..",
            "FOO=1 env",
            "-x",
            "touch $HOME/x",
            "touch ~/x",
            "touch 'a b'",
            "touch a*",
            "a && b",
            "a; b",
            "a | b",
            "a > f",
            "a &",
            "touch a\nrm -rf b",
            "(a)",
            "{ a; }",
            "touch \\x",
            "if",
            "coproc",
            // bash's `exec` makes a relative path absolute: a script's `$0` would change
            "bin/rails db:migrate",
            "./manage.py migrate",
            "venv/bin/python manage.py migrate --noinput",
        ] {
            assert!(!plain_command(shell), "{shell:?}");
        }
        // What the program sees, both ways: its arguments, the directory and the
        // environment (less what a shell sets for itself).
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rel")).unwrap();
        let seen = |exec: &str| {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "SHIP_RELEASE_PATH=$PWD/rel; SHIP_DEPLOY_TO=$PWD; export SHIP_RELEASE_PATH\n( set -eu\n{exec} ) 2>&1"
                ))
                .current_dir(dir.path())
                .env("SHIP_X", "1")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let mut lines: Vec<_> = text
                .lines()
                .filter(|l| !l.starts_with('_') && !l.starts_with("SHLVL="))
                .map(str::to_owned)
                .collect();
            lines.sort();
            (out.status.code(), lines)
        };
        let run = "env -0 ARG=a,b:c@d%e+f";
        let t = |run: &str| {
            TaskSpec::from_config(
                "t",
                &crate::config::TaskConfig {
                    run: run.into(),
                    ..Default::default()
                },
            )
        };
        let direct = task_command(&t(run));
        assert!(
            direct.ends_with("exec env -0 ARG=a,b:c@d%e+f </dev/null"),
            "{direct}"
        );
        let through_sh = direct.replace(
            "exec env -0 ARG=a,b:c@d%e+f",
            &format!("exec sh -c {}", quote(run)),
        );
        let (a, b) = (seen(&direct), seen(&through_sh));
        assert_eq!(a, b);
        assert_eq!(a.0, Some(0));
        assert!(a.1.iter().any(|l| l.contains("ARG=a,b:c@d%e+f")), "{a:?}");
        assert!(
            a.1.iter()
                .any(|l| l.contains(&format!("PWD={}", dir.path().join("rel").display()))),
            "{a:?}"
        );
        // not found: 127 either way
        let gone = task_command(&t("no-such-program-xyz arg"));
        assert!(!gone.contains("sh -c"), "{gone}");
        assert_eq!(seen(&gone).0, Some(127));
        assert!(task_command(&t("echo -e hi")).contains("exec sh -c 'echo -e hi'"));
    }

    #[test]
    fn nothing_is_written_through_a_directory_that_is_a_link() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config/deep")).unwrap();
        std::os::unix::fs::symlink("config", dir.path().join("b")).unwrap();
        std::os::unix::fs::symlink("config", dir.path().join("last")).unwrap();
        // Real directories on the way, or a link as the last component (replaced, not
        // written through): nothing to refuse.
        let fine = refuse_links_on_the_way("", &["config/deep/x", "last", "new/x"], "link");
        assert_eq!(sh(dir.path(), &fine), (true, String::new()));
        // A link on the way: refused, named.
        let refused = refuse_links_on_the_way("", &["config/x", "b/deep/x"], "link files");
        let (ok, stderr) = sh(dir.path(), &refused);
        assert!(!ok);
        assert!(
            stderr.contains("h1: b is a symlink in the release: refusing to link files through it"),
            "{stderr}"
        );
        // No directory on the way: no shell at all.
        assert_eq!(refuse_links_on_the_way("", &["a", "b"], "link"), "");
    }
}
