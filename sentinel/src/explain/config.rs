//! The `[llm]` configuration section: which provider, where, with which key, and the limits
//! (timeouts, budgets, queue sizes) that keep a slow or costly model off the agent's hot path.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::Level;

/// Which API the endpoint speaks. `None` means the deterministic local explanation only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    #[default]
    None,
    /// Any OpenAI-compatible chat-completions endpoint (OpenAI, Ollama, llama.cpp, vLLM).
    OpenAi,
    /// The Anthropic Messages API.
    Anthropic,
}

impl ProviderKind {
    pub fn parse(s: &str) -> Option<ProviderKind> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "local" => Some(ProviderKind::None),
            "openai" => Some(ProviderKind::OpenAi),
            "anthropic" => Some(ProviderKind::Anthropic),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::None => "local",
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
        }
    }

    fn default_base_url(self) -> &'static str {
        match self {
            ProviderKind::None => "",
            ProviderKind::OpenAi => "https://api.openai.com/v1",
            ProviderKind::Anthropic => "https://api.anthropic.com",
        }
    }

    fn default_key_env(self) -> &'static str {
        match self {
            ProviderKind::None => "",
            ProviderKind::OpenAi => "OPENAI_API_KEY",
            ProviderKind::Anthropic => "ANTHROPIC_API_KEY",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    pub provider: ProviderKind,
    /// Endpoint base. OpenAI style includes the version ("https://api.openai.com/v1"); the
    /// Anthropic base does not ("https://api.anthropic.com"). Empty: the provider's default.
    pub base_url: String,
    pub model: String,
    /// Environment variable holding the API key (default OPENAI_API_KEY / ANTHROPIC_API_KEY).
    pub api_key_env: Option<String>,
    /// File holding the API key (first line); wins over `api_key_env`.
    pub api_key_file: Option<PathBuf>,
    /// Whole-request timeout.
    pub timeout_secs: u64,
    pub max_tokens: u32,
    pub temperature: f32,
    /// Budget for the whole prompt (system + user), estimated at 3 characters per token.
    pub max_prompt_tokens: usize,
    /// Upper bound on every string of the answer, sent in the JSON schema (0 = none). Useful
    /// for small local models; llama.cpp enforces it through its grammar.
    pub schema_max_string: usize,
    /// Retries after the first attempt on 429, 5xx, timeouts and connection errors.
    pub retries: u32,
    /// First backoff delay; doubles per retry.
    pub backoff_ms: u64,
    /// Upper bound of one backoff delay, also caps a server's Retry-After.
    pub max_backoff_secs: u64,
    /// `sentinel run --llm` explains anomalies at or above this level.
    pub min_level: Level,
    /// Anomalies waiting for the explainer; more are dropped (counted), never blocking.
    pub queue: usize,
    /// Provider calls (explanations) per hour: a burst of this many, refilled evenly over the
    /// hour; beyond it the local explanation is used.
    pub calls_per_hour: u32,
    /// Explanations remembered by anomaly fingerprint.
    pub cache_size: usize,
    /// Per-install secret for the keyed user-name hashes (created 0600 when missing).
    pub secret_file: PathBuf,
    /// Also hash names of system accounts (uid < 1000, e.g. root, www-data).
    pub hash_system_users: bool,
    /// Replace IP addresses with keyed hashes.
    pub redact_ips: bool,
    /// Extra top-level fields merged into every request body, e.g. `cache_prompt = false`
    /// for llama.cpp. Never holds the key (the key travels only in a header).
    pub extra_body: serde_json::Map<String, serde_json::Value>,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            provider: ProviderKind::None,
            base_url: String::new(),
            model: String::new(),
            api_key_env: None,
            api_key_file: None,
            timeout_secs: 60,
            max_tokens: 1024,
            temperature: 0.2,
            max_prompt_tokens: 3000,
            schema_max_string: 0,
            retries: 2,
            backoff_ms: 500,
            max_backoff_secs: 30,
            min_level: Level::High,
            queue: 64,
            calls_per_hour: 60,
            cache_size: 512,
            secret_file: PathBuf::from("/var/lib/sentinel/explain.key"),
            hash_system_users: false,
            redact_ips: false,
            extra_body: serde_json::Map::new(),
        }
    }
}

impl LlmConfig {
    pub fn validate(&self) -> Result<(), String> {
        let bad = |m: &str| Err(format!("[llm] {m}"));
        if self.provider != ProviderKind::None && self.model.trim().is_empty() {
            return bad("model is required when a provider is set");
        }
        if !(self.base_url.is_empty()
            || self.base_url.starts_with("http://")
            || self.base_url.starts_with("https://"))
        {
            return bad("base_url must start with http:// or https://");
        }
        if self.timeout_secs == 0 || self.timeout_secs > 600 {
            return bad("timeout_secs must be 1-600");
        }
        if self.max_tokens == 0 || self.max_tokens > 32_768 {
            return bad("max_tokens must be 1-32768");
        }
        if !(0.0..=2.0).contains(&self.temperature) {
            return bad("temperature must be 0.0-2.0");
        }
        if self.max_prompt_tokens < 256 {
            return bad("max_prompt_tokens must be at least 256");
        }
        if self.retries > 10 {
            return bad("retries must be 0-10");
        }
        if self.queue == 0 || self.cache_size == 0 {
            return bad("queue and cache_size must be at least 1");
        }
        for key in ["model", "messages", "system", "response_format"] {
            if self.extra_body.contains_key(key) {
                return bad(&format!("extra_body may not override {key:?}"));
            }
        }
        Ok(())
    }

    pub fn base_url(&self) -> String {
        let base = if self.base_url.is_empty() {
            self.provider.default_base_url()
        } else {
            &self.base_url
        };
        base.trim_end_matches('/').to_string()
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// "openai:<model>" / "anthropic:<model>" / "local": the `Explanation::source` value.
    pub fn source_label(&self) -> String {
        match self.provider {
            ProviderKind::None => "local".to_string(),
            p => format!("{}:{}", p.as_str(), self.model),
        }
    }

    /// Reads the key from the file or the environment; `None` when neither is set (a local
    /// Ollama or llama.cpp endpoint may not need one).
    pub fn api_key(&self) -> Result<Option<ApiKey>, String> {
        if let Some(path) = &self.api_key_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("[llm] api_key_file {}: {e}", path.display()))?;
            let key = text.lines().next().unwrap_or("").trim().to_string();
            if key.is_empty() {
                return Err(format!("[llm] api_key_file {} is empty", path.display()));
            }
            return Ok(Some(ApiKey(key)));
        }
        let var = self
            .api_key_env
            .clone()
            .unwrap_or_else(|| self.provider.default_key_env().to_string());
        if var.is_empty() {
            return Ok(None);
        }
        Ok(std::env::var(&var)
            .ok()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .map(ApiKey))
    }
}

/// An API key. Its `Debug` form never shows the value, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(s: impl Into<String>) -> ApiKey {
        ApiKey(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_provider_needs_a_model() {
        assert!(LlmConfig::default().validate().is_ok());
        let c = LlmConfig {
            provider: ProviderKind::OpenAi,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().contains("model"));
        let c = LlmConfig {
            provider: ProviderKind::OpenAi,
            model: "m".into(),
            base_url: "ftp://x".into(),
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().contains("base_url"));
    }

    #[test]
    fn section_parses_from_toml_and_rejects_unknown_keys() {
        let c: LlmConfig = toml::from_str(
            "provider = \"anthropic\"\nmodel = \"claude\"\ntemperature = 0.0\n[extra_body]\ncache_prompt = false\n",
        )
        .unwrap();
        assert_eq!(c.provider, ProviderKind::Anthropic);
        assert_eq!(c.base_url(), "https://api.anthropic.com");
        assert_eq!(c.source_label(), "anthropic:claude");
        assert_eq!(c.extra_body["cache_prompt"], serde_json::json!(false));
        assert!(toml::from_str::<LlmConfig>("bogus = 1").is_err());
    }

    #[test]
    fn key_comes_from_file_first_and_never_prints() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        std::fs::write(&p, "sk-test-123\n").unwrap();
        let c = LlmConfig {
            provider: ProviderKind::OpenAi,
            api_key_file: Some(p),
            api_key_env: Some("SENTINEL_TEST_NO_SUCH_VAR".into()),
            ..Default::default()
        };
        let k = c.api_key().unwrap().unwrap();
        assert_eq!(k.expose(), "sk-test-123");
        assert!(!format!("{k:?}").contains("sk-test"));
    }
}
