//! Audit log text (auditd's log file, `ausearch -i` style): every line through `parse_line`,
//! the parsed records through the `Grouper`, and every accessor the classifier uses on the
//! grouped events.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sentinel::audit::privacy::UserHasher;
use sentinel::audit::record::{Grouper, decode_hex, is_standalone, parse_line};

static HASHER: std::sync::LazyLock<UserHasher> = std::sync::LazyLock::new(UserHasher::ephemeral);

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut g = Grouper::default();
    for line in text.lines() {
        if let Ok(r) = parse_line(line) {
            let _ = is_standalone(&r.rtype);
            for (_, v) in &r.fields {
                let _ = decode_hex(v);
            }
            g.push(r);
        }
    }
    for ev in g.finish() {
        let _ = ev.evidence_id();
        let _ = ev.primary_type();
        let _ = ev.key();
        let _ = ev.is_execve();
        let _ = ev.paths();
        let _ = ev.argv();
        let _ = ev.uid();
        let _ = ev.auid();
        let _ = ev.failed();
        let _ = sentinel::audit::classify(&ev, &HASHER);
    }
});
