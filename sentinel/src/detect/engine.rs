//! The detection engine: feeds each event to the process table and the current window,
//! runs the detections, turns their factors into scored anomalies, and at each window
//! roll-over learns the window into the baselines unless it scored high.

use std::collections::{HashMap, HashSet, VecDeque};

use super::config::DetectConfig;
use super::model::{Anomaly, ChainLink, Evidence, Factor, Principal};
use crate::config::Config;
use crate::event::{Event, Payload};
use crate::proc::users::UserDb;
use crate::proc::{ProcKey, Process, ProcessTable};
use crate::profile::baseline::{KIND_EXE, KIND_LINEAGE, KIND_PRINCIPAL};
use crate::profile::{Baselines, Calibration, Categories, Fact, Fingerprint, Profile, Window};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Categories(#[from] crate::profile::categories::CategoriesError),
}

/// How the engine meets the world.
pub struct EngineOptions {
    /// Live system: seed the process table from /proc and read /proc for late details
    /// (stdio sockets, exe links). Off for recorded streams.
    pub live: bool,
    /// The user database (default: /etc/passwd).
    pub users: Option<UserDb>,
    /// Explicit learning period: every window is learned, whatever it scored.
    pub learn_all: bool,
}

/// Counters for logs and the `learn` summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub events: u64,
    pub anomalies: u64,
    pub windows_learned: u64,
    pub windows_rejected: u64,
}

/// A detection's output before it becomes part of an anomaly.
pub(super) struct Hit {
    pub factor: Factor,
    /// Events proving it besides the current one (multi-event detections).
    pub extra: Vec<Event>,
}

pub(super) struct MassRead {
    pub paths: HashSet<String>,
    pub owners: HashSet<u32>,
    pub evidence: Vec<Event>,
}

pub struct Engine {
    pub(super) cfg: DetectConfig,
    /// Shared so detections can hold the lists while mutating engine state.
    pub(super) cats: std::sync::Arc<Categories>,
    pub(super) users: UserDb,
    pub(super) procs: ProcessTable,
    pub(super) baselines: Baselines,
    pub(super) window: Option<Window>,
    pub(super) host: String,
    pub(super) live: bool,
    pub(super) learn_all: bool,
    pub(super) own_pid: u32,
    counter: u64,
    pub(super) stats: Stats,
    /// (principal, detection, key) already reported in this window.
    pub(super) fired: HashSet<(u32, &'static str, String)>,
    repeats: super::repeats::Repeats,
    pub(super) mass: HashMap<ProcKey, MassRead>,
    /// Per principal: recent discovery commands (time, matched entry, event).
    pub(super) discovery: HashMap<u32, VecDeque<(i64, String, Event)>>,
    pub(super) behaviour: super::behaviour::BehaviourState,
}

/// Local hour (0-23) of an epoch-ns time.
pub fn local_hour(t_ns: i64) -> u8 {
    let secs = t_ns.div_euclid(1_000_000_000) as libc::time_t;
    // SAFETY: zeroed tm is a valid out-parameter; localtime_r is thread-safe.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::localtime_r(&secs, &mut tm) };
    if r.is_null() {
        return ((secs.rem_euclid(86_400)) / 3_600) as u8;
    }
    tm.tm_hour.clamp(0, 23) as u8
}

fn evidence_of(e: &Event) -> Evidence {
    Evidence {
        id: e.id.to_string(),
        time_ns: e.time_ns,
        summary: super::evidence::summary(e),
        detail: serde_json::to_value(e).unwrap_or_default(),
    }
}

/// A stable 64-bit FNV-1a hash (std's hasher may change between releases).
fn fnv(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    format!("{h:016x}")
}

impl Engine {
    /// An engine on the live system (process table seeded from /proc).
    pub fn new(cfg: &Config, store: Store) -> Result<Engine, DetectError> {
        Engine::with_options(
            cfg,
            store,
            EngineOptions {
                live: true,
                users: None,
                learn_all: false,
            },
        )
    }

    pub fn with_options(
        cfg: &Config,
        store: Store,
        opts: EngineOptions,
    ) -> Result<Engine, DetectError> {
        let dcfg = cfg.detect.clone();
        let cats = match &dcfg.categories_file {
            Some(p) => Categories::load(p)?,
            None => Categories::defaults(),
        };
        let mut procs = ProcessTable::new(dcfg.exited_process_cap, opts.live);
        if opts.live {
            let n = procs.seed_from_proc();
            tracing::debug!("process table seeded with {n} processes");
        }
        Ok(Engine {
            cats: std::sync::Arc::new(cats),
            users: opts.users.unwrap_or_else(UserDb::system),
            procs,
            baselines: Baselines::load(store)?,
            window: None,
            host: cfg.host_name(),
            live: opts.live,
            learn_all: opts.learn_all,
            own_pid: std::process::id(),
            counter: 0,
            stats: Stats::default(),
            fired: HashSet::new(),
            repeats: Default::default(),
            mass: HashMap::new(),
            discovery: HashMap::new(),
            behaviour: Default::default(),
            cfg: dcfg,
        })
    }

    /// Switches between an explicit learning period (every window learned) and detection.
    pub fn set_learn_all(&mut self, on: bool) {
        self.learn_all = on;
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    pub fn processes(&self) -> &ProcessTable {
        &self.procs
    }

    pub fn baselines(&self) -> &Baselines {
        &self.baselines
    }

    /// Gives the store back (after closing the window with `finish`).
    pub fn into_store(self) -> Store {
        self.baselines.into_store()
    }

    /// Feeds one event; returns the anomalies it completes (and those of a window it closed).
    pub fn observe(&mut self, ev: &Event) -> Vec<Anomaly> {
        self.stats.events += 1;
        let mut out = match &self.window {
            Some(w) if ev.time_ns >= w.end_ns() => self.roll(ev.time_ns),
            _ => Vec::new(),
        };
        if self.window.is_none() {
            self.window = Some(Window::containing(ev.time_ns, self.cfg.window_ns()));
        }
        if self.repeats.is_repeat(ev) {
            return out;
        }
        self.procs.ensure(ev);
        // Only exec and setuid compare the process with its state before the event.
        let before = match ev.payload {
            Payload::Exec { .. } | Payload::SetUid { .. } => self.procs.get(ev.pid).cloned(),
            _ => None,
        };
        self.procs.apply(ev);
        let principal = ev.principal_uid();
        self.fingerprint(ev, principal, before.as_ref());
        let hits = self.detect(ev, principal, before.as_ref());
        if !hits.is_empty()
            && let Some(a) = self.anomaly(ev, principal, hits)
        {
            if let Some(w) = self.window.as_mut() {
                let pw = w.principal(principal);
                pw.max_score = pw.max_score.max(a.score);
            }
            self.stats.anomalies += 1;
            out.push(a);
        }
        out
    }

    /// Periodic call with the wall clock: closes the window when its time is up.
    pub fn tick(&mut self, now_ns: i64) -> Vec<Anomaly> {
        match &self.window {
            Some(w) if now_ns >= w.end_ns() => {
                let out = self.roll(now_ns);
                self.window = None;
                out
            }
            _ => Vec::new(),
        }
    }

    /// Closes the current window now (end of a replay or of `learn`), learning it.
    pub fn finish(&mut self) -> Vec<Anomaly> {
        match &self.window {
            Some(w) => {
                let end = w.end_ns();
                let out = self.roll(end);
                self.window = None;
                out
            }
            None => Vec::new(),
        }
    }

    /// Marks everything learned so far as vouched for (end of an explicit learning period).
    pub fn vouch(&mut self) -> Result<usize, StoreError> {
        self.baselines.vouch_all(&self.cfg.calibration())
    }

    /// The lineage of a process: base names of up to four generations, oldest first,
    /// without pid 1 (whose name says nothing).
    pub(super) fn lineage(&self, pid: u32) -> String {
        let chain = self.procs.chain(pid);
        let names: Vec<&str> = chain
            .iter()
            .filter(|p| p.pid != 1)
            .map(|p| p.name())
            .collect();
        let start = names.len().saturating_sub(4);
        names[start..].join(">")
    }

    fn fingerprint(&mut self, ev: &Event, principal: u32, before: Option<&Process>) {
        let facts = self.facts(ev, principal, before);
        let lineage = self.lineage(ev.pid);
        let exe = self
            .procs
            .get(ev.pid)
            .map(|p| p.exe.clone())
            .unwrap_or_default();
        let hour = local_hour(ev.time_ns);
        if let Some(w) = self.window.as_mut() {
            let pw = w.principal(principal);
            if pw.sample.len() < crate::profile::fingerprint::SAMPLE {
                pw.sample.push(ev.clone());
            }
            pw.add(&lineage, &exe, Fact::Event { hour });
            for f in &facts {
                pw.add(&lineage, &exe, f.as_fact());
            }
        }
    }

    /// Closes the current window: rate checks, then learn or reject per principal.
    fn roll(&mut self, now_ns: i64) -> Vec<Anomaly> {
        let Some(w) = self.window.take() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let rule = self.cfg.calibration();
        let mut uids: Vec<u32> = w.principals.keys().copied().collect();
        uids.sort_unstable();
        for uid in uids {
            let Some(pw) = w.principals.get(&uid) else {
                continue;
            };
            let mut max = pw.max_score;
            if let Some(a) = self.rate_spike(uid, &pw.all, &pw.sample, w.start_ns) {
                max = max.max(a.score);
                out.push(a);
            }
            let result = if self.learn_all || max < self.cfg.learn_below_score {
                let mut items: Vec<(&'static str, String, &Fingerprint)> =
                    vec![(KIND_PRINCIPAL, uid.to_string(), &pw.all)];
                for (l, f) in &pw.lineages {
                    items.push((KIND_LINEAGE, format!("{uid}|{l}"), f));
                }
                for (e, f) in &pw.exes {
                    items.push((KIND_EXE, e.clone(), f));
                }
                self.stats.windows_learned += 1;
                self.baselines.learn(&items, w.start_ns, w.end_ns(), &rule)
            } else {
                tracing::info!(
                    "window of uid {uid} scored {max}: not learned (poisoning protection)"
                );
                self.stats.windows_rejected += 1;
                self.baselines.reject(uid, w.end_ns())
            };
            if let Err(e) = result {
                tracing::warn!("cannot save baseline of uid {uid}: {e}");
            }
        }
        self.fired.clear();
        self.mass.clear();
        self.procs.prune_dead(now_ns);
        self.stats.anomalies += out.len() as u64;
        self.window = Some(Window::containing(now_ns, self.cfg.window_ns()));
        out
    }

    fn rate_spike(
        &mut self,
        uid: u32,
        fp: &Fingerprint,
        sample: &[Event],
        start_ns: i64,
    ) -> Option<Anomaly> {
        let p = self.baselines.principal(uid)?;
        if p.state != Calibration::Calibrated || p.rate.n < 12 {
            return None;
        }
        let (mean, sd) = (p.rate.mean, p.rate.stddev());
        let n = fp.events as f64;
        if n <= mean + self.cfg.rate_spike_sigmas * sd || n <= 2.0 * mean + 50.0 {
            return None;
        }
        let factor = Factor {
            detection: "rate_spike".into(),
            reason: format!(
                "{} events in one window: usual for this user is {:.0} ± {:.0} over {} of baseline",
                fp.events,
                mean,
                sd,
                p.span_words()
            ),
            weight: self.cfg.weights.rate_spike,
            // The window's first events stand for all of them.
            evidence: sample.iter().map(|e| e.id.to_string()).collect(),
        };
        let (score, level) = Anomaly::score_of(std::slice::from_ref(&factor));
        self.counter += 1;
        Some(Anomaly {
            id: format!("{}-{}-{}", self.host, start_ns / 1_000_000, self.counter),
            host: self.host.clone(),
            time_ns: start_ns,
            principal: self.principal(uid, None),
            chain: Vec::new(),
            score,
            level,
            factors: vec![factor],
            evidence: sample.iter().map(evidence_of).collect(),
            fingerprint: fnv(&["rate_spike", &uid.to_string()]),
            explanation: None,
        })
    }

    fn principal(&self, uid: u32, session: Option<u32>) -> Principal {
        Principal {
            uid,
            user: self.users.name(uid),
            session,
        }
    }

    /// The principal's profile when it is calibrating or calibrated (novelty is only
    /// reported against those).
    pub(super) fn usable_profile(&self, uid: u32) -> Option<&Profile> {
        self.baselines
            .principal(uid)
            .filter(|p| p.state >= Calibration::Calibrating)
    }

    /// Novelty weights count half while a profile is still calibrating.
    pub(super) fn novelty_weight(w: u8, p: &Profile) -> u8 {
        if p.state == Calibration::Calibrated {
            w
        } else {
            w / 2
        }
    }

    /// Fires a detection only once per (principal, detection, key) and window.
    pub(super) fn first_time(&mut self, principal: u32, det: &'static str, key: &str) -> bool {
        self.fired.insert((principal, det, key.to_string()))
    }

    fn anomaly(&mut self, ev: &Event, principal: u32, mut hits: Vec<Hit>) -> Option<Anomaly> {
        // `at`, not `get`: an exit has already taken the process out of the live table, and
        // the finding it raised (off-hours, say) has been spent for this window.
        let proc = self.procs.at(ev.pid, ev.time_ns)?.clone();
        // Context: a program this user never ran makes any other finding more telling.
        if let Some(p) = self.usable_profile(principal)
            && !proc.exe.is_empty()
            && !p.binaries.contains_key(&proc.exe)
        {
            hits.push(Hit {
                factor: Factor {
                    detection: "new_binary".into(),
                    reason: format!(
                        "{} was never run by this user in {} of baseline",
                        proc.exe,
                        p.span_words()
                    ),
                    weight: Engine::novelty_weight(self.cfg.weights.new_binary, p),
                    evidence: vec![ev.id.to_string()],
                },
                extra: Vec::new(),
            });
        }
        let mut evidence: Vec<Evidence> = Vec::new();
        let mut seen = HashSet::new();
        let mut time_ns = ev.time_ns;
        for e in hits.iter().flat_map(|h| h.extra.iter()).chain([ev]) {
            if seen.insert(e.id) && evidence.len() < 32 {
                time_ns = time_ns.min(e.time_ns);
                evidence.push(evidence_of(e));
            }
        }
        let factors: Vec<Factor> = hits.into_iter().map(|h| h.factor).collect();
        let (score, level) = Anomaly::score_of(&factors);
        let mut dets: Vec<&str> = factors.iter().map(|f| f.detection.as_str()).collect();
        dets.sort_unstable();
        dets.dedup();
        let mut key = dets;
        let uid_s = principal.to_string();
        key.push(&uid_s);
        key.push(&proc.exe);
        let chain = self.chain_links_at(ev.pid, ev.time_ns);
        self.counter += 1;
        Some(Anomaly {
            id: format!("{}-{}-{}", self.host, ev.time_ns / 1_000_000, self.counter),
            host: self.host.clone(),
            time_ns,
            principal: self.principal(principal, ev.session.or(proc.session)),
            chain,
            score,
            level,
            fingerprint: fnv(&key),
            factors,
            evidence,
            explanation: None,
        })
    }
}

impl Engine {
    /// The process chain, oldest ancestor first, of whoever held `pid` at `time_ns`, even if
    /// it has exited since: what anomalies show.
    fn chain_links_at(&self, pid: u32, time_ns: i64) -> Vec<ChainLink> {
        Self::links(self.procs.chain_at(pid, time_ns))
    }

    fn links(chain: Vec<&crate::proc::Process>) -> Vec<ChainLink> {
        chain
            .iter()
            .map(|p| ChainLink {
                pid: p.pid,
                exe: p.exe_or_comm(),
                argv: p.argv.clone(),
                uid: p.uid,
            })
            .collect()
    }

    /// Joins a live audit record to what the kernel events built: the process chain of the
    /// pid the record names, and the login session. An audit record that is suspicious on its
    /// own (a failed login, a sudo, a watched file) becomes an anomaly with the same scoring;
    /// each (principal, detection, reason) fires once per window.
    pub fn observe_audit(&mut self, fact: &crate::audit::LiveFact) -> Vec<Anomaly> {
        let Some(factor) = fact.factor.clone() else {
            return Vec::new();
        };
        let Some(principal) = fact.auid.or(fact.uid) else {
            return Vec::new();
        };
        if !self.first_time(principal, "audit", &factor.reason) {
            return Vec::new();
        }
        let chain = fact
            .pid
            .map(|pid| self.chain_links_at(pid, fact.time_ns))
            .unwrap_or_default();
        let exe = chain.last().map(|l| l.exe.clone()).unwrap_or_default();
        let factors = vec![factor];
        let (score, level) = Anomaly::score_of(&factors);
        let uid_s = principal.to_string();
        self.counter += 1;
        vec![Anomaly {
            id: format!(
                "{}-{}-{}",
                self.host,
                fact.time_ns / 1_000_000,
                self.counter
            ),
            host: self.host.clone(),
            time_ns: fact.time_ns,
            principal: self.principal(principal, fact.session),
            chain,
            score,
            level,
            fingerprint: fnv(&[factors[0].detection.as_str(), uid_s.as_str(), exe.as_str()]),
            factors,
            evidence: vec![fact.evidence.clone()],
            explanation: None,
        }]
    }
}

/// The engine is the pipeline's analysis stage (`pipeline::spawn_analysis`).
impl crate::pipeline::Analyzer for Engine {
    fn observe(&mut self, ev: &Event) -> Vec<Anomaly> {
        Engine::observe(self, ev)
    }

    fn tick(&mut self, now_ns: i64) -> Vec<Anomaly> {
        Engine::tick(self, now_ns)
    }

    fn finish(&mut self) -> Vec<Anomaly> {
        Engine::finish(self)
    }

    fn observe_audit(&mut self, fact: &crate::audit::LiveFact) -> Vec<Anomaly> {
        Engine::observe_audit(self, fact)
    }
}
