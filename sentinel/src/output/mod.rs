//! Outputs for SIEMs (`[[output]]`): records of the feed, chosen by type and level, written
//! to JSON-lines files (file.rs) or sent as RFC 5424 syslog (syslog.rs). Off the hot path:
//! each output has its own bounded queue and thread; a full queue drops the new record and
//! counts it, the pipeline never waits. Failures are counted, logged with back-off (not once
//! per record) and retried, reconnecting. On SIGHUP the set is rebuilt from the new file,
//! which also reopens every file (logrotate's rename-then-HUP works).

pub mod config;
pub mod file;
pub mod record;
pub mod syslog;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use config::{OutputConfig, OutputKind, RecordType};
pub use record::{Brief, Prepared};
use record::{record_level, record_type};

use crate::feed::Record;

/// One output's counters, for the summary lines, `sentinel status` and metrics. They live
/// as long as the agent: a reload that keeps an output's name and kind keeps its counters.
#[derive(Debug)]
pub struct OutputStats {
    pub name: String,
    pub kind: OutputKind,
    /// Records written (file) or sent (syslog).
    pub written: AtomicU64,
    /// Records dropped: the queue was full, or the output gave up at shutdown while its
    /// destination was failing.
    pub dropped: AtomicU64,
    /// Failed writes, sends and connects (each retry counts).
    pub errors: AtomicU64,
    /// Files rotated (file outputs).
    pub rotations: AtomicU64,
    /// Records in the queue now (out of the entry's `queue`).
    pub queued: AtomicU64,
}

/// A copy of one output's counters.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct OutputCounters {
    pub name: String,
    pub kind: &'static str,
    pub written: u64,
    pub dropped: u64,
    pub errors: u64,
    pub rotations: u64,
    pub queued: u64,
}

impl OutputStats {
    fn new(name: String, kind: OutputKind) -> OutputStats {
        OutputStats {
            name,
            kind,
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            rotations: AtomicU64::new(0),
            queued: AtomicU64::new(0),
        }
    }

    pub fn snapshot(&self) -> OutputCounters {
        OutputCounters {
            name: self.name.clone(),
            kind: self.kind.as_str(),
            written: self.written.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            errors: self.errors.load(Relaxed),
            rotations: self.rotations.load(Relaxed),
            queued: self.queued.load(Relaxed),
        }
    }
}

/// A running output: its queue and the way to know its thread ended.
struct Worker {
    config: OutputConfig,
    tx: SyncSender<Arc<Prepared>>,
    stats: Arc<OutputStats>,
    /// Disconnected when the thread has ended.
    done: Mutex<Option<Receiver<()>>>,
}

/// The outputs in force at one moment (a reload makes a new set). A writer holds one for a
/// batch of records rather than taking the lock and a reference for each.
#[derive(Default)]
pub struct Set {
    workers: Vec<Worker>,
    /// Set when this set is replaced or closed: a failing output stops retrying, counts what
    /// it holds as dropped and ends.
    closing: Arc<AtomicBool>,
}

impl Set {
    /// Hands a record to every output that takes it; never waits.
    pub fn send(&self, rec: &Record) {
        let (ty, level) = (record_type(rec), record_level(rec));
        let mut takers = self
            .workers
            .iter()
            .filter(|w| w.config.wants(ty, level))
            .peekable();
        if takers.peek().is_none() {
            return;
        }
        let structured = self.workers.iter().any(|w| {
            w.config.kind == OutputKind::Syslog
                && w.config.syslog_format() == config::SyslogFormat::Structured
                && w.config.wants(ty, level)
        });
        let item = Arc::new(Prepared::new(rec, structured));
        for w in takers {
            // Counted before the thread can take it, so that its decrement never comes first.
            w.stats.queued.fetch_add(1, Relaxed);
            match w.tx.try_send(item.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    w.stats.queued.fetch_sub(1, Relaxed);
                    w.stats.dropped.fetch_add(1, Relaxed);
                }
            }
        }
    }
}

/// The configured outputs of a running agent.
pub struct Outputs {
    current: RwLock<Arc<Set>>,
    /// Counters of every output this agent has run, by name.
    known: Mutex<Vec<Arc<OutputStats>>>,
    host: String,
}

/// How long the end of a run waits for outputs to write what they hold.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a reopened output waits for its predecessor to finish.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(10);

impl Outputs {
    /// Checks the file outputs' places (directory present, not writable by others) and
    /// starts every output. `host` is the syslog HOSTNAME.
    pub fn start(configs: &[OutputConfig], host: &str) -> Result<Arc<Outputs>, String> {
        let outputs = Arc::new(Outputs {
            current: RwLock::new(Arc::new(Set::default())),
            known: Mutex::new(Vec::new()),
            host: host.to_string(),
        });
        outputs.replace(configs)?;
        Ok(outputs)
    }

    /// Checks what `start` and `replace` check, without starting anything.
    pub fn preflight(configs: &[OutputConfig]) -> Result<(), String> {
        config::validate(configs)?;
        for c in configs {
            if let (OutputKind::File, Some(p)) = (c.kind, &c.path) {
                file::preflight(p)?;
            }
        }
        Ok(())
    }

    /// Replaces the running outputs with `configs` (a reload): each new output starts once
    /// the old one of the same name has written its queue, so files are reopened, not
    /// written by two threads. On error the running outputs stay.
    pub fn replace(&self, configs: &[OutputConfig]) -> Result<(), String> {
        Outputs::preflight(configs)?;
        let old = self.current.read().map(|g| g.clone()).unwrap_or_default();
        let mut set = Set::default();
        for (i, c) in configs.iter().enumerate() {
            let name = c.name_at(i);
            let stats = self.stats_for(&name, c.kind);
            let prev = old
                .workers
                .iter()
                .find(|w| w.stats.name == name)
                .and_then(|w| w.done.lock().ok().and_then(|mut d| d.take()));
            let sink = match c.kind {
                OutputKind::File => {
                    Sink::File(file::RotatingFile::new(file::FileSettings::from_config(c)))
                }
                OutputKind::Syslog => Sink::Syslog(syslog::SyslogSink::new(c, &self.host)),
            };
            let (tx, rx) = std::sync::mpsc::sync_channel(c.queue);
            let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
            let worker = Run {
                sink,
                rx,
                stats: stats.clone(),
                closing: set.closing.clone(),
                backoff: Backoff::default(),
            };
            std::thread::Builder::new()
                .name(format!("sentinel-out-{i}"))
                .spawn(move || {
                    if let Some(p) = prev {
                        let _ = p.recv_timeout(HANDOVER_TIMEOUT);
                    }
                    worker.run();
                    drop(done_tx);
                })
                .map_err(|e| format!("starting output {name}: {e}"))?;
            set.workers.push(Worker {
                config: c.clone(),
                tx,
                stats,
                done: Mutex::new(Some(done_rx)),
            });
        }
        old.closing.store(true, Relaxed);
        if let Ok(mut g) = self.current.write() {
            *g = Arc::new(set);
        }
        Ok(())
    }

    fn stats_for(&self, name: &str, kind: OutputKind) -> Arc<OutputStats> {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = known.iter().find(|s| s.name == name && s.kind == kind) {
            return s.clone();
        }
        known.retain(|s| s.name != name);
        let s = Arc::new(OutputStats::new(name.to_string(), kind));
        known.push(s.clone());
        s
    }

    /// The outputs in force now.
    pub fn current(&self) -> Arc<Set> {
        self.current.read().map(|g| g.clone()).unwrap_or_default()
    }

    /// Whether some output takes records of this type (at some level).
    pub fn wants(&self, ty: RecordType) -> bool {
        self.current()
            .workers
            .iter()
            .any(|w| w.config.records.contains(&ty))
    }

    /// Hands a record to every output that takes it; never waits.
    pub fn send(&self, rec: &Record) {
        self.current().send(rec)
    }

    /// The counters of the running outputs.
    pub fn counters(&self) -> Vec<OutputCounters> {
        self.current()
            .workers
            .iter()
            .map(|w| w.stats.snapshot())
            .collect()
    }

    /// The live counters of the running outputs (for a health snapshot to read at will).
    pub fn stats(&self) -> Vec<Arc<OutputStats>> {
        self.current()
            .workers
            .iter()
            .map(|w| w.stats.clone())
            .collect()
    }

    /// Ends every output: each writes what its queue holds (a failing one gives up at once)
    /// within a few seconds. Returns the final counters.
    pub async fn close(&self) -> Vec<OutputCounters> {
        let set = match self.current.write() {
            Ok(mut g) => std::mem::take(&mut *g),
            Err(_) => return Vec::new(),
        };
        let counters: Vec<Arc<OutputStats>> = set.workers.iter().map(|w| w.stats.clone()).collect();
        let done: Vec<Receiver<()>> = set
            .workers
            .iter()
            .filter_map(|w| w.done.lock().ok().and_then(|mut d| d.take()))
            .collect();
        set.closing.store(true, Relaxed);
        // Dropping the set closes the queues: each thread drains its queue and ends.
        drop(set);
        let _ = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + CLOSE_TIMEOUT;
            for d in done {
                let _ = d.recv_timeout(deadline.saturating_duration_since(Instant::now()));
            }
        })
        .await;
        counters.iter().map(|s| s.snapshot()).collect()
    }
}

impl crate::health::HealthPart for Outputs {
    fn fill(&self, h: &mut crate::health::AgentHealth) {
        h.outputs = self
            .counters()
            .into_iter()
            .map(|c| crate::health::Output {
                name: c.name,
                kind: c.kind.into(),
                written: c.written,
                dropped: c.dropped,
                errors: c.errors,
                rotations: c.rotations,
                queued: c.queued,
            })
            .collect();
    }
}

enum Sink {
    File(file::RotatingFile),
    Syslog(syslog::SyslogSink),
}

impl Sink {
    fn write(&mut self, rec: &Prepared) -> std::io::Result<()> {
        match self {
            Sink::File(f) => f.write_line(&rec.json),
            Sink::Syslog(s) => s.send(rec),
        }
    }

    fn tick(&mut self) -> std::io::Result<()> {
        match self {
            Sink::File(f) => f.tick(),
            Sink::Syslog(_) => Ok(()),
        }
    }

    fn rotations(&self) -> u64 {
        match self {
            Sink::File(f) => f.rotations,
            Sink::Syslog(_) => 0,
        }
    }

    fn close(&mut self) {
        if let Sink::File(f) = self {
            f.close();
        }
    }
}

/// Retry delays after failures, and how often a failing output is logged.
#[derive(Default)]
struct Backoff {
    delay: Duration,
    failures: u64,
    last_log: Option<Instant>,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(30);
    const LOG_EVERY: Duration = Duration::from_secs(60);

    /// Counts a failure; logs the first and then one a minute. Returns the wait before the
    /// next try.
    fn fail(&mut self, name: &str, e: &std::io::Error) -> Duration {
        self.failures += 1;
        self.delay = if self.delay.is_zero() {
            Backoff::FIRST
        } else {
            (self.delay * 2).min(Backoff::MAX)
        };
        if self
            .last_log
            .is_none_or(|t| t.elapsed() >= Backoff::LOG_EVERY)
        {
            self.last_log = Some(Instant::now());
            tracing::warn!(
                target: "sentinel::output",
                "output {name}: {e} ({} failures so far; retrying in {:?}, records wait in its queue)",
                self.failures,
                self.delay
            );
        }
        self.delay
    }

    fn ok(&mut self, name: &str) {
        if self.failures > 0 {
            tracing::info!(
                target: "sentinel::output",
                "output {name}: working again after {} failures",
                self.failures
            );
        }
        *self = Backoff::default();
    }
}

/// One output's thread.
struct Run {
    sink: Sink,
    rx: Receiver<Arc<Prepared>>,
    stats: Arc<OutputStats>,
    closing: Arc<AtomicBool>,
    backoff: Backoff,
}

/// How often an idle output looks at its file (interval fsync, age rotation).
const TICK: Duration = Duration::from_millis(500);

impl Run {
    fn run(mut self) {
        loop {
            match self.rx.recv_timeout(TICK) {
                Ok(rec) => {
                    let _ = self
                        .stats
                        .queued
                        .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
                    if !self.deliver(&rec) {
                        // Given up (closing while failing): what is queued is lost.
                        let rest = 1 + self.rx.try_iter().count() as u64;
                        self.stats.dropped.fetch_add(rest, Relaxed);
                        self.stats.queued.store(0, Relaxed);
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(e) = self.sink.tick() {
                        self.stats.errors.fetch_add(1, Relaxed);
                        self.backoff.fail(&self.stats.name, &e);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.stats.rotations.store(self.sink.rotations(), Relaxed);
        }
        self.sink.close();
        self.stats.rotations.store(self.sink.rotations(), Relaxed);
    }

    /// Writes one record, retrying with back-off; false when it gave up (closing).
    fn deliver(&mut self, rec: &Prepared) -> bool {
        loop {
            match self.sink.write(rec) {
                Ok(()) => {
                    self.stats.written.fetch_add(1, Relaxed);
                    self.backoff.ok(&self.stats.name);
                    return true;
                }
                // Too big for a datagram: retrying cannot help; this record is lost.
                Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                    self.stats.errors.fetch_add(1, Relaxed);
                    self.stats.dropped.fetch_add(1, Relaxed);
                    tracing::warn!(
                        target: "sentinel::output",
                        "output {}: a {} record of {} bytes is too big to send: {e}",
                        self.stats.name,
                        rec.ty.as_str(),
                        rec.json.len()
                    );
                    return true;
                }
                Err(e) => {
                    self.stats.errors.fetch_add(1, Relaxed);
                    let wait = self.backoff.fail(&self.stats.name, &e);
                    if !self.pause(wait) {
                        return false;
                    }
                }
            }
        }
    }

    /// Sleeps `d`, waking early to give up when the output is closing.
    fn pause(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        loop {
            if self.closing.load(Relaxed) {
                return false;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

#[cfg(test)]
mod tests;
