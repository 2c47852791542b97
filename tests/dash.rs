//! Dashboard test helpers: start a server on a free localhost port with a scratch database,
//! create users, sessions and API keys directly in its store, build anomalies, and an ingest
//! load generator for the benchmark.

use std::path::Path;
use std::time::Instant;

use reqwest::header::COOKIE;
use sentinel::model::{Anomaly, ChainLink, Evidence, Factor, Level, Principal};
use sentinel::server::store::{KeyScope, NewApiKey, NewSession, Role};
use sentinel::server::{Server, ServerConfig, ServerHandle, auth};

pub fn config(dir: &Path) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".into(),
        db: dir.join("server.db"),
        ..ServerConfig::default()
    }
}

pub async fn start(dir: &Path) -> ServerHandle {
    Server::start(config(dir)).await.expect("server starts")
}

pub fn add_user(h: &ServerHandle, name: &str, role: Role, password: &str) -> i64 {
    let hash = auth::hash_password(password).unwrap();
    h.store()
        .create_user(name, &hash, role, sentinel::store::now_ns())
        .unwrap()
}

/// A signed-in session made directly in the store: (cookie header value, CSRF token).
pub fn session(h: &ServerHandle, user_id: i64) -> (String, String) {
    let (cookie, csrf, _) = session_started_at(h, user_id, sentinel::store::now_ns());
    (cookie, csrf)
}

/// A session as if signed in at `at_ns`: (cookie header value, CSRF token, session id).
pub fn session_started_at(h: &ServerHandle, user_id: i64, at_ns: i64) -> (String, String, i64) {
    let token = auth::new_token().unwrap();
    let csrf = auth::new_token().unwrap();
    let id = h
        .store()
        .create_session(&NewSession {
            token_hash: auth::token_hash(&token),
            user_id,
            csrf: csrf.clone(),
            mfa_pending: false,
            now_ns: at_ns,
            ip: "127.0.0.1".into(),
            user_agent: "test".into(),
        })
        .unwrap();
    (format!("sentinel_session={token}"), csrf, id)
}

/// A key of `scope` (bound to `host` for ingest keys) made directly in the store.
pub fn key(
    h: &ServerHandle,
    user_id: i64,
    name: &str,
    scope: KeyScope,
    host: Option<&str>,
) -> String {
    let (key, prefix, hash) = auth::new_api_key().unwrap();
    h.store()
        .create_api_key(&NewApiKey {
            user_id,
            name,
            prefix: &prefix,
            key_hash: &hash,
            now_ns: sentinel::store::now_ns(),
            expires_ns: None,
            scope,
            host,
        })
        .unwrap();
    key
}

/// An agent's key: push only, for `host`.
pub fn ingest_key(h: &ServerHandle, user_id: i64, host: &str) -> String {
    key(
        h,
        user_id,
        &format!("{host} agent"),
        KeyScope::Ingest,
        Some(host),
    )
}

/// A read-only personal key.
pub fn read_key(h: &ServerHandle, user_id: i64) -> String {
    key(h, user_id, "reader", KeyScope::Read, None)
}

pub fn anomaly(host: &str, user: &str, id: &str, level: Level) -> Anomaly {
    let score = match level {
        Level::Low => 10,
        Level::Medium => 30,
        Level::High => 60,
        Level::Critical => 90,
    };
    Anomaly {
        id: id.into(),
        host: host.into(),
        time_ns: sentinel::store::now_ns(),
        principal: Principal {
            uid: 1000,
            user: Some(user.into()),
            session: Some(3),
        },
        chain: vec![
            ChainLink {
                pid: 1,
                exe: "/usr/lib/systemd/systemd".into(),
                argv: vec![],
                uid: 0,
            },
            ChainLink {
                pid: 4242,
                exe: "/tmp/x".into(),
                argv: vec!["/tmp/x".into(), "--evil".into()],
                uid: 1000,
            },
        ],
        score,
        level,
        factors: vec![Factor {
            detection: "exec_from_tmp".into(),
            reason: format!("{user} ran a program from /tmp"),
            weight: score,
            evidence: vec!["ev-1".into()],
        }],
        evidence: vec![Evidence {
            id: "ev-1".into(),
            time_ns: sentinel::store::now_ns(),
            summary: "exec /tmp/x".into(),
            detail: serde_json::json!({ "exe": "/tmp/x" }),
        }],
        fingerprint: "fp".into(),
        explanation: None,
    }
}

pub const LOAD_HOST: &str = "load-host";

pub struct LoadReport {
    pub batches: usize,
    pub accepted: usize,
    pub stored: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Posts `batches` batches of `per_batch` anomalies with `concurrency` parallel clients and
/// reports acceptance, how many anomalies the store holds afterwards and latency quantiles.
/// Every batch writes host `load-host`, so `key` is an ingest key bound to it.
pub async fn ingest_load(
    h: &ServerHandle,
    key: &str,
    batches: usize,
    per_batch: usize,
    concurrency: usize,
) -> LoadReport {
    let client = reqwest::Client::new();
    let url = format!("{}/api/ingest", h.url());
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::new();
    for b in 0..batches {
        let (client, url, key, sem) = (client.clone(), url.clone(), key.to_string(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.unwrap();
            let anomalies: Vec<Anomaly> = (0..per_batch)
                .map(|i| {
                    anomaly(
                        LOAD_HOST,
                        "loaduser",
                        &format!("load-{b}-{i}"),
                        Level::Medium,
                    )
                })
                .collect();
            let body =
                serde_json::json!({ "batch_id": format!("load-{b}"), "anomalies": anomalies });
            let t = Instant::now();
            let ok = client
                .post(&url)
                .bearer_auth(&key)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            (ok, t.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    let mut lat = Vec::new();
    let mut accepted = 0;
    for t in tasks {
        let (ok, ms) = t.await.unwrap();
        accepted += usize::from(ok);
        lat.push(ms);
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let stored = h.store().count_anomalies().unwrap_or(0) as usize;
    LoadReport {
        batches,
        accepted,
        stored,
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        max_ms: q(1.0),
    }
}

/// Fetches the login form: (pre-login cookie, its token).
pub async fn prelogin(c: &reqwest::Client, base: &str) -> (String, String) {
    let r = c.get(format!("{base}/login")).send().await.unwrap();
    let set = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    let token = cookie.split_once('=').unwrap().1.to_string();
    (cookie, token)
}

/// Signs in through the login form (pre-login cookie and token included).
pub async fn login(c: &reqwest::Client, base: &str, user: &str, pw: &str) -> reqwest::Response {
    login_from(c, base, user, pw, None).await
}

/// Signs in with an `X-Forwarded-For` header (for servers with `trust_proxy`).
pub async fn login_from(
    c: &reqwest::Client,
    base: &str,
    user: &str,
    pw: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let (cookie, token) = prelogin(c, base).await;
    let mut rb = c.post(format!("{base}/login")).header(COOKIE, cookie);
    if let Some(ip) = forwarded_for {
        rb = rb.header("x-forwarded-for", ip);
    }
    rb.form(&[
        ("csrf", token.as_str()),
        ("username", user),
        ("password", pw),
    ])
    .send()
    .await
    .unwrap()
}
