//! The people watching: dashboard readers (signed-in sessions paging `/api/anomalies`,
//! `/api/hosts`, a host's API record and its HTML page, one request a second each) and
//! live-feed clients (signed-in sessions holding `/api/live` open, reconnecting when the
//! server goes away, counting the anomalies streamed to them).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use reqwest::header::COOKIE;
use tokio::sync::watch;

use super::agents::local_addr;
use super::tally::Tally;

/// A reader's pause between two requests.
pub const READ_PAUSE: Duration = Duration::from_secs(1);

/// The viewer the readers sign in as, and its password.
pub const VIEWER: &str = "load-viewer";
pub const VIEWER_PASSWORD: &str = "load-viewer-password";

/// A client from the loopback address of simulated person `j` (after every agent's).
fn person_client(j: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .local_address(local_addr(1_000_000 + j))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Signs person `j` in through the login form: (client, session cookie).
pub async fn sign_in(base: &str, j: usize) -> anyhow::Result<(reqwest::Client, String)> {
    let c = person_client(j)?;
    let r = crate::dash::login(&c, base, VIEWER, VIEWER_PASSWORD).await;
    let cookie = crate::dash::session_cookie(&r)
        .with_context(|| format!("signing in failed: HTTP {}", r.status()))?;
    Ok((c, cookie))
}

/// Pages through the dashboard until `stop`.
pub async fn read(
    c: reqwest::Client,
    cookie: String,
    base: String,
    hosts: Arc<Vec<String>>,
    j: usize,
    tally: Arc<Tally>,
    mut stop: watch::Receiver<bool>,
) {
    let mut cursor: Option<String> = None;
    let mut k = 0usize;
    while !*stop.borrow() {
        let host = &hosts[(j * 7919 + k) % hosts.len().max(1)];
        let path = match k % 5 {
            0 => "/api/anomalies?limit=50".to_string(),
            1 => match &cursor {
                Some(cur) => format!("/api/anomalies?limit=50&cursor={cur}"),
                None => "/api/anomalies?limit=50&level=high".to_string(),
            },
            2 => "/api/hosts?limit=50".to_string(),
            3 => format!("/api/hosts/{host}"),
            _ => format!("/hosts/{host}"),
        };
        k += 1;
        let started = Instant::now();
        let r = c
            .get(format!("{base}{path}"))
            .header(COOKIE, &cookie)
            .send()
            .await;
        match r {
            Ok(r) => {
                let status = r.status().as_u16();
                let body = r.bytes().await;
                tally.record("dashboard read", Some(status), started.elapsed());
                if path.starts_with("/api/anomalies?limit=50")
                    && let Ok(b) = body
                {
                    cursor = serde_json::from_slice::<serde_json::Value>(&b)
                        .ok()
                        .and_then(|v| v["next_cursor"].as_str().map(percent));
                }
            }
            Err(_) => tally.record("dashboard read", None, started.elapsed()),
        }
        tokio::select! {
            _ = tokio::time::sleep(READ_PAUSE) => {}
            _ = stop.wait_for(|v| *v) => {}
        }
    }
}

/// A cursor as a query value.
fn percent(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Holds the live feed open until `stop`, reconnecting when it ends; counts the anomaly
/// frames received into `frames`.
pub async fn watch_live(
    c: reqwest::Client,
    cookie: String,
    base: String,
    tally: Arc<Tally>,
    frames: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let started = Instant::now();
        let r = c
            .get(format!("{base}/api/live"))
            .header(COOKIE, &cookie)
            .timeout(Duration::from_secs(24 * 3600))
            .send()
            .await;
        match r {
            Ok(r) => {
                tally.record("live connect", Some(r.status().as_u16()), started.elapsed());
                let mut r = r;
                let mut tail = String::new();
                loop {
                    let chunk = tokio::select! {
                        c = r.chunk() => c,
                        _ = stop.wait_for(|v| *v) => Ok(None),
                    };
                    let Ok(Some(chunk)) = chunk else { break };
                    tail.push_str(&String::from_utf8_lossy(&chunk));
                    // Whole lines only; the rest waits for the next chunk.
                    let cut = tail.rfind('\n').map_or(0, |i| i + 1);
                    let n = tail[..cut]
                        .lines()
                        .filter(|l| *l == "event: anomaly")
                        .count();
                    frames.fetch_add(n as u64, Ordering::Relaxed);
                    tail.drain(..cut);
                }
            }
            Err(_) => tally.record("live connect", None, started.elapsed()),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop.wait_for(|v| *v) => {}
        }
    }
}
