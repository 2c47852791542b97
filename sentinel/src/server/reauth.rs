//! Re-authentication of a signed-in user before sensitive changes (two-factor setup and
//! removal, API key creation, password change): the password and, when two-factor is on, a
//! current code (or a recovery code). A stolen session cookie alone is then not enough to
//! take the account over. Attempts are rate-limited per user (10 per 15 minutes) and per
//! address (shared with sign-in), and failures are audited.

use axum::http::StatusCode;

use super::AppState;
use super::access::{Actor, Client};
use super::auth;
use super::login::verify_blocking;
use super::store::User;

/// What the user typed to prove it is them.
pub struct Proof<'a> {
    pub password: &'a str,
    pub code: &'a str,
}

/// Whether a current second-factor code is asked for (on top of the password) when the
/// user has two-factor on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    PasswordOnly,
    PasswordAndCode,
}

fn unix_secs() -> u64 {
    (crate::store::now_ns() / 1_000_000_000).max(0) as u64
}

/// Checks `proof` for `actor`; `action` names the change in the audit log.
pub async fn check(
    st: &AppState,
    actor: &Actor,
    client: &Client,
    proof: &Proof<'_>,
    factor: Factor,
    action: &str,
) -> Result<User, (StatusCode, String)> {
    let now = crate::store::now_ns();
    let who = Some((actor.user_id, actor.username.as_str()));
    if !st
        .reauth_limiter
        .allow(&format!("user:{}", actor.user_id), now)
        || !st.login_limiter.allow(&client.ip, now)
    {
        st.audit(
            who,
            "reauth_rate_limited",
            &actor.username,
            &client.ip,
            action,
        )
        .await;
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            "Too many password checks; wait a few minutes.".into(),
        ));
    }
    let user = match st.store.user_by_id(actor.user_id).await {
        Ok(Some(u)) => u,
        Ok(None) => return Err((StatusCode::UNAUTHORIZED, "No such user.".into())),
        Err(e) => return Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    };
    let pw_ok = verify_blocking(
        proof.password.chars().take(auth::MAX_PASSWORD).collect(),
        user.password_hash.clone(),
    )
    .await;
    let code_ok = if factor == Factor::PasswordOnly || !user.totp_enabled {
        true
    } else if !pw_ok {
        false
    } else {
        let code = proof.code.trim();
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
        by_totp
            || (code.len() >= 10
                && st
                    .store
                    .use_recovery_code(user.id, &auth::recovery_hash(code))
                    .await
                    .unwrap_or(false))
    };
    if pw_ok && code_ok {
        return Ok(user);
    }
    let what = if pw_ok { "bad code" } else { "bad password" };
    st.audit(
        who,
        "reauth_failed",
        &actor.username,
        &client.ip,
        &format!("{action}: {what}"),
    )
    .await;
    let msg = if factor == Factor::PasswordAndCode && user.totp_enabled {
        "The password or the two-factor code is wrong."
    } else {
        "The password is wrong."
    };
    Err((StatusCode::BAD_REQUEST, msg.into()))
}
