//! Consumers at the edge of the pipeline, fed by the anomaly broadcast: the agent store, the
//! push client to a remote server and the in-process dashboard (`sentinel run --serve`). Each may lag; a
//! lagging consumer loses the oldest anomalies and counts them, it never slows detection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::feed::push::{PushConfig, Pusher};
use crate::health::{AgentHealth, HealthPart};
use crate::model::Anomaly;
use crate::server::{Server, ServerConfig, ServerHandle};
use crate::store::Store;

/// What to start.
#[derive(Default)]
pub struct EdgeOptions {
    /// Push anomalies to this server with this API key.
    pub push: Option<(String, String)>,
    pub spool_dir: Option<std::path::PathBuf>,
    /// How often an idle push client asks for verdicts (`[push] verdict_poll_secs`).
    pub verdict_poll_secs: Option<u64>,
    /// Serve the dashboard in this process.
    pub serve: Option<ServerConfig>,
    /// Explain anomalies at or above `[llm] min_level` with the configured model.
    pub llm: Option<crate::explain::LlmConfig>,
    /// Keep every anomaly in the agent store (for `sentinel analyze --anomaly ID`).
    pub store: Option<std::path::PathBuf>,
    pub host: String,
    /// Heartbeats, snapshots and the spool cap of the push client (feed/fleet.rs).
    pub fleet: FleetOptions,
}

pub use crate::feed::fleet::FleetOptions;

pub struct Edge {
    /// Anomalies coming back with their explanation, for the sinks to show and pass on.
    pub explained: Option<tokio::sync::mpsc::Receiver<Anomaly>>,
    /// Incident states with their story (`--llm`), for the feed to show; already pushed.
    pub explained_incidents: Option<tokio::sync::mpsc::Receiver<crate::incident::Incident>>,
    /// Passes explained incidents on to the push client and the feed.
    incident_fanout: Option<JoinHandle<()>>,
    explainer: Option<crate::explain::ExplainerHandle>,
    consumers: Vec<(&'static str, JoinHandle<u64>)>,
    /// Anomalies each consumer skipped so far (live, for the agent's health).
    lagged: Vec<(&'static str, Arc<AtomicU64>)>,
    pusher: Option<Arc<Pusher>>,
    server: Option<Arc<ServerHandle>>,
    local_verdicts: Option<JoinHandle<()>>,
    snapshots: Option<JoinHandle<()>>,
}

/// Lagged (lost) anomalies per consumer.
pub type EdgeReport = Vec<(&'static str, u64)>;

impl Edge {
    pub async fn start(
        opts: EdgeOptions,
        tx: &broadcast::Sender<Arc<Anomaly>>,
    ) -> anyhow::Result<Edge> {
        let mut edge = Edge {
            explained: None,
            explained_incidents: None,
            incident_fanout: None,
            explainer: None,
            consumers: Vec::new(),
            lagged: Vec::new(),
            pusher: None,
            server: None,
            local_verdicts: None,
            snapshots: None,
        };
        if let Some(cfg) = opts.llm {
            let mut handle =
                crate::explain::Explainer::spawn(&cfg).context("starting the explainer")?;
            let submitter = handle.submitter.clone();
            // Incidents high or above get one story of the whole session, told again when
            // the level rises or a tactic is added (within the same calls-per-hour budget).
            let stories = std::sync::Mutex::new((
                crate::incident::Tracker::default(),
                crate::explain::incident::StoryGate::new(
                    cfg.min_level.max(crate::model::Level::High),
                ),
            ));
            edge.push_consumer("llm", tx.subscribe(), move |a| {
                // Already explained: this is the explanation coming back round.
                if a.explanation.is_none()
                    && let Err(e) = submitter.try_submit((*a).clone())
                {
                    tracing::debug!(target: "sentinel::feed", "not explained: {e}");
                }
                let story = stories.lock().ok().and_then(|mut g| {
                    let (tracker, gate) = &mut *g;
                    tracker.observe(&a).filter(|i| gate.should_tell(i))
                });
                if let Some(i) = story
                    && let Err(e) = submitter.try_submit_incident(i)
                {
                    tracing::debug!(target: "sentinel::feed", "incident not explained: {e}");
                }
                std::future::ready(())
            });
            // The sinks take the explained anomalies; the handle stays here for its counters.
            let (_, closed) = tokio::sync::mpsc::channel(1);
            edge.explained = Some(std::mem::replace(&mut handle.explained, closed));
            let (_, closed) = tokio::sync::mpsc::channel(1);
            edge.explained_incidents =
                Some(std::mem::replace(&mut handle.explained_incidents, closed));
            edge.explainer = Some(handle);
        }
        if let Some(path) = opts.store.clone() {
            let store = Arc::new(std::sync::Mutex::new(
                Store::open(&path).context("opening the agent store")?,
            ));
            // The store keeps incidents too, built from the same anomalies as the feed's.
            let incidents = Arc::new(std::sync::Mutex::new(crate::incident::Tracker::default()));
            edge.push_consumer("store", tx.subscribe(), move |a| {
                let store = store.clone();
                let incidents = incidents.clone();
                async move {
                    let r = tokio::task::spawn_blocking(move || {
                        let incident = incidents.lock().ok().and_then(|mut t| t.observe(&a));
                        match store.lock() {
                            Ok(s) => s.put_anomaly(&a).map_err(|e| e.to_string()).and_then(|()| {
                                match incident {
                                    Some(i) => s.put_incident(&i).map_err(|e| e.to_string()),
                                    None => Ok(()),
                                }
                            }),
                            Err(_) => Err("store lock poisoned".to_string()),
                        }
                    })
                    .await;
                    if let Ok(Err(e)) = r {
                        tracing::warn!(target: "sentinel::feed", "storing an anomaly: {e}");
                    }
                }
            });
        }
        if let Some((url, key)) = opts.push {
            let spool = opts
                .spool_dir
                .unwrap_or_else(|| crate::feed::push::DEFAULT_SPOOL.into());
            let mut cfg = PushConfig::new(&url, &key, spool);
            cfg.host = Some(opts.host.clone());
            // Verdicts given on the server apply to the store the engine reads them from.
            cfg.store = opts.store.clone();
            if let Some(s) = opts.verdict_poll_secs {
                cfg.verdict_poll = Duration::from_secs(s.max(1));
            }
            if let Some(m) = opts.fleet.spool_max_bytes {
                cfg.spool_max_bytes = m;
            }
            cfg.heartbeat = opts.fleet.heartbeat.clone();
            let pusher = Arc::new(Pusher::start(cfg).context("starting the push client")?);
            if let Some((every, snapshot, audit)) = opts.fleet.snapshots.clone() {
                edge.snapshots = Some(tokio::spawn(crate::feed::fleet::snapshot_loop(
                    crate::feed::fleet::Snapshots {
                        every,
                        host: opts.host.clone(),
                        snapshot,
                        audit,
                    },
                    pusher.clone(),
                )));
            }
            let p = pusher.clone();
            // Incidents are pushed as they grow, built from the same anomalies as the feed's.
            let incidents = Arc::new(std::sync::Mutex::new(crate::incident::Tracker::default()));
            edge.push_consumer("push", tx.subscribe(), move |a| {
                let p = p.clone();
                let incident = incidents.lock().ok().and_then(|mut t| t.observe(&a));
                async move {
                    if let Err(e) = p.send_anomaly((*a).clone()).await {
                        tracing::warn!(target: "sentinel::feed", "push: {e}");
                    }
                    if let Some(mut i) = incident
                        && let Err(e) = {
                            // Redacted before it leaves the host (the server does it again).
                            crate::server::incidents::redact_incident(&mut i);
                            p.send_incident(i).await
                        }
                    {
                        tracing::warn!(target: "sentinel::feed", "push: {e}");
                    }
                }
            });
            edge.pusher = Some(pusher);
        }
        if let Some(cfg) = opts.serve {
            let handle = Arc::new(Server::start(cfg).await.context("starting the dashboard")?);
            let scheme = if handle.state.tls { "https" } else { "http" };
            eprintln!("sentinel: dashboard on {scheme}://{}", handle.addr);
            let h = handle.clone();
            let incidents = Arc::new(std::sync::Mutex::new(crate::incident::Tracker::default()));
            edge.push_consumer("serve", tx.subscribe(), move |a| {
                let h = h.clone();
                let incident = incidents.lock().ok().and_then(|mut t| t.observe(&a));
                async move {
                    if let Err(e) = h.ingest_anomaly(&a).await {
                        tracing::warn!(target: "sentinel::feed", "dashboard ingest: {e}");
                    }
                    if let Some(i) = incident
                        && let Err(e) = ingest_incident(&h, i).await
                    {
                        tracing::warn!(target: "sentinel::feed", "dashboard ingest: {e}");
                    }
                }
            });
            // Verdicts given on this dashboard apply to this agent's store.
            if let Some(store) = opts.store.clone() {
                edge.local_verdicts = Some(crate::server::feedback::spawn_local_delivery(
                    handle.state.clone(),
                    opts.host.clone(),
                    store,
                    Duration::from_secs(1),
                ));
            }
            edge.server = Some(handle);
        }
        // Explained incidents go to the server as one more state of the incident (the server
        // keeps the story apart from the latest state), then to the feed.
        if let Some(mut from) = edge.explained_incidents.take() {
            let (to_feed, feed_rx) = tokio::sync::mpsc::channel(64);
            let pusher = edge.pusher.clone();
            let server = edge.server.clone();
            edge.incident_fanout = Some(tokio::spawn(async move {
                while let Some(i) = from.recv().await {
                    if let Some(h) = &server
                        && let Err(e) = ingest_incident(h, i.clone()).await
                    {
                        tracing::warn!(target: "sentinel::feed", "dashboard ingest: {e}");
                    }
                    if let Some(p) = &pusher {
                        let mut out = i.clone();
                        crate::server::incidents::redact_incident(&mut out);
                        if let Err(e) = p.send_incident(out).await {
                            tracing::warn!(target: "sentinel::feed", "push: {e}");
                        }
                    }
                    if to_feed.send(i).await.is_err() {
                        break;
                    }
                }
            }));
            edge.explained_incidents = Some(feed_rx);
        }
        Ok(edge)
    }

    /// Waits for the consumers to finish (after every sender of the broadcast is gone), then
    /// gives the push client a grace period to deliver and stops the dashboard.
    pub async fn stop(self) -> EdgeReport {
        let mut report = Vec::new();
        if let Some(h) = &self.explainer {
            let st = h.stats();
            eprintln!(
                "sentinel: explanations: {} submitted, {} explained ({} by the model, {} local), {} failures, {} not queued (full)",
                st.submitted,
                st.explained,
                st.from_llm,
                st.local_fallbacks,
                st.failures,
                st.dropped_full
            );
        }
        for (name, h) in self.consumers {
            report.push((name, h.await.unwrap_or(0)));
        }
        // Stories still being told are dropped with the run, as anomalies' explanations are.
        if let Some(t) = self.incident_fanout {
            t.abort();
            let _ = t.await;
        }
        if let Some(t) = self.snapshots {
            t.abort();
            let _ = t.await;
        }
        if let Some(p) = self.pusher.and_then(|p| Arc::try_unwrap(p).ok()) {
            let st = p.stats();
            let dropped = st
                .spool_dropped_batches
                .load(std::sync::atomic::Ordering::Relaxed);
            if dropped > 0 {
                eprintln!(
                    "sentinel: push spool full ([push] spool_max_bytes): {dropped} oldest batches ({} items) dropped",
                    st.spool_dropped_items
                        .load(std::sync::atomic::Ordering::Relaxed)
                );
            }
            p.shutdown(Duration::from_secs(5)).await;
        }
        if let Some(t) = self.local_verdicts {
            t.abort();
        }
        if let Some(s) = self.server.and_then(|s| Arc::try_unwrap(s).ok()) {
            s.shutdown().await;
        }
        report
    }
}

/// One incident state into the in-process dashboard (`--serve`), the same path as a push.
async fn ingest_incident(
    h: &ServerHandle,
    i: crate::incident::Incident,
) -> Result<(), crate::server::IngestError> {
    let batch = crate::feed::push::IngestBatch {
        // One batch per state, and another for its story (same step_count).
        batch_id: format!(
            "local-{}-{}-{}",
            if i.explanation.is_some() {
                "story"
            } else {
                "state"
            },
            i.step_count,
            i.id
        ),
        host: Some(i.host.clone()),
        incidents: vec![i],
        ..Default::default()
    };
    h.ingest(&batch).await.map(|_| ())
}

impl Edge {
    /// Starts a consumer under `name`, its lag counted live.
    fn push_consumer<F, Fut>(
        &mut self,
        name: &'static str,
        rx: broadcast::Receiver<Arc<Anomaly>>,
        f: F,
    ) where
        F: Fn(Arc<Anomaly>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let lagged = Arc::new(AtomicU64::new(0));
        self.lagged.push((name, lagged.clone()));
        self.consumers.push((name, consume(rx, f, lagged)));
    }

    /// The in-process dashboard's counters (`run --serve`), for the agent's metrics.
    pub fn server_metrics(&self) -> Option<crate::server::metrics::ServerMetrics> {
        self.server.as_ref().map(|s| s.state.metrics.clone())
    }

    /// The edge's parts of the agent's health: consumers' lag, the push client, the
    /// explainer. None of them keeps a consumer from stopping.
    pub fn health_parts(&self) -> Vec<Arc<dyn HealthPart>> {
        let mut out: Vec<Arc<dyn HealthPart>> = vec![Arc::new(EdgeHealth(self.lagged.clone()))];
        if let Some(p) = &self.pusher {
            out.push(Arc::new(p.health()));
        }
        if let Some(e) = &self.explainer {
            out.push(Arc::new(e.submitter.health()));
        }
        out
    }
}

/// Anomalies each edge consumer skipped.
struct EdgeHealth(Vec<(&'static str, Arc<AtomicU64>)>);

impl HealthPart for EdgeHealth {
    fn fill(&self, h: &mut AgentHealth) {
        h.edge_lagged = self
            .0
            .iter()
            .map(|(name, n)| (name.to_string(), n.load(Relaxed)))
            .collect();
    }
}

/// Runs `f` for every anomaly until the broadcast closes; returns how many were lost to lag
/// (also counted live in `counted`).
fn consume<F, Fut>(
    mut rx: broadcast::Receiver<Arc<Anomaly>>,
    f: F,
    counted: Arc<AtomicU64>,
) -> JoinHandle<u64>
where
    F: Fn(Arc<Anomaly>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut lagged = 0;
        loop {
            match rx.recv().await {
                Ok(a) => f(a).await,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    lagged += n;
                    counted.fetch_add(n, Relaxed);
                    tracing::warn!(target: "sentinel::feed", "an edge consumer fell behind: {n} anomalies skipped");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
        lagged
    })
}
