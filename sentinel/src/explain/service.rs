//! The explainer service for the live agent: a bounded queue in front of one worker task,
//! a calls-per-hour budget, a cache keyed by `Anomaly::fingerprint` and failure counters.
//! Submitting never blocks: a full queue drops the request and counts it. Session incidents
//! go through the same queue and budget (one story of the whole incident). The worker only
//! ever fills `explanation`; score and level pass through untouched.

use std::collections::BTreeMap;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use lru::LruCache;
use serde::Serialize;
use tokio::sync::mpsc;

use super::{Engine, ExplainError, LlmConfig, Subject, local};
use crate::incident::Incident;
use crate::model::{Anomaly, Explanation, Level};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubmitError {
    #[error("below the configured level")]
    BelowLevel,
    #[error("explainer queue full; dropped")]
    Full,
    #[error("explainer stopped")]
    Closed,
}

#[derive(Default)]
struct Counters {
    submitted: AtomicU64,
    dropped_full: AtomicU64,
    below_level: AtomicU64,
    explained: AtomicU64,
    from_llm: AtomicU64,
    local_fallbacks: AtomicU64,
    cache_hits: AtomicU64,
    budget_exhausted: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    repairs: AtomicU64,
    failures: AtomicU64,
    failures_by_kind: Mutex<BTreeMap<String, u64>>,
    /// The hourly budget, what it allowed at its last use, and when (wall-clock ns; 0: not
    /// used yet, so all of it is left).
    calls_per_hour: AtomicU64,
    budget_left: AtomicU64,
    budget_at_ns: std::sync::atomic::AtomicI64,
}

/// A point-in-time copy of the counters (for the feed, JSON output and the dashboard).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ExplainerStats {
    pub submitted: u64,
    pub dropped_full: u64,
    pub below_level: u64,
    pub explained: u64,
    pub from_llm: u64,
    pub local_fallbacks: u64,
    pub cache_hits: u64,
    pub budget_exhausted: u64,
    pub requests: u64,
    pub retries: u64,
    pub repairs: u64,
    pub failures: u64,
    pub failures_by_kind: BTreeMap<String, u64>,
}

impl Counters {
    fn snapshot(&self) -> ExplainerStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ExplainerStats {
            submitted: g(&self.submitted),
            dropped_full: g(&self.dropped_full),
            below_level: g(&self.below_level),
            explained: g(&self.explained),
            from_llm: g(&self.from_llm),
            local_fallbacks: g(&self.local_fallbacks),
            cache_hits: g(&self.cache_hits),
            budget_exhausted: g(&self.budget_exhausted),
            requests: g(&self.requests),
            retries: g(&self.retries),
            repairs: g(&self.repairs),
            failures: g(&self.failures),
            failures_by_kind: self
                .failures_by_kind
                .lock()
                .map(|m| m.clone())
                .unwrap_or_default(),
        }
    }
}

fn inc(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// What the worker explains.
enum Job {
    Anomaly(Box<Anomaly>),
    Incident(Box<Incident>),
}

/// The cloneable submitting side.
#[derive(Clone)]
pub struct ExplainerSubmitter {
    tx: mpsc::Sender<Job>,
    counters: Arc<Counters>,
    min_level: Level,
}

impl ExplainerSubmitter {
    /// Queues an anomaly for explanation without waiting.
    pub fn try_submit(&self, a: Anomaly) -> Result<(), SubmitError> {
        if a.level < self.min_level {
            inc(&self.counters.below_level);
            return Err(SubmitError::BelowLevel);
        }
        self.queue(Job::Anomaly(Box::new(a)))
    }

    /// Queues an incident's state for one story of the whole incident, without waiting.
    /// Incidents below high (or below `min_level`, if that is higher) are not explained.
    pub fn try_submit_incident(&self, i: Incident) -> Result<(), SubmitError> {
        if i.level < self.min_level.max(Level::High) {
            inc(&self.counters.below_level);
            return Err(SubmitError::BelowLevel);
        }
        self.queue(Job::Incident(Box::new(i)))
    }

    fn queue(&self, job: Job) -> Result<(), SubmitError> {
        match self.tx.try_send(job) {
            Ok(()) => {
                inc(&self.counters.submitted);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                inc(&self.counters.dropped_full);
                Err(SubmitError::Full)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SubmitError::Closed),
        }
    }

    pub fn stats(&self) -> ExplainerStats {
        self.counters.snapshot()
    }

    /// The explainer's part of the agent's health; holds no sender, so it never keeps the
    /// worker alive.
    pub fn health(&self) -> ExplainHealth {
        ExplainHealth(self.counters.clone())
    }
}

/// From `ExplainerSubmitter::health`.
pub struct ExplainHealth(Arc<Counters>);

impl crate::health::HealthPart for ExplainHealth {
    fn fill(&self, h: &mut crate::health::AgentHealth) {
        let c = &self.0;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let limit = g(&c.calls_per_hour);
        let at = c.budget_at_ns.load(Ordering::Relaxed);
        // The budget refills evenly, one call every hour/limit, up to the limit.
        let budget_left = if at == 0 || limit == 0 {
            limit
        } else {
            let elapsed = crate::store::now_ns().saturating_sub(at).max(0) as f64 / 1e9;
            let refilled = (elapsed * limit as f64 / 3600.0).floor() as u64;
            (g(&c.budget_left) + refilled).min(limit)
        };
        h.llm = Some(crate::health::Llm {
            submitted: g(&c.submitted),
            explained: g(&c.explained),
            from_llm: g(&c.from_llm),
            local_fallbacks: g(&c.local_fallbacks),
            requests: g(&c.requests),
            failures: g(&c.failures),
            dropped_full: g(&c.dropped_full),
            budget_exhausted: g(&c.budget_exhausted),
            calls_per_hour: limit,
            budget_left,
        });
    }
}

pub struct ExplainerHandle {
    pub submitter: ExplainerSubmitter,
    /// Explained anomalies, in the order they were processed.
    pub explained: mpsc::Receiver<Anomaly>,
    /// Explained incident states (same id and `step_count` as submitted).
    pub explained_incidents: mpsc::Receiver<Incident>,
}

impl ExplainerHandle {
    pub fn try_submit(&self, a: Anomaly) -> Result<(), SubmitError> {
        self.submitter.try_submit(a)
    }

    pub async fn recv(&mut self) -> Option<Anomaly> {
        self.explained.recv().await
    }

    pub fn stats(&self) -> ExplainerStats {
        self.submitter.stats()
    }
}

pub struct Explainer;

impl Explainer {
    /// Starts the worker on the current tokio runtime.
    pub fn spawn(cfg: &LlmConfig) -> Result<ExplainerHandle, ExplainError> {
        Ok(Explainer::spawn_engine(Engine::new(cfg)?))
    }

    pub fn spawn_engine(engine: Engine) -> ExplainerHandle {
        let cfg = engine.config().clone();
        let (tx, rx) = mpsc::channel(cfg.queue);
        let (out_tx, out_rx) = mpsc::channel(cfg.queue);
        let (inc_tx, inc_rx) = mpsc::channel(cfg.queue);
        let counters = Arc::new(Counters::default());
        counters
            .calls_per_hour
            .store(u64::from(cfg.calls_per_hour), Ordering::Relaxed);
        let worker = Worker {
            engine,
            counters: counters.clone(),
            cache: Cache::new(cfg.cache_size),
            budget: Budget::per_hour(cfg.calls_per_hour),
        };
        tokio::spawn(worker.run(rx, out_tx, inc_tx));
        ExplainerHandle {
            submitter: ExplainerSubmitter {
                tx,
                counters,
                min_level: cfg.min_level,
            },
            explained: out_rx,
            explained_incidents: inc_rx,
        }
    }
}

struct Worker {
    engine: Engine,
    counters: Arc<Counters>,
    cache: Cache,
    budget: Budget,
}

impl Worker {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Job>,
        out: mpsc::Sender<Anomaly>,
        incidents: mpsc::Sender<Incident>,
    ) {
        while let Some(job) = rx.recv().await {
            let sent = match job {
                Job::Anomaly(mut a) => {
                    let e = self.explain(&a).await;
                    a.explanation = Some(e);
                    inc(&self.counters.explained);
                    out.send(*a).await.is_ok()
                }
                Job::Incident(mut i) => {
                    i.explanation = None;
                    let (e, _) = self.call(&Subject::Incident(&i)).await;
                    i.explanation = Some(e);
                    inc(&self.counters.explained);
                    // Nobody taking incidents is fine: anomalies keep flowing.
                    let _ = incidents.send(*i).await;
                    true
                }
            };
            if !sent {
                break;
            }
        }
    }

    async fn explain(&mut self, a: &Anomaly) -> Explanation {
        let c = &self.counters;
        if let Some(e) = self.cache.get(&a.fingerprint) {
            inc(&c.cache_hits);
            return reuse(e, a);
        }
        let subject = Subject::Anomaly {
            anomaly: a,
            baseline: None,
        };
        let (e, from_llm) = self.call(&subject).await;
        if from_llm {
            self.cache
                .put(a.fingerprint.clone(), (e.clone(), a.id.clone()));
        }
        e
    }

    /// One explanation within the calls-per-hour budget, counted; the local one when the
    /// budget is used up or the model fails. True when the model's answer is used.
    async fn call(&mut self, subject: &Subject<'_>) -> (Explanation, bool) {
        let c = &self.counters;
        let left = self.budget.try_take_left();
        c.budget_left
            .store(left.map_or(0, u64::from), Ordering::Relaxed);
        c.budget_at_ns
            .store(crate::store::now_ns(), Ordering::Relaxed);
        if left.is_none() {
            inc(&c.budget_exhausted);
            inc(&c.local_fallbacks);
            let mut e = local::explain(subject);
            e.warnings
                .push("LLM calls-per-hour budget used up; local explanation used".into());
            return (e, false);
        }
        let outcome = self.engine.explain(subject).await;
        c.requests
            .fetch_add(outcome.stats.requests as u64, Ordering::Relaxed);
        c.retries
            .fetch_add(outcome.stats.retries as u64, Ordering::Relaxed);
        if outcome.repaired {
            inc(&c.repairs);
        }
        let from_llm = match &outcome.failure {
            Some(f) => {
                inc(&c.failures);
                inc(&c.local_fallbacks);
                if let Ok(mut m) = c.failures_by_kind.lock() {
                    *m.entry(f.kind().to_string()).or_default() += 1;
                }
                false
            }
            None if outcome.explanation.source == "local" => {
                inc(&c.local_fallbacks);
                false
            }
            None => {
                inc(&c.from_llm);
                true
            }
        };
        (outcome.explanation, from_llm)
    }
}

/// A cached explanation applied to a new anomaly of the same pattern: evidence ids of the
/// earlier anomaly do not exist in this one, so only shared ids are kept.
fn reuse((e, from): (Explanation, String), a: &Anomaly) -> Explanation {
    let mut e = e;
    let known: Vec<&String> = a
        .evidence
        .iter()
        .map(|x| &x.id)
        .chain(a.factors.iter().flat_map(|f| f.evidence.iter()))
        .collect();
    e.evidence_ids.retain(|id| known.contains(&id));
    e.warnings.push(format!(
        "cached explanation of anomaly {from} with the same fingerprint"
    ));
    e
}

/// Bounded map with least-recently-used eviction.
struct Cache(LruCache<String, (Explanation, String)>);

impl Cache {
    fn new(cap: usize) -> Cache {
        Cache(LruCache::new(
            NonZeroUsize::new(cap).unwrap_or(NonZeroUsize::MIN),
        ))
    }

    fn get(&mut self, k: &str) -> Option<(Explanation, String)> {
        self.0.get(k).cloned()
    }

    fn put(&mut self, k: String, v: (Explanation, String)) {
        self.0.put(k, v);
    }
}

/// At most `limit` calls an hour: a burst of `limit`, refilled evenly over the hour (GCRA, by
/// the `governor` crate). A limit of 0 allows none.
struct Budget<C: Clock = DefaultClock>(
    Option<RateLimiter<NotKeyed, InMemoryState, C, StateInformationMiddleware>>,
);

impl Budget {
    fn per_hour(limit: u32) -> Budget {
        Budget::with_clock(limit, DefaultClock::default())
    }
}

impl<C: Clock> Budget<C> {
    fn with_clock(limit: u32, clock: C) -> Budget<C> {
        Budget(NonZeroU32::new(limit).map(|n| {
            RateLimiter::direct_with_clock(Quota::per_hour(n), clock)
                .with_middleware::<StateInformationMiddleware>()
        }))
    }

    #[cfg(test)]
    fn try_take(&self) -> bool {
        self.try_take_left().is_some()
    }

    /// Takes one call; the calls left after it, or None when the budget is used up.
    fn try_take_left(&self) -> Option<u32> {
        self.0
            .as_ref()
            .and_then(|l| l.check().ok())
            .map(|s| s.remaining_burst_capacity())
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
