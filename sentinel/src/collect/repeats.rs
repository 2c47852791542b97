//! The user-space half of in-kernel repeat counting (sentinel-ebpf/src/repeats.rs): keeps the
//! open each kernel entry started from, turns the kernel's counts into events that carry
//! `repeats` (a copy of that first open), and removes entries that went quiet so the map does
//! not fill with processes that are gone.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use aya::maps::{MapData, PerCpuHashMap};
use sentinel_common::{REPEAT_PATH, RepeatKey, RepeatVal};

use crate::event::{Event, Payload, RawStr};

/// An entry whose count has not moved for this long is removed; the next identical open is
/// then sent in full again.
const IDLE: Duration = Duration::from_secs(10);

/// What identifies a first open in user space (the kernel key without the exec id, which the
/// record does not carry: a later program's first open replaces an earlier one's).
type HeadKey = (u32, u32, i32, Vec<u8>);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RepeatStats {
    /// Opens counted in the kernel and reported as `repeats`.
    pub counted: u64,
    /// Kernel entries pushed out of the full map before their count was reported (their
    /// last second of repeats is unknown).
    pub evicted: u64,
}

pub struct Reporter {
    map: PerCpuHashMap<MapData, RepeatKey, RepeatVal>,
    heads: HashMap<HeadKey, Event>,
    /// Per kernel entry: the count already reported and when it last moved.
    reported: HashMap<RepeatKey, (u64, Instant)>,
    pub stats: RepeatStats,
}

fn head_key_of_event(ev: &Event) -> Option<HeadKey> {
    let Payload::Open { path, flags, .. } = &ev.payload else {
        return None;
    };
    let ret = if ev.ret >= 0 { 0 } else { ev.ret as i32 };
    Some((ev.pid, *flags as u32, ret, path.as_bytes().to_vec()))
}

fn path_of(k: &RepeatKey) -> &[u8] {
    let end = k.path.iter().position(|b| *b == 0).unwrap_or(REPEAT_PATH);
    &k.path[..end]
}

fn head_key(k: &RepeatKey) -> HeadKey {
    (k.tgid, k.flags, k.ret, path_of(k).to_vec())
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
            heads: HashMap::new(),
            reported: HashMap::new(),
            stats: RepeatStats::default(),
        }
    }

    /// Keeps a first open (flagged by the kernel) as the template for its repeats.
    pub fn remember(&mut self, ev: &Event) {
        if let Some(k) = head_key_of_event(ev) {
            self.heads.insert(k, ev.clone());
        }
    }

    /// Reads every kernel entry: the repeats counted since the last call become events
    /// (stamped `now_ns`), and quiet entries are removed. `last` reports without removing.
    pub fn flush(&mut self, now_ns: i64, last: bool) -> Vec<Event> {
        let now = Instant::now();
        let mut out = Vec::new();
        let mut quiet = Vec::new();
        let mut present = HashSet::new();
        for item in self.map.iter() {
            let Ok((k, values)) = item else {
                // The entry went away between two reads (removed or evicted): next time.
                continue;
            };
            present.insert(k);
            let count: u64 = values.iter().map(|v| v.count).sum();
            let (done, moved) = self.reported.entry(k).or_insert((0, now));
            if count > *done {
                let mut ev = self
                    .heads
                    .get(&head_key(&k))
                    .cloned()
                    .unwrap_or_else(|| from_key(&k));
                ev.time_ns = now_ns;
                ev.repeats = count - *done;
                ev.repeat_head = false;
                self.stats.counted += ev.repeats;
                out.push(ev);
                *done = count;
                *moved = now;
            } else if !last && now.duration_since(*moved) >= IDLE {
                quiet.push(k);
            }
        }
        for k in &quiet {
            // An open that lands between the read above and this removal is not counted:
            // the entry had been quiet for IDLE, so that is a narrow window.
            let _ = self.map.remove(k);
            self.reported.remove(k);
            self.heads.remove(&head_key(k));
        }
        let gone: Vec<RepeatKey> = self
            .reported
            .keys()
            .filter(|k| !present.contains(*k))
            .copied()
            .collect();
        for k in gone {
            self.stats.evicted += 1;
            self.reported.remove(&k);
            self.heads.remove(&head_key(&k));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
