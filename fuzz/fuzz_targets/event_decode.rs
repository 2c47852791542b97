//! Kernel ring-buffer records: `decode` must turn any byte string into an event or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sentinel::event::{Clock, decode};

fuzz_target!(|data: &[u8]| {
    if let Ok(ev) = decode(data, 1, &Clock::identity()) {
        // Formatting walks every decoded field (strings, addresses, blobs).
        let _ = format!("{ev:?}");
    }
});
