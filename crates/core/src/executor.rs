//! The executor: runs a [`Plan`] over a [`Transport`], host by host in parallel, segment
//! by segment, and puts every host back when anything fails.
//!
//! The rules (DESIGN.md, Phases):
//! - every host is connected before anything runs; a host that cannot be reached stops the
//!   deploy with nothing done anywhere;
//! - segment 0 takes each host's lock and reads its state; the executor then decides, per
//!   host, what cleanup removes and what `.ship/releases.json` will hold;
//! - a failure before the segment holding `switch` removes the half-made release on every
//!   host and releases the locks: no host's `current` moved;
//! - a failure from `switch` on puts every host that switched back on the release it had,
//!   records the new release as failed, and releases the locks.

use crate::layout::{HostState, Layout, LayoutContext, ReleaseRecord, ReleaseState};
use crate::phase::Phase;
use crate::plan::{HostPlan, Placement, Plan, StepKind};
use crate::records::{self, Probe};
use crate::script::{self, END_MARKER, LOCKED_STATUS, START_MARKER, Vars};
use crate::shell::quote;
use crate::stage::check_release_id;
use crate::transport::Input;
use crate::transport::{RunOutput, Transport, TransportError};
use futures::StreamExt;
use futures::future::join_all;
use futures::stream::FuturesUnordered;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// The marker a host's script prints when it has finished a segment and waits for the next.
pub const SEGMENT_MARKER: &str = "::ship::segment";

/// What the executor needs besides the plan: who deploys, when, and the artifact's file.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// Who deploys: `user@machine`.
    pub deployer: String,
    /// When the deploy started, RFC 3339 UTC.
    pub started_at: String,
    /// The artifact, `target/ship/artifacts/<digest>.tar.zst`; hosts without zstd are sent
    /// the `.tar.gz` made beside it.
    pub artifact: PathBuf,
    /// How long one host's script (one segment) may take.
    pub segment_timeout: std::time::Duration,
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
        /// The last lines it printed.
        output: Vec<String>,
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
pub struct Outcome {
    /// Each host's end state, in plan order.
    pub hosts: Vec<(String, HostEnd)>,
    /// The first failure, if any.
    pub failure: Option<Failure>,
    /// A rolling deploy's batches and how each ended.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub batches: Vec<BatchEnd>,
}

/// How one batch of a rolling deploy ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BatchEnd {
    /// Its number, from 1.
    pub batch: usize,
    /// Its hosts.
    pub hosts: Vec<String>,
    /// `deployed`, `failed` (its hosts were put back) or `not_started`.
    pub result: String,
}

impl Outcome {
    /// True when every host is on the new release.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// What the executor knows of one host during a deploy.
#[derive(Clone, Debug, Default)]
struct HostRun {
    locked: bool,
    state: HostState,
    artifact_present: bool,
    zstd: bool,
    new_dir: String,
    cleanup: Vec<String>,
    prepare_started: bool,
    switched: bool,
    uncertain: bool,
    finished: bool,
    /// The segments this host finished.
    segments_done: Vec<usize>,
}

impl HostRun {
    fn reached(&self, k: usize) -> bool {
        self.segments_done.contains(&k)
    }
}

/// One host's conversation, as the coordinator sees it.
struct Talk {
    lines: mpsc::UnboundedReceiver<String>,
    done: Option<oneshot::Receiver<Result<RunOutput, TransportError>>>,
    ended: Option<Result<RunOutput, TransportError>>,
}

/// How a segment ended on a host.
enum SegmentEnd {
    /// Its marker came: every step of the segment succeeded.
    Finished(String),
    /// The script ended before it (the output read so far).
    Ended(String),
    /// It took longer than allowed.
    TimedOut,
}

impl Talk {
    /// Reads the host's output until it finishes segment `k` or its script ends.
    async fn segment(mut self, k: usize, limit: std::time::Duration) -> (Talk, SegmentEnd) {
        let marker = format!("{SEGMENT_MARKER} {k}");
        let deadline = tokio::time::Instant::now() + limit;
        let mut text = String::new();
        if self.ended.is_none() {
            loop {
                let Ok(line) = tokio::time::timeout_at(deadline, self.lines.recv()).await else {
                    return (self, SegmentEnd::TimedOut);
                };
                let Some(line) = line else { break };
                if line == marker {
                    return (self, SegmentEnd::Finished(text));
                }
                text.push_str(&line);
                text.push('\n');
            }
        }
        (self, SegmentEnd::Ended(text))
    }

    /// The script's end: call once its input is closed (the transport returns only then).
    async fn end(&mut self, text: String) -> Result<RunOutput, TransportError> {
        if self.ended.is_none() {
            let ended = match self.done.take() {
                Some(done) => done.await.unwrap_or_else(|_| {
                    Err(TransportError::Session {
                        host: String::new(),
                        message: "the session ended".to_owned(),
                    })
                }),
                None => Ok(RunOutput::default()),
            };
            self.ended = Some(ended);
        }
        match self.ended.clone().expect("set above") {
            Ok(out) => Ok(RunOutput {
                // A script that ended without failing still did not finish this segment.
                status: out.status.filter(|s| *s != 0).or(Some(-1)),
                stdout: text,
                stderr: out.stderr,
            }),
            Err(e) => Err(e),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    Segment(usize),
    Local(usize),
}

/// Markers read from a script's output.
#[derive(Debug, Default)]
struct Parsed {
    started: Vec<usize>,
    ended: BTreeMap<usize, i32>,
    output: BTreeMap<usize, Vec<String>>,
}

fn parse_markers(stdout: &str) -> Parsed {
    let mut p = Parsed::default();
    let mut current: Option<usize> = None;
    let mut in_records = false;
    let records_start = format!("{} records", script::STATE_MARKER);
    let records_end = format!("{} end", script::STATE_MARKER);
    for line in stdout.lines() {
        // The host's state is data for the executor, not output to show.
        if line == records_start {
            in_records = true;
        } else if line == records_end {
            in_records = false;
            continue;
        }
        if in_records {
            continue;
        }
        if let Some(rest) = line.strip_prefix(START_MARKER) {
            let id = rest.split_whitespace().next().and_then(|i| i.parse().ok());
            if let Some(id) = id {
                p.started.push(id);
                current = Some(id);
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix(END_MARKER) {
            let mut words = rest.split_whitespace();
            let id = words.next().and_then(|i| i.parse().ok());
            let rc = words.next().and_then(|i| i.parse().ok());
            if let (Some(id), Some(rc)) = (id, rc) {
                p.ended.insert(id, rc);
            }
            current = None;
            continue;
        }
        if let Some(id) = current
            && !line.starts_with(script::STATE_MARKER)
        {
            p.output.entry(id).or_default().push(line.to_owned());
        }
    }
    for lines in p.output.values_mut() {
        while lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
        let skip = lines.len().saturating_sub(20);
        lines.drain(..skip);
    }
    p
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs plans. `remote` reaches the hosts; `local` runs `local` steps on this machine.
pub struct Executor<'a, R: Transport, L: Transport> {
    /// The plan.
    pub plan: &'a Plan,
    /// Its layout.
    pub layout: &'a dyn Layout,
    /// The hosts' transport.
    pub remote: &'a R,
    /// The transport of local steps.
    pub local: &'a L,
    /// Apply-time values.
    pub options: ApplyOptions,
    /// Where events go.
    pub events: &'a (dyn Fn(Event) + Send + Sync),
    /// Set (with a reason, e.g. `SIGINT`) to stop: the scripts in flight finish their
    /// segment, no host is sent another, and every host is put back as after a failure.
    pub stop: Option<tokio::sync::watch::Receiver<Option<String>>>,
}

impl<R: Transport, L: Transport> Executor<'_, R, L> {
    fn cx(&self) -> LayoutContext<'_> {
        LayoutContext {
            deploy_to: &self.plan.deploy_to,
            release: &self.plan.release,
        }
    }

    fn header(&self, host: &HostPlan) -> String {
        script::header(&Vars::of(self.plan, host), &self.layout.locate(&self.cx()))
    }

    /// The order of work: segments, and the local steps between them.
    fn units(&self) -> Vec<Unit> {
        let mut units = Vec::new();
        for step in &self.plan.steps {
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

    fn lock_info(&self) -> String {
        format!(
            "{} since {} ({} release {} to {})",
            self.options.deployer,
            self.options.started_at,
            self.plan.app,
            self.plan.release,
            self.plan.stage
        )
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

    /// The directory the new release replaces, when the layout keeps one directory per
    /// release; the single layout keeps earlier records: a rollback unpacks their artifacts.
    fn replaced<'r>(&self, run: &'r HostRun) -> Option<&'r str> {
        self.layout.atomic().then_some(run.new_dir.as_str())
    }

    /// The single layout has no directories for cleanup to count: its records are trimmed
    /// to `keep_releases` instead.
    fn keep(&self, mut records: Vec<ReleaseRecord>) -> Vec<ReleaseRecord> {
        if !self.layout.atomic() {
            let extra = records.len().saturating_sub(self.plan.keep_releases.max(2));
            records.drain(..extra);
        }
        records
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

    /// What a host lacking the artifact is sent, with the line the upload step reads first:
    /// the `.tar.zst` to a host with zstd, else its `.tar.gz` (made before the upload
    /// segment by [`Executor::gz_for`]).
    fn sending(&self, zstd: bool) -> (String, PathBuf) {
        let zst = &self.options.artifact;
        let gz = zst.with_extension("gz");
        let path = if zstd { zst.clone() } else { gz };
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        let encoding = if zstd { "zst" } else { "gz" };
        (format!("{encoding} {size}"), path)
    }

    /// Before the upload: the `.tar.gz` if a host that lacks the artifact has no zstd.
    fn gz_for<'h>(
        &self,
        hosts: impl IntoIterator<Item = &'h HostPlan>,
        runs: &BTreeMap<String, HostRun>,
    ) -> Result<(), String> {
        let needed = hosts.into_iter().any(|h| {
            let run = &runs[&h.name];
            run.locked && !run.artifact_present && !run.zstd
        });
        if needed {
            crate::artifact::gz_of(&self.options.artifact)
                .map_err(|e| format!("making the .tar.gz for the hosts without zstd: {e}"))?;
        }
        Ok(())
    }

    /// The one script a host runs for the whole deploy: the plan's scripts, in order, each
    /// started by a `go` line from the executor (the sync points), the apply-time values
    /// decided from the host's state read with those lines, and a marker after each.
    fn conversation(&self, h: &HostPlan) -> String {
        let mut s = format!(
            "SHIP_DEPLOYER={}\nSHIP_STARTED_AT={}\nSHIP_LOCK_INFO={}\nSHIP_CLEANUP=\nSHIP_RECORDS=\n",
            quote(&self.options.deployer),
            quote(&self.options.started_at),
            quote(&self.lock_info()),
        );
        for part in &h.scripts {
            s.push_str(&format!(
                "IFS= read -r ship_go || exit 0\n[ \"$ship_go\" = go ] || exit 0\n\
                 IFS= read -r SHIP_CLEANUP || exit 0\nIFS= read -r SHIP_RECORDS || exit 0\n{}\n\
                 printf '\\n{SEGMENT_MARKER} %s\\n' {}\n",
                part.script, part.segment
            ));
        }
        s
    }

    /// Applies the plan. Never panics on a host's failure: every failure ends in an
    /// [`Outcome`] that says what each host was left in.
    /// Runs the plan: every host at once, or — for a rolling plan — batch by batch, each
    /// batch all or nothing, until `max_fail` batches failed (the later ones are not
    /// started; the finished ones stay on the new release).
    pub async fn apply_all(&self) -> Outcome {
        let Some(rolling) = &self.plan.rolling else {
            return self.apply().await;
        };
        let total = rolling.batches.len();
        let mut ends: BTreeMap<String, HostEnd> = BTreeMap::new();
        let mut failure: Option<Failure> = None;
        let mut batches = Vec::new();
        let mut failed = 0;
        for (i, batch) in rolling.batches.iter().enumerate() {
            let stopped = self
                .stop
                .as_ref()
                .and_then(|s| s.borrow().clone())
                .map(|signal| format!("{signal} came before it"));
            let why_not = stopped.or_else(|| {
                (failed >= rolling.max_fail).then(|| {
                    format!(
                        "{failed} batch{} failed (max_fail = {})",
                        if failed == 1 { "" } else { "es" },
                        rolling.max_fail
                    )
                })
            });
            if let Some(why) = why_not {
                for h in batch {
                    ends.insert(
                        h.clone(),
                        HostEnd::NotStarted {
                            reason: format!("batch {} of {total} not started: {why}", i + 1),
                        },
                    );
                }
                batches.push(BatchEnd {
                    batch: i + 1,
                    hosts: batch.clone(),
                    result: "not_started".to_owned(),
                });
                continue;
            }
            (self.events)(Event::Batch {
                batch: i + 1,
                of: total,
                hosts: batch.clone(),
            });
            let sub = self.plan.subset(batch, i == 0);
            let part = Executor {
                plan: &sub,
                layout: self.layout,
                remote: self.remote,
                local: self.local,
                options: self.options.clone(),
                events: self.events,
                stop: self.stop.clone(),
            };
            let out = part.apply().await;
            ends.extend(out.hosts);
            let ok = out.failure.is_none();
            if let Some(f) = out.failure {
                failed += 1;
                failure.get_or_insert(f);
            }
            batches.push(BatchEnd {
                batch: i + 1,
                hosts: batch.clone(),
                result: if ok { "deployed" } else { "failed" }.to_owned(),
            });
        }
        let hosts = self
            .plan
            .hosts
            .iter()
            .filter_map(|h| ends.remove(&h.name).map(|e| (h.name.clone(), e)))
            .collect();
        Outcome {
            hosts,
            failure,
            batches,
        }
    }

    /// Runs the plan on every host at once (see [`Executor::apply_all`] for rolling plans).
    pub async fn apply(&self) -> Outcome {
        let plan = self.plan;
        let gate = Semaphore::new(plan.parallel.max(1));
        let mut ends: BTreeMap<String, HostEnd> = BTreeMap::new();

        // Connect to every host first: an unreachable host stops everything before any change.
        let connected = join_all(plan.hosts.iter().map(|h| {
            let gate = &gate;
            async move {
                let _permit = gate.acquire().await.expect("the semaphore is never closed");
                (h, self.remote.connect(&h.name).await)
            }
        }))
        .await;
        let mut failure: Option<Failure> = None;
        for (h, result) in connected {
            match result {
                Ok(()) => (self.events)(Event::Connected {
                    host: h.name.clone(),
                }),
                Err(e) => {
                    if failure.is_none() {
                        failure = Some(Failure {
                            host: Some(h.name.clone()),
                            step: None,
                            message: e.to_string(),
                            after_switch: false,
                        });
                    }
                    ends.insert(
                        h.name.clone(),
                        HostEnd::NotStarted {
                            reason: e.to_string(),
                        },
                    );
                }
            }
        }
        if let Some(f) = failure {
            (self.events)(Event::Failed {
                host: f.host.clone(),
                step: None,
                message: f.message.clone(),
            });
            return self.finish(ends, Some(f));
        }

        let switch_segment = plan
            .steps
            .iter()
            .find(|s| s.kind == StepKind::Phase && s.phase == Phase::Switch)
            .and_then(|s| s.script)
            .unwrap_or(usize::MAX);
        let prepare_id = self.phase_id(Phase::Prepare);
        let switch_id = self.phase_id(Phase::Switch);
        let upload_segment = self
            .phase_id(Phase::Upload)
            .and_then(|u| plan.step(u))
            .and_then(|s| s.script);
        let mut runs: BTreeMap<String, HostRun> = plan
            .hosts
            .iter()
            .map(|h| (h.name.clone(), HostRun::default()))
            .collect();

        // One session per host for the whole deploy: the script waits for a `go` line at each
        // sync point, so no host goes on before every host is ready.
        let mut inputs: BTreeMap<String, mpsc::UnboundedSender<Input>> = BTreeMap::new();
        let mut talks: BTreeMap<String, Talk> = BTreeMap::new();
        let mut sessions = Vec::new();
        for h in &plan.hosts {
            let (in_tx, in_rx) = mpsc::unbounded_channel();
            let (line_tx, line_rx) = mpsc::unbounded_channel();
            let (done_tx, done_rx) = oneshot::channel();
            inputs.insert(h.name.clone(), in_tx);
            talks.insert(
                h.name.clone(),
                Talk {
                    lines: line_rx,
                    done: Some(done_rx),
                    ended: None,
                },
            );
            let script = self.conversation(h);
            sessions.push(async move {
                let result = self.remote.converse(&h.name, &script, in_rx, line_tx).await;
                let _ = done_tx.send(result);
            });
        }

        let coordinator = async {
            let mut failure: Option<Failure> = None;
            let mut after_switch = false;
            for unit in self.units() {
                if let Some(reason) = self.stopped() {
                    failure = Some(Failure {
                        host: None,
                        step: None,
                        message: format!("interrupted by {reason}"),
                        after_switch,
                    });
                    (self.events)(Event::Failed {
                        host: None,
                        step: None,
                        message: format!("interrupted by {reason}"),
                    });
                    break;
                }
                match unit {
                    Unit::Local(id) => {
                        let step = plan.step(id).expect("a step of the plan");
                        after_switch |= step.phase >= Phase::Switch;
                        failure = self.run_local(id, after_switch).await;
                    }
                    Unit::Segment(k) => {
                        after_switch |= k >= switch_segment;
                        let targets: Vec<&HostPlan> = plan
                            .hosts
                            .iter()
                            .filter(|h| h.scripts.iter().any(|s| s.segment == k))
                            .collect();
                        if upload_segment == Some(k)
                            && failure.is_none()
                            && let Err(message) = self.gz_for(targets.iter().copied(), &runs)
                        {
                            (self.events)(Event::Failed {
                                host: None,
                                step: Some("upload".to_owned()),
                                message: message.clone(),
                            });
                            failure = Some(Failure {
                                host: None,
                                step: Some("upload".to_owned()),
                                message,
                                after_switch,
                            });
                        }
                        let limit = self.options.segment_timeout;
                        let mut queue = targets.iter();
                        let mut running = FuturesUnordered::new();
                        loop {
                            // After a failure or a stop, no host starts this segment any more.
                            while running.len() < plan.parallel.max(1)
                                && failure.is_none()
                                && self.stopped().is_none()
                            {
                                let Some(h) = queue.next() else { break };
                                let run = &runs[&h.name];
                                if let Some(input) = inputs.get(&h.name) {
                                    let _ = input.send(Input::Line("go".to_owned()));
                                    let _ = input.send(Input::Line(run.cleanup.join(" ")));
                                    let _ = input.send(Input::Line(if k == 0 {
                                        String::new()
                                    } else {
                                        self.records_line(run)
                                    }));
                                    if upload_segment == Some(k) && !run.artifact_present {
                                        let (line, file) = self.sending(run.zstd);
                                        let _ = input.send(Input::Line(line));
                                        let _ = input.send(Input::File(file));
                                    }
                                }
                                let talk = talks.remove(&h.name).expect("one talk a host");
                                running.push(async move { (*h, talk.segment(k, limit).await) });
                            }
                            let Some((h, (mut talk, end))) = running.next().await else {
                                break;
                            };
                            let result = match end {
                                SegmentEnd::Finished(text) => Ok(RunOutput {
                                    status: Some(0),
                                    stdout: text,
                                    stderr: String::new(),
                                }),
                                SegmentEnd::Ended(text) => {
                                    // The script ended: close its input, then hear how it ended.
                                    inputs.remove(&h.name);
                                    talk.end(text).await
                                }
                                SegmentEnd::TimedOut => {
                                    inputs.remove(&h.name);
                                    Err(TransportError::Timeout {
                                        host: h.name.clone(),
                                        after: limit,
                                    })
                                }
                            };
                            talks.insert(h.name.clone(), talk);
                            let run = runs.get_mut(&h.name).expect("every host has a run");
                            let f =
                                self.absorb(h, k, run, result, prepare_id, switch_id, after_switch);
                            if k == 0
                                && !run.locked
                                && let Some(f) = f.as_ref().or(failure.as_ref())
                            {
                                ends.insert(
                                    h.name.clone(),
                                    HostEnd::NotStarted {
                                        reason: f.message.clone(),
                                    },
                                );
                            }
                            if let Some(f) = f
                                && failure.is_none()
                            {
                                failure = Some(f);
                            }
                        }
                    }
                }
                if failure.is_none()
                    && let Unit::Segment(k) = unit
                    && let Some(reason) = self.stopped()
                    && plan.hosts.iter().any(|h| {
                        h.scripts.iter().any(|s| s.segment == k) && !runs[&h.name].reached(k)
                    })
                {
                    failure = Some(Failure {
                        host: None,
                        step: None,
                        message: format!("interrupted by {reason}"),
                        after_switch,
                    });
                }
                if let Some(f) = &failure {
                    (self.events)(Event::Failed {
                        host: f.host.clone(),
                        step: f.step.clone(),
                        message: f.message.clone(),
                    });
                    break;
                }
            }
            // Closing every input ends every script still waiting at a sync point.
            drop(inputs);
            failure
        };
        let (failure, _) = tokio::join!(coordinator, join_all(sessions));

        if failure.is_none() {
            for h in &plan.hosts {
                ends.insert(h.name.clone(), HostEnd::Deployed);
            }
            return self.finish(ends, None);
        }
        let failure = failure.expect("checked");
        self.recover(&runs, failure.after_switch, &mut ends).await;
        self.finish(ends, Some(failure))
    }

    /// Why the deploy was asked to stop, if it was.
    fn stopped(&self) -> Option<String> {
        self.stop.as_ref().and_then(|s| s.borrow().clone())
    }

    /// Runs local step `id` on this machine; its failure, if any.
    async fn run_local(&self, id: usize, after_switch: bool) -> Option<Failure> {
        let plan = self.plan;
        let step = plan.step(id).expect("a step of the plan");
        let script = format!(
            "set -eu\nexport SHIP_APP={} SHIP_STAGE={} SHIP_RELEASE={} SHIP_DEPLOY_TO={}\n{}\n",
            quote(&plan.app),
            quote(&plan.stage),
            quote(&plan.release),
            quote(&plan.deploy_to),
            step.command
        );
        let (status, message) = match self.local.run("local", &script, None).await {
            Ok(out) => (
                out.status.unwrap_or(-1),
                format!("{}\n{}", tail(&out.stdout, 10), tail(&out.stderr, 10)),
            ),
            Err(e) => (-1, e.to_string()),
        };
        (self.events)(Event::Step {
            host: None,
            id,
            name: step.name.clone(),
            status,
            output: message.trim().lines().map(str::to_owned).collect(),
        });
        (status != 0).then(|| Failure {
            host: None,
            step: Some(step.name.clone()),
            message: format!(
                "local step `{}` failed (exit {status}): {}",
                step.name,
                tail(message.trim(), 3)
            ),
            after_switch,
        })
    }

    fn phase_id(&self, phase: Phase) -> Option<usize> {
        self.plan
            .steps
            .iter()
            .find(|s| s.kind == StepKind::Phase && s.phase == phase)
            .map(|s| s.id)
    }

    fn finish(&self, mut ends: BTreeMap<String, HostEnd>, failure: Option<Failure>) -> Outcome {
        let hosts = self
            .plan
            .hosts
            .iter()
            .map(|h| {
                let end = ends.remove(&h.name).unwrap_or(HostEnd::NotStarted {
                    reason: "the deploy stopped before this host was reached".to_owned(),
                });
                (h.name.clone(), end)
            })
            .collect();
        Outcome {
            hosts,
            failure,
            batches: Vec::new(),
        }
    }

    /// Takes in one host's result for segment `k`; returns the failure it shows, if any.
    #[allow(clippy::too_many_arguments)]
    fn absorb(
        &self,
        h: &HostPlan,
        k: usize,
        run: &mut HostRun,
        result: Result<RunOutput, TransportError>,
        prepare_id: Option<usize>,
        switch_id: Option<usize>,
        after_switch: bool,
    ) -> Option<Failure> {
        let fail = |step: Option<String>, message: String| {
            Some(Failure {
                host: Some(h.name.clone()),
                step,
                message,
                after_switch,
            })
        };
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                // The session broke: whatever it was doing may or may not have happened.
                run.uncertain = true;
                if k == 0 {
                    run.locked = true; // it may hold the lock: release it when recovering
                }
                return fail(None, e.to_string());
            }
        };
        let parsed = parse_markers(&out.stdout);
        for id in &parsed.started {
            if Some(*id) == prepare_id {
                run.prepare_started = true;
            }
        }
        if let Some(s) = switch_id
            && parsed.ended.get(&s) == Some(&0)
        {
            run.switched = true;
        }
        for (id, status) in &parsed.ended {
            let name = self.plan.step(*id).map_or("?", |s| s.name.as_str());
            (self.events)(Event::Step {
                host: Some(h.name.clone()),
                id: *id,
                name: name.to_owned(),
                status: *status,
                output: parsed.output.get(id).cloned().unwrap_or_default(),
            });
        }

        if k == 0 {
            let lock_status = self
                .phase_id(Phase::Lock)
                .and_then(|id| parsed.ended.get(&id).copied());
            if lock_status == Some(LOCKED_STATUS) {
                return fail(
                    Some("lock".to_owned()),
                    tail(&out.stderr, 1).replace("cargo-ship: ", ""),
                );
            }
            if lock_status == Some(0) {
                run.locked = true;
                let probe = Probe::parse(&out.stdout);
                let mut state = self.layout.parse_state(
                    &self.plan.deploy_to,
                    probe.current.as_deref(),
                    &probe.listing,
                );
                match probe.records.as_deref().map(records::parse) {
                    Some(Err(e)) => {
                        return fail(
                            Some("lock".to_owned()),
                            format!(
                                "{}/.ship/releases.json is not valid JSON ({e}); fix or remove it",
                                self.plan.deploy_to
                            ),
                        );
                    }
                    Some(Ok(records)) => state.records = records,
                    None => {}
                }
                run.artifact_present = probe.artifact_present;
                run.zstd = probe.zstd;
                state.half_made = probe
                    .preparing
                    .filter(|d| Some(d) != state.live.as_ref() && state.record_of(d).is_none());
                run.new_dir = self.layout.new_dir(&state, &self.plan.release);
                run.cleanup = self
                    .layout
                    .cleanup(&state, &run.new_dir, self.plan.keep_releases)
                    .into_iter()
                    .filter(|d| check_release_id(d).is_ok())
                    .collect();
                run.state = state;
            }
        }

        if out.status == Some(0) {
            run.finished |= after_switch;
            run.segments_done.push(k);
            return None;
        }
        // The failed step: one that ended non-zero, or one that started and never ended.
        let failed = parsed
            .ended
            .iter()
            .find(|(_, rc)| **rc != 0)
            .map(|(id, rc)| (*id, Some(*rc)))
            .or_else(|| {
                parsed
                    .started
                    .iter()
                    .find(|id| !parsed.ended.contains_key(id))
                    .map(|id| (*id, None))
            });
        let detail = {
            let err = tail(&out.stderr, 3);
            if err.is_empty() {
                failed
                    .and_then(|(id, _)| parsed.output.get(&id))
                    .map(|l| l[l.len().saturating_sub(3)..].join("\n"))
                    .unwrap_or_default()
            } else {
                err
            }
        };
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
                    format!(
                        "step `{name}` failed ({how}){}{detail}",
                        if detail.is_empty() { "" } else { ": " }
                    ),
                )
            }
            None => {
                run.uncertain = true;
                fail(
                    None,
                    format!(
                        "the script ended with status {}{}{detail}",
                        out.status.map_or("unknown".to_owned(), |s| s.to_string()),
                        if detail.is_empty() { "" } else { ": " }
                    ),
                )
            }
        }
    }

    /// Puts every host that was touched back: before the switch, remove the new release and
    /// unlock; after it, switch back the hosts that switched (or may have).
    async fn recover(
        &self,
        runs: &BTreeMap<String, HostRun>,
        after_switch: bool,
        ends: &mut BTreeMap<String, HostEnd>,
    ) {
        let work: Vec<(&HostPlan, &HostRun, bool)> = self
            .plan
            .hosts
            .iter()
            .filter_map(|h| {
                let run = &runs[&h.name];
                run.locked.then(|| {
                    let revert = after_switch && (run.switched || run.uncertain || run.finished);
                    (h, run, revert)
                })
            })
            .collect();
        let results = join_all(work.iter().map(|(h, run, revert)| async move {
            let script = if *revert {
                self.revert_script(h, run)
            } else {
                self.abort_script(h, run)
            };
            let result = self.remote.run(&h.name, &script, None).await;
            (h, run, *revert, result)
        }))
        .await;
        for (h, run, revert, result) in results {
            let live = self.layout.revert_target(&run.state);
            let end = match result {
                Ok(out) if out.status == Some(0) => {
                    if revert {
                        HostEnd::Reverted { live }
                    } else {
                        HostEnd::Unchanged { live }
                    }
                }
                Ok(out) => HostEnd::Unknown {
                    reason: format!(
                        "putting it back failed (status {}): {}",
                        out.status.map_or("unknown".to_owned(), |s| s.to_string()),
                        tail(&out.stderr, 2)
                    ),
                },
                Err(e) => HostEnd::Unknown {
                    reason: format!("could not put it back: {e}"),
                },
            };
            (self.events)(Event::Recovered {
                host: h.name.clone(),
                end: end.clone(),
            });
            ends.insert(h.name.clone(), end);
        }
        for h in &self.plan.hosts {
            if !runs[&h.name].locked {
                ends.entry(h.name.clone()).or_insert(HostEnd::NotStarted {
                    reason: "the deploy stopped before it started here".to_owned(),
                });
            }
        }
    }

    /// Before the switch: remove the half-made release (restore the single layout's
    /// directory), release the lock.
    fn abort_script(&self, h: &HostPlan, run: &HostRun) -> String {
        let mut s = self.header(h);
        if run.prepare_started || run.uncertain {
            if self.layout.atomic() {
                s.push_str(
                    "if [ \"$(readlink \"$SHIP_DEPLOY_TO/current\" 2>/dev/null || true)\" != \"$SHIP_RELEASE_PATH\" ]; then\n  rm -rf \"$SHIP_RELEASE_PATH\"\nfi\n",
                );
            } else {
                match self.layout.revert_target(&run.state) {
                    Some(target) => {
                        s.push_str(&self.layout.activate(&self.cx(), &target));
                        s.push('\n');
                    }
                    None => s.push_str("rm -rf \"$SHIP_RELEASE_PATH\"\n"),
                }
            }
        }
        s.push_str(
            "rm -f \"$SHIP_DEPLOY_TO/.ship/preparing\"\nrm -rf \"$SHIP_DEPLOY_TO/.ship/lock\"\n",
        );
        s
    }

    /// After the switch: back to what was live, the new release recorded failed.
    fn revert_script(&self, h: &HostPlan, run: &HostRun) -> String {
        let mut s = self.header(h);
        let target = self.layout.revert_target(&run.state);
        match &target {
            Some(t) => {
                s.push_str(&self.layout.activate(&self.cx(), t));
                s.push('\n');
            }
            None if self.layout.atomic() => s.push_str("rm -f \"$SHIP_DEPLOY_TO/current\"\n"),
            None => s.push_str("rm -rf \"$SHIP_RELEASE_PATH\"\n"),
        }
        let records = self.keep(records::after_revert(
            &run.state.records,
            self.new_record(run),
            &run.cleanup,
            self.replaced(run),
        ));
        let back_to = run
            .state
            .records
            .iter()
            .rev()
            .find(|r| r.state == ReleaseState::Live)
            .map(|r| r.id.clone())
            .or_else(|| run.state.live.clone())
            .unwrap_or_else(|| "none".to_owned());
        s.push_str(&format!(
            "printf '%s\\n' {} > \"$SHIP_DEPLOY_TO/.ship/releases.json.tmp\"\n\
             mv -f \"$SHIP_DEPLOY_TO/.ship/releases.json.tmp\" \"$SHIP_DEPLOY_TO/.ship/releases.json\"\n\
             printf '%s rolled back to release %s\\n' {} {} >> \"$SHIP_DEPLOY_TO/revisions.log\"\n\
             rm -f \"$SHIP_DEPLOY_TO/.ship/preparing\"\n\
             rm -rf \"$SHIP_DEPLOY_TO/.ship/lock\"\n",
            quote(&records::to_json(&records)),
            quote(&self.options.deployer),
            quote(&back_to),
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_give_each_steps_status_and_output() {
        let p = parse_markers(
            "::ship::start 3 upload\nsending\n\n::ship::end 3 0\n::ship::start 4 prepare\nboom\n",
        );
        assert_eq!(p.started, vec![3, 4]);
        assert_eq!(p.ended.get(&3), Some(&0));
        assert_eq!(p.ended.get(&4), None);
        assert_eq!(p.output[&3], vec!["sending"]);
        assert_eq!(p.output[&4], vec!["boom"]);
    }
}
