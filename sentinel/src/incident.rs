//! Session incidents: the anomalies of one login session (login uid + audit session; for
//! processes outside a login, the program at the top of the chain) told as one ordered story,
//! with a session score that escalates when steps of different tactics chain. Derived only
//! from anomalies, so every consumer (feed, store) builds the same incidents from the same
//! stream (docs/anomalies.md, "Incidents").

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::model::{Anomaly, Explanation, Factor, Level, Principal};

/// Points added to the highest step score for each further tactic in the story.
const TACTIC_BONUS: u32 = 15;
/// Points added for each further step of a tactic already in the story (at most 10 in all).
const STEP_BONUS: u32 = 2;
/// An incident with no new step for this long is closed; a later anomaly starts a new one.
const IDLE_NS: i64 = 30 * 60 * 1_000_000_000;
/// Open incidents kept at most (the longest idle are closed first).
const MAX_OPEN: usize = 1024;
/// Steps kept per incident (the count goes on).
const MAX_STEPS: usize = 64;

/// One anomaly as a step of an incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub anomaly_id: String,
    pub time_ns: i64,
    /// ATT&CK tactic of the step's strongest factor, in words ("credential access").
    pub tactic: String,
    pub detections: Vec<String>,
    pub score: u8,
    pub level: Level,
    /// The strongest factor's reason.
    pub summary: String,
    /// The acting program.
    pub exe: String,
    /// The step's anomaly's factors (detection, reason, weight, evidence ids), so the story
    /// reads on its own where the anomaly itself is not at hand (a dashboard, a later look).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub factors: Vec<Factor>,
}

/// The anomalies of one session as a story.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// "<host>-inc-<first step epoch ms>-<principal uid>-<session or subject hash>".
    pub id: String,
    pub host: String,
    pub principal: Principal,
    /// What groups the steps: "session 12", or "service /usr/sbin/nginx".
    pub scope: String,
    pub first_ns: i64,
    pub last_ns: i64,
    /// Highest step score, plus 15 for every further tactic and 2 for every further step
    /// (at most 10), capped at 100.
    pub score: u8,
    pub level: Level,
    /// Tactics in the order they first appeared.
    pub tactics: Vec<String>,
    /// "discovery -> credential access -> persistence".
    pub story: String,
    pub steps: Vec<Step>,
    /// Steps in all (more than `steps` holds when the incident is long). It grows by one at
    /// every update, so it is also the version of this state: a consumer keeps the highest.
    pub step_count: u32,
    /// The story in plain words (`sentinel run --llm`): sent as a further record with the same
    /// id and `step_count` as the state it explains. Never changes the score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
}

/// The ATT&CK tactic a detection speaks of.
pub fn tactic(detection: &str) -> &'static str {
    match detection {
        "discovery_burst" | "recon_breadth" => "discovery",
        "credential_access" | "brute_force" | "process_memory_access" | "packet_capture" => {
            "credential access"
        }
        "mass_read" | "staging" => "collection",
        "persistence" | "account_change" | "auth_config" => "persistence",
        "privilege_escalation" | "unusual_switch_user" | "setuid_bit" | "file_capability" => {
            "privilege escalation"
        }
        "log_tampering" | "history_tampering" | "timestomp" | "masquerade" | "loader_hijack"
        | "bpf_load" | "kernel_module" | "exec_from_memfd" | "blind_spot" => "defense evasion",
        "reverse_shell" | "new_destination" => "command and control",
        "exec_from_writable" | "service_shell" | "unusual_child" | "decode_and_run" => "execution",
        "ptrace" => "privilege escalation",
        _ => "other",
    }
}

/// Builds incidents from anomalies as they come.
#[derive(Default)]
pub struct Tracker {
    open: HashMap<(u32, String), Incident>,
}

impl Tracker {
    /// Adds an anomaly; returns its incident when that now tells a story (two steps or more).
    /// Host-wide findings (no principal) and context-only anomalies are not steps.
    pub fn observe(&mut self, a: &Anomaly) -> Option<Incident> {
        if a.principal.uid == u32::MAX || a.score == 0 {
            return None;
        }
        let scope = match a.principal.session {
            Some(s) => format!("session {s}"),
            None => {
                let top = a
                    .chain
                    .iter()
                    .find(|l| l.pid != 1)
                    .map(|l| l.exe.clone())
                    .unwrap_or_else(|| "?".into());
                format!("service {top}")
            }
        };
        self.close_idle(a.time_ns);
        let key = (a.principal.uid, scope.clone());
        let inc = self.open.entry(key).or_insert_with(|| Incident {
            id: format!(
                "{}-inc-{}-{}-{}",
                a.host,
                a.time_ns / 1_000_000,
                a.principal.uid,
                a.principal
                    .session
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| short_hash(&scope))
            ),
            host: a.host.clone(),
            principal: a.principal.clone(),
            scope,
            first_ns: a.time_ns,
            last_ns: a.time_ns,
            score: 0,
            level: Level::Low,
            tactics: Vec::new(),
            story: String::new(),
            steps: Vec::new(),
            step_count: 0,
            explanation: None,
        });
        if inc.steps.iter().any(|s| s.anomaly_id == a.id) {
            return None;
        }
        let strongest = a.factors.iter().max_by_key(|f| f.weight)?;
        let step = Step {
            anomaly_id: a.id.clone(),
            time_ns: a.time_ns,
            tactic: tactic(&strongest.detection).to_string(),
            detections: a.factors.iter().map(|f| f.detection.clone()).collect(),
            score: a.score,
            level: a.level,
            summary: strongest.reason.clone(),
            exe: a.chain.last().map(|l| l.exe.clone()).unwrap_or_default(),
            factors: a.factors.clone(),
        };
        if !inc.tactics.contains(&step.tactic) {
            inc.tactics.push(step.tactic.clone());
        }
        inc.step_count += 1;
        inc.first_ns = inc.first_ns.min(a.time_ns);
        inc.last_ns = inc.last_ns.max(a.time_ns);
        if inc.steps.len() < MAX_STEPS {
            let at = inc.steps.partition_point(|s| s.time_ns <= step.time_ns);
            inc.steps.insert(at, step);
        }
        rescore(inc);
        (inc.step_count >= 2).then(|| inc.clone())
    }

    fn close_idle(&mut self, now_ns: i64) {
        self.open.retain(|_, i| now_ns - i.last_ns < IDLE_NS);
        while self.open.len() >= MAX_OPEN {
            let Some(oldest) = self
                .open
                .iter()
                .min_by_key(|(_, i)| i.last_ns)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.open.remove(&oldest);
        }
    }
}

fn rescore(inc: &mut Incident) {
    let top = inc.steps.iter().map(|s| s.score as u32).max().unwrap_or(0);
    let extra_tactics = inc.tactics.len().saturating_sub(1) as u32;
    let extra_steps = (inc.step_count as usize).saturating_sub(inc.tactics.len()) as u32;
    let score = (top + TACTIC_BONUS * extra_tactics + (STEP_BONUS * extra_steps).min(10)).min(100);
    inc.score = score as u8;
    inc.level = Level::from_score(inc.score);
    // Tactics in the order of the story's steps.
    let mut order: Vec<&str> = Vec::new();
    for s in &inc.steps {
        if !order.contains(&s.tactic.as_str()) {
            order.push(&s.tactic);
        }
    }
    inc.story = order.join(" -> ");
}

fn short_hash(s: &str) -> String {
    let mut h: u32 = 0x811c9dc5;
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    format!("{h:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChainLink, Factor};

    fn anomaly(id: &str, t: i64, session: Option<u32>, det: &str, w: u8) -> Anomaly {
        let factors = vec![Factor {
            detection: det.into(),
            reason: format!("{det} happened"),
            weight: w,
            evidence: vec!["1".into()],
        }];
        let (score, level) = Anomaly::score_of(&factors);
        Anomaly {
            id: id.into(),
            host: "h".into(),
            time_ns: t,
            principal: Principal {
                uid: 1000,
                user: Some("alice".into()),
                session,
            },
            chain: vec![ChainLink {
                pid: 10,
                exe: "/usr/bin/bash".into(),
                argv: vec![],
                uid: 1000,
            }],
            score,
            level,
            factors,
            evidence: vec![],
            fingerprint: String::new(),
            explanation: None,
        }
    }

    #[test]
    fn medium_steps_of_different_tactics_chain_into_a_critical_story() {
        let mut t = Tracker::default();
        let s = 1_000_000_000;
        assert!(
            t.observe(&anomaly("a1", s, Some(7), "discovery_burst", 35))
                .is_none()
        );
        let i = t
            .observe(&anomaly("a2", 2 * s, Some(7), "credential_access", 45))
            .expect("2 steps");
        assert_eq!(i.score, 60);
        let i = t
            .observe(&anomaly("a3", 3 * s, Some(7), "persistence", 40))
            .unwrap();
        let i2 = t
            .observe(&anomaly("a4", 4 * s, Some(7), "log_tampering", 50))
            .unwrap();
        assert_eq!(i.id, i2.id);
        assert_eq!(i2.score, 95, "50 + 3 further tactics x 15");
        assert_eq!(i2.level, Level::Critical);
        assert_eq!(
            i2.story,
            "discovery -> credential access -> persistence -> defense evasion"
        );
        assert_eq!(i2.steps.len(), 4);
        assert_eq!(i2.scope, "session 7");
    }

    #[test]
    fn sessions_are_kept_apart_and_idle_incidents_close() {
        let mut t = Tracker::default();
        let s = 1_000_000_000;
        t.observe(&anomaly("a1", s, Some(1), "persistence", 40));
        assert!(
            t.observe(&anomaly("b1", s, Some(2), "persistence", 40))
                .is_none()
        );
        assert!(
            t.observe(&anomaly("a1", s, Some(1), "persistence", 40))
                .is_none(),
            "same anomaly twice"
        );
        let later = s + IDLE_NS + 1;
        assert!(
            t.observe(&anomaly("a2", later, Some(1), "persistence", 40))
                .is_none(),
            "an idle incident was closed: this starts a new one"
        );
        let i = t
            .observe(&anomaly("a3", later + s, Some(1), "persistence", 40))
            .unwrap();
        assert_eq!(
            (i.score, i.tactics.len()),
            (42, 1),
            "same tactic: a small step bonus"
        );
    }
}
