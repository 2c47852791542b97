//! Helpers shared by the end-to-end tests: a live collector shared by all tests of a binary,
//! waiting for events from a given process, and the paths of the binaries under test. The
//! dashboard helpers live in `dash` (and a local SMTP receiver in `smtp`), the detection evaluation (tests/corpus) in `eval`.

pub mod dash;
pub mod fleet;
pub mod load;
pub mod smtp;

pub mod auditd;

pub mod eval;
pub mod world;

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use sentinel::collect::{Collector, LoadOptions, parse_kinds};
use sentinel::event::Event;

/// How long to wait for an event before declaring it missing. Generous: a missing event is a
/// failure, a slow one is not.
pub const EVENT_WAIT: Duration = Duration::from_secs(15);

/// Panics unless running as root: privileged tests must fail, not skip, when they cannot run.
pub fn require_root() {
    // SAFETY: no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "end-to-end tests load eBPF programs and must run as root"
    );
}

static EVENTS: Mutex<Vec<Event>> = Mutex::new(Vec::new());
/// Whether the shared collector started, and why not: kept, so that after one failed start
/// every test fails at once with the same reason instead of loading the programs again.
static LIVE: OnceLock<Result<(), String>> = OnceLock::new();
static COLLECTOR: Mutex<Option<Collector>> = Mutex::new(None);

/// Starts (once per test binary) a collector with every kind enabled, feeding `EVENTS`.
fn live() -> &'static Mutex<Vec<Event>> {
    require_root();
    let started = LIVE.get_or_init(|| {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let opts = LoadOptions {
                    kinds: parse_kinds(&[]).expect("kinds"),
                    ignore_prefixes: vec![],
                    ring_buffer_bytes: 64 << 20,
                    wakeup_bytes: 16 << 20,
                    agent_tgid: std::process::id(),
                    stash_args: false,
                    exec_env: sentinel::collect::DEFAULT_EXEC_ENV
                        .iter()
                        .map(|s| s.to_string())
                        .collect(),
                    floor: None,
                };
                let (collector, mut rx) =
                    match Collector::start(&opts, Duration::from_millis(10), 1 << 20) {
                        Ok(x) => x,
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("{e}")));
                            return;
                        }
                    };
                // Every hook attaches on the kernels these tests run on: one that does not is
                // a broken program (the kernel refuses some only at attach time), not a skip.
                let failed = &collector.report().failed;
                if !failed.is_empty() {
                    let _ = ready_tx.send(Err(format!("hooks failed to attach: {failed:?}")));
                    return;
                }
                *COLLECTOR.lock().expect("lock") = Some(collector);
                let _ = ready_tx.send(Ok(()));
                while let Some(mut chunk) = rx.recv().await {
                    let mut v = EVENTS.lock().expect("lock");
                    if v.len() > 2_000_000 {
                        v.drain(..1_000_000);
                    }
                    v.extend(chunk.drain(..));
                }
            });
        });
        // Generous: under an emulated guest (cargo xtask vm-test) the verifier alone takes
        // a minute.
        ready_rx
            .recv_timeout(Duration::from_secs(300))
            .unwrap_or_else(|e| Err(format!("collector thread died: {e}")))
    });
    if let Err(e) = started {
        panic!("cannot start the collector: {e}");
    }
    &EVENTS
}

/// What the shared collector lost so far (kernel: ring buffer full; user space: channel full),
/// for failure messages: a missing event with nothing lost is a different bug from one lost.
pub fn live_losses() -> String {
    live();
    match COLLECTOR.lock().expect("lock").as_ref() {
        Some(c) => {
            let (kernel, _) = c.kernel_lost();
            let user = c.stats().snapshot();
            format!(
                "kernel lost {kernel:?}, channel dropped {:?}, undecodable {}",
                user.channel_dropped, user.decode_errors
            )
        }
        None => "collector not running".into(),
    }
}

/// Captured syscalls the shared collector found missing from this kernel.
pub fn live_unavailable() -> Vec<String> {
    live();
    match COLLECTOR.lock().expect("lock").as_ref() {
        Some(c) => c.report().unavailable.clone(),
        None => Vec::new(),
    }
}

/// Makes sure the shared collector runs before the caller triggers anything.
pub fn start_live() {
    live();
}

/// Waits until an event matching `pred` has been collected; panics with `what` if none comes.
pub fn wait_for(what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    let l = live();
    let deadline = Instant::now() + EVENT_WAIT;
    loop {
        if let Some(ev) = l.lock().expect("lock").iter().find(|e| pred(e)) {
            return ev.clone();
        }
        if Instant::now() > deadline {
            let n = l.lock().expect("lock").len();
            panic!(
                "no event matching {what} after {EVENT_WAIT:?} ({n} events collected; {})",
                live_losses()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// All collected events matching `pred` so far.
pub fn collected(pred: impl Fn(&Event) -> bool) -> Vec<Event> {
    live()
        .lock()
        .expect("lock")
        .iter()
        .filter(|e| pred(e))
        .cloned()
        .collect()
}

/// target/<profile>/ of the current test binary (it lives in target/<profile>/deps/).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .to_path_buf()
}

/// The `sentinel` binary under test, built (once per test process) from the current sources:
/// cargo builds a test crate's dependencies as libraries only, and a stale agent binary would
/// test yesterday's code. Cheap when `cargo xtask test` has just built it.
pub fn sentinel_bin() -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = std::process::Command::new(cargo);
        build.args(["build", "--quiet", "-p", "sentinel"]);
        // The variables cargo sets for this test process would make that build differ from
        // `cargo build -p sentinel` run by hand (or by xtask): each would rebuild the other's.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("CARGO_") && k != "CARGO_HOME" && k != "CARGO_TARGET_DIR" {
                build.env_remove(&*k);
            }
        }
        if !cfg!(debug_assertions) {
            build.arg("--release");
        }
        let out = build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .map_err(|e| format!("running cargo: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    if let Err(e) = built {
        panic!("building the sentinel binary failed:\n{e}");
    }
    let p = target_dir().join("sentinel");
    assert!(p.exists(), "{} is missing after the build", p.display());
    p
}

/// The workload helper (a binary of this crate; cargo builds it for the integration tests).
pub fn workload_bin() -> PathBuf {
    target_dir().join("sentinel-workload")
}

/// Output of one workload run: its pid and its `key=value` lines.
pub struct Ran {
    pub pid: u32,
    pub facts: Vec<(String, String)>,
    pub status: std::process::ExitStatus,
}

impl Ran {
    pub fn fact(&self, k: &str) -> i64 {
        self.facts
            .iter()
            .find(|(kk, _)| kk == k)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("workload printed no {k}= ({:?})", self.facts))
    }
}

/// Runs `sentinel-workload ARGS...` to completion.
pub fn run_workload<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Ran {
    let child = std::process::Command::new(workload_bin())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn workload");
    let pid = child.id();
    let out = child.wait_with_output().expect("workload output");
    let facts = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    Ran {
        pid,
        facts,
        status: out.status,
    }
}

/// This process's login uid as the kernel reports it (None when unset).
pub fn own_loginuid() -> Option<u32> {
    let s = std::fs::read_to_string("/proc/self/loginuid").ok()?;
    let v: u32 = s.trim().parse().ok()?;
    (v != u32::MAX).then_some(v)
}

/// Collected events with an id above `after`, in order (ids grow with arrival; a consumer
/// that remembers the last id it saw gets each event once).
pub fn events_after(after: u64) -> Vec<Event> {
    let v = live().lock().expect("lock");
    let start = v.partition_point(|e| e.id <= after);
    v[start..].to_vec()
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

/// Starts `sentinel <args>` with its stdout as a channel of lines.
pub fn spawn_sentinel(args: &[&str]) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = std::process::Command::new(sentinel_bin())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawning sentinel");
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Reads lines until one satisfies `pred` (the bound only stops a hung test).
pub fn wait_line(
    rx: &std::sync::mpsc::Receiver<String>,
    what: &str,
    pred: impl Fn(&str) -> bool,
) -> String {
    loop {
        match rx.recv_timeout(std::time::Duration::from_secs(120)) {
            Ok(l) if pred(&l) => return l,
            Ok(_) => {}
            Err(e) => panic!("watch output never showed {what}: {e}"),
        }
    }
}

/// Stops a spawned `sentinel` with SIGTERM and returns its exit code.
pub fn stop_sentinel(child: &mut std::process::Child) -> i32 {
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child
        .wait()
        .expect("waiting for sentinel")
        .code()
        .unwrap_or(-1)
}

/// Runs `f` in a forked child of the test process and returns the child's pid and the values
/// `f` returned (sent back through a pipe). For syscalls the workload binary has no action
/// for: the child makes the real call, the shared collector sees it (only the test process
/// itself is filtered). `f` runs after a fork of a multithreaded process: it must only make
/// syscalls on data prepared before (no allocation, no locks).
pub fn in_child<const N: usize>(f: impl FnOnce() -> [i64; N]) -> (u32, [i64; N]) {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills the array we own.
    assert_eq!(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) },
        0,
        "pipe2"
    );
    // SAFETY: the child only runs `f` (syscalls, by contract), writes and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        // SAFETY: raw write of plain integers and _exit, both async-signal-safe.
        unsafe {
            match out {
                Ok(v) => {
                    let n = size_of::<[i64; N]>();
                    let ok = libc::write(fds[1], v.as_ptr().cast(), n) == n as isize;
                    libc::_exit(if ok { 0 } else { 3 });
                }
                Err(_) => libc::_exit(101),
            }
        }
    }
    // SAFETY: closing our copy of the write end, reading into a buffer we own.
    unsafe { libc::close(fds[1]) };
    let mut v = [0i64; N];
    let n = size_of::<[i64; N]>();
    let mut got = 0usize;
    while got < n {
        let r = unsafe { libc::read(fds[0], (v.as_mut_ptr() as *mut u8).add(got).cast(), n - got) };
        if r <= 0 {
            break;
        }
        got += r as usize;
    }
    unsafe { libc::close(fds[0]) };
    let mut st = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    assert!(
        libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0 && got == n,
        "the forked child failed (wait status {st:#x}, {got} of {n} bytes)"
    );
    (pid as u32, v)
}

/// A syscall's result as the records carry it: the value, or -errno when it failed.
pub fn ret_or_errno(r: i64) -> i64 {
    if r < 0 {
        -(std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as i64)
    } else {
        r
    }
}

/// The only record of `syscall` made by process `pid` (panics when none arrives in time, or
/// when there are two: each call in these tests is made once).
pub fn one_call(pid: u32, syscall: &str) -> Event {
    let ev = wait_for(syscall, |e| {
        e.pid == pid && e.syscall.as_deref() == Some(syscall)
    });
    let all = collected(|e| e.pid == pid && e.syscall.as_deref() == Some(syscall));
    assert_eq!(all.len(), 1, "one {syscall} by {pid}: {all:?}");
    ev
}

/// The record of `syscall` by `pid` whose result is `ret` (a call made twice, once failing).
pub fn call_with_ret(pid: u32, syscall: &str, ret: i64) -> Event {
    wait_for(&format!("{syscall} returning {ret}"), |e| {
        e.pid == pid && e.syscall.as_deref() == Some(syscall) && e.ret == ret
    })
}
