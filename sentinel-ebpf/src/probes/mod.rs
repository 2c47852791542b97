//! Entry points, one file per hook family, and reads of the syscall tracepoint records they
//! share.

mod exec;
mod floor;
mod sched;
mod syscall;

use aya_ebpf::{EbpfContext, programs::TracePointContext};

/// Offsets in the syscall tracepoint records (see .../syscalls/sys_enter_openat/format).
pub(crate) const NR_OFF: usize = 8;
pub(crate) const ARGS_OFF: usize = 16;
pub(crate) const RET_OFF: usize = 16;

/// A field every syscall record has (`NR_OFF`, `RET_OFF`). A plain load: tracepoint programs
/// may read their record directly, and the probe-read helper call it replaces cost more than the
/// read itself on every captured syscall.
#[inline(always)]
pub(crate) fn field<T: Copy>(ctx: &TracePointContext, off: usize) -> T {
    // SAFETY: callers pass the constant offset of a field inside every syscall record (the
    // kernel checks the furthest such read against each record's size when attaching).
    unsafe { core::ptr::read(ctx.as_ptr().cast::<u8>().add(off).cast::<T>()) }
}

/// The six argument slots of a sys_enter_* record. Through the probe-read helper, not plain
/// loads: a record holds only its syscall's arguments, and the kernel refuses to attach a
/// program whose direct reads reach past the end of the record.
#[inline(always)]
pub(crate) fn enter_args(ctx: &TracePointContext) -> [u64; 6] {
    let mut args = [0u64; 6];
    let mut i = 0;
    while i < 6 {
        // SAFETY: probe_read tolerates any address; a failed read leaves zero.
        args[i] = unsafe { ctx.read_at::<u64>(ARGS_OFF + i * 8) }.unwrap_or(0);
        i += 1;
    }
    args
}
