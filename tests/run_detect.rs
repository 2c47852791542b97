//! End-to-end: `sentinel run` with detection on, as a user runs it. A binary executed from
//! /tmp becomes an anomaly in the JSON feed citing the exec event, is kept in the agent store,
//! and reaches a dashboard server through `--push`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use sentinel::server::store::Role;
use sentinel_e2e::auditd;
use sentinel_e2e::*;
use serde_json::Value;

/// A copy of the workload helper under /tmp (a world-writable place), removed on drop.
struct TmpBinary(std::path::PathBuf);

impl TmpBinary {
    /// A copy named after the test that uses it (tests run in parallel in one process, and
    /// one test's copy must not be removed under another's feet).
    fn new(tag: &str) -> TmpBinary {
        let p = std::path::PathBuf::from(format!(
            "/tmp/sentinel-e2e-detect-{}-{tag}",
            std::process::id()
        ));
        std::fs::copy(workload_bin(), &p).expect("copy to /tmp");
        TmpBinary(p)
    }
}

impl Drop for TmpBinary {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `sentinel run --json ARGS`; once its probes are attached, runs the /tmp binary and
/// returns (its pid, every JSON line, exit code).
fn run_and_exec_from_tmp(tag: &str, args: &[&str]) -> (u32, Vec<Value>, i32) {
    require_root();
    let tmp = TmpBinary::new(tag);
    let mut child = Command::new(sentinel_bin())
        .args(["run", "--json"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn sentinel");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.contains("\"type\":\"status\""), "{first}");
    let st = Command::new(&tmp.0).args(["exit", "0"]).status().unwrap();
    assert!(st.success());
    // The exec'd process's pid: the one whose exec names our path.
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let code = child.wait().unwrap().code().unwrap_or(-1);
    let recs: Vec<Value> = std::iter::once(first.as_str())
        .chain(rest.lines())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let path = tmp.0.to_str().unwrap().to_string();
    let pid = recs
        .iter()
        .find(|r| r["type"] == "event" && r["kind"] == "exec" && r["filename"] == path.as_str())
        .map(|r| r["pid"].as_u64().unwrap() as u32)
        .unwrap_or(0);
    (pid, recs, code)
}

/// Writes `DIR/sentinel.toml`: the agent store in DIR (never the system's), then `extra`.
fn config_in(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let cfg = dir.join("sentinel.toml");
    let text = format!(
        "store = {:?}\n{extra}",
        dir.join("agent.db").to_str().unwrap()
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// The anomaly of the /tmp copy of the test named `tag` (every agent sees every test's copies).
fn tmp_exec_anomaly<'a>(recs: &'a [Value], tag: &str) -> &'a Value {
    let mine = format!(
        "executed /tmp/sentinel-e2e-detect-{}-{tag} from",
        std::process::id()
    );
    recs.iter()
        .find(|r| {
            r["type"] == "anomaly"
                && r["factors"].as_array().unwrap().iter().any(|f| {
                    f["detection"] == "exec_from_writable"
                        && f["reason"].as_str().unwrap_or("").contains(&mine)
                })
        })
        .unwrap_or_else(|| panic!("no exec_from_writable anomaly in {} records", recs.len()))
}

#[test]
fn exec_from_tmp_is_an_anomaly_with_evidence_and_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("agent.db");
    let cfg = config_in(dir.path(), "");
    let (pid, recs, code) = run_and_exec_from_tmp(
        "stored",
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--events",
            "--kinds",
            "exec,fork,exit",
            "--duration",
            "4s",
        ],
    );
    // Exit 1 exactly when the run lost events (a busy host), else 0: read from its summary.
    let summary = recs.last().expect("a summary record");
    let sum = |v: &Value| -> u64 {
        v.as_object()
            .map(|o| o.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0)
    };
    let lost = sum(&summary["kernel_lost"]) + sum(&summary["stats"]["channel_dropped"]);
    assert_eq!(
        code,
        i32::from(lost > 0),
        "exit {code}, lost {lost}: {summary}"
    );
    assert_ne!(pid, 0, "the exec event was shown (--events)");
    let exec_id = recs
        .iter()
        .find(|r| r["type"] == "event" && r["kind"] == "exec" && r["pid"] == pid)
        .map(|r| r["id"].to_string())
        .unwrap();
    let a = tmp_exec_anomaly(&recs, "stored");
    assert!(a["score"].as_u64().unwrap() > 0);
    assert!(["low", "medium", "high", "critical"].contains(&a["level"].as_str().unwrap()));
    let f = a["factors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["detection"] == "exec_from_writable")
        .unwrap();
    assert!(f["weight"].as_u64().unwrap() > 0);
    assert!(
        f["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str() == Some(exec_id.as_str())),
        "the factor cites the exec event {exec_id}: {f}"
    );
    assert_eq!(
        a["chain"].as_array().unwrap().last().unwrap()["pid"],
        pid,
        "the chain ends at the actor"
    );
    let summary = recs.last().unwrap();
    assert!(summary["pipeline"]["anomalies"].as_u64().unwrap() >= 1);

    // The anomaly is in the agent store, where `sentinel analyze --anomaly ID` finds it.
    let store = sentinel::store::Store::open(&db).unwrap();
    let id = a["id"].as_str().unwrap();
    let kept = store.get_anomaly(id).unwrap().expect("anomaly stored");
    assert_eq!(kept.score as u64, a["score"].as_u64().unwrap());
}

/// One login session that runs a program from /tmp, reads /etc/shadow and plants a cron
/// file is one incident: its steps in order, a story of tactics, a score above its parts, and
/// the latest state in the agent store.
#[test]
fn one_sessions_anomalies_become_an_incident() {
    use std::os::unix::process::CommandExt;
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("agent.db");
    let cfg = config_in(dir.path(), "");
    let tmp = TmpBinary::new("incident");
    let cron = format!("/etc/cron.d/sentinel-e2e-incident-{}", std::process::id());
    let mut child = Command::new(sentinel_bin())
        .args([
            "run",
            "--json",
            "--config",
            cfg.to_str().unwrap(),
            "--duration",
            "6s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn sentinel");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.contains("\"type\":\"status\""), "{first}");
    let script = format!(
        "{} exit 0; cat /etc/shadow > /dev/null; echo '# test' > {cron}; rm -f {cron}",
        tmp.0.display()
    );
    let mut c = Command::new("/bin/sh");
    c.args(["-c", &script]);
    // A login session of its own: writing the login uid makes the kernel assign a new one.
    // SAFETY: only raw open/write/close (async-signal-safe) between fork and exec.
    unsafe {
        c.pre_exec(|| {
            let fd = libc::open(c"/proc/self/loginuid".as_ptr(), libc::O_WRONLY);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let n = libc::write(fd, b"4242".as_ptr().cast(), 4);
            libc::close(fd);
            if n != 4 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    assert!(c.status().unwrap().success());
    let _ = std::fs::remove_file(&cron);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    child.wait().unwrap();
    let incidents: Vec<Value> = rest
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["type"] == "incident" && r["principal"]["uid"] == 4242)
        .collect();
    let last = incidents
        .last()
        .unwrap_or_else(|| panic!("no incident for login uid 4242 in:\n{rest}"));
    let tactics: Vec<&str> = last["tactics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    for t in ["execution", "credential access", "persistence"] {
        assert!(tactics.contains(&t), "{t} missing from {last}");
    }
    let steps = last["steps"].as_array().unwrap();
    assert!(steps.len() >= 3, "{last}");
    let times: Vec<i64> = steps
        .iter()
        .map(|s| s["time_ns"].as_i64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "steps in order: {last}"
    );
    let top = steps
        .iter()
        .map(|s| s["score"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(
        last["score"].as_u64().unwrap() > top,
        "the chain escalates: {last}"
    );
    assert!(
        ["high", "critical"].contains(&last["level"].as_str().unwrap()),
        "{last}"
    );
    let store = sentinel::store::Store::open(&db).unwrap();
    let kept = store
        .get_incident(last["id"].as_str().unwrap())
        .unwrap()
        .expect("incident stored");
    assert_eq!(kept.step_count as usize, steps.len());
}

/// An analyst's "benign" verdict, given with `sentinel feedback` between two runs, lowers the
/// same finding below medium in the next run; `--undo` takes it back; a wrong id is a usage
/// error.
#[test]
fn feedback_teaches_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("agent.db");
    let cfg = config_in(dir.path(), "");
    let args = [
        "--config",
        cfg.to_str().unwrap(),
        "--kinds",
        "exec,fork,exit",
        "--duration",
        "4s",
    ];
    let (_, recs, _) = run_and_exec_from_tmp("feedback", &args);
    let first = tmp_exec_anomaly(&recs, "feedback");
    assert!(first["score"].as_u64().unwrap() >= 25, "{first}");
    let id = first["id"].as_str().unwrap();
    let feedback = |extra: &[&str]| {
        Command::new(sentinel_bin())
            .arg("feedback")
            .args(extra)
            .args(["--store", db.to_str().unwrap()])
            .output()
            .expect("sentinel feedback")
    };
    let out = feedback(&[id, "benign", "--note", "our build helper"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, recs, _) = run_and_exec_from_tmp("feedback", &args);
    let second = tmp_exec_anomaly(&recs, "feedback");
    assert!(second["score"].as_u64().unwrap() < 25, "lowered: {second}");
    let f = second["factors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["detection"] == "exec_from_writable")
        .unwrap();
    assert_eq!(f["weight"], 0);
    assert!(
        f["reason"].as_str().unwrap().contains("our build helper"),
        "{f}"
    );
    let out = feedback(&["--undo", id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = feedback(&["no-such-anomaly", "benign"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no anomaly or incident no-such-anomaly")
    );
}

#[test]
fn anomalies_reach_a_dashboard_through_push() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(dash::start(dir.path()));
    let uid = rt.block_on(dash::add_user(
        &server,
        "agent-owner",
        Role::Operator,
        "correct horse battery staple",
    ));
    // The agent's key pushes for its own host only; reading back takes a read key.
    let key = rt.block_on(dash::ingest_key(&server, uid, "e2e-push-host"));
    let reader = rt.block_on(dash::read_key(&server, uid));
    let url = format!("http://{}", server.addr);
    let cfg = config_in(dir.path(), "host = \"e2e-push-host\"\n");
    let (_, recs, _) = run_and_exec_from_tmp(
        "anomalies_re",
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--kinds",
            "exec,fork,exit",
            "--duration",
            "4s",
            "--push",
            &url,
            "--api-key",
            &key,
        ],
    );
    let id = tmp_exec_anomaly(&recs, "anomalies_re")["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The agent flushed before exiting: the server has it now.
    let got: Value = rt.block_on(async {
        reqwest::Client::new()
            .get(format!("{url}/api/anomalies/{id}"))
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(
        got["anomaly"]["id"].as_str().or(got["id"].as_str()),
        Some(id.as_str()),
        "{got}"
    );
    let text = got.to_string();
    assert!(
        text.contains("e2e-push-host") && text.contains("exec_from_writable"),
        "{got}"
    );
    rt.block_on(server.shutdown());
}

#[test]
fn live_audit_records_join_the_kernel_process_chain() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("payroll.csv");
    std::fs::write(&watched, "secret").unwrap();
    let key = format!("sentinel-live-{}", std::process::id());
    let w = watched.to_str().unwrap();
    auditd::must("auditctl", &["-e", "1"]);
    auditd::must("auditctl", &["-w", w, "-p", "r", "-k", &key]);
    struct Rule<'a>(&'a str, &'a str);
    impl Drop for Rule<'_> {
        fn drop(&mut self) {
            let _ = auditd::sh("auditctl", &["-W", self.0, "-p", "r", "-k", self.1]);
        }
    }
    let _rule = Rule(w, &key);
    let cfg = config_in(
        dir.path(),
        &format!(
            "[audit]\nlog_path = {:?}\nhmac_key_path = {:?}\n",
            auditd::active_log().to_str().unwrap(),
            dir.path().join("hmac.key").to_str().unwrap()
        ),
    );
    let mut child = Command::new(sentinel_bin())
        .args([
            "run",
            "--json",
            "--audit",
            "--kinds",
            "exec,fork,exit",
            "--duration",
            "8s",
            "--config",
        ])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    // The status line comes once the audit log is followed: a record from now on is seen.
    assert!(first.contains("\"type\":\"status\""), "{first}");
    let r = run_workload(&[std::ffi::OsStr::new("open"), watched.as_os_str()]);
    assert!(r.fact("ret") >= 0);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    child.wait().unwrap();
    let recs: Vec<Value> = rest
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let a = recs
        .iter()
        .find(|r| {
            r["type"] == "anomaly"
                && r["factors"].as_array().unwrap().iter().any(|f| {
                    f["detection"] == "watched_file_access"
                        && f["reason"].as_str().unwrap_or("").contains(&key)
                })
        })
        .unwrap_or_else(|| panic!("no audit anomaly for key {key} in {rest}"));
    let chain = a["chain"].as_array().unwrap();
    assert_eq!(
        chain.last().map(|l| l["pid"].clone()).unwrap_or_default(),
        r.pid,
        "the audit record is joined to the process the probes saw: {a}"
    );
    assert!(
        chain.iter().any(|l| l["pid"] == std::process::id()),
        "and to its ancestors: {a}"
    );
    assert!(
        a["evidence"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("audit:"),
        "{a}"
    );
}

#[test]
fn llm_explanations_follow_the_anomaly_without_changing_its_score() {
    let dir = tempfile::tempdir().unwrap();
    // No provider configured: the deterministic local explanation, which must still arrive
    // through the explainer service and the feed.
    let cfg = config_in(
        dir.path(),
        &format!(
            "[llm]\nmin_level = \"low\"\nsecret_file = {:?}\n",
            dir.path().join("explain.key").to_str().unwrap()
        ),
    );
    let (_, recs, _) = run_and_exec_from_tmp(
        "llm_explanat",
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--kinds",
            "exec,fork,exit",
            "--duration",
            "5s",
            "--llm",
        ],
    );
    let first = tmp_exec_anomaly(&recs, "llm_explanat");
    let id = first["id"].as_str().unwrap();
    assert!(
        first.get("explanation").is_none_or(|e| e.is_null()),
        "the anomaly is shown at once, unexplained"
    );
    let again = recs
        .iter()
        .find(|r| r["type"] == "anomaly" && r["id"] == id && r["explanation"].is_object())
        .unwrap_or_else(|| panic!("no explained record for {id}"));
    assert_eq!(again["explanation"]["source"], "local");
    assert!(!again["explanation"]["summary"].as_str().unwrap().is_empty());
    assert_eq!(
        again["score"], first["score"],
        "the explainer never sets the score"
    );
    assert_eq!(again["level"], first["level"]);
    // The stored record is the explained one.
    let store = sentinel::store::Store::open(&dir.path().join("agent.db")).unwrap();
    assert!(
        store
            .get_anomaly(id)
            .unwrap()
            .unwrap()
            .explanation
            .is_some()
    );
}
