//! Enrolment, heartbeats and agent states, paged lists: on every backend.

use crate::server::fleet::*;
use crate::server::store::{IngestBatch, ServerStore};

const S: i64 = 1_000_000_000;

async fn token(s: &dyn ServerStore, secret: &str, uses: i64, expires: Option<i64>) -> i64 {
    s.create_enrol_token(&NewEnrolToken {
        token_hash: &crate::server::auth::token_hash(secret),
        prefix: "snt_enr_x",
        note: "",
        created_by: "cli",
        now_ns: 0,
        expires_ns: expires,
        max_uses: uses,
    })
    .await
    .unwrap()
}

async fn enrol(
    s: &dyn ServerStore,
    secret: &str,
    host: &str,
    key: &str,
    now: i64,
) -> Result<Enrolled, EnrolRefusal> {
    s.enroll(&Enrolment {
        token_hash: &crate::server::auth::token_hash(secret),
        host,
        key_prefix: "snt_x",
        key_hash: key,
        now_ns: now,
    })
    .await
    .unwrap()
}

pub(super) async fn enrolment_spends_tokens_rotates_keys_and_refuses_retired_hosts(
    s: &dyn ServerStore,
) {
    token(s, "t1", 2, Some(100 * S)).await;
    assert_eq!(
        enrol(s, "nope", "web-1", "k0", S).await,
        Err(EnrolRefusal::UnknownToken)
    );
    let first = enrol(s, "t1", "web-1", "k1", S).await.unwrap();
    assert_eq!(first.revoked_key, None);
    let (k, owner) = s.api_key_by_hash("k1").await.unwrap().unwrap();
    assert_eq!(
        (k.host.as_deref(), owner.username.as_str()),
        (Some("web-1"), SERVICE_USER)
    );
    // Re-enrolment rotates: the old key is gone.
    let second = enrol(s, "t1", "web-1", "k2", 2 * S).await.unwrap();
    assert_eq!(second.revoked_key, Some(first.key_id));
    assert!(s.api_key_by_hash("k1").await.unwrap().is_none());
    assert_eq!(s.agent("web-1").await.unwrap().unwrap().enrolments, 2);
    assert_eq!(
        enrol(s, "t1", "web-2", "k3", 3 * S).await,
        Err(EnrolRefusal::TokenUsedUp(2))
    );
    assert!(
        s.api_key_by_hash("k3").await.unwrap().is_none(),
        "nothing written"
    );
    token(s, "t2", 5, Some(10 * S)).await;
    assert_eq!(
        enrol(s, "t2", "web-2", "k4", 10 * S).await,
        Err(EnrolRefusal::TokenExpired)
    );
    let id = token(s, "t3", 5, None).await;
    assert!(s.revoke_enrol_token(id, 4 * S).await.unwrap());
    assert_eq!(
        enrol(s, "t3", "web-2", "k5", 4 * S).await,
        Err(EnrolRefusal::TokenRevoked)
    );
    // Retiring revokes the key and bars the name.
    token(s, "t4", 5, None).await;
    let r = s.retire_host("web-1", 5 * S).await.unwrap().unwrap();
    assert_eq!(r.revoked_keys, 1);
    assert!(s.api_key_by_hash("k2").await.unwrap().is_none());
    assert_eq!(
        enrol(s, "t4", "web-1", "k6", 6 * S).await,
        Err(EnrolRefusal::Retired("web-1".into()))
    );
    assert!(s.retire_host("never-seen", 6 * S).await.unwrap().is_none());
    // A disabled service account stops enrolment with a reason.
    let svc = s.user_by_name(SERVICE_USER).await.unwrap().unwrap();
    s.set_active(svc.id, false).await.unwrap();
    assert_eq!(
        enrol(s, "t4", "db-1", "k7", 6 * S).await,
        Err(EnrolRefusal::ServiceAccount)
    );
    assert_eq!(s.list_enrol_tokens().await.unwrap()[3].uses, 2);
}

async fn beat(
    s: &dyn ServerStore,
    host: &str,
    now: i64,
    lost: u64,
    failed: usize,
) -> Option<StateChange> {
    let v = Vitals {
        lost_total: lost,
        hooks_failed: vec!["x".into(); failed],
        ..Default::default()
    };
    s.record_heartbeat(&BeatRecord {
        host,
        now_ns: now,
        interval_secs: 10,
        vitals: &v,
        data: "{\"host\":\"h\"}",
    })
    .await
    .unwrap()
}

pub(super) async fn heartbeats_move_states_once_per_change(s: &dyn ServerStore) {
    let c = beat(s, "h", 100 * S, 0, 0).await.unwrap();
    assert_eq!((c.from, c.to), (AgentState::Unknown, AgentState::Healthy));
    assert_eq!(
        beat(s, "h", 110 * S, 0, 0).await,
        None,
        "no change, no event"
    );
    assert_eq!(
        s.get_host("h", 110 * S)
            .await
            .unwrap()
            .unwrap()
            .last_seen_ns,
        110 * S,
        "heartbeats move last seen"
    );
    assert!(s.mark_stale(139 * S).await.unwrap().is_empty(), "not yet");
    let stale = s.mark_stale(141 * S).await.unwrap();
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].to, AgentState::Stale);
    assert!(s.mark_stale(200 * S).await.unwrap().is_empty(), "once");
    let back = beat(s, "h", 201 * S, 0, 0).await.unwrap();
    assert_eq!(
        (back.from, back.to),
        (AgentState::Stale, AgentState::Healthy)
    );
    let blind = beat(s, "h", 211 * S, 3, 0).await.unwrap();
    assert_eq!(blind.to, AgentState::Blind);
    assert!(blind.reason.contains("3 events lost"), "{}", blind.reason);
    let ok = beat(s, "h", 221 * S, 3, 0).await.unwrap();
    assert_eq!(ok.to, AgentState::Healthy, "no new losses");
    assert_eq!(
        beat(s, "h", 231 * S, 3, 1).await.unwrap().to,
        AgentState::Blind
    );
    let a = s.agent("h").await.unwrap().unwrap();
    assert_eq!(a.heartbeat.unwrap()["host"], "h");
    assert_eq!(a.state_since_ns, 231 * S);
}

pub(super) async fn pages_follow_cursors_and_time_ranges(s: &dyn ServerStore) {
    let now = 100 * 86_400 * S;
    let mut anomalies = Vec::new();
    for i in 0..7 {
        let mut a: crate::model::Anomaly = serde_json::from_value(serde_json::json!({
            "id": format!("a{i}"), "host": format!("h{}", i % 3), "time_ns": now - 100 + i,
            "principal": { "uid": 1, "user": "u", "session": null },
            "chain": [], "score": 10, "level": "low", "factors": [], "evidence": [],
            "fingerprint": "f", "explanation": null
        }))
        .unwrap();
        a.score = 10;
        anomalies.push(a);
    }
    s.ingest(
        &IngestBatch {
            batch_id: "b".into(),
            anomalies,
            ..Default::default()
        },
        now,
    )
    .await
    .unwrap();
    let mut f = AnomalyPageFilter {
        limit: 3,
        ..Default::default()
    };
    let mut seen = Vec::new();
    loop {
        let p = s.list_anomalies_page(&f).await.unwrap();
        seen.extend(p.anomalies.iter().map(|a| a.anomaly.id.clone()));
        match p.next_cursor {
            Some(c) => f.cursor = AnomalyCursor::parse(&c),
            None => break,
        }
    }
    assert_eq!(seen, ["a6", "a5", "a4", "a3", "a2", "a1", "a0"]);
    let ranged = s
        .list_anomalies_page(&AnomalyPageFilter {
            from_ns: Some(now - 98),
            to_ns: Some(now - 96),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<&str> = ranged
        .anomalies
        .iter()
        .map(|a| a.anomaly.id.as_str())
        .collect();
    assert_eq!(ids, ["a4", "a3", "a2"]);
    let p1 = s
        .list_hosts_page(
            &HostPageFilter {
                limit: 2,
                ..Default::default()
            },
            now,
        )
        .await
        .unwrap();
    let names: Vec<&str> = p1.hosts.iter().map(|h| h.host.name.as_str()).collect();
    assert_eq!(names, ["h0", "h1"]);
    assert_eq!(p1.hosts[0].host.anomalies_24h, 3);
    let p2 = s
        .list_hosts_page(
            &HostPageFilter {
                limit: 2,
                cursor: p1.next_cursor,
                ..Default::default()
            },
            now,
        )
        .await
        .unwrap();
    assert_eq!(p2.hosts.len(), 1);
    assert_eq!(p2.next_cursor, None);
    beat(s, "h2", now, 0, 0).await;
    let healthy = s
        .list_hosts_page(
            &HostPageFilter {
                limit: 10,
                state: Some(AgentState::Healthy),
                ..Default::default()
            },
            now,
        )
        .await
        .unwrap();
    assert_eq!(healthy.hosts.len(), 1);
    assert_eq!(
        healthy.hosts[0].agent.as_ref().unwrap().state,
        AgentState::Healthy
    );
}
