//! The profile page every user has: password change, two-factor setup (QR code, otpauth
//! URI, recovery codes), personal API keys and their own sessions, and session revocation.

use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;

use super::AppState;
use super::access::{Actor, Client, Via};
use super::auth;
use super::login::CodeForm;
use super::notify::{Change, Origin};
use super::reauth::{self, Factor, Proof};
use super::store::{Role, Session, User};
use super::web::{self, csrf_field, fmt_time, page};

fn now() -> i64 {
    crate::store::now_ns()
}

fn unix_secs() -> u64 {
    (now() / 1_000_000_000).max(0) as u64
}

/// The notice's "by ... from ..." for a change the signed-in user made.
pub(crate) fn origin<'a>(actor: &'a Actor, client: &'a Client) -> Origin<'a> {
    Origin {
        by: &actor.username,
        ip: &client.ip,
        detail: "",
    }
}

pub enum Notice {
    Ok(String),
    Err(String),
}

fn sessions_table(actor: &Actor, sessions: &[Session], back: &str, show_user: bool) -> Markup {
    html! {
        div.tablewrap { table {
            thead { tr { @if show_user { th { "User" } } th { "Address" } th { "Browser" } th { "Started" } th { "Last active" } th {} } }
            tbody { @for s in sessions { tr {
                @if show_user { td { (s.username) } }
                td { (s.ip) } td.ua { (s.user_agent) } td { (fmt_time(s.created_ns)) } td { (web::ago(s.last_seen_ns)) }
                td { @if Some(s.id) == actor.session_id() { span.muted { "this session" } } @else {
                    form.inline method="post" action={ "/sessions/" (s.id) "/revoke" } {
                        (csrf_field(actor)) input type="hidden" name="back" value=(back);
                        button.danger type="submit" { "Revoke" }
                    }
                } }
            } } }
        } }
    }
}

pub fn sessions_block(actor: &Actor, sessions: &[Session], back: &str, show_user: bool) -> Markup {
    html! {
        (sessions_table(actor, sessions, back, show_user))
        form method="post" action="/sessions/revoke-others" {
            (csrf_field(actor)) input type="hidden" name="back" value=(back);
            button.danger type="submit" { @if show_user { "Sign out everyone else" } @else { "Sign out my other sessions" } }
        }
    }
}

pub async fn profile_view(
    st: &AppState,
    actor: &Actor,
    notice: Option<Notice>,
    extra: Option<Markup>,
) -> Response {
    let user = match st.store.user_by_id(actor.user_id).await {
        Ok(Some(u)) => u,
        Ok(None) => return Redirect::to("/login").into_response(),
        Err(e) => return web::internal(e),
    };
    let keys = st.store.list_api_keys(user.id).await.unwrap_or_default();
    let sessions = st
        .store
        .list_sessions(Some(user.id))
        .await
        .unwrap_or_default();
    let codes_left = st.store.recovery_codes_left(user.id).await.unwrap_or(0);
    let body = html! {
        h1 { "Profile" }
        @match &notice { Some(Notice::Ok(m)) => p.ok role="status" { (m) }, Some(Notice::Err(m)) => p.error role="alert" { (m) }, None => {} }
        @if let Some(x) = extra { (x) }
        dl.facts {
            dt { "User" } dd { (user.username) }
            dt { "Role" } dd { (user.role) }
            dt { "Created" } dd { (fmt_time(user.created_ns)) }
            dt { "Last sign-in" } dd { (user.last_login_ns.map(fmt_time).unwrap_or_default()) }
            dt { "Email" } dd { (user.email.as_deref().unwrap_or("none: no security notices")) }
        }
        section {
            h2 { "Password" }
            form.stack method="post" action="/profile/password" {
                (csrf_field(actor))
                label { "Current password" input type="password" name="current" autocomplete="current-password" required; }
                label { "New password (10+ characters)" input type="password" name="new" autocomplete="new-password" required minlength="10"; }
                label { "Repeat new password" input type="password" name="confirm" autocomplete="new-password" required; }
                button type="submit" { "Change password" }
            }
        }
        section id="email" {
            h2 { "Email for security notices" }
            p.muted { "Two-factor, password and new-key changes are mailed here (when the server has SMTP settings)." }
            form.stack method="post" action="/profile/email" {
                (csrf_field(actor))
                label { "Address (empty: none)" input type="email" name="email" maxlength="254" value=[user.email.as_deref()]; }
                label { "Password" input type="password" name="password" autocomplete="current-password" required; }
                @if user.totp_enabled {
                    label { "Current code (or a recovery code)" input name="code" autocomplete="one-time-code" required; }
                }
                button type="submit" { "Save address" }
            }
        }
        section id="twofactor" {
            h2 { "Two-factor authentication" }
            @if user.totp_enabled {
                p { "Enabled. " (codes_left) " recovery codes left." }
                form.stack method="post" action="/profile/totp/disable" {
                    (csrf_field(actor))
                    label { "Password" input type="password" name="password" autocomplete="current-password" required; }
                    label { "Current code (or a recovery code)" input name="code" autocomplete="one-time-code" required; }
                    button.danger type="submit" { "Disable two-factor" }
                }
                form.stack method="post" action="/profile/totp/setup" {
                    (csrf_field(actor))
                    label { "Password" input type="password" name="password" autocomplete="current-password" required; }
                    label { "Current code (or a recovery code)" input name="code" autocomplete="one-time-code" required; }
                    button type="submit" { "Move two-factor to a new device" }
                }
            } @else {
                p { "Not enabled." }
                form.stack method="post" action="/profile/totp/setup" {
                    (csrf_field(actor))
                    label { "Password" input id="totp-setup-password" type="password" name="password" autocomplete="current-password" required; }
                    button id="totp-setup" type="submit" { "Set up two-factor" }
                }
            }
        }
        (super::keys::section(actor, &user, &keys))
        section id="sessions" {
            h2 { "Your sessions" }
            (sessions_block(actor, &sessions, "/profile", false))
        }
    };
    page(st, Some(actor), "Profile", body).into_response()
}

pub async fn profile(State(st): State<AppState>, Extension(actor): Extension<Actor>) -> Response {
    if actor.via != Via::Session {
        return Redirect::to("/login").into_response();
    }
    profile_view(&st, &actor, None, None).await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    confirm: String,
}

pub(crate) async fn err(st: &AppState, actor: &Actor, status: StatusCode, msg: &str) -> Response {
    let mut r = profile_view(st, actor, Some(Notice::Err(msg.into())), None).await;
    *r.status_mut() = status;
    r
}

/// Re-authenticates the signed-in user for `action` (reauth.rs: rate-limited and audited); a
/// refusal is the profile page saying why.
async fn reauthenticate(
    st: &AppState,
    actor: &Actor,
    client: &Client,
    (password, code): (&str, &str),
    factor: Factor,
    action: &str,
) -> Result<User, Response> {
    let proof = Proof { password, code };
    match reauth::check(st, actor, client, &proof, factor, action).await {
        Ok(u) => Ok(u),
        Err((status, msg)) => Err(err(st, actor, status, &msg).await),
    }
}

pub async fn change_password(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Form(f): Form<PasswordForm>,
) -> Response {
    let user = match reauthenticate(
        &st,
        &actor,
        &client,
        (&f.current, ""),
        Factor::PasswordOnly,
        "password_change",
    )
    .await
    {
        Ok(u) => u,
        Err(r) => return r,
    };
    if let Some(p) = auth::password_problem(&f.new) {
        return err(&st, &actor, StatusCode::BAD_REQUEST, p).await;
    }
    if f.new != f.confirm {
        return err(
            &st,
            &actor,
            StatusCode::BAD_REQUEST,
            "The new passwords differ.",
        )
        .await;
    }
    let new = f.new.clone();
    let hash = match tokio::task::spawn_blocking(move || auth::hash_password(&new)).await {
        Ok(Ok(h)) => h,
        _ => return web::internal("password hashing failed"),
    };
    if let Err(e) = st.store.set_password(actor.user_id, &hash).await {
        return web::internal(e);
    }
    // A changed password ends every other session (someone may have had the old one).
    let n = st
        .store
        .delete_user_sessions(actor.user_id, actor.session_id())
        .await
        .unwrap_or(0);
    st.audit(
        Some((actor.user_id, &actor.username)),
        "password_changed",
        &actor.username,
        &client.ip,
        &format!("{n} other sessions ended"),
    )
    .await;
    st.notify
        .security_change(&user, Change::PasswordChanged, &origin(&actor, &client));
    profile_view(
        &st,
        &actor,
        Some(Notice::Ok(
            "Password changed; your other sessions were signed out.".into(),
        )),
        None,
    )
    .await
}

#[derive(Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

/// Changes the user's notice address: needs the password (and a code with two-factor on),
/// so a stolen session cannot quietly redirect the notices; the old address is told.
pub async fn change_email(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Form(f): Form<EmailForm>,
) -> Response {
    let user = match reauthenticate(
        &st,
        &actor,
        &client,
        (&f.password, &f.code),
        Factor::PasswordAndCode,
        "email_change",
    )
    .await
    {
        Ok(u) => u,
        Err(r) => return r,
    };
    match super::admin::set_email(&st, &actor, &client, &user, &f.email).await {
        Ok(()) => {
            profile_view(
                &st,
                &actor,
                Some(Notice::Ok("Email address saved.".into())),
                None,
            )
            .await
        }
        Err((s, m)) => err(&st, &actor, s, &m).await,
    }
}

/// Password, and a current code when two-factor is already on.
#[derive(Deserialize)]
pub struct ReauthForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

/// Starts (or, with two-factor on, moves) two-factor: needs the password and, when it is on,
/// a current code, so a session cookie alone cannot re-enrol the account.
pub async fn totp_setup(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Form(f): Form<ReauthForm>,
) -> Response {
    if let Err(r) = reauthenticate(
        &st,
        &actor,
        &client,
        (&f.password, &f.code),
        Factor::PasswordAndCode,
        "2fa_setup",
    )
    .await
    {
        return r;
    }
    let (Some(sid), Ok(secret)) = (actor.session_id(), auth::new_totp_secret()) else {
        return web::internal("no session or random source");
    };
    if let Err(e) = st.store.set_pending_totp(sid, Some(&secret)).await {
        return web::internal(e);
    }
    let uri = auth::otpauth_uri(&actor.username, &secret).unwrap_or_default();
    let qr = auth::qr_svg(&uri).unwrap_or_default();
    let extra = html! {
        section.setup id="totp-setup-box" {
            h2 { "Scan with your authenticator app" }
            // The SVG is generated by the qrcode crate from our own URI: no user input reaches it unescaped.
            div.qr { (PreEscaped(qr)) }
            p { "Or enter this secret: " code id="totp-secret" { (secret) } }
            p.muted { "URI: " code id="totp-uri" { (uri) } }
            form.row method="post" action="/profile/totp/enable" {
                (csrf_field(&actor))
                label { "Code from the app " input id="totp-code" name="code" inputmode="numeric" autocomplete="one-time-code" required; }
                button id="totp-enable" type="submit" { "Enable" }
            }
        }
    };
    profile_view(&st, &actor, None, Some(extra)).await
}

pub async fn totp_enable(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Form(f): Form<CodeForm>,
) -> Response {
    let Some(session) = &actor.session else {
        return web::internal("no session");
    };
    let Some(secret) = st
        .store
        .session_by_id(session.id)
        .await
        .ok()
        .flatten()
        .and_then(|s| s.pending_totp)
    else {
        return err(
            &st,
            &actor,
            StatusCode::BAD_REQUEST,
            "Start the setup first.",
        )
        .await;
    };
    let Some(step) = auth::totp_match(&secret, &f.code, unix_secs()) else {
        return err(
            &st,
            &actor,
            StatusCode::BAD_REQUEST,
            "That code does not match; try the next one.",
        )
        .await;
    };
    let Ok((codes, hashes)) = auth::new_recovery_codes() else {
        return web::internal("random source failed");
    };
    let user = match st.store.user_by_id(actor.user_id).await {
        Ok(Some(u)) => u,
        Ok(None) => return Redirect::to("/login").into_response(),
        Err(e) => return web::internal(e),
    };
    let res = async {
        st.store.set_totp(actor.user_id, Some(&secret)).await?;
        st.store.consume_totp_step(actor.user_id, step).await?;
        st.store.set_recovery_codes(actor.user_id, &hashes).await?;
        st.store.set_pending_totp(session.id, None).await
    }
    .await;
    if let Err(e) = res {
        return web::internal(e);
    }
    st.audit(
        Some((actor.user_id, &actor.username)),
        "2fa_enabled",
        &actor.username,
        &client.ip,
        if user.totp_enabled { "moved" } else { "" },
    )
    .await;
    let change = if user.totp_enabled {
        Change::TwoFactorMoved
    } else {
        Change::TwoFactorOn
    };
    st.notify
        .security_change(&user, change, &origin(&actor, &client));
    let extra = html! {
        section.setup id="recovery-codes" {
            h2 { "Recovery codes" }
            p { "Each works once if you lose your authenticator. They are shown only now: store them safely." }
            ul.codes { @for c in &codes { li { code { (c) } } } }
        }
    };
    profile_view(
        &st,
        &actor,
        Some(Notice::Ok("Two-factor authentication is on.".into())),
        Some(extra),
    )
    .await
}

pub async fn totp_disable(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Form(f): Form<ReauthForm>,
) -> Response {
    let user = match reauthenticate(
        &st,
        &actor,
        &client,
        (&f.password, &f.code),
        Factor::PasswordAndCode,
        "2fa_disable",
    )
    .await
    {
        Ok(u) => u,
        Err(r) => return r,
    };
    if let Err(e) = st.store.set_totp(actor.user_id, None).await {
        return web::internal(e);
    }
    st.audit(
        Some((actor.user_id, &actor.username)),
        "2fa_disabled",
        &actor.username,
        &client.ip,
        "",
    )
    .await;
    if user.totp_enabled {
        st.notify
            .security_change(&user, Change::TwoFactorOff, &origin(&actor, &client));
    }
    profile_view(
        &st,
        &actor,
        Some(Notice::Ok("Two-factor authentication is off.".into())),
        None,
    )
    .await
}

#[derive(Deserialize, Default)]
pub struct BackForm {
    #[serde(default)]
    back: String,
}

fn back_to(b: &str) -> &'static str {
    if b == "/admin/sessions" {
        "/admin/sessions"
    } else {
        "/profile#sessions"
    }
}

/// Revokes one session: your own, or anyone's for an admin.
pub async fn revoke(
    st: &AppState,
    actor: &Actor,
    client: &Client,
    id: i64,
) -> Result<(), StatusCode> {
    let s = st
        .store
        .session_by_id(id)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
        .ok_or(StatusCode::NOT_FOUND)?;
    if s.user_id != actor.user_id && !actor.can(Role::Admin) {
        return Err(StatusCode::NOT_FOUND);
    }
    st.store
        .delete_session(id)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    st.audit(
        Some((actor.user_id, &actor.username)),
        "session_revoked",
        &s.username,
        &client.ip,
        &format!("session {id} from {}", s.ip),
    )
    .await;
    Ok(())
}

pub async fn session_revoke(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Path(id): Path<i64>,
    Form(f): Form<BackForm>,
) -> Response {
    match revoke(&st, &actor, &client, id).await {
        Ok(()) => Redirect::to(back_to(&f.back)).into_response(),
        Err(s) => (s, web::error_page(s, "No such session.")).into_response(),
    }
}

pub async fn sessions_revoke_others(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Form(f): Form<BackForm>,
) -> Response {
    // Admins on the sessions page sign out everyone else; anyone else, their own others.
    let all = actor.can(Role::Admin) && f.back == "/admin/sessions";
    let sessions = st
        .store
        .list_sessions(if all { None } else { Some(actor.user_id) })
        .await
        .unwrap_or_default();
    let mut n = 0;
    for s in sessions.iter().filter(|s| Some(s.id) != actor.session_id()) {
        if st.store.delete_session(s.id).await.unwrap_or(false) {
            n += 1;
        }
    }
    let action = if all {
        "sessions_revoked_all"
    } else {
        "sessions_revoked_own"
    };
    st.audit(
        Some((actor.user_id, &actor.username)),
        action,
        &actor.username,
        &client.ip,
        &format!("{n} sessions"),
    )
    .await;
    Redirect::to(back_to(&f.back)).into_response()
}
