//! The server load generator (issue 13 part 7): N simulated agents (tasks of one process,
//! each a real enrolled host running the agent's own push client), dashboard readers and
//! live-feed clients against a real `sentinel serve` child on SQLite or PostgreSQL, with
//! optional faults (server or database restarts) during the load. It reports latency per
//! request kind, errors by status, what the agents queued against what the database holds,
//! database growth, and the server's CPU time and peak RSS. `cargo xtask bench --server`
//! runs it through the `sentinel-load` binary (tests/bin/load.rs); tests/server_load.rs runs
//! it small. It lives here, next to the other test helpers, because it needs the `sentinel`
//! library (wire types, push client, test clusters), which xtask does not build.

pub mod agents;
pub mod readers;
pub mod served;
pub mod tally;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use served::Backend;
use served::{Database, Served, sentinel_cmd};
use tally::{Quantiles, Tally};

/// A fault injected during the load, at a time after the agents started.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Fault {
    /// SIGTERM to `sentinel serve`, then started again on the same port.
    RestartServer { at_secs: f64 },
    /// PostgreSQL stopped (fast) and started again.
    RestartDatabase { at_secs: f64 },
}

impl Fault {
    /// `server@SECS` or `database@SECS`.
    pub fn parse(s: &str) -> anyhow::Result<Fault> {
        let (what, at) = s
            .split_once('@')
            .with_context(|| format!("fault {s:?}: expected server@SECS or database@SECS"))?;
        let at_secs: f64 = at.parse().with_context(|| format!("fault {s:?}: time"))?;
        match what {
            "server" => Ok(Fault::RestartServer { at_secs }),
            "database" | "postgres" => Ok(Fault::RestartDatabase { at_secs }),
            _ => bail!("fault {s:?}: expected server@SECS or database@SECS"),
        }
    }

    fn at(self) -> f64 {
        match self {
            Fault::RestartServer { at_secs } | Fault::RestartDatabase { at_secs } => at_secs,
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    pub agents: usize,
    /// How much faster than real time the agents' schedule runs (10: a heartbeat every 3 s).
    pub compression: f64,
    /// How long the agents generate load.
    pub secs: f64,
    pub readers: usize,
    pub live: usize,
    pub faults: Vec<Fault>,
    /// Longest wait for the agents' spools to drain after the load.
    pub drain_secs: f64,
    /// Scratch space (the database; spools go to /dev/shm when there is one).
    pub work: PathBuf,
}

/// The figures of one run (JSON from `sentinel-load`, read by `cargo xtask bench --server`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    pub backend: String,
    pub agents: usize,
    pub compression: f64,
    /// Real-time agents the request rate equals (agents x compression).
    pub equivalent_agents: f64,
    pub load_secs: f64,
    /// From the end of the load until every spool was empty.
    pub drain_secs: f64,
    /// Answered requests of every kind, per second of load and drain.
    pub requests: u64,
    pub requests_per_sec: f64,
    pub latency: Vec<Quantiles>,
    /// Errors by "kind: status" ("no answer" when the connection failed).
    pub errors: BTreeMap<String, u64>,
    /// What the agents queued, what the database holds.
    pub queued_anomalies: u64,
    pub stored_anomalies: u64,
    pub queued_snapshots: u64,
    pub stored_snapshots: u64,
    /// Batches the server refused as malformed (never retried), dropped by the spool cap,
    /// and still in a spool when the drain deadline passed.
    pub rejected_batches: u64,
    pub spool_dropped_batches: u64,
    pub undelivered_batches: u64,
    pub heartbeats_accepted: u64,
    pub live_frames: u64,
    pub db_bytes_start: u64,
    pub db_bytes_end: u64,
    /// CPU seconds (utime + stime) over load and drain: `sentinel serve`, and PostgreSQL's
    /// processes (0 on SQLite, which runs inside the server).
    pub server_cpu_secs: f64,
    pub database_cpu_secs: f64,
    pub server_rss_peak_kib: u64,
    /// CPU seconds of this load generator itself over load and drain (it shares the
    /// machine with the server).
    pub generator_cpu_secs: f64,
    pub faults: Vec<Fault>,
    /// /proc/loadavg when the load started (other work on the machine).
    pub loadavg: String,
}

impl Report {
    /// Items queued by the agents and not in the database (negative: stored twice).
    pub fn lost(&self) -> i64 {
        (self.queued_anomalies + self.queued_snapshots) as i64
            - (self.stored_anomalies + self.stored_snapshots) as i64
    }

    /// The p99 of a request kind, ms.
    pub fn p99(&self, kind: &str) -> Option<f64> {
        self.latency
            .iter()
            .find(|q| q.kind == kind)
            .map(|q| q.p99_ms)
    }

    /// The worst p99 of the agents' requests (heartbeat, anomaly batch, snapshot), ms.
    pub fn ingest_p99(&self) -> f64 {
        ["heartbeat", "anomaly batch", "snapshot"]
            .iter()
            .filter_map(|k| self.p99(k))
            .fold(0.0, f64::max)
    }
}

/// Lets the process hold a socket per agent connection (and the server, its child, too).
fn raise_open_files() {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

static RUNS: AtomicU64 = AtomicU64::new(0);

/// Runs `plan` against `sentinel serve` (binary `bin`) on `backend`.
pub async fn run(bin: &Path, backend: Backend, plan: &Plan) -> anyhow::Result<Report> {
    raise_open_files();
    let tag = format!(
        "sentinel-load-{}-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed),
        backend.name()
    );
    let dir = plan.work.join(&tag);
    let shm = Path::new("/dev/shm");
    let spools = if shm.is_dir() {
        shm.join(&tag)
    } else {
        dir.join("spool")
    };
    std::fs::create_dir_all(&dir)?;
    std::fs::create_dir_all(&spools)?;
    let r = run_in(bin, backend, plan, &dir, &spools).await;
    let _ = std::fs::remove_dir_all(&spools);
    if r.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("load: kept {} for inspection", dir.display());
    }
    r
}

async fn run_in(
    bin: &Path,
    backend: Backend,
    plan: &Plan,
    dir: &Path,
    spools: &Path,
) -> anyhow::Result<Report> {
    let config = dir.join("sentinel.toml");
    std::fs::write(&config, "# the load bench's server: defaults\n")?;
    let db = Database::create(backend, dir).await?;
    let with_db = |pre: &[&str], post: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = pre.iter().map(|s| s.to_string()).collect();
        v.extend(db.args());
        v.extend(post.iter().map(|s| s.to_string()));
        v
    };
    sentinel_cmd(
        bin,
        &config,
        &with_db(
            &["user"],
            &[
                "add",
                readers::VIEWER,
                "--role",
                "viewer",
                "--password-stdin",
            ],
        ),
        &format!("{}\n", readers::VIEWER_PASSWORD),
    )?;
    let mut server = Served::start(bin, &config, &db)?;
    let base = server.url();
    let uses = plan.agents.max(1).to_string();
    let token = sentinel_cmd(
        bin,
        &config,
        &with_db(&["host"], &["token", "--uses", &uses, "--expires", "1d"]),
        "",
    )?
    .trim()
    .to_string();
    let hosts: Arc<Vec<String>> =
        Arc::new((0..plan.agents).map(|i| format!("load-{i:05}")).collect());
    let keys = agents::enroll_all(&base, &token, &hosts).await?;
    let mut people = Vec::new();
    for j in 0..plan.readers + plan.live {
        people.push(readers::sign_in(&base, j).await?);
    }
    let snapshot = Arc::new(
        tokio::task::spawn_blocking(|| {
            sentinel::feed::fleet::take_snapshot(&sentinel::feed::fleet::Snapshots {
                every: Duration::from_secs(sentinel::feed::fleet::DEFAULT_SNAPSHOT_SECS),
                host: "template".into(),
                snapshot: Default::default(),
                audit: Default::default(),
            })
        })
        .await?,
    );

    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let db_bytes_start = db.bytes().await?;
    let me = std::process::id();
    let (cpu0, db_cpu0, gen0) = (
        server.cpu_secs(),
        db.cpu_secs(),
        served::cpu_secs(me, false),
    );
    let tally = Arc::new(Tally::default());
    let queued = Arc::new(agents::Queued::default());
    let frames = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop) = watch::channel(false);
    let schedule = agents::Schedule::compressed(plan.compression);
    let started = Instant::now();
    let mut fleet = tokio::task::JoinSet::new();
    for (i, (host, key)) in hosts.iter().zip(keys).enumerate() {
        let spec = agents::AgentSpec {
            index: i,
            host: host.clone(),
            key,
            base: base.clone(),
            spool: spools.join(host),
            schedule,
            snapshot: snapshot.clone(),
        };
        fleet.spawn(agents::run(
            spec,
            tally.clone(),
            queued.clone(),
            stop.clone(),
        ));
    }
    let mut watchers = tokio::task::JoinSet::new();
    for (j, (c, cookie)) in people.into_iter().enumerate() {
        if j < plan.readers {
            watchers.spawn(readers::read(
                c,
                cookie,
                base.clone(),
                hosts.clone(),
                j,
                tally.clone(),
                stop.clone(),
            ));
        } else {
            watchers.spawn(readers::watch_live(
                c,
                cookie,
                base.clone(),
                tally.clone(),
                frames.clone(),
                stop.clone(),
            ));
        }
    }

    // The faults, in time order, then the end of the load.
    let mut faults = plan.faults.clone();
    faults.sort_by(|a, b| a.at().total_cmp(&b.at()));
    for f in &faults {
        tokio::time::sleep_until((started + Duration::from_secs_f64(f.at())).into()).await;
        eprintln!("load: {f:?} at {:.1} s", started.elapsed().as_secs_f64());
        match f {
            Fault::RestartServer { .. } => tokio::task::block_in_place(|| server.restart())?,
            Fault::RestartDatabase { .. } => db.restart().await?,
        }
    }
    tokio::time::sleep_until((started + Duration::from_secs_f64(plan.secs)).into()).await;
    let load_secs = started.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    let mut pushers = Vec::new();
    while let Some(r) = fleet.join_next().await {
        pushers.push(r??);
    }
    // The drain: every spool empty, or the deadline.
    let drain_started = Instant::now();
    let deadline = drain_started + Duration::from_secs_f64(plan.drain_secs);
    while agents::pending(&pushers) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain_secs = drain_started.elapsed().as_secs_f64();
    let undelivered = agents::pending(&pushers) as u64;
    let (mut heartbeats, mut dropped) = (0, 0);
    for p in pushers {
        heartbeats += p.stats().heartbeats.load(Ordering::Relaxed);
        dropped += p.stats().spool_dropped_batches.load(Ordering::Relaxed);
        p.shutdown(Duration::ZERO).await;
    }
    let total_secs = started.elapsed().as_secs_f64();
    let (cpu1, db_cpu1, gen1) = (
        server.cpu_secs(),
        db.cpu_secs(),
        served::cpu_secs(me, false),
    );
    while watchers.join_next().await.is_some() {}

    // What the database holds, through the server's own store.
    let (store, _) = sentinel::server::backend::open(&db.config(), None)
        .await
        .context("opening the database to count")?;
    let stored_anomalies = u64::try_from(store.count_anomalies().await?).unwrap_or(0);
    let mut stored_snapshots = 0u64;
    for h in hosts.iter() {
        stored_snapshots += store.snapshot_series(h, 0).await?.len() as u64;
    }
    drop(store);
    let db_bytes_end = db.bytes().await?;
    let (_, rss) = server.stop()?;
    let requests = tally.answered();
    Ok(Report {
        backend: backend.name().into(),
        agents: plan.agents,
        compression: plan.compression,
        equivalent_agents: plan.agents as f64 * plan.compression,
        load_secs,
        drain_secs,
        requests,
        requests_per_sec: requests as f64 / total_secs,
        latency: tally.quantiles(),
        errors: tally.errors(),
        queued_anomalies: queued.anomalies.load(Ordering::Relaxed),
        stored_anomalies,
        queued_snapshots: queued.snapshots.load(Ordering::Relaxed),
        stored_snapshots,
        rejected_batches: agents::rejected(spools) as u64,
        spool_dropped_batches: dropped,
        undelivered_batches: undelivered,
        heartbeats_accepted: heartbeats,
        live_frames: frames.load(Ordering::Relaxed),
        db_bytes_start,
        db_bytes_end,
        server_cpu_secs: cpu1 - cpu0,
        database_cpu_secs: db_cpu1 - db_cpu0,
        server_rss_peak_kib: rss,
        generator_cpu_secs: gen1 - gen0,
        faults,
        loadavg: loadavg.trim().to_string(),
    })
}
