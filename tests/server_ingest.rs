//! End-to-end tests of agent data reaching the dashboard server: ingest idempotency, API key
//! states, body limits, the push client across a server outage and an agent restart (nothing
//! lost, nothing twice, counted at a recording proxy in front of the server), and an ingest
//! load run that prints latency quantiles. Every case runs on SQLite and on PostgreSQL.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use sentinel::feed::push::{PushConfig, Pusher};
use sentinel::model::Level;
use sentinel::server::auth;
use sentinel::server::store::{KeyScope, NewApiKey, Role};
use sentinel_e2e::dash::{self, Db};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn ingest_is_idempotent_and_keys_can_be_disabled_or_expire(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start_on(dir.path(), db).await;
    let op = dash::add_user(&h, "agent", Role::Operator, "password-123456").await;
    let key = dash::ingest_key(&h, op, "web-1").await;
    let c = client();
    let url = format!("{}/api/ingest", h.url());
    let batch = serde_json::json!({ "batch_id": "b-1", "anomalies": [dash::anomaly("web-1", "bob", "a-1", Level::High)] });
    let r: serde_json::Value = c
        .post(&url)
        .bearer_auth(&key)
        .json(&batch)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["duplicate"], false);
    let r: serde_json::Value = c
        .post(&url)
        .header("x-api-key", &key)
        .json(&batch)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["duplicate"], true);
    assert_eq!(h.store().count_anomalies().await.unwrap(), 1);
    // The key records its last use; a query-string key is never accepted.
    assert!(
        h.store().list_api_keys(op).await.unwrap()[0]
            .last_used_ns
            .is_some()
    );
    let r = c
        .post(format!("{url}?api_key={key}"))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Oversized bodies are refused before parsing. On a client of its own: the server closes
    // that connection after its 413 (it did not read the body), and a shared client could
    // take it from its pool for the next request.
    let big =
        serde_json::json!({ "batch_id": "big", "snapshots": [ { "pad": "x".repeat(5 << 20) } ] });
    match client()
        .post(&url)
        .bearer_auth(&key)
        .json(&big)
        .send()
        .await
    {
        Ok(r) => assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE),
        // The server may answer 413 and close before the client has written all 5 MiB.
        Err(e) => assert!(e.is_request(), "{e:?}"),
    }
    // Disabled key, then disabled owner: refused.
    let kid = h.store().list_api_keys(op).await.unwrap()[0].id;
    h.store().set_api_key_enabled(op, kid, false).await.unwrap();
    assert_eq!(
        c.post(&url)
            .bearer_auth(&key)
            .json(&batch)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    h.store().set_api_key_enabled(op, kid, true).await.unwrap();
    h.store().set_active(op, false).await.unwrap();
    assert_eq!(
        c.post(&url)
            .bearer_auth(&key)
            .json(&batch)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    h.store().set_active(op, true).await.unwrap();
    // An expired key is refused.
    let (k2, prefix, hash) = auth::new_api_key().unwrap();
    h.store()
        .create_api_key(&NewApiKey {
            user_id: op,
            name: "old",
            prefix: &prefix,
            key_hash: &hash,
            now_ns: 0,
            expires_ns: Some(1),
            scope: KeyScope::Ingest,
            host: Some("web-1"),
        })
        .await
        .unwrap();
    assert_eq!(
        c.post(&url)
            .bearer_auth(&k2)
            .json(&batch)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // The OpenAPI document is served and parses.
    let doc: serde_json::Value = c
        .get(format!("{}/api/openapi.json", h.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/api/ingest"]["post"].is_object());
    h.shutdown().await;
}

/// Queues anomalies p-<i> for i in `ids` and flushes them to the spool.
async fn send_range(p: &Pusher, ids: std::ops::Range<usize>) {
    for i in ids {
        let a = dash::anomaly("web-1", "bob", &format!("p-{i}"), Level::Medium);
        p.send_anomaly(a).await.unwrap();
    }
    p.flush().await.unwrap();
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    // A generous bound so a broken client fails instead of hanging; not a speed check.
    for _ in 0..1200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("gave up waiting for {what}");
}

/// One ingest request as a recording proxy in front of the server saw it: the anomaly ids it
/// carried and the server's answer.
#[derive(Debug)]
struct Delivery {
    ids: Vec<String>,
    status: u16,
    duplicate: Option<bool>,
}

type Deliveries = Arc<Mutex<Vec<Delivery>>>;

/// Serves `POST /api/ingest` on `listener`, forwards each request to `upstream` and records
/// it: what reached the server is counted here, not in the server's store (whose insert
/// ignores a batch it already has, so it could not show a duplicate).
fn recording_proxy(listener: tokio::net::TcpListener, upstream: String) -> Deliveries {
    let got: Deliveries = Arc::default();
    let record = got.clone();
    let client = client();
    let forward = move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
        let (record, client, upstream) = (record.clone(), client.clone(), upstream.clone());
        async move {
            let mut req = client
                .post(format!("{upstream}/api/ingest"))
                .header("content-type", "application/json")
                .body(body.to_vec());
            if let Some(a) = headers.get("authorization") {
                req = req.header("authorization", a.as_bytes());
            }
            let r = req
                .send()
                .await
                .expect("the server behind the proxy answers");
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            let sent: serde_json::Value =
                serde_json::from_slice(&body).expect("the pusher sends JSON");
            let ids = sent["anomalies"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| a["id"].as_str().expect("anomaly id").to_string())
                .collect();
            let duplicate = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["duplicate"].as_bool());
            record.lock().unwrap().push(Delivery {
                ids,
                status,
                duplicate,
            });
            (
                axum::http::StatusCode::from_u16(status).expect("status"),
                text,
            )
        }
    };
    let app = axum::Router::new().route("/api/ingest", axum::routing::post(forward));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    got
}

async fn push_client_survives_server_outage_and_agent_restart_without_loss_or_duplicates(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    // Reserve a port, then free it: the server is "down" there until the recording proxy in
    // front of it listens there.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}");
    let mut pc = PushConfig::new(&url, "will-be-replaced", spool.clone());
    pc.batch_max = 7;
    pc.flush_every = Duration::from_millis(50);
    pc.max_backoff = Duration::from_millis(400);
    // The key must exist before the server runs; create it in the database file up front.
    // The server listens on a port of its own (127.0.0.1:0), behind the proxy.
    let cfg = dash::config_on(dir.path(), db);
    let key = {
        let (store, _) = sentinel::server::backend::open(&cfg, None).await.unwrap();
        let id = store
            .create_user(
                "agent",
                &auth::hash_password("password-123456").unwrap(),
                Role::Operator,
                0,
            )
            .await
            .unwrap();
        let (key, prefix, hash) = auth::new_api_key().unwrap();
        store
            .create_api_key(&NewApiKey {
                user_id: id,
                name: "agent",
                prefix: &prefix,
                key_hash: &hash,
                now_ns: 0,
                expires_ns: None,
                scope: KeyScope::Ingest,
                host: Some("web-1"),
            })
            .await
            .unwrap();
        key
    };
    pc.api_key = key;
    // Agent 1 sends 40 anomalies while the server is down, then stops.
    let p1 = Pusher::start(pc.clone()).unwrap();
    send_range(&p1, 0..40).await;
    wait_until("a failed attempt", || {
        p1.stats()
            .failures
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    })
    .await;
    assert!(p1.pending() >= 6, "batches wait on disk: {}", p1.pending());
    p1.shutdown(Duration::ZERO).await;
    // Agent 2 (a restart) reuses the spool and adds 40 more.
    let p2 = Pusher::start(pc.clone()).unwrap();
    send_range(&p2, 40..80).await;
    // Server comes up (on a port of its own, behind the proxy): everything arrives exactly
    // once.
    let h = sentinel::server::Server::start(cfg).await.unwrap();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let got = recording_proxy(listener, h.url());
    wait_until("the spool to drain", || p2.pending() == 0).await;
    {
        let got = got.lock().unwrap();
        assert!(
            got.iter()
                .all(|d| d.status == 200 && d.duplicate == Some(false)),
            "every request accepted as new, none a duplicate: {got:?}"
        );
        let mut ids: Vec<&str> = got
            .iter()
            .flat_map(|d| &d.ids)
            .map(String::as_str)
            .collect();
        let sent = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 80, "every anomaly reached the server: {got:?}");
        assert_eq!(sent, 80, "no anomaly was sent twice: {got:?}");
        assert!(
            got.iter().all(|d| d.ids.len() <= 7),
            "batches of at most batch_max"
        );
    }
    assert_eq!(h.store().count_anomalies().await.unwrap(), 80);
    for i in 0..80 {
        assert!(
            h.store()
                .get_anomaly(&format!("p-{i}"))
                .await
                .unwrap()
                .is_some(),
            "p-{i} delivered"
        );
    }
    p2.shutdown(Duration::from_secs(1)).await;
    h.shutdown().await;
}

async fn ingest_load_accepts_every_batch_and_reports_latency(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start_on(dir.path(), db).await;
    let op = dash::add_user(&h, "agent", Role::Operator, "password-123456").await;
    let key = dash::ingest_key(&h, op, dash::LOAD_HOST).await;
    let r = dash::ingest_load(&h, &key, 200, 10, 16).await;
    println!(
        "ingest load: {} batches x 10, accepted {}, stored {}, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        r.batches, r.accepted, r.stored, r.p50_ms, r.p99_ms, r.max_ms
    );
    assert_eq!(r.accepted, 200);
    assert_eq!(r.stored, 2000);
    h.shutdown().await;
}

/// Every case on both stores: the SQLite file and a PostgreSQL database.
macro_rules! on_both_stores {
    ($($t:ident),* $(,)?) => {$(
        mod $t {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$t(Db::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$t(Db::Postgres).await;
            }
        }
    )*};
}

on_both_stores!(
    ingest_is_idempotent_and_keys_can_be_disabled_or_expire,
    push_client_survives_server_outage_and_agent_restart_without_loss_or_duplicates,
    ingest_load_accepts_every_batch_and_reports_latency,
);
