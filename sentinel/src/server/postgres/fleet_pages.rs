//! PostgreSQL pages of the host and anomaly lists (as sqlite/fleet_pages.rs): cursor-paginated,
//! one statement each. The anomaly cursor's tie-break is `seq` (the SQLite rowid, kept by
//! `sentinel serve migrate`).

use tokio_postgres::Client;

use super::fleet::{AGENT_COLS, agent_at, json_string};
use crate::server::fleet::*;
use crate::server::sqlite::{level_rank, rank_level};
use crate::server::store::{DbResult, Host, StoredAnomaly};

pub(super) async fn anomalies(c: &Client, f: &AnomalyPageFilter) -> DbResult<AnomalyPage> {
    let limit = f.limit.clamp(1, 1000);
    let nz = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let rows = c
        .query(
            "SELECT record, received_ns, acked_by, acked_ns, conflict_of, time_ns, seq FROM anomalies
             WHERE ($1::TEXT IS NULL OR host = $1) AND ($2::TEXT IS NULL OR user_name = $2)
               AND level_rank >= $3
               AND ($4::TEXT IS NULL OR strpos(detections, ',' || $4 || ',') > 0)
               AND (NOT $5 OR acked_ns IS NULL)
               AND ($6::BIGINT IS NULL OR time_ns >= $6) AND ($7::BIGINT IS NULL OR time_ns <= $7)
               AND ($8::BIGINT IS NULL OR (received_ns, time_ns, seq) < ($8, $9::BIGINT, $10::BIGINT))
             ORDER BY received_ns DESC, time_ns DESC, seq DESC LIMIT $11",
            &[
                &nz(&f.host),
                &nz(&f.user),
                &f.level.map(level_rank).unwrap_or(0),
                &nz(&f.detection),
                &f.unacked,
                &f.from_ns,
                &f.to_ns,
                &f.cursor.map(|c| c.received_ns),
                &f.cursor.map(|c| c.time_ns),
                &f.cursor.map(|c| c.row),
                &(limit as i64 + 1),
            ],
        )
        .await?;
    let more = rows.len() > limit;
    let mut next = None;
    let mut anomalies = Vec::with_capacity(limit);
    for r in rows.iter().take(limit) {
        let record: String = r.try_get(0)?;
        let received_ns: i64 = r.try_get(1)?;
        next = Some(AnomalyCursor {
            received_ns,
            time_ns: r.try_get(5)?,
            row: r.try_get(6)?,
        });
        anomalies.push(StoredAnomaly {
            anomaly: serde_json::from_str(&record)?,
            received_ns,
            acked_by: r.try_get(2)?,
            acked_ns: r.try_get(3)?,
            conflict_of: r.try_get(4)?,
        });
    }
    Ok(AnomalyPage {
        anomalies,
        next_cursor: next.filter(|_| more).map(|c| c.encode()),
    })
}

pub(super) async fn hosts(c: &Client, f: &HostPageFilter, now_ns: i64) -> DbResult<HostPage> {
    let limit = f.limit.clamp(1, 1000);
    let day = now_ns - 86_400_000_000_000;
    let learning = format!(
        "COALESCE({}, {})",
        json_string("h.snapshot", "{learning}"),
        json_string("h.snapshot", "{audit_summary,learning,confidence}")
    );
    let rows = c
        .query(
            &format!(
                "SELECT h.name, h.first_seen_ns, h.last_seen_ns, h.snapshot_ns, {learning},
                    (SELECT MAX(level_rank) FROM anomalies a WHERE a.host = h.name AND a.received_ns >= $1),
                    (SELECT COUNT(*) FROM anomalies a WHERE a.host = h.name AND a.received_ns >= $1),
                    (SELECT COUNT(*) FROM anomalies a WHERE a.host = h.name AND a.acked_ns IS NULL),
                    {AGENT_COLS}
                 FROM hosts h LEFT JOIN agents g ON g.host = h.name
                 WHERE ($2::TEXT IS NULL OR h.name > $2) AND ($3::BIGINT IS NULL OR h.last_seen_ns >= $3)
                   AND ($4::BIGINT IS NULL OR h.last_seen_ns <= $4)
                   AND ($5::TEXT IS NULL OR COALESCE(g.state, 'unknown') = $5)
                 ORDER BY h.name LIMIT $6"
            ),
            &[
                &day,
                &f.cursor.as_deref().filter(|s| !s.is_empty()),
                &f.from_ns,
                &f.to_ns,
                &f.state.map(AgentState::as_str),
                &(limit as i64 + 1),
            ],
        )
        .await?;
    let more = rows.len() > limit;
    let mut hosts = Vec::with_capacity(limit);
    for r in rows.iter().take(limit) {
        let host = Host {
            name: r.try_get(0)?,
            first_seen_ns: r.try_get(1)?,
            last_seen_ns: r.try_get(2)?,
            level_24h: r.try_get::<_, Option<i64>>(5)?.and_then(rank_level),
            anomalies_24h: r.try_get(6)?,
            unacked: r.try_get(7)?,
            snapshot: None,
            snapshot_ns: r.try_get(3)?,
            learning: r.try_get(4)?,
        };
        hosts.push(HostRow {
            host,
            agent: agent_at(r, 8)?,
        });
    }
    let next_cursor = hosts.last().filter(|_| more).map(|h| h.host.name.clone());
    Ok(HostPage { hosts, next_cursor })
}
