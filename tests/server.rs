//! End-to-end tests of the dashboard server over real HTTP: the route x role matrix (every
//! route, every role, anonymous, forged cookies, API keys, missing CSRF), escaping of hostile
//! agent data, the login flow (lockout, TOTP once per code, recovery codes), ingest
//! idempotency, the push client across a server outage and restart, and an ingest load run.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION};
use sentinel::detect::model::Level;
use sentinel::feed::push::{IngestBatch, PushConfig, Pusher};
use sentinel::server::access::Access;
use sentinel::server::auth;
use sentinel::server::routes::specs;
use sentinel::server::store::Role;
use sentinel_e2e::dash;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Anonymous,
    ForgedSession,
    ForgedFlaskStyle,
    Session(Role),
    Key(Role),
}

/// The policy, written independently of the route table so that a wrong entry there fails.
fn policy(method: &reqwest::Method, path: &str) -> Access {
    const PUBLIC: &[&str] = &[
        "/login",
        "/static/app.css",
        "/static/app.js",
        "/healthz",
        "/api/openapi.json",
    ];
    if PUBLIC.contains(&path) {
        Access::Public
    } else if path == "/login/totp" {
        Access::MfaPending
    } else if path == "/api/ingest" {
        Access::Ingest
    } else if path.starts_with("/admin/")
        || ["/api/users", "/api/audit", "/api/admin/sessions"].contains(&path)
    {
        Access::Role(Role::Admin)
    } else if path.ends_with("/ack") {
        assert_eq!(method, reqwest::Method::POST);
        Access::Role(Role::Operator)
    } else {
        Access::Role(Role::Viewer)
    }
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "999999")
        .replace("{name}", "no-such-host")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_enforces_its_role_for_every_identity() {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let ids: Vec<(Role, i64)> = Role::ALL
        .iter()
        .map(|r| {
            (
                *r,
                dash::add_user(&h, &format!("u-{r}"), *r, "password-123456"),
            )
        })
        .collect();
    let keys: Vec<(Role, String)> = ids
        .iter()
        .map(|(r, id)| (*r, dash::api_key(&h, *id, "k")))
        .collect();
    let c = client();
    let base = h.url();
    let mut checked = 0;
    for spec in specs() {
        assert_eq!(
            spec.access,
            policy(&spec.method, spec.path),
            "{} {} in the route table",
            spec.method,
            spec.path
        );
        let path = concrete(spec.path);
        let api = path.starts_with("/api/");
        let safe = spec.method == reqwest::Method::GET;
        let whos = [
            Who::Anonymous,
            Who::ForgedSession,
            Who::ForgedFlaskStyle,
            Who::Session(Role::Viewer),
            Who::Session(Role::Operator),
            Who::Session(Role::Admin),
            Who::Key(Role::Viewer),
            Who::Key(Role::Operator),
            Who::Key(Role::Admin),
        ];
        for who in whos {
            for with_csrf in [true, false] {
                if safe && !with_csrf {
                    continue;
                }
                let mut rb = c.request(spec.method.clone(), format!("{base}{path}"));
                let mut csrf = String::new();
                match who {
                    Who::Anonymous => {}
                    Who::ForgedSession => rb = rb.header(COOKIE, format!("sentinel_session={}", auth::new_token().unwrap())),
                    Who::ForgedFlaskStyle => rb = rb.header(COOKIE, "session=eyJhdXRoZW50aWNhdGVkIjp0cnVlLCJyb2xlIjoiYWRtaW4ifQ; authenticated=true; role=admin"),
                    Who::Session(r) => {
                        // A fresh session per request: some routes (logout, revoke) end it.
                        let id = ids.iter().find(|(x, _)| *x == r).unwrap().1;
                        let (cookie, token) = dash::session(&h, id);
                        rb = rb.header(COOKIE, cookie);
                        csrf = token;
                    }
                    Who::Key(r) => rb = rb.bearer_auth(&keys.iter().find(|(x, _)| *x == r).unwrap().1),
                }
                if !safe {
                    if spec.access == Access::Ingest {
                        rb = rb.header(CONTENT_TYPE, "application/json").body("{}");
                    } else if api {
                        if with_csrf && !csrf.is_empty() {
                            rb = rb.header("x-csrf-token", &csrf);
                        }
                    } else {
                        let body = if with_csrf && !csrf.is_empty() {
                            format!("csrf={csrf}")
                        } else {
                            String::new()
                        };
                        rb = rb
                            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                            .body(body);
                    }
                }
                let resp = rb.send().await.unwrap();
                let status = resp.status();
                let location = resp
                    .headers()
                    .get(LOCATION)
                    .map(|v| v.to_str().unwrap().to_string());
                drop(resp);
                let ctx = format!(
                    "{} {} as {who:?} csrf={with_csrf}: {status} {location:?}",
                    spec.method, path
                );
                assert!(status.as_u16() < 500, "{ctx}");
                // The role an identity acts with on this route, if any.
                let acting: Option<Role> = match who {
                    Who::Session(r) => Some(r),
                    Who::Key(r) if api => Some(r),
                    _ => None,
                };
                let denied_anon = |status: StatusCode, location: &Option<String>| {
                    if api {
                        status == StatusCode::UNAUTHORIZED
                    } else {
                        status == StatusCode::SEE_OTHER && location.as_deref() == Some("/login")
                    }
                };
                match spec.access {
                    Access::Public => {}
                    Access::MfaPending => {
                        assert!(
                            status == StatusCode::SEE_OTHER
                                && location.as_deref() == Some("/login"),
                            "{ctx}"
                        );
                    }
                    Access::Ingest => match who {
                        Who::Key(Role::Viewer) => {
                            assert_eq!(status, StatusCode::FORBIDDEN, "{ctx}")
                        }
                        Who::Key(_) => assert!(
                            status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                            "{ctx}"
                        ),
                        _ => assert_eq!(status, StatusCode::UNAUTHORIZED, "{ctx}"),
                    },
                    Access::Role(need) => match acting {
                        None => assert!(denied_anon(status, &location), "{ctx}"),
                        Some(r) if r < need => assert_eq!(status, StatusCode::FORBIDDEN, "{ctx}"),
                        Some(_) => {
                            let cookie_write = !safe && matches!(who, Who::Session(_));
                            if cookie_write && !with_csrf {
                                assert_eq!(
                                    status,
                                    StatusCode::FORBIDDEN,
                                    "missing CSRF must be refused: {ctx}"
                                );
                            } else {
                                assert!(
                                    status != StatusCode::UNAUTHORIZED
                                        && status != StatusCode::FORBIDDEN,
                                    "{ctx}"
                                );
                                if !api && safe {
                                    // Pages that exist render; the placeholders 404.
                                    assert!(
                                        status == StatusCode::OK
                                            || status == StatusCode::NOT_FOUND
                                            || status == StatusCode::SEE_OTHER,
                                        "{ctx}"
                                    );
                                }
                            }
                        }
                    },
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 400, "{checked}");
    // A wrong CSRF token is as bad as none.
    let (cookie, _) = dash::session(&h, ids[2].1);
    let r = c
        .post(format!("{base}/sessions/revoke-others"))
        .header(COOKIE, cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("csrf=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_host_and_user_names_are_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let viewer = dash::add_user(&h, "vera", Role::Viewer, "password-123456");
    let host = "<script>alert('host')</script>";
    let user = "<img src=x onerror=alert(1)>";
    let mut a = dash::anomaly(host, user, "xss-1", Level::High);
    a.chain[1].argv.push("\"><svg onload=alert(2)>".into());
    let snap = serde_json::json!({
        "system": { "hostname": host },
        "network": { "listeners": [ { "protocol": "tcp", "address": "0.0.0.0", "port": 22, "process": "<b>sshd</b>" } ] },
    });
    h.ingest(&IngestBatch {
        batch_id: "b1".into(),
        anomalies: vec![a],
        snapshots: vec![snap],
        ..Default::default()
    })
    .unwrap();
    let (cookie, _) = dash::session(&h, viewer);
    let c = client();
    let pages = [
        "/".to_string(),
        "/hosts".into(),
        format!("/hosts/{}", sentinel::server::web::seg(host)),
        "/anomalies/xss-1".into(),
    ];
    for p in pages {
        let r = c
            .get(format!("{}{p}", h.url()))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{p}");
        let csp = r
            .headers()
            .get("content-security-policy")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        let body = r.text().await.unwrap();
        for raw in ["<script>alert", "<img src=x", "<svg onload", "<b>sshd"] {
            assert!(!body.contains(raw), "{p} contains raw {raw}");
        }
        assert!(
            body.contains("&lt;script&gt;alert(") || body.contains("&lt;img src=x"),
            "{p} shows the escaped names"
        );
    }
    h.shutdown().await;
}

async fn prelogin(c: &reqwest::Client, base: &str) -> (String, String) {
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

async fn login(c: &reqwest::Client, base: &str, user: &str, pw: &str) -> reqwest::Response {
    let (cookie, token) = prelogin(c, base).await;
    c.post(format!("{base}/login"))
        .header(COOKIE, cookie)
        .form(&[
            ("csrf", token.as_str()),
            ("username", user),
            ("password", pw),
        ])
        .send()
        .await
        .unwrap()
}

fn session_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("sentinel_session=") && !v.starts_with("sentinel_session=;"))
        .map(|v| v.split(';').next().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_lockout_totp_once_and_recovery_codes() {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let base = h.url();
    let id = dash::add_user(&h, "alice", Role::Admin, "password-123456");
    let c = client();
    // Without the pre-login cookie the form is refused (login CSRF).
    let r = c
        .post(format!("{base}/login"))
        .form(&[("username", "alice"), ("password", "password-123456")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Good password: a session with the expected cookie flags.
    let r = login(&c, &base, "alice", "password-123456").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(session_cookie(&r).is_some());
    // Five wrong passwords lock the account, even against the right one.
    for _ in 0..5 {
        assert_eq!(
            login(&c, &base, "alice", "wrong-password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login(&c, &base, "alice", "password-123456").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let failed = h
        .store()
        .list_audit(&sentinel::server::store::AuditFilter {
            action: Some("login_failed".into()),
            ..Default::default()
        })
        .unwrap();
    assert!(
        failed.iter().any(|e| e.detail == "locked"),
        "lockout is audited"
    );
    h.store().set_active(id, true).unwrap(); // admin unlock
    // TOTP: the password alone only reaches the second step.
    let secret = auth::new_totp_secret().unwrap();
    h.store().set_totp(id, Some(&secret)).unwrap();
    let (_, hashes) = auth::new_recovery_codes().unwrap();
    let code_plain = "abcde-fghij";
    let mut hashes = hashes;
    hashes.push(auth::recovery_hash(code_plain));
    h.store().set_recovery_codes(id, &hashes).unwrap();
    let r = login(&c, &base, "alice", "password-123456").await;
    assert_eq!(r.headers().get(LOCATION).unwrap(), "/login/totp");
    let pending = session_cookie(&r).unwrap();
    let page = c
        .get(format!("{base}/"))
        .header(COOKIE, &pending)
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.headers().get(LOCATION).unwrap(),
        "/login",
        "pending session grants nothing"
    );
    let totp_page = c
        .get(format!("{base}/login/totp"))
        .header(COOKIE, &pending)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = totp_page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let key = auth::decode_secret(&secret).unwrap();
    let code = format!("{:06}", auth::totp_at(auth::TotpAlg::Sha1, &key, now, 6));
    let r = c
        .post(format!("{base}/login/totp"))
        .header(COOKIE, &pending)
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers().get(LOCATION).unwrap(),
        "/",
        "valid code signs in"
    );
    let full = session_cookie(&r).unwrap();
    assert_ne!(full, pending, "a new token after the second factor");
    assert_eq!(
        c.get(format!("{base}/"))
            .header(COOKIE, &full)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // The same code a second time fails (one use per code).
    let r = login(&c, &base, "alice", "password-123456").await;
    let pending = session_cookie(&r).unwrap();
    let page = c
        .get(format!("{base}/login/totp"))
        .header(COOKIE, &pending)
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
    let r = c
        .post(format!("{base}/login/totp"))
        .header(COOKIE, &pending)
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "replayed code refused"
    );
    // A recovery code works once.
    for expect_ok in [true, false] {
        let r = login(&c, &base, "alice", "password-123456").await;
        let pending = session_cookie(&r).unwrap();
        let page = c
            .get(format!("{base}/login/totp"))
            .header(COOKIE, &pending)
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
        let r = c
            .post(format!("{base}/login/totp"))
            .header(COOKIE, &pending)
            .form(&[("csrf", csrf.as_str()), ("code", "ABCDE-FGHIJ")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status() == StatusCode::SEE_OTHER, expect_ok);
    }
    // Logout ends the session server-side.
    let (cookie, token) = dash::session(&h, id);
    let r = c
        .post(format!("{base}/logout"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = c
        .get(format!("{base}/"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers().get(LOCATION).unwrap(), "/login");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_is_idempotent_and_keys_can_be_disabled_or_expire() {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let op = dash::add_user(&h, "agent", Role::Operator, "password-123456");
    let key = dash::api_key(&h, op, "agent");
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
    assert_eq!(h.store().count_anomalies().unwrap(), 1);
    // The key records its last use; a query-string key is never accepted.
    assert!(
        h.store().list_api_keys(op).unwrap()[0]
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
    // Oversized bodies are refused before parsing.
    let big =
        serde_json::json!({ "batch_id": "big", "snapshots": [ { "pad": "x".repeat(5 << 20) } ] });
    let r = c
        .post(&url)
        .bearer_auth(&key)
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Disabled key, then disabled owner: refused.
    let kid = h.store().list_api_keys(op).unwrap()[0].id;
    h.store().set_api_key_enabled(op, kid, false).unwrap();
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
    h.store().set_api_key_enabled(op, kid, true).unwrap();
    h.store().set_active(op, false).unwrap();
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
    h.store().set_active(op, true).unwrap();
    // An expired key is refused.
    let (k2, prefix, hash) = auth::new_api_key().unwrap();
    h.store()
        .create_api_key(op, "old", &prefix, &hash, 0, Some(1))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_client_survives_server_outage_and_agent_restart_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    // Reserve a port, then free it: the server is "down" there until we start it.
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
    let mut cfg = dash::config(dir.path());
    cfg.listen = addr.to_string();
    let key = {
        let store = sentinel::server::sqlite::SqliteStore::open(&cfg.db).unwrap();
        use sentinel::server::store::ServerStore;
        let id = store
            .create_user(
                "agent",
                &auth::hash_password("password-123456").unwrap(),
                Role::Operator,
                0,
            )
            .unwrap();
        let (key, prefix, hash) = auth::new_api_key().unwrap();
        store
            .create_api_key(id, "agent", &prefix, &hash, 0, None)
            .unwrap();
        key
    };
    pc.api_key = key;
    // Agent 1 sends 40 anomalies while the server is down, then stops.
    let p1 = Pusher::start(pc.clone()).unwrap();
    for i in 0..40 {
        p1.send_anomaly(dash::anomaly(
            "web-1",
            "bob",
            &format!("p-{i}"),
            Level::Medium,
        ))
        .await
        .unwrap();
    }
    p1.flush().await.unwrap();
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
    for i in 40..80 {
        p2.send_anomaly(dash::anomaly(
            "web-1",
            "bob",
            &format!("p-{i}"),
            Level::Medium,
        ))
        .await
        .unwrap();
    }
    p2.flush().await.unwrap();
    // Server comes up: everything arrives exactly once.
    let h = sentinel::server::Server::start(cfg).await.unwrap();
    wait_until("the spool to drain", || p2.pending() == 0).await;
    assert_eq!(h.store().count_anomalies().unwrap(), 80);
    for i in 0..80 {
        assert!(
            h.store().get_anomaly(&format!("p-{i}")).unwrap().is_some(),
            "p-{i} delivered"
        );
    }
    p2.shutdown(Duration::from_secs(1)).await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_load_accepts_every_batch_and_reports_latency() {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let op = dash::add_user(&h, "agent", Role::Operator, "password-123456");
    let key = dash::api_key(&h, op, "load");
    let r = dash::ingest_load(&h, &key, 200, 10, 16).await;
    println!(
        "ingest load: {} batches x 10, accepted {}, stored {}, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        r.batches, r.accepted, r.stored, r.p50_ms, r.p99_ms, r.max_ms
    );
    assert_eq!(r.accepted, 200);
    assert_eq!(r.stored, 2000);
    h.shutdown().await;
}
