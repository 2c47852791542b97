//! Host facts: name, kernel, uptime, load and memory (MemAvailable, so page cache is not
//! counted as used, unlike C-Sentinel's sysinfo free RAM).

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
    let uptime = uptime_secs(&read("/proc/uptime", errors)).unwrap_or(0.0);
    let load = parse_loadavg(&read("/proc/loadavg", errors));
    let (total_kb, avail_kb) = parse_meminfo(&read("/proc/meminfo", errors));
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

pub fn uptime_secs(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

pub fn parse_loadavg(text: &str) -> [f64; 3] {
    let mut it = text
        .split_whitespace()
        .map(|v| v.parse::<f64>().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

/// (MemTotal, MemAvailable) in kB; MemFree + Buffers + Cached when MemAvailable is missing.
pub fn parse_meminfo(text: &str) -> (u64, u64) {
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|r| r.trim_start_matches(':').split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let total = get("MemTotal").unwrap_or(0);
    // Saturating: a corrupt or hostile file must not overflow the sum.
    let avail = get("MemAvailable").unwrap_or_else(|| {
        ["MemFree", "Buffers", "Cached"]
            .into_iter()
            .fold(0u64, |sum, k| sum.saturating_add(get(k).unwrap_or(0)))
    });
    (total, avail.min(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        assert_eq!(
            parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 600 kB\n"),
            (1000, 600)
        );
        assert_eq!(
            parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 50 kB\n"),
            (1000, 200)
        );
        assert_eq!(parse_meminfo("junk"), (0, 0));
        assert_eq!(parse_loadavg("0.5 1.25 2 1/100 42"), [0.5, 1.25, 2.0]);
        assert_eq!(uptime_secs("123.4 5"), Some(123.4));
    }

    #[test]
    fn meminfo_sum_does_not_overflow() {
        // Without MemAvailable the fallback adds three fields; huge values used to overflow.
        let text = "MemTotal: 18446744073709551615 kB\nMemFree: 18446744073709551615 kB\n\
                    Buffers: 1 kB\nCached: 18446744073709551615 kB\n";
        assert_eq!(parse_meminfo(text), (u64::MAX, u64::MAX));
    }

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
