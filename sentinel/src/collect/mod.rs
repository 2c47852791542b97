//! Loading and attaching the kernel programs, draining the ring buffer, decoding records and
//! counting what was lost. The only room that touches aya.

mod batch;
mod btf;
mod drain;
mod fdpath;
mod health;
mod loader;
mod repeats;
mod tracefs;

use std::collections::BTreeSet;
use std::sync::Arc;

use sentinel_common::Kind;
use serde::{Deserialize, Serialize};

pub use drain::{KindCounts, Stats, StatsSnapshot};
pub use health::CollectHealth;
pub use loader::{ArgsSource, AttachReport, Floor, LoadOptions};

use crate::event::handoff;

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("Sentinel must run as root (it loads eBPF programs): try `sudo sentinel run`")]
    NotRoot,
    #[error(transparent)]
    Btf(#[from] btf::BtfError),
    #[error(transparent)]
    Tracefs(#[from] tracefs::TracefsError),
    #[error(
        "loading the kernel programs failed: {0}. Sentinel needs kernel >= 5.8 with BPF ring \
         buffers and BTF"
    )]
    Load(Box<aya::EbpfError>),
    #[error("kernel program {0}: {1}")]
    Program(&'static str, Box<aya::programs::ProgramError>),
    #[error("kernel object has no program {0} (build mismatch)")]
    MissingProgram(&'static str),
    #[error("kernel object has no map {0} (build mismatch)")]
    MissingMap(&'static str),
    #[error("map {0}: {1}")]
    Map(&'static str, aya::maps::MapError),
    #[error("no hook could be attached: {0:?}")]
    NothingAttached(Vec<(String, String)>),
    #[error("{0}")]
    Config(String),
    #[error("ring buffer: {0}")]
    Ring(std::io::Error),
}

/// A running collector: the loaded programs, the drain task and its counters. Dropping it
/// detaches everything.
pub struct Collector {
    loaded: Option<aya::Ebpf>,
    lost: aya::maps::PerCpuArray<aya::maps::MapData, u64>,
    stats: Arc<Stats>,
    report: AttachReport,
    ring_bytes: u64,
    stop: tokio::sync::watch::Sender<bool>,
    drain: Option<tokio::task::JoinHandle<()>>,
}

impl Collector {
    /// Starts a collector as configured (see [`Collector::start`]).
    pub fn start_with(cfg: &CollectConfig) -> Result<(Collector, handoff::Receiver), CollectError> {
        let opts = cfg.load_options().map_err(CollectError::Config)?;
        Collector::start(
            &opts,
            std::time::Duration::from_millis(cfg.drain_interval_ms),
            cfg.channel_capacity,
        )
    }

    /// Loads and attaches the probes and starts draining into a channel that holds at most
    /// `channel_capacity` events, handed over in chunks (`event::handoff`). Must be called
    /// inside a tokio runtime.
    pub fn start(
        opts: &LoadOptions,
        drain_interval: std::time::Duration,
        channel_capacity: usize,
    ) -> Result<(Collector, handoff::Receiver), CollectError> {
        let loader::Loaded {
            ebpf,
            ring,
            lost,
            repeats,
            report,
        } = loader::load(opts)?;
        // Loading parsed megabytes of kernel BTF and the object; give the freed heap back
        // (glibc keeps it otherwise, and it was a third of an idle agent's resident memory).
        // SAFETY: malloc_trim only releases free memory; it has no preconditions.
        unsafe { libc::malloc_trim(0) };
        for (hook, why) in &report.failed {
            tracing::warn!(target: "sentinel::collect", "hook {hook} not attached: {why}");
        }
        if let Some(note) = &report.syscall_args_note {
            tracing::info!(target: "sentinel::collect", "syscall arguments stashed at entry: {note}");
        }
        if !report.missing_fields.is_empty() {
            tracing::warn!(
                target: "sentinel::collect",
                "kernel BTF lacks {:?}: those event fields will be unset",
                report.missing_fields
            );
        }
        let (tx, rx) = handoff::channel(channel_capacity, drain::SEND_CHUNK);
        let stats = Arc::new(Stats::default());
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let reporter = repeats::Reporter::new(repeats);
        let drain = drain::spawn(
            ring,
            tx,
            stats.clone(),
            drain_interval,
            stop_rx,
            Some(reporter),
        )
        .map_err(CollectError::Ring)?;
        Ok((
            Collector {
                loaded: Some(ebpf),
                lost,
                stats,
                report,
                ring_bytes: u64::from(opts.ring_buffer_bytes),
                stop,
                drain: Some(drain),
            },
            rx,
        ))
    }

    pub fn report(&self) -> &AttachReport {
        &self.report
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Records the kernel could not send (ring buffer full), per kind, and the count of
    /// syscall exits seen without their entry.
    pub fn kernel_lost(&self) -> (KindCounts, u64) {
        let read =
            |slot: u32| -> u64 { self.lost.get(&slot, 0).map(|v| v.iter().sum()).unwrap_or(0) };
        let per_kind = Kind::ALL
            .iter()
            .map(|k| (k.name(), read(*k as u32)))
            .filter(|(_, n)| *n > 0)
            .collect();
        (per_kind, read(sentinel_common::MAX_KINDS - 1))
    }

    /// A reader of the running loss total (kernel ring buffer full plus channel full) that
    /// another thread can own: the analysis stage turns growth into blind-spot findings.
    pub fn loss_gauge(&self) -> Result<impl Fn() -> u64 + Send + 'static, CollectError> {
        let lost = self.lost_map()?;
        let stats = self.stats.clone();
        Ok(move || {
            // The last slot counts unpaired syscall exits, not losses (see `Summary`).
            let kernel: u64 = Kind::ALL
                .iter()
                .map(|k| {
                    lost.get(&(*k as u32), 0)
                        .map(|v| v.iter().sum())
                        .unwrap_or(0)
                })
                .sum();
            kernel + stats.snapshot().channel_dropped.values().sum::<u64>()
        })
    }

    /// The collector's part of the agent's health (`crate::health`), readable from any
    /// thread while the collector runs.
    pub fn health(&self) -> Result<CollectHealth, CollectError> {
        Ok(CollectHealth {
            stats: self.stats.clone(),
            lost: self.lost_map()?,
            report: self.report.clone(),
            ring_bytes: self.ring_bytes,
        })
    }

    /// A second handle on the kernel's loss map, for another thread to own.
    fn lost_map(&self) -> Result<aya::maps::PerCpuArray<aya::maps::MapData, u64>, CollectError> {
        use aya::maps::IterableMap as _;
        use std::os::fd::AsFd as _;
        let fd = self
            .lost
            .map()
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .map_err(CollectError::Ring)?;
        let data = aya::maps::MapData::from_fd(fd)
            .map_err(|e| CollectError::Ring(std::io::Error::other(e.to_string())))?;
        aya::maps::PerCpuArray::<_, u64>::try_from(aya::maps::Map::PerCpuArray(data))
            .map_err(|e| CollectError::Ring(std::io::Error::other(e.to_string())))
    }

    /// Detaches the probes, drains what is left in the ring buffer, and stops.
    pub async fn stop(mut self) -> Summary {
        self.loaded.take();
        let _ = self.stop.send(true);
        if let Some(d) = self.drain.take() {
            let _ = d.await;
        }
        let (lost, unpaired) = self.kernel_lost();
        Summary {
            stats: self.stats.snapshot(),
            kernel_lost: lost,
            unpaired,
        }
    }
}

/// Final counts of a collection run.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub stats: StatsSnapshot,
    /// Records the kernel could not send because the ring buffer was full.
    pub kernel_lost: KindCounts,
    pub unpaired: u64,
}

impl Summary {
    pub fn total_lost(&self) -> u64 {
        // Not `unpaired`: an exit without its stashed entry is a syscall that began before
        // the enter hooks were attached (not a loss), or one whose stash insert failed, which
        // the enter hook already counted in `kernel_lost`.
        self.kernel_lost.values().sum::<u64>() + self.stats.channel_dropped.values().sum::<u64>()
    }
}

/// The kinds to capture: all when `names` is empty.
pub fn parse_kinds(names: &[String]) -> Result<BTreeSet<Kind>, String> {
    if names.is_empty() {
        return Ok(Kind::ALL.into_iter().collect());
    }
    names
        .iter()
        .flat_map(|n| n.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| {
            Kind::from_name(n).ok_or_else(|| {
                let all: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown event kind {n:?} (known: {})", all.join(", "))
            })
        })
        .collect()
}

/// `[collect]` in the config file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CollectConfig {
    /// Event kinds to capture (names as in docs/events.md); empty means all.
    pub kinds: Vec<String>,
    /// Open events whose path starts with one of these are dropped in the kernel.
    pub ignore_prefixes: Vec<String>,
    /// Ring buffer size in bytes (a power of two, at least one page).
    pub ring_buffer_bytes: u32,
    /// How often user space drains the ring buffer, in milliseconds.
    pub drain_interval_ms: u64,
    /// Capacity of the channel from the collector to the next stage.
    pub channel_capacity: usize,
    /// How syscall hooks get their arguments: "auto" (from the saved registers at exit where
    /// the kernel and architecture allow, one hook per syscall) or "stash" (an enter hook
    /// keeps them for the exit hook; the portable way, and twice the hooks).
    pub syscall_args: String,
    /// Environment variables kept from each exec (by name; only these leave the kernel).
    pub exec_env: Vec<String>,
    /// The bench's floor (`sentinel run --probe-floor`), never read from a file.
    #[serde(skip)]
    #[schemars(skip)]
    pub floor: Option<Floor>,
}

/// Variables that change how programs load or how shells keep history: what attackers set to
/// inject a library or hide their commands.
pub const DEFAULT_EXEC_ENV: [&str; 11] = [
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "HISTFILE",
    "HISTSIZE",
    "HISTFILESIZE",
    "HISTCONTROL",
    "HISTIGNORE",
    "PROMPT_COMMAND",
    "BASH_ENV",
    "ENV",
];

/// Checks `[collect] exec_env`: at most `MAX_ENV_NAMES` names of 1-30 bytes made of letters,
/// digits and `_`, not starting with a digit (what shells accept as a variable name).
pub fn validate_exec_env(names: &[String]) -> Result<(), String> {
    if names.len() > sentinel_common::MAX_ENV_NAMES as usize {
        return Err(format!(
            "collect.exec_env: at most {} names",
            sentinel_common::MAX_ENV_NAMES
        ));
    }
    for n in names {
        let ok = !n.is_empty()
            && n.len() <= sentinel_common::MAX_ENV_NAME
            && n.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
            && !n.as_bytes()[0].is_ascii_digit();
        if !ok {
            return Err(format!(
                "collect.exec_env: {n:?} is not a variable name (1-{} letters, digits or _, not starting with a digit)",
                sentinel_common::MAX_ENV_NAME
            ));
        }
    }
    Ok(())
}

impl Default for CollectConfig {
    fn default() -> Self {
        CollectConfig {
            kinds: Vec::new(),
            ignore_prefixes: Vec::new(),
            // 100 ms of an unfiltered open storm; user space maps it twice, so it is twice this
            // in resident memory.
            ring_buffer_bytes: 8 << 20,
            drain_interval_ms: 10,
            channel_capacity: 65536,
            syscall_args: "auto".into(),
            exec_env: DEFAULT_EXEC_ENV.iter().map(|s| s.to_string()).collect(),
            floor: None,
        }
    }
}

impl CollectConfig {
    /// What the loader needs, for a collector running in this process.
    pub fn load_options(&self) -> Result<LoadOptions, String> {
        Ok(LoadOptions {
            kinds: parse_kinds(&self.kinds)?,
            ignore_prefixes: self.ignore_prefixes.clone(),
            ring_buffer_bytes: self.ring_buffer_bytes,
            // Wake user space early when a quarter of the buffer waits; otherwise the timer.
            wakeup_bytes: self.ring_buffer_bytes / 4,
            agent_tgid: std::process::id(),
            stash_args: self.syscall_args == "stash",
            exec_env: self.exec_env.clone(),
            floor: self.floor,
        })
    }

    pub fn validate(&self) -> Result<(), String> {
        parse_kinds(&self.kinds).map_err(|e| format!("collect.kinds: {e}"))?;
        validate_exec_env(&self.exec_env)?;
        if !matches!(self.syscall_args.as_str(), "auto" | "stash") {
            return Err(format!(
                "collect.syscall_args must be \"auto\" or \"stash\", got {:?}",
                self.syscall_args
            ));
        }
        if !self.ring_buffer_bytes.is_power_of_two() || self.ring_buffer_bytes < 4096 {
            return Err(format!(
                "collect.ring_buffer_bytes must be a power of two >= 4096, got {}",
                self.ring_buffer_bytes
            ));
        }
        if self.ignore_prefixes.len() > sentinel_common::MAX_IGNORE_PREFIXES as usize {
            return Err(format!(
                "collect.ignore_prefixes: at most {} entries",
                sentinel_common::MAX_IGNORE_PREFIXES
            ));
        }
        if let Some(p) = self
            .ignore_prefixes
            .iter()
            .find(|p| p.is_empty() || p.len() > sentinel_common::PREFIX_LEN)
        {
            return Err(format!("collect.ignore_prefixes: {p:?} must be 1-64 bytes"));
        }
        if self.drain_interval_ms == 0 || self.channel_capacity == 0 {
            return Err(
                "collect.drain_interval_ms and collect.channel_capacity must be > 0".into(),
            );
        }
        Ok(())
    }
}
