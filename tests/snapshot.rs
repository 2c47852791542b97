//! End-to-end: the built `sentinel` binary fingerprints this host with a real listener, a real
//! zombie and a real world-writable watched file made by the test; baseline learn/compare and
//! watch mode run against the real /proc.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use sentinel_e2e::{sentinel, sentinel_bin, spawn_sentinel, stop_sentinel, wait_line};
use serde_json::Value;

/// A config that isolates the store and silences host-dependent noise (load, memory, high fd
/// counts from other work on the machine), so the assertions are about what the test made.
fn config(dir: &Path, files: &[&Path], extra: &str) -> String {
    let files: Vec<String> = files
        .iter()
        .map(|f| format!("{:?}", f.display().to_string()))
        .collect();
    let text = format!(
        "store = {1:?}\n[snapshot]\nconfig_files = [{0}]\nknown_ports = [22]\nload_warn_factor = 100000.0\n\
         memory_warn_percent = 100.0\nmemory_crit_percent = 100.0\nhigh_fd_warn_count = 1000000\n\
         {extra}\n[audit]\nhmac_key_path = {2:?}\n",
        files.join(", "),
        dir.join("sentinel.db").display().to_string(),
        dir.join("hmac.key").display().to_string(),
    );
    let p = dir.join("sentinel.toml");
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// A child that has exited but is not reaped: a zombie whose parent is this test.
#[allow(clippy::zombie_processes)] // the zombie is the point; the caller reaps it
fn zombie() -> Child {
    let child = Command::new("true").spawn().unwrap();
    let stat = format!("/proc/{}/stat", child.id());
    for _ in 0..2000 {
        let s = std::fs::read_to_string(&stat).unwrap_or_default();
        if s.rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        {
            return child;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("child {} never became a zombie", child.id());
}

fn listener_for_port(fp: &Value, port: u16) -> Option<&Value> {
    fp["network"]["listeners"]
        .as_array()?
        .iter()
        .find(|l| l["port"] == port && l["protocol"] == "tcp")
}

#[test]
fn listener_zombie_and_world_writable_file_are_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let ww = dir.path().join("app.conf");
    std::fs::write(&ww, "listen = 1\n").unwrap();
    std::fs::set_permissions(&ww, std::fs::Permissions::from_mode(0o666)).unwrap();
    let cfg = config(dir.path(), &[&ww], "");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut z = zombie();
    let me = std::process::id();

    let run = sentinel(&["--json", "--network", "--config", &cfg]);
    let fp = run.json();
    assert_eq!(
        run.code, 2,
        "zombie and world-writable file are critical: {}",
        run.stdout
    );
    assert_eq!(fp["schema_version"], 1);
    assert_eq!(fp["exit_code"], 2);
    assert_eq!(fp["status"], "critical");
    assert_eq!(fp["network"]["probed"], true);

    let l = listener_for_port(&fp, port).expect("the test's listener is reported");
    assert_eq!(l["unusual"], true, "{l}");
    assert_eq!(l["pid"], me, "listener tied to the test's pid: {l}");
    assert_eq!(l["address"], "127.0.0.1");

    let zp = fp["process_summary"]["notable_processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == z.id())
        .expect("zombie listed");
    assert_eq!(zp["state"], "Z");
    assert_eq!(zp["ppid"], me);
    assert!(
        zp["flags"]
            .as_array()
            .unwrap()
            .contains(&Value::from("zombie"))
    );
    let chain: Vec<u64> = zp["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(chain.last(), Some(&(z.id() as u64)));
    assert!(
        chain.contains(&(me as u64)),
        "chain {chain:?} runs through the test"
    );

    let f = &fp["config_files"][0];
    assert_eq!(f["path"], ww.display().to_string());
    assert_eq!(f["world_writable"], true);
    assert_eq!(f["warning"], "world_writable");
    assert_eq!(f["permissions"], "0666");
    assert_eq!(f["checksum"].as_str().unwrap().len(), 64);

    let detections: Vec<&str> = fp["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["detection"].as_str().unwrap())
        .collect();
    for d in ["zombie", "world_writable_config", "unusual_listener"] {
        assert!(detections.contains(&d), "{d} in {detections:?}");
    }
    assert_eq!(fp["audit_summary"]["enabled"], false);

    // The habit command, readable form.
    let q = sentinel(&["--quick", "--network", "--no-color", "--config", &cfg]);
    assert_eq!(q.code, 2);
    assert!(!q.stdout.contains('\x1b'), "--no-color");
    let line = q
        .stdout
        .lines()
        .find(|l| l.contains(&format!(" {port} ")))
        .unwrap_or_else(|| panic!("port {port} in:\n{}", q.stdout));
    assert!(
        line.contains("unusual port") && line.contains(&format!("pid {me}")),
        "{line}"
    );
    assert!(q.stdout.contains("[CRITICAL]"));
    assert!(q.stdout.contains(&ww.display().to_string()));

    // Subcommand form, colour forced on even though stdout is a pipe and NO_COLOR is set.
    let out = Command::new(sentinel_bin())
        .args(["quick", "--network", "--color", "--config", &cfg])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\x1b[31m"),
        "--color forces ANSI"
    );

    z.wait().unwrap();
    drop(listener);
}

/// On a terminal colour is automatic and NO_COLOR turns it off (runs under `script` for a pty).
#[test]
fn color_follows_the_terminal_and_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &[], "zombie_threshold = 1000000");
    let cmd = format!("{} --quick --config {cfg}", sentinel_bin().display());
    let under_pty = |no_color: bool| {
        let mut c = Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"]).env_remove("NO_COLOR");
        if no_color {
            c.env("NO_COLOR", "1");
        }
        let o = c.output().expect("script(1) from util-linux");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(under_pty(false).contains("\x1b["), "colour on a terminal");
    let plain = under_pty(true);
    assert!(
        plain.contains("host summary") && !plain.contains("\x1b["),
        "NO_COLOR: {plain:?}"
    );
}

#[test]
fn clean_host_exits_zero_and_bare_sentinel_prints_help() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &[], "zombie_threshold = 1000000");
    let r = sentinel(&["--quick", "--config", &cfg]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("[OK]"));
    let help = sentinel(&[]);
    assert!(
        help.stdout.contains("Usage") && help.stdout.contains("quick"),
        "{}",
        help.stdout
    );
    let bad = sentinel(&["--interval", "0", "--watch"]);
    assert_eq!(
        bad.code, 3,
        "a zero interval is a usage error: {}",
        bad.stderr
    );
}

#[test]
fn learn_then_baseline_reports_the_new_listener() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("watched.conf");
    std::fs::write(&conf, "a\n").unwrap();
    let cfg = config(dir.path(), &[&conf], "");
    let none = sentinel(&["--baseline", "--config", &cfg]);
    assert_eq!(none.code, 3, "no baseline yet: {}", none.stderr);
    assert!(none.stderr.contains("--learn"));

    let learn = sentinel(&["--learn", "--network", "--config", &cfg]);
    assert_eq!(learn.code, 0, "{}{}", learn.stdout, learn.stderr);
    assert!(learn.stdout.contains("1 sample(s)"), "{}", learn.stdout);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::fs::write(&conf, "b\n").unwrap();
    let cmp = sentinel(&["--baseline", "--network", "--no-color", "--config", &cfg]);
    assert_eq!(cmp.code, 2, "deviations exit 2: {}", cmp.stdout);
    let me = std::process::id();
    let want = format!("new listener tcp/127.0.0.1:{port} (");
    let line = cmp
        .stdout
        .lines()
        .find(|l| l.contains(&want))
        .unwrap_or_else(|| panic!("{want} in:\n{}", cmp.stdout));
    assert!(line.contains(&format!("pid {me})")), "{line}");
    assert!(
        cmp.stdout
            .contains(&format!("{}: content changed", conf.display())),
        "{}",
        cmp.stdout
    );

    let j = sentinel(&["--baseline", "--network", "--json", "--config", &cfg]).json();
    let devs = j["deviations"].as_array().unwrap();
    assert!(devs.iter().any(|d| d["kind"] == "new_listener"
        && d["detail"].as_str().unwrap().contains(&port.to_string())));

    // Re-learning accepts the change: the file no longer drifts and the listener is expected.
    assert_eq!(
        sentinel(&["--learn", "--network", "--config", &cfg]).code,
        0
    );
    let again = sentinel(&["--baseline", "--network", "--no-color", "--config", &cfg]);
    assert!(
        !again.stdout.contains(&want) && !again.stdout.contains("content changed"),
        "{}",
        again.stdout
    );
    drop(listener);
}

#[test]
fn watch_prints_only_changes_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &[], "zombie_threshold = 1000000");
    let (mut child, rx) = spawn_sentinel(&[
        "watch",
        "--interval",
        "1",
        "--network",
        "--json",
        "--config",
        &cfg,
    ]);
    let first: Value =
        serde_json::from_str(&wait_line(&rx, "the first fingerprint", |_| true)).unwrap();
    assert_eq!(first["schema_version"], 1);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let tag = format!("tcp/127.0.0.1:{port} ");
    let added = wait_line(&rx, "the new listener", |l| l.contains(&tag));
    let v: Value = serde_json::from_str(&added).expect("each watch line is JSON");
    let ch = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["detail"].as_str().unwrap().contains(&tag))
        .unwrap();
    assert_eq!(ch["kind"], "listener_added");
    assert!(
        ch["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("pid {}", std::process::id()))
    );
    drop(listener);
    let gone = wait_line(&rx, "the listener going away", |l| {
        l.contains(&tag) && l.contains("listener_removed")
    });
    let gone: Value = serde_json::from_str(&gone).unwrap();
    let code = stop_sentinel(&mut child);
    // The exit code is the worst status of the run: every line that was printed says its own.
    let mut worst = [&first, &v, &gone]
        .iter()
        .map(|l| l["exit_code"].as_i64().expect("exit_code on every line"))
        .max()
        .unwrap();
    for l in rx.iter() {
        let l: Value = serde_json::from_str(&l).expect("each watch line is JSON");
        worst = worst.max(l["exit_code"].as_i64().expect("exit_code"));
    }
    assert!(
        v["exit_code"].as_i64() >= Some(1),
        "the unusual listener is at least a warning: {v}"
    );
    assert_eq!(
        i64::from(code),
        worst,
        "the exit code is the worst status seen"
    );
}

#[test]
fn legacy_watch_flags_print_a_status_line_then_changes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &[], "zombie_threshold = 1000000");
    let (mut child, rx) = spawn_sentinel(&[
        "--watch",
        "--interval",
        "1",
        "--network",
        "--no-color",
        "--config",
        &cfg,
    ]);
    let first = wait_line(&rx, "the status line", |_| true);
    assert!(
        first.starts_with('[') && first.contains("listeners"),
        "{first}"
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let line = wait_line(&rx, "the new listener", |l| {
        l.contains(&format!("+ listener tcp/127.0.0.1:{port} "))
    });
    assert!(line.contains("unusual port"), "{line}");
    drop(listener);
    stop_sentinel(&mut child);
}
