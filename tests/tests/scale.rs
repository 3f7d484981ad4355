//! Planning and applying at 10,000 hosts: the planner, the plan's text and JSON, and the
//! deploy machine driven over a fleet of in-memory hosts that do every step right.
//!
//! The CI test plans and applies 10,000 hosts under a generous limit, and checks that the
//! text is grouped (short) and the JSON complete. `bench/plan-10k.sh` runs the ignored
//! `scale_figures` once per fleet size (`SHIP_SCALE_HOSTS`) for its time and peak memory.

use ship_core::Nonce;
use ship_core::StepKind;
use ship_core::{Action, HostEnd, Machine, MachineOptions, Outcome, machine::Input};
use ship_core::{Phase, Plan, RunOutput};
use ship_core::{TextOptions, render::text};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// One in-memory host's conversation: it reads the nonce, then for each `go` (and the two
/// lines after it) prints its segment's steps as done, as the protocol says, and ends when
/// its script is over or its input ends.
#[derive(Default)]
struct Session {
    nonce: Option<String>,
    inbox: VecDeque<String>,
    next: usize,
    closed: bool,
    over: bool,
}

struct Fleet {
    /// Each host's segments, in order, each with its step ids and whether one is `lock`.
    segments: HashMap<String, Vec<(usize, Vec<usize>)>>,
    lock: usize,
    sessions: HashMap<String, Session>,
    lines: u64,
}

impl Fleet {
    fn new(plan: &Plan) -> Fleet {
        let lock = plan
            .steps
            .iter()
            .find(|s| s.kind == StepKind::Phase && s.phase == Phase::Lock)
            .expect("a lock step")
            .id;
        let segments = plan
            .hosts
            .iter()
            .map(|h| {
                let segs = h
                    .scripts
                    .iter()
                    .map(|sc| {
                        let ids = h
                            .steps
                            .iter()
                            .copied()
                            .filter(|id| plan.step(*id).and_then(|s| s.script) == Some(sc.segment))
                            .collect();
                        (sc.segment, ids)
                    })
                    .collect();
                (h.name.clone(), segs)
            })
            .collect();
        Fleet {
            segments,
            lock,
            sessions: HashMap::new(),
            lines: 0,
        }
    }

    /// Runs what `host` was sent as far as it can; what it prints goes to `inputs`.
    fn work(&mut self, host: &str, inputs: &mut VecDeque<Input>) {
        let segments = &self.segments[host];
        let Some(s) = self.sessions.get_mut(host) else {
            return;
        };
        loop {
            if s.over {
                return;
            }
            if s.nonce.is_none() {
                match s.inbox.pop_front() {
                    Some(n) => {
                        s.nonce = Some(n);
                        continue;
                    }
                    None if !s.closed => return,
                    None => {}
                }
            } else if s.inbox.len() >= 3 && s.next < segments.len() {
                assert_eq!(s.inbox.pop_front().as_deref(), Some("go"));
                s.inbox.pop_front();
                s.inbox.pop_front();
                let nonce = s.nonce.clone().expect("the nonce");
                let (k, ids) = &segments[s.next];
                s.next += 1;
                let mut say = |line: String| {
                    self.lines += 1;
                    inputs.push_back(Input::Line {
                        host: host.to_owned(),
                        line,
                    });
                };
                for id in ids {
                    say(format!("{nonce} start {id} step"));
                    if *id == self.lock {
                        say(format!("{nonce} state current "));
                        say(format!("{nonce} state zstd"));
                    }
                    say(format!("{nonce} end {id} 0"));
                }
                say(format!("{nonce} segment {k}"));
                continue;
            } else if !(s.closed || s.next >= segments.len()) {
                return;
            }
            s.over = true;
            inputs.push_back(Input::Ended {
                host: host.to_owned(),
                result: Ok(RunOutput {
                    status: Some(0),
                    stdout: String::new(),
                    stderr: String::new(),
                }),
            });
            return;
        }
    }
}

/// Applies `plan` with the deploy machine over in-memory hosts that do every step right:
/// the outcome, and how many inputs the machine handled.
fn apply(plan: &Plan) -> (Outcome, u64) {
    let layout = ship_layouts::layout_for(plan.layout.name()).expect("a registered layout");
    let options = MachineOptions {
        deployer: "scale@ci".to_owned(),
        started_at: "2026-11-25T23:00:00Z".to_owned(),
        segment_timeout: Duration::from_secs(60),
        nonce: Nonce::from_bytes(b"scale"),
        live: false,
        env: None,
    };
    let mut fleet = Fleet::new(plan);
    let mut machine = Machine::new(plan.clone(), layout, options);
    let mut inputs = VecDeque::from([Input::Start]);
    let mut handled = 0u64;
    while let Some(input) = inputs.pop_front() {
        handled += 1;
        let mut touched = Vec::new();
        for action in machine.handle(input) {
            match action {
                Action::Connect { host } => inputs.push_back(Input::Connected {
                    host,
                    result: Ok(()),
                }),
                Action::Open { host, .. } => {
                    fleet.sessions.insert(host, Session::default());
                }
                Action::Send { host, line } => {
                    if let Some(s) = fleet.sessions.get_mut(&host) {
                        s.inbox.push_back(line);
                        touched.push(host);
                    }
                }
                Action::Close { host } => {
                    if let Some(s) = fleet.sessions.get_mut(&host) {
                        s.closed = true;
                        touched.push(host);
                    }
                }
                Action::MakeGz => inputs.push_back(Input::GzMade(Ok(()))),
                Action::RunLocal { id, .. } => inputs.push_back(Input::LocalDone {
                    id,
                    result: Ok(RunOutput {
                        status: Some(0),
                        stdout: String::new(),
                        stderr: String::new(),
                    }),
                }),
                Action::Done(outcome) => return (outcome, handled),
                Action::SendArtifact { .. } | Action::Arm { .. } | Action::Event(_) => {}
                other => panic!("a deploy where every step works does not {other:?}"),
            }
        }
        touched.dedup();
        for host in touched {
            fleet.work(&host, &mut inputs);
        }
    }
    panic!("the machine stopped without an outcome")
}

/// What one size measured.
struct Figures {
    plan: Duration,
    text: Duration,
    json: Duration,
    apply: Duration,
    text_lines: usize,
    json_bytes: usize,
    inputs: u64,
}

/// Plans, renders and applies `hosts` hosts; `read_back`: also reads the JSON back and
/// compares it with the plan (the benchmark; in a debug build that alone takes long).
fn measure(hosts: usize, read_back: bool) -> Figures {
    let stage = ship_tests::synthetic::stage(hosts, 12, 200);
    let t = Instant::now();
    let plan = ship_tests::synthetic::plan(&stage, "20261125230000");
    let plan_time = t.elapsed();
    let t = Instant::now();
    let rendered = text(&plan, TextOptions::default());
    let text_time = t.elapsed();
    let t = Instant::now();
    let json = plan.to_json();
    let json_time = t.elapsed();
    // The JSON is complete: every host, with its scripts.
    assert_eq!(json.matches("\n      \"scripts\": [").count(), hosts);
    for h in [
        &plan.hosts[0],
        &plan.hosts[hosts / 2],
        &plan.hosts[hosts - 1],
    ] {
        assert!(json.contains(&format!("\"name\": \"{}\"", h.name)));
    }
    if read_back {
        let back: Plan = serde_json::from_str(&json).expect("the plan's JSON reads back");
        assert_eq!(back, plan);
    }
    let json_bytes = json.len();
    drop(json);
    let t = Instant::now();
    let (outcome, inputs) = apply(&plan);
    let apply_time = t.elapsed();
    assert_eq!(outcome.hosts.len(), hosts);
    assert!(
        outcome
            .hosts
            .iter()
            .all(|(_, end)| matches!(end, HostEnd::Deployed)),
        "every host deployed: {:?}",
        outcome
            .hosts
            .iter()
            .find(|(_, e)| !matches!(e, HostEnd::Deployed))
    );
    Figures {
        plan: plan_time,
        text: text_time,
        json: json_time,
        apply: apply_time,
        text_lines: rendered.lines().count(),
        json_bytes,
        inputs,
    }
}

#[test]
fn ten_thousand_hosts_plan_and_apply_in_time_and_the_text_stays_short() {
    let started = Instant::now();
    let f = measure(10_000, false);
    let total = started.elapsed();
    eprintln!(
        "10,000 hosts: plan {:?}, text {:?}, json {:?}, apply {:?}, in all {total:?}",
        f.plan, f.text, f.json, f.apply
    );
    // Generous: a debug build on a busy 2-core machine. Quadratic spots took minutes.
    assert!(
        total < Duration::from_secs(240),
        "10,000 hosts took {total:?} (plan {:?}, apply {:?})",
        f.plan,
        f.apply
    );
    assert!(
        f.text_lines < 60,
        "the plan's text for 10,000 hosts is grouped, not {} lines",
        f.text_lines
    );
    // Every host ran its steps: at least a start, an end and a segment line each.
    assert!(f.inputs > 10_000 * 3);
}

/// `SHIP_SCALE_HOSTS=N cargo test --release -p ship-tests --test scale -- --ignored`: one size's
/// figures, and this process's peak memory (run one size per process: `bench/plan-10k.sh`).
#[test]
#[ignore = "a benchmark: bench/plan-10k.sh"]
fn scale_figures() {
    let hosts = std::env::var("SHIP_SCALE_HOSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let f = measure(hosts, true);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .map(|v| v.trim().trim_end_matches(" kB").to_owned())
        .unwrap_or_else(|| "?".to_owned());
    let line = format!(
        "scale: hosts={hosts} plan_ms={:.1} text_ms={:.1} json_ms={:.1} apply_ms={:.1} \
         inputs={} text_lines={} json_mb={:.1} peak_rss_kb={peak}\n",
        f.plan.as_secs_f64() * 1e3,
        f.text.as_secs_f64() * 1e3,
        f.json.as_secs_f64() * 1e3,
        f.apply.as_secs_f64() * 1e3,
        f.inputs,
        f.text_lines,
        f.json_bytes as f64 / 1e6,
    );
    let _ = std::io::Write::write_all(&mut std::io::stdout(), line.as_bytes());
}
