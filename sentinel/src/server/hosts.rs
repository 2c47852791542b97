//! The hosts overview and the host page: 24 h risk sparkline, plain-English posture, listeners,
//! configuration drift against the previous snapshot, audit summary and anomaly history
//! with acknowledgement. Snapshot fields follow the C-Sentinel fingerprint JSON.

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::AppState;
use super::access::{Actor, Client};
use super::store::{AnomalyFilter, Host, Role, StoredAnomaly};
use super::web::{ago, anomaly_table, csrf_field, internal, level_badge, not_found, page, seg};
use crate::model::Level;

pub async fn hosts(State(st): State<AppState>, Extension(actor): Extension<Actor>) -> Response {
    let hosts = match st.store.list_hosts(crate::store::now_ns()).await {
        Ok(h) => h,
        Err(e) => return internal(e),
    };
    let agents: std::collections::HashMap<String, super::fleet::AgentState> = st
        .store
        .list_agents()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|a| (a.host, a.state))
        .collect();
    let body = html! {
        h1 { "Hosts" }
        @if hosts.is_empty() { p.empty { "No agent has reported yet. See docs/server.md to connect one." } }
        div.cards { @for h in &hosts { a.card href={ "/hosts/" (seg(&h.name)) } {
            div.cardhead { span.hostname { (h.name) } (level_badge(h.level_24h)) " " (super::fleet_pages::state_badge(agents.get(&h.name).copied())) }
            div.muted { "last seen " (ago(h.last_seen_ns)) }
            div { (h.anomalies_24h) " anomalies in 24 h · " (h.unacked) " open" }
            div.muted { "learning: " (h.learning.as_deref().unwrap_or("unknown")) }
        } } }
    };
    page(&st, Some(&actor), "Hosts", body).into_response()
}

/// A host's (time, score) points of the last 24 h and its latest 100 anomalies.
pub async fn recent(st: &AppState, name: &str, now: i64) -> (Vec<(i64, u8)>, Vec<StoredAnomaly>) {
    let series = st
        .store
        .risk_series(name, now - 86_400_000_000_000)
        .await
        .unwrap_or_default();
    let history = st
        .store
        .list_anomalies(&AnomalyFilter {
            host: Some(name.to_string()),
            limit: Some(100),
            ..Default::default()
        })
        .await
        .unwrap_or_default();
    (series, history)
}

/// Max score per hour over the last 24 h as an inline SVG polyline.
pub fn sparkline(series: &[(i64, u8)], now_ns: i64) -> Markup {
    let hour = 3_600_000_000_000i64;
    let mut buckets = [0u8; 24];
    for &(t, s) in series {
        let age = (now_ns - t) / hour;
        if (0..24).contains(&age) {
            let i = 23 - age as usize;
            buckets[i] = buckets[i].max(s);
        }
    }
    let pts: Vec<String> = buckets
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{},{}", i * 10, 40 - (u32::from(*s) * 38 / 100)))
        .collect();
    let peak = buckets.iter().copied().max().unwrap_or(0);
    let class = format!("spark lvl-{}", Level::from_score(peak).as_str());
    html! {
        svg class=(class) viewBox="0 0 230 42" width="230" height="42" role="img" aria-label={ "peak risk " (peak) " in 24 h" } {
            polyline fill="none" stroke-width="2" points=(pts.join(" ")) {}
        }
    }
}

/// A plain-English posture summary from the latest snapshot and the last day's anomalies.
pub fn posture(h: &Host) -> Vec<String> {
    let mut out = Vec::new();
    match h.level_24h {
        Some(Level::Critical) => {
            out.push("CRITICAL: a critical anomaly was raised in the last 24 hours.".into())
        }
        Some(Level::High) => {
            out.push("ELEVATED: high-level anomalies in the last 24 hours.".into())
        }
        Some(_) => out.push("CAUTION: minor anomalies in the last 24 hours.".into()),
        None => out.push("HEALTHY: no anomalies in the last 24 hours.".into()),
    }
    if h.unacked > 0 {
        out.push(format!("{} anomalies are not yet acknowledged.", h.unacked));
    }
    if let Some(s) = &h.snapshot {
        let num = |p: &str| s.pointer(p).and_then(|v| v.as_f64());
        if s.pointer("/audit_summary/authentication/brute_force_detected")
            .and_then(|v| v.as_bool())
            == Some(true)
        {
            out.push("A brute-force pattern of failed logins was detected.".into());
        }
        if let Some(f) = num("/audit_summary/authentication/failures").filter(|f| *f > 0.0) {
            out.push(format!(
                "{f} failed authentications in the last audit window."
            ));
        }
        let tmp = num("/audit_summary/process_activity/tmp_executions").unwrap_or(0.0)
            + num("/audit_summary/process_activity/devshm_executions").unwrap_or(0.0);
        if tmp > 0.0 {
            out.push(format!("{tmp} programs ran from /tmp or /dev/shm."));
        }
        if let Some(z) = num("/process_summary/zombie_count").filter(|z| *z > 0.0) {
            out.push(format!("{z} zombie processes."));
        }
        if let Some(l) = num("/network/total_listeners") {
            out.push(format!("{l} listening sockets."));
        }
    } else {
        out.push("No host snapshot received yet.".into());
    }
    out
}

fn arr<'a>(v: Option<&'a serde_json::Value>, p: &str) -> Vec<&'a serde_json::Value> {
    v.and_then(|v| v.pointer(p))
        .and_then(|v| v.as_array())
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn s_of(v: &serde_json::Value, k: &str) -> String {
    match v.get(k) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(x) => x.to_string(),
    }
}

pub async fn host(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Response {
    let now = crate::store::now_ns();
    let h = match st.store.get_host(&name, now).await {
        Ok(Some(h)) => h,
        Ok(None) => return not_found().await,
        Err(e) => return internal(e),
    };
    let (series, history) = recent(&st, &name, now).await;
    let prev = st.store.previous_snapshot(&name).await.ok().flatten();
    let snap = h.snapshot.as_ref();
    let prev_sums: std::collections::HashMap<String, String> = arr(prev.as_ref(), "/config_files")
        .into_iter()
        .map(|c| (s_of(c, "path"), s_of(c, "checksum")))
        .collect();
    let audit = snap.and_then(|s| s.get("audit_summary"));
    let body = html! {
        h1 { (h.name) " " (level_badge(h.level_24h)) }
        div.hostsummary {
            div { div.muted { "Risk, last 24 h" } (sparkline(&series, now)) }
            div { div.muted { "Last seen" } (ago(h.last_seen_ns)) }
            div { div.muted { "Learning" } (h.learning.as_deref().unwrap_or("unknown")) }
        }
        (super::fleet_pages::agent_section(st.store.agent(&name).await.ok().flatten().as_ref()))
        (super::fleet_pages::charts(&st.store.snapshot_series(&name, now - 7 * 86_400_000_000_000).await.unwrap_or_default()))
        h2 { "Posture" }
        ul.posture { @for s in posture(&h) { li { (s) } } }
        h2 { "Listeners" }
        @let ls = arr(snap, "/network/listeners");
        @if ls.is_empty() { p.empty { "None reported." } } @else {
            div.tablewrap { table { thead { tr { th { "Proto" } th { "Address" } th { "Port" } th { "Process" } } }
                tbody { @for l in ls { tr { td { (s_of(l, "protocol")) } td { (s_of(l, "address")) } td.num { (s_of(l, "port")) } td { (s_of(l, "process")) " " (s_of(l, "pid")) } } } } } }
        }
        h2 { "Configuration drift" }
        @let cs = arr(snap, "/config_files");
        @if cs.is_empty() { p.empty { "No configuration files reported." } } @else {
            div.tablewrap { table { thead { tr { th { "Path" } th { "Perms" } th { "Modified" } th { "State" } } }
                tbody { @for c in cs {
                    @let path = s_of(c, "path");
                    @let sum = s_of(c, "checksum");
                    @let state = match prev_sums.get(&path) { None if prev.is_some() => "new", None => "baseline", Some(p) if *p == sum => "unchanged", Some(_) => "CHANGED" };
                    tr { td { code { (path) } } td { (s_of(c, "permissions")) } td { (s_of(c, "modified")) }
                        td class={ "drift-" (state.to_lowercase()) } { (state) @if !s_of(c, "warning").is_empty() { " · " (s_of(c, "warning")) } } }
                } } } }
        }
        h2 { "Audit summary" }
        @if let Some(a) = audit {
            dl.facts {
                dt { "Risk" } dd { (s_of(a, "risk_score")) " (" (s_of(a, "risk_level")) ")" }
                dt { "Auth failures" } dd { (a.pointer("/authentication/failures").map(|v| v.to_string()).unwrap_or_default()) }
                dt { "sudo" } dd { (a.pointer("/privilege_escalation/sudo_count").map(|v| v.to_string()).unwrap_or_default()) }
                dt { "Execs from /tmp" } dd { (a.pointer("/process_activity/tmp_executions").map(|v| v.to_string()).unwrap_or_default()) }
            }
        } @else { p.empty { "No audit summary reported." } }
        h2 { "History" }
        @if actor.can(Role::Operator) && h.unacked > 0 {
            form method="post" action={ "/hosts/" (seg(&h.name)) "/ack" } {
                (csrf_field(&actor))
                button type="submit" { "Acknowledge all " (h.unacked) }
            }
        }
        (anomaly_table(&history, false))
    };
    page(&st, Some(&actor), &h.name, body).into_response()
}

pub async fn ack_host(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Path(name): Path<String>,
) -> Response {
    match st.acknowledge_host(&actor, &client.ip, &name).await {
        Ok(_) => Redirect::to(&format!("/hosts/{}", seg(&name))).into_response(),
        Err(e) => internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_buckets_by_hour() {
        let now = 100 * 3_600_000_000_000i64;
        let svg =
            sparkline(&[(now - 10, 80), (now - 2 * 3_600_000_000_000, 30)], now).into_string();
        assert!(
            svg.contains("lvl-critical") && svg.contains("230,"),
            "{svg}"
        );
    }
}
