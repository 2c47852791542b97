//! The route table: every path, its method and the access it requires, in one list. The
//! router is built from this list (each route wrapped in `access::guard` with its access),
//! and the route x role matrix test walks the same list, so no route can escape both.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodRouter, delete, get, post};

use super::access::{self, Access};
use super::store::Role;
use super::{
    AppState, account, admin, api, feedback, feedback_web, fleet_api, fleet_lists, fleet_pages,
    hosts, incident_pages, incidents, keys, live, login, web,
};

pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

const V: Access = Access::Role(Role::Viewer);
const O: Access = Access::Role(Role::Operator);
const A: Access = Access::Role(Role::Admin);
const P: Access = Access::Public;

fn table() -> Vec<(Method, &'static str, Access, MethodRouter<AppState>)> {
    let g = Method::GET;
    let p = Method::POST;
    vec![
        // Public.
        (g.clone(), "/login", P, get(login::login_page)),
        (p.clone(), "/login", P, post(login::login_submit)),
        (g.clone(), "/static/app.css", P, get(web::css)),
        (g.clone(), "/static/app.js", P, get(web::js)),
        (g.clone(), "/healthz", P, get(api::health)),
        (g.clone(), "/api/openapi.json", P, get(api::openapi)),
        // Agents enrol with a token (not a key): fleet_api.rs.
        (p.clone(), "/api/enroll", P, post(fleet_api::enroll)),
        // Second factor.
        (
            g.clone(),
            "/login/totp",
            Access::MfaPending,
            get(login::totp_page),
        ),
        (
            p.clone(),
            "/login/totp",
            Access::MfaPending,
            post(login::totp_submit),
        ),
        // Any signed-in user.
        (p.clone(), "/logout", V, post(login::logout)),
        (g.clone(), "/", V, get(web::feed)),
        (g.clone(), "/anomalies/{id}", V, get(web::anomaly)),
        (
            g.clone(),
            "/incidents/{host}/{id}",
            V,
            get(incident_pages::incident),
        ),
        (g.clone(), "/hosts", V, get(hosts::hosts)),
        (g.clone(), "/hosts/{name}", V, get(hosts::host)),
        (g.clone(), "/profile", V, get(account::profile)),
        (
            p.clone(),
            "/profile/password",
            V,
            post(account::change_password),
        ),
        (p.clone(), "/profile/email", V, post(account::change_email)),
        (
            p.clone(),
            "/profile/totp/setup",
            V,
            post(account::totp_setup),
        ),
        (
            p.clone(),
            "/profile/totp/enable",
            V,
            post(account::totp_enable),
        ),
        (
            p.clone(),
            "/profile/totp/disable",
            V,
            post(account::totp_disable),
        ),
        (p.clone(), "/profile/keys", V, post(keys::key_create)),
        (
            p.clone(),
            "/profile/keys/{id}/toggle",
            V,
            post(keys::key_toggle),
        ),
        (
            p.clone(),
            "/profile/keys/{id}/delete",
            V,
            post(keys::key_delete),
        ),
        (
            p.clone(),
            "/sessions/{id}/revoke",
            V,
            post(account::session_revoke),
        ),
        (
            p.clone(),
            "/sessions/revoke-others",
            V,
            post(account::sessions_revoke_others),
        ),
        // Operators.
        (p.clone(), "/anomalies/{id}/ack", O, post(web::ack_anomaly)),
        (p.clone(), "/hosts/{name}/ack", O, post(hosts::ack_host)),
        (
            p.clone(),
            "/anomalies/{id}/feedback",
            O,
            post(feedback_web::give_form),
        ),
        (
            p.clone(),
            "/incidents/{host}/{id}/feedback",
            O,
            post(feedback_web::give_incident_form),
        ),
        (
            p.clone(),
            "/feedback/{id}/undo",
            O,
            post(feedback_web::undo_form),
        ),
        // Admins.
        (g.clone(), "/admin/users", A, get(admin::users_page)),
        (p.clone(), "/admin/users", A, post(admin::user_create)),
        (
            p.clone(),
            "/admin/users/{id}/role",
            A,
            post(admin::user_role),
        ),
        (
            p.clone(),
            "/admin/users/{id}/active",
            A,
            post(admin::user_active),
        ),
        (
            p.clone(),
            "/admin/users/{id}/password",
            A,
            post(admin::user_password),
        ),
        (
            p.clone(),
            "/admin/users/{id}/email",
            A,
            post(admin::user_email),
        ),
        (
            p.clone(),
            "/admin/users/{id}/totp-reset",
            A,
            post(admin::user_totp_reset),
        ),
        (
            p.clone(),
            "/admin/users/{id}/delete",
            A,
            post(admin::user_delete),
        ),
        (g.clone(), "/admin/audit", A, get(admin::audit_page)),
        (g.clone(), "/admin/sessions", A, get(admin::sessions_page)),
        (g.clone(), "/admin/keys", A, get(keys::admin_page)),
        (g.clone(), "/admin/fleet", A, get(fleet_pages::fleet_page)),
        (
            p.clone(),
            "/admin/fleet/tokens",
            A,
            post(fleet_pages::token_create),
        ),
        (
            p.clone(),
            "/admin/fleet/tokens/{id}/revoke",
            A,
            post(fleet_pages::token_revoke),
        ),
        (
            p.clone(),
            "/admin/fleet/hosts/{name}/retire",
            A,
            post(fleet_pages::host_retire),
        ),
        (
            p.clone(),
            "/admin/keys/{id}/delete",
            A,
            post(keys::admin_revoke),
        ),
        // JSON API (session cookie + CSRF header, or API key).
        (p.clone(), "/api/ingest", Access::Ingest, post(api::ingest)),
        (
            p.clone(),
            "/api/ingest/heartbeat",
            Access::Ingest,
            post(fleet_api::heartbeat),
        ),
        (
            g.clone(),
            "/api/ingest/verdicts",
            Access::Ingest,
            get(feedback::agent_pending),
        ),
        (
            p.clone(),
            "/api/ingest/verdicts/ack",
            Access::Ingest,
            post(feedback::agent_ack),
        ),
        (g.clone(), "/api/feedback", V, get(feedback::api_list)),
        (p.clone(), "/api/feedback", O, post(feedback::api_give)),
        (
            Method::DELETE,
            "/api/feedback/{id}",
            O,
            delete(feedback::api_undo),
        ),
        (g.clone(), "/api/live", V, get(live::stream)),
        (g.clone(), "/api/me", V, get(api::me)),
        (g.clone(), "/api/anomalies", V, get(fleet_lists::anomalies)),
        (g.clone(), "/api/anomalies/{id}", V, get(api::anomaly)),
        (g.clone(), "/api/incidents", V, get(incidents::api_list)),
        (
            g.clone(),
            "/api/incidents/{host}/{id}",
            V,
            get(incidents::api_get),
        ),
        (
            p.clone(),
            "/api/anomalies/{id}/ack",
            O,
            post(api::ack_anomaly),
        ),
        (g.clone(), "/api/hosts", V, get(fleet_lists::hosts)),
        (g.clone(), "/api/hosts/{name}", V, get(api::host)),
        (p.clone(), "/api/hosts/{name}/ack", O, post(api::ack_host)),
        (g.clone(), "/api/sessions", V, get(api::sessions)),
        (
            Method::DELETE,
            "/api/sessions/{id}",
            V,
            delete(api::session_delete),
        ),
        (g.clone(), "/api/keys", V, get(api::keys)),
        (g.clone(), "/api/users", A, get(api::users)),
        (g.clone(), "/api/audit", A, get(api::audit)),
        (g.clone(), "/api/admin/sessions", A, get(api::all_sessions)),
        (g.clone(), "/api/admin/keys", A, get(api::all_keys)),
        (
            Method::DELETE,
            "/api/admin/keys/{id}",
            A,
            delete(api::revoke_key),
        ),
        (
            g.clone(),
            "/api/admin/enrolment-tokens",
            A,
            get(fleet_api::api_tokens),
        ),
        (
            p.clone(),
            "/api/admin/enrolment-tokens",
            A,
            post(fleet_api::api_token_create),
        ),
        (
            Method::DELETE,
            "/api/admin/enrolment-tokens/{id}",
            A,
            delete(fleet_api::api_token_revoke),
        ),
        (
            p.clone(),
            "/api/admin/hosts/{name}/retire",
            A,
            post(fleet_api::api_retire),
        ),
    ]
}

/// Every route with its required access (for tests and docs).
pub fn specs() -> Vec<RouteSpec> {
    table()
        .into_iter()
        .map(|(method, path, access, _)| RouteSpec {
            method,
            path,
            access,
        })
        .collect()
}

pub fn router(st: AppState) -> Router {
    let mut r: Router<AppState> = Router::new();
    for (_, path, access, mr) in table() {
        let limit = if access == Access::Ingest {
            st.cfg.max_ingest_bytes
        } else {
            st.cfg.max_form_bytes
        };
        let mut mr = mr
            .route_layer(from_fn_with_state((st.clone(), access), access::guard))
            .layer(DefaultBodyLimit::max(limit));
        if path == "/api/ingest" {
            mr = mr.layer(from_fn_with_state(
                st.metrics.clone(),
                super::metrics::time_ingest,
            ));
        }
        r = r.route(path, mr);
    }
    r.fallback(web::not_found)
        .layer(from_fn_with_state(st.clone(), access::security_headers))
        .with_state(st)
}

#[cfg(test)]
mod tests {
    /// The OpenAPI document names every JSON route of the table with its method.
    #[test]
    fn every_api_route_is_in_the_openapi_document() {
        let doc: serde_json::Value = serde_json::from_str(super::super::api::OPENAPI).unwrap();
        for s in super::specs() {
            if !s.path.starts_with("/api/") && s.path != "/healthz" {
                continue;
            }
            let m = s.method.as_str().to_ascii_lowercase();
            assert!(
                doc["paths"][s.path][&m].is_object(),
                "{} {} is missing from openapi.json",
                s.method,
                s.path
            );
        }
    }
}
