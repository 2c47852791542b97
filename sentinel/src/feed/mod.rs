//! Sinks at the right edge of the pipeline: readable terminal lines and JSON lines, for events,
//! anomalies and run summaries (schemas in docs/events.md and docs/anomalies.md), and the push
//! client to a Sentinel server (push.rs, docs/server.md).

pub mod edge;
pub mod push;
pub mod terminal;

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

/// Formats epoch nanoseconds as `HH:MM:SS.mmm` UTC.
pub fn clock_time(ns: i64) -> String {
    let ms = ns.div_euclid(1_000_000);
    let secs = ms.div_euclid(1000);
    let day = secs.rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day / 3600,
        (day / 60) % 60,
        day % 60,
        ms.rem_euclid(1000)
    )
}

/// Formats epoch nanoseconds as RFC 3339 UTC (`2026-11-26T19:41:05.123Z`).
pub fn rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let ms = ns.rem_euclid(1_000_000_000) / 1_000_000;
    let days = secs.div_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        t / 3600,
        (t / 60) % 60,
        t % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        // 2026-11-26T19:41:05.123Z
        assert_eq!(
            rfc3339(1_795_722_065_123_000_000),
            "2026-11-26T19:41:05.123Z"
        );
        assert_eq!(clock_time(1_795_722_065_123_000_000), "19:41:05.123");
        assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
    }
}
