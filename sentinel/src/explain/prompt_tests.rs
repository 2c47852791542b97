use super::*;
use crate::explain::facts;
use crate::explain::redact::Redactor;
use crate::model::Evidence;

fn data(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/explain")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub(crate) fn anomaly() -> Anomaly {
    serde_json::from_str(&data("anomaly.json")).unwrap()
}

fn redactor() -> Redactor {
    // Only the passwd list is known here; the principal's name must still be hashed.
    Redactor::new(b"prompt-test-key-0123456789".to_vec())
}

#[test]
fn anomaly_prompt_is_redacted_and_cites_evidence_ids() {
    let a = anomaly();
    let r = redactor();
    let p = build(
        &Subject::Anomaly {
            anomaly: &a,
            baseline: None,
        },
        &r,
        3000,
    );
    let all = format!("{}\n{}", p.system, p.user);
    for secret in ["Hunter2pass", "sk-proj-", "abc123secretvalue", "alice"] {
        assert!(!all.contains(secret), "{secret} leaked:\n{all}");
    }
    assert!(p.user.contains(&r.user_hash("alice")));
    assert!(p.user.contains("[ev-101]") && p.user.contains("[ev-102]"));
    assert!(p.user.contains("exec_from_tmp (weight 30)"));
    assert!(p.user.contains("(acting process)"));
    assert!(p.user.contains("score 70/100"));
    assert_eq!(
        p.known_ids.iter().cloned().collect::<Vec<_>>(),
        vec!["ev-101", "ev-102"]
    );
    assert!(p.omitted.is_empty());
    assert!(
        p.redactions.values().sum::<usize>() >= 5,
        "{:?}",
        p.redactions
    );
    assert!(p.estimated_tokens <= 3000);
}

#[test]
fn budget_keeps_the_most_relevant_facts_and_notes_the_cut() {
    let mut a = anomaly();
    // Many low-value events that no factor refers to, each large.
    for i in 0..200 {
        a.evidence.push(Evidence {
            id: format!("noise-{i}"),
            time_ns: a.time_ns + i,
            summary: format!("open /usr/share/doc/file-{i} {}", "x".repeat(200)),
            detail: serde_json::Value::Null,
        });
    }
    let p = build(
        &Subject::Anomaly {
            anomaly: &a,
            baseline: None,
        },
        &redactor(),
        1500,
    );
    assert!(p.estimated_tokens <= 1500, "{}", p.estimated_tokens);
    // Factors and the evidence they cite outrank the noise.
    assert!(p.user.contains("masquerade_kernel_thread"));
    assert!(p.user.contains("[ev-101]") && p.user.contains("[ev-102]"));
    assert!(p.user.contains("## Omitted for the token budget"));
    let note = p.omitted.join(" ");
    assert!(
        note.contains("of Evidence") && note.contains("noise-"),
        "{note}"
    );
    // Cut ids stay citable: they exist in the anomaly.
    assert!(p.known_ids.contains("noise-199"));
}

#[test]
fn snapshot_facts_are_addressable_and_flagged_items_come_first() {
    let v: serde_json::Value = serde_json::from_str(&data("snapshot_after.json")).unwrap();
    let p = build(&Subject::Snapshot(&v), &redactor(), 3000);
    assert!(p.known_ids.contains("config_files[/etc/ssh/sshd_config]"));
    assert!(p.known_ids.contains("network.listeners[tcp/0.0.0.0:4444]"));
    assert!(p.user.contains("world_writable"));
    assert!(!p.user.contains("probe_duration_ms"));
    // With a tight budget the world-writable file survives and plain ones go first.
    let tight = build(&Subject::Snapshot(&v), &redactor(), 600);
    assert!(tight.user.contains("world_writable"), "{}", tight.user);
    assert!(!tight.omitted.is_empty());
}

#[test]
fn diff_matches_records_by_identity_and_ignores_probe_noise() {
    let a: serde_json::Value = serde_json::from_str(&data("snapshot_before.json")).unwrap();
    let b: serde_json::Value = serde_json::from_str(&data("snapshot_after.json")).unwrap();
    let d = facts::diff(&a, &b);
    let changes = d["changes"].as_array().unwrap();
    let has = |path: &str, kind: &str| {
        changes
            .iter()
            .any(|c| c["path"] == path && c["change"] == kind)
    };
    assert!(has("config_files[/etc/passwd].checksum", "changed"));
    assert!(has(
        "config_files[/etc/ssh/sshd_config].permissions",
        "changed"
    ));
    assert!(has("config_files[/etc/ssh/sshd_config].warning", "added"));
    assert!(has("network.listeners[tcp/0.0.0.0:4444]", "added"));
    assert!(has(
        "process_summary.notable_processes[4477/kworkerd]",
        "added"
    ));
    assert!(has("process_summary.zombie_count", "changed"));
    assert!(!changes.iter().any(|c| c["path"] == "probe_time"));
    assert!(!has("network.listeners[tcp/0.0.0.0:22]", "added"));
    assert_eq!(facts::diff(&a, &a)["changes"].as_array().unwrap().len(), 0);
    let p = build(&Subject::Diff(&d), &redactor(), 3000);
    assert!(p.known_ids.contains("network.listeners[tcp/0.0.0.0:4444]"));
    assert!(p.user.contains("before -> after"));
}

#[test]
fn json_redaction_hashes_user_fields_and_argv() {
    let r = redactor();
    let v = serde_json::json!({"user": "mallory", "argv": ["mysql", "-pX1"], "note": "TOKEN=abc"});
    let out = redact_json(&v, &r, &mut Counts::new());
    assert_eq!(out["user"], r.user_hash("mallory"));
    assert_eq!(out["argv"][1], "-p[REDACTED]");
    assert_eq!(out["note"], "TOKEN=[REDACTED]");
}

#[test]
fn iso_time_formats_epoch_nanoseconds() {
    assert_eq!(crate::timefmt::rfc3339_secs(0), "1970-01-01T00:00:00Z");
    assert_eq!(
        crate::timefmt::rfc3339_secs(1_764_180_000_000_000_000),
        "2025-11-26T18:00:00Z"
    );
    assert_eq!(
        crate::timefmt::rfc3339_secs(951_782_400_000_000_000),
        "2000-02-29T00:00:00Z"
    );
}

#[test]
fn snapshot_ids_are_unique_and_empty_sections_are_skipped() {
    let v = serde_json::json!({
        "audit_summary": {
            "anomalies": [],
            "risk_factors": [
                {"detection": "watched_file_access", "reason": "a"},
                {"detection": "watched_file_access", "reason": "b"}
            ]
        },
        "findings": [{"detection": "zombie", "reason": "1 zombie", "severity": "critical"}]
    });
    let p = build(&Subject::Snapshot(&v), &redactor(), 3000);
    assert!(
        p.known_ids
            .contains("audit_summary.risk_factors[watched_file_access]")
    );
    assert!(p.known_ids.contains("audit_summary.risk_factors[1]"));
    assert!(p.known_ids.contains("findings[zombie]"));
    assert!(!p.user.contains("anomalies"));
}

#[test]
fn incident_prompt_pseudonymises_the_sessions_user() {
    let a = anomaly();
    let mut b = a.clone();
    b.id = format!("{}-2", a.id);
    b.time_ns += 1;
    let mut t = crate::incident::Tracker::default();
    t.observe(&a);
    let i = t.observe(&b).expect("two steps");
    let r = redactor();
    let p = build(&Subject::Incident(&i), &r, 3000);
    assert!(!p.user.contains("alice"), "{}", p.user);
    assert!(p.user.contains(&r.user_hash("alice")), "{}", p.user);
}
