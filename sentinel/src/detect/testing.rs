//! Helpers for the detection unit tests: an engine on an in-memory store with a given user
//! database, and events written as the JSON lines `sentinel run --json` prints.

use super::config::DetectConfig;
use super::engine::{Engine, EngineOptions};
use crate::event::Event;
use crate::store::Store;

/// A recorded-stream engine (no /proc) with `passwd` as its user database.
pub fn engine(passwd: &str) -> Engine {
    Engine::with_options(
        &DetectConfig::default(),
        "testhost".into(),
        Store::memory().expect("in-memory store"),
        EngineOptions {
            live: false,
            users: Some(crate::proc::users::UserDb::parse(passwd)),
            learn_all: false,
        },
    )
    .expect("engine")
}

/// An event of login uid 1000 (uid 1000, euid `euid`) in `session`; `body` holds the
/// kind-specific JSON fields (`"kind":"exec",...`).
pub fn event(id: u64, t: i64, pid: u32, ppid: u32, euid: u32, session: u32, body: &str) -> Event {
    let line = format!(
        r#"{{"id":{id},"time_ns":{t},"pid":{pid},"tid":{pid},"ppid":{ppid},"uid":1000,"gid":1000,"euid":{euid},"auid":1000,"session":{session},"cgroup_id":1,"comm":"x","ret":0,{body}}}"#
    );
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("test event {line}: {e}"))
}

/// What the detection tests configure: the `[detect]` section and a fixed host name (the
/// whole `Config` lives in a room above this one).
#[derive(Clone, Debug, Default)]
pub struct TestConfig {
    pub detect: DetectConfig,
}

impl TestConfig {
    pub fn host_name(&self) -> String {
        "testhost".into()
    }
}

/// A TOML text's `[detect]` section, read and validated as `sentinel` does at load.
pub fn parse_detect(text: &str) -> Result<DetectConfig, String> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        detect: DetectConfig,
    }
    let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
    f.detect.validate()?;
    Ok(f.detect)
}
