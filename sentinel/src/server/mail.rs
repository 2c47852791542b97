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
    let msg = message(cfg, a)?;
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
    }
}
