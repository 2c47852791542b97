use super::*;

pub(crate) fn test_redactor() -> Redactor {
    Redactor::new(b"sentinel-test-key-0123456789abcdef".to_vec()).with_users([
        "alice".to_string(),
        "bob.smith".to_string(),
        "deploy".to_string(),
    ])
}

fn fixture(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/explain")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn expand_users(r: &Redactor, s: &str) -> String {
    let mut out = s.to_string();
    while let Some(i) = out.find("{user:") {
        let end = i + out[i..].find('}').unwrap();
        let name = out[i + 6..end].to_string();
        out.replace_range(i..=end, &r.user_hash(&name));
    }
    out
}

#[test]
fn corpus_of_command_lines_is_redacted_exactly() {
    let r = test_redactor();
    let text = fixture("redaction_corpus.txt");
    let mut cases = 0;
    let mut failures = Vec::new();
    let mut pending: Option<String> = None;
    for line in text.lines() {
        if let Some(input) = line.strip_prefix("in: ") {
            assert!(pending.is_none(), "two in: lines in a row: {input}");
            pending = Some(input.to_string());
        } else if let Some(expected) = line.strip_prefix("out: ") {
            let input = pending.take().expect("out: without in:");
            let got = r.command_line(&input);
            let want = expand_users(&r, expected);
            if got != want {
                failures.push(format!("in:   {input}\ngot:  {got}\nwant: {want}"));
            }
            // Redacting twice changes nothing: markers are never re-matched.
            assert_eq!(r.command_line(&got), got, "not idempotent: {input}");
            cases += 1;
        }
    }
    assert!(pending.is_none());
    assert!(cases >= 50, "corpus too small: {cases}");
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn user_hashes_are_keyed_64_bit_and_stable() {
    let a = Redactor::new(b"key-one-0123456789".to_vec());
    let b = Redactor::new(b"key-two-0123456789".to_vec());
    let h = a.user_hash("root");
    assert!(h.starts_with("user_"));
    assert_eq!(h.len(), 5 + 16, "64 bits shown as 16 hex characters");
    assert_eq!(h, a.user_hash("root"));
    assert_ne!(
        h,
        b.user_hash("root"),
        "a different install secret gives another hash"
    );
    assert_ne!(h, a.user_hash("admin"));
}

#[test]
fn argv_elements_keep_their_count_and_positions() {
    let r = test_redactor();
    let argv: Vec<String> = ["mysql", "-u", "alice", "--password", "x y", "db"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let out = r.argv(&argv);
    assert_eq!(out.len(), argv.len());
    assert_eq!(out[2], r.user_hash("alice"));
    assert_eq!(out[4], SECRET);
    assert_eq!(out[5], "db");
}

#[test]
fn free_text_redaction_counts_what_it_replaced() {
    let r = test_redactor();
    let mut c = Counts::new();
    let s = r.text_counted(
        "alice ran /home/alice/x with TOKEN=abc and -----BEGIN RSA PRIVATE KEY-----\nMIIE\n",
        &mut c,
    );
    assert!(
        !s.contains("alice") && !s.contains("abc") && !s.contains("MIIE"),
        "{s}"
    );
    assert_eq!(c["private key"], 1);
    assert_eq!(c["key=value secret"], 1);
    assert!(c["user name"] + c["home directory"] >= 2);
    // Prose that only mentions a secret word is left alone.
    assert_eq!(
        r.text("pam auth: failure for uid 1000"),
        "pam auth: failure for uid 1000"
    );
}

#[test]
fn ip_addresses_are_hashed_only_when_asked_and_loopback_stays() {
    let r = test_redactor();
    let s = "from 203.0.113.9 and 2001:db8::7 to 127.0.0.1";
    assert_eq!(r.text(s), s);
    let r = test_redactor().with_ip_redaction(true);
    let out = r.text(s);
    assert!(
        !out.contains("203.0.113.9") && !out.contains("2001:db8::7"),
        "{out}"
    );
    assert!(out.contains(&r.ip_hash("203.0.113.9")));
    assert!(out.contains("127.0.0.1"));
}

#[test]
fn install_secret_is_created_private_and_reused() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("sub/explain.key");
    let a = Redactor::load_or_create(&p).unwrap();
    let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let b = Redactor::load_or_create(&p).unwrap();
    assert_eq!(a.user_hash("x"), b.user_hash("x"));
    std::fs::write(&p, b"short").unwrap();
    assert!(matches!(
        Redactor::load_or_create(&p),
        Err(RedactError::Short(_))
    ));
}

#[test]
fn passwd_names_are_human_accounts_unless_all() {
    let passwd = "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n\
                  alice:x:1000:1000:Alice:/home/alice:/bin/bash\nnobody:x:65534:65534::/:/x\nbad line\n";
    assert_eq!(local_user_names(passwd, false), vec!["alice"]);
    assert_eq!(
        local_user_names(passwd, true),
        vec!["root", "www-data", "alice", "nobody"]
    );
}
