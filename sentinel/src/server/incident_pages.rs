//! Dashboard pages of session incidents: the list at the top of the home page (one row per
//! incident, newest or highest first, cursor-paginated) and the incident page (its steps in
//! time order, each with its factors and a link to its anomaly). Everything through maud, so
//! agent data is always escaped; missing or odd data shows as such, never as a panic.

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::AppState;
use super::access::Actor;
use super::incidents::{IncidentOrder, IncidentQuery, StoredIncident};
use super::web::{fmt_time, internal, level_badge, not_found, page, seg};
use crate::incident::{Incident, Step};
use crate::model::Explanation;

/// Incidents on one page of the home list.
const PAGE: usize = 25;

pub fn incident_href(i: &Incident) -> String {
    format!("/incidents/{}/{}", seg(&i.host), seg(&i.id))
}

fn principal(i: &Incident) -> String {
    match &i.principal.user {
        Some(u) => format!("{u} (uid {})", i.principal.uid),
        None => format!("uid {}", i.principal.uid),
    }
}

/// (acknowledged, known) among the step anomalies the server holds.
async fn acked_steps(st: &AppState, i: &Incident) -> (usize, usize) {
    let mut acked = 0;
    let mut known = 0;
    for s in &i.steps {
        if let Ok(Some(a)) = st.store.get_anomaly(&s.anomaly_id).await
            && a.anomaly.host == i.host
        {
            known += 1;
            acked += usize::from(a.acked_ns.is_some());
        }
    }
    (acked, known)
}

async fn ack_cell(st: &AppState, i: &Incident) -> Markup {
    let (acked, known) = acked_steps(st, i).await;
    html! {
        @if known > 0 && acked == known { span.acked title="every step's anomaly is acknowledged" { "ack" } }
        @else if acked > 0 { span.muted { (acked) "/" (known) " ack" } }
        @else { span.muted { "open" } }
    }
}

async fn row(st: &AppState, s: &StoredIncident) -> Markup {
    let i = &s.incident;
    html! {
        tr data-incident=(i.id) {
            td { (level_badge(Some(i.level))) }
            td.num { (i.score) }
            td { a href={ "/hosts/" (seg(&i.host)) } { (i.host) } }
            td { (principal(i)) br; span.muted { (i.scope) } }
            td.reason { a href=(incident_href(i)) { (i.story) } }
            td.time { (fmt_time(i.first_ns)) br; (fmt_time(i.last_ns)) }
            td.num { (i.step_count) }
            td { (ack_cell(st, i).await) }
        }
    }
}

/// The incident list of the home page; its own query parameters are `order` and `cursor`
/// (host and level are shared with the anomaly filters below it).
pub async fn section(st: &AppState, q: &IncidentQuery) -> Markup {
    let f = q.filter(PAGE).map(|mut f| {
        f.limit = PAGE;
        f
    });
    let page = match &f {
        Ok(f) => st.store.list_incidents(f).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.clone()),
    };
    let order = f.as_ref().map(|f| f.order).unwrap_or_default();
    let link = |order: &str, cursor: Option<&str>| {
        let mut u = format!("/?order={order}");
        for (k, v) in [("host", &q.host), ("level", &q.level)] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                u.push_str(&format!("&{k}={}", seg(v)));
            }
        }
        if let Some(c) = cursor {
            u.push_str(&format!("&cursor={}", seg(c)));
        }
        u
    };
    let order_name = match order {
        IncidentOrder::Recent => "recent",
        IncidentOrder::Score => "score",
    };
    html! {
        section.incidents id="incidents" {
            h1 { "Incidents" }
            p.muted {
                "One login session's anomalies told as one story. Order: "
                @if order == IncidentOrder::Recent { strong { "newest" } } @else { a href=(link("recent", None)) { "newest" } }
                " · "
                @if order == IncidentOrder::Score { strong { "highest" } } @else { a href=(link("score", None)) { "highest" } }
            }
            @match &page {
                Err(e) => {
                    @if f.is_err() { p.error { (e) } } @else { p.error { "Incidents could not be read; see the server log." } }
                }
                Ok(p) => {
                    div.tablewrap { table.incidents {
                        thead { tr { th { "Level" } th { "Score" } th { "Host" } th { "Who / session" } th { "Story" } th { "First / last (UTC)" } th { "Steps" } th {} } }
                        tbody { @for s in &p.incidents { (row(st, s).await) } }
                    } }
                    @if p.incidents.is_empty() { p.empty { "No incidents match." } }
                    @if let Some(c) = &p.next_cursor {
                        p { a.next id="incidents-next" href=(link(order_name, Some(c))) { "Next page →" } }
                    }
                }
            }
        }
    }
}

fn explanation(x: &Explanation, of_steps: Option<u32>, now_steps: u32) -> Markup {
    html! {
        div.explanation {
            p { strong { (x.summary) } }
            p { (x.likely_explanation) }
            @if !x.benign_alternatives.is_empty() {
                p { "Benign alternatives:" } ul { @for b in &x.benign_alternatives { li { (b) } } }
            }
            @if !x.next_steps.is_empty() {
                p { "Next steps:" }
                ul { @for s in &x.next_steps { li { (s.description)
                    @if let Some(c) = &s.command { br; code { (c) } @if let Some(p) = &s.policy { " [" (p) "]" } }
                } } }
            }
            p.muted {
                "Confidence " (format!("{:.0}%", x.confidence * 100.0)) " · " (x.source)
                @if let Some(n) = of_steps.filter(|n| *n != now_steps) {
                    " · told when the incident had " (n) " steps"
                }
            }
            @for w in &x.warnings { p.warn { (w) } }
        }
    }
}

async fn step_rows(st: &AppState, host: &str, n: usize, s: &Step) -> Markup {
    let anomaly = st
        .store
        .get_anomaly(&s.anomaly_id)
        .await
        .ok()
        .flatten()
        .filter(|a| a.anomaly.host == host);
    let span = s.factors.len().max(1);
    let link = html! {
        @if let Some(a) = &anomaly {
            a href={ "/anomalies/" (seg(&s.anomaly_id)) } { code { (s.anomaly_id) } }
            @if a.acked_ns.is_some() { " " span.acked { "ack" } }
        } @else {
            code { (s.anomaly_id) } br; span.muted { "not received" }
        }
    };
    let head = html! {
        td.num rowspan=(span) { (n) }
        td.time rowspan=(span) { (fmt_time(s.time_ns)) }
        td rowspan=(span) { (s.tactic) br; (level_badge(Some(s.level))) " " (s.score) }
    };
    html! {
        @if s.factors.is_empty() {
            tr.step {
                (head)
                td { code { (s.detections.join(", ")) } }
                td { (s.summary) br; span.muted { "by " code { (s.exe) } } }
                td.num { }
                td { }
                td rowspan=(span) { (link) }
            }
        } @else {
            @for (k, f) in s.factors.iter().enumerate() {
                tr.step {
                    @if k == 0 { (head) }
                    td { code { (f.detection) } }
                    td { (f.reason) @if k == 0 { br; span.muted { "by " code { (s.exe) } } } }
                    td.num { (f.weight) }
                    td { (f.evidence.join(", ")) }
                    @if k == 0 { td rowspan=(span) { (link) } }
                }
            }
        }
    }
}

/// `GET /incidents/{host}/{id}`.
pub async fn incident(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path((host, id)): Path<(String, String)>,
) -> Response {
    let s = match st.store.get_incident(&host, &id).await {
        Ok(Some(s)) => s,
        Ok(None) => return not_found().await,
        Err(e) => return internal(e),
    };
    let i = &s.incident;
    let (acked, known) = acked_steps(&st, i).await;
    let body = html! {
        h1 { (level_badge(Some(i.level))) " Incident: " (i.story) }
        dl.facts {
            dt { "Host" } dd { a href={ "/hosts/" (seg(&i.host)) } { (i.host) } }
            dt { "Who" } dd { (principal(i)) ", " (i.scope) }
            dt { "Score" } dd { (i.score) " / 100 (the highest step plus 15 per further tactic and 2 per further step, at most 10)" }
            dt { "Tactics" } dd { (i.tactics.join(" → ")) }
            dt { "Time" } dd { (fmt_time(i.first_ns)) " to " (fmt_time(i.last_ns)) " UTC (agent's clock); this state received " (fmt_time(s.received_ns)) " UTC" }
            dt { "Steps" } dd { (i.step_count)
                @if (i.step_count as usize) > i.steps.len() { " (the first " (i.steps.len()) " are kept)" } }
            dt { "Acknowledged" } dd { (acked) " of " (known) " step anomalies" }
            dt { "Id" } dd { code { (i.id) } }
        }
        @if let Some(x) = &i.explanation {
            h2 { "The story" }
            (explanation(x, s.explained_step_count, i.step_count))
        }
        h2 { "Steps" }
        div.tablewrap { table.steps {
            thead { tr { th { "#" } th { "Time (UTC)" } th { "Tactic" } th { "Detection" } th { "Reason" } th { "Weight" } th { "Evidence" } th { "Anomaly" } } }
            tbody { @for (n, step) in i.steps.iter().enumerate() { (step_rows(&st, &i.host, n + 1, step).await) } }
        } }
        @if i.steps.is_empty() { p.empty { "No steps recorded." } }
        (super::feedback_web::incident_section(&st, &actor, &i.host, &i.id).await)
    };
    page(&st, Some(&actor), "Incident", body).into_response()
}
