//! The simulated agents. Each is a real enrolled host (`POST /api/enroll` with a token from
//! `sentinel host token`, from a loopback address of its own as separate hosts would) that
//! runs the agent's own push client (`sentinel::feed::push::Pusher`: spool, batching, retry
//! with backoff, heartbeats from a `HealthSource`), fed an anomaly and a snapshot on the
//! agent's schedule. So the payloads are the agent's (its types, its serializers), and a
//! change of the wire format or of the client's retry shows up here.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use sentinel::feed::fleet::{EnrolAnswer, EnrolRequest, HealthFn};
use sentinel::feed::push::{Observer, Outcome, PushConfig, Pusher, Sent};
use sentinel::health::{AgentHealth, HealthPart, HealthSource, Identity};
use sentinel::model::Level;
use tokio::sync::watch;

use super::tally::Tally;

/// The agent's schedule, already divided by the time compression.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    pub heartbeat: Duration,
    pub anomaly: Duration,
    pub snapshot: Duration,
}

impl Schedule {
    /// The real agent's: a heartbeat every 30 s (`DEFAULT_HEARTBEAT_SECS`), a snapshot every
    /// 5 minutes (`DEFAULT_SNAPSHOT_SECS`), and here an anomaly a minute; `compression`
    /// times faster.
    pub fn compressed(compression: f64) -> Schedule {
        use sentinel::feed::fleet::{DEFAULT_HEARTBEAT_SECS, DEFAULT_SNAPSHOT_SECS};
        let f = |secs: u64| Duration::from_secs_f64(secs as f64 / compression.max(0.001));
        Schedule {
            heartbeat: f(DEFAULT_HEARTBEAT_SECS),
            anomaly: f(60),
            snapshot: f(DEFAULT_SNAPSHOT_SECS),
        }
    }
}

/// What the agents handed to their push clients (the database must hold exactly this).
#[derive(Default)]
pub struct Queued {
    pub anomalies: AtomicU64,
    pub snapshots: AtomicU64,
}

/// A distinct loopback address per simulated host (all of 127/8 reaches the server), so
/// that per-address limits (enrolment, sign-in) see separate hosts.
pub fn local_addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        1 + (i / 62_500) as u8,
        ((i / 250) % 250) as u8,
        (i % 250 + 1) as u8,
    ))
}

/// A number in [0, 1) from (i, salt): spreads the agents' phases deterministically.
pub fn spread(i: usize, salt: u64) -> f64 {
    let mut z = (i as u64)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(salt);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Enrols `hosts` with `token`, eight at a time: their ingest keys, in order.
pub async fn enroll_all(base: &str, token: &str, hosts: &[String]) -> anyhow::Result<Vec<String>> {
    let gate = Arc::new(tokio::sync::Semaphore::new(8));
    let mut set = tokio::task::JoinSet::new();
    for (i, host) in hosts.iter().enumerate() {
        let (gate, base, token, host) = (
            gate.clone(),
            base.to_string(),
            token.to_string(),
            host.clone(),
        );
        set.spawn(async move {
            let _permit = gate.acquire().await?;
            let c = reqwest::Client::builder()
                .local_address(local_addr(i))
                .timeout(Duration::from_secs(60))
                .build()?;
            let r = c
                .post(format!("{base}/api/enroll"))
                .json(&EnrolRequest {
                    token,
                    host: host.clone(),
                })
                .send()
                .await
                .with_context(|| format!("enrolling {host}"))?;
            let status = r.status();
            if !status.is_success() {
                bail!(
                    "enrolling {host}: HTTP {status} {}",
                    r.text().await.unwrap_or_default()
                );
            }
            let a: EnrolAnswer = r.json().await?;
            anyhow::Ok((i, a.api_key))
        });
    }
    let mut keys = vec![String::new(); hosts.len()];
    while let Some(r) = set.join_next().await {
        let (i, k) = r??;
        keys[i] = k;
    }
    Ok(keys)
}

/// The probes a healthy agent reports attached (what the server's agent page shows).
const HOOKS: [&str; 6] = [
    "sched_process_exec",
    "sched_process_fork",
    "sys_enter_openat",
    "sys_enter_connect",
    "sys_exit_connect",
    "sched_process_exit",
];

/// The collector's part of a simulated agent's health: every hook attached, a steady event
/// rate, no losses.
struct Collector {
    started: Instant,
}

impl HealthPart for Collector {
    fn fill(&self, h: &mut AgentHealth) {
        h.hooks.attached = HOOKS.iter().map(|s| s.to_string()).collect();
        h.hooks.syscall_args = "full".into();
        let secs = self.started.elapsed().as_secs();
        for (kind, per_sec) in [("exec", 5), ("open", 400), ("connect", 20)] {
            h.events.per_kind.insert(kind.into(), secs * per_sec);
        }
        h.events.last_event_ns = Some(sentinel::store::now_ns());
    }
}

/// One simulated agent's setting.
pub struct AgentSpec {
    pub index: usize,
    pub host: String,
    pub key: String,
    pub base: String,
    pub spool: PathBuf,
    pub schedule: Schedule,
    /// A real snapshot (`sentinel::feed::fleet::take_snapshot` of this machine), renamed.
    pub snapshot: Arc<serde_json::Value>,
}

/// The request kind the bench reports an outcome under.
pub fn kind_of(sent: Sent) -> &'static str {
    match sent {
        Sent::Heartbeat => "heartbeat",
        Sent::Batch { snapshots, .. } if snapshots > 0 => "snapshot",
        Sent::Batch { .. } => "anomaly batch",
    }
}

/// Runs one agent until `stop` turns true: starts its push client after a spread start
/// (so heartbeats do not all fall on the same instant), then queues an anomaly and a
/// snapshot on its schedule, each at its own phase. Returns the push client, everything
/// queued so far flushed to its spool, for the drain.
pub async fn run(
    spec: AgentSpec,
    tally: Arc<Tally>,
    sent: Arc<Queued>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Pusher> {
    let s = spec.schedule;
    let start = tokio::time::Instant::now() + s.heartbeat.mul_f64(spread(spec.index, 1));
    tokio::select! {
        _ = tokio::time::sleep_until(start) => {}
        _ = stop.wait_for(|v| *v) => {}
    }
    let health = HealthSource::new(Identity {
        host: spec.host.clone(),
        config_hash: "load-bench".into(),
    });
    health.add(Arc::new(Collector {
        started: Instant::now(),
    }));
    let mut cfg = PushConfig::new(&spec.base, &spec.key, spec.spool.clone());
    cfg.host = Some(spec.host.clone());
    cfg.heartbeat = Some((s.heartbeat, HealthFn(health.clone())));
    cfg.observer = Some(Observer(Arc::new(move |o: Outcome| {
        tally.record(kind_of(o.sent), o.status, o.latency)
    })));
    let pusher = Pusher::start(cfg)?;
    health.add(Arc::new(pusher.health()));
    let now = tokio::time::Instant::now();
    let mut next_anomaly = now + s.anomaly.mul_f64(spread(spec.index, 2));
    let mut next_snapshot = now + s.snapshot.mul_f64(spread(spec.index, 3));
    let mut n = 0u64;
    while !*stop.borrow() {
        let next = next_anomaly.min(next_snapshot);
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.wait_for(|v| *v) => break,
        }
        let now = tokio::time::Instant::now();
        if now >= next_anomaly {
            n += 1;
            let level = [Level::Low, Level::Medium, Level::High, Level::Critical][n as usize % 4];
            let id = format!("{}-{n}", spec.host);
            let a = crate::dash::anomaly(&spec.host, "load", &id, level);
            pusher.send_anomaly(a).await?;
            sent.anomalies.fetch_add(1, Ordering::Relaxed);
            next_anomaly += s.anomaly;
        }
        if now >= next_snapshot {
            let mut v = (*spec.snapshot).clone();
            if let Some(sys) = v.get_mut("system").and_then(|x| x.as_object_mut()) {
                sys.insert("hostname".into(), spec.host.clone().into());
            }
            pusher.send_snapshot(v).await?;
            sent.snapshots.fetch_add(1, Ordering::Relaxed);
            next_snapshot += s.snapshot;
        }
    }
    pusher.flush().await?;
    Ok(pusher)
}

/// Batches still waiting in the agents' spools.
pub fn pending(pushers: &[Pusher]) -> usize {
    pushers.iter().map(Pusher::pending).sum()
}

/// Batches the server refused as malformed (moved to spool/rejected, never retried).
pub fn rejected(spool_root: &Path) -> usize {
    std::fs::read_dir(spool_root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            std::fs::read_dir(e.path().join("rejected"))
                .map(|r| r.count())
                .unwrap_or(0)
        })
        .sum()
}
