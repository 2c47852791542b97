//! Email delivery of alerts over SMTP (STARTTLS, implicit TLS or plain for local relays).

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::alerts::{Alert, EmailConfig};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("bad address {0:?}")]
    Address(String),
    #[error("cannot build message: {0}")]
    Build(String),
    #[error("SMTP: {0}")]
    Smtp(String),
}

/// Why `addr` cannot receive security notices, or None when it is a plain mailbox address
/// (`name@domain`, no display name, no control characters, at most 254 bytes).
pub fn address_problem(addr: &str) -> Option<String> {
    if addr.len() > 254 || addr.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Some("the email address is too long or contains spaces".into());
    }
    match addr.parse::<lettre::Address>() {
        Ok(_) => None,
        Err(_) => Some(format!("{:?} is not an email address", plain(addr))),
    }
}

/// Removes the SMTP credentials from a text about to be logged.
pub fn redact(cfg: &EmailConfig, text: &str) -> String {
    let mut out = text.to_string();
    for secret in cfg.password.iter().chain(&cfg.username) {
        if !secret.is_empty() {
            out = out.replace(secret.as_str(), "[REDACTED]");
        }
    }
    out
}

/// Agent-supplied text in a plain-text mail: control characters (other than the line breaks
/// we add) become spaces, so nothing can forge headers or lines.
fn plain(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

pub fn message(cfg: &EmailConfig, a: &Alert) -> Result<Message, MailError> {
    let from: Mailbox = cfg
        .from
        .parse()
        .map_err(|_| MailError::Address(cfg.from.clone()))?;
    let mut b = Message::builder().from(from).subject(plain(&a.title));
    for t in &cfg.to {
        b = b.to(t.parse().map_err(|_| MailError::Address(t.clone()))?);
    }
    let mut body = format!("{}\n\n{}\n", plain(&a.title), plain(&a.text));
    if let Some(h) = &a.host {
        body.push_str(&format!("\nHost: {}", plain(h)));
    }
    if let (Some(l), Some(s)) = (a.level, a.score) {
        body.push_str(&format!("\nLevel: {l} (score {s})"));
    }
    if let Some(u) = &a.url {
        body.push_str(&format!("\nDetails: {u}"));
    }
    body.push_str(&format!("\nRule: {}\n", a.rule));
    b.body(body).map_err(|e| MailError::Build(e.to_string()))
}

pub async fn send(cfg: &EmailConfig, a: &Alert) -> Result<(), MailError> {
    deliver(cfg, message(cfg, a)?).await
}

/// A plain-text mail to one address (security notices to a user): subject and body are
/// cleaned of control characters other than the body's line breaks.
pub fn notice(
    cfg: &EmailConfig,
    to: &str,
    subject: &str,
    body: &str,
) -> Result<Message, MailError> {
    let from: Mailbox = cfg
        .from
        .parse()
        .map_err(|_| MailError::Address(cfg.from.clone()))?;
    let to: Mailbox = to.parse().map_err(|_| MailError::Address(plain(to)))?;
    let body: String = body.lines().map(plain).collect::<Vec<_>>().join("\n");
    Message::builder()
        .from(from)
        .to(to)
        .subject(plain(subject))
        .body(body)
        .map_err(|e| MailError::Build(e.to_string()))
}

/// Sends one message over the configured relay.
pub async fn deliver(cfg: &EmailConfig, msg: Message) -> Result<(), MailError> {
    let builder = match cfg.security.as_str() {
        "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.smtp_host),
        "none" => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            &cfg.smtp_host,
        )),
        _ => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.smtp_host),
    }
    .map_err(|e| MailError::Smtp(e.to_string()))?;
    let mut builder = builder
        .port(cfg.smtp_port)
        .timeout(Some(std::time::Duration::from_secs(15)));
    if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
        builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
    }
    builder
        .build()
        .send(msg)
        .await
        .map_err(|e| MailError::Smtp(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_carries_the_alert() {
        let cfg = EmailConfig {
            smtp_host: "localhost".into(),
            smtp_port: 25,
            security: "none".into(),
            username: None,
            password: None,
            from: "sentinel@example.org".into(),
            to: vec!["soc@example.org".into()],
        };
        let a = Alert {
            rule: "level".into(),
            title: "Sentinel: high anomaly on web-1".into(),
            text: "reason".into(),
            host: Some("web-1".into()),
            level: Some(crate::model::Level::High),
            score: Some(60),
            url: None,
            time_ns: 0,
        };
        let m = String::from_utf8(message(&cfg, &a).unwrap().formatted()).unwrap();
        assert!(
            m.contains("Subject: Sentinel: high anomaly on web-1") && m.contains("Host: web-1"),
            "{m}"
        );
        let mut bad = cfg.clone();
        bad.to = vec!["not an address".into()];
        assert!(message(&bad, &a).is_err());
        // A notice: one recipient, control characters cannot add headers or lines.
        let n = notice(
            &cfg,
            "olga@example.org",
            "Sentinel: new API key\r\nBcc: x@evil.example",
            "Key: k\u{7}1\nBy: olga",
        )
        .unwrap();
        let m = String::from_utf8(n.formatted()).unwrap();
        assert!(
            m.contains("To: olga@example.org") && !m.contains("\nBcc:"),
            "{m}"
        );
        assert!(m.contains("Key: k 1") && m.contains("By: olga"), "{m}");
        assert!(address_problem("olga@example.org").is_none());
        for bad in ["olga", "Olga <olga@example.org>", "a b@example.org", "x@\n"] {
            assert!(address_problem(bad).is_some(), "{bad}");
        }
    }
}
