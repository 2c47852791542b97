//! The SQLite backend of `ServerStore`: one file, WAL journal, append-only migrations. One
//! connection behind a mutex is enough for the dashboard's write rate (SQLite serialises
//! writers anyway) and keeps every trait method a single atomic transaction.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::store::*;
use crate::detect::model::{Anomaly, Level};

/// Append-only: entry i brings the schema to version i + 1. Never edit a released entry.
const MIGRATIONS: &[&str] = &["CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin','operator','viewer')),
        active INTEGER NOT NULL DEFAULT 1,
        created_ns INTEGER NOT NULL,
        last_login_ns INTEGER,
        totp_secret TEXT,
        totp_enabled INTEGER NOT NULL DEFAULT 0,
        totp_last_step INTEGER NOT NULL DEFAULT 0,
        failed_logins INTEGER NOT NULL DEFAULT 0,
        locked_until_ns INTEGER NOT NULL DEFAULT 0
     );
     CREATE TABLE recovery_codes (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        code_hash TEXT NOT NULL,
        PRIMARY KEY (user_id, code_hash)
     );
     CREATE TABLE login_ips (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        ip TEXT NOT NULL,
        first_ns INTEGER NOT NULL,
        PRIMARY KEY (user_id, ip)
     );
     CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        mfa_pending INTEGER NOT NULL,
        pending_totp TEXT,
        created_ns INTEGER NOT NULL,
        last_seen_ns INTEGER NOT NULL,
        ip TEXT NOT NULL,
        user_agent TEXT NOT NULL
     );
     CREATE TABLE api_keys (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        prefix TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        created_ns INTEGER NOT NULL,
        last_used_ns INTEGER,
        expires_ns INTEGER,
        enabled INTEGER NOT NULL DEFAULT 1
     );
     CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        time_ns INTEGER NOT NULL,
        user_id INTEGER,
        username TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        ip TEXT NOT NULL,
        detail TEXT NOT NULL
     );
     CREATE INDEX audit_time ON audit_log(time_ns);
     CREATE TABLE hosts (
        name TEXT PRIMARY KEY,
        first_seen_ns INTEGER NOT NULL,
        last_seen_ns INTEGER NOT NULL,
        snapshot TEXT,
        snapshot_ns INTEGER
     );
     CREATE TABLE anomalies (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        time_ns INTEGER NOT NULL,
        received_ns INTEGER NOT NULL,
        level_rank INTEGER NOT NULL,
        score INTEGER NOT NULL,
        user TEXT NOT NULL,
        detections TEXT NOT NULL,
        record TEXT NOT NULL,
        acked_by TEXT,
        acked_ns INTEGER
     );
     CREATE INDEX anomalies_time ON anomalies(time_ns);
     CREATE INDEX anomalies_host_time ON anomalies(host, time_ns);
     CREATE TABLE snapshots (
        id INTEGER PRIMARY KEY,
        host TEXT NOT NULL,
        time_ns INTEGER NOT NULL,
        data TEXT NOT NULL
     );
     CREATE INDEX snapshots_host_time ON snapshots(host, time_ns);
     CREATE TABLE fingerprints (
        id INTEGER PRIMARY KEY,
        host TEXT NOT NULL,
        time_ns INTEGER NOT NULL,
        data TEXT NOT NULL
     );
     CREATE INDEX fingerprints_time ON fingerprints(time_ns);
     CREATE TABLE ingest_batches (
        batch_id TEXT PRIMARY KEY,
        received_ns INTEGER NOT NULL
     );"];

pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn level_rank(l: Level) -> i64 {
    l as i64
}

fn rank_level(r: i64) -> Option<Level> {
    [Level::Low, Level::Medium, Level::High, Level::Critical]
        .get(usize::try_from(r).ok()?)
        .copied()
}

fn role_of(s: String) -> rusqlite::Result<Role> {
    Role::parse(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("bad role {s}").into(),
        )
    })
}

const USER_COLS: &str = "id, username, role, active, created_ns, last_login_ns, password_hash, totp_secret, totp_enabled, failed_logins, locked_until_ns";

fn user_row(r: &Row) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        role: role_of(r.get(2)?)?,
        active: r.get(3)?,
        created_ns: r.get(4)?,
        last_login_ns: r.get(5)?,
        password_hash: r.get(6)?,
        totp_secret: r.get(7)?,
        totp_enabled: r.get(8)?,
        failed_logins: r.get(9)?,
        locked_until_ns: r.get(10)?,
    })
}

const SESSION_SELECT: &str = "SELECT s.id, s.user_id, u.username, u.role, u.active, s.csrf, s.mfa_pending, s.pending_totp,
    s.created_ns, s.last_seen_ns, s.ip, s.user_agent FROM sessions s JOIN users u ON u.id = s.user_id";

fn session_row(r: &Row) -> rusqlite::Result<Session> {
    Ok(Session {
        id: r.get(0)?,
        user_id: r.get(1)?,
        username: r.get(2)?,
        role: role_of(r.get(3)?)?,
        user_active: r.get(4)?,
        csrf: r.get(5)?,
        mfa_pending: r.get(6)?,
        pending_totp: r.get(7)?,
        created_ns: r.get(8)?,
        last_seen_ns: r.get(9)?,
        ip: r.get(10)?,
        user_agent: r.get(11)?,
    })
}

const KEY_COLS: &str =
    "k.id, k.user_id, k.name, k.prefix, k.created_ns, k.last_used_ns, k.expires_ns, k.enabled";

fn key_row(r: &Row) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: r.get(0)?,
        user_id: r.get(1)?,
        name: r.get(2)?,
        prefix: r.get(3)?,
        created_ns: r.get(4)?,
        last_used_ns: r.get(5)?,
        expires_ns: r.get(6)?,
        enabled: r.get(7)?,
    })
}

fn anomaly_row(r: &Row) -> rusqlite::Result<(String, i64, Option<String>, Option<i64>)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn stored(raw: (String, i64, Option<String>, Option<i64>)) -> DbResult<StoredAnomaly> {
    Ok(StoredAnomaly {
        anomaly: serde_json::from_str(&raw.0)?,
        received_ns: raw.1,
        acked_by: raw.2,
        acked_ns: raw.3,
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

fn value_time(v: &serde_json::Value, now_ns: i64) -> i64 {
    v.get("time_ns").and_then(|t| t.as_i64()).unwrap_or(now_ns)
}

impl SqliteStore {
    pub fn open(path: &Path) -> DbResult<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| DbError::Open {
                path: dir.display().to_string(),
                msg: e.to_string(),
            })?;
        }
        let conn = Connection::open(path).map_err(|e| DbError::Open {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
        // The database holds password hashes and TOTP secrets: owner-only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        Self::init(conn)
    }

    pub fn memory() -> DbResult<SqliteStore> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> DbResult<SqliteStore> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn db(&self) -> DbResult<MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| DbError::Poisoned)
    }

    fn host_of(c: &Connection, name: &str, now_ns: i64) -> DbResult<Option<Host>> {
        let day = now_ns - 86_400_000_000_000;
        let row = c
            .query_row(
                "SELECT h.name, h.first_seen_ns, h.last_seen_ns, h.snapshot, h.snapshot_ns,
                    (SELECT MAX(level_rank) FROM anomalies a WHERE a.host = h.name AND a.time_ns >= ?2),
                    (SELECT COUNT(*) FROM anomalies a WHERE a.host = h.name AND a.time_ns >= ?2),
                    (SELECT COUNT(*) FROM anomalies a WHERE a.host = h.name AND a.acked_ns IS NULL)
                 FROM hosts h WHERE h.name = ?1",
                params![name, day],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                        r.get::<_, i64>(6)?,
                        r.get::<_, i64>(7)?,
                    ))
                },
            )
            .optional()?;
        let Some((name, first, last, snap, snap_ns, rank, n24, unacked)) = row else {
            return Ok(None);
        };
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
        Ok(Some(Host {
            name,
            first_seen_ns: first,
            last_seen_ns: last,
            level_24h: rank.and_then(rank_level),
            anomalies_24h: n24,
            unacked,
            snapshot,
            snapshot_ns: snap_ns,
            learning,
        }))
    }
}

fn touch_host(c: &Connection, name: &str, now_ns: i64) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO hosts (name, first_seen_ns, last_seen_ns) VALUES (?1, ?2, ?2)
         ON CONFLICT(name) DO UPDATE SET last_seen_ns = MAX(last_seen_ns, excluded.last_seen_ns)",
        params![name, now_ns],
    )?;
    Ok(())
}

fn insert_anomaly(c: &Connection, a: &Anomaly, now_ns: i64) -> DbResult<bool> {
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
        "INSERT OR IGNORE INTO anomalies (id, host, time_ns, received_ns, level_rank, score, user, detections, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![a.id, a.host, a.time_ns, now_ns, level_rank(a.level), a.score, user, dets, serde_json::to_string(a)?],
    )?;
    Ok(n == 1)
}

impl ServerStore for SqliteStore {
    fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
        now_ns: i64,
    ) -> DbResult<i64> {
        let c = self.db()?;
        let n = c.execute(
            "INSERT OR IGNORE INTO users (username, password_hash, role, created_ns) VALUES (?1, ?2, ?3, ?4)",
            params![username, password_hash, role.as_str(), now_ns],
        )?;
        if n == 0 {
            return Err(DbError::Conflict(format!("user {username}")));
        }
        Ok(c.last_insert_rowid())
    }

    fn user_by_name(&self, username: &str) -> DbResult<Option<User>> {
        let c = self.db()?;
        Ok(c.query_row(
            &format!("SELECT {USER_COLS} FROM users WHERE username = ?1"),
            params![username],
            user_row,
        )
        .optional()?)
    }

    fn user_by_id(&self, id: i64) -> DbResult<Option<User>> {
        let c = self.db()?;
        Ok(c.query_row(
            &format!("SELECT {USER_COLS} FROM users WHERE id = ?1"),
            params![id],
            user_row,
        )
        .optional()?)
    }

    fn list_users(&self) -> DbResult<Vec<User>> {
        let c = self.db()?;
        let mut st = c.prepare(&format!("SELECT {USER_COLS} FROM users ORDER BY username"))?;
        let rows = st.query_map([], user_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn count_admins(&self) -> DbResult<i64> {
        let c = self.db()?;
        Ok(c.query_row(
            "SELECT COUNT(*) FROM users WHERE role = 'admin' AND active = 1",
            [],
            |r| r.get(0),
        )?)
    }

    fn set_role(&self, id: i64, role: Role) -> DbResult<bool> {
        let c = self.db()?;
        Ok(c.execute(
            "UPDATE users SET role = ?2 WHERE id = ?1",
            params![id, role.as_str()],
        )? == 1)
    }

    fn set_active(&self, id: i64, active: bool) -> DbResult<bool> {
        let c = self.db()?;
        Ok(c.execute(
            "UPDATE users SET active = ?2, failed_logins = 0, locked_until_ns = 0 WHERE id = ?1",
            params![id, active],
        )? == 1)
    }

    fn set_password(&self, id: i64, password_hash: &str) -> DbResult<bool> {
        let c = self.db()?;
        Ok(c.execute(
            "UPDATE users SET password_hash = ?2, failed_logins = 0, locked_until_ns = 0 WHERE id = ?1",
            params![id, password_hash],
        )? == 1)
    }

    fn delete_user(&self, id: i64) -> DbResult<bool> {
        let c = self.db()?;
        Ok(c.execute("DELETE FROM users WHERE id = ?1", params![id])? == 1)
    }

    fn login_failed(&self, id: i64, max: i64, lock_until_ns: i64) -> DbResult<()> {
        let c = self.db()?;
        c.execute(
            "UPDATE users SET locked_until_ns = CASE WHEN failed_logins + 1 >= ?2 THEN ?3 ELSE locked_until_ns END,
                failed_logins = CASE WHEN failed_logins + 1 >= ?2 THEN 0 ELSE failed_logins + 1 END
             WHERE id = ?1",
            params![id, max, lock_until_ns],
        )?;
        Ok(())
    }

    fn login_succeeded(&self, id: i64, now_ns: i64) -> DbResult<()> {
        let c = self.db()?;
        c.execute(
            "UPDATE users SET failed_logins = 0, locked_until_ns = 0, last_login_ns = ?2 WHERE id = ?1",
            params![id, now_ns],
        )?;
        Ok(())
    }

    fn set_totp(&self, id: i64, secret: Option<&str>) -> DbResult<()> {
        let c = self.db()?;
        c.execute(
            "UPDATE users SET totp_secret = ?2, totp_enabled = ?3, totp_last_step = 0 WHERE id = ?1",
            params![id, secret, secret.is_some()],
        )?;
        if secret.is_none() {
            c.execute("DELETE FROM recovery_codes WHERE user_id = ?1", params![id])?;
        }
        Ok(())
    }

    fn consume_totp_step(&self, id: i64, step: i64) -> DbResult<bool> {
        let c = self.db()?;
        Ok(c.execute(
            "UPDATE users SET totp_last_step = ?2 WHERE id = ?1 AND totp_last_step < ?2",
            params![id, step],
        )? == 1)
    }

    fn set_recovery_codes(&self, id: i64, hashes: &[String]) -> DbResult<()> {
        let mut c = self.db()?;
        let tx = c.transaction()?;
        tx.execute("DELETE FROM recovery_codes WHERE user_id = ?1", params![id])?;
        for h in hashes {
            tx.execute(
                "INSERT OR IGNORE INTO recovery_codes (user_id, code_hash) VALUES (?1, ?2)",
                params![id, h],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn use_recovery_code(&self, id: i64, hash: &str) -> DbResult<bool> {
        let c = self.db()?;
        Ok(c.execute(
            "DELETE FROM recovery_codes WHERE user_id = ?1 AND code_hash = ?2",
            params![id, hash],
        )? == 1)
    }

    fn recovery_codes_left(&self, id: i64) -> DbResult<i64> {
        let c = self.db()?;
        Ok(c.query_row(
            "SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?1",
            params![id],
            |r| r.get(0),
        )?)
    }

    fn login_ips(&self, id: i64) -> DbResult<Vec<String>> {
        let c = self.db()?;
        let mut st = c.prepare("SELECT ip FROM login_ips WHERE user_id = ?1")?;
        Ok(st
            .query_map(params![id], |r| r.get(0))?
            .collect::<Result<Vec<_>, _>>()?)
    }

    fn create_session(&self, s: &NewSession) -> DbResult<i64> {
        let c = self.db()?;
        c.execute(
            "INSERT INTO sessions (token_hash, user_id, csrf, mfa_pending, created_ns, last_seen_ns, ip, user_agent)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7)",
            params![s.token_hash, s.user_id, s.csrf, s.mfa_pending, s.now_ns, s.ip, s.user_agent],
        )?;
        let id = c.last_insert_rowid();
        if !s.mfa_pending {
            c.execute(
                "INSERT OR IGNORE INTO login_ips (user_id, ip, first_ns) VALUES (?1, ?2, ?3)",
                params![s.user_id, s.ip, s.now_ns],
            )?;
        }
        Ok(id)
    }

    fn session_by_token_hash(&self, token_hash: &str) -> DbResult<Option<Session>> {
        let c = self.db()?;
        Ok(c.query_row(
            &format!("{SESSION_SELECT} WHERE s.token_hash = ?1"),
            params![token_hash],
            session_row,
        )
        .optional()?)
    }

    fn touch_session(&self, id: i64, now_ns: i64) -> DbResult<()> {
        let c = self.db()?;
        c.execute(
            "UPDATE sessions SET last_seen_ns = ?2 WHERE id = ?1",
            params![id, now_ns],
        )?;
        Ok(())
    }

    fn complete_mfa(&self, id: i64) -> DbResult<()> {
        let c = self.db()?;
        c.execute(
            "UPDATE sessions SET mfa_pending = 0 WHERE id = ?1",
            params![id],
        )?;
        c.execute(
            "INSERT OR IGNORE INTO login_ips (user_id, ip, first_ns)
             SELECT user_id, ip, last_seen_ns FROM sessions WHERE id = ?1",
            params![id],
        )?;
        Ok(())
    }

    fn set_pending_totp(&self, id: i64, secret: Option<&str>) -> DbResult<()> {
        let c = self.db()?;
        c.execute(
            "UPDATE sessions SET pending_totp = ?2 WHERE id = ?1",
            params![id, secret],
        )?;
        Ok(())
    }

    fn delete_session(&self, id: i64) -> DbResult<bool> {
        let c = self.db()?;
        Ok(c.execute("DELETE FROM sessions WHERE id = ?1", params![id])? == 1)
    }

    fn delete_user_sessions(&self, user_id: i64, keep: Option<i64>) -> DbResult<usize> {
        let c = self.db()?;
        Ok(c.execute(
            "DELETE FROM sessions WHERE user_id = ?1 AND id != ?2",
            params![user_id, keep.unwrap_or(-1)],
        )?)
    }

    fn list_sessions(&self, user_id: Option<i64>) -> DbResult<Vec<Session>> {
        let c = self.db()?;
        let mut st = c.prepare(&format!(
            "{SESSION_SELECT} WHERE s.mfa_pending = 0 AND (?1 IS NULL OR s.user_id = ?1) ORDER BY s.last_seen_ns DESC"
        ))?;
        Ok(st
            .query_map(params![user_id], session_row)?
            .collect::<Result<Vec<_>, _>>()?)
    }

    fn session_by_id(&self, id: i64) -> DbResult<Option<Session>> {
        let c = self.db()?;
        Ok(c.query_row(
            &format!("{SESSION_SELECT} WHERE s.id = ?1"),
            params![id],
            session_row,
        )
        .optional()?)
    }

    fn create_api_key(
        &self,
        user_id: i64,
        name: &str,
        prefix: &str,
        key_hash: &str,
        now_ns: i64,
        expires_ns: Option<i64>,
    ) -> DbResult<i64> {
        let c = self.db()?;
        c.execute(
            "INSERT INTO api_keys (user_id, name, prefix, key_hash, created_ns, expires_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![user_id, name, prefix, key_hash, now_ns, expires_ns],
        )?;
        Ok(c.last_insert_rowid())
    }

    fn list_api_keys(&self, user_id: i64) -> DbResult<Vec<ApiKey>> {
        let c = self.db()?;
        let mut st = c.prepare(&format!(
            "SELECT {KEY_COLS} FROM api_keys k WHERE k.user_id = ?1 ORDER BY k.created_ns"
        ))?;
        Ok(st
            .query_map(params![user_id], key_row)?
            .collect::<Result<Vec<_>, _>>()?)
    }

    fn api_key_by_hash(&self, key_hash: &str) -> DbResult<Option<(ApiKey, User)>> {
        let c = self.db()?;
        let key = c
            .query_row(
                &format!("SELECT {KEY_COLS} FROM api_keys k WHERE k.key_hash = ?1"),
                params![key_hash],
                key_row,
            )
            .optional()?;
        let Some(key) = key else { return Ok(None) };
        let user = c
            .query_row(
                &format!("SELECT {USER_COLS} FROM users WHERE id = ?1"),
                params![key.user_id],
                user_row,
            )
            .optional()?;
        Ok(user.map(|u| (key, u)))
    }

    fn set_api_key_enabled(&self, user_id: i64, id: i64, enabled: bool) -> DbResult<bool> {
        let c = self.db()?;
        Ok(c.execute(
            "UPDATE api_keys SET enabled = ?3 WHERE id = ?2 AND user_id = ?1",
            params![user_id, id, enabled],
        )? == 1)
    }

    fn delete_api_key(&self, user_id: i64, id: i64) -> DbResult<bool> {
        let c = self.db()?;
        Ok(c.execute(
            "DELETE FROM api_keys WHERE id = ?2 AND user_id = ?1",
            params![user_id, id],
        )? == 1)
    }

    fn touch_api_key(&self, id: i64, now_ns: i64) -> DbResult<()> {
        let c = self.db()?;
        c.execute(
            "UPDATE api_keys SET last_used_ns = ?2 WHERE id = ?1",
            params![id, now_ns],
        )?;
        Ok(())
    }

    fn audit(&self, e: &NewAudit<'_>) -> DbResult<()> {
        let c = self.db()?;
        c.execute(
            "INSERT INTO audit_log (time_ns, user_id, username, action, target, ip, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![e.time_ns, e.user_id, e.username, e.action, e.target, e.ip, e.detail],
        )?;
        Ok(())
    }

    fn list_audit(&self, f: &AuditFilter) -> DbResult<Vec<AuditEntry>> {
        let c = self.db()?;
        let mut st = c.prepare(
            "SELECT id, time_ns, user_id, username, action, target, ip, detail FROM audit_log
             WHERE (?1 IS NULL OR username = ?1) AND (?2 IS NULL OR action = ?2) AND (?3 IS NULL OR time_ns >= ?3)
             ORDER BY time_ns DESC, id DESC LIMIT ?4",
        )?;
        let limit = f.limit.unwrap_or(200).min(1000) as i64;
        let rows = st.query_map(
            params![
                f.user.as_deref().filter(|s| !s.is_empty()),
                f.action.as_deref().filter(|s| !s.is_empty()),
                f.since_ns,
                limit
            ],
            |r| {
                Ok(AuditEntry {
                    id: r.get(0)?,
                    time_ns: r.get(1)?,
                    user_id: r.get(2)?,
                    username: r.get(3)?,
                    action: r.get(4)?,
                    target: r.get(5)?,
                    ip: r.get(6)?,
                    detail: r.get(7)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn ingest(&self, batch: &IngestBatch, now_ns: i64) -> DbResult<IngestOutcome> {
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
            if insert_anomaly(&tx, a, now_ns)? {
                out.new.push(a.clone());
            }
            out.anomalies += 1;
        }
        for s in &batch.snapshots {
            let Some(host) = snapshot_host(s).or_else(|| batch.host.clone()) else {
                continue;
            };
            touch_host(&tx, &host, now_ns)?;
            let t = value_time(s, now_ns);
            let text = s.to_string();
            tx.execute(
                "INSERT INTO snapshots (host, time_ns, data) VALUES (?1, ?2, ?3)",
                params![host, t, text],
            )?;
            tx.execute(
                "UPDATE hosts SET snapshot = ?2, snapshot_ns = ?3 WHERE name = ?1 AND (snapshot_ns IS NULL OR snapshot_ns <= ?3)",
                params![host, text, t],
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
                params![host, value_time(f, now_ns), f.to_string()],
            )?;
            out.fingerprints += 1;
        }
        tx.commit()?;
        Ok(out)
    }

    fn list_anomalies(&self, f: &AnomalyFilter) -> DbResult<Vec<StoredAnomaly>> {
        let c = self.db()?;
        let mut st = c.prepare(
            "SELECT record, received_ns, acked_by, acked_ns FROM anomalies
             WHERE (?1 IS NULL OR host = ?1) AND (?2 IS NULL OR user = ?2) AND level_rank >= ?3
               AND (?4 IS NULL OR instr(detections, ',' || ?4 || ',') > 0)
               AND (?5 = 0 OR acked_ns IS NULL)
             ORDER BY time_ns DESC LIMIT ?6",
        )?;
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
    }

    fn count_anomalies(&self) -> DbResult<i64> {
        let c = self.db()?;
        Ok(c.query_row("SELECT COUNT(*) FROM anomalies", [], |r| r.get(0))?)
    }

    fn get_anomaly(&self, id: &str) -> DbResult<Option<StoredAnomaly>> {
        let c = self.db()?;
        let raw = c
            .query_row(
                "SELECT record, received_ns, acked_by, acked_ns FROM anomalies WHERE id = ?1",
                params![id],
                anomaly_row,
            )
            .optional()?;
        raw.map(stored).transpose()
    }

    fn ack_anomaly(&self, id: &str, by: &str, now_ns: i64) -> DbResult<bool> {
        let c = self.db()?;
        Ok(c.execute(
            "UPDATE anomalies SET acked_by = ?2, acked_ns = ?3 WHERE id = ?1 AND acked_ns IS NULL",
            params![id, by, now_ns],
        )? == 1)
    }

    fn ack_host(&self, host: &str, by: &str, now_ns: i64) -> DbResult<usize> {
        let c = self.db()?;
        Ok(c.execute(
            "UPDATE anomalies SET acked_by = ?2, acked_ns = ?3 WHERE host = ?1 AND acked_ns IS NULL",
            params![host, by, now_ns],
        )?)
    }

    fn list_hosts(&self, now_ns: i64) -> DbResult<Vec<Host>> {
        let c = self.db()?;
        let names: Vec<String> = c
            .prepare("SELECT name FROM hosts ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            if let Some(h) = Self::host_of(&c, &n, now_ns)? {
                out.push(h);
            }
        }
        Ok(out)
    }

    fn get_host(&self, name: &str, now_ns: i64) -> DbResult<Option<Host>> {
        let c = self.db()?;
        Self::host_of(&c, name, now_ns)
    }

    fn risk_series(&self, host: &str, since_ns: i64) -> DbResult<Vec<(i64, u8)>> {
        let c = self.db()?;
        let mut st = c.prepare("SELECT time_ns, score FROM anomalies WHERE host = ?1 AND time_ns >= ?2 ORDER BY time_ns")?;
        Ok(st
            .query_map(params![host, since_ns], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?)
    }

    fn previous_snapshot(&self, host: &str) -> DbResult<Option<serde_json::Value>> {
        let c = self.db()?;
        let t: Option<String> = c
            .query_row(
                "SELECT data FROM snapshots WHERE host = ?1 ORDER BY time_ns DESC, id DESC LIMIT 1 OFFSET 1",
                params![host],
                |r| r.get(0),
            )
            .optional()?;
        Ok(t.map(|t| serde_json::from_str(&t)).transpose()?)
    }

    fn detections(&self) -> DbResult<Vec<String>> {
        let c = self.db()?;
        let mut st = c.prepare(
            "SELECT DISTINCT detections FROM anomalies ORDER BY time_ns DESC LIMIT 2000",
        )?;
        let mut set = std::collections::BTreeSet::new();
        for d in st.query_map([], |r| r.get::<_, String>(0))? {
            for p in d?.split(',').filter(|p| !p.is_empty()) {
                set.insert(p.to_string());
            }
        }
        Ok(set.into_iter().collect())
    }

    fn purge(
        &self,
        data_before_ns: i64,
        audit_before_ns: i64,
        idle_before_ns: i64,
        created_before_ns: i64,
    ) -> DbResult<Purged> {
        let mut c = self.db()?;
        let tx = c.transaction()?;
        let p = Purged {
            anomalies: tx.execute(
                "DELETE FROM anomalies WHERE time_ns < ?1",
                params![data_before_ns],
            )?,
            snapshots: tx.execute(
                "DELETE FROM snapshots WHERE time_ns < ?1",
                params![data_before_ns],
            )?,
            fingerprints: tx.execute(
                "DELETE FROM fingerprints WHERE time_ns < ?1",
                params![data_before_ns],
            )?,
            sessions: tx.execute(
                "DELETE FROM sessions WHERE last_seen_ns < ?1 OR created_ns < ?2",
                params![idle_before_ns, created_before_ns],
            )?,
            audit: tx.execute(
                "DELETE FROM audit_log WHERE time_ns < ?1",
                params![audit_before_ns],
            )?,
        };
        tx.execute(
            "DELETE FROM ingest_batches WHERE received_ns < ?1",
            params![data_before_ns],
        )?;
        tx.commit()?;
        Ok(p)
    }
}
