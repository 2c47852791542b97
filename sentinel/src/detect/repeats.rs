//! Repeated identical opens: the same process image opening the same absolute path with the
//! same flags and outcome is analysed once a second, not at every open. A repeat cannot raise
//! a detection the first open did not (detections fire once per window) and would only add
//! weight to a fingerprint that already has the fact; analysing every one made an open storm
//! outrun the analysis stage. Anything that changes who the process is (exec, a change of
//! ids or capabilities, exit, a new process on the pid) forgets its opens.

use std::collections::HashMap;
use std::hash::BuildHasher as _;

use crate::event::{Event, Payload};

/// How long one analysed open stands for its repeats.
const WINDOW_NS: i64 = 1_000_000_000;
/// Distinct opens remembered per process, and processes remembered, before starting over.
const PER_PROCESS: usize = 256;
const PROCESSES: usize = 16_384;

/// The maps below are keyed by pids and by a keyed hash already: foldhash mixes those fast,
/// where SipHash over the tuple again cost as much as hashing the path.
type Fast = foldhash::fast::RandomState;

/// (path hash, flags, succeeded) -> time it was last analysed.
type Opens = HashMap<(u64, u64, bool), i64, Fast>;

#[derive(Default)]
pub(super) struct Repeats {
    by_pid: HashMap<u32, Opens, Fast>,
    /// Keyed per run, so that nobody can craft a path that collides with another.
    hasher: std::collections::hash_map::RandomState,
    pub skipped: u64,
}

impl Repeats {
    /// True when `ev` repeats an open of this process analysed less than a second ago.
    pub fn is_repeat(&mut self, ev: &Event) -> bool {
        match &ev.payload {
            Payload::Open { path, flags, .. } => {
                let bytes = path.as_bytes();
                // A relative path names another file after a chdir.
                if !bytes.starts_with(b"/") {
                    return false;
                }
                let key = (self.hasher.hash_one(bytes), *flags, ev.ok());
                if self.by_pid.len() >= PROCESSES && !self.by_pid.contains_key(&ev.pid) {
                    self.by_pid.clear();
                }
                let opens = self.by_pid.entry(ev.pid).or_default();
                if let Some(t) = opens.get(&key)
                    && (*t..*t + WINDOW_NS).contains(&ev.time_ns)
                {
                    self.skipped += 1;
                    return true;
                }
                if opens.len() >= PER_PROCESS {
                    opens.clear();
                }
                opens.insert(key, ev.time_ns);
                false
            }
            Payload::Fork { child_pid, .. } => {
                self.by_pid.remove(child_pid);
                false
            }
            Payload::Exec { .. }
            | Payload::Exit { .. }
            | Payload::SetUid { .. }
            | Payload::SetGid { .. }
            | Payload::Capset { .. }
            | Payload::Setns { .. }
            | Payload::Unshare { .. } => {
                self.by_pid.remove(&ev.pid);
                false
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> Vec<Event> {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/detect/exec_tmp.jsonl"
        ))
        .expect("fixture");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("fixture parses"))
            .collect()
    }

    fn open_at(t: i64) -> Event {
        let mut e = events()
            .into_iter()
            .find(|e| matches!(e.payload, Payload::Open { .. }))
            .expect("an open in the fixture");
        e.time_ns = t;
        e
    }

    #[test]
    fn an_open_stands_for_its_repeats_for_one_second() {
        let mut r = Repeats::default();
        let s = 1_000_000_000;
        assert!(!r.is_repeat(&open_at(10 * s)));
        assert!(r.is_repeat(&open_at(10 * s + 1)));
        assert!(r.is_repeat(&open_at(11 * s - 1)));
        assert!(
            !r.is_repeat(&open_at(11 * s)),
            "a second later it is analysed again"
        );
        assert!(r.is_repeat(&open_at(11 * s + 5)));
        assert_eq!(r.skipped, 3);
        // Another flag, another outcome, another file: not repeats.
        let mut other = open_at(11 * s + 6);
        if let Payload::Open { flags, .. } = &mut other.payload {
            *flags |= 1;
        }
        assert!(!r.is_repeat(&other));
        let mut failed = open_at(11 * s + 7);
        failed.ret = -13;
        assert!(!r.is_repeat(&failed));
    }

    #[test]
    fn a_new_identity_forgets_the_opens() {
        let mut r = Repeats::default();
        let s = 1_000_000_000;
        let open = open_at(10 * s);
        assert!(!r.is_repeat(&open));
        // The same process execs (fixture: any exec of that pid).
        let mut exec = events()
            .into_iter()
            .find(|e| matches!(e.payload, Payload::Exec { .. }))
            .expect("an exec in the fixture");
        exec.pid = open.pid;
        assert!(!r.is_repeat(&exec));
        assert!(
            !r.is_repeat(&open_at(10 * s + 1)),
            "the new program's first open"
        );
        assert!(r.is_repeat(&open_at(10 * s + 2)));
    }
}
