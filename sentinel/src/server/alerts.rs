//! Alerts: rules (level at or above a threshold, brute force, exec from /tmp, admin login
//! from a new address) decide what is worth a message; a background worker delivers to
//! Slack incoming webhooks, generic JSON webhooks and SMTP email, with a per-rule cooldown.
//! Delivery never blocks ingest or login: events go through a bounded queue and are dropped
//! (with a warning) when it is full.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::store::ServerStore;
use crate::model::{Anomaly, Level};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Slack incoming-webhook URL.
    pub slack_webhook: Option<String>,
    /// Any URL that accepts a JSON POST of the alert.
    pub webhook: Option<String>,
    /// Shared secret for the generic webhook: each POST carries
    /// `X-Sentinel-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` and
    /// `X-Sentinel-Timestamp` (Unix seconds), so the receiver can check origin and freshness.
    pub webhook_secret: Option<String>,
    /// Attempts per webhook delivery (network errors, 5xx and 429 are retried with
    /// exponential backoff from 1 s).
    pub webhook_attempts: u32,
    /// Alerts by email (unset: none).
    pub email: Option<EmailConfig>,
    /// Minutes before the same rule (for the same host or user) fires again.
    pub cooldown_mins: u64,
    /// Alert on anomalies at or above this level ("low" .. "critical").
    pub min_level: Level,
    /// Alert on brute force: dashboard logins failing `brute_force_failures` times in 5
    /// minutes from one address, and agent anomalies whose detection mentions brute force.
    pub brute_force: bool,
    /// Failed dashboard logins from one address in 5 minutes that raise a brute force alert.
    pub brute_force_failures: usize,
    /// Alert on any anomaly with an exec-from-/tmp (or /dev/shm) factor, whatever its level.
    pub exec_from_tmp: bool,
    /// Alert when an admin signs in from an address they never used before.
    pub new_admin_ip: bool,
    /// Alert when an agent goes stale (three heartbeats missed) or blind (hooks failed,
    /// events lost), and when it recovers: once per change, no cooldown.
    pub agent_health: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// SMTP relay to send through.
    pub smtp_host: String,
    #[serde(default = "default_smtp_port")]
    /// SMTP port (587 for starttls, 465 for tls).
    pub smtp_port: u16,
    /// "starttls" (default), "tls" (implicit) or "none" (local relays only).
    #[serde(default = "default_security")]
    pub security: String,
    /// SMTP user name, when the relay wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// SMTP password, when the relay wants one.
    #[serde(default)]
    pub password: Option<String>,
    /// Sender address.
    pub from: String,
    /// Recipient addresses.
    pub to: Vec<String>,
}

fn default_smtp_port() -> u16 {
    587
}

fn default_security() -> String {
    "starttls".into()
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            slack_webhook: None,
            webhook: None,
            webhook_secret: None,
            webhook_attempts: 3,
            email: None,
            cooldown_mins: 60,
            min_level: Level::High,
            brute_force: true,
            brute_force_failures: 10,
            exec_from_tmp: true,
            new_admin_ip: true,
            agent_health: true,
        }
    }
}

impl AlertsConfig {
    pub fn validate(&self) -> Result<(), String> {
        for u in self.slack_webhook.iter().chain(&self.webhook) {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                // The URL itself may be a secret (Slack's are): never echo it.
                return Err(format!(
                    "alert webhook {} must be an http(s) URL",
                    redact_url(u)
                ));
            }
        }
        if self.webhook_attempts == 0 || self.webhook_attempts > 10 {
            return Err("server.alerts.webhook_attempts must be 1-10".into());
        }
        if let Some(e) = &self.email {
            if e.to.is_empty() || e.from.is_empty() || e.smtp_host.is_empty() {
                return Err("server.alerts.email needs smtp_host, from and at least one to".into());
            }
            if !["starttls", "tls", "none"].contains(&e.security.as_str()) {
                return Err("server.alerts.email.security must be starttls, tls or none".into());
            }
        }
        Ok(())
    }

    fn any_sink(&self) -> bool {
        self.slack_webhook.is_some() || self.webhook.is_some() || self.email.is_some()
    }
}

/// One alert as delivered (the generic webhook receives exactly this JSON).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Alert {
    pub rule: String,
    pub title: String,
    pub text: String,
    pub host: Option<String>,
    pub level: Option<Level>,
    pub score: Option<u8>,
    pub url: Option<String>,
    pub time_ns: i64,
}

/// Which rules an anomaly trips (rule name, cooldown key).
pub fn anomaly_rules(cfg: &AlertsConfig, a: &Anomaly) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if a.level >= cfg.min_level {
        out.push(("level", format!("level:{}", a.host)));
    }
    let has = |pred: &dyn Fn(&str) -> bool| a.factors.iter().any(|f| pred(&f.detection));
    if cfg.exec_from_tmp && has(&|d| d.contains("exec_from_tmp") || d.contains("exec_from_devshm"))
    {
        out.push(("exec_from_tmp", format!("exec_from_tmp:{}", a.host)));
    }
    if cfg.brute_force && has(&|d| d.contains("brute_force")) {
        out.push(("brute_force", format!("brute_force:{}", a.host)));
    }
    out
}

struct Inner {
    cfg: AlertsConfig,
    public_url: Option<String>,
    tx: Option<mpsc::Sender<Alert>>,
    last_fired: Mutex<HashMap<String, i64>>,
    failures: Mutex<HashMap<String, Vec<i64>>>,
}

/// Handle to the alert rules and delivery worker (cheap to clone).
#[derive(Clone)]
pub struct Alerts(Arc<Inner>);

impl Alerts {
    /// Starts the delivery worker when a sink is configured and a runtime is running.
    pub fn start(
        cfg: AlertsConfig,
        public_url: Option<String>,
        _store: Arc<dyn ServerStore>,
    ) -> Alerts {
        let tx = if cfg.any_sink() && tokio::runtime::Handle::try_current().is_ok() {
            let (tx, rx) = mpsc::channel(256);
            tokio::spawn(deliver(cfg.clone(), rx));
            Some(tx)
        } else {
            None
        };
        Alerts(Arc::new(Inner {
            cfg,
            public_url,
            tx,
            last_fired: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }))
    }

    /// True once per cooldown for `key`.
    fn cooled(&self, key: &str, now: i64) -> bool {
        let Ok(mut m) = self.0.last_fired.lock() else {
            return false;
        };
        let cd = self.0.cfg.cooldown_mins as i64 * 60_000_000_000;
        match m.get(key) {
            Some(&t) if now - t < cd => false,
            _ => {
                m.insert(key.to_string(), now);
                true
            }
        }
    }

    fn fire(&self, key: &str, alert: Alert) {
        if !self.cooled(key, alert.time_ns) {
            return;
        }
        let Some(tx) = &self.0.tx else { return };
        if tx.try_send(alert).is_err() {
            tracing::warn!("alert queue full; alert dropped");
        }
    }

    fn link(&self, path: &str) -> Option<String> {
        self.0
            .public_url
            .as_ref()
            .map(|u| format!("{}{path}", u.trim_end_matches('/')))
    }

    pub fn anomaly(&self, a: &Anomaly) {
        for (rule, key) in anomaly_rules(&self.0.cfg, a) {
            let reasons: Vec<&str> = a.factors.iter().map(|f| f.reason.as_str()).collect();
            self.fire(
                &key,
                Alert {
                    rule: rule.into(),
                    title: format!("Sentinel: {} anomaly on {}", a.level, a.host),
                    text: reasons.join("; "),
                    host: Some(a.host.clone()),
                    level: Some(a.level),
                    score: Some(a.score),
                    url: self.link(&format!("/anomalies/{}", super::web::seg(&a.id))),
                    time_ns: a.time_ns,
                },
            );
        }
    }

    /// Counts a failed dashboard login; alerts once the address crosses the threshold.
    pub fn login_failure(&self, username: &str, ip: &str) {
        if !self.0.cfg.brute_force {
            return;
        }
        let now = crate::store::now_ns();
        let n = {
            let Ok(mut m) = self.0.failures.lock() else {
                return;
            };
            if m.len() > 10_000 {
                m.clear();
            }
            let v = m.entry(ip.to_string()).or_default();
            v.retain(|t| now - t < 300_000_000_000);
            v.push(now);
            v.len()
        };
        if n >= self.0.cfg.brute_force_failures {
            self.fire(
                &format!("brute_force:ip:{ip}"),
                Alert {
                    rule: "brute_force".into(),
                    title: format!("Sentinel: {n} failed dashboard logins from {ip}"),
                    text: format!("Last attempted user name: {username}"),
                    host: None,
                    level: Some(Level::High),
                    score: None,
                    url: self.link("/admin/audit?action=login_failed"),
                    time_ns: now,
                },
            );
        }
    }

    /// An agent's state changed (fleet.rs): alerts on entering stale or blind, and on
    /// recovering from them. Each change alerts once: no cooldown applies.
    pub fn agent_state(&self, c: &super::fleet::StateChange) {
        use super::fleet::AgentState;
        let recovered = c.from.alarming() && c.to == AgentState::Healthy;
        if !self.0.cfg.agent_health || !(c.to.alarming() || recovered) {
            return;
        }
        let alert = Alert {
            rule: format!("agent_{}", c.to),
            title: if recovered {
                format!("Sentinel: agent on {} is healthy again", c.host)
            } else {
                format!("Sentinel: agent on {} is {}", c.host, c.to)
            },
            text: if c.reason.is_empty() {
                format!("was {}", c.from)
            } else {
                format!("{} (was {})", c.reason, c.from)
            },
            host: Some(c.host.clone()),
            level: (!recovered).then_some(Level::High),
            score: None,
            url: self.link(&format!("/hosts/{}", super::web::seg(&c.host))),
            time_ns: crate::store::now_ns(),
        };
        let Some(tx) = &self.0.tx else { return };
        if tx.try_send(alert).is_err() {
            tracing::warn!("alert queue full; alert dropped");
        }
    }

    pub fn new_admin_ip(&self, username: &str, ip: &str) {
        if !self.0.cfg.new_admin_ip {
            return;
        }
        let now = crate::store::now_ns();
        self.fire(
            &format!("new_admin_ip:{username}:{ip}"),
            Alert {
                rule: "new_admin_ip".into(),
                title: format!("Sentinel: admin {username} signed in from a new address"),
                text: format!("Address {ip} was not used by {username} before."),
                host: None,
                level: None,
                score: None,
                url: self.link("/admin/sessions"),
                time_ns: now,
            },
        );
    }
}

/// A URL as it may appear in logs: scheme and host only (webhook paths and query strings,
/// Slack's in particular, are credentials).
pub fn redact_url(u: &str) -> String {
    match reqwest::Url::parse(u) {
        Ok(url) => format!(
            "{}://{}/[REDACTED]",
            url.scheme(),
            url.host_str().unwrap_or("?")
        ),
        Err(_) => "[REDACTED URL]".into(),
    }
}

/// Escapes text for Slack's message markup: `&`, `<` and `>` are its control characters
/// (`<!channel>`, `<https://evil|innocent text>`), so agent-supplied host names and reasons
/// are shown literally, never as mentions or disguised links.
pub fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// HMAC-SHA256 signature of a webhook body: hex of HMAC(secret, "<timestamp>.<body>").
pub fn webhook_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let Ok(mut m) = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    data_encoding::HEXLOWER.encode(&m.finalize().into_bytes())
}

pub fn slack_payload(a: &Alert) -> serde_json::Value {
    let color = match a.level {
        Some(Level::Critical) => "#d7263d",
        Some(Level::High) => "#f46036",
        Some(Level::Medium) => "#e2c044",
        _ => "#2e9e6b",
    };
    let title = slack_escape(&a.title);
    let mut att = serde_json::json!({ "color": color, "title": title, "text": slack_escape(&a.text),
        "footer": format!("rule: {}", slack_escape(&a.rule)), "mrkdwn_in": [] });
    if let Some(u) = &a.url {
        att["title_link"] = serde_json::Value::String(u.clone());
    }
    serde_json::json!({ "text": title, "attachments": [att] })
}

async fn deliver(cfg: AlertsConfig, mut rx: mpsc::Receiver<Alert>) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("alerts disabled: cannot build HTTP client: {e}");
            return;
        }
    };
    while let Some(a) = rx.recv().await {
        if let Some(url) = &cfg.slack_webhook {
            post(&client, &cfg, url, &slack_payload(&a), None, "slack").await;
        }
        if let Some(url) = &cfg.webhook {
            let body = serde_json::to_value(&a).unwrap_or_default();
            post(
                &client,
                &cfg,
                url,
                &body,
                cfg.webhook_secret.as_deref(),
                "webhook",
            )
            .await;
        }
        if let Some(e) = &cfg.email
            && let Err(err) = super::mail::send(e, &a).await
        {
            tracing::warn!(
                "email alert failed: {}",
                super::mail::redact(e, &err.to_string())
            );
        }
    }
}

/// Posts one alert, signed when a secret is set, retrying transient failures with
/// exponential backoff. Log lines name the sink and the host, never the URL's path.
async fn post(
    client: &reqwest::Client,
    cfg: &AlertsConfig,
    url: &str,
    body: &serde_json::Value,
    secret: Option<&str>,
    what: &str,
) {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut backoff = Duration::from_secs(1);
    for attempt in 1..=cfg.webhook_attempts {
        let mut rb = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(bytes.clone());
        if let Some(sec) = secret {
            let ts = crate::store::now_ns() / 1_000_000_000;
            rb = rb.header("x-sentinel-timestamp", ts.to_string()).header(
                "x-sentinel-signature",
                format!("sha256={}", webhook_signature(sec, ts, &bytes)),
            );
        }
        let retry = match rb.send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => {
                let st = r.status();
                tracing::warn!(
                    "{what} alert to {} refused: HTTP {st} (attempt {attempt})",
                    redact_url(url)
                );
                st.is_server_error() || st.as_u16() == 429 || st.as_u16() == 408
            }
            Err(e) => {
                tracing::warn!(
                    "{what} alert to {} failed: {} (attempt {attempt})",
                    redact_url(url),
                    e.without_url()
                );
                true
            }
        };
        if !retry || attempt == cfg.webhook_attempts {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Factor, Principal};

    fn anomaly(level: Level, det: &str) -> Anomaly {
        Anomaly {
            id: "h-1".into(),
            host: "h".into(),
            time_ns: 1,
            principal: Principal {
                uid: 0,
                user: None,
                session: None,
            },
            chain: vec![],
            score: 10,
            level,
            factors: vec![Factor {
                detection: det.into(),
                reason: "r".into(),
                weight: 10,
                evidence: vec![],
            }],
            evidence: vec![],
            fingerprint: "f".into(),
            explanation: None,
        }
    }

    #[test]
    fn default_rules_fire_on_high_and_on_tmp_execs() {
        let c = AlertsConfig::default();
        assert!(anomaly_rules(&c, &anomaly(Level::Medium, "x")).is_empty());
        assert_eq!(anomaly_rules(&c, &anomaly(Level::High, "x"))[0].0, "level");
        assert_eq!(
            anomaly_rules(&c, &anomaly(Level::Low, "exec_from_tmp"))[0].0,
            "exec_from_tmp"
        );
        assert_eq!(
            anomaly_rules(&c, &anomaly(Level::Low, "ssh_brute_force"))[0].0,
            "brute_force"
        );
    }

    #[test]
    fn cooldown_suppresses_repeats_per_rule_key() {
        let a = Alerts::start(
            AlertsConfig::default(),
            None,
            Arc::new(super::super::sqlite::SqliteStore::memory().unwrap()),
        );
        assert!(a.cooled("k", 0));
        assert!(!a.cooled("k", 1));
        assert!(a.cooled("other", 1));
        assert!(a.cooled("k", 61 * 60_000_000_000));
    }

    #[test]
    fn agent_text_cannot_mention_the_channel_or_disguise_links_and_urls_stay_out_of_logs() {
        let p = slack_payload(&Alert {
            rule: "level".into(),
            title: "Sentinel: high anomaly on <!channel>".into(),
            text: "<https://evil.example|click for payroll> & more".into(),
            host: Some("<!channel>".into()),
            level: Some(Level::High),
            score: None,
            url: None,
            time_ns: 0,
        });
        let all = p.to_string();
        assert!(
            !all.contains("<!channel>") && !all.contains("<https://evil"),
            "{all}"
        );
        assert!(
            all.contains("&lt;!channel&gt;") && all.contains("&amp; more"),
            "{all}"
        );
        let hook = "https://hooks.slack.com/services/T000/B000/XXXXSECRET";
        let shown = redact_url(hook);
        assert_eq!(shown, "https://hooks.slack.com/[REDACTED]");
        let cfg: AlertsConfig = AlertsConfig {
            slack_webhook: Some("ftp://x/secret-path".into()),
            ..Default::default()
        };
        assert!(!cfg.validate().unwrap_err().contains("secret-path"));
    }

    #[test]
    fn webhook_signatures_are_hmac_sha256_of_timestamp_and_body() {
        // Independent computation with the hmac crate directly.
        use hmac::{KeyInit, Mac};
        let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(b"s3cret").unwrap();
        m.update(b"1700000000.{\"a\":1}");
        let want = data_encoding::HEXLOWER.encode(&m.finalize().into_bytes());
        assert_eq!(
            webhook_signature("s3cret", 1_700_000_000, b"{\"a\":1}"),
            want
        );
        assert_ne!(
            webhook_signature("other", 1_700_000_000, b"{\"a\":1}"),
            want
        );
    }

    #[test]
    fn slack_payload_has_colour_and_link() {
        let p = slack_payload(&Alert {
            rule: "level".into(),
            title: "t".into(),
            text: "x".into(),
            host: None,
            level: Some(Level::Critical),
            score: None,
            url: Some("https://d/a".into()),
            time_ns: 0,
        });
        assert_eq!(p["attachments"][0]["color"], "#d7263d");
        assert_eq!(p["attachments"][0]["title_link"], "https://d/a");
    }
}
