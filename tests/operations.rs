//! End-to-end: `sentinel run` as a service manager or a script drives it. Stop signals work
//! from the first instant (also from a parent that left SIGINT ignored), SIGHUP reloads the
//! configuration into the running engine, a broken file keeps the running one and says why;
//! `sentinel config default` and `config check` on real files.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use sentinel_e2e::*;
use serde_json::Value;

/// Longest any step may take before the test calls it hung.
const DEADLINE: Duration = Duration::from_secs(60);

/// A running agent with its stdout and stderr as channels of lines.
struct Agent {
    child: Child,
    out: Receiver<String>,
    err: Receiver<String>,
    started: Instant,
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

/// One agent at a time: the tests assert clean exits (no losses), and several agents with
/// every kind on load each other.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts `sentinel run --json ARGS`; with `ignore_sigint`, as a non-interactive shell starts
/// a background job: SIGINT ignored.
fn start(args: &[&str], ignore_sigint: bool) -> Agent {
    require_root();
    let mut cmd = Command::new(sentinel_bin());
    cmd.args(["run", "--json"])
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if ignore_sigint {
        // SAFETY: signal(2) is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_IGN);
                Ok(())
            });
        }
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn sentinel");
    let out = lines_of(child.stdout.take().unwrap());
    let err = lines_of(child.stderr.take().unwrap());
    Agent {
        child,
        out,
        err,
        started,
    }
}

impl Agent {
    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// Waits until the agent catches `sig` (its /proc status says so): its handlers are in.
    fn wait_catching(&self, sig: i32) {
        let path = format!("/proc/{}/status", self.child.id());
        let t0 = Instant::now();
        loop {
            let status = std::fs::read_to_string(&path).unwrap_or_default();
            let caught = status
                .lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
                .unwrap_or(0);
            if caught & (1 << (sig - 1)) != 0 {
                return;
            }
            assert!(
                t0.elapsed() < DEADLINE,
                "signal {sig} never caught: {status}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The next JSON line satisfying `pred`.
    fn record(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let t0 = Instant::now();
        loop {
            let left = DEADLINE.saturating_sub(t0.elapsed());
            match self.out.recv_timeout(left) {
                Ok(l) => {
                    let v: Value = serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
                    if pred(&v) {
                        return v;
                    }
                }
                Err(e) => panic!("no {what} on stdout: {e}"),
            }
        }
    }

    /// The next stderr line containing `needle`.
    fn log(&self, needle: &str) -> String {
        let t0 = Instant::now();
        loop {
            let left = DEADLINE.saturating_sub(t0.elapsed());
            match self.err.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(e) => panic!("stderr never said {needle:?}: {e}"),
            }
        }
    }

    /// Waits for the exit within the deadline; returns (code, the remaining stdout records).
    fn exit(mut self) -> (i32, Vec<Value>, Duration) {
        let t0 = Instant::now();
        let mut rest = Vec::new();
        loop {
            match self.out.recv_timeout(Duration::from_millis(200)) {
                Ok(l) => rest.push(serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}"))),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    if t0.elapsed() > DEADLINE {
                        let _ = self.child.kill();
                        panic!("the agent did not stop within {DEADLINE:?}");
                    }
                }
            }
        }
        let status = self.child.wait().expect("wait");
        let code = status
            .code()
            .unwrap_or_else(|| panic!("ended by a signal: {status:?}"));
        (code, rest, self.started.elapsed())
    }
}

/// Writes `DIR/sentinel.toml`: the agent store in DIR, then `extra`.
fn config_in(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let cfg = dir.join("sentinel.toml");
    let text = format!(
        "store = {:?}\n{extra}",
        dir.join("agent.db").to_str().unwrap()
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn stops_cleanly_on_sigint(ignore_sigint: bool, after_status: bool) {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_in(dir.path(), "");
    let agent = start(&["--config", cfg.to_str().unwrap()], ignore_sigint);
    agent.wait_catching(libc::SIGINT);
    let status_seen = if after_status {
        let st = agent.record("the status record", |v| v["type"] == "status");
        assert_eq!(st["agent_version"], env!("CARGO_PKG_VERSION"), "{st}");
        true
    } else {
        false
    };
    let asked = agent.started.elapsed();
    agent.signal(libc::SIGINT);
    let (code, rest, took) = agent.exit();
    let summary = rest
        .iter()
        .rev()
        .find(|v| v["type"] == "summary")
        .unwrap_or_else(|| panic!("no summary record: {rest:?}"));
    assert!(summary["agent_version"].is_string(), "{summary}");
    assert_eq!(code, 0, "exit code (losses: {})", summary["kernel_lost"]);
    eprintln!("SIGINT at {asked:?} (status seen before: {status_seen}), stopped at {took:?}");
}

#[test]
fn sigint_right_after_spawn_stops_cleanly_with_the_summary() {
    stops_cleanly_on_sigint(false, false);
}

/// The bug this guards: SIGINT from a script's background job (inherited as ignored) after
/// the status line was ignored, and the agent ran on.
#[test]
fn sigint_from_a_parent_that_ignores_it_still_stops_the_agent() {
    stops_cleanly_on_sigint(true, false);
    stops_cleanly_on_sigint(true, true);
}

/// A copy of the workload helper under /tmp, made before the agent starts (so no provenance
/// changes its weight), removed on drop.
struct TmpBinary(std::path::PathBuf);

impl TmpBinary {
    fn new(tag: &str) -> TmpBinary {
        let p = std::path::PathBuf::from(format!(
            "/tmp/sentinel-e2e-ops-{}-{tag}",
            std::process::id()
        ));
        std::fs::copy(workload_bin(), &p).expect("copy to /tmp");
        TmpBinary(p)
    }

    fn run(&self) {
        assert!(
            Command::new(&self.0)
                .args(["exit", "0"])
                .status()
                .unwrap()
                .success()
        );
    }

    /// The weight of the exec_from_writable factor of this binary's anomaly.
    fn weight(&self, agent: &Agent) -> u64 {
        let mine = format!("executed {} from", self.0.display());
        let a = agent.record("the anomaly", |v| {
            v["type"] == "anomaly"
                && v["factors"].as_array().is_some_and(|fs| {
                    fs.iter().any(|f| {
                        f["detection"] == "exec_from_writable"
                            && f["reason"].as_str().unwrap_or("").contains(&mine)
                    })
                })
        });
        assert_eq!(a["agent_version"], env!("CARGO_PKG_VERSION"), "{a}");
        let f = a["factors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["detection"] == "exec_from_writable")
            .unwrap();
        f["weight"].as_u64().unwrap()
    }
}

#[test]
fn sighup_reloads_a_weight_and_a_broken_file_keeps_the_running_configuration() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        TmpBinary::new("a"),
        TmpBinary::new("b"),
        TmpBinary::new("c"),
    );
    let settings =
        |w: u8| format!("[log]\nlevel = \"info\"\n[detect.weights]\nexec_from_writable = {w}\n");
    let cfg = config_in(dir.path(), &settings(33));
    let agent = start(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--kinds",
            "exec,fork,exit",
        ],
        false,
    );
    agent.record("the status record", |v| v["type"] == "status");
    a.run();
    assert_eq!(a.weight(&agent), 33);

    config_in(dir.path(), &settings(7));
    agent.signal(libc::SIGHUP);
    agent.log("configuration reloaded");
    b.run();
    assert_eq!(
        b.weight(&agent),
        7,
        "the next anomaly is scored with the new weight"
    );

    std::fs::write(&cfg, "store = \"/x\"\n[detect\nexec_from_writable = 90\n").unwrap();
    agent.signal(libc::SIGHUP);
    let why = agent.log("configuration not reloaded");
    assert!(
        why.contains("line 2"),
        "says where the file is wrong: {why}"
    );
    c.run();
    assert_eq!(c.weight(&agent), 7, "the running configuration stays");

    agent.signal(libc::SIGTERM);
    let (code, rest, _) = agent.exit();
    assert!(code == 0 || code == 1, "exit {code}");
    assert!(rest.iter().any(|v| v["type"] == "summary"), "{rest:?}");
}

#[test]
fn config_default_round_trips_and_check_points_at_each_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = sentinel(&["config", "default"]);
    assert_eq!(d.code, 0, "{}", d.stderr);
    let file = dir.path().join("default.toml");
    std::fs::write(&file, &d.stdout).unwrap();
    let ok = sentinel(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    // The global --config names the file when check has none.
    let ok = sentinel(&["--config", file.to_str().unwrap(), "config", "check"]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "store = \"/x\"\nbogus = 1\n[detect]\nwindow_secs = 1\n[detect.weights]\nptrace = 300\n",
    )
    .unwrap();
    let r = sentinel(&["config", "check", bad.to_str().unwrap()]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let at = |l: usize, c: usize| format!("{}:{l}:{c}: ", bad.display());
    for (l, c) in [(2, 1), (4, 1), (6, 10)] {
        assert!(
            r.stderr.contains(&at(l, c)),
            "no error at {l}:{c}:\n{}",
            r.stderr
        );
    }
    assert!(r.stderr.contains("3 errors"), "{}", r.stderr);
    // Any other command refuses the file too, exit 3.
    let r = sentinel(&["--config", bad.to_str().unwrap(), "baseline", "show"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
}

/// The configuration's `store` is where every store command looks when no --store is given
/// (`analyze --anomaly` used to look in the system path whatever the file said).
#[test]
fn store_commands_honour_the_configured_store() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_in(dir.path(), "");
    let a: sentinel::model::Anomaly = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/data/explain/anomaly.json"
        ))
        .unwrap(),
    )
    .unwrap();
    sentinel::store::Store::open(&dir.path().join("agent.db"))
        .unwrap()
        .put_anomaly(&a)
        .unwrap();
    let c = cfg.to_str().unwrap();
    let r = sentinel(&[
        "--config",
        c,
        "analyze",
        "--anomaly",
        &a.id,
        "--provider",
        "local",
        "--json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let user = a.principal.user.clone().unwrap();
    let summary = r.json()["summary"].as_str().unwrap_or("").to_string();
    assert!(
        summary.contains(&user),
        "explains the stored anomaly: {summary}"
    );
    let r = sentinel(&["--config", c, "feedback", "--list"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = sentinel(&["--config", c, "baseline", "show"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // --store (and the old --db) still choose another one.
    let other = dir.path().join("other.db");
    for flag in ["--store", "--db"] {
        let r = sentinel(&[
            "--config",
            c,
            "analyze",
            "--anomaly",
            &a.id,
            "--provider",
            "local",
            flag,
            other.to_str().unwrap(),
        ]);
        assert_eq!(r.code, 3, "{flag}: {}", r.stderr);
        assert!(r.stderr.contains("no store at"), "{flag}: {}", r.stderr);
    }
}
