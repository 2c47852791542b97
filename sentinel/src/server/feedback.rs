//! Analysts' verdicts on the server: an operator marks an anomaly (or an incident) benign or
//! malicious in a scope; the verdict is stored (table `feedback`), audit-logged, reversible
//! (an undo, audited too), and delivered to the agent of the host concerned, which asks for
//! its pending verdicts with its ingest key (`GET /api/ingest/verdicts`), applies them with
//! the same code as `sentinel feedback` and acknowledges each (`POST
//! /api/ingest/verdicts/ack`; agent side in feed/verdicts.rs). Each verdict shows whether
//! (and when) its delivery and its undo's delivery reached the agent. The page part is
//! `feedback_web.rs`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AppState;
use super::access::{Actor, Client, Via};
use super::api::error;
use super::store::{DbError, DbResult};
use crate::detect::feedback::{Scope, Verdict};
pub use crate::feed::verdicts::{Ack, Acks, Action, Delivery, Pending};

/// What a verdict is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Anomaly,
    Incident,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Anomaly => "anomaly",
            TargetKind::Incident => "incident",
        }
    }
}

pub fn verdict_str(v: Verdict) -> &'static str {
    match v {
        Verdict::Benign => "benign",
        Verdict::Malicious => "malicious",
    }
}

pub fn scope_str(s: Scope) -> &'static str {
    match s {
        Scope::Principal => "principal",
        Scope::Exe => "exe",
        Scope::Host => "host",
    }
}

pub fn parse_verdict(s: &str) -> Option<Verdict> {
    [Verdict::Benign, Verdict::Malicious]
        .into_iter()
        .find(|v| verdict_str(*v) == s)
}

pub fn parse_scope(s: &str) -> Option<Scope> {
    [Scope::Principal, Scope::Exe, Scope::Host]
        .into_iter()
        .find(|v| scope_str(*v) == s)
}

/// A verdict to store.
#[derive(Clone, Debug)]
pub struct NewVerdict<'a> {
    pub host: &'a str,
    pub target: &'a str,
    pub kind: TargetKind,
    pub verdict: Verdict,
    pub scope: Scope,
    pub note: Option<&'a str>,
    pub by: &'a str,
    pub now_ns: i64,
}

/// A verdict as stored, with the state of its delivery to the agent.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredVerdict {
    pub id: i64,
    pub host: String,
    /// The anomaly or incident id.
    pub target: String,
    pub kind: TargetKind,
    pub verdict: Verdict,
    pub scope: Scope,
    pub note: Option<String>,
    pub by: String,
    pub created_ns: i64,
    /// When the agent acknowledged the verdict (None: not yet delivered).
    pub delivered_ns: Option<i64>,
    /// Why the agent could not apply it (an id it does not know), if so.
    pub delivery_error: Option<String>,
    pub undone_by: Option<String>,
    pub undone_ns: Option<i64>,
    /// When the agent acknowledged the undo.
    pub undo_delivered_ns: Option<i64>,
    pub undo_error: Option<String>,
}

impl StoredVerdict {
    pub fn active(&self) -> bool {
        self.undone_ns.is_none()
    }

    /// "delivered", "pending", "refused by the agent: ..." for the verdict and, once undone,
    /// for the undo.
    pub fn delivery_words(&self) -> String {
        let one = |at: Option<i64>, err: &Option<String>| match (at, err) {
            (Some(_), Some(e)) => format!("refused by the agent: {e}"),
            (Some(t), None) => format!("delivered {}", super::web::fmt_time(t)),
            (None, _) => "pending (on the agent's next push)".to_string(),
        };
        let given = one(self.delivered_ns, &self.delivery_error);
        match self.undone_ns {
            None => given,
            Some(_) => format!(
                "{given}; undo {}",
                one(self.undo_delivered_ns, &self.undo_error)
            ),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct VerdictFilter {
    pub host: Option<String>,
    pub target: Option<String>,
    pub limit: Option<usize>,
}

/// Where verdicts live. Part of `ServerStore`.
#[async_trait::async_trait]
pub trait FeedbackStore: Send + Sync {
    /// Stores a verdict; `DbError::Conflict` when the target has one in force already.
    async fn add_verdict(&self, v: &NewVerdict<'_>) -> DbResult<i64>;
    async fn get_verdict(&self, id: i64) -> DbResult<Option<StoredVerdict>>;
    /// Newest first.
    async fn list_verdicts(&self, f: &VerdictFilter) -> DbResult<Vec<StoredVerdict>>;
    /// Marks a verdict undone; false when it was undone already.
    async fn undo_verdict(&self, id: i64, by: &str, now_ns: i64) -> DbResult<bool>;
    /// What the host's agent has not acknowledged yet, in the order to apply it.
    async fn pending_verdicts(&self, host: &str) -> DbResult<Vec<Delivery>>;
    /// Records the agent's acknowledgements (only for verdicts of `host`); returns how many
    /// changed something.
    async fn ack_verdicts(&self, host: &str, acks: &[Ack], now_ns: i64) -> DbResult<usize>;
}

/// Why a verdict could not be given or undone, with the HTTP status that says so.
#[derive(Debug)]
pub struct Refusal(pub StatusCode, pub String);

impl From<DbError> for Refusal {
    fn from(e: DbError) -> Refusal {
        tracing::error!("feedback: {e}");
        Refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
    }
}

const MAX_NOTE: usize = 1000;

/// A verdict asked for (by the JSON API or the form).
#[derive(Clone, Debug)]
pub struct Ask<'a> {
    pub target: &'a str,
    pub kind: TargetKind,
    /// Required for incidents; for anomalies, checked against the anomaly's host if given.
    pub host: Option<&'a str>,
    pub verdict: Verdict,
    pub scope: Scope,
    pub note: Option<&'a str>,
}

/// Checks and stores a verdict, and audits it. The shared path of the JSON API and the form.
pub async fn give(
    st: &AppState,
    actor: &Actor,
    ip: &str,
    ask: &Ask<'_>,
) -> Result<StoredVerdict, Refusal> {
    let bad = |m: String| Refusal(StatusCode::UNPROCESSABLE_ENTITY, m);
    let (id, kind, host, verdict, scope) = (ask.target, ask.kind, ask.host, ask.verdict, ask.scope);
    if let Some(p) = super::ingest::name_problem("id", id) {
        return Err(bad(p));
    }
    let note = ask.note.map(str::trim).filter(|n| !n.is_empty());
    if let Some(n) = note
        && (n.len() > MAX_NOTE || n.chars().any(char::is_control))
    {
        return Err(bad(format!(
            "a note is at most {MAX_NOTE} bytes, without control characters"
        )));
    }
    let host = match kind {
        TargetKind::Anomaly => {
            let Some(a) = st.store.get_anomaly(id).await? else {
                return Err(Refusal(StatusCode::NOT_FOUND, "no such anomaly".into()));
            };
            if host.is_some_and(|h| h != a.anomaly.host) {
                return Err(bad(format!(
                    "anomaly {id} is from host {:?}",
                    a.anomaly.host
                )));
            }
            a.anomaly.host
        }
        // Incidents are the agents' stories of several anomalies; the agent resolves the id
        // to its steps (and refuses an id it does not know, which the verdict then shows).
        TargetKind::Incident => {
            let Some(h) = host else {
                return Err(bad("an incident verdict names its host".into()));
            };
            if let Some(p) = super::ingest::name_problem("host", h) {
                return Err(bad(p));
            }
            if st
                .store
                .get_host(h, crate::store::now_ns())
                .await?
                .is_none()
            {
                return Err(Refusal(StatusCode::NOT_FOUND, "no such host".into()));
            }
            // An incident the server has not received (yet) is still accepted: the agent
            // resolves the id or refuses it with why, which the verdict then shows.
            h.to_string()
        }
    };
    let new = NewVerdict {
        host: &host,
        target: id,
        kind,
        verdict,
        scope,
        note,
        by: &actor.username,
        now_ns: crate::store::now_ns(),
    };
    let vid = match st.store.add_verdict(&new).await {
        Ok(v) => v,
        Err(DbError::Conflict(what)) => {
            return Err(Refusal(
                StatusCode::CONFLICT,
                format!("{what}: undo it first to give another"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    st.audit(
        Some((actor.user_id, &actor.username)),
        "feedback",
        id,
        ip,
        &format!(
            "verdict {vid}: {} {} in scope {} on host {host}{}",
            kind.as_str(),
            verdict_str(verdict),
            scope_str(scope),
            note.map(|n| format!(": {n}")).unwrap_or_default()
        ),
    )
    .await;
    st.store
        .get_verdict(vid)
        .await?
        .ok_or_else(|| Refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into()))
}

/// Undoes a verdict (delivered to the agent like the verdict itself) and audits it.
pub async fn undo(
    st: &AppState,
    actor: &Actor,
    ip: &str,
    id: i64,
) -> Result<StoredVerdict, Refusal> {
    let Some(v) = st.store.get_verdict(id).await? else {
        return Err(Refusal(StatusCode::NOT_FOUND, "no such verdict".into()));
    };
    if !st
        .store
        .undo_verdict(id, &actor.username, crate::store::now_ns())
        .await?
    {
        return Err(Refusal(
            StatusCode::CONFLICT,
            format!("verdict {id} was undone already"),
        ));
    }
    st.audit(
        Some((actor.user_id, &actor.username)),
        "feedback_undo",
        &v.target,
        ip,
        &format!(
            "verdict {id}: {} {} on host {}",
            v.kind.as_str(),
            verdict_str(v.verdict),
            v.host
        ),
    )
    .await;
    st.store
        .get_verdict(id)
        .await?
        .ok_or_else(|| Refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into()))
}

/// The body of `POST /api/feedback`: one of `anomaly` or `incident` (with `host`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackBody {
    pub anomaly: Option<String>,
    pub incident: Option<String>,
    pub host: Option<String>,
    pub verdict: Verdict,
    #[serde(default = "principal")]
    pub scope: Scope,
    pub note: Option<String>,
}

fn principal() -> Scope {
    Scope::Principal
}

fn refused(r: Refusal) -> Response {
    error(r.0, r.1)
}

fn ok<T: Serialize>(status: StatusCode, v: T) -> Response {
    use axum::response::IntoResponse;
    (status, Json(v)).into_response()
}

pub async fn api_give(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Json(b): Json<FeedbackBody>,
) -> Response {
    let target = match (&b.anomaly, &b.incident) {
        (Some(a), None) => (a.as_str(), TargetKind::Anomaly),
        (None, Some(i)) => (i.as_str(), TargetKind::Incident),
        _ => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "name exactly one of anomaly or incident",
            );
        }
    };
    let ask = Ask {
        target: target.0,
        kind: target.1,
        host: b.host.as_deref(),
        verdict: b.verdict,
        scope: b.scope,
        note: b.note.as_deref(),
    };
    match give(&st, &actor, &client.ip, &ask).await {
        Ok(v) => ok(StatusCode::CREATED, v),
        Err(r) => refused(r),
    }
}

pub async fn api_undo(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Path(id): Path<i64>,
) -> Response {
    match undo(&st, &actor, &client.ip, id).await {
        Ok(v) => ok(StatusCode::OK, v),
        Err(r) => refused(r),
    }
}

pub async fn api_list(State(st): State<AppState>, Query(q): Query<VerdictFilter>) -> Response {
    let f = VerdictFilter {
        limit: Some(q.limit.unwrap_or(500).min(500)),
        ..q
    };
    match st.store.list_verdicts(&f).await {
        Ok(v) => ok(StatusCode::OK, v),
        Err(e) => refused(e.into()),
    }
}

/// `sentinel run --serve`: verdicts given on the in-process dashboard for this host go
/// straight into the agent store, through the same apply-once and acknowledge steps as over
/// HTTP (checked every `every`).
pub fn spawn_local_delivery(
    st: AppState,
    host: String,
    store: std::path::PathBuf,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = deliver_local(&st, &host, &store).await {
                tracing::warn!("delivering verdicts to this agent: {e}");
            }
        }
    })
}

/// One round of `spawn_local_delivery`: the agent store is opened and written off the runtime.
async fn deliver_local(
    st: &AppState,
    host: &str,
    store: &std::path::Path,
) -> Result<usize, String> {
    let pending = st
        .store
        .pending_verdicts(host)
        .await
        .map_err(|e| e.to_string())?;
    if pending.is_empty() {
        return Ok(0);
    }
    let store = store.to_path_buf();
    let acks = tokio::task::spawn_blocking(move || -> Result<_, String> {
        let agent = crate::store::Store::open(&store).map_err(|e| e.to_string())?;
        Ok(crate::feed::verdicts::apply(&agent, "local", &pending))
    })
    .await
    .map_err(|e| e.to_string())??;
    st.store
        .ack_verdicts(host, &acks, crate::store::now_ns())
        .await
        .map_err(|e| e.to_string())
}

/// The host an agent's ingest key is bound to (a key migrated from before scopes is bound
/// by its first push, not here).
fn agent_host(actor: &Actor) -> Result<String, Refusal> {
    match &actor.via {
        Via::ApiKey { host: Some(h), .. } => Ok(h.clone()),
        _ => Err(Refusal(
            StatusCode::FORBIDDEN,
            "this key is not bound to a host yet: push a batch first".into(),
        )),
    }
}

pub async fn agent_pending(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> Response {
    let host = match agent_host(&actor) {
        Ok(h) => h,
        Err(r) => return refused(r),
    };
    match st.store.pending_verdicts(&host).await {
        Ok(verdicts) => ok(StatusCode::OK, Pending { verdicts }),
        Err(e) => refused(e.into()),
    }
}

pub async fn agent_ack(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Json(b): Json<Acks>,
) -> Response {
    let host = match agent_host(&actor) {
        Ok(h) => h,
        Err(r) => return refused(r),
    };
    if b.acks.len() > 10_000 {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "at most 10000 acks");
    }
    if let Some(e) = b
        .acks
        .iter()
        .filter_map(|a| a.error.as_deref())
        .find(|e| e.len() > 4096)
    {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("an error is at most 4096 bytes, got {}", e.len()),
        );
    }
    match st
        .store
        .ack_verdicts(&host, &b.acks, crate::store::now_ns())
        .await
    {
        Ok(n) => ok(StatusCode::OK, json!({ "acknowledged": n })),
        Err(e) => refused(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::model::{Anomaly, Factor, Level, Principal};
    use crate::server::store::IngestBatch;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_in_process_dashboard_delivers_its_verdicts_to_the_agent_store() {
        let d = tempfile::tempdir().unwrap();
        let agent_db = d.path().join("agent.db");
        let a = Anomaly {
            id: "h-1".into(),
            host: "h".into(),
            time_ns: 1,
            principal: Principal {
                uid: 1000,
                user: None,
                session: None,
            },
            chain: vec![],
            score: 40,
            level: Level::Medium,
            factors: vec![Factor {
                detection: "exec_from_writable".into(),
                reason: "r".into(),
                weight: 40,
                evidence: vec![],
            }],
            evidence: vec![],
            fingerprint: String::new(),
            explanation: None,
        };
        crate::store::Store::open(&agent_db)
            .unwrap()
            .put_anomaly(&a)
            .unwrap();
        let st = AppState::new(
            Arc::new(crate::server::sqlite::SqliteStore::memory().unwrap()),
            Default::default(),
        );
        st.ingest(&IngestBatch {
            batch_id: "b".into(),
            anomalies: vec![a],
            ..Default::default()
        })
        .await
        .unwrap();
        let id = st
            .store
            .add_verdict(&NewVerdict {
                host: "h",
                target: "h-1",
                kind: TargetKind::Anomaly,
                verdict: Verdict::Benign,
                scope: Scope::Exe,
                note: None,
                by: "olga",
                now_ns: 5,
            })
            .await
            .unwrap();
        let task = spawn_local_delivery(
            st.clone(),
            "h".into(),
            agent_db.clone(),
            Duration::from_millis(20),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while st
            .store
            .get_verdict(id)
            .await
            .unwrap()
            .unwrap()
            .delivered_ns
            .is_none()
        {
            assert!(Instant::now() < deadline, "never delivered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        task.abort();
        let rules = crate::store::Store::open(&agent_db)
            .unwrap()
            .feedback_rules()
            .unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0]["by"], "olga (server)");
        assert_eq!(rules[0]["scope"], "exe");
    }
}
