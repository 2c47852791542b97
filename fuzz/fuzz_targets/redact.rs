//! Redaction before anything goes to a language model: free text, argv vectors (NUL-separated
//! in the input), command lines, and the passwd readers that feed the user lists; also the audit
//! summary's command redaction.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sentinel::audit::privacy::{parse_passwd, redact_command};
use sentinel::explain::redact::{Redactor, local_user_names};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let users = local_user_names(&text, data.first().is_some_and(|b| b & 1 == 1));
    let r = Redactor::new(b"fuzz key".to_vec())
        .with_users(
            users
                .into_iter()
                .chain(["alice".to_string(), "bob".to_string()]),
        )
        .with_system_users(data.len() % 2 == 0)
        .with_ip_redaction(true);
    let _ = r.text(&text);
    let argv: Vec<String> = text.split('\0').map(str::to_string).collect();
    let _ = r.argv(&argv);
    let _ = r.command_line(&text);
    // The audit side's own redaction of commands and its passwd reader.
    let _ = redact_command(&text);
    let _ = parse_passwd(&text);
});
