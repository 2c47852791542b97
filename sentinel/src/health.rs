//! The running agent's health as one snapshot (`AgentHealth`): what `sentinel status`
//! prints, what the Prometheus exposition serves and what the fleet heartbeat carries. A leaf
//! room: every room that owns counters implements `HealthPart` for them (collect, pipeline,
//! detect, feed, explain), the agent registers the parts with one `HealthSource`, and
//! `HealthSource::snapshot` reads them all without stopping anything. Field names are a wire
//! format (status `--json`, heartbeats): fields are added, never renamed (docs/metrics.md).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Version of the snapshot's shape; raised only if a field ever changes meaning.
pub const SCHEMA: u32 = 1;

/// Rates are taken over about this long.
const RATE_WINDOW: Duration = Duration::from_secs(60);
/// Losses within this long make the agent degraded (`Verdict`).
pub const LOSS_WINDOW: Duration = Duration::from_secs(300);
/// Samples are kept at most this often (snapshots may be asked for more often).
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// The whole snapshot. Every field has a default so that an older or newer reader parses it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentHealth {
    /// `SCHEMA` of the writer.
    pub schema: u32,
    /// The agent's version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// Host name as reported in anomalies.
    pub host: String,
    pub pid: u32,
    /// Wall-clock start of the agent and time of this snapshot (Unix ns).
    pub started_ns: i64,
    pub time_ns: i64,
    pub uptime_secs: f64,
    /// `uname -r`.
    pub kernel_release: String,
    /// SHA-256 (hex) of the configuration file's settings as TOML (before command-line flags),
    /// updated at each successful reload: equal hashes, equal files' settings.
    pub config_hash: String,
    pub hooks: Hooks,
    pub events: Events,
    pub pipeline: Pipeline,
    pub anomalies: Anomalies,
    /// The detection engine (absent with `--no-detect`).
    pub detect: Option<Detect>,
    /// The push client (absent when not pushing).
    pub push: Option<Push>,
    /// The explainer (absent without `--llm`).
    pub llm: Option<Llm>,
    /// Anomalies each edge consumer (store, push, serve, llm) skipped because it fell behind.
    pub edge_lagged: BTreeMap<String, u64>,
}

/// The kernel hooks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Hooks {
    pub attached: Vec<String>,
    pub failed: Vec<HookFailure>,
    /// Captured syscalls this kernel does not have (not failures).
    pub unavailable: Vec<String>,
    /// Where the syscall hooks read arguments: "registers" or "stash".
    pub syscall_args: String,
    /// Event header fields left unset because the kernel's BTF lacks them.
    pub missing_fields: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HookFailure {
    pub hook: String,
    pub reason: String,
}

/// Events from the kernel to the analysis stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Events {
    /// Received from the ring buffer since start, all kinds.
    pub total: u64,
    /// Received per kind (names as in docs/events.md; kinds never seen are absent).
    pub per_kind: BTreeMap<String, u64>,
    /// Events per second over about the last minute (since start when younger).
    pub rate_per_sec: f64,
    pub rate_per_kind: BTreeMap<String, f64>,
    /// Records the kernel could not send because the ring buffer was full, per kind.
    pub kernel_lost: BTreeMap<String, u64>,
    /// Decoded but dropped because the analysis stage was full, per kind.
    pub channel_dropped: BTreeMap<String, u64>,
    /// Kernel losses plus channel drops since start.
    pub lost_total: u64,
    /// Of those, lost within the last `LOSS_WINDOW` (five minutes).
    pub lost_recent: u64,
    pub decode_errors: u64,
    /// Syscall exits seen without their entry (not losses: calls begun before attaching).
    pub unpaired_exits: u64,
    /// Ring buffer size in bytes.
    pub ring_buffer_bytes: u64,
    /// Share of the ring buffer that was waiting at the last drain (0-1).
    pub ring_buffer_fill: f64,
    /// Highest share seen waiting at one drain since start (0-1).
    pub ring_buffer_peak_fill: f64,
    /// Wall-clock time of the last event analysed (Unix ns).
    pub last_event_ns: Option<i64>,
}

/// The stages after the collector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pipeline {
    pub analyzed: u64,
    /// Received but not yet analysed (waiting in the channel).
    pub queued: u64,
    /// Events not shown on the feed because the sinks were behind.
    pub feed_dropped_events: u64,
    /// How far behind its events the analysis stage was at its last batch (0 when idle), in
    /// seconds.
    pub lag_secs: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Anomalies {
    pub total: u64,
    /// Per level: low, medium, high, critical.
    pub per_level: BTreeMap<String, u64>,
    /// Anomalies carrying a factor of each detection id.
    pub per_detection: BTreeMap<String, u64>,
    pub last_ns: Option<i64>,
}

/// The detection engine's state, published about once a second by the analysis thread.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Detect {
    /// Processes in the process table.
    pub processes: u64,
    pub windows_learned: u64,
    /// Windows not learned because they scored high.
    pub windows_rejected: u64,
    /// Files whose writer is remembered (provenance).
    pub provenance_files: u64,
    /// Per baseline family ("principal", "lineage", "exe"): profiles per calibration state.
    pub baselines: BTreeMap<String, BaselineStates>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BaselineStates {
    pub learning: u64,
    pub calibrating: u64,
    pub calibrated: u64,
}

/// The push client to a Sentinel server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Push {
    pub batches_sent: u64,
    pub items_sent: u64,
    /// Attempts that failed and will be retried (network, 5xx, auth).
    pub failures: u64,
    /// Failed attempts since the last accepted batch: > 0 means pushing is failing now.
    pub consecutive_failures: u64,
    /// Batches the server refused for good (kept under spool/rejected).
    pub rejected: u64,
    pub last_success_ns: Option<i64>,
    /// Items waiting in memory to be written to the spool.
    pub queue: u64,
    /// Batches on disk not yet accepted, and their size.
    pub spool_files: u64,
    pub spool_bytes: u64,
    /// Server verdicts applied.
    pub verdicts: u64,
    /// `[push] spool_max_bytes` (0: no cap), and the oldest batches (and their items)
    /// dropped to stay under it.
    pub spool_max_bytes: u64,
    pub spool_dropped_batches: u64,
    pub spool_dropped_items: u64,
}

/// The explainer (language model calls).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Llm {
    pub submitted: u64,
    pub explained: u64,
    pub from_llm: u64,
    pub local_fallbacks: u64,
    /// Requests sent to the model (with retries).
    pub requests: u64,
    pub failures: u64,
    /// Not queued because the queue was full.
    pub dropped_full: u64,
    /// Explained locally because the hourly budget was spent.
    pub budget_exhausted: u64,
    pub calls_per_hour: u64,
    /// Calls the budget allows right now.
    pub budget_left: u64,
}

/// Overall verdict of a snapshot, as `sentinel status` exits with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Healthy,
    Degraded,
}

impl AgentHealth {
    /// Why the agent is degraded, one plain sentence each; empty when healthy. Degraded is:
    /// a hook failed to attach, events were lost in the last five minutes, or pushing is
    /// failing now (the last attempt failed and was not followed by an accepted batch).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for f in &self.hooks.failed {
            out.push(format!("hook {} not attached: {}", f.hook, f.reason));
        }
        if self.events.lost_recent > 0 {
            out.push(format!(
                "{} events lost in the last {} minutes (ring buffer or channel full)",
                self.events.lost_recent,
                LOSS_WINDOW.as_secs() / 60
            ));
        }
        if let Some(p) = &self.push
            && p.consecutive_failures > 0
        {
            out.push(format!(
                "pushing is failing: {} attempts since the last accepted batch, {} batches spooled",
                p.consecutive_failures, p.spool_files
            ));
        }
        out
    }

    pub fn verdict(&self) -> Verdict {
        if self.problems().is_empty() {
            Verdict::Healthy
        } else {
            Verdict::Degraded
        }
    }
}

/// A room's counters, read into the snapshot. `fill` must be quick and must not block on
/// the hot path (atomics, a short lock, a map read).
pub trait HealthPart: Send + Sync {
    fn fill(&self, health: &mut AgentHealth);
}

/// What does not change while the agent runs.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    pub host: String,
    pub config_hash: String,
}

/// Totals kept to compute rates and recent losses.
struct Sample {
    at: Instant,
    per_kind: BTreeMap<String, u64>,
    total: u64,
    lost: u64,
}

/// The live source of snapshots: registered parts plus the history rates need. Cheap to
/// share (`Arc<HealthSource>`); `snapshot` may be called from any thread at any time.
pub struct HealthSource {
    identity: Identity,
    /// The configuration's hash: `identity.config_hash` until a reload changes it.
    config_hash: Mutex<String>,
    started: Instant,
    started_ns: i64,
    kernel_release: String,
    parts: Mutex<Vec<Arc<dyn HealthPart>>>,
    samples: Mutex<VecDeque<Sample>>,
}

impl HealthSource {
    pub fn new(identity: Identity) -> Arc<HealthSource> {
        // Up since the process started, not since the probes were loaded.
        let age = process_age().unwrap_or_default();
        let now = Instant::now();
        let started = now.checked_sub(age).unwrap_or(now);
        Arc::new(HealthSource {
            config_hash: Mutex::new(identity.config_hash.clone()),
            identity,
            started,
            started_ns: now_ns()
                .saturating_sub(i64::try_from(now.duration_since(started).as_nanos()).unwrap_or(0)),
            kernel_release: kernel_release(),
            parts: Mutex::new(Vec::new()),
            samples: Mutex::new(VecDeque::new()),
        })
    }

    /// A reloaded configuration's hash (SIGHUP).
    pub fn set_config_hash(&self, hash: String) {
        if let Ok(mut h) = self.config_hash.lock() {
            *h = hash;
        }
    }

    /// Adds a room's counters (parts are read in the order added).
    pub fn add(&self, part: Arc<dyn HealthPart>) {
        if let Ok(mut p) = self.parts.lock() {
            p.push(part);
        }
    }

    /// Reads every part now. Also keeps a sample for rates (at most one a second), so calling
    /// it regularly (the agent does every few seconds) keeps rates and recent losses fresh.
    pub fn snapshot(&self) -> AgentHealth {
        let now = Instant::now();
        let mut h = AgentHealth {
            schema: SCHEMA,
            version: env!("CARGO_PKG_VERSION").to_string(),
            host: self.identity.host.clone(),
            pid: std::process::id(),
            started_ns: self.started_ns,
            time_ns: now_ns(),
            uptime_secs: now.duration_since(self.started).as_secs_f64(),
            kernel_release: self.kernel_release.clone(),
            config_hash: self
                .config_hash
                .lock()
                .map(|h| h.clone())
                .unwrap_or_default(),
            ..Default::default()
        };
        let parts: Vec<Arc<dyn HealthPart>> = match self.parts.lock() {
            Ok(p) => p.clone(),
            Err(_) => Vec::new(),
        };
        for p in parts {
            p.fill(&mut h);
        }
        self.derive(&mut h, now);
        h
    }

    /// Totals, queue depth, rates and recent losses from what the parts filled in.
    fn derive(&self, h: &mut AgentHealth, now: Instant) {
        let e = &mut h.events;
        e.total = e.per_kind.values().sum();
        let dropped: u64 = e.channel_dropped.values().sum();
        e.lost_total = e.kernel_lost.values().sum::<u64>() + dropped;
        h.pipeline.queued = e
            .total
            .saturating_sub(dropped)
            .saturating_sub(h.pipeline.analyzed);
        let Ok(mut samples) = self.samples.lock() else {
            return;
        };
        // The agent's start is the first sample: nothing was received or lost before it.
        if samples.is_empty() {
            samples.push_back(Sample {
                at: self.started,
                per_kind: BTreeMap::new(),
                total: 0,
                lost: 0,
            });
        }
        let rate_base = samples
            .iter()
            .find(|s| now.duration_since(s.at) <= RATE_WINDOW)
            .or(samples.back());
        if let Some(base) = rate_base {
            let secs = now.duration_since(base.at).as_secs_f64();
            if secs > 0.0 {
                e.rate_per_sec = e.total.saturating_sub(base.total) as f64 / secs;
                e.rate_per_kind = e
                    .per_kind
                    .iter()
                    .map(|(k, n)| {
                        let was = base.per_kind.get(k).copied().unwrap_or(0);
                        (k.clone(), n.saturating_sub(was) as f64 / secs)
                    })
                    .collect();
            }
        }
        let loss_base = samples
            .iter()
            .find(|s| now.duration_since(s.at) <= LOSS_WINDOW)
            .or(samples.back());
        e.lost_recent = loss_base.map_or(e.lost_total, |b| e.lost_total.saturating_sub(b.lost));
        let due = samples
            .back()
            .is_none_or(|s| now.duration_since(s.at) >= SAMPLE_EVERY);
        if due {
            samples.push_back(Sample {
                at: now,
                per_kind: e.per_kind.clone(),
                total: e.total,
                lost: e.lost_total,
            });
        }
        // Keep one sample older than the longest window, as the base for it.
        while samples.len() > 2 && now.duration_since(samples[1].at) > LOSS_WINDOW {
            samples.pop_front();
        }
    }
}

/// How long this process has run (from its start time in /proc, in clock ticks since boot).
fn process_age() -> Option<Duration> {
    let stat = procfs::process::Process::myself().ok()?.stat().ok()?;
    let ticks = procfs::ticks_per_second().max(1);
    let since_boot = {
        use procfs::Current as _;
        procfs::Uptime::current().ok()?.uptime
    };
    let started = stat.starttime as f64 / ticks as f64;
    Some(Duration::from_secs_f64((since_boot - started).max(0.0)))
}

/// The running kernel's release (`uname -r`), or "unknown".
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    /// A part whose counters the test moves.
    #[derive(Default)]
    struct Fake {
        execs: AtomicU64,
        lost: AtomicU64,
        analyzed: AtomicU64,
    }

    impl HealthPart for Fake {
        fn fill(&self, h: &mut AgentHealth) {
            h.events
                .per_kind
                .insert("exec".into(), self.execs.load(Relaxed));
            h.events.per_kind.insert("open".into(), 10);
            let lost = self.lost.load(Relaxed);
            if lost > 0 {
                h.events.kernel_lost.insert("open".into(), lost);
            }
            h.pipeline.analyzed = self.analyzed.load(Relaxed);
        }
    }

    fn source() -> (Arc<HealthSource>, Arc<Fake>) {
        let s = HealthSource::new(Identity {
            host: "h1".into(),
            config_hash: "abc".into(),
        });
        let f = Arc::new(Fake::default());
        s.add(f.clone());
        (s, f)
    }

    #[test]
    fn a_snapshot_reads_the_live_counters_and_derives_totals() {
        let (s, f) = source();
        f.execs.store(5, Relaxed);
        f.analyzed.store(12, Relaxed);
        let h = s.snapshot();
        assert_eq!(h.schema, SCHEMA);
        assert_eq!(h.host, "h1");
        assert_eq!(h.config_hash, "abc");
        assert_eq!(h.pid, std::process::id());
        assert!(!h.kernel_release.is_empty());
        // Up since the process started (this test process), and the start is in the past.
        assert!(h.started_ns <= h.time_ns);
        assert!(h.uptime_secs >= 0.0);
        let age = process_age().expect("our own /proc entry");
        assert!(
            (h.uptime_secs - age.as_secs_f64()).abs() < 1.0,
            "{} vs {age:?}",
            h.uptime_secs
        );
        assert_eq!(h.events.total, 15);
        assert_eq!(h.pipeline.queued, 3, "received 15, analysed 12");
        f.execs.store(9, Relaxed);
        assert_eq!(s.snapshot().events.per_kind["exec"], 9, "nothing cached");
        assert_eq!(h.verdict(), Verdict::Healthy);
        assert!(h.problems().is_empty());
        s.set_config_hash("def".into());
        assert_eq!(s.snapshot().config_hash, "def", "a reload shows");
    }

    #[test]
    fn rates_are_per_second_since_the_base_sample() {
        let (s, f) = source();
        // A base sample 2 s ago with 100 execs; 300 now: 100 per second.
        {
            let mut samples = s.samples.lock().unwrap();
            samples.push_back(Sample {
                at: Instant::now() - Duration::from_secs(2),
                per_kind: [("exec".to_string(), 100), ("open".to_string(), 10)].into(),
                total: 110,
                lost: 0,
            });
        }
        f.execs.store(300, Relaxed);
        let h = s.snapshot();
        let r = h.events.rate_per_kind["exec"];
        assert!((90.0..=101.0).contains(&r), "{r}");
        assert!((90.0..=101.0).contains(&h.events.rate_per_sec));
        assert_eq!(h.events.rate_per_kind["open"], 0.0, "open did not move");
    }

    #[test]
    fn losses_degrade_only_while_recent() {
        let (s, f) = source();
        f.lost.store(7, Relaxed);
        let h = s.snapshot();
        assert_eq!(h.events.lost_total, 7);
        assert_eq!(h.events.lost_recent, 7);
        assert_eq!(h.verdict(), Verdict::Degraded);
        assert!(
            h.problems()[0].contains("7 events lost"),
            "{:?}",
            h.problems()
        );
        // The same 7 losses, last seen more than five minutes ago: history, not a problem.
        {
            let mut samples = s.samples.lock().unwrap();
            samples.clear();
            samples.push_back(Sample {
                at: Instant::now() - LOSS_WINDOW - Duration::from_secs(5),
                per_kind: BTreeMap::new(),
                total: 0,
                lost: 0,
            });
            samples.push_back(Sample {
                at: Instant::now() - LOSS_WINDOW + Duration::from_secs(5),
                per_kind: BTreeMap::new(),
                total: 0,
                lost: 7,
            });
        }
        let h = s.snapshot();
        assert_eq!(h.events.lost_total, 7);
        assert_eq!(h.events.lost_recent, 0);
        assert_eq!(h.verdict(), Verdict::Healthy);
    }

    #[test]
    fn failed_hooks_and_failing_pushes_degrade() {
        let mut h = AgentHealth::default();
        h.hooks.failed.push(HookFailure {
            hook: "openat".into(),
            reason: "no tracepoint".into(),
        });
        h.push = Some(Push {
            consecutive_failures: 3,
            spool_files: 2,
            ..Default::default()
        });
        let p = h.problems();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("openat"));
        assert!(p[1].contains("pushing is failing"));
        h.push.as_mut().unwrap().consecutive_failures = 0;
        h.hooks.failed.clear();
        assert_eq!(h.verdict(), Verdict::Healthy);
    }

    #[test]
    fn samples_stay_bounded() {
        let (s, _f) = source();
        {
            let mut samples = s.samples.lock().unwrap();
            for i in 0..1000u64 {
                samples.push_back(Sample {
                    at: Instant::now() - Duration::from_secs(2000 - i),
                    per_kind: BTreeMap::new(),
                    total: 0,
                    lost: 0,
                });
            }
        }
        s.snapshot();
        let n = s.samples.lock().unwrap().len();
        assert!(n <= 302, "{n} samples kept");
    }

    #[test]
    fn the_wire_shape_round_trips_and_tolerates_unknown_and_missing_fields() {
        let (s, f) = source();
        f.execs.store(3, Relaxed);
        let mut h = s.snapshot();
        h.detect = Some(Detect {
            processes: 4,
            baselines: [(
                "principal".to_string(),
                BaselineStates {
                    learning: 1,
                    calibrating: 2,
                    calibrated: 3,
                },
            )]
            .into(),
            ..Default::default()
        });
        let text = serde_json::to_string(&h).unwrap();
        let back: AgentHealth = serde_json::from_str(&text).unwrap();
        // Floats may differ in their last bit through JSON: compare what is not a float.
        assert_eq!(back.detect, h.detect);
        assert_eq!(back.events.per_kind, h.events.per_kind);
        assert_eq!(
            (&back.version, back.pid, back.started_ns),
            (&h.version, h.pid, h.started_ns)
        );
        assert!((back.uptime_secs - h.uptime_secs).abs() < 1e-9);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        for key in [
            "version",
            "uptime_secs",
            "kernel_release",
            "hooks",
            "events",
            "pipeline",
            "anomalies",
            "config_hash",
        ] {
            assert!(v.get(key).is_some(), "{key} missing from {text}");
        }
        let older: AgentHealth =
            serde_json::from_str(r#"{"version":"0.0.9","future_field":1}"#).unwrap();
        assert_eq!(older.version, "0.0.9");
        assert_eq!(older.events.total, 0);
    }
}
