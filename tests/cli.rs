//! End-to-end tests of `sentinel run` as a user runs it: the real binary, real probes, JSON
//! lines out, exit codes, signals, loss reporting and kernel-side filtering.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use sentinel_e2e::*;
use serde_json::Value;

/// These tests assert exact loss counts, and the flood test would overflow the others' ring
/// buffers: they run one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Starts `sentinel run ARGS --json`, waits until its probes are attached (the status line),
/// runs `during`, and returns every JSON line and the exit code.
fn run_json(args: &[&str], during: impl FnOnce()) -> (Vec<Value>, i32, String) {
    // --no-detect: these tests are about the collector and its raw events.
    run_json_as(&["run", "--json", "--no-detect"], args, during)
}

fn run_json_as(base: &[&str], args: &[&str], during: impl FnOnce()) -> (Vec<Value>, i32, String) {
    require_root();
    let _one_at_a_time = serial();
    let mut child = Command::new(sentinel_bin())
        .args(base)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sentinel");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("status line");
    let status: Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("{e}: {first:?}"));
    assert_eq!(status["type"], "status", "{status}");
    during();
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut out, &mut rest).expect("read stdout");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    let code = child.wait().expect("wait").code().unwrap_or(-1);
    let mut all = vec![status];
    all.extend(lines(&rest));
    (all, code, err)
}

#[test]
fn run_json_streams_status_events_and_summary() {
    let mut pid = 0;
    let (recs, code, err) = run_json(&["--kinds", "exec,exit", "--duration", "3s"], || {
        pid = run_workload(&["exit", "3"]).pid;
    });
    assert_eq!(code, 0, "stderr: {err}");
    assert!(
        recs[0]["attached"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h == "syscalls/sys_enter_execve")
    );
    let exec = recs
        .iter()
        .find(|r| r["type"] == "event" && r["kind"] == "exec" && r["pid"] == pid)
        .unwrap_or_else(|| panic!("no exec event for {pid}"));
    assert_eq!(exec["argv"][1], "exit");
    assert_eq!(exec["ret"], 0);
    let exit = recs
        .iter()
        .find(|r| r["kind"] == "exit" && r["pid"] == pid)
        .expect("exit event");
    assert_eq!(exit["code"], 3);
    assert!(
        recs.iter()
            .all(|r| r["type"] != "event" || r["kind"] == "exec" || r["kind"] == "exit"),
        "--kinds filters"
    );
    let summary = recs.last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert!(summary["stats"]["received"]["exec"].as_u64().unwrap() >= 1);
    assert_eq!(summary["kernel_lost"], serde_json::json!({}));
}

#[test]
fn a_flood_is_counted_as_lost_not_silently_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sentinel.toml");
    // A one-page ring buffer drained once a second cannot hold an open storm.
    std::fs::write(
        &cfg,
        "[collect]\nring_buffer_bytes = 4096\ndrain_interval_ms = 1000\n",
    )
    .unwrap();
    // A path too long for in-kernel repeat counting: every open is a record.
    let target = dir.path().join("f".repeat(150));
    std::fs::write(&target, "x").unwrap();
    let (recs, code, err) = run_json(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--kinds",
            "open",
            "--duration",
            "3s",
        ],
        || {
            let r = run_workload(&[
                std::ffi::OsStr::new("open-storm"),
                target.as_os_str(),
                std::ffi::OsStr::new("200000"),
            ]);
            assert!(r.status.success());
        },
    );
    assert_eq!(code, 1, "lost events make the exit code 1; stderr: {err}");
    let summary = recs.last().unwrap();
    let lost = summary["kernel_lost"]["open"].as_u64().unwrap_or(0);
    let got = summary["stats"]["received"]["open"].as_u64().unwrap_or(0);
    assert!(lost > 0, "{summary}");
    assert!(got > 0, "{summary}");
    assert!(
        lost + got <= 200_000 + 10_000,
        "counts are plausible: {summary}"
    );
}

/// Flooding the agent to hide is itself reported: a `blind_spot` anomaly for the host with
/// the loss count, naming the busiest user.
#[test]
fn a_flood_is_a_blind_spot_anomaly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sentinel.toml");
    std::fs::write(
        &cfg,
        format!(
            "store = {:?}\n[collect]\nring_buffer_bytes = 4096\ndrain_interval_ms = 1000\n",
            dir.path().join("agent.db")
        ),
    )
    .unwrap();
    let target = dir.path().join("g".repeat(150));
    std::fs::write(&target, "x").unwrap();
    let (recs, code, err) = run_json_as(
        &["run", "--json"],
        &["--config", cfg.to_str().unwrap(), "--duration", "4s"],
        || {
            let r = run_workload(&[
                std::ffi::OsStr::new("open-storm"),
                target.as_os_str(),
                std::ffi::OsStr::new("200000"),
            ]);
            assert!(r.status.success());
        },
    );
    assert_eq!(code, 1, "lost events make the exit code 1; stderr: {err}");
    let blind = recs
        .iter()
        .find(|r| r["type"] == "anomaly" && r["factors"][0]["detection"] == "blind_spot")
        .unwrap_or_else(|| panic!("no blind_spot anomaly; stderr: {err}"));
    let reason = blind["factors"][0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the agent lost ") && reason.contains("busiest user"),
        "{reason}"
    );
    assert!(
        blind["level"] == "medium" || blind["level"] == "high",
        "{blind}"
    );
}

#[test]
fn syscall_arguments_from_registers_and_from_the_stash_agree() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("args-target");
    std::fs::write(&target, "x").unwrap();
    let mut seen = Vec::new();
    for (mode, source) in [("auto", "registers"), ("stash", "stash")] {
        let cfg = dir.path().join(format!("{mode}.toml"));
        std::fs::write(&cfg, format!("[collect]\nsyscall_args = {mode:?}\n")).unwrap();
        let (mut pid, mut prctl_pid, mut sockets_pid) = (0, 0, 0);
        let (recs, code, err) = run_json(
            &[
                "--config",
                cfg.to_str().unwrap(),
                "--kinds",
                "open,prctl,socket",
                "--duration",
                "2s",
            ],
            || {
                pid = run_workload(&[std::ffi::OsStr::new("open"), target.as_os_str()]).pid;
                prctl_pid = run_workload(&["prctl", "renamed"]).pid;
                sockets_pid = run_workload(&["sockets"]).pid;
            },
        );
        assert_eq!(code, 0, "{mode}: {err}");
        let status = &recs[0];
        assert_eq!(status["syscall_args"], source, "{status}");
        let enter_hooks = status["attached"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h == "syscalls/sys_enter_openat");
        assert_eq!(enter_hooks, mode == "stash", "{status}");
        let open = recs
            .iter()
            .find(|r| {
                r["kind"] == "open" && r["pid"] == pid && r["path"] == target.to_str().unwrap()
            })
            .unwrap_or_else(|| panic!("{mode}: no open of {target:?} by {pid}"));
        assert!(open["ret"].as_i64().unwrap() >= 0, "{open}");
        assert_eq!(open["dfd"], -100, "AT_FDCWD: {open}");
        seen.push((
            open["syscall"].clone(),
            open["flags"].clone(),
            open["mode"].clone(),
        ));
        assert_eq!(recs.last().unwrap()["kernel_lost"], serde_json::json!({}));
        // Argument conditions drop calls in both modes (in stash mode before stashing).
        let prctls: Vec<_> = recs
            .iter()
            .filter(|r| r["kind"] == "prctl" && r["pid"] == prctl_pid)
            .collect();
        assert_eq!(prctls.len(), 1, "{mode}: only PR_SET_NAME: {prctls:?}");
        assert_eq!(prctls[0]["name"], "renamed");
        let sockets = recs
            .iter()
            .filter(|r| r["kind"] == "socket" && r["pid"] == sockets_pid)
            .count();
        assert_eq!(
            sockets, 3,
            "{mode}: packet, raw ICMP and the refused raw socket"
        );
    }
    assert_eq!(seen[0], seen[1], "the same open, read both ways");
}

#[test]
fn a_reader_that_goes_away_is_not_a_crash() {
    require_root();
    let _one_at_a_time = serial();
    // `sentinel run --json | head -1`: stdout closes after the first line.
    let mut child = Command::new(sentinel_bin())
        .args([
            "run",
            "--json",
            "--events",
            "--no-detect",
            "--duration",
            "2s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sentinel");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("status line");
    assert!(first.contains("\"type\":\"status\""), "{first}");
    drop(out);
    let _ = run_workload(&["exit", "0"]);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    let code = child.wait().expect("wait").code();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn repeated_opens_are_counted_in_the_kernel_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("counted");
    let long = dir.path().join("l".repeat(150));
    std::fs::write(&short, "x").unwrap();
    std::fs::write(&long, "x").unwrap();
    let (mut counted, mut each, mut dirs) = (0, 0, 0);
    let (recs, code, err) = run_json(&["--kinds", "open,exit", "--duration", "4s"], || {
        let storm = |p: &std::path::Path, n: &str| {
            let r = run_workload(&[
                std::ffi::OsStr::new("open-storm"),
                p.as_os_str(),
                n.as_ref(),
            ]);
            assert!(r.status.success());
            r.pid
        };
        counted = storm(&short, "20000");
        each = storm(&long, "300");
        let r = run_workload(&[
            std::ffi::OsStr::new("dir-storm"),
            dir.path().as_os_str(),
            "100".as_ref(),
        ]);
        assert!(r.status.success());
        dirs = r.pid;
    });
    assert_eq!(code, 0, "{err}");
    let of = |pid: u32, path: &std::path::Path| -> Vec<&Value> {
        recs.iter()
            .filter(|r| {
                r["kind"] == "open" && r["pid"] == pid && r["path"] == path.to_str().unwrap()
            })
            .collect()
    };
    // A repeat report stands for its `repeats` opens; any other record for one.
    let opens =
        |rs: &[&Value]| -> u64 { rs.iter().map(|r| r["repeats"].as_u64().unwrap_or(1)).sum() };
    let c = of(counted, &short);
    assert_eq!(opens(&c), 20_000, "every open accounted for: {c:?}");
    assert!(
        c.len() <= 10,
        "sent once, then counted: {} records",
        c.len()
    );
    assert!(
        c[0].get("repeats").is_none(),
        "the first open is sent as is: {}",
        c[0]
    );
    let e = of(each, &long);
    assert_eq!(
        (e.len(), opens(&e)),
        (300, 300),
        "long paths are not counted"
    );
    // Directory opens are all sent, each with its own descriptor: opens relative to a
    // descriptor are placed by the open that returned it.
    let d = of(dirs, dir.path());
    let fds: std::collections::HashSet<i64> = d.iter().filter_map(|r| r["ret"].as_i64()).collect();
    assert_eq!(
        (d.len(), opens(&d), fds.len()),
        (100, 100, 2),
        "directory opens are never counted: {:?}",
        d.iter().take(3).collect::<Vec<_>>()
    );
    let summary = recs.last().unwrap();
    assert!(
        summary["stats"]["open_repeats"].as_u64().unwrap() >= 19_990,
        "{summary}"
    );
    // The storm exited well before the end: its counting entry was read and removed then.
    assert!(
        summary["stats"]["repeat_entries_finished"]
            .as_u64()
            .unwrap()
            >= 1,
        "{summary}"
    );
}

#[test]
fn ignored_prefixes_are_dropped_in_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let ignored = dir.path().join("ignored");
    std::fs::create_dir(&ignored).unwrap();
    let a = ignored.join("a");
    let b = dir.path().join("b");
    std::fs::write(&a, "x").unwrap();
    std::fs::write(&b, "x").unwrap();
    let (mut pa, mut pb) = (0, 0);
    let (recs, code, err) = run_json(
        &[
            "--kinds",
            "open",
            "--duration",
            "3s",
            "--ignore-prefix",
            ignored.to_str().unwrap(),
        ],
        || {
            pa = run_workload(&[std::ffi::OsStr::new("open"), a.as_os_str()]).pid;
            pb = run_workload(&[std::ffi::OsStr::new("open"), b.as_os_str()]).pid;
        },
    );
    assert_eq!(code, 0, "{err}");
    let path_of = |pid: u32| -> Vec<String> {
        recs.iter()
            .filter(|r| r["pid"] == pid)
            .map(|r| r["path"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert!(
        path_of(pb).contains(&b.to_str().unwrap().to_string()),
        "the other open is seen"
    );
    assert!(
        !path_of(pa).contains(&a.to_str().unwrap().to_string()),
        "the ignored open is not"
    );
}

#[test]
fn sigterm_stops_cleanly_with_final_counts() {
    require_root();
    let _one_at_a_time = serial();
    let mut child = Command::new(sentinel_bin())
        .args(["run", "--no-detect", "--kinds", "exec"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    // Right away: the agent handles SIGTERM from the moment it says its hooks are attached.
    assert!(first.contains("hooks attached"), "{first}");
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(0), "{rest}");
    assert!(
        rest.contains("events received:") && rest.contains("lost in kernel"),
        "{rest}"
    );
}

#[test]
fn not_root_and_bad_flags_are_clear_errors() {
    require_root();
    let out = Command::new(sentinel_bin())
        .args(["run", "--duration", "1s"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("must run as root"),
        "{:?}",
        out
    );

    let out = Command::new(sentinel_bin())
        .args(["run", "--kinds", "exec,bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown event kind \"bogus\""),
        "{:?}",
        out
    );

    let out = Command::new(sentinel_bin())
        .args(["run", "--duration", "5 parsecs"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "a bad duration is a usage error"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("duration"),
        "{:?}",
        out
    );
}

#[test]
fn mounts_tracefs_when_it_is_missing() {
    require_root();
    let _one_at_a_time = serial();
    // In a private mount namespace, take tracefs (and debugfs's view of it) away, then run.
    let script = format!(
        "umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug 2>/dev/null; \
         test ! -d /sys/kernel/tracing/events || exit 99; \
         {} run --no-detect --kinds exec --duration 1s --json",
        sentinel_bin().display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = lines(&out.stdout);
    assert_eq!(recs[0]["type"], "status");
    assert_eq!(recs[0]["mounted_tracefs"], true, "{}", recs[0]);
    assert!(!recs[0]["attached"].as_array().unwrap().is_empty());
}
