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

/// Emptied chunk buffers kept for reuse: the drain makes one per chunk, and a fresh 64 KiB
/// buffer at every send (freed on another thread) is what made glibc consolidate its free
/// lists at every drain before.
const SPARES: usize = 8;

struct Shared {
    waiting: AtomicUsize,
    capacity: usize,
    spare: Mutex<Vec<Vec<Event>>>,
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

/// A channel that holds at most `capacity` events, however they are chunked.
pub fn channel(capacity: usize) -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        waiting: AtomicUsize::new(0),
        capacity,
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
        let cap = self.shared.capacity;
        let mut room = 0;
        // The drain is the only sender in practice, but the bound holds with several.
        let _ = self
            .shared
            .waiting
            .fetch_update(Relaxed, Relaxed, |waiting| {
                room = cap.saturating_sub(waiting).min(chunk.len());
                (room > 0).then_some(waiting + room)
            });
        if room == 0 {
            return;
        }
        let rest = if room < chunk.len() {
            chunk.split_off(room)
        } else {
            self.buffer(chunk.capacity())
        };
        let full = std::mem::replace(chunk, rest);
        if let Err(mpsc::error::SendError(mut back)) = self.tx.send(full) {
            self.shared.waiting.fetch_sub(back.len(), Relaxed);
            back.append(chunk);
            *chunk = back;
        }
    }

    /// True once the receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    fn buffer(&self, capacity: usize) -> Vec<Event> {
        let spare = self.shared.spare.lock().ok().and_then(|mut s| s.pop());
        spare.unwrap_or_else(|| Vec::with_capacity(capacity))
    }
}

impl Receiver {
    /// The next chunk, or `None` once every sender is gone and the channel is empty.
    pub async fn recv(&mut self) -> Option<Vec<Event>> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next chunk; `cx`'s waker is woken when one is sent.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Vec<Event>>> {
        let r = self.rx.poll_recv(cx);
        if let Poll::Ready(Some(chunk)) = &r {
            self.shared.waiting.fetch_sub(chunk.len(), Relaxed);
        }
        r
    }

    /// Gives an emptied chunk's buffer back to the sender for reuse.
    pub fn recycle(&self, mut chunk: Vec<Event>) {
        chunk.clear();
        if chunk.capacity() > 0
            && let Ok(mut s) = self.shared.spare.lock()
            && s.len() < SPARES
        {
            s.push(chunk);
        }
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

    #[test]
    fn the_bound_counts_events_not_chunks_and_what_does_not_fit_stays_with_the_sender() {
        let (tx, mut rx) = channel(5);
        let mut chunk: Vec<Event> = (1..=3).map(ev).collect();
        tx.send(&mut chunk);
        assert!(chunk.is_empty(), "three of five fit");
        chunk.extend((4..=7).map(ev));
        tx.send(&mut chunk);
        assert_eq!(ids(&chunk), [6, 7], "two fit, in order; the rest is left");
        chunk.clear();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let Poll::Ready(Some(a)) = rx.poll_recv(&mut cx) else {
            panic!("a chunk waits")
        };
        assert_eq!(ids(&a), [1, 2, 3]);
        rx.recycle(a);
        // Receiving freed three places.
        chunk.extend((8..=11).map(ev));
        tx.send(&mut chunk);
        assert_eq!(ids(&chunk), [11]);
        chunk.clear();
        let Poll::Ready(Some(b)) = rx.poll_recv(&mut cx) else {
            panic!("a chunk waits")
        };
        let Poll::Ready(Some(c)) = rx.poll_recv(&mut cx) else {
            panic!("a chunk waits")
        };
        assert_eq!((ids(&b), ids(&c)), (vec![4, 5], vec![8, 9, 10]));
        assert!(rx.poll_recv(&mut cx).is_pending());
        drop(tx);
        assert!(matches!(rx.poll_recv(&mut cx), Poll::Ready(None)));
    }

    #[test]
    fn a_closed_receiver_leaves_every_event_with_the_sender_and_frees_its_places() {
        let (tx, rx) = channel(10);
        drop(rx);
        assert!(tx.is_closed());
        let mut chunk: Vec<Event> = (1..=4).map(ev).collect();
        tx.send(&mut chunk);
        assert_eq!(ids(&chunk), [1, 2, 3, 4]);
        assert_eq!(tx.shared.waiting.load(Relaxed), 0);
    }

    #[test]
    fn recycled_buffers_come_back_to_the_sender_empty() {
        let (tx, mut rx) = channel(10);
        let mut chunk = Vec::with_capacity(4);
        chunk.push(ev(1));
        tx.send(&mut chunk);
        let got = rx.rx.try_recv().expect("sent");
        let ptr = got.as_ptr();
        rx.recycle(got);
        chunk.push(ev(2));
        tx.send(&mut chunk);
        assert_eq!(
            chunk.as_ptr(),
            ptr,
            "the recycled buffer is the next one filled"
        );
        assert!(chunk.is_empty());
    }
}
