//! Decoding the kinds added for detection coverage (utime, xattr, link, truncate, module,
//! prctl, socket, bind, listen, process_vm) and the exec environment, including short and
//! malformed structures.

use super::tests::{dec, nr, record};
use super::*;
use sentinel_common::flags;

fn ts(sec: i64, nsec: i64) -> Vec<u8> {
    [sec.to_ne_bytes(), nsec.to_ne_bytes()].concat()
}

/// The record's JSON form decodes back to the same event.
fn round_trips(e: &Event) {
    let json = serde_json::to_string(e).unwrap();
    let back: Event = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, e, "{json}");
}

#[test]
fn utimensat_times_now_omit_and_null() {
    let times = [ts(1_600_000_000, 5), ts(0, (1 << 30) - 2)].concat();
    let e = dec(&record(
        Kind::Utime,
        nr("utimensat"),
        0,
        [
            libc::AT_FDCWD as u64,
            1,
            2,
            libc::AT_SYMLINK_NOFOLLOW as u64,
            0,
            0,
        ],
        &[b"/var/log/wtmp"],
        &[&times],
    ));
    assert_eq!(
        e.payload,
        Payload::Utime {
            path: "/var/log/wtmp".into(),
            dirfd: None,
            atime: FileTime::At {
                sec: 1_600_000_000,
                nsec: 5
            },
            mtime: FileTime::Omit,
            flags: libc::AT_SYMLINK_NOFOLLOW as u32,
        }
    );
    round_trips(&e);
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["atime"]["at"]["sec"], 1_600_000_000);
    assert_eq!(json["mtime"], "omit");

    // futimens(fd, NULL) is utimensat(fd, NULL, NULL, 0): the file is the fd, times are now.
    let e = dec(&record(
        Kind::Utime,
        nr("utimensat"),
        0,
        [3, 0, 0, 0, 0, 0],
        &[b""],
        &[],
    ));
    let Payload::Utime {
        path,
        dirfd,
        atime,
        mtime,
        ..
    } = &e.payload
    else {
        panic!("{e:?}")
    };
    assert!(path.is_empty());
    assert_eq!(*dirfd, Some(3));
    assert_eq!((*atime, *mtime), (FileTime::Now, FileTime::Now));
    assert_eq!(path_or_fd(path, *dirfd), "fd 3");

    // UTIME_NOW in one slot.
    let times = [ts(0, (1 << 30) - 1), ts(1, 0)].concat();
    let e = dec(&record(
        Kind::Utime,
        nr("utimensat"),
        0,
        [libc::AT_FDCWD as u64, 1, 2, 0, 0, 0],
        &[b"f"],
        &[&times],
    ));
    assert!(matches!(
        e.payload,
        Payload::Utime {
            atime: FileTime::Now,
            mtime: FileTime::At { sec: 1, nsec: 0 },
            ..
        }
    ));
}

#[test]
fn utimes_and_utime_structures_and_short_blobs() {
    // timeval: microseconds become nanoseconds.
    let times = [ts(100, 7), ts(200, 0)].concat();
    let e = dec(&record(
        Kind::Utime,
        nr("utimes"),
        0,
        [1, 2, 0, 0, 0, 0],
        &[b"/etc/passwd"],
        &[&times],
    ));
    assert!(matches!(
        e.payload,
        Payload::Utime {
            atime: FileTime::At {
                sec: 100,
                nsec: 7000
            },
            mtime: FileTime::At { sec: 200, nsec: 0 },
            dirfd: None,
            ..
        }
    ));
    // utimbuf { actime, modtime }.
    let buf = [300i64.to_ne_bytes(), 400i64.to_ne_bytes()].concat();
    let e = dec(&record(
        Kind::Utime,
        nr("utime"),
        0,
        [1, 2, 0, 0, 0, 0],
        &[b"x"],
        &[&buf],
    ));
    assert!(matches!(
        e.payload,
        Payload::Utime {
            atime: FileTime::At { sec: 300, nsec: 0 },
            mtime: FileTime::At { sec: 400, nsec: 0 },
            ..
        }
    ));
    // A set pointer whose copy failed or came short: unknown, not a panic.
    for blob in [&[][..], &[1, 2, 3][..], &ts(1, 2)[..]] {
        let e = dec(&record(
            Kind::Utime,
            nr("utimensat"),
            -(libc::EFAULT as i64),
            [libc::AT_FDCWD as u64, 1, 0xdead, 0, 0, 0],
            &[b"x"],
            &[blob],
        ));
        let Payload::Utime { mtime, .. } = e.payload else {
            panic!()
        };
        assert_eq!(mtime, FileTime::Unknown, "{blob:?}");
    }
    assert_eq!(
        FileTime::At { sec: 0, nsec: 0 }.describe(),
        "1970-01-01T00:00:00Z"
    );
    assert_eq!(
        FileTime::At {
            sec: 951_782_400,
            nsec: 5
        }
        .describe(),
        "2000-02-29T00:00:00.000000005Z"
    );
    assert_eq!(FileTime::Omit.describe(), "omit");
}

/// vfs_cap_data revision 2 with the given low words and the effective bit.
fn caps_v2(permitted: u32, inheritable: u32, effective: bool) -> Vec<u8> {
    let magic = 0x0200_0000u32 | u32::from(effective);
    [magic, permitted, inheritable, 0, 0]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect()
}

#[test]
fn xattr_set_remove_and_file_capabilities() {
    let v = caps_v2((1 << 7) | (1 << 13), 0, true);
    let e = dec(&record(
        Kind::Xattr,
        nr("setxattr"),
        0,
        [1, 2, 3, v.len() as u64, 0, 0],
        &[b"/usr/bin/python3", b"security.capability"],
        &[&v],
    ));
    assert_eq!(
        e.payload,
        Payload::Xattr {
            path: "/usr/bin/python3".into(),
            fd: None,
            name: "security.capability".into(),
            remove: false,
            size: 20,
            flags: 0,
            caps: vec!["cap_setuid".into(), "cap_net_raw".into()],
            caps_effective: true,
        }
    );
    round_trips(&e);

    // fsetxattr: an fd and the name as the only string; a high word (cap_sys_admin is 21, low;
    // cap_bpf is 39, high word bit 7).
    let mut v = caps_v2(1 << 21, 0, false);
    v[12..16].copy_from_slice(&(1u32 << 7).to_le_bytes());
    let e = dec(&record(
        Kind::Xattr,
        nr("fsetxattr"),
        0,
        [5, 2, 3, v.len() as u64, libc::XATTR_CREATE as u64, 0],
        &[b"security.capability"],
        &[&v],
    ));
    let Payload::Xattr {
        path,
        fd,
        name,
        caps,
        caps_effective,
        flags,
        ..
    } = &e.payload
    else {
        panic!()
    };
    assert!(path.is_empty());
    assert_eq!(*fd, Some(5));
    assert_eq!(name.as_bytes(), b"security.capability");
    assert_eq!(caps, &["cap_sys_admin", "cap_bpf"]);
    assert!(!caps_effective);
    assert_eq!(*flags, libc::XATTR_CREATE as u32);

    // Removal: no value, no caps.
    let e = dec(&record(
        Kind::Xattr,
        nr("lremovexattr"),
        0,
        [1, 2, 0, 0, 0, 0],
        &[b"/bin/ping", b"security.capability"],
        &[],
    ));
    assert!(matches!(
        &e.payload,
        Payload::Xattr { remove: true, size: 0, caps, .. } if caps.is_empty()
    ));

    // Other attributes are not decoded as capabilities; bad or short values give none.
    let v = caps_v2(1 << 7, 0, true);
    for (name, value) in [
        (&b"user.note"[..], &v[..]),
        (b"security.capability", &v[..10]),
        (b"security.capability", &[0xff; 20][..]),
        (b"security.capability", &[][..]),
    ] {
        let e = dec(&record(
            Kind::Xattr,
            nr("setxattr"),
            0,
            [1, 2, 3, value.len() as u64, 0, 0],
            &[b"/f", name],
            &[value],
        ));
        let Payload::Xattr { caps, .. } = &e.payload else {
            panic!()
        };
        assert!(caps.is_empty(), "{name:?} {value:?}");
    }
    // Revision 1: one pair of words.
    let v: Vec<u8> = [0x0100_0000u32, 1 << 12, 0]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    assert_eq!(
        kinds::file_caps(&v),
        (vec!["cap_net_admin".to_string()], false)
    );
}

#[test]
fn links_truncates_and_process_vm() {
    let e = dec(&record(
        Kind::Link,
        nr("symlinkat"),
        0,
        [1, libc::AT_FDCWD as u64, 3, 0, 0, 0],
        &[b"/dev/null", b"/root/.bash_history"],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::Link {
            target: "/dev/null".into(),
            link: "/root/.bash_history".into(),
            symbolic: true
        }
    );
    round_trips(&e);
    let e = dec(&record(
        Kind::Link,
        nr("linkat"),
        -(libc::EEXIST as i64),
        [0; 6],
        &[b"/etc/shadow", b"/tmp/s"],
        &[],
    ));
    assert!(matches!(
        e.payload,
        Payload::Link {
            symbolic: false,
            ..
        }
    ));
    assert_eq!(e.errno.as_deref(), Some("EEXIST"));

    let e = dec(&record(
        Kind::Truncate,
        nr("truncate"),
        0,
        [1, 0, 0, 0, 0, 0],
        &[b"/var/log/auth.log"],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::Truncate {
            path: "/var/log/auth.log".into(),
            fd: None,
            length: 0
        }
    );
    let e = dec(&record(
        Kind::Truncate,
        nr("ftruncate"),
        0,
        [4, 4096, 0, 0, 0, 0],
        &[],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::Truncate {
            path: RawStr::default(),
            fd: Some(4),
            length: 4096
        }
    );
    round_trips(&e);

    let e = dec(&record(
        Kind::ProcessVm,
        nr("process_vm_writev"),
        8,
        [1234, 0, 1, 0, 1, 0],
        &[],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::ProcessVm {
            target_pid: 1234,
            write: true
        }
    );
    round_trips(&e);
}

#[test]
fn modules_load_and_unload() {
    let e = dec(&record(
        Kind::Module,
        nr("init_module"),
        -(libc::EPERM as i64),
        [0x1000, 65536, 0x2000, 0, 0, 0],
        &[b"debug=1"],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::Module {
            op: ModuleOp::Load,
            name: RawStr::default(),
            fd: None,
            fd_path: None,
            params: "debug=1".into(),
            size: Some(65536),
            flags: 0,
        }
    );
    round_trips(&e);
    let e = dec(&record(
        Kind::Module,
        nr("finit_module"),
        0,
        [7, 0x2000, 2, 0, 0, 0],
        &[b""],
        &[],
    ));
    assert!(matches!(
        e.payload,
        Payload::Module {
            op: ModuleOp::Load,
            fd: Some(7),
            flags: 2,
            size: None,
            ..
        }
    ));
    let e = dec(&record(
        Kind::Module,
        nr("delete_module"),
        0,
        [1, libc::O_NONBLOCK as u64, 0, 0, 0, 0],
        &[b"rootkit"],
        &[],
    ));
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["op"], "unload");
    assert_eq!(json["name"], "rootkit");
    round_trips(&e);
}

#[test]
fn prctl_socket_bind_listen() {
    let e = dec(&record(
        Kind::Prctl,
        nr("prctl"),
        0,
        [15, 0x1000, 0, 0, 0, 0],
        &[b"[kworker/0:1]"],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::Prctl {
            option: 15,
            name: "[kworker/0:1]".into()
        }
    );
    round_trips(&e);

    let e = dec(&record(
        Kind::Socket,
        nr("socket"),
        3,
        [17, 3, 0x0300, 0, 0, 0],
        &[],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::Socket {
            family: 17,
            sock_type: 3,
            protocol: 0x0300,
            family_name: "AF_PACKET".into(),
            type_name: "SOCK_RAW".into(),
            protocol_name: "ETH_P_ALL".into(),
        }
    );
    round_trips(&e);

    let sa4 = [2u8, 0, 0x11, 0x5c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let e = dec(&record(
        Kind::Bind,
        nr("bind"),
        0,
        [3, 0, 16, 0, 0, 0],
        &[],
        &[&sa4],
    ));
    assert_eq!(
        e.payload,
        Payload::Bind {
            fd: 3,
            family: Family::Inet,
            addr: Some("0.0.0.0".parse().unwrap()),
            port: Some(4444),
            unix_path: None
        }
    );
    assert_eq!(socket_address(&e.payload).as_deref(), Some("0.0.0.0:4444"));
    round_trips(&e);
    // A short address is "other", not a panic.
    let e = dec(&record(
        Kind::Bind,
        nr("bind"),
        -(libc::EINVAL as i64),
        [3, 0, 3, 0, 0, 0],
        &[],
        &[&[2, 0, 1]],
    ));
    assert!(matches!(
        e.payload,
        Payload::Bind {
            family: Family::Other,
            addr: None,
            ..
        }
    ));

    let e = dec(&record(
        Kind::Listen,
        nr("listen"),
        0,
        [3, 128, 0, 0, 0, 0],
        &[],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::Listen {
            fd: 3,
            backlog: 128
        }
    );
    round_trips(&e);
}

#[test]
fn exec_environment_pairs_and_truncation() {
    let mut r = record(
        Kind::Exec,
        nr("execve"),
        0,
        [1, 0, 0, 0, 0, 0],
        &[
            b"/bin/sh",
            b"sh\0",
            b"LD_PRELOAD=/tmp/x.so\0HISTFILE=/dev/null\0ENV\0BASH_ENV=caf\xff=x\0PROMPT_COMMAND=cut",
        ],
        &[],
    );
    r[56] = flags::ENV_TRUNCATED as u8;
    let e = dec(&r);
    let Payload::Exec {
        env, env_truncated, ..
    } = &e.payload
    else {
        panic!()
    };
    let pairs: Vec<(&[u8], &[u8])> = env
        .iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            (&b"LD_PRELOAD"[..], &b"/tmp/x.so"[..]),
            (b"HISTFILE", b"/dev/null"),
            (b"ENV", b""),
            (b"BASH_ENV", b"caf\xff=x"),
            (b"PROMPT_COMMAND", b"cut"),
        ]
    );
    assert!(env_truncated);
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["env"][0][0], "LD_PRELOAD");
    assert_eq!(json["env"][3][1], "caf\\xff=x");
    assert_eq!(json["env_truncated"], true);
    round_trips(&e);

    // No environment kept: the fields are absent from JSON and default when read back.
    let e = dec(&record(
        Kind::Exec,
        nr("execve"),
        0,
        [1, 0, 0, 0, 0, 0],
        &[b"/bin/true", b"true\0"],
        &[],
    ));
    let json = serde_json::to_value(&e).unwrap();
    assert!(json.get("env").is_none() && json.get("env_truncated").is_none());
    round_trips(&e);
}

#[test]
fn every_new_kind_survives_short_structures() {
    // Each structure cut at every length still decodes (to Unknown / Other / no caps).
    let v = caps_v2(1 << 7, 1, true);
    let t = [ts(1, 2), ts(3, 4)].concat();
    let sa6 = [
        10u8, 0, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    ];
    for cut in 0..=v.len() {
        let e = dec(&record(
            Kind::Xattr,
            nr("setxattr"),
            0,
            [0, 0, 1, 20, 0, 0],
            &[b"/f", b"security.capability"],
            &[&v[..cut]],
        ));
        let Payload::Xattr { caps, .. } = e.payload else {
            panic!()
        };
        assert_eq!(caps.is_empty(), cut < 20, "cut at {cut}");
    }
    for cut in 0..=t.len() {
        let e = dec(&record(
            Kind::Utime,
            nr("utimensat"),
            0,
            [0, 1, 2, 0, 0, 0],
            &[b"/f"],
            &[&t[..cut]],
        ));
        let Payload::Utime { mtime, .. } = e.payload else {
            panic!()
        };
        assert_eq!(mtime == FileTime::Unknown, cut < 32, "cut at {cut}");
    }
    for cut in 0..=sa6.len() {
        let e = dec(&record(
            Kind::Bind,
            nr("bind"),
            0,
            [0; 6],
            &[],
            &[&sa6[..cut]],
        ));
        let Payload::Bind { addr, .. } = e.payload else {
            panic!()
        };
        assert_eq!(addr.is_none(), cut < 24, "cut at {cut}");
    }
    for cut in 0..20 {
        let block = &b"LD_PRELOAD=/a\0ENV=b"[..cut];
        let e = dec(&record(
            Kind::Exec,
            nr("execve"),
            0,
            [0; 6],
            &[b"/x", b"x\0", block],
            &[],
        ));
        let Payload::Exec { env, .. } = e.payload else {
            panic!()
        };
        assert!(env.len() <= 2);
    }
}

#[test]
fn examples_in_docs_events_md_parse() {
    let doc = include_str!("../../../docs/events.md");
    let mut n = 0;
    for line in doc.lines().filter(|l| l.starts_with(r#"{"type":"event""#)) {
        let e: Event = serde_json::from_str(line).unwrap_or_else(|err| panic!("{line}: {err}"));
        // Written back, the same fields come out.
        let mut want: serde_json::Value = serde_json::from_str(line).unwrap();
        want.as_object_mut().unwrap().remove("type");
        assert_eq!(serde_json::to_value(&e).unwrap(), want, "{line}");
        n += 1;
    }
    assert!(n >= 4, "the examples are there");
}
