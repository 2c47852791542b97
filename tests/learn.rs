//! `sentinel learn` and `sentinel baseline` through the binary: learning from a recording
//! (tests/data/detect), export/import/reset round trips, and a short live learning period
//! from the kernel (root; fails when it cannot).

use std::path::{Path, PathBuf};
use std::process::Command;

use sentinel_e2e::*;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/detect")
        .join(name)
}

/// Runs `sentinel ARGS` and returns its stdout, asserting success.
fn ok(args: &[&str]) -> String {
    let r = sentinel(args);
    assert_eq!(r.code, 0, "sentinel {args:?}: {}\n{}", r.stdout, r.stderr);
    r.stdout
}

fn principals(db: &str) -> String {
    // `--db`, the old name of `--store`, still works (a hidden alias).
    ok(&["baseline", "show", "--db", db, "--kind", "principal"])
}

#[test]
fn learn_from_a_recording_then_manage_the_baseline() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("s.db");
    let db = db.to_str().unwrap();
    let events = data("baseline.jsonl");
    let passwd = data("passwd");
    let out = ok(&[
        "learn",
        "--from-file",
        events.to_str().unwrap(),
        "--passwd",
        passwd.to_str().unwrap(),
        "--store",
        db,
    ]);
    assert!(out.contains("learned 3636 events"), "{out}");
    assert!(out.contains("0 anomalies seen during learning"), "{out}");

    let show = principals(db);
    let alice = show
        .lines()
        .find(|l| l.contains("(1000)"))
        .unwrap_or_else(|| panic!("{show}"));
    assert!(
        alice.contains("calibrated") && alice.contains("2 days"),
        "{alice}"
    );
    assert!(alice.contains("09,10,11,12,13,14,15,16"), "{alice}");

    let json = sentinel(&["baseline", "show", "--store", db, "--json"]).json();
    let n = json.as_array().unwrap().len();
    assert!(n > 3);

    let export = d.path().join("e.json");
    ok(&[
        "baseline",
        "export",
        "--store",
        db,
        "--out",
        export.to_str().unwrap(),
    ]);
    let removed = ok(&["baseline", "reset", "--store", db, "--principal", "1000"]);
    assert!(removed.starts_with("removed "), "{removed}");
    let show = ok(&["baseline", "show", "--store", db]);
    assert!(!show.contains("(1000)"), "{show}");

    let out = ok(&[
        "baseline",
        "import",
        "--store",
        db,
        export.to_str().unwrap(),
    ]);
    assert_eq!(out.trim(), format!("imported {n} profiles"));
    let show = ok(&["baseline", "show", "--store", db]);
    assert!(show.contains("(1000)"), "{show}");

    let out = ok(&["baseline", "reset", "--store", db]);
    assert_eq!(out.trim(), format!("removed {n} profiles"));
    let show = ok(&["baseline", "show", "--store", db]);
    assert!(show.contains("nothing learned yet"), "{show}");

    // A damaged export is refused with its name, and nothing is imported.
    std::fs::write(
        &export,
        "{\"format\": \"other\", \"version\": 1, \"profiles\": []}",
    )
    .unwrap();
    let r = sentinel(&[
        "baseline",
        "import",
        "--store",
        db,
        export.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("e.json"), "{}", r.stderr);
}

#[test]
fn live_learning_from_the_kernel() {
    require_root();
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("s.db");
    let db = db.to_str().unwrap();
    // Activity for the learning period to see (the agent's own events are filtered).
    let mut busy = Command::new("sh")
        .args([
            "-c",
            "for i in $(seq 1 20); do ls / >/dev/null; sleep 0.25; done",
        ])
        .spawn()
        .unwrap();
    let out = ok(&["learn", "--duration", "3s", "--store", db]);
    busy.wait().unwrap();
    let learned: u64 = out
        .strip_prefix("learned ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(learned > 0, "{out}");
    let show = principals(db);
    assert!(show.contains("calibrated"), "{show}");
}
