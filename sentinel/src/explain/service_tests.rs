//! The explainer against a misbehaving local server: 401, 429 with Retry-After, 500, a
//! response slower than the timeout, malformed bodies and answers. The explainer keeps
//! going, falls back to the local explanation and counts each failure.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::*;
use crate::explain::redact::Redactor;
use crate::explain::{Failure, ProviderKind};

const KEY: &str = "test-key-0123";

#[derive(Default)]
struct Seen {
    hits: Mutex<HashMap<String, usize>>,
    bodies: Mutex<Vec<String>>,
}

fn good_answer() -> Value {
    json!({
        "summary": "Probably a cryptominer started from /tmp.",
        "likely_explanation": "A binary named like a kernel thread runs from /tmp and talks to a mining port.",
        "benign_alternatives": ["a developer testing a build"],
        "confidence": 0.8,
        "evidence_ids": ["ev-101", "ev-999"],
        "next_steps": [
            {"description": "See the process", "command": "ps -o pid,args -p 4477"},
            {"description": "Wipe everything", "command": "rm -rf /"}
        ],
        "score": 100
    })
}

fn openai(content: &str) -> Response {
    axum::Json(json!({"choices": [{"message": {"role": "assistant", "content": content}}]}))
        .into_response()
}

async fn chat(
    State(seen): State<Arc<Seen>>,
    Path(mode): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let n = {
        let mut h = seen.hits.lock().unwrap();
        let e = h.entry(mode.clone()).or_default();
        *e += 1;
        *e
    };
    seen.bodies.lock().unwrap().push(body);
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if mode == "unauthorized" || auth != Some(&format!("Bearer {KEY}")) {
        return (StatusCode::UNAUTHORIZED, "{\"error\":\"bad key\"}").into_response();
    }
    let good = good_answer().to_string();
    match mode.as_str() {
        "ok" => openai(&good),
        "busy-then-ok" if n <= 2 => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "0")],
            "slow down",
        )
            .into_response(),
        "busy-then-ok" => openai(&good),
        "busy" => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            "slow down",
        )
            .into_response(),
        "broken" => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            openai(&good)
        }
        "garbage-body" => (StatusCode::OK, "{\"choices\": [").into_response(),
        "garbage-answer" => openai("I think it is fine {not json"),
        "repair" if n == 1 => openai("```json\n{\"summary\": \"cut off"),
        "repair" => openai(&good),
        _ => (StatusCode::NOT_FOUND, "no such mode").into_response(),
    }
}

async fn anthropic(State(seen): State<Arc<Seen>>, headers: HeaderMap, body: String) -> Response {
    seen.bodies.lock().unwrap().push(body);
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    if key != Some(KEY) || headers.get("anthropic-version").is_none() {
        return (StatusCode::UNAUTHORIZED, "bad key").into_response();
    }
    let text = format!("Here is the analysis:\n```json\n{}\n```", good_answer());
    axum::Json(json!({"type": "message", "role": "assistant",
                      "content": [{"type": "text", "text": text}], "stop_reason": "end_turn"}))
    .into_response()
}

async fn server() -> (SocketAddr, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route("/{mode}/v1/chat/completions", post(chat))
        .route("/anthropic/v1/messages", post(anthropic))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

fn engine(addr: SocketAddr, kind: ProviderKind, mode: &str, dir: &std::path::Path) -> Engine {
    let key_file = dir.join("key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let base_url = match kind {
        ProviderKind::Anthropic => format!("http://{addr}/anthropic"),
        _ => format!("http://{addr}/{mode}/v1"),
    };
    let cfg = LlmConfig {
        provider: kind,
        model: "test-model".into(),
        base_url,
        api_key_file: Some(key_file),
        timeout_secs: 1,
        retries: 2,
        backoff_ms: 10,
        max_backoff_secs: 1,
        ..Default::default()
    };
    let r = Redactor::new(b"service-test-key-0123456789".to_vec());
    Engine::with_redactor(&cfg, r).unwrap()
}

fn anomaly() -> Anomaly {
    crate::explain::prompt::tests::anomaly()
}

fn subject(a: &Anomaly) -> Subject<'_> {
    Subject::Anomaly {
        anomaly: a,
        baseline: None,
    }
}

#[tokio::test]
async fn a_valid_answer_is_validated_and_the_request_is_redacted() {
    let (addr, seen) = server().await;
    let d = tempfile::tempdir().unwrap();
    let a = anomaly();
    let o = engine(addr, ProviderKind::OpenAi, "ok", d.path())
        .explain(&subject(&a))
        .await;
    assert!(o.failure.is_none(), "{:?}", o.failure);
    let e = o.explanation;
    assert_eq!(e.source, "openai:test-model");
    assert_eq!(e.evidence_ids, vec!["ev-101"]);
    assert!(e.warnings.iter().any(|w| w.contains("ev-999")));
    assert_eq!(e.next_steps[1].policy.as_deref(), Some("blocked"));
    let body = seen.bodies.lock().unwrap().join("\n");
    assert!(body.contains("json_schema"));
    for secret in [
        "Hunter2pass",
        "sk-proj-abc",
        "abc123secretvalue",
        "alice",
        KEY,
    ] {
        assert!(!body.contains(secret), "{secret} was sent");
    }
}

#[tokio::test]
async fn anthropic_replies_in_fences_are_parsed() {
    let (addr, seen) = server().await;
    let d = tempfile::tempdir().unwrap();
    let a = anomaly();
    let o = engine(addr, ProviderKind::Anthropic, "", d.path())
        .explain(&subject(&a))
        .await;
    assert!(o.failure.is_none(), "{:?}", o.failure);
    assert_eq!(o.explanation.source, "anthropic:test-model");
    assert!(seen.bodies.lock().unwrap()[0].contains("\"system\""));
}

#[tokio::test]
async fn error_paths_fall_back_to_the_local_explanation() {
    let (addr, seen) = server().await;
    let d = tempfile::tempdir().unwrap();
    let a = anomaly();
    let cases = [
        ("unauthorized", "auth", 1),
        ("busy", "rate_limited", 3),
        ("broken", "server_error", 3),
        ("slow", "timeout", 3),
        ("garbage-body", "invalid_response", 1),
        ("garbage-answer", "invalid_answer", 2),
    ];
    for (mode, kind, requests) in cases {
        let o = engine(addr, ProviderKind::OpenAi, mode, d.path())
            .explain(&subject(&a))
            .await;
        let f = o
            .failure
            .as_ref()
            .unwrap_or_else(|| panic!("{mode}: no failure"));
        assert_eq!(f.kind(), kind, "{mode}: {f:?}");
        assert_eq!(o.stats.requests, requests, "{mode}");
        assert_eq!(o.explanation.source, "local", "{mode}");
        assert!(
            o.explanation
                .warnings
                .iter()
                .any(|w| w.contains("local explanation used")),
            "{mode}"
        );
        assert_eq!(
            o.explanation.summary,
            local::anomaly_explanation(&a).summary
        );
    }
    assert_eq!(seen.hits.lock().unwrap()["busy"], 3);
    let o = engine(addr, ProviderKind::OpenAi, "garbage-answer", d.path())
        .explain(&subject(&a))
        .await;
    assert!(o.repaired && matches!(o.failure, Some(Failure::InvalidAnswer(_))));
}

#[tokio::test]
async fn retries_honour_retry_after_then_succeed_and_repairs_work() {
    let (addr, _) = server().await;
    let d = tempfile::tempdir().unwrap();
    let a = anomaly();
    let o = engine(addr, ProviderKind::OpenAi, "busy-then-ok", d.path())
        .explain(&subject(&a))
        .await;
    assert!(o.failure.is_none(), "{:?}", o.failure);
    assert_eq!((o.stats.requests, o.stats.retries), (3, 2));
    let o = engine(addr, ProviderKind::OpenAi, "repair", d.path())
        .explain(&subject(&a))
        .await;
    assert!(o.failure.is_none() && o.repaired, "{:?}", o.failure);
    assert_eq!(o.explanation.source, "openai:test-model");
    assert!(
        o.explanation
            .warnings
            .iter()
            .any(|w| w.contains("repaired"))
    );
}

fn with_fingerprint(fp: &str, n: usize) -> Anomaly {
    let mut a = anomaly();
    a.fingerprint = fp.to_string();
    a.id = format!("{}-{n}", a.id);
    a
}

#[tokio::test]
async fn the_service_keeps_going_counts_failures_and_never_touches_scores() {
    let (addr, _) = server().await;
    let d = tempfile::tempdir().unwrap();
    let mut h = Explainer::spawn_engine(engine(addr, ProviderKind::OpenAi, "broken", d.path()));
    for i in 0..3 {
        h.try_submit(with_fingerprint(&format!("fp{i}"), i))
            .unwrap();
    }
    for _ in 0..3 {
        let a = h.recv().await.unwrap();
        assert_eq!((a.score, a.level), (70, Level::High));
        assert_eq!(a.explanation.unwrap().source, "local");
    }
    let s = h.stats();
    assert_eq!((s.submitted, s.explained, s.failures), (3, 3, 3));
    assert_eq!(s.failures_by_kind["server_error"], 3);
    assert_eq!(s.local_fallbacks, 3);
    assert_eq!(s.requests, 9);
}

#[tokio::test]
async fn the_cache_answers_repeats_and_the_budget_caps_calls() {
    let (addr, seen) = server().await;
    let d = tempfile::tempdir().unwrap();
    let mut e = engine(addr, ProviderKind::OpenAi, "ok", d.path());
    e.cfg.calls_per_hour = 2;
    let mut h = Explainer::spawn_engine(e);
    for (i, fp) in ["same", "same", "other", "third"].iter().enumerate() {
        h.try_submit(with_fingerprint(fp, i)).unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(h.recv().await.unwrap().explanation.unwrap());
    }
    assert_eq!(got[0].source, "openai:test-model");
    assert_eq!(got[1].source, "openai:test-model");
    assert!(got[1].warnings.iter().any(|w| w.contains("cached")));
    assert_eq!(got[2].source, "openai:test-model");
    assert_eq!(got[3].source, "local");
    assert!(got[3].warnings.iter().any(|w| w.contains("budget")));
    let s = h.stats();
    assert_eq!((s.cache_hits, s.budget_exhausted, s.from_llm), (1, 1, 2));
    assert_eq!(seen.hits.lock().unwrap()["ok"], 2);
}

#[tokio::test]
async fn submitting_never_blocks_a_full_queue_drops_and_low_levels_are_skipped() {
    let (addr, _) = server().await;
    let d = tempfile::tempdir().unwrap();
    let mut e = engine(addr, ProviderKind::OpenAi, "slow", d.path());
    e.cfg.queue = 1;
    let h = Explainer::spawn_engine(e);
    let mut full = 0;
    for i in 0..20 {
        if h.try_submit(with_fingerprint("fp", i)) == Err(SubmitError::Full) {
            full += 1;
        }
    }
    assert!(full >= 18, "only {full} dropped");
    assert_eq!(h.stats().dropped_full, full);
    let mut low = anomaly();
    low.level = Level::Low;
    assert_eq!(h.try_submit(low), Err(SubmitError::BelowLevel));
    assert_eq!(h.stats().below_level, 1);
}

#[test]
fn budget_window_rolls_and_cache_evicts_least_recent() {
    let clock = governor::clock::FakeRelativeClock::default();
    let b = Budget::with_clock(2, clock.clone());
    assert!(b.try_take() && b.try_take(), "a burst of the hourly limit");
    assert!(!b.try_take());
    clock.advance(Duration::from_secs(1799));
    assert!(!b.try_take(), "refilled evenly: one call per half hour");
    clock.advance(Duration::from_secs(1));
    assert!(b.try_take() && !b.try_take());
    assert!(
        !Budget::per_hour(0).try_take(),
        "a zero budget allows nothing"
    );
    let left = Budget::with_clock(3, clock.clone());
    assert_eq!(
        [
            left.try_take_left(),
            left.try_take_left(),
            left.try_take_left(),
            left.try_take_left()
        ],
        [Some(2), Some(1), Some(0), None],
        "what is left after each call"
    );
    let mut c = Cache::new(2);
    let e = local::anomaly_explanation(&anomaly());
    c.put("a".into(), (e.clone(), "1".into()));
    c.put("b".into(), (e.clone(), "2".into()));
    assert!(c.get("a").is_some());
    c.put("c".into(), (e, "3".into()));
    assert!(c.get("b").is_none() && c.get("a").is_some() && c.get("c").is_some());
}

/// Two anomalies of one session (different tactics): an incident above high.
fn incident() -> crate::incident::Incident {
    let a = anomaly();
    let mut b = a.clone();
    b.id = format!("{}-2", a.id);
    b.time_ns = a.time_ns + 1_000_000_000;
    b.factors = vec![crate::model::Factor {
        detection: "persistence".into(),
        reason: "wrote /etc/cron.d/x".into(),
        weight: 40,
        evidence: vec![],
    }];
    let mut t = crate::incident::Tracker::default();
    assert!(t.observe(&a).is_none());
    t.observe(&b).expect("two steps make an incident")
}

#[tokio::test]
async fn incidents_get_one_story_within_the_same_queue_and_budget() {
    let (addr, seen) = server().await;
    let d = tempfile::tempdir().unwrap();
    let i = incident();
    assert!(i.level >= Level::High, "{i:?}");
    let mut h = Explainer::spawn_engine(engine(addr, ProviderKind::OpenAi, "ok", d.path()));
    let mut medium = i.clone();
    medium.level = Level::Medium;
    assert_eq!(
        h.submitter.try_submit_incident(medium),
        Err(SubmitError::BelowLevel)
    );
    h.submitter.try_submit_incident(i.clone()).unwrap();
    let told = h.explained_incidents.recv().await.unwrap();
    let e = told.explanation.as_ref().expect("a story");
    assert_eq!(e.source, "openai:test-model");
    assert_eq!(
        (told.id.as_str(), told.score, told.level, told.step_count),
        (i.id.as_str(), i.score, i.level, i.step_count),
        "the explainer never sets the score"
    );
    // Evidence ids an answer may cite are the steps' anomaly ids: the canned ones are dropped.
    assert!(e.evidence_ids.is_empty(), "{e:?}");
    let body = seen.bodies.lock().unwrap().join("\n");
    assert!(body.contains("Explain this incident"), "{body}");
    assert_eq!(h.stats().from_llm, 1);

    // The calls-per-hour budget is shared: once an anomaly used it, the incident is told
    // locally, with a warning.
    let key_file = d.path().join("key");
    let cfg = LlmConfig {
        provider: ProviderKind::OpenAi,
        model: "test-model".into(),
        base_url: format!("http://{addr}/ok/v1"),
        api_key_file: Some(key_file),
        calls_per_hour: 1,
        ..Default::default()
    };
    let r = Redactor::new(b"service-test-key-0123456789".to_vec());
    let mut h = Explainer::spawn_engine(Engine::with_redactor(&cfg, r).unwrap());
    h.try_submit(anomaly()).unwrap();
    h.submitter.try_submit_incident(i.clone()).unwrap();
    assert_eq!(
        h.recv().await.unwrap().explanation.unwrap().source,
        "openai:test-model"
    );
    let told = h.explained_incidents.recv().await.unwrap();
    let e = told.explanation.unwrap();
    assert_eq!(e.source, "local");
    assert!(e.warnings.iter().any(|w| w.contains("budget")), "{e:?}");
    assert!(e.summary.contains(&i.story), "{}", e.summary);
    assert_eq!(h.stats().budget_exhausted, 1);
}

#[test]
fn health_reports_the_budget_left_refilling_evenly() {
    use crate::health::{AgentHealth, HealthPart as _};
    let c = Arc::new(Counters::default());
    c.calls_per_hour.store(60, Ordering::Relaxed);
    let part = ExplainHealth(c.clone());
    let mut h = AgentHealth::default();
    part.fill(&mut h);
    assert_eq!(h.llm.as_ref().unwrap().budget_left, 60, "unused: all of it");
    // 10 left at a call 5 minutes ago: 5 more refilled since (one a minute).
    c.budget_left.store(10, Ordering::Relaxed);
    c.budget_at_ns.store(
        crate::store::now_ns() - 300 * 1_000_000_000,
        Ordering::Relaxed,
    );
    part.fill(&mut h);
    let llm = h.llm.unwrap();
    assert_eq!(llm.budget_left, 15);
    assert_eq!(llm.calls_per_hour, 60);
}
