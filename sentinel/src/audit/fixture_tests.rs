//! Summaries of the fixture logs in tests/data/audit/: interleaved, hex-encoded, malformed,
//! truncated and brute-force records.

use std::path::PathBuf;

use super::privacy::UserHasher;
use super::reader::read_window;
use super::summary::{AuditSummary, SummaryOptions, Window, summarize};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/audit")
        .join(name)
}

fn hasher() -> UserHasher {
    UserHasher::with_key(b"fixture-key-0123456789")
}

fn detections(s: &AuditSummary) -> Vec<&str> {
    s.risk_factors
        .iter()
        .map(|f| f.detection.as_str())
        .collect()
}

fn summary_of(name: &str) -> AuditSummary {
    let (events, stats) = read_window(&fixture(name), 0, i64::MAX).unwrap();
    let window = Window {
        seconds: 3600,
        ..Default::default()
    };
    let opts = SummaryOptions {
        brute_force_threshold: 5,
        brute_force_window_secs: 60,
        baseline_min_samples: 3,
    };
    let mut s = summarize(&events, window, &hasher(), None, &opts);
    s.read = stats;
    s
}

#[test]
fn interleaved_records_group_by_serial() {
    let s = summary_of("interleaved.log");
    assert_eq!(s.events, 4);
    assert_eq!(s.read.malformed_lines, 0);
    let w = &s.file_integrity.watched;
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].key, "identity");
    assert_eq!(w[0].count, 2);
    assert_eq!(w[0].paths, vec!["/etc/shadow", "/etc/passwd"]);
    assert_eq!(w[0].processes, vec!["/usr/bin/cat", "/usr/bin/vim.basic"]);
    assert_eq!(w[0].evidence, vec!["audit:501", "audit:504"]);
    assert_eq!(
        w[0].users_hashed,
        vec![hasher().hash("alice"), hasher().hash("root")]
    );
    let chain = &w[0].process_chain;
    assert_eq!(chain.last().unwrap().exe, "/usr/bin/cat");
    assert_eq!(chain.last().unwrap().pid, 4101);
    let pa = &s.process_activity;
    assert_eq!(
        (pa.tmp_executions, pa.devshm_executions, pa.shell_spawns),
        (1, 1, 1)
    );
    let paths: Vec<_> = pa.executions.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["/dev/shm/x", "/tmp/payload"]);
    assert_eq!(
        detections(&s),
        ["watched_file_access", "exec_from_devshm", "exec_from_tmp"]
    );
    assert_eq!(s.risk_score, 60);
}

#[test]
fn hex_fields_are_decoded_and_secrets_redacted() {
    let s = summary_of("hex.log");
    let cmds = &s.privilege_escalation.sudo_commands;
    assert_eq!(cmds.len(), 1);
    assert_eq!(cmds[0].command, "mysql -u root -p[REDACTED]");
    assert_eq!(cmds[0].user_hashed, hasher().hash("alice"));
    assert_eq!(
        s.authentication.failure_users_hashed,
        vec![hasher().hash("my user")]
    );
    let w = &s.file_integrity.watched[0];
    assert_eq!(w.key, "secret-key");
    let alice = hasher().hash("alice");
    assert_eq!(w.paths, vec![format!("/home/{alice}/my docs/notes 2.txt")]);
    assert_eq!(w.processes, vec!["/tmp/my dir/cat"]);
    let json = serde_json::to_string(&s).unwrap();
    assert!(
        !json.contains("alice") && !json.contains("hunter2"),
        "{json}"
    );
}

#[test]
fn malformed_lines_are_counted_and_the_rest_is_kept() {
    let s = summary_of("malformed.log");
    assert_eq!(s.read.malformed_lines, 5, "{:?}", s.read);
    assert_eq!(s.read.non_utf8_lines, 1);
    assert_eq!(s.authentication.failures, 2);
    assert_eq!(s.authentication.successes, 1);
    assert!(!s.authentication.brute_force_detected);
}

#[test]
fn truncated_tail_is_malformed_but_earlier_records_count() {
    let s = summary_of("truncated.log");
    assert_eq!(s.read.malformed_lines, 1);
    assert_eq!(s.authentication.failures, 1);
    assert_eq!(s.process_activity.tmp_executions, 1);
    assert_eq!(s.process_activity.executions[0].path, "/tmp/dropper");
}

#[test]
fn brute_force_su_sudo_accounts_and_anomaly_records() {
    let s = summary_of("bruteforce.log");
    let a = &s.authentication;
    assert_eq!(a.failures, 7);
    assert!(a.brute_force_detected);
    assert_eq!(a.bursts.len(), 1);
    assert_eq!(a.bursts[0].count, 7);
    assert_eq!(a.bursts[0].users_hashed, vec![hasher().hash("root")]);
    assert_eq!(a.bursts[0].first, "2026-11-26T13:38:20.000Z");
    assert_eq!(s.privilege_escalation.sudo_count, 1);
    assert_eq!(s.privilege_escalation.su_count, 1);
    assert_eq!(
        s.privilege_escalation.sudo_commands[0].command,
        "systemctl restart nginx"
    );
    assert_eq!(s.account_changes.len(), 1);
    assert_eq!(s.account_changes[0].kind, "ADD_USER");
    assert_eq!(s.anomalous_records[0].kind, "ANOM_PROMISCUOUS");
    assert_eq!(s.security_framework.apparmor_denials, 1);
    assert_eq!(s.security_framework.selinux_avc_denials, 1);
    assert_eq!(
        detections(&s),
        [
            "auth_failure",
            "brute_force",
            "account_change",
            "audit_anomaly_record",
            "mac_denial"
        ]
    );
    let brute = &s.risk_factors[1];
    assert_eq!(brute.evidence.len(), 7);
    assert!(brute.evidence.iter().all(|e| e.starts_with("audit:8")));
    assert_eq!(s.risk_score, 15 + 35 + 15 + 15 + 2 * 2);
}
