//! What the simulated fleet saw: every request's latency by kind, and its errors by kind and
//! status, shared by all tasks (one lock, taken once per request).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// Latencies (µs) and errors recorded so far.
#[derive(Default)]
pub struct Tally {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    latencies: BTreeMap<&'static str, Vec<u32>>,
    errors: BTreeMap<String, u64>,
}

/// Quantiles of one kind of request, in milliseconds.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct Quantiles {
    pub kind: String,
    /// Requests answered (any status); unanswered ones are only errors.
    pub count: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Tally {
    /// One request of `kind`: `status` None when no answer came (refused, reset, timeout).
    /// Anything but 2xx counts as an error under "kind: status".
    pub fn record(&self, kind: &'static str, status: Option<u16>, latency: Duration) {
        let Ok(mut g) = self.inner.lock() else {
            return;
        };
        match status {
            Some(s) => {
                let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
                g.latencies.entry(kind).or_default().push(us);
                if !(200..300).contains(&s) {
                    *g.errors.entry(format!("{kind}: HTTP {s}")).or_default() += 1;
                }
            }
            None => *g.errors.entry(format!("{kind}: no answer")).or_default() += 1,
        }
    }

    /// Answered requests of every kind.
    pub fn answered(&self) -> u64 {
        self.inner
            .lock()
            .map(|g| g.latencies.values().map(|v| v.len() as u64).sum())
            .unwrap_or(0)
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.inner
            .lock()
            .map(|g| g.errors.clone())
            .unwrap_or_default()
    }

    /// Quantiles per kind, in kind order.
    pub fn quantiles(&self) -> Vec<Quantiles> {
        let Ok(mut g) = self.inner.lock() else {
            return Vec::new();
        };
        g.latencies
            .iter_mut()
            .map(|(kind, v)| {
                v.sort_unstable();
                let q = |p: f64| {
                    if v.is_empty() {
                        return 0.0;
                    }
                    // Nearest rank.
                    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
                    f64::from(v[rank - 1]) / 1e3
                };
                Quantiles {
                    kind: kind.to_string(),
                    count: v.len() as u64,
                    p50_ms: q(0.50),
                    p95_ms: q(0.95),
                    p99_ms: q(0.99),
                    max_ms: q(1.0),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank_and_errors_count_by_status() {
        let t = Tally::default();
        for ms in 1..=100u64 {
            t.record("heartbeat", Some(200), Duration::from_millis(ms));
        }
        t.record("heartbeat", Some(503), Duration::from_millis(500));
        t.record("snapshot", None, Duration::ZERO);
        let q = t.quantiles();
        assert_eq!(q.len(), 1, "unanswered requests have no latency");
        assert_eq!(q[0].count, 101);
        assert_eq!(q[0].p50_ms, 51.0);
        assert_eq!(q[0].p99_ms, 100.0);
        assert_eq!(q[0].max_ms, 500.0);
        let e = t.errors();
        assert_eq!(e["heartbeat: HTTP 503"], 1);
        assert_eq!(e["snapshot: no answer"], 1);
        assert_eq!(t.answered(), 101);
    }
}
