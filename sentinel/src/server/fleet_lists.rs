//! The cursor-paginated lists that scale with a fleet: `GET /api/anomalies` (newest received
//! first, with time ranges) and `GET /api/hosts` (by name, with each agent's status, in one
//! query), and the fleet part of `GET /api/hosts/{name}`.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::api::error;
use super::fleet::*;
use crate::model::Level;

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!("list request failed: {e}");
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// Query of `GET /api/anomalies`.
#[derive(Debug, Default, Deserialize)]
pub struct AnomalyQuery {
    pub host: Option<String>,
    pub user: Option<String>,
    pub level: Option<String>,
    pub detection: Option<String>,
    pub unacked: Option<String>,
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

impl AnomalyQuery {
    pub fn filter(&self) -> Result<AnomalyPageFilter, String> {
        let nz = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        let level = match nz(&self.level) {
            None => None,
            Some(l) => Some(Level::parse(&l).ok_or("level: low, medium, high or critical")?),
        };
        let cursor = match nz(&self.cursor) {
            None => None,
            Some(c) => Some(AnomalyCursor::parse(&c).ok_or("cursor: pass next_cursor as given")?),
        };
        let unacked = match self.unacked.as_deref() {
            None | Some("" | "0" | "false") => false,
            Some("1" | "true") => true,
            Some(o) => return Err(format!("unacked {o:?}: use 1 or 0")),
        };
        Ok(AnomalyPageFilter {
            host: nz(&self.host),
            user: nz(&self.user),
            level,
            detection: nz(&self.detection),
            unacked,
            from_ns: self.from_ns,
            to_ns: self.to_ns,
            cursor,
            limit: self.limit.unwrap_or(100).clamp(1, 1000),
        })
    }
}

/// `GET /api/anomalies`: a page, newest received first, and the cursor of the next.
pub async fn anomalies(State(st): State<AppState>, Query(q): Query<AnomalyQuery>) -> Response {
    let f = match q.filter() {
        Ok(f) => f,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    match st.store.list_anomalies_page(&f).await {
        Ok(p) => Json(p).into_response(),
        Err(e) => internal(e),
    }
}

/// Query of `GET /api/hosts`.
#[derive(Debug, Default, Deserialize)]
pub struct HostQuery {
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
    pub state: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

/// `GET /api/hosts`: a page of hosts by name with their agents' status.
pub async fn hosts(State(st): State<AppState>, Query(q): Query<HostQuery>) -> Response {
    let state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match AgentState::parse(s) {
            Some(s) => Some(s),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "state: unknown, healthy, stale, blind or retired",
                );
            }
        },
    };
    let f = HostPageFilter {
        from_ns: q.from_ns,
        to_ns: q.to_ns,
        state,
        cursor: q.cursor.clone(),
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    };
    match st.store.list_hosts_page(&f, crate::store::now_ns()).await {
        Ok(p) => Json(p).into_response(),
        Err(e) => internal(e),
    }
}

/// The agent status and snapshot charts of one host, for `GET /api/hosts/{name}`.
pub async fn host_extra(st: &AppState, name: &str, now_ns: i64) -> serde_json::Value {
    let agent = st.store.agent(name).await.ok().flatten();
    let series = st
        .store
        .snapshot_series(name, now_ns - 7 * 86_400_000_000_000)
        .await
        .unwrap_or_default();
    json!({ "agent": agent, "snapshots_7d": series })
}
