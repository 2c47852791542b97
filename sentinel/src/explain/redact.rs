//! Redaction of everything that leaves the host for an LLM: user names become keyed
//! HMAC-SHA256 pseudonyms (per-install secret), and secrets in argv, environment-like
//! KEY=VALUE strings, URLs, auth headers, token shapes and key material become markers.
//! Over-redaction is the accepted failure mode: a lost detail costs less than a leaked secret.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::LazyLock;

use hmac::{Hmac, KeyInit, Mac};
use regex::{Captures, Regex};
use sha2::Sha256;

pub const SECRET: &str = "[REDACTED]";
const TOKEN: &str = "[REDACTED-TOKEN]";

#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    #[error("redaction secret {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("redaction secret {0} is too short (need at least 16 bytes)")]
    Short(String),
}

/// How many replacements of each kind were made (shown with `--show-prompt`).
pub type Counts = BTreeMap<&'static str, usize>;

fn bump(c: &mut Counts, k: &'static str, n: usize) {
    if n > 0 {
        *c.entry(k).or_default() += n;
    }
}

fn re(p: &str) -> Regex {
    // Patterns are compile-time constants covered by the tests; a typo fails every test.
    Regex::new(p).unwrap_or_else(|e| panic!("redaction pattern {p}: {e}"))
}

static PRIVATE_KEY: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----|\z)",
    )
});
static URL_CREDS: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/?#@]+@"));
static AUTH_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)\b(authorization|proxy-authorization)(\s*:\s*)(?:(bearer|basic|token|digest|negotiate)\s+)?[^\s"',;]+"#,
    )
});
static BEARER: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=\-]{8,}"));
static SECRET_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)\b(x-api-key|api-key|x-auth-token|private-token|x-amz-security-token|cookie|set-cookie)(\s*:\s*)[^"'\n]+"#,
    )
});
static AWS_KEY_ID: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|ABIA|ACCA)[A-Z0-9]{16}\b"));
static TOKEN_SHAPES: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}",
        r"|xox[abposr]-[A-Za-z0-9\-]{10,}|sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{20,}",
        r"|glpat-[A-Za-z0-9_\-]{20,}|AIza[0-9A-Za-z_\-]{35}|[rs]k_(?:live|test)_[A-Za-z0-9]{16,}",
        r"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,})"
    ))
});
// Key names that are secrets whichever separator follows them (`=` or `:`).
static STRONG_KV: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r#"(?i)(^|[\s"'{,;(&?\[])(-{0,2}[A-Za-z0-9_.\-]*?"#,
        r"(?:passw(?:or)?d|passphrase|pwd|secret|token|api[_\-]?key|access[_\-]?key|private[_\-]?key)",
        r#"[A-Za-z0-9_.\-]*)(["']?\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s"'&;,)\]}]+)"#
    ))
});
// Weaker key words only count with `=`, so prose like "auth: failure" survives.
static WEAK_KV: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r#"(?i)(^|[\s"'{,;(&?\[])(-{0,2}[A-Za-z0-9_.\-]*?"#,
        r"(?:pass|auth|credential|session|cookie|signature|sas|salt)",
        r#"[A-Za-z0-9_.\-]*)(=)("[^"]*"|'[^']*'|[^\s"'&;,)\]}]+)"#
    ))
});
static SQL_PASSWORD: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?i)\b(password|identified by)\s+('[^']*'|"[^"]*")"#));
static ENTROPIC: LazyLock<Regex> = LazyLock::new(|| re(r"[A-Za-z0-9+/_\-=]{32,}"));
static HOME: LazyLock<Regex> = LazyLock::new(|| re(r#"(/home|/Users)/([^/\s"':;,]+)"#));
static IPV4: LazyLock<Regex> = LazyLock::new(|| re(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"));
static IPV6: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}"));

/// Long flags whose next argument is a secret (`--flag=value` is handled by the KV rules).
fn secret_long_flag(flag: &str) -> bool {
    let f = flag.trim_start_matches('-').to_ascii_lowercase();
    flag.starts_with("--")
        && !f.contains('=')
        && ([
            "password",
            "passwd",
            "passphrase",
            "secret",
            "token",
            "api-key",
            "apikey",
        ]
        .iter()
        .any(|w| f.contains(w))
            || f == "pass"
            || f.ends_with("-pass"))
}

/// Per-program short flags that carry a password: (programs, flag, value may be attached).
const SHORT_FLAGS: &[(&[&str], &str, bool)] = &[
    (
        &[
            "mysql",
            "mysqldump",
            "mysqladmin",
            "mysqlimport",
            "mysqlcheck",
            "mysqlshow",
            "mariadb",
            "mariadb-dump",
            "mariadb-admin",
        ],
        "-p",
        true,
    ),
    (&["sshpass"], "-p", true),
    (&["useradd", "usermod"], "-p", false),
    (&["redis-cli"], "-a", false),
    (
        &["mongo", "mongosh", "mongodump", "mongorestore"],
        "-p",
        false,
    ),
    (&["docker", "podman", "nerdctl"], "-p", false),
    (
        &["ldapsearch", "ldapmodify", "ldapadd", "ldapdelete"],
        "-w",
        false,
    ),
    (&["sqlcmd", "bcp"], "-P", false),
    (&["ssh-keygen"], "-N", false),
    (&["ssh-keygen"], "-P", false),
    (&["zip", "unzip"], "-P", false),
    (&["7z", "7za", "rar", "unrar"], "-p", true),
    (&["openssl"], "-k", false),
];

/// Prefixes that run another program: the program whose flags matter comes after them.
const WRAPPERS: &[&str] = &[
    "sudo", "doas", "env", "nohup", "exec", "time", "nice", "ionice", "timeout", "stdbuf",
    "setsid", "chroot", "runuser",
];

#[derive(Clone)]
pub struct Redactor {
    key: Vec<u8>,
    hash_system: bool,
    /// Longest first, so "alice.smith" is replaced before "alice".
    users: Vec<String>,
    redact_ips: bool,
}

impl Redactor {
    pub fn new(key: Vec<u8>) -> Redactor {
        Redactor {
            key,
            hash_system: false,
            users: Vec::new(),
            redact_ips: false,
        }
    }

    /// A random key that lives as long as the process (when the install secret is unusable).
    pub fn ephemeral() -> Result<Redactor, RedactError> {
        random_bytes()
            .map(Redactor::new)
            .map_err(|source| RedactError::Io {
                path: "the system random source".into(),
                source,
            })
    }

    /// Loads the per-install secret, creating it (32 random bytes, mode 0600) when missing.
    pub fn load_or_create(path: &Path) -> Result<Redactor, RedactError> {
        let io = |source| RedactError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::File::open(path) {
            Ok(mut f) => {
                let mut key = Vec::new();
                f.read_to_end(&mut key).map_err(io)?;
                if key.len() < 16 {
                    return Err(RedactError::Short(path.display().to_string()));
                }
                Ok(Redactor::new(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                use std::os::unix::fs::OpenOptionsExt;
                let key = random_bytes().map_err(io)?;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(io)?;
                f.write_all(&key).map_err(io)?;
                Ok(Redactor::new(key))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Names to pseudonymise wherever they appear as a whole word.
    pub fn with_users<I: IntoIterator<Item = String>>(mut self, names: I) -> Redactor {
        self.users
            .extend(names.into_iter().filter(|n| n.len() >= 2));
        self.users
            .sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        self.users.dedup();
        self
    }

    /// Whether system accounts (uid < 1000) are pseudonymised too.
    pub fn with_system_users(mut self, on: bool) -> Redactor {
        self.hash_system = on;
        self
    }

    pub fn hashes_system_users(&self) -> bool {
        self.hash_system
    }

    pub fn with_ip_redaction(mut self, on: bool) -> Redactor {
        self.redact_ips = on;
        self
    }

    fn keyed(&self, domain: &str, value: &str) -> String {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(domain.as_bytes());
        mac.update(b":");
        mac.update(value.as_bytes());
        data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes()[..8])
    }

    /// "user_" + 64 bits of HMAC-SHA256(secret, name): stable per install, not reversible by
    /// a dictionary without the secret.
    pub fn user_hash(&self, name: &str) -> String {
        format!("user_{}", self.keyed("user", name))
    }

    pub fn ip_hash(&self, addr: &str) -> String {
        format!("ip_{}", self.keyed("ip", addr))
    }

    /// Redacts free text (summaries, log lines, JSON string values).
    pub fn text(&self, s: &str) -> String {
        self.text_counted(s, &mut Counts::new())
    }

    pub fn text_counted(&self, s: &str, c: &mut Counts) -> String {
        let mut out = replace(&PRIVATE_KEY, s, c, "private key", |_| {
            "[REDACTED-PRIVATE-KEY]".into()
        });
        out = replace(&URL_CREDS, &out, c, "url credentials", |m| {
            format!("{}{SECRET}@", &m[1])
        });
        out = replace(&AUTH_HEADER, &out, c, "auth header", |m| {
            let scheme = m
                .get(3)
                .map(|s| format!("{} ", s.as_str()))
                .unwrap_or_default();
            format!("{}{}{scheme}{SECRET}", &m[1], &m[2])
        });
        out = replace(&BEARER, &out, c, "bearer token", |_| {
            format!("Bearer {SECRET}")
        });
        out = replace(&SECRET_HEADER, &out, c, "secret header", |m| {
            format!("{}{}{SECRET}", &m[1], &m[2])
        });
        out = replace(&AWS_KEY_ID, &out, c, "aws key", |_| {
            "[REDACTED-AWS-KEY]".into()
        });
        out = replace(&TOKEN_SHAPES, &out, c, "token", |_| TOKEN.into());
        for kv in [&*STRONG_KV, &*WEAK_KV] {
            out = replace(kv, &out, c, "key=value secret", |m| {
                let v = &m[4];
                if v.trim_matches(['"', '\'']).starts_with("[REDACTED") {
                    return m[0].to_string();
                }
                let q = if v.starts_with(['"', '\'']) {
                    &v[..1]
                } else {
                    ""
                };
                format!("{}{}{}{q}{SECRET}{q}", &m[1], &m[2], &m[3])
            });
        }
        out = replace(&SQL_PASSWORD, &out, c, "sql password", |m| {
            format!("{} {SECRET}", &m[1])
        });
        out = replace(&ENTROPIC, &out, c, "high-entropy string", |m| {
            if looks_random(&m[0]) {
                TOKEN.into()
            } else {
                m[0].to_string()
            }
        });
        out = replace(&HOME, &out, c, "home directory", |m| {
            if m[2].starts_with("user_") {
                m[0].to_string()
            } else {
                format!("{}/{}", &m[1], self.user_hash(&m[2]))
            }
        });
        out = self.replace_users(&out, c);
        if self.redact_ips {
            out = self.replace_ips(&out, c);
        }
        out
    }

    fn replace_users(&self, s: &str, c: &mut Counts) -> String {
        let mut out = s.to_string();
        for name in &self.users {
            let mut next = String::with_capacity(out.len());
            let mut rest = out.as_str();
            let mut n = 0;
            while let Some(i) = rest.find(name.as_str()) {
                let before = rest[..i].chars().next_back();
                let after = rest[i + name.len()..].chars().next();
                let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
                next.push_str(&rest[..i]);
                if word(before) || word(after) {
                    next.push_str(name);
                } else {
                    next.push_str(&self.user_hash(name));
                    n += 1;
                }
                rest = &rest[i + name.len()..];
            }
            next.push_str(rest);
            bump(c, "user name", n);
            out = next;
        }
        out
    }

    fn replace_ips(&self, s: &str, c: &mut Counts) -> String {
        let out = replace(&IPV4, s, c, "ip address", |m| {
            match m[0].parse::<std::net::Ipv4Addr>() {
                Ok(ip) if !(ip.is_loopback() || ip.is_unspecified()) => self.ip_hash(&m[0]),
                _ => m[0].to_string(),
            }
        });
        replace(&IPV6, &out, c, "ip address", |m| {
            match m[0].parse::<std::net::Ipv6Addr>() {
                Ok(ip) if !(ip.is_loopback() || ip.is_unspecified()) => self.ip_hash(&m[0]),
                _ => m[0].to_string(),
            }
        })
    }

    /// Redacts one process's argv: flag-aware rules first (they know which argument follows
    /// a password flag), then the text rules on every element.
    pub fn argv(&self, argv: &[String]) -> Vec<String> {
        self.argv_counted(argv, &mut Counts::new())
    }

    pub fn argv_counted(&self, argv: &[String], c: &mut Counts) -> Vec<String> {
        let mut out = Vec::with_capacity(argv.len());
        let mut program: Option<&str> = None;
        let mut htpasswd_batch = false;
        let mut i = 0;
        while i < argv.len() {
            let arg = argv[i].as_str();
            let next = argv.get(i + 1);
            i += 1;
            if matches!(arg, "|" | "||" | "&&" | ";" | "&") {
                program = None;
                out.push(arg.to_string());
                continue;
            }
            let Some(prog) = program else {
                let base = arg.rsplit('/').next().unwrap_or(arg);
                if !arg.starts_with('-') && !arg.contains('=') && !WRAPPERS.contains(&base) {
                    program = Some(base);
                }
                out.push(self.element(arg, c));
                continue;
            };
            if prog == "htpasswd" && arg.starts_with('-') && !arg.starts_with("--") {
                htpasswd_batch |= arg.contains('b');
            }
            let user_pass_flag = (matches!(prog, "curl" | "wget")
                && matches!(arg, "-u" | "--user" | "-U" | "--proxy-user"))
                || (matches!(prog, "smbclient" | "rpcclient" | "net") && arg == "-U");
            let value = if secret_long_flag(arg) {
                next.map(|_| SECRET.to_string())
            } else if user_pass_flag {
                next.map(|v| self.element(&redact_user_pass(v), c))
            } else {
                match self.short_flag(prog, arg) {
                    Some(Some(attached)) => {
                        out.push(attached);
                        bump(c, "password argument", 1);
                        continue;
                    }
                    Some(None) => next.map(|_| SECRET.to_string()),
                    None => None,
                }
            };
            if let Some(v) = value {
                out.push(arg.to_string());
                out.push(v);
                bump(c, "password argument", 1);
                i += 1;
                continue;
            }
            if arg.starts_with("pass:") {
                out.push(format!("pass:{SECRET}"));
                bump(c, "password argument", 1);
                continue;
            }
            out.push(self.element(arg, c));
        }
        if let Some(last) = out.last_mut().filter(|_| htpasswd_batch && argv.len() > 2) {
            *last = SECRET.to_string();
            bump(c, "password argument", 1);
        }
        out
    }

    /// `Some(Some(x))`: the flag had its value attached, redacted as x; `Some(None)`: the
    /// value is the next argument; `None`: not a password flag of this program.
    fn short_flag(&self, prog: &str, arg: &str) -> Option<Option<String>> {
        for (progs, flag, attached) in SHORT_FLAGS {
            if !progs.contains(&prog) {
                continue;
            }
            if arg == *flag {
                // mysql's bare -p prompts for the password; the next word is a database name.
                return if *attached && *flag == "-p" && prog != "sshpass" {
                    None
                } else {
                    Some(None)
                };
            }
            if *attached && arg.len() > flag.len() && arg.starts_with(flag) {
                return Some(Some(format!("{flag}{SECRET}")));
            }
        }
        None
    }

    fn element(&self, arg: &str, c: &mut Counts) -> String {
        // An inline script (`bash -c "..."`, a quoted header) is redacted as a command line
        // of its own. Each level strips a pair of quotes or splits, so recursion ends.
        let (q, inner) = match arg.chars().next() {
            Some(q @ ('"' | '\'')) if arg.len() >= 2 && arg.ends_with(q) => {
                (&arg[..1], &arg[1..arg.len() - 1])
            }
            _ => ("", arg),
        };
        if inner.contains(char::is_whitespace) && (!q.is_empty() || quoted_words(inner).len() > 1) {
            format!("{q}{}{q}", self.command_line_counted(inner, c))
        } else {
            self.text_counted(arg, c)
        }
    }

    /// Redacts a shell command line as written (whitespace-separated words; a quoted value
    /// after a password flag is consumed up to its closing quote).
    pub fn command_line(&self, line: &str) -> String {
        self.command_line_counted(line, &mut Counts::new())
    }

    pub fn command_line_counted(&self, line: &str, c: &mut Counts) -> String {
        let words = quoted_words(line);
        let argv = self.argv_counted(&words, c);
        let joined = argv.join(" ");
        self.text_counted(&joined, c)
    }
}

/// Splits on whitespace but keeps a quoted group (`"my pass"`) as one word, quotes included.
fn quoted_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for ch in line.chars() {
        match quote {
            Some(q) => {
                cur.push(ch);
                if ch == q {
                    quote = None;
                }
            }
            None if ch.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            None => {
                if ch == '"' || ch == '\'' {
                    quote = Some(ch);
                }
                cur.push(ch);
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn redact_user_pass(v: &str) -> String {
    for sep in [':', '%'] {
        if let Some((user, _)) = v.split_once(sep) {
            return format!("{user}{sep}{SECRET}");
        }
    }
    v.to_string()
}

fn replace(
    re: &Regex,
    s: &str,
    c: &mut Counts,
    what: &'static str,
    f: impl Fn(&Captures) -> String,
) -> String {
    let mut n = 0;
    let out = re.replace_all(s, |m: &Captures| {
        let r = f(m);
        if r != m[0] {
            n += 1;
        }
        r
    });
    bump(c, what, n);
    out.into_owned()
}

/// A long run that mixes cases and digits with high character entropy: an access key,
/// a session cookie, a base64 secret. Paths and hex digests do not qualify.
fn looks_random(s: &str) -> bool {
    if s.matches('/').count() > 2 || s.starts_with('/') {
        return false;
    }
    let has = |f: fn(&char) -> bool| s.chars().any(|c| f(&c));
    if !(has(char::is_ascii_lowercase)
        && has(char::is_ascii_uppercase)
        && has(char::is_ascii_digit))
    {
        return false;
    }
    let mut freq = [0usize; 256];
    for b in s.bytes() {
        freq[b as usize] += 1;
    }
    let n = s.len() as f64;
    let entropy: f64 = freq
        .iter()
        .filter(|&&k| k > 0)
        .map(|&k| {
            let p = k as f64 / n;
            -p * p.log2()
        })
        .sum();
    entropy >= 4.0
}

fn random_bytes() -> Result<Vec<u8>, std::io::Error> {
    let mut key = vec![0u8; 32];
    getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(key)
}

/// Names of local accounts from /etc/passwd: human accounts (uid >= 1000, not nobody), or
/// every account with `all`.
pub fn local_user_names(passwd: &str, all: bool) -> Vec<String> {
    passwd
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?.trim();
            let uid: u32 = f.nth(1)?.parse().ok()?;
            let human = (1000..65534).contains(&uid);
            (!name.is_empty() && !name.starts_with('#') && (all || human)).then(|| name.to_string())
        })
        .collect()
}

#[cfg(test)]
#[path = "redact_tests.rs"]
mod tests;
