//! End-to-end tests of the fleet over HTTP (issue 13): `sentinel host token` and `sentinel
//! enroll` against a real server (uses exhausted, expired, retired: refused; re-enrolment
//! rotates, the old key gets 401), malformed heartbeats and the blind classifier, and the
//! cursor pages of anomalies and hosts. Real agents: server_fleet_agents.rs.

use std::path::Path;

use reqwest::StatusCode;
use sentinel::model::Level;
use sentinel::server::fleet::NewEnrolToken;
use sentinel::server::store::Role;
use sentinel::server::{ServerHandle, auth};
use sentinel_e2e::dash;
use sentinel_e2e::fleet::{cli_token_on, client, db_args, enroll, get};
use sentinel_e2e::sentinel;
use serde_json::{Value, json};

async fn heartbeat(
    c: &reqwest::Client,
    base: &str,
    key: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let r = c
        .post(format!("{base}/api/ingest/heartbeat"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

fn beat(host: &str, health: Value) -> Value {
    json!({ "host": host, "time_ns": sentinel::store::now_ns(), "interval_secs": 30, "health": health })
}

async fn audit_actions(h: &ServerHandle) -> Vec<String> {
    h.store()
        .list_audit(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_gives_a_bound_key_rotates_it_and_refuses_spent_expired_and_retired() {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let base = h.url();
    let admin = dash::add_user(&h, "root-admin", Role::Admin, "password-123456").await;
    let admin_key = dash::key(
        &h,
        admin,
        "adm",
        sentinel::server::store::KeyScope::Admin,
        None,
    )
    .await;
    let c = client();
    let token = cli_token_on(&h, &["--uses", "2", "--expires", "1h"]);
    let cfg = dir.path().join("etc/sentinel.toml");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(&cfg, "# my agent\n[push]\nspool_dir = \"/tmp/x\"\n").unwrap();

    // First enrolment: key 0600 next to the configuration, which now points at the server.
    let r = enroll(&base, &token, "fleet-e2e-web", &cfg);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let key_file = dir.path().join("etc/push.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let key1 = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_string();
    let conf = sentinel::config::Config::load(Some(&cfg)).unwrap();
    assert_eq!(conf.host.as_deref(), Some("fleet-e2e-web"));
    assert_eq!(conf.push.url.as_deref(), Some(base.as_str()));
    assert_eq!(conf.push.api_key_file.as_deref(), Some(key_file.as_path()));
    assert_eq!(
        conf.push.spool_dir.as_deref(),
        Some(Path::new("/tmp/x")),
        "the rest is kept"
    );
    assert!(
        std::fs::read_to_string(&cfg)
            .unwrap()
            .contains("# my agent")
    );

    // The key writes its own host, and only that one.
    let (s, _) = heartbeat(&c, &base, &key1, &beat("fleet-e2e-web", json!({}))).await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = heartbeat(&c, &base, &key1, &beat("fleet-e2e-db", json!({}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    let (s, _) = get(&c, &format!("{base}/api/hosts"), &key1).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "an enrolled key only pushes");

    // Re-enrolment rotates: the old key is refused from now on.
    let r = enroll(&base, &token, "fleet-e2e-web", &cfg);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("previous key is revoked"), "{}", r.stdout);
    let key2 = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_string();
    assert_ne!(key1, key2);
    let (s, _) = heartbeat(&c, &base, &key1, &beat("fleet-e2e-web", json!({}))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = heartbeat(&c, &base, &key2, &beat("fleet-e2e-web", json!({}))).await;
    assert_eq!(s, StatusCode::OK);

    // Both uses spent.
    let r = enroll(&base, &token, "fleet-e2e-other", &dir.path().join("o.toml"));
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("HTTP 403") && r.stderr.contains("used up"),
        "{}",
        r.stderr
    );
    // Expired, and unknown.
    let expired = "snt_enr_expired-for-the-test";
    h.store()
        .create_enrol_token(&NewEnrolToken {
            token_hash: &auth::token_hash(expired),
            prefix: "snt_enr_expir",
            note: "",
            created_by: "test",
            now_ns: 0,
            expires_ns: Some(sentinel::store::now_ns() - 1),
            max_uses: 5,
        })
        .await
        .unwrap();
    let r = enroll(
        &base,
        expired,
        "fleet-e2e-other",
        &dir.path().join("o.toml"),
    );
    assert!(
        r.stderr.contains("HTTP 403") && r.stderr.contains("expired"),
        "{}",
        r.stderr
    );
    let r = enroll(
        &base,
        "snt_enr_nope",
        "fleet-e2e-other",
        &dir.path().join("o.toml"),
    );
    assert!(
        r.stderr.contains("HTTP 401") && r.stderr.contains("unknown"),
        "{}",
        r.stderr
    );
    // Malformed enrolment requests get a clear 4xx.
    let r = c
        .post(format!("{base}/api/enroll"))
        .body("{\"token\": 3}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c
        .post(format!("{base}/api/enroll"))
        .json(&json!({ "token": token, "host": "a\nb" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // An admin retires the host through the API: its key stops, it cannot enrol again.
    let r = c
        .post(format!("{base}/api/admin/hosts/fleet-e2e-web/retire"))
        .bearer_auth(&admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (s, _) = heartbeat(&c, &base, &key2, &beat("fleet-e2e-web", json!({}))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let fresh = cli_token_on(&h, &[]);
    let r = enroll(&base, &fresh, "fleet-e2e-web", &cfg);
    assert!(
        r.stderr.contains("HTTP 409") && r.stderr.contains("retired"),
        "{}",
        r.stderr
    );
    // The admin API lists tokens (never their secrets) and makes new ones.
    let (s, list) = get(
        &c,
        &format!("{base}/api/admin/enrolment-tokens"),
        &admin_key,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(!list.to_string().contains(&token[14..]), "no secret listed");
    assert_eq!(
        list.as_array()
            .unwrap()
            .iter()
            .filter(|t| t["uses"] == 2)
            .count(),
        1,
        "{list}"
    );
    let r: Value = c
        .post(format!("{base}/api/admin/enrolment-tokens"))
        .bearer_auth(&admin_key)
        .json(&json!({ "uses": 3, "expires_secs": 600, "note": "rack 4" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(r["token"].as_str().unwrap().starts_with("snt_enr_"), "{r}");
    let actions = audit_actions(&h).await;
    for a in [
        "enrol_token_created",
        "host_enrolled",
        "host_reenrolled",
        "enrol_refused",
        "host_retired",
        "ingest_host_refused",
    ] {
        assert!(
            actions.iter().any(|x| x == a),
            "{a} missing from {actions:?}"
        );
    }
    // The CLI lists the agent as retired.
    let db_args = db_args(&h);
    let r = sentinel(&["host", &db_args[0], &db_args[1], "list"]);
    assert!(r.stdout.contains("fleet-e2e-web\tretired"), "{}", r.stdout);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_heartbeats_get_clear_answers_and_the_blind_classifier_runs_on_them() {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let base = h.url();
    let op = dash::add_user(&h, "agent", Role::Operator, "password-123456").await;
    let key = dash::ingest_key(&h, op, "fleet-e2e-hb").await;
    let viewer = dash::add_user(&h, "vera", Role::Viewer, "password-123456").await;
    let reader = dash::read_key(&h, viewer).await;
    let c = client();
    for (body, want) in [
        (json!({ "host": "fleet-e2e-hb" }), StatusCode::BAD_REQUEST),
        (json!("x"), StatusCode::BAD_REQUEST),
        (
            beat("fleet-e2e-hb", json!([1])),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            beat(
                "fleet-e2e-hb",
                json!({ "events": { "lost_total": "lots" } }),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "host": "fleet-e2e-hb", "time_ns": i64::MAX, "interval_secs": 30, "health": {} }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (s, answer) = heartbeat(&c, &base, &key, &body).await;
        assert_eq!(s, want, "{body}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{answer}"
        );
    }
    // A failed hook makes the host blind, with the hook named; a clean beat heals it.
    let failed = json!({ "hooks": { "attached": ["a"], "failed": [{ "hook": "sys_enter_bpf", "reason": "permission denied" }] } });
    let (s, r) = heartbeat(&c, &base, &key, &beat("fleet-e2e-hb", failed)).await;
    assert_eq!((s, &r["state"]), (StatusCode::OK, &json!("blind")), "{r}");
    let (_, host) = get(&c, &format!("{base}/api/hosts/fleet-e2e-hb"), &reader).await;
    assert!(
        host["fleet"]["agent"]["reason"]
            .as_str()
            .unwrap()
            .contains("sys_enter_bpf"),
        "{host}"
    );
    let (_, r) = heartbeat(&c, &base, &key, &beat("fleet-e2e-hb", json!({}))).await;
    assert_eq!(r["state"], "healthy");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anomaly_and_host_lists_page_with_cursors_and_time_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let base = h.url();
    let viewer = dash::add_user(&h, "vera", Role::Viewer, "password-123456").await;
    let reader = dash::read_key(&h, viewer).await;
    let c = client();
    let t0 = sentinel::store::now_ns() - 1_000_000_000;
    for host in ["page-a", "page-b", "page-c"] {
        let mut list = Vec::new();
        for i in 0..3 {
            let mut a = dash::anomaly(host, "bob", &format!("{host}-{i}"), Level::Medium);
            a.time_ns = t0 + i;
            list.push(a);
        }
        h.ingest(&sentinel::feed::push::IngestBatch {
            batch_id: format!("b-{host}"),
            host: Some(host.into()),
            anomalies: list,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let mut ids = Vec::new();
    let mut url = format!("{base}/api/anomalies?limit=4");
    loop {
        let (s, page) = get(&c, &url, &reader).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let got = page["anomalies"].as_array().unwrap();
        assert!(got.len() <= 4);
        ids.extend(got.iter().map(|a| a["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(cur) => url = format!("{base}/api/anomalies?limit=4&cursor={cur}"),
            None => break,
        }
    }
    assert_eq!(ids.len(), 9, "every anomaly once: {ids:?}");
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 9);
    assert_eq!(
        &ids[..3],
        ["page-c-2", "page-c-1", "page-c-0"],
        "newest batch first"
    );
    // A time range (agent clock) and a host.
    let (_, page) = get(
        &c,
        &format!(
            "{base}/api/anomalies?host=page-b&from_ns={}&to_ns={}",
            t0 + 1,
            t0 + 2
        ),
        &reader,
    )
    .await;
    let got: Vec<&str> = page["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["page-b-2", "page-b-1"]);
    let (s, _) = get(&c, &format!("{base}/api/anomalies?cursor=junk"), &reader).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Hosts by name, one per page.
    let mut names = Vec::new();
    let mut url = format!("{base}/api/hosts?limit=1");
    loop {
        let (s, page) = get(&c, &url, &reader).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        names.extend(
            page["hosts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["name"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(cur) => url = format!("{base}/api/hosts?limit=1&cursor={cur}"),
            None => break,
        }
    }
    assert_eq!(names, ["page-a", "page-b", "page-c"]);
    let (_, page) = get(
        &c,
        &format!("{base}/api/hosts?from_ns={}", sentinel::store::now_ns() + 1),
        &reader,
    )
    .await;
    assert_eq!(page["hosts"], json!([]), "nobody seen in the future");
    let (s, _) = get(&c, &format!("{base}/api/hosts?state=bogus"), &reader).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_make_and_revoke_tokens_and_retire_hosts_on_the_fleet_page() {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let base = h.url();
    let admin = dash::add_user(&h, "root-admin", Role::Admin, "password-123456").await;
    let (cookie, csrf) = dash::session(&h, admin).await;
    let c = client();
    let post = |path: &str, form: String| {
        c.post(format!("{base}{path}"))
            .header(reqwest::header::COOKIE, &cookie)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
            .send()
    };
    let page = post(
        "/admin/fleet/tokens",
        format!("csrf={csrf}&expires_hours=2&uses=3&note=rack+4"),
    )
    .await
    .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    let secret = page
        .split("code class=\"secret\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("the new token is shown")
        .to_string();
    assert!(secret.starts_with("snt_enr_"), "{secret}");
    assert!(page.contains("rack 4") && page.contains("0 / 3"), "listed");
    // Shown once: the list shows its prefix only.
    let list = c
        .get(format!("{base}/admin/fleet"))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!list.contains(&secret) && list.contains(&secret[..14]));
    // It enrols; then the admin revokes it and retires the host from the page.
    let cfg = dir.path().join("a.toml");
    let r = enroll(&base, &secret, "fleet-e2e-page", &cfg);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let id = h.store().list_enrol_tokens().await.unwrap()[0].id;
    let r = post(
        &format!("/admin/fleet/tokens/{id}/revoke"),
        format!("csrf={csrf}"),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = enroll(&base, &secret, "fleet-e2e-page2", &cfg);
    assert!(r.stderr.contains("revoked"), "{}", r.stderr);
    let r = post(
        "/admin/fleet/hosts/fleet-e2e-page/retire",
        format!("csrf={csrf}"),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        h.store()
            .agent("fleet-e2e-page")
            .await
            .unwrap()
            .unwrap()
            .retired_ns
            .is_some()
    );
    let r = post("/admin/fleet/tokens", "expires_hours=1&uses=1".into())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no CSRF token, no token");
    let actions = audit_actions(&h).await;
    assert!(
        actions
            .iter()
            .filter(|a| *a == "enrol_token_created")
            .count()
            == 1
            && actions.iter().any(|a| a == "enrol_token_revoked"),
        "{actions:?}"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_snapshots_get_clear_answers() {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let base = h.url();
    let op = dash::add_user(&h, "agent", Role::Operator, "password-123456").await;
    let key = dash::ingest_key(&h, op, "fleet-e2e-snap").await;
    let c = client();
    let push = async |body: &str| {
        let r = c
            .post(format!("{base}/api/ingest"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let s = r.status();
        (s, r.json::<Value>().await.unwrap_or(Value::Null))
    };
    for (body, want, says) in [
        (
            "{\"batch_id\": \"m1\", \"snapshots\": ",
            StatusCode::BAD_REQUEST,
            "malformed batch",
        ),
        (
            "{\"batch_id\": \"m2\", \"snapshots\": {\"system\": {}}}",
            StatusCode::BAD_REQUEST,
            "snapshots",
        ),
        (
            "{\"batch_id\": \"m3\", \"snapshots\": [3]}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "snapshot 0: must be a JSON object",
        ),
        (
            "{\"batch_id\": \"m4\", \"snapshots\": [null]}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "snapshot 0: must be a JSON object",
        ),
        (
            "{\"batch_id\": \"m5\", \"host\": \"fleet-e2e-snap\", \"snapshots\": [{\"time_ns\": 9000000000000000000}]}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "ahead of the server's clock",
        ),
    ] {
        let (s, answer) = push(body).await;
        assert_eq!(s, want, "{body}: {answer}");
        let e = answer["error"].as_str().unwrap_or("");
        assert!(e.contains(says), "{body}: {answer}");
    }
    // One good snapshot next to a bad one: the good one is stored, the bad one named.
    let (s, answer) = push(
        "{\"batch_id\": \"m6\", \"snapshots\": [3, {\"system\": {\"hostname\": \"fleet-e2e-snap\"}}]}",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    assert_eq!(answer["snapshots"], 1, "{answer}");
    assert_eq!(answer["refused"][0]["index"], 0, "{answer}");
    let series = h
        .store()
        .snapshot_series("fleet-e2e-snap", 0)
        .await
        .unwrap();
    assert_eq!(series.len(), 1, "only the good snapshot is stored");
    h.shutdown().await;
}
