//! The SQLite backend of `ServerStore`: one file, WAL journal, append-only migrations. One
//! connection behind a mutex is enough for the dashboard's write rate (SQLite serialises
//! writers anyway) and keeps every trait method a single atomic transaction.

use std::path::Path;
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

pub struct SqliteStore {
    conn: Mutex<Connection>,
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
        Self::init(conn, None)
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

    pub(crate) fn db(&self) -> DbResult<MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| DbError::Poisoned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Anomaly, Factor, Principal};
    use crate::server::store::{
        AccountStore, AnomalyFilter, DataStore, IngestBatch, KeyScope, NewSession,
    };

    fn anomaly(id: &str, host: &str, level: Level, det: &str, time_ns: i64) -> Anomaly {
        Anomaly {
            id: id.into(),
            host: host.into(),
            time_ns,
            principal: Principal {
                uid: 1000,
                user: Some("bob".into()),
                session: None,
            },
            chain: vec![],
            score: 50,
            level,
            factors: vec![Factor {
                detection: det.into(),
                reason: "r".into(),
                weight: 50,
                evidence: vec![],
            }],
            evidence: vec![],
            fingerprint: "f".into(),
            explanation: None,
        }
    }

    fn batch(id: &str, anomalies: Vec<Anomaly>) -> IngestBatch {
        IngestBatch {
            batch_id: id.into(),
            anomalies,
            ..Default::default()
        }
    }

    #[test]
    fn ingest_is_idempotent_by_batch_and_by_anomaly_id() {
        let s = SqliteStore::memory().unwrap();
        let out = s
            .ingest(
                &batch("b1", vec![anomaly("a", "h", Level::High, "x", 5)]),
                10,
            )
            .unwrap();
        assert_eq!((out.duplicate, out.new.len()), (false, 1));
        assert!(
            s.ingest(
                &batch("b1", vec![anomaly("a", "h", Level::High, "x", 5)]),
                11
            )
            .unwrap()
            .duplicate
        );
        let again = s
            .ingest(
                &batch("b2", vec![anomaly("a", "h", Level::High, "x", 5)]),
                12,
            )
            .unwrap();
        assert!(
            !again.duplicate && again.new.is_empty(),
            "same anomaly id in a new batch"
        );
        assert_eq!(s.count_anomalies().unwrap(), 1);
    }

    #[test]
    fn a_reused_id_with_other_content_is_kept_as_a_conflict_never_dropped() {
        let s = SqliteStore::memory().unwrap();
        // An attacker pushes the id in advance, with harmless content.
        let planted = anomaly("web-1-1", "web-1", Level::Low, "x", 5);
        s.ingest(&batch("b1", vec![planted]), 10).unwrap();
        let real = anomaly("web-1-1", "web-1", Level::Critical, "credential_access", 6);
        let out = s.ingest(&batch("b2", vec![real.clone()]), 11).unwrap();
        assert_eq!(out.conflicts.len(), 1, "{out:?}");
        let kept = &out.conflicts[0].stored_as;
        assert!(kept.starts_with("web-1-1~"), "{kept}");
        assert_eq!(out.stored, vec![kept.clone()]);
        let got = s.get_anomaly(kept).unwrap().unwrap();
        assert_eq!(got.anomaly.level, Level::Critical);
        assert_eq!(got.conflict_of.as_deref(), Some("web-1-1"));
        // The same conflicting record again is a duplicate, not a second conflict.
        let again = s.ingest(&batch("b3", vec![real.clone()]), 12).unwrap();
        assert!(again.new.is_empty() && again.conflicts.is_empty());
        // A retry of the original (an explanation added later) is a duplicate.
        let out = s
            .ingest(
                &batch("b4", vec![anomaly("web-1-1", "web-1", Level::Low, "x", 5)]),
                13,
            )
            .unwrap();
        assert_eq!(out.duplicates, vec!["web-1-1".to_string()]);
        assert_eq!(s.count_anomalies().unwrap(), 2);
    }

    #[test]
    fn the_feed_follows_receipt_order_not_agent_time() {
        let s = SqliteStore::memory().unwrap();
        let future = anomaly("f", "h", Level::Low, "x", i64::MAX / 2);
        s.ingest(&batch("b1", vec![future]), 100).unwrap();
        s.ingest(
            &batch("b2", vec![anomaly("r", "h", Level::High, "x", 50)]),
            200,
        )
        .unwrap();
        let ids: Vec<String> = s
            .list_anomalies(&AnomalyFilter::default())
            .unwrap()
            .into_iter()
            .map(|a| a.anomaly.id)
            .collect();
        assert_eq!(ids, ["r", "f"]);
        let p = s.purge(150, 0, 0, 0).unwrap();
        assert_eq!(p.anomalies, 1, "retention counts from receipt");
        assert!(s.get_anomaly("f").unwrap().is_none());
    }

    #[test]
    fn keys_from_before_scopes_are_migrated_by_their_owners_role() {
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
        let (a, _) = s.api_key_by_hash("hash-a").unwrap().unwrap();
        let (b, _) = s.api_key_by_hash("hash-b").unwrap().unwrap();
        assert_eq!((a.scope, a.host.as_deref()), (KeyScope::Ingest, None));
        assert_eq!(b.scope, KeyScope::Read);
        // The first push binds the migrated ingest key, and it stays bound.
        assert_eq!(
            s.bind_api_key_host(a.id, "web-1").unwrap().as_deref(),
            Some("web-1")
        );
        assert_eq!(
            s.bind_api_key_host(a.id, "db-1").unwrap().as_deref(),
            Some("web-1")
        );
        assert_eq!(s.bind_api_key_host(b.id, "x").unwrap(), None);
    }

    #[test]
    fn filters_acks_and_hosts() {
        let s = SqliteStore::memory().unwrap();
        let now = 100 * 86_400_000_000_000i64;
        s.ingest(
            &batch(
                "b",
                vec![
                    anomaly("a1", "web", Level::Low, "exec_from_tmp", now - 10),
                    anomaly("a2", "web", Level::Critical, "credential_access", now - 5),
                    anomaly("a3", "db", Level::High, "exec_from_tmp", now - 1),
                ],
            ),
            now,
        )
        .unwrap();
        let ids = |f: AnomalyFilter| -> Vec<String> {
            s.list_anomalies(&f)
                .unwrap()
                .into_iter()
                .map(|a| a.anomaly.id)
                .collect()
        };
        assert_eq!(ids(AnomalyFilter::default()), ["a3", "a2", "a1"]);
        assert_eq!(
            ids(AnomalyFilter {
                host: Some("web".into()),
                ..Default::default()
            }),
            ["a2", "a1"]
        );
        assert_eq!(
            ids(AnomalyFilter {
                level: Some(Level::High),
                ..Default::default()
            }),
            ["a3", "a2"]
        );
        assert_eq!(
            ids(AnomalyFilter {
                detection: Some("exec_from_tmp".into()),
                ..Default::default()
            }),
            ["a3", "a1"]
        );
        assert_eq!(
            ids(AnomalyFilter {
                detection: Some("exec".into()),
                ..Default::default()
            }),
            Vec::<String>::new()
        );
        assert!(s.ack_anomaly("a2", "olga", now).unwrap());
        assert!(
            !s.ack_anomaly("a2", "olga", now).unwrap(),
            "acknowledged once"
        );
        assert_eq!(
            ids(AnomalyFilter {
                unacked: Some(true),
                ..Default::default()
            }),
            ["a3", "a1"]
        );
        let web = s.get_host("web", now).unwrap().unwrap();
        assert_eq!(
            (web.level_24h, web.anomalies_24h, web.unacked),
            (Some(Level::Critical), 2, 1)
        );
        assert_eq!(s.ack_host("web", "olga", now).unwrap(), 1);
        assert_eq!(s.list_hosts(now).unwrap().len(), 2);
        assert_eq!(
            s.detections().unwrap(),
            ["credential_access", "exec_from_tmp"]
        );
    }

    #[test]
    fn retention_drops_old_data_and_dead_sessions() {
        let s = SqliteStore::memory().unwrap();
        s.ingest(
            &batch("old", vec![anomaly("a", "gone", Level::Low, "x", 1)]),
            1,
        )
        .unwrap();
        s.ingest(
            &batch("new", vec![anomaly("b", "here", Level::Low, "x", 1000)]),
            1000,
        )
        .unwrap();
        let u = s.create_user("u", "h", Role::Viewer, 0).unwrap();
        let sess = |hash: &str, t| NewSession {
            token_hash: hash.into(),
            user_id: u,
            csrf: "c".into(),
            mfa_pending: false,
            now_ns: t,
            ip: "i".into(),
            user_agent: "a".into(),
        };
        s.create_session(&sess("t1", 1)).unwrap();
        s.create_session(&sess("t2", 1000)).unwrap();
        let p = s.purge(500, 500, 500, 0).unwrap();
        assert_eq!((p.anomalies, p.sessions), (1, 1));
        assert_eq!(s.count_anomalies().unwrap(), 1);
        assert!(s.get_host("gone", 1000).unwrap().is_none());
        assert!(s.session_by_token_hash("t2").unwrap().is_some());
    }

    #[test]
    fn lockout_totp_steps_and_recovery_codes() {
        let s = SqliteStore::memory().unwrap();
        let u = s.create_user("u", "h", Role::Viewer, 0).unwrap();
        assert!(matches!(
            s.create_user("u", "h", Role::Viewer, 0),
            Err(DbError::Conflict(_))
        ));
        for _ in 0..2 {
            s.login_failed(u, 3, 99).unwrap();
        }
        assert_eq!(s.user_by_id(u).unwrap().unwrap().locked_until_ns, 0);
        s.login_failed(u, 3, 99).unwrap();
        let user = s.user_by_id(u).unwrap().unwrap();
        assert_eq!((user.locked_until_ns, user.failed_logins), (99, 0));
        s.set_totp(u, Some("SECRET")).unwrap();
        assert!(s.consume_totp_step(u, 10).unwrap());
        assert!(!s.consume_totp_step(u, 10).unwrap(), "a step is used once");
        assert!(
            !s.consume_totp_step(u, 9).unwrap(),
            "older steps are spent too"
        );
        assert!(s.consume_totp_step(u, 11).unwrap());
        s.set_recovery_codes(u, &["h1".into(), "h2".into()])
            .unwrap();
        assert!(s.use_recovery_code(u, "h1").unwrap());
        assert!(!s.use_recovery_code(u, "h1").unwrap());
        assert_eq!(s.recovery_codes_left(u).unwrap(), 1);
        s.set_totp(u, None).unwrap();
        assert_eq!(
            s.recovery_codes_left(u).unwrap(),
            0,
            "disabling 2FA drops the codes"
        );
    }
}
