//! Owned, decoded kernel events: the `Event` type every stage right of `collect` works with,
//! its JSON form (docs/events.md), and the decoder from raw ring-buffer records.

use std::fmt;

use sentinel_common::{
    BODY_SIZE, EventBody, EventHeader, FIXED_SIZE, HEADER_SIZE, Kind, MAX_RECORD, flags,
};
use serde::{Deserialize, Serialize};

use crate::syscalls;

/// Bytes from the kernel that may not be UTF-8 (paths, argv, comm). Kept exactly; shown with
/// invalid bytes as `\xNN` and a literal backslash as `\\`, so the text form is lossless.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RawStr(pub Vec<u8>);

impl RawStr {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The escaped text form (see the type's doc).
    pub fn escaped(&self) -> String {
        let mut out = String::with_capacity(self.0.len());
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                if c == '\\' {
                    out.push_str("\\\\");
                } else {
                    out.push(c);
                }
            }
            for b in chunk.invalid() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
        out
    }

    /// Inverse of [`RawStr::escaped`]. Unknown escapes are kept literally.
    pub fn unescape(s: &str) -> RawStr {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\' && i + 1 < b.len() {
                if b[i + 1] == b'\\' {
                    out.push(b'\\');
                    i += 2;
                    continue;
                }
                if b[i + 1] == b'x' && i + 4 <= b.len() {
                    let hex = |c: u8| (c as char).to_digit(16);
                    if let (Some(h), Some(l)) = (hex(b[i + 2]), hex(b[i + 3])) {
                        out.push((h * 16 + l) as u8);
                        i += 4;
                        continue;
                    }
                }
            }
            out.push(b[i]);
            i += 1;
        }
        RawStr(out)
    }

    /// Lossy UTF-8 view, for matching against configured patterns.
    pub fn lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }
}

impl From<&str> for RawStr {
    fn from(s: &str) -> Self {
        RawStr(s.as_bytes().to_vec())
    }
}

impl From<&[u8]> for RawStr {
    fn from(s: &[u8]) -> Self {
        RawStr(s.to_vec())
    }
}

impl fmt::Display for RawStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.escaped())
    }
}

impl fmt::Debug for RawStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.escaped())
    }
}

impl Serialize for RawStr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Nearly every path and argument is UTF-8 without a backslash: no copy then.
        match std::str::from_utf8(&self.0) {
            Ok(text) if !text.contains('\\') => s.serialize_str(text),
            _ => s.serialize_str(&self.escaped()),
        }
    }
}

impl<'de> Deserialize<'de> for RawStr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(RawStr::unescape(&s))
    }
}

/// Address family of a connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Inet,
    Inet6,
    Unix,
    Other,
}

/// The kind-specific part of an event. Field meanings are documented in docs/events.md.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Payload {
    Exec {
        filename: RawStr,
        argv: Vec<RawStr>,
        argv_truncated: bool,
    },
    Fork {
        child_pid: u32,
        child_tid: u32,
    },
    Exit {
        /// Exit status as passed to exit() (0-255), when the process exited normally.
        code: Option<i32>,
        /// Terminating signal number, when a signal ended it.
        signal: Option<i32>,
    },
    Connect {
        fd: i32,
        family: Family,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        addr: Option<std::net::IpAddr>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        port: Option<u16>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        unix_path: Option<RawStr>,
    },
    Open {
        dfd: i32,
        path: RawStr,
        flags: u64,
        mode: u32,
    },
    Unlink {
        dfd: i32,
        path: RawStr,
        flags: u32,
    },
    Rename {
        old_path: RawStr,
        new_path: RawStr,
        flags: u32,
    },
    Chmod {
        path: RawStr,
        mode: u32,
    },
    Chown {
        path: RawStr,
        owner: Option<u32>,
        group: Option<u32>,
    },
    MemfdCreate {
        name: RawStr,
        flags: u32,
    },
    /// setuid, setreuid, setresuid (ids not changed are absent).
    SetUid {
        ruid: Option<u32>,
        euid: Option<u32>,
        suid: Option<u32>,
    },
    SetGid {
        rgid: Option<u32>,
        egid: Option<u32>,
        sgid: Option<u32>,
    },
    Capset {
        target_pid: i32,
        effective: u64,
        permitted: u64,
        inheritable: u64,
    },
    Ptrace {
        request: i64,
        request_name: String,
        target_pid: i32,
    },
    Bpf {
        cmd: u32,
        cmd_name: String,
    },
    Mount {
        source: RawStr,
        target: RawStr,
        fstype: RawStr,
        flags: u64,
    },
    Umount {
        target: RawStr,
        flags: u32,
    },
    Unshare {
        flags: u64,
        namespaces: Vec<String>,
    },
    Setns {
        fd: i32,
        nstype: u64,
        namespaces: Vec<String>,
    },
    Kill {
        target_pid: i32,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        target_tid: Option<i32>,
        signal: i32,
    },
}

impl Payload {
    pub fn kind(&self) -> Kind {
        match self {
            Payload::Exec { .. } => Kind::Exec,
            Payload::Fork { .. } => Kind::Fork,
            Payload::Exit { .. } => Kind::Exit,
            Payload::Connect { .. } => Kind::Connect,
            Payload::Open { .. } => Kind::Open,
            Payload::Unlink { .. } => Kind::Unlink,
            Payload::Rename { .. } => Kind::Rename,
            Payload::Chmod { .. } => Kind::Chmod,
            Payload::Chown { .. } => Kind::Chown,
            Payload::MemfdCreate { .. } => Kind::MemfdCreate,
            Payload::SetUid { .. } => Kind::SetUid,
            Payload::SetGid { .. } => Kind::SetGid,
            Payload::Capset { .. } => Kind::Capset,
            Payload::Ptrace { .. } => Kind::Ptrace,
            Payload::Bpf { .. } => Kind::Bpf,
            Payload::Mount { .. } => Kind::Mount,
            Payload::Umount { .. } => Kind::Umount,
            Payload::Unshare { .. } => Kind::Unshare,
            Payload::Setns { .. } => Kind::Setns,
            Payload::Kill { .. } => Kind::Kill,
        }
    }
}

/// One decoded kernel event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Sequence number assigned by the collector; anomalies cite events by it.
    pub id: u64,
    /// Wall-clock time, nanoseconds since the Unix epoch.
    pub time_ns: i64,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    /// Login uid; absent when the process never went through a login.
    pub auid: Option<u32>,
    pub session: Option<u32>,
    pub cgroup_id: u64,
    pub comm: RawStr,
    /// Syscall name (absent for fork/exit).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub syscall: Option<String>,
    /// Syscall result: >= 0 success, < 0 is -errno.
    pub ret: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub errno: Option<String>,
    /// Some string was cut at its capture limit.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub truncated: bool,
    /// On a repeat report only: the number of opens it stands for, each identical (same
    /// process image, path, flags and outcome) to the first, which was sent as its own record
    /// and whose fields this one copies. Counted in the kernel instead of sent one by one.
    /// 0 (absent) on every other record.
    #[serde(skip_serializing_if = "is_zero", default)]
    pub repeats: u64,
    /// The kernel counts the repeats of this open from now on (not part of the record).
    #[serde(skip)]
    pub repeat_head: bool,
    #[serde(flatten)]
    pub payload: Payload,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Event {
    pub fn kind(&self) -> Kind {
        self.payload.kind()
    }

    pub fn ok(&self) -> bool {
        self.ret >= 0
    }

    /// The acting principal: the login uid when set, else the uid.
    pub fn principal_uid(&self) -> u32 {
        self.auid.unwrap_or(self.uid)
    }
}

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

fn read_pod<T: Copy>(bytes: &[u8]) -> T {
    assert!(bytes.len() >= size_of::<T>());
    // SAFETY: length checked above; T is a repr(C) integer-only wire type; read_unaligned
    // because ring-buffer records are only 8-byte aligned by contract, not by type.
    unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) }
}

const UNSET: u32 = u32::MAX;

fn opt_id(v: u32) -> Option<u32> {
    (v != UNSET).then_some(v)
}

fn nul_trimmed(b: &[u8]) -> &[u8] {
    match b.iter().position(|c| *c == 0) {
        Some(p) => &b[..p],
        None => b,
    }
}

/// Converts CLOCK_MONOTONIC kernel timestamps to wall-clock time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    offset_ns: i64,
}

impl Clock {
    pub fn new() -> Clock {
        let mono = now(libc::CLOCK_MONOTONIC);
        let real = now(libc::CLOCK_REALTIME);
        Clock {
            offset_ns: real - mono,
        }
    }

    /// A clock that maps kernel time straight through (tests).
    pub fn identity() -> Clock {
        Clock { offset_ns: 0 }
    }

    pub fn wall_ns(&self, ktime_ns: u64) -> i64 {
        self.offset_ns.saturating_add(ktime_ns as i64)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

fn now(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; the clocks used always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
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
    let syscall = (b.nr != UNSET).then(|| syscalls::name(b.nr).to_string());
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
        Kind::Connect => decode_sockaddr(a[0] as i32, blob0),
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
        errno: (ret < 0).then(|| syscalls::errno_name(-ret)),
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

fn decode_sockaddr(fd: i32, sa: &[u8]) -> Payload {
    let family = if sa.len() >= 2 {
        read_pod::<u16>(&sa[0..2]) as i32
    } else {
        -1
    };
    match family {
        libc::AF_INET if sa.len() >= 8 => {
            let port = u16::from_be_bytes([sa[2], sa[3]]);
            let ip = std::net::Ipv4Addr::new(sa[4], sa[5], sa[6], sa[7]);
            Payload::Connect {
                fd,
                family: Family::Inet,
                addr: Some(ip.into()),
                port: Some(port),
                unix_path: None,
            }
        }
        libc::AF_INET6 if sa.len() >= 24 => {
            let port = u16::from_be_bytes([sa[2], sa[3]]);
            let mut o = [0u8; 16];
            o.copy_from_slice(&sa[8..24]);
            Payload::Connect {
                fd,
                family: Family::Inet6,
                addr: Some(std::net::Ipv6Addr::from(o).into()),
                port: Some(port),
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
            Payload::Connect {
                fd,
                family: Family::Unix,
                addr: None,
                port: None,
                unix_path: Some(RawStr(path)),
            }
        }
        _ => Payload::Connect {
            fd,
            family: Family::Other,
            addr: None,
            port: None,
            unix_path: None,
        },
    }
}

#[cfg(test)]
#[path = "event_tests.rs"]
mod tests;
