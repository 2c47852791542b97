//! PostgreSQL implementation of `AccountStore` (same semantics as sqlite/accounts.rs).

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{PgStore, role_of};
use crate::server::sqlite::{session_context, user_context};
use crate::server::store::*;

const USER_COLS: &str = "id, username, role, active, created_ns, last_login_ns, password_hash, totp_secret, totp_enabled, failed_logins, locked_until_ns, email";

fn user_row(r: &Row) -> DbResult<User> {
    Ok(User {
        id: r.try_get(0)?,
        username: r.try_get(1)?,
        role: role_of(r.try_get(2)?)?,
        active: r.try_get(3)?,
        created_ns: r.try_get(4)?,
        last_login_ns: r.try_get(5)?,
        password_hash: r.try_get(6)?,
        totp_secret: r.try_get(7)?,
        totp_enabled: r.try_get(8)?,
        failed_logins: r.try_get(9)?,
        locked_until_ns: r.try_get(10)?,
        email: r.try_get(11)?,
    })
}

const SESSION_SELECT: &str = "SELECT s.id, s.user_id, u.username, u.role, u.active, s.csrf, s.mfa_pending, s.pending_totp,
    s.created_ns, s.last_seen_ns, s.ip, s.user_agent FROM sessions s JOIN users u ON u.id = s.user_id";

fn session_row(r: &Row) -> DbResult<Session> {
    Ok(Session {
        id: r.try_get(0)?,
        user_id: r.try_get(1)?,
        username: r.try_get(2)?,
        role: role_of(r.try_get(3)?)?,
        user_active: r.try_get(4)?,
        csrf: r.try_get(5)?,
        mfa_pending: r.try_get(6)?,
        pending_totp: r.try_get(7)?,
        created_ns: r.try_get(8)?,
        last_seen_ns: r.try_get(9)?,
        ip: r.try_get(10)?,
        user_agent: r.try_get(11)?,
    })
}

const KEY_SELECT: &str =
    "SELECT k.id, k.user_id, k.name, k.prefix, k.created_ns, k.last_used_ns, k.expires_ns,
    k.enabled, k.scope, k.host, u.username FROM api_keys k JOIN users u ON u.id = k.user_id";

fn key_row(r: &Row) -> DbResult<ApiKey> {
    let scope: String = r.try_get(8)?;
    Ok(ApiKey {
        id: r.try_get(0)?,
        user_id: r.try_get(1)?,
        name: r.try_get(2)?,
        prefix: r.try_get(3)?,
        created_ns: r.try_get(4)?,
        last_used_ns: r.try_get(5)?,
        expires_ns: r.try_get(6)?,
        enabled: r.try_get(7)?,
        scope: KeyScope::parse(&scope)
            .ok_or_else(|| DbError::Corrupt(format!("bad key scope {scope}")))?,
        host: r.try_get(9)?,
        owner: r.try_get(10)?,
    })
}

impl PgStore {
    fn opened_user(&self, mut u: User) -> User {
        u.totp_secret = self.unseal(u.totp_secret.take(), &user_context(u.id));
        u
    }

    fn opened_session(&self, mut s: Session) -> Session {
        s.pending_totp = self.unseal(s.pending_totp.take(), &session_context(s.id));
        s
    }

    async fn one_user(&self, cond: &str, p: &(dyn ToSql + Sync)) -> DbResult<Option<User>> {
        let c = self.conn().await?;
        let r = c
            .query_opt(&format!("SELECT {USER_COLS} FROM users WHERE {cond}"), &[p])
            .await?;
        Ok(r.map(|r| user_row(&r))
            .transpose()?
            .map(|u| self.opened_user(u)))
    }

    async fn one_session(&self, cond: &str, p: &(dyn ToSql + Sync)) -> DbResult<Option<Session>> {
        let c = self.conn().await?;
        // Every signed-in request looks its session up: prepared once per connection.
        let st = c
            .prepare_cached(&format!("{SESSION_SELECT} WHERE {cond}"))
            .await?;
        let r = c.query_opt(&st, &[p]).await?;
        Ok(r.map(|r| session_row(&r))
            .transpose()?
            .map(|s| self.opened_session(s)))
    }

    async fn key_with_user(
        &self,
        cond: &str,
        p: &(dyn ToSql + Sync),
    ) -> DbResult<Option<(ApiKey, User)>> {
        let c = self.conn().await?;
        // Every agent request looks its key up: prepared once per connection.
        let st = c
            .prepare_cached(&format!("{KEY_SELECT} WHERE {cond}"))
            .await?;
        let Some(k) = c.query_opt(&st, &[p]).await? else {
            return Ok(None);
        };
        let key = key_row(&k)?;
        let owner = c
            .prepare_cached(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"))
            .await?;
        let u = c.query_opt(&owner, &[&key.user_id]).await?;
        Ok(match u {
            Some(u) => Some((key, self.opened_user(user_row(&u)?))),
            None => None,
        })
    }

    /// Runs one statement; the number of rows it changed.
    async fn exec(&self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> DbResult<u64> {
        let c = self.conn().await?;
        let st = c.prepare_cached(sql).await?;
        Ok(c.execute(&st, p).await?)
    }
}

#[async_trait::async_trait]
impl AccountStore for PgStore {
    async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
        now_ns: i64,
    ) -> DbResult<i64> {
        let c = self.conn().await?;
        let r = c
            .query_opt(
                "INSERT INTO users (username, password_hash, role, created_ns) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (username) DO NOTHING RETURNING id",
                &[&username, &password_hash, &role.as_str(), &now_ns],
            )
            .await?;
        match r {
            Some(r) => Ok(r.try_get(0)?),
            None => Err(DbError::Conflict(format!("user {username}"))),
        }
    }

    async fn user_by_name(&self, username: &str) -> DbResult<Option<User>> {
        self.one_user("username = $1", &username).await
    }

    async fn user_by_id(&self, id: i64) -> DbResult<Option<User>> {
        self.one_user("id = $1", &id).await
    }

    async fn list_users(&self) -> DbResult<Vec<User>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!("SELECT {USER_COLS} FROM users ORDER BY username"),
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| Ok(self.opened_user(user_row(r)?)))
            .collect()
    }

    async fn count_admins(&self) -> DbResult<i64> {
        let c = self.conn().await?;
        Ok(c.query_one(
            "SELECT COUNT(*) FROM users WHERE role = 'admin' AND active",
            &[],
        )
        .await?
        .try_get(0)?)
    }

    async fn set_role(&self, id: i64, role: Role) -> DbResult<bool> {
        Ok(self
            .exec(
                "UPDATE users SET role = $2 WHERE id = $1",
                &[&id, &role.as_str()],
            )
            .await?
            == 1)
    }

    async fn set_active(&self, id: i64, active: bool) -> DbResult<bool> {
        Ok(self
            .exec(
                "UPDATE users SET active = $2, failed_logins = 0, locked_until_ns = 0 WHERE id = $1",
                &[&id, &active],
            )
            .await?
            == 1)
    }

    async fn set_password(&self, id: i64, password_hash: &str) -> DbResult<bool> {
        Ok(self
            .exec(
                "UPDATE users SET password_hash = $2, failed_logins = 0, locked_until_ns = 0 WHERE id = $1",
                &[&id, &password_hash],
            )
            .await?
            == 1)
    }

    async fn delete_user(&self, id: i64) -> DbResult<bool> {
        Ok(self.exec("DELETE FROM users WHERE id = $1", &[&id]).await? == 1)
    }

    async fn login_failed(&self, id: i64, max: i64, lock_until_ns: i64) -> DbResult<()> {
        // One statement: concurrent failures each count (the row lock serialises them).
        self.exec(
            "UPDATE users SET locked_until_ns = CASE WHEN failed_logins + 1 >= $2 THEN $3 ELSE locked_until_ns END,
                failed_logins = CASE WHEN failed_logins + 1 >= $2 THEN 0 ELSE failed_logins + 1 END
             WHERE id = $1",
            &[&id, &max, &lock_until_ns],
        )
        .await?;
        Ok(())
    }

    async fn login_succeeded(&self, id: i64, now_ns: i64) -> DbResult<()> {
        self.exec(
            "UPDATE users SET failed_logins = 0, locked_until_ns = 0, last_login_ns = $2 WHERE id = $1",
            &[&id, &now_ns],
        )
        .await?;
        Ok(())
    }

    async fn set_email(&self, id: i64, email: Option<&str>) -> DbResult<bool> {
        Ok(self
            .exec("UPDATE users SET email = $2 WHERE id = $1", &[&id, &email])
            .await?
            == 1)
    }

    async fn set_totp(&self, id: i64, secret: Option<&str>) -> DbResult<()> {
        let sealed = secret
            .map(|s| self.seal(s, &user_context(id)))
            .transpose()?;
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "UPDATE users SET totp_secret = $2, totp_enabled = $3, totp_last_step = 0 WHERE id = $1",
            &[&id, &sealed, &secret.is_some()],
        )
        .await?;
        if secret.is_none() {
            tx.execute("DELETE FROM recovery_codes WHERE user_id = $1", &[&id])
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn consume_totp_step(&self, id: i64, step: i64) -> DbResult<bool> {
        Ok(self
            .exec(
                "UPDATE users SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2",
                &[&id, &step],
            )
            .await?
            == 1)
    }

    async fn set_recovery_codes(&self, id: i64, hashes: &[String]) -> DbResult<()> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        tx.execute("DELETE FROM recovery_codes WHERE user_id = $1", &[&id])
            .await?;
        for h in hashes {
            tx.execute(
                "INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&id, h],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn use_recovery_code(&self, id: i64, hash: &str) -> DbResult<bool> {
        Ok(self
            .exec(
                "DELETE FROM recovery_codes WHERE user_id = $1 AND code_hash = $2",
                &[&id, &hash],
            )
            .await?
            == 1)
    }

    async fn recovery_codes_left(&self, id: i64) -> DbResult<i64> {
        let c = self.conn().await?;
        Ok(c.query_one(
            "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1",
            &[&id],
        )
        .await?
        .try_get(0)?)
    }

    async fn login_ips(&self, id: i64) -> DbResult<Vec<String>> {
        let c = self.conn().await?;
        let rows = c
            .query("SELECT ip FROM login_ips WHERE user_id = $1", &[&id])
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    async fn create_session(&self, s: &NewSession) -> DbResult<i64> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO sessions (token_hash, user_id, csrf, mfa_pending, created_ns, last_seen_ns, ip, user_agent)
                 VALUES ($1, $2, $3, $4, $5, $5, $6, $7) RETURNING id",
                &[&s.token_hash, &s.user_id, &s.csrf, &s.mfa_pending, &s.now_ns, &s.ip, &s.user_agent],
            )
            .await?
            .try_get(0)?;
        if !s.mfa_pending {
            tx.execute(
                "INSERT INTO login_ips (user_id, ip, first_ns) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&s.user_id, &s.ip, &s.now_ns],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    async fn session_by_token_hash(&self, token_hash: &str) -> DbResult<Option<Session>> {
        self.one_session("s.token_hash = $1", &token_hash).await
    }

    async fn touch_session(&self, id: i64, now_ns: i64) -> DbResult<()> {
        self.exec(
            "UPDATE sessions SET last_seen_ns = $2 WHERE id = $1",
            &[&id, &now_ns],
        )
        .await?;
        Ok(())
    }

    async fn complete_mfa(&self, id: i64) -> DbResult<()> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "UPDATE sessions SET mfa_pending = FALSE WHERE id = $1",
            &[&id],
        )
        .await?;
        tx.execute(
            "INSERT INTO login_ips (user_id, ip, first_ns)
             SELECT user_id, ip, last_seen_ns FROM sessions WHERE id = $1 ON CONFLICT DO NOTHING",
            &[&id],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_pending_totp(&self, id: i64, secret: Option<&str>) -> DbResult<()> {
        let sealed = secret
            .map(|s| self.seal(s, &session_context(id)))
            .transpose()?;
        self.exec(
            "UPDATE sessions SET pending_totp = $2 WHERE id = $1",
            &[&id, &sealed],
        )
        .await?;
        Ok(())
    }

    async fn delete_session(&self, id: i64) -> DbResult<bool> {
        Ok(self
            .exec("DELETE FROM sessions WHERE id = $1", &[&id])
            .await?
            == 1)
    }

    async fn delete_user_sessions(&self, user_id: i64, keep: Option<i64>) -> DbResult<usize> {
        Ok(self
            .exec(
                "DELETE FROM sessions WHERE user_id = $1 AND id != $2",
                &[&user_id, &keep.unwrap_or(-1)],
            )
            .await? as usize)
    }

    async fn list_sessions(&self, user_id: Option<i64>) -> DbResult<Vec<Session>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!(
                    "{SESSION_SELECT} WHERE NOT s.mfa_pending AND ($1::BIGINT IS NULL OR s.user_id = $1)
                     ORDER BY s.last_seen_ns DESC"
                ),
                &[&user_id],
            )
            .await?;
        rows.iter()
            .map(|r| Ok(self.opened_session(session_row(r)?)))
            .collect()
    }

    async fn session_by_id(&self, id: i64) -> DbResult<Option<Session>> {
        self.one_session("s.id = $1", &id).await
    }

    async fn create_api_key(&self, k: &NewApiKey<'_>) -> DbResult<i64> {
        let c = self.conn().await?;
        Ok(c.query_one(
            "INSERT INTO api_keys (user_id, name, prefix, key_hash, created_ns, expires_ns, scope, host)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            &[
                &k.user_id,
                &k.name,
                &k.prefix,
                &k.key_hash,
                &k.now_ns,
                &k.expires_ns,
                &k.scope.as_str(),
                &k.host,
            ],
        )
        .await?
        .try_get(0)?)
    }

    async fn list_api_keys(&self, user_id: i64) -> DbResult<Vec<ApiKey>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!("{KEY_SELECT} WHERE k.user_id = $1 ORDER BY k.created_ns, k.id"),
                &[&user_id],
            )
            .await?;
        rows.iter().map(key_row).collect()
    }

    async fn list_all_api_keys(&self) -> DbResult<Vec<ApiKey>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!("{KEY_SELECT} ORDER BY u.username, k.created_ns, k.id"),
                &[],
            )
            .await?;
        rows.iter().map(key_row).collect()
    }

    async fn delete_any_api_key(&self, id: i64) -> DbResult<Option<ApiKey>> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let k = tx
            .query_opt(
                &format!("{KEY_SELECT} WHERE k.id = $1 FOR UPDATE OF k"),
                &[&id],
            )
            .await?
            .map(|r| key_row(&r))
            .transpose()?;
        if k.is_some() {
            tx.execute("DELETE FROM api_keys WHERE id = $1", &[&id])
                .await?;
        }
        tx.commit().await?;
        Ok(k)
    }

    async fn bind_api_key_host(&self, id: i64, host: &str) -> DbResult<Option<String>> {
        let c = self.conn().await?;
        c.execute(
            "UPDATE api_keys SET host = $2 WHERE id = $1 AND host IS NULL AND scope = 'ingest'",
            &[&id, &host],
        )
        .await?;
        Ok(
            c.query_opt("SELECT host FROM api_keys WHERE id = $1", &[&id])
                .await?
                .map(|r| r.try_get::<_, Option<String>>(0))
                .transpose()?
                .flatten(),
        )
    }

    async fn api_key_by_id(&self, id: i64) -> DbResult<Option<(ApiKey, User)>> {
        self.key_with_user("k.id = $1", &id).await
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> DbResult<Option<(ApiKey, User)>> {
        self.key_with_user("k.key_hash = $1", &key_hash).await
    }

    async fn set_api_key_enabled(&self, user_id: i64, id: i64, enabled: bool) -> DbResult<bool> {
        Ok(self
            .exec(
                "UPDATE api_keys SET enabled = $3 WHERE id = $2 AND user_id = $1",
                &[&user_id, &id, &enabled],
            )
            .await?
            == 1)
    }

    async fn delete_api_key(&self, user_id: i64, id: i64) -> DbResult<bool> {
        Ok(self
            .exec(
                "DELETE FROM api_keys WHERE id = $2 AND user_id = $1",
                &[&user_id, &id],
            )
            .await?
            == 1)
    }

    async fn touch_api_key(&self, id: i64, now_ns: i64) -> DbResult<()> {
        self.exec(
            "UPDATE api_keys SET last_used_ns = $2 WHERE id = $1",
            &[&id, &now_ns],
        )
        .await?;
        Ok(())
    }

    async fn audit(&self, e: &NewAudit<'_>) -> DbResult<()> {
        self.exec(
            "INSERT INTO audit_log (time_ns, user_id, username, action, target, ip, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &e.time_ns,
                &e.user_id,
                &e.username,
                &e.action,
                &e.target,
                &e.ip,
                &e.detail,
            ],
        )
        .await?;
        Ok(())
    }

    async fn list_audit(&self, f: &AuditFilter) -> DbResult<Vec<AuditEntry>> {
        let c = self.conn().await?;
        let limit = f.limit.unwrap_or(200).min(1000) as i64;
        let user = f.user.as_deref().filter(|s| !s.is_empty());
        let action = f.action.as_deref().filter(|s| !s.is_empty());
        let rows = c
            .query(
                "SELECT id, time_ns, user_id, username, action, target, ip, detail FROM audit_log
                 WHERE ($1::TEXT IS NULL OR username = $1) AND ($2::TEXT IS NULL OR action = $2)
                   AND ($3::BIGINT IS NULL OR time_ns >= $3)
                 ORDER BY time_ns DESC, id DESC LIMIT $4",
                &[&user, &action, &f.since_ns, &limit],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.try_get(0)?,
                    time_ns: r.try_get(1)?,
                    user_id: r.try_get(2)?,
                    username: r.try_get(3)?,
                    action: r.try_get(4)?,
                    target: r.try_get(5)?,
                    ip: r.try_get(6)?,
                    detail: r.try_get(7)?,
                })
            })
            .collect()
    }
}
