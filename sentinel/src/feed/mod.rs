//! Sinks at the right edge of the pipeline: readable terminal lines and JSON lines, for events,
//! anomalies and run summaries (schemas in docs/events.md and docs/anomalies.md), and the push
//! client to a Sentinel server (push.rs, docs/server.md).

pub mod fleet;
pub mod push;
pub mod push_health;
pub mod terminal;
pub mod verdicts;

use serde::Serialize;

use crate::collect::Summary;
use crate::event::Event;
use crate::model::Anomaly;

/// The agent's version, in the status, summary and anomaly records (`agent_version`), so a
/// SIEM can tell which build said what.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// One JSON line of `sentinel run --json`:
/// `{"type": "event" | "anomaly" | "incident" | "status" | "summary", ...}`.
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

/// A record with the agent's version added to its fields.
#[derive(Serialize)]
struct Stamped<'a, T: Serialize> {
    #[serde(flatten)]
    record: &'a T,
    agent_version: &'static str,
}

fn stamped<T: Serialize>(record: &T) -> Stamped<'_, T> {
    Stamped {
        record,
        agent_version: AGENT_VERSION,
    }
}

impl Serialize for Record<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        /// The wire shape: the type tag, then the record's own fields (events stay as they
        /// are: they are many, and the status record names the version of their run).
        #[derive(Serialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        enum Wire<'a> {
            Event(&'a Event),
            Anomaly(Stamped<'a, Anomaly>),
            Incident(&'a crate::incident::Incident),
            Status(Stamped<'a, Status>),
            Summary(Stamped<'a, RunSummary<'a>>),
        }
        match *self {
            Record::Event(e) => Wire::Event(e),
            Record::Anomaly(a) => Wire::Anomaly(stamped(a)),
            Record::Incident(i) => Wire::Incident(i),
            Record::Status(st) => Wire::Status(stamped(st)),
            Record::Summary(sum) => Wire::Summary(stamped(sum)),
        }
        .serialize(s)
    }
}

impl Record<'_> {
    /// Appends one JSON line (with its newline) to `out`, without an intermediate value.
    ///
    /// sonic-rs writes what serde_json would (the test below holds them byte for byte), with
    /// SIMD string escaping: with every event shown, escaping keys and paths byte by byte was a
    /// sixth of the agent's CPU.
    pub fn write_json_line(&self, out: &mut Vec<u8>) -> sonic_rs::Result<()> {
        let len = out.len();
        let written = sonic_rs::to_writer(&mut *out, self);
        match written {
            Ok(()) => out.push(b'\n'),
            // No half record: the line is all there or not at all.
            Err(_) => out.truncate(len),
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(r: &Record) -> serde_json::Value {
        let mut out = Vec::new();
        r.write_json_line(&mut out).unwrap();
        assert_eq!(out.last(), Some(&b'\n'));
        serde_json::from_slice(&out).unwrap()
    }

    /// Fields are only added: an anomaly keeps every field it had, beside the version.
    #[test]
    fn anomaly_and_status_records_carry_the_agent_version() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/explain/anomaly.json"
        ))
        .unwrap();
        let a: Anomaly = serde_json::from_str(&text).unwrap();
        let v = json(&Record::Anomaly(&a));
        assert_eq!(v["type"], "anomaly");
        assert_eq!(v["agent_version"], env!("CARGO_PKG_VERSION"));
        let plain = serde_json::to_value(&a).unwrap();
        for (k, val) in plain.as_object().unwrap() {
            assert_eq!(&v[k], val, "field {k} unchanged");
        }
        let st = Status {
            attached: vec!["sched/sched_process_exec".into()],
            failed: vec![],
            unavailable: vec![],
            missing_fields: vec![],
            mounted_tracefs: false,
            syscall_args: crate::collect::ArgsSource::Registers,
        };
        let v = json(&Record::Status(&st));
        assert_eq!(v["type"], "status");
        assert_eq!(v["agent_version"], AGENT_VERSION);
        assert_eq!(v["attached"][0], "sched/sched_process_exec");
    }

    /// sonic-rs writes the very bytes serde_json writes (docs/events.md's schema is serde's):
    /// every event of the detection fixtures, text that needs escaping or is not UTF-8, floats
    /// of every shape (explanation confidences, evidence details), and the other record types.
    #[test]
    fn json_lines_are_serde_json_byte_for_byte() {
        fn same(r: &Record) {
            let mut fast = Vec::new();
            r.write_json_line(&mut fast).unwrap();
            let mut slow = serde_json::to_vec(r).unwrap();
            slow.push(b'\n');
            assert_eq!(
                String::from_utf8(fast).unwrap(),
                String::from_utf8(slow).unwrap()
            );
        }
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/detect");
        let mut events = Vec::new();
        for f in std::fs::read_dir(dir).unwrap() {
            let path = f.unwrap().path();
            if path.extension().is_some_and(|e| e == "jsonl") {
                let text = std::fs::read_to_string(&path).unwrap();
                events.extend(
                    text.lines()
                        .filter_map(|l| serde_json::from_str::<Event>(l).ok()),
                );
            }
        }
        assert!(events.len() > 200, "{} fixture events", events.len());
        let kinds: std::collections::BTreeSet<_> = events.iter().map(|e| e.kind() as u32).collect();
        assert!(kinds.len() >= 8, "kinds {kinds:?}");
        for e in &events {
            same(&Record::Event(e));
        }
        let mut odd = events[0].clone();
        for text in [
            &b"quote\" back\\slash \x01\x1f\x7f tab\t nl\n cr\r bs\x08 ff\x0c"[..],
            b"latin \xc3\xa9, emoji \xf0\x9f\x98\x80, separators \xe2\x80\xa8\xe2\x80\xa9",
            b"not utf-8 \xff\xfe\x80 and \xc3",
            b"",
        ] {
            odd.comm = crate::event::RawStr(text.to_vec());
            same(&Record::Event(&odd));
        }
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/explain/anomaly.json"
        ))
        .unwrap();
        let mut a: Anomaly = serde_json::from_str(&text).unwrap();
        same(&Record::Anomaly(&a));
        for confidence in [0.0, 0.1, 1.0 / 3.0, 0.95, 1.0, 1e-7, 3.4e38] {
            a.explanation = Some(crate::model::Explanation {
                summary: "a \"summary\"\n".into(),
                likely_explanation: "\u{7}bell".into(),
                benign_alternatives: vec![],
                confidence,
                evidence_ids: vec!["e1".into()],
                next_steps: vec![],
                source: "local".into(),
                warnings: vec![],
            });
            same(&Record::Anomaly(&a));
        }
        assert!(!a.evidence.is_empty());
        for e in &mut a.evidence {
            e.detail = serde_json::json!({"ratio": 0.1, "big": 1e300, "tiny": 5e-324, "n": -3});
        }
        same(&Record::Anomaly(&a));
        // An incident is told from its second step on.
        let mut tracker = crate::incident::Tracker::default();
        assert!(tracker.observe(&a).is_none());
        a.id.push_str("-next");
        a.time_ns += 1_000_000_000;
        let incident = tracker.observe(&a).unwrap();
        same(&Record::Incident(&incident));
        let st = Status {
            attached: vec!["sched/sched_process_exec".into()],
            failed: vec![("syscalls/sys_exit_x".into(), "no \"such\" hook".into())],
            unavailable: vec![],
            missing_fields: vec!["task_struct.loginuid"],
            mounted_tracefs: true,
            syscall_args: crate::collect::ArgsSource::Registers,
        };
        same(&Record::Status(&st));
    }
}
