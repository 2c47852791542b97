//! PostgreSQL storage of session incidents (same semantics as sqlite/incidents.rs): the state
//! with the highest step count wins, decided under the row's lock so concurrent ingests of
//! two states cannot both think they are newest; `seq` comes from a sequence.

use tokio_postgres::{Row, Transaction};

use super::PgStore;
use crate::incident::Incident;
use crate::server::incidents::*;
use crate::server::sqlite::level_rank;
use crate::server::store::DbResult;

const COLS: &str = "record, explanation, explained_version, first_received_ns, received_ns, seq";

fn stored(r: &Row) -> DbResult<StoredIncident> {
    let record: String = r.try_get(0)?;
    let mut incident: Incident = serde_json::from_str(&record)?;
    incident.explanation = match r.try_get::<_, Option<String>>(1)? {
        Some(e) => Some(serde_json::from_str(&e)?),
        None => None,
    };
    Ok(StoredIncident {
        incident,
        explained_step_count: r
            .try_get::<_, Option<i64>>(2)?
            .and_then(|v| u32::try_from(v).ok()),
        first_received_ns: r.try_get(3)?,
        received_ns: r.try_get(4)?,
        seq: r.try_get(5)?,
    })
}

enum Change {
    Stored,
    Updated,
    Duplicate,
    Stale,
}

async fn upsert(c: &Transaction<'_>, i: &Incident, now_ns: i64) -> DbResult<Change> {
    let version = i64::from(i.step_count);
    let mut bare = i.clone();
    bare.explanation = None;
    let record = serde_json::to_string(&bare)?;
    let explanation = i
        .explanation
        .as_ref()
        .map(serde_json::to_string)
        .transpose()?;
    let inserted = c
        .execute(
            "INSERT INTO incidents (host, id, version, first_ns, last_ns, level_rank, score, record,
                explanation, explained_version, first_received_ns, received_ns, seq)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, nextval('incident_seq'))
             ON CONFLICT (host, id) DO NOTHING",
            &[
                &i.host,
                &i.id,
                &version,
                &i.first_ns,
                &i.last_ns,
                &level_rank(i.level),
                &i64::from(i.score),
                &record,
                &explanation,
                &explanation.as_ref().map(|_| version),
                &now_ns,
            ],
        )
        .await?;
    if inserted == 1 {
        return Ok(Change::Stored);
    }
    let row = c
        .query_one(
            "SELECT version, explained_version FROM incidents WHERE host = $1 AND id = $2 FOR UPDATE",
            &[&i.host, &i.id],
        )
        .await?;
    let (stored_version, explained): (i64, Option<i64>) = (row.try_get(0)?, row.try_get(1)?);
    let mut change = None;
    if version > stored_version {
        c.execute(
            "UPDATE incidents SET version = $3, first_ns = $4, last_ns = $5, level_rank = $6,
                score = $7, record = $8, received_ns = $9, seq = nextval('incident_seq')
             WHERE host = $1 AND id = $2",
            &[
                &i.host,
                &i.id,
                &version,
                &i.first_ns,
                &i.last_ns,
                &level_rank(i.level),
                &i64::from(i.score),
                &record,
                &now_ns,
            ],
        )
        .await?;
        change = Some(Change::Updated);
    }
    if let Some(e) = &explanation
        && explained.is_none_or(|v| version > v)
    {
        c.execute(
            "UPDATE incidents SET explanation = $3, explained_version = $4 WHERE host = $1 AND id = $2",
            &[&i.host, &i.id, e, &version],
        )
        .await?;
        change = Some(Change::Updated);
    }
    Ok(change.unwrap_or(if version < stored_version {
        Change::Stale
    } else {
        Change::Duplicate
    }))
}

/// Stores a batch's incidents inside the batch's transaction (their hosts are touched by
/// the caller).
pub(super) async fn ingest(
    c: &Transaction<'_>,
    list: &[Incident],
    now_ns: i64,
    out: &mut IncidentOutcome,
) -> DbResult<()> {
    for i in list {
        let to = match upsert(c, i, now_ns).await? {
            Change::Stored => &mut out.stored,
            Change::Updated => &mut out.updated,
            Change::Duplicate => &mut out.duplicates,
            Change::Stale => &mut out.stale,
        };
        to.push(i.id.clone());
    }
    Ok(())
}

#[async_trait::async_trait]
impl IncidentStore for PgStore {
    async fn list_incidents(&self, f: &IncidentFilter) -> DbResult<IncidentPage> {
        let c = self.conn().await?;
        let (order, after) = match f.order {
            IncidentOrder::Recent => ("seq DESC", "($6::BIGINT IS NULL OR seq < $7)"),
            IncidentOrder::Score => (
                "score DESC, seq DESC",
                "($6::BIGINT IS NULL OR score < $6 OR (score = $6 AND seq < $7))",
            ),
        };
        let limit = f.limit.clamp(1, 500);
        let rows = c
            .query(
                &format!(
                    "SELECT {COLS} FROM incidents
                     WHERE ($1::TEXT IS NULL OR host = $1) AND ($2::BIGINT IS NULL OR last_ns >= $2)
                       AND ($3::BIGINT IS NULL OR first_ns <= $3) AND level_rank >= $4 AND {after}
                     ORDER BY {order} LIMIT $5"
                ),
                &[
                    &f.host,
                    &f.from_ns,
                    &f.to_ns,
                    &f.min_level.map(level_rank).unwrap_or(0),
                    &((limit + 1) as i64),
                    &f.cursor.map(|c| c.score),
                    &f.cursor.map(|c| c.seq),
                ],
            )
            .await?;
        let mut incidents = rows.iter().map(stored).collect::<DbResult<Vec<_>>>()?;
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

    async fn get_incident(&self, host: &str, id: &str) -> DbResult<Option<StoredIncident>> {
        let c = self.conn().await?;
        c.query_opt(
            &format!("SELECT {COLS} FROM incidents WHERE host = $1 AND id = $2"),
            &[&host, &id],
        )
        .await?
        .map(|r| stored(&r))
        .transpose()
    }

    async fn count_incidents(&self) -> DbResult<i64> {
        let c = self.conn().await?;
        Ok(c.query_one("SELECT COUNT(*) FROM incidents", &[])
            .await?
            .try_get(0)?)
    }
}
