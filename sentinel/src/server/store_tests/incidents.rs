//! Incident storage, on every backend.

use crate::incident::Incident;
use crate::model::{Explanation, Level};
use crate::server::incidents::tests::incident;
use crate::server::incidents::*;
use crate::server::store::Horizons;
use crate::server::store::IngestBatch;
use crate::server::store::ServerStore;

fn batch(id: &str, incidents: Vec<Incident>) -> IngestBatch {
    IngestBatch {
        batch_id: id.into(),
        incidents,
        ..Default::default()
    }
}

fn explanation(s: &str) -> Explanation {
    Explanation {
        summary: s.into(),
        likely_explanation: "x".into(),
        benign_alternatives: vec![],
        confidence: 0.5,
        evidence_ids: vec![],
        next_steps: vec![],
        source: "local".into(),
        warnings: vec![],
    }
}

pub(super) async fn later_states_replace_earlier_ones_and_never_go_backwards(s: &dyn ServerStore) {
    let out = s
        .ingest(&batch("b1", vec![incident("i", "h", 3, 10)]), 100)
        .await
        .unwrap();
    assert_eq!(out.incidents.stored, ["i"]);
    let out = s
        .ingest(&batch("b2", vec![incident("i", "h", 5, 10)]), 200)
        .await
        .unwrap();
    assert_eq!(out.incidents.updated, ["i"]);
    // An older state arriving late (a batch retried after a newer one went through).
    let out = s
        .ingest(&batch("b3", vec![incident("i", "h", 4, 10)]), 300)
        .await
        .unwrap();
    assert_eq!(out.incidents.stale, ["i"]);
    let out = s
        .ingest(&batch("b4", vec![incident("i", "h", 5, 10)]), 400)
        .await
        .unwrap();
    assert_eq!(out.incidents.duplicates, ["i"]);
    let got = s.get_incident("h", "i").await.unwrap().unwrap();
    assert_eq!(
        (
            got.incident.step_count,
            got.received_ns,
            got.first_received_ns
        ),
        (5, 200, 100)
    );
    // The same id on another host is another incident.
    assert!(s.get_incident("other", "i").await.unwrap().is_none());
    assert_eq!(s.count_incidents().await.unwrap(), 1);

    // Explanations: kept apart, replaced only by one of a later state.
    let mut e4 = incident("i", "h", 4, 10);
    e4.explanation = Some(explanation("four"));
    let out = s.ingest(&batch("b5", vec![e4]), 500).await.unwrap();
    assert_eq!(out.incidents.updated, ["i"], "first explanation");
    let got = s.get_incident("h", "i").await.unwrap().unwrap();
    assert_eq!(got.incident.step_count, 5, "the state did not go back");
    assert_eq!(got.explained_step_count, Some(4));
    let mut e3 = incident("i", "h", 3, 10);
    e3.explanation = Some(explanation("three"));
    let out = s.ingest(&batch("b6", vec![e3]), 600).await.unwrap();
    assert_eq!(out.incidents.stale, ["i"]);
    let got = s.get_incident("h", "i").await.unwrap().unwrap();
    assert_eq!(got.incident.explanation.unwrap().summary, "four");

    let p = s.purge(&Horizons::all(250, 0, 0, 0)).await.unwrap();
    assert_eq!(p.incidents, 1, "retention counts from the latest receipt");
    assert_eq!(s.count_incidents().await.unwrap(), 0);
}

pub(super) async fn pages_follow_a_cursor_in_either_order_with_filters(s: &dyn ServerStore) {
    for n in 0..7u32 {
        let mut i = incident(
            &format!("i{n}"),
            if n % 2 == 0 { "a" } else { "b" },
            2,
            1000 * n as i64,
        );
        i.score = [50, 90, 30, 90, 70, 10, 60][n as usize];
        i.level = Level::from_score(i.score);
        s.ingest(&batch(&format!("b{n}"), vec![i]), 100 + n as i64)
            .await
            .unwrap();
    }
    let all = async |order: IncidentOrder, host: Option<&str>| -> Vec<String> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let p = s
                .list_incidents(&IncidentFilter {
                    host: host.map(str::to_string),
                    order,
                    cursor,
                    limit: 2,
                    ..Default::default()
                })
                .await
                .unwrap();
            assert!(p.incidents.len() <= 2);
            out.extend(p.incidents.into_iter().map(|i| i.incident.id));
            match p.next_cursor {
                Some(c) => cursor = Cursor::parse(&c),
                None => break,
            }
        }
        out
    };
    assert_eq!(
        all(IncidentOrder::Recent, None).await,
        ["i6", "i5", "i4", "i3", "i2", "i1", "i0"]
    );
    assert_eq!(
        all(IncidentOrder::Score, None).await,
        ["i3", "i1", "i4", "i6", "i0", "i2", "i5"]
    );
    assert_eq!(
        all(IncidentOrder::Recent, Some("b")).await,
        ["i5", "i3", "i1"]
    );
    // An update moves an incident to the top of the recent list.
    s.ingest(&batch("u", vec![incident("i0", "a", 3, 0)]), 1000)
        .await
        .unwrap();
    assert_eq!(all(IncidentOrder::Recent, Some("a")).await[0], "i0");
    // Time range: incidents active in [2000, 4000] (first 1000n, last 1000n + 2).
    let p = s
        .list_incidents(&IncidentFilter {
            from_ns: Some(2000),
            to_ns: Some(4000),
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut ids: Vec<String> = p.incidents.into_iter().map(|i| i.incident.id).collect();
    ids.sort();
    assert_eq!(ids, ["i2", "i3", "i4"]);
    let high = s
        .list_incidents(&IncidentFilter {
            min_level: Some(Level::High),
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(high.incidents.len(), 4, "i0 was updated to a medium state");
}
