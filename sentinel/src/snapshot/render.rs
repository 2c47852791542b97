//! Text output for people: the `--quick` summary, the audit block, the `--baseline` report and
//! the `--learn` confirmation. Colour is on for a terminal unless NO_COLOR is set; `--color`
//! and `--no-color` override both.

use std::fmt::Write;

use super::Fingerprint;
use super::analysis::Severity;
use super::baseline::{Deviation, SnapshotBaseline};
use crate::audit::AuditSummary;
use crate::model::Level;

#[derive(Clone, Copy, Debug)]
pub struct Palette {
    pub on: bool,
}

impl Palette {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    pub fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }
    pub fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
    pub fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }

    /// A count: green when zero, else yellow or red.
    fn count(&self, n: usize, bad: Severity) -> String {
        match (n, bad) {
            (0, _) => self.green("0"),
            (_, Severity::Warning) => self.yellow(&n.to_string()),
            (_, Severity::Critical) => self.red(&n.to_string()),
        }
    }

    pub fn status(&self, code: i32) -> String {
        match code {
            0 => self.green("[OK]"),
            1 => self.yellow("[WARNINGS]"),
            2 => self.red("[CRITICAL]"),
            _ => self.red("[ERROR]"),
        }
    }
}

/// Chain links shown per process in text output (the JSON has them all).
const CHAIN_LINKS: usize = 4;

/// How many listeners `--quick` shows (all with --verbose).
const QUICK_LISTENERS: usize = 10;

pub fn quick(fp: &Fingerprint, p: Palette, verbose: bool) -> String {
    let mut o = String::new();
    let s = &fp.system;
    let ps = &fp.process_summary;
    let _ = writeln!(
        o,
        "{}",
        p.bold(&format!("Sentinel {} - host summary", fp.sentinel_version))
    );
    let _ = writeln!(o, "  Host:        {} ({})", s.hostname, s.kernel);
    let _ = writeln!(o, "  Uptime:      {:.1} days", s.uptime_days);
    let _ = writeln!(
        o,
        "  Load:        {:.2} {:.2} {:.2} ({} cpus)",
        s.load_average[0], s.load_average[1], s.load_average[2], s.cpu_count
    );
    // Coloured by the memory finding, so the configured thresholds decide.
    let mem = match s.memory_used_percent {
        Some(m) => {
            let t = format!("{m:.1}%");
            match fp.findings.iter().find(|f| f.detection == "memory") {
                Some(f) if f.severity == Severity::Critical => p.red(&t),
                Some(_) => p.yellow(&t),
                None => t,
            }
        }
        None => "unknown".into(),
    };
    let _ = writeln!(
        o,
        "  Memory:      {mem} used of {:.1} GiB",
        s.memory_total_gb
    );
    let _ = writeln!(o, "  Processes:   {}", ps.total_count);
    let _ = writeln!(
        o,
        "  Zombies:     {}",
        p.count(ps.zombie_count, Severity::Critical)
    );
    let _ = writeln!(
        o,
        "  High FD:     {}",
        p.count(ps.high_fd_count, Severity::Warning)
    );
    let _ = writeln!(
        o,
        "  Stuck (D):   {}",
        p.count(ps.stuck_count, Severity::Warning)
    );
    let _ = writeln!(o, "  Long-running (>7d): {}", ps.long_running_count);
    let ww = fp.config_files.iter().filter(|f| f.world_writable).count();
    let _ = writeln!(
        o,
        "  Config files: {} watched, {} world-writable",
        fp.config_files.iter().filter(|f| f.exists).count(),
        p.count(ww, Severity::Critical)
    );
    let notable: Vec<_> = ps
        .notable_processes
        .iter()
        .filter(|n| verbose || n.flags.iter().any(|f| f != "very_long_running"))
        .collect();
    if !notable.is_empty() {
        let _ = writeln!(o, "\n{}", p.bold("Notable processes:"));
        for n in notable {
            let _ = writeln!(
                o,
                "  {:>7} {:<16} {} [{}]  {}",
                n.pid,
                n.name,
                n.state,
                n.flags.join(","),
                p.dim(&crate::audit::chain::render_tail(&n.chain, CHAIN_LINKS))
            );
        }
    }
    if fp.network.probed {
        let n = &fp.network;
        let _ = writeln!(
            o,
            "\n{} {} listening, {} established, {} on unusual ports",
            p.bold("Network:"),
            n.total_listeners,
            n.total_established,
            p.count(n.unusual_ports, Severity::Warning)
        );
        let shown = if verbose { usize::MAX } else { QUICK_LISTENERS };
        for l in n.listeners.iter().take(shown) {
            let owner = match (&l.process, l.pid) {
                (Some(c), Some(pid)) => format!("{c} (pid {pid})"),
                _ => p.dim("owner unknown"),
            };
            let flag = if l.unusual {
                p.yellow("  unusual port")
            } else {
                String::new()
            };
            let _ = writeln!(
                o,
                "  {:<5} {:>5}  {:<24} {owner}{flag}",
                l.protocol, l.port, l.address
            );
        }
        if n.listeners.len() > shown {
            let _ = writeln!(
                o,
                "  ... and {} more (--verbose shows all)",
                n.listeners.len() - shown
            );
        }
    }
    if fp.audit_summary.enabled || !fp.audit_summary.log_source.is_empty() {
        o.push('\n');
        o.push_str(&audit_block(&fp.audit_summary, p));
    }
    if !fp.probe_error_details.is_empty() {
        let _ = writeln!(o, "\n{}", p.yellow("Probe errors:"));
        for e in &fp.probe_error_details {
            let _ = writeln!(o, "  {e}");
        }
    }
    let _ = writeln!(o);
    if fp.findings.is_empty() {
        let _ = writeln!(o, "{} no issues found", p.status(fp.exit_code));
    } else {
        let _ = writeln!(
            o,
            "{} {} finding(s):",
            p.status(fp.exit_code),
            fp.findings.len()
        );
        for f in &fp.findings {
            let tag = match f.severity {
                Severity::Critical => p.red("CRITICAL"),
                Severity::Warning => p.yellow("WARNING "),
            };
            let _ = writeln!(o, "  {tag} {}", f.reason);
        }
    }
    o
}

fn level(l: Option<Level>, p: Palette) -> String {
    match l {
        Some(Level::Low) | None => p.green("low"),
        Some(Level::Medium) => p.yellow("medium"),
        Some(l) => p.red(l.as_str()),
    }
}

pub fn audit_block(a: &AuditSummary, p: Palette) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} {} ({} to {})",
        p.bold("Audit:"),
        a.log_source,
        a.window.since,
        a.window.until
    );
    for n in &a.notes {
        let _ = writeln!(o, "  {} {n}", p.yellow("note:"));
    }
    if !a.enabled {
        return o;
    }
    let au = &a.authentication;
    let pe = &a.privilege_escalation;
    let pa = &a.process_activity;
    let _ = writeln!(
        o,
        "  Events: {} ({} malformed lines skipped)",
        a.events, a.read.malformed_lines
    );
    let bf = if au.brute_force_detected {
        p.red(&format!("  BRUTE FORCE: {} burst(s)", au.bursts.len()))
    } else {
        String::new()
    };
    let _ = writeln!(
        o,
        "  Auth failures: {}{bf}",
        p.count(au.failures as usize, Severity::Warning)
    );
    let vs = |avg: Option<f64>, dev: Option<f64>| match (avg, dev) {
        (Some(a), Some(d)) => format!(" (baseline {a:.2}/h, {d:+.0}%)"),
        _ => String::new(),
    };
    let _ = writeln!(
        o,
        "  sudo: {}{}   su: {}{}",
        pe.sudo_count,
        vs(pe.sudo_baseline_avg, pe.sudo_deviation_pct),
        pe.su_count,
        vs(pe.su_baseline_avg, pe.su_deviation_pct)
    );
    for w in &a.file_integrity.watched {
        let _ = writeln!(
            o,
            "  watch '{}': {} hit(s) on {} by {}  {}",
            w.key,
            w.count,
            w.paths.join(", "),
            w.processes.join(", "),
            p.dim(&crate::audit::chain::render_tail(
                &w.process_chain,
                CHAIN_LINKS
            ))
        );
    }
    let _ = writeln!(
        o,
        "  Exec from /tmp: {}  /dev/shm: {}  shells: {}",
        p.count(pa.tmp_executions as usize, Severity::Warning),
        p.count(pa.devshm_executions as usize, Severity::Critical),
        pa.shell_spawns
    );
    for c in &a.account_changes {
        let _ = writeln!(o, "  account change: {} x{}", c.kind, c.count);
    }
    for c in &a.anomalous_records {
        let _ = writeln!(o, "  anomaly record: {} x{}", c.kind, c.count);
    }
    let _ = writeln!(
        o,
        "  Risk: {} ({}), baseline confidence {}",
        a.risk_score,
        level(a.risk_level, p),
        a.learning.confidence
    );
    for f in &a.risk_factors {
        let _ = writeln!(o, "    +{:<3} {}", f.weight, f.reason);
    }
    o
}

pub fn baseline_report(
    b: &SnapshotBaseline,
    fp: &Fingerprint,
    devs: &[Deviation],
    p: Palette,
) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} {} samples, learned {} .. {}",
        p.bold("Baseline:"),
        b.samples,
        b.first_learned,
        b.last_learned
    );
    let _ = writeln!(
        o,
        "  Now: {} processes (learned {}..{}), memory {}, {} listeners",
        fp.process_summary.total_count,
        b.process_count_min,
        b.process_count_max,
        fp.system
            .memory_used_percent
            .map(|m| format!("{m:.1}%"))
            .unwrap_or_else(|| "?".into()),
        if fp.network.probed {
            fp.network.total_listeners.to_string()
        } else {
            "not probed (--network)".into()
        }
    );
    if devs.is_empty() {
        let _ = writeln!(o, "{} no deviations from the baseline", p.green("[OK]"));
    } else {
        let _ = writeln!(o, "{} {} deviation(s):", p.red("[DEVIATIONS]"), devs.len());
        for d in devs {
            let _ = writeln!(o, "  {:<17} {}", d.kind, d.detail);
        }
    }
    o
}

pub fn learned(b: &SnapshotBaseline, store: &std::path::Path) -> String {
    format!(
        "Baseline updated in {}: {} sample(s), processes {}..{}, {} expected listener(s){}, {} config file(s)\n",
        store.display(),
        b.samples,
        b.process_count_min,
        b.process_count_max,
        b.listeners.len(),
        if b.network_learned {
            ""
        } else {
            " (network never probed: use --network)"
        },
        b.config_files.len()
    )
}
