//! The behaviours seen through dedicated kernel events (kinds.rs): exec environment, utime,
//! xattr, link, truncate, process_vm, module, prctl and socket, each with its benign twin.

use super::behaviour_tests::{ALICE, Sim};
use crate::event::{FileTime, ModuleOp, Payload, RawStr};
use crate::model::Level;

impl Sim {
    /// A command typed at alice's shell with these environment variables (as the kernel
    /// reports the kept ones).
    fn run_env(&mut self, argv: &[&str], env: &[(&str, &str)]) -> u32 {
        self.next_pid += 1;
        let pid = self.next_pid;
        self.procs.insert(pid, ("bash".into(), ALICE));
        self.send(
            100,
            Payload::Fork {
                child_pid: pid,
                child_tid: pid,
            },
        );
        let file = format!("/usr/bin/{}", argv[0]);
        self.procs
            .insert(pid, (argv[0].chars().take(15).collect(), ALICE));
        self.send(
            pid,
            Payload::Exec {
                filename: RawStr::from(file.as_str()),
                argv: argv.iter().map(|a| RawStr::from(*a)).collect(),
                argv_truncated: false,
                env: env
                    .iter()
                    .map(|(k, v)| (RawStr::from(*k), RawStr::from(*v)))
                    .collect(),
                env_truncated: false,
            },
        );
        pid
    }
}

#[test]
fn history_off_in_the_exec_environment() {
    let mut s = Sim::new();
    s.run_env(&["ls"], &[("HISTFILE", "/dev/null")]);
    s.expect(
        "history_tampering",
        &["disabled shell history: HISTFILE=/dev/null in the environment of /usr/bin/ls"],
        Level::Medium,
    );
    // Reported once per window, not at every exec.
    s.run_env(&["id"], &[("HISTFILE", "/dev/null")]);
    assert_eq!(s.factors("history_tampering").len(), 1);
    let mut s = Sim::new();
    s.run_env(&["ls"], &[("HISTSIZE", "0")]);
    s.expect("history_tampering", &["HISTSIZE=0"], Level::Medium);
    // Ignoring every command line is the same as keeping none; ignoring some is not.
    let mut s = Sim::new();
    s.run_env(&["ls"], &[("HISTIGNORE", "ls:*")]);
    s.expect("history_tampering", &["HISTIGNORE=ls:*"], Level::Medium);
    let mut s = Sim::new();
    s.run_env(&["ls"], &[("HISTIGNORE", "ls:bg:fg:exit")]);
    s.none("history_tampering");
    // A leading space hides a command: weaker, half weight.
    let mut s = Sim::new();
    s.run_env(&["ls"], &[("HISTCONTROL", "ignoreboth")]);
    assert_eq!(s.factors("history_tampering")[0].1, 22);

    let mut s = Sim::new();
    s.run_env(
        &["ls"],
        &[
            ("HISTFILE", "/home/alice/.bash_history"),
            ("HISTSIZE", "5000"),
        ],
    );
    s.run_env(&["ls"], &[("HISTCONTROL", "erasedups")]);
    s.none("history_tampering");
}

#[test]
fn library_preloaded_through_the_exec_environment() {
    let mut s = Sim::new();
    s.run_env(&["sudo", "-l"], &[("LD_PRELOAD", "/dev/shm/x.so")]);
    s.expect("loader_hijack", &["LD_PRELOAD=/dev/shm/x.so"], Level::High);
    let mut s = Sim::new();
    s.run_env(
        &["ls"],
        &[("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")],
    );
    s.none("loader_hijack");
}

#[test]
fn explicit_file_times_from_the_kernel() {
    let mut s = Sim::new();
    let p = s.sudo(&["python3", "stomp.py"]);
    s.send(
        p,
        Payload::Utime {
            path: RawStr::from("/usr/bin/passwd"),
            dirfd: None,
            atime: FileTime::At {
                sec: 1_500_000_000,
                nsec: 0,
            },
            mtime: FileTime::At {
                sec: 1_500_000_000,
                nsec: 0,
            },
            flags: 0,
        },
    );
    s.expect(
        "timestomp",
        &["set the times of /usr/bin/passwd", "utimensat"],
        Level::Medium,
    );
    // touch -d: futimens on its fd; the file is named on its command line.
    let mut s = Sim::new();
    let t = s.sudo(&["touch", "-d", "2019-01-01", "/etc/cron.d/job"]);
    s.send(
        t,
        Payload::Utime {
            path: RawStr::default(),
            dirfd: Some(3),
            atime: FileTime::At { sec: 1, nsec: 0 },
            mtime: FileTime::At { sec: 1, nsec: 0 },
            flags: 0,
        },
    );
    s.expect("timestomp", &["/etc/cron.d/job"], Level::Medium);
    assert_eq!(
        s.factors("timestomp").len(),
        1,
        "argv and kernel: one finding"
    );

    // Times set to now, or kept by tar and cp.
    let mut s = Sim::new();
    let t = s.run(&["touch", "x"]);
    s.send(
        t,
        Payload::Utime {
            path: RawStr::from("x"),
            dirfd: None,
            atime: FileTime::Now,
            mtime: FileTime::Now,
            flags: 0,
        },
    );
    let tar = s.sudo(&["tar", "xpf", "backup.tar", "-C", "/"]);
    s.send(
        tar,
        Payload::Utime {
            path: RawStr::from("/usr/local/bin/tool"),
            dirfd: None,
            atime: FileTime::Omit,
            mtime: FileTime::At { sec: 1, nsec: 0 },
            flags: 0,
        },
    );
    s.none("timestomp");
}

#[test]
fn capability_set_through_xattr() {
    let mut s = Sim::new();
    let p = s.sudo(&["python3", "caps.py"]);
    s.send(
        p,
        Payload::Xattr {
            path: RawStr::from("/home/alice/py"),
            fd: None,
            name: RawStr::from("security.capability"),
            remove: false,
            size: 20,
            flags: 0,
            caps: vec!["cap_setuid".into()],
            caps_effective: true,
        },
    );
    s.expect(
        "file_capability",
        &["granted capabilities cap_setuid (effective at exec) to /home/alice/py"],
        Level::Medium,
    );
    let mut s = Sim::new();
    let p = s.run(&["setfattr", "-n", "user.comment", "x"]);
    s.send(
        p,
        Payload::Xattr {
            path: RawStr::from("x"),
            fd: None,
            name: RawStr::from("user.comment"),
            remove: false,
            size: 3,
            flags: 0,
            caps: vec![],
            caps_effective: false,
        },
    );
    s.none("file_capability");
}

#[test]
fn history_linked_to_dev_null_or_truncated_and_logs_truncated() {
    let mut s = Sim::new();
    let p = s.run(&["python3", "x.py"]);
    s.send(
        p,
        Payload::Link {
            target: RawStr::from("/dev/null"),
            link: RawStr::from("/home/alice/.bash_history"),
            symbolic: true,
        },
    );
    s.expect("history_tampering", &["link to /dev/null"], Level::Medium);
    let mut s = Sim::new();
    let t = s.run(&["truncate", "-s", "0", "/home/alice/.zsh_history"]);
    s.send(
        t,
        Payload::Truncate {
            path: RawStr::from("/home/alice/.zsh_history"),
            fd: None,
            length: 0,
        },
    );
    s.expect(
        "history_tampering",
        &["/home/alice/.zsh_history"],
        Level::Medium,
    );
    let mut s = Sim::new();
    let t = s.sudo(&["truncate", "-s", "0", "/var/log/auth.log"]);
    s.send(
        t,
        Payload::Truncate {
            path: RawStr::from("/var/log/auth.log"),
            fd: None,
            length: 0,
        },
    );
    s.expect(
        "log_tampering",
        &["truncated /var/log/auth.log"],
        Level::High,
    );

    let mut s = Sim::new();
    let l = s.run(&["ln", "-s", "/dev/null", "out.log"]);
    s.send(
        l,
        Payload::Link {
            target: RawStr::from("/dev/null"),
            link: RawStr::from("out.log"),
            symbolic: true,
        },
    );
    let r = s.spawn(1, "/usr/sbin/logrotate", &["logrotate"]);
    s.send(
        r,
        Payload::Truncate {
            path: RawStr::from("/var/log/syslog"),
            fd: None,
            length: 0,
        },
    );
    s.none("history_tampering");
    s.none("log_tampering");
}

#[test]
fn memory_read_across_processes() {
    let mut s = Sim::new();
    s.procs.insert(60, ("sshd".into(), 0));
    s.exec(60, "/usr/sbin/sshd", &["sshd"]);
    let p = s.sudo(&["python3", "mimi.py"]);
    s.send(
        p,
        Payload::ProcessVm {
            target_pid: 60,
            write: false,
        },
    );
    s.expect(
        "process_memory_access",
        &["read the memory of (process_vm_readv) /usr/sbin/sshd (pid 60, uid 0)"],
        Level::Medium,
    );
    let mut s = Sim::new();
    let p = s.run(&["python3", "x.py"]);
    s.send(
        p,
        Payload::ProcessVm {
            target_pid: p as i32,
            write: false,
        },
    );
    s.none("process_memory_access");
}

#[test]
fn kernel_module_loaded_by_any_program() {
    let mut s = Sim::new();
    let p = s.sudo(&["python3", "load.py"]);
    s.send(
        p,
        Payload::Module {
            op: ModuleOp::Load,
            name: RawStr::from("rk"),
            fd: Some(3),
            fd_path: Some(RawStr::from("/tmp/rk.ko")),
            params: RawStr::default(),
            size: None,
            flags: 0,
        },
    );
    s.expect(
        "kernel_module",
        &["loaded the kernel module /tmp/rk.ko with /usr/bin/python3"],
        Level::Medium,
    );
    // Boot and hot-plug loads are not in a login session.
    let mut s = Sim::new();
    s.procs.insert(70, ("systemd-udevd".into(), 0));
    let mut ev = s.ev(
        70,
        Payload::Module {
            op: ModuleOp::Load,
            name: RawStr::from("snd"),
            fd: Some(3),
            fd_path: Some(RawStr::from("/lib/modules/6.18/snd.ko")),
            params: RawStr::default(),
            size: None,
            flags: 0,
        },
    );
    ev.auid = None;
    let a = s.e.observe(&ev);
    assert!(
        a.iter()
            .all(|x| x.factors.iter().all(|f| f.detection != "kernel_module")),
        "{a:#?}"
    );
}

#[test]
fn thread_renamed_like_a_kernel_thread_and_raw_sockets() {
    let mut s = Sim::new();
    let m = s.run(&["/home/alice/bin/miner"]);
    s.send(
        m,
        Payload::Prctl {
            option: 15,
            name: RawStr::from("[kworker/0:2]"),
        },
    );
    s.expect(
        "masquerade",
        &["renamed itself to [kworker/0:2]"],
        Level::Medium,
    );
    // The kernel keeps 15 bytes of a thread name.
    let mut s = Sim::new();
    let m = s.run(&["python3", "implant.py"]);
    s.send(
        m,
        Payload::Prctl {
            option: 15,
            name: RawStr::from("systemd-journal"),
        },
    );
    s.expect(
        "masquerade",
        &["renamed itself to systemd-journal"],
        Level::Medium,
    );
    let mut s = Sim::new();
    let f = s.run(&["/usr/bin/firefox"]);
    s.send(
        f,
        Payload::Prctl {
            option: 15,
            name: RawStr::from("Socket Thread"),
        },
    );
    s.none("masquerade");

    let mut s = Sim::new();
    let p = s.sudo(&["python3", "sniff.py"]);
    s.send(
        p,
        Payload::Socket {
            family: 17,
            sock_type: 3,
            protocol: 768,
            family_name: "AF_PACKET".into(),
            type_name: "SOCK_RAW".into(),
            protocol_name: "ETH_P_ALL".into(),
        },
    );
    s.expect(
        "packet_capture",
        &["opened a raw packet socket (AF_PACKET"],
        Level::Medium,
    );
    let mut s = Sim::new();
    let p = s.run(&["ping", "-c1", "192.0.2.1"]);
    s.send(
        p,
        Payload::Socket {
            family: 2,
            sock_type: 3,
            protocol: 1,
            family_name: "AF_INET".into(),
            type_name: "SOCK_RAW".into(),
            protocol_name: "IPPROTO_ICMP".into(),
        },
    );
    s.none("packet_capture");
}

#[test]
fn ordinary_user_root_in_a_new_user_namespace() {
    let mut s = Sim::new();
    let u = s.run(&["unshare", "-Urm", "sh"]);
    s.send(
        u,
        Payload::Unshare {
            flags: 0x10020000,
            namespaces: vec!["user".into(), "mnt".into()],
        },
    );
    s.expect(
        "privilege_escalation",
        &["/usr/bin/unshare made itself root in new namespaces (user, mnt)"],
        Level::Medium,
    );
    // A browser sandbox, or a mount namespace alone.
    let mut s = Sim::new();
    let c = s.run(&["chromium"]);
    s.send(
        c,
        Payload::Unshare {
            flags: 0x10000000,
            namespaces: vec!["user".into()],
        },
    );
    let u = s.run(&["unshare", "-m", "true"]);
    s.send(
        u,
        Payload::Unshare {
            flags: 0x20000,
            namespaces: vec!["mnt".into()],
        },
    );
    s.none("privilege_escalation");
}
