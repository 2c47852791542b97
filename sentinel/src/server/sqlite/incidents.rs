//! SQLite storage of session incidents: one row per (host, id) holding the state with the
//! highest `step_count` and, apart, the latest explanation. Every state that changes the row
//! takes the next `seq`, the list's order and cursor.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{SqliteStore, level_rank};
use crate::incident::Incident;
use crate::server::incidents::*;
use crate::server::store::DbResult;

/// Migration: the incidents table (see `MIGRATIONS` in mod.rs).
pub(super) const MIGRATION: &str = "CREATE TABLE incidents (
        host TEXT NOT NULL,
        id TEXT NOT NULL,
        version INTEGER NOT NULL,
        first_ns INTEGER NOT NULL,
        last_ns INTEGER NOT NULL,
        level_rank INTEGER NOT NULL,
        score INTEGER NOT NULL,
        record TEXT NOT NULL,
        explanation TEXT,
        explained_version INTEGER,
        first_received_ns INTEGER NOT NULL,
        received_ns INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (host, id)
     );
     CREATE INDEX incidents_seq ON incidents(seq);
     CREATE INDEX incidents_score ON incidents(score, seq);
     CREATE INDEX incidents_received ON incidents(received_ns);";

const COLS: &str = "record, explanation, explained_version, first_received_ns, received_ns, seq";

type Raw = (String, Option<String>, Option<i64>, i64, i64, i64);

fn raw(r: &Row) -> rusqlite::Result<Raw> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn stored(r: Raw) -> DbResult<StoredIncident> {
    let mut incident: Incident = serde_json::from_str(&r.0)?;
    incident.explanation = match r.1 {
        Some(e) => Some(serde_json::from_str(&e)?),
        None => None,
    };
    Ok(StoredIncident {
        incident,
        explained_step_count: r.2.and_then(|v| u32::try_from(v).ok()),
        first_received_ns: r.3,
        received_ns: r.4,
        seq: r.5,
    })
}

enum Change {
    Stored,
    Updated,
    Duplicate,
    Stale,
}

fn next_seq(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM incidents", [], |r| {
        r.get(0)
    })
}

/// Stores one incident state: new, a later state (replaces), the same again, or an older one
/// (kept out). An explanation is kept when it describes a later state than the one kept.
fn upsert(c: &Connection, i: &Incident, now_ns: i64) -> DbResult<Change> {
    let version = i64::from(i.step_count);
    let mut bare = i.clone();
    bare.explanation = None;
    let record = serde_json::to_string(&bare)?;
    let explanation = i
        .explanation
        .as_ref()
        .map(serde_json::to_string)
        .transpose()?;
    let existing: Option<(i64, Option<i64>)> = c
        .query_row(
            "SELECT version, explained_version FROM incidents WHERE host = ?1 AND id = ?2",
            params![i.host, i.id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((stored_version, explained)) = existing else {
        c.execute(
            "INSERT INTO incidents (host, id, version, first_ns, last_ns, level_rank, score, record,
                explanation, explained_version, first_received_ns, received_ns, seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12)",
            params![
                i.host,
                i.id,
                version,
                i.first_ns,
                i.last_ns,
                level_rank(i.level),
                i.score,
                record,
                explanation,
                explanation.as_ref().map(|_| version),
                now_ns,
                next_seq(c)?
            ],
        )?;
        return Ok(Change::Stored);
    };
    let mut change = None;
    if version > stored_version {
        c.execute(
            "UPDATE incidents SET version = ?3, first_ns = ?4, last_ns = ?5, level_rank = ?6,
                score = ?7, record = ?8, received_ns = ?9, seq = ?10
             WHERE host = ?1 AND id = ?2",
            params![
                i.host,
                i.id,
                version,
                i.first_ns,
                i.last_ns,
                level_rank(i.level),
                i.score,
                record,
                now_ns,
                next_seq(c)?
            ],
        )?;
        change = Some(Change::Updated);
    }
    if let Some(e) = &explanation
        && explained.is_none_or(|v| version > v)
    {
        c.execute(
            "UPDATE incidents SET explanation = ?3, explained_version = ?4 WHERE host = ?1 AND id = ?2",
            params![i.host, i.id, e, version],
        )?;
        change = Some(Change::Updated);
    }
    Ok(change.unwrap_or(if version < stored_version {
        Change::Stale
    } else {
        Change::Duplicate
    }))
}

/// Stores a batch's incidents inside the batch's transaction.
pub(super) fn ingest(
    c: &Connection,
    list: &[Incident],
    now_ns: i64,
    out: &mut IncidentOutcome,
) -> DbResult<()> {
    for i in list {
        super::data::touch_host(c, &i.host, now_ns)?;
        let to = match upsert(c, i, now_ns)? {
            Change::Stored => &mut out.stored,
            Change::Updated => &mut out.updated,
            Change::Duplicate => &mut out.duplicates,
            Change::Stale => &mut out.stale,
        };
        to.push(i.id.clone());
    }
    Ok(())
}

/// Retention: incidents whose latest state arrived before the horizon.
pub(super) fn purge(c: &Connection, before_ns: i64) -> rusqlite::Result<usize> {
    c.execute(
        "DELETE FROM incidents WHERE received_ns < ?1",
        params![before_ns],
    )
}

#[async_trait::async_trait]
impl IncidentStore for SqliteStore {
    async fn list_incidents(&self, f: &IncidentFilter) -> DbResult<IncidentPage> {
        self.blocking(|| {
            let c = self.reader()?;
            let (order, after) = match f.order {
                IncidentOrder::Recent => ("seq DESC", "(?6 IS NULL OR seq < ?7)"),
                IncidentOrder::Score => (
                    "score DESC, seq DESC",
                    "(?6 IS NULL OR score < ?6 OR (score = ?6 AND seq < ?7))",
                ),
            };
            let mut st = c.prepare(&format!(
                "SELECT {COLS} FROM incidents
             WHERE (?1 IS NULL OR host = ?1) AND (?2 IS NULL OR last_ns >= ?2)
               AND (?3 IS NULL OR first_ns <= ?3) AND level_rank >= ?4 AND {after}
             ORDER BY {order} LIMIT ?5"
            ))?;
            let limit = f.limit.clamp(1, 500);
            let rows = st
                .query_map(
                    params![
                        f.host,
                        f.from_ns,
                        f.to_ns,
                        f.min_level.map(level_rank).unwrap_or(0),
                        // One more than asked: whether a next page exists.
                        (limit + 1) as i64,
                        f.cursor.map(|c| c.score),
                        f.cursor.map(|c| c.seq),
                    ],
                    raw,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            let mut incidents = rows.into_iter().map(stored).collect::<DbResult<Vec<_>>>()?;
            let next_cursor = if incidents.len() > limit {
                incidents.truncate(limit);
                incidents.last().map(|l| {
                    Cursor {
                        score: i64::from(l.incident.score),
                        seq: l.seq,
                    }
                    .encode()
                })
            } else {
                None
            };
            Ok(IncidentPage {
                incidents,
                next_cursor,
            })
        })
    }

    async fn get_incident(&self, host: &str, id: &str) -> DbResult<Option<StoredIncident>> {
        self.blocking(|| {
            let c = self.reader()?;
            c.query_row(
                &format!("SELECT {COLS} FROM incidents WHERE host = ?1 AND id = ?2"),
                params![host, id],
                raw,
            )
            .optional()?
            .map(stored)
            .transpose()
        })
    }

    async fn count_incidents(&self) -> DbResult<i64> {
        self.blocking(|| {
            let c = self.reader()?;
            Ok(c.query_row("SELECT COUNT(*) FROM incidents", [], |r| r.get(0))?)
        })
    }
}
