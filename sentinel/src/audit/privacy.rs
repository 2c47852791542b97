//! What leaves the host about people: user names as keyed HMAC-SHA256 hashes with a
//! per-install secret, and command lines with their secrets redacted.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Hex characters of the HMAC shown: 16 = 64 bits, enough that collisions between a host's
/// users are practically impossible.
const SHOWN_HEX: usize = 16;
const KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("HMAC key {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("HMAC key {path} is too short ({len} bytes, need at least 16)")]
    Short { path: PathBuf, len: usize },
    #[error("HMAC key {path} is readable by others (mode {mode:o}); expected 0600")]
    Mode { path: PathBuf, mode: u32 },
    #[error("cannot read random bytes: {0}")]
    Random(std::io::Error),
}

pub struct UserHasher {
    key: Vec<u8>,
    /// True when the per-install key could not be used and a one-run key was made instead:
    /// hashes are then not comparable across runs.
    pub ephemeral: bool,
}

impl UserHasher {
    /// Loads the per-install secret, creating it (0600, parent 0700) on first use.
    pub fn load_or_create(path: &Path) -> Result<UserHasher, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read(path) {
            Ok(key) => {
                let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(KeyError::Mode {
                        path: path.to_path_buf(),
                        mode,
                    });
                }
                if key.len() < 16 {
                    return Err(KeyError::Short {
                        path: path.to_path_buf(),
                        len: key.len(),
                    });
                }
                Ok(UserHasher {
                    key,
                    ephemeral: false,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
                    && !dir.exists()
                {
                    std::fs::create_dir_all(dir).map_err(io)?;
                    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                        .map_err(io)?;
                }
                let key = random_bytes(KEY_BYTES)?;
                // create_new: two first runs racing must not overwrite each other's key.
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(io)?;
                f.write_all(&key).map_err(io)?;
                f.sync_all().map_err(io)?;
                Ok(UserHasher {
                    key,
                    ephemeral: false,
                })
            }
            Err(e) => Err(io(e)),
        }
    }

    /// A key for this run only (the per-install key is unavailable, e.g. not root).
    pub fn ephemeral() -> UserHasher {
        let key = random_bytes(KEY_BYTES).unwrap_or_else(|e| {
            tracing::warn!("{e}; using the std hasher's random seed for the one-run key");
            fallback_random(KEY_BYTES)
        });
        UserHasher {
            key,
            ephemeral: true,
        }
    }

    #[cfg(test)]
    pub fn with_key(key: &[u8]) -> UserHasher {
        UserHasher {
            key: key.to_vec(),
            ephemeral: false,
        }
    }

    /// "user_" + the first 64 bits of HMAC-SHA256(key, name) in hex.
    pub fn hash(&self, name: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            // HMAC accepts every key length; unreachable in practice.
            return "user_unhashable".to_string();
        };
        mac.update(name.as_bytes());
        let digest = mac.finalize().into_bytes();
        let hex = data_encoding::HEXLOWER.encode(&digest);
        format!("user_{}", &hex[..SHOWN_HEX])
    }
}

impl UserHasher {
    /// Replaces the user name in a home path: "/home/alice/x" -> "/home/user_<hash>/x".
    pub fn redact_path(&self, path: &str) -> String {
        let Some(rest) = path.strip_prefix("/home/") else {
            return path.to_string();
        };
        let (user, tail) = rest
            .split_once('/')
            .map_or((rest, None), |(u, t)| (u, Some(t)));
        if user.is_empty() {
            return path.to_string();
        }
        match tail {
            Some(t) => format!("/home/{}/{t}", self.hash(user)),
            None => format!("/home/{}", self.hash(user)),
        }
    }
}

fn random_bytes(n: usize) -> Result<Vec<u8>, KeyError> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(KeyError::Random)?;
    Ok(buf)
}

/// Random bytes from std's per-process random hash seeds (the OS random source underneath).
fn fallback_random(n: usize) -> Vec<u8> {
    use std::hash::{BuildHasher, Hasher};
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(out.len());
        out.extend_from_slice(&h.finish().to_le_bytes());
    }
    out.truncate(n);
    out
}

/// uid -> user name from /etc/passwd (best effort; unknown uids stay numeric).
pub fn passwd_names() -> HashMap<u32, String> {
    parse_passwd(&std::fs::read_to_string("/etc/passwd").unwrap_or_default())
}

pub fn parse_passwd(text: &str) -> HashMap<u32, String> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split(':');
            let name = it.next()?;
            let uid = it.nth(1)?.parse().ok()?;
            Some((uid, name.to_string()))
        })
        .collect()
}

/// Option names whose value is a secret, as `--name value`, `--name=value` or `name=value`.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "pwd",
    "secret",
    "token",
    "api-key",
    "api_key",
    "apikey",
    "access-key",
    "access_key",
    "private-key",
    "private_key",
    "auth",
    "authorization",
    "credential",
    "credentials",
    "client-secret",
    "client_secret",
];

pub const REDACTED: &str = "[REDACTED]";

/// Redacts secrets from a command line: values of secret-named options and assignments,
/// `user:password@` in URLs, bearer tokens, and `-p<password>` (mysql style).
pub fn redact_command(cmd: &str) -> String {
    let words: Vec<&str> = cmd.split(' ').collect();
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    let mut redact_next = false;
    for w in words {
        if redact_next && !w.is_empty() {
            out.push(REDACTED.to_string());
            redact_next = false;
            continue;
        }
        let lower = w.to_ascii_lowercase();
        let name = lower.trim_start_matches('-');
        if let Some((k, _)) = w.split_once('=') {
            let kl = k.to_ascii_lowercase();
            let kn = kl.trim_start_matches('-');
            if is_secret_name(kn) {
                out.push(format!("{k}={REDACTED}"));
                continue;
            }
        }
        if lower.starts_with('-') && is_secret_name(name) {
            out.push(w.to_string());
            redact_next = true;
            continue;
        }
        if lower == "bearer" || lower == "basic" {
            out.push(w.to_string());
            redact_next = true;
            continue;
        }
        if w.len() > 2
            && w.starts_with("-p")
            && !w.starts_with("--")
            && w[2..].chars().all(|c| !c.is_whitespace())
            && !w[2..].bytes().all(|b| b.is_ascii_digit())
        {
            out.push(format!("-p{REDACTED}"));
            continue;
        }
        out.push(redact_url_password(w));
    }
    out.join(" ")
}

fn is_secret_name(name: &str) -> bool {
    let n = name.rsplit(['.', '/']).next().unwrap_or(name);
    SECRET_WORDS
        .iter()
        .any(|s| n == *s || n.ends_with(&format!("_{s}")) || n.ends_with(&format!("-{s}")))
}

fn redact_url_password(w: &str) -> String {
    let Some(scheme_end) = w.find("://") else {
        return w.to_string();
    };
    let rest = &w[scheme_end + 3..];
    let Some(at) = rest.find('@') else {
        return w.to_string();
    };
    let creds = &rest[..at];
    if creds.contains('/') {
        return w.to_string();
    }
    match creds.split_once(':') {
        Some((user, _)) => format!("{}{user}:{REDACTED}{}", &w[..scheme_end + 3], &rest[at..]),
        None => w.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_keyed_stable_and_64_bits() {
        let a = UserHasher::with_key(b"0123456789abcdef0123");
        let b = UserHasher::with_key(b"another-key-0123456789");
        let h = a.hash("root");
        assert_eq!(h.len(), "user_".len() + 16);
        assert_eq!(h, a.hash("root"));
        assert_ne!(
            h,
            b.hash("root"),
            "different installs give different hashes"
        );
        assert_ne!(h, a.hash("admin"));
        assert!(!h.contains("root"));
        assert_eq!(
            a.redact_path("/home/bob/.ssh/id"),
            format!("/home/{}/.ssh/id", a.hash("bob"))
        );
        assert_eq!(
            a.redact_path("/home/bob"),
            format!("/home/{}", a.hash("bob"))
        );
        assert_eq!(a.redact_path("/etc/passwd"), "/etc/passwd");
    }

    #[test]
    fn key_file_is_created_0600_then_reused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/hmac.key");
        let h1 = UserHasher::load_or_create(&p).unwrap().hash("alice");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read(&p).unwrap().len(), KEY_BYTES);
        let h2 = UserHasher::load_or_create(&p).unwrap().hash("alice");
        assert_eq!(h1, h2);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            UserHasher::load_or_create(&p),
            Err(KeyError::Mode { .. })
        ));
    }

    #[test]
    fn redacts_secrets_in_command_lines() {
        let cases = [
            (
                "mysql -u root -phunter2 db",
                "mysql -u root -p[REDACTED] db",
            ),
            ("curl --password hunter2 x", "curl --password [REDACTED] x"),
            ("tool --api-key=abc123 run", "tool --api-key=[REDACTED] run"),
            (
                "env DB_PASSWORD=s3cr3t app",
                "env DB_PASSWORD=[REDACTED] app",
            ),
            (
                "git clone https://bob:tok3n@example.org/r.git",
                "git clone https://bob:[REDACTED]@example.org/r.git",
            ),
            (
                "curl -H Authorization: Bearer abc.def",
                "curl -H Authorization: Bearer [REDACTED]",
            ),
            ("ls -la /root", "ls -la /root"),
            ("ssh -p 2222 host", "ssh -p 2222 host"),
        ];
        for (i, o) in cases {
            assert_eq!(redact_command(i), o, "{i}");
        }
    }

    #[test]
    fn passwd_parsing_skips_junk() {
        let m = parse_passwd("root:x:0:0::/root:/bin/bash\njunk\nbob:x:1000:1000::/h:/bin/sh\n");
        assert_eq!(m.get(&0).map(String::as_str), Some("root"));
        assert_eq!(m.get(&1000).map(String::as_str), Some("bob"));
        assert_eq!(m.len(), 2);
    }
}
