//! The bench's parsing and statistics, on recorded observer output (tests/data/bench/).

use std::path::PathBuf;

use super::audit::{conf_value, parse_rules, private_conf, syscall_rules};
use super::observe::{self, Seen, Target};
use super::report::{self, median, splice};
use super::{Procs, Run, Step, Workload, parse_facts};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/bench")
        .join(name)
}

fn text(name: &str) -> String {
    std::fs::read_to_string(data(name)).unwrap()
}

const TARGET: Target = Target {
    pids: &[500],
    dir: "/tmp/sentinel-bench-9",
};

#[test]
fn medians() {
    assert_eq!(median(&[]), None);
    assert_eq!(median(&[3.0]), Some(3.0));
    assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
    assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    assert_eq!(median(&[f64::NAN, 2.0]), Some(2.0));
}

#[test]
fn sentinel_output_is_counted_per_workload() {
    let (seen, events, summary) =
        observe::scan_sentinel(&data("sentinel.jsonl"), 0, &TARGET).unwrap();
    // ld.so's open is outside the bench directory; cc1's open is not the workload's own;
    // the last record reports 41 opens the kernel counted.
    assert_eq!(
        seen,
        Seen {
            open: 43,
            exec: 1,
            connect: 1,
            tree: 47,
        }
    );
    assert_eq!(events, 47);
    assert_eq!(observe::sentinel_lost(&summary.unwrap()), 11);
}

#[test]
fn sentinel_counting_starts_at_the_mark() {
    let all = text("sentinel.jsonl");
    let from = all.find("{\"type\":\"event\",\"id\":3").unwrap() as u64;
    let (seen, events, _) = observe::scan_sentinel(&data("sentinel.jsonl"), from, &TARGET).unwrap();
    assert_eq!(events, 45);
    assert_eq!(seen.open, 42);
}

#[test]
fn json_fields() {
    let l = r#"{"type":"event","pid":12,"ppid":3,"path":"a\"b,c","kind":"open","x":{"y":1}}"#;
    assert_eq!(observe::json_field(l, "pid"), Some("12"));
    assert_eq!(observe::json_field(l, "ppid"), Some("3"));
    assert_eq!(observe::json_field(l, "path"), Some(r#"a\"b,c"#));
    assert_eq!(observe::json_field(l, "kind"), Some("open"));
    assert_eq!(observe::json_field(l, "nope"), None);
    assert_eq!(
        observe::json_field(r#"{"path":"unterminated"#, "path"),
        None
    );
}

#[test]
fn bpftrace_output_is_counted_per_workload() {
    let (seen, events) = observe::scan_bpftrace(&data("bpftrace.txt"), 0, &TARGET).unwrap();
    assert_eq!(
        seen,
        Seen {
            open: 2,
            exec: 1,
            connect: 1,
            tree: 0,
        }
    );
    assert_eq!(events, 6);
    assert_eq!(observe::bpftrace_lost(&text("bpftrace.err")), 123);
}

#[test]
fn audit_log_events_are_joined_to_their_paths() {
    let (seen, events) = observe::scan_audit(&data("audit.log"), 0, &TARGET).unwrap();
    assert_eq!(
        seen,
        Seen {
            open: 1,
            exec: 1,
            connect: 1,
            tree: 0,
        }
    );
    // Serial 14 belongs to another rule.
    assert_eq!(events, 5);
    let l = text("audit.log");
    let first = l.lines().next().unwrap();
    assert_eq!(observe::audit_serial(first), Some(10));
    assert_eq!(observe::audit_field(first, "pid"), Some("500"));
    assert_eq!(observe::audit_field(first, "ppid"), Some("1"));
    // The enriched part after the 0x1d separator is not part of the key's value.
    assert_eq!(
        observe::audit_field(first, "key"),
        Some("\"sentinel-bench\"")
    );
}

#[test]
fn audit_status_and_config() {
    let st = observe::parse_audit_status(&text("auditctl-s.txt"));
    assert_eq!(
        st,
        observe::AuditStatus {
            pid: 4321,
            lost: 17,
            backlog_limit: 64
        }
    );
    let conf = "log_file = /var/log/audit/audit.log\nmax_log_file_action = ROTATE\nflush = INCREMENTAL_ASYNC\n";
    assert_eq!(
        conf_value(conf, "log_file"),
        Some("/var/log/audit/audit.log")
    );
    let private = private_conf(conf, std::path::Path::new("/tmp/b/audit.log"));
    assert_eq!(conf_value(&private, "log_file"), Some("/tmp/b/audit.log"));
    assert_eq!(conf_value(&private, "max_log_file_action"), Some("IGNORE"));
    assert_eq!(conf_value(&private, "flush"), Some("INCREMENTAL_ASYNC"));
    assert_eq!(private.matches("log_file =").count(), 1);
}

#[test]
fn proc_files() {
    // utime 250 + stime 50, with a command name holding spaces and a parenthesis.
    assert_eq!(observe::parse_stat_ticks(&text("proc-stat.txt")), Some(300));
    assert_eq!(observe::parse_stat_ticks("garbage"), None);
    assert_eq!(observe::parse_vm_hwm(&text("proc-status.txt")), Some(23456));
    assert_eq!(
        observe::parse_prog_run_ns(&text("fdinfo-prog.txt")),
        Some(593261511)
    );
    assert_eq!(observe::parse_prog_run_ns(&text("fdinfo-map.txt")), None);
}

#[test]
fn workload_facts() {
    let f = parse_facts("count=10\nelapsed_ns=2000000000\nnoise\n");
    assert_eq!(f.get("count").map(String::as_str), Some("10"));
    assert_eq!(f.len(), 2);
}

fn run(w: Workload, o: observe::Observer, round: usize, tp: f64, seen: Seen) -> Run {
    Run {
        workload: w,
        observer: o,
        round,
        throughput: tp,
        cpu_us_per_op: Some(1e6 / tp),
        ops: 100,
        expected: 100,
        observed: observe::Observed {
            seen,
            lost: Some(0),
            ..Default::default()
        },
    }
}

#[test]
fn ratios_pair_rounds_and_verdicts_follow() {
    use observe::Observer::{Floor, None as Bare, Sentinel};
    let all_opens = Seen {
        open: 100,
        ..Default::default()
    };
    let runs = vec![
        run(Workload::Open, Bare, 0, 100.0, Seen::default()),
        run(Workload::Open, Sentinel, 0, 90.0, all_opens),
        run(Workload::Open, Floor, 0, 98.0, Seen::default()),
        // A noisy second round: all slow, the ratios still 0.9 and 0.9/0.98.
        run(Workload::Open, Bare, 1, 50.0, Seen::default()),
        run(Workload::Open, Sentinel, 1, 45.0, all_opens),
        run(Workload::Open, Floor, 1, 49.0, Seen::default()),
        run(Workload::Exec, Bare, 0, 100.0, Seen::default()),
        run(
            Workload::Exec,
            Sentinel,
            0,
            90.0,
            Seen {
                exec: 100,
                ..Default::default()
            },
        ),
    ];
    let r = report::ratio(&runs, Workload::Open, Sentinel).unwrap();
    assert!((r - 0.9).abs() < 1e-9);
    let f = report::ratio_to(&runs, Workload::Open, Sentinel, Floor).unwrap();
    assert!((f - 90.0 / 98.0).abs() < 1e-9);
    let steps = vec![Step {
        target: 100e3,
        producers: 1,
        achieved: 99e3,
        expected: 300,
        captured: 300,
        lost: Some(0),
        cpu_s: Some(0.25),
        events: 300_000,
        secs: 3.0,
    }];
    let v = report::verdicts(&runs, &steps, None);
    use report::Outcome::*;
    assert_eq!(v[0].outcome, Met, "{}", v[0].measured);
    assert_eq!(
        v[1].outcome, Missed,
        "0.92x of the floor: {}",
        v[1].measured
    );
    assert_eq!(v[2].outcome, Missed, "exec 11% slower: {}", v[2].measured);
    assert_eq!(v[3].outcome, Met);
    assert_eq!(v[4].outcome, Met, "{}", v[4].measured);
    assert_eq!(v[5].outcome, NotMeasured);
    let md = report::markdown(
        "env",
        &runs,
        &steps,
        None,
        &[Workload::Open, Workload::Exec],
    );
    assert!(md.contains("0.90x"), "{md}");
    assert!(md.contains("**MISSED**"), "{md}");
    // Wall clock says met, CPU per operation says missed: no verdict either way.
    let mut mixed = runs;
    mixed[4].cpu_us_per_op = Some(1e6 / 30.0);
    let v = report::verdicts(&mixed, &steps, None);
    assert_eq!(v[0].outcome, Inconclusive, "{}", v[0].measured);
    // Memory with many live processes: met only at the target's count, with all of them seen.
    let procs = |live, seen, kib| Procs {
        live,
        forks_seen: seen,
        rss_kib: Some(kib),
    };
    let rss = |p: Procs| report::verdicts(&mixed, &steps, Some(&p)).remove(5).outcome;
    assert_eq!(rss(procs(10_000, 10_000, 50 * 1024)), Met);
    assert_eq!(rss(procs(10_000, 10_000, 70 * 1024)), Missed);
    assert_eq!(
        rss(procs(2_000, 2_000, 50 * 1024)),
        Missed,
        "too few processes"
    );
    assert_eq!(
        rss(procs(10_000, 9_000, 50 * 1024)),
        Missed,
        "not all tracked"
    );
}

#[test]
fn the_generated_section_is_replaced_in_place() {
    let doc = format!(
        "# B\n\nintro\n\n{}\nold\n{}\n\n## Why\nprose\n",
        report::BEGIN,
        report::END
    );
    let out = splice(&doc, "new table\n");
    assert!(out.contains("intro") && out.contains("## Why\nprose"));
    assert!(out.contains("new table") && !out.contains("old"));
    assert_eq!(splice(&out, "new table\n"), out, "idempotent");
    let fresh = splice("# B\n", "t");
    assert!(fresh.starts_with("# B\n\n") && fresh.contains(report::BEGIN));
}

#[test]
fn other_tools_rules_are_told_apart_from_the_benchs_own() {
    let listed = "-a always,exit -F arch=b64 -S execve -F key=ci\n\
                  -w /etc/shadow -p wa -k identity\n\
                  -a always,exit -F arch=b64 -S execve,openat,connect -F key=sentinel-bench\n\
                  -e 2\n";
    let rules = parse_rules(listed);
    assert_eq!(rules.len(), 3, "{rules:?}");
    assert_eq!(syscall_rules(&rules), 2, "-e is not a syscall rule");
    assert!(parse_rules("No rules\n").is_empty());
}

/// The child side of `a_signal_restores_the_hosts_audit_state`: holds the bench's audit guard
/// (with `--clear-audit-rules`) until a signal ends the process.
#[test]
#[ignore = "a helper process, started by a_signal_restores_the_hosts_audit_state"]
fn hold_audit_guard_until_signalled() {
    let work = std::env::var_os("SENTINEL_BENCH_GUARD_WORK").expect("run by the parent test");
    super::audit::hold_for_test(std::path::Path::new(&work)).expect("holding the guard");
}

/// A bench stopped by SIGINT or SIGTERM puts the host back: other tools' rules it cleared are
/// loaded again, the backlog limit is restored, and a private auditd it started is stopped.
#[test]
fn a_signal_restores_the_hosts_audit_state() {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};
    assert!(
        unsafe { libc::geteuid() } == 0,
        "needs root (auditctl): run the suite as CI does, with sudo"
    );
    let ctl = |args: &[&str]| {
        let out = Command::new("auditctl")
            .args(args)
            .output()
            .expect("auditctl installed (tests/setup/audit.sh)");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let key = format!("sntl-bench-guard-{}", std::process::id());
    let rule = [
        "-a",
        "always,exit",
        "-F",
        "arch=b64",
        "-S",
        "getpgid",
        "-k",
        key.as_str(),
    ];
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let before = observe::parse_audit_status(&ctl(&["-s"]).1);
        assert!(ctl(&rule).0, "adding a stand-in rule of another tool");
        // Removed again however the test ends: a leftover rule would slow every later bench.
        let _cleanup = Cleanup(rule[1..].iter().map(|s| s.to_string()).collect());
        let work = tempfile_dir(&format!("guard-{sig}"));
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "bench::tests::hold_audit_guard_until_signalled",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SENTINEL_BENCH_GUARD_WORK", &work)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        // libtest may print "test NAME ... " on the same line before the test's own output.
        let ready = out
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.split_once("ready: ").map(|(_, r)| r.to_string()));
        let ready =
            ready.unwrap_or_else(|| panic!("the guard never got ready: {:?}", child.wait()));
        assert!(ready.contains("cleared for the run"), "{ready}");
        assert!(
            !ctl(&["-l"]).1.contains(&key),
            "the other tool's rule is cleared during the run"
        );
        let during = observe::parse_audit_status(&ctl(&["-s"]).1);
        assert_eq!(during.backlog_limit, 8192);
        assert_ne!(during.pid, 0, "an auditd runs during the bench");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
        let status = child.wait().unwrap();
        assert_eq!(
            status.code(),
            Some(128 + sig),
            "exits as the signal would: {status:?}"
        );
        let after = observe::parse_audit_status(&ctl(&["-s"]).1);
        let listed = ctl(&["-l"]).1;
        assert!(listed.contains(&key), "the rule is loaded again: {listed}");
        assert_eq!(
            after.backlog_limit, before.backlog_limit,
            "backlog limit restored"
        );
        assert_eq!(
            after.pid, before.pid,
            "the bench's own auditd is stopped (or the host's left running)"
        );
        let _ = std::fs::remove_dir_all(&work);
    }
}

/// Deletes an audit rule (the arguments after `-a`) when dropped.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::process::Command::new("auditctl")
            .arg("-d")
            .args(&self.0)
            .output();
    }
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("sentinel-xtask-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
