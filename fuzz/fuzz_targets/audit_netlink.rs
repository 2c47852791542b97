//! Audit netlink multicast datagrams: `messages` splits a datagram into (type, text), and each
//! message becomes a log line exactly as the follower builds it, then goes through `parse_line`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sentinel::audit::multicast::{messages, type_name};
use sentinel::audit::record::parse_line;

fuzz_target!(|data: &[u8]| {
    for (ty, msg) in messages(data) {
        let line = format!("type={} msg={msg}", type_name(ty));
        let _ = parse_line(&line);
    }
});
