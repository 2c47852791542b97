//! End-to-end tests of the security review's transport and outbound findings against real
//! servers: plain HTTP refused off loopback, `__Host-` Secure cookies and HSTS with TLS, and
//! alerts that escape Slack markup and sign and retry webhooks.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE};
use sentinel::model::Level;
use sentinel::server::store::Role;
use sentinel::server::{Server, ServerConfig};
use sentinel_e2e::dash;
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
    dash::add_user(&h, "alice", Role::Admin, "password-123456");
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
    let owner = dash::add_user(&h, "agent", Role::Operator, "password-123456");
    let host = "<!channel>";
    let key = dash::ingest_key(&h, owner, host);
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
