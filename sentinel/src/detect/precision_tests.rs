//! Precision: each detection judged against the baseline (discovery, mass read, executions
//! from writable places weighed by file provenance), exemption lists that match full paths,
//! and operator exceptions. Event streams are scripted here: a learned day, then the day after.

use std::collections::HashMap;
use std::path::Path;

use super::engine::{Engine, EngineOptions};
use super::exceptions::{Exception, PrincipalRef};
use super::model::{Anomaly, Factor, Level};
use super::replay::replay;
use crate::config::Config;
use crate::event::Event;
use crate::proc::users::UserDb;
use crate::store::Store;

const ALICE: u32 = 1000;
/// 2026-06-18 10:00 UTC: the learned day; the detection day is one day later (same hours).
const T0: i64 = 1_781_776_800_000_000_000;
const DAY: i64 = 86_400_000_000_000;

fn users() -> UserDb {
    UserDb::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/detect/passwd"))
}

#[derive(Clone)]
struct Proc {
    ppid: u32,
    uid: u32,
    euid: u32,
    comm: String,
}

/// Builds a stream of events for one principal (login uid `auid`).
struct Script {
    evs: Vec<Event>,
    procs: HashMap<u32, Proc>,
    auid: Option<u32>,
    next_id: u64,
    t: i64,
}

impl Script {
    fn new(start_ns: i64, auid: Option<u32>) -> Script {
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

    fn push(&mut self, pid: u32, body: serde_json::Value) {
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
    fn spawn(&mut self, parent: u32, pid: u32, exe: &str, argv: &[&str], ids: (u32, u32)) {
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
    fn login(&mut self, uid: u32) {
        self.spawn(500, 1100, "/usr/sbin/sshd", &["sshd:"], (0, 0));
        self.spawn(1100, 1101, "/bin/bash", &["-bash"], (uid, uid));
    }

    fn open(&mut self, pid: u32, path: &str, write: bool) {
        let flags = if write { 0o1101 } else { 0 };
        self.push(
            pid,
            serde_json::json!({"kind": "open", "syscall": "openat", "dfd": -100, "path": path,
                "flags": flags, "mode": 0o755}),
        );
    }

    fn connect(&mut self, pid: u32, addr: &str, port: u16) {
        self.push(
            pid,
            serde_json::json!({"kind": "connect", "syscall": "connect", "fd": 3,
                "family": "inet", "addr": addr, "port": port}),
        );
    }

    fn rename(&mut self, pid: u32, syscall: &str, old: &str, new: &str) {
        self.push(
            pid,
            serde_json::json!({"kind": "rename", "syscall": syscall, "old_path": old,
                "new_path": new, "flags": 0}),
        );
    }

    fn link(&mut self, pid: u32, target: &str, link: &str) {
        self.push(
            pid,
            serde_json::json!({"kind": "link", "syscall": "linkat", "target": target,
                "link": link, "symbolic": false}),
        );
    }

    fn exit(&mut self, pid: u32) {
        self.push(pid, serde_json::json!({"kind": "exit", "code": 0}));
        self.procs.remove(&pid);
    }
}

fn engine(cfg: &Config, store: Store, learn_all: bool) -> Engine {
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

fn config() -> Config {
    Config {
        host: Some("testhost".into()),
        ..Config::default()
    }
}

/// A store with `script` learned and vouched for.
fn learned(script: Script) -> Store {
    let mut e = engine(&config(), Store::memory().expect("store"), true);
    replay(&mut e, &script.evs);
    assert!(e.vouch().expect("vouch") > 0);
    e.into_store()
}

fn run(store: Store, script: &Script) -> Vec<Anomaly> {
    let mut e = engine(&config(), store, false);
    replay(&mut e, &script.evs)
}

fn factors<'a>(a: &'a [Anomaly], detection: &str) -> Vec<&'a Factor> {
    a.iter()
        .flat_map(|x| &x.factors)
        .filter(|f| f.detection == detection)
        .collect()
}

/// Builds a C program the way make does: bash > make > cc > collect2 > ld writes `out`.
fn c_build(s: &mut Script, base: u32, out: &str) {
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
fn dev_day() -> Script {
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

#[test]
fn discovery_commands_of_the_baseline_do_not_make_a_burst() {
    let store = learned(dev_day());
    let mut s = Script::new(T0 + DAY, Some(ALICE));
    s.login(ALICE);
    let cmds: [&[&str]; 5] = [
        &["cat", "/etc/os-release"],
        &["uname", "-a"],
        &["ps", "aux"],
        &["id"],
        &["ss", "-tlnp"],
    ];
    for (i, c) in cmds.iter().enumerate() {
        s.spawn(
            1101,
            2300 + i as u32,
            &format!("/usr/bin/{}", c[0]),
            c,
            (ALICE, ALICE),
        );
    }
    let a = run(store, &s);
    assert!(factors(&a, "discovery_burst").is_empty(), "{a:#?}");

    // Novel ones still count: four never-seen entries make a burst.
    let store = learned(dev_day());
    let mut s = Script::new(T0 + DAY, Some(ALICE));
    s.login(ALICE);
    let cmds: [&[&str]; 6] = [
        &["id"],
        &["whoami"],
        &["hostname"],
        &["cat", "/etc/passwd"],
        &["uname", "-a"],
        &["find", "/", "-perm", "-4000"],
    ];
    for (i, c) in cmds.iter().enumerate() {
        s.spawn(
            1101,
            2300 + i as u32,
            &format!("/usr/bin/{}", c[0]),
            c,
            (ALICE, ALICE),
        );
    }
    let a = run(store, &s);
    let f = factors(&a, "discovery_burst");
    assert_eq!(f.len(), 1, "{a:#?}");
    assert!(
        f[0].reason.starts_with(
            "ran 4 discovery commands within 120 s: whoami, hostname, cat /etc/passwd, find -perm*"
        ) && f[0].reason.contains("none of them run by this user in"),
        "{}",
        f[0].reason
    );
}

/// Root working in /root with a login uid of a user reads its own home (the toolchain).
#[test]
fn reading_the_home_of_the_effective_user_is_not_a_mass_read() {
    let mut s = Script::new(T0, Some(ALICE));
    s.login(ALICE);
    s.spawn(1101, 1200, "/usr/bin/sudo", &["sudo", "-i"], (0, 0));
    s.spawn(
        1200,
        1201,
        "/root/.rustup/toolchains/stable/bin/rustc",
        &["rustc"],
        (0, 0),
    );
    for i in 0..30 {
        s.open(
            1201,
            &format!("/root/.rustup/toolchains/stable/lib/f{i}.rlib"),
            false,
        );
    }
    // The same reader in bob's home is another user's home.
    s.spawn(1200, 1202, "/usr/bin/python3", &["python3"], (0, 0));
    for i in 0..30 {
        s.open(1202, &format!("/home/bob/docs/f{i}.txt"), false);
    }
    let mut e = engine(&config(), Store::memory().expect("store"), false);
    let a = replay(&mut e, &s.evs);
    let f = factors(&a, "mass_read");
    assert_eq!(f.len(), 1, "{a:#?}");
    assert!(
        f[0].reason
            .starts_with("/usr/bin/python3 read 20 files in other users' home directories (bob)"),
        "{}",
        f[0].reason
    );
}

/// A backup job that read /home while learning is routine in its lineage, not elsewhere.
#[test]
fn other_home_reads_known_for_the_lineage_are_not_counted() {
    let backup = |t: i64, reader: &str| {
        let mut s = Script::new(t, None);
        s.procs.insert(
            600,
            Proc {
                ppid: 1,
                uid: 0,
                euid: 0,
                comm: "cron".into(),
            },
        );
        s.spawn(600, 1500, "/usr/sbin/cron", &["/usr/sbin/CRON"], (0, 0));
        s.spawn(1500, 1501, "/bin/sh", &["sh", "-c", "backup"], (0, 0));
        s.spawn(1501, 1502, reader, &["x", "/home"], (0, 0));
        for i in 0..30 {
            s.open(1502, &format!("/home/alice/work/f{i}"), false);
        }
        s
    };
    let store = learned(backup(T0, "/usr/bin/tar"));
    let a = run(store, &backup(T0 + DAY, "/usr/bin/tar"));
    assert!(factors(&a, "mass_read").is_empty(), "{a:#?}");
    let store = learned(backup(T0, "/usr/bin/tar"));
    let a = run(store, &backup(T0 + DAY, "/usr/bin/rsync"));
    assert_eq!(factors(&a, "mass_read").len(), 1, "{a:#?}");
}

#[test]
fn exemption_lists_do_not_trust_look_alikes_outside_system_directories() {
    let c = crate::profile::Categories::defaults();
    let l = &c.lists;
    assert!(c.exempt(&l.system_bpf, "/usr/sbin/bpftool", "bpftool"));
    assert!(!c.exempt(&l.system_bpf, "/tmp/bpftool", "bpftool"));
    assert!(c.exempt(&l.credential_readers, "/usr/bin/sudo", "sudo"));
    assert!(!c.exempt(&l.credential_readers, "/tmp/sudo", "sudo"));
    assert!(!c.exempt(&l.credential_readers, "/usr/bin/../../tmp/sudo", "sudo"));
    assert!(c.exempt(&l.package_managers, "/usr/bin/dpkg", "dpkg"));
    assert!(!c.exempt(&l.package_managers, "/home/x/dpkg", "dpkg"));
    assert!(!c.exempt(&l.log_maintainers, "/dev/shm/logrotate", "logrotate"));
    // Path entries: per-user toolchains are compilers wherever the home is.
    assert!(c.exempt(
        &l.compilers,
        "/home/alice/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld",
        "rust-lld"
    ));
    assert!(c.exempt(&l.compilers, "/root/.cargo/bin/cargo", "cargo"));
    assert!(!c.exempt(&l.compilers, "/tmp/.x/cc", "cc"));

    // In the engine: /tmp/bpftool loading a BPF program is reported.
    let mut s = Script::new(T0, Some(ALICE));
    s.login(ALICE);
    s.spawn(1101, 1200, "/tmp/bpftool", &["bpftool"], (0, 0));
    s.push(
        1200,
        serde_json::json!({"kind": "bpf", "syscall": "bpf", "cmd": 5, "cmd_name": "BPF_PROG_LOAD"}),
    );
    s.spawn(1101, 1201, "/usr/sbin/bpftool", &["bpftool"], (0, 0));
    s.push(
        1201,
        serde_json::json!({"kind": "bpf", "syscall": "bpf", "cmd": 5, "cmd_name": "BPF_PROG_LOAD"}),
    );
    let mut e = engine(&config(), Store::memory().expect("store"), false);
    let a = replay(&mut e, &s.evs);
    let f = factors(&a, "bpf_load");
    assert_eq!(f.len(), 1, "{a:#?}");
    assert!(
        f[0].reason.starts_with("/tmp/bpftool loaded"),
        "{}",
        f[0].reason
    );
}

#[test]
fn exceptions_drop_matching_factors_and_count_them() {
    let mut cfg = config();
    cfg.detect.exceptions = vec![
        Exception {
            detection: "exec_from_writable".into(),
            principal: Some(PrincipalRef::Name("alice".into())),
            path: Some("/tmp/tools/**".into()),
            ..Default::default()
        },
        Exception {
            detection: "bpf_load".into(),
            exe: Some("/opt/never/*".into()),
            ..Default::default()
        },
    ];
    let mut s = Script::new(T0, Some(ALICE));
    s.login(ALICE);
    s.spawn(
        1101,
        1200,
        "/tmp/tools/bin/helper",
        &["helper"],
        (ALICE, ALICE),
    );
    s.spawn(
        1101,
        1201,
        "/tmp/tools/bin/helper",
        &["helper"],
        (ALICE, ALICE),
    );
    s.spawn(1101, 1202, "/tmp/other/helper", &["helper"], (ALICE, ALICE));
    let mut e = engine(&cfg, Store::memory().expect("store"), false);
    let a = replay(&mut e, &s.evs);
    let f = factors(&a, "exec_from_writable");
    assert_eq!(f.len(), 1, "{a:#?}");
    assert!(f[0].reason.contains("/tmp/other/helper"));
    let st = e.stats();
    assert_eq!(st.exceptions.len(), 2);
    assert_eq!(
        st.exceptions[0].exception,
        "exec_from_writable principal=alice path=/tmp/tools/**"
    );
    assert_eq!(st.exceptions[0].suppressed, 2);
    assert_eq!(st.exceptions[1].suppressed, 0);
}

#[test]
fn bad_exceptions_are_clear_errors_at_load() {
    let parse = |text: &str| -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    };
    let ok = parse(
        "[[detect.exceptions]]\ndetection = \"mass_read\"\nprincipal = \"backup\"\nlineage = \"cron>*>tar\"\n\
         [[detect.exceptions]]\ndetection = \"discovery_burst\"\nprincipal = 1000\n",
    )
    .expect("valid exceptions");
    assert_eq!(ok.detect.exceptions.len(), 2);
    assert_eq!(
        ok.detect.exceptions[1].principal,
        Some(PrincipalRef::Uid(1000))
    );
    let cases = [
        (
            "detection = \"mass_reed\"\nprincipal = 1",
            "unknown detection \"mass_reed\"",
        ),
        (
            "detection = \"mass_read\"\n",
            "needs at least one of principal, exe, path, lineage",
        ),
        (
            "detection = \"mass_read\"\npath = \"/home/[a\"\n",
            "not a valid glob",
        ),
        (
            "detection = \"mass_read\"\nexe = \"tar\"\n",
            "must be a full path",
        ),
        (
            "detection = \"mass_read\"\nuser = \"bob\"\n",
            "unknown field `user`",
        ),
    ];
    for (body, want) in cases {
        let e = parse(&format!("[[detect.exceptions]]\n{body}")).unwrap_err();
        assert!(e.contains(want), "{body}: {e}");
    }
}

#[test]
fn an_account_file_written_by_a_program_that_did_so_while_learning_is_not_reported() {
    let visudo = |t: i64, exe: &str| {
        let mut s = Script::new(t, Some(ALICE));
        s.login(ALICE);
        s.spawn(1101, 1200, exe, &["visudo"], (0, 0));
        s.open(1200, "/etc/sudoers.tmp", true);
        s.rename(1200, "rename", "/etc/sudoers.tmp", "/etc/sudoers");
        s
    };
    let store = learned(visudo(T0, "/usr/sbin/visudo"));
    let a = run(store, &visudo(T0 + DAY, "/usr/sbin/visudo"));
    assert!(factors(&a, "account_change").is_empty(), "{a:#?}");
    let store = learned(visudo(T0, "/usr/sbin/visudo"));
    let a = run(store, &visudo(T0 + DAY, "/usr/bin/python3"));
    let f = factors(&a, "account_change");
    assert_eq!(f.len(), 1, "{a:#?}");
    assert!(
        f[0].reason
            .starts_with("wrote /etc/sudoers with /usr/bin/python3")
    );
}

/// An admin (login uid alice, root through sudo) archiving /home every night: the lineage
/// learned it, so neither mass_read nor staging; another archiver lineage is still reported.
#[test]
fn a_learned_backup_lineage_raises_neither_mass_read_nor_staging() {
    let backup = |t: i64, archiver: &str| {
        let mut s = Script::new(t, Some(ALICE));
        s.login(ALICE);
        s.spawn(1101, 1200, "/usr/bin/sudo", &["sudo", "-i"], (0, 0));
        s.spawn(1200, 1201, "/bin/bash", &["-bash"], (0, 0));
        s.spawn(1201, 1202, archiver, &["x"], (0, 0));
        for i in 0..30 {
            s.open(1202, &format!("/home/bob/work/f{i}"), false);
        }
        s
    };
    let store = learned(backup(T0, "/usr/bin/tar"));
    let a = run(store, &backup(T0 + DAY, "/usr/bin/tar"));
    assert!(factors(&a, "mass_read").is_empty(), "{a:#?}");
    assert!(factors(&a, "staging").is_empty(), "{a:#?}");
    let store = learned(backup(T0, "/usr/bin/tar"));
    let a = run(store, &backup(T0 + DAY, "/usr/bin/zip"));
    assert_eq!(factors(&a, "mass_read").len(), 1, "{a:#?}");
    assert_eq!(factors(&a, "staging").len(), 1, "{a:#?}");
}
