//! Credentials and their checks: argon2id password hashes, random tokens (sessions, CSRF,
//! API keys, recovery codes) stored only as SHA-256 digests and TOTP per RFC 6238. Pure
//! functions, no HTTP. (Rate limits and login delays are in `throttle.rs`.)

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use sha2::Digest;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("system random source failed: {0}")]
    Random(String),
    #[error("invalid TOTP secret")]
    Secret,
}

pub const MIN_PASSWORD: usize = 10;
pub const MAX_PASSWORD: usize = 1024;

/// Why a password is refused, or None when acceptable.
pub fn password_problem(pw: &str) -> Option<&'static str> {
    if pw.chars().count() < MIN_PASSWORD {
        Some("password must be at least 10 characters")
    } else if pw.len() > MAX_PASSWORD {
        Some("password is too long")
    } else {
        None
    }
}

/// Usernames: 1-64 characters of letters, digits and `._-`, so they are safe in URLs and
/// logs. (They are still escaped everywhere.)
pub fn username_problem(u: &str) -> Option<&'static str> {
    if u.is_empty() || u.len() > 64 {
        Some("username must be 1-64 characters")
    } else if !u
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        Some("username may contain only letters, digits, '.', '_' and '-'")
    } else {
        None
    }
}

/// argon2id with a fresh random salt, as a PHC string.
pub fn hash_password(pw: &str) -> Result<String, AuthError> {
    let salt = random_bytes::<16>()?;
    let h = Argon2::default()
        .hash_password_with_salt(pw.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()));
    give_back_memory();
    h
}

/// Constant-time check of `pw` against a PHC hash; a malformed hash is a mismatch.
pub fn verify_password(pw: &str, phc: &str) -> bool {
    let ok = Argon2::default()
        .verify_password(pw.as_bytes(), phc)
        .is_ok();
    give_back_memory();
    ok
}

/// Returns freed memory to the system. Each argon2id run allocates 19 MiB; once one such
/// block is freed, glibc serves the next from the calling thread's arena and keeps it, so
/// 40 sign-ins on as many blocking threads held 440 MiB for good (docs/benchmarks.md,
/// "Server load"). A trim after each run (rare, rate-limited) is cheap next to the hash.
fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; no pointer is involved.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A hash to verify against when the user does not exist, so that unknown and known
/// usernames take the same time.
pub fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash_password("not a real password, never matches").unwrap_or_default())
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(b)
}

/// 256 random bits, URL-safe: session tokens, CSRF tokens.
pub fn new_token() -> Result<String, AuthError> {
    Ok(data_encoding::BASE64URL_NOPAD.encode(&random_bytes::<32>()?))
}

/// Digest under which a high-entropy token is stored and looked up.
pub fn token_hash(token: &str) -> String {
    data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(token.as_bytes()))
}

/// Equality that does not leak where two strings differ.
pub fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

pub const API_KEY_PREFIX: &str = "snt_";

/// A new API key: (full key shown once, display prefix, stored hash).
pub fn new_api_key() -> Result<(String, String, String), AuthError> {
    let key = format!(
        "{API_KEY_PREFIX}{}",
        data_encoding::HEXLOWER.encode(&random_bytes::<24>()?)
    );
    let prefix = key.chars().take(12).collect();
    let hash = token_hash(&key);
    Ok((key, prefix, hash))
}

/// Ten one-time recovery codes ("xxxxx-xxxxx", 50 bits each) and their stored hashes.
pub fn new_recovery_codes() -> Result<(Vec<String>, Vec<String>), AuthError> {
    let mut codes = Vec::new();
    for _ in 0..10 {
        let raw = data_encoding::BASE32_NOPAD
            .encode(&random_bytes::<7>()?)
            .to_ascii_lowercase();
        let code = format!("{}-{}", &raw[..5], &raw[5..10]);
        codes.push(code);
    }
    let hashes = codes.iter().map(|c| recovery_hash(c)).collect();
    Ok((codes, hashes))
}

/// Recovery codes are compared case- and dash-insensitively.
pub fn recovery_hash(code: &str) -> String {
    let norm: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    token_hash(&norm)
}

// ---- TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps) through the totp-rs crate ----

pub const TOTP_STEP: u64 = 30;

/// A new 160-bit secret in base32 (what authenticator apps expect).
pub fn new_totp_secret() -> Result<String, AuthError> {
    Ok(data_encoding::BASE32_NOPAD.encode(&random_bytes::<20>()?))
}

/// The TOTP of a base32 secret (spaces, lower case and padding tolerated), named `account`
/// for the otpauth URI.
fn totp(secret_b32: &str, account: &str) -> Result<totp_rs::Totp, AuthError> {
    let clean: String = secret_b32
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let key = data_encoding::BASE32_NOPAD
        .decode(clean.trim_end_matches('=').as_bytes())
        .map_err(|_| AuthError::Secret)?;
    let b = totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(TOTP_STEP)
        .with_secret(key);
    let b = if account.is_empty() {
        b
    } else {
        b.with_issuer(Some("Sentinel")).with_account_name(account)
    };
    b.build().map_err(|_| AuthError::Secret)
}

/// The 6-digit code of `secret_b32` at `unix_secs` (None for an unusable secret).
pub fn totp_code(secret_b32: &str, unix_secs: u64) -> Option<String> {
    Some(totp(secret_b32, "").ok()?.generate(unix_secs).to_string())
}

/// The time step a 6-digit `code` matches for `secret` at `unix_secs`, allowing one step
/// of clock drift either way. The caller must still consume the step (one use per code).
pub fn totp_match(secret_b32: &str, code: &str, unix_secs: u64) -> Option<i64> {
    let t = totp(secret_b32, "").ok()?;
    let step = t.check(code.trim(), unix_secs)?;
    i64::try_from(step).ok()
}

/// The `otpauth://` URI authenticator apps read (issuer "Sentinel"). User names are
/// restricted to characters the URI can carry; None for anything else.
pub fn otpauth_uri(account: &str, secret_b32: &str) -> Option<String> {
    totp(secret_b32, account).ok()?.to_url().ok()
}

/// The otpauth URI as an SVG QR code (rendered by us, so no image leaves the server).
pub fn qr_svg(data: &str) -> Option<String> {
    let code = qrcode::QrCode::new(data.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
    )
}

pub use super::throttle::RateLimiter;

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 appendix B, SHA-1 seed "12345678901234567890", last 6 of the 8 digits.
    const SEED1: &[u8] = b"12345678901234567890";

    #[test]
    fn totp_matches_rfc6238_vectors() {
        let secret = data_encoding::BASE32_NOPAD.encode(SEED1);
        let cases: &[(u64, &str)] = &[
            (59, "287082"),
            (1111111109, "081804"),
            (1111111111, "050471"),
            (1234567890, "005924"),
            (2000000000, "279037"),
            (20000000000, "353130"),
        ];
        for &(t, want) in cases {
            assert_eq!(totp_code(&secret, t).as_deref(), Some(want), "t={t}");
        }
    }

    #[test]
    fn totp_match_accepts_adjacent_steps_only_and_rejects_junk() {
        let secret = data_encoding::BASE32_NOPAD.encode(SEED1);
        let t = 1_111_111_111u64;
        let code = totp_code(&secret, t).unwrap();
        assert_eq!(totp_match(&secret, &code, t), Some((t / 30) as i64));
        assert_eq!(
            totp_match(&secret.to_lowercase(), &format!(" {code} "), t + 30),
            Some((t / 30) as i64)
        );
        assert!(totp_match(&secret, &code, t + 95).is_none());
        assert!(totp_match(&secret, "12345", t).is_none());
        assert!(totp_match(&secret, "abcdef", t).is_none());
        assert!(totp_match(&secret, "+12345", t).is_none());
        assert!(totp_match("!!notbase32", &code, t).is_none());
        assert!(
            totp_match("GEZDGNBV", &code, t).is_none(),
            "too short a secret"
        );
    }

    #[test]
    fn passwords_hash_with_salt_and_verify() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify_password("correct horse battery", &a));
        assert!(!verify_password("wrong horse battery", &a));
        assert!(!verify_password("x", "not a phc string"));
        assert!(password_problem("short").is_some());
        assert!(password_problem("long enough pw").is_none());
    }

    #[test]
    fn tokens_are_random_and_stored_hashed() {
        let a = new_token().unwrap();
        assert_ne!(a, new_token().unwrap());
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
        let (key, prefix, hash) = new_api_key().unwrap();
        assert!(key.starts_with(API_KEY_PREFIX) && key.starts_with(&prefix));
        assert_eq!(hash, token_hash(&key));
        let (codes, hashes) = new_recovery_codes().unwrap();
        assert_eq!(codes.len(), 10);
        assert_eq!(recovery_hash(&codes[0].to_uppercase()), hashes[0]);
    }

    #[test]
    fn usernames_are_restricted() {
        assert!(username_problem("alice.b-1").is_none());
        assert!(username_problem("<script>").is_some());
        assert!(username_problem("").is_some());
    }

    #[test]
    fn otpauth_uri_and_qr() {
        let secret = data_encoding::BASE32_NOPAD.encode(SEED1);
        let u = otpauth_uri("olga.b-1", &secret).unwrap();
        assert!(
            u.starts_with(&format!("otpauth://totp/Sentinel:olga.b-1?secret={secret}"))
                && u.contains("issuer=Sentinel"),
            "{u}"
        );
        assert!(otpauth_uri("a:b", &secret).is_none());
        assert!(qr_svg(&u).unwrap().contains("<svg"));
    }
}
