//! Helpers shared by the end-to-end tests.

use std::path::PathBuf;

/// The `sentinel` binary of this build: target/<profile>/sentinel, found from the test
/// executable (target/<profile>/deps/<test>-<hash>). Build it first: `cargo build -p sentinel`.
pub fn sentinel_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable is under target/<profile>/deps");
    let bin = profile_dir.join("sentinel");
    assert!(
        bin.is_file(),
        "{} not found: run `cargo build -p sentinel` before the end-to-end tests",
        bin.display()
    );
    bin
}

/// Fails the test unless it runs as root (privileged tests must fail, not skip).
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "this end-to-end test must run as root");
}

/// Output of one `sentinel` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs the built `sentinel` with `args` (NO_COLOR and RUST_LOG cleared) and waits for it.
pub fn sentinel(args: &[&str]) -> Run {
    let out = std::process::Command::new(sentinel_bin())
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .output()
        .expect("running sentinel");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
