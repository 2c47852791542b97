//! Host facts: name, kernel, uptime, load and memory (MemAvailable, so page cache is not
//! counted as used, unlike C-Sentinel's sysinfo free RAM), read by the `procfs` crate.

use procfs::Current;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemInfo {
    pub hostname: String,
    pub kernel: String,
    pub uptime_days: f64,
    pub load_average: [f64; 3],
    pub memory_total_gb: f64,
    pub memory_available_gb: f64,
    /// 100 x (1 - available/total); absent when /proc/meminfo is unreadable.
    pub memory_used_percent: Option<f64>,
    pub cpu_count: usize,
}

pub fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

fn read(path: &str, errors: &mut Vec<String>) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| {
        errors.push(format!("{path}: {e}"));
        String::new()
    })
}

/// Probes the host; unreadable sources are listed in `errors` and leave zeros.
pub fn probe(errors: &mut Vec<String>) -> SystemInfo {
    let hostname = read("/proc/sys/kernel/hostname", errors).trim().to_string();
    let kernel = format!(
        "{} {}",
        read("/proc/sys/kernel/ostype", errors).trim(),
        read("/proc/sys/kernel/osrelease", errors).trim()
    );
    let uptime = uptime_secs().unwrap_or_else(|e| {
        errors.push(format!("/proc/uptime: {e}"));
        0.0
    });
    let load = match procfs::LoadAverage::current() {
        Ok(l) => [l.one, l.five, l.fifteen].map(|v| round(f64::from(v), 2)),
        Err(e) => {
            errors.push(format!("/proc/loadavg: {e}"));
            [0.0; 3]
        }
    };
    let (total_kb, avail_kb) = match procfs::Meminfo::current() {
        Ok(m) => memory_kb(&m),
        Err(e) => {
            errors.push(format!("/proc/meminfo: {e}"));
            (0, 0)
        }
    };
    let gb = |kb: u64| round(kb as f64 / 1024.0 / 1024.0, 2);
    SystemInfo {
        hostname,
        kernel,
        uptime_days: round(uptime / 86400.0, 2),
        load_average: load,
        memory_total_gb: gb(total_kb),
        memory_available_gb: gb(avail_kb),
        memory_used_percent: (total_kb > 0)
            .then(|| round(100.0 * (1.0 - avail_kb as f64 / total_kb as f64), 1)),
        cpu_count: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    }
}

/// Seconds since boot.
pub fn uptime_secs() -> procfs::ProcResult<f64> {
    procfs::Uptime::current().map(|u| u.uptime)
}

/// (MemTotal, MemAvailable) in kB; MemFree + Buffers + Cached when MemAvailable is missing.
fn memory_kb(m: &procfs::Meminfo) -> (u64, u64) {
    let kb = |bytes: u64| bytes / 1024;
    let total = kb(m.mem_total);
    // Saturating: a corrupt or hostile file must not overflow the sum.
    let avail = m.mem_available.map(kb).unwrap_or_else(|| {
        kb(m.mem_free)
            .saturating_add(kb(m.buffers))
            .saturating_add(kb(m.cached))
    });
    (total, avail.min(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_probe_has_no_nan() {
        let mut errs = vec![];
        let s = probe(&mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        assert!(!s.hostname.is_empty());
        assert!(s.kernel.starts_with("Linux "));
        assert!(s.memory_used_percent.is_some_and(|p| p.is_finite()));
    }
}
