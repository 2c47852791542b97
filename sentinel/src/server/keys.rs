//! API keys: personal keys with a scope (`read` by default, `ack`, `admin`, or `ingest` bound
//! to one host identity), never above their owner's role and created only after
//! re-authentication; and the admins' view of every key in the fleet, with revocation.

use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::AppState;
use super::access::{Actor, Client};
use super::account::{err, profile_view};
use super::auth;
use super::notify::{Change, Origin};
use super::reauth::{self, Factor, Proof};
use super::store::{ApiKey, KeyScope, NewApiKey, User};
use super::web::{self, csrf_field, fmt_time, page};

fn now() -> i64 {
    crate::store::now_ns()
}

pub const MAX_KEYS: usize = 20;

fn scope_cell(k: &ApiKey) -> Markup {
    html! {
        (k.scope)
        @if k.scope == KeyScope::Ingest {
            " → " @match &k.host { Some(h) => code { (h) }, None => span.muted { "first host pushed" } }
        }
    }
}

/// The "API keys" section of the profile page.
pub fn section(actor: &Actor, user: &User, keys: &[ApiKey]) -> Markup {
    html! {
        section id="keys" {
            h2 { "API keys" }
            p.muted { "A key acts with its scope, never above your role (" (user.role) "): "
                strong { "read" } " (default), " strong { "ack" } " (operator), " strong { "admin" }
                ", or " strong { "ingest" } " for an agent: push only, for the one host named here. Send as "
                code { "Authorization: Bearer <key>" } "." }
            @if !keys.is_empty() { div.tablewrap { table {
                thead { tr { th { "Name" } th { "Key" } th { "Scope" } th { "Created" } th { "Last used" } th { "Expires" } th { "State" } th {} } }
                tbody { @for k in keys { tr {
                    td { (k.name) } td { code { (k.prefix) "…" } } td { (scope_cell(k)) } td { (fmt_time(k.created_ns)) }
                    td { (k.last_used_ns.map(fmt_time).unwrap_or_else(|| "never".into())) }
                    td { (k.expires_ns.map(fmt_time).unwrap_or_else(|| "never".into())) }
                    td { @if k.enabled { "enabled" } @else { "disabled" } }
                    td {
                        form.inline method="post" action={ "/profile/keys/" (k.id) "/toggle" } { (csrf_field(actor))
                            button type="submit" { @if k.enabled { "Disable" } @else { "Enable" } } }
                        form.inline method="post" action={ "/profile/keys/" (k.id) "/delete" } { (csrf_field(actor))
                            button.danger type="submit" { "Delete" } }
                    }
                } } }
            } } }
            form.stack method="post" action="/profile/keys" {
                (csrf_field(actor))
                label { "Name " input name="name" required maxlength="100" placeholder="e.g. web-1 agent"; }
                label { "Scope " select name="scope" {
                    @for s in KeyScope::ALL { @if s.needs() <= user.role {
                        option value=(s) selected[s == KeyScope::Read] { (s) }
                    } }
                } }
                label { "Host (ingest keys only) " input name="host" maxlength="255" placeholder="e.g. web-1"; }
                label { "Expires in days " input type="number" name="expires_days" min="1" max="3650" placeholder="never"; }
                label { "Your password " input type="password" name="password" autocomplete="current-password" required; }
                @if user.totp_enabled {
                    label { "Current two-factor code " input name="code" autocomplete="one-time-code" required; }
                }
                button type="submit" { "Create key" }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    expires_days: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

/// What a new key is for.
pub struct KeySpec<'a> {
    pub name: &'a str,
    pub scope: KeyScope,
    pub host: Option<&'a str>,
    pub expires_days: Option<u32>,
}

/// Creates a key for `owner`; returns (key, id) or a message for the user. The key's scope
/// may not exceed the owner's role, and an ingest key names its host.
pub async fn create_key(
    st: &AppState,
    actor: &Actor,
    client: &Client,
    owner: &User,
    spec: &KeySpec<'_>,
) -> Result<(String, i64), (StatusCode, String)> {
    let bad = |m: String| Err((StatusCode::BAD_REQUEST, m));
    let name = spec.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return bad("Give the key a name of 1-100 characters.".into());
    }
    if spec.expires_days.is_some_and(|d| d == 0 || d > 3650) {
        return bad("Expiry must be 1-3650 days.".into());
    }
    if spec.scope.needs() > owner.role {
        return bad(format!(
            "A {} key needs the {} role; yours is {}.",
            spec.scope,
            spec.scope.needs(),
            owner.role
        ));
    }
    let host = match (
        spec.scope,
        spec.host.map(str::trim).filter(|h| !h.is_empty()),
    ) {
        (KeyScope::Ingest, Some(h)) => {
            if let Some(p) = super::ingest::name_problem("host", h) {
                return bad(format!("The key's {p}."));
            }
            Some(h)
        }
        (KeyScope::Ingest, None) => {
            return bad("An ingest key needs the host it pushes for.".into());
        }
        (_, Some(_)) => return bad("Only ingest keys are bound to a host.".into()),
        (_, None) => None,
    };
    let internal = |e: String| (StatusCode::INTERNAL_SERVER_ERROR, e);
    let existing = st
        .store
        .list_api_keys(owner.id)
        .await
        .map_err(|e| internal(e.to_string()))?;
    if existing.len() >= MAX_KEYS {
        return bad(format!("At most {MAX_KEYS} keys; delete one first."));
    }
    let (key, prefix, hash) = auth::new_api_key().map_err(|e| internal(e.to_string()))?;
    let t = now();
    let id = st
        .store
        .create_api_key(&NewApiKey {
            user_id: owner.id,
            name,
            prefix: &prefix,
            key_hash: &hash,
            now_ns: t,
            expires_ns: spec
                .expires_days
                .map(|d| t + i64::from(d) * 86_400_000_000_000),
            scope: spec.scope,
            host,
        })
        .await
        .map_err(|e| internal(e.to_string()))?;
    let what = format!(
        "{prefix} scope {}{}",
        spec.scope,
        host.map(|h| format!(" host {h}")).unwrap_or_default()
    );
    st.audit(
        Some((actor.user_id, &actor.username)),
        "api_key_created",
        name,
        &client.ip,
        &what,
    )
    .await;
    let detail = format!("Key: {name} ({what})");
    st.notify.security_change(
        owner,
        Change::ApiKeyCreated,
        &Origin {
            by: &actor.username,
            ip: &client.ip,
            detail: &detail,
        },
    );
    Ok((key, id))
}

pub async fn key_create(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Form(f): Form<KeyForm>,
) -> Response {
    let proof = Proof {
        password: &f.password,
        code: &f.code,
    };
    let owner = match reauth::check(
        &st,
        &actor,
        &client,
        &proof,
        Factor::PasswordAndCode,
        "api_key_create",
    )
    .await
    {
        Ok(u) => u,
        Err((status, msg)) => return err(&st, &actor, status, &msg).await,
    };
    let days = match f.expires_days.trim() {
        "" => None,
        d => match d.parse::<u32>() {
            Ok(d) => Some(d),
            Err(_) => {
                return err(
                    &st,
                    &actor,
                    StatusCode::BAD_REQUEST,
                    "Expiry must be a number of days.",
                )
                .await;
            }
        },
    };
    let scope = match f.scope.trim() {
        "" => KeyScope::Read,
        s => match KeyScope::parse(s) {
            Some(k) => k,
            None => {
                return err(
                    &st,
                    &actor,
                    StatusCode::BAD_REQUEST,
                    "Scope must be ingest, read, ack or admin.",
                )
                .await;
            }
        },
    };
    let spec = KeySpec {
        name: &f.name,
        scope,
        host: Some(f.host.as_str()),
        expires_days: days,
    };
    match create_key(&st, &actor, &client, &owner, &spec).await {
        Ok((key, _)) => {
            let extra = html! {
                section.setup id="new-key" {
                    h2 { "New API key" }
                    p { "Copy it now: it is shown only once and stored only as a hash." }
                    p { code id="api-key" { (key) } }
                }
            };
            profile_view(&st, &actor, None, Some(extra)).await
        }
        Err((s, m)) => err(&st, &actor, s, &m).await,
    }
}

pub async fn key_toggle(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Path(id): Path<i64>,
) -> Response {
    let keys = st
        .store
        .list_api_keys(actor.user_id)
        .await
        .unwrap_or_default();
    let Some(k) = keys.iter().find(|k| k.id == id) else {
        return err(&st, &actor, StatusCode::NOT_FOUND, "No such key.").await;
    };
    if let Err(e) = st
        .store
        .set_api_key_enabled(actor.user_id, id, !k.enabled)
        .await
    {
        return web::internal(e);
    }
    let action = if k.enabled {
        "api_key_disabled"
    } else {
        "api_key_enabled"
    };
    st.audit(
        Some((actor.user_id, &actor.username)),
        action,
        &k.name,
        &client.ip,
        &k.prefix,
    )
    .await;
    Redirect::to("/profile#keys").into_response()
}

pub async fn key_delete(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Path(id): Path<i64>,
) -> Response {
    match st.store.delete_api_key(actor.user_id, id).await {
        Ok(true) => {
            st.audit(
                Some((actor.user_id, &actor.username)),
                "api_key_deleted",
                &id.to_string(),
                &client.ip,
                "",
            )
            .await;
            Redirect::to("/profile#keys").into_response()
        }
        Ok(false) => err(&st, &actor, StatusCode::NOT_FOUND, "No such key.").await,
        Err(e) => web::internal(e),
    }
}

/// Every key of every user, for admins.
pub async fn admin_page(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> Response {
    let keys = match st.store.list_all_api_keys().await {
        Ok(k) => k,
        Err(e) => return web::internal(e),
    };
    let body = html! {
        h1 { "API keys" }
        p.muted { "Every key in the fleet. Revoking deletes the key: agents using it stop at once, and its open live streams end within seconds." }
        @if keys.is_empty() { p.empty { "No keys." } } @else {
            div.tablewrap { table {
                thead { tr { th { "Owner" } th { "Name" } th { "Key" } th { "Scope" } th { "Last used" } th { "Expires" } th { "State" } th {} } }
                tbody { @for k in &keys { tr {
                    td { (k.owner) } td { (k.name) } td { code { (k.prefix) "…" } } td { (scope_cell(k)) }
                    td { (k.last_used_ns.map(fmt_time).unwrap_or_else(|| "never".into())) }
                    td { (k.expires_ns.map(fmt_time).unwrap_or_else(|| "never".into())) }
                    td { @if k.enabled { "enabled" } @else { "disabled" } }
                    td { form.inline method="post" action={ "/admin/keys/" (k.id) "/delete" } { (csrf_field(&actor))
                        button.danger type="submit" { "Revoke" } } }
                } } }
            } }
        }
    };
    page(&st, Some(&actor), "API keys", body).into_response()
}

/// An admin revokes any key (page and JSON API alike), audit-logged with its owner and scope.
pub(super) async fn revoke_any(
    st: &AppState,
    actor: &Actor,
    client: &Client,
    id: i64,
) -> super::store::DbResult<Option<ApiKey>> {
    let k = st.store.delete_any_api_key(id).await?;
    if let Some(k) = &k {
        st.audit(
            Some((actor.user_id, &actor.username)),
            "api_key_revoked",
            &k.owner,
            &client.ip,
            &format!("{} ({}, scope {})", k.name, k.prefix, k.scope),
        )
        .await;
    }
    Ok(k)
}

pub async fn admin_revoke(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(client): Extension<Client>,
    Path(id): Path<i64>,
) -> Response {
    match revoke_any(&st, &actor, &client, id).await {
        Ok(Some(_)) => Redirect::to("/admin/keys").into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            web::error_page(StatusCode::NOT_FOUND, "No such key."),
        )
            .into_response(),
        Err(e) => web::internal(e),
    }
}
