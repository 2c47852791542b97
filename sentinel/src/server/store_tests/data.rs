//! Ingest, anomalies, hosts, accounts and retention, on every backend.

use crate::model::{Anomaly, Factor, Level, Principal};
use crate::server::store::Horizons;
use crate::server::store::{AnomalyFilter, IngestBatch, NewSession};
use crate::server::store::{DbError, Role, ServerStore};

pub(crate) fn anomaly(id: &str, host: &str, level: Level, det: &str, time_ns: i64) -> Anomaly {
    Anomaly {
        id: id.into(),
        host: host.into(),
        time_ns,
        principal: Principal {
            uid: 1000,
            user: Some("bob".into()),
            session: None,
        },
        chain: vec![],
        score: 50,
        level,
        factors: vec![Factor {
            detection: det.into(),
            reason: "r".into(),
            weight: 50,
            evidence: vec![],
        }],
        evidence: vec![],
        fingerprint: "f".into(),
        explanation: None,
    }
}

fn batch(id: &str, anomalies: Vec<Anomaly>) -> IngestBatch {
    IngestBatch {
        batch_id: id.into(),
        anomalies,
        ..Default::default()
    }
}

pub(super) async fn ingest_is_idempotent_by_batch_and_by_anomaly_id(s: &dyn ServerStore) {
    let out = s
        .ingest(
            &batch("b1", vec![anomaly("a", "h", Level::High, "x", 5)]),
            10,
        )
        .await
        .unwrap();
    assert_eq!((out.duplicate, out.new.len()), (false, 1));
    assert!(
        s.ingest(
            &batch("b1", vec![anomaly("a", "h", Level::High, "x", 5)]),
            11
        )
        .await
        .unwrap()
        .duplicate
    );
    let again = s
        .ingest(
            &batch("b2", vec![anomaly("a", "h", Level::High, "x", 5)]),
            12,
        )
        .await
        .unwrap();
    assert!(
        !again.duplicate && again.new.is_empty(),
        "same anomaly id in a new batch"
    );
    assert_eq!(s.count_anomalies().await.unwrap(), 1);
}

pub(super) async fn a_reused_id_with_other_content_is_kept_as_a_conflict_never_dropped(
    s: &dyn ServerStore,
) {
    // An attacker pushes the id in advance, with harmless content.
    let planted = anomaly("web-1-1", "web-1", Level::Low, "x", 5);
    s.ingest(&batch("b1", vec![planted]), 10).await.unwrap();
    let real = anomaly("web-1-1", "web-1", Level::Critical, "credential_access", 6);
    let out = s
        .ingest(&batch("b2", vec![real.clone()]), 11)
        .await
        .unwrap();
    assert_eq!(out.conflicts.len(), 1, "{out:?}");
    let kept = &out.conflicts[0].stored_as;
    assert!(kept.starts_with("web-1-1~"), "{kept}");
    assert_eq!(out.stored, vec![kept.clone()]);
    let got = s.get_anomaly(kept).await.unwrap().unwrap();
    assert_eq!(got.anomaly.level, Level::Critical);
    assert_eq!(got.conflict_of.as_deref(), Some("web-1-1"));
    // The same conflicting record again is a duplicate, not a second conflict.
    let again = s
        .ingest(&batch("b3", vec![real.clone()]), 12)
        .await
        .unwrap();
    assert!(again.new.is_empty() && again.conflicts.is_empty());
    // A retry of the original (an explanation added later) is a duplicate.
    let out = s
        .ingest(
            &batch("b4", vec![anomaly("web-1-1", "web-1", Level::Low, "x", 5)]),
            13,
        )
        .await
        .unwrap();
    assert_eq!(out.duplicates, vec!["web-1-1".to_string()]);
    assert_eq!(s.count_anomalies().await.unwrap(), 2);
}

pub(super) async fn the_feed_follows_receipt_order_not_agent_time(s: &dyn ServerStore) {
    let future = anomaly("f", "h", Level::Low, "x", i64::MAX / 2);
    s.ingest(&batch("b1", vec![future]), 100).await.unwrap();
    s.ingest(
        &batch("b2", vec![anomaly("r", "h", Level::High, "x", 50)]),
        200,
    )
    .await
    .unwrap();
    let ids: Vec<String> = s
        .list_anomalies(&AnomalyFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.anomaly.id)
        .collect();
    assert_eq!(ids, ["r", "f"]);
    let p = s.purge(&Horizons::all(150, 0, 0, 0)).await.unwrap();
    assert_eq!(p.anomalies, 1, "retention counts from receipt");
    assert!(s.get_anomaly("f").await.unwrap().is_none());
}

pub(super) async fn filters_acks_and_hosts(s: &dyn ServerStore) {
    let now = 100 * 86_400_000_000_000i64;
    s.ingest(
        &batch(
            "b",
            vec![
                anomaly("a1", "web", Level::Low, "exec_from_tmp", now - 10),
                anomaly("a2", "web", Level::Critical, "credential_access", now - 5),
                anomaly("a3", "db", Level::High, "exec_from_tmp", now - 1),
            ],
        ),
        now,
    )
    .await
    .unwrap();
    let ids = async |f: AnomalyFilter| -> Vec<String> {
        s.list_anomalies(&f)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.anomaly.id)
            .collect()
    };
    assert_eq!(ids(AnomalyFilter::default()).await, ["a3", "a2", "a1"]);
    assert_eq!(
        ids(AnomalyFilter {
            host: Some("web".into()),
            ..Default::default()
        })
        .await,
        ["a2", "a1"]
    );
    assert_eq!(
        ids(AnomalyFilter {
            level: Some(Level::High),
            ..Default::default()
        })
        .await,
        ["a3", "a2"]
    );
    assert_eq!(
        ids(AnomalyFilter {
            detection: Some("exec_from_tmp".into()),
            ..Default::default()
        })
        .await,
        ["a3", "a1"]
    );
    assert_eq!(
        ids(AnomalyFilter {
            detection: Some("exec".into()),
            ..Default::default()
        })
        .await,
        Vec::<String>::new()
    );
    assert!(s.ack_anomaly("a2", "olga", now).await.unwrap());
    assert!(
        !s.ack_anomaly("a2", "olga", now).await.unwrap(),
        "acknowledged once"
    );
    assert_eq!(
        ids(AnomalyFilter {
            unacked: Some(true),
            ..Default::default()
        })
        .await,
        ["a3", "a1"]
    );
    let web = s.get_host("web", now).await.unwrap().unwrap();
    assert_eq!(
        (web.level_24h, web.anomalies_24h, web.unacked),
        (Some(Level::Critical), 2, 1)
    );
    assert_eq!(s.ack_host("web", "olga", now).await.unwrap(), 1);
    let hosts: Vec<_> = s
        .list_hosts(now)
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.name, h.level_24h, h.anomalies_24h, h.unacked))
        .collect();
    assert_eq!(
        hosts,
        [
            ("db".to_string(), Some(Level::High), 1, 1),
            ("web".to_string(), Some(Level::Critical), 2, 0)
        ],
        "the host list in one query, with each host's own figures"
    );
    assert_eq!(
        s.detections().await.unwrap(),
        ["credential_access", "exec_from_tmp"]
    );
}

pub(super) async fn retention_drops_old_data_and_dead_sessions(s: &dyn ServerStore) {
    s.ingest(
        &batch("old", vec![anomaly("a", "gone", Level::Low, "x", 1)]),
        1,
    )
    .await
    .unwrap();
    s.ingest(
        &batch("new", vec![anomaly("b", "here", Level::Low, "x", 1000)]),
        1000,
    )
    .await
    .unwrap();
    let u = s.create_user("u", "h", Role::Viewer, 0).await.unwrap();
    let sess = |hash: &str, t| NewSession {
        token_hash: hash.into(),
        user_id: u,
        csrf: "c".into(),
        mfa_pending: false,
        now_ns: t,
        ip: "i".into(),
        user_agent: "a".into(),
    };
    s.create_session(&sess("t1", 1)).await.unwrap();
    s.create_session(&sess("t2", 1000)).await.unwrap();
    let p = s.purge(&Horizons::all(500, 500, 500, 0)).await.unwrap();
    assert_eq!((p.anomalies, p.sessions), (1, 1));
    assert_eq!(s.count_anomalies().await.unwrap(), 1);
    assert!(s.get_host("gone", 1000).await.unwrap().is_none());
    assert!(s.session_by_token_hash("t2").await.unwrap().is_some());
}

pub(super) async fn lockout_totp_steps_and_recovery_codes(s: &dyn ServerStore) {
    let u = s.create_user("u", "h", Role::Viewer, 0).await.unwrap();
    assert!(matches!(
        s.create_user("u", "h", Role::Viewer, 0).await,
        Err(DbError::Conflict(_))
    ));
    for _ in 0..2 {
        s.login_failed(u, 3, 99).await.unwrap();
    }
    assert_eq!(s.user_by_id(u).await.unwrap().unwrap().locked_until_ns, 0);
    s.login_failed(u, 3, 99).await.unwrap();
    let user = s.user_by_id(u).await.unwrap().unwrap();
    assert_eq!((user.locked_until_ns, user.failed_logins), (99, 0));
    s.set_totp(u, Some("SECRET")).await.unwrap();
    assert!(s.consume_totp_step(u, 10).await.unwrap());
    assert!(
        !s.consume_totp_step(u, 10).await.unwrap(),
        "a step is used once"
    );
    assert!(
        !s.consume_totp_step(u, 9).await.unwrap(),
        "older steps are spent too"
    );
    assert!(s.consume_totp_step(u, 11).await.unwrap());
    s.set_recovery_codes(u, &["h1".into(), "h2".into()])
        .await
        .unwrap();
    assert!(s.use_recovery_code(u, "h1").await.unwrap());
    assert!(!s.use_recovery_code(u, "h1").await.unwrap());
    assert_eq!(s.recovery_codes_left(u).await.unwrap(), 1);
    s.set_totp(u, None).await.unwrap();
    assert_eq!(
        s.recovery_codes_left(u).await.unwrap(),
        0,
        "disabling 2FA drops the codes"
    );
}

pub(super) async fn retention_is_per_table(s: &dyn ServerStore) {
    let b = IngestBatch {
        batch_id: "b".into(),
        anomalies: vec![anomaly("a", "web", Level::Low, "x", 1)],
        incidents: vec![crate::server::incidents::tests::incident("i", "web", 2, 1)],
        snapshots: vec![serde_json::json!({"hostname": "web"})],
        fingerprints: vec![serde_json::json!({"host": "web"})],
        ..Default::default()
    };
    s.ingest(&b, 100).await.unwrap();
    // Snapshots and fingerprints expire; anomalies and incidents are kept longer.
    let h = Horizons {
        anomalies: 50,
        incidents: 50,
        snapshots: 200,
        fingerprints: 200,
        ..Horizons::all(0, 0, 0, 0)
    };
    let p = s.purge(&h).await.unwrap();
    assert_eq!(
        (p.anomalies, p.incidents, p.snapshots, p.fingerprints),
        (0, 0, 1, 1)
    );
    assert!(s.get_anomaly("a").await.unwrap().is_some());
    assert!(s.get_incident("web", "i").await.unwrap().is_some());
    // The host stays while any of its data may: its anomaly is still there.
    assert!(s.get_host("web", 100).await.unwrap().is_some());
    let p = s
        .purge(&Horizons {
            anomalies: 200,
            ..h
        })
        .await
        .unwrap();
    assert_eq!((p.anomalies, p.incidents), (1, 0));
    assert_eq!(s.count_incidents().await.unwrap(), 1);
}

/// What SQLite's single writer made atomic holds under concurrency on every backend: a batch
/// retried many times at once is stored once, an anomaly id pushed in many batches at once is
/// stored once, and concurrent failed logins are each counted.
pub(super) async fn concurrent_retries_store_once_and_counters_count(s: &dyn ServerStore) {
    let same = batch("b-same", vec![anomaly("a", "web", Level::High, "x", 1)]);
    let outs = futures_util::future::join_all((0..8).map(|_| s.ingest(&same, 10))).await;
    let fresh = outs
        .iter()
        .filter(|o| !o.as_ref().unwrap().duplicate)
        .count();
    assert_eq!(fresh, 1, "one of eight identical batches is new");
    let batches: Vec<IngestBatch> = (0..8)
        .map(|i| {
            batch(
                &format!("b-{i}"),
                vec![anomaly("z", "web", Level::Low, "y", 2)],
            )
        })
        .collect();
    let outs = futures_util::future::join_all(batches.iter().map(|b| s.ingest(b, 11))).await;
    let stored: usize = outs.iter().map(|o| o.as_ref().unwrap().stored.len()).sum();
    assert_eq!(stored, 1, "one anomaly id in eight batches is stored once");
    assert_eq!(s.count_anomalies().await.unwrap(), 2);
    let u = s.create_user("u", "h", Role::Viewer, 0).await.unwrap();
    futures_util::future::join_all((0..4).map(|_| s.login_failed(u, 100, 99))).await;
    assert_eq!(s.user_by_id(u).await.unwrap().unwrap().failed_logins, 4);
    let steps = futures_util::future::join_all((0..6).map(|_| s.consume_totp_step(u, 7))).await;
    assert_eq!(
        steps.into_iter().filter(|r| *r.as_ref().unwrap()).count(),
        1,
        "a TOTP step is spent once however many requests race for it"
    );
}
