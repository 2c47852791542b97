//! Retention: how long each table keeps its rows (`[server.retention]`, falling back to
//! `retention_days`), the horizons that makes at a given time, and the hourly purge.

use serde::{Deserialize, Serialize};

use super::store::Horizons;
use super::{AppState, ServerConfig};

/// `[server.retention]`: how long each table keeps its rows (unset: `retention_days`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Anomalies, by the server's receipt time.
    pub anomalies_days: Option<u64>,
    /// Incidents, by the receipt of their latest state.
    pub incidents_days: Option<u64>,
    /// Host snapshots (configuration drift compares the latest two).
    pub snapshots_days: Option<u64>,
    /// Baseline fingerprints.
    pub fingerprints_days: Option<u64>,
}

impl ServerConfig {
    /// The retention horizons at `now_ns`.
    pub fn horizons(&self, now_ns: i64) -> Horizons {
        let day = 86_400_000_000_000i64;
        let before = |days: u64| now_ns.saturating_sub((days as i64).saturating_mul(day));
        let r = &self.retention;
        let data = |d: Option<u64>| before(d.unwrap_or(self.retention_days));
        Horizons {
            anomalies: data(r.anomalies_days),
            incidents: data(r.incidents_days),
            snapshots: data(r.snapshots_days),
            fingerprints: data(r.fingerprints_days),
            audit: before(self.audit_retention_days),
            session_idle: now_ns - self.session_idle_mins as i64 * 60_000_000_000,
            session_created: now_ns - self.session_max_hours as i64 * 3_600_000_000_000,
        }
    }
}

/// Applies the retention horizon hourly (and once at start).
pub(super) fn spawn(st: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let now = crate::store::now_ns();
            let r = st.store.purge(&st.cfg.horizons(now)).await;
            match r {
                Ok(p) => tracing::debug!(?p, "retention applied"),
                Err(e) => tracing::warn!("retention failed: {e}"),
            }
        }
    });
}
