//! What the evaluation changes on the host, and how it is undone: throw-away users, one empty
//! network namespace per scenario (loopback plus stand-in "remote" addresses, nothing leaves
//! the machine), private directories, and a guard that snapshots the places a scenario may
//! touch (accounts, sudoers, cron, units, PAM, loader config) and restores them if a scenario
//! left a change behind.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// Prefix of every user, namespace and directory the evaluation creates.
pub const PREFIX: &str = "sntl-ev-";
/// Root-owned home of the corpus copy and the per-scenario fixture directories.
pub const LIB_DIR: &str = "/usr/local/lib/sntl-ev";
/// The stand-in remote host inside each namespace (TEST-NET-3), and the cloud metadata one.
pub const REMOTE_ADDR: &str = "203.0.113.7";
pub const METADATA_ADDR: &str = "169.254.169.254";
/// The user whose files and process the attack scenarios go after.
pub const VICTIM: &str = "sntl-ev-victim";

/// Runs `sh -c script` as root (outside any scenario session) and fails with its output.
pub fn sh(script: &str) -> anyhow::Result<()> {
    let out = Command::new("/bin/sh")
        .args(["-c", script])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {script}"))?;
    if !out.status.success() {
        bail!(
            "`{script}` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: PathBuf,
}

fn id_of(flag: &str, name: &str) -> anyhow::Result<Vec<u32>> {
    let o = Command::new("id").args([flag, name]).output()?;
    if !o.status.success() {
        bail!("id {flag} {name}: {}", String::from_utf8_lossy(&o.stderr));
    }
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .map(|s| s.parse().context("numeric id"))
        .collect()
}

impl User {
    /// A new login user with a home directory (an old one of the same name is removed first).
    pub fn create(name: &str) -> anyhow::Result<User> {
        remove_user(name);
        sh(&format!("useradd -m -s /bin/bash {name}"))?;
        let one = |f: &str| -> anyhow::Result<u32> {
            id_of(f, name)?
                .first()
                .copied()
                .context("id printed nothing")
        };
        Ok(User {
            name: name.into(),
            uid: one("-u")?,
            gid: one("-g")?,
            groups: id_of("-G", name)?,
            home: PathBuf::from(format!("/home/{name}")),
        })
    }
}

pub fn remove_user(name: &str) {
    let _ = Command::new("userdel")
        .args(["-r", "-f", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Removes what an interrupted earlier run may have left: users, namespaces, directories.
pub fn remove_leftovers() {
    if let Ok(p) = std::fs::read_to_string("/etc/passwd") {
        for name in p.lines().filter_map(|l| l.split(':').next()) {
            if name.starts_with(PREFIX) {
                remove_user(name);
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir("/run/netns") {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(PREFIX) {
                let _ = sh(&format!("ip netns del {n}"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(LIB_DIR);
    if let Ok(rd) = std::fs::read_dir("/tmp") {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(PREFIX) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// A named network namespace with only loopback up, and the stand-in remote addresses on it.
pub struct NetNs {
    pub name: String,
    pub file: std::fs::File,
}

impl NetNs {
    pub fn create(name: &str) -> anyhow::Result<NetNs> {
        let _ = sh(&format!("ip netns del {name} 2>/dev/null"));
        sh(&format!(
            "ip netns add {name} && ip -n {name} link set lo up \
             && ip -n {name} addr add {REMOTE_ADDR}/32 dev lo \
             && ip -n {name} addr add {METADATA_ADDR}/32 dev lo"
        ))?;
        let file = std::fs::File::open(format!("/run/netns/{name}"))
            .with_context(|| format!("open /run/netns/{name}"))?;
        Ok(NetNs {
            name: name.into(),
            file,
        })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = sh(&format!("ip netns del {}", self.name));
    }
}

/// Places a scenario may change on purpose (and must restore): snapshotted before it and
/// compared after it.
const GUARDED: &[&str] = &[
    "/etc/passwd",
    "/etc/group",
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/crontab",
    "/etc/cron.d",
    "/etc/cron.hourly",
    "/etc/cron.daily",
    "/etc/profile",
    "/etc/profile.d",
    "/etc/bash.bashrc",
    "/etc/environment",
    "/etc/ld.so.preload",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/pam.d",
    "/etc/security",
    "/etc/ssh",
    "/etc/systemd/system",
    "/etc/udev/rules.d",
    "/etc/rc.local",
    "/etc/update-motd.d",
    "/etc/modules-load.d",
    "/etc/modprobe.d",
    "/etc/init.d",
    "/etc/xdg/autostart",
    "/etc/hosts",
    "/root/.ssh",
    "/root/.bashrc",
    "/root/.profile",
    "/var/spool/cron",
];

/// Bookkeeping inside guarded places that tools legitimately change (at's job counter).
const IGNORED: &[&str] = &["/var/spool/cron/atjobs/.SEQ"];

/// Files larger than this are compared by size and time only (not restorable).
const MAX_KEEP: u64 = 1 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    File {
        mode: u32,
        uid: u32,
        gid: u32,
        data: Option<Vec<u8>>,
        size: u64,
        mtime: i64,
    },
    Dir {
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Link(PathBuf),
}

/// A snapshot of the guarded places.
pub struct Guard(BTreeMap<PathBuf, Entry>);

fn walk(p: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
    if IGNORED.iter().any(|i| p == Path::new(i)) {
        return;
    }
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return;
    };
    let e = if m.file_type().is_symlink() {
        Entry::Link(std::fs::read_link(p).unwrap_or_default())
    } else if m.is_dir() {
        if let Ok(rd) = std::fs::read_dir(p) {
            for c in rd.flatten() {
                walk(&c.path(), out);
            }
        }
        Entry::Dir {
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
        }
    } else {
        Entry::File {
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            data: (m.len() <= MAX_KEEP)
                .then(|| std::fs::read(p).ok())
                .flatten(),
            size: m.len(),
            mtime: if m.len() <= MAX_KEEP { 0 } else { m.mtime() },
        }
    };
    out.insert(p.to_path_buf(), e);
}

impl Guard {
    pub fn take() -> Guard {
        let mut m = BTreeMap::new();
        for p in GUARDED {
            walk(Path::new(p), &mut m);
        }
        Guard(m)
    }

    /// Puts back what changed since the snapshot; returns one line per change found.
    pub fn restore(&self) -> Vec<String> {
        let now = Guard::take();
        let mut changes = Vec::new();
        // New entries, deepest first so directories empty before they go.
        for p in now.0.keys().rev() {
            if !self.0.contains_key(p) {
                changes.push(format!("{} was left behind (removed)", p.display()));
                let _ = if p.is_dir() && !p.is_symlink() {
                    std::fs::remove_dir_all(p)
                } else {
                    std::fs::remove_file(p)
                };
            }
        }
        for (p, old) in &self.0 {
            if now.0.get(p) == Some(old) {
                continue;
            }
            let what = if now.0.contains_key(p) {
                "was changed"
            } else {
                "was removed"
            };
            let restored = put_back(p, old);
            changes.push(format!(
                "{} {what} ({})",
                p.display(),
                if restored {
                    "restored"
                } else {
                    "CANNOT restore"
                }
            ));
        }
        changes
    }
}

fn put_back(p: &Path, e: &Entry) -> bool {
    let chown = |mode: u32, uid: u32, gid: u32| {
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).is_ok()
            && std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode & 0o7777)).is_ok()
    };
    match e {
        Entry::Dir { mode, uid, gid } => {
            std::fs::create_dir_all(p).is_ok() && chown(*mode, *uid, *gid)
        }
        Entry::Link(to) => {
            let _ = std::fs::remove_file(p);
            std::os::unix::fs::symlink(to, p).is_ok()
        }
        Entry::File {
            mode,
            uid,
            gid,
            data: Some(d),
            ..
        } => {
            if p.is_symlink() {
                let _ = std::fs::remove_file(p);
            }
            std::fs::write(p, d).is_ok() && chown(*mode, *uid, *gid)
        }
        Entry::File { data: None, .. } => false,
    }
}

/// The victim's home: documents, keys, cloud and browser stores, history with a password.
/// Everything is fake (no real secret exists on the host because of it).
pub fn victim_fixtures(v: &User) -> anyhow::Result<()> {
    let h = v.home.display();
    let n = &v.name;
    sh(&format!(
        r#"set -e
cd {h}
mkdir -p docs projects/app .ssh .aws .kube .docker .gnupg/private-keys-v1.d .mozilla/firefox/x1y2.default-release .config/gcloud
for i in $(seq 1 30); do printf 'quarterly report %s\nconfidential figures %s\n' $i $((i*7919)) > docs/report-$i.txt; done
for i in $(seq 1 6); do printf 'budget line %s\n' $i > docs/budget-$i.csv; done
printf 'DB_PASSWORD=Sup3rS3cret\nAPI_KEY=sk_live_fake_0123456789\n' > projects/app/.env
printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE==\n-----END OPENSSH PRIVATE KEY-----\n' > .ssh/id_ed25519
printf -- '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE\n-----END RSA PRIVATE KEY-----\n' > .ssh/id_rsa
printf 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFAKEFAKEFAKE victim@host\n' > .ssh/id_ed25519.pub
printf 'Host build\n  HostName 10.0.0.5\n  User deploy\n' > .ssh/config
printf '[default]\naws_access_key_id = AKIAFAKEFAKEFAKEFAKE\naws_secret_access_key = fakefakefakefakefakefakefakefakefakefake\n' > .aws/credentials
printf 'apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user:\n    token: fake-token\n' > .kube/config
printf '{{"auths":{{"registry.example":{{"auth":"ZmFrZTpmYWtl"}}}}}}\n' > .docker/config.json
printf '(private-key (rsa (n #00FAKE#)))\n' > .gnupg/private-keys-v1.d/0123456789ABCDEF.key
printf '{{"logins":[{{"hostname":"https://bank.example","encryptedUsername":"fake","encryptedPassword":"fake"}}]}}\n' > .mozilla/firefox/x1y2.default-release/logins.json
head -c 4096 /dev/zero > .mozilla/firefox/x1y2.default-release/key4.db
printf '{{"client_id":"fake","refresh_token":"fake"}}\n' > .config/gcloud/application_default_credentials.json
printf 'https://victim:ghp_fakefakefake@github.example\n' > .git-credentials
printf 'db.internal:5432:*:app:Pg_fake_pw\n' > .pgpass
printf 'ls\ncd projects\nmysql -u root -pS3cretRoot! app\nexport AWS_SECRET_ACCESS_KEY=fakefake\nvim notes.txt\n' > .bash_history
chown -R {n}: {h}
chmod 700 .ssh .gnupg
chmod 600 .ssh/id_* .aws/credentials .pgpass .git-credentials .bash_history
"#
    ))
}
