//! The user-space half of in-kernel repeat counting (sentinel-ebpf/src/repeats.rs): keeps the
//! open each kernel entry started from, turns the kernel's counts into events that carry
//! `repeats` (a copy of that first open), and removes the entries of processes that exited and
//! entries that went quiet, so the map does not fill with processes that are gone.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher as _;
use std::os::fd::AsFd as _;
use std::time::{Duration, Instant};

use aya::maps::{IterableMap as _, MapData, PerCpuHashMap};
use sentinel_common::{REPEAT_PATH, RepeatKey, RepeatVal};

use crate::event::{Event, Payload, RawStr};

/// An entry whose count has not moved for this long is removed; the next identical open is
/// then sent in full again.
const IDLE: Duration = Duration::from_secs(10);

/// What identifies a first open in user space (the kernel key without the exec id, which the
/// record does not carry: a later program's first open replaces an earlier one's): process,
/// flags, result and the path's `PathHash`.
type HeadKey = (u32, u32, i32, u64);

/// What identifies a kernel entry in user space: the kernel key with its path as a
/// `PathHash`.
type EntryKey = (u32, u32, u32, i32, u64, u64);

/// Keyed hashes of paths. The maps hold thousands of entries in an exec storm; keyed by the
/// kernel's 128-byte padded path they cost a hash of all of it on every lookup, and cache
/// misses on every probe. The hash is keyed with a random key per agent (SipHash), so nobody
/// can make two paths collide on purpose; a kept first open is also checked against the
/// path before it is used.
struct PathHash(std::hash::RandomState);

impl PathHash {
    fn of(&self, path: &[u8]) -> u64 {
        self.0.hash_one(path)
    }
}

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
#[derive(Clone, Copy)]
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
    /// Boxed: the map moves its entries as it grows, and churns thousands a second.
    ev: Box<Event>,
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
    reported: HashMap<EntryKey, Reported>,
    hash: PathHash,
    /// Processes that exited since the last read: their entries are read once more, then
    /// removed (left to go quiet, an exec storm's short-lived processes filled the map, and
    /// every read walked all of it).
    exited: HashSet<u32>,
    pub stats: RepeatStats,
}

/// The head key of an open event; `None` for other events and paths too long to be counted.
fn head_key_of_event(ev: &Event, hash: &PathHash) -> Option<HeadKey> {
    let Payload::Open { path, flags, .. } = &ev.payload else {
        return None;
    };
    let path = path.as_bytes();
    if path.len() > REPEAT_PATH {
        return None;
    }
    let ret = if ev.ret >= 0 { 0 } else { ev.ret as i32 };
    Some((ev.pid, *flags as u32, ret, hash.of(path)))
}

fn path_of(k: &RepeatKey) -> &[u8] {
    let end = k.path.iter().position(|b| *b == 0).unwrap_or(REPEAT_PATH);
    &k.path[..end]
}

fn entry_key(k: &RepeatKey, hash: &PathHash) -> EntryKey {
    (k.tgid, k.nr, k.flags, k.ret, k.exec_id, hash.of(path_of(k)))
}

fn head_key(e: &EntryKey) -> HeadKey {
    (e.0, e.2, e.3, e.5)
}

/// Is `head` the first open of an entry whose path is `path` (not another path of the same
/// hash)?
fn same_path(head: &Head, path: &[u8]) -> bool {
    matches!(&head.ev.payload, Payload::Open { path: p, .. } if p.as_bytes() == path)
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
        syscall: Some(crate::syscalls::name(k.nr).into()),
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
            hash: PathHash(std::hash::RandomState::new()),
            exited: HashSet::new(),
            stats: RepeatStats::default(),
        }
    }

    /// Keeps a first open (flagged by the kernel) as the template for its repeats.
    pub fn remember(&mut self, ev: &Event) {
        if let Some(k) = head_key_of_event(ev, &self.hash) {
            self.heads.insert(
                k,
                Head {
                    ev: Box::new(ev.clone()),
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
            let ek = entry_key(&k, &self.hash);
            let hk = head_key(&ek);
            let head = self
                .heads
                .get_mut(&hk)
                .filter(|h| same_path(h, path_of(&k)));
            let template = head.map(|h| {
                h.seen = read;
                &h.ev
            });
            let (new, replaced) = advance(self.reported.get(&ek), count, first_ns);
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
                .entry(ek)
                .and_modify(|r| {
                    if replaced {
                        *r = fresh;
                    }
                })
                .or_insert(fresh);
            r.seen = read;
            if new > 0 {
                let mut ev = template.map_or_else(|| from_key(&k), |t| (**t).clone());
                ev.time_ns = now_ns;
                ev.repeats = new;
                ev.repeat_head = false;
                self.stats.counted += new;
                out.push(ev);
                r.done = count;
                r.moved = now;
            } else if !last && now.duration_since(r.moved) >= IDLE {
                remove.push((k, ek));
                continue;
            }
            if !last && self.exited.contains(&k.tgid) {
                // A new process that took the pid within the second loses only its entries'
                // counting: its next identical open is sent in full again.
                self.stats.finished += 1;
                remove.push((k, ek));
            }
        }
        self.exited.clear();
        // An open that lands between the read above and this removal is not counted: the
        // entry had been quiet for IDLE, or its process had exited, so that is a narrow
        // window.
        let keys: Vec<RepeatKey> = remove.iter().map(|(k, _)| *k).collect();
        self.remove_from_map(&keys);
        for (_, ek) in &remove {
            self.reported.remove(ek);
            self.heads.remove(&head_key(ek));
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
        let hash = PathHash(std::hash::RandomState::new());
        assert_eq!(
            head_key_of_event(&ev, &hash),
            Some(head_key(&entry_key(&k, &hash)))
        );
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
        assert_eq!(
            head_key_of_event(&ok, &hash),
            Some(head_key(&entry_key(&k, &hash)))
        );
        // A path too long to be counted has no key; another path has another.
        let mut long = ev.clone();
        long.payload = Payload::Open {
            dfd: libc::AT_FDCWD,
            path: RawStr(vec![b'a'; REPEAT_PATH + 1]),
            flags: 0,
            mode: 0,
        };
        assert_eq!(head_key_of_event(&long, &hash), None);
        k.path[1] = b'x';
        assert_ne!(
            head_key_of_event(&ok, &hash),
            Some(head_key(&entry_key(&k, &hash)))
        );
    }
}
