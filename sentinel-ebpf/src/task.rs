//! Reads of `task_struct` and `cred` fields at offsets user space resolved from BTF.

use aya_ebpf::helpers::{bpf_probe_read_kernel, generated::bpf_get_current_task_btf};
use sentinel_common::Offsets;

pub const UNSET: u32 = u32::MAX;

/// Reads a `T` at `base + off`; `None` when the offset is unknown or the read faults. For
/// tasks known only as a raw address (a raw tracepoint's arguments).
pub fn field<T: Copy>(base: *const u8, off: u32) -> Option<T> {
    if off == 0 || base.is_null() {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel tolerates bad addresses (returns an error).
    unsafe { bpf_probe_read_kernel(base.add(off as usize) as *const T).ok() }
}

/// The current task as the verifier's typed pointer: its fields (and the task and cred
/// pointers in them) are read with plain loads, which the verifier checks against the
/// kernel's BTF and the JIT guards against faults, where a probe-read helper call per field
/// cost more than the rest of a counted open.
#[inline(always)]
pub fn current_btf() -> *const u8 {
    // SAFETY: the helper has no preconditions.
    unsafe { bpf_get_current_task_btf() as *const u8 }
}

/// A field of a typed kernel pointer (`current_btf`, or a pointer read from one). `off` must
/// come from the load-time configuration: the verifier accepts the load only because it
/// knows the offset (a frozen read-only global) and finds a field of that size there in BTF.
/// `None` when the offset is unknown (0) or the pointer is NULL.
#[inline(always)]
pub fn btf_field<T: Copy>(base: *const u8, off: u32) -> Option<T> {
    if off == 0 || base.is_null() {
        return None;
    }
    // SAFETY: a typed pointer's field, checked by the verifier against BTF; the JIT turns a
    // fault into a zero.
    Some(unsafe { core::ptr::read_volatile(base.add(off as usize) as *const T) })
}

pub struct Identity {
    pub ppid: u32,
    pub auid: u32,
    pub session: u32,
    pub euid: u32,
}

/// The current task's parent, login uid, session and effective uid.
#[inline(always)]
pub fn identity(o: &Offsets) -> Identity {
    let task = current_btf();
    let parent: Option<*const u8> = btf_field(task, o.task_real_parent);
    let ppid = parent
        .and_then(|p| btf_field::<u32>(p, o.task_tgid))
        .unwrap_or(0);
    let cred: Option<*const u8> = btf_field(task, o.task_cred);
    Identity {
        ppid,
        auid: btf_field(task, o.task_loginuid).unwrap_or(UNSET),
        session: btf_field(task, o.task_sessionid).unwrap_or(UNSET),
        euid: cred
            .and_then(|c| btf_field::<u32>(c, o.cred_euid))
            .unwrap_or(UNSET),
    }
}
