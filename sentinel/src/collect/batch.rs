//! Reading and removing many entries of a per-CPU hash map in one system call each
//! (`BPF_MAP_LOOKUP_BATCH`, `BPF_MAP_DELETE_BATCH`, Linux 5.6+), which aya does not offer: its
//! iterator costs two calls per entry (next key, then lookup) and removal one more, and the
//! repeat map is read whole every second (an exec storm puts two entries per process there).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use aya::Pod;

/// `enum bpf_cmd` numbers (include/uapi/linux/bpf.h); stable kernel ABI.
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

/// The `batch` member of `union bpf_attr`. The kernel takes a shorter attribute than its own
/// union and reads the rest as zero.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

const _: () = assert!(std::mem::size_of::<BatchAttr>() == 56);

fn bpf(cmd: libc::c_long, attr: &mut BatchAttr) -> io::Result<()> {
    // SAFETY: `attr` is a valid, initialised `batch` attribute of the size passed; the buffers
    // it points to are owned by the caller and sized for `count` entries.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut BatchAttr,
            std::mem::size_of::<BatchAttr>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Entries asked for per call. A hash bucket is never split across calls, so a call whose
/// buffer is smaller than a bucket fails with ENOSPC and is repeated with a larger one.
const CHUNK: usize = 512;

/// Every entry of the per-CPU hash map `map`: its key and its `cpus` values, one per possible
/// CPU. An entry added or removed while the map is read may be missed or seen, as with any
/// walk of a live map.
pub fn lookup_all<K: Pod, V: Pod>(
    map: BorrowedFd<'_>,
    cpus: usize,
) -> io::Result<Vec<(K, Vec<V>)>> {
    // Per-CPU values are laid out at 8-byte strides.
    let stride = std::mem::size_of::<V>().next_multiple_of(8);
    let mut out = Vec::new();
    let mut chunk = CHUNK;
    let mut token = 0u64;
    let mut first = true;
    loop {
        let mut keys: Vec<K> = Vec::with_capacity(chunk);
        let mut values = vec![0u8; chunk * cpus * stride];
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                &mut token as *mut u64 as u64
            },
            out_batch: &mut token as *mut u64 as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: chunk as u32,
            map_fd: map.as_raw_fd() as u32,
            ..Default::default()
        };
        let res = bpf(BPF_MAP_LOOKUP_BATCH, &mut attr);
        let done = match res {
            Ok(()) => false,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => true,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && chunk < (1 << 20) => {
                chunk *= 4;
                continue;
            }
            Err(e) => return Err(e),
        };
        let n = (attr.count as usize).min(chunk);
        // SAFETY: the kernel wrote `n` keys of K's size (the map's key size, checked by aya
        // when the map was taken) at the start of the buffer.
        unsafe { keys.set_len(n) };
        for (i, k) in keys.into_iter().enumerate() {
            let vals = (0..cpus)
                .map(|c| {
                    let at = (i * cpus + c) * stride;
                    // SAFETY: `at + size_of::<V>()` is inside `values`; V is Pod, so any bytes
                    // are a valid value, and the read is unaligned-safe.
                    unsafe { std::ptr::read_unaligned(values.as_ptr().add(at) as *const V) }
                })
                .collect();
            out.push((k, vals));
        }
        if done {
            return Ok(out);
        }
        first = false;
    }
}

/// Removes `keys` from `map`; keys already gone are skipped. Returns how many were removed.
pub fn delete_all<K: Pod>(map: BorrowedFd<'_>, keys: &[K]) -> io::Result<usize> {
    let mut removed = 0;
    let mut rest = keys;
    while !rest.is_empty() {
        let mut attr = BatchAttr {
            keys: rest.as_ptr() as u64,
            count: rest.len() as u32,
            map_fd: map.as_raw_fd() as u32,
            ..Default::default()
        };
        let res = bpf(BPF_MAP_DELETE_BATCH, &mut attr);
        // The kernel stops at the first key it cannot remove; `count` says how many it did.
        let n = (attr.count as usize).min(rest.len());
        removed += n;
        match res {
            Ok(()) => break,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                rest = &rest[(n + 1).min(rest.len())..]
            }
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};

    use super::*;

    /// `BPF_MAP_CREATE`'s first fields.
    #[repr(C)]
    struct CreateAttr {
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        map_flags: u32,
        inner_map_fd: u32,
    }

    /// `BPF_MAP_UPDATE_ELEM`'s attribute.
    #[repr(C)]
    struct ElemAttr {
        map_fd: u32,
        _pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }

    fn sys<T>(cmd: libc::c_long, attr: &mut T) -> libc::c_long {
        // SAFETY: a valid attribute of the size passed, pointing at live buffers.
        unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) }
    }

    /// An LRU per-CPU hash map like the repeat map, u32 keys, two u64 per value.
    fn lru_per_cpu_map(max_entries: u32) -> OwnedFd {
        let mut a = CreateAttr {
            map_type: 10, // BPF_MAP_TYPE_LRU_PERCPU_HASH
            key_size: 4,
            value_size: 16,
            max_entries,
            map_flags: 0,
            inner_map_fd: 0,
        };
        let fd = sys(0, &mut a); // BPF_MAP_CREATE
        assert!(
            fd >= 0,
            "creating a BPF map needs root (CAP_BPF): {}",
            io::Error::last_os_error()
        );
        // SAFETY: a new descriptor the kernel just returned, owned by nobody else.
        unsafe { OwnedFd::from_raw_fd(fd as i32) }
    }

    fn insert(map: BorrowedFd<'_>, key: u32, values: &[[u64; 2]]) {
        let mut a = ElemAttr {
            map_fd: map.as_raw_fd() as u32,
            _pad: 0,
            key: &key as *const u32 as u64,
            value: values.as_ptr() as u64,
            flags: 0,
        };
        assert_eq!(sys(2, &mut a), 0, "{}", io::Error::last_os_error()); // BPF_MAP_UPDATE_ELEM
    }

    /// Entries written one by one are read back whole by the batch call, across several
    /// calls, with every CPU's value; removal skips a key that is not there.
    #[test]
    fn reads_and_removes_every_entry_of_a_per_cpu_hash_map() {
        let cpus = aya::util::nr_cpus().expect("possible cpus");
        let n = 3 * CHUNK as u32 + 7;
        // Room to spare: an LRU map may evict before it is full.
        let map = lru_per_cpu_map(4 * n);
        let values =
            |k: u32| -> Vec<[u64; 2]> { (0..cpus).map(|c| [u64::from(k), c as u64]).collect() };
        for k in 0..n {
            insert(map.as_fd(), k, &values(k));
        }
        let mut got: Vec<(u32, Vec<[u64; 2]>)> =
            lookup_all(map.as_fd(), cpus).expect("batch lookup");
        got.sort_by_key(|(k, _)| *k);
        assert_eq!(got.len(), n as usize);
        for (k, vals) in &got {
            assert_eq!(vals, &values(*k), "key {k}");
        }
        // A key missing in the middle is skipped, the others go.
        let mut del: Vec<u32> = (0..10).collect();
        del.insert(5, n + 100);
        assert_eq!(delete_all(map.as_fd(), &del).expect("batch delete"), 10);
        let left: Vec<(u32, Vec<[u64; 2]>)> = lookup_all(map.as_fd(), cpus).expect("batch lookup");
        assert_eq!(left.len(), n as usize - 10);
        assert!(left.iter().all(|(k, _)| *k >= 10));
    }
}
