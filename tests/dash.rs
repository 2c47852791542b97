//! Dashboard test helpers: start a server on a free localhost port with a scratch database,
//! create users, sessions and API keys directly in its store, build anomalies, and an ingest
//! load generator for the benchmark.

use std::path::Path;
use std::time::Instant;

use reqwest::header::COOKIE;
use sentinel::model::{Anomaly, ChainLink, Evidence, Factor, Level, Principal};
use sentinel::server::store::{KeyScope, NewApiKey, NewSession, Role};
use sentinel::server::{Server, ServerConfig, ServerHandle, auth};

/// The store a test server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    /// The SQLite file in the test's directory.
    Sqlite,
    /// A database of its own in the test process's throw-away PostgreSQL cluster.
    Postgres,
}

impl Db {
    /// `SENTINEL_TEST_DB=postgres` runs every server suite on PostgreSQL; SQLite otherwise.
    pub fn from_env() -> Db {
        match std::env::var("SENTINEL_TEST_DB").as_deref() {
            Ok("postgres") => Db::Postgres,
            Ok("sqlite") | Err(_) => Db::Sqlite,
            Ok(other) => panic!("SENTINEL_TEST_DB={other:?}: expected sqlite or postgres"),
        }
    }
}

pub fn config(dir: &Path) -> ServerConfig {
    config_on(dir, Db::from_env())
}

pub fn config_on(dir: &Path, db: Db) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".into(),
        db: dir.join("server.db"),
        database: (db == Db::Postgres).then(sentinel::server::postgres::testing::database_blocking),
        ..ServerConfig::default()
    }
}

pub async fn start(dir: &Path) -> ServerHandle {
    Server::start(config(dir)).await.expect("server starts")
}

pub async fn start_on(dir: &Path, db: Db) -> ServerHandle {
    Server::start(config_on(dir, db))
        .await
        .expect("server starts")
}

pub async fn add_user(h: &ServerHandle, name: &str, role: Role, password: &str) -> i64 {
    let hash = auth::hash_password(password).unwrap();
    h.store()
        .create_user(name, &hash, role, sentinel::store::now_ns())
        .await
        .unwrap()
}

/// A signed-in session made directly in the store: (cookie header value, CSRF token).
pub async fn session(h: &ServerHandle, user_id: i64) -> (String, String) {
    let (cookie, csrf, _) = session_started_at(h, user_id, sentinel::store::now_ns()).await;
    (cookie, csrf)
}

/// A session as if signed in at `at_ns`: (cookie header value, CSRF token, session id).
pub async fn session_started_at(
    h: &ServerHandle,
    user_id: i64,
    at_ns: i64,
) -> (String, String, i64) {
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
        .await
        .unwrap();
    (format!("sentinel_session={token}"), csrf, id)
}

/// A key of `scope` (bound to `host` for ingest keys) made directly in the store.
pub async fn key(
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
        .await
        .unwrap();
    key
}

/// An agent's key: push only, for `host`.
pub async fn ingest_key(h: &ServerHandle, user_id: i64, host: &str) -> String {
    key(
        h,
        user_id,
        &format!("{host} agent"),
        KeyScope::Ingest,
        Some(host),
    )
    .await
}

/// A read-only personal key.
pub async fn read_key(h: &ServerHandle, user_id: i64) -> String {
    key(h, user_id, "reader", KeyScope::Read, None).await
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
    let stored = h.store().count_anomalies().await.unwrap_or(0) as usize;
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

/// Submits a TOTP or recovery code with the pending session's CSRF token.
pub async fn second_factor(
    c: &reqwest::Client,
    base: &str,
    pending: &str,
    code: &str,
) -> reqwest::Response {
    let page = c
        .get(format!("{base}/login/totp"))
        .header(COOKIE, pending)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    c.post(format!("{base}/login/totp"))
        .header(COOKIE, pending)
        .form(&[("csrf", csrf.as_str()), ("code", code)])
        .send()
        .await
        .unwrap()
}

pub fn session_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("sentinel_session=") && !v.starts_with("sentinel_session=;"))
        .map(|v| v.split(';').next().unwrap().to_string())
}

/// The session's CSRF token, as `/api/me` tells a session caller.
pub async fn csrf(c: &reqwest::Client, base: &str, cookie: &str) -> String {
    let me: serde_json::Value = c
        .get(format!("{base}/api/me"))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    me["csrf_token"]
        .as_str()
        .expect("a session's CSRF token")
        .to_string()
}

/// A TOTP code the server accepts after `last` (the time step it consumed last): for the
/// current step, or the next unused one within the server's one-step drift window, waiting
/// (bounded) for the clock when that window is used up. Returns (code, its step).
pub async fn fresh_code(secret: &str, last: i64) -> (String, i64) {
    let deadline = Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let cur = (now / auth::TOTP_STEP) as i64;
        let step = (last + 1).max(cur);
        if step <= cur + 1 {
            let code = auth::totp_code(secret, step as u64 * auth::TOTP_STEP).unwrap();
            return (code, step);
        }
        assert!(Instant::now() < deadline, "the clock does not advance");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Enrols two-factor through the profile pages (password, then a code from the shown
/// secret): returns the secret and the step its code used.
pub async fn enrol_totp(
    c: &reqwest::Client,
    base: &str,
    cookie: &str,
    password: &str,
) -> (String, i64) {
    let csrf = csrf(c, base, cookie).await;
    let page = c
        .post(format!("{base}/profile/totp/setup"))
        .header(COOKIE, cookie)
        .form(&[("csrf", csrf.as_str()), ("password", password)])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let secret = page
        .split("id=\"totp-secret\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap_or_else(|| panic!("no secret shown: {page}"))
        .to_string();
    let (code, step) = fresh_code(&secret, 0).await;
    let r = c
        .post(format!("{base}/profile/totp/enable"))
        .header(COOKIE, cookie)
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let body = r.text().await.unwrap();
    assert!(body.contains("Two-factor authentication is on"), "{body}");
    (secret, step)
}

/// Signs in with the password and a fresh code after step `last`; returns the session
/// cookie and the step used.
pub async fn login_with_totp(
    c: &reqwest::Client,
    base: &str,
    user: &str,
    pw: &str,
    secret: &str,
    last: i64,
) -> (String, i64) {
    let r = login(c, base, user, pw).await;
    assert_eq!(
        r.headers().get("location").and_then(|v| v.to_str().ok()),
        Some("/login/totp"),
        "the password leads to the second step"
    );
    let pending = session_cookie(&r).expect("a pending session");
    let (code, step) = fresh_code(secret, last).await;
    let r = second_factor(c, base, &pending, &code).await;
    assert_eq!(
        r.headers().get("location").and_then(|v| v.to_str().ok()),
        Some("/"),
        "the code completes the sign-in"
    );
    (session_cookie(&r).expect("a full session"), step)
}

/// A `sentinel serve` process (the real binary), stopped when dropped.
pub struct Served {
    child: std::process::Child,
    pub url: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Served {
    /// Everything the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, then waits; returns the exit code.
    pub fn stop(mut self) -> i32 {
        crate::stop_sentinel(&mut self.child)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `sentinel serve ARGS` and waits (bounded) until it says where it listens. A server
/// that exits instead returns its exit code and stderr.
pub fn serve(args: &[&str]) -> Result<Served, (i32, String)> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(crate::sentinel_bin())
        .arg("serve")
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawning sentinel serve");
    let err = child.stderr.take().expect("piped stderr");
    let text: std::sync::Arc<std::sync::Mutex<String>> = Default::default();
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = text.clone();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&format!("{l}\n"));
            let _ = tx.send(l);
        }
    });
    loop {
        match rx.recv_timeout(std::time::Duration::from_secs(120)) {
            Ok(l) => {
                if let Some(url) = l.split("dashboard on ").nth(1) {
                    return Ok(Served {
                        child,
                        url: url.trim().to_string(),
                        stderr: text,
                    });
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let code = child.wait().map(|s| s.code().unwrap_or(-1)).unwrap_or(-1);
                let out = text.lock().unwrap().clone();
                return Err((code, out));
            }
            Err(e) => panic!("sentinel serve neither listened nor exited: {e}"),
        }
    }
}
