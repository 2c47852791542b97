//! TOTP secrets at rest: sealed with XChaCha20-Poly1305 under a 32-byte key that lives in a
//! file outside the database (`[server] secret_key_file`, default `<db>.key`, mode 0600). This
//! module owns that file's life: created on first start, refused when group or others may
//! read or write it or when it is not 32 bytes, shared-locked while a server runs, and the
//! file half of `sentinel serve rotate-key` (the database half is `SqliteStore::reseal`).
//! docs/server.md, "Secrets at rest", describes rotation and its recovery.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::Aead;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use sha2::Digest;

pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// Sealed values are `v1:<key id>:<base64url(nonce | ciphertext | tag)>`.
const VERSION: &str = "v1";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret key file {path}: {msg}")]
    File { path: String, msg: String },
    #[error(
        "secret key file {path} may be read or written by group or others (mode {mode:03o}); \
         it protects every two-factor secret: chmod 600 {path}"
    )]
    Permissions { path: String, mode: u32 },
    #[error(
        "secret key file {path} holds {len} bytes, not {KEY_LEN}: it is not a Sentinel key. \
         Restore it from a backup (two-factor secrets in the database need it), or move it \
         away to start with a new key (users then re-enrol two-factor)"
    )]
    Size { path: String, len: u64 },
    #[error(
        "secret key file {path} is locked by another process: stop `sentinel serve` (or the \
         running key rotation) first"
    )]
    Locked { path: String },
    #[error("system random source failed: {0}")]
    Random(String),
    #[error("sealed under key {0}, which is not loaded")]
    UnknownKey(String),
    #[error("a sealed secret does not open (wrong key or altered)")]
    Open,
    #[error("not a sealed secret")]
    Malformed,
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> SecretError {
    SecretError::File {
        path: path.display().to_string(),
        msg: e.to_string(),
    }
}

/// One key and its short public id (a domain-separated SHA-256 prefix: it names the key in
/// sealed values without revealing it).
#[derive(Clone)]
struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl Key {
    fn new(bytes: &[u8; KEY_LEN]) -> Key {
        let mut h = sha2::Sha256::new();
        h.update(b"sentinel secret key id\0");
        h.update(bytes);
        let id = data_encoding::HEXLOWER.encode(&h.finalize()[..8]);
        // A 32-byte slice is always a valid key.
        let cipher = XChaCha20Poly1305::new(&(*bytes).into());
        Key { id, cipher }
    }
}

/// The key secrets are sealed with, and other keys they may still be sealed with (during an
/// interrupted rotation): opening tries the one the sealed value names.
#[derive(Clone)]
pub struct Keyring {
    current: Key,
    others: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring(current {})", self.current.id)
    }
}

/// Whether a stored value is sealed (anything else is a clear secret from before).
pub fn is_sealed(s: &str) -> bool {
    s.starts_with("v1:")
}

fn random_key() -> Result<[u8; KEY_LEN], SecretError> {
    let mut b = [0u8; KEY_LEN];
    getrandom::fill(&mut b).map_err(|e| SecretError::Random(e.to_string()))?;
    Ok(b)
}

impl Keyring {
    pub fn new(current: &[u8; KEY_LEN], others: &[[u8; KEY_LEN]]) -> Keyring {
        Keyring {
            current: Key::new(current),
            others: others.iter().map(Key::new).collect(),
        }
    }

    /// A random key that lives only in memory (in-memory stores, tests).
    pub fn ephemeral() -> Result<Keyring, SecretError> {
        Ok(Keyring::new(&random_key()?, &[]))
    }

    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// Seals `plain`, bound to `context` (the row it belongs to): a sealed value copied to
    /// another row does not open there.
    pub fn seal(&self, plain: &str, context: &str) -> Result<String, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| SecretError::Random(e.to_string()))?;
        let ct = self
            .current
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                chacha20poly1305::aead::Payload {
                    msg: plain.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Open)?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        Ok(format!(
            "{VERSION}:{}:{}",
            self.current.id,
            data_encoding::BASE64URL_NOPAD.encode(&blob)
        ))
    }

    /// The id of the key `sealed` names, if it is a sealed value.
    pub fn key_id(sealed: &str) -> Option<&str> {
        let mut parts = sealed.splitn(3, ':');
        (parts.next()? == VERSION).then_some(())?;
        parts.next()
    }

    /// Whether `sealed` is sealed under the current key.
    pub fn is_current(&self, sealed: &str) -> bool {
        Self::key_id(sealed) == Some(self.current.id.as_str())
    }

    pub fn open(&self, sealed: &str, context: &str) -> Result<String, SecretError> {
        let mut parts = sealed.splitn(3, ':');
        let (Some(VERSION), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SecretError::Malformed);
        };
        let key = std::iter::once(&self.current)
            .chain(&self.others)
            .find(|k| k.id == id)
            .ok_or_else(|| SecretError::UnknownKey(id.to_string()))?;
        let blob = data_encoding::BASE64URL_NOPAD
            .decode(body.as_bytes())
            .map_err(|_| SecretError::Malformed)?;
        if blob.len() < NONCE_LEN {
            return Err(SecretError::Malformed);
        }
        let (nonce, ct) = blob.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SecretError::Malformed)?;
        let plain = key
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                chacha20poly1305::aead::Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Open)?;
        String::from_utf8(plain).map_err(|_| SecretError::Malformed)
    }
}

/// `<file>.new`: where a rotation writes the next key until the database is resealed.
pub fn pending_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".new");
    PathBuf::from(p)
}

/// Reads a key file, refusing one that group or others may read or write, or of the wrong
/// size.
pub fn read_key(path: &Path) -> Result<[u8; KEY_LEN], SecretError> {
    let mut f = File::open(path).map_err(|e| file_err(path, e))?;
    let meta = f.metadata().map_err(|e| file_err(path, e))?;
    if !meta.is_file() {
        return Err(file_err(path, "not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::Permissions {
            path: path.display().to_string(),
            mode,
        });
    }
    if meta.len() != KEY_LEN as u64 {
        return Err(SecretError::Size {
            path: path.display().to_string(),
            len: meta.len(),
        });
    }
    let mut key = [0u8; KEY_LEN];
    f.read_exact(&mut key).map_err(|e| file_err(path, e))?;
    Ok(key)
}

fn sync_dir(path: &Path) -> Result<(), SecretError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| file_err(dir, e))
}

/// Writes a fresh random key to `path` (which must not exist), mode 0600, synced to disk.
fn write_new_key(path: &Path) -> Result<[u8; KEY_LEN], SecretError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    }
    let key = random_key()?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| file_err(path, e))?;
    f.write_all(&key)
        .and_then(|_| f.sync_all())
        .map_err(|e| file_err(path, e))?;
    sync_dir(path)?;
    Ok(key)
}

/// A held `flock` on the key file: shared while a server runs, exclusive during a rotation,
/// so the two never overlap. Released when dropped.
#[derive(Debug)]
pub struct KeyLock(#[allow(dead_code)] File);

fn lock(path: &Path, exclusive: bool) -> Result<KeyLock, SecretError> {
    let f = File::open(path).map_err(|e| file_err(path, e))?;
    let op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    } | libc::LOCK_NB;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), op) } != 0 {
        return Err(SecretError::Locked {
            path: path.display().to_string(),
        });
    }
    Ok(KeyLock(f))
}

/// What a server starts with: the key file's key as the current one (created, 0600, when the
/// file is missing), plus `<file>.new` if an interrupted rotation left one (the database may
/// be sealed under it; the server reseals under the current key at start).
pub fn load_for_server(path: &Path) -> Result<(Keyring, KeyLock), SecretError> {
    let current = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let k = write_new_key(path)?;
            tracing::info!(
                "created the secret key file {} (back it up with the database)",
                path.display()
            );
            k
        }
        _ => read_key(path)?,
    };
    let lock = lock(path, false)?;
    let pending = pending_path(path);
    let mut others = Vec::new();
    if pending.exists() {
        tracing::warn!(
            "{} is left from an interrupted key rotation; secrets sealed under it are resealed \
             under {}. Run `sentinel serve rotate-key` again to rotate.",
            pending.display(),
            path.display()
        );
        others.push(read_key(&pending)?);
    }
    Ok((Keyring::new(&current, &others), lock))
}

/// A key rotation in progress: the exclusive lock, the keyring that settles the database
/// under the current key first, and the keyring that reseals it under the new one.
pub struct Rotation {
    path: PathBuf,
    _lock: KeyLock,
    /// Current key plus a leftover `<file>.new`, if any.
    pub settle: Keyring,
    /// The new key (in `<file>.new`) as current, the old one as the other.
    pub next: Option<Keyring>,
    old: [u8; KEY_LEN],
}

impl Rotation {
    /// Locks the key file (refused while a server holds it) and reads the current key.
    pub fn begin(path: &Path) -> Result<Rotation, SecretError> {
        let old = read_key(path)?;
        let lock = lock(path, true)?;
        let pending = pending_path(path);
        let others = if pending.exists() {
            vec![read_key(&pending)?]
        } else {
            vec![]
        };
        Ok(Rotation {
            path: path.to_path_buf(),
            _lock: lock,
            settle: Keyring::new(&old, &others),
            next: None,
            old,
        })
    }

    /// Once the database is settled under the current key: replaces any leftover
    /// `<file>.new` with a fresh key and returns the keyring to reseal under it.
    pub fn prepare(&mut self) -> Result<Keyring, SecretError> {
        let pending = pending_path(&self.path);
        match std::fs::remove_file(&pending) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(file_err(&pending, e)),
        }
        let new = write_new_key(&pending)?;
        let ring = Keyring::new(&new, &[self.old]);
        self.next = Some(ring.clone());
        Ok(ring)
    }

    /// After the database commit: the new key replaces the old one in one rename.
    pub fn finish(self) -> Result<String, SecretError> {
        let pending = pending_path(&self.path);
        std::fs::rename(&pending, &self.path).map_err(|e| file_err(&self.path, e))?;
        sync_dir(&self.path)?;
        Ok(self
            .next
            .map(|k| k.current_id().to_string())
            .unwrap_or_default())
    }

    /// The database refused the new key: drop it, the old one stays.
    pub fn abort(self) {
        let _ = std::fs::remove_file(pending_path(&self.path));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let a = Keyring::new(&[1; 32], &[]);
        let s = a.seal("JBSWY3DPEHPK3PXP", "users:1").unwrap();
        assert!(is_sealed(&s) && !s.contains("JBSWY3DPEHPK3PXP"), "{s}");
        assert_ne!(
            s,
            a.seal("JBSWY3DPEHPK3PXP", "users:1").unwrap(),
            "fresh nonce"
        );
        assert_eq!(a.open(&s, "users:1").unwrap(), "JBSWY3DPEHPK3PXP");
        assert!(matches!(a.open(&s, "users:2"), Err(SecretError::Open)));
        let b = Keyring::new(&[2; 32], &[]);
        assert!(matches!(
            b.open(&s, "users:1"),
            Err(SecretError::UnknownKey(_))
        ));
        let both = Keyring::new(&[2; 32], &[[1; 32]]);
        assert_eq!(both.open(&s, "users:1").unwrap(), "JBSWY3DPEHPK3PXP");
        assert!(!both.is_current(&s) && a.is_current(&s));
        let mut bad = s.clone();
        bad.pop();
        bad.push(if s.ends_with('A') { 'B' } else { 'A' });
        assert!(a.open(&bad, "users:1").is_err());
        assert!(matches!(
            a.open("JBSWY3DP", "users:1"),
            Err(SecretError::Malformed)
        ));
    }

    #[test]
    fn key_files_are_created_0600_and_refused_when_readable_or_the_wrong_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/server.db.key");
        let (ring, lock) = load_for_server(&p).unwrap();
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!((meta.permissions().mode() & 0o777, meta.len()), (0o600, 32));
        // The same key next time; a rotation is refused while a server holds it.
        let (again, _l2) = load_for_server(&p).unwrap();
        assert_eq!(ring.current_id(), again.current_id());
        assert!(matches!(
            Rotation::begin(&p),
            Err(SecretError::Locked { .. })
        ));
        drop((lock, _l2));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_for_server(&p).unwrap_err().to_string();
        assert!(e.contains("chmod 600") && e.contains("644"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&p, b"short").unwrap();
        let e = load_for_server(&p).unwrap_err().to_string();
        assert!(e.contains("holds 5 bytes, not 32"), "{e}");
    }
}
