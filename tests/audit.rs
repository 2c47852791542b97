//! End-to-end against the real auditd (as root): the test starts its own auditd (one that ran
//! before is stopped and started again afterwards), adds watch
//! and exec rules, causes real records (failed `su` authentications from a throw-away user on a
//! pty, `sudo` with a secret on its command line, reads of a watched file, execution of a binary
//! copied to /tmp, a user added) and asserts the summary the built `sentinel` prints, the live
//! follower, and the "auditd not running" report. Rules, user and files are removed afterwards.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use sentinel::audit::privacy::UserHasher;
use sentinel_e2e::auditd::{
    OwnAuditd, active_log, must, same_auditd, sh, take_over_auditd, wait_until,
};
use sentinel_e2e::{require_root, sentinel, spawn_sentinel, stop_sentinel, wait_line};
use serde_json::Value;

/// Removes what the test added, even when an assertion fails.
struct Cleanup {
    rules: Vec<Vec<String>>,
    user: Option<String>,
    /// The auditd this test started, stopped at the end (the one that ran before started again).
    auditd: OwnAuditd,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for r in &self.rules {
            let args: Vec<&str> = r.iter().map(String::as_str).collect();
            let _ = sh("auditctl", &args);
        }
        if let Some(u) = &self.user {
            let _ = sh("userdel", &[u]);
        }
    }
}

/// Runs `su root -c true` as `uid` on a fresh pty and answers the password prompt wrongly.
fn failed_su(uid: u32, gid: u32) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills two descriptors; null name/termios/winsize are allowed.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: both descriptors were just returned by openpty and are owned here.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut cmd = Command::new("su");
    cmd.args(["root", "-c", "true"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .uid(uid)
        .gid(gid);
    // SAFETY: setsid and ioctl are async-signal-safe; the pty becomes the controlling tty.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawning su");
    drop(cmd);
    let mut m = std::fs::File::from(master);
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("assword") {
        match m.read(&mut buf) {
            Ok(0) | Err(_) => panic!(
                "su ended before asking for a password: {:?}",
                String::from_utf8_lossy(&seen)
            ),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    m.write_all(b"certainly-not-the-root-password\n").unwrap();
    // Drain until su exits (EIO once the slave side closes).
    while let Ok(n) = m.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
    let st = child.wait().unwrap();
    assert!(!st.success(), "su with a wrong password must fail");
}

fn id_of(user: &str, flag: &str) -> u32 {
    String::from_utf8_lossy(&sh("id", &[flag, user]).stdout)
        .trim()
        .parse()
        .unwrap()
}

fn summary_has(
    log: &Path,
    since_ms: i64,
    pred: impl Fn(&[sentinel::audit::AuditEvent]) -> bool,
) -> bool {
    sentinel::audit::reader::read_window(log, since_ms, i64::MAX)
        .map(|(ev, _)| pred(&ev))
        .unwrap_or(false)
}

#[test]
fn real_auditd_records_are_summarised() {
    require_root();
    // Any build of the agent happens now, not between the records and the runs reading them.
    sentinel_e2e::sentinel_bin();
    let auditd = take_over_auditd();
    let daemon = auditd.pid;
    let log = active_log();
    let log_s = log.display().to_string();
    let me = std::process::id();
    let dir = tempfile::Builder::new()
        .prefix("sentinel-e2e-audit")
        .tempdir_in("/tmp")
        .unwrap();
    let d = dir.path().display().to_string();
    let watched = dir.path().join("watched.conf");
    std::fs::write(&watched, "secret = 1\n").unwrap();
    let (wkey, xkey) = (format!("se2e_watch_{me}"), format!("se2e_exec_{me}"));
    let user = format!("se2e{}", me % 1_000_000);
    let ws = watched.display().to_string();
    let watch_rule = |op: &str| {
        [op, &ws, "-p", "rwa", "-k", &wkey]
            .map(String::from)
            .to_vec()
    };
    let dir_field = format!("dir={d}");
    let exec_rule = |op: &str| {
        [
            op,
            "always,exit",
            "-F",
            "arch=b64",
            "-S",
            "execve",
            "-F",
            &dir_field,
            "-k",
            &xkey,
        ]
        .map(String::from)
        .to_vec()
    };
    let mut cleanup = Cleanup {
        rules: vec![watch_rule("-W"), exec_rule("-d")],
        user: None,
        auditd,
    };
    let since_ms = sentinel::snapshot::time::now_ms() - 2000;
    for rule in [watch_rule("-w"), exec_rule("-a")] {
        must(
            "auditctl",
            &rule.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }

    // A throw-away user (ADD_USER record) who then fails to su three times (a burst).
    must("useradd", &["-M", "-s", "/bin/sh", &user]);
    cleanup.user = Some(user.clone());
    let (uid, gid) = (id_of(&user, "-u"), id_of(&user, "-g"));
    for _ in 0..3 {
        failed_su(uid, gid);
    }
    // sudo with a secret on its command line; a read of the watched file; an exec from /tmp.
    must("sudo", &["-n", "env", "DB_PASSWORD=hunter2", "true"]);
    must("cat", &[&watched.display().to_string()]);
    let bin = dir.path().join("e2e-true");
    std::fs::copy("/bin/true", &bin).unwrap();
    must(&bin.display().to_string(), &[]);

    wait_until("the records in the audit log", || {
        summary_has(&log, since_ms, |ev| {
            let has_key = |k: &str| ev.iter().any(|e| e.key() == Some(k));
            has_key(&wkey)
                && has_key(&xkey)
                && ev.iter().any(|e| e.primary_type() == "USER_CMD")
                && ev
                    .iter()
                    .filter(|e| e.primary_type() == "USER_AUTH" && e.failed())
                    .count()
                    >= 3
        })
    });

    let cfg_path = dir.path().join("sentinel.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "store = {:?}\n[snapshot]\nconfig_files = []\n[audit]\nbrute_force_threshold = 3\n\
             brute_force_window_secs = 600\nhmac_key_path = {:?}\nlog_path = {:?}\n",
            dir.path().join("s.db").display().to_string(),
            dir.path().join("hmac.key").display().to_string(),
            log_s,
        ),
    )
    .unwrap();
    let cfg = cfg_path.display().to_string();
    // Each run's window reaches back to `since_ms` from the moment it starts: the runs below
    // take seconds each (and the first may wait for the agent binary to build).
    let window = || ((sentinel::snapshot::time::now_ms() - since_ms) / 1000 + 5).to_string();

    same_auditd(daemon);
    let run = sentinel(&[
        "--json",
        "--network",
        "--audit",
        "--audit-window",
        &window(),
        "--config",
        &cfg,
    ]);
    let fp = run.json();
    let a = &fp["audit_summary"];
    assert_eq!(a["enabled"], true, "{a}");
    assert_eq!(a["auditd_running"], true);
    assert_eq!(a["log_source"], log_s.as_str());
    let hasher = UserHasher::load_or_create(&dir.path().join("hmac.key")).unwrap();

    // Authentication failures and the brute-force burst, with the account hashed.
    let auth = &a["authentication"];
    assert!(auth["failures"].as_u64().unwrap() >= 3, "{auth}");
    assert_eq!(auth["brute_force_detected"], true, "{auth}");
    let root_hash = Value::from(hasher.hash("root"));
    assert!(
        auth["failure_users_hashed"]
            .as_array()
            .unwrap()
            .contains(&root_hash),
        "{auth}"
    );
    assert!(
        auth["bursts"][0]["users_hashed"]
            .as_array()
            .unwrap()
            .contains(&root_hash)
    );

    // sudo, with the secret redacted.
    let pe = &a["privilege_escalation"];
    assert!(pe["sudo_count"].as_u64().unwrap() >= 1, "{pe}");
    assert!(
        pe["sudo_commands"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["command"] == "env DB_PASSWORD=[REDACTED] true"),
        "{pe}"
    );
    assert!(!run.stdout.contains("hunter2"), "the secret leaked");
    assert!(
        !run.stdout.contains(&format!("\"{user}\"")),
        "the user name leaked"
    );

    // The watched file, by key, with the chain through this test process.
    let w = a["file_integrity"]["watched"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["key"] == wkey.as_str())
        .expect("watch key");
    assert!(
        w["paths"]
            .as_array()
            .unwrap()
            .contains(&Value::from(watched.display().to_string())),
        "{w}"
    );
    assert!(
        w["processes"]
            .as_array()
            .unwrap()
            .contains(&Value::from("/usr/bin/cat")),
        "{w}"
    );
    let chain: Vec<u64> = w["process_chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["pid"].as_u64().unwrap())
        .collect();
    assert!(
        chain.contains(&(me as u64)),
        "chain {chain:?} runs through the test ({me})"
    );
    assert_eq!(
        w["process_chain"].as_array().unwrap().last().unwrap()["exe"],
        "/usr/bin/cat"
    );

    // Execution from /tmp.
    let execs = a["process_activity"]["executions"].as_array().unwrap();
    assert!(
        execs.iter().any(|e| e["path"] == bin.display().to_string()),
        "{execs:?}"
    );
    assert!(a["process_activity"]["tmp_executions"].as_u64().unwrap() >= 1);

    // The account change, hashed.
    let acc = a["account_changes"].as_array().unwrap();
    let add = acc
        .iter()
        .find(|c| c["type"] == "ADD_USER")
        .expect("ADD_USER counted");
    assert!(
        add["users_hashed"]
            .as_array()
            .unwrap()
            .contains(&Value::from(hasher.hash(&user))),
        "{add}"
    );

    // One scoring model: factors with audit evidence, and the exit code follows the level.
    let factors = a["risk_factors"].as_array().unwrap();
    let ids: Vec<&str> = factors
        .iter()
        .map(|f| f["detection"].as_str().unwrap())
        .collect();
    for want in [
        "auth_failure",
        "brute_force",
        "watched_file_access",
        "exec_from_tmp",
        "account_change",
    ] {
        assert!(ids.contains(&want), "{want} in {ids:?}");
    }
    assert!(factors.iter().all(|f| {
        f["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.as_str().unwrap().starts_with("audit:"))
    }));
    assert_eq!(a["risk_level"], "critical", "{}", a["risk_score"]);
    assert_eq!(run.code, 2);

    // The habit command in readable form.
    same_auditd(daemon);
    let q = sentinel(&[
        "--quick",
        "--network",
        "--audit",
        "--no-color",
        "--audit-window",
        &window(),
        "--config",
        &cfg,
    ]);
    assert_eq!(q.code, 2);
    assert!(
        q.stdout.contains("BRUTE FORCE") && q.stdout.contains(&format!("watch '{wkey}'")),
        "{}",
        q.stdout
    );

    // sudo against the baseline: learn once, then the summary carries the baseline average.
    same_auditd(daemon);
    let l = sentinel(&[
        "--learn",
        "--audit",
        "--audit-window",
        &window(),
        "--config",
        &cfg,
    ]);
    assert_eq!(l.code, 0, "{}{}", l.stdout, l.stderr);
    assert!(
        l.stdout.contains("Audit baseline updated: 1 sample(s)"),
        "{}",
        l.stdout
    );
    same_auditd(daemon);
    let again = sentinel(&[
        "--json",
        "--audit",
        "--audit-window",
        &window(),
        "--config",
        &cfg,
    ])
    .json();
    assert_eq!(again["audit_summary"]["learning"]["sample_count"], 1);
    assert!(
        again["audit_summary"]["privilege_escalation"]["sudo_baseline_avg"]
            .as_f64()
            .unwrap()
            > 0.0
    );

    // The habit watch command reports each interval's new audit facts, once.
    same_auditd(daemon);
    let (mut child, rx) = spawn_sentinel(&[
        "--watch",
        "--interval",
        "1",
        "--network",
        "--audit",
        "--json",
        "--audit-window",
        &window(),
        "--config",
        &cfg,
    ]);
    wait_line(&rx, "the first fingerprint", |_| true);
    must("cat", &[&ws]);
    let line = wait_line(&rx, "the new watched-file read", |l| {
        l.contains("\"kind\":\"audit\"") && l.contains(&wkey)
    });
    let v: Value = serde_json::from_str(&line).expect("watch lines are JSON");
    let hit = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "audit" && c["detail"].as_str().unwrap().contains(&wkey))
        .expect("an audit change for the key");
    assert!(
        hit["detail"].as_str().unwrap().contains("1 access"),
        "{hit}"
    );
    stop_sentinel(&mut child);

    // The live follower sees new records for the watch key.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let log_follower = sentinel::audit::follow(log.clone());
    // The kernel's read-only multicast group delivers the same records next to auditd.
    let multicast = rt
        .block_on(async { sentinel::audit::follow_multicast(Default::default()) })
        .expect("joining the audit multicast group (CAP_AUDIT_READ)");
    for mut f in [log_follower, multicast] {
        rt.block_on(async {
            for _ in 0..30 {
                must("cat", &[&watched.display().to_string()]);
                let deadline = tokio::time::sleep(Duration::from_secs(3));
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        ev = f.events.recv() => {
                            let ev = ev.expect("follower alive");
                            if ev.key() == Some(wkey.as_str()) {
                                assert!(ev.paths().contains(&watched.display().to_string()));
                                return;
                            }
                        }
                        _ = &mut deadline => break,
                    }
                }
            }
            panic!("the follower never delivered the watched-file record");
        });
    }

    // Without auditd: said plainly, and the run keeps going.
    cleanup.auditd.stop();
    let down = sentinel(&["--json", "--audit", "--config", &cfg]);
    let s = &down.json()["audit_summary"];
    assert_eq!(s["auditd_running"], false);
    let notes = s["notes"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().unwrap().contains("auditd is not running")),
        "{s}"
    );
    let fp_down = down.json();
    assert_eq!(
        fp_down["probe_errors"], 0,
        "a stopped auditd is not a probe error: {fp_down}"
    );
    assert_eq!(
        Value::from(down.code),
        fp_down["exit_code"],
        "the exit code is the one the snapshot reports"
    );
    assert_ne!(down.code, 3);
    drop(cleanup);
}

/// Without root the log is unreadable: the summary says so and the snapshot still runs.
#[test]
fn unprivileged_audit_run_says_why_and_keeps_going() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let cfg = dir.path().join("sentinel.toml");
    std::fs::write(
        &cfg,
        format!(
            "store = {:?}\n[snapshot]\nconfig_files = []\n[audit]\nhmac_key_path = {:?}\n",
            dir.path().join("s.db").display().to_string(),
            dir.path().join("hmac.key").display().to_string()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = Command::new(sentinel_e2e::sentinel_bin())
        .args(["--json", "--audit", "--config", &cfg.display().to_string()])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let fp: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    let a = &fp["audit_summary"];
    assert_eq!(a["enabled"], false, "{a}");
    assert!(
        a["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("cannot read the audit log")),
        "{a}"
    );
    assert_eq!(a["enabled"], false);
    assert_eq!(
        fp["probe_errors"], 0,
        "an unreadable audit log is reported, not an error"
    );
    assert_eq!(Value::from(code), fp["exit_code"]);
    assert_ne!(code, 3);
    assert!(!dir.path().join("hmac.key").exists());
}
