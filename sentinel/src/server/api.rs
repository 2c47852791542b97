//! The JSON API: ingest for agents (API key, operator or above) and a read/write API for
//! everything the UI shows. Session callers send the CSRF token in `X-CSRF-Token`; API key
//! callers act with their owner's role. The contract is `openapi.json`, served as is.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::AppState;
use super::access::{Actor, Client};
use super::admin::AuditQuery;
use super::store::IngestBatch;
use super::web::FeedQuery;

pub const OPENAPI: &str = include_str!("openapi.json");

fn now() -> i64 {
    crate::store::now_ns()
}

pub fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "error": msg.into() }))).into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!("api request failed: {e}");
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

fn ok<T: serde::Serialize>(v: T) -> Response {
    Json(v).into_response()
}

pub async fn health(State(st): State<AppState>) -> Response {
    match st.store.count_admins() {
        Ok(_) => ok(json!({ "status": "ok" })),
        Err(e) => {
            tracing::error!("health check: {e}");
            error(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub const MAX_BATCH_ITEMS: usize = 10_000;

/// Rejects batches the store should not see: missing id, oversized, absurd names.
pub fn validate_batch(b: &IngestBatch) -> Result<(), String> {
    if b.batch_id.is_empty() || b.batch_id.len() > 128 {
        return Err("batch_id must be 1-128 characters".into());
    }
    if b.anomalies.len() + b.snapshots.len() + b.fingerprints.len() > MAX_BATCH_ITEMS {
        return Err(format!("at most {MAX_BATCH_ITEMS} items per batch"));
    }
    let bad_name = |h: &str| h.is_empty() || h.len() > 255;
    if b.host.as_deref().is_some_and(bad_name) {
        return Err("host must be 1-255 bytes".into());
    }
    for a in &b.anomalies {
        if bad_name(&a.host) || a.id.is_empty() || a.id.len() > 255 {
            return Err(format!(
                "anomaly {:?}: host and id must be 1-255 bytes",
                a.id
            ));
        }
    }
    let mut snapshot_names = b.snapshots.iter().flat_map(|s| {
        ["/system/hostname", "/hostname", "/host"]
            .into_iter()
            .filter_map(|p| s.pointer(p).and_then(|v| v.as_str()))
    });
    if snapshot_names.any(bad_name) {
        return Err("snapshot host names must be 1-255 bytes".into());
    }
    if b.snapshots
        .iter()
        .chain(&b.fingerprints)
        .any(|v| !v.is_object())
    {
        return Err("snapshots and fingerprints must be JSON objects".into());
    }
    Ok(())
}

pub async fn ingest(State(st): State<AppState>, Json(batch): Json<IngestBatch>) -> Response {
    if let Err(m) = validate_batch(&batch) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, m);
    }
    let st2 = st.clone();
    match tokio::task::spawn_blocking(move || st2.ingest(&batch)).await {
        Ok(Ok(out)) => ok(out),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}

pub async fn me(State(st): State<AppState>, Extension(actor): Extension<Actor>) -> Response {
    match st.store.user_by_id(actor.user_id) {
        Ok(Some(u)) => ok(json!({ "user": u, "csrf_token": actor.csrf() })),
        Ok(None) => {
            ok(json!({ "user": { "username": actor.username, "role": actor.role }, "demo": true }))
        }
        Err(e) => internal(e),
    }
}

pub async fn anomalies(State(st): State<AppState>, Query(q): Query<FeedQuery>) -> Response {
    match st.store.list_anomalies(&q.filter(500)) {
        Ok(r) => ok(r),
        Err(e) => internal(e),
    }
}

pub async fn anomaly(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    match st.store.get_anomaly(&id) {
        Ok(Some(a)) => ok(a),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such anomaly"),
        Err(e) => internal(e),
    }
}

pub async fn ack_anomaly(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Path(id): Path<String>,
) -> Response {
    match st.store.get_anomaly(&id) {
        Ok(Some(_)) => {}
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such anomaly"),
        Err(e) => return internal(e),
    }
    match st.acknowledge(&actor, &client.ip, &id) {
        Ok(changed) => ok(json!({ "acknowledged": true, "changed": changed })),
        Err(e) => internal(e),
    }
}

pub async fn hosts(State(st): State<AppState>) -> Response {
    match st.store.list_hosts(now()) {
        Ok(h) => ok(h),
        Err(e) => internal(e),
    }
}

pub async fn host(State(st): State<AppState>, Path(name): Path<String>) -> Response {
    let t = now();
    let h = match st.store.get_host(&name, t) {
        Ok(Some(h)) => h,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such host"),
        Err(e) => return internal(e),
    };
    let (series, history) = super::hosts::recent(&st, &name, t);
    ok(json!({
        "host": h,
        "posture": super::hosts::posture(&h),
        "risk_24h": series.iter().map(|(t, s)| json!({ "time_ns": t, "score": s })).collect::<Vec<_>>(),
        "history": history,
    }))
}

pub async fn ack_host(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Path(name): Path<String>,
) -> Response {
    match st.acknowledge_host(&actor, &client.ip, &name) {
        Ok(n) => ok(json!({ "acknowledged": n })),
        Err(e) => internal(e),
    }
}

pub async fn sessions(State(st): State<AppState>, Extension(actor): Extension<Actor>) -> Response {
    match st.store.list_sessions(Some(actor.user_id)) {
        Ok(s) => ok(s),
        Err(e) => internal(e),
    }
}

pub async fn session_delete(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Path(id): Path<i64>,
) -> Response {
    match super::account::revoke(&st, &actor, &client, id) {
        Ok(()) => ok(json!({ "revoked": id })),
        Err(s) => error(s, "no such session"),
    }
}

pub async fn keys(State(st): State<AppState>, Extension(actor): Extension<Actor>) -> Response {
    match st.store.list_api_keys(actor.user_id) {
        Ok(k) => ok(k),
        Err(e) => internal(e),
    }
}

pub async fn users(State(st): State<AppState>) -> Response {
    match st.store.list_users() {
        Ok(u) => ok(u),
        Err(e) => internal(e),
    }
}

pub async fn audit(State(st): State<AppState>, Query(q): Query<AuditQuery>) -> Response {
    match st.store.list_audit(&q.filter()) {
        Ok(a) => ok(a),
        Err(e) => internal(e),
    }
}

pub async fn all_sessions(State(st): State<AppState>) -> Response {
    match st.store.list_sessions(None) {
        Ok(s) => ok(s),
        Err(e) => internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_validated() {
        let ok = IngestBatch {
            batch_id: "b".into(),
            ..Default::default()
        };
        assert!(validate_batch(&ok).is_ok());
        assert!(
            validate_batch(&IngestBatch::default()).is_err(),
            "batch id required"
        );
        let long = IngestBatch {
            host: Some("h".repeat(300)),
            ..ok.clone()
        };
        assert!(validate_batch(&long).is_err());
        let snap = IngestBatch {
            snapshots: vec![json!({ "system": { "hostname": "x".repeat(300) } })],
            ..ok.clone()
        };
        assert!(validate_batch(&snap).is_err());
        let not_obj = IngestBatch {
            fingerprints: vec![json!(3)],
            ..ok.clone()
        };
        assert!(validate_batch(&not_obj).is_err());
        let many = IngestBatch {
            fingerprints: vec![json!({}); MAX_BATCH_ITEMS + 1],
            ..ok
        };
        assert!(validate_batch(&many).is_err());
    }
}
