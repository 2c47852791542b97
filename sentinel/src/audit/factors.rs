//! Audit facts as `model::Factor`s, so the audit summary is scored by the same
//! explainable model as the eBPF anomalies (`Anomaly::score_of`). Weights are documented in
//! docs/audit.md; evidence ids are "audit:<serial>".

use super::classify::weight;
use super::summary::AuditSummary;
use crate::model::Factor;

fn factor(detection: &str, reason: String, weight: u64, evidence: &[String]) -> Factor {
    Factor {
        detection: detection.to_string(),
        reason,
        weight: weight.min(u8::MAX as u64) as u8,
        evidence: evidence.to_vec(),
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub fn factors(s: &AuditSummary) -> Vec<Factor> {
    let mut out = Vec::new();
    let a = &s.authentication;
    if a.failures > 0 {
        out.push(factor(
            "auth_failure",
            format!(
                "{} for {}",
                plural(
                    a.failures,
                    "failed authentication",
                    "failed authentications"
                ),
                plural(a.failure_users_hashed.len() as u64, "account", "accounts")
            ),
            (weight::AUTH_FAILURE as u64 * a.failures).min(15),
            &a.evidence,
        ));
    }
    for b in &a.bursts {
        out.push(factor(
            "brute_force",
            format!(
                "brute force: {} failed authentications between {} and {}",
                b.count, b.first, b.last
            ),
            weight::BRUTE_FORCE as u64,
            &b.evidence,
        ));
    }
    for an in &s.anomalies {
        let evidence = match an.kind {
            "auth_failure_spike" => &a.evidence,
            "sudo_spike" | "su_spike" => &s.privilege_escalation.evidence,
            _ => &Vec::new(),
        };
        let weight = match an.kind {
            "tmp_exec_spike" => 5,
            "su_spike" => 10,
            _ => 15,
        };
        out.push(factor(
            an.kind,
            format!("above baseline: {}", an.description),
            weight,
            evidence,
        ));
    }
    for w in &s.file_integrity.watched {
        out.push(factor(
            "watched_file_access",
            format!(
                "{} on watch key '{}' ({}) by {}",
                plural(w.count, "access", "accesses"),
                w.key,
                w.paths.join(", "),
                w.processes.join(", ")
            ),
            weight::WATCHED_FILE as u64,
            &w.evidence,
        ));
        if let Some(label) = &w.suspicious {
            out.push(factor(
                "suspicious_process_chain",
                format!("{label}: {}", super::chain::render(&w.process_chain)),
                weight::SUSPICIOUS_CHAIN as u64,
                &w.evidence,
            ));
        }
    }
    for e in &s.process_activity.executions {
        let (detection, weight) = if e.path.starts_with("/dev/shm/") {
            ("exec_from_devshm", weight::EXEC_SHM)
        } else {
            ("exec_from_tmp", weight::EXEC_TMP)
        };
        out.push(factor(
            detection,
            format!(
                "executed {} from a world-writable directory ({})",
                e.path,
                plural(e.count, "time", "times")
            ),
            weight as u64,
            &e.evidence,
        ));
    }
    let counted = [
        (
            "account_change",
            "account change",
            weight::ACCOUNT_CHANGE,
            &s.account_changes,
        ),
        (
            "audit_anomaly_record",
            "kernel/auditd anomaly record",
            weight::ANOMALY_RECORD,
            &s.anomalous_records,
        ),
    ];
    for (detection, what, w, list) in counted {
        for c in list {
            out.push(factor(
                detection,
                format!("{what}: {} x{}", c.kind, c.count),
                w as u64,
                &c.evidence,
            ));
        }
    }
    let denials = s.security_framework.selinux_avc_denials + s.security_framework.apparmor_denials;
    if denials > 0 {
        out.push(factor(
            "mac_denial",
            format!(
                "{} (SELinux/AppArmor)",
                plural(denials, "access denial", "access denials")
            ),
            (weight::MAC_DENIAL as u64 * denials).min(10),
            &[],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::summary::{Burst, Execution, WatchHit};
    use crate::model::{Anomaly, Level};

    #[test]
    fn summary_facts_become_scored_factors_with_audit_evidence() {
        let mut s = AuditSummary::default();
        s.authentication.failures = 6;
        s.authentication.evidence = vec!["audit:1".into()];
        s.authentication.bursts = vec![Burst {
            count: 6,
            evidence: vec!["audit:1".into()],
            ..Default::default()
        }];
        s.process_activity.executions = vec![Execution {
            path: "/dev/shm/x".into(),
            count: 1,
            evidence: vec!["audit:9".into()],
            ..Default::default()
        }];
        s.file_integrity.watched = vec![WatchHit {
            key: "identity".into(),
            count: 2,
            evidence: vec!["audit:5".into()],
            ..Default::default()
        }];
        let f = factors(&s);
        let ids: Vec<_> = f.iter().map(|f| f.detection.as_str()).collect();
        assert_eq!(
            ids,
            [
                "auth_failure",
                "brute_force",
                "watched_file_access",
                "exec_from_devshm"
            ]
        );
        assert!(
            f.iter()
                .all(|f| f.evidence.iter().all(|e| e.starts_with("audit:")))
        );
        assert_eq!(Anomaly::score_of(&f), (90, Level::Critical));
        assert_eq!(Anomaly::score_of(&factors(&AuditSummary::default())).0, 0);
    }
}
