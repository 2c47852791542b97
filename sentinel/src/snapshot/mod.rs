//! The host snapshot ("system fingerprint", C-Sentinel compatible): system, processes,
//! watched config files, network sockets and the audit summary, the findings and exit code
//! drawn from them, the baseline, and the `--quick` / `--json` / `--watch` outputs
//! (docs/fingerprint.md).

pub mod analysis;
pub mod baseline;
pub mod files;
pub mod network;
pub mod process;
pub mod render;
pub mod system;
pub mod time;
pub mod watch;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use analysis::{Finding, Severity};

/// Version of the JSON document below; bump on incompatible changes (docs/fingerprint.md).
pub const SCHEMA_VERSION: u32 = 1;

/// C-Sentinel's historical "expected services" port list.
pub const DEFAULT_KNOWN_PORTS: &[u16] = &[
    22, 25, 53, 80, 110, 143, 443, 465, 587, 993, 995, 3306, 5432, 6379, 8080, 8443, 27017,
];

/// The `[snapshot]` section of the configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Files fingerprinted (SHA-256, owner, mode); `--file` adds more.
    pub config_files: Vec<PathBuf>,
    /// Listening ports that are expected; any other listener is "unusual".
    pub known_ports: Vec<u16>,
    /// More open fds than this makes a process "high_fd_count".
    pub high_fd_threshold: usize,
    /// More high-fd processes than this is a warning.
    pub high_fd_warn_count: usize,
    pub long_running_days: f64,
    pub very_long_running_days: f64,
    /// A process in D state for longer than this is "stuck".
    pub stuck_secs: u64,
    pub high_memory_mb: u64,
    /// More zombies than this is critical.
    pub zombie_threshold: usize,
    /// Unusual listeners: any is a warning, more than this is critical.
    pub unusual_port_threshold: usize,
    pub memory_warn_percent: f64,
    pub memory_crit_percent: f64,
    /// 1-minute load above cpus x this factor is a warning.
    pub load_warn_factor: f64,
    /// Files larger than this are not hashed.
    pub max_hash_bytes: u64,
    /// `--watch` interval when `--interval` is not given, seconds (1..=86400).
    pub interval_secs: u64,
    /// Probe the network even without `--network`.
    pub network_by_default: bool,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            config_files: [
                "/etc/hosts",
                "/etc/passwd",
                "/etc/group",
                "/etc/shadow",
                "/etc/sudoers",
                "/etc/ssh/sshd_config",
                "/etc/crontab",
                "/etc/fstab",
                "/etc/resolv.conf",
            ]
            .into_iter()
            .map(PathBuf::from)
            .collect(),
            known_ports: DEFAULT_KNOWN_PORTS.to_vec(),
            high_fd_threshold: 100,
            high_fd_warn_count: 5,
            long_running_days: 7.0,
            very_long_running_days: 30.0,
            stuck_secs: 300,
            high_memory_mb: 1024,
            zombie_threshold: 0,
            unusual_port_threshold: 3,
            memory_warn_percent: 90.0,
            memory_crit_percent: 97.0,
            load_warn_factor: 2.0,
            max_hash_bytes: 64 << 20,
            interval_secs: 60,
            network_by_default: false,
        }
    }
}

impl SnapshotConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=86400).contains(&self.interval_secs) {
            return Err("snapshot.interval_secs must be 1..=86400".into());
        }
        if !(0.0..=100.0).contains(&self.memory_warn_percent)
            || !(0.0..=100.0).contains(&self.memory_crit_percent)
            || self.memory_warn_percent > self.memory_crit_percent
        {
            return Err("snapshot.memory_warn_percent <= memory_crit_percent, both 0..=100".into());
        }
        for (name, v) in [
            ("long_running_days", self.long_running_days),
            ("very_long_running_days", self.very_long_running_days),
            ("load_warn_factor", self.load_warn_factor),
        ] {
            if !v.is_finite() || v <= 0.0 {
                return Err(format!("snapshot.{name} must be a positive number"));
            }
        }
        if self.known_ports.contains(&0) {
            return Err("snapshot.known_ports: 0 is not a port".into());
        }
        Ok(())
    }
}

/// The whole fingerprint, as `--json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct Fingerprint {
    pub schema_version: u32,
    pub sentinel_version: &'static str,
    pub probe_time: String,
    /// Wall-clock time the probe took.
    pub probe_duration_ms: f64,
    /// Count of failed probe sources (C-Sentinel field), details in `probe_error_details`.
    pub probe_errors: usize,
    pub probe_error_details: Vec<String>,
    pub system: system::SystemInfo,
    pub process_summary: process::ProcessSummary,
    pub config_files: Vec<files::ConfigFile>,
    pub network: network::Network,
    pub audit_summary: crate::audit::AuditSummary,
    /// Everything that raised the status, most severe first.
    pub findings: Vec<Finding>,
    /// "ok", "warnings", "critical" or "error".
    pub status: &'static str,
    pub exit_code: i32,
    #[serde(skip)]
    pub time_ms: i64,
}

/// What to probe.
pub struct ProbeOptions<'a> {
    pub network: bool,
    /// Audit window `[since, until)` in epoch ms, when auditing.
    pub audit: Option<(i64, i64)>,
    pub extra_files: &'a [PathBuf],
    pub store: Option<&'a crate::store::Store>,
}

/// Takes one fingerprint.
pub fn take(
    cfg: &SnapshotConfig,
    audit_cfg: &crate::audit::AuditConfig,
    opts: &ProbeOptions,
) -> Fingerprint {
    let started = std::time::Instant::now();
    let time_ms = time::now_ms();
    let mut errors = Vec::new();
    let system = system::probe(&mut errors);
    let uptime = system::uptime_secs().unwrap_or(system.uptime_days * 86400.0);
    let process_summary = process::probe(cfg, uptime, &mut errors);
    let mut seen = std::collections::HashSet::new();
    let config_files = cfg
        .config_files
        .iter()
        .chain(opts.extra_files)
        .filter(|p| seen.insert(*p))
        .map(|p| files::probe_file(p, cfg.max_hash_bytes))
        .collect();
    let network = if opts.network {
        network::probe(&cfg.known_ports, &mut errors)
    } else {
        network::Network::default()
    };
    let audit_summary = match opts.audit {
        Some((since, until)) => crate::audit::collect(audit_cfg, since, until, opts.store),
        None => crate::audit::AuditSummary {
            notes: vec!["audit not requested (use --audit)".into()],
            ..Default::default()
        },
    };
    let mut fp = Fingerprint {
        schema_version: SCHEMA_VERSION,
        sentinel_version: env!("CARGO_PKG_VERSION"),
        probe_time: time::iso_ms(time_ms),
        probe_duration_ms: 0.0,
        probe_errors: errors.len(),
        probe_error_details: errors,
        system,
        process_summary,
        config_files,
        network,
        audit_summary,
        findings: Vec::new(),
        status: "ok",
        exit_code: crate::exit::OK,
        time_ms,
    };
    analysis::analyse(cfg, &mut fp);
    fp.probe_duration_ms = system::round(started.elapsed().as_secs_f64() * 1000.0, 2);
    fp
}

/// A fingerprint of this host with no files, network or audit (tests edit it as they need).
#[cfg(test)]
pub fn test_fingerprint() -> Fingerprint {
    let cfg = SnapshotConfig {
        config_files: vec![],
        ..Default::default()
    };
    let opts = ProbeOptions {
        network: false,
        audit: None,
        extra_files: &[],
        store: None,
    };
    take(&cfg, &crate::audit::AuditConfig::default(), &opts)
}
