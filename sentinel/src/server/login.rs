//! Signing in and out: the password step (pre-login CSRF cookie, per-address rate limit,
//! growing per-account delays that expire by themselves), the TOTP or recovery-code step,
//! and logout.

use axum::Extension;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::AppState;
use super::access::{self, Actor, Client};
use super::auth;
use super::store::{NewSession, Role, Session, User};
use super::web::{self, page};

const LOGIN_FAILED: &str = "Invalid username, password or code.";

fn now() -> i64 {
    crate::store::now_ns()
}

fn unix_secs() -> u64 {
    (now() / 1_000_000_000).max(0) as u64
}

pub(crate) async fn verify_blocking(pw: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || auth::verify_password(&pw, &hash))
        .await
        .unwrap_or(false)
}

fn with_cookie(mut resp: Response, v: HeaderValue) -> Response {
    resp.headers_mut().append(header::SET_COOKIE, v);
    resp
}

fn login_view(st: &AppState, token: &str, error: Option<&str>) -> Markup {
    page(
        st,
        None,
        "Sign in",
        html! {
            div.narrow {
                h1 { "Sign in" }
                @if let Some(e) = error { p.error role="alert" { (e) } }
                form.stack method="post" action="/login" {
                    input type="hidden" name="csrf" value=(token);
                    label { "Username" input name="username" autocomplete="username" required autofocus; }
                    label { "Password" input type="password" name="password" autocomplete="current-password" required; }
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// The login form with a fresh pre-login CSRF token (double-submit cookie: a cross-site
/// form cannot read or set it, so it cannot log a victim into an attacker's account).
fn login_response(st: &AppState, status: StatusCode, error: Option<&str>) -> Response {
    let Ok(token) = auth::new_token() else {
        return web::internal("random source failed");
    };
    let resp = (status, login_view(st, &token, error)).into_response();
    with_cookie(
        resp,
        access::cookie(
            &access::prelogin_cookie_name(st),
            &token,
            st.secure_cookies(),
            Some(1800),
        ),
    )
}

pub async fn login_page(State(st): State<AppState>) -> Response {
    login_response(&st, StatusCode::OK, None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// Starts a session (fresh token, so no fixation) and sets its cookie.
async fn start_session(
    st: &AppState,
    user: &User,
    client: &Client,
    mfa_pending: bool,
    to: &str,
) -> Response {
    let (Ok(token), Ok(csrf)) = (auth::new_token(), auth::new_token()) else {
        return web::internal("random source failed");
    };
    let res = st
        .store
        .create_session(&NewSession {
            token_hash: auth::token_hash(&token),
            user_id: user.id,
            csrf,
            mfa_pending,
            now_ns: now(),
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
        })
        .await;
    if let Err(e) = res {
        return web::internal(e);
    }
    let max_age = if mfa_pending {
        300
    } else {
        st.cfg.session_max_hours as i64 * 3600
    };
    let resp = with_cookie(
        Redirect::to(to).into_response(),
        access::cookie(
            &access::session_cookie_name(st),
            &token,
            st.secure_cookies(),
            Some(max_age),
        ),
    );
    with_cookie(
        resp,
        access::clear_cookie(&access::prelogin_cookie_name(st), st.secure_cookies()),
    )
}

/// Completes a login: bookkeeping, audit, alert on a new admin address, then the session.
async fn finish_login(st: &AppState, user: &User, client: &Client, with_2fa: bool) -> Response {
    if let Err(e) = st.store.login_succeeded(user.id, now()).await {
        return web::internal(e);
    }
    let (pair, account) = throttle_keys(&user.username, &client.ip);
    st.login_pair.clear(&pair);
    st.login_account.clear(&account);
    if user.role == Role::Admin {
        let known = st.store.login_ips(user.id).await.unwrap_or_default();
        if !known.is_empty() && !known.contains(&client.ip) {
            st.alerts.new_admin_ip(&user.username, &client.ip);
        }
    }
    st.audit(
        Some((user.id, &user.username)),
        "login",
        &user.username,
        &client.ip,
        if with_2fa { "2fa" } else { "" },
    )
    .await;
    start_session(st, user, client, false, "/").await
}

/// Throttle keys: the account from this address, and the account from anywhere.
fn throttle_keys(username: &str, ip: &str) -> (String, String) {
    (format!("{username}\u{0}{ip}"), username.to_string())
}

async fn fail_login(
    st: &AppState,
    user: Option<&User>,
    tried: &str,
    client: &Client,
    reason: &str,
) {
    let (pair, account) = throttle_keys(tried, &client.ip);
    st.login_pair.fail(&pair, now());
    st.login_account.fail(&account, now());
    st.audit(
        user.map(|u| (u.id, u.username.as_str())),
        "login_failed",
        tried,
        &client.ip,
        reason,
    )
    .await;
    st.alerts.login_failure(tried, &client.ip);
}

pub async fn login_submit(
    State(st): State<AppState>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let cookie =
        access::read_cookie(&headers, &access::prelogin_cookie_name(&st)).unwrap_or_default();
    if cookie.is_empty() || !auth::same(&cookie, &f.csrf) {
        return login_response(
            &st,
            StatusCode::FORBIDDEN,
            Some("The form expired; please try again."),
        );
    }
    if !st.login_limiter.allow(&client.ip, now()) {
        st.audit(None, "login_rate_limited", &f.username, &client.ip, "")
            .await;
        return login_response(
            &st,
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many attempts; wait a few minutes."),
        );
    }
    let username: String = f.username.trim().chars().take(64).collect();
    let user = match st.store.user_by_name(&username).await {
        Ok(u) => u,
        Err(e) => return web::internal(e),
    };
    // Growing delays after failures, per account from this address and per account. The
    // account-wide delay does not apply from addresses the owner signed in from before, so
    // strangers failing on purpose cannot keep the owner out; waits end by themselves and
    // attempts during a wait are not counted (they cannot extend it).
    let (pair, account) = throttle_keys(&username, &client.ip);
    let known = match &user {
        Some(u) => st
            .store
            .login_ips(u.id)
            .await
            .unwrap_or_default()
            .contains(&client.ip),
        None => false,
    };
    let wait = st.login_pair.wait(&pair, now()).or_else(|| {
        (!known)
            .then(|| st.login_account.wait(&account, now()))
            .flatten()
    });
    if let Some(w) = wait {
        let secs = (w + 999_999_999) / 1_000_000_000;
        st.audit(
            user.as_ref().map(|u| (u.id, u.username.as_str())),
            "login_delayed",
            &username,
            &client.ip,
            &format!("{secs} s to wait"),
        )
        .await;
        return login_response(
            &st,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!(
                "Too many failed attempts; try again in {secs} seconds."
            )),
        );
    }
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| auth::dummy_hash().to_string());
    let pw: String = f.password.chars().take(auth::MAX_PASSWORD).collect();
    let ok = verify_blocking(pw, hash).await;
    let Some(user) = user else {
        fail_login(&st, None, &username, &client, "unknown user").await;
        return login_response(&st, StatusCode::UNAUTHORIZED, Some(LOGIN_FAILED));
    };
    let reason = if !user.active {
        Some("disabled")
    } else if !ok {
        Some("bad password")
    } else {
        None
    };
    if let Some(r) = reason {
        fail_login(&st, Some(&user), &username, &client, r).await;
        return login_response(&st, StatusCode::UNAUTHORIZED, Some(LOGIN_FAILED));
    }
    if user.totp_enabled {
        return start_session(&st, &user, &client, true, "/login/totp").await;
    }
    finish_login(&st, &user, &client, false).await
}

fn totp_view(st: &AppState, s: &Session, error: Option<&str>) -> Markup {
    page(
        st,
        None,
        "Two-factor",
        html! {
            div.narrow {
                h1 { "Two-factor code" }
                @if let Some(e) = error { p.error role="alert" { (e) } }
                form.stack method="post" action="/login/totp" {
                    input type="hidden" name="csrf" value=(s.csrf);
                    label { "6-digit code or a recovery code"
                        input name="code" autocomplete="one-time-code" inputmode="text" required autofocus; }
                    button type="submit" { "Verify" }
                }
            }
        },
    )
}

pub async fn totp_page(State(st): State<AppState>, Extension(s): Extension<Session>) -> Response {
    totp_view(&st, &s, None).into_response()
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    pub code: String,
}

pub async fn totp_submit(
    State(st): State<AppState>,
    Extension(client): Extension<Client>,
    Extension(s): Extension<Session>,
    Form(f): Form<CodeForm>,
) -> Response {
    if !st.login_limiter.allow(&client.ip, now()) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            totp_view(&st, &s, Some("Too many attempts; wait a few minutes.")),
        )
            .into_response();
    }
    let user = match st.store.user_by_id(s.user_id).await {
        Ok(Some(u)) => u,
        Ok(None) => return Redirect::to("/login").into_response(),
        Err(e) => return web::internal(e),
    };
    let code = f.code.trim();
    let by_totp = match user
        .totp_secret
        .as_deref()
        .and_then(|sec| auth::totp_match(sec, code, unix_secs()))
    {
        Some(step) => st
            .store
            .consume_totp_step(user.id, step)
            .await
            .unwrap_or(false),
        None => false,
    };
    let by_recovery = !by_totp
        && code.len() >= 10
        && st
            .store
            .use_recovery_code(user.id, &auth::recovery_hash(code))
            .await
            .unwrap_or(false);
    let _ = st.store.delete_session(s.id).await;
    if !user.active || !(by_totp || by_recovery) {
        fail_login(
            &st,
            Some(&user),
            &user.username,
            &client,
            "bad second factor",
        )
        .await;
        let resp = login_response(&st, StatusCode::UNAUTHORIZED, Some(LOGIN_FAILED));
        return with_cookie(
            resp,
            access::clear_cookie(&access::session_cookie_name(&st), st.secure_cookies()),
        );
    }
    if by_recovery {
        st.audit(
            Some((user.id, &user.username)),
            "recovery_code_used",
            &user.username,
            &client.ip,
            "",
        )
        .await;
    }
    finish_login(&st, &user, &client, true).await
}

pub async fn logout(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
) -> Response {
    if let Some(id) = actor.session_id() {
        let _ = st.store.delete_session(id).await;
    }
    st.audit(
        Some((actor.user_id, &actor.username)),
        "logout",
        &actor.username,
        &client.ip,
        "",
    )
    .await;
    with_cookie(
        Redirect::to("/login").into_response(),
        access::clear_cookie(&access::session_cookie_name(&st), st.secure_cookies()),
    )
}
