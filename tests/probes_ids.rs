//! Live tests of the identity hooks the workload has no action for: the setgid family,
//! setreuid, capset, and the login uid and audit session of a real new session. A forked child
//! of the test process makes each call, one of them failing, and the decoded records are
//! checked against what the child saw.

use sentinel::event::Payload;
use sentinel_e2e::*;

fn id(v: u32) -> Option<u32> {
    Some(v)
}

#[test]
fn setgid_family_and_eperm_once_root_is_gone() {
    start_live();
    // SAFETY (for the child): plain id syscalls.
    let (pid, r) = in_child(|| unsafe {
        [
            ret_or_errno(libc::setgid(65533) as i64),
            ret_or_errno(libc::setregid(65531, 65532) as i64),
            ret_or_errno(libc::setresgid(65534, 65534, 65534) as i64),
            ret_or_errno(libc::setreuid(65534, 65533) as i64),
            // No longer root: CAP_SETGID is gone with the uid change.
            ret_or_errno(libc::setgid(0) as i64),
        ]
    });
    assert_eq!(
        r,
        [0, 0, 0, 0, -(libc::EPERM as i64)],
        "the child's results"
    );
    let ev = call_with_ret(pid, "setgid", 0);
    assert_eq!(
        ev.payload,
        Payload::SetGid {
            rgid: None,
            egid: id(65533),
            sgid: None
        }
    );
    assert_eq!(ev.gid, 65533, "the record is made after the change");
    let ev = one_call(pid, "setregid");
    assert_eq!(
        ev.payload,
        Payload::SetGid {
            rgid: id(65531),
            egid: id(65532),
            sgid: None
        }
    );
    assert_eq!(ev.ret, 0);
    let ev = one_call(pid, "setresgid");
    assert_eq!(
        ev.payload,
        Payload::SetGid {
            rgid: id(65534),
            egid: id(65534),
            sgid: id(65534)
        }
    );
    let ev = one_call(pid, "setreuid");
    assert_eq!(
        ev.payload,
        Payload::SetUid {
            ruid: id(65534),
            euid: id(65533),
            suid: None
        }
    );
    assert_eq!((ev.uid, ev.euid), (65534, 65533));
    let ev = call_with_ret(pid, "setgid", -(libc::EPERM as i64));
    assert_eq!(ev.errno.as_deref(), Some("EPERM"));
    assert_eq!(
        ev.payload,
        Payload::SetGid {
            rgid: None,
            egid: id(0),
            sgid: None
        }
    );
    assert_eq!((ev.uid, ev.euid, ev.gid), (65534, 65533, 65534));
}

/// `struct __user_cap_header_struct` and one of the two `__user_cap_data_struct`s.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_NET_RAW: u32 = 13;
const CAP_SYS_ADMIN: u32 = 21;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

fn caps64(d: &[CapData; 2]) -> (u64, u64, u64) {
    let w = |f: fn(&CapData) -> u32| f(&d[0]) as u64 | (f(&d[1]) as u64) << 32;
    (w(|c| c.effective), w(|c| c.permitted), w(|c| c.inheritable))
}

#[test]
fn capset_drop_and_eperm_on_regain() {
    start_live();
    let mut h = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut now = [CapData::default(); 2];
    // SAFETY: capget fills the structs we own (the test process's own sets).
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut h, now.as_mut_ptr()) };
    assert_eq!(r, 0, "capget: {}", std::io::Error::last_os_error());
    assert_ne!(
        now[0].permitted & (1 << CAP_NET_RAW),
        0,
        "root has CAP_NET_RAW"
    );
    // Drop cap_net_raw (a bit of the first word) from every set and clear the inheritable
    // sets; the rest stays.
    let mut dropped = now;
    dropped[0].effective &= !(1 << CAP_NET_RAW);
    dropped[0].permitted &= !(1 << CAP_NET_RAW);
    dropped[0].inheritable = 0;
    dropped[1].inheritable = 0;
    let mut regain = dropped;
    regain[0].permitted |= 1 << CAP_NET_RAW;
    let (pid, r) = in_child(|| unsafe {
        let h = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        [
            ret_or_errno(libc::syscall(libc::SYS_capset, &h, dropped.as_ptr())),
            // A permitted capability once given up cannot come back.
            ret_or_errno(libc::syscall(libc::SYS_capset, &h, regain.as_ptr())),
        ]
    });
    assert_eq!(r, [0, -(libc::EPERM as i64)]);
    let ok = call_with_ret(pid, "capset", 0);
    let (effective, permitted, inheritable) = caps64(&dropped);
    assert_ne!(effective & (1 << CAP_SYS_ADMIN), 0, "the rest is kept");
    assert_eq!(
        ok.payload,
        Payload::Capset {
            target_pid: 0,
            effective,
            permitted,
            inheritable
        }
    );
    let bad = call_with_ret(pid, "capset", -(libc::EPERM as i64));
    assert_eq!(bad.errno.as_deref(), Some("EPERM"));
    let (effective, permitted, inheritable) = caps64(&regain);
    assert_eq!(
        bad.payload,
        Payload::Capset {
            target_pid: 0,
            effective,
            permitted,
            inheritable
        }
    );
}

/// Reads a decimal number from a small file without allocating (for the forked child).
unsafe fn read_number(path: &std::ffi::CStr) -> i64 {
    let mut buf = [0u8; 32];
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return -1;
        }
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        let mut v: i64 = 0;
        for b in &buf[..n.max(0) as usize] {
            if !b.is_ascii_digit() {
                break;
            }
            v = v * 10 + (b - b'0') as i64;
        }
        v
    }
}

#[test]
fn a_new_login_session_is_on_the_records() {
    start_live();
    const LOGIN_UID: u32 = 4242;
    let before = std::fs::read_to_string("/proc/self/sessionid").expect("sessionid");
    let before: u32 = before.trim().parse().expect("a number");
    let loginuid = c"/proc/self/loginuid";
    let sessionid = c"/proc/self/sessionid";
    let value = LOGIN_UID.to_string();
    let dir = tempfile::tempdir().unwrap();
    let marker = std::ffi::CString::new(dir.path().join("after-login").to_str().unwrap()).unwrap();
    let marker_path = marker.to_str().unwrap().to_string();
    // What pam_loginuid does at a login: the kernel gives a process that sets its login uid
    // a new audit session id.
    let (pid, r) = in_child(|| unsafe {
        let fd = libc::open(loginuid.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        let w = if fd < 0 {
            ret_or_errno(-1)
        } else {
            let w = ret_or_errno(libc::write(fd, value.as_ptr().cast(), value.len()) as i64);
            libc::close(fd);
            w
        };
        let session = read_number(sessionid);
        // Something to find on the records: an open of a path of this test's own.
        let o = ret_or_errno(libc::open(marker.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) as i64);
        [w, session, o]
    });
    assert_eq!(r[0], value.len() as i64, "writing /proc/self/loginuid");
    let session = r[1] as u32;
    assert_ne!(session, u32::MAX, "the kernel assigned a session");
    assert_ne!(session, before, "a new session, not the test's own");
    let ev = wait_for("open after the login", |e| {
        e.pid == pid
            && matches!(&e.payload, Payload::Open { path, .. } if path.as_bytes() == marker_path.as_bytes())
    });
    assert_eq!(ev.ret, -(libc::ENOENT as i64));
    assert_eq!(ev.auid, Some(LOGIN_UID), "login uid on the record");
    assert_eq!(
        ev.session,
        Some(session),
        "the new session id on the record"
    );
    // The records of the test process's other children still carry its own (unset) session.
    let other = run_workload(&["exit", "0"]);
    let ev = wait_for("exit of a child outside the session", |e| {
        e.pid == other.pid && e.kind() == sentinel_common::Kind::Exit
    });
    assert_eq!(ev.auid, own_loginuid());
    assert_eq!(ev.session, (before != u32::MAX).then_some(before));
}
