//! LLM providers over HTTP: OpenAI-compatible chat completions (structured output with a
//! JSON schema) and the Anthropic Messages API (JSON asked for in the prompt), with a
//! whole-request timeout and retries with exponential backoff on 429/5xx that honour
//! Retry-After. The API key travels only in a header and is never logged.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::config::{ApiKey, LlmConfig, ProviderKind};
use super::prompt::answer_schema;
use super::validate::clean;

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("HTTP {status}: {body}")]
    Status {
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("invalid response: {0}")]
    Invalid(String),
    #[error("http client: {0}")]
    Client(String),
}

impl ProviderError {
    fn retryable(&self) -> bool {
        match self {
            ProviderError::Status { status, .. } => {
                *status == 408 || *status == 429 || *status >= 500
            }
            ProviderError::Timeout(_) | ProviderError::Connect(_) => true,
            ProviderError::Invalid(_) | ProviderError::Client(_) => false,
        }
    }

    /// A short stable name for failure counters.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::Status {
                status: 401 | 403, ..
            } => "auth",
            ProviderError::Status { status: 429, .. } => "rate_limited",
            ProviderError::Status { status, .. } if *status >= 500 => "server_error",
            ProviderError::Status { .. } => "http_error",
            ProviderError::Timeout(_) => "timeout",
            ProviderError::Connect(_) => "connect",
            ProviderError::Invalid(_) => "invalid_response",
            ProviderError::Client(_) => "client",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

/// One conversation turn after the system prompt.
#[derive(Clone, Debug)]
pub struct Turn {
    pub role: Role,
    pub content: String,
}

/// What one `complete` call cost.
#[derive(Clone, Copy, Debug, Default)]
pub struct CallStats {
    pub requests: u32,
    pub retries: u32,
}

pub struct Provider {
    kind: ProviderKind,
    cfg: LlmConfig,
    key: Option<ApiKey>,
    client: reqwest::Client,
}

impl Provider {
    /// `Ok(None)` when no provider is configured.
    pub fn new(cfg: &LlmConfig) -> Result<Option<Provider>, String> {
        if cfg.provider == ProviderKind::None {
            return Ok(None);
        }
        let key = cfg.api_key()?;
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout())
            .connect_timeout(cfg.timeout().min(Duration::from_secs(10)))
            .user_agent(concat!("sentinel/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        Ok(Some(Provider {
            kind: cfg.provider,
            cfg: cfg.clone(),
            key,
            client,
        }))
    }

    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    pub fn endpoint(&self) -> String {
        match self.kind {
            ProviderKind::Anthropic => format!("{}/v1/messages", self.cfg.base_url()),
            _ => format!("{}/chat/completions", self.cfg.base_url()),
        }
    }

    /// The exact JSON body that `complete` posts.
    pub fn request_body(&self, system: &str, turns: &[Turn]) -> Value {
        let msg = |t: &Turn| {
            let role = match t.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            json!({"role": role, "content": t.content})
        };
        let mut body = match self.kind {
            ProviderKind::Anthropic => json!({
                "model": self.cfg.model,
                "max_tokens": self.cfg.max_tokens,
                "temperature": self.cfg.temperature,
                "system": format!("{system}\nThe JSON object must match this JSON schema:\n{}", answer_schema(self.cfg.schema_max_string)),
                "messages": turns.iter().map(msg).collect::<Vec<_>>(),
            }),
            _ => {
                let mut messages = vec![json!({"role": "system", "content": system})];
                messages.extend(turns.iter().map(msg));
                json!({
                    "model": self.cfg.model,
                    "messages": messages,
                    "max_tokens": self.cfg.max_tokens,
                    "temperature": self.cfg.temperature,
                    "response_format": {
                        "type": "json_schema",
                        "json_schema": {"name": "sentinel_explanation", "strict": true, "schema": answer_schema(self.cfg.schema_max_string)}
                    },
                })
            }
        };
        if let Some(obj) = body.as_object_mut() {
            for (k, v) in &self.cfg.extra_body {
                obj.insert(k.clone(), v.clone());
            }
        }
        body
    }

    /// Sends the conversation, retrying what is worth retrying; returns the reply text.
    pub async fn complete(
        &self,
        system: &str,
        turns: &[Turn],
        stats: &mut CallStats,
    ) -> Result<String, ProviderError> {
        let body = self.request_body(system, turns);
        let mut attempt = 0;
        loop {
            stats.requests += 1;
            match self.send_once(&body).await {
                Ok(text) => return Ok(text),
                Err(e) if e.retryable() && attempt < self.cfg.retries => {
                    let retry_after = match &e {
                        ProviderError::Status { retry_after, .. } => *retry_after,
                        _ => None,
                    };
                    let delay = backoff_delay(
                        attempt,
                        Duration::from_millis(self.cfg.backoff_ms),
                        Duration::from_secs(self.cfg.max_backoff_secs),
                        retry_after,
                    );
                    tracing::info!(error = %e, ?delay, attempt, "llm call failed; retrying");
                    tokio::time::sleep(delay + jitter(self.cfg.backoff_ms / 4)).await;
                    stats.retries += 1;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn send_once(&self, body: &Value) -> Result<String, ProviderError> {
        let mut req = self.client.post(self.endpoint()).json(body);
        match (self.kind, &self.key) {
            (ProviderKind::Anthropic, key) => {
                req = req.header("anthropic-version", "2023-06-01");
                if let Some(k) = key {
                    req = req.header("x-api-key", k.expose());
                }
            }
            (_, Some(k)) => req = req.bearer_auth(k.expose()),
            (_, None) => {}
        }
        let resp = req.send().await.map_err(|e| self.map_err(e))?;
        let status = resp.status();
        let retry_after = parse_retry_after(resp.headers(), SystemTime::now());
        let text = resp.text().await.map_err(|e| self.map_err(e))?;
        if !status.is_success() {
            return Err(ProviderError::Status {
                status: status.as_u16(),
                body: clean(&text, 300),
                retry_after,
            });
        }
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| ProviderError::Invalid(format!("response is not JSON: {e}")))?;
        match self.kind {
            ProviderKind::Anthropic => anthropic_text(&v),
            _ => openai_text(&v),
        }
    }

    fn map_err(&self, e: reqwest::Error) -> ProviderError {
        // reqwest's messages name the URL, never headers, so the key cannot appear here.
        if e.is_timeout() {
            ProviderError::Timeout(self.cfg.timeout())
        } else if e.is_connect() {
            ProviderError::Connect(e.to_string())
        } else if e.is_body() || e.is_decode() {
            ProviderError::Invalid(e.to_string())
        } else {
            ProviderError::Client(e.to_string())
        }
    }
}

fn openai_text(v: &Value) -> Result<String, ProviderError> {
    let msg = v
        .pointer("/choices/0/message")
        .ok_or_else(|| ProviderError::Invalid("no choices[0].message".into()))?;
    if let Some(r) = msg.get("refusal").and_then(Value::as_str) {
        return Err(ProviderError::Invalid(format!(
            "refused: {}",
            clean(r, 200)
        )));
    }
    msg.get("content")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ProviderError::Invalid("message has no text content".into()))
}

fn anthropic_text(v: &Value) -> Result<String, ProviderError> {
    let blocks = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| ProviderError::Invalid("no content blocks".into()))?;
    let text: String = blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect();
    if text.is_empty() {
        return Err(ProviderError::Invalid("no text block in the reply".into()));
    }
    Ok(text)
}

/// The wait before retry `attempt` (0-based): the server's Retry-After when given, else
/// `base * 2^attempt`; never more than `cap`.
pub fn backoff_delay(
    attempt: u32,
    base: Duration,
    cap: Duration,
    retry_after: Option<Duration>,
) -> Duration {
    match retry_after {
        Some(d) => d.min(cap),
        None => base.saturating_mul(1u32 << attempt.min(20)).min(cap),
    }
}

fn jitter(max_ms: u64) -> Duration {
    if max_ms == 0 {
        return Duration::ZERO;
    }
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    Duration::from_millis(nanos % max_ms)
}

/// `retry-after-ms` (OpenAI), else `retry-after` as seconds or an HTTP date.
pub fn parse_retry_after(h: &reqwest::header::HeaderMap, now: SystemTime) -> Option<Duration> {
    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = get("retry-after-ms")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
    {
        return Some(Duration::from_millis(ms as u64));
    }
    let v = get("retry-after")?;
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = crate::timefmt::parse_http_date(v)?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn backoff_doubles_and_caps_and_prefers_retry_after() {
        let b = Duration::from_millis(500);
        let cap = Duration::from_secs(30);
        assert_eq!(backoff_delay(0, b, cap, None), Duration::from_millis(500));
        assert_eq!(backoff_delay(3, b, cap, None), Duration::from_secs(4));
        assert_eq!(backoff_delay(30, b, cap, None), cap);
        let ra = Some(Duration::from_secs(7));
        assert_eq!(backoff_delay(0, b, cap, ra), Duration::from_secs(7));
        assert_eq!(
            backoff_delay(0, b, cap, Some(Duration::from_secs(999))),
            cap
        );
    }

    #[test]
    fn retry_after_parses_seconds_milliseconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_770);
        let mut h = HeaderMap::new();
        assert_eq!(parse_retry_after(&h, now), None);
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(3)));
        h.insert(
            "retry-after",
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&h, now), None);
        h.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(
            parse_retry_after(&h, now),
            Some(Duration::from_millis(1500))
        );
        // A date in the past means "now".
        let later = now + Duration::from_secs(100);
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(parse_retry_after(&h, later), Some(Duration::ZERO));
    }

    fn provider(kind: ProviderKind) -> Provider {
        let mut cfg = LlmConfig {
            provider: kind,
            model: "m".into(),
            base_url: "http://127.0.0.1:1/v1/".into(),
            api_key_env: Some("SENTINEL_TEST_UNSET_KEY".into()),
            ..Default::default()
        };
        cfg.extra_body.insert("cache_prompt".into(), json!(false));
        Provider::new(&cfg).unwrap().unwrap()
    }

    #[test]
    fn request_bodies_follow_each_api() {
        let turns = [Turn {
            role: Role::User,
            content: "facts".into(),
        }];
        let o = provider(ProviderKind::OpenAi);
        assert_eq!(o.endpoint(), "http://127.0.0.1:1/v1/chat/completions");
        let b = o.request_body("sys", &turns);
        assert_eq!(b["messages"][0]["role"], "system");
        assert_eq!(b["response_format"]["type"], "json_schema");
        assert_eq!(b["cache_prompt"], false);
        let a = provider(ProviderKind::Anthropic);
        assert_eq!(a.endpoint(), "http://127.0.0.1:1/v1/v1/messages");
        let b = a.request_body("sys", &turns);
        assert!(b["system"].as_str().unwrap().contains("\"evidence_ids\""));
        assert_eq!(b["messages"][0]["role"], "user");
        assert!(b.get("response_format").is_none());
    }

    #[test]
    fn replies_are_read_from_both_shapes() {
        let o = json!({"choices": [{"message": {"role": "assistant", "content": "{}"}}]});
        assert_eq!(openai_text(&o).unwrap(), "{}");
        assert!(openai_text(&json!({"choices": []})).is_err());
        let a = json!({"content": [{"type": "text", "text": "{\"a\""}, {"type": "text", "text": ":1}"}]});
        assert_eq!(anthropic_text(&a).unwrap(), "{\"a\":1}");
        assert!(anthropic_text(&json!({"content": []})).is_err());
    }
}
