//! The JSON API: ingest for agents (an `ingest` key, bound to one host) and a read/write API
//! for everything the UI shows. Session callers send the CSRF token in `X-CSRF-Token`; API
//! key callers act with their key's scope, never above their owner's role. The contract is
//! `openapi.json`, served as is.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::access::{Actor, Client, Via};
use super::admin::AuditQuery;
use super::store::IngestBatch;
use super::{AppState, IngestError};

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
    match st.store.count_admins().await {
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

pub use super::ingest::MAX_BATCH_ITEMS;

/// The host an ingest key writes for: its bound host, or (a key migrated from before scopes)
/// the batch's single host, which then binds it for good.
pub(super) async fn bound_host(
    st: &AppState,
    actor: &Actor,
    named: &std::collections::BTreeSet<String>,
) -> Result<String, (StatusCode, String)> {
    let Via::ApiKey { id, host, .. } = &actor.via else {
        return Err((StatusCode::UNAUTHORIZED, "an API key is required".into()));
    };
    if let Some(h) = host {
        return Ok(h.clone());
    }
    let Some(first) = named.iter().next().filter(|_| named.len() == 1) else {
        return Err((
            StatusCode::FORBIDDEN,
            "this key is not bound to a host yet: its first batch must name exactly one host"
                .into(),
        ));
    };
    match st.store.bind_api_key_host(*id, first).await {
        Ok(Some(h)) => {
            st.audit(
                Some((actor.user_id, &actor.username)),
                "api_key_bound",
                &h,
                "",
                &format!("key {id}"),
            )
            .await;
            Ok(h)
        }
        Ok(None) => Err((StatusCode::FORBIDDEN, "this key cannot be bound".into())),
        Err(e) => {
            tracing::error!("binding a key: {e}");
            Err((StatusCode::INTERNAL_SERVER_ERROR, "internal error".into()))
        }
    }
}

pub async fn ingest(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    body: axum::body::Bytes,
) -> Response {
    // Parsed here rather than by axum's extractor, so that a malformed batch gets the
    // API's JSON error naming the field, like a malformed heartbeat.
    let batch: IngestBatch = match parse_body("batch", &body) {
        Ok(b) => b,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    if let Some(m) = super::ingest::batch_problem(&batch) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, m);
    }
    // An ingest key writes its own host and nothing else: another name anywhere in the
    // batch refuses the whole batch, and the attempt is audited.
    let named = super::ingest::hosts_named(&batch);
    let host = match bound_host(&st, &actor, &named).await {
        Ok(h) => h,
        Err((status, msg)) => return error(status, msg),
    };
    let foreign: Vec<&str> = named
        .iter()
        .filter(|n| **n != host)
        .map(String::as_str)
        .collect();
    if !foreign.is_empty() {
        let detail = format!(
            "key {} bound to {host:?} tried to write {}",
            actor.key_id().unwrap_or(0),
            foreign
                .iter()
                .map(|f| format!("{:?}", f))
                .collect::<Vec<_>>()
                .join(", ")
        );
        tracing::warn!("ingest refused: {detail}");
        st.audit(
            Some((actor.user_id, &actor.username)),
            "ingest_host_refused",
            &host,
            &client.ip,
            &detail,
        )
        .await;
        return error(
            StatusCode::FORBIDDEN,
            format!("this key may only write host {host:?}"),
        );
    }
    match st.ingest(&batch).await {
        // Nothing kept and something refused (a malformed snapshot alone, say): a 4xx with
        // the reasons, so that the agent keeps the batch aside instead of calling it sent.
        Ok(out) if refused_all(&out) => {
            let first = &out.refused[0];
            let mut v = serde_json::to_value(&out).unwrap_or_else(|_| json!({}));
            v["error"] = json!(format!(
                "nothing in the batch was accepted: {} {}: {}",
                first.kind, first.index, first.reason
            ));
            (StatusCode::UNPROCESSABLE_ENTITY, Json(v)).into_response()
        }
        Ok(out) => ok(out),
        Err(IngestError::Invalid(m)) => error(StatusCode::UNPROCESSABLE_ENTITY, m),
        Err(e) => internal(e),
    }
}

/// An agent's JSON body, or the 400 message naming the field that is wrong ("malformed
/// batch: snapshots: invalid type: map, expected a sequence at line 1 column 32").
pub(super) fn parse_body<T: serde::de::DeserializeOwned>(
    what: &str,
    body: &[u8],
) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            String::new()
        } else {
            format!("{path}: ")
        };
        format!("malformed {what}: {at}{}", e.into_inner())
    })
}

/// True when a (new) batch had items and every one was refused.
fn refused_all(out: &super::store::IngestOutcome) -> bool {
    let i = &out.incidents;
    !out.duplicate
        && !out.refused.is_empty()
        && out.anomalies == 0
        && out.duplicates.is_empty()
        && out.snapshots == 0
        && out.fingerprints == 0
        && [&i.stored, &i.updated, &i.duplicates, &i.stale]
            .iter()
            .all(|v| v.is_empty())
}

pub async fn me(State(st): State<AppState>, Extension(actor): Extension<Actor>) -> Response {
    match st.store.user_by_id(actor.user_id).await {
        Ok(Some(u)) => ok(json!({ "user": u, "csrf_token": actor.csrf() })),
        Ok(None) => {
            ok(json!({ "user": { "username": actor.username, "role": actor.role }, "demo": true }))
        }
        Err(e) => internal(e),
    }
}

pub async fn anomaly(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    match st.store.get_anomaly(&id).await {
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
    match st.store.get_anomaly(&id).await {
        Ok(Some(_)) => {}
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such anomaly"),
        Err(e) => return internal(e),
    }
    match st.acknowledge(&actor, &client.ip, &id).await {
        Ok(changed) => ok(json!({ "acknowledged": true, "changed": changed })),
        Err(e) => internal(e),
    }
}

pub async fn host(State(st): State<AppState>, Path(name): Path<String>) -> Response {
    let t = now();
    let h = match st.store.get_host(&name, t).await {
        Ok(Some(h)) => h,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such host"),
        Err(e) => return internal(e),
    };
    let (series, history) = super::hosts::recent(&st, &name, t).await;
    ok(json!({
        "host": h,
        "posture": super::hosts::posture(&h),
        "risk_24h": series.iter().map(|(t, s)| json!({ "time_ns": t, "score": s })).collect::<Vec<_>>(),
        "history": history,
        "fleet": super::fleet_lists::host_extra(&st, &name, t).await,
    }))
}

pub async fn ack_host(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Path(name): Path<String>,
) -> Response {
    match st.acknowledge_host(&actor, &client.ip, &name).await {
        Ok(n) => ok(json!({ "acknowledged": n })),
        Err(e) => internal(e),
    }
}

pub async fn sessions(State(st): State<AppState>, Extension(actor): Extension<Actor>) -> Response {
    match st.store.list_sessions(Some(actor.user_id)).await {
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
    match super::account::revoke(&st, &actor, &client, id).await {
        Ok(()) => ok(json!({ "revoked": id })),
        Err(s) => error(s, "no such session"),
    }
}

pub async fn keys(State(st): State<AppState>, Extension(actor): Extension<Actor>) -> Response {
    match st.store.list_api_keys(actor.user_id).await {
        Ok(k) => ok(k),
        Err(e) => internal(e),
    }
}

pub async fn all_keys(State(st): State<AppState>) -> Response {
    match st.store.list_all_api_keys().await {
        Ok(k) => ok(k),
        Err(e) => internal(e),
    }
}

pub async fn revoke_key(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Path(id): Path<i64>,
) -> Response {
    match super::keys::revoke_any(&st, &actor, &client, id).await {
        Ok(Some(_)) => ok(json!({ "revoked": id })),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such key"),
        Err(e) => internal(e),
    }
}

pub async fn users(State(st): State<AppState>) -> Response {
    match st.store.list_users().await {
        Ok(u) => ok(u),
        Err(e) => internal(e),
    }
}

pub async fn audit(State(st): State<AppState>, Query(q): Query<AuditQuery>) -> Response {
    match st.store.list_audit(&q.filter()).await {
        Ok(a) => ok(a),
        Err(e) => internal(e),
    }
}

pub async fn all_sessions(State(st): State<AppState>) -> Response {
    match st.store.list_sessions(None).await {
        Ok(s) => ok(s),
        Err(e) => internal(e),
    }
}
