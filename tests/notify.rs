//! End-to-end: `sentinel run` and `sentinel serve` as `Type=notify` systemd services see them.
//! The test plays the service manager: it owns the unix datagram socket named by NOTIFY_SOCKET
//! and asserts READY=1 comes once the hooks are attached (resp. the listener is bound),
//! WATCHDOG=1 pings come at half of WATCHDOG_USEC, none without it, and STOPPING=1 on SIGTERM.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use sentinel_e2e::*;

/// Longest any step may take before the test calls it hung.
const DEADLINE: Duration = Duration::from_secs(90);

/// The manager's side: a bound datagram socket in a directory of this test's own.
struct Manager {
    sock: UnixDatagram,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Manager {
    fn new() -> Manager {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("read timeout");
        Manager {
            sock,
            path,
            _dir: dir,
        }
    }

    /// Messages (one datagram each, its lines) until one has a line `want`, or the deadline.
    fn until(&self, want: &str, child: &mut Child) -> Vec<Vec<String>> {
        let start = Instant::now();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while start.elapsed() < DEADLINE {
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    let msg: Vec<String> = String::from_utf8_lossy(&buf[..n])
                        .lines()
                        .map(str::to_string)
                        .collect();
                    let done = msg.iter().any(|l| l == want);
                    got.push(msg);
                    if done {
                        return got;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if let Ok(Some(st)) = child.try_wait() {
                        panic!("sentinel exited ({st}) before sending {want}; got {got:?}");
                    }
                }
                Err(e) => panic!("reading the notify socket: {e}"),
            }
        }
        panic!("no {want} within {DEADLINE:?}; got {got:?}");
    }
}

/// The child is killed if the test fails half-way: no agent outlives its test.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Guard {
    fn term(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
    }

    fn wait(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(st) = self.0.try_wait().expect("wait") {
                return st;
            }
            assert!(start.elapsed() < DEADLINE, "sentinel did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
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

fn value_of<'a>(msgs: &'a [Vec<String>], key: &str) -> Vec<&'a str> {
    msgs.iter()
        .flatten()
        .filter_map(|l| l.strip_prefix(key))
        .collect()
}

/// One agent at a time (each loads every probe).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// `sentinel run --json` with NOTIFY_SOCKET (and WATCHDOG_USEC when given), a private store.
fn start_agent(
    m: &Manager,
    watchdog_usec: Option<u64>,
    dir: &std::path::Path,
) -> (Guard, Receiver<String>) {
    require_root();
    let config = dir.join("sentinel.toml");
    std::fs::write(
        &config,
        format!(
            "store = \"{}\"\n[audit]\nhmac_key_path = \"{}\"\n",
            dir.join("s.db").display(),
            dir.join("hmac.key").display()
        ),
    )
    .expect("config");
    let mut cmd = Command::new(sentinel_bin());
    cmd.arg("--config")
        .arg(&config)
        .args(["run", "--json", "--duration", "300s"])
        .env("NOTIFY_SOCKET", &m.path)
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(u) = watchdog_usec {
        cmd.env("WATCHDOG_USEC", u.to_string());
    }
    let mut child = cmd.spawn().expect("start sentinel run");
    let out = lines_of(child.stdout.take().expect("stdout"));
    (Guard(child), out)
}

/// The status record (first line of --json), waited for with the deadline.
fn status_record(out: &Receiver<String>) -> serde_json::Value {
    let line = out
        .recv_timeout(DEADLINE)
        .expect("no status record from sentinel run");
    let v: serde_json::Value = serde_json::from_str(&line).expect("status is JSON");
    assert_eq!(v["type"], "status", "{line}");
    v
}

#[test]
fn run_is_ready_after_its_hooks_attach_and_pings_the_watchdog() {
    let _one = serial();
    let m = Manager::new();
    let dir = tempfile::tempdir().expect("tempdir");
    // 400 ms: pings every 200 ms.
    let (mut agent, out) = start_agent(&m, Some(400_000), dir.path());
    let msgs = m.until("READY=1", &mut agent.0);
    // The status record (hooks attached) is written before readiness is sent.
    let status = status_record(&out);
    let attached = status["attached"].as_array().expect("attached").len();
    assert!(attached > 0, "{status}");
    let ready = msgs.last().expect("the READY message");
    let line = ready
        .iter()
        .find_map(|l| l.strip_prefix("STATUS="))
        .unwrap_or_else(|| panic!("READY=1 without STATUS=: {ready:?}"));
    assert!(
        line.starts_with(&format!("watching: {attached} hooks attached")),
        "STATUS={line} does not count the {attached} attached hooks"
    );
    // Pings follow, more than one (a single one could be the first tick alone).
    let start = Instant::now();
    let mut pings = 0;
    while pings < 3 {
        let msgs = m.until("WATCHDOG=1", &mut agent.0);
        pings += value_of(&msgs, "WATCHDOG=").len();
    }
    // Three pings at 200 ms take at least 400 ms (the first comes at once): not a burst.
    assert!(
        start.elapsed() >= Duration::from_millis(350),
        "3 pings in {:?}: not spaced at half the timeout",
        start.elapsed()
    );
    agent.term();
    m.until("STOPPING=1", &mut agent.0);
    let st = agent.wait();
    assert!(st.success(), "sentinel run ended with {st}");
}

#[test]
fn run_without_a_watchdog_sends_no_pings() {
    let _one = serial();
    let m = Manager::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut agent, out) = start_agent(&m, None, dir.path());
    let mut msgs = m.until("READY=1", &mut agent.0);
    status_record(&out);
    agent.term();
    msgs.extend(m.until("STOPPING=1", &mut agent.0));
    assert!(agent.wait().success());
    assert!(
        value_of(&msgs, "WATCHDOG=").is_empty(),
        "pings without WATCHDOG_USEC: {msgs:?}"
    );
}

#[test]
fn serve_is_ready_once_its_listener_is_bound_and_pings_the_watchdog() {
    require_root();
    let m = Manager::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("server.db");
    let child = Command::new(sentinel_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .env("NOTIFY_SOCKET", &m.path)
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sentinel serve");
    let mut server = Guard(child);
    let msgs = m.until("READY=1", &mut server.0);
    let status = value_of(&msgs, "STATUS=");
    let url = status
        .iter()
        .find_map(|s| s.strip_prefix("dashboard on "))
        .unwrap_or_else(|| panic!("no `dashboard on URL` status: {msgs:?}"));
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    // Ready means bound: a connection is accepted at once.
    std::net::TcpStream::connect(&addr)
        .unwrap_or_else(|e| panic!("READY=1 sent but {addr} refuses connections: {e}"));
    let mut pings = 0;
    while pings < 2 {
        pings += value_of(&m.until("WATCHDOG=1", &mut server.0), "WATCHDOG=").len();
    }
    server.term();
    m.until("STOPPING=1", &mut server.0);
    let st = server.wait();
    assert!(st.success(), "sentinel serve ended with {st}");
}
