//! Server-rendered pages of the dashboard (feed, anomaly, hosts, host) and the shared
//! layout. Everything goes through maud, which escapes every interpolated value, so agent
//! data (host names, user names, command lines) can never become markup.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use super::AppState;
use super::access::{Actor, Client, Via};
use super::store::{AnomalyFilter, Role, StoredAnomaly};
use crate::model::Level;

pub const APP_CSS: &str = include_str!("assets/app.css");
pub const APP_JS: &str = include_str!("assets/app.js");

pub async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        APP_CSS,
    )
        .into_response()
}

pub async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        APP_JS,
    )
        .into_response()
}

/// Percent-encodes one path segment (host names and ids come from agents): everything but
/// RFC 3986's unreserved characters.
pub fn seg(s: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

/// "2026-11-26 19:49:09" (UTC) from epoch nanoseconds.
pub fn fmt_time(ns: i64) -> String {
    crate::timefmt::utc_stamp(ns)
}

pub fn ago(ns: i64) -> String {
    let s = (crate::store::now_ns() - ns) / 1_000_000_000;
    match s {
        i64::MIN..60 => "just now".into(),
        60..3600 => format!("{} min ago", s / 60),
        3600..86_400 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

pub fn level_badge(l: Option<Level>) -> Markup {
    match l {
        Some(l) => html! { span class={ "badge lvl-" (l.as_str()) } { (l.as_str()) } },
        None => html! { span class="badge lvl-none" { "none" } },
    }
}

pub fn csrf_field(a: &Actor) -> Markup {
    html! { input type="hidden" name="csrf" value=(a.csrf()); }
}

fn head(title: &str, actor: Option<&Actor>) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Sentinel" }
            link rel="stylesheet" href="/static/app.css";
            script src="/static/app.js" defer {}
            @if let Some(a) = actor { meta name="csrf-token" content=(a.csrf()); }
        }
    }
}

pub fn page(st: &AppState, actor: Option<&Actor>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, actor))
            body {
                header.top {
                    a.brand href="/" { "◉ Sentinel" }
                    @if let Some(a) = actor {
                        nav {
                            a href="/" { "Feed" }
                            a href="/hosts" { "Hosts" }
                            @if a.can(Role::Admin) {
                                a href="/admin/users" { "Users" }
                                a href="/admin/audit" { "Audit" }
                                a href="/admin/sessions" { "Sessions" }
                                a href="/admin/keys" { "Keys" }
                                a href="/admin/fleet" { "Fleet" }
                            }
                            @if a.via == Via::Session {
                                a href="/profile" { (a.username) " (" (a.role) ")" }
                                form.inline method="post" action="/logout" {
                                    (csrf_field(a))
                                    button.link type="submit" { "Sign out" }
                                }
                            } @else {
                                a href="/login" { "Sign in" }
                            }
                        }
                    }
                }
                @if st.cfg.demo { div.demo { "Read-only demo: changes are disabled." } }
                main { (body) }
            }
        }
    }
}

pub fn error_page(status: StatusCode, msg: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(&status.as_u16().to_string(), None))
            body { main.narrow {
                h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                p.error { (msg) }
                p { a href="/" { "Back to the feed" } }
            } }
        }
    }
}

pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        error_page(StatusCode::NOT_FOUND, "No such page."),
    )
        .into_response()
}

pub fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!("request failed: {e}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error; see the server log.",
        ),
    )
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct FeedQuery {
    pub host: Option<String>,
    pub user: Option<String>,
    pub level: Option<String>,
    pub detection: Option<String>,
    pub unacked: Option<String>,
}

impl FeedQuery {
    pub fn filter(&self, limit: usize) -> AnomalyFilter {
        let nz = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        AnomalyFilter {
            host: nz(&self.host),
            user: nz(&self.user),
            level: self.level.as_deref().and_then(Level::parse),
            detection: nz(&self.detection),
            unacked: Some(self.unacked.as_deref() == Some("1")),
            limit: Some(limit),
        }
    }
}

fn summary_of(a: &StoredAnomaly) -> String {
    a.anomaly
        .factors
        .iter()
        .max_by_key(|f| f.weight)
        .map(|f| f.reason.clone())
        .unwrap_or_default()
}

fn principal_of(a: &StoredAnomaly) -> String {
    a.anomaly
        .principal
        .user
        .clone()
        .unwrap_or_else(|| format!("uid {}", a.anomaly.principal.uid))
}

fn anomaly_row(a: &StoredAnomaly) -> Markup {
    let an = &a.anomaly;
    html! {
        tr data-id=(an.id) {
            td.time { (fmt_time(an.time_ns)) }
            td { (level_badge(Some(an.level))) }
            td { a href={ "/hosts/" (seg(&an.host)) } { (an.host) } }
            td { (principal_of(a)) }
            td.num { (an.score) }
            td.reason { a href={ "/anomalies/" (seg(&an.id)) } { (summary_of(a)) } }
            td { @if let Some(by) = &a.acked_by { span.acked title={ "by " (by) } { "ack" } } }
        }
    }
}

pub fn anomaly_table(rows: &[StoredAnomaly], live: bool) -> Markup {
    html! {
        div.tablewrap {
            table.anomalies id=[live.then_some("feed")] {
                thead { tr { th { "Time (UTC)" } th { "Level" } th { "Host" } th { "User" } th { "Score" } th { "Why" } th {} } }
                tbody { @for a in rows { (anomaly_row(a)) } }
            }
        }
        @if rows.is_empty() { p.empty id=[live.then_some("feed-empty")] { "No anomalies match." } }
    }
}

pub async fn feed(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Query(q): Query<FeedQuery>,
    Query(iq): Query<super::incidents::IncidentQuery>,
) -> Response {
    let rows = match st.store.list_anomalies(&q.filter(200)).await {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let hosts = st
        .store
        .list_hosts(crate::store::now_ns())
        .await
        .unwrap_or_default();
    let dets = st.store.detections().await.unwrap_or_default();
    let sel = |v: &Option<String>, x: &str| v.as_deref() == Some(x);
    let body = html! {
        (super::incident_pages::section(&st, &iq).await)
        h1 { "Live anomalies " span.status id="live-status" { "connecting…" } }
        form.filters method="get" action="/" {
            label { "Host " select name="host" {
                option value="" { "any" }
                @for h in &hosts { option value=(h.name) selected[sel(&q.host, &h.name)] { (h.name) } }
            } }
            label { "User " input name="user" value=[q.user.as_deref()] placeholder="name or uid"; }
            label { "Level ≥ " select name="level" {
                option value="" { "any" }
                @for l in ["low", "medium", "high", "critical"] { option value=(l) selected[sel(&q.level, l)] { (l) } }
            } }
            label { "Detection " select name="detection" {
                option value="" { "any" }
                @for d in &dets { option value=(d) selected[sel(&q.detection, d)] { (d) } }
            } }
            label.check { input type="checkbox" name="unacked" value="1" checked[sel(&q.unacked, "1")]; " unacknowledged" }
            button type="submit" { "Filter" }
        }
        (anomaly_table(&rows, true))
    };
    page(&st, Some(&actor), "Feed", body).into_response()
}

pub async fn anomaly(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Response {
    let a = match st.store.get_anomaly(&id).await {
        Ok(Some(a)) => a,
        Ok(None) => return not_found().await,
        Err(e) => return internal(e),
    };
    let an = &a.anomaly;
    let body = html! {
        h1 { (level_badge(Some(an.level))) " " (summary_of(&a)) }
        dl.facts {
            dt { "Host" } dd { a href={ "/hosts/" (seg(&an.host)) } { (an.host) } }
            dt { "User" } dd { (principal_of(&a)) " (uid " (an.principal.uid) ")"
                @if let Some(s) = an.principal.session { ", session " (s) } }
            dt { "Time" } dd { (fmt_time(an.time_ns)) " UTC (agent's clock); received " (fmt_time(a.received_ns)) " UTC" }
            dt { "Score" } dd { (an.score) " / 100" }
            dt { "Id" } dd { code { (an.id) } }
            @if let Some(orig) = &a.conflict_of {
                dt { "Id conflict" } dd.error { "The agent sent id " code { (orig) }
                    ", already stored with other content; kept under this id instead." }
            }
            dt { "Status" } dd {
                @if let (Some(by), Some(t)) = (&a.acked_by, a.acked_ns) {
                    "Acknowledged by " (by) " at " (fmt_time(t))
                } @else {
                    "Open"
                    @if actor.can(Role::Operator) {
                        form.inline method="post" action={ "/anomalies/" (seg(&an.id)) "/ack" } {
                            (csrf_field(&actor))
                            button id="ack" type="submit" { "Acknowledge" }
                        }
                    }
                }
            }
        }
        (super::feedback_web::section(&st, &actor, &a).await)
        h2 { "Factors" }
        div.tablewrap { table {
            thead { tr { th { "Detection" } th { "Reason" } th { "Weight" } th { "Evidence" } } }
            tbody { @for f in &an.factors { tr {
                td { code { (f.detection) } } td { (f.reason) } td.num { (f.weight) } td { (f.evidence.join(", ")) }
            } } }
        } }
        h2 { "Process chain" }
        @if an.chain.is_empty() { p.empty { "No chain recorded." } }
        ol.chain { @for l in &an.chain { li {
            code { (l.exe) } " pid " (l.pid) " uid " (l.uid)
            @if !l.argv.is_empty() { br; span.argv { (l.argv.join(" ")) } }
        } } }
        h2 { "Evidence" }
        @if an.evidence.is_empty() { p.empty { "No evidence events attached." } }
        @for e in &an.evidence {
            details.evidence {
                summary { code { (e.id) } " " (fmt_time(e.time_ns)) " " (e.summary) }
                pre { (serde_json::to_string_pretty(&e.detail).unwrap_or_default()) }
            }
        }
        @if let Some(x) = &an.explanation {
            h2 { "Explanation" }
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
                p.muted { "Confidence " (format!("{:.0}%", x.confidence * 100.0)) " · " (x.source) }
                @for w in &x.warnings { p.warn { (w) } }
            }
        }
    };
    page(&st, Some(&actor), "Anomaly", body).into_response()
}

pub async fn ack_anomaly(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Path(id): Path<String>,
) -> Response {
    match st.acknowledge(&actor, &client.ip, &id).await {
        Ok(_) => Redirect::to(&format!("/anomalies/{}", seg(&id))).into_response(),
        Err(e) => internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_formatting_is_utc_civil() {
        assert_eq!(fmt_time(0), "1970-01-01 00:00:00");
        assert_eq!(fmt_time(1_111_111_111_000_000_000), "2005-03-18 01:58:31");
        assert_eq!(fmt_time(951_782_400_000_000_000), "2000-02-29 00:00:00");
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(seg("web-1.example"), "web-1.example");
        assert_eq!(seg("<b>/x"), "%3Cb%3E%2Fx");
    }

    #[test]
    fn markup_escapes_agent_data() {
        let evil = "<script>alert(1)</script>\"'&";
        let m =
            html! { td { (evil) } a href={ "/hosts/" (seg(evil)) } title=(evil) {} }.into_string();
        assert!(!m.contains("<script>"), "{m}");
        assert!(
            m.contains("&lt;script&gt;") && m.contains("&quot;") && m.contains("&amp;"),
            "{m}"
        );
    }
}
