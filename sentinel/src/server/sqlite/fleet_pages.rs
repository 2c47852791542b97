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
