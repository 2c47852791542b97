//! The fleet on the server: enrolment tokens, enrolled agents and their health, and the
//! storage trait for them (`FleetStore`; SQLite in sqlite/fleet.rs). An agent's state is
//! `healthy`, `stale` (three heartbeats missed), `blind` (hooks failed, or events lost since
//! the previous heartbeat) or `retired`; `classify` decides it and is the only place that does.
//! Also the cursor-paginated host and anomaly lists (`GET /api/hosts`, `GET /api/anomalies`).
//! Handlers: fleet_api.rs; pages: fleet_pages.rs; the `sentinel host` commands: fleet_cli.rs.

use serde::{Deserialize, Serialize};

use super::store::{DbResult, Host, StoredAnomaly};
use crate::model::Level;

/// The account that owns every key made by enrolment (operator, cannot sign in). Disabling
/// it stops every enrolled agent at once; deleting it deletes their keys.
pub const SERVICE_USER: &str = "fleet-agents";

/// Heartbeats missed before a host is stale.
pub const MISSED_BEATS: i64 = 3;

/// How long the server keeps each host's heartbeat history.
pub const HISTORY_NS: i64 = 24 * 3_600_000_000_000;

/// Where an agent stands, as the dashboard shows it. Stored as text; names never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    /// Enrolled, no heartbeat yet.
    Unknown,
    Healthy,
    /// No heartbeat for three intervals.
    Stale,
    /// Hooks failed to attach, or events were lost since the previous heartbeat.
    Blind,
    /// Retired by an admin: its key is revoked and it may not enrol again.
    Retired,
}

impl AgentState {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Unknown => "unknown",
            AgentState::Healthy => "healthy",
            AgentState::Stale => "stale",
            AgentState::Blind => "blind",
            AgentState::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Option<AgentState> {
        [
            AgentState::Unknown,
            AgentState::Healthy,
            AgentState::Stale,
            AgentState::Blind,
            AgentState::Retired,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    /// States an alert is raised for when a host enters them.
    pub fn alarming(self) -> bool {
        matches!(self, AgentState::Stale | AgentState::Blind)
    }
}

impl std::fmt::Display for AgentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The figures of a heartbeat that decide the state, read from the agent's health snapshot.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Vitals {
    pub version: Option<String>,
    pub kernel: Option<String>,
    pub hooks_attached: u64,
    /// Hooks that failed to attach, with the reason.
    pub hooks_failed: Vec<String>,
    /// Events lost in the kernel (ring buffer full) plus dropped in the agent, since it started.
    pub lost_total: u64,
    pub last_event_ns: Option<i64>,
}

/// Why a heartbeat makes a host blind, or None when it does not. `prev_lost` is the loss
/// total of the host's previous heartbeat (None: none before); a total that went down means
/// the agent restarted, and then everything it reports was lost since.
pub fn blind_reason(v: &Vitals, prev_lost: Option<u64>) -> Option<String> {
    if !v.hooks_failed.is_empty() {
        return Some(format!(
            "{} hooks failed to attach: {}",
            v.hooks_failed.len(),
            v.hooks_failed.join("; ")
        ));
    }
    let new = match prev_lost {
        Some(p) if v.lost_total >= p => v.lost_total - p,
        _ => v.lost_total,
    };
    (new > 0).then(|| format!("{new} events lost since the previous heartbeat"))
}

/// The state of an agent at `now_ns`: retired wins, then stale (no heartbeat for
/// `MISSED_BEATS` intervals), then blind, then healthy; never heard from is unknown.
pub fn classify(
    retired: bool,
    last_beat_ns: Option<i64>,
    interval_secs: u64,
    blind: bool,
    now_ns: i64,
) -> AgentState {
    if retired {
        return AgentState::Retired;
    }
    let Some(last) = last_beat_ns else {
        return AgentState::Unknown;
    };
    let grace = (interval_secs.max(1) as i64)
        .saturating_mul(MISSED_BEATS)
        .saturating_mul(1_000_000_000);
    if now_ns.saturating_sub(last) > grace {
        AgentState::Stale
    } else if blind {
        AgentState::Blind
    } else {
        AgentState::Healthy
    }
}

/// An enrolment token as listed (the secret itself is shown once and never stored).
#[derive(Clone, Debug, Serialize)]
pub struct EnrolToken {
    pub id: i64,
    pub prefix: String,
    pub note: String,
    pub created_ns: i64,
    pub created_by: String,
    pub expires_ns: Option<i64>,
    pub max_uses: i64,
    pub uses: i64,
    pub revoked_ns: Option<i64>,
}

impl EnrolToken {
    /// Why the token can no longer enrol, or None.
    pub fn problem(&self, now_ns: i64) -> Option<EnrolRefusal> {
        if self.revoked_ns.is_some() {
            Some(EnrolRefusal::TokenRevoked)
        } else if self.expires_ns.is_some_and(|e| e <= now_ns) {
            Some(EnrolRefusal::TokenExpired)
        } else if self.uses >= self.max_uses {
            Some(EnrolRefusal::TokenUsedUp(self.max_uses))
        } else {
            None
        }
    }

    pub fn state(&self, now_ns: i64) -> &'static str {
        match self.problem(now_ns) {
            None => "usable",
            Some(EnrolRefusal::TokenRevoked) => "revoked",
            Some(EnrolRefusal::TokenExpired) => "expired",
            Some(_) => "used up",
        }
    }
}

#[derive(Clone, Debug)]
pub struct NewEnrolToken<'a> {
    pub token_hash: &'a str,
    pub prefix: &'a str,
    pub note: &'a str,
    pub created_by: &'a str,
    pub now_ns: i64,
    pub expires_ns: Option<i64>,
    pub max_uses: i64,
}

/// One enrolment to perform atomically: check and spend the token, revoke the host's
/// previous key, create the new one.
#[derive(Clone, Debug)]
pub struct Enrolment<'a> {
    pub token_hash: &'a str,
    pub host: &'a str,
    pub key_prefix: &'a str,
    pub key_hash: &'a str,
    pub now_ns: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Enrolled {
    pub key_id: i64,
    pub token_id: i64,
    /// The key the host held before, now revoked.
    pub revoked_key: Option<i64>,
}

/// Why an enrolment is refused (each says so in plain words to the agent).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EnrolRefusal {
    #[error("unknown enrolment token")]
    UnknownToken,
    #[error("this enrolment token was revoked")]
    TokenRevoked,
    #[error("this enrolment token has expired")]
    TokenExpired,
    #[error("this enrolment token is used up (all {0} uses spent)")]
    TokenUsedUp(i64),
    #[error("host {0:?} was retired by an admin and cannot enrol again")]
    Retired(String),
    #[error(
        "the {SERVICE_USER} account is disabled or below operator: enrolled agents cannot push"
    )]
    ServiceAccount,
}

/// A retirement.
#[derive(Clone, Debug, PartialEq)]
pub struct Retired {
    /// Ingest keys revoked (the enrolled one and any made by hand for the host).
    pub revoked_keys: usize,
}

/// A heartbeat to record.
#[derive(Clone, Debug)]
pub struct BeatRecord<'a> {
    pub host: &'a str,
    pub now_ns: i64,
    pub interval_secs: u64,
    pub vitals: &'a Vitals,
    /// The whole heartbeat as received (JSON), kept as the host's latest and in its history.
    pub data: &'a str,
}

/// A state change of one host (for alerts: raised once per change).
#[derive(Clone, Debug, PartialEq)]
pub struct StateChange {
    pub host: String,
    pub from: AgentState,
    pub to: AgentState,
    /// Why (blind: which hooks, how many events; stale: since when).
    pub reason: String,
}

/// An agent's record: enrolment, state and latest heartbeat.
#[derive(Clone, Debug, Serialize)]
pub struct AgentStatus {
    pub host: String,
    pub state: AgentState,
    pub state_since_ns: i64,
    /// Why the state is what it is (blind and stale).
    pub reason: String,
    pub enrolled_ns: Option<i64>,
    pub enrolments: i64,
    pub key_id: Option<i64>,
    pub retired_ns: Option<i64>,
    pub last_heartbeat_ns: Option<i64>,
    pub interval_secs: Option<u64>,
    /// The latest heartbeat as the agent sent it.
    pub heartbeat: Option<serde_json::Value>,
}

/// One point of a host's snapshot history: memory used and 1-minute load.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SnapshotPoint {
    pub time_ns: i64,
    pub memory_used_percent: Option<f64>,
    pub load1: Option<f64>,
}

/// A page of anomalies, newest received first.
#[derive(Clone, Debug, Default)]
pub struct AnomalyPageFilter {
    pub host: Option<String>,
    pub user: Option<String>,
    pub level: Option<Level>,
    pub detection: Option<String>,
    pub unacked: bool,
    /// Anomalies that happened (agent time) at or after / at or before.
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
    pub cursor: Option<AnomalyCursor>,
    pub limit: usize,
}

/// Position after the last row of a page: (received_ns, time_ns, row) of that row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnomalyCursor {
    pub received_ns: i64,
    pub time_ns: i64,
    pub row: i64,
}

impl AnomalyCursor {
    pub fn encode(&self) -> String {
        format!("{}.{}.{}", self.received_ns, self.time_ns, self.row)
    }
    pub fn parse(s: &str) -> Option<AnomalyCursor> {
        let mut it = s.split('.');
        let c = AnomalyCursor {
            received_ns: it.next()?.parse().ok()?,
            time_ns: it.next()?.parse().ok()?,
            row: it.next()?.parse().ok()?,
        };
        it.next().is_none().then_some(c)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct AnomalyPage {
    pub anomalies: Vec<StoredAnomaly>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A page of hosts, by name.
#[derive(Clone, Debug, Default)]
pub struct HostPageFilter {
    /// Hosts last seen at or after / at or before.
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
    pub state: Option<AgentState>,
    /// The last host name of the previous page.
    pub cursor: Option<String>,
    pub limit: usize,
}

/// A host with its agent's status.
#[derive(Clone, Debug, Serialize)]
pub struct HostRow {
    #[serde(flatten)]
    pub host: Host,
    pub agent: Option<AgentStatus>,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostPage {
    pub hosts: Vec<HostRow>,
    pub next_cursor: Option<String>,
}

/// Enrolment, agent health and the paginated lists.
#[async_trait::async_trait]
pub trait FleetStore: Send + Sync {
    async fn create_enrol_token(&self, t: &NewEnrolToken<'_>) -> DbResult<i64>;
    async fn list_enrol_tokens(&self) -> DbResult<Vec<EnrolToken>>;
    async fn revoke_enrol_token(&self, id: i64, now_ns: i64) -> DbResult<bool>;
    /// Checks and spends the token, refuses retired hosts, revokes the host's previous key
    /// and creates the new one (owned by `SERVICE_USER`, created when missing), in one
    /// transaction.
    async fn enroll(&self, e: &Enrolment<'_>) -> DbResult<Result<Enrolled, EnrolRefusal>>;
    /// Retires a host and revokes its key; None when the server never heard of it.
    async fn retire_host(&self, host: &str, now_ns: i64) -> DbResult<Option<Retired>>;
    /// Stores a heartbeat (latest, and history of `HISTORY_NS`), moves the host's last-seen
    /// time, and returns the state change it caused, if any.
    async fn record_heartbeat(&self, b: &BeatRecord<'_>) -> DbResult<Option<StateChange>>;
    /// Marks stale every agent whose heartbeats stopped; returns the changes.
    async fn mark_stale(&self, now_ns: i64) -> DbResult<Vec<StateChange>>;
    async fn agent(&self, host: &str) -> DbResult<Option<AgentStatus>>;
    async fn list_agents(&self) -> DbResult<Vec<AgentStatus>>;
    /// Memory and load of a host's snapshots since `since_ns`, oldest first.
    async fn snapshot_series(&self, host: &str, since_ns: i64) -> DbResult<Vec<SnapshotPoint>>;
    async fn list_anomalies_page(&self, f: &AnomalyPageFilter) -> DbResult<AnomalyPage>;
    async fn list_hosts_page(&self, f: &HostPageFilter, now_ns: i64) -> DbResult<HostPage>;
    /// Retention: heartbeat history older than the horizon, and agents of purged hosts.
    async fn purge_fleet(&self, before_ns: i64) -> DbResult<usize>;
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn states_follow_heartbeats_losses_and_retirement() {
        let now = 1_000 * S;
        assert_eq!(classify(false, None, 30, false, now), AgentState::Unknown);
        assert_eq!(
            classify(false, Some(now - 60 * S), 30, false, now),
            AgentState::Healthy,
            "two missed beats are not yet stale"
        );
        assert_eq!(
            classify(false, Some(now - 91 * S), 30, false, now),
            AgentState::Stale
        );
        assert_eq!(
            classify(false, Some(now - 91 * S), 30, true, now),
            AgentState::Stale,
            "a silent agent is stale whatever it said last"
        );
        assert_eq!(classify(false, Some(now), 30, true, now), AgentState::Blind);
        assert_eq!(
            classify(true, Some(now), 30, false, now),
            AgentState::Retired
        );
        // A zero interval is taken as one second, never as "always stale".
        assert_eq!(
            classify(false, Some(now - 2 * S), 0, false, now),
            AgentState::Healthy
        );
    }

    #[test]
    fn blind_means_failed_hooks_or_new_losses() {
        let mut v = Vitals {
            lost_total: 10,
            ..Default::default()
        };
        assert_eq!(blind_reason(&v, Some(10)), None, "old losses only");
        assert!(
            blind_reason(&v, Some(4))
                .unwrap()
                .starts_with("6 events lost")
        );
        assert!(
            blind_reason(&v, None).unwrap().starts_with("10 events"),
            "first beat"
        );
        assert!(
            blind_reason(&v, Some(50)).unwrap().starts_with("10 events"),
            "a restarted agent counts from zero"
        );
        v.lost_total = 0;
        assert_eq!(blind_reason(&v, None), None);
        v.hooks_failed = vec!["sys_enter_execve: permission denied".into()];
        assert!(blind_reason(&v, None).unwrap().contains("1 hooks failed"));
    }

    #[test]
    fn tokens_say_why_they_cannot_enrol() {
        let t = EnrolToken {
            id: 1,
            prefix: "snt_enr_ab".into(),
            note: String::new(),
            created_ns: 0,
            created_by: "cli".into(),
            expires_ns: Some(100),
            max_uses: 2,
            uses: 1,
            revoked_ns: None,
        };
        assert_eq!(t.problem(99), None);
        assert_eq!(t.problem(100), Some(EnrolRefusal::TokenExpired));
        let used = EnrolToken {
            uses: 2,
            expires_ns: None,
            ..t.clone()
        };
        assert_eq!(used.problem(0), Some(EnrolRefusal::TokenUsedUp(2)));
        assert_eq!(used.state(0), "used up");
        let revoked = EnrolToken {
            revoked_ns: Some(5),
            ..t
        };
        assert_eq!(revoked.problem(0), Some(EnrolRefusal::TokenRevoked));
    }

    #[test]
    fn anomaly_cursors_round_trip_and_refuse_junk() {
        let c = AnomalyCursor {
            received_ns: 5,
            time_ns: -1,
            row: 9,
        };
        assert_eq!(AnomalyCursor::parse(&c.encode()), Some(c));
        for bad in ["", "1.2", "1.2.3.4", "a.b.c"] {
            assert_eq!(AnomalyCursor::parse(bad), None, "{bad}");
        }
    }
}
