//! Process table: fork/exec/exit bookkeeping, chains, pid reuse and the exited cap.

use super::*;
use crate::event::RawStr;

fn ev(id: u64, t: i64, pid: u32, ppid: u32, uid: u32, payload: Payload) -> Event {
    Event {
        id,
        time_ns: t,
        pid,
        tid: pid,
        ppid,
        uid,
        gid: uid,
        euid: uid,
        auid: Some(1000),
        session: Some(3),
        cgroup_id: 1,
        comm: RawStr::from("bash"),
        syscall: None,
        ret: 0,
        errno: None,
        truncated: false,
        repeats: 0,
        repeat_head: false,
        payload,
    }
}

fn fork(t: i64, parent: u32, child: u32) -> Event {
    ev(
        t as u64,
        t,
        parent,
        1,
        1000,
        Payload::Fork {
            child_pid: child,
            child_tid: child,
        },
    )
}

fn exec(t: i64, pid: u32, file: &str) -> Event {
    ev(
        t as u64,
        t,
        pid,
        0,
        1000,
        Payload::Exec {
            filename: RawStr::from(file),
            argv: vec![RawStr::from(file), RawStr::from("-x")],
            argv_truncated: false,
            env: Vec::new(),
            env_truncated: false,
        },
    )
}

fn exit(t: i64, pid: u32) -> Event {
    ev(
        t as u64,
        t,
        pid,
        0,
        1000,
        Payload::Exit {
            code: Some(0),
            signal: None,
        },
    )
}

#[test]
fn fork_exec_exit_build_the_chain() {
    let mut t = ProcessTable::new(10, false);
    t.apply(&exec(1, 100, "/usr/sbin/sshd"));
    t.apply(&fork(2, 100, 200));
    t.apply(&exec(3, 200, "/bin/bash"));
    t.apply(&fork(4, 200, 300));
    t.apply(&exec(5, 300, "/usr/bin/cat"));
    let chain: Vec<&str> = t.chain(300).iter().map(|p| &*p.exe).collect();
    assert_eq!(chain, ["/usr/sbin/sshd", "/bin/bash", "/usr/bin/cat"]);
    assert_eq!(&*t.get(300).unwrap().argv, ["/usr/bin/cat", "-x"]);
    // The parent exits; the child's chain still shows it.
    t.apply(&exit(6, 200));
    assert_eq!(t.chain(300).len(), 3);
    assert_eq!(t.exited_count(), 1);
}

#[test]
fn pid_reuse_never_mixes_two_processes() {
    let mut t = ProcessTable::new(10, false);
    t.apply(&exec(1, 100, "/bin/bash"));
    t.apply(&fork(2, 100, 200));
    t.apply(&exec(3, 200, "/usr/bin/old"));
    t.apply(&fork(4, 200, 300));
    t.apply(&exit(5, 200));
    // pid 200 is reused by a new child of 100 with another program.
    t.apply(&fork(6, 100, 200));
    t.apply(&exec(7, 200, "/usr/bin/new"));
    assert_eq!(&*t.get(200).unwrap().exe, "/usr/bin/new");
    // 300's parent is the old 200, not the new one.
    let chain: Vec<&str> = t.chain(300).iter().map(|p| &*p.exe).collect();
    assert_eq!(chain, ["/bin/bash", "/usr/bin/old", "/usr/bin/old"]);
    let new_chain: Vec<&str> = t.chain(200).iter().map(|p| &*p.exe).collect();
    assert_eq!(new_chain, ["/bin/bash", "/usr/bin/new"]);
}

#[test]
fn a_lost_exit_is_healed_by_the_next_fork_of_that_pid() {
    let mut t = ProcessTable::new(10, false);
    t.apply(&exec(1, 100, "/bin/bash"));
    t.apply(&fork(2, 100, 200));
    t.apply(&exec(3, 200, "/usr/bin/first"));
    t.apply(&fork(4, 100, 200));
    assert_eq!(&*t.get(200).unwrap().exe, "/bin/bash");
    assert_eq!(t.get(200).unwrap().start_ns, 4);
    assert_eq!(&*t.by_key((200, 2)).unwrap().exe, "/usr/bin/first");
}

#[test]
fn exited_processes_are_capped_and_threads_are_not_processes() {
    let mut t = ProcessTable::new(3, false);
    t.apply(&exec(1, 100, "/bin/bash"));
    t.apply(&fork(2, 100, 100));
    assert_eq!(t.live_count(), 1);
    for i in 0..50u32 {
        t.apply(&fork(10 + i as i64 * 2, 100, 1000 + i));
        t.apply(&exit(11 + i as i64 * 2, 1000 + i));
    }
    assert_eq!(t.live_count(), 1);
    assert_eq!(t.exited_count(), 3);
}

#[test]
fn relative_exec_paths_are_resolved_against_cwd() {
    let mut t = ProcessTable::new(3, false);
    t.apply(&exec(1, 100, "/bin/bash"));
    t.live.get_mut(&100).unwrap().cwd = Some("/tmp".into());
    t.apply(&exec(2, 100, "./x"));
    assert_eq!(&*t.get(100).unwrap().exe, "/tmp/x");
    assert_eq!(t.get(100).unwrap().name(), "x");
}

#[test]
fn seeding_from_proc_finds_this_process_and_its_parent() {
    let mut t = ProcessTable::new(3, true);
    assert!(t.seed_from_proc() > 1);
    let chain = t.chain(std::process::id());
    assert!(chain.len() >= 2, "{chain:?}");
    assert_eq!(chain.last().unwrap().pid, std::process::id());
}

#[test]
fn setuid_takes_the_ids_asked_for() {
    let mut t = ProcessTable::new(3, false);
    t.apply(&exec(1, 100, "/bin/bash"));
    let mut e = ev(
        2,
        2,
        100,
        0,
        1000,
        Payload::SetUid {
            ruid: Some(0),
            euid: Some(0),
            suid: None,
        },
    );
    e.uid = 1000;
    e.euid = 1000;
    t.apply(&e);
    assert_eq!((t.get(100).unwrap().uid, t.get(100).unwrap().euid), (0, 0));
}

#[test]
fn a_record_joined_after_the_exit_finds_the_process_of_its_time() {
    let mut t = ProcessTable::new(10, false);
    t.apply(&exec(1, 100, "/bin/bash"));
    t.apply(&fork(2_000_000_000, 100, 200));
    t.apply(&exec(2_100_000_000, 200, "/usr/bin/old"));
    t.apply(&exit(3_000_000_000, 200));
    t.apply(&fork(4_000_000_000, 100, 200));
    t.apply(&exec(4_100_000_000, 200, "/usr/bin/new"));
    let names = |c: Vec<&Process>| c.iter().map(|p| p.exe.to_string()).collect::<Vec<_>>();
    // A record stamped during the first life (whole ms, so slightly before the exec event).
    assert_eq!(
        names(t.chain_at(200, 2_500_000_000)),
        ["/bin/bash", "/usr/bin/old"]
    );
    assert_eq!(
        names(t.chain_at(200, 4_200_000_000)),
        ["/bin/bash", "/usr/bin/new"]
    );
    // Between the two lives, or before either: nobody held the pid.
    assert!(t.chain_at(200, 3_500_000_000).is_empty());
    assert!(t.chain_at(200, 1_000_000_000).is_empty());
    // Once the first life falls out of the bounded exited set, it is forgotten.
    for i in 0..20u32 {
        t.apply(&fork(5_000_000_000 + i as i64, 100, 1000 + i));
        t.apply(&exit(5_000_000_100 + i as i64, 1000 + i));
    }
    assert!(t.chain_at(200, 2_500_000_000).is_empty());
}

#[test]
fn paths_are_made_absolute_and_folded() {
    use super::absolute;
    assert_eq!(absolute("x/../y", Some("/home/a")), "/home/a/y");
    assert_eq!(absolute("./notes", Some("/home/a/")), "/home/a/notes");
    assert_eq!(absolute("/etc/../etc//shadow", None), "/etc/shadow");
    assert_eq!(
        absolute(
            "/home/a/.mozilla/firefox/x.default-release//logins.json",
            None
        ),
        "/home/a/.mozilla/firefox/x.default-release/logins.json"
    );
    assert_eq!(absolute("/..", None), "/");
    assert_eq!(absolute("relative", None), "relative");
    assert_eq!(absolute("/usr/bin/..hidden", None), "/usr/bin/..hidden");
    assert_eq!(absolute("/etc/.", None), "/etc");
    assert_eq!(absolute("/etc/./passwd", None), "/etc/passwd");
    assert_eq!(absolute("/home/a/.ssh/id_rsa", None), "/home/a/.ssh/id_rsa");
    assert_eq!(absolute("/tmp/x/", None), "/tmp/x/", "nothing to fold");
    assert_eq!(absolute("/tmp/x//", None), "/tmp/x");
}

fn open(t: i64, pid: u32, path: &str, flags: i32, fd: i64) -> Event {
    let mut e = ev(
        t as u64,
        t,
        pid,
        1,
        1000,
        Payload::Open {
            dfd: libc::AT_FDCWD,
            path: RawStr::from(path),
            flags: flags as u64,
            mode: 0,
        },
    );
    e.ret = fd;
    e
}

#[test]
fn only_opens_that_may_be_directories_keep_a_path() {
    let mut t = ProcessTable::new(16, false);
    t.apply(&fork(1, 1, 50));
    t.apply(&open(2, 50, "/home", libc::O_RDONLY | libc::O_CLOEXEC, 3));
    t.apply(&open(3, 50, "/srv", libc::O_PATH | libc::O_WRONLY, 4));
    assert_eq!(
        t.get(50).unwrap().dir_fds,
        vec![(3, "/home".to_string()), (4, "/srv".to_string())],
        "read-only and O_PATH opens are kept (O_PATH ignores the access mode)"
    );
    // fd 3 closed (unseen) and taken by a log opened for appending, fd 4 by a new file: no
    // path kept for them, and the old ones forgotten.
    t.apply(&open(
        4,
        50,
        "/var/log/x.log",
        libc::O_WRONLY | libc::O_APPEND,
        3,
    ));
    t.apply(&open(5, 50, "/tmp/new", libc::O_RDONLY | libc::O_CREAT, 4));
    assert!(t.get(50).unwrap().dir_fds.is_empty());
    // A failed open and a repeat report (a copy of a first open, its fd long gone) change
    // nothing.
    t.apply(&open(6, 50, "/home", libc::O_RDONLY, -2));
    let mut report = open(7, 50, "/etc/passwd", libc::O_RDONLY, 5);
    report.repeats = 3;
    t.apply(&report);
    assert!(t.get(50).unwrap().dir_fds.is_empty());
}

fn chdir(t: i64, pid: u32, path: &str, fd: Option<i32>) -> Event {
    ev(
        t as u64,
        t,
        pid,
        1,
        1000,
        Payload::Chdir {
            path: RawStr::from(path),
            fd,
        },
    )
}

#[test]
fn the_working_directory_follows_chdir_and_fchdir_and_is_kept_across_exec() {
    // live_proc on: /proc would say this test's own directory, which must not be taken
    // while the records say where the process is.
    let mut t = ProcessTable::new(16, true);
    t.apply(&exec(1, 100, "/bin/bash"));
    t.live.get_mut(&100).unwrap().cwd = Some("/".into());
    t.apply(&chdir(2, 100, "/home/alice/src", None));
    t.apply(&chdir(3, 100, "../docs", None));
    assert_eq!(t.get(100).unwrap().cwd.as_deref(), Some("/home/alice/docs"));
    // The shell forks vim, which inherits the directory and keeps it across exec, whatever
    // /proc/PID/cwd says when the exec is analysed (the child has this test's pid: /proc
    // would answer this test's own directory).
    let me = std::process::id();
    t.apply(&fork(4, 100, me));
    t.apply(&exec(5, me, "/usr/bin/vim"));
    assert_eq!(t.get(me).unwrap().cwd.as_deref(), Some("/home/alice/docs"));
    // fchdir to a descriptor the table placed.
    t.apply(&open(6, me, "/etc", libc::O_RDONLY | libc::O_DIRECTORY, 7));
    t.apply(&chdir(7, me, "", Some(7)));
    assert_eq!(t.get(me).unwrap().cwd.as_deref(), Some("/etc"));
    // A failed chdir changes nothing.
    let mut failed = chdir(8, me, "/nonexistent", None);
    failed.ret = -2;
    t.apply(&failed);
    assert_eq!(t.get(me).unwrap().cwd.as_deref(), Some("/etc"));
}
