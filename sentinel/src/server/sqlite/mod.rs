//! The SQLite backend of `ServerStore`: one file, WAL journal, append-only migrations. One
//! writer connection behind a mutex (SQLite serialises writers anyway, and one connection keeps
//! every writing method a single atomic transaction) and a small pool of reader connections,
//! so page reads and session checks never wait behind ingest (WAL readers see the last commit).
//! Every method runs its SQL under `block_in_place`, so no runtime worker blocks on the file.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

mod accounts;
mod data;
mod feedback;
mod fleet;
mod fleet_pages;
mod incidents;
mod sealed;

pub use sealed::Resealed;
pub(crate) use sealed::{session_context, user_context};

use rusqlite::Connection;

use super::secrets::Keyring;
use super::store::{DbError, DbResult, Role};
use crate::model::Level;

/// Append-only: entry i brings the schema to version i + 1. Never edit a released entry.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE users (
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
     );",
    // 2: scoped API keys, server-side receipt order, id conflicts. Keys made before scopes
    // were documented as agent credentials: those of operators and admins become `ingest`
    // keys bound to the first host they push for after the upgrade; viewers' keys (which
    // could never push) become `read`. docs/server.md, "Upgrading".
    "ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'read'
        CHECK (scope IN ('ingest','read','ack','admin'));
     ALTER TABLE api_keys ADD COLUMN host TEXT;
     UPDATE api_keys SET scope = 'ingest' WHERE user_id IN
        (SELECT id FROM users WHERE role IN ('operator','admin'));
     ALTER TABLE anomalies ADD COLUMN conflict_of TEXT;
     CREATE INDEX anomalies_received ON anomalies(received_ns);
     CREATE INDEX anomalies_host_received ON anomalies(host, received_ns);",
    // 3: an optional address for security notices (two-factor, password and key changes).
    // TOTP secrets are sealed from here on; clear ones are sealed by `reseal` at start.
    "ALTER TABLE users ADD COLUMN email TEXT;",
    // 4: analysts' verdicts and their delivery to agents (sqlite/feedback.rs).
    feedback::MIGRATION,
    // 5: session incidents (sqlite/incidents.rs).
    incidents::MIGRATION,
    // 6: enrolment tokens, agents and their heartbeats (sqlite/fleet.rs).
    fleet::MIGRATION,
];

/// Reader connections per file database: enough for the dashboard's concurrent pages on a
/// small site; more would only contend for the same cores.
const READERS: u32 = 4;

/// Opens read-only-by-pragma connections to the same file for the reader pool.
#[derive(Debug)]
pub(crate) struct ReaderManager {
    path: PathBuf,
}

impl r2d2::ManageConnection for ReaderManager {
    type Connection = Connection;
    type Error = rusqlite::Error;

    fn connect(&self) -> Result<Connection, rusqlite::Error> {
        let c = Connection::open(&self.path)?;
        c.busy_timeout(std::time::Duration::from_secs(5))?;
        c.pragma_update(None, "foreign_keys", "ON")?;
        // A reader never writes: a mistake in a read method fails instead of bypassing the writer.
        c.pragma_update(None, "query_only", "ON")?;
        Ok(c)
    }

    fn is_valid(&self, c: &mut Connection) -> Result<(), rusqlite::Error> {
        c.execute_batch("")
    }

    fn has_broken(&self, _: &mut Connection) -> bool {
        false
    }
}

/// A connection to read from: one of the pool's, or the writer for in-memory databases (which
/// other connections cannot see).
pub(crate) enum Reader<'a> {
    Pool(r2d2::PooledConnection<ReaderManager>),
    Writer(MutexGuard<'a, Connection>),
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            Reader::Pool(c) => c,
            Reader::Writer(c) => c,
        }
    }
}

pub struct SqliteStore {
    conn: Mutex<Connection>,
    readers: Option<r2d2::Pool<ReaderManager>>,
    /// Seals and opens TOTP secrets. None for `open` (the `sentinel user` commands, which
    /// never read a secret): secrets then read as absent and cannot be set.
    keys: Option<Keyring>,
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
        // The database holds password hashes and (sealed) TOTP secrets: owner-only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        let mut s = Self::init(conn, None)?;
        let pool = r2d2::Pool::builder()
            .max_size(READERS)
            .min_idle(Some(1))
            .build(ReaderManager {
                path: path.to_path_buf(),
            })
            .map_err(|e| DbError::Open {
                path: path.display().to_string(),
                msg: e.to_string(),
            })?;
        s.readers = Some(pool);
        Ok(s)
    }

    /// Opens the database with the key that seals TOTP secrets, and reseals at once every
    /// secret not under it (clear ones from before, or ones left under the other key by an
    /// interrupted rotation) in one transaction.
    pub fn open_sealed(path: &Path, keys: Keyring) -> DbResult<(SqliteStore, Resealed)> {
        let mut s = Self::open(path)?;
        s.keys = Some(keys);
        let r = s.reseal()?;
        Ok((s, r))
    }

    /// An in-memory database with a key that lives only in memory.
    pub fn memory() -> DbResult<SqliteStore> {
        Self::init(Connection::open_in_memory()?, Some(Keyring::ephemeral()?))
    }

    fn init(mut conn: Connection, keys: Option<Keyring>) -> DbResult<SqliteStore> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Overwrite freed content with zeros, so a replaced secret (a clear one sealed at
        // the upgrade, a password hash, a revoked key's hash) does not linger in free pages.
        conn.pragma_update(None, "secure_delete", "ON")?;
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
            readers: None,
            keys,
        })
    }

    pub(crate) fn keys(&self) -> DbResult<&Keyring> {
        self.keys.as_ref().ok_or(DbError::NoSecretKey)
    }

    /// Seals a TOTP secret for the row named by `context`.
    pub(crate) fn seal(&self, plain: &str, context: &str) -> DbResult<String> {
        Ok(self.keys()?.seal(plain, context)?)
    }

    /// Opens a stored TOTP secret. Fails closed: without a key, or when it does not open,
    /// the secret reads as absent (so no code matches) and the reason is logged.
    pub(crate) fn unseal(&self, stored: Option<String>, context: &str) -> Option<String> {
        let stored = stored?;
        let keys = self.keys.as_ref()?;
        match keys.open(&stored, context) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!("two-factor secret of {context} unusable: {e}");
                None
            }
        }
    }

    /// The writer connection.
    pub(crate) fn db(&self) -> DbResult<MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| DbError::Poisoned)
    }

    /// A connection for reads that never waits for the writer (file databases).
    pub(crate) fn reader(&self) -> DbResult<Reader<'_>> {
        match &self.readers {
            Some(p) => p
                .get()
                .map(Reader::Pool)
                .map_err(|e| DbError::Pool(e.to_string())),
            None => Ok(Reader::Writer(self.db()?)),
        }
    }

    /// Runs blocking SQLite work without stalling a runtime worker: the worker hands its other
    /// tasks over while `f` runs. Outside a multi-threaded runtime (tests, CLI) `f` just runs.
    pub(crate) fn blocking<T>(&self, f: impl FnOnce() -> T) -> T {
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(f)
            }
            _ => f(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::{AccountStore, DataStore, KeyScope, Role};

    // Holding the writer across awaits is the point: reads must not need it.
    #[allow(clippy::await_holding_lock)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_do_not_wait_for_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(SqliteStore::open(&dir.path().join("server.db")).unwrap());
        s.create_user("olga", "h", Role::Viewer, 0).await.unwrap();
        // The writer is busy: its lock held, a write transaction open (a long ingest).
        let w = s.db().unwrap();
        w.execute_batch(
            "BEGIN IMMEDIATE; INSERT INTO hosts (name, first_seen_ns, last_seen_ns) VALUES ('h', 1, 1);",
        )
        .unwrap();
        let r = s.clone();
        let read = tokio::spawn(async move {
            let u = r.user_by_name("olga").await.unwrap();
            (u.map(|u| u.username), r.list_hosts(2).await.unwrap().len())
        });
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), read)
            .await
            .expect("a read waited for the writer")
            .unwrap();
        assert_eq!(
            got,
            (Some("olga".to_string()), 0),
            "readers see the last commit"
        );
        w.execute_batch("ROLLBACK").unwrap();
    }

    #[tokio::test]
    async fn keys_from_before_scopes_are_migrated_by_their_owners_role() {
        let mut conn = Connection::open_in_memory().unwrap();
        let tx = conn.transaction().unwrap();
        tx.execute_batch(MIGRATIONS[0]).unwrap();
        tx.pragma_update(None, "user_version", 1i64).unwrap();
        tx.execute_batch(
            "INSERT INTO users (id, username, password_hash, role, created_ns) VALUES
                (1, 'agent', 'h', 'operator', 0), (2, 'vera', 'h', 'viewer', 0);
             INSERT INTO api_keys (user_id, name, prefix, key_hash, created_ns) VALUES
                (1, 'old agent', 'snt_a', 'hash-a', 0), (2, 'old viewer', 'snt_b', 'hash-b', 0);",
        )
        .unwrap();
        tx.commit().unwrap();
        let s = SqliteStore::init(conn, None).unwrap();
        let (a, _) = s.api_key_by_hash("hash-a").await.unwrap().unwrap();
        let (b, _) = s.api_key_by_hash("hash-b").await.unwrap().unwrap();
        assert_eq!((a.scope, a.host.as_deref()), (KeyScope::Ingest, None));
        assert_eq!(b.scope, KeyScope::Read);
        // The first push binds the migrated ingest key, and it stays bound.
        assert_eq!(
            s.bind_api_key_host(a.id, "web-1").await.unwrap().as_deref(),
            Some("web-1")
        );
        assert_eq!(
            s.bind_api_key_host(a.id, "db-1").await.unwrap().as_deref(),
            Some("web-1")
        );
        assert_eq!(s.bind_api_key_host(b.id, "x").await.unwrap(), None);
    }
}
