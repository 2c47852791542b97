//! The generic syscall hooks, attached by user space to the `syscalls/sys_exit_*` (and, where
//! needed, `sys_enter_*`) tracepoints of every syscall it has a `SyscallSpec` for. Where BTF
//! says where the argument registers are saved, one exit program reads the arguments from the
//! task's `pt_regs` (`syscall_exit_regs`); elsewhere an enter program stashes them for the
//! exit program (`syscall_enter_stash` + `syscall_exit_emit`). Strings are read at exit, when
//! the syscall has finished with them.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated::bpf_task_pt_regs},
    macros::tracepoint,
    programs::TracePointContext,
};
use sentinel_common::{
    MAX_BLOB, MAX_IGNORE_PREFIXES, MAX_PATH, PREFIX_LEN, Stash, SyscallSpec, arg_at as arg, flags,
    spec_opts,
};

use super::{NR_OFF, RET_OFF, enter_args, field};
use crate::{
    emit,
    maps::{
        IGNORE_PREFIXES, SETTINGS, STASH, SYSCALL_SPECS, UNPAIRED, count_lost, kind_enabled,
        load_config,
    },
    repeats, task,
};

/// The capture spec of syscall `nr`; `None` for syscalls without one (an all-zero slot: kind
/// 0 is no kind).
#[inline(always)]
fn spec_for(nr: u32) -> Option<SyscallSpec> {
    SYSCALL_SPECS.get(nr).copied().filter(|s| s.kind != 0)
}

/// sys_enter_* (any captured syscall): keep the arguments until the exit.
#[tracepoint]
pub fn syscall_enter_stash(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 == load_config().agent_tgid {
        return 0;
    }
    let nr = field::<i32>(&ctx, NR_OFF) as u32;
    let Some(spec) = spec_for(nr) else {
        return 0;
    };
    if !kind_enabled(spec.kind) {
        return 0;
    }
    let args = enter_args(&ctx);
    // Calls the spec's argument conditions drop are not even stashed.
    if !spec.keeps(&args) {
        return 0;
    }
    let stash = Stash { args, nr, _pad: 0 };
    if STASH.insert(&pid_tgid, &stash, 0).is_err() {
        count_lost(spec.kind);
    }
    0
}

/// sys_exit_* (any captured syscall): build and send the record.
#[tracepoint]
pub fn syscall_exit_emit(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: copied out before the remove.
    let Some(stash) = (unsafe { STASH.get(&pid_tgid).copied() }) else {
        // The agent's own syscalls never stash; anything else here was not paired.
        if (pid_tgid >> 32) as u32 != load_config().agent_tgid {
            count_lost(UNPAIRED);
        }
        return 0;
    };
    let _ = STASH.remove(&pid_tgid);
    let Some(spec) = spec_for(stash.nr) else {
        return 0;
    };
    let ret: i64 = field(&ctx, RET_OFF);
    emit_syscall(&stash.args, stash.nr, &spec, ret);
    0
}

/// sys_exit_* (any captured syscall), with no enter hook: the arguments are still in the
/// registers the task saved on entry (only the return register was overwritten).
#[tracepoint]
pub fn syscall_exit_regs(ctx: TracePointContext) -> u32 {
    let cfg = load_config();
    if (bpf_get_current_pid_tgid() >> 32) as u32 == cfg.agent_tgid {
        return 0;
    }
    let nr = field::<i32>(&ctx, NR_OFF) as u32;
    let Some(spec) = spec_for(nr) else {
        return 0;
    };
    if !kind_enabled(spec.kind) {
        return 0;
    }
    // SAFETY: the current task is always valid; the helper returns its saved user registers
    // as a typed pointer.
    let regs = unsafe { bpf_task_pt_regs(task::current_btf() as *mut _) } as *const u8;
    // Plain loads of the typed pointer's fields (see `task::btf_field`) at the offsets user
    // space found in BTF (it enables this program only for x86_64's layout), without a test
    // of each: a branch here multiplies the paths the verifier walks through the record
    // building below. A fault reads zero.
    let o = &cfg.regs.arg_off;
    let reg = |i: usize| task::btf_field::<u64>(regs, o[i] as u32).unwrap_or(0);
    let args = [reg(0), reg(1), reg(2), reg(3), reg(4), reg(5)];
    if !spec.keeps(&args) {
        return 0;
    }
    let ret: i64 = field(&ctx, RET_OFF);
    emit_syscall(&args, nr, &spec, ret);
    0
}

#[inline(always)]
fn emit_syscall(args: &[u64; 6], nr: u32, spec: &SyscallSpec, ret: i64) {
    let Some(buf) = emit::scratch() else { return };
    // The header (identity reads, comm, cgroup) is filled after the first string: an ignored
    // path or a counted repeat never needs it.
    let mut off = emit::start(buf, nr);
    {
        let b = emit::body(buf);
        b.ret = ret;
        b.args = *args;
    }
    let mut i = 0;
    while i < 3 {
        let a = spec.str_args[i] as usize;
        if a != 0 && a <= 6 {
            if i == 0 && spec.options & spec_opts::COUNT_REPEATS != 0 {
                let flags_arg = (spec.options >> spec_opts::FLAGS_ARG_SHIFT) as usize;
                if let Some(k) = repeats::read(arg(args, a), nr, arg(args, flags_arg) as u32, ret) {
                    let path = k.key.path.as_ptr();
                    if spec.options & spec_opts::PREFIX_FILTER != 0 && ignored(path, 0, k.len) {
                        return;
                    }
                    if k.countable {
                        match repeats::seen(k.key) {
                            repeats::Seen::Repeat => return,
                            repeats::Seen::Head => emit::header(buf).flags |= flags::REPEAT_HEAD,
                        }
                    }
                    emit::copy_kernel(buf, off, path, k.len);
                    emit::body(buf).str_lens[0] = k.len as u16;
                    off += k.len;
                    i += 1;
                    continue;
                }
            }
            let n = emit::user_str(buf, off, arg(args, a), MAX_PATH as u32);
            if i == 0 && spec.options & spec_opts::PREFIX_FILTER != 0 && ignored(buf, off, n) {
                return;
            }
            emit::body(buf).str_lens[i] = n as u16;
            off += n;
        }
        i += 1;
    }
    emit::fill_header(buf, spec.kind);
    let mut j = 0;
    while j < 2 {
        let a = spec.blob_args[j] as usize;
        if a != 0 && a <= 6 {
            let mut len = spec.blob_max[j] as u64;
            let la = spec.blob_len_args[j] as usize;
            if la != 0 && la <= 6 && arg(args, la) < len {
                len = arg(args, la);
            }
            if len > MAX_BLOB as u64 {
                len = MAX_BLOB as u64;
            }
            let n = emit::user_blob(buf, off, arg(args, a), len as u32);
            emit::body(buf).blob_lens[j] = n as u16;
            off += n;
        }
        j += 1;
    }
    emit::send(buf, off, spec.kind);
}

/// True when the path at `buf + off` (length `n`) starts with a configured ignore prefix.
#[inline(always)]
fn ignored(buf: *const u8, off: usize, n: usize) -> bool {
    let Some(settings) = SETTINGS.get(0) else {
        return false;
    };
    let count = settings.ignore_prefix_count;
    let mut i = 0u32;
    while i < MAX_IGNORE_PREFIXES {
        if i >= count {
            return false;
        }
        if let Some(p) = IGNORE_PREFIXES.get(i) {
            let len = p.len as usize;
            if len != 0 && len <= PREFIX_LEN && len <= n && starts_with(buf, off, &p.bytes, len) {
                return true;
            }
        }
        i += 1;
    }
    false
}

#[inline(always)]
fn starts_with(buf: *const u8, off: usize, prefix: &[u8; PREFIX_LEN], len: usize) -> bool {
    let base = off & crate::maps::OFF_MASK;
    let mut k = 0;
    while k < PREFIX_LEN {
        if k >= len {
            return true;
        }
        // SAFETY: base < MAX_RECORD and k < PREFIX_LEN, inside the 2 * MAX_RECORD scratch;
        // or base == 0 in a repeat key's path, which is longer than PREFIX_LEN.
        let c = unsafe { *buf.add(base + k) };
        if c != prefix[k] {
            return false;
        }
        k += 1;
    }
    true
}
