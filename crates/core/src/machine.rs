//! The deploy machine: a deploy, a rolling deploy, as a deterministic state machine. It does
//! no I/O and reads no clock: what happens comes in as [`Input`]s (a host connected, printed
//! a line, its session ended, a timer fired, a signal came, a local step or a recovery
//! script ended), and what to do goes out as [`Action`]s (connect, open a host's session,
//! send it a line or the artifact, close it, arm a timer, run a local step or a recovery
//! script, report an [`Event`], finish with an [`Outcome`]). The driver (`driver.rs`) moves
//! the bytes; the simulation (`tests/simulation.rs`) drives the same machine over a fleet
//! of in-memory hosts.
//!
//! The rules it keeps:
//! - every host is connected before anything runs; a host that cannot be reached stops the
//!   deploy with nothing done anywhere;
//! - each host runs one conversation: its segments in order, each started by a `go` that the
//!   machine sends only once every host finished the previous segment (the sync points),
//!   `parallel` hosts at a time;
//! - segment 0 takes each host's lock and reads its state; the machine then decides, per
//!   host, what cleanup removes and what `.ship/releases.json` will hold;
//! - a failure (or a signal) before the segment holding `switch` removes the half-made
//!   release on every locked host and releases the locks: no host's `current` moved;
//! - a failure from `switch` on puts every host that switched (or may have) back on the
//!   release it had, records the new release as failed, and releases the locks;
//! - a host that cannot be put back is reported unknown, by name;
//! - a rolling deploy first takes every host's lock ([`Recovery::Hold`], a session each):
//!   one host locked by another deploy, or unreachable, ends it with nothing done anywhere;
//!   each batch then runs as a deploy of its own under those locks, and the locks of the
//!   batches that never ran are released ([`Recovery::Release`]).

use crate::layout::{HostState, Layout, LayoutContext, ReleaseRecord, ReleaseState};
use crate::phase::Phase;
use crate::plan::{HostPlan, Placement, Plan, StepKind};
use crate::protocol::{self, LOCKED_STATUS, Nonce, Transcript};
use crate::records;
use crate::script::{self, Vars};
use crate::shell::quote;
use crate::stage::check_release_id;
use crate::transport::{RunOutput, TransportError};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// The name timers and kills of local steps go by (no host can have it: it is not a valid
/// host name).
pub const LOCAL: &str = "(local)";

/// The name of the timer a hard stop ([`Input::StopNow`]) arms: when it fires, the hosts
/// not yet put back are given up and named unknown.
pub const STOP: &str = "(stop)";

/// How long a hard stop waits for the hosts to be put back before it gives them up.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// What the machine needs besides the plan: who deploys, when, the time limit of one
/// segment on one host, and the nonce that frames the control channel.
#[derive(Clone, Debug)]
pub struct MachineOptions {
    /// Who deploys: `user@machine`.
    pub deployer: String,
    /// When the deploy started, RFC 3339 UTC.
    pub started_at: String,
    /// How long one host's segment may take.
    pub segment_timeout: Duration,
    /// The control channel's secret.
    pub nonce: Nonce,
    /// Relay the steps' output as it comes (`apply -v`), not when each step ends.
    pub live: bool,
    /// The app's environment file (`shared/.env`), when the plan writes one: sent on each
    /// host's conversation after the nonce, never part of a script.
    pub env: Option<String>,
}

/// Something that happened, for the reporter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A host's connection is open.
    Connected {
        /// The host.
        host: String,
    },
    /// A step started on a host (`host` is `None` for local steps): its host printed
    /// `start <id>`, or the local step was handed to the driver. For timings.
    Started {
        /// The host.
        host: Option<String>,
        /// The step's id.
        id: usize,
        /// The step's name.
        name: String,
    },
    /// A step ended on a host (`host` is `None` for local steps).
    Step {
        /// The host.
        host: Option<String>,
        /// The step's id.
        id: usize,
        /// The step's name.
        name: String,
        /// Its exit status.
        status: i32,
        /// The last lines it printed (every line came before as an [`Event::Output`]).
        output: Vec<String>,
    },
    /// A line a step printed (`host` is `None` for local steps): as it comes when the
    /// deploy is followed live, else when the step ended.
    Output {
        /// The host.
        host: Option<String>,
        /// The step's id.
        id: usize,
        /// The line.
        line: String,
    },
    /// A task ended, leaving processes that hold its output open (a daemon started without
    /// redirections): they run on, the deploy did not wait for them.
    Held {
        /// The host.
        host: String,
        /// The step's id.
        id: usize,
        /// The step's name.
        name: String,
        /// The processes: `pid(command)`, space separated.
        processes: String,
    },
    /// The deploy failed; recovery starts.
    Failed {
        /// Where.
        host: Option<String>,
        /// Which step, when known.
        step: Option<String>,
        /// What happened.
        message: String,
    },
    /// A host was put back.
    Recovered {
        /// The host.
        host: String,
        /// What it was left in.
        end: HostEnd,
    },
    /// Something a person should know about a host, that changes nothing (a release this
    /// deploy replaces).
    Notice {
        /// The host.
        host: String,
        /// What.
        message: String,
    },
    /// A rolling deploy starts a batch.
    Batch {
        /// Its number, from 1.
        batch: usize,
        /// How many batches there are.
        of: usize,
        /// Its hosts.
        hosts: Vec<String>,
    },
}

/// The state a host was left in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum HostEnd {
    /// The new release is live.
    Deployed,
    /// Nothing changed: the half-made release was removed and the lock released.
    Unchanged {
        /// What is live there (directory or artifact), if anything.
        live: Option<String>,
    },
    /// It had switched; it is back on the release it had.
    Reverted {
        /// What is live again, if anything was.
        live: Option<String>,
    },
    /// Nothing was done on it: it could not be reached, or another deploy holds its lock.
    NotStarted {
        /// Why.
        reason: String,
    },
    /// It could not be put back: its state is unknown.
    Unknown {
        /// What went wrong.
        reason: String,
    },
}

/// Where and why a deploy failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Failure {
    /// The host, or `None` for a local step.
    pub host: Option<String>,
    /// The step, when known.
    pub step: Option<String>,
    /// What happened.
    pub message: String,
    /// Whether it happened once hosts had started switching.
    pub after_switch: bool,
}

/// How a deploy ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Outcome {
    /// Each host's end state, in plan order.
    pub hosts: Vec<(String, HostEnd)>,
    /// The first failure, if any.
    pub failure: Option<Failure>,
    /// A rolling deploy's batches and how each ended.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub batches: Vec<BatchEnd>,
}

impl Outcome {
    /// True when every host is on the new release.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// How one batch of a rolling deploy ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchResult {
    /// Its hosts are on the new release.
    Deployed,
    /// It failed; its hosts were put back.
    Failed,
    /// It was not started.
    NotStarted,
}

/// How one batch of a rolling deploy ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BatchEnd {
    /// Its number, from 1.
    pub batch: usize,
    /// Its hosts.
    pub hosts: Vec<String>,
    /// How it ended.
    pub result: BatchResult,
}

/// What happened, as the machine is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Begin.
    Start,
    /// A connection was opened, or could not be.
    Connected {
        /// The host.
        host: String,
        /// How it went.
        result: Result<(), TransportError>,
    },
    /// A host's conversation printed a line on its standard output.
    Line {
        /// The host.
        host: String,
        /// The line, without its newline.
        line: String,
    },
    /// A host's conversation ended (its script exited, or the session broke).
    Ended {
        /// The host.
        host: String,
        /// How: the status and standard error, or why the session failed.
        result: Result<RunOutput, TransportError>,
    },
    /// A timer armed by [`Action::Arm`] fired.
    TimedOut {
        /// The host.
        host: String,
        /// The timer's number.
        timer: u64,
    },
    /// A local step ended.
    LocalDone {
        /// The step's id.
        id: usize,
        /// How it ended.
        result: Result<RunOutput, TransportError>,
    },
    /// The `.tar.gz` for the hosts without zstd was made, or could not be.
    GzMade(Result<(), String>),
    /// The artifact (or its delta bundle) could not be sent to a host, for a reason of this
    /// machine's (it no longer unpacks to the plan's digest, it cannot be read): its input
    /// is closed without a byte, and this, not its upload step's status, is its failure.
    NotSent {
        /// The host.
        host: String,
        /// Why.
        why: String,
    },
    /// A recovery script ended.
    Recovered {
        /// The host.
        host: String,
        /// How it ended.
        result: Result<RunOutput, TransportError>,
    },
    /// Stop (SIGINT, SIGTERM): the segments in flight finish, no host is sent another, and
    /// every host is put back.
    Stop(String),
    /// Stop now (a second SIGINT, a SIGTERM not obeyed in time): the steps in flight are
    /// cut (their scripts stopped on the hosts), every host is put back as far as it can be
    /// within [`STOP_GRACE`], and the hosts not put back by then are named unknown.
    StopNow(String),
}

/// What to do, as the machine says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Open the connection to a host.
    Connect {
        /// The host.
        host: String,
    },
    /// Start a host's conversation: one session running `script`.
    Open {
        /// The host.
        host: String,
        /// The script.
        script: String,
    },
    /// Write a line to a host's conversation.
    Send {
        /// The host.
        host: String,
        /// The line (a newline is added).
        line: String,
    },
    /// Write the artifact's header line and bytes to a host's conversation: the `.tar.zst`
    /// when `zstd`, else the `.tar.gz`.
    SendArtifact {
        /// The host.
        host: String,
        /// Whether the host has zstd.
        zstd: bool,
    },
    /// Close a host's standard input: its script ends at its next read.
    Close {
        /// The host.
        host: String,
    },
    /// Abandon a host's session (it took too long): end it from this side.
    Kill {
        /// The host.
        host: String,
    },
    /// Fire [`Input::TimedOut`] for `host` after `after`, unless the machine moved on.
    Arm {
        /// The host.
        host: String,
        /// The timer's number.
        timer: u64,
        /// When.
        after: Duration,
    },
    /// Write a delta bundle's header line and bytes to a host's conversation (`delta = true`,
    /// a host with zstd, a layout that keeps `releases/`): the files of the artifact that
    /// the artifacts the host has (`have`) lack, and the release's skeleton
    /// (`delta::bundle`).
    SendBundle {
        /// The host.
        host: String,
        /// The artifacts (digests) whose objects the host has.
        have: Vec<String>,
    },
    /// Make the artifact's `.tar.gz` (for hosts without zstd), then say [`Input::GzMade`].
    MakeGz,
    /// Run a local step's script on this machine, then say [`Input::LocalDone`].
    RunLocal {
        /// The step's id.
        id: usize,
        /// Its script.
        script: String,
    },
    /// Run a recovery script in a session of its own, then say [`Input::Recovered`].
    Recover {
        /// The host.
        host: String,
        /// What it does, as data (the simulation reads this).
        recovery: Recovery,
        /// The script.
        script: String,
    },
    /// Report.
    Event(Event),
    /// The deploy is over.
    Done(Outcome),
}

/// What a recovery script does on a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// Before the switch: remove the half-made release (`discard`), release the lock.
    Abort {
        /// Whether the new release may have been started.
        discard: bool,
        /// Whether the deploy's script may still run there (its session was cut or lost):
        /// its process group is stopped first.
        stop: bool,
        /// For a non-atomic layout, the directory to activate again.
        restore: Option<String>,
    },
    /// After it: make `target` live again (none: nothing was live), write `records`,
    /// release the lock.
    Revert {
        /// As for [`Recovery::Abort`].
        stop: bool,
        /// The directory made live again.
        target: Option<String>,
        /// The new `.ship/releases.json`.
        records: Vec<ReleaseRecord>,
    },
    /// A rolling deploy, before its first batch: take the host's lock for the whole deploy
    /// (each batch's `lock` step goes on under it), or exit
    /// [`LOCKED_STATUS`](crate::protocol::LOCKED_STATUS) naming the holder.
    Hold,
    /// A rolling deploy's host no batch ran on: release the lock [`Recovery::Hold`] took, if
    /// it still is this deploy's.
    Release,
}

/// What the machine knows of one host during a deploy.
#[derive(Clone, Debug, Default)]
struct HostRun {
    locked: bool,
    state: HostState,
    artifact_present: bool,
    zstd: bool,
    /// The artifacts whose objects the host has (`delta = true`).
    have: Vec<String>,
    new_dir: String,
    cleanup: Vec<String>,
    prepare_started: bool,
    switched: bool,
    uncertain: bool,
    finished: bool,
    segments_done: Vec<usize>,
    /// Its conversation is open (not ended, not abandoned).
    open: bool,
    /// The segment it runs now, with what it said so far.
    running: Option<(usize, Transcript)>,
    /// The timer that may cut it now.
    timer: Option<u64>,
    /// Its recovery script is running.
    recovering: bool,
    /// Something to tell about it once its segment is taken in (a release it replaces).
    notice: Option<String>,
    /// The steps that ended with status 0 on it.
    completed: Vec<usize>,
    /// Why the artifact was not sent to it ([`Input::NotSent`]): its failure, whatever its
    /// upload step said when its input closed.
    not_sent: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    Segment(usize),
    Local(usize),
}

#[derive(Debug)]
enum Stage {
    Connecting { asked: usize, answered: usize },
    Units { i: usize, unit: UnitState },
    Closing,
    Draining,
    Recovering,
    Over,
}

#[derive(Debug)]
enum UnitState {
    Ready,
    WaitingGz,
    Local,
    Segment {
        queue: VecDeque<String>,
        running: usize,
    },
}

/// One deploy of one plan (one batch of a rolling plan): see the module's doc.
struct Deploy<'a> {
    plan: Plan,
    layout: &'a dyn Layout,
    options: MachineOptions,
    units: Vec<Unit>,
    runs: BTreeMap<String, HostRun>,
    ends: BTreeMap<String, HostEnd>,
    failure: Option<Failure>,
    stopped: Option<String>,
    after_switch: bool,
    stage: Stage,
    timers: u64,
    connect_errors: BTreeMap<String, TransportError>,
    /// The timer that may cut the local step running now.
    local_timer: Option<u64>,
    /// A hard stop came: the timer after which hosts not put back are given up.
    stop_timer: Option<u64>,
    /// The deploy took its hosts' locks before this batch ([`Recovery::Hold`]): its `lock`
    /// step goes on under them.
    holds: bool,
}

/// The deploy machine: a plan (rolling or not) and a layout, driven by [`Machine::handle`].
pub struct Machine<'a> {
    plan: Plan,
    layout: &'a dyn Layout,
    options: MachineOptions,
    current: Option<Deploy<'a>>,
    batch: usize,
    failed_batches: usize,
    stopped: Option<String>,
    ends: BTreeMap<String, HostEnd>,
    failure: Option<Failure>,
    batches: Vec<BatchEnd>,
    done: bool,
    timers: u64,
    /// Before batch 1 of a rolling deploy: every host's lock being taken.
    holding: Option<Holding>,
    /// The hosts whose lock this deploy took before batch 1 (or may have: the session that
    /// took it broke).
    held: std::collections::BTreeSet<String>,
    /// The hosts whose held lock is being released (no batch ran on them): `Done` waits.
    releasing: std::collections::BTreeSet<String>,
    /// A hard stop came while no batch ran (locks being taken or released): the timer after
    /// which the hosts not answered yet are given up.
    stop_timer: Option<u64>,
}

/// A rolling deploy taking every host's lock before batch 1 (`parallel` hosts at a time).
#[derive(Debug, Default)]
struct Holding {
    /// How many hosts (in plan order) were asked.
    asked: usize,
    /// Connections and hold scripts not answered yet.
    pending: usize,
    /// The hosts whose lock could not be taken: the step (`lock`, or none when it could not
    /// be reached) and why.
    refused: BTreeMap<String, (Option<String>, String)>,
}

impl<'a> Machine<'a> {
    /// A machine for `plan`, not started: give it [`Input::Start`].
    pub fn new(plan: Plan, layout: &'a dyn Layout, options: MachineOptions) -> Machine<'a> {
        Machine {
            plan,
            layout,
            options,
            current: None,
            batch: 0,
            failed_batches: 0,
            stopped: None,
            ends: BTreeMap::new(),
            failure: None,
            batches: Vec::new(),
            done: false,
            timers: 0,
            holding: None,
            held: Default::default(),
            releasing: Default::default(),
            stop_timer: None,
        }
    }

    /// Whether it has finished ([`Action::Done`] was given).
    pub fn done(&self) -> bool {
        self.done
    }

    /// Takes in what happened; returns what to do, in order.
    pub fn handle(&mut self, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        match input {
            Input::Start => {
                if self.current.is_none() && self.batch == 0 && self.holding.is_none() {
                    if self
                        .plan
                        .rolling
                        .as_ref()
                        .is_some_and(|r| r.batches.len() > 1)
                    {
                        self.hold(&mut out);
                    } else {
                        self.next_batch(&mut out);
                    }
                }
            }
            Input::Stop(reason) => {
                self.stopped.get_or_insert(reason.clone());
                if let Some(d) = self.current.as_mut() {
                    d.handle(Input::Stop(reason), &mut out);
                }
            }
            Input::StopNow(reason) => {
                self.stopped.get_or_insert(reason.clone());
                if let Some(d) = self.current.as_mut() {
                    d.handle(Input::StopNow(reason), &mut out);
                } else if self.holding.is_some() || !self.releasing.is_empty() {
                    self.arm_stop(&mut out);
                }
            }
            Input::TimedOut { host, timer }
                if self.current.is_none() && host == STOP && self.stop_timer == Some(timer) =>
            {
                self.give_up(&mut out);
            }
            other => {
                if let Some(d) = self.current.as_mut() {
                    d.handle(other, &mut out);
                } else if self.holding.is_some() {
                    self.holding_input(other, &mut out);
                } else if let Input::Recovered { host, result } = other {
                    self.released(host, result, &mut out);
                }
            }
        }
        self.settle(&mut out);
        out
    }

    /// A rolling deploy takes every host's lock before batch 1: a host locked by another
    /// deploy (or that cannot be reached) stops it with nothing done anywhere, and no other
    /// deploy can take a host of a later batch while an earlier one is live.
    fn hold(&mut self, out: &mut Vec<Action>) {
        self.holding = Some(Holding::default());
        for _ in 0..self.plan.parallel.max(1).min(self.plan.hosts.len()) {
            self.ask_hold(out);
        }
        self.holding_over(out);
    }

    /// A hard stop while locks are taken or released (no batch runs): what has not answered
    /// within [`STOP_GRACE`] is given up.
    fn arm_stop(&mut self, out: &mut Vec<Action>) {
        if self.stop_timer.is_none() {
            self.timers += 1;
            self.stop_timer = Some(self.timers);
            out.push(Action::Arm {
                host: STOP.to_owned(),
                timer: self.timers,
                after: STOP_GRACE,
            });
        }
    }

    /// The hard stop's time is up: a host whose lock was being taken is named as possibly
    /// holding it, and the locks taken are released (within another [`STOP_GRACE`]); a
    /// release not answered is named on its host, and the deploy ends.
    fn give_up(&mut self, out: &mut Vec<Action>) {
        self.stop_timer = None;
        if let Some(h) = self.holding.as_mut() {
            for x in &self.plan.hosts[..h.asked] {
                if !self.held.contains(&x.name) && !h.refused.contains_key(&x.name) {
                    h.refused.insert(
                        x.name.clone(),
                        (
                            Some("lock".to_owned()),
                            "it did not answer before the stop: this deploy may hold its lock \
                             (`cargo ship unlock` releases it)"
                                .to_owned(),
                        ),
                    );
                }
            }
            h.pending = 0;
            self.holding_over(out);
            if !self.releasing.is_empty() {
                self.arm_stop(out);
            }
            return;
        }
        for host in std::mem::take(&mut self.releasing) {
            if let Some(HostEnd::NotStarted { reason }) = self.ends.get_mut(&host) {
                reason.push_str(
                    "; the lock this deploy took before batch 1 may be left (no answer before \
                     the stop): `cargo ship unlock` releases it",
                );
            }
        }
        self.finish(out);
    }

    /// Connects to the next host to hold, unless the deploy will not go on.
    fn ask_hold(&mut self, out: &mut Vec<Action>) {
        let Some(h) = self.holding.as_mut() else {
            return;
        };
        if h.asked < self.plan.hosts.len() && h.refused.is_empty() && self.stopped.is_none() {
            out.push(Action::Connect {
                host: self.plan.hosts[h.asked].name.clone(),
            });
            h.asked += 1;
            h.pending += 1;
        }
    }

    fn holding_input(&mut self, input: Input, out: &mut Vec<Action>) {
        let Some(h) = self.holding.as_mut() else {
            return;
        };
        match input {
            Input::Connected {
                host,
                result: Ok(()),
            } => {
                let script = self.hold_script(&host, &protocol::hold());
                out.push(Action::Recover {
                    host,
                    recovery: Recovery::Hold,
                    script,
                });
                return;
            }
            Input::Connected {
                host,
                result: Err(e),
            } => {
                h.pending -= 1;
                h.refused.insert(host, (None, e.to_string()));
            }
            Input::Recovered { host, result } => {
                h.pending -= 1;
                match result {
                    Ok(o) if o.status == Some(0) => {
                        self.held.insert(host);
                    }
                    Ok(o) if o.status == Some(LOCKED_STATUS) => {
                        let why = tail(&o.stderr, 1).replace("cargo-ship: ", "");
                        h.refused.insert(host, (Some("lock".to_owned()), why));
                    }
                    other => {
                        // It may have taken the lock before it failed: released at the end
                        // (only if it is this deploy's).
                        let why = match other {
                            Ok(o) => format!(
                                "taking its lock failed (status {}): {}",
                                o.status.map_or("unknown".to_owned(), |s| s.to_string()),
                                tail(&o.stderr, 2)
                            ),
                            Err(e) => e.to_string(),
                        };
                        h.refused
                            .insert(host.clone(), (Some("lock".to_owned()), why));
                        self.held.insert(host);
                    }
                }
            }
            _ => return,
        }
        self.ask_hold(out);
        self.holding_over(out);
    }

    /// Once every host asked answered: batch 1 when every lock is this deploy's, else the
    /// deploy ends with nothing done (the locks it took released).
    fn holding_over(&mut self, out: &mut Vec<Action>) {
        if self.holding.as_ref().is_none_or(|h| h.pending > 0) {
            return;
        }
        let h = self.holding.take().expect("checked");
        let first = self
            .plan
            .hosts
            .iter()
            .find_map(|x| h.refused.get(&x.name).map(|r| (x.name.clone(), r.clone())));
        let failure = match (first, &self.stopped) {
            (None, None) => return self.next_batch(out),
            (_, Some(signal)) => Failure {
                host: None,
                step: None,
                message: format!("interrupted by {signal} before batch 1"),
                after_switch: false,
            },
            (Some((host, (step, message))), None) => Failure {
                host: Some(host),
                step,
                message,
                after_switch: false,
            },
        };
        out.push(Action::Event(Event::Failed {
            host: failure.host.clone(),
            step: failure.step.clone(),
            message: failure.message.clone(),
        }));
        let why = match &failure.host {
            Some(host) => format!("nothing was done anywhere: {host} could not be locked"),
            None => failure.message.clone(),
        };
        for x in &self.plan.hosts {
            let reason = h
                .refused
                .get(&x.name)
                .map_or_else(|| why.clone(), |(_, m)| m.clone());
            self.ends
                .insert(x.name.clone(), HostEnd::NotStarted { reason });
        }
        if let Some(rolling) = &self.plan.rolling {
            for (i, hosts) in rolling.batches.iter().enumerate() {
                self.batches.push(BatchEnd {
                    batch: i + 1,
                    hosts: hosts.clone(),
                    result: BatchResult::NotStarted,
                });
            }
        }
        self.failure = Some(failure);
        self.batch = self.plan.rolling.as_ref().map_or(1, |r| r.batches.len());
        self.finish(out);
    }

    /// A script run on `host` in a session of its own, outside any batch: its variables,
    /// this deploy's lock and nonce, then `body`.
    fn hold_script(&self, host: &str, body: &str) -> String {
        let h = self
            .plan
            .hosts
            .iter()
            .find(|h| h.name == host)
            .expect("a host of the plan");
        format!(
            "{}{body}\n",
            recovery_header(&self.plan, self.layout, &self.options, h)
        )
    }

    /// A release of a held lock ended (see [`Machine::finish`]).
    fn released(
        &mut self,
        host: String,
        result: Result<RunOutput, TransportError>,
        out: &mut Vec<Action>,
    ) {
        if !self.releasing.remove(&host) {
            return;
        }
        let failed = match result {
            Ok(o) if o.status == Some(0) => None,
            Ok(o) => Some(format!(
                "status {}: {}",
                o.status.map_or("unknown".to_owned(), |s| s.to_string()),
                tail(&o.stderr, 2)
            )),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = failed
            && let Some(HostEnd::NotStarted { reason }) = self.ends.get_mut(&host)
        {
            reason.push_str(&format!(
                "; the lock this deploy took before batch 1 may be left ({why}): \
                 `cargo ship unlock` releases it"
            ));
        }
        if self.releasing.is_empty() {
            self.finish(out);
        }
    }

    /// Moves to the next batch when the current one is over.
    fn settle(&mut self, out: &mut Vec<Action>) {
        while let Some(d) = self.current.as_ref() {
            if !matches!(d.stage, Stage::Over) {
                return;
            }
            let d = self.current.take().expect("checked");
            self.timers = d.timers;
            let outcome = d.outcome();
            let ok = outcome.failure.is_none();
            self.ends.extend(outcome.hosts);
            if let Some(f) = outcome.failure {
                self.failed_batches += 1;
                self.failure.get_or_insert(f);
            }
            if let Some(rolling) = &self.plan.rolling {
                self.batches.push(BatchEnd {
                    batch: self.batch,
                    hosts: rolling.batches[self.batch - 1].clone(),
                    result: if ok {
                        BatchResult::Deployed
                    } else {
                        BatchResult::Failed
                    },
                });
            }
            self.next_batch(out);
        }
    }

    /// Starts the next batch (the whole plan when it is not rolling), or finishes.
    fn next_batch(&mut self, out: &mut Vec<Action>) {
        let Some(rolling) = self.plan.rolling.clone() else {
            if self.batch == 0 {
                self.batch = 1;
                // The deploy takes the scripts; the machine keeps the rest (names, steps):
                // one copy of every host's scripts, not two.
                let mut kept = self.plan.clone_without_scripts();
                std::mem::swap(&mut kept, &mut self.plan);
                self.start(kept, out);
            } else {
                self.finish(out);
            }
            return;
        };
        let total = rolling.batches.len();
        while self.batch < total {
            let i = self.batch;
            self.batch += 1;
            let batch = &rolling.batches[i];
            // The first batch runs the steps that run once (migrations) and the local ones;
            // the others do not: if it failed, no later batch may go live without them.
            let carries = self
                .plan
                .steps
                .iter()
                .any(|s| matches!(s.placement, Placement::Once | Placement::Local));
            let first_failed = self
                .batches
                .first()
                .is_some_and(|b| b.result == BatchResult::Failed);
            let why_not = self
                .stopped
                .as_ref()
                .map(|signal| format!("{signal} came before it"))
                .or_else(|| {
                    (carries && first_failed).then(|| {
                        "batch 1 failed, and it runs the steps that run once and the local \
                         steps the later batches rely on"
                            .to_owned()
                    })
                })
                .or_else(|| {
                    (self.failed_batches >= rolling.max_fail).then(|| {
                        format!(
                            "{} batch{} failed (max_fail = {})",
                            self.failed_batches,
                            if self.failed_batches == 1 { "" } else { "es" },
                            rolling.max_fail
                        )
                    })
                });
            if let Some(why) = why_not {
                if let (Some(signal), None) = (&self.stopped, &self.failure) {
                    // The batches done stay done; the deploy did not finish.
                    self.failure = Some(Failure {
                        host: None,
                        step: None,
                        message: format!(
                            "interrupted by {signal}: batch {} of {total} and later not started",
                            i + 1
                        ),
                        after_switch: false,
                    });
                    out.push(Action::Event(Event::Failed {
                        host: None,
                        step: None,
                        message: format!("interrupted by {signal} before batch {}", i + 1),
                    }));
                }
                for h in batch {
                    self.ends.insert(
                        h.clone(),
                        HostEnd::NotStarted {
                            reason: format!("batch {} of {total} not started: {why}", i + 1),
                        },
                    );
                }
                self.batches.push(BatchEnd {
                    batch: i + 1,
                    hosts: batch.clone(),
                    result: BatchResult::NotStarted,
                });
                continue;
            }
            out.push(Action::Event(Event::Batch {
                batch: i + 1,
                of: total,
                hosts: batch.clone(),
            }));
            let sub = self.plan.subset(batch, i == 0);
            self.start(sub, out);
            return;
        }
        self.finish(out);
    }

    fn start(&mut self, plan: Plan, out: &mut Vec<Action>) {
        let mut d = Deploy::new(plan, self.layout, self.options.clone(), self.timers);
        d.stopped = self.stopped.clone();
        d.holds = !self.held.is_empty();
        d.handle(Input::Start, out);
        self.current = Some(d);
        self.settle(out);
    }

    fn finish(&mut self, out: &mut Vec<Action>) {
        // The locks taken before batch 1 on hosts no batch ran on are released first.
        for host in std::mem::take(&mut self.held) {
            if matches!(
                self.ends.get(&host),
                None | Some(HostEnd::NotStarted { .. })
            ) {
                let script = self.hold_script(&host, &protocol::release_hold());
                self.ends
                    .entry(host.clone())
                    .or_insert(HostEnd::NotStarted {
                        reason: "the deploy stopped before this host was reached".to_owned(),
                    });
                out.push(Action::Recover {
                    host: host.clone(),
                    recovery: Recovery::Release,
                    script,
                });
                self.releasing.insert(host);
            }
        }
        if !self.releasing.is_empty() {
            return;
        }
        let hosts = self
            .plan
            .hosts
            .iter()
            .map(|h| {
                let end = self.ends.remove(&h.name).unwrap_or(HostEnd::NotStarted {
                    reason: "the deploy stopped before this host was reached".to_owned(),
                });
                (h.name.clone(), end)
            })
            .collect();
        self.done = true;
        out.push(Action::Done(Outcome {
            hosts,
            failure: self.failure.take(),
            batches: std::mem::take(&mut self.batches),
        }));
    }
}

fn units(plan: &Plan) -> Vec<Unit> {
    let mut units = Vec::new();
    for step in &plan.steps {
        if step.phase == Phase::Build && step.kind == StepKind::Phase {
            continue;
        }
        let unit = match (step.placement, step.script) {
            (Placement::Local, _) => Unit::Local(step.id),
            (_, Some(k)) => Unit::Segment(k),
            _ => continue,
        };
        if !units.contains(&unit) {
            units.push(unit);
        }
    }
    units
}

/// Whether every host that runs the switch finished its segment (no plan switching: no).
fn all_switched(plan: &Plan, runs: &BTreeMap<String, HostRun>, switch: Option<usize>) -> bool {
    let Some(k) = switch else {
        return false;
    };
    plan.hosts
        .iter()
        .filter(|h| h.scripts.iter().any(|s| s.segment == k))
        .all(|h| runs[&h.name].segments_done.contains(&k))
}

/// The start of a script run in a session of its own (a recovery, a rolling deploy's hold or
/// release): the host's variables, this deploy's lock text and nonce.
fn recovery_header(
    plan: &Plan,
    layout: &dyn Layout,
    options: &MachineOptions,
    host: &HostPlan,
) -> String {
    let cx = LayoutContext {
        deploy_to: &plan.deploy_to,
        release: &plan.release,
        delta: plan.delta,
    };
    let mut s = script::header(&Vars::of(plan, host), &layout.locate(&cx));
    s.push_str(&format!(
        "SHIP_LOCK_INFO={}\n{}={}\n",
        quote(&lock_info(options, plan)),
        protocol::NONCE_VAR,
        quote(options.nonce.as_str())
    ));
    s
}

/// What `.ship/lock/info` holds for this deploy: who, since when, what.
fn lock_info(options: &MachineOptions, plan: &Plan) -> String {
    format!(
        "{} since {} ({} release {} to {})",
        options.deployer, options.started_at, plan.app, plan.release, plan.stage
    )
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl<'a> Deploy<'a> {
    fn new(plan: Plan, layout: &'a dyn Layout, options: MachineOptions, timers: u64) -> Self {
        let runs = plan
            .hosts
            .iter()
            .map(|h| (h.name.clone(), HostRun::default()))
            .collect();
        Deploy {
            units: units(&plan),
            plan,
            layout,
            options,
            runs,
            ends: BTreeMap::new(),
            failure: None,
            stopped: None,
            after_switch: false,
            stage: Stage::Connecting {
                asked: 0,
                answered: 0,
            },
            timers,
            connect_errors: BTreeMap::new(),
            local_timer: None,
            stop_timer: None,
            holds: false,
        }
    }

    fn cx(&self) -> LayoutContext<'_> {
        LayoutContext {
            deploy_to: &self.plan.deploy_to,
            release: &self.plan.release,
            delta: self.plan.delta,
        }
    }

    fn switch_segment(&self) -> Option<usize> {
        self.segment_of(Phase::Switch)
    }

    /// A stop asked for, and still to be obeyed: not once every host has switched.
    fn stopping(&self) -> bool {
        self.stopped.is_some() && !all_switched(&self.plan, &self.runs, self.switch_segment())
    }

    fn host(&self, name: &str) -> Option<&HostPlan> {
        self.plan.hosts.iter().find(|h| h.name == name)
    }

    fn phase_id(&self, phase: Phase) -> Option<usize> {
        self.plan
            .steps
            .iter()
            .find(|s| s.kind == StepKind::Phase && s.phase == phase)
            .map(|s| s.id)
    }

    /// Whether script `k` runs a step that reads `$SHIP_RECORDS`.
    fn reads_records(&self, k: usize) -> bool {
        [Phase::Cleanup, Phase::Unlock]
            .into_iter()
            .any(|p| self.segment_of(p) == Some(k))
    }

    fn segment_of(&self, phase: Phase) -> Option<usize> {
        self.phase_id(phase)
            .and_then(|id| self.plan.step(id))
            .and_then(|s| s.script)
    }

    fn fail(&mut self, f: Failure, out: &mut Vec<Action>) {
        if self.failure.is_none() {
            out.push(Action::Event(Event::Failed {
                host: f.host.clone(),
                step: f.step.clone(),
                message: f.message.clone(),
            }));
            self.failure = Some(f);
        }
    }

    fn handle(&mut self, input: Input, out: &mut Vec<Action>) {
        match input {
            Input::Start => {
                let n = self.plan.parallel.max(1).min(self.plan.hosts.len());
                for h in &self.plan.hosts[..n] {
                    out.push(Action::Connect {
                        host: h.name.clone(),
                    });
                }
                self.stage = Stage::Connecting {
                    asked: n,
                    answered: 0,
                };
            }
            Input::Connected { host, result } => {
                if let Stage::Connecting { asked, answered } = &mut self.stage {
                    *answered += 1;
                    match result {
                        Ok(()) => out.push(Action::Event(Event::Connected { host })),
                        Err(e) => {
                            self.connect_errors.insert(host, e);
                        }
                    }
                    if *asked < self.plan.hosts.len() {
                        out.push(Action::Connect {
                            host: self.plan.hosts[*asked].name.clone(),
                        });
                        *asked += 1;
                    }
                }
            }
            Input::Line { host, line } => self.line(&host, &line, out),
            Input::Ended { host, result } => self.ended(&host, result, out),
            Input::TimedOut { host, timer } if host == LOCAL => {
                if self.local_timer == Some(timer)
                    && let Stage::Units {
                        i,
                        unit: UnitState::Local,
                    } = self.stage
                    && let Unit::Local(id) = self.units[i]
                {
                    out.push(Action::Kill {
                        host: LOCAL.to_owned(),
                    });
                    let e = TransportError::Timeout {
                        host: LOCAL.to_owned(),
                        after: self.options.segment_timeout,
                    };
                    self.local_done(id, Err(e), out);
                    self.stage = Stage::Units {
                        i: i + 1,
                        unit: UnitState::Ready,
                    };
                }
            }
            Input::TimedOut { host, timer } if host == STOP => {
                if self.stop_timer == Some(timer) {
                    self.give_up(out);
                }
            }
            Input::TimedOut { host, timer } => self.timed_out(&host, timer, out),
            Input::LocalDone { id, result } => {
                if let Stage::Units {
                    unit: UnitState::Local,
                    ..
                } = self.stage
                {
                    self.local_timer = None;
                    self.local_done(id, result, out);
                    if let Stage::Units { i, unit } = &mut self.stage {
                        *i += 1;
                        *unit = UnitState::Ready;
                    }
                }
            }
            Input::GzMade(result) => {
                if let Stage::Units {
                    unit: UnitState::WaitingGz,
                    ..
                } = self.stage
                {
                    if let Err(message) = result {
                        self.fail(
                            Failure {
                                host: None,
                                step: Some("upload".to_owned()),
                                message,
                                after_switch: self.after_switch,
                            },
                            out,
                        );
                    }
                    self.begin_segment(out);
                }
            }
            Input::NotSent { host, why } => {
                if let Some(run) = self.runs.get_mut(&host) {
                    run.not_sent.get_or_insert(why);
                }
            }
            Input::Recovered { host, result } => self.recovered(&host, result, out),
            Input::Stop(reason) => {
                self.stopped.get_or_insert(reason);
            }
            Input::StopNow(reason) => self.stop_now(reason, out),
        }
        self.advance(out);
    }

    /// Moves on as far as what is known allows.
    fn advance(&mut self, out: &mut Vec<Action>) {
        let switch_segment = self.switch_segment();
        loop {
            match &mut self.stage {
                Stage::Connecting { answered, .. } => {
                    if *answered < self.plan.hosts.len() {
                        return;
                    }
                    // In plan order: the first host that could not be reached is named.
                    let first = self
                        .plan
                        .hosts
                        .iter()
                        .find_map(|h| self.connect_errors.get(&h.name).map(|e| (h, e)));
                    if let Some((h, e)) = first {
                        let f = Failure {
                            host: Some(h.name.clone()),
                            step: None,
                            message: e.to_string(),
                            after_switch: false,
                        };
                        for (host, e) in &self.connect_errors {
                            self.ends.insert(
                                host.clone(),
                                HostEnd::NotStarted {
                                    reason: e.to_string(),
                                },
                            );
                        }
                        self.fail(f, out);
                        self.stage = Stage::Over;
                        return;
                    }
                    let mut nonce = self.options.nonce.as_str().to_owned();
                    if self.options.live {
                        nonce.push_str(" live");
                    }
                    for i in 0..self.plan.hosts.len() {
                        let h = &self.plan.hosts[i];
                        let script = self.conversation(h);
                        out.push(Action::Open {
                            host: h.name.clone(),
                            script,
                        });
                        out.push(Action::Send {
                            host: h.name.clone(),
                            line: nonce.clone(),
                        });
                        if self.plan.env.is_some() {
                            // Its length, then its bytes (the last newline is the line's).
                            let env = self.options.env.clone().unwrap_or_default();
                            let env = if env.ends_with('\n') { env } else { env + "\n" };
                            out.push(Action::Send {
                                host: h.name.clone(),
                                line: (env.len()).to_string(),
                            });
                            out.push(Action::Send {
                                host: h.name.clone(),
                                line: env[..env.len() - 1].to_owned(),
                            });
                        }
                        let name = h.name.clone();
                        self.runs.get_mut(&name).expect("a run a host").open = true;
                    }
                    self.stage = Stage::Units {
                        i: 0,
                        unit: UnitState::Ready,
                    };
                }
                Stage::Units { i, unit } => {
                    let i = *i;
                    let idle = matches!(unit, UnitState::Ready);
                    let stopping = self.stopped.is_some()
                        && !all_switched(&self.plan, &self.runs, switch_segment);
                    let segment_over = match unit {
                        UnitState::Segment { queue, running } => (*running == 0
                            && (queue.is_empty() || self.failure.is_some() || stopping))
                            .then_some(!queue.is_empty()),
                        _ => None,
                    };
                    // A signal that comes once every host switched lets the deploy complete:
                    // there is no sync point left to stop at.
                    if idle
                        && self.failure.is_none()
                        && i < self.units.len()
                        && stopping
                        && let Some(reason) = self.stopped.clone()
                    {
                        {
                            self.fail(
                                Failure {
                                    host: None,
                                    step: None,
                                    message: format!("interrupted by {reason}"),
                                    after_switch: self.after_switch,
                                },
                                out,
                            );
                        }
                    }
                    if idle && self.failure.is_some() {
                        self.stage = Stage::Draining;
                        self.close_all(out);
                        continue;
                    }
                    if idle && i == self.units.len() {
                        self.stage = Stage::Closing;
                        self.close_all(out);
                        continue;
                    }
                    if !idle {
                        // A segment whose hosts all answered is over.
                        let Some(unreached) = segment_over else {
                            return;
                        };
                        self.stage = Stage::Units {
                            i: i + 1,
                            unit: UnitState::Ready,
                        };
                        if unreached && self.failure.is_none() {
                            let reason = self.stopped.clone().unwrap_or_default();
                            self.fail(
                                Failure {
                                    host: None,
                                    step: None,
                                    message: format!("interrupted by {reason}"),
                                    after_switch: self.after_switch,
                                },
                                out,
                            );
                        }
                        continue;
                    }
                    self.begin_unit(i, out);
                }
                Stage::Closing => {
                    if self.runs.values().any(|r| r.open) {
                        return;
                    }
                    for h in &self.plan.hosts {
                        self.ends.insert(h.name.clone(), HostEnd::Deployed);
                    }
                    self.stage = Stage::Over;
                }
                Stage::Draining => {
                    if self.runs.values().any(|r| r.open) {
                        return;
                    }
                    self.stage = Stage::Recovering;
                    self.recover(out);
                }
                Stage::Recovering => {
                    if self.runs.values().any(|r| r.recovering) {
                        return;
                    }
                    for h in &self.plan.hosts {
                        if !self.runs[&h.name].locked {
                            self.ends
                                .entry(h.name.clone())
                                .or_insert(HostEnd::NotStarted {
                                    reason: "the deploy stopped before it started here".to_owned(),
                                });
                        }
                    }
                    self.stage = Stage::Over;
                }
                Stage::Over => return,
            }
        }
    }

    fn close_all(&mut self, out: &mut Vec<Action>) {
        let limit = self.options.segment_timeout;
        for (name, run) in &mut self.runs {
            if run.open {
                out.push(Action::Close { host: name.clone() });
                self.timers += 1;
                run.timer = Some(self.timers);
                out.push(Action::Arm {
                    host: name.clone(),
                    timer: self.timers,
                    after: limit,
                });
            }
        }
    }

    fn begin_unit(&mut self, i: usize, out: &mut Vec<Action>) {
        match self.units[i] {
            Unit::Local(id) => {
                let step = self.plan.step(id).expect("a step of the plan");
                self.after_switch |= step.phase >= Phase::Switch;
                let script = format!("{}{}\n", script::local_header(&self.plan), step.command);
                self.stage = Stage::Units {
                    i,
                    unit: UnitState::Local,
                };
                out.push(Action::Event(Event::Started {
                    host: None,
                    id,
                    name: step.name.clone(),
                }));
                out.push(Action::RunLocal { id, script });
                // A local step has the same time limit as a host's segment.
                self.timers += 1;
                self.local_timer = Some(self.timers);
                out.push(Action::Arm {
                    host: LOCAL.to_owned(),
                    timer: self.timers,
                    after: self.options.segment_timeout,
                });
            }
            Unit::Segment(k) => {
                let switch_segment = self.segment_of(Phase::Switch).unwrap_or(usize::MAX);
                self.after_switch |= k >= switch_segment;
                let upload = self.segment_of(Phase::Upload) == Some(k);
                let needs_gz = upload
                    && self.plan.hosts.iter().any(|h| {
                        let run = &self.runs[&h.name];
                        h.scripts.iter().any(|s| s.segment == k)
                            && run.locked
                            && !run.artifact_present
                            && !run.zstd
                    });
                self.stage = Stage::Units {
                    i,
                    unit: UnitState::WaitingGz,
                };
                if needs_gz {
                    out.push(Action::MakeGz);
                } else {
                    self.begin_segment(out);
                }
            }
        }
    }

    /// The current unit is a segment whose artifact is ready: queue its hosts, start some.
    fn begin_segment(&mut self, out: &mut Vec<Action>) {
        let Stage::Units { i, .. } = self.stage else {
            return;
        };
        let Unit::Segment(k) = self.units[i] else {
            return;
        };
        let queue: VecDeque<String> = self
            .plan
            .hosts
            .iter()
            .filter(|h| h.scripts.iter().any(|s| s.segment == k))
            .map(|h| h.name.clone())
            .collect();
        self.stage = Stage::Units {
            i,
            unit: UnitState::Segment { queue, running: 0 },
        };
        self.dispatch(k, out);
    }

    /// Whether a host is sent a delta bundle rather than the artifact: the plan says
    /// `delta = true`, the host has zstd, and the layout makes a directory per release.
    fn sends_bundle(&self, run: &HostRun) -> bool {
        self.plan.delta && run.zstd && self.layout.keeps_directories()
    }

    /// Sends `go` to queued hosts while fewer than `parallel` run and nothing stops us.
    fn dispatch(&mut self, k: usize, out: &mut Vec<Action>) {
        let upload = self.segment_of(Phase::Upload) == Some(k);
        loop {
            if self.failure.is_some() || self.stopping() {
                return;
            }
            let Stage::Units {
                unit: UnitState::Segment { queue, running },
                ..
            } = &mut self.stage
            else {
                return;
            };
            if *running >= self.plan.parallel.max(1) {
                return;
            }
            let Some(name) = queue.pop_front() else {
                return;
            };
            *running += 1;
            let run = self.runs.get_mut(&name).expect("a run a host");
            if !run.open {
                // Its conversation is over already: it ends this segment at once.
                run.running = Some((k, Transcript::default()));
                self.segment_ended(&name, Err(None), out);
                continue;
            }
            // Only the script with `cleanup` or `unlock` reads the records (a line the
            // host's `read` takes a byte per system call: ~1 KB for 5 releases).
            let records =
                (k > 0 && self.reads_records(k)).then(|| self.records_line(&self.runs[&name]));
            let run = &self.runs[&name];
            for line in protocol::go(&run.cleanup, records.as_deref()) {
                out.push(Action::Send {
                    host: name.clone(),
                    line,
                });
            }
            if upload && !run.artifact_present && self.sends_bundle(run) {
                out.push(Action::SendBundle {
                    host: name.clone(),
                    have: run.have.clone(),
                });
            } else if upload && !run.artifact_present {
                out.push(Action::SendArtifact {
                    host: name.clone(),
                    zstd: run.zstd,
                });
            }
            self.timers += 1;
            let timer = self.timers;
            let run = self.runs.get_mut(&name).expect("a run a host");
            run.running = Some((k, Transcript::default()));
            run.timer = Some(timer);
            out.push(Action::Arm {
                host: name,
                timer,
                after: self.options.segment_timeout,
            });
        }
    }

    fn line(&mut self, host: &str, line: &str, out: &mut Vec<Action>) {
        let nonce = self.options.nonce.clone();
        let Some(run) = self.runs.get_mut(host) else {
            return;
        };
        let Some((k, transcript)) = run.running.as_mut() else {
            return;
        };
        let k = *k;
        match protocol::parse(line, &nonce) {
            Some(protocol::Control::Out { id, text }) => out.push(Action::Event(Event::Output {
                host: Some(host.to_owned()),
                id,
                line: text,
            })),
            Some(protocol::Control::Start { id }) => {
                let name = self.plan.step(id).map_or("?", |s| s.name.as_str());
                out.push(Action::Event(Event::Started {
                    host: Some(host.to_owned()),
                    id,
                    name: name.to_owned(),
                }));
            }
            Some(protocol::Control::Held { id, processes }) => {
                let name = self.plan.step(id).map_or("?", |s| s.name.as_str());
                out.push(Action::Event(Event::Held {
                    host: host.to_owned(),
                    id,
                    name: name.to_owned(),
                    processes,
                }));
            }
            _ => {}
        }
        let before = transcript.ended.len();
        transcript.take(line, &nonce);
        if transcript.ended.len() > before {
            // A step ended: report it now.
            if let Some(protocol::Control::End { id, status }) = protocol::parse(line, &nonce) {
                let output = transcript.output.get(&id).cloned().unwrap_or_default();
                let name = self.plan.step(id).map_or("?", |s| s.name.as_str());
                out.push(Action::Event(Event::Step {
                    host: Some(host.to_owned()),
                    id,
                    name: name.to_owned(),
                    status,
                    output,
                }));
            }
        }
        if transcript.finished == Some(k) {
            self.segment_ended(host, Ok(()), out);
        }
    }

    fn ended(
        &mut self,
        host: &str,
        result: Result<RunOutput, TransportError>,
        out: &mut Vec<Action>,
    ) {
        let Some(run) = self.runs.get_mut(host) else {
            return;
        };
        if !run.open {
            return;
        }
        run.open = false;
        run.timer = None;
        if run.running.is_some() {
            self.segment_ended(host, Err(Some(result)), out);
        } else if let Err(e) = result {
            // It broke between segments: what it had done may not be all it did (once it
            // finished its last segment, nothing is left to do).
            let after_switch = self.after_switch;
            let all = self.host(host).map_or(0, |h| h.scripts.len());
            let run = self.runs.get_mut(host).expect("checked");
            if run.locked
                && run.segments_done.len() < all
                && !matches!(self.stage, Stage::Closing | Stage::Draining)
            {
                run.uncertain = true;
                self.fail(
                    Failure {
                        host: Some(host.to_owned()),
                        step: None,
                        message: e.to_string(),
                        after_switch,
                    },
                    out,
                );
            }
        }
    }

    /// A hard stop: cut what runs, put the hosts back within [`STOP_GRACE`].
    fn stop_now(&mut self, reason: String, out: &mut Vec<Action>) {
        self.stopped.get_or_insert(reason.clone());
        if self.stop_timer.is_some() {
            return;
        }
        match self.stage {
            Stage::Over => return,
            Stage::Connecting { .. } => {
                // Nothing ran anywhere yet: no host is waited for.
                self.fail(
                    Failure {
                        host: None,
                        step: None,
                        message: format!("interrupted by {reason} while connecting"),
                        after_switch: false,
                    },
                    out,
                );
                for h in &self.plan.hosts {
                    self.ends.insert(
                        h.name.clone(),
                        HostEnd::NotStarted {
                            reason: format!("stopped by {reason} before every host was connected"),
                        },
                    );
                }
                self.stage = Stage::Over;
                return;
            }
            Stage::Closing => {
                // Every host finished: its conversation has nothing more to say.
                for (name, run) in &mut self.runs {
                    if run.open {
                        run.open = false;
                        run.timer = None;
                        out.push(Action::Kill { host: name.clone() });
                    }
                }
                return;
            }
            _ => {}
        }
        self.fail(
            Failure {
                host: None,
                step: None,
                message: format!("interrupted by {reason}: the steps in flight were cut"),
                after_switch: self.after_switch,
            },
            out,
        );
        self.timers += 1;
        self.stop_timer = Some(self.timers);
        out.push(Action::Arm {
            host: STOP.to_owned(),
            timer: self.timers,
            after: STOP_GRACE,
        });
        // A local step in flight is stopped (with its children).
        if let Stage::Units {
            i,
            unit: UnitState::Local,
        } = self.stage
            && let Unit::Local(id) = self.units[i]
        {
            self.local_timer = None;
            out.push(Action::Kill {
                host: LOCAL.to_owned(),
            });
            let e = TransportError::Session {
                host: "local".to_owned(),
                message: format!("stopped by {reason}"),
            };
            self.local_done(id, Err(e), out);
            self.stage = Stage::Units {
                i: i + 1,
                unit: UnitState::Ready,
            };
        }
        // The hosts' steps in flight are cut: their scripts are stopped when the hosts are
        // put back (they are uncertain).
        let running: Vec<String> = self
            .runs
            .iter()
            .filter(|(_, r)| r.open && r.running.is_some())
            .map(|(h, _)| h.clone())
            .collect();
        for host in running {
            let run = self.runs.get_mut(&host).expect("a run");
            run.open = false;
            run.timer = None;
            out.push(Action::Kill { host: host.clone() });
            let e = TransportError::Session {
                host: host.clone(),
                message: format!("stopped by {reason} while a step ran"),
            };
            self.segment_ended(&host, Err(Some(Err(e))), out);
        }
    }

    /// The hard stop's time is up: the hosts not put back yet are given up, named unknown.
    fn give_up(&mut self, out: &mut Vec<Action>) {
        let reason = self.stopped.clone().unwrap_or_default();
        let unknown = HostEnd::Unknown {
            reason: format!(
                "not put back within {} s of {reason}: check it with `cargo ship releases`",
                STOP_GRACE.as_secs()
            ),
        };
        for h in self.plan.hosts.clone() {
            let run = self.runs.get_mut(&h.name).expect("a run");
            if run.open {
                run.open = false;
                run.timer = None;
                run.running = None;
                out.push(Action::Kill {
                    host: h.name.clone(),
                });
            }
            let pending = run.recovering || (run.locked && !self.ends.contains_key(&h.name));
            run.recovering = false;
            if pending {
                out.push(Action::Event(Event::Recovered {
                    host: h.name.clone(),
                    end: unknown.clone(),
                }));
                self.ends.insert(h.name.clone(), unknown.clone());
            } else {
                self.ends
                    .entry(h.name.clone())
                    .or_insert(HostEnd::NotStarted {
                        reason: format!("the deploy stopped ({reason}) before it started here"),
                    });
            }
        }
        self.stage = Stage::Over;
    }

    fn timed_out(&mut self, host: &str, timer: u64, out: &mut Vec<Action>) {
        let Some(run) = self.runs.get_mut(host) else {
            return;
        };
        if run.timer != Some(timer) || !run.open {
            return;
        }
        run.open = false;
        run.timer = None;
        out.push(Action::Kill {
            host: host.to_owned(),
        });
        if run.running.is_some() {
            let e = TransportError::Timeout {
                host: host.to_owned(),
                after: self.options.segment_timeout,
            };
            self.segment_ended(host, Err(Some(Err(e))), out);
        }
    }

    /// Host `host` ended its segment: `Ok` when it finished it, `Err(Some(result))` when its
    /// conversation ended first, `Err(None)` when it had ended before the segment began.
    fn segment_ended(
        &mut self,
        host: &str,
        end: Result<(), Option<Result<RunOutput, TransportError>>>,
        out: &mut Vec<Action>,
    ) {
        let run = self.runs.get_mut(host).expect("a run a host");
        let Some((k, transcript)) = run.running.take() else {
            return;
        };
        if end.is_ok() {
            run.timer = None;
        }
        if let Stage::Units {
            unit: UnitState::Segment { running, .. },
            ..
        } = &mut self.stage
        {
            *running = running.saturating_sub(1);
        }
        let result = match end {
            Ok(()) => Ok(RunOutput {
                status: Some(0),
                stdout: String::new(),
                stderr: String::new(),
            }),
            Err(Some(Ok(o))) => Ok(RunOutput {
                // A script that ended without failing still did not finish this segment.
                status: o.status.filter(|s| *s != 0).or(Some(-1)),
                stdout: String::new(),
                stderr: o.stderr,
            }),
            Err(Some(Err(e))) => Err(e),
            Err(None) => Err(TransportError::Session {
                host: host.to_owned(),
                message: "the session ended".to_owned(),
            }),
        };
        let own = self.absorb(host, k, &transcript, result);
        if let Some(message) = self.runs.get_mut(host).and_then(|r| r.notice.take()) {
            out.push(Action::Event(Event::Notice {
                host: host.to_owned(),
                message,
            }));
        }
        if k == 0 && !self.runs[host].locked {
            let reason = own
                .as_ref()
                .or(self.failure.as_ref())
                .map(|f| f.message.clone())
                .unwrap_or_default();
            self.ends
                .insert(host.to_owned(), HostEnd::NotStarted { reason });
        }
        if let Some(f) = own {
            self.fail(f, out);
        }
        self.dispatch(k, out);
    }

    /// Takes in one host's end of segment `k`; returns the failure it shows, if any.
    fn absorb(
        &mut self,
        host: &str,
        k: usize,
        t: &Transcript,
        result: Result<RunOutput, TransportError>,
    ) -> Option<Failure> {
        let after_switch = self.after_switch;
        let prepare_id = self.phase_id(Phase::Prepare);
        let switch_id = self.phase_id(Phase::Switch);
        let lock_id = self.phase_id(Phase::Lock);
        let fail = |step: Option<String>, message: String| {
            Some(Failure {
                host: Some(host.to_owned()),
                step,
                message,
                after_switch,
            })
        };
        let mut state_update = None;
        {
            let run = self.runs.get_mut(host).expect("a run a host");
            run.completed.extend(
                t.ended
                    .iter()
                    .filter(|(_, rc)| **rc == 0)
                    .map(|(id, _)| *id),
            );
            if t.started.iter().any(|id| Some(*id) == prepare_id) {
                run.prepare_started = true;
            }
            if let Some(s) = switch_id
                && t.started.contains(&s)
            {
                // Started: it may have switched, even if its end never came.
                if t.ended.get(&s) == Some(&0) {
                    run.switched = true;
                } else {
                    run.uncertain = true;
                }
            }
            if k == 0 && lock_id.and_then(|id| t.ended.get(&id)) == Some(&0) {
                run.locked = true;
                state_update = Some(t.probe.clone());
            } else if k == 0
                && let Some(id) = lock_id
                && t.started.contains(&id)
                && t.ended.get(&id) != Some(&LOCKED_STATUS)
            {
                // It died while taking the lock: it may hold it. The recovery puts back
                // only what its own lock covers.
                run.locked = true;
                run.uncertain = true;
            }
        }
        if let Some(probe) = state_update {
            let state = match probe.state(self.layout, &self.plan.deploy_to) {
                // The records follow the directory: what `current` points at is live,
                // whoever moved it (Capistrano, a hand), and records of releases gone go.
                (state, None) => self.layout.reconcile(&state).0,
                (_, Some(e)) => {
                    return fail(
                        Some("lock".to_owned()),
                        format!(
                            "{}/.ship/releases.json is not valid JSON ({e}); fix or remove it",
                            self.plan.deploy_to
                        ),
                    );
                }
            };
            let new_dir = self.layout.new_dir(&state, &self.plan.release);
            match crate::layout::redeploy_of(&state, &new_dir, &self.plan.release) {
                crate::layout::Redeploy::New => {}
                crate::layout::Redeploy::Live => {
                    return fail(
                        Some("lock".to_owned()),
                        format!(
                            "release {new_dir} is live on {host} already: nothing was changed. \
                             Deploy another release id (a new version), or roll back"
                        ),
                    );
                }
                crate::layout::Redeploy::Replaces(was) => {
                    let was = match was {
                        Some(ReleaseState::Failed) => "its deploy failed",
                        Some(ReleaseState::RolledBack) => "it was rolled back from",
                        Some(_) => "it was live before",
                        None => "it has no record",
                    };
                    self.runs.get_mut(host).expect("a run a host").notice = Some(format!(
                        "release {new_dir} is there already ({was}): this deploy replaces it"
                    ));
                }
            }
            let cleanup = self
                .layout
                .cleanup(&state, &new_dir, self.plan.keep_releases)
                .into_iter()
                .filter(|d| check_release_id(d).is_ok())
                .collect();
            let run = self.runs.get_mut(host).expect("a run a host");
            run.artifact_present = probe.artifact_present;
            run.zstd = probe.zstd;
            run.have = probe.have.clone();
            run.new_dir = new_dir;
            run.cleanup = cleanup;
            run.state = state;
        }

        // Said of this segment only (its upload): not carried to a later one.
        let not_sent = self
            .runs
            .get_mut(host)
            .expect("a run a host")
            .not_sent
            .take();
        let upload_id = self.phase_id(Phase::Upload);
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                // The session broke: whatever it was doing may or may not have happened.
                let run = self.runs.get_mut(host).expect("a run a host");
                run.uncertain = true;
                if k == 0 {
                    run.locked = true; // it may hold the lock: release it when recovering
                }
                return fail(None, e.to_string());
            }
        };
        if k == 0 && lock_id.and_then(|id| t.ended.get(&id)) == Some(&LOCKED_STATUS) {
            return fail(
                Some("lock".to_owned()),
                tail(&out.stderr, 1).replace("cargo-ship: ", ""),
            );
        }
        if out.status == Some(0) {
            let run = self.runs.get_mut(host).expect("a run a host");
            run.finished |= after_switch;
            run.segments_done.push(k);
            return None;
        }
        let failed = t.failed_step();
        if let Some(why) = not_sent
            && failed.is_some_and(|(id, _)| Some(id) == upload_id)
        {
            // Its upload step ended on the input closed under it: the cause is here. (A step
            // that failed before the upload keeps its own failure.)
            return fail(
                Some("upload".to_owned()),
                format!("the artifact was not sent: {why}"),
            );
        }
        let detail = {
            let said = failed.map(|(id, _)| t.tail(id, 3)).unwrap_or_default();
            if said.is_empty() {
                tail(&out.stderr, 3)
            } else {
                said.join("\n")
            }
        };
        let sep = if detail.is_empty() { "" } else { ": " };
        let run = self.runs.get_mut(host).expect("a run a host");
        match failed {
            Some((id, rc)) => {
                let name = self
                    .plan
                    .step(id)
                    .map_or("?", |s| s.name.as_str())
                    .to_owned();
                if rc.is_none() {
                    run.uncertain = true;
                }
                let how = rc.map_or("did not finish".to_owned(), |rc| format!("exit {rc}"));
                fail(
                    Some(name.clone()),
                    format!("step `{name}` failed ({how}){sep}{detail}"),
                )
            }
            None => {
                run.uncertain = true;
                fail(
                    None,
                    format!(
                        "the script ended with status {}{sep}{detail}",
                        out.status.map_or("unknown".to_owned(), |s| s.to_string()),
                    ),
                )
            }
        }
    }

    fn local_done(
        &mut self,
        id: usize,
        result: Result<RunOutput, TransportError>,
        out: &mut Vec<Action>,
    ) {
        let step = self.plan.step(id).expect("a step of the plan");
        let name = step.name.clone();
        if let Ok(o) = &result {
            for line in o.stdout.lines().chain(o.stderr.lines()) {
                out.push(Action::Event(Event::Output {
                    host: None,
                    id,
                    line: line.to_owned(),
                }));
            }
        }
        let (status, message) = match result {
            Ok(o) => (
                o.status.unwrap_or(-1),
                format!("{}\n{}", tail(&o.stdout, 10), tail(&o.stderr, 10)),
            ),
            Err(e) => (-1, e.to_string()),
        };
        out.push(Action::Event(Event::Step {
            host: None,
            id,
            name: name.clone(),
            status,
            output: message.trim().lines().map(str::to_owned).collect(),
        }));
        if status != 0 {
            let f = Failure {
                host: None,
                step: Some(name.clone()),
                message: format!(
                    "local step `{name}` failed (exit {status}): {}",
                    tail(message.trim(), 3)
                ),
                after_switch: self.after_switch,
            };
            self.fail(f, out);
        }
    }

    fn lock_info(&self) -> String {
        lock_info(&self.options, &self.plan)
    }

    /// The one script a host runs for the whole deploy (see [`protocol::conversation`]).
    fn conversation(&self, h: &HostPlan) -> String {
        let info = self.lock_info();
        let mut values = vec![
            ("SHIP_DEPLOYER", self.options.deployer.as_str()),
            ("SHIP_STARTED_AT", self.options.started_at.as_str()),
            ("SHIP_LOCK_INFO", info.as_str()),
        ];
        // (see `protocol::take_lock`; set either way, so that nothing inherited sets it)
        values.push(("ship_hold", if self.holds { "1" } else { "" }));
        let segments: Vec<(usize, &str)> = h
            .scripts
            .iter()
            .map(|s| (s.segment, s.script.as_str()))
            .collect();
        protocol::conversation(&values, &segments, self.plan.env.is_some())
    }

    fn new_record(&self, run: &HostRun) -> ReleaseRecord {
        ReleaseRecord {
            id: self.plan.release.clone(),
            dir: run.new_dir.clone(),
            revision: self.plan.artifact.revision.clone(),
            digest: self.plan.artifact.digest.clone(),
            time: self.options.started_at.clone(),
            user: self.options.deployer.clone(),
            state: ReleaseState::Live,
        }
    }

    /// The directory the new release replaces (see [`Layout::replaced`]).
    fn replaced<'r>(&self, run: &'r HostRun) -> Option<&'r str> {
        self.layout.replaced(&run.new_dir)
    }

    /// The records a host keeps (see [`Layout::kept_records`]).
    fn keep(&self, records: Vec<ReleaseRecord>) -> Vec<ReleaseRecord> {
        self.layout.kept_records(records, self.plan.keep_releases)
    }

    /// The new `.ship/releases.json` of a host, as one line.
    fn records_line(&self, run: &HostRun) -> String {
        serde_json::to_string(&self.keep(records::after_deploy(
            &run.state.records,
            self.new_record(run),
            &run.cleanup,
            self.replaced(run),
        )))
        .expect("records serialize")
    }

    /// Puts every locked host back: before the switch, remove the new release and unlock;
    /// after it, switch back the hosts that switched (or may have).
    fn recover(&mut self, out: &mut Vec<Action>) {
        let after_switch = self.failure.as_ref().is_some_and(|f| f.after_switch);
        for h in self.plan.hosts.clone() {
            let run = &self.runs[&h.name];
            if !run.locked {
                continue;
            }
            let revert = after_switch && (run.switched || run.uncertain || run.finished);
            if revert && self.stop_timer.is_some() && !self.restart_tasks(&h).is_empty() {
                out.push(Action::Event(Event::Notice {
                    host: h.name.clone(),
                    message: "stopped now: its restart tasks are not run again after the revert \
                              (run them with `cargo ship run`)"
                        .to_owned(),
                }));
            }
            let (recovery, script) = if revert {
                self.revert_script(&h, run)
            } else {
                self.abort_script(&h, run)
            };
            self.runs.get_mut(&h.name).expect("a run").recovering = true;
            out.push(Action::Recover {
                host: h.name.clone(),
                recovery,
                script,
            });
        }
    }

    fn recovered(
        &mut self,
        host: &str,
        result: Result<RunOutput, TransportError>,
        out: &mut Vec<Action>,
    ) {
        let Some(run) = self.runs.get_mut(host) else {
            return;
        };
        if !run.recovering {
            return;
        }
        run.recovering = false;
        let after_switch = self.failure.as_ref().is_some_and(|f| f.after_switch);
        let revert = after_switch && (run.switched || run.uncertain || run.finished);
        // What is live now, as the host said after its recovery (it may never have said
        // before); what it had, if it said nothing.
        let live = match &result {
            Ok(o) => {
                let probe = protocol::Probe::parse(&o.stdout, &self.options.nonce);
                if probe == protocol::Probe::default() {
                    self.layout.revert_target(&run.state)
                } else {
                    // Records that do not parse still leave `current` to read.
                    let (state, _) = probe.state(self.layout, &self.plan.deploy_to);
                    self.layout.revert_target(&state)
                }
            }
            Err(_) => None,
        };
        let end = match result {
            Ok(o) if o.status == Some(0) => {
                if revert {
                    HostEnd::Reverted { live }
                } else {
                    HostEnd::Unchanged { live }
                }
            }
            Ok(o) => HostEnd::Unknown {
                reason: format!(
                    "putting it back failed (status {}): {}",
                    o.status.map_or("unknown".to_owned(), |s| s.to_string()),
                    tail(&o.stderr, 2)
                ),
            },
            Err(e) => HostEnd::Unknown {
                reason: format!("could not put it back: {e}"),
            },
        };
        out.push(Action::Event(Event::Recovered {
            host: host.to_owned(),
            end: end.clone(),
        }));
        self.ends.insert(host.to_owned(), end);
    }

    /// The start of a recovery script: the host's variables, this deploy's lock and nonce.
    fn header(&self, host: &HostPlan) -> String {
        recovery_header(&self.plan, self.layout, &self.options, host)
    }

    /// A recovery script: `body` if the lock is this deploy's, then the host's state as it is
    /// left (the outcome reports what is live from it).
    fn recovery_script(&self, host: &HostPlan, body: &str, must: bool) -> String {
        format!(
            "{}{}\n{}\n",
            self.header(host),
            protocol::under_own_lock(body, must),
            protocol::probe()
        )
    }

    /// Before the switch: remove the half-made release (restore the single layout's
    /// directory), release the lock.
    fn abort_script(&self, h: &HostPlan, run: &HostRun) -> (Recovery, String) {
        let mut body = String::new();
        let stop = run.uncertain;
        if stop {
            body.push_str(&protocol::stop_left_running());
            body.push('\n');
        }
        let discard = run.prepare_started || run.uncertain;
        let restore = (discard && !self.layout.keeps_directories())
            .then(|| self.layout.revert_target(&run.state))
            .flatten();
        if discard {
            body.push_str(&self.layout.discard_new(&self.cx(), &run.state));
            body.push('\n');
        }
        body.push_str(&protocol::release_lock());
        (
            Recovery::Abort {
                discard,
                stop,
                restore,
            },
            self.recovery_script(h, &body, false),
        )
    }

    /// After the switch: back to what was live, the new release recorded failed.
    fn revert_script(&self, h: &HostPlan, run: &HostRun) -> (Recovery, String) {
        let target = self.layout.revert_target(&run.state);
        let stop = run.uncertain;
        let mut body = String::new();
        if stop {
            body.push_str(&protocol::stop_left_running());
            body.push('\n');
        }
        body.push_str(&self.layout.revert(&self.cx(), &run.state));
        body.push('\n');
        let records = self.keep(records::after_revert(
            &run.state.records,
            self.new_record(run),
            &run.cleanup,
            self.replaced(run),
        ));
        let back_to = run
            .state
            .live_record()
            .map(|r| r.id.clone())
            .or_else(|| run.state.live.clone())
            .unwrap_or_else(|| "none".to_owned());
        body.push_str(&protocol::write_records(&quote(&records::to_json(
            &records,
        ))));
        body.push_str(&format!(
            "\nprintf '%s rolled back to release %s\\n' {} {} >> \"$SHIP_DEPLOY_TO/revisions.log\"\n",
            quote(&self.options.deployer),
            quote(&back_to),
        ));
        // Stopped now (a second signal), the restarts are not run: they may be what hung.
        if target.is_some() && self.stop_timer.is_none() {
            body.push_str(&self.restarts_after_revert(h, &back_to));
        }
        body.push_str(&protocol::release_lock());
        (
            Recovery::Revert {
                stop,
                target,
                records,
            },
            self.recovery_script(h, &body, true),
        )
    }

    /// The host's tasks hooked after `switch` (its restarts) that ran to the end, run again
    /// once it is back on the release it had, as a rollback runs them: a server the deploy
    /// reloaded serves the release that is live again, not the one that failed. Each in the live release, its
    /// output in `.ship/log/revert.<n>`, stopped at the segment's time limit; one that fails
    /// is reported on standard error, and the host is still back.
    fn restarts_after_revert(&self, h: &HostPlan, back_to: &str) -> String {
        let tasks = self.restart_tasks(h);
        if tasks.is_empty() {
            return String::new();
        }
        // In a subshell: the variables are the live release's for the tasks only (the lock's
        // release below still needs this deploy's).
        let mut s = format!(
            "(\nSHIP_RELEASE={}\nSHIP_RELEASE_PATH=\"$SHIP_DEPLOY_TO/current\"\nexport SHIP_RELEASE SHIP_RELEASE_PATH\nmkdir -p \"$SHIP_DEPLOY_TO/.ship/log\"\n",
            quote(back_to)
        );
        for (i, task) in tasks.iter().enumerate() {
            s.push_str(&format!(
                "( {} ) </dev/null >\"$SHIP_DEPLOY_TO/.ship/log/revert.{i}\" 2>&1 || echo \"cargo-ship: $SHIP_HOST: {} failed after the revert (its output: $SHIP_DEPLOY_TO/.ship/log/revert.{i})\" >&2\n",
                crate::ops::limited(&task.command, self.options.segment_timeout),
                task.name.replace(['"', '$', '`', '\\'], "")
            ));
        }
        s.push_str(")\n");
        s
    }

    /// The host's tasks hooked after `switch` that ran to the end there: what a revert runs
    /// again.
    fn restart_tasks(&self, h: &HostPlan) -> Vec<&crate::plan::Step> {
        self.plan
            .steps
            .iter()
            .filter(|s| {
                s.kind == StepKind::Task
                    && s.phase == Phase::Switch
                    && s.placement == Placement::Hosts
                    && s.hosts.contains(&h.name)
                    // Only a task that ran to the end restarted something onto the new release;
                    // one that failed or hung (it may be what stopped the deploy) is not run
                    // again, and one that never ran has nothing to undo.
                    && self.runs[&h.name].completed.contains(&s.id)
            })
            .collect()
    }

    fn outcome(&self) -> Outcome {
        let hosts = self
            .plan
            .hosts
            .iter()
            .map(|h| {
                let end = self
                    .ends
                    .get(&h.name)
                    .cloned()
                    .unwrap_or(HostEnd::NotStarted {
                        reason: "the deploy stopped before this host was reached".to_owned(),
                    });
                (h.name.clone(), end)
            })
            .collect();
        Outcome {
            hosts,
            failure: self.failure.clone(),
            batches: Vec::new(),
        }
    }
}
