//! The window summary of audit events (docs/audit.md): authentication failures and brute-force
//! bursts, sudo/su use against the baseline, watched-file hits by key with process chains,
//! executions from /tmp and /dev/shm, account changes, MAC denials and anomaly records.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::baseline::{AuditBaseline, Deviations};
use super::chain;
use super::classify::{self, Denial};
use super::privacy::UserHasher;
use super::reader::ReadStats;
use super::record::AuditEvent;
use crate::model::{ChainLink, Factor, Level};

/// Evidence ids kept per item; the count says how many there were.
const MAX_EVIDENCE: usize = 20;

#[derive(Clone, Debug, Default, Serialize)]
pub struct AuditSummary {
    /// False when the log could not be read (see `notes`).
    pub enabled: bool,
    pub auditd_running: bool,
    /// Plain sentences about what could not be done ("auditd is not running", ...).
    pub notes: Vec<String>,
    pub log_source: String,
    pub window: Window,
    pub read: ReadStats,
    pub events: u64,
    pub user_hash: UserHashInfo,
    pub authentication: Authentication,
    pub privilege_escalation: PrivilegeEscalation,
    pub file_integrity: FileIntegrity,
    pub process_activity: ProcessActivity,
    pub account_changes: Vec<Counted>,
    pub security_framework: SecurityFramework,
    pub anomalous_records: Vec<Counted>,
    pub anomalies: Vec<super::baseline::BaselineAnomaly>,
    pub learning: Learning,
    pub risk_factors: Vec<Factor>,
    pub risk_score: u8,
    pub risk_level: Option<Level>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Window {
    pub since: String,
    pub until: String,
    pub seconds: u64,
    #[serde(skip)]
    pub since_ms: i64,
    #[serde(skip)]
    pub until_ms: i64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct UserHashInfo {
    pub algorithm: &'static str,
    pub bits_shown: u32,
    /// "per-install" or "ephemeral" (this run only: not comparable across runs).
    pub key: &'static str,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Authentication {
    pub failures: u64,
    pub successes: u64,
    pub failure_users_hashed: Vec<String>,
    pub brute_force_detected: bool,
    pub bursts: Vec<Burst>,
    pub baseline_avg: Option<f64>,
    pub deviation_pct: Option<f64>,
    pub evidence: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Burst {
    pub count: u64,
    pub first: String,
    pub last: String,
    pub users_hashed: Vec<String>,
    pub evidence: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PrivilegeEscalation {
    pub sudo_count: u64,
    pub sudo_baseline_avg: Option<f64>,
    pub sudo_deviation_pct: Option<f64>,
    /// Successful su sessions (su writes no USER_CMD; its failures count as auth failures).
    pub su_count: u64,
    pub su_baseline_avg: Option<f64>,
    pub su_deviation_pct: Option<f64>,
    pub sudo_commands: Vec<SudoCommand>,
    pub evidence: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SudoCommand {
    pub user_hashed: String,
    /// Secrets redacted.
    pub command: String,
    pub count: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct FileIntegrity {
    pub watched: Vec<WatchHit>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct WatchHit {
    pub key: String,
    pub count: u64,
    pub paths: Vec<String>,
    /// Executables that touched the paths.
    pub processes: Vec<String>,
    /// Chain of the first hit, oldest first: the live ancestors of its parent, then the actor.
    pub process_chain: Vec<ChainLink>,
    pub users_hashed: Vec<String>,
    pub suspicious: Option<String>,
    pub evidence: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ProcessActivity {
    pub tmp_executions: u64,
    pub devshm_executions: u64,
    pub shell_spawns: u64,
    pub executions: Vec<Execution>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Execution {
    pub path: String,
    pub count: u64,
    pub users_hashed: Vec<String>,
    pub process_chain: Vec<ChainLink>,
    pub evidence: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Counted {
    #[serde(rename = "type")]
    pub kind: String,
    pub count: u64,
    pub users_hashed: Vec<String>,
    pub evidence: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SecurityFramework {
    pub selinux_enforcing: Option<bool>,
    pub selinux_avc_denials: u64,
    pub apparmor_denials: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Learning {
    pub sample_count: u32,
    /// "none" (no baseline), "low" (< 5 samples), "medium" (< 20), "high".
    pub confidence: &'static str,
}

/// Knobs the summary needs from `AuditConfig`.
pub struct SummaryOptions {
    pub brute_force_threshold: u32,
    pub brute_force_window_secs: u64,
    pub baseline_min_samples: u32,
}

/// Who acted, as a name: enriched AUID/UID names, else auid/uid looked up in passwd.
fn actor(ev: &AuditEvent, names: &HashMap<u32, String>) -> Option<String> {
    let enriched = ev
        .field("AUID")
        .filter(|n| *n != "unset")
        .or_else(|| ev.field("UID"));
    if let Some(n) = enriched {
        return Some(n.to_string());
    }
    let uid = ev.auid().or(ev.uid())?;
    Some(names.get(&uid).cloned().unwrap_or_else(|| uid.to_string()))
}

fn push_ev(list: &mut Vec<String>, ev: &AuditEvent) {
    if list.len() < MAX_EVIDENCE {
        list.push(ev.evidence_id());
    }
}

fn push_unique(list: &mut Vec<String>, v: String) {
    if !list.contains(&v) && list.len() < MAX_EVIDENCE {
        list.push(v);
    }
}

fn chain_of(ev: &AuditEvent, hasher: &UserHasher) -> Vec<ChainLink> {
    let pid = ev
        .num("pid")
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or(0);
    let ppid = ev
        .num("ppid")
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or(0);
    let mut c = if ppid > 0 {
        chain::live_chain(ppid)
    } else {
        Vec::new()
    };
    // The actor has usually exited by now; its identity comes from the record itself.
    c.retain(|l| l.pid != pid);
    c.push(ChainLink {
        pid,
        exe: ev.field("exe").unwrap_or("?").to_string(),
        argv: Vec::new(),
        uid: ev.uid().unwrap_or(u32::MAX),
    });
    for l in &mut c {
        l.exe = hasher.redact_path(&l.exe);
    }
    c
}

pub fn iso_ms(ms: i64) -> String {
    crate::timefmt::rfc3339_ms(ms.saturating_mul(1_000_000))
}

/// Builds the summary of `events` (already limited to `window`).
pub fn summarize(
    events: &[AuditEvent],
    window: Window,
    hasher: &UserHasher,
    baseline: Option<&AuditBaseline>,
    opts: &SummaryOptions,
) -> AuditSummary {
    let names = super::privacy::passwd_names();
    let mut s = AuditSummary {
        enabled: true,
        events: events.len() as u64,
        user_hash: UserHashInfo {
            algorithm: "hmac-sha256",
            bits_shown: 64,
            key: if hasher.ephemeral {
                "ephemeral"
            } else {
                "per-install"
            },
        },
        ..Default::default()
    };
    let mut fail_times: Vec<(i64, String, String)> = Vec::new();
    let mut sudo_cmds: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut watched: BTreeMap<String, WatchHit> = BTreeMap::new();
    let mut execs: BTreeMap<String, Execution> = BTreeMap::new();
    let mut accounts: BTreeMap<String, Counted> = BTreeMap::new();
    let mut anomalous: BTreeMap<String, Counted> = BTreeMap::new();

    for ev in events {
        let ty = ev.primary_type();
        let exe = ev.field("exe").unwrap_or("");
        if ty == "USER_AUTH" {
            if ev.failed() {
                s.authentication.failures += 1;
                let acct = ev
                    .field("acct")
                    .filter(|a| *a != "?")
                    .map(|a| hasher.hash(a));
                if let Some(h) = &acct {
                    push_unique(&mut s.authentication.failure_users_hashed, h.clone());
                }
                push_ev(&mut s.authentication.evidence, ev);
                fail_times.push((ev.time_ms, acct.unwrap_or_default(), ev.evidence_id()));
            } else {
                s.authentication.successes += 1;
            }
        }
        if classify::is_sudo(ev) {
            s.privilege_escalation.sudo_count += 1;
            push_ev(&mut s.privilege_escalation.evidence, ev);
            let who = actor(ev, &names)
                .map(|n| hasher.hash(&n))
                .unwrap_or_default();
            let cmd = classify::redacted_command(ev, hasher).unwrap_or_default();
            *sudo_cmds.entry((who, cmd)).or_default() += 1;
        }
        if classify::is_su_session(ev) {
            s.privilege_escalation.su_count += 1;
            push_ev(&mut s.privilege_escalation.evidence, ev);
        }
        if classify::is_account_change(ty) {
            let c = accounts.entry(ty.to_string()).or_insert_with(|| Counted {
                kind: ty.to_string(),
                ..Default::default()
            });
            c.count += 1;
            push_ev(&mut c.evidence, ev);
            let target = ev
                .field("acct")
                .filter(|a| *a != "?")
                .map(str::to_string)
                .or_else(|| {
                    ev.num("id")
                        .and_then(|i| u32::try_from(i).ok())
                        .map(|i| names.get(&i).cloned().unwrap_or_else(|| i.to_string()))
                });
            if let Some(t) = target {
                push_unique(&mut c.users_hashed, hasher.hash(&t));
            }
        }
        match classify::denial(ev) {
            Some(Denial::AppArmor) => s.security_framework.apparmor_denials += 1,
            Some(Denial::Selinux) => s.security_framework.selinux_avc_denials += 1,
            None => {}
        }
        if let Some(a) = classify::anomaly_type(ev) {
            let c = anomalous.entry(a.to_string()).or_insert_with(|| Counted {
                kind: a.to_string(),
                ..Default::default()
            });
            c.count += 1;
            push_ev(&mut c.evidence, ev);
        }
        if classify::is_shell_exec(ev) {
            s.process_activity.shell_spawns += 1;
        }
        if let Some((path, shm)) = classify::exec_location(ev) {
            {
                if shm {
                    s.process_activity.devshm_executions += 1;
                } else {
                    s.process_activity.tmp_executions += 1;
                }
                let path = hasher.redact_path(&path);
                let e = execs.entry(path.clone()).or_insert_with(|| Execution {
                    path,
                    process_chain: chain_of(ev, hasher),
                    ..Default::default()
                });
                e.count += 1;
                push_ev(&mut e.evidence, ev);
                if let Some(n) = actor(ev, &names) {
                    push_unique(&mut e.users_hashed, hasher.hash(&n));
                }
            }
        }
        if ev.has("SYSCALL")
            && let Some(key) = ev.key()
        {
            let w = watched.entry(key.to_string()).or_insert_with(|| {
                let chain = chain_of(ev, hasher);
                WatchHit {
                    key: key.to_string(),
                    suspicious: chain::suspicious(&chain).map(str::to_string),
                    process_chain: chain,
                    ..Default::default()
                }
            });
            w.count += 1;
            for p in ev.paths() {
                push_unique(&mut w.paths, hasher.redact_path(&p));
            }
            if !exe.is_empty() {
                push_unique(&mut w.processes, hasher.redact_path(exe));
            }
            if let Some(n) = actor(ev, &names) {
                push_unique(&mut w.users_hashed, hasher.hash(&n));
            }
            push_ev(&mut w.evidence, ev);
        }
    }

    s.authentication.bursts = bursts(
        &mut fail_times,
        opts.brute_force_threshold.max(1) as usize,
        opts.brute_force_window_secs as i64 * 1000,
    );
    s.authentication.brute_force_detected = !s.authentication.bursts.is_empty();
    s.privilege_escalation.sudo_commands = sudo_cmds
        .into_iter()
        .map(|((user_hashed, command), count)| SudoCommand {
            user_hashed,
            command,
            count,
        })
        .collect();
    s.file_integrity.watched = watched.into_values().collect();
    s.process_activity.executions = execs.into_values().collect();
    s.account_changes = accounts.into_values().collect();
    s.anomalous_records = anomalous.into_values().collect();
    s.security_framework.selinux_enforcing = std::fs::read_to_string("/sys/fs/selinux/enforce")
        .ok()
        .map(|v| v.trim() == "1");

    let hours = (window.seconds.max(1) as f64) / 3600.0;
    let dev = Deviations::compute(&s, baseline, hours, opts.baseline_min_samples);
    s.authentication.baseline_avg = dev.auth.map(|d| d.0);
    s.authentication.deviation_pct = dev.auth.map(|d| d.1);
    s.privilege_escalation.sudo_baseline_avg = dev.sudo.map(|d| d.0);
    s.privilege_escalation.sudo_deviation_pct = dev.sudo.map(|d| d.1);
    s.privilege_escalation.su_baseline_avg = dev.su.map(|d| d.0);
    s.privilege_escalation.su_deviation_pct = dev.su.map(|d| d.1);
    s.anomalies = dev.anomalies;
    s.learning = Learning {
        sample_count: baseline.map(|b| b.samples).unwrap_or(0),
        confidence: match baseline.map(|b| b.samples) {
            None | Some(0) => "none",
            Some(n) if n < 5 => "low",
            Some(n) if n < 20 => "medium",
            Some(_) => "high",
        },
    };
    s.window = window;
    s.risk_factors = super::factors::factors(&s);
    let (score, level) = crate::model::Anomaly::score_of(&s.risk_factors);
    s.risk_score = score;
    s.risk_level = Some(level);
    s
}

/// Maximal runs where at least `threshold` failures fall within `window_ms` of each other;
/// overlapping windows merge into one burst.
fn bursts(fails: &mut [(i64, String, String)], threshold: usize, window_ms: i64) -> Vec<Burst> {
    fails.sort_by_key(|f| f.0);
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut start = 0usize;
    for end in 0..fails.len() {
        while fails[end].0 - fails[start].0 > window_ms {
            start += 1;
        }
        if end + 1 - start >= threshold {
            match ranges.last_mut() {
                Some(r) if start <= r.1 => r.1 = end,
                _ => ranges.push((start, end)),
            }
        }
    }
    ranges
        .into_iter()
        .map(|(from, to)| {
            let slice = &fails[from..=to];
            let mut users = Vec::new();
            for f in slice.iter().filter(|f| !f.1.is_empty()) {
                push_unique(&mut users, f.1.clone());
            }
            Burst {
                count: slice.len() as u64,
                first: iso_ms(slice[0].0),
                last: iso_ms(slice[slice.len() - 1].0),
                users_hashed: users,
                evidence: slice
                    .iter()
                    .take(MAX_EVIDENCE)
                    .map(|f| f.2.clone())
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(t: i64, i: u32) -> (i64, String, String) {
        (t, "user_x".into(), format!("audit:{i}"))
    }

    #[test]
    fn bursts_merge_overlapping_windows_and_ignore_slow_failures() {
        // 6 failures 1 s apart, then a slow trickle every 2 minutes.
        let mut v: Vec<_> = (0..6).map(|i| f(i * 1000, i as u32)).collect();
        v.extend((0..4).map(|i| f(600_000 + i * 120_000, 100 + i as u32)));
        let b = bursts(&mut v, 5, 60_000);
        assert_eq!(b.len(), 1, "{b:?}");
        assert_eq!(b[0].count, 6);
        assert_eq!(b[0].users_hashed, vec!["user_x".to_string()]);
        let mut few: Vec<_> = (0..4).map(|i| f(i, i as u32)).collect();
        assert!(bursts(&mut few, 5, 60_000).is_empty());
    }
}
