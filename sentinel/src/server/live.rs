//! The live feed: Server-Sent Events carrying each newly ingested anomaly (as the same JSON
//! the API returns) to every open browser whose filters match. A stream ends when its
//! session is revoked or expires, checked on every event and every 30 s.

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use super::access::Actor;
use super::web::FeedQuery;

fn still_valid(st: &AppState, actor: &Actor) -> bool {
    match actor.session_id() {
        Some(id) => st
            .store
            .session_by_id(id)
            .ok()
            .flatten()
            .is_some_and(|s| s.user_active),
        None => true,
    }
}

pub async fn stream(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Query(q): Query<FeedQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let filter = q.filter(0);
    let rx = st.live.subscribe();
    let hello =
        futures_util::stream::once(async { Ok(Event::default().event("hello").data("{}")) });
    let events = futures_util::stream::unfold(
        (rx, st, actor, filter),
        |(mut rx, st, actor, filter)| async move {
            let mut check = tokio::time::interval(Duration::from_secs(30));
            check.tick().await;
            loop {
                tokio::select! {
                    msg = rx.recv() => match msg {
                        Ok(a) => {
                            if !still_valid(&st, &actor) {
                                return None;
                            }
                            if !filter.matches(&a.anomaly) {
                                continue;
                            }
                            let ev = match serde_json::to_string(&*a) {
                                Ok(j) => Event::default().event("anomaly").id(a.anomaly.id.clone()).data(j),
                                Err(_) => continue,
                            };
                            return Some((Ok(ev), (rx, st, actor, filter)));
                        }
                        // A slow browser missed some: tell it to reload rather than silently drop.
                        Err(RecvError::Lagged(n)) => {
                            let ev = Event::default().event("lagged").data(n.to_string());
                            return Some((Ok(ev), (rx, st, actor, filter)));
                        }
                        Err(RecvError::Closed) => return None,
                    },
                    _ = check.tick() => {
                        if !still_valid(&st, &actor) {
                            return None;
                        }
                    }
                }
            }
        },
    );
    Sse::new(futures_util::StreamExt::chain(hello, events)).keep_alive(KeepAlive::default())
}
