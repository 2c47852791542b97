//! Precision, the provenance side: executions from writable places weighed by who wrote the
//! file and by the baseline. Also the event-stream builder the precision tests share: a
//! learned day, then the day after (baseline_tests.rs uses it too).

use std::collections::HashMap;
use std::path::Path;

use super::engine::{Engine, EngineOptions};
use super::model::{Anomaly, Factor, Level};
use super::replay::replay;
use super::testing::TestConfig;
use crate::event::Event;
use crate::proc::users::UserDb;
use crate::store::Store;

pub(super) const ALICE: u32 = 1000;
/// 2026-06-18 10:00 UTC: the learned day; the detection day is one day later (same hours).
pub(super) const T0: i64 = 1_781_776_800_000_000_000;
pub(super) const DAY: i64 = 86_400_000_000_000;

pub(super) fn users() -> UserDb {
    UserDb::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/detect/passwd"))
}

#[derive(Clone)]
pub(super) struct Proc {
    pub ppid: u32,
    pub uid: u32,
    pub euid: u32,
    pub comm: String,
}

/// Builds a stream of events for one principal (login uid `auid`).
pub(super) struct Script {
    pub evs: Vec<Event>,
    pub procs: HashMap<u32, Proc>,
    auid: Option<u32>,
    next_id: u64,
    t: i64,
}

impl Script {
    pub(super) fn new(start_ns: i64, auid: Option<u32>) -> Script {
        let mut procs = HashMap::new();
        procs.insert(
            500,
            Proc {
                ppid: 1,
                uid: 0,
                euid: 0,
                comm: "sshd".into(),
            },
        );
        Script {
            evs: Vec::new(),
            procs,
            auid,
            next_id: start_ns as u64 / 1_000_000 % 1_000_000_000,
            t: start_ns,
        }
    }

    pub(super) fn push(&mut self, pid: u32, body: serde_json::Value) {
        let p = self.procs.get(&pid).cloned().expect("scripted process");
        self.t += 10_000_000;
        self.next_id += 1;
        let mut v = serde_json::json!({
            "id": self.next_id, "time_ns": self.t, "pid": pid, "tid": pid, "ppid": p.ppid,
            "uid": p.uid, "gid": p.uid, "euid": p.euid, "auid": self.auid, "session": 7,
            "cgroup_id": 1, "comm": p.comm, "ret": 0,
        });
        if let (Some(o), Some(b)) = (v.as_object_mut(), body.as_object()) {
            o.extend(b.clone());
        }
        self.evs
            .push(serde_json::from_value(v).expect("scripted event"));
    }

    /// `parent` forks `pid`, which runs `exe` as (uid, euid).
    pub(super) fn spawn(
        &mut self,
        parent: u32,
        pid: u32,
        exe: &str,
        argv: &[&str],
        ids: (u32, u32),
    ) {
        self.push(
            parent,
            serde_json::json!({"kind": "fork", "child_pid": pid, "child_tid": pid}),
        );
        let comm: String = crate::proc::basename(exe).chars().take(15).collect();
        self.procs.insert(
            pid,
            Proc {
                ppid: parent,
                uid: ids.0,
                euid: ids.1,
                comm,
            },
        );
        self.push(
            pid,
            serde_json::json!({"kind": "exec", "syscall": "execve", "filename": exe,
                "argv": argv, "argv_truncated": false}),
        );
    }

    /// A login shell of the principal: sshd (pid 1100) > bash (pid 1101).
    pub(super) fn login(&mut self, uid: u32) {
        self.spawn(500, 1100, "/usr/sbin/sshd", &["sshd:"], (0, 0));
        self.spawn(1100, 1101, "/bin/bash", &["-bash"], (uid, uid));
    }

    pub(super) fn open(&mut self, pid: u32, path: &str, write: bool) {
        let flags = if write { 0o1101 } else { 0 };
        self.push(
            pid,
            serde_json::json!({"kind": "open", "syscall": "openat", "dfd": -100, "path": path,
                "flags": flags, "mode": 0o755}),
        );
    }

    pub(super) fn connect(&mut self, pid: u32, addr: &str, port: u16) {
        self.push(
            pid,
            serde_json::json!({"kind": "connect", "syscall": "connect", "fd": 3,
                "family": "inet", "addr": addr, "port": port}),
        );
    }

    pub(super) fn rename(&mut self, pid: u32, syscall: &str, old: &str, new: &str) {
        self.push(
            pid,
            serde_json::json!({"kind": "rename", "syscall": syscall, "old_path": old,
                "new_path": new, "flags": 0}),
        );
    }

    pub(super) fn link(&mut self, pid: u32, target: &str, link: &str) {
        self.push(
            pid,
            serde_json::json!({"kind": "link", "syscall": "linkat", "target": target,
                "link": link, "symbolic": false}),
        );
    }

    pub(super) fn exit(&mut self, pid: u32) {
        self.push(pid, serde_json::json!({"kind": "exit", "code": 0}));
        self.procs.remove(&pid);
    }
}

pub(super) fn engine(cfg: &TestConfig, store: Store, learn_all: bool) -> Engine {
    Engine::with_options(
        &cfg.detect,
        cfg.host_name(),
        store,
        EngineOptions {
            live: false,
            users: Some(users()),
            learn_all,
        },
    )
    .expect("engine")
}

pub(super) fn config() -> TestConfig {
    TestConfig::default()
}

/// A store with `script` learned and vouched for.
pub(super) fn learned(script: Script) -> Store {
    let mut e = engine(&config(), Store::memory().expect("store"), true);
    replay(&mut e, &script.evs);
    assert!(e.vouch().expect("vouch") > 0);
    e.into_store()
}

pub(super) fn run(store: Store, script: &Script) -> Vec<Anomaly> {
    let mut e = engine(&config(), store, false);
    replay(&mut e, &script.evs)
}

pub(super) fn factors<'a>(a: &'a [Anomaly], detection: &str) -> Vec<&'a Factor> {
    a.iter()
        .flat_map(|x| &x.factors)
        .filter(|f| f.detection == detection)
        .collect()
}

/// Builds a C program the way make does: bash > make > cc > collect2 > ld writes `out`.
pub(super) fn c_build(s: &mut Script, base: u32, out: &str) {
    s.spawn(1101, base, "/usr/bin/make", &["make"], (ALICE, ALICE));
    s.spawn(
        base,
        base + 1,
        "/usr/bin/cc",
        &["cc", "-o", out],
        (ALICE, ALICE),
    );
    s.spawn(
        base + 1,
        base + 2,
        "/usr/lib/gcc/x86_64-linux-gnu/13/collect2",
        &["collect2"],
        (ALICE, ALICE),
    );
    s.spawn(
        base + 2,
        base + 3,
        "/usr/bin/ld",
        &["ld", "-o", out],
        (ALICE, ALICE),
    );
    s.open(base + 3, out, true);
    for p in [base + 3, base + 2, base + 1, base] {
        s.exit(p);
    }
}

/// A learned day of C development under /tmp.
pub(super) fn dev_day() -> Script {
    let mut s = Script::new(T0, Some(ALICE));
    s.login(ALICE);
    c_build(&mut s, 1200, "/tmp/build-a/main");
    s.spawn(1101, 1210, "/tmp/build-a/main", &["./main"], (ALICE, ALICE));
    s.exit(1210);
    for (i, cmd) in [
        &["id"][..],
        &["uname", "-a"],
        &["ps", "aux"],
        &["cat", "/etc/os-release"],
    ]
    .iter()
    .enumerate()
    {
        let exe = format!("/usr/bin/{}", cmd[0]);
        s.spawn(1101, 1300 + i as u32, &exe, cmd, (ALICE, ALICE));
        s.exit(1300 + i as u32);
    }
    s
}

#[test]
fn a_program_built_by_the_known_build_lineage_runs_without_a_finding() {
    let store = learned(dev_day());
    let mut s = Script::new(T0 + DAY, Some(ALICE));
    s.login(ALICE);
    // Another project, another output: the same build lineage wrote it.
    c_build(&mut s, 2200, "/tmp/other-proj/app");
    for i in 0..2 {
        s.spawn(
            1101,
            2210 + i,
            "/tmp/other-proj/app",
            &["./app"],
            (ALICE, ALICE),
        );
        s.exit(2210 + i);
    }
    let a = run(store, &s);
    assert!(factors(&a, "exec_from_writable").is_empty(), "{a:#?}");
    assert!(a.iter().all(|x| x.level == Level::Low), "{a:#?}");
}

#[test]
fn cargo_hard_links_carry_the_linkers_provenance() {
    let store = learned(dev_day());
    let mut s = Script::new(T0 + DAY, Some(ALICE));
    s.login(ALICE);
    let deps = "/tmp/hello/target/debug/deps/hello-3f2a1b9c";
    c_build(&mut s, 2200, deps);
    s.spawn(
        1101,
        2300,
        "/home/alice/.cargo/bin/cargo",
        &["cargo"],
        (ALICE, ALICE),
    );
    s.link(2300, deps, "/tmp/hello/target/debug/hello");
    s.exit(2300);
    s.spawn(
        1101,
        2310,
        "/tmp/hello/target/debug/hello",
        &["hello"],
        (ALICE, ALICE),
    );
    let a = run(store, &s);
    assert!(factors(&a, "exec_from_writable").is_empty(), "{a:#?}");
    // A link is not a rename: no log tampering, no persistence.
    assert!(a.iter().all(|x| x.level == Level::Low), "{a:#?}");
}

#[test]
fn a_build_in_a_lineage_never_seen_counts_half() {
    let store = learned(dev_day());
    let mut s = Script::new(T0 + DAY, Some(ALICE));
    s.login(ALICE);
    // cc straight from a python script: not the learned make > cc > collect2 > ld.
    s.spawn(
        1101,
        2400,
        "/usr/bin/python3",
        &["python3", "x.py"],
        (ALICE, ALICE),
    );
    s.spawn(2400, 2401, "/usr/bin/ld", &["ld"], (ALICE, ALICE));
    s.open(2401, "/tmp/x/exploit", true);
    s.exit(2401);
    s.spawn(1101, 2410, "/tmp/x/exploit", &["./exploit"], (ALICE, ALICE));
    let a = run(store, &s);
    let f = factors(&a, "exec_from_writable");
    assert_eq!(f.len(), 1, "{a:#?}");
    assert_eq!(f[0].weight, 20);
    assert!(
        f[0].reason.contains("built by /usr/bin/ld")
            && f[0]
                .reason
                .contains("python3>ld) not seen in this user's baseline"),
        "{}",
        f[0].reason
    );
}

#[test]
fn a_downloaded_file_that_is_run_weighs_more_and_names_the_downloader() {
    let store = learned(dev_day());
    let mut s = Script::new(T0 + DAY, Some(ALICE));
    s.login(ALICE);
    s.spawn(
        1101,
        2500,
        "/usr/bin/python3",
        &["python3", "-c", "..."],
        (ALICE, ALICE),
    );
    s.connect(2500, "127.0.0.1", 8000);
    s.open(2500, "/tmp/dl/payload.part", true);
    s.rename(2500, "rename", "/tmp/dl/payload.part", "/tmp/dl/payload");
    s.exit(2500);
    s.spawn(1101, 2510, "/tmp/dl/payload", &["payload"], (ALICE, ALICE));
    let a = run(store, &s);
    let f = factors(&a, "exec_from_writable");
    assert_eq!(f.len(), 1, "{a:#?}");
    assert_eq!(f[0].weight, 60);
    assert!(
        f[0].reason.contains(
            "executed /tmp/dl/payload from /tmp/, a world-writable place: downloaded by /usr/bin/python3 (connected to 127.0.0.1:8000)"
        ),
        "{}",
        f[0].reason
    );
    assert!(a.iter().any(|x| x.level >= Level::High), "{a:#?}");
}

#[test]
fn a_file_another_user_wrote_keeps_the_full_weight() {
    let store = learned(dev_day());
    let mut s = Script::new(T0 + DAY, Some(ALICE));
    s.login(ALICE);
    // Root's cp (another principal: no login uid) put it there.
    let mut root = Script::new(T0 + DAY, None);
    root.spawn(500, 2600, "/usr/bin/cp", &["cp"], (0, 0));
    root.open(2600, "/tmp/drop/kworker", true);
    s.evs.extend(root.evs);
    s.spawn(
        1101,
        2610,
        "/tmp/drop/kworker",
        &["kworker"],
        (ALICE, ALICE),
    );
    let a = run(store, &s);
    let f = factors(&a, "exec_from_writable");
    assert_eq!(f.len(), 1, "{a:#?}");
    assert_eq!(f[0].weight, 40);
    assert!(
        f[0].reason.contains("written by /usr/bin/cp (uid 0)")
            && f[0].reason.contains("for another user (root)"),
        "{}",
        f[0].reason
    );
}

#[test]
fn a_writable_exec_the_baseline_knows_by_shape_is_not_reported() {
    let mut day = Script::new(T0, Some(ALICE));
    day.login(ALICE);
    day.spawn(
        1101,
        1200,
        "/tmp/ci-4711/run.sh",
        &["run.sh"],
        (ALICE, ALICE),
    );
    let store = learned(day);
    let mut s = Script::new(T0 + DAY, Some(ALICE));
    s.login(ALICE);
    s.spawn(
        1101,
        2200,
        "/tmp/ci-4712/run.sh",
        &["run.sh"],
        (ALICE, ALICE),
    );
    s.spawn(
        1101,
        2201,
        "/tmp/ci-4713/evil.sh",
        &["evil.sh"],
        (ALICE, ALICE),
    );
    let a = run(store, &s);
    let f = factors(&a, "exec_from_writable");
    assert_eq!(f.len(), 1, "{a:#?}");
    assert!(
        f[0].reason.contains("/tmp/ci-4713/evil.sh"),
        "{}",
        f[0].reason
    );
}

#[test]
fn provenance_evictions_are_counted() {
    let mut cfg = config();
    cfg.detect.provenance_cap = 4;
    let mut e = engine(&cfg, Store::memory().expect("store"), false);
    let mut s = Script::new(T0, Some(ALICE));
    s.login(ALICE);
    s.spawn(1101, 1200, "/usr/bin/cc", &["cc"], (ALICE, ALICE));
    for i in 0..10 {
        s.open(1200, &format!("/tmp/o/{i}.o"), true);
    }
    replay(&mut e, &s.evs);
    let st = e.stats();
    assert_eq!((st.provenance_files, st.provenance_evicted), (4, 6));
}
