//! Verdict storage and delivery, on every backend.

use crate::detect::feedback::{Scope, Verdict};
use crate::server::feedback::*;
use crate::server::store::{DbError, ServerStore};

fn new<'a>(host: &'a str, target: &'a str) -> NewVerdict<'a> {
    NewVerdict {
        host,
        target,
        kind: TargetKind::Anomaly,
        verdict: Verdict::Benign,
        scope: Scope::Principal,
        note: Some("ok"),
        by: "olga",
        now_ns: 10,
    }
}

fn ack(id: i64, action: Action) -> Ack {
    Ack {
        id,
        action,
        error: None,
    }
}

pub(super) async fn verdicts_are_delivered_to_their_host_only_in_order_and_once(
    s: &dyn ServerStore,
) {
    let a = s.add_verdict(&new("web", "web-1")).await.unwrap();
    assert!(
        matches!(
            s.add_verdict(&new("web", "web-1")).await,
            Err(DbError::Conflict(_))
        ),
        "one verdict in force per target"
    );
    let b = s.add_verdict(&new("db", "db-1")).await.unwrap();
    let web = s.pending_verdicts("web").await.unwrap();
    assert_eq!(web.len(), 1);
    assert_eq!((web[0].id, web[0].action), (a, Action::Give));
    // Another host's acknowledgement changes nothing here.
    assert_eq!(
        s.ack_verdicts("web", &[ack(b, Action::Give)], 20)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.ack_verdicts("web", &[ack(a, Action::Give)], 20)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.ack_verdicts("web", &[ack(a, Action::Give)], 21)
            .await
            .unwrap(),
        0
    );
    assert!(s.pending_verdicts("web").await.unwrap().is_empty());
    assert_eq!(
        s.get_verdict(a).await.unwrap().unwrap().delivered_ns,
        Some(20)
    );
    // Undo, then a new verdict on the same target: delivered in that order.
    assert!(s.undo_verdict(a, "olga", 30).await.unwrap());
    assert!(!s.undo_verdict(a, "olga", 31).await.unwrap(), "undone once");
    let mut again = new("web", "web-1");
    again.verdict = Verdict::Malicious;
    again.now_ns = 40;
    let c = s.add_verdict(&again).await.unwrap();
    let order: Vec<(i64, Action)> = s
        .pending_verdicts("web")
        .await
        .unwrap()
        .iter()
        .map(|d| (d.id, d.action))
        .collect();
    assert_eq!(order, [(a, Action::Undo), (c, Action::Give)]);
    let refused = Ack {
        id: c,
        action: Action::Give,
        error: Some("no anomaly or incident web-1 in the store".into()),
    };
    s.ack_verdicts("web", &[ack(a, Action::Undo), refused], 50)
        .await
        .unwrap();
    let v = s.get_verdict(c).await.unwrap().unwrap();
    assert!(
        v.delivery_words().starts_with("refused by the agent"),
        "{v:?}"
    );
    let list = s
        .list_verdicts(&VerdictFilter {
            host: Some("web".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        list.iter().map(|v| v.id).collect::<Vec<_>>(),
        [c, a],
        "newest first"
    );
    assert_eq!(list[1].undo_delivered_ns, Some(50));
}
