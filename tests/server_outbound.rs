//! End-to-end tests of the security review's transport and outbound findings against real
//! servers: plain HTTP refused off loopback, `__Host-` Secure cookies and HSTS with TLS,
//! alerts that escape Slack markup and sign and retry webhooks, and security notices mailed
//! to the user (two-factor, password and key changes) through a local SMTP receiver.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE};
use sentinel::model::Level;
use sentinel::server::store::Role;
use sentinel::server::{Server, ServerConfig};
use sentinel_e2e::{dash, smtp};
use serde_json::json;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn push(
    c: &reqwest::Client,
    base: &str,
    key: &str,
    body: &serde_json::Value,
) -> reqwest::Response {
    c.post(format!("{base}/api/ingest"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_off_loopback_is_refused_unless_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ServerConfig {
        listen: "0.0.0.0:0".into(),
        ..dash::config(dir.path())
    };
    let err = Server::start(cfg.clone()).await.err().expect("refused");
    assert!(err.to_string().contains("--insecure-http"), "{err}");
    let h = Server::start(ServerConfig {
        insecure_http: true,
        ..cfg
    })
    .await
    .expect("starts when asked for");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_cookies_are_secure_host_prefixed_and_hsts_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs (tests/setup/server.sh installs it)");
    assert!(ok.status.success());
    let h = Server::start(ServerConfig {
        tls_cert: Some(cert),
        tls_key: Some(key),
        listen: "0.0.0.0:0".into(),
        ..dash::config(dir.path())
    })
    .await
    .expect("TLS on any address is fine");
    dash::add_user(&h, "alice", Role::Admin, "password-123456").await;
    let c = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{}", h.addr.port());
    let r = c.get(format!("{base}/login")).send().await.unwrap();
    assert!(r.headers().contains_key("strict-transport-security"));
    let set = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set.starts_with("__Host-sentinel_prelogin=")
            && set.contains("; Secure")
            && set.contains("Path=/"),
        "{set}"
    );
    let token = set
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    let r = c
        .post(format!("{base}/login"))
        .header(COOKIE, format!("__Host-sentinel_prelogin={token}"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!(
            "csrf={token}&username=alice&password=password-123456"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("__Host-sentinel_session="))
        .expect("a __Host- session cookie");
    assert!(
        session.contains("; Secure") && session.contains("HttpOnly"),
        "{session}"
    );
    // The cookie works under its prefixed name, and only under it.
    let value = session.split(';').next().unwrap().to_string();
    let r = c
        .get(format!("{base}/"))
        .header(COOKIE, &value)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let bare = value.trim_start_matches("__Host-");
    let r = c
        .get(format!("{base}/"))
        .header(COOKIE, bare)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "the unprefixed name is ignored"
    );
    h.shutdown().await;
}

/// What a local receiver got: (headers, body) per request.
type Got = std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>;

/// A local receiver that answers 503 to the first `fail_first` requests, then 200.
async fn receiver(fail_first: usize) -> (String, Got) {
    let got: Got = Default::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/services/T0/B0/SECRETPATH",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let sink = sink.clone();
            async move {
                let mut g = sink.lock().unwrap();
                g.push((headers, body));
                if g.len() <= fail_first {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/services/T0/B0/SECRETPATH",
        l.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, got)
}

async fn wait_for(got: &Got, n: usize) -> Vec<(axum::http::HeaderMap, String)> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got.lock().unwrap().len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} requests",
            got.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    got.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_escape_slack_markup_and_sign_and_retry_webhooks() {
    let (slack, slack_got) = receiver(0).await;
    let (hook, hook_got) = receiver(1).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = dash::config(dir.path());
    cfg.alerts.slack_webhook = Some(slack);
    cfg.alerts.webhook = Some(hook);
    cfg.alerts.webhook_secret = Some("shared-secret-for-tests".into());
    let h = Server::start(cfg).await.unwrap();
    let owner = dash::add_user(&h, "agent", Role::Operator, "password-123456").await;
    let host = "<!channel>";
    let key = dash::ingest_key(&h, owner, host).await;
    let mut a = dash::anomaly(host, "bob", "slack-1", Level::Critical);
    a.factors[0].reason = "<https://evil.example|open the payroll> & <@U123>".into();
    let r = push(
        &client(),
        &h.url(),
        &key,
        &json!({ "batch_id": "s", "anomalies": [a] }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    // Slack: the agent's text is shown literally, never as a mention or a disguised link.
    let got = wait_for(&slack_got, 1).await;
    let body = &got[0].1;
    assert!(
        !body.contains("<!channel>") && !body.contains("<https://evil"),
        "{body}"
    );
    assert!(
        body.contains("&lt;!channel&gt;") && body.contains("&amp;"),
        "{body}"
    );
    // The webhook: retried after a 503, signed with HMAC-SHA256 over "<timestamp>.<body>".
    let got = wait_for(&hook_got, 2).await;
    let (headers, body) = &got[1];
    let ts: i64 = headers["x-sentinel-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let sig = headers["x-sentinel-signature"].to_str().unwrap();
    let want =
        sentinel::server::alerts::webhook_signature("shared-secret-for-tests", ts, body.as_bytes());
    assert_eq!(sig, format!("sha256={want}"));
    assert!(body.contains("Sentinel: critical anomaly"), "{body}");
    h.shutdown().await;
}

/// Posts a profile form with the session's CSRF token; returns the status and the page.
async fn profile_post(
    c: &reqwest::Client,
    base: &str,
    cookie: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String) {
    let csrf = dash::csrf(c, base, cookie).await;
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    let r = c
        .post(format!("{base}{path}"))
        .header(COOKIE, cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

const PW: &str = "password-123456";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_security_change_mails_the_user_once_at_their_address() {
    let relay = smtp::Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = dash::config(dir.path());
    cfg.alerts.email = Some(relay.config());
    let h = Server::start(cfg).await.unwrap();
    let base = h.url();
    let c = client();
    let olga = dash::add_user(&h, "olga", Role::Operator, PW).await;
    let bob = dash::add_user(&h, "bob", Role::Operator, PW).await;
    h.store()
        .set_email(bob, Some("bob@example.org"))
        .await
        .unwrap();
    let cookie = dash::session_cookie(&dash::login(&c, &base, "olga", PW).await).unwrap();
    // Her own address, set with her password; there was none before, so nobody is told.
    let (st, page) = profile_post(
        &c,
        &base,
        &cookie,
        "/profile/email",
        &[("email", "not an address"), ("password", PW)],
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{page}");
    let (st, _) = profile_post(
        &c,
        &base,
        &cookie,
        "/profile/email",
        &[("email", "olga@example.org")],
    )
    .await;
    assert_eq!(
        st,
        StatusCode::BAD_REQUEST,
        "the address needs the password"
    );
    let (st, _) = profile_post(
        &c,
        &base,
        &cookie,
        "/profile/email",
        &[("email", "olga@example.org"), ("password", PW)],
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let user = h.store().user_by_id(olga).await.unwrap().unwrap();
    assert_eq!(user.email.as_deref(), Some("olga@example.org"));
    assert_eq!(h.state.notify.counts().queued, 0);

    let subject = |what: &str| format!("Sentinel: {what} for olga");
    let mut want = Vec::new();
    // 1. Two-factor on.
    let (secret, step) = dash::enrol_totp(&c, &base, &cookie, PW).await;
    want.push(subject("two-factor sign-in turned on"));
    // 2. Moved to a new device: password and a current code, then the new secret's code.
    let (code, _) = dash::fresh_code(&secret, step).await;
    let (st, page) = profile_post(
        &c,
        &base,
        &cookie,
        "/profile/totp/setup",
        &[("password", PW), ("code", &code)],
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let secret2 = page
        .split("id=\"totp-secret\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
        .to_string();
    let (code, step) = dash::fresh_code(&secret2, 0).await;
    let (st, page) = profile_post(
        &c,
        &base,
        &cookie,
        "/profile/totp/enable",
        &[("code", &code)],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{page}");
    want.push(subject("two-factor sign-in moved to a new device"));
    // 3. A new API key.
    let (code, step) = dash::fresh_code(&secret2, step).await;
    let (st, _) = profile_post(
        &c,
        &base,
        &cookie,
        "/profile/keys",
        &[("name", "ci reader"), ("password", PW), ("code", &code)],
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    want.push(subject("new API key"));
    // 4. The password.
    let new_pw = "another-password-789";
    let (st, _) = profile_post(
        &c,
        &base,
        &cookie,
        "/profile/password",
        &[("current", PW), ("new", new_pw), ("confirm", new_pw)],
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    want.push(subject("password changed"));
    // 5. Two-factor off.
    let (code, _) = dash::fresh_code(&secret2, step).await;
    let (st, _) = profile_post(
        &c,
        &base,
        &cookie,
        "/profile/totp/disable",
        &[("password", new_pw), ("code", &code)],
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    want.push(subject("two-factor sign-in turned off"));

    // Exactly one notice per change (counted before each handler answered), each to her.
    assert_eq!(h.state.notify.counts().queued, want.len() as u64);
    let got = relay.wait_for(want.len()).await;
    assert_eq!(got.len(), want.len(), "{got:?}");
    let mut subjects: Vec<String> = got.iter().map(|m| m.header("Subject").unwrap()).collect();
    subjects.sort();
    want.sort();
    assert_eq!(subjects, want);
    for m in &got {
        assert_eq!(m.rcpt, ["olga@example.org"], "{m:?}");
        assert_eq!(m.header("To").as_deref(), Some("olga@example.org"));
        assert!(m.data.contains("If this was not you"), "{}", m.data);
    }
    let key_mail = got
        .iter()
        .find(|m| m.header("Subject").unwrap().contains("API key"))
        .unwrap();
    assert!(
        key_mail.data.contains("Key: ci reader"),
        "{}",
        key_mail.data
    );
    assert_eq!(h.state.notify.counts().failed, 0);

    // An admin's change reaches the user too, and changing the address tells the old one.
    let admin = dash::add_user(&h, "alice", Role::Admin, PW).await;
    let (admin_cookie, admin_csrf) = dash::session(&h, admin).await;
    let r = c
        .post(format!("{base}/admin/users/{olga}/email"))
        .header(COOKIE, &admin_cookie)
        .form(&[("csrf", admin_csrf.as_str()), ("email", "olga@new.example")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = c
        .post(format!("{base}/admin/users/{olga}/password"))
        .header(COOKIE, &admin_cookie)
        .form(&[
            ("csrf", admin_csrf.as_str()),
            ("password", "third-password-123"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let got = relay.wait_for(want.len() + 2).await;
    let last: Vec<(Vec<String>, String)> = got[want.len()..]
        .iter()
        .map(|m| (m.rcpt.clone(), m.header("Subject").unwrap()))
        .collect();
    assert!(
        last.contains(&(
            vec!["olga@example.org".to_string()],
            subject("notice address changed")
        )) && last.contains(&(
            vec!["olga@new.example".to_string()],
            subject("password changed")
        )),
        "{last:?}"
    );
    assert!(got.iter().all(|m| m.data.contains("olga")));
    assert!(
        got.iter().all(|m| m.rcpt != ["bob@example.org"]),
        "nothing went to bob"
    );
    assert_eq!(h.state.notify.counts().queued, want.len() as u64 + 2);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_notice_without_smtp_or_an_address_and_a_failing_relay_fails_nothing() {
    let relay = smtp::Receiver::start().await;
    let c = client();
    let new_pw = "another-password-789";
    let change_password = |base: String, cookie: String| {
        let c = c.clone();
        async move {
            profile_post(
                &c,
                &base,
                &cookie,
                "/profile/password",
                &[("current", PW), ("new", new_pw), ("confirm", new_pw)],
            )
            .await
            .0
        }
    };
    // SMTP configured, but the user has no address: skipped.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = dash::config(dir.path());
    cfg.alerts.email = Some(relay.config());
    let h = Server::start(cfg).await.unwrap();
    let id = dash::add_user(&h, "nomail", Role::Viewer, PW).await;
    let (cookie, _) = dash::session(&h, id).await;
    assert_eq!(change_password(h.url(), cookie).await, StatusCode::OK);
    let n = h.state.notify.counts();
    assert_eq!((n.queued, n.skipped), (0, 1));
    h.shutdown().await;

    // An address, but no SMTP settings: skipped.
    let dir = tempfile::tempdir().unwrap();
    let h = Server::start(dash::config(dir.path())).await.unwrap();
    let id = dash::add_user(&h, "olga", Role::Viewer, PW).await;
    h.store()
        .set_email(id, Some("olga@example.org"))
        .await
        .unwrap();
    let (cookie, _) = dash::session(&h, id).await;
    assert_eq!(change_password(h.url(), cookie).await, StatusCode::OK);
    let n = h.state.notify.counts();
    assert_eq!((n.queued, n.skipped), (0, 1));
    h.shutdown().await;
    assert!(relay.mails().is_empty(), "{:?}", relay.mails());

    // A relay that refuses connections: the change still succeeds; the failure is counted
    // and audited, without the SMTP password.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = dash::config(dir.path());
    let mut email = relay.config();
    email.smtp_port = port;
    email.username = Some("relay-user".into());
    email.password = Some("relay-password-SECRET".into());
    cfg.alerts.email = Some(email);
    let h = Server::start(cfg).await.unwrap();
    let id = dash::add_user(&h, "olga", Role::Viewer, PW).await;
    h.store()
        .set_email(id, Some("olga@example.org"))
        .await
        .unwrap();
    let (cookie, _) = dash::session(&h, id).await;
    assert_eq!(change_password(h.url(), cookie).await, StatusCode::OK);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while h.state.notify.counts().failed == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the failure was never counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let audited = h
        .store()
        .list_audit(&sentinel::server::store::AuditFilter {
            action: Some("notice_failed".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audited.len(), 1);
    assert!(
        audited[0].detail.starts_with("password_changed:")
            && !audited[0].detail.contains("relay-password-SECRET"),
        "{:?}",
        audited[0]
    );
    assert!(relay.mails().is_empty());
    h.shutdown().await;
}
