//! The host protocol, in one place: what a host's script prints to say where it is, what
//! cargo ship sends it, the exit statuses that mean something, the shell that takes the
//! lock, reads the host's state, writes the records and releases the lock, and the parsers
//! of all of it. Pure: it writes and reads text.
//!
//! # The control channel
//!
//! A host's script says where it is on its standard output, one line at a time, each line
//! framed with the deploy's **nonce**: `<nonce> start 7 restart`, `<nonce> end 7 0`,
//! `<nonce> segment 2`, `<nonce> state current …`. Nothing a user's command prints can forge
//! such a line or hold the channel open:
//!
//! - every step but `lock` runs with its standard output and error in a file on the host
//!   (`.ship/log/<release>.<step>`) and standard input from `/dev/null` (`upload` reads the
//!   artifact from the channel); the last lines of that file are relayed afterwards, each
//!   framed as `<nonce> out <step> <text>`, so they are data, never control;
//! - the nonce reaches the script on its standard input, first line, into a shell variable
//!   that is never exported: no command the script starts is given it, in its environment or
//!   its arguments (code running as the deploy user could still dig it out of `/proc`: the
//!   nonce guards against output, not against a deliberate attack by deployed code);
//! - a control line is found anywhere in a line, so bytes written onto the channel without a
//!   newline cannot hide one;
//! - a daemon a restart leaves running holds that file, not the session: the session ends
//!   when the script ends.
//!
//! ```
//! use ship_core::{Control, Nonce, protocol::parse};
//! let nonce = Nonce::from_bytes(&[7; 16]);
//! let line = format!("{} end 4 0", nonce.as_str());
//! assert_eq!(parse(&line, &nonce), Some(Control::End { id: 4, status: 0 }));
//! // A task that prints what it thinks a marker looks like prints data.
//! assert_eq!(parse("::ship::segment 2", &nonce), None);
//! assert_eq!(parse(&format!("{} segment 2", Nonce::from_bytes(&[8; 16]).as_str()), &nonce), None);
//! ```

use std::collections::BTreeMap;
use std::fmt::Write;

/// The exit status of `lock` when another deploy holds the lock.
pub const LOCKED_STATUS: i32 = 75;
/// The exit status of `link` when a linked file is missing from `shared/`.
pub const MISSING_SHARED_STATUS: i32 = 76;
/// The exit status of a step whose deploy no longer holds the host's lock.
pub const LOST_LOCK_STATUS: i32 = 77;

/// The shell variable that holds the nonce in a host's script (never exported).
pub const NONCE_VAR: &str = "ship_n";

/// Every variable cargo ship sets or exports for the scripts and tasks it runs, on the
/// hosts and on this machine: the one list. A cargo ship started by a task (a local task
/// that deploys another app, say) inherits them, so the loader never reads them as
/// configuration (`SHIP_DEPLOY_TO` is this deploy's, not the nested run's `deploy_to`; see
/// [`is_task_variable`]). A test scans the scripts cargo ship writes for `export` and
/// `SHIP_*=` and fails on a name missing here.
pub const TASK_VARIABLES: &[&str] = &[
    "SHIP_APP",
    "SHIP_ARTIFACT",
    "SHIP_CLEANUP",
    "SHIP_DEPLOYER",
    "SHIP_DEPLOY_TO",
    "SHIP_DIGEST",
    "SHIP_HOST",
    "SHIP_LOCK_INFO",
    "SHIP_LOG",
    "SHIP_MAINTENANCE",
    "SHIP_RECORDS",
    "SHIP_RELEASE",
    "SHIP_RELEASE_PATH",
    "SHIP_REVISION",
    "SHIP_ROLE",
    "SHIP_STAGE",
    "SHIP_STARTED_AT",
];

/// The prefix of a host's own variables (`SHIP_VAR_<NAME>`, from a dynamic inventory), set
/// for its scripts like [`TASK_VARIABLES`].
pub const HOST_VAR_PREFIX: &str = "SHIP_VAR_";

/// Whether `name` is a variable cargo ship sets for scripts and tasks ([`TASK_VARIABLES`],
/// [`HOST_VAR_PREFIX`]): never configuration.
///
/// ```
/// use ship_core::protocol::is_task_variable;
/// assert!(is_task_variable("SHIP_DEPLOY_TO"));
/// assert!(is_task_variable("SHIP_VAR_REGION"));
/// assert!(!is_task_variable("SHIP_KEEP_RELEASES"));
/// ```
pub fn is_task_variable(name: &str) -> bool {
    TASK_VARIABLES.contains(&name) || name.starts_with(HOST_VAR_PREFIX)
}

/// The `SHIP_*` variables a piece of shell (or the source text that writes it) sets: every
/// `SHIP_<NAME>=`, `read -r SHIP_<NAME>`, and each `SHIP_<NAME>` word of an `export`. A name
/// cut short by a placeholder (`SHIP_VAR_{k}=` in a format string) is returned as written,
/// a prefix. The tests that keep [`TASK_VARIABLES`] complete run it over what cargo ship writes.
///
/// ```
/// use ship_core::protocol::variables_set_in;
/// let found = variables_set_in("SHIP_A=1\nexport SHIP_A SHIP_B\nIFS= read -r SHIP_C\necho \"$SHIP_D\"\nexport SHIP_VAR_{k}");
/// assert_eq!(found.into_iter().collect::<Vec<_>>(), ["SHIP_A", "SHIP_B", "SHIP_C", "SHIP_VAR_"]);
/// ```
pub fn variables_set_in(shell: &str) -> std::collections::BTreeSet<String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut found = std::collections::BTreeSet::new();
    let mut from = 0;
    while let Some(at) = shell[from..].find("SHIP_") {
        let i = from + at;
        let before = shell[..i].chars().next_back();
        let tail = &shell[i..];
        let len = tail.find(|c: char| !word(c)).unwrap_or(tail.len());
        let name = &tail[..len];
        let next = tail[len..].chars().next();
        // The line up to here (a source line, or a line of shell).
        let line_start = shell[..i]
            .rfind('\n')
            .max(shell[..i].rfind("\\n").map(|n| n + 1))
            .map_or(0, |n| n + 1);
        let line = &shell[line_start..i];
        // The words since the last `export` of this command (not past `;`, `&&`, `|`).
        let exported = line
            .rsplit_once("export ")
            .is_some_and(|(_, words)| !words.contains([';', '&', '|', '$', '"']));
        let read = line.trim_end().ends_with("read -r");
        // A word starts here: not inside another name, not a use (`$SHIP_X`, `${SHIP_X}`);
        // in source text, after an escaped newline (`\nSHIP_X=`).
        let starts_word =
            shell[..i].ends_with("\\n") || before.is_none_or(|c| !word(c) && c != '$' && c != '{');
        if starts_word && (next == Some('=') || next == Some('{') || exported || read) {
            found.insert(name.to_owned());
        }
        from = i + len;
    }
    found
}

/// How many of a step's last lines a [`Transcript`] keeps (and the failure message quotes);
/// every line relayed is reported as it comes ([`Control::Out`]).
pub const OUTPUT_LINES: usize = 20;

/// A deploy's secret: it frames every control line. Made from random bytes by the driver
/// (the pure modules take it as an input).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nonce(String);

impl Nonce {
    /// The nonce of these bytes, as lower-case hex.
    pub fn from_bytes(bytes: &[u8]) -> Nonce {
        let mut s = String::with_capacity(bytes.len() * 2 + 2);
        s.push_str("n.");
        for b in bytes {
            let _ = write!(s, "{b:02x}");
        }
        Nonce(s)
    }

    /// Its text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One control line, read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Control {
    /// A step started.
    Start {
        /// The step's id.
        id: usize,
    },
    /// A line a step printed (relayed after it ended, or as it came when followed live).
    Out {
        /// The step's id.
        id: usize,
        /// The line.
        text: String,
    },
    /// A step ended with `status`.
    End {
        /// The step's id.
        id: usize,
        /// Its exit status.
        status: i32,
    },
    /// A line of the host's state (see [`Probe`]).
    State(String),
    /// The host finished segment `k` and waits for the next `go`.
    Segment(usize),
    /// The first part of a two-part operation is done ([`then_eval`]).
    Ready,
    /// Task `id` ended, and these processes still hold its output: `pid(command)`, space
    /// separated. They run on; the deploy did not wait for them.
    Held {
        /// The step's id.
        id: usize,
        /// The processes.
        processes: String,
    },
}

/// Reads one line of a host's standard output: `None` when it is not a control line of this
/// nonce's deploy.
pub fn parse(line: &str, nonce: &Nonce) -> Option<Control> {
    // Anywhere in the line: bytes without a newline that something else wrote on the channel
    // before it do not hide a control line (the nonce cannot be guessed, and a control line
    // is one `printf`, one write, never split).
    let at = line.find(nonce.as_str())?;
    let rest = line[at + nonce.as_str().len()..].strip_prefix(' ')?;
    let (verb, args) = rest.split_once(' ').unwrap_or((rest, ""));
    let number = |s: &str| s.parse::<usize>().ok();
    match verb {
        "start" => Some(Control::Start {
            id: number(args.split(' ').next()?)?,
        }),
        "out" => {
            let (id, text) = args.split_once(' ').unwrap_or((args, ""));
            Some(Control::Out {
                id: number(id)?,
                text: text.to_owned(),
            })
        }
        "end" => {
            let (id, status) = args.split_once(' ')?;
            Some(Control::End {
                id: number(id)?,
                status: status.trim().parse().ok()?,
            })
        }
        "state" => Some(Control::State(args.to_owned())),
        "segment" => Some(Control::Segment(number(args.trim())?)),
        "ready" => Some(Control::Ready),
        "held" => {
            let (id, processes) = args.split_once(' ').unwrap_or((args, ""));
            Some(Control::Held {
                id: number(id)?,
                processes: processes.trim().to_owned(),
            })
        }
        _ => None,
    }
}

/// How a step's standard input is connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepIo {
    /// `lock`: ours alone; it prints the state on the control channel itself.
    Control,
    /// `upload`: reads the artifact from the channel; its output goes to its log.
    Artifact,
    /// A built-in step: input from `/dev/null`, output to its log.
    Logged,
    /// A built-in step that says what it did itself: as [`StepIo::Logged`], and its body's
    /// `ship_say LINE...` puts each line on the control channel as its output (descriptor 3
    /// in its subshell only), so that a step that went well leaves an empty log and no
    /// program is started to relay it (`cleanup`'s "removed ..." lines). Never a task's or
    /// a layout's command: nothing but cargo ship's own shell writes to the channel.
    Says,
    /// A user's or an adapter's task: as [`StepIo::Logged`], and once it ended, the processes
    /// it left holding its output (a daemon started without redirections) are named.
    Task,
}

/// The shell every step after `lock` starts with: a script left running after its deploy
/// was stopped (a timeout, a lost connection) does nothing more once the host has been put
/// back and unlocked.
pub fn lock_guard() -> String {
    format!(
        "{{ IFS= read -r ship_held < \"$SHIP_DEPLOY_TO/.ship/lock/info\"; }} 2>/dev/null && [ \"$ship_held\" = \"$SHIP_LOCK_INFO\" ] || {{ echo \"cargo-ship: $SHIP_HOST: this deploy no longer holds the lock\" >&2; exit {LOST_LOCK_STATUS}; }}"
    )
}

/// How many bytes of a step's output are relayed at most (the last ones; the host keeps the
/// whole output in the step's log).
pub const RELAYED_BYTES: u64 = 256 * 1024;

/// The shell functions every segment script defines for its steps ([`step`]): relaying a
/// step's output when it ended (`ship_relay`: its end, by one `tail`, the bytes counted by
/// the shell; never read by the shell itself, which takes a byte per system call and could
/// not stop within a long line or a file still growing), or as it comes when the deploy is followed
/// live (`ship_follow` … `ship_unfollow`, when the first line of the conversation asked for
/// it: `ship_live`; GNU `tail --pid` follows the file until a guard process is stopped,
/// `sed -u` frames each line), and naming the processes that still hold a task's output
/// (`ship_held`).
pub fn step_functions() -> String {
    let n = NONCE_VAR;
    #[allow(non_snake_case)]
    let RELAYED_PLUS_ONE = RELAYED_BYTES + 1;
    format!(
        r#"if command -v flock >/dev/null 2>&1; then ship_flock=1; else ship_flock=; fi
# sha256 of standard input, its hex first: openssl's (the CPU's SHA instructions, about three
# times sha256sum's speed) when the host has it; a command, not a function: no extra process.
# Where it fails (a broken openssl), each use falls back to sha256sum.
if command -v openssl >/dev/null 2>&1; then ship_sha256='openssl dgst -sha256 -r'; else ship_sha256=sha256sum; fi
ship_relay() {{
  [ -s "$2" ] || return 0
  tail -c {RELAYED_PLUS_ONE} "$2" | {{
    ship_b=0
    while IFS= read -r ship_l; do
      ship_b=$((ship_b + ${{#ship_l}} + 1))
      printf '%s out %s %s\n' "${n}" "$1" "$ship_l"
    done
    if [ -n "$ship_l" ]; then
      ship_b=$((ship_b + ${{#ship_l}}))
      printf '%s out %s %s\n' "${n}" "$1" "$ship_l"
    fi
    [ "$ship_b" -le {RELAYED_BYTES} ] || printf '%s out %s [only the end of the output is relayed: the whole output is in %s on %s]\n' "${n}" "$1" "$2" "$SHIP_HOST"
  }}
}}
ship_say() {{
  # a line each: a newline inside one (a file name can hold one) starts another `out` line,
  # never a line of its own on the channel
  for ship_l; do
    while :; do
      case "$ship_l" in
        *"
"*) printf '%s out %s %s\n' "${n}" "$ship_step" "${{ship_l%%"
"*}}" >&3; ship_l=${{ship_l#*"
"}} ;;
        *) printf '%s out %s %s\n' "${n}" "$ship_step" "$ship_l" >&3; break ;;
      esac
    done
  done
}}
ship_follow() {{
  sleep 2147483647 </dev/null >/dev/null 2>&1 &
  ship_g=$!
  tail -n +1 -s 0.1 -f --pid="$ship_g" "$2" 2>/dev/null | sed -u "s/^/${n} out $1 /" &
  ship_t=$!
}}
ship_unfollow() {{
  kill "$ship_g" 2>/dev/null || true
  wait "$ship_g" 2>/dev/null || true
  wait "$ship_t" 2>/dev/null || true
  [ -z "$(tail -c 1 "$1" 2>/dev/null)" ] || printf '\n'
}}
ship_held() {{
  # the body locked its output's open file (flock): lockable now, nothing holds it
  # (on a descriptor of the shell's: flock starts no program of its own)
  if [ -n "$ship_flock" ] && [ ! -e "$2.scan" ] && flock -n 9 9<"$2" 2>/dev/null; then return 0; fi
  ship_h=
  for ship_f in /proc/[0-9]*/fd/[0-9]*; do
    [ "$ship_f" -ef "$2" ] || continue
    ship_f=${{ship_f#/proc/}}; ship_f=${{ship_f%%/*}}
    case " $ship_h " in *" $ship_f "*) ;; *) ship_h="$ship_h $ship_f" ;; esac
  done 2>/dev/null
  [ -n "$ship_h" ] || return 0
  ship_o=
  for ship_f in $ship_h; do
    ship_c=; {{ IFS= read -r ship_c < "/proc/$ship_f/comm"; }} 2>/dev/null || true
    ship_o="$ship_o $ship_f($ship_c)"
  done
  printf '%s held %s%s\n' "${n}" "$1" "$ship_o"
}}
"#
    )
}

/// One step of a host's script: its start and end on the control channel, its body in a
/// subshell, its output in its log file, relayed when it ended (at most the last
/// [`RELAYED_BYTES`]) or, when the deploy is followed live, as it comes. The step is over
/// when its subshell exits, whatever it left running: the output is a file, so a process
/// that keeps it open holds nothing up (a task's such processes are named: `held`).
pub fn step(id: usize, name: &str, body: &str, io: StepIo) -> String {
    let n = NONCE_VAR;
    let mut s = String::new();
    if io != StepIo::Control {
        s.push_str(&lock_guard());
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "printf '%s start {id} %s\\n' \"${n}\" {}",
        crate::shell::quote(name)
    );
    if body.trim() == ":" {
        // Nothing to run (no adapter to install, no health check): no subshell, no log.
        let _ = writeln!(s, "printf '%s end {id} 0\\n' \"${n}\"");
        return s;
    }
    s.push_str("set +e\n");
    let log = format!("\"$SHIP_LOG.{id}\"");
    let logged = matches!(io, StepIo::Logged | StepIo::Says | StepIo::Task);
    if logged {
        let _ = writeln!(
            s,
            "[ -z \"${{ship_live-}}\" ] || {{ : >{log}; ship_follow {id} {log}; }}"
        );
    }
    if io == StepIo::Task {
        // A fresh file, locked by the body through its output (see `ship_held`): a lock
        // belongs to the open file, so whatever the task leaves running with that output
        // keeps it locked.
        let _ = write!(
            s,
            "(\n  [ -z \"$ship_flock\" ] || flock -n 1 2>/dev/null || : >\"$SHIP_LOG.{id}.scan\"\n  set -eu\n{}\n)",
            indent(body)
        );
    } else if io == StepIo::Says {
        let _ = write!(
            s,
            "(\n  ship_step={id}\n  set -eu\n{}\n) 3>&1",
            indent(body)
        );
    } else {
        let _ = write!(s, "(\n  set -eu\n{}\n)", indent(body));
    }
    match io {
        StepIo::Control => s.push_str(" </dev/null"),
        StepIo::Artifact => {
            let _ = write!(s, " >{log} 2>&1");
        }
        StepIo::Logged | StepIo::Says | StepIo::Task => {
            let _ = write!(s, " </dev/null >{log} 2>&1");
        }
    }
    s.push_str("\nship_rc=$?\nset -e\n");
    match io {
        StepIo::Control => {}
        StepIo::Artifact => {
            let _ = writeln!(s, "ship_relay {id} {log}");
        }
        StepIo::Logged | StepIo::Says | StepIo::Task => {
            let _ = writeln!(
                s,
                "if [ -n \"${{ship_live-}}\" ]; then ship_unfollow {log}; else ship_relay {id} {log}; fi"
            );
        }
    }
    if io == StepIo::Task {
        let _ = writeln!(s, "ship_held {id} {log}");
    }
    let _ = write!(
        s,
        "printf '%s end {id} %s\\n' \"${n}\" \"$ship_rc\"\n[ \"$ship_rc\" -eq 0 ] || exit \"$ship_rc\"\n"
    );
    s
}

fn indent(body: &str) -> String {
    body.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("  {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Takes `.ship/lock` with one `mkdir`, writing `$SHIP_LOCK_INFO` into it; exits
/// [`LOCKED_STATUS`], naming the holder on standard error, when another holds it. In a
/// batch of a rolling deploy (the conversation sets `ship_hold`), the lock this deploy took
/// before batch 1 ([`hold`]) is taken as its own.
pub fn take_lock() -> String {
    format!(
        r#"if mkdir "$SHIP_DEPLOY_TO/.ship/lock" 2>/dev/null; then
  printf '%s\n' "$SHIP_LOCK_INFO" > "$SHIP_DEPLOY_TO/.ship/lock/info" || {{
    rm -rf "$SHIP_DEPLOY_TO/.ship/lock"
    echo "cargo-ship: $SHIP_HOST: cannot write $SHIP_DEPLOY_TO/.ship/lock/info (is the disk full?)" >&2
    exit 1
  }}
  # This script's process group: a recovery stops what it left running (a step cut at
  # its time limit, a session lost).
  printf '%s\n' "$$" > "$SHIP_DEPLOY_TO/.ship/lock/pid" || true
elif [ -n "${{ship_hold-}}" ] && {{ IFS= read -r ship_held < "$SHIP_DEPLOY_TO/.ship/lock/info"; }} 2>/dev/null && [ "$ship_held" = "$SHIP_LOCK_INFO" ]; then
  # A rolling deploy took every host's lock before its first batch (`hold`): this batch
  # goes on under it, and a recovery stops this script's process group.
  printf '%s\n' "$$" > "$SHIP_DEPLOY_TO/.ship/lock/pid" || true
elif [ ! -d "$SHIP_DEPLOY_TO/.ship/lock" ]; then
  # Not held by anyone: it could not be made. Say why, not "locked".
  if [ -w "$SHIP_DEPLOY_TO/.ship" ]; then ship_why="is the disk full or read-only?"; else ship_why="$SHIP_DEPLOY_TO/.ship is not writable (permissions, or a read-only file system)"; fi
  echo "cargo-ship: $SHIP_HOST: cannot create $SHIP_DEPLOY_TO/.ship/lock: $ship_why" >&2
  exit 1
else
  echo "cargo-ship: $SHIP_HOST is locked by another deploy: $(cat "$SHIP_DEPLOY_TO/.ship/lock/info" 2>/dev/null || echo 'holder unknown')" >&2
  exit {LOCKED_STATUS}
fi"#
    )
}

/// The `lock` step of a deploy: the directories, the lock, then the host's state on the
/// control channel (see [`Probe`]).
pub fn lock_step() -> String {
    format!(
        r#"[ -d "$SHIP_DEPLOY_TO/.ship/artifacts" ] && [ -d "$SHIP_DEPLOY_TO/.ship/log" ] && [ -d "$SHIP_DEPLOY_TO/releases" ] && [ -d "$SHIP_DEPLOY_TO/shared" ] ||
  mkdir -p "$SHIP_DEPLOY_TO/.ship/artifacts" "$SHIP_DEPLOY_TO/.ship/log" "$SHIP_DEPLOY_TO/releases" "$SHIP_DEPLOY_TO/shared"
{}
{}
if [ -s "$SHIP_ARTIFACT" ]; then
  # Kept from an earlier deploy: used only if it still is what the plan's digest names
  # (else removed, and sent again; the upload step checks what it receives).
  case "$SHIP_ARTIFACT" in
    *.zst) ship_sum=$(zstd -dcq "$SHIP_ARTIFACT" 2>/dev/null | $ship_sha256 2>/dev/null) ||
      ship_sum=$(zstd -dcq "$SHIP_ARTIFACT" 2>/dev/null | sha256sum) ;;
    *) ship_sum=$(gzip -dc "$SHIP_ARTIFACT" 2>/dev/null | $ship_sha256 2>/dev/null) ||
      ship_sum=$(gzip -dc "$SHIP_ARTIFACT" 2>/dev/null | sha256sum) ;;
  esac
  if [ "${{ship_sum%% *}}" = "$SHIP_DIGEST" ]; then
    printf '%s state artifact present\n' "${n}"
  else
    rm -f "${{SHIP_ARTIFACT%.*}}.zst" "${{SHIP_ARTIFACT%.*}}.gz"
    echo "cargo-ship: $SHIP_HOST: the kept artifact $SHIP_ARTIFACT does not have sha256 $SHIP_DIGEST: removed, it is sent again" >&2
  fi
fi
if command -v zstd >/dev/null 2>&1; then printf '%s state zstd\n' "${n}"; fi
{}
true"#,
        take_lock(),
        probe(),
        probe_preparing(),
        n = NONCE_VAR
    )
}

/// What the `lock` step of a plan with `delta = true` adds: the objects whose inode
/// changed since the last deploy's cleanup (`-cnewer .ship/objects.checked`; all of them
/// when there is no such stamp) are hashed, and those written since they came (a task
/// wrote a release's file in place) are removed, named on standard error; then a `state have <digest>` line for
/// each artifact whose objects are all in `.ship/objects` (the artifacts of the others are
/// forgotten), and `state artifact present` when that is this plan's.
pub fn delta_probe() -> String {
    format!(
        r#"if [ -d "$SHIP_DEPLOY_TO/.ship/objects" ]; then
  # Objects whose inode changed since the last deploy's cleanup (a write, even with its
  # mtime put back, changes the ctime) are hashed; a wrong one is removed and sent again.
  if [ -e "$SHIP_DEPLOY_TO/.ship/objects.checked" ]; then
    find "$SHIP_DEPLOY_TO/.ship/objects" -type f -cnewer "$SHIP_DEPLOY_TO/.ship/objects.checked" -print
  else
    find "$SHIP_DEPLOY_TO/.ship/objects" -type f -print
  fi | xargs -r sha256sum | while read -r ship_h ship_o; do
    ship_k=${{ship_o##*/}}
    if [ "$ship_h" != "${{ship_k%%.*}}" ]; then
      rm -f -- "$ship_o"
      echo "cargo-ship: $SHIP_HOST: the object $ship_k was written since it came (a release's file changed in place?): removed, it is sent again" >&2
    fi
  done
  for ship_s in "$SHIP_DEPLOY_TO"/.ship/artifacts/*.sums; do
    [ -f "$ship_s" ] || continue
    ship_d=${{ship_s##*/}}; ship_d=${{ship_d%.sums}}
    # Every object it lists is here: as many found by `ls` as the list has lines (names,
    # hex, a dot and digits, are safe words for xargs; one `ls`, not a shell loop reading
    # the list a byte at a time).
    ship_need=$(wc -l < "$ship_s") || ship_need=0
    ship_found=$(cd "$SHIP_DEPLOY_TO/.ship/objects" && awk '{{ print $2 }}' "$ship_s" | xargs -r ls -d -- 2>/dev/null | wc -l) || ship_found=-1
    if [ "$((ship_need))" -gt 0 ] && [ "$((ship_found))" -eq "$((ship_need))" ]; then
      printf '%s state have %s\n' "${n}" "$ship_d"
      if [ "$ship_d" = "$SHIP_DIGEST" ]; then printf '%s state artifact present\n' "${n}"; fi
    else
      rm -f -- "$ship_s" "${{ship_s%.sums}}.skel.tar" "${{ship_s%.sums}}.new"
    fi
  done
fi"#,
        n = NONCE_VAR
    )
}

/// Prints `current`, the `releases/` listing, the lock's holder and `.ship/releases.json`
/// as state lines, with the shell's builtins only. Where `current` leads is found by `cd -P`
/// in the substitution's subshell (no program: each costs a host about a millisecond) when
/// it is a directory right under `releases/`, said as `$SHIP_DEPLOY_TO/releases/<name>`
/// whatever the link's text; anything else (a link elsewhere, a dangling one, a directory)
/// is said as `readlink` reads it, exec'd by the subshell. (A failed substitution does not
/// fail `printf`, even under `set -e`.)
pub fn probe() -> String {
    format!(
        r#"printf '%s state current %s\n' "${n}" "$(cd -P "$SHIP_DEPLOY_TO/releases" 2>/dev/null && ship_p=$PWD && cd -P "$SHIP_DEPLOY_TO/current" 2>/dev/null && [ "${{PWD%/*}}" = "$ship_p" ] && printf '%s' "$SHIP_DEPLOY_TO/releases/${{PWD##*/}}" || exec readlink "$SHIP_DEPLOY_TO/current" 2>/dev/null)"
for ship_r in "$SHIP_DEPLOY_TO"/releases/*; do
  [ -e "$ship_r" ] && printf '%s state release %s\n' "${n}" "${{ship_r##*/}}"
done
if [ -f "$SHIP_DEPLOY_TO/.ship/releases.json" ]; then
  printf '%s state records\n' "${n}"
  while IFS= read -r ship_l || [ -n "$ship_l" ]; do printf '%s state json %s\n' "${n}" "$ship_l"; done < "$SHIP_DEPLOY_TO/.ship/releases.json"
  printf '%s state end\n' "${n}"
fi"#,
        n = NONCE_VAR
    )
}

/// The lock's holder as a state line, when the host is locked (for `releases` and `check`).
pub fn probe_lock() -> String {
    format!(
        r#"if [ -d "$SHIP_DEPLOY_TO/.ship/lock" ]; then
  printf '%s state lock %s\n' "${n}" "$(cat "$SHIP_DEPLOY_TO/.ship/lock/info" 2>/dev/null || echo 'holder unknown')"
fi"#,
        n = NONCE_VAR
    )
}

/// The release a killed deploy left half-made (`.ship/preparing`) and the releases
/// `revisions.log` says were deployed to the end (its last 200), as state lines: what a
/// rollback needs to tell a finished release from an unfinished one.
pub fn probe_history() -> String {
    format!(
        r#"{}
if [ -s "$SHIP_DEPLOY_TO/revisions.log" ]; then
  grep -o 'deployed as release [^ ]*' "$SHIP_DEPLOY_TO/revisions.log" | tail -n 200 | while read -r _ _ _ ship_id; do
    printf '%s state deployed %s\n' "${n}" "$ship_id"
  done
fi"#,
        probe_preparing(),
        n = NONCE_VAR
    )
}

/// Where a deploy marks the release it is preparing: one file per release directory,
/// holding the lock's text of the deploy that made it. A killed deploy leaves its file; the
/// next deploy's cleanup removes the release and the file; a deploy that fails removes only
/// its own. (`.ship/preparing`, a single file, is what older versions wrote: still read.)
pub const PREPARING: &str = "$SHIP_DEPLOY_TO/.ship/preparing.d";

/// Marks `$SHIP_RELEASE_PATH` as being prepared by this deploy.
pub fn mark_preparing() -> String {
    format!(
        r#"[ -d "{PREPARING}" ] || mkdir -p "{PREPARING}"
printf '%s\n' "$SHIP_LOCK_INFO" > "{PREPARING}/${{SHIP_RELEASE_PATH##*/}}""#
    )
}

/// The releases marked as being prepared, as state lines (builtins only).
pub fn probe_preparing() -> String {
    format!(
        r#"for ship_p in "{PREPARING}"/*; do
  [ -e "$ship_p" ] && printf '%s state preparing %s\n' "${n}" "${{ship_p##*/}}"
done
if [ -f "$SHIP_DEPLOY_TO/.ship/preparing" ]; then
  {{ IFS= read -r ship_p < "$SHIP_DEPLOY_TO/.ship/preparing"; }} 2>/dev/null && [ -n "$ship_p" ] && printf '%s state preparing %s\n' "${n}" "$ship_p"
fi"#,
        n = NONCE_VAR
    )
}

/// Writes `records` (a shell word holding one line of JSON) as `.ship/releases.json`, by a
/// rename.
pub fn write_records(records: &str) -> String {
    format!(
        "printf '%s\\n' {records} > \"$SHIP_DEPLOY_TO/.ship/releases.json.tmp\"\n\
         mv -f \"$SHIP_DEPLOY_TO/.ship/releases.json.tmp\" \"$SHIP_DEPLOY_TO/.ship/releases.json\""
    )
}

/// Runs `body` under this deploy's lock: the lock it holds (`.ship/lock/info` is
/// `$SHIP_LOCK_INFO`), or the lock taken again when it is free (a host that had finished and
/// unlocked, put back after another failed). A recovery never touches what another deploy
/// holds, its lock or its `.ship/preparing`: then it changes nothing, and exits
/// [`LOCKED_STATUS`] naming the holder when `must` (a revert that cannot be done), 0 when not
/// (an abort: whatever this deploy started there, the other deploy's cleanup owns now).
pub fn under_own_lock(body: &str, must: bool) -> String {
    format!(
        r#"{{ IFS= read -r ship_held < "$SHIP_DEPLOY_TO/.ship/lock/info"; }} 2>/dev/null || ship_held=
if [ "$ship_held" != "$SHIP_LOCK_INFO" ] && mkdir "$SHIP_DEPLOY_TO/.ship/lock" 2>/dev/null; then
  if printf '%s\n' "$SHIP_LOCK_INFO" > "$SHIP_DEPLOY_TO/.ship/lock/info" 2>/dev/null; then
    ship_held=$SHIP_LOCK_INFO
  else
    rm -rf "$SHIP_DEPLOY_TO/.ship/lock"
  fi
fi
if [ "$ship_held" = "$SHIP_LOCK_INFO" ]; then
{}
else
  echo "cargo-ship: $SHIP_HOST is locked by another deploy: ${{ship_held:-holder unknown}}" >&2
  exit {}
fi"#,
        indent(body),
        if must { LOCKED_STATUS } else { 0 }
    )
}

/// Stops what a deploy left running on the host: the processes of the process group of the
/// script that took the lock (`.ship/lock/pid`), when its session was cut or lost. Only
/// this deploy's: a process is killed only if it is in that group *and* has this release
/// and `deploy_to` in its environment, so a pid the system gave again to another process
/// (pids are reused quickly on a busy host) is never killed. Two passes: a process forked
/// during the first is found by the second. Run by a recovery under that deploy's own
/// lock; it is in a session (and a process group) of its own.
pub fn stop_left_running() -> String {
    r#"if [ -s "$SHIP_DEPLOY_TO/.ship/lock/pid" ]; then
  IFS= read -r ship_pid < "$SHIP_DEPLOY_TO/.ship/lock/pid" || true
  case "$ship_pid" in
    ''|*[!0-9]*) ;;
    *) [ "$ship_pid" = "$$" ] || (
      ship_x=') '
      for ship_pass in 1 2; do
        for ship_s in /proc/[0-9]*/stat; do
          { IFS= read -r ship_l < "$ship_s"; } 2>/dev/null || continue
          set -- ${ship_l##*"$ship_x"}
          [ "${3-}" = "$ship_pid" ] || continue
          ship_p=${ship_s%/stat}
          [ "$(tr '\0' '\n' < "$ship_p/environ" 2>/dev/null | grep -cxF -e "SHIP_RELEASE=$SHIP_RELEASE" -e "SHIP_DEPLOY_TO=$SHIP_DEPLOY_TO")" = 2 ] || continue
          kill -s KILL "${ship_p#/proc/}" 2>/dev/null || true
        done
      done
    ) ;;
  esac
fi"#
    .to_owned()
}

/// What a rolling deploy runs on every host before its first batch, in a session of its
/// own: the lock taken for the whole deploy (each batch's `lock` step then goes on under it,
/// see [`take_lock`]), or exit [`LOCKED_STATUS`] naming the holder. So a second deploy, or a
/// lock left by a killed one, stops a rolling deploy before any batch went live, never
/// between two batches.
pub fn hold() -> String {
    format!(
        "[ -d \"$SHIP_DEPLOY_TO/.ship\" ] || mkdir -p \"$SHIP_DEPLOY_TO/.ship\"\n{}",
        take_lock()
    )
}

/// Releases a lock [`hold`] took, if it still is this deploy's (`.ship/lock/info` is
/// `$SHIP_LOCK_INFO`): a rolling deploy's host whose batch never ran. A lock without its
/// text (a hold killed between its `mkdir` and writing it) is left, and said: exit 1.
pub fn release_hold() -> String {
    r#"{ IFS= read -r ship_held < "$SHIP_DEPLOY_TO/.ship/lock/info"; } 2>/dev/null || ship_held=
if [ "$ship_held" = "$SHIP_LOCK_INFO" ]; then
  rm -rf "$SHIP_DEPLOY_TO/.ship/lock"
elif [ -z "$ship_held" ] && [ -d "$SHIP_DEPLOY_TO/.ship/lock" ]; then
  echo "cargo-ship: $SHIP_HOST: $SHIP_DEPLOY_TO/.ship/lock holds no text: left, whose it is unknown" >&2
  exit 1
fi"#
        .to_owned()
}

/// Releases the lock alone.
pub fn unlock() -> String {
    "rm -rf \"$SHIP_DEPLOY_TO/.ship/lock\"".to_owned()
}

/// Releases the lock and this deploy's own mark of the release it prepared (never another
/// deploy's: see [`PREPARING`]).
pub fn release_lock() -> String {
    format!("rm -rf \"{PREPARING}/${{SHIP_RELEASE_PATH##*/}}\" \"$SHIP_DEPLOY_TO/.ship/lock\"")
}

/// The `upload` step of a plan with `delta = true`: as [`upload_step`], and also reads
/// `store <bytes>` then a bundle ([`crate::delta`]) unpacked in `.ship/`; then, when the
/// release is to be made from objects, checks the sha256 of every object that came and of
/// the skeleton, and that every object the release uses is there (an object kept from an
/// earlier deploy and written since was removed by the `lock` step, so is sent again).
/// On a mismatch the objects that came are removed with the skeleton and the manifest,
/// and the step fails: nothing is linked.
pub fn delta_upload_step() -> String {
    r#"ship_obj="$SHIP_DEPLOY_TO/.ship/objects"
ship_sums="$SHIP_DEPLOY_TO/.ship/artifacts/$SHIP_DIGEST.sums"
ship_forget() {
  if [ -f "${ship_sums%.sums}.new" ]; then
    while read -r ship_h ship_o; do
      case "$ship_o" in ../*) ;; *) rm -f -- "$ship_obj/$ship_o" ;; esac
    done < "${ship_sums%.sums}.new"
  fi
  rm -f -- "$ship_sums" "${ship_sums%.sums}.new" "${ship_sums%.sums}.skel.tar"
}
if [ ! -s "$SHIP_ARTIFACT" ] && [ ! -s "$ship_sums" ]; then
  # cargo ship sends a line, `store <bytes>`, or `gz`/`zst <bytes> <sha256>`, then the bytes
  IFS=' ' read -r ship_enc ship_bytes ship_bsum
  if [ "$ship_enc" = store ]; then
    [ -d "$ship_obj" ] || mkdir -p "$ship_obj"
    head -c "$ship_bytes" > "$ship_sums.part"
    if ! zstd -dcq "$ship_sums.part" | tar -xf - -C "$SHIP_DEPLOY_TO/.ship"; then
      rm -f "$ship_sums.part"; ship_forget
      echo "cargo-ship: the delta arrived damaged (it does not unpack)" >&2
      exit 1
    fi
    rm -f "$ship_sums.part"
  else
@RECEIVE_WHOLE@  fi
fi
if [ ! -s "$SHIP_ARTIFACT" ] && [ -s "$ship_sums" ]; then
  # The release is made of hard links to objects: each one that came, and the skeleton,
  # checked by sha256 before anything is linked; the others must be there (unchanged
  # since they came: the lock step removed any that was written since).
  # Nothing came (the host had every object): only the skeleton is checked here.
  ship_check="${ship_sums%.sums}.new"
  [ -f "$ship_check" ] || grep ' \.\./artifacts/' "$ship_sums" > "$ship_check" || true
  if ! ship_bad=$(cd "$ship_obj" && sha256sum -c --quiet --strict "$ship_check" 2>&1); then
    ship_forget
    echo "cargo-ship: $SHIP_HOST: objects do not have their sha256, nothing was linked: $ship_bad" >&2
    exit 1
  fi
  ship_need=$(wc -l < "$ship_sums") || ship_need=0
  ship_found=$(cd "$ship_obj" && awk '{ print $2 }' "$ship_sums" | xargs -r ls -d -- 2>/dev/null | wc -l) || ship_found=-1
  if [ "$((ship_need))" -eq 0 ] || [ "$((ship_found))" -ne "$((ship_need))" ]; then
    ship_missing=$(cd "$ship_obj" && awk '{ print $2 }' "$ship_sums" | xargs -r ls -d -- 2>&1 >/dev/null | head -n 5) || true
    rm -f -- "$ship_sums" "${ship_sums%.sums}.new" "${ship_sums%.sums}.skel.tar"
    echo "cargo-ship: $SHIP_HOST: objects the release needs are missing, nothing was linked: $ship_missing" >&2
    exit 1
  fi
  rm -f "${ship_sums%.sums}.new"
fi"#
    .replace("@RECEIVE_WHOLE@", RECEIVE_WHOLE)
}

/// The `upload` step: reads `zst <bytes> <sha256>` or `gz <bytes> <sha256>`, then the
/// bytes, and keeps them only if they have that sha256 (which cargo ship took from bytes it
/// checked unpack to the plan's digest: [`crate::artifact::fingerprint`]).
pub fn upload_step() -> String {
    format!(
        r#"if [ ! -s "$SHIP_ARTIFACT" ]; then
  # cargo ship sends a line, `gz <bytes> <sha256>` or `zst <bytes> <sha256>` (hosts with
  # zstd), then the bytes
  IFS=' ' read -r ship_enc ship_bytes ship_bsum
{RECEIVE_WHOLE}fi"#
    )
}

/// Reads the whole artifact announced by `$ship_enc $ship_bytes $ship_bsum` from the channel
/// into `.ship/artifacts/`, kept only if its bytes have sha256 `$ship_bsum`: the `upload` step's
/// body, and [`delta_upload_step`]'s when the host is sent the whole artifact.
const RECEIVE_WHOLE: &str = r#"  case "$ship_enc" in
    zst|gz) ;;
    *) echo "cargo-ship: expected the artifact's encoding, got: $ship_enc" >&2; exit 1 ;;
  esac
  ship_to="$SHIP_DEPLOY_TO/.ship/artifacts/$SHIP_DIGEST.tar.$ship_enc"
  # Written under its own name, no rename (a program less): what a cut upload leaves there
  # is never used, as every artifact kept on a host is checked against the plan's digest
  # by the next deploy's `lock` (and a rollback's) before it is used.
  head -c "$ship_bytes" > "$ship_to"
  # cargo ship read that sum from bytes it checked unpack to the plan's digest
  ship_sum=$($ship_sha256 < "$ship_to" 2>/dev/null) || ship_sum=$(sha256sum < "$ship_to")
  ship_sum=${ship_sum%% *}
  if [ "$ship_sum" != "$ship_bsum" ]; then
    rm -f "$ship_to"
    echo "cargo-ship: the artifact arrived damaged: its bytes have sha256 $ship_sum, expected $ship_bsum (of the artifact sha256 $SHIP_DIGEST)" >&2
    exit 1
  fi
"#;

/// The `upload` step of a stage with an `artifact_store` ([`crate::store`]): as
/// [`upload_step`], but the line may also be `url <presigned URL>`: the host downloads the
/// store's `.tar.zst` itself (curl, else wget; the URL, a bearer token, goes to them on
/// standard input, never on a command line), and keeps it only if it has the plan's sha256.
/// Errors name the URL without its query.
pub fn upload_step_via_store() -> String {
    r#"if [ ! -s "$SHIP_ARTIFACT" ]; then
  # cargo ship sends `url <presigned URL>` (hosts with zstd), or what `upload` is sent
  IFS=' ' read -r ship_enc ship_bytes ship_bsum
  if [ "$ship_enc" = url ]; then
    ship_to="$SHIP_DEPLOY_TO/.ship/artifacts/$SHIP_DIGEST.tar.zst"
    ship_from=${ship_bytes%%\?*}
    if command -v curl >/dev/null 2>&1; then
      printf 'url = "%s"\n' "$ship_bytes" | curl -fsS --retry 3 -K - -o "$ship_to.part"
    elif command -v wget >/dev/null 2>&1; then
      printf '%s\n' "$ship_bytes" | wget -q -t 3 -O "$ship_to.part" -i -
    else
      echo "cargo-ship: $SHIP_HOST: neither curl nor wget here to download the artifact from $ship_from" >&2
      exit 1
    fi || {
      rm -f "$ship_to.part"
      echo "cargo-ship: $SHIP_HOST: could not download the artifact from $ship_from" >&2
      exit 1
    }
    echo "downloaded $(wc -c < "$ship_to.part") bytes from $ship_from"
    # Nothing but the plan's digest vouches for what the store holds: unpacked and hashed.
    ship_sum=$(zstd -dcq "$ship_to.part" | $ship_sha256 2>/dev/null) ||
      ship_sum=$(zstd -dcq "$ship_to.part" | sha256sum)
    ship_sum=${ship_sum%% *}
    if [ "$ship_sum" != "$SHIP_DIGEST" ]; then
      rm -f "$ship_to.part"
      echo "cargo-ship: $SHIP_HOST: the artifact from $ship_from arrived damaged: sha256 $ship_sum, expected $SHIP_DIGEST" >&2
      exit 1
    fi
    mv -f "$ship_to.part" "$ship_to"
  else
@RECEIVE_WHOLE@  fi
fi"#
    .replace("@RECEIVE_WHOLE@", RECEIVE_WHOLE)
}

/// The line a host's [`upload_step_via_store`] reads instead of the artifact's header and
/// bytes: the presigned URL it downloads from.
pub fn artifact_url_line(url: &crate::store::Presigned) -> String {
    format!("url {}", url.expose())
}

/// The `cleanup` step: the release directories in `$SHIP_CLEANUP`, then every artifact and
/// step log that no release in `$SHIP_RECORDS` (the new releases.json) came from. What it
/// removed (releases and artifacts) it says itself ([`StepIo::Says`]): its log stays empty.
pub fn cleanup_step() -> String {
    // Everything to remove is gathered in "$@" (names with blanks stay whole) and removed by
    // one `rm`: each program started costs a host about a millisecond.
    r#"set --
for ship_d in $SHIP_CLEANUP; do
  set -- "$@" "$SHIP_DEPLOY_TO/releases/$ship_d" "$SHIP_DEPLOY_TO/.ship/preparing.d/$ship_d"
done
[ ! -f "$SHIP_DEPLOY_TO/.ship/preparing" ] || set -- "$@" "$SHIP_DEPLOY_TO/.ship/preparing"
for ship_a in "$SHIP_DEPLOY_TO"/.ship/artifacts/*; do
  [ -e "$ship_a" ] || continue
  ship_k=${ship_a##*/}
  case "$SHIP_DIGEST $SHIP_RECORDS" in
    *"${ship_k%%.*}"*) ;;
    *) set -- "$@" "$ship_a" ;;
  esac
done
for ship_a in "$SHIP_DEPLOY_TO"/.ship/log/*; do
  [ -e "$ship_a" ] || continue
  ship_k=${ship_a##*/}
  case " $SHIP_RELEASE $SHIP_RECORDS" in
    *[\ \"]"${ship_k%.*}"[\ \"]*) ;;
    *) set -- "$@" "$ship_a" ;;
  esac
done
[ "$#" -eq 0 ] || rm -rf -- "$@"
for ship_a; do
  case "$ship_a" in
    "$SHIP_DEPLOY_TO"/releases/*|"$SHIP_DEPLOY_TO"/.ship/artifacts/*) ship_say "removed ${ship_a#"$SHIP_DEPLOY_TO"/}" ;;
  esac
done"#
        .to_owned()
}

/// What the `cleanup` step of a plan with `delta = true` adds: the objects no release links
/// to (a link count of 1: only the store's name is left), then the stamp the next `lock`
/// step compares objects' ctimes to (`.ship/objects.checked`). (The skeletons and manifests of
/// the artifacts no release came from go with them in [`cleanup_step`].)
pub fn delta_cleanup() -> String {
    r#"if [ -d "$SHIP_DEPLOY_TO/.ship/objects" ]; then
  ship_n_old=$(find "$SHIP_DEPLOY_TO/.ship/objects" -type f -links 1 -print -delete | wc -l)
  [ "$ship_n_old" = 0 ] || ship_say "removed $ship_n_old objects no release uses"
  # Every object is as it came: the next lock step hashes only those changed after this.
  touch "$SHIP_DEPLOY_TO/.ship/objects.checked"
fi"#
    .to_owned()
}

/// The `unlock` step: the new records (`$SHIP_RECORDS`), a line in `revisions.log` as
/// Capistrano writes it, and the lock released.
pub fn unlock_step(branch: &str) -> String {
    format!(
        "{}\nprintf 'Branch %s (at %s) deployed as release %s by %s\\n' {} \"$SHIP_REVISION\" \"$SHIP_RELEASE\" \"$SHIP_DEPLOYER\" >> \"$SHIP_DEPLOY_TO/revisions.log\"\n{}",
        write_records("\"$SHIP_RECORDS\""),
        crate::shell::quote(branch),
        release_lock()
    )
}

/// The one script a host runs for a whole deploy: the nonce from the first line of standard
/// input (followed by ` live` when the steps' output is to be relayed as it comes, not when
/// each step ends), the apply-time values, then each segment's script (`(segment, script)`, in order),
/// each started by a `go` line followed by `$SHIP_CLEANUP` and `$SHIP_RECORDS`, and followed
/// by a `segment` control line. Standard input closing instead of a `go` ends it there.
pub fn conversation(values: &[(&str, &str)], segments: &[(usize, &str)], with_env: bool) -> String {
    let mut s = format!("read -r {NONCE_VAR} ship_live || exit 0\n");
    if with_env {
        // The app's environment: its length in bytes on a line, then the bytes, kept in
        // an unexported variable (see `script::env_command`).
        s.push_str("IFS= read -r ship_envlen || exit 0\nship_env=$(head -c \"$ship_envlen\")\n");
    }
    for (k, v) in values {
        let _ = writeln!(s, "{k}={}", crate::shell::quote(v));
    }
    s.push_str("SHIP_CLEANUP=\nSHIP_RECORDS=\n");
    for (k, script) in segments {
        let _ = write!(
            s,
            "IFS= read -r ship_go || exit 0\n[ \"$ship_go\" = go ] || exit 0\n\
             IFS= read -r SHIP_CLEANUP || exit 0\nIFS= read -r SHIP_RECORDS || exit 0\n{script}\n\
             printf '%s segment {k}\\n' \"${NONCE_VAR}\"\n"
        );
    }
    s
}

/// The lines that start segment `k` of a [`conversation`] (before the artifact, if sent).
pub fn go(cleanup: &[String], records: Option<&str>) -> [String; 3] {
    [
        "go".to_owned(),
        cleanup.join(" "),
        records.unwrap_or_default().to_owned(),
    ]
}

/// The line before the artifact's bytes: its encoding, size and the sha256 of the bytes.
pub fn artifact_header(zstd: bool, bytes: u64, sha256: &str) -> String {
    format!("{} {bytes} {sha256}", if zstd { "zst" } else { "gz" })
}

/// The line before a delta bundle's bytes ([`crate::delta`]): its size.
pub fn bundle_header(bytes: u64) -> String {
    format!("store {bytes}")
}

/// `first`, then a [`Control::Ready`] line and a wait for a second script on standard input
/// (its length in bytes on one line, then the script), run in the same session: a two-part
/// operation (read under the lock, then act on what every host said) costs one session per
/// host. Standard input closing instead ends the script after `first`. The nonce is the
/// first line of standard input.
pub fn then_eval(first: &str) -> String {
    format!(
        "IFS= read -r {NONCE_VAR} || exit 0\n{first}\nprintf '%s ready\\n' \"${NONCE_VAR}\"\nIFS= read -r ship_len || exit 0\nship_next=$(head -c \"$ship_len\")\neval \"$ship_next\"\n"
    )
}

/// What a host's state lines said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Probe {
    /// Where `current` points (empty when it does not exist).
    pub current: Option<String>,
    /// The names under `releases/`, one a line.
    pub listing: String,
    /// Whether `.ship/artifacts/<digest>.tar.gz` (or `.tar.zst`) is there already, and still
    /// unpacks to the tar of that sha256 (checked by the `lock` step, which removes it if not).
    pub artifact_present: bool,
    /// Whether the host has `zstd`, to be sent the artifact zstd-compressed.
    pub zstd: bool,
    /// The artifacts whose objects the host has (`delta = true`: `state have <digest>`).
    pub have: Vec<String>,
    /// Every release directory marked as being prepared by a deploy that did not finish.
    pub marked: Vec<String>,
    /// `.ship/releases.json`, if there is one.
    pub records: Option<String>,
    /// Who holds the lock, when [`probe_lock`] ran and it is held.
    pub lock: Option<String>,
    /// The releases `revisions.log` says were deployed, when [`probe_history`] ran.
    pub deployed: Vec<String>,
}

impl Probe {
    /// Takes in one state line (what follows `state `).
    pub fn take(&mut self, rest: &str) {
        if let Some(line) = rest.strip_prefix("json ") {
            if let Some(r) = self.records.as_mut() {
                r.push_str(line);
                r.push('\n');
            }
        } else if rest == "json" {
            if let Some(r) = self.records.as_mut() {
                r.push('\n');
            }
        } else if let Some(link) = rest.strip_prefix("current ") {
            self.current = (!link.is_empty()).then(|| link.to_owned());
        } else if rest == "current" {
            self.current = None;
        } else if let Some(name) = rest.strip_prefix("release ") {
            self.listing.push_str(name);
            self.listing.push('\n');
        } else if let Some(dir) = rest.strip_prefix("preparing ") {
            if !self.marked.iter().any(|m| m == dir) {
                self.marked.push(dir.to_owned());
            }
        } else if let Some(id) = rest.strip_prefix("deployed ") {
            self.deployed.push(id.to_owned());
        } else if let Some(holder) = rest.strip_prefix("lock ") {
            self.lock = Some(holder.to_owned());
        } else if let Some(digest) = rest.strip_prefix("have ") {
            self.have.push(digest.to_owned());
        } else if rest == "artifact present" {
            self.artifact_present = true;
        } else if rest == "zstd" {
            self.zstd = true;
        } else if rest == "records" {
            self.records = Some(String::new());
        }
    }

    /// The host's state as `layout` reads these lines: the live release, the directories,
    /// the records, the marks of unfinished deploys (whatever record their directory had
    /// before: an ab slot, a release id deployed again) and the releases `revisions.log`
    /// names; with, second, the error when `.ship/releases.json` is not valid JSON (the state
    /// is then read without it).
    pub fn state(
        &self,
        layout: &dyn crate::Layout,
        deploy_to: &str,
    ) -> (crate::HostState, Option<serde_json::Error>) {
        let mut state = layout.parse_state(deploy_to, self.current.as_deref(), &self.listing);
        state.marked = self
            .marked
            .iter()
            .filter(|d| Some(*d) != state.live.as_ref())
            .cloned()
            .collect();
        state.half_made = state.marked.first().cloned();
        state.deployed = self.deployed.clone();
        match self.records.as_deref().map(crate::records::parse) {
            Some(Err(e)) => (state, Some(e)),
            Some(Ok(records)) => {
                state.records = records;
                (state, None)
            }
            None => (state, None),
        }
    }

    /// Reads the state lines of this nonce out of a script's whole output.
    pub fn parse(stdout: &str, nonce: &Nonce) -> Probe {
        let mut p = Probe::default();
        for line in stdout.lines() {
            if let Some(Control::State(rest)) = parse(line, nonce) {
                p.take(&rest);
            }
        }
        p
    }
}

/// What one host said during one segment: read line by line as it comes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transcript {
    /// The steps that started, in order.
    pub started: Vec<usize>,
    /// The steps that ended, with their status.
    pub ended: BTreeMap<usize, i32>,
    /// The lines each step printed (the last [`OUTPUT_LINES`]).
    pub output: BTreeMap<usize, Vec<String>>,
    /// The state lines.
    pub probe: Probe,
    /// The segment finished (its `segment` line came).
    pub finished: Option<usize>,
    /// The first part of a two-part operation finished.
    pub ready: bool,
}

impl Transcript {
    /// Takes in one line; non-control lines are ignored.
    pub fn take(&mut self, line: &str, nonce: &Nonce) {
        match parse(line, nonce) {
            Some(Control::Start { id }) => self.started.push(id),
            Some(Control::Out { id, text }) => {
                let lines = self.output.entry(id).or_default();
                lines.push(text);
                if lines.len() > OUTPUT_LINES {
                    lines.remove(0);
                }
            }
            Some(Control::End { id, status }) => {
                // An end implies its start, even if the start line was lost.
                if !self.started.contains(&id) {
                    self.started.push(id);
                }
                self.ended.insert(id, status);
            }
            Some(Control::State(rest)) => self.probe.take(&rest),
            Some(Control::Segment(k)) => self.finished = Some(k),
            Some(Control::Ready) => self.ready = true,
            Some(Control::Held { .. }) | None => {}
        }
    }

    /// A step that started and did not end, or ended with a non-zero status: the first one.
    /// `None` for its status when it never ended.
    pub fn failed_step(&self) -> Option<(usize, Option<i32>)> {
        self.ended
            .iter()
            .find(|(_, rc)| **rc != 0)
            .map(|(id, rc)| (*id, Some(*rc)))
            .or_else(|| {
                self.started
                    .iter()
                    .find(|id| !self.ended.contains_key(id))
                    .map(|id| (*id, None))
            })
    }

    /// The last `n` non-blank lines step `id` printed.
    pub fn tail(&self, id: usize, n: usize) -> Vec<String> {
        let lines: Vec<&String> = self
            .output
            .get(&id)
            .map(|l| l.iter().filter(|l| !l.trim().is_empty()).collect())
            .unwrap_or_default();
        lines[lines.len().saturating_sub(n)..]
            .iter()
            .map(|l| (*l).clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where `current` leads, as the probe says it: a release under `releases/` as
    /// `$SHIP_DEPLOY_TO/releases/<name>` (found with no program: `cd -P`), whatever the
    /// link's text; anything else as `readlink` reads it, so that a layout reads it as before.
    #[test]
    fn the_probe_says_where_current_leads() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir_all(real.join("releases/20260101000001")).unwrap();
        std::fs::create_dir_all(real.join("releases/a b")).unwrap();
        std::fs::create_dir_all(real.join("elsewhere/x")).unwrap();
        // the deploy directory reached through a link, as `/srv` → `/data/srv`
        std::os::unix::fs::symlink(&real, tmp.path().join("via")).unwrap();
        let current = |deploy_to: &std::path::Path, target: Option<&str>, dir: bool| {
            let link = real.join("current");
            let _ = std::fs::remove_file(&link);
            let _ = std::fs::remove_dir(&link);
            if let Some(t) = target {
                std::os::unix::fs::symlink(t, &link).unwrap();
            }
            if dir {
                std::fs::create_dir(&link).unwrap();
            }
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("set -eu\n{NONCE_VAR}=N\n{}", probe()))
                .env("SHIP_DEPLOY_TO", deploy_to)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8(out.stdout).unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix("N state current "))
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    text.lines()
                        .find(|l| *l == "N state current")
                        .map(|_| String::new())
                        .expect("a current line")
                })
        };
        let d = real.to_str().unwrap();
        let v = tmp.path().join("via");
        let v = v.to_str().unwrap();
        for deploy_to in [d, v] {
            let at = std::path::Path::new(deploy_to);
            let abs = format!("{d}/releases/20260101000001");
            let want = format!("{deploy_to}/releases/20260101000001");
            assert_eq!(current(at, Some(&abs), false), want);
            assert_eq!(current(at, Some("releases/20260101000001"), false), want);
            assert_eq!(current(at, Some("./releases/20260101000001/"), false), want);
            assert_eq!(
                current(at, Some("releases/a b"), false),
                format!("{deploy_to}/releases/a b")
            );
            // not a release: as readlink reads it
            assert_eq!(current(at, Some("elsewhere/x"), false), "elsewhere/x");
            assert_eq!(current(at, Some("releases/gone"), false), "releases/gone");
            assert_eq!(current(at, Some("releases"), false), "releases");
            assert_eq!(current(at, None, true), "");
            assert_eq!(current(at, None, false), "");
        }
    }

    #[test]
    fn only_this_nonce_frames_control_lines() {
        let n = Nonce::from_bytes(&[1, 2, 3]);
        let other = Nonce::from_bytes(&[1, 2, 4]);
        let mut t = Transcript::default();
        for line in [
            format!("{} start 3 upload", n.as_str()),
            format!("{} out 3 sending", n.as_str()),
            "::ship::segment 1".to_owned(),
            format!("{} segment 1", other.as_str()),
            format!("{} end 3 0", n.as_str()),
            format!("{} start 4 prepare", n.as_str()),
            format!("{} out 4 {} segment 1", n.as_str(), n.as_str()),
            format!("{} state current /srv/a/releases/2", n.as_str()),
            format!("{} state records", n.as_str()),
            format!("{} state json [{{\"a\": 1}}]", n.as_str()),
            format!("{} state end", n.as_str()),
        ] {
            t.take(&line, &n);
        }
        assert_eq!(t.started, vec![3, 4]);
        assert_eq!(t.ended.get(&3), Some(&0));
        assert_eq!(t.finished, None);
        assert_eq!(t.output[&3], vec!["sending"]);
        assert_eq!(t.failed_step(), Some((4, None)));
        assert_eq!(t.probe.current.as_deref(), Some("/srv/a/releases/2"));
        assert_eq!(t.probe.records.as_deref(), Some("[{\"a\": 1}]\n"));
        t.take(&format!("{} segment 1", n.as_str()), &n);
        assert_eq!(t.finished, Some(1));
    }

    /// A task's step names what it left running on its output: found through the lock on
    /// the output's open file where `flock` is, by scanning every process's descriptors
    /// where it is not; a task that left nothing is not scanned for and names nothing.
    #[test]
    fn a_task_step_names_what_still_holds_its_output_with_or_without_flock() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".ship/lock")).unwrap();
        std::fs::create_dir_all(dir.path().join(".ship/log")).unwrap();
        std::fs::write(dir.path().join(".ship/lock/info"), "me\n").unwrap();
        let run = |body: &str, flock: bool| {
            let script = format!(
                "set -e\nship_n=N\nSHIP_LOCK_INFO=me\nSHIP_HOST=h\nSHIP_LOG=\"$SHIP_DEPLOY_TO/.ship/log/1\"\n{}{}{}",
                step_functions(),
                if flock { "" } else { "ship_flock=\n" },
                step(7, "restart", body, StepIo::Task)
            );
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .env("SHIP_DEPLOY_TO", dir.path())
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        let has_flock = std::process::Command::new("sh")
            .args(["-c", "command -v flock"])
            .output()
            .unwrap()
            .status
            .success();
        for flock in [true, false] {
            if flock && !has_flock {
                continue;
            }
            let quiet = run("echo hi", flock);
            assert!(quiet.contains("N end 7 0"), "{quiet}");
            assert!(!quiet.contains(" held "), "{quiet}");
            let held = run("sleep 30 &\necho \"daemon $!\"", flock);
            let pid = held
                .lines()
                .find_map(|l| l.strip_prefix("N out 7 daemon "))
                .unwrap()
                .to_owned();
            assert!(
                held.contains(&format!("N held 7 {pid}(sleep)")),
                "flock {flock}: {held}"
            );
            let _ = std::process::Command::new("kill").arg(&pid).status();
        }
    }

    /// `cleanup` removes the releases it is given, the marks of their preparing, and the
    /// artifacts and step logs no kept release came from, in a deploy directory whose path
    /// has a blank and a glob character, and says what it removed.
    #[test]
    fn cleanup_removes_what_no_kept_release_uses_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let to = dir.path().join("my app*");
        for d in [
            "releases/1",
            "releases/2",
            "releases/3",
            ".ship/preparing.d",
        ] {
            std::fs::create_dir_all(to.join(d)).unwrap();
        }
        std::fs::create_dir_all(to.join(".ship/artifacts")).unwrap();
        std::fs::create_dir_all(to.join(".ship/log")).unwrap();
        let files = [
            ".ship/preparing.d/1",
            ".ship/preparing",
            ".ship/artifacts/aaa.tar.zst",
            ".ship/artifacts/bbb.tar.zst",
            ".ship/artifacts/ccc.tar.gz",
            ".ship/log/1.3",
            ".ship/log/2.3",
            ".ship/log/3.3",
            ".ship/log/3.10",
            // A name a task could make to forge a line of the channel.
            ".ship/artifacts/zz\nN end 9 0",
        ];
        for f in files {
            std::fs::write(to.join(f), "x").unwrap();
        }
        // Kept: release 2 (from bbb) and the new release 3 (ccc).
        let records = r#"[{"release":"2","digest":"bbb"}]"#;
        // Through the step's own wrapper, as a host runs it: what it removed is said on the
        // channel as the step's output, and its log is left empty (nothing to relay).
        std::fs::create_dir_all(to.join(".ship/lock")).unwrap();
        std::fs::write(to.join(".ship/lock/info"), "me\n").unwrap();
        let script = format!(
            "set -eu\nship_n=N\nSHIP_LOCK_INFO=me\nSHIP_HOST=h\nSHIP_LOG=\"$SHIP_DEPLOY_TO/.ship/log/3\"\n{}{}",
            step_functions(),
            step(9, "cleanup", &cleanup_step(), StepIo::Says)
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .env("SHIP_DEPLOY_TO", &to)
            .env("SHIP_CLEANUP", "1")
            .env("SHIP_RELEASE", "3")
            .env("SHIP_DIGEST", "ccc")
            .env("SHIP_RECORDS", records)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "N start 9 cleanup\nN out 9 removed releases/1\nN out 9 removed .ship/artifacts/aaa.tar.zst\n\
             N out 9 removed .ship/artifacts/zz\nN out 9 N end 9 0\nN end 9 0\n"
        );
        assert_eq!(std::fs::read(to.join(".ship/log/3.9")).unwrap(), b"");
        let left = |p: &str| to.join(p).exists();
        for gone in [
            "releases/1",
            ".ship/preparing.d/1",
            ".ship/preparing",
            ".ship/artifacts/aaa.tar.zst",
            ".ship/log/1.3",
        ] {
            assert!(!left(gone), "{gone} is still there");
        }
        for kept in [
            "releases/2",
            "releases/3",
            ".ship/artifacts/bbb.tar.zst",
            ".ship/artifacts/ccc.tar.gz",
            ".ship/log/2.3",
            ".ship/log/3.3",
            ".ship/log/3.10",
        ] {
            assert!(left(kept), "{kept} was removed");
        }
    }

    /// `$ship_sha256` gives the sha256 of its input first on its line, by openssl when the
    /// host has it (chosen then) or by sha256sum.
    #[test]
    fn the_hosts_sha256_is_the_same_by_openssl_or_by_sha256sum() {
        use std::io::Write;
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let run = |script: &str| {
            let mut child = std::process::Command::new("sh")
                .args([
                    "-c",
                    &format!("set -eu\nship_n=N\n{}{script}", step_functions()),
                ])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            // (a script that reads nothing closes the pipe first)
            let _ = child.stdin.take().unwrap().write_all(&data);
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        let has = |tool: &str| {
            std::process::Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .unwrap()
                .status
                .success()
        };
        let sum = "ship_sum=$($ship_sha256); printf '%s' \"${ship_sum%% *}\"";
        let expected = crate::sha256_hex(&data);
        assert_eq!(run(&format!("ship_sha256=sha256sum\n{sum}")), expected);
        if has("openssl") {
            assert_eq!(
                run("printf '%s' \"$ship_sha256\""),
                "openssl dgst -sha256 -r"
            );
            assert_eq!(run(sum), expected);
        }
    }

    /// A host whose openssl is there but fails (missing libraries, a bad configuration)
    /// still keeps an artifact that arrived whole, checked by sha256sum, and still refuses
    /// one that did not.
    #[test]
    fn the_upload_check_falls_back_to_sha256sum_when_openssl_fails() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let fake = bin.join("openssl");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho 'openssl: cannot load libcrypto' >&2\nexit 127\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let to = dir.path().join("app");
        std::fs::create_dir_all(to.join(".ship/artifacts")).unwrap();
        let bytes = b"the artifact's bytes".to_vec();
        let digest = "d".repeat(64);
        let send = |sum: &str| {
            let mut child = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "set -eu\nship_n=N\n{}{}",
                    step_functions(),
                    upload_step()
                ))
                .env(
                    "PATH",
                    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
                )
                .env("SHIP_DEPLOY_TO", &to)
                .env("SHIP_DIGEST", &digest)
                .env(
                    "SHIP_ARTIFACT",
                    to.join(format!(".ship/artifacts/{digest}.tar.zst")),
                )
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut input = child.stdin.take().unwrap();
            let _ = writeln!(input, "zst {} {sum}", bytes.len());
            let _ = input.write_all(&bytes);
            drop(input);
            child.wait_with_output().unwrap()
        };
        // Every use of `$ship_sha256` in the host's scripts falls back the same way (the
        // upload run above; the lock step's kept artifact and the store's download too).
        for script in [lock_step(), upload_step(), upload_step_via_store()] {
            for line in script.lines().filter(|l| l.contains("$ship_sha256")) {
                let after = &line[line.find("$ship_sha256").unwrap()..];
                assert!(after.contains("2>/dev/null) ||"), "no fallback: {line}");
            }
        }
        let kept = to.join(format!(".ship/artifacts/{digest}.tar.zst"));
        let wrong = send(&"0".repeat(64));
        assert!(!wrong.status.success(), "{wrong:?}");
        assert!(String::from_utf8_lossy(&wrong.stderr).contains("arrived damaged"));
        assert!(!kept.exists());
        let right = send(&crate::sha256_hex(&bytes));
        assert!(right.status.success(), "{right:?}");
        assert_eq!(std::fs::read(&kept).unwrap(), bytes);
    }

    /// A step's output is relayed whole when short, and its end only, said, when longer
    /// than [`RELAYED_BYTES`]; a last line without a newline is relayed too.
    #[test]
    fn a_steps_output_is_relayed_whole_or_its_end_said_to_be_cut() {
        let dir = tempfile::tempdir().unwrap();
        let relay = |content: &[u8]| {
            let log = dir.path().join("log");
            std::fs::write(&log, content).unwrap();
            let script = format!(
                "ship_n=N\nSHIP_HOST=h\n{}ship_relay 4 \"$1\"\n",
                step_functions()
            );
            let out = std::process::Command::new("sh")
                .args(["-c", &script, "sh"])
                .arg(&log)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(relay(b""), "");
        assert_eq!(relay(b"one\ntwo"), "N out 4 one\nN out 4 two\n");
        // Blanks, backslashes, a last line without its newline: as they are.
        for size in [4095, 4096, 4097, 9000] {
            let mut text = Vec::new();
            for i in 0.. {
                if text.len() >= size {
                    break;
                }
                text.extend_from_slice(format!("  line {i} \\t x\n\n").as_bytes());
            }
            text.truncate(size);
            let expected: String = String::from_utf8_lossy(&text)
                .lines()
                .map(|l| format!("N out 4 {l}\n"))
                .collect();
            assert_eq!(relay(&text), expected, "{size} bytes");
        }
        let mut exact = vec![b'x'; RELAYED_BYTES as usize - 1];
        exact.push(b'\n');
        let whole = relay(&exact);
        assert!(
            !whole.contains("only the end"),
            "{}",
            &whole[whole.len() - 80..]
        );
        let mut long = Vec::new();
        for i in 0..40_000 {
            long.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        let cut = relay(&long);
        let last = cut.lines().last().unwrap();
        assert!(
            last.starts_with(
                "N out 4 [only the end of the output is relayed: the whole output is in "
            ) && last.ends_with(" on h]"),
            "{last}"
        );
        assert!(cut.contains("N out 4 line 39999\n"));
        assert!(!cut.contains("N out 4 line 1\n"));
        let relayed: usize = cut
            .lines()
            .filter_map(|l| l.strip_prefix("N out 4 "))
            .filter(|l| !l.starts_with('['))
            .map(|l| l.len() + 1)
            .sum();
        assert!(relayed <= RELAYED_BYTES as usize + 1, "{relayed}");
    }

    /// Every `SHIP_*` variable the core's script-writing modules set or export is in
    /// [`TASK_VARIABLES`] (or is a host's `SHIP_VAR_`): a new one cannot leak into a nested
    /// cargo ship as configuration. The shell a layout, an adapter or the binary writes is
    /// scanned the same way by `tests/tests/adversary_plan.rs`.
    #[test]
    fn every_variable_the_scripts_set_is_a_task_variable() {
        let stage = crate::stage::example();
        let header = crate::script::header(
            &crate::script::Vars {
                app: "demo",
                stage: &stage.name,
                release: "1",
                deploy_to: "/srv/app",
                host: "web1",
                roles: &["web".to_owned()],
                revision: None,
                digest: "ab",
            },
            "SHIP_RELEASE_PATH=\"$SHIP_DEPLOY_TO/releases/$SHIP_RELEASE\"",
        );
        let talk = conversation(&[("SHIP_DEPLOYER", "me")], &[(0, "true")], false);
        let state = crate::ops::state_script("/srv/app", "web1", Some("me"), None);
        let unlock = crate::ops::unlock_script("/srv/app", "web1");
        // The code of each module, without its comments and tests.
        let code = |text: &str| -> String {
            let text = text.split("#[cfg(test)]").next().unwrap_or(text);
            text.lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let sources: Vec<(&str, String)> = vec![
            ("script.rs", code(include_str!("script.rs"))),
            ("machine.rs", code(include_str!("machine.rs"))),
            ("ops.rs", code(include_str!("ops.rs"))),
            ("protocol.rs", code(include_str!("protocol.rs"))),
            ("driver.rs", code(include_str!("driver.rs"))),
            ("reuse.rs", code(include_str!("reuse.rs"))),
            ("rollback.rs", code(include_str!("rollback.rs"))),
            ("records.rs", code(include_str!("records.rs"))),
            ("planner.rs", code(include_str!("planner.rs"))),
            ("header()", header),
            ("conversation()", talk),
            ("state_script()", state),
            ("unlock_script()", unlock),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for (name, text) in sources {
            for var in variables_set_in(&text) {
                assert!(
                    is_task_variable(&var),
                    "{name} sets {var}: add it to protocol::TASK_VARIABLES, or a cargo ship a task \
                     runs reads it as configuration"
                );
                seen.insert(var);
            }
        }
        // The scan sees what the header exports (it is not blind).
        for var in [
            "SHIP_DEPLOY_TO",
            "SHIP_REVISION",
            "SHIP_RELEASE_PATH",
            "SHIP_CLEANUP",
            "SHIP_LOCK_INFO",
        ] {
            assert!(seen.contains(var), "{var} not found by the scan: {seen:?}");
        }
    }
}
