//! Exec: the record (filename, argv, the configured environment variables) is built at entry,
//! because a successful exec replaces the memory argv and envp live in, parked per thread, and
//! sent at exit with the result and the new identity (a setuid binary changes euid, the comm
//! changes).

use core::ffi::c_void;

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_user,
        generated::{self, bpf_loop, bpf_probe_read_kernel, bpf_probe_read_user_str},
    },
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use sentinel_common::{
    ENV_CHUNK, ENV_NAME_LEN, EnvName, Kind, MAX_ARGS, MAX_ARGV_BYTES, MAX_ENV_BYTES, MAX_ENV_SCAN,
    MAX_PATH, MAX_RECORD, flags,
};

use super::{NR_OFF, RET_OFF, enter_args, field};
use crate::{
    emit,
    maps::{
        ENV_NAMES, EXEC_INFLIGHT, EXEC_TAIL, ExecBuf, OFF_MASK, SCRATCH_SIZE, SETTINGS, count_lost,
        kind_enabled, load_config,
    },
};

/// Where argv is gathered: the upper half of the scratch buffer.
const ARGV_BASE: usize = MAX_RECORD;
/// Longest single argument kept (longer ones are cut and flagged).
const ARG_CHUNK: usize = 4096;
/// Where the kept environment is gathered: the upper half again, free once argv moved down.
const ENV_BASE: usize = MAX_RECORD;

/// sys_enter_execve(filename, argv, envp).
#[tracepoint]
pub fn proc_enter_execve(ctx: TracePointContext) -> u32 {
    enter(&ctx, 0, 1, 2);
    0
}

/// sys_enter_execveat(dfd, filename, argv, envp, flags).
#[tracepoint]
pub fn proc_enter_execveat(ctx: TracePointContext) -> u32 {
    enter(&ctx, 1, 2, 3);
    0
}

/// sys_exit_execve and sys_exit_execveat.
#[tracepoint]
pub fn proc_exit_exec(ctx: TracePointContext) -> u32 {
    let tid = bpf_get_current_pid_tgid() as u32;
    let Some(p) = EXEC_INFLIGHT.get_ptr_mut(&tid) else {
        return 0;
    };
    let buf = p as *mut u8;
    let ret: i64 = field(&ctx, RET_OFF);
    let (size, keep_flags) = {
        let h = emit::header(buf);
        (h.size as usize, h.flags)
    };
    emit::fill_header(buf, Kind::Exec as u32);
    emit::header(buf).flags = keep_flags;
    emit::body(buf).ret = ret;
    emit::send(buf, size, Kind::Exec as u32);
    let _ = EXEC_INFLIGHT.remove(&tid);
    0
}

/// sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm): an
/// exec by a non-leader thread takes over the leader's pid; move the parked record to the new
/// thread id so the exit hook finds it.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn proc_sched_exec(ctx: RawTracePointContext) -> u32 {
    let old: u32 = ctx.arg::<u64>(1) as u32;
    let tid = bpf_get_current_pid_tgid() as u32;
    if old == tid {
        return 0;
    }
    if let Some(p) = EXEC_INFLIGHT.get_ptr(&old) {
        // SAFETY: p points at a live map value of the same type.
        let rec = unsafe { &*p };
        if EXEC_INFLIGHT.insert(&tid, rec, 0).is_err() {
            count_lost(Kind::Exec as u32);
        }
        let _ = EXEC_INFLIGHT.remove(&old);
    }
    0
}

#[inline(always)]
fn enter(ctx: &TracePointContext, filename_arg: usize, argv_arg: usize, envp_arg: usize) {
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 == load_config().agent_tgid || !kind_enabled(Kind::Exec as u32) {
        return;
    }
    let Some(buf) = emit::scratch() else { return };
    let nr = field::<i32>(ctx, NR_OFF) as u32;
    let args = enter_args(ctx);
    let mut off = emit::begin(buf, Kind::Exec as u32, nr);
    let n = emit::user_str(buf, off, args[filename_arg], MAX_PATH as u32);
    emit::body(buf).str_lens[0] = n as u16;
    off += n;

    // argv is gathered in the upper half of the scratch buffer with a constant read size
    // (keeps the verifier's work linear in MAX_ARGS), then moved down behind the filename.
    let argv = args[argv_arg] as *const u64;
    let mut rel: usize = 0;
    let mut argc = 0u64;
    let mut truncated = false;
    let mut k = 0;
    while k < MAX_ARGS {
        // SAFETY: user pointer read through the helper, which tolerates faults.
        let p = match unsafe { bpf_probe_read_user(argv.wrapping_add(k)) } {
            Ok(p) if p != 0 => p,
            _ => break,
        };
        if rel >= MAX_ARGV_BYTES {
            truncated = true;
            break;
        }
        // SAFETY: ARGV_BASE + (rel masked below MAX_ARGV_BYTES) + ARG_CHUNK < SCRATCH_SIZE.
        let n = unsafe {
            bpf_probe_read_user_str(
                buf.add(ARGV_BASE + (rel & (MAX_ARGV_BYTES - 1))) as *mut c_void,
                ARG_CHUNK as u32,
                p as *const c_void,
            )
        };
        if n <= 0 {
            break;
        }
        rel += n as usize;
        argc += 1;
        if n as usize >= ARG_CHUNK {
            truncated = true;
            break;
        }
        k += 1;
    }
    if k >= MAX_ARGS || rel > MAX_ARGV_BYTES {
        truncated = true;
    }
    let argv_len = if rel > MAX_ARGV_BYTES {
        MAX_ARGV_BYTES
    } else {
        rel
    };
    if argv_len > 0 {
        // SAFETY: both ranges lie inside the scratch buffer (off <= FIXED_SIZE + MAX_PATH).
        unsafe {
            bpf_probe_read_kernel(
                buf.add(off & OFF_MASK) as *mut c_void,
                (argv_len & (2 * MAX_ARGV_BYTES - 1)) as u32,
                buf.add(ARGV_BASE) as *const c_void,
            )
        };
    }
    off += argv_len;
    if truncated {
        emit::header(buf).flags |= flags::ARGV_TRUNCATED;
    }
    let envp = args[envp_arg];
    {
        let b = emit::body(buf);
        b.args = args;
        b.args[0] = argc;
        b.str_lens[1] = argv_len as u16;
    }
    emit::header(buf).size = (off & OFF_MASK) as u32;
    if env_wanted() {
        // SAFETY: ENVP_SLOT + 8 == SCRATCH_SIZE, inside this CPU's scratch buffer.
        unsafe { *(buf.add(ENVP_SLOT) as *mut u64) = envp };
        // Continues in proc_exec_env, which parks the record; returns only when the tail call
        // failed (the environment program was refused: user space reports it), and then the
        // record is parked without the environment.
        // SAFETY: slot 0 holds proc_exec_env, a tracepoint program like this one.
        unsafe { EXEC_TAIL.tail_call(ctx, 0) };
    }
    park(buf, pid_tgid);
}

/// Keeps the record built in the scratch buffer until the exec's exit.
#[inline(always)]
fn park(buf: *mut u8, pid_tgid: u64) {
    // SAFETY: the scratch buffer is at least MAX_RECORD bytes, the size of ExecBuf.
    let rec = unsafe { &*(buf as *const ExecBuf) };
    if EXEC_INFLIGHT.insert(&(pid_tgid as u32), rec, 0).is_err() {
        count_lost(Kind::Exec as u32);
    }
}

/// Where the entry program leaves envp for proc_exec_env: the last 8 bytes of the scratch
/// buffer, above the argv and environment gathering areas.
const ENVP_SLOT: usize = SCRATCH_SIZE - 8;

/// Tail of sys_enter_execve and sys_enter_execveat when environment variables are wanted:
/// appends them to the record in this CPU's scratch buffer and parks it.
#[tracepoint]
pub fn proc_exec_env(_ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(buf) = emit::scratch() else { return 0 };
    // SAFETY: written by the entry program just before the tail call, on this CPU.
    let envp = unsafe { *(buf.add(ENVP_SLOT) as *const u64) };
    append_env(buf, envp);
    park(buf, pid_tgid);
    0
}

/// Whether user space asked for any environment variable.
#[inline(always)]
fn env_wanted() -> bool {
    matches!(SETTINGS.get(0), Some(s) if s.exec_env_names != 0)
}

/// The environment scan's state, on `proc_exec_env`'s stack, passed to each `env_entry` call.
#[repr(C)]
struct EnvScan {
    envp: u64,
    /// Bytes gathered at `ENV_BASE`.
    rel: u64,
    truncated: u64,
    /// Entries looked at: `MAX_ENV_SCAN` when the scan ran out before the array's end.
    seen: u64,
    /// envp entries `k & !7 ..= k | 7`, read in one go when `block_ok` (a read of eight
    /// pointers costs what a read of one does; it fails where the array ends at a page the
    /// process has not mapped, and then each entry is read alone).
    ptrs: [u64; ENV_BLOCK],
    block_ok: u64,
}

/// envp entries read at once.
const ENV_BLOCK: usize = 8;

/// Appends the `NAME=value` strings of envp whose names are in `ENV_NAMES` to the record
/// (as its third string), each with its NUL. Looks at `MAX_ENV_SCAN` entries at most and
/// keeps `MAX_ENV_BYTES` (`ENV_CHUNK` per string); sets ENV_TRUNCATED when either cut.
///
/// The entries are visited by `bpf_loop` (kernel 5.17), whose callback the verifier checks
/// once instead of once per iteration: an unrolled scan with a prefilter needed more than a
/// million instructions of verification on 6.1.
#[inline(always)]
fn append_env(buf: *mut u8, envp: u64) {
    if envp == 0 {
        return;
    }
    let mut st = EnvScan {
        envp,
        rel: 0,
        truncated: 0,
        seen: 0,
        ptrs: [0; ENV_BLOCK],
        block_ok: 0,
    };
    // The callback's address, as the loader relocates it (a BPF_PSEUDO_FUNC load).
    let callback = env_entry as extern "C" fn(u64, *mut c_void) -> i64;
    // SAFETY: the callback takes (index, ctx) and returns 0 or 1; ctx is this stack struct.
    unsafe {
        bpf_loop(
            MAX_ENV_SCAN as u32,
            callback as *mut c_void,
            &mut st as *mut EnvScan as *mut c_void,
            0,
        )
    };
    let mut truncated = st.truncated != 0;
    if st.seen >= MAX_ENV_SCAN as u64 {
        // SAFETY: user pointer read through the helper, which tolerates faults.
        if let Ok(p) =
            unsafe { bpf_probe_read_user((envp as *const u64).wrapping_add(MAX_ENV_SCAN)) }
        {
            truncated |= p != 0;
        }
    }
    let mut len = st.rel as usize;
    if len > MAX_ENV_BYTES {
        len = MAX_ENV_BYTES;
        truncated = true;
    }
    // SAFETY: the header is at the start of the scratch buffer; a volatile read, so that the
    // compiler does not carry the caller's value over (the verifier then checks the copy
    // below once, not once per way the argv loop ended).
    let off = unsafe { core::ptr::read_volatile(&emit::header(buf).size) } as usize;
    if truncated {
        emit::header(buf).flags |= flags::ENV_TRUNCATED;
    }
    if len > 0 {
        // SAFETY: both ranges lie inside the scratch buffer (off masked below MAX_RECORD, len
        // <= MAX_ENV_BYTES).
        unsafe {
            bpf_probe_read_kernel(
                buf.add(off & OFF_MASK) as *mut c_void,
                (len & (2 * MAX_ENV_BYTES - 1)) as u32,
                buf.add(ENV_BASE) as *const c_void,
            )
        };
    }
    emit::body(buf).str_lens[2] = len as u16;
    emit::header(buf).size = ((off + len) & OFF_MASK) as u32;
}

/// One envp entry (`bpf_loop` callback): returns 1 to stop at the array's end or when the
/// gathering area is full, 0 to go on. Most entries cost two small user reads: a two-byte
/// read checked against the configured names' prefilter bits passes over them before their
/// name is read or looked up.
#[inline(never)]
extern "C" fn env_entry(k: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: bpf_loop passes the EnvScan append_env gave it.
    let st = unsafe { &mut *(ctx as *mut EnvScan) };
    let entry = (st.envp as *const u64).wrapping_add(k as usize);
    let slot = k as usize & (ENV_BLOCK - 1);
    if slot == 0 {
        // SAFETY: user memory read through the helper, which tolerates faults, into this
        // scan's own array of ENV_BLOCK pointers.
        let r = unsafe {
            generated::bpf_probe_read_user(
                st.ptrs.as_mut_ptr() as *mut c_void,
                (ENV_BLOCK * 8) as u32,
                entry as *const c_void,
            )
        };
        st.block_ok = (r == 0) as u64;
    }
    let p = if st.block_ok != 0 {
        st.ptrs[slot]
    } else {
        // SAFETY: user pointer read through the helper, which tolerates faults.
        unsafe { bpf_probe_read_user(entry) }.unwrap_or(0)
    };
    if p == 0 {
        return 1;
    }
    st.seen = k + 1;
    // SAFETY: as above; a string has at least its NUL, and a two-byte read past a one-byte
    // string only sees the next string's first byte (or fails, and the entry is looked at).
    let two = unsafe { bpf_probe_read_user(p as *const u16) }.unwrap_or(0);
    let Some(settings) = SETTINGS.get(0) else {
        return 1;
    };
    let bit = EnvName::prefilter_bit(two);
    if two != 0 && settings.env_prefilter[((bit >> 6) & 3) as usize] & (1 << (bit & 63)) == 0 {
        return 0;
    }
    // The first bytes of the entry, enough for any configured name and its '='; zeroed by
    // word (see `emit::zero`), as the key is the whole array.
    let mut head = core::mem::MaybeUninit::<[u64; ENV_NAME_LEN / 8]>::uninit();
    // SAFETY: the array is 8-byte aligned and ENV_NAME_LEN bytes long.
    let mut head = unsafe {
        emit::zero(head.as_mut_ptr() as *mut u64, ENV_NAME_LEN / 8);
        head.assume_init()
    };
    // SAFETY: the destination is this stack array of ENV_NAME_LEN bytes.
    let n = unsafe {
        bpf_probe_read_user_str(
            head.as_mut_ptr() as *mut c_void,
            ENV_NAME_LEN as u32,
            p as *const c_void,
        )
    };
    // SAFETY: a lookup by a key on the stack; the value is not used.
    if n <= 0 || unsafe { ENV_NAMES.get(&EnvName::of_entry(&head)) }.is_none() {
        return 0;
    }
    if st.rel >= MAX_ENV_BYTES as u64 {
        st.truncated = 1;
        return 1;
    }
    let Some(buf) = emit::scratch() else {
        return 1;
    };
    // SAFETY: ENV_BASE + (rel masked below MAX_ENV_BYTES) + ENV_CHUNK lies inside the scratch
    // buffer (asserted in sentinel-common).
    let m = unsafe {
        bpf_probe_read_user_str(
            buf.add(ENV_BASE + (st.rel as usize & (MAX_ENV_BYTES - 1))) as *mut c_void,
            ENV_CHUNK as u32,
            p as *const c_void,
        )
    };
    if m > 0 {
        st.rel += m as u64;
        if m as usize >= ENV_CHUNK {
            st.truncated = 1;
        }
    }
    0
}
