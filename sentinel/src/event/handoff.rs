//! The collector's hand-over to the analysis stage: events travel in chunks (one channel send
//! and at most one wake-up per chunk, not per event), bounded by the events waiting.
//!
//! Sent one by one, every event paid the channel's bookkeeping twice, and the analysis thread
//! woke as often as it caught up with the drain, which depended on the two stages' relative
//! speed rather than on the load.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use super::Event;

/// Emptied chunk buffers kept for reuse: the drain needs one per chunk sent, and a fresh
/// buffer (270 KiB at 1,024 events) at every send, freed on another thread, is the churn that
/// made glibc consolidate its free lists at every drain when a 64 KiB one was made each time.
const SPARES: usize = 8;

/// A bound on the events in flight between two stages, shared by both ends: the sender takes
/// places before sending, the receiver gives them back as events leave.
pub struct Budget {
    waiting: AtomicUsize,
    capacity: usize,
}

impl Budget {
    pub fn new(capacity: usize) -> Budget {
        Budget {
            waiting: AtomicUsize::new(0),
            capacity,
        }
    }

    /// Takes places for up to `n` events; returns how many it got.
    pub fn take(&self, n: usize) -> usize {
        let mut got = 0;
        // One sender in practice, but the bound holds with several.
        let _ = self.waiting.fetch_update(Relaxed, Relaxed, |waiting| {
            got = self.capacity.saturating_sub(waiting).min(n);
            (got > 0).then_some(waiting + got)
        });
        got
    }

    /// Gives back the places of `n` events that left (or were not sent after all).
    pub fn give(&self, n: usize) {
        self.waiting.fetch_sub(n, Relaxed);
    }
}

struct Shared {
    budget: Budget,
    /// The chunk size buffers are made for; smaller ones (split-off parts) are not kept.
    chunk: usize,
    spare: Mutex<Vec<Vec<Event>>>,
}

impl Shared {
    fn recycle(&self, mut buf: Vec<Event>) {
        if buf.capacity() < self.chunk {
            return;
        }
        buf.clear();
        if let Ok(mut s) = self.spare.lock()
            && s.len() < SPARES
        {
            s.push(buf);
        }
    }
}

/// Events received together. Wherever it is dropped (the analysis stage, or the writer it
/// was forwarded to), its buffer goes back to the sender for reuse.
pub struct Chunk {
    events: Vec<Event>,
    home: Arc<Shared>,
}

impl Chunk {
    /// Splits off the events from `at` on, as `Vec::split_off` does.
    pub fn split_off(&mut self, at: usize) -> Chunk {
        Chunk {
            events: self.events.split_off(at),
            home: self.home.clone(),
        }
    }
}

impl Chunk {
    /// Gives up most of an oversized buffer (the start of a chunk split before an anomaly),
    /// so that a channel of chunks holds at most about twice its events' size.
    pub fn shrink(&mut self) {
        if self.events.len() * 2 < self.events.capacity() {
            self.events.shrink_to_fit();
        }
    }
}

impl std::ops::Deref for Chunk {
    type Target = Vec<Event>;
    fn deref(&self) -> &Vec<Event> {
        &self.events
    }
}

impl std::ops::DerefMut for Chunk {
    fn deref_mut(&mut self) -> &mut Vec<Event> {
        &mut self.events
    }
}

impl<'a> IntoIterator for &'a Chunk {
    type Item = &'a Event;
    type IntoIter = std::slice::Iter<'a, Event>;
    fn into_iter(self) -> Self::IntoIter {
        self.events.iter()
    }
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.events.fmt(f)
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        self.home.recycle(std::mem::take(&mut self.events));
    }
}

/// The sending half (the collector's drain).
pub struct Sender {
    tx: mpsc::UnboundedSender<Vec<Event>>,
    shared: Arc<Shared>,
}

/// The receiving half (the analysis stage, or a test's collector).
pub struct Receiver {
    rx: mpsc::UnboundedReceiver<Vec<Event>>,
    shared: Arc<Shared>,
}

/// A channel that holds at most `capacity` events, however they are chunked; the sender's
/// buffers are made for `chunk` events.
pub fn channel(capacity: usize, chunk: usize) -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        budget: Budget::new(capacity),
        chunk,
        spare: Mutex::new(Vec::new()),
    });
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Sender {
            tx,
            shared: shared.clone(),
        },
        Receiver { rx, shared },
    )
}

impl Sender {
    /// Sends as many of `chunk`'s events as there is room for, in order, and leaves `chunk`
    /// holding those that did not fit (all of them when the receiver is gone), for the caller
    /// to count as dropped.
    pub fn send(&self, chunk: &mut Vec<Event>) {
        if chunk.is_empty() {
            return;
        }
        let room = self.shared.budget.take(chunk.len());
        if room == 0 {
            return;
        }
        // A chunk less than half full goes as a copy of its own size and the buffer stays:
        // the bound counts events, so buffers of the full size sent with a few events each
        // (a quiet host drains a few per tick) would let a stalled stage hold far more memory
        // than its events. This way a full channel holds at most twice their size.
        let full = if room * 2 < chunk.capacity() {
            chunk.drain(..room).collect()
        } else if room < chunk.len() {
            let rest = chunk.split_off(room);
            std::mem::replace(chunk, rest)
        } else {
            let fresh = self.buffer();
            std::mem::replace(chunk, fresh)
        };
        if let Err(mpsc::error::SendError(mut back)) = self.tx.send(full) {
            self.shared.budget.give(back.len());
            back.append(chunk);
            *chunk = back;
        }
    }

    /// True once the receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// An empty buffer for the next chunk: a recycled one if any.
    pub fn buffer(&self) -> Vec<Event> {
        let spare = self.shared.spare.lock().ok().and_then(|mut s| s.pop());
        spare.unwrap_or_else(|| Vec::with_capacity(self.shared.chunk))
    }
}

impl Receiver {
    /// The next chunk, or `None` once every sender is gone and the channel is empty.
    pub async fn recv(&mut self) -> Option<Chunk> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next chunk; `cx`'s waker is woken when one is sent.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Chunk>> {
        self.rx.poll_recv(cx).map(|r| {
            r.map(|events| {
                self.shared.budget.give(events.len());
                Chunk {
                    events,
                    home: self.shared.clone(),
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: u64) -> Event {
        let mut e: Event = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/data/events/exec.json"
            ))
            .expect("fixture"),
        )
        .expect("fixture parses");
        e.id = id;
        e
    }

    fn ids(v: &[Event]) -> Vec<u64> {
        v.iter().map(|e| e.id).collect()
    }

    fn next(rx: &mut Receiver) -> Poll<Option<Chunk>> {
        rx.poll_recv(&mut Context::from_waker(std::task::Waker::noop()))
    }

    #[test]
    fn the_bound_counts_events_not_chunks_and_what_does_not_fit_stays_with_the_sender() {
        let (tx, mut rx) = channel(5, 4);
        let mut chunk: Vec<Event> = (1..=3).map(ev).collect();
        tx.send(&mut chunk);
        assert!(chunk.is_empty(), "three of five fit");
        chunk.extend((4..=7).map(ev));
        tx.send(&mut chunk);
        assert_eq!(ids(&chunk), [6, 7], "two fit, in order; the rest is left");
        chunk.clear();
        let Poll::Ready(Some(a)) = next(&mut rx) else {
            panic!("a chunk waits")
        };
        assert_eq!(ids(&a), [1, 2, 3]);
        drop(a);
        // Receiving freed three places.
        chunk.extend((8..=11).map(ev));
        tx.send(&mut chunk);
        assert_eq!(ids(&chunk), [11]);
        chunk.clear();
        let Poll::Ready(Some(b)) = next(&mut rx) else {
            panic!("a chunk waits")
        };
        let Poll::Ready(Some(c)) = next(&mut rx) else {
            panic!("a chunk waits")
        };
        assert_eq!((ids(&b), ids(&c)), (vec![4, 5], vec![8, 9, 10]));
        assert!(next(&mut rx).is_pending());
        drop(tx);
        assert!(matches!(next(&mut rx), Poll::Ready(None)));
    }

    #[test]
    fn a_chunk_under_half_full_goes_as_a_copy_of_its_size_and_the_buffer_stays() {
        let (tx, mut rx) = channel(10, 8);
        let mut chunk = tx.buffer();
        let ptr = chunk.as_ptr();
        chunk.extend((1..=3).map(ev));
        tx.send(&mut chunk);
        assert!(chunk.is_empty());
        assert_eq!(chunk.as_ptr(), ptr, "the drain keeps its buffer");
        let Poll::Ready(Some(got)) = next(&mut rx) else {
            panic!("sent")
        };
        assert_eq!((ids(&got), got.capacity()), (vec![1, 2, 3], 3));
        // Half full or more: the buffer itself goes.
        chunk.extend((4..=7).map(ev));
        tx.send(&mut chunk);
        let Poll::Ready(Some(got)) = next(&mut rx) else {
            panic!("sent")
        };
        assert_eq!((ids(&got), got.as_ptr()), (vec![4, 5, 6, 7], ptr));
    }

    #[test]
    fn a_closed_receiver_leaves_every_event_with_the_sender_and_frees_its_places() {
        let (tx, rx) = channel(10, 4);
        drop(rx);
        assert!(tx.is_closed());
        let mut chunk: Vec<Event> = (1..=4).map(ev).collect();
        tx.send(&mut chunk);
        assert_eq!(ids(&chunk), [1, 2, 3, 4]);
        assert_eq!(tx.shared.budget.waiting.load(Relaxed), 0);
    }

    #[test]
    fn a_dropped_chunk_gives_its_buffer_back_but_not_a_split_off_part() {
        let (tx, mut rx) = channel(10, 4);
        let mut chunk = tx.buffer();
        chunk.extend((1..=4).map(ev));
        tx.send(&mut chunk);
        let Poll::Ready(Some(mut got)) = next(&mut rx) else {
            panic!("sent")
        };
        let ptr = got.as_ptr();
        let tail = got.split_off(2);
        assert_eq!((ids(&got), ids(&tail)), (vec![1, 2], vec![3, 4]));
        // Dropped on another thread, as the writer does.
        std::thread::spawn(move || drop((got, tail)))
            .join()
            .unwrap();
        assert_eq!(
            tx.shared.spare.lock().unwrap().len(),
            1,
            "only the full-size buffer"
        );
        chunk.extend((5..=6).map(ev));
        tx.send(&mut chunk);
        assert_eq!(
            chunk.as_ptr(),
            ptr,
            "the recycled buffer is the next one filled"
        );
        assert!(chunk.is_empty());
    }
}
