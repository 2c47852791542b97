//! Payload decoders of the kinds whose records carry structures (socket addresses, file
//! times, capability sets) or whose meaning depends on the syscall: each takes the raw pieces
//! of a record and never panics on short or malformed ones.

use super::decode::{nul_trimmed, read_pod};
use super::{Family, FileTime, ModuleOp, Payload, RawStr};
use crate::syscalls;

/// A decoded `struct sockaddr` (connect, bind).
pub(super) struct SockAddr {
    pub family: Family,
    pub addr: Option<std::net::IpAddr>,
    pub port: Option<u16>,
    pub unix_path: Option<RawStr>,
}

pub(super) fn sockaddr(sa: &[u8]) -> SockAddr {
    let family = if sa.len() >= 2 {
        read_pod::<u16>(&sa[0..2]) as i32
    } else {
        -1
    };
    let none = SockAddr {
        family: Family::Other,
        addr: None,
        port: None,
        unix_path: None,
    };
    match family {
        libc::AF_INET if sa.len() >= 8 => SockAddr {
            family: Family::Inet,
            addr: Some(std::net::Ipv4Addr::new(sa[4], sa[5], sa[6], sa[7]).into()),
            port: Some(u16::from_be_bytes([sa[2], sa[3]])),
            unix_path: None,
        },
        libc::AF_INET6 if sa.len() >= 24 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&sa[8..24]);
            SockAddr {
                family: Family::Inet6,
                addr: Some(std::net::Ipv6Addr::from(o).into()),
                port: Some(u16::from_be_bytes([sa[2], sa[3]])),
                unix_path: None,
            }
        }
        libc::AF_UNIX => {
            let p = sa.get(2..).unwrap_or(&[]);
            // Abstract sockets start with a NUL and are shown with a leading '@'.
            let path = if p.first() == Some(&0) {
                let mut v = b"@".to_vec();
                v.extend_from_slice(nul_trimmed(&p[1..]));
                v
            } else {
                nul_trimmed(p).to_vec()
            };
            SockAddr {
                family: Family::Unix,
                unix_path: Some(RawStr(path)),
                ..none
            }
        }
        _ => none,
    }
}

/// The kept environment of an exec: `NAME=value` strings, each followed by a NUL (the last
/// may lack it when cut). An entry without `=` has an empty value.
pub(super) fn env(block: &[u8]) -> Vec<(RawStr, RawStr)> {
    let mut pieces: Vec<&[u8]> = block.split(|c| *c == 0).collect();
    if block.last() == Some(&0) || block.is_empty() {
        pieces.pop();
    }
    pieces
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|c| *c == b'=') {
            Some(eq) => (RawStr(p[..eq].to_vec()), RawStr(p[eq + 1..].to_vec())),
            None => (RawStr(p.to_vec()), RawStr::default()),
        })
        .collect()
}

pub(super) fn socket(a: [u64; 6]) -> Payload {
    let (family, sock_type, protocol) = (a[0] as i32, a[1] as i32, a[2] as i32);
    Payload::Socket {
        family,
        sock_type,
        protocol,
        family_name: syscalls::socket_family_name(family),
        type_name: syscalls::socket_type_name(sock_type),
        protocol_name: syscalls::socket_protocol_name(family, protocol),
    }
}

/// `tv_nsec` values of utimensat that are not times.
const UTIME_NOW: i64 = (1 << 30) - 1;
const UTIME_OMIT: i64 = (1 << 30) - 2;

/// utimensat(dirfd, path, timespec[2], flags), futimesat(dirfd, path, timeval[2]),
/// utimes(path, timeval[2]), utime(path, utimbuf { actime, modtime }).
pub(super) fn utime(syscall: &str, a: [u64; 6], path: RawStr, times: &[u8]) -> Payload {
    let at = matches!(syscall, "utimensat" | "futimesat");
    let dirfd = (at && a[0] as i32 != libc::AT_FDCWD).then_some(a[0] as i32);
    let times_ptr = if at { a[2] } else { a[1] };
    let word = |i: usize| times.get(i * 8..i * 8 + 8).map(read_pod::<i64>);
    let pair = |i: usize| -> FileTime {
        match syscall {
            "utime" => match word(i) {
                Some(sec) => FileTime::At { sec, nsec: 0 },
                None => FileTime::Unknown,
            },
            _ => match (word(2 * i), word(2 * i + 1)) {
                (Some(sec), Some(frac)) => match syscall {
                    "utimensat" if frac == UTIME_NOW => FileTime::Now,
                    "utimensat" if frac == UTIME_OMIT => FileTime::Omit,
                    "utimensat" => FileTime::At { sec, nsec: frac },
                    // timeval: microseconds.
                    _ => FileTime::At {
                        sec,
                        nsec: frac.saturating_mul(1000),
                    },
                },
                _ => FileTime::Unknown,
            },
        }
    };
    // A NULL pointer means "now" for both; a set pointer whose copy failed or came short
    // gives Unknown.
    let (atime, mtime) = if times_ptr == 0 {
        (FileTime::Now, FileTime::Now)
    } else {
        (pair(0), pair(1))
    };
    Payload::Utime {
        path,
        dirfd,
        atime,
        mtime,
        flags: if syscall == "utimensat" {
            a[3] as u32
        } else {
            0
        },
    }
}

/// setxattr(path, name, value, size, flags) and its l/f variants, removexattr(path, name)
/// and its l/f variants. The f variants have an fd first and the name as their only string.
pub(super) fn xattr(syscall: &str, a: [u64; 6], s0: RawStr, s1: RawStr, value: &[u8]) -> Payload {
    let by_fd = syscall.starts_with('f');
    let remove = syscall.ends_with("removexattr");
    let (path, fd, name) = if by_fd {
        (RawStr::default(), Some(a[0] as i32), s0)
    } else {
        (s0, None, s1)
    };
    let (caps, caps_effective) = if !remove && name.as_bytes() == b"security.capability" {
        file_caps(value)
    } else {
        (Vec::new(), false)
    };
    Payload::Xattr {
        path,
        fd,
        name,
        remove,
        size: if remove { 0 } else { a[3] },
        flags: if remove { 0 } else { a[4] as u32 },
        caps,
        caps_effective,
    }
}

/// `struct vfs_cap_data { __le32 magic_etc; struct { __le32 permitted, inheritable; }
/// data[2]; }` (revision 3 appends a root uid). Revision 1 has only `data[0]`. Returns the
/// names of the permitted and inheritable capabilities and the effective bit; nothing for a
/// short value or an unknown revision.
pub fn file_caps(v: &[u8]) -> (Vec<String>, bool) {
    const REVISION_MASK: u32 = 0xff00_0000;
    const REV1: u32 = 0x0100_0000;
    const REV2: u32 = 0x0200_0000;
    const REV3: u32 = 0x0300_0000;
    const EFFECTIVE: u32 = 0x1;
    let u = |o: usize| v.get(o..o + 4).map(read_pod::<u32>);
    let Some(magic) = u(0) else {
        return (Vec::new(), false);
    };
    let words = match magic & REVISION_MASK {
        REV1 => 1,
        REV2 | REV3 => 2,
        _ => return (Vec::new(), false),
    };
    let mut mask = 0u64;
    for i in 0..words {
        let (Some(p), Some(inh)) = (u(4 + i * 8), u(8 + i * 8)) else {
            return (Vec::new(), false);
        };
        mask |= ((p | inh) as u64) << (32 * i);
    }
    (syscalls::capability_names(mask), magic & EFFECTIVE != 0)
}

/// init_module(image, len, params), finit_module(fd, params, flags),
/// delete_module(name, flags).
pub(super) fn module(syscall: &str, a: [u64; 6], s0: RawStr) -> Payload {
    match syscall {
        "delete_module" => Payload::Module {
            op: ModuleOp::Unload,
            name: s0,
            fd: None,
            fd_path: None,
            params: RawStr::default(),
            size: None,
            flags: a[1] as u32,
        },
        "finit_module" => Payload::Module {
            op: ModuleOp::Load,
            name: RawStr::default(),
            fd: Some(a[0] as i32),
            fd_path: None,
            params: s0,
            size: None,
            flags: a[2] as u32,
        },
        _ => Payload::Module {
            op: ModuleOp::Load,
            name: RawStr::default(),
            fd: None,
            fd_path: None,
            params: s0,
            size: Some(a[1]),
            flags: 0,
        },
    }
}
