//! The bench's floor: programs attached to exactly the hooks Sentinel uses that do nothing
//! (`*_return`) or only Sentinel's first step, the agent's own-pid filter (`*_pid`). What they
//! cost is what any observer on these tracepoints pays; `cargo xtask bench` measures Sentinel
//! above it. Never attached by a normal run.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel},
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};

use crate::maps::{SYSCALL_SPECS, load_config};

/// The step every real entry point starts with: the helper call for the pid and the read of
/// the configuration stay (a call through a helper number and a volatile read are never
/// optimised away), whichever way the comparison goes the program ends.
#[inline(always)]
fn pid_filter() -> u32 {
    let own = (bpf_get_current_pid_tgid() >> 32) as u32 == load_config().agent_tgid;
    if own {
        return 0;
    }
    0
}

#[tracepoint]
pub fn floor_tp_return(_ctx: TracePointContext) -> u32 {
    0
}

#[tracepoint]
pub fn floor_tp_pid(_ctx: TracePointContext) -> u32 {
    pid_filter()
}

#[raw_tracepoint]
pub fn floor_raw_return(_ctx: RawTracePointContext) -> u32 {
    0
}

#[raw_tracepoint]
pub fn floor_raw_pid(_ctx: RawTracePointContext) -> u32 {
    pid_filter()
}

/// One `raw_syscalls/sys_exit` tracepoint for every syscall, filtering by number the way a
/// single-hook layout would have to (the record's `id`, then the spec table).
#[tracepoint]
pub fn floor_tp_sys_exit(ctx: TracePointContext) -> u32 {
    let nr = super::field::<i64>(&ctx, super::NR_OFF) as u32;
    captured(nr)
}

/// The raw `sys_exit` tracepoint for every syscall, with the same filter: the number is
/// `orig_ax` in the saved registers (x86_64; user space attaches this only where it checked
/// that layout from BTF).
#[raw_tracepoint]
pub fn floor_raw_sys_exit(ctx: RawTracePointContext) -> u32 {
    /// `offsetof(struct pt_regs, orig_ax)` on x86_64.
    const ORIG_AX: usize = 120;
    let regs: *const u8 = ctx.arg(0);
    // SAFETY: probe_read tolerates bad addresses; a failed read filters the call out.
    let nr = unsafe { bpf_probe_read_kernel(regs.add(ORIG_AX) as *const u64) }.unwrap_or(u64::MAX);
    captured(nr as u32)
}

/// The number filter: the spec table's lookup and the read of its kind (volatile: a real
/// program would branch on it, and the optimiser must not drop the read here).
#[inline(always)]
fn captured(nr: u32) -> u32 {
    if let Some(spec) = SYSCALL_SPECS.get(nr) {
        // SAFETY: a map value the lookup just returned.
        let kind = unsafe { core::ptr::read_volatile(&spec.kind) };
        if kind != 0 {
            return 0;
        }
    }
    0
}
