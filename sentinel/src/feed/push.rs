//! The agent's push client to a Sentinel server (`sentinel run --push URL`, with an ingest
//! key from `[push] api_key_file` or `SENTINEL_API_KEY`; see `resolve_key`).
//! Items are batched, each batch is written to a spool directory (fsync + rename) before it
//! is sent, sent oldest first and deleted only once the server accepted it. So a server
//! outage or an agent restart loses nothing; a retried batch keeps its `batch_id`, which the
//! server de-duplicates, so nothing arrives twice either. Batches the server rejects as
//! malformed (4xx) move to `spool/rejected/` instead of blocking the queue forever.
//! After each accepted batch (and every `verdict_poll_secs` when idle) it fetches the
//! analysts' verdicts given on the server for this host and applies them (verdicts.rs).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::incident::Incident;
use crate::model::Anomaly;

/// Where unsent batches wait by default.
pub const DEFAULT_SPOOL: &str = "/var/lib/sentinel/push-spool";

/// The body of `POST /api/ingest` (docs/server.md, openapi.json).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestBatch {
    /// Unique per batch; a batch sent twice is stored once.
    pub batch_id: String,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub anomalies: Vec<Anomaly>,
    /// Host snapshots (C-Sentinel fingerprint JSON, `system.hostname` names the host).
    #[serde(default)]
    pub snapshots: Vec<serde_json::Value>,
    /// Behaviour fingerprints (opaque JSON objects).
    #[serde(default)]
    pub fingerprints: Vec<serde_json::Value>,
    /// Session incidents: each state as it grows (the server keeps the highest `step_count`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incidents: Vec<Incident>,
}

impl IngestBatch {
    pub fn len(&self) -> usize {
        self.anomalies.len() + self.snapshots.len() + self.fingerprints.len() + self.incidents.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The `[push]` section of the configuration: where the agent sends its data and where its
/// credential lives.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PushSettings {
    /// Server base URL (`--push` overrides).
    pub url: Option<String>,
    /// File holding the agent's ingest key (one line; mode 0600 or stricter, owned by the
    /// agent's user). `--api-key-file` overrides; `SENTINEL_API_KEY` is the alternative.
    pub api_key_file: Option<PathBuf>,
    /// Where unsent batches wait (default /var/lib/sentinel/push-spool).
    pub spool_dir: Option<PathBuf>,
    /// How often an idle agent asks the server for analysts' verdicts on its host (it also
    /// asks after every batch the server accepted; feed/verdicts.rs). Default 30.
    pub verdict_poll_secs: Option<u64>,
    /// Seconds between two heartbeats (the agent's health) to the server, which calls the
    /// host stale after three missed. Default 30.
    pub heartbeat_interval_secs: Option<u64>,
    /// Seconds between two host snapshots pushed (listeners, configuration files, audit
    /// summary, memory and load for the host page). Default 300.
    pub snapshot_interval_secs: Option<u64>,
    /// Most bytes the spool may hold while the server is unreachable: beyond it the oldest
    /// batches are dropped, counted, and reported in the heartbeat and the run summary.
    /// Default 256 MiB.
    pub spool_max_bytes: Option<u64>,
}

/// The spool cap when `[push] spool_max_bytes` is not set.
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 256 << 20;

/// How often an idle agent asks for verdicts by default.
pub const DEFAULT_VERDICT_POLL_SECS: u64 = 30;

/// Environment variable that may carry the agent's key.
pub const KEY_ENV: &str = "SENTINEL_API_KEY";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("API key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "API key file {path} is readable or writable by other users (mode {mode:04o}); \
         run: chmod 600 {path}"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("API key file {0} is empty")]
    Empty(PathBuf),
    #[error(
        "--push needs an API key: [push] api_key_file, --api-key-file, or the {KEY_ENV} environment variable"
    )]
    Missing,
}

/// Reads a key file, refusing one that group or others may read or write.
pub fn read_key_file(path: &Path) -> Result<String, KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let key = text.trim();
    if key.is_empty() {
        return Err(KeyError::Empty(path.to_path_buf()));
    }
    Ok(key.to_string())
}

/// Where the agent's key comes from, first match wins: `--api-key` (visible to every local
/// user in the process list: warned about), a key file (`--api-key-file` or `[push]
/// api_key_file`), then `SENTINEL_API_KEY`.
pub fn resolve_key(
    cli_key: Option<&str>,
    key_file: Option<&Path>,
    env_key: Option<&str>,
) -> Result<String, KeyError> {
    if let Some(k) = cli_key.map(str::trim).filter(|k| !k.is_empty()) {
        tracing::warn!(
            "--api-key puts the key on the command line, where every local user can read it \
             (ps, /proc/PID/cmdline); use [push] api_key_file (mode 0600) or {KEY_ENV}"
        );
        return Ok(k.to_string());
    }
    if let Some(p) = key_file {
        return read_key_file(p);
    }
    env_key
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .ok_or(KeyError::Missing)
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("push spool {path}: {source}")]
    Spool {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("push: cannot build HTTP client: {0}")]
    Client(String),
    #[error("push: invalid server URL {0:?}")]
    Url(String),
    #[error("push client stopped")]
    Stopped,
}

#[derive(Clone, Debug)]
pub struct PushConfig {
    /// Server base URL, e.g. https://sentinel.example.org
    pub url: String,
    pub api_key: String,
    /// Where unsent batches wait (default /var/lib/sentinel/push-spool).
    pub spool_dir: PathBuf,
    pub host: Option<String>,
    pub batch_max: usize,
    pub flush_every: Duration,
    pub max_backoff: Duration,
    pub timeout: Duration,
    /// The agent store: verdicts given on the server are fetched and applied to it
    /// (feed/verdicts.rs). None: not fetched.
    pub store: Option<PathBuf>,
    pub verdict_poll: Duration,
    /// Oldest batches are dropped beyond this many bytes in the spool (0: no cap).
    pub spool_max_bytes: u64,
    /// Send a heartbeat this often with the health snapshot this gives (feed/fleet.rs).
    pub heartbeat: Option<(Duration, super::fleet::HealthFn)>,
    /// Told of every request's outcome and latency (the load bench's simulated agents
    /// measure through the real client this way). None: nobody listens.
    pub observer: Option<Observer>,
}

/// What a push request carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// A batch from the spool: its anomaly and snapshot counts.
    Batch {
        anomalies: usize,
        snapshots: usize,
    },
    Heartbeat,
}

/// One request's outcome: the HTTP status, or None when no answer came (connection
/// refused or reset, timeout).
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    pub sent: Sent,
    pub status: Option<u16>,
    pub latency: Duration,
}

/// A listener for `Outcome`s (`PushConfig::observer`).
#[derive(Clone)]
pub struct Observer(pub Arc<dyn Fn(Outcome) + Send + Sync>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

impl Observer {
    pub(super) fn tell(this: &Option<Observer>, outcome: Outcome) {
        if let Some(o) = this {
            (o.0)(outcome);
        }
    }
}

impl PushConfig {
    pub fn new(url: &str, api_key: &str, spool_dir: PathBuf) -> PushConfig {
        PushConfig {
            url: url.trim_end_matches('/').to_string(),
            api_key: api_key.to_string(),
            spool_dir,
            host: None,
            batch_max: 500,
            flush_every: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
            store: None,
            verdict_poll: Duration::from_secs(DEFAULT_VERDICT_POLL_SECS),
            spool_max_bytes: DEFAULT_SPOOL_MAX_BYTES,
            heartbeat: None,
            observer: None,
        }
    }
}

pub(super) enum Item {
    Anomaly(Box<Anomaly>),
    Snapshot(serde_json::Value),
    Fingerprint(serde_json::Value),
    Incident(Box<Incident>),
    Flush(oneshot::Sender<()>),
}

/// Handle to the running push client.
pub struct Pusher {
    tx: mpsc::Sender<Item>,
    spool: PathBuf,
    batcher: tokio::task::JoinHandle<()>,
    sender: tokio::task::JoinHandle<()>,
    verdicts: Option<tokio::task::JoinHandle<()>>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    stats: Arc<Stats>,
}

#[derive(Default, Debug)]
pub struct Stats {
    pub batches_sent: AtomicU64,
    pub items_sent: AtomicU64,
    pub failures: AtomicU64,
    pub rejected: AtomicU64,
    /// Server verdicts applied (or refused) and acknowledged.
    pub verdicts: AtomicU64,
    /// Batches (and items) dropped, oldest first, to keep the spool under its cap.
    pub spool_dropped_batches: AtomicU64,
    pub spool_dropped_items: AtomicU64,
    /// The cap (`PushConfig::spool_max_bytes`), for the agent's health.
    pub spool_max_bytes: AtomicU64,
    /// Heartbeats the server accepted, and those that failed.
    pub heartbeats: AtomicU64,
    pub heartbeat_failures: AtomicU64,
    /// Failed attempts since the last accepted batch (0: pushing works, or nothing to send).
    pub consecutive_failures: AtomicU64,
    /// Wall-clock time of the last accepted batch (ns, 0: none yet).
    pub last_success_ns: std::sync::atomic::AtomicI64,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PushError + '_ {
    move |source| PushError::Spool {
        path: path.to_path_buf(),
        source,
    }
}

fn random_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // Uniqueness still holds through the nanosecond clock and pid.
        return format!("{}-{}", crate::store::now_ns(), std::process::id());
    }
    data_encoding::HEXLOWER.encode(&b)
}

/// Spool files sort by name in creation order.
pub(super) fn spool_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Writes a batch durably: temp file, fsync, rename, fsync of the directory.
pub fn spool_write(dir: &Path, seq: u64, batch: &IngestBatch) -> Result<PathBuf, PushError> {
    use std::io::Write;
    let name = format!(
        "{:020}-{:06}-{}.json",
        crate::store::now_ns(),
        seq % 1_000_000,
        batch.batch_id
    );
    let path = dir.join(name);
    let tmp = path.with_extension("tmp");
    let body = serde_json::to_vec(batch).map_err(|e| PushError::Spool {
        path: path.clone(),
        source: e.into(),
    })?;
    let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(&body).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(path)
}

impl Pusher {
    pub fn start(cfg: PushConfig) -> Result<Pusher, PushError> {
        if !(cfg.url.starts_with("http://") || cfg.url.starts_with("https://")) {
            return Err(PushError::Url(cfg.url.clone()));
        }
        std::fs::create_dir_all(cfg.spool_dir.join("rejected")).map_err(io_err(&cfg.spool_dir))?;
        // Leftover temp files are batches that never finished being written: never sent
        // and never acknowledged to the caller, so they are dropped.
        if let Ok(rd) = std::fs::read_dir(&cfg.spool_dir) {
            for e in rd.flatten() {
                if e.path().extension().is_some_and(|x| x == "tmp") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| PushError::Client(e.to_string()))?;
        let (tx, rx) = mpsc::channel(10_000);
        let wake = Arc::new(Notify::new());
        let stats = Arc::new(Stats::default());
        stats
            .spool_max_bytes
            .store(cfg.spool_max_bytes, Ordering::Relaxed);
        let inflight = Arc::new(std::sync::Mutex::new(None));
        let batcher = tokio::spawn(batch_loop(
            cfg.clone(),
            rx,
            wake.clone(),
            stats.clone(),
            inflight.clone(),
        ));
        let heartbeat = cfg.heartbeat.clone().and_then(|(every, health)| {
            let host = cfg.host.clone()?;
            Some(tokio::spawn(super::fleet::heartbeat_loop(
                super::fleet::Beat {
                    client: client.clone(),
                    url: cfg.url.clone(),
                    api_key: cfg.api_key.clone(),
                    host,
                    every,
                    health,
                    observer: cfg.observer.clone(),
                },
                stats.clone(),
            )))
        });
        let accepted = Arc::new(Notify::new());
        let verdicts = cfg.store.clone().map(|store| {
            let counted = stats.clone();
            tokio::spawn(super::verdicts::poll_loop(
                super::verdicts::Poll {
                    client: client.clone(),
                    url: cfg.url.clone(),
                    api_key: cfg.api_key.clone(),
                    store,
                    every: cfg.verdict_poll,
                },
                accepted.clone(),
                move |n| {
                    counted.verdicts.fetch_add(n as u64, Ordering::Relaxed);
                },
            ))
        });
        let sender = tokio::spawn(send_loop(
            cfg.clone(),
            client,
            wake,
            accepted,
            stats.clone(),
            inflight,
        ));
        Ok(Pusher {
            tx,
            spool: cfg.spool_dir,
            batcher,
            sender,
            verdicts,
            heartbeat,
            stats,
        })
    }

    pub async fn send_anomaly(&self, a: Anomaly) -> Result<(), PushError> {
        self.tx
            .send(Item::Anomaly(Box::new(a)))
            .await
            .map_err(|_| PushError::Stopped)
    }

    pub async fn send_snapshot(&self, s: serde_json::Value) -> Result<(), PushError> {
        self.tx
            .send(Item::Snapshot(s))
            .await
            .map_err(|_| PushError::Stopped)
    }

    pub async fn send_fingerprint(&self, f: serde_json::Value) -> Result<(), PushError> {
        self.tx
            .send(Item::Fingerprint(f))
            .await
            .map_err(|_| PushError::Stopped)
    }

    /// Queues an incident's current state (sent again at every update; same id).
    pub async fn send_incident(&self, i: Incident) -> Result<(), PushError> {
        self.tx
            .send(Item::Incident(Box::new(i)))
            .await
            .map_err(|_| PushError::Stopped)
    }

    /// Returns once everything sent so far is on disk in the spool.
    pub async fn flush(&self) -> Result<(), PushError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Item::Flush(tx))
            .await
            .map_err(|_| PushError::Stopped)?;
        rx.await.map_err(|_| PushError::Stopped)
    }

    /// Batches on disk and not yet accepted by the server.
    pub fn pending(&self) -> usize {
        spool_files(&self.spool).len()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The push client's part of the agent's health (feed/push_health.rs); holds no sender,
    /// so it never keeps the client from stopping.
    pub fn health(&self) -> super::push_health::PushHealth {
        super::push_health::PushHealth {
            stats: self.stats.clone(),
            queue: self.tx.downgrade(),
            spool: self.spool.clone(),
        }
    }

    /// Flushes to disk, gives the sender up to `grace` to deliver, then stops. Whatever is
    /// still unsent stays in the spool for the next start.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.flush().await;
        let deadline = tokio::time::Instant::now() + grace;
        while !spool_files(&self.spool).is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(self.tx);
        let _ = self.batcher.await;
        self.sender.abort();
        let _ = self.sender.await;
        if let Some(v) = self.verdicts {
            v.abort();
            let _ = v.await;
        }
        if let Some(h) = self.heartbeat {
            h.abort();
            let _ = h.await;
        }
    }
}

/// The batch the sender is posting (never dropped by the spool cap while in flight).
type Inflight = Arc<std::sync::Mutex<Option<PathBuf>>>;

async fn batch_loop(
    cfg: PushConfig,
    mut rx: mpsc::Receiver<Item>,
    wake: Arc<Notify>,
    stats: Arc<Stats>,
    inflight: Inflight,
) {
    let seq = AtomicU64::new(0);
    let mut batch = IngestBatch {
        host: cfg.host.clone(),
        ..Default::default()
    };
    let mut tick = tokio::time::interval(cfg.flush_every);
    let write = |batch: &mut IngestBatch| {
        if batch.is_empty() {
            return;
        }
        batch.batch_id = random_id();
        match spool_write(&cfg.spool_dir, seq.fetch_add(1, Ordering::Relaxed), batch) {
            Ok(_) => {
                *batch = IngestBatch {
                    host: cfg.host.clone(),
                    ..Default::default()
                };
                let busy = inflight.lock().ok().and_then(|g| g.clone());
                let (n, items) =
                    super::fleet::enforce_cap(&cfg.spool_dir, cfg.spool_max_bytes, busy.as_deref());
                if n > 0 {
                    stats.spool_dropped_batches.fetch_add(n, Ordering::Relaxed);
                    stats
                        .spool_dropped_items
                        .fetch_add(items, Ordering::Relaxed);
                    tracing::warn!(
                        "push spool over {} bytes: dropped the {n} oldest batches ({items} items)",
                        cfg.spool_max_bytes
                    );
                }
                wake.notify_one();
            }
            // Keep the items in memory and try again on the next tick.
            Err(e) => tracing::error!("{e}"),
        }
    };
    loop {
        tokio::select! {
            item = rx.recv() => match item {
                Some(Item::Anomaly(a)) => batch.anomalies.push(*a),
                Some(Item::Snapshot(s)) => batch.snapshots.push(s),
                Some(Item::Fingerprint(f)) => batch.fingerprints.push(f),
                Some(Item::Incident(i)) => batch.incidents.push(*i),
                Some(Item::Flush(done)) => {
                    write(&mut batch);
                    let _ = done.send(());
                }
                None => {
                    write(&mut batch);
                    return;
                }
            },
            _ = tick.tick() => write(&mut batch),
        }
        if batch.len() >= cfg.batch_max {
            write(&mut batch);
        }
    }
}

enum Verdict {
    Accepted,
    Rejected(String),
    Retry(String),
}

async fn post(cfg: &PushConfig, client: &reqwest::Client, body: Vec<u8>, sent: Sent) -> Verdict {
    let started = std::time::Instant::now();
    let r = client
        .post(format!("{}/api/ingest", cfg.url))
        .bearer_auth(&cfg.api_key)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    Observer::tell(
        &cfg.observer,
        Outcome {
            sent,
            status: r.as_ref().ok().map(|r| r.status().as_u16()),
            latency: started.elapsed(),
        },
    );
    match r {
        Ok(r) if r.status().is_success() => Verdict::Accepted,
        Ok(r) => {
            let s = r.status();
            // Auth errors, overload and server errors may heal; a malformed batch never will.
            if s.is_server_error()
                || s.as_u16() == 401
                || s.as_u16() == 403
                || s.as_u16() == 408
                || s.as_u16() == 429
            {
                Verdict::Retry(format!("HTTP {s}"))
            } else {
                Verdict::Rejected(format!("HTTP {s}"))
            }
        }
        Err(e) => Verdict::Retry(e.to_string()),
    }
}

async fn send_loop(
    cfg: PushConfig,
    client: reqwest::Client,
    wake: Arc<Notify>,
    accepted: Arc<Notify>,
    stats: Arc<Stats>,
    inflight: Inflight,
) {
    let mut backoff = Duration::from_millis(250);
    loop {
        let files = spool_files(&cfg.spool_dir);
        let Some(path) = files.first().cloned() else {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
            continue;
        };
        let body = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("push spool {}: {e}", path.display());
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let (items, sent) = serde_json::from_slice::<IngestBatch>(&body)
            .map(|b| {
                let sent = Sent::Batch {
                    anomalies: b.anomalies.len(),
                    snapshots: b.snapshots.len(),
                };
                (b.len(), sent)
            })
            .unwrap_or((
                0,
                Sent::Batch {
                    anomalies: 0,
                    snapshots: 0,
                },
            ));
        if let Ok(mut g) = inflight.lock() {
            *g = Some(path.clone());
        }
        let outcome = post(&cfg, &client, body, sent).await;
        if let Ok(mut g) = inflight.lock() {
            *g = None;
        }
        match outcome {
            Verdict::Accepted => {
                let _ = std::fs::remove_file(&path);
                stats.batches_sent.fetch_add(1, Ordering::Relaxed);
                stats.items_sent.fetch_add(items as u64, Ordering::Relaxed);
                stats.consecutive_failures.store(0, Ordering::Relaxed);
                stats
                    .last_success_ns
                    .store(crate::store::now_ns(), Ordering::Relaxed);
                backoff = Duration::from_millis(250);
                // Verdicts given since are fetched on the heels of each push.
                accepted.notify_one();
            }
            Verdict::Rejected(why) => {
                tracing::warn!(
                    "server rejected push batch {} ({why}); kept in spool/rejected",
                    path.display()
                );
                stats.rejected.fetch_add(1, Ordering::Relaxed);
                if let Some(name) = path.file_name() {
                    let _ = std::fs::rename(&path, cfg.spool_dir.join("rejected").join(name));
                }
            }
            Verdict::Retry(why) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                stats.consecutive_failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("push failed ({why}); retrying in {backoff:?}");
                // Jitter spreads a fleet's retries after a server restart.
                let jitter = Duration::from_millis(u64::from(random_id().as_bytes()[0]) % 100);
                tokio::time::sleep(backoff + jitter).await;
                backoff = (backoff * 2).min(cfg.max_backoff);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_files_are_durable_and_ordered() {
        let d = tempfile::tempdir().unwrap();
        let b = |id: &str| IngestBatch {
            batch_id: id.into(),
            host: Some("h".into()),
            ..Default::default()
        };
        let p1 = spool_write(d.path(), 1, &b("a")).unwrap();
        let p2 = spool_write(d.path(), 2, &b("b")).unwrap();
        assert_eq!(spool_files(d.path()), vec![p1.clone(), p2]);
        let back: IngestBatch = serde_json::from_slice(&std::fs::read(p1).unwrap()).unwrap();
        assert_eq!(back.batch_id, "a");
    }

    #[test]
    fn key_files_must_be_private_and_the_command_line_key_comes_first() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("key");
        std::fs::write(&f, "snt_filekey\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = resolve_key(None, Some(&f), Some("snt_env")).unwrap_err();
        assert!(
            matches!(e, KeyError::Permissions { mode: 0o644, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(resolve_key(None, Some(&f), None).unwrap(), "snt_filekey");
        assert_eq!(
            resolve_key(Some("snt_cli"), Some(&f), None).unwrap(),
            "snt_cli"
        );
        assert_eq!(
            resolve_key(None, None, Some(" snt_env ")).unwrap(),
            "snt_env"
        );
        assert!(matches!(
            resolve_key(None, None, None),
            Err(KeyError::Missing)
        ));
        std::fs::write(&f, "\n").unwrap();
        assert!(matches!(
            resolve_key(None, Some(&f), None),
            Err(KeyError::Empty(_))
        ));
        let missing = d.path().join("nope");
        assert!(matches!(
            resolve_key(None, Some(&missing), None),
            Err(KeyError::Read { .. })
        ));
    }

    #[test]
    fn bad_url_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            assert!(matches!(
                Pusher::start(PushConfig::new("ftp://x", "k", d.path().into())),
                Err(PushError::Url(_))
            ));
        });
    }
}
