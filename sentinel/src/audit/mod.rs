//! auditd: parsing the log (and its rotations) into events grouped by serial, the window
//! summary with hashed users and redacted commands, its factors in the shared scoring model,
//! the audit baseline, and a live follower for the agent (docs/audit.md).

pub mod baseline;
pub mod chain;
pub mod classify;
pub mod factors;
pub mod follow;
pub mod multicast;
pub mod privacy;
pub mod reader;
pub mod record;
pub mod summary;

#[cfg(test)]
mod fixture_tests;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use classify::{LiveFact, classify};
pub use follow::{FollowOptions, FollowStats, Follower, follow, follow_with};
pub use multicast::follow_multicast;
pub use record::AuditEvent;
pub use summary::AuditSummary;

use crate::store::Store;

/// The `[audit]` section of the configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// auditd's log; rotated files (`<path>.1`, `<path>.2`, ...) are read too.
    pub log_path: PathBuf,
    /// Window summarised by one-shot runs, in seconds.
    pub window_secs: u64,
    /// A brute-force burst is at least this many failed authentications ...
    pub brute_force_threshold: u32,
    /// ... within this many seconds.
    pub brute_force_window_secs: u64,
    /// Per-install HMAC secret for user-name hashes (created 0600 on first use).
    pub hmac_key_path: PathBuf,
    /// Baseline samples needed before deviations count as anomalies.
    pub baseline_min_samples: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            log_path: PathBuf::from("/var/log/audit/audit.log"),
            window_secs: 3600,
            brute_force_threshold: 5,
            brute_force_window_secs: 60,
            hmac_key_path: PathBuf::from("/var/lib/sentinel/hmac.key"),
            baseline_min_samples: 3,
        }
    }
}

impl AuditConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.window_secs == 0 || self.window_secs > 366 * 86400 {
            return Err("audit.window_secs must be 1..=31622400".into());
        }
        if self.brute_force_threshold < 2 {
            return Err("audit.brute_force_threshold must be at least 2".into());
        }
        if self.brute_force_window_secs == 0 {
            return Err("audit.brute_force_window_secs must be positive".into());
        }
        if self.log_path.as_os_str().is_empty() || self.hmac_key_path.as_os_str().is_empty() {
            return Err("audit.log_path and audit.hmac_key_path must not be empty".into());
        }
        Ok(())
    }

    fn options(&self) -> summary::SummaryOptions {
        summary::SummaryOptions {
            brute_force_threshold: self.brute_force_threshold,
            brute_force_window_secs: self.brute_force_window_secs,
            baseline_min_samples: self.baseline_min_samples,
        }
    }
}

fn user_hasher(cfg: &AuditConfig, notes: &mut Vec<String>) -> privacy::UserHasher {
    match privacy::UserHasher::load_or_create(&cfg.hmac_key_path) {
        Ok(h) => h,
        Err(e) => {
            notes.push(format!(
                "user hashes use a one-run key ({e}); they are not comparable across runs"
            ));
            privacy::UserHasher::ephemeral()
        }
    }
}

pub fn load_baseline(store: Option<&Store>) -> Option<baseline::AuditBaseline> {
    let v = store?
        .get_baseline(baseline::STORE_KIND, baseline::STORE_KEY)
        .ok()??;
    serde_json::from_value(v).ok()
}

/// Summarises `[since_ms, until_ms)` of the log. Never fails: problems (auditd not running,
/// unreadable log) are notes in the summary, and `enabled` says whether the log was read.
pub fn collect(
    cfg: &AuditConfig,
    since_ms: i64,
    until_ms: i64,
    store: Option<&Store>,
) -> AuditSummary {
    let mut notes = Vec::new();
    let running = reader::auditd_running();
    if !running {
        notes.push("auditd is not running: no new audit records are being written".into());
    }
    let window = summary::Window {
        since: summary::iso_ms(since_ms),
        until: summary::iso_ms(until_ms),
        seconds: ((until_ms - since_ms).max(0) / 1000) as u64,
        since_ms,
        until_ms,
    };
    let log_source = cfg.log_path.display().to_string();
    let (events, stats) = match reader::read_window(&cfg.log_path, since_ms, until_ms) {
        Ok(x) => x,
        Err(e) => {
            notes.push(format!("cannot read the audit log: {e}"));
            return AuditSummary {
                enabled: false,
                auditd_running: running,
                notes,
                log_source,
                window,
                ..Default::default()
            };
        }
    };
    if stats.malformed_lines > 0 {
        notes.push(format!(
            "{} malformed or truncated log lines were skipped",
            stats.malformed_lines
        ));
    }
    let hasher = user_hasher(cfg, &mut notes);
    let base = load_baseline(store);
    let mut s = summary::summarize(&events, window, &hasher, base.as_ref(), &cfg.options());
    s.auditd_running = running;
    s.log_source = log_source;
    s.read = stats;
    notes.append(&mut s.notes);
    s.notes = notes;
    s
}

/// Folds a summary into the stored audit baseline; returns the updated baseline.
pub fn learn(
    store: &Store,
    s: &AuditSummary,
) -> Result<baseline::AuditBaseline, crate::store::StoreError> {
    let mut b = load_baseline(Some(store)).unwrap_or_default();
    b.learn(s, s.window.seconds.max(1) as f64 / 3600.0);
    store.put_baseline(
        baseline::STORE_KIND,
        baseline::STORE_KEY,
        &serde_json::to_value(&b)?,
    )?;
    Ok(b)
}
