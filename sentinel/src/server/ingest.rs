//! What the server accepts from agents, item by item, before anything is stored: sizes,
//! names and ids free of control characters (they end up in logs, SSE frames, URLs and
//! Slack messages), and times no further in the future than the allowed clock skew (the
//! server keeps its own receipt time for ordering and retention, but an absurd `time_ns`
//! is a sign of a broken or hostile agent and is refused with a reason). Also the host
//! identity of a batch, which an ingest key is bound to.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use super::store::{IngestBatch, Refused};
use crate::explain::redact::Redactor;
use crate::model::Anomaly;

/// The LLM prompts' secret redaction (passwords after flags, tokens, URL credentials, key
/// material), without user or address pseudonyms: the key only feeds those, so a fixed one
/// keeps the result deterministic (a retried anomaly redacts to the same record).
pub(super) static REDACTOR: LazyLock<Redactor> = LazyLock::new(|| Redactor::new(vec![0x5e; 32]));

/// Passes every command line in an anomaly (process chain argv, evidence summaries, and
/// `argv` / `cmdline` / `command` fields of evidence details) through the redaction used
/// for LLM prompts, before it is stored or shown.
pub fn redact_command_lines(a: &mut Anomaly) {
    let r = &*REDACTOR;
    for link in &mut a.chain {
        link.argv = r.argv(&link.argv);
    }
    for e in &mut a.evidence {
        e.summary = r.command_line(&e.summary);
        redact_detail(r, &mut e.detail);
    }
}

fn redact_detail(r: &Redactor, v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                match (k.as_str(), &mut *val) {
                    ("argv" | "args", serde_json::Value::Array(items))
                        if items.iter().all(|i| i.is_string()) =>
                    {
                        let argv: Vec<String> = items
                            .iter()
                            .filter_map(|i| i.as_str().map(str::to_string))
                            .collect();
                        *items = r.argv(&argv).into_iter().map(Into::into).collect();
                    }
                    ("cmdline" | "command" | "command_line", serde_json::Value::String(s)) => {
                        *s = r.command_line(s);
                    }
                    _ => redact_detail(r, val),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|i| redact_detail(r, i)),
        _ => {}
    }
}

pub const MAX_BATCH_ITEMS: usize = 10_000;
const MAX_NAME: usize = 255;

/// Why a name or id is unacceptable, or None. Control characters (including newlines and
/// DEL) are refused outright: a `\n` in an id once ended every live stream.
pub fn name_problem(what: &str, v: &str) -> Option<String> {
    if v.is_empty() || v.len() > MAX_NAME {
        Some(format!("{what} must be 1-{MAX_NAME} bytes"))
    } else if v.chars().any(char::is_control) {
        Some(format!("{what} contains a control character"))
    } else {
        None
    }
}

/// Like `name_problem` for optional or possibly empty fields (only control characters and
/// length are checked).
fn field_problem(what: &str, v: &str) -> Option<String> {
    if v.len() > 4096 {
        Some(format!("{what} is longer than 4096 bytes"))
    } else if v.chars().any(char::is_control) {
        Some(format!("{what} contains a control character"))
    } else {
        None
    }
}

/// The host a snapshot or fingerprint names (C-Sentinel puts it under `system.hostname`).
pub fn value_host(v: &serde_json::Value) -> Option<&str> {
    v.pointer("/system/hostname")
        .or_else(|| v.get("hostname"))
        .or_else(|| v.get("host"))
        .and_then(|h| h.as_str())
}

/// Problems that refuse the whole batch (its envelope, not an item).
pub fn batch_problem(b: &IngestBatch) -> Option<String> {
    if let Some(p) = name_problem("batch_id", &b.batch_id) {
        return Some(p);
    }
    if b.len() > MAX_BATCH_ITEMS {
        return Some(format!("at most {MAX_BATCH_ITEMS} items per batch"));
    }
    b.host.as_deref().and_then(|h| name_problem("host", h))
}

fn anomaly_problem(a: &Anomaly, latest_ns: i64, skew_secs: u64) -> Option<String> {
    if let Some(p) = name_problem("id", &a.id).or_else(|| name_problem("host", &a.host)) {
        return Some(p);
    }
    if a.time_ns > latest_ns {
        return Some(format!(
            "time_ns {} is more than {skew_secs} s ahead of the server's clock",
            a.time_ns
        ));
    }
    let mut fields: Vec<(&str, &str)> = vec![("fingerprint", &a.fingerprint)];
    if let Some(u) = &a.principal.user {
        fields.push(("principal.user", u));
    }
    for f in &a.factors {
        fields.push(("factor detection", &f.detection));
        fields.extend(
            f.evidence
                .iter()
                .map(|e| ("factor evidence id", e.as_str())),
        );
    }
    fields.extend(a.evidence.iter().map(|e| ("evidence id", e.id.as_str())));
    fields
        .into_iter()
        .find_map(|(what, v)| field_problem(what, v))
}

fn value_problem(v: &serde_json::Value, latest_ns: i64, skew_secs: u64) -> Option<String> {
    if !v.is_object() {
        return Some("must be a JSON object".into());
    }
    if let Some(h) = value_host(v)
        && let Some(p) = name_problem("host name", h)
    {
        return Some(p);
    }
    match v.get("time_ns").and_then(|t| t.as_i64()) {
        Some(t) if t > latest_ns => Some(format!(
            "time_ns {t} is more than {skew_secs} s ahead of the server's clock"
        )),
        _ => None,
    }
}

/// Removes the items the server refuses from `b` and says which and why. `now_ns` is the
/// server's clock; `skew_secs` how far ahead of it an agent's clock may run.
pub fn screen(b: &mut IngestBatch, now_ns: i64, skew_secs: u64) -> Vec<Refused> {
    let latest = now_ns.saturating_add((skew_secs as i64).saturating_mul(1_000_000_000));
    let mut refused = Vec::new();
    let mut keep = Vec::with_capacity(b.anomalies.len());
    for (index, a) in std::mem::take(&mut b.anomalies).into_iter().enumerate() {
        match anomaly_problem(&a, latest, skew_secs) {
            None => {
                let mut a = a;
                redact_command_lines(&mut a);
                keep.push(a)
            }
            Some(reason) => refused.push(Refused {
                kind: "anomaly",
                index,
                id: Some(a.id.escape_default().to_string()),
                reason,
            }),
        }
    }
    b.anomalies = keep;
    for (kind, list) in [
        ("snapshot", &mut b.snapshots),
        ("fingerprint", &mut b.fingerprints),
    ] {
        let mut keep = Vec::with_capacity(list.len());
        for (index, v) in std::mem::take(list).into_iter().enumerate() {
            match value_problem(&v, latest, skew_secs) {
                None => keep.push(v),
                Some(reason) => refused.push(Refused {
                    kind,
                    index,
                    id: None,
                    reason,
                }),
            }
        }
        *list = keep;
    }
    refused.extend(super::incidents::screen(
        &mut b.incidents,
        latest,
        skew_secs,
    ));
    refused
}

/// Every host name a batch writes to (its `host`, each anomaly's, each snapshot's and
/// fingerprint's).
pub fn hosts_named(b: &IngestBatch) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = b.host.iter().cloned().collect();
    out.extend(b.anomalies.iter().map(|a| a.host.clone()));
    out.extend(b.incidents.iter().map(|i| i.host.clone()));
    out.extend(
        b.snapshots
            .iter()
            .chain(&b.fingerprints)
            .filter_map(value_host)
            .map(str::to_string),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn anomaly(id: &str, time_ns: i64) -> Anomaly {
        serde_json::from_value(json!({
            "id": id, "host": "h", "time_ns": time_ns,
            "principal": { "uid": 1, "user": "u", "session": null },
            "chain": [], "score": 10, "level": "low", "factors": [], "evidence": [],
            "fingerprint": "f", "explanation": null
        }))
        .unwrap()
    }

    #[test]
    fn control_characters_and_future_times_are_refused_item_by_item() {
        let now = 1_000_000_000_000i64;
        let mut b = IngestBatch {
            batch_id: "b".into(),
            anomalies: vec![
                anomaly("ok", now),
                anomaly("bad\nid", now),
                anomaly("future", now + 301_000_000_000),
                anomaly("soon", now + 299_000_000_000),
            ],
            snapshots: vec![
                json!({ "system": { "hostname": "h" }, "time_ns": 9_000_000_000_000_000_000i64 }),
                json!({ "system": { "hostname": "h\u{7f}" } }),
                json!({ "system": { "hostname": "h" } }),
            ],
            fingerprints: vec![json!(3)],
            ..Default::default()
        };
        assert!(batch_problem(&b).is_none());
        let r = screen(&mut b, now, 300);
        let ids: Vec<&str> = b.anomalies.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["ok", "soon"]);
        assert_eq!(b.snapshots.len(), 1);
        assert!(b.fingerprints.is_empty());
        assert_eq!(r.len(), 5, "{r:?}");
        assert_eq!(r[0].id.as_deref(), Some("bad\\nid"));
        assert!(r[0].reason.contains("control character"));
        assert!(r[1].reason.contains("ahead of the server's clock"));
    }

    #[test]
    fn command_lines_are_redacted_before_they_are_stored() {
        let mut a = anomaly("x", 0);
        a.chain.push(crate::model::ChainLink {
            pid: 1,
            exe: "/usr/bin/mysql".into(),
            argv: vec!["mysql".into(), "--password=hunter2secret".into()],
            uid: 0,
        });
        a.evidence.push(crate::model::Evidence {
            id: "e".into(),
            time_ns: 0,
            summary: "exec curl https://bob:hunter2secret@example.org/x".into(),
            detail: json!({ "argv": ["mysql", "--password=hunter2secret"],
                "nested": { "cmdline": "mysql --password=hunter2secret" } }),
        });
        redact_command_lines(&mut a);
        let text = serde_json::to_string(&a).unwrap();
        assert!(!text.contains("hunter2secret"), "{text}");
        assert!(
            text.contains("mysql") && text.contains("REDACTED"),
            "{text}"
        );
        let mut b = anomaly("x", 0);
        b.chain = a.chain.clone();
        redact_command_lines(&mut b);
        assert_eq!(
            a.chain, b.chain,
            "redaction is stable (retries stay duplicates)"
        );
    }

    #[test]
    fn batch_envelopes_and_host_sets() {
        let ok = IngestBatch {
            batch_id: "b".into(),
            host: Some("web-1".into()),
            anomalies: vec![anomaly("a", 0)],
            snapshots: vec![json!({ "system": { "hostname": "web-2" } })],
            ..Default::default()
        };
        assert!(batch_problem(&ok).is_none());
        assert!(batch_problem(&IngestBatch::default()).is_some());
        let bad = IngestBatch {
            batch_id: "x\r".into(),
            ..Default::default()
        };
        assert!(batch_problem(&bad).is_some());
        let many = IngestBatch {
            batch_id: "m".into(),
            fingerprints: vec![json!({}); MAX_BATCH_ITEMS + 1],
            ..Default::default()
        };
        assert!(batch_problem(&many).is_some());
        let hosts: Vec<String> = hosts_named(&ok).into_iter().collect();
        assert_eq!(hosts, ["h", "web-1", "web-2"]);
    }
}
