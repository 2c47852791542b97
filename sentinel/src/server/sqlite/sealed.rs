//! Sealed TOTP secrets in the SQLite store: which row a sealed value is bound to, and
//! `reseal`, which brings every secret under the current key in one transaction (clear ones
//! from before encryption at start, and all of them for `sentinel serve rotate-key`).

use super::SqliteStore;
use crate::server::secrets;
use crate::server::store::DbResult;

/// What a user's sealed TOTP secret is bound to (a sealed value copied to another row does
/// not open there).
pub(crate) fn user_context(id: i64) -> String {
    format!("users.totp_secret:{id}")
}

pub(crate) fn session_context(id: i64) -> String {
    format!("sessions.pending_totp:{id}")
}

/// What `reseal` changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resealed {
    /// Clear secrets from before encryption, now sealed.
    pub clear: usize,
    /// Secrets sealed under another loaded key, now under the current one.
    pub rekeyed: usize,
    /// Users whose secret opens with no loaded key (left as they are: they cannot finish a
    /// two-factor sign-in until the right key is back or an admin resets their two-factor).
    pub unreadable: Vec<String>,
}

impl SqliteStore {
    /// Reseals every TOTP secret (users' and sessions' pending ones) that is not under the
    /// current key, in one transaction: at start (migrating clear secrets) and for
    /// `sentinel serve rotate-key`.
    pub fn reseal(&self) -> DbResult<Resealed> {
        let keys = self.keys()?.clone();
        let mut c = self.db()?;
        let tx = c.transaction()?;
        let mut out = Resealed::default();
        let rows: Vec<(i64, String, String)> = tx
            .prepare("SELECT id, username, totp_secret FROM users WHERE totp_secret IS NOT NULL ORDER BY id")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        for (id, name, stored) in rows {
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
                "UPDATE users SET totp_secret = ?2 WHERE id = ?1",
                rusqlite::params![id, keys.seal(&plain, &ctx)?],
            )?;
        }
        // Pending enrolments are short-lived: reseal them, or drop one that does not open.
        let pending: Vec<(i64, String)> = tx
            .prepare("SELECT id, pending_totp FROM sessions WHERE pending_totp IS NOT NULL")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (id, stored) in pending {
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
                "UPDATE sessions SET pending_totp = ?2 WHERE id = ?1",
                rusqlite::params![id, sealed],
            )?;
        }
        tx.commit()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::secrets::Keyring;
    use crate::server::store::{AccountStore, Role};

    const CLEAR: &str = "JBSWY3DPEHPK3PXPJBSWY3DP";

    fn raw_secret(s: &SqliteStore, id: i64) -> Option<String> {
        s.db()
            .unwrap()
            .query_row("SELECT totp_secret FROM users WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap()
    }

    #[tokio::test]
    async fn clear_secrets_are_sealed_and_interrupted_rotations_settle() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("server.db");
        // A database from before encryption: the secret in clear.
        let id = {
            let s = SqliteStore::open(&p).unwrap();
            let id = s.create_user("olga", "h", Role::Viewer, 0).await.unwrap();
            s.db()
                .unwrap()
                .execute(
                    "UPDATE users SET totp_secret = ?2, totp_enabled = 1 WHERE id = ?1",
                    rusqlite::params![id, CLEAR],
                )
                .unwrap();
            // Without a key nothing is read as a secret and none can be set.
            assert_eq!(s.user_by_id(id).await.unwrap().unwrap().totp_secret, None);
            assert!(s.set_totp(id, Some(CLEAR)).await.is_err());
            id
        };
        let old = [1u8; 32];
        let new = [2u8; 32];
        let (s, r) = SqliteStore::open_sealed(&p, Keyring::new(&old, &[])).unwrap();
        assert_eq!((r.clear, r.rekeyed), (1, 0));
        let stored = raw_secret(&s, id).unwrap();
        assert!(
            secrets::is_sealed(&stored) && !stored.contains(CLEAR),
            "{stored}"
        );
        assert_eq!(
            s.user_by_id(id)
                .await
                .unwrap()
                .unwrap()
                .totp_secret
                .as_deref(),
            Some(CLEAR)
        );
        drop(s);
        // Rotation committed under the new key, but the key file was not swapped yet: the
        // server (old key current, `.new` loaded too) reseals back under the old key.
        let (s, r) = SqliteStore::open_sealed(&p, Keyring::new(&new, &[old])).unwrap();
        assert_eq!(r.rekeyed, 1);
        drop(s);
        let (s, r) = SqliteStore::open_sealed(&p, Keyring::new(&old, &[new])).unwrap();
        assert_eq!(r.rekeyed, 1);
        assert_eq!(
            s.user_by_id(id)
                .await
                .unwrap()
                .unwrap()
                .totp_secret
                .as_deref(),
            Some(CLEAR)
        );
        // A sealed value copied onto another user's row does not open there.
        let other = s
            .create_user("mallory", "h", Role::Viewer, 0)
            .await
            .unwrap();
        s.db()
            .unwrap()
            .execute(
                "UPDATE users SET totp_secret = ?2, totp_enabled = 1 WHERE id = ?1",
                rusqlite::params![other, stored],
            )
            .unwrap();
        assert_eq!(
            s.user_by_id(other).await.unwrap().unwrap().totp_secret,
            None
        );
        let before = raw_secret(&s, id);
        drop(s);
        // The wrong key opens nothing, changes nothing and names whom it affects.
        let (s, r) = SqliteStore::open_sealed(&p, Keyring::new(&[3; 32], &[])).unwrap();
        assert_eq!(r.unreadable, ["olga", "mallory"]);
        assert_eq!(s.user_by_id(id).await.unwrap().unwrap().totp_secret, None);
        assert_eq!(raw_secret(&s, id), before);
    }
}
