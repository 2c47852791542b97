//! The process census: counts, and the notable processes (zombie, high fd count, stuck in D
//! state, very long running, high memory) with their process chains. No cap on the number of
//! processes (C-Sentinel silently stopped at 1024).

use serde::{Deserialize, Serialize};

use super::SnapshotConfig;
use super::system::round;
use crate::audit::chain::{live_chain, parse_stat};
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

/// Fields of one /proc/<pid>/stat line that the census needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Stat {
    pub comm: String,
    pub state: char,
    pub ppid: u32,
    pub threads: u32,
    pub start_ticks: u64,
    pub rss_pages: u64,
}

pub fn parse_proc_stat(text: &str) -> Option<Stat> {
    let (comm, rest) = parse_stat(text)?;
    // `rest[0]` is field 3 (state) of proc(5); field n is rest[n - 3].
    let f = |n: usize| rest.get(n - 3).copied();
    Some(Stat {
        comm,
        state: f(3)?.chars().next()?,
        ppid: f(4)?.parse().ok()?,
        threads: f(20)?.parse().ok()?,
        start_ticks: f(22)?.parse().ok()?,
        rss_pages: f(24)?.parse::<i64>().ok()?.max(0) as u64,
    })
}

fn sysconf(name: libc::c_int, default: i64) -> i64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for unknown names.
    let v = unsafe { libc::sysconf(name) };
    if v > 0 { v as i64 } else { default }
}

fn count_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|rd| rd.count())
}

pub fn pids() -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut v: Vec<u32> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect();
    v.sort_unstable();
    v
}

pub fn probe(cfg: &SnapshotConfig, uptime_secs: f64, errors: &mut Vec<String>) -> ProcessSummary {
    let tick = sysconf(libc::_SC_CLK_TCK, 100) as f64;
    let page = sysconf(libc::_SC_PAGESIZE, 4096) as f64;
    let mut s = ProcessSummary::default();
    let all = pids();
    if all.is_empty() {
        errors.push("/proc: no processes could be listed".into());
    }
    for pid in all {
        // A process can exit between listing and reading: that is not an error.
        let Some(st) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|t| parse_proc_stat(&t))
        else {
            continue;
        };
        s.total_count += 1;
        let age_secs = (uptime_secs - st.start_ticks as f64 / tick).max(0.0);
        let memory_mb = st.rss_pages as f64 * page / 1024.0 / 1024.0;
        let fds = if st.state == 'Z' {
            None
        } else {
            count_fds(pid)
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
            ppid: st.ppid,
            name: st.comm,
            state: st.state.to_string(),
            age_days: round(age_secs / 86400.0, 2),
            memory_mb: round(memory_mb, 1),
            open_fds: fds,
            threads: st.threads,
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
    fn parses_stat_line() {
        let line = "1234 (my (odd) proc) Z 77 1234 1234 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 3 0 5000 0 25 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let st = parse_proc_stat(line).unwrap();
        assert_eq!(st.comm, "my (odd) proc");
        assert_eq!(st.state, 'Z');
        assert_eq!(st.ppid, 77);
        assert_eq!(st.threads, 3);
        assert_eq!(st.start_ticks, 5000);
        assert_eq!(st.rss_pages, 25);
        assert!(parse_proc_stat("1 (x) S").is_none());
    }

    #[test]
    fn live_census_counts_this_process() {
        let mut errs = vec![];
        let s = probe(&SnapshotConfig::default(), 1e9, &mut errs);
        assert!(errs.is_empty());
        assert!(s.total_count > 1);
    }
}
