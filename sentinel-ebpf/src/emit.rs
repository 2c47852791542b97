//! Building records in the per-CPU scratch buffer and handing them to the ring buffer.

use core::ffi::c_void;

use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_ns,
    generated::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_probe_read_kernel,
        bpf_probe_read_user, bpf_probe_read_user_str,
    },
};
use sentinel_common::{
    BODY_SIZE, EventBody, EventHeader, FIXED_SIZE, HEADER_SIZE, MAX_RECORD, REPEAT_PATH, flags,
};

use crate::{
    maps::{EVENTS, OFF_MASK, SCRATCH, SETTINGS, count_lost, load_config},
    task,
};

const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;

/// The scratch buffer of this CPU.
#[inline(always)]
pub fn scratch() -> Option<*mut u8> {
    SCRATCH.get_ptr_mut(0).map(|p| p as *mut u8)
}

/// Fills the common header for the current task.
#[inline(always)]
pub fn fill_header(buf: *mut u8, kind: u32) {
    let cfg = load_config();
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    let id = task::identity(&cfg.offsets);
    // SAFETY: buf points at a scratch or in-flight buffer of at least MAX_RECORD bytes.
    let h = unsafe { &mut *(buf as *mut EventHeader) };
    h.ts_ns = unsafe { bpf_ktime_get_ns() };
    h.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    h.kind = kind;
    h.tgid = (pid_tgid >> 32) as u32;
    h.tid = pid_tgid as u32;
    h.ppid = id.ppid;
    h.uid = uid_gid as u32;
    h.gid = (uid_gid >> 32) as u32;
    h.euid = id.euid;
    h.auid = id.auid;
    h.session = id.session;
    // Straight into the header (the safe wrapper returns an array, copied by a byte-by-byte
    // memcpy call); on failure the helper zeroes it.
    // SAFETY: the destination is the header's 16-byte comm.
    unsafe { bpf_get_current_comm(h.comm.as_mut_ptr() as *mut c_void, 16) };
}

#[inline(always)]
pub fn header(buf: *mut u8) -> &'static mut EventHeader {
    // SAFETY: see fill_header.
    unsafe { &mut *(buf as *mut EventHeader) }
}

#[inline(always)]
pub fn body(buf: *mut u8) -> &'static mut EventBody {
    // SAFETY: the body follows the header inside the same buffer.
    unsafe { &mut *(buf.add(HEADER_SIZE) as *mut EventBody) }
}

/// Starts a record: header, zeroed body, flags cleared. Returns the offset of the tail.
#[inline(always)]
pub fn begin(buf: *mut u8, kind: u32, nr: u32) -> usize {
    fill_header(buf, kind);
    start(buf, nr)
}

/// Starts a record whose header is filled later (`fill_header`), once its strings showed it
/// is worth sending: zeroed body, flags cleared. Returns the offset of the tail.
#[inline(always)]
pub fn start(buf: *mut u8, nr: u32) -> usize {
    let h = header(buf);
    h.flags = 0;
    h._pad = 0;
    // SAFETY: the body is 8-byte aligned (the header's size is a multiple of 8) and
    // BODY_SIZE / 8 words long, inside the buffer.
    unsafe { zero(buf.add(HEADER_SIZE) as *mut u64, BODY_SIZE / 8) };
    body(buf).nr = nr;
    FIXED_SIZE
}

/// Reads a NUL-terminated user string of at most `max` bytes to `buf + off`. Returns its
/// length without the NUL (0 on failure, with READ_FAILED set).
#[inline(always)]
pub fn user_str(buf: *mut u8, off: usize, src: u64, max: u32) -> usize {
    if src == 0 {
        return 0;
    }
    // SAFETY: off is masked below MAX_RECORD and max <= MAX_RECORD, inside a scratch of
    // 2 * MAX_RECORD bytes.
    let n = unsafe {
        bpf_probe_read_user_str(
            buf.add(off & OFF_MASK) as *mut c_void,
            max,
            src as *const c_void,
        )
    };
    if n <= 0 {
        header(buf).flags |= flags::READ_FAILED;
        return 0;
    }
    let n = n as usize;
    if n >= max as usize {
        header(buf).flags |= flags::TRUNCATED;
    }
    n - 1
}

/// Copies a string of `len` bytes (and its NUL) from kernel memory at `src` (a repeat key's
/// path, shorter than `REPEAT_PATH`) to `buf + off`.
#[inline(always)]
pub fn copy_kernel(buf: *mut u8, off: usize, src: *const u8, len: usize) {
    // SAFETY: off is masked below MAX_RECORD and the length below REPEAT_PATH, inside a
    // scratch of 2 * MAX_RECORD bytes; the source is a map value of at least that length.
    unsafe {
        bpf_probe_read_kernel(
            buf.add(off & OFF_MASK) as *mut c_void,
            ((len + 1) & (REPEAT_PATH - 1)) as u32,
            src as *const c_void,
        )
    };
}

/// Copies `len` bytes of user memory to `buf + off`. Returns the bytes copied.
#[inline(always)]
pub fn user_blob(buf: *mut u8, off: usize, src: u64, len: u32) -> usize {
    let len = len & 0xff; // blobs are at most 255 bytes (MAX_BLOB is 128)
    if src == 0 || len == 0 {
        return 0;
    }
    // SAFETY: as in user_str.
    let r = unsafe {
        bpf_probe_read_user(
            buf.add(off & OFF_MASK) as *mut c_void,
            len,
            src as *const c_void,
        )
    };
    if r < 0 {
        header(buf).flags |= flags::READ_FAILED;
        return 0;
    }
    len as usize
}

/// Sends `size` bytes of `buf` to the ring buffer, counting a loss if it is full. Submits
/// without waking user space (which drains on a timer) unless the buffer is filling up.
#[inline(always)]
pub fn send(buf: *mut u8, size: usize, kind: u32) {
    let size = size & (MAX_RECORD - 1);
    if size < FIXED_SIZE {
        return;
    }
    header(buf).size = size as u32;
    let mut flags = BPF_RB_NO_WAKEUP;
    if let Some(s) = SETTINGS.get(0) {
        if s.wakeup_bytes != 0 && EVENTS.query(BPF_RB_AVAIL_DATA) >= s.wakeup_bytes as u64 {
            flags = BPF_RB_FORCE_WAKEUP;
        }
    }
    // SAFETY: buf holds at least `size` initialised bytes (size < MAX_RECORD).
    let data = unsafe { core::slice::from_raw_parts(buf as *const u8, size) };
    let r = EVENTS.output::<[u8]>(data, flags);
    if r.is_err() {
        count_lost(kind);
    }
}

/// Zeroes `words` 8-byte words at `p`. Plain zeroing (`*x = T::default()`, `[0; N]`)
/// compiles to calls of the BPF target's byte-by-byte memset, which cost more than the rest
/// of a counted open; volatile word stores cannot be merged back into such a call.
///
/// # Safety
/// `p` is 8-byte aligned and `words * 8` bytes from it are writable.
#[inline(always)]
pub unsafe fn zero(p: *mut u64, words: usize) {
    let mut i = 0;
    while i < words {
        // SAFETY: i < words, inside the range the caller vouches for.
        unsafe { core::ptr::write_volatile(p.add(i), 0) };
        i += 1;
    }
}
