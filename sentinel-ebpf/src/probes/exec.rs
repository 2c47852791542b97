//! Exec: the record (filename, argv) is built at entry, because a successful exec replaces the
//! memory argv lives in, parked per thread, and sent at exit with the result and the new
//! identity (a setuid binary changes euid, the comm changes).

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user},
    macros::tracepoint,
    programs::TracePointContext,
};
use sentinel_common::{Kind, MAX_ARGS, MAX_ARGV_BYTES, MAX_PATH, MAX_RECORD, flags};

use crate::{
    emit,
    maps::{EXEC_INFLIGHT, ExecBuf, OFF_MASK, count_lost, kind_enabled, load_config},
};

const NR_OFF: usize = 8;
const ARGS_OFF: usize = 16;
const RET_OFF: usize = 16;

/// sys_enter_execve(filename, argv, envp).
#[tracepoint]
pub fn proc_enter_execve(ctx: TracePointContext) -> u32 {
    enter(&ctx, 0, 1);
    0
}

/// sys_enter_execveat(dfd, filename, argv, envp, flags).
#[tracepoint]
pub fn proc_enter_execveat(ctx: TracePointContext) -> u32 {
    enter(&ctx, 1, 2);
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
    let ret = unsafe { ctx.read_at::<i64>(RET_OFF) }.unwrap_or(0);
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

#[inline(always)]
fn enter(ctx: &TracePointContext, filename_arg: usize, argv_arg: usize) {
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 == load_config().agent_tgid || !kind_enabled(Kind::Exec as u32) {
        return;
    }
    let Some(buf) = emit::scratch() else { return };
    let nr = unsafe { ctx.read_at::<i32>(NR_OFF) }.unwrap_or(-1) as u32;
    let mut args = [0u64; 6];
    let mut i = 0;
    while i < 6 {
        args[i] = unsafe { ctx.read_at::<u64>(ARGS_OFF + i * 8) }.unwrap_or(0);
        i += 1;
    }
    let mut off = emit::begin(buf, Kind::Exec as u32, nr);
    let n = emit::user_str(buf, off, args[filename_arg], MAX_PATH as u32);
    emit::body(buf).str_lens[0] = n as u16;
    off += n;

    let argv = args[argv_arg] as *const u64;
    let start = off;
    let mut argc = 0u64;
    let mut k = 0;
    while k < MAX_ARGS {
        if argv.is_null() {
            break;
        }
        let used = off - start;
        if used >= MAX_ARGV_BYTES {
            emit::header(buf).flags |= flags::ARGV_TRUNCATED;
            break;
        }
        // SAFETY: user pointer read through the helper, which tolerates faults.
        let Ok(p) = (unsafe { bpf_probe_read_user(argv.add(k)) }) else {
            break;
        };
        if p == 0 {
            break;
        }
        let room = (MAX_ARGV_BYTES - used) as u32;
        // Read with the NUL kept as the separator between arguments.
        let got = emit::user_str(buf, off, p, room);
        if got == 0 && emit::header(buf).flags & flags::READ_FAILED != 0 {
            break;
        }
        off += got + 1;
        argc += 1;
        if got + 1 >= room as usize {
            emit::header(buf).flags |= flags::ARGV_TRUNCATED;
            break;
        }
        k += 1;
    }
    if k == MAX_ARGS {
        emit::header(buf).flags |= flags::ARGV_TRUNCATED;
    }
    {
        let b = emit::body(buf);
        b.args = args;
        b.args[0] = argc;
        b.str_lens[1] = ((off - start) & (MAX_RECORD - 1)) as u16;
    }
    emit::header(buf).size = (off & OFF_MASK) as u32;
    // SAFETY: the scratch buffer is at least MAX_RECORD bytes, the size of ExecBuf.
    let rec = unsafe { &*(buf as *const ExecBuf) };
    if EXEC_INFLIGHT.insert(&(pid_tgid as u32), rec, 0).is_err() {
        count_lost(Kind::Exec as u32);
    }
}
