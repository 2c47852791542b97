//! The fleet in the dashboard: the admins' Fleet page (enrolment tokens: create, shown once,
//! revoke; enrolled hosts: state, retire), each host's agent health panel, and the memory
//! and load charts drawn from its snapshots (inline SVG, no script, no CDN).

use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::AppState;
use super::access::{Actor, Client};
use super::fleet::{AgentState, AgentStatus, SnapshotPoint};
use super::fleet_api::{self, TokenRequest};
use super::web::{ago, csrf_field, fmt_time, internal, page, seg};

fn now() -> i64 {
    crate::store::now_ns()
}

/// A coloured badge for an agent state.
pub fn state_badge(s: Option<AgentState>) -> Markup {
    let (class, text) = match s {
        Some(AgentState::Healthy) => ("lvl-low", "healthy"),
        Some(AgentState::Blind) => ("lvl-high", "blind"),
        Some(AgentState::Stale) => ("lvl-critical", "stale"),
        Some(AgentState::Retired) => ("lvl-none", "retired"),
        Some(AgentState::Unknown) => ("lvl-none", "no heartbeat yet"),
        None => ("lvl-none", "no agent status"),
    };
    html! { span class={ "badge agent " (class) } title="agent health" { (text) } }
}

/// The "Agent" panel of a host page: state, why, heartbeat age, and the health snapshot's
/// figures (hooks, events per second per kind, losses, baselines, spool).
pub fn agent_section(a: Option<&AgentStatus>) -> Markup {
    let Some(a) = a else {
        return html! {
            h2 { "Agent" }
            p.empty { "No heartbeat received: the agent predates heartbeats, or is not enrolled." }
        };
    };
    let hb = a.heartbeat.as_ref();
    let raw = hb.and_then(|h| h.get("health"));
    let h = raw.and_then(fleet_api::health_of).unwrap_or_default();
    let lost = h.events.kernel_lost.values().sum::<u64>();
    let dropped = h.events.channel_dropped.values().sum::<u64>();
    html! {
        h2 { "Agent " (state_badge(Some(a.state))) }
        dl.facts {
            dt { "State" } dd { (a.state) " since " (fmt_time(a.state_since_ns))
                @if !a.reason.is_empty() { " · " (a.reason) } }
            dt { "Last heartbeat" } dd { @match a.last_heartbeat_ns { Some(t) => { (ago(t)) }, None => { "never" } }
                @if let Some(i) = a.interval_secs { " (every " (i) " s)" } }
            @if let Some(e) = a.enrolled_ns { dt { "Enrolled" } dd { (fmt_time(e)) " · " (a.enrolments) " enrolments" } }
            @if let Some(r) = a.retired_ns { dt { "Retired" } dd { (fmt_time(r)) } }
            @if raw.is_some() {
                dt { "Agent" } dd { "version " (h.version) " · up " (format!("{:.0}", h.uptime_secs)) " s · kernel " (h.kernel_release) }
                dt { "Configuration" } dd { code { (h.config_hash.chars().take(16).collect::<String>()) } }
                dt { "Hooks" } dd { (h.hooks.attached.len()) " attached, " (h.hooks.failed.len()) " failed · syscall arguments from " (h.hooks.syscall_args)
                    @for f in &h.hooks.failed { br; code { (f.hook) } ": " (f.reason) } }
                dt { "Events" } dd { (format!("{:.1}", h.events.rate_per_sec)) " /s · " (h.events.total) " since start"
                    @if let Some(t) = h.events.last_event_ns { " · last " (ago(t)) } }
                dt { "Lost" } dd { (lost) " in the kernel, " (dropped) " dropped in the agent since start; " (h.events.lost_recent) " in the last 5 minutes" }
                @if let Some(d) = &h.detect {
                    dt { "Baselines" } dd { @for (family, s) in &d.baselines {
                        (family) ": " (s.calibrated) " calibrated, " (s.calibrating) " calibrating, " (s.learning) " learning" br;
                    } }
                }
                @if let Some(p) = &h.push {
                    dt { "Push spool" } dd { (p.spool_files) " batches, " (p.spool_bytes) " bytes"
                        @if p.spool_dropped_batches > 0 {
                            " · " strong { (p.spool_dropped_batches) " batches (" (p.spool_dropped_items) " items) dropped" }
                            " to stay under " (p.spool_max_bytes) " bytes"
                        } }
                }
            }
        }
        @if !h.events.rate_per_kind.is_empty() {
            details {
                summary { "Events per second by kind" }
                div.tablewrap { table { thead { tr { th { "Kind" } th { "per s" } th { "since start" } th { "lost" } } }
                    tbody { @for (k, r) in &h.events.rate_per_kind { tr {
                        td { (k) } td.num { (format!("{r:.2}")) }
                        td.num { (h.events.per_kind.get(k).copied().unwrap_or(0)) }
                        td.num { (h.events.kernel_lost.get(k).copied().unwrap_or(0) + h.events.channel_dropped.get(k).copied().unwrap_or(0)) }
                    } } } } }
            }
        }
        @if let Some(r) = raw {
            details { summary { "Health snapshot as sent" } pre { code { (serde_json::to_string_pretty(r).unwrap_or_default()) } } }
        }
    }
}

/// A line chart of `values` over time as inline SVG, scaled to `max` (at least the data's).
pub fn chart(title: &str, unit: &str, pts: &[(i64, f64)], max: f64) -> Markup {
    let (w, h) = (600.0, 120.0);
    if pts.is_empty() {
        return html! { div.chart { div.muted { (title) } p.empty { "No snapshots yet." } } };
    }
    let t0 = pts.first().map(|p| p.0).unwrap_or(0);
    let t1 = pts.last().map(|p| p.0).unwrap_or(0).max(t0 + 1);
    let top = pts
        .iter()
        .map(|p| p.1)
        .fold(max, f64::max)
        .max(f64::EPSILON);
    let xy: Vec<String> = pts
        .iter()
        .map(|(t, v)| {
            let x = (t - t0) as f64 / (t1 - t0) as f64 * w;
            let y = h - (v / top * (h - 4.0)) - 2.0;
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let last = pts.last().map(|p| p.1).unwrap_or(0.0);
    html! {
        div.chart {
            div.muted { (title) ": " strong { (format!("{last:.1}")) (unit) } " now, scale 0-" (format!("{top:.1}")) (unit)
                " · " (fmt_time(t0)) " to " (fmt_time(t1)) }
            svg class="chart" viewBox={ "0 0 " (w) " " (h) } width="600" height="120" role="img"
                aria-label={ (title) ", " (pts.len()) " points" } preserveAspectRatio="none" {
                polyline fill="none" stroke-width="2" points=(xy.join(" ")) {}
            }
        }
    }
}

/// Memory and load charts from a host's snapshots.
pub fn charts(series: &[SnapshotPoint]) -> Markup {
    let mem: Vec<(i64, f64)> = series
        .iter()
        .filter_map(|p| p.memory_used_percent.map(|v| (p.time_ns, v)))
        .collect();
    let load: Vec<(i64, f64)> = series
        .iter()
        .filter_map(|p| p.load1.map(|v| (p.time_ns, v)))
        .collect();
    html! {
        h2 { "Memory and load, last 7 days" }
        (chart("Memory used", " %", &mem, 100.0))
        (chart("Load (1 min)", "", &load, 1.0))
    }
}

async fn fleet_view(
    st: &AppState,
    actor: &Actor,
    status: StatusCode,
    notice: Option<Markup>,
) -> Response {
    let t = now();
    let tokens = match st.store.list_enrol_tokens().await {
        Ok(t) => t,
        Err(e) => return internal(e),
    };
    let agents = match st.store.list_agents().await {
        Ok(a) => a,
        Err(e) => return internal(e),
    };
    let body = html! {
        h1 { "Fleet" }
        @if let Some(n) = notice { (n) }
        section {
            h2 { "Enrolment tokens" }
            p.muted { "On a new host: " code { "sentinel enroll " (st.cfg.public_url.as_deref().unwrap_or("https://this-server")) " --token <token>" }
                ". The agent gets a key for its host only; enrolling again rotates it." }
            form.stack method="post" action="/admin/fleet/tokens" {
                (csrf_field(actor))
                label { "Expires in hours " input type="number" name="expires_hours" min="1" max="8760" value="24" required; }
                label { "Uses " input type="number" name="uses" min="1" max="100000" value="1" required; }
                label { "Note " input name="note" maxlength="200" placeholder="e.g. web tier rollout"; }
                button type="submit" { "Create token" }
            }
            @if !tokens.is_empty() { div.tablewrap { table {
                thead { tr { th { "Token" } th { "Note" } th { "Created" } th { "By" } th { "Expires" } th { "Uses" } th { "State" } th {} } }
                tbody { @for k in &tokens { tr {
                    td { code { (k.prefix) "…" } } td { (k.note) } td { (fmt_time(k.created_ns)) } td { (k.created_by) }
                    td { (k.expires_ns.map(fmt_time).unwrap_or_else(|| "never".into())) }
                    td.num { (k.uses) " / " (k.max_uses) } td { (k.state(t)) }
                    td { @if k.problem(t).is_none() {
                        form.inline method="post" action={ "/admin/fleet/tokens/" (k.id) "/revoke" } { (csrf_field(actor))
                            button.danger type="submit" { "Revoke" } }
                    } }
                } } }
            } } }
        }
        section {
            h2 { "Agents" }
            @if agents.is_empty() { p.empty { "No agent has enrolled or sent a heartbeat yet." } } @else {
                div.tablewrap { table {
                    thead { tr { th { "Host" } th { "State" } th { "Why" } th { "Last heartbeat" } th { "Enrolled" } th {} } }
                    tbody { @for a in &agents { tr {
                        td { a href={ "/hosts/" (seg(&a.host)) } { (a.host) } }
                        td { (state_badge(Some(a.state))) } td { (a.reason) }
                        td { (a.last_heartbeat_ns.map(ago).unwrap_or_else(|| "never".into())) }
                        td { (a.enrolled_ns.map(fmt_time).unwrap_or_else(|| "by hand".into())) }
                        td { @if a.state != AgentState::Retired {
                            form.inline method="post" action={ "/admin/fleet/hosts/" (seg(&a.host)) "/retire" } { (csrf_field(actor))
                                button.danger type="submit" title="revokes its key; it cannot enrol again" { "Retire" } }
                        } }
                    } } }
                } }
            }
        }
    };
    (status, page(st, Some(actor), "Fleet", body)).into_response()
}

pub async fn fleet_page(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> Response {
    fleet_view(&st, &actor, StatusCode::OK, None).await
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    expires_hours: String,
    #[serde(default)]
    uses: String,
    #[serde(default)]
    note: String,
}

pub async fn token_create(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Form(f): Form<TokenForm>,
) -> Response {
    let bad = async |m: &str| {
        fleet_view(
            &st,
            &actor,
            StatusCode::BAD_REQUEST,
            Some(html! { p.error { (m) } }),
        )
        .await
    };
    let Ok(hours) = f.expires_hours.trim().parse::<u64>() else {
        return bad("Give the expiry in hours.").await;
    };
    let Ok(uses) = f.uses.trim().parse::<i64>() else {
        return bad("Give the number of uses.").await;
    };
    let req = TokenRequest {
        expires_secs: Some(hours.saturating_mul(3600)),
        uses: Some(uses),
        note: f.note,
    };
    match fleet_api::admin_create_token(&st, &actor, &client, &req).await {
        Ok((secret, token)) => fleet_view(
            &st,
            &actor,
            StatusCode::OK,
            Some(html! {
                div.notice {
                    p { "Token created (" (token.max_uses) " uses, expires "
                        (token.expires_ns.map(fmt_time).unwrap_or_default()) "). Copy it now: it is not shown again." }
                    p { code.secret { (secret) } }
                }
            }),
        ).await,
        Err(m) => bad(&m).await,
    }
}

pub async fn token_revoke(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Path(id): Path<i64>,
) -> Response {
    match fleet_api::revoke_token(&st, &actor, &client, id).await {
        Ok(_) => Redirect::to("/admin/fleet").into_response(),
        Err(e) => internal(e),
    }
}

pub async fn host_retire(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Path(name): Path<String>,
) -> Response {
    match fleet_api::retire(&st, &actor, &client, &name).await {
        Ok(Some(_)) => Redirect::to("/admin/fleet").into_response(),
        Ok(None) => super::web::not_found().await,
        Err(e) => internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_scale_to_the_data_and_say_when_empty() {
        let svg = chart("Load", "", &[(0, 0.5), (10, 4.0)], 1.0).into_string();
        assert!(
            svg.contains("scale 0-4.0") && svg.contains("polyline"),
            "{svg}"
        );
        assert!(
            svg.contains("600.0,2.0"),
            "the peak at the top right: {svg}"
        );
        assert!(
            chart("Load", "", &[], 1.0)
                .into_string()
                .contains("No snapshots")
        );
    }
}
