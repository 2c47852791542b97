//! Who is asking and may they: resolves the actor of every request (session cookie, API
//! key or demo visitor), enforces the route's required role, the CSRF token on every state
//! change made with a cookie, expiry of sessions, and sets the cookies. Every route passes
//! through `guard` with its required access from the route table in `routes.rs`.

use std::net::SocketAddr;

use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::AppState;
use super::auth;
use super::store::{ApiKey, KeyScope, Role, Session, User};

/// What a route requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (login page, static assets, health, the OpenAPI document).
    Public,
    /// A session that passed the password and still owes its second factor.
    MfaPending,
    /// A signed-in user (or API key owner on /api) with at least this role.
    Role(Role),
    /// An API key of scope `ingest` whose owner is operator or above (agents pushing data
    /// for the one host the key is bound to).
    Ingest,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    Session,
    /// An API key: its id, scope and (ingest keys) the host it may write.
    ApiKey {
        id: i64,
        scope: KeyScope,
        host: Option<String>,
    },
    /// Anonymous visitor of a read-only demo server.
    Demo,
}

/// The authenticated principal of a request, available to handlers as an extension.
#[derive(Clone, Debug)]
pub struct Actor {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    pub via: Via,
    pub session: Option<Session>,
}

impl Actor {
    pub fn csrf(&self) -> &str {
        self.session.as_ref().map(|s| s.csrf.as_str()).unwrap_or("")
    }
    pub fn session_id(&self) -> Option<i64> {
        self.session.as_ref().map(|s| s.id)
    }
    pub fn can(&self, r: Role) -> bool {
        self.via != Via::Demo && self.role >= r
    }
    pub fn key_id(&self) -> Option<i64> {
        match self.via {
            Via::ApiKey { id, .. } => Some(id),
            _ => None,
        }
    }
}

/// Why a key may not be used now, or None. Checked on every request and, for open live
/// streams, every few seconds.
pub fn key_problem(k: &ApiKey, owner: &User, now: i64) -> Option<&'static str> {
    if !k.enabled {
        Some("API key disabled")
    } else if k.expires_ns.is_some_and(|e| e <= now) {
        Some("API key expired")
    } else if !owner.active {
        Some("API key owner is disabled")
    } else {
        None
    }
}

/// Why a session may not be used now (revoked sessions are simply gone), or None.
pub fn session_problem(st: &AppState, s: &Session, now: i64) -> Option<&'static str> {
    let idle = st.cfg.session_idle_mins as i64 * 60_000_000_000;
    let abs = st.cfg.session_max_hours as i64 * 3_600_000_000_000;
    let pending_max = 5 * 60_000_000_000;
    if !s.user_active {
        Some("user disabled")
    } else if now - s.last_seen_ns > idle {
        Some("session idle too long")
    } else if now - s.created_ns > abs {
        Some("session too old")
    } else if s.mfa_pending && now - s.created_ns > pending_max {
        Some("second factor not given in time")
    } else {
        None
    }
}

/// Client address and agent, recorded in sessions and the audit log.
#[derive(Clone, Debug)]
pub struct Client {
    pub ip: String,
    pub user_agent: String,
}

pub const SESSION_COOKIE: &str = "sentinel_session";
pub const PRELOGIN_COOKIE: &str = "sentinel_prelogin";
/// With Secure cookies the names carry the `__Host-` prefix: browsers then accept them only
/// over HTTPS, for the exact host, with `Path=/` (no subdomain or plain-HTTP injection).
pub const HOST_PREFIX: &str = "__Host-";

pub fn session_cookie_name(st: &AppState) -> String {
    cookie_name(st, SESSION_COOKIE)
}

pub fn prelogin_cookie_name(st: &AppState) -> String {
    cookie_name(st, PRELOGIN_COOKIE)
}

fn cookie_name(st: &AppState, base: &str) -> String {
    if st.secure_cookies() {
        format!("{HOST_PREFIX}{base}")
    } else {
        base.to_string()
    }
}
pub const CSRF_FIELD: &str = "csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, the whole site, Secure with TLS (the
/// `cookie` crate writes it).
pub fn cookie(name: &str, value: &str, secure: bool, max_age: Option<i64>) -> HeaderValue {
    let mut c = cookie::Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(secure);
    if let Some(a) = max_age {
        c = c.max_age(cookie::time::Duration::seconds(a));
    }
    HeaderValue::from_str(&c.build().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

pub fn clear_cookie(name: &str, secure: bool) -> HeaderValue {
    cookie(name, "", secure, Some(0))
}

/// The value of cookie `name` in the request's `Cookie` headers (the `cookie` crate parses
/// them; malformed pairs are skipped).
pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

fn client_of(st: &AppState, req: &Request) -> Client {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    // Behind a reverse proxy, the proxy appends the real client as the last entry; anything
    // before it came from the client and cannot be trusted. Without `trust_proxy` the header
    // is ignored entirely.
    let ip = if st.cfg.trust_proxy {
        req.headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(|s| s.trim().to_string())
            .filter(|s| s.parse::<std::net::IpAddr>().is_ok())
            .unwrap_or(peer)
    } else {
        peer
    };
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(256)
        .collect();
    Client { ip, user_agent }
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

/// The refusal a request gets, in the form its caller understands.
pub fn deny(path: &str, status: StatusCode, msg: &str) -> Response {
    if status == StatusCode::UNAUTHORIZED && !is_api(path) {
        return Redirect::to("/login").into_response();
    }
    if is_api(path) {
        (status, axum::Json(serde_json::json!({ "error": msg }))).into_response()
    } else {
        (status, super::web::error_page(status, msg)).into_response()
    }
}

fn api_key_of(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(k) = v.strip_prefix("Bearer ")
    {
        return Some(k.trim().to_string());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

enum Resolved {
    Anonymous,
    Actor(Actor),
    Pending(Session),
    BadKey(&'static str),
}

/// Takes the path and headers, not the request: its body is not `Sync`, and the lookups await.
async fn resolve(
    st: &AppState,
    path: &str,
    headers: &HeaderMap,
    now: i64,
) -> Result<Resolved, super::store::DbError> {
    if is_api(path)
        && let Some(key) = api_key_of(headers)
    {
        let Some((k, user)) = st.store.api_key_by_hash(&auth::token_hash(&key)).await? else {
            return Ok(Resolved::BadKey("invalid API key"));
        };
        if let Some(why) = key_problem(&k, &user, now) {
            return Ok(Resolved::BadKey(why));
        }
        // Last-used to the minute is plenty and saves a write per ingest batch.
        if k.last_used_ns.is_none_or(|t| now - t > 60_000_000_000) {
            st.store.touch_api_key(k.id, now).await?;
        }
        // A key never acts above its owner's current role, nor above its own scope. Ingest
        // keys keep the owner's role only for the ingest check; they pass no other route.
        let role = k.scope.acts_as(user.role).unwrap_or(user.role);
        return Ok(Resolved::Actor(Actor {
            user_id: user.id,
            username: user.username,
            role,
            via: Via::ApiKey {
                id: k.id,
                scope: k.scope,
                host: k.host,
            },
            session: None,
        }));
    }
    let Some(token) = read_cookie(headers, &session_cookie_name(st)) else {
        return Ok(Resolved::Anonymous);
    };
    let Some(s) = st
        .store
        .session_by_token_hash(&auth::token_hash(&token))
        .await?
    else {
        return Ok(Resolved::Anonymous);
    };
    if session_problem(st, &s, now).is_some() {
        st.store.delete_session(s.id).await?;
        return Ok(Resolved::Anonymous);
    }
    if s.mfa_pending {
        return Ok(Resolved::Pending(s));
    }
    if now - s.last_seen_ns > 30_000_000_000 {
        st.store.touch_session(s.id, now).await?;
    }
    Ok(Resolved::Actor(Actor {
        user_id: s.user_id,
        username: s.username.clone(),
        role: s.role,
        via: Via::Session,
        session: Some(s),
    }))
}

/// Checks the CSRF token of a cookie-authenticated state change, from the header or the
/// urlencoded form body (which is buffered and handed on intact).
async fn check_csrf(expected: &str, req: Request, limit: usize) -> Result<Request, Response> {
    let path = req.uri().path().to_string();
    if let Some(h) = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        return if auth::same(h, expected) {
            Ok(req)
        } else {
            Err(deny(&path, StatusCode::FORBIDDEN, "invalid CSRF token"))
        };
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(deny(&path, StatusCode::FORBIDDEN, "missing CSRF token"));
    }
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, limit)
        .await
        .map_err(|_| deny(&path, StatusCode::PAYLOAD_TOO_LARGE, "request too large"))?;
    let token = form_urlencoded_get(&bytes, CSRF_FIELD);
    if !token.is_some_and(|t| auth::same(&t, expected)) {
        return Err(deny(&path, StatusCode::FORBIDDEN, "invalid CSRF token"));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The first value of `key` in a form body (the `form_urlencoded` crate decodes it).
fn form_urlencoded_get(body: &[u8], key: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The per-route middleware: authenticate, authorise, check CSRF, then run the handler.
pub async fn guard(
    State((st, access)): State<(AppState, Access)>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    let client = client_of(&st, &req);
    req.extensions_mut().insert(client);
    if access == Access::Public {
        return next.run(req).await;
    }
    let now = crate::store::now_ns();
    let resolved = match resolve(&st, req.uri().path(), req.headers(), now).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("auth lookup failed: {e}");
            return deny(&path, StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    let safe = matches!(*req.method(), Method::GET | Method::HEAD);
    let actor = match (access, resolved) {
        (_, Resolved::BadKey(msg)) => return deny(&path, StatusCode::UNAUTHORIZED, msg),
        (Access::MfaPending, Resolved::Pending(s)) => {
            if !safe {
                match check_csrf(&s.csrf, req, st.cfg.max_form_bytes).await {
                    Ok(r) => req = r,
                    Err(resp) => return resp,
                }
            }
            req.extensions_mut().insert(s);
            return next.run(req).await;
        }
        (Access::MfaPending, _) => return Redirect::to("/login").into_response(),
        (_, Resolved::Actor(a)) => a,
        (Access::Role(Role::Viewer), _) if st.cfg.demo && safe => Actor {
            user_id: 0,
            username: "demo".into(),
            role: Role::Viewer,
            via: Via::Demo,
            session: None,
        },
        (_, Resolved::Pending(_) | Resolved::Anonymous) => {
            return deny(&path, StatusCode::UNAUTHORIZED, "sign in required");
        }
    };
    match access {
        Access::Ingest => {
            let Via::ApiKey { scope, .. } = &actor.via else {
                return deny(&path, StatusCode::UNAUTHORIZED, "an API key is required");
            };
            if *scope != KeyScope::Ingest {
                return deny(
                    &path,
                    StatusCode::FORBIDDEN,
                    &format!("this key's scope is {scope}; pushing data needs an ingest key"),
                );
            }
            if actor.role < Role::Operator {
                return deny(
                    &path,
                    StatusCode::FORBIDDEN,
                    "the key's owner may not ingest",
                );
            }
        }
        Access::Role(_)
            if matches!(
                actor.via,
                Via::ApiKey {
                    scope: KeyScope::Ingest,
                    ..
                }
            ) =>
        {
            return deny(
                &path,
                StatusCode::FORBIDDEN,
                "an ingest key can only push data (POST /api/ingest)",
            );
        }
        Access::Role(r) if actor.role < r => {
            return deny(
                &path,
                StatusCode::FORBIDDEN,
                "your role does not allow this",
            );
        }
        _ => {}
    }
    if !safe {
        if actor.via == Via::Demo {
            return deny(&path, StatusCode::FORBIDDEN, "read-only demo");
        }
        if let Some(s) = &actor.session {
            match check_csrf(&s.csrf.clone(), req, st.cfg.max_form_bytes).await {
                Ok(r) => req = r,
                Err(resp) => return resp,
            }
        }
    }
    req.extensions_mut().insert(actor);
    next.run(req).await
}

/// Headers every response carries: a strict CSP (no inline script, nothing third-party),
/// no framing, no sniffing, no referrer leaks, no caching of authenticated pages.
pub async fn security_headers(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if st.tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_httponly_samesite_and_secure_only_with_tls() {
        let c = cookie(SESSION_COOKIE, "abc", false, None);
        let s = c.to_str().unwrap();
        assert!(s.contains("HttpOnly") && s.contains("SameSite=Strict") && !s.contains("Secure"));
        assert!(
            cookie(SESSION_COOKIE, "abc", true, None)
                .to_str()
                .unwrap()
                .contains("; Secure")
        );
    }

    #[test]
    fn cookie_parsing_finds_the_named_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; sentinel_session=tok; b=2"),
        );
        assert_eq!(read_cookie(&h, SESSION_COOKIE).as_deref(), Some("tok"));
        assert_eq!(read_cookie(&h, "c"), None);
    }

    #[test]
    fn form_fields_are_decoded() {
        assert_eq!(
            form_urlencoded_get(b"a=1&csrf=x%2By+z&b=", "csrf").as_deref(),
            Some("x+y z")
        );
        // A broken escape stays as it was sent (and so never equals a token).
        assert_eq!(form_urlencoded_get(b"a=%zz", "a").as_deref(), Some("%zz"));
        assert_eq!(form_urlencoded_get(b"a=1", "csrf"), None);
    }
}
