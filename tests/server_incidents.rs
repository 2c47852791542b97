//! End-to-end: session incidents from a real agent to a real server over HTTP. A running
//! `sentinel run --push` turns one login session's anomalies into an incident that appears in
//! the JSON API and on the dashboard with its steps, its later states replacing the earlier
//! ones; and the ingest rules hold for incidents: an agent key writes only its own host (403,
//! audited), states arriving out of order never take a story backwards, control characters
//! and future times are refused item by item, command lines are redacted, pages escape.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use reqwest::header::COOKIE;
use sentinel::incident::{Incident, Step};
use sentinel::model::{Factor, Level, Principal};
use sentinel::server::store::{AuditFilter, Role};
use sentinel_e2e::*;
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get(c: &reqwest::Client, url: &str, key: &str) -> (StatusCode, Value) {
    let r = c.get(url).bearer_auth(key).send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn page(c: &reqwest::Client, url: &str, cookie: &str) -> (StatusCode, String) {
    let r = c.get(url).header(COOKIE, cookie).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

/// Percent-encoding of one path segment, as the dashboard writes its links.
fn seg(s: &str) -> String {
    sentinel::server::web::seg(s)
}

/// A program copied under /tmp (a world-writable place), removed on drop.
struct TmpBinary(std::path::PathBuf);

impl Drop for TmpBinary {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `/bin/sh -c script` in a login session of its own with login uid `auid`.
fn in_new_login_session(auid: u32, script: &str) {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new("/bin/sh");
    c.args(["-c", script]);
    let uid = auid.to_string().into_bytes();
    // SAFETY: only raw open/write/close (async-signal-safe) between fork and exec.
    unsafe {
        c.pre_exec(move || {
            let fd = libc::open(c"/proc/self/loginuid".as_ptr(), libc::O_WRONLY);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let n = libc::write(fd, uid.as_ptr().cast(), uid.len());
            libc::close(fd);
            if n != uid.len() as isize {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    assert!(c.status().unwrap().success(), "{script}");
}

#[test]
fn an_agents_incident_reaches_the_api_and_the_dashboard_with_its_steps() {
    require_root();
    const HOST: &str = "e2e-incident-host";
    const AUID: u32 = 4343;
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(dash::start(dir.path()));
    let owner = rt.block_on(dash::add_user(
        &server,
        "agent",
        Role::Operator,
        "password-123456",
    ));
    let viewer = rt.block_on(dash::add_user(
        &server,
        "vera",
        Role::Viewer,
        "password-123456",
    ));
    let key = rt.block_on(dash::ingest_key(&server, owner, HOST));
    let reader = rt.block_on(dash::read_key(&server, viewer));
    let key_file = dir.path().join("agent.key");
    std::fs::write(&key_file, &key).unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let base = server.url();
    let cfg = dir.path().join("sentinel.toml");
    std::fs::write(
        &cfg,
        format!(
            "host = {HOST:?}\nstore = {:?}\n[push]\nurl = {base:?}\napi_key_file = {:?}\nspool_dir = {:?}\n[llm]\nsecret_file = {:?}\n",
            dir.path().join("agent.db"),
            key_file,
            dir.path().join("spool"),
            dir.path().join("explain.key"),
        ),
    )
    .unwrap();
    let tmp = TmpBinary(std::path::PathBuf::from(format!(
        "/tmp/sentinel-e2e-incident-push-{}",
        std::process::id()
    )));
    std::fs::copy(workload_bin(), &tmp.0).expect("copy to /tmp");
    let cron = format!(
        "/etc/cron.d/sentinel-e2e-incident-push-{}",
        std::process::id()
    );
    let mut child = Command::new(sentinel_bin())
        // --llm without a provider: the local story, through the same explainer service.
        .args([
            "run",
            "--json",
            "--duration",
            "7s",
            "--llm",
            "--push",
            &base,
        ])
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn sentinel");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.contains("\"type\":\"status\""), "{first}");
    // Execution, credential access and persistence in one login session.
    in_new_login_session(
        AUID,
        &format!(
            "{} exit 0; cat /etc/shadow > /dev/null; echo '# test' > {cron}; rm -f {cron}",
            tmp.0.display()
        ),
    );
    let _ = std::fs::remove_file(&cron);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    child.wait().unwrap();
    let states: Vec<Value> = rest
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["type"] == "incident" && r["principal"]["uid"] == AUID)
        .collect();
    let last = states
        .iter()
        .rfind(|s| s["explanation"].is_null())
        .unwrap_or_else(|| panic!("no incident for login uid {AUID} in:\n{rest}"));
    // High or above: told as one story, a further record of the same incident.
    let told = states
        .iter()
        .rfind(|s| s["explanation"].is_object())
        .unwrap_or_else(|| panic!("no incident story in {states:?}"));
    assert_eq!(told["id"], last["id"]);
    assert_eq!(told["explanation"]["source"], "local");
    assert!(
        ["high", "critical"].contains(&told["level"].as_str().unwrap()),
        "{told}"
    );
    let told_score = told["score"].clone();
    let told_steps = told["step_count"].as_u64().unwrap();
    assert_eq!(
        states
            .iter()
            .find(|s| s["step_count"] == told["step_count"] && s["explanation"].is_null())
            .map(|s| &s["score"]),
        Some(&told_score),
        "the story never changes the score"
    );
    let id = last["id"].as_str().unwrap();
    let steps = last["step_count"].as_u64().unwrap();
    assert!(
        states.len() >= 2 && steps >= 3,
        "the incident grew in the feed: {states:?}"
    );

    rt.block_on(async {
        let c = client();
        // The agent flushed its spool before exiting: the server holds the latest state.
        let (s, list) = get(&c, &format!("{base}/api/incidents?host={HOST}"), &reader).await;
        assert_eq!(s, StatusCode::OK, "{list}");
        let mine: Vec<&Value> = list["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["id"] == id)
            .collect();
        assert_eq!(mine.len(), 1, "one row per incident: {list}");
        assert_eq!(
            mine[0]["step_count"].as_u64(),
            Some(steps),
            "the latest state replaced the earlier ones: {list}"
        );
        let (s, got) = get(
            &c,
            &format!("{base}/api/incidents/{}/{}", seg(HOST), seg(id)),
            &reader,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{got}");
        assert_eq!(got["story"], last["story"]);
        assert_eq!(
            got["explanation"]["source"], "local",
            "the story was pushed too: {got}"
        );
        // The latest story the feed showed, or a later one pushed as the run ended.
        assert!(
            got["explained_step_count"].as_u64() >= Some(told_steps),
            "{got}"
        );
        assert_eq!(got["score"], last["score"], "the agent's score, untouched");
        let step_ids: Vec<&str> = got["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["anomaly_id"].as_str().unwrap())
            .collect();
        assert_eq!(step_ids.len() as u64, steps, "{got}");
        for s in got["steps"].as_array().unwrap() {
            assert!(
                !s["factors"].as_array().unwrap().is_empty(),
                "each step carries its factors: {s}"
            );
        }
        // Every step's anomaly arrived too, and the pages link them.
        for a in &step_ids {
            let (s, _) = get(&c, &format!("{base}/api/anomalies/{}", seg(a)), &reader).await;
            assert_eq!(s, StatusCode::OK, "step anomaly {a} on the server");
        }
        let (cookie, _) = dash::session(&server, viewer).await;
        let (s, home) = page(&c, &format!("{base}/"), &cookie).await;
        assert_eq!(s, StatusCode::OK);
        let href = format!("/incidents/{}/{}", seg(HOST), seg(id));
        let at_incidents = home
            .find(&href)
            .expect("the incident is listed on the home page");
        let at_anomalies = home.find("Live anomalies").unwrap();
        assert!(at_incidents < at_anomalies, "incidents come first");
        let (s, inc) = page(&c, &format!("{base}{href}"), &cookie).await;
        assert_eq!(s, StatusCode::OK);
        let mut at = 0;
        for a in &step_ids {
            let link = format!("href=\"/anomalies/{}\"", seg(a));
            let p = inc[at..]
                .find(&link)
                .unwrap_or_else(|| panic!("step {a} linked in order on the incident page"));
            at += p + link.len();
        }
        for t in ["execution", "credential access", "persistence"] {
            assert!(inc.contains(t), "{t} on the incident page");
        }
        assert!(inc.contains("exec_from_writable"));
        assert!(inc.contains("The story"), "the explanation is shown");
    });
    rt.block_on(server.shutdown());
}

fn incident(id: &str, host: &str, steps: u32, t0: i64) -> Incident {
    let step = |n: u32| Step {
        anomaly_id: format!("{host}-a{n}"),
        time_ns: t0 + i64::from(n) * 1_000_000_000,
        tactic: ["execution", "credential access", "persistence"][(n as usize - 1) % 3].into(),
        detections: vec!["exec_from_writable".into()],
        score: 40,
        level: Level::Medium,
        summary: format!("step {n}: mysql --password=hunter2secret <script>alert(1)</script>"),
        exe: "/tmp/x".into(),
        factors: vec![Factor {
            detection: "exec_from_writable".into(),
            reason: format!("step {n}: mysql --password=hunter2secret <script>alert(1)</script>"),
            weight: 40,
            evidence: vec![format!("{n}")],
        }],
    };
    let tactics: Vec<String> = (1..=steps.min(3))
        .map(|n| step(n).tactic)
        .collect::<Vec<_>>();
    let score = (40 + 15 * (tactics.len() as u32 - 1)).min(100) as u8;
    Incident {
        id: id.into(),
        host: host.into(),
        principal: Principal {
            uid: 1000,
            user: Some("bob".into()),
            session: Some(7),
        },
        scope: "session 7".into(),
        first_ns: t0 + 1_000_000_000,
        last_ns: t0 + i64::from(steps) * 1_000_000_000,
        score,
        level: Level::from_score(score),
        story: tactics.join(" -> "),
        tactics,
        steps: (1..=steps).map(step).collect(),
        step_count: steps,
        explanation: None,
    }
}

async fn push(c: &reqwest::Client, base: &str, key: &str, body: &Value) -> (StatusCode, Value) {
    let r = c
        .post(format!("{base}/api/ingest"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_ingest_keeps_the_latest_state_of_its_own_host_only() {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let base = h.url();
    let c = client();
    let owner = dash::add_user(&h, "agent", Role::Operator, "password-123456").await;
    let viewer = dash::add_user(&h, "vera", Role::Viewer, "password-123456").await;
    let web1 = dash::ingest_key(&h, owner, "web-1").await;
    let reader = dash::read_key(&h, viewer).await;
    let t0 = sentinel::store::now_ns() - 60_000_000_000;

    // The real push client carries incidents: two states of one incident.
    let spool = dir.path().join("spool");
    let mut pc = sentinel::feed::push::PushConfig::new(&base, &web1, spool);
    pc.host = Some("web-1".into());
    let p = sentinel::feed::push::Pusher::start(pc).unwrap();
    p.send_incident(incident("web-1-inc-1", "web-1", 2, t0))
        .await
        .unwrap();
    p.flush().await.unwrap();
    p.send_incident(incident("web-1-inc-1", "web-1", 3, t0))
        .await
        .unwrap();
    p.flush().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while p.pending() > 0 {
        assert!(std::time::Instant::now() < deadline, "spool did not drain");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    p.shutdown(std::time::Duration::from_secs(1)).await;
    let url = format!("{base}/api/incidents/web-1/web-1-inc-1");
    let (s, got) = get(&c, &url, &reader).await;
    assert_eq!(s, StatusCode::OK, "{got}");
    assert_eq!(got["step_count"], 3, "the update replaced the first state");
    assert_eq!(
        got["story"],
        "execution -> credential access -> persistence"
    );
    let text = got.to_string();
    assert!(
        !text.contains("hunter2secret") && text.contains("REDACTED"),
        "command lines redacted: {text}"
    );

    // States out of order: a retried older batch after a newer one never goes backwards.
    let newer =
        json!({ "batch_id": "o-5", "incidents": [incident("web-1-inc-2", "web-1", 5, t0)] });
    let older =
        json!({ "batch_id": "o-4", "incidents": [incident("web-1-inc-2", "web-1", 4, t0)] });
    let (s, r) = push(&c, &base, &web1, &newer).await;
    assert_eq!(
        (s, &r["incidents"]["stored"]),
        (StatusCode::OK, &json!(["web-1-inc-2"])),
        "{r}"
    );
    let (s, r) = push(&c, &base, &web1, &older).await;
    assert_eq!(
        (s, &r["incidents"]["stale"]),
        (StatusCode::OK, &json!(["web-1-inc-2"])),
        "{r}"
    );
    let (_, got) = get(
        &c,
        &format!("{base}/api/incidents/web-1/web-1-inc-2"),
        &reader,
    )
    .await;
    assert_eq!(got["step_count"], 5, "{got}");
    let six = json!({ "batch_id": "o-6", "incidents": [incident("web-1-inc-2", "web-1", 6, t0)] });
    let (_, r) = push(&c, &base, &web1, &six).await;
    assert_eq!(r["incidents"]["updated"], json!(["web-1-inc-2"]), "{r}");

    // A key bound to web-1 writing an incident of web-2: the whole batch is refused, audited.
    let foreign = json!({ "batch_id": "f-1", "incidents": [
        incident("web-1-inc-3", "web-1", 2, t0), incident("web-2-inc-1", "web-2", 2, t0)] });
    let (s, r) = push(&c, &base, &web1, &foreign).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{r}");
    let audit = h
        .store()
        .list_audit(&AuditFilter {
            action: Some("ingest_host_refused".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        audit.iter().any(|e| e.detail.contains("web-2")),
        "{audit:?}"
    );
    let (s, _) = get(
        &c,
        &format!("{base}/api/incidents/web-2/web-2-inc-1"),
        &reader,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = get(
        &c,
        &format!("{base}/api/incidents/web-1/web-1-inc-3"),
        &reader,
    )
    .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "nothing of a refused batch is stored"
    );

    // Item by item: a newline in an id and a time in the future are refused with a reason,
    // the good incident of the same batch is stored.
    let mut future = incident("web-1-inc-future", "web-1", 2, t0);
    future.last_ns = sentinel::store::now_ns() + 3_600_000_000_000;
    let mixed = json!({ "batch_id": "m-1", "incidents": [
        incident("web-1-inc-\nforged", "web-1", 2, t0), future, incident("web-1-inc-ok", "web-1", 2, t0)] });
    let (s, r) = push(&c, &base, &web1, &mixed).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["incidents"]["stored"], json!(["web-1-inc-ok"]), "{r}");
    let refused = r["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 2, "{r}");
    assert_eq!(refused[0]["kind"], "incident");
    assert_eq!(refused[0]["id"], "web-1-inc-\\nforged");
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap()
            .contains("control character")
    );
    assert!(
        refused[1]["reason"]
            .as_str()
            .unwrap()
            .contains("ahead of the server's clock")
    );
    assert_eq!(h.store().count_incidents().await.unwrap(), 3);

    // The list: cursor pages, host and time filters, and the read scope's role rules.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (s, page) = get(
            &c,
            &format!("{base}/api/incidents?limit=1&cursor={cursor}"),
            &reader,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{page}");
        seen.extend(
            page["incidents"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(n) => cursor = n.to_string(),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["web-1-inc-ok", "web-1-inc-2", "web-1-inc-1"],
        "latest first, each once"
    );
    let (_, none) = get(&c, &format!("{base}/api/incidents?to_ns={t0}"), &reader).await;
    assert_eq!(none["incidents"], json!([]), "all began after t0");
    let (_, other) = get(&c, &format!("{base}/api/incidents?host=web-2"), &reader).await;
    assert_eq!(other["incidents"], json!([]));
    let (s, _) = get(&c, &format!("{base}/api/incidents?cursor=bogus"), &reader).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = get(&c, &format!("{base}/api/incidents"), &web1).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "an agent key reads nothing");

    // The dashboard: escaped, and a missing step anomaly is shown as such.
    let (cookie, _) = dash::session(&h, viewer).await;
    let (s, html) = page(&c, &format!("{base}/incidents/web-1/web-1-inc-1"), &cookie).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!html.contains("<script>alert(1)"), "escaped");
    assert!(html.contains("&lt;script&gt;alert(1)"), "{html}");
    assert!(html.contains("not received"));
    let (s, _) = page(&c, &format!("{base}/incidents/web-1/no-such"), &cookie).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, home) = page(&c, &format!("{base}/?order=score&cursor=bogus"), &cookie).await;
    assert_eq!(s, StatusCode::OK, "a bad cursor is said, not a failure");
    assert!(home.contains("cursor: pass next_cursor as given"));
    h.shutdown().await;
}
