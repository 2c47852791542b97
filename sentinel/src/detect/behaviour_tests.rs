//! The behaviour-family detections played from events built in code: each behaviour as an
//! attacker does it (it fires, at medium or more when hostile) and its benign look-alikes
//! (they do not), with and without a learned baseline.

use std::collections::HashMap;

use super::engine::{Engine, EngineOptions};
use super::testing::TestConfig;
use crate::event::{Event, Payload, RawStr};
use crate::model::{Anomaly, Level};
use crate::proc::users::UserDb;
use crate::store::Store;

pub(super) const ALICE: u32 = 1000;
const T0: i64 = 1_781_780_400_000_000_000;

fn users() -> UserDb {
    UserDb::parse(
        "root:x:0:0::/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\nbob:x:1001:1001::/home/bob:/bin/bash\n",
    )
}

/// A little world: a login shell of alice (pid 100) and whatever the test plays below it.
pub(super) struct Sim {
    pub(super) e: Engine,
    pub(super) id: u64,
    pub(super) t: i64,
    pub(super) next_pid: u32,
    /// pid -> (comm, uid)
    pub(super) procs: HashMap<u32, (String, u32)>,
    pub(super) out: Vec<Anomaly>,
}

impl Sim {
    pub(super) fn new() -> Sim {
        Sim::with_store(Store::memory().unwrap(), false)
    }

    pub(super) fn with_store(store: Store, learn_all: bool) -> Sim {
        let cfg = TestConfig::default();
        let e = Engine::with_options(
            &cfg.detect,
            cfg.host_name(),
            store,
            EngineOptions {
                live: false,
                users: Some(users()),
                learn_all,
            },
        )
        .unwrap();
        let mut s = Sim {
            e,
            id: 0,
            t: T0,
            next_pid: 200,
            procs: HashMap::new(),
            out: Vec::new(),
        };
        s.procs.insert(99, ("sshd".into(), 0));
        s.exec(99, "/usr/sbin/sshd", &["sshd: alice"]);
        s.procs.insert(100, ("sshd".into(), ALICE));
        s.send(
            100,
            Payload::Fork {
                child_pid: 100,
                child_tid: 100,
            },
        );
        s.exec(100, "/bin/bash", &["-bash"]);
        s
    }

    pub(super) fn ev(&mut self, pid: u32, payload: Payload) -> Event {
        self.id += 1;
        self.t += 1_000_000;
        let (comm, uid) = self.procs.get(&pid).cloned().unwrap_or(("?".into(), ALICE));
        Event {
            id: self.id,
            time_ns: self.t,
            pid,
            tid: pid,
            ppid: 0,
            uid,
            gid: uid,
            euid: uid,
            auid: Some(ALICE),
            session: Some(3),
            cgroup_id: 1,
            comm: RawStr::from(comm.as_str()),
            syscall: None,
            ret: 0,
            errno: None,
            truncated: false,
            repeats: 0,
            repeat_head: false,
            payload,
        }
    }

    pub(super) fn send(&mut self, pid: u32, payload: Payload) {
        let ev = self.ev(pid, payload);
        let a = self.e.observe(&ev);
        self.out.extend(a);
    }

    /// exec in place (same pid).
    pub(super) fn exec(&mut self, pid: u32, file: &str, argv: &[&str]) {
        let comm: String = file
            .rsplit('/')
            .next()
            .unwrap_or(file)
            .chars()
            .take(15)
            .collect();
        let uid = self.procs.get(&pid).map(|p| p.1).unwrap_or(ALICE);
        self.procs.insert(pid, (comm, uid));
        let payload = Payload::Exec {
            filename: RawStr::from(file),
            argv: argv.iter().map(|a| RawStr::from(*a)).collect(),
            argv_truncated: false,
            env: Vec::new(),
            env_truncated: false,
        };
        self.send(pid, payload);
    }

    /// fork from `parent`, then exec in the child; returns the child's pid.
    pub(super) fn spawn(&mut self, parent: u32, file: &str, argv: &[&str]) -> u32 {
        self.next_pid += 1;
        let pid = self.next_pid;
        let pp = self
            .procs
            .get(&parent)
            .cloned()
            .unwrap_or(("?".into(), ALICE));
        self.procs.insert(pid, pp);
        self.send(
            parent,
            Payload::Fork {
                child_pid: pid,
                child_tid: pid,
            },
        );
        self.exec(pid, file, argv);
        pid
    }

    /// A command typed at alice's shell.
    pub(super) fn run(&mut self, argv: &[&str]) -> u32 {
        let file = if argv[0].starts_with('/') {
            argv[0].to_string()
        } else {
            format!("/usr/bin/{}", argv[0])
        };
        self.spawn(100, &file, argv)
    }

    /// The same as root through sudo (login uid stays alice).
    pub(super) fn sudo(&mut self, argv: &[&str]) -> u32 {
        let s = self.spawn(100, "/usr/bin/sudo", &["sudo"]);
        self.procs.get_mut(&s).unwrap().1 = 0;
        let file = format!("/usr/bin/{}", argv[0]);
        self.exec(s, &file, argv);
        s
    }

    pub(super) fn open(&mut self, pid: u32, path: &str, flags: u64) {
        self.send(
            pid,
            Payload::Open {
                dfd: -100,
                path: RawStr::from(path),
                flags,
                mode: 0o644,
            },
        );
    }

    pub(super) fn exit(&mut self, pid: u32) {
        self.send(
            pid,
            Payload::Exit {
                code: Some(0),
                signal: None,
            },
        );
    }

    /// The factors of `detection` so far.
    pub(super) fn factors(&self, detection: &str) -> Vec<(String, u8, Level)> {
        self.out
            .iter()
            .flat_map(|a| {
                a.factors
                    .iter()
                    .filter(|f| f.detection == detection)
                    .map(|f| (f.reason.clone(), f.weight, a.level))
            })
            .collect()
    }

    /// Asserts a factor of `detection` with every part in its reason, proven by evidence
    /// the anomaly carries, reaching at least `level`.
    pub(super) fn expect(&self, detection: &str, parts: &[&str], level: Level) {
        let a = self
            .out
            .iter()
            .find(|a| {
                a.factors
                    .iter()
                    .any(|f| f.detection == detection && parts.iter().all(|p| f.reason.contains(p)))
            })
            .unwrap_or_else(|| {
                panic!(
                    "no {detection} with {parts:?}; got {:#?}",
                    self.out
                        .iter()
                        .flat_map(|a| &a.factors)
                        .map(|f| format!("{}: {}", f.detection, f.reason))
                        .collect::<Vec<_>>()
                )
            });
        let f = a.factors.iter().find(|f| f.detection == detection).unwrap();
        assert!(!f.evidence.is_empty());
        for id in &f.evidence {
            assert!(a.evidence.iter().any(|e| &e.id == id), "evidence {id}");
        }
        assert!(a.level >= level, "{detection} only {:?}: {a:#?}", a.level);
    }

    pub(super) fn none(&self, detection: &str) {
        let f = self.factors(detection);
        assert!(f.is_empty(), "unexpected {detection}: {f:#?}");
    }
}

pub(super) const O_WRONLY: u64 = 1;
pub(super) const O_CREAT: u64 = 0o100;
pub(super) const O_TRUNC: u64 = 0o1000;

#[test]
fn history_disabled_in_shell_code_or_erased() {
    let mut s = Sim::new();
    s.run(&["bash", "-c", "unset HISTFILE; id"]);
    s.expect("history_tampering", &["unset HISTFILE"], Level::Medium);

    let mut s = Sim::new();
    s.run(&["env", "HISTFILE=/dev/null", "bash"]);
    s.expect("history_tampering", &["HISTFILE=/dev/null"], Level::Medium);

    let mut s = Sim::new();
    let sh = s.run(&["sh", "-c", ": > /home/alice/.bash_history"]);
    s.open(
        sh,
        "/home/alice/.bash_history",
        O_WRONLY | O_CREAT | O_TRUNC,
    );
    s.expect(
        "history_tampering",
        &["emptied the history file /home/alice/.bash_history"],
        Level::Medium,
    );

    let mut s = Sim::new();
    let ln = s.run(&["ln", "-sf", "/dev/null", "/home/alice/.bash_history"]);
    s.send(
        ln,
        Payload::Unlink {
            dfd: -100,
            path: RawStr::from("/home/alice/.bash_history"),
            flags: 0,
        },
    );
    s.expect("history_tampering", &["link to /dev/null"], Level::Medium);

    let mut s = Sim::new();
    let rm = s.run(&["rm", "-f", ".zsh_history"]);
    s.send(
        rm,
        Payload::Unlink {
            dfd: -100,
            path: RawStr::from("/root/.zsh_history"),
            flags: 0,
        },
    );
    s.expect(
        "history_tampering",
        &["deleted the history file /root/.zsh_history"],
        Level::Medium,
    );

    // Benign: the login shell rewriting its own history at exit, ordinary shell code.
    let mut s = Sim::new();
    s.open(
        100,
        "/home/alice/.bash_history",
        O_WRONLY | O_CREAT | O_TRUNC,
    );
    s.run(&["bash", "-c", "echo history is fine; ls"]);
    let vim = s.run(&["vim", "notes"]);
    s.send(
        vim,
        Payload::Rename {
            old_path: RawStr::from("/home/alice/.viminfo.tmp"),
            new_path: RawStr::from("/home/alice/.viminfo"),
            flags: 0,
        },
    );
    s.none("history_tampering");
}

#[test]
fn file_times_forged() {
    let mut s = Sim::new();
    s.sudo(&["touch", "-r", "/usr/bin/ls", "/usr/local/bin/backdoor"]);
    s.expect(
        "timestomp",
        &["set the times of /usr/local/bin/backdoor to a chosen value"],
        Level::Medium,
    );
    // The user's own file: noted, at half weight.
    let mut s = Sim::new();
    s.run(&["touch", "-d", "2020-01-01", "notes.txt"]);
    let f = s.factors("timestomp");
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].1, 15);
    let mut s = Sim::new();
    s.run(&["touch", "newfile"]);
    s.none("timestomp");
}

#[test]
fn set_id_bits_and_capabilities() {
    let mut s = Sim::new();
    let c = s.sudo(&["chmod", "4755", "/tmp/rootsh"]);
    s.send(
        c,
        Payload::Chmod {
            path: RawStr::from("/tmp/rootsh"),
            mode: 0o104755,
        },
    );
    s.expect("setuid_bit", &["/tmp/rootsh", "4755"], Level::Medium);
    assert_eq!(s.factors("setuid_bit").len(), 1, "one finding per chmod");

    let mut s = Sim::new();
    let py = s.run(&["python3", "x.py"]);
    s.send(
        py,
        Payload::Chmod {
            path: RawStr::from("/home/alice/sh"),
            mode: 0o6755,
        },
    );
    s.expect(
        "setuid_bit",
        &["made /home/alice/sh set-uid and set-gid"],
        Level::Medium,
    );

    let mut s = Sim::new();
    let c = s.run(&["chmod", "755", "/home/alice/x"]);
    s.send(
        c,
        Payload::Chmod {
            path: RawStr::from("/home/alice/x"),
            mode: 0o755,
        },
    );
    s.none("setuid_bit");
    // Package managers install set-uid programs.
    let d = s.sudo(&["dpkg", "-i", "x.deb"]);
    s.send(
        d,
        Payload::Chmod {
            path: RawStr::from("/usr/bin/passwd"),
            mode: 0o4755,
        },
    );
    s.none("setuid_bit");

    let mut s = Sim::new();
    s.sudo(&["setcap", "cap_setuid+ep", "/home/alice/python3"]);
    s.expect(
        "file_capability",
        &["cap_setuid+ep", "/home/alice/python3"],
        Level::Medium,
    );
    s.sudo(&["setcap", "-r", "/home/alice/python3"]);
    assert_eq!(s.factors("file_capability").len(), 1);
}

#[test]
fn loader_hijack_by_environment_and_by_configuration() {
    let mut s = Sim::new();
    s.run(&["env", "LD_PRELOAD=/tmp/hook.so", "ls"]);
    s.expect("loader_hijack", &["LD_PRELOAD=/tmp/hook.so"], Level::Medium);
    let mut s = Sim::new();
    s.run(&["bash", "-c", "LD_PRELOAD=./evil.so sudo -l"]);
    s.expect("loader_hijack", &["LD_PRELOAD=./evil.so"], Level::Medium);
    let mut s = Sim::new();
    let sh = s.sudo(&["tee", "-a", "/etc/ld.so.preload"]);
    s.open(sh, "/etc/ld.so.preload", O_WRONLY | O_CREAT);
    s.expect("loader_hijack", &["wrote /etc/ld.so.preload"], Level::High);

    let mut s = Sim::new();
    s.run(&[
        "env",
        "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
        "redis-server",
    ]);
    s.run(&["env", "LD_PRELOAD=libfaketime.so.1", "date"]);
    s.none("loader_hijack");
}

#[test]
fn authentication_and_logging_configuration_written() {
    let mut s = Sim::new();
    let t = s.sudo(&["tee", "/etc/pam.d/common-auth"]);
    s.open(t, "/etc/pam.d/common-auth", O_WRONLY | O_CREAT | O_TRUNC);
    s.expect(
        "auth_config",
        &["overwrote /etc/pam.d/common-auth"],
        Level::Medium,
    );
    let cp = s.sudo(&[
        "cp",
        "pam_x.so",
        "/lib/x86_64-linux-gnu/security/pam_unix.so",
    ]);
    s.open(
        cp,
        "/lib/x86_64-linux-gnu/security/pam_unix.so",
        O_WRONLY | O_CREAT | O_TRUNC,
    );
    s.expect(
        "auth_config",
        &["/lib/x86_64-linux-gnu/security/pam_unix.so"],
        Level::Medium,
    );
    let v = s.sudo(&["vi", "/etc/ssh/sshd_config.d/x.conf"]);
    s.open(v, "/etc/ssh/sshd_config.d/x.conf", O_WRONLY | O_CREAT);
    s.expect(
        "auth_config",
        &["/etc/ssh/sshd_config.d/x.conf"],
        Level::Medium,
    );
    let rm = s.sudo(&["rm", "/etc/audit/rules.d/audit.rules"]);
    s.send(
        rm,
        Payload::Unlink {
            dfd: -100,
            path: RawStr::from("/etc/audit/rules.d/audit.rules"),
            flags: 0,
        },
    );
    s.expect(
        "auth_config",
        &["deleted /etc/audit/rules.d/audit.rules"],
        Level::Medium,
    );

    // Reading is not writing; package managers update these files.
    let mut s = Sim::new();
    let c = s.run(&["cat", "/etc/pam.d/sshd"]);
    s.open(c, "/etc/pam.d/sshd", 0);
    let d = s.sudo(&["dpkg", "--configure", "-a"]);
    let pc = s.spawn(d, "/usr/sbin/pam-auth-update", &["pam-auth-update"]);
    s.open(pc, "/etc/pam.d/common-auth", O_WRONLY | O_CREAT | O_TRUNC);
    s.none("auth_config");
}

#[test]
fn watchers_stopped_or_killed() {
    let mut s = Sim::new();
    s.sudo(&["systemctl", "stop", "auditd.service"]);
    s.expect(
        "watcher_silenced",
        &["stopped or disabled the watcher auditd.service"],
        Level::High,
    );
    let mut s = Sim::new();
    s.sudo(&["auditctl", "-e", "0"]);
    s.expect(
        "watcher_silenced",
        &["turned kernel auditing off"],
        Level::High,
    );
    let mut s = Sim::new();
    s.sudo(&["journalctl", "--vacuum-time=1s"]);
    s.expect(
        "watcher_silenced",
        &["erased the system journal"],
        Level::High,
    );

    // kill -9 of the audit daemon, looked up in the process table.
    let mut s = Sim::new();
    s.procs.insert(50, ("auditd".into(), 0));
    s.exec(50, "/usr/sbin/auditd", &["/usr/sbin/auditd"]);
    let k = s.sudo(&["kill", "-9", "50"]);
    s.send(
        k,
        Payload::Kill {
            target_pid: 50,
            target_tid: None,
            signal: 9,
        },
    );
    s.expect(
        "watcher_silenced",
        &["sent signal 9 to the watcher /usr/sbin/auditd (pid 50)"],
        Level::High,
    );

    let mut s = Sim::new();
    s.sudo(&["systemctl", "restart", "rsyslog"]);
    s.sudo(&["systemctl", "stop", "nginx"]);
    s.procs.insert(51, ("rsyslogd".into(), 0));
    s.exec(51, "/usr/sbin/rsyslogd", &["rsyslogd"]);
    let k = s.sudo(&["kill", "-HUP", "51"]);
    s.send(
        k,
        Payload::Kill {
            target_pid: 51,
            target_tid: None,
            signal: 1,
        },
    );
    s.none("watcher_silenced");
}

#[test]
fn reading_another_process_memory() {
    let mut s = Sim::new();
    s.procs.insert(60, ("sshd".into(), 0));
    s.exec(60, "/usr/sbin/sshd", &["sshd"]);
    let p = s.sudo(&["python3", "dump.py"]);
    s.open(p, "/proc/60/maps", 0);
    s.open(p, "/proc/60/mem", 0);
    s.expect(
        "process_memory_access",
        &["opened the memory of /usr/sbin/sshd (pid 60, uid 0)"],
        Level::Medium,
    );
    let mut s = Sim::new();
    s.procs.insert(60, ("sshd".into(), 0));
    s.exec(60, "/usr/sbin/sshd", &["sshd"]);
    let c = s.sudo(&["cat", "/proc/60/environ"]);
    s.open(c, "/proc/60/environ", 0);
    s.expect(
        "process_memory_access",
        &["read the environment"],
        Level::Medium,
    );
    let mut s = Sim::new();
    s.sudo(&["gcore", "-o", "/tmp/core", "1"]);
    s.expect("process_memory_access", &["gcore on"], Level::Medium);

    // Its own memory, listing tools reading environ.
    let mut s = Sim::new();
    s.procs.insert(60, ("sshd".into(), 0));
    s.exec(60, "/usr/sbin/sshd", &["sshd"]);
    let p = s.run(&["python3", "x.py"]);
    s.open(p, &format!("/proc/{p}/mem"), 0);
    s.open(p, "/proc/self/maps", 0);
    let ps = s.sudo(&["ps", "eww"]);
    s.open(ps, "/proc/60/environ", 0);
    s.none("process_memory_access");
}

#[test]
fn packet_capture() {
    let mut s = Sim::new();
    s.sudo(&["tcpdump", "-i", "any", "-w", "/tmp/x.pcap", "port", "21"]);
    s.expect(
        "packet_capture",
        &["capture network traffic"],
        Level::Medium,
    );
    let mut s = Sim::new();
    s.run(&["tcpdump", "-r", "old.pcap"]);
    s.none("packet_capture");
}
