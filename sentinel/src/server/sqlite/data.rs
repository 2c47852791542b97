//! SQLite implementation of `DataStore`: what agents push (anomalies, snapshots,
//! fingerprints), hosts, acknowledgements and the retention horizon.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{SqliteStore, level_rank, rank_level};
use crate::model::Anomaly;
use crate::server::store::*;

type RawAnomaly = (String, i64, Option<String>, Option<i64>, Option<String>);

const ANOMALY_COLS: &str = "record, received_ns, acked_by, acked_ns, conflict_of";

fn anomaly_row(r: &Row) -> rusqlite::Result<RawAnomaly> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn stored(raw: RawAnomaly) -> DbResult<StoredAnomaly> {
    Ok(StoredAnomaly {
        anomaly: serde_json::from_str(&raw.0)?,
        received_ns: raw.1,
        acked_by: raw.2,
        acked_ns: raw.3,
        conflict_of: raw.4,
    })
}

/// The host a snapshot describes: C-Sentinel put it under `system.hostname`.
fn snapshot_host(v: &serde_json::Value) -> Option<String> {
    v.pointer("/system/hostname")
        .or_else(|| v.get("hostname"))
        .or_else(|| v.get("host"))
        .and_then(|h| h.as_str())
        .map(str::to_string)
}

/// Hosts with their last 24 h figures in one statement (`?1` is the start of the 24 h), for
/// the host list and one host alike.
const HOST_SELECT: &str =
    "SELECT h.name, h.first_seen_ns, h.last_seen_ns, h.snapshot, h.snapshot_ns,
        (SELECT MAX(level_rank) FROM anomalies a WHERE a.host = h.name AND a.received_ns >= ?1),
        (SELECT COUNT(*) FROM anomalies a WHERE a.host = h.name AND a.received_ns >= ?1),
        (SELECT COUNT(*) FROM anomalies a WHERE a.host = h.name AND a.acked_ns IS NULL)
     FROM hosts h";

type HostRow = (
    String,
    i64,
    i64,
    Option<String>,
    Option<i64>,
    Option<i64>,
    i64,
    i64,
);

fn host_row(r: &Row) -> rusqlite::Result<HostRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

pub(super) fn host_of(c: &Connection, name: &str, now_ns: i64) -> DbResult<Option<Host>> {
    let day = now_ns - 86_400_000_000_000;
    c.query_row(
        &format!("{HOST_SELECT} WHERE h.name = ?2"),
        params![day, name],
        host_row,
    )
    .optional()?
    .map(host)
    .transpose()
}

fn host(row: HostRow) -> DbResult<Host> {
    let (name, first, last, snap, snap_ns, rank, n24, unacked) = row;
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
        name,
        first_seen_ns: first,
        last_seen_ns: last,
        level_24h: rank.and_then(rank_level),
        anomalies_24h: n24,
        unacked,
        snapshot,
        snapshot_ns: snap_ns,
        learning,
    })
}

pub(super) fn touch_host(c: &Connection, name: &str, now_ns: i64) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO hosts (name, first_seen_ns, last_seen_ns) VALUES (?1, ?2, ?2)
         ON CONFLICT(name) DO UPDATE SET last_seen_ns = MAX(last_seen_ns, excluded.last_seen_ns)",
        params![name, now_ns],
    )?;
    Ok(())
}

/// The record without its explanation: an explanation that follows later (same id) is an
/// addition, not different content.
fn content_key(a: &Anomaly) -> DbResult<String> {
    let mut a = a.clone();
    a.explanation = None;
    Ok(serde_json::to_string(&a)?)
}

fn insert_row(
    c: &Connection,
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
    let n = c.execute(
        "INSERT OR IGNORE INTO anomalies (id, host, time_ns, received_ns, level_rank, score, user, detections, record, conflict_of)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![a.id, a.host, a.time_ns, now_ns, level_rank(a.level), a.score, user, dets, serde_json::to_string(a)?, conflict_of],
    )?;
    Ok(n == 1)
}

enum Inserted {
    New(StoredAnomaly),
    Duplicate,
    Conflict(StoredAnomaly),
}

/// Stores an anomaly. Its id is the agent's; an id already stored with the same content is
/// a retry (nothing changes, except that a late explanation is added); an id already stored
/// with other content (or by another host) is kept under `<id>~<digest>` and marked as a
/// conflict, so a pre-claimed id can never make a real anomaly disappear.
fn insert_anomaly(c: &Connection, a: &Anomaly, now_ns: i64) -> DbResult<Inserted> {
    let fresh = |a: &Anomaly, conflict_of: Option<String>| StoredAnomaly {
        anomaly: a.clone(),
        received_ns: now_ns,
        acked_by: None,
        acked_ns: None,
        conflict_of,
    };
    if insert_row(c, a, now_ns, None)? {
        return Ok(Inserted::New(fresh(a, None)));
    }
    let existing: Option<String> = c
        .query_row(
            "SELECT record FROM anomalies WHERE id = ?1",
            params![a.id],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(rec) = existing {
        let old: Anomaly = serde_json::from_str(&rec)?;
        if old.host == a.host && content_key(&old)? == content_key(a)? {
            if old.explanation.is_none() && a.explanation.is_some() {
                c.execute(
                    "UPDATE anomalies SET record = ?2 WHERE id = ?1",
                    params![a.id, serde_json::to_string(a)?],
                )?;
            }
            return Ok(Inserted::Duplicate);
        }
    }
    let digest = crate::server::auth::token_hash(&format!("{}\n{}", a.host, content_key(a)?));
    let mut renamed = a.clone();
    renamed.id = format!("{}~{}", a.id, &digest[..12]);
    if insert_row(c, &renamed, now_ns, Some(&a.id))? {
        Ok(Inserted::Conflict(fresh(&renamed, Some(a.id.clone()))))
    } else {
        // The same conflicting record sent again.
        Ok(Inserted::Duplicate)
    }
}

#[async_trait::async_trait]
impl DataStore for SqliteStore {
    async fn ingest(&self, batch: &IngestBatch, now_ns: i64) -> DbResult<IngestOutcome> {
        self.blocking(|| {
            let mut c = self.db()?;
            let tx = c.transaction()?;
            let fresh = tx.execute(
                "INSERT OR IGNORE INTO ingest_batches (batch_id, received_ns) VALUES (?1, ?2)",
                params![batch.batch_id, now_ns],
            )? == 1;
            let mut out = IngestOutcome {
                duplicate: !fresh,
                ..Default::default()
            };
            if !fresh {
                return Ok(out);
            }
            if let Some(h) = &batch.host {
                touch_host(&tx, h, now_ns)?;
            }
            for a in &batch.anomalies {
                touch_host(&tx, &a.host, now_ns)?;
                match insert_anomaly(&tx, a, now_ns)? {
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
            super::incidents::ingest(&tx, &batch.incidents, now_ns, &mut out.incidents)?;
            for s in &batch.snapshots {
                let Some(host) = snapshot_host(s).or_else(|| batch.host.clone()) else {
                    continue;
                };
                touch_host(&tx, &host, now_ns)?;
                // The server's receipt time: the latest snapshot received is the current one,
                // whatever time the agent wrote into it.
                let text = s.to_string();
                tx.execute(
                    "INSERT INTO snapshots (host, time_ns, data) VALUES (?1, ?2, ?3)",
                    params![host, now_ns, text],
                )?;
                tx.execute(
                    "UPDATE hosts SET snapshot = ?2, snapshot_ns = ?3 WHERE name = ?1",
                    params![host, text, now_ns],
                )?;
                out.snapshots += 1;
            }
            for f in &batch.fingerprints {
                let host = batch
                    .host
                    .clone()
                    .or_else(|| snapshot_host(f))
                    .unwrap_or_default();
                tx.execute(
                    "INSERT INTO fingerprints (host, time_ns, data) VALUES (?1, ?2, ?3)",
                    params![host, now_ns, f.to_string()],
                )?;
                out.fingerprints += 1;
            }
            tx.commit()?;
            Ok(out)
        })
    }

    async fn list_anomalies(&self, f: &AnomalyFilter) -> DbResult<Vec<StoredAnomaly>> {
        self.blocking(|| {
            let c = self.reader()?;
            let mut st = c.prepare(&format!(
                "SELECT {ANOMALY_COLS} FROM anomalies
             WHERE (?1 IS NULL OR host = ?1) AND (?2 IS NULL OR user = ?2) AND level_rank >= ?3
               AND (?4 IS NULL OR instr(detections, ',' || ?4 || ',') > 0)
               AND (?5 = 0 OR acked_ns IS NULL)
             ORDER BY received_ns DESC, time_ns DESC, rowid DESC LIMIT ?6"
            ))?;
            let rows = st
                .query_map(
                    params![
                        f.host.as_deref().filter(|s| !s.is_empty()),
                        f.user.as_deref().filter(|s| !s.is_empty()),
                        f.level.map(level_rank).unwrap_or(0),
                        f.detection.as_deref().filter(|s| !s.is_empty()),
                        f.unacked.unwrap_or(false),
                        f.limit.unwrap_or(100).min(1000) as i64
                    ],
                    anomaly_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(stored).collect()
        })
    }

    async fn count_anomalies(&self) -> DbResult<i64> {
        self.blocking(|| {
            let c = self.reader()?;
            Ok(c.query_row("SELECT COUNT(*) FROM anomalies", [], |r| r.get(0))?)
        })
    }

    async fn get_anomaly(&self, id: &str) -> DbResult<Option<StoredAnomaly>> {
        self.blocking(|| {
            let c = self.reader()?;
            let raw = c
                .query_row(
                    &format!("SELECT {ANOMALY_COLS} FROM anomalies WHERE id = ?1"),
                    params![id],
                    anomaly_row,
                )
                .optional()?;
            raw.map(stored).transpose()
        })
    }

    async fn ack_anomaly(&self, id: &str, by: &str, now_ns: i64) -> DbResult<bool> {
        self.blocking(|| {
            let c = self.db()?;
            Ok(c.execute(
            "UPDATE anomalies SET acked_by = ?2, acked_ns = ?3 WHERE id = ?1 AND acked_ns IS NULL",
            params![id, by, now_ns],
        )? == 1)
        })
    }

    async fn ack_host(&self, host: &str, by: &str, now_ns: i64) -> DbResult<usize> {
        self.blocking(|| {
        let c = self.db()?;
        Ok(c.execute(
            "UPDATE anomalies SET acked_by = ?2, acked_ns = ?3 WHERE host = ?1 AND acked_ns IS NULL",
            params![host, by, now_ns],
        )?)
        })
    }

    async fn list_hosts(&self, now_ns: i64) -> DbResult<Vec<Host>> {
        self.blocking(|| {
            let c = self.reader()?;
            let day = now_ns - 86_400_000_000_000;
            let rows = c
                .prepare(&format!("{HOST_SELECT} ORDER BY h.name"))?
                .query_map(params![day], host_row)?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(host).collect()
        })
    }

    async fn get_host(&self, name: &str, now_ns: i64) -> DbResult<Option<Host>> {
        self.blocking(|| {
            let c = self.reader()?;
            host_of(&c, name, now_ns)
        })
    }

    async fn risk_series(&self, host: &str, since_ns: i64) -> DbResult<Vec<(i64, u8)>> {
        self.blocking(|| {
        let c = self.reader()?;
        let mut st = c.prepare("SELECT received_ns, score FROM anomalies WHERE host = ?1 AND received_ns >= ?2 ORDER BY received_ns")?;
        Ok(st
            .query_map(params![host, since_ns], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn previous_snapshot(&self, host: &str) -> DbResult<Option<serde_json::Value>> {
        self.blocking(|| {
        let c = self.reader()?;
        let t: Option<String> = c
            .query_row(
                "SELECT data FROM snapshots WHERE host = ?1 ORDER BY time_ns DESC, id DESC LIMIT 1 OFFSET 1",
                params![host],
                |r| r.get(0),
            )
            .optional()?;
        Ok(t.map(|t| serde_json::from_str(&t)).transpose()?)
        })
    }

    async fn detections(&self) -> DbResult<Vec<String>> {
        self.blocking(|| {
            let c = self.reader()?;
            let mut st = c.prepare(
                "SELECT DISTINCT detections FROM anomalies ORDER BY received_ns DESC LIMIT 2000",
            )?;
            let mut set = std::collections::BTreeSet::new();
            for d in st.query_map([], |r| r.get::<_, String>(0))? {
                for p in d?.split(',').filter(|p| !p.is_empty()) {
                    set.insert(p.to_string());
                }
            }
            Ok(set.into_iter().collect())
        })
    }

    async fn purge(&self, h: &Horizons) -> DbResult<Purged> {
        self.blocking(|| {
            let mut c = self.db()?;
            let tx = c.transaction()?;
            let p = Purged {
                anomalies: tx.execute(
                    "DELETE FROM anomalies WHERE received_ns < ?1",
                    params![h.anomalies],
                )?,
                snapshots: tx.execute(
                    "DELETE FROM snapshots WHERE time_ns < ?1",
                    params![h.snapshots],
                )?,
                fingerprints: tx.execute(
                    "DELETE FROM fingerprints WHERE time_ns < ?1",
                    params![h.fingerprints],
                )?,
                incidents: super::incidents::purge(&tx, h.incidents)?,
                sessions: tx.execute(
                    "DELETE FROM sessions WHERE last_seen_ns < ?1 OR created_ns < ?2",
                    params![h.session_idle, h.session_created],
                )?,
                audit: tx.execute("DELETE FROM audit_log WHERE time_ns < ?1", params![h.audit])?,
            };
            // Hosts silent for longer than every horizon have nothing left to show.
            tx.execute(
                "DELETE FROM hosts WHERE last_seen_ns < ?1",
                params![h.hosts()],
            )?;
            tx.execute(
                "DELETE FROM ingest_batches WHERE received_ns < ?1",
                params![h.hosts()],
            )?;
            tx.commit()?;
            Ok(p)
        })
    }
}
