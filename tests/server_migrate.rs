//! End-to-end: a SQLite site moves to PostgreSQL with `sentinel serve migrate` (the real
//! binary), and `sentinel serve` then runs from PostgreSQL: the admin signs in with the same
//! password and two-factor secret, the agent's key still pushes (and a batch sent before the
//! move is still a duplicate), the reader sees the anomalies and the incident from before.
//! PostgreSQL is a throw-away cluster of Debian's server (sentinel::server::postgres::testing).

use std::path::Path;

use reqwest::StatusCode;
use sentinel::incident::{Incident, Step};
use sentinel::model::{Factor, Level, Principal};
use sentinel::server::auth;
use sentinel::server::sqlite::SqliteStore;
use sentinel::server::store::{AccountStore, KeyScope, NewApiKey, Role};
use sentinel_e2e::dash;
use serde_json::{Value, json};

const PW: &str = "correct horse battery staple";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn incident(id: &str, host: &str) -> Incident {
    let step = Step {
        anomaly_id: format!("{host}-a1"),
        time_ns: 1_000_000_000,
        tactic: "execution".into(),
        detections: vec!["exec_from_writable".into()],
        score: 40,
        level: Level::Medium,
        summary: "step 1".into(),
        exe: "/tmp/x".into(),
        factors: vec![Factor {
            detection: "exec_from_writable".into(),
            reason: "ran /tmp/x".into(),
            weight: 40,
            evidence: vec![],
        }],
    };
    Incident {
        id: id.into(),
        host: host.into(),
        principal: Principal {
            uid: 1000,
            user: Some("bob".into()),
            session: Some(7),
        },
        scope: "session 7".into(),
        first_ns: 1_000_000_000,
        last_ns: 1_000_000_000,
        score: 40,
        level: Level::Medium,
        story: "execution".into(),
        tactics: vec!["execution".into()],
        steps: vec![step],
        step_count: 1,
        explanation: None,
    }
}

/// The site's people and keys, made in the file before any server runs (as `sentinel user
/// add` and the Keys page would): (ingest key, read key).
async fn populate(db: &Path) -> (String, String) {
    let s = SqliteStore::open(db).unwrap();
    let now = sentinel::store::now_ns();
    s.create_user("olga", &auth::hash_password(PW).unwrap(), Role::Admin, now)
        .await
        .unwrap();
    let op = s
        .create_user(
            "agent",
            &auth::hash_password(PW).unwrap(),
            Role::Operator,
            now,
        )
        .await
        .unwrap();
    let mut keys = Vec::new();
    for (scope, host) in [(KeyScope::Ingest, Some("web-1")), (KeyScope::Read, None)] {
        let (key, prefix, hash) = auth::new_api_key().unwrap();
        s.create_api_key(&NewApiKey {
            user_id: op,
            name: scope.as_str(),
            prefix: &prefix,
            key_hash: &hash,
            now_ns: now,
            expires_ns: None,
            scope,
            host,
        })
        .await
        .unwrap();
        keys.push(key);
    }
    (keys[0].clone(), keys[1].clone())
}

async fn push(c: &reqwest::Client, base: &str, key: &str, body: &Value) -> (StatusCode, Value) {
    let r = c
        .post(format!("{base}/api/ingest"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn get(c: &reqwest::Client, url: &str, key: &str) -> String {
    let r = c.get(url).bearer_auth(key).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{url}");
    r.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_site_moves_to_postgres_and_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let db_s = db.to_str().unwrap();
    let (ingest, read) = populate(&db).await;
    let c = client();

    // 1. The SQLite site: two-factor on, anomalies and an incident pushed by the agent.
    let srv = dash::serve(&["--db", db_s, "--listen", "127.0.0.1:0"])
        .unwrap_or_else(|(code, err)| panic!("sentinel serve exited {code}: {err}"));
    let r = dash::login(&c, &srv.url, "olga", PW).await;
    let cookie = dash::session_cookie(&r).expect("signed in");
    let (secret, step) = dash::enrol_totp(&c, &srv.url, &cookie, PW).await;
    let first = json!({
        "batch_id": "before-the-move",
        "host": "web-1",
        "anomalies": [
            dash::anomaly("web-1", "bob", "web-1-a1", Level::High),
            dash::anomaly("web-1", "bob", "web-1-a2", Level::Critical),
        ],
        "incidents": [incident("web-1-i1", "web-1")],
    });
    let (s, out) = push(&c, &srv.url, &ingest, &first).await;
    assert_eq!(
        (s, out["anomalies"].as_u64()),
        (StatusCode::OK, Some(2)),
        "{out}"
    );
    assert_eq!(srv.stop(), 0);

    // 2. The move, with the real command.
    let url = sentinel::server::postgres::testing::database().await;
    let r = sentinel_e2e::sentinel(&["serve", "migrate", "--from", db_s, "--to", &url]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("anomalies") && r.stdout.contains("database = "),
        "{}",
        r.stdout
    );

    // 3. Served from PostgreSQL (`--db` now only locates the key file next to it).
    let srv = dash::serve(&["--db", db_s, "--database", &url, "--listen", "127.0.0.1:0"])
        .unwrap_or_else(|(code, err)| panic!("sentinel serve exited {code}: {err}"));
    let (cookie, _) = dash::login_with_totp(&c, &srv.url, "olga", PW, &secret, step).await;
    let home = c
        .get(format!("{}/", srv.url))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    let anomalies = get(&c, &format!("{}/api/anomalies", srv.url), &read).await;
    assert!(
        anomalies.contains("web-1-a1") && anomalies.contains("web-1-a2"),
        "{anomalies}"
    );
    let incidents = get(&c, &format!("{}/api/incidents", srv.url), &read).await;
    assert!(incidents.contains("web-1-i1"), "{incidents}");
    // The agent's key still pushes; its batch from before the move is still a duplicate.
    let (s, out) = push(&c, &srv.url, &ingest, &first).await;
    assert_eq!(
        (s, out["duplicate"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{out}"
    );
    let next = json!({
        "batch_id": "after-the-move",
        "anomalies": [dash::anomaly("web-1", "bob", "web-1-a3", Level::Low)],
    });
    let (s, out) = push(&c, &srv.url, &ingest, &next).await;
    assert_eq!(
        (s, out["anomalies"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{out}"
    );
    assert_eq!(srv.stop(), 0);

    // 4. A second move into the same, now full, database changes nothing.
    let r = sentinel_e2e::sentinel(&["serve", "migrate", "--from", db_s, "--to", &url]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("not empty"), "{}", r.stderr);
}
