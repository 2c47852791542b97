//! What one audit event is (an auth failure, a sudo, a watched-file hit, an exec from /tmp,
//! ...), shared by the window summary and the live path. For the live path, `classify` turns
//! an event into a `LiveFact`: the process to join with eBPF events, a factor when the event is
//! suspicious on its own, and evidence with users hashed and secrets redacted.

use serde_json::json;

use super::privacy::{UserHasher, passwd_names, redact_command};
use super::record::AuditEvent;
use crate::model::{Evidence, Factor};

/// Factor weights, shared with the summary's factors (docs/audit.md).
pub mod weight {
    pub const AUTH_FAILURE: u8 = 3;
    pub const BRUTE_FORCE: u8 = 35;
    pub const WATCHED_FILE: u8 = 10;
    pub const SUSPICIOUS_CHAIN: u8 = 25;
    pub const EXEC_TMP: u8 = 20;
    pub const EXEC_SHM: u8 = 30;
    pub const ACCOUNT_CHANGE: u8 = 15;
    pub const ANOMALY_RECORD: u8 = 15;
    pub const MAC_DENIAL: u8 = 2;
}

const TMP_PREFIXES: &[&str] = &["/tmp/", "/var/tmp/"];
const SHM_PREFIX: &str = "/dev/shm/";
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "fish"];
const ACCOUNT_TYPES: &[&str] = &[
    "ADD_USER",
    "DEL_USER",
    "ADD_GROUP",
    "DEL_GROUP",
    "USER_MGMT",
    "GRP_MGMT",
    "USER_CHAUTHTOK",
    "GRP_CHAUTHTOK",
    "CHUSER_ID",
    "CHGRP_ID",
    "ACCT_LOCK",
    "ACCT_UNLOCK",
    "ROLE_ASSIGN",
    "ROLE_REMOVE",
    "ROLE_MODIFY",
];

pub fn base(exe: &str) -> &str {
    exe.rsplit('/').next().unwrap_or(exe)
}

pub fn is_account_change(rtype: &str) -> bool {
    ACCOUNT_TYPES.contains(&rtype)
}

pub fn is_shell_exec(ev: &AuditEvent) -> bool {
    ev.is_execve() && SHELLS.contains(&base(ev.field("exe").unwrap_or("")))
}

pub fn is_sudo(ev: &AuditEvent) -> bool {
    ev.primary_type() == "USER_CMD" && base(ev.field("exe").unwrap_or("")) == "sudo"
}

/// A sudo event's command with secrets and home-directory user names redacted.
pub fn redacted_command(ev: &AuditEvent, hasher: &UserHasher) -> Option<String> {
    let c = redact_command(ev.field("cmd")?);
    Some(
        c.split(' ')
            .map(|w| hasher.redact_path(w))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// A successful su session (su writes no USER_CMD).
pub fn is_su_session(ev: &AuditEvent) -> bool {
    ev.primary_type() == "USER_START" && base(ev.field("exe").unwrap_or("")) == "su" && !ev.failed()
}

/// The path an execve ran from /tmp, /var/tmp or /dev/shm (the new exe, or PATH item 0 for
/// scripts), and whether it was /dev/shm.
pub fn exec_location(ev: &AuditEvent) -> Option<(String, bool)> {
    if !ev.is_execve() {
        return None;
    }
    let mut cands = vec![ev.field("exe").unwrap_or("").to_string()];
    cands.extend(ev.paths().into_iter().take(1));
    cands.into_iter().find_map(|p| {
        if p.starts_with(SHM_PREFIX) {
            Some((p, true))
        } else if TMP_PREFIXES.iter().any(|t| p.starts_with(t)) {
            Some((p, false))
        } else {
            None
        }
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    Selinux,
    AppArmor,
}

pub fn denial(ev: &AuditEvent) -> Option<Denial> {
    if ev.has("APPARMOR_DENIED") {
        return Some(Denial::AppArmor);
    }
    let avc = ev.record("AVC")?;
    if avc
        .get("apparmor")
        .is_some_and(|a| a.eq_ignore_ascii_case("DENIED"))
    {
        Some(Denial::AppArmor)
    } else if avc.get("denied").is_some() || avc.get("seresult") == Some("denied") {
        Some(Denial::Selinux)
    } else {
        None
    }
}

/// The ANOM_* record type of an event, if any.
pub fn anomaly_type(ev: &AuditEvent) -> Option<&str> {
    ev.records
        .iter()
        .find(|r| r.rtype.starts_with("ANOM_"))
        .map(|r| r.rtype.as_str())
}

/// One live audit event, ready to join with the eBPF events of the same process and time.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveFact {
    pub pid: Option<u32>,
    pub ppid: Option<u32>,
    pub uid: Option<u32>,
    pub auid: Option<u32>,
    pub session: Option<u32>,
    pub time_ns: i64,
    /// auth_failure, auth_success, sudo, su, watched_file_access, exec_from_tmp,
    /// exec_from_devshm, account_change, audit_anomaly_record, mac_denial, or other.
    pub kind: &'static str,
    /// Set when the event is suspicious on its own (same weights as the summary).
    pub factor: Option<Factor>,
    pub evidence: Evidence,
}

fn num_u32(ev: &AuditEvent, k: &str) -> Option<u32> {
    ev.num(k)
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v != u32::MAX)
}

pub fn classify(ev: &AuditEvent, hasher: &UserHasher) -> LiveFact {
    let exe = hasher.redact_path(ev.field("exe").unwrap_or(""));
    let key = ev.key().map(str::to_string);
    let paths: Vec<String> = ev.paths().iter().map(|p| hasher.redact_path(p)).collect();
    let acct = ev
        .field("acct")
        .filter(|a| *a != "?")
        .map(|a| hasher.hash(a));
    let uid = ev.uid();
    let actor = ev
        .field("AUID")
        .filter(|n| *n != "unset")
        .or_else(|| ev.field("UID"))
        .map(str::to_string)
        .or_else(|| uid.and_then(|u| passwd_names().get(&u).cloned()))
        .map(|n| hasher.hash(&n));
    let ty = ev.primary_type();
    // Where an authentication came from: the remote address, else the terminal.
    let source = ["addr", "hostname", "terminal"]
        .iter()
        .filter_map(|k| ev.field(k))
        .find(|v| !v.is_empty() && *v != "?")
        .map(str::to_string);
    let mut command = None;
    let (kind, factor): (&'static str, Option<(u8, String)>) = if ty == "USER_AUTH" && ev.failed() {
        let who = acct.clone().unwrap_or_else(|| "?".into());
        (
            "auth_failure",
            Some((
                weight::AUTH_FAILURE,
                format!("failed authentication for {who} via {exe}"),
            )),
        )
    } else if ty == "USER_AUTH" {
        ("auth_success", None)
    } else if is_sudo(ev) {
        command = redacted_command(ev, hasher);
        ("sudo", None)
    } else if is_su_session(ev) {
        ("su", None)
    } else if let Some((path, shm)) = exec_location(ev) {
        let path = hasher.redact_path(&path);
        let (kind, w) = if shm {
            ("exec_from_devshm", weight::EXEC_SHM)
        } else {
            ("exec_from_tmp", weight::EXEC_TMP)
        };
        (
            kind,
            Some((
                w,
                format!("executed {path} from a world-writable directory"),
            )),
        )
    } else if let Some(k) = &key {
        (
            "watched_file_access",
            Some((
                weight::WATCHED_FILE,
                format!("access on watch key '{k}' ({}) by {exe}", paths.join(", ")),
            )),
        )
    } else if is_account_change(ty) {
        (
            "account_change",
            Some((weight::ACCOUNT_CHANGE, format!("account change: {ty}"))),
        )
    } else if let Some(a) = anomaly_type(ev) {
        (
            "audit_anomaly_record",
            Some((
                weight::ANOMALY_RECORD,
                format!("kernel/auditd anomaly record {a}"),
            )),
        )
    } else if let Some(d) = denial(ev) {
        (
            "mac_denial",
            Some((weight::MAC_DENIAL, format!("{d:?} access denial by {exe}"))),
        )
    } else {
        ("other", None)
    };
    let id = ev.evidence_id();
    let result = if ev.failed() { "failed" } else { "success" };
    let summary = format!(
        "{ty} {result} {}{}",
        exe,
        key.as_deref()
            .map(|k| format!(" key={k}"))
            .unwrap_or_default()
    );
    LiveFact {
        pid: num_u32(ev, "pid"),
        ppid: num_u32(ev, "ppid"),
        uid,
        auid: ev.auid(),
        session: num_u32(ev, "ses"),
        time_ns: ev.time_ms.saturating_mul(1_000_000),
        kind,
        factor: factor.map(|(weight, reason)| Factor {
            detection: kind.to_string(),
            reason,
            weight,
            evidence: vec![id.clone()],
        }),
        evidence: Evidence {
            id,
            time_ns: ev.time_ms.saturating_mul(1_000_000),
            summary,
            detail: json!({
                "type": ty, "serial": ev.serial, "result": result, "key": key, "exe": exe,
                "paths": paths, "pid": num_u32(ev, "pid"), "ppid": num_u32(ev, "ppid"),
                "uid": uid, "auid": ev.auid(), "user_hashed": actor, "account_hashed": acct,
                "command": command, "source": source,
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::{Grouper, parse_line};

    fn event(lines: &[&str]) -> AuditEvent {
        let mut g = Grouper::default();
        for l in lines {
            g.push(parse_line(l).unwrap());
        }
        g.finish().remove(0)
    }

    #[test]
    fn live_facts_carry_the_process_a_factor_and_redacted_evidence() {
        let h = UserHasher::with_key(b"live-test-key-0123456789");
        let f = classify(
            &event(&[
                "type=USER_AUTH msg=audit(2.5:40): pid=77 uid=1000 auid=1000 ses=4 msg='op=PAM:authentication acct=\"root\" exe=\"/usr/bin/su\" res=failed'",
            ]),
            &h,
        );
        assert_eq!(
            (f.kind, f.pid, f.auid, f.session),
            ("auth_failure", Some(77), Some(1000), Some(4))
        );
        assert_eq!(f.time_ns, 2_500_000_000);
        let factor = f.factor.unwrap();
        assert_eq!(
            (factor.weight, factor.evidence),
            (weight::AUTH_FAILURE, vec!["audit:40".to_string()])
        );
        assert!(!factor.reason.contains("root") && factor.reason.contains(&h.hash("root")));

        let s = classify(
            &event(&[
                "type=USER_CMD msg=audit(3.0:41): pid=78 uid=0 auid=1000 msg='cwd=\"/\" cmd=\"curl --token abc http://x\" exe=\"/usr/bin/sudo\" res=success'",
            ]),
            &h,
        );
        assert_eq!(s.kind, "sudo");
        assert!(s.factor.is_none(), "sudo alone is context, not a factor");
        assert_eq!(
            s.evidence.detail["command"],
            "curl --token [REDACTED] http://x"
        );

        let x = classify(
            &event(&[
                "type=SYSCALL msg=audit(4.0:42): arch=c000003e syscall=59 success=yes ppid=1 pid=79 uid=0 exe=\"/dev/shm/x\" key=\"tmp_exec\"",
                "type=EOE msg=audit(4.0:42): ",
            ]),
            &h,
        );
        assert_eq!(
            x.kind, "exec_from_devshm",
            "the exec matters more than its key"
        );
        assert_eq!(x.factor.unwrap().weight, weight::EXEC_SHM);
    }

    #[test]
    fn selinux_and_apparmor_denials() {
        let se = event(&[
            "type=AVC msg=audit(5.0:50): avc:  denied  { read } for  pid=9 comm=\"httpd\" tclass=file permissive=0",
        ]);
        assert_eq!(denial(&se), Some(Denial::Selinux));
        let aa =
            event(&["type=AVC msg=audit(5.0:51): apparmor=\"DENIED\" operation=\"open\" pid=9"]);
        assert_eq!(denial(&aa), Some(Denial::AppArmor));
        let granted =
            event(&["type=AVC msg=audit(5.0:52): avc:  granted  { setenforce } for pid=9"]);
        assert_eq!(denial(&granted), None);
    }
}
