//! Admin pages: user management (create, role, enable/disable, reset password, reset 2FA,
//! delete), the admin audit log with filters, and every user's sessions. The route table
//! restricts all of these to admins; the handlers also refuse to remove the last admin.

use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::AppState;
use super::access::{Actor, Client};
use super::account::{origin, sessions_block};
use super::notify::Change;
use super::store::{AuditFilter, DbResult, Role};
use super::web::{self, csrf_field, fmt_time, page};
use super::{auth, mail};

fn now() -> i64 {
    crate::store::now_ns()
}

async fn users_view(
    st: &AppState,
    actor: &Actor,
    status: StatusCode,
    msg: Option<&str>,
) -> Response {
    let users = match st.store.list_users().await {
        Ok(u) => u,
        Err(e) => return web::internal(e),
    };
    let body = html! {
        h1 { "Users" }
        @if let Some(m) = msg { p.error role="alert" { (m) } }
        div.tablewrap { table {
            thead { tr { th { "User" } th { "Role" } th { "State" } th { "2FA" } th { "Email" } th { "Last sign-in" } th { "Actions" } } }
            tbody { @for u in &users { tr {
                td { (u.username) }
                td { form.inline method="post" action={ "/admin/users/" (u.id) "/role" } { (csrf_field(actor))
                    select name="role" { @for r in Role::ALL { option value=(r) selected[r == u.role] { (r) } } }
                    button type="submit" { "Set" } } }
                td { @if u.active { "active" } @else { "disabled" } }
                td { @if u.totp_enabled { "on" } @else { "off" } }
                td { form.inline method="post" action={ "/admin/users/" (u.id) "/email" } { (csrf_field(actor))
                    input type="email" name="email" maxlength="254" value=[u.email.as_deref()] placeholder="none";
                    button type="submit" { "Set" } } }
                td { (u.last_login_ns.map(fmt_time).unwrap_or_else(|| "never".into())) }
                td.actions {
                    form.inline method="post" action={ "/admin/users/" (u.id) "/active" } { (csrf_field(actor))
                        input type="hidden" name="active" value=(if u.active { "0" } else { "1" });
                        button type="submit" { @if u.active { "Disable" } @else { "Enable" } } }
                    details.inline { summary { "Reset password" }
                        form.inline method="post" action={ "/admin/users/" (u.id) "/password" } { (csrf_field(actor))
                            input type="password" name="password" minlength="10" required placeholder="new password";
                            button type="submit" { "Reset" } } }
                    @if u.totp_enabled { form.inline method="post" action={ "/admin/users/" (u.id) "/totp-reset" } { (csrf_field(actor))
                        button type="submit" { "Reset 2FA" } } }
                    @if u.id != actor.user_id { form.inline method="post" action={ "/admin/users/" (u.id) "/delete" } { (csrf_field(actor))
                        button.danger type="submit" data-confirm="Delete this user?" { "Delete" } } }
                }
            } } }
        } }
        h2 { "New user" }
        form.row method="post" action="/admin/users" {
            (csrf_field(actor))
            label { "Username " input name="username" required maxlength="64" pattern="[A-Za-z0-9._-]+"; }
            label { "Password " input type="password" name="password" required minlength="10"; }
            label { "Role " select name="role" { @for r in Role::ALL { option value=(r) { (r) } } } }
            label { "Email (security notices) " input type="email" name="email" maxlength="254"; }
            button type="submit" { "Create" }
        }
    };
    let mut r = page(st, Some(actor), "Users", body).into_response();
    *r.status_mut() = status;
    r
}

/// The common ending of a user change: audit it and go back to the list, or say why not.
async fn outcome(
    st: &AppState,
    actor: &Actor,
    client: &Client,
    res: DbResult<bool>,
    action: &str,
    target: &str,
    detail: &str,
) -> Response {
    match res {
        Ok(true) => {
            st.audit(
                Some((actor.user_id, &actor.username)),
                action,
                target,
                &client.ip,
                detail,
            )
            .await;
            Redirect::to("/admin/users").into_response()
        }
        Ok(false) => users_view(st, actor, StatusCode::NOT_FOUND, Some("No such user.")).await,
        Err(e) => web::internal(e),
    }
}

pub async fn users_page(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> Response {
    users_view(&st, &actor, StatusCode::OK, None).await
}

#[derive(Deserialize)]
pub struct NewUserForm {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub email: String,
}

/// Validates and creates a user (shared with the CLI and JSON API).
pub async fn create_user(
    st: &AppState,
    username: &str,
    password: &str,
    role: &str,
) -> Result<i64, (StatusCode, String)> {
    if let Some(p) = auth::username_problem(username).or_else(|| auth::password_problem(password)) {
        return Err((StatusCode::BAD_REQUEST, p.into()));
    }
    let role = Role::parse(role).ok_or((StatusCode::BAD_REQUEST, "unknown role".to_string()))?;
    let pw = password.to_string();
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&pw))
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    st.store
        .create_user(username, &hash, role, now())
        .await
        .map_err(|e| match e {
            super::store::DbError::Conflict(_) => {
                (StatusCode::CONFLICT, "that username is taken".to_string())
            }
            e => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        })
}

pub async fn user_create(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Form(f): Form<NewUserForm>,
) -> Response {
    let email = f.email.trim();
    if let Some(p) = (!email.is_empty())
        .then(|| mail::address_problem(email))
        .flatten()
    {
        return users_view(&st, &actor, StatusCode::BAD_REQUEST, Some(&p)).await;
    }
    match create_user(&st, f.username.trim(), &f.password, &f.role).await {
        Ok(id) => {
            if !email.is_empty()
                && let Err(e) = st.store.set_email(id, Some(email)).await
            {
                return web::internal(e);
            }
            st.audit(
                Some((actor.user_id, &actor.username)),
                "user_created",
                f.username.trim(),
                &client.ip,
                &f.role,
            )
            .await;
            Redirect::to("/admin/users").into_response()
        }
        Err((s, m)) => users_view(&st, &actor, s, Some(&m)).await,
    }
}

/// Refuses changes that would leave no active admin.
async fn keeps_an_admin(st: &AppState, id: i64) -> bool {
    match st.store.user_by_id(id).await {
        Ok(Some(u)) if u.role == Role::Admin && u.active => {
            st.store.count_admins().await.unwrap_or(0) > 1
        }
        _ => true,
    }
}

#[derive(Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: String,
}

pub async fn user_role(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Path(id): Path<i64>,
    Form(f): Form<RoleForm>,
) -> Response {
    let Some(role) = Role::parse(&f.role) else {
        return users_view(&st, &actor, StatusCode::BAD_REQUEST, Some("Unknown role.")).await;
    };
    if role != Role::Admin && !keeps_an_admin(&st, id).await {
        return users_view(
            &st,
            &actor,
            StatusCode::BAD_REQUEST,
            Some("That would leave no admin."),
        )
        .await;
    }
    let res = st.store.set_role(id, role).await;
    outcome(
        &st,
        &actor,
        &client,
        res,
        "user_role_changed",
        &id.to_string(),
        role.as_str(),
    )
    .await
}

#[derive(Deserialize)]
pub struct ActiveForm {
    #[serde(default)]
    active: String,
}

pub async fn user_active(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Path(id): Path<i64>,
    Form(f): Form<ActiveForm>,
) -> Response {
    let active = f.active == "1";
    if !active && (id == actor.user_id || !keeps_an_admin(&st, id).await) {
        return users_view(
            &st,
            &actor,
            StatusCode::BAD_REQUEST,
            Some("You cannot disable yourself or the last admin."),
        )
        .await;
    }
    let res = st.store.set_active(id, active).await;
    outcome(
        &st,
        &actor,
        &client,
        res,
        if active {
            "user_enabled"
        } else {
            "user_disabled"
        },
        &id.to_string(),
        "",
    )
    .await
}

#[derive(Deserialize)]
pub struct PwForm {
    #[serde(default)]
    password: String,
}

pub async fn user_password(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Path(id): Path<i64>,
    Form(f): Form<PwForm>,
) -> Response {
    if let Some(p) = auth::password_problem(&f.password) {
        return users_view(&st, &actor, StatusCode::BAD_REQUEST, Some(p)).await;
    }
    let pw = f.password.clone();
    let Ok(Ok(hash)) = tokio::task::spawn_blocking(move || auth::hash_password(&pw)).await else {
        return web::internal("password hashing failed");
    };
    let res = st.store.set_password(id, &hash).await;
    if matches!(res, Ok(true)) {
        let keep = if id == actor.user_id {
            actor.session_id()
        } else {
            None
        };
        let _ = st.store.delete_user_sessions(id, keep).await;
        if let Ok(Some(u)) = st.store.user_by_id(id).await {
            st.notify
                .security_change(&u, Change::PasswordChanged, &origin(&actor, &client));
        }
    }
    outcome(
        &st,
        &actor,
        &client,
        res,
        "user_password_reset",
        &id.to_string(),
        "",
    )
    .await
}

pub async fn user_totp_reset(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Path(id): Path<i64>,
) -> Response {
    let user = match st.store.user_by_id(id).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            return users_view(&st, &actor, StatusCode::NOT_FOUND, Some("No such user.")).await;
        }
        Err(e) => return web::internal(e),
    };
    if let Err(e) = st.store.set_totp(id, None).await {
        return web::internal(e);
    }
    if user.totp_enabled {
        st.notify
            .security_change(&user, Change::TwoFactorOff, &origin(&actor, &client));
    }
    st.audit(
        Some((actor.user_id, &actor.username)),
        "user_2fa_reset",
        &id.to_string(),
        &client.ip,
        "",
    )
    .await;
    Redirect::to("/admin/users").into_response()
}

#[derive(Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    email: String,
}

/// Sets (or, empty, removes) a user's notice address; the old address is told.
pub async fn user_email(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Path(id): Path<i64>,
    Form(f): Form<EmailForm>,
) -> Response {
    let user = match st.store.user_by_id(id).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            return users_view(&st, &actor, StatusCode::NOT_FOUND, Some("No such user.")).await;
        }
        Err(e) => return web::internal(e),
    };
    match set_email(&st, &actor, &client, &user, &f.email).await {
        Ok(()) => Redirect::to("/admin/users").into_response(),
        Err((s, m)) => users_view(&st, &actor, s, Some(&m)).await,
    }
}

/// Validates and stores `user`'s new notice address (empty: none), audits it and tells the
/// old address. Shared by the admin page and the profile.
pub async fn set_email(
    st: &AppState,
    actor: &Actor,
    client: &Client,
    user: &super::store::User,
    email: &str,
) -> Result<(), (StatusCode, String)> {
    let email = email.trim();
    let new = (!email.is_empty()).then_some(email);
    if let Some(p) = new.and_then(mail::address_problem) {
        return Err((StatusCode::BAD_REQUEST, p));
    }
    if new == user.email.as_deref() {
        return Ok(());
    }
    st.store
        .set_email(user.id, new)
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    st.audit(
        Some((actor.user_id, &actor.username)),
        "user_email_changed",
        &user.username,
        &client.ip,
        new.unwrap_or("removed"),
    )
    .await;
    st.notify.security_change_to(
        user,
        user.email.as_deref(),
        Change::EmailChanged,
        &origin(actor, client),
    );
    Ok(())
}

pub async fn user_delete(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Path(id): Path<i64>,
) -> Response {
    if id == actor.user_id || !keeps_an_admin(&st, id).await {
        return users_view(
            &st,
            &actor,
            StatusCode::BAD_REQUEST,
            Some("You cannot delete yourself or the last admin."),
        )
        .await;
    }
    let name = st
        .store
        .user_by_id(id)
        .await
        .ok()
        .flatten()
        .map(|u| u.username);
    let res = st.store.delete_user(id).await;
    outcome(
        &st,
        &actor,
        &client,
        res,
        "user_deleted",
        name.as_deref().unwrap_or(""),
        "",
    )
    .await
}

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    pub user: Option<String>,
    pub action: Option<String>,
    /// "24h", "7d", "30d" or empty for all.
    pub range: Option<String>,
}

impl AuditQuery {
    pub fn filter(&self) -> AuditFilter {
        let span = match self.range.as_deref() {
            Some("24h") => Some(1),
            Some("7d") => Some(7),
            Some("30d") => Some(30),
            _ => None,
        };
        AuditFilter {
            user: self.user.clone().filter(|s| !s.is_empty()),
            action: self.action.clone().filter(|s| !s.is_empty()),
            since_ns: span.map(|d: i64| now() - d * 86_400_000_000_000),
            limit: Some(500),
        }
    }
}

pub const AUDIT_ACTIONS: &[&str] = &[
    "login",
    "login_failed",
    "login_rate_limited",
    "logout",
    "recovery_code_used",
    "password_changed",
    "2fa_enabled",
    "2fa_disabled",
    "api_key_created",
    "api_key_enabled",
    "api_key_disabled",
    "api_key_deleted",
    "api_key_revoked",
    "api_key_bound",
    "ingest_host_refused",
    "ingest_id_conflict",
    "login_delayed",
    "reauth_failed",
    "reauth_rate_limited",
    "user_created",
    "user_role_changed",
    "user_enabled",
    "user_disabled",
    "user_password_reset",
    "user_2fa_reset",
    "user_email_changed",
    "notice_failed",
    "secret_key_rotated",
    "user_deleted",
    "session_revoked",
    "sessions_revoked_own",
    "sessions_revoked_all",
    "acknowledge",
    "acknowledge_host",
    "feedback",
    "feedback_undo",
];

pub async fn audit_page(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Query(q): Query<AuditQuery>,
) -> Response {
    let rows = match st.store.list_audit(&q.filter()).await {
        Ok(r) => r,
        Err(e) => return web::internal(e),
    };
    let sel = |v: &Option<String>, x: &str| v.as_deref() == Some(x);
    let body = html! {
        h1 { "Audit log" }
        form.filters method="get" action="/admin/audit" {
            label { "User " input name="user" value=[q.user.as_deref()]; }
            label { "Action " select name="action" { option value="" { "any" }
                @for a in AUDIT_ACTIONS { option value=(a) selected[sel(&q.action, a)] { (a) } } } }
            label { "Time " select name="range" { option value="" { "all" }
                @for r in ["24h", "7d", "30d"] { option value=(r) selected[sel(&q.range, r)] { (r) } } } }
            button type="submit" { "Filter" }
        }
        div.tablewrap { table {
            thead { tr { th { "Time (UTC)" } th { "User" } th { "Action" } th { "Target" } th { "Address" } th { "Detail" } } }
            tbody { @for e in &rows { tr {
                td.time { (fmt_time(e.time_ns)) } td { (e.username) } td { code { (e.action) } } td { (e.target) } td { (e.ip) } td { (e.detail) }
            } } }
        } }
    };
    page(&st, Some(&actor), "Audit log", body).into_response()
}

pub async fn sessions_page(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> Response {
    let sessions = match st.store.list_sessions(None).await {
        Ok(s) => s,
        Err(e) => return web::internal(e),
    };
    let body = html! {
        h1 { "Sessions" }
        (sessions_block(&actor, &sessions, "/admin/sessions", true))
    };
    page(&st, Some(&actor), "Sessions", body).into_response()
}
