//! LLM explanations of anomalies and snapshots, done safely: redaction of what leaves the
//! host, prompts built from structured facts within a token budget, OpenAI-compatible and
//! Anthropic providers, validation of the answer (evidence ids, command policy), and a
//! deterministic local explanation whenever no model is configured or the model fails.
//! The explainer never sets or changes a score. docs/llm.md describes it for operators.

pub mod config;
pub mod facts;
pub mod incident;
pub mod local;
pub mod policy;
pub mod prompt;
pub mod provider;
pub mod redact;
pub mod service;
pub mod validate;

pub use config::{LlmConfig, ProviderKind};
pub use prompt::{Prompt, Subject};
pub use service::{Explainer, ExplainerHandle, ExplainerStats, SubmitError};

use serde_json::{Value, json};

use crate::model::Explanation;
use provider::{CallStats, Provider, ProviderError, Role, Turn};
use redact::Redactor;

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("{0}")]
    Config(String),
}

/// Why the model's explanation was not used.
#[derive(Debug)]
pub enum Failure {
    Provider(ProviderError),
    /// The answer broke the schema twice (first answer and the repair).
    InvalidAnswer(String),
}

impl Failure {
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Provider(e) => e.kind(),
            Failure::InvalidAnswer(_) => "invalid_answer",
        }
    }
}

/// The result of one explanation: always an explanation, plus what it cost and what failed.
#[derive(Debug)]
pub struct Outcome {
    pub explanation: Explanation,
    pub failure: Option<Failure>,
    pub stats: CallStats,
    /// A repair request was sent after an invalid first answer.
    pub repaired: bool,
}

const REPAIR: &str = "Your previous answer could not be used: {error}. Reply again with only \
the JSON object, no prose and no code fences, with exactly the fields summary, \
likely_explanation, benign_alternatives, confidence, evidence_ids and next_steps.";

/// Prompt building, provider calls, validation and fallback, without queues or caches.
pub struct Engine {
    cfg: LlmConfig,
    provider: Option<Provider>,
    redactor: Redactor,
}

impl Engine {
    /// Loads the API key and the per-install redaction secret. A secret that cannot be read
    /// or created (an unprivileged `sentinel analyze`) falls back to a per-process key.
    pub fn new(cfg: &LlmConfig) -> Result<Engine, ExplainError> {
        let redactor = match Redactor::load_or_create(&cfg.secret_file) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(
                    "{e}; user pseudonyms use a per-process key and will differ between runs"
                );
                Redactor::ephemeral().map_err(|e| ExplainError::Config(e.to_string()))?
            }
        };
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let users = redact::local_user_names(&passwd, cfg.hash_system_users);
        Engine::with_redactor(cfg, redactor.with_users(users))
    }

    pub fn with_redactor(cfg: &LlmConfig, redactor: Redactor) -> Result<Engine, ExplainError> {
        cfg.validate().map_err(ExplainError::Config)?;
        let provider = Provider::new(cfg).map_err(ExplainError::Config)?;
        let redactor = redactor
            .with_ip_redaction(cfg.redact_ips)
            .with_system_users(cfg.hash_system_users);
        Ok(Engine {
            cfg: cfg.clone(),
            provider,
            redactor,
        })
    }

    pub fn config(&self) -> &LlmConfig {
        &self.cfg
    }

    pub fn prompt(&self, subject: &Subject) -> Prompt {
        // Anthropic carries the schema in the system prompt, so it counts against the budget.
        let schema = match self.cfg.provider {
            ProviderKind::Anthropic => prompt::estimate_tokens(
                &prompt::answer_schema(self.cfg.schema_max_string).to_string(),
            ),
            _ => 0,
        };
        let budget = self.cfg.max_prompt_tokens.saturating_sub(schema);
        let mut p = prompt::build(subject, &self.redactor, budget);
        p.estimated_tokens += schema;
        p
    }

    /// Exactly what would be sent for this prompt: endpoint and body (the key header is
    /// not shown). With no provider nothing is sent, and the preview says so.
    pub fn preview(&self, p: &Prompt) -> Value {
        let turns = [Turn {
            role: Role::User,
            content: p.user.clone(),
        }];
        let redactions: serde_json::Map<String, Value> = p
            .redactions
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        match &self.provider {
            Some(pr) => json!({
                "provider": pr.kind().as_str(),
                "endpoint": pr.endpoint(),
                "body": pr.request_body(&p.system, &turns),
                "estimated_prompt_tokens": p.estimated_tokens,
                "omitted": p.omitted,
                "redactions": redactions,
            }),
            None => json!({
                "provider": "local",
                "note": "no provider configured: nothing is sent; the local explanation is used",
                "system": p.system,
                "user": p.user,
                "estimated_prompt_tokens": p.estimated_tokens,
                "omitted": p.omitted,
                "redactions": redactions,
            }),
        }
    }

    /// Explains a subject. Never fails: any provider or answer problem yields the local
    /// explanation with a warning, and the failure is reported in the outcome.
    pub async fn explain(&self, subject: &Subject<'_>) -> Outcome {
        let Some(provider) = &self.provider else {
            return Outcome {
                explanation: local::explain(subject),
                failure: None,
                stats: CallStats::default(),
                repaired: false,
            };
        };
        let p = self.prompt(subject);
        let source = self.cfg.source_label();
        let mut stats = CallStats::default();
        let mut turns = vec![Turn {
            role: Role::User,
            content: p.user.clone(),
        }];
        let mut repaired = false;
        let failure = loop {
            let text = match provider.complete(&p.system, &turns, &mut stats).await {
                Ok(t) => t,
                Err(e) => break Failure::Provider(e),
            };
            let checked =
                validate::extract_json(&text).and_then(|v| validate::validate(&v, &p, &source));
            match checked {
                Ok(mut e) => {
                    if !p.omitted.is_empty() {
                        e.warnings.push(format!(
                            "facts omitted for the token budget: {}",
                            p.omitted.join("; ")
                        ));
                    }
                    if repaired {
                        e.warnings
                            .push("the first answer was invalid; this is the repaired one".into());
                    }
                    return Outcome {
                        explanation: e,
                        failure: None,
                        stats,
                        repaired,
                    };
                }
                Err(err) if !repaired => {
                    tracing::info!(error = %err, "llm answer invalid; asking once for a repair");
                    repaired = true;
                    turns.push(Turn {
                        role: Role::Assistant,
                        content: validate::clean(&text, 4000),
                    });
                    turns.push(Turn {
                        role: Role::User,
                        content: REPAIR.replace("{error}", &err),
                    });
                }
                Err(err) => break Failure::InvalidAnswer(err),
            }
        };
        tracing::warn!(
            kind = failure.kind(),
            "llm explanation failed; using the local one"
        );
        let mut explanation = local::explain(subject);
        explanation.warnings.push(match &failure {
            Failure::Provider(e) => format!("{source} failed ({e}); local explanation used"),
            Failure::InvalidAnswer(e) => {
                format!("{source} answered invalid JSON twice ({e}); local explanation used")
            }
        });
        Outcome {
            explanation,
            failure: Some(failure),
            stats,
            repaired,
        }
    }
}
