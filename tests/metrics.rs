//! End-to-end: watching a running Sentinel. A real agent (real probes) serves its metrics on
//! `[metrics] listen`, scraped and validated with `promtool check metrics` (Debian's
//! prometheus package, installed by tests/setup/metrics.sh), its counters moving with real
//! execs; `sentinel status` asks it over its socket (text and JSON, exit 0 when healthy) and
//! is refused for a non-root uid, by the socket's mode and by the agent's peer check; with no
//! agent it says so (exit 2). The server's endpoint counts real ingest requests, their latency
//! and live streams.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use sentinel_e2e::*;

/// Longest any step may take before the test calls it hung.
const DEADLINE: Duration = Duration::from_secs(90);

/// `promtool check metrics` on `text`: lint errors fail the test with promtool's words. A
/// missing promtool fails too (never a silent skip).
fn promtool_check(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "promtool is missing: install Debian's prometheus package (bash tests/setup/metrics.sh; \
             cargo xtask test runs it)"
        ),
        Err(e) => panic!("starting promtool: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\n{}{}\n--- exposition ---\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of the sample `series` (name with its labels, exactly as exposed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape(url: &str) -> String {
    let r = reqwest::get(url)
        .await
        .expect("scraping the metrics endpoint");
    assert_eq!(r.status(), 200);
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    r.text().await.unwrap()
}

/// Scrapes until `pred` holds for the text (bounded by DEADLINE); returns that text.
async fn scrape_until(url: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let t = scrape(url).await;
        if pred(&t) {
            return t;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "metrics never showed {what}:\n{t}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn lines_of(r: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line of `rx` holding `needle`; returns the text after it.
fn after(rx: &Receiver<String>, needle: &str) -> String {
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < DEADLINE {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(l) => {
                if let Some(rest) = l.split(needle).nth(1) {
                    return rest.trim().to_string();
                }
                seen.push(l);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(e) => panic!("output ended before {needle:?} ({e}):\n{}", seen.join("\n")),
        }
    }
    panic!("no {needle:?} within {DEADLINE:?}:\n{}", seen.join("\n"));
}

/// A running agent, stopped (SIGTERM) when dropped.
struct Agent {
    child: Child,
    metrics: String,
    socket: PathBuf,
    config: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            stop_sentinel(&mut self.child);
        }
    }
}

/// `sentinel run --json` with its metrics on a free loopback port and its status socket in
/// `dir`; returns once both are up.
fn start_agent(dir: &Path) -> Agent {
    start_agent_with(dir, "", &[])
}

/// One agent at a time: the healthy test asserts no losses, and agents with every kind on load
/// each other on a small machine.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// `start_agent` with more configuration (`extra`, TOML sections) and environment.
fn start_agent_with(dir: &Path, extra: &str, env: &[(&str, &str)]) -> Agent {
    require_root();
    let socket = dir.join("run/agent.sock");
    let config = dir.join("sentinel.toml");
    std::fs::write(
        &config,
        format!(
            "store = {:?}\n[metrics]\nlisten = \"127.0.0.1:0\"\n[status]\nsocket = {:?}\n{extra}",
            dir.join("agent.db"),
            socket
        ),
    )
    .unwrap();
    let mut child = Command::new(sentinel_bin())
        .arg("--config")
        .arg(&config)
        .args(["run", "--json"])
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning sentinel run");
    let err = lines_of(child.stderr.take().unwrap());
    let metrics = after(&err, "metrics on ");
    // The socket comes up right after the endpoint.
    let start = Instant::now();
    while !socket.exists() {
        assert!(start.elapsed() < DEADLINE, "no status socket at {socket:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Keep draining stderr so the agent never blocks on a full pipe.
    std::thread::spawn(move || while err.recv().is_ok() {});
    Agent {
        child,
        metrics,
        socket,
        config,
    }
}

/// The agent binary where an unprivileged user can run it (the checkout may be under a
/// directory only root can enter).
fn binary_for_anyone(dir: &Path) -> PathBuf {
    let d = dir.join("bin");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let b = d.join("sentinel");
    std::fs::copy(sentinel_bin(), &b).unwrap();
    std::fs::set_permissions(&b, std::fs::Permissions::from_mode(0o755)).unwrap();
    b
}

/// `sentinel status ARGS` as uid/gid 65534 (nobody), through setpriv.
fn status_as_nobody(bin: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(bin)
        .arg("status")
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("setpriv (util-linux) runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_metrics_move_with_real_execs_and_status_answers_root_only() {
    let _one = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = start_agent(dir.path());
    let url = agent.metrics.clone();
    let exec = "sentinel_events_total{kind=\"exec\"}";

    // The first scrape is valid exposition, with the families of every part.
    let first = scrape(&url).await;
    promtool_check(&first);
    for family in [
        "sentinel_agent_info{",
        "sentinel_agent_uptime_seconds ",
        "sentinel_hook_attached{hook=",
        "sentinel_events_kernel_lost_total{kind=\"exec\"} ",
        "sentinel_events_channel_dropped_total{kind=\"open\"} ",
        "sentinel_ring_buffer_size_bytes ",
        "sentinel_pipeline_lag_seconds ",
        "sentinel_anomalies_total{level=\"critical\"} ",
        "sentinel_processes ",
        "sentinel_baselines{family=\"principal\",state=\"learning\"} ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
    ] {
        assert!(first.contains(family), "{family} missing:\n{first}");
    }
    for forbidden in ["pid=", "uid=", "user=", "path="] {
        assert!(!first.contains(forbidden), "{forbidden} label:\n{first}");
    }
    let before = sample(&first, exec).expect("an exec counter");

    // Real execs move the exec counter by at least as many.
    const EXECS: u32 = 25;
    for _ in 0..EXECS {
        assert!(Command::new("/bin/true").status().unwrap().success());
    }
    let moved = scrape_until(&url, "the execs counted", |t| {
        sample(t, exec).is_some_and(|v| v >= before + f64::from(EXECS))
    })
    .await;
    promtool_check(&moved);
    let analyzed = sample(&moved, "sentinel_pipeline_analyzed_events_total").unwrap();
    assert!(analyzed > 0.0, "the analysis stage counted events");

    // `sentinel status --json`: the health snapshot of this very agent.
    let cfg = agent.config.to_str().unwrap();
    let r = sentinel(&["--config", cfg, "status", "--json"]);
    let h = r.json();
    assert_eq!(h["pid"], agent.child.id(), "{}", r.stdout);
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
    assert!(h["uptime_secs"].as_f64().unwrap() > 0.0);
    assert!(!h["kernel_release"].as_str().unwrap().is_empty());
    assert_eq!(h["config_hash"].as_str().unwrap().len(), 64);
    assert!(!h["hooks"]["attached"].as_array().unwrap().is_empty());
    assert!(h["events"]["per_kind"]["exec"].as_u64().unwrap() >= before as u64 + u64::from(EXECS));
    assert!(h["events"]["rate_per_sec"].as_f64().unwrap() > 0.0);
    for key in [
        "kernel_lost",
        "channel_dropped",
        "lost_recent",
        "ring_buffer_bytes",
    ] {
        assert!(
            h["events"].get(key).is_some(),
            "events.{key} in {}",
            r.stdout
        );
    }
    assert!(
        h["detect"]["baselines"]["principal"].is_object(),
        "{}",
        r.stdout
    );
    assert!(h["anomalies"]["per_level"]["high"].is_u64());
    assert!(
        h["push"].is_null() && h["llm"].is_null(),
        "neither was started"
    );
    let problems = h["hooks"]["failed"].as_array().unwrap().len()
        + h["events"]["lost_recent"].as_u64().unwrap() as usize;
    assert_eq!(
        r.code, 0,
        "a healthy agent exits 0 ({problems} problems):\n{}",
        r.stdout
    );

    // The readable status names each concern.
    let r = sentinel(&["status", "--socket", agent.socket.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for line in [
        "status:    healthy",
        "hooks:",
        "events:",
        "losses:",
        "baselines:",
        "push:      off",
        "llm:       off",
    ] {
        assert!(r.stdout.contains(line), "{line} missing:\n{}", r.stdout);
    }

    // Another uid cannot even open the socket (0600 in a 0700 directory) ...
    let bin = binary_for_anyone(&dir.path().join("anyone"));
    let sock = agent.socket.to_str().unwrap().to_string();
    let sock = sock.as_str();
    let (code, err) = status_as_nobody(&bin, &["--socket", sock]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("permission denied"), "{err}");
    // ... and when a careless mode lets it connect, the agent checks who asks and refuses.
    std::fs::set_permissions(
        agent.socket.parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(&agent.socket, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, err) = status_as_nobody(&bin, &["--socket", sock]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("the agent refused: uid 65534 may not ask"),
        "{err}"
    );

    // A reload (SIGHUP) of a changed file shows as a new configuration hash.
    let hash = h["config_hash"].as_str().unwrap().to_string();
    let mut text = std::fs::read_to_string(&agent.config).unwrap();
    text.push_str("[detect.weights]\nexec_from_writable = 41\n");
    std::fs::write(&agent.config, text).unwrap();
    // SAFETY: kill(2) on our own child.
    assert_eq!(
        unsafe { libc::kill(agent.child.id() as i32, libc::SIGHUP) },
        0
    );
    let start = Instant::now();
    loop {
        let now = sentinel(&["status", "--json", "--socket", sock]).json();
        let got = now["config_hash"].as_str().unwrap();
        if got != hash {
            assert_eq!(got.len(), 64);
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the reload never showed in config_hash"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Stopped, the agent removes its socket: status then says no agent runs.
    let mut agent = agent;
    // 1 would mean events were lost (not this test's subject); anything else is a crash.
    let code = stop_sentinel(&mut agent.child);
    assert!(matches!(code, 0 | 1), "agent exit {code}");
    assert!(!agent.socket.exists(), "socket removed at stop");
    let r = sentinel(&["status", "--socket", sock]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("no agent is running"), "{}", r.stderr);
}

/// A loopback TCP port held bound but not listening: connecting to it is refused, and no
/// other process can take it while the returned descriptor lives.
fn refusing_port() -> (std::os::fd::OwnedFd, u16) {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a descriptor this function owns; the address structs are
    // zeroed and filled field by field.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let owned = std::os::fd::OwnedFd::from_raw_fd(fd);
        let mut a: libc::sockaddr_in = std::mem::zeroed();
        a.sin_family = libc::AF_INET as libc::sa_family_t;
        a.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(
            libc::bind(fd, &a as *const _ as *const libc::sockaddr, len),
            0
        );
        let mut got: libc::sockaddr_in = std::mem::zeroed();
        let mut glen = len;
        assert_eq!(
            libc::getsockname(fd, &mut got as *mut _ as *mut libc::sockaddr, &mut glen),
            0
        );
        (owned, u16::from_be(got.sin_port))
    }
}

/// An agent whose server refuses every connection: the anomaly of a binary run from /tmp is
/// spooled, every push attempt fails, and the agent reports itself degraded (exit 1) in
/// status and metrics.
#[tokio::test(flavor = "multi_thread")]
async fn failing_pushes_make_the_agent_degraded() {
    let _one = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let (_held, port) = refusing_port();
    let extra = format!(
        "[push]\nurl = \"http://127.0.0.1:{port}\"\nspool_dir = {:?}\n",
        dir.path().join("spool")
    );
    let agent = start_agent_with(
        dir.path(),
        &extra,
        &[("SENTINEL_API_KEY", "metrics-e2e-key")],
    );
    // A binary run from /tmp: an exec_from_writable anomaly, pushed (and failing).
    let tmp = PathBuf::from(format!(
        "/tmp/sentinel-e2e-metrics-{}-push",
        std::process::id()
    ));
    std::fs::copy("/bin/true", &tmp).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ran = Command::new(&tmp).status();
    let _ = std::fs::remove_file(&tmp);
    assert!(ran.unwrap().success());
    let sock = agent.socket.to_str().unwrap().to_string();
    let start = Instant::now();
    let r = loop {
        let r = sentinel(&["status", "--socket", &sock]);
        if r.code != 0 && r.stdout.contains("pushing is failing") {
            break r;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "status never said pushing fails (exit {}):\n{}{}",
            r.code,
            r.stdout,
            r.stderr
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(r.code, 1, "degraded exits 1:\n{}", r.stdout);
    assert!(r.stdout.contains("status:    degraded"), "{}", r.stdout);
    let h = sentinel(&["status", "--json", "--socket", &sock]).json();
    assert!(
        h["push"]["consecutive_failures"].as_u64().unwrap() >= 1,
        "{h}"
    );
    assert!(h["push"]["spool_files"].as_u64().unwrap() >= 1, "{h}");
    assert!(h["push"]["spool_bytes"].as_u64().unwrap() > 0, "{h}");
    assert!(
        h["anomalies"]["per_detection"]["exec_from_writable"]
            .as_u64()
            .unwrap()
            >= 1
    );
    let t = scrape(&agent.metrics).await;
    promtool_check(&t);
    assert_eq!(sample(&t, "sentinel_agent_healthy"), Some(0.0), "{t}");
    assert!(
        sample(&t, "sentinel_push_failures_total").unwrap() >= 1.0,
        "{t}"
    );
    assert!(
        sample(&t, "sentinel_push_spool_bytes").unwrap() > 0.0,
        "{t}"
    );
    assert!(
        sample(
            &t,
            "sentinel_anomaly_detections_total{detection=\"exec_from_writable\"}"
        )
        .unwrap()
            >= 1.0,
        "{t}"
    );
}

#[test]
fn status_without_an_agent_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let r = sentinel(&["status", "--socket", sock.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("no agent is running") && r.stderr.contains("sentinel run"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty());
    // A stale socket (its agent died) reads the same.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let r = sentinel(&["status", "--json", "--socket", sock.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn a_non_loopback_listen_address_is_refused_without_allow_remote() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("s.toml");
    std::fs::write(&cfg, "[metrics]\nlisten = \"0.0.0.0:9464\"\n").unwrap();
    let r = sentinel(&["config", "check", cfg.to_str().unwrap()]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("allow_remote"), "{all}");
    std::fs::write(
        &cfg,
        "[metrics]\nlisten = \"0.0.0.0:9464\"\nallow_remote = true\n",
    )
    .unwrap();
    let r = sentinel(&["config", "check", cfg.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn server_metrics_count_ingest_requests_latency_and_live_streams() {
    use sentinel::server::store::{AccountStore as _, KeyScope, NewApiKey, Role};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    // An ingest key and a read key, made in the database before the server opens it.
    let (ingest, read) = {
        let store = sentinel::server::sqlite::SqliteStore::open(&db).unwrap();
        let hash = sentinel::server::auth::hash_password("pw-metrics-test").unwrap();
        let uid = store
            .create_user("ops", &hash, Role::Admin, sentinel::store::now_ns())
            .await
            .unwrap();
        let mut keys = Vec::new();
        for (scope, host) in [(KeyScope::Ingest, Some("m1")), (KeyScope::Read, None)] {
            let (key, prefix, key_hash) = sentinel::server::auth::new_api_key().unwrap();
            store
                .create_api_key(&NewApiKey {
                    user_id: uid,
                    name: "k",
                    prefix: &prefix,
                    key_hash: &key_hash,
                    now_ns: sentinel::store::now_ns(),
                    expires_ns: None,
                    scope,
                    host,
                })
                .await
                .unwrap();
            keys.push(key);
        }
        (keys[0].clone(), keys[1].clone())
    };
    let cfg = dir.path().join("s.toml");
    std::fs::write(&cfg, "[metrics]\nserver_listen = \"127.0.0.1:0\"\n").unwrap();
    let served = dash::serve(&[
        "--config",
        cfg.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ])
    .unwrap_or_else(|(code, err)| panic!("serve exited {code}:\n{err}"));
    let start = Instant::now();
    let url = loop {
        if let Some(u) = served.stderr().split("metrics on ").nth(1) {
            break u.lines().next().unwrap().trim().to_string();
        }
        assert!(start.elapsed() < DEADLINE, "{}", served.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let first = scrape(&url).await;
    promtool_check(&first);
    let accepted = "sentinel_server_ingest_requests_total{outcome=\"accepted\"}";
    let refused = "sentinel_server_ingest_requests_total{outcome=\"refused\"}";
    assert_eq!(sample(&first, accepted), Some(0.0), "{first}");
    assert!(sample(&first, "sentinel_server_database_bytes").unwrap() > 0.0);
    assert!(first.contains("process_cpu_seconds_total "), "{first}");

    let c = reqwest::Client::new();
    let batch = serde_json::json!({
        "batch_id": "metrics-e2e-1",
        "host": "m1",
        "anomalies": [dash::anomaly("m1", "alice", "metrics-a1", sentinel::model::Level::High)],
    });
    let r = c
        .post(format!("{}/api/ingest", served.url))
        .bearer_auth(&ingest)
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let r = c
        .post(format!("{}/api/ingest", served.url))
        .bearer_auth("not-a-key")
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A live stream held open.
    let stream = c
        .get(format!("{}/api/live", served.url))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert!(stream.status().is_success());
    let t = scrape_until(&url, "a live stream", |t| {
        sample(t, "sentinel_server_live_streams") == Some(1.0)
    })
    .await;
    promtool_check(&t);
    assert_eq!(sample(&t, accepted), Some(1.0), "{t}");
    assert_eq!(sample(&t, refused), Some(1.0), "{t}");
    assert_eq!(
        sample(&t, "sentinel_server_ingest_duration_seconds_count"),
        Some(2.0),
        "{t}"
    );
    assert!(sample(&t, "sentinel_server_ingest_duration_seconds_sum").unwrap() > 0.0);
    drop(stream);
    scrape_until(&url, "the stream closed", |t| {
        sample(t, "sentinel_server_live_streams") == Some(0.0)
    })
    .await;
    assert_eq!(served.stop(), 0);
}
