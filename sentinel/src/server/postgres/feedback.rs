//! PostgreSQL implementation of `FeedbackStore` (same semantics as sqlite/feedback.rs). One
//! verdict in force per target is also a partial unique index, so two analysts at once
//! cannot both add one.

use tokio_postgres::Row;

use super::{PgStore, is_unique_violation};
use crate::server::feedback::*;
use crate::server::store::{DbError, DbResult};

const COLS: &str = "id, host, target, kind, verdict, scope, note, by_user, created_ns, \
     delivered_ns, delivery_error, undone_by, undone_ns, undo_delivered_ns, undo_error";

fn bad(what: &str, v: &str) -> DbError {
    DbError::Corrupt(format!("bad {what} {v}"))
}

fn row(r: &Row) -> DbResult<StoredVerdict> {
    let kind: String = r.try_get(3)?;
    let verdict: String = r.try_get(4)?;
    let scope: String = r.try_get(5)?;
    Ok(StoredVerdict {
        id: r.try_get(0)?,
        host: r.try_get(1)?,
        target: r.try_get(2)?,
        kind: match kind.as_str() {
            "anomaly" => TargetKind::Anomaly,
            "incident" => TargetKind::Incident,
            _ => return Err(bad("kind", &kind)),
        },
        verdict: parse_verdict(&verdict).ok_or_else(|| bad("verdict", &verdict))?,
        scope: parse_scope(&scope).ok_or_else(|| bad("scope", &scope))?,
        note: r.try_get(6)?,
        by: r.try_get(7)?,
        created_ns: r.try_get(8)?,
        delivered_ns: r.try_get(9)?,
        delivery_error: r.try_get(10)?,
        undone_by: r.try_get(11)?,
        undone_ns: r.try_get(12)?,
        undo_delivered_ns: r.try_get(13)?,
        undo_error: r.try_get(14)?,
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
impl FeedbackStore for PgStore {
    async fn add_verdict(&self, v: &NewVerdict<'_>) -> DbResult<i64> {
        let c = self.conn().await?;
        let r = c
            .query_one(
                "INSERT INTO feedback (host, target, kind, verdict, scope, note, by_user, created_ns)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                &[
                    &v.host,
                    &v.target,
                    &v.kind.as_str(),
                    &verdict_str(v.verdict),
                    &scope_str(v.scope),
                    &v.note,
                    &v.by,
                    &v.now_ns,
                ],
            )
            .await;
        match r {
            Ok(r) => Ok(r.try_get(0)?),
            Err(e) if is_unique_violation(&e) => {
                let id: Option<i64> = c
                    .query_opt(
                        "SELECT id FROM feedback WHERE host = $1 AND target = $2 AND undone_ns IS NULL",
                        &[&v.host, &v.target],
                    )
                    .await?
                    .map(|r| r.try_get(0))
                    .transpose()?;
                let id = id.map(|i| i.to_string()).unwrap_or_default();
                Err(DbError::Conflict(format!("verdict {id} on {}", v.target)))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn get_verdict(&self, id: i64) -> DbResult<Option<StoredVerdict>> {
        let c = self.conn().await?;
        c.query_opt(
            &format!("SELECT {COLS} FROM feedback WHERE id = $1"),
            &[&id],
        )
        .await?
        .map(|r| row(&r))
        .transpose()
    }

    async fn list_verdicts(&self, f: &VerdictFilter) -> DbResult<Vec<StoredVerdict>> {
        let c = self.conn().await?;
        let limit = f.limit.unwrap_or(500) as i64;
        let rows = c
            .query(
                &format!(
                    "SELECT {COLS} FROM feedback
                     WHERE ($1::TEXT IS NULL OR host = $1) AND ($2::TEXT IS NULL OR target = $2)
                     ORDER BY id DESC LIMIT $3"
                ),
                &[&f.host, &f.target, &limit],
            )
            .await?;
        rows.iter().map(row).collect()
    }

    async fn undo_verdict(&self, id: i64, by: &str, now_ns: i64) -> DbResult<bool> {
        let c = self.conn().await?;
        Ok(c.execute(
            "UPDATE feedback SET undone_by = $2, undone_ns = $3 WHERE id = $1 AND undone_ns IS NULL",
            &[&id, &by, &now_ns],
        )
        .await?
            > 0)
    }

    async fn pending_verdicts(&self, host: &str) -> DbResult<Vec<Delivery>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {COLS} FROM feedback WHERE host = $1
                     AND (delivered_ns IS NULL OR (undone_ns IS NOT NULL AND undo_delivered_ns IS NULL))"
                ),
                &[&host],
            )
            .await?;
        let mut events: Vec<(i64, Delivery)> = Vec::new();
        for r in &rows {
            let v = row(r)?;
            if v.delivered_ns.is_none() {
                events.push((v.created_ns, delivery(&v, Action::Give)));
            }
            if let Some(t) = v.undone_ns {
                events.push((t, delivery(&v, Action::Undo)));
            }
        }
        events.sort_by_key(|(t, d)| (*t, d.id, d.action == Action::Undo));
        Ok(events.into_iter().map(|(_, d)| d).collect())
    }

    async fn ack_verdicts(&self, host: &str, acks: &[Ack], now_ns: i64) -> DbResult<usize> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let mut n = 0;
        for a in acks {
            n += match a.action {
                Action::Give => {
                    tx.execute(
                        "UPDATE feedback SET delivered_ns = $3, delivery_error = $4
                         WHERE id = $1 AND host = $2 AND delivered_ns IS NULL",
                        &[&a.id, &host, &now_ns, &a.error],
                    )
                    .await?
                }
                Action::Undo => {
                    tx.execute(
                        "UPDATE feedback SET undo_delivered_ns = $3, undo_error = $4
                         WHERE id = $1 AND host = $2 AND undone_ns IS NOT NULL
                           AND undo_delivered_ns IS NULL",
                        &[&a.id, &host, &now_ns, &a.error],
                    )
                    .await?
                }
            } as usize;
        }
        tx.commit().await?;
        Ok(n)
    }
}
