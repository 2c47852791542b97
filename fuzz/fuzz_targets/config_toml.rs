//! The agent's configuration file: TOML parse and validation of every section, and
//! `sentinel config check`'s error places (every problem inside the text).
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
    for p in sentinel::config_cmd::check::check(text) {
        if let Some(s) = &p.span {
            assert!(s.start <= text.len(), "{s:?} outside the text");
        }
        let _ = sentinel::config_cmd::check::render(std::path::Path::new("fuzz.toml"), text, &p);
    }
});
