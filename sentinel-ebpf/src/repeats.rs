//! Counting repeated identical opens in the kernel instead of sending each: the first open of
//! a path by a process image is sent (flagged `REPEAT_HEAD`), the identical ones after it only
//! bump a counter in `REPEATS` that user space reports. An open storm on a few files then
//! costs a map lookup per open instead of a record, a ring buffer slot and user-space work.
//! Directory opens (O_DIRECTORY, O_PATH: `LoadConfig::uncounted_open_flags`) are always sent:
//! each may return another descriptor, which later relative opens name.

use core::ffi::c_void;

use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_ktime_get_ns, generated::bpf_probe_read_kernel,
};
use sentinel_common::{REPEAT_PATH, RepeatVal};

use crate::{
    maps::{OFF_MASK, REPEAT_KEY, REPEATS, load_config},
    task,
};

pub enum Seen {
    /// Not eligible (relative or long path, a directory open, exec id unknown): send as usual.
    NotCounted,
    /// First of its kind: send it; its repeats will be counted.
    Head,
    /// Counted: do not send.
    Repeat,
}

const BPF_NOEXIST: u64 = 1;

/// Looks up the open whose path (`n` bytes, no NUL) is at `buf + off`.
#[inline(always)]
pub fn check(buf: *mut u8, off: usize, n: usize, nr: u32, flags: u32, ret: i64) -> Seen {
    let cfg = load_config();
    if cfg.offsets.task_self_exec_id == 0
        || n == 0
        || n >= REPEAT_PATH
        || flags & cfg.uncounted_open_flags != 0
    {
        return Seen::NotCounted;
    }
    let src = off & OFF_MASK;
    // SAFETY: src < MAX_RECORD, inside the 2 * MAX_RECORD scratch.
    if unsafe { *buf.add(src) } != b'/' {
        // A relative path names another file after a chdir.
        return Seen::NotCounted;
    }
    let Some(k) = REPEAT_KEY.get_ptr_mut(0) else {
        return Seen::NotCounted;
    };
    // SAFETY: this CPU's slot; programs do not nest on one CPU for these tracepoints.
    let k = unsafe { &mut *k };
    k.tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    k.nr = nr;
    k.flags = flags;
    k.ret = if ret >= 0 { 0 } else { ret as i32 };
    k.exec_id = task::field::<u64>(task::current(), cfg.offsets.task_self_exec_id).unwrap_or(0);
    k.path = [0; REPEAT_PATH];
    // The length through a volatile read, so the compiler keeps the mask: it knows n <
    // REPEAT_PATH from the test above and drops it otherwise, and older verifiers (6.1) do not
    // carry that test's bound over to the copy of n the helper gets ("invalid access to map
    // value, size=4094").
    // SAFETY: a read of a local.
    let len = unsafe { core::ptr::read_volatile(&n) } & (REPEAT_PATH - 1);
    // SAFETY: len < REPEAT_PATH bytes from the scratch into the key; probe_read cannot fault.
    unsafe {
        bpf_probe_read_kernel(
            k.path.as_mut_ptr() as *mut c_void,
            len as u32,
            buf.add(src) as *const c_void,
        );
    }
    if let Some(v) = REPEATS.get_ptr_mut(&*k) {
        // SAFETY: this CPU's copy of the value (a per-CPU map: no atomics needed, and the
        // BPF target has none in core); user space adds the CPUs up.
        unsafe { (*v).count += 1 };
        return Seen::Repeat;
    }
    let first = RepeatVal {
        count: 0,
        // SAFETY: the helper has no preconditions.
        first_ns: unsafe { bpf_ktime_get_ns() },
    };
    // Another thread may have inserted the same key meanwhile: then both opens are sent.
    let _ = REPEATS.insert(&*k, &first, BPF_NOEXIST);
    Seen::Head
}
