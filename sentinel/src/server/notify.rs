//! Security notices: a mail to the user's own address when two-factor is turned on, moved to
//! a new device or turned off, when their password changes, when an API key is created for
//! them, and (to the old address) when that address changes. Sent in the background through
//! the relay of `[server.alerts.email]`: a slow or failing relay never delays or fails the
//! change itself. Without SMTP settings, or for a user without an address, nothing is sent
//! (logged at debug). Failures are counted, logged with credentials redacted, and audited.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::alerts::EmailConfig;
use super::mail;
use super::store::{NewAudit, ServerStore, User};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    TwoFactorOn,
    TwoFactorMoved,
    TwoFactorOff,
    PasswordChanged,
    ApiKeyCreated,
    EmailChanged,
}

impl Change {
    pub fn subject(self, user: &str) -> String {
        let what = match self {
            Change::TwoFactorOn => "two-factor sign-in turned on",
            Change::TwoFactorMoved => "two-factor sign-in moved to a new device",
            Change::TwoFactorOff => "two-factor sign-in turned off",
            Change::PasswordChanged => "password changed",
            Change::ApiKeyCreated => "new API key",
            Change::EmailChanged => "notice address changed",
        };
        format!("Sentinel: {what} for {user}")
    }

    fn sentence(self) -> &'static str {
        match self {
            Change::TwoFactorOn => {
                "Two-factor sign-in was turned on for your Sentinel account: signing in now \
                 needs a code from your authenticator app."
            }
            Change::TwoFactorMoved => {
                "Two-factor sign-in of your Sentinel account was moved to a new device: codes \
                 from the old one no longer work."
            }
            Change::TwoFactorOff => {
                "Two-factor sign-in was turned off for your Sentinel account: the password \
                 alone now signs in."
            }
            Change::PasswordChanged => {
                "The password of your Sentinel account was changed, and your other sessions \
                 were signed out."
            }
            Change::ApiKeyCreated => "A new API key was created for your Sentinel account.",
            Change::EmailChanged => {
                "Security notices of your Sentinel account go to another address from now on; \
                 this is the last one sent here."
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Change::TwoFactorOn => "2fa_enabled",
            Change::TwoFactorMoved => "2fa_moved",
            Change::TwoFactorOff => "2fa_disabled",
            Change::PasswordChanged => "password_changed",
            Change::ApiKeyCreated => "api_key_created",
            Change::EmailChanged => "email_changed",
        }
    }
}

/// Who made a change, from where, and anything else worth a line (a key's name and scope).
pub struct Origin<'a> {
    pub by: &'a str,
    pub ip: &'a str,
    pub detail: &'a str,
}

/// Notices queued (counted before the handler returns), sent, failed, and skipped (no SMTP
/// settings, or no address).
#[derive(Debug, Default)]
struct Counts {
    queued: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MailCounts {
    pub queued: u64,
    pub sent: u64,
    pub failed: u64,
    pub skipped: u64,
}

#[derive(Clone)]
pub struct Notifier {
    email: Option<EmailConfig>,
    public_url: Option<String>,
    store: Arc<dyn ServerStore>,
    counts: Arc<Counts>,
}

impl Notifier {
    pub fn new(
        email: Option<EmailConfig>,
        public_url: Option<String>,
        store: Arc<dyn ServerStore>,
    ) -> Notifier {
        Notifier {
            email,
            public_url,
            store,
            counts: Arc::default(),
        }
    }

    pub fn counts(&self) -> MailCounts {
        MailCounts {
            queued: self.counts.queued.load(Ordering::Relaxed),
            sent: self.counts.sent.load(Ordering::Relaxed),
            failed: self.counts.failed.load(Ordering::Relaxed),
            skipped: self.counts.skipped.load(Ordering::Relaxed),
        }
    }

    /// Tells `user` about `change` at their address.
    pub fn security_change(&self, user: &User, change: Change, o: &Origin<'_>) {
        self.send(user, user.email.as_deref(), change, o);
    }

    /// Tells `user` about `change` at `to` (the old address, when it changes).
    pub fn security_change_to(
        &self,
        user: &User,
        to: Option<&str>,
        change: Change,
        o: &Origin<'_>,
    ) {
        self.send(user, to, change, o);
    }

    fn send(&self, user: &User, to: Option<&str>, change: Change, o: &Origin<'_>) {
        let (Some(cfg), Some(to)) = (&self.email, to) else {
            self.counts.skipped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                "no security notice for {} ({}): {}",
                user.username,
                change.name(),
                if self.email.is_none() {
                    "no SMTP settings"
                } else {
                    "the user has no email address"
                }
            );
            return;
        };
        let msg = mail::notice(
            cfg,
            to,
            &change.subject(&user.username),
            &self.body(user, change, o),
        );
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.counts.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        self.counts.queued.fetch_add(1, Ordering::Relaxed);
        let (cfg, counts, store) = (cfg.clone(), self.counts.clone(), self.store.clone());
        let (username, user_id) = (user.username.clone(), user.id);
        rt.spawn(async move {
            let res = match msg {
                Ok(m) => mail::deliver(&cfg, m).await,
                Err(e) => Err(e),
            };
            match res {
                Ok(()) => {
                    counts.sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                    let why = mail::redact(&cfg, &e.to_string());
                    tracing::warn!(
                        "security notice to {username} ({}) failed: {why}",
                        change.name()
                    );
                    let _ = store
                        .audit(&NewAudit {
                            user_id: Some(user_id),
                            username: &username,
                            action: "notice_failed",
                            target: &username,
                            ip: "",
                            detail: &format!("{}: {why}", change.name()),
                            time_ns: crate::store::now_ns(),
                        })
                        .await;
                }
            }
        });
    }

    fn body(&self, user: &User, change: Change, o: &Origin<'_>) -> String {
        let by = if o.by == user.username {
            "you (signed in)".to_string()
        } else {
            format!("administrator {}", o.by)
        };
        let mut b = format!(
            "Hello {},\n\n{}\n\nAccount: {}\nWhen: {} UTC\nBy: {by} from {}\n",
            user.username,
            change.sentence(),
            user.username,
            super::web::fmt_time(crate::store::now_ns()),
            o.ip
        );
        for l in o.detail.lines().filter(|l| !l.is_empty()) {
            b.push_str(l);
            b.push('\n');
        }
        b.push_str(
            "\nIf this was not you, sign in and change your password, or ask an administrator \
             to disable your account.\n",
        );
        if let Some(u) = &self.public_url {
            b.push_str(&format!("{}/profile\n", u.trim_end_matches('/')));
        }
        b
    }
}
