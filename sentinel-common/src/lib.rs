//! Wire types shared by the kernel programs and the agent: the event record layout, the stable
//! event kinds, the syscall capture specs and the load-time configuration.
//!
//! Every type here is `#[repr(C)]`, `Copy`, and laid out without implicit padding; the const
//! assertions at the bottom fail the build if a layout drifts.
#![cfg_attr(target_arch = "bpf", no_std)]

/// Names of the maps and globals, so the loader never spells them twice.
pub mod names {
    pub const EVENTS: &str = "EVENTS";
    pub const LOST: &str = "LOST";
    pub const SYSCALL_SPECS: &str = "SYSCALL_SPECS";
    pub const KIND_ENABLED: &str = "KIND_ENABLED";
    pub const IGNORE_PREFIXES: &str = "IGNORE_PREFIXES";
    pub const SETTINGS: &str = "SETTINGS";
    pub const REPEATS: &str = "REPEATS";
    pub const ENV_NAMES: &str = "ENV_NAMES";
    pub const EXEC_TAIL: &str = "EXEC_TAIL";
}

/// Stable numeric event kinds. Grouped by area with gaps for growth; a retired number is never
/// reused because recorded events and stored baselines refer to it.
#[repr(u32)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Exec = 1,
    Fork = 2,
    Exit = 3,
    /// prctl(PR_SET_NAME): a thread renames itself.
    Prctl = 4,
    Connect = 20,
    /// socket() of AF_PACKET or SOCK_RAW only (filtered in the kernel).
    Socket = 21,
    Bind = 22,
    Listen = 23,
    Open = 40,
    Unlink = 41,
    Rename = 42,
    Chmod = 43,
    Chown = 44,
    MemfdCreate = 45,
    Utime = 46,
    Xattr = 47,
    Link = 48,
    Truncate = 49,
    /// dup, dup2, dup3, fcntl(F_DUPFD, F_DUPFD_CLOEXEC): a descriptor copied to another
    /// number (tree walkers work relative to the copies of their directory descriptors).
    Dup = 50,
    /// chdir, fchdir: the working directory changed (relative paths of the process's later
    /// calls resolve against it; the agent keeps it from these records, not from late reads of
    /// /proc/PID/cwd).
    Chdir = 51,
    SetUid = 60,
    SetGid = 61,
    Capset = 62,
    Ptrace = 63,
    Bpf = 64,
    Mount = 65,
    Umount = 66,
    Unshare = 67,
    Setns = 68,
    Kill = 69,
    ProcessVm = 70,
    Module = 71,
}

impl Kind {
    pub const ALL: [Kind; 32] = [
        Kind::Exec,
        Kind::Fork,
        Kind::Exit,
        Kind::Prctl,
        Kind::Connect,
        Kind::Socket,
        Kind::Bind,
        Kind::Listen,
        Kind::Open,
        Kind::Unlink,
        Kind::Rename,
        Kind::Chmod,
        Kind::Chown,
        Kind::MemfdCreate,
        Kind::Utime,
        Kind::Xattr,
        Kind::Link,
        Kind::Truncate,
        Kind::Dup,
        Kind::Chdir,
        Kind::SetUid,
        Kind::SetGid,
        Kind::Capset,
        Kind::Ptrace,
        Kind::Bpf,
        Kind::Mount,
        Kind::Umount,
        Kind::Unshare,
        Kind::Setns,
        Kind::Kill,
        Kind::ProcessVm,
        Kind::Module,
    ];

    pub fn from_u32(v: u32) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| *k as u32 == v)
    }

    /// The short name used on the command line, in JSON and in docs/events.md.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Exec => "exec",
            Kind::Fork => "fork",
            Kind::Exit => "exit",
            Kind::Prctl => "prctl",
            Kind::Connect => "connect",
            Kind::Socket => "socket",
            Kind::Bind => "bind",
            Kind::Listen => "listen",
            Kind::Open => "open",
            Kind::Unlink => "unlink",
            Kind::Rename => "rename",
            Kind::Chmod => "chmod",
            Kind::Chown => "chown",
            Kind::MemfdCreate => "memfd_create",
            Kind::Utime => "utime",
            Kind::Xattr => "xattr",
            Kind::Link => "link",
            Kind::Truncate => "truncate",
            Kind::Dup => "dup",
            Kind::Chdir => "chdir",
            Kind::SetUid => "setuid",
            Kind::SetGid => "setgid",
            Kind::Capset => "capset",
            Kind::Ptrace => "ptrace",
            Kind::Bpf => "bpf",
            Kind::Mount => "mount",
            Kind::Umount => "umount",
            Kind::Unshare => "unshare",
            Kind::Setns => "setns",
            Kind::Kill => "kill",
            Kind::ProcessVm => "process_vm",
            Kind::Module => "module",
        }
    }

    pub fn from_name(s: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.name() == s)
    }
}

/// Size of the per-kind arrays (enable flags, lost counters): every `Kind` value is below it.
pub const MAX_KINDS: u32 = 128;
/// Syscall numbers the kernel keeps a capture spec for (x86_64's table ends below 512).
pub const MAX_SYSCALLS: u32 = 512;

/// Header flag bits.
pub mod flags {
    /// A string in the tail was cut at its capture limit.
    pub const TRUNCATED: u32 = 1 << 0;
    /// argv had more entries than the capture limit.
    pub const ARGV_TRUNCATED: u32 = 1 << 1;
    /// A user-memory read failed (bad pointer, page not present); the field is empty.
    pub const READ_FAILED: u32 = 1 << 2;
    /// The child of a fork is a thread of the same process.
    pub const THREAD: u32 = 1 << 3;
    /// This open started a `REPEATS` entry: identical opens after it are counted there.
    pub const REPEAT_HEAD: u32 = 1 << 4;
    /// exec: the environment had more entries than were scanned, or the kept variables were
    /// cut at their capture limit.
    pub const ENV_TRUNCATED: u32 = 1 << 5;
}

/// Bits of `SyscallSpec::options`.
pub mod spec_opts {
    /// The first string is checked against the ignore prefixes.
    pub const PREFIX_FILTER: u8 = 1;
    /// Identical opens by one process image are counted in `REPEATS`, not sent; the flags
    /// argument's position (1-based) is in the high nibble.
    pub const COUNT_REPEATS: u8 = 2;
    pub const FLAGS_ARG_SHIFT: u8 = 4;
}

/// `ArgMatch::op`: how one argument condition of a spec decides whether a record is kept.
pub mod match_op {
    /// Unused slot.
    pub const NONE: u8 = 0;
    /// The record is kept only if this condition, or another `KEEP_IF` of the spec, holds.
    pub const KEEP_IF: u8 = 1;
    /// The record is dropped if this condition holds, whatever the `KEEP_IF` ones say.
    pub const DROP_IF: u8 = 2;
}

/// Capture limits. Strings are read only up to their NUL, so large limits cost nothing for
/// short paths; they bound the worst case.
pub const MAX_PATH: usize = 4096;
pub const MAX_ARGV_BYTES: usize = 8192;
pub const MAX_ARGS: usize = 64;
pub const MAX_BLOB: usize = 128;
/// exec environment: entries of envp looked at, bytes of kept `NAME=value` strings (all
/// together, NUL separated), bytes of one kept string, and the longest configurable name.
pub const MAX_ENV_SCAN: usize = 128;
pub const MAX_ENV_BYTES: usize = 2048;
pub const ENV_CHUNK: usize = 1024;
pub const ENV_NAME_LEN: usize = 32;
/// Number of variable names the kernel can be told to keep.
pub const MAX_ENV_NAMES: u32 = 64;
/// Largest record the kernel emits; user space rejects anything larger as corrupt.
pub const MAX_RECORD: usize = 16384;
/// Number of path prefixes the kernel can be told to ignore for open events.
pub const MAX_IGNORE_PREFIXES: u32 = 16;
pub const PREFIX_LEN: usize = 64;

/// Common header of every record, at offset 0.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    /// CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns).
    pub ts_ns: u64,
    pub cgroup_id: u64,
    pub kind: u32,
    /// Total record length in bytes, header included.
    pub size: u32,
    pub tgid: u32,
    pub tid: u32,
    /// Thread-group id of the real parent.
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    /// Login uid (u32::MAX when unset).
    pub auid: u32,
    /// Audit session id (u32::MAX when unset).
    pub session: u32,
    pub flags: u32,
    pub _pad: u32,
    pub comm: [u8; 16],
}

/// Body of every record after the header. One shape for all kinds keeps the kernel side
/// generic; the meaning of `args` per kind is decoded (and documented) in user space.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct EventBody {
    /// Syscall return value (negative errno on failure); 0 for fork/exit.
    pub ret: i64,
    /// The raw syscall arguments; for fork [child tgid, child tid], for exit [exit code],
    /// for exec [argc].
    pub args: [u64; 6],
    /// Syscall number (u32::MAX for non-syscall events).
    pub nr: u32,
    /// Lengths of the strings that follow the body, in order; then the blobs.
    pub str_lens: [u16; 3],
    pub blob_lens: [u16; 2],
    pub _pad: [u16; 5],
}

pub const HEADER_SIZE: usize = core::mem::size_of::<EventHeader>();
pub const BODY_SIZE: usize = core::mem::size_of::<EventBody>();
pub const FIXED_SIZE: usize = HEADER_SIZE + BODY_SIZE;

/// One condition on a raw syscall argument: `(arg & mask) == value`, evaluated in the kernel
/// before anything is read, so a syscall of which only some calls matter (prctl's
/// PR_SET_NAME, raw sockets) costs almost nothing for the others. See `match_op`.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ArgMatch {
    /// Argument index + 1 (0: unused slot).
    pub arg: u8,
    /// `match_op` value.
    pub op: u8,
    pub _pad: u16,
    /// Compared on the low 32 bits of the argument (the arguments filtered on are ints).
    pub mask: u32,
    pub value: u32,
}

/// Argument conditions per spec.
pub const MAX_ARG_MATCHES: usize = 3;

/// How the kernel captures one syscall: which event kind it feeds, which arguments are
/// user-space strings and which point to structures to copy, and which calls to keep at all.
/// Filled by user space per syscall number, so adding a syscall needs no kernel change.
///
/// A record is kept when no `DROP_IF` condition holds and, if the spec has `KEEP_IF`
/// conditions, at least one of them holds (no conditions: every call is kept).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SyscallSpec {
    pub kind: u32,
    /// Argument index + 1 of up to three NUL-terminated user strings (0: none).
    pub str_args: [u8; 3],
    /// Argument index + 1 of up to two user structures to copy (0: none).
    pub blob_args: [u8; 2],
    /// Argument index + 1 holding a blob's length (0: use `blob_max`).
    pub blob_len_args: [u8; 2],
    /// `spec_opts` bits.
    pub options: u8,
    pub blob_max: [u16; 2],
    pub matches: [ArgMatch; MAX_ARG_MATCHES],
}

impl SyscallSpec {
    /// Whether a call with these arguments is captured (see the type's doc). Shared by the
    /// kernel, which drops the others before reading anything, and the agent's tests.
    #[inline(always)]
    pub fn keeps(&self, args: &[u64; 6]) -> bool {
        let mut has_keep = false;
        let mut kept = false;
        let mut i = 0;
        while i < MAX_ARG_MATCHES {
            let m = self.matches[i];
            if m.op != match_op::NONE {
                let hit = (arg_at(args, m.arg as usize) as u32) & m.mask == m.value;
                if m.op == match_op::DROP_IF {
                    if hit {
                        return false;
                    }
                } else {
                    has_keep = true;
                    kept |= hit;
                }
            }
            i += 1;
        }
        !has_keep || kept
    }
}

/// Argument `pos` (1-based; 0 and out of range give 0). Branches instead of indexing: the
/// verifier rejects stack reads at a variable offset.
#[inline(always)]
pub fn arg_at(args: &[u64; 6], pos: usize) -> u64 {
    match pos {
        1 => args[0],
        2 => args[1],
        3 => args[2],
        4 => args[3],
        5 => args[4],
        6 => args[5],
        _ => 0,
    }
}

/// Settings the kernel reads at run time (one-element array map), so user space can change
/// them without reloading.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Number of valid entries in the ignore-prefix map.
    pub ignore_prefix_count: u32,
    /// Ask for a wake-up once this many bytes wait in the ring buffer (0: never force).
    pub wakeup_bytes: u32,
    /// Number of names in `ENV_NAMES`; 0: exec does not look at the environment at all.
    pub exec_env_names: u32,
    pub _pad: u32,
    /// Bit `env_prefilter_bit(..)` of every configured name (see `EnvName::prefilter_bit`):
    /// an envp entry whose bit is clear is passed over after a two-byte read, without reading
    /// its name or looking it up.
    pub env_prefilter: [u64; 4],
}

/// Longest configurable variable name: the kernel reads `ENV_NAME_LEN - 1` bytes of an entry,
/// and must see the '=' after the name to tell `NAME=` from a longer name starting with it.
pub const MAX_ENV_NAME: usize = ENV_NAME_LEN - 2;

/// Key of `ENV_NAMES`: a variable name, NUL padded (at most `MAX_ENV_NAME` bytes).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct EnvName {
    pub words: [u64; ENV_NAME_LEN / 8],
}

impl EnvName {
    /// The key for `name`; `None` when it is empty or too long to be matched.
    pub fn new(name: &[u8]) -> Option<EnvName> {
        if name.is_empty() || name.len() > MAX_ENV_NAME {
            return None;
        }
        let mut bytes = [0u8; ENV_NAME_LEN];
        bytes[..name.len()].copy_from_slice(name);
        let mut words = [0u64; ENV_NAME_LEN / 8];
        for (i, w) in words.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            // Little-endian, as the kernel programs read the entry (see `of_entry`).
            *w = u64::from_le_bytes(b);
        }
        Some(EnvName { words })
    }

    /// The prefilter bit (0..256) of an envp entry from its first two bytes as a
    /// little-endian u16: for a configured name, the first two bytes of `NAME=`. A
    /// multiplicative hash, so that names sharing a first letter (LD_*, LC_*, LOGNAME) fall
    /// on different bits.
    #[inline(always)]
    pub fn prefilter_bit(first_two: u16) -> u32 {
        (((first_two as u32).wrapping_mul(0x9E37_79B1)) >> 24) & 0xff
    }

    /// `prefilter_bit` of `name` (the first two bytes of `NAME=`); `None` for an empty name.
    pub fn prefilter_bit_of(name: &[u8]) -> Option<u32> {
        let first = *name.first()?;
        let second = name.get(1).copied().unwrap_or(b'=');
        Some(Self::prefilter_bit(u16::from_le_bytes([first, second])))
    }

    /// The key for the first `ENV_NAME_LEN` bytes of an envp entry as the kernel reads them
    /// (`NAME=value`, NUL-terminated within the buffer): everything from the first '=' or NUL
    /// on is zeroed. Word arithmetic instead of a byte loop (which would multiply the
    /// verifier's work by the bytes of every entry): per 8 bytes, the classic "has a zero
    /// byte" test on the word and on the word XOR "========" marks the stop bytes; its lowest
    /// mark is exact (false marks only occur above a true one), and gives the mask of the
    /// bytes before it. Little-endian byte order, like every target the kernel programs are
    /// built for. An entry whose name is longer than `MAX_ENV_NAME` never matches.
    #[inline(always)]
    pub fn of_entry(head: &[u64; ENV_NAME_LEN / 8]) -> EnvName {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        const EQUALS: u64 = 0x3d3d_3d3d_3d3d_3d3d;
        let mut words = [0u64; ENV_NAME_LEN / 8];
        let mut alive = u64::MAX;
        let mut i = 0;
        while i < ENV_NAME_LEN / 8 {
            let w = head[i];
            let x = w ^ EQUALS;
            let stops = (w.wrapping_sub(ONES) & !w & HIGHS) | (x.wrapping_sub(ONES) & !x & HIGHS);
            let lowest = stops & stops.wrapping_neg();
            // No stop: (0 >> 7) - 1 keeps every byte; else the bytes below the first stop.
            let keep = (lowest >> 7).wrapping_sub(1);
            words[i] = w & keep & alive;
            if stops != 0 {
                alive = 0;
            }
            i += 1;
        }
        EnvName { words }
    }
}

/// One path prefix to ignore (NUL padded).
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub len: u32,
    pub bytes: [u8; PREFIX_LEN],
}

impl Default for Prefix {
    fn default() -> Self {
        Prefix {
            len: 0,
            bytes: [0; PREFIX_LEN],
        }
    }
}

/// Kernel structure offsets resolved from BTF in user space and passed as a load-time global
/// (Rust BPF gets no CO-RE relocations). A zero offset means "unknown": the field is reported
/// as unset rather than read from a guessed place.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Offsets {
    pub task_real_parent: u32,
    pub task_tgid: u32,
    pub task_pid: u32,
    pub task_loginuid: u32,
    pub task_sessionid: u32,
    pub task_cred: u32,
    pub task_exit_code: u32,
    pub cred_euid: u32,
    /// Incremented by every exec: tells one program a process ran from the next.
    pub task_self_exec_id: u32,
    pub _pad: u32,
}

/// Where the six syscall arguments sit in the task's saved registers (`struct pt_regs`, from
/// BTF), so that an exit hook can read them without an enter hook stashing them. Used only
/// where the syscall ABI leaves the argument registers intact until exit and the layout is
/// x86_64's (the exit program reads r10..di in one 64-byte read from `arg_off[3]`); all zero
/// otherwise.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct RegsLayout {
    pub arg_off: [u16; 6],
    pub _pad: [u16; 2],
}

/// Load-time constants.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadConfig {
    /// The agent's own thread-group id: its syscalls are never reported.
    pub agent_tgid: u32,
    /// Opens with any of these flags are never counted as repeats, always sent: the
    /// directory opens (O_DIRECTORY, O_PATH; the host's values) whose descriptor later opens
    /// are relative to. A counted repeat does not say which descriptor it returned.
    pub uncounted_open_flags: u32,
    pub offsets: Offsets,
    pub regs: RegsLayout,
}

/// Size of a repeat key's path: paths of up to `REPEAT_PATH - 2` bytes have their repeated opens
/// counted in the kernel (longer ones are always sent).
pub const REPEAT_PATH: usize = 128;

/// One counted open: the process image (tgid, exec id), the syscall, its flags and outcome
/// (0 for success, else -errno) and the absolute path, NUL padded.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct RepeatKey {
    pub tgid: u32,
    pub nr: u32,
    pub flags: u32,
    pub ret: i32,
    pub exec_id: u64,
    pub path: [u8; REPEAT_PATH],
}

/// Identical opens counted after the first (which was sent), and when the first was.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct RepeatVal {
    pub count: u64,
    pub first_ns: u64,
}

/// What the generic enter hook keeps until the matching exit.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Stash {
    pub args: [u64; 6],
    pub nr: u32,
    pub _pad: u32,
}

const _: () = {
    assert!(HEADER_SIZE == 80);
    assert!(BODY_SIZE == 80);
    assert!(core::mem::size_of::<ArgMatch>() == 12);
    assert!(core::mem::size_of::<SyscallSpec>() == 16 + 12 * MAX_ARG_MATCHES);
    assert!(core::mem::size_of::<Settings>() == 48);
    assert!(core::mem::size_of::<EnvName>() == ENV_NAME_LEN);
    assert!(core::mem::size_of::<Prefix>() == 68);
    assert!(core::mem::size_of::<Offsets>() == 40);
    assert!(core::mem::size_of::<RepeatKey>() == 24 + REPEAT_PATH);
    assert!(core::mem::size_of::<RepeatVal>() == 16);
    assert!(core::mem::size_of::<RegsLayout>() == 16);
    assert!(core::mem::size_of::<LoadConfig>() == 64);
    assert!(core::mem::size_of::<Stash>() == 56);
    assert!(FIXED_SIZE + 3 * MAX_PATH + 2 * MAX_BLOB <= MAX_RECORD);
    assert!(FIXED_SIZE + MAX_PATH + MAX_ARGV_BYTES + MAX_ENV_BYTES <= MAX_RECORD);
    assert!(MAX_ENV_BYTES.is_power_of_two() && ENV_CHUNK <= MAX_ENV_BYTES);
    // exec gathers argv, then the environment, in the upper half of the scratch buffer.
    assert!(MAX_RECORD + MAX_ARGV_BYTES + MAX_ENV_BYTES + ENV_CHUNK <= 2 * MAX_RECORD);
};

#[cfg(feature = "user")]
mod user {
    use super::*;
    // SAFETY: all of these are repr(C), Copy, contain only integers and arrays of integers,
    // and have no implicit padding (see the const assertions above).
    unsafe impl aya::Pod for EventHeader {}
    unsafe impl aya::Pod for EventBody {}
    unsafe impl aya::Pod for SyscallSpec {}
    unsafe impl aya::Pod for ArgMatch {}
    unsafe impl aya::Pod for EnvName {}
    unsafe impl aya::Pod for Settings {}
    unsafe impl aya::Pod for Prefix {}
    unsafe impl aya::Pod for Offsets {}
    unsafe impl aya::Pod for RegsLayout {}
    unsafe impl aya::Pod for RepeatKey {}
    unsafe impl aya::Pod for RepeatVal {}
    unsafe impl aya::Pod for LoadConfig {}
    unsafe impl aya::Pod for Stash {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_by_number_and_name() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_u32(k as u32), Some(k));
            assert_eq!(Kind::from_name(k.name()), Some(k));
            assert!((k as u32) < MAX_KINDS);
        }
        assert_eq!(Kind::from_u32(0), None);
        assert_eq!(Kind::from_name("nope"), None);
    }

    #[test]
    fn an_entry_has_the_prefilter_bit_of_its_name() {
        for name in ["LD_PRELOAD", "ENV", "X", "HISTFILE", "AB"] {
            let entry = format!("{name}=value");
            let two = u16::from_le_bytes([entry.as_bytes()[0], entry.as_bytes()[1]]);
            assert_eq!(
                EnvName::prefilter_bit_of(name.as_bytes()),
                Some(EnvName::prefilter_bit(two)),
                "{name}"
            );
        }
        assert_eq!(EnvName::prefilter_bit_of(b""), None);
    }

    #[test]
    fn the_prefilter_passes_over_a_usual_environment() {
        let wanted = [
            "LD_PRELOAD",
            "LD_AUDIT",
            "HISTFILE",
            "PROMPT_COMMAND",
            "BASH_ENV",
            "ENV",
        ];
        let bits: Vec<u32> = wanted
            .iter()
            .filter_map(|n| EnvName::prefilter_bit_of(n.as_bytes()))
            .collect();
        let usual = [
            "PATH",
            "HOME",
            "USER",
            "SHELL",
            "LANG",
            "TERM",
            "PWD",
            "OLDPWD",
            "LOGNAME",
            "MAIL",
            "SHLVL",
            "_",
            "LS_COLORS",
            "LC_ALL",
            "LESSOPEN",
            "EDITOR",
            "DISPLAY",
            "HOSTNAME",
            "SSH_CLIENT",
            "SSH_CONNECTION",
            "SSH_TTY",
            "XDG_RUNTIME_DIR",
            "XDG_SESSION_ID",
            "DBUS_SESSION_BUS_ADDRESS",
            "COLORTERM",
            "TZ",
            "PAGER",
            "GOPATH",
            "CARGO_HOME",
            "RUSTUP_HOME",
            "VIRTUAL_ENV",
            "PYTHONPATH",
            "JAVA_HOME",
            "MAKEFLAGS",
            "CC",
            "CFLAGS",
        ];
        let passed: Vec<&str> = usual
            .iter()
            .copied()
            .filter(|n| bits.contains(&EnvName::prefilter_bit_of(n.as_bytes()).unwrap()))
            .collect();
        // 5 of 256 bits are set: a handful of collisions at most, never most of them.
        assert!(passed.len() <= 3, "{passed:?}");
    }

    /// What bpf_probe_read_user_str leaves in a zeroed 32-byte buffer.
    fn head(entry: &[u8]) -> [u64; ENV_NAME_LEN / 8] {
        let mut b = [0u8; ENV_NAME_LEN];
        let n = entry.len().min(ENV_NAME_LEN - 1);
        b[..n].copy_from_slice(&entry[..n]);
        let mut w = [0u64; ENV_NAME_LEN / 8];
        for (i, x) in w.iter_mut().enumerate() {
            *x = u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
        }
        w
    }

    #[test]
    fn env_entry_keys_match_configured_names_only() {
        let key = |e: &[u8]| EnvName::of_entry(&head(e));
        let name = |n: &[u8]| EnvName::new(n).unwrap();
        for (entry, n) in [
            (&b"LD_PRELOAD=/tmp/x.so"[..], &b"LD_PRELOAD"[..]),
            (b"ENV=", b"ENV"),
            (b"HISTFILE=/dev/null=x", b"HISTFILE"),
            (b"HISTFILE", b"HISTFILE"),
            (b"A=\xff\xfe\x80", b"A"),
            (b"PROMPT_COMMAND=history -a; echo hi", b"PROMPT_COMMAND"),
            (
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123=1",
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123",
            ),
            (b"ABCDEFG=", b"ABCDEFG"),
            (b"ABCDEFGH=", b"ABCDEFGH"),
            (b"ABCDEFGHI=", b"ABCDEFGHI"),
        ] {
            assert_eq!(key(entry), name(n), "{:?}", String::from_utf8_lossy(entry));
        }
        assert_ne!(key(b"LD_PRELOADX=1"), name(b"LD_PRELOAD"));
        assert_ne!(key(b"LD_PRELOA=1"), name(b"LD_PRELOAD"));
        assert_ne!(key(b"XLD_PRELOAD=1"), name(b"LD_PRELOAD"));
        // High bytes in a name are not mistaken for stops.
        assert_ne!(key(b"\xbdENV=1"), name(b"ENV"));
        // A longer name starting with the longest configurable one does not match it: the
        // '=' would fall outside the bytes read, so such names are not configurable.
        let long = [b'A'; 40];
        assert_eq!(key(&long), key(&long[..31]));
        assert_eq!(EnvName::new(&long[..31]), None);
        assert_ne!(key(&long), name(&long[..30]));
        assert_eq!(EnvName::new(b""), None);
    }
}
