//! Reads of `task_struct` and `cred` fields at offsets user space resolved from BTF.

use aya_ebpf::helpers::{bpf_probe_read_kernel, generated::bpf_get_current_task};
use sentinel_common::Offsets;

pub const UNSET: u32 = u32::MAX;

pub fn current() -> *const u8 {
    // SAFETY: the helper has no preconditions.
    unsafe { bpf_get_current_task() as *const u8 }
}

/// Reads a `T` at `base + off`; `None` when the offset is unknown or the read faults.
pub fn field<T: Copy>(base: *const u8, off: u32) -> Option<T> {
    if off == 0 || base.is_null() {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel tolerates bad addresses (returns an error).
    unsafe { bpf_probe_read_kernel(base.add(off as usize) as *const T).ok() }
}

pub struct Identity {
    pub ppid: u32,
    pub auid: u32,
    pub session: u32,
    pub euid: u32,
}

pub fn identity(task: *const u8, o: &Offsets) -> Identity {
    let parent: Option<*const u8> = field(task, o.task_real_parent);
    let ppid = parent
        .and_then(|p| field::<u32>(p, o.task_tgid))
        .unwrap_or(0);
    let cred: Option<*const u8> = field(task, o.task_cred);
    Identity {
        ppid,
        auid: field(task, o.task_loginuid).unwrap_or(UNSET),
        session: field(task, o.task_sessionid).unwrap_or(UNSET),
        euid: cred
            .and_then(|c| field::<u32>(c, o.cred_euid))
            .unwrap_or(UNSET),
    }
}
