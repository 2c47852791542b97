//! `sentinel serve`: the multi-host, multi-user dashboard. Agents push anomalies, snapshots
//! and fingerprints to `POST /api/ingest`; people watch them live (SSE) in a server-rendered
//! web UI or through the JSON API. Secure by default: no default credentials, argon2id,
//! server-side sessions, CSRF tokens, role checks on every route, escaped output.
//! docs/server.md is the operator's guide.

pub mod access;
pub mod account;
pub mod admin;
pub mod alerts;
pub mod api;
pub mod auth;
pub mod backend;
pub mod cli;
pub mod feedback;
pub mod feedback_web;
pub mod fleet;
pub mod fleet_api;
pub mod fleet_cli;
pub mod fleet_lists;
pub mod fleet_pages;
pub mod hosts;
pub mod incident_pages;
pub mod incidents;
pub mod ingest;
pub mod keys;
pub mod live;
pub mod login;
pub mod mail;
pub mod metrics;
pub mod migrate;
pub mod notify;
pub mod postgres;
pub mod reauth;
pub mod retention;
pub mod routes;
pub mod secrets;
pub mod sqlite;
pub mod store;
#[cfg(test)]
pub(crate) mod store_tests;
pub mod throttle;
pub mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::model::Anomaly;
use store::{DbError, DbResult, IngestBatch, IngestOutcome, ServerStore};

pub const DEFAULT_DB: &str = "/var/lib/sentinel/server.db";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on. Keep it on localhost when a reverse proxy terminates TLS.
    pub listen: String,
    /// The dashboard's SQLite database (users, hosts, anomalies), used unless `database`
    /// names a PostgreSQL server.
    pub db: PathBuf,
    /// A PostgreSQL server instead of the SQLite file, for sites with many hosts:
    /// `postgres://user:password@host:5432/sentinel` (docs/server.md, "PostgreSQL").
    pub database: Option<String>,
    /// Connections the server keeps to PostgreSQL (ingests, pages and live checks each take
    /// one while they run); stay under the server's `max_connections`.
    pub database_pool: usize,
    /// The key that seals TOTP secrets in the database (32 bytes, mode 0600, created at
    /// first start). Default: the database path with `.key` appended. Back it up with the
    /// database, but keep it out of the database's backups if you can.
    pub secret_key_file: Option<PathBuf>,
    /// PEM certificate chain and private key: both set means HTTPS (and Secure cookies).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Take the client address from the last X-Forwarded-For entry (only behind a proxy
    /// that sets it; otherwise clients could spoof their address).
    pub trust_proxy: bool,
    /// Mark cookies Secure even without TLS here (TLS terminated by a reverse proxy).
    pub secure_cookies: bool,
    /// A dashboard session idle this long ends.
    pub session_idle_mins: u64,
    /// A dashboard session ends this long after sign-in, however active.
    pub session_max_hours: u64,
    /// Anomalies, incidents, snapshots and fingerprints older than this are deleted (each
    /// table may keep its own horizon under `[server.retention]`).
    pub retention_days: u64,
    /// The dashboard's own audit trail (sign-ins, changes) is kept this long.
    pub audit_retention_days: u64,
    /// Read-only demo: anonymous visitors may look, nobody anonymous may change anything.
    pub demo: bool,
    /// Largest ingest request body an agent may send.
    pub max_ingest_bytes: usize,
    /// Largest form body the dashboard accepts.
    pub max_form_bytes: usize,
    /// Failed sign-ins (per account and address, and per account) before each further
    /// failure makes the next attempt wait: `login_delay_secs`, doubling up to `lockout_mins`.
    pub login_max_failures: i64,
    /// Longest wait imposed after repeated failed sign-ins.
    pub lockout_mins: u64,
    /// First wait imposed after `login_max_failures`, doubling each further failure.
    pub login_delay_secs: u64,
    /// Login attempts per client address per 5 minutes.
    pub login_rate_per_ip: usize,
    /// The dashboard's public URL, for links in alerts.
    pub public_url: Option<String>,
    /// How far ahead of the server's clock an agent's `time_ns` may be; items further in the
    /// future are refused (the server orders and expires by its own receipt time anyway).
    pub max_clock_skew_secs: u64,
    /// Allow plain HTTP on a non-loopback address (`--insecure-http`): passwords and session
    /// cookies then cross the network in clear. Off by default: such a server refuses to start.
    pub insecure_http: bool,
    /// When and where the dashboard sends alerts.
    pub alerts: alerts::AlertsConfig,
    /// Per-table retention, in days; a table left unset keeps `retention_days`.
    pub retention: retention::RetentionConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            db: PathBuf::from(DEFAULT_DB),
            database: None,
            database_pool: 16,
            secret_key_file: None,
            tls_cert: None,
            tls_key: None,
            trust_proxy: false,
            secure_cookies: false,
            session_idle_mins: 30,
            session_max_hours: 12,
            retention_days: 90,
            audit_retention_days: 365,
            demo: false,
            max_ingest_bytes: 4 << 20,
            max_form_bytes: 64 << 10,
            login_max_failures: 5,
            lockout_mins: 15,
            login_delay_secs: 1,
            login_rate_per_ip: 20,
            public_url: None,
            max_clock_skew_secs: 300,
            insecure_http: false,
            alerts: alerts::AlertsConfig::default(),
            retention: retention::RetentionConfig::default(),
        }
    }
}

impl ServerConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=1000).contains(&self.database_pool) {
            return Err("server database_pool must be 1-1000".into());
        }
        if let Some(url) = &self.database {
            if !postgres::is_postgres_url(url) {
                return Err(format!(
                    "server database {:?} is not a postgres:// URL (leave it unset for the SQLite file `db`)",
                    postgres::redact(url)
                ));
            }
            url.parse::<tokio_postgres::Config>()
                .map_err(|e| format!("server database {}: {e}", postgres::redact(url)))?;
        }
        self.listen
            .parse::<SocketAddr>()
            .map_err(|e| format!("server.listen {:?}: {e}", self.listen))?;

        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("server.tls_cert and server.tls_key must be given together".into());
        }
        let r = &self.retention;
        if [
            r.anomalies_days,
            r.incidents_days,
            r.snapshots_days,
            r.fingerprints_days,
        ]
        .contains(&Some(0))
        {
            return Err("[server.retention] durations must be positive".into());
        }
        if self.session_idle_mins == 0 || self.session_max_hours == 0 || self.retention_days == 0 {
            return Err("server session and retention durations must be positive".into());
        }
        if self.max_ingest_bytes < 1024 || self.max_form_bytes < 1024 {
            return Err("server request size limits must be at least 1024 bytes".into());
        }
        if self.login_max_failures < 1 || self.login_rate_per_ip < 1 {
            return Err("server login limits must be positive".into());
        }
        self.alerts.validate()
    }

    /// Where the key that seals TOTP secrets lives.
    pub fn secret_key_path(&self) -> PathBuf {
        self.secret_key_file.clone().unwrap_or_else(|| {
            let mut p = self.db.as_os_str().to_owned();
            p.push(".key");
            PathBuf::from(p)
        })
    }

    pub fn tls(&self) -> bool {
        self.tls_cert.is_some()
    }

    /// Plain HTTP is refused on any address but loopback unless `insecure_http` says so:
    /// passwords and cookies would cross the network in clear. (Checked when the server
    /// starts, not when the configuration loads, so `sentinel run` is unaffected.)
    pub fn transport_problem(&self, addr: SocketAddr) -> Option<String> {
        if addr.ip().is_loopback() || self.tls() || self.insecure_http {
            return None;
        }
        Some(format!(
            "refusing plain HTTP on {addr}: passwords, session cookies and API keys would cross \
                 the network in clear. Give --tls-cert/--tls-key, keep the server on 127.0.0.1 \
                 behind a TLS reverse proxy, or pass --insecure-http (server.insecure_http) if \
                 you really mean it"
        ))
    }
}

/// Why an ingest was not stored at all.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The batch envelope is unacceptable (its id, size or host name).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Db(#[from] store::DbError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("invalid server configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Secrets(#[from] secrets::SecretError),
}

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn ServerStore>,
    pub cfg: Arc<ServerConfig>,
    pub live: broadcast::Sender<Arc<store::StoredAnomaly>>,
    pub login_limiter: Arc<auth::RateLimiter>,
    /// Failed sign-ins per (account, address) and per account: growing delays.
    pub login_pair: Arc<throttle::Delays>,
    pub login_account: Arc<throttle::Delays>,
    /// Password (and code) checks of signed-in users: per user and per address.
    pub reauth_limiter: Arc<auth::RateLimiter>,
    /// Enrolment attempts per client address (fleet_api.rs).
    pub enrol_limiter: Arc<auth::RateLimiter>,
    pub alerts: alerts::Alerts,
    /// Security notices to users' own addresses.
    pub notify: notify::Notifier,
    pub tls: bool,
    /// Counters for the Prometheus exposition (`[metrics] server_listen`).
    pub metrics: metrics::ServerMetrics,
}

impl AppState {
    pub fn new(store: Arc<dyn ServerStore>, cfg: ServerConfig) -> AppState {
        let (live, _) = broadcast::channel(1024);
        let tls = cfg.tls();
        let free = u32::try_from(cfg.login_max_failures).unwrap_or(5);
        let delays = || {
            Arc::new(throttle::Delays::new(
                free,
                cfg.login_delay_secs,
                cfg.lockout_mins * 60,
                100_000,
            ))
        };
        AppState {
            login_limiter: Arc::new(auth::RateLimiter::new(cfg.login_rate_per_ip, 300)),
            login_pair: delays(),
            login_account: delays(),
            reauth_limiter: Arc::new(auth::RateLimiter::new(10, 900)),
            enrol_limiter: Arc::new(auth::RateLimiter::new(fleet_api::ENROL_RATE, 300)),
            alerts: alerts::Alerts::start(
                cfg.alerts.clone(),
                cfg.public_url.clone(),
                store.clone(),
            ),
            notify: notify::Notifier::new(
                cfg.alerts.email.clone(),
                cfg.public_url.clone(),
                store.clone(),
            ),
            store,
            metrics: metrics::ServerMetrics::new(cfg.db.clone()),
            cfg: Arc::new(cfg),
            live,
            tls,
        }
    }

    pub fn secure_cookies(&self) -> bool {
        self.tls || self.cfg.secure_cookies
    }

    /// Screens a batch (refusing bad items one by one), stores the rest with the server's
    /// receipt time, audits id conflicts and fans new anomalies out to live browsers and
    /// alert rules. The outcome says what was stored, duplicated or refused.
    pub async fn ingest(&self, batch: &IngestBatch) -> Result<IngestOutcome, IngestError> {
        if let Some(p) = ingest::batch_problem(batch) {
            return Err(IngestError::Invalid(p));
        }
        let now = crate::store::now_ns();
        let mut clean = batch.clone();
        let refused = ingest::screen(&mut clean, now, self.cfg.max_clock_skew_secs);
        let mut out = self.store.ingest(&clean, now).await?;
        if !out.duplicate {
            out.refused = refused;
        }
        for c in &out.conflicts {
            let host = out
                .new
                .iter()
                .find(|a| a.anomaly.id == c.stored_as)
                .map(|a| a.anomaly.host.as_str())
                .unwrap_or("");
            tracing::warn!(
                "anomaly id {:?} from {host:?} was already stored with other content; kept as {}",
                c.id,
                c.stored_as
            );
            self.audit(
                None,
                "ingest_id_conflict",
                &c.stored_as,
                "",
                &format!(
                    "host {host}: id {:?} already stored with other content",
                    c.id
                ),
            )
            .await;
        }
        for a in &out.new {
            self.alerts.anomaly(&a.anomaly);
            // No receivers is fine: nobody has the feed open.
            let _ = self.live.send(Arc::new(a.clone()));
        }
        Ok(out)
    }

    /// Acknowledges one anomaly; true when it was still open (then it is audited).
    pub async fn acknowledge(&self, actor: &access::Actor, ip: &str, id: &str) -> DbResult<bool> {
        let changed = self
            .store
            .ack_anomaly(id, &actor.username, crate::store::now_ns())
            .await?;
        if changed {
            self.audit(
                Some((actor.user_id, &actor.username)),
                "acknowledge",
                id,
                ip,
                "",
            )
            .await;
        }
        Ok(changed)
    }

    /// Acknowledges every open anomaly of a host; returns how many.
    pub async fn acknowledge_host(
        &self,
        actor: &access::Actor,
        ip: &str,
        host: &str,
    ) -> DbResult<usize> {
        let n = self
            .store
            .ack_host(host, &actor.username, crate::store::now_ns())
            .await?;
        let detail = format!("{n} anomalies");
        self.audit(
            Some((actor.user_id, &actor.username)),
            "acknowledge_host",
            host,
            ip,
            &detail,
        )
        .await;
        Ok(n)
    }

    /// Records an admin-audit event; a failure to record is logged, never fatal.
    pub async fn audit(
        &self,
        actor: Option<(i64, &str)>,
        action: &str,
        target: &str,
        ip: &str,
        detail: &str,
    ) {
        let (id, name) = actor.map(|(i, n)| (Some(i), n)).unwrap_or((None, ""));
        let rec = store::NewAudit {
            user_id: id,
            username: name,
            action,
            target,
            ip,
            detail,
            time_ns: crate::store::now_ns(),
        };
        if let Err(e) = self.store.audit(&rec).await {
            tracing::error!("audit log write failed ({action}): {e}");
        }
    }
}

/// A running server. Dropping it does not stop it; call `shutdown`.
pub struct ServerHandle {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: axum_server::Handle<SocketAddr>,
    task: tokio::task::JoinHandle<()>,
    /// Shared lock on the secret key file while serving (a key rotation waits for none).
    _key_lock: Option<secrets::KeyLock>,
}

impl ServerHandle {
    /// In-process ingest (`sentinel run --serve`): same path as `POST /api/ingest`.
    pub async fn ingest(&self, batch: &IngestBatch) -> Result<IngestOutcome, IngestError> {
        self.state.ingest(batch).await
    }

    /// Convenience for the agent's anomaly bus.
    pub async fn ingest_anomaly(&self, a: &Anomaly) -> Result<IngestOutcome, IngestError> {
        self.state
            .ingest(&IngestBatch {
                batch_id: format!("local-{}", a.id),
                host: Some(a.host.clone()),
                anomalies: vec![a.clone()],
                ..Default::default()
            })
            .await
    }

    pub fn store(&self) -> &Arc<dyn ServerStore> {
        &self.state.store
    }

    pub fn url(&self) -> String {
        let scheme = if self.state.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub async fn shutdown(self) {
        self.stop
            .graceful_shutdown(Some(std::time::Duration::from_secs(2)));
        let _ = self.task.await;
    }
}

pub struct Server;

impl Server {
    /// Opens the configured store (SQLite at `cfg.db`, or PostgreSQL) with the secret key file (created when missing;
    /// refused when others may read it) and starts serving. Clear TOTP secrets from before
    /// encryption are sealed first.
    pub async fn start(cfg: ServerConfig) -> Result<ServerHandle, ServerError> {
        cfg.validate().map_err(ServerError::Config)?;
        let key_path = cfg.secret_key_path();
        let (keys, lock) = secrets::load_for_server(&key_path)?;
        let (store, r) = backend::open(&cfg, Some(keys)).await?;
        if r.clear > 0 {
            // Worth more than info: copies of the database made before hold them in clear.
            tracing::warn!(
                "sealed {} clear TOTP secrets under {} (database backups made before today \
                 still hold them in clear)",
                r.clear,
                key_path.display()
            );
        }
        if r.rekeyed > 0 {
            tracing::warn!(
                "resealed {} TOTP secrets left under another key by an interrupted rotation",
                r.rekeyed
            );
        }
        if !r.unreadable.is_empty() {
            tracing::error!(
                "the two-factor secrets of {} do not open with {}: restore the key file they \
                 were sealed with, or reset their two-factor (sentinel user reset-totp)",
                r.unreadable.join(", "),
                key_path.display()
            );
        }
        let mut h = Self::start_with(cfg, store).await?;
        h._key_lock = Some(lock);
        Ok(h)
    }

    /// Starts serving over any store backend.
    pub async fn start_with(
        cfg: ServerConfig,
        store: Arc<dyn ServerStore>,
    ) -> Result<ServerHandle, ServerError> {
        let listener =
            std::net::TcpListener::bind(&cfg.listen).map_err(|source| ServerError::Bind {
                addr: cfg.listen.clone(),
                source,
            })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| ServerError::Bind {
                addr: cfg.listen.clone(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: cfg.listen.clone(),
            source,
        })?;
        if let Some(p) = cfg.transport_problem(addr) {
            return Err(ServerError::Config(p));
        }
        if !addr.ip().is_loopback() && !cfg.tls() {
            tracing::warn!(
                "serving plain HTTP on {addr} (--insecure-http): passwords and session cookies cross the network in clear"
            );
        }
        let tls_files = cfg.tls_cert.clone().zip(cfg.tls_key.clone());
        let state = AppState::new(store, cfg);
        let app = routes::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let stop = axum_server::Handle::new();
        let task = match tls_files {
            Some((cert, key)) => {
                let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                    .await
                    .map_err(|e| {
                        ServerError::Tls(format!("{} / {}: {e}", cert.display(), key.display()))
                    })?;
                let srv = axum_server::from_tcp_rustls(listener, tls)
                    .map_err(|e| ServerError::Tls(e.to_string()))?
                    .handle(stop.clone());
                tokio::spawn(async move {
                    if let Err(e) = srv.serve(app).await {
                        tracing::error!("server stopped: {e}");
                    }
                })
            }
            None => {
                let srv = axum_server::from_tcp(listener)
                    .map_err(|source| ServerError::Bind {
                        addr: addr.to_string(),
                        source,
                    })?
                    .handle(stop.clone());
                tokio::spawn(async move {
                    if let Err(e) = srv.serve(app).await {
                        tracing::error!("server stopped: {e}");
                    }
                })
            }
        };
        retention::spawn(state.clone());
        fleet_api::spawn_watch(state.clone());
        tracing::info!("dashboard listening on {addr}");
        Ok(ServerHandle {
            addr,
            state,
            stop,
            task,
            _key_lock: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ServerConfig;

    /// The `[server]` section of a TOML text, validated as at load.
    fn parse(text: &str) -> Result<ServerConfig, String> {
        #[derive(serde::Deserialize)]
        struct File {
            #[serde(default)]
            server: ServerConfig,
        }
        let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
        f.server.validate()?;
        Ok(f.server)
    }

    #[test]
    fn server_section_parses_validates_and_rejects_unknown_keys() {
        let cfg = parse(
            r#"
            [server]
            listen = "0.0.0.0:8443"
            tls_cert = "/etc/sentinel/cert.pem"
            tls_key = "/etc/sentinel/key.pem"
            retention_days = 30
            [server.alerts]
            min_level = "critical"
            webhook = "https://hooks.example.org/x"
            [server.alerts.email]
            smtp_host = "smtp.example.org"
            from = "s@example.org"
            to = ["soc@example.org"]
            "#,
        )
        .unwrap();
        assert!(cfg.tls());
        assert_eq!(cfg.alerts.email.as_ref().unwrap().smtp_port, 587);
        assert!(!cfg.demo, "demo is off by default");
        assert!(parse("[server]\nbogus = 1\n").is_err());
        assert!(parse("[server]\ntls_cert = \"/c.pem\"\n").is_err());
        assert!(parse("[server.alerts]\nslack_webhook = \"file:///etc/passwd\"\n").is_err());
    }

    #[test]
    fn the_database_and_per_table_retention_parse_and_validate() {
        let cfg = parse(
            r#"
            [server]
            database = "postgres://sentinel:pw@db.example.org/sentinel"
            retention_days = 30
            [server.retention]
            snapshots_days = 7
            "#,
        )
        .unwrap();
        let day = 86_400_000_000_000i64;
        let h = cfg.horizons(100 * day);
        assert_eq!((h.anomalies, h.snapshots), (70 * day, 93 * day));
        assert_eq!(h.hosts(), 70 * day, "hosts stay for the longest horizon");
        assert!(parse("[server]\ndatabase = \"mysql://x\"\n").is_err());
        assert!(parse("[server.retention]\nincidents_days = 0\n").is_err());
        assert!(parse("[server.retention]\nheartbeat_days = 1\n").is_err());
        assert_eq!(
            super::postgres::redact("postgres://sentinel:secret@db/sentinel"),
            "postgres://sentinel:***@db/sentinel"
        );
    }
}
