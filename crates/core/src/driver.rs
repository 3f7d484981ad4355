//! The driver: runs the deploy [`Machine`] for real. It owns what the machine must not
//! touch: the async runtime's tasks and timers, the [`Transport`]s, the artifact's files,
//! the signals' watch and the nonce's randomness. It turns each [`Action`] into I/O and each
//! thing that happens into an [`Input`], and decides nothing itself.

use crate::layout::Layout;
use crate::machine::{Action, Event, Input, Machine, MachineOptions, Outcome};
use crate::plan::Plan;
use crate::protocol::{self, Nonce};
use crate::transport::{self, BoxFuture, Transport};
use futures::StreamExt;
use futures::future::{AbortHandle, Abortable};
use futures::stream::FuturesUnordered;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use tokio::sync::{mpsc, watch};

/// What a deploy needs besides the plan, set when it is applied.
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
    /// Relay the steps' output as it comes (`apply -v`), not when each step ends.
    pub live: bool,
    /// The app's environment file, when the plan writes one (see `Plan::env`).
    pub env: Option<String>,
    /// The presigned URL of the plan's `artifact_store` object, made at apply time: hosts
    /// with zstd that lack the artifact are sent it instead of the bytes (see
    /// [`crate::store`]).
    pub artifact_url: Option<crate::store::Presigned>,
}

/// Why and how to stop a deploy, as the signals' watch says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StopRequest {
    /// What asked: `SIGINT`, `SIGTERM`.
    pub reason: String,
    /// Stop now (a second signal): cut the steps in flight, give up on the hosts not put
    /// back within [`crate::machine::STOP_GRACE`]. Else the scripts in flight finish their
    /// segment first.
    pub now: bool,
}

/// A fresh nonce for one deploy (or one operation) from the system's randomness.
pub fn nonce() -> Nonce {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // No /dev/urandom: the clock and the process id, hashed, still differ per deploy.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let seed = format!("{now}-{}", std::process::id());
        let hex = crate::sha256_hex(seed.as_bytes());
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap_or(0);
        }
    }
    Nonce::from_bytes(&bytes)
}

/// Runs plans. `remote` reaches the hosts; `local` runs `local` steps on this machine.
pub struct Driver<'a> {
    /// The plan.
    pub plan: &'a Plan,
    /// Its layout.
    pub layout: &'a dyn Layout,
    /// The hosts' transport.
    pub remote: &'a dyn Transport,
    /// The transport of local steps.
    pub local: &'a dyn Transport,
    /// Apply-time values.
    pub options: ApplyOptions,
    /// Where events go.
    pub events: &'a (dyn Fn(Event) + Send + Sync),
    /// Set to stop: no host is sent another segment, and every host is put back as after a
    /// failure; the scripts in flight finish their segment first, unless the request says
    /// `now` (then they are cut).
    pub stop: Option<watch::Receiver<Option<StopRequest>>>,
}

/// Waits until `stop` asks for more than `seen` did (a stop, then a stop now).
async fn stopped(
    stop: &mut watch::Receiver<Option<StopRequest>>,
    seen: Option<bool>,
) -> Option<StopRequest> {
    loop {
        if let Some(request) = stop.borrow_and_update().clone()
            && seen.is_none_or(|now| request.now && !now)
        {
            return Some(request);
        }
        stop.changed().await.ok()?;
    }
}

impl Driver<'_> {
    /// Applies the plan (batch by batch when it is rolling). Never panics on a host's
    /// failure: every failure ends in an [`Outcome`] that says what each host was left in.
    pub async fn run(&self) -> Outcome {
        let machine = Machine::new(
            self.plan.clone(),
            self.layout,
            MachineOptions {
                deployer: self.options.deployer.clone(),
                started_at: self.options.started_at.clone(),
                segment_timeout: self.options.segment_timeout,
                nonce: nonce(),
                live: self.options.live,
                env: self.options.env.clone(),
            },
        );
        self.drive(machine).await
    }

    /// Drives `machine` until it is done.
    pub async fn drive(&self, mut machine: Machine<'_>) -> Outcome {
        let (tx, mut rx) = mpsc::unbounded_channel::<Input>();
        let (eof, mut eofs) = mpsc::unbounded_channel::<String>();
        let mut io = Io {
            driver: self,
            tx,
            eof,
            tasks: FuturesUnordered::new(),
            inputs: BTreeMap::new(),
            aborts: BTreeMap::new(),
            queue: VecDeque::from([Input::Start]),
            outcome: None,
            bundles: BTreeMap::new(),
            sums: BTreeMap::new(),
        };
        if !self.plan.delta && self.plan.artifact_store.is_none() {
            // Hosts that lack the artifact are sent it whole: its bytes are read and checked
            // (`artifact::fingerprint`, a third of a second per 100 MB) while they connect,
            // on another core; also when every host turns out to have it already (a
            // redeploy), which costs that core the same time and the deploy none.
            let early = io.sum(true);
            io.spawn(Box::pin(async move {
                let _ = early.await;
                None
            }));
        }
        let mut stop = self.stop.clone();
        // What the stop watch said so far: nothing, a stop (`false`), a stop now (`true`).
        let mut seen: Option<bool> = None;
        loop {
            while let Some(input) = io.queue.pop_front() {
                for action in machine.handle(input) {
                    io.perform(action);
                }
            }
            if let Some(outcome) = io.outcome.take() {
                return outcome;
            }
            let input = tokio::select! {
                // A session's lines and then its end come down `rx`, in that order (see
                // `Action::Open`); before the other sources, so that what hosts said is taken
                // in first.
                biased;
                Some(input) = rx.recv() => input,
                Some(host) = eofs.recv() => {
                    // Its script ended: close its input too, so that its session can end.
                    io.inputs.remove(&host);
                    continue;
                }
                Some(done) = io.tasks.next(), if !io.tasks.is_empty() => match done {
                    Ok(Some(input)) => input,
                    _ => continue,
                },
                Some(request) = async { stopped(stop.as_mut()?, seen).await }, if stop.is_some() => {
                    seen = Some(request.now);
                    if request.now {
                        stop = None;
                        Input::StopNow(request.reason)
                    } else {
                        Input::Stop(request.reason)
                    }
                }
            };
            io.queue.push_back(input);
        }
    }
}

/// The driver's I/O state during one run.
struct Io<'d, 'a> {
    driver: &'d Driver<'a>,
    tx: mpsc::UnboundedSender<Input>,
    /// Hosts whose standard output ended.
    eof: mpsc::UnboundedSender<String>,
    tasks: FuturesUnordered<Abortable<BoxFuture<'d, Option<Input>>>>,
    inputs: BTreeMap<String, mpsc::UnboundedSender<transport::Input>>,
    aborts: BTreeMap<String, AbortHandle>,
    queue: VecDeque<Input>,
    outcome: Option<Outcome>,
    /// The delta bundles, by the artifacts the hosts have: a file and its size, or `None`
    /// when it could not be made (those hosts are sent the whole artifact). Made once, on a
    /// thread of its own (see [`off_thread`]).
    bundles: BTreeMap<Vec<String>, Later<Made>>,
    /// The size and sha256 of the artifact's bytes a host is sent, by encoding (zstd or
    /// not): what its upload step checks them against; or why they could not be read. Read
    /// once, on a thread of its own, when a host first needs them.
    sums: BTreeMap<bool, Later<Sum>>,
}

/// A delta bundle's file and size, or why it could not be made.
type Made = Result<(PathBuf, u64), String>;

/// The size and sha256 of the bytes a host is sent, or why they could not be read.
type Sum = Result<(u64, String), String>;

/// The delta bundle for hosts that have the artifacts `have`, to make `artifact`: the file
/// kept from an earlier apply (the same artifact and the same artifacts had: the same bytes),
/// else made by `delta::bundle_into`, streamed into a file of this process's and renamed
/// (memory: one of the artifact's files at a time). An error: why it could not be made.
fn make_bundle(artifact: &std::path::Path, digest: &str, have: &[String]) -> Made {
    let cache = artifact.parent().unwrap_or(std::path::Path::new("."));
    let path = crate::cache::bundle(cache, digest, have);
    if let Ok(meta) = std::fs::metadata(&path)
        && meta.len() > 0
    {
        crate::cache::touch(&path);
        return Ok((path, meta.len()));
    }
    crate::cache::write_aside(&path, |to| {
        crate::delta::bundle_into(artifact, digest, cache, have, to)
            .map(|_| ())
            .map_err(std::io::Error::other)
    })
    .map_err(|e| e.to_string())?;
    let size = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
    Ok((path, size))
}

/// A result worked out once, off the driver's thread, that every host waiting for it gets.
type Later<T> = futures::future::Shared<BoxFuture<'static, T>>;

/// `work` on a thread of its own, started when first awaited: reading and hashing a
/// 500 MB artifact takes a second or more, during which the driver's one thread must go on
/// reading every other host's output (and a stop).
fn off_thread<T: Clone + Send + Sync + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
    failed: impl FnOnce() -> T + Send + 'static,
) -> Later<T> {
    use futures::FutureExt;
    let later: BoxFuture<'static, T> = Box::pin(async move {
        let (tx, rx) = futures::channel::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("ship-artifact".into())
            .spawn(move || {
                let _ = tx.send(work());
            });
        match spawned {
            Ok(_) => rx.await.unwrap_or_else(|_| failed()),
            Err(_) => failed(),
        }
    });
    later.shared()
}

impl<'d> Io<'d, '_> {
    fn spawn(&mut self, work: BoxFuture<'d, Option<Input>>) -> AbortHandle {
        let (handle, registration) = AbortHandle::new_pair();
        self.tasks.push(Abortable::new(work, registration));
        handle
    }

    /// Sends `host` the delta bundle for the artifacts it has (`delta::bundle`),
    /// made once per set of artifacts and kept beside the artifact
    /// (`<digest>.delta-<key>.tar.zst`, written aside and renamed, used again by a later
    /// apply); the whole `.tar.zst` when it cannot be made.
    fn send_bundle(&mut self, host: &str, mut have: Vec<String>) {
        have.sort();
        have.dedup();
        let artifact = self.driver.options.artifact.clone();
        let digest = self.driver.plan.artifact.digest.clone();
        let made = self
            .bundles
            .entry(have.clone())
            .or_insert_with(|| {
                off_thread(
                    move || make_bundle(&artifact, &digest, &have),
                    || Err("its thread ended".to_owned()),
                )
            })
            .clone();
        let whole = self.sum(true);
        let events = self.driver.events;
        let to = host.to_owned();
        self.later(host, async move {
            match made.await {
                Ok((path, size)) => Ok(vec![
                    transport::Input::Line(protocol::bundle_header(size)),
                    transport::Input::File(path),
                ]),
                Err(why) => {
                    events(Event::Notice {
                        host: to,
                        message: format!(
                            "the delta bundle could not be made ({why}): the whole artifact is sent"
                        ),
                    });
                    whole.await
                }
            }
        });
    }

    /// The size and sum of the artifact's bytes in encoding `zstd` (the .tar.gz when it is
    /// made), checked to unpack to the plan's digest: worked out when first awaited.
    fn sum(&mut self, zstd: bool) -> BoxFuture<'static, Result<Vec<transport::Input>, String>> {
        let zst = &self.driver.options.artifact;
        let path = if zstd {
            zst.clone()
        } else {
            crate::cache::gz(zst)
        };
        let digest = self.driver.plan.artifact.digest.clone();
        let sum = self
            .sums
            .entry(zstd)
            .or_insert_with(|| {
                let path = path.clone();
                off_thread(
                    move || {
                        crate::artifact::fingerprint(&path, &digest).map_err(|e| {
                            // Not the plan's any more: removed, so that the next plan
                            // packs it again instead of finding it kept.
                            if zstd && path.exists() && std::fs::remove_file(&path).is_ok() {
                                format!("{e} (removed from {})", path.display())
                            } else {
                                e.to_string()
                            }
                        })
                    },
                    || Err("the artifact could not be read".to_owned()),
                )
            })
            .clone();
        Box::pin(async move {
            let (size, sum) = sum.await?;
            Ok(vec![
                transport::Input::Line(protocol::artifact_header(zstd, size, &sum)),
                transport::Input::Exact(path, size),
            ])
        })
    }

    /// The whole artifact to `host`: `zst` or `gz`, its size and its bytes' sha256 on a
    /// line, then the bytes.
    fn send_artifact(&mut self, host: &str, zstd: bool) {
        let sum = self.sum(zstd);
        self.later(host, sum);
    }

    /// Sends `host` what `what` gives once it is ready (the host's script waits on its
    /// input meanwhile; nothing else is sent to it before the segment ends). An error
    /// (the artifact no longer unpacks to the plan's digest, or cannot be read) sends no
    /// byte: a notice says why, the machine is told ([`Input::NotSent`]: the host's failure
    /// names the cause, not its upload step's status), and the host's input is closed, so
    /// its upload step ends.
    fn later(
        &mut self,
        host: &str,
        what: impl std::future::Future<Output = Result<Vec<transport::Input>, String>> + Send + 'd,
    ) {
        // Weak: a host whose input is closed meanwhile (a stop, its end) is not kept open.
        let Some(input) = self.inputs.get(host).map(|i| i.downgrade()) else {
            return;
        };
        let eof = self.eof.clone();
        let tx = self.tx.clone();
        let events = self.driver.events;
        let host = host.to_owned();
        self.spawn(Box::pin(async move {
            match what.await {
                Ok(items) => {
                    if let Some(input) = input.upgrade() {
                        for item in items {
                            let _ = input.send(item);
                        }
                    }
                }
                Err(why) => {
                    if input.upgrade().is_some() {
                        events(Event::Notice {
                            host: host.clone(),
                            message: format!("the artifact was not sent: {why}"),
                        });
                        // Before its input closes: the machine has it when the host's
                        // segment ends (lines first, and its end only after the input).
                        let _ = tx.send(Input::NotSent {
                            host: host.clone(),
                            why,
                        });
                    }
                    let _ = eof.send(host);
                }
            }
            None
        }));
    }

    /// The presigned URL a host is sent instead of the artifact: only with an
    /// `artifact_store`, and only to a host with zstd (the store holds the `.tar.zst`).
    fn via_store(&self, zstd: bool) -> Option<&'d crate::store::Presigned> {
        let url = self.driver.options.artifact_url.as_ref();
        url.filter(|_| zstd && self.driver.plan.artifact_store.is_some())
    }

    fn send(&self, host: &str, item: transport::Input) {
        if let Some(input) = self.inputs.get(host) {
            let _ = input.send(item);
        }
    }

    fn perform(&mut self, action: Action) {
        let remote = self.driver.remote;
        match action {
            Action::Connect { host } => {
                self.spawn(Box::pin(async move {
                    let result = remote.connect(&host).await;
                    Some(Input::Connected { host, result })
                }));
            }
            Action::Open { host, script } => {
                let (in_tx, in_rx) = mpsc::unbounded_channel();
                self.inputs.insert(host.clone(), in_tx);
                let key = host.clone();
                let tx = self.tx.clone();
                let eof = self.eof.clone();
                let handle = self.spawn(Box::pin(async move {
                    let (lines, mut heard) = mpsc::unbounded_channel::<String>();
                    let forward = async {
                        while let Some(line) = heard.recv().await {
                            let _ = tx.send(Input::Line {
                                host: host.clone(),
                                line,
                            });
                        }
                        let _ = eof.send(host.clone());
                    };
                    let (result, ()) =
                        tokio::join!(remote.converse(&host, &script, in_rx, lines), forward);
                    // Its end goes after its lines, down the same channel. Returned as this
                    // task's result, it could overtake them: the poll that forwards the last
                    // lines can also finish the task, and the machine would take the end of a
                    // segment without its last steps (a failed step told as "the script
                    // ended with status 1", a state line lost).
                    let _ = tx.send(Input::Ended { host, result });
                    None
                }));
                self.aborts.insert(key, handle);
            }
            Action::Send { host, line } => self.send(&host, transport::Input::Line(line)),
            Action::SendArtifact { host, zstd } if self.via_store(zstd).is_some() => {
                let line = self.via_store(zstd).map(protocol::artifact_url_line);
                self.send(&host, transport::Input::Line(line.unwrap_or_default()));
            }
            Action::SendArtifact { host, zstd } => self.send_artifact(&host, zstd),
            Action::SendBundle { host, have } => self.send_bundle(&host, have),
            Action::Close { host } => {
                self.inputs.remove(&host);
            }
            Action::Kill { host } => {
                self.inputs.remove(&host);
                if let Some(handle) = self.aborts.remove(&host) {
                    handle.abort();
                }
            }
            Action::Arm { host, timer, after } => {
                self.spawn(Box::pin(async move {
                    tokio::time::sleep(after).await;
                    Some(Input::TimedOut { host, timer })
                }));
            }
            Action::MakeGz => {
                let digest = self.driver.plan.artifact.digest.clone();
                let zst = self.driver.options.artifact.clone();
                let made = off_thread(
                    move || {
                        let fingerprinted = || {
                            crate::artifact::gz_of(&zst)
                                .and_then(|(gz, _)| crate::artifact::fingerprint(&gz, &digest))
                        };
                        // A .tar.gz kept from before that is not the plan's any more
                        // (damaged) is made again, once.
                        fingerprinted()
                            .or_else(|_| {
                                let _ = std::fs::remove_file(crate::cache::gz(&zst));
                                fingerprinted()
                            })
                            .map_err(|e| {
                                format!("making the .tar.gz for the hosts without zstd: {e}")
                            })
                    },
                    || Err("making the .tar.gz for the hosts without zstd failed".to_owned()),
                );
                // The hosts without zstd are sent what was read while making it.
                self.sums.insert(false, made.clone());
                self.spawn(Box::pin(async move {
                    Some(Input::GzMade(made.await.map(|_| ())))
                }));
            }
            Action::RunLocal { id, script } => {
                let local = self.driver.local;
                let handle = self.spawn(Box::pin(async move {
                    let result = local.run("local", &script, None).await;
                    Some(Input::LocalDone { id, result })
                }));
                self.aborts.insert(crate::machine::LOCAL.to_owned(), handle);
            }
            Action::Recover { host, script, .. } => {
                self.spawn(Box::pin(async move {
                    let result = remote.run(&host, &script, None).await;
                    Some(Input::Recovered { host, result })
                }));
            }
            Action::Event(event) => (self.driver.events)(event),
            Action::Done(outcome) => self.outcome = Some(outcome),
        }
    }
}

/// The first part's result on each host, as [`two_steps`] gives it to its `second`.
pub type FirstParts = BTreeMap<String, Result<transport::RunOutput, transport::TransportError>>;

/// Runs `first` on every host (at most `parallel` connecting at once), then — once every
/// host has answered — the script `second` gives each host (none: the host stops there),
/// in the same session ([`protocol::then_eval`]): one session per host for a read under the
/// lock and the act on what every host said. `second` reads the first parts' state lines
/// with the nonce it is given. A session longer than `limit` twice over (the first part, then
/// the second; each user command in it is stopped on the host at `limit`) is cut. Returns how
/// each host's session ended.
pub async fn two_steps(
    transport: &dyn Transport,
    hosts: &[String],
    parallel: usize,
    limit: std::time::Duration,
    first: impl Fn(&str) -> String,
    second: impl FnOnce(&Nonce, &FirstParts) -> BTreeMap<String, String>,
) -> FirstParts {
    use crate::transport::RunOutput;
    let nonce = nonce();
    let gate = tokio::sync::Semaphore::new(parallel.max(1));
    let mut inputs = BTreeMap::new();
    let mut lines = BTreeMap::new();
    let mut ends = BTreeMap::new();
    let mut sessions = Vec::new();
    for h in hosts {
        let (end_tx, end_rx) = tokio::sync::oneshot::channel();
        ends.insert(h.clone(), end_rx);
        let (in_tx, in_rx) = mpsc::unbounded_channel::<transport::Input>();
        let (line_tx, line_rx) = mpsc::unbounded_channel::<String>();
        let _ = in_tx.send(transport::Input::Line(nonce.as_str().to_owned()));
        inputs.insert(h.clone(), in_tx);
        lines.insert(h.clone(), line_rx);
        let script = protocol::then_eval(&first(h));
        let gate = &gate;
        sessions.push(async move {
            let result = {
                let _permit = gate.acquire().await.expect("never closed");
                transport.connect(h).await
            };
            // Each part may take `limit`; a host that takes longer is cut.
            let result = match result {
                Ok(()) => {
                    tokio::time::timeout(limit * 2, transport.converse(h, &script, in_rx, line_tx))
                        .await
                        .unwrap_or_else(|_| {
                            Err(crate::transport::TransportError::Timeout {
                                host: h.clone(),
                                after: limit * 2,
                            })
                        })
                }
                Err(e) => Err(e),
            };
            let _ = end_tx.send(result.clone());
            (h.clone(), result)
        });
    }
    let coordinator = async {
        // Each host's first part, up to its ready line (or the end of its script).
        let firsts = futures::future::join_all(lines.into_iter().map(|(h, mut rx)| {
            let nonce = &nonce;
            async move {
                let mut text = String::new();
                while let Some(line) = rx.recv().await {
                    if protocol::parse(&line, nonce) == Some(protocol::Control::Ready) {
                        return (h, Some(text));
                    }
                    text.push_str(&line);
                    text.push('\n');
                }
                (h, None::<String>)
            }
        }))
        .await;
        let mut view = BTreeMap::new();
        for (h, text) in firsts {
            match text {
                Some(text) => {
                    view.insert(
                        h,
                        Ok(RunOutput {
                            status: Some(0),
                            stdout: text,
                            stderr: String::new(),
                        }),
                    );
                }
                None => {
                    // Its script is over (locked by another, unreachable, …): let its session
                    // end, and take how it ended, with what it said.
                    inputs.remove(&h);
                    let ended = match ends.remove(&h) {
                        Some(end) => end.await.ok(),
                        None => None,
                    };
                    let ended = ended.unwrap_or(Ok(RunOutput {
                        status: None,
                        stdout: String::new(),
                        stderr: String::new(),
                    }));
                    view.insert(h, ended);
                }
            }
        }
        // Decide the second part from what every host said, and send it.
        let scripts = second(&nonce, &view);
        for (h, input) in inputs {
            if let Some(script) = scripts.get(&h) {
                let _ = input.send(transport::Input::Line((script.len() + 1).to_string()));
                let _ = input.send(transport::Input::Line(script.clone()));
            }
        }
    };
    let (_, sessions) = tokio::join!(coordinator, futures::future::join_all(sessions));
    sessions.into_iter().collect()
}
