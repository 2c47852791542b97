//! The push client's part of the agent's health: sent, failing, queued and spooled.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use tokio::sync::mpsc;

use super::push::{Item, Stats, spool_files};
use crate::health::{AgentHealth, HealthPart, Push};

/// From `Pusher::health`.
pub struct PushHealth {
    pub(super) stats: Arc<Stats>,
    pub(super) queue: mpsc::WeakSender<Item>,
    pub(super) spool: PathBuf,
}

impl HealthPart for PushHealth {
    fn fill(&self, h: &mut AgentHealth) {
        let s = &self.stats;
        let queue = self
            .queue
            .upgrade()
            .map_or(0, |tx| tx.max_capacity() - tx.capacity());
        let files = spool_files(&self.spool);
        let spool_bytes = files
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        h.push = Some(Push {
            batches_sent: s.batches_sent.load(Relaxed),
            items_sent: s.items_sent.load(Relaxed),
            failures: s.failures.load(Relaxed),
            consecutive_failures: s.consecutive_failures.load(Relaxed),
            rejected: s.rejected.load(Relaxed),
            last_success_ns: Some(s.last_success_ns.load(Relaxed)).filter(|t| *t != 0),
            queue: queue as u64,
            spool_files: files.len() as u64,
            spool_bytes,
            verdicts: s.verdicts.load(Relaxed),
            spool_max_bytes: s.spool_max_bytes.load(Relaxed),
            spool_dropped_batches: s.spool_dropped_batches.load(Relaxed),
            spool_dropped_items: s.spool_dropped_items.load(Relaxed),
        });
    }
}
