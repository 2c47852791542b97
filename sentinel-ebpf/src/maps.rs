//! Every map and load-time global the kernel programs share with user space.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, LruPerCpuHashMap, PerCpuArray, ProgramArray, RingBuf},
};
use sentinel_common::{
    EnvName, LoadConfig, MAX_ENV_NAMES, MAX_IGNORE_PREFIXES, MAX_KINDS, MAX_RECORD, MAX_SYSCALLS,
    Prefix, RepeatKey, RepeatVal, Settings, Stash, SyscallSpec,
};

/// Default ring buffer size; user space may override it at load time.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(8 << 20, 0);

/// Records that could not be sent (ring buffer full), per kind; slot `UNPAIRED` counts syscall
/// exits whose entry was not seen (evicted or before attach).
#[map]
pub static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_KINDS, 0);
pub const UNPAIRED: u32 = MAX_KINDS - 1;

/// Capture spec per syscall number: an array, whose lookup the verifier inlines (a hash lookup
/// was a measurable part of every captured syscall).
#[map]
pub static SYSCALL_SPECS: Array<SyscallSpec> = Array::with_max_entries(MAX_SYSCALLS, 0);

#[map]
pub static KIND_ENABLED: Array<u32> = Array::with_max_entries(MAX_KINDS, 0);

#[map]
pub static IGNORE_PREFIXES: Array<Prefix> = Array::with_max_entries(MAX_IGNORE_PREFIXES, 0);

#[map]
pub static SETTINGS: Array<Settings> = Array::with_max_entries(1, 0);

/// Names of the environment variables an exec record keeps (`Settings::exec_env_names` of
/// them); the value is unused.
#[map]
pub static ENV_NAMES: HashMap<EnvName, u8> = HashMap::with_max_entries(MAX_ENV_NAMES, 0);

/// Syscall arguments between enter and exit, per thread (pid_tgid). A plain hash map, not an
/// LRU: the kernel's LRU evicts from per-CPU lists long before it is full, which under load
/// dropped in-flight entries. Every captured syscall returns through its exit hook (exec and
/// exit are not stashed), so entries do not leak; a full map is counted as a loss.
#[map]
pub static STASH: HashMap<u64, Stash> = HashMap::with_max_entries(32768, 0);

/// Opens already sent, counting the identical ones after them (see `RepeatKey`). User space
/// reports the counts and removes entries that went quiet; an LRU, so a flood of distinct
/// opens evicts the oldest entries (and their unreported counts, which user space notices).
#[map]
pub static REPEATS: LruPerCpuHashMap<RepeatKey, RepeatVal> =
    LruPerCpuHashMap::with_max_entries(16384, 0);

/// Per-CPU room to build a `RepeatKey` (too big for the stack beside a record in flight).
#[map]
pub static REPEAT_KEY: PerCpuArray<RepeatKey> = PerCpuArray::with_max_entries(1, 0);

/// Exec records are built at entry (argv is gone after a successful exec) and sent at exit.
#[map]
pub static EXEC_INFLIGHT: LruHashMap<u32, ExecBuf> = LruHashMap::with_max_entries(256, 0);

/// The exec environment scan (`proc_exec_env`), reached by a tail call from the exec entry
/// programs: verified on its own, because the argv loop and the environment loop in one
/// program exceed older verifiers' limit of a million instructions (6.1).
#[map]
pub static EXEC_TAIL: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// Per-CPU record under construction. Twice the largest record, so that masked offsets plus a
/// bounded read length always stay inside it (the verifier needs to see that).
#[map]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

pub const SCRATCH_SIZE: usize = 2 * MAX_RECORD;
/// Mask that keeps a write offset below `MAX_RECORD`.
pub const OFF_MASK: usize = MAX_RECORD - 1;

#[repr(C, align(8))]
pub struct Scratch {
    pub data: [u8; SCRATCH_SIZE],
}

#[repr(C, align(8))]
pub struct ExecBuf {
    pub data: [u8; MAX_RECORD],
}

#[unsafe(no_mangle)]
pub static LOAD_CONFIG: LoadConfig = LoadConfig {
    agent_tgid: 0,
    uncounted_open_flags: 0,
    offsets: sentinel_common::Offsets {
        task_real_parent: 0,
        task_tgid: 0,
        task_pid: 0,
        task_loginuid: 0,
        task_sessionid: 0,
        task_cred: 0,
        task_exit_code: 0,
        cred_euid: 0,
        task_self_exec_id: 0,
        _pad: 0,
    },
    regs: sentinel_common::RegsLayout {
        arg_off: [0; 6],
        _pad: [0; 2],
    },
};

pub fn load_config() -> LoadConfig {
    // SAFETY: a plain read of a global the loader patched before load; volatile so the
    // compiler does not fold the zero initialiser.
    unsafe { core::ptr::read_volatile(&LOAD_CONFIG) }
}

pub fn kind_enabled(kind: u32) -> bool {
    matches!(KIND_ENABLED.get(kind), Some(v) if *v != 0)
}

pub fn count_lost(slot: u32) {
    if let Some(p) = LOST.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *p += 1 };
    }
}
