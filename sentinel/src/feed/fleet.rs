//! Fleet wire types shared by the agent and the server: the enrolment request and answer
//! (`POST /api/enroll`), and the heartbeat an agent sends every `[push]
//! heartbeat_interval_secs` (`POST /api/ingest/heartbeat`). docs/server.md, "Fleet".

use serde::{Deserialize, Serialize};

/// Default seconds between two heartbeats.
pub const DEFAULT_HEARTBEAT_SECS: u64 = 30;
/// Default seconds between two host snapshots pushed.
pub const DEFAULT_SNAPSHOT_SECS: u64 = 300;

/// The body of `POST /api/enroll`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// The enrolment token an admin created (`sentinel host token`, or Fleet in the dashboard).
    pub token: String,
    /// The host identity to enrol (the name the agent reports in everything it pushes).
    pub host: String,
}

/// The answer to an accepted enrolment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnrolAnswer {
    pub host: String,
    /// The new ingest key, bound to `host` (shown once; only its hash is kept).
    pub api_key: String,
    pub key_id: i64,
    /// True when the host was enrolled before: its previous key is revoked.
    pub rotated: bool,
}

/// The body of `POST /api/ingest/heartbeat`: who, when, how often, and the agent's health
/// snapshot (`crate::health::AgentHealth`, the document `sentinel status` shows; its `push`
/// part carries the spool and the batches dropped to stay under its cap).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub host: String,
    /// The agent's clock when it sent this.
    pub time_ns: i64,
    /// Seconds until the next heartbeat: the server calls the host stale after three missed.
    pub interval_secs: u64,
    /// The agent's health snapshot (a JSON object).
    pub health: serde_json::Value,
}

/// The running agent's health (crate::health), read at each heartbeat.
#[derive(Clone)]
pub struct HealthFn(pub std::sync::Arc<crate::health::HealthSource>);

impl std::fmt::Debug for HealthFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HealthSource")
    }
}

/// Batches in the spool and their bytes.
pub fn spool_usage(dir: &std::path::Path) -> (u64, u64) {
    let files = super::push::spool_files(dir);
    let bytes = files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    (files.len() as u64, bytes)
}

/// Drops the oldest batches until the spool holds at most `max_bytes` (0: no cap), never
/// the newest one nor the one being sent. Returns (batches, items) dropped.
pub fn enforce_cap(
    dir: &std::path::Path,
    max_bytes: u64,
    busy: Option<&std::path::Path>,
) -> (u64, u64) {
    if max_bytes == 0 {
        return (0, 0);
    }
    let files: Vec<(std::path::PathBuf, u64)> = super::push::spool_files(dir)
        .into_iter()
        .filter_map(|p| std::fs::metadata(&p).ok().map(|m| (p, m.len())))
        .collect();
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    let (mut batches, mut items) = (0, 0);
    let newest = files.len().saturating_sub(1);
    for (path, len) in files.iter().take(newest) {
        if total <= max_bytes {
            break;
        }
        if busy == Some(path.as_path()) {
            continue;
        }
        let n = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<super::push::IngestBatch>(&b).ok())
            .map(|b| b.len() as u64)
            .unwrap_or(0);
        if std::fs::remove_file(path).is_ok() {
            total = total.saturating_sub(*len);
            batches += 1;
            items += n;
        }
    }
    (batches, items)
}

/// What the heartbeat loop needs.
pub struct Beat {
    pub client: reqwest::Client,
    pub url: String,
    pub api_key: String,
    pub host: String,
    pub every: std::time::Duration,
    pub health: HealthFn,
    pub observer: Option<super::push::Observer>,
}

/// The heartbeat as it would be sent now.
pub fn heartbeat_now(b: &Beat) -> Heartbeat {
    Heartbeat {
        host: b.host.clone(),
        time_ns: crate::store::now_ns(),
        interval_secs: b.every.as_secs().max(1),
        health: serde_json::to_value(b.health.0.snapshot()).unwrap_or_default(),
    }
}

/// Sends a heartbeat at once and then every `every`. Heartbeats are not spooled: one that
/// cannot be delivered is replaced by the next, which says everything it would have.
pub async fn heartbeat_loop(b: Beat, stats: std::sync::Arc<super::push::Stats>) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut tick = tokio::time::interval(b.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A refusal is logged when it starts and when it changes, not every interval.
    let mut refused: Option<reqwest::StatusCode> = None;
    loop {
        tick.tick().await;
        let hb = heartbeat_now(&b);
        let started = std::time::Instant::now();
        let r = b
            .client
            .post(format!("{}/api/ingest/heartbeat", b.url))
            .bearer_auth(&b.api_key)
            .json(&hb)
            .send()
            .await;
        super::push::Observer::tell(
            &b.observer,
            super::push::Outcome {
                sent: super::push::Sent::Heartbeat,
                status: r.as_ref().ok().map(|r| r.status().as_u16()),
                latency: started.elapsed(),
            },
        );
        match r {
            Ok(r) if r.status().is_success() => {
                stats.heartbeats.fetch_add(1, Relaxed);
                if refused.take().is_some() {
                    tracing::info!("heartbeats accepted again");
                }
            }
            Ok(r) => {
                stats.heartbeat_failures.fetch_add(1, Relaxed);
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                if refused.replace(status) != Some(status) {
                    tracing::warn!(
                        "heartbeat refused: HTTP {status} {text} (an older server has no /api/ingest/heartbeat: 404)"
                    );
                }
            }
            Err(e) => {
                stats.heartbeat_failures.fetch_add(1, Relaxed);
                tracing::debug!("heartbeat not delivered: {e}");
            }
        }
    }
}

/// What the snapshot loop takes and where it sends it.
pub struct Snapshots {
    pub every: std::time::Duration,
    pub host: String,
    pub snapshot: crate::snapshot::SnapshotConfig,
    pub audit: crate::audit::AuditConfig,
}

/// One host fingerprint as pushed: `sentinel snapshot --network --audit` over the last
/// interval, named by the agent's host identity (the name its key is bound to).
pub fn take_snapshot(s: &Snapshots) -> serde_json::Value {
    let until = crate::snapshot::time::now_ms();
    let since = until - s.every.as_millis().min(i64::MAX as u128) as i64;
    let opts = crate::snapshot::ProbeOptions {
        network: true,
        audit: Some((since, until)),
        extra_files: &[],
        store: None,
    };
    let fp = crate::snapshot::take(&s.snapshot, &s.audit, &opts);
    let mut v = serde_json::to_value(&fp).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(sys) = v.get_mut("system").and_then(|x| x.as_object_mut()) {
        sys.insert("hostname".into(), s.host.clone().into());
    }
    v
}

/// Pushes a snapshot at once and then every `every` (through the spool, like anomalies).
pub async fn snapshot_loop(s: Snapshots, pusher: std::sync::Arc<super::push::Pusher>) {
    let s = std::sync::Arc::new(s);
    let mut tick = tokio::time::interval(s.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let job = s.clone();
        let Ok(v) = tokio::task::spawn_blocking(move || take_snapshot(&job)).await else {
            continue;
        };
        if pusher.send_snapshot(v).await.is_err() {
            return;
        }
    }
}

/// The fleet side of pushing: how often to send heartbeats and snapshots, and the spool cap.
#[derive(Default)]
pub struct FleetOptions {
    /// Heartbeat interval and the agent's health snapshot (None: no heartbeats).
    pub heartbeat: Option<(std::time::Duration, HealthFn)>,
    /// Snapshot interval and what to probe (None: no snapshots).
    pub snapshots: Option<(
        std::time::Duration,
        crate::snapshot::SnapshotConfig,
        crate::audit::AuditConfig,
    )>,
    pub spool_max_bytes: Option<u64>,
}

/// The push client's fleet settings from `[push]`.
pub fn options(
    p: &super::push::PushSettings,
    snapshot: &crate::snapshot::SnapshotConfig,
    audit: &crate::audit::AuditConfig,
    health: std::sync::Arc<crate::health::HealthSource>,
) -> FleetOptions {
    let health = HealthFn(health);
    let secs = |v: Option<u64>, d: u64| std::time::Duration::from_secs(v.unwrap_or(d).max(1));
    FleetOptions {
        heartbeat: (p.heartbeat_interval_secs != Some(0)).then(|| {
            (
                secs(p.heartbeat_interval_secs, DEFAULT_HEARTBEAT_SECS),
                health,
            )
        }),
        snapshots: (p.snapshot_interval_secs != Some(0)).then(|| {
            (
                secs(p.snapshot_interval_secs, DEFAULT_SNAPSHOT_SECS),
                snapshot.clone(),
                audit.clone(),
            )
        }),
        spool_max_bytes: p.spool_max_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::push::{IngestBatch, spool_write};

    #[test]
    fn the_spool_cap_drops_the_oldest_batches_and_counts_their_items() {
        let d = tempfile::tempdir().unwrap();
        let batch = |id: &str| IngestBatch {
            batch_id: id.into(),
            snapshots: vec![serde_json::json!({ "pad": "x".repeat(1000) }); 2],
            ..Default::default()
        };
        let paths: Vec<_> = (0..5)
            .map(|i| spool_write(d.path(), i, &batch(&format!("b{i}"))).unwrap())
            .collect();
        let (n, each) = spool_usage(d.path());
        assert_eq!(n, 5);
        let size = each / 5;
        assert_eq!(enforce_cap(d.path(), 0, None), (0, 0), "0 is no cap");
        // Room for three: the two oldest go, except the one being sent.
        assert_eq!(
            enforce_cap(d.path(), 3 * size, Some(&paths[0])),
            (2, 4),
            "two batches of two items"
        );
        assert!(paths[0].exists() && !paths[1].exists() && !paths[2].exists());
        assert_eq!(spool_usage(d.path()).0, 3);
        // The newest is never dropped, even alone over the cap.
        assert_eq!(enforce_cap(d.path(), 1, None), (2, 4));
        assert_eq!(
            crate::feed::push::spool_files(d.path()),
            vec![paths[4].clone()]
        );
    }
}
