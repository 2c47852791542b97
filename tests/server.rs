//! End-to-end tests of the dashboard server over real HTTP: the route x role matrix (every
//! route, every role, anonymous, forged cookies, API keys, missing CSRF), escaping of hostile
//! agent data, and the login flow (lockout, TOTP once per code, recovery codes).

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION};
use sentinel::feed::push::IngestBatch;
use sentinel::model::Level;
use sentinel::server::access::Access;
use sentinel::server::auth;
use sentinel::server::routes::specs;
use sentinel::server::store::{KeyScope, Role};
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
    /// A key of this scope whose owner has this role (a scope above the role stands for an
    /// owner demoted after the key was made).
    Key(Role, KeyScope),
}

/// The policy, written independently of the route table so that a wrong entry there fails.
fn policy(method: &reqwest::Method, path: &str) -> Access {
    const PUBLIC: &[&str] = &[
        "/login",
        "/static/app.css",
        "/static/app.js",
        "/healthz",
        "/api/openapi.json",
        // Agents enrol with a token, not a key.
        "/api/enroll",
    ];
    if PUBLIC.contains(&path) {
        Access::Public
    } else if path == "/login/totp" {
        Access::MfaPending
    } else if path == "/api/ingest" || path.starts_with("/api/ingest/") {
        // Agents: push, and fetch and acknowledge their host's verdicts.
        Access::Ingest
    } else if path.starts_with("/admin/")
        || path.starts_with("/api/admin/")
        || ["/api/users", "/api/audit"].contains(&path)
    {
        Access::Role(Role::Admin)
    } else if path.ends_with("/ack") {
        assert_eq!(method, reqwest::Method::POST);
        Access::Role(Role::Operator)
    } else if path.contains("feedback") && method != reqwest::Method::GET {
        // Giving and undoing verdicts (listing them is reading).
        Access::Role(Role::Operator)
    } else {
        Access::Role(Role::Viewer)
    }
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "999999")
        .replace("{name}", "no-such-host")
        .replace("{host}", "no-such-host")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_enforces_its_role_for_every_identity() {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let mut ids: Vec<(Role, i64)> = Vec::new();
    for r in Role::ALL {
        ids.push((
            r,
            dash::add_user(&h, &format!("u-{r}"), r, "password-123456").await,
        ));
    }
    let mut keys: Vec<((Role, KeyScope), String)> = Vec::new();
    for (r, id) in &ids {
        for scope in KeyScope::ALL {
            let host = (scope == KeyScope::Ingest).then_some("no-such-host");
            keys.push(((*r, scope), dash::key(&h, *id, "k", scope, host).await));
        }
    }
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
        let mut whos = vec![
            Who::Anonymous,
            Who::ForgedSession,
            Who::ForgedFlaskStyle,
            Who::Session(Role::Viewer),
            Who::Session(Role::Operator),
            Who::Session(Role::Admin),
        ];
        whos.extend(keys.iter().map(|((r, s), _)| Who::Key(*r, *s)));
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
                        let (cookie, token) = dash::session(&h, id).await;
                        rb = rb.header(COOKIE, cookie);
                        csrf = token;
                    }
                    Who::Key(r, sc) => rb = rb.bearer_auth(&keys.iter().find(|(x, _)| *x == (r, sc)).unwrap().1),
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
                // The role an identity acts with on this route, if any: a key acts with its
                // scope, never above its owner's role; an ingest key with none at all.
                let acting: Option<Role> = match who {
                    Who::Session(r) => Some(r),
                    Who::Key(r, sc) if api => Some(match sc {
                        KeyScope::Ingest => {
                            if spec.access != Access::Ingest && spec.access != Access::Public {
                                assert_eq!(
                                    status,
                                    StatusCode::FORBIDDEN,
                                    "ingest keys only push: {ctx}"
                                );
                                checked += 1;
                                continue;
                            }
                            r
                        }
                        KeyScope::Read => Role::Viewer,
                        KeyScope::Ack => Role::Operator.min(r),
                        KeyScope::Admin => Role::Admin.min(r),
                    }),
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
                        Who::Key(r, KeyScope::Ingest) if r >= Role::Operator => assert!(
                            status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                            "{ctx}"
                        ),
                        // Other scopes, and ingest keys of owners who may not push.
                        Who::Key(..) => assert_eq!(status, StatusCode::FORBIDDEN, "{ctx}"),
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
    assert!(checked > 1400, "{checked}");
    // A wrong CSRF token is as bad as none.
    let (cookie, _) = dash::session(&h, ids[2].1).await;
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
    let viewer = dash::add_user(&h, "vera", Role::Viewer, "password-123456").await;
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
    .await
    .unwrap();
    let (cookie, _) = dash::session(&h, viewer).await;
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

/// Retries the right password until the delay ends (each try during the wait is refused
/// and must not extend it); fails after a deadline far beyond the configured delays.
async fn login_when_the_wait_ends(c: &reqwest::Client, base: &str, user: &str, from: Option<&str>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = dash::login_from(c, base, user, "password-123456", from).await;
        if r.status() == StatusCode::SEE_OTHER {
            return;
        }
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            std::time::Instant::now() < deadline,
            "the wait never ended (is it extended by every attempt?)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_failing_on_purpose_cannot_keep_the_owner_out() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sentinel::server::ServerConfig {
        trust_proxy: true,
        ..dash::config(dir.path())
    };
    let h = sentinel::server::Server::start(cfg).await.unwrap();
    let base = h.url();
    dash::add_user(&h, "alice", Role::Admin, "password-123456").await;
    let c = client();
    let owner = Some("10.0.0.1");
    let r = dash::login_from(&c, &base, "alice", "password-123456", owner).await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "the owner's usual address"
    );
    // Five wrong passwords from five addresses (the attack in the review).
    for i in 1..=5 {
        let ip = format!("10.9.0.{i}");
        let r = dash::login_from(&c, &base, "alice", "wrong-password", Some(&ip)).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // A sixth address now waits (guessing across addresses stays slow) ...
    let r = dash::login_from(&c, &base, "alice", "wrong-password", Some("10.9.0.6")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // ... but the owner, from an address they used before, gets in at once.
    let r = dash::login_from(&c, &base, "alice", "password-123456", owner).await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "a known user name must not lock its owner out"
    );
    // From a new address the owner waits, and the wait ends by itself although attempts
    // keep coming during it.
    for i in 1..=5 {
        let ip = format!("10.8.0.{i}");
        dash::login_from(&c, &base, "alice", "wrong-password", Some(&ip)).await;
    }
    login_when_the_wait_ends(&c, &base, "alice", Some("10.7.0.1")).await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_lockout_totp_once_and_recovery_codes() {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let base = h.url();
    let id = dash::add_user(&h, "alice", Role::Admin, "password-123456").await;
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
    let r = dash::login(&c, &base, "alice", "password-123456").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(dash::session_cookie(&r).is_some());
    // Five wrong passwords make this address wait, even with the right one; the wait is
    // audited and ends by itself (attempts while waiting do not extend it).
    for _ in 0..5 {
        assert_eq!(
            dash::login(&c, &base, "alice", "wrong-password")
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        dash::login(&c, &base, "alice", "password-123456")
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let delayed = h
        .store()
        .list_audit(&sentinel::server::store::AuditFilter {
            action: Some("login_delayed".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!delayed.is_empty(), "the delay is audited");
    login_when_the_wait_ends(&c, &base, "alice", None).await;
    // TOTP: the password alone only reaches the second step.
    let secret = auth::new_totp_secret().unwrap();
    h.store().set_totp(id, Some(&secret)).await.unwrap();
    let (_, hashes) = auth::new_recovery_codes().unwrap();
    let code_plain = "abcde-fghij";
    let mut hashes = hashes;
    hashes.push(auth::recovery_hash(code_plain));
    h.store().set_recovery_codes(id, &hashes).await.unwrap();
    let r = dash::login(&c, &base, "alice", "password-123456").await;
    assert_eq!(r.headers().get(LOCATION).unwrap(), "/login/totp");
    let pending = dash::session_cookie(&r).unwrap();
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
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = auth::totp_code(&secret, now).unwrap();
    let r = dash::second_factor(&c, &base, &pending, &code).await;
    assert_eq!(
        r.headers().get(LOCATION).unwrap(),
        "/",
        "valid code signs in"
    );
    let full = dash::session_cookie(&r).unwrap();
    assert_ne!(full, pending, "a new token after the second factor");
    let r = c
        .get(format!("{base}/"))
        .header(COOKIE, &full)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The same code a second time fails (one use per code).
    let r = dash::login(&c, &base, "alice", "password-123456").await;
    let r = dash::second_factor(&c, &base, &dash::session_cookie(&r).unwrap(), &code).await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "replayed code refused"
    );
    // A recovery code works once.
    for expect_ok in [true, false] {
        let r = dash::login(&c, &base, "alice", "password-123456").await;
        let r =
            dash::second_factor(&c, &base, &dash::session_cookie(&r).unwrap(), "ABCDE-FGHIJ").await;
        assert_eq!(r.status() == StatusCode::SEE_OTHER, expect_ok);
    }
    // Logout ends the session server-side.
    let (cookie, token) = dash::session(&h, id).await;
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
