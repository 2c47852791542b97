//! Validation of a model's answer before anyone sees it: JSON extraction, the schema's
//! required fields, evidence ids checked against the subject (unknown ones dropped and
//! flagged), suggested commands through the policy, control characters stripped.

use serde_json::Value;

use super::policy::{self, Decision};
use super::prompt::Prompt;
use crate::model::{Explanation, NextStep};

const MAX_TEXT: usize = 2000;
const MAX_COMMAND: usize = 500;
const MAX_ITEMS: usize = 8;

/// Finds the JSON object in a reply (bare, fenced in ``` or surrounded by prose).
pub fn extract_json(text: &str) -> Result<Value, String> {
    let t = text.trim();
    if let Ok(v) = serde_json::from_str::<Value>(t) {
        return Ok(v);
    }
    let (Some(start), Some(end)) = (t.find('{'), t.rfind('}')) else {
        return Err("the reply holds no JSON object".into());
    };
    if end <= start {
        return Err("the reply holds no JSON object".into());
    }
    serde_json::from_str(&t[start..=end]).map_err(|e| format!("the reply is not valid JSON: {e}"))
}

/// Text a terminal can print safely: no escape sequences or other control characters.
pub fn clean(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect();
    out = out.trim().to_string();
    if out.len() > max {
        let mut end = max;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push_str("...");
    }
    out
}

fn text_field(v: &Value, k: &str) -> Result<String, String> {
    match v.get(k) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(clean(s, MAX_TEXT)),
        Some(Value::String(_)) => Err(format!("{k} is empty")),
        Some(_) => Err(format!("{k} is not a string")),
        None => Err(format!("{k} is missing")),
    }
}

fn strings(v: &Value, k: &str) -> Result<Vec<String>, String> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items
            .iter()
            .filter_map(|i| i.as_str())
            .map(|s| clean(s, MAX_TEXT))
            .filter(|s| !s.is_empty())
            .collect()),
        Some(_) => Err(format!("{k} is not a list")),
    }
}

/// Turns a parsed answer into an `Explanation`, or says which schema rule it breaks.
pub fn validate(answer: &Value, prompt: &Prompt, source: &str) -> Result<Explanation, String> {
    if !answer.is_object() {
        return Err("the answer is not a JSON object".into());
    }
    let mut warnings = Vec::new();
    let summary = text_field(answer, "summary")?;
    let likely_explanation = text_field(answer, "likely_explanation")?;
    let mut benign_alternatives = strings(answer, "benign_alternatives")?;
    benign_alternatives.truncate(MAX_ITEMS);
    let confidence = match answer.get("confidence") {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(Value::String(s)) => s
            .trim()
            .trim_end_matches('%')
            .parse::<f64>()
            .map_err(|_| "confidence is not a number".to_string())?,
        _ => return Err("confidence is missing or not a number".into()),
    };
    // Some models answer in percent.
    let confidence = if confidence > 1.0 && confidence <= 100.0 {
        confidence / 100.0
    } else {
        confidence
    };
    if !(0.0..=1.0).contains(&confidence) || confidence.is_nan() {
        warnings.push(format!("confidence {confidence} out of range; clamped"));
    }
    let confidence = if confidence.is_nan() {
        0.0
    } else {
        confidence.clamp(0.0, 1.0)
    } as f32;
    let mut evidence_ids = Vec::new();
    for id in strings(answer, "evidence_ids")? {
        let id = id.trim_matches(['[', ']', ' ']).to_string();
        if prompt.known_ids.contains(&id) {
            if !evidence_ids.contains(&id) {
                evidence_ids.push(id);
            }
        } else {
            warnings.push(format!("dropped evidence id {id:?}: not in the subject"));
        }
    }
    let mut next_steps = Vec::new();
    if let Some(steps) = answer.get("next_steps") {
        let Some(steps) = steps.as_array() else {
            return Err("next_steps is not a list".into());
        };
        for (i, s) in steps.iter().take(MAX_ITEMS).enumerate() {
            let (description, command) = match s {
                Value::String(d) => (clean(d, MAX_TEXT), None),
                Value::Object(_) => (
                    s.get("description")
                        .and_then(Value::as_str)
                        .map(|d| clean(d, MAX_TEXT))
                        .unwrap_or_default(),
                    s.get("command")
                        .and_then(Value::as_str)
                        .map(|c| clean(c, MAX_COMMAND))
                        .filter(|c| !c.is_empty()),
                ),
                _ => return Err(format!("next_steps[{i}] is not an object")),
            };
            if description.is_empty() && command.is_none() {
                continue;
            }
            let policy = command.as_deref().map(|c| {
                let v = policy::check(c);
                if v.decision == Decision::Blocked {
                    warnings.push(format!(
                        "next step {}: command blocked by policy ({}): {c}",
                        i + 1,
                        v.reasons.join(", ")
                    ));
                }
                v.decision.as_str().to_string()
            });
            next_steps.push(NextStep {
                description,
                command,
                policy,
            });
        }
    }
    for k in ["score", "level", "risk_score"] {
        if answer.get(k).is_some() {
            warnings.push(format!(
                "the model set {k:?}; ignored (the score is Sentinel's)"
            ));
        }
    }
    Ok(Explanation {
        summary,
        likely_explanation,
        benign_alternatives,
        confidence,
        evidence_ids,
        next_steps,
        source: source.to_string(),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::redact::Counts;
    use serde_json::json;

    fn prompt() -> Prompt {
        Prompt {
            system: String::new(),
            user: String::new(),
            known_ids: ["e1".to_string(), "e2".to_string()].into(),
            omitted: vec![],
            redactions: Counts::new(),
            estimated_tokens: 0,
        }
    }

    fn answer() -> Value {
        json!({
            "summary": "A shell ran from /tmp.\u{1b}[31m",
            "likely_explanation": "Dropper.",
            "benign_alternatives": ["installer"],
            "confidence": 0.7,
            "evidence_ids": ["e1", "[e2]", "e99"],
            "next_steps": [
                {"description": "look", "command": "ls -la /tmp"},
                {"description": "nuke", "command": "rm -rf /"},
                {"description": "stop it", "command": "kill -9 42"},
                {"description": "think", "command": ""}
            ],
            "score": 100
        })
    }

    #[test]
    fn unknown_evidence_is_dropped_and_flagged() {
        let e = validate(&answer(), &prompt(), "openai:m").unwrap();
        assert_eq!(e.evidence_ids, vec!["e1", "e2"]);
        assert!(
            e.warnings.iter().any(|w| w.contains("e99")),
            "{:?}",
            e.warnings
        );
        assert_eq!(e.source, "openai:m");
    }

    #[test]
    fn commands_carry_the_policy_verdict_and_blocked_ones_are_flagged() {
        let e = validate(&answer(), &prompt(), "x").unwrap();
        let p: Vec<_> = e.next_steps.iter().map(|s| s.policy.as_deref()).collect();
        assert_eq!(
            p,
            vec![Some("allowed"), Some("blocked"), Some("warn"), None]
        );
        assert!(
            e.warnings
                .iter()
                .any(|w| w.contains("blocked") && w.contains("rm -rf /"))
        );
        assert!(e.warnings.iter().any(|w| w.contains("score")));
    }

    #[test]
    fn control_characters_are_stripped() {
        let e = validate(&answer(), &prompt(), "x").unwrap();
        assert_eq!(e.summary, "A shell ran from /tmp.[31m");
    }

    #[test]
    fn schema_breaks_are_errors_and_confidence_is_normalised() {
        let mut a = answer();
        a.as_object_mut().unwrap().remove("summary");
        assert!(
            validate(&a, &prompt(), "x")
                .unwrap_err()
                .contains("summary")
        );
        let mut a = answer();
        a["confidence"] = json!(85);
        assert!((validate(&a, &prompt(), "x").unwrap().confidence - 0.85).abs() < 1e-6);
        a["confidence"] = json!(-3);
        let e = validate(&a, &prompt(), "x").unwrap();
        assert_eq!(e.confidence, 0.0);
        assert!(e.warnings.iter().any(|w| w.contains("clamped")));
        a["confidence"] = json!("high");
        assert!(validate(&a, &prompt(), "x").is_err());
    }

    #[test]
    fn json_is_found_in_fences_and_prose() {
        assert!(extract_json("```json\n{\"a\": 1}\n```").is_ok());
        assert!(extract_json("Sure! Here it is: {\"a\": {\"b\": 2}} Hope it helps.").is_ok());
        assert!(extract_json("no json here").is_err());
        assert!(extract_json("{\"a\": ").is_err());
    }
}
