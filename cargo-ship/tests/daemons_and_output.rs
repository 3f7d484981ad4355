//! A real app server that daemonizes while holding its output, and what a person sees of the
//! hosts' output: live with `-v` (host-prefixed, as Fabric prints it), every line in
//! `target/ship/logs/<stage>-<release>.log`, a failed step shown whole (issue 17).

use ship_tests::{Fixture, Fleet, KillOnDrop};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A small HTTP server as people write them: it binds, forks, and the child serves on,
/// keeping the standard output and error it was started with (no redirections, no
/// closing): a restart that starts it leaves a process holding the step's output.
const SERVER: &str = r#"import http.server, os, sys
addr, port, pidfile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
root = os.getcwd()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = open(os.path.join(root, "index.html"), "rb").read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        print("served", self.path, flush=True)
http.server.HTTPServer.allow_reuse_address = True
server = http.server.HTTPServer((addr, port), Handler)
if os.fork():
    sys.exit(0)
os.setsid()
with open(pidfile, "w") as f:
    f.write(str(os.getpid()))
print("serving", root, "on", addr, port, flush=True)
server.serve_forever()
"#;

/// Stops the old server, starts the new one from this release: no redirections.
const RESTART: &str = r#"set -- $SSH_CONNECTION
pidfile=/srv/app/shared/server.pid
if [ -s "$pidfile" ]; then
  # (the test fleets share one pid space: a pid is killed only if it is this host's)
  [ "$(readlink "/proc/$(cat "$pidfile")/ns/mnt" 2>/dev/null)" != "$(readlink /proc/self/ns/mnt)" ] || kill "$(cat "$pidfile")" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done
fi
python3 server.py "$3" 8090 "$pidfile"
"#;

fn project(fleet: &Fleet, tasks: &str) -> Fixture {
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nsource = {{ dir = \"app\" }}\n\
         ssh_config = \"{}\"\ncommand_timeout = \"10m\"\nlinked_dirs = [\"log\"]\n{tasks}\n\
         [staging]\nhosts = [\"h1\", \"h2\"]\n",
        fleet.ssh_config().display(),
    );
    Fixture::new(&[
        ("app/index.html", "v1\n"),
        ("app/server.py", SERVER),
        ("Ship.toml", &ship),
    ])
}

/// `cargo ship ARGS` as a process (its output read as it comes).
fn ship(f: &Fixture, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_cargo-ship"))
        .args(args)
        .current_dir(f.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn run(f: &Fixture, args: &[&str]) -> (i32, String) {
    let out = ship(f, args).wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_restart_that_daemonizes_holding_its_output_neither_holds_the_deploy_nor_goes_unsaid() {
    let fleet = Fleet::start(2);
    let _servers = KillOnDrop(&fleet, "/srv/app/shared/server.pid");
    // A release that ships `broken` fails its health check (after the restart).
    let restart = format!(
        "[default.tasks.restart]\nrun = '''\n{RESTART}'''\nafter = \"switch\"\n\
         [default.health]\nrun = \"test ! -e broken\"\n"
    );
    let f = project(&fleet, &restart);
    let started = Instant::now();
    let (code, out) = run(&f, &["apply", "staging", "--release-id", "20261101000001"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(fleet.http_answers(8090), vec!["v1\n"; 2]);

    f.write("app/index.html", "v2\n");
    let (code, out) = run(&f, &["apply", "staging", "--release-id", "20261101000002"]);
    let took = started.elapsed();
    assert_eq!(code, 0, "{out}");
    // Two deploys in seconds, not at command_timeout (10 minutes).
    assert!(took < Duration::from_secs(60), "two deploys took {took:?}");
    // The app serves the new release.
    assert_eq!(fleet.http_answers(8090), vec!["v2\n"; 2]);
    // And the report names the step and the process left holding its output.
    for h in ["h1", "h2"] {
        assert!(
            out.contains(&format!(
                "! {h}  restart left running, holding its output: "
            )) && out.contains("(python3)"),
            "{out}"
        );
    }
    // A deploy whose health check fails after the restart is reverted, and the restart runs
    // again: the server serves the release that is live again, not the one that failed.
    f.write("app/index.html", "v3\n");
    f.write("app/broken", "");
    let (code, out) = run(&f, &["apply", "staging", "--release-id", "20261101000003"]);
    assert_eq!(code, 3, "{out}");
    assert!(
        fleet
            .readlink("h1", "/srv/app/current")
            .ends_with("20261101000002")
    );
    assert_eq!(fleet.http_answers(8090), vec!["v2\n"; 2], "{out}");
    // The same class outside a deploy: `run` and a command that leaves a daemon on its
    // output (Fabric's FAQ answers this one with nohup and redirections).
    let started = Instant::now();
    let (code, out) = run(
        &f,
        &[
            "run",
            "staging",
            "--",
            "echo before; setsid sleep 7 & echo after",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "run waited for the daemon: {:?}\n{out}",
        started.elapsed()
    );
    assert!(out.contains("before") && out.contains("after"), "{out}");
}

#[test]
fn apply_v_follows_each_hosts_output_live_and_the_log_keeps_every_line() {
    let fleet = Fleet::start(2);
    // A step that says something, then waits: its first line must be seen while it waits.
    let tasks = "[default.tasks.warm]\nrun = '''\necho \"warming $SHIP_HOST\"\n\
                 while [ ! -e /srv/go ]; do sleep 0.1; done\necho \"warm $SHIP_HOST\"\n'''\n\
                 after = \"install\"\n";
    let f = project(&fleet, tasks);
    let mut child = ship(
        &f,
        &["apply", "staging", "--release-id", "20261101000001", "-v"],
    );
    // A watchdog: a deploy that does not show the lines waits for /srv/go forever.
    let pid = child.id();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(90));
        let _ = Command::new("kill").arg(pid.to_string()).status();
    });
    let stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut live = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        for h in ["h1", "h2"] {
            if line.trim() == format!("{h} | warming {h}") && !live.contains(&h) {
                // Shown while the step still runs: it waits for /srv/go.
                assert!(!fleet.try_sh(h, "test -e /srv/go").0);
                live.push(h);
            }
        }
        if live.len() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "not followed live:\n{seen}");
    }
    assert_eq!(live.len(), 2, "not followed live:\n{seen}");
    for h in ["h1", "h2"] {
        fleet.sh(h, "touch /srv/go");
    }
    for line in lines {
        seen.push_str(&line.unwrap());
        seen.push('\n');
    }
    assert!(child.wait().unwrap().success(), "{seen}");
    for h in ["h1", "h2"] {
        assert!(seen.contains(&format!("  {h} | warm {h}\n")), "{seen}");
    }
    // Every host's output, in the deploy's log.
    let log =
        std::fs::read_to_string(f.join("target/ship/logs/staging-20261101000001.log")).unwrap();
    for h in ["h1", "h2"] {
        let own: Vec<&str> = log
            .lines()
            .filter(|l| l.starts_with(&format!("{h} | ")))
            .collect();
        let at = |text: String| own.iter().position(|l| *l == text);
        let (warming, warm) = (
            at(format!("{h} | warming {h}")),
            at(format!("{h} | warm {h}")),
        );
        assert!(warming.is_some() && warming < warm, "{log}");
        assert!(own.iter().any(|l| l.ends_with(" unlock: exit 0")), "{log}");
    }

    // Followed live or not, the steps do the same: a deploy without -v, and its log.
    let (code, out) = run(&f, &["apply", "staging", "--release-id", "20261101000002"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        !out.contains("| warming"),
        "only -v shows every line: {out}"
    );
    let log =
        std::fs::read_to_string(f.join("target/ship/logs/staging-20261101000002.log")).unwrap();
    assert!(
        log.contains("h2 | warming h2\n") && log.contains("h2 | warm h2\n"),
        "{log}"
    );
}

#[test]
fn a_failed_step_is_shown_whole_with_where_the_log_is() {
    let fleet = Fleet::start(2);
    let tasks = "[default.tasks.check]\nrun = '''\nfor i in $(seq 1 100); do echo \"line $i of the check\"; done\n\
                 [ \"$SHIP_HOST\" != h2 ]\n'''\nafter = \"install\"\n";
    let f = project(&fleet, tasks);
    let (code, out) = run(&f, &["apply", "staging", "--release-id", "20261101000001"]);
    assert_eq!(code, 3, "{out}");
    // The whole output of the step that failed, not its last lines only.
    for i in [1, 50, 100] {
        assert!(
            out.contains(&format!("      line {i} of the check\n")),
            "{out}"
        );
    }
    let path = f.join("target/ship/logs/staging-20261101000001.log");
    assert!(
        out.contains(&format!("(every host's output: {})", path.display())),
        "{out}"
    );
    let log = std::fs::read_to_string(&path).unwrap();
    for h in ["h1", "h2"] {
        assert!(
            log.contains(&format!("{h} | line 100 of the check\n")),
            "{log}"
        );
    }
    assert!(log.contains("h2 | == step "), "{log}");
}
