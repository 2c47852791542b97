//! The user-space side of the ring buffer: drain on a short timer (the kernel submits without
//! waking us) or on a forced wake-up, decode, and hand events on without ever blocking. The
//! agent drains on its analysis thread (`Drain`, one thread woken per interval instead of a
//! drain task, a channel and the analysis thread each woken); other users get a channel fed by
//! a thread of its own (`Drain::into_channel`).

use std::collections::BTreeMap;
use std::os::fd::{AsFd as _, AsRawFd as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use aya::maps::{MapData, RingBuf};
use sentinel_common::{Kind, MAX_KINDS};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::repeats::Reporter;
use crate::event::{Clock, Event, Payload, decode};

/// Counters updated by the drain task, readable at any time.
pub struct Stats {
    received: [AtomicU64; MAX_KINDS as usize],
    dropped: [AtomicU64; MAX_KINDS as usize],
    decode_errors: AtomicU64,
    open_repeats: AtomicU64,
    repeat_entries_evicted: AtomicU64,
    repeat_entries_finished: AtomicU64,
    /// Bytes waiting in the ring buffer at the last drain, and the most seen at one drain.
    pub(super) ring_last_bytes: AtomicU64,
    pub(super) ring_peak_bytes: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            received: std::array::from_fn(|_| AtomicU64::new(0)),
            dropped: std::array::from_fn(|_| AtomicU64::new(0)),
            decode_errors: AtomicU64::new(0),
            open_repeats: AtomicU64::new(0),
            repeat_entries_evicted: AtomicU64::new(0),
            repeat_entries_finished: AtomicU64::new(0),
            ring_last_bytes: AtomicU64::new(0),
            ring_peak_bytes: AtomicU64::new(0),
        }
    }
}

/// Counts per event kind name (only non-zero ones), as shown in summaries and JSON.
pub type KindCounts = BTreeMap<&'static str, u64>;

/// A point-in-time copy of `Stats`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StatsSnapshot {
    pub received: KindCounts,
    /// Decoded but dropped because the next stage was full.
    pub channel_dropped: KindCounts,
    pub decode_errors: u64,
    /// Opens counted in the kernel as repeats of one reported open (in `repeats` fields).
    pub open_repeats: u64,
    /// Repeat entries the full kernel map pushed out before their count was read.
    pub repeat_entries_evicted: u64,
    /// Repeat entries read a last time and removed because their process exited.
    pub repeat_entries_finished: u64,
}

impl StatsSnapshot {
    pub fn total_received(&self) -> u64 {
        self.received.values().sum()
    }
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let pick = |a: &[AtomicU64; MAX_KINDS as usize]| {
            Kind::ALL
                .iter()
                .map(|k| (k.name(), a[*k as usize].load(Relaxed)))
                .filter(|(_, n)| *n > 0)
                .collect()
        };
        StatsSnapshot {
            received: pick(&self.received),
            channel_dropped: pick(&self.dropped),
            decode_errors: self.decode_errors.load(Relaxed),
            open_repeats: self.open_repeats.load(Relaxed),
            repeat_entries_evicted: self.repeat_entries_evicted.load(Relaxed),
            repeat_entries_finished: self.repeat_entries_finished.load(Relaxed),
        }
    }
}

/// The ring buffer's consumer: takes what the kernel wrote, at most once per interval unless
/// the kernel forces a wake-up (the buffer is filling), decodes it, and once a second adds
/// the kernel's repeat counts. Finished once the collector stopped and the last records are
/// out; dropping it (finished or not) lets `Collector::stop` go on.
pub struct Drain {
    ring: RingBuf<MapData>,
    /// Edge-triggered readiness of the ring buffer: only the kernel's forced wake-ups.
    poll: mio::Poll,
    readiness: mio::Events,
    stats: Arc<Stats>,
    interval: Duration,
    last_drain: Instant,
    /// A forced wake-up came: drain at once.
    woken: bool,
    clock: Clock,
    clock_read: Instant,
    next_id: u64,
    repeats: Option<Reporter>,
    last_flush: Instant,
    stop: Arc<AtomicBool>,
    done: Option<oneshot::Sender<()>>,
}

/// What `Collector::stop` holds of a drain: the flag it sets, and the signal it waits for.
pub(super) struct DrainControl {
    pub stop: Arc<AtomicBool>,
    pub done: oneshot::Receiver<()>,
}

impl Drain {
    pub(super) fn new(
        ring: RingBuf<MapData>,
        stats: Arc<Stats>,
        interval: Duration,
        repeats: Option<Reporter>,
    ) -> std::io::Result<(Drain, DrainControl)> {
        let poll = mio::Poll::new()?;
        let fd = ring.as_fd().as_raw_fd();
        poll.registry().register(
            &mut mio::unix::SourceFd(&fd),
            mio::Token(0),
            mio::Interest::READABLE,
        )?;
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done) = oneshot::channel();
        let now = Instant::now();
        Ok((
            Drain {
                ring,
                poll,
                readiness: mio::Events::with_capacity(4),
                stats,
                interval,
                last_drain: now,
                woken: false,
                clock: Clock::new(),
                clock_read: now,
                next_id: 1,
                repeats,
                last_flush: now,
                stop: stop.clone(),
                done: Some(done_tx),
            },
            DrainControl { stop, done },
        ))
    }

    /// Appends to `out` what the ring buffer holds, when a drain is due (the interval passed,
    /// a forced wake-up, or the stop); false once finished (after the last records, which
    /// are in `out`).
    pub fn take(&mut self, out: &mut Vec<Event>) -> bool {
        if self.done.is_none() {
            return false;
        }
        let stopping = self.stop.load(Relaxed);
        if !(stopping || self.woken || self.last_drain.elapsed() >= self.interval) {
            return true;
        }
        self.woken = false;
        self.last_drain = Instant::now();
        // Kernel stamps are CLOCK_MONOTONIC, which stands still during suspend and ignores
        // wall-clock steps (NTP at boot): without a fresh offset every later event would
        // carry a wrong time, and hours and windows with it.
        if self.clock_read.elapsed() >= CLOCK_RESYNC {
            self.clock = Clock::new();
            self.clock_read = Instant::now();
        }
        drain_all(
            &mut self.ring,
            out,
            &self.stats,
            &self.clock,
            &mut self.next_id,
            self.repeats.as_mut(),
        );
        if let Some(r) = self.repeats.as_mut()
            && (stopping || self.last_flush.elapsed() >= REPEAT_REPORT)
        {
            self.last_flush = Instant::now();
            report_repeats(r, stopping, out, &self.stats, &mut self.next_id);
        }
        if stopping {
            // The collector detached the programs before it asked: nothing more will come.
            if let Some(d) = self.done.take() {
                let _ = d.send(());
            }
            return false;
        }
        true
    }

    /// Waits until the next drain is due, a forced wake-up, or `most` (whichever is first).
    pub fn wait(&mut self, most: Duration) {
        let due = self.interval.saturating_sub(self.last_drain.elapsed());
        if due.is_zero() || self.woken {
            return;
        }
        // An error (EINTR) is a wait cut short: the next call looks again.
        if self
            .poll
            .poll(&mut self.readiness, Some(due.min(most)))
            .is_ok()
        {
            self.woken = !self.readiness.is_empty();
        }
    }

    /// A bounded channel fed by a thread of its own (for users other than the agent's
    /// analysis stage: `sentinel learn`, the tests). Events the channel has no room for are
    /// dropped and counted; the thread ends when the drain is finished or the receiver gone.
    pub fn into_channel(mut self, capacity: usize) -> mpsc::Receiver<Event> {
        let (tx, rx) = mpsc::channel(capacity);
        let spawned = std::thread::Builder::new()
            .name("sentinel-drain".into())
            .spawn(move || {
                let mut batch = Vec::new();
                loop {
                    self.wait(self.interval);
                    let more = self.take(&mut batch);
                    for ev in batch.drain(..) {
                        let k = ev.kind() as usize;
                        if tx.try_send(ev).is_err() {
                            self.stats.dropped[k].fetch_add(1, Relaxed);
                        }
                    }
                    if !more || tx.is_closed() {
                        break;
                    }
                }
            });
        if let Err(e) = spawned {
            // Out of threads: the receiver sees a closed channel, and the stop goes on.
            tracing::error!(target: "sentinel::collect", "cannot start the drain thread: {e}");
        }
        rx
    }
}

/// How often the kernel-to-wall-clock offset is read again.
const CLOCK_RESYNC: Duration = Duration::from_secs(1);

/// How often the kernel's repeat counts are read and reported.
const REPEAT_REPORT: Duration = Duration::from_secs(1);

fn report_repeats(
    r: &mut Reporter,
    last: bool,
    out: &mut Vec<Event>,
    stats: &Stats,
    next_id: &mut u64,
) {
    let before = r.stats;
    for mut ev in r.flush(crate::store::now_ns(), last) {
        ev.id = *next_id;
        *next_id += 1;
        stats.received[ev.kind() as usize].fetch_add(1, Relaxed);
        out.push(ev);
    }
    stats
        .open_repeats
        .fetch_add(r.stats.counted - before.counted, Relaxed);
    stats
        .repeat_entries_evicted
        .fetch_add(r.stats.evicted - before.evicted, Relaxed);
    stats
        .repeat_entries_finished
        .fetch_add(r.stats.finished - before.finished, Relaxed);
}

fn drain_all(
    ring: &mut RingBuf<MapData>,
    out: &mut Vec<Event>,
    stats: &Stats,
    clock: &Clock,
    next_id: &mut u64,
    mut repeats: Option<&mut Reporter>,
) {
    // What was waiting: each record plus its 8-byte header, rounded up to 8 bytes as the
    // kernel lays them out. A drain finding the buffer nearly full is a loss about to happen.
    let mut waiting = 0u64;
    while let Some(item) = ring.next() {
        waiting += (item.len() as u64 + 8).next_multiple_of(8);
        match decode(&item, *next_id, clock) {
            Ok(mut ev) => {
                super::fdpath::resolve(&mut ev);
                *next_id += 1;
                if let Some(r) = repeats.as_deref_mut() {
                    if ev.repeat_head {
                        r.remember(&ev);
                    } else if matches!(ev.payload, Payload::Exit { .. }) && ev.tid == ev.pid {
                        r.exited(ev.pid);
                    }
                }
                stats.received[ev.kind() as usize].fetch_add(1, Relaxed);
                out.push(ev);
            }
            Err(e) => {
                stats.decode_errors.fetch_add(1, Relaxed);
                tracing::warn!(target: "sentinel::collect", "undecodable record: {e}");
            }
        }
    }
    stats.ring_last_bytes.store(waiting, Relaxed);
    stats.ring_peak_bytes.fetch_max(waiting, Relaxed);
}
