//! End-to-end, both directions: a real agent (`sentinel run`, real eBPF) pushes to a real
//! dashboard server; an operator's verdict given there (the form on the anomaly page, then the
//! JSON API) reaches the agent on its next push, and the same behaviour repeated is lowered
//! below medium (benign), raised in full and pinned (malicious), and restored after an undo.
//! Viewers and read keys cannot give verdicts, and every verdict and undo is in the audit log.

use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION};
use sentinel::server::store::{KeyScope, Role};
use sentinel_e2e::*;
use serde_json::{Value, json};

/// How long a verdict may take to reach the agent and take effect (the agent asks every
/// second here, and after each push; the engine re-reads verdicts each second).
const DELIVERY: Duration = Duration::from_secs(30);

/// A copy of the workload helper under /tmp (a world-writable place), removed on drop.
struct TmpBinary(String);

impl TmpBinary {
    fn new() -> TmpBinary {
        let p = format!("/tmp/sentinel-e2e-verdicts-{}", std::process::id());
        std::fs::copy(workload_bin(), &p).expect("copy to /tmp");
        TmpBinary(p)
    }

    fn run(&self) {
        let st = std::process::Command::new(&self.0)
            .args(["exit", "0"])
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for TmpBinary {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The next anomaly in the agent's feed for an exec of `path` from a writable place.
fn next_exec_anomaly(rx: &Receiver<String>, path: &str) -> Value {
    let mine = format!("executed {path} from");
    let line = wait_line(rx, &format!("an anomaly for {path}"), |l| {
        l.contains("\"type\":\"anomaly\"") && l.contains(&mine)
    });
    serde_json::from_str(&line).unwrap()
}

fn exec_factor(a: &Value) -> &Value {
    a["factors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["detection"] == "exec_from_writable")
        .unwrap_or_else(|| panic!("no exec_from_writable factor: {a}"))
}

fn score(a: &Value) -> u64 {
    a["score"].as_u64().unwrap()
}

/// Runs the /tmp binary until the agent's anomaly for it satisfies `pred` (a verdict takes
/// effect within about a second of its delivery), or fails at the deadline with the last.
fn exec_until(
    rx: &Receiver<String>,
    bin: &TmpBinary,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + DELIVERY;
    loop {
        bin.run();
        let a = next_exec_anomaly(rx, &bin.0);
        if pred(&a) {
            return a;
        }
        assert!(Instant::now() < deadline, "never {what}; last: {a}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

struct Api {
    c: reqwest::Client,
    base: String,
    rt: tokio::runtime::Runtime,
}

impl Api {
    fn send(&self, rb: reqwest::RequestBuilder) -> (StatusCode, Value) {
        self.rt.block_on(async {
            let r = rb.send().await.unwrap();
            let s = r.status();
            let text = r.text().await.unwrap();
            (
                s,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        })
    }
    fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.send(self.c.get(format!("{}{path}", self.base)).bearer_auth(key))
    }
    fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.send(
            self.c
                .post(format!("{}{path}", self.base))
                .bearer_auth(key)
                .json(&body),
        )
    }
    fn delete(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.send(
            self.c
                .delete(format!("{}{path}", self.base))
                .bearer_auth(key),
        )
    }
    /// A form post with a session cookie: (status, Location).
    fn form(&self, path: &str, cookie: &str, body: &str) -> (StatusCode, Option<String>) {
        self.rt.block_on(async {
            let r = self
                .c
                .post(format!("{}{path}", self.base))
                .header(COOKIE, cookie)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            let loc = r
                .headers()
                .get(LOCATION)
                .map(|v| v.to_str().unwrap().to_string());
            (r.status(), loc)
        })
    }
    fn page(&self, path: &str, cookie: &str) -> String {
        self.rt.block_on(async {
            self.c
                .get(format!("{}{path}", self.base))
                .header(COOKIE, cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    }

    /// The verdict `id` once `pred` holds for it (the agent acknowledges asynchronously).
    fn verdict_when(&self, id: i64, key: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + DELIVERY;
        loop {
            let (s, list) = self.get("/api/feedback", key);
            assert_eq!(s, StatusCode::OK, "{list}");
            let v = list
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["id"] == id)
                .cloned()
                .unwrap_or_else(|| panic!("verdict {id} not listed: {list}"));
            if pred(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "verdict {id} never {what}: {v}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn form_body(csrf: &str, verdict: &str, scope: &str, note: &str) -> String {
    format!(
        "csrf={csrf}&verdict={verdict}&scope={scope}&note={}",
        note.replace(' ', "+")
    )
}

#[test]
fn verdicts_given_on_the_server_teach_the_agent_and_undo_restores() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(dash::start(dir.path()));
    let host = format!("e2e-verdicts-{}", std::process::id());
    let pw = "correct horse battery staple";
    let operator = rt.block_on(dash::add_user(&server, "operator", Role::Operator, pw));
    let viewer = rt.block_on(dash::add_user(&server, "viewer", Role::Viewer, pw));
    let admin = rt.block_on(dash::add_user(&server, "admin", Role::Admin, pw));
    let agent_key = rt.block_on(dash::ingest_key(&server, operator, &host));
    let ack_key = rt.block_on(dash::key(&server, operator, "analyst", KeyScope::Ack, None));
    let read_key = rt.block_on(dash::read_key(&server, operator));
    let admin_key = rt.block_on(dash::key(&server, admin, "audit", KeyScope::Admin, None));
    let api = Api {
        c: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        base: server.url(),
        rt,
    };

    let cfg = dir.path().join("sentinel.toml");
    std::fs::write(
        &cfg,
        format!(
            "store = {:?}\nhost = {host:?}\n[push]\nspool_dir = {:?}\nverdict_poll_secs = 1\n",
            dir.path().join("agent.db"),
            dir.path().join("spool"),
        ),
    )
    .unwrap();
    let bin = TmpBinary::new();
    let url = server.url();
    let (mut agent, rx) = spawn_sentinel(&[
        "run",
        "--json",
        "--config",
        cfg.to_str().unwrap(),
        "--kinds",
        "exec,fork,exit",
        "--duration",
        "300s",
        "--push",
        &url,
        "--api-key",
        &agent_key,
    ]);
    wait_line(&rx, "the status line", |l| {
        l.contains("\"type\":\"status\"")
    });

    // 1. An anomaly is raised and reaches the server.
    bin.run();
    let first = next_exec_anomaly(&rx, &bin.0);
    let full = score(&first);
    assert!(
        full >= 25,
        "raised at medium or above to begin with: {first}"
    );
    let id = first["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + DELIVERY;
    while api.get(&format!("/api/anomalies/{id}"), &read_key).0 != StatusCode::OK {
        assert!(
            Instant::now() < deadline,
            "anomaly {id} never reached the server"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // 2. Who may not give verdicts: viewers (form and key), read keys, the agent's key.
    let (viewer_cookie, viewer_csrf) = api.rt.block_on(dash::session(&server, viewer));
    let page = api.page(&format!("/anomalies/{id}"), &viewer_cookie);
    assert!(
        page.contains("No analyst") && !page.contains("verdict-benign"),
        "viewers see no buttons"
    );
    let (s, _) = api.form(
        &format!("/anomalies/{id}/feedback"),
        &viewer_cookie,
        &form_body(&viewer_csrf, "benign", "principal", "viewer"),
    );
    assert_eq!(s, StatusCode::FORBIDDEN);
    let body = json!({ "anomaly": id, "verdict": "benign" });
    let viewer_key = api
        .rt
        .block_on(dash::key(&server, viewer, "v", KeyScope::Ack, None));
    for (who, key) in [
        ("a viewer's key", &viewer_key),
        ("a read key", &read_key),
        ("an ingest key", &agent_key),
    ] {
        let (s, b) = api.post("/api/feedback", key, body.clone());
        assert_eq!(s, StatusCode::FORBIDDEN, "{who}: {b}");
    }
    let (operator_cookie, operator_csrf) = api.rt.block_on(dash::session(&server, operator));
    // The form without its CSRF token is refused.
    let (s, _) = api.form(
        &format!("/anomalies/{id}/feedback"),
        &operator_cookie,
        "verdict=benign&scope=principal",
    );
    assert_eq!(s, StatusCode::FORBIDDEN);

    // 3. Benign, through the form on the anomaly page.
    let page = api.page(&format!("/anomalies/{id}"), &operator_cookie);
    assert!(
        page.contains("verdict-benign") && page.contains("verdict-malicious"),
        "operators get the buttons"
    );
    let (s, loc) = api.form(
        &format!("/anomalies/{id}/feedback"),
        &operator_cookie,
        &form_body(&operator_csrf, "benign", "principal", "our build helper"),
    );
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(loc.as_deref(), Some(format!("/anomalies/{id}").as_str()));
    let (_, list) = api.get(&format!("/api/feedback?target={id}"), &read_key);
    let benign = list[0]["id"].as_i64().unwrap();
    assert_eq!(
        (list[0]["verdict"].as_str(), list[0]["by"].as_str()),
        (Some("benign"), Some("operator"))
    );
    let (s, b) = api.post("/api/feedback", &ack_key, body.clone());
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "one verdict in force per anomaly: {b}"
    );
    let v = api.verdict_when(benign, &read_key, "delivered", |v| {
        v["delivered_ns"].is_i64()
    });
    assert!(v["delivery_error"].is_null(), "{v}");
    assert!(
        api.page(&format!("/anomalies/{id}"), &operator_cookie)
            .contains("delivered")
    );
    let lowered = exec_until(&rx, &bin, "lowered below medium", |a| score(a) < 25);
    let f = exec_factor(&lowered);
    assert_eq!(f["weight"], 0, "{lowered}");
    let reason = f["reason"].as_str().unwrap();
    assert!(
        reason.contains("marked benign by operator (server)")
            && reason.contains("our build helper"),
        "{reason}"
    );

    // 4. Undo (form), then malicious through the API: raised in full, pinned.
    let (s, _) = api.form(
        &format!("/feedback/{benign}/undo"),
        &operator_cookie,
        &format!("csrf={operator_csrf}"),
    );
    assert_eq!(s, StatusCode::SEE_OTHER);
    api.verdict_when(benign, &read_key, "undone on the agent", |v| {
        v["undo_delivered_ns"].is_i64()
    });
    let (s, v) = api.post(
        "/api/feedback",
        &ack_key,
        json!({ "anomaly": id, "verdict": "malicious", "scope": "exe", "note": "not ours" }),
    );
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let malicious = v["id"].as_i64().unwrap();
    assert_eq!(v["host"], host.as_str());
    api.verdict_when(malicious, &read_key, "delivered", |v| {
        v["delivered_ns"].is_i64()
    });
    let pinned = exec_until(&rx, &bin, "pinned", |a| {
        exec_factor(a)["reason"]
            .as_str()
            .is_some_and(|r| r.contains("pinned, never learned"))
    });
    assert_eq!(score(&pinned), full, "raised in full: {pinned}");
    assert!(
        exec_factor(&pinned)["reason"]
            .as_str()
            .unwrap()
            .contains("marked malicious by operator (server)")
    );

    // 5. Undo through the API: the finding is as it was before any verdict.
    let (s, v) = api.delete(&format!("/api/feedback/{malicious}"), &ack_key);
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = api.delete(&format!("/api/feedback/{malicious}"), &ack_key);
    assert_eq!(s, StatusCode::CONFLICT, "undone once");
    api.verdict_when(malicious, &read_key, "undone on the agent", |v| {
        v["undo_delivered_ns"].is_i64()
    });
    let restored = exec_until(&rx, &bin, "restored", |a| {
        !exec_factor(a)["reason"]
            .as_str()
            .unwrap_or("")
            .contains("marked")
    });
    assert_eq!(score(&restored), full, "{restored}");

    // 6. An incident id the agent does not know: delivered, refused with why, shown.
    let (s, b) = api.post(
        "/api/feedback",
        &ack_key,
        json!({ "incident": "no-such-incident", "verdict": "benign" }),
    );
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an incident names its host: {b}"
    );
    // Given with the incident page's form (the same path as the API's).
    let (s, loc) = api.form(
        &format!("/incidents/{host}/no-such-incident/feedback"),
        &operator_cookie,
        &form_body(&operator_csrf, "benign", "principal", "incident"),
    );
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(
        loc.as_deref(),
        Some(format!("/incidents/{host}/no-such-incident").as_str())
    );
    let (_, list) = api.get("/api/feedback?target=no-such-incident", &read_key);
    assert_eq!(list[0]["kind"].as_str(), Some("incident"), "{list}");
    let v = api.verdict_when(
        list[0]["id"].as_i64().unwrap(),
        &read_key,
        "answered",
        |v| v["delivered_ns"].is_i64(),
    );
    assert!(
        v["delivery_error"]
            .as_str()
            .is_some_and(|e| e.contains("no anomaly or incident no-such-incident")),
        "{v}"
    );

    // 7. Who did what, when: the audit log.
    let (s, audit) = api.get("/api/audit?action=feedback", &admin_key);
    assert_eq!(s, StatusCode::OK);
    let entries = audit.as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["username"] == "operator"
            && e["target"] == id.as_str()
            && e["detail"]
                .as_str()
                .unwrap()
                .contains("benign in scope principal")
            && e["time_ns"].is_i64()),
        "{audit}"
    );
    assert!(
        entries.iter().any(|e| e["detail"]
            .as_str()
            .unwrap()
            .contains("malicious in scope exe")),
        "{audit}"
    );
    let (_, undos) = api.get("/api/audit?action=feedback_undo", &admin_key);
    assert_eq!(undos.as_array().unwrap().len(), 2, "{undos}");

    stop_sentinel(&mut agent);
    api.rt.block_on(server.shutdown());
}
