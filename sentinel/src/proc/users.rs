//! The system user database: uid to name and home directory, parsed from /etc/passwd (the
//! same file getpwuid reads for local users). Unknown uids stay numbers at the edges.

use std::collections::HashMap;
use std::path::Path;

/// One passwd entry we care about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub name: String,
    pub home: String,
}

#[derive(Clone, Debug, Default)]
pub struct UserDb {
    by_uid: HashMap<u32, User>,
    /// Ask NSS (getpwuid_r: LDAP, SSSD, systemd-userdb) for uids the file does not list.
    nss: bool,
}

impl UserDb {
    /// Reads a passwd-format file; a missing or unreadable file gives an empty database
    /// (every uid then shows as a number) with a warning, never an error.
    pub fn load(path: &Path) -> UserDb {
        match std::fs::read_to_string(path) {
            Ok(text) => UserDb::parse(&text),
            Err(e) => {
                tracing::warn!(
                    "user database {}: {e}; uids shown as numbers",
                    path.display()
                );
                UserDb::default()
            }
        }
    }

    pub fn system() -> UserDb {
        UserDb {
            nss: true,
            ..UserDb::load(Path::new("/etc/passwd"))
        }
    }

    /// Parses passwd lines (`name:x:uid:gid:gecos:home:shell`); malformed lines are skipped.
    pub fn parse(text: &str) -> UserDb {
        let mut by_uid = HashMap::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 7 || line.starts_with('#') {
                continue;
            }
            let Ok(uid) = f[2].parse::<u32>() else {
                continue;
            };
            // First entry wins, like getpwuid.
            by_uid.entry(uid).or_insert_with(|| User {
                uid,
                name: f[0].to_string(),
                home: f[5].trim_end_matches('/').to_string(),
            });
        }
        UserDb { by_uid, nss: false }
    }

    /// The user name: from the file, else (system database only) from NSS.
    pub fn name(&self, uid: u32) -> Option<String> {
        match self.by_uid.get(&uid) {
            Some(u) => Some(u.name.clone()),
            None if self.nss => nss_name(uid),
            None => None,
        }
    }

    /// The user name, or the uid as a number for unknown uids.
    pub fn display(&self, uid: u32) -> String {
        self.name(uid).unwrap_or_else(|| uid.to_string())
    }

    /// The owner of the home directory `path` lies in, for real homes only (not "/" or
    /// system homes like /var/lib/x, /nonexistent).
    pub fn home_owner(&self, path: &str) -> Option<u32> {
        // Every real home is /root or below /home: most paths are in neither, and need no
        // walk over the users.
        if !(path.starts_with("/root/") || path.starts_with("/home/")) {
            return None;
        }
        self.by_uid
            .values()
            .filter(|u| u.home == "/root" || u.home.starts_with("/home/"))
            .find(|u| {
                path.strip_prefix(u.home.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
            })
            .map(|u| u.uid)
    }

    pub fn uid_of(&self, name: &str) -> Option<u32> {
        self.by_uid.values().find(|u| u.name == name).map(|u| u.uid)
    }

    pub fn home(&self, uid: u32) -> Option<&str> {
        self.by_uid.get(&uid).map(|u| u.home.as_str())
    }
}

/// getpwuid_r for users outside /etc/passwd. None when NSS does not know the uid.
fn nss_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: zeroed passwd is a valid out-parameter; buf outlives the call and its length
    // is passed; the result pointer is only read when getpwuid_r reports success.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() || pw.pw_name.is_null() {
        return None;
    }
    // SAFETY: pw_name points into buf, NUL-terminated by getpwuid_r.
    let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_homes_and_skips_garbage() {
        let db = UserDb::parse(
            "root:x:0:0:root:/root:/bin/bash\n\
             garbage line\n\
             alice:x:1000:1000:Alice,,,:/home/alice/:/bin/bash\n\
             bad:x:notanumber:1:::\n\
             www-data:x:33:33::/var/www:/usr/sbin/nologin\n",
        );
        assert_eq!(db.name(1000).as_deref(), Some("alice"));
        assert_eq!(db.display(4242), "4242");
        assert_eq!(db.home_owner("/home/alice/.ssh/id_rsa"), Some(1000));
        assert_eq!(db.home_owner("/home/alicex/f"), None);
        assert_eq!(db.home_owner("/root/.bashrc"), Some(0));
        assert_eq!(db.home_owner("/var/www/index.html"), None);
        assert_eq!(db.uid_of("www-data"), Some(33));
    }

    #[test]
    fn system_database_knows_root_and_not_an_unused_uid() {
        let db = UserDb::system();
        assert_eq!(db.name(0).as_deref(), Some("root"));
        assert_eq!(nss_name(0).as_deref(), Some("root"));
        assert_eq!(db.display(4_000_000_000), "4000000000");
    }
}
