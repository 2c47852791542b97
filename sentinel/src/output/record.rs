//! A record of the feed made ready once for all the outputs that take it: its type, level
//! and time, the JSON line of `sentinel run --json`, and for structured syslog its key
//! fields and a one-line summary.

use super::config::RecordType;
use crate::feed::Record;
use crate::model::Level;

/// The key fields and a one-line summary of a record, for structured syslog.
#[derive(Clone, Debug, Default)]
pub struct Brief {
    pub params: Vec<(&'static str, String)>,
    pub text: String,
}

/// A record made ready once for every output that takes it.
#[derive(Debug)]
pub struct Prepared {
    pub ty: RecordType,
    /// Anomalies' and incidents' level.
    pub level: Option<Level>,
    /// When it happened (wall clock, ns): the syslog TIMESTAMP.
    pub time_ns: i64,
    /// The JSON line with its newline, the very bytes `sentinel run --json` writes.
    pub json: Vec<u8>,
    brief: Option<Brief>,
}

impl Prepared {
    /// `with_brief`: also the structured fields (only when a structured output takes it).
    pub fn new(rec: &Record, with_brief: bool) -> Prepared {
        let mut json = Vec::with_capacity(512);
        // Writing into a Vec only fails if serialization does, which it does not for these.
        let _ = rec.write_json_line(&mut json);
        Prepared {
            ty: record_type(rec),
            level: record_level(rec),
            time_ns: record_time(rec),
            json,
            brief: with_brief.then(|| brief(rec)),
        }
    }

    pub fn brief(&self) -> std::borrow::Cow<'_, Brief> {
        match &self.brief {
            Some(b) => std::borrow::Cow::Borrowed(b),
            None => std::borrow::Cow::Owned(Brief::default()),
        }
    }
}

pub fn record_type(rec: &Record) -> RecordType {
    match rec {
        Record::Event(_) => RecordType::Event,
        Record::Anomaly(_) => RecordType::Anomaly,
        Record::Incident(_) => RecordType::Incident,
        Record::Status(_) => RecordType::Status,
        Record::Summary(_) => RecordType::Summary,
    }
}

pub fn record_level(rec: &Record) -> Option<Level> {
    match rec {
        Record::Anomaly(a) => Some(a.level),
        Record::Incident(i) => Some(i.level),
        _ => None,
    }
}

fn record_time(rec: &Record) -> i64 {
    match rec {
        Record::Event(e) => e.time_ns,
        Record::Anomaly(a) => a.time_ns,
        Record::Incident(i) => i.last_ns,
        Record::Status(_) | Record::Summary(_) => crate::store::now_ns(),
    }
}

fn who(p: &crate::model::Principal) -> String {
    match &p.user {
        Some(u) => format!("{u} (uid {})", p.uid),
        None => format!("uid {}", p.uid),
    }
}

fn brief(rec: &Record) -> Brief {
    let ty = ("type", record_type(rec).as_str().to_string());
    match rec {
        Record::Anomaly(a) => {
            let mut detections: Vec<&str> =
                a.factors.iter().map(|f| f.detection.as_str()).collect();
            detections.dedup();
            let reasons: Vec<&str> = a.factors.iter().map(|f| f.reason.as_str()).collect();
            let mut params = vec![
                ty,
                ("id", a.id.clone()),
                ("level", a.level.as_str().into()),
                ("score", a.score.to_string()),
                ("host", a.host.clone()),
                ("uid", a.principal.uid.to_string()),
            ];
            if let Some(u) = &a.principal.user {
                params.push(("user", u.clone()));
            }
            params.push(("detections", detections.join(",")));
            params.push(("reasons", reasons.join("; ")));
            Brief {
                params,
                text: format!(
                    "{} anomaly {} {}: {}",
                    a.level.as_str(),
                    a.score,
                    who(&a.principal),
                    reasons.join("; ")
                ),
            }
        }
        Record::Incident(i) => {
            let mut params = vec![
                ty,
                ("id", i.id.clone()),
                ("level", i.level.as_str().into()),
                ("score", i.score.to_string()),
                ("host", i.host.clone()),
                ("uid", i.principal.uid.to_string()),
            ];
            if let Some(u) = &i.principal.user {
                params.push(("user", u.clone()));
            }
            params.push(("tactics", i.tactics.join(",")));
            params.push(("steps", i.step_count.to_string()));
            Brief {
                params,
                text: format!(
                    "{} incident {} {} ({}): {}",
                    i.level.as_str(),
                    i.score,
                    who(&i.principal),
                    i.scope,
                    i.story
                ),
            }
        }
        Record::Event(e) => Brief {
            params: vec![
                ty,
                ("kind", e.kind().name().to_string()),
                ("pid", e.pid.to_string()),
                ("uid", e.uid.to_string()),
            ],
            text: crate::feed::terminal::event_line(e, false),
        },
        Record::Status(s) => Brief {
            params: vec![
                ty,
                ("attached", s.attached.len().to_string()),
                ("failed", s.failed.len().to_string()),
                ("version", crate::feed::AGENT_VERSION.into()),
            ],
            text: format!(
                "sentinel {} started: {} hooks attached, {} failed",
                crate::feed::AGENT_VERSION,
                s.attached.len(),
                s.failed.len()
            ),
        },
        Record::Summary(s) => Brief {
            params: vec![
                ty,
                ("events", s.collect.stats.total_received().to_string()),
                ("lost", s.collect.total_lost().to_string()),
                ("anomalies", s.pipeline.anomalies.to_string()),
            ],
            text: format!(
                "sentinel stopped: {} events, {} lost in the kernel, {} anomalies",
                s.collect.stats.total_received(),
                s.collect.total_lost(),
                s.pipeline.anomalies
            ),
        },
    }
}
