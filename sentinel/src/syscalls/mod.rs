//! The syscalls Sentinel captures on this architecture: numbers, names, capture specs for the
//! kernel's generic hooks; the small name tables used to make events readable are in `names`.

mod names;

pub use names::*;

use sentinel_common::{
    ArgMatch, Kind, MAX_ARG_MATCHES, MAX_BLOB, SyscallSpec, match_op, spec_opts,
};

/// One captured syscall: its number here, its name, and how the kernel captures it.
#[derive(Clone, Copy, Debug)]
pub struct Captured {
    pub nr: u32,
    pub name: &'static str,
    pub spec: SyscallSpec,
}

impl Captured {
    /// The kernel's name for the syscall in `syscalls/sys_{enter,exit}_<name>`, which follows
    /// SYSCALL_DEFINE rather than libc (umount2 is defined as "umount").
    pub fn tracepoint(&self) -> &'static str {
        match self.name {
            "umount2" => "umount",
            n => n,
        }
    }
}

const fn spec(kind: Kind, strs: [u8; 3]) -> SyscallSpec {
    SyscallSpec {
        kind: kind as u32,
        str_args: strs,
        blob_args: [0, 0],
        blob_len_args: [0, 0],
        options: 0,
        blob_max: [0, 0],
        matches: [NO_MATCH; MAX_ARG_MATCHES],
    }
}

const NO_MATCH: ArgMatch = ArgMatch {
    arg: 0,
    op: match_op::NONE,
    _pad: 0,
    mask: 0,
    value: 0,
};

/// Adds the condition `(arg & mask) == value` (`arg` 1-based) in the first free slot; `op` is
/// `match_op::KEEP_IF` or `DROP_IF`. Panics (at compile time: specs are consts) when full.
const fn matching(mut s: SyscallSpec, op: u8, arg: u8, mask: u32, value: u32) -> SyscallSpec {
    let mut i = 0;
    while i < MAX_ARG_MATCHES {
        if s.matches[i].op == match_op::NONE {
            s.matches[i] = ArgMatch {
                arg,
                op,
                _pad: 0,
                mask,
                value,
            };
            return s;
        }
        i += 1;
    }
    panic!("too many argument conditions in one spec")
}

const fn keep_if(s: SyscallSpec, arg: u8, mask: u32, value: u32) -> SyscallSpec {
    matching(s, match_op::KEEP_IF, arg, mask, value)
}

const fn drop_if(s: SyscallSpec, arg: u8, mask: u32, value: u32) -> SyscallSpec {
    matching(s, match_op::DROP_IF, arg, mask, value)
}

/// `struct timespec[2]` / `struct timeval[2]` (utimensat, utimes, futimesat).
const TIMES_2: u16 = 32;
/// `struct utimbuf` (utime).
const UTIMBUF: u16 = 16;
/// `struct vfs_cap_data` revision 3 (20 bytes for revision 2): enough for security.capability.
const XATTR_VALUE: u16 = 24;
const ALL_BITS: u32 = u32::MAX;
/// prctl option that renames the calling thread (arg2: a user string of at most 16 bytes).
pub const PR_SET_NAME: u32 = 15;
/// socket type bits (the rest of the argument holds SOCK_NONBLOCK / SOCK_CLOEXEC).
const SOCK_TYPE_MASK: u32 = 0xf;

const fn with_blob(mut s: SyscallSpec, slot: usize, arg: u8, len_arg: u8, max: u16) -> SyscallSpec {
    s.blob_args[slot] = arg;
    s.blob_len_args[slot] = len_arg;
    s.blob_max[slot] = max;
    s
}

const fn filtered(mut s: SyscallSpec) -> SyscallSpec {
    s.options |= spec_opts::PREFIX_FILTER;
    s
}

/// Repeated identical opens are counted in the kernel; `flags_arg` is 1-based.
const fn counted(mut s: SyscallSpec, flags_arg: u8) -> SyscallSpec {
    s.options |= spec_opts::COUNT_REPEATS | (flags_arg << spec_opts::FLAGS_ARG_SHIFT);
    s
}

macro_rules! captured {
    ($($sys:ident => $spec:expr),* $(,)?) => {
        &[$(Captured { nr: libc::$sys as u32, name: strip(stringify!($sys)), spec: $spec }),*]
    };
}

const fn strip(s: &'static str) -> &'static str {
    // "SYS_openat" -> "openat"
    let (_, rest) = s.as_bytes().split_at(4);
    match std::str::from_utf8(rest) {
        Ok(v) => v,
        Err(_) => s,
    }
}

/// Argument positions are 1-based in specs (0 means none). The exec family is captured by
/// its own hooks (argv needs a loop) and is listed for naming only.
#[cfg(target_arch = "x86_64")]
const ARCH_ONLY: &[Captured] = captured![
    SYS_open => counted(filtered(spec(Kind::Open, [1, 0, 0])), 2),
    SYS_unlink => spec(Kind::Unlink, [1, 0, 0]),
    SYS_rmdir => spec(Kind::Unlink, [1, 0, 0]),
    SYS_rename => spec(Kind::Rename, [1, 2, 0]),
    SYS_chmod => spec(Kind::Chmod, [1, 0, 0]),
    SYS_chown => spec(Kind::Chown, [1, 0, 0]),
    SYS_lchown => spec(Kind::Chown, [1, 0, 0]),
    SYS_utime => with_blob(spec(Kind::Utime, [1, 0, 0]), 0, 2, 0, UTIMBUF),
    SYS_utimes => with_blob(spec(Kind::Utime, [1, 0, 0]), 0, 2, 0, TIMES_2),
    SYS_futimesat => with_blob(spec(Kind::Utime, [2, 0, 0]), 0, 3, 0, TIMES_2),
    SYS_link => spec(Kind::Link, [1, 2, 0]),
    SYS_symlink => spec(Kind::Link, [1, 2, 0]),
    SYS_dup2 => spec(Kind::Dup, [0, 0, 0]),
];
#[cfg(not(target_arch = "x86_64"))]
const ARCH_ONLY: &[Captured] = &[];

const COMMON: &[Captured] = captured![
    SYS_execve => spec(Kind::Exec, [1, 0, 0]),
    SYS_execveat => spec(Kind::Exec, [2, 0, 0]),
    SYS_openat => counted(filtered(spec(Kind::Open, [2, 0, 0])), 3),
    SYS_openat2 => with_blob(filtered(spec(Kind::Open, [2, 0, 0])), 0, 3, 4, 24),
    SYS_connect => with_blob(spec(Kind::Connect, [0, 0, 0]), 0, 2, 3, MAX_BLOB as u16),
    SYS_unlinkat => spec(Kind::Unlink, [2, 0, 0]),
    SYS_renameat => spec(Kind::Rename, [2, 4, 0]),
    SYS_renameat2 => spec(Kind::Rename, [2, 4, 0]),
    SYS_fchmodat => spec(Kind::Chmod, [2, 0, 0]),
    SYS_fchownat => spec(Kind::Chown, [2, 0, 0]),
    SYS_memfd_create => spec(Kind::MemfdCreate, [1, 0, 0]),
    SYS_setuid => spec(Kind::SetUid, [0, 0, 0]),
    SYS_setreuid => spec(Kind::SetUid, [0, 0, 0]),
    SYS_setresuid => spec(Kind::SetUid, [0, 0, 0]),
    SYS_setgid => spec(Kind::SetGid, [0, 0, 0]),
    SYS_setregid => spec(Kind::SetGid, [0, 0, 0]),
    SYS_setresgid => spec(Kind::SetGid, [0, 0, 0]),
    SYS_capset => with_blob(with_blob(spec(Kind::Capset, [0, 0, 0]), 0, 1, 0, 8), 1, 2, 0, 24),
    SYS_ptrace => spec(Kind::Ptrace, [0, 0, 0]),
    SYS_bpf => spec(Kind::Bpf, [0, 0, 0]),
    SYS_mount => spec(Kind::Mount, [1, 2, 3]),
    SYS_umount2 => spec(Kind::Umount, [1, 0, 0]),
    SYS_unshare => spec(Kind::Unshare, [0, 0, 0]),
    SYS_setns => spec(Kind::Setns, [0, 0, 0]),
    SYS_kill => spec(Kind::Kill, [0, 0, 0]),
    SYS_tkill => spec(Kind::Kill, [0, 0, 0]),
    SYS_tgkill => spec(Kind::Kill, [0, 0, 0]),
    SYS_utimensat => with_blob(spec(Kind::Utime, [2, 0, 0]), 0, 3, 0, TIMES_2),
    SYS_setxattr => with_blob(spec(Kind::Xattr, [1, 2, 0]), 0, 3, 4, XATTR_VALUE),
    SYS_lsetxattr => with_blob(spec(Kind::Xattr, [1, 2, 0]), 0, 3, 4, XATTR_VALUE),
    SYS_fsetxattr => with_blob(spec(Kind::Xattr, [2, 0, 0]), 0, 3, 4, XATTR_VALUE),
    SYS_removexattr => spec(Kind::Xattr, [1, 2, 0]),
    SYS_lremovexattr => spec(Kind::Xattr, [1, 2, 0]),
    SYS_fremovexattr => spec(Kind::Xattr, [2, 0, 0]),
    SYS_linkat => spec(Kind::Link, [2, 4, 0]),
    SYS_symlinkat => spec(Kind::Link, [1, 3, 0]),
    SYS_truncate => spec(Kind::Truncate, [1, 0, 0]),
    // No string and no blob: a fixed-size record; the path is looked up in user space.
    SYS_ftruncate => spec(Kind::Truncate, [0, 0, 0]),
    SYS_process_vm_readv => spec(Kind::ProcessVm, [0, 0, 0]),
    SYS_process_vm_writev => spec(Kind::ProcessVm, [0, 0, 0]),
    SYS_init_module => spec(Kind::Module, [3, 0, 0]),
    SYS_finit_module => spec(Kind::Module, [2, 0, 0]),
    SYS_delete_module => spec(Kind::Module, [1, 0, 0]),
    // Only PR_SET_NAME passes a string in arg2; every other option is dropped in the kernel.
    SYS_prctl => keep_if(spec(Kind::Prctl, [2, 0, 0]), 1, ALL_BITS, PR_SET_NAME),
    // Packet sockets and raw sockets of any family but netlink (which every `ip` and glibc's
    // getifaddrs open as SOCK_RAW: routine configuration traffic, not packet access).
    SYS_socket => drop_if(
        keep_if(
            keep_if(spec(Kind::Socket, [0, 0, 0]), 1, ALL_BITS, libc::AF_PACKET as u32),
            2,
            SOCK_TYPE_MASK,
            libc::SOCK_RAW as u32,
        ),
        1,
        ALL_BITS,
        libc::AF_NETLINK as u32,
    ),
    SYS_dup => spec(Kind::Dup, [0, 0, 0]),
    SYS_chdir => spec(Kind::Chdir, [1, 0, 0]),
    SYS_fchdir => spec(Kind::Chdir, [0, 0, 0]),
    SYS_dup3 => spec(Kind::Dup, [0, 0, 0]),
    // Only the commands that copy a descriptor; every other fcntl is dropped in the kernel.
    SYS_fcntl => keep_if(
        keep_if(spec(Kind::Dup, [0, 0, 0]), 2, ALL_BITS, libc::F_DUPFD as u32),
        2,
        ALL_BITS,
        libc::F_DUPFD_CLOEXEC as u32,
    ),
    SYS_bind => with_blob(spec(Kind::Bind, [0, 0, 0]), 0, 2, 3, MAX_BLOB as u16),
    SYS_listen => spec(Kind::Listen, [0, 0, 0]),
];

/// Every syscall with a capture spec on this architecture.
pub fn all() -> impl Iterator<Item = &'static Captured> {
    COMMON.iter().chain(ARCH_ONLY.iter())
}

/// Syscalls handled by the generic enter/exit hooks (everything but the exec family).
pub fn generic() -> impl Iterator<Item = &'static Captured> {
    all().filter(|c| c.spec.kind != Kind::Exec as u32)
}

/// The syscall's name ("unknown" for one without a capture spec). Indexed once: decoding
/// asks it several times per record.
pub fn name(nr: u32) -> &'static str {
    static BY_NR: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let by_nr = BY_NR.get_or_init(|| {
        let len = all().map(|c| c.nr as usize + 1).max().unwrap_or(0);
        let mut v = vec!["unknown"; len];
        // The first spec of a number wins, as the linear search this replaces did.
        for c in all().collect::<Vec<_>>().into_iter().rev() {
            v[c.nr as usize] = c.name;
        }
        v
    });
    by_nr.get(nr as usize).copied().unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_and_specs_point_at_real_arguments() {
        assert_eq!(name(libc::SYS_openat as u32), "openat");
        assert_eq!(name(libc::SYS_connect as u32), "connect");
        assert_eq!(name(99_999), "unknown");
        for c in all() {
            // The kernel keeps specs in an array indexed by number; kind 0 marks an empty slot.
            assert!(c.nr < sentinel_common::MAX_SYSCALLS, "{}", c.name);
            assert_ne!(c.spec.kind, 0, "{}", c.name);
            for a in c
                .spec
                .str_args
                .iter()
                .chain(&c.spec.blob_args)
                .chain(&c.spec.blob_len_args)
            {
                assert!(*a <= 6, "{}: argument index {a} out of range", c.name);
            }
            assert!(
                c.spec.blob_max.iter().all(|m| *m as usize <= MAX_BLOB),
                "{}",
                c.name
            );
            for m in &c.spec.matches {
                assert!(m.arg <= 6, "{}: condition on argument {}", c.name, m.arg);
                assert_eq!(m.op == match_op::NONE, m.arg == 0, "{}", c.name);
            }
        }
        let mut nrs: Vec<u32> = all().map(|c| c.nr).collect();
        nrs.sort();
        nrs.dedup();
        assert_eq!(nrs.len(), all().count(), "a syscall is listed twice");
    }

    fn spec_of(name: &str) -> SyscallSpec {
        all().find(|c| c.name == name).map(|c| c.spec).unwrap()
    }

    #[test]
    fn argument_conditions_keep_only_what_matters() {
        let prctl = spec_of("prctl");
        assert!(prctl.keeps(&[PR_SET_NAME as u64, 0x1000, 0, 0, 0, 0]));
        // PR_SET_DUMPABLE, PR_GET_NAME, PR_SET_SECCOMP: dropped in the kernel.
        for opt in [4u64, 16, 22] {
            assert!(!prctl.keeps(&[opt, 0x1000, 0, 0, 0, 0]), "{opt}");
        }
        let socket = spec_of("socket");
        let raw = libc::SOCK_RAW as u64;
        let cloexec = libc::SOCK_CLOEXEC as u64;
        assert!(socket.keeps(&[libc::AF_PACKET as u64, libc::SOCK_DGRAM as u64, 0, 0, 0, 0]));
        assert!(socket.keeps(&[libc::AF_INET as u64, raw | cloexec, 1, 0, 0, 0]));
        assert!(socket.keeps(&[libc::AF_INET6 as u64, raw, 58, 0, 0, 0]));
        assert!(!socket.keeps(&[libc::AF_INET as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0]));
        assert!(!socket.keeps(&[libc::AF_UNIX as u64, libc::SOCK_DGRAM as u64, 0, 0, 0, 0]));
        assert!(!socket.keeps(&[libc::AF_NETLINK as u64, raw | cloexec, 0, 0, 0, 0]));
        // Specs without conditions keep every call.
        assert!(spec_of("listen").keeps(&[3, 0, 0, 0, 0, 0]));
    }

    #[test]
    fn small_tables() {
        assert_eq!(errno_name(2), "ENOENT");
        assert_eq!(errno_name(4095), "E4095");
        assert_eq!(ptrace_request_name(16), "PTRACE_ATTACH");
        assert_eq!(bpf_cmd_name(5), "BPF_PROG_LOAD");
        assert_eq!(bpf_cmd_name(999), "BPF_UNKNOWN");
        assert_eq!(
            namespaces((libc::CLONE_NEWNET | libc::CLONE_NEWUSER) as u64),
            ["user", "net"]
        );
    }
}
