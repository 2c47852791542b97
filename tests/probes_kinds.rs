//! End-to-end tests of the kinds added for detection coverage (utime, xattr, link, truncate,
//! process_vm, prctl, socket, bind, listen, module) and of the exec environment: the workload
//! makes the syscalls, including one that fails, and the decoded records are checked.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use sentinel::event::{Family, FileTime, Payload, RawStr};
use sentinel_common::Kind;
use sentinel_e2e::*;

fn of(pid: u32, kind: Kind) -> impl Fn(&sentinel::event::Event) -> bool {
    move |e| e.pid == pid && e.kind() == kind
}

fn raw(s: &str) -> RawStr {
    RawStr::from(s)
}

#[test]
fn utime_times_by_path_by_fd_and_enoent() {
    start_live();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("stamped");
    std::fs::write(&f, "x").unwrap();
    let path = f.to_str().unwrap();
    let r = run_workload(&["utime", path]);
    assert_eq!(r.fact("set"), 0);
    assert_eq!(r.fact("now"), 0);
    assert_eq!(r.fact("missing"), -(libc::ENOENT as i64));
    let fd = r.fact("fd") as i32;

    let ev = wait_for("utimensat by path", |e| {
        of(r.pid, Kind::Utime)(e)
            && matches!(&e.payload, Payload::Utime { path: p, .. } if *p == raw(path))
    });
    assert_eq!(ev.ret, 0);
    assert_eq!(ev.syscall.as_deref(), Some("utimensat"));
    assert_eq!(
        ev.payload,
        Payload::Utime {
            path: raw(path),
            dirfd: None,
            atime: FileTime::At {
                sec: 1_000_000_000,
                nsec: 5
            },
            mtime: FileTime::Omit,
            flags: 0,
        }
    );
    let ev = wait_for("utimensat on an fd with NULL times", |e| {
        of(r.pid, Kind::Utime)(e) && matches!(&e.payload, Payload::Utime { dirfd: Some(_), .. })
    });
    assert_eq!(
        ev.payload,
        Payload::Utime {
            path: RawStr::default(),
            dirfd: Some(fd),
            atime: FileTime::Now,
            mtime: FileTime::Now,
            flags: 0,
        }
    );
    let missing = format!("{path}.missing");
    let ev = wait_for("utimensat of a missing file", |e| {
        of(r.pid, Kind::Utime)(e)
            && matches!(&e.payload, Payload::Utime { path: p, .. } if *p == raw(&missing))
    });
    assert_eq!(ev.errno.as_deref(), Some("ENOENT"));
}

#[test]
fn xattr_file_capabilities_fd_variants_and_enodata() {
    start_live();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("capable");
    std::fs::write(&f, "x").unwrap();
    let path = f.to_str().unwrap();
    let r = run_workload(&["xattr", path]);
    assert_eq!(r.fact("setcap"), 0, "setting security.capability as root");
    assert_eq!(
        r.fact("fset"),
        0,
        "user xattrs on the temp directory's file system"
    );
    assert_eq!(r.fact("fremove"), 0);
    assert_eq!(r.fact("missing"), -(libc::ENODATA as i64));
    let fd = r.fact("fd") as i32;

    let ev = wait_for("setxattr security.capability", |e| {
        of(r.pid, Kind::Xattr)(e) && e.syscall.as_deref() == Some("setxattr")
    });
    assert_eq!(
        ev.payload,
        Payload::Xattr {
            path: raw(path),
            fd: None,
            name: raw("security.capability"),
            remove: false,
            size: 20,
            flags: 0,
            caps: vec!["cap_net_raw".into()],
            caps_effective: true,
        }
    );
    assert_eq!(ev.ret, 0);
    // The fd variants: the agent read the fd's path while the process was there, or left it
    // empty; either way the fd is reported.
    let ev = wait_for("fsetxattr", |e| {
        of(r.pid, Kind::Xattr)(e) && e.syscall.as_deref() == Some("fsetxattr")
    });
    let Payload::Xattr {
        fd: got_fd,
        name,
        remove,
        size,
        caps,
        path: p,
        ..
    } = &ev.payload
    else {
        panic!("{ev:?}")
    };
    assert_eq!(
        (*got_fd, name, *remove, *size),
        (Some(fd), &raw("user.sentinel"), false, 1)
    );
    assert!(caps.is_empty());
    assert!(p.is_empty() || *p == raw(path), "{p}");
    let ev = wait_for("fremovexattr", |e| {
        of(r.pid, Kind::Xattr)(e) && e.syscall.as_deref() == Some("fremovexattr")
    });
    assert!(matches!(&ev.payload, Payload::Xattr { remove: true, fd: Some(x), .. } if *x == fd));
    let ev = wait_for("removexattr of a missing attribute", |e| {
        of(r.pid, Kind::Xattr)(e) && e.syscall.as_deref() == Some("removexattr")
    });
    assert_eq!(ev.errno.as_deref(), Some("ENODATA"));
    assert!(matches!(&ev.payload, Payload::Xattr { path: x, remove: true, .. } if *x == raw(path)));
}

#[test]
fn links_symbolic_hard_and_eexist() {
    start_live();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let r = run_workload(&["link", d]);
    assert_eq!(r.fact("symlink"), 0);
    assert_eq!(r.fact("link"), 0);
    assert_eq!(r.fact("again"), -(libc::EEXIST as i64));
    let target = raw(&format!("{d}/target"));
    let ev = wait_for("symlink", |e| {
        of(r.pid, Kind::Link)(e) && e.syscall.as_deref() == Some("symlink")
    });
    assert_eq!(
        ev.payload,
        Payload::Link {
            target: target.clone(),
            link: raw(&format!("{d}/sym")),
            symbolic: true
        }
    );
    let links: Vec<_> = {
        wait_for("the failed linkat", |e| {
            of(r.pid, Kind::Link)(e) && e.ret < 0
        });
        collected(|e| of(r.pid, Kind::Link)(e) && e.syscall.as_deref() == Some("linkat"))
    };
    assert_eq!(links.len(), 2, "{links:?}");
    for l in &links {
        assert_eq!(
            l.payload,
            Payload::Link {
                target: target.clone(),
                link: raw(&format!("{d}/hard")),
                symbolic: false
            }
        );
    }
    assert_eq!(links[0].ret, 0);
    assert_eq!(links[1].errno.as_deref(), Some("EEXIST"));
}

#[test]
fn truncate_by_path_and_by_fd_resolved_while_held() {
    start_live();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("log");
    std::fs::write(&f, "0123456789abcdef").unwrap();
    let path = f.to_str().unwrap();
    let mut child = Command::new(workload_bin())
        .args(["truncate", path])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn workload");
    let pid = child.id();
    let mut facts = std::collections::HashMap::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while !facts.contains_key("held") {
        let line = lines
            .next()
            .expect("workload ended before holding")
            .unwrap();
        if let Some((k, v)) = line.split_once('=') {
            facts.insert(k.to_string(), v.parse::<i64>().unwrap());
        }
    }
    assert_eq!(facts["path"], 0);
    assert_eq!(facts["fd_ret"], 0);
    assert_eq!(facts["negative"], -(libc::EINVAL as i64));
    let fd = facts["fd"] as i32;
    let by_fd = wait_for("ftruncate", |e| {
        of(pid, Kind::Truncate)(e) && e.syscall.as_deref() == Some("ftruncate")
    });
    // Release the workload only once the record is in: its fd was open while it was drained.
    drop(child.stdin.take());
    let _ = child.wait();
    assert_eq!(
        by_fd.payload,
        Payload::Truncate {
            path: raw(path),
            fd: Some(fd),
            length: 3
        },
        "the fd's path is read from /proc while the process holds it"
    );
    let ev = wait_for("truncate by path", |e| {
        of(pid, Kind::Truncate)(e) && e.syscall.as_deref() == Some("truncate") && e.ret == 0
    });
    assert_eq!(
        ev.payload,
        Payload::Truncate {
            path: raw(path),
            fd: None,
            length: 10
        }
    );
    let ev = wait_for("truncate to a negative length", |e| {
        of(pid, Kind::Truncate)(e) && e.ret < 0
    });
    assert_eq!(ev.errno.as_deref(), Some("EINVAL"));
    assert!(matches!(ev.payload, Payload::Truncate { length: -1, .. }));
}

#[test]
fn process_vm_read_write_and_esrch() {
    start_live();
    let r = run_workload(&["process-vm"]);
    let child = r.fact("child") as i32;
    assert_eq!(r.fact("read"), 8);
    assert_eq!(r.fact("write"), 8);
    assert_eq!(r.fact("gone"), -(libc::ESRCH as i64));
    let read = wait_for("process_vm_readv", |e| {
        of(r.pid, Kind::ProcessVm)(e)
            && e.ret == 8
            && e.syscall.as_deref() == Some("process_vm_readv")
    });
    assert_eq!(
        read.payload,
        Payload::ProcessVm {
            target_pid: child,
            write: false
        }
    );
    let write = wait_for("process_vm_writev", |e| {
        of(r.pid, Kind::ProcessVm)(e) && e.syscall.as_deref() == Some("process_vm_writev")
    });
    assert_eq!(
        write.payload,
        Payload::ProcessVm {
            target_pid: child,
            write: true
        }
    );
    let gone = wait_for("process_vm_readv of a missing pid", |e| {
        of(r.pid, Kind::ProcessVm)(e) && e.ret < 0
    });
    assert_eq!(gone.errno.as_deref(), Some("ESRCH"));
    assert!(matches!(
        gone.payload,
        Payload::ProcessVm {
            target_pid: i32::MAX,
            ..
        }
    ));
}

#[test]
fn prctl_set_name_only() {
    start_live();
    let r = run_workload(&["prctl", "kworker/0:7"]);
    assert_eq!(r.fact("ret"), 0);
    let ev = wait_for("prctl(PR_SET_NAME)", of(r.pid, Kind::Prctl));
    assert_eq!(
        ev.payload,
        Payload::Prctl {
            option: libc::PR_SET_NAME as u32,
            name: raw("kworker/0:7")
        }
    );
    // The exit comes after every prctl: by then the dropped ones would have arrived.
    wait_for("exit of the workload", of(r.pid, Kind::Exit));
    let all = collected(of(r.pid, Kind::Prctl));
    assert_eq!(
        all.len(),
        1,
        "PR_SET_DUMPABLE and PR_GET_NAME are dropped: {all:?}"
    );
}

#[test]
fn sockets_packet_and_raw_only() {
    start_live();
    let r = run_workload(&["sockets"]);
    assert!(r.fact("packet") >= 0, "AF_PACKET socket as root");
    assert!(r.fact("icmp") >= 0, "raw ICMP socket as root");
    assert!(r.fact("tcp") >= 0 && r.fact("netlink") >= 0);
    let bad = r.fact("bad");
    assert!(bad < 0, "protocol 300 is refused");
    wait_for("exit of the workload", of(r.pid, Kind::Exit));
    let all = collected(of(r.pid, Kind::Socket));
    assert_eq!(
        all.len(),
        3,
        "TCP and netlink sockets are dropped in the kernel: {all:?}"
    );
    assert_eq!(
        all[0].payload,
        Payload::Socket {
            family: libc::AF_PACKET,
            sock_type: libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            protocol: (libc::ETH_P_ALL as u16).to_be() as i32,
            family_name: "AF_PACKET".into(),
            type_name: "SOCK_RAW".into(),
            protocol_name: "ETH_P_ALL".into(),
        }
    );
    assert_eq!(all[0].ret, r.fact("packet"));
    assert!(matches!(
        &all[1].payload,
        Payload::Socket { family_name, protocol_name, .. }
            if family_name == "AF_INET" && protocol_name == "IPPROTO_ICMP"
    ));
    assert_eq!(all[2].ret, bad);
    assert!(all[2].errno.is_some());
}

#[test]
fn bind_and_listen_with_einval() {
    start_live();
    let r = run_workload(&["bind-listen"]);
    assert_eq!(r.fact("bind"), 0);
    assert_eq!(r.fact("listen"), 0);
    assert_eq!(r.fact("again"), -(libc::EINVAL as i64));
    let fd = r.fact("fd") as i32;
    let ev = wait_for("bind", |e| of(r.pid, Kind::Bind)(e) && e.ret == 0);
    assert_eq!(
        ev.payload,
        Payload::Bind {
            fd,
            family: Family::Inet,
            addr: Some("127.0.0.1".parse().unwrap()),
            port: Some(0),
            unix_path: None
        }
    );
    let ev = wait_for("listen", of(r.pid, Kind::Listen));
    assert_eq!(ev.payload, Payload::Listen { fd, backlog: 7 });
    let ev = wait_for("second bind", |e| of(r.pid, Kind::Bind)(e) && e.ret < 0);
    assert_eq!(ev.errno.as_deref(), Some("EINVAL"));
}

#[test]
fn module_syscalls_are_captured_or_reported_unavailable() {
    start_live();
    // This needs a kernel with module support to cause events; on one without it (no
    // /proc/modules) the hooks must be reported unavailable rather than failed.
    let has_modules = std::path::Path::new("/proc/modules").exists();
    let unavailable = live_unavailable();
    for s in ["init_module", "finit_module", "delete_module"] {
        let tp = std::path::Path::new("/sys/kernel/tracing/events/syscalls")
            .join(format!("sys_exit_{s}"))
            .is_dir();
        assert_eq!(
            unavailable.iter().any(|u| u == s),
            !tp,
            "{s}: unavailable exactly when the kernel has no tracepoint ({unavailable:?})"
        );
        if has_modules {
            assert!(tp, "{s}: a kernel with modules has the tracepoint");
        }
    }
    if has_modules {
        let r = run_workload(&["delete-module", "sentinel_no_such_module"]);
        assert_eq!(r.fact("ret"), -(libc::ENOENT as i64));
        let ev = wait_for("delete_module", of(r.pid, Kind::Module));
        assert!(matches!(
            &ev.payload,
            Payload::Module { op: sentinel::event::ModuleOp::Unload, name, .. }
                if *name == raw("sentinel_no_such_module")
        ));
        // Loads that fail: an empty image (init_module) and an empty file (finit_module).
        let dir = tempfile::tempdir().unwrap();
        let ko = dir.path().join("sentinel_empty.ko");
        std::fs::write(&ko, "").unwrap();
        let ko = std::ffi::CString::new(ko.to_str().unwrap()).unwrap();
        let params = std::ffi::CString::new("sentinel_param=1").unwrap();
        let (pid, r) = in_child(|| unsafe {
            let fd = libc::open(ko.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            [
                ret_or_errno(libc::syscall(
                    libc::SYS_init_module,
                    params.as_ptr(),
                    0usize,
                    params.as_ptr(),
                )),
                fd as i64,
                ret_or_errno(libc::syscall(
                    libc::SYS_finit_module,
                    fd,
                    params.as_ptr(),
                    0,
                )),
            ]
        });
        assert!(r[0] < 0 && r[1] >= 0 && r[2] < 0, "{r:?}");
        let ev = one_call(pid, "init_module");
        assert_eq!(ev.ret, r[0]);
        assert!(
            matches!(
                &ev.payload,
                Payload::Module { op: sentinel::event::ModuleOp::Load, size: Some(0), params, .. }
                    if *params == raw("sentinel_param=1")
            ),
            "{ev:?}"
        );
        let ev = one_call(pid, "finit_module");
        assert_eq!(ev.ret, r[2]);
        assert!(
            matches!(
                &ev.payload,
                Payload::Module { op: sentinel::event::ModuleOp::Load, fd: Some(fd), params, flags: 0, .. }
                    if *fd as i64 == r[1] && *params == raw("sentinel_param=1")
            ),
            "{ev:?}"
        );
    }
}

#[test]
fn exec_keeps_only_listed_environment_variables() {
    start_live();
    let long = "x".repeat(1500);
    let out = Command::new(workload_bin())
        .args(["exit", "0", "env-marker"])
        .env_clear()
        .env("HISTFILE", "/dev/null")
        .env("SENTINEL_SECRET", "must-not-leave-the-kernel")
        .env("LD_LIBRARY_PATH", "/opt/sentinel-test/lib")
        .env("LD_PRELOADX", "not-a-listed-name")
        .env("PROMPT_COMMAND", &long)
        // Sorted before the listed names (Command passes them in name order): the listed ones
        // sit past the kernel's first blocks of envp entries.
        .envs((0..21).map(|i| (format!("FILLER_{i:02}"), "x")))
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn workload");
    let pid = out.id();
    let mut child = out;
    let _ = child.wait();
    let ev = wait_for("exec with environment", |e| {
        e.pid == pid
            && matches!(&e.payload, Payload::Exec { argv, .. } if argv.get(3).is_some_and(|a| a.as_bytes() == b"env-marker"))
    });
    let Payload::Exec {
        env, env_truncated, ..
    } = &ev.payload
    else {
        panic!()
    };
    let names: Vec<String> = env.iter().map(|(n, _)| n.to_string()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["HISTFILE", "LD_LIBRARY_PATH", "PROMPT_COMMAND"],
        "only listed names, each once"
    );
    let value = |n: &str| {
        env.iter()
            .find(|(k, _)| k.as_bytes() == n.as_bytes())
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(value("HISTFILE"), raw("/dev/null"));
    assert_eq!(value("LD_LIBRARY_PATH"), raw("/opt/sentinel-test/lib"));
    // PROMPT_COMMAND=... is cut at 1 KiB (the string with its name, NUL excluded).
    let pc = value("PROMPT_COMMAND");
    assert_eq!(pc.as_bytes().len(), 1023 - "PROMPT_COMMAND=".len());
    assert!(env_truncated, "a cut value sets env_truncated");

    // An environment without listed variables: nothing kept, nothing cut.
    let plain = [("PATH", "/usr/bin:/bin"), ("HISTFILEX", "/dev/null")].map(|(n, v)| (n.into(), v));
    let ev = exec_with_env("plain-env-marker", plain.into_iter());
    assert!(
        matches!(&ev.payload, Payload::Exec { env, env_truncated: false, .. } if env.is_empty()),
        "{ev:?}"
    );

    // More entries than the kernel looks at (MAX_ENV_SCAN = 128): a listed name past them is
    // not seen, and the record says the environment was cut.
    let fillers = (0..140).map(|i| (format!("FILLER_{i:03}"), "x"));
    let ev = exec_with_env(
        "long-env-marker",
        fillers.chain([("HISTFILE".into(), "/dev/null")]),
    );
    assert!(
        matches!(&ev.payload, Payload::Exec { env, env_truncated: true, .. } if env.is_empty()),
        "{ev:?}"
    );
}

/// Runs the workload with only `env` as its environment and returns its exec record.
fn exec_with_env(
    marker: &str,
    env: impl Iterator<Item = (String, &'static str)>,
) -> sentinel::event::Event {
    let mut child = Command::new(workload_bin())
        .args(["exit", "0", marker])
        .env_clear()
        .envs(env)
        .spawn()
        .expect("spawn workload");
    let pid = child.id();
    let _ = child.wait();
    wait_for(marker, |e| e.pid == pid && e.kind() == Kind::Exec)
}
