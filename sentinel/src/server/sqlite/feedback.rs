//! SQLite implementation of `FeedbackStore`: analysts' verdicts, their undo, and what the
//! agent of each host has acknowledged of both (server/feedback.rs).

use rusqlite::{OptionalExtension, Row, params};

use super::SqliteStore;
use crate::server::feedback::*;
use crate::server::store::{DbError, DbResult};

/// The migration that adds the table (listed in `MIGRATIONS`, sqlite/mod.rs).
pub(super) const MIGRATION: &str = "CREATE TABLE feedback (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        host TEXT NOT NULL,
        target TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('anomaly','incident')),
        verdict TEXT NOT NULL CHECK (verdict IN ('benign','malicious')),
        scope TEXT NOT NULL CHECK (scope IN ('principal','exe','host')),
        note TEXT,
        by_user TEXT NOT NULL,
        created_ns INTEGER NOT NULL,
        delivered_ns INTEGER,
        delivery_error TEXT,
        undone_by TEXT,
        undone_ns INTEGER,
        undo_delivered_ns INTEGER,
        undo_error TEXT
     );
     CREATE INDEX feedback_host ON feedback(host);
     CREATE INDEX feedback_target ON feedback(target);";

const COLS: &str = "id, host, target, kind, verdict, scope, note, by_user, created_ns, \
     delivered_ns, delivery_error, undone_by, undone_ns, undo_delivered_ns, undo_error";

fn bad(col: usize, what: &str, v: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        col,
        rusqlite::types::Type::Text,
        format!("bad {what} {v}").into(),
    )
}

fn row(r: &Row) -> rusqlite::Result<StoredVerdict> {
    let kind: String = r.get(3)?;
    let verdict: String = r.get(4)?;
    let scope: String = r.get(5)?;
    Ok(StoredVerdict {
        id: r.get(0)?,
        host: r.get(1)?,
        target: r.get(2)?,
        kind: match kind.as_str() {
            "anomaly" => TargetKind::Anomaly,
            "incident" => TargetKind::Incident,
            _ => return Err(bad(3, "kind", kind)),
        },
        verdict: parse_verdict(&verdict).ok_or_else(|| bad(4, "verdict", verdict.clone()))?,
        scope: parse_scope(&scope).ok_or_else(|| bad(5, "scope", scope.clone()))?,
        note: r.get(6)?,
        by: r.get(7)?,
        created_ns: r.get(8)?,
        delivered_ns: r.get(9)?,
        delivery_error: r.get(10)?,
        undone_by: r.get(11)?,
        undone_ns: r.get(12)?,
        undo_delivered_ns: r.get(13)?,
        undo_error: r.get(14)?,
    })
}

fn delivery(v: &StoredVerdict, action: Action) -> Delivery {
    Delivery {
        id: v.id,
        action,
        target: v.target.clone(),
        verdict: v.verdict,
        scope: v.scope,
        note: v.note.clone(),
        by: v.by.clone(),
        time_ns: v.created_ns,
    }
}

#[async_trait::async_trait]
impl FeedbackStore for SqliteStore {
    async fn add_verdict(&self, v: &NewVerdict<'_>) -> DbResult<i64> {
        self.blocking(|| {
            let mut c = self.db()?;
            let tx = c.transaction()?;
            let active: Option<i64> = tx
                .query_row(
                    "SELECT id FROM feedback WHERE host = ?1 AND target = ?2 AND undone_ns IS NULL",
                    params![v.host, v.target],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = active {
                return Err(DbError::Conflict(format!("verdict {id} on {}", v.target)));
            }
            tx.execute(
            "INSERT INTO feedback (host, target, kind, verdict, scope, note, by_user, created_ns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                v.host,
                v.target,
                v.kind.as_str(),
                verdict_str(v.verdict),
                scope_str(v.scope),
                v.note,
                v.by,
                v.now_ns
            ],
        )?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            Ok(id)
        })
    }

    async fn get_verdict(&self, id: i64) -> DbResult<Option<StoredVerdict>> {
        self.blocking(|| {
            Ok(self
                .reader()?
                .query_row(
                    &format!("SELECT {COLS} FROM feedback WHERE id = ?1"),
                    params![id],
                    row,
                )
                .optional()?)
        })
    }

    async fn list_verdicts(&self, f: &VerdictFilter) -> DbResult<Vec<StoredVerdict>> {
        self.blocking(|| {
            let c = self.reader()?;
            let mut st = c.prepare(&format!(
                "SELECT {COLS} FROM feedback
             WHERE (?1 IS NULL OR host = ?1) AND (?2 IS NULL OR target = ?2)
             ORDER BY id DESC LIMIT ?3"
            ))?;
            let limit = f.limit.unwrap_or(500) as i64;
            let rows = st.query_map(params![f.host, f.target, limit], row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    async fn undo_verdict(&self, id: i64, by: &str, now_ns: i64) -> DbResult<bool> {
        self.blocking(|| {
        Ok(self.db()?.execute(
            "UPDATE feedback SET undone_by = ?2, undone_ns = ?3 WHERE id = ?1 AND undone_ns IS NULL",
            params![id, by, now_ns],
        )? > 0)
        })
    }

    async fn pending_verdicts(&self, host: &str) -> DbResult<Vec<Delivery>> {
        self.blocking(|| {
            let c = self.reader()?;
            let mut st = c.prepare(&format!(
            "SELECT {COLS} FROM feedback WHERE host = ?1
                AND (delivered_ns IS NULL OR (undone_ns IS NOT NULL AND undo_delivered_ns IS NULL))"
        ))?;
            let rows = st.query_map(params![host], row)?;
            // In the order they happened: a verdict, its undo, a new verdict on the same target.
            let mut events: Vec<(i64, Delivery)> = Vec::new();
            for v in rows {
                let v = v?;
                if v.delivered_ns.is_none() {
                    events.push((v.created_ns, delivery(&v, Action::Give)));
                }
                if let Some(t) = v.undone_ns {
                    events.push((t, delivery(&v, Action::Undo)));
                }
            }
            events.sort_by_key(|(t, d)| (*t, d.id, d.action == Action::Undo));
            Ok(events.into_iter().map(|(_, d)| d).collect())
        })
    }

    async fn ack_verdicts(&self, host: &str, acks: &[Ack], now_ns: i64) -> DbResult<usize> {
        self.blocking(|| {
            let mut c = self.db()?;
            let tx = c.transaction()?;
            let mut n = 0;
            for a in acks {
                n += match a.action {
                    Action::Give => tx.execute(
                        "UPDATE feedback SET delivered_ns = ?3, delivery_error = ?4
                     WHERE id = ?1 AND host = ?2 AND delivered_ns IS NULL",
                        params![a.id, host, now_ns, a.error],
                    )?,
                    Action::Undo => tx.execute(
                        "UPDATE feedback SET undo_delivered_ns = ?3, undo_error = ?4
                     WHERE id = ?1 AND host = ?2 AND undone_ns IS NOT NULL
                       AND undo_delivered_ns IS NULL",
                        params![a.id, host, now_ns, a.error],
                    )?,
                };
            }
            tx.commit()?;
            Ok(n)
        })
    }
}
