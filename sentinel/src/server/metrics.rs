//! The server's own counters for the Prometheus exposition (docs/metrics.md): ingest
//! requests by outcome and their latency, live streams open, the database's size. Labels come
//! from fixed sets only (outcomes), never from hosts, users or paths.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Ingest outcomes: the label values of `sentinel_server_ingest_requests_total`.
pub const OUTCOMES: [&str; 5] = ["accepted", "invalid", "refused", "too_large", "error"];

/// Shared by the routes (writers) and the exposition (reader); cheap to clone.
#[derive(Clone, Debug)]
pub struct ServerMetrics {
    ingest: Family<[(&'static str, &'static str); 1], Counter>,
    ingest_seconds: Histogram,
    live_streams: Gauge,
    db: Arc<DbSize>,
}

impl ServerMetrics {
    pub fn new(db: PathBuf) -> ServerMetrics {
        let ingest = Family::default();
        // Every outcome from the start, at 0: rates work from the first scrape.
        for o in OUTCOMES {
            let _ = ingest.get_or_create(&[("outcome", o)]);
        }
        ServerMetrics {
            ingest,
            // 1 ms to about 16 s.
            ingest_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            live_streams: Gauge::default(),
            db: Arc::new(DbSize(db)),
        }
    }

    /// Adds the server's metrics to `registry` (names under `sentinel_server_`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "sentinel_server_ingest_requests",
            "Ingest requests (POST /api/ingest) by outcome",
            self.ingest.clone(),
        );
        registry.register(
            "sentinel_server_ingest_duration_seconds",
            "Time to answer an ingest request, in seconds",
            self.ingest_seconds.clone(),
        );
        registry.register(
            "sentinel_server_live_streams",
            "Live anomaly streams (SSE) open now",
            self.live_streams.clone(),
        );
        registry.register_collector(Box::new(self.db.clone()));
    }

    /// Counts one ingest request by its answer.
    pub fn observe_ingest(&self, status: u16, secs: f64) {
        let outcome = match status {
            200..=299 => "accepted",
            401 | 403 | 429 => "refused",
            413 => "too_large",
            400..=499 => "invalid",
            _ => "error",
        };
        self.ingest.get_or_create(&[("outcome", outcome)]).inc();
        self.ingest_seconds.observe(secs);
    }

    /// Counts a live stream as open until the guard is dropped.
    pub fn stream_opened(&self) -> StreamGuard {
        self.live_streams.inc();
        StreamGuard(self.live_streams.clone())
    }
}

/// Held by a live stream; dropping it counts the stream closed.
pub struct StreamGuard(Gauge);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Middleware on `POST /api/ingest`: outermost, so refusals by the guard and the body limit
/// are timed and counted too.
pub async fn time_ingest(State(m): State<ServerMetrics>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let r = next.run(req).await;
    m.observe_ingest(r.status().as_u16(), started.elapsed().as_secs_f64());
    r
}

/// The database's size on disk, read at each scrape: the SQLite file with its write-ahead
/// log. Absent when the database is not a local file.
#[derive(Debug)]
struct DbSize(PathBuf);

impl Collector for DbSize {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(main) = std::fs::metadata(&self.0) else {
            return Ok(());
        };
        let mut wal = self.0.clone().into_os_string();
        wal.push("-wal");
        let bytes = main.len() + std::fs::metadata(&wal).map_or(0, |m| m.len());
        let g = ConstGauge::new(bytes as i64);
        let m = enc.encode_descriptor(
            "sentinel_server_database_bytes",
            "Size of the server database on disk (with its write-ahead log), in bytes",
            None,
            MetricType::Gauge,
        )?;
        g.encode(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_latency_and_streams_are_counted() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("server.db");
        std::fs::write(&db, vec![0u8; 4096]).unwrap();
        let m = ServerMetrics::new(db);
        let mut reg = Registry::default();
        m.register(&mut reg);
        m.observe_ingest(200, 0.002);
        m.observe_ingest(200, 0.004);
        m.observe_ingest(403, 0.001);
        m.observe_ingest(413, 0.001);
        let g = m.stream_opened();
        let g2 = m.stream_opened();
        drop(g2);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &reg).unwrap();
        for line in [
            "sentinel_server_ingest_requests_total{outcome=\"accepted\"} 2",
            "sentinel_server_ingest_requests_total{outcome=\"refused\"} 1",
            "sentinel_server_ingest_requests_total{outcome=\"too_large\"} 1",
            "sentinel_server_ingest_requests_total{outcome=\"error\"} 0",
            "sentinel_server_ingest_duration_seconds_count 4",
            "sentinel_server_live_streams 1",
            "sentinel_server_database_bytes 4096",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        drop(g);
    }
}
