//! SQLite implementation of `AccountStore`: users, recovery codes, sessions, API keys and
//! the admin audit log.

use rusqlite::{OptionalExtension, Row, params};

use super::{SqliteStore, role_of, session_context, user_context};
use crate::server::store::*;

const USER_COLS: &str = "id, username, role, active, created_ns, last_login_ns, password_hash, totp_secret, totp_enabled, failed_logins, locked_until_ns, email";

fn user_row(r: &Row) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        role: role_of(r.get(2)?)?,
        active: r.get(3)?,
        created_ns: r.get(4)?,
        last_login_ns: r.get(5)?,
        password_hash: r.get(6)?,
        totp_secret: r.get(7)?,
        totp_enabled: r.get(8)?,
        failed_logins: r.get(9)?,
        locked_until_ns: r.get(10)?,
        email: r.get(11)?,
    })
}

const SESSION_SELECT: &str = "SELECT s.id, s.user_id, u.username, u.role, u.active, s.csrf, s.mfa_pending, s.pending_totp,
    s.created_ns, s.last_seen_ns, s.ip, s.user_agent FROM sessions s JOIN users u ON u.id = s.user_id";

fn session_row(r: &Row) -> rusqlite::Result<Session> {
    Ok(Session {
        id: r.get(0)?,
        user_id: r.get(1)?,
        username: r.get(2)?,
        role: role_of(r.get(3)?)?,
        user_active: r.get(4)?,
        csrf: r.get(5)?,
        mfa_pending: r.get(6)?,
        pending_totp: r.get(7)?,
        created_ns: r.get(8)?,
        last_seen_ns: r.get(9)?,
        ip: r.get(10)?,
        user_agent: r.get(11)?,
    })
}

const KEY_SELECT: &str =
    "SELECT k.id, k.user_id, k.name, k.prefix, k.created_ns, k.last_used_ns, k.expires_ns,
    k.enabled, k.scope, k.host, u.username FROM api_keys k JOIN users u ON u.id = k.user_id";

fn key_row(r: &Row) -> rusqlite::Result<ApiKey> {
    let scope: String = r.get(8)?;
    Ok(ApiKey {
        id: r.get(0)?,
        user_id: r.get(1)?,
        name: r.get(2)?,
        prefix: r.get(3)?,
        created_ns: r.get(4)?,
        last_used_ns: r.get(5)?,
        expires_ns: r.get(6)?,
        enabled: r.get(7)?,
        scope: KeyScope::parse(&scope).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                8,
                rusqlite::types::Type::Text,
                format!("bad key scope {scope}").into(),
            )
        })?,
        host: r.get(9)?,
        owner: r.get(10)?,
    })
}

impl SqliteStore {
    /// A user as read, with the sealed TOTP secret opened (or absent; see `unseal`).
    fn opened_user(&self, mut u: User) -> User {
        u.totp_secret = self.unseal(u.totp_secret.take(), &user_context(u.id));
        u
    }

    fn opened_session(&self, mut s: Session) -> Session {
        s.pending_totp = self.unseal(s.pending_totp.take(), &session_context(s.id));
        s
    }

    fn key_with_user(
        &self,
        cond: &str,
        p: impl rusqlite::Params,
    ) -> DbResult<Option<(ApiKey, User)>> {
        let c = self.reader()?;
        let key = c
            .query_row(&format!("{KEY_SELECT} WHERE {cond}"), p, key_row)
            .optional()?;
        let Some(key) = key else { return Ok(None) };
        let user = c
            .query_row(
                &format!("SELECT {USER_COLS} FROM users WHERE id = ?1"),
                params![key.user_id],
                user_row,
            )
            .optional()?;
        drop(c);
        Ok(user.map(|u| (key, self.opened_user(u))))
    }
}

#[async_trait::async_trait]
impl AccountStore for SqliteStore {
    async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
        now_ns: i64,
    ) -> DbResult<i64> {
        self.blocking(|| {
        let c = self.db()?;
        let n = c.execute(
            "INSERT OR IGNORE INTO users (username, password_hash, role, created_ns) VALUES (?1, ?2, ?3, ?4)",
            params![username, password_hash, role.as_str(), now_ns],
        )?;
        if n == 0 {
            return Err(DbError::Conflict(format!("user {username}")));
        }
        Ok(c.last_insert_rowid())
        })
    }

    async fn user_by_name(&self, username: &str) -> DbResult<Option<User>> {
        self.blocking(|| {
            let u = self
                .reader()?
                .query_row(
                    &format!("SELECT {USER_COLS} FROM users WHERE username = ?1"),
                    params![username],
                    user_row,
                )
                .optional()?;
            Ok(u.map(|u| self.opened_user(u)))
        })
    }

    async fn user_by_id(&self, id: i64) -> DbResult<Option<User>> {
        self.blocking(|| {
            let u = self
                .reader()?
                .query_row(
                    &format!("SELECT {USER_COLS} FROM users WHERE id = ?1"),
                    params![id],
                    user_row,
                )
                .optional()?;
            Ok(u.map(|u| self.opened_user(u)))
        })
    }

    async fn list_users(&self) -> DbResult<Vec<User>> {
        self.blocking(|| {
            let rows = {
                let c = self.reader()?;
                let mut st =
                    c.prepare(&format!("SELECT {USER_COLS} FROM users ORDER BY username"))?;
                st.query_map([], user_row)?.collect::<Result<Vec<_>, _>>()?
            };
            Ok(rows.into_iter().map(|u| self.opened_user(u)).collect())
        })
    }

    async fn set_email(&self, id: i64, email: Option<&str>) -> DbResult<bool> {
        self.blocking(|| {
            let c = self.db()?;
            Ok(c.execute(
                "UPDATE users SET email = ?2 WHERE id = ?1",
                params![id, email],
            )? == 1)
        })
    }

    async fn count_admins(&self) -> DbResult<i64> {
        self.blocking(|| {
            let c = self.reader()?;
            Ok(c.query_row(
                "SELECT COUNT(*) FROM users WHERE role = 'admin' AND active = 1",
                [],
                |r| r.get(0),
            )?)
        })
    }

    async fn set_role(&self, id: i64, role: Role) -> DbResult<bool> {
        self.blocking(|| {
            let c = self.db()?;
            Ok(c.execute(
                "UPDATE users SET role = ?2 WHERE id = ?1",
                params![id, role.as_str()],
            )? == 1)
        })
    }

    async fn set_active(&self, id: i64, active: bool) -> DbResult<bool> {
        self.blocking(|| {
            let c = self.db()?;
            Ok(c.execute(
            "UPDATE users SET active = ?2, failed_logins = 0, locked_until_ns = 0 WHERE id = ?1",
            params![id, active],
        )? == 1)
        })
    }

    async fn set_password(&self, id: i64, password_hash: &str) -> DbResult<bool> {
        self.blocking(|| {
        let c = self.db()?;
        Ok(c.execute(
            "UPDATE users SET password_hash = ?2, failed_logins = 0, locked_until_ns = 0 WHERE id = ?1",
            params![id, password_hash],
        )? == 1)
        })
    }

    async fn delete_user(&self, id: i64) -> DbResult<bool> {
        self.blocking(|| {
            let c = self.db()?;
            Ok(c.execute("DELETE FROM users WHERE id = ?1", params![id])? == 1)
        })
    }

    async fn login_failed(&self, id: i64, max: i64, lock_until_ns: i64) -> DbResult<()> {
        self.blocking(|| {
        let c = self.db()?;
        c.execute(
            "UPDATE users SET locked_until_ns = CASE WHEN failed_logins + 1 >= ?2 THEN ?3 ELSE locked_until_ns END,
                failed_logins = CASE WHEN failed_logins + 1 >= ?2 THEN 0 ELSE failed_logins + 1 END
             WHERE id = ?1",
            params![id, max, lock_until_ns],
        )?;
        Ok(())
        })
    }

    async fn login_succeeded(&self, id: i64, now_ns: i64) -> DbResult<()> {
        self.blocking(|| {
        let c = self.db()?;
        c.execute(
            "UPDATE users SET failed_logins = 0, locked_until_ns = 0, last_login_ns = ?2 WHERE id = ?1",
            params![id, now_ns],
        )?;
        Ok(())
        })
    }

    async fn set_totp(&self, id: i64, secret: Option<&str>) -> DbResult<()> {
        self.blocking(|| {
        let sealed = secret
            .map(|s| self.seal(s, &user_context(id)))
            .transpose()?;
        let c = self.db()?;
        c.execute(
            "UPDATE users SET totp_secret = ?2, totp_enabled = ?3, totp_last_step = 0 WHERE id = ?1",
            params![id, sealed, secret.is_some()],
        )?;
        if secret.is_none() {
            c.execute("DELETE FROM recovery_codes WHERE user_id = ?1", params![id])?;
        }
        Ok(())
        })
    }

    async fn consume_totp_step(&self, id: i64, step: i64) -> DbResult<bool> {
        self.blocking(|| {
            let c = self.db()?;
            Ok(c.execute(
                "UPDATE users SET totp_last_step = ?2 WHERE id = ?1 AND totp_last_step < ?2",
                params![id, step],
            )? == 1)
        })
    }

    async fn set_recovery_codes(&self, id: i64, hashes: &[String]) -> DbResult<()> {
        self.blocking(|| {
            let mut c = self.db()?;
            let tx = c.transaction()?;
            tx.execute("DELETE FROM recovery_codes WHERE user_id = ?1", params![id])?;
            for h in hashes {
                tx.execute(
                    "INSERT OR IGNORE INTO recovery_codes (user_id, code_hash) VALUES (?1, ?2)",
                    params![id, h],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    async fn use_recovery_code(&self, id: i64, hash: &str) -> DbResult<bool> {
        self.blocking(|| {
            let c = self.db()?;
            Ok(c.execute(
                "DELETE FROM recovery_codes WHERE user_id = ?1 AND code_hash = ?2",
                params![id, hash],
            )? == 1)
        })
    }

    async fn recovery_codes_left(&self, id: i64) -> DbResult<i64> {
        self.blocking(|| {
            let c = self.reader()?;
            Ok(c.query_row(
                "SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?1",
                params![id],
                |r| r.get(0),
            )?)
        })
    }

    async fn login_ips(&self, id: i64) -> DbResult<Vec<String>> {
        self.blocking(|| {
            let c = self.reader()?;
            let mut st = c.prepare("SELECT ip FROM login_ips WHERE user_id = ?1")?;
            Ok(st
                .query_map(params![id], |r| r.get(0))?
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn create_session(&self, s: &NewSession) -> DbResult<i64> {
        self.blocking(|| {
        let c = self.db()?;
        c.execute(
            "INSERT INTO sessions (token_hash, user_id, csrf, mfa_pending, created_ns, last_seen_ns, ip, user_agent)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7)",
            params![s.token_hash, s.user_id, s.csrf, s.mfa_pending, s.now_ns, s.ip, s.user_agent],
        )?;
        let id = c.last_insert_rowid();
        if !s.mfa_pending {
            c.execute(
                "INSERT OR IGNORE INTO login_ips (user_id, ip, first_ns) VALUES (?1, ?2, ?3)",
                params![s.user_id, s.ip, s.now_ns],
            )?;
        }
        Ok(id)
        })
    }

    async fn session_by_token_hash(&self, token_hash: &str) -> DbResult<Option<Session>> {
        self.blocking(|| {
            let s = self
                .reader()?
                .query_row(
                    &format!("{SESSION_SELECT} WHERE s.token_hash = ?1"),
                    params![token_hash],
                    session_row,
                )
                .optional()?;
            Ok(s.map(|s| self.opened_session(s)))
        })
    }

    async fn touch_session(&self, id: i64, now_ns: i64) -> DbResult<()> {
        self.blocking(|| {
            let c = self.db()?;
            c.execute(
                "UPDATE sessions SET last_seen_ns = ?2 WHERE id = ?1",
                params![id, now_ns],
            )?;
            Ok(())
        })
    }

    async fn complete_mfa(&self, id: i64) -> DbResult<()> {
        self.blocking(|| {
            let c = self.db()?;
            c.execute(
                "UPDATE sessions SET mfa_pending = 0 WHERE id = ?1",
                params![id],
            )?;
            c.execute(
                "INSERT OR IGNORE INTO login_ips (user_id, ip, first_ns)
             SELECT user_id, ip, last_seen_ns FROM sessions WHERE id = ?1",
                params![id],
            )?;
            Ok(())
        })
    }

    async fn set_pending_totp(&self, id: i64, secret: Option<&str>) -> DbResult<()> {
        self.blocking(|| {
            let sealed = secret
                .map(|s| self.seal(s, &session_context(id)))
                .transpose()?;
            let c = self.db()?;
            c.execute(
                "UPDATE sessions SET pending_totp = ?2 WHERE id = ?1",
                params![id, sealed],
            )?;
            Ok(())
        })
    }

    async fn delete_session(&self, id: i64) -> DbResult<bool> {
        self.blocking(|| {
            let c = self.db()?;
            Ok(c.execute("DELETE FROM sessions WHERE id = ?1", params![id])? == 1)
        })
    }

    async fn delete_user_sessions(&self, user_id: i64, keep: Option<i64>) -> DbResult<usize> {
        self.blocking(|| {
            let c = self.db()?;
            Ok(c.execute(
                "DELETE FROM sessions WHERE user_id = ?1 AND id != ?2",
                params![user_id, keep.unwrap_or(-1)],
            )?)
        })
    }

    async fn list_sessions(&self, user_id: Option<i64>) -> DbResult<Vec<Session>> {
        self.blocking(|| {
        let rows = {
            let c = self.reader()?;
            let mut st = c.prepare(&format!(
                "{SESSION_SELECT} WHERE s.mfa_pending = 0 AND (?1 IS NULL OR s.user_id = ?1) ORDER BY s.last_seen_ns DESC"
            ))?;
            st.query_map(params![user_id], session_row)?
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(rows.into_iter().map(|s| self.opened_session(s)).collect())
        })
    }

    async fn session_by_id(&self, id: i64) -> DbResult<Option<Session>> {
        self.blocking(|| {
            let s = self
                .reader()?
                .query_row(
                    &format!("{SESSION_SELECT} WHERE s.id = ?1"),
                    params![id],
                    session_row,
                )
                .optional()?;
            Ok(s.map(|s| self.opened_session(s)))
        })
    }

    async fn create_api_key(&self, k: &NewApiKey<'_>) -> DbResult<i64> {
        self.blocking(|| {
        let c = self.db()?;
        c.execute(
            "INSERT INTO api_keys (user_id, name, prefix, key_hash, created_ns, expires_ns, scope, host)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                k.user_id,
                k.name,
                k.prefix,
                k.key_hash,
                k.now_ns,
                k.expires_ns,
                k.scope.as_str(),
                k.host
            ],
        )?;
        Ok(c.last_insert_rowid())
        })
    }

    async fn list_api_keys(&self, user_id: i64) -> DbResult<Vec<ApiKey>> {
        self.blocking(|| {
            let c = self.reader()?;
            let mut st = c.prepare(&format!(
                "{KEY_SELECT} WHERE k.user_id = ?1 ORDER BY k.created_ns, k.id"
            ))?;
            Ok(st
                .query_map(params![user_id], key_row)?
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn list_all_api_keys(&self) -> DbResult<Vec<ApiKey>> {
        self.blocking(|| {
            let c = self.reader()?;
            let mut st = c.prepare(&format!(
                "{KEY_SELECT} ORDER BY u.username, k.created_ns, k.id"
            ))?;
            Ok(st.query_map([], key_row)?.collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn delete_any_api_key(&self, id: i64) -> DbResult<Option<ApiKey>> {
        self.blocking(|| {
            let c = self.db()?;
            let k = c
                .query_row(
                    &format!("{KEY_SELECT} WHERE k.id = ?1"),
                    params![id],
                    key_row,
                )
                .optional()?;
            if k.is_some() {
                c.execute("DELETE FROM api_keys WHERE id = ?1", params![id])?;
            }
            Ok(k)
        })
    }

    async fn bind_api_key_host(&self, id: i64, host: &str) -> DbResult<Option<String>> {
        self.blocking(|| {
            let c = self.db()?;
            c.execute(
                "UPDATE api_keys SET host = ?2 WHERE id = ?1 AND host IS NULL AND scope = 'ingest'",
                params![id, host],
            )?;
            Ok(c.query_row(
                "SELECT host FROM api_keys WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
        })
    }

    async fn api_key_by_id(&self, id: i64) -> DbResult<Option<(ApiKey, User)>> {
        self.blocking(|| self.key_with_user("k.id = ?1", params![id]))
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> DbResult<Option<(ApiKey, User)>> {
        self.blocking(|| self.key_with_user("k.key_hash = ?1", params![key_hash]))
    }

    async fn set_api_key_enabled(&self, user_id: i64, id: i64, enabled: bool) -> DbResult<bool> {
        self.blocking(|| {
            let c = self.db()?;
            Ok(c.execute(
                "UPDATE api_keys SET enabled = ?3 WHERE id = ?2 AND user_id = ?1",
                params![user_id, id, enabled],
            )? == 1)
        })
    }

    async fn delete_api_key(&self, user_id: i64, id: i64) -> DbResult<bool> {
        self.blocking(|| {
            let c = self.db()?;
            Ok(c.execute(
                "DELETE FROM api_keys WHERE id = ?2 AND user_id = ?1",
                params![user_id, id],
            )? == 1)
        })
    }

    async fn touch_api_key(&self, id: i64, now_ns: i64) -> DbResult<()> {
        self.blocking(|| {
            let c = self.db()?;
            c.execute(
                "UPDATE api_keys SET last_used_ns = ?2 WHERE id = ?1",
                params![id, now_ns],
            )?;
            Ok(())
        })
    }

    async fn audit(&self, e: &NewAudit<'_>) -> DbResult<()> {
        self.blocking(|| {
        let c = self.db()?;
        c.execute(
            "INSERT INTO audit_log (time_ns, user_id, username, action, target, ip, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![e.time_ns, e.user_id, e.username, e.action, e.target, e.ip, e.detail],
        )?;
        Ok(())
        })
    }

    async fn list_audit(&self, f: &AuditFilter) -> DbResult<Vec<AuditEntry>> {
        self.blocking(|| {
        let c = self.reader()?;
        let mut st = c.prepare(
            "SELECT id, time_ns, user_id, username, action, target, ip, detail FROM audit_log
             WHERE (?1 IS NULL OR username = ?1) AND (?2 IS NULL OR action = ?2) AND (?3 IS NULL OR time_ns >= ?3)
             ORDER BY time_ns DESC, id DESC LIMIT ?4",
        )?;
        let limit = f.limit.unwrap_or(200).min(1000) as i64;
        let rows = st.query_map(
            params![
                f.user.as_deref().filter(|s| !s.is_empty()),
                f.action.as_deref().filter(|s| !s.is_empty()),
                f.since_ns,
                limit
            ],
            |r| {
                Ok(AuditEntry {
                    id: r.get(0)?,
                    time_ns: r.get(1)?,
                    user_id: r.get(2)?,
                    username: r.get(3)?,
                    action: r.get(4)?,
                    target: r.get(5)?,
                    ip: r.get(6)?,
                    detail: r.get(7)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }
}
