//! End-to-end: the explainer against a REAL model server (llama.cpp's llama-server with
//! SmolLM2-135M, built by tests/setup/llm.sh) over both the OpenAI and the Anthropic API.
//! The model is tiny: these tests check protocol, parsing, schema validation, redaction and
//! fallbacks, not the wisdom of its answers. They fail (never skip) when the peer cannot be
//! built or started.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sentinel::explain::redact::Redactor;
use sentinel::explain::{Engine, Explainer, LlmConfig, ProviderKind, Subject};
use sentinel::model::{Anomaly, Level};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// One peer at a time: the machine has two cores and the model uses both.
static PEER_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A running llm-peer; killed when dropped.
struct Peer {
    pid: i32,
    key: String,
    openai_base: String,
    anthropic_base: String,
}

impl Peer {
    fn start() -> Peer {
        let root = repo_root();
        let dir = std::env::var("LLM_PEER_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join(".llm-peer"));
        // Idempotent: returns at once when the server and model are already there.
        let setup = Command::new("bash")
            .arg(root.join("tests/setup/llm.sh"))
            .env("LLM_PEER_DIR", &dir)
            .current_dir(&root)
            .status()
            .expect("running tests/setup/llm.sh");
        assert!(setup.success(), "building the llm peer failed: {setup}");
        let out = Command::new("bash")
            .arg(root.join("tests/setup/llm-peer/start.sh"))
            .env("LLM_PEER_DIR", &dir)
            .current_dir(&root)
            .output()
            .expect("running tests/setup/llm-peer/start.sh");
        assert!(
            out.status.success(),
            "the llm peer did not start: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
        let vars = parse_exports(&String::from_utf8_lossy(&out.stdout));
        let get = |k: &str| {
            vars.get(k)
                .unwrap_or_else(|| panic!("start.sh did not export {k}: {vars:?}"))
                .clone()
        };
        Peer {
            pid: get("LLM_PEER_PID").parse().expect("numeric LLM_PEER_PID"),
            key: get("LLM_PEER_API_KEY"),
            openai_base: get("LLM_PEER_OPENAI_BASE"),
            anthropic_base: get("LLM_PEER_ANTHROPIC_BASE"),
        }
    }

    fn config(&self, kind: ProviderKind, key: &str, dir: &Path) -> LlmConfig {
        let key_file = dir.join(format!("key-{}", kind.as_str()));
        std::fs::write(&key_file, key).unwrap();
        let mut cfg = LlmConfig {
            provider: kind,
            model: "smollm2".into(),
            base_url: match kind {
                ProviderKind::Anthropic => self.anthropic_base.clone(),
                _ => self.openai_base.clone(),
            },
            api_key_file: Some(key_file),
            // Generous: a busy CI machine runs this model at a few tokens per second.
            timeout_secs: 600,
            // Enough for the longest answer the bounded schema allows (about 500 tokens).
            max_tokens: 700,
            temperature: 0.0,
            max_prompt_tokens: 1000,
            // Bounded strings make the grammar close every field before max_tokens.
            schema_max_string: 80,
            retries: 1,
            backoff_ms: 200,
            ..Default::default()
        };
        // llama.cpp: no prompt cache, so replies are byte-identical across runs.
        cfg.extra_body
            .insert("cache_prompt".into(), serde_json::json!(false));
        cfg
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the pid start.sh reported; no memory is involved.
        unsafe {
            libc::kill(self.pid, libc::SIGTERM);
        }
    }
}

fn parse_exports(s: &str) -> HashMap<String, String> {
    s.lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

fn anomaly() -> Anomaly {
    let p = repo_root().join("tests/data/explain/anomaly.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn redactor() -> Redactor {
    Redactor::new(b"e2e-test-key-0123456789abcdef".to_vec())
}

/// Checks that hold for any explanation, from the model or the fallback.
fn assert_well_formed(e: &sentinel::model::Explanation, a: &Anomaly) {
    assert!(!e.summary.trim().is_empty());
    assert!(!e.likely_explanation.trim().is_empty());
    assert!((0.0..=1.0).contains(&e.confidence));
    let known: Vec<&String> = a.evidence.iter().map(|x| &x.id).collect();
    for id in &e.evidence_ids {
        assert!(
            known.contains(&id),
            "unknown evidence id {id} survived validation"
        );
    }
    for s in &e.next_steps {
        if s.command.is_some() {
            assert!(
                matches!(s.policy.as_deref(), Some("allowed" | "warn" | "blocked")),
                "{s:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_api_structured_answers_are_validated() {
    let _one = PEER_LOCK.lock().await;
    let peer = Peer::start();
    let d = tempfile::tempdir().unwrap();
    let cfg = peer.config(ProviderKind::OpenAi, &peer.key, d.path());
    let a = anomaly();
    let subject = Subject::Anomaly {
        anomaly: &a,
        baseline: None,
    };
    let engine = Engine::with_redactor(&cfg, redactor()).unwrap();

    // What --show-prompt prints is what goes out: schema-constrained and redacted.
    let p = engine.prompt(&subject);
    let preview = engine.preview(&p).to_string();
    assert!(preview.contains("\"json_schema\""));
    for secret in [
        "Hunter2pass",
        "sk-proj-abc",
        "abc123secretvalue",
        "alice",
        &peer.key,
    ] {
        assert!(!preview.contains(secret), "{secret} would be sent");
    }

    // The whole path: grammar-constrained JSON from the model, parsed and validated.
    let o = engine.explain(&subject).await;
    assert!(o.failure.is_none(), "{:?}", o.failure);
    assert!(!o.repaired, "a schema-constrained reply needed a repair");
    assert_eq!(o.explanation.source, "openai:smollm2");
    assert_well_formed(&o.explanation, &a);

    // A wrong key is a counted auth failure with the local explanation, not an error.
    let bad = peer.config(ProviderKind::OpenAi, "wrong-key", d.path());
    let o = Engine::with_redactor(&bad, redactor())
        .unwrap()
        .explain(&subject)
        .await;
    assert_eq!(o.failure.as_ref().map(|f| f.kind()), Some("auth"));
    assert_eq!(o.explanation.source, "local");
    assert_well_formed(&o.explanation, &a);
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_api_answers_are_parsed_or_fall_back() {
    let _one = PEER_LOCK.lock().await;
    let peer = Peer::start();
    let d = tempfile::tempdir().unwrap();
    let mut cfg = peer.config(ProviderKind::Anthropic, &peer.key, d.path());
    // No grammar on this API: keep the free-text replies short.
    cfg.max_tokens = 200;
    let a = anomaly();
    let subject = Subject::Anomaly {
        anomaly: &a,
        baseline: None,
    };
    let engine = Engine::with_redactor(&cfg, redactor()).unwrap();
    let p = engine.prompt(&subject);
    let preview = engine.preview(&p);
    assert!(
        preview["endpoint"]
            .as_str()
            .unwrap()
            .ends_with("/v1/messages")
    );
    assert!(
        preview["body"]["system"]
            .as_str()
            .unwrap()
            .contains("JSON schema")
    );

    // JSON is only asked for here, so a tiny model may miss it: then exactly one repair and
    // the local explanation. Either way no protocol error.
    let o = engine.explain(&subject).await;
    match &o.failure {
        None => assert_eq!(o.explanation.source, "anthropic:smollm2"),
        Some(f) => {
            assert_eq!(f.kind(), "invalid_answer", "{f:?}");
            assert!(o.repaired);
            assert_eq!(o.stats.requests, 2);
            assert_eq!(o.explanation.source, "local");
        }
    }
    assert_well_formed(&o.explanation, &a);

    let bad = peer.config(ProviderKind::Anthropic, "wrong-key", d.path());
    let o = Engine::with_redactor(&bad, redactor())
        .unwrap()
        .explain(&subject)
        .await;
    assert_eq!(o.failure.as_ref().map(|f| f.kind()), Some("auth"));
    assert_eq!(o.explanation.source, "local");
}

#[tokio::test(flavor = "multi_thread")]
async fn live_explainer_caches_by_fingerprint_and_counts_failures() {
    let _one = PEER_LOCK.lock().await;
    let peer = Peer::start();
    let d = tempfile::tempdir().unwrap();
    let cfg = peer.config(ProviderKind::OpenAi, &peer.key, d.path());
    let mut h = Explainer::spawn_engine(Engine::with_redactor(&cfg, redactor()).unwrap());
    let a = anomaly();
    let mut b = a.clone();
    b.id = format!("{}-again", a.id);
    h.try_submit(a.clone()).unwrap();
    h.try_submit(b).unwrap();
    let first = h.recv().await.unwrap();
    let second = h.recv().await.unwrap();
    for x in [&first, &second] {
        assert_eq!(
            (x.score, x.level),
            (70, Level::High),
            "the score is Sentinel's"
        );
        let e = x.explanation.as_ref().unwrap();
        assert_eq!(e.source, "openai:smollm2");
        assert_well_formed(e, &a);
    }
    assert!(
        second
            .explanation
            .unwrap()
            .warnings
            .iter()
            .any(|w| w.contains("cached"))
    );
    let s = h.stats();
    assert_eq!((s.from_llm, s.cache_hits, s.requests), (1, 1, 1), "{s:?}");

    // A broken provider: the service keeps answering, locally, and counts.
    let bad = peer.config(ProviderKind::OpenAi, "wrong-key", d.path());
    let mut h = Explainer::spawn_engine(Engine::with_redactor(&bad, redactor()).unwrap());
    h.try_submit(a.clone()).unwrap();
    let x = h.recv().await.unwrap();
    assert_eq!(x.explanation.unwrap().source, "local");
    assert_eq!(h.stats().failures_by_kind.get("auth"), Some(&1));
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_diff_is_explained_through_the_real_model() {
    let _one = PEER_LOCK.lock().await;
    let peer = Peer::start();
    let d = tempfile::tempdir().unwrap();
    let cfg = peer.config(ProviderKind::OpenAi, &peer.key, d.path());
    let read = |n: &str| -> serde_json::Value {
        let p = repo_root().join("tests/data/explain").join(n);
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let diff =
        sentinel::explain::facts::diff(&read("snapshot_before.json"), &read("snapshot_after.json"));
    let engine = Engine::with_redactor(&cfg, redactor()).unwrap();
    let subject = Subject::Diff(&diff);
    let p = engine.prompt(&subject);
    assert!(p.user.contains("network.listeners[tcp/0.0.0.0:4444]"));
    let o = engine.explain(&subject).await;
    assert!(o.failure.is_none(), "{:?}", o.failure);
    assert_eq!(o.explanation.source, "openai:smollm2");
    for id in &o.explanation.evidence_ids {
        assert!(p.known_ids.contains(id), "unknown id {id} survived");
    }
}

/// Two anomalies of one login session with different tactics: an incident above high.
fn incident() -> sentinel::incident::Incident {
    let a = anomaly();
    let mut b = a.clone();
    b.id = format!("{}-2", a.id);
    b.time_ns = a.time_ns + 1_000_000_000;
    b.factors = vec![sentinel::model::Factor {
        detection: "persistence".into(),
        reason: "wrote /etc/cron.d/backup-check".into(),
        weight: 40,
        evidence: vec![],
    }];
    let mut t = sentinel::incident::Tracker::default();
    assert!(t.observe(&a).is_none());
    t.observe(&b).expect("two steps make an incident")
}

#[tokio::test(flavor = "multi_thread")]
async fn incident_is_told_as_one_story_through_the_real_model() {
    let _one = PEER_LOCK.lock().await;
    let peer = Peer::start();
    let d = tempfile::tempdir().unwrap();
    let mut cfg = peer.config(ProviderKind::OpenAi, &peer.key, d.path());
    // This tiny model fills every bounded string of the schema to its limit for this prompt
    // (about 930 tokens): room for the whole object, or the grammar is cut mid-string.
    cfg.max_tokens = 2000;
    let i = incident();
    assert!(i.level >= Level::High, "{i:?}");
    let engine = Engine::with_redactor(&cfg, redactor()).unwrap();
    let p = engine.prompt(&Subject::Incident(&i));
    assert!(p.user.contains(&i.story), "{}", p.user);
    for s in &i.steps {
        assert!(
            p.known_ids.contains(&s.anomaly_id),
            "{} citable",
            s.anomaly_id
        );
    }
    assert!(!p.user.contains("alice"), "the user name is pseudonymised");
    // The live service, as `sentinel run --llm` uses it.
    let mut h = Explainer::spawn_engine(engine);
    h.submitter.try_submit_incident(i.clone()).unwrap();
    let told = h.explained_incidents.recv().await.unwrap();
    assert_eq!(
        (told.score, told.level, told.step_count),
        (i.score, i.level, i.step_count),
        "the score is Sentinel's"
    );
    let e = told.explanation.expect("a story");
    assert_eq!(e.source, "openai:smollm2", "{e:?}");
    assert!(!e.summary.trim().is_empty());
    assert!((0.0..=1.0).contains(&e.confidence));
    for id in &e.evidence_ids {
        assert!(
            p.known_ids.contains(id),
            "unknown id {id} survived validation"
        );
    }
    assert_eq!(h.stats().from_llm, 1);
}
