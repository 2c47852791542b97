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

impl IncidentStore for SqliteStore {
    fn list_incidents(&self, f: &IncidentFilter) -> DbResult<IncidentPage> {
        let c = self.db()?;
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
    }

    fn get_incident(&self, host: &str, id: &str) -> DbResult<Option<StoredIncident>> {
        let c = self.db()?;
        c.query_row(
            &format!("SELECT {COLS} FROM incidents WHERE host = ?1 AND id = ?2"),
            params![host, id],
            raw,
        )
        .optional()?
        .map(stored)
        .transpose()
    }

    fn count_incidents(&self) -> DbResult<i64> {
        let c = self.db()?;
        Ok(c.query_row("SELECT COUNT(*) FROM incidents", [], |r| r.get(0))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Explanation, Level};
    use crate::server::incidents::tests::incident;
    use crate::server::store::{DataStore, IngestBatch};

    fn batch(id: &str, incidents: Vec<Incident>) -> IngestBatch {
        IngestBatch {
            batch_id: id.into(),
            incidents,
            ..Default::default()
        }
    }

    fn explanation(s: &str) -> Explanation {
        Explanation {
            summary: s.into(),
            likely_explanation: "x".into(),
            benign_alternatives: vec![],
            confidence: 0.5,
            evidence_ids: vec![],
            next_steps: vec![],
            source: "local".into(),
            warnings: vec![],
        }
    }

    #[test]
    fn later_states_replace_earlier_ones_and_never_go_backwards() {
        let s = SqliteStore::memory().unwrap();
        let out = s
            .ingest(&batch("b1", vec![incident("i", "h", 3, 10)]), 100)
            .unwrap();
        assert_eq!(out.incidents.stored, ["i"]);
        let out = s
            .ingest(&batch("b2", vec![incident("i", "h", 5, 10)]), 200)
            .unwrap();
        assert_eq!(out.incidents.updated, ["i"]);
        // An older state arriving late (a batch retried after a newer one went through).
        let out = s
            .ingest(&batch("b3", vec![incident("i", "h", 4, 10)]), 300)
            .unwrap();
        assert_eq!(out.incidents.stale, ["i"]);
        let out = s
            .ingest(&batch("b4", vec![incident("i", "h", 5, 10)]), 400)
            .unwrap();
        assert_eq!(out.incidents.duplicates, ["i"]);
        let got = s.get_incident("h", "i").unwrap().unwrap();
        assert_eq!(
            (
                got.incident.step_count,
                got.received_ns,
                got.first_received_ns
            ),
            (5, 200, 100)
        );
        // The same id on another host is another incident.
        assert!(s.get_incident("other", "i").unwrap().is_none());
        assert_eq!(s.count_incidents().unwrap(), 1);

        // Explanations: kept apart, replaced only by one of a later state.
        let mut e4 = incident("i", "h", 4, 10);
        e4.explanation = Some(explanation("four"));
        let out = s.ingest(&batch("b5", vec![e4]), 500).unwrap();
        assert_eq!(out.incidents.updated, ["i"], "first explanation");
        let got = s.get_incident("h", "i").unwrap().unwrap();
        assert_eq!(got.incident.step_count, 5, "the state did not go back");
        assert_eq!(got.explained_step_count, Some(4));
        let mut e3 = incident("i", "h", 3, 10);
        e3.explanation = Some(explanation("three"));
        let out = s.ingest(&batch("b6", vec![e3]), 600).unwrap();
        assert_eq!(out.incidents.stale, ["i"]);
        let got = s.get_incident("h", "i").unwrap().unwrap();
        assert_eq!(got.incident.explanation.unwrap().summary, "four");

        let p = s.purge(250, 0, 0, 0).unwrap();
        assert_eq!(p.incidents, 1, "retention counts from the latest receipt");
        assert_eq!(s.count_incidents().unwrap(), 0);
    }

    #[test]
    fn pages_follow_a_cursor_in_either_order_with_filters() {
        let s = SqliteStore::memory().unwrap();
        for n in 0..7u32 {
            let mut i = incident(
                &format!("i{n}"),
                if n % 2 == 0 { "a" } else { "b" },
                2,
                1000 * n as i64,
            );
            i.score = [50, 90, 30, 90, 70, 10, 60][n as usize];
            i.level = Level::from_score(i.score);
            s.ingest(&batch(&format!("b{n}"), vec![i]), 100 + n as i64)
                .unwrap();
        }
        let all = |order: IncidentOrder, host: Option<&str>| -> Vec<String> {
            let mut out = Vec::new();
            let mut cursor = None;
            loop {
                let p = s
                    .list_incidents(&IncidentFilter {
                        host: host.map(str::to_string),
                        order,
                        cursor,
                        limit: 2,
                        ..Default::default()
                    })
                    .unwrap();
                assert!(p.incidents.len() <= 2);
                out.extend(p.incidents.into_iter().map(|i| i.incident.id));
                match p.next_cursor {
                    Some(c) => cursor = Cursor::parse(&c),
                    None => break,
                }
            }
            out
        };
        assert_eq!(
            all(IncidentOrder::Recent, None),
            ["i6", "i5", "i4", "i3", "i2", "i1", "i0"]
        );
        assert_eq!(
            all(IncidentOrder::Score, None),
            ["i3", "i1", "i4", "i6", "i0", "i2", "i5"]
        );
        assert_eq!(all(IncidentOrder::Recent, Some("b")), ["i5", "i3", "i1"]);
        // An update moves an incident to the top of the recent list.
        s.ingest(&batch("u", vec![incident("i0", "a", 3, 0)]), 1000)
            .unwrap();
        assert_eq!(all(IncidentOrder::Recent, Some("a"))[0], "i0");
        // Time range: incidents active in [2000, 4000] (first 1000n, last 1000n + 2).
        let p = s
            .list_incidents(&IncidentFilter {
                from_ns: Some(2000),
                to_ns: Some(4000),
                limit: 50,
                ..Default::default()
            })
            .unwrap();
        let mut ids: Vec<String> = p.incidents.into_iter().map(|i| i.incident.id).collect();
        ids.sort();
        assert_eq!(ids, ["i2", "i3", "i4"]);
        let high = s
            .list_incidents(&IncidentFilter {
                min_level: Some(Level::High),
                limit: 50,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(high.incidents.len(), 4, "i0 was updated to a medium state");
    }
}
