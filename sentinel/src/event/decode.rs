//! The decoder from raw ring-buffer records to owned `Event`s: framing checks, the common
//! header, and the payloads of the original kinds (the newer ones are in `kinds`).

use sentinel_common::{
    BODY_SIZE, EventBody, EventHeader, FIXED_SIZE, HEADER_SIZE, Kind, MAX_RECORD, flags,
};

use super::{Clock, Event, Payload, RawStr, kinds};
use crate::syscalls;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than the fixed part ({FIXED_SIZE} bytes)")]
    Short(usize),
    #[error("record claims {claimed} bytes but {actual} arrived")]
    SizeMismatch { claimed: usize, actual: usize },
    #[error("record of {0} bytes exceeds the largest the kernel emits ({MAX_RECORD})")]
    TooLarge(usize),
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
    #[error("string lengths ({0} bytes) run past the end of the record")]
    Tail(usize),
}

pub(super) fn read_pod<T: Copy>(bytes: &[u8]) -> T {
    assert!(bytes.len() >= size_of::<T>());
    // SAFETY: length checked above; T is a repr(C) integer-only wire type; read_unaligned
    // because ring-buffer records are only 8-byte aligned by contract, not by type.
    unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) }
}

const UNSET: u32 = u32::MAX;

fn opt_id(v: u32) -> Option<u32> {
    (v != UNSET).then_some(v)
}

pub(super) fn nul_trimmed(b: &[u8]) -> &[u8] {
    match memchr::memchr(0, b) {
        Some(p) => &b[..p],
        None => b,
    }
}

/// Decodes one ring-buffer record. Never panics on any input.
pub fn decode(bytes: &[u8], id: u64, clock: &Clock) -> Result<Event, DecodeError> {
    if bytes.len() < FIXED_SIZE {
        return Err(DecodeError::Short(bytes.len()));
    }
    if bytes.len() > MAX_RECORD {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    let h: EventHeader = read_pod(&bytes[..HEADER_SIZE]);
    let b: EventBody = read_pod(&bytes[HEADER_SIZE..HEADER_SIZE + BODY_SIZE]);
    let size = h.size as usize;
    if size < FIXED_SIZE || size > bytes.len() {
        return Err(DecodeError::SizeMismatch {
            claimed: size,
            actual: bytes.len(),
        });
    }
    let kind = Kind::from_u32(h.kind).ok_or(DecodeError::UnknownKind(h.kind))?;
    let tail = &bytes[FIXED_SIZE..size];
    let lens = b
        .str_lens
        .iter()
        .chain(b.blob_lens.iter())
        .map(|l| *l as usize);
    let total: usize = lens.clone().sum();
    if total > tail.len() {
        return Err(DecodeError::Tail(total));
    }
    let mut parts: [&[u8]; 5] = [&[]; 5];
    let mut off = 0;
    for (i, l) in lens.enumerate() {
        parts[i] = &tail[off..off + l];
        off += l;
    }
    let [s0, s1, s2, blob0, blob1] = parts;
    let s = |x: &[u8]| RawStr(nul_trimmed(x).to_vec());
    let a = b.args;
    let syscall = (b.nr != UNSET).then(|| syscalls::name(b.nr).into());
    let payload = match kind {
        Kind::Exec => {
            let mut argv: Vec<RawStr> = s1.split(|c| *c == 0).map(|x| RawStr(x.to_vec())).collect();
            // The kernel writes a NUL after every argument; drop the empty piece after the last.
            if s1.last() == Some(&0) {
                argv.pop();
            }
            Payload::Exec {
                filename: s(s0),
                argv,
                argv_truncated: h.flags & flags::ARGV_TRUNCATED != 0,
                env: kinds::env(s2),
                env_truncated: h.flags & flags::ENV_TRUNCATED != 0,
            }
        }
        Kind::Fork => Payload::Fork {
            child_pid: a[0] as u32,
            child_tid: a[1] as u32,
        },
        Kind::Exit => {
            let status = a[0] as i32;
            let sig = status & 0x7f;
            if sig == 0 {
                Payload::Exit {
                    code: Some((status >> 8) & 0xff),
                    signal: None,
                }
            } else {
                Payload::Exit {
                    code: None,
                    signal: Some(sig),
                }
            }
        }
        Kind::Connect => {
            let sa = kinds::sockaddr(blob0);
            Payload::Connect {
                fd: a[0] as i32,
                family: sa.family,
                addr: sa.addr,
                port: sa.port,
                unix_path: sa.unix_path,
            }
        }
        Kind::Bind => {
            let sa = kinds::sockaddr(blob0);
            Payload::Bind {
                fd: a[0] as i32,
                family: sa.family,
                addr: sa.addr,
                port: sa.port,
                unix_path: sa.unix_path,
            }
        }
        Kind::Listen => Payload::Listen {
            fd: a[0] as i32,
            backlog: a[1] as i32,
        },
        Kind::Socket => kinds::socket(a),
        Kind::Prctl => Payload::Prctl {
            option: a[0] as u32,
            name: s(s0),
        },
        Kind::Utime => kinds::utime(syscalls::name(b.nr), a, s(s0), blob0),
        Kind::Xattr => kinds::xattr(syscalls::name(b.nr), a, s(s0), s(s1), blob0),
        Kind::Link => Payload::Link {
            target: s(s0),
            link: s(s1),
            symbolic: matches!(syscalls::name(b.nr), "symlink" | "symlinkat"),
        },
        Kind::Truncate => match syscalls::name(b.nr) {
            "ftruncate" => Payload::Truncate {
                path: RawStr::default(),
                fd: Some(a[0] as i32),
                length: a[1] as i64,
            },
            _ => Payload::Truncate {
                path: s(s0),
                fd: None,
                length: a[1] as i64,
            },
        },
        Kind::Dup => Payload::Dup { fd: a[0] as i32 },
        Kind::Chdir => match syscalls::name(b.nr) {
            "fchdir" => Payload::Chdir {
                path: RawStr::default(),
                fd: Some(a[0] as i32),
            },
            _ => Payload::Chdir {
                path: s(s0),
                fd: None,
            },
        },
        Kind::ProcessVm => Payload::ProcessVm {
            target_pid: a[0] as i32,
            write: syscalls::name(b.nr) == "process_vm_writev",
        },
        Kind::Module => kinds::module(syscalls::name(b.nr), a, s(s0)),
        Kind::Open => {
            let (flags, mode) = if blob0.len() >= 16 {
                // openat2: struct open_how { u64 flags; u64 mode; u64 resolve; }
                (
                    read_pod::<u64>(&blob0[0..8]),
                    read_pod::<u64>(&blob0[8..16]) as u32,
                )
            } else if b.nr != UNSET && syscalls::name(b.nr) == "open" {
                (a[1], a[2] as u32)
            } else {
                (a[2], a[3] as u32)
            };
            let dfd = if syscalls::name(b.nr) == "open" {
                libc::AT_FDCWD
            } else {
                a[0] as i32
            };
            Payload::Open {
                dfd,
                path: s(s0),
                flags,
                mode,
            }
        }
        Kind::Unlink => {
            let name = syscalls::name(b.nr);
            match name {
                "unlinkat" => Payload::Unlink {
                    dfd: a[0] as i32,
                    path: s(s0),
                    flags: a[2] as u32,
                },
                "rmdir" => Payload::Unlink {
                    dfd: libc::AT_FDCWD,
                    path: s(s0),
                    flags: libc::AT_REMOVEDIR as u32,
                },
                _ => Payload::Unlink {
                    dfd: libc::AT_FDCWD,
                    path: s(s0),
                    flags: 0,
                },
            }
        }
        Kind::Rename => {
            let flags = if syscalls::name(b.nr) == "renameat2" {
                a[4] as u32
            } else {
                0
            };
            Payload::Rename {
                old_path: s(s0),
                new_path: s(s1),
                flags,
            }
        }
        Kind::Chmod => {
            let mode = match syscalls::name(b.nr) {
                "chmod" => a[1],
                _ => a[2],
            };
            Payload::Chmod {
                path: s(s0),
                mode: mode as u32,
            }
        }
        Kind::Chown => {
            let (o, g) = match syscalls::name(b.nr) {
                "fchownat" => (a[2], a[3]),
                _ => (a[1], a[2]),
            };
            Payload::Chown {
                path: s(s0),
                owner: opt_id(o as u32),
                group: opt_id(g as u32),
            }
        }
        Kind::MemfdCreate => Payload::MemfdCreate {
            name: s(s0),
            flags: a[1] as u32,
        },
        Kind::SetUid => {
            let (r, e, sv) = id_triplet(syscalls::name(b.nr), a);
            Payload::SetUid {
                ruid: r,
                euid: e,
                suid: sv,
            }
        }
        Kind::SetGid => {
            let (r, e, sv) = id_triplet(syscalls::name(b.nr), a);
            Payload::SetGid {
                rgid: r,
                egid: e,
                sgid: sv,
            }
        }
        Kind::Capset => {
            // header: { u32 version; i32 pid; }, data: [{ u32 effective, permitted, inheritable }; 2]
            let pid = if blob0.len() >= 8 {
                read_pod::<i32>(&blob0[4..8])
            } else {
                0
            };
            let word = |i: usize| -> u64 {
                let lo = blob1
                    .get(i * 4..i * 4 + 4)
                    .map(read_pod::<u32>)
                    .unwrap_or(0) as u64;
                let hi = blob1
                    .get(12 + i * 4..16 + i * 4)
                    .map(read_pod::<u32>)
                    .unwrap_or(0) as u64;
                lo | (hi << 32)
            };
            Payload::Capset {
                target_pid: pid,
                effective: word(0),
                permitted: word(1),
                inheritable: word(2),
            }
        }
        Kind::Ptrace => Payload::Ptrace {
            request: a[0] as i64,
            request_name: syscalls::ptrace_request_name(a[0] as i64).to_string(),
            target_pid: a[1] as i32,
        },
        Kind::Bpf => Payload::Bpf {
            cmd: a[0] as u32,
            cmd_name: syscalls::bpf_cmd_name(a[0] as u32).to_string(),
        },
        Kind::Mount => Payload::Mount {
            source: s(s0),
            target: s(s1),
            fstype: s(s2),
            flags: a[3],
        },
        Kind::Umount => Payload::Umount {
            target: s(s0),
            flags: a[1] as u32,
        },
        Kind::Unshare => Payload::Unshare {
            flags: a[0],
            namespaces: syscalls::namespaces(a[0]),
        },
        Kind::Setns => Payload::Setns {
            fd: a[0] as i32,
            nstype: a[1],
            namespaces: syscalls::namespaces(a[1]),
        },
        Kind::Kill => match syscalls::name(b.nr) {
            "tgkill" => Payload::Kill {
                target_pid: a[0] as i32,
                target_tid: Some(a[1] as i32),
                signal: a[2] as i32,
            },
            "tkill" => Payload::Kill {
                target_pid: a[0] as i32,
                target_tid: Some(a[0] as i32),
                signal: a[1] as i32,
            },
            _ => Payload::Kill {
                target_pid: a[0] as i32,
                target_tid: None,
                signal: a[1] as i32,
            },
        },
    };
    let ret = b.ret;
    Ok(Event {
        id,
        time_ns: clock.wall_ns(h.ts_ns),
        pid: h.tgid,
        tid: h.tid,
        ppid: h.ppid,
        uid: h.uid,
        gid: h.gid,
        euid: h.euid,
        auid: opt_id(h.auid),
        session: opt_id(h.session),
        cgroup_id: h.cgroup_id,
        comm: RawStr(nul_trimmed(&h.comm).to_vec()),
        syscall,
        ret,
        // Saturating: a return of i64::MIN has no negation (found by fuzzing).
        errno: (ret < 0).then(|| syscalls::errno_name(ret.saturating_neg())),
        truncated: h.flags & flags::TRUNCATED != 0,
        repeats: 0,
        repeat_head: h.flags & flags::REPEAT_HEAD != 0,
        payload,
    })
}

fn id_triplet(name: &str, a: [u64; 6]) -> (Option<u32>, Option<u32>, Option<u32>) {
    let id = |v: u64| opt_id(v as u32);
    match name {
        // setuid(uid) sets all three for root, only the effective id otherwise; report what
        // was asked for as the effective id.
        "setuid" | "setgid" => (None, id(a[0]), None),
        "setreuid" | "setregid" => (id(a[0]), id(a[1]), None),
        _ => (id(a[0]), id(a[1]), id(a[2])),
    }
}
