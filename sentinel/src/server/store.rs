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
    #[error("database connection pool: {0}")]
    Pool(String),
    /// A PostgreSQL error, with the server's own message (postgres/mod.rs).
    #[error("database: {0}")]
    Pg(String),
    #[error("database: corrupt record: {0}")]
    Corrupt(String),
    #[error("two-factor secret: {0}")]
    Secret(#[from] super::secrets::SecretError),
    #[error("no secret key loaded: two-factor secrets cannot be sealed")]
    NoSecretKey,
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
    /// Where security notices go (two-factor, password, new keys); none means none are sent.
    pub email: Option<String>,
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

/// What an API key may do. A key never exceeds its owner's current role: `read` needs a
/// viewer, `ack` an operator, `admin` an admin, and `ingest` (push only, bound to one host
/// identity) an operator. Stored as text; the names never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyScope {
    Ingest,
    Read,
    Ack,
    Admin,
}

impl KeyScope {
    pub const ALL: [KeyScope; 4] = [
        KeyScope::Ingest,
        KeyScope::Read,
        KeyScope::Ack,
        KeyScope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Ingest => "ingest",
            KeyScope::Read => "read",
            KeyScope::Ack => "ack",
            KeyScope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<KeyScope> {
        KeyScope::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The least role an owner needs to hold a key of this scope.
    pub fn needs(self) -> Role {
        match self {
            KeyScope::Read => Role::Viewer,
            KeyScope::Ingest | KeyScope::Ack => Role::Operator,
            KeyScope::Admin => Role::Admin,
        }
    }

    /// The dashboard role a key of this scope acts with on the read/ack/admin routes
    /// (never above its owner's role); None for ingest keys, which only push.
    pub fn acts_as(self, owner: Role) -> Option<Role> {
        let r = match self {
            KeyScope::Ingest => return None,
            KeyScope::Read => Role::Viewer,
            KeyScope::Ack => Role::Operator,
            KeyScope::Admin => Role::Admin,
        };
        Some(r.min(owner))
    }
}

impl std::fmt::Display for KeyScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key to create (its secret is shown once; only `key_hash` is stored).
#[derive(Clone, Debug)]
pub struct NewApiKey<'a> {
    pub user_id: i64,
    pub name: &'a str,
    pub prefix: &'a str,
    pub key_hash: &'a str,
    pub now_ns: i64,
    pub expires_ns: Option<i64>,
    pub scope: KeyScope,
    /// The host identity an ingest key may write (required for new ingest keys).
    pub host: Option<&'a str>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ApiKey {
    pub id: i64,
    pub user_id: i64,
    /// The owner's user name (for the admins' list of every key).
    pub owner: String,
    pub name: String,
    pub scope: KeyScope,
    /// The only host an ingest key may write; None for other scopes, and for ingest keys
    /// migrated from before scopes until their first push binds them.
    pub host: Option<String>,
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
    /// When the server received it: the feed's order and the retention clock (an agent's
    /// own `time_ns` is shown but never trusted for ordering).
    pub received_ns: i64,
    /// Set when the agent reused an id already stored with different content: this record
    /// was kept under a derived id instead of being dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflict_of: Option<String>,
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

/// The answer to an ingest: exactly what was stored, what was already there and what was
/// refused (and why), item by item.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IngestOutcome {
    /// The whole batch was seen before (same `batch_id`): nothing was stored.
    pub duplicate: bool,
    /// Anomalies stored now (including conflicts, under their derived id).
    pub anomalies: usize,
    pub snapshots: usize,
    pub fingerprints: usize,
    /// Ids of the anomalies stored now.
    pub stored: Vec<String>,
    /// Ids already stored with the same content (retries): nothing changed.
    pub duplicates: Vec<String>,
    /// Ids already stored for other content: the new record was kept as `stored_as`.
    pub conflicts: Vec<IdConflict>,
    /// Items not stored, with the reason.
    pub refused: Vec<Refused>,
    /// Incidents stored, updated, repeated or older than the stored state.
    pub incidents: super::incidents::IncidentOutcome,
    /// Anomalies not seen before (the live feed and alerts get these).
    #[serde(skip)]
    pub new: Vec<StoredAnomaly>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct IdConflict {
    pub id: String,
    pub stored_as: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Refused {
    /// "anomaly", "snapshot", "fingerprint" or "incident".
    pub kind: &'static str,
    /// Position in its list in the batch.
    pub index: usize,
    /// The item's id, when it has one (escaped for display, never used as a key).
    pub id: Option<String>,
    pub reason: String,
}

/// What retention deletes: each table's rows received before its own horizon (ns).
#[derive(Clone, Copy, Debug, Default)]
pub struct Horizons {
    pub anomalies: i64,
    pub incidents: i64,
    pub snapshots: i64,
    pub fingerprints: i64,
    pub audit: i64,
    /// Sessions idle since before this end ...
    pub session_idle: i64,
    /// ... and so do sessions created before this.
    pub session_created: i64,
}

impl Horizons {
    /// The same horizon for every data table (tests, and sites without per-table settings).
    pub fn all(data: i64, audit: i64, session_idle: i64, session_created: i64) -> Horizons {
        Horizons {
            anomalies: data,
            incidents: data,
            snapshots: data,
            fingerprints: data,
            audit,
            session_idle,
            session_created,
        }
    }

    /// Hosts and ingest batch ids are kept while any of a host's data may remain: until the
    /// oldest data horizon.
    pub fn hosts(&self) -> i64 {
        self.anomalies
            .min(self.incidents)
            .min(self.snapshots)
            .min(self.fingerprints)
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Purged {
    pub anomalies: usize,
    pub snapshots: usize,
    pub fingerprints: usize,
    pub incidents: usize,
    pub sessions: usize,
    pub audit: usize,
}

/// Everything the server persists. Implementations must be safe to call from many request
/// handlers at once and must make each method atomic.
pub trait ServerStore:
    AccountStore + DataStore + FeedbackStore + IncidentStore + FleetStore
{
}

impl<T: AccountStore + DataStore + FeedbackStore + IncidentStore + FleetStore> ServerStore for T {}

pub use super::feedback::FeedbackStore;
pub use super::fleet::FleetStore;
pub use super::incidents::IncidentStore;

/// People: users, second factors, sessions, API keys, the admin audit log.
#[async_trait::async_trait]
pub trait AccountStore: Send + Sync {
    // Users.
    async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
        now_ns: i64,
    ) -> DbResult<i64>;
    async fn user_by_name(&self, username: &str) -> DbResult<Option<User>>;
    async fn user_by_id(&self, id: i64) -> DbResult<Option<User>>;
    async fn list_users(&self) -> DbResult<Vec<User>>;
    async fn count_admins(&self) -> DbResult<i64>;
    async fn set_role(&self, id: i64, role: Role) -> DbResult<bool>;
    async fn set_active(&self, id: i64, active: bool) -> DbResult<bool>;
    async fn set_password(&self, id: i64, password_hash: &str) -> DbResult<bool>;
    async fn delete_user(&self, id: i64) -> DbResult<bool>;
    /// Counts a failed login; locks the account until `lock_until_ns` once `max` is reached.
    async fn login_failed(&self, id: i64, max: i64, lock_until_ns: i64) -> DbResult<()>;
    async fn login_succeeded(&self, id: i64, now_ns: i64) -> DbResult<()>;
    async fn set_email(&self, id: i64, email: Option<&str>) -> DbResult<bool>;
    /// Sets (base32, clear) or removes a user's TOTP secret. Backends keep it sealed at rest
    /// and return it opened.
    async fn set_totp(&self, id: i64, secret: Option<&str>) -> DbResult<()>;
    /// Consumes TOTP time step `step` for the user: true only the first time a step at or
    /// after the last accepted one is used, so each code works once.
    async fn consume_totp_step(&self, id: i64, step: i64) -> DbResult<bool>;
    async fn set_recovery_codes(&self, id: i64, hashes: &[String]) -> DbResult<()>;
    /// Removes a matching unused recovery code; true when one was found.
    async fn use_recovery_code(&self, id: i64, hash: &str) -> DbResult<bool>;
    async fn recovery_codes_left(&self, id: i64) -> DbResult<i64>;
    async fn login_ips(&self, id: i64) -> DbResult<Vec<String>>;

    // Sessions.
    async fn create_session(&self, s: &NewSession) -> DbResult<i64>;
    async fn session_by_token_hash(&self, token_hash: &str) -> DbResult<Option<Session>>;
    async fn touch_session(&self, id: i64, now_ns: i64) -> DbResult<()>;
    async fn complete_mfa(&self, id: i64) -> DbResult<()>;
    async fn set_pending_totp(&self, id: i64, secret: Option<&str>) -> DbResult<()>;
    async fn delete_session(&self, id: i64) -> DbResult<bool>;
    /// Deletes every session of `user_id` except `keep`.
    async fn delete_user_sessions(&self, user_id: i64, keep: Option<i64>) -> DbResult<usize>;
    async fn list_sessions(&self, user_id: Option<i64>) -> DbResult<Vec<Session>>;
    async fn session_by_id(&self, id: i64) -> DbResult<Option<Session>>;

    // API keys.
    async fn create_api_key(&self, k: &NewApiKey<'_>) -> DbResult<i64>;
    async fn list_api_keys(&self, user_id: i64) -> DbResult<Vec<ApiKey>>;
    /// Every key of every user (admins).
    async fn list_all_api_keys(&self) -> DbResult<Vec<ApiKey>>;
    /// Deletes any user's key (admins).
    async fn delete_any_api_key(&self, id: i64) -> DbResult<Option<ApiKey>>;
    /// Binds an unbound (migrated) ingest key to `host`; returns the key's host afterwards.
    async fn bind_api_key_host(&self, id: i64, host: &str) -> DbResult<Option<String>>;
    async fn api_key_by_id(&self, id: i64) -> DbResult<Option<(ApiKey, User)>>;
    async fn api_key_by_hash(&self, key_hash: &str) -> DbResult<Option<(ApiKey, User)>>;
    async fn set_api_key_enabled(&self, user_id: i64, id: i64, enabled: bool) -> DbResult<bool>;
    async fn delete_api_key(&self, user_id: i64, id: i64) -> DbResult<bool>;
    async fn touch_api_key(&self, id: i64, now_ns: i64) -> DbResult<()>;

    // Admin audit log.
    async fn audit(&self, e: &NewAudit<'_>) -> DbResult<()>;
    async fn list_audit(&self, f: &AuditFilter) -> DbResult<Vec<AuditEntry>>;
}

/// What agents push, and what the dashboard derives from it.
#[async_trait::async_trait]
pub trait DataStore: Send + Sync {
    async fn ingest(&self, batch: &IngestBatch, now_ns: i64) -> DbResult<IngestOutcome>;
    async fn list_anomalies(&self, f: &AnomalyFilter) -> DbResult<Vec<StoredAnomaly>>;
    async fn count_anomalies(&self) -> DbResult<i64>;
    async fn get_anomaly(&self, id: &str) -> DbResult<Option<StoredAnomaly>>;
    async fn ack_anomaly(&self, id: &str, by: &str, now_ns: i64) -> DbResult<bool>;
    async fn ack_host(&self, host: &str, by: &str, now_ns: i64) -> DbResult<usize>;
    async fn list_hosts(&self, now_ns: i64) -> DbResult<Vec<Host>>;
    async fn get_host(&self, name: &str, now_ns: i64) -> DbResult<Option<Host>>;
    /// (time_ns, score) of a host's anomalies since `since_ns`, oldest first.
    async fn risk_series(&self, host: &str, since_ns: i64) -> DbResult<Vec<(i64, u8)>>;
    /// The snapshot before the latest one, for configuration drift.
    async fn previous_snapshot(&self, host: &str) -> DbResult<Option<serde_json::Value>>;
    async fn detections(&self) -> DbResult<Vec<String>>;

    /// Drops each table's rows older than its horizon, and dead sessions, in one transaction.
    async fn purge(&self, h: &Horizons) -> DbResult<Purged>;
}
