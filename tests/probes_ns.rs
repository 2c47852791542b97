//! Live tests of the namespace, mount, bpf and signal hooks the workload has no action for:
//! mount and umount2 (inside a mount namespace of the child's own, so the host's mounts are
//! untouched), setns, bpf, tkill and tgkill. A forked child makes each call, one failing.

use sentinel::event::{Payload, RawStr};
use sentinel_e2e::*;

fn raw(s: &str) -> RawStr {
    RawStr::from(s)
}

#[test]
fn mount_and_umount_in_a_private_namespace_with_failures() {
    start_live();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("mnt");
    std::fs::create_dir(&target).unwrap();
    let t = target.to_str().unwrap().to_string();
    let ct = std::ffi::CString::new(t.as_str()).unwrap();
    let (pid, r) = in_child(|| unsafe {
        let root = c"/";
        let unshared = ret_or_errno(libc::unshare(libc::CLONE_NEWNS) as i64);
        let private = ret_or_errno(libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) as i64);
        let tmpfs = ret_or_errno(libc::mount(
            c"sentinel-test-tmpfs".as_ptr(),
            ct.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            c"size=64k".as_ptr().cast(),
        ) as i64);
        let nofs = ret_or_errno(libc::mount(
            c"none".as_ptr(),
            ct.as_ptr(),
            c"sentinel-no-such-fs".as_ptr(),
            0,
            std::ptr::null(),
        ) as i64);
        let umount = ret_or_errno(libc::umount2(ct.as_ptr(), libc::MNT_DETACH) as i64);
        // Not a mount point any more.
        let again = ret_or_errno(libc::umount2(ct.as_ptr(), 0) as i64);
        [unshared, private, tmpfs, nofs, umount, again]
    });
    assert_eq!(
        r,
        [0, 0, 0, -(libc::ENODEV as i64), 0, -(libc::EINVAL as i64)],
        "the child's results"
    );
    let mount = |ret: i64, fstype: &'static str| {
        wait_for(&format!("mount of {fstype:?}"), move |e| {
            e.pid == pid
                && e.ret == ret
                && matches!(&e.payload, Payload::Mount { fstype: f, .. } if f.as_bytes() == fstype.as_bytes())
        })
    };
    let ev = mount(0, "");
    assert_eq!(
        ev.payload,
        Payload::Mount {
            source: RawStr::default(),
            target: raw("/"),
            fstype: RawStr::default(),
            flags: libc::MS_REC | libc::MS_PRIVATE,
        },
        "NULL strings are empty"
    );
    assert_eq!(ev.syscall.as_deref(), Some("mount"));
    assert_eq!(
        mount(0, "tmpfs").payload,
        Payload::Mount {
            source: raw("sentinel-test-tmpfs"),
            target: raw(&t),
            fstype: raw("tmpfs"),
            flags: libc::MS_NOSUID | libc::MS_NODEV,
        }
    );
    let ev = mount(-(libc::ENODEV as i64), "sentinel-no-such-fs");
    assert_eq!(ev.errno.as_deref(), Some("ENODEV"));
    assert!(
        matches!(&ev.payload, Payload::Mount { source, flags: 0, .. } if *source == raw("none"))
    );
    let ev = call_with_ret(pid, "umount2", 0);
    assert_eq!(
        ev.payload,
        Payload::Umount {
            target: raw(&t),
            flags: libc::MNT_DETACH as u32
        }
    );
    let ev = call_with_ret(pid, "umount2", -(libc::EINVAL as i64));
    assert_eq!(ev.errno.as_deref(), Some("EINVAL"));
    assert_eq!(
        ev.payload,
        Payload::Umount {
            target: raw(&t),
            flags: 0
        }
    );
}

#[test]
fn setns_into_own_uts_namespace_and_einval_for_the_wrong_type() {
    start_live();
    let (pid, r) = in_child(|| unsafe {
        let fd = libc::open(
            c"/proc/self/ns/uts".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        [
            fd as i64,
            ret_or_errno(libc::setns(fd, libc::CLONE_NEWUTS) as i64),
            // A UTS namespace file is not a network namespace.
            ret_or_errno(libc::setns(fd, libc::CLONE_NEWNET) as i64),
        ]
    });
    assert!(r[0] >= 0, "open of the namespace file");
    assert_eq!(r[1..], [0, -(libc::EINVAL as i64)]);
    let fd = r[0] as i32;
    let ev = call_with_ret(pid, "setns", 0);
    assert_eq!(
        ev.payload,
        Payload::Setns {
            fd,
            nstype: libc::CLONE_NEWUTS as u64,
            namespaces: vec!["uts".into()]
        }
    );
    let ev = call_with_ret(pid, "setns", -(libc::EINVAL as i64));
    assert_eq!(ev.errno.as_deref(), Some("EINVAL"));
    assert_eq!(
        ev.payload,
        Payload::Setns {
            fd,
            nstype: libc::CLONE_NEWNET as u64,
            namespaces: vec!["net".into()]
        }
    );
}

#[test]
fn bpf_map_create_and_einval_for_an_unknown_command() {
    start_live();
    // union bpf_attr for BPF_MAP_CREATE: map_type, key_size, value_size, max_entries; the
    // rest zero (the kernel refuses non-zero bytes it does not know).
    let mut attr = [0u32; 32];
    attr[..4].copy_from_slice(&[2 /* BPF_MAP_TYPE_ARRAY */, 4, 8, 1]);
    let size = size_of_val(&attr);
    let (pid, r) = in_child(|| unsafe {
        [
            ret_or_errno(libc::syscall(libc::SYS_bpf, 0, attr.as_ptr(), size)),
            ret_or_errno(libc::syscall(libc::SYS_bpf, 9999, attr.as_ptr(), size)),
        ]
    });
    assert!(r[0] >= 0, "BPF_MAP_CREATE as root: {}", r[0]);
    assert_eq!(r[1], -(libc::EINVAL as i64));
    let ev = call_with_ret(pid, "bpf", r[0]);
    assert_eq!(
        ev.payload,
        Payload::Bpf {
            cmd: 0,
            cmd_name: "BPF_MAP_CREATE".into()
        }
    );
    let ev = call_with_ret(pid, "bpf", r[1]);
    assert_eq!(ev.errno.as_deref(), Some("EINVAL"));
    assert_eq!(
        ev.payload,
        Payload::Bpf {
            cmd: 9999,
            cmd_name: "BPF_UNKNOWN".into()
        }
    );
}

#[test]
fn tkill_and_tgkill_to_self_and_their_failures() {
    start_live();
    // SIGURG is ignored by default: sending it to ourselves is harmless.
    let sig = libc::SIGURG;
    let (pid, r) = in_child(|| unsafe {
        let me = libc::getpid();
        let tid = libc::gettid();
        [
            ret_or_errno(libc::syscall(libc::SYS_tgkill, me, tid, sig)),
            ret_or_errno(libc::syscall(libc::SYS_tkill, tid, sig)),
            // No thread has this id (above any pid_max).
            ret_or_errno(libc::syscall(libc::SYS_tgkill, me, 1 << 30, sig)),
            ret_or_errno(libc::syscall(libc::SYS_tkill, -5, sig)),
        ]
    });
    assert_eq!(
        r,
        [0, 0, -(libc::ESRCH as i64), -(libc::EINVAL as i64)],
        "the child's results"
    );
    let me = pid as i32;
    let ev = call_with_ret(pid, "tgkill", 0);
    assert_eq!(
        ev.payload,
        Payload::Kill {
            target_pid: me,
            target_tid: Some(me),
            signal: sig
        }
    );
    let ev = call_with_ret(pid, "tkill", 0);
    assert_eq!(
        ev.payload,
        Payload::Kill {
            target_pid: me,
            target_tid: Some(me),
            signal: sig
        }
    );
    let ev = call_with_ret(pid, "tgkill", -(libc::ESRCH as i64));
    assert_eq!(ev.errno.as_deref(), Some("ESRCH"));
    assert_eq!(
        ev.payload,
        Payload::Kill {
            target_pid: me,
            target_tid: Some(1 << 30),
            signal: sig
        }
    );
    let ev = call_with_ret(pid, "tkill", -(libc::EINVAL as i64));
    assert_eq!(ev.errno.as_deref(), Some("EINVAL"));
    assert_eq!(
        ev.payload,
        Payload::Kill {
            target_pid: -5,
            target_tid: Some(-5),
            signal: sig
        }
    );
}
