//! Baselines: what is usual for a principal, a (principal, lineage) pair and an executable,
//! learned from closed windows, with a calibration state, persisted in `store::Store`.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::fingerprint::Fingerprint;
use crate::store::{Store, StoreError};

/// Store kinds (`baselines.kind`) of the three profile families.
pub const KIND_PRINCIPAL: &str = "profile:principal";
pub const KIND_LINEAGE: &str = "profile:lineage";
pub const KIND_EXE: &str = "profile:exe";
pub const KINDS: [&str; 3] = [KIND_PRINCIPAL, KIND_LINEAGE, KIND_EXE];

/// Items remembered per map of one profile; the least recently seen go first.
const MAX_ITEMS: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Calibration {
    /// Too little seen: novelty is not reported.
    Learning,
    /// Enough to compare, not yet trusted: novelty counts at half weight.
    Calibrating,
    /// Trusted: novelty counts at full weight.
    Calibrated,
}

impl Calibration {
    pub fn as_str(self) -> &'static str {
        match self {
            Calibration::Learning => "learning",
            Calibration::Calibrating => "calibrating",
            Calibration::Calibrated => "calibrated",
        }
    }
}

/// When a profile moves from learning to calibrating to calibrated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CalibrationRule {
    pub calibrating_after_windows: u64,
    pub calibrated_after_windows: u64,
    /// Learned windows must also span this long (first to last) to be calibrated.
    pub calibrated_min_span_ns: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    pub first_ns: i64,
    pub last_ns: i64,
    /// Windows it appeared in.
    pub windows: u64,
    pub count: u64,
}

/// Running mean and spread (Welford) of per-window event counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub n: u64,
    pub mean: f64,
    pub m2: f64,
}

impl Rate {
    pub fn add(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    pub fn stddev(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            (self.m2 / (self.n - 1) as f64).sqrt()
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub state: Calibration,
    /// Windows learned.
    pub windows: u64,
    /// Windows not learned because they scored high.
    #[serde(default)]
    pub rejected_windows: u64,
    pub first_ns: i64,
    pub last_ns: i64,
    /// Set by an explicit `sentinel learn` period: the operator vouched for it.
    #[serde(default)]
    pub vouched: bool,
    #[serde(default)]
    pub binaries: BTreeMap<String, Seen>,
    #[serde(default)]
    pub categories: BTreeMap<String, Seen>,
    #[serde(default)]
    pub destinations: BTreeMap<String, Seen>,
    #[serde(default)]
    pub transitions: BTreeMap<String, Seen>,
    #[serde(default)]
    pub writable_execs: BTreeMap<String, Seen>,
    /// Discovery entries run (`lists.discovery`): discovery_burst counts only others.
    #[serde(default)]
    pub discovery: BTreeMap<String, Seen>,
    #[serde(default)]
    pub rate: Rate,
    /// Local hour -> windows with activity in that hour.
    #[serde(default)]
    pub hours: [u64; 24],
}

impl Profile {
    pub fn new(now_ns: i64) -> Profile {
        Profile {
            state: Calibration::Learning,
            windows: 0,
            rejected_windows: 0,
            first_ns: now_ns,
            last_ns: now_ns,
            vouched: false,
            binaries: BTreeMap::new(),
            categories: BTreeMap::new(),
            destinations: BTreeMap::new(),
            transitions: BTreeMap::new(),
            writable_execs: BTreeMap::new(),
            discovery: BTreeMap::new(),
            rate: Rate::default(),
            hours: [0; 24],
        }
    }

    /// Learns one closed window [start, end).
    pub fn learn(&mut self, fp: &Fingerprint, start_ns: i64, end_ns: i64, rule: &CalibrationRule) {
        if self.windows == 0 {
            self.first_ns = start_ns;
        }
        self.windows += 1;
        self.last_ns = self.last_ns.max(end_ns);
        merge(&mut self.binaries, &fp.binaries, end_ns);
        merge(&mut self.categories, &fp.categories, end_ns);
        merge(&mut self.destinations, &fp.destinations, end_ns);
        merge(&mut self.transitions, &fp.transitions, end_ns);
        merge(&mut self.writable_execs, &fp.writable_execs, end_ns);
        merge(&mut self.discovery, &fp.discovery, end_ns);
        self.rate.add(fp.events as f64);
        for h in fp.hours.keys() {
            self.hours[*h as usize % 24] += 1;
        }
        self.recalibrate(rule);
    }

    pub fn recalibrate(&mut self, rule: &CalibrationRule) {
        let span = self.last_ns.saturating_sub(self.first_ns);
        self.state = if self.vouched
            || (self.windows >= rule.calibrated_after_windows
                && span >= rule.calibrated_min_span_ns)
        {
            Calibration::Calibrated
        } else if self.windows >= rule.calibrating_after_windows {
            Calibration::Calibrating
        } else {
            Calibration::Learning
        };
    }

    /// How long the baseline covers, in words ("14 days", "3 hours", "25 minutes").
    pub fn span_words(&self) -> String {
        let s = self.last_ns.saturating_sub(self.first_ns) / 1_000_000_000;
        let (n, unit) = if s >= 86_400 {
            (s / 86_400, "day")
        } else if s >= 3_600 {
            (s / 3_600, "hour")
        } else {
            ((s / 60).max(1), "minute")
        };
        format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
    }

    /// Was the local hour `h` or a neighbour active in the baseline?
    pub fn hour_usual(&self, h: u8, slack: u8) -> bool {
        (0..=2 * slack as i32).any(|d| {
            let x = (h as i32 - slack as i32 + d).rem_euclid(24) as usize;
            self.hours[x] > 0
        })
    }
}

fn merge(into: &mut BTreeMap<String, Seen>, from: &BTreeMap<String, u64>, now_ns: i64) {
    for (k, n) in from {
        let s = into.entry(k.clone()).or_insert_with(|| Seen {
            first_ns: now_ns,
            ..Seen::default()
        });
        s.last_ns = now_ns;
        s.windows += 1;
        s.count += n;
    }
    if into.len() > MAX_ITEMS {
        let mut by_age: Vec<(i64, String)> =
            into.iter().map(|(k, s)| (s.last_ns, k.clone())).collect();
        by_age.sort();
        for (_, k) in by_age.into_iter().take(into.len() - MAX_ITEMS) {
            into.remove(&k);
        }
    }
}

/// All profiles, cached in memory, written through to the store at each window roll-over.
pub struct Baselines {
    store: Store,
    /// By kind, then key: looked up by borrowed key (the detections ask several times per
    /// event; a tuple key made each lookup allocate its key).
    profiles: HashMap<&'static str, HashMap<String, Profile>>,
}

impl Baselines {
    /// Loads every stored profile. Corrupt records are skipped with a warning.
    pub fn load(store: Store) -> Result<Baselines, StoreError> {
        let mut profiles: HashMap<&'static str, HashMap<String, Profile>> = HashMap::new();
        for kind in KINDS {
            for (key, value) in store.list_baselines(kind)? {
                match serde_json::from_value::<Profile>(value) {
                    Ok(p) => {
                        profiles.entry(kind).or_default().insert(key, p);
                    }
                    Err(e) => tracing::warn!("baseline {kind} {key}: unreadable, ignored: {e}"),
                }
            }
        }
        Ok(Baselines { store, profiles })
    }

    pub fn get(&self, kind: &'static str, key: &str) -> Option<&Profile> {
        self.profiles.get(kind)?.get(key)
    }

    /// Every profile of one kind with its key.
    pub fn keyed(&self, kind: &'static str) -> impl Iterator<Item = (&str, &Profile)> {
        self.profiles
            .get(kind)
            .into_iter()
            .flatten()
            .map(|(key, p)| (key.as_str(), p))
    }

    pub fn principal(&self, uid: u32) -> Option<&Profile> {
        self.get(KIND_PRINCIPAL, itoa::Buffer::new().format(uid))
    }

    pub fn exe(&self, exe: &str) -> Option<&Profile> {
        self.get(KIND_EXE, exe)
    }

    pub fn len(&self) -> usize {
        self.profiles.values().map(HashMap::len).sum()
    }

    fn all(&self) -> impl Iterator<Item = (&'static str, &String, &Profile)> {
        self.profiles
            .iter()
            .flat_map(|(kind, of)| of.iter().map(move |(key, p)| (*kind, key, p)))
    }

    /// Profiles per family (the kind without its "profile:" prefix) and calibration state
    /// (`[learning, calibrating, calibrated]`), for the agent's health.
    pub fn state_counts(&self) -> std::collections::BTreeMap<&'static str, [u64; 3]> {
        let mut out: std::collections::BTreeMap<&'static str, [u64; 3]> = KINDS
            .iter()
            .map(|k| (k.trim_start_matches("profile:"), [0; 3]))
            .collect();
        for (kind, _, p) in self.all() {
            let slot = match p.state {
                Calibration::Learning => 0,
                Calibration::Calibrating => 1,
                Calibration::Calibrated => 2,
            };
            out.entry(kind.trim_start_matches("profile:")).or_default()[slot] += 1;
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn into_store(self) -> Store {
        self.store
    }

    /// Learns fingerprints into profiles and writes the changed ones in one transaction.
    pub fn learn(
        &mut self,
        items: &[(&'static str, String, &Fingerprint)],
        start_ns: i64,
        end_ns: i64,
        rule: &CalibrationRule,
    ) -> Result<(), StoreError> {
        let mut changed = Vec::with_capacity(items.len());
        for (kind, key, fp) in items {
            let p = self
                .profiles
                .entry(kind)
                .or_default()
                .entry(key.clone())
                .or_insert_with(|| Profile::new(start_ns));
            p.learn(fp, start_ns, end_ns, rule);
            changed.push((*kind, key.clone(), serde_json::to_value(&*p)?));
        }
        self.store.put_baselines(&changed)
    }

    /// Counts a rejected (high-scoring) window against a principal's profile.
    pub fn reject(&mut self, uid: u32, now_ns: i64) -> Result<(), StoreError> {
        let key = uid.to_string();
        let p = self
            .profiles
            .entry(KIND_PRINCIPAL)
            .or_default()
            .entry(key.clone())
            .or_insert_with(|| Profile::new(now_ns));
        p.rejected_windows += 1;
        let v = serde_json::to_value(&*p)?;
        self.store.put_baselines(&[(KIND_PRINCIPAL, key, v)])
    }

    /// Marks every profile as vouched for by an explicit learning period and saves them.
    pub fn vouch_all(&mut self, rule: &CalibrationRule) -> Result<usize, StoreError> {
        let mut changed = Vec::new();
        for (kind, of) in self.profiles.iter_mut() {
            for (key, p) in of.iter_mut() {
                if p.windows > 0 {
                    p.vouched = true;
                    p.recalibrate(rule);
                    changed.push((*kind, key.clone(), serde_json::to_value(&*p)?));
                }
            }
        }
        self.store.put_baselines(&changed)?;
        Ok(changed.len())
    }
}

#[cfg(test)]
mod tests;
