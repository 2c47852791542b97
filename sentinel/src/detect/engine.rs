//! The detection engine: feeds each event to the process table and the current window,
//! runs the detections, turns their factors into scored anomalies, and at each window
//! roll-over learns the window into the baselines unless it scored high.

use std::collections::{HashMap, HashSet, VecDeque};

use super::config::DetectConfig;
use crate::event::{Event, Payload};
use crate::model::{Anomaly, Evidence, Factor, Principal};
use crate::proc::users::UserDb;
use crate::proc::{ProcKey, Process, ProcessTable};
use crate::profile::baseline::KIND_LINEAGE;
use crate::profile::{Baselines, Calibration, Categories, Fact, Profile, Window};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Categories(#[from] crate::profile::categories::CategoriesError),
    #[error("{0}")]
    Config(String),
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

/// Counters for logs, the `learn` summary and the `detect` part of `sentinel run`'s summary
/// record (docs/events.md).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub events: u64,
    pub anomalies: u64,
    pub windows_learned: u64,
    pub windows_rejected: u64,
    /// Files whose writer is remembered now (provenance).
    pub provenance_files: u64,
    /// Provenance records pushed out by `detect.provenance_cap`.
    pub provenance_evicted: u64,
    /// Per `[[detect.exceptions]]` entry, in config order: its label and the factors it
    /// dropped.
    pub exceptions: Vec<ExceptionCount>,
}

/// What one exception suppressed.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExceptionCount {
    pub exception: String,
    pub suppressed: u64,
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
    pub(super) counter: u64,
    pub(super) stats: Stats,
    /// (principal, detection, key) already reported in this window.
    pub(super) fired: HashSet<(u32, &'static str, String)>,
    repeats: super::repeats::Repeats,
    pub(super) mass: HashMap<ProcKey, MassRead>,
    /// Per principal: recent discovery commands (time, matched entry, event).
    pub(super) discovery: HashMap<u32, DiscoveryQueue>,
    /// Failed authentications per target account and source (brute force).
    pub(super) auth: super::bursts::AuthFailures,
    /// Events lost in the current window (blind spots).
    pub(super) losses: super::blind::Losses,
    /// Analysts' verdicts in force.
    pub(super) feedback: super::feedback::Feedback,
    /// Who wrote the files that may be run later.
    pub(super) provenance: super::provenance::Provenance,
    pub(super) exceptions: super::exceptions::Exceptions,
    pub(super) behaviour: super::behaviour::BehaviourState,
    /// Gauges for the agent's health, published at each tick.
    pub(super) health: std::sync::Arc<super::health::EngineHealth>,
    /// The last answer of `under_package_manager`, with what it was asked: (process table
    /// version, pid, lists in force).
    pub(super) pkg_memo: std::cell::Cell<Option<(PkgAsked, bool)>>,
}

/// What `under_package_manager` was asked: (process table version, pid, lists in force).
pub(super) type PkgAsked = (u64, u32, usize);

/// Recent discovery commands of one principal: (time, matched entry, event).
pub(super) type DiscoveryQueue = VecDeque<(i64, String, Event)>;

pub(super) fn evidence_of(e: &Event) -> Evidence {
    Evidence {
        id: e.id.to_string(),
        time_ns: e.time_ns,
        summary: super::evidence::summary(e),
        detail: serde_json::to_value(e).unwrap_or_default(),
    }
}

/// A stable 64-bit FNV-1a hash (std's hasher may change between releases).
pub(super) fn fnv(parts: &[&str]) -> String {
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
    pub fn new(cfg: &DetectConfig, host: String, store: Store) -> Result<Engine, DetectError> {
        Engine::with_options(
            cfg,
            host,
            store,
            EngineOptions {
                live: true,
                users: None,
                learn_all: false,
            },
        )
    }

    /// An engine with the `[detect]` settings, naming this host in its anomalies.
    pub fn with_options(
        cfg: &DetectConfig,
        host: String,
        store: Store,
        opts: EngineOptions,
    ) -> Result<Engine, DetectError> {
        let dcfg = cfg.clone();
        let cats = match &dcfg.categories_file {
            Some(p) => Categories::load(p)?,
            None => Categories::defaults(),
        };
        let exceptions =
            super::exceptions::Exceptions::new(&dcfg.exceptions).map_err(DetectError::Config)?;
        let mut procs = ProcessTable::new(dcfg.exited_process_cap, opts.live);
        if opts.live {
            let n = procs.seed_from_proc();
            tracing::debug!("process table seeded with {n} processes");
        }
        let mut engine = Engine {
            cats: std::sync::Arc::new(cats),
            users: opts.users.unwrap_or_else(UserDb::system),
            procs,
            baselines: Baselines::load(store)?,
            window: None,
            host,
            live: opts.live,
            learn_all: opts.learn_all,
            own_pid: std::process::id(),
            counter: 0,
            stats: Stats::default(),
            fired: HashSet::new(),
            repeats: Default::default(),
            mass: HashMap::new(),
            discovery: HashMap::new(),
            losses: Default::default(),
            feedback: Default::default(),
            auth: super::bursts::AuthFailures::new(
                dcfg.brute_force_window_secs,
                dcfg.brute_force_threshold,
            ),
            provenance: super::provenance::Provenance::new(dcfg.provenance_cap),
            exceptions,
            behaviour: Default::default(),
            health: Default::default(),
            pkg_memo: Default::default(),
            cfg: dcfg,
        };
        engine.reload_feedback();
        engine.publish_health(true);
        Ok(engine)
    }

    /// Switches between an explicit learning period (every window learned) and detection.
    pub fn set_learn_all(&mut self, on: bool) {
        self.learn_all = on;
    }

    pub fn stats(&self) -> Stats {
        Stats {
            provenance_files: self.provenance.len() as u64,
            provenance_evicted: self.provenance.evicted,
            exceptions: self
                .exceptions
                .suppressed()
                .into_iter()
                .map(|(exception, suppressed)| ExceptionCount {
                    exception,
                    suppressed,
                })
                .collect(),
            ..self.stats.clone()
        }
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
            // Not analysed again, but the descriptor it returned may be another than the
            // first open's, and later opens relative to it must be placed.
            self.procs.note_descriptor(ev);
            return out;
        }
        self.procs.ensure(ev);
        // A file named relative to a directory descriptor (tar -C, find): its real path.
        let resolved = self.procs.resolve_at(ev);
        let ev = resolved.as_ref().unwrap_or(ev);
        // Only exec and setuid compare the process with its state before the event.
        let before = match ev.payload {
            Payload::Exec { .. } | Payload::SetUid { .. } => self.procs.get(ev.pid).cloned(),
            _ => None,
        };
        self.procs.apply(ev);
        let principal = ev.principal_uid();
        self.track_provenance(ev, principal);
        self.fingerprint(ev, principal, before.as_ref());
        let hits = self.detect(ev, principal, before.as_ref());
        if !hits.is_empty()
            && let Some((a, pinned)) = self.anomaly(ev, principal, hits)
        {
            if let Some(w) = self.window.as_mut() {
                let pw = w.principal(principal);
                // A finding an analyst pinned as malicious keeps its window from being learned.
                let mark = if pinned { u8::MAX } else { a.score };
                pw.max_score = pw.max_score.max(mark);
            }
            self.stats.anomalies += 1;
            out.push(a);
        }
        out
    }

    /// Makes a path named relative to a directory descriptor absolute in the event itself,
    /// as the process table places it, so that the event feed shows where the file is; the
    /// descriptor number stays. Call before `observe` (which does the same internally for
    /// its own analysis).
    pub fn place(&self, ev: &mut Event) {
        if let Some(abs) = self.procs.placed_path(ev)
            && let Payload::Open { path, .. } | Payload::Unlink { path, .. } = &mut ev.payload
        {
            *path = crate::event::RawStr(abs.into_bytes());
        }
    }

    /// Periodic call with the wall clock: picks up verdicts another writer saved, and closes
    /// the window when its time is up.
    pub fn tick(&mut self, now_ns: i64) -> Vec<Anomaly> {
        self.reload_feedback_if_changed();
        let out = match &self.window {
            Some(w) if now_ns >= w.end_ns() => {
                let out = self.roll(now_ns);
                self.window = None;
                out
            }
            _ => Vec::new(),
        };
        self.publish_health(false);
        out
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

    /// The (principal x lineage) profile of the process's current lineage, when it is
    /// calibrating or calibrated.
    pub(super) fn lineage_profile(&self, principal: u32, pid: u32) -> Option<&Profile> {
        self.baselines
            .get(KIND_LINEAGE, &format!("{principal}|{}", self.lineage(pid)))
            .filter(|p| p.state >= Calibration::Calibrating)
    }

    /// Did this principal x lineage show behaviour `det` in its learned windows (a nightly
    /// backup job's tar archiving other homes)? Behaviours are learned as categories
    /// "write:behaviour:<det>" (`note_behaviour`).
    pub(super) fn lineage_knows_behaviour(&self, principal: u32, pid: u32, det: &str) -> bool {
        let key = format!("write:behaviour:{det}");
        self.lineage_profile(principal, pid)
            .is_some_and(|l| l.categories.contains_key(&key))
    }

    /// Drops the factors an operator exception covers (counting them per exception).
    pub(super) fn apply_exceptions(
        &mut self,
        ev: Option<&Event>,
        principal: u32,
        hits: &mut Vec<Hit>,
    ) {
        if self.exceptions.is_empty() || hits.is_empty() {
            return;
        }
        let (exe, lineage, paths) = match ev {
            Some(ev) => {
                let exe = self
                    .procs
                    .at(ev.pid, ev.time_ns)
                    .map(|p| p.exe.clone())
                    .unwrap_or_default();
                (exe, self.lineage(ev.pid), self.event_paths(ev))
            }
            None => Default::default(),
        };
        let subject = super::exceptions::Subject {
            principal,
            user: self.users.name(principal),
            exe: &exe,
            paths,
            lineage: &lineage,
        };
        let mut dropped = Vec::new();
        hits.retain(
            |h| match self.exceptions.matching(&h.factor.detection, &subject) {
                Some(i) => {
                    dropped.push(i);
                    false
                }
                None => true,
            },
        );
        for i in dropped {
            self.exceptions.count(i);
        }
    }

    /// The paths an event names (absolute), for exceptions with a `path`.
    fn event_paths(&self, ev: &Event) -> Vec<String> {
        let abs = |p: &crate::event::RawStr| self.path_of(ev.pid, &p.lossy());
        match &ev.payload {
            Payload::Exec { filename, .. } => {
                let mut v = vec![abs(filename)];
                if let Some(p) = self.procs.get(ev.pid)
                    && !p.exe.is_empty()
                {
                    v.push(p.exe.to_string());
                }
                v
            }
            Payload::Open { path, .. }
            | Payload::Unlink { path, .. }
            | Payload::Chmod { path, .. }
            | Payload::Chown { path, .. } => vec![abs(path)],
            Payload::Rename {
                old_path, new_path, ..
            } => vec![abs(old_path), abs(new_path)],
            Payload::Link { target, link, .. } => vec![abs(target), abs(link)],
            _ => Vec::new(),
        }
    }

    /// The lineage of a process: base names of up to four generations, oldest first,
    /// without pid 1 (whose name says nothing).
    pub(super) fn lineage(&self, pid: u32) -> String {
        // Walked upwards, the four nearest; written oldest first.
        let mut names = [""; 4];
        let mut n = 0;
        for p in self.procs.ancestry(pid).filter(|p| p.pid != 1) {
            names[n] = p.name();
            n += 1;
            if n == names.len() {
                break;
            }
        }
        let mut out = String::with_capacity(names.iter().map(|s| s.len() + 1).sum());
        for (i, name) in names[..n].iter().rev().enumerate() {
            if i > 0 {
                out.push('>');
            }
            out.push_str(name);
        }
        out
    }

    fn fingerprint(&mut self, ev: &Event, principal: u32, before: Option<&Process>) {
        let facts = self.facts(ev, principal, before);
        let lineage = self.lineage(ev.pid);
        let exe = self
            .procs
            .get(ev.pid)
            .map(|p| p.exe.clone())
            .unwrap_or_default();
        let hour = crate::timefmt::local_hour(ev.time_ns);
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

    /// A new anomaly id: "<host>-<epoch ms>-<counter>".
    pub(super) fn next_id(&mut self, t_ns: i64) -> String {
        self.counter += 1;
        format!("{}-{}-{}", self.host, t_ns / 1_000_000, self.counter)
    }

    pub(super) fn principal(&self, uid: u32, session: Option<u32>) -> Principal {
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

    /// The anomaly of these hits, and whether an analyst pinned it as malicious.
    fn anomaly(
        &mut self,
        ev: &Event,
        principal: u32,
        mut hits: Vec<Hit>,
    ) -> Option<(Anomaly, bool)> {
        self.apply_exceptions(Some(ev), principal, &mut hits);
        if hits.is_empty() {
            return None;
        }
        // `at`, not `get`: an exit has already taken the process out of the live table, and
        // the finding it raised (off-hours, say) has been spent for this window.
        let proc = self.procs.at(ev.pid, ev.time_ns)?.clone();
        // Context: a program this user never ran makes any other finding more telling.
        if let Some(p) = self.usable_profile(principal)
            && !proc.exe.is_empty()
            && !p.binaries.contains_key(&*proc.exe)
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
        let pinned = self.apply_feedback(principal, &proc.exe, &mut hits);
        let mut evidence: Vec<Evidence> = Vec::new();
        let mut seen = HashSet::new();
        let mut time_ns = ev.time_ns;
        for e in hits.iter().flat_map(|h| h.extra.iter()).chain([ev]) {
            if seen.insert(e.id) && evidence.len() < 32 {
                time_ns = time_ns.min(e.time_ns);
                evidence.push(evidence_of(e));
            }
        }
        let mut factors: Vec<Factor> = hits.into_iter().map(|h| h.factor).collect();
        factors.extend(self.reduced_confidence());
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
        Some((
            Anomaly {
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
            },
            pinned,
        ))
    }
}
