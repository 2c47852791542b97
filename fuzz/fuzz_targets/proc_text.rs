//! The text readers of /proc where a user controls part of the text (a process's name, read
//! through the `procfs` crate as the agent and the snapshot read it), container ids from
//! cgroup lines, /etc/passwd and the snapshot's time and rounding: the first byte picks the
//! reader, the rest is the input.
//!
//! Files the kernel writes whole (meminfo, loadavg, uptime) are not fuzzed: procfs's readers
//! of them panic on text the kernel never writes (multi-byte characters, sizes that overflow
//! when scaled to bytes), found here and recorded in docs/fuzzing.md; no user can put such
//! text there.
#![no_main]

use libfuzzer_sys::fuzz_target;
use procfs::FromRead;
use sentinel::proc::container_id;
use sentinel::proc::users::UserDb;
use sentinel::snapshot::{system, time};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    // A process names itself (prctl, or the name of what it runs): up to 16 bytes, any but NUL.
    let (comm, more) = rest.split_at(rest.len().min(16));
    match which % 5 {
        0 => {
            // /proc/<pid>/stat as the kernel frames it: "pid (comm) state numbers". procfs
            // panics on framings the kernel never writes (a ')' before the first '(', nothing
            // after the ')', a ')' among the numbers), found here.
            let mut line = b"4242 (".to_vec();
            line.extend_from_slice(comm);
            line.extend_from_slice(b") S ");
            line.extend(more.iter().map(|b| b"0123456789 -"[usize::from(*b) % 12]));
            let _ = procfs::process::Stat::from_read(&line[..]);
        }
        1 => {
            // /proc/<pid>/status: the name escaped as the kernel escapes it, then lines of
            // "Key:\tvalue" in ASCII.
            let mut text = b"Name:\t".to_vec();
            for &b in comm {
                match b {
                    b'\n' => text.extend_from_slice(b"\\n"),
                    b'\\' => text.extend_from_slice(b"\\\\"),
                    _ => text.push(b),
                }
            }
            text.push(b'\n');
            text.extend(more.iter().map(|&b| match b {
                b'\n' | b'\t' | b' '..=b'~' => b,
                _ => b' ' + b % 95,
            }));
            let _ = procfs::process::Status::from_read(&text[..]);
        }
        2 => {
            let _ = container_id(&String::from_utf8_lossy(rest));
        }
        3 => {
            let text = String::from_utf8_lossy(rest);
            let db = UserDb::parse(&text);
            for uid in [0, 1, 1000, 65534, u32::MAX] {
                let _ = db.name(uid);
                let _ = db.display(uid);
                let _ = db.home(uid);
            }
            let _ = db.home_owner(&text);
            let _ = db.uid_of(&text);
        }
        _ => {
            let ms = i64::from_le_bytes(
                rest.get(..8)
                    .and_then(|s| s.try_into().ok())
                    .unwrap_or([0; 8]),
            );
            let _ = time::iso_ms(ms);
            let _ = system::round(f64::from_bits(ms as u64), (which / 5) as i32 - 25);
        }
    }
});
