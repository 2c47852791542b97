//! End-to-end: `sentinel run` with `[[output]]` entries. A real rsyslog (Debian's, started
//! here with a private configuration: its own ports on 127.0.0.1 and its own socket instead
//! of /dev/log) receives a real anomaly over the local socket, UDP and TCP with the right
//! framing, facility and severity; a file output rotates by size keeping N files of the
//! feed's very bytes and is reopened on SIGHUP (logrotate's rename-then-HUP); the store's
//! retention removes old anomalies at start.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use sentinel_e2e::*;
use serde_json::Value;

/// Longest any step may take before the test calls it hung.
const DEADLINE: Duration = Duration::from_secs(60);

/// One agent at a time: each loads every probe, and they would load each other.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
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

fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < DEADLINE, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A free port on 127.0.0.1 for `kind` ("udp" or "tcp").
fn free_port(kind: &str) -> u16 {
    match kind {
        "udp" => std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .unwrap()
            .port(),
        _ => std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .unwrap()
            .port(),
    }
}

/// One message as rsyslog parsed it (the test's template writes these fields, tab separated).
#[derive(Debug, Clone)]
struct Received {
    input: String,
    facility: u8,
    severity: u8,
    app: String,
    msgid: String,
    sd: String,
    msg: String,
}

/// A private rsyslogd writing every message it gets to a file, ended on drop.
struct Rsyslog {
    child: Child,
    dir: tempfile::TempDir,
    udp: u16,
    tcp: u16,
}

impl Rsyslog {
    fn start() -> Rsyslog {
        require_root();
        let bin = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| {
                panic!(
                    "rsyslogd is not installed: these tests need Debian's rsyslog \
                     (tests/setup/syslog.sh installs it; `cargo xtask test` runs it)"
                )
            });
        let dir = tempfile::tempdir().unwrap();
        let (udp, tcp) = (free_port("udp"), free_port("tcp"));
        let d = dir.path().display();
        let conf = format!(
            r#"global(workDirectory="{d}" maxMessageSize="64k")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{d}/log.sock" UseSpecialParser="off" ParseHostname="on")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{udp}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
template(name="fields" type="list") {{
  property(name="inputname") constant(value="\t")
  property(name="syslogfacility") constant(value="\t")
  property(name="syslogseverity") constant(value="\t")
  property(name="app-name") constant(value="\t")
  property(name="msgid") constant(value="\t")
  property(name="structured-data") constant(value="\t")
  property(name="msg" droplastlf="on") constant(value="\n")
}}
*.* action(type="omfile" file="{d}/received.log" template="fields")
"#
        );
        std::fs::write(dir.path().join("rsyslog.conf"), conf).unwrap();
        let log = std::fs::File::create(dir.path().join("rsyslogd.out")).unwrap();
        let child = Command::new(bin)
            .arg("-n")
            .arg("-f")
            .arg(dir.path().join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting rsyslogd");
        let mut r = Rsyslog {
            child,
            dir,
            udp,
            tcp,
        };
        r.await_ready();
        r
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("log.sock")
    }

    /// Ready when a probe sent over each transport has come out in the file.
    fn await_ready(&mut self) {
        for input in ["imuxsock", "imudp", "imtcp"] {
            let probe = format!("probe-{input}");
            let msg = format!("<14>1 2026-01-01T00:00:00Z h probe - - - {probe}");
            until(&format!("rsyslogd ready on {input}"), || {
                if let Ok(Some(st)) = self.child.try_wait() {
                    panic!(
                        "rsyslogd exited ({st}):\n{}",
                        std::fs::read_to_string(self.dir.path().join("rsyslogd.out"))
                            .unwrap_or_default()
                    );
                }
                let _ = match input {
                    "imuxsock" => std::os::unix::net::UnixDatagram::unbound()
                        .and_then(|s| s.send_to(msg.as_bytes(), self.socket()))
                        .map(drop),
                    "imudp" => std::net::UdpSocket::bind("127.0.0.1:0")
                        .and_then(|s| s.send_to(msg.as_bytes(), ("127.0.0.1", self.udp)))
                        .map(drop),
                    _ => std::net::TcpStream::connect(("127.0.0.1", self.tcp)).and_then(|mut s| {
                        std::io::Write::write_all(&mut s, format!("{} {msg}", msg.len()).as_bytes())
                    }),
                };
                std::thread::sleep(Duration::from_millis(50));
                self.received()
                    .iter()
                    .any(|r| r.input == input && r.msg == probe)
                    .then_some(())
            });
        }
    }

    fn received(&self) -> Vec<Received> {
        let text =
            std::fs::read_to_string(self.dir.path().join("received.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.splitn(7, '\t').collect();
                let [input, fac, sev, app, msgid, sd, msg] = f.as_slice() else {
                    return None;
                };
                Some(Received {
                    input: input.to_string(),
                    facility: fac.parse().ok()?,
                    severity: sev.parse().ok()?,
                    app: app.to_string(),
                    msgid: msgid.to_string(),
                    sd: sd.to_string(),
                    msg: msg.to_string(),
                })
            })
            .collect()
    }

    fn wait(&self, what: &str, pred: impl Fn(&Received) -> bool) -> Received {
        until(&format!("rsyslog received {what}"), || {
            self.received().into_iter().find(|r| pred(r))
        })
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running agent: its stdout lines as they came (all kept), its stderr as a channel.
struct Agent {
    child: Child,
    out: Receiver<String>,
    err: Receiver<String>,
    seen: Vec<String>,
}

fn start_agent(config: &Path, extra: &[&str]) -> Agent {
    require_root();
    let mut child = Command::new(sentinel_bin())
        .args(["run", "--json", "--config", config.to_str().unwrap()])
        .args(["--kinds", "exec,fork,exit"])
        .args(extra)
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sentinel");
    let out = lines_of(child.stdout.take().unwrap());
    let err = lines_of(child.stderr.take().unwrap());
    Agent {
        child,
        out,
        err,
        seen: Vec::new(),
    }
}

impl Agent {
    /// The next stdout record satisfying `pred`.
    fn record(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let t0 = Instant::now();
        loop {
            match self.out.recv_timeout(DEADLINE.saturating_sub(t0.elapsed())) {
                Ok(l) => {
                    let v: Value = serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
                    self.seen.push(l);
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
            match self.err.recv_timeout(DEADLINE.saturating_sub(t0.elapsed())) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(e) => panic!("stderr never said {needle:?}: {e}"),
            }
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// SIGTERM, then every stdout line of the run (in order) and the exit code.
    fn stop(mut self) -> (Vec<String>, i32) {
        self.signal(libc::SIGTERM);
        let t0 = Instant::now();
        loop {
            match self.out.recv_timeout(Duration::from_millis(200)) {
                Ok(l) => self.seen.push(l),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    if t0.elapsed() > DEADLINE {
                        let _ = self.child.kill();
                        panic!("the agent did not stop within {DEADLINE:?}");
                    }
                }
            }
        }
        let code = self.child.wait().unwrap().code().unwrap_or(-1);
        (self.seen, code)
    }
}

/// A copy of the workload helper under /tmp: running it is an exec from a writable place,
/// an anomaly (exec_from_writable). Made before the agent starts; removed on drop.
struct TmpBinary(PathBuf);

impl TmpBinary {
    fn new(tag: &str) -> TmpBinary {
        let p = PathBuf::from(format!(
            "/tmp/sentinel-e2e-out-{}-{tag}",
            std::process::id()
        ));
        std::fs::copy(workload_bin(), &p).expect("copy to /tmp");
        TmpBinary(p)
    }

    fn run(&self) {
        let st = Command::new(&self.0).args(["exit", "0"]).status().unwrap();
        assert!(st.success());
    }

    /// Its anomaly on the agent's stdout.
    fn anomaly(&self, agent: &mut Agent) -> Value {
        let mine = format!("executed {} from", self.0.display());
        agent.record("the anomaly", |v| {
            v["type"] == "anomaly"
                && v["factors"].as_array().is_some_and(|fs| {
                    fs.iter().any(|f| {
                        f["detection"] == "exec_from_writable"
                            && f["reason"].as_str().unwrap_or("").contains(&mine)
                    })
                })
        })
    }
}

impl Drop for TmpBinary {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A private directory (mode 0700) for the agent's store and files.
fn private_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

fn write_config(dir: &Path, body: &str) -> PathBuf {
    let cfg = dir.join("sentinel.toml");
    let store = dir.join("agent.db");
    std::fs::write(
        &cfg,
        format!("store = {:?}\n{body}", store.to_str().unwrap()),
    )
    .unwrap();
    cfg
}

fn severity_of(level: &str) -> u8 {
    match level {
        "critical" => 2,
        "high" => 3,
        "medium" => 4,
        "low" => 5,
        other => panic!("level {other}"),
    }
}

#[test]
fn an_anomaly_reaches_rsyslog_over_the_socket_udp_and_tcp_and_a_file_gets_the_feeds_bytes() {
    let _one = serial();
    let rsyslog = Rsyslog::start();
    let dir = private_dir();
    let file = dir.path().join("feed.jsonl");
    let cfg = write_config(
        dir.path(),
        &format!(
            "[status]\nsocket = \"{status}\"\n[detect.weights]\nexec_from_writable = 60\n\
             [[output]]\nkind = \"syslog\"\nname = \"local\"\naddress = \"{sock}\"\n\
             [[output]]\nkind = \"syslog\"\nname = \"udp\"\ntransport = \"udp\"\n\
             address = \"127.0.0.1:{udp}\"\nformat = \"structured\"\nfacility = \"auth\"\n\
             [[output]]\nkind = \"syslog\"\nname = \"tcp\"\ntransport = \"tcp\"\n\
             address = \"127.0.0.1:{tcp}\"\nrecords = [\"status\", \"anomaly\"]\n\
             app_name = \"sentinel-e2e\"\n\
             [[output]]\nkind = \"file\"\npath = \"{file}\"\n\
             records = [\"status\", \"anomaly\", \"incident\", \"summary\"]\n",
            sock = rsyslog.socket().display(),
            udp = rsyslog.udp,
            tcp = rsyslog.tcp,
            file = file.display(),
            status = dir.path().join("run/agent.sock").display(),
        ),
    );
    let bin = TmpBinary::new("syslog");
    let mut agent = start_agent(&cfg, &[]);
    agent.record("the status record", |v| v["type"] == "status");
    bin.run();
    let a = bin.anomaly(&mut agent);
    let id = a["id"].as_str().unwrap().to_string();
    let sev = severity_of(a["level"].as_str().unwrap());

    // The local socket: JSON as the message, facility local0 (16), the level's severity.
    let got = rsyslog.wait("the anomaly on the socket", |r| {
        r.input == "imuxsock" && r.msg.contains(&id)
    });
    assert_eq!((got.facility, got.severity), (16, sev), "{got:?}");
    assert_eq!(
        (got.app.as_str(), got.msgid.as_str(), got.sd.as_str()),
        ("sentinel", "anomaly", "-")
    );
    let v: Value = serde_json::from_str(&got.msg).unwrap_or_else(|e| panic!("{e}: {got:?}"));
    assert_eq!(v, a, "the message is the record");

    // UDP, structured: the key fields as structured data, a summary as the message.
    let got = rsyslog.wait("the anomaly over UDP", |r| {
        r.input == "imudp" && r.sd.contains(&format!("id=\"{id}\""))
    });
    assert_eq!((got.facility, got.severity), (4, sev), "{got:?}");
    assert!(
        got.sd.starts_with("[sentinel@32473 type=\"anomaly\""),
        "{got:?}"
    );
    assert!(
        got.sd
            .contains(&format!("level=\"{}\"", a["level"].as_str().unwrap())),
        "{got:?}"
    );
    assert!(got.msg.contains(&bin.0.display().to_string()), "{got:?}");

    // TCP, octet counted: two messages sent back to back without a newline between them
    // come out as two whole records only if rsyslog read the counts.
    let status = rsyslog.wait("the status over TCP", |r| {
        r.input == "imtcp" && r.msgid == "status"
    });
    assert_eq!(
        (status.facility, status.severity, status.app.as_str()),
        (16, 6, "sentinel-e2e")
    );
    let v: Value = serde_json::from_str(&status.msg).unwrap_or_else(|e| panic!("{e}: {status:?}"));
    assert_eq!(v["type"], "status");
    let got = rsyslog.wait("the anomaly over TCP", |r| {
        r.input == "imtcp" && r.msg.contains(&id)
    });
    assert_eq!(got.severity, sev);
    assert_eq!(serde_json::from_str::<Value>(&got.msg).unwrap(), a);

    // `sentinel status` has each output's counters, and the store's retention.
    let socket = dir.path().join("run/agent.sock");
    let health = until("the outputs' counters in the status", || {
        let r = sentinel(&["status", "--json", "--socket", socket.to_str().unwrap()]);
        let v: Value = serde_json::from_str(&r.stdout).ok()?;
        let outs = v["outputs"].as_array()?;
        (outs.len() == 4 && outs.iter().all(|o| o["written"].as_u64() >= Some(1))).then_some(v)
    });
    let names: Vec<&str> = health["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["local", "udp", "tcp", "file-3"]);
    for o in health["outputs"].as_array().unwrap() {
        assert_eq!(
            (o["dropped"].as_u64(), o["errors"].as_u64()),
            (Some(0), Some(0)),
            "{o}"
        );
    }
    assert!(
        health["retention"]["passes"].as_u64() >= Some(1),
        "{health}"
    );

    let (lines, code) = agent.stop();
    assert!(code == 0 || code == 1, "exit {code}");
    // The file output: exactly the stdout lines of the types it takes, byte for byte.
    let wanted: Vec<&String> = lines
        .iter()
        .filter(|l| {
            let t = serde_json::from_str::<Value>(l).unwrap()["type"].clone();
            ["status", "anomaly", "incident", "summary"].contains(&t.as_str().unwrap_or(""))
        })
        .collect();
    let written = std::fs::read_to_string(&file).unwrap();
    let written: Vec<&str> = written.lines().collect();
    assert_eq!(written, wanted, "the file holds the feed's records");
    assert!(
        written
            .last()
            .is_some_and(|l| l.contains("\"type\":\"summary\""))
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn a_file_output_rotates_by_size_keeping_n_files_of_the_feeds_events() {
    let _one = serial();
    let dir = private_dir();
    let file = dir.path().join("events.jsonl");
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[output]]\nkind = \"file\"\npath = \"{}\"\nrecords = [\"event\"]\n\
             max_bytes = 4096\nkeep = 2\nfsync = \"record\"\n",
            file.display()
        ),
    );
    let mut agent = start_agent(&cfg, &["--events"]);
    agent.record("the status record", |v| v["type"] == "status");
    let numbered = |n: u32| PathBuf::from(format!("{}.{n}", file.display()));
    // Events until the file has rotated more than `keep` times (the third rotation
    // deletes the oldest file).
    until("three rotations", || {
        let _ = run_workload(&["exit", "0"]);
        let lines = std::fs::read_to_string(numbered(2)).unwrap_or_default();
        (numbered(2).exists()
            && !lines.is_empty()
            && std::fs::metadata(&file).is_ok_and(|m| m.len() > 0))
        .then_some(())
    });
    // One more round, so that .2 has been replaced once at least.
    let first_two = std::fs::read(numbered(2)).unwrap();
    until("another rotation", || {
        let _ = run_workload(&["exit", "0"]);
        (std::fs::read(numbered(2)).unwrap_or_default() != first_two).then_some(())
    });
    let (lines, _) = agent.stop();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("events.jsonl"))
        .collect();
    names.sort();
    assert_eq!(names, ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]);
    let mut kept = String::new();
    for p in [numbered(2), numbered(1), file.clone()] {
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.len() <= 4096,
            "{} has {} bytes",
            p.display(),
            text.len()
        );
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        kept.push_str(&text);
    }
    // What the files keep is the newest events of the feed, in order, byte for byte.
    let events: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("\"type\":\"event\""))
        .collect();
    let kept: Vec<&str> = kept.lines().collect();
    assert!(kept.len() > 10, "{} lines", kept.len());
    let tail: Vec<&str> = events[events.len() - kept.len()..]
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(kept, tail);
}

#[test]
fn sighup_reopens_a_file_output_renamed_away() {
    let _one = serial();
    let dir = private_dir();
    let file = dir.path().join("anomalies.jsonl");
    let cfg = write_config(
        dir.path(),
        &format!(
            "[log]\nlevel = \"info\"\n[[output]]\nkind = \"file\"\npath = \"{}\"\n\
             records = [\"anomaly\"]\n",
            file.display()
        ),
    );
    let (one, two) = (TmpBinary::new("hup1"), TmpBinary::new("hup2"));
    let mut agent = start_agent(&cfg, &[]);
    agent.record("the status record", |v| v["type"] == "status");
    one.run();
    let a1 = one.anomaly(&mut agent)["id"].as_str().unwrap().to_string();
    until("the first anomaly in the file", || {
        std::fs::read_to_string(&file)
            .unwrap_or_default()
            .contains(&a1)
            .then_some(())
    });
    // logrotate: rename, then HUP.
    let moved = dir.path().join("anomalies.jsonl.old");
    std::fs::rename(&file, &moved).unwrap();
    agent.signal(libc::SIGHUP);
    agent.log("configuration reloaded");
    two.run();
    let a2 = two.anomaly(&mut agent)["id"].as_str().unwrap().to_string();
    until("the second anomaly in a new file", || {
        std::fs::read_to_string(&file)
            .unwrap_or_default()
            .contains(&a2)
            .then_some(())
    });
    agent.stop();
    let old = std::fs::read_to_string(&moved).unwrap();
    let new = std::fs::read_to_string(&file).unwrap();
    assert!(old.contains(&a1) && !old.contains(&a2), "{old}");
    assert!(new.contains(&a2) && !new.contains(&a1), "{new}");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn an_output_file_in_a_directory_others_can_write_is_refused_at_start() {
    let dir = private_dir();
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[output]]\nkind = \"file\"\npath = \"{}/x.jsonl\"\n",
            open.display()
        ),
    );
    let r = sentinel(&["run", "--config", cfg.to_str().unwrap(), "--duration", "1s"]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("chmod go-w"), "{}", r.stderr);
    assert!(!open.join("x.jsonl").exists());
}

#[test]
fn retention_removes_old_anomalies_from_the_store_at_start() {
    let _one = serial();
    let dir = private_dir();
    let cfg = write_config(
        dir.path(),
        "[log]\nlevel = \"info\"\n[retention]\ndays = 30\n",
    );
    let mut a: sentinel::model::Anomaly = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/data/explain/anomaly.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let now = sentinel::store::now_ns();
    let day = 86_400 * 1_000_000_000i64;
    {
        let store = sentinel::store::Store::open(&dir.path().join("agent.db")).unwrap();
        for (id, age) in [("old", 40 * day), ("recent", day)] {
            a.id = id.into();
            a.time_ns = now - age;
            store.put_anomaly(&a).unwrap();
        }
    }
    let agent = start_agent(&cfg, &[]);
    let said = agent.log("store retention removed");
    assert!(said.contains("removed 1 anomalies"), "{said}");
    agent.stop();
    let store = sentinel::store::Store::open(&dir.path().join("agent.db")).unwrap();
    assert!(store.get_anomaly("old").unwrap().is_none());
    assert!(store.get_anomaly("recent").unwrap().is_some());
}
