//! End-to-end tests of dashboard features around the core: session expiry (idle, absolute)
//! and revocation ending the live stream, API keys made and switched off from the profile,
//! HTTPS with Secure cookies, the read-only demo mode, and alert delivery with cooldown.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION};
use sentinel::feed::push::IngestBatch;
use sentinel::model::Level;
use sentinel::server::store::Role;
use sentinel::server::{Server, ServerConfig};
use sentinel_e2e::dash;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

const MIN: i64 = 60_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_when_idle_or_too_old_and_revocation_ends_the_live_stream() {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let id = dash::add_user(&h, "vera", Role::Viewer, "password-123456").await;
    let c = client();
    let now = sentinel::store::now_ns();
    // Unused for 31 minutes (idle limit 30).
    let (idle, _, _) = dash::session_started_at(&h, id, now - 31 * MIN).await;
    let r = c
        .get(format!("{}/", h.url()))
        .header(COOKIE, &idle)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers().get(LOCATION).unwrap(), "/login");
    // Active a second ago but signed in 13 hours ago (absolute limit 12 h).
    let (old, _, sid) = dash::session_started_at(&h, id, now - 13 * 60 * MIN).await;
    h.store().touch_session(sid, now).await.unwrap();
    let r = c
        .get(format!("{}/", h.url()))
        .header(COOKIE, &old)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers().get(LOCATION).unwrap(), "/login");
    assert!(
        h.store().session_by_id(sid).await.unwrap().is_none(),
        "expired sessions are deleted"
    );
    // A live stream delivers, then stops once its session is revoked.
    let (cookie, _, sid) = dash::session_started_at(&h, id, now).await;
    let mut stream = c
        .get(format!("{}/api/live", h.url()))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let mut seen = String::new();
    while !seen.contains("event: hello") {
        seen.push_str(&String::from_utf8_lossy(
            &stream.chunk().await.unwrap().unwrap(),
        ));
    }
    h.ingest_anomaly(&dash::anomaly("web-1", "bob", "live-1", Level::High))
        .await
        .unwrap();
    while !seen.contains("live-1") {
        seen.push_str(&String::from_utf8_lossy(
            &stream.chunk().await.unwrap().unwrap(),
        ));
    }
    h.store().delete_session(sid).await.unwrap();
    h.ingest_anomaly(&dash::anomaly("web-1", "bob", "live-2", Level::High))
        .await
        .unwrap();
    let rest = tokio::time::timeout(Duration::from_secs(60), async {
        let mut rest = String::new();
        while let Ok(Some(chunk)) = stream.chunk().await {
            rest.push_str(&String::from_utf8_lossy(&chunk));
        }
        rest
    })
    .await
    .expect("the stream ends after revocation");
    assert!(
        !rest.contains("live-2"),
        "a revoked session receives nothing more"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_from_the_profile_is_shown_once_and_can_be_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let id = dash::add_user(&h, "olga", Role::Operator, "password-123456").await;
    let (cookie, csrf) = dash::session(&h, id).await;
    let c = client();
    let page = c
        .post(format!("{}/profile/keys", h.url()))
        .header(COOKIE, &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("name", "<i>ci</i>"),
            ("scope", "ack"),
            ("expires_days", "30"),
            ("password", "password-123456"),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let key = page
        .split("id=\"api-key\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    assert!(key.starts_with("snt_"), "{key}");
    assert!(
        page.contains("&lt;i&gt;ci&lt;/i&gt;"),
        "key names are escaped"
    );
    let k = &h.store().list_api_keys(id).await.unwrap()[0];
    assert!(k.expires_ns.is_some() && k.enabled);
    // It acts with its scope (ack: operator, the owner's role) on the API.
    let me: serde_json::Value = c
        .get(format!("{}/api/me", h.url()))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["username"], "olga");
    assert_eq!(me["user"]["role"], "operator");
    // The profile never shows it again.
    let again = c
        .get(format!("{}/profile", h.url()))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!again.contains(&key));
    // Disabled from the profile, it stops working; the change is audited.
    let r = c
        .post(format!("{}/profile/keys/{}/toggle", h.url(), k.id))
        .header(COOKIE, &cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = c
        .get(format!("{}/api/me", h.url()))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let audit = h.store().list_audit(&Default::default()).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "api_key_created"));
    assert!(audit.iter().any(|e| e.action == "api_key_disabled"));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_given_certificate_sets_secure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs (tests/setup/server.sh installs it)");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let cfg = ServerConfig {
        tls_cert: Some(cert),
        tls_key: Some(key),
        ..dash::config(dir.path())
    };
    let h = Server::start(cfg).await.unwrap();
    assert!(h.url().starts_with("https://"));
    let c = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let r = c.get(format!("{}/login", h.url())).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let set = r.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(
        set.contains("; Secure") && set.contains("HttpOnly"),
        "{set}"
    );
    assert!(r.headers().contains_key("strict-transport-security"));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_mode_is_off_by_default_and_read_only_when_on() {
    assert!(!ServerConfig::default().demo);
    let dir = tempfile::tempdir().unwrap();
    let cfg = ServerConfig {
        demo: true,
        ..dash::config(dir.path())
    };
    let h = Server::start(cfg).await.unwrap();
    h.ingest_anomaly(&dash::anomaly("web-1", "bob", "d-1", Level::High))
        .await
        .unwrap();
    let c = client();
    for p in ["/", "/hosts", "/anomalies/d-1", "/api/anomalies"] {
        let r = c.get(format!("{}{p}", h.url())).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{p}");
    }
    let page = c
        .get(format!("{}/", h.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Read-only demo"));
    for (p, want) in [
        ("/anomalies/d-1/ack", StatusCode::SEE_OTHER),
        ("/api/anomalies/d-1/ack", StatusCode::UNAUTHORIZED),
        ("/logout", StatusCode::SEE_OTHER),
    ] {
        let r = c
            .post(format!("{}{p}", h.url()))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "{p}");
    }
    for p in ["/admin/users", "/profile"] {
        let r = c.get(format!("{}{p}", h.url())).send().await.unwrap();
        assert!(
            r.status() == StatusCode::SEE_OTHER || r.status() == StatusCode::FORBIDDEN,
            "{p}: {}",
            r.status()
        );
    }
    assert!(
        h.store()
            .get_anomaly("d-1")
            .await
            .unwrap()
            .unwrap()
            .acked_by
            .is_none()
    );
    h.shutdown().await;
}

type Received = Arc<Mutex<Vec<serde_json::Value>>>;

/// A local webhook receiver: (its URL, what it received).
async fn webhook() -> (String, Received) {
    let got: Received = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<serde_json::Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (hook, got)
}

/// Every alert the server sent before this call: a marker anomaly (high, on a host of its
/// own) is ingested and, alerts being delivered one at a time in order, the alerts before the
/// marker's first are all there once it arrives. Nothing is left to a grace period.
async fn alerts_so_far(
    h: &sentinel::server::ServerHandle,
    got: &Received,
) -> Vec<serde_json::Value> {
    const MARKER: &str = "sentinel-alert-marker";
    let marker = IngestBatch {
        batch_id: format!("marker-{}", sentinel::store::now_ns()),
        anomalies: vec![dash::anomaly(
            MARKER,
            "bob",
            &format!("marker-{}", sentinel::store::now_ns()),
            Level::Critical,
        )],
        ..Default::default()
    };
    h.ingest(&marker).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        {
            let got = got.lock().unwrap();
            if let Some(i) = got.iter().position(|v| v["host"] == MARKER) {
                return got[..i].to_vec();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the marker alert never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_a_webhook_once_per_cooldown() {
    let (hook, got) = webhook().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = dash::config(dir.path());
    cfg.alerts.webhook = Some(hook);
    cfg.public_url = Some("https://sentinel.example.org".into());
    let h = Server::start(cfg).await.unwrap();
    let a = |id: &str, level| dash::anomaly("web-1", "bob", id, level);
    // The first high anomaly (an exec from /tmp) trips two rules, level and exec_from_tmp;
    // the second, on the same host inside the cooldown, trips nothing new.
    let batch = IngestBatch {
        batch_id: "a".into(),
        anomalies: vec![a("a-1", Level::High), a("a-2", Level::High)],
        ..Default::default()
    };
    h.ingest(&batch).await.unwrap();
    let got = alerts_so_far(&h, &got).await;
    let rules: Vec<&str> = got.iter().map(|v| v["rule"].as_str().unwrap()).collect();
    assert_eq!(rules.len(), 2, "{got:?}");
    assert!(
        rules.contains(&"level") && rules.contains(&"exec_from_tmp"),
        "{rules:?}"
    );
    assert_eq!(got[0]["host"], "web-1");
    assert!(
        got[0]["url"]
            .as_str()
            .unwrap()
            .starts_with("https://sentinel.example.org/anomalies/a-1")
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_manage_users_but_never_remove_the_last_admin() {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let admin = dash::add_user(&h, "alice", Role::Admin, "password-123456").await;
    let (cookie, csrf) = dash::session(&h, admin).await;
    let c = client();
    let post = |path: String, form: Vec<(&'static str, String)>| {
        let mut body = vec![("csrf", csrf.clone())];
        body.extend(form);
        c.post(format!("{}{path}", h.url()))
            .header(COOKIE, &cookie)
            .form(&body)
            .send()
    };
    let r = post(
        "/admin/users".into(),
        vec![
            ("username", "bob".into()),
            ("password", "bob-password-1".into()),
            ("role", "viewer".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = post(
        "/admin/users".into(),
        vec![
            ("username", "<x>".into()),
            ("password", "bob-password-1".into()),
            ("role", "viewer".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "bad user names are refused"
    );
    let bob = h.store().user_by_name("bob").await.unwrap().unwrap();
    let (bob_cookie, _) = dash::session(&h, bob.id).await;
    post(
        format!("/admin/users/{}/role", bob.id),
        vec![("role", "operator".into())],
    )
    .await
    .unwrap();
    assert_eq!(
        h.store().user_by_id(bob.id).await.unwrap().unwrap().role,
        Role::Operator
    );
    // Disabling ends bob's sessions at once.
    post(
        format!("/admin/users/{}/active", bob.id),
        vec![("active", "0".into())],
    )
    .await
    .unwrap();
    assert!(!h.store().user_by_id(bob.id).await.unwrap().unwrap().active);
    let r = c
        .get(format!("{}/", h.url()))
        .header(COOKIE, &bob_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers().get(LOCATION).unwrap(), "/login");
    post(
        format!("/admin/users/{}/active", bob.id),
        vec![("active", "1".into())],
    )
    .await
    .unwrap();
    let r = post(
        format!("/admin/users/{}/password", bob.id),
        vec![("password", "new-bob-password".into())],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let hash = h
        .store()
        .user_by_id(bob.id)
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    assert!(sentinel::server::auth::verify_password(
        "new-bob-password",
        &hash
    ));
    // The last admin cannot be demoted, disabled or deleted.
    for (path, form) in [
        (
            format!("/admin/users/{admin}/role"),
            vec![("role", "viewer".to_string())],
        ),
        (
            format!("/admin/users/{admin}/active"),
            vec![("active", "0".to_string())],
        ),
        (format!("/admin/users/{admin}/delete"), vec![]),
    ] {
        let r = post(path.clone(), form).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
    }
    assert_eq!(h.store().count_admins().await.unwrap(), 1);
    let r = post(format!("/admin/users/{}/delete", bob.id), vec![])
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(h.store().user_by_name("bob").await.unwrap().is_none());
    let actions: Vec<String> = h
        .store()
        .list_audit(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    for a in [
        "user_created",
        "user_role_changed",
        "user_disabled",
        "user_enabled",
        "user_password_reset",
        "user_deleted",
    ] {
        assert!(actions.iter().any(|x| x == a), "audit has {a}: {actions:?}");
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_sign_in_from_a_new_address_alerts() {
    let (hook, got) = webhook().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = dash::config(dir.path());
    cfg.alerts.webhook = Some(hook);
    cfg.trust_proxy = true;
    let h = Server::start(cfg).await.unwrap();
    dash::add_user(&h, "alice", Role::Admin, "password-123456").await;
    let c = client();
    let base = h.url();
    // The first sign-in only records the address; the same address again is not news.
    for _ in 0..2 {
        let r = dash::login_from(&c, &base, "alice", "password-123456", Some("10.0.0.1")).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
    }
    // The proxy's entry is the last one: a client-supplied first entry is ignored.
    let r = dash::login_from(
        &c,
        &base,
        "alice",
        "password-123456",
        Some("10.0.0.1, 192.0.2.9"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let got = alerts_so_far(&h, &got).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["rule"], "new_admin_ip");
    assert!(got[0]["text"].as_str().unwrap().contains("192.0.2.9"));
    let logins = h
        .store()
        .list_audit(&sentinel::server::store::AuditFilter {
            action: Some("login".into()),
            ..Default::default()
        })
        .await;
    assert!(logins.unwrap().iter().any(|e| e.ip == "192.0.2.9"));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_alerts_go_out_over_smtp() {
    use sentinel::server::alerts::Alert;
    let smtp = sentinel_e2e::smtp::Receiver::start().await;
    let cfg = smtp.config();
    let alert = Alert {
        rule: "level".into(),
        title: "Sentinel: critical anomaly on web-1".into(),
        text: "bob ran /tmp/x".into(),
        host: Some("web-1".into()),
        level: Some(Level::Critical),
        score: Some(90),
        url: Some("https://sentinel.example.org/anomalies/a-1".into()),
        time_ns: 0,
    };
    sentinel::server::mail::send(&cfg, &alert).await.unwrap();
    let got = smtp.wait_for(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt, ["soc@example.org"]);
    let data = &got[0].data;
    assert!(
        data.contains("Subject: Sentinel: critical anomaly on web-1"),
        "{data}"
    );
    assert!(
        data.contains("bob ran /tmp/x") && data.contains("Level: critical (score 90)"),
        "{data}"
    );
}
