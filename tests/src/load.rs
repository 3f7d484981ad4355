//! A steady HTTP load for zero-downtime measurements: `GET /` at a fixed rate, spread round
//! robin over several servers, one new HTTP/1.1 connection per request (so a server that
//! stops accepting, even for a moment, is seen), every answer recorded with the time it was
//! due. Latency is counted from when a request was due, not from when a thread was free to
//! send it, so a stall is not hidden (no coordinated omission).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// What one request got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A 200, with its body.
    Ok(String),
    /// Another status line.
    Status(String),
    /// No connection (refused, timed out).
    Connect(String),
    /// Connected, then no complete answer (reset, timed out, cut short).
    Read(String),
}

/// One request.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When it was due, from the start of the load.
    pub due: Duration,
    /// From due to the end of the answer.
    pub latency: Duration,
    /// The server it went to.
    pub target: SocketAddr,
    /// What it got.
    pub answer: Answer,
}

/// A load running in the background until [`Load::stop`].
pub struct Load {
    start: Instant,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    ticker: Option<std::thread::JoinHandle<()>>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

fn get(target: SocketAddr) -> Answer {
    let mut s = match std::net::TcpStream::connect_timeout(&target, Duration::from_secs(3)) {
        Ok(s) => s,
        Err(e) => return Answer::Connect(e.to_string()),
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(15)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    if let Err(e) = write!(
        s,
        "GET / HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
    ) {
        return Answer::Read(format!("write: {e}"));
    }
    let mut raw = Vec::new();
    if let Err(e) = s.read_to_end(&mut raw) {
        return Answer::Read(e.to_string());
    }
    let text = String::from_utf8_lossy(&raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Answer::Read(format!("cut short: {text:?}"));
    };
    let status = head.lines().next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 200") && !status.starts_with("HTTP/1.0 200") {
        return Answer::Status(status.to_owned());
    }
    // A body shorter than its Content-Length was cut.
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    match length {
        Some(n) if body.len() < n => Answer::Read(format!("body cut at {} of {n}", body.len())),
        _ => Answer::Ok(body.trim().to_owned()),
    }
}

impl Load {
    /// Starts `rate` requests a second, spread over `targets` in turn.
    pub fn start(targets: Vec<SocketAddr>, rate: u32) -> Load {
        assert!(!targets.is_empty() && rate > 0);
        let start = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<(Duration, SocketAddr)>();
        let rx = Arc::new(Mutex::new(rx));
        // Enough threads that a stalled server (15 s read limit) does not delay the others.
        let workers = (0..(rate as usize * 2).clamp(16, 400))
            .map(|_| {
                let rx = Arc::clone(&rx);
                let samples = Arc::clone(&samples);
                std::thread::spawn(move || {
                    loop {
                        let job = rx.lock().expect("the queue").recv();
                        let Ok((due, target)) = job else { break };
                        let answer = get(target);
                        let latency = start.elapsed().saturating_sub(due);
                        samples.lock().expect("the samples").push(Sample {
                            due,
                            latency,
                            target,
                            answer,
                        });
                    }
                })
            })
            .collect();
        let ticker = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let every = Duration::from_secs(1) / rate;
                let mut n: u32 = 0;
                while !stop.load(Ordering::SeqCst) {
                    let due = every * n;
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        std::thread::sleep(wait);
                    }
                    if tx.send((due, targets[n as usize % targets.len()])).is_err() {
                        break;
                    }
                    n += 1;
                }
            })
        };
        Load {
            start,
            stop,
            samples,
            ticker: Some(ticker),
            workers,
        }
    }

    /// Time since the load started: mark the moments to cut the record at.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Stops sending, waits for every request in flight, and returns them all by due time.
    pub fn stop(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        let mut all = std::mem::take(&mut *self.samples.lock().expect("the samples"));
        all.sort_by_key(|s| s.due);
        all
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The counts of one window of the record.
#[derive(Clone, Debug, Default)]
pub struct Window {
    /// Its name.
    pub name: String,
    /// Its length.
    pub seconds: f64,
    /// Requests due in it.
    pub requests: usize,
    /// Answered 200.
    pub ok: usize,
    /// Another status.
    pub bad_status: usize,
    /// No connection.
    pub connect_failed: usize,
    /// Connected, no complete answer.
    pub read_failed: usize,
    /// The 99th percentile latency, in milliseconds.
    pub p99_ms: f64,
    /// The slowest, in milliseconds.
    pub max_ms: f64,
    /// How many 200s each body got, in order of first appearance.
    pub bodies: Vec<(String, usize)>,
    /// The first few failures, for the message.
    pub examples: Vec<String>,
}

impl Window {
    /// Requests that did not get a 200.
    pub fn failed(&self) -> usize {
        self.bad_status + self.connect_failed + self.read_failed
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bodies: Vec<String> = self
            .bodies
            .iter()
            .map(|(b, n)| format!("{b:?} x{n}"))
            .collect();
        write!(
            f,
            "{:<28} {:>6.1}s {:>6} req {:>5} failed (status {}, connect {}, read {}) p99 {:>7.1} ms max {:>7.1} ms  {}",
            self.name,
            self.seconds,
            self.requests,
            self.failed(),
            self.bad_status,
            self.connect_failed,
            self.read_failed,
            self.p99_ms,
            self.max_ms,
            bodies.join(", ")
        )
    }
}

/// Counts the samples due in `[from, to)`.
pub fn window(samples: &[Sample], name: &str, from: Duration, to: Duration) -> Window {
    let mut w = Window {
        name: name.to_owned(),
        seconds: to.saturating_sub(from).as_secs_f64(),
        ..Window::default()
    };
    let mut latencies = Vec::new();
    for s in samples.iter().filter(|s| s.due >= from && s.due < to) {
        w.requests += 1;
        latencies.push(s.latency.as_secs_f64() * 1000.0);
        match &s.answer {
            Answer::Ok(body) => {
                w.ok += 1;
                match w.bodies.iter_mut().find(|(b, _)| b == body) {
                    Some((_, n)) => *n += 1,
                    None => w.bodies.push((body.clone(), 1)),
                }
            }
            Answer::Status(_) => w.bad_status += 1,
            Answer::Connect(_) => w.connect_failed += 1,
            Answer::Read(_) => w.read_failed += 1,
        }
        if !matches!(s.answer, Answer::Ok(_)) && w.examples.len() < 5 {
            w.examples.push(format!(
                "{:.3}s {}: {:?}",
                s.due.as_secs_f64(),
                s.target,
                s.answer
            ));
        }
    }
    latencies.sort_by(f64::total_cmp);
    if !latencies.is_empty() {
        let i = ((latencies.len() as f64) * 0.99).ceil() as usize;
        w.p99_ms = latencies[i.clamp(1, latencies.len()) - 1];
        w.max_ms = latencies[latencies.len() - 1];
    }
    w
}

/// The due time of the last 200 whose body is not `body`, from `from` on: when the switch
/// to `body` was complete (`from` itself if none).
pub fn last_other(samples: &[Sample], body: &str, from: Duration) -> Duration {
    samples
        .iter()
        .filter(|s| s.due >= from)
        .filter(|s| matches!(&s.answer, Answer::Ok(b) if b != body))
        .map(|s| s.due)
        .max()
        .unwrap_or(from)
}
