//! Decoding every kind from raw records, and every way a record can be malformed.

use super::*;
use sentinel_common::{BODY_SIZE, EventBody, EventHeader, FIXED_SIZE, HEADER_SIZE, MAX_RECORD};

/// Builds a record the way the kernel does: header, body, then strings and blobs.
pub(super) fn record(
    kind: Kind,
    nr: u32,
    ret: i64,
    args: [u64; 6],
    strs: &[&[u8]],
    blobs: &[&[u8]],
) -> Vec<u8> {
    let mut b = EventBody {
        ret,
        args,
        nr,
        ..Default::default()
    };
    for (i, s) in strs.iter().enumerate() {
        b.str_lens[i] = s.len() as u16;
    }
    for (i, s) in blobs.iter().enumerate() {
        b.blob_lens[i] = s.len() as u16;
    }
    let tail: Vec<u8> = strs
        .iter()
        .chain(blobs.iter())
        .flat_map(|s| s.iter().copied())
        .collect();
    let mut comm = [0u8; 16];
    comm[..4].copy_from_slice(b"bash");
    let h = EventHeader {
        ts_ns: 1_000,
        cgroup_id: 42,
        kind: kind as u32,
        size: (FIXED_SIZE + tail.len()) as u32,
        tgid: 100,
        tid: 101,
        ppid: 1,
        uid: 1000,
        gid: 1000,
        euid: 1000,
        auid: 1000,
        session: u32::MAX,
        flags: 0,
        _pad: 0,
        comm,
    };
    let mut out = Vec::new();
    // SAFETY: repr(C) integer-only structs without padding.
    out.extend_from_slice(unsafe {
        std::slice::from_raw_parts((&h as *const EventHeader).cast::<u8>(), HEADER_SIZE)
    });
    out.extend_from_slice(unsafe {
        std::slice::from_raw_parts((&b as *const EventBody).cast::<u8>(), BODY_SIZE)
    });
    out.extend_from_slice(&tail);
    out
}

pub(super) fn nr(name: &str) -> u32 {
    crate::syscalls::all()
        .find(|c| c.name == name)
        .map(|c| c.nr)
        .unwrap()
}

pub(super) fn dec(bytes: &[u8]) -> Event {
    decode(bytes, 7, &Clock::identity()).unwrap()
}

#[test]
fn header_fields_decode() {
    let e = dec(&record(
        Kind::Open,
        nr("openat"),
        3,
        [libc::AT_FDCWD as u64, 0, 0o2000000, 0, 0, 0],
        &[b"/etc/hosts"],
        &[],
    ));
    assert_eq!(
        (e.id, e.time_ns, e.pid, e.tid, e.ppid, e.uid),
        (7, 1_000, 100, 101, 1, 1000)
    );
    assert_eq!(e.auid, Some(1000));
    assert_eq!(e.session, None, "u32::MAX means unset");
    assert_eq!(e.comm.as_bytes(), b"bash");
    assert_eq!(e.syscall.as_deref(), Some("openat"));
    assert_eq!(
        e.payload,
        Payload::Open {
            dfd: libc::AT_FDCWD,
            path: "/etc/hosts".into(),
            flags: 0o2000000,
            mode: 0
        }
    );
    assert_eq!(e.principal_uid(), 1000);
}

#[test]
fn exec_argv_splits_and_keeps_non_utf8() {
    let e = dec(&record(
        Kind::Exec,
        nr("execve"),
        0,
        [3, 0, 0, 0, 0, 0],
        &[b"/bin/ls", b"ls\0-la\0caf\xff\0"],
        &[],
    ));
    let Payload::Exec {
        filename,
        argv,
        argv_truncated,
        ..
    } = &e.payload
    else {
        panic!()
    };
    assert_eq!(filename.as_bytes(), b"/bin/ls");
    assert_eq!(
        argv,
        &vec![
            RawStr::from("ls"),
            "-la".into(),
            RawStr(b"caf\xff".to_vec())
        ]
    );
    assert!(!argv_truncated);
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["argv"][2], "caf\\xff");
    assert_eq!(json["kind"], "exec");
    let back: Event = serde_json::from_value(json).unwrap();
    assert_eq!(back, e, "JSON round-trips, bytes included");
}

#[test]
fn exec_argv_cut_without_trailing_nul_keeps_the_partial_argument() {
    let mut r = record(
        Kind::Exec,
        nr("execve"),
        0,
        [2, 0, 0, 0, 0, 0],
        &[b"/bin/echo", b"echo\0AAAA"],
        &[],
    );
    // Set ARGV_TRUNCATED in the header flags (offset 56).
    r[56] = sentinel_common::flags::ARGV_TRUNCATED as u8;
    let Payload::Exec {
        argv,
        argv_truncated,
        ..
    } = dec(&r).payload
    else {
        panic!()
    };
    assert_eq!(argv, vec![RawStr::from("echo"), "AAAA".into()]);
    assert!(argv_truncated);
}

#[test]
fn connect_families() {
    let sa4 = [2u8, 0, 0x1f, 0x90, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    let e = dec(&record(
        Kind::Connect,
        nr("connect"),
        -111,
        [5, 0, 16, 0, 0, 0],
        &[],
        &[&sa4],
    ));
    assert_eq!(
        e.payload,
        Payload::Connect {
            fd: 5,
            family: Family::Inet,
            addr: Some("127.0.0.1".parse().unwrap()),
            port: Some(8080),
            unix_path: None
        }
    );
    assert_eq!(e.errno.as_deref(), Some("ECONNREFUSED"));

    let mut sa6 = vec![10u8, 0, 0, 22, 0, 0, 0, 0];
    sa6.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    sa6.extend_from_slice(&[0; 4]);
    let e = dec(&record(
        Kind::Connect,
        nr("connect"),
        0,
        [3, 0, 28, 0, 0, 0],
        &[],
        &[&sa6],
    ));
    assert!(matches!(
        e.payload,
        Payload::Connect {
            family: Family::Inet6,
            port: Some(22),
            ..
        }
    ));

    let mut un = vec![1u8, 0];
    un.extend_from_slice(b"/run/x.sock\0");
    let e = dec(&record(
        Kind::Connect,
        nr("connect"),
        0,
        [3, 0, 14, 0, 0, 0],
        &[],
        &[&un],
    ));
    assert!(
        matches!(&e.payload, Payload::Connect { family: Family::Unix, unix_path: Some(p), .. } if p.as_bytes() == b"/run/x.sock")
    );

    let abs = [1u8, 0, 0, b'a', b'b'];
    let e = dec(&record(
        Kind::Connect,
        nr("connect"),
        0,
        [3, 0, 5, 0, 0, 0],
        &[],
        &[&abs],
    ));
    assert!(
        matches!(&e.payload, Payload::Connect { unix_path: Some(p), .. } if p.as_bytes() == b"@ab")
    );

    // A sockaddr the kernel could not read: family unknown, not a panic.
    let e = dec(&record(
        Kind::Connect,
        nr("connect"),
        -14,
        [3, 0, 16, 0, 0, 0],
        &[],
        &[],
    ));
    assert!(matches!(
        e.payload,
        Payload::Connect {
            family: Family::Other,
            ..
        }
    ));
}

#[test]
fn file_and_privilege_kinds() {
    let e = dec(&record(
        Kind::Rename,
        nr("renameat2"),
        0,
        [0, 0, 0, 0, 1, 0],
        &[b"/a", b"/b"],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::Rename {
            old_path: "/a".into(),
            new_path: "/b".into(),
            flags: 1
        }
    );
    let e = dec(&record(
        Kind::Unlink,
        nr("unlinkat"),
        0,
        [3, 0, 0x200, 0, 0, 0],
        &[b"d"],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::Unlink {
            dfd: 3,
            path: "d".into(),
            flags: 0x200
        }
    );
    let e = dec(&record(
        Kind::Chmod,
        nr("fchmodat"),
        0,
        [0, 0, 0o777, 0, 0, 0],
        &[b"/x"],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::Chmod {
            path: "/x".into(),
            mode: 0o777
        }
    );
    let e = dec(&record(
        Kind::Chown,
        nr("fchownat"),
        0,
        [0, 0, 0, u32::MAX as u64, 0, 0],
        &[b"/x"],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::Chown {
            path: "/x".into(),
            owner: Some(0),
            group: None
        }
    );
    let e = dec(&record(
        Kind::MemfdCreate,
        nr("memfd_create"),
        3,
        [0, 1, 0, 0, 0, 0],
        &[b"x"],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::MemfdCreate {
            name: "x".into(),
            flags: 1
        }
    );
    let e = dec(&record(
        Kind::SetUid,
        nr("setreuid"),
        0,
        [u32::MAX as u64, 0, 0, 0, 0, 0],
        &[],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::SetUid {
            ruid: None,
            euid: Some(0),
            suid: None
        }
    );
    let e = dec(&record(
        Kind::SetGid,
        nr("setresgid"),
        0,
        [1, 2, 3, 0, 0, 0],
        &[],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::SetGid {
            rgid: Some(1),
            egid: Some(2),
            sgid: Some(3)
        }
    );
    let hdr = [0x26u8, 0x05, 0x08, 0x20, 0, 0, 0, 0];
    let data = [
        0xffu8, 0, 0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
    ];
    let e = dec(&record(
        Kind::Capset,
        nr("capset"),
        0,
        [0; 6],
        &[],
        &[&hdr, &data],
    ));
    assert_eq!(
        e.payload,
        Payload::Capset {
            target_pid: 0,
            effective: 0x1_0000_00ff,
            permitted: 0x1_0000_00ff,
            inheritable: 0
        }
    );
    let e = dec(&record(
        Kind::Ptrace,
        nr("ptrace"),
        0,
        [16, 55, 0, 0, 0, 0],
        &[],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::Ptrace {
            request: 16,
            request_name: "PTRACE_ATTACH".into(),
            target_pid: 55
        }
    );
    let e = dec(&record(
        Kind::Bpf,
        nr("bpf"),
        0,
        [5, 0, 0, 0, 0, 0],
        &[],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::Bpf {
            cmd: 5,
            cmd_name: "BPF_PROG_LOAD".into()
        }
    );
    let e = dec(&record(
        Kind::Mount,
        nr("mount"),
        0,
        [0, 0, 0, 4096, 0, 0],
        &[b"none", b"/mnt", b"tmpfs"],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::Mount {
            source: "none".into(),
            target: "/mnt".into(),
            fstype: "tmpfs".into(),
            flags: 4096
        }
    );
    let e = dec(&record(
        Kind::Umount,
        nr("umount2"),
        0,
        [0, 2, 0, 0, 0, 0],
        &[b"/mnt"],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::Umount {
            target: "/mnt".into(),
            flags: 2
        }
    );
    let e = dec(&record(
        Kind::Unshare,
        nr("unshare"),
        0,
        [libc::CLONE_NEWNS as u64, 0, 0, 0, 0, 0],
        &[],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::Unshare {
            flags: libc::CLONE_NEWNS as u64,
            namespaces: vec!["mnt".into()]
        }
    );
    let e = dec(&record(
        Kind::Setns,
        nr("setns"),
        0,
        [4, libc::CLONE_NEWNET as u64, 0, 0, 0, 0],
        &[],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::Setns {
            fd: 4,
            nstype: libc::CLONE_NEWNET as u64,
            namespaces: vec!["net".into()]
        }
    );
    let e = dec(&record(
        Kind::Kill,
        nr("tgkill"),
        0,
        [10, 11, 9, 0, 0, 0],
        &[],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::Kill {
            target_pid: 10,
            target_tid: Some(11),
            signal: 9
        }
    );
    let e = dec(&record(
        Kind::Kill,
        nr("kill"),
        -3,
        [10, 15, 0, 0, 0, 0],
        &[],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::Kill {
            target_pid: 10,
            target_tid: None,
            signal: 15
        }
    );
    assert_eq!(e.errno.as_deref(), Some("ESRCH"));
}

#[test]
fn openat2_takes_flags_from_open_how() {
    let mut how = Vec::new();
    how.extend_from_slice(&0o101u64.to_ne_bytes());
    how.extend_from_slice(&0o644u64.to_ne_bytes());
    how.extend_from_slice(&0u64.to_ne_bytes());
    let e = dec(&record(
        Kind::Open,
        nr("openat2"),
        4,
        [0; 6],
        &[b"/tmp/x"],
        &[&how],
    ));
    assert_eq!(
        e.payload,
        Payload::Open {
            dfd: 0,
            path: "/tmp/x".into(),
            flags: 0o101,
            mode: 0o644
        }
    );
}

#[test]
fn fork_and_exit() {
    let e = dec(&record(
        Kind::Fork,
        u32::MAX,
        0,
        [200, 200, 0, 0, 0, 0],
        &[],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::Fork {
            child_pid: 200,
            child_tid: 200
        }
    );
    assert_eq!(e.syscall, None);
    let e = dec(&record(
        Kind::Exit,
        u32::MAX,
        0,
        [3 << 8, 0, 0, 0, 0, 0],
        &[],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::Exit {
            code: Some(3),
            signal: None
        }
    );
    let e = dec(&record(
        Kind::Exit,
        u32::MAX,
        0,
        [9, 0, 0, 0, 0, 0],
        &[],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::Exit {
            code: None,
            signal: Some(9)
        }
    );
}

#[test]
fn malformed_records_are_errors_not_panics() {
    let good = record(Kind::Open, nr("openat"), 0, [0; 6], &[b"/etc/passwd"], &[]);
    assert_eq!(
        decode(&good[..10], 1, &Clock::identity()),
        Err(DecodeError::Short(10))
    );
    // Claimed size larger than what arrived.
    let mut r = good.clone();
    r[20..24].copy_from_slice(&9999u32.to_ne_bytes());
    assert!(matches!(
        decode(&r, 1, &Clock::identity()),
        Err(DecodeError::SizeMismatch { .. })
    ));
    // Unknown kind.
    let mut r = good.clone();
    r[16..20].copy_from_slice(&999u32.to_ne_bytes());
    assert_eq!(
        decode(&r, 1, &Clock::identity()),
        Err(DecodeError::UnknownKind(999))
    );
    // String lengths that run past the end.
    let mut r = good.clone();
    r[HEADER_SIZE + 60..HEADER_SIZE + 62].copy_from_slice(&5000u16.to_ne_bytes());
    assert!(matches!(
        decode(&r, 1, &Clock::identity()),
        Err(DecodeError::Tail(_))
    ));
    assert!(matches!(
        decode(&vec![0; MAX_RECORD + 1], 1, &Clock::identity()),
        Err(DecodeError::TooLarge(_))
    ));
    // Every truncation of a valid record decodes or errors; none panics.
    for cut in 0..good.len() {
        let _ = decode(&good[..cut], 1, &Clock::identity());
    }
}

#[test]
fn raw_str_escaping_is_lossless() {
    for bytes in [
        &b"plain"[..],
        b"back\\slash",
        b"\xff\xfe",
        b"mixed \xc3\xa9 \x80 \\x41",
        b"",
    ] {
        let r = RawStr(bytes.to_vec());
        assert_eq!(RawStr::unescape(&r.escaped()), r, "{:?}", r.escaped());
    }
    assert_eq!(RawStr(b"a\\b".to_vec()).escaped(), "a\\\\b");
    // Unescaping text that did not come from escaped() never panics.
    for s in ["\\", "\\x", "\\xZZ", "\\x4", "é\\x", "\\xé1"] {
        let _ = RawStr::unescape(s);
    }
}

#[test]
fn return_value_of_i64_min_decodes() {
    // The fuzzer's input (fuzz/, event_decode): an exec record whose return value is
    // i64::MIN; negating it for the errno name overflowed.
    let input = include_bytes!("../../../tests/data/fuzz/event_decode-ret-min.bin");
    let ev = decode(input, 1, &Clock::identity()).expect("a well-framed record decodes");
    assert_eq!(ev.ret, i64::MIN);
    assert!(ev.errno.is_some());
    // The same through the test builder, independent of the fuzzer's file.
    let r = record(Kind::Fork, u32::MAX, i64::MIN, [0; 6], &[], &[]);
    assert_eq!(dec(&r).ret, i64::MIN);
}
