//! The text readers of /proc (the `procfs` crate's, which the snapshot and chains use, and our
//! own), /etc/passwd and the snapshot: the first byte picks the parser, the rest is the file's
//! text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sentinel::proc::container_id;
use sentinel::proc::users::UserDb;
use procfs::FromRead;
use sentinel::snapshot::{system, time};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match which % 9 {
        0 => {
            let _ = procfs::process::Stat::from_read(rest);
        }
        1 => {
            let _ = procfs::process::Status::from_read(rest);
        }
        2 => {
            let _ = procfs::Meminfo::from_read(rest);
        }
        3 => {
            let _ = procfs::Uptime::from_read(rest);
        }
        4 => {
            let _ = procfs::LoadAverage::from_read(rest);
        }
        5 => {
            let _ = procfs::process::Io::from_read(rest);
        }
        6 => {
            let _ = container_id(&text);
        }
        7 => {
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
            let _ = system::round(f64::from_bits(ms as u64), (which / 9) as i32 - 14);
        }
    }
});
