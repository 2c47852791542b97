//! Fingerprints: what one principal (and each of its process lineages and executables) did
//! in one rolling window, as counts and sets. A closed window is either learned into the
//! baselines or, when it scored high, thrown away (poisoning protection).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// Distinct keys kept per map in one window; more is counted but not itemised.
const MAX_KEYS: usize = 1024;

/// Counts and sets for one subject in one window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub events: u64,
    /// Executable path -> executions.
    pub binaries: BTreeMap<String, u64>,
    /// "read:<category>" / "write:<category>" -> opens.
    pub categories: BTreeMap<String, u64>,
    /// "addr:port" -> connects.
    pub destinations: BTreeMap<String, u64>,
    /// "<from uid>-><to uid> <program>" -> count.
    pub transitions: BTreeMap<String, u64>,
    /// Executables run from writable places (or memfd) -> count.
    pub writable_execs: BTreeMap<String, u64>,
    /// Discovery entries (`lists.discovery`, e.g. "ps aux") -> runs.
    #[serde(default)]
    pub discovery: BTreeMap<String, u64>,
    /// Local hours (0-23) with activity -> events.
    pub hours: BTreeMap<u8, u64>,
}

fn bump(m: &mut BTreeMap<String, u64>, k: &str) {
    if let Some(v) = m.get_mut(k) {
        *v += 1;
    } else if m.len() < MAX_KEYS {
        m.insert(k.to_string(), 1);
    }
}

/// One observation, applied to every fingerprint that covers it.
#[derive(Clone, Copy, Debug)]
pub enum Fact<'a> {
    Event { hour: u8 },
    Binary(&'a str),
    Category { write: bool, name: &'a str },
    Destination(&'a str),
    Transition(&'a str),
    WritableExec(&'a str),
    Discovery(&'a str),
}

impl Fingerprint {
    pub fn add(&mut self, fact: Fact<'_>) {
        match fact {
            Fact::Event { hour } => {
                self.events += 1;
                *self.hours.entry(hour % 24).or_default() += 1;
            }
            Fact::Binary(b) => bump(&mut self.binaries, b),
            Fact::Category { write, name } => {
                let k = format!("{}:{name}", if write { "write" } else { "read" });
                bump(&mut self.categories, &k)
            }
            Fact::Destination(d) => bump(&mut self.destinations, d),
            Fact::Transition(t) => bump(&mut self.transitions, t),
            Fact::WritableExec(e) => bump(&mut self.writable_execs, e),
            Fact::Discovery(d) => bump(&mut self.discovery, d),
        }
    }
}

/// A principal's window: its own fingerprint, per lineage and per executable, and the
/// highest anomaly score it produced (decides whether the window may be learned).
#[derive(Clone, Debug, Default)]
pub struct PrincipalWindow {
    pub all: Fingerprint,
    pub lineages: HashMap<String, Fingerprint>,
    pub exes: HashMap<String, Fingerprint>,
    pub max_score: u8,
    /// The first few events of the window: evidence for findings about the window as a
    /// whole (an event-rate spike).
    pub sample: Vec<crate::event::Event>,
}

/// Events kept in `PrincipalWindow::sample`.
pub const SAMPLE: usize = 5;

/// Caps how many lineages and executables one principal window itemises.
const MAX_SUBJECTS: usize = 512;

impl PrincipalWindow {
    pub fn add(&mut self, lineage: &str, exe: &str, fact: Fact<'_>) {
        self.all.add(fact);
        let n = self.lineages.len();
        if let Some(f) = self.lineages.get_mut(lineage) {
            f.add(fact);
        } else if n < MAX_SUBJECTS {
            self.lineages
                .entry(lineage.to_string())
                .or_default()
                .add(fact);
        }
        if exe.is_empty() {
            return;
        }
        let n = self.exes.len();
        if let Some(f) = self.exes.get_mut(exe) {
            f.add(fact);
        } else if n < MAX_SUBJECTS {
            self.exes.entry(exe.to_string()).or_default().add(fact);
        }
    }
}

/// The current window of every principal.
#[derive(Clone, Debug)]
pub struct Window {
    pub start_ns: i64,
    pub len_ns: i64,
    pub principals: HashMap<u32, PrincipalWindow>,
}

impl Window {
    /// The window of length `len_ns` that contains `t_ns` (aligned to multiples of the length).
    pub fn containing(t_ns: i64, len_ns: i64) -> Window {
        let len_ns = len_ns.max(1);
        Window {
            start_ns: t_ns.div_euclid(len_ns) * len_ns,
            len_ns,
            principals: HashMap::new(),
        }
    }

    pub fn end_ns(&self) -> i64 {
        self.start_ns.saturating_add(self.len_ns)
    }

    pub fn contains(&self, t_ns: i64) -> bool {
        t_ns >= self.start_ns && t_ns < self.end_ns()
    }

    pub fn principal(&mut self, uid: u32) -> &mut PrincipalWindow {
        self.principals.entry(uid).or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align_and_contain() {
        let w = Window::containing(1_000_000_123, 300_000_000_000);
        assert_eq!(w.start_ns, 0);
        assert!(w.contains(299_999_999_999) && !w.contains(300_000_000_000));
        let w = Window::containing(300_000_000_000, 300_000_000_000);
        assert_eq!(w.start_ns, 300_000_000_000);
    }

    #[test]
    fn facts_land_in_principal_lineage_and_exe() {
        let mut p = PrincipalWindow::default();
        p.add("sshd>bash", "/bin/bash", Fact::Event { hour: 25 });
        p.add("sshd>bash", "/bin/bash", Fact::Binary("/bin/bash"));
        p.add(
            "sshd>bash>cat",
            "/bin/cat",
            Fact::Category {
                write: false,
                name: "logs",
            },
        );
        assert_eq!(p.all.events, 1);
        assert_eq!(p.all.hours.get(&1), Some(&1));
        assert_eq!(p.all.categories.get("read:logs"), Some(&1));
        assert_eq!(p.lineages["sshd>bash"].binaries["/bin/bash"], 1);
        assert_eq!(p.exes["/bin/cat"].categories["read:logs"], 1);
        assert!(!p.exes["/bin/bash"].categories.contains_key("read:logs"));
    }
}
