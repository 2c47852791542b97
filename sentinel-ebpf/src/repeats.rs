//! Counting repeated identical opens in the kernel instead of sending each: the first open of
//! a path by a process image is sent (flagged `REPEAT_HEAD`), the identical ones after it only
//! bump a counter in `REPEATS` that user space reports. An open storm on a few files then
//! costs a map lookup per open instead of a record, a ring buffer slot and user-space work.
//! Directory opens (O_DIRECTORY, O_PATH: `LoadConfig::uncounted_open_flags`) are always sent:
//! each may return another descriptor, which later relative opens name.

use core::ffi::c_void;

use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_ktime_get_ns, generated::bpf_probe_read_user_str,
};
use sentinel_common::{REPEAT_PATH, RepeatKey, RepeatVal};

use crate::{
    emit,
    maps::{REPEAT_KEY, REPEATS, load_config},
    task,
};

pub enum Seen {
    /// First of its kind: send it; its repeats will be counted.
    Head,
    /// Counted: do not send.
    Repeat,
}

const BPF_NOEXIST: u64 = 1;

/// A path read straight from user memory into this CPU's repeat key, before anything else of
/// the record is built: a counted repeat then costs one string read and one lookup.
pub struct Keyed {
    pub key: &'static mut RepeatKey,
    /// Length without the NUL (the key holds the NUL and zeros after it).
    pub len: usize,
    /// Absolute and eligible: look it up (`seen`). Otherwise it only saved a second read.
    pub countable: bool,
}

/// Reads the path at user address `src` into the key when it may be counted. `None` when the
/// call is not eligible (a directory open, exec id unknown) or the path does not fit in the
/// key (or could not be read): the caller reads it into the record as usual.
#[inline(always)]
pub fn read(src: u64, nr: u32, flags: u32, ret: i64) -> Option<Keyed> {
    let cfg = load_config();
    if cfg.offsets.task_self_exec_id == 0 || src == 0 || flags & cfg.uncounted_open_flags != 0 {
        return None;
    }
    let k = REPEAT_KEY.get_ptr_mut(0)?;
    // SAFETY: this CPU's slot; programs do not nest on one CPU for these tracepoints.
    let k = unsafe { &mut *k };
    // Not `k.path = [0; N]`: see `emit::zero`.
    // SAFETY: the path follows 24 bytes of u32/u64 fields in a #[repr(C)] key: 8-byte aligned,
    // REPEAT_PATH / 8 words long.
    unsafe { emit::zero(k.path.as_mut_ptr() as *mut u64, REPEAT_PATH / 8) };
    // SAFETY: at most REPEAT_PATH bytes into the key's path; the helper tolerates bad
    // addresses.
    let n = unsafe {
        bpf_probe_read_user_str(
            k.path.as_mut_ptr() as *mut c_void,
            REPEAT_PATH as u32,
            src as *const c_void,
        )
    };
    // A full key may be a longer path cut short: not counted, read again whole.
    if n <= 1 || n >= REPEAT_PATH as i64 {
        return None;
    }
    k.tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    k.nr = nr;
    k.flags = flags;
    k.ret = if ret >= 0 { 0 } else { ret as i32 };
    k.exec_id =
        task::btf_field::<u64>(task::current_btf(), cfg.offsets.task_self_exec_id).unwrap_or(0);
    // A relative path names another file after a chdir.
    let countable = k.path[0] == b'/';
    Some(Keyed {
        key: k,
        len: n as usize - 1,
        countable,
    })
}

/// Counts a repeat of the key's open, or records it as the first of its kind.
#[inline(always)]
pub fn seen(k: &RepeatKey) -> Seen {
    if let Some(v) = REPEATS.get_ptr_mut(k) {
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
    let _ = REPEATS.insert(k, &first, BPF_NOEXIST);
    Seen::Head
}
