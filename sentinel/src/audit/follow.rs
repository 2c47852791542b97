//! Live following of auditd's log: tails the file (surviving rotation and truncation), groups
//! records into events and sends them on a bounded channel. A slow consumer loses events with a
//! counter; the follower never blocks on it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::record::{AuditEvent, Record, is_standalone, parse_line};

#[derive(Debug, Default)]
pub struct FollowStats {
    /// Events lost because the channel was full.
    pub dropped: AtomicU64,
    pub malformed: AtomicU64,
    pub events: AtomicU64,
    /// Times the log was rotated or truncated under us.
    pub reopened: AtomicU64,
}

#[derive(Clone, Debug)]
pub struct FollowOptions {
    pub capacity: usize,
    /// Start at the beginning of the current file instead of its end.
    pub from_start: bool,
    pub poll: Duration,
    /// A multi-record event with no EOE is sent after this long (auditd's own default is 2 s).
    pub flush_after: Duration,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            capacity: 4096,
            from_start: false,
            poll: Duration::from_millis(200),
            flush_after: Duration::from_secs(2),
        }
    }
}

pub struct Follower {
    pub events: mpsc::Receiver<AuditEvent>,
    pub stats: Arc<FollowStats>,
}

impl Follower {
    pub fn dropped(&self) -> u64 {
        self.stats.dropped.load(Ordering::Relaxed)
    }
}

/// Follows `path` from its current end (where it is when this returns, so that every record
/// written after the call is delivered). The thread stops when the receiver is dropped.
pub fn follow(path: PathBuf) -> Follower {
    follow_with(path, FollowOptions::default())
}

pub fn follow_with(path: PathBuf, opts: FollowOptions) -> Follower {
    let (tx, rx) = mpsc::channel(opts.capacity.max(1));
    let stats = Arc::new(FollowStats::default());
    let st = stats.clone();
    // The end is taken now, not when the thread first opens the file: a record written in
    // between would otherwise be skipped.
    let start = (!opts.from_start)
        .then(|| std::fs::metadata(&path).ok())
        .flatten()
        .map(|m| (m.ino(), m.len()));
    let spawned = std::thread::Builder::new()
        .name("audit-follow".into())
        .spawn(move || Tail::new(path, opts, tx, st).run(start));
    if let Err(e) = spawned {
        tracing::error!("cannot start the audit follower: {e}");
    }
    Follower { events: rx, stats }
}

struct Tail {
    path: PathBuf,
    from_start: bool,
    poll: Duration,
    asm: Assembler,
}

impl Tail {
    fn new(
        path: PathBuf,
        o: FollowOptions,
        tx: mpsc::Sender<AuditEvent>,
        stats: Arc<FollowStats>,
    ) -> Tail {
        Tail {
            path,
            from_start: o.from_start,
            poll: o.poll,
            asm: Assembler::new(tx, stats, o.flush_after),
        }
    }

    /// `start`: the file (inode) and offset to begin at; without it (the log did not exist
    /// yet, or `from_start`), the first file is read from its beginning.
    fn run(mut self, start: Option<(u64, u64)>) {
        let mut first = true;
        while !self.asm.closed() {
            let file = match std::fs::File::open(&self.path) {
                Ok(f) => f,
                Err(e) => {
                    tracing::debug!("audit log {}: {e}; retrying", self.path.display());
                    std::thread::sleep(self.poll);
                    continue;
                }
            };
            let ino = file.metadata().map(|m| m.ino()).unwrap_or(0);
            let mut r = BufReader::new(file);
            if first && !self.from_start {
                // The same file as at the call: go on from where it ended then. A file that
                // replaced it since (rotation) holds only newer records: read it all.
                if let Some((start_ino, end)) = start
                    && start_ino == ino
                {
                    let _ = r.seek(SeekFrom::Start(end));
                }
            }
            first = false;
            if !self.read_until_replaced(&mut r, ino) {
                return;
            }
            self.asm.stats.reopened.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Reads `r` until the path points at another file (rotation) or shrank (truncation).
    /// Returns false when the receiver is gone.
    fn read_until_replaced(&mut self, r: &mut BufReader<std::fs::File>, ino: u64) -> bool {
        let mut partial: Vec<u8> = Vec::new();
        loop {
            let mut buf = Vec::new();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) => {}
                Ok(_) => {
                    partial.extend_from_slice(&buf);
                    if partial.ends_with(b"\n") {
                        let line = String::from_utf8_lossy(&partial).into_owned();
                        partial.clear();
                        if !self.asm.line(&line) {
                            return false;
                        }
                    }
                    continue;
                }
                Err(e) => tracing::warn!("audit log read: {e}"),
            }
            if !self.asm.flush(false) || self.asm.closed() {
                return false;
            }
            let pos = r.stream_position().unwrap_or(0);
            match std::fs::metadata(&self.path) {
                Ok(m) if m.ino() != ino || m.len() < pos => {
                    // The rest of the old file has been read; a cut-off last line is malformed.
                    if !partial.is_empty() {
                        self.asm.stats.malformed.fetch_add(1, Ordering::Relaxed);
                    }
                    return self.asm.flush(true);
                }
                _ => std::thread::sleep(self.poll),
            }
        }
    }
}

/// Turns records from any source into whole events on the channel: multi-record events at
/// their EOE (or after `flush_after`), user-space records at once.
pub(crate) struct Assembler {
    tx: mpsc::Sender<AuditEvent>,
    pub(crate) stats: Arc<FollowStats>,
    flush_after: Duration,
    pending: HashMap<(i64, u64), (AuditEvent, Instant)>,
}

impl Assembler {
    pub(crate) fn new(
        tx: mpsc::Sender<AuditEvent>,
        stats: Arc<FollowStats>,
        flush_after: Duration,
    ) -> Assembler {
        Assembler {
            tx,
            stats,
            flush_after,
            pending: HashMap::new(),
        }
    }

    pub(crate) fn closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// One log line; false when the receiver is gone.
    pub(crate) fn line(&mut self, line: &str) -> bool {
        if line.trim().is_empty() {
            return true;
        }
        match parse_line(line) {
            Ok(rec) => self.record(rec),
            Err(e) => {
                tracing::debug!("malformed audit line: {e}");
                self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                true
            }
        }
    }

    fn record(&mut self, rec: Record) -> bool {
        let key = (rec.time_ms, rec.serial);
        if rec.rtype == "EOE" {
            return match self.pending.remove(&key) {
                Some((ev, _)) => self.send(ev),
                None => true,
            };
        }
        let standalone = is_standalone(&rec.rtype) && !self.pending.contains_key(&key);
        let entry = self.pending.entry(key).or_insert_with(|| {
            (
                AuditEvent {
                    time_ms: rec.time_ms,
                    serial: rec.serial,
                    records: Vec::new(),
                },
                Instant::now(),
            )
        });
        entry.0.records.push(rec);
        if standalone && let Some((ev, _)) = self.pending.remove(&key) {
            return self.send(ev);
        }
        true
    }

    /// Sends events whose EOE never came (or all of them with `all`), oldest first.
    pub(crate) fn flush(&mut self, all: bool) -> bool {
        let mut due: Vec<(i64, u64)> = self
            .pending
            .iter()
            .filter(|(_, (_, t))| all || t.elapsed() >= self.flush_after)
            .map(|(k, _)| *k)
            .collect();
        due.sort();
        for k in due {
            if let Some((ev, _)) = self.pending.remove(&k)
                && !self.send(ev)
            {
                return false;
            }
        }
        true
    }

    fn send(&self, ev: AuditEvent) -> bool {
        match self.tx.try_send(ev) {
            Ok(()) => {
                self.stats.events.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn opts(capacity: usize) -> FollowOptions {
        FollowOptions {
            capacity,
            from_start: false,
            poll: Duration::from_millis(20),
            flush_after: Duration::from_millis(200),
        }
    }

    async fn next(f: &mut Follower) -> AuditEvent {
        tokio::time::timeout(Duration::from_secs(20), f.events.recv())
            .await
            .expect("no event within 20 s")
            .expect("follower ended")
    }

    #[tokio::test]
    async fn follows_appends_groups_by_eoe_and_survives_rotation() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit.log");
        std::fs::write(&p, "type=USER_AUTH msg=audit(1.0:1): res=failed\n").unwrap();
        let mut o = opts(16);
        o.from_start = true;
        let mut f = follow_with(p.clone(), o);
        // Receiving the existing record proves the file is open before we append.
        assert_eq!(next(&mut f).await.serial, 1);
        let mut w = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        write!(w, "type=SYSCALL msg=audit(2.0:2): syscall=59 exe=\"/tmp/x\"\ngarbage\ntype=USER_CMD msg=audit(2.0:3): msg='exe=\"/usr/bin/sudo\" res=success'\ntype=PATH msg=audit(2.0:2): item=0 name=\"/tmp/x\"\ntype=EOE msg=audit(2.0:2): \n").unwrap();
        let a = next(&mut f).await;
        assert_eq!(a.serial, 3, "standalone record goes out at once");
        let b = next(&mut f).await;
        assert_eq!((b.serial, b.records.len()), (2, 2));
        assert_eq!(f.stats.malformed.load(Ordering::Relaxed), 1);
        // Rotate: move the file away, write a new one.
        std::fs::rename(&p, d.path().join("audit.log.1")).unwrap();
        std::fs::write(&p, "type=USER_AUTH msg=audit(3.0:4): res=failed\n").unwrap();
        let c = next(&mut f).await;
        assert_eq!(c.serial, 4);
        assert_eq!(f.stats.reopened.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn full_channel_drops_with_a_counter() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit.log");
        std::fs::write(&p, "").unwrap();
        let mut o = opts(2);
        o.from_start = true;
        let mut text = String::new();
        for i in 0..10 {
            text.push_str(&format!("type=USER_AUTH msg=audit(1.0:{i}): res=failed\n"));
        }
        std::fs::write(&p, text).unwrap();
        let mut f = follow_with(p, o);
        let first = next(&mut f).await;
        assert_eq!(first.serial, 0);
        while f.stats.events.load(Ordering::Relaxed) + f.dropped() < 10 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(f.dropped() >= 7, "dropped {}", f.dropped());
    }
}
