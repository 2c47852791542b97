//! The SQLite backend of `ServerStore`: one file, WAL journal, append-only migrations. One
//! connection behind a mutex is enough for the dashboard's write rate (SQLite serialises
//! writers anyway) and keeps every trait method a single atomic transaction.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

mod accounts;
mod data;

use rusqlite::Connection;

use super::store::{DbError, DbResult, Role};
use crate::detect::model::Level;

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

pub(crate) fn level_rank(l: Level) -> i64 {
    l as i64
}

pub(crate) fn rank_level(r: i64) -> Option<Level> {
    [Level::Low, Level::Medium, Level::High, Level::Critical]
        .get(usize::try_from(r).ok()?)
        .copied()
}

pub(crate) fn role_of(s: String) -> rusqlite::Result<Role> {
    Role::parse(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("bad role {s}").into(),
        )
    })
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

    pub(crate) fn db(&self) -> DbResult<MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| DbError::Poisoned)
    }
}
