//! Bounded disk for the agent store: anomalies and incidents older than `[retention] days`
//! are removed, and beyond `max_bytes` of them the oldest go first. `sentinel run` checks at
//! start and every `interval_secs`; what went is counted and logged. Baselines, verdicts and
//! everything else in the store are left alone. SQLite reuses the freed pages, so the file
//! stops growing rather than shrinking.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use rusqlite::params;
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// `[retention]`: how long and how much of the agent's own findings the store keeps.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Anomalies and incidents older than this many days are removed; 0 keeps them
    /// forever.
    pub days: u32,
    /// At most this many bytes of anomaly and incident records (their JSON) are kept, the
    /// oldest removed first; 0 for no cap.
    pub max_bytes: u64,
    /// Seconds between two checks while `sentinel run` runs (the first is at start).
    pub interval_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            days: 90,
            max_bytes: 256 * 1024 * 1024,
            interval_secs: 3600,
        }
    }
}

impl RetentionConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.days > 36_500 {
            return Err(format!("retention.days must be 0-36500, got {}", self.days));
        }
        if self.max_bytes != 0 && self.max_bytes < 4096 {
            return Err(format!(
                "retention.max_bytes must be 0 (no cap) or at least 4096, got {}",
                self.max_bytes
            ));
        }
        if !(10..=604_800).contains(&self.interval_secs) {
            return Err(format!(
                "retention.interval_secs must be 10-604800, got {}",
                self.interval_secs
            ));
        }
        Ok(())
    }
}

/// What one pass removed, and what is left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    pub anomalies: u64,
    pub incidents: u64,
    /// Bytes of anomaly and incident records left.
    pub bytes_left: u64,
}

/// Counters of the retention passes of a running agent (for `sentinel status` and metrics).
#[derive(Debug, Default)]
pub struct RetentionStats {
    pub passes: AtomicU64,
    pub removed_anomalies: AtomicU64,
    pub removed_incidents: AtomicU64,
    /// Bytes of anomaly and incident records after the last pass.
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
}

/// A copy of the retention counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RetentionCounters {
    pub passes: u64,
    pub removed_anomalies: u64,
    pub removed_incidents: u64,
    pub bytes: u64,
    pub errors: u64,
}

impl RetentionStats {
    pub fn snapshot(&self) -> RetentionCounters {
        RetentionCounters {
            passes: self.passes.load(Relaxed),
            removed_anomalies: self.removed_anomalies.load(Relaxed),
            removed_incidents: self.removed_incidents.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            errors: self.errors.load(Relaxed),
        }
    }
}

impl crate::health::HealthPart for RetentionStats {
    fn fill(&self, h: &mut crate::health::AgentHealth) {
        let c = self.snapshot();
        h.retention = Some(crate::health::Retention {
            passes: c.passes,
            removed_anomalies: c.removed_anomalies,
            removed_incidents: c.removed_incidents,
            bytes: c.bytes,
            errors: c.errors,
        });
    }
}

const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// Bytes of anomaly and incident records in the store.
pub fn record_bytes(store: &Store) -> Result<u64, StoreError> {
    let n: i64 = store.connection().query_row(
        "SELECT (SELECT COALESCE(SUM(LENGTH(record)), 0) FROM anomalies)
              + (SELECT COALESCE(SUM(LENGTH(record)), 0) FROM incidents)",
        [],
        |r| r.get(0),
    )?;
    Ok(n.max(0) as u64)
}

/// One pass at `now_ns`: first by age, then by size, oldest first (an incident's age is its
/// last step's).
pub fn prune(store: &Store, cfg: &RetentionConfig, now_ns: i64) -> Result<Pruned, StoreError> {
    let conn = store.connection();
    let tx = conn.unchecked_transaction()?;
    let mut out = Pruned::default();
    if cfg.days > 0 {
        let cutoff = now_ns.saturating_sub(i64::from(cfg.days).saturating_mul(DAY_NS));
        out.anomalies +=
            tx.execute("DELETE FROM anomalies WHERE time_ns < ?1", params![cutoff])? as u64;
        out.incidents +=
            tx.execute("DELETE FROM incidents WHERE last_ns < ?1", params![cutoff])? as u64;
    }
    if cfg.max_bytes > 0 {
        // The newest time whose records, counted from the newest down, pass the cap: it and
        // everything older goes.
        let cut: Option<i64> = tx
            .query_row(
                "SELECT t FROM (
                    SELECT t, SUM(n) OVER (ORDER BY t DESC ROWS UNBOUNDED PRECEDING) AS kept
                    FROM (SELECT time_ns AS t, LENGTH(record) AS n FROM anomalies
                          UNION ALL SELECT last_ns, LENGTH(record) FROM incidents))
                 WHERE kept > ?1 ORDER BY t DESC LIMIT 1",
                params![cfg.max_bytes as i64],
                |r| r.get(0),
            )
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
        if let Some(t) = cut {
            out.anomalies +=
                tx.execute("DELETE FROM anomalies WHERE time_ns <= ?1", params![t])? as u64;
            out.incidents +=
                tx.execute("DELETE FROM incidents WHERE last_ns <= ?1", params![t])? as u64;
        }
    }
    tx.commit()?;
    out.bytes_left = record_bytes(store)?;
    Ok(out)
}

/// Runs a pass now and then every `interval_secs` on its own connection to the store, until
/// the task is aborted. Failures are logged and counted; the next pass tries again.
pub fn spawn(
    path: std::path::PathBuf,
    cfg: RetentionConfig,
    stats: Arc<RetentionStats>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if cfg.days == 0 && cfg.max_bytes == 0 {
            return;
        }
        let mut every = tokio::time::interval(Duration::from_secs(cfg.interval_secs));
        loop {
            every.tick().await;
            let (path, cfg2, stats2) = (path.clone(), cfg.clone(), stats.clone());
            let r = tokio::task::spawn_blocking(move || {
                let store = Store::open(&path)?;
                let p = prune(&store, &cfg2, crate::store::now_ns())?;
                stats2.passes.fetch_add(1, Relaxed);
                stats2.removed_anomalies.fetch_add(p.anomalies, Relaxed);
                stats2.removed_incidents.fetch_add(p.incidents, Relaxed);
                stats2.bytes.store(p.bytes_left, Relaxed);
                Ok::<_, StoreError>(p)
            })
            .await;
            match r {
                Ok(Ok(p)) if p.anomalies + p.incidents > 0 => tracing::info!(
                    target: "sentinel::retention",
                    "store retention removed {} anomalies and {} incidents \
                     (older than {} days or beyond {} bytes); {} bytes of records left",
                    p.anomalies,
                    p.incidents,
                    cfg.days,
                    cfg.max_bytes,
                    p.bytes_left
                ),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    stats.errors.fetch_add(1, Relaxed);
                    tracing::warn!(target: "sentinel::retention", "store retention: {e}");
                }
                Err(e) => {
                    stats.errors.fetch_add(1, Relaxed);
                    tracing::warn!(target: "sentinel::retention", "store retention: {e}");
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Anomaly, Level, Principal};

    fn anomaly(id: &str, time_ns: i64, pad: usize) -> Anomaly {
        Anomaly {
            id: id.into(),
            host: "h".into(),
            time_ns,
            principal: Principal {
                uid: 1000,
                user: None,
                session: None,
            },
            chain: vec![],
            score: 30,
            level: Level::Medium,
            factors: vec![],
            evidence: vec![],
            fingerprint: "f".repeat(pad),
            explanation: None,
        }
    }

    fn ids(s: &Store) -> Vec<String> {
        let mut v: Vec<String> = s
            .recent_anomalies(1000)
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect();
        v.sort();
        v
    }

    fn incidents(s: &Store) -> i64 {
        s.connection()
            .query_row("SELECT COUNT(*) FROM incidents", [], |r| r.get(0))
            .unwrap()
    }

    fn incident_at(last_ns: i64) -> crate::incident::Incident {
        let mut t = crate::incident::Tracker::default();
        let mut a = anomaly(&format!("i{last_ns}"), last_ns, 10);
        a.principal.session = Some(7);
        a.factors = vec![crate::model::Factor {
            detection: "exec_from_writable".into(),
            reason: "r".into(),
            weight: 30,
            evidence: vec![],
        }];
        t.observe(&a);
        a.id.push('b');
        let mut i = t
            .observe(&a)
            .expect("two scored anomalies in a session make an incident");
        i.last_ns = last_ns;
        i.id = format!("inc-{last_ns}");
        i
    }

    #[test]
    fn old_records_go_by_age_and_the_rest_stays() {
        let s = Store::memory().unwrap();
        let now = 1_000 * DAY_NS;
        for (id, days_ago) in [("a", 100), ("b", 31), ("c", 29), ("d", 0)] {
            s.put_anomaly(&anomaly(id, now - days_ago * DAY_NS, 10))
                .unwrap();
        }
        s.put_incident(&incident_at(now - 40 * DAY_NS)).unwrap();
        s.put_incident(&incident_at(now - DAY_NS)).unwrap();
        s.put_feedback("a", 0, &serde_json::json!({"kept": true}))
            .unwrap();
        let cfg = RetentionConfig {
            days: 30,
            max_bytes: 0,
            ..Default::default()
        };
        let p = prune(&s, &cfg, now).unwrap();
        assert_eq!((p.anomalies, p.incidents), (2, 1));
        assert_eq!(ids(&s), ["c", "d"]);
        assert_eq!(incidents(&s), 1);
        assert!(
            s.get_feedback("a").unwrap().is_some(),
            "verdicts are not findings"
        );
        assert_eq!(p.bytes_left, record_bytes(&s).unwrap());
        // Nothing more to do the second time.
        assert_eq!(prune(&s, &cfg, now).unwrap().anomalies, 0);
        // days = 0 keeps everything.
        let forever = RetentionConfig {
            days: 0,
            max_bytes: 0,
            ..Default::default()
        };
        assert_eq!(
            prune(&s, &forever, now + 10_000 * DAY_NS)
                .unwrap()
                .anomalies,
            0
        );
    }

    #[test]
    fn beyond_the_byte_cap_the_oldest_go_first() {
        let s = Store::memory().unwrap();
        let now = 1_000 * DAY_NS;
        for i in 0..10 {
            s.put_anomaly(&anomaly(&format!("a{i}"), now - (10 - i) * 1_000, 1000))
                .unwrap();
        }
        let one = record_bytes(&s).unwrap() / 10;
        s.put_incident(&incident_at(now - 5_500)).unwrap();
        let total = record_bytes(&s).unwrap();
        assert!(total > one * 10);
        // Room for four anomalies: a6..a9 stay; the incident (older) and a0..a5 go.
        let cfg = RetentionConfig {
            days: 0,
            max_bytes: one * 4 + one / 2,
            ..Default::default()
        };
        let p = prune(&s, &cfg, now).unwrap();
        assert_eq!(ids(&s), ["a6", "a7", "a8", "a9"]);
        assert_eq!((p.anomalies, p.incidents), (6, 1));
        assert!(p.bytes_left <= cfg.max_bytes, "{p:?}");
        assert_eq!(p.bytes_left, one * 4);
        // Under the cap: nothing goes.
        assert_eq!(
            prune(&s, &cfg, now).unwrap(),
            Pruned {
                bytes_left: one * 4,
                ..Default::default()
            }
        );
    }

    #[test]
    fn settings_are_checked() {
        assert!(RetentionConfig::default().validate().is_ok());
        for bad in [
            RetentionConfig {
                max_bytes: 10,
                ..Default::default()
            },
            RetentionConfig {
                interval_secs: 1,
                ..Default::default()
            },
            RetentionConfig {
                days: 100_000,
                ..Default::default()
            },
        ] {
            assert!(
                bad.validate().unwrap_err().starts_with("retention."),
                "{bad:?}"
            );
        }
    }
}
