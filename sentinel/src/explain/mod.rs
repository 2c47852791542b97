//! LLM explanations of anomalies and snapshots, done safely: redaction of what leaves the
//! host, prompts built from structured facts within a token budget, OpenAI-compatible and
//! Anthropic providers, validation of the answer (evidence ids, command policy), and a
//! deterministic local explanation whenever no model is configured or the model fails.
//! The explainer never sets or changes a score.

pub mod config;
pub mod policy;
pub mod redact;

pub use config::{LlmConfig, ProviderKind};
