//! Process lifecycle from the scheduler's raw tracepoints: new processes (not threads) and
//! the exit of a whole process (its leader thread).

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::raw_tracepoint, programs::RawTracePointContext,
};
use sentinel_common::{FIXED_SIZE, Kind};

use crate::{
    emit,
    maps::{kind_enabled, load_config},
    task,
};

/// sched_process_fork(struct task_struct *parent, struct task_struct *child).
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn proc_sched_fork(ctx: RawTracePointContext) -> u32 {
    let cfg = load_config();
    if (bpf_get_current_pid_tgid() >> 32) as u32 == cfg.agent_tgid
        || !kind_enabled(Kind::Fork as u32)
    {
        return 0;
    }
    let child: *const u8 = ctx.arg(1);
    let Some(child_tgid) = task::field::<u32>(child, cfg.offsets.task_tgid) else {
        return 0;
    };
    let child_pid = task::field::<u32>(child, cfg.offsets.task_pid).unwrap_or(0);
    if child_pid != child_tgid {
        // A new thread of an existing process: not a process event.
        return 0;
    }
    let Some(buf) = emit::scratch() else { return 0 };
    emit::begin(buf, Kind::Fork as u32, u32::MAX);
    let b = emit::body(buf);
    b.args[0] = child_tgid as u64;
    b.args[1] = child_pid as u64;
    emit::send(buf, FIXED_SIZE, Kind::Fork as u32);
    0
}

/// sched_process_exit(struct task_struct *p, ...): reported once per process, when its
/// leader thread exits.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn proc_sched_exit(ctx: RawTracePointContext) -> u32 {
    let cfg = load_config();
    let pid_tgid = bpf_get_current_pid_tgid();
    if pid_tgid as u32 != (pid_tgid >> 32) as u32 || (pid_tgid >> 32) as u32 == cfg.agent_tgid {
        return 0;
    }
    if !kind_enabled(Kind::Exit as u32) {
        return 0;
    }
    let p: *const u8 = ctx.arg(0);
    let code = task::field::<i32>(p, cfg.offsets.task_exit_code).unwrap_or(0);
    let Some(buf) = emit::scratch() else { return 0 };
    emit::begin(buf, Kind::Exit as u32, u32::MAX);
    emit::body(buf).args[0] = code as u32 as u64;
    emit::send(buf, FIXED_SIZE, Kind::Exit as u32);
    0
}
