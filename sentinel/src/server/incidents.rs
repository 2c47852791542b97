//! Session incidents on the server: what an agent's incident must satisfy to be stored (the
//! same rules as anomalies: clean names, no future times, command lines redacted), the
//! storage trait and its records, and the JSON API (`GET /api/incidents`, cursor-paginated,
//! and `GET /api/incidents/{host}/{id}`). An incident is re-sent at every new step under the
//! same id; the server keeps the state with the highest `step_count` (its version), so batches
//! arriving out of order never take a story backwards. Pages: incident_pages.rs.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::ingest::{REDACTOR, name_problem};
use super::store::{DbResult, Refused};
use crate::incident::Incident;
use crate::model::Level;

/// Steps an incident may list (the agent keeps 64; anything far above is not an agent's).
const MAX_STEPS: usize = 1000;

/// An incident as the server keeps it: its latest state, when that arrived, and the latest
/// explanation (which may describe an earlier state: `explained_step_count` says which).
#[derive(Clone, Debug, Serialize)]
pub struct StoredIncident {
    #[serde(flatten)]
    pub incident: Incident,
    /// When the server received the state shown (the list's order and the retention clock).
    pub received_ns: i64,
    /// When the server received the incident's first state.
    pub first_received_ns: i64,
    /// The `step_count` of the state the explanation describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explained_step_count: Option<u32>,
    /// Position in the list order (the cursor of `GET /api/incidents`).
    #[serde(skip)]
    pub seq: i64,
}

/// What an ingest did with the incidents of a batch, by id.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct IncidentOutcome {
    /// Incidents seen for the first time.
    pub stored: Vec<String>,
    /// Incidents replaced by a later state (more steps), or given their explanation.
    pub updated: Vec<String>,
    /// The same state again (a retry): nothing changed.
    pub duplicates: Vec<String>,
    /// States older than the one stored (batches out of order): the stored one was kept.
    pub stale: Vec<String>,
}

/// The order of the incident list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentOrder {
    /// Latest received first.
    #[default]
    Recent,
    /// Highest session score first (then latest).
    Score,
}

/// Where a page of the list starts: after the row with this (score, seq).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub score: i64,
    pub seq: i64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}.{}", self.score, self.seq)
    }

    pub fn parse(s: &str) -> Option<Cursor> {
        let (a, b) = s.split_once('.')?;
        Some(Cursor {
            score: a.parse().ok()?,
            seq: b.parse().ok()?,
        })
    }
}

#[derive(Clone, Debug, Default)]
pub struct IncidentFilter {
    pub host: Option<String>,
    /// Incidents active at or after this time (their last step, agent's clock).
    pub from_ns: Option<i64>,
    /// Incidents begun at or before this time (their first step).
    pub to_ns: Option<i64>,
    pub min_level: Option<Level>,
    pub order: IncidentOrder,
    pub cursor: Option<Cursor>,
    pub limit: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct IncidentPage {
    pub incidents: Vec<StoredIncident>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Incident storage (in the same transaction as the rest of a batch: see `DataStore::ingest`).
#[async_trait::async_trait]
pub trait IncidentStore: Send + Sync {
    async fn list_incidents(&self, f: &IncidentFilter) -> DbResult<IncidentPage>;
    async fn get_incident(&self, host: &str, id: &str) -> DbResult<Option<StoredIncident>>;
    async fn count_incidents(&self) -> DbResult<i64>;
}

/// Like `ingest::field_problem`: only control characters and length are checked.
fn field_problem(what: &str, v: &str) -> Option<String> {
    if v.len() > 4096 {
        Some(format!("{what} is longer than 4096 bytes"))
    } else if v.chars().any(char::is_control) {
        Some(format!("{what} contains a control character"))
    } else {
        None
    }
}

/// Why an incident is refused, or None.
pub fn incident_problem(i: &Incident, latest_ns: i64, skew_secs: u64) -> Option<String> {
    if let Some(p) = name_problem("id", &i.id).or_else(|| name_problem("host", &i.host)) {
        return Some(p);
    }
    let future = |t: i64| t > latest_ns;
    if future(i.first_ns) || future(i.last_ns) || i.steps.iter().any(|s| future(s.time_ns)) {
        return Some(format!(
            "a time is more than {skew_secs} s ahead of the server's clock"
        ));
    }
    if i.first_ns > i.last_ns {
        return Some("first_ns is after last_ns".into());
    }
    if i.steps.len() > MAX_STEPS || (i.step_count as usize) < i.steps.len() {
        return Some(format!(
            "at most {MAX_STEPS} steps, and step_count at least the steps listed"
        ));
    }
    let mut fields: Vec<(&str, &str)> = vec![("scope", &i.scope), ("story", &i.story)];
    if let Some(u) = &i.principal.user {
        fields.push(("principal.user", u));
    }
    fields.extend(i.tactics.iter().map(|t| ("tactic", t.as_str())));
    for s in &i.steps {
        fields.push(("step anomaly_id", &s.anomaly_id));
        fields.push(("step tactic", &s.tactic));
        fields.extend(s.detections.iter().map(|d| ("step detection", d.as_str())));
        for f in &s.factors {
            fields.push(("factor detection", &f.detection));
            fields.extend(
                f.evidence
                    .iter()
                    .map(|e| ("factor evidence id", e.as_str())),
            );
        }
    }
    fields
        .into_iter()
        .find_map(|(what, v)| field_problem(what, v))
}

/// Passes the free text of an incident's steps (the reasons, which quote command lines)
/// through the same redaction as anomalies' command lines. Stable: redacting twice changes
/// nothing, so a retried state stays a duplicate.
pub fn redact_incident(i: &mut Incident) {
    let r = &*REDACTOR;
    for s in &mut i.steps {
        s.summary = r.command_line(&s.summary);
        for f in &mut s.factors {
            f.reason = r.command_line(&f.reason);
        }
    }
}

/// Removes the incidents the server refuses from `list` (redacting the rest) and says which
/// and why.
pub fn screen(list: &mut Vec<Incident>, latest_ns: i64, skew_secs: u64) -> Vec<Refused> {
    let mut refused = Vec::new();
    let mut keep = Vec::with_capacity(list.len());
    for (index, mut i) in std::mem::take(list).into_iter().enumerate() {
        match incident_problem(&i, latest_ns, skew_secs) {
            None => {
                redact_incident(&mut i);
                keep.push(i);
            }
            Some(reason) => refused.push(Refused {
                kind: "incident",
                index,
                id: Some(i.id.escape_default().to_string()),
                reason,
            }),
        }
    }
    *list = keep;
    refused
}

/// Query of `GET /api/incidents` and of the dashboard's incident list.
#[derive(Debug, Default, Deserialize)]
pub struct IncidentQuery {
    pub host: Option<String>,
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
    pub level: Option<String>,
    pub order: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

impl IncidentQuery {
    /// The filter, or why the query is unacceptable.
    pub fn filter(&self, default_limit: usize) -> Result<IncidentFilter, String> {
        let nz = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        let order = match self.order.as_deref().filter(|s| !s.is_empty()) {
            None | Some("recent") => IncidentOrder::Recent,
            Some("score") => IncidentOrder::Score,
            Some(o) => return Err(format!("order {o:?}: use recent or score")),
        };
        let cursor = match nz(&self.cursor) {
            None => None,
            Some(c) => Some(Cursor::parse(&c).ok_or("cursor: pass next_cursor as given")?),
        };
        let min_level = match nz(&self.level) {
            None => None,
            Some(l) => Some(Level::parse(&l).ok_or("level: low, medium, high or critical")?),
        };
        Ok(IncidentFilter {
            host: nz(&self.host),
            from_ns: self.from_ns,
            to_ns: self.to_ns,
            min_level,
            order,
            cursor,
            limit: self.limit.unwrap_or(default_limit).clamp(1, 500),
        })
    }
}

fn api_error(status: StatusCode, msg: impl Into<String>) -> Response {
    super::api::error(status, msg)
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!("incident request failed: {e}");
    api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// `GET /api/incidents`.
pub async fn api_list(State(st): State<AppState>, Query(q): Query<IncidentQuery>) -> Response {
    let f = match q.filter(50) {
        Ok(f) => f,
        Err(m) => return api_error(StatusCode::BAD_REQUEST, m),
    };
    match st.store.list_incidents(&f).await {
        Ok(p) => Json(p).into_response(),
        Err(e) => internal(e),
    }
}

/// `GET /api/incidents/{host}/{id}`.
pub async fn api_get(
    State(st): State<AppState>,
    Path((host, id)): Path<(String, String)>,
) -> Response {
    match st.store.get_incident(&host, &id).await {
        Ok(Some(i)) => Json(i).into_response(),
        Ok(None) => api_error(StatusCode::NOT_FOUND, "no such incident"),
        Err(e) => internal(e),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::incident::Step;
    use crate::model::{Factor, Principal};

    pub(crate) fn incident(id: &str, host: &str, steps: u32, t: i64) -> Incident {
        let step = |n: u32| Step {
            anomaly_id: format!("{host}-a{n}"),
            time_ns: t + n as i64,
            tactic: "execution".into(),
            detections: vec!["exec_from_writable".into()],
            score: 40,
            level: Level::Medium,
            summary: "ran mysql --password=hunter2secret".into(),
            exe: "/tmp/x".into(),
            factors: vec![Factor {
                detection: "exec_from_writable".into(),
                reason: "ran mysql --password=hunter2secret".into(),
                weight: 40,
                evidence: vec!["17".into()],
            }],
        };
        Incident {
            id: id.into(),
            host: host.into(),
            principal: Principal {
                uid: 1000,
                user: Some("alice".into()),
                session: Some(3),
            },
            scope: "session 3".into(),
            first_ns: t,
            last_ns: t + steps as i64,
            score: 40 + 2 * steps.min(5) as u8,
            level: Level::Medium,
            tactics: vec!["execution".into()],
            story: "execution".into(),
            steps: (1..=steps).map(step).collect(),
            step_count: steps,
            explanation: None,
        }
    }

    #[test]
    fn bad_incidents_are_refused_one_by_one_and_the_rest_redacted() {
        let now = 1_000_000_000_000i64;
        let mut bad_step = incident("s", "h", 2, now);
        bad_step.steps[1].anomaly_id = "a\nb".into();
        let mut backwards = incident("b", "h", 2, now);
        backwards.first_ns = backwards.last_ns + 1;
        let mut list = vec![
            incident("ok", "h", 2, now),
            incident("bad\nid", "h", 2, now),
            incident("future", "h", 2, now + 301_000_000_000),
            bad_step,
            backwards,
        ];
        let r = screen(&mut list, now + 300_000_000_000, 300);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].id, "ok");
        let text = serde_json::to_string(&list[0]).unwrap();
        assert!(
            !text.contains("hunter2secret") && text.contains("REDACTED"),
            "{text}"
        );
        let reasons: Vec<(&str, &str)> = r
            .iter()
            .map(|x| (x.id.as_deref().unwrap(), x.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert_eq!(reasons[0].0, "bad\\nid");
        assert!(reasons[0].1.contains("control character"));
        assert!(reasons[1].1.contains("ahead of the server's clock"));
        assert!(reasons[2].1.contains("step anomaly_id"));
        assert!(reasons[3].1.contains("first_ns"));
        // Stable: a retried state redacts to the same record.
        let mut again = vec![list[0].clone()];
        screen(&mut again, now + 300_000_000_000, 300);
        assert_eq!(again[0], list[0]);
    }

    #[test]
    fn queries_and_cursors_parse_or_say_why() {
        let q = IncidentQuery {
            order: Some("score".into()),
            cursor: Some("70.12".into()),
            level: Some("high".into()),
            limit: Some(10_000),
            ..Default::default()
        };
        let f = q.filter(50).unwrap();
        assert_eq!(f.order, IncidentOrder::Score);
        assert_eq!(f.cursor, Some(Cursor { score: 70, seq: 12 }));
        assert_eq!(f.limit, 500);
        assert_eq!(f.min_level, Some(Level::High));
        for bad in [
            IncidentQuery {
                cursor: Some("x".into()),
                ..Default::default()
            },
            IncidentQuery {
                order: Some("oldest".into()),
                ..Default::default()
            },
            IncidentQuery {
                level: Some("huge".into()),
                ..Default::default()
            },
        ] {
            assert!(bad.filter(50).is_err(), "{bad:?}");
        }
    }
}
