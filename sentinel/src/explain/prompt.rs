//! Prompt building: structured, redacted facts about an anomaly, a snapshot or a snapshot
//! diff, fitted into a token budget (most relevant first, with a note of what was cut), plus
//! the system prompt and the JSON schema of the answer.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::redact::{Counts, Redactor};
use crate::model::Anomaly;

/// What is being explained.
pub enum Subject<'a> {
    Anomaly {
        anomaly: &'a Anomaly,
        /// Learned baseline of the principal or executable, when the caller has one.
        baseline: Option<&'a Value>,
    },
    /// A host snapshot (the C-Sentinel fingerprint JSON).
    Snapshot(&'a Value),
    /// A structured diff from `diff::diff`.
    Diff(&'a Value),
    /// A session's anomalies told as one story.
    Incident(&'a crate::incident::Incident),
}

/// Exactly what is sent, and what the answer may refer to.
#[derive(Clone, Debug)]
pub struct Prompt {
    pub system: String,
    pub user: String,
    /// Ids the answer may cite: every evidence or fact id of the subject (cut or not).
    pub known_ids: BTreeSet<String>,
    /// One line per group of facts cut for the budget.
    pub omitted: Vec<String>,
    pub redactions: Counts,
    pub estimated_tokens: usize,
}

/// Rough token count at 3 characters per token: small-vocabulary tokenizers split JSON,
/// paths and hashes finely (SmolLM2 measured 3.2 on these prompts), so this errs high.
pub fn estimate_tokens(s: &str) -> usize {
    s.len().div_ceil(3)
}

pub const SYSTEM: &str = "You are a careful Linux security analyst. Sentinel, a host security \
observer, collected the facts below. Explain them to the operator in plain language.
Rules:
- Sentinel's detectors computed any score and level. Do not re-score and do not invent facts.
- In evidence_ids cite only ids shown in square brackets in the facts.
- Prefer read-only investigation steps. Commands are checked by a policy engine; destructive ones are blocked.
- Names like user_0123456789abcdef are pseudonyms of accounts and [REDACTED...] marks removed secrets. Do not try to recover them.
- Answer with one JSON object and nothing else. Fields: summary (one or two sentences), \
likely_explanation, benign_alternatives (list of strings), confidence (number 0 to 1), \
evidence_ids (list of strings), next_steps (list of objects with description and command; \
command may be an empty string).";

/// The JSON schema of the answer; mirrors `model::Explanation`'s model-set fields.
/// `max_string` > 0 bounds every string (llama.cpp enforces it in its grammar, which keeps a
/// small model from rambling past `max_tokens`); 0 leaves lengths to the model.
pub fn answer_schema(max_string: usize) -> Value {
    let text = |min: usize| {
        if max_string > 0 {
            json!({"type": "string", "minLength": min, "maxLength": max_string})
        } else {
            json!({"type": "string"})
        }
    };
    // Ids are copied from the facts, some are long (paths): give them more room.
    let id = if max_string > 0 {
        json!({"type": "string", "maxLength": max_string.max(120)})
    } else {
        json!({"type": "string"})
    };
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["summary", "likely_explanation", "benign_alternatives", "confidence",
                     "evidence_ids", "next_steps"],
        "properties": {
            "summary": text(1),
            "likely_explanation": text(1),
            "benign_alternatives": {"type": "array", "items": text(1), "maxItems": 3},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "evidence_ids": {"type": "array", "items": id, "maxItems": 6},
            "next_steps": {
                "type": "array",
                "maxItems": 3,
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["description", "command"],
                    "properties": {
                        "description": text(1),
                        "command": text(0)
                    }
                }
            }
        }
    })
}

/// One fact line. Facts with `required` are never cut.
#[derive(Clone, Debug)]
pub struct Fact {
    pub section: &'static str,
    pub id: Option<String>,
    pub text: String,
    pub priority: u32,
    pub required: bool,
}

impl Fact {
    pub fn new(section: &'static str, id: Option<String>, text: String, priority: u32) -> Fact {
        Fact {
            section,
            id,
            text,
            priority,
            required: false,
        }
    }

    fn line(&self) -> String {
        match &self.id {
            Some(id) => format!("- [{id}] {}", self.text),
            None => format!("- {}", self.text),
        }
    }
}

/// Builds the redacted, budgeted prompt for a subject.
pub fn build(subject: &Subject, r: &Redactor, max_tokens: usize) -> Prompt {
    let mut counts = Counts::new();
    let (task, facts, known_ids) = match subject {
        Subject::Anomaly { anomaly, baseline } => {
            // The acting user is pseudonymised even when /etc/passwd did not list it.
            let p = &anomaly.principal;
            let extended;
            let r = match &p.user {
                Some(u) if (1000..65534).contains(&p.uid) || r.hashes_system_users() => {
                    extended = r.clone().with_users([u.clone()]);
                    &extended
                }
                _ => r,
            };
            let facts = anomaly_facts(anomaly, *baseline, r, &mut counts);
            let mut ids: BTreeSet<String> = anomaly.evidence.iter().map(|e| e.id.clone()).collect();
            ids.extend(
                anomaly
                    .factors
                    .iter()
                    .flat_map(|f| f.evidence.iter().cloned()),
            );
            (
                "Explain this anomaly that Sentinel detected on a Linux host.",
                facts,
                ids,
            )
        }
        Subject::Snapshot(v) => {
            let facts = super::facts::snapshot_facts(v, r, &mut counts);
            let ids = facts.iter().filter_map(|f| f.id.clone()).collect();
            (
                "Explain what stands out in this snapshot of a Linux host: risks, drift, odd processes or configuration.",
                facts,
                ids,
            )
        }
        Subject::Incident(i) => {
            // As for anomalies: the session's user is pseudonymised even when /etc/passwd
            // did not list it.
            let p = &i.principal;
            let extended;
            let r = match &p.user {
                Some(u) if (1000..65534).contains(&p.uid) || r.hashes_system_users() => {
                    extended = r.clone().with_users([u.clone()]);
                    &extended
                }
                _ => r,
            };
            let (facts, ids) = super::incident::facts(i, r, &mut counts);
            (
                "Explain this incident: the anomalies one login session raised on a Linux host, in order. Tell it as one story: what the person or intruder was doing, and what to check first.",
                facts,
                ids,
            )
        }
        Subject::Diff(v) => {
            let facts = super::facts::diff_facts(v, r, &mut counts);
            let ids = facts.iter().filter_map(|f| f.id.clone()).collect();
            (
                "Explain the changes between two snapshots of the same Linux host (before -> after) and whether they matter for security.",
                facts,
                ids,
            )
        }
    };
    let (body, omitted) = fit(
        task,
        facts,
        max_tokens.saturating_sub(estimate_tokens(SYSTEM)),
    );
    let estimated_tokens = estimate_tokens(SYSTEM) + estimate_tokens(&body);
    Prompt {
        system: SYSTEM.to_string(),
        user: body,
        known_ids,
        omitted,
        redactions: counts,
        estimated_tokens,
    }
}

/// Chooses facts by priority until the budget is used, truncating one large fact to the
/// space left when that still says something, and renders them by section.
fn fit(task: &str, facts: Vec<Fact>, budget: usize) -> (String, Vec<String>) {
    const NOTE_RESERVE: usize = 80;
    let mut order: Vec<usize> = (0..facts.len()).collect();
    order.sort_by_key(|&i| (!facts[i].required, std::cmp::Reverse(facts[i].priority), i));
    let mut used = estimate_tokens(task) + 30 + NOTE_RESERVE;
    let mut keep: Vec<Option<String>> = vec![None; facts.len()];
    let mut cut: Vec<&Fact> = Vec::new();
    for i in order {
        let f = &facts[i];
        let line = f.line();
        let cost = estimate_tokens(&line) + 1;
        if f.required || used + cost <= budget {
            used += cost;
            keep[i] = Some(line);
        } else if budget.saturating_sub(used) > 60 && line.len() > 400 {
            let room = (budget - used) * 4 - 20;
            let mut end = room.min(line.len());
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            let short = format!("{} ...(truncated)", &line[..end]);
            used += estimate_tokens(&short) + 1;
            keep[i] = Some(short);
        } else {
            cut.push(f);
        }
    }
    // The note of what was cut costs tokens too: give up the least relevant kept facts
    // until facts and note fit together.
    loop {
        let note: usize = summarize_cut(&cut)
            .iter()
            .map(|l| estimate_tokens(l) + 1)
            .sum();
        if used + note <= budget + NOTE_RESERVE {
            break;
        }
        let victim = (0..facts.len())
            .filter(|&i| keep[i].is_some() && !facts[i].required)
            .min_by_key(|&i| (facts[i].priority, std::cmp::Reverse(i)));
        let Some(v) = victim else { break };
        used -= keep[v]
            .as_deref()
            .map(|l| estimate_tokens(l) + 1)
            .unwrap_or(0);
        keep[v] = None;
        cut.push(&facts[v]);
    }
    let mut out = format!("{task}\n");
    let mut section = "";
    for (f, line) in facts.iter().zip(&keep) {
        let Some(line) = line else { continue };
        if f.section != section {
            section = f.section;
            out.push_str(&format!("\n## {section}\n"));
        }
        out.push_str(line);
        out.push('\n');
    }
    let omitted = summarize_cut(&cut);
    if !omitted.is_empty() {
        out.push_str("\n## Omitted for the token budget\n");
        for o in &omitted {
            out.push_str(&format!("- {o}\n"));
        }
    }
    (out, omitted)
}

fn summarize_cut(cut: &[&Fact]) -> Vec<String> {
    let mut sections: Vec<&'static str> = Vec::new();
    for f in cut {
        if !sections.contains(&f.section) {
            sections.push(f.section);
        }
    }
    sections
        .into_iter()
        .map(|s| {
            let items: Vec<&&Fact> = cut.iter().filter(|f| f.section == s).collect();
            let ids: Vec<&str> = items.iter().filter_map(|f| f.id.as_deref()).collect();
            let shown: Vec<&str> = ids.iter().take(5).copied().collect();
            let more = ids.len().saturating_sub(shown.len());
            let mut line = format!("{} of {s}", items.len());
            if !shown.is_empty() {
                line.push_str(&format!(" ({}", shown.join(", ")));
                if more > 0 {
                    line.push_str(&format!(", and {more} more"));
                }
                line.push(')');
            }
            line
        })
        .collect()
}

fn anomaly_facts(a: &Anomaly, baseline: Option<&Value>, r: &Redactor, c: &mut Counts) -> Vec<Fact> {
    let mut facts = Vec::new();
    let user = a
        .principal
        .user
        .as_deref()
        .map(|u| format!(" user {}", r.text_counted(u, c)))
        .unwrap_or_default();
    let session = a
        .principal
        .session
        .map(|s| format!(" session {s}"))
        .unwrap_or_default();
    let mut head = Fact::new(
        "Anomaly",
        None,
        format!(
            "id {}, time {}, level {} (score {}/100, set by Sentinel's detectors), principal uid {}{user}{session}",
            a.id,
            crate::timefmt::rfc3339_secs(a.time_ns),
            a.level,
            a.score,
            a.principal.uid
        ),
        1000,
    );
    head.required = true;
    facts.push(head);
    let mut factors: Vec<_> = a.factors.iter().collect();
    factors.sort_by_key(|f| std::cmp::Reverse(f.weight));
    for f in factors {
        let ev = if f.evidence.is_empty() {
            String::new()
        } else {
            format!("; evidence: {}", f.evidence.join(", "))
        };
        facts.push(Fact::new(
            "Factors (why Sentinel flagged it, heaviest first)",
            None,
            format!(
                "{} (weight {}): {}{ev}",
                f.detection,
                f.weight,
                r.text_counted(&f.reason, c)
            ),
            900 + f.weight as u32,
        ));
    }
    let n = a.chain.len();
    for (i, link) in a.chain.iter().enumerate() {
        let argv = if link.argv.is_empty() {
            String::new()
        } else {
            format!(" argv {}", r.argv_counted(&link.argv, c).join(" "))
        };
        let role = if i + 1 == n { " (acting process)" } else { "" };
        facts.push(Fact::new(
            "Process chain (oldest ancestor first)",
            None,
            format!(
                "pid {} uid {} exe {}{argv}{role}",
                link.pid,
                link.uid,
                r.text_counted(&link.exe, c)
            ),
            // The acting process and its nearest ancestors matter most.
            800 - (n - i).min(100) as u32,
        ));
    }
    for e in &a.evidence {
        let weight = a
            .factors
            .iter()
            .filter(|f| f.evidence.contains(&e.id))
            .map(|f| f.weight as u32)
            .max()
            .unwrap_or(0);
        let detail = if e.detail.is_null() {
            String::new()
        } else {
            format!("; detail {}", redact_json(&e.detail, r, c))
        };
        facts.push(Fact::new(
            "Evidence",
            Some(e.id.clone()),
            format!(
                "{} {}{detail}",
                crate::timefmt::rfc3339_secs(e.time_ns),
                r.text_counted(&e.summary, c)
            ),
            500 + weight,
        ));
    }
    if let Some(Value::Object(b)) = baseline {
        for (k, v) in b {
            facts.push(Fact::new(
                "Baseline (what is normal here)",
                None,
                format!("{k}: {}", redact_json(v, r, c)),
                400,
            ));
        }
    }
    facts
}

/// Redacts every string in a JSON value: argv-like arrays with the argv rules, user-name
/// fields as pseudonyms, everything else with the text rules.
pub fn redact_json(v: &Value, r: &Redactor, c: &mut Counts) -> Value {
    fn walk(key: &str, v: &Value, r: &Redactor, c: &mut Counts) -> Value {
        match v {
            Value::String(s) => {
                let k = key.to_ascii_lowercase();
                if matches!(
                    k.as_str(),
                    "user" | "username" | "user_name" | "acct" | "login"
                ) && !s.is_empty()
                    && !s.starts_with("user_")
                    && s != "root"
                {
                    *c.entry("user name").or_default() += 1;
                    Value::String(r.user_hash(s))
                } else if matches!(k.as_str(), "cmdline" | "command" | "command_line") {
                    Value::String(r.command_line_counted(s, c))
                } else {
                    Value::String(r.text_counted(s, c))
                }
            }
            Value::Array(items) => {
                let k = key.to_ascii_lowercase();
                if matches!(k.as_str(), "argv" | "args") && items.iter().all(Value::is_string) {
                    let argv: Vec<String> = items
                        .iter()
                        .filter_map(|i| i.as_str().map(str::to_string))
                        .collect();
                    Value::Array(
                        r.argv_counted(&argv, c)
                            .into_iter()
                            .map(Value::String)
                            .collect(),
                    )
                } else {
                    Value::Array(items.iter().map(|i| walk(key, i, r, c)).collect())
                }
            }
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (r.text_counted(k, c), walk(k, v, r, c)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    walk("", v, r, c)
}

#[cfg(test)]
#[path = "prompt_tests.rs"]
pub(crate) mod tests;
