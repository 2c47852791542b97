//! The server's data-access layer: the record types the dashboard reads and writes and the
//! `ServerStore` trait every backend implements (SQLite in `sqlite.rs`; a PostgreSQL backend
//! would be a second implementation of the same trait). Handlers only ever see the trait.

use serde::{Deserialize, Serialize};

use crate::model::{Anomaly, Level};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database: corrupt record: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot open database {path}: {msg}")]
    Open { path: String, msg: String },
    #[error("{0} already exists")]
    Conflict(String),
    #[error("database lock poisoned")]
    Poisoned,
}

pub type DbResult<T> = Result<T, DbError>;

/// Dashboard roles, weakest first so that `>=` means "at least".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub active: bool,
    pub created_ns: i64,
    pub last_login_ns: Option<i64>,
    #[serde(skip)]
    pub password_hash: String,
    #[serde(skip)]
    pub totp_secret: Option<String>,
    pub totp_enabled: bool,
    #[serde(skip)]
    pub failed_logins: i64,
    #[serde(skip)]
    pub locked_until_ns: i64,
}

/// A server-side session joined with its user. The cookie holds a random token; only its
/// SHA-256 is stored, so a leaked database does not leak live sessions.
#[derive(Clone, Debug, Serialize)]
pub struct Session {
    pub id: i64,
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    #[serde(skip)]
    pub user_active: bool,
    #[serde(skip)]
    pub csrf: String,
    /// Password accepted, second factor still owed: grants nothing but the TOTP step.
    pub mfa_pending: bool,
    #[serde(skip)]
    pub pending_totp: Option<String>,
    pub created_ns: i64,
    pub last_seen_ns: i64,
    pub ip: String,
    pub user_agent: String,
}

#[derive(Clone, Debug)]
pub struct NewSession {
    pub token_hash: String,
    pub user_id: i64,
    pub csrf: String,
    pub mfa_pending: bool,
    pub now_ns: i64,
    pub ip: String,
    pub user_agent: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ApiKey {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    /// The first characters of the key, for recognising it in lists.
    pub prefix: String,
    pub created_ns: i64,
    pub last_used_ns: Option<i64>,
    pub expires_ns: Option<i64>,
    pub enabled: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub time_ns: i64,
    pub user_id: Option<i64>,
    /// The acting user (or the name tried, for failed logins).
    pub username: String,
    pub action: String,
    pub target: String,
    pub ip: String,
    pub detail: String,
}

/// One admin-audit record to append.
#[derive(Clone, Debug)]
pub struct NewAudit<'a> {
    pub user_id: Option<i64>,
    pub username: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub ip: &'a str,
    pub detail: &'a str,
    pub time_ns: i64,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct AuditFilter {
    pub user: Option<String>,
    pub action: Option<String>,
    pub since_ns: Option<i64>,
    pub limit: Option<usize>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StoredAnomaly {
    #[serde(flatten)]
    pub anomaly: Anomaly,
    pub received_ns: i64,
    pub acked_by: Option<String>,
    pub acked_ns: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct AnomalyFilter {
    pub host: Option<String>,
    pub user: Option<String>,
    /// Minimum level.
    pub level: Option<Level>,
    pub detection: Option<String>,
    pub unacked: Option<bool>,
    pub limit: Option<usize>,
}

impl AnomalyFilter {
    /// The same predicate the SQL applies, for the live feed.
    pub fn matches(&self, a: &Anomaly) -> bool {
        self.host.as_deref().is_none_or(|h| a.host == h)
            && self.user.as_deref().is_none_or(|u| {
                a.principal.user.as_deref() == Some(u) || a.principal.uid.to_string() == u
            })
            && self.level.is_none_or(|l| a.level >= l)
            && self
                .detection
                .as_deref()
                .is_none_or(|d| a.factors.iter().any(|f| f.detection == d))
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Host {
    pub name: String,
    pub first_seen_ns: i64,
    pub last_seen_ns: i64,
    /// Highest level among the last 24 h of anomalies.
    pub level_24h: Option<Level>,
    pub anomalies_24h: i64,
    pub unacked: i64,
    /// The latest host snapshot as the agent sent it.
    pub snapshot: Option<serde_json::Value>,
    pub snapshot_ns: Option<i64>,
    /// The agent's calibration state, when it reported one.
    pub learning: Option<String>,
}

pub use crate::feed::push::IngestBatch;

#[derive(Clone, Debug, Default, Serialize)]
pub struct IngestOutcome {
    pub duplicate: bool,
    pub anomalies: usize,
    pub snapshots: usize,
    pub fingerprints: usize,
    /// Anomalies not seen before (the live feed and alerts get these).
    #[serde(skip)]
    pub new: Vec<Anomaly>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Purged {
    pub anomalies: usize,
    pub snapshots: usize,
    pub fingerprints: usize,
    pub sessions: usize,
    pub audit: usize,
}

/// Everything the server persists. Implementations must be safe to call from many request
/// handlers at once and must make each method atomic.
pub trait ServerStore: AccountStore + DataStore {}

impl<T: AccountStore + DataStore> ServerStore for T {}

/// People: users, second factors, sessions, API keys, the admin audit log.
pub trait AccountStore: Send + Sync {
    // Users.
    fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
        now_ns: i64,
    ) -> DbResult<i64>;
    fn user_by_name(&self, username: &str) -> DbResult<Option<User>>;
    fn user_by_id(&self, id: i64) -> DbResult<Option<User>>;
    fn list_users(&self) -> DbResult<Vec<User>>;
    fn count_admins(&self) -> DbResult<i64>;
    fn set_role(&self, id: i64, role: Role) -> DbResult<bool>;
    fn set_active(&self, id: i64, active: bool) -> DbResult<bool>;
    fn set_password(&self, id: i64, password_hash: &str) -> DbResult<bool>;
    fn delete_user(&self, id: i64) -> DbResult<bool>;
    /// Counts a failed login; locks the account until `lock_until_ns` once `max` is reached.
    fn login_failed(&self, id: i64, max: i64, lock_until_ns: i64) -> DbResult<()>;
    fn login_succeeded(&self, id: i64, now_ns: i64) -> DbResult<()>;
    fn set_totp(&self, id: i64, secret: Option<&str>) -> DbResult<()>;
    /// Consumes TOTP time step `step` for the user: true only the first time a step at or
    /// after the last accepted one is used, so each code works once.
    fn consume_totp_step(&self, id: i64, step: i64) -> DbResult<bool>;
    fn set_recovery_codes(&self, id: i64, hashes: &[String]) -> DbResult<()>;
    /// Removes a matching unused recovery code; true when one was found.
    fn use_recovery_code(&self, id: i64, hash: &str) -> DbResult<bool>;
    fn recovery_codes_left(&self, id: i64) -> DbResult<i64>;
    fn login_ips(&self, id: i64) -> DbResult<Vec<String>>;

    // Sessions.
    fn create_session(&self, s: &NewSession) -> DbResult<i64>;
    fn session_by_token_hash(&self, token_hash: &str) -> DbResult<Option<Session>>;
    fn touch_session(&self, id: i64, now_ns: i64) -> DbResult<()>;
    fn complete_mfa(&self, id: i64) -> DbResult<()>;
    fn set_pending_totp(&self, id: i64, secret: Option<&str>) -> DbResult<()>;
    fn delete_session(&self, id: i64) -> DbResult<bool>;
    /// Deletes every session of `user_id` except `keep`.
    fn delete_user_sessions(&self, user_id: i64, keep: Option<i64>) -> DbResult<usize>;
    fn list_sessions(&self, user_id: Option<i64>) -> DbResult<Vec<Session>>;
    fn session_by_id(&self, id: i64) -> DbResult<Option<Session>>;

    // API keys.
    fn create_api_key(
        &self,
        user_id: i64,
        name: &str,
        prefix: &str,
        key_hash: &str,
        now_ns: i64,
        expires_ns: Option<i64>,
    ) -> DbResult<i64>;
    fn list_api_keys(&self, user_id: i64) -> DbResult<Vec<ApiKey>>;
    fn api_key_by_hash(&self, key_hash: &str) -> DbResult<Option<(ApiKey, User)>>;
    fn set_api_key_enabled(&self, user_id: i64, id: i64, enabled: bool) -> DbResult<bool>;
    fn delete_api_key(&self, user_id: i64, id: i64) -> DbResult<bool>;
    fn touch_api_key(&self, id: i64, now_ns: i64) -> DbResult<()>;

    // Admin audit log.
    fn audit(&self, e: &NewAudit<'_>) -> DbResult<()>;
    fn list_audit(&self, f: &AuditFilter) -> DbResult<Vec<AuditEntry>>;
}

/// What agents push, and what the dashboard derives from it.
pub trait DataStore: Send + Sync {
    fn ingest(&self, batch: &IngestBatch, now_ns: i64) -> DbResult<IngestOutcome>;
    fn list_anomalies(&self, f: &AnomalyFilter) -> DbResult<Vec<StoredAnomaly>>;
    fn count_anomalies(&self) -> DbResult<i64>;
    fn get_anomaly(&self, id: &str) -> DbResult<Option<StoredAnomaly>>;
    fn ack_anomaly(&self, id: &str, by: &str, now_ns: i64) -> DbResult<bool>;
    fn ack_host(&self, host: &str, by: &str, now_ns: i64) -> DbResult<usize>;
    fn list_hosts(&self, now_ns: i64) -> DbResult<Vec<Host>>;
    fn get_host(&self, name: &str, now_ns: i64) -> DbResult<Option<Host>>;
    /// (time_ns, score) of a host's anomalies since `since_ns`, oldest first.
    fn risk_series(&self, host: &str, since_ns: i64) -> DbResult<Vec<(i64, u8)>>;
    /// The snapshot before the latest one, for configuration drift.
    fn previous_snapshot(&self, host: &str) -> DbResult<Option<serde_json::Value>>;
    fn detections(&self) -> DbResult<Vec<String>>;

    /// Drops data older than the retention horizon and dead sessions.
    fn purge(
        &self,
        data_before_ns: i64,
        audit_before_ns: i64,
        session_idle_before_ns: i64,
        session_created_before_ns: i64,
    ) -> DbResult<Purged>;
}
