//! Deterministic simulation of the deploy machine.
//!
//! The real [`Machine`] is driven over a simulated fleet: each host an in-memory model of
//! what a deploy touches (`current`, `releases/`, `.ship/releases.json`, the lock, the
//! `.ship/preparing` marker, the cached artifact), answering the machine's actions as the
//! real host scripts would, through seeded random schedules: hosts answer in any order, a
//! host's connection is refused, its lock is already held, a step fails, the connection is
//! lost at any step (before or after the step did its work, for a moment or for good), a
//! host hangs past the timeout, a local step fails, SIGINT comes at any sync point (and a
//! second one later), rolling batches stop at `max_fail`. After each schedule the invariants
//! are checked: every host is on the new release, on the one it had, or reported unknown by
//! name (and only a host lost for good is unknown); hosts agree where the plan is not
//! rolling, and each batch agrees where it is; no lock of this deploy is left; nothing
//! half-made is live; the outcome reported is what the hosts hold.
//!
//! A sample of the schedules is run a second time with each host a real `sh` running the
//! real scripts (the plan's, the recovery scripts, `ship-layouts`' shell) against a
//! directory of its own (bind-mounted at the plan's `deploy_to` in a mount namespace of its
//! own, so the scripts run unchanged): the model's end state must be the shell's, so the
//! model cannot drift from the shell.
//!
//! The last line is `simulation: N schedules, V invariant violations`. `SHIP_SIM_SCHEDULES`
//! sets N (default 10,000); `SHIP_SIM_SEED=<seed>` replays one schedule and prints its
//! trace. Not modelled: a script that goes on running on a host after its session was cut
//! (the lock guard stops it at its next step; killing it is issue #16, class 9).

use ship_core::Nonce;
use ship_core::{Action, HostEnd, Machine, MachineOptions, Outcome, Recovery, machine::Input};
use ship_core::{ArtifactInfo, Layout, Plan, PlanInput, ReleaseRecord, ReleaseState, Stage};
use ship_core::{LayoutName, Once, SourceConfig, TaskConfig};
use ship_core::{RunOutput, TransportError};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

const RELEASE: &str = "20261125120000";
const DEPLOY_TO: &str = "/mnt/ship-sim";

/// splitmix64: small, seedable, the same on every machine.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// A fault injected into one schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Fault {
    /// The host cannot be reached.
    ConnectFails(usize),
    /// Another deploy holds the host's lock.
    LockHeld(usize),
    /// Step `step` (an id) exits 1 on the host.
    StepFails { host: usize, step: usize },
    /// The connection drops during step `step`, after it did its work or before; a host
    /// lost for good cannot be reached to be put back.
    Lost {
        host: usize,
        step: usize,
        applied: bool,
        for_good: bool,
    },
    /// The host stops answering during step `step`.
    Hang { host: usize, step: usize },
    /// The local step fails.
    LocalFails,
    /// The local step never ends (its time limit cuts it).
    LocalHangs,
    /// (review) The lock step takes the lock, then the script dies (killed: no status, no
    /// `end` line), as a kill -9, the OOM killer or a full disk after `mkdir` would leave it.
    LockDies(usize),
}

/// One schedule: a fleet, a plan shape, faults, signals and the order of events (the seed).
#[derive(Clone, Debug)]
struct Scenario {
    seed: u64,
    hosts: usize,
    parallel: usize,
    rolling: Option<(usize, usize)>,
    local_task: bool,
    history: usize,
    faults: Vec<Fault>,
    stop_at_go: Option<usize>,
    second_stop: bool,
    /// (review) A local task after `switch` (a sync point after every host switched).
    local_after_switch: bool,
    /// (review) SIGINT while the post-switch local task runs.
    stop_at_local_after_switch: bool,
}

fn host_name(i: usize) -> String {
    format!("h{}", i + 1)
}

fn stage(s: &Scenario) -> Stage {
    let mut tasks = BTreeMap::new();
    let fault_check = |name: &str| {
        format!("[ ! -e \"$SHIP_DEPLOY_TO/fault.$SHIP_HOST.{name}\" ] && echo {name} ran")
    };
    tasks.insert(
        "migrate".to_owned(),
        TaskConfig {
            run: fault_check("migrate"),
            after: Some("install".to_owned()),
            once: Once::Deploy,
            ..TaskConfig::default()
        },
    );
    tasks.insert(
        "restart".to_owned(),
        TaskConfig {
            run: fault_check("restart"),
            after: Some("switch".to_owned()),
            ..TaskConfig::default()
        },
    );
    if s.local_after_switch {
        tasks.insert(
            "notify".to_owned(),
            TaskConfig {
                run: "echo notified".to_owned(),
                after: Some("switch".to_owned()),
                local: true,
                ..TaskConfig::default()
            },
        );
    }
    if s.local_task {
        tasks.insert(
            "announce".to_owned(),
            TaskConfig {
                run: "[ ! -e fault.local ] && echo announced".to_owned(),
                after: Some("install".to_owned()),
                local: true,
                ..TaskConfig::default()
            },
        );
    }
    let hosts: Vec<ship_core::Host> = (0..s.hosts)
        .map(|i| ship_core::Host {
            name: host_name(i),
            roles: vec!["web".to_owned()],
            linked_files: vec![],
            linked_dirs: vec![],
            health: None,
            primary: false,
            vars: Default::default(),
            ssh: None,
        })
        .collect();
    Stage {
        name: "production".to_owned(),
        app: "sim".to_owned(),
        deploy_to: DEPLOY_TO.to_owned(),
        layout: LayoutName::from("timestamp"),
        keep_releases: 3,
        delta: false,
        parallel: s.parallel,
        artifact_store: None,
        source: SourceConfig::Dir("dist".to_owned()),
        build: vec![],
        include: vec![],
        cargo: Default::default(),
        version: None,
        linked_files: vec![],
        linked_dirs: vec![],
        roles: [(
            "web".to_owned(),
            hosts.iter().map(|h| h.name.clone()).collect(),
        )]
        .into_iter()
        .collect(),
        hosts,
        tasks,
        skipped: Vec::new(),
        health: None,
        ssh_config: None,
        connect_timeout: Duration::from_secs(10),
        command_timeout: Duration::from_secs(60),
        keep_connections: None,
        adapters: Default::default(),
        require_pushed: None,
        rolling: s.rolling.map(|(n, _)| ship_core::Rolling::Hosts(n)),
        max_fail: s.rolling.map_or(1, |(_, m)| m),
        tag: None,
        notify: None,
        maintenance: None,
        env: BTreeMap::new(),
        secrets: BTreeMap::new(),
    }
}

/// The artifact: a tar of one file, its sha256 and its zstd and gzip forms.
struct Artifact {
    digest: String,
    zst: Vec<u8>,
}

fn artifact() -> Artifact {
    let mut tar = tar::Builder::new(Vec::new());
    let body = b"<h1>sim</h1>\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, "index.html", &body[..])
        .unwrap();
    let bytes = tar.into_inner().unwrap();
    Artifact {
        digest: ship_core::sha256_hex(&bytes),
        zst: zstd::encode_all(&bytes[..], 3).unwrap(),
    }
}

/// What a schedule's plan depends on: hosts, parallel, rolling, a local task.
type Shape = (usize, usize, Option<(usize, usize)>, bool, bool);

thread_local! {
    /// Plans by shape: a schedule's plan depends only on these, and planning (sealing the
    /// plan's JSON) costs more than simulating.
    static PLANS: std::cell::RefCell<BTreeMap<Shape, Plan>> = Default::default();
}

fn plan(s: &Scenario, layout: &dyn Layout, digest: &str) -> Plan {
    let shape = (
        s.hosts,
        s.parallel,
        s.rolling,
        s.local_task,
        s.local_after_switch,
    );
    if let Some(p) = PLANS.with(|c| c.borrow().get(&shape).cloned()) {
        return p;
    }
    let p = make_plan(s, layout, digest);
    PLANS.with(|c| c.borrow_mut().insert(shape, p.clone()));
    p
}

fn make_plan(s: &Scenario, layout: &dyn Layout, digest: &str) -> Plan {
    let stage = stage(s);
    ship_core::plan(&PlanInput {
        stage: &stage,
        layout,
        release: RELEASE.to_owned(),
        artifact: ArtifactInfo {
            source: "dir dist".to_owned(),
            revision: None,
            digest: digest.to_owned(),
            bytes: 1000,
            entries: 1,
            commands: vec![],
            promoted_from: None,
            uncommitted: Vec::new(),
        },
        config_digest: "0".repeat(64),
        extra_tasks: vec![],
        overrides: vec![],
    })
    .expect("the simulation's plan")
}

impl Scenario {
    /// A scenario from a seed; `shell`: only faults a real `sh` host can be given
    /// deterministically (no lost connection, no hang).
    fn generate(seed: u64, plan_of: impl Fn(&Scenario) -> Plan, shell: bool) -> Scenario {
        let mut rng = Rng(seed);
        let hosts = 1 + rng.below(5);
        let mut s = Scenario {
            seed,
            hosts,
            parallel: 1 + rng.below(hosts),
            rolling: rng
                .chance(25)
                .then(|| (1 + rng.below(hosts), 1 + rng.below(2))),
            local_task: rng.chance(30),
            history: rng.below(4),
            faults: Vec::new(),
            stop_at_go: None,
            second_stop: false,
            local_after_switch: false,
            stop_at_local_after_switch: false,
        };
        // (review) Extra draws from a stream of their own, so that the schedules above keep
        // their faults and orders; never on shell hosts.
        let mut extra = Rng(seed ^ 0x7e71_e700_0000_0001);
        if !shell && extra.chance(10) {
            s.local_after_switch = true;
            s.stop_at_local_after_switch = extra.chance(50);
        }
        let lock_dies = !shell && extra.chance(5);
        let local_hangs = !shell && extra.chance(5);
        let lock_dies_host = extra.below(hosts);
        let p = plan_of(&s);
        let step_ids = |h: usize| -> Vec<usize> {
            p.hosts
                .iter()
                .find(|x| x.name == host_name(h))
                .map(|x| x.steps.clone())
                .unwrap_or_default()
        };
        let task_ids = |h: usize| -> Vec<usize> {
            step_ids(h)
                .into_iter()
                .filter(|id| {
                    p.step(*id)
                        .is_some_and(|st| st.kind == ship_core::StepKind::Task)
                })
                .collect()
        };
        let most = if rng.chance(20) { 1 } else { 4 };
        let count = rng.below(most);
        for _ in 0..count {
            let host = rng.below(hosts);
            let kinds = if shell { 4 } else { 6 };
            let fault = match rng.below(kinds) {
                0 => Fault::ConnectFails(host),
                1 => Fault::LockHeld(host),
                2 if s.local_task => Fault::LocalFails,
                2 | 3 => {
                    let ids = if shell {
                        task_ids(host)
                    } else {
                        step_ids(host)
                    };
                    if ids.is_empty() {
                        continue;
                    }
                    Fault::StepFails {
                        host,
                        step: ids[rng.below(ids.len())],
                    }
                }
                4 => {
                    let ids = step_ids(host);
                    Fault::Lost {
                        host,
                        step: ids[rng.below(ids.len())],
                        applied: rng.chance(50),
                        for_good: rng.chance(30),
                    }
                }
                _ => {
                    let ids = step_ids(host);
                    Fault::Hang {
                        host,
                        step: ids[rng.below(ids.len())],
                    }
                }
            };
            if !s.faults.contains(&fault) {
                s.faults.push(fault);
            }
        }
        if lock_dies {
            s.faults.push(Fault::LockDies(lock_dies_host));
        }
        if local_hangs && (s.local_task || s.local_after_switch) {
            s.faults.push(Fault::LocalHangs);
        }
        if rng.chance(20) {
            let segments = p.hosts.iter().map(|h| h.scripts.len()).max().unwrap_or(1);
            s.stop_at_go = Some(1 + rng.below(segments * hosts));
            s.second_stop = rng.chance(30);
        }
        s
    }
}

/// What a host holds, as the invariants look at it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Disk {
    current: Option<String>,
    releases: BTreeSet<String>,
    records: Vec<(String, ReleaseState)>,
    lock: Option<String>,
    preparing: Option<String>,
}

fn history(n: usize) -> Vec<ReleaseRecord> {
    (0..n)
        .map(|i| ReleaseRecord {
            id: format!("2026110{}000000", i + 1),
            dir: format!("2026110{}000000", i + 1),
            revision: None,
            digest: "old".to_owned(),
            time: "2026-11-01T00:00:00Z".to_owned(),
            user: "old@ci".to_owned(),
            state: if i + 1 == n {
                ReleaseState::Live
            } else {
                ReleaseState::Good
            },
        })
        .collect()
}

const OTHER_HOLDER: &str = "bob@laptop since 2026-11-25T09:00:00Z (sim release x to production)";

/// One simulated host, as the machine's actions reach it.
trait Host {
    fn open(&mut self, script: &str);
    fn send(&mut self, line: &str);
    fn send_artifact(&mut self, zstd: bool);
    fn close(&mut self);
    fn kill(&mut self);
    /// Runs what it was sent, as far as it can.
    fn work(&mut self);
    fn has_output(&self) -> bool;
    fn next_output(&mut self) -> Option<Out>;
    fn recover(&mut self, recovery: &Recovery, script: &str) -> Result<RunOutput, TransportError>;
    fn disk(&self) -> Disk;
    /// Whether it can no longer be reached.
    fn lost(&self) -> bool {
        false
    }
}

/// What a host's session says.
#[derive(Clone, Debug)]
enum Out {
    Line(String),
    End(Result<RunOutput, TransportError>),
}

fn ok_status(status: i32, stderr: &str) -> Result<RunOutput, TransportError> {
    Ok(RunOutput {
        status: Some(status),
        stdout: String::new(),
        stderr: stderr.to_owned(),
    })
}

/// The in-memory host.
struct Model {
    name: String,
    plan: Plan,
    faults: Vec<Fault>,
    index: usize,
    current: Option<String>,
    releases: BTreeSet<String>,
    records: Vec<ReleaseRecord>,
    lock: Option<String>,
    preparing: Option<String>,
    artifact: bool,
    lost_for_good: bool,
    session: Option<Session>,
    /// Its segments, in order.
    segments: Vec<usize>,
}

#[derive(Default)]
struct Session {
    inbox: VecDeque<String>,
    closed: bool,
    nonce: Option<String>,
    lock_info: String,
    /// The deploy took the lock before this batch (`ship_hold`): its lock step goes on
    /// under it.
    holds: bool,
    segment: usize,
    outbox: VecDeque<Out>,
    over: bool,
    stuck: bool,
}

impl Model {
    fn new(index: usize, s: &Scenario, plan: &Plan) -> Model {
        let records = history(s.history);
        Model {
            name: host_name(index),
            plan: plan.clone(),
            faults: s.faults.clone(),
            index,
            current: records.last().map(|r| r.dir.clone()),
            releases: records.iter().map(|r| r.dir.clone()).collect(),
            records,
            lock: s
                .faults
                .contains(&Fault::LockHeld(index))
                .then(|| OTHER_HOLDER.to_owned()),
            preparing: None,
            artifact: false,
            lost_for_good: false,
            session: None,
            segments: plan
                .hosts
                .iter()
                .find(|h| h.name == host_name(index))
                .map(|h| h.scripts.iter().map(|x| x.segment).collect())
                .unwrap_or_default(),
        }
    }

    /// Runs segment `k`'s steps; their lines go to the outbox.
    fn run_segment(&mut self, k: usize, cleanup: &str, records: &str) {
        let mut session = self.session.take().expect("an open session");
        let nonce = session.nonce.clone().expect("the nonce came first");
        let say = |s: &mut Session, text: String| s.outbox.push_back(Out::Line(text));
        let me = self
            .plan
            .hosts
            .iter()
            .find(|h| h.name == self.name)
            .unwrap();
        let steps: Vec<usize> = me
            .steps
            .iter()
            .copied()
            .filter(|id| self.plan.step(*id).and_then(|st| st.script) == Some(k))
            .collect();
        // The records (a line the host's `read` takes a byte per system call) go only to
        // the script whose cleanup or unlock reads them.
        let reads_records = steps.iter().any(|id| {
            let st = self.plan.step(*id).unwrap();
            st.kind == ship_core::StepKind::Phase
                && matches!(
                    st.phase,
                    ship_core::Phase::Cleanup | ship_core::Phase::Unlock
                )
        });
        assert!(
            reads_records || records.is_empty(),
            "script {k} of {} was sent the records, which none of its steps reads",
            self.name
        );
        for id in steps {
            let step = self.plan.step(id).unwrap().clone();
            let is_lock =
                step.kind == ship_core::StepKind::Phase && step.phase == ship_core::Phase::Lock;
            if !is_lock && self.lock.as_deref() != Some(session.lock_info.as_str()) {
                session.outbox.push_back(Out::End(ok_status(
                    77,
                    "this deploy no longer holds the lock",
                )));
                session.over = true;
                self.session = Some(session);
                return;
            }
            say(&mut session, format!("{nonce} start {id} {}", step.name));
            let fault = self.faults.iter().find(|f| match f {
                Fault::StepFails { host, step } | Fault::Hang { host, step } => {
                    *host == self.index && *step == id
                }
                Fault::Lost { host, step, .. } => *host == self.index && *step == id,
                _ => false,
            });
            match fault.cloned() {
                Some(Fault::StepFails { .. }) => {
                    say(&mut session, format!("{nonce} end {id} 1"));
                    session.outbox.push_back(Out::End(ok_status(1, "")));
                    session.over = true;
                    self.session = Some(session);
                    return;
                }
                Some(Fault::Hang { .. }) => {
                    session.stuck = true;
                    self.session = Some(session);
                    return;
                }
                Some(Fault::Lost {
                    applied, for_good, ..
                }) => {
                    if applied {
                        self.apply(&step, &mut session, &nonce, cleanup, records);
                    }
                    self.lost_for_good |= for_good;
                    session
                        .outbox
                        .push_back(Out::End(Err(TransportError::Session {
                            host: self.name.clone(),
                            message: "connection lost".to_owned(),
                        })));
                    session.over = true;
                    self.session = Some(session);
                    // Lost once: reached again later (unless for good).
                    self.faults
                        .retain(|f| !matches!(f, Fault::Lost { step, .. } if *step == id));
                    return;
                }
                _ => {}
            }
            if is_lock && self.faults.contains(&Fault::LockDies(self.index)) && self.lock.is_none()
            {
                // `mkdir` took the lock; the script is killed before it says so.
                self.lock = Some(session.lock_info.clone());
                session.outbox.push_back(Out::End(Ok(RunOutput {
                    status: None,
                    stdout: String::new(),
                    stderr: String::new(),
                })));
                session.over = true;
                self.session = Some(session);
                return;
            }
            let held_by_us = session.holds && self.lock.as_deref() == Some(&session.lock_info);
            if is_lock && self.lock.is_some() && !held_by_us {
                say(&mut session, format!("{nonce} end {id} 75"));
                let holder = self.lock.clone().unwrap();
                session.outbox.push_back(Out::End(ok_status(
                    75,
                    &format!(
                        "cargo-ship: {} is locked by another deploy: {holder}\n",
                        self.name
                    ),
                )));
                session.over = true;
                self.session = Some(session);
                return;
            }
            self.apply(&step, &mut session, &nonce, cleanup, records);
            say(&mut session, format!("{nonce} end {id} 0"));
        }
        say(&mut session, format!("{nonce} segment {k}"));
        self.session = Some(session);
    }

    /// What step `step` does to the host.
    fn apply(
        &mut self,
        step: &ship_core::Step,
        session: &mut Session,
        nonce: &str,
        cleanup: &str,
        records: &str,
    ) {
        use ship_core::Phase;
        if step.kind != ship_core::StepKind::Phase {
            return;
        }
        let say = |s: &mut Session, text: String| s.outbox.push_back(Out::Line(text));
        match step.phase {
            Phase::Lock => {
                if self.lock.is_some()
                    && !(session.holds && self.lock.as_deref() == Some(&session.lock_info))
                {
                    return; // held by another: `mkdir` fails
                }
                self.lock = Some(session.lock_info.clone());
                let mut probe = Session::default();
                self.apply_probe(&mut probe, nonce);
                session.outbox.extend(probe.outbox);
                if self.artifact {
                    say(session, format!("{nonce} state artifact present"));
                }
                say(session, format!("{nonce} state zstd"));
                if let Some(p) = &self.preparing {
                    say(session, format!("{nonce} state preparing {p}"));
                }
            }
            Phase::Upload if !self.artifact => {
                assert_eq!(
                    session.inbox.pop_front().as_deref(),
                    Some("ARTIFACT"),
                    "{}: the upload step reads the artifact",
                    self.name
                );
                self.artifact = true;
            }
            Phase::Prepare => {
                self.preparing = Some(RELEASE.to_owned());
                self.releases.insert(RELEASE.to_owned());
            }
            Phase::Switch => self.current = Some(RELEASE.to_owned()),
            Phase::Cleanup => {
                for d in cleanup.split_whitespace() {
                    self.releases.remove(d);
                }
            }
            Phase::Unlock => {
                self.records = ship_core::records::parse(records).expect("records JSON");
                self.preparing = None;
                self.lock = None;
            }
            _ => {}
        }
    }
}

impl Model {
    /// What a recovery script does when the lock is this deploy's.
    fn put_back(&mut self, recovery: &Recovery) {
        match recovery {
            Recovery::Abort { discard, .. } => {
                if *discard && self.current.as_deref() != Some(RELEASE) {
                    self.releases.remove(RELEASE);
                }
            }
            Recovery::Revert {
                target, records, ..
            } => {
                self.current = target.clone();
                self.records = records.clone();
            }
            Recovery::Hold | Recovery::Release => unreachable!("handled by `recover`"),
        }
        self.preparing = None;
        self.lock = None;
    }

    /// The state lines `protocol::probe` prints.
    fn apply_probe(&self, session: &mut Session, nonce: &str) {
        let say = |s: &mut Session, text: String| s.outbox.push_back(Out::Line(text));
        let current = self
            .current
            .as_ref()
            .map(|d| format!("{DEPLOY_TO}/releases/{d}"))
            .unwrap_or_default();
        say(session, format!("{nonce} state current {current}"));
        for r in &self.releases {
            say(session, format!("{nonce} state release {r}"));
        }
        if !self.records.is_empty() {
            say(session, format!("{nonce} state records"));
            for line in ship_core::records::to_json(&self.records).lines() {
                say(session, format!("{nonce} state json {line}"));
            }
            say(session, format!("{nonce} state end"));
        }
    }
}

fn lock_info_of(script: &str) -> String {
    script
        .lines()
        .find_map(|l| l.strip_prefix("SHIP_LOCK_INFO="))
        .map(|v| v.trim_matches('\'').to_owned())
        .expect("the conversation sets SHIP_LOCK_INFO")
}

impl Host for Model {
    fn open(&mut self, script: &str) {
        self.session = Some(Session {
            lock_info: lock_info_of(script),
            holds: script.lines().any(|l| {
                l.strip_prefix("ship_hold=")
                    .is_some_and(|v| v.trim_matches('\'') == "1")
            }),
            ..Session::default()
        });
    }
    fn send(&mut self, line: &str) {
        if let Some(s) = self.session.as_mut()
            && !s.closed
        {
            s.inbox.push_back(line.to_owned());
        }
    }
    fn send_artifact(&mut self, _zstd: bool) {
        self.send("ARTIFACT");
    }
    fn close(&mut self) {
        if let Some(s) = self.session.as_mut() {
            s.closed = true;
        }
    }
    fn kill(&mut self) {
        self.session = None;
    }
    fn work(&mut self) {
        loop {
            let Some(s) = self.session.as_mut() else {
                return;
            };
            if s.over || s.stuck {
                return;
            }
            if s.nonce.is_none() {
                match s.inbox.pop_front() {
                    Some(n) => s.nonce = Some(n),
                    None if s.closed => {
                        s.outbox.push_back(Out::End(ok_status(0, "")));
                        s.over = true;
                    }
                    None => return,
                }
                continue;
            }
            let segments = &self.segments;
            if s.inbox.len() >= 3 && s.segment < segments.len() {
                let go = s.inbox.pop_front().unwrap();
                assert_eq!(go, "go");
                let cleanup = s.inbox.pop_front().unwrap();
                let records = s.inbox.pop_front().unwrap();
                let k = segments[s.segment];
                s.segment += 1;
                self.run_segment(k, &cleanup, &records);
                continue;
            }
            if s.closed && s.inbox.len() < 3 || s.segment >= segments.len() {
                // Its reads find the end of the input, or its script is over: it exits.
                s.outbox.push_back(Out::End(ok_status(0, "")));
                s.over = true;
            }
            return;
        }
    }
    fn has_output(&self) -> bool {
        self.session.as_ref().is_some_and(|s| !s.outbox.is_empty())
    }
    fn next_output(&mut self) -> Option<Out> {
        self.session.as_mut()?.outbox.pop_front()
    }
    fn recover(&mut self, recovery: &Recovery, script: &str) -> Result<RunOutput, TransportError> {
        if self.lost_for_good {
            return Err(TransportError::Connect {
                host: self.name.clone(),
                message: "no route to host".to_owned(),
            });
        }
        let value = |key: &str| {
            script
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.trim_matches('\'').to_owned())
                .expect("the recovery script sets it")
        };
        let info = value("SHIP_LOCK_INFO=");
        // A rolling deploy's locks, taken before batch 1 and released where no batch ran
        // (`protocol::hold`, `protocol::release_hold`).
        match recovery {
            Recovery::Hold => {
                return match &self.lock {
                    None => {
                        self.lock = Some(info);
                        ok_status(0, "")
                    }
                    Some(holder) => ok_status(
                        75,
                        &format!(
                            "cargo-ship: {} is locked by another deploy: {holder}\n",
                            self.name
                        ),
                    ),
                };
            }
            Recovery::Release => {
                if self.lock.as_deref() == Some(info.as_str()) {
                    self.lock = None;
                }
                return ok_status(0, "");
            }
            _ => {}
        }
        // Under this deploy's lock, taken again if it is free (see `under_own_lock`).
        if self.lock.is_none() {
            self.lock = Some(info.clone());
        }
        if self.lock.as_deref() == Some(info.as_str()) {
            self.put_back(recovery);
        } else if matches!(recovery, Recovery::Revert { .. }) {
            return ok_status(75, "cargo-ship: locked by another deploy");
        }
        // It prints the host's state as it leaves it.
        let nonce = value("ship_n=");
        let mut session = Session::default();
        self.apply_probe(&mut session, &nonce);
        let stdout: String = session
            .outbox
            .into_iter()
            .filter_map(|o| match o {
                Out::Line(l) => Some(l + "\n"),
                Out::End(_) => None,
            })
            .collect();
        Ok(RunOutput {
            status: Some(0),
            stdout,
            stderr: String::new(),
        })
    }
    fn lost(&self) -> bool {
        self.lost_for_good
    }
    fn disk(&self) -> Disk {
        Disk {
            current: self.current.clone(),
            releases: self.releases.clone(),
            records: self
                .records
                .iter()
                .map(|r| (r.id.clone(), r.state))
                .collect(),
            lock: self.lock.clone(),
            preparing: self.preparing.clone(),
        }
    }
}

/// A host that is a real `sh` with a directory of its own at the plan's `deploy_to`.
struct Shell {
    root: std::path::PathBuf,
    child: Option<std::process::Child>,
    lines: Option<std::io::BufReader<std::process::ChildStdout>>,
    nonce: Option<String>,
    segments: usize,
    read: usize,
    waiting: bool,
    outbox: VecDeque<Out>,
    zst: std::path::PathBuf,
}

fn in_namespace(root: &std::path::Path, script: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mkdir -p {DEPLOY_TO} && mount --bind \"$1\" {DEPLOY_TO} && exec sh -c \"$2\""
        ))
        .arg("sim")
        .arg(root.join("app"))
        .arg(script);
    cmd
}

impl Shell {
    fn new(
        i: usize,
        s: &Scenario,
        plan: &Plan,
        dir: &std::path::Path,
        zst: &std::path::Path,
    ) -> Shell {
        let root = dir.join(host_name(i));
        let app = root.join("app");
        std::fs::create_dir_all(app.join("releases")).unwrap();
        std::fs::create_dir_all(app.join(".ship")).unwrap();
        let records = history(s.history);
        for r in &records {
            std::fs::create_dir_all(app.join("releases").join(&r.dir)).unwrap();
        }
        if let Some(live) = records.last() {
            std::os::unix::fs::symlink(
                format!("{DEPLOY_TO}/releases/{}", live.dir),
                app.join("current"),
            )
            .unwrap();
            std::fs::write(
                app.join(".ship/releases.json"),
                ship_core::records::to_json(&records),
            )
            .unwrap();
        }
        if s.faults.contains(&Fault::LockHeld(i)) {
            std::fs::create_dir_all(app.join(".ship/lock")).unwrap();
            std::fs::write(app.join(".ship/lock/info"), format!("{OTHER_HOLDER}\n")).unwrap();
        }
        for f in &s.faults {
            if let Fault::StepFails { host, step } = f
                && *host == i
            {
                // The task's command looks for this file (see `stage`).
                let name = &plan.step(*step).expect("a step").name;
                std::fs::write(app.join(format!("fault.{}.{name}", host_name(i))), "").unwrap();
            }
        }
        let segments = plan
            .hosts
            .iter()
            .find(|h| h.name == host_name(i))
            .map_or(0, |h| h.scripts.len());
        Shell {
            segments,
            read: 0,
            root,
            child: None,
            lines: None,
            nonce: None,
            waiting: false,
            outbox: VecDeque::new(),
            zst: zst.to_owned(),
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        use std::io::Write;
        if let Some(stdin) = self.child.as_mut().and_then(|c| c.stdin.as_mut()) {
            let _ = stdin.write_all(bytes);
            let _ = stdin.flush();
        }
    }

    /// Reads until the segment's line or the end of the script.
    fn read_segment(&mut self) {
        use std::io::BufRead;
        let nonce = self.nonce.clone().expect("the nonce came first");
        let Some(reader) = self.lines.as_mut() else {
            return;
        };
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let mut child = self.child.take().expect("running");
                    drop(child.stdin.take());
                    let mut stderr = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        use std::io::Read;
                        let _ = e.read_to_string(&mut stderr);
                    }
                    let status = child.wait().unwrap().code();
                    self.outbox.push_back(Out::End(Ok(RunOutput {
                        status,
                        stdout: String::new(),
                        stderr,
                    })));
                    self.lines = None;
                    return;
                }
                Ok(_) => {
                    let line = line.trim_end_matches('\n').to_owned();
                    let done = line.starts_with(&format!("{nonce} segment "));
                    self.outbox.push_back(Out::Line(line));
                    if done {
                        self.read += 1;
                        // After its last segment the script ends: read on to its end.
                        if self.read < self.segments {
                            return;
                        }
                    }
                }
            }
        }
    }
}

impl Host for Shell {
    fn open(&mut self, script: &str) {
        let mut cmd = in_namespace(&self.root, script);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("unshare and sh run");
        self.lines = Some(std::io::BufReader::new(child.stdout.take().unwrap()));
        self.child = Some(child);
    }
    fn send(&mut self, line: &str) {
        if self.nonce.is_none() {
            self.nonce = Some(line.to_owned());
        } else if line == "go" {
            self.waiting = true;
        }
        self.write(format!("{line}\n").as_bytes());
    }
    fn send_artifact(&mut self, zstd: bool) {
        assert!(zstd, "the shell hosts have zstd");
        let bytes = std::fs::read(&self.zst).unwrap();
        let header = ship_core::protocol::artifact_header(
            true,
            bytes.len() as u64,
            &ship_core::sha256_hex(&bytes),
        );
        self.write(format!("{header}\n").as_bytes());
        self.write(&bytes);
    }
    fn close(&mut self) {
        if let Some(c) = self.child.as_mut() {
            drop(c.stdin.take());
        }
        if self.lines.is_some() && !self.waiting {
            // Its next read ends the script.
            self.waiting = true;
        }
    }
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.lines = None;
    }
    fn work(&mut self) {
        // A segment starts when the go and its two lines (and the artifact) were written.
        if self.waiting && self.child.is_some() {
            self.waiting = false;
            self.read_segment();
        }
    }
    fn has_output(&self) -> bool {
        !self.outbox.is_empty()
    }
    fn next_output(&mut self) -> Option<Out> {
        self.outbox.pop_front()
    }
    fn recover(&mut self, _recovery: &Recovery, script: &str) -> Result<RunOutput, TransportError> {
        let out = in_namespace(&self.root, script).output().unwrap();
        Ok(RunOutput {
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
    fn disk(&self) -> Disk {
        let app = self.root.join("app");
        let current = std::fs::read_link(app.join("current"))
            .ok()
            .map(|t| t.file_name().unwrap().to_string_lossy().into_owned());
        let releases = std::fs::read_dir(app.join("releases"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let records = std::fs::read_to_string(app.join(".ship/releases.json"))
            .map(|j| ship_core::records::parse(&j).unwrap())
            .unwrap_or_default()
            .into_iter()
            .map(|r| (r.id, r.state))
            .collect();
        let lock = std::fs::read_to_string(app.join(".ship/lock/info"))
            .ok()
            .map(|l| l.trim_end().to_owned());
        let preparing = std::fs::read_dir(app.join(".ship/preparing.d"))
            .ok()
            .and_then(|d| d.filter_map(Result::ok).next())
            .map(|e| e.file_name().to_string_lossy().into_owned());
        Disk {
            current,
            releases,
            records,
            lock,
            preparing,
        }
    }
}

/// What the simulated world owes the machine: something to deliver.
enum Pending {
    Connect(String),
    Local(usize),
    Recover(String, Recovery, String),
    Gz,
}

/// Runs one schedule; returns the outcome, each host's disk before and after, the lost
/// hosts, and the trace.
struct Run {
    outcome: Outcome,
    before: Vec<Disk>,
    after: Vec<Disk>,
    lost: Vec<bool>,
    trace: Vec<String>,
    /// A local step hung, and whether the machine cut it.
    hung_local: Option<bool>,
    /// (review) The `once` task `migrate` ended 0 on some host.
    migrated: bool,
    /// (review) When SIGINT came during the post-switch local task: whether every host
    /// was on the new release then.
    all_switched_at_stop: Option<bool>,
}

fn simulate(
    s: &Scenario,
    plan: &Plan,
    layout: &dyn Layout,
    hosts: &mut [Box<dyn Host>],
    canonical: bool,
    tracing: bool,
) -> Result<Run, String> {
    let options = MachineOptions {
        deployer: "sim@ci".to_owned(),
        started_at: "2026-11-25T12:00:00Z".to_owned(),
        segment_timeout: Duration::from_secs(60),
        nonce: Nonce::from_bytes(&s.seed.to_le_bytes()),
        live: false,
        env: None,
    };
    let index: BTreeMap<String, usize> = (0..s.hosts).map(|i| (host_name(i), i)).collect();
    let before: Vec<Disk> = hosts.iter().map(|h| h.disk()).collect();
    let mut machine = Machine::new(plan.clone(), layout, options);
    let mut rng = Rng(s.seed ^ 0x5151_5151);
    let mut inputs = VecDeque::from([Input::Start]);
    let mut pending: Vec<Pending> = Vec::new();
    // Timers fire in the order of their deadlines, on a clock that moves only when nothing
    // else can happen.
    let mut timers: Vec<(String, u64, Duration)> = Vec::new();
    let mut clock = Duration::ZERO;
    let mut hard_stop_at = None;
    let mut gos = 0;
    let mut stops = 0;
    let mut trace = Vec::new();
    let mut outcome = None;
    let mut migrated = false;
    // A local step that never ends must be cut (or the schedule stalls: a violation).
    let mut local_killed = false;
    let mut hung_local = false;
    let mut all_switched_at_stop = None;
    for _ in 0..200_000 {
        while let Some(input) = inputs.pop_front() {
            if tracing {
                trace.push(format!("in  {input:?}"));
            }
            for action in machine.handle(input) {
                if tracing {
                    trace.push(format!("out {action:?}"));
                }
                match action {
                    Action::Connect { host } => pending.push(Pending::Connect(host)),
                    Action::Open { host, script } => hosts[index[&host]].open(&script),
                    Action::Send { host, line } => {
                        if line == "go" {
                            gos += 1;
                            if Some(gos) == s.stop_at_go {
                                stops += 1;
                                inputs.push_back(Input::Stop("SIGINT".to_owned()));
                            }
                        }
                        hosts[index[&host]].send(&line);
                    }
                    Action::SendArtifact { host, zstd } => hosts[index[&host]].send_artifact(zstd),
                    Action::SendBundle { host, .. } => hosts[index[&host]].send_artifact(true),
                    Action::Close { host } => hosts[index[&host]].close(),
                    Action::Kill { host } => match index.get(&host) {
                        Some(i) => hosts[*i].kill(),
                        None => local_killed = true,
                    },
                    Action::Arm { host, timer, after } => timers.push((host, timer, clock + after)),
                    Action::MakeGz => pending.push(Pending::Gz),
                    Action::RunLocal { id, .. } => {
                        if s.stop_at_local_after_switch
                            && plan.step(id).is_some_and(|st| st.name == "notify")
                            && all_switched_at_stop.is_none()
                        {
                            all_switched_at_stop = Some(
                                hosts
                                    .iter()
                                    .all(|h| h.disk().current.as_deref() == Some(RELEASE)),
                            );
                            inputs.push_back(Input::Stop("SIGINT".to_owned()));
                        }
                        if s.faults.contains(&Fault::LocalHangs) {
                            hung_local = true;
                        } else {
                            pending.push(Pending::Local(id));
                        }
                    }
                    Action::Recover {
                        host,
                        recovery,
                        script,
                    } => pending.push(Pending::Recover(host, recovery, script)),
                    Action::Event(ship_core::Event::Step {
                        name, status: 0, ..
                    }) if name == "migrate" => migrated = true,
                    Action::Event(_) => {}
                    Action::Done(o) => outcome = Some(o),
                }
            }
        }
        if let Some(outcome) = outcome {
            if let Some(at) = hard_stop_at
                && clock > at + ship_core::machine::STOP_GRACE
            {
                return Err(format!(
                    "a second SIGINT at {at:?} was not obeyed within {:?}: done at {clock:?}\n{}",
                    ship_core::machine::STOP_GRACE,
                    trace.join("\n")
                ));
            }
            let after = hosts.iter().map(|h| h.disk()).collect();
            let lost = hosts.iter().map(|h| h.lost()).collect();
            return Ok(Run {
                outcome,
                before,
                after,
                lost,
                trace,
                migrated,
                all_switched_at_stop,
                hung_local: hung_local.then_some(local_killed),
            });
        }
        for h in hosts.iter_mut() {
            h.work();
        }
        if stops == 1 && s.second_stop && rng.below(4) == 0 {
            // A second Ctrl-C, a moment after the first: stop now.
            stops += 1;
            hard_stop_at = Some(clock);
            inputs.push_back(Input::StopNow("SIGINT".to_owned()));
            continue;
        }
        // What can be delivered now: a host's next line or end, a connection, a local step,
        // a recovery. Time passes (a timer fires) only when nothing else can happen.
        let ready: Vec<usize> = (0..hosts.len())
            .filter(|i| hosts[*i].has_output())
            .collect();
        let total = ready.len() + pending.len();
        if total == 0 {
            if timers.is_empty() {
                return Err(format!("stalled: nothing to deliver\n{}", trace.join("\n")));
            }
            let first = (0..timers.len())
                .min_by_key(|i| timers[*i].2)
                .expect("a timer");
            let (host, timer, at) = timers.remove(first);
            clock = clock.max(at);
            inputs.push_back(Input::TimedOut { host, timer });
            continue;
        }
        let pick = if canonical { 0 } else { rng.below(total) };
        if pick < ready.len() {
            let i = ready[pick];
            let host = host_name(i);
            inputs.push_back(match hosts[i].next_output().expect("it has output") {
                Out::Line(line) => Input::Line { host, line },
                Out::End(result) => Input::Ended { host, result },
            });
            continue;
        }
        inputs.push_back(match pending.remove(pick - ready.len()) {
            Pending::Connect(host) => {
                let refused = s.faults.contains(&Fault::ConnectFails(index[&host]));
                Input::Connected {
                    result: if refused {
                        Err(TransportError::Connect {
                            host: host.clone(),
                            message: "Connection refused".to_owned(),
                        })
                    } else {
                        Ok(())
                    },
                    host,
                }
            }
            Pending::Gz => Input::GzMade(Ok(())),
            Pending::Local(id) => {
                let fails = s.faults.contains(&Fault::LocalFails);
                Input::LocalDone {
                    id,
                    result: ok_status(if fails { 1 } else { 0 }, ""),
                }
            }
            Pending::Recover(host, recovery, script) => {
                let result = hosts[index[&host]].recover(&recovery, &script);
                Input::Recovered { host, result }
            }
        });
    }
    Err(format!(
        "did not finish in 200,000 steps\n{}",
        trace.join("\n")
    ))
}

/// Every invariant a schedule must keep; the violations found.
fn check(s: &Scenario, plan: &Plan, run: &Run) -> Vec<String> {
    let mut v = Vec::new();
    let o = &run.outcome;
    let names: Vec<&str> = o.hosts.iter().map(|(h, _)| h.as_str()).collect();
    let expected: Vec<String> = (0..s.hosts).map(host_name).collect();
    if names != expected.iter().map(String::as_str).collect::<Vec<_>>() {
        v.push(format!(
            "the outcome names {names:?}, not every host once in order"
        ));
    }
    let all_deployed = o.hosts.iter().all(|(_, e)| *e == HostEnd::Deployed);
    if o.ok() != all_deployed {
        v.push(format!(
            "ok() is {} but the hosts are {:?}",
            o.ok(),
            o.hosts
        ));
    }
    for (i, (host, end)) in o.hosts.iter().enumerate() {
        let (b, a) = (&run.before[i], &run.after[i]);
        let ours = |l: &Option<String>| l.as_deref().is_some_and(|l| l.starts_with("sim@ci"));
        match end {
            HostEnd::Deployed => {
                if a.current.as_deref() != Some(RELEASE) {
                    v.push(format!("{host}: deployed, but current is {:?}", a.current));
                }
                if a.records.last() != Some(&(RELEASE.to_owned(), ReleaseState::Live)) {
                    v.push(format!("{host}: deployed, but records are {:?}", a.records));
                }
                if a.lock.is_some() || a.preparing.is_some() {
                    v.push(format!(
                        "{host}: deployed, but {:?} / {:?} left",
                        a.lock, a.preparing
                    ));
                }
            }
            HostEnd::Reverted { live } | HostEnd::Unchanged { live } => {
                if a.current != b.current || *live != b.current {
                    v.push(format!(
                        "{host}: put back, but current is {:?} (was {:?}, said {live:?})",
                        a.current, b.current
                    ));
                }
                if a.lock != b.lock && !(b.lock.is_none() && a.lock.is_none()) {
                    v.push(format!("{host}: put back, but the lock is {:?}", a.lock));
                }
                if ours(&a.lock) || a.preparing.is_some() {
                    v.push(format!(
                        "{host}: put back, but {:?} / {:?} left",
                        a.lock, a.preparing
                    ));
                }
                let half = a.releases.contains(RELEASE) && !b.releases.contains(RELEASE);
                let recorded_failed = a
                    .records
                    .iter()
                    .any(|(id, st)| id == RELEASE && *st == ReleaseState::Failed);
                if half && !recorded_failed {
                    v.push(format!(
                        "{host}: put back, but the half-made release is left unrecorded"
                    ));
                }
                if matches!(end, HostEnd::Unchanged { .. }) && a.records != b.records {
                    v.push(format!(
                        "{host}: unchanged, but its records changed: {:?}",
                        a.records
                    ));
                }
            }
            HostEnd::NotStarted { .. } => {
                if a != b {
                    v.push(format!(
                        "{host}: not started, but it changed: {b:?} → {a:?}"
                    ));
                }
            }
            HostEnd::Unknown { .. } => {
                if !run.lost[i] {
                    v.push(format!("{host}: reported unknown, but it could be reached"));
                }
            }
        }
        if a.current.as_deref() == Some(RELEASE)
            && !matches!(end, HostEnd::Deployed | HostEnd::Unknown { .. })
        {
            v.push(format!(
                "{host}: the new release is live but the outcome says {end:?}"
            ));
        }
    }
    if run.hung_local == Some(false) {
        v.push("a local step hung and the deploy ended without cutting it".to_owned());
    }
    if run.hung_local.is_some() && o.ok() {
        v.push("a local step hung, yet the deploy reports success".to_owned());
    }
    // (review) A `once` task runs before any host goes live with the release it is for.
    let has_migrate = plan.steps.iter().any(|st| st.name == "migrate");
    if has_migrate && o.hosts.iter().any(|(_, e)| *e == HostEnd::Deployed) && !run.migrated {
        v.push(format!(
            "a host is deployed but the once task `migrate` never ran: {:?}",
            o.hosts
        ));
    }
    // (review) A signal after every host switched lets the deploy complete.
    if run.all_switched_at_stop == Some(true)
        && s.faults.is_empty()
        && s.stop_at_go.is_none()
        && !o.hosts.iter().all(|(_, e)| *e == HostEnd::Deployed)
    {
        v.push(format!(
            "SIGINT came after every host switched, yet the deploy did not complete: {:?}",
            o.hosts
        ));
    }
    // A rolling deploy takes every host's lock before batch 1: a host another deploy holds,
    // or one that cannot be reached, stops it with nothing done anywhere (not after earlier
    // batches went live).
    let blocked = s
        .faults
        .iter()
        .any(|f| matches!(f, Fault::LockHeld(_) | Fault::ConnectFails(_)));
    let batches = plan.rolling.as_ref().map_or(0, |r| r.batches.len());
    if batches > 1 && blocked {
        for (i, (host, end)) in o.hosts.iter().enumerate() {
            if !run.lost[i] && (*end == HostEnd::Deployed || run.after[i] != run.before[i]) {
                v.push(format!(
                    "{host}: a host was locked or unreachable from the start, yet {host} \
                     changed: {end:?}, {:?} → {:?}",
                    run.before[i], run.after[i]
                ));
            }
        }
    }
    // All or nothing: the whole fleet, or each batch of a rolling plan.
    let groups: Vec<Vec<String>> = match &plan.rolling {
        None => vec![expected.clone()],
        Some(r) => r.batches.clone(),
    };
    for g in &groups {
        let ends: Vec<&HostEnd> = o
            .hosts
            .iter()
            .filter(|(h, _)| g.contains(h))
            .map(|(_, e)| e)
            .collect();
        let deployed = ends.iter().filter(|e| ***e == HostEnd::Deployed).count();
        if deployed > 0 && deployed < ends.len() {
            v.push(format!("hosts {g:?} disagree: {ends:?}"));
        }
    }
    if let Some(r) = &plan.rolling {
        let mut failed = 0;
        for b in &o.batches {
            if failed >= r.max_fail && b.result != ship_core::BatchResult::NotStarted {
                v.push(format!(
                    "batch {} ran after {failed} failed batches",
                    b.batch
                ));
            }
            if b.result == ship_core::BatchResult::Failed {
                failed += 1;
            }
        }
    }
    v
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// How often a schedule is also run on real `sh` hosts.
const SHELL_EVERY: u64 = 50;
/// Shell schedules draw their own scenarios (from a seed of their own).
const SHELL_SALT: u64 = 0x5eed_5eed_0000_0000;

fn models(s: &Scenario, plan: &Plan) -> Vec<Box<dyn Host>> {
    (0..s.hosts)
        .map(|i| Box::new(Model::new(i, s, plan)) as Box<dyn Host>)
        .collect()
}

/// A model run and a shell run of the same scenario, in the same (canonical) order: their
/// outcomes and their hosts' end states must be the same.
fn compare_with_shell(
    seed: u64,
    layout: &dyn Layout,
    art: &Artifact,
    zst: &std::path::Path,
) -> Vec<String> {
    let s = Scenario::generate(seed, |s| plan(s, layout, &art.digest), true);
    let p = plan(&s, layout, &art.digest);
    let mut model_hosts = models(&s, &p);
    let model = simulate(&s, &p, layout, &mut model_hosts, true, false);
    let dir = tempfile::tempdir().unwrap();
    let mut shell_hosts: Vec<Box<dyn Host>> = (0..s.hosts)
        .map(|i| Box::new(Shell::new(i, &s, &p, dir.path(), zst)) as Box<dyn Host>)
        .collect();
    let shell = simulate(&s, &p, layout, &mut shell_hosts, true, false);
    let (model, shell) = match (model, shell) {
        (Ok(m), Ok(sh)) => (m, sh),
        (m, sh) => {
            return vec![format!(
                "shell seed {seed}: a run did not finish: model {:?}, shell {:?}",
                m.err(),
                sh.err()
            )];
        }
    };
    let mut v = check(&s, &p, &shell);
    let kind = |e: &HostEnd| match e {
        HostEnd::Deployed => "deployed".to_owned(),
        HostEnd::Unchanged { live } => format!("unchanged {live:?}"),
        HostEnd::Reverted { live } => format!("reverted {live:?}"),
        HostEnd::NotStarted { .. } => "not started".to_owned(),
        HostEnd::Unknown { .. } => "unknown".to_owned(),
    };
    for (i, ((h, m), (_, sh))) in model
        .outcome
        .hosts
        .iter()
        .zip(&shell.outcome.hosts)
        .enumerate()
    {
        if kind(m) != kind(sh) {
            v.push(format!("{h}: the model ends {m:?}, the shell {sh:?}"));
        }
        if model.after[i] != shell.after[i] {
            v.push(format!(
                "{h}: the model holds {:?}, the shell {:?}",
                model.after[i], shell.after[i]
            ));
        }
    }
    v.into_iter()
        .map(|x| format!("shell seed {seed} ({s:?}): {x}"))
        .collect()
}

#[test]
fn every_schedule_keeps_the_invariants() {
    let layout = ship_layouts::layout_for("timestamp").expect("registered");
    let art = artifact();
    let dir = tempfile::tempdir().unwrap();
    let zst = dir.path().join(format!("{}.tar.zst", art.digest));
    std::fs::write(&zst, &art.zst).unwrap();
    let replay = env_number("SHIP_SIM_SEED");
    let n = env_number("SHIP_SIM_SCHEDULES").unwrap_or(10_000);
    let started = std::time::Instant::now();
    let mut schedules = 0u64;
    let mut violations: Vec<String> = Vec::new();
    let seeds: Vec<u64> = match replay {
        Some(seed) => vec![seed],
        None => (0..n).collect(),
    };
    for &seed in &seeds {
        let s = Scenario::generate(seed, |s| plan(s, layout, &art.digest), false);
        let p = plan(&s, layout, &art.digest);
        let mut hosts = models(&s, &p);
        let found = match simulate(&s, &p, layout, &mut hosts, false, replay.is_some()) {
            Ok(run) => {
                if replay.is_some() {
                    println!("{s:#?}\n{}", run.trace.join("\n"));
                    println!("outcome: {:#?}", run.outcome);
                }
                check(&s, &p, &run)
            }
            Err(e) => vec![e],
        };
        schedules += 1;
        violations.extend(
            found
                .into_iter()
                .map(|x| format!("seed {seed} ({s:?}): {x} — replay: SHIP_SIM_SEED={seed}")),
        );
    }
    // A sample on real `sh` hosts: the model must hold what the shell holds.
    if replay.is_none() {
        for k in (0..n).step_by(SHELL_EVERY as usize) {
            violations.extend(compare_with_shell(SHELL_SALT | k, layout, &art, &zst));
            schedules += 1;
        }
    }
    let shown = if std::env::var_os("SHIP_SIM_ALL").is_some() {
        usize::MAX
    } else {
        10
    };
    for v in violations.iter().take(shown) {
        println!("violation: {v}");
    }
    // Straight to standard output, past the test harness's capture: CI shows this line.
    let line = format!(
        "simulation: {schedules} schedules, {} invariant violations ({:.1}s)\n",
        violations.len(),
        started.elapsed().as_secs_f64()
    );
    let _ = std::io::Write::write_all(&mut std::io::stdout(), line.as_bytes());
    assert!(violations.is_empty(), "{} violations", violations.len());
}

/// A second SIGINT while a rolling deploy takes its locks (no batch runs yet) is obeyed
/// within [`STOP_GRACE`](ship_core::machine::STOP_GRACE) even when a host never answers: the
/// locks taken are released (within one more grace), the silent host is named as possibly
/// holding this deploy's lock, and a release that does not answer either is named too.
#[test]
fn a_hard_stop_while_a_rolling_deploy_takes_its_locks_ends_in_time() {
    use ship_core::machine::STOP;
    let layout = ship_layouts::layout_for("timestamp").expect("registered");
    let art = artifact();
    let s = Scenario {
        seed: 7,
        hosts: 3,
        parallel: 3,
        rolling: Some((1, 1)),
        local_task: false,
        history: 1,
        faults: Vec::new(),
        stop_at_go: None,
        second_stop: false,
        local_after_switch: false,
        stop_at_local_after_switch: false,
    };
    let plan = make_plan(&s, layout, &art.digest);
    assert_eq!(plan.rolling.as_ref().map(|r| r.batches.len()), Some(3));
    for release_answers in [true, false] {
        let options = MachineOptions {
            deployer: "sim@ci".to_owned(),
            started_at: "2026-11-25T12:00:00Z".to_owned(),
            segment_timeout: Duration::from_secs(60),
            nonce: Nonce::from_bytes(&[7; 8]),
            live: false,
            env: None,
        };
        let mut m = Machine::new(plan.clone(), layout, options);
        let connects = m.handle(Input::Start);
        assert_eq!(connects.len(), 3, "{connects:?}");
        let mut holds = Vec::new();
        for h in ["h1", "h2", "h3"] {
            holds.extend(m.handle(Input::Connected {
                host: h.to_owned(),
                result: Ok(()),
            }));
        }
        assert!(
            holds.iter().all(|a| matches!(
                a,
                Action::Recover {
                    recovery: Recovery::Hold,
                    ..
                }
            )),
            "{holds:?}"
        );
        // h1 and h2 took their lock; h3 never answers.
        for h in ["h1", "h2"] {
            assert!(
                m.handle(Input::Recovered {
                    host: h.to_owned(),
                    result: ok_status(0, ""),
                })
                .is_empty()
            );
        }
        assert!(m.handle(Input::Stop("SIGINT".to_owned())).is_empty());
        let armed = m.handle(Input::StopNow("SIGINT".to_owned()));
        let timer = match armed.as_slice() {
            [Action::Arm { host, timer, after }] if host == STOP => {
                assert_eq!(*after, ship_core::machine::STOP_GRACE);
                *timer
            }
            other => panic!("a hard stop arms its timer: {other:?}"),
        };
        let released = m.handle(Input::TimedOut {
            host: STOP.to_owned(),
            timer,
        });
        let mut names = Vec::new();
        let mut timer = None;
        for a in &released {
            match a {
                Action::Recover {
                    host,
                    recovery: Recovery::Release,
                    ..
                } => names.push(host.clone()),
                Action::Arm { host, timer: t, .. } if host == STOP => timer = Some(*t),
                Action::Event(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(names, ["h1", "h2"], "the locks taken are released");
        let timer = timer.expect("the releases have a time limit too");
        // A late answer from h3's hold changes nothing now.
        assert!(
            m.handle(Input::Recovered {
                host: "h3".to_owned(),
                result: ok_status(0, ""),
            })
            .is_empty()
        );
        let mut done = m.handle(Input::Recovered {
            host: "h1".to_owned(),
            result: ok_status(0, ""),
        });
        assert!(done.is_empty(), "{done:?}");
        if release_answers {
            done = m.handle(Input::Recovered {
                host: "h2".to_owned(),
                result: ok_status(0, ""),
            });
        } else {
            done = m.handle(Input::TimedOut {
                host: STOP.to_owned(),
                timer,
            });
        }
        let outcome = match done.last() {
            Some(Action::Done(o)) => o.clone(),
            other => panic!("the deploy ends: {other:?}"),
        };
        assert!(m.done());
        let failure = outcome.failure.expect("interrupted");
        assert!(
            failure
                .message
                .contains("interrupted by SIGINT before batch 1"),
            "{failure:?}"
        );
        let reason = |h: &str| match &outcome.hosts.iter().find(|(n, _)| n == h).unwrap().1 {
            HostEnd::NotStarted { reason } => reason.clone(),
            other => panic!("{h}: {other:?}"),
        };
        assert!(
            !reason("h1").contains("cargo ship unlock"),
            "{}",
            reason("h1")
        );
        assert!(
            reason("h3").contains("may hold its lock"),
            "{}",
            reason("h3")
        );
        assert_eq!(
            reason("h2").contains("may be left"),
            !release_answers,
            "{}",
            reason("h2")
        );
    }
}
