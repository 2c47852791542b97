//! Watched configuration files: SHA-256, size, mtime, owner and mode, and the world-writable
//! flag. Missing and unreadable files are reported as such (C-Sentinel skipped them silently).

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::time::iso_ms;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigFile {
    pub path: String,
    pub exists: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<String>,
    /// Octal mode, 4 digits ("0644").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_gid: Option<u32>,
    /// SHA-256 hex of the content; absent when unreadable or over the size limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    pub world_writable: bool,
    /// "world_writable" (C-Sentinel compatible), when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// Why a value is missing ("permission denied", "larger than ...").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub fn probe_file(path: &Path, max_bytes: u64) -> ConfigFile {
    let mut f = ConfigFile {
        path: path.display().to_string(),
        ..Default::default()
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return f,
        Err(e) => {
            f.error = Some(e.to_string());
            return f;
        }
    };
    f.exists = true;
    f.size_bytes = Some(meta.len());
    f.modified = Some(iso_ms(
        meta.mtime()
            .saturating_mul(1000)
            .saturating_add(meta.mtime_nsec() / 1_000_000),
    ));
    f.permissions = Some(format!("{:04o}", meta.mode() & 0o7777));
    f.owner_uid = Some(meta.uid());
    f.owner_gid = Some(meta.gid());
    // Symlinks are followed (metadata above): the mode that matters is the target's.
    f.world_writable = meta.mode() & 0o002 != 0 && !meta.is_dir();
    if f.world_writable {
        f.warning = Some("world_writable".into());
    }
    if !meta.is_file() {
        f.error = Some("not a regular file".into());
        return f;
    }
    if meta.len() > max_bytes {
        f.error = Some(format!("larger than {max_bytes} bytes: not hashed"));
        return f;
    }
    match sha256_file(path) {
        Ok(h) => f.checksum = Some(h),
        Err(e) => f.error = Some(e.to_string()),
    }
    f
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(data_encoding::HEXLOWER.encode(&h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn hashes_and_flags_world_writable() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.conf");
        std::fs::write(&p, "abc").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o646)).unwrap();
        let f = probe_file(&p, 1 << 20);
        assert!(f.exists);
        assert_eq!(
            f.checksum.as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(f.permissions.as_deref(), Some("0646"));
        assert!(f.world_writable);
        assert_eq!(f.warning.as_deref(), Some("world_writable"));
        let small = probe_file(&p, 2);
        assert!(small.checksum.is_none() && small.error.is_some());
        let missing = probe_file(&d.path().join("nope"), 10);
        assert!(!missing.exists && missing.error.is_none());
    }
}
