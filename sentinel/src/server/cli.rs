//! `sentinel serve` and `sentinel user ...`: start the dashboard, and manage its users from
//! the shell (the first admin is created here: there are no default credentials).

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};

use super::store::{Role, ServerStore};
use super::{Server, ServerConfig};
use super::{auth, mail, secrets};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Listen address (default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// SQLite database file (default /var/lib/sentinel/server.db).
    #[arg(long, global = true, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// PostgreSQL database instead of the SQLite file: postgres://user:password@host/dbname
    #[arg(long, global = true, value_name = "URL")]
    pub database: Option<String>,
    /// The key that seals two-factor secrets (default: the database path + ".key";
    /// created 0600 at first start).
    #[arg(long, global = true, value_name = "FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// PEM certificate chain; serve HTTPS (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Read-only demo: anonymous visitors may browse.
    #[arg(long)]
    pub demo: bool,
    /// Allow plain HTTP on a non-loopback address (refused otherwise): passwords and
    /// session cookies then cross the network in clear.
    #[arg(long)]
    pub insecure_http: bool,
    #[command(subcommand)]
    pub cmd: Option<ServeCmd>,
}

#[derive(Debug, clap::Subcommand)]
pub enum ServeCmd {
    /// Re-seal every two-factor secret under a new key (stop the server first). The
    /// database is resealed in one transaction; the new key replaces the key file only
    /// after it commits.
    RotateKey,
    /// Copy a SQLite site (every table, ids kept) into an empty PostgreSQL database, then
    /// set `[server] database` to it. The server must be stopped; the target must be empty.
    Migrate {
        /// The SQLite database file to copy.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The PostgreSQL database to fill: postgres://user:password@host/dbname
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

impl ServeArgs {
    pub fn apply(&self, mut c: ServerConfig) -> ServerConfig {
        if let Some(l) = &self.listen {
            c.listen = l.clone();
        }
        if let Some(d) = &self.db {
            c.db = d.clone();
        }
        if let Some(u) = &self.database {
            c.database = Some(u.clone());
        }
        if let Some(k) = &self.secret_key_file {
            c.secret_key_file = Some(k.clone());
        }
        if self.tls_cert.is_some() {
            c.tls_cert = self.tls_cert.clone();
            c.tls_key = self.tls_key.clone();
        }
        c.demo |= self.demo;
        c.insecure_http |= self.insecure_http;
        c
    }
}

pub async fn serve(
    config: ServerConfig,
    metrics: crate::metrics::MetricsConfig,
    args: ServeArgs,
) -> anyhow::Result<i32> {
    let cfg = args.apply(config);
    if let Some(ServeCmd::RotateKey) = args.cmd {
        return rotate_key(&cfg).await;
    }
    if let Some(ServeCmd::Migrate { from, to }) = &args.cmd {
        return super::migrate::run(from, to).await;
    }
    let (store, _) = super::backend::open(&cfg, None)
        .await
        .with_context(|| format!("opening {}", super::backend::describe(&cfg)))?;
    if store.count_admins().await? == 0 {
        let db = match &cfg.database {
            Some(_) => String::new(),
            None => format!(" --db {}", cfg.db.display()),
        };
        eprintln!(
            "sentinel: no admin yet; create one with: sentinel user add <name> --role admin{db}"
        );
    }
    drop(store);
    let handle = Server::start(cfg).await.context("starting the dashboard")?;
    eprintln!("sentinel: dashboard on {}", handle.url());
    let endpoint = match metrics.server_addr().map_err(anyhow::Error::msg)? {
        Some(addr) => {
            let mut registry = crate::metrics::registry(None);
            handle.state.metrics.register(&mut registry);
            let e = crate::metrics::http::Endpoint::start(addr, registry)
                .await
                .with_context(|| format!("metrics endpoint on {addr}"))?;
            eprintln!("sentinel: metrics on http://{}/metrics", e.addr);
            Some(e)
        }
        None => None,
    };
    // Under systemd (Type=notify): ready once the listener is bound.
    crate::service::ready(&format!("dashboard on {}", handle.url()));
    tokio::select! {
        _ = wait_for_stop() => {}
        _ = crate::service::Watchdog::from_env().run() => {}
    }
    crate::service::stopping();
    if let Some(e) = endpoint {
        e.stop().await;
    }
    handle.shutdown().await;
    Ok(crate::exit::OK)
}

/// `sentinel serve rotate-key`: settle any interrupted rotation, write the next key to
/// `<file>.new`, reseal the database under it in one transaction, then rename it over the
/// key file. Interrupted anywhere, the server still starts: it opens secrets under either
/// key and reseals them under the key file's (docs/server.md, "Secrets at rest").
async fn rotate_key(cfg: &ServerConfig) -> anyhow::Result<i32> {
    let path = cfg.secret_key_path();
    let mut rot = secrets::Rotation::begin(&path)
        .with_context(|| format!("rotating the key in {}", path.display()))?;
    let (store, settled) = super::backend::open(cfg, Some(rot.settle.clone()))
        .await
        .with_context(|| format!("opening {}", super::backend::describe(cfg)))?;
    drop(store);
    if !settled.unreadable.is_empty() {
        bail!(
            "the two-factor secrets of {} do not open with {}: restore the key they were sealed \
             with, or reset their two-factor (sentinel user reset-totp), then rotate",
            settled.unreadable.join(", "),
            path.display()
        );
    }
    let next = rot.prepare()?;
    let resealed = match super::backend::open(cfg, Some(next)).await {
        Ok((_, r)) => r,
        Err(e) => {
            // The transaction rolled back: the database is still under the old key.
            rot.abort();
            return Err(e).context("resealing the two-factor secrets (nothing changed)");
        }
    };
    let id = rot.finish()?;
    let n = resealed.rekeyed + resealed.clear;
    println!(
        "rotated: {n} two-factor secrets resealed under key {id}; {} holds the new key",
        path.display()
    );
    if let Ok((s, _)) = super::backend::open(cfg, None).await {
        let _ = s
            .audit(&super::store::NewAudit {
                user_id: None,
                username: "cli",
                action: "secret_key_rotated",
                target: "secret_key",
                ip: "local",
                detail: &format!("{n} secrets, key {id}"),
                time_ns: crate::store::now_ns(),
            })
            .await;
    }
    Ok(crate::exit::OK)
}

async fn wait_for_stop() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

#[derive(Debug, clap::Args)]
pub struct UserArgs {
    /// SQLite database file (default: the configured database).
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "database")]
    pub db: Option<PathBuf>,
    /// PostgreSQL database (default: the configured database).
    #[arg(long, global = true, value_name = "URL")]
    pub database: Option<String>,
    #[command(subcommand)]
    pub cmd: UserCmd,
}

#[derive(Debug, clap::Subcommand)]
pub enum UserCmd {
    /// Create a user (prompts for the password, or reads one line from stdin).
    Add {
        username: String,
        #[arg(long, default_value = "viewer", value_parser = ["admin", "operator", "viewer"])]
        role: String,
        #[arg(long)]
        password_stdin: bool,
        /// Address for security notices (two-factor, password and new-key changes).
        #[arg(long, value_name = "ADDRESS")]
        email: Option<String>,
    },
    /// Set the address a user's security notices go to (none given: remove it).
    SetEmail {
        username: String,
        email: Option<String>,
    },
    /// List users.
    List,
    /// Change a user's role.
    SetRole {
        username: String,
        #[arg(value_parser = ["admin", "operator", "viewer"])]
        role: String,
    },
    /// Disable a user and end their sessions.
    Disable { username: String },
    /// Re-enable a user (sign-in delays end by themselves).
    Enable { username: String },
    /// Set a new password (ends the user's sessions).
    Passwd {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Turn off a user's two-factor authentication (lost authenticator and codes).
    ResetTotp { username: String },
    /// Delete a user.
    Delete { username: String },
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let pw = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        let a = prompt_hidden("Password: ")?;
        let b = prompt_hidden("Repeat password: ")?;
        if a != b {
            bail!("the passwords differ");
        }
        a
    };
    if let Some(p) = auth::password_problem(&pw) {
        bail!("{p}");
    }
    Ok(pw)
}

/// Reads a line from the terminal with echo off.
fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    let fd = libc::STDIN_FILENO;
    // SAFETY: isatty/tcgetattr/tcsetattr only read and write the termios struct we own.
    let mut term: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::isatty(fd) } != 1 || unsafe { libc::tcgetattr(fd, &mut term) } != 0 {
        bail!("no terminal to prompt on; use --password-stdin");
    }
    let saved = term;
    term.c_lflag &= !libc::ECHO;
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &term) };
    let mut line = String::new();
    let r = std::io::stdin().lock().read_line(&mut line);
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    eprintln!();
    r.context("reading the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

async fn user_id(store: &dyn ServerStore, name: &str) -> anyhow::Result<i64> {
    Ok(store
        .user_by_name(name)
        .await?
        .with_context(|| format!("no user {name:?}"))?
        .id)
}

pub async fn user(config: ServerConfig, args: UserArgs) -> anyhow::Result<i32> {
    let mut cfg = config;
    if let Some(db) = args.db {
        cfg.db = db;
        cfg.database = None;
    }
    if let Some(url) = args.database {
        cfg.database = Some(url);
    }
    cfg.validate().map_err(|e| anyhow::anyhow!(e))?;
    let (store, _) = super::backend::open(&cfg, None)
        .await
        .with_context(|| format!("opening {}", super::backend::describe(&cfg)))?;
    let store = &*store;
    let now = crate::store::now_ns();
    let audit = |action: &'static str, target: String, detail: String| async move {
        let _ = store
            .audit(&super::store::NewAudit {
                user_id: None,
                username: "cli",
                action,
                target: &target,
                ip: "local",
                detail: &detail,
                time_ns: now,
            })
            .await;
    };
    match args.cmd {
        UserCmd::Add {
            username,
            role,
            password_stdin,
            email,
        } => {
            if let Some(p) = auth::username_problem(&username) {
                bail!("{p}");
            }
            if let Some(p) = email.as_deref().and_then(mail::address_problem) {
                bail!("{p}");
            }
            let role = Role::parse(&role).context("unknown role")?;
            let pw = read_password(password_stdin)?;
            let hash = auth::hash_password(&pw)?;
            let id = store.create_user(&username, &hash, role, now).await?;
            if let Some(e) = &email {
                store.set_email(id, Some(e)).await?;
            }
            audit("user_created", username.clone(), role.as_str().to_string()).await;
            println!("created {role} {username}");
        }
        UserCmd::SetEmail { username, email } => {
            let email = email.filter(|e| !e.trim().is_empty());
            if let Some(p) = email.as_deref().and_then(mail::address_problem) {
                bail!("{p}");
            }
            store
                .set_email(user_id(store, &username).await?, email.as_deref())
                .await?;
            audit(
                "user_email_changed",
                username.clone(),
                email.clone().unwrap_or_default(),
            )
            .await;
        }
        UserCmd::List => {
            for u in store.list_users().await? {
                println!(
                    "{}\t{}\t{}\t2fa:{}\t{}",
                    u.username,
                    u.role,
                    if u.active { "active" } else { "disabled" },
                    if u.totp_enabled { "on" } else { "off" },
                    u.email.as_deref().unwrap_or("-")
                );
            }
        }
        UserCmd::SetRole { username, role } => {
            let role = Role::parse(&role).context("unknown role")?;
            store
                .set_role(user_id(store, &username).await?, role)
                .await?;
            audit(
                "user_role_changed",
                username.clone(),
                role.as_str().to_string(),
            )
            .await;
        }
        UserCmd::Disable { username } => {
            let id = user_id(store, &username).await?;
            store.set_active(id, false).await?;
            store.delete_user_sessions(id, None).await?;
            audit("user_disabled", username.clone(), String::new()).await;
        }
        UserCmd::Enable { username } => {
            store
                .set_active(user_id(store, &username).await?, true)
                .await?;
            audit("user_enabled", username.clone(), String::new()).await;
        }
        UserCmd::Passwd {
            username,
            password_stdin,
        } => {
            let id = user_id(store, &username).await?;
            let hash = auth::hash_password(&read_password(password_stdin)?)?;
            store.set_password(id, &hash).await?;
            store.delete_user_sessions(id, None).await?;
            audit("user_password_reset", username.clone(), String::new()).await;
        }
        UserCmd::ResetTotp { username } => {
            store
                .set_totp(user_id(store, &username).await?, None)
                .await?;
            audit("user_2fa_reset", username.clone(), String::new()).await;
        }
        UserCmd::Delete { username } => {
            store.delete_user(user_id(store, &username).await?).await?;
            audit("user_deleted", username.clone(), String::new()).await;
        }
    }
    Ok(crate::exit::OK)
}
