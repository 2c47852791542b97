//! Analyst feedback that teaches: a verdict on an anomaly (or on every step of an incident)
//! becomes a rule over its detections in a scope (this user and program, this program for
//! anyone, or the whole host). "Benign" lowers the same finding below medium next time (its
//! factors keep their reasons at weight 0, saying who judged them); "malicious" pins it: the
//! anomaly is raised in full and its window is never learned. Rules live in the agent store
//! (table `feedback`), are read again at every window roll-over and whenever another writer
//! (the CLI, the push client delivering a server's verdict) changed the store, and are
//! reversible. `give` and `take_back` are the one path both the CLI and the push client use.

use serde::{Deserialize, Serialize};

use super::engine::{Engine, Hit};
use crate::store::{Store, StoreError};

/// What an analyst said.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Benign,
    Malicious,
}

/// Where a verdict applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The same user running the same program.
    Principal,
    /// The same program, whoever runs it.
    Exe,
    /// The same detections anywhere on this host.
    Host,
}

/// One verdict, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// The anomaly it was given on.
    pub anomaly_id: String,
    pub verdict: Verdict,
    pub scope: Scope,
    /// The detections it covers (the anomaly's, without context-only ones).
    pub detections: Vec<String>,
    pub principal: u32,
    pub exe: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Who gave it ("root" on the agent, the dashboard user on the server).
    pub by: String,
    pub time_ns: i64,
}

/// Context factors say something only beside another factor: a verdict is about the others.
const CONTEXT: [&str; 3] = ["new_binary", "blind_spot", "off_hours"];

impl Rule {
    /// The rule a verdict on `a` makes.
    pub fn for_anomaly(
        a: &crate::model::Anomaly,
        verdict: Verdict,
        scope: Scope,
        note: Option<String>,
        by: &str,
        time_ns: i64,
    ) -> Rule {
        let mut detections: Vec<String> = a
            .factors
            .iter()
            .filter(|f| !CONTEXT.contains(&f.detection.as_str()))
            .map(|f| f.detection.clone())
            .collect();
        detections.sort();
        detections.dedup();
        Rule {
            anomaly_id: a.id.clone(),
            verdict,
            scope,
            detections,
            principal: a.principal.uid,
            exe: a.chain.last().map(|l| l.exe.clone()).unwrap_or_default(),
            note,
            by: by.to_string(),
            time_ns,
        }
    }

    fn covers(&self, detection: &str, principal: u32, exe: &str) -> bool {
        self.detections.iter().any(|d| d == detection)
            && match self.scope {
                Scope::Principal => self.principal == principal && self.exe == exe,
                Scope::Exe => self.exe == exe,
                Scope::Host => true,
            }
    }

    fn words(&self) -> String {
        let when = crate::timefmt::local_clock(self.time_ns);
        let note = self
            .note
            .as_deref()
            .map(|n| format!(": {n}"))
            .unwrap_or_default();
        format!(
            "{} by {} at {when} on anomaly {}{note}",
            match self.verdict {
                Verdict::Benign => "marked benign",
                Verdict::Malicious => "marked malicious",
            },
            self.by,
            self.anomaly_id
        )
    }
}

/// The rules in force.
#[derive(Default)]
pub(super) struct Feedback {
    pub rules: Vec<Rule>,
    /// The store's data version when the rules were read (another writer changes it).
    pub version: Option<i64>,
}

/// Saves a verdict in the agent store.
pub fn save(store: &Store, rule: &Rule) -> Result<(), StoreError> {
    store.put_feedback(&rule.anomaly_id, rule.time_ns, &serde_json::to_value(rule)?)
}

#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    #[error("no anomaly or incident {0} in the store")]
    Unknown(String),
    #[error("anomaly {0} has only context factors: nothing to judge")]
    NothingToJudge(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The anomalies an id names: itself, or every step of the incident it names.
pub fn anomaly_ids(store: &Store, id: &str) -> Result<Vec<String>, FeedbackError> {
    if let Some(i) = store.get_incident(id)? {
        return Ok(i.steps.into_iter().map(|s| s.anomaly_id).collect());
    }
    if store.get_anomaly(id)?.is_some() {
        return Ok(vec![id.to_string()]);
    }
    Err(FeedbackError::Unknown(id.to_string()))
}

/// Gives a verdict on an anomaly, or on every step of an incident: one rule per anomaly,
/// saved (replacing an earlier verdict on it). Nothing is saved unless every step can be
/// judged.
pub fn give(
    store: &Store,
    id: &str,
    verdict: Verdict,
    scope: Scope,
    note: Option<String>,
    by: &str,
    time_ns: i64,
) -> Result<Vec<Rule>, FeedbackError> {
    let mut rules = Vec::new();
    for a in anomaly_ids(store, id)? {
        let anomaly = store
            .get_anomaly(&a)?
            .ok_or_else(|| FeedbackError::Unknown(a.clone()))?;
        let rule = Rule::for_anomaly(&anomaly, verdict, scope, note.clone(), by, time_ns);
        if rule.detections.is_empty() {
            return Err(FeedbackError::NothingToJudge(a));
        }
        rules.push(rule);
    }
    for r in &rules {
        save(store, r)?;
    }
    Ok(rules)
}

/// Takes back the verdicts on an anomaly or on the steps of an incident. With `given`
/// (who, when), only the rules that verdict made: a later verdict given meanwhile stays.
/// Returns how many went.
pub fn take_back(
    store: &Store,
    id: &str,
    given: Option<(&str, i64)>,
) -> Result<usize, FeedbackError> {
    let mut removed = 0;
    for a in anomaly_ids(store, id)? {
        if let Some((by, time_ns)) = given {
            let mine = store
                .get_feedback(&a)?
                .and_then(|v| serde_json::from_value::<Rule>(v).ok())
                .is_some_and(|r| r.by == by && r.time_ns == time_ns);
            if !mine {
                continue;
            }
        }
        removed += store.delete_feedback(&a)? as usize;
    }
    Ok(removed)
}

impl Engine {
    /// Re-reads the rules from the store (at start and at each window roll-over, so a verdict
    /// given while the agent runs takes effect within a window).
    pub(super) fn reload_feedback(&mut self) {
        self.feedback.version = self.baselines.store().data_version().ok();
        match self.baselines.store().feedback_rules() {
            Ok(rules) => {
                self.feedback.rules = rules
                    .into_iter()
                    .filter_map(|v| match serde_json::from_value(v) {
                        Ok(r) => Some(r),
                        Err(e) => {
                            tracing::warn!("skipping an unreadable feedback rule: {e}");
                            None
                        }
                    })
                    .collect()
            }
            Err(e) => tracing::warn!("cannot read analyst feedback: {e}"),
        }
    }

    /// Re-reads the rules when another writer changed the store since they were read (checked
    /// each second: a verdict from the CLI or a server applies within about a second).
    pub(super) fn reload_feedback_if_changed(&mut self) {
        let now = self.baselines.store().data_version().ok();
        if now.is_some() && now != self.feedback.version {
            self.reload_feedback();
        }
    }

    /// Applies the verdicts covering these factors: benign ones weigh nothing (their reason
    /// says who judged them), a malicious one pins the finding. Returns whether it is pinned.
    pub(super) fn apply_feedback(&self, principal: u32, exe: &str, hits: &mut [Hit]) -> bool {
        let mut pinned = false;
        for h in hits.iter_mut() {
            let f = &mut h.factor;
            // The newest verdict wins: an analyst may change their mind.
            let Some(rule) = self
                .feedback
                .rules
                .iter()
                .rev()
                .find(|r| r.covers(&f.detection, principal, exe))
            else {
                continue;
            };
            match rule.verdict {
                Verdict::Benign => {
                    f.weight = 0;
                    f.reason = format!("{} ({})", f.reason, rule.words());
                }
                Verdict::Malicious => {
                    pinned = true;
                    f.reason = format!("{} ({}: pinned, never learned)", f.reason, rule.words());
                }
            }
        }
        pinned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChainLink, Factor, Principal};

    fn anomaly() -> crate::model::Anomaly {
        crate::model::Anomaly {
            id: "h-1".into(),
            host: "h".into(),
            time_ns: 0,
            principal: Principal {
                uid: 1000,
                user: None,
                session: None,
            },
            chain: vec![ChainLink {
                pid: 5,
                exe: "/usr/bin/tar".into(),
                argv: vec![],
                uid: 1000,
            }],
            score: 45,
            level: crate::model::Level::Medium,
            factors: ["staging", "new_binary"]
                .iter()
                .map(|d| Factor {
                    detection: d.to_string(),
                    reason: "r".into(),
                    weight: 35,
                    evidence: vec![],
                })
                .collect(),
            evidence: vec![],
            fingerprint: String::new(),
            explanation: None,
        }
    }

    #[test]
    fn a_rule_covers_its_detections_in_its_scope() {
        let a = anomaly();
        let r = Rule::for_anomaly(&a, Verdict::Benign, Scope::Principal, None, "root", 0);
        assert_eq!(r.detections, ["staging"], "context factors are not judged");
        assert!(r.covers("staging", 1000, "/usr/bin/tar"));
        assert!(!r.covers("staging", 1001, "/usr/bin/tar"), "another user");
        assert!(
            !r.covers("staging", 1000, "/usr/bin/zip"),
            "another program"
        );
        assert!(
            !r.covers("mass_read", 1000, "/usr/bin/tar"),
            "another detection"
        );
        let exe = Rule::for_anomaly(&a, Verdict::Benign, Scope::Exe, None, "root", 0);
        assert!(exe.covers("staging", 1001, "/usr/bin/tar"));
        let host = Rule::for_anomaly(&a, Verdict::Benign, Scope::Host, None, "root", 0);
        assert!(host.covers("staging", 7, "/usr/bin/zip"));
    }

    fn useradd(id: u64, pid: u32) -> crate::event::Event {
        crate::detect::testing::event(
            id,
            1_781_780_400_000_000_000 + id as i64 * 1_000_000,
            pid,
            1,
            0,
            4,
            r#""syscall":"execve","kind":"exec","filename":"/usr/sbin/useradd","argv":["useradd","bob"],"argv_truncated":false"#,
        )
    }

    #[test]
    fn benign_lowers_the_same_finding_and_malicious_pins_its_window() {
        let mut e = crate::detect::testing::engine("root:x:0:0::/root:/bin/bash\n");
        let first = e.observe(&useradd(1, 100));
        let a = first
            .iter()
            .find(|a| a.factors.iter().any(|f| f.detection == "account_change"))
            .expect("account_change");
        assert!(a.level >= crate::model::Level::Medium);
        let benign = Rule::for_anomaly(
            a,
            Verdict::Benign,
            Scope::Principal,
            Some("onboarding".into()),
            "alice",
            1,
        );
        save(e.baselines.store(), &benign).unwrap();
        e.reload_feedback();
        let again = e.observe(&useradd(2, 101));
        let b = again.first().expect("still reported, at low");
        assert_eq!(b.level, crate::model::Level::Low, "{b:#?}");
        assert!(
            b.factors[0].reason.contains("marked benign by alice"),
            "{}",
            b.factors[0].reason
        );
        assert!(b.factors[0].reason.contains("onboarding"));

        let malicious = Rule {
            verdict: Verdict::Malicious,
            time_ns: 2,
            ..benign
        };
        save(e.baselines.store(), &malicious).unwrap();
        e.reload_feedback();
        let pinned = e.observe(&useradd(3, 102));
        let c = pinned.first().expect("raised");
        assert_eq!(c.score, a.score, "in full");
        assert!(c.factors[0].reason.contains("pinned, never learned"));
        e.finish();
        assert_eq!(
            e.stats().windows_rejected,
            1,
            "the pinned window is not learned"
        );
        assert_eq!(e.stats().windows_learned, 0);
    }
}
