//! `reseal` for the PostgreSQL store: every TOTP secret not under the current key is brought
//! under it in one transaction (as sqlite/sealed.rs).

use super::PgStore;
use crate::server::secrets;
use crate::server::sqlite::{Resealed, session_context, user_context};
use crate::server::store::DbResult;

impl PgStore {
    pub async fn reseal(&self) -> DbResult<Resealed> {
        let keys = self.keys()?.clone();
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let mut out = Resealed::default();
        let rows = tx
            .query(
                "SELECT id, username, totp_secret FROM users WHERE totp_secret IS NOT NULL
                 ORDER BY id FOR UPDATE",
                &[],
            )
            .await?;
        for r in &rows {
            let (id, name, stored): (i64, String, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            let ctx = user_context(id);
            let plain = if !secrets::is_sealed(&stored) {
                out.clear += 1;
                stored
            } else if keys.is_current(&stored) {
                continue;
            } else {
                match keys.open(&stored, &ctx) {
                    Ok(p) => {
                        out.rekeyed += 1;
                        p
                    }
                    Err(_) => {
                        out.unreadable.push(name);
                        continue;
                    }
                }
            };
            tx.execute(
                "UPDATE users SET totp_secret = $2 WHERE id = $1",
                &[&id, &keys.seal(&plain, &ctx)?],
            )
            .await?;
        }
        let pending = tx
            .query(
                "SELECT id, pending_totp FROM sessions WHERE pending_totp IS NOT NULL FOR UPDATE",
                &[],
            )
            .await?;
        for r in &pending {
            let (id, stored): (i64, String) = (r.try_get(0)?, r.try_get(1)?);
            let ctx = session_context(id);
            let plain = if !secrets::is_sealed(&stored) {
                Some(stored)
            } else if keys.is_current(&stored) {
                continue;
            } else {
                keys.open(&stored, &ctx).ok()
            };
            let sealed = plain.map(|p| keys.seal(&p, &ctx)).transpose()?;
            tx.execute(
                "UPDATE sessions SET pending_totp = $2 WHERE id = $1",
                &[&id, &sealed],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(out)
    }
}
