//! The engine's part of the agent's health: gauges the analysis thread publishes about once
//! a second (process table, windows, provenance, baseline states), so that a snapshot never
//! waits for, or locks, the engine.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::engine::Engine;
use crate::health::{AgentHealth, BaselineStates, Detect, HealthPart};

/// Shared between the engine (writer) and `HealthSource` (reader): `Engine::health`.
#[derive(Default)]
pub struct EngineHealth {
    processes: AtomicU64,
    windows_learned: AtomicU64,
    windows_rejected: AtomicU64,
    provenance_files: AtomicU64,
    baselines: Mutex<BTreeMap<String, BaselineStates>>,
}

impl HealthPart for EngineHealth {
    fn fill(&self, h: &mut AgentHealth) {
        h.detect = Some(Detect {
            processes: self.processes.load(Relaxed),
            windows_learned: self.windows_learned.load(Relaxed),
            windows_rejected: self.windows_rejected.load(Relaxed),
            provenance_files: self.provenance_files.load(Relaxed),
            baselines: self.baselines.lock().map(|b| b.clone()).unwrap_or_default(),
        });
    }
}

impl Engine {
    /// The engine's gauges for the agent's health (published at each tick).
    pub fn health(&self) -> std::sync::Arc<EngineHealth> {
        self.health.clone()
    }

    /// Copies the current state into the gauges. The profiles are recounted when `force`d
    /// (at start) and when a window was learned since the last call (windows roll on an
    /// event's time too): the only times a profile changes state.
    pub(super) fn publish_health(&self, force: bool) {
        let g = &self.health;
        let baselines = force || g.windows_learned.load(Relaxed) != self.stats.windows_learned;
        g.processes.store(self.procs.live_count() as u64, Relaxed);
        g.windows_learned.store(self.stats.windows_learned, Relaxed);
        g.windows_rejected
            .store(self.stats.windows_rejected, Relaxed);
        g.provenance_files
            .store(self.provenance.len() as u64, Relaxed);
        if baselines && let Ok(mut b) = g.baselines.lock() {
            *b = self
                .baselines
                .state_counts()
                .into_iter()
                .map(|(kind, [learning, calibrating, calibrated])| {
                    (
                        kind.to_string(),
                        BaselineStates {
                            learning,
                            calibrating,
                            calibrated,
                        },
                    )
                })
                .collect();
        }
    }
}
