//! The agent's metrics: one `AgentHealth` snapshot per scrape, written as Prometheus
//! families (names and labels in docs/metrics.md). Labels come from fixed sets only: event
//! kind, level, detection id, hook, baseline family and state, edge consumer.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use sentinel_common::Kind;

use crate::health::{AgentHealth, HealthSource, Verdict};

/// Reads the agent's health at each scrape.
pub struct AgentCollector(pub Arc<HealthSource>);

impl std::fmt::Debug for AgentCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentCollector")
    }
}

type Fmt = Result<(), std::fmt::Error>;

/// Writes families: a value, or a value per label value.
struct Out<'a>(DescriptorEncoder<'a>);

impl Out<'_> {
    fn one(&mut self, name: &str, help: &str, t: MetricType, v: f64) -> Fmt {
        let m = self.0.encode_descriptor(name, help, None, t)?;
        value(m, t, v)
    }

    fn counter(&mut self, name: &str, help: &str, v: u64) -> Fmt {
        self.one(name, help, MetricType::Counter, v as f64)
    }

    fn gauge(&mut self, name: &str, help: &str, v: f64) -> Fmt {
        self.one(name, help, MetricType::Gauge, v)
    }

    /// One family with a label; nothing at all when `values` is empty.
    fn by<'v>(
        &mut self,
        name: &str,
        help: &str,
        t: MetricType,
        label: &str,
        values: impl IntoIterator<Item = (&'v str, f64)>,
    ) -> Fmt {
        let values: Vec<(&str, f64)> = values.into_iter().collect();
        if values.is_empty() {
            return Ok(());
        }
        let mut m = self.0.encode_descriptor(name, help, None, t)?;
        for (l, v) in values {
            let labels = [(label, l)];
            value(m.encode_family(&labels)?, t, v)?;
        }
        Ok(())
    }
}

/// One sample: counters as integers, gauges as integers when they are whole ("3", not "3.0").
fn value(m: prometheus_client::encoding::MetricEncoder, t: MetricType, v: f64) -> Fmt {
    match t {
        MetricType::Counter => ConstCounter::new(v.max(0.0) as u64).encode(m),
        _ if v.fract() == 0.0 && v.abs() < 9e15 => ConstGauge::new(v as i64).encode(m),
        _ => ConstGauge::new(v).encode(m),
    }
}

/// Every kind, 0 where none was counted: rates work from the first scrape.
fn per_kind(
    m: &std::collections::BTreeMap<String, u64>,
) -> impl Iterator<Item = (&'static str, f64)> {
    Kind::ALL
        .iter()
        .map(|k| (k.name(), m.get(k.name()).copied().unwrap_or(0) as f64))
}

fn secs(ns: i64) -> f64 {
    ns as f64 / 1e9
}

impl Collector for AgentCollector {
    fn encode(&self, enc: DescriptorEncoder) -> Fmt {
        encode(&self.0.snapshot(), &mut Out(enc))
    }
}

fn encode(h: &AgentHealth, o: &mut Out) -> Fmt {
    use MetricType::{Counter as C, Gauge as G};
    {
        let labels = [
            ("version", h.version.as_str()),
            ("kernel_release", h.kernel_release.as_str()),
            ("config_hash", h.config_hash.as_str()),
        ];
        let mut m = o.0.encode_descriptor(
            "sentinel_agent_info",
            "The agent's version, kernel release and configuration hash (value 1)",
            None,
            G,
        )?;
        ConstGauge::new(1i64).encode(m.encode_family(&labels)?)?;
    }
    o.gauge(
        "sentinel_agent_start_time_seconds",
        "When the agent started, Unix time in seconds",
        secs(h.started_ns),
    )?;
    o.gauge(
        "sentinel_agent_uptime_seconds",
        "Seconds since the agent started",
        h.uptime_secs,
    )?;
    o.gauge(
        "sentinel_agent_healthy",
        "1 when healthy, 0 when degraded (hook failed, events lost in the last 5 minutes, or pushing failing)",
        if h.verdict() == Verdict::Healthy { 1.0 } else { 0.0 },
    )?;
    // Hooks: 1 attached, 0 failed to attach.
    o.by(
        "sentinel_hook_attached",
        "Kernel hooks: 1 attached, 0 failed to attach",
        G,
        "hook",
        h.hooks
            .attached
            .iter()
            .map(|a| (a.as_str(), 1.0))
            .chain(h.hooks.failed.iter().map(|f| (f.hook.as_str(), 0.0))),
    )?;
    o.gauge(
        "sentinel_hooks_unavailable",
        "Captured syscalls this kernel does not have (not failures)",
        h.hooks.unavailable.len() as f64,
    )?;
    let e = &h.events;
    o.by(
        "sentinel_events",
        "Events received from the kernel, by kind",
        C,
        "kind",
        per_kind(&e.per_kind),
    )?;
    o.by(
        "sentinel_events_kernel_lost",
        "Records the kernel could not send because the ring buffer was full, by kind",
        C,
        "kind",
        per_kind(&e.kernel_lost),
    )?;
    o.by(
        "sentinel_events_channel_dropped",
        "Events dropped because the analysis stage was full, by kind",
        C,
        "kind",
        per_kind(&e.channel_dropped),
    )?;
    o.counter(
        "sentinel_events_decode_errors",
        "Ring buffer records that could not be decoded",
        e.decode_errors,
    )?;
    o.counter(
        "sentinel_events_unpaired_exits",
        "Syscall exits seen without their entry (calls begun before the hooks attached)",
        e.unpaired_exits,
    )?;
    o.gauge(
        "sentinel_ring_buffer_size_bytes",
        "Size of the kernel ring buffer in bytes",
        e.ring_buffer_bytes as f64,
    )?;
    o.gauge(
        "sentinel_ring_buffer_fill_ratio",
        "Share of the ring buffer waiting at the last drain (0-1)",
        e.ring_buffer_fill,
    )?;
    o.gauge(
        "sentinel_ring_buffer_peak_fill_ratio",
        "Highest share of the ring buffer waiting at one drain since start (0-1)",
        e.ring_buffer_peak_fill,
    )?;
    if let Some(t) = e.last_event_ns {
        o.gauge(
            "sentinel_last_event_timestamp_seconds",
            "Time of the last event analysed, Unix time in seconds",
            secs(t),
        )?;
    }
    let p = &h.pipeline;
    o.counter(
        "sentinel_pipeline_analyzed_events",
        "Events through the analysis stage",
        p.analyzed,
    )?;
    o.gauge(
        "sentinel_pipeline_queued_events",
        "Events received and not yet analysed",
        p.queued as f64,
    )?;
    o.gauge(
        "sentinel_pipeline_lag_seconds",
        "How far behind its events the analysis stage was at its last batch (0 when idle)",
        p.lag_secs,
    )?;
    o.counter(
        "sentinel_feed_dropped_events",
        "Events not shown on the feed because its output was too slow",
        p.feed_dropped_events,
    )?;
    let a = &h.anomalies;
    o.by(
        "sentinel_anomalies",
        "Anomalies raised, by level",
        C,
        "level",
        a.per_level.iter().map(|(l, n)| (l.as_str(), *n as f64)),
    )?;
    o.by(
        "sentinel_anomaly_detections",
        "Anomalies carrying a factor of each detection",
        C,
        "detection",
        a.per_detection.iter().map(|(d, n)| (d.as_str(), *n as f64)),
    )?;
    if let Some(d) = &h.detect {
        o.gauge(
            "sentinel_processes",
            "Processes in the process table",
            d.processes as f64,
        )?;
        o.counter(
            "sentinel_windows_learned",
            "Windows learned into the baselines",
            d.windows_learned,
        )?;
        o.counter(
            "sentinel_windows_rejected",
            "Windows not learned because they scored high",
            d.windows_rejected,
        )?;
        o.gauge(
            "sentinel_provenance_files",
            "Files whose writer is remembered (provenance)",
            d.provenance_files as f64,
        )?;
        if !d.baselines.is_empty() {
            let mut m = o.0.encode_descriptor(
                "sentinel_baselines",
                "Baseline profiles by family and calibration state",
                None,
                G,
            )?;
            for (family, s) in &d.baselines {
                for (state, n) in [
                    ("learning", s.learning),
                    ("calibrating", s.calibrating),
                    ("calibrated", s.calibrated),
                ] {
                    let labels = [("family", family.as_str()), ("state", state)];
                    ConstGauge::new(n as i64).encode(m.encode_family(&labels)?)?;
                }
            }
        }
    }
    if let Some(p) = &h.push {
        o.counter(
            "sentinel_push_batches_sent",
            "Batches the server accepted",
            p.batches_sent,
        )?;
        o.counter(
            "sentinel_push_items_sent",
            "Items in accepted batches",
            p.items_sent,
        )?;
        o.counter(
            "sentinel_push_failures",
            "Push attempts that failed and will be retried",
            p.failures,
        )?;
        o.gauge(
            "sentinel_push_consecutive_failures",
            "Failed attempts since the last accepted batch",
            p.consecutive_failures as f64,
        )?;
        o.counter(
            "sentinel_push_rejected_batches",
            "Batches the server refused for good",
            p.rejected,
        )?;
        o.gauge(
            "sentinel_push_queue_items",
            "Items waiting in memory for the spool",
            p.queue as f64,
        )?;
        o.gauge(
            "sentinel_push_spool_files",
            "Batches on disk not yet accepted",
            p.spool_files as f64,
        )?;
        o.gauge(
            "sentinel_push_spool_bytes",
            "Size of the batches on disk not yet accepted, in bytes",
            p.spool_bytes as f64,
        )?;
        o.counter(
            "sentinel_push_verdicts",
            "Server verdicts applied",
            p.verdicts,
        )?;
        if let Some(t) = p.last_success_ns {
            o.gauge(
                "sentinel_push_last_success_timestamp_seconds",
                "Time of the last accepted batch, Unix time in seconds",
                secs(t),
            )?;
        }
    }
    if let Some(l) = &h.llm {
        o.counter(
            "sentinel_llm_submitted",
            "Anomalies and incidents queued for explanation",
            l.submitted,
        )?;
        o.counter(
            "sentinel_llm_explained",
            "Explanations given (model or local)",
            l.explained,
        )?;
        o.counter(
            "sentinel_llm_requests",
            "Requests sent to the model, retries included",
            l.requests,
        )?;
        o.counter(
            "sentinel_llm_failures",
            "Model calls that failed",
            l.failures,
        )?;
        o.counter(
            "sentinel_llm_local_fallbacks",
            "Explanations made locally instead of by the model",
            l.local_fallbacks,
        )?;
        o.counter(
            "sentinel_llm_dropped",
            "Explanations not queued because the queue was full",
            l.dropped_full,
        )?;
        o.counter(
            "sentinel_llm_budget_exhausted",
            "Explanations made locally because the hourly budget was spent",
            l.budget_exhausted,
        )?;
        o.gauge(
            "sentinel_llm_budget_calls_per_hour",
            "The hourly budget of model calls",
            l.calls_per_hour as f64,
        )?;
        o.gauge(
            "sentinel_llm_budget_left",
            "Model calls the budget allows now",
            l.budget_left as f64,
        )?;
    }
    o.by(
        "sentinel_edge_lagged_anomalies",
        "Anomalies an edge consumer (store, push, serve, llm) skipped because it fell behind",
        C,
        "consumer",
        h.edge_lagged.iter().map(|(c, n)| (c.as_str(), *n as f64)),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{HealthPart, HookFailure, Identity};
    use prometheus_client::registry::Registry;

    struct Fixed(AgentHealth);

    impl HealthPart for Fixed {
        fn fill(&self, h: &mut AgentHealth) {
            let mut f = self.0.clone();
            f.version = h.version.clone();
            f.kernel_release = h.kernel_release.clone();
            f.config_hash = h.config_hash.clone();
            f.uptime_secs = h.uptime_secs;
            *h = f;
        }
    }

    fn exposition(h: AgentHealth) -> String {
        let src = HealthSource::new(Identity {
            host: "h".into(),
            config_hash: "c0ffee".into(),
        });
        src.add(Arc::new(Fixed(h)));
        let mut reg = Registry::default();
        reg.register_collector(Box::new(AgentCollector(src)));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &reg).unwrap();
        text
    }

    #[test]
    fn counters_gauges_and_labels_from_fixed_sets() {
        let mut h = AgentHealth::default();
        h.hooks.attached = vec!["sched_process_exec".into()];
        h.hooks.failed = vec![HookFailure {
            hook: "sys_exit_openat".into(),
            reason: "x".into(),
        }];
        h.events.per_kind.insert("exec".into(), 42);
        h.events.kernel_lost.insert("open".into(), 3);
        h.anomalies.per_level.insert("high".into(), 2);
        h.anomalies.per_detection.insert("exec_from_tmp".into(), 2);
        h.detect = Some(Default::default());
        let t = exposition(h);
        for line in [
            "# TYPE sentinel_events_total counter",
            "sentinel_events_total{kind=\"exec\"} 42",
            "sentinel_events_total{kind=\"open\"} 0",
            "sentinel_events_kernel_lost_total{kind=\"open\"} 3",
            "sentinel_hook_attached{hook=\"sched_process_exec\"} 1",
            "sentinel_hook_attached{hook=\"sys_exit_openat\"} 0",
            "sentinel_anomalies_total{level=\"high\"} 2",
            "sentinel_anomaly_detections_total{detection=\"exec_from_tmp\"} 2",
            "sentinel_agent_healthy 0",
            "sentinel_processes 0",
        ] {
            assert!(t.lines().any(|l| l == line), "{line:?} not in\n{t}");
        }
        assert!(t.contains("config_hash=\"c0ffee\""));
        assert!(
            !t.contains("sentinel_push_"),
            "no push client, no push metrics"
        );
        // No label outside the fixed sets.
        for l in t.lines().filter(|l| !l.starts_with('#')) {
            if let Some(i) = l.find('{') {
                let labels = &l[i + 1..l.find('}').unwrap()];
                for pair in labels.split("\",") {
                    let key = pair.split('=').next().unwrap();
                    assert!(
                        [
                            "kind",
                            "level",
                            "detection",
                            "hook",
                            "family",
                            "state",
                            "consumer",
                            "version",
                            "kernel_release",
                            "config_hash"
                        ]
                        .contains(&key),
                        "label {key} in {l}"
                    );
                }
            }
        }
    }
}
