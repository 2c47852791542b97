//! Incidents for the explainer: the facts of a session's story for the model (header, one
//! line per step in time order, the steps' own evidence ids), the local explanation told
//! from the steps when no model answers, and which states of a growing incident are worth a
//! new story (`StoryGate`).

use std::collections::{BTreeSet, HashMap, VecDeque};

use super::prompt::Fact;
use super::redact::{Counts, Redactor};
use crate::incident::Incident;
use crate::model::{Explanation, Level, NextStep};

/// Incidents remembered by a `StoryGate` (the oldest are forgotten first).
const GATE_CAP: usize = 1024;

/// Decides which states of a growing incident `sentinel run --llm` explains: the first state
/// at or above the level, then each state that raised the level or added a tactic to the
/// story (a further step of a tactic already told changes little). Bounded memory. The
/// calls-per-hour budget of the explainer still applies to every state let through.
pub struct StoryGate {
    min: Level,
    told: HashMap<String, (Level, usize)>,
    order: VecDeque<String>,
}

impl StoryGate {
    pub fn new(min: Level) -> StoryGate {
        StoryGate {
            min,
            told: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// True when this state deserves a (new) story; remembers it as told.
    pub fn should_tell(&mut self, i: &Incident) -> bool {
        if i.level < self.min {
            return false;
        }
        let now = (i.level, i.tactics.len());
        match self.told.get_mut(&i.id) {
            Some(told) if now.0 <= told.0 && now.1 <= told.1 => false,
            Some(told) => {
                *told = now;
                true
            }
            None => {
                if self.order.len() >= GATE_CAP
                    && let Some(old) = self.order.pop_front()
                {
                    self.told.remove(&old);
                }
                self.order.push_back(i.id.clone());
                self.told.insert(i.id.clone(), now);
                true
            }
        }
    }
}

/// The facts of an incident and the ids an answer may cite (the steps' anomaly ids).
pub fn facts(i: &Incident, r: &Redactor, c: &mut Counts) -> (Vec<Fact>, BTreeSet<String>) {
    let user = i
        .principal
        .user
        .as_deref()
        .map(|u| format!(" user {}", r.text_counted(u, c)))
        .unwrap_or_default();
    let mut head = Fact::new(
        "Incident",
        None,
        format!(
            "id {}, {} from {} to {}, level {} (score {}/100, set by Sentinel: the highest step plus a bonus per further tactic), principal uid {}{user}, {} steps; story: {}",
            i.id,
            i.scope,
            crate::timefmt::rfc3339_secs(i.first_ns),
            crate::timefmt::rfc3339_secs(i.last_ns),
            i.level,
            i.score,
            i.principal.uid,
            i.step_count,
            i.story
        ),
        1000,
    );
    head.required = true;
    let mut out = vec![head];
    let mut ids = BTreeSet::new();
    for (n, s) in i.steps.iter().enumerate() {
        ids.insert(s.anomaly_id.clone());
        out.push(Fact::new(
            "Steps (in time order; the id is the step's anomaly)",
            Some(s.anomaly_id.clone()),
            format!(
                "{} {} ({}, score {}, {}): {} [by {}]",
                crate::timefmt::rfc3339_secs(s.time_ns),
                s.tactic,
                s.detections.join("+"),
                s.score,
                s.level,
                r.text_counted(&s.summary, c),
                r.text_counted(&s.exe, c)
            ),
            // Earlier steps first when the budget is tight: they start the story.
            900u32.saturating_sub(n as u32),
        ));
    }
    (out, ids)
}

/// The deterministic story: what happened in order, and where to look first.
pub fn local_explanation(i: &Incident) -> Explanation {
    let who = match &i.principal.user {
        Some(u) => format!("{u} (uid {})", i.principal.uid),
        None => format!("uid {}", i.principal.uid),
    };
    let steps: Vec<String> = i
        .steps
        .iter()
        .enumerate()
        .map(|(n, s)| format!("{}) {}: {}", n + 1, s.tactic, s.summary))
        .collect();
    let chained = i.tactics.len() > 1;
    Explanation {
        summary: format!(
            "{} incident (score {}) in {} of {who}: {} in {} steps",
            capitalised(i.level.as_str()),
            i.score,
            i.scope,
            i.story,
            i.step_count
        ),
        likely_explanation: format!(
            "{}Steps: {}",
            if chained {
                "One session moved through several stages of an intrusion; taken together they matter more than any single step. "
            } else {
                "One session repeated steps of the same kind. "
            },
            steps.join(" ")
        ),
        benign_alternatives: vec![
            "An administrator doing several unusual tasks in one sitting (migration, incident response, a new deployment).".into(),
        ],
        confidence: super::local::LOCAL_CONFIDENCE,
        evidence_ids: i.steps.iter().map(|s| s.anomaly_id.clone()).collect(),
        next_steps: vec![NextStep {
            description: format!(
                "Ask {who} about {} and review each step's anomaly with `sentinel analyze --anomaly ID`; contain the session if it is not theirs.",
                i.scope
            ),
            command: None,
            policy: None,
        }],
        source: "local".into(),
        warnings: Vec::new(),
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Principal;

    fn state(id: &str, level: Level, tactics: usize, steps: u32) -> Incident {
        Incident {
            id: id.into(),
            host: "h".into(),
            principal: Principal {
                uid: 1,
                user: None,
                session: Some(1),
            },
            scope: "session 1".into(),
            first_ns: 0,
            last_ns: 0,
            score: 0,
            level,
            tactics: (0..tactics).map(|t| format!("t{t}")).collect(),
            story: String::new(),
            steps: vec![],
            step_count: steps,
            explanation: None,
        }
    }

    #[test]
    fn stories_are_told_on_reaching_the_level_and_on_significant_updates_only() {
        let mut g = StoryGate::new(Level::High);
        assert!(
            !g.should_tell(&state("a", Level::Medium, 1, 2)),
            "below high"
        );
        assert!(
            g.should_tell(&state("a", Level::High, 2, 3)),
            "reached high"
        );
        assert!(
            !g.should_tell(&state("a", Level::High, 2, 4)),
            "one more step of a told tactic"
        );
        assert!(
            g.should_tell(&state("a", Level::High, 3, 5)),
            "a new tactic"
        );
        assert!(
            g.should_tell(&state("a", Level::Critical, 3, 6)),
            "level rose"
        );
        assert!(!g.should_tell(&state("a", Level::Critical, 3, 7)));
        assert!(
            g.should_tell(&state("b", Level::Critical, 1, 2)),
            "another incident"
        );
        for n in 0..GATE_CAP {
            g.should_tell(&state(&format!("x{n}"), Level::High, 1, 2));
        }
        assert!(g.told.len() <= GATE_CAP);
        assert!(
            g.should_tell(&state("a", Level::Critical, 3, 8)),
            "forgotten after the cap: told again rather than never"
        );
    }
}
