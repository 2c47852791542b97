//! Authentication failure bursts (password guessing): failed runs of su, sudo and the other
//! authenticating programs as the kernel sees them (a non-zero exit without ever starting the
//! requested command), and failed authentications from live audit records, counted per target
//! account and source in a sliding window.

use std::collections::{HashMap, HashSet, VecDeque};

use super::engine::{Engine, Hit};
use super::rules::multi_hit;
use crate::event::{Event, Payload};
use crate::proc::{ProcKey, Process};

/// Programs that authenticate a person before doing anything else: when one of them exits with
/// a failure before it started a child, authentication failed (or was refused).
const AUTHENTICATORS: &[&str] = &[
    "su", "sudo", "sudo-rs", "su-rs", "doas", "pkexec", "passwd", "chsh", "chfn", "login",
    "newgrp", "sg",
];

/// Keys tracked at most; beyond it, keys whose failures all left the window go first.
const MAX_KEYS: usize = 4096;

/// One failed authentication: when, its evidence id, and the kernel event (audit records
/// travel as evidence of their own).
struct Failure {
    time_ns: i64,
    id: String,
    event: Option<Event>,
}

/// Failures per (target account, source) in the last `window_ns`.
pub(super) struct AuthFailures {
    window_ns: i64,
    threshold: usize,
    seen: HashMap<(String, String), VecDeque<Failure>>,
    /// Authenticating processes that started a child (they got past authentication).
    forked: HashSet<ProcKey>,
}

impl AuthFailures {
    pub fn new(window_secs: u64, threshold: u32) -> AuthFailures {
        AuthFailures {
            window_ns: window_secs as i64 * 1_000_000_000,
            threshold: threshold.max(1) as usize,
            seen: HashMap::new(),
            forked: HashSet::new(),
        }
    }

    /// Counts one failure; returns the failures in the window when they reach the threshold.
    fn failed(&mut self, account: &str, source: &str, f: Failure) -> Option<&VecDeque<Failure>> {
        let t = f.time_ns;
        if self.seen.len() >= MAX_KEYS {
            let horizon = t - self.window_ns;
            self.seen
                .retain(|_, q| q.back().is_some_and(|last| last.time_ns >= horizon));
            if self.seen.len() >= MAX_KEYS {
                self.seen.clear();
            }
        }
        let q = self
            .seen
            .entry((account.to_string(), source.to_string()))
            .or_default();
        q.push_back(f);
        while q.front().is_some_and(|o| o.time_ns < t - self.window_ns) || q.len() > 64 {
            q.pop_front();
        }
        (q.len() >= self.threshold).then_some(&*q)
    }

    pub fn window_secs(&self) -> i64 {
        self.window_ns / 1_000_000_000
    }
}

/// The account an authenticating program was asked for: `su [opts] [-] [user]`, `sudo -u
/// user`, `passwd user`; root when none is named (su and sudo's default).
fn target_account(name: &str, argv: &[String]) -> String {
    let args: Vec<&str> = argv.iter().skip(1).map(String::as_str).collect();
    match name {
        "sudo" | "sudo-rs" | "doas" => args
            .windows(2)
            .find(|w| w[0] == "-u" || w[0] == "--user")
            .map(|w| w[1].to_string())
            .or_else(|| {
                args.iter()
                    .find_map(|a| a.strip_prefix("--user=").map(str::to_string))
            })
            .unwrap_or_else(|| "root".into()),
        "su" | "su-rs" => {
            // Options taking a value: -c, -s, -g, -G, -w.
            let mut skip = false;
            let mut user = None;
            for a in &args {
                if skip {
                    skip = false;
                    continue;
                }
                match *a {
                    "-c"
                    | "--command"
                    | "-s"
                    | "--shell"
                    | "-g"
                    | "--group"
                    | "-G"
                    | "--supp-group"
                    | "-w"
                    | "--whitelist-environment" => skip = true,
                    "-" | "-l" | "--login" => {}
                    a if a.starts_with('-') => {}
                    a => {
                        user = Some(a.to_string());
                        break;
                    }
                }
            }
            user.unwrap_or_else(|| "root".into())
        }
        _ => args
            .iter()
            .rev()
            .find(|a| !a.starts_with('-'))
            .map(|a| a.to_string())
            .unwrap_or_else(|| "self".into()),
    }
}

impl Engine {
    /// Fork and exit events of authenticating programs: a failure is an exit with a non-zero
    /// status (or a signal) before the program started anything.
    pub(super) fn on_auth_lifecycle(&mut self, ev: &Event, principal: u32, hits: &mut Vec<Hit>) {
        match &ev.payload {
            Payload::Fork { child_pid, .. } if *child_pid != ev.pid => {
                if let Some(p) = self.procs.get(ev.pid)
                    && AUTHENTICATORS.contains(&p.name())
                {
                    let key = p.key();
                    if self.auth.forked.len() >= MAX_KEYS {
                        self.auth.forked.clear();
                    }
                    self.auth.forked.insert(key);
                }
            }
            Payload::Exit { code, signal } => {
                let Some(p) = self.procs.at(ev.pid, ev.time_ns).cloned() else {
                    return;
                };
                if !AUTHENTICATORS.contains(&p.name()) {
                    return;
                }
                let started_something = self.auth.forked.remove(&p.key());
                let failed = code.is_some_and(|c| c != 0) || signal.is_some();
                if started_something || !failed {
                    return;
                }
                let account = target_account(p.name(), &p.argv);
                let source = match p.session.or(ev.session) {
                    Some(s) => format!("login session {s}"),
                    None => format!("uid {principal}"),
                };
                self.auth_failure(ev, principal, &p, &account, &source, hits);
            }
            _ => {}
        }
    }

    fn auth_failure(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        account: &str,
        source: &str,
        hits: &mut Vec<Hit>,
    ) {
        let failure = Failure {
            time_ns: ev.time_ns,
            id: ev.id.to_string(),
            event: Some(ev.clone()),
        };
        let Some(q) = self.auth.failed(account, source, failure) else {
            return;
        };
        let events: Vec<Event> = q.iter().filter_map(|f| f.event.clone()).collect();
        if !self.first_time(principal, "brute_force", &format!("{account}|{source}")) {
            return;
        }
        let secs = self.auth.window_secs();
        hits.push(multi_hit(
            "brute_force",
            format!(
                "{} failed authentications for account {account} from {source} within {secs} s (last by {}): password guessing",
                events.len(),
                p.exe_or_comm()
            ),
            self.cfg.weights.brute_force,
            events,
        ));
    }

    /// A live audit authentication failure, counted with the others of its target account
    /// and source; returns the brute-force factor when they reach the threshold.
    pub(super) fn audit_auth_failure(
        &mut self,
        fact: &crate::audit::LiveFact,
        principal: u32,
    ) -> Option<crate::model::Factor> {
        let d = &fact.evidence.detail;
        let account = d["account_hashed"].as_str().unwrap_or("?").to_string();
        let source = d["source"]
            .as_str()
            .map(str::to_string)
            .or_else(|| fact.session.map(|s| format!("login session {s}")))
            .unwrap_or_else(|| format!("uid {principal}"));
        let exe = d["exe"].as_str().unwrap_or("?").to_string();
        let failure = Failure {
            time_ns: fact.time_ns,
            id: fact.evidence.id.clone(),
            event: None,
        };
        let evidence: Vec<String> = self
            .auth
            .failed(&account, &source, failure)?
            .iter()
            .map(|f| f.id.clone())
            .collect();
        if !self.first_time(principal, "brute_force", &format!("{account}|{source}")) {
            return None;
        }
        Some(crate::model::Factor {
            detection: "brute_force".into(),
            reason: format!(
                "{} failed authentications for account {account} from {source} within {} s (last by {exe}): password guessing",
                evidence.len(),
                self.auth.window_secs()
            ),
            weight: self.cfg.weights.brute_force,
            evidence,
        })
    }
}
#[cfg(test)]
mod tests {
    use super::target_account;
    use crate::detect::testing;
    use crate::event::Event;

    const PASSWD: &str = "root:x:0:0::/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n";

    fn ev(id: u64, t: i64, pid: u32, ppid: u32, body: &str) -> Event {
        testing::event(id, t, pid, ppid, 0, 7, body)
    }

    /// `su root` run `n` times as pid 100+i: each exits with `code` after starting a child
    /// (`fork`) or not.
    fn play(n: u32, code: i32, fork: bool) -> Vec<crate::model::Anomaly> {
        let mut e = crate::detect::testing::engine(PASSWD);
        let t0 = 1_781_780_400_000_000_000i64;
        let mut out = Vec::new();
        let mut id = 1;
        for i in 0..n {
            let pid = 100 + i;
            let t = t0 + i as i64 * 2_000_000_000;
            let mut evs = vec![
                ev(
                    id,
                    t,
                    50,
                    1,
                    &format!(r#""kind":"fork","child_pid":{pid},"child_tid":{pid}"#),
                ),
                ev(
                    id + 1,
                    t + 1000,
                    pid,
                    50,
                    r#""syscall":"execve","kind":"exec","filename":"/usr/bin/su","argv":["su","-","root"],"argv_truncated":false"#,
                ),
            ];
            if fork {
                evs.push(ev(
                    id + 2,
                    t + 2000,
                    pid,
                    50,
                    &format!(
                        r#""kind":"fork","child_pid":{},"child_tid":{}"#,
                        pid + 500,
                        pid + 500
                    ),
                ));
            }
            evs.push(ev(
                id + 3,
                t + 3000,
                pid,
                50,
                &format!(r#""kind":"exit","code":{code},"signal":null"#),
            ));
            id += 4;
            for x in &evs {
                out.extend(e.observe(x));
            }
        }
        out
    }

    #[test]
    fn repeated_failed_su_is_password_guessing() {
        let a = play(5, 1, false);
        let f = a
            .iter()
            .flat_map(|a| &a.factors)
            .find(|f| f.detection == "brute_force")
            .unwrap_or_else(|| panic!("no brute_force in {a:#?}"));
        assert!(
            f.reason
                .starts_with("5 failed authentications for account root from login session 7"),
            "{}",
            f.reason
        );
        assert_eq!(f.evidence.len(), 5);
        let an = a
            .iter()
            .find(|a| a.factors.iter().any(|f| f.detection == "brute_force"));
        assert!(an.is_some_and(|a| a.level >= crate::model::Level::Medium));
    }

    #[test]
    fn failures_below_the_threshold_or_after_a_started_command_are_not() {
        let quiet = |a: Vec<crate::model::Anomaly>| {
            !a.iter()
                .flat_map(|a| &a.factors)
                .any(|f| f.detection == "brute_force")
        };
        assert!(quiet(play(4, 1, false)), "four failures");
        assert!(quiet(play(8, 1, true)), "su ran a command that failed");
        assert!(quiet(play(8, 0, false)), "successful runs");
    }

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn target_accounts_of_the_authenticating_programs() {
        assert_eq!(target_account("su", &v(&["su"])), "root");
        assert_eq!(target_account("su", &v(&["su", "-", "bob"])), "bob");
        assert_eq!(
            target_account("su", &v(&["su", "-c", "id", "alice"])),
            "alice"
        );
        assert_eq!(target_account("sudo", &v(&["sudo", "id"])), "root");
        assert_eq!(
            target_account("sudo", &v(&["sudo", "-u", "pg", "psql"])),
            "pg"
        );
        assert_eq!(target_account("passwd", &v(&["passwd", "carol"])), "carol");
        assert_eq!(target_account("passwd", &v(&["passwd"])), "self");
    }

    #[test]
    fn audit_authentication_failures_from_one_source_are_a_burst() {
        let mut e = crate::detect::testing::engine(PASSWD);
        let fact = |i: i64, source: &str| crate::audit::LiveFact {
            pid: Some(900),
            ppid: None,
            uid: Some(0),
            auid: None,
            session: None,
            time_ns: 1_781_780_400_000_000_000 + i * 1_000_000_000,
            kind: "auth_failure",
            factor: None,
            evidence: crate::model::Evidence {
                id: format!("audit:{i}"),
                time_ns: 0,
                summary: String::new(),
                detail: serde_json::json!({"account_hashed": "user-1a2b", "source": source, "exe": "/usr/sbin/sshd"}),
            },
        };
        let mut found = Vec::new();
        for i in 0..4 {
            found.extend(e.observe_audit(&fact(i, "192.0.2.7")));
            found.extend(e.observe_audit(&fact(i, "192.0.2.8")));
        }
        assert!(found.is_empty(), "four from each source: {found:#?}");
        found.extend(e.observe_audit(&fact(4, "192.0.2.7")));
        assert_eq!(found.len(), 1, "{found:#?}");
        let f = &found[0].factors[0];
        assert_eq!(f.detection, "brute_force");
        assert!(
            f.reason.contains("account user-1a2b from 192.0.2.7"),
            "{}",
            f.reason
        );
        assert_eq!(
            f.evidence,
            ["audit:0", "audit:1", "audit:2", "audit:3", "audit:4"]
        );
    }
}
