//! `sentinel serve migrate --from FILE.db --to postgres://...`: moves a SQLite site into an
//! empty PostgreSQL database. Every table is copied with its ids (sealed TOTP secrets are
//! bound to user and session ids, so they open after the move with the same key file), in
//! one transaction with binary COPY (a chunk of rows at a time); identity sequences then continue after the copied ids.
//! A target holding any row is refused.

use std::path::Path;

use anyhow::{Context, bail};
use futures_util::pin_mut;
use rusqlite::types::Value;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::postgres::{PgStore, db_msg, redact};
use super::sqlite::SqliteStore;

/// The tables of a site, parents before children. A new table is appended here too.
pub const TABLES: &[&str] = &[
    "users",
    "recovery_codes",
    "login_ips",
    "sessions",
    "api_keys",
    "audit_log",
    "hosts",
    "anomalies",
    "snapshots",
    "fingerprints",
    "ingest_batches",
    "feedback",
    "incidents",
    "enrol_tokens",
    "agents",
    "heartbeats",
];

/// Where a PostgreSQL column's values come from in the SQLite table (names that differ).
fn sqlite_column<'a>(table: &str, column: &'a str) -> &'a str {
    match (table, column) {
        // `user` is reserved in PostgreSQL.
        ("anomalies", "user_name") => "user",
        // The SQLite feed's tie-break was the rowid.
        ("anomalies", "seq") => "rowid",
        _ => column,
    }
}

/// Sequences that must continue after the copied values: (table, column or sequence).
const IDENTITIES: &[(&str, &str)] = &[
    ("users", "id"),
    ("sessions", "id"),
    ("api_keys", "id"),
    ("audit_log", "id"),
    ("anomalies", "seq"),
    ("snapshots", "id"),
    ("fingerprints", "id"),
    ("feedback", "id"),
    ("enrol_tokens", "id"),
    ("heartbeats", "id"),
];

/// Rows read from SQLite at a time (one in tests, so every table of two rows or more spans
/// chunks).
const CHUNK: usize = if cfg!(test) { 1 } else { 5000 };

/// Rows copied per table.
pub type Copied = Vec<(&'static str, u64)>;

/// One SQLite value as a PostgreSQL parameter of type `ty`.
fn param(
    v: Value,
    ty: &Type,
    table: &str,
    col: &str,
) -> anyhow::Result<Box<dyn ToSql + Sync + Send>> {
    Ok(match (v, ty) {
        (Value::Null, t) if *t == Type::INT8 => Box::new(None::<i64>),
        (Value::Null, t) if *t == Type::BOOL => Box::new(None::<bool>),
        (Value::Null, t) if *t == Type::TEXT => Box::new(None::<String>),
        (Value::Integer(i), t) if *t == Type::INT8 => Box::new(i),
        (Value::Integer(i), t) if *t == Type::BOOL => Box::new(i != 0),
        (Value::Text(s), t) if *t == Type::TEXT => Box::new(s),
        (Value::Integer(i), t) if *t == Type::TEXT => Box::new(i.to_string()),
        (v, t) => bail!(
            "{table}.{col}: cannot copy SQLite {:?} into PostgreSQL {t}",
            v.data_type()
        ),
    })
}

/// Copies the site at `from` into the empty database at `to`.
pub async fn copy(from: &Path, to: &str) -> anyhow::Result<Copied> {
    if !from.is_file() {
        bail!("{} is not a SQLite database file", from.display());
    }
    // Brings the file's schema up to date, as the server would at start.
    let src = SqliteStore::open(from).with_context(|| format!("opening {}", from.display()))?;
    let dst = PgStore::open(to)
        .await
        .with_context(|| format!("opening {}", redact(to)))?;
    let mut c = dst.conn().await?;
    for t in TABLES {
        let n: i64 = c
            .query_one(
                &format!("SELECT COUNT(*) FROM (SELECT 1 FROM {t} LIMIT 1) x"),
                &[],
            )
            .await?
            .get(0);
        if n > 0 {
            bail!(
                "{} is not empty (table {t} has rows): migrate only into a new, empty database",
                redact(to)
            );
        }
    }
    let tx = c.transaction().await?;
    let mut copied = Copied::new();
    for &table in TABLES {
        // The target's columns and types, in order.
        let probe = tx
            .prepare(&format!("SELECT * FROM {table} LIMIT 0"))
            .await?;
        let cols: Vec<(String, Type)> = probe
            .columns()
            .iter()
            .map(|c| (c.name().to_string(), c.type_().clone()))
            .collect();
        let select = cols
            .iter()
            .map(|(n, _)| format!("\"{}\"", sqlite_column(table, n)))
            .collect::<Vec<_>>()
            .join(", ");
        let names = cols
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let types: Vec<Type> = cols.iter().map(|(_, t)| t.clone()).collect();
        let sink = tx
            .copy_in(&format!("COPY {table} ({names}) FROM STDIN BINARY"))
            .await
            .map_err(|e| anyhow::anyhow!("copying {table}: {}", db_msg(&e)))?;
        let writer = BinaryCopyInWriter::new(sink, &types);
        pin_mut!(writer);
        // A chunk of rows at a time, in rowid order: a large site never sits in memory whole.
        let mut after = i64::MIN;
        loop {
            let rows: Vec<(i64, Vec<Value>)> = src.blocking(|| -> anyhow::Result<_> {
                let db = src.db()?;
                let mut st = db
                    .prepare(&format!(
                        "SELECT rowid, {select} FROM {table} WHERE rowid > ?1 ORDER BY rowid LIMIT {CHUNK}"
                    ))
                    .with_context(|| format!("reading {table} from {}", from.display()))?;
                let rows = st
                    .query_map([after], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            (1..=cols.len())
                                .map(|i| r.get::<_, Value>(i))
                                .collect::<Result<Vec<_>, _>>()?,
                        ))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })?;
            let Some(last) = rows.last().map(|(id, _)| *id) else {
                break;
            };
            after = last;
            for (_, row) in rows {
                let vals = row
                    .into_iter()
                    .zip(&cols)
                    .map(|(v, (n, t))| param(v, t, table, n))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let refs: Vec<&(dyn ToSql + Sync)> =
                    vals.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect();
                writer
                    .as_mut()
                    .write(&refs)
                    .await
                    .map_err(|e| anyhow::anyhow!("copying {table}: {}", db_msg(&e)))?;
            }
        }
        let n = writer
            .finish()
            .await
            .map_err(|e| anyhow::anyhow!("copying {table}: {}", db_msg(&e)))?;
        copied.push((table, n));
    }
    for (table, col) in IDENTITIES {
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{col}'), COALESCE(MAX({col}), 0) + 1, false) FROM {table}"
            ),
            &[],
        )
        .await?;
    }
    tx.execute(
        "SELECT setval('incident_seq', COALESCE(MAX(seq), 0) + 1, false) FROM incidents",
        &[],
    )
    .await?;
    tx.commit().await?;
    Ok(copied)
}

/// The command: copies, then says what to put in the configuration.
pub async fn run(from: &Path, to: &str) -> anyhow::Result<i32> {
    let copied = copy(from, to).await?;
    for (t, n) in &copied {
        println!("{t:16} {n:>10} rows");
    }
    println!(
        "copied {} into {}; now set in the configuration:\n  [server]\n  database = \"{}\"",
        from.display(),
        redact(to),
        redact(to)
    );
    Ok(crate::exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Level;
    use crate::server::fleet::{Enrolment, FleetStore, NewEnrolToken};
    use crate::server::incidents::tests::incident;
    use crate::server::secrets::Keyring;
    use crate::server::store::*;
    use crate::server::store_tests::data::anomaly;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sqlite_site_moves_whole_with_its_ids_and_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.db");
        let keys = Keyring::ephemeral().unwrap();
        let (s, _) = SqliteStore::open_sealed(&file, keys.clone()).unwrap();
        // Ids with gaps: a deleted user, so copied ids differ from fresh ones.
        let gone = s.create_user("gone", "h0", Role::Viewer, 1).await.unwrap();
        let olga = s.create_user("olga", "h1", Role::Admin, 2).await.unwrap();
        s.delete_user(gone).await.unwrap();
        s.set_totp(olga, Some("JBSWY3DPEHPK3PXP")).await.unwrap();
        s.set_recovery_codes(olga, &["r1".into()]).await.unwrap();
        let key = s
            .create_api_key(&NewApiKey {
                user_id: olga,
                name: "agent",
                prefix: "snt_x",
                key_hash: "hash-x",
                now_ns: 3,
                expires_ns: None,
                scope: KeyScope::Ingest,
                host: Some("web"),
            })
            .await
            .unwrap();
        let batch = IngestBatch {
            batch_id: "b1".into(),
            anomalies: vec![
                anomaly("a1", "web", Level::High, "x", 10),
                anomaly("a2", "web", Level::Low, "y", 11),
            ],
            incidents: vec![incident("i1", "web", 3, 10)],
            snapshots: vec![serde_json::json!({"hostname": "web", "n": 1})],
            ..Default::default()
        };
        s.ingest(&batch, 100).await.unwrap();
        s.ack_anomaly("a1", "olga", 101).await.unwrap();
        // The fleet: an enrolled agent (its key, token and agent row).
        s.create_enrol_token(&NewEnrolToken {
            token_hash: "tok",
            prefix: "snt_enr_x",
            note: "",
            created_by: "cli",
            now_ns: 0,
            expires_ns: None,
            max_uses: 2,
        })
        .await
        .unwrap();
        let enrolled = s
            .enroll(&Enrolment {
                token_hash: "tok",
                host: "db",
                key_prefix: "snt_y",
                key_hash: "hash-y",
                now_ns: 102,
            })
            .await
            .unwrap()
            .unwrap();
        let before = s.list_anomalies(&AnomalyFilter::default()).await.unwrap();
        drop(s);

        let url = crate::server::postgres::testing::database().await;
        let copied = copy(&file, &url).await.unwrap();
        let n = |t: &str| copied.iter().find(|(n, _)| *n == t).unwrap().1;
        // Users: olga and the fleet's service account that owns enrolled keys.
        assert_eq!(
            (n("users"), n("anomalies"), n("incidents"), n("agents")),
            (2, 2, 1, 1)
        );

        let (p, r) = PgStore::open_sealed(&url, crate::server::postgres::POOL_SIZE, keys)
            .await
            .unwrap();
        assert!(r.unreadable.is_empty() && r.rekeyed == 0, "{r:?}");
        let u = p.user_by_name("olga").await.unwrap().unwrap();
        assert_eq!((u.id, u.password_hash.as_str()), (olga, "h1"));
        assert_eq!(
            u.totp_secret.as_deref(),
            Some("JBSWY3DPEHPK3PXP"),
            "the sealed secret opens under its copied id"
        );
        assert_eq!(p.recovery_codes_left(olga).await.unwrap(), 1);
        let (k, owner) = p.api_key_by_hash("hash-x").await.unwrap().unwrap();
        assert_eq!(
            (k.id, k.host.as_deref(), owner.id),
            (key, Some("web"), olga)
        );
        let after = p.list_anomalies(&AnomalyFilter::default()).await.unwrap();
        let ids = |v: &[StoredAnomaly]| {
            v.iter()
                .map(|a| (a.anomaly.id.clone(), a.acked_by.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&after), ids(&before));
        assert!(p.get_incident("web", "i1").await.unwrap().is_some());
        assert!(
            p.get_host("web", 100)
                .await
                .unwrap()
                .unwrap()
                .snapshot
                .is_some()
        );
        let agent = p.agent("db").await.unwrap().unwrap();
        assert_eq!(agent.key_id, Some(enrolled.key_id));
        assert_eq!(p.list_enrol_tokens().await.unwrap()[0].uses, 1);
        // The token's next use after the move spends it, and rotates the agent's key.
        let again = p
            .enroll(&Enrolment {
                token_hash: "tok",
                host: "db",
                key_prefix: "snt_z",
                key_hash: "hash-z",
                now_ns: 300,
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.revoked_key, Some(enrolled.key_id));
        // The batch id came along: a retry after the move is still a duplicate.
        assert!(p.ingest(&batch, 200).await.unwrap().duplicate);
        // Sequences continue after the copied ids.
        let next = p.create_user("vera", "h2", Role::Viewer, 3).await.unwrap();
        assert!(next > olga, "{next} after {olga}");
        // A second run into the same (now full) database is refused.
        let e = copy(&file, &url).await.unwrap_err().to_string();
        assert!(e.contains("not empty"), "{e}");
    }

    #[tokio::test]
    async fn a_missing_source_file_is_an_error_not_an_empty_site() {
        let e = copy(
            Path::new("/nonexistent/server.db"),
            "postgres://127.0.0.1:1/x",
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("not a SQLite database file"), "{e}");
    }
}
