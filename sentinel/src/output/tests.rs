//! The dispatcher: records chosen by type and level, the very bytes of the JSON feed, a full
//! queue dropping and counting without waiting, reconnecting after a failure, and reopening
//! on replace (SIGHUP).

use std::time::{Duration, Instant};

use super::*;
use crate::feed::{Record, Status};
use crate::model::Anomaly;
use crate::model::Level;

fn anomaly(level: Level) -> Anomaly {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/explain/anomaly.json"
    ))
    .unwrap();
    let mut a: Anomaly = serde_json::from_str(&text).unwrap();
    a.level = level;
    a.id = format!("{}-{}", a.id, level.as_str());
    a
}

fn status() -> Status {
    Status {
        attached: vec!["sched/sched_process_exec".into()],
        failed: vec![],
        unavailable: vec![],
        missing_fields: vec![],
        mounted_tracefs: false,
        syscall_args: crate::collect::ArgsSource::Registers,
    }
}

fn line(r: &Record) -> Vec<u8> {
    let mut v = Vec::new();
    r.write_json_line(&mut v).unwrap();
    v
}

fn configs(text: &str) -> Vec<OutputConfig> {
    config::tests::parse(text).unwrap().output
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < Duration::from_secs(20), "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test]
async fn files_get_the_chosen_records_as_the_feeds_bytes() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("high.jsonl");
    let outputs = Outputs::start(
        &configs(&format!(
            "[[output]]\nkind = \"file\"\npath = \"{}\"\nrecords = [\"anomaly\", \"status\"]\n\
             min_level = \"high\"\n",
            path.display()
        )),
        "h",
    )
    .unwrap();
    assert!(outputs.wants(RecordType::Anomaly) && !outputs.wants(RecordType::Event));
    let (low, high, st) = (anomaly(Level::Low), anomaly(Level::High), status());
    outputs.send(&Record::Status(&st));
    outputs.send(&Record::Anomaly(&low));
    outputs.send(&Record::Anomaly(&high));
    let counters = outputs.close().await;
    let mut want = line(&Record::Status(&st));
    want.extend(line(&Record::Anomaly(&high)));
    assert_eq!(std::fs::read(&path).unwrap(), want);
    assert_eq!(
        counters,
        [OutputCounters {
            name: "file-0".into(),
            kind: "file",
            written: 2,
            dropped: 0,
            errors: 0,
            rotations: 0,
            queued: 0,
        }]
    );
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_and_a_server_back_gets_what_waited() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let outputs = Outputs::start(
        &configs(&format!(
            "[[output]]\nkind = \"syslog\"\nname = \"away\"\ntransport = \"tcp\"\n\
             address = \"{addr}\"\nqueue = 2\n"
        )),
        "h",
    )
    .unwrap();
    let a = anomaly(Level::Medium);
    let t0 = Instant::now();
    for _ in 0..10 {
        outputs.send(&Record::Anomaly(&a));
    }
    assert!(t0.elapsed() < Duration::from_secs(1), "send never waits");
    let stats = outputs.stats();
    wait_for("a failed connect", || stats[0].errors.load(Relaxed) >= 1);
    // One record is held by the thread (retrying), two wait in the queue, the rest are lost.
    let dropped = stats[0].dropped.load(Relaxed);
    assert!((7..=8).contains(&dropped), "dropped {dropped}");
    let queued = stats[0].queued.load(Relaxed);
    assert!((1..=2).contains(&queued), "queued {queued}");
    let listener = std::net::TcpListener::bind(addr).unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    wait_for("the held records sent", || {
        stats[0].written.load(Relaxed) + dropped == 10
    });
    let counters = outputs.close().await;
    assert_eq!(counters[0].written + counters[0].dropped, 10);
    assert_eq!(counters[0].queued, 0);
    let mut all = Vec::new();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::io::Read::read_to_end(&mut conn, &mut all).unwrap();
    let frames = String::from_utf8_lossy(&all)
        .matches("\"type\":\"anomaly\"")
        .count() as u64;
    assert_eq!(frames, counters[0].written);
}

#[tokio::test]
async fn replace_reopens_files_and_keeps_the_counters() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("a.jsonl");
    let cfgs = configs(&format!(
        "[[output]]\nkind = \"file\"\nname = \"f\"\npath = \"{}\"\nfsync = \"never\"\n",
        path.display()
    ));
    let outputs = Outputs::start(&cfgs, "h").unwrap();
    let (one, two) = (anomaly(Level::Low), anomaly(Level::Critical));
    outputs.send(&Record::Anomaly(&one));
    let stats = outputs.stats();
    wait_for("the first record", || stats[0].written.load(Relaxed) == 1);
    let moved = d.path().join("a.jsonl.rotated");
    std::fs::rename(&path, &moved).unwrap();
    outputs.replace(&cfgs).unwrap();
    outputs.send(&Record::Anomaly(&two));
    let counters = outputs.close().await;
    assert_eq!(std::fs::read(&moved).unwrap(), line(&Record::Anomaly(&one)));
    assert_eq!(std::fs::read(&path).unwrap(), line(&Record::Anomaly(&two)));
    assert_eq!(counters[0].written, 2, "the counters go on across a reload");
    // A replacement that cannot work keeps the running outputs.
    let bad = configs("[[output]]\nkind = \"file\"\npath = \"/nonexistent-dir/x.jsonl\"\n");
    assert!(
        outputs
            .replace(&bad)
            .unwrap_err()
            .contains("/nonexistent-dir")
    );
}
