//! Fleet test helpers (tests/server_fleet*.rs): tokens through the real `sentinel host token`,
//! enrolment through the real `sentinel enroll`, and JSON GETs with a key.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::Value;

use crate::{Run, sentinel};

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `sentinel host`/`user` arguments naming the database a test server runs on: its
/// PostgreSQL database (`SENTINEL_TEST_DB=postgres`) or its SQLite file.
pub fn db_args(h: &sentinel::server::ServerHandle) -> Vec<String> {
    match &h.state.cfg.database {
        Some(url) => vec!["--database".into(), url.clone()],
        None => vec!["--db".into(), h.state.cfg.db.display().to_string()],
    }
}

/// A token made with the real `sentinel host token` command on the database of a running
/// test server, whichever backend it is.
pub fn cli_token_on(h: &sentinel::server::ServerHandle, extra: &[&str]) -> String {
    let db = db_args(h);
    let mut args = vec!["host", db[0].as_str(), db[1].as_str(), "token"];
    args.extend_from_slice(extra);
    let r = sentinel(&args);
    assert_eq!(r.code, 0, "sentinel host token: {}", r.stderr);
    let t = r.stdout.trim().to_string();
    assert!(t.starts_with("snt_enr_"), "{t}");
    t
}

/// `sentinel enroll URL --token T --host H --config CFG`.
pub fn enroll(url: &str, token: &str, host: &str, cfg: &Path) -> Run {
    sentinel(&[
        "enroll",
        url,
        "--token",
        token,
        "--host",
        host,
        "--config",
        cfg.to_str().unwrap(),
    ])
}

pub async fn get(c: &reqwest::Client, url: &str, key: &str) -> (StatusCode, Value) {
    let r = c.get(url).bearer_auth(key).send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}
