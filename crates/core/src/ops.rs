//! The shell of the commands besides a deploy — `rollback`, `releases`, `check`, `unlock`,
//! `run` — and the reading of what they print. Pure, like the planner: the binary runs the
//! scripts over a transport.

use crate::layout::{HostState, Layout, LayoutContext, ReleaseRecord, ReleaseState};
use crate::protocol::{self, Nonce, Probe};
use crate::records;
use crate::shell::quote;
use std::fmt::Write;

/// The variables every operation script starts with.
fn prelude(deploy_to: &str, host: &str) -> String {
    format!(
        "set -eu\nSHIP_DEPLOY_TO={}\nSHIP_HOST={}\nexport SHIP_DEPLOY_TO SHIP_HOST\n",
        quote(deploy_to),
        quote(host)
    )
}

/// Prints the host's state as state lines framed with `nonce` (see [`Probe`]); with
/// `lock_info`, takes the lock first (exit [`protocol::LOCKED_STATUS`] naming the holder when it is
/// held). With `nonce` `None`, the script reads it from its first line of input (as
/// [`protocol::then_eval`] does).
pub fn state_script(
    deploy_to: &str,
    host: &str,
    lock_info: Option<&str>,
    nonce: Option<&Nonce>,
) -> String {
    let mut s = prelude(deploy_to, host);
    if let Some(n) = nonce {
        let _ = writeln!(s, "{}={}", protocol::NONCE_VAR, quote(n.as_str()));
    }
    if let Some(info) = lock_info {
        let _ = writeln!(
            s,
            "SHIP_LOCK_INFO={}\nmkdir -p \"$SHIP_DEPLOY_TO/.ship\"\n{}",
            quote(info),
            protocol::take_lock()
        );
    }
    let _ = write!(
        s,
        "{}\n{}\n{}\ntrue\n",
        protocol::probe(),
        protocol::probe_lock(),
        protocol::probe_history()
    );
    s
}

/// A host's state as read by [`state_script`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Observed {
    /// Releases, live one and records.
    pub state: HostState,
    /// Who holds the lock, if anyone.
    pub lock: Option<String>,
}

/// Reads [`state_script`]'s output with `layout`.
pub fn observe(
    layout: &dyn Layout,
    deploy_to: &str,
    stdout: &str,
    nonce: &Nonce,
) -> Result<Observed, String> {
    let probe = Probe::parse(stdout, nonce);
    let (state, bad) = probe.state(layout, deploy_to);
    if let Some(e) = bad {
        return Err(format!(
            "{deploy_to}/.ship/releases.json is not valid JSON: {e}"
        ));
    }
    Ok(Observed {
        state,
        lock: probe.lock,
    })
}

/// The record a rollback to directory `dir` makes live: the newest one of that directory,
/// or one made up for a directory with no record.
pub fn target_record(state: &HostState, dir: &str) -> ReleaseRecord {
    state
        .record_of(dir)
        .cloned()
        .unwrap_or_else(|| ReleaseRecord {
            id: dir.to_owned(),
            dir: dir.to_owned(),
            revision: None,
            digest: String::new(),
            time: String::new(),
            user: String::new(),
            state: ReleaseState::Good,
        })
}

/// What a rollback does on a host around making a release live again: the commands it runs
/// once it is back (its restarts, `(name, command)`), how long each may take there, and the
/// maintenance page, which follows the site (see [`maintenance_follows_site`]).
#[derive(Clone, Copy, Debug)]
pub struct Restarts<'a> {
    /// The commands.
    pub commands: &'a [(String, String)],
    /// Each one's time limit on the host.
    pub limit: std::time::Duration,
    /// The stage's maintenance page, if it has one.
    pub maintenance: Option<&'a crate::config::MaintenanceConfig>,
}

/// Makes `target` live again (the layout's `activate`), records it, logs it as Capistrano
/// does, runs `after` (the host's tasks hooked after the switch: restarts) in the release
/// now live (each stopped on the host at `limit`), and then releases the lock (a `.ship/preparing` left by a killed deploy stays,
/// for the next deploy's cleanup). A failing `after` command is reported (exit status 3 of
/// the script) once the release is recorded and the lock released.
pub fn rollback_script(
    layout: &dyn Layout,
    deploy_to: &str,
    host: &str,
    state: &HostState,
    target: &str,
    user: &str,
    after: Restarts<'_>,
) -> String {
    let Restarts {
        commands: after,
        limit,
        maintenance,
    } = after;
    let record = layout.rollback_record(state, target);
    let records = records::after_rollback(&state.records, &record);
    let cx = LayoutContext {
        deploy_to,
        release: &record.id,
        delta: false,
    };
    let mut s = prelude(deploy_to, host);
    let _ = writeln!(
        s,
        "SHIP_RELEASE={}\nSHIP_REVISION={}\nSHIP_RELEASE_PATH=\"$SHIP_DEPLOY_TO/current\"\nexport SHIP_RELEASE SHIP_REVISION SHIP_RELEASE_PATH",
        quote(&record.id),
        quote(record.revision.as_deref().unwrap_or(&record.digest))
    );
    // The release made live has the page if the site is in maintenance, and not otherwise:
    // put right before it is live when it has a directory of its own, else just after.
    let follows = |dir: &str| maintenance.map(|m| maintenance_follows_site(m, dir) + "\n");
    if layout.keeps_directories() {
        let dir = format!("\"$SHIP_DEPLOY_TO/releases/\"{}", quote(target));
        s.push_str(&follows(&dir).unwrap_or_default());
    }
    s.push_str(&layout.activate(&cx, target));
    if !layout.keeps_directories() {
        s.push('\n');
        s.push_str(&follows("\"$SHIP_DEPLOY_TO/current\"").unwrap_or_default());
    }
    let _ = write!(
        s,
        "\n{}\nprintf '%s rolled back to release %s\\n' {} {} >> \"$SHIP_DEPLOY_TO/revisions.log\"\n",
        protocol::write_records(&quote(&records::to_json(&records))),
        quote(user),
        quote(&record.id)
    );
    s.push_str("ship_after=0\n");
    if !after.is_empty() {
        s.push_str("mkdir -p \"$SHIP_DEPLOY_TO/.ship/log\"\n");
        for (i, (name, command)) in after.iter().enumerate() {
            // Its output goes to a file: a daemon it leaves running holds that, not the
            // session (see `protocol`).
            let _ = writeln!(
                s,
                "echo \"running {name}\"\n( cd \"$SHIP_DEPLOY_TO/current\" && {} ) </dev/null >\"$SHIP_DEPLOY_TO/.ship/log/rollback.{i}\" 2>&1 || {{ echo \"cargo-ship: {name} failed on $SHIP_HOST after the rollback\" >&2; tail -n 3 \"$SHIP_DEPLOY_TO/.ship/log/rollback.{i}\" >&2; ship_after=3; }}",
                limited(command, limit)
            );
        }
    }
    // The lock is released once the restarts ran: no deploy starts while they run.
    let _ = writeln!(s, "{}\nexit $ship_after", protocol::unlock());
    s
}

/// Releases the lock without changing anything else.
pub fn unlock_script(deploy_to: &str, host: &str) -> String {
    let mut s = prelude(deploy_to, host);
    s.push_str(
        r#"if [ -d "$SHIP_DEPLOY_TO/.ship/lock" ]; then
  printf 'removed the lock held by %s\n' "$(cat "$SHIP_DEPLOY_TO/.ship/lock/info" 2>/dev/null || echo 'an unknown holder')"
  rm -rf "$SHIP_DEPLOY_TO/.ship/lock"
else
  echo "not locked"
fi
"#,
    );
    s
}

/// What `check` looks at on a host, one `name: ok|FAIL detail` line each.
pub fn check_script(deploy_to: &str, host: &str, linked_files: &[String]) -> String {
    let mut s = prelude(deploy_to, host);
    s.push_str(
        r#"ship_fail=0
say() { printf '%s: %s\n' "$1" "$2"; }
d="$SHIP_DEPLOY_TO"
while [ ! -e "$d" ]; do d=$(dirname "$d"); done
if [ -w "$d" ]; then say deploy_to "ok: $SHIP_DEPLOY_TO is writable"; else say deploy_to "FAIL: $d is not writable"; ship_fail=1; fi
ship_missing=
"#,
    );
    for f in linked_files {
        let _ = writeln!(
            s,
            "[ -e \"$SHIP_DEPLOY_TO/shared/\"{q} ] || ship_missing=\"$ship_missing \"{q}",
            q = quote(f)
        );
    }
    s.push_str(
        r#"if [ -n "$ship_missing" ]; then say linked_files "FAIL: missing from $SHIP_DEPLOY_TO/shared/:$ship_missing"; ship_fail=1; else say linked_files "ok"; fi
if [ -d "$SHIP_DEPLOY_TO/.ship/lock" ]; then say lock "held by $(cat "$SHIP_DEPLOY_TO/.ship/lock/info" 2>/dev/null || echo 'an unknown holder')"; else say lock "ok: free"; fi
ship_free=$(df -Pk "$d" | awk 'NR==2 {print $4}')
if [ "${ship_free:-0}" -lt 10240 ]; then say disk "FAIL: ${ship_free:-0} KiB free"; ship_fail=1; else say disk "ok: $((ship_free / 1024)) MiB free"; fi
for ship_t in tar gzip sha256sum; do command -v "$ship_t" >/dev/null || { say tools "FAIL: $ship_t is missing"; ship_fail=1; }; done
exit $ship_fail
"#,
    );
    s
}

/// Runs the user's command with `sh -c` in the live release (or the home directory when
/// nothing is live), stopped on the host at `limit`, or when the script's input ends (see
/// [`followed`]: hold it open while the command runs).
pub fn run_script(
    deploy_to: &str,
    host: &str,
    command: &str,
    limit: std::time::Duration,
) -> String {
    let mut s = prelude(deploy_to, host);
    let _ = writeln!(
        s,
        "if [ -d \"$SHIP_DEPLOY_TO/current\" ]; then cd \"$SHIP_DEPLOY_TO/current\"; fi\n{}\nexit $ship_rc",
        followed(&limited(command, limit))
    );
    s
}

/// Runs `shell` with its output in a file, printing that file's lines as they come until
/// `shell` exits, then the rest; sets `ship_rc` to its status. Its output never is the
/// session's, so a daemon it starts without redirections holds a file, not the session:
/// the command is over when its shell exits (as a deploy's step, see `protocol::step`).
///
/// `shell` is exec'd in its own subshell (a [`limited`] command is `timeout`, which stops
/// its whole process group at a signal). The script's standard input is the word to go on:
/// when it ends, `shell` gets SIGTERM. The caller keeps that input open while the command
/// runs and closes it to stop the command (cargo ship does at a Ctrl-C or a SIGTERM: see
/// `commands::on_hosts_until_stopped`); a cargo ship killed outright closes it too, by its
/// dropped connection or pipe. A command started over SSH is otherwise left running when
/// the one who started it is gone. So a caller with nothing to say does not pass
/// `/dev/null` or no input: that stops the command at once.
pub fn followed(shell: &str) -> String {
    // The watcher reads the script's input through a copy on fd 3 (an asynchronous list's
    // own standard input is /dev/null); nothing else keeps that copy. When it fires, it
    // leaves a mark: the command was stopped, so what is left of its process group (`timeout`
    // leads it; a member that ignores SIGTERM outlives `timeout`) is killed, and what it
    // wrote but was not relayed yet is not (it stops now). Once the command runs, SIGPIPE is
    // ignored (never by the command): a write to a dropped connection (the shell's own
    // "Terminated") must not kill this script before it cleans up (and its caller's EXIT
    // trap runs).
    format!(
        r#"ship_out=$(mktemp "${{TMPDIR:-/tmp}}/cargo-ship.XXXXXX")
( exec {shell} ) </dev/null >"$ship_out" 2>&1 &
ship_c=$!
trap '' PIPE
exec 3<&0
( IFS= read -r ship_x <&3 || :; : >"$ship_out.stop"; kill -TERM "$ship_c" 2>/dev/null ) &
ship_w=$!
exec 3<&-
sleep 2147483647 </dev/null >/dev/null 2>&1 &
ship_g=$!
tail -c +1 -s 0.1 -f --pid="$ship_g" "$ship_out" 2>/dev/null &
ship_t=$!
ship_rc=0
wait "$ship_c" 2>/dev/null || ship_rc=$?
kill "$ship_w" 2>/dev/null || true
wait "$ship_w" 2>/dev/null || true
if [ -e "$ship_out.stop" ] || [ "$ship_rc" -eq 124 ]; then
  kill -s KILL -- "-$ship_c" 2>/dev/null || true
fi
if [ -e "$ship_out.stop" ]; then kill "$ship_t" 2>/dev/null || true; fi
kill "$ship_g" 2>/dev/null || true
wait "$ship_g" 2>/dev/null || true
wait "$ship_t" 2>/dev/null || true
trap - PIPE
rm -f "$ship_out" "$ship_out.stop""#
    )
}

/// A user's command, run with `sh -c` under `timeout`: at `limit` its whole process group is
/// stopped on the host (TERM, then KILL five seconds later), not only abandoned here.
pub fn limited(command: &str, limit: std::time::Duration) -> String {
    format!(
        "timeout -k 5 {} sh -c {}",
        limit.as_secs().max(1),
        quote(command)
    )
}

/// The plain page `maintenance on` writes when no `page` is configured.
pub const MAINTENANCE_PAGE: &str = "<!doctype html>\n<meta charset=\"utf-8\">\n<title>Down for maintenance</title>\n<h1>Down for maintenance</h1>\n<p>We will be back shortly.</p>\n";

/// Where the site's maintenance state is kept on a host: maintenance belongs to the site,
/// not to a release, so a deploy or a rollback carries it to the release it makes live.
pub const MAINTENANCE_MARK: &str = "$SHIP_DEPLOY_TO/.ship/maintenance";

/// Shell run in a release's directory that puts the maintenance page up there (`on`) or
/// takes it down, refusing to write or remove through a symlink the artifact has on the way.
/// A configured `page` the release does not ship is an error, or (`fallback`: the site is in
/// maintenance and must stay so) replaced by the built-in page.
fn page(cfg: &crate::config::MaintenanceConfig, on: bool, label: &str, fallback: bool) -> String {
    let mut s = format!(
        "ship_file={}
",
        quote(&cfg.file)
    );
    s.push_str(&crate::script::refuse_links_on_the_way(
        "",
        &[&cfg.file],
        "write the maintenance page",
    ));
    if !on {
        s.push_str("rm -f \"$ship_file\"\n");
        return s;
    }
    if cfg.page.is_none() && !fallback {
        let _ = writeln!(
            s,
            "if [ -L \"$ship_file\" ]; then\n  echo \"cargo-ship: $SHIP_HOST: {label}/$ship_file is a symlink: refusing to write the maintenance page through it\" >&2\n  exit 1\nfi"
        );
    }
    s.push_str("mkdir -p \"$(dirname \"$ship_file\")\"\n");
    match &cfg.page {
        Some(page) if fallback => {
            let _ = writeln!(
                s,
                "ship_page={}\nif [ -f \"$ship_page\" ]; then ln -sfn \"$(pwd -P)/$ship_page\" \"$ship_file\"; else\n  echo \"cargo-ship: $SHIP_HOST: the release has no maintenance page $ship_page: the built-in page is up instead\" >&2\n  rm -f \"$ship_file\"; printf '%s' {} > \"$ship_file\"\nfi",
                quote(page),
                quote(MAINTENANCE_PAGE)
            );
        }
        Some(page) => {
            let _ = writeln!(
                s,
                "ship_page={}\n[ -f \"$ship_page\" ] || {{ echo \"cargo-ship: the release on $SHIP_HOST has no maintenance page $ship_page\" >&2; exit 1; }}\n\
                 ln -sfn \"$(pwd -P)/$ship_page\" \"$ship_file\"",
                quote(page)
            );
        }
        // Following the site, whatever is there (a link this page was, or one the artifact
        // ships) is replaced, never written through.
        None if fallback => {
            let _ = writeln!(
                s,
                "rm -f \"$ship_file\"; printf '%s' {} > \"$ship_file\"",
                quote(MAINTENANCE_PAGE)
            );
        }
        None => {
            let _ = writeln!(
                s,
                "printf '%s' {} > \"$ship_file\"",
                quote(MAINTENANCE_PAGE)
            );
        }
    }
    s
}

/// Shell run in a release's directory that takes down a maintenance page cargo ship put up
/// there (the built-in page, or a link to the configured one), and nothing else: a file the
/// artifact ships at that path is the release's own.
fn page_down_if_ours(cfg: &crate::config::MaintenanceConfig) -> String {
    let mut s = format!("ship_file={}\n", quote(&cfg.file));
    // The built-in page (also what stands in for a configured page a release lacks), or
    // the link to the configured page.
    let mut ours = format!(
        "{{ [ -f \"$ship_file\" ] && [ ! -L \"$ship_file\" ] && [ \"$(cat \"$ship_file\")\" = {} ]; }}",
        quote(MAINTENANCE_PAGE.trim_end())
    );
    if let Some(page) = &cfg.page {
        let _ = write!(
            ours,
            " || {{ [ -L \"$ship_file\" ] && [ \"$(readlink \"$ship_file\")\" = \"$(pwd -P)/\"{} ]; }}",
            quote(page)
        );
    }
    let _ = writeln!(s, "if {ours}; then rm -f \"$ship_file\"; fi");
    s
}

/// Shell that makes the maintenance page of release directory `dir` (a path the shell
/// expands, e.g. `"$SHIP_RELEASE_PATH"`) follow the site: up when the site is in
/// maintenance ([`MAINTENANCE_MARK`]), down otherwise. A deploy runs it on the new release
/// before the switch, a rollback on the release it makes live before activating it, so the
/// page neither goes down nor comes up by itself.
pub fn maintenance_follows_site(cfg: &crate::config::MaintenanceConfig, dir: &str) -> String {
    format!(
        "( cd {dir}\nif [ -e \"{MAINTENANCE_MARK}\" ]; then\n{}else\n{}fi )",
        page(cfg, true, "the release", true),
        page_down_if_ours(cfg)
    )
}

/// Puts up (`on`) or takes down the maintenance page in the live release, with the
/// configured `before` and `after` commands around it (run in `current/` with
/// `SHIP_MAINTENANCE=on|off`), and records the site's state ([`MAINTENANCE_MARK`]) for the
/// deploys and rollbacks that follow.
pub fn maintenance_script(
    deploy_to: &str,
    host: &str,
    cfg: &crate::config::MaintenanceConfig,
    on: bool,
    lock_info: &str,
    limit: std::time::Duration,
) -> String {
    let mut s = prelude(deploy_to, host);
    // Under the lock, as a deploy or a rollback: the page is never written into a release
    // while another command moves `current`.
    let _ = writeln!(
        s,
        "[ -d \"$SHIP_DEPLOY_TO/current\" ] || {{ echo \"cargo-ship: nothing is live on $SHIP_HOST: no release to put a maintenance page in\" >&2; exit 1; }}\n\
         SHIP_LOCK_INFO={}\n{}\ntrap 'rm -rf \"$SHIP_DEPLOY_TO/.ship/lock\"' EXIT",
        quote(lock_info),
        protocol::take_lock()
    );
    let state = if on { "on" } else { "off" };
    let _ = writeln!(
        s,
        "[ -d \"$SHIP_DEPLOY_TO/current\" ] || {{ echo \"cargo-ship: nothing is live on $SHIP_HOST: no release to put a maintenance page in\" >&2; exit 1; }}\n\
         cd \"$SHIP_DEPLOY_TO/current\"\n\
         SHIP_MAINTENANCE={state}\nexport SHIP_MAINTENANCE"
    );
    if let Some(before) = &cfg.before {
        let _ = writeln!(
            s,
            "{}\n[ \"$ship_rc\" -eq 0 ] || exit \"$ship_rc\"",
            followed(&limited(before, limit))
        );
    }
    s.push_str(&page(cfg, on, "current", false));
    if on {
        let _ = writeln!(
            s,
            "printf '%s\\n' \"$SHIP_LOCK_INFO\" > \"{MAINTENANCE_MARK}\""
        );
    } else {
        let _ = writeln!(s, "rm -f \"{MAINTENANCE_MARK}\"");
    }
    if let Some(after) = &cfg.after {
        let _ = writeln!(
            s,
            "{}\n[ \"$ship_rc\" -eq 0 ] || exit \"$ship_rc\"",
            followed(&limited(after, limit))
        );
    }
    let _ = writeln!(s, "echo \"maintenance {state}: current/$ship_file\"");
    s
}
