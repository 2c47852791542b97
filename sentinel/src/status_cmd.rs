//! `sentinel status`: asks the running agent over its status socket (`[status] socket`) and
//! prints its health, or the snapshot as JSON. Exit codes (docs/metrics.md): 0 healthy,
//! 1 degraded (a hook failed, events lost in the last five minutes, or pushing failing),
//! 2 no agent answers, 3 the agent could not be asked (permission, timeout, bad answer).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::Config;
use crate::health::{AgentHealth, Verdict};
use crate::metrics::socket::{AskError, ask};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print the agent's health snapshot as JSON (fields in docs/metrics.md).
    #[arg(long)]
    pub json: bool,
    /// The agent's status socket (default: `[status] socket`, /run/sentinel/agent.sock).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// How long to wait for the answer (e.g. 5s).
    #[arg(long, value_parser = crate::timefmt::parse_duration, default_value = "5s")]
    pub timeout: Duration,
}

/// Exit code when no agent answers.
pub const NOT_RUNNING: i32 = crate::exit::CRITICAL;

pub async fn run(config: Config, args: StatusArgs) -> anyhow::Result<i32> {
    let path = args.socket.unwrap_or(config.status.socket);
    let h = match ask(&path, args.timeout).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("sentinel: {e}");
            return Ok(match e {
                AskError::NotRunning { .. } => NOT_RUNNING,
                _ => crate::exit::ERROR,
            });
        }
    };
    let text = if args.json {
        serde_json::to_string_pretty(&h)? + "\n"
    } else {
        render(&h)
    };
    // A reader that went away (`sentinel status | head`) is no reason to panic.
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    }
    Ok(match h.verdict() {
        Verdict::Healthy => crate::exit::OK,
        Verdict::Degraded => crate::exit::WARNINGS,
    })
}

fn duration(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match (s / 86400, s % 86400 / 3600, s % 3600 / 60, s % 60) {
        (0, 0, 0, sec) => format!("{sec}s"),
        (0, 0, m, sec) => format!("{m}m {sec:02}s"),
        (0, h, m, _) => format!("{h}h {m:02}m"),
        (d, h, _, _) => format!("{d}d {h:02}h"),
    }
}

fn bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

/// The readable status: one line per concern.
pub fn render(h: &AgentHealth) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "sentinel {} on {} (pid {}), up {}, kernel {}",
        h.version,
        h.host,
        h.pid,
        duration(h.uptime_secs),
        h.kernel_release
    );
    let problems = h.problems();
    if problems.is_empty() {
        let _ = writeln!(o, "status:    healthy");
    } else {
        let _ = writeln!(o, "status:    degraded");
        for p in &problems {
            let _ = writeln!(o, "  - {p}");
        }
    }
    let _ = writeln!(
        o,
        "hooks:     {} attached, {} failed, {} not in this kernel (syscall arguments: {})",
        h.hooks.attached.len(),
        h.hooks.failed.len(),
        h.hooks.unavailable.len(),
        h.hooks.syscall_args
    );
    let e = &h.events;
    let mut busiest: Vec<(&String, &f64)> =
        e.rate_per_kind.iter().filter(|(_, r)| **r > 0.0).collect();
    busiest.sort_by(|a, b| b.1.total_cmp(a.1));
    let top: Vec<String> = busiest
        .iter()
        .take(5)
        .map(|(k, r)| format!("{k} {r:.1}/s"))
        .collect();
    let _ = writeln!(
        o,
        "events:    {} since start, {:.1}/s{}",
        e.total,
        e.rate_per_sec,
        if top.is_empty() {
            String::new()
        } else {
            format!(" ({})", top.join(", "))
        }
    );
    let _ = writeln!(
        o,
        "losses:    {} lost in the kernel, {} dropped in the agent, {} in the last 5 minutes; ring buffer {:.0}% at the last drain, peak {:.0}%",
        e.kernel_lost.values().sum::<u64>(),
        e.channel_dropped.values().sum::<u64>(),
        e.lost_recent,
        e.ring_buffer_fill * 100.0,
        e.ring_buffer_peak_fill * 100.0
    );
    let a = &h.anomalies;
    let levels: Vec<String> = ["low", "medium", "high", "critical"]
        .iter()
        .map(|l| format!("{l} {}", a.per_level.get(*l).copied().unwrap_or(0)))
        .collect();
    let _ = writeln!(
        o,
        "pipeline:  {} analysed, {} queued, lag {:.2}s; anomalies {} ({})",
        h.pipeline.analyzed,
        h.pipeline.queued,
        h.pipeline.lag_secs,
        a.total,
        levels.join(", ")
    );
    match &h.detect {
        Some(d) => {
            let families: Vec<String> = d
                .baselines
                .iter()
                .map(|(f, s)| {
                    format!(
                        "{f} {} learning/{} calibrating/{} calibrated",
                        s.learning, s.calibrating, s.calibrated
                    )
                })
                .collect();
            let _ = writeln!(
                o,
                "baselines: {}; {} processes tracked, {} windows learned",
                if families.is_empty() {
                    "none yet".to_string()
                } else {
                    families.join("; ")
                },
                d.processes,
                d.windows_learned
            );
        }
        None => {
            let _ = writeln!(o, "baselines: detection off (--no-detect)");
        }
    }
    match &h.push {
        Some(p) => {
            let _ = writeln!(
                o,
                "push:      {} batches sent, {} failures ({} since the last success), {} spooled ({}), {} queued",
                p.batches_sent,
                p.failures,
                p.consecutive_failures,
                p.spool_files,
                bytes(p.spool_bytes),
                p.queue
            );
        }
        None => {
            let _ = writeln!(o, "push:      off");
        }
    }
    match &h.llm {
        Some(l) => {
            let _ = writeln!(
                o,
                "llm:       {} explained ({} by the model, {} local), {} failures, budget {}/{} calls left this hour",
                l.explained,
                l.from_llm,
                l.local_fallbacks,
                l.failures,
                l.budget_left,
                l.calls_per_hour
            );
        }
        None => {
            let _ = writeln!(o, "llm:       off");
        }
    }
    let _ = writeln!(o, "config:    {}", h.config_hash);
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{HookFailure, Push};

    #[test]
    fn the_readable_status_names_each_concern_and_the_problems() {
        let mut h = AgentHealth {
            version: "9.9.9".into(),
            host: "web1".into(),
            uptime_secs: 3725.0,
            ..Default::default()
        };
        h.events.total = 500;
        h.events.rate_per_kind.insert("exec".into(), 2.5);
        let t = render(&h);
        assert!(t.contains("sentinel 9.9.9 on web1"), "{t}");
        assert!(t.contains("up 1h 02m"), "{t}");
        assert!(t.contains("status:    healthy"), "{t}");
        assert!(t.contains("exec 2.5/s"), "{t}");
        assert!(
            t.contains("push:      off") && t.contains("llm:       off"),
            "{t}"
        );
        h.hooks.failed.push(HookFailure {
            hook: "openat".into(),
            reason: "gone".into(),
        });
        h.push = Some(Push {
            consecutive_failures: 2,
            spool_bytes: 2048,
            ..Default::default()
        });
        let t = render(&h);
        assert!(t.contains("status:    degraded"), "{t}");
        assert!(t.contains("  - hook openat not attached: gone"), "{t}");
        assert!(t.contains("(2.0 KiB)"), "{t}");
    }
}
