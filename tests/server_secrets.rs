//! TOTP secrets at rest, against the real `sentinel serve` binary over real HTTP: the
//! database never holds a secret in clear (read back with rusqlite and as raw bytes),
//! two-factor sign-in works across a restart and a `sentinel serve rotate-key`, a readable or
//! wrong-sized key file is refused with a clear message, and a database from before (clear
//! secrets) is sealed at start.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use reqwest::StatusCode;
use sentinel::server::auth;
use sentinel::server::sqlite::SqliteStore;
use sentinel::server::store::{AccountStore, Role};
use sentinel_e2e::dash;

const PW: &str = "password-123456";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A user made in the database file before any server runs (as `sentinel user add` does).
async fn add_user(db: &Path, name: &str) -> i64 {
    let s = SqliteStore::open(db).unwrap();
    s.create_user(
        name,
        &auth::hash_password(PW).unwrap(),
        Role::Operator,
        sentinel::store::now_ns(),
    )
    .await
    .unwrap()
}

/// The stored `totp_secret` column, read with rusqlite.
fn stored_secret(db: &Path, user: &str) -> String {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row(
        "SELECT totp_secret FROM users WHERE username = ?1",
        [user],
        |r| r.get(0),
    )
    .unwrap()
}

/// Fails when the secret (base32 or its raw bytes) is anywhere in the database files.
fn assert_not_in_files(db: &Path, secret: &str) {
    let raw = data_encoding_free_decode(secret);
    for suffix in ["", "-wal", "-shm"] {
        let p = format!("{}{suffix}", db.display());
        let Ok(bytes) = std::fs::read(&p) else {
            continue;
        };
        let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(!has(secret.as_bytes()), "{p} holds the secret in base32");
        assert!(!has(&raw), "{p} holds the secret's bytes");
    }
}

/// Base32 (RFC 4648, no padding) to bytes, written out so the check does not lean on the
/// code under test.
fn data_encoding_free_decode(s: &str) -> Vec<u8> {
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {s}"),
        };
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn serve(db: &Path) -> dash::Served {
    let db = db.to_str().unwrap();
    dash::serve(&["--db", db, "--listen", "127.0.0.1:0"])
        .unwrap_or_else(|(code, err)| panic!("sentinel serve exited {code}: {err}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_sealed_and_two_factor_survives_restart_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let key = dir.path().join("server.db.key");
    add_user(&db, "olga").await;
    let c = client();

    // First start: the key file is created, owner-only, 32 bytes.
    let srv = serve(&db);
    assert_eq!(
        (mode(&key), std::fs::metadata(&key).unwrap().len()),
        (0o600, 32)
    );
    let r = dash::login(&c, &srv.url, "olga", PW).await;
    let cookie = dash::session_cookie(&r).expect("signed in");
    let (secret, step) = dash::enrol_totp(&c, &srv.url, &cookie, PW).await;
    let sealed = stored_secret(&db, "olga");
    assert!(
        sealed.starts_with("v1:") && !sealed.contains(&secret),
        "stored as {sealed}"
    );
    assert_not_in_files(&db, &secret);

    // A rotation while the server runs is refused: it would reseal under its feet.
    let db_s = db.to_str().unwrap();
    let r = sentinel_e2e::sentinel(&["serve", "rotate-key", "--db", db_s]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stderr.contains("stop `sentinel serve`"), "{}", r.stderr);

    // Restart: the code is checked against the sealed secret, once per step.
    assert_eq!(srv.stop(), 0);
    let srv = serve(&db);
    let (_, step) = dash::login_with_totp(&c, &srv.url, "olga", PW, &secret, step).await;
    assert_eq!(srv.stop(), 0);

    // Rotation: a new key file (0600, other bytes), every secret resealed under it.
    let old_key = std::fs::read(&key).unwrap();
    let r = sentinel_e2e::sentinel(&["serve", "rotate-key", "--db", db_s]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("rotated: 1 two-factor secrets"),
        "{}",
        r.stdout
    );
    let new_key = std::fs::read(&key).unwrap();
    assert_eq!((new_key.len(), mode(&key)), (32, 0o600));
    assert_ne!(new_key, old_key);
    assert!(!dir.path().join("server.db.key.new").exists());
    let resealed = stored_secret(&db, "olga");
    assert!(resealed.starts_with("v1:") && resealed != sealed);
    assert_ne!(
        resealed.split(':').nth(1),
        sealed.split(':').nth(1),
        "sealed under another key id"
    );
    assert_not_in_files(&db, &secret);
    let srv = serve(&db);
    dash::login_with_totp(&c, &srv.url, "olga", PW, &secret, step).await;
    assert_eq!(srv.stop(), 0);

    // The old key opens nothing any more: with it back, the server says whose secrets do
    // not open, and their codes fail (closed, never a sign-in without the second factor).
    std::fs::write(&key, &old_key).unwrap();
    let srv = serve(&db);
    assert!(
        srv.stderr().contains("olga do not open"),
        "{}",
        srv.stderr()
    );
    let r = dash::login(&c, &srv.url, "olga", PW).await;
    let pending = dash::session_cookie(&r).unwrap();
    let (code, _) = dash::fresh_code(&secret, 0).await;
    let r = dash::second_factor(&c, &srv.url, &pending, &code).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(srv.stop(), 0);

    // A key file others may read is refused, with what to do.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let Err((code, err)) = dash::serve(&["--db", db_s, "--listen", "127.0.0.1:0"]) else {
        panic!("a world-readable key file was accepted");
    };
    assert_ne!(code, 0);
    assert!(
        err.contains("may be read or written by group or others") && err.contains("chmod 600"),
        "{err}"
    );
    // So is one of the wrong size.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&key, &new_key[..16]).unwrap();
    let Err((_, err)) = dash::serve(&["--db", db_s, "--listen", "127.0.0.1:0"]) else {
        panic!("a 16-byte key file was accepted");
    };
    assert!(err.contains("holds 16 bytes, not 32"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_with_clear_secrets_from_before_is_sealed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let id = add_user(&db, "vera").await;
    // As the server before encryption stored it: base32 in the column, no key file.
    let secret = auth::new_totp_secret().unwrap();
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE users SET totp_secret = ?2, totp_enabled = 1 WHERE id = ?1",
            rusqlite::params![id, secret],
        )
        .unwrap();
    assert_eq!(stored_secret(&db, "vera"), secret);
    assert!(!dir.path().join("server.db.key").exists());

    let srv = serve(&db);
    let sealed = stored_secret(&db, "vera");
    assert!(
        sealed.starts_with("v1:") && !sealed.contains(&secret),
        "{sealed}"
    );
    assert!(
        srv.stderr().contains("sealed 1 clear TOTP secrets"),
        "the migration is logged: {}",
        srv.stderr()
    );
    let c = client();
    let (cookie, _) = dash::login_with_totp(&c, &srv.url, "vera", PW, &secret, 0).await;
    let r = c
        .get(format!("{}/profile", srv.url))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(srv.stop(), 0);
    // Nothing of the clear value is left in the files (freed content is zeroed).
    assert_eq!(stored_secret(&db, "vera"), sealed);
    assert_not_in_files(&db, &secret);
}
