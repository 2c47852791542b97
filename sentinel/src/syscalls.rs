//! The syscalls Sentinel captures on this architecture: numbers, names, capture specs for the
//! kernel's generic hooks, and the small name tables (errno, ptrace requests, bpf commands,
//! namespace flags) used to make events readable.

use sentinel_common::{Kind, MAX_BLOB, SyscallSpec, spec_opts};

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
    }
}

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
    // A hard link is a new name for a file: reported as a rename whose `syscall` says link.
    SYS_link => spec(Kind::Rename, [1, 2, 0]),
    SYS_chmod => spec(Kind::Chmod, [1, 0, 0]),
    SYS_chown => spec(Kind::Chown, [1, 0, 0]),
    SYS_lchown => spec(Kind::Chown, [1, 0, 0]),
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
    SYS_linkat => spec(Kind::Rename, [2, 4, 0]),
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
];

/// Every syscall with a capture spec on this architecture.
pub fn all() -> impl Iterator<Item = &'static Captured> {
    COMMON.iter().chain(ARCH_ONLY.iter())
}

/// Syscalls handled by the generic enter/exit hooks (everything but the exec family).
pub fn generic() -> impl Iterator<Item = &'static Captured> {
    all().filter(|c| c.spec.kind != Kind::Exec as u32)
}

pub fn name(nr: u32) -> &'static str {
    all()
        .find(|c| c.nr == nr)
        .map(|c| c.name)
        .unwrap_or("unknown")
}

pub fn errno_name(errno: i64) -> String {
    let n = match errno as i32 {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ETXTBSY => "ETXTBSY",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EINPROGRESS => "EINPROGRESS",
        libc::EALREADY => "EALREADY",
        libc::EISCONN => "EISCONN",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => return format!("E{errno}"),
    };
    n.to_string()
}

pub fn ptrace_request_name(req: i64) -> &'static str {
    match req {
        0 => "PTRACE_TRACEME",
        1 => "PTRACE_PEEKTEXT",
        2 => "PTRACE_PEEKDATA",
        3 => "PTRACE_PEEKUSER",
        4 => "PTRACE_POKETEXT",
        5 => "PTRACE_POKEDATA",
        6 => "PTRACE_POKEUSER",
        7 => "PTRACE_CONT",
        8 => "PTRACE_KILL",
        9 => "PTRACE_SINGLESTEP",
        12 => "PTRACE_GETREGS",
        13 => "PTRACE_SETREGS",
        16 => "PTRACE_ATTACH",
        17 => "PTRACE_DETACH",
        24 => "PTRACE_SYSCALL",
        0x4200 => "PTRACE_SETOPTIONS",
        0x4206 => "PTRACE_SEIZE",
        0x4207 => "PTRACE_INTERRUPT",
        _ => "PTRACE_OTHER",
    }
}

pub fn bpf_cmd_name(cmd: u32) -> &'static str {
    const NAMES: [&str; 37] = [
        "BPF_MAP_CREATE",
        "BPF_MAP_LOOKUP_ELEM",
        "BPF_MAP_UPDATE_ELEM",
        "BPF_MAP_DELETE_ELEM",
        "BPF_MAP_GET_NEXT_KEY",
        "BPF_PROG_LOAD",
        "BPF_OBJ_PIN",
        "BPF_OBJ_GET",
        "BPF_PROG_ATTACH",
        "BPF_PROG_DETACH",
        "BPF_PROG_TEST_RUN",
        "BPF_PROG_GET_NEXT_ID",
        "BPF_MAP_GET_NEXT_ID",
        "BPF_PROG_GET_FD_BY_ID",
        "BPF_MAP_GET_FD_BY_ID",
        "BPF_OBJ_GET_INFO_BY_FD",
        "BPF_PROG_QUERY",
        "BPF_RAW_TRACEPOINT_OPEN",
        "BPF_BTF_LOAD",
        "BPF_BTF_GET_FD_BY_ID",
        "BPF_TASK_FD_QUERY",
        "BPF_MAP_LOOKUP_AND_DELETE_ELEM",
        "BPF_MAP_FREEZE",
        "BPF_BTF_GET_NEXT_ID",
        "BPF_MAP_LOOKUP_BATCH",
        "BPF_MAP_LOOKUP_AND_DELETE_BATCH",
        "BPF_MAP_UPDATE_BATCH",
        "BPF_MAP_DELETE_BATCH",
        "BPF_LINK_CREATE",
        "BPF_LINK_UPDATE",
        "BPF_LINK_GET_FD_BY_ID",
        "BPF_LINK_GET_NEXT_ID",
        "BPF_ENABLE_STATS",
        "BPF_ITER_CREATE",
        "BPF_LINK_DETACH",
        "BPF_PROG_BIND_MAP",
        "BPF_TOKEN_CREATE",
    ];
    NAMES.get(cmd as usize).copied().unwrap_or("BPF_UNKNOWN")
}

/// Names of the CLONE_NEW* bits set in `flags`.
pub fn namespaces(flags: u64) -> Vec<String> {
    const NS: [(u64, &str); 8] = [
        (libc::CLONE_NEWNS as u64, "mnt"),
        (libc::CLONE_NEWUTS as u64, "uts"),
        (libc::CLONE_NEWIPC as u64, "ipc"),
        (libc::CLONE_NEWUSER as u64, "user"),
        (libc::CLONE_NEWPID as u64, "pid"),
        (libc::CLONE_NEWNET as u64, "net"),
        (libc::CLONE_NEWCGROUP as u64, "cgroup"),
        (0x80, "time"),
    ];
    NS.iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| n.to_string())
        .collect()
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
        }
        let mut nrs: Vec<u32> = all().map(|c| c.nr).collect();
        nrs.sort();
        nrs.dedup();
        assert_eq!(nrs.len(), all().count(), "a syscall is listed twice");
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
