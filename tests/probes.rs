//! End-to-end tests of the kernel probes: each event kind is caused by a child process and its
//! decoded fields are checked. Runs as root against the real kernel; fails when it cannot.

use std::net::TcpListener;

use sentinel::event::{Event, Family, Payload};
use sentinel_e2e::*;

#[path = "probes_files.rs"]
mod files;
#[path = "probes_ids.rs"]
mod ids;
#[path = "probes_kinds.rs"]
mod kinds;
#[path = "probes_net.rs"]
mod net;
#[path = "probes_ns.rs"]
mod ns;

/// Every syscall the probes capture, with the live test that makes it and checks its record.
/// A syscall added to the capture list without a live test fails
/// `every_captured_syscall_has_a_live_test`.
const LIVE_TESTS: &[(&str, &str)] = &[
    ("execve", "exec_captures_filename_argv_and_identity"),
    (
        "execveat",
        "files::execveat_runs_a_program_and_reports_enoent",
    ),
    ("open", "files::openat2_and_the_legacy_open_with_eloop"),
    ("openat", "open_success_and_enoent"),
    ("openat2", "files::openat2_and_the_legacy_open_with_eloop"),
    (
        "connect",
        "connect_to_listener_and_refused, net::connect_ipv6_to_listener_and_refused, net::connect_unix_by_path_missing_path_and_abstract",
    ),
    (
        "unlink",
        "files::legacy_path_calls_chmod_chown_link_rename_unlink_rmdir",
    ),
    (
        "rmdir",
        "files::legacy_path_calls_chmod_chown_link_rename_unlink_rmdir",
    ),
    ("unlinkat", "file_changes_unlink_rename_chmod_chown"),
    (
        "rename",
        "files::legacy_path_calls_chmod_chown_link_rename_unlink_rmdir",
    ),
    (
        "renameat",
        "files::legacy_path_calls_chmod_chown_link_rename_unlink_rmdir",
    ),
    ("renameat2", "file_changes_unlink_rename_chmod_chown"),
    (
        "chmod",
        "files::legacy_path_calls_chmod_chown_link_rename_unlink_rmdir",
    ),
    ("fchmodat", "file_changes_unlink_rename_chmod_chown"),
    (
        "chown",
        "files::legacy_path_calls_chmod_chown_link_rename_unlink_rmdir",
    ),
    (
        "lchown",
        "files::legacy_path_calls_chmod_chown_link_rename_unlink_rmdir",
    ),
    ("fchownat", "file_changes_unlink_rename_chmod_chown"),
    ("memfd_create", "memfd_unshare_and_kill"),
    ("setuid", "setuid_drop_and_eperm"),
    ("setreuid", "ids::setgid_family_and_eperm_once_root_is_gone"),
    ("setresuid", "setuid_drop_and_eperm"),
    ("setgid", "ids::setgid_family_and_eperm_once_root_is_gone"),
    ("setregid", "ids::setgid_family_and_eperm_once_root_is_gone"),
    (
        "setresgid",
        "ids::setgid_family_and_eperm_once_root_is_gone",
    ),
    ("capset", "ids::capset_drop_and_eperm_on_regain"),
    ("ptrace", "ptrace_of_a_child"),
    (
        "bpf",
        "ns::bpf_map_create_and_einval_for_an_unknown_command",
    ),
    (
        "mount",
        "ns::mount_and_umount_in_a_private_namespace_with_failures",
    ),
    (
        "umount2",
        "ns::mount_and_umount_in_a_private_namespace_with_failures",
    ),
    ("unshare", "memfd_unshare_and_kill"),
    (
        "setns",
        "ns::setns_into_own_uts_namespace_and_einval_for_the_wrong_type",
    ),
    ("kill", "memfd_unshare_and_kill"),
    ("tkill", "ns::tkill_and_tgkill_to_self_and_their_failures"),
    ("tgkill", "ns::tkill_and_tgkill_to_self_and_their_failures"),
    ("utime", "files::legacy_utime_utimes_futimesat_and_enoent"),
    ("utimes", "files::legacy_utime_utimes_futimesat_and_enoent"),
    (
        "futimesat",
        "files::legacy_utime_utimes_futimesat_and_enoent",
    ),
    ("utimensat", "kinds::utime_times_by_path_by_fd_and_enoent"),
    (
        "setxattr",
        "kinds::xattr_file_capabilities_fd_variants_and_enodata",
    ),
    (
        "lsetxattr",
        "files::lsetxattr_lremovexattr_and_eperm_on_a_symlink",
    ),
    (
        "fsetxattr",
        "kinds::xattr_file_capabilities_fd_variants_and_enodata",
    ),
    (
        "removexattr",
        "kinds::xattr_file_capabilities_fd_variants_and_enodata",
    ),
    (
        "lremovexattr",
        "files::lsetxattr_lremovexattr_and_eperm_on_a_symlink",
    ),
    (
        "fremovexattr",
        "kinds::xattr_file_capabilities_fd_variants_and_enodata",
    ),
    (
        "link",
        "files::legacy_path_calls_chmod_chown_link_rename_unlink_rmdir",
    ),
    ("linkat", "kinds::links_symbolic_hard_and_eexist"),
    ("symlink", "kinds::links_symbolic_hard_and_eexist"),
    (
        "symlinkat",
        "files::legacy_path_calls_chmod_chown_link_rename_unlink_rmdir",
    ),
    (
        "truncate",
        "kinds::truncate_by_path_and_by_fd_resolved_while_held",
    ),
    (
        "ftruncate",
        "kinds::truncate_by_path_and_by_fd_resolved_while_held",
    ),
    (
        "chdir",
        "files::chdir_by_path_fchdir_by_descriptor_and_enoent",
    ),
    (
        "fchdir",
        "files::chdir_by_path_fchdir_by_descriptor_and_enoent",
    ),
    (
        "dup",
        "files::dup_dup2_dup3_and_fcntl_dupfd_copy_descriptors",
    ),
    (
        "dup2",
        "files::dup_dup2_dup3_and_fcntl_dupfd_copy_descriptors",
    ),
    (
        "dup3",
        "files::dup_dup2_dup3_and_fcntl_dupfd_copy_descriptors",
    ),
    (
        "fcntl",
        "files::dup_dup2_dup3_and_fcntl_dupfd_copy_descriptors",
    ),
    ("process_vm_readv", "kinds::process_vm_read_write_and_esrch"),
    (
        "process_vm_writev",
        "kinds::process_vm_read_write_and_esrch",
    ),
    // The module calls need a kernel with modules (on one without, the test checks that the
    // hooks are reported unavailable).
    (
        "init_module",
        "kinds::module_syscalls_are_captured_or_reported_unavailable",
    ),
    (
        "finit_module",
        "kinds::module_syscalls_are_captured_or_reported_unavailable",
    ),
    (
        "delete_module",
        "kinds::module_syscalls_are_captured_or_reported_unavailable",
    ),
    ("prctl", "kinds::prctl_set_name_only"),
    ("socket", "kinds::sockets_packet_and_raw_only"),
    (
        "bind",
        "kinds::bind_and_listen_with_einval, net::bind_unix_path_and_eaddrinuse",
    ),
    ("listen", "kinds::bind_and_listen_with_einval"),
];

#[test]
fn every_captured_syscall_has_a_live_test() {
    let mut captured: Vec<&str> = sentinel::syscalls::all().map(|c| c.name).collect();
    captured.sort();
    let mut tested: Vec<&str> = LIVE_TESTS.iter().map(|(s, _)| *s).collect();
    tested.sort();
    assert_eq!(
        captured, tested,
        "the captured syscalls and those with a live test (LIVE_TESTS) differ"
    );
    // Fork and exit come from scheduler tracepoints, not syscalls: tested by
    // fork_and_exit_are_reported_with_exit_code. Every kind is made by some syscall or by them.
    for k in sentinel_common::Kind::ALL {
        let by_syscall = sentinel::syscalls::all().any(|c| c.spec.kind == k as u32);
        assert!(
            by_syscall || matches!(k, sentinel_common::Kind::Fork | sentinel_common::Kind::Exit),
            "{k:?} has no live test"
        );
    }
}

fn from(pid: u32) -> impl Fn(&Event) -> bool {
    move |e| e.pid == pid
}

fn check_identity(ev: &Event, pid: u32) {
    assert_eq!(ev.pid, pid);
    assert_eq!(ev.ppid, std::process::id(), "parent is the test process");
    assert_eq!(ev.uid, 0);
    assert_eq!(ev.euid, 0);
    assert_eq!(
        ev.auid,
        own_loginuid(),
        "login uid is inherited from the test process"
    );
    assert!(ev.cgroup_id > 0);
    assert!(ev.time_ns > 1_600_000_000_000_000_000, "wall-clock time");
}

#[test]
fn exec_captures_filename_argv_and_identity() {
    start_live();
    let bad = std::ffi::OsStr::from_encoded_bytes_unchecked_safe(b"caf\xff");
    let r = run_workload(&[
        std::ffi::OsStr::new("exit"),
        std::ffi::OsStr::new("0"),
        &bad,
    ]);
    let ev = wait_for("exec of the workload", |e| {
        e.pid == r.pid && e.kind() == sentinel_common::Kind::Exec
    });
    check_identity(&ev, r.pid);
    assert_eq!(ev.ret, 0);
    let Payload::Exec {
        filename,
        argv,
        argv_truncated,
        ..
    } = &ev.payload
    else {
        panic!("{ev:?}")
    };
    assert_eq!(
        filename.as_bytes(),
        workload_bin().as_os_str().as_encoded_bytes()
    );
    assert_eq!(argv.len(), 4, "{argv:?}");
    assert_eq!(argv[1].as_bytes(), b"exit");
    assert_eq!(
        argv[3].as_bytes(),
        b"caf\xff",
        "non-UTF-8 bytes are preserved"
    );
    assert_eq!(argv[3].escaped(), "caf\\xff");
    assert!(!argv_truncated);
    assert_eq!(
        ev.comm.as_bytes(),
        b"sentinel-worklo",
        "comm is the new program's, 15 bytes"
    );
}

/// `OsStr` from bytes for the test's own literals.
trait FromBytes {
    fn from_encoded_bytes_unchecked_safe(b: &[u8]) -> std::ffi::OsString;
}
impl FromBytes for std::ffi::OsStr {
    fn from_encoded_bytes_unchecked_safe(b: &[u8]) -> std::ffi::OsString {
        use std::os::unix::ffi::OsStringExt;
        std::ffi::OsString::from_vec(b.to_vec())
    }
}

#[test]
fn exec_with_huge_argv_is_truncated_and_flagged() {
    start_live();
    let long = "A".repeat(5000);
    let many: Vec<String> = (0..100).map(|i| format!("arg{i}")).collect();
    let mut args = vec!["exit".to_string(), "0".to_string(), long];
    args.extend(many);
    let r = run_workload(&args);
    let ev = wait_for("exec with huge argv", |e| {
        e.pid == r.pid && e.kind() == sentinel_common::Kind::Exec
    });
    let Payload::Exec {
        argv,
        argv_truncated,
        ..
    } = &ev.payload
    else {
        panic!()
    };
    assert!(
        argv_truncated,
        "a 5000-byte argument exceeds the per-argument limit"
    );
    // argv[0] is the path, then "exit", "0", and the long one, cut; nothing after it.
    assert_eq!(argv.len(), 4, "{argv:?}");
    assert_eq!(
        argv[3].as_bytes().len(),
        4095,
        "cut at the 4 KiB per-argument limit"
    );
    assert!(argv[3].as_bytes().iter().all(|b| *b == b'A'));
}

#[test]
fn exec_from_a_non_leader_thread_is_reported() {
    start_live();
    let r = run_workload(&["thread-exec"]);
    assert!(r.status.success(), "the exec'd /bin/true exits 0");
    let ev = wait_for("exec from a thread", |e| {
        e.pid == r.pid
            && matches!(&e.payload, Payload::Exec { argv, .. } if argv.get(1).is_some_and(|a| a.as_bytes() == b"thread-exec-marker"))
    });
    assert_eq!(ev.ret, 0);
    assert_eq!(ev.tid, r.pid, "after the exec the thread is the leader");
}

#[test]
fn failed_exec_is_reported_with_enoent() {
    start_live();
    let r = run_workload(&["exit", "0"]);
    let _ = r;
    let missing = "/nonexistent/sentinel-no-such-binary";
    let e = std::process::Command::new(missing).spawn();
    assert!(e.is_err());
    let ev = wait_for(
        "failed exec",
        |e| matches!(&e.payload, Payload::Exec { filename, .. } if filename.as_bytes() == missing.as_bytes()),
    );
    assert_eq!(ev.ret, -(libc::ENOENT as i64));
    assert_eq!(ev.errno.as_deref(), Some("ENOENT"));
}

#[test]
fn fork_and_exit_are_reported_with_exit_code() {
    start_live();
    // The test process itself is filtered like the agent, so the fork to look for is one the
    // workload makes.
    let k = run_workload(&["kill"]);
    let child = k.fact("child") as u32;
    let fork = wait_for("fork by the workload", |e| {
        e.pid == k.pid && matches!(e.payload, Payload::Fork { child_pid, .. } if child_pid == child)
    });
    assert_eq!(fork.ppid, std::process::id());
    let exit = wait_for("exit of the killed child", |e| {
        e.pid == child && e.kind() == sentinel_common::Kind::Exit
    });
    assert_eq!(
        exit.payload,
        Payload::Exit {
            code: None,
            signal: Some(libc::SIGTERM)
        }
    );

    let r = run_workload(&["exit", "7"]);
    assert_eq!(r.status.code(), Some(7));
    let exit = wait_for("exit of the workload", |e| {
        e.pid == r.pid && e.kind() == sentinel_common::Kind::Exit
    });
    assert_eq!(
        exit.payload,
        Payload::Exit {
            code: Some(7),
            signal: None
        }
    );
}

#[test]
fn open_success_and_enoent() {
    start_live();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("readme.txt");
    std::fs::write(&f, "x").unwrap();
    let ok = run_workload(&[std::ffi::OsStr::new("open"), f.as_os_str()]);
    let ev = wait_for("open of the temp file", |e| {
        e.pid == ok.pid
            && matches!(&e.payload, Payload::Open { path, .. } if path.as_bytes() == f.as_os_str().as_encoded_bytes())
    });
    check_identity(&ev, ok.pid);
    assert!(ev.ret >= 0);
    assert_eq!(ev.syscall.as_deref(), Some("openat"));
    let Payload::Open { flags, .. } = ev.payload else {
        unreachable!()
    };
    assert_eq!(flags & libc::O_ACCMODE as u64, libc::O_RDONLY as u64);
    assert_ne!(flags & libc::O_CLOEXEC as u64, 0);

    let missing = dir.path().join("missing");
    let bad = run_workload(&[std::ffi::OsStr::new("open"), missing.as_os_str()]);
    assert_eq!(bad.fact("ret"), -(libc::ENOENT as i64));
    let ev = wait_for("failed open", |e| {
        e.pid == bad.pid
            && matches!(&e.payload, Payload::Open { path, .. } if path.as_bytes() == missing.as_os_str().as_encoded_bytes())
    });
    assert_eq!(ev.ret, -(libc::ENOENT as i64));
    assert_eq!(ev.errno.as_deref(), Some("ENOENT"));
}

#[test]
fn connect_to_listener_and_refused() {
    start_live();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let ok = run_workload(&["connect", &port.to_string()]);
    assert_eq!(ok.fact("ret"), 0);
    let ev = wait_for("connect to listener", |e| {
        e.pid == ok.pid && e.kind() == sentinel_common::Kind::Connect
    });
    check_identity(&ev, ok.pid);
    assert_eq!(ev.ret, 0);
    let Payload::Connect {
        family,
        addr,
        port: p,
        ..
    } = &ev.payload
    else {
        panic!()
    };
    assert_eq!(*family, Family::Inet);
    assert_eq!(*addr, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(*p, Some(port));

    drop(l);
    // Refused: a port bound but not listening, held for the whole check (a port merely freed
    // could be taken by a parallel test's listener).
    let (closed, _bound) = bound_not_listening();
    let refused = run_workload(&["connect", &closed.to_string()]);
    assert_eq!(refused.fact("ret"), -(libc::ECONNREFUSED as i64));
    let ev = wait_for("refused connect", |e| {
        e.pid == refused.pid && e.kind() == sentinel_common::Kind::Connect
    });
    assert_eq!(ev.errno.as_deref(), Some("ECONNREFUSED"));
    assert!(matches!(ev.payload, Payload::Connect { port: Some(p), .. } if p == closed));
}

/// A TCP socket bound to 127.0.0.1 on a free port and not listening: connects are refused.
fn bound_not_listening() -> (u16, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    // SAFETY: a socket we own, bound with a correctly sized address, then asked its port.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let owned = std::os::fd::OwnedFd::from_raw_fd(fd);
        let mut sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
            },
            sin_zero: [0; 8],
        };
        let mut len = size_of::<libc::sockaddr_in>() as u32;
        assert_eq!(
            libc::bind(fd, (&sa as *const libc::sockaddr_in).cast(), len),
            0
        );
        assert_eq!(
            libc::getsockname(fd, (&mut sa as *mut libc::sockaddr_in).cast(), &mut len),
            0
        );
        (u16::from_be(sa.sin_port), owned)
    }
}

#[test]
fn setuid_drop_and_eperm() {
    start_live();
    let r = run_workload(&["setuid-drop"]);
    assert_eq!(r.fact("drop"), 0);
    assert_eq!(r.fact("regain"), -(libc::EPERM as i64));
    let drop = wait_for("setresuid", |e| {
        e.pid == r.pid && e.syscall.as_deref() == Some("setresuid")
    });
    assert_eq!(
        drop.payload,
        Payload::SetUid {
            ruid: Some(65534),
            euid: Some(65534),
            suid: Some(65534)
        }
    );
    assert_eq!(drop.ret, 0);
    let regain = wait_for("setuid(0)", |e| {
        e.pid == r.pid && e.syscall.as_deref() == Some("setuid")
    });
    assert_eq!(
        regain.payload,
        Payload::SetUid {
            ruid: None,
            euid: Some(0),
            suid: None
        }
    );
    assert_eq!(regain.ret, -(libc::EPERM as i64));
    assert_eq!(regain.uid, 65534, "the failing call is made as nobody");
}

#[test]
fn ptrace_of_a_child() {
    start_live();
    let r = run_workload(&["ptrace"]);
    let child = r.fact("child");
    assert_eq!(r.fact("ret"), 0);
    let ev = wait_for("ptrace attach", |e| {
        e.pid == r.pid && e.kind() == sentinel_common::Kind::Ptrace
    });
    let Payload::Ptrace {
        request_name,
        target_pid,
        ..
    } = &ev.payload
    else {
        panic!()
    };
    assert_eq!(request_name, "PTRACE_ATTACH");
    assert_eq!(*target_pid as i64, child);
}

#[test]
fn memfd_unshare_and_kill() {
    start_live();
    let m = run_workload(&["memfd", "sentinel-test-memfd"]);
    let ev = wait_for("memfd_create", |e| {
        e.pid == m.pid && e.kind() == sentinel_common::Kind::MemfdCreate
    });
    assert_eq!(
        ev.payload,
        Payload::MemfdCreate {
            name: "sentinel-test-memfd".into(),
            flags: libc::MFD_CLOEXEC
        }
    );
    assert!(ev.ret >= 0);

    let u = run_workload(&["unshare"]);
    let ev = wait_for("unshare", |e| {
        e.pid == u.pid && e.kind() == sentinel_common::Kind::Unshare
    });
    let Payload::Unshare { namespaces, .. } = &ev.payload else {
        panic!()
    };
    assert_eq!(namespaces, &["uts"]);
    assert_eq!(ev.ret, 0);

    let k = run_workload(&["kill"]);
    let child = k.fact("child");
    let ev = wait_for("kill", |e| {
        e.pid == k.pid && e.syscall.as_deref() == Some("kill")
    });
    assert_eq!(
        ev.payload,
        Payload::Kill {
            target_pid: child as i32,
            target_tid: None,
            signal: libc::SIGTERM
        }
    );
}

#[test]
fn file_changes_unlink_rename_chmod_chown() {
    start_live();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let r = run_workload(&["fileops", &d]);
    for k in ["chmod", "chown", "rename", "unlink"] {
        assert_eq!(r.fact(k), 0, "{k}");
    }
    let victim = format!("{d}/victim");
    let renamed = format!("{d}/renamed");
    let ev = wait_for("chmod", |e| {
        e.pid == r.pid && e.kind() == sentinel_common::Kind::Chmod
    });
    assert_eq!(
        ev.payload,
        Payload::Chmod {
            path: victim.as_str().into(),
            mode: 0o640
        }
    );
    let ev = wait_for("chown", |e| {
        e.pid == r.pid && e.kind() == sentinel_common::Kind::Chown
    });
    assert_eq!(
        ev.payload,
        Payload::Chown {
            path: victim.as_str().into(),
            owner: Some(65534),
            group: Some(65534)
        }
    );
    let ev = wait_for("rename", |e| {
        e.pid == r.pid && e.kind() == sentinel_common::Kind::Rename
    });
    assert_eq!(
        ev.payload,
        Payload::Rename {
            old_path: victim.as_str().into(),
            new_path: renamed.as_str().into(),
            flags: 0
        }
    );
    let ev = wait_for("unlink", |e| {
        e.pid == r.pid && e.kind() == sentinel_common::Kind::Unlink
    });
    assert_eq!(
        ev.payload,
        Payload::Unlink {
            dfd: libc::AT_FDCWD,
            path: renamed.as_str().into(),
            flags: 0
        }
    );
    let all: Vec<_> = collected(from(r.pid));
    assert!(all.iter().all(|e| e.ppid == std::process::id()));
}
