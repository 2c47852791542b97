//! `sentinel host ...` on the server: enrolment tokens (`token`, `tokens`, `revoke-token`),
//! the agents' states (`list`) and retirement (`retire`), written to the admin audit log as
//! user `cli`, like `sentinel user`.

use std::path::PathBuf;

use anyhow::{Context, bail};

use super::ServerConfig;
use super::fleet_api::{TokenSpec, create_token};
use super::store::NewAudit;

#[derive(Debug, clap::Args)]
pub struct HostArgs {
    /// SQLite database file (default: the configured database).
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "database")]
    pub db: Option<PathBuf>,
    /// PostgreSQL database (default: the configured database).
    #[arg(long, global = true, value_name = "URL")]
    pub database: Option<String>,
    #[command(subcommand)]
    pub cmd: HostCmd,
}

#[derive(Debug, clap::Subcommand)]
pub enum HostCmd {
    /// Create an enrolment token (printed once) for `sentinel enroll URL --token T`.
    Token {
        /// How long it stays valid (e.g. 30m, 1d; at most 365 days).
        #[arg(long, default_value = "1d", value_parser = crate::timefmt::parse_duration)]
        expires: std::time::Duration,
        /// How many hosts may enrol with it.
        #[arg(long, default_value_t = 1)]
        uses: i64,
        /// A note shown in the token list.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// List enrolment tokens (never their secrets).
    Tokens,
    /// Revoke an enrolment token by id.
    RevokeToken { id: i64 },
    /// List agents: state, last heartbeat, enrolment.
    List,
    /// Retire a host: its keys are revoked and it cannot enrol again.
    Retire { host: String },
}

pub async fn host(config: ServerConfig, args: HostArgs) -> anyhow::Result<i32> {
    let mut cfg = config;
    if let Some(db) = args.db {
        cfg.db = db;
        cfg.database = None;
    }
    if let Some(url) = args.database {
        cfg.database = Some(url);
    }
    let (store, _) = super::backend::open(&cfg, None)
        .await
        .with_context(|| format!("opening {}", super::backend::describe(&cfg)))?;
    let store = &*store;
    let now = crate::store::now_ns();
    let audit = async |action: &str, target: &str, detail: &str| {
        let _ = store
            .audit(&NewAudit {
                user_id: None,
                username: "cli",
                action,
                target,
                ip: "local",
                detail,
                time_ns: now,
            })
            .await;
    };
    let time = |ns: Option<i64>| ns.map(super::web::fmt_time).unwrap_or_else(|| "-".into());
    match args.cmd {
        HostCmd::Token {
            expires,
            uses,
            note,
        } => {
            let (secret, id, t) = create_token(
                store,
                &TokenSpec {
                    expires_secs: Some(expires.as_secs()),
                    uses,
                    note: &note,
                    created_by: "cli",
                },
                now,
            )
            .await
            .map_err(anyhow::Error::msg)?;
            audit(
                "enrol_token_created",
                &t.prefix,
                &format!("id {id}, {uses} uses, expires in {} s", expires.as_secs()),
            )
            .await;
            println!("{secret}");
            eprintln!(
                "enrolment token {id}: {uses} uses, expires {} (shown once; on each host: sentinel enroll URL --token {secret})",
                time(t.expires_ns)
            );
        }
        HostCmd::Tokens => {
            for t in store.list_enrol_tokens().await? {
                println!(
                    "{}\t{}…\t{}/{} uses\texpires {}\t{}\t{}",
                    t.id,
                    t.prefix,
                    t.uses,
                    t.max_uses,
                    time(t.expires_ns),
                    t.state(now),
                    t.note
                );
            }
        }
        HostCmd::RevokeToken { id } => {
            if !store.revoke_enrol_token(id, now).await? {
                bail!("no usable enrolment token {id}");
            }
            audit("enrol_token_revoked", &id.to_string(), "").await;
        }
        HostCmd::List => {
            for a in store.list_agents().await? {
                println!(
                    "{}\t{}\tlast heartbeat {}\tenrolled {}\t{}",
                    a.host,
                    a.state,
                    time(a.last_heartbeat_ns),
                    time(a.enrolled_ns),
                    a.reason
                );
            }
        }
        HostCmd::Retire { host } => {
            let Some(r) = store.retire_host(&host, now).await? else {
                bail!("no host {host:?} on this server");
            };
            audit(
                "host_retired",
                &host,
                &format!("{} ingest keys revoked", r.revoked_keys),
            )
            .await;
            println!("retired {host}: {} keys revoked", r.revoked_keys);
        }
    }
    Ok(crate::exit::OK)
}
