//! Incidents for the explainer: the facts of a session's story for the model (header, one
//! line per step in time order, the steps' own evidence ids) and the local explanation told
//! from the steps when no model answers.

use std::collections::BTreeSet;

use super::prompt::Fact;
use super::redact::{Counts, Redactor};
use crate::incident::Incident;
use crate::model::{Explanation, NextStep};

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
