//! The deterministic local explanation: built from the detectors' own factors (or the
//! snapshot's findings) without any model, so `sentinel analyze` always answers and the
//! agent has something to show when the provider is absent, slow or wrong.

use serde_json::Value;

use super::facts::identity;
use super::policy;
use super::prompt::Subject;
use crate::model::{Anomaly, Explanation, NextStep};

/// Confidence the local explainer states: it restates the detectors, it does not weigh them.
pub const LOCAL_CONFIDENCE: f32 = 0.5;

pub fn explain(subject: &Subject) -> Explanation {
    match subject {
        Subject::Anomaly { anomaly, .. } => anomaly_explanation(anomaly),
        Subject::Snapshot(v) => snapshot_explanation(v),
        Subject::Diff(d) => diff_explanation(d),
        Subject::Incident(i) => super::incident::local_explanation(i),
    }
}

/// Single-quotes a word for a POSIX shell, so a hostile path cannot become a second command.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@,".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn step(description: &str, command: Option<String>) -> NextStep {
    let policy = command
        .as_deref()
        .map(|c| policy::check(c).decision.as_str().to_string());
    NextStep {
        description: description.to_string(),
        command,
        policy,
    }
}

fn benign_for(detection: &str) -> &'static str {
    let d = detection.to_ascii_lowercase();
    let table: &[(&[&str], &str)] = &[
        (
            &["tmp", "shm"],
            "Installers, package builds and some updaters unpack and run helpers from temporary directories.",
        ),
        (
            &["credential", "shadow", "passwd", "sensitive"],
            "Password changes, account tools and backup jobs legitimately read account files.",
        ),
        (
            &["brute", "auth", "login"],
            "A user mistyping a password, or a client retrying with stale credentials.",
        ),
        (
            &["sudo", "priv", "setuid", "capab"],
            "Routine administration through sudo, or a package maintainer script.",
        ),
        (
            &["shell", "reverse", "interactive"],
            "An administrator or a deployment script opened a shell.",
        ),
        (
            &["net", "connect", "listen", "port"],
            "A newly installed or updated service, or a developer tool, opened the connection.",
        ),
        (
            &["cron", "persist", "systemd", "service"],
            "A legitimate scheduled job or service was added or changed.",
        ),
        (
            &["new", "rare", "baseline", "first", "unusual"],
            "A first-time but legitimate task (new software, job or colleague) not yet in the learned baseline.",
        ),
    ];
    table
        .iter()
        .find(|(keys, _)| keys.iter().any(|k| d.contains(k)))
        .map(|(_, text)| *text)
        .unwrap_or("Legitimate but unusual administrative activity.")
}

pub fn anomaly_explanation(a: &Anomaly) -> Explanation {
    let mut factors: Vec<_> = a.factors.iter().collect();
    factors.sort_by_key(|f| std::cmp::Reverse(f.weight));
    let acting = a.chain.last();
    let exe = acting
        .map(|l| l.exe.as_str())
        .unwrap_or("an unknown program");
    let who = match &a.principal.user {
        Some(u) => format!("{u} (uid {})", a.principal.uid),
        None => format!("uid {}", a.principal.uid),
    };
    let summary = match factors.first() {
        Some(top) => {
            let more = match factors.len() {
                1 => String::new(),
                n => format!(" (+{} more reason{})", n - 1, if n == 2 { "" } else { "s" }),
            };
            format!(
                "{} anomaly (score {}) for {who} running {exe}: {}{more}",
                capitalise(a.level.as_str()),
                a.score,
                top.reason
            )
        }
        None => format!(
            "{} anomaly (score {}) for {who} running {exe}.",
            capitalise(a.level.as_str()),
            a.score
        ),
    };
    let reasons: Vec<String> = factors
        .iter()
        .enumerate()
        .map(|(i, f)| {
            format!(
                "{}) {} [{}, weight {}]",
                i + 1,
                f.reason,
                f.detection,
                f.weight
            )
        })
        .collect();
    let likely_explanation = if reasons.is_empty() {
        "Sentinel recorded this activity without detector reasons; see the evidence.".to_string()
    } else {
        format!(
            "Sentinel's detectors flagged this activity because: {}. This local explanation restates the detectors' findings; it does not judge intent.",
            reasons.join("; ")
        )
    };
    let mut benign_alternatives: Vec<String> = Vec::new();
    for f in &factors {
        let b = benign_for(&f.detection).to_string();
        if !benign_alternatives.contains(&b) {
            benign_alternatives.push(b);
        }
    }
    benign_alternatives.truncate(5);
    let mut evidence_ids: Vec<String> = Vec::new();
    for id in factors.iter().flat_map(|f| f.evidence.iter()) {
        if !evidence_ids.contains(id) {
            evidence_ids.push(id.clone());
        }
    }
    let mut next_steps = Vec::new();
    if let Some(link) = acting {
        next_steps.push(step(
            "Check whether the acting process still runs, with its parent and start time.",
            Some(format!("ps -o pid,ppid,uid,lstart,args -p {}", link.pid)),
        ));
        let q = shell_quote(&link.exe);
        next_steps.push(step(
            "Inspect the executable and whether a package owns it.",
            Some(format!("ls -l {q} && sha256sum {q} && dpkg -S {q}")),
        ));
        next_steps.push(step(
            "Look for the process in the audit log.",
            Some(format!("ausearch -p {} -i", link.pid)),
        ));
    }
    let last = match &a.principal.user {
        Some(u) => format!("last -n 20 {}", shell_quote(u)),
        None => "last -n 20".to_string(),
    };
    next_steps.push(step("Review recent logins of the account.", Some(last)));
    if factors.iter().any(|f| {
        let d = f.detection.to_ascii_lowercase();
        ["net", "connect", "listen", "outbound", "port"]
            .iter()
            .any(|k| d.contains(k))
    }) {
        next_steps.push(step(
            "List open connections and listeners with their processes.",
            Some("ss -tunap".into()),
        ));
    }
    Explanation {
        summary,
        likely_explanation,
        benign_alternatives,
        confidence: LOCAL_CONFIDENCE,
        evidence_ids,
        next_steps,
        source: "local".into(),
        warnings: Vec::new(),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn num(v: &Value, ptr: &str) -> f64 {
    v.pointer(ptr).and_then(Value::as_f64).unwrap_or(0.0)
}

pub fn snapshot_explanation(v: &Value) -> Explanation {
    let host = v
        .pointer("/system/hostname")
        .and_then(Value::as_str)
        .unwrap_or("this host");
    let kernel = v
        .pointer("/system/kernel")
        .and_then(Value::as_str)
        .unwrap_or("unknown kernel");
    let mut findings = Vec::new();
    let mut ids = Vec::new();
    let mut steps = Vec::new();
    let zombies = num(v, "/process_summary/zombie_count");
    if zombies > 0.0 {
        findings.push(format!(
            "{zombies} zombie process(es): a parent is not reaping its children"
        ));
        steps.push(step(
            "Find the zombies and their parents.",
            Some("ps -eo pid,ppid,stat,etime,args | awk '$3 ~ /Z/'".into()),
        ));
    }
    let high_fd = num(v, "/process_summary/high_fd_count");
    if high_fd > 0.0 {
        findings.push(format!(
            "{high_fd} process(es) with many open files (possible leak)"
        ));
    }
    let stuck = num(v, "/process_summary/stuck_count");
    if stuck > 0.0 {
        findings.push(format!(
            "{stuck} process(es) stuck in uninterruptible sleep"
        ));
    }
    if let Some(procs) = v
        .pointer("/process_summary/notable_processes")
        .and_then(Value::as_array)
    {
        let mut by_flag: Vec<(String, Vec<String>)> = Vec::new();
        for (i, p) in procs.iter().enumerate().take(20) {
            let id = identity(p).unwrap_or_else(|| i.to_string());
            ids.push(format!("process_summary.notable_processes[{id}]"));
            let flag = p.get("flag").and_then(Value::as_str).unwrap_or("notable");
            let name = format!(
                "{} (pid {})",
                p.get("name").and_then(Value::as_str).unwrap_or("?"),
                p.get("pid").and_then(Value::as_i64).unwrap_or(0)
            );
            match by_flag.iter_mut().find(|(f, _)| f == flag) {
                Some((_, names)) => names.push(name),
                None => by_flag.push((flag.to_string(), vec![name])),
            }
        }
        for (flag, names) in by_flag {
            findings.push(format!("{}: {}", flag.replace('_', " "), names.join(", ")));
        }
    }
    if let Some(files) = v.get("config_files").and_then(Value::as_array) {
        for (i, f) in files.iter().enumerate() {
            if let Some(w) = f.get("warning").and_then(Value::as_str) {
                let path = f.get("path").and_then(Value::as_str).unwrap_or("?");
                findings.push(format!("{path}: {}", w.replace('_', " ")));
                ids.push(format!(
                    "config_files[{}]",
                    identity(f).unwrap_or_else(|| i.to_string())
                ));
                steps.push(step(
                    "Check who can write the configuration file.",
                    Some(format!("ls -l {}", shell_quote(path))),
                ));
            }
        }
    }
    // Sentinel's own snapshot rules, when the snapshot carries them (schema_version >= 1).
    if let Some(list) = v.get("findings").and_then(Value::as_array) {
        for f in list {
            let sev = f
                .get("severity")
                .and_then(Value::as_str)
                .unwrap_or("warning");
            let reason = f.get("reason").and_then(Value::as_str).unwrap_or("?");
            let finding = format!("{sev}: {reason}");
            if !findings.contains(&finding) {
                findings.push(finding);
            }
        }
    }
    let listeners = num(v, "/network/total_listeners");
    if listeners > 0.0 {
        findings.push(format!("{listeners} listening socket(s)"));
        steps.push(step(
            "Review listening sockets and their processes.",
            Some("ss -tulpn".into()),
        ));
    }
    if let Some(level) = v
        .pointer("/audit_summary/risk_level")
        .and_then(Value::as_str)
    {
        findings.push(format!(
            "audit risk level {level} (score {})",
            num(v, "/audit_summary/risk_score")
        ));
        ids.push("audit_summary".into());
    }
    let summary = format!(
        "{host} ({kernel}, up {:.1} days, memory {:.0}% used): {} finding(s).",
        num(v, "/system/uptime_days"),
        num(v, "/system/memory_used_percent"),
        findings.len()
    );
    let likely_explanation = if findings.is_empty() {
        "Nothing in the snapshot stands out by the local rules (zombies, open files, stuck processes, world-writable configuration, audit risk).".into()
    } else {
        format!("Local rules found: {}.", findings.join("; "))
    };
    Explanation {
        summary,
        likely_explanation,
        benign_alternatives: vec![
            "Long-running hosts accumulate harmless oddities (old processes, busy services)."
                .into(),
        ],
        confidence: LOCAL_CONFIDENCE,
        evidence_ids: ids,
        next_steps: steps,
        source: "local".into(),
        warnings: Vec::new(),
    }
}

pub fn diff_explanation(d: &Value) -> Explanation {
    let mut changes = d
        .get("changes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    changes.sort_by_key(|c| std::cmp::Reverse(super::facts::change_priority(c)));
    let count = |k: &str| {
        changes
            .iter()
            .filter(|c| c.get("change").and_then(Value::as_str) == Some(k))
            .count()
    };
    let paths: Vec<String> = changes
        .iter()
        .filter_map(|c| {
            let p = c.get("path")?.as_str()?;
            let k = c.get("change")?.as_str()?;
            Some(format!("{p} {k}"))
        })
        .collect();
    let mut steps = Vec::new();
    for c in &changes {
        let p = c.get("path").and_then(Value::as_str).unwrap_or("");
        if let Some(file) = p
            .strip_prefix("config_files[")
            .and_then(|r| r.split(']').next())
        {
            let s = step(
                &format!("Verify the changed configuration file {file}."),
                Some(format!("ls -l {q} && sha256sum {q}", q = shell_quote(file))),
            );
            if !steps.contains(&s) {
                steps.push(s);
            }
        }
    }
    if paths.iter().any(|p| p.starts_with("network.listeners")) {
        steps.push(step(
            "Review listening sockets and their processes.",
            Some("ss -tulpn".into()),
        ));
    }
    steps.truncate(6);
    Explanation {
        summary: format!(
            "{} change(s) between the snapshots: {} added, {} removed, {} changed.",
            changes.len(),
            count("added"),
            count("removed"),
            count("changed")
        ),
        likely_explanation: if paths.is_empty() {
            "The two snapshots describe the same state.".into()
        } else {
            let shown: Vec<&str> = paths.iter().take(12).map(String::as_str).collect();
            format!("Changed: {}.", shown.join("; "))
        },
        benign_alternatives: vec![
            "Package updates, configuration management runs and restarts change these fields."
                .into(),
        ],
        confidence: LOCAL_CONFIDENCE,
        evidence_ids: changes
            .iter()
            .filter_map(|c| c.get("path")?.as_str().map(str::to_string))
            .take(20)
            .collect(),
        next_steps: steps,
        source: "local".into(),
        warnings: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(name: &str) -> Value {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/explain")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    #[test]
    fn anomaly_fallback_restates_factors_deterministically() {
        let a = crate::explain::prompt::tests::anomaly();
        let e = anomaly_explanation(&a);
        assert_eq!(e, anomaly_explanation(&a), "deterministic");
        assert_eq!(e.source, "local");
        assert!(
            e.summary
                .starts_with("High anomaly (score 70) for alice (uid 1001)")
        );
        assert!(e.summary.contains("(+2 more reasons)"));
        assert!(
            e.likely_explanation
                .contains("1) alice ran /tmp/.cache/kworkerd")
        );
        assert_eq!(e.evidence_ids, vec!["ev-101", "ev-102"]);
        assert!(e.benign_alternatives[0].contains("temporary directories"));
        assert!(
            e.next_steps
                .iter()
                .any(|s| s.command.as_deref() == Some("ss -tunap"))
        );
        for s in &e.next_steps {
            assert_eq!(s.policy.as_deref(), Some("allowed"), "{s:?}");
        }
    }

    #[test]
    fn hostile_paths_are_quoted_in_suggested_commands() {
        assert_eq!(shell_quote("/usr/bin/ls"), "/usr/bin/ls");
        assert_eq!(shell_quote("/tmp/x; rm -rf /"), "'/tmp/x; rm -rf /'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        let mut a = crate::explain::prompt::tests::anomaly();
        a.chain.last_mut().unwrap().exe = "/tmp/a'; rm -rf / #".into();
        for s in anomaly_explanation(&a).next_steps {
            assert_ne!(s.policy.as_deref(), Some("blocked"), "{s:?}");
        }
    }

    #[test]
    fn snapshot_and_diff_fallbacks_name_their_findings() {
        let e = snapshot_explanation(&data("snapshot_after.json"));
        assert!(e.summary.starts_with("web01 (Linux 6.1.0-26-amd64"));
        assert!(
            e.likely_explanation
                .contains("/etc/ssh/sshd_config: world writable")
        );
        assert!(e.likely_explanation.contains("1 zombie"));
        assert!(
            e.evidence_ids
                .contains(&"config_files[/etc/ssh/sshd_config]".to_string())
        );
        let d = crate::explain::facts::diff(
            &data("snapshot_before.json"),
            &data("snapshot_after.json"),
        );
        let e = diff_explanation(&d);
        assert!(e.summary.contains("4 added, 0 removed"), "{}", e.summary);
        // The new warning outranks routine drift.
        assert_eq!(
            e.evidence_ids[0],
            "config_files[/etc/ssh/sshd_config].warning"
        );
        let files: Vec<_> = e
            .next_steps
            .iter()
            .filter_map(|s| s.command.clone())
            .collect();
        assert_eq!(files.len(), 3, "one step per file, no repeats: {files:?}");
    }
}
