//! The user-space half of in-kernel repeat counting (sentinel-ebpf/src/repeats.rs): keeps the
//! open each kernel entry started from, turns the kernel's counts into events that carry
//! `repeats` (a copy of that first open), and removes the entries of processes that exited and
//! entries that went quiet, so the map does not fill with processes that are gone.

use std::collections::{HashMap, HashSet};
use std::os::fd::AsFd as _;
use std::time::{Duration, Instant};

use aya::maps::{IterableMap as _, MapData, PerCpuHashMap};
use sentinel_common::{REPEAT_PATH, RepeatKey, RepeatVal};

use crate::event::{Event, Payload, RawStr};

/// An entry whose count has not moved for this long is removed; the next identical open is
/// then sent in full again.
const IDLE: Duration = Duration::from_secs(10);

/// What identifies a first open in user space (the kernel key without the exec id, which the
/// record does not carry: a later program's first open replaces an earlier one's). The path
/// is NUL padded as in the kernel key (a counted path is shorter than `REPEAT_PATH`), so a
/// key is made without allocating.
type HeadKey = (u32, u32, i32, [u8; REPEAT_PATH]);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RepeatStats {
    /// Opens counted in the kernel and reported as `repeats`.
    pub counted: u64,
    /// Kernel entries pushed out of the full map before their count was reported (their
    /// last second of repeats is unknown).
    pub evicted: u64,
    /// Kernel entries read for the last time and removed because their process exited.
    pub finished: u64,
}

/// What was reported of one kernel entry.
struct Reported {
    /// Its count when last read.
    done: u64,
    /// When its first open was (identifies this life of the entry: an evicted key that comes
    /// back starts counting from zero again, with a later first open).
    first_ns: u64,
    /// When its count last moved.
    moved: Instant,
    /// The last read that found it in the map.
    seen: u64,
}

/// A kept first open, and the last read that found its entry in the map.
struct Head {
    ev: Event,
    seen: u64,
}

/// The opens to report for an entry read as `count` (first open at `first_ns`), given what was
/// reported of it before; true when the earlier entry had been replaced meanwhile.
fn advance(prev: Option<&Reported>, count: u64, first_ns: u64) -> (u64, bool) {
    match prev {
        Some(p) if p.first_ns == first_ns => (count.saturating_sub(p.done), false),
        Some(_) => (count, true),
        None => (count, false),
    }
}

pub struct Reporter {
    map: PerCpuHashMap<MapData, RepeatKey, RepeatVal>,
    /// Possible CPUs (values per entry), and whether the batch calls work here.
    cpus: usize,
    batch: bool,
    /// Counts the reads of the map (`seen` marks).
    reads: u64,
    heads: HashMap<HeadKey, Head>,
    /// Per kernel entry: what was already reported of it.
    reported: HashMap<RepeatKey, Reported>,
    /// Processes that exited since the last read: their entries are read once more, then
    /// removed (left to go quiet, an exec storm's short-lived processes filled the map, and
    /// every read walked all of it).
    exited: HashSet<u32>,
    pub stats: RepeatStats,
}

fn head_key_of_event(ev: &Event) -> Option<HeadKey> {
    let Payload::Open { path, flags, .. } = &ev.payload else {
        return None;
    };
    let ret = if ev.ret >= 0 { 0 } else { ev.ret as i32 };
    Some((ev.pid, *flags as u32, ret, padded(path.as_bytes())?))
}

/// A path NUL padded to the kernel key's size; `None` when too long to be counted.
fn padded(path: &[u8]) -> Option<[u8; REPEAT_PATH]> {
    let mut out = [0; REPEAT_PATH];
    out.get_mut(..path.len())?.copy_from_slice(path);
    Some(out)
}

fn path_of(k: &RepeatKey) -> &[u8] {
    let end = k.path.iter().position(|b| *b == 0).unwrap_or(REPEAT_PATH);
    &k.path[..end]
}

fn head_key(k: &RepeatKey) -> HeadKey {
    let path = padded(path_of(k)).unwrap_or([0; REPEAT_PATH]);
    (k.tgid, k.flags, k.ret, path)
}

/// An open event rebuilt from the kernel key alone, when its first open was lost (ring buffer
/// full, counted as lost) or came before the agent.
fn from_key(k: &RepeatKey) -> Event {
    Event {
        id: 0,
        time_ns: 0,
        pid: k.tgid,
        tid: k.tgid,
        ppid: 0,
        uid: 0,
        gid: 0,
        euid: 0,
        auid: None,
        session: None,
        cgroup_id: 0,
        comm: RawStr::default(),
        syscall: Some(crate::syscalls::name(k.nr).to_string()),
        ret: k.ret.into(),
        errno: (k.ret < 0).then(|| crate::syscalls::errno_name(-i64::from(k.ret))),
        truncated: false,
        repeats: 0,
        repeat_head: false,
        payload: Payload::Open {
            dfd: libc::AT_FDCWD,
            path: RawStr(path_of(k).to_vec()),
            flags: k.flags.into(),
            mode: 0,
        },
    }
}

impl Reporter {
    pub fn new(map: PerCpuHashMap<MapData, RepeatKey, RepeatVal>) -> Reporter {
        Reporter {
            map,
            cpus: aya::util::nr_cpus().unwrap_or(1),
            batch: true,
            reads: 0,
            heads: HashMap::new(),
            reported: HashMap::new(),
            exited: HashSet::new(),
            stats: RepeatStats::default(),
        }
    }

    /// Keeps a first open (flagged by the kernel) as the template for its repeats.
    pub fn remember(&mut self, ev: &Event) {
        if let Some(k) = head_key_of_event(ev) {
            self.heads.insert(
                k,
                Head {
                    ev: ev.clone(),
                    seen: 0,
                },
            );
        }
    }

    /// Notes the exit of process `tgid` (its last open is already counted by then).
    pub fn exited(&mut self, tgid: u32) {
        self.exited.insert(tgid);
    }

    /// Every kernel entry with its per-CPU values: in a few batch calls where the kernel
    /// has them, else (the first failure says why, once) one entry at a time.
    fn read_map(&mut self) -> Vec<(RepeatKey, Vec<RepeatVal>)> {
        if self.batch {
            match super::batch::lookup_all(self.map.map().fd().as_fd(), self.cpus) {
                Ok(all) => return all,
                Err(e) => {
                    tracing::info!(target: "sentinel::collect", "repeat map read one entry at a time (batch lookup: {e})");
                    self.batch = false;
                }
            }
        }
        self.map
            .iter()
            // An entry that went away between two reads (removed or evicted): next time.
            .filter_map(Result::ok)
            .map(|(k, v)| (k, v.iter().copied().collect()))
            .collect()
    }

    /// Removes entries from the kernel map (entries already gone are skipped).
    fn remove_from_map(&mut self, keys: &[RepeatKey]) {
        if self.batch && super::batch::delete_all(self.map.map().fd().as_fd(), keys).is_ok() {
            return;
        }
        for k in keys {
            let _ = self.map.remove(k);
        }
    }

    /// Reads every kernel entry: the repeats counted since the last call become events
    /// (stamped `now_ns`); the entries of exited processes and quiet ones are removed, and so
    /// are the kept first opens of entries no longer in the map. `last` reports without
    /// removing.
    pub fn flush(&mut self, now_ns: i64, last: bool) -> Vec<Event> {
        let now = Instant::now();
        self.reads += 1;
        let read = self.reads;
        let mut out = Vec::new();
        let mut remove = Vec::new();
        for (k, values) in self.read_map() {
            let count: u64 = values.iter().map(|v| v.count).sum();
            // Only the CPU that inserted the entry set its first open.
            let first_ns = values.iter().map(|v| v.first_ns).max().unwrap_or(0);
            let hk = head_key(&k);
            if let Some(h) = self.heads.get_mut(&hk) {
                h.seen = read;
            }
            let (new, replaced) = advance(self.reported.get(&k), count, first_ns);
            if replaced {
                self.stats.evicted += 1;
            }
            let fresh = Reported {
                done: 0,
                first_ns,
                moved: now,
                seen: read,
            };
            let r = self
                .reported
                .entry(k)
                .and_modify(|r| {
                    if replaced {
                        *r = Reported { ..fresh };
                    }
                })
                .or_insert(Reported { ..fresh });
            r.seen = read;
            if new > 0 {
                let mut ev = self
                    .heads
                    .get(&hk)
                    .map(|h| h.ev.clone())
                    .unwrap_or_else(|| from_key(&k));
                ev.time_ns = now_ns;
                ev.repeats = new;
                ev.repeat_head = false;
                self.stats.counted += new;
                out.push(ev);
                r.done = count;
                r.moved = now;
            } else if !last && now.duration_since(r.moved) >= IDLE {
                remove.push(k);
                continue;
            }
            if !last && self.exited.contains(&k.tgid) {
                // A new process that took the pid within the second loses only its entries'
                // counting: its next identical open is sent in full again.
                self.stats.finished += 1;
                remove.push(k);
            }
        }
        self.exited.clear();
        // An open that lands between the read above and this removal is not counted: the
        // entry had been quiet for IDLE, or its process had exited, so that is a narrow
        // window.
        self.remove_from_map(&remove);
        for k in &remove {
            self.reported.remove(k);
            self.heads.remove(&head_key(k));
        }
        // Entries reported before and not found now were pushed out of the full map.
        let mut gone = Vec::new();
        self.reported.retain(|k, r| {
            let keep = r.seen == read;
            if !keep {
                gone.push(head_key(k));
            }
            keep
        });
        self.stats.evicted += gone.len() as u64;
        for hk in &gone {
            self.heads.remove(hk);
        }
        // A first open whose entry was evicted before it was ever read would stay forever.
        // The kernel inserts the entry before it sends the open, so a kept open without an
        // entry has lost it.
        if !last {
            self.heads.retain(|_, h| h.seen == read);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_reported_once_and_a_replaced_entry_starts_over() {
        let seen = |done| Reported {
            done,
            first_ns: 100,
            moved: Instant::now(),
            seen: 0,
        };
        assert_eq!(advance(None, 7, 100), (7, false));
        assert_eq!(advance(Some(&seen(7)), 7, 100), (0, false));
        assert_eq!(advance(Some(&seen(7)), 12, 100), (5, false));
        // Evicted and inserted again between two reads: a smaller count, a later first open.
        assert_eq!(advance(Some(&seen(5000)), 3, 900), (3, true));
    }

    #[test]
    fn keys_and_events_name_the_same_open() {
        let mut k = RepeatKey {
            tgid: 42,
            nr: libc::SYS_openat as u32,
            flags: 0o2000000,
            ret: -13,
            exec_id: 7,
            path: [0; REPEAT_PATH],
        };
        k.path[..8].copy_from_slice(b"/etc/fo\xff");
        let ev = from_key(&k);
        assert_eq!(head_key_of_event(&ev), Some(head_key(&k)));
        assert_eq!(ev.syscall.as_deref(), Some("openat"));
        assert_eq!(ev.errno.as_deref(), Some("EACCES"));
        match &ev.payload {
            Payload::Open { path, .. } => assert_eq!(path.as_bytes(), b"/etc/fo\xff"),
            other => panic!("{other:?}"),
        }
        // A successful open's fd is not part of what makes two opens the same.
        let mut ok = ev.clone();
        ok.ret = 5;
        k.ret = 0;
        assert_eq!(head_key_of_event(&ok), Some(head_key(&k)));
    }
}
