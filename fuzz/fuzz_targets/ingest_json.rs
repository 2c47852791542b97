//! The server's ingest body: the `IngestBatch` JSON an agent posts, then the checks the
//! handler runs before storing (envelope, host names, per-item screening).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sentinel::server::ingest::{batch_problem, hosts_named, screen};
use sentinel::server::store::IngestBatch;

fuzz_target!(|data: &[u8]| {
    let Ok(mut b) = serde_json::from_slice::<IngestBatch>(data) else {
        return;
    };
    let _ = batch_problem(&b);
    let _ = hosts_named(&b);
    // A server clock and skew near the extremes exercise the arithmetic.
    let now = i64::from_le_bytes(
        data.get(..8)
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0; 8]),
    );
    let skew = data.len() as u64 * 1_000_000;
    let _ = screen(&mut b, now, skew);
    let _ = hosts_named(&b);
});
