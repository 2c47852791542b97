//! SQLite storage of the fleet: enrolment tokens (hashed), one `agents` row per host (its
//! enrolled key, state and latest heartbeat) and a day of heartbeat history. The paged host
//! and anomaly lists are in fleet_pages.rs.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use crate::server::fleet::*;
use crate::server::store::DbResult;

/// Migration: enrolment tokens, agents and heartbeats (see `MIGRATIONS` in mod.rs).
pub(super) const MIGRATION: &str = "CREATE TABLE enrol_tokens (
        id INTEGER PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        note TEXT NOT NULL,
        created_ns INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        expires_ns INTEGER,
        max_uses INTEGER NOT NULL,
        uses INTEGER NOT NULL DEFAULT 0,
        revoked_ns INTEGER
     );
     CREATE TABLE agents (
        host TEXT PRIMARY KEY,
        enrolled_ns INTEGER,
        enrolments INTEGER NOT NULL DEFAULT 0,
        key_id INTEGER,
        token_id INTEGER,
        retired_ns INTEGER,
        state TEXT NOT NULL DEFAULT 'unknown',
        state_since_ns INTEGER NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        last_heartbeat_ns INTEGER,
        interval_secs INTEGER,
        lost_total INTEGER NOT NULL DEFAULT 0,
        heartbeat TEXT
     );
     CREATE INDEX agents_state ON agents(state);
     CREATE TABLE heartbeats (
        id INTEGER PRIMARY KEY,
        host TEXT NOT NULL,
        received_ns INTEGER NOT NULL,
        data TEXT NOT NULL
     );
     CREATE INDEX heartbeats_host ON heartbeats(host, received_ns);
     CREATE INDEX heartbeats_received ON heartbeats(received_ns);";

const TOKEN_COLS: &str =
    "id, prefix, note, created_ns, created_by, expires_ns, max_uses, uses, revoked_ns";

fn token_row(r: &Row) -> rusqlite::Result<EnrolToken> {
    Ok(EnrolToken {
        id: r.get(0)?,
        prefix: r.get(1)?,
        note: r.get(2)?,
        created_ns: r.get(3)?,
        created_by: r.get(4)?,
        expires_ns: r.get(5)?,
        max_uses: r.get(6)?,
        uses: r.get(7)?,
        revoked_ns: r.get(8)?,
    })
}

pub(super) const AGENT_COLS: &str = "g.host, g.state, g.state_since_ns, g.reason, g.enrolled_ns, g.enrolments, \
     g.key_id, g.retired_ns, g.last_heartbeat_ns, g.interval_secs, g.heartbeat";

pub(super) type RawAgent = (
    String,
    String,
    i64,
    String,
    Option<i64>,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

/// The agent columns starting at `at` (None when the LEFT JOIN found no agent).
pub(super) fn agent_raw(r: &Row, at: usize) -> rusqlite::Result<Option<RawAgent>> {
    let Some(host) = r.get::<_, Option<String>>(at)? else {
        return Ok(None);
    };
    Ok(Some((
        host,
        r.get(at + 1)?,
        r.get(at + 2)?,
        r.get(at + 3)?,
        r.get(at + 4)?,
        r.get(at + 5)?,
        r.get(at + 6)?,
        r.get(at + 7)?,
        r.get(at + 8)?,
        r.get(at + 9)?,
        r.get(at + 10)?,
    )))
}

pub(super) fn agent_of(raw: RawAgent) -> DbResult<AgentStatus> {
    Ok(AgentStatus {
        host: raw.0,
        state: AgentState::parse(&raw.1).unwrap_or(AgentState::Unknown),
        state_since_ns: raw.2,
        reason: raw.3,
        enrolled_ns: raw.4,
        enrolments: raw.5,
        key_id: raw.6,
        retired_ns: raw.7,
        last_heartbeat_ns: raw.8,
        interval_secs: raw.9.and_then(|v| u64::try_from(v).ok()),
        heartbeat: raw.10.map(|t| serde_json::from_str(&t)).transpose()?,
    })
}

fn agent_in(c: &Connection, host: &str) -> DbResult<Option<AgentStatus>> {
    let raw = c
        .query_row(
            &format!("SELECT {AGENT_COLS} FROM agents g WHERE g.host = ?1"),
            params![host],
            |r| agent_raw(r, 0),
        )
        .optional()?
        .flatten();
    raw.map(agent_of).transpose()
}

/// The service account that owns enrolled keys: created (operator, no usable password) when
/// missing; None when it exists but is disabled or below operator.
fn service_user(c: &Connection, now_ns: i64) -> DbResult<Option<i64>> {
    let found: Option<(i64, String, bool)> = c
        .query_row(
            "SELECT id, role, active FROM users WHERE username = ?1",
            params![SERVICE_USER],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    match found {
        Some((id, role, active)) => Ok((active && role != "viewer").then_some(id)),
        None => {
            // "!" is no PHC string: no password ever matches it.
            c.execute(
                "INSERT INTO users (username, password_hash, role, created_ns) VALUES (?1, '!', 'operator', ?2)",
                params![SERVICE_USER, now_ns],
            )?;
            Ok(Some(c.last_insert_rowid()))
        }
    }
}

#[async_trait::async_trait]
impl FleetStore for SqliteStore {
    async fn create_enrol_token(&self, t: &NewEnrolToken<'_>) -> DbResult<i64> {
        self.blocking(|| {
        let c = self.db()?;
        c.execute(
            "INSERT INTO enrol_tokens (token_hash, prefix, note, created_ns, created_by, expires_ns, max_uses)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                t.token_hash,
                t.prefix,
                t.note,
                t.now_ns,
                t.created_by,
                t.expires_ns,
                t.max_uses
            ],
        )?;
        Ok(c.last_insert_rowid())
        })
    }

    async fn list_enrol_tokens(&self) -> DbResult<Vec<EnrolToken>> {
        self.blocking(|| {
            let c = self.reader()?;
            let mut st = c.prepare(&format!(
                "SELECT {TOKEN_COLS} FROM enrol_tokens ORDER BY id DESC LIMIT 500"
            ))?;
            Ok(st
                .query_map([], token_row)?
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn revoke_enrol_token(&self, id: i64, now_ns: i64) -> DbResult<bool> {
        self.blocking(|| {
            let c = self.db()?;
            Ok(c.execute(
                "UPDATE enrol_tokens SET revoked_ns = ?2 WHERE id = ?1 AND revoked_ns IS NULL",
                params![id, now_ns],
            )? == 1)
        })
    }

    async fn enroll(&self, e: &Enrolment<'_>) -> DbResult<Result<Enrolled, EnrolRefusal>> {
        self.blocking(|| {
            let mut c = self.db()?;
            let tx = c.transaction()?;
            let token = tx
                .query_row(
                    &format!("SELECT {TOKEN_COLS} FROM enrol_tokens WHERE token_hash = ?1"),
                    params![e.token_hash],
                    token_row,
                )
                .optional()?;
            let Some(token) = token else {
                return Ok(Err(EnrolRefusal::UnknownToken));
            };
            if let Some(p) = token.problem(e.now_ns) {
                return Ok(Err(p));
            }
            let previous: Option<(Option<i64>, Option<i64>)> = tx
                .query_row(
                    "SELECT retired_ns, key_id FROM agents WHERE host = ?1",
                    params![e.host],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if previous.is_some_and(|(retired, _)| retired.is_some()) {
                return Ok(Err(EnrolRefusal::Retired(e.host.to_string())));
            }
            let Some(owner) = service_user(&tx, e.now_ns)? else {
                return Ok(Err(EnrolRefusal::ServiceAccount));
            };
            tx.execute(
                "UPDATE enrol_tokens SET uses = uses + 1 WHERE id = ?1",
                params![token.id],
            )?;
            let old_key = previous.and_then(|(_, k)| k);
            let revoked_key = match old_key {
                Some(k) => (tx.execute("DELETE FROM api_keys WHERE id = ?1", params![k])? == 1)
                    .then_some(k),
                None => None,
            };
            tx.execute(
                "INSERT INTO api_keys (user_id, name, prefix, key_hash, created_ns, scope, host)
             VALUES (?1, ?2, ?3, ?4, ?5, 'ingest', ?6)",
                params![
                    owner,
                    format!("enrolled {}", e.host),
                    e.key_prefix,
                    e.key_hash,
                    e.now_ns,
                    e.host
                ],
            )?;
            let key_id = tx.last_insert_rowid();
            tx.execute(
            "INSERT INTO agents (host, enrolled_ns, enrolments, key_id, token_id, state_since_ns)
             VALUES (?1, ?2, 1, ?3, ?4, ?2)
             ON CONFLICT(host) DO UPDATE SET enrolled_ns = ?2, enrolments = enrolments + 1,
                key_id = ?3, token_id = ?4",
            params![e.host, e.now_ns, key_id, token.id],
        )?;
            super::data::touch_host(&tx, e.host, e.now_ns)?;
            tx.commit()?;
            Ok(Ok(Enrolled {
                key_id,
                token_id: token.id,
                revoked_key,
            }))
        })
    }

    async fn retire_host(&self, host: &str, now_ns: i64) -> DbResult<Option<Retired>> {
        self.blocking(|| {
            let mut c = self.db()?;
            let tx = c.transaction()?;
            let known: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM hosts WHERE name = ?1)
                OR EXISTS (SELECT 1 FROM agents WHERE host = ?1)",
                params![host],
                |r| r.get(0),
            )?;
            if !known {
                return Ok(None);
            }
            // Every key that may write this host stops: the enrolled one and any made by hand.
            let key: Option<i64> = tx
                .query_row(
                    "SELECT key_id FROM agents WHERE host = ?1",
                    params![host],
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            let mut revoked = tx.execute(
                "DELETE FROM api_keys WHERE scope = 'ingest' AND host = ?1",
                params![host],
            )?;
            if let Some(k) = key {
                revoked += tx.execute("DELETE FROM api_keys WHERE id = ?1", params![k])?;
            }
            tx.execute(
                "INSERT INTO agents (host, retired_ns, state, state_since_ns, reason)
             VALUES (?1, ?2, 'retired', ?2, 'retired by an admin')
             ON CONFLICT(host) DO UPDATE SET retired_ns = ?2, state = 'retired',
                state_since_ns = ?2, reason = 'retired by an admin', key_id = NULL",
                params![host, now_ns],
            )?;
            tx.commit()?;
            Ok(Some(Retired {
                revoked_keys: revoked,
            }))
        })
    }

    async fn record_heartbeat(&self, b: &BeatRecord<'_>) -> DbResult<Option<StateChange>> {
        self.blocking(|| {
        let mut c = self.db()?;
        let tx = c.transaction()?;
        let prev: Option<(String, i64, Option<i64>, Option<i64>)> = tx
            .query_row(
                "SELECT state, lost_total, last_heartbeat_ns, retired_ns FROM agents WHERE host = ?1",
                params![b.host],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let from = prev
            .as_ref()
            .and_then(|p| AgentState::parse(&p.0))
            .unwrap_or(AgentState::Unknown);
        let prev_lost = prev
            .as_ref()
            .filter(|p| p.2.is_some())
            .and_then(|p| u64::try_from(p.1).ok());
        let blind = blind_reason(b.vitals, prev_lost);
        let retired = prev.as_ref().is_some_and(|p| p.3.is_some());
        let to = classify(
            retired,
            Some(b.now_ns),
            b.interval_secs,
            blind.is_some(),
            b.now_ns,
        );
        let reason = blind.unwrap_or_default();
        tx.execute(
            "INSERT INTO agents (host, state, state_since_ns, reason, last_heartbeat_ns,
                interval_secs, lost_total, heartbeat)
             VALUES (?1, ?2, ?3, ?4, ?3, ?5, ?6, ?7)
             ON CONFLICT(host) DO UPDATE SET
                state_since_ns = CASE WHEN state = ?2 THEN state_since_ns ELSE ?3 END,
                state = ?2, reason = ?4, last_heartbeat_ns = ?3, interval_secs = ?5,
                lost_total = ?6, heartbeat = ?7",
            params![
                b.host,
                to.as_str(),
                b.now_ns,
                reason,
                b.interval_secs as i64,
                i64::try_from(b.vitals.lost_total).unwrap_or(i64::MAX),
                b.data
            ],
        )?;
        tx.execute(
            "INSERT INTO heartbeats (host, received_ns, data) VALUES (?1, ?2, ?3)",
            params![b.host, b.now_ns, b.data],
        )?;
        tx.execute(
            "DELETE FROM heartbeats WHERE host = ?1 AND received_ns < ?2",
            params![b.host, b.now_ns - HISTORY_NS],
        )?;
        super::data::touch_host(&tx, b.host, b.now_ns)?;
        tx.commit()?;
        Ok((from != to).then(|| StateChange {
            host: b.host.to_string(),
            from,
            to,
            reason,
        }))
        })
    }

    async fn mark_stale(&self, now_ns: i64) -> DbResult<Vec<StateChange>> {
        self.blocking(|| {
        let mut c = self.db()?;
        let tx = c.transaction()?;
        let due: Vec<(String, String, i64, i64)> = {
            let mut st = tx.prepare(
                "SELECT host, state, last_heartbeat_ns, interval_secs FROM agents
                 WHERE state IN ('healthy', 'blind') AND last_heartbeat_ns IS NOT NULL
                   AND last_heartbeat_ns + MAX(COALESCE(interval_secs, 1), 1) * ?2 * 1000000000 < ?1",
            )?;
            st.query_map(params![now_ns, MISSED_BEATS], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<Result<_, _>>()?
        };
        let mut out = Vec::new();
        for (host, state, last, interval) in due {
            let reason = format!(
                "no heartbeat for {} s (expected every {interval} s)",
                (now_ns - last) / 1_000_000_000
            );
            let n = tx.execute(
                "UPDATE agents SET state = 'stale', state_since_ns = ?3, reason = ?4
                 WHERE host = ?1 AND state = ?2",
                params![host, state, now_ns, reason],
            )?;
            if n == 1 {
                out.push(StateChange {
                    host,
                    from: AgentState::parse(&state).unwrap_or(AgentState::Unknown),
                    to: AgentState::Stale,
                    reason,
                });
            }
        }
        tx.commit()?;
        Ok(out)
        })
    }

    async fn agent(&self, host: &str) -> DbResult<Option<AgentStatus>> {
        self.blocking(|| {
            let c = self.reader()?;
            agent_in(&c, host)
        })
    }

    async fn list_agents(&self) -> DbResult<Vec<AgentStatus>> {
        self.blocking(|| {
            let c = self.reader()?;
            let mut st = c.prepare(&format!(
                "SELECT {AGENT_COLS} FROM agents g ORDER BY g.host"
            ))?;
            let raws = st
                .query_map([], |r| agent_raw(r, 0))?
                .collect::<Result<Vec<_>, _>>()?;
            raws.into_iter().flatten().map(agent_of).collect()
        })
    }

    async fn snapshot_series(&self, host: &str, since_ns: i64) -> DbResult<Vec<SnapshotPoint>> {
        self.blocking(|| {
            let c = self.reader()?;
            let mut st = c.prepare(
                "SELECT time_ns, json_extract(data, '$.system.memory_used_percent'),
                json_extract(data, '$.system.load_average[0]')
             FROM snapshots WHERE host = ?1 AND time_ns >= ?2 ORDER BY time_ns, id LIMIT 5000",
            )?;
            let rows = st
                .query_map(params![host, since_ns], |r| {
                    Ok(SnapshotPoint {
                        time_ns: r.get(0)?,
                        memory_used_percent: r.get::<_, Option<f64>>(1).unwrap_or(None),
                        load1: r.get::<_, Option<f64>>(2).unwrap_or(None),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    async fn list_anomalies_page(&self, f: &AnomalyPageFilter) -> DbResult<AnomalyPage> {
        self.blocking(|| super::fleet_pages::anomalies(&*self.reader()?, f))
    }

    async fn list_hosts_page(&self, f: &HostPageFilter, now_ns: i64) -> DbResult<HostPage> {
        self.blocking(|| super::fleet_pages::hosts(&*self.reader()?, f, now_ns))
    }

    async fn purge_fleet(&self, before_ns: i64) -> DbResult<usize> {
        self.blocking(|| {
            let mut c = self.db()?;
            let tx = c.transaction()?;
            let mut n = tx.execute(
                "DELETE FROM heartbeats WHERE received_ns < ?1",
                params![before_ns],
            )?;
            // Agents whose host is gone (silent past the horizon) and who hold no key; retired
            // ones stay, so a retired identity cannot enrol again after a while.
            n += tx.execute(
                "DELETE FROM agents WHERE retired_ns IS NULL AND key_id IS NULL
                AND host NOT IN (SELECT name FROM hosts)",
                [],
            )?;
            tx.commit()?;
            Ok(n)
        })
    }
}
