//! Managing the machine's auditd from end-to-end tests: take the kernel's single auditd slot
//! (stopping one that ran before and starting it again afterwards), stop only the one a test
//! started, find the log the registered auditd writes, and notice when another process takes
//! the slot mid-test.

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

/// The auditd a test owns: it started it, after stopping any that ran before; dropping it
/// stops ours and starts the previous one again with its own command line.
pub struct OwnAuditd {
    pub pid: u32,
    /// The command line of the auditd that ran before the test, to start again.
    previous: Option<Vec<String>>,
}

/// Makes the registered auditd one this test started, whatever ran before: a test that needs
/// to stop auditd (the "not running" report) must not depend on whether the machine ran one.
pub fn take_over_auditd() -> OwnAuditd {
    let previous = auditd_pid().map(|pid| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .unwrap_or_else(|e| panic!("reading the running auditd's command line: {e}"));
        let argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        assert!(!argv.is_empty(), "auditd {pid} has no command line");
        // SAFETY: signalling the registered auditd; it is started again on drop.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        wait_until("the running auditd to stop", || auditd_pid().is_none());
        argv
    });
    must("/usr/sbin/auditd", &[]);
    wait_until("auditd to start", || auditd_pid().is_some());
    OwnAuditd {
        pid: auditd_pid().expect("auditd registered"),
        previous,
    }
}

impl OwnAuditd {
    /// Stops our auditd (idempotent; never someone else's).
    pub fn stop(&self) {
        if auditd_pid() == Some(self.pid) {
            // SAFETY: signalling the auditd this test started.
            unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
            wait_until("auditd to stop", || auditd_pid() != Some(self.pid));
        }
    }
}

impl Drop for OwnAuditd {
    fn drop(&mut self) {
        self.stop();
        if let Some(argv) = self.previous.take() {
            // Detached: an auditd run in the foreground (-n) keeps running after the test.
            let started = Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn();
            match started {
                Ok(_) => wait_until("the previous auditd to start again", || {
                    auditd_pid().is_some()
                }),
                Err(e) => eprintln!("could not start the previous auditd again ({argv:?}): {e}"),
            }
        }
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
