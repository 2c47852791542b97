//! `sentinel run`: wires collect -> enrich -> detect -> sinks for a live session, handles
//! Ctrl-C/SIGTERM and bounded runs, and prints the final counts.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{broadcast, mpsc};

use crate::cli::exit;
use crate::collect::{Collector, LoadOptions, Summary, parse_kinds};
use crate::config::Config;
use crate::detect::model::Anomaly;
use crate::feed::edge::{Edge, EdgeOptions};
use crate::feed::{Record, RunSummary, Status, terminal};
use crate::pipeline::{self, FeedItem, Passthrough, PipelineSnapshot, PipelineStats};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// JSON lines on stdout (schema: docs/events.md) instead of readable lines.
    #[arg(long)]
    pub json: bool,
    /// Event kinds to capture, comma separated (default: all; see docs/events.md).
    #[arg(long, value_delimiter = ',')]
    pub kinds: Vec<String>,
    /// Stop after this long (e.g. 30s, 5m, 1h); default: until Ctrl-C or SIGTERM.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Show raw events in the feed.
    #[arg(long)]
    pub events: bool,
    /// Push anomalies to a Sentinel server (`sentinel serve`), e.g. https://sentinel.example.org.
    #[arg(long, value_name = "URL", requires = "api_key")]
    pub push: Option<String>,
    /// API key for --push (a personal key from the dashboard).
    #[arg(long, env = "SENTINEL_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Also serve the dashboard from this process (settings from the [server] config section).
    #[arg(long)]
    pub serve: bool,
    /// Ignore open events under this path prefix (repeatable; adds to the config's list).
    #[arg(long = "ignore-prefix", value_name = "PREFIX")]
    pub ignore_prefixes: Vec<String>,
}

/// Parses `500ms`, `30s`, `5m`, `1h`, `2d`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (try 30s, 5m, 1h)"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        _ => {
            return Err(format!(
                "invalid duration unit {unit:?} in {s:?} (use ms, s, m, h, d)"
            ));
        }
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 1e9 {
        return Err(format!("duration {s:?} out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub async fn run(mut config: Config, args: RunArgs) -> anyhow::Result<i32> {
    if !args.kinds.is_empty() {
        config.collect.kinds = args.kinds.clone();
    }
    config
        .collect
        .ignore_prefixes
        .extend(args.ignore_prefixes.iter().cloned());
    config.validate()?;
    let kinds = parse_kinds(&config.collect.kinds).map_err(anyhow::Error::msg)?;
    let opts = LoadOptions {
        kinds,
        ignore_prefixes: config.collect.ignore_prefixes.clone(),
        ring_buffer_bytes: config.collect.ring_buffer_bytes,
        wakeup_bytes: config.collect.ring_buffer_bytes / 4,
        agent_tgid: std::process::id(),
    };
    let (collector, events) = Collector::start(
        &opts,
        Duration::from_millis(config.collect.drain_interval_ms),
        config.collect.channel_capacity,
    )
    .context("starting the kernel probes")?;

    let stdout = std::io::stdout();
    let color = terminal::use_color(std::io::IsTerminal::is_terminal(&stdout));
    let report = collector.report();
    let status = Status {
        attached: report.attached.clone(),
        failed: report.failed.clone(),
        missing_fields: report.missing_fields.clone(),
        mounted_tracefs: report.mounted_tracefs,
    };
    if args.json {
        println!("{}", Record::Status(&status).to_json());
    } else {
        if report.mounted_tracefs {
            eprintln!("sentinel: tracefs was not mounted; mounted it at /sys/kernel/tracing");
        }
        eprintln!(
            "sentinel: {} hooks attached{}; Ctrl-C to stop",
            status.attached.len(),
            if status.failed.is_empty() {
                String::new()
            } else {
                format!(", {} failed", status.failed.len())
            }
        );
        for (hook, why) in &status.failed {
            eprintln!("sentinel: hook {hook} not attached: {why}");
        }
    }

    let stats = Arc::new(PipelineStats::default());
    let (feed_tx, feed_rx) = mpsc::channel(FEED_CAPACITY);
    let analysis = pipeline::spawn_analysis(Passthrough, events, feed_tx, true, stats.clone());
    let edge = pipeline::edge(1024);
    let consumers = Edge::start(
        EdgeOptions {
            push: args.push.clone().zip(args.api_key.clone()),
            spool_dir: None,
            serve: args.serve.then(|| config.server.clone()),
            host: config.host_name(),
        },
        &edge,
    )
    .await?;
    let sink = tokio::spawn(write_feed(
        feed_rx,
        Sink {
            json: args.json,
            color,
        },
        edge.clone(),
    ));

    wait_for_stop(args.duration).await;
    let summary = collector.stop().await;
    // The collector's channel is closed now: the analysis stage drains what is queued and
    // ends, which closes the feed, which ends the sink.
    let _ = tokio::task::spawn_blocking(move || analysis.join()).await;
    let _ = sink.await;
    drop(edge);
    for (consumer, lost) in consumers.stop().await {
        if lost > 0 {
            eprintln!("sentinel: {consumer} fell behind and skipped {lost} anomalies");
        }
    }
    print_summary(&summary, &stats.snapshot(), args.json);
    Ok(if summary.total_lost() > 0 {
        exit::WARNINGS
    } else {
        exit::OK
    })
}

/// Room for this many items between the analysis stage and the sinks.
const FEED_CAPACITY: usize = 8192;

struct Sink {
    json: bool,
    color: bool,
}

async fn write_feed(
    mut rx: mpsc::Receiver<FeedItem>,
    sink: Sink,
    edge: broadcast::Sender<Arc<Anomaly>>,
) {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout());
    while let Some(item) = rx.recv().await {
        let line = match &item {
            FeedItem::Event(ev) => {
                if sink.json {
                    Record::Event(ev).to_json()
                } else {
                    terminal::event_line(ev, sink.color)
                }
            }
            FeedItem::Anomaly(a) => {
                // No receiver yet is fine: the edge is for optional consumers.
                let _ = edge.send(a.clone());
                if sink.json {
                    Record::Anomaly(a).to_json()
                } else {
                    terminal::anomaly_lines(a, sink.color)
                }
            }
        };
        // A closed stdout (e.g. piped into head) must not stop the pipeline: keep consuming.
        let _ = writeln!(out, "{line}");
        if rx.is_empty() {
            let _ = out.flush();
        }
    }
    let _ = out.flush();
}

async fn wait_for_stop(duration: Option<Duration>) {
    let sleep = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = sleep => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn print_summary(s: &Summary, p: &PipelineSnapshot, json: bool) {
    if json {
        println!(
            "{}",
            Record::Summary(&RunSummary {
                collect: s,
                pipeline: p
            })
            .to_json()
        );
        return;
    }
    let fmt = |v: &crate::collect::KindCounts| -> String {
        if v.is_empty() {
            return "none".into();
        }
        v.iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    eprintln!(
        "sentinel: events received: {} ({})",
        s.stats.total_received(),
        fmt(&s.stats.received)
    );
    eprintln!(
        "sentinel: lost in kernel (ring buffer full): {}",
        fmt(&s.kernel_lost)
    );
    eprintln!(
        "sentinel: dropped in agent (pipeline full): {}",
        fmt(&s.stats.channel_dropped)
    );
    if s.stats.decode_errors > 0 {
        eprintln!("sentinel: undecodable records: {}", s.stats.decode_errors);
    }
    if p.feed_dropped_events > 0 {
        eprintln!(
            "sentinel: events not shown (output too slow): {}",
            p.feed_dropped_events
        );
    }
    eprintln!("sentinel: anomalies: {}", p.anomalies);
    if s.unpaired > 0 {
        eprintln!(
            "sentinel: syscall exits without a seen entry: {}",
            s.unpaired
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
