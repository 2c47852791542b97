//! The verdicts part of the anomaly and incident pages: the verdicts given on it with their
//! delivery to the agent, and for operators the "benign" / "malicious" form (scope, note) and
//! an undo button per verdict in force. Both forms post with the session's CSRF token and go
//! through the same checks and audit as the JSON API (feedback.rs).

use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::AppState;
use super::access::{Actor, Client};
use super::feedback::{
    self, Ask, Refusal, StoredVerdict, TargetKind, VerdictFilter, parse_scope, parse_verdict,
    scope_str, verdict_str,
};
use super::store::{Role, StoredAnomaly};
use super::web::{csrf_field, error_page, fmt_time, seg};

/// The verdicts on an anomaly and, for operators, the form to give one.
pub async fn section(st: &AppState, actor: &Actor, a: &StoredAnomaly) -> Markup {
    let an = &a.anomaly;
    let action = format!("/anomalies/{}/feedback", seg(&an.id));
    verdicts(st, actor, &an.host, &an.id, &action).await
}

/// The verdicts on an incident (all its steps' findings at once) and the form.
pub async fn incident_section(st: &AppState, actor: &Actor, host: &str, id: &str) -> Markup {
    let action = format!("/incidents/{}/{}/feedback", seg(host), seg(id));
    verdicts(st, actor, host, id, &action).await
}

async fn verdicts(st: &AppState, actor: &Actor, host: &str, target: &str, action: &str) -> Markup {
    let verdicts = st
        .store
        .list_verdicts(&VerdictFilter {
            host: Some(host.to_string()),
            target: Some(target.to_string()),
            limit: Some(50),
        })
        .await
        .unwrap_or_else(|e| {
            tracing::error!("listing verdicts: {e}");
            Vec::new()
        });
    let operator = actor.can(Role::Operator);
    let in_force = verdicts.iter().any(StoredVerdict::active);
    html! {
        h2 { "Verdict" }
        @if verdicts.is_empty() { p.empty { "No analyst's verdict yet." } }
        @if !verdicts.is_empty() {
            div.tablewrap { table.verdicts {
                thead { tr { th { "Verdict" } th { "Scope" } th { "By" } th { "Given (UTC)" } th { "Note" } th { "Delivery to the agent" } th {} } }
                tbody { @for v in &verdicts { tr data-verdict=(v.id) {
                    td { strong { (verdict_str(v.verdict)) } }
                    td { (scope_str(v.scope)) }
                    td { (v.by) }
                    td.time { (fmt_time(v.created_ns)) }
                    td { (v.note.as_deref().unwrap_or("")) }
                    td.delivery { (v.delivery_words()) }
                    td {
                        @if let (Some(by), Some(t)) = (&v.undone_by, v.undone_ns) {
                            "undone by " (by) " at " (fmt_time(t))
                        } @else if operator {
                            form.inline method="post" action={ "/feedback/" (v.id) "/undo" } {
                                (csrf_field(actor))
                                button.undo type="submit" { "Undo" }
                            }
                        }
                    }
                } } }
            } }
        }
        @if operator && !in_force {
            form.feedback method="post" action=(action) {
                (csrf_field(actor))
                label { "Scope " select name="scope" {
                    option value="principal" selected { "this user running this program" }
                    option value="exe" { "this program, whoever runs it" }
                    option value="host" { "these detections anywhere on this host" }
                } }
                " "
                label { "Note " input name="note" maxlength="1000" placeholder="optional"; }
                " "
                button id="verdict-benign" type="submit" name="verdict" value="benign" { "Benign" }
                " "
                button id="verdict-malicious" type="submit" name="verdict" value="malicious" { "Malicious" }
                p.muted { "Benign: the same finding in this scope drops below medium on the agent. "
                    "Malicious: it is raised in full and never learned. The agent applies it on its next push." }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct GiveForm {
    pub verdict: Option<String>,
    pub scope: Option<String>,
    pub note: Option<String>,
}

fn refused(r: Refusal) -> Response {
    (r.0, error_page(r.0, &r.1)).into_response()
}

fn back(v: &StoredVerdict) -> Redirect {
    match v.kind {
        TargetKind::Anomaly => Redirect::to(&format!("/anomalies/{}", seg(&v.target))),
        // Incidents are kept per host (the incident page is /incidents/{host}/{id}).
        TargetKind::Incident => {
            Redirect::to(&format!("/incidents/{}/{}", seg(&v.host), seg(&v.target)))
        }
    }
}

/// `POST /anomalies/{id}/feedback`.
pub async fn give_form(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Path(id): Path<String>,
    Form(f): Form<GiveForm>,
) -> Response {
    give_target(&st, &actor, &client, &id, None, f).await
}

/// `POST /incidents/{host}/{id}/feedback`.
pub async fn give_incident_form(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Path((host, id)): Path<(String, String)>,
    Form(f): Form<GiveForm>,
) -> Response {
    give_target(&st, &actor, &client, &id, Some(&host), f).await
}

/// An anomaly's verdict (no host) or an incident's (its host).
async fn give_target(
    st: &AppState,
    actor: &Actor,
    client: &Client,
    id: &str,
    incident_host: Option<&str>,
    f: GiveForm,
) -> Response {
    let bad = |m: &str| refused(Refusal(StatusCode::UNPROCESSABLE_ENTITY, m.into()));
    let Some(verdict) = f.verdict.as_deref().and_then(parse_verdict) else {
        return bad("choose benign or malicious");
    };
    let Some(scope) = parse_scope(f.scope.as_deref().unwrap_or("principal")) else {
        return bad("the scope is principal, exe or host");
    };
    let ask = Ask {
        target: id,
        kind: match incident_host {
            Some(_) => TargetKind::Incident,
            None => TargetKind::Anomaly,
        },
        host: incident_host,
        verdict,
        scope,
        note: f.note.as_deref(),
    };
    match feedback::give(st, actor, &client.ip, &ask).await {
        Ok(v) => back(&v).into_response(),
        Err(r) => refused(r),
    }
}

pub async fn undo_form(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Path(id): Path<i64>,
) -> Response {
    match feedback::undo(&st, &actor, &client.ip, id).await {
        Ok(v) => back(&v).into_response(),
        Err(r) => refused(r),
    }
}
