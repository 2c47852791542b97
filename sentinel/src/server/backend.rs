//! Which store a server configuration names, opened: the SQLite file at `db` (the default),
//! or the PostgreSQL server of `database = "postgres://..."`.

use std::sync::Arc;

use super::ServerConfig;
use super::postgres::{self, PgStore};
use super::secrets::Keyring;
use super::sqlite::{Resealed, SqliteStore};
use super::store::{DbResult, ServerStore};

/// The configured database, for messages (a PostgreSQL password is hidden).
pub fn describe(cfg: &ServerConfig) -> String {
    match &cfg.database {
        Some(url) => postgres::redact(url),
        None => cfg.db.display().to_string(),
    }
}

/// Opens the configured store. With `keys`, TOTP secrets are sealed and opened, and any not
/// under the current key are resealed first (what that changed is returned); without, they
/// read as absent (the `sentinel user` commands never need them).
pub async fn open(
    cfg: &ServerConfig,
    keys: Option<Keyring>,
) -> DbResult<(Arc<dyn ServerStore>, Resealed)> {
    Ok(match (&cfg.database, keys) {
        (Some(url), Some(k)) => {
            let (s, r) = PgStore::open_sealed(url, cfg.database_pool, k).await?;
            (Arc::new(s), r)
        }
        (Some(url), None) => (
            Arc::new(PgStore::open_pool(url, cfg.database_pool).await?),
            Resealed::default(),
        ),
        (None, Some(k)) => {
            let (s, r) = SqliteStore::open_sealed(&cfg.db, k)?;
            (Arc::new(s), r)
        }
        (None, None) => (Arc::new(SqliteStore::open(&cfg.db)?), Resealed::default()),
    })
}
