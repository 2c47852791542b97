//! The live feed: Server-Sent Events carrying each newly ingested anomaly (as the same JSON
//! the API returns) to every open browser whose filters match. A stream ends within seconds
//! when its session is revoked, idles out or expires, or its API key is deleted, disabled or
//! expires (checked on every event and every `RECHECK`). Frames are built so that no record
//! can break them: ids with control characters are never used as SSE ids (ingest refuses
//! them anyway), and a frame that cannot be built is skipped instead of panicking.

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use super::access::{self, Actor};
use super::store::StoredAnomaly;
use super::web::FeedQuery;

/// How often an idle stream re-checks its credential.
pub const RECHECK: Duration = Duration::from_secs(2);

async fn still_valid(st: &AppState, actor: &Actor) -> bool {
    let now = crate::store::now_ns();
    if let Some(id) = actor.session_id() {
        return st
            .store
            .session_by_id(id)
            .await
            .ok()
            .flatten()
            .is_some_and(|s| access::session_problem(st, &s, now).is_none());
    }
    if let Some(id) = actor.key_id() {
        return st
            .store
            .api_key_by_id(id)
            .await
            .ok()
            .flatten()
            .is_some_and(|(k, owner)| {
                access::key_problem(&k, &owner, now).is_none()
                    && k.scope.acts_as(owner.role).is_some()
            });
    }
    // Demo visitors hold no credential to revoke.
    true
}

/// One `anomaly` frame, or None when the record cannot be framed safely.
fn frame(a: &StoredAnomaly) -> Option<Event> {
    let json = serde_json::to_string(a).ok()?;
    let id = a.anomaly.id.as_str();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let ev = Event::default().event("anomaly");
        // serde_json escapes every control character in the data; an SSE id may not hold
        // any (axum panics on a newline), so such an id is simply not sent.
        let ev = if id.chars().any(char::is_control) {
            ev
        } else {
            ev.id(id)
        };
        ev.data(json)
    }))
    .ok()
}

pub async fn stream(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Query(q): Query<FeedQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let filter = q.filter(0);
    let rx = st.live.subscribe();
    // Counted open for as long as the stream lives (the guard goes with its state).
    let open = st.metrics.stream_opened();
    let hello =
        futures_util::stream::once(async { Ok(Event::default().event("hello").data("{}")) });
    let events = futures_util::stream::unfold(
        (rx, st, actor, filter, open),
        |(mut rx, st, actor, filter, open)| async move {
            let mut check = tokio::time::interval(RECHECK);
            check.tick().await;
            loop {
                tokio::select! {
                    msg = rx.recv() => match msg {
                        Ok(a) => {
                            if !still_valid(&st, &actor).await {
                                return None;
                            }
                            if !filter.matches(&a.anomaly) {
                                continue;
                            }
                            let Some(ev) = frame(&a) else {
                                tracing::warn!("live feed: anomaly {:?} could not be framed; skipped", a.anomaly.id);
                                continue;
                            };
                            return Some((Ok(ev), (rx, st, actor, filter, open)));
                        }
                        // A slow browser missed some: tell it to reload rather than silently drop.
                        Err(RecvError::Lagged(n)) => {
                            let ev = Event::default().event("lagged").data(n.to_string());
                            return Some((Ok(ev), (rx, st, actor, filter, open)));
                        }
                        Err(RecvError::Closed) => return None,
                    },
                    _ = check.tick() => {
                        if !still_valid(&st, &actor).await {
                            return None;
                        }
                    }
                }
            }
        },
    );
    Sse::new(futures_util::StreamExt::chain(hello, events)).keep_alive(KeepAlive::default())
}
