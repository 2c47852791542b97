//! Managing the machine's auditd from end-to-end tests: start it when absent, stop only the
//! one a test started, find the log the registered auditd writes, and notice when another
//! process takes the kernel's single auditd slot mid-test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub const LOG: &str = "/var/log/audit/audit.log";

pub fn sh(cmd: &str, args: &[&str]) -> std::process::Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

pub fn must(cmd: &str, args: &[&str]) {
    let o = sh(cmd, args);
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

pub fn auditd_pid() -> Option<u32> {
    let o = sh("auditctl", &["-s"]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("pid "))
        .and_then(|p| p.trim().parse().ok())
        .filter(|p| *p != 0 && Path::new(&format!("/proc/{p}")).exists())
}

pub fn wait_until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..600 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("gave up waiting for {what}");
}

/// Starts auditd when none is registered with the kernel; returns its pid when we started it.
pub fn start_auditd() -> Option<u32> {
    if auditd_pid().is_some() {
        return None;
    }
    must("/usr/sbin/auditd", &[]);
    wait_until("auditd to start", || auditd_pid().is_some());
    auditd_pid()
}

/// Stops the auditd we started (never someone else's).
pub fn stop_our_auditd(pid: u32) {
    if auditd_pid() == Some(pid) {
        // SAFETY: signalling the auditd this test started.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        wait_until("auditd to stop", || auditd_pid() != Some(pid));
    }
}

/// The log the registered auditd writes: the default, or whatever its configuration names
/// (another test on the machine may run auditd with a private configuration).
pub fn active_log() -> PathBuf {
    let Some(pid) = auditd_pid() else {
        return PathBuf::from(LOG);
    };
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .find(|t| t.extension().is_some_and(|x| x == "log"))
        .unwrap_or_else(|| PathBuf::from(LOG))
}

/// The kernel has one auditd slot: when another process replaces the auditd this test reads,
/// its records go to another log. Say so plainly rather than fail on a missing count.
pub fn same_auditd(expected: u32) {
    let now = auditd_pid();
    if now != Some(expected) {
        let who = now
            .and_then(|p| std::fs::read(format!("/proc/{p}/cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .unwrap_or_else(|| "none".into());
        panic!(
            "auditd {expected} was replaced during the test (now: {now:?} {who}); \
             audit tests need the machine's only auditd and cannot run beside another one"
        );
    }
}
