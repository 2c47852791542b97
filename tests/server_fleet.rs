//! End-to-end tests of the fleet (issue 13): `sentinel host token` and `sentinel enroll`
//! against a real server (uses exhausted, expired, retired: refused; re-enrolment rotates, the
//! old key gets 401), real agents (`sentinel run`) whose heartbeats make the host healthy,
//! then stale when they stop, and blind when a flood loses events (each change alerted once
//! through a webhook), whose snapshots reach the host page and API, and whose spool, capped
//! while the server is down, drops the oldest batches and reports it in the next heartbeat;
//! and the cursor pages of anomalies and hosts.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sentinel::model::Level;
use sentinel::server::alerts::AlertsConfig;
use sentinel::server::fleet::NewEnrolToken;
use sentinel::server::store::Role;
use sentinel::server::{Server, ServerConfig, ServerHandle, auth};
use sentinel_e2e::{dash, require_root, run_workload, sentinel, sentinel_bin};
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A token made with the real `sentinel host token` command on the server's database.
fn cli_token(db: &Path, extra: &[&str]) -> String {
    let mut args = vec!["host", "--db", db.to_str().unwrap(), "token"];
    args.extend_from_slice(extra);
    let r = sentinel(&args);
    assert_eq!(r.code, 0, "sentinel host token: {}", r.stderr);
    let t = r.stdout.trim().to_string();
    assert!(t.starts_with("snt_enr_"), "{t}");
    t
}

/// `sentinel enroll URL --token T --host H --config CFG`.
fn enroll(url: &str, token: &str, host: &str, cfg: &Path) -> sentinel_e2e::Run {
    sentinel(&[
        "enroll",
        url,
        "--token",
        token,
        "--host",
        host,
        "--config",
        cfg.to_str().unwrap(),
    ])
}

async fn heartbeat(
    c: &reqwest::Client,
    base: &str,
    key: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let r = c
        .post(format!("{base}/api/ingest/heartbeat"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

fn beat(host: &str, health: Value) -> Value {
    json!({ "host": host, "time_ns": sentinel::store::now_ns(), "interval_secs": 30, "health": health })
}

async fn get(c: &reqwest::Client, url: &str, key: &str) -> (StatusCode, Value) {
    let r = c.get(url).bearer_auth(key).send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn audit_actions(h: &ServerHandle) -> Vec<String> {
    h.store()
        .list_audit(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_gives_a_bound_key_rotates_it_and_refuses_spent_expired_and_retired() {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let base = h.url();
    let db = dir.path().join("server.db");
    let admin = dash::add_user(&h, "root-admin", Role::Admin, "password-123456").await;
    let admin_key = dash::key(
        &h,
        admin,
        "adm",
        sentinel::server::store::KeyScope::Admin,
        None,
    )
    .await;
    let c = client();
    let token = cli_token(&db, &["--uses", "2", "--expires", "1h"]);
    let cfg = dir.path().join("etc/sentinel.toml");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(&cfg, "# my agent\n[push]\nspool_dir = \"/tmp/x\"\n").unwrap();

    // First enrolment: key 0600 next to the configuration, which now points at the server.
    let r = enroll(&base, &token, "fleet-e2e-web", &cfg);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let key_file = dir.path().join("etc/push.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let key1 = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_string();
    let conf = sentinel::config::Config::load(Some(&cfg)).unwrap();
    assert_eq!(conf.host.as_deref(), Some("fleet-e2e-web"));
    assert_eq!(conf.push.url.as_deref(), Some(base.as_str()));
    assert_eq!(conf.push.api_key_file.as_deref(), Some(key_file.as_path()));
    assert_eq!(
        conf.push.spool_dir.as_deref(),
        Some(Path::new("/tmp/x")),
        "the rest is kept"
    );
    assert!(
        std::fs::read_to_string(&cfg)
            .unwrap()
            .contains("# my agent")
    );

    // The key writes its own host, and only that one.
    let (s, _) = heartbeat(&c, &base, &key1, &beat("fleet-e2e-web", json!({}))).await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = heartbeat(&c, &base, &key1, &beat("fleet-e2e-db", json!({}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    let (s, _) = get(&c, &format!("{base}/api/hosts"), &key1).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "an enrolled key only pushes");

    // Re-enrolment rotates: the old key is refused from now on.
    let r = enroll(&base, &token, "fleet-e2e-web", &cfg);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("previous key is revoked"), "{}", r.stdout);
    let key2 = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_string();
    assert_ne!(key1, key2);
    let (s, _) = heartbeat(&c, &base, &key1, &beat("fleet-e2e-web", json!({}))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = heartbeat(&c, &base, &key2, &beat("fleet-e2e-web", json!({}))).await;
    assert_eq!(s, StatusCode::OK);

    // Both uses spent.
    let r = enroll(&base, &token, "fleet-e2e-other", &dir.path().join("o.toml"));
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("HTTP 403") && r.stderr.contains("used up"),
        "{}",
        r.stderr
    );
    // Expired, and unknown.
    let expired = "snt_enr_expired-for-the-test";
    h.store()
        .create_enrol_token(&NewEnrolToken {
            token_hash: &auth::token_hash(expired),
            prefix: "snt_enr_expir",
            note: "",
            created_by: "test",
            now_ns: 0,
            expires_ns: Some(sentinel::store::now_ns() - 1),
            max_uses: 5,
        })
        .await
        .unwrap();
    let r = enroll(
        &base,
        expired,
        "fleet-e2e-other",
        &dir.path().join("o.toml"),
    );
    assert!(
        r.stderr.contains("HTTP 403") && r.stderr.contains("expired"),
        "{}",
        r.stderr
    );
    let r = enroll(
        &base,
        "snt_enr_nope",
        "fleet-e2e-other",
        &dir.path().join("o.toml"),
    );
    assert!(
        r.stderr.contains("HTTP 401") && r.stderr.contains("unknown"),
        "{}",
        r.stderr
    );
    // Malformed enrolment requests get a clear 4xx.
    let r = c
        .post(format!("{base}/api/enroll"))
        .body("{\"token\": 3}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c
        .post(format!("{base}/api/enroll"))
        .json(&json!({ "token": token, "host": "a\nb" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // An admin retires the host through the API: its key stops, it cannot enrol again.
    let r = c
        .post(format!("{base}/api/admin/hosts/fleet-e2e-web/retire"))
        .bearer_auth(&admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (s, _) = heartbeat(&c, &base, &key2, &beat("fleet-e2e-web", json!({}))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let fresh = cli_token(&db, &[]);
    let r = enroll(&base, &fresh, "fleet-e2e-web", &cfg);
    assert!(
        r.stderr.contains("HTTP 409") && r.stderr.contains("retired"),
        "{}",
        r.stderr
    );
    // The admin API lists tokens (never their secrets) and makes new ones.
    let (s, list) = get(
        &c,
        &format!("{base}/api/admin/enrolment-tokens"),
        &admin_key,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(!list.to_string().contains(&token[14..]), "no secret listed");
    assert_eq!(
        list.as_array()
            .unwrap()
            .iter()
            .filter(|t| t["uses"] == 2)
            .count(),
        1,
        "{list}"
    );
    let r: Value = c
        .post(format!("{base}/api/admin/enrolment-tokens"))
        .bearer_auth(&admin_key)
        .json(&json!({ "uses": 3, "expires_secs": 600, "note": "rack 4" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(r["token"].as_str().unwrap().starts_with("snt_enr_"), "{r}");
    let actions = audit_actions(&h).await;
    for a in [
        "enrol_token_created",
        "host_enrolled",
        "host_reenrolled",
        "enrol_refused",
        "host_retired",
        "ingest_host_refused",
    ] {
        assert!(
            actions.iter().any(|x| x == a),
            "{a} missing from {actions:?}"
        );
    }
    // The CLI lists the agent as retired.
    let r = sentinel(&["host", "--db", db.to_str().unwrap(), "list"]);
    assert!(r.stdout.contains("fleet-e2e-web\tretired"), "{}", r.stdout);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_heartbeats_get_clear_answers_and_the_blind_classifier_runs_on_them() {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let base = h.url();
    let op = dash::add_user(&h, "agent", Role::Operator, "password-123456").await;
    let key = dash::ingest_key(&h, op, "fleet-e2e-hb").await;
    let viewer = dash::add_user(&h, "vera", Role::Viewer, "password-123456").await;
    let reader = dash::read_key(&h, viewer).await;
    let c = client();
    for (body, want) in [
        (json!({ "host": "fleet-e2e-hb" }), StatusCode::BAD_REQUEST),
        (json!("x"), StatusCode::BAD_REQUEST),
        (
            beat("fleet-e2e-hb", json!([1])),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            beat(
                "fleet-e2e-hb",
                json!({ "events": { "lost_total": "lots" } }),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "host": "fleet-e2e-hb", "time_ns": i64::MAX, "interval_secs": 30, "health": {} }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (s, answer) = heartbeat(&c, &base, &key, &body).await;
        assert_eq!(s, want, "{body}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{answer}"
        );
    }
    // A failed hook makes the host blind, with the hook named; a clean beat heals it.
    let failed = json!({ "hooks": { "attached": ["a"], "failed": [{ "hook": "sys_enter_bpf", "reason": "permission denied" }] } });
    let (s, r) = heartbeat(&c, &base, &key, &beat("fleet-e2e-hb", failed)).await;
    assert_eq!((s, &r["state"]), (StatusCode::OK, &json!("blind")), "{r}");
    let (_, host) = get(&c, &format!("{base}/api/hosts/fleet-e2e-hb"), &reader).await;
    assert!(
        host["fleet"]["agent"]["reason"]
            .as_str()
            .unwrap()
            .contains("sys_enter_bpf"),
        "{host}"
    );
    let (_, r) = heartbeat(&c, &base, &key, &beat("fleet-e2e-hb", json!({}))).await;
    assert_eq!(r["state"], "healthy");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anomaly_and_host_lists_page_with_cursors_and_time_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let base = h.url();
    let viewer = dash::add_user(&h, "vera", Role::Viewer, "password-123456").await;
    let reader = dash::read_key(&h, viewer).await;
    let c = client();
    let t0 = sentinel::store::now_ns() - 1_000_000_000;
    for host in ["page-a", "page-b", "page-c"] {
        let mut list = Vec::new();
        for i in 0..3 {
            let mut a = dash::anomaly(host, "bob", &format!("{host}-{i}"), Level::Medium);
            a.time_ns = t0 + i;
            list.push(a);
        }
        h.ingest(&sentinel::feed::push::IngestBatch {
            batch_id: format!("b-{host}"),
            host: Some(host.into()),
            anomalies: list,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let mut ids = Vec::new();
    let mut url = format!("{base}/api/anomalies?limit=4");
    loop {
        let (s, page) = get(&c, &url, &reader).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let got = page["anomalies"].as_array().unwrap();
        assert!(got.len() <= 4);
        ids.extend(got.iter().map(|a| a["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(cur) => url = format!("{base}/api/anomalies?limit=4&cursor={cur}"),
            None => break,
        }
    }
    assert_eq!(ids.len(), 9, "every anomaly once: {ids:?}");
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 9);
    assert_eq!(
        &ids[..3],
        ["page-c-2", "page-c-1", "page-c-0"],
        "newest batch first"
    );
    // A time range (agent clock) and a host.
    let (_, page) = get(
        &c,
        &format!(
            "{base}/api/anomalies?host=page-b&from_ns={}&to_ns={}",
            t0 + 1,
            t0 + 2
        ),
        &reader,
    )
    .await;
    let got: Vec<&str> = page["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["page-b-2", "page-b-1"]);
    let (s, _) = get(&c, &format!("{base}/api/anomalies?cursor=junk"), &reader).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Hosts by name, one per page.
    let mut names = Vec::new();
    let mut url = format!("{base}/api/hosts?limit=1");
    loop {
        let (s, page) = get(&c, &url, &reader).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        names.extend(
            page["hosts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["name"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(cur) => url = format!("{base}/api/hosts?limit=1&cursor={cur}"),
            None => break,
        }
    }
    assert_eq!(names, ["page-a", "page-b", "page-c"]);
    let (_, page) = get(
        &c,
        &format!("{base}/api/hosts?from_ns={}", sentinel::store::now_ns() + 1),
        &reader,
    )
    .await;
    assert_eq!(page["hosts"], json!([]), "nobody seen in the future");
    let (s, _) = get(&c, &format!("{base}/api/hosts?state=bogus"), &reader).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    h.shutdown().await;
}

/// What the local alert receiver got: the JSON bodies.
type Got = Arc<Mutex<Vec<Value>>>;

async fn receiver() -> (String, Got) {
    let got: Got = Default::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let sink = sink.clone();
            async move {
                if let Ok(v) = serde_json::from_str(&body) {
                    sink.lock().unwrap().push(v);
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, got)
}

/// Waits (bounded) until `f` gives a value.
async fn until<T>(what: &str, secs: u64, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An agent configuration for `host` enrolled at `base`: a heartbeat a second, a snapshot
/// every `snapshot_secs`, extra `[push]` settings appended.
fn agent_config(
    dir: &Path,
    base: &str,
    token: &str,
    host: &str,
    snapshot_secs: u64,
    extra: &str,
) -> PathBuf {
    let cfg = dir.join(format!("{host}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "store = {:?}\n[push]\nspool_dir = {:?}\nheartbeat_interval_secs = 1\nsnapshot_interval_secs = {snapshot_secs}\n{extra}",
            dir.join(format!("{host}.db")),
            dir.join(format!("{host}-spool")),
        ),
    )
    .unwrap();
    let r = enroll(base, token, host, &cfg);
    assert_eq!(r.code, 0, "{}", r.stderr);
    cfg
}

fn spawn_agent(cfg: &Path, stderr: Stdio) -> Child {
    Command::new(sentinel_bin())
        .args(["run", "--duration", "300s", "--config"])
        .arg(cfg)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn sentinel run")
}

async fn agent_state(c: &reqwest::Client, base: &str, key: &str, host: &str) -> (Value, Value) {
    let (_, v) = get(c, &format!("{base}/api/hosts/{host}"), key).await;
    (v["fleet"]["agent"].clone(), v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_heartbeat_healthy_then_stale_blind_under_a_flood_and_push_snapshots() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (hook, alerts) = receiver().await;
    let cfg = ServerConfig {
        alerts: AlertsConfig {
            webhook: Some(hook),
            ..Default::default()
        },
        ..dash::config(dir.path())
    };
    let h = Server::start(cfg).await.unwrap();
    let base = h.url();
    let viewer = dash::add_user(&h, "vera", Role::Viewer, "password-123456").await;
    let reader = dash::read_key(&h, viewer).await;
    let (cookie, _) = dash::session(&h, viewer).await;
    let c = client();
    let token = cli_token(&dir.path().join("server.db"), &["--uses", "2"]);
    let host = format!("fleet-e2e-live-{}", std::process::id());

    // A real agent: healthy once its heartbeats arrive, its snapshots on the host page.
    let agent_cfg = agent_config(dir.path(), &base, &token, &host, 2, "");
    let mut agent = spawn_agent(&agent_cfg, Stdio::null());
    let (a, v) = until("a healthy agent with a snapshot", 90, async || {
        let (a, v) = agent_state(&c, &base, &reader, &host).await;
        (a["state"] == "healthy" && !v["host"]["snapshot"].is_null()).then_some((a, v))
    })
    .await;
    let health = &a["heartbeat"]["health"];
    assert_eq!(health["host"], host.as_str(), "{a}");
    assert!(
        health["hooks"]["attached"].as_array().unwrap().len() > 5,
        "{health}"
    );
    assert_eq!(a["interval_secs"], 1);
    let snap = &v["host"]["snapshot"];
    assert_eq!(
        snap["system"]["hostname"],
        host.as_str(),
        "named by its identity"
    );
    assert!(snap["network"]["listeners"].is_array(), "{snap}");
    let points = until("two snapshots charted", 60, async || {
        let (_, v) = get(&c, &format!("{base}/api/hosts/{host}"), &reader).await;
        let p = v["fleet"]["snapshots_7d"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (p.len() >= 2).then_some(p)
    })
    .await;
    assert!(
        points[0]["memory_used_percent"]
            .as_f64()
            .is_some_and(|m| m > 0.0 && m <= 100.0),
        "{points:?}"
    );
    let page = c
        .get(format!("{base}/hosts/{host}"))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for want in [
        "Agent",
        "healthy",
        "Memory used",
        "Load (1 min)",
        "Listeners",
        "Configuration drift",
        "Audit summary",
        "Posture",
        "<svg class=\"chart\"",
    ] {
        assert!(page.contains(want), "host page lacks {want:?}");
    }
    let list = c
        .get(format!("{base}/hosts"))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        list.contains(&host) && list.contains("badge agent"),
        "hosts list shows agent health"
    );

    // Stopped: stale after three missed heartbeats, alerted once.
    sentinel_e2e::stop_sentinel(&mut agent);
    let a = until("the stale state", 30, async || {
        let (a, _) = agent_state(&c, &base, &reader, &host).await;
        (a["state"] == "stale").then_some(a)
    })
    .await;
    assert!(
        a["reason"].as_str().unwrap().contains("no heartbeat"),
        "{a}"
    );
    until("the stale alert", 30, async || {
        let g = alerts.lock().unwrap();
        g.iter()
            .any(|x| x["rule"] == "agent_stale" && x["host"] == host.as_str())
            .then_some(())
    })
    .await;

    // Started again with a one-page ring drained once a second: a flood loses events and the
    // host turns blind, naming the loss; the recovery from stale and the blindness alert.
    let flood_cfg = dir.path().join("flood.toml");
    let text = std::fs::read_to_string(&agent_cfg).unwrap();
    std::fs::write(
        &flood_cfg,
        format!("{text}\n[collect]\nring_buffer_bytes = 4096\ndrain_interval_ms = 1000\n"),
    )
    .unwrap();
    let mut agent = spawn_agent(&flood_cfg, Stdio::null());
    until("a heartbeat after the restart", 90, async || {
        let (a, _) = agent_state(&c, &base, &reader, &host).await;
        (a["state"] != "stale").then_some(())
    })
    .await;
    let target = dir.path().join("f".repeat(150));
    std::fs::write(&target, "x").unwrap();
    let a = until("the blind state", 90, async || {
        let r = run_workload(&[
            std::ffi::OsStr::new("open-storm"),
            target.as_os_str(),
            std::ffi::OsStr::new("100000"),
        ]);
        assert!(r.status.success());
        let (a, _) = agent_state(&c, &base, &reader, &host).await;
        (a["state"] == "blind").then_some(a)
    })
    .await;
    assert!(a["reason"].as_str().unwrap().contains("events lost"), "{a}");
    until("the blind alert", 30, async || {
        let g = alerts.lock().unwrap();
        g.iter()
            .any(|x| x["rule"] == "agent_blind" && x["host"] == host.as_str())
            .then_some(())
    })
    .await;
    sentinel_e2e::stop_sentinel(&mut agent);
    let g = alerts.lock().unwrap().clone();
    let stale = g
        .iter()
        .filter(|x| x["rule"] == "agent_stale" && x["host"] == host.as_str())
        .count();
    assert_eq!(stale, 1, "one alert per change: {g:?}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_spool_drops_the_oldest_batches_while_the_server_is_down_and_says_so() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let base = h.url();
    let addr = h.addr;
    let token = cli_token(&dir.path().join("server.db"), &[]);
    let host = format!("fleet-e2e-spool-{}", std::process::id());
    let cap = 40_000u64;
    let cfg = agent_config(
        dir.path(),
        &base,
        &token,
        &host,
        1,
        &format!("spool_max_bytes = {cap}\n"),
    );
    // The server goes down; the agent keeps snapshotting into its spool.
    h.shutdown().await;
    let spool = dir.path().join(format!("{host}-spool"));
    let err_path = dir.path().join("agent.err");
    let mut agent = spawn_agent(&cfg, Stdio::from(std::fs::File::create(&err_path).unwrap()));
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now: Vec<String> = std::fs::read_dir(&spool)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".json"))
                    .collect()
            })
            .unwrap_or_default();
        seen.extend(now.iter().cloned());
        let bytes: u64 = now
            .iter()
            .filter_map(|n| std::fs::metadata(spool.join(n)).ok())
            .map(|m| m.len())
            .sum();
        // Dropped: batches seen on disk are gone while nothing could be delivered.
        if seen.len() >= now.len() + 3 {
            let newest = now
                .iter()
                .max()
                .and_then(|n| std::fs::metadata(spool.join(n)).ok())
                .map_or(0, |m| m.len());
            assert!(
                bytes <= cap + newest,
                "{bytes} bytes in the spool, cap {cap}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no batch was dropped: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The server is back on the same address: the next heartbeat reports the drops and the
    // batches kept arrive.
    let cfg2 = ServerConfig {
        listen: addr.to_string(),
        ..dash::config(dir.path())
    };
    let h = Server::start(cfg2).await.unwrap();
    let viewer = dash::add_user(&h, "vera", Role::Viewer, "password-123456").await;
    let reader = dash::read_key(&h, viewer).await;
    let c = client();
    let push = until("a heartbeat reporting dropped batches", 60, async || {
        let (_, v) = get(&c, &format!("{base}/api/hosts/{host}"), &reader).await;
        let p = v["fleet"]["agent"]["heartbeat"]["health"]["push"].clone();
        (p["spool_dropped_batches"].as_u64().unwrap_or(0) > 0 && !v["host"]["snapshot"].is_null())
            .then_some(p)
    })
    .await;
    assert_eq!(push["spool_max_bytes"], cap, "{push}");
    assert!(
        push["spool_dropped_items"].as_u64().unwrap()
            >= push["spool_dropped_batches"].as_u64().unwrap(),
        "{push}"
    );
    sentinel_e2e::stop_sentinel(&mut agent);
    let err = std::fs::read_to_string(&err_path).unwrap();
    assert!(
        err.contains("push spool full ([push] spool_max_bytes)") && err.contains("oldest batches"),
        "{err}"
    );
    h.shutdown().await;
}
