//! Sinks at the right edge of the pipeline: readable terminal lines and JSON lines, for events,
//! anomalies and run summaries (schemas in docs/events.md and docs/anomalies.md), and the push
//! client to a Sentinel server (push.rs, docs/server.md).

pub mod push;
pub mod terminal;
pub mod verdicts;

use serde::Serialize;

use crate::collect::Summary;
use crate::event::Event;
use crate::model::Anomaly;

/// One JSON line of `sentinel run --json`:
/// `{"type": "event" | "anomaly" | "incident" | "status" | "summary", ...}`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record<'a> {
    Event(&'a Event),
    Anomaly(&'a Anomaly),
    /// A session's story, re-sent each time it gains a step (same id, docs/anomalies.md).
    Incident(&'a crate::incident::Incident),
    /// Hooks attached and failed, at start.
    Status(&'a Status),
    Summary(&'a RunSummary<'a>),
}

/// The last record of a run: collector counts (flattened, see docs/events.md) and the counts
/// of the stages after it.
#[derive(Serialize)]
pub struct RunSummary<'a> {
    #[serde(flatten)]
    pub collect: &'a Summary,
    pub pipeline: &'a crate::pipeline::PipelineSnapshot,
    /// The detection engine's counts (absent with --no-detect): provenance records and
    /// evictions, and what each `[[detect.exceptions]]` entry suppressed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detect: Option<&'a crate::detect::Stats>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub attached: Vec<String>,
    pub failed: Vec<(String, String)>,
    /// Captured syscalls this kernel was built without (no tracepoint); not failures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<String>,
    pub missing_fields: Vec<&'static str>,
    /// Sentinel mounted tracefs because it was missing.
    pub mounted_tracefs: bool,
    /// Where the syscall hooks read arguments: "registers" or "stash".
    pub syscall_args: crate::collect::ArgsSource,
}

impl Record<'_> {
    /// One JSON line (with its newline) straight into `w`, without an intermediate string.
    pub fn write_json_line(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer(&mut *w, self)?;
        w.write_all(b"\n")
    }
}
