//! The kind-specific part of an event (`Payload`) and the small types its fields use. Field
//! meanings are documented in docs/events.md.

use sentinel_common::Kind;
use serde::{Deserialize, Serialize};

use super::RawStr;

/// Address family of a connect or bind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Inet,
    Inet6,
    Unix,
    Other,
}

/// One of the two times of a utime-family call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileTime {
    /// Set to the current time (UTIME_NOW, or a NULL times pointer).
    Now,
    /// Left unchanged (UTIME_OMIT).
    Omit,
    /// Set to this time (seconds since the epoch and nanoseconds).
    At { sec: i64, nsec: i64 },
    /// The times could not be read (bad pointer, short copy).
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModuleOp {
    Load,
    Unload,
}

/// The kind-specific part of an event. Field meanings are documented in docs/events.md.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Payload {
    Exec {
        filename: RawStr,
        argv: Vec<RawStr>,
        argv_truncated: bool,
        /// The environment variables whose names are in `[collect] exec_env`, as
        /// `[name, value]` pairs in envp order (a name may repeat). Only those leave the kernel.
        #[serde(skip_serializing_if = "Vec::is_empty", default)]
        env: Vec<(RawStr, RawStr)>,
        /// Not every entry of envp was looked at, or a kept variable was cut.
        #[serde(skip_serializing_if = "std::ops::Not::not", default)]
        env_truncated: bool,
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
    /// prctl(PR_SET_NAME) (the only option captured).
    Prctl {
        option: u32,
        /// The new thread name (the kernel keeps the first 15 bytes).
        name: RawStr,
    },
    /// socket() of AF_PACKET, or SOCK_RAW in any family but AF_NETLINK.
    Socket {
        family: i32,
        /// The type argument, SOCK_NONBLOCK / SOCK_CLOEXEC bits included.
        sock_type: i32,
        protocol: i32,
        family_name: String,
        type_name: String,
        protocol_name: String,
    },
    Bind {
        fd: i32,
        family: Family,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        addr: Option<std::net::IpAddr>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        port: Option<u16>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        unix_path: Option<RawStr>,
    },
    Listen {
        fd: i32,
        backlog: i32,
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
    /// utimensat, futimesat, utimes, utime: a file's access and modification times set.
    Utime {
        /// As given; empty for utimensat on `dirfd` itself (NULL path).
        path: RawStr,
        /// The directory fd of utimensat / futimesat, when not AT_FDCWD (with an empty path:
        /// the file is `dirfd` itself).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        dirfd: Option<i32>,
        atime: FileTime,
        mtime: FileTime,
        /// utimensat flags (AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH).
        flags: u32,
    },
    /// setxattr, lsetxattr, fsetxattr, removexattr, lremovexattr, fremovexattr.
    Xattr {
        /// The file (empty for the f* variants: see `fd`).
        path: RawStr,
        /// The fd of fsetxattr / fremovexattr.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        fd: Option<i32>,
        /// Attribute name, e.g. `security.capability`.
        name: RawStr,
        remove: bool,
        /// Value size in bytes (0 for removals).
        size: u64,
        /// XATTR_CREATE / XATTR_REPLACE.
        flags: u32,
        /// For `security.capability`: the permitted and inheritable file capabilities, by name
        /// (e.g. `cap_setuid`).
        #[serde(skip_serializing_if = "Vec::is_empty", default)]
        caps: Vec<String>,
        /// For `security.capability`: the effective bit (the capabilities are raised at exec).
        #[serde(skip_serializing_if = "std::ops::Not::not", default)]
        caps_effective: bool,
    },
    /// link, linkat, symlink, symlinkat.
    Link {
        /// The existing file (hard link) or the text the symlink will hold.
        target: RawStr,
        /// The new name.
        link: RawStr,
        symbolic: bool,
    },
    /// truncate, ftruncate.
    Truncate {
        /// truncate: as given. ftruncate: the fd's path read from /proc/PID/fd/N by the agent
        /// while the process was still there; empty when it could not be (see `fd`).
        path: RawStr,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        fd: Option<i32>,
        length: i64,
    },
    /// dup, dup2, dup3, fcntl(F_DUPFD*): descriptor `fd` copied; the copy is `ret`.
    Dup {
        fd: i32,
    },
    /// chdir (`path` as given), fchdir (`fd`; `path` empty).
    Chdir {
        path: RawStr,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        fd: Option<i32>,
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
    /// process_vm_readv / process_vm_writev: another process's memory read or written.
    ProcessVm {
        target_pid: i32,
        write: bool,
    },
    /// init_module, finit_module (load), delete_module (unload).
    Module {
        op: ModuleOp,
        /// delete_module: the name given. finit_module: derived from `fd_path` (base name
        /// without `.ko` and compression suffix). init_module: empty (the name is inside the
        /// image).
        name: RawStr,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        fd: Option<i32>,
        /// finit_module: the fd's path, read from /proc/PID/fd/N by the agent while the
        /// process was still there.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        fd_path: Option<RawStr>,
        /// Module parameters (loads).
        params: RawStr,
        /// init_module: size of the image in bytes.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        size: Option<u64>,
        /// finit_module flags (MODULE_INIT_*), delete_module flags (O_NONBLOCK, O_TRUNC).
        flags: u32,
    },
}

impl Payload {
    pub fn kind(&self) -> Kind {
        match self {
            Payload::Exec { .. } => Kind::Exec,
            Payload::Fork { .. } => Kind::Fork,
            Payload::Exit { .. } => Kind::Exit,
            Payload::Prctl { .. } => Kind::Prctl,
            Payload::Connect { .. } => Kind::Connect,
            Payload::Socket { .. } => Kind::Socket,
            Payload::Bind { .. } => Kind::Bind,
            Payload::Listen { .. } => Kind::Listen,
            Payload::Open { .. } => Kind::Open,
            Payload::Unlink { .. } => Kind::Unlink,
            Payload::Rename { .. } => Kind::Rename,
            Payload::Chmod { .. } => Kind::Chmod,
            Payload::Chown { .. } => Kind::Chown,
            Payload::MemfdCreate { .. } => Kind::MemfdCreate,
            Payload::Utime { .. } => Kind::Utime,
            Payload::Xattr { .. } => Kind::Xattr,
            Payload::Link { .. } => Kind::Link,
            Payload::Truncate { .. } => Kind::Truncate,
            Payload::Dup { .. } => Kind::Dup,
            Payload::Chdir { .. } => Kind::Chdir,
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
            Payload::ProcessVm { .. } => Kind::ProcessVm,
            Payload::Module { .. } => Kind::Module,
        }
    }
}

impl FileTime {
    /// "now", "omit", "unknown", or the UTC time ("2020-01-01T00:00:00Z", with nanoseconds
    /// when set), for one-line summaries.
    pub fn describe(&self) -> String {
        match *self {
            FileTime::Now => "now".into(),
            FileTime::Omit => "omit".into(),
            FileTime::Unknown => "unknown".into(),
            FileTime::At { sec, nsec } => {
                crate::timefmt::rfc3339_nanos(sec, u32::try_from(nsec).unwrap_or(0))
            }
        }
    }
}

/// The text of a path field, or `fd N` when the path is empty and an fd stands for the file.
pub fn path_or_fd(path: &RawStr, fd: Option<i32>) -> String {
    match fd {
        Some(fd) if path.is_empty() => format!("fd {fd}"),
        _ => path.escaped(),
    }
}

/// "addr:port", "[v6]:port" or "unix:PATH" of a connect or bind; `None` when the address is
/// of another family or could not be read.
pub fn socket_address(p: &Payload) -> Option<String> {
    let (addr, port, unix_path) = match p {
        Payload::Connect {
            addr,
            port,
            unix_path,
            ..
        }
        | Payload::Bind {
            addr,
            port,
            unix_path,
            ..
        } => (addr, port, unix_path),
        _ => return None,
    };
    match (addr, port, unix_path) {
        (Some(std::net::IpAddr::V6(a)), Some(p), _) => Some(format!("[{a}]:{p}")),
        (Some(a), Some(p), _) => Some(format!("{a}:{p}")),
        (_, _, Some(u)) => Some(format!("unix:{}", u.escaped())),
        _ => None,
    }
}
