//! The agent's configuration file: TOML parse and validation of every section.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sentinel::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = Config::parse(text, std::path::Path::new("fuzz.toml")) {
        let _ = cfg.host_name();
    }
});
