//! The bench's parsing and statistics, on recorded observer output (tests/data/bench/).

use std::path::PathBuf;

use super::observe::{self, Seen, Target};
use super::report::{self, median, splice};
use super::{Procs, Run, Step, Workload, conf_value, parse_facts, private_conf};

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
    use observe::Observer::{None as Bare, Sentinel};
    let all_opens = Seen {
        open: 100,
        ..Default::default()
    };
    let runs = vec![
        run(Workload::Open, Bare, 0, 100.0, Seen::default()),
        run(Workload::Open, Sentinel, 0, 90.0, all_opens),
        // A noisy second round: both slow, the ratio still 0.9.
        run(Workload::Open, Bare, 1, 50.0, Seen::default()),
        run(Workload::Open, Sentinel, 1, 45.0, all_opens),
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
    let steps = vec![Step {
        target: 100e3,
        producers: 1,
        achieved: 99e3,
        expected: 300,
        captured: 300,
        lost: Some(0),
        cpu_s: Some(0.3),
        events: 300_000,
        secs: 3.0,
    }];
    let v = report::verdicts(&runs, &steps, None);
    use report::Outcome::*;
    assert_eq!(v[0].outcome, Met, "{}", v[0].measured);
    assert_eq!(v[1].outcome, Missed, "exec 11% slower: {}", v[1].measured);
    assert_eq!(v[2].outcome, Met);
    assert_eq!(v[3].outcome, Met, "{}", v[3].measured);
    assert_eq!(v[4].outcome, NotMeasured);
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
    mixed[3].cpu_us_per_op = Some(1e6 / 30.0);
    let v = report::verdicts(&mixed, &steps, None);
    assert_eq!(v[0].outcome, Inconclusive, "{}", v[0].measured);
    // Memory with many live processes: met only at the target's count, with all of them seen.
    let procs = |live, seen, kib| Procs {
        live,
        forks_seen: seen,
        rss_kib: Some(kib),
    };
    let rss = |p: Procs| report::verdicts(&mixed, &steps, Some(&p)).remove(4).outcome;
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
