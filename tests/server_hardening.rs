//! End-to-end tests of the security review's findings against a real server over real HTTP,
//! with real keys of each scope: what a stolen agent key can and cannot do, the server owning
//! time and identity, live streams that survive hostile records and end on revocation, and
//! re-authentication for two-factor and key changes. (Transport and outbound alerts:
//! server_outbound.rs.)

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::COOKIE;
use sentinel::model::Level;
use sentinel::server::auth;
use sentinel::server::store::{AuditFilter, KeyScope, Role};
use sentinel_e2e::dash;
use serde_json::{Value, json};

const MIN: i64 = 60_000_000_000;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn push(c: &reqwest::Client, base: &str, key: &str, body: &Value) -> reqwest::Response {
    c.post(format!("{base}/api/ingest"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn audited(h: &sentinel::server::ServerHandle, action: &str) -> Vec<String> {
    h.store()
        .list_audit(&AuditFilter {
            action: Some(action.into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{} {}", e.target, e.detail))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_agent_key_writes_only_its_own_host_and_reads_or_acks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let base = h.url();
    let c = client();
    let owner = dash::add_user(&h, "agent", Role::Operator, "password-123456").await;
    let admin = dash::add_user(&h, "alice", Role::Admin, "password-123456").await;
    let web1 = dash::ingest_key(&h, owner, "web-1").await;
    let web2 = dash::ingest_key(&h, owner, "web-2").await;
    // web-2's real anomaly, pushed with its own key.
    let real = dash::anomaly("web-2", "bob", "web-2-1", Level::Critical);
    let r = push(
        &c,
        &base,
        &web2,
        &json!({ "batch_id": "w2", "anomalies": [real] }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    // With web-1's key: anomalies, a batch host or a snapshot for web-2 are refused (403),
    // and each attempt is audited.
    let forged = [
        json!({ "batch_id": "f1", "anomalies": [dash::anomaly("web-2", "bob", "forged-1", Level::Low)] }),
        json!({ "batch_id": "f2", "host": "web-2" }),
        json!({ "batch_id": "f3", "host": "web-1", "snapshots": [ { "system": { "hostname": "web-2" } } ] }),
        json!({ "batch_id": "f4", "anomalies": [
            dash::anomaly("web-1", "bob", "mixed-1", Level::Low),
            dash::anomaly("web-2", "bob", "mixed-2", Level::Low) ] }),
    ];
    for body in &forged {
        let r = push(&c, &base, &web1, body).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{body}");
    }
    assert!(h.store().get_anomaly("forged-1").await.unwrap().is_none());
    assert!(h.store().get_anomaly("mixed-1").await.unwrap().is_none());
    assert_eq!(audited(&h, "ingest_host_refused").await.len(), forged.len());
    // Reading the fleet, acknowledging (one anomaly, a whole host) and the live feed: refused.
    let reads = [
        "/api/hosts",
        "/api/hosts/web-2",
        "/api/anomalies",
        "/api/anomalies/web-2-1",
        "/api/live",
        "/api/me",
        "/api/keys",
    ];
    for p in reads {
        let r = c
            .get(format!("{base}{p}"))
            .bearer_auth(&web1)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "GET {p}");
    }
    for p in ["/api/anomalies/web-2-1/ack", "/api/hosts/web-2/ack"] {
        let r = c
            .post(format!("{base}{p}"))
            .bearer_auth(&web1)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "POST {p}");
    }
    let stored = h.store().get_anomaly("web-2-1").await.unwrap().unwrap();
    assert!(stored.acked_by.is_none(), "web-2's anomaly is still open");
    // Its own host it may write.
    let own = json!({ "batch_id": "own", "anomalies": [dash::anomaly("web-1", "bob", "web-1-1", Level::High)],
        "snapshots": [ { "system": { "hostname": "web-1" } } ] });
    let r: Value = push(&c, &base, &web1, &own).await.json().await.unwrap();
    assert_eq!(r["stored"], json!(["web-1-1"]), "{r}");
    assert_eq!(r["snapshots"], 1, "{r}");
    // Read and ack keys do what their scope says and no more; none of them may push.
    let reader = dash::read_key(&h, owner).await;
    let acker = dash::key(&h, owner, "acker", KeyScope::Ack, None).await;
    let r = c
        .get(format!("{base}/api/hosts"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .post(format!("{base}/api/anomalies/web-1-1/ack"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "read keys cannot ack");
    let r = c
        .post(format!("{base}/api/anomalies/web-1-1/ack"))
        .bearer_auth(&acker)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "ack keys ack");
    for k in [&reader, &acker] {
        let r = push(
            &c,
            &base,
            k,
            &json!({ "batch_id": "nope", "host": "web-1" }),
        )
        .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    // Admins list every key (owner, scope, bound host) and revoke any of them.
    let admin_key = dash::key(&h, admin, "admin", KeyScope::Admin, None).await;
    let all: Value = c
        .get(format!("{base}/api/admin/keys"))
        .bearer_auth(&admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = all.as_array().unwrap();
    let w1 = listed
        .iter()
        .find(|k| k["host"] == "web-1")
        .expect("web-1's key is listed");
    assert_eq!(
        (&w1["owner"], &w1["scope"]),
        (&json!("agent"), &json!("ingest"))
    );
    assert!(listed.iter().all(|k| k.get("key_hash").is_none()));
    let r = c
        .delete(format!("{base}/api/admin/keys/{}", w1["id"]))
        .bearer_auth(&admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = push(
        &c,
        &base,
        &web1,
        &json!({ "batch_id": "after", "host": "web-1" }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a revoked key stops");
    assert_eq!(audited(&h, "api_key_revoked").await.len(), 1);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_keys_default_to_read_and_never_exceed_their_owner() {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let base = h.url();
    let c = client();
    let vera = dash::add_user(&h, "vera", Role::Viewer, "password-123456").await;
    let (cookie, csrf) = dash::session(&h, vera).await;
    let create = |fields: Vec<(&'static str, &'static str)>| {
        let mut form = vec![("csrf", csrf.clone())];
        form.extend(fields.into_iter().map(|(k, v)| (k, v.to_string())));
        c.post(format!("{base}/profile/keys"))
            .header(COOKIE, &cookie)
            .form(&form)
            .send()
    };
    // A viewer cannot make an ingest (or ack, or admin) key.
    for scope in ["ingest", "ack", "admin"] {
        let r = create(vec![
            ("name", "k"),
            ("scope", scope),
            ("host", "web-1"),
            ("password", "password-123456"),
        ])
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{scope}");
    }
    // The default scope is read.
    let r = create(vec![("name", "mine"), ("password", "password-123456")])
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let keys = h.store().list_api_keys(vera).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].scope, KeyScope::Read);
    // An admin key whose owner was demoted acts with the owner's role now.
    let olga = dash::add_user(&h, "olga", Role::Admin, "password-123456").await;
    let k = dash::key(&h, olga, "k", KeyScope::Admin, None).await;
    h.store().set_role(olga, Role::Viewer).await.unwrap();
    let r = c
        .get(format!("{base}/api/users"))
        .bearer_auth(&k)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_owns_time_and_never_drops_a_reused_id() {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let base = h.url();
    let c = client();
    let owner = dash::add_user(&h, "agent", Role::Operator, "password-123456").await;
    let key = dash::ingest_key(&h, owner, "web-1").await;
    let reader = dash::read_key(&h, owner).await;
    let now = sentinel::store::now_ns();
    // A far-future time is refused with a clear reason; the rest of the batch is stored.
    let mut future = dash::anomaly("web-1", "bob", "future-1", Level::Low);
    future.time_ns = 9_000_000_000_000_000_000;
    let ok = dash::anomaly("web-1", "bob", "ok-1", Level::Low);
    let snap_future = json!({ "system": { "hostname": "web-1" }, "time_ns": 9_000_000_000_000_000_000i64, "tag": "future" });
    let r: Value = push(
        &c,
        &base,
        &key,
        &json!({ "batch_id": "t1", "anomalies": [future, ok.clone()], "snapshots": [snap_future] }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["stored"], json!(["ok-1"]), "{r}");
    let refused = r["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 2, "{r}");
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap()
            .contains("ahead of the server's clock"),
        "{r}"
    );
    assert!(h.store().get_anomaly("future-1").await.unwrap().is_none());
    // Within the allowed skew, a snapshot stamped 4 minutes ahead is stored; a later one
    // with an earlier agent time is still the current one (receipt order).
    let ahead =
        json!({ "system": { "hostname": "web-1" }, "time_ns": now + 4 * MIN, "tag": "first" });
    push(
        &c,
        &base,
        &key,
        &json!({ "batch_id": "s1", "snapshots": [ahead] }),
    )
    .await;
    let later = json!({ "system": { "hostname": "web-1" }, "time_ns": now, "tag": "second" });
    push(
        &c,
        &base,
        &key,
        &json!({ "batch_id": "s2", "snapshots": [later] }),
    )
    .await;
    let host: Value = c
        .get(format!("{base}/api/hosts/web-1"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(host["host"]["snapshot"]["tag"], "second", "{host}");
    // 200 anomalies stamped 4 minutes ahead cannot bury a real one received after them.
    let burying: Vec<_> = (0..200)
        .map(|i| {
            let mut a = dash::anomaly("web-1", "bob", &format!("bury-{i}"), Level::Low);
            a.time_ns = now + 4 * MIN;
            a
        })
        .collect();
    push(
        &c,
        &base,
        &key,
        &json!({ "batch_id": "bury", "anomalies": burying }),
    )
    .await;
    let real = dash::anomaly("web-1", "bob", "real-1", Level::Critical);
    push(
        &c,
        &base,
        &key,
        &json!({ "batch_id": "real", "anomalies": [real] }),
    )
    .await;
    let feed: Value = c
        .get(format!("{base}/api/anomalies"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        feed["anomalies"][0]["id"], "real-1",
        "the feed follows receipt order"
    );
    // An id pushed in advance: a later anomaly with the same id and other content is stored
    // under a derived id, marked, audited, and the answer says so.
    let planted = dash::anomaly("web-1", "bob", "web-1-77", Level::Low);
    push(
        &c,
        &base,
        &key,
        &json!({ "batch_id": "plant", "anomalies": [planted] }),
    )
    .await;
    let mut crit = dash::anomaly("web-1", "root", "web-1-77", Level::Critical);
    crit.factors[0].reason = "root read /etc/shadow".into();
    let r: Value = push(
        &c,
        &base,
        &key,
        &json!({ "batch_id": "crit", "anomalies": [crit] }),
    )
    .await
    .json()
    .await
    .unwrap();
    let conflicts = r["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{r}");
    let kept = conflicts[0]["stored_as"].as_str().unwrap().to_string();
    assert_eq!(r["stored"], json!([kept.clone()]), "{r}");
    let got = h.store().get_anomaly(&kept).await.unwrap().expect("kept");
    assert_eq!(got.anomaly.level, Level::Critical);
    assert_eq!(got.conflict_of.as_deref(), Some("web-1-77"));
    assert_eq!(audited(&h, "ingest_id_conflict").await.len(), 1);
    // A plain retry is reported as a duplicate, not as stored.
    let r: Value = push(
        &c,
        &base,
        &key,
        &json!({ "batch_id": "retry", "anomalies": [ok] }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["duplicates"], json!(["ok-1"]), "{r}");
    assert_eq!(r["stored"], json!([]), "{r}");
    h.shutdown().await;
}

/// Reads a live stream until `pred` holds on what arrived, or the stream ends (false).
async fn read_until(
    stream: &mut reqwest::Response,
    seen: &mut String,
    pred: impl Fn(&str) -> bool,
) -> bool {
    while !pred(seen) {
        match tokio::time::timeout(Duration::from_secs(30), stream.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(_) => return false,
            Err(_) => panic!("no live event for 30 s; saw {seen:?}"),
        }
    }
    true
}

async fn open_live(c: &reqwest::Client, base: &str, auth: (&str, &str)) -> reqwest::Response {
    let mut rb = c.get(format!("{base}/api/live"));
    rb = match auth {
        ("cookie", v) => rb.header(COOKIE, v),
        (_, k) => rb.bearer_auth(k),
    };
    let mut s = rb.send().await.unwrap();
    assert_eq!(s.status(), StatusCode::OK);
    let mut seen = String::new();
    assert!(read_until(&mut s, &mut seen, |t| t.contains("event: hello")).await);
    s
}

/// Waits (bounded) for a stream to end; returns what arrived before the end.
async fn ends(mut stream: reqwest::Response, within: Duration) -> String {
    tokio::time::timeout(within, async {
        let mut rest = String::new();
        while let Ok(Some(chunk)) = stream.chunk().await {
            rest.push_str(&String::from_utf8_lossy(&chunk));
        }
        rest
    })
    .await
    .expect("the stream ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newline_id_is_refused_and_other_streams_keep_flowing() {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let base = h.url();
    let c = client();
    let owner = dash::add_user(&h, "agent", Role::Operator, "password-123456").await;
    let vera = dash::add_user(&h, "vera", Role::Viewer, "password-123456").await;
    let key = dash::ingest_key(&h, owner, "web-1").await;
    let (cookie, _) = dash::session(&h, vera).await;
    let mut a = open_live(&c, &base, ("cookie", &cookie)).await;
    let mut b = open_live(&c, &base, ("key", &dash::read_key(&h, vera).await)).await;
    for (i, bad) in ["evil\nid", "evil\rid", "evil\u{0}id"]
        .into_iter()
        .enumerate()
    {
        let r: Value = push(
            &c,
            &base,
            &key,
            &json!({ "batch_id": format!("bad-{i}"), "anomalies": [dash::anomaly("web-1", "bob", bad, Level::Critical)] }),
        )
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(r["stored"], json!([]), "{r}");
        assert!(
            r["refused"][0]["reason"]
                .as_str()
                .unwrap()
                .contains("control character"),
            "{r}"
        );
    }
    // A control character in a host or user name is refused too.
    let mut bad_user = dash::anomaly("web-1", "bob", "bad-user", Level::High);
    bad_user.principal.user = Some("bob\n<!channel>".into());
    let r: Value = push(
        &c,
        &base,
        &key,
        &json!({ "batch_id": "bu", "anomalies": [bad_user] }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["refused"].as_array().unwrap().len(), 1, "{r}");
    // Every open stream still delivers.
    push(
        &c,
        &base,
        &key,
        &json!({ "batch_id": "good", "anomalies": [dash::anomaly("web-1", "bob", "after-bad", Level::High)] }),
    )
    .await;
    for s in [&mut a, &mut b] {
        let mut seen = String::new();
        assert!(
            read_until(s, &mut seen, |t| t.contains("after-bad")).await,
            "a stream ended: {seen:?}"
        );
        assert!(!seen.contains("\"id\":\"evil"), "{seen:?}");
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_end_within_seconds_of_revocation_disabling_or_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let base = h.url();
    let c = client();
    let vera = dash::add_user(&h, "vera", Role::Viewer, "password-123456").await;
    // No new events are needed: the stream re-checks its credential by itself.
    let within = Duration::from_secs(10);
    // A deleted key.
    let k1 = dash::read_key(&h, vera).await;
    let s = open_live(&c, &base, ("key", &k1)).await;
    let id = h.store().list_api_keys(vera).await.unwrap()[0].id;
    assert!(h.store().delete_api_key(vera, id).await.unwrap());
    ends(s, within).await;
    // A disabled key.
    let k2 = dash::read_key(&h, vera).await;
    let s = open_live(&c, &base, ("key", &k2)).await;
    let id = h.store().list_api_keys(vera).await.unwrap()[0].id;
    h.store()
        .set_api_key_enabled(vera, id, false)
        .await
        .unwrap();
    ends(s, within).await;
    // A session that goes idle past its limit (its last use moved back 31 minutes).
    let now = sentinel::store::now_ns();
    let (cookie, _, sid) = dash::session_started_at(&h, vera, now).await;
    let s = open_live(&c, &base, ("cookie", &cookie)).await;
    h.store().touch_session(sid, now - 31 * MIN).await.unwrap();
    ends(s, within).await;
    // A disabled user's session.
    let (cookie, _, _) = dash::session_started_at(&h, vera, sentinel::store::now_ns()).await;
    let s = open_live(&c, &base, ("cookie", &cookie)).await;
    h.store().set_active(vera, false).await.unwrap();
    ends(s, within).await;
    h.shutdown().await;
}

fn totp_now(secret: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    auth::totp_code(secret, now).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_factor_and_key_changes_need_the_password_and_a_current_code() {
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    let base = h.url();
    let c = client();
    let id = dash::add_user(&h, "olga", Role::Operator, "password-123456").await;
    let (cookie, csrf) = dash::session(&h, id).await;
    let post = |path: &'static str, fields: Vec<(&'static str, String)>| {
        let mut form = vec![("csrf", csrf.clone())];
        form.extend(fields);
        c.post(format!("{base}{path}"))
            .header(COOKIE, &cookie)
            .form(&form)
            .send()
    };
    let pending = async |h: &sentinel::server::ServerHandle| {
        h.store()
            .list_sessions(Some(id))
            .await
            .unwrap()
            .into_iter()
            .any(|s| s.pending_totp.is_some())
    };
    // The session cookie alone cannot start enrolment.
    let r = post("/profile/totp/setup", vec![]).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(!pending(&h).await, "no secret was generated");
    // With the password it can.
    let r = post(
        "/profile/totp/setup",
        vec![("password", "password-123456".into())],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(pending(&h).await);
    // Now two-factor is on (set directly): re-enrolling, disabling and creating keys need a
    // current code as well as the password.
    let secret = auth::new_totp_secret().unwrap();
    h.store().set_totp(id, Some(&secret)).await.unwrap();
    for path in [
        "/profile/totp/setup",
        "/profile/totp/disable",
        "/profile/keys",
    ] {
        let r = post(
            path,
            vec![("password", "password-123456".into()), ("name", "k".into())],
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path} without a code");
    }
    assert!(
        h.store()
            .user_by_id(id)
            .await
            .unwrap()
            .unwrap()
            .totp_enabled
    );
    assert!(h.store().list_api_keys(id).await.unwrap().is_empty());
    let r = post(
        "/profile/keys",
        vec![
            ("password", "password-123456".into()),
            ("code", totp_now(&secret)),
            ("name", "with code".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(h.store().list_api_keys(id).await.unwrap().len(), 1);
    assert!(
        !audited(&h, "reauth_failed").await.is_empty(),
        "failures are audited"
    );
    // Current-password guessing is limited (10 checks per user per 15 minutes; 6 so far).
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = post(
            "/profile/password",
            vec![
                ("current", "wrong-guess-123".into()),
                ("new", "new-password-123".into()),
                ("confirm", "new-password-123".into()),
            ],
        )
        .await
        .unwrap();
        statuses.push(r.status());
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert!(!audited(&h, "reauth_rate_limited").await.is_empty());
    h.shutdown().await;
}
