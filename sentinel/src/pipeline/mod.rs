//! The stages between the collector and the sinks: the analysis stage (process table,
//! fingerprints, detections) on its own thread, a bounded channel to the sinks with drop
//! counters, and a broadcast of anomalies at the edge for consumers that may lag (store, LLM,
//! push, dashboard).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use crate::event::Event;
use crate::event::handoff;
use crate::model::Anomaly;

mod feed;

use feed::runs;
pub use feed::{FeedItem, FeedRx, FeedTx, feed};

/// A record from a side source (live audit records, for the agent) that the analysis stage
/// holds until the kernel events of the same moment have been analysed.
pub trait SideRecord: Send + 'static {
    /// Wall-clock time of the record (ns).
    fn time_ns(&self) -> i64;
}

/// The side record of analyzers that have no side source.
pub enum NoSide {}

impl SideRecord for NoSide {
    fn time_ns(&self) -> i64 {
        match *self {}
    }
}

/// What turns events into anomalies. The detection engine implements it (in `detect`, with
/// live audit records as its side records); tests use fakes.
pub trait Analyzer: Send + 'static {
    /// Records of the side source joined with the events (`Inputs::side`).
    type Side: SideRecord;
    fn observe(&mut self, ev: &Event) -> Vec<Anomaly>;
    /// Fills in what the analysis knows about an event before it is observed and forwarded
    /// (the engine places paths named relative to a directory descriptor).
    fn place(&mut self, _ev: &mut Event) {}
    /// Called about once a second with the wall-clock time, for window roll-over.
    fn tick(&mut self, now_ns: i64) -> Vec<Anomaly>;
    /// Called once at the end: close the open window.
    fn finish(&mut self) -> Vec<Anomaly>;
    /// A side record (a live audit record with `sentinel run --audit`), to be joined with the
    /// kernel events of the same process.
    fn observe_side(&mut self, _record: &Self::Side) -> Vec<Anomaly> {
        Vec::new()
    }
    /// Events lost before analysis (kernel or channel) since the last call; called about
    /// once a second while losses grow.
    fn blind(&mut self, _lost: u64, _now_ns: i64) -> Vec<Anomaly> {
        Vec::new()
    }
}

/// Reads the running total of events lost before analysis (kernel ring buffer full, channel
/// to the analysis stage full).
pub type LossGauge = Box<dyn Fn() -> u64 + Send>;

/// No analysis: events only.
pub struct Passthrough;

impl Analyzer for Passthrough {
    type Side = NoSide;
    fn observe(&mut self, _: &Event) -> Vec<Anomaly> {
        Vec::new()
    }
    fn tick(&mut self, _: i64) -> Vec<Anomaly> {
        Vec::new()
    }
    fn finish(&mut self) -> Vec<Anomaly> {
        Vec::new()
    }
}

/// Counters of the stages after the collector.
#[derive(Default)]
pub struct PipelineStats {
    pub analyzed: AtomicU64,
    pub anomalies: AtomicU64,
    /// Events not shown because the sinks were behind (anomalies are never dropped here).
    pub feed_dropped_events: AtomicU64,
    /// Anomalies per level (`Level as usize`) and per detection id of their factors (a fixed
    /// set: the detections' ids), for the agent's health.
    by_level: [AtomicU64; 4],
    by_detection: Mutex<BTreeMap<String, u64>>,
    /// Wall-clock time of the last event analysed and of the last anomaly (ns, 0: none).
    last_event_ns: AtomicI64,
    last_anomaly_ns: AtomicI64,
    /// How far behind its first event the stage was at its last batch (ns, 0 when idle).
    lag_ns: AtomicI64,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct PipelineSnapshot {
    pub analyzed: u64,
    pub anomalies: u64,
    pub feed_dropped_events: u64,
}

impl PipelineStats {
    /// Counts one anomaly sent on (all of them pass here).
    fn count_anomaly(&self, a: &Anomaly) {
        self.anomalies.fetch_add(1, Relaxed);
        self.by_level[a.level as usize].fetch_add(1, Relaxed);
        self.last_anomaly_ns.store(now_ns(), Relaxed);
        if let Ok(mut m) = self.by_detection.lock() {
            let mut seen: Vec<&str> = a.factors.iter().map(|f| f.detection.as_str()).collect();
            seen.sort_unstable();
            seen.dedup();
            for d in seen {
                *m.entry(d.to_string()).or_default() += 1;
            }
        }
    }

    pub fn snapshot(&self) -> PipelineSnapshot {
        PipelineSnapshot {
            analyzed: self.analyzed.load(Relaxed),
            anomalies: self.anomalies.load(Relaxed),
            feed_dropped_events: self.feed_dropped_events.load(Relaxed),
        }
    }
}

fn now_ns() -> i64 {
    crate::store::now_ns()
}

impl crate::health::HealthPart for PipelineStats {
    fn fill(&self, h: &mut crate::health::AgentHealth) {
        use crate::model::Level;
        h.pipeline.analyzed = self.analyzed.load(Relaxed);
        h.pipeline.feed_dropped_events = self.feed_dropped_events.load(Relaxed);
        h.pipeline.lag_secs = self.lag_ns.load(Relaxed).max(0) as f64 / 1e9;
        let when = |a: &AtomicI64| Some(a.load(Relaxed)).filter(|t| *t != 0);
        h.events.last_event_ns = when(&self.last_event_ns);
        h.anomalies.total = self.anomalies.load(Relaxed);
        h.anomalies.last_ns = when(&self.last_anomaly_ns);
        h.anomalies.per_level = [Level::Low, Level::Medium, Level::High, Level::Critical]
            .into_iter()
            .map(|l| {
                (
                    l.as_str().to_string(),
                    self.by_level[l as usize].load(Relaxed),
                )
            })
            .collect();
        h.anomalies.per_detection = self
            .by_detection
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
    }
}

/// Holds side records until the kernel events of the same moment have been analysed.
/// Live audit records reach us through auditd's log or the kernel's multicast socket, often before
/// the ring buffer's exec and fork events of the process they name; joined at once, they would
/// find no process chain. A record is released when the events seen have passed its time, or
/// after `max_hold` when the event stream is quiet or far behind. Audit stamps come from the
/// kernel's coarse clock (up to a tick behind) cut to whole milliseconds: hence the margin.
struct SideHold<S> {
    held: std::collections::VecDeque<(Instant, S)>,
    /// Latest event time analysed (wall-clock ns).
    watermark: i64,
    max_hold: Duration,
}

impl<S: SideRecord> SideHold<S> {
    const MARGIN_NS: i64 = 20_000_000;
    /// Beyond this many held records the oldest are joined at once (memory bound).
    const CAP: usize = 4096;

    fn new(max_hold: Duration) -> SideHold<S> {
        SideHold {
            held: std::collections::VecDeque::new(),
            watermark: i64::MIN,
            max_hold,
        }
    }

    fn saw_event(&mut self, time_ns: i64) {
        self.watermark = self.watermark.max(time_ns);
    }

    fn hold(&mut self, fact: S, now: Instant) {
        self.held.push_back((now, fact));
    }

    /// Records ready to join, oldest first.
    fn ready(&mut self, now: Instant) -> Vec<S> {
        let mut out = Vec::new();
        while let Some((at, fact)) = self.held.front() {
            let due = self.held.len() > Self::CAP
                || fact.time_ns().saturating_add(Self::MARGIN_NS) <= self.watermark
                || now.duration_since(*at) >= self.max_hold;
            if !due {
                break;
            }
            if let Some((_, f)) = self.held.pop_front() {
                out.push(f);
            }
        }
        out
    }

    fn drain(&mut self) -> Vec<S> {
        self.held.drain(..).map(|(_, f)| f).collect()
    }
}

/// Longest wait for events before the stage looks at its clock, its changes and (the second)
/// its side records again.
const IDLE_WAIT: Duration = Duration::from_millis(50);
const IDLE_WAIT_SIDE: Duration = Duration::from_millis(10);

/// Wakes the analysis thread when its channel has events.
struct Unpark(std::thread::Thread);

impl std::task::Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// A change to the analyzer made on its own thread between two batches (a configuration
/// reload): the analyzer's state, such as the process table, stays.
pub type Control<A> = Box<dyn FnOnce(&mut A) + Send>;

/// What the analysis stage reads besides events: side records (live audit), the collector's
/// loss total (for blind spots) and changes to apply (reloads).
pub struct Inputs<A: Analyzer> {
    pub side: Option<mpsc::Receiver<A::Side>>,
    pub losses: Option<LossGauge>,
    pub control: Option<std::sync::mpsc::Receiver<Control<A>>>,
}

impl<A: Analyzer> Default for Inputs<A> {
    fn default() -> Self {
        Inputs {
            side: None,
            losses: None,
            control: None,
        }
    }
}

/// Runs `analyzer` on its own thread over `events` until the channel closes. Events go on to
/// `feed` when `forward_events` (dropped and counted if the sinks are behind); anomalies always
/// do (the stage waits for room, and the collector's bounded channel absorbs the pause).
pub fn spawn_analysis<A: Analyzer>(
    mut analyzer: A,
    mut events: handoff::Receiver,
    inputs: Inputs<A>,
    feed: FeedTx,
    forward_events: bool,
    stats: Arc<PipelineStats>,
) -> std::thread::JoinHandle<A> {
    let Inputs {
        side: mut audit,
        losses,
        control,
    } = inputs;
    std::thread::Builder::new()
        .name("sentinel-analyze".into())
        .spawn(move || {
            let send_anomalies = |list: Vec<Anomaly>, stats: &PipelineStats| {
                for a in list {
                    stats.count_anomaly(&a);
                    // Err only when the sinks are gone (shutdown): nothing left to tell.
                    let _ = feed.anomaly(a);
                }
            };
            // A batch's records for the sinks, in order, sent together at its end: sent one
            // by one as they were made, each woke the writer (a thread switch and a write
            // per event when the writer keeps up).
            let send_batch = |items: &mut Vec<FeedItem>, stats: &PipelineStats| {
                for item in items.drain(..) {
                    match item {
                        FeedItem::Events(run) => {
                            let dropped = feed.try_events(run) as u64;
                            if dropped > 0 {
                                stats.feed_dropped_events.fetch_add(dropped, Relaxed);
                            }
                        }
                        FeedItem::Anomaly(a) => {
                            stats.count_anomaly(&a);
                            let _ = feed.send_anomaly(a);
                        }
                    }
                }
            };
            let mut out: Vec<FeedItem> = Vec::new();
            // Anomalies found in the batch, each after the number of its events before it.
            let mut found_at: Vec<(usize, Vec<Anomaly>)> = Vec::new();
            // Waiting for events parks this thread until the collector sends the next one
            // (its channel wakes us through this waker) or `IDLE_WAIT` passes; a fixed sleep
            // between polls woke the thread 200 times a second, busy or not.
            let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
            let mut cx = std::task::Context::from_waker(&waker);
            let mut last_tick = Instant::now();
            let mut lost_seen = 0u64;
            let mut held = SideHold::new(Duration::from_millis(500));
            loop {
                // A chunk of events (up to the drain's 1,024) between looks at the clock and the
                // side channel. Polled once, never awaited: this thread also has to tick.
                let (batch, closed) = match events.poll_recv(&mut cx) {
                    std::task::Poll::Ready(Some(chunk)) => (Some(chunk), false),
                    std::task::Poll::Ready(None) => (None, true),
                    std::task::Poll::Pending => (None, false),
                };
                let mut n = 0;
                if let Some(mut batch) = batch {
                    n = batch.len();
                    // How far behind the stage runs: its first event's age, once per batch.
                    if let (Some(first), Some(last)) = (batch.first(), batch.last()) {
                        stats
                            .lag_ns
                            .store(now_ns().saturating_sub(first.time_ns), Relaxed);
                        stats.last_event_ns.store(last.time_ns, Relaxed);
                    }
                    for (i, ev) in batch.iter_mut().enumerate() {
                        held.saw_event(ev.time_ns);
                        analyzer.place(ev);
                        let found = analyzer.observe(ev);
                        if !found.is_empty() {
                            found_at.push((i + 1, found));
                        }
                    }
                    runs(batch, &mut found_at, forward_events, &mut out);
                } else {
                    stats.lag_ns.store(0, Relaxed);
                }
                send_batch(&mut out, &stats);
                stats.analyzed.fetch_add(n as u64, Relaxed);
                if closed {
                    break;
                }
                if let Some(rx) = control.as_ref() {
                    while let Ok(change) = rx.try_recv() {
                        change(&mut analyzer);
                    }
                }
                if n == 0 {
                    // Idle: wait for the next event, but keep ticking and looking at the side
                    // channel (held audit records are due within a fraction of a second).
                    std::thread::park_timeout(if audit.is_some() {
                        IDLE_WAIT_SIDE
                    } else {
                        IDLE_WAIT
                    });
                }
                if let Some(rx) = audit.as_mut() {
                    while let Ok(fact) = rx.try_recv() {
                        held.hold(fact, Instant::now());
                    }
                    for fact in held.ready(Instant::now()) {
                        send_anomalies(analyzer.observe_side(&fact), &stats);
                    }
                }
                if last_tick.elapsed() >= Duration::from_secs(1) {
                    last_tick = Instant::now();
                    send_anomalies(analyzer.tick(now_ns()), &stats);
                    if let Some(total) = losses.as_ref().map(|g| g()) {
                        let new = total.saturating_sub(lost_seen);
                        lost_seen = lost_seen.max(total);
                        if new > 0 {
                            send_anomalies(analyzer.blind(new, now_ns()), &stats);
                        }
                    }
                }
            }
            // The events are all in: whatever the side source holds can join now.
            if let Some(rx) = audit.as_mut() {
                while let Ok(fact) = rx.try_recv() {
                    held.hold(fact, Instant::now());
                }
            }
            for fact in held.drain() {
                send_anomalies(analyzer.observe_side(&fact), &stats);
            }
            send_anomalies(analyzer.finish(), &stats);
            analyzer
        })
        .expect("spawning a thread only fails when the system is out of resources")
}

/// The edge: anomalies for consumers that may lag (they see `Lagged(n)` and count it).
pub fn edge(capacity: usize) -> broadcast::Sender<Arc<Anomaly>> {
    broadcast::channel(capacity).0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Level, Principal};

    struct EveryThird(u64);

    fn anomaly(id: u64) -> Anomaly {
        Anomaly {
            id: id.to_string(),
            host: "h".into(),
            time_ns: 0,
            principal: Principal {
                uid: 1,
                user: None,
                session: None,
            },
            chain: vec![],
            score: 50,
            level: Level::High,
            factors: vec![],
            evidence: vec![],
            fingerprint: String::new(),
            explanation: None,
        }
    }

    impl Analyzer for EveryThird {
        type Side = NoSide;
        fn observe(&mut self, ev: &Event) -> Vec<Anomaly> {
            self.0 += 1;
            if ev.id.is_multiple_of(3) {
                vec![anomaly(ev.id)]
            } else {
                vec![]
            }
        }
        fn tick(&mut self, _: i64) -> Vec<Anomaly> {
            vec![]
        }
        fn finish(&mut self) -> Vec<Anomaly> {
            vec![anomaly(9999)]
        }
    }

    fn event(id: u64) -> Event {
        let line = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/events/exec.json"
        ))
        .expect("fixture");
        let mut e: Event = serde_json::from_str(&line).expect("fixture parses");
        e.id = id;
        e
    }

    /// What `runs` makes of a batch of six events with anomalies found after the second
    /// (two) and the sixth, as ids: events positive, anomalies negative, runs in brackets.
    fn runs_of(forward: bool) -> Vec<Vec<i64>> {
        let (tx, mut rx) = handoff::channel(100, 8);
        let mut buf: Vec<Event> = (1..=6).map(event).collect();
        tx.send(&mut buf);
        let cx = &mut std::task::Context::from_waker(std::task::Waker::noop());
        let std::task::Poll::Ready(Some(batch)) = rx.poll_recv(cx) else {
            panic!("a chunk waits")
        };
        let mut found_at = vec![(2, vec![anomaly(1), anomaly(2)]), (6, vec![anomaly(3)])];
        let mut out = Vec::new();
        runs(batch, &mut found_at, forward, &mut out);
        assert!(found_at.is_empty());
        out.iter()
            .map(|item| match item {
                FeedItem::Events(run) => run.iter().map(|e| e.id as i64).collect(),
                FeedItem::Anomaly(a) => vec![-a.id.parse::<i64>().unwrap()],
            })
            .collect()
    }

    #[test]
    fn a_batch_goes_on_in_runs_split_only_before_anomalies_and_in_order() {
        assert_eq!(
            runs_of(true),
            [vec![1, 2], vec![-1], vec![-2], vec![3, 4, 5, 6], vec![-3]]
        );
        assert_eq!(runs_of(false), [vec![-1], vec![-2], vec![-3]]);
    }

    #[test]
    fn anomalies_are_never_dropped_events_are_counted_when_sinks_lag() {
        let (tx, rx) = handoff::channel(1000, 4);
        // A feed that holds 2 items and is only read after the stage finished.
        let (ftx, mut frx) = feed(2, 2);
        let stats = Arc::new(PipelineStats::default());
        let h = spawn_analysis(
            EveryThird(0),
            rx,
            Inputs::default(),
            ftx,
            true,
            stats.clone(),
        );
        let reader = std::thread::spawn(move || {
            let mut anomalies = 0;
            std::thread::sleep(Duration::from_millis(200));
            while let Some(item) = frx.rx.blocking_recv() {
                if let FeedItem::Anomaly(_) = item {
                    anomalies += 1;
                }
            }
            anomalies
        });
        for i in (1..=30).step_by(4) {
            let mut chunk: Vec<Event> = (i..(i + 4).min(31)).map(event).collect();
            tx.send(&mut chunk);
            assert!(chunk.is_empty());
        }
        drop(tx);
        let a = h.join().unwrap();
        assert_eq!(a.0, 30);
        assert_eq!(reader.join().unwrap(), 11, "10 from events, 1 from finish");
        let s = stats.snapshot();
        assert_eq!(s.analyzed, 30);
        assert_eq!(s.anomalies, 11);
        assert!(
            s.feed_dropped_events > 0,
            "a lagging feed drops events, counted"
        );
    }

    #[test]
    fn health_counts_anomalies_per_level_and_detection_and_reads_lag() {
        use crate::health::{AgentHealth, HealthPart as _};
        use crate::model::Factor;
        let stats = PipelineStats::default();
        let factor = |d: &str| Factor {
            detection: d.into(),
            reason: "r".into(),
            weight: 10,
            evidence: vec![],
        };
        let mut a = anomaly(1);
        // Two factors of one detection count the anomaly once for it.
        a.factors = vec![
            factor("exec_from_tmp"),
            factor("exec_from_tmp"),
            factor("new_binary"),
        ];
        stats.count_anomaly(&a);
        let mut b = anomaly(2);
        b.level = Level::Low;
        b.factors = vec![factor("new_binary")];
        stats.count_anomaly(&b);
        stats.analyzed.store(5, Relaxed);
        stats.lag_ns.store(1_500_000_000, Relaxed);
        let mut h = AgentHealth::default();
        stats.fill(&mut h);
        assert_eq!(h.anomalies.total, 2);
        assert_eq!(h.anomalies.per_level["high"], 1);
        assert_eq!(h.anomalies.per_level["low"], 1);
        assert_eq!(
            h.anomalies.per_level["critical"], 0,
            "every level is listed"
        );
        assert_eq!(h.anomalies.per_detection["exec_from_tmp"], 1);
        assert_eq!(h.anomalies.per_detection["new_binary"], 2);
        assert!(h.anomalies.last_ns.is_some());
        assert_eq!(h.pipeline.analyzed, 5);
        assert_eq!(h.pipeline.lag_secs, 1.5);
    }

    /// A side record that is only a time.
    struct Stamp(i64);

    impl SideRecord for Stamp {
        fn time_ns(&self) -> i64 {
            self.0
        }
    }

    fn fact(time_ns: i64) -> Stamp {
        Stamp(time_ns)
    }

    #[test]
    fn side_records_wait_for_the_events_of_their_time_or_the_hold_limit() {
        let t0 = Instant::now();
        let mut h = SideHold::new(Duration::from_millis(500));
        h.hold(fact(1_000_000_000), t0);
        h.hold(fact(2_000_000_000), t0);
        assert!(h.ready(t0).is_empty(), "no events seen yet");
        h.saw_event(1_015_000_000);
        assert!(h.ready(t0).is_empty(), "within the margin");
        h.saw_event(1_020_000_000);
        let got: Vec<i64> = h.ready(t0).iter().map(|f| f.0).collect();
        assert_eq!(got, [1_000_000_000]);
        // A quiet event stream: the hold limit releases the rest.
        assert!(h.ready(t0 + Duration::from_millis(499)).is_empty());
        assert_eq!(h.ready(t0 + Duration::from_millis(500)).len(), 1);
        assert!(h.drain().is_empty());
    }

    #[test]
    fn held_side_records_are_bounded_and_drained_at_the_end() {
        let t0 = Instant::now();
        let mut h = SideHold::new(Duration::from_secs(60));
        for i in 0..SideHold::<Stamp>::CAP as i64 + 3 {
            h.hold(fact(i), t0);
        }
        assert_eq!(
            h.ready(t0).len(),
            3,
            "the oldest beyond the cap join at once"
        );
        assert_eq!(h.drain().len(), SideHold::<Stamp>::CAP);
    }
}
