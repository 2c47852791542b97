//! Reading auditd's log and its rotated files (audit.log.N ... audit.log.1, audit.log, oldest
//! first) for a time window; bad lines are counted, never fatal. Also: is auditd running?

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::record::{AuditEvent, Grouper, parse_line};

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("audit log {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReadStats {
    /// Files read, oldest first.
    pub files: Vec<String>,
    pub lines: u64,
    /// Records inside the window.
    pub records: u64,
    /// Lines that were not audit records, or were cut short (counted, skipped).
    pub malformed_lines: u64,
    /// Lines that were not valid UTF-8 (decoded lossily, still parsed).
    pub non_utf8_lines: u64,
}

/// The log and its rotations that exist, oldest first.
pub fn log_files(path: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(u32, PathBuf)> = Vec::new();
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str()))
        && let Ok(rd) = std::fs::read_dir(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
    {
        for e in rd.flatten() {
            let fname = e.file_name();
            let Some(f) = fname.to_str() else { continue };
            if let Some(n) = f
                .strip_prefix(name)
                .and_then(|s| s.strip_prefix('.'))
                .and_then(|s| s.parse::<u32>().ok())
            {
                rotated.push((n, e.path()));
            }
        }
    }
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut out: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    if path.exists() {
        out.push(path.to_path_buf());
    }
    out
}

/// Reads every record with `since_ms <= time < until_ms` from the log and its rotations.
/// A missing current log is an error; unreadable rotations are skipped with a warning.
pub fn read_window(
    path: &Path,
    since_ms: i64,
    until_ms: i64,
) -> Result<(Vec<AuditEvent>, ReadStats), ReadError> {
    let mut stats = ReadStats::default();
    let mut grouper = Grouper::default();
    let files = log_files(path);
    if !files.iter().any(|f| f == path) {
        return Err(ReadError::Open {
            path: path.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    for f in files {
        // A rotated file last written before the window cannot hold records in it.
        if f != path
            && let Ok(m) = std::fs::metadata(&f).and_then(|m| m.modified())
            && let Ok(d) = m.duration_since(std::time::UNIX_EPOCH)
            && (d.as_millis() as i64) < since_ms
        {
            continue;
        }
        let file = match std::fs::File::open(&f) {
            Ok(file) => file,
            Err(source) if f == path => return Err(ReadError::Open { path: f, source }),
            Err(e) => {
                tracing::warn!("skipping rotated audit log {}: {e}", f.display());
                continue;
            }
        };
        stats.files.push(f.display().to_string());
        read_lines(
            BufReader::new(file),
            since_ms,
            until_ms,
            &mut grouper,
            &mut stats,
        );
    }
    Ok((grouper.finish(), stats))
}

/// Parses lines from any reader into the grouper (fixtures use this directly).
pub fn read_lines<R: BufRead>(
    mut r: R,
    since_ms: i64,
    until_ms: i64,
    grouper: &mut Grouper,
    stats: &mut ReadStats,
) {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("audit log read error: {e}");
                break;
            }
        }
        stats.lines += 1;
        let line = match std::str::from_utf8(&buf) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => {
                stats.non_utf8_lines += 1;
                String::from_utf8_lossy(&buf)
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(&line) {
            Ok(rec) if rec.time_ms >= since_ms && rec.time_ms < until_ms => {
                stats.records += 1;
                grouper.push(rec);
            }
            Ok(_) => {}
            Err(e) => {
                stats.malformed_lines += 1;
                tracing::debug!("malformed audit line {}: {e}", stats.lines);
            }
        }
    }
}

/// Whether an `auditd` process is alive (by exact comm, so the kernel's kauditd does not count).
pub fn auditd_running() -> bool {
    let Ok(all) = procfs::process::all_processes() else {
        return false;
    };
    all.flatten()
        .filter_map(|p| p.stat().ok())
        .any(|st| st.comm == "auditd" && st.state != 'Z')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_files_are_read_oldest_first_and_window_applies() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit.log");
        std::fs::write(
            d.path().join("audit.log.2"),
            "type=USER_AUTH msg=audit(100.000:1): res=failed\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("audit.log.1"),
            "type=USER_AUTH msg=audit(200.000:2): res=failed\nnot a record\n",
        )
        .unwrap();
        std::fs::write(&p, "type=USER_AUTH msg=audit(300.000:3): res=failed\n").unwrap();
        std::fs::write(d.path().join("audit.log.bak"), "x").unwrap();
        let files = log_files(&p);
        assert_eq!(files.len(), 3);
        assert!(files[0].ends_with("audit.log.2"));
        let (ev, st) = read_window(&p, 0, i64::MAX).unwrap();
        assert_eq!(
            ev.iter().map(|e| e.serial).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(st.malformed_lines, 1);
        let (ev, _) = read_window(&p, 150_000, 250_000).unwrap();
        assert_eq!(ev.len(), 1);
        assert!(read_window(&d.path().join("nope.log"), 0, 1).is_err());
    }
}
