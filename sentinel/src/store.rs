//! The agent's embedded SQLite store (/var/lib/sentinel/sentinel.db): learned baselines of every
//! kind and the anomalies this host raised. WAL mode and transactions keep it consistent
//! across crashes; schema changes go through the append-only `MIGRATIONS` list.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use crate::model::Anomaly;

pub const DEFAULT_PATH: &str = "/var/lib/sentinel/sentinel.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("store: corrupt record: {0}")]
    Json(#[from] serde_json::Error),
}

/// Append-only: each entry runs once, in order, and its index is the schema version.
/// Never edit a released entry; add a new one.
const MIGRATIONS: &[&str] = &[
    // 1: generic baselines and anomalies.
    "CREATE TABLE baselines (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        updated_ns INTEGER NOT NULL,
        PRIMARY KEY (kind, key)
     );
     CREATE TABLE anomalies (
        id TEXT PRIMARY KEY,
        time_ns INTEGER NOT NULL,
        level TEXT NOT NULL,
        score INTEGER NOT NULL,
        record TEXT NOT NULL
     );
     CREATE INDEX anomalies_time ON anomalies(time_ns);",
    // 2: session incidents (the latest state of each).
    "CREATE TABLE incidents (
        id TEXT PRIMARY KEY,
        last_ns INTEGER NOT NULL,
        level TEXT NOT NULL,
        score INTEGER NOT NULL,
        record TEXT NOT NULL
     );
     CREATE INDEX incidents_time ON incidents(last_ns);",
    // 3: analysts' verdicts (detect/feedback.rs), one per anomaly.
    "CREATE TABLE feedback (
        anomaly_id TEXT PRIMARY KEY,
        time_ns INTEGER NOT NULL,
        rule TEXT NOT NULL
     );",
    // 4: verdicts delivered by a server (feed/verdicts.rs): each delivery is applied once.
    "CREATE TABLE server_verdicts (
        delivery TEXT PRIMARY KEY,
        applied_ns INTEGER NOT NULL,
        outcome TEXT
     );",
];

pub struct Store {
    conn: Connection,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Store::init(conn)
    }

    /// A private in-memory store (tests, dry runs).
    pub fn memory() -> Result<Store, StoreError> {
        Store::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Store, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut store = Store { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub fn put_baseline(
        &self,
        kind: &str,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO baselines (kind, key, value, updated_ns) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(kind, key) DO UPDATE SET value = excluded.value, updated_ns = excluded.updated_ns",
            params![kind, key, value.to_string(), now_ns()],
        )?;
        Ok(())
    }

    /// Writes several baselines atomically: all of them or, on error, none.
    pub fn put_baselines(
        &self,
        items: &[(&str, String, serde_json::Value)],
    ) -> Result<(), StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let now = now_ns();
        for (kind, key, value) in items {
            tx.execute(
                "INSERT INTO baselines (kind, key, value, updated_ns) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(kind, key) DO UPDATE SET value = excluded.value, updated_ns = excluded.updated_ns",
                params![kind, key, value.to_string(), now],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn get_baseline(
        &self,
        kind: &str,
        key: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM baselines WHERE kind = ?1 AND key = ?2",
                params![kind, key],
                |r| r.get(0),
            )
            .optional()?;
        Ok(match text {
            Some(t) => Some(serde_json::from_str(&t)?),
            None => None,
        })
    }

    /// All baselines of one kind, ordered by key.
    pub fn list_baselines(
        &self,
        kind: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT key, value FROM baselines WHERE kind = ?1 ORDER BY key")?;
        let rows = st.query_map(params![kind], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (k, v) = row?;
            out.push((k, serde_json::from_str(&v)?));
        }
        Ok(out)
    }

    /// Deletes one baseline. Returns 1 when it existed, else 0.
    pub fn delete_baseline(&self, kind: &str, key: &str) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "DELETE FROM baselines WHERE kind = ?1 AND key = ?2",
            params![kind, key],
        )?)
    }

    /// Deletes the baselines of one kind (all kinds with `None`). Returns how many went.
    pub fn delete_baselines(&self, kind: Option<&str>) -> Result<usize, StoreError> {
        Ok(match kind {
            Some(k) => self
                .conn
                .execute("DELETE FROM baselines WHERE kind = ?1", params![k])?,
            None => self.conn.execute("DELETE FROM baselines", [])?,
        })
    }

    pub fn put_anomaly(&self, a: &Anomaly) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO anomalies (id, time_ns, level, score, record) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![a.id, a.time_ns, a.level.as_str(), a.score, serde_json::to_string(a)?],
        )?;
        Ok(())
    }

    pub fn get_anomaly(&self, id: &str) -> Result<Option<Anomaly>, StoreError> {
        self.get_record("SELECT record FROM anomalies WHERE id = ?1", id)
    }

    /// One JSON record by id.
    fn get_record<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        id: &str,
    ) -> Result<Option<T>, StoreError> {
        let text: Option<String> = self
            .conn
            .query_row(sql, params![id], |r| r.get(0))
            .optional()?;
        Ok(match text {
            Some(t) => Some(serde_json::from_str(&t)?),
            None => None,
        })
    }

    /// Saves an analyst's verdict (`detect::feedback::Rule` as JSON), replacing an earlier one
    /// on the same anomaly.
    pub fn put_feedback(
        &self,
        anomaly_id: &str,
        time_ns: i64,
        rule: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO feedback (anomaly_id, time_ns, rule) VALUES (?1, ?2, ?3)",
            params![anomaly_id, time_ns, rule.to_string()],
        )?;
        Ok(())
    }

    /// Takes a verdict back; returns whether there was one.
    pub fn delete_feedback(&self, anomaly_id: &str) -> Result<bool, StoreError> {
        Ok(self.conn.execute(
            "DELETE FROM feedback WHERE anomaly_id = ?1",
            params![anomaly_id],
        )? > 0)
    }

    /// The verdict saved on one anomaly, if any.
    pub fn get_feedback(&self, anomaly_id: &str) -> Result<Option<serde_json::Value>, StoreError> {
        self.get_record(
            "SELECT rule FROM feedback WHERE anomaly_id = ?1",
            anomaly_id,
        )
    }

    /// Whether a server's verdict delivery was applied already, and its outcome then (None:
    /// applied; Some(error): refused).
    #[allow(clippy::type_complexity)]
    pub fn server_verdict(&self, delivery: &str) -> Result<Option<Option<String>>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT outcome FROM server_verdicts WHERE delivery = ?1",
                params![delivery],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?)
    }

    /// Records that a server's verdict delivery was handled (applied, or refused with why).
    pub fn mark_server_verdict(
        &self,
        delivery: &str,
        outcome: Option<&str>,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO server_verdicts (delivery, applied_ns, outcome) VALUES (?1, ?2, ?3)",
            params![delivery, now_ns(), outcome],
        )?;
        Ok(())
    }

    /// Changes when another connection (the CLI, the push client, the anomaly writer)
    /// commits: the engine re-reads the verdicts when it moves.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))?)
    }

    /// Every verdict (as saved), oldest first.
    pub fn feedback_rules(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT rule FROM feedback ORDER BY time_ns, anomaly_id")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(serde_json::from_str(&row?)?);
        }
        Ok(out)
    }

    /// Saves the latest state of an incident (replacing the earlier one).
    pub fn put_incident(&self, i: &crate::incident::Incident) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO incidents (id, last_ns, level, score, record) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![i.id, i.last_ns, i.level.as_str(), i.score, serde_json::to_string(i)?],
        )?;
        Ok(())
    }

    pub fn get_incident(&self, id: &str) -> Result<Option<crate::incident::Incident>, StoreError> {
        self.get_record("SELECT record FROM incidents WHERE id = ?1", id)
    }

    /// The newest `limit` anomalies, newest first.
    pub fn recent_anomalies(&self, limit: usize) -> Result<Vec<Anomaly>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT record FROM anomalies ORDER BY time_ns DESC LIMIT ?1")?;
        let rows = st.query_map(params![limit as i64], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(serde_json::from_str(&row?)?);
        }
        Ok(out)
    }
}

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Anomaly, Level, Principal};

    #[test]
    fn baselines_round_trip_and_survive_reopen() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/s.db");
        {
            let s = Store::open(&p).unwrap();
            s.put_baseline("snapshot", "host", &serde_json::json!({"a": 1}))
                .unwrap();
            s.put_baseline("snapshot", "host", &serde_json::json!({"a": 2}))
                .unwrap();
        }
        let s = Store::open(&p).unwrap();
        assert_eq!(
            s.get_baseline("snapshot", "host").unwrap(),
            Some(serde_json::json!({"a": 2}))
        );
        assert_eq!(s.list_baselines("snapshot").unwrap().len(), 1);
        assert_eq!(s.delete_baselines(Some("snapshot")).unwrap(), 1);
        assert_eq!(s.get_baseline("snapshot", "host").unwrap(), None);
    }

    #[test]
    fn anomalies_round_trip() {
        let s = Store::memory().unwrap();
        let a = Anomaly {
            id: "h-1-1".into(),
            host: "h".into(),
            time_ns: 5,
            principal: Principal {
                uid: 1000,
                user: None,
                session: None,
            },
            chain: vec![],
            score: 60,
            level: Level::High,
            factors: vec![],
            evidence: vec![],
            fingerprint: "f".into(),
            explanation: None,
        };
        s.put_anomaly(&a).unwrap();
        assert_eq!(s.get_anomaly("h-1-1").unwrap(), Some(a.clone()));
        assert_eq!(s.recent_anomalies(10).unwrap(), vec![a]);
        assert_eq!(s.get_anomaly("nope").unwrap(), None);
    }
}
