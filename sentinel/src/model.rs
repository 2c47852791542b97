//! The product's currency: `Factor`, `Level` and `Anomaly`. The terminal, JSON lines, the
//! store, the LLM prompt and the dashboard all show these same records (docs/anomalies.md).

use serde::{Deserialize, Serialize};

/// Severity bands of a 0-100 score.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Low,
    Medium,
    High,
    Critical,
}

impl Level {
    /// Default bands: < 25 low, < 50 medium, < 75 high, else critical.
    pub fn from_score(score: u8) -> Level {
        match score {
            0..25 => Level::Low,
            25..50 => Level::Medium,
            50..75 => Level::High,
            _ => Level::Critical,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_lowercase().as_str() {
            "low" => Some(Level::Low),
            "medium" => Some(Level::Medium),
            "high" => Some(Level::High),
            "critical" => Some(Level::Critical),
            _ => None,
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reason an activity looks wrong.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Factor {
    /// Stable detection id, e.g. "credential_access", "exec_from_tmp".
    pub detection: String,
    /// A plain sentence a person can read.
    pub reason: String,
    /// Points this factor adds to the score (from configuration).
    pub weight: u8,
    /// Ids of the events that prove it (`Event::id`), or audit serials as "audit:<serial>".
    pub evidence: Vec<String>,
}

/// One link of a process chain, oldest ancestor first in `Anomaly::chain`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    pub pid: u32,
    pub exe: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub argv: Vec<String>,
    pub uid: u32,
}

/// Who acted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Login uid when set, else uid.
    pub uid: u32,
    /// Resolved user name; absent for unknown uids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<u32>,
}

/// Evidence carried with an anomaly so that sinks far from the agent (server, LLM) can show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub id: String,
    /// Epoch nanoseconds.
    pub time_ns: i64,
    /// One-line human summary of the event.
    pub summary: String,
    /// The full event (or audit record) as JSON.
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// An explanation from the LLM (or the local fallback). Never affects the score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub summary: String,
    pub likely_explanation: String,
    #[serde(default)]
    pub benign_alternatives: Vec<String>,
    /// 0.0 - 1.0 as stated by the explainer.
    pub confidence: f32,
    #[serde(default)]
    pub evidence_ids: Vec<String>,
    #[serde(default)]
    pub next_steps: Vec<NextStep>,
    /// "openai:<model>", "anthropic:<model>" or "local".
    pub source: String,
    /// Problems found while validating the answer (dropped evidence, blocked commands).
    #[serde(default)]
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NextStep {
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// "allowed", "warn" or "blocked" from the command policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// A scored deviation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// Unique id (host-scoped): "<host>-<epoch ms>-<counter>".
    pub id: String,
    pub host: String,
    /// Epoch nanoseconds of the first evidence.
    pub time_ns: i64,
    pub principal: Principal,
    /// Oldest ancestor first, the acting process last.
    pub chain: Vec<ChainLink>,
    /// 0-100: the sum of factor weights, capped.
    pub score: u8,
    pub level: Level,
    pub factors: Vec<Factor>,
    #[serde(default)]
    pub evidence: Vec<Evidence>,
    /// Stable hash of (detections, principal, executable): the same pattern gets the same
    /// fingerprint, used for LLM caching and de-duplication.
    pub fingerprint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
}

impl Anomaly {
    /// Sums factor weights into a 0-100 score and its level.
    pub fn score_of(factors: &[Factor]) -> (u8, Level) {
        let sum: u32 = factors.iter().map(|f| f.weight as u32).sum();
        let score = sum.min(100) as u8;
        (score, Level::from_score(score))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(w: u8) -> Factor {
        Factor {
            detection: "x".into(),
            reason: "r".into(),
            weight: w,
            evidence: vec![],
        }
    }

    #[test]
    fn score_adds_up_and_caps() {
        assert_eq!(Anomaly::score_of(&[]), (0, Level::Low));
        assert_eq!(Anomaly::score_of(&[f(20), f(10)]), (30, Level::Medium));
        assert_eq!(Anomaly::score_of(&[f(200), f(200)]), (100, Level::Critical));
        assert_eq!(Level::from_score(74), Level::High);
        assert_eq!(Level::parse("HIGH"), Some(Level::High));
    }
}
