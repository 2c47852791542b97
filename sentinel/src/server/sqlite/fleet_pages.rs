//! SQLite pages of the host and anomaly lists (`GET /api/hosts`, `GET /api/anomalies`):
//! cursor-paginated, each one statement.

use rusqlite::{Connection, params};

use super::fleet::{AGENT_COLS, agent_of, agent_raw};
use super::{level_rank, rank_level};
use crate::server::fleet::*;
use crate::server::store::{DbResult, Host, StoredAnomaly};

/// A page of anomalies, newest received first (`FleetStore::list_anomalies_page`).
pub(super) fn anomalies(c: &Connection, f: &AnomalyPageFilter) -> DbResult<AnomalyPage> {
    let limit = f.limit.clamp(1, 1000);
    let mut st = c.prepare(
        "SELECT record, received_ns, acked_by, acked_ns, conflict_of, time_ns, rowid FROM anomalies
         WHERE (?1 IS NULL OR host = ?1) AND (?2 IS NULL OR user = ?2) AND level_rank >= ?3
           AND (?4 IS NULL OR instr(detections, ',' || ?4 || ',') > 0)
           AND (?5 = 0 OR acked_ns IS NULL)
           AND (?6 IS NULL OR time_ns >= ?6) AND (?7 IS NULL OR time_ns <= ?7)
           AND (?8 IS NULL OR received_ns < ?8 OR (received_ns = ?8
                AND (time_ns < ?9 OR (time_ns = ?9 AND rowid < ?10))))
         ORDER BY received_ns DESC, time_ns DESC, rowid DESC LIMIT ?11",
    )?;
    let nz = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let rows = st
        .query_map(
            params![
                nz(&f.host),
                nz(&f.user),
                f.level.map(level_rank).unwrap_or(0),
                nz(&f.detection),
                f.unacked,
                f.from_ns,
                f.to_ns,
                f.cursor.map(|c| c.received_ns),
                f.cursor.map(|c| c.time_ns),
                f.cursor.map(|c| c.row),
                limit as i64 + 1
            ],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let more = rows.len() > limit;
    let mut next = None;
    let mut anomalies = Vec::with_capacity(limit);
    for (record, received_ns, acked_by, acked_ns, conflict_of, time_ns, row) in
        rows.into_iter().take(limit)
    {
        next = Some(AnomalyCursor {
            received_ns,
            time_ns,
            row,
        });
        anomalies.push(StoredAnomaly {
            anomaly: serde_json::from_str(&record)?,
            received_ns,
            acked_by,
            acked_ns,
            conflict_of,
        });
    }
    Ok(AnomalyPage {
        anomalies,
        next_cursor: next.filter(|_| more).map(|c| c.encode()),
    })
}

/// A page of hosts by name with their agents (`FleetStore::list_hosts_page`).
pub(super) fn hosts(c: &Connection, f: &HostPageFilter, now_ns: i64) -> DbResult<HostPage> {
    let limit = f.limit.clamp(1, 1000);
    let day = now_ns - 86_400_000_000_000;
    // One statement: the 24-hour figures come from the (host, received_ns) index per row;
    // snapshots stay out of lists (GET /api/hosts/{name} has the latest).
    let mut st = c.prepare(&format!(
        "SELECT h.name, h.first_seen_ns, h.last_seen_ns, h.snapshot_ns,
            COALESCE(json_extract(h.snapshot, '$.learning'),
                     json_extract(h.snapshot, '$.audit_summary.learning.confidence')),
            (SELECT MAX(level_rank) FROM anomalies a WHERE a.host = h.name AND a.received_ns >= ?1),
            (SELECT COUNT(*) FROM anomalies a WHERE a.host = h.name AND a.received_ns >= ?1),
            (SELECT COUNT(*) FROM anomalies a WHERE a.host = h.name AND a.acked_ns IS NULL),
            {AGENT_COLS}
         FROM hosts h LEFT JOIN agents g ON g.host = h.name
         WHERE (?2 IS NULL OR h.name > ?2) AND (?3 IS NULL OR h.last_seen_ns >= ?3)
           AND (?4 IS NULL OR h.last_seen_ns <= ?4)
           AND (?5 IS NULL OR COALESCE(g.state, 'unknown') = ?5)
         ORDER BY h.name LIMIT ?6"
    ))?;
    let rows = st
        .query_map(
            params![
                day,
                f.cursor.as_deref().filter(|s| !s.is_empty()),
                f.from_ns,
                f.to_ns,
                f.state.map(AgentState::as_str),
                limit as i64 + 1
            ],
            |r| {
                let learning: Option<String> = r.get::<_, Option<String>>(4).unwrap_or(None);
                let host = Host {
                    name: r.get(0)?,
                    first_seen_ns: r.get(1)?,
                    last_seen_ns: r.get(2)?,
                    level_24h: r.get::<_, Option<i64>>(5)?.and_then(rank_level),
                    anomalies_24h: r.get(6)?,
                    unacked: r.get(7)?,
                    snapshot: None,
                    snapshot_ns: r.get(3)?,
                    learning,
                };
                Ok((host, agent_raw(r, 8)?))
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let more = rows.len() > limit;
    let mut hosts = Vec::with_capacity(limit);
    for (host, agent) in rows.into_iter().take(limit) {
        hosts.push(HostRow {
            host,
            agent: agent.map(agent_of).transpose()?,
        });
    }
    let next_cursor = hosts.last().filter(|_| more).map(|h| h.host.name.clone());
    Ok(HostPage { hosts, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::sqlite::SqliteStore;
    use crate::server::store::{DataStore, IngestBatch};

    const S: i64 = 1_000_000_000;

    fn beat(s: &SqliteStore, host: &str, now: i64) {
        let v = Vitals::default();
        s.record_heartbeat(&BeatRecord {
            host,
            now_ns: now,
            interval_secs: 10,
            vitals: &v,
            data: "{}",
        })
        .unwrap();
    }

    #[test]
    fn pages_follow_cursors_and_time_ranges() {
        let s = SqliteStore::memory().unwrap();
        let now = 100 * 86_400 * S;
        let mut anomalies = Vec::new();
        for i in 0..7 {
            let mut a: crate::model::Anomaly = serde_json::from_value(serde_json::json!({
                "id": format!("a{i}"), "host": format!("h{}", i % 3), "time_ns": now - 100 + i,
                "principal": { "uid": 1, "user": "u", "session": null },
                "chain": [], "score": 10, "level": "low", "factors": [], "evidence": [],
                "fingerprint": "f", "explanation": null
            }))
            .unwrap();
            a.score = 10;
            anomalies.push(a);
        }
        s.ingest(
            &IngestBatch {
                batch_id: "b".into(),
                anomalies,
                ..Default::default()
            },
            now,
        )
        .unwrap();
        let mut f = AnomalyPageFilter {
            limit: 3,
            ..Default::default()
        };
        let mut seen = Vec::new();
        loop {
            let p = s.list_anomalies_page(&f).unwrap();
            seen.extend(p.anomalies.iter().map(|a| a.anomaly.id.clone()));
            match p.next_cursor {
                Some(c) => f.cursor = AnomalyCursor::parse(&c),
                None => break,
            }
        }
        assert_eq!(seen, ["a6", "a5", "a4", "a3", "a2", "a1", "a0"]);
        let ranged = s
            .list_anomalies_page(&AnomalyPageFilter {
                from_ns: Some(now - 98),
                to_ns: Some(now - 96),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        let ids: Vec<&str> = ranged
            .anomalies
            .iter()
            .map(|a| a.anomaly.id.as_str())
            .collect();
        assert_eq!(ids, ["a4", "a3", "a2"]);
        let p1 = s
            .list_hosts_page(
                &HostPageFilter {
                    limit: 2,
                    ..Default::default()
                },
                now,
            )
            .unwrap();
        let names: Vec<&str> = p1.hosts.iter().map(|h| h.host.name.as_str()).collect();
        assert_eq!(names, ["h0", "h1"]);
        assert_eq!(p1.hosts[0].host.anomalies_24h, 3);
        let p2 = s
            .list_hosts_page(
                &HostPageFilter {
                    limit: 2,
                    cursor: p1.next_cursor,
                    ..Default::default()
                },
                now,
            )
            .unwrap();
        assert_eq!(p2.hosts.len(), 1);
        assert_eq!(p2.next_cursor, None);
        beat(&s, "h2", now);
        let healthy = s
            .list_hosts_page(
                &HostPageFilter {
                    limit: 10,
                    state: Some(AgentState::Healthy),
                    ..Default::default()
                },
                now,
            )
            .unwrap();
        assert_eq!(healthy.hosts.len(), 1);
        assert_eq!(
            healthy.hosts[0].agent.as_ref().unwrap().state,
            AgentState::Healthy
        );
    }
}
