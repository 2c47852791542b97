//! The deterministic rules over a fingerprint, their findings, and the C-Sentinel exit code:
//! 0 ok, 1 warnings, 2 critical, 3 error (a probe failed and nothing critical was found).

use serde::Serialize;

use super::{Fingerprint, SnapshotConfig};
use crate::exit;
use crate::model::Level;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Critical,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// Stable rule id: zombie, world_writable_config, unusual_listener, ...
    pub detection: &'static str,
    pub reason: String,
}

fn list<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
    const SHOWN: usize = 8;
    let mut s: Vec<String> = items.iter().take(SHOWN).map(f).collect();
    if items.len() > SHOWN {
        s.push(format!("and {} more", items.len() - SHOWN));
    }
    s.join(", ")
}

pub fn findings(cfg: &SnapshotConfig, fp: &Fingerprint) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut add = |severity, detection, reason| {
        out.push(Finding {
            severity,
            detection,
            reason,
        })
    };
    let ps = &fp.process_summary;
    let with = |flag: &str| {
        ps.notable_processes
            .iter()
            .filter(|p| p.flags.iter().any(|f| f == flag))
            .collect::<Vec<_>>()
    };
    if ps.zombie_count > cfg.zombie_threshold {
        let z = with("zombie");
        add(
            Severity::Critical,
            "zombie",
            format!(
                "{} zombie process(es): {}",
                ps.zombie_count,
                list(&z, |p| format!("{}({}) parent {}", p.name, p.pid, p.ppid))
            ),
        );
    }
    let ww: Vec<_> = fp
        .config_files
        .iter()
        .filter(|f| f.world_writable)
        .collect();
    if !ww.is_empty() {
        add(
            Severity::Critical,
            "world_writable_config",
            format!(
                "world-writable config file(s): {}",
                list(&ww, |f| f.path.clone())
            ),
        );
    }
    let unusual: Vec<_> = fp.network.listeners.iter().filter(|l| l.unusual).collect();
    if !unusual.is_empty() {
        let sev = if unusual.len() > cfg.unusual_port_threshold {
            Severity::Critical
        } else {
            Severity::Warning
        };
        add(
            sev,
            "unusual_listener",
            format!(
                "{} listener(s) on ports outside the known list: {}",
                unusual.len(),
                list(&unusual, |l| format!(
                    "{}/{}:{} ({})",
                    l.protocol,
                    l.address,
                    l.port,
                    match (&l.process, l.pid) {
                        (Some(c), Some(p)) => format!("{c}, pid {p}"),
                        _ => "owner unknown".into(),
                    }
                ))
            ),
        );
    }
    if ps.high_fd_count > cfg.high_fd_warn_count {
        add(
            Severity::Warning,
            "high_fd_count",
            format!(
                "{} processes hold more than {} open files",
                ps.high_fd_count, cfg.high_fd_threshold
            ),
        );
    }
    if ps.stuck_count > 0 {
        add(
            Severity::Warning,
            "stuck_process",
            format!(
                "{} process(es) stuck in uninterruptible sleep: {}",
                ps.stuck_count,
                list(&with("stuck"), |p| format!("{}({})", p.name, p.pid))
            ),
        );
    }
    if let Some(mem) = fp.system.memory_used_percent {
        if mem >= cfg.memory_crit_percent {
            add(
                Severity::Critical,
                "memory",
                format!("memory {mem:.1}% used"),
            );
        } else if mem >= cfg.memory_warn_percent {
            add(
                Severity::Warning,
                "memory",
                format!("memory {mem:.1}% used"),
            );
        }
    }
    let load_limit = fp.system.cpu_count.max(1) as f64 * cfg.load_warn_factor;
    if fp.system.load_average[0] > load_limit {
        add(
            Severity::Warning,
            "load",
            format!(
                "1-minute load {:.2} is above {:.1} ({} cpus x {})",
                fp.system.load_average[0], load_limit, fp.system.cpu_count, cfg.load_warn_factor
            ),
        );
    }
    let a = &fp.audit_summary;
    if a.enabled
        && let Some(level) = a.risk_level
    {
        let sev = match level {
            Level::High | Level::Critical => Some(Severity::Critical),
            Level::Medium => Some(Severity::Warning),
            Level::Low => None,
        };
        if let Some(sev) = sev {
            add(
                sev,
                "audit_risk",
                format!(
                    "audit risk {} ({}): {}",
                    a.risk_score,
                    level,
                    list(&a.risk_factors, |f| f.reason.clone())
                ),
            );
        }
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}

/// Exit code: critical wins; then a failed probe (error); then warnings.
pub fn exit_code(findings: &[Finding], probe_errors: usize) -> i32 {
    match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Critical) => exit::CRITICAL,
        _ if probe_errors > 0 => exit::ERROR,
        Some(Severity::Warning) => exit::WARNINGS,
        None => exit::OK,
    }
}

pub fn status_name(code: i32) -> &'static str {
    match code {
        exit::OK => "ok",
        exit::WARNINGS => "warnings",
        exit::CRITICAL => "critical",
        _ => "error",
    }
}

pub fn analyse(cfg: &SnapshotConfig, fp: &mut Fingerprint) {
    fp.findings = findings(cfg, fp);
    fp.exit_code = exit_code(&fp.findings, fp.probe_errors);
    fp.status = status_name(fp.exit_code);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::network::Listener;
    use crate::snapshot::process::NotableProcess;

    fn empty() -> Fingerprint {
        let mut fp = crate::snapshot::test_fingerprint();
        fp.process_summary = Default::default();
        fp.system.memory_used_percent = Some(10.0);
        fp.system.load_average = [0.0; 3];
        fp
    }

    fn listener(port: u16) -> Listener {
        Listener {
            protocol: "tcp".into(),
            address: "0.0.0.0".into(),
            port,
            pid: Some(1),
            process: Some("x".into()),
            unusual: true,
        }
    }

    #[test]
    fn exit_codes_follow_c_sentinel_rules() {
        let cfg = SnapshotConfig::default();
        let mut fp = empty();
        analyse(&cfg, &mut fp);
        assert_eq!((fp.exit_code, fp.status), (0, "ok"));
        fp.network.listeners = vec![listener(4444)];
        analyse(&cfg, &mut fp);
        assert_eq!(fp.exit_code, 1, "one unusual listener is a warning");
        assert!(
            fp.findings[0]
                .reason
                .contains("tcp/0.0.0.0:4444 (x, pid 1)")
        );
        fp.network.listeners = (1..=4).map(|p| listener(4440 + p)).collect();
        analyse(&cfg, &mut fp);
        assert_eq!(fp.exit_code, 2, "more than 3 unusual listeners is critical");
        fp.network.listeners.clear();
        fp.probe_errors = 1;
        analyse(&cfg, &mut fp);
        assert_eq!(fp.exit_code, 3, "a failed probe is an error");
        fp.process_summary.zombie_count = 1;
        fp.process_summary.notable_processes = vec![NotableProcess {
            pid: 9,
            name: "z".into(),
            flags: vec!["zombie".into()],
            ..Default::default()
        }];
        analyse(&cfg, &mut fp);
        assert_eq!(fp.exit_code, 2, "critical beats a probe error");
    }
}
