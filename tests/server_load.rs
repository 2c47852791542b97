//! The server load bench in small, for CI (issue 13 part 7; the full bench is `cargo xtask
//! bench --server`, docs/benchmarks.md): 50 simulated agents (the agent's own push client,
//! real enrolled hosts), dashboard readers and live-feed clients against a real `sentinel
//! serve` on each backend, with the server restarted in the middle (and PostgreSQL too). What
//! every agent queued must be in the database exactly once, no batch may be refused, and the
//! latency figures must be sane (ordered, every kind measured); no latency thresholds here:
//! those belong to the bench.

use sentinel_e2e::load::{self, Backend, Fault, Plan, Report};

fn plan(faults: Vec<Fault>) -> Plan {
    Plan {
        agents: 50,
        compression: 10.0,
        secs: 24.0,
        readers: 5,
        live: 5,
        faults,
        drain_secs: 60.0,
        work: std::env::temp_dir(),
    }
}

fn check(r: &Report) {
    eprintln!("{}", serde_json::to_string_pretty(r).unwrap());
    assert!(
        r.queued_anomalies > 0 && r.queued_snapshots > 0,
        "the agents queued nothing"
    );
    assert_eq!(r.undelivered_batches, 0, "batches left in the spools");
    assert_eq!(r.rejected_batches, 0, "batches refused as malformed");
    assert_eq!(
        r.spool_dropped_batches, 0,
        "batches dropped by the spool cap"
    );
    assert_eq!(
        (r.stored_anomalies, r.stored_snapshots),
        (r.queued_anomalies, r.queued_snapshots),
        "the database must hold exactly what the agents queued (anomalies, snapshots)"
    );
    // The restart was felt (every live feed was cut and came back), and failed requests are
    // only those a restart explains and the client retries (no answer, 5xx).
    let live = r.latency.iter().find(|q| q.kind == "live connect");
    assert!(
        live.is_some_and(|q| q.count > 5),
        "the 5 live feeds did not reconnect: was the restart injected? {live:?}"
    );
    for (what, n) in &r.errors {
        assert!(
            what.ends_with("no answer") || what.contains("HTTP 5"),
            "{n} x {what}: not a failure a restart explains"
        );
    }
    for kind in [
        "heartbeat",
        "anomaly batch",
        "snapshot",
        "dashboard read",
        "live connect",
    ] {
        let q = r
            .latency
            .iter()
            .find(|q| q.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} answered"));
        assert!(
            q.count > 0
                && 0.0 < q.p50_ms
                && q.p50_ms <= q.p95_ms
                && q.p95_ms <= q.p99_ms
                && q.p99_ms <= q.max_ms,
            "{q:?}"
        );
    }
    assert!(r.heartbeats_accepted > 0 && r.live_frames > 0, "{r:?}");
    assert!(r.requests_per_sec > 0.0 && r.server_cpu_secs > 0.0, "{r:?}");
    assert!(r.server_rss_peak_kib > 0, "{r:?}");
    assert!(r.db_bytes_end > r.db_bytes_start, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_keeps_everything_across_a_server_restart_under_load() {
    let bin = sentinel_e2e::sentinel_bin();
    let r = load::run(
        &bin,
        Backend::Sqlite,
        &plan(vec![Fault::RestartServer { at_secs: 10.0 }]),
    )
    .await
    .unwrap();
    check(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_keeps_everything_across_server_and_database_restarts_under_load() {
    let bin = sentinel_e2e::sentinel_bin();
    let r = load::run(
        &bin,
        Backend::Postgres,
        &plan(vec![
            Fault::RestartServer { at_secs: 8.0 },
            Fault::RestartDatabase { at_secs: 16.0 },
        ]),
    )
    .await
    .unwrap();
    check(&r);
    assert!(r.database_cpu_secs > 0.0, "{r:?}");
}
