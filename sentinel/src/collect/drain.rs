//! The user-space side of the ring buffer: drain on a short timer (the kernel submits without
//! waking us) or on a forced wake-up, decode, and hand events on without ever blocking.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use aya::maps::{MapData, RingBuf};
use sentinel_common::{Kind, MAX_KINDS};
use serde::Serialize;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

use super::repeats::Reporter;
use crate::event::handoff::Sender;
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

pub fn spawn(
    ring: RingBuf<MapData>,
    tx: Sender,
    stats: Arc<Stats>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
    mut repeats: Option<Reporter>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    // SAFETY: the ring buffer owns its fd and AsyncFd owns the ring buffer, so the fd stays
    // open for as long as it is registered.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(tokio::spawn(async move {
        let mut clock = Clock::new();
        let mut clock_read = std::time::Instant::now();
        let mut next_id = 1u64;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_flush = std::time::Instant::now();
        let mut decoded = tx.buffer();
        loop {
            tokio::select! {
                r = fd.readable_mut() => {
                    match r {
                        Ok(mut guard) => guard.clear_ready(),
                        Err(e) => {
                            tracing::error!(target: "sentinel::collect", "ring buffer poll failed: {e}");
                            break;
                        }
                    }
                }
                _ = tick.tick() => {
                    // Kernel stamps are CLOCK_MONOTONIC, which stands still during suspend and
                    // ignores wall-clock steps (NTP at boot): without a fresh offset every later
                    // event would carry a wrong time, and hours and windows with it.
                    if clock_read.elapsed() >= CLOCK_RESYNC {
                        clock = Clock::new();
                        clock_read = std::time::Instant::now();
                    }
                }
                _ = stop.changed() => {
                    drain_all(fd.get_mut(), &tx, &stats, &clock, &mut next_id, repeats.as_mut(), &mut decoded);
                    if let Some(r) = repeats.as_mut() {
                        report_repeats(r, true, &tx, &stats, &mut next_id, &mut decoded);
                    }
                    break;
                }
            }
            drain_all(
                fd.get_mut(),
                &tx,
                &stats,
                &clock,
                &mut next_id,
                repeats.as_mut(),
                &mut decoded,
            );
            if let Some(r) = repeats.as_mut()
                && last_flush.elapsed() >= REPEAT_REPORT
            {
                last_flush = std::time::Instant::now();
                report_repeats(r, false, &tx, &stats, &mut next_id, &mut decoded);
            }
            if tx.is_closed() {
                break;
            }
        }
    }))
}

/// Events decoded before they are sent on together (the analysis stage's batch). A drain pass
/// at up to 100k events/s (1,000 per 10 ms tick) is one chunk, so the analysis thread wakes
/// once per pass: with chunks of 256 it finished each before the next was decoded, parked,
/// and was woken again, twice as many run slices for the same work.
pub(super) const SEND_CHUNK: usize = 1024;

/// How often the kernel-to-wall-clock offset is read again.
const CLOCK_RESYNC: Duration = Duration::from_secs(1);

/// How often the kernel's repeat counts are read and reported.
const REPEAT_REPORT: Duration = Duration::from_secs(1);

/// Reads and sends the kernel's repeat counts, through the drain's (empty) buffer `decoded`.
fn report_repeats(
    r: &mut Reporter,
    last: bool,
    tx: &Sender,
    stats: &Stats,
    next_id: &mut u64,
    decoded: &mut Vec<Event>,
) {
    let before = r.stats;
    for mut ev in r.flush(crate::store::now_ns(), last) {
        ev.id = *next_id;
        *next_id += 1;
        stats.received[ev.kind() as usize].fetch_add(1, Relaxed);
        decoded.push(ev);
    }
    tx.send(decoded);
    count_dropped(stats, decoded);
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
    tx: &Sender,
    stats: &Stats,
    clock: &Clock,
    next_id: &mut u64,
    mut repeats: Option<&mut Reporter>,
    decoded: &mut Vec<Event>,
) {
    // What was waiting: each record plus its 8-byte header, rounded up to 8 bytes as the
    // kernel lays them out. A drain finding the buffer nearly full is a loss about to happen.
    let mut waiting = 0u64;
    // Sent in chunks (see `handoff`); the chunk's buffer is the task's (`decoded`), swapped
    // for an emptied one at each send.
    let send = |decoded: &mut Vec<Event>| {
        tx.send(decoded);
        count_dropped(stats, decoded);
    };
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
                decoded.push(ev);
                if decoded.len() == SEND_CHUNK {
                    send(decoded);
                }
            }
            Err(e) => {
                stats.decode_errors.fetch_add(1, Relaxed);
                tracing::warn!(target: "sentinel::collect", "undecodable record: {e}");
            }
        }
    }
    send(decoded);
    stats.ring_last_bytes.store(waiting, Relaxed);
    stats.ring_peak_bytes.fetch_max(waiting, Relaxed);
}

/// Counts (and lets go of) the events a full or closed channel left behind.
fn count_dropped(stats: &Stats, left: &mut Vec<Event>) {
    for ev in left.drain(..) {
        stats.dropped[ev.kind() as usize].fetch_add(1, Relaxed);
    }
}
