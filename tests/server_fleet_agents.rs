//! End-to-end tests of real agents in a fleet (issue 13, root): heartbeats make the host
//! healthy, then stale when the agent stops, and blind when a flood loses events (each change
//! alerted once through a webhook); snapshots reach the host page and API; a spool capped
//! while the server is down drops the oldest batches and the next heartbeat says so.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sentinel::server::alerts::AlertsConfig;
use sentinel::server::store::Role;
use sentinel::server::{Server, ServerConfig};
use sentinel_e2e::fleet::{cli_token_on, client, enroll, get};
use sentinel_e2e::{dash, require_root, run_workload, sentinel_bin};
use serde_json::Value;

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
    let token = cli_token_on(&h, &["--uses", "2"]);
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
    let token = cli_token_on(&h, &[]);
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
    let server_cfg = h.state.cfg.clone();
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
    // The server is back on the same address and database: the next heartbeat reports the
    // drops and the batches kept arrive.
    let cfg2 = ServerConfig {
        listen: addr.to_string(),
        ..(*server_cfg).clone()
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
