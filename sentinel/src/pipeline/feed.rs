//! The channel from the analysis stage to the sinks: events in runs (the collector's chunks as
//! they came, split only before an anomaly), anomalies one by one; bounded by events and by
//! items, so a slow sink drops events (counted) while anomalies wait for room.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::event::handoff::{Budget, Chunk};
use crate::model::Anomaly;

/// One item for the sinks.
#[derive(Debug)]
pub enum FeedItem {
    /// Events in the order analysed: the collector's chunk as it came, or its parts between
    /// anomalies. Sent one by one, each event was an allocation, a copy and a channel send (a
    /// tenth of the agent's CPU with every event shown).
    Events(Chunk),
    Anomaly(Arc<Anomaly>),
}

impl FeedItem {
    /// How many events the item carries.
    fn events(&self) -> usize {
        match self {
            FeedItem::Events(run) => run.len(),
            FeedItem::Anomaly(_) => 0,
        }
    }
}

/// The channel from the analysis stage to the sinks. Events travel in runs, so the channel's
/// own bound counts items, and the events it holds are bounded apart.
pub fn feed(events: usize, items: usize) -> (FeedTx, FeedRx) {
    let (tx, rx) = mpsc::channel(items);
    let budget = Arc::new(Budget::new(events));
    (
        FeedTx {
            tx,
            budget: budget.clone(),
        },
        FeedRx { rx, budget },
    )
}

/// The analysis stage's end of [`feed`].
pub struct FeedTx {
    tx: mpsc::Sender<FeedItem>,
    budget: Arc<Budget>,
}

impl FeedTx {
    /// Sends as many of the run's events as the sinks have room for, in order; returns how
    /// many were dropped.
    pub(super) fn try_events(&self, mut run: Chunk) -> usize {
        let n = run.len();
        let room = self.budget.take(n);
        if room == 0 {
            return n;
        }
        if room < n {
            run.truncate(room);
        }
        if self.tx.try_send(FeedItem::Events(run)).is_err() {
            self.budget.give(room);
            return n;
        }
        n - room
    }

    /// Sends an anomaly, waiting for room. Err only when the sinks are gone (shutdown).
    pub(super) fn anomaly(&self, a: Anomaly) -> Result<(), ()> {
        self.send_anomaly(Arc::new(a))
    }

    /// The same for an anomaly already shared.
    pub(super) fn send_anomaly(&self, a: Arc<Anomaly>) -> Result<(), ()> {
        self.tx.blocking_send(FeedItem::Anomaly(a)).map_err(|_| ())
    }
}

/// The sinks' end of [`feed`].
pub struct FeedRx {
    pub(super) rx: mpsc::Receiver<FeedItem>,
    budget: Arc<Budget>,
}

impl FeedRx {
    /// Takes up to `limit` items into `buf`; 0 once the stage has ended and all is taken.
    pub async fn recv_many(&mut self, buf: &mut Vec<FeedItem>, limit: usize) -> usize {
        let from = buf.len();
        let n = self.rx.recv_many(buf, limit).await;
        self.budget
            .give(buf[from..].iter().map(FeedItem::events).sum());
        n
    }

    /// An item if one is there, without waiting.
    pub fn try_recv(&mut self) -> Option<FeedItem> {
        let item = self.rx.try_recv().ok()?;
        self.budget.give(item.events());
        Some(item)
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

/// The batch's records for the sinks, in order: its events (when forwarded) as whole runs,
/// split only where an anomaly follows an event, so a batch without one goes on as it came.
pub(super) fn runs(
    mut batch: Chunk,
    found_at: &mut Vec<(usize, Vec<Anomaly>)>,
    forward_events: bool,
    out: &mut Vec<FeedItem>,
) {
    let anomalies = |found: Vec<Anomaly>| found.into_iter().map(|a| FeedItem::Anomaly(Arc::new(a)));
    if !forward_events {
        for (_, found) in found_at.drain(..) {
            out.extend(anomalies(found));
        }
        return;
    }
    // From the back, so that each split moves only the events after the cut; then reversed.
    let from = out.len();
    while let Some((cut, found)) = found_at.pop() {
        if cut < batch.len() {
            out.push(FeedItem::Events(batch.split_off(cut)));
        }
        out.extend(anomalies(found).rev());
    }
    if !batch.is_empty() {
        batch.shrink();
        out.push(FeedItem::Events(batch));
    }
    out[from..].reverse();
}
