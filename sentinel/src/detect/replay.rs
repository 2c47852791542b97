//! Recorded event streams: reading the JSON lines `sentinel run --json --events` writes, and
//! feeding them through an engine (`sentinel learn --from-file`, tests, benches).

use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use super::engine::Engine;
use crate::event::Event;
use crate::model::Anomaly;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: not an event: {source}")]
    Parse {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
}

/// Reads a JSON-lines event recording. Blank lines are skipped; a bad line is an error
/// naming its line number.
pub fn read_events(path: &Path) -> Result<Vec<Event>, ReplayError> {
    let read = |source| ReplayError::Read {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(path).map_err(read)?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(read)?;
        if line.trim().is_empty() {
            continue;
        }
        let ev: Event = serde_json::from_str(&line).map_err(|source| ReplayError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            source,
        })?;
        out.push(ev);
    }
    Ok(out)
}

/// Feeds a recording through an engine and closes its last window.
pub fn replay(engine: &mut Engine, events: &[Event]) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for ev in events {
        out.extend(engine.observe(ev));
    }
    out.extend(engine.finish());
    out
}
