//! `sentinel run`: wires collect -> enrich -> detect -> sinks for a live session, answers
//! Ctrl-C/SIGTERM (from the first instant, signals.rs) and SIGHUP (reload.rs), ends bounded
//! runs, and prints the final counts.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{broadcast, mpsc};

use crate::audit::{self, LiveFact, privacy::UserHasher};
use crate::collect::{Collector, Summary};
use crate::config::Config;
use crate::detect::Engine;
use crate::edge::{Edge, EdgeOptions};
use crate::exit;
use crate::feed::{Record, RunSummary, Status, terminal};
use crate::health::{HealthSource, Identity};
use crate::model::Anomaly;
use crate::pipeline::{self, FeedItem, Passthrough, PipelineSnapshot, PipelineStats};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// JSON lines on stdout (schema: docs/events.md) instead of readable lines.
    #[arg(long)]
    pub json: bool,
    /// Event kinds to capture, comma separated (default: all; see docs/events.md).
    #[arg(long, value_delimiter = ',')]
    pub kinds: Vec<String>,
    /// Stop after this long (e.g. 30s, 5m, 1h); default: until Ctrl-C or SIGTERM.
    #[arg(long, value_parser = crate::timefmt::parse_duration)]
    pub duration: Option<Duration>,
    /// Show raw events in the feed too (always on with --no-detect).
    #[arg(long)]
    pub events: bool,
    /// Follow audit records as they arrive (auditd's log, or the kernel's read-only audit
    /// multicast group when auditd is not running) and join them to the kernel events.
    #[arg(long)]
    pub audit: bool,
    /// Events only: no process table, baselines or detections.
    #[arg(long)]
    pub no_detect: bool,
    /// Push anomalies to a Sentinel server (`sentinel serve`), e.g. https://sentinel.example.org
    /// (default: `[push] url`). The key comes from `[push] api_key_file`, --api-key-file or
    /// the SENTINEL_API_KEY environment variable.
    #[arg(long, value_name = "URL")]
    pub push: Option<String>,
    /// File with the agent's ingest key (mode 0600 or stricter).
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<std::path::PathBuf>,
    /// The key itself: visible to every local user in the process list; prefer a key file.
    #[arg(long)]
    pub api_key: Option<String>,
    /// Explain anomalies at or above `[llm] min_level` in plain words (off the hot path; the
    /// explanation follows the anomaly as a second record with the same id).
    #[arg(long)]
    pub llm: bool,
    /// Also serve the dashboard from this process (settings from the [server] config section).
    #[arg(long)]
    pub serve: bool,
    /// Ignore open events under this path prefix (repeatable; adds to the config's list).
    #[arg(long = "ignore-prefix", value_name = "PREFIX")]
    pub ignore_prefixes: Vec<String>,
    /// For `cargo xtask bench` only: attach stand-in programs that capture nothing to the same
    /// hooks, to measure what any observer of these tracepoints pays.
    #[arg(long, hide = true, value_enum)]
    pub probe_floor: Option<crate::collect::Floor>,
}

pub async fn run(
    mut config: Config,
    args: RunArgs,
    mut control: crate::reload::Reload,
) -> anyhow::Result<i32> {
    // The file's settings, before the flags: what a reload of the same file hashes to.
    let config_hash = config.hash();
    if !args.kinds.is_empty() {
        config.collect.kinds = args.kinds.clone();
    }
    config
        .collect
        .ignore_prefixes
        .extend(args.ignore_prefixes.iter().cloned());
    config.collect.floor = args.probe_floor;
    config.validate()?;
    // Outputs start before the probes: a file output in an unsafe place is a clear error.
    let outputs = crate::output::Outputs::start(&config.output, &config.host_name())
        .map_err(anyhow::Error::msg)
        .context("starting the outputs")?;
    // The push target and its key, resolved before anything starts so that a missing or
    // world-readable key file is a clear error, not a silent agent.
    let push = match args.push.clone().or_else(|| config.push.url.clone()) {
        Some(url) => {
            let file = args
                .api_key_file
                .as_deref()
                .or(config.push.api_key_file.as_deref());
            let env = std::env::var(crate::feed::push::KEY_ENV).ok();
            let key =
                crate::feed::push::resolve_key(args.api_key.as_deref(), file, env.as_deref())?;
            Some((url, key))
        }
        None => None,
    };
    let (collector, events) =
        Collector::start_with(&config.collect).context("starting the kernel probes")?;

    // Following the audit log starts before the status line: a record written after the line
    // is one the run sees.
    let audit_facts = if args.audit && !args.no_detect {
        Some(follow_audit(&config)?)
    } else {
        None
    };
    let stdout = std::io::stdout();
    let color = terminal::use_color(std::io::IsTerminal::is_terminal(&stdout));
    let report = collector.report();
    let status = Status {
        attached: report.attached.clone(),
        failed: report.failed.clone(),
        unavailable: report.unavailable.clone(),
        missing_fields: report.missing_fields.clone(),
        mounted_tracefs: report.mounted_tracefs,
        syscall_args: report.syscall_args,
    };
    outputs.send(&Record::Status(&status));
    if args.json {
        print_record(&Record::Status(&status));
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
        if !status.unavailable.is_empty() {
            eprintln!(
                "sentinel: not in this kernel (not captured): {}",
                status.unavailable.join(", ")
            );
        }
    }

    let stats = Arc::new(PipelineStats::default());
    // The agent's health: every room's live counters, for status, metrics and heartbeats.
    let health = HealthSource::new(Identity {
        host: config.host_name(),
        config_hash,
    });
    health.add(Arc::new(
        collector
            .health()
            .context("reading the kernel's loss counters")?,
    ));
    health.add(stats.clone());
    health.add(outputs.clone());
    // A safe point: the probes are attached, nothing else has started. A stop asked during
    // start-up ends here, with the summary.
    if control.signals.stop_requested() {
        // Events are taken (and let go) until the collector has stopped: a closed or full
        // channel would count the events still arriving as dropped.
        let mut events = events;
        let discard = tokio::spawn(async move { while events.recv().await.is_some() {} });
        let summary = collector.stop().await;
        let _ = discard.await;
        print_summary(&summary, &stats.snapshot(), None, args.json, &outputs);
        close_outputs(&outputs).await;
        return Ok(exit_code(&summary));
    }
    let (feed_tx, feed_rx) = pipeline::feed(FEED_EVENTS, FEED_ITEMS);
    let show_events = args.events || args.no_detect;
    // Events reach the sinks when shown or when an output takes them (at start: a reload
    // that adds an event output does not start the flow).
    let forward_events = show_events || outputs.wants(crate::output::RecordType::Event);
    let mut engine_control = None;
    let analysis = if args.no_detect {
        AnalysisThread::Events(pipeline::spawn_analysis(
            Passthrough,
            events,
            pipeline::Inputs::default(),
            feed_tx,
            true,
            stats.clone(),
        ))
    } else {
        let store = Store::open(&config.store).context("opening the agent store")?;
        let engine =
            Engine::new(&config.detect, config.host_name(), store).context("starting detection")?;
        health.add(engine.health());
        let losses = collector
            .loss_gauge()
            .context("reading the kernel's loss counters")?;
        let (tx, rx) = std::sync::mpsc::channel();
        engine_control = Some(tx);
        AnalysisThread::Detect(pipeline::spawn_analysis(
            engine,
            events,
            pipeline::Inputs {
                side: audit_facts,
                losses: Some(Box::new(losses)),
                control: Some(rx),
            },
            feed_tx,
            forward_events,
            stats.clone(),
        ))
    };
    let edge = pipeline::edge(1024);
    let mut consumers = Edge::start(
        EdgeOptions {
            push,
            spool_dir: config.push.spool_dir.clone(),
            verdict_poll_secs: config.push.verdict_poll_secs,
            serve: args.serve.then(|| config.server.clone()),
            store: (!args.no_detect).then(|| config.store.clone()),
            llm: args.llm.then(|| config.llm.clone()),
            host: config.host_name(),
            fleet: crate::feed::fleet::options(
                &config.push,
                &config.snapshot,
                &config.audit,
                health.clone(),
            ),
        },
        &edge,
    )
    .await?;
    for part in consumers.health_parts() {
        health.add(part);
    }
    // Rates and recent losses are measured between samples: one every few seconds keeps
    // them fresh whoever asks.
    let sampler = {
        let health = health.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                health.snapshot();
            }
        })
    };
    let watch = Watch::start(&config, health.clone(), consumers.server_metrics()).await?;
    let sink = tokio::spawn(write_feed(
        feed_rx,
        consumers.explained.take(),
        consumers.explained_incidents.take(),
        Sink {
            json: args.json,
            color,
            show_events,
            outputs: outputs.clone(),
        },
        edge.clone(),
    ));
    // Bounded disk: the store's old anomalies and incidents go, at start and periodically.
    let retention_stats = Arc::new(crate::retention::RetentionStats::default());
    let retention = (!args.no_detect).then(|| {
        health.add(retention_stats.clone());
        crate::retention::spawn(
            config.store.clone(),
            config.retention.clone(),
            retention_stats.clone(),
        )
    });

    // Under systemd (Type=notify): started once the hooks are attached and every consumer runs;
    // the watchdog is pinged from this loop, so a wedged control loop is restarted.
    crate::service::ready(&ready_status(&status));
    let mut watchdog = crate::service::Watchdog::from_env();

    // Until --duration is up or a stop is asked (at once if one was during start-up);
    // SIGHUP reloads the configuration meanwhile.
    let deadline = until(args.duration);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            _ = watchdog.tick() => watchdog.ping(),
            r = control.signals.next() => match r {
                crate::signals::Request::Stop => break,
                crate::signals::Request::Reload => {
                    if crate::reload::reload(
                        control.path.as_deref(),
                        engine_control.as_ref(),
                        Some(&outputs),
                    )
                    .await
                        && let Ok(fresh) = Config::load(control.path.as_deref())
                    {
                        health.set_config_hash(fresh.hash());
                    }
                }
            },
        }
    }
    crate::service::stopping();
    drop(engine_control);
    sampler.abort();
    if let Some(r) = retention {
        r.abort();
    }
    let summary = collector.stop().await;
    // The collector's channel is closed now: the analysis stage drains what is queued and
    // ends, which closes the feed, which ends the sink.
    let detect_stats = tokio::task::spawn_blocking(move || analysis.join())
        .await
        .ok()
        .flatten();
    let _ = sink.await;
    drop(edge);
    watch.stop().await;
    for (consumer, lost) in consumers.stop().await {
        if lost > 0 {
            eprintln!("sentinel: {consumer} fell behind and skipped {lost} anomalies");
        }
    }
    print_summary(
        &summary,
        &stats.snapshot(),
        detect_stats.as_ref(),
        args.json,
        &outputs,
    );
    close_outputs(&outputs).await;
    Ok(exit_code(&summary))
}

/// What lets others watch the running agent: the metrics endpoint and the status socket.
struct Watch {
    endpoint: Option<crate::metrics::http::Endpoint>,
    socket: Option<crate::metrics::socket::StatusSocket>,
}

impl Watch {
    async fn start(
        config: &Config,
        health: Arc<HealthSource>,
        server: Option<crate::server::metrics::ServerMetrics>,
    ) -> anyhow::Result<Watch> {
        let endpoint = match config.metrics.agent_addr().map_err(anyhow::Error::msg)? {
            Some(addr) => {
                let mut registry = crate::metrics::registry(Some(health.clone()));
                if let Some(s) = &server {
                    s.register(&mut registry);
                }
                let e = crate::metrics::http::Endpoint::start(addr, registry)
                    .await
                    .with_context(|| format!("metrics endpoint on {addr}"))?;
                eprintln!("sentinel: metrics on http://{}/metrics", e.addr);
                Some(e)
            }
            None => None,
        };
        // Without the socket the agent still watches: `sentinel status` just cannot ask.
        let socket = if config.status.enabled {
            match crate::metrics::socket::StatusSocket::start(&config.status.socket, health).await {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(target: "sentinel::agent", "status socket not served: {e}");
                    None
                }
            }
        } else {
            None
        };
        Ok(Watch { endpoint, socket })
    }

    async fn stop(self) {
        if let Some(s) = self.socket {
            s.stop().await;
        }
        if let Some(e) = self.endpoint {
            e.stop().await;
        }
    }
}

/// Lets the outputs write what they hold, then tells their counters when any record was
/// dropped or failed (stderr; the summary record was already written).
async fn close_outputs(outputs: &crate::output::Outputs) {
    for c in outputs.close().await {
        let line = format!(
            "sentinel: output {}: {} records written, {} dropped, {} errors",
            c.name, c.written, c.dropped, c.errors
        );
        if c.dropped > 0 || c.errors > 0 {
            eprintln!("{line}");
        } else {
            tracing::info!(target: "sentinel::output", "{}", &line["sentinel: ".len()..]);
        }
    }
}

/// The unit's status line once started, e.g. "watching: 60 hooks attached, 2 failed".
fn ready_status(status: &Status) -> String {
    let mut s = format!("watching: {} hooks attached", status.attached.len());
    if !status.failed.is_empty() {
        s.push_str(&format!(", {} failed", status.failed.len()));
    }
    s
}

/// 1 when events were lost, else 0.
fn exit_code(summary: &Summary) -> i32 {
    if summary.total_lost() > 0 {
        exit::WARNINGS
    } else {
        exit::OK
    }
}

/// Returns after `duration`, or never.
async fn until(duration: Option<Duration>) {
    match duration {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Starts following audit records and classifying them (usernames hashed, secrets redacted)
/// into facts for the analysis stage. Follows auditd's log when auditd runs, else the kernel's
/// read-only multicast group, so Sentinel never competes with auditd for the audit socket.
fn follow_audit(config: &Config) -> anyhow::Result<mpsc::Receiver<LiveFact>> {
    let follower = if audit::reader::auditd_running() {
        eprintln!("sentinel: following {}", config.audit.log_path.display());
        audit::follow(config.audit.log_path.clone())
    } else {
        eprintln!("sentinel: auditd is not running; reading the kernel's audit multicast group");
        audit::follow_multicast(Default::default()).context("joining the audit multicast group")?
    };
    let hasher = UserHasher::load_or_create(&config.audit.hmac_key_path).unwrap_or_else(|e| {
        tracing::warn!(target: "sentinel::agent", "audit: {e}; user names hashed with a one-run key");
        UserHasher::ephemeral()
    });
    let (tx, rx) = mpsc::channel(4096);
    let audit::Follower { mut events, stats } = follower;
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            if tx.send(audit::classify(&ev, &hasher)).await.is_err() {
                break;
            }
        }
        let dropped = stats.dropped.load(std::sync::atomic::Ordering::Relaxed);
        if dropped > 0 {
            eprintln!("sentinel: audit records dropped (follower behind): {dropped}");
        }
    });
    Ok(rx)
}

/// The analysis stage's thread, whichever analyzer it runs.
enum AnalysisThread {
    Events(std::thread::JoinHandle<Passthrough>),
    Detect(std::thread::JoinHandle<Engine>),
}

impl AnalysisThread {
    /// Waits for the stage to drain and end (it ends when the collector's channel closes);
    /// gives the engine's counts back.
    fn join(self) -> Option<crate::detect::Stats> {
        let (ok, stats) = match self {
            AnalysisThread::Events(h) => (h.join().is_ok(), None),
            AnalysisThread::Detect(h) => match h.join() {
                Ok(engine) => (true, Some(engine.stats())),
                Err(_) => (false, None),
            },
        };
        if !ok {
            tracing::error!(target: "sentinel::agent", "the analysis stage panicked");
        }
        stats
    }
}

/// Room for this many events between the analysis stage and the sinks, and for this many
/// items (runs of events, anomalies): a full feed drops events (counted), an anomaly waits.
const FEED_EVENTS: usize = 8192;
const FEED_ITEMS: usize = 1024;

struct Sink {
    json: bool,
    color: bool,
    /// Events on stdout (they may flow for the outputs only).
    show_events: bool,
    outputs: Arc<crate::output::Outputs>,
}

/// Feed items written between two looks at the channel.
const FEED_BATCH: usize = 256;

async fn write_feed(
    mut rx: pipeline::FeedRx,
    mut explained: Option<mpsc::Receiver<Anomaly>>,
    mut stories: Option<mpsc::Receiver<crate::incident::Incident>>,
    sink: Sink,
    edge: broadcast::Sender<Arc<Anomaly>>,
) {
    let mut out = FeedOut::default();
    // Items are taken a batch at a time: one wake-up and one lock per batch, not per event.
    let mut batch: Vec<FeedItem> = Vec::with_capacity(FEED_BATCH);
    let mut incidents = crate::incident::Tracker::default();
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, FEED_BATCH) => if n == 0 {
                break;
            },
            Some(a) = async { match explained.as_mut() { Some(e) => e.recv().await, None => None } } => {
                batch.push(FeedItem::Anomaly(Arc::new(a)));
            }
            // An incident's story (`--llm`): shown as the incident again, with its explanation.
            Some(i) = async { match stories.as_mut() { Some(s) => s.recv().await, None => None } } => {
                sink.outputs.send(&Record::Incident(&i));
                out.incident(&i, &sink);
            }
        }
        // The outputs in force for this batch (a reload applies from the next one).
        let outputs = sink.outputs.current();
        for item in batch.drain(..) {
            match item {
                FeedItem::Events(run) => {
                    for ev in &run {
                        outputs.send(&Record::Event(ev));
                        if !sink.show_events {
                            continue;
                        }
                        if sink.json {
                            out.json(&Record::Event(ev));
                        } else {
                            out.line(terminal::event_line(ev, sink.color));
                        }
                        out.flush_if_full();
                    }
                }
                FeedItem::Anomaly(a) => {
                    // No receiver yet is fine: the edge is for optional consumers.
                    let _ = edge.send(a.clone());
                    outputs.send(&Record::Anomaly(&a));
                    if sink.json {
                        out.json(&Record::Anomaly(&a));
                    } else {
                        out.line(terminal::anomaly_lines(&a, sink.color));
                    }
                    if let Some(i) = incidents.observe(&a) {
                        outputs.send(&Record::Incident(&i));
                        out.incident(&i, &sink);
                    }
                    out.flush_if_full();
                }
            }
        }
        if rx.is_empty() {
            out.flush();
        }
    }
    out.flush();
    drop(explained);
    drop(stories);
}

/// What the feed writes to stdout, gathered and written in blocks of about 64 KiB. A closed
/// stdout (e.g. piped into head) must not stop the pipeline: write errors are ignored and the
/// block is dropped, so the buffer never grows without bound.
#[derive(Default)]
struct FeedOut(Vec<u8>);

impl FeedOut {
    const BLOCK: usize = 1 << 16;

    fn json(&mut self, r: &Record) {
        // A record that does not serialize is left out whole (nothing half-written).
        let _ = r.write_json_line(&mut self.0);
    }

    fn line(&mut self, text: String) {
        self.0.extend_from_slice(text.as_bytes());
        self.0.push(b'\n');
    }

    fn incident(&mut self, i: &crate::incident::Incident, sink: &Sink) {
        if sink.json {
            self.json(&Record::Incident(i));
        } else {
            self.line(terminal::incident_lines(i, sink.color));
        }
    }

    fn flush_if_full(&mut self) {
        if self.0.len() >= Self::BLOCK {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if !self.0.is_empty() {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(&self.0).and_then(|()| stdout.flush());
            self.0.clear();
        }
    }
}

/// Resolves after `duration`, or at Ctrl-C or SIGTERM, whichever comes first. The signal
/// handlers are installed when this is called, not when the future is first polled: a SIGTERM
/// that arrives between the "hooks attached" line and the wait stops the run cleanly instead
/// of killing it with the default action.
pub(crate) fn wait_for_stop(duration: Option<Duration>) -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate()).ok();
    let int = signal(SignalKind::interrupt()).ok();
    async move {
        let sleep = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let on = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            _ = on(int) => {}
            _ = on(term) => {}
        }
    }
}

/// One JSON line to stdout. A reader that went away (`sentinel run --json | head`) is no reason to
/// stop watching, nor to panic as `println!` would.
fn print_record(r: &Record) {
    let mut out = FeedOut::default();
    out.json(r);
    out.flush();
}

fn print_summary(
    s: &Summary,
    p: &PipelineSnapshot,
    detect: Option<&crate::detect::Stats>,
    json: bool,
    outputs: &crate::output::Outputs,
) {
    let record = RunSummary {
        collect: s,
        pipeline: p,
        detect,
    };
    outputs.send(&Record::Summary(&record));
    if json {
        print_record(&Record::Summary(&record));
        return;
    }
    if let Some(d) = detect {
        for x in &d.exceptions {
            eprintln!(
                "sentinel: exception [{}] suppressed {} factors",
                x.exception, x.suppressed
            );
        }
        if d.provenance_evicted > 0 {
            eprintln!(
                "sentinel: provenance records evicted (detect.provenance_cap): {}",
                d.provenance_evicted
            );
        }
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
