//! The process census: counts, and the notable processes (zombie, high fd count, stuck in D
//! state, very long running, high memory) with their process chains. No cap on the number of
//! processes (C-Sentinel silently stopped at 1024).

use serde::{Deserialize, Serialize};

use super::SnapshotConfig;
use super::system::round;
use crate::audit::chain::live_chain;
use crate::model::ChainLink;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessSummary {
    pub total_count: usize,
    pub zombie_count: usize,
    pub high_fd_count: usize,
    pub stuck_count: usize,
    /// Older than `long_running_days` (counted, not listed: most daemons are).
    pub long_running_count: usize,
    pub high_memory_count: usize,
    /// Processes whose fd table could not be read (not root, or exited mid-probe).
    pub fd_unreadable_count: usize,
    pub notable_processes: Vec<NotableProcess>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NotableProcess {
    pub pid: u32,
    pub ppid: u32,
    pub name: String,
    pub state: String,
    pub age_days: f64,
    pub memory_mb: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_fds: Option<usize>,
    pub threads: u32,
    /// Every rule that matched: zombie, high_fd_count, stuck, very_long_running, high_memory.
    pub flags: Vec<String>,
    /// Oldest ancestor first, this process last.
    pub chain: Vec<ChainLink>,
}

pub fn probe(cfg: &SnapshotConfig, uptime_secs: f64, errors: &mut Vec<String>) -> ProcessSummary {
    let tick = procfs::ticks_per_second().max(1) as f64;
    let page = procfs::page_size() as f64;
    let mut s = ProcessSummary::default();
    let all: Vec<procfs::process::Process> = match procfs::process::all_processes() {
        Ok(it) => it.flatten().collect(),
        Err(e) => {
            errors.push(format!("/proc: {e}"));
            Vec::new()
        }
    };
    if all.is_empty() {
        errors.push("/proc: no processes could be listed".into());
    }
    for p in all {
        // A process can exit between listing and reading: that is not an error.
        let Ok(st) = p.stat() else {
            continue;
        };
        let pid = p.pid as u32;
        s.total_count += 1;
        let age_secs = (uptime_secs - st.starttime as f64 / tick).max(0.0);
        let memory_mb = st.rss as f64 * page / 1024.0 / 1024.0;
        let fds = if st.state == 'Z' {
            None
        } else {
            p.fd_count().ok()
        };
        if fds.is_none() && st.state != 'Z' {
            s.fd_unreadable_count += 1;
        }
        let mut flags = Vec::new();
        if st.state == 'Z' {
            s.zombie_count += 1;
            flags.push("zombie");
        }
        if fds.is_some_and(|n| n > cfg.high_fd_threshold) {
            s.high_fd_count += 1;
            flags.push("high_fd_count");
        }
        if st.state == 'D' && age_secs > cfg.stuck_secs as f64 {
            s.stuck_count += 1;
            flags.push("stuck");
        }
        if age_secs > cfg.long_running_days * 86400.0 {
            s.long_running_count += 1;
        }
        if age_secs > cfg.very_long_running_days * 86400.0 {
            flags.push("very_long_running");
        }
        if memory_mb > cfg.high_memory_mb as f64 {
            s.high_memory_count += 1;
            flags.push("high_memory");
        }
        if flags.is_empty() {
            continue;
        }
        s.notable_processes.push(NotableProcess {
            pid,
            ppid: u32::try_from(st.ppid).unwrap_or(0),
            name: st.comm,
            state: st.state.to_string(),
            age_days: round(age_secs / 86400.0, 2),
            memory_mb: round(memory_mb, 1),
            open_fds: fds,
            threads: u32::try_from(st.num_threads).unwrap_or(0),
            flags: flags.into_iter().map(str::to_string).collect(),
            chain: live_chain(pid),
        });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_census_counts_this_process() {
        let mut errs = vec![];
        let s = probe(&SnapshotConfig::default(), 1e9, &mut errs);
        assert!(errs.is_empty());
        assert!(s.total_count > 1);
    }
}
