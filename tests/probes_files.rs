//! Live tests of the file syscalls the workload does not make: openat2, the older path-only
//! calls of x86_64 (open, chmod, chown, lchown, link, rename, unlink, rmdir, utime, utimes,
//! futimesat), renameat, symlinkat, lsetxattr and lremovexattr, execveat, and the dup family. A
//! forked child
//! makes each call, with failures, in a directory of the test's own.

use std::ffi::CString;

use sentinel::event::{Event, FileTime, Payload, RawStr};
use sentinel_e2e::*;

fn raw(s: &str) -> RawStr {
    RawStr::from(s)
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// The record of `syscall` by `pid` whose first path-like field is `path`.
fn call_on(pid: u32, syscall: &'static str, path: &str) -> Event {
    let path = path.to_string();
    wait_for(&format!("{syscall} of {path}"), move |e| {
        e.pid == pid
            && e.syscall.as_deref() == Some(syscall)
            && match &e.payload {
                Payload::Open { path: p, .. }
                | Payload::Chmod { path: p, .. }
                | Payload::Chown { path: p, .. }
                | Payload::Unlink { path: p, .. }
                | Payload::Utime { path: p, .. }
                | Payload::Xattr { path: p, .. }
                | Payload::Chdir { path: p, .. } => p.as_bytes() == path.as_bytes(),
                Payload::Rename { old_path: p, .. } => p.as_bytes() == path.as_bytes(),
                Payload::Link { link: p, .. } => p.as_bytes() == path.as_bytes(),
                _ => false,
            }
    })
}

/// `struct open_how` of openat2.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}
const RESOLVE_NO_SYMLINKS: u64 = 0x04;

#[test]
fn openat2_and_the_legacy_open_with_eloop() {
    start_live();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (file, sym) = (format!("{d}/created"), format!("{d}/sym"));
    std::os::unix::fs::symlink(&file, &sym).unwrap();
    let (cf, cs) = (c(&file), c(&sym));
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_NO_SYMLINKS,
    };
    let how_size = size_of::<OpenHow>();
    let (pid, r) = in_child(|| unsafe {
        let open = libc::syscall(
            libc::SYS_open,
            cf.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
            0o600,
        );
        let at2 = |p: &CString| {
            ret_or_errno(libc::syscall(
                libc::SYS_openat2,
                libc::AT_FDCWD,
                p.as_ptr(),
                &how,
                how_size,
            ))
        };
        [ret_or_errno(open), at2(&cf), at2(&cs)]
    });
    assert!(r[0] >= 0 && r[1] >= 0, "{r:?}");
    assert_eq!(r[2], -(libc::ELOOP as i64), "RESOLVE_NO_SYMLINKS");
    let ev = call_on(pid, "open", &file);
    assert_eq!(ev.ret, r[0]);
    assert_eq!(
        ev.payload,
        Payload::Open {
            dfd: libc::AT_FDCWD,
            path: raw(&file),
            flags: (libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC) as u64,
            mode: 0o600
        }
    );
    let ev = call_on(pid, "openat2", &file);
    assert_eq!(ev.ret, r[1]);
    assert_eq!(
        ev.payload,
        Payload::Open {
            dfd: libc::AT_FDCWD,
            path: raw(&file),
            flags: how.flags,
            mode: 0
        },
        "flags and mode from struct open_how"
    );
    let ev = call_on(pid, "openat2", &sym);
    assert_eq!(ev.errno.as_deref(), Some("ELOOP"));
}

#[test]
fn legacy_path_calls_chmod_chown_link_rename_unlink_rmdir() {
    start_live();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let p = |n: &str| format!("{d}/{n}");
    std::fs::write(p("file"), "x").unwrap();
    std::fs::create_dir(p("sub")).unwrap();
    std::fs::create_dir(p("full")).unwrap();
    std::fs::write(p("full/inside"), "x").unwrap();
    let names = [
        "file", "missing", "hard", "soft", "moved", "renamed", "sub", "full",
    ];
    let cs: Vec<CString> = names.iter().map(|n| c(&p(n))).collect();
    let [file, missing, hard, soft, moved, renamed, sub, full] = &cs[..] else {
        unreachable!()
    };
    let (pid, r) = in_child(|| unsafe {
        use libc::{SYS_chmod, SYS_chown, SYS_lchown, SYS_link, SYS_rename, SYS_rmdir, SYS_unlink};
        let s = |r: i64| ret_or_errno(r);
        [
            s(libc::syscall(SYS_chmod, file.as_ptr(), 0o640)),
            s(libc::syscall(SYS_chmod, missing.as_ptr(), 0o640)),
            s(libc::syscall(SYS_chown, file.as_ptr(), 65534, 65534)),
            s(libc::syscall(SYS_link, file.as_ptr(), hard.as_ptr())),
            s(libc::symlinkat(file.as_ptr(), libc::AT_FDCWD, soft.as_ptr()) as i64),
            // -1: leave the group alone.
            s(libc::syscall(SYS_lchown, soft.as_ptr(), 65533, -1)),
            s(libc::syscall(SYS_rename, hard.as_ptr(), moved.as_ptr())),
            s(libc::renameat(
                libc::AT_FDCWD,
                moved.as_ptr(),
                libc::AT_FDCWD,
                renamed.as_ptr(),
            ) as i64),
            s(libc::syscall(SYS_rename, missing.as_ptr(), moved.as_ptr())),
            s(libc::syscall(SYS_unlink, renamed.as_ptr())),
            s(libc::syscall(SYS_rmdir, sub.as_ptr())),
            s(libc::syscall(SYS_rmdir, full.as_ptr())),
        ]
    });
    let enoent = -(libc::ENOENT as i64);
    assert_eq!(
        r,
        [
            0,
            enoent,
            0,
            0,
            0,
            0,
            0,
            0,
            enoent,
            0,
            0,
            -(libc::ENOTEMPTY as i64)
        ],
        "the child's results"
    );
    assert_eq!(
        call_on(pid, "chmod", &p("file")).payload,
        Payload::Chmod {
            path: raw(&p("file")),
            mode: 0o640
        }
    );
    assert_eq!(
        call_on(pid, "chmod", &p("missing")).errno.as_deref(),
        Some("ENOENT")
    );
    assert_eq!(
        call_on(pid, "chown", &p("file")).payload,
        Payload::Chown {
            path: raw(&p("file")),
            owner: Some(65534),
            group: Some(65534)
        }
    );
    assert_eq!(
        call_on(pid, "lchown", &p("soft")).payload,
        Payload::Chown {
            path: raw(&p("soft")),
            owner: Some(65533),
            group: None
        }
    );
    assert_eq!(
        call_on(pid, "link", &p("hard")).payload,
        Payload::Link {
            target: raw(&p("file")),
            link: raw(&p("hard")),
            symbolic: false
        }
    );
    assert_eq!(
        call_on(pid, "symlinkat", &p("soft")).payload,
        Payload::Link {
            target: raw(&p("file")),
            link: raw(&p("soft")),
            symbolic: true
        }
    );
    assert_eq!(
        call_on(pid, "rename", &p("hard")).payload,
        Payload::Rename {
            old_path: raw(&p("hard")),
            new_path: raw(&p("moved")),
            flags: 0
        }
    );
    assert_eq!(
        call_on(pid, "renameat", &p("moved")).payload,
        Payload::Rename {
            old_path: raw(&p("moved")),
            new_path: raw(&p("renamed")),
            flags: 0
        }
    );
    assert_eq!(
        call_on(pid, "rename", &p("missing")).errno.as_deref(),
        Some("ENOENT")
    );
    assert_eq!(
        call_on(pid, "unlink", &p("renamed")).payload,
        Payload::Unlink {
            dfd: libc::AT_FDCWD,
            path: raw(&p("renamed")),
            flags: 0
        }
    );
    let rmdir = Payload::Unlink {
        dfd: libc::AT_FDCWD,
        path: raw(&p("sub")),
        flags: libc::AT_REMOVEDIR as u32,
    };
    assert_eq!(call_on(pid, "rmdir", &p("sub")).payload, rmdir);
    assert_eq!(
        call_on(pid, "rmdir", &p("full")).errno.as_deref(),
        Some("ENOTEMPTY")
    );
}

#[test]
fn legacy_utime_utimes_futimesat_and_enoent() {
    start_live();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (f1, f2, f3) = (format!("{d}/a"), format!("{d}/b"), format!("{d}/c"));
    for f in [&f1, &f2, &f3] {
        std::fs::write(f, "x").unwrap();
    }
    let missing = format!("{d}/missing");
    let (c1, c2, c3, cm) = (c(&f1), c(&f2), c(&f3), c(&missing));
    let utimbuf = libc::utimbuf {
        actime: 1_000_000_000,
        modtime: 1_000_000_001,
    };
    let tv = [
        libc::timeval {
            tv_sec: 1_100_000_000,
            tv_usec: 7,
        },
        libc::timeval {
            tv_sec: 1_200_000_000,
            tv_usec: 0,
        },
    ];
    let (pid, r) = in_child(|| unsafe {
        let s = |r: i64| ret_or_errno(r);
        [
            s(libc::syscall(libc::SYS_utime, c1.as_ptr(), &utimbuf)),
            s(libc::syscall(libc::SYS_utimes, c2.as_ptr(), tv.as_ptr())),
            s(libc::syscall(
                libc::SYS_futimesat,
                libc::AT_FDCWD,
                c3.as_ptr(),
                std::ptr::null::<libc::timeval>(),
            )),
            s(libc::syscall(libc::SYS_utimes, cm.as_ptr(), tv.as_ptr())),
        ]
    });
    assert_eq!(r, [0, 0, 0, -(libc::ENOENT as i64)], "the child's results");
    let at = |sec, nsec| FileTime::At { sec, nsec };
    let utime = |path: &str, atime, mtime| Payload::Utime {
        path: raw(path),
        dirfd: None,
        atime,
        mtime,
        flags: 0,
    };
    assert_eq!(
        call_on(pid, "utime", &f1).payload,
        utime(&f1, at(1_000_000_000, 0), at(1_000_000_001, 0))
    );
    assert_eq!(
        call_on(pid, "utimes", &f2).payload,
        utime(&f2, at(1_100_000_000, 7000), at(1_200_000_000, 0)),
        "microseconds become nanoseconds"
    );
    assert_eq!(
        call_on(pid, "futimesat", &f3).payload,
        utime(&f3, FileTime::Now, FileTime::Now),
        "NULL times: now; AT_FDCWD: no dirfd"
    );
    assert_eq!(
        call_on(pid, "utimes", &missing).errno.as_deref(),
        Some("ENOENT")
    );
}

#[test]
fn lsetxattr_lremovexattr_and_eperm_on_a_symlink() {
    start_live();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (file, sym) = (format!("{d}/file"), format!("{d}/sym"));
    std::fs::write(&file, "x").unwrap();
    std::os::unix::fs::symlink(&file, &sym).unwrap();
    let (cf, cs) = (c(&file), c(&sym));
    let (user, gone) = (c"user.sentinel", c"user.sentinel-missing");
    let (pid, r) = in_child(|| unsafe {
        let set = |p: &CString| {
            ret_or_errno(
                libc::lsetxattr(p.as_ptr(), user.as_ptr(), b"vv".as_ptr().cast(), 2, 0) as i64,
            )
        };
        [
            set(&cf),
            // User attributes are not allowed on symbolic links themselves.
            set(&cs),
            ret_or_errno(libc::lremovexattr(cf.as_ptr(), user.as_ptr()) as i64),
            ret_or_errno(libc::lremovexattr(cf.as_ptr(), gone.as_ptr()) as i64),
        ]
    });
    assert_eq!(
        r,
        [0, -(libc::EPERM as i64), 0, -(libc::ENODATA as i64)],
        "the child's results"
    );
    let xattr = |path: &str, name: &str, remove: bool, size: u64| Payload::Xattr {
        path: raw(path),
        fd: None,
        name: raw(name),
        remove,
        size,
        flags: 0,
        caps: vec![],
        caps_effective: false,
    };
    assert_eq!(
        call_on(pid, "lsetxattr", &file).payload,
        xattr(&file, "user.sentinel", false, 2)
    );
    let ev = call_on(pid, "lsetxattr", &sym);
    assert_eq!(ev.errno.as_deref(), Some("EPERM"));
    assert_eq!(ev.payload, xattr(&sym, "user.sentinel", false, 2));
    let ev = call_with_ret(pid, "lremovexattr", 0);
    assert_eq!(ev.payload, xattr(&file, "user.sentinel", true, 0));
    let ev = call_with_ret(pid, "lremovexattr", -(libc::ENODATA as i64));
    assert_eq!(ev.errno.as_deref(), Some("ENODATA"));
    assert_eq!(ev.payload, xattr(&file, "user.sentinel-missing", true, 0));
}

#[test]
fn execveat_runs_a_program_and_reports_enoent() {
    start_live();
    // On the heap, not literals: exec strings are read at the syscall's entry, before the
    // kernel touches them, and a forked child has no page-table entries yet for the
    // binary's read-only data (it would fault them in on first use; the probe cannot), so a
    // literal would be recorded as an empty string.
    let (t, missing) = (c("/bin/true"), c("/nonexistent/sentinel-execveat"));
    let marker = c("execveat-marker");
    let argv = [t.as_ptr(), marker.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];
    // Not `in_child`: a successful exec never returns to report; the failed one comes first
    // and its result is the exit code if the second does not replace the process.
    // SAFETY: the child makes two execveat calls on data prepared before the fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        unsafe {
            let flags = 0;
            libc::syscall(
                libc::SYS_execveat,
                libc::AT_FDCWD,
                missing.as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
                flags,
            );
            libc::syscall(
                libc::SYS_execveat,
                libc::AT_FDCWD,
                t.as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
                flags,
            );
            libc::_exit(99);
        }
    }
    let mut st = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    assert!(
        libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0,
        "/bin/true ran ({st:#x})"
    );
    let pid = pid as u32;
    let failed = wait_for("failed execveat", |e| {
        e.pid == pid
            && matches!(&e.payload, Payload::Exec { filename, .. } if filename.as_bytes() == missing.to_bytes())
    });
    assert_eq!(failed.errno.as_deref(), Some("ENOENT"));
    assert_eq!(failed.syscall.as_deref(), Some("execveat"));
    let ran = wait_for("execveat of /bin/true", |e| {
        e.pid == pid && e.ret == 0 && e.kind() == sentinel_common::Kind::Exec
    });
    assert_eq!(ran.syscall.as_deref(), Some("execveat"));
    assert!(
        matches!(&ran.payload, Payload::Exec { filename, argv, .. }
            if filename.as_bytes() == b"/bin/true"
                && argv.iter().map(|a| a.as_bytes().to_vec()).collect::<Vec<_>>()
                    == [b"/bin/true".to_vec(), b"execveat-marker".to_vec()]),
        "{ran:?}"
    );
}

#[test]
fn dup_dup2_dup3_and_fcntl_dupfd_copy_descriptors() {
    start_live();
    let dir = tempfile::tempdir().unwrap();
    let d = c(dir.path().to_str().unwrap());
    // SAFETY: plain descriptor syscalls on a path prepared before the fork.
    let (pid, [dfd, f, u, t, w]) = in_child(|| unsafe {
        let dfd = libc::open(
            d.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        );
        let f = libc::fcntl(dfd, libc::F_DUPFD_CLOEXEC, 20);
        // Not a copy: dropped in the kernel.
        libc::fcntl(dfd, libc::F_GETFL);
        let u = libc::dup(dfd);
        let t = libc::dup3(dfd, 40, libc::O_CLOEXEC);
        let w = libc::syscall(libc::SYS_dup2, dfd, 41);
        [dfd as i64, f as i64, u as i64, t as i64, w]
    });
    assert!(dfd >= 0 && f >= 20 && u >= 0, "{dfd} {f} {u}");
    assert_eq!((t, w), (40, 41));
    // Records of one process arrive in order: once the last call is in, all are.
    let last = one_call(pid, "dup2");
    assert_eq!(
        (&last.payload, last.ret),
        (&Payload::Dup { fd: dfd as i32 }, 41)
    );
    super::check_identity(&last, pid);
    for (call, ret) in [("fcntl", f), ("dup", u), ("dup3", 40)] {
        let ev = one_call(pid, call);
        assert_eq!(
            (&ev.payload, ev.ret),
            (&Payload::Dup { fd: dfd as i32 }, ret),
            "{call}"
        );
    }
}

#[test]
fn chdir_by_path_fchdir_by_descriptor_and_enoent() {
    start_live();
    let dir = tempfile::tempdir().unwrap();
    let d = c(dir.path().to_str().unwrap());
    let missing = format!("{}/missing", dir.path().display());
    let m = c(&missing);
    // SAFETY: plain syscalls on paths prepared before the fork.
    let (pid, [ok, bad, dfd, f]) = in_child(|| unsafe {
        let ok = libc::chdir(d.as_ptr()) as i64;
        let bad = ret_or_errno(libc::chdir(m.as_ptr()) as i64);
        let dfd = libc::open(c"/".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
        let f = libc::fchdir(dfd) as i64;
        [ok, bad, dfd as i64, f]
    });
    assert_eq!((ok, bad, f), (0, -(libc::ENOENT as i64), 0), "dfd {dfd}");
    let by_path = call_on(pid, "chdir", dir.path().to_str().unwrap());
    assert_eq!(by_path.ret, 0);
    assert!(matches!(by_path.payload, Payload::Chdir { fd: None, .. }));
    super::check_identity(&by_path, pid);
    let failed = call_on(pid, "chdir", &missing);
    assert_eq!(failed.errno.as_deref(), Some("ENOENT"));
    let by_fd = one_call(pid, "fchdir");
    assert_eq!(by_fd.ret, 0);
    assert_eq!(
        by_fd.payload,
        Payload::Chdir {
            path: Default::default(),
            fd: Some(dfd as i32)
        }
    );
}
