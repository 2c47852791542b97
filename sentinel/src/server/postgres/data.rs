//! PostgreSQL implementation of `DataStore` (same semantics as sqlite/data.rs): ingest is one
//! transaction, so a batch is stored whole or not at all, and its dedupe (batch id, anomaly
//! id) holds against concurrent retries through the unique keys.

use deadpool_postgres::Transaction;
use tokio_postgres::Row;

use super::PgStore;
use crate::model::Anomaly;
use crate::server::sqlite::{level_rank, rank_level};
use crate::server::store::*;

const ANOMALY_COLS: &str = "record, received_ns, acked_by, acked_ns, conflict_of";

fn stored(r: &Row) -> DbResult<StoredAnomaly> {
    let rec: String = r.try_get(0)?;
    Ok(StoredAnomaly {
        anomaly: serde_json::from_str(&rec)?,
        received_ns: r.try_get(1)?,
        acked_by: r.try_get(2)?,
        acked_ns: r.try_get(3)?,
        conflict_of: r.try_get(4)?,
    })
}

/// The host a snapshot describes (as sqlite/data.rs).
fn snapshot_host(v: &serde_json::Value) -> Option<String> {
    v.pointer("/system/hostname")
        .or_else(|| v.get("hostname"))
        .or_else(|| v.get("host"))
        .and_then(|h| h.as_str())
        .map(str::to_string)
}

/// Hosts with their last 24 h figures, in one statement (the host list and one host alike).
const HOST_SELECT: &str =
    "SELECT h.name, h.first_seen_ns, h.last_seen_ns, h.snapshot, h.snapshot_ns,
        (SELECT MAX(level_rank) FROM anomalies a WHERE a.host = h.name AND a.received_ns >= $1),
        (SELECT COUNT(*) FROM anomalies a WHERE a.host = h.name AND a.received_ns >= $1),
        (SELECT COUNT(*) FROM anomalies a WHERE a.host = h.name AND a.acked_ns IS NULL)
     FROM hosts h";

fn host_row(r: &Row) -> DbResult<Host> {
    let snap: Option<String> = r.try_get(3)?;
    let snapshot: Option<serde_json::Value> = match snap {
        Some(s) => Some(serde_json::from_str(&s)?),
        None => None,
    };
    let learning = snapshot
        .as_ref()
        .and_then(|s| {
            s.get("learning")
                .or_else(|| s.pointer("/audit_summary/learning/confidence"))
        })
        .and_then(|v| v.as_str())
        .map(str::to_string);
    Ok(Host {
        name: r.try_get(0)?,
        first_seen_ns: r.try_get(1)?,
        last_seen_ns: r.try_get(2)?,
        level_24h: r.try_get::<_, Option<i64>>(5)?.and_then(rank_level),
        anomalies_24h: r.try_get(6)?,
        unacked: r.try_get(7)?,
        snapshot,
        snapshot_ns: r.try_get(4)?,
        learning,
    })
}

pub(super) async fn touch_host(c: &Transaction<'_>, name: &str, now_ns: i64) -> DbResult<()> {
    let st = c
        .prepare_cached(
            "INSERT INTO hosts (name, first_seen_ns, last_seen_ns) VALUES ($1, $2, $2)
         ON CONFLICT (name) DO UPDATE SET last_seen_ns = GREATEST(hosts.last_seen_ns, excluded.last_seen_ns)",
        )
        .await?;
    c.execute(&st, &[&name, &now_ns]).await?;
    Ok(())
}

fn content_key(a: &Anomaly) -> DbResult<String> {
    let mut a = a.clone();
    a.explanation = None;
    Ok(serde_json::to_string(&a)?)
}

async fn insert_row(
    c: &Transaction<'_>,
    a: &Anomaly,
    now_ns: i64,
    conflict_of: Option<&str>,
) -> DbResult<bool> {
    let user = a
        .principal
        .user
        .clone()
        .unwrap_or_else(|| a.principal.uid.to_string());
    let mut dets = String::from(",");
    for f in &a.factors {
        dets.push_str(&f.detection);
        dets.push(',');
    }
    let st = c
        .prepare_cached(
            "INSERT INTO anomalies (id, host, time_ns, received_ns, level_rank, score, user_name, detections, record, conflict_of)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING",
        )
        .await?;
    let n = c
        .execute(
            &st,
            &[
                &a.id,
                &a.host,
                &a.time_ns,
                &now_ns,
                &level_rank(a.level),
                &i64::from(a.score),
                &user,
                &dets,
                &serde_json::to_string(a)?,
                &conflict_of,
            ],
        )
        .await?;
    Ok(n == 1)
}

enum Inserted {
    New(StoredAnomaly),
    Duplicate,
    Conflict(StoredAnomaly),
}

/// As sqlite/data.rs `insert_anomaly`: a retry is a duplicate, other content under a taken id
/// is kept under `<id>~<digest>`.
async fn insert_anomaly(c: &Transaction<'_>, a: &Anomaly, now_ns: i64) -> DbResult<Inserted> {
    let fresh = |a: &Anomaly, conflict_of: Option<String>| StoredAnomaly {
        anomaly: a.clone(),
        received_ns: now_ns,
        acked_by: None,
        acked_ns: None,
        conflict_of,
    };
    if insert_row(c, a, now_ns, None).await? {
        return Ok(Inserted::New(fresh(a, None)));
    }
    let existing = c
        .query_opt(
            "SELECT record FROM anomalies WHERE id = $1 FOR UPDATE",
            &[&a.id],
        )
        .await?;
    if let Some(r) = existing {
        let rec: String = r.try_get(0)?;
        let old: Anomaly = serde_json::from_str(&rec)?;
        if old.host == a.host && content_key(&old)? == content_key(a)? {
            if old.explanation.is_none() && a.explanation.is_some() {
                c.execute(
                    "UPDATE anomalies SET record = $2 WHERE id = $1",
                    &[&a.id, &serde_json::to_string(a)?],
                )
                .await?;
            }
            return Ok(Inserted::Duplicate);
        }
    }
    let digest = crate::server::auth::token_hash(&format!("{}\n{}", a.host, content_key(a)?));
    let mut renamed = a.clone();
    renamed.id = format!("{}~{}", a.id, &digest[..12]);
    if insert_row(c, &renamed, now_ns, Some(&a.id)).await? {
        Ok(Inserted::Conflict(fresh(&renamed, Some(a.id.clone()))))
    } else {
        Ok(Inserted::Duplicate)
    }
}

#[async_trait::async_trait]
impl DataStore for PgStore {
    async fn ingest(&self, batch: &IngestBatch, now_ns: i64) -> DbResult<IngestOutcome> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        // A concurrent retry of the same batch waits here on the key, then finds it taken.
        let st = tx
            .prepare_cached(
                "INSERT INTO ingest_batches (batch_id, received_ns) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .await?;
        let fresh = tx.execute(&st, &[&batch.batch_id, &now_ns]).await? == 1;
        let mut out = IngestOutcome {
            duplicate: !fresh,
            ..Default::default()
        };
        if !fresh {
            return Ok(out);
        }
        // Every host of the batch first, in name order: concurrent batches lock host rows in
        // the same order and cannot deadlock on them.
        let mut hosts: Vec<String> = batch.host.iter().cloned().collect();
        hosts.extend(batch.anomalies.iter().map(|a| a.host.clone()));
        hosts.extend(batch.incidents.iter().map(|i| i.host.clone()));
        hosts.extend(batch.snapshots.iter().filter_map(snapshot_host));
        hosts.sort();
        hosts.dedup();
        for h in &hosts {
            touch_host(&tx, h, now_ns).await?;
        }
        for a in &batch.anomalies {
            match insert_anomaly(&tx, a, now_ns).await? {
                Inserted::New(s) => {
                    out.stored.push(s.anomaly.id.clone());
                    out.new.push(s);
                }
                Inserted::Duplicate => out.duplicates.push(a.id.clone()),
                Inserted::Conflict(s) => {
                    out.conflicts.push(IdConflict {
                        id: a.id.clone(),
                        stored_as: s.anomaly.id.clone(),
                    });
                    out.stored.push(s.anomaly.id.clone());
                    out.new.push(s);
                }
            }
        }
        out.anomalies = out.stored.len();
        super::incidents::ingest(&tx, &batch.incidents, now_ns, &mut out.incidents).await?;
        for s in &batch.snapshots {
            let Some(host) = snapshot_host(s).or_else(|| batch.host.clone()) else {
                continue;
            };
            let text = s.to_string();
            let insert = tx
                .prepare_cached("INSERT INTO snapshots (host, time_ns, data) VALUES ($1, $2, $3)")
                .await?;
            tx.execute(&insert, &[&host, &now_ns, &text]).await?;
            let update = tx
                .prepare_cached("UPDATE hosts SET snapshot = $2, snapshot_ns = $3 WHERE name = $1")
                .await?;
            tx.execute(&update, &[&host, &text, &now_ns]).await?;
            out.snapshots += 1;
        }
        for f in &batch.fingerprints {
            let host = batch
                .host
                .clone()
                .or_else(|| snapshot_host(f))
                .unwrap_or_default();
            tx.execute(
                "INSERT INTO fingerprints (host, time_ns, data) VALUES ($1, $2, $3)",
                &[&host, &now_ns, &f.to_string()],
            )
            .await?;
            out.fingerprints += 1;
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn list_anomalies(&self, f: &AnomalyFilter) -> DbResult<Vec<StoredAnomaly>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {ANOMALY_COLS} FROM anomalies
                     WHERE ($1::TEXT IS NULL OR host = $1) AND ($2::TEXT IS NULL OR user_name = $2)
                       AND level_rank >= $3
                       AND ($4::TEXT IS NULL OR strpos(detections, ',' || $4 || ',') > 0)
                       AND (NOT $5 OR acked_ns IS NULL)
                     ORDER BY received_ns DESC, time_ns DESC, seq DESC LIMIT $6"
                ),
                &[
                    &f.host.as_deref().filter(|s| !s.is_empty()),
                    &f.user.as_deref().filter(|s| !s.is_empty()),
                    &f.level.map(level_rank).unwrap_or(0),
                    &f.detection.as_deref().filter(|s| !s.is_empty()),
                    &f.unacked.unwrap_or(false),
                    &(f.limit.unwrap_or(100).min(1000) as i64),
                ],
            )
            .await?;
        rows.iter().map(stored).collect()
    }

    async fn count_anomalies(&self) -> DbResult<i64> {
        let c = self.conn().await?;
        Ok(c.query_one("SELECT COUNT(*) FROM anomalies", &[])
            .await?
            .try_get(0)?)
    }

    async fn get_anomaly(&self, id: &str) -> DbResult<Option<StoredAnomaly>> {
        let c = self.conn().await?;
        c.query_opt(
            &format!("SELECT {ANOMALY_COLS} FROM anomalies WHERE id = $1"),
            &[&id],
        )
        .await?
        .map(|r| stored(&r))
        .transpose()
    }

    async fn ack_anomaly(&self, id: &str, by: &str, now_ns: i64) -> DbResult<bool> {
        let c = self.conn().await?;
        Ok(c.execute(
            "UPDATE anomalies SET acked_by = $2, acked_ns = $3 WHERE id = $1 AND acked_ns IS NULL",
            &[&id, &by, &now_ns],
        )
        .await?
            == 1)
    }

    async fn ack_host(&self, host: &str, by: &str, now_ns: i64) -> DbResult<usize> {
        let c = self.conn().await?;
        Ok(c.execute(
            "UPDATE anomalies SET acked_by = $2, acked_ns = $3 WHERE host = $1 AND acked_ns IS NULL",
            &[&host, &by, &now_ns],
        )
        .await? as usize)
    }

    async fn list_hosts(&self, now_ns: i64) -> DbResult<Vec<Host>> {
        let c = self.conn().await?;
        let day = now_ns - 86_400_000_000_000;
        let rows = c
            .query(&format!("{HOST_SELECT} ORDER BY h.name"), &[&day])
            .await?;
        rows.iter().map(host_row).collect()
    }

    async fn get_host(&self, name: &str, now_ns: i64) -> DbResult<Option<Host>> {
        let c = self.conn().await?;
        let day = now_ns - 86_400_000_000_000;
        c.query_opt(&format!("{HOST_SELECT} WHERE h.name = $2"), &[&day, &name])
            .await?
            .map(|r| host_row(&r))
            .transpose()
    }

    async fn risk_series(&self, host: &str, since_ns: i64) -> DbResult<Vec<(i64, u8)>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT received_ns, score FROM anomalies WHERE host = $1 AND received_ns >= $2 ORDER BY received_ns",
                &[&host, &since_ns],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let score: i64 = r.try_get(1)?;
                Ok((r.try_get(0)?, u8::try_from(score).unwrap_or(u8::MAX)))
            })
            .collect()
    }

    async fn previous_snapshot(&self, host: &str) -> DbResult<Option<serde_json::Value>> {
        let c = self.conn().await?;
        let r = c
            .query_opt(
                "SELECT data FROM snapshots WHERE host = $1 ORDER BY time_ns DESC, id DESC LIMIT 1 OFFSET 1",
                &[&host],
            )
            .await?;
        match r {
            Some(r) => Ok(Some(serde_json::from_str(&r.try_get::<_, String>(0)?)?)),
            None => Ok(None),
        }
    }

    async fn detections(&self) -> DbResult<Vec<String>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT detections FROM anomalies GROUP BY detections
                 ORDER BY MAX(received_ns) DESC LIMIT 2000",
                &[],
            )
            .await?;
        let mut set = std::collections::BTreeSet::new();
        for r in &rows {
            let d: String = r.try_get(0)?;
            for p in d.split(',').filter(|p| !p.is_empty()) {
                set.insert(p.to_string());
            }
        }
        Ok(set.into_iter().collect())
    }

    async fn purge(&self, h: &Horizons) -> DbResult<Purged> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let del = async |sql: &str, p: i64| -> DbResult<usize> {
            Ok(tx.execute(sql, &[&p]).await? as usize)
        };
        let p = Purged {
            anomalies: del("DELETE FROM anomalies WHERE received_ns < $1", h.anomalies).await?,
            snapshots: del("DELETE FROM snapshots WHERE time_ns < $1", h.snapshots).await?,
            fingerprints: del(
                "DELETE FROM fingerprints WHERE time_ns < $1",
                h.fingerprints,
            )
            .await?,
            incidents: del("DELETE FROM incidents WHERE received_ns < $1", h.incidents).await?,
            sessions: tx
                .execute(
                    "DELETE FROM sessions WHERE last_seen_ns < $1 OR created_ns < $2",
                    &[&h.session_idle, &h.session_created],
                )
                .await? as usize,
            audit: del("DELETE FROM audit_log WHERE time_ns < $1", h.audit).await?,
        };
        del("DELETE FROM hosts WHERE last_seen_ns < $1", h.hosts()).await?;
        del(
            "DELETE FROM ingest_batches WHERE received_ns < $1",
            h.hosts(),
        )
        .await?;
        tx.commit().await?;
        Ok(p)
    }
}
