//! Throughput and memory of the process table and the detection engine. Not a pass/fail test:
//! prints numbers. `cargo bench -p sentinel --bench detect` (SENTINEL_BENCH_SCALE=N multiplies
//! the sizes).

use std::time::Instant;

use sentinel::config::Config;
use sentinel::detect::{Engine, EngineOptions};
use sentinel::event::{Event, Payload, RawStr};
use sentinel::proc::ProcessTable;
use sentinel::proc::users::UserDb;
use sentinel::store::Store;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn ev(id: u64, pid: u32, payload: Payload) -> Event {
    Event {
        id,
        time_ns: id as i64 * 1_000,
        pid,
        tid: pid,
        ppid: 1,
        uid: 1000,
        gid: 1000,
        euid: 1000,
        auid: Some(1000),
        session: Some(1),
        cgroup_id: 1,
        comm: RawStr::from("bench"),
        syscall: None,
        ret: 0,
        errno: None,
        truncated: false,
        repeats: 0,
        repeat_head: false,
        payload,
    }
}

fn process_table(scale: u64) {
    let mut t = ProcessTable::new(8192, false);
    let live = 20_000 * scale as u32;
    let churn = 500_000 * scale as u32;
    let before = rss_kib();
    let start = Instant::now();
    let mut id = 0u64;
    let next = |id: &mut u64| {
        *id += 1;
        *id
    };
    for i in 0..live + churn {
        // The first `live` stay alive; the rest churn through 30000 other pids.
        let pid = if i < live {
            1000 + i
        } else {
            1000 + live + i % 30_000
        };
        let parent = 100;
        t.apply(&ev(
            next(&mut id),
            parent,
            Payload::Fork {
                child_pid: pid,
                child_tid: pid,
            },
        ));
        t.apply(&ev(
            next(&mut id),
            pid,
            Payload::Exec {
                filename: RawStr::from("/usr/bin/some-program"),
                argv: vec![RawStr::from("some-program"), RawStr::from("--flag")],
                argv_truncated: false,
                env: Vec::new(),
                env_truncated: false,
            },
        ));
        if i >= live {
            t.apply(&ev(
                next(&mut id),
                pid,
                Payload::Exit {
                    code: Some(0),
                    signal: None,
                },
            ));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "process table: {} events in {secs:.2} s ({:.0}/s); {} live, {} exited kept (cap 8192); RSS +{} KiB",
        id,
        id as f64 / secs,
        t.live_count(),
        t.exited_count(),
        rss_kib().saturating_sub(before)
    );
}

fn engine(scale: u64) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/detect");
    let text = std::fs::read_to_string(path.join("baseline.jsonl")).expect("fixture");
    let events: Vec<Event> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("event"))
        .collect();
    let mut e = Engine::with_options(
        &Config::default().detect,
        Config::default().host_name(),
        Store::memory().expect("store"),
        EngineOptions {
            live: false,
            users: Some(UserDb::load(&path.join("passwd"))),
            learn_all: false,
        },
    )
    .expect("engine");
    let rounds = 5 * scale;
    let start = Instant::now();
    let span = events.last().map(|e| e.time_ns).unwrap_or(0) - events[0].time_ns + 1;
    let mut n = 0u64;
    for r in 0..rounds {
        for ev in &events {
            let mut ev = ev.clone();
            ev.time_ns += r as i64 * span;
            e.observe(&ev);
            n += 1;
        }
    }
    e.finish();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "engine: {n} recorded events in {secs:.2} s ({:.0}/s), {} windows learned",
        n as f64 / secs,
        e.stats().windows_learned
    );
}

fn main() {
    let scale = std::env::var("SENTINEL_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    process_table(scale);
    engine(scale);
}
