//! `cargo xtask bench --server`: the server load bench (issue 13 part 7). Builds `sentinel`
//! and the `sentinel-load` generator (tests/bin/load.rs, on the sentinel_e2e::load library:
//! it needs the agent's own push client and wire types, which xtask does not build) in
//! release mode, runs one plan per backend side by side, and prints the tables for
//! docs/benchmarks.md ("Server load"). `--step` searches the largest fleet whose worst
//! ingest p99 stays under a second: doubling, then bisecting, bounded.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::setup;

#[derive(Debug, Default, clap::Args)]
pub struct ServerArgs {
    /// The server load bench instead: simulated agents, dashboard readers and live-feed
    /// clients against `sentinel serve` on SQLite and PostgreSQL.
    #[arg(long)]
    pub server: bool,
    /// Simulated agents (with --step: the first step).
    #[arg(long, default_value_t = 1000, requires = "server")]
    pub agents: usize,
    /// How much faster than real time the agents' schedule runs (1: a heartbeat every 30 s,
    /// an anomaly a minute, a snapshot every 5 minutes per agent).
    #[arg(long, default_value_t = 1.0, requires = "server")]
    pub compression: f64,
    /// Seconds of load per run.
    #[arg(long, default_value_t = 60.0, requires = "server")]
    pub secs: f64,
    /// Backends (sqlite, postgres).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "sqlite,postgres",
        requires = "server"
    )]
    pub backends: Vec<String>,
    /// Faults during the load: server@SECS (restart sentinel serve), database@SECS (restart
    /// PostgreSQL).
    #[arg(long, value_delimiter = ',', requires = "server")]
    pub faults: Vec<String>,
    /// Find the largest number of agents whose worst ingest p99 stays under 1 s (doubling
    /// from --agents, then bisecting; at most --max-steps runs per backend).
    #[arg(long, requires = "server")]
    pub step: bool,
    #[arg(long, default_value_t = 8, requires = "server")]
    pub max_steps: usize,
}

/// A step passes when the worst ingest p99 is under this, with no errors.
const STEP_P99_MS: f64 = 1000.0;

/// The target: p99 under 250 ms with 0 errors at 1,000 agents on PostgreSQL.
const TARGET_P99_MS: f64 = 250.0;

pub fn run(root: &Path, a: &ServerArgs) -> anyhow::Result<()> {
    setup::postgres()?;
    setup::run(super::super::cargo().args([
        "build",
        "--release",
        "-p",
        "sentinel",
        "-p",
        "sentinel-e2e",
        "--bin",
        "sentinel",
        "--bin",
        "sentinel-load",
    ]))?;
    let mut md = String::new();
    if a.step {
        md.push_str(&step_table(root, a)?);
    } else {
        let reports = load(root, a, a.agents, &a.backends)?;
        md.push_str(&table(&reports));
    }
    println!("{md}");
    Ok(())
}

/// One `sentinel-load` run: a report per backend.
fn load(
    root: &Path,
    a: &ServerArgs,
    agents: usize,
    backends: &[String],
) -> anyhow::Result<Vec<Value>> {
    let mut c = Command::new(root.join("target/release/sentinel-load"));
    c.arg("--sentinel")
        .arg(root.join("target/release/sentinel"))
        .arg("--backends")
        .arg(backends.join(","))
        .arg("--agents")
        .arg(agents.to_string())
        .arg("--compression")
        .arg(a.compression.to_string())
        .arg("--secs")
        .arg(a.secs.to_string());
    if !a.faults.is_empty() {
        c.arg("--faults").arg(a.faults.join(","));
    }
    let out = c
        .stderr(Stdio::inherit())
        .output()
        .context("running sentinel-load")?;
    if !out.status.success() {
        bail!("sentinel-load failed ({})", out.status);
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).context("a sentinel-load report"))
        .collect()
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(0.0)
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

/// The quantiles of a request kind: "p50 / p95 / p99 (n)".
fn quantiles(v: &Value, kind: &str) -> String {
    v["latency"]
        .as_array()
        .and_then(|l| l.iter().find(|q| q["kind"] == kind))
        .map(|q| {
            format!(
                "{:.1} / {:.1} / {:.1} ({})",
                f(q, "p50_ms"),
                f(q, "p95_ms"),
                f(q, "p99_ms"),
                u(q, "count")
            )
        })
        .unwrap_or_else(|| "-".into())
}

fn worst_ingest_p99(v: &Value) -> f64 {
    v["latency"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|q| {
            matches!(
                q["kind"].as_str(),
                Some("heartbeat" | "anomaly batch" | "snapshot")
            )
        })
        .map(|q| f(q, "p99_ms"))
        .fold(0.0, f64::max)
}

fn errors(v: &Value) -> (u64, String) {
    let Some(m) = v["errors"].as_object().filter(|m| !m.is_empty()) else {
        return (0, "0".into());
    };
    let n = m.values().filter_map(Value::as_u64).sum();
    let list: Vec<String> = m
        .iter()
        .map(|(k, c)| format!("{} {k}", c.as_u64().unwrap_or(0)))
        .collect();
    (n, list.join(", "))
}

fn lost(v: &Value) -> i64 {
    (u(v, "queued_anomalies") + u(v, "queued_snapshots")) as i64
        - (u(v, "stored_anomalies") + u(v, "stored_snapshots")) as i64
}

fn mib(b: f64) -> String {
    format!("{:.1} MiB", b / (1024.0 * 1024.0))
}

/// The side-by-side table of one run per backend.
fn table(reports: &[Value]) -> String {
    let mut s = String::from("| | ");
    s.push_str(
        &reports
            .iter()
            .map(|r| r["backend"].as_str().unwrap_or("?").to_string())
            .collect::<Vec<_>>()
            .join(" | "),
    );
    s.push_str(" |\n|---|");
    s.push_str(&"---|".repeat(reports.len()));
    s.push('\n');
    let row = |s: &mut String, name: &str, cell: &dyn Fn(&Value) -> String| {
        s.push_str(&format!("| {name} |"));
        for r in reports {
            s.push_str(&format!(" {} |", cell(r)));
        }
        s.push('\n');
    };
    row(&mut s, "agents (x compression = real-time agents)", &|r| {
        format!(
            "{} x{} = {}",
            u(r, "agents"),
            f(r, "compression"),
            f(r, "equivalent_agents")
        )
    });
    row(&mut s, "load, drain (s)", &|r| {
        format!("{:.0}, {:.1}", f(r, "load_secs"), f(r, "drain_secs"))
    });
    row(&mut s, "requests/s (answered, all kinds)", &|r| {
        format!("{:.0}", f(r, "requests_per_sec"))
    });
    for kind in ["heartbeat", "anomaly batch", "snapshot", "dashboard read"] {
        row(&mut s, &format!("{kind} p50 / p95 / p99 ms (n)"), &|r| {
            quantiles(r, kind)
        });
    }
    row(&mut s, "errors (by kind: status)", &|r| errors(r).1);
    row(&mut s, "anomalies queued / stored", &|r| {
        format!(
            "{} / {}",
            u(r, "queued_anomalies"),
            u(r, "stored_anomalies")
        )
    });
    row(&mut s, "snapshots queued / stored", &|r| {
        format!(
            "{} / {}",
            u(r, "queued_snapshots"),
            u(r, "stored_snapshots")
        )
    });
    row(&mut s, "batches refused, dropped, undelivered", &|r| {
        format!(
            "{}, {}, {}",
            u(r, "rejected_batches"),
            u(r, "spool_dropped_batches"),
            u(r, "undelivered_batches")
        )
    });
    row(&mut s, "live-feed frames received", &|r| {
        u(r, "live_frames").to_string()
    });
    row(&mut s, "database growth", &|r| {
        mib(f(r, "db_bytes_end") - f(r, "db_bytes_start"))
    });
    for (name, key) in [
        ("server CPU s (share of one core)", "server_cpu_secs"),
        ("PostgreSQL CPU s (share of one core)", "database_cpu_secs"),
        (
            "load generator CPU s (share of one core)",
            "generator_cpu_secs",
        ),
    ] {
        row(&mut s, name, &|r| {
            let secs = f(r, "load_secs") + f(r, "drain_secs");
            format!(
                "{:.1} ({:.0}%)",
                f(r, key),
                100.0 * f(r, key) / secs.max(1e-9)
            )
        });
    }
    row(&mut s, "server peak RSS", &|r| {
        mib(f(r, "server_rss_peak_kib") * 1024.0)
    });
    row(&mut s, "target (p99 < 250 ms, 0 errors, 0 lost)", &|r| {
        let ok = worst_ingest_p99(r) < TARGET_P99_MS && errors(r).0 == 0 && lost(r) == 0;
        if ok { "met" } else { "missed" }.into()
    });
    row(&mut s, "load average at start", &|r| {
        r["loadavg"]
            .as_str()
            .unwrap_or("")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    });
    s
}

/// Doubling from --agents until a step fails, then bisecting, per backend.
fn step_table(root: &Path, a: &ServerArgs) -> anyhow::Result<String> {
    let mut s = String::from(
        "| backend | agents | real-time agents | requests/s | worst ingest p99 ms | errors | lost | verdict |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut summary = String::new();
    for b in &a.backends {
        let (mut good, mut bad): (Option<usize>, Option<usize>) = (None, None);
        let mut n = a.agents.max(1);
        for _ in 0..a.max_steps {
            let r = load(root, a, n, std::slice::from_ref(b))?;
            let r = r.first().context("no report")?;
            let p99 = worst_ingest_p99(r);
            let (errs, _) = errors(r);
            let pass = p99 < STEP_P99_MS && errs == 0 && lost(r) == 0;
            s.push_str(&format!(
                "| {b} | {n} | {} | {:.0} | {p99:.0} | {errs} | {} | {} |\n",
                f(r, "equivalent_agents"),
                f(r, "requests_per_sec"),
                lost(r),
                if pass { "under 1 s" } else { "over" }
            ));
            eprintln!("bench: {b} {n} agents: worst ingest p99 {p99:.0} ms, {errs} errors");
            if pass {
                good = Some(n);
            } else {
                bad = Some(n);
            }
            n = match (good, bad) {
                (Some(g), None) => g * 2,
                (g, Some(x)) => {
                    let g = g.unwrap_or(0);
                    // Bisect to within an eighth of the known good size.
                    if x - g <= (g / 8).max(1) {
                        break;
                    }
                    (g + x) / 2
                }
                (None, None) => unreachable!(),
            };
        }
        summary.push_str(&format!(
            "\nLargest fleet under 1 s p99 on {b}: {} agents at x{} ({}).\n",
            good.map_or("none".into(), |g| g.to_string()),
            a.compression,
            match bad {
                Some(x) => format!("{x} was over"),
                None => "no step was over: the search ran out of steps".into(),
            }
        ));
    }
    s.push_str(&summary);
    Ok(s)
}
