//! The stages between the collector and the sinks: the analysis stage (process table,
//! fingerprints, detections) on its own thread, a bounded channel to the sinks with drop
//! counters, and a broadcast of anomalies at the edge for consumers that may lag (store, LLM,
//! push, dashboard).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use crate::detect::model::Anomaly;
use crate::event::Event;

/// What turns events into anomalies. The detection engine implements it; tests use fakes.
pub trait Analyzer: Send + 'static {
    fn observe(&mut self, ev: &Event) -> Vec<Anomaly>;
    /// Called about once a second with the wall-clock time, for window roll-over.
    fn tick(&mut self, now_ns: i64) -> Vec<Anomaly>;
    /// Called once at the end: close the open window.
    fn finish(&mut self) -> Vec<Anomaly>;
}

/// No analysis: events only.
pub struct Passthrough;

impl Analyzer for Passthrough {
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

/// One item for the sinks.
#[derive(Clone, Debug)]
pub enum FeedItem {
    Event(Arc<Event>),
    Anomaly(Arc<Anomaly>),
}

/// Counters of the stages after the collector.
#[derive(Default)]
pub struct PipelineStats {
    pub analyzed: AtomicU64,
    pub anomalies: AtomicU64,
    /// Events not shown because the sinks were behind (anomalies are never dropped here).
    pub feed_dropped_events: AtomicU64,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct PipelineSnapshot {
    pub analyzed: u64,
    pub anomalies: u64,
    pub feed_dropped_events: u64,
}

impl PipelineStats {
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

/// Runs `analyzer` on its own thread over `events` until the channel closes. Events go on to
/// `feed` when `forward_events` (dropped and counted if the sinks are behind); anomalies always
/// do (the stage waits for room, and the collector's bounded channel absorbs the pause).
pub fn spawn_analysis<A: Analyzer>(
    mut analyzer: A,
    mut events: mpsc::Receiver<Event>,
    feed: mpsc::Sender<FeedItem>,
    forward_events: bool,
    stats: Arc<PipelineStats>,
) -> std::thread::JoinHandle<A> {
    std::thread::Builder::new()
        .name("sentinel-analyze".into())
        .spawn(move || {
            let send_anomalies = |list: Vec<Anomaly>, stats: &PipelineStats| {
                for a in list {
                    stats.anomalies.fetch_add(1, Relaxed);
                    // Err only when the sinks are gone (shutdown): nothing left to tell.
                    let _ = feed.blocking_send(FeedItem::Anomaly(Arc::new(a)));
                }
            };
            let mut last_tick = Instant::now();
            loop {
                let ev = match events.try_recv() {
                    Ok(ev) => Some(ev),
                    Err(mpsc::error::TryRecvError::Empty) => {
                        // Idle: wait a little, but keep ticking.
                        std::thread::sleep(Duration::from_millis(5));
                        None
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                };
                if let Some(ev) = ev {
                    stats.analyzed.fetch_add(1, Relaxed);
                    let found = analyzer.observe(&ev);
                    if forward_events && feed.try_send(FeedItem::Event(Arc::new(ev))).is_err() {
                        stats.feed_dropped_events.fetch_add(1, Relaxed);
                    }
                    send_anomalies(found, &stats);
                }
                if last_tick.elapsed() >= Duration::from_secs(1) {
                    last_tick = Instant::now();
                    send_anomalies(analyzer.tick(now_ns()), &stats);
                }
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
    use crate::detect::model::{Level, Principal};

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

    #[test]
    fn anomalies_are_never_dropped_events_are_counted_when_sinks_lag() {
        let (tx, rx) = mpsc::channel(1000);
        // A feed that holds 2 items and is only read after the stage finished.
        let (ftx, mut frx) = mpsc::channel(2);
        let stats = Arc::new(PipelineStats::default());
        let h = spawn_analysis(EveryThird(0), rx, ftx, true, stats.clone());
        let reader = std::thread::spawn(move || {
            let mut anomalies = 0;
            std::thread::sleep(Duration::from_millis(200));
            while let Some(item) = frx.blocking_recv() {
                if let FeedItem::Anomaly(_) = item {
                    anomalies += 1;
                }
            }
            anomalies
        });
        for i in 1..=30 {
            tx.blocking_send(event(i)).unwrap();
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
}
