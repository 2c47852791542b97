//! Fleet wire types shared by the agent and the server: the enrolment request and answer
//! (`POST /api/enroll`), and the heartbeat an agent sends every `[push]
//! heartbeat_interval_secs` (`POST /api/ingest/heartbeat`). docs/server.md, "Fleet".

use serde::{Deserialize, Serialize};

/// Default seconds between two heartbeats.
pub const DEFAULT_HEARTBEAT_SECS: u64 = 30;
/// Default seconds between two host snapshots pushed.
pub const DEFAULT_SNAPSHOT_SECS: u64 = 300;

/// The body of `POST /api/enroll`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// The enrolment token an admin created (`sentinel host token`, or Fleet in the dashboard).
    pub token: String,
    /// The host identity to enrol (the name the agent reports in everything it pushes).
    pub host: String,
}

/// The answer to an accepted enrolment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnrolAnswer {
    pub host: String,
    /// The new ingest key, bound to `host` (shown once; only its hash is kept).
    pub api_key: String,
    pub key_id: i64,
    /// True when the host was enrolled before: its previous key is revoked.
    pub rotated: bool,
}

/// The push spool as the agent sees it (feed/push.rs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SpoolStatus {
    /// Batches waiting to be sent, and their bytes on disk.
    pub batches: u64,
    pub bytes: u64,
    /// `[push] spool_max_bytes` (0: no cap).
    pub max_bytes: u64,
    /// Batches (and the items in them) dropped, oldest first, to stay under the cap.
    pub dropped_batches: u64,
    pub dropped_items: u64,
}

/// The body of `POST /api/ingest/heartbeat`: who, when, how often, and the agent's health
/// snapshot (the same document as `sentinel status`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub host: String,
    /// The agent's clock when it sent this.
    pub time_ns: i64,
    /// Seconds until the next heartbeat: the server calls the host stale after three missed.
    pub interval_secs: u64,
    /// The agent's health snapshot (a JSON object).
    pub health: serde_json::Value,
    #[serde(default)]
    pub spool: SpoolStatus,
}
