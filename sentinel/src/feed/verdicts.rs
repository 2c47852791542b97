//! Analysts' verdicts given on a Sentinel server, delivered to the agent of the host they
//! concern. The push client asks `GET /api/ingest/verdicts` (with its ingest key, so only its
//! own host's) after every batch the server accepted and every `verdict_poll_secs` when idle,
//! applies each delivery through the same code as `sentinel feedback` (detect/feedback.rs and
//! the agent store), records it in the store (table `server_verdicts`) so that a delivery seen
//! again is never applied twice, and acknowledges it with `POST /api/ingest/verdicts/ack`.
//! A lost acknowledgement only means the delivery comes again and is acknowledged again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::detect::feedback::{self, Scope, Verdict};
use crate::store::Store;

/// What a delivery asks of the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Apply the verdict.
    Give,
    /// Take it back (it was undone on the server).
    Undo,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Give => "give",
            Action::Undo => "undo",
        }
    }
}

/// One verdict to apply or take back, as the server sends it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The verdict's id on the server.
    pub id: i64,
    pub action: Action,
    /// The anomaly or incident id, as the agent named it.
    pub target: String,
    pub verdict: Verdict,
    pub scope: Scope,
    #[serde(default)]
    pub note: Option<String>,
    /// The dashboard user who gave it.
    pub by: String,
    /// When it was given (server clock).
    pub time_ns: i64,
}

/// The answer of `GET /api/ingest/verdicts`: oldest first, in the order to apply them.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Pending {
    pub verdicts: Vec<Delivery>,
}

/// One delivery handled: applied, or refused with why (an id this agent does not know).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub id: i64,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The body of `POST /api/ingest/verdicts/ack`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acks {
    #[serde(default)]
    pub acks: Vec<Ack>,
}

/// Who a server's verdict names on the agent: the dashboard user, marked as such.
pub fn by_of(d: &Delivery) -> String {
    format!("{} (server)", d.by)
}

/// Applies the deliveries of the server `source` (its URL; "local" for `run --serve`) in
/// order, each at most once (a delivery already recorded in the store is acknowledged again
/// with its first outcome, never re-applied). Stops at a store failure: what follows waits
/// for the next round, so the order holds.
pub fn apply(store: &Store, source: &str, deliveries: &[Delivery]) -> Vec<Ack> {
    let mut acks = Vec::new();
    for d in deliveries {
        // Verdict ids are per server: an agent may hear from two (--push and --serve).
        let key = format!("{source}#{}:{}", d.id, d.action.as_str());
        let error = match store.server_verdict(&key) {
            Ok(Some(outcome)) => outcome,
            Ok(None) => {
                let error = match apply_one(store, d) {
                    Ok(()) => None,
                    // The store failed: try again next round rather than refuse for good.
                    Err(feedback::FeedbackError::Store(e)) => {
                        tracing::warn!(target: "sentinel::feed", "applying verdict {key}: {e}");
                        break;
                    }
                    Err(e) => Some(e.to_string()),
                };
                match &error {
                    Some(e) => tracing::warn!(
                        target: "sentinel::feed",
                        "server verdict {} ({}) on {}: {e}",
                        d.id,
                        d.action.as_str(),
                        d.target
                    ),
                    None => tracing::info!(
                        target: "sentinel::feed",
                        "server verdict {} ({}): {:?} on {} by {}",
                        d.id,
                        d.action.as_str(),
                        d.verdict,
                        d.target,
                        d.by
                    ),
                }
                if let Err(e) = store.mark_server_verdict(&key, error.as_deref()) {
                    // Not recorded: not acknowledged either, so it comes again.
                    tracing::warn!(target: "sentinel::feed", "recording verdict {key}: {e}");
                    break;
                }
                error
            }
            Err(e) => {
                tracing::warn!(target: "sentinel::feed", "reading verdict {key}: {e}");
                break;
            }
        };
        acks.push(Ack {
            id: d.id,
            action: d.action,
            error,
        });
    }
    acks
}

fn apply_one(store: &Store, d: &Delivery) -> Result<(), feedback::FeedbackError> {
    let by = by_of(d);
    match d.action {
        Action::Give => feedback::give(
            store,
            &d.target,
            d.verdict,
            d.scope,
            d.note.clone(),
            &by,
            d.time_ns,
        )
        .map(|_| ()),
        // Only the rules this verdict made: a later local verdict stays.
        Action::Undo => feedback::take_back(store, &d.target, Some((&by, d.time_ns))).map(|_| ()),
    }
}

/// One round: fetch this host's pending verdicts, apply them, acknowledge them. Returns how
/// many were handled.
pub async fn sync(
    client: &reqwest::Client,
    url: &str,
    api_key: &str,
    store: &Path,
) -> Result<usize, String> {
    let r = client
        .get(format!("{url}/api/ingest/verdicts"))
        .bearer_auth(api_key)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("HTTP {}", r.status()));
    }
    let pending: Pending = r.json().await.map_err(|e| e.to_string())?;
    if pending.verdicts.is_empty() {
        return Ok(0);
    }
    let path: PathBuf = store.to_path_buf();
    let source = url.to_string();
    let acks = tokio::task::spawn_blocking(move || {
        Store::open(&path)
            .map(|s| apply(&s, &source, &pending.verdicts))
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())??;
    let n = acks.len();
    if n == 0 {
        return Ok(0);
    }
    let r = client
        .post(format!("{url}/api/ingest/verdicts/ack"))
        .bearer_auth(api_key)
        .json(&Acks { acks })
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("acknowledging: HTTP {}", r.status()));
    }
    Ok(n)
}

/// Where and how often the push client asks for verdicts.
pub struct Poll {
    pub client: reqwest::Client,
    pub url: String,
    pub api_key: String,
    pub store: PathBuf,
    pub every: std::time::Duration,
}

/// Asks for this host's verdicts at start, after each batch the server accepted
/// (`accepted`) and every `every`; `handled` counts what was applied and acknowledged.
pub async fn poll_loop(
    p: Poll,
    accepted: std::sync::Arc<tokio::sync::Notify>,
    handled: impl Fn(usize),
) {
    loop {
        match sync(&p.client, &p.url, &p.api_key, &p.store).await {
            Ok(n) => handled(n),
            Err(e) => tracing::debug!(target: "sentinel::feed", "fetching verdicts: {e}"),
        }
        tokio::select! {
            _ = accepted.notified() => {}
            _ = tokio::time::sleep(p.every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Anomaly, ChainLink, Factor, Level, Principal};

    fn anomaly(id: &str) -> Anomaly {
        Anomaly {
            id: id.into(),
            host: "h".into(),
            time_ns: 1,
            principal: Principal {
                uid: 1000,
                user: None,
                session: None,
            },
            chain: vec![ChainLink {
                pid: 5,
                exe: "/tmp/tool".into(),
                argv: vec![],
                uid: 1000,
            }],
            score: 40,
            level: Level::Medium,
            factors: vec![Factor {
                detection: "exec_from_writable".into(),
                reason: "r".into(),
                weight: 40,
                evidence: vec![],
            }],
            evidence: vec![],
            fingerprint: String::new(),
            explanation: None,
        }
    }

    fn delivery(id: i64, action: Action, target: &str) -> Delivery {
        Delivery {
            id,
            action,
            target: target.into(),
            verdict: Verdict::Benign,
            scope: Scope::Principal,
            note: Some("build helper".into()),
            by: "olga".into(),
            time_ns: 77,
        }
    }

    const SRC: &str = "https://sentinel.example.org";

    #[test]
    fn each_delivery_is_applied_once_and_an_undo_takes_back_only_its_own_rule() {
        let s = Store::memory().unwrap();
        s.put_anomaly(&anomaly("h-1")).unwrap();
        let give = delivery(7, Action::Give, "h-1");
        assert_eq!(
            apply(&s, SRC, std::slice::from_ref(&give)),
            [Ack {
                id: 7,
                action: Action::Give,
                error: None
            }]
        );
        assert_eq!(s.feedback_rules().unwrap().len(), 1);
        let rule: feedback::Rule =
            serde_json::from_value(s.get_feedback("h-1").unwrap().unwrap()).unwrap();
        assert_eq!(rule.by, "olga (server)");
        // A local undo, then the same delivery again (its acknowledgement was lost): it is
        // acknowledged, not re-applied.
        feedback::take_back(&s, "h-1", None).unwrap();
        assert_eq!(apply(&s, SRC, std::slice::from_ref(&give)).len(), 1);
        assert!(s.feedback_rules().unwrap().is_empty(), "not re-applied");
        // The server's undo of a verdict replaced locally leaves the local one in place.
        feedback::give(&s, "h-1", Verdict::Malicious, Scope::Host, None, "root", 99).unwrap();
        apply(&s, SRC, &[delivery(7, Action::Undo, "h-1")]);
        assert_eq!(
            s.feedback_rules().unwrap().len(),
            1,
            "the local verdict stays"
        );
        // A verdict the agent cannot apply is acknowledged with why.
        let acks = apply(&s, SRC, &[delivery(8, Action::Give, "nope")]);
        assert!(
            acks[0]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("no anomaly or incident nope")),
            "{acks:?}"
        );
        // Give and undo of a server verdict.
        s.delete_feedback("h-1").unwrap();
        apply(&s, SRC, &[delivery(9, Action::Give, "h-1")]);
        assert_eq!(s.feedback_rules().unwrap().len(), 1);
        apply(&s, SRC, &[delivery(9, Action::Undo, "h-1")]);
        assert!(s.feedback_rules().unwrap().is_empty());
        // Another server's verdict 9 is another verdict.
        assert!(
            apply(&s, "local", &[delivery(9, Action::Give, "h-1")])[0]
                .error
                .is_none()
        );
        assert_eq!(s.feedback_rules().unwrap().len(), 1);
    }
}
