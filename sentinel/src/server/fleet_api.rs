//! The fleet's HTTP side: enrolment (`POST /api/enroll`, authenticated by an enrolment
//! token, not a key), heartbeats (`POST /api/ingest/heartbeat`, an ingest key writing its own
//! host only), the admins' token and retirement API, and the watcher that marks silent agents
//! stale. State changes raise alerts once each. The paged lists: fleet_lists.rs.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::access::{Actor, Client};
use super::api::error;
use super::auth;
use super::fleet::*;
use super::ingest::name_problem;
use crate::feed::fleet::{EnrolAnswer, EnrolRequest, Heartbeat};

fn now() -> i64 {
    crate::store::now_ns()
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!("fleet request failed: {e}");
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// Prefix of enrolment tokens (API keys start `snt_` too, without `enr_`).
pub const TOKEN_PREFIX: &str = "snt_enr_";

/// Longest an enrolment token may stay valid, and most uses.
pub const MAX_TOKEN_SECS: u64 = 365 * 86_400;
pub const MAX_TOKEN_USES: i64 = 100_000;

/// What a new enrolment token is for.
pub struct TokenSpec<'a> {
    pub expires_secs: Option<u64>,
    pub uses: i64,
    pub note: &'a str,
    pub created_by: &'a str,
}

/// Makes an enrolment token; returns (secret shown once, id) or why the spec is refused.
/// Shared by the dashboard, the admin API and `sentinel host token`.
pub async fn create_token(
    store: &dyn FleetStore,
    spec: &TokenSpec<'_>,
    now_ns: i64,
) -> Result<(String, i64, EnrolToken), String> {
    if !(1..=MAX_TOKEN_USES).contains(&spec.uses) {
        return Err(format!("uses must be 1-{MAX_TOKEN_USES}"));
    }
    if spec
        .expires_secs
        .is_some_and(|s| s == 0 || s > MAX_TOKEN_SECS)
    {
        return Err("expiry must be between 1 second and 365 days".into());
    }
    let note = spec.note.trim();
    if note.chars().count() > 200 || note.chars().any(char::is_control) {
        return Err("the note must be at most 200 characters, without control characters".into());
    }
    let bytes = auth::random_bytes::<24>().map_err(|e| e.to_string())?;
    let secret = format!("{TOKEN_PREFIX}{}", data_encoding::HEXLOWER.encode(&bytes));
    let prefix: String = secret.chars().take(14).collect();
    let expires_ns = spec
        .expires_secs
        .map(|s| now_ns.saturating_add((s as i64).saturating_mul(1_000_000_000)));
    let id = store
        .create_enrol_token(&NewEnrolToken {
            token_hash: &auth::token_hash(&secret),
            prefix: &prefix,
            note,
            created_by: spec.created_by,
            now_ns,
            expires_ns,
            max_uses: spec.uses,
        })
        .await
        .map_err(|e| e.to_string())?;
    let token = EnrolToken {
        id,
        prefix,
        note: note.to_string(),
        created_ns: now_ns,
        created_by: spec.created_by.to_string(),
        expires_ns,
        max_uses: spec.uses,
        uses: 0,
        revoked_ns: None,
    };
    Ok((secret, id, token))
}

/// Enrolment attempts per client address per 5 minutes (tokens are unguessable; this only
/// keeps a misbehaving script from filling the audit log).
pub const ENROL_RATE: usize = 30;

/// `POST /api/enroll`: token in, host identity and ingest key out.
pub async fn enroll(
    State(st): State<AppState>,
    Extension(client): Extension<Client>,
    body: axum::body::Bytes,
) -> Response {
    let t = now();
    if !st.enrol_limiter.allow(&client.ip, t) {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many enrolment attempts from this address; wait a few minutes",
        );
    }
    let req: EnrolRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"token\": ..., \"host\": ...}}: {e}"),
            );
        }
    };
    if let Some(p) = name_problem("host", &req.host) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, p);
    }
    let (key, prefix, hash) = match auth::new_api_key() {
        Ok(k) => k,
        Err(e) => return internal(e),
    };
    let token_hash = auth::token_hash(req.token.trim());
    let r = st
        .store
        .enroll(&Enrolment {
            token_hash: &token_hash,
            host: &req.host,
            key_prefix: &prefix,
            key_hash: &hash,
            now_ns: t,
        })
        .await;
    let token_shown: String = req
        .token
        .trim()
        .chars()
        .take(14)
        .filter(|c| !c.is_control())
        .collect();
    match r {
        Err(e) => internal(e),
        Ok(Err(refusal)) => {
            st.audit(
                None,
                "enrol_refused",
                &req.host,
                &client.ip,
                &format!("token {token_shown}…: {refusal}"),
            )
            .await;
            let status = match refusal {
                EnrolRefusal::UnknownToken => StatusCode::UNAUTHORIZED,
                EnrolRefusal::TokenRevoked
                | EnrolRefusal::TokenExpired
                | EnrolRefusal::TokenUsedUp(_) => StatusCode::FORBIDDEN,
                EnrolRefusal::Retired(_) => StatusCode::CONFLICT,
                EnrolRefusal::ServiceAccount => StatusCode::SERVICE_UNAVAILABLE,
            };
            error(status, refusal.to_string())
        }
        Ok(Ok(done)) => {
            let rotated = done.revoked_key.is_some();
            st.audit(
                None,
                if rotated {
                    "host_reenrolled"
                } else {
                    "host_enrolled"
                },
                &req.host,
                &client.ip,
                &format!(
                    "token {token_shown}… (id {}), key {}{}",
                    done.token_id,
                    done.key_id,
                    done.revoked_key
                        .map(|k| format!(", previous key {k} revoked"))
                        .unwrap_or_default()
                ),
            )
            .await;
            Json(EnrolAnswer {
                host: req.host,
                api_key: key,
                key_id: done.key_id,
                rotated,
            })
            .into_response()
        }
    }
}

/// The agent's health snapshot as sent (`crate::health::AgentHealth`; missing fields take
/// their defaults, unknown ones are ignored), or None when it is not one.
pub fn health_of(h: &serde_json::Value) -> Option<crate::health::AgentHealth> {
    serde_json::from_value(h.clone()).ok()
}

/// The state-deciding figures of a health snapshot.
pub fn vitals_of(h: &serde_json::Value) -> Vitals {
    let Some(h) = health_of(h) else {
        return Vitals::default();
    };
    let some = |s: String| Some(s).filter(|s| !s.is_empty());
    Vitals {
        version: some(h.version),
        kernel: some(h.kernel_release),
        hooks_attached: h.hooks.attached.len() as u64,
        hooks_failed: h
            .hooks
            .failed
            .iter()
            .map(|f| format!("{}: {}", f.hook, f.reason))
            .collect(),
        lost_total: h.events.lost_total,
        last_event_ns: h.events.last_event_ns,
    }
}

/// Why a heartbeat is refused (422), or None.
pub fn heartbeat_problem(hb: &Heartbeat, now_ns: i64, skew_secs: u64) -> Option<String> {
    if let Some(p) = name_problem("host", &hb.host) {
        return Some(p);
    }
    if !(1..=86_400).contains(&hb.interval_secs) {
        return Some("interval_secs must be 1-86400".into());
    }
    if !hb.health.is_object() {
        return Some("health must be a JSON object".into());
    }
    if let Err(e) = serde_json::from_value::<crate::health::AgentHealth>(hb.health.clone()) {
        return Some(format!("health is not an agent health snapshot: {e}"));
    }
    let latest = now_ns.saturating_add((skew_secs as i64).saturating_mul(1_000_000_000));
    if hb.time_ns > latest {
        return Some(format!(
            "time_ns {} is more than {skew_secs} s ahead of the server's clock",
            hb.time_ns
        ));
    }
    None
}

/// `POST /api/ingest/heartbeat`.
pub async fn heartbeat(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    body: axum::body::Bytes,
) -> Response {
    let hb: Heartbeat = match super::api::parse_body("heartbeat", &body) {
        Ok(h) => h,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let t = now();
    if let Some(p) = heartbeat_problem(&hb, t, st.cfg.max_clock_skew_secs) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, p);
    }
    let named = std::collections::BTreeSet::from([hb.host.clone()]);
    let host = match super::api::bound_host(&st, &actor, &named).await {
        Ok(h) => h,
        Err((status, msg)) => return error(status, msg),
    };
    if hb.host != host {
        let detail = format!(
            "key {} bound to {host:?} sent a heartbeat for {:?}",
            actor.key_id().unwrap_or(0),
            hb.host
        );
        tracing::warn!("heartbeat refused: {detail}");
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
    let vitals = vitals_of(&hb.health);
    let data = match serde_json::to_string(&hb) {
        Ok(d) => d,
        Err(e) => return internal(e),
    };
    let change = st
        .store
        .record_heartbeat(&BeatRecord {
            host: &host,
            now_ns: t,
            interval_secs: hb.interval_secs,
            vitals: &vitals,
            data: &data,
        })
        .await;
    match change {
        Ok(c) => {
            let state = c.as_ref().map(|c| c.to);
            if let Some(c) = c {
                st.alerts.agent_state(&c);
            }
            Json(json!({ "accepted": true, "state": state })).into_response()
        }
        Err(e) => internal(e),
    }
}

/// Marks silent agents stale every second (one indexed query) and applies the fleet's
/// retention hourly.
pub fn spawn_watch(st: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        let mut last_purge = 0i64;
        loop {
            tick.tick().await;
            let t = now();
            match st.store.mark_stale(t).await {
                Ok(changes) => {
                    for c in changes {
                        tracing::warn!("agent on {} is stale: {}", c.host, c.reason);
                        st.alerts.agent_state(&c);
                    }
                }
                Err(e) => tracing::warn!("fleet watch failed: {e}"),
            }
            if t - last_purge > 3_600_000_000_000 {
                last_purge = t;
                let horizon = t - st.cfg.retention_days as i64 * 86_400_000_000_000;
                if let Err(e) = st.store.purge_fleet(horizon.max(t - HISTORY_NS)).await {
                    tracing::warn!("fleet retention failed: {e}");
                }
            }
        }
    });
}

/// Body of `POST /api/admin/enrolment-tokens`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Seconds until the token expires (default 1 day).
    pub expires_secs: Option<u64>,
    /// How many enrolments it allows (default 1).
    pub uses: Option<i64>,
    #[serde(default)]
    pub note: String,
}

/// Default life of a token made without an expiry.
pub const DEFAULT_TOKEN_SECS: u64 = 86_400;

/// Makes a token for `actor`, audited; (secret, token) or a 400 message.
pub async fn admin_create_token(
    st: &AppState,
    actor: &Actor,
    client: &Client,
    req: &TokenRequest,
) -> Result<(String, EnrolToken), String> {
    let (secret, id, token) = create_token(
        st.store.as_ref(),
        &TokenSpec {
            expires_secs: Some(req.expires_secs.unwrap_or(DEFAULT_TOKEN_SECS)),
            uses: req.uses.unwrap_or(1),
            note: &req.note,
            created_by: &actor.username,
        },
        now(),
    )
    .await?;
    st.audit(
        Some((actor.user_id, &actor.username)),
        "enrol_token_created",
        &token.prefix,
        &client.ip,
        &format!(
            "id {id}, {} uses, expires in {} s{}",
            token.max_uses,
            req.expires_secs.unwrap_or(DEFAULT_TOKEN_SECS),
            if token.note.is_empty() {
                String::new()
            } else {
                format!(", note {:?}", token.note)
            }
        ),
    )
    .await;
    Ok((secret, token))
}

pub async fn api_tokens(State(st): State<AppState>) -> Response {
    match st.store.list_enrol_tokens().await {
        Ok(t) => Json(t).into_response(),
        Err(e) => internal(e),
    }
}

pub async fn api_token_create(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    body: axum::body::Bytes,
) -> Response {
    let req: TokenRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TokenRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
        }
    };
    match admin_create_token(&st, &actor, &client, &req).await {
        Ok((secret, token)) => Json(json!({ "token": secret, "info": token })).into_response(),
        Err(m) => error(StatusCode::BAD_REQUEST, m),
    }
}

/// Revokes a token, audited; false when there was none to revoke.
pub async fn revoke_token(
    st: &AppState,
    actor: &Actor,
    client: &Client,
    id: i64,
) -> super::store::DbResult<bool> {
    let done = st.store.revoke_enrol_token(id, now()).await?;
    if done {
        st.audit(
            Some((actor.user_id, &actor.username)),
            "enrol_token_revoked",
            &id.to_string(),
            &client.ip,
            "",
        )
        .await;
    }
    Ok(done)
}

pub async fn api_token_revoke(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Path(id): Path<i64>,
) -> Response {
    match revoke_token(&st, &actor, &client, id).await {
        Ok(true) => Json(json!({ "revoked": id })).into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, "no such usable token"),
        Err(e) => internal(e),
    }
}

/// Retires a host (its keys revoked), audited and alerted; None when unknown.
pub async fn retire(
    st: &AppState,
    actor: &Actor,
    client: &Client,
    host: &str,
) -> super::store::DbResult<Option<Retired>> {
    let r = st.store.retire_host(host, now()).await?;
    if let Some(r) = &r {
        st.audit(
            Some((actor.user_id, &actor.username)),
            "host_retired",
            host,
            &client.ip,
            &format!("{} ingest keys revoked", r.revoked_keys),
        )
        .await;
    }
    Ok(r)
}

pub async fn api_retire(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Path(host): Path<String>,
) -> Response {
    match retire(&st, &actor, &client, &host).await {
        Ok(Some(r)) => {
            Json(json!({ "retired": host, "revoked_keys": r.revoked_keys })).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "no such host"),
        Err(e) => internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vitals_read_hooks_and_losses_from_the_health_snapshot() {
        let h = json!({
            "schema": 1, "version": "0.1.0", "kernel_release": "6.18.0",
            "hooks": { "attached": ["a", "b"], "failed": [{ "hook": "c", "reason": "permission denied" }] },
            "events": { "kernel_lost": { "exec": 2 }, "lost_total": 6, "last_event_ns": 5 },
            "a_field_from_a_later_agent": true
        });
        let v = vitals_of(&h);
        assert_eq!(v.hooks_attached, 2);
        assert_eq!(v.hooks_failed, ["c: permission denied"]);
        assert_eq!(v.lost_total, 6);
        assert_eq!(v.version.as_deref(), Some("0.1.0"));
        assert_eq!(v.kernel.as_deref(), Some("6.18.0"));
        assert_eq!(v.last_event_ns, Some(5));
        assert_eq!(vitals_of(&json!({})), Vitals::default());
        assert_eq!(
            vitals_of(&json!({ "hooks": 3 })),
            Vitals::default(),
            "not a snapshot"
        );
    }

    #[test]
    fn malformed_heartbeats_say_why() {
        let ok = Heartbeat {
            host: "web-1".into(),
            time_ns: 0,
            interval_secs: 30,
            health: json!({}),
        };
        assert_eq!(heartbeat_problem(&ok, 0, 300), None);
        let bad = |f: &dyn Fn(&mut Heartbeat)| {
            let mut h = ok.clone();
            f(&mut h);
            heartbeat_problem(&h, 0, 300).unwrap()
        };
        assert!(bad(&|h| h.host = "a\nb".into()).contains("control"));
        assert!(bad(&|h| h.interval_secs = 0).contains("interval_secs"));
        assert!(bad(&|h| h.health = json!([1])).contains("object"));
        assert!(
            bad(&|h| h.health = json!({ "events": { "lost_total": "many" } }))
                .contains("not an agent health snapshot")
        );
        assert!(bad(&|h| h.time_ns = 301_000_000_000).contains("ahead"));
    }

    #[tokio::test]
    async fn token_specs_are_bounded() {
        let s = crate::server::sqlite::SqliteStore::memory().unwrap();
        let spec = |expires_secs, uses| TokenSpec {
            expires_secs,
            uses,
            note: "rack 4",
            created_by: "cli",
        };
        let (secret, id, t) = create_token(&s, &spec(Some(60), 3), 0).await.unwrap();
        assert!(
            secret.starts_with(TOKEN_PREFIX) && secret.len() > 40,
            "{secret}"
        );
        assert!(secret.starts_with(&t.prefix));
        assert_eq!((t.max_uses, t.expires_ns), (3, Some(60_000_000_000)));
        assert_eq!(s.list_enrol_tokens().await.unwrap()[0].id, id);
        assert!(create_token(&s, &spec(Some(0), 1), 0).await.is_err());
        assert!(create_token(&s, &spec(None, 0), 0).await.is_err());
        assert!(
            create_token(&s, &spec(Some(MAX_TOKEN_SECS + 1), 1), 0)
                .await
                .is_err()
        );
    }
}
